/**
 * Can the wall clock be trusted? A board without a real-time clock (a Raspberry Pi) boots in 1970 or at its last
 * shutdown time and keeps that until NTP synchronises it, so cron and `at` triggers wait until:
 *   - the wall clock is later than this build was made (a clock before the build is certainly wrong), and
 *   - the kernel does not report the clock unsynchronised (`clock.status`: systemd-timesyncd's
 *     /run/systemd/timesync/synchronized; `{ synced, source }`). A kernel without the service, or a Hand not
 *     allowed to call it, leaves the build-time check alone.
 * The kernel is asked at most every `pollMs` (10 s); clockSynced() itself is synchronous and answers from the cache.
 */

/** when no build time is baked in: a wall clock before this is wrong (kept in one place) */
export const BUILD_TIME_FALLBACK = Date.parse('2026-12-01T00:00:00Z');

export interface ClockStatus {
  synced: boolean;
  source: string;
  /** the build's time, when the kernel tells it (ms epoch) */
  buildTime?: number;
}

export interface ClockWatchOptions {
  /** the kernel service: ctx.call('clock.status') */
  status(): Promise<unknown>;
  wall?: () => number;
  mono?: () => number;
  buildTime?: number;
  pollMs?: number;
}

export class ClockWatch {
  #o: Required<Omit<ClockWatchOptions, 'buildTime'>>;
  #buildTime: number;
  /** undefined: not known (no answer yet, or the kernel has no such service) */
  #synced: boolean | undefined;
  #source = 'build-time';
  #askedAt = Number.NEGATIVE_INFINITY;
  #inflight = false;
  /** the kernel has no clock.status (or refuses it): stop asking */
  #unavailable = false;

  constructor(o: ClockWatchOptions) {
    this.#o = {
      status: o.status,
      wall: o.wall ?? Date.now,
      mono: o.mono ?? (() => performance.now()),
      pollMs: o.pollMs ?? 10_000,
    };
    this.#buildTime = o.buildTime ?? BUILD_TIME_FALLBACK;
  }

  /** true when the wall clock is past the build time and not known to be unsynchronised */
  synced(): boolean {
    this.#poll();
    if (this.#o.wall() < this.#buildTime) return false;
    return this.#synced !== false;
  }

  /** where the answer comes from: `build-time` alone, or the kernel's source (`systemd-timesyncd`) */
  get source(): string {
    return this.#source;
  }

  /** asks the kernel now (start() awaits it so the first answer is known before the engine starts) */
  async refresh(): Promise<void> {
    if (this.#unavailable || this.#inflight) return;
    this.#inflight = true;
    this.#askedAt = this.#o.mono();
    try {
      const s = (await this.#o.status()) as Partial<ClockStatus> | null;
      if (s && typeof s.synced === 'boolean') {
        this.#synced = s.synced;
        this.#source = typeof s.source === 'string' ? s.source : 'kernel';
        if (typeof s.buildTime === 'number' && Number.isFinite(s.buildTime)) this.#buildTime = s.buildTime;
      }
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      // no such service, or not granted: the build-time check alone decides from now on
      if (code === 'NOT_FOUND' || code === 'CAPABILITY_DENIED' || code === 'BAD_REQUEST') this.#unavailable = true;
    } finally {
      this.#inflight = false;
    }
  }

  #poll(): void {
    if (this.#unavailable || this.#inflight) return;
    // known wrong: ask again soon, so a job follows NTP within seconds
    const every = this.#synced === false ? Math.min(this.#o.pollMs, 2000) : this.#o.pollMs;
    if (this.#o.mono() - this.#askedAt < every) return;
    void this.refresh();
  }
}
