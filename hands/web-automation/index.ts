/**
 * The Web Automation Hand: watches (pages checked for changes) and flows (scripted browser steps, or a goal for the
 * agent loop). Chromium lives in the kernel (runtime/browser/): the Hand reaches it only through the kernel's tools,
 * under its own tools and network grants —
 *
 *   a check      `browser.read` { url, selector?, waitFor?, attribute?, timeoutMs } (a JSON watch: ctx.fetch of the URL, the
 *                body handed over whole) → ./watch.ts evaluate(watch, state, check): the state is stored
 *                (`watch/<id>`), the events published, the run recorded. One check at a time per watch (a second ask
 *                joins it).
 *   a flow run   `browser.run_flow` { flow, inputs } for a scripted flow (checked by runtime/core/flow.ts before the
 *                tool is called: a bad definition is BAD_REQUEST naming the step and no browser starts); a goal flow
 *                is `ctx.agent.run({ goal, tools: ['browser.*'], maxSteps, jsonSchema: output })`. The run record keeps
 *                the steps, the failure (its step path, URL and screenshot), screenshot and download files (paths the
 *                tool answered, relative to the Hand's folder) and the output.
 *
 * Schedules are Scheduling Hand jobs put over the task protocol at start — `web-<self>-<watch id>` asking
 * `{ op: 'check', watch }`, `web-<self>-flow.<name>` asking `{ op: 'run', flow }` — with a local cron on the Hand's
 * own timers when the scheduler does not answer (or `scheduler: ''`), tried again hourly; jobs of watches and flows
 * no longer scheduled are removed (as the Research Hand does).
 *
 * Bus (relative to talon/<deviceId>/):
 *   web/watch/<id>/<event>   out (QoS 1): changed ({ before, after, diff, price? }), broken ({ reason, failures }),
 *                            recovered, unchanged ({ days }); a 'pending' change (seen once, waiting for the next check
 *                            to confirm it) is not published
 *   web/flow/<name>/run      out (QoS 1): { runId, ok, ms, output?, failure?, error? } after each flow run
 *   notify/normal            out: changed and unchanged; notify/high: broken ({ title, text, tags, dedupKey })
 *   hands/<name>/tasks       in: { op: 'check', watch } | { op: 'run', flow, inputs? } (../sdk/tasks.ts)
 *   hands/<name>/replies     in: the scheduler's answers to this Hand's job puts
 * Audit: web.watch.changed, web.watch.broken, web.flow.run (ok or error), web.settings (the problems, once at start).
 *
 * Store keys: watch/<id> the WatchState (./watch.ts WatchStateData); run/<runId> a run record (the newest
 * `screenshotsKeep` are kept). The screenshot and download files are the kernel's tool's: deleting them is not done
 * here (a worker may not reach them).
 */
import { Cron } from 'croner';
import { defineHand, type AnswerOf, type RequestOf } from '../sdk/index.ts';
import type { HandContext } from '../sdk/types.ts';
import { TaskClient, serveTasks } from '../sdk/tasks.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { resolveInputs } from '../../runtime/core/flow.ts';
import { protocol, type WebProtocol } from './protocol.ts';
import { parseFlowEntry, parseSettings, settingsSchema, type FlowEntry, type ParsedSettings } from './settings.ts';
import { WatchState, evaluate, type Check, type Watch, type WatchEvent } from './watch.ts';

type Req<K extends keyof WebProtocol & string> = RequestOf<WebProtocol, K>;
type Ans<K extends keyof WebProtocol & string> = AnswerOf<WebProtocol, K>;

/** the scheduler's answer to a put, list or remove */
const SCHEDULER_TIMEOUT_MS = 10_000;
/** how often a scheduler that did not answer is tried again */
const RETRY_MS = 3600_000;
/** the longest one timer waits (setTimeout's limit); longer waits are chained */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** the Scheduling Hand's job ids (hands/scheduling/types.ts JOB_ID_PATTERN) */
const JOB_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const STORE_PAGE = 1000;
/** characters of a value in a view, and of before/after in an event */
const EXCERPT_CHARS = 200;
const EVENT_VALUE_CHARS = 10_000;
const NOTIFY_DIFF_CHARS = 3000;
/** run records scanned for a watch's recent runs and the flows' last runs */
const SCAN_RUNS = 1000;

export const WATCH_PREFIX = 'watch/';
export const RUN_PREFIX = 'run/';

/** the scheduler job of a watch: `web-<self>-<watch id>` */
export const watchJobId = (self: string, watch: string): string => `web-${self}-${watch}`;
/** the scheduler job of a flow: `web-<self>-flow.<name>` (a watch id has no ".", so the two never meet) */
export const flowJobId = (self: string, flow: string): string => `web-${self}-flow.${flow}`;

/** a run id: the start (13 digits of ms, so ids sort by time) and 4 random base-36 characters */
export function newRunId(startedAt: number, random: () => number = Math.random): string {
  let r = '';
  for (let i = 0; i < 4; i++) r += Math.floor(random() * 36).toString(36);
  return `${String(Math.max(0, Math.floor(startedAt)))
    .padStart(13, '0')
    .slice(-13)}${r}`;
}

export type RunRecord = Ans<'runDetail'>['run'];
export type RunSummary = Ans<'runs'>['runs'][number];
export type WatchView = Ans<'watches'>['watches'][number];

/** a run record without its steps, output, downloads, inputs and refusals */
export function summaryOf(r: RunRecord): RunSummary {
  const { steps: _s, output: _o, downloads: _d, inputs: _i, refused: _r, agentSteps: _a, ...rest } = r;
  return rest;
}

/** what a watch compares, in words */
export function whatWords(w: Watch): string {
  const x = w.what;
  switch (x.kind) {
    case 'json':
      return `json ${x.path}`;
    case 'attribute':
      return `attribute ${x.selector}@${x.name}`;
    default:
      return `${x.kind} ${x.selector ?? '(the page)'}`;
  }
}

const cut = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n)}…` : s);

/** an event as published and answered: before/after cut to EVENT_VALUE_CHARS */
export function eventPayload(w: Watch, e: WatchEvent, at: number, runId: string): Record<string, unknown> {
  const base = { watch: w.id, url: w.url, at, runId };
  if (e.type === 'changed' || e.type === 'pending')
    return { ...base, ...e, before: cut(e.before, EVENT_VALUE_CHARS), after: cut(e.after, EVENT_VALUE_CHARS) };
  return { ...base, ...e };
}

/** the notification of an event, or undefined (recovered and pending notify nobody) */
export function notificationFor(
  w: Watch,
  e: WatchEvent,
): { priority: 'normal' | 'high'; body: Record<string, unknown> } | undefined {
  const tags = ['web', w.id];
  switch (e.type) {
    case 'changed': {
      const price = e.price
        ? `\n${e.price.before.amount} → ${e.price.after.amount}${e.price.after.currency ? ` ${e.price.after.currency}` : ''}`
        : '';
      return {
        priority: 'normal',
        body: {
          title: `Web: ${w.id} changed`,
          text: `${w.url}${price}\n${cut(e.diff.unified || `${e.before} → ${e.after}`, NOTIFY_DIFF_CHARS)}`,
          tags,
          dedupKey: `web-${w.id}-changed-${e.after.length}-${e.diff.changedChars}`,
        },
      };
    }
    case 'unchanged':
      return {
        priority: 'normal',
        body: {
          title: `Web: ${w.id} unchanged for ${e.days} days`,
          text: w.url,
          tags,
          dedupKey: `web-${w.id}-unchanged`,
        },
      };
    case 'broken':
      return {
        priority: 'high',
        body: {
          title: `Web: ${w.id} is broken`,
          text: `${w.url}\n${e.reason} (${e.failures} failed checks in a row); \`talon web watch show ${w.id}\``,
          tags,
          dedupKey: `web-${w.id}-broken`,
        },
      };
    default:
      return undefined;
  }
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const codeOf = (err: unknown): string | undefined => {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
};

/** browser.read's answer (the contract in the tool's file, runtime/tools/builtin/browser.ts) */
interface ReadOutput {
  url?: string;
  finalUrl?: string;
  status?: number;
  found?: boolean;
  text?: string | null;
  value?: string | null;
}

/** browser.run_flow's answer */
interface FlowOutput {
  ok?: boolean;
  output?: unknown;
  steps?: RunRecord['steps'];
  failure?: RunRecord['failure'];
  screenshots?: RunRecord['screenshots'];
  downloads?: RunRecord['downloads'];
  refused?: RunRecord['refused'];
}

export interface CheckOutcome {
  run: RunRecord;
  events: Array<Record<string, unknown>>;
  state: WatchState;
}

export interface WebHandOptions {
  now?: () => number;
  random?: () => number;
  /** how long the scheduler gets to answer (default 10 s) */
  schedulerTimeoutMs?: number;
}

type Scheduled = {
  key: string;
  jobId: string;
  schedule: string;
  job: Record<string, unknown>;
  fire: () => Promise<unknown>;
};

export class WebHand {
  readonly ctx: HandContext;
  readonly settings: ParsedSettings;
  readonly watches: Map<string, Watch>;
  readonly flows: Map<string, FlowEntry>;
  /** resolves when the schedules were put (or fell back to local timers) */
  scheduled: Promise<void> = Promise.resolve();
  #now: () => number;
  #random: () => number;
  #schedulerTimeoutMs: number;
  #client: TaskClient;
  #states = new Map<string, WatchState>();
  #checking = new Map<string, Promise<CheckOutcome>>();
  #lastFlowRun = new Map<string, RunSummary>();
  #scheduledBy = new Map<string, 'scheduler' | 'local'>();
  #local = new Map<string, () => void>();
  #unserve: (() => Promise<void>) | null = null;
  #stopRetry: (() => void) | null = null;
  #stopped = false;
  #counters = {
    checks: 0,
    checkFailures: 0,
    changes: 0,
    runs: { ok: 0, failed: 0, error: 0 } as Record<string, number>,
  };

  constructor(ctx: HandContext, opts: WebHandOptions = {}) {
    this.ctx = ctx;
    this.#now = opts.now ?? (() => Date.now());
    this.#random = opts.random ?? Math.random;
    this.#schedulerTimeoutMs = opts.schedulerTimeoutMs ?? SCHEDULER_TIMEOUT_MS;
    this.settings = parseSettings(ctx.settings);
    this.watches = new Map(this.settings.watches.map((w) => [w.id, w]));
    this.flows = new Map(this.settings.flows.map((f) => [f.name, f]));
    this.#client = new TaskClient(ctx);
  }

  async start(): Promise<void> {
    const ctx = this.ctx;
    const problems = this.settings.problems;
    for (const p of problems) ctx.log('error', p);
    if (problems.length > 0)
      ctx
        .audit('settings', ctx.name, { decision: 'error', detail: { problems: problems.slice(0, 50) } })
        .catch(() => undefined);
    for (const id of this.watches.keys()) {
      const raw = await ctx.store.get(`${WATCH_PREFIX}${id}`);
      if (raw === undefined) continue;
      try {
        this.#states.set(id, WatchState.fromJSON(raw));
      } catch (err) {
        ctx.log('warn', `web watch ${id}: its stored state is not readable (${message(err)}); a new baseline is taken`);
      }
    }
    for (const [, r] of await ctx.store.list<RunRecord>({ prefix: RUN_PREFIX, reverse: true, limit: SCAN_RUNS }))
      if (r.kind === 'flow' && !this.#lastFlowRun.has(r.name)) this.#lastFlowRun.set(r.name, summaryOf(r));
    this.#unserve = await serveTasks(ctx, (task) => this.task(task));
    this.#stopRetry = ctx.timers.every(RETRY_MS, async () => {
      if (this.settings.scheduler !== '' && [...this.#scheduledBy.values()].includes('local'))
        await this.syncSchedules().catch(() => undefined);
    });
    this.scheduled = this.syncSchedules().catch((err: unknown) =>
      ctx.log('error', `web: the schedules could not be set up: ${message(err)}`),
    );
    ctx.log('info', `watching ${this.watches.size} page(s), ${this.flows.size} flow(s)`);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopRetry?.();
    for (const cancel of this.#local.values()) cancel();
    this.#local.clear();
    await this.#unserve?.().catch(() => undefined);
  }

  // -- checks --------------------------------------------------------------------------------------------------------

  /** checks a watch now, or joins its check in flight */
  check(id: string, cause = 'api'): Promise<CheckOutcome> {
    const watch = this.watches.get(id);
    if (!watch)
      return Promise.reject(
        new TalonError(
          'NOT_FOUND',
          `watch "${id}" is not configured; the watches are: ${[...this.watches.keys()].join(', ') || 'none (add them to the settings)'}`,
        ),
      );
    const going = this.#checking.get(id);
    if (going) return going;
    const p = this.#check(watch, cause).finally(() => this.#checking.delete(id));
    this.#checking.set(id, p);
    return p;
  }

  /** what the page says now, as ./watch.ts Check */
  /** the page read for a check; `at` is the check's time (its run's start), so the run and the state agree */
  async #read(w: Watch, at: number): Promise<Check> {
    const timeoutMs = this.settings.checkTimeoutMs;
    try {
      if (w.what.kind === 'json') {
        const res = await this.ctx.fetch(w.url, { timeoutMs, headers: { accept: 'application/json' } });
        const body = await res.text();
        if (!res.ok) return { ok: false, error: `HTTP ${res.status}`, at };
        return { ok: true, value: body, at };
      }
      const input: Record<string, unknown> = { url: w.url, timeoutMs };
      if (w.what.kind === 'attribute') {
        input.selector = w.what.selector;
        input.attribute = w.what.name;
      } else if (w.what.selector !== undefined) {
        // text a script renders after the load is waited for; an element that never shows is a failed check (an
        // attribute's element may be invisible, <meta> or <link>: no wait there)
        input.selector = w.what.selector;
        input.waitFor = w.what.selector;
      }
      const r = await this.ctx.tools.call<ReadOutput>('browser.read', input);
      const out = r.output ?? {};
      if (typeof out.status === 'number' && out.status >= 400)
        return { ok: false, error: `HTTP ${out.status} from ${out.finalUrl ?? w.url}`, at };
      if (out.found === false) return { ok: true, value: null, at };
      const value = w.what.kind === 'attribute' ? (out.value ?? null) : (out.text ?? null);
      return { ok: true, value, at };
    } catch (err) {
      const code = codeOf(err);
      return { ok: false, error: `${code ? `${code}: ` : ''}${message(err)}`, at };
    }
  }

  async #check(w: Watch, cause: string): Promise<CheckOutcome> {
    const ctx = this.ctx;
    const startedAt = this.#now();
    const runId = newRunId(startedAt, this.#random);
    const check = await this.#read(w, startedAt);
    const before = this.#states.get(w.id) ?? new WatchState();
    const { state, events } = evaluate(w, before, check);
    this.#states.set(w.id, state);
    await ctx.store.put(`${WATCH_PREFIX}${w.id}`, state.toJSON());
    const last = state.history[state.history.length - 1];
    const failed = last?.result === 'failed';
    this.#counters.checks++;
    if (failed) this.#counters.checkFailures++;
    const payloads = events.map((e) => eventPayload(w, e, check.at, runId));
    for (const [i, e] of events.entries()) {
      if (e.type === 'changed') this.#counters.changes++;
      if (e.type !== 'pending') this.#publish(`web/watch/${w.id}/${e.type}`, payloads[i]!, 1);
      const n = notificationFor(w, e);
      if (n) this.#publish(`notify/${n.priority}`, n.body);
      if (e.type === 'changed')
        ctx
          .audit('watch.changed', w.id, {
            decision: 'info',
            detail: { url: w.url, runId, changedChars: e.diff.changedChars, ...(e.price && { price: e.price }) },
          })
          .catch(() => undefined);
      if (e.type === 'broken') {
        ctx.log('warn', `web watch ${w.id} is broken: ${e.reason}`);
        ctx
          .audit('watch.broken', w.id, {
            decision: 'error',
            detail: { url: w.url, runId, reason: e.reason, failures: e.failures },
          })
          .catch(() => undefined);
      }
    }
    const run: RunRecord = {
      id: runId,
      kind: 'check',
      name: w.id,
      at: startedAt,
      ok: !failed,
      ms: Math.max(0, this.#now() - startedAt),
      cause,
      events: events.map((e) => e.type),
      ...(failed && { error: check.ok ? (last?.note ?? 'the check failed') : check.error }),
    };
    await this.#record(run);
    return { run, events: payloads, state };
  }

  #publish(topic: string, payload: unknown, qos: 0 | 1 = 0): boolean {
    try {
      this.ctx.bus.publish(topic, payload, qos ? { qos } : undefined);
      return true;
    } catch (err) {
      this.ctx.log('warn', `web: not published on ${topic}: ${message(err)}`);
      return false;
    }
  }

  // -- flow runs -----------------------------------------------------------------------------------------------------

  /** the flow a `run` request names or defines; BAD_REQUEST naming the field or step, NOT_FOUND, before any browser */
  resolveFlow(req: { flow?: string; definition?: unknown }): FlowEntry {
    if ((req.flow === undefined) === (req.definition === undefined))
      throw new TalonError(
        'BAD_REQUEST',
        'give either flow (the name of a configured flow) or definition (a whole flow { name, steps } or { name, goal }), not both or neither',
      );
    if (req.flow !== undefined) {
      const f = this.flows.get(req.flow);
      if (!f)
        throw new TalonError(
          'NOT_FOUND',
          `flow "${req.flow}" is not configured; the flows are: ${[...this.flows.keys()].join(', ') || 'none (add them to the settings, or send a definition)'}`,
        );
      return f;
    }
    const e = parseFlowEntry(req.definition, 'definition', false);
    if (typeof e === 'string') throw new TalonError('BAD_REQUEST', e, { details: { field: 'definition' } });
    return e;
  }

  /** runs a flow (by name or definition) and records it; a failed step is a recorded run with ok false */
  async run(
    req: { flow?: string; definition?: unknown; inputs?: Record<string, unknown> },
    cause = 'api',
  ): Promise<RunRecord> {
    const entry = this.resolveFlow(req);
    const given = req.inputs ?? {};
    let inputs: Record<string, unknown> = {};
    if (entry.mode === 'steps') inputs = resolveInputs(entry.flow, given);
    else if (Object.keys(given).length > 0)
      throw new TalonError(
        'BAD_REQUEST',
        `inputs: the goal flow "${entry.name}" takes no inputs (write them into its goal)`,
      );
    const ctx = this.ctx;
    const startedAt = this.#now();
    const id = newRunId(startedAt, this.#random);
    const base = { id, kind: 'flow' as const, name: entry.name, at: startedAt, cause, mode: entry.mode };
    let run: RunRecord;
    let outcome: 'ok' | 'failed' | 'error';
    if (entry.mode === 'steps') {
      try {
        const r = await ctx.tools.call<FlowOutput>('browser.run_flow', { flow: entry.definition, inputs });
        const o = r.output ?? {};
        run = {
          ...base,
          ok: o.ok === true,
          ms: Math.max(0, this.#now() - startedAt),
          inputs: Object.keys(inputs),
          steps: o.steps ?? [],
          screenshots: o.screenshots ?? [],
          downloads: o.downloads ?? [],
          refused: o.refused ?? [],
          ...(o.output !== undefined && { output: o.output }),
          ...(o.failure && {
            failure: o.failure,
            error:
              o.failure.path && !o.failure.message.startsWith(o.failure.path)
                ? `${o.failure.path} ${o.failure.message}`
                : o.failure.message,
          }),
        };
        outcome = run.ok ? 'ok' : 'failed';
      } catch (err) {
        const code = codeOf(err);
        if (code === 'TOOL_BAD_INPUT' || code === 'BAD_REQUEST')
          throw new TalonError('BAD_REQUEST', message(err), { cause: err });
        run = {
          ...base,
          ok: false,
          ms: Math.max(0, this.#now() - startedAt),
          inputs: Object.keys(inputs),
          error: `${code ? `${code}: ` : ''}${message(err)}`,
        };
        outcome = 'error';
      }
    } else {
      try {
        const r = await ctx.agent.run({
          goal: entry.goal,
          tools: entry.tools,
          maxSteps: entry.maxSteps,
          ...(entry.output && { jsonSchema: entry.output }),
        });
        run = { ...base, ok: true, ms: Math.max(0, this.#now() - startedAt), output: r.answer, agentSteps: r.steps };
        outcome = 'ok';
      } catch (err) {
        const code = codeOf(err);
        run = {
          ...base,
          ok: false,
          ms: Math.max(0, this.#now() - startedAt),
          error: `${code ? `${code}: ` : ''}${message(err)}`,
        };
        outcome = 'failed';
      }
    }
    this.#counters.runs[outcome] = (this.#counters.runs[outcome] ?? 0) + 1;
    await this.#record(run);
    this.#lastFlowRun.set(entry.name, summaryOf(run));
    ctx
      .audit('flow.run', entry.name, {
        decision: run.ok ? 'ok' : 'error',
        detail: {
          runId: id,
          mode: entry.mode,
          ms: run.ms,
          cause,
          ...(run.failure && {
            failure: { path: run.failure.path, message: run.failure.message, url: run.failure.url },
          }),
          ...(run.error !== undefined && !run.failure && { error: run.error }),
        },
      })
      .catch(() => undefined);
    this.#publish(
      `web/flow/${entry.name}/run`,
      {
        runId: id,
        ok: run.ok,
        ms: run.ms,
        ...(run.output !== undefined && { output: run.output }),
        ...(run.failure && { failure: run.failure }),
        ...(run.error !== undefined && { error: run.error }),
      },
      1,
    );
    if (!run.ok) ctx.log('warn', `web flow ${entry.name} failed: ${run.error ?? 'no step failed, yet not ok'}`);
    return run;
  }

  // -- run records ---------------------------------------------------------------------------------------------------

  /** stores a run and deletes the ones past screenshotsKeep */
  async #record(run: RunRecord): Promise<void> {
    await this.ctx.store.put(`${RUN_PREFIX}${run.id}`, run);
    try {
      const keep = this.settings.screenshotsKeep;
      const rows = await this.ctx.store.list({ prefix: RUN_PREFIX, reverse: true, limit: STORE_PAGE });
      const old = rows.slice(keep);
      if (old.length > 0) await this.ctx.store.batch(old.map(([key]) => ({ type: 'del' as const, key })));
    } catch (err) {
      this.ctx.log('warn', `web: old runs could not be deleted: ${message(err)}`);
    }
  }

  async runs(q: Req<'runs'>): Promise<Ans<'runs'>> {
    const limit = q.limit ?? 50;
    const out: RunSummary[] = [];
    let after = q.before !== undefined ? `${RUN_PREFIX}${q.before}` : undefined;
    let more = false;
    for (let pages = 0; pages < 20 && !more; pages++) {
      const rows = await this.ctx.store.list<RunRecord>({
        prefix: RUN_PREFIX,
        reverse: true,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const [, r] of rows) {
        if (q.kind !== undefined && r.kind !== q.kind) continue;
        if (out.length === limit) {
          more = true;
          break;
        }
        out.push(summaryOf(r));
      }
      if (rows.length < STORE_PAGE) break;
      after = rows[rows.length - 1]![0];
    }
    return { runs: out, ...(more && out.length > 0 && { next: out[out.length - 1]!.id }) };
  }

  async runDetail(id: string): Promise<Ans<'runDetail'>> {
    const r = await this.ctx.store.get<RunRecord>(`${RUN_PREFIX}${id}`);
    if (!r) throw new TalonError('NOT_FOUND', `no run ${id}; \`talon web runs\` lists them (older ones are deleted)`);
    return { run: r };
  }

  // -- the task inbox -----------------------------------------------------------------------------------------------

  async task(task: unknown): Promise<unknown> {
    const t = task as { op?: unknown; watch?: unknown; flow?: unknown; inputs?: unknown } | null;
    const op = typeof t === 'object' && t !== null ? t.op : undefined;
    if (op === 'check') {
      if (typeof t!.watch !== 'string' || t!.watch === '')
        throw new TalonError('BAD_REQUEST', 'task.watch: op "check" needs the watch id (a string)');
      const r = await this.check(t!.watch, 'task');
      return { runId: r.run.id, ok: r.run.ok, events: r.run.events ?? [] };
    }
    if (op === 'run') {
      if (typeof t!.flow !== 'string' || t!.flow === '')
        throw new TalonError('BAD_REQUEST', 'task.flow: op "run" needs the flow name (a string)');
      const inputs = t!.inputs;
      if (inputs !== undefined && (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs)))
        throw new TalonError('BAD_REQUEST', 'task.inputs: must be an object { NAME: value }');
      const r = await this.run(
        { flow: t!.flow, ...(inputs !== undefined && { inputs: inputs as Record<string, unknown> }) },
        'task',
      );
      return {
        runId: r.id,
        ok: r.ok,
        ...(r.output !== undefined && { output: r.output }),
        ...(r.failure && { failure: r.failure }),
        ...(r.error !== undefined && { error: r.error }),
      };
    }
    throw new TalonError(
      'BAD_REQUEST',
      `task.op: must be "check" ({ op: 'check', watch }) or "run" ({ op: 'run', flow, inputs? }), not ${JSON.stringify(op ?? null)}`,
    );
  }

  // -- schedules ------------------------------------------------------------------------------------------------------

  #wanted(): Scheduled[] {
    const self = this.ctx.name;
    const out: Scheduled[] = [];
    for (const w of this.settings.watches) {
      if (!w.schedule) continue;
      const jobId = watchJobId(self, w.id);
      out.push({
        key: jobId,
        jobId,
        schedule: w.schedule,
        job: {
          id: jobId,
          description: `Check the page watch ${w.id}: ${w.url}`.slice(0, 200),
          trigger: { cron: w.schedule },
          action: { ask: { hand: self, task: { op: 'check', watch: w.id }, timeout: '2m' } },
          policy: { overlap: 'skip', timeout: '3m' },
        },
        fire: () => this.check(w.id, 'schedule'),
      });
    }
    for (const f of this.settings.flows) {
      if (!f.schedule) continue;
      const jobId = flowJobId(self, f.name);
      const minutes = f.mode === 'steps' ? Math.ceil(f.flow.limits.timeoutMs / 60_000) + 1 : 5;
      out.push({
        key: jobId,
        jobId,
        schedule: f.schedule,
        job: {
          id: jobId,
          description: `Run the browser flow ${f.name}`.slice(0, 200),
          trigger: { cron: f.schedule },
          action: { ask: { hand: self, task: { op: 'run', flow: f.name }, timeout: `${minutes}m` } },
          policy: { overlap: 'skip', timeout: `${minutes + 1}m` },
        },
        fire: () => this.run({ flow: f.name }, 'schedule'),
      });
    }
    return out;
  }

  /**
   * Puts each scheduled watch's and flow's job into the Scheduling Hand; one whose job is not taken (the scheduler
   * not answering, refusing, or `scheduler: ''`) runs on a local cron. When the scheduler answered, its jobs of this
   * Hand (`web-<self>-…`) no longer wanted are removed.
   */
  async syncSchedules(): Promise<void> {
    const ctx = this.ctx;
    const scheduler = this.settings.scheduler;
    const wanted = this.#wanted();
    if (scheduler === '') {
      for (const s of wanted) this.#localCron(s);
      return;
    }
    let answering = true;
    for (const s of wanted) {
      if (this.#stopped) return;
      if (this.#scheduledBy.get(s.key) === 'scheduler') continue;
      if (!JOB_ID.test(s.jobId)) {
        ctx.log('warn', `web: the job id ${s.jobId} is too long for the scheduler; local timer`);
        this.#localCron(s);
        continue;
      }
      if (!answering) {
        this.#localCron(s);
        continue;
      }
      try {
        await this.#client.ask(scheduler, { op: 'put', job: s.job }, { timeoutMs: this.#schedulerTimeoutMs });
        this.#local.get(s.key)?.();
        this.#local.delete(s.key);
        this.#scheduledBy.set(s.key, 'scheduler');
      } catch (err) {
        const code = codeOf(err);
        if (code === 'BAD_REQUEST' || code === 'CAPABILITY_DENIED' || code === 'CONFLICT')
          ctx.log('error', `web: the scheduler refused the job ${s.jobId}: ${message(err)}; local timer`);
        else {
          answering = false;
          ctx.log(
            'warn',
            `web: the Scheduling Hand "${scheduler}" did not take the schedules (${message(err)}); local timers until it answers`,
          );
        }
        this.#localCron(s);
      }
    }
    if (!answering || this.#stopped) return;
    const prefix = `web-${ctx.name}-`;
    const keep = new Set(wanted.map((s) => s.jobId));
    try {
      const r = (await this.#client.ask(scheduler, { op: 'list' }, { timeoutMs: this.#schedulerTimeoutMs })) as {
        jobs?: Array<{ id?: unknown; source?: unknown; spec?: { action?: { ask?: { hand?: unknown } } } }>;
      };
      for (const j of r?.jobs ?? []) {
        if (typeof j.id !== 'string' || !j.id.startsWith(prefix) || keep.has(j.id) || j.source === 'config') continue;
        // `web-<self>-…` could be another Hand's whose name starts with ours: the job's action says whose
        if (j.spec && j.spec.action?.ask?.hand !== ctx.name) continue;
        await this.#client.ask(scheduler, { op: 'remove', id: j.id }, { timeoutMs: this.#schedulerTimeoutMs });
        ctx.log('info', `web: removed the job ${j.id} (no longer scheduled)`);
      }
    } catch (err) {
      ctx.log('warn', `web: the scheduler's jobs could not be tidied: ${message(err)}`);
    }
  }

  /** a cron on the Hand's own timers (lost when it stops; set again at the next start) */
  #localCron(s: Scheduled): void {
    if (this.#stopped) return;
    this.#local.get(s.key)?.();
    const cron = new Cron(s.schedule, { paused: true });
    const h = { cancel: (): void => undefined };
    const arm = (): void => {
      const next = cron.nextRun()?.getTime();
      if (next === undefined || this.#stopped) return;
      const wait = (): void => {
        const left = next - Date.now();
        if (left > 0) {
          h.cancel = this.ctx.timers.after(Math.min(left, MAX_TIMER_MS), wait);
          return;
        }
        s.fire().catch((err: unknown) =>
          this.ctx.log('error', `web: the scheduled ${s.jobId} failed: ${message(err)}`),
        );
        arm();
      };
      h.cancel = this.ctx.timers.after(Math.max(0, Math.min(next - Date.now(), MAX_TIMER_MS)), wait);
    };
    arm();
    this.#local.set(s.key, () => h.cancel());
    this.#scheduledBy.set(s.key, 'local');
  }

  // -- views ----------------------------------------------------------------------------------------------------------

  watchView(w: Watch): WatchView {
    const s = this.#states.get(w.id) ?? new WatchState();
    return {
      id: w.id,
      url: w.url,
      what: whatWords(w),
      ...(w.schedule !== undefined && {
        schedule: w.schedule,
        scheduledBy: this.#scheduledBy.get(watchJobId(this.ctx.name, w.id)) ?? 'none',
      }),
      ...(s.value !== null && { value: cut(s.value, EXCERPT_CHARS) }),
      ...(s.lastCheckAt !== null && { lastCheckAt: s.lastCheckAt }),
      ...(s.lastChangeAt !== null && { lastChangeAt: s.lastChangeAt }),
      broken: s.broken,
      failures: s.failures,
      pending: s.pending !== null,
      checking: this.#checking.has(w.id),
    };
  }

  watchesView(): Ans<'watches'> {
    return { watches: this.settings.watches.map((w) => this.watchView(w)) };
  }

  async watchDetail(id: string): Promise<Ans<'watch'>> {
    const w = this.watches.get(id);
    if (!w)
      throw new TalonError('NOT_FOUND', `watch "${id}" is not configured; \`talon web watch list\` lists the watches`);
    const runs: RunSummary[] = [];
    for (const [, r] of await this.ctx.store.list<RunRecord>({ prefix: RUN_PREFIX, reverse: true, limit: SCAN_RUNS })) {
      if (r.kind === 'check' && r.name === id) runs.push(summaryOf(r));
      if (runs.length === 20) break;
    }
    return {
      watch: this.watchView(w),
      history: (this.#states.get(id) ?? new WatchState()).history.map((h) => ({ ...h })),
      runs,
    };
  }

  flowsView(): Ans<'flows'> {
    return {
      flows: this.settings.flows.map((f) => {
        const last = this.#lastFlowRun.get(f.name);
        const common = {
          name: f.name,
          mode: f.mode,
          ...(f.schedule !== undefined && {
            schedule: f.schedule,
            scheduledBy: this.#scheduledBy.get(flowJobId(this.ctx.name, f.name)) ?? ('none' as const),
          }),
          ...(last && { lastRun: last }),
        };
        if (f.mode === 'goal')
          return {
            ...common,
            goal: f.goal,
            inputs: {},
            ...(f.description !== undefined && { description: f.description }),
          };
        return {
          ...common,
          steps: f.flow.steps.length,
          inputs: Object.fromEntries(Object.entries(f.flow.inputs).map(([k, v]) => [k, v.type])),
          ...(f.flow.description !== undefined && { description: f.flow.description }),
        };
      }),
    };
  }

  stats(): Ans<'stats'> {
    const c = this.#counters;
    let broken = 0;
    for (const id of this.watches.keys()) if (this.#states.get(id)?.broken) broken++;
    return {
      stats: {
        watches: this.watches.size,
        flows: this.flows.size,
        checks: c.checks,
        checkFailures: c.checkFailures,
        changes: c.changes,
        broken,
        runs: { ...c.runs },
      },
    };
  }
}

let hand: WebHand | null = null;

/** the running Hand; HAND_STOPPED between stop() and the worker's end */
function running(): WebHand {
  if (!hand) throw new TalonError('HAND_STOPPED', 'the Web Automation Hand is not running');
  return hand;
}

export default defineHand({
  manifest: {
    id: 'web-automation',
    version: '1.0.0',
    description:
      'Web automation through the shared Chromium of the kernel: watches pages for changes (text, JSON, attribute, price; noise controls; broken selectors alert) and runs scripted or model-directed browser flows',
    capabilities: {
      // its events and notifications; asks the scheduler (its inbox) and answers askers (their reply topics); its
      // own inbox and replies under the default instance name `web` (a config naming the Hand otherwise grants
      // hands/<name>/#); the browser tools (each checks every request against the Hand's network grant)
      bus: {
        publish: ['web/#', 'notify/+', 'hands/+/tasks', 'hands/+/replies'],
        subscribe: ['hands/web/tasks', 'hands/web/replies'],
      },
      tools: ['browser.*'],
    },
    // what a config grants: the sites (any host; LAN addresses only when named), the secrets a flow fills in, a model
    // for goal flows and model extracts, other tools for goal flows
    optionalCapabilities: {
      network: { hosts: ['*', '0.0.0.0/0', '::/0'] },
      secrets: ['*'],
      llm: { tokensPerHour: 1_000_000 },
      tools: ['*'],
      bus: { publish: ['#'], subscribe: ['#'] },
    },
    quotas: { heapMb: 128, messagesPerSec: 200 },
    settingsSchema: settingsSchema as unknown as Record<string, unknown>,
  },
  async start(ctx) {
    hand = new WebHand(ctx);
    await hand.start();
  },
  async stop() {
    const h = hand;
    hand = null;
    await h?.stop();
  },
  protocol,
  requests: {
    watches: () => running().watchesView(),
    check: async (q: Req<'check'>) => {
      const h = running();
      const r = await h.check(q.id, 'api');
      return { watch: h.watchView(h.watches.get(q.id)!), events: r.events, run: summaryOf(r.run) } as Ans<'check'>;
    },
    watch: (q: Req<'watch'>) => running().watchDetail(q.id),
    flows: () => running().flowsView(),
    run: async (q: Req<'run'>) => ({
      run: await running().run({
        ...(q.flow !== undefined && { flow: q.flow }),
        ...(q.definition !== undefined && { definition: q.definition }),
        ...(q.inputs !== undefined && { inputs: q.inputs as Record<string, unknown> }),
      }),
    }),
    runs: (q: Req<'runs'>) => running().runs(q),
    runDetail: (q: Req<'runDetail'>) => running().runDetail(q.id),
    stats: () => running().stats(),
  },
});
