/**
 * The web admin's auth: who is calling (the CLI's bearer token, an API token, or a session
 * cookie), whether the route lets them (route.ts Access rules, token scopes, CSRF on
 * cookie-authenticated writes), and the account operations the session/users/tokens routes
 * call. Every auth state change is audited, and the privileged ones (setup, users, tokens)
 * before they happen: refused when the audit log cannot be written. A caller grants only
 * what it holds (./scopes.ts). No password, session id, token secret or setup code is ever
 * logged or audited.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Store } from '../../runtime/store/store.ts';
import type { Audit, AuditDecision } from '../../runtime/audit/types.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { systemClock } from '../../runtime/core/clock.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Access, Principal, Role, Route } from '../route.ts';
import { UserStore, type UserInfo } from './users.ts';
import { SessionStore, readSessionCookie, sessionCookie, clearSessionCookie } from './sessions.ts';
import { TokenStore, type TokenInfo } from './tokens.ts';
import { LoginLimiter } from './ratelimit.ts';
import { SetupCode } from './setup.ts';
import { checkGrant, checkRole } from './scopes.ts';
import { privileged } from '../../runtime/audit/privileged.ts';

export { UserStore, SessionStore, TokenStore, LoginLimiter, SetupCode };
export type { UserInfo, TokenInfo };

export interface AuthOptions {
  store: Store;
  audit: Audit;
  dataDir: string;
  /** the CLI's bearer token (the data folder's cli-token) */
  cliToken: string;
  /** cookies get `Secure` when served over TLS */
  secure?: boolean;
  clock?: Clock;
}

export const ANONYMOUS: Principal = { actor: 'anonymous', kind: 'anonymous', role: null, scopes: [] };

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** A principal plus, for sessions, what the session routes need. */
export interface Authenticated {
  principal: Principal;
  csrf?: string;
  sessionId?: string;
}

export class AuthService {
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly tokens: TokenStore;
  readonly limiter: LoginLimiter;
  readonly setup: SetupCode;
  readonly secure: boolean;
  #audit: Audit;
  #cliDigest: Buffer;
  #clock: Clock;

  constructor(opts: AuthOptions) {
    const clock = opts.clock ?? systemClock;
    this.users = new UserStore(opts.store, clock);
    this.sessions = new SessionStore(opts.store, clock);
    this.tokens = new TokenStore(opts.store, clock);
    this.limiter = new LoginLimiter(clock);
    this.setup = new SetupCode(opts.dataDir);
    this.#clock = clock;
    this.secure = opts.secure ?? false;
    this.#audit = opts.audit;
    this.#cliDigest = digest(opts.cliToken);
  }

  /** At start: the setup code while no account exists (for the console), else null. */
  async init(): Promise<string | null> {
    if ((await this.users.count()) > 0) {
      this.setup.retire();
      return null;
    }
    return this.setup.ensure();
  }

  async setupNeeded(): Promise<boolean> {
    return (await this.users.count()) === 0;
  }

  /** Who is calling. A bad bearer token is an error; no credentials at all is `anonymous`. */
  async authenticate(req: IncomingMessage): Promise<Authenticated> {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer ([\x21-\x7e]{1,200})$/.exec(header);
      if (!m)
        throw new TalonError(
          'UNAUTHORIZED',
          "use `Authorization: Bearer <token>` (the CLI reads it from the data folder's cli-token)",
        );
      const bearer = m[1]!;
      if (timingSafeEqual(digest(bearer), this.#cliDigest)) {
        return { principal: { actor: 'cli', kind: 'cli', role: 'admin', scopes: ['*'] } };
      }
      const info = await this.tokens.verify(bearer);
      const user = info ? await this.users.get(info.user) : null;
      if (!info || !user)
        throw new TalonError('UNAUTHORIZED', 'the bearer token is not valid (unknown, revoked or expired)');
      return {
        principal: {
          actor: `token:${info.id}(${user.name})`,
          kind: 'token',
          user: user.name,
          role: user.role,
          scopes: info.scopes,
          ...(info.expiresAt !== undefined ? { expiresAt: info.expiresAt } : {}),
        },
      };
    }
    const id = readSessionCookie(req.headers.cookie);
    if (id) {
      const s = await this.sessions.get(id);
      const user = s ? await this.users.get(s.user) : null;
      if (s && user) {
        return {
          principal: { actor: `user:${user.name}`, kind: 'session', user: user.name, role: user.role, scopes: ['*'] },
          csrf: s.csrf,
          sessionId: id,
        };
      }
    }
    return { principal: ANONYMOUS };
  }

  /** Throws UNAUTHORIZED, FORBIDDEN or CSRF unless `who` may call the route. */
  authorize(route: Pick<Route, 'access' | 'tag' | 'method'>, who: Authenticated, req: IncomingMessage): void {
    const { principal } = who;
    if (route.access === 'public') return;
    if (principal.kind === 'anonymous' || principal.role === null) {
      throw new TalonError('UNAUTHORIZED', 'log in first (or send `Authorization: Bearer <token>`)');
    }
    const needsAdmin = route.access === 'write' || route.access === 'admin';
    if (needsAdmin && principal.role !== 'admin') {
      throw new TalonError(
        'FORBIDDEN',
        `this needs the admin role; ${principal.user ?? principal.actor} is a ${principal.role}`,
      );
    }
    if (!hasScope(principal.scopes, route.tag, route.access)) {
      throw new TalonError(
        'FORBIDDEN',
        `this token lacks the scope ${route.tag}:${route.access === 'read' ? 'read' : 'write'}`,
      );
    }
    if (principal.kind === 'session' && route.method !== 'GET') checkCsrf(who.csrf, req);
  }

  /** CSRF for a public route that still acts on the caller's session (logout) */
  requireCsrf(csrf: string, req: IncomingMessage): void {
    checkCsrf(csrf, req);
  }

  /** Login with a password; the caller sets the cookie from the returned session id. */
  async login(
    username: string,
    password: string,
    ip: string,
  ): Promise<{ user: UserInfo; sessionId: string; csrf: string }> {
    try {
      this.limiter.check(username, ip);
    } catch (err) {
      await this.#record(`user:${username}`, 'auth.login', username, 'deny', { code: TalonError.from(err).code, ip });
      throw err;
    }
    const rec = await this.users.verify(username, password);
    if (!rec) {
      const f = this.limiter.failure(username);
      await this.users.noteLogin(username, { ok: false, ...f });
      await this.#record(`user:${username}`, 'auth.login', username, 'deny', {
        code: 'BAD_CREDENTIALS',
        ip,
        ...(f.lockedUntil !== undefined ? { locked: true } : {}),
      });
      if (f.lockedUntil !== undefined)
        await this.#record('kernel', 'auth.lockout', username, 'info', { until: f.lockedUntil });
      throw new TalonError('BAD_CREDENTIALS', 'wrong user name or password');
    }
    this.limiter.success(username);
    await this.users.noteLogin(username, { ok: true });
    // written before the session exists: no entry, no session
    await this.#record(`user:${rec.name}`, 'auth.login', rec.name, 'ok', { ip });
    const s = await this.sessions.create(rec.name);
    return { user: this.users.info(rec), sessionId: s.id, csrf: s.record.csrf };
  }

  async logout(who: Authenticated): Promise<void> {
    if (who.sessionId) {
      await this.sessions.delete(who.sessionId);
      await this.#record(who.principal.actor, 'auth.logout', who.principal.user ?? '', 'ok');
    }
  }

  /**
   * First-run setup: the code from the console makes the first admin and logs them in. Wrong
   * codes lock the address they come from (not the owner's); many wrong codes from anywhere
   * make every attempt wait first (ratelimit.ts).
   */
  async completeSetup(
    code: string,
    username: string,
    password: string,
    ip: string,
  ): Promise<{ user: UserInfo; sessionId: string; csrf: string }> {
    if (!(await this.setupNeeded()))
      throw new TalonError('SETUP_DONE', 'setup is done: an account exists; log in instead');
    try {
      const wait = this.limiter.setupCheck(ip);
      if (wait > 0) await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, wait));
    } catch (err) {
      await this.#record('anonymous', 'auth.setup', username, 'deny', { code: TalonError.from(err).code, ip });
      throw err;
    }
    if (!(await this.setupNeeded()))
      throw new TalonError('SETUP_DONE', 'setup is done: an account exists; log in instead');
    if (!this.setup.matches(code)) {
      const f = this.limiter.setupFailure(ip);
      await this.#record('anonymous', 'auth.setup', username, 'deny', {
        code: 'BAD_CREDENTIALS',
        ip,
        ...(f.lockedUntil !== undefined ? { locked: true } : {}),
      });
      throw new TalonError(
        'BAD_CREDENTIALS',
        "the setup code is wrong (it is in the console log and in the data folder's setup-code file)",
      );
    }
    const rec = await privileged(
      this.#audit,
      {
        actor: `user:${username}`,
        action: 'auth.setup',
        subject: username.slice(0, 64),
        detail: { role: 'admin', ip },
      },
      async () => {
        const r = await this.users.create({ name: username, password, role: 'admin' });
        this.setup.consume();
        return r;
      },
    );
    await this.#record(`user:${rec.name}`, 'auth.login', rec.name, 'ok', { ip, via: 'setup' });
    const s = await this.sessions.create(rec.name);
    return { user: this.users.info(rec), sessionId: s.id, csrf: s.record.csrf };
  }

  /** A new account; the caller must hold everything the role can do. */
  async createUser(principal: Principal, input: { name: string; password: string; role: Role }): Promise<UserInfo> {
    await this.#grant(principal, 'auth.user.create', input.name, { role: input.role }, () =>
      checkRole(principal, input.role, `creating user "${input.name}"`),
    );
    return this.#audited(principal.actor, 'auth.user.create', input.name, { role: input.role }, async () => {
      const rec = await this.users.create(input);
      this.setup.retire();
      return this.users.info(rec);
    });
  }

  /** A new password or role; the caller must hold the account's role, and the new one. */
  async updateUser(principal: Principal, name: string, change: { password?: string; role?: Role }): Promise<UserInfo> {
    const detail = {
      ...(change.role !== undefined ? { role: change.role } : {}),
      ...(change.password !== undefined ? { password: 'changed' } : {}),
    };
    const target = await this.users.get(name);
    await this.#grant(principal, 'auth.user.update', name, detail, () => {
      if (target) checkRole(principal, target.role, `changing user "${name}"`);
      if (change.role !== undefined) checkRole(principal, change.role, `giving user "${name}" a role`);
    });
    return this.#audited(principal.actor, 'auth.user.update', name, detail, async () => {
      const before = await this.users.get(name);
      const rec = await this.users.update(name, change);
      // a new password or a lower role ends the user's other sessions
      if (change.password !== undefined || (before?.role === 'admin' && rec.role !== 'admin'))
        await this.sessions.deleteForUser(name);
      return this.users.info(rec);
    });
  }

  /** Deletes an account with its sessions and tokens; the caller must hold the account's role. */
  async deleteUser(principal: Principal, name: string): Promise<void> {
    const target = await this.users.get(name);
    await this.#grant(principal, 'auth.user.delete', name, {}, () => {
      if (target) checkRole(principal, target.role, `deleting user "${name}"`);
    });
    await this.#audited(principal.actor, 'auth.user.delete', name, {}, async () => {
      await this.users.delete(name);
      await this.sessions.deleteForUser(name);
      await this.tokens.deleteForUser(name);
    });
  }

  /**
   * A new API token for the caller's account, with scopes the caller holds; a token made by a
   * token expires no later than its maker.
   */
  async createToken(
    principal: Principal,
    input: { name: string; scopes: string[]; expiresInDays?: number },
  ): Promise<{ token: string; info: TokenInfo }> {
    const user = principal.user ?? principal.actor;
    await this.#grant(principal, 'auth.token.create', input.name, { scopes: input.scopes, user }, () =>
      checkGrant(principal, input.scopes, `creating token "${input.name}"`),
    );
    let expiresAt =
      input.expiresInDays !== undefined ? this.#clock.now() + input.expiresInDays * 86_400_000 : undefined;
    if (principal.expiresAt !== undefined && (expiresAt === undefined || expiresAt > principal.expiresAt))
      expiresAt = principal.expiresAt;
    return this.#audited(
      principal.actor,
      'auth.token.create',
      input.name,
      { scopes: input.scopes, user, ...(expiresAt !== undefined ? { expiresAt } : {}) },
      async () => {
        const out = await this.tokens.create({
          name: input.name,
          scopes: input.scopes,
          user,
          ...(expiresAt !== undefined ? { expiresAt } : {}),
        });
        // which id the new token got (the token exists now: a failure here is counted by the chain, not thrown)
        await this.#record(principal.actor, 'auth.token.created', out.info.id, 'info', { name: input.name }).catch(
          () => {},
        );
        return out;
      },
    );
  }

  async deleteToken(actor: string, id: string): Promise<TokenInfo> {
    return this.#audited(actor, 'auth.token.delete', id, {}, () => this.tokens.delete(id));
  }

  cookie(sessionId: string): string {
    return sessionCookie(sessionId, this.secure);
  }

  clearCookie(): string {
    return clearSessionCookie(this.secure);
  }

  /** audited before it happens; refused (AUDIT_UNAVAILABLE) when its entry cannot be written */
  #audited<T>(
    actor: string,
    action: string,
    subject: string,
    detail: Record<string, unknown>,
    fn: () => Promise<T>,
  ): Promise<T> {
    return privileged(this.#audit, { actor, action, subject: subject.slice(0, 64), detail }, fn);
  }

  /** a grant check: a refusal is audited (`deny`) and thrown */
  async #grant(
    principal: Principal,
    action: string,
    subject: string,
    detail: Record<string, unknown>,
    check: () => void,
  ): Promise<void> {
    try {
      check();
    } catch (err) {
      const e = TalonError.from(err);
      await this.#record(principal.actor, action, subject, 'deny', {
        ...detail,
        code: e.code,
        ...(e.details ? { missing: (e.details as { missing?: unknown }).missing } : {}),
      }).catch(() => {});
      throw e;
    }
  }

  #record(
    actor: string,
    action: string,
    subject: string,
    decision: AuditDecision,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    return this.#audit.record({
      actor,
      action,
      subject: subject.slice(0, 64),
      decision,
      ...(detail ? { detail } : {}),
    });
  }
}

/** `read` routes accept `<tag>:read`, `<tag>:write` or `*`; `write` and `admin` need `<tag>:write` or `*`. */
export function hasScope(scopes: string[], tag: string, access: Access): boolean {
  if (scopes.includes('*') || scopes.includes(`${tag}:write`)) return true;
  return access === 'read' && scopes.includes(`${tag}:read`);
}

function checkCsrf(expected: string | undefined, req: IncomingMessage): void {
  const got = req.headers['x-csrf-token'];
  if (typeof got !== 'string' || expected === undefined || !timingSafeEqual(digest(got), digest(expected))) {
    throw new TalonError('CSRF', 'a change from the page needs the x-csrf-token header (from GET /api/v1/session)');
  }
}
