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
/**
 * croner (10 and 11) gives every pattern a 10,000-entry year table (~80 KB of heap): 10,000 jobs with 4,000 distinct
 * expressions held 340 MB. So the cache keeps the recently used ones (an expression parsed again costs ~80 µs),
 * and a pattern whose years are `*` shares one table.
 */
const MAX_CACHED = 256;
const ALL_YEARS: number[] = [];

/** a paused Cron for `expr` in `timezone`, shared */
export function cronOf(expr: string, timezone?: string): Cron {
  const key = `${timezone ?? ''}\u0000${expr}`;
  let c = cache.get(key);
  if (c) {
    cache.delete(key);
    cache.set(key, c);
    return c;
  }
  c = new Cron(expr, { timezone, paused: true });
  type Internals = { _states?: { pattern?: { starYear?: boolean; year?: number[] } } };
  const pattern = (c as unknown as Internals)._states?.pattern;
  if (pattern?.starYear && Array.isArray(pattern.year) && pattern.year.every((y) => y === 1)) {
    if (ALL_YEARS.length !== pattern.year.length) ALL_YEARS.splice(0, ALL_YEARS.length, ...pattern.year);
    pattern.year = ALL_YEARS;
  }
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
  cache.set(key, c);
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
