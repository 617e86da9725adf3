/**
 * Login throttling: per username, 5 failures lock the account for 15 minutes, doubling with
 * each lockout; per client address, a token bucket (10 attempts, one more every 6 s).
 * In memory: a restart clears it (the user record keeps the failure count for display).
 *
 * First-run setup codes: the same bucket per address, and 5 wrong codes lock that address
 * (15 minutes, doubling), never anyone else. Across all addresses, past SETUP_GLOBAL_FREE
 * wrong codes within SETUP_WINDOW_MS every setup attempt first waits (1 s, doubling with
 * each further SETUP_GLOBAL_FREE, at most SETUP_MAX_DELAY_MS): many addresses slow guessing
 * down for everyone, but a right code from a fresh address always gets through.
 */
import type { Clock } from '../../runtime/core/clock.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { TokenBucket } from '../../runtime/core/token-bucket.ts';

export const MAX_FAILURES = 5;
export const LOCK_MS = 15 * 60_000;
const BUCKET = 10;
const REFILL_MS = 6_000;
const MAX_TRACKED = 10_000;
export const SETUP_GLOBAL_FREE = 10;
export const SETUP_WINDOW_MS = 15 * 60_000;
export const SETUP_MAX_DELAY_MS = 10_000;
const SETUP_BASE_DELAY_MS = 1_000;
const setupKey = (ip: string): string => `(setup)@${ip}`;

interface NameState {
  failures: number;
  lockouts: number;
  lockedUntil: number;
}

export class LoginLimiter {
  #clock: Clock;
  #names = new Map<string, NameState>();
  #ips = new Map<string, TokenBucket>();
  /** when the recent wrong setup codes (any address) came, oldest first */
  #setupFailures: number[] = [];

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Throws RATE_LIMITED or LOCKED_OUT (with details.retryAfterSec) before a password is checked. */
  check(username: string, ip: string): void {
    const now = this.#clock.now();
    // one attempt every REFILL_MS, BUCKET at most
    const b = this.#ips.get(ip) ?? new TokenBucket({ rate: 1, perMs: REFILL_MS, burst: BUCKET, now });
    if (!b.take(now)) {
      throw new TalonError('RATE_LIMITED', 'too many login attempts from this address; wait and try again', {
        details: { retryAfterSec: Math.ceil(b.waitMs(now) / 1000) },
      });
    }
    this.#remember(this.#ips, ip, b);
    const st = this.#names.get(username);
    if (st && st.lockedUntil > now) {
      throw new TalonError('LOCKED_OUT', `too many failed logins for "${username}"; try again later`, {
        details: { retryAfterSec: Math.ceil((st.lockedUntil - now) / 1000) },
      });
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

  /**
   * Before a setup code is checked: RATE_LIMITED or LOCKED_OUT for this address; otherwise
   * how long to wait first (ms, 0 unless many wrong codes came lately from anywhere).
   */
  setupCheck(ip: string): number {
    try {
      this.check(setupKey(ip), ip);
    } catch (err) {
      const e = err as TalonError;
      if (e.code !== 'LOCKED_OUT') throw e;
      throw new TalonError(
        'LOCKED_OUT',
        "too many wrong setup codes from this address; try again later (the code is in the console log and in the data folder's setup-code file)",
        { details: e.details },
      );
    }
    const n = this.#recentSetupFailures();
    if (n <= SETUP_GLOBAL_FREE) return 0;
    return Math.min(
      SETUP_MAX_DELAY_MS,
      SETUP_BASE_DELAY_MS * 2 ** Math.min(Math.floor((n - SETUP_GLOBAL_FREE - 1) / SETUP_GLOBAL_FREE), 20),
    );
  }

  /** a wrong setup code from `ip`: counts toward its lockout and the global delay */
  setupFailure(ip: string): { failed: number; lockedUntil?: number } {
    this.#setupFailures.push(this.#clock.now());
    if (this.#setupFailures.length > MAX_TRACKED) this.#setupFailures.shift();
    return this.failure(setupKey(ip));
  }

  #recentSetupFailures(): number {
    const since = this.#clock.now() - SETUP_WINDOW_MS;
    let drop = 0;
    while (drop < this.#setupFailures.length && this.#setupFailures[drop]! < since) drop++;
    if (drop > 0) this.#setupFailures.splice(0, drop);
    return this.#setupFailures.length;
  }

  #remember<V>(map: Map<string, V>, key: string, v: V): void {
    map.delete(key);
    map.set(key, v);
    if (map.size > MAX_TRACKED) map.delete(map.keys().next().value as string);
  }
}
