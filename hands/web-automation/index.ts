/**
 * The Web Automation Hand: watches (pages checked for changes) and flows (scripted browser steps, or a goal for the
 * agent loop). Chromium lives in the kernel (runtime/browser/): the Hand reaches it only through the kernel's tools,
 * under its own tools and network grants —
 *
 *   a check      `browser.read` { url, selector?, waitFor?, attribute?, visual?, timeoutMs } (a JSON watch:
 *                ctx.fetch of the URL, the body handed over whole; a visual one: the region's fingerprint and its
 *                screenshot, ./visual.ts)
 *                → ./watch.ts evaluate(watch, state, check): the state is stored (`watch/<id>`), the events
 *                published, the last change kept (`change/<id>`), the run recorded. One check at a time per watch (a
 *                second ask joins it).
 *   watches      from the settings (`source: 'config'`) and added at run time through the API or `talon web watch add`
 *                (`source: 'api'`, stored as written under `def/<id>`, read back at start; checked by the same
 *                parseWatch). Together at most MAX_WATCHES; an API watch never replaces or removes a config one
 *                (CONFLICT). Adding, replacing or removing one puts or removes its scheduler job like a config watch's.
 *   a flow run   `browser.run_flow` { flow, inputs } for a scripted flow (checked by runtime/core/flow.ts before the
 *                tool is called: a bad definition is BAD_REQUEST naming the step and no browser starts); a goal flow
 *                is `ctx.agent.run({ goal, tools: ['browser.*'], maxSteps, maxTokens, deadlineMs: timeoutMs, jsonSchema: output })`. The run record keeps
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
 * Store keys: watch/<id> the WatchState (./watch.ts WatchStateData); def/<id> an API watch ({ watch: as written,
 * addedAt }); change/<id> the last change of a watch (its diff, or its visual share and screenshot); run/<runId> a run
 * record (the newest `screenshotsKeep` are kept). The screenshot and download files are the kernel's tool's: deleting them is not done
 * here (a worker may not reach them).
 */
import { Cron } from 'croner';
import { InFlight, ScheduleSync, defineHand, type AnswerOf, type RequestOf, type ScheduledJob } from '../sdk/index.ts';
import type { HandContext } from '../sdk/types.ts';
import { TaskClient, serveTasks } from '../sdk/tasks.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { resolveInputs } from '../../runtime/core/flow.ts';
import { protocol, type WebProtocol } from './protocol.ts';
import { parseFlowEntry, parseSettings, settingsSchema, type FlowEntry, type ParsedSettings } from './settings.ts';
import { MAX_WATCHES } from './settings.ts';
import {
  WatchState,
  evaluate,
  parseWatch,
  visualValueWords,
  type Check,
  type Watch,
  type WatchEvent,
} from './watch.ts';
import { encodeVisual, parseVisual, visualWords } from './visual.ts';

type Req<K extends keyof WebProtocol & string> = RequestOf<WebProtocol, K>;
type Ans<K extends keyof WebProtocol & string> = AnswerOf<WebProtocol, K>;

/** the scheduler's answer to a put, list or remove */
const SCHEDULER_TIMEOUT_MS = 10_000;
/** how often a scheduler that did not answer is tried again */
const RETRY_MS = 3600_000;
const STORE_PAGE = 1000;
/** characters of a value in a view, and of before/after in an event */
const EXCERPT_CHARS = 200;
const EVENT_VALUE_CHARS = 10_000;
const NOTIFY_DIFF_CHARS = 3000;
/** run records scanned for a watch's recent runs and the flows' last runs */
const SCAN_RUNS = 1000;

export const WATCH_PREFIX = 'watch/';
export const RUN_PREFIX = 'run/';
/** API watches as written */
export const DEF_PREFIX = 'def/';
/** the last change of each watch */
export const CHANGE_PREFIX = 'change/';

/** where a watch comes from: the settings, or the API (`talon web watch add`) */
export type WatchSource = 'config' | 'api';

/** an API watch as stored under def/<id> */
export interface StoredWatch {
  watch: Record<string, unknown>;
  addedAt: number;
}

/** a watch's last change as kept under change/<id> and answered in its detail */
export type LastChange = NonNullable<Ans<'watch'>['lastChange']>;

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
    case 'visual':
      return `visual ${x.selector ?? '(the viewport)'}${x.tolerance !== 16 ? ` ±${x.tolerance}` : ''}`;
    default:
      return `${x.kind} ${x.selector ?? '(the page)'}`;
  }
}

const cut = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n)}…` : s);

/** an event as published and answered: before/after cut to EVENT_VALUE_CHARS */
export function eventPayload(w: Watch, e: WatchEvent, at: number, runId: string): Record<string, unknown> {
  const base = { watch: w.id, url: w.url, at, runId };
  // a picture's before and after are fingerprints: said in words here (the state keeps them)
  if ((e.type === 'changed' || e.type === 'pending') && e.visual)
    return { ...base, ...e, before: visualValueWords(e.before), after: visualValueWords(e.after) };
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
      if (e.visual)
        return {
          priority: 'normal',
          body: {
            title: `Web: ${w.id} changed`,
            text: `${w.url}\n${visualWords(e.visual)}${e.screenshot ? `\nscreenshot: ${e.screenshot}` : ''}`,
            tags,
            dedupKey: `web-${w.id}-changed-${e.visual.changedCells}-${e.visual.width}x${e.visual.height}`,
          },
        };
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
  /** with visual: true (the fingerprint, ./visual.ts Visual) and screenshot: true */
  visual?: unknown;
  screenshot?: string;
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

export class WebHand {
  readonly ctx: HandContext;
  readonly settings: ParsedSettings;
  readonly watches: Map<string, Watch>;
  readonly flows: Map<string, FlowEntry>;
  /** resolves when the schedules were put (or fell back to local timers) */
  scheduled: Promise<void> = Promise.resolve();
  #now: () => number;
  #random: () => number;
  #client: TaskClient;
  #schedules: ScheduleSync;
  #states = new Map<string, WatchState>();
  /** where each watch in `watches` comes from */
  #sources = new Map<string, WatchSource>();
  #checking = new InFlight<string, CheckOutcome>();
  #lastFlowRun = new Map<string, RunSummary>();
  #unserve: (() => Promise<void>) | null = null;
  #stopRetry: (() => void) | null = null;
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
    this.settings = parseSettings(ctx.settings);
    this.watches = new Map(this.settings.watches.map((w) => [w.id, w]));
    for (const id of this.watches.keys()) this.#sources.set(id, 'config');
    this.flows = new Map(this.settings.flows.map((f) => [f.name, f]));
    this.#client = new TaskClient(ctx);
    this.#schedules = new ScheduleSync({
      ctx,
      client: this.#client,
      Cron,
      label: 'web',
      prefix: watchJobId(ctx.name, ''),
      timeoutMs: opts.schedulerTimeoutMs ?? SCHEDULER_TIMEOUT_MS,
    });
  }

  async start(): Promise<void> {
    const ctx = this.ctx;
    const problems = this.settings.problems;
    for (const p of problems) ctx.log('error', p);
    if (problems.length > 0)
      ctx
        .audit('settings', ctx.name, { decision: 'error', detail: { problems: problems.slice(0, 50) } })
        .catch(() => undefined);
    await this.#loadAdded();
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
    this.#stopRetry = ctx.timers.every(RETRY_MS, () => this.#schedules.retry().catch(() => undefined));
    this.scheduled = this.syncSchedules().catch((err: unknown) =>
      ctx.log('error', `web: the schedules could not be set up: ${message(err)}`),
    );
    ctx.log('info', `watching ${this.watches.size} page(s), ${this.flows.size} flow(s)`);
  }

  /** the API watches kept in the store, checked again (a bad one, or one the config now holds, is left out) */
  async #loadAdded(): Promise<void> {
    const ctx = this.ctx;
    for (const [key, stored] of await ctx.store.list<StoredWatch>({ prefix: DEF_PREFIX, limit: STORE_PAGE })) {
      const id = key.slice(DEF_PREFIX.length);
      const w = parseWatch(stored?.watch, `watch ${id}`);
      if (typeof w === 'string' || w.id !== id) {
        ctx.log('warn', `web: the added watch ${id} is left out: ${typeof w === 'string' ? w : 'its id differs'}`);
        continue;
      }
      if (this.#sources.get(id) === 'config') {
        ctx.log('warn', `web: the added watch ${id} is left out: the config has a watch ${id} (the config's is used)`);
        continue;
      }
      if (this.watches.size >= MAX_WATCHES) {
        ctx.log('warn', `web: the added watch ${id} is left out: at most ${MAX_WATCHES} watches (config and API)`);
        continue;
      }
      this.watches.set(id, w);
      this.#sources.set(id, 'api');
    }
  }

  /** where a watch comes from; undefined when there is no such watch */
  sourceOf(id: string): WatchSource | undefined {
    return this.#sources.get(id);
  }

  /**
   * Adds or replaces an API watch (`raw` as written; its id is the path's): checked by parseWatch (BAD_REQUEST naming
   * the field, nothing stored), refused when the config has that id or the watches are full (CONFLICT). A replaced
   * watch keeps its state when its URL and what it compares are the same, else it takes a new baseline. Its scheduler
   * job is put (or removed) after the answer.
   */
  async putWatch(id: string, raw: unknown): Promise<Ans<'putWatch'>> {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new TalonError('BAD_REQUEST', 'watch: must be an object { url, what, schedule?, … }', {
        details: { field: 'watch' },
      });
    const given = raw as Record<string, unknown>;
    if (given.id !== undefined && given.id !== id)
      throw new TalonError(
        'BAD_REQUEST',
        `watch.id: ${JSON.stringify(given.id)} differs from the path's "${id}"; use the same id (or leave it out)`,
        { details: { field: 'watch.id' } },
      );
    if (this.#sources.get(id) === 'config')
      throw new TalonError(
        'CONFLICT',
        `watch "${id}" is in the config: change it there (the API replaces and removes only the watches it added)`,
      );
    const written = { ...given, id };
    const w = parseWatch(written, 'watch');
    if (typeof w === 'string') {
      const field = /^(watch(?:\.[A-Za-z]+)?)/.exec(w)?.[1] ?? 'watch';
      throw new TalonError('BAD_REQUEST', w, { details: { field } });
    }
    const old = this.watches.get(id);
    if (!old && this.watches.size >= MAX_WATCHES)
      throw new TalonError(
        'CONFLICT',
        `at most ${MAX_WATCHES} watches (config and API together); remove one first (\`talon web watch remove ID\`)`,
      );
    const stored: StoredWatch = { watch: written, addedAt: this.#now() };
    await this.ctx.store.put(`${DEF_PREFIX}${id}`, stored);
    if (old && (old.url !== w.url || whatWords(old) !== whatWords(w))) {
      this.#states.delete(id);
      await this.ctx.store.batch([
        { type: 'del', key: `${WATCH_PREFIX}${id}` },
        { type: 'del', key: `${CHANGE_PREFIX}${id}` },
      ]);
    }
    this.watches.set(id, w);
    this.#sources.set(id, 'api');
    this.#schedules.forget(watchJobId(this.ctx.name, id));
    this.#resync();
    this.ctx.log('info', `web: watch ${id} ${old ? 'replaced' : 'added'} (${whatWords(w)} of ${w.url})`);
    return { watch: this.watchView(w), created: !old };
  }

  /** removes an API watch, its state and its scheduler job; NOT_FOUND, or CONFLICT for a config watch */
  async removeWatch(id: string): Promise<Ans<'removeWatch'>> {
    const source = this.#sources.get(id);
    if (!source) throw new TalonError('NOT_FOUND', `no watch "${id}"; \`talon web watch list\` lists the watches`);
    if (source === 'config')
      throw new TalonError(
        'CONFLICT',
        `watch "${id}" is in the config: remove it there (the API removes only the watches it added)`,
      );
    this.watches.delete(id);
    this.#sources.delete(id);
    this.#states.delete(id);
    await this.ctx.store.batch(
      [DEF_PREFIX, WATCH_PREFIX, CHANGE_PREFIX].map((p) => ({ type: 'del' as const, key: `${p}${id}` })),
    );
    this.#schedules.forget(watchJobId(this.ctx.name, id));
    this.#resync();
    this.ctx.log('info', `web: watch ${id} removed`);
    return { removed: id };
  }

  /** a sync of the schedules after the ones going (never two at once: a tidy must see the latest watches) */
  #resync(): void {
    this.scheduled = this.scheduled
      .then(() => this.syncSchedules())
      .catch((err: unknown) => this.ctx.log('error', `web: the schedules could not be set up: ${message(err)}`));
  }

  async stop(): Promise<void> {
    this.#stopRetry?.();
    this.#schedules.stop();
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
          `watch "${id}" is not configured; the watches are: ${[...this.watches.keys()].join(', ') || 'none (add them to the settings or with `talon web watch add`)'}`,
        ),
      );
    return this.#checking.run(id, () => this.#check(watch, cause));
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
      if (w.what.kind === 'visual') input.visual = true;
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
      if (w.what.kind === 'visual') {
        const v = parseVisual(out.visual);
        if (typeof v === 'string')
          return { ok: false, error: `browser.read answered no fingerprint of the region (${v})`, at };
        return {
          ok: true,
          value: encodeVisual(v),
          at,
          ...(out.screenshot !== undefined && { screenshot: out.screenshot }),
        };
      }
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
    // a watch removed or replaced while its page loaded: its state is not written back
    const current = this.watches.get(w.id) === w;
    if (current) {
      this.#states.set(w.id, state);
      await ctx.store.put(`${WATCH_PREFIX}${w.id}`, state.toJSON());
    }
    const last = state.history[state.history.length - 1];
    const failed = last?.result === 'failed';
    this.#counters.checks++;
    if (failed) this.#counters.checkFailures++;
    const payloads = events.map((e) => eventPayload(w, e, check.at, runId));
    for (const [i, e] of events.entries()) {
      if (e.type === 'changed') this.#counters.changes++;
      if (e.type === 'changed' && current) {
        const p = payloads[i]!;
        const change: LastChange = {
          at: check.at,
          runId,
          before: cut(String(p.before), EVENT_VALUE_CHARS),
          after: cut(String(p.after), EVENT_VALUE_CHARS),
          ...(e.visual ? { visual: { ...e.visual, before: { ...e.visual.before } } } : { diff: e.diff.unified }),
          ...(e.screenshot !== undefined && { screenshot: e.screenshot }),
          ...(e.price && { price: { ...e.price } as Record<string, unknown> }),
        };
        await ctx.store
          .put(`${CHANGE_PREFIX}${w.id}`, change)
          .catch((err: unknown) => ctx.log('warn', `web watch ${w.id}: its last change was not kept: ${message(err)}`));
      }
      if (e.type !== 'pending') this.#publish(`web/watch/${w.id}/${e.type}`, payloads[i]!, 1);
      const n = notificationFor(w, e);
      if (n) this.#publish(`notify/${n.priority}`, n.body);
      if (e.type === 'changed')
        ctx
          .audit('watch.changed', w.id, {
            decision: 'info',
            detail: {
              url: w.url,
              runId,
              changedChars: e.diff.changedChars,
              ...(e.price && { price: e.price }),
              ...(e.visual && { visualPercent: e.visual.percent, screenshot: e.screenshot }),
            },
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
      ...(check.ok && check.screenshot !== undefined && { screenshots: [{ name: 'visual', file: check.screenshot }] }),
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
          ...(entry.maxTokens !== undefined && { maxTokens: entry.maxTokens }),
          ...(entry.timeoutMs !== undefined && { deadlineMs: entry.timeoutMs }),
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

  /** the scheduled watches' and flows' jobs (../sdk/schedules.ts) */
  #wanted(): ScheduledJob[] {
    const self = this.ctx.name;
    const out: ScheduledJob[] = [];
    for (const w of this.watches.values()) {
      if (!w.schedule) continue;
      const id = watchJobId(self, w.id);
      out.push({
        id,
        cron: w.schedule,
        job: {
          id,
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
      const id = flowJobId(self, f.name);
      const minutes = f.mode === 'steps' ? Math.ceil(f.flow.limits.timeoutMs / 60_000) + 1 : 5;
      out.push({
        id,
        cron: f.schedule,
        job: {
          id,
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
   * Hand (`web-<self>-…`) no longer wanted are removed (../sdk/schedules.ts).
   */
  async syncSchedules(): Promise<void> {
    await this.#schedules.sync(this.settings.scheduler, this.#wanted());
  }

  // -- views ----------------------------------------------------------------------------------------------------------

  watchView(w: Watch): WatchView {
    const s = this.#states.get(w.id) ?? new WatchState();
    const value = s.value === null ? null : w.what.kind === 'visual' ? visualValueWords(s.value) : s.value;
    return {
      id: w.id,
      url: w.url,
      what: whatWords(w),
      kind: w.what.kind,
      source: this.#sources.get(w.id) ?? 'config',
      ...(w.schedule !== undefined && {
        schedule: w.schedule,
        scheduledBy: this.#schedules.by(watchJobId(this.ctx.name, w.id)) ?? 'none',
      }),
      ...(value !== null && { value: cut(value, EXCERPT_CHARS) }),
      ...(s.lastCheckAt !== null && { lastCheckAt: s.lastCheckAt }),
      ...(s.lastChangeAt !== null && { lastChangeAt: s.lastChangeAt }),
      broken: s.broken,
      failures: s.failures,
      pending: s.pending !== null,
      checking: this.#checking.has(w.id),
    };
  }

  watchesView(): Ans<'watches'> {
    return { watches: [...this.watches.values()].map((w) => this.watchView(w)) };
  }

  async watchDetail(id: string): Promise<Ans<'watch'>> {
    const w = this.watches.get(id);
    if (!w)
      throw new TalonError('NOT_FOUND', `watch "${id}" is not configured; \`talon web watch list\` lists the watches`);
    const lastChange = await this.ctx.store.get<LastChange>(`${CHANGE_PREFIX}${id}`);
    const runs: RunSummary[] = [];
    for (const [, r] of await this.ctx.store.list<RunRecord>({ prefix: RUN_PREFIX, reverse: true, limit: SCAN_RUNS })) {
      if (r.kind === 'check' && r.name === id) runs.push(summaryOf(r));
      if (runs.length === 20) break;
    }
    return {
      watch: this.watchView(w),
      history: (this.#states.get(id) ?? new WatchState()).history.map((h) => ({ ...h })),
      runs,
      ...(lastChange && { lastChange }),
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
            scheduledBy: this.#schedules.by(flowJobId(this.ctx.name, f.name)) ?? ('none' as const),
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
      'Web automation through the shared Chromium of the kernel: watches pages for changes (text, JSON, attribute, price, visual; noise controls; broken selectors alert) and runs scripted or model-directed browser flows',
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
      const w = h.watches.get(q.id);
      if (!w) throw new TalonError('NOT_FOUND', `watch "${q.id}" was removed while it was checked`);
      return { watch: h.watchView(w), events: r.events, run: summaryOf(r.run) } as Ans<'check'>;
    },
    putWatch: (q: Req<'putWatch'>) => running().putWatch(q.id, q.watch),
    removeWatch: (q: Req<'removeWatch'>) => running().removeWatch(q.id),
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
