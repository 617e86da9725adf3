/**
 * Web admin accounts in the store (sublevel `auth` › `users`): name, role, scrypt hash,
 * login bookkeeping. The last admin can be neither deleted nor demoted.
 */
import type { Store, Sublevel } from '../../runtime/store/store.ts';
import { SYNC } from '../../runtime/store/store.ts';
import { authSublevel } from './sublevel.ts';
import { hashPassword, verifyPasswordAsync } from '../../runtime/secrets/password.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Role } from '../route.ts';
import { USER_NAME, USER_NAME_PATTERN } from '../../runtime/core/names.ts';

/** a user name: the rule lives in runtime/core/names.ts */
export { USER_NAME_PATTERN };

export interface UserRecord {
  name: string;
  role: Role;
  passwordHash: string;
  createdAt: number;
  lastLoginAt?: number;
  failed: number;
  lockedUntil?: number;
}

/** What the API shows of a user: never the hash. */
export interface UserInfo {
  name: string;
  role: Role;
  createdAt: number;
  lastLoginAt?: number;
  locked?: boolean;
}

/** a dummy hash so a login for an unknown name costs the same as for a known one (made on first use: scrypt costs ~30 ms) */
let dummyHash: string | undefined;
const DUMMY_HASH = (): string => (dummyHash ??= hashPassword('talon-dummy-password'));

export class UserStore {
  #db: Sublevel<UserRecord>;
  #clock: Clock;
  /** serialises changes so the last-admin rule cannot race */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(store: Store, clock: Clock) {
    this.#db = authSublevel<UserRecord>(store, 'users');
    this.#clock = clock;
  }

  async get(name: string): Promise<UserRecord | null> {
    if (!USER_NAME.test(name)) return null;
    return (await this.#db.get(name)) ?? null;
  }

  async list(): Promise<UserRecord[]> {
    const out: UserRecord[] = [];
    for await (const v of this.#db.values()) out.push(v);
    return out;
  }

  async count(): Promise<number> {
    let n = 0;
    for await (const _k of this.#db.keys({ limit: 1 })) n++;
    return n;
  }

  info(u: UserRecord): UserInfo {
    const locked = u.lockedUntil !== undefined && u.lockedUntil > this.#clock.now();
    return {
      name: u.name,
      role: u.role,
      createdAt: u.createdAt,
      ...(u.lastLoginAt !== undefined ? { lastLoginAt: u.lastLoginAt } : {}),
      ...(locked ? { locked: true } : {}),
    };
  }

  create(input: { name: string; password: string; role: Role }): Promise<UserRecord> {
    return this.#serial(async () => {
      if (!USER_NAME.test(input.name))
        throw new TalonError(
          'BAD_REQUEST',
          'a user name is 1-32 lowercase letters, digits, dots, dashes or underscores, starting with a letter',
        );
      if (await this.#db.get(input.name)) throw new TalonError('USER_EXISTS', `user "${input.name}" already exists`);
      const rec: UserRecord = {
        name: input.name,
        role: input.role,
        passwordHash: hashPassword(input.password),
        createdAt: this.#clock.now(),
        failed: 0,
      };
      await this.#db.put(rec.name, rec, SYNC);
      return rec;
    });
  }

  /** An account whose password hash was made elsewhere (a provisioning bundle's admin); the hash is not re-hashed. */
  createHashed(input: { name: string; passwordHash: string; role: Role }): Promise<UserRecord> {
    return this.#serial(async () => {
      if (!USER_NAME.test(input.name))
        throw new TalonError(
          'BAD_REQUEST',
          'a user name is 1-32 lowercase letters, digits, dots, dashes or underscores, starting with a letter',
        );
      if (!input.passwordHash.startsWith('scrypt$'))
        throw new TalonError(
          'BAD_REQUEST',
          'a password hash is in the scrypt$N$r$p$salt$hash format (runtime/secrets/password.ts)',
        );
      if (await this.#db.get(input.name)) throw new TalonError('USER_EXISTS', `user "${input.name}" already exists`);
      const rec: UserRecord = {
        name: input.name,
        role: input.role,
        passwordHash: input.passwordHash,
        createdAt: this.#clock.now(),
        failed: 0,
      };
      await this.#db.put(rec.name, rec, SYNC);
      return rec;
    });
  }

  update(name: string, change: { password?: string; role?: Role }): Promise<UserRecord> {
    return this.#serial(async () => {
      const rec = await this.#must(name);
      if (change.role !== undefined && change.role !== 'admin' && rec.role === 'admin' && (await this.#admins()) <= 1) {
        throw new TalonError('LAST_ADMIN', `"${name}" is the last admin; make another admin first`);
      }
      const next: UserRecord = { ...rec, ...(change.role !== undefined ? { role: change.role } : {}) };
      if (change.password !== undefined) {
        next.passwordHash = hashPassword(change.password);
        next.failed = 0;
        delete next.lockedUntil;
      }
      await this.#db.put(name, next, SYNC);
      return next;
    });
  }

  delete(name: string): Promise<void> {
    return this.#serial(async () => {
      const rec = await this.#must(name);
      if (rec.role === 'admin' && (await this.#admins()) <= 1)
        throw new TalonError('LAST_ADMIN', `"${name}" is the last admin and cannot be deleted`);
      await this.#db.del(name, SYNC);
    });
  }

  /**
   * Undoes an account a provisioning bundle made when that bundle is rolled back: removed only
   * while it still has the hash it was made with (nobody changed it since). The last-admin rule
   * does not apply: the device goes back to having no account, and to its setup code.
   */
  removeIfHash(name: string, passwordHash: string): Promise<boolean> {
    return this.#serial(async () => {
      const rec = await this.get(name);
      if (!rec || rec.passwordHash !== passwordHash) return false;
      await this.#db.del(name, SYNC);
      return true;
    });
  }

  /** Checks a password (timing alike for unknown names); null when it does not match. */
  async verify(name: string, password: string): Promise<UserRecord | null> {
    const rec = await this.get(name);
    const ok = await verifyPasswordAsync(password, rec?.passwordHash ?? DUMMY_HASH());
    return ok && rec ? rec : null;
  }

  /** login bookkeeping: a success clears the failures, a failure counts up and may lock */
  async noteLogin(
    name: string,
    outcome: { ok: true } | { ok: false; failed: number; lockedUntil?: number },
  ): Promise<void> {
    await this.#serial(async () => {
      const rec = await this.#db.get(name);
      if (!rec) return;
      const next: UserRecord = outcome.ok
        ? { ...rec, lastLoginAt: this.#clock.now(), failed: 0 }
        : {
            ...rec,
            failed: outcome.failed,
            ...(outcome.lockedUntil !== undefined ? { lockedUntil: outcome.lockedUntil } : {}),
          };
      if (outcome.ok) delete next.lockedUntil;
      await this.#db.put(name, next);
    });
  }

  async #must(name: string): Promise<UserRecord> {
    const rec = await this.get(name);
    if (!rec) throw new TalonError('USER_NOT_FOUND', `no user "${name.slice(0, 40)}"`);
    return rec;
  }

  async #admins(): Promise<number> {
    return (await this.list()).filter((u) => u.role === 'admin').length;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(fn, fn);
    this.#queue = p.catch(() => {});
    return p;
  }
}
