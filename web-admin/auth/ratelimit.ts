/**
 * Login throttling: per username, 5 failures lock the account for 15 minutes, doubling with
 * each lockout; per client address, a token bucket (10 attempts, one more every 6 s).
 * In memory: a restart clears it (the user record keeps the failure count for display).
 */
import type { Clock } from '../../runtime/clock.ts';
import { TalonError } from '../../runtime/errors.ts';

export const MAX_FAILURES = 5;
export const LOCK_MS = 15 * 60_000;
const BUCKET = 10;
const REFILL_MS = 6_000;
const MAX_TRACKED = 10_000;

interface NameState { failures: number; lockouts: number; lockedUntil: number }
interface Bucket { tokens: number; at: number }

export class LoginLimiter {
  #clock: Clock;
  #names = new Map<string, NameState>();
  #ips = new Map<string, Bucket>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Throws RATE_LIMITED or LOCKED_OUT (with details.retryAfterSec) before a password is checked. */
  check(username: string, ip: string): void {
    const now = this.#clock.now();
    const b = this.#ips.get(ip) ?? { tokens: BUCKET, at: now };
    b.tokens = Math.min(BUCKET, b.tokens + (now - b.at) / REFILL_MS);
    b.at = now;
    if (b.tokens < 1) {
      throw new TalonError('RATE_LIMITED', 'too many login attempts from this address; wait and try again',
        { details: { retryAfterSec: Math.ceil(((1 - b.tokens) * REFILL_MS) / 1000) } });
    }
    b.tokens -= 1;
    this.#remember(this.#ips, ip, b);
    const st = this.#names.get(username);
    if (st && st.lockedUntil > now) {
      throw new TalonError('LOCKED_OUT', `too many failed logins for "${username}"; try again later`,
        { details: { retryAfterSec: Math.ceil((st.lockedUntil - now) / 1000) } });
    }
  }

  /** Counts a failure; returns the state to record, with lockedUntil when this failure locked the account. */
  failure(username: string): { failed: number; lockedUntil?: number } {
    const now = this.#clock.now();
    const st = this.#names.get(username) ?? { failures: 0, lockouts: 0, lockedUntil: 0 };
    st.failures += 1;
    let lockedUntil: number | undefined;
    if (st.failures >= MAX_FAILURES) {
      lockedUntil = now + LOCK_MS * 2 ** Math.min(st.lockouts, 10);
      st.lockedUntil = lockedUntil;
      st.lockouts += 1;
      st.failures = 0;
    }
    this.#remember(this.#names, username, st);
    return { failed: st.failures, ...(lockedUntil !== undefined ? { lockedUntil } : {}) };
  }

  success(username: string): void {
    this.#names.delete(username);
  }

  #remember<V>(map: Map<string, V>, key: string, v: V): void {
    map.delete(key);
    map.set(key, v);
    if (map.size > MAX_TRACKED) map.delete(map.keys().next().value as string);
  }
}
