/**
 * Restart policy for one Hand: exponential backoff with jitter, and a crash-loop window.
 * The delay grows with the number of crashes still inside the window, so a Hand that ran
 * cleanly for a window starts again from `initialMs`. `restarts` crashes within `windowMs`
 * park the Hand as failed. Time and randomness are injected.
 */
import type { Random } from '../core/clock.ts';
import { systemRandom } from '../core/clock.ts';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0..1: the delay is spread uniformly over ±jitter of itself */
  jitter: number;
}

export interface CrashLoopOptions {
  /** this many crashes within windowMs = crash loop */
  restarts: number;
  windowMs: number;
}

export type CrashDecision =
  | { action: 'restart'; delayMs: number; crashesInWindow: number }
  | { action: 'fail'; crashesInWindow: number };

export class RestartPolicy {
  readonly backoff: BackoffOptions;
  readonly crashLoop: CrashLoopOptions;
  #random: Random;
  #crashes: number[] = [];

  constructor(backoff: BackoffOptions, crashLoop: CrashLoopOptions, random: Random = systemRandom) {
    this.backoff = backoff;
    this.crashLoop = crashLoop;
    this.#random = random;
  }

  /** delay before restart number `attempt` (0-based), jitter applied */
  delay(attempt: number): number {
    const { initialMs, maxMs, factor, jitter } = this.backoff;
    const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt));
    const spread = base * Math.min(1, Math.max(0, jitter)) * (this.#random() * 2 - 1);
    return Math.max(0, Math.round(base + spread));
  }

  /** record a crash at `now` and decide: restart after a delay, or park as failed */
  crash(now: number): CrashDecision {
    this.#crashes = this.#crashes.filter((t) => now - t < this.crashLoop.windowMs);
    this.#crashes.push(now);
    const n = this.#crashes.length;
    if (n >= Math.max(1, this.crashLoop.restarts)) return { action: 'fail', crashesInWindow: n };
    return { action: 'restart', delayMs: this.delay(n - 1), crashesInWindow: n };
  }

  /** forget past crashes (an operator started the Hand by hand) */
  reset(): void {
    this.#crashes = [];
  }
}
