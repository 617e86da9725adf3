/**
 * The Scheduling Hand: durable schedules (cron with seconds and a time zone, intervals, one-shot times), bus-event
 * triggers and dependency chains, whose actions start/stop Hands, publish, ask a Hand a task, call a tool or run an
 * agent goal. The engine (./engine.ts) does the scheduling; this file wires it to the Hand's context:
 *
 *   clock     wall Date.now, monotonic performance.now, one timer through ctx.timers (stops with the Hand)
 *   store     ctx.store: batches (synced) for the run journal, prefix listing paged past the kernel's 1000 rows
 *   actions   ./actions.ts through ctx (tools, bus, agent, the task protocol)
 *   trust     ./clock.ts: cron and `at` wait for a synchronised wall clock
 *   checks    ./jobs.ts validateJob with the Hand's grants and the device's Hands (`hands.list`, cached 5 s)
 *
 * Bus (relative to talon/<deviceId>/):
 *   hands/<name>/tasks     its task inbox (../sdk/tasks.ts): { op: 'put', job } | { op: 'remove', id } |
 *                          { op: 'run', id } | { op: 'list' } | { op: 'get', id } — how other Hands schedule follow-ups
 *   hands/<name>/replies   answers to its own `ask` actions
 *   hands/<name>/runs      every run record as it starts and ends (QoS 0)
 *   hands/<name>/jobs      { id, change: put | removed | paused | resumed } (QoS 0)
 *   <event topics>         the filters of its event triggers (within its subscribe grant)
 * Requests (./protocol.ts, served by ./surface.ts's routes): list, get, put, remove, run, pause, resume, history,
 * stats.
 */
import { getHeapStatistics } from 'node:v8';
import { defineHand, type AnswerOf, type RequestOf } from '../sdk/index.ts';
import type { HandContext, HandStore } from '../sdk/types.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { Grants } from '../../runtime/core/grants.ts';
import { serveTasks } from '../sdk/tasks.ts';
import { HandActions } from './actions.ts';
import { ClockWatch } from './clock.ts';
import { Engine, type EngineConfig } from './engine.ts';
import { validateJob } from './jobs.ts';
import { protocol, type SchedulingProtocol } from './protocol.ts';
import { parseSettings, settingsSchema } from './settings.ts';
import type { EngineClock, EngineEvent, EngineStore, JobView, RunRecord } from './types.ts';

type Req<K extends keyof SchedulingProtocol & string> = RequestOf<SchedulingProtocol, K>;
type Ans<K extends keyof SchedulingProtocol & string> = AnswerOf<SchedulingProtocol, K>;

/** the longest one setTimeout takes (about 24.8 days); longer waits are chained */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** the kernel's store lists at most this many rows at once */
const STORE_PAGE = 1000;
/** the kernel's store writes at most this many operations in one batch */
const STORE_BATCH = 1000;
/** how long the device's Hand list is trusted for the job checks */
const HANDS_CACHE_MS = 5000;

/** The engine's clock on the Hand's timers: cancelled with the Hand, long waits chained past setTimeout's limit. */
export function handClock(ctx: Pick<HandContext, 'timers'>): EngineClock {
  return {
    wall: () => Date.now(),
    mono: () => performance.now(),
    setTimer(fn, ms) {
      const h = { cancel: (): void => undefined };
      const arm = (left: number): void => {
        const step = Math.min(Math.max(0, left), MAX_TIMER_MS);
        h.cancel = ctx.timers.after(step, () => (left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : fn()));
      };
      arm(ms);
      return h;
    },
    clearTimer(handle) {
      (handle as { cancel?: () => void } | undefined)?.cancel?.();
    },
  };
}

/** The engine's store over the Hand's: batches over 1000 operations in chunks, listings past 1000 rows paged. */
export function handEngineStore(store: HandStore): EngineStore {
  return {
    get: (key) => store.get(key),
    async batch(ops, opts) {
      for (let i = 0; i < ops.length; i += STORE_BATCH)
        await store.batch(ops.slice(i, i + STORE_BATCH), opts?.sync ? { sync: true } : {});
    },
    async list<T>(opts: { prefix: string; limit?: number; reverse?: boolean; after?: string }) {
      const limit = opts.limit ?? Number.POSITIVE_INFINITY;
      const out: Array<[string, T]> = [];
      let after = opts.after;
      while (out.length < limit) {
        const page = await store.list<T>({
          prefix: opts.prefix,
          limit: Math.min(STORE_PAGE, limit - out.length),
          ...(opts.reverse ? { reverse: true } : {}),
          ...(after !== undefined ? { after } : {}),
        });
        out.push(...page);
        if (page.length < STORE_PAGE) break;
        after = page[page.length - 1]![0];
      }
      return out;
    },
  };
}

export interface SchedulingHandOptions {
  clock?: EngineClock;
  /** the clock's trust (tests); default ./clock.ts over ctx.call('clock.status') */
  clockSynced?: () => boolean;
  /** the worker's heap, used and limit in bytes (tests); default node:v8's statistics */
  heap?: () => { used: number; limit: number };
}

/** a new job is refused while the heap is this full: past it V8 collects without end and the kernel stops the Hand */
export const HEAP_FULL = 0.75;

function v8Heap(): { used: number; limit: number } {
  const h = getHeapStatistics();
  return { used: h.used_heap_size, limit: h.heap_size_limit };
}

export class SchedulingHand {
  readonly ctx: HandContext;
  readonly engine: Engine;
  readonly actions: HandActions;
  readonly clockWatch: ClockWatch;
  readonly grants: Grants;
  readonly problems: string[];
  #configJobs: unknown[];
  #subs = new Map<string, Promise<() => Promise<void>>>();
  #unserve: (() => Promise<void>) | null = null;
  #hands: { at: number; names: Set<string> } | null = null;
  readonly #heap: () => { used: number; limit: number };
  #stopped = false;
  #warned = new Set<string>();

  constructor(ctx: HandContext, opts: SchedulingHandOptions = {}) {
    this.ctx = ctx;
    const settings = parseSettings(ctx.settings);
    this.problems = settings.problems;
    this.#configJobs = settings.jobs;
    const deviceRoot = `talon/${ctx.deviceId}`;
    this.grants = new Grants(ctx.grants, deviceRoot);
    this.actions = new HandActions(ctx, { canCallTool: (n) => this.grants.canCallTool(n) });
    this.#heap = opts.heap ?? v8Heap;
    this.clockWatch = new ClockWatch({ status: () => ctx.call('clock.status') });
    const clockSynced = opts.clockSynced ?? (() => this.clockWatch.synced());
    // historyPerJob: for the engine to take (it keeps HISTORY_PER_JOB until it does)
    const engineOptions: EngineConfig & { historyPerJob: number } = {
      clock: opts.clock ?? handClock(ctx),
      store: handEngineStore(ctx.store),
      actions: this.actions,
      clockSynced,
      historyPerJob: settings.historyPerJob,
      onEvent: (e) => this.#publishEvent(e),
      log: (level, msg, data) => ctx.log(level, msg, data),
      onSubscriptionsChanged: () => void this.#syncSubscriptions(),
      validate: (spec, jobs) =>
        validateJob(spec, {
          grants: this.grants,
          self: ctx.name,
          deviceRoot,
          jobs,
          handExists: (name: string) => this.#handExists(name),
        }),
    };
    this.engine = new Engine(engineOptions);
  }

  async start(): Promise<void> {
    const ctx = this.ctx;
    for (const p of this.problems) ctx.log('error', p);
    await this.clockWatch.refresh();
    await this.refreshHands();
    await this.engine.start(this.#configJobs);
    await this.#syncSubscriptions();
    this.#unserve = await serveTasks(ctx, (task) => this.task(task));
    const s = this.engine.stats();
    ctx.log('info', `scheduling ${s.jobs} job(s), ${s.paused} paused`, { clockSynced: s.clockSynced });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#unserve?.().catch(() => undefined);
    await this.engine.stop();
    const subs = [...this.#subs.values()];
    this.#subs.clear();
    await Promise.all(subs.map((p) => p.then((off) => off()).catch(() => undefined)));
  }

  // -- the device's Hands, for the job checks -------------------------------------------------------

  /** asks `hands.list` (when granted) unless the last answer is under 5 s old */
  async refreshHands(force = false): Promise<void> {
    if (!this.grants.canCallTool('hands.list')) return;
    if (!force && this.#hands && performance.now() - this.#hands.at < HANDS_CACHE_MS) return;
    try {
      const r = await this.ctx.tools.call<{ hands?: Array<{ name?: unknown }> }>('hands.list', {});
      const names = new Set<string>();
      for (const h of r.output?.hands ?? []) if (typeof h?.name === 'string') names.add(h.name);
      this.#hands = { at: performance.now(), names };
    } catch (err) {
      this.#warnOnce('hands.list', `hands.list failed (${(err as Error).message}): Hand names are not checked`);
    }
  }

  /** true/false when the device's Hands are known, undefined when they cannot be (no grant, or not answered) */
  #handExists(name: string): boolean | undefined {
    if (name === this.ctx.name) return true;
    return this.#hands ? this.#hands.names.has(name) : undefined;
  }

  // -- bus ---------------------------------------------------------------------------------------------

  async #syncSubscriptions(): Promise<void> {
    if (this.#stopped) return;
    const want = new Set<string>(this.engine.subscriptions());
    for (const [filter, off] of this.#subs) {
      if (want.has(filter)) continue;
      this.#subs.delete(filter);
      void off.then((f) => f()).catch(() => undefined);
    }
    for (const filter of want) {
      if (this.#subs.has(filter)) continue;
      const sub = this.ctx.bus.subscribe(filter, (msg) =>
        this.engine.handleMessage(msg.topic, msg.json !== undefined ? msg.json : msg.text),
      );
      this.#subs.set(filter, sub);
      sub.catch((err: unknown) => {
        this.#subs.delete(filter);
        this.ctx.log('error', `cannot subscribe to ${filter}: ${(err as Error).message}`);
      });
    }
    await Promise.allSettled(this.#subs.values());
  }

  #publishEvent(e: EngineEvent): void {
    if (e.type === 'run' && e.run.status !== 'running') this.#auditRun(e.run);
    const topic = `hands/${this.ctx.name}/${e.type === 'run' ? 'runs' : 'jobs'}`;
    if (!this.grants.canPublish(this.grants.absolute(topic))) {
      this.#warnOnce(topic, `not publishing on ${topic}: outside the publish grant`);
      return;
    }
    try {
      this.ctx.bus.publish(topic, e.type === 'run' ? e.run : { id: e.id, change: e.change }, { qos: 0 });
    } catch (err) {
      this.#warnOnce(`${topic}!`, `publishing on ${topic} failed: ${(err as Error).message}`);
    }
  }

  #warnOnce(key: string, msg: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.ctx.log('warn', msg);
  }

  // -- the task inbox: other Hands schedule over the bus --------------------------------------------

  /** one signed audit entry per run that ended (or was skipped): `scheduling.run`, subject the job */
  #auditRun(run: RunRecord): void {
    const decision = run.status === 'success' ? 'ok' : run.status === 'skipped' ? 'info' : 'error';
    const detail: Record<string, unknown> = {
      runId: run.runId,
      status: run.status,
      cause: run.cause,
      attempt: run.attempt,
      scheduledAt: run.scheduledAt,
    };
    if (run.startedAt !== undefined && run.endedAt !== undefined) detail.ms = run.endedAt - run.startedAt;
    if (run.error) detail.error = run.error;
    if (run.reason) detail.reason = run.reason;
    this.ctx.audit('run', run.jobId, { decision, detail }).catch(() => undefined);
  }

  /** a change asked for over the bus (the task inbox): audited here, as the API's are by the kernel */
  #auditTask(op: string, id: string, ok: boolean): void {
    this.ctx.audit(`job.${op}`, id, { decision: ok ? 'ok' : 'error', detail: { via: 'bus' } }).catch(() => undefined);
  }

  async task(task: unknown): Promise<unknown> {
    const t = task as { op?: unknown; id?: unknown; job?: { id?: unknown } } | null;
    const op = typeof t?.op === 'string' ? t.op : '';
    if (op !== 'put' && op !== 'remove' && op !== 'run') return this.#task(task);
    const id = String((op === 'put' ? t?.job?.id : t?.id) ?? '').slice(0, 64);
    try {
      const r = await this.#task(task);
      this.#auditTask(op, id, true);
      return r;
    } catch (err) {
      this.#auditTask(op, id, false);
      throw err;
    }
  }

  async #task(task: unknown): Promise<unknown> {
    if (typeof task !== 'object' || task === null)
      throw new TalonError('BAD_REQUEST', 'task: must be an object { op: put | remove | run | list | get, … }');
    const t = task as { op?: unknown; id?: unknown; job?: unknown };
    const id = (): string => {
      if (typeof t.id !== 'string' || t.id === '')
        throw new TalonError('BAD_REQUEST', `task.id: op "${String(t.op)}" needs the job's id (a string)`);
      return t.id;
    };
    switch (t.op) {
      case 'put':
        if (typeof t.job !== 'object' || t.job === null)
          throw new TalonError('BAD_REQUEST', 'task.job: op "put" needs a job { id, trigger, action }');
        return this.put(t.job);
      case 'remove':
        await this.engine.remove(id());
        return { removed: t.id };
      case 'run':
        return { run: await this.engine.runNow(id()) };
      case 'get':
        return { job: this.engine.get(id()) };
      case 'list':
        return { jobs: this.engine.list() };
      default:
        throw new TalonError(
          'BAD_REQUEST',
          `task.op: must be one of put, remove, run, get, list, not ${JSON.stringify(t.op ?? null)}`,
        );
    }
  }

  /** create or update a stored job; the Hand list is refreshed first so a job naming a Hand is checked against it */
  async put(job: unknown): Promise<{ job: JobView; created: boolean }> {
    await this.refreshHands();
    const id = (job as { id?: unknown }).id;
    const created = typeof id !== 'string' || !this.engine.has(id);
    if (created) this.#checkHeap();
    try {
      return { job: await this.engine.put(job, 'api'), created };
    } catch (err) {
      // a job that asks for more than the Hand's grant is a bad job: the kernel passes only BAD_REQUEST, NOT_FOUND
      // and CONFLICT through from a Hand (runtime/api/hand-requests.ts), anything else would be a 500
      const e = TalonError.from(err);
      if (e.code !== 'CAPABILITY_DENIED') throw err;
      throw new TalonError('BAD_REQUEST', e.message, { details: { ...(e.details as object), denied: true } });
    }
  }

  /**
   * Each job holds ~2 KB of heap and a put makes garbage: near the heap quota the worker's loop would be all
   * garbage collection (measured: 64 MB held ~6,500 jobs), so a new job is refused, saying what to raise.
   */
  #checkHeap(): void {
    const { used, limit } = this.#heap();
    if (!(limit > 0) || used < HEAP_FULL * limit) return;
    const mb = (b: number): string => (b / 1048576).toFixed(0);
    throw new TalonError(
      'BAD_REQUEST',
      `the Scheduling Hand's heap is ${mb(used)} of ${mb(limit)} MB with ${this.engine.stats().jobs} jobs: no new job ` +
        `until some are removed or its config entry raises quotas.heapMb (a job needs ~2 KB, 10,000 fit in 128 MB)`,
      { details: { field: 'id', heapUsedBytes: used, heapLimitBytes: limit } },
    );
  }

  stats(): Ans<'stats'> {
    return {
      stats: { ...this.engine.stats(), clockSource: this.clockWatch.source, pendingTasks: this.actions.pendingTasks },
    } as Ans<'stats'>;
  }
}

let hand: SchedulingHand | null = null;

/** the running Hand; HAND_STOPPED between stop() and the worker's end */
function running(): SchedulingHand {
  if (!hand) throw new TalonError('HAND_STOPPED', 'the Scheduling Hand is not running');
  return hand;
}

const view = (v: JobView): Ans<'get'>['job'] => v as unknown as Ans<'get'>['job'];
const runView = (r: RunRecord): Ans<'run'>['run'] => r as unknown as Ans<'run'>['run'];

export default defineHand({
  manifest: {
    id: 'scheduling',
    version: '1.0.0',
    description:
      'Runs jobs on cron schedules, intervals, bus events and the ends of other jobs: starts and stops Hands, publishes, asks Hands tasks, calls tools, runs agent goals; durable across restarts',
    capabilities: {
      // asks other Hands (their inboxes) and answers tasks (the askers' reply topics); its own runs/jobs events and
      // inbox under the default instance's name (a config naming the Hand otherwise grants hands/<name>/#)
      bus: {
        // hands/+/escalate: the timers a messaging Hand keeps as jobs (an escalation's next step)
        publish: [
          'hands/+/tasks',
          'hands/+/replies',
          'hands/+/escalate',
          'hands/scheduler/runs',
          'hands/scheduler/jobs',
        ],
        subscribe: ['hands/scheduler/tasks', 'hands/scheduler/replies'],
      },
      tools: ['hands.list', 'hands.status', 'hands.start', 'hands.stop', 'hands.restart'],
    },
    // what a config may grant for its jobs: event topics, publish targets, any tool, an agent's LLM budget
    optionalCapabilities: {
      bus: { publish: ['#'], subscribe: ['#'] },
      tools: ['*'],
      llm: { tokensPerHour: 1_000_000 },
    },
    // a minute's turn with 10,000 jobs fires hundreds of runs, each an action and two events on the bus
    quotas: { heapMb: 128, messagesPerSec: 5000 },
    settingsSchema: settingsSchema as unknown as Record<string, unknown>,
  },
  async start(ctx) {
    hand = new SchedulingHand(ctx);
    await hand.start();
  },
  async stop() {
    const h = hand;
    hand = null;
    await h?.stop();
  },
  protocol,
  requests: {
    list: () => ({ jobs: running().engine.list().map(view) }),
    get: (q: Req<'get'>) => ({ job: view(running().engine.get(q.id)) }),
    put: async (q: Req<'put'>) => {
      const r = await running().put(q.job);
      return { job: view(r.job), created: r.created };
    },
    remove: async (q: Req<'remove'>) => {
      await running().engine.remove(q.id);
      return { removed: q.id };
    },
    run: async (q: Req<'run'>) => ({ run: runView(await running().engine.runNow(q.id)) }),
    pause: async (q: Req<'pause'>) => ({ job: view(await running().engine.pause(q.id)) }),
    resume: async (q: Req<'resume'>) => ({ job: view(await running().engine.resume(q.id)) }),
    history: async (q: Req<'history'>) => ({
      runs: (
        await running().engine.history(q.id, {
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.before !== undefined ? { before: q.before } : {}),
        })
      ).map(runView),
    }),
    stats: () => running().stats(),
  },
});
