/**
 * A token bucket: `rate` tokens every `perMs` milliseconds (a second unless said), at most
 * `burst` banked. Every rate limit in Talon that lets a short burst through and then holds a
 * steady pace is one of these (a Hand's message quota in the worker and in the kernel, its log
 * rate, login attempts per address, provisioning verifications); there were five hand-written
 * copies, each with its own arithmetic.
 *
 * The clock is the caller's: every method that refills takes `now` (ms, any monotonic-ish
 * origin), so tests drive it with a fake clock and hot paths pass the `now` they already read.
 * A clock that goes backwards refills nothing and restarts the count from the earlier time
 * (it never takes tokens away). No method allocates, so a bucket can sit on a per-message path.
 */
export interface TokenBucketOptions {
  /** tokens added every `perMs` (≥ 0) */
  rate: number;
  /** the most tokens the bucket holds (default `rate`) */
  burst?: number;
  /** the refill period for `rate`, ms (default 1000: `rate` is per second) */
  perMs?: number;
  /** the tokens at the start (default `burst`: a fresh bucket is full) */
  tokens?: number;
  /** when the bucket starts (ms on the caller's clock) */
  now: number;
}

export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  readonly perMs: number;
  #tokens: number;
  #at: number;

  constructor(opts: TokenBucketOptions) {
    if (!(opts.rate >= 0) || !Number.isFinite(opts.rate))
      throw new RangeError(`a token bucket's rate must be a finite number ≥ 0, got ${opts.rate}`);
    this.rate = opts.rate;
    this.burst = opts.burst ?? opts.rate;
    this.perMs = opts.perMs ?? 1000;
    if (!(this.burst >= 0)) throw new RangeError(`a token bucket's burst must be ≥ 0, got ${this.burst}`);
    if (!(this.perMs > 0)) throw new RangeError(`a token bucket's period must be > 0 ms, got ${this.perMs}`);
    this.#tokens = Math.min(this.burst, opts.tokens ?? this.burst);
    this.#at = opts.now;
  }

  /** Refills up to `now`, then takes `n` tokens if there are that many; false (and nothing taken) if not. */
  take(now: number, n = 1): boolean {
    this.#refill(now);
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /**
   * Takes `n` of the tokens already banked, without looking at the clock; false when there are
   * not that many (then call `take(now)`, which refills). For paths where reading the clock per
   * message costs more than the check: the time not looked at is credited at the next refill,
   * capped at `burst`, so after a pause up to twice `burst` can pass before the steady pace
   * holds (the banked tokens, then one full refill).
   */
  takeBanked(n = 1): boolean {
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** The tokens there are at `now` (fractional: 0.5 means half a token's wait is left). */
  available(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** How long from `now` until `n` tokens are there, ms (0 when they are; Infinity when they never will be). */
  waitMs(now: number, n = 1): number {
    this.#refill(now);
    if (this.#tokens >= n) return 0;
    if (n > this.burst || this.rate === 0) return Infinity;
    return ((n - this.#tokens) * this.perMs) / this.rate;
  }

  #refill(now: number): void {
    const elapsed = now - this.#at;
    if (elapsed > 0) {
      // (elapsed * rate) / perMs: exact for whole ms and whole rates, unlike elapsed / perMs * rate
      const t = this.#tokens + (elapsed * this.rate) / this.perMs;
      this.#tokens = t < this.burst ? t : this.burst;
    }
    this.#at = now;
  }
}
