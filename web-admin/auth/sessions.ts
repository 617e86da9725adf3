/**
 * Login sessions: a random 32-byte id in the `talon_session` cookie (HttpOnly,
 * SameSite=Strict), stored only as its sha256 with the user, a CSRF token and the expiry
 * (12 h idle, 7 days at most).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Store, Sublevel } from '../../runtime/store/store.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { authSublevel } from './sublevel.ts';

export const SESSION_COOKIE = 'talon_session';
export const IDLE_MS = 12 * 3600_000;
export const ABSOLUTE_MS = 7 * 24 * 3600_000;
/** lastSeenAt is written at most this often */
const TOUCH_MS = 60_000;

export interface SessionRecord {
  user: string;
  csrf: string;
  createdAt: number;
  lastSeenAt: number;
}

const digest = (id: string): string => createHash('sha256').update(id).digest('hex');

export class SessionStore {
  #db: Sublevel<SessionRecord>;
  #clock: Clock;

  constructor(store: Store, clock: Clock) {
    this.#db = authSublevel<SessionRecord>(store, 'sessions');
    this.#clock = clock;
  }

  /** A new session; the id is returned once, for the cookie. */
  async create(user: string): Promise<{ id: string; record: SessionRecord }> {
    const id = randomBytes(32).toString('base64url');
    const now = this.#clock.now();
    const record: SessionRecord = {
      user,
      csrf: randomBytes(24).toString('base64url'),
      createdAt: now,
      lastSeenAt: now,
    };
    await this.#db.put(digest(id), record);
    return { id, record };
  }

  /** The live session for a cookie value, or null (unknown, idle too long or too old: then removed). */
  async get(id: string): Promise<SessionRecord | null> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const key = digest(id);
    const rec = await this.#db.get(key);
    if (!rec) return null;
    const now = this.#clock.now();
    if (now - rec.lastSeenAt > IDLE_MS || now - rec.createdAt > ABSOLUTE_MS) {
      await this.#db.del(key);
      return null;
    }
    if (now - rec.lastSeenAt > TOUCH_MS) await this.#db.put(key, { ...rec, lastSeenAt: now });
    return rec;
  }

  async delete(id: string): Promise<void> {
    if (/^[A-Za-z0-9_-]{43}$/.test(id)) await this.#db.del(digest(id));
  }

  /** Ends every session of a user (deleted, demoted, or a new password). */
  async deleteForUser(user: string): Promise<void> {
    const keys: string[] = [];
    for await (const [k, v] of this.#db.iterator()) if (v.user === user) keys.push(k);
    if (keys.length > 0) await this.#db.batch(keys.map((key) => ({ type: 'del' as const, key })));
  }
}

export function sessionCookie(id: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${ABSOLUTE_MS / 1000}${secure ? '; Secure' : ''}`;
}

export function clearSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? '; Secure' : ''}`;
}

export function readSessionCookie(header: string | undefined): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === SESSION_COOKIE) return v.join('=');
  }
  return null;
}
