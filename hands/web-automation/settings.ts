/**
 * The Web Automation Hand's settings (`hands: [{ name: web, module: web-automation, settings: {…} }]`):
 *
 *   watches         pages to watch: [{ id, url, what, schedule?, ignore?, minChange?, confirm?, unchangedDays?,
 *                   brokenAfter? }] (./watch.ts parseWatch); a watch with a schedule is checked by a Scheduling Hand
 *                   job `web-<self>-<id>`. More are added at run time through the API (`talon web watch add`, kept in
 *                   the Hand's store, ./index.ts); MAX_WATCHES counts both
 *   flows           { NAME: flow }: a scripted flow (runtime/core/flow.ts: { steps, inputs?, output?, limits? }) or a
 *                   goal for the agent loop ({ goal, tools?, maxSteps?, maxTokens?, timeoutMs?, output? }); either may carry a `schedule`
 *                   (a job `web-<self>-flow.<name>`); `name` may be left out (the key is the name) or must equal it
 *   scheduler       the Scheduling Hand instance that runs the schedules (default "scheduler"); '' keeps them on the
 *                   Hand's own timers
 *   screenshotsKeep how many run records are kept (default 50), newest first; older ones are deleted
 *   checkTimeoutMs  how long one check may take to load its page (default 30 000, at most 60 000)
 *
 * The schema below checks the outline only; each watch and flow is checked here and named in words
 * (`watches[1].what.json: …`, `flows.login: steps[2] (click): …`): a bad one is left out and logged, the rest run.
 */
import { Cron } from 'croner';
import type { FromSchema } from '../sdk/index.ts';
import { HAND_NAME } from '../../runtime/core/names.ts';
import { flowProblems, parseFlow, type Flow, type JsonSchema } from '../../runtime/core/flow.ts';
import { parseWatch, type Watch } from './watch.ts';

export const MAX_WATCHES = 200;
export const MAX_FLOWS = 100;
/** the agent loop's turns at most (runtime/core/hand.ts HandAgentRunOptions.maxSteps) */
export const MAX_AGENT_STEPS = 64;

export const DEFAULTS = {
  scheduler: 'scheduler',
  screenshotsKeep: 50,
  checkTimeoutMs: 30_000,
  agentSteps: 16,
  agentTools: ['browser.*'],
} as const;

export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    watches: {
      type: 'array',
      maxItems: MAX_WATCHES,
      default: [],
      description:
        'watches: { id, url, what: { text: SEL } | { json: "$.path" } | { attribute: { selector, name } } | { price: SEL } | { visual: SEL | { selector?, tolerance? } }, schedule?: cron, ignore?: [regex], minChange?, confirm?, unchangedDays?, brokenAfter? } (more are added at run time with `talon web watch add`; at most 200 in all)',
      items: { type: 'object' },
    },
    flows: {
      type: 'object',
      description:
        'flows by name: { steps: [...], inputs?, output?, limits?, schedule? } or { goal: "…", tools?, maxSteps?, maxTokens?, timeoutMs?, output?, schedule? }',
      additionalProperties: { type: 'object' },
    },
    scheduler: {
      type: 'string',
      maxLength: 63,
      description: "the Scheduling Hand instance that runs the schedules ('' = the Hand's own timers)",
    },
    screenshotsKeep: { type: 'integer', minimum: 1, maximum: 10_000, description: 'run records kept (default 50)' },
    checkTimeoutMs: { type: 'integer', minimum: 1000, maximum: 60_000 },
  },
} as const;

export type WebSettings = FromSchema<typeof settingsSchema>;

/** a configured flow: scripted (parsed, and the JSON the browser.run_flow tool takes) or a goal for the agent loop */
export type FlowEntry =
  | { mode: 'steps'; name: string; flow: Flow; definition: Record<string, unknown>; schedule?: string }
  | {
      mode: 'goal';
      name: string;
      goal: string;
      description?: string;
      tools: string[];
      maxSteps: number;
      /** tokens in and out over the whole run (the agent loop's default when left out) */
      maxTokens?: number;
      /** the whole run, in ms (the agent loop's default when left out) */
      timeoutMs?: number;
      output?: JsonSchema;
      schedule?: string;
    };

export interface ParsedSettings {
  watches: Watch[];
  flows: FlowEntry[];
  /** '' = local timers */
  scheduler: string;
  screenshotsKeep: number;
  checkTimeoutMs: number;
  /** what was wrong, field by field; those watches and flows are left out */
  problems: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** a cron expression croner reads, or why not */
function cronProblem(expr: unknown): string | undefined {
  if (typeof expr !== 'string' || expr.trim() === '')
    return 'must be a cron expression of five fields ("0 * * * *": every hour)';
  const fields = expr.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6)
    return `"${expr}" has ${fields} field(s): write five (minute hour day-of-month month day-of-week), "0 * * * *" for hourly`;
  try {
    new Cron(expr, { paused: true }).stop();
  } catch (err) {
    return `"${expr}" is not a cron expression croner reads (${(err as Error).message}); "0 7 * * *" is 07:00 daily`;
  }
  return undefined;
}

const GOAL_FIELDS = [
  'name',
  'description',
  'goal',
  'tools',
  'maxSteps',
  'maxTokens',
  'timeoutMs',
  'output',
  'schedule',
];
/** the agent loop's own ceilings (runtime/agent/loop.ts): tokens over a run, and its deadline (one hour) */
export const MAX_AGENT_TOKENS = 10_000_000;
export const MAX_AGENT_TIMEOUT_MS = 3_600_000;

/**
 * a goal flow `{ name, goal, tools?, maxSteps?, maxTokens?, timeoutMs?, output?, description? }` (no schedule here):
 * its step, token and time budgets are the agent loop's, enforced there, not by the prompt; or why not
 */
export function parseGoalFlow(raw: Record<string, unknown>, where: string): FlowEntry | string {
  for (const k of Object.keys(raw))
    if (!GOAL_FIELDS.includes(k) || k === 'schedule')
      return `${where}.${k}: not a field of a goal flow (the fields are ${GOAL_FIELDS.filter((f) => f !== 'schedule').join(', ')}); a flow has either goal or steps`;
  if (typeof raw.name !== 'string' || !HAND_NAME.test(raw.name))
    return `${where}.name: ${JSON.stringify(raw.name ?? null)} must be 1-63 lowercase letters, digits or "-"`;
  if (typeof raw.goal !== 'string' || raw.goal.trim() === '' || raw.goal.length > 4000)
    return `${where}.goal: must be what to achieve, in 1 to 4000 characters ("Find the opening hours on the shop's site")`;
  const out: Extract<FlowEntry, { mode: 'goal' }> = {
    mode: 'goal',
    name: raw.name,
    goal: raw.goal.trim(),
    tools: [...DEFAULTS.agentTools],
    maxSteps: DEFAULTS.agentSteps,
  };
  if (raw.description !== undefined) {
    if (typeof raw.description !== 'string') return `${where}.description: must be a text`;
    out.description = raw.description;
  }
  if (raw.tools !== undefined) {
    if (
      !Array.isArray(raw.tools) ||
      raw.tools.length === 0 ||
      raw.tools.some((t) => typeof t !== 'string' || !/^[a-z0-9*][a-z0-9_.*-]{0,127}$/.test(t))
    )
      return `${where}.tools: must be a list of tool names or globs (["browser.*"])`;
    out.tools = raw.tools as string[];
  }
  if (raw.maxSteps !== undefined) {
    const n = raw.maxSteps;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_AGENT_STEPS)
      return `${where}.maxSteps: must be a whole number of model turns from 1 to ${MAX_AGENT_STEPS}, not ${JSON.stringify(n)}`;
    out.maxSteps = n;
  }
  if (raw.maxTokens !== undefined) {
    const n = raw.maxTokens;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 100 || n > MAX_AGENT_TOKENS)
      return `${where}.maxTokens: must be a whole number of tokens (in and out, the whole run) from 100 to ${MAX_AGENT_TOKENS}, not ${JSON.stringify(n)}`;
    out.maxTokens = n;
  }
  if (raw.timeoutMs !== undefined) {
    const n = raw.timeoutMs;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1000 || n > MAX_AGENT_TIMEOUT_MS)
      return `${where}.timeoutMs: must be the whole run's time in ms from 1000 to ${MAX_AGENT_TIMEOUT_MS} (an hour), not ${JSON.stringify(n)}`;
    out.timeoutMs = n;
  }
  if (raw.output !== undefined) {
    if (!isObject(raw.output))
      return `${where}.output: must be a JSON Schema object ({ type: "object", properties: { … } })`;
    out.output = raw.output;
  }
  return out;
}

/**
 * A flow as written (settings or a `run` definition): a goal flow, or a scripted one checked by runtime/core/flow.ts;
 * `schedule` is taken off first (settings only). A message naming the field or step when it cannot run.
 */
export function parseFlowEntry(raw: unknown, where: string, withSchedule: boolean): FlowEntry | string {
  if (!isObject(raw)) return `${where}: must be a flow { name, steps, … } or { name, goal, … }`;
  const { schedule, ...definition } = raw;
  let cron: string | undefined;
  if (schedule !== undefined && schedule !== null && schedule !== '') {
    if (!withSchedule)
      return `${where}.schedule: a flow run now takes no schedule (put scheduled flows in the settings)`;
    const p = cronProblem(schedule);
    if (p) return `${where}.schedule: ${p}`;
    cron = (schedule as string).trim();
  }
  let entry: FlowEntry;
  if (definition.goal !== undefined) {
    const g = parseGoalFlow(definition, where);
    if (typeof g === 'string') return g;
    entry = g;
  } else {
    const problems = flowProblems(definition);
    if (problems.length > 0) return `${where}: ${problems.join('; ')}`;
    entry = { mode: 'steps', name: definition.name as string, flow: parseFlow(definition), definition };
  }
  if (cron !== undefined) entry.schedule = cron;
  return entry;
}

function intIn(
  s: Record<string, unknown>,
  k: string,
  min: number,
  max: number,
  dflt: number,
  problems: string[],
): number {
  const v = s[k];
  if (v === undefined) return dflt;
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  problems.push(
    `settings.${k}: must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}; ${dflt} is used`,
  );
  return dflt;
}

/** the settings with defaults; what is wrong is named and left out (the Hand starts with the rest) */
export function parseSettings(raw: unknown): ParsedSettings {
  const problems: string[] = [];
  const out: ParsedSettings = {
    watches: [],
    flows: [],
    scheduler: DEFAULTS.scheduler,
    screenshotsKeep: DEFAULTS.screenshotsKeep,
    checkTimeoutMs: DEFAULTS.checkTimeoutMs,
    problems,
  };
  if (raw === undefined || raw === null) return out;
  if (!isObject(raw)) {
    problems.push('settings: must be an object { watches?, flows?, scheduler?, screenshotsKeep? }');
    return out;
  }
  const s = raw;
  for (const k of Object.keys(s))
    if (!(k in settingsSchema.properties))
      problems.push(
        `settings.${k}: is not a known field (${Object.keys(settingsSchema.properties).join(', ')}); ignored`,
      );
  if (s.watches !== undefined) {
    if (!Array.isArray(s.watches)) problems.push('settings.watches: must be a list of watches');
    else {
      const seen = new Set<string>();
      s.watches.slice(0, MAX_WATCHES).forEach((w, i) => {
        const watch = parseWatch(w, `watches[${i}]`);
        if (typeof watch === 'string') {
          problems.push(`${watch}; the watch is left out`);
          return;
        }
        if (seen.has(watch.id)) {
          problems.push(`watches[${i}].id: "${watch.id}" is used by an earlier watch; this one is left out`);
          return;
        }
        seen.add(watch.id);
        out.watches.push(watch);
      });
      if (s.watches.length > MAX_WATCHES)
        problems.push(`settings.watches: at most ${MAX_WATCHES}; the rest are left out`);
    }
  }
  if (s.flows !== undefined) {
    if (!isObject(s.flows)) problems.push('settings.flows: must be an object { NAME: flow }');
    else {
      const names = Object.keys(s.flows);
      for (const name of names.slice(0, MAX_FLOWS)) {
        const where = `flows.${name}`;
        const raw = s.flows[name];
        if (!HAND_NAME.test(name)) {
          problems.push(`${where}: "${name}" is not a flow name (1-63 lowercase letters, digits or "-"); left out`);
          continue;
        }
        if (isObject(raw) && raw.name !== undefined && raw.name !== name) {
          problems.push(`${where}.name: ${JSON.stringify(raw.name)} differs from the key "${name}"; left out`);
          continue;
        }
        const entry = parseFlowEntry(isObject(raw) ? { ...raw, name } : raw, where, true);
        if (typeof entry === 'string') problems.push(`${entry}; the flow is left out`);
        else out.flows.push(entry);
      }
      if (names.length > MAX_FLOWS) problems.push(`settings.flows: at most ${MAX_FLOWS}; the rest are left out`);
    }
  }
  if (s.scheduler !== undefined) {
    if (typeof s.scheduler === 'string' && (s.scheduler === '' || HAND_NAME.test(s.scheduler)))
      out.scheduler = s.scheduler;
    else
      problems.push(
        `settings.scheduler: must be a Hand instance name ("scheduler") or '' for the Hand's own timers, not ${JSON.stringify(s.scheduler)}`,
      );
  }
  out.screenshotsKeep = intIn(s, 'screenshotsKeep', 1, 10_000, DEFAULTS.screenshotsKeep, problems);
  out.checkTimeoutMs = intIn(s, 'checkTimeoutMs', 1000, 60_000, DEFAULTS.checkTimeoutMs, problems);
  return out;
}
