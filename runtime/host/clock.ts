/**
 * Whether the wall clock can be trusted, for Hands that act at wall-clock times (a cron job at 03:00 must not run
 * at "03:00" of 1 January 1970). A board without a real-time clock boots in 1970 or at its last shutdown time, and
 * jumps when NTP syncs. The clock counts as synchronised when systemd-timesyncd says so
 * (/run/systemd/timesync/synchronized exists), else when it reads later than this build was made.
 *
 * Reached by Hands as the kernel service `clock.status` (no grant needed: it tells the time's quality, nothing else).
 */
import { existsSync } from 'node:fs';
import { BUILD_TIME } from '../version.ts';
import type { KernelService } from '../supervisor/types.ts';

export const TIMESYNC_FLAG = '/run/systemd/timesync/synchronized';

export interface ClockStatus {
  now: number;
  synced: boolean;
  /** `timesyncd` (the flag file), `build-time` (later than the build), `unsynchronised` */
  source: 'timesyncd' | 'build-time' | 'unsynchronised';
  buildTime: number;
}

export function clockStatus(opts: { flag?: string; buildTime?: number; now?: () => number } = {}): ClockStatus {
  const now = (opts.now ?? Date.now)();
  const buildTime = opts.buildTime ?? BUILD_TIME;
  if (existsSync(opts.flag ?? TIMESYNC_FLAG)) return { now, synced: true, source: 'timesyncd', buildTime };
  if (now > buildTime) return { now, synced: true, source: 'build-time', buildTime };
  return { now, synced: false, source: 'unsynchronised', buildTime };
}

export function clockServices(): Record<string, KernelService> {
  return { 'clock.status': async () => clockStatus() };
}
