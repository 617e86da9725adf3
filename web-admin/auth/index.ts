/**
 * The web admin's auth: who is calling (the CLI's bearer token, an API token, or a session
 * cookie), whether the route lets them (route.ts Access rules, token scopes, CSRF on
 * cookie-authenticated writes), and the account operations the session/users/tokens routes
 * call. Every auth state change is audited; no password, session id, token secret or
 * setup code is ever logged or audited.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Store } from '../../runtime/store/store.ts';
import type { Audit, AuditDecision } from '../../runtime/audit/types.ts';
import type { Clock } from '../../runtime/clock.ts';
import { systemClock } from '../../runtime/clock.ts';
import { TalonError } from '../../runtime/errors.ts';
import type { Access, Principal, Role, Route } from '../route.ts';
import { UserStore, type UserInfo } from './users.ts';
import { SessionStore, readSessionCookie, sessionCookie, clearSessionCookie } from './sessions.ts';
import { TokenStore, type TokenInfo } from './tokens.ts';
import { LoginLimiter } from './ratelimit.ts';
import { SetupCode } from './setup.ts';

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

  constructor(opts: AuthOptions) {
    const clock = opts.clock ?? systemClock;
    this.users = new UserStore(opts.store, clock);
    this.sessions = new SessionStore(opts.store, clock);
    this.tokens = new TokenStore(opts.store, clock);
    this.limiter = new LoginLimiter(clock);
    this.setup = new SetupCode(opts.dataDir);
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
      if (!m) throw new TalonError('UNAUTHORIZED', 'use `Authorization: Bearer <token>` (the CLI reads it from the data folder\'s cli-token)');
      const bearer = m[1]!;
      if (timingSafeEqual(digest(bearer), this.#cliDigest)) {
        return { principal: { actor: 'cli', kind: 'cli', role: 'admin', scopes: ['*'] } };
      }
      const info = await this.tokens.verify(bearer);
      const user = info ? await this.users.get(info.user) : null;
      if (!info || !user) throw new TalonError('UNAUTHORIZED', 'the bearer token is not valid (unknown, revoked or expired)');
      return { principal: { actor: `token:${info.id}(${user.name})`, kind: 'token', user: user.name, role: user.role, scopes: info.scopes } };
    }
    const id = readSessionCookie(req.headers.cookie);
    if (id) {
      const s = await this.sessions.get(id);
      const user = s ? await this.users.get(s.user) : null;
      if (s && user) {
        return { principal: { actor: `user:${user.name}`, kind: 'session', user: user.name, role: user.role, scopes: ['*'] }, csrf: s.csrf, sessionId: id };
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
      throw new TalonError('FORBIDDEN', `this needs the admin role; ${principal.user ?? principal.actor} is a ${principal.role}`);
    }
    if (!hasScope(principal.scopes, route.tag, route.access)) {
      throw new TalonError('FORBIDDEN', `this token lacks the scope ${route.tag}:${route.access === 'read' ? 'read' : 'write'}`);
    }
    if (principal.kind === 'session' && route.method !== 'GET') checkCsrf(who.csrf, req);
  }

  /** Login with a password; the caller sets the cookie from the returned session id. */
  async login(username: string, password: string, ip: string): Promise<{ user: UserInfo; sessionId: string; csrf: string }> {
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
      await this.#record(`user:${username}`, 'auth.login', username, 'deny', { code: 'BAD_CREDENTIALS', ip, ...(f.lockedUntil !== undefined ? { locked: true } : {}) });
      if (f.lockedUntil !== undefined) await this.#record('kernel', 'auth.lockout', username, 'info', { until: f.lockedUntil });
      throw new TalonError('BAD_CREDENTIALS', 'wrong user name or password');
    }
    this.limiter.success(username);
    await this.users.noteLogin(username, { ok: true });
    const s = await this.sessions.create(rec.name);
    await this.#record(`user:${rec.name}`, 'auth.login', rec.name, 'ok', { ip });
    return { user: this.users.info(rec), sessionId: s.id, csrf: s.record.csrf };
  }

  async logout(who: Authenticated): Promise<void> {
    if (who.sessionId) {
      await this.sessions.delete(who.sessionId);
      await this.#record(who.principal.actor, 'auth.logout', who.principal.user ?? '', 'ok');
    }
  }

  /** First-run setup: the code from the console makes the first admin and logs them in. */
  async completeSetup(code: string, username: string, password: string, ip: string): Promise<{ user: UserInfo; sessionId: string; csrf: string }> {
    if (!(await this.setupNeeded())) throw new TalonError('SETUP_DONE', 'setup is done: an account exists; log in instead');
    this.limiter.check('(setup)', ip);
    if (!this.setup.matches(code)) {
      this.limiter.failure('(setup)');
      await this.#record('anonymous', 'auth.setup', username, 'deny', { code: 'BAD_CREDENTIALS', ip });
      throw new TalonError('BAD_CREDENTIALS', 'the setup code is wrong (it is in the console log and in the data folder\'s setup-code file)');
    }
    const rec = await this.users.create({ name: username, password, role: 'admin' });
    this.setup.consume();
    await this.#record(`user:${rec.name}`, 'auth.setup', rec.name, 'ok', { role: 'admin' });
    const s = await this.sessions.create(rec.name);
    await this.#record(`user:${rec.name}`, 'auth.login', rec.name, 'ok', { ip, via: 'setup' });
    return { user: this.users.info(rec), sessionId: s.id, csrf: s.record.csrf };
  }

  async createUser(actor: string, input: { name: string; password: string; role: Role }): Promise<UserInfo> {
    return this.#audited(actor, 'auth.user.create', input.name, { role: input.role }, async () => {
      const rec = await this.users.create(input);
      this.setup.retire();
      return this.users.info(rec);
    });
  }

  async updateUser(actor: string, name: string, change: { password?: string; role?: Role }): Promise<UserInfo> {
    const detail = { ...(change.role !== undefined ? { role: change.role } : {}), ...(change.password !== undefined ? { password: 'changed' } : {}) };
    return this.#audited(actor, 'auth.user.update', name, detail, async () => {
      const before = await this.users.get(name);
      const rec = await this.users.update(name, change);
      // a new password or a lower role ends the user's other sessions
      if (change.password !== undefined || (before?.role === 'admin' && rec.role !== 'admin')) await this.sessions.deleteForUser(name);
      return this.users.info(rec);
    });
  }

  async deleteUser(actor: string, name: string): Promise<void> {
    await this.#audited(actor, 'auth.user.delete', name, {}, async () => {
      await this.users.delete(name);
      await this.sessions.deleteForUser(name);
      await this.tokens.deleteForUser(name);
    });
  }

  async createToken(principal: Principal, input: { name: string; scopes: string[]; expiresInDays?: number }): Promise<{ token: string; info: TokenInfo }> {
    const user = principal.user ?? principal.actor;
    return this.#audited(principal.actor, 'auth.token.create', input.name, { scopes: input.scopes, user }, async () => {
      const out = await this.tokens.create({ ...input, user });
      await this.#record(principal.actor, 'auth.token.created', out.info.id, 'info', { name: input.name });
      return out;
    });
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

  async #audited<T>(actor: string, action: string, subject: string, detail: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      await this.#record(actor, action, subject, 'ok', detail);
      return out;
    } catch (err) {
      const e = TalonError.from(err);
      await this.#record(actor, action, subject, 'error', { ...detail, code: e.code });
      throw e;
    }
  }

  #record(actor: string, action: string, subject: string, decision: AuditDecision, detail?: Record<string, unknown>): Promise<void> {
    return this.#audit.record({ actor, action, subject: subject.slice(0, 64), decision, ...(detail ? { detail } : {}) });
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
