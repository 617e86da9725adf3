/**
 * The scheduler. One timer for all jobs: two min-heaps of due items (wall-clock times for cron and `at`,
 * monotonic times for intervals, jitter, retries and timeouts), the timer set for the earliest and capped at
 * MAX_TIMER_MS so a clock jump is noticed. Each run is journalled in one synced batch before its action starts
 * (record `running`, `runs-open/<runId>`, the job's state with `lastScheduledAt` advanced) and in one when it
 * ends, so a power cut leaves a known state: the next start() marks open runs `interrupted`, and the catch-up
 * policy decides about the times missed. A scheduled time whose record exists never runs again.
 *
 * Clocks: delays come from wall-clock differences; every wake-up compares the wall clock's progress with
 * the monotonic one's, and a difference over JUMP_MS is a jump (counted). Backwards, nothing at or before a
 * job's high-water mark runs again (the next time is computed after it); forwards, times older than GRACE_MS
 * go through the catch-up policy, never as a burst. Cron and `at` wait while the clock is not synchronised.
 *
 * Not durable, on purpose: an `after` job's fan-in progress, an event's debounce, a buffered run and a pending
 * retry live in memory (a restart forgets them; a buffered time is then a missed time, for the catch-up policy).
 */
import { boundedJson } from '../../runtime/core/bounded-json.ts';
import { canonicalJson } from '../../runtime/core/canonical.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { Grants, NO_CAPABILITIES } from '../../runtime/core/grants.ts';
import { topicMatches } from '../../runtime/core/topics.ts';
import { afterOn, conditionMatches, jobVersion, parseDuration, parseInstant, validateJob } from './jobs.ts';
import { isWallTrigger, missedTimes, nextTimes } from './triggers.ts';
import {
  type EngineEvent,
  type EngineOptions,
  type EngineStats,
  HISTORY_PER_JOB,
  type Job,
  type JobSource,
  type JobSpec,
  type JobState,
  type JobView,
  KEY,
  MAX_JOBS,
  type RunCause,
  type RunRecord,
  type RunStatus,
  type SchedulerApi,
} from './types.ts';

/** the wall clock moved this much more or less than the monotonic one: a jump */
export const JUMP_MS = 2000;
/** a due time at most this late runs as scheduled; older ones are missed times, for the catch-up policy */
export const GRACE_MS = 2000;
/** the longest the one timer sleeps (so a wall-clock jump or a clock that got synchronised is noticed) */
export const MAX_TIMER_MS = 60_000;
/** while the wall clock is not trusted, how often cron and `at` jobs look again (NTP may have arrived) */
export const UNSYNCED_RECHECK_MS = 2000;
/** overlap `buffer-all` keeps at most this many due runs */
export const BUFFER_MAX = 100;
export const DEFAULT_TIMEOUT_MS = 600_000;
export const DEFAULT_BACKOFF_MS = 1000;
export const DEFAULT_MAX_BACKOFF_MS = 3_600_000;
const RESULT_MAX = 16 * 1024;
const PAGE = 1000;

export interface EngineConfig extends EngineOptions {
  /** checks a job (schema, semantics, grants) against the jobs there are; default: validateJob with no grant limits */
  validate?: (spec: unknown, jobs: ReadonlyMap<string, JobSpec>) => Promise<JobSpec>;
  /** the event triggers' topic filters changed (the Hand re-subscribes) */
  onSubscriptionsChanged?: (filters: string[]) => void;
  /** how long stop() waits for running actions after aborting them (default 5 s) */
  stopWaitMs?: number;
  /** run records kept per job (default HISTORY_PER_JOB) */
  historyPerJob?: number;
}

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

interface Live {
  runId: string;
  key: string;
  record: RunRecord;
  controller: AbortController;
  /** the start batch is written */
  started: boolean;
  /** finished (its end is being written, or was) */
  done: boolean;
  action?: Promise<unknown>;
}

interface Pending {
  at: number;
  cause: RunCause;
  event?: { topic: string; payload: unknown };
}

interface Entry {
  job: Job;
  state: JobState;
  /** due items with another generation are stale */
  gen: number;
  /** wall: the latest time considered; the next time is computed after it */
  cursor: number;
  dueMono?: number;
  /** the cause of an interval's next run (`catch-up` after a restart that missed one) */
  everyCause?: RunCause;
  running: Map<string, Live>;
  buffer: Pending[];
  jittering: number;
  lastIssued: number;
  afterSeen: Set<string>;
  lastEventMono?: number;
  removed: boolean;
  /** run records stored for this job, when known */
  hist?: number;
}

interface Item {
  t: number;
  seq: number;
  kind: 'due' | 'start' | 'retry' | 'timeout';
  job: string;
  gen: number;
  at?: number;
  cause?: RunCause;
  attempt?: number;
  runId?: string;
}

/** a binary min-heap on (t, seq) */
class Heap {
  #a: Item[] = [];
  get size(): number {
    return this.#a.length;
  }
  peek(): Item | undefined {
    return this.#a[0];
  }
  push(x: Item): void {
    const a = this.#a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i] as Item, a[p] as Item)) break;
      [a[i], a[p]] = [a[p] as Item, a[i] as Item];
      i = p;
    }
  }
  /** keeps the items `keep` accepts (stale ones otherwise wait for their time to be dropped) */
  compact(keep: (x: Item) => boolean): void {
    const items = this.#a.filter(keep);
    this.#a = [];
    for (const x of items) this.push(x);
  }
  pop(): Item | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l] as Item, a[m] as Item)) m = l;
        if (r < a.length && less(a[r] as Item, a[m] as Item)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m] as Item, a[i] as Item];
        i = m;
      }
    }
    return top;
  }
}
const less = (x: Item, y: Item): boolean => x.t < y.t || (x.t === y.t && x.seq < y.seq);

const STATUSES: RunStatus[] = ['running', 'success', 'failure', 'timeout', 'cancelled', 'interrupted', 'skipped'];

const ALLOW_ALL = new Grants(
  {
    ...NO_CAPABILITIES,
    bus: { publish: ['#'], subscribe: ['#'] },
    llm: { tokensPerHour: 1_000_000 },
    tools: { allow: ['*'], approve: [] },
  },
  'talon/device',
);

/** a value kept in a run record: at most 16 KiB of JSON, else `{ truncated: true }` */
function bounded(v: unknown): unknown {
  if (v === undefined) return undefined;
  const json = boundedJson(v, RESULT_MAX);
  return json === null ? { truncated: true } : JSON.parse(json);
}

function errorOf(err: unknown): { code: string; message: string } {
  if (err instanceof TalonError) return { code: err.code, message: err.message };
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : 'INTERNAL';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return { code, message };
}

const runIdOf = (id: string, at: number, attempt: number): string =>
  `${id}@${at}${attempt > 1 ? `#${String(attempt).padStart(3, '0')}` : ''}`;

export class Engine implements SchedulerApi {
  #o: EngineConfig;
  #entries = new Map<string, Entry>();
  #specMap = new Map<string, JobSpec>();
  /** job → the jobs whose `after` names it */
  #dependents = new Map<string, Set<string>>();
  #eventJobs = new Set<string>();
  #subs: string[] = [];
  #wallHeap = new Heap();
  #monoHeap = new Heap();
  #seq = 0;
  #timer: unknown = undefined;
  /** when the timer wakes (monotonic ms) */
  #timerAt = 0;
  #inTick = false;
  #started = false;
  #stopped = false;
  #lastWall = 0;
  #lastMono = 0;
  #chain: Promise<unknown> = Promise.resolve();
  #stats = {
    runs: Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>,
    lastLagMs: 0,
    clockJumps: 0,
  };

  constructor(opts: EngineConfig) {
    this.#o = opts;
  }

  // ---------------------------------------------------------------- lifecycle

  /** loads stored jobs and states, applies the config's jobs, marks open runs interrupted, arms the timer */
  async start(configJobs: unknown[] = []): Promise<void> {
    if (this.#started) throw new TalonError('CONFLICT', 'the scheduling engine is already started');
    this.#started = true;
    const clock = this.#o.clock;
    const stored = new Map<string, Job>();
    for (const [k, job] of await this.#listAll<Job>('job/')) stored.set(k.slice(4), job);
    const states = new Map<string, JobState>();
    for (const [k, st] of await this.#listAll<JobState>('state/')) states.set(k.slice(6), st);

    // the config's jobs: all checked before anything is written
    const specs = new Map<string, JobSpec>();
    for (const [id, job] of stored) if (job.source === 'api') specs.set(id, job.spec);
    const raw = new Map<string, unknown>();
    configJobs.forEach((spec, i) => {
      const id = (spec as { id?: unknown } | null)?.id;
      if (typeof id === 'string') {
        if (raw.has(id)) throw new TalonError('BAD_REQUEST', `jobs[${i}].id: "${id}" appears twice in the config`);
        raw.set(id, spec);
        specs.set(id, spec as JobSpec);
      }
    });
    const validated: JobSpec[] = [];
    for (const [i, spec] of configJobs.entries()) {
      try {
        validated.push(await this.#validate(spec, specs));
      } catch (err) {
        const e = TalonError.from(err);
        throw new TalonError(e.code, `config jobs[${i}]: ${e.message}`, { details: e.details, cause: err });
      }
    }
    const now = clock.wall();
    const ops: Op[] = [];
    const config = new Set<string>();
    for (const spec of validated) {
      config.add(spec.id);
      const old = stored.get(spec.id);
      const version = jobVersion(spec);
      if (old && old.version === version && old.source === 'config') continue;
      const job: Job = { spec, source: 'config', createdAt: old?.createdAt ?? now, updatedAt: now, version };
      stored.set(spec.id, job);
      ops.push({ type: 'put', key: KEY.job(spec.id), value: job });
      let st = states.get(spec.id);
      const pausedChanged = (old?.spec.paused ?? false) !== (spec.paused ?? false);
      const triggerChanged = old !== undefined && canonicalJson(old.spec.trigger) !== canonicalJson(spec.trigger);
      if (!st || pausedChanged || triggerChanged) {
        st = { ...(st ?? { paused: false, runs: 0, failuresInARow: 0 }) };
        if (!states.has(spec.id) || pausedChanged) {
          st.paused = spec.paused ?? false;
          if (st.paused) st.pausedBy = 'api';
          else delete st.pausedBy;
        }
        // a new trigger starts from now: the old one's missed times are not caught up with the new one's
        if (triggerChanged) st.lastScheduledAt = Math.max(st.lastScheduledAt ?? Number.NEGATIVE_INFINITY, now);
        states.set(spec.id, st);
        ops.push({ type: 'put', key: KEY.state(spec.id), value: st });
      }
    }
    const gone: string[] = [];
    for (const [id, job] of stored) {
      if (job.source === 'config' && !config.has(id)) gone.push(id);
    }
    for (const id of gone) {
      stored.delete(id);
      states.delete(id);
      ops.push({ type: 'del', key: KEY.job(id) }, { type: 'del', key: KEY.state(id) });
    }
    await this.#write(ops);
    for (const id of gone) await this.#deleteHistory(id);

    // runs that were in flight when the daemon last stopped
    const open = await this.#listAll<unknown>('runs-open/');
    const ends: Op[] = [];
    for (const [k] of open) {
      const runId = k.slice('runs-open/'.length);
      const m = /^(.+)@(\d+)(?:#(\d+))?$/.exec(runId);
      ends.push({ type: 'del', key: k });
      if (!m) continue;
      const id = m[1] as string;
      const key = KEY.run(id, Number(m[2]), m[3] ? Number(m[3]) : 1);
      const rec = await this.#o.store.get<RunRecord>(key);
      if (!stored.has(id)) {
        if (rec) ends.push({ type: 'del', key });
        continue;
      }
      if (!rec || rec.status !== 'running') continue;
      rec.status = 'interrupted';
      rec.endedAt = now;
      rec.error = {
        code: 'HAND_STOPPED',
        message: 'the run was in flight when the daemon stopped (power cut or kill)',
      };
      ends.push({ type: 'put', key, value: rec });
      const st = states.get(id);
      if (st) {
        st.lastOutcome = { runId, status: 'interrupted', endedAt: now };
        ends.push({ type: 'put', key: KEY.state(id), value: st });
      }
      this.#stats.runs.interrupted++;
      this.#emit({ type: 'run', run: rec });
      this.#log('warn', `run ${runId} was interrupted`, { runId });
    }
    await this.#write(ends);

    this.#lastWall = clock.wall();
    this.#lastMono = clock.mono();
    for (const [id, job] of stored) {
      const st = states.get(id) ?? { paused: false, runs: 0, failuresInARow: 0 };
      const e = this.#newEntry(job, st);
      e.cursor = st.lastScheduledAt ?? job.updatedAt;
      this.#entries.set(id, e);
      this.#specMap.set(id, job.spec);
    }
    for (const e of this.#entries.values()) {
      this.#index(e);
      if ('every' in e.job.spec.trigger) this.#everyAfterRestart(e);
      this.#arm(e);
    }
    this.#subscriptionsChanged();
    this.#tick();
  }

  /** no new runs; running ones are aborted and waited for (bounded); their records stay open (interrupted next start) */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    const waits: Promise<unknown>[] = [];
    for (const e of this.#entries.values()) {
      e.buffer.length = 0;
      for (const live of e.running.values()) {
        live.controller.abort(new TalonError('HAND_STOPPED', 'the Scheduling Hand is stopping'));
        if (live.action) waits.push(live.action.catch(() => undefined));
      }
    }
    if (waits.length === 0) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(waits),
      new Promise<void>((r) => {
        t = setTimeout(r, this.#o.stopWaitMs ?? 5000);
        t.unref?.();
      }),
    ]);
    clearTimeout(t);
  }

  /** look at the clocks now (the Hand calls it when the clock got synchronised) */
  wake(): void {
    if (this.#started && !this.#stopped && !this.#inTick) this.#tick();
  }

  // ---------------------------------------------------------------- events

  /** the topic filters the event triggers need (relative to the device root, or `/absolute`) */
  subscriptions(): string[] {
    return [...this.#subs];
  }

  /** a bus message: event triggers whose filter matches and whose condition holds fire (debounced) */
  handleMessage(topic: string, payload: unknown): void {
    if (this.#stopped || !this.#started) return;
    for (const id of this.#eventJobs) {
      const e = this.#entries.get(id);
      if (!e || e.state.paused) continue;
      const t = e.job.spec.trigger;
      if (!('event' in t) || !topicMatches(t.event.topic, topic)) continue;
      if (!conditionMatches(t.event.where, payload)) continue;
      const mono = this.#o.clock.mono();
      if (t.event.debounce !== undefined && e.lastEventMono !== undefined) {
        if (mono - e.lastEventMono < parseDuration(t.event.debounce, 'trigger.event.debounce')) continue;
      }
      e.lastEventMono = mono;
      this.#catch(this.#launch(e, this.#issue(e), 'event', { event: { topic, payload: bounded(payload) } }));
    }
  }

  // ---------------------------------------------------------------- the API

  list(): JobView[] {
    return [...this.#entries.values()].map((e) => this.#view(e, 1));
  }

  get(id: string): JobView {
    return this.#view(this.#must(id), 5);
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  put(spec: unknown, source: JobSource = 'api'): Promise<JobView> {
    return this.#serial(async () => {
      const rawId = (spec as { id?: unknown } | null)?.id;
      const old = typeof rawId === 'string' ? this.#entries.get(rawId) : undefined;
      if (old && old.job.source === 'config' && source === 'api')
        throw new TalonError(
          'CONFLICT',
          `id: job "${rawId}" is defined in the config; change it there (the config is versioned), not through the API`,
          { details: { field: 'id' } },
        );
      const valid = await this.#validate(spec, this.#specs());
      const e = this.#entries.get(valid.id);
      if (!e && this.#entries.size >= MAX_JOBS)
        throw new TalonError(
          'BAD_REQUEST',
          `id: the Scheduling Hand holds at most ${MAX_JOBS} jobs; remove some first`,
        );
      const version = jobVersion(valid);
      if (e && e.job.version === version && e.job.source === source) return this.#view(e, 5);
      const now = this.#o.clock.wall();
      const job: Job = { spec: valid, source, createdAt: e?.job.createdAt ?? now, updatedAt: now, version };
      // an existing job's state is changed in place: runs ending meanwhile write the same object, nothing is lost
      const state: JobState = e ? e.state : { paused: valid.paused ?? false, runs: 0, failuresInARow: 0 };
      if (!e && state.paused) state.pausedBy = 'api';
      const triggerChanged = !e || canonicalJson(e.job.spec.trigger) !== canonicalJson(valid.trigger);
      // a new trigger starts from now: the old one's missed times are not caught up with the new one's
      if (e && triggerChanged) state.lastScheduledAt = Math.max(state.lastScheduledAt ?? Number.NEGATIVE_INFINITY, now);
      if (e && (e.job.spec.paused ?? false) !== (valid.paused ?? false)) {
        state.paused = valid.paused ?? false;
        if (state.paused) state.pausedBy = 'api';
        else delete state.pausedBy;
      }
      await this.#o.store.batch(
        [
          { type: 'put', key: KEY.job(valid.id), value: job },
          { type: 'put', key: KEY.state(valid.id), value: state },
        ],
        { sync: true },
      );
      let entry = e;
      if (entry) {
        this.#unindex(entry);
        entry.job = job;
        entry.state = state;
      } else {
        entry = this.#newEntry(job, state);
        this.#entries.set(valid.id, entry);
      }
      this.#specMap.set(valid.id, valid);
      if (triggerChanged) {
        entry.cursor = Math.max(state.lastScheduledAt ?? Number.NEGATIVE_INFINITY, now);
        entry.afterSeen.clear();
        entry.dueMono = undefined;
        entry.everyCause = undefined;
      }
      this.#index(entry);
      this.#arm(entry);
      this.#subscriptionsChanged();
      this.#schedule();
      this.#emit({ type: 'job', id: valid.id, change: 'put' });
      return this.#view(entry, 5);
    });
  }

  remove(id: string): Promise<void> {
    return this.#serial(async () => {
      const e = this.#must(id);
      if (e.job.source === 'config')
        throw new TalonError('CONFLICT', `job "${id}" is defined in the config; remove it there`);
      for (const d of this.#dependents.get(id) ?? [])
        throw new TalonError(
          'CONFLICT',
          `job "${d}" waits for "${id}" (its trigger.after); edit or remove "${d}" first`,
        );
      await this.#removeEntry(e);
    });
  }

  async runNow(id: string): Promise<RunRecord> {
    const e = this.#must(id);
    if (this.#stopped) throw new TalonError('CONFLICT', 'the scheduling engine is stopping');
    const rec = await this.#launch(e, this.#issue(e), 'manual', { force: true });
    if (!rec) throw new TalonError('CONFLICT', `job "${id}" could not start a run now`);
    return rec;
  }

  pause(id: string): Promise<JobView> {
    return this.#serial(async () => {
      const e = this.#must(id);
      if (!e.state.paused) {
        e.state.paused = true;
        e.state.pausedBy = 'api';
        this.#arm(e);
        await this.#o.store.batch([{ type: 'put', key: KEY.state(id), value: e.state }], { sync: true });
        this.#emit({ type: 'job', id, change: 'paused' });
      }
      return this.#view(e, 5);
    });
  }

  resume(id: string): Promise<JobView> {
    return this.#serial(async () => {
      const e = this.#must(id);
      if (e.state.paused) {
        const st = e.state;
        st.paused = false;
        if (st.pausedBy === 'failures') st.failuresInARow = 0;
        delete st.pausedBy;
        await this.#o.store.batch([{ type: 'put', key: KEY.state(id), value: st }], { sync: true });
        // the times that passed while paused were skipped: no burst on resume
        e.cursor = Math.max(e.cursor, this.#o.clock.wall());
        e.dueMono = undefined;
        e.everyCause = undefined;
        this.#arm(e);
        this.#schedule();
        this.#emit({ type: 'job', id, change: 'resumed' });
      }
      return this.#view(e, 5);
    });
  }

  async history(id: string, opts: { limit?: number; before?: number } = {}): Promise<RunRecord[]> {
    this.#must(id);
    const limit = Math.max(1, Math.min(opts.limit ?? 50, PAGE));
    const rows = await this.#o.store.list<RunRecord>({ prefix: KEY.runPrefix(id), reverse: true, limit: PAGE });
    return rows
      .map(([, r]) => r)
      .filter((r) => opts.before === undefined || r.scheduledAt < opts.before)
      .slice(0, limit);
  }

  stats(): EngineStats {
    let paused = 0;
    let running = 0;
    let buffered = 0;
    for (const e of this.#entries.values()) {
      if (e.state.paused) paused++;
      for (const l of e.running.values()) if (!l.done) running++;
      buffered += e.buffer.length;
    }
    return {
      jobs: this.#entries.size,
      paused,
      running,
      runs: { ...this.#stats.runs },
      buffered,
      lastLagMs: this.#stats.lastLagMs,
      clockSynced: this.#o.clockSynced(),
      clockJumps: this.#stats.clockJumps,
    };
  }

  // ---------------------------------------------------------------- jobs in memory

  #newEntry(job: Job, state: JobState): Entry {
    return {
      job,
      state,
      gen: 0,
      cursor: job.updatedAt,
      running: new Map(),
      buffer: [],
      jittering: 0,
      lastIssued: 0,
      afterSeen: new Set(),
      removed: false,
    };
  }

  #must(id: string): Entry {
    const e = this.#entries.get(id);
    if (!e) throw new TalonError('NOT_FOUND', `there is no job "${id}"; \`talon schedule list\` shows the jobs`);
    return e;
  }

  /** the jobs' specs, for the validator (kept beside #entries: a put among 10,000 jobs does not copy them) */
  #specs(): ReadonlyMap<string, JobSpec> {
    return this.#specMap;
  }

  #validate(spec: unknown, jobs: ReadonlyMap<string, JobSpec>): Promise<JobSpec> {
    if (this.#o.validate) return this.#o.validate(spec, jobs);
    return validateJob(spec, {
      grants: ALLOW_ALL,
      self: 'scheduler',
      deviceRoot: 'talon/device',
      jobs,
      handExists: () => undefined,
    });
  }

  #index(e: Entry): void {
    const t = e.job.spec.trigger;
    if ('after' in t) {
      for (const d of t.after) {
        let s = this.#dependents.get(d);
        if (!s) this.#dependents.set(d, (s = new Set()));
        s.add(e.job.spec.id);
      }
    }
    if ('event' in t) this.#eventJobs.add(e.job.spec.id);
  }

  #unindex(e: Entry): void {
    const id = e.job.spec.id;
    const t = e.job.spec.trigger;
    if ('after' in t) for (const d of t.after) this.#dependents.get(d)?.delete(id);
    this.#eventJobs.delete(id);
  }

  #subscriptionsChanged(): void {
    const filters = new Set<string>();
    for (const id of this.#eventJobs) {
      const t = this.#entries.get(id)?.job.spec.trigger;
      if (t && 'event' in t) filters.add(t.event.topic);
    }
    const next = [...filters].sort();
    if (next.length === this.#subs.length && next.every((f, i) => f === this.#subs[i])) return;
    this.#subs = next;
    this.#o.onSubscriptionsChanged?.(this.subscriptions());
  }

  async #removeEntry(e: Entry): Promise<void> {
    const id = e.job.spec.id;
    e.removed = true;
    e.gen++;
    e.buffer.length = 0;
    const ops: Op[] = [
      { type: 'del', key: KEY.job(id) },
      { type: 'del', key: KEY.state(id) },
    ];
    for (const live of e.running.values()) {
      live.controller.abort(new TalonError('HAND_STOPPED', `job "${id}" was removed`));
      ops.push({ type: 'del', key: KEY.open(live.runId) });
    }
    this.#unindex(e);
    this.#entries.delete(id);
    this.#specMap.delete(id);
    for (const s of this.#dependents.values()) s.delete(id);
    await this.#o.store.batch(ops, { sync: true });
    await this.#deleteHistory(id);
    this.#subscriptionsChanged();
    this.#emit({ type: 'job', id, change: 'removed' });
  }

  async #deleteHistory(id: string): Promise<void> {
    const rows = await this.#listAll(KEY.runPrefix(id));
    await this.#write(rows.map(([key]) => ({ type: 'del', key })));
  }

  /** a unique scheduledAt for a run that is not on a wall-clock schedule (interval, event, after, manual) */
  #issue(e: Entry, floor = Number.NEGATIVE_INFINITY): number {
    const t = Math.max(this.#o.clock.wall(), e.lastIssued + 1, floor);
    e.lastIssued = t;
    return t;
  }

  /** an interval's first due time after a start: from the last run's wall time when the clock can be trusted */
  #everyAfterRestart(e: Entry): void {
    const t = e.job.spec.trigger;
    if (!('every' in t) || e.state.paused) return;
    const every = parseDuration(t.every, 'trigger.every');
    const mono = this.#o.clock.mono();
    const last = e.state.lastScheduledAt;
    if (!this.#o.clockSynced() || last === undefined) {
      e.dueMono = mono + every;
      return;
    }
    const since = this.#o.clock.wall() - last;
    if (since < every) e.dueMono = mono + Math.max(0, every - Math.max(0, since));
    else if ((e.job.spec.policy?.catchUp?.mode ?? 'last') === 'none') e.dueMono = mono + (every - (since % every));
    else {
      e.dueMono = mono;
      e.everyCause = since - every > GRACE_MS ? 'catch-up' : 'schedule';
    }
  }

  /** (re)computes a job's next due item; the old ones go stale */
  #arm(e: Entry): void {
    e.gen++;
    delete e.state.nextAt;
    if (e.removed || e.state.paused) return;
    const t = e.job.spec.trigger;
    const endAt = this.#endAt(e);
    if (isWallTrigger(t)) {
      const next = nextTimes(t, e.cursor, 1)[0];
      if (next === undefined || (endAt !== undefined && next > endAt)) {
        if (e.running.size === 0 && e.jittering === 0 && e.buffer.length === 0) this.#catch(this.#end(e));
        return;
      }
      e.state.nextAt = next;
      this.#wallHeap.push({ t: next, seq: ++this.#seq, kind: 'due', job: e.job.spec.id, gen: e.gen });
    } else if ('every' in t) {
      if (endAt !== undefined && this.#o.clock.wall() > endAt) {
        if (e.running.size === 0) this.#catch(this.#end(e));
        return;
      }
      const every = parseDuration(t.every, 'trigger.every');
      const mono = this.#o.clock.mono();
      e.dueMono ??= mono + every;
      this.#monoHeap.push({ t: e.dueMono, seq: ++this.#seq, kind: 'due', job: e.job.spec.id, gen: e.gen });
    }
  }

  #endAt(e: Entry): number | undefined {
    const v = e.job.spec.policy?.endAt;
    return v === undefined ? undefined : parseInstant(v, 'policy.endAt');
  }

  /** the job has run its course (endAt, maxRuns, an `at` that passed): paused as `ended` */
  async #end(e: Entry): Promise<void> {
    if (e.state.paused || e.removed || this.#stopped) return;
    e.state.paused = true;
    e.state.pausedBy = 'ended';
    e.gen++;
    await this.#o.store.batch([{ type: 'put', key: KEY.state(e.job.spec.id), value: e.state }], { sync: true });
    this.#emit({ type: 'job', id: e.job.spec.id, change: 'paused' });
  }

  // ---------------------------------------------------------------- the timer

  #valid(x: Item): boolean {
    const e = this.#entries.get(x.job);
    if (!e || e.removed) return false;
    if (x.kind === 'due') return x.gen === e.gen;
    if (x.kind === 'timeout') return e.running.has(x.runId as string);
    return true;
  }

  #schedule(): void {
    if (this.#inTick || this.#stopped || !this.#started) return;
    const clock = this.#o.clock;
    // a finished run's timeout item and a re-armed job's old item are stale: dropped when they outnumber the live
    const live = 2 * this.#entries.size + 1024;
    if (this.#monoHeap.size > 2 * live) this.#monoHeap.compact((x) => this.#valid(x));
    if (this.#wallHeap.size > 2 * live) this.#wallHeap.compact((x) => this.#valid(x));
    while (this.#monoHeap.size && !this.#valid(this.#monoHeap.peek() as Item)) this.#monoHeap.pop();
    while (this.#wallHeap.size && !this.#valid(this.#wallHeap.peek() as Item)) this.#wallHeap.pop();
    let delay = Number.POSITIVE_INFINITY;
    const m = this.#monoHeap.peek();
    if (m) delay = m.t - clock.mono();
    const w = this.#wallHeap.peek();
    if (w) delay = Math.min(delay, this.#o.clockSynced() ? w.t - clock.wall() : UNSYNCED_RECHECK_MS);
    if (delay === Number.POSITIVE_INFINITY) {
      if (this.#timer !== undefined) clock.clearTimer(this.#timer);
      this.#timer = undefined;
      return;
    }
    delay = Math.max(0, Math.min(MAX_TIMER_MS, Math.ceil(delay)));
    const at = clock.mono() + delay;
    // a timer that wakes no later than needed stays (a run's timeout item does not re-arm it)
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clock.clearTimer(this.#timer);
    this.#timerAt = at;
    this.#timer = clock.setTimer(() => {
      this.#timer = undefined;
      this.#tick();
    }, delay);
  }

  #tick(): void {
    if (this.#stopped) return;
    this.#inTick = true;
    try {
      const clock = this.#o.clock;
      const wall = clock.wall();
      const mono = clock.mono();
      const drift = wall - this.#lastWall - (mono - this.#lastMono);
      if (Math.abs(drift) > JUMP_MS) {
        this.#stats.clockJumps++;
        this.#log('warn', `the wall clock jumped ${drift > 0 ? 'forward' : 'back'} by ${Math.abs(drift)} ms`, {
          drift,
        });
        // back: each job's next time is computed after its high-water mark (the cursor), so nothing that ran
        // runs again; forward: the times passed over are older than GRACE_MS and go to the catch-up policy
      }
      this.#lastWall = wall;
      this.#lastMono = mono;
      for (let x = this.#monoHeap.peek(); x && x.t <= mono; x = this.#monoHeap.peek()) {
        this.#monoHeap.pop();
        if (this.#valid(x)) this.#fireMono(x, mono);
      }
      if (this.#o.clockSynced()) {
        for (let x = this.#wallHeap.peek(); x && x.t <= wall; x = this.#wallHeap.peek()) {
          this.#wallHeap.pop();
          const e = this.#entries.get(x.job);
          if (e && this.#valid(x)) this.#fireWall(e, wall);
        }
      }
    } finally {
      this.#inTick = false;
    }
    this.#schedule();
  }

  #fireMono(x: Item, mono: number): void {
    const e = this.#entries.get(x.job) as Entry;
    if (x.kind === 'timeout') {
      const live = e.running.get(x.runId as string);
      if (live && live.started && !live.done) {
        const ms = this.#timeoutMs(e);
        const err = new TalonError('HAND_TIMEOUT', `the run took longer than its timeout of ${ms} ms (policy.timeout)`);
        live.controller.abort(err);
        this.#catch(this.#finish(e, live, 'timeout', { error: errorOf(err) }));
      }
    } else if (x.kind === 'start') {
      e.jittering = Math.max(0, e.jittering - 1);
      if (!e.state.paused) this.#catch(this.#launch(e, x.at as number, x.cause as RunCause, { jittered: true }));
    } else if (x.kind === 'retry') {
      if (!e.state.paused) this.#catch(this.#start(e, x.at as number, 'retry', x.attempt as number, undefined));
    } else {
      // an interval is due
      const t = e.job.spec.trigger;
      if (!('every' in t)) return;
      const every = parseDuration(t.every, 'trigger.every');
      const cause = e.everyCause ?? 'schedule';
      e.everyCause = undefined;
      const endAt = this.#endAt(e);
      if (endAt !== undefined && this.#o.clock.wall() > endAt) {
        this.#arm(e);
        return;
      }
      this.#catch(this.#launch(e, this.#issue(e, (e.state.lastScheduledAt ?? 0) + 1), cause));
      let next = x.t + every;
      if (next <= mono) next = mono + every - ((mono - x.t) % every);
      e.dueMono = next;
      this.#arm(e);
    }
  }

  /** a cron or `at` job is due: the fresh times run as scheduled, older ones as the catch-up policy says */
  #fireWall(e: Entry, wall: number): void {
    const t = e.job.spec.trigger;
    const p = e.job.spec.policy;
    const from = e.cursor;
    const endAt = this.#endAt(e) ?? Number.POSITIVE_INFINITY;
    const staleTo = wall - GRACE_MS;
    const fresh = nextTimes(t, Math.max(from, staleTo), 16).filter((x) => x <= wall && x <= endAt);
    let stale = from < staleTo ? missedTimes(t, from, staleTo, p?.catchUp).filter((x) => x <= endAt) : [];
    if ((p?.catchUp?.mode ?? 'last') === 'last' && fresh.length > 0) stale = [];
    e.cursor = Math.max(from, wall);
    // the times of one wake-up run one after the other (unless overlap `allow`), never as a burst of skips
    let queue = false;
    for (const at of stale) {
      this.#catch(this.#launch(e, at, 'catch-up', { queue }));
      queue = true;
    }
    for (const at of fresh) {
      this.#catch(this.#launch(e, at, 'schedule', { queue }));
      queue = true;
    }
    if (stale.length === 0 && fresh.length === 0 && from < staleTo) {
      // missed times the policy does not run count as skipped: a restart does not look at them again
      const latest = missedTimes(t, from, staleTo, { mode: 'last', window: Math.max(0, staleTo - from) })[0];
      if (latest !== undefined && latest > (e.state.lastScheduledAt ?? Number.NEGATIVE_INFINITY)) {
        e.state.lastScheduledAt = latest;
        this.#catch(this.#o.store.batch([{ type: 'put', key: KEY.state(e.job.spec.id), value: e.state }]));
      }
    }
    this.#arm(e);
  }

  // ---------------------------------------------------------------- runs

  #timeoutMs(e: Entry): number {
    const v = e.job.spec.policy?.timeout;
    return v === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(v, 'policy.timeout');
  }

  /** a due run: jitter, then the overlap policy, then #start */
  async #launch(
    e: Entry,
    at: number,
    cause: RunCause,
    o: { force?: boolean; jittered?: boolean; queue?: boolean; event?: { topic: string; payload: unknown } } = {},
  ): Promise<RunRecord | undefined> {
    if (this.#stopped || e.removed) return undefined;
    const p = e.job.spec.policy ?? {};
    const max = p.maxRuns;
    if (!o.force && max !== undefined && e.state.runs >= max) {
      if (e.running.size === 0) await this.#end(e);
      return undefined;
    }
    if (!o.jittered && (cause === 'schedule' || cause === 'catch-up') && p.jitter !== undefined) {
      const d = Math.floor((this.#o.random ?? Math.random)() * parseDuration(p.jitter, 'policy.jitter'));
      if (d > 0) {
        e.jittering++;
        this.#monoHeap.push({
          t: this.#o.clock.mono() + d,
          seq: ++this.#seq,
          kind: 'start',
          job: e.job.spec.id,
          gen: e.gen,
          at,
          cause,
        });
        this.#schedule();
        return undefined;
      }
    }
    if (!o.force && e.running.size > 0) {
      const mode = p.overlap ?? 'skip';
      if (o.queue && mode !== 'allow') {
        e.buffer.push({ at, cause, event: o.event });
        return undefined;
      }
      if (mode === 'skip')
        return this.#skip(e, at, cause, 'overlap: the previous run still runs (policy.overlap skip)');
      if (mode === 'buffer-one' || mode === 'buffer-all') {
        const cap = mode === 'buffer-one' ? 1 : BUFFER_MAX;
        if (e.buffer.length >= cap)
          return this.#skip(e, at, cause, `overlap: ${cap} run(s) already wait (policy.overlap ${mode})`);
        e.buffer.push({ at, cause, event: o.event });
        return undefined;
      }
      if (mode === 'cancel') {
        for (const live of e.running.values()) this.#cancel(e, live, 'a newer run was due (policy.overlap cancel)');
      }
    }
    return this.#start(e, at, cause, 1, o.event);
  }

  #cancel(e: Entry, live: Live, reason: string): void {
    if (live.done) return;
    live.controller.abort(new TalonError('HAND_STOPPED', `cancelled: ${reason}`));
    if (live.started) this.#catch(this.#finish(e, live, 'cancelled', { reason }));
  }

  /** a due time not run: recorded `skipped` (once) so it is visible, and counted as considered */
  async #skip(e: Entry, at: number, cause: RunCause, reason: string): Promise<undefined> {
    const id = e.job.spec.id;
    const key = KEY.run(id, at);
    if ((await this.#o.store.get(key)) !== undefined || e.removed || this.#stopped) return undefined;
    const now = this.#o.clock.wall();
    const rec: RunRecord = {
      runId: runIdOf(id, at, 1),
      jobId: id,
      scheduledAt: at,
      cause,
      attempt: 1,
      status: 'skipped',
      endedAt: now,
      reason,
    };
    if (cause === 'schedule' || cause === 'catch-up')
      e.state.lastScheduledAt = Math.max(e.state.lastScheduledAt ?? Number.NEGATIVE_INFINITY, at);
    await this.#countHistory(e);
    e.hist = (e.hist ?? 0) + 1;
    const ops: Op[] = [
      { type: 'put', key, value: rec },
      { type: 'put', key: KEY.state(id), value: e.state },
      ...(await this.#trimOps(e)),
    ];
    await this.#o.store.batch(ops, { sync: true });
    this.#stats.runs.skipped++;
    this.#emit({ type: 'run', run: rec });
    return undefined;
  }

  async #countHistory(e: Entry): Promise<void> {
    if (e.hist !== undefined) return;
    const rows = await this.#o.store.list({ prefix: KEY.runPrefix(e.job.spec.id), limit: PAGE });
    e.hist ??= rows.length;
  }

  /** deletes of the oldest records past HISTORY_PER_JOB (never an open one) */
  async #trimOps(e: Entry): Promise<Op[]> {
    const excess = (e.hist ?? 0) - (this.#o.historyPerJob ?? HISTORY_PER_JOB);
    if (excess <= 0) return [];
    const rows = await this.#o.store.list({ prefix: KEY.runPrefix(e.job.spec.id), limit: Math.min(excess, PAGE) });
    const open = new Set([...e.running.values()].map((l) => l.key));
    const ops: Op[] = rows.filter(([k]) => !open.has(k)).map(([key]) => ({ type: 'del', key }));
    e.hist = (e.hist ?? 0) - ops.length;
    return ops;
  }

  /** journals the run's start (one synced batch), then runs its action under its timeout */
  async #start(
    e: Entry,
    at0: number,
    cause: RunCause,
    attempt: number,
    event: { topic: string; payload: unknown } | undefined,
  ): Promise<RunRecord | undefined> {
    const id = e.job.spec.id;
    const clock = this.#o.clock;
    let at = at0;
    const controller = new AbortController();
    const placeholder = `${id}@pending-${++this.#seq}`;
    const live: Live = {
      runId: placeholder,
      key: '',
      record: { runId: placeholder, jobId: id, scheduledAt: at, cause, attempt, status: 'running' },
      controller,
      started: false,
      done: false,
    };
    e.running.set(placeholder, live);
    const unique = cause === 'manual' || cause === 'event' || cause === 'after' || 'every' in e.job.spec.trigger;
    try {
      // a scheduled time whose record exists has run (or was skipped): never again
      for (let i = 0; ; i++) {
        if ((await this.#o.store.get(KEY.run(id, at, attempt))) === undefined) break;
        if (!unique || i >= 1000) {
          this.#log('info', `run ${runIdOf(id, at, attempt)} exists: not run again`, { jobId: id });
          e.running.delete(placeholder);
          this.#drain(e);
          return undefined;
        }
        at++;
        e.lastIssued = Math.max(e.lastIssued, at);
      }
      if (this.#stopped || e.removed || controller.signal.aborted) {
        e.running.delete(placeholder);
        if (!this.#stopped) this.#drain(e);
        return undefined;
      }
      const runId = runIdOf(id, at, attempt);
      const key = KEY.run(id, at, attempt);
      const record: RunRecord = {
        runId,
        jobId: id,
        scheduledAt: at,
        cause,
        attempt,
        status: 'running',
        startedAt: clock.wall(),
      };
      if (event) record.event = event;
      e.running.delete(placeholder);
      live.runId = runId;
      live.key = key;
      live.record = record;
      e.running.set(runId, live);
      const st = e.state;
      if (cause === 'schedule' || cause === 'catch-up')
        st.lastScheduledAt = Math.max(st.lastScheduledAt ?? Number.NEGATIVE_INFINITY, at);
      if (attempt === 1 && cause !== 'manual') st.runs++;
      await this.#countHistory(e);
      e.hist = (e.hist ?? 0) + 1;
      await this.#o.store.batch(
        [
          { type: 'put', key, value: record },
          { type: 'put', key: KEY.open(runId), value: true },
          { type: 'put', key: KEY.state(id), value: st },
        ],
        { sync: true },
      );
      live.started = true;
    } catch (err) {
      e.running.delete(live.runId);
      this.#log('error', `job "${id}": the run could not be journalled: ${(err as Error).message}`, { jobId: id });
      this.#drain(e);
      return undefined;
    }
    const record = live.record;
    if (this.#stopped) return { ...record };
    if (cause === 'schedule' || cause === 'catch-up') this.#stats.lastLagMs = Math.max(0, clock.wall() - at);
    this.#emit({ type: 'run', run: { ...record } });
    this.#log('info', `run ${record.runId} started`, { runId: record.runId, cause });
    if (controller.signal.aborted || e.removed) {
      if (!e.removed) await this.#finish(e, live, 'cancelled', { reason: 'cancelled before it started' });
      return { ...record };
    }
    this.#monoHeap.push({
      t: clock.mono() + this.#timeoutMs(e),
      seq: ++this.#seq,
      kind: 'timeout',
      job: id,
      gen: e.gen,
      runId: record.runId,
    });
    this.#schedule();
    const action = e.job.spec.action;
    live.action = Promise.resolve().then(() =>
      this.#o.actions.run(action, { run: { ...record }, signal: controller.signal }),
    );
    live.action.then(
      (result) => this.#catch(this.#finish(e, live, 'success', { result })),
      (err) => this.#catch(this.#finish(e, live, 'failure', { error: errorOf(err) })),
    );
    return { ...record };
  }

  /** journals the run's end (one synced batch) and applies retries, pause-after-failures, the end, `after` */
  async #finish(
    e: Entry,
    live: Live,
    status: RunStatus,
    o: { result?: unknown; error?: { code: string; message: string }; reason?: string },
  ): Promise<void> {
    if (live.done) return;
    live.done = true;
    // after stop() (or a removal) the record is left as it is: the next start finds it open (interrupted)
    if (this.#stopped || e.removed) {
      e.running.delete(live.runId);
      return;
    }
    const clock = this.#o.clock;
    const id = e.job.spec.id;
    const p = e.job.spec.policy ?? {};
    const rec = live.record;
    rec.status = status;
    rec.endedAt = clock.wall();
    if (o.result !== undefined) rec.result = bounded(o.result);
    if (o.error) rec.error = o.error;
    if (o.reason) rec.reason = o.reason;
    const st = e.state;
    const retrying =
      (status === 'failure' || status === 'timeout') && rec.attempt <= (p.retries?.max ?? 0) && !st.paused;
    st.lastOutcome = { runId: rec.runId, status, endedAt: rec.endedAt };
    let pausedNow = false;
    if (!retrying) {
      if (status === 'success') st.failuresInARow = 0;
      else if (status === 'failure' || status === 'timeout') st.failuresInARow++;
      const n = p.pauseAfterFailures ?? 0;
      if (n > 0 && st.failuresInARow >= n && !st.paused) {
        st.paused = true;
        st.pausedBy = 'failures';
        pausedNow = true;
      }
    }
    const ops: Op[] = [
      { type: 'put', key: live.key, value: rec },
      { type: 'del', key: KEY.open(rec.runId) },
      { type: 'put', key: KEY.state(id), value: st },
      ...(await this.#trimOps(e)),
    ];
    try {
      await this.#o.store.batch(ops, { sync: true });
    } catch (err) {
      this.#log('error', `run ${rec.runId}: its end could not be journalled: ${(err as Error).message}`, {
        runId: rec.runId,
      });
    }
    e.running.delete(live.runId);
    if (this.#stopped || e.removed) return;
    this.#stats.runs[status]++;
    this.#emit({ type: 'run', run: { ...rec } });
    this.#log(status === 'success' ? 'info' : 'warn', `run ${rec.runId} ended: ${status}`, {
      runId: rec.runId,
      status,
    });
    if (pausedNow) {
      this.#arm(e);
      this.#emit({ type: 'job', id, change: 'paused' });
      this.#log(
        'warn',
        `job "${id}" paused after ${st.failuresInARow} failed runs in a row (policy.pauseAfterFailures)`,
      );
    }
    if (retrying) {
      const base = p.retries?.backoff === undefined ? DEFAULT_BACKOFF_MS : parseDuration(p.retries.backoff, '');
      const cap =
        p.retries?.maxBackoff === undefined ? DEFAULT_MAX_BACKOFF_MS : parseDuration(p.retries.maxBackoff, '');
      const wait = Math.min(cap, base * (p.retries?.factor ?? 2) ** (rec.attempt - 1));
      this.#monoHeap.push({
        t: clock.mono() + wait,
        seq: ++this.#seq,
        kind: 'retry',
        job: id,
        gen: e.gen,
        at: rec.scheduledAt,
        attempt: rec.attempt + 1,
      });
      this.#schedule();
    } else {
      this.#notifyAfter(id, status);
      const max = p.maxRuns;
      const endAt = this.#endAt(e);
      if (
        !st.paused &&
        ((max !== undefined && st.runs >= max) || (endAt !== undefined && clock.wall() >= endAt)) &&
        e.running.size === 0
      )
        await this.#end(e);
      else if (!st.paused && isWallTrigger(e.job.spec.trigger) && e.state.nextAt === undefined && e.running.size === 0)
        this.#arm(e); // an `at` that ran: ends it
    }
    this.#drain(e);
  }

  /** the overlap buffer's next run, once nothing runs */
  #drain(e: Entry): void {
    if (this.#stopped || e.removed || e.running.size > 0) return;
    const next = e.buffer.shift();
    if (next) this.#catch(this.#start(e, next.at, next.cause, 1, next.event));
  }

  /** a job ended: the jobs waiting for it (fan-in) fire once all they wait for ended since they last fired */
  #notifyAfter(id: string, status: RunStatus): void {
    for (const d of this.#dependents.get(id) ?? []) {
      const e = this.#entries.get(d);
      if (!e || e.removed) continue;
      const t = e.job.spec.trigger;
      if (!('after' in t)) continue;
      const on = afterOn(t);
      const ok =
        on === 'always' ||
        (on === 'success' && status === 'success') ||
        (on === 'failure' && (status === 'failure' || status === 'timeout'));
      if (!ok) continue;
      e.afterSeen.add(id);
      if (!t.after.every((x) => e.afterSeen.has(x))) continue;
      e.afterSeen.clear();
      if (!e.state.paused) this.#catch(this.#launch(e, this.#issue(e), 'after'));
    }
  }

  // ---------------------------------------------------------------- views and plumbing

  #view(e: Entry, n: number): JobView {
    const t = e.job.spec.trigger;
    const clock = this.#o.clock;
    let next: number[] = [];
    if (!e.state.paused) {
      if (isWallTrigger(t) && n === 1) next = e.state.nextAt === undefined ? [] : [e.state.nextAt];
      else if (isWallTrigger(t)) {
        const endAt = this.#endAt(e) ?? Number.POSITIVE_INFINITY;
        next = nextTimes(t, e.cursor, n).filter((x) => x <= endAt);
      } else if ('every' in t && e.dueMono !== undefined) {
        const every = parseDuration(t.every, 'trigger.every');
        const first = Math.round(clock.wall() + Math.max(0, e.dueMono - clock.mono()));
        next = Array.from({ length: n }, (_, i) => first + i * every);
      }
    }
    const view: JobView = {
      id: e.job.spec.id,
      spec: e.job.spec,
      source: e.job.source,
      state: { ...e.state, ...(next[0] !== undefined ? { nextAt: next[0] } : {}) },
      running: [...e.running.values()].filter((l) => !l.done && l.started).map((l) => l.runId),
      next,
    };
    if (e.state.paused) view.waiting = e.state.pausedBy === 'ended' ? 'ended' : 'paused';
    else if (isWallTrigger(t) && !this.#o.clockSynced()) view.waiting = 'clock-unsynchronised';
    else if (isWallTrigger(t) && next.length === 0) view.waiting = 'ended';
    else if ('after' in t) {
      const missing = t.after.filter((x) => !e.afterSeen.has(x));
      view.waiting = `waiting-for: ${missing.join(', ')}`;
    }
    return view;
  }

  #emit(e: EngineEvent): void {
    try {
      this.#o.onEvent?.(e);
    } catch (err) {
      this.#log('warn', `an engine event listener threw: ${(err as Error).message}`);
    }
  }

  #log(level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>): void {
    this.#o.log?.(level, msg, data);
  }

  #catch(p: Promise<unknown>): void {
    p.catch((err) => this.#log('error', `scheduling engine: ${(err as Error).message}`));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#chain.then(fn);
    this.#chain = p.catch(() => undefined);
    return p;
  }

  /** writes in batches of at most 1000 ops, synced */
  async #write(ops: Op[]): Promise<void> {
    for (let i = 0; i < ops.length; i += PAGE) await this.#o.store.batch(ops.slice(i, i + PAGE), { sync: true });
  }

  /** every row under `prefix`, a page of 1000 at a time */
  async #listAll<T>(prefix: string): Promise<Array<[string, T]>> {
    const out: Array<[string, T]> = [];
    for (let after: string | undefined; ; ) {
      const rows = await this.#o.store.list<T>({ prefix, limit: PAGE, ...(after !== undefined && { after }) });
      out.push(...rows);
      if (rows.length < PAGE) return out;
      after = rows[rows.length - 1]![0];
    }
  }
}
