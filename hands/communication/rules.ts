/**
 * The Communication Hand's routing settings, checked: the `rules`, `people`, `default`, `quietHours`, `digestAt` and
 * `dedupWindowMs` parts of the Hand's settings (./settings.ts hands them over with the configured channel names) become
 * a Routing that ./router.ts runs. Pure: no I/O, no clock of its own (instants are passed in).
 *
 * parseRouting never throws on a user's mistake: each one is a problem naming its path and what to write instead, and
 * the part it spoils is left out (a bad rule is dropped, the other rules work; a bad `default` entry is dropped, the
 * others stay). Rule names `default` and `direct` are reserved: they name the default route and a notification's
 * explicit `to` in route ids (`default>ops-telegram`, `direct>ops-mail:bob@example.com`).
 *
 * Also here, because the rules and the router both need them: times of day in IANA zones through Intl.DateTimeFormat
 * (zonedParts, nextOccurrence, nextFullHour). "The next HH:MM in zone Z" is one instant per local date: on a
 * spring-forward date whose HH:MM falls in the gap it is the first valid instant after (the transition itself), on a
 * fall-back date whose HH:MM happens twice it is the first occurrence.
 */
import { PRIORITIES, type Priority } from './channels/types.ts';
import type { Notification, Target } from './types.ts';
import { topicMatches, validateFilter } from '../../runtime/core/topics.ts';

/** the route name for notifications no rule matched */
export const DEFAULT_RULE = 'default';
/** the route name for notifications with an explicit `to` */
export const DIRECT_RULE = 'direct';
export const MAX_REGEX_CHARS = 200;
export const DEFAULT_DEDUP_WINDOW_MS = 600_000;
export const MAX_DEDUP_WINDOW_MS = 7 * 86_400_000;
export const DEFAULT_DIGEST_AT = '08:00';
const NAME = /^[a-z0-9._-]{1,64}$/;
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Day = (typeof DAYS)[number];

export interface RateLimit {
  count: number;
  perMs: number;
}

/** a time window: minutes of the day in `timezone` (already resolved to the device's zone when none was given) */
export interface TimeWindow {
  /** minutes after local midnight, inclusive */
  from: number;
  /** minutes after local midnight, exclusive; from > to wraps over midnight */
  to: number;
  /** days the window starts on (a window over midnight that starts on Friday covers Saturday's early hours too) */
  days?: Day[];
  timezone: string;
}

/** what a rule matches: every given field must match (AND) */
export interface Match {
  /** globs with `*`, any of them */
  source?: string[];
  /** MQTT filters on the notification's topic, any of them */
  topic?: string[];
  /** the priorities that match ("high+" is already expanded to high, critical) */
  priority?: Priority[];
  /** all of these tags */
  tags?: string[];
  /** on `title + "\n" + text` */
  text?: RegExp;
  time?: TimeWindow;
}

export interface EscalationStep {
  /** people, channels, channel:address */
  to: string[];
  afterMs: number;
}

export interface Rule {
  name: string;
  /** absent: everything */
  match?: Match;
  /** as written: people, channels, channel:address */
  to: string[];
  /** `to` expanded and deduplicated; empty: matched notifications go nowhere (a mute rule) */
  targets: Target[];
  /** absent: `low` waits for the hourly digest, the rest go now; `none`: nothing is digested */
  digest?: 'hourly' | 'daily' | 'none';
  rateLimit?: RateLimit;
  escalate?: { steps: EscalationStep[] };
  continue: boolean;
}

export interface QuietHours {
  from: number;
  to: number;
  timezone: string;
}

export interface Routing {
  rules: Rule[];
  rulesByName: ReadonlyMap<string, Rule>;
  channels: ReadonlySet<string>;
  /** a person's name → their targets */
  people: ReadonlyMap<string, Target[]>;
  /** where a notification no rule matched goes (empty: unrouted) */
  default: Target[];
  quietHours?: QuietHours;
  /** minutes after local midnight in digestZone */
  digestAt: number;
  /** quietHours' zone, else the device's; hourly digests go at its full hours */
  digestZone: string;
  dedupWindowMs: number;
  /** per channel limits (the channels' own `rateLimit` settings), across all routes to that channel */
  channelRateLimits: ReadonlyMap<string, RateLimit>;
}

export interface RawRouting {
  rules?: unknown;
  people?: unknown;
  default?: unknown;
  quietHours?: unknown;
  digestAt?: unknown;
  dedupWindowMs?: unknown;
}

export interface ParseOptions {
  /** the device's IANA zone (default: the process's) */
  timezone?: string;
  /** the channels' own rate limits, by channel name */
  channelRateLimits?: ReadonlyMap<string, RateLimit> | Record<string, RateLimit>;
}

// ---------------------------------------------------------------------------------------------------------------------
// time zones

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    });
    formatters.set(zone, f);
  }
  return f;
}

export function isTimeZone(zone: string): boolean {
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

export function deviceTimeZone(): string {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

export interface ZonedParts {
  year: number;
  /** 1–12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  weekday: Day;
}

/** the wall-clock time of instant `t` in `zone` */
export function zonedParts(t: number, zone: string): ZonedParts {
  const p: Record<string, string> = {};
  for (const { type, value } of formatter(zone).formatToParts(new Date(t))) p[type] = value;
  return {
    year: Number(p.year),
    month: Number(p.month),
    day: Number(p.day),
    hour: Number(p.hour) % 24,
    minute: Number(p.minute),
    second: Number(p.second),
    weekday: (p.weekday ?? 'Sun').toLowerCase().slice(0, 3) as Day,
  };
}

/** the wall clock of `t` in `zone` as if it were UTC (ms, whole seconds) */
function wall(t: number, zone: string): number {
  const p = zonedParts(t, zone);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

/** `zone`'s offset from UTC at instant `t`, in ms */
export function offsetAt(t: number, zone: string): number {
  const s = Math.floor(t / 1000) * 1000;
  return wall(s, zone) - s;
}

/**
 * The instant the local date y-mo-d at `minutes` after midnight happens in `zone`: the first occurrence when it
 * happens twice (fall-back), the first valid instant after when it does not happen (spring-forward gap).
 */
export function localInstant(y: number, mo: number, d: number, minutes: number, zone: string): number {
  const naive = Date.UTC(y, mo - 1, d, 0, minutes);
  const offsets = new Set([
    offsetAt(naive - 86_400_000, zone),
    offsetAt(naive, zone),
    offsetAt(naive + 86_400_000, zone),
  ]);
  const valid = [...offsets].map((o) => naive - o).filter((t) => wall(t, zone) === naive);
  if (valid.length) return Math.min(...valid);
  // a gap: the first instant whose wall clock is at or after `naive` (the transition)
  const sorted = [...offsets].sort((a, b) => a - b);
  let lo = naive - sorted[sorted.length - 1]! - 3_600_000;
  let hi = naive - sorted[0]! + 3_600_000;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (wall(mid, zone) + (mid % 1000) >= naive) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** the next instant strictly after `after` that is `minutes` after local midnight in `zone` (one per local date) */
export function nextOccurrence(minutes: number, zone: string, after: number): number {
  const p = zonedParts(after, zone);
  for (let i = -1; i <= 3; i++) {
    const date = new Date(Date.UTC(p.year, p.month - 1, p.day + i));
    const t = localInstant(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), minutes, zone);
    if (t > after) return t;
  }
  /* c8 ignore next */
  throw new Error(`no ${minutes} minutes after midnight in ${zone} after ${after}`);
}

/** the next full hour of `zone`'s wall clock strictly after `after` (zones are offset in quarter hours) */
export function nextFullHour(after: number, zone: string): number {
  const q = 900_000;
  const base = Math.floor(after / q) * q;
  for (let k = 1; k <= 12; k++) {
    const t = base + k * q;
    const p = zonedParts(t, zone);
    if (p.minute === 0 && p.second === 0) return t;
  }
  /* c8 ignore next */
  return base + 3_600_000;
}

function inWindow(minute: number, from: number, to: number): boolean {
  return from < to ? minute >= from && minute < to : minute >= from || minute < to;
}

/** is `now` within the window (on one of its days)? */
export function inTimeWindow(w: TimeWindow, now: number): boolean {
  const p = zonedParts(now, w.timezone);
  const m = p.hour * 60 + p.minute;
  if (!inWindow(m, w.from, w.to)) return false;
  if (!w.days) return true;
  // the early part of a window over midnight belongs to the day it started on
  let day = DAYS.indexOf(p.weekday);
  if (w.from > w.to && m < w.to) day = (day + 6) % 7;
  return w.days.includes(DAYS[day]!);
}

export function inQuietHours(q: QuietHours, now: number): boolean {
  return inTimeWindow({ from: q.from, to: q.to, timezone: q.timezone }, now);
}

// ---------------------------------------------------------------------------------------------------------------------
// matching and targets

function globRegExp(glob: string): RegExp {
  return new RegExp(
    '^' +
      glob
        .split('*')
        .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*') +
      '$',
    's',
  );
}

const globs = new Map<string, RegExp>();
function globMatches(glob: string, s: string): boolean {
  let re = globs.get(glob);
  if (!re) globs.set(glob, (re = globRegExp(glob)));
  return re.test(s);
}

/** does the rule match notification `n` at `now`? */
export function matches(rule: Rule, n: Notification, now: number): boolean {
  const m = rule.match;
  if (!m) return true;
  if (m.source && !m.source.some((g) => globMatches(g, n.source))) return false;
  if (m.topic && !m.topic.some((f) => topicMatches(f, n.topic))) return false;
  if (m.priority && !m.priority.includes(n.priority)) return false;
  if (m.tags && !m.tags.every((t) => n.tags.includes(t))) return false;
  if (m.text) {
    m.text.lastIndex = 0;
    if (!m.text.test((n.title ?? '') + '\n' + n.text)) return false;
  }
  if (m.time && !inTimeWindow(m.time, now)) return false;
  return true;
}

export function targetKey(t: Target): string {
  return t.to === undefined ? t.channel : `${t.channel}:${t.to}`;
}

/** what one reference names, or why it names nothing */
function resolveRef(
  ref: string,
  channels: ReadonlySet<string>,
  people: ReadonlyMap<string, Target[]>,
): Target[] | string {
  const person = people.get(ref);
  if (person) return person;
  if (channels.has(ref)) return [{ channel: ref }];
  const colon = ref.indexOf(':');
  if (colon > 0) {
    const ch = ref.slice(0, colon);
    const to = ref.slice(colon + 1);
    if (channels.has(ch)) {
      if (!to) return `"${ref}" has no address after the ":"; write ${ch} or ${ch}:ADDRESS`;
      return [{ channel: ch, to }];
    }
    if (people.has(ch)) return `"${ref}": ${ch} is a person, whose addresses are in people; write ${ch}`;
  }
  const list = (xs: Iterable<string>) => [...xs].join(', ') || 'none';
  return `"${ref}" is neither a channel nor a person (channels: ${list(channels)}; people: ${list(people.keys())})`;
}

/** people → their targets, channels → {channel}, `ch:addr` → {channel, to}; unknown references are skipped; deduped */
export function expandTargets(refs: readonly string[], routing: Pick<Routing, 'channels' | 'people'>): Target[] {
  const out: Target[] = [];
  const seen = new Set<string>();
  for (const ref of refs) {
    const r = resolveRef(ref, routing.channels, routing.people);
    if (typeof r === 'string') continue;
    for (const t of r) {
      const k = targetKey(t);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(t);
      }
    }
  }
  return out;
}

/** the references expandTargets would skip, each with what is wrong (for checking a notification's `to`) */
export function unknownRefs(refs: readonly string[], routing: Pick<Routing, 'channels' | 'people'>): string[] {
  const out: string[] = [];
  for (const ref of refs) {
    const r = resolveRef(ref, routing.channels, routing.people);
    if (typeof r === 'string') out.push(r);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// parsing

const q = (v: unknown): string => JSON.stringify(v) ?? String(v);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownFields(
  v: Record<string, unknown>,
  known: readonly string[],
  path: string,
  problems: string[],
): boolean {
  let ok = true;
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) {
      problems.push(`${path}.${k}: unknown field; use ${known.slice(0, -1).join(', ')} or ${known.at(-1)}`);
      ok = false;
    }
  }
  return ok;
}

/** "HH:MM" → minutes after midnight, or undefined after recording the problem */
function timeOfDay(v: unknown, path: string, problems: string[]): number | undefined {
  const m = typeof v === 'string' ? /^(\d{1,2}):(\d{2})$/.exec(v) : null;
  if (m && Number(m[1]) < 24 && Number(m[2]) < 60) return Number(m[1]) * 60 + Number(m[2]);
  problems.push(`${path}: ${q(v)} is not a time of day; write "HH:MM" from "00:00" to "23:59"`);
  return undefined;
}

function zoneOf(v: unknown, fallback: string, path: string, problems: string[]): string | undefined {
  if (v === undefined) return fallback;
  if (typeof v === 'string' && isTimeZone(v)) return v;
  problems.push(`${path}: ${q(v)} is not a known IANA time zone; write one such as "Europe/Berlin" or "UTC"`);
  return undefined;
}

/** a string or a list of non-empty strings */
function stringList(v: unknown, path: string, what: string, problems: string[]): string[] | undefined {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string' && x.length > 0)) {
    problems.push(`${path}: ${q(v)} is not ${what}; write one as a string or several as a list of strings`);
    return undefined;
  }
  return list as string[];
}

const FULL_DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** `mon` or `Monday` → `mon` */
function dayOf(d: string): Day | undefined {
  const l = d.toLowerCase();
  const i = DAYS.indexOf(l as Day);
  if (i >= 0) return DAYS[i];
  const j = FULL_DAYS.indexOf(l);
  return j >= 0 ? DAYS[j] : undefined;
}

function parseWindow(v: unknown, path: string, zone: string, problems: string[]): TimeWindow | undefined {
  if (!isObject(v)) {
    problems.push(`${path}: write { from: "HH:MM", to: "HH:MM", days: [mon, …], timezone: "Europe/Berlin" }`);
    return undefined;
  }
  const before = problems.length;
  unknownFields(v, ['from', 'to', 'days', 'timezone'], path, problems);
  const from = timeOfDay(v.from, `${path}.from`, problems);
  const to = timeOfDay(v.to, `${path}.to`, problems);
  if (from !== undefined && from === to)
    problems.push(`${path}: from and to are both ${q(v.from)}; leave the window out to mean the whole day`);
  const timezone = zoneOf(v.timezone, zone, `${path}.timezone`, problems);
  let days: Day[] | undefined;
  if (v.days !== undefined) {
    const list = Array.isArray(v.days) ? v.days : [v.days];
    days = [];
    list.forEach((d, i) => {
      const day = typeof d === 'string' ? dayOf(d) : undefined;
      if (day) days!.push(day);
      else problems.push(`${path}.days[${i}]: ${q(d)} is not a day; write mon, tue, wed, thu, fri, sat or sun`);
    });
    if (list.length === 0) problems.push(`${path}.days: is empty; list days such as [mon, tue] or leave days out`);
  }
  if (problems.length > before || from === undefined || to === undefined || timezone === undefined) return undefined;
  return days ? { from, to, days, timezone } : { from, to, timezone };
}

function parsePriority(v: unknown, path: string, problems: string[]): Priority[] | undefined {
  const bad = (x: unknown) =>
    problems.push(`${path}: ${q(x)} is not a priority; use low, normal, high, critical or "high+"`);
  if (typeof v === 'string') {
    const plus = v.endsWith('+');
    const p = (plus ? v.slice(0, -1) : v) as Priority;
    const i = PRIORITIES.indexOf(p);
    if (i < 0) return void bad(v);
    return plus ? PRIORITIES.slice(i) : [p];
  }
  if (!Array.isArray(v) || v.length === 0) return void bad(v);
  const out: Priority[] = [];
  let ok = true;
  v.forEach((x, i) => {
    if (PRIORITIES.includes(x as Priority)) out.push(x as Priority);
    else {
      ok = false;
      problems.push(`${path}[${i}]: ${q(x)} is not a priority; use low, normal, high, critical or "high+"`);
    }
  });
  return ok ? out : undefined;
}

/** `(?i)` prefix: case-insensitive; at most MAX_REGEX_CHARS */
export function compileText(v: unknown, path: string, problems: string[]): RegExp | undefined {
  if (typeof v !== 'string' || v.length === 0) {
    problems.push(`${path}: ${q(v)} is not a regular expression; write one as a string, "(?i)…" for any case`);
    return undefined;
  }
  if (v.length > MAX_REGEX_CHARS) {
    problems.push(`${path}: the regular expression is ${v.length} characters; write at most ${MAX_REGEX_CHARS}`);
    return undefined;
  }
  const insensitive = v.startsWith('(?i)');
  try {
    return new RegExp(insensitive ? v.slice(4) : v, insensitive ? 'i' : '');
  } catch (err) {
    problems.push(`${path}: ${q(v)} is not a valid regular expression (${(err as Error).message}); fix or quote it`);
    return undefined;
  }
}

function parseMatch(v: unknown, path: string, zone: string, problems: string[]): Match | undefined {
  if (!isObject(v)) {
    problems.push(`${path}: write an object with source, topic, priority, tags, text or time (or leave match out)`);
    return undefined;
  }
  const before = problems.length;
  unknownFields(v, ['source', 'topic', 'priority', 'tags', 'text', 'time'], path, problems);
  const m: Match = {};
  if (v.source !== undefined) {
    const s = stringList(v.source, `${path}.source`, 'a source glob', problems);
    if (s) m.source = s;
  }
  if (v.topic !== undefined) {
    const t = stringList(v.topic, `${path}.topic`, 'an MQTT topic filter', problems);
    if (t) {
      t.forEach((f, i) => {
        try {
          validateFilter(f);
        } catch (err) {
          const p = typeof v.topic === 'string' ? `${path}.topic` : `${path}.topic[${i}]`;
          problems.push(`${p}: ${(err as Error).message}; write a filter such as "alerts/#" or "notify/+"`);
        }
      });
      m.topic = t;
    }
  }
  if (v.priority !== undefined) {
    const p = parsePriority(v.priority, `${path}.priority`, problems);
    if (p) m.priority = p;
  }
  if (v.tags !== undefined) {
    const t = stringList(v.tags, `${path}.tags`, 'a tag', problems);
    if (t) m.tags = t;
  }
  if (v.text !== undefined) {
    const re = compileText(v.text, `${path}.text`, problems);
    if (re) m.text = re;
  }
  if (v.time !== undefined) {
    const w = parseWindow(v.time, `${path}.time`, zone, problems);
    if (w) m.time = w;
  }
  return problems.length > before ? undefined : m;
}

function parseRateLimit(v: unknown, path: string, problems: string[]): RateLimit | undefined {
  const ok =
    isObject(v) &&
    Object.keys(v).every((k) => k === 'count' || k === 'perMs') &&
    Number.isInteger(v.count) &&
    (v.count as number) >= 1 &&
    Number.isInteger(v.perMs) &&
    (v.perMs as number) >= 1000;
  if (ok) return { count: v.count as number, perMs: v.perMs as number };
  problems.push(`${path}: ${q(v)} is not a rate limit; write { count: 5, perMs: 600000 } (count ≥ 1, perMs ≥ 1000)`);
  return undefined;
}

/** references: each must name a channel, a person or channel:address */
function parseRefs(
  v: unknown,
  path: string,
  routing: Pick<Routing, 'channels' | 'people'>,
  problems: string[],
  allowEmpty: boolean,
): { refs: string[]; bad: boolean } | undefined {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || (!allowEmpty && list.length === 0)) {
    problems.push(`${path}: ${q(v)} is not a list of targets; write people, channels or channel:address, e.g. [alice]`);
    return undefined;
  }
  const refs: string[] = [];
  let bad = false;
  list.forEach((x, i) => {
    const p = Array.isArray(v) ? `${path}[${i}]` : path;
    if (typeof x !== 'string' || !x) {
      problems.push(`${p}: ${q(x)} is not a target; write a person, a channel or channel:address`);
      bad = true;
      return;
    }
    const r = resolveRef(x, routing.channels, routing.people);
    if (typeof r === 'string') {
      problems.push(`${p}: ${r}`);
      bad = true;
    } else refs.push(x);
  });
  return { refs, bad };
}

function parseEscalate(
  v: unknown,
  path: string,
  routing: Pick<Routing, 'channels' | 'people'>,
  problems: string[],
): { steps: EscalationStep[] } | undefined {
  const form = 'write { steps: [ { to: [bob], afterMin: 10 } ] }';
  if (!isObject(v) || !Array.isArray(v.steps) || v.steps.length === 0) {
    problems.push(`${path}: ${q(v)} is not an escalation; ${form}`);
    return undefined;
  }
  const before = problems.length;
  unknownFields(v, ['steps'], path, problems);
  const steps: EscalationStep[] = [];
  v.steps.forEach((s, i) => {
    const p = `${path}.steps[${i}]`;
    if (!isObject(s)) return void problems.push(`${p}: ${q(s)} is not a step; ${form}`);
    unknownFields(s, ['to', 'afterMin'], p, problems);
    const refs = parseRefs(s.to, `${p}.to`, routing, problems, false);
    if (typeof s.afterMin !== 'number' || !(s.afterMin > 0) || !Number.isFinite(s.afterMin))
      problems.push(`${p}.afterMin: ${q(s.afterMin)} is not a number of minutes; write one above 0, e.g. 10`);
    else if (refs) steps.push({ to: refs.refs, afterMs: Math.round(s.afterMin * 60_000) });
  });
  return problems.length > before ? undefined : { steps };
}

function parseRule(
  v: unknown,
  path: string,
  routing: Pick<Routing, 'channels' | 'people'>,
  zone: string,
  names: Set<string>,
  problems: string[],
): Rule | undefined {
  if (!isObject(v)) {
    problems.push(`${path}: write a rule as { name: …, match: {…}, to: [...] }`);
    return undefined;
  }
  const before = problems.length;
  unknownFields(v, ['name', 'match', 'to', 'digest', 'rateLimit', 'escalate', 'continue'], path, problems);
  const name = v.name;
  if (typeof name !== 'string' || !NAME.test(name))
    problems.push(`${path}.name: ${q(name)} is not a rule name; write a unique name of a-z, 0-9, ".", "_" and "-"`);
  else if (name === DEFAULT_RULE || name === DIRECT_RULE)
    problems.push(`${path}.name: "${name}" is reserved (the default and direct routes); choose another name`);
  else if (names.has(name))
    problems.push(`${path}.name: "${name}" is the name of an earlier rule; choose a unique name`);
  else names.add(name);
  const match = v.match === undefined ? undefined : parseMatch(v.match, `${path}.match`, zone, problems);
  const to = v.to === undefined ? undefined : parseRefs(v.to, `${path}.to`, routing, problems, true);
  if (v.to === undefined) problems.push(`${path}.to: missing; write the people or channels it goes to, e.g. [alice]`);
  let digest: Rule['digest'];
  if (v.digest !== undefined) {
    if (v.digest === 'hourly' || v.digest === 'daily' || v.digest === 'none') digest = v.digest;
    else problems.push(`${path}.digest: ${q(v.digest)} is not a digest; write hourly, daily or none`);
  }
  const rateLimit = v.rateLimit === undefined ? undefined : parseRateLimit(v.rateLimit, `${path}.rateLimit`, problems);
  const escalate =
    v.escalate === undefined ? undefined : parseEscalate(v.escalate, `${path}.escalate`, routing, problems);
  if (v.continue !== undefined && typeof v.continue !== 'boolean')
    problems.push(`${path}.continue: ${q(v.continue)} is not true or false; write true to match later rules too`);
  if (problems.length > before || !to) return undefined;
  const rule: Rule = {
    name: name as string,
    to: to.refs,
    targets: expandTargets(to.refs, routing),
    continue: v.continue === true,
  };
  if (match) rule.match = match;
  if (digest) rule.digest = digest;
  if (rateLimit) rule.rateLimit = rateLimit;
  if (escalate) rule.escalate = escalate;
  return rule;
}

function parsePeople(v: unknown, channels: ReadonlySet<string>, problems: string[]): Map<string, Target[]> {
  const people = new Map<string, Target[]>();
  if (v === undefined || v === null) return people;
  if (!isObject(v)) {
    problems.push(`people: write { alice: ["ops-telegram:123456", "ops-mail:alice@example.com"] }`);
    return people;
  }
  const noPeople = new Map<string, Target[]>();
  for (const [name, entries] of Object.entries(v)) {
    const path = `people.${name}`;
    if (!NAME.test(name)) {
      problems.push(`${path}: "${name}" is not a person's name; write one of a-z, 0-9, ".", "_" and "-"`);
      continue;
    }
    if (channels.has(name)) {
      problems.push(`${path}: "${name}" is also a channel's name; give the person another name`);
      continue;
    }
    const list = typeof entries === 'string' ? [entries] : entries;
    if (!Array.isArray(list)) {
      problems.push(`${path}: ${q(entries)} is not a list; write channel or channel:address entries, e.g. [ops-mail]`);
      continue;
    }
    const targets: Target[] = [];
    list.forEach((e, i) => {
      const p = Array.isArray(entries) ? `${path}[${i}]` : path;
      const r = typeof e === 'string' && e ? resolveRef(e, channels, noPeople) : undefined;
      if (r === undefined) problems.push(`${p}: ${q(e)} is not an entry; write channel or channel:address`);
      else if (typeof r === 'string')
        problems.push(
          `${p}: "${e}" is not a channel or channel:address (channels: ${[...channels].join(', ') || 'none'})`,
        );
      else if (!targets.some((t) => targetKey(t) === targetKey(r[0]!))) targets.push(r[0]!);
    });
    people.set(name, targets);
  }
  return people;
}

/** the routing settings checked; every mistake is a problem, and what it spoils is left out */
export function parseRouting(
  raw: RawRouting,
  channelNames: ReadonlySet<string>,
  opts: ParseOptions = {},
): { routing: Routing; problems: string[] } {
  const problems: string[] = [];
  const device = opts.timezone ?? deviceTimeZone();
  const people = parsePeople(raw.people, channelNames, problems);
  const base = { channels: channelNames, people };

  let quietHours: QuietHours | undefined;
  if (raw.quietHours !== undefined && raw.quietHours !== null) {
    const w = parseWindow(raw.quietHours, 'quietHours', device, problems);
    if (w?.days) problems.push('quietHours.days: quiet hours hold every day; leave days out');
    else if (w) quietHours = { from: w.from, to: w.to, timezone: w.timezone };
  }
  const digestZone = quietHours?.timezone ?? device;
  let digestAt = 8 * 60;
  if (raw.digestAt !== undefined && raw.digestAt !== null)
    digestAt = timeOfDay(raw.digestAt, 'digestAt', problems) ?? digestAt;
  let dedupWindowMs = DEFAULT_DEDUP_WINDOW_MS;
  if (raw.dedupWindowMs !== undefined && raw.dedupWindowMs !== null) {
    const d = raw.dedupWindowMs;
    if (typeof d === 'number' && Number.isInteger(d) && d >= 0 && d <= MAX_DEDUP_WINDOW_MS) dedupWindowMs = d;
    else
      problems.push(
        `dedupWindowMs: ${q(d)} is not a window; write milliseconds from 0 (no dedup) to ${MAX_DEDUP_WINDOW_MS}, e.g. 600000`,
      );
  }

  let defaults: Target[] = [];
  if (raw.default !== undefined && raw.default !== null) {
    const r = parseRefs(raw.default, 'default', base, problems, true);
    if (r) defaults = expandTargets(r.refs, base);
  }

  const rules: Rule[] = [];
  if (raw.rules !== undefined && raw.rules !== null) {
    if (!Array.isArray(raw.rules)) problems.push('rules: write a list of rules, each { name, match, to }');
    else {
      const names = new Set<string>();
      raw.rules.forEach((r, i) => {
        const rule = parseRule(r, `rules[${i}]`, base, device, names, problems);
        if (rule) rules.push(rule);
      });
    }
  }

  const channelRateLimits = new Map<string, RateLimit>();
  const crl = opts.channelRateLimits;
  if (crl) for (const [k, v] of crl instanceof Map ? crl : Object.entries(crl)) channelRateLimits.set(k, v);

  const routing: Routing = {
    rules,
    rulesByName: new Map(rules.map((r) => [r.name, r])),
    channels: channelNames,
    people,
    default: defaults,
    digestAt,
    digestZone,
    dedupWindowMs,
    channelRateLimits,
  };
  if (quietHours) routing.quietHours = quietHours;
  return { routing, problems };
}
