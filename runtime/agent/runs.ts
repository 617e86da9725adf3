/**
 * Stored agent runs (GET /api/v1/runs, the web admin's runs of a Hand and one run's steps), in
 * the store's `runs` sublevel as JSON. Run ids sort by time (./loop.ts `newRunId`), so key order
 * is time order. Three key families:
 *
 *   r\0<id>            the whole run, steps included (rewritten after every step, so a crash
 *                      mid-run leaves the steps so far)
 *   s\0<id>            the run without its steps, with `stepCount` (what a listing reads)
 *   h\0<hand>\0<id>    an index by Hand (value: 1)
 *
 * Each Hand keeps its newest `keepPerHand` runs (default 200); older ones are deleted when a run
 * finishes. `start()` marks runs a previous process left `running` as failed (HAND_STOPPED,
 * "the kernel stopped during the run").
 */
import { TalonError } from '../core/errors.ts';
import type { Sublevel, SublevelName } from '../store/store.ts';
import type { AgentRun, AgentRunsApi } from '../tools/types.ts';

export type RunSummary = Omit<AgentRun, 'steps'> & { stepCount: number };

export interface RunStoreOptions {
  /** runs kept per Hand (default 200) */
  keepPerHand?: number;
}

/** What /metrics reads: counters since this process started, and runs in flight. */
export interface RunStats {
  running: number;
  started: number;
  done: number;
  failed: number;
  steps: number;
  inputTokens: number;
  outputTokens: number;
}

const RUN = 'r\0';
const SUMMARY = 's\0';
const HAND = 'h\0';
const END = '\uffff';
const DEFAULT_KEEP = 200;
const LIST_MAX = 500;

const handPrefix = (hand: string): string => `${HAND}${hand}\0`;

export function summaryOf(run: AgentRun): RunSummary {
  const { steps, ...rest } = run;
  return { ...rest, stepCount: steps.length };
}

export class RunStore implements AgentRunsApi {
  readonly #db: Sublevel<unknown>;
  readonly #keep: number;
  readonly #stats: RunStats = {
    running: 0,
    started: 0,
    done: 0,
    failed: 0,
    steps: 0,
    inputTokens: 0,
    outputTokens: 0,
  };
  /** steps and tokens already counted per running run (update() adds only what is new) */
  readonly #counted = new Map<string, { steps: number; inputTokens: number; outputTokens: number }>();

  constructor(store: { sublevel<V>(name: SublevelName): Sublevel<V> }, opts: RunStoreOptions = {}) {
    this.#db = store.sublevel<unknown>('runs');
    this.#keep = Math.max(1, opts.keepPerHand ?? DEFAULT_KEEP);
  }

  /** marks the runs a previous process left `running` as failed; returns how many */
  async start(now = Date.now()): Promise<number> {
    const stale: RunSummary[] = [];
    for await (const v of this.#db.values({ gte: SUMMARY, lt: `${SUMMARY}${END}` })) {
      const s = v as RunSummary;
      if (s.state === 'running' && !this.#counted.has(s.id)) stale.push(s);
    }
    for (const s of stale) {
      const run = (await this.#db.get(RUN + s.id)) as AgentRun | undefined;
      if (!run) continue;
      run.state = 'failed';
      run.endedAt = now;
      run.error = { code: 'HAND_STOPPED', message: 'the kernel stopped during the run' };
      await this.#write(run);
    }
    return stale.length;
  }

  /** a new run, state `running`, no steps yet */
  async create(init: { id: string; hand: string; goal: string; startedAt: number }): Promise<AgentRun> {
    const run: AgentRun = {
      id: init.id,
      hand: init.hand,
      goal: init.goal,
      state: 'running',
      startedAt: init.startedAt,
      steps: [],
      usage: { inputTokens: 0, outputTokens: 0 },
    };
    await this.#db.batch([
      { type: 'put', key: RUN + run.id, value: run },
      { type: 'put', key: SUMMARY + run.id, value: summaryOf(run) },
      { type: 'put', key: handPrefix(run.hand) + run.id, value: 1 },
    ]);
    this.#stats.running++;
    this.#stats.started++;
    this.#counted.set(run.id, { steps: 0, inputTokens: 0, outputTokens: 0 });
    return run;
  }

  /** the run so far (after every step) */
  async update(run: AgentRun): Promise<void> {
    await this.#write(run);
    this.#count(run);
  }

  /** the run's end (state `done` or `failed`); prunes the Hand's oldest runs past the limit */
  async finish(run: AgentRun): Promise<void> {
    await this.#write(run);
    this.#count(run);
    if (this.#counted.delete(run.id)) {
      this.#stats.running--;
      if (run.state === 'done') this.#stats.done++;
      else this.#stats.failed++;
    }
    await this.#prune(run.hand);
  }

  /** newest first, without steps; `before` is a run id (the last of the previous page) */
  async list(opts: { hand?: string; limit?: number; before?: string } = {}): Promise<RunSummary[]> {
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 50)), LIST_MAX);
    if (opts.hand === undefined) {
      const out: RunSummary[] = [];
      const lt = opts.before !== undefined ? SUMMARY + opts.before : `${SUMMARY}${END}`;
      for await (const v of this.#db.values({ gte: SUMMARY, lt, reverse: true, limit })) out.push(v as RunSummary);
      return out;
    }
    const prefix = handPrefix(opts.hand);
    const lt = opts.before !== undefined ? prefix + opts.before : prefix + END;
    const ids: string[] = [];
    for await (const k of this.#db.keys({ gte: prefix, lt, reverse: true, limit })) ids.push(k.slice(prefix.length));
    if (!ids.length) return [];
    const rows = await this.#db.getMany(ids.map((id) => SUMMARY + id));
    return rows.filter((r): r is RunSummary => r !== undefined && r !== null);
  }

  async get(id: string): Promise<AgentRun> {
    const run = typeof id === 'string' && id ? ((await this.#db.get(RUN + id)) as AgentRun | undefined) : undefined;
    if (!run) throw new TalonError('RUN_NOT_FOUND', `there is no agent run "${String(id).slice(0, 80)}"`);
    return run;
  }

  stats(): RunStats {
    return { ...this.#stats };
  }

  async #write(run: AgentRun): Promise<void> {
    await this.#db.batch([
      { type: 'put', key: RUN + run.id, value: run },
      { type: 'put', key: SUMMARY + run.id, value: summaryOf(run) },
    ]);
  }

  #count(run: AgentRun): void {
    const c = this.#counted.get(run.id);
    if (!c) return;
    this.#stats.steps += Math.max(0, run.steps.length - c.steps);
    this.#stats.inputTokens += Math.max(0, run.usage.inputTokens - c.inputTokens);
    this.#stats.outputTokens += Math.max(0, run.usage.outputTokens - c.outputTokens);
    c.steps = run.steps.length;
    c.inputTokens = run.usage.inputTokens;
    c.outputTokens = run.usage.outputTokens;
  }

  async #prune(hand: string): Promise<void> {
    const prefix = handPrefix(hand);
    const old: string[] = [];
    let n = 0;
    for await (const k of this.#db.keys({ gte: prefix, lt: prefix + END, reverse: true })) {
      if (++n > this.#keep) old.push(k.slice(prefix.length));
    }
    // a run still in flight is never pruned
    const ops = old
      .filter((id) => !this.#counted.has(id))
      .flatMap((id) => [
        { type: 'del' as const, key: RUN + id },
        { type: 'del' as const, key: SUMMARY + id },
        { type: 'del' as const, key: prefix + id },
      ]);
    if (ops.length) await this.#db.batch(ops);
  }
}
