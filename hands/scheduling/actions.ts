/**
 * What a job's action does, through the Hand's context and within its grants (the kernel checks each call again):
 *   hand     start / stop / restart a Hand: the `hands.start` / `hands.stop` / `hands.restart` tools (restart without
 *            the hands.restart grant: stop, then start)
 *   publish  a bus message; `{{scheduledAt}}`, `{{runId}}`, `{{jobId}}`, `{{event}}`, `{{event.<path>}}` in its
 *            string leaves are filled in (a leaf that is only a placeholder takes the value itself, JSON and all)
 *   ask      a task for a Hand over the bus (../sdk/tasks.ts), its answer the run's result; a Hand that is stopped,
 *            failed or in backoff fails at once (HAND_NOT_RUNNING, its state named) unless it is on demand, whose
 *            inbox message starts it; no answer in time is HAND_TIMEOUT
 *   tool     a kernel tool (ctx.tools.call), its output the result
 *   agent    an agent goal (ctx.agent.run) with its budget
 * Placeholders are filled in the publish payload, the ask task, the tool input and the agent goal.
 * Every result is bounded: at most 16 KiB of JSON, else `{ truncated: true, bytes, preview }`.
 */
import type { HandContext } from '../sdk/types.ts';
import { TalonError, isErrorCode } from '../../runtime/core/errors.ts';
import { raceAbort } from '../../runtime/core/abort.ts';
import { Grants } from '../../runtime/core/grants.ts';
import { TaskClient } from '../sdk/tasks.ts';
import { parseDuration } from './jobs.ts';
import type { Action, ActionContext, ActionRunner, RunRecord } from './types.ts';

/** the largest result kept with a run, as JSON bytes */
export const MAX_RESULT_BYTES = 16 * 1024;
/** an ask without a timeout waits this long */
export const DEFAULT_ASK_TIMEOUT_MS = 60_000;

/** a duration as the job schema writes it (ms, or `500ms`, `30s`, `5m`, `2h`, `1d`) in ms; `fallback` when not given */
export function durationMs(d: number | string | undefined, fallback: number, field = 'duration'): number {
  return d === undefined ? fallback : parseDuration(d, field);
}

/** at most MAX_RESULT_BYTES of JSON; a larger (or unserialisable) value becomes a preview */
export function boundResult(v: unknown, max = MAX_RESULT_BYTES): unknown {
  if (v === undefined) return null;
  let json: string;
  try {
    json = JSON.stringify(v) ?? 'null';
  } catch (err) {
    return { truncated: true, bytes: 0, preview: `(not JSON: ${(err as Error).message})` };
  }
  const bytes = Buffer.byteLength(json);
  if (bytes <= max) return JSON.parse(json) as unknown;
  // a preview well below the limit, cut on a character boundary
  return { truncated: true, bytes, preview: json.slice(0, Math.floor(max / 4)) };
}

function at(value: unknown, path: string): unknown {
  let cur = value;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

const PLACEHOLDER = /\{\{\s*(scheduledAt|runId|jobId|event(?:\.[A-Za-z0-9_$-]+)*)\s*\}\}/g;
const WHOLE = /^\{\{\s*(scheduledAt|runId|jobId|event(?:\.[A-Za-z0-9_$-]+)*)\s*\}\}$/;

function lookup(run: RunRecord, name: string): unknown {
  if (name === 'scheduledAt') return run.scheduledAt;
  if (name === 'runId') return run.runId;
  if (name === 'jobId') return run.jobId;
  const payload = run.event?.payload;
  return name === 'event' ? (payload ?? null) : at(payload, name.slice('event.'.length));
}

/**
 * Fills the placeholders in every string leaf of `v` (a copy). A leaf that is one placeholder takes its value as it
 * is (a number, an object); inside text a value is written as text (objects as JSON; missing ones as '').
 */
export function fillPlaceholders(v: unknown, run: RunRecord, depth = 0): unknown {
  if (depth > 64) return v;
  if (typeof v === 'string') {
    if (!v.includes('{{')) return v;
    const whole = WHOLE.exec(v);
    if (whole) return lookup(run, whole[1]!) ?? null;
    return v.replace(PLACEHOLDER, (_m, name: string) => {
      const x = lookup(run, name);
      return x === undefined || x === null ? '' : typeof x === 'string' ? x : JSON.stringify(x);
    });
  }
  if (Array.isArray(v)) return v.map((x) => fillPlaceholders(x, run, depth + 1));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = fillPlaceholders(x, run, depth + 1);
    return out;
  }
  return v;
}

/** a rejection with a code (the task protocol's answers are plain errors with one) as a TalonError */
function asTalonError(err: unknown): TalonError {
  if (err instanceof TalonError) return err;
  const code = (err as { code?: unknown })?.code;
  if (isErrorCode(code)) return new TalonError(code, (err as Error).message ?? String(err), { cause: err });
  return TalonError.from(err);
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  return raceAbort(p, signal, (r) =>
    r instanceof TalonError ? r : new TalonError('HAND_STOPPED', `${what} was cancelled`),
  );
}

/** states of a Hand in which a task would never be answered (unless it starts on demand) */
const NOT_ANSWERING = new Set(['stopped', 'stopping', 'backoff', 'failed']);

export interface HandActionsOptions {
  /** may the Hand call this tool (its grant)? default: ctx.grants.tools.allow */
  canCallTool?(name: string): boolean;
}

export class HandActions implements ActionRunner {
  #ctx: HandContext;
  #tasks: TaskClient;
  #canCallTool: (name: string) => boolean;

  constructor(ctx: HandContext, opts: HandActionsOptions = {}) {
    this.#ctx = ctx;
    this.#tasks = new TaskClient(ctx);
    const grants = new Grants(ctx.grants, `talon/${ctx.deviceId}`);
    this.#canCallTool = opts.canCallTool ?? ((name) => grants.canCallTool(name));
  }

  /** answers awaited from asked Hands */
  get pendingTasks(): number {
    return this.#tasks.pending;
  }

  async run(action: Action, actx: ActionContext): Promise<unknown> {
    try {
      return boundResult(await this.#run(action, actx));
    } catch (err) {
      throw asTalonError(err);
    }
  }

  async #run(action: Action, { run, signal }: ActionContext): Promise<unknown> {
    const ctx = this.#ctx;
    if ('hand' in action) {
      const { name, op } = action.hand;
      const call = (tool: 'hands.start' | 'hands.stop' | 'hands.restart') =>
        untilAborted(ctx.tools.call(tool, { name }), signal, `${tool} ${name}`).then((r) => r.output);
      if (op === 'start') return call('hands.start');
      if (op === 'stop') return call('hands.stop');
      // hands.restart when granted; else a stop, then a start
      if (this.#canCallTool('hands.restart')) return call('hands.restart');
      await call('hands.stop');
      return call('hands.start');
    }
    if ('publish' in action) {
      const p = action.publish;
      const payload = fillPlaceholders(p.payload ?? null, run);
      ctx.bus.publish(p.topic, payload, { qos: (p.qos ?? 1) as 0 | 1 | 2, retain: p.retain ?? false });
      return { topic: p.topic, bytes: Buffer.byteLength(JSON.stringify(payload) ?? 'null') };
    }
    if ('ask' in action) {
      const a = action.ask;
      await this.#checkRunning(a.hand, signal);
      const timeoutMs = durationMs(a.timeout, DEFAULT_ASK_TIMEOUT_MS, 'action.ask.timeout');
      return this.#tasks.ask(a.hand, fillPlaceholders(a.task ?? null, run), {
        timeoutMs,
        signal,
        // the correlation id names the run: an answer to an older run of the job never matches this one
        id: run.runId,
      });
    }
    if ('tool' in action) {
      const t = action.tool;
      const input = fillPlaceholders(t.input ?? {}, run) as Record<string, unknown>;
      const r = await untilAborted(ctx.tools.call(t.name, input), signal, `tool ${t.name}`);
      return r.truncated ? { output: r.output, truncated: true } : r.output;
    }
    if ('agent' in action) {
      const g = action.agent;
      const goal = fillPlaceholders(g.goal, run) as string;
      const r = await untilAborted(
        ctx.agent.run({
          goal: typeof goal === 'string' ? goal : JSON.stringify(goal),
          tools: [...g.tools],
          ...(g.maxSteps !== undefined ? { maxSteps: g.maxSteps } : {}),
          ...(g.maxTokens !== undefined ? { maxTokens: g.maxTokens } : {}),
          ...(g.deadline !== undefined ? { deadlineMs: durationMs(g.deadline, 120_000, 'action.agent.deadline') } : {}),
        }),
        signal,
        'the agent run',
      );
      return { runId: r.runId, answer: r.answer, steps: r.steps, usage: r.usage };
    }
    throw new TalonError('BAD_REQUEST', 'action: must be one of hand, publish, ask, tool, agent');
  }

  /** fail fast when the asked Hand cannot answer (its status, when the grant lets us look) */
  async #checkRunning(hand: string, signal: AbortSignal): Promise<void> {
    if (!this.#canCallTool('hands.status')) return;
    let status: { state?: unknown; mode?: unknown; lastError?: unknown };
    try {
      status = (await untilAborted(this.#ctx.tools.call('hands.status', { name: hand }), signal, 'hands.status'))
        .output as typeof status;
    } catch (err) {
      const e = asTalonError(err);
      if (e.code === 'HAND_NOT_FOUND')
        throw new TalonError('HAND_NOT_FOUND', `action.ask.hand: no Hand is named "${hand}" on this device`);
      if (e.code === 'HAND_STOPPED') throw e;
      return; // the status could not be read: ask anyway, the timeout bounds the wait
    }
    const state = typeof status?.state === 'string' ? status.state : undefined;
    if (state && NOT_ANSWERING.has(state) && status.mode !== 'on-demand') {
      throw new TalonError(
        'HAND_NOT_RUNNING',
        `action.ask.hand: Hand "${hand}" is ${state}${state === 'backoff' ? ' (restarting after a crash)' : ''}; it cannot answer a task until it runs`,
        { details: { hand, state } },
      );
    }
  }
}
