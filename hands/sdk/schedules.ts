/**
 * ScheduleSync: a Hand's cron schedules kept as Scheduling Hand jobs, with the Hand's own timers as the fallback.
 *
 * A Hand that does something on a cron (a research topic's run, a lead scan, a page watch's check) gives sync() the
 * schedules it wants: for each, the job to put into the Scheduling Hand over the task protocol (./tasks.ts,
 * `{ op: 'put', job }`; the job's action asks this Hand back through its task inbox) and what a local timer does
 * when the cron fires. Then, schedule by schedule:
 *
 *   scheduler ''         a local cron: the Hand's ctx.timers, croner computing the next time (lost when the Hand
 *                        stops; set again at its next start)
 *   the put answered     the scheduler's job; a local timer the schedule had is cancelled
 *   the put refused      (BAD_REQUEST, CAPABILITY_DENIED, CONFLICT) a local cron, logged as an error
 *   no answer            a local cron for it and every schedule after it, logged once as a warning; tried again by
 *                        itself after 15 s, 30 s, 1 min … up to 15 min (a Scheduling Hand started at the same time
 *                        may not listen yet when the first put goes out); retry() (the Hand may call it on its own
 *                        clock) puts the local ones again too
 *   not a job id         (the Scheduling Hand's pattern: a-z, 0-9, ".", "_", "-", at most 64) a local cron, logged
 *
 * When every put was answered and `prefix` is given, the scheduler's jobs whose ids start with it and that are no
 * longer wanted are removed — not the config file's, nor another Hand's whose name starts with this one's (the
 * job's action says whose). A schedule dropped from the list loses its local timer; forget(id) makes the next sync
 * put a changed job again. Syncs run one after the other.
 *
 * The SDK has no npm dependencies (a Hand outside this repository bundles it), so the Hand passes croner's `Cron`.
 * Used by hands/research (a job per topic), hands/leads (one job for the scan) and hands/web-automation (a job per
 * watch and per flow).
 */
import type { HandContext } from '../../runtime/core/hand.ts';
import type { TaskClient } from './tasks.ts';

/** croner's `Cron` as this file uses it: `new Cron(expr, { paused: true }).nextRun()` */
export type CronConstructor = new (pattern: string, options: { paused: boolean }) => { nextRun(): Date | null };

/** one schedule a Hand wants */
export interface ScheduledJob {
  /** the job's id (the `id` of `job`); by() answers for it */
  id: string;
  /** the cron expression: five fields, or six with seconds first */
  cron: string;
  /** what is put into the Scheduling Hand: { id, description, trigger: { cron }, action: { ask: … }, policy? } */
  job: Record<string, unknown>;
  /** what a local timer does when the cron fires; a rejection is logged */
  fire: () => Promise<unknown>;
}

export interface ScheduleSyncOptions {
  /** the Hand's context: its name (whose jobs these are), timers and log */
  ctx: Pick<HandContext, 'name' | 'timers' | 'log'>;
  /** the Hand's task client (one per Hand: it subscribes to the Hand's reply topic) */
  client: Pick<TaskClient, 'ask'>;
  /** croner's `Cron` */
  Cron: CronConstructor;
  /** how log lines start: the Hand's word for itself ('research') */
  label: string;
  /** the start of every job id this Hand puts (`research-<self>-`): the scheduler's jobs under it no longer wanted are
   *  removed. Without it nothing is removed. */
  prefix?: string;
  /** how long the scheduler gets to answer a put, list or remove (default 10 s) */
  timeoutMs?: number;
  /** the first wait before a sync the scheduler did not answer is tried again (default 15 s; doubled each time) */
  retryMs?: number;
}

export type ScheduledBy = 'scheduler' | 'local';

/** the Scheduling Hand's job ids (hands/scheduling/types.ts JOB_ID_PATTERN) */
const JOB_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** the longest one timer waits (setTimeout's limit); longer waits are chained */
const MAX_TIMER_MS = 2 ** 31 - 1;
const TIMEOUT_MS = 10_000;
/** after a sync the scheduler did not answer: the first retry, and the longest wait between retries */
const FIRST_RETRY_MS = 15_000;
const MAX_RETRY_MS = 15 * 60_000;
/** the scheduler's answers that refuse one job (the next may still be taken) */
const REFUSED = new Set(['BAD_REQUEST', 'CAPABILITY_DENIED', 'CONFLICT']);

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const codeOf = (err: unknown): unknown =>
  typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;

type ListedJob = { id?: unknown; source?: unknown; spec?: { action?: { ask?: { hand?: unknown } } } };

export class ScheduleSync {
  #ctx: ScheduleSyncOptions['ctx'];
  #client: ScheduleSyncOptions['client'];
  #Cron: CronConstructor;
  #label: string;
  #prefix: string | undefined;
  #timeoutMs: number;
  #by = new Map<string, ScheduledBy>();
  #timers = new Map<string, () => void>();
  #last: { scheduler: string; wanted: readonly ScheduledJob[] } | null = null;
  /** syncs run one after the other (a tidy must see the latest list) */
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;
  /** the next retry after a sync the scheduler did not answer: its timer, and the wait after it */
  #again: (() => void) | null = null;
  #firstRetryMs: number;
  /** the scheduler's silence was told (a warning) and it has not answered since */
  #silentSaid = false;
  #backoffMs: number;

  constructor(opts: ScheduleSyncOptions) {
    if (opts.prefix === '')
      throw new TypeError('ScheduleSync: prefix must not be empty (it would match every job); leave it out instead');
    this.#ctx = opts.ctx;
    this.#client = opts.client;
    this.#Cron = opts.Cron;
    this.#label = opts.label;
    this.#prefix = opts.prefix;
    this.#timeoutMs = opts.timeoutMs ?? TIMEOUT_MS;
    this.#firstRetryMs = opts.retryMs ?? FIRST_RETRY_MS;
    this.#backoffMs = this.#firstRetryMs;
  }

  /** who runs a schedule: 'scheduler' (its job was taken), 'local' (the Hand's timer), undefined (not scheduled) */
  by(id: string): ScheduledBy | undefined {
    return this.#by.get(id);
  }

  /** whether any schedule is on a local timer */
  get anyLocal(): boolean {
    return [...this.#by.values()].includes('local');
  }

  /**
   * Puts each wanted schedule not yet the scheduler's into the Scheduling Hand named `scheduler` ('' for none: all on
   * local timers); see the file's comment. After the syncs before it; resolves when done. The scheduler's failures
   * are logged, not thrown (a bad cron expression throws: check it when reading the settings).
   */
  sync(scheduler: string, wanted: readonly ScheduledJob[]): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    const odd = wanted.findIndex((s) => s.job.id !== s.id);
    if (odd >= 0)
      return Promise.reject(
        new TypeError(
          `ScheduleSync: wanted[${odd}].job.id (${JSON.stringify(wanted[odd]!.job.id)}) must be wanted[${odd}].id (${JSON.stringify(wanted[odd]!.id)})`,
        ),
      );
    this.#last = { scheduler, wanted };
    const run = this.#queue.then(() => this.#sync(scheduler, wanted));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Forgets who runs `id` (its local timer cancelled), so the next sync() puts its job again (call it when the job
   * changed) or, when it is no longer wanted, lets the tidy remove it from the scheduler.
   */
  forget(id: string): void {
    this.#cancel(id);
    this.#by.delete(id);
  }

  async #sync(scheduler: string, wanted: readonly ScheduledJob[]): Promise<void> {
    if (this.#stopped) return;
    const ctx = this.#ctx;
    const label = this.#label;
    const ids = new Set(wanted.map((s) => s.id));
    for (const id of [...this.#by.keys()])
      if (!ids.has(id)) {
        this.#cancel(id);
        this.#by.delete(id);
      }
    if (scheduler === '') {
      for (const s of wanted) this.#local(s);
      return;
    }
    let answering = true;
    for (const s of wanted) {
      if (this.#stopped) return;
      if (this.#by.get(s.id) === 'scheduler') continue;
      if (!JOB_ID.test(s.id)) {
        ctx.log(
          'warn',
          `${label}: ${s.id} is not a Scheduling Hand job id (a-z, 0-9, ".", "_", "-"; at most 64); the Hand's own timer runs it`,
        );
        this.#local(s);
        continue;
      }
      if (!answering) {
        this.#local(s);
        continue;
      }
      try {
        await this.#client.ask(scheduler, { op: 'put', job: s.job }, { timeoutMs: this.#timeoutMs });
        this.#cancel(s.id);
        // stopped while waiting: the job is the scheduler's all the same
        this.#by.set(s.id, 'scheduler');
      } catch (err) {
        if (REFUSED.has(codeOf(err) as string))
          ctx.log(
            'error',
            `${label}: the scheduler refused the job ${s.id}: ${message(err)}; the Hand's own timer runs it`,
          );
        else {
          answering = false;
          // said once until the scheduler answers again (the retries would repeat it every few minutes)
          ctx.log(
            this.#silentSaid ? 'debug' : 'warn',
            `${label}: the Scheduling Hand "${scheduler}" did not take the schedules (it did not take the job ${s.id}: ${message(err)}); they run on the Hand's own timers`,
          );
        }
        this.#local(s);
      }
    }
    this.#silentSaid = !answering;
    if (!answering) {
      this.#retrySoon();
      return;
    }
    this.#backoffMs = this.#firstRetryMs;
    this.#again?.();
    this.#again = null;
    if (this.#stopped || this.#prefix === undefined) return;
    await this.#tidy(scheduler, this.#prefix, ids);
  }

  /** sync() again with the last list when a scheduler is named and a schedule is on a local timer */
  async retry(): Promise<void> {
    const last = this.#last;
    if (!last || last.scheduler === '' || !this.anyLocal || this.#stopped) return;
    await this.sync(last.scheduler, last.wanted);
  }

  /** one retry at a time, each wait twice the last (up to MAX_RETRY_MS) */
  #retrySoon(): void {
    if (this.#again || this.#stopped) return;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_RETRY_MS);
    this.#again = this.#ctx.timers.after(wait, () => {
      this.#again = null;
      this.retry().catch(() => undefined);
    });
  }

  /** cancels the local timers; sync() and retry() do nothing from now on */
  stop(): void {
    this.#stopped = true;
    this.#again?.();
    this.#again = null;
    for (const cancel of this.#timers.values()) cancel();
    this.#timers.clear();
  }

  /** removes the scheduler's jobs under `prefix` that are not wanted, not the config's and not another Hand's */
  async #tidy(scheduler: string, prefix: string, keep: Set<string>): Promise<void> {
    const ctx = this.#ctx;
    try {
      const r = (await this.#client.ask(scheduler, { op: 'list' }, { timeoutMs: this.#timeoutMs })) as {
        jobs?: ListedJob[];
      } | null;
      for (const j of r?.jobs ?? []) {
        if (typeof j.id !== 'string' || !j.id.startsWith(prefix) || keep.has(j.id) || j.source === 'config') continue;
        // `<prefix>…` could be another Hand's whose name starts with this one's: the job's action says whose
        if (j.spec && j.spec.action?.ask?.hand !== ctx.name) continue;
        await this.#client.ask(scheduler, { op: 'remove', id: j.id }, { timeoutMs: this.#timeoutMs });
        ctx.log('info', `${this.#label}: removed the job ${j.id} (no longer scheduled)`);
      }
    } catch (err) {
      ctx.log('warn', `${this.#label}: the scheduler's jobs could not be tidied: ${message(err)}`);
    }
  }

  #cancel(id: string): void {
    this.#timers.get(id)?.();
    this.#timers.delete(id);
  }

  /** a cron on the Hand's own timers */
  #local(s: ScheduledJob): void {
    if (this.#stopped) return;
    this.#cancel(s.id);
    const cron = new this.#Cron(s.cron, { paused: true });
    const timers = this.#ctx.timers;
    const h = { cancel: (): void => undefined };
    const arm = (): void => {
      const next = cron.nextRun()?.getTime();
      if (next === undefined || this.#stopped) return;
      const wait = (): void => {
        const left = next - Date.now();
        if (left > 0) {
          h.cancel = timers.after(Math.min(left, MAX_TIMER_MS), wait);
          return;
        }
        this.#fire(s);
        arm();
      };
      h.cancel = timers.after(Math.max(0, Math.min(next - Date.now(), MAX_TIMER_MS)), wait);
    };
    arm();
    this.#timers.set(s.id, () => h.cancel());
    this.#by.set(s.id, 'local');
  }

  #fire(s: ScheduledJob): void {
    let p: Promise<unknown>;
    try {
      p = s.fire();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.catch((err: unknown) => this.#ctx.log('error', `${this.#label}: the scheduled ${s.id} failed: ${message(err)}`));
  }
}
