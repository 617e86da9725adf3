/**
 * A job beyond its JSON Schema: durations and instants parsed, cron expressions and time zones tried,
 * topics checked, `after` chains checked for unknown jobs and cycles, and every action held against the
 * Scheduling Hand's own grants. Each refusal is a TalonError whose message names the field and says what
 * would be right; nothing is stored by the caller until the whole job passed.
 *
 * Notes on what is accepted on purpose:
 * - `policy.endAt` in the past is accepted: the job is stored and never runs (its view says `ended`).
 * - `trigger.at` in the past is accepted too: such a job never runs (it is `ended` at once). An `at` that
 *   passes while the device is off is a missed time: the catch-up policy decides whether it runs.
 */
import { createHash } from 'node:crypto';
import { Cron } from 'croner';
import { createAjv, fieldErrors } from '../../runtime/core/ajv.ts';
import { canonicalJson } from '../../runtime/core/canonical.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Grants } from '../../runtime/core/grants.ts';
import { toAbsolute, validateFilter, validateTopic } from '../../runtime/core/topics.ts';
import { replyTopic, taskInbox } from '../sdk/tasks.ts';
import { type Condition, JOB_SCHEMA, type JobSpec, type Trigger } from './types.ts';

/** what validateJob checks a job against */
export interface JobCheckEnv {
  /** the Scheduling Hand's effective grants */
  grants: Grants;
  /** the Scheduling Hand's own name (its replies topic) */
  self: string;
  /** `talon/<deviceId>` */
  deviceRoot: string;
  /** the jobs there are now (the one being checked replaces its namesake) */
  jobs: ReadonlyMap<string, JobSpec>;
  /** does a Hand of this name exist? undefined: not known (accepted) */
  handExists(name: string): boolean | undefined;
}

export const MIN_EVERY_MS = 100;
export const MAX_JITTER_MS = 86_400_000;
export const MIN_TIMEOUT_MS = 100;
export const MAX_TIMEOUT_MS = 7 * 86_400_000;
export const MAX_REGEX_CHARS = 256;

const bad = (field: string, message: string): TalonError =>
  new TalonError('BAD_REQUEST', `${field}: ${message}`, { details: { field } });

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration in ms: an integer of ms, or `500ms`, `30s`, `5m`, `2h`, `1.5d`. */
export function parseDuration(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v);
    if (m) return Math.round(Number(m[1]) * (UNIT[m[2] as string] as number));
  }
  throw bad(
    field,
    `${JSON.stringify(v)} is not a duration; write milliseconds or a number with ms, s, m, h or d (e.g. "30s")`,
  );
}

/** A point in time in ms since the epoch: an integer, or an ISO 8601 string with a zone (`Z` or `+01:00`). */
export function parseInstant(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2})$/i.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  throw bad(
    field,
    `${JSON.stringify(v)} is not a point in time; write ms since the epoch or ISO 8601 with a zone (e.g. "2026-12-24T18:00:00+01:00")`,
  );
}

let validateSchema: ReturnType<ReturnType<typeof createAjv>['compile']> | undefined;

const dotted = (pointer: string): string =>
  pointer
    .split('/')
    .filter((s) => s !== '')
    .join('.') || 'job';

function schemaError(errors: Parameters<typeof fieldErrors>[0], spec: unknown): TalonError {
  const s = spec as Record<string, unknown>;
  for (const [part, keys] of [
    ['trigger', ['cron', 'every', 'at', 'event', 'after']],
    ['action', ['hand', 'publish', 'ask', 'tool', 'agent']],
  ] as const) {
    const v = s[part];
    if (typeof v !== 'object' || v === null) continue;
    const present = Object.keys(v).filter((k) => (keys as readonly string[]).includes(k));
    if (present.length !== 1)
      return bad(
        part,
        `must have exactly one of ${keys.join(', ')}${present.length ? ` (it has ${present.join(', ')})` : ''}`,
      );
  }
  const list = fieldErrors(errors);
  // the deepest field is the most specific (a oneOf reports every branch; the branch the spec meant fails deepest)
  const best = [...list].sort((a, b) => b.path.split('/').length - a.path.split('/').length)[0];
  const field = best ? dotted(best.path) : 'job';
  return bad(field, best ? best.message : 'is not a valid job');
}

function tz(zone: string, field: string): void {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
  } catch {
    throw bad(field, `"${zone}" is not a known IANA time zone; write one such as "Europe/Berlin" or "UTC"`);
  }
}

function describe(list: readonly string[]): string {
  return list.length ? list.join(', ') : 'nothing';
}

function denied(field: string, message: string): TalonError {
  return new TalonError('CAPABILITY_DENIED', `${field}: ${message}`, { details: { field } });
}

function checkCondition(c: Condition, field: string): void {
  const v = c.value;
  switch (c.op) {
    case 'in':
      if (!Array.isArray(v)) throw bad(`${field}.value`, `op "in" needs an array of values, not ${JSON.stringify(v)}`);
      break;
    case 'matches':
      if (typeof v !== 'string' || v.length > MAX_REGEX_CHARS)
        throw bad(`${field}.value`, `op "matches" needs a regular expression of at most ${MAX_REGEX_CHARS} characters`);
      try {
        new RegExp(v);
      } catch (err) {
        throw bad(`${field}.value`, `is not a valid regular expression (${(err as Error).message})`);
      }
      break;
    case 'exists':
      if (v !== undefined && typeof v !== 'boolean')
        throw bad(`${field}.value`, 'op "exists" takes true, false or nothing');
      break;
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      if (c.order) {
        if (typeof v !== 'string' || !c.order.includes(v))
          throw bad(`${field}.value`, `must be one of the order's levels (${c.order.join(', ')})`);
      } else if (typeof v !== 'number' && typeof v !== 'string')
        throw bad(`${field}.value`, `op "${c.op}" compares with a number or a string (or a level, with \`order\`)`);
      break;
    default:
      if (v === undefined) throw bad(`${field}.value`, `op "${c.op}" needs a value`);
  }
}

/** the path of a cycle through `id` when `id`'s `after` is `deps`, else undefined */
function findCycle(id: string, deps: readonly string[], jobs: ReadonlyMap<string, JobSpec>): string[] | undefined {
  const depsOf = (j: string): readonly string[] => {
    if (j === id) return deps;
    const t = jobs.get(j)?.trigger as { after?: string[] } | undefined;
    return t?.after ?? [];
  };
  const seen = new Set<string>();
  const path: string[] = [id];
  const walk = (j: string): boolean => {
    for (const d of depsOf(j)) {
      if (d === id) {
        path.push(d);
        return true;
      }
      if (seen.has(d)) continue;
      seen.add(d);
      path.push(d);
      if (walk(d)) return true;
      path.pop();
    }
    return false;
  };
  return walk(id) ? path : undefined;
}

function checkTrigger(t: Trigger, id: string, env: JobCheckEnv): void {
  if ('cron' in t) {
    if (t.timezone !== undefined) tz(t.timezone, 'trigger.timezone');
    let next: Date | null;
    try {
      next = new Cron(t.cron, { timezone: t.timezone, paused: true }).nextRun();
    } catch (err) {
      throw bad(
        'trigger.cron',
        `"${t.cron}" is not a valid cron expression (${(err as Error).message}); write five or six fields, seconds first when six (e.g. "0 */5 * * * *")`,
      );
    }
    if (next === null) throw bad('trigger.cron', `"${t.cron}" never fires; check its day and month fields`);
  } else if ('every' in t) {
    const ms = parseDuration(t.every, 'trigger.every');
    if (ms < MIN_EVERY_MS)
      throw bad('trigger.every', `${ms} ms is too short; an interval is at least ${MIN_EVERY_MS} ms`);
  } else if ('at' in t) {
    parseInstant(t.at, 'trigger.at');
  } else if ('event' in t) {
    const e = t.event;
    try {
      validateFilter(e.topic);
    } catch (err) {
      throw bad('trigger.event.topic', (err as Error).message);
    }
    const abs = toAbsolute(env.deviceRoot, e.topic);
    if (!env.grants.canSubscribe(abs))
      throw denied(
        'trigger.event.topic',
        `the Scheduling Hand may not subscribe to ${abs}; its grant allows ${describe(env.grants.caps.bus.subscribe)}`,
      );
    (e.where ?? []).forEach((c, i) => checkCondition(c, `trigger.event.where[${i}]`));
    if (e.debounce !== undefined) parseDuration(e.debounce, 'trigger.event.debounce');
  } else if ('after' in t) {
    t.after.forEach((dep, i) => {
      if (dep === id) throw bad(`trigger.after[${i}]`, `job "${id}" cannot wait for itself`);
      if (!env.jobs.has(dep)) throw bad(`trigger.after[${i}]`, `there is no job "${dep}"; create it first`);
    });
    const cycle = findCycle(id, t.after, env.jobs);
    if (cycle) throw bad('trigger.after', `a dependency cycle: ${cycle.join(' → ')}; a chain of jobs must end`);
  }
}

function checkAction(a: JobSpec['action'], env: JobCheckEnv): void {
  const g = env.grants;
  const handMustExist = (name: string, field: string): void => {
    if (env.handExists(name) === false) throw bad(field, `there is no Hand named "${name}"`);
  };
  if ('hand' in a) {
    const tool = `hands.${a.hand.op}`;
    if (!g.canCallTool(tool))
      throw denied(
        'action.hand.op',
        `the Scheduling Hand may not call ${tool}; its tools grant allows ${describe(g.caps.tools.allow)}`,
      );
    handMustExist(a.hand.name, 'action.hand.name');
  } else if ('publish' in a) {
    try {
      validateTopic(a.publish.topic);
    } catch (err) {
      throw bad('action.publish.topic', (err as Error).message);
    }
    const abs = toAbsolute(env.deviceRoot, a.publish.topic);
    if (!g.canPublish(abs))
      throw denied(
        'action.publish.topic',
        `the Scheduling Hand may not publish to ${abs}; its grant allows ${describe(g.caps.bus.publish)}`,
      );
  } else if ('ask' in a) {
    const inbox = toAbsolute(env.deviceRoot, taskInbox(a.ask.hand));
    if (!g.canPublish(inbox))
      throw denied(
        'action.ask.hand',
        `the Scheduling Hand may not publish to ${inbox}; its grant allows ${describe(g.caps.bus.publish)}`,
      );
    const replies = toAbsolute(env.deviceRoot, replyTopic(env.self));
    if (!g.canSubscribe(replies))
      throw denied(
        'action.ask.hand',
        `the Scheduling Hand may not subscribe to ${replies} for the answers; its grant allows ${describe(g.caps.bus.subscribe)}`,
      );
    handMustExist(a.ask.hand, 'action.ask.hand');
    if (a.ask.timeout !== undefined) parseDuration(a.ask.timeout, 'action.ask.timeout');
  } else if ('tool' in a) {
    if (!g.canCallTool(a.tool.name))
      throw denied(
        'action.tool.name',
        `the Scheduling Hand may not call ${a.tool.name}; its tools grant allows ${describe(g.caps.tools.allow)}`,
      );
  } else if ('agent' in a) {
    if (!(g.llmTokensPerHour() > 0 || g.caps.llm !== null))
      throw denied(
        'action.agent',
        'the Scheduling Hand has no LLM grant; an agent goal needs `llm` in its capabilities',
      );
    a.agent.tools.forEach((t, i) => {
      if (!g.canCallTool(t))
        throw denied(
          `action.agent.tools[${i}]`,
          `the Scheduling Hand may not call ${t}; its tools grant allows ${describe(g.caps.tools.allow)}`,
        );
    });
    if (a.agent.deadline !== undefined) parseDuration(a.agent.deadline, 'action.agent.deadline');
  }
}

function checkPolicy(p: JobSpec['policy']): void {
  if (!p) return;
  if (p.catchUp?.window !== undefined) parseDuration(p.catchUp.window, 'policy.catchUp.window');
  if (p.jitter !== undefined) {
    const j = parseDuration(p.jitter, 'policy.jitter');
    if (j > MAX_JITTER_MS)
      throw bad('policy.jitter', `${j} ms is more than a day; a jitter is at most ${MAX_JITTER_MS} ms`);
  }
  if (p.timeout !== undefined) {
    const t = parseDuration(p.timeout, 'policy.timeout');
    if (t < MIN_TIMEOUT_MS || t > MAX_TIMEOUT_MS)
      throw bad('policy.timeout', `${t} ms is out of range; a timeout is between ${MIN_TIMEOUT_MS} ms and 7 days`);
  }
  if (p.retries) {
    const b = p.retries.backoff === undefined ? undefined : parseDuration(p.retries.backoff, 'policy.retries.backoff');
    const m =
      p.retries.maxBackoff === undefined ? undefined : parseDuration(p.retries.maxBackoff, 'policy.retries.maxBackoff');
    if (b !== undefined && m !== undefined && m < b)
      throw bad('policy.retries.maxBackoff', `${m} ms is less than the first wait (backoff ${b} ms)`);
  }
  if (p.endAt !== undefined) parseInstant(p.endAt, 'policy.endAt');
}

/** The job checked against its schema (defaults filled), then against the rules above. Does not change `spec`. */
export async function validateJob(spec: unknown, env: JobCheckEnv): Promise<JobSpec> {
  validateSchema ??= createAjv('hand').compile(JOB_SCHEMA);
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw bad('job', 'must be a JSON object');
  const copy = structuredClone(spec);
  if (!validateSchema(copy)) throw schemaError(validateSchema.errors, copy);
  const job = copy as JobSpec;
  checkTrigger(job.trigger, job.id, env);
  checkAction(job.action, env);
  checkPolicy(job.policy);
  return job;
}

/** the `on` of an `after` trigger, its default filled */
export function afterOn(t: Trigger): 'success' | 'failure' | 'always' {
  return 'after' in t ? (t.on ?? 'success') : 'success';
}

function at(payload: unknown, path: string): unknown {
  let v: unknown = payload;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}

const regexCache = new Map<string, RegExp | null>();
function regex(src: string): RegExp | null {
  let r = regexCache.get(src);
  if (r === undefined) {
    try {
      r = new RegExp(src);
    } catch {
      r = null;
    }
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(src, r);
  }
  return r;
}

function compare(c: Condition, v: unknown): number | undefined {
  if (c.order) {
    const i = typeof v === 'string' ? c.order.indexOf(v) : -1;
    const j = typeof c.value === 'string' ? c.order.indexOf(c.value) : -1;
    return i < 0 || j < 0 ? undefined : i - j;
  }
  if (typeof v === 'number' && typeof c.value === 'number') return v - c.value;
  if (typeof v === 'string' && typeof c.value === 'string') return v < c.value ? -1 : v > c.value ? 1 : 0;
  return undefined;
}

/** Do all clauses hold for `payload`? Paths are dotted (`reading.value`, `items.0.id`). */
export function conditionMatches(where: readonly Condition[] | undefined, payload: unknown): boolean {
  for (const c of where ?? []) {
    const v = at(payload, c.path);
    let ok: boolean;
    switch (c.op) {
      case 'exists':
        ok = (v !== undefined) === (c.value ?? true);
        break;
      case 'eq':
        ok = same(v, c.value);
        break;
      case 'ne':
        ok = !same(v, c.value);
        break;
      case 'in':
        ok = Array.isArray(c.value) && c.value.some((x) => same(v, x));
        break;
      case 'matches': {
        const r = typeof c.value === 'string' ? regex(c.value) : null;
        ok = typeof v === 'string' && r !== null && r.test(v);
        break;
      }
      default: {
        const d = compare(c, v);
        ok =
          d !== undefined &&
          (c.op === 'gt' ? d > 0 : c.op === 'gte' ? d >= 0 : c.op === 'lt' ? d < 0 : c.op === 'lte' ? d <= 0 : false);
      }
    }
    if (!ok) return false;
  }
  return true;
}

/** a stable hash of the job's canonical JSON (RFC 8785): equal specs, equal versions */
export function jobVersion(spec: JobSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex').slice(0, 16);
}
