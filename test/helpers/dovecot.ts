/**
 * A real Dovecot IMAP server for tests: its own temp dir, a generated dovecot.conf (`dovecot -F -c conf`), a free
 * 127.0.0.1 port, one user with a plaintext password, maildir storage in the temp dir, no TLS.
 *
 *   const d = await startDovecot();
 *   ... imap://d.user:d.password@127.0.0.1:d.port ...; await d.append(rawMail); await d.close();
 *
 * Runs unprivileged (every service as the current user, no chroot) and as root (CI): then the login and internal
 * services run as Debian's `dovenull`/`dovecot` and the mail user is `nobody`, since Dovecot refuses mail access as
 * uid 0. TLS is not set up (it would need a certificate made here); the email channel's TLS paths are nodemailer's
 * and imapflow's own.
 *
 * Mail is delivered for tests by APPEND over IMAP (`append`, `appendTo`), the same as a mail client saving a
 * message: Dovecot assigns the UID and tells an IDLE session at once (mailbox_idle_check_interval 1 s).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.ts';

export const DOVECOT_BIN =
  ['/usr/sbin/dovecot', '/usr/bin/dovecot', '/usr/local/sbin/dovecot'].find((p) => existsSync(p)) ?? 'dovecot';

export const DOVEADM_BIN = ['/usr/bin/doveadm', '/usr/sbin/doveadm'].find((p) => existsSync(p)) ?? 'doveadm';

export interface Dovecot {
  port: number;
  host: string;
  user: string;
  password: string;
  dir: string;
  /** APPENDs a raw RFC 5322 message to INBOX (CRLF or LF line ends) */
  append(raw: string): Promise<void>;
  /** APPENDs to another mailbox, creating it when missing */
  appendTo(mailbox: string, raw: string): Promise<void>;
  /** runs `fn` with a connected imapflow client (logged in as the test user), logging out afterwards */
  withClient<T>(fn: (client: import('imapflow').ImapFlow) => Promise<T>): Promise<T>;
  /** drops every IMAP session of the test user (`doveadm kick`), as a server restart or a network cut would */
  kick(): Promise<void>;
  /** Dovecot's log so far */
  log(): Promise<string>;
  close(): Promise<void>;
}

function passwdEntry(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    /* no /etc/passwd */
  }
  return undefined;
}

function groupName(gid: number): string | undefined {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (Number(f[2]) === gid && f[0]) return f[0];
    }
  } catch {
    /* no /etc/group */
  }
  return undefined;
}

export async function startDovecot(opts: { user?: string; password?: string } = {}): Promise<Dovecot> {
  const user = opts.user ?? 'talon';
  const password = opts.password ?? 'imap-test-password';
  const host = '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'talon-dovecot-'));
  const root = process.getuid?.() === 0;
  const me = userInfo();
  // as root: the mail user is `nobody` (uid 0 is refused), the services are Debian's dovecot users
  const mailUser = root ? (passwdEntry('nobody') ?? { uid: 65534, gid: 65534 }) : { uid: me.uid, gid: me.gid };
  const internal = root ? (passwdEntry('dovecot') ? 'dovecot' : 'nobody') : me.username;
  const login = root ? (passwdEntry('dovenull') ? 'dovenull' : 'nobody') : me.username;
  const port = await freePort(host);
  const mail = join(dir, 'mail');
  await mkdir(mail);
  await mkdir(join(dir, 'run'));
  await mkdir(join(dir, 'state'));
  if (root) {
    // the services that are not root must reach their sockets and the mail
    await chmod(dir, 0o755);
    await chown(mail, mailUser.uid, mailUser.gid);
  }
  const passwd = join(dir, 'passwd');
  await writeFile(passwd, `${user}:{PLAIN}${password}:${mailUser.uid}:${mailUser.gid}::${join(mail, user)}::\n`, {
    mode: 0o644,
  });
  const conf = join(dir, 'dovecot.conf');
  const logPath = join(dir, 'dovecot.log');
  await writeFile(
    conf,
    [
      'protocols = imap',
      `listen = ${host}`,
      `base_dir = ${join(dir, 'run')}`,
      `state_dir = ${join(dir, 'state')}`,
      `log_path = ${logPath}`,
      `info_log_path = ${logPath}`,
      'ssl = no',
      'disable_plaintext_auth = no',
      'auth_mechanisms = plain login',
      `default_internal_user = ${internal}`,
      `default_login_user = ${login}`,
      // unprivileged: the sockets' group is ours (Dovecot cannot chown them to group `dovecot`)
      ...(root ? [] : [`default_internal_group = ${groupName(me.gid) ?? me.username}`]),
      `first_valid_uid = ${Math.min(mailUser.uid, 500) || 1}`,
      `mail_location = maildir:${mail}/%u`,
      'mailbox_idle_check_interval = 1 secs',
      'namespace inbox {',
      '  inbox = yes',
      '  separator = /',
      '}',
      `passdb {\n  driver = passwd-file\n  args = ${passwd}\n}`,
      `userdb {\n  driver = passwd-file\n  args = ${passwd}\n}`,
      'service imap-login {',
      `  inet_listener imap {\n    port = ${port}\n    address = ${host}\n  }`,
      '  inet_listener imaps {\n    port = 0\n  }',
      ...(root ? [] : ['  chroot =']),
      '}',
      ...(root ? [] : ['service anvil {\n  chroot =\n}']),
      '',
    ].join('\n'),
  );

  let output = '';
  const proc: ChildProcess = spawn(DOVECOT_BIN, ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const log = async (): Promise<string> => output + (await readFile(logPath, 'utf8').catch(() => ''));
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  };
  try {
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code, sig) => reject(new Error(`dovecot exited (${code ?? sig}) during startup`)));
      proc.once('error', (err) =>
        reject(new Error(`cannot run ${DOVECOT_BIN} (apt-get install dovecot-imapd): ${err.message}`)),
      );
    });
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, host, 15_000), exited]);
  } catch (err) {
    const text = await log();
    await stop();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${text}`);
  }

  const withClient = async <T>(fn: (client: import('imapflow').ImapFlow) => Promise<T>): Promise<T> => {
    const { ImapFlow } = await import('imapflow');
    const client = new ImapFlow({ host, port, secure: false, auth: { user, pass: password }, logger: false });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.logout().catch(() => client.close());
    }
  };
  const appendTo = (mailbox: string, raw: string): Promise<void> =>
    withClient(async (c) => {
      if (mailbox.toUpperCase() !== 'INBOX') await c.mailboxCreate(mailbox).catch(() => undefined);
      const r = await c.append(mailbox, raw.replace(/\r?\n/g, '\r\n'));
      if (r === false) throw new Error(`APPEND to ${mailbox} failed`);
    });

  const kick = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const p = spawn(DOVEADM_BIN, ['-c', conf, 'kick', user], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
      });
      p.once('error', reject);
      // 68 (EX_NOUSER): nobody was connected
      p.once('exit', (code) =>
        code === 0 || code === 68 ? resolve() : reject(new Error(`doveadm kick failed (${code}): ${err}`)),
      );
    });

  return {
    port,
    host,
    user,
    password,
    dir,
    append: (raw) => appendTo('INBOX', raw),
    appendTo,
    withClient,
    kick,
    log,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
