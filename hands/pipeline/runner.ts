/**
 * The runner of ONE checked pipeline (./types.ts Pipeline, as ./config.ts hands it over): it polls the sources, runs
 * the records through the transform graph in memory, journals the outputs (./journal.ts), acknowledges the sources,
 * and delivers from the journal to each sink. The Hand creates the sources and sinks (any kind: a bus source is a
 * small in-memory Source it feeds) and passes them in by stage id, so this file knows no source or sink kind.
 *
 * One round (`tick`):
 *   1. a write the journal refused (`block`) is tried again; while it is refused no source is polled (backpressure,
 *      counted `blockedTicks`), nothing is dropped;
 *   2. each source is polled once; its records go to the stages listing it in `inputs`; transforms run in
 *      `pipeline.order` (a windowed transform's `flush(now)` is called at its turn, its windows go downstream); a
 *      record reaching a sink becomes one journal entry `{ sink, record }` (the journal's sinks are the pipeline's);
 *   3. the entries are appended; only when the append resolved is `source.ack(token)` called (at-least-once: a crash
 *      before it re-reads);
 *   4. each sink not waiting out a `retryAfterMs` reads from its cursor, skipping (and acknowledging past) the entries
 *      of other sinks, writes a batch (ids: the journal's idempotencyKey) and acknowledges the settled prefix.
 * A transform's `{ error }`, a sink's `rejected`, a source's bad input and a record too large for the journal go to the
 * dead-letter queue (./dlq.ts) with { pipeline, stage, error, record as it entered that stage }. `replay(ids)` puts
 * dead letters back where they failed: a transform's run from that transform on (the current config), a sink's are
 * journalled for that sink again; they are removed from the queue only after the journal append resolved.
 *
 * Known limits: a crash after dead-lettering a transform's failure but before the source's ack dead-letters it again
 * on the re-read; dedupe and aggregate state are not persisted here (Transform.state/restore: the Hand's job); a
 * sink's `lag` counts the journal entries past its cursor, the other sinks' included.
 */
import { TalonError } from '../../runtime/core/errors.ts';
import type { HandStore, LogLevel } from '../../runtime/core/hand.ts';
import { DeadLetters, type DeadLetterInput } from './dlq.ts';
import { Journal, type JournalStats } from './journal.ts';
import { compileCode } from './sandbox.ts';
import type { SinkEntry, SinkWriter } from './sinks/types.ts';
import type { Source } from './sources/types.ts';
import { type StageResult, type Transform, compileTransform } from './transforms.ts';
import type { Pipeline, PipelineRecord } from './types.ts';

/** the default batch of a sink that does not say (an HTTP sink's `batch.maxRecords` wins) */
export const DEFAULT_SINK_BATCH = 100;
/** journal reads per sink per tick at most (a tick stays bounded while a big backlog drains) */
export const MAX_READS_PER_TICK = 50;
/** records per journal append at most (a store batch is 1000 operations, the meta one of them) */
const APPEND_CHUNK = 500;

export interface RunnerTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RunnerDeps {
  store: HandStore;
  /** the pipeline's sources by stage id (every one of pipeline.sources) */
  sources: Record<string, Source>;
  /** the pipeline's sinks by stage id (every one of pipeline.sinks) */
  sinks: Record<string, SinkWriter>;
  now: () => number;
  log: (level: LogLevel, msg: string) => void;
  /** start()'s scheduling (default the global timers) */
  timers?: RunnerTimers;
  /** the dead-letter queue shared by the Hand's pipelines, opened (default one of its own on `store`, `dlq/`) */
  dlq?: DeadLetters;
  /** start()'s pause between rounds when nothing is pending (default the smallest source intervalMs, else 1000) */
  intervalMs?: number;
  /** entries per sink write when the sink's spec says none (default DEFAULT_SINK_BATCH) */
  batchSize?: number;
}

export interface StageCounters {
  in: number;
  out: number;
  errors: number;
}

export interface SinkStatus {
  delivered: number;
  rejected: number;
  /** journal entries past its cursor (other sinks' included) */
  lag: number;
  /** no write before this time (ms since epoch; 0: none pending) */
  retryAt: number;
  lastError?: string;
}

export interface TickReport {
  /** records the sources gave */
  polled: number;
  /** journal entries appended */
  journalled: number;
  /** entries sinks settled (delivered or rejected) */
  delivered: number;
  /** records sent to the dead-letter queue */
  deadLettered: number;
  /** the journal refused the write (block): the sources were not polled */
  blocked: boolean;
  /** a source asked to be polled again right away */
  more: boolean;
}

export interface RunnerStatus {
  pipeline: string;
  running: boolean;
  /** sources, transforms and sinks by id: records in, out, failed */
  stages: Record<string, StageCounters>;
  sinks: Record<string, SinkStatus>;
  journal: JournalStats;
  /** letters in the dead-letter queue (every pipeline's when it is shared) */
  dlq: number;
  /** a journal write is waiting for space: the sources are not polled */
  blocked: boolean;
  /** rounds that skipped polling because the journal was full */
  blockedTicks: number;
}

export interface ReplayReport {
  /** letters put back into the pipeline (removed from the queue once journalled: see `report.blocked`) */
  replayed: number;
  /** letters left in the queue, with why */
  skipped: Array<{ id: number; reason: string }>;
}

/** a journal entry's record: which sink it is for and the record itself */
type Entry = {
  sink: string;
  record: PipelineRecord;
};

/** what waits for room in the journal, and the source position it acknowledges once written */
interface Pending {
  entries: Entry[];
  source?: string;
  token?: unknown;
  /** dead letters to remove once written (a replay) */
  letters?: number[];
}

const isEntry = (v: unknown): v is Entry =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as Entry).sink === 'string' &&
  typeof (v as Entry).record === 'object';

export class PipelineRunner {
  readonly pipeline: Pipeline;
  readonly #deps: RunnerDeps;
  readonly #journal: Journal;
  readonly #dlq: DeadLetters;
  readonly #ownDlq: boolean;
  readonly #transforms = new Map<string, Transform>();
  readonly #counters: Record<string, StageCounters> = {};
  readonly #sinkState: Record<string, { rejected: number; retryAt: number; lastError?: string }> = {};
  #opening: Promise<void> | undefined;
  #pending: Pending[] = [];
  #blockedTicks = 0;
  #running = false;
  #timer: unknown;
  #ticking: Promise<TickReport> | undefined;
  #closed = false;

  constructor(pipeline: Pipeline, deps: RunnerDeps) {
    const p = pipeline.name;
    for (const id of Object.keys(pipeline.sources))
      if (!deps.sources[id])
        throw new TalonError(
          'BAD_REQUEST',
          `pipeline ${p}: no Source given for sources.${id}; pass deps.sources.${id}`,
        );
    for (const id of Object.keys(pipeline.sinks))
      if (!deps.sinks[id])
        throw new TalonError(
          'BAD_REQUEST',
          `pipeline ${p}: no SinkWriter given for sinks.${id}; pass deps.sinks.${id}`,
        );
    this.pipeline = pipeline;
    this.#deps = deps;
    const q = pipeline.queue;
    this.#journal = new Journal(deps.store, {
      pipeline: p,
      sinks: Object.keys(pipeline.sinks),
      maxRecords: q.maxRecords,
      maxBytes: q.maxBytes,
      maxAgeMs: q.maxAgeMs,
      onFull: q.onFull,
      now: deps.now,
    });
    this.#ownDlq = deps.dlq === undefined;
    this.#dlq = deps.dlq ?? new DeadLetters(deps.store, { now: deps.now });
    for (const id of [...Object.keys(pipeline.sources), ...pipeline.order, ...Object.keys(pipeline.sinks)])
      this.#counters[id] = { in: 0, out: 0, errors: 0 };
    for (const id of Object.keys(pipeline.sinks)) this.#sinkState[id] = { rejected: 0, retryAt: 0 };
  }

  /** opens the journal (and its own dead-letter queue) and compiles the transforms; tick() and start() call it */
  open(): Promise<void> {
    this.#opening ??= this.#open();
    return this.#opening;
  }

  async #open(): Promise<void> {
    const p = this.pipeline;
    await this.#journal.open();
    if (this.#ownDlq) await this.#dlq.open();
    for (const id of p.order) {
      const spec = p.transforms[id];
      if (!spec) throw new TalonError('BAD_REQUEST', `pipeline ${p.name}: order names "${id}", not a transform`);
      const path = `pipelines.${p.name}.transforms.${id}`;
      if (spec.type === 'code') {
        if (spec.source === undefined)
          throw new TalonError('BAD_REQUEST', `${path}: the runner takes the code as source; read ${spec.file} first`);
        const code = await compileCode(spec.source, {
          name: path,
          timeoutMs: spec.timeoutMs,
          memoryMb: spec.memoryMb,
          timeField: p.timeField,
        });
        this.#transforms.set(id, {
          type: 'code',
          process: async (record): Promise<StageResult> => {
            const r = await code.run(record, { now: this.#deps.now() });
            return 'error' in r ? { error: r.error } : { out: r.out };
          },
        });
      } else this.#transforms.set(id, compileTransform(spec, { now: this.#deps.now, timeField: p.timeField, path }));
    }
  }

  /** runs rounds until stop(): right away again while a source has more or a sink a backlog, else every intervalMs */
  async start(): Promise<void> {
    await this.open();
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** ends the rounds (the one running finishes) and closes the sources and sinks */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#timers().clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#ticking?.catch(() => undefined);
    if (this.#closed) return;
    this.#closed = true;
    for (const s of Object.values(this.#deps.sources)) await s.close().catch(() => undefined);
    for (const s of Object.values(this.#deps.sinks)) await s.close().catch(() => undefined);
  }

  #timers(): RunnerTimers {
    return (
      this.#deps.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as never) }
    );
  }

  #interval(): number {
    if (this.#deps.intervalMs !== undefined) return this.#deps.intervalMs;
    const all = Object.values(this.pipeline.sources).flatMap((s) => ('intervalMs' in s ? [s.intervalMs] : []));
    return all.length > 0 ? Math.min(...all) : 1000;
  }

  #schedule(ms: number): void {
    if (!this.#running) return;
    this.#timer = this.#timers().setTimeout(() => {
      this.#timer = undefined;
      this.tick().then(
        (r) => this.#schedule(r.more && !r.blocked ? 0 : this.#interval()),
        (err) => {
          this.#deps.log('error', `pipeline ${this.pipeline.name}: a round failed: ${(err as Error).message}`);
          this.#schedule(this.#interval());
        },
      );
    }, ms);
  }

  /** one round: see the file's comment. Rounds never overlap (a second call waits for the first). */
  tick(): Promise<TickReport> {
    const run = (this.#ticking ?? Promise.resolve()).catch(() => undefined).then(() => this.#tick());
    this.#ticking = run;
    return run;
  }

  async #tick(): Promise<TickReport> {
    if (this.#closed)
      throw new TalonError('NOT_RUNNING', `pipeline ${this.pipeline.name}: the runner was stopped; create a new one`);
    await this.open();
    const report: TickReport = { polled: 0, journalled: 0, delivered: 0, deadLettered: 0, blocked: false, more: false };
    // the windows closed by the clock, even when no source has anything
    const flushed = await this.#runGraph(new Map(), true, report);
    if (flushed.length > 0) this.#pending.push({ entries: flushed });
    await this.#drainPending(report);
    if (this.#pending.length > 0) {
      this.#blockedTicks++;
      report.blocked = true;
    } else {
      for (const [id, source] of Object.entries(this.#deps.sources)) {
        const r = await source.poll();
        const c = this.#counters[id] as StageCounters;
        if (r.error) {
          c.errors++;
          this.#deps.log('warn', `pipeline ${this.pipeline.name}: source ${id}: ${r.error}`);
        }
        if (r.more) report.more = true;
        report.polled += r.records.length;
        c.in += r.records.length + r.bad.length;
        c.out += r.records.length;
        if (r.bad.length > 0) {
          c.errors += r.bad.length;
          await this.#deadLetter(
            r.bad.map((b) => ({ stage: id, error: b.error, record: { raw: b.raw, ...(b.line && { line: b.line }) } })),
            report,
          );
        }
        const seed = new Map<string, PipelineRecord[]>();
        for (const rec of r.records) for (const to of this.pipeline.consumers[id] ?? []) push(seed, to, rec);
        const entries = await this.#runGraph(seed, false, report);
        this.#pending.push({ entries, source: id, token: r.token });
        await this.#drainPending(report);
        if (this.#pending.length > 0) {
          report.blocked = true;
          break;
        }
      }
    }
    for (const id of Object.keys(this.pipeline.sinks)) await this.#deliver(id, report);
    // a write refused earlier may fit now that sinks acknowledged
    if (this.#pending.length > 0) await this.#drainPending(report);
    return report;
  }

  /**
   * runs records through the transforms in pipeline.order: `seed` holds records waiting at transforms or sinks; with
   * `flush` each windowed transform's closed windows join its outputs. Answers the entries for the journal.
   */
  async #runGraph(seed: Map<string, PipelineRecord[]>, flush: boolean, report: TickReport): Promise<Entry[]> {
    const letters: Array<Omit<DeadLetterInput, 'pipeline'>> = [];
    for (const id of this.pipeline.order) {
      const t = this.#transforms.get(id) as Transform;
      const c = this.#counters[id] as StageCounters;
      const outs: PipelineRecord[] = [];
      for (const record of seed.get(id) ?? []) {
        c.in++;
        let r: StageResult;
        try {
          r = await t.process(record);
        } catch (err) {
          r = { error: `the transform failed: ${(err as Error).message}` };
        }
        if ('error' in r) {
          c.errors++;
          letters.push({ stage: id, error: r.error, record });
        } else outs.push(...r.out);
      }
      seed.delete(id);
      if (flush && t.flush) outs.push(...t.flush(this.#deps.now()));
      c.out += outs.length;
      for (const rec of outs) for (const to of this.pipeline.consumers[id] ?? []) push(seed, to, rec);
    }
    if (letters.length > 0) await this.#deadLetter(letters, report);
    const entries: Entry[] = [];
    for (const [sink, records] of seed) {
      if (!this.pipeline.sinks[sink]) continue;
      for (const record of records) entries.push({ sink, record });
    }
    return entries;
  }

  /** appends what waits, in order; a source is acknowledged (a replay's letters removed) once all of its is written */
  async #drainPending(report: TickReport): Promise<void> {
    const q = this.pipeline.queue;
    const chunk = Math.max(1, Math.min(APPEND_CHUNK, Number.isFinite(q.maxRecords) ? q.maxRecords : APPEND_CHUNK));
    while (this.#pending.length > 0) {
      const head = this.#pending[0] as Pending;
      while (head.entries.length > 0) {
        const part = head.entries.slice(0, chunk);
        const r = await this.#journal.append(part);
        if (r.blocked) return;
        report.journalled += r.accepted;
        if (r.tooLarge.length > 0)
          await this.#deadLetter(
            r.tooLarge.map((i) => ({
              stage: (part[i] as Entry).sink,
              error: 'the record is too large for the journal (over maxBytes or the store value limit)',
              record: (part[i] as Entry).record,
            })),
            report,
          );
        const lost = r.dropped - r.tooLarge.length;
        if (lost > 0 || r.evicted > 0)
          this.#deps.log(
            'warn',
            `pipeline ${this.pipeline.name}: the journal is full (onFull ${q.onFull}): ${lost} new and ` +
              `${r.evicted} older records dropped`,
          );
        head.entries = head.entries.slice(part.length);
      }
      if (head.source !== undefined) await (this.#deps.sources[head.source] as Source).ack(head.token);
      if (head.letters && head.letters.length > 0) await this.#dlq.done(head.letters);
      this.#pending.shift();
    }
  }

  /** delivers from the sink's cursor until the journal has nothing more for it, a write fails or the round's cap */
  async #deliver(sink: string, report: TickReport): Promise<void> {
    const st = this.#sinkState[sink] as { rejected: number; retryAt: number; lastError?: string };
    const c = this.#counters[sink] as StageCounters;
    const writer = this.#deps.sinks[sink] as SinkWriter;
    const spec = this.pipeline.sinks[sink];
    const max = spec && spec.type === 'http' ? spec.batch.maxRecords : (this.#deps.batchSize ?? DEFAULT_SINK_BATCH);
    for (let reads = 0; reads < MAX_READS_PER_TICK; reads++) {
      if (st.retryAt > this.#deps.now()) return;
      const read = await this.#journal.next(sink, max);
      if (read.length === 0) return;
      const mine = read.filter((e) => isEntry(e.record) && e.record.sink === sink);
      const lastSeq = (read[read.length - 1] as { seq: number }).seq;
      if (mine.length === 0) {
        await this.#journal.ack(sink, lastSeq);
        continue;
      }
      const batch: SinkEntry[] = mine.map((e) => ({ id: e.id, record: (e.record as unknown as Entry).record }));
      c.in += batch.length;
      let result: Awaited<ReturnType<SinkWriter['write']>>;
      try {
        result = await writer.write(batch);
      } catch (err) {
        result = { done: 0, rejected: [], retryAfterMs: 1000, error: `the sink threw: ${(err as Error).message}` };
      }
      const done = Math.max(0, Math.min(result.done, batch.length));
      const rejected = result.rejected.filter((r) => r.index >= 0 && r.index < done);
      if (rejected.length > 0) {
        c.errors += rejected.length;
        st.rejected += rejected.length;
        await this.#deadLetter(
          rejected.map((r) => ({ stage: sink, error: r.error, record: (batch[r.index] as SinkEntry).record })),
          report,
        );
      }
      c.out += done - rejected.length;
      report.delivered += done;
      // up to the first entry of this sink not settled (the other sinks' before it are passed too)
      const upto = done === mine.length ? lastSeq : (mine[done] as { seq: number }).seq - 1;
      await this.#journal.ack(sink, upto);
      if (done < batch.length) {
        st.retryAt = this.#deps.now() + Math.max(0, result.retryAfterMs ?? 1000);
        st.lastError = result.error;
        if (result.error) this.#deps.log('warn', `pipeline ${this.pipeline.name}: sink ${sink}: ${result.error}`);
        return;
      }
      st.retryAt = 0;
      delete st.lastError;
      if (read.length < max) return;
    }
  }

  async #deadLetter(list: Array<Omit<DeadLetterInput, 'pipeline'>>, report: TickReport): Promise<void> {
    const at = this.#deps.now();
    await this.#dlq.putMany(list.map((l) => ({ pipeline: this.pipeline.name, at, ...l })));
    report.deadLettered += list.length;
  }

  /**
   * puts dead letters back where they failed (see the file's comment): a transform's record runs from that transform
   * on, a sink's is journalled for that sink again. Letters of another pipeline, of a stage no longer in this one, or of
   * a source (raw input) are left in the queue. A transform that fails again dead-letters the record anew.
   */
  async replay(ids: number[]): Promise<ReplayReport & { report: TickReport }> {
    await this.open();
    const report: TickReport = { polled: 0, journalled: 0, delivered: 0, deadLettered: 0, blocked: false, more: false };
    const out: ReplayReport = { replayed: 0, skipped: [] };
    const letters = await this.#dlq.take(ids);
    const found = new Set(letters.map((l) => l.id));
    for (const id of ids) if (!found.has(id)) out.skipped.push({ id, reason: 'not in the queue (or being replayed)' });
    const seed = new Map<string, PipelineRecord[]>();
    const use: number[] = [];
    const release: number[] = [];
    const p = this.pipeline;
    for (const l of letters) {
      const skip = (reason: string): void => {
        release.push(l.id);
        out.skipped.push({ id: l.id, reason });
      };
      const rec = l.record;
      if (l.pipeline !== p.name) skip(`of pipeline ${l.pipeline}, not ${p.name}`);
      else if (l.truncated || typeof rec !== 'object' || rec === null || Array.isArray(rec))
        skip('the record was not kept whole');
      else if (p.sources[l.stage]) skip(`source ${l.stage}'s raw input cannot be replayed; fix it at the source`);
      else if (!p.transforms[l.stage] && !p.sinks[l.stage]) skip(`stage ${l.stage} is no longer in ${p.name}`);
      else {
        push(seed, l.stage, rec as PipelineRecord);
        use.push(l.id);
      }
    }
    if (release.length > 0) this.#dlq.release(release);
    if (use.length === 0) return { ...out, report };
    try {
      await (this.#ticking ?? Promise.resolve()).catch(() => undefined);
      const entries = await this.#runGraph(seed, false, report);
      this.#pending.push({ entries, letters: use });
      await this.#drainPending(report);
    } catch (err) {
      this.#dlq.release(use);
      throw err;
    }
    out.replayed = use.length;
    // a full journal (block): the records wait with the round's other writes; the letters go once they are written
    report.blocked = this.#pending.length > 0;
    return { ...out, report };
  }

  async status(): Promise<RunnerStatus> {
    await this.open();
    const journal = this.#journal.stats();
    const sinks: Record<string, SinkStatus> = {};
    for (const [id, st] of Object.entries(this.#sinkState)) {
      const j = journal.sinks[id];
      sinks[id] = {
        delivered: (this.#counters[id] as StageCounters).out,
        rejected: st.rejected,
        lag: j?.lag ?? 0,
        retryAt: st.retryAt,
        ...(st.lastError !== undefined && { lastError: st.lastError }),
      };
    }
    const stages: Record<string, StageCounters> = {};
    for (const [id, c] of Object.entries(this.#counters)) stages[id] = { ...c };
    return {
      pipeline: this.pipeline.name,
      running: this.#running,
      stages,
      sinks,
      journal,
      dlq: this.#dlq.stats().entries,
      blocked: this.#pending.length > 0,
      blockedTicks: this.#blockedTicks,
    };
  }
}

function push(map: Map<string, PipelineRecord[]>, key: string, rec: PipelineRecord): void {
  const list = map.get(key);
  if (list) list.push(rec);
  else map.set(key, [rec]);
}
