/**
 * When a trigger fires: the next wall-clock times of a cron or `at` trigger, and which missed times a
 * catch-up policy runs after downtime. Cron objects are cached per expression and zone (10,000 jobs share
 * few distinct expressions), and a catch-up walks back from the newest time, so a `* * * * * *` cron that was
 * down for a month costs at most `max` steps, never millions.
 */
import { Cron } from 'croner';
import { parseDuration, parseInstant } from './jobs.ts';
import type { Policy, Trigger } from './types.ts';

/** default catch-up window: one day */
export const DEFAULT_CATCHUP_WINDOW_MS = 86_400_000;
/** default cap of `all` */
export const DEFAULT_CATCHUP_MAX = 10;

const cache = new Map<string, Cron>();
const MAX_CACHED = 50_000;

/** a paused Cron for `expr` in `timezone`, shared */
export function cronOf(expr: string, timezone?: string): Cron {
  const key = `${timezone ?? ''}\u0000${expr}`;
  let c = cache.get(key);
  if (!c) {
    if (cache.size >= MAX_CACHED) cache.clear();
    c = new Cron(expr, { timezone, paused: true });
    cache.set(key, c);
  }
  return c;
}

/** is this a wall-clock trigger (cron or `at`)? */
export function isWallTrigger(t: Trigger): t is Extract<Trigger, { cron: string }> | Extract<Trigger, { at: unknown }> {
  return 'cron' in t || 'at' in t;
}

/** the next `n` times strictly after `afterWall` (ms epoch), for cron and `at`; [] for other triggers */
export function nextTimes(trigger: Trigger, afterWall: number, n: number, tz?: string): number[] {
  const out: number[] = [];
  if ('cron' in trigger) {
    const c = cronOf(trigger.cron, trigger.timezone ?? tz);
    let d = new Date(afterWall);
    while (out.length < n) {
      const r = c.nextRun(d);
      if (!r) break;
      out.push(r.getTime());
      d = r;
    }
  } else if ('at' in trigger) {
    const t = parseInstant(trigger.at, 'trigger.at');
    if (t > afterWall && n > 0) out.push(t);
  }
  return out;
}

/**
 * The times in (fromExclusive, toInclusive] a catch-up runs, oldest first: `none` → [], `last` → the newest,
 * `all` → every one at most `window` before `toInclusive`, at most `max` of them (the newest).
 */
export function missedTimes(
  trigger: Trigger,
  fromExclusive: number,
  toInclusive: number,
  catchUp?: Policy['catchUp'],
  tz?: string,
): number[] {
  const mode = catchUp?.mode ?? 'last';
  if (mode === 'none' || toInclusive <= fromExclusive) return [];
  const window =
    catchUp?.window === undefined ? DEFAULT_CATCHUP_WINDOW_MS : parseDuration(catchUp.window, 'policy.catchUp.window');
  const max = mode === 'last' ? 1 : (catchUp?.max ?? DEFAULT_CATCHUP_MAX);
  const lo = Math.max(fromExclusive, toInclusive - window - 1); // times > lo
  const out: number[] = [];
  if ('cron' in trigger) {
    const c = cronOf(trigger.cron, trigger.timezone ?? tz);
    // croner's previousRuns excludes the reference's second: start one second past `toInclusive`
    let ref = new Date(Math.floor(toInclusive / 1000) * 1000 + 1000);
    while (out.length < max) {
      const r = c.previousRuns(1, ref)[0];
      if (!r) break;
      const t = r.getTime();
      if (t <= lo) break;
      if (t <= toInclusive) out.push(t);
      ref = r;
    }
  } else if ('at' in trigger) {
    const t = parseInstant(trigger.at, 'trigger.at');
    if (t > lo && t <= toInclusive) out.push(t);
  }
  return out.reverse();
}
