/**
 * A circuit breaker per LLM provider, used by the router (./router.ts).
 *
 *   closed     calls go through; `failureThreshold` consecutive failures open it, and so does
 *              one 429 (LLM_RATE_LIMITED) or one 5xx (LLM_UNAVAILABLE with details.status ≥ 500)
 *   open       calls are refused until `retryAt`: the cool-down (with ± jitter, doubled after a
 *              failed probe up to `maxCoolDownMs`), `authCoolDownMs` after LLM_AUTH / LLM_BILLING,
 *              and never earlier than the server's Retry-After (error.details.retryAfterMs)
 *   half-open  once `retryAt` passed, exactly one caller gets the probe; its success closes the
 *              breaker, its failure opens it again with a longer cool-down
 *
 * LLM_BAD_REQUEST is the caller's fault, not the provider's: it neither counts nor opens.
 * Time and randomness come from the injected clock and random.
 */
import type { Clock, Random } from '../core/clock.ts';
import { TalonError, type ErrorCode } from '../core/errors.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** consecutive failures that open the breaker (default 3) */
  failureThreshold: number;
  /** first cool-down, ms (default 5 000) */
  coolDownMs: number;
  /** cap of the doubling cool-down, ms (default 120 000) */
  maxCoolDownMs: number;
  /** cool-down after LLM_AUTH / LLM_BILLING, ms (default 600 000): a key or an invoice, not a blip */
  authCoolDownMs: number;
  /** cool-downs vary by ± this fraction (default 0.2) */
  jitter: number;
}

export const DEFAULT_BREAKER: BreakerOptions = {
  failureThreshold: 3,
  coolDownMs: 5_000,
  maxCoolDownMs: 120_000,
  authCoolDownMs: 600_000,
  jitter: 0.2,
};

/** a Retry-After beyond this is treated as this (a day) */
const MAX_RETRY_AFTER_MS = 86_400_000;

export interface BreakerSnapshot {
  state: BreakerState;
  consecutiveFailures: number;
  /** ms epoch before which no call is made; null when closed */
  retryAt: number | null;
  lastError: { code: ErrorCode; message: string; at: number } | null;
}

export class CircuitBreaker {
  readonly #opts: BreakerOptions;
  readonly #clock: Clock;
  readonly #random: Random;
  #open = false;
  #retryAt = 0;
  #probing = false;
  #failures = 0;
  /** how many times it opened in a row without a success in between (doubles the cool-down) */
  #trips = 0;
  #lastError: BreakerSnapshot['lastError'] = null;

  constructor(opts: Partial<BreakerOptions> = {}, clock: Clock, random: Random) {
    this.#opts = { ...DEFAULT_BREAKER, ...opts };
    this.#clock = clock;
    this.#random = random;
  }

  get state(): BreakerState {
    if (!this.#open) return 'closed';
    return this.#probing || this.#clock.now() >= this.#retryAt ? 'half-open' : 'open';
  }

  /** ms epoch of the earliest call, null when closed; while a probe is in flight, now */
  get retryAt(): number | null {
    if (!this.#open) return null;
    return this.#probing ? this.#clock.now() : this.#retryAt;
  }

  /** whether `acquire()` would let a call through now (no side effect) */
  available(): boolean {
    return !this.#open || (!this.#probing && this.#clock.now() >= this.#retryAt);
  }

  /**
   * Asks to make a call. True: go ahead, and report the outcome with success(), failure() or
   * release(). When half-open this takes the single probe slot.
   */
  acquire(): boolean {
    if (!this.#open) return true;
    if (this.#probing || this.#clock.now() < this.#retryAt) return false;
    this.#probing = true;
    return true;
  }

  success(): void {
    this.#open = false;
    this.#probing = false;
    this.#failures = 0;
    this.#trips = 0;
    this.#retryAt = 0;
  }

  /** the call ended without saying anything about the provider (the caller aborted, a bad request) */
  release(): void {
    this.#probing = false;
  }

  failure(err: unknown): void {
    const e = TalonError.from(err);
    const now = this.#clock.now();
    this.#lastError = { code: e.code, message: e.message, at: now };
    if (e.code === 'LLM_BAD_REQUEST') return this.release();
    this.#failures++;
    const details = (e.details ?? {}) as { status?: unknown; retryAfterMs?: unknown };
    const retryAfter =
      typeof details.retryAfterMs === 'number' && Number.isFinite(details.retryAfterMs) && details.retryAfterMs >= 0
        ? Math.min(details.retryAfterMs, MAX_RETRY_AFTER_MS)
        : null;
    const serverSide = e.code === 'LLM_RATE_LIMITED' || (typeof details.status === 'number' && details.status >= 500);
    const auth = e.code === 'LLM_AUTH' || e.code === 'LLM_BILLING';
    if (!(this.#probing || auth || serverSide || retryAfter !== null || this.#failures >= this.#opts.failureThreshold))
      return;

    let coolDown: number;
    if (auth) coolDown = this.#jittered(this.#opts.authCoolDownMs);
    else coolDown = this.#jittered(Math.min(this.#opts.maxCoolDownMs, this.#opts.coolDownMs * 2 ** this.#trips));
    // the server said when: honour it exactly rather than guessing on top of it
    if (retryAfter !== null && !auth) coolDown = retryAfter;
    this.#trips++;
    this.#open = true;
    this.#probing = false;
    this.#retryAt = now + coolDown;
  }

  snapshot(): BreakerSnapshot {
    return {
      state: this.state,
      consecutiveFailures: this.#failures,
      retryAt: this.retryAt,
      lastError: this.#lastError,
    };
  }

  #jittered(ms: number): number {
    const j = Math.max(0, Math.min(1, this.#opts.jitter));
    return Math.max(0, Math.round(ms * (1 + j * (2 * this.#random() - 1))));
  }
}
