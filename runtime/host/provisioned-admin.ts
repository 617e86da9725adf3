/**
 * The web admin account a bundle brings (`admin: {username, passwordHash}`), through the web
 * admin's own auth API: made only while the device has no account at all (it replaces the
 * setup code), and undone when that bundle is rolled back — the account removed while it still
 * has the bundle's hash, its sessions and tokens with it, and the setup code back.
 */
import type { AuthService } from '../../web-admin/auth/index.ts';
import type { AgentDeps } from '../../provisioning/device/agent.ts';

export function webAdminAccounts(
  auth: AuthService,
  log: (msg: string) => void,
): Required<Pick<AgentDeps, 'createAdmin' | 'removeAdmin'>> {
  return {
    createAdmin: async (username, passwordHash) => {
      if ((await auth.users.count()) > 0) return false;
      await auth.users.createHashed({ name: username, passwordHash, role: 'admin' });
      auth.setup.retire();
      return true;
    },
    removeAdmin: async (username, passwordHash) => {
      if (!(await auth.users.removeIfHash(username, passwordHash))) return false;
      await auth.sessions.deleteForUser(username);
      await auth.tokens.deleteForUser(username);
      const code = await auth.init(); // the setup code again when no account is left
      if (code)
        log(
          `the account ${username} of a rolled-back fleet bundle was removed; no web admin account now: enter the one-time setup code ${code} in the web admin`,
        );
      return true;
    },
  };
}
