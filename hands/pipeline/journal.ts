/**
 * The durable journal of one pipeline (store-and-forward): records are written to the Hand's store before the source
 * is acknowledged, read by each sink from its own cursor, and removed only when every sink has acknowledged them.
 *
 * It uses nothing but the Hand's store (runtime/core/hand.ts HandStore), so it runs in a Hand's worker. Its keys,
 * under `prefix` (default `journal/`):
 *
 *   <prefix><pipeline>/e/<seq, 16 digits>   an entry: { t: journalled at (ms), b: the record's JSON bytes, r: record }
 *   <prefix><pipeline>/m                    the meta: the last sequence number, the first still kept, the bytes kept,
 *                                           the counters and every sink's cursor
 *
 * Every write is a store batch of at most 1000 operations carrying the meta as it stands after that batch, written
 * with `sync: true`: a crash leaves the entries and the meta agreeing, and an append that resolved is on disk. So
 * the source may acknowledge its input once `append` resolved; a crash between an append and a sink's `ack`
 * delivers the entries again (at-least-once), never loses them. Sequence numbers are 1, 2, 3 … without gaps, zero
 * padded so key order is sequence order; `open()` takes the last one from the meta or the last key, whichever is
 * higher, so numbers are never reused while the store lives. A sink that takes an idempotency key gets
 * `idempotencyKey(pipeline, seq)`, which is the same on every redelivery.
 *
 * Sinks read with `next(sink, max)` (the entries after its cursor, in order) and confirm with `ack(sink, uptoSeq)`;
 * a sink that failed does not ack and reads the same entries again. Entries every cursor has passed are deleted in
 * the same batches as the ack.
 *
 * Limits (`maxRecords`, `maxBytes` of record JSON, `maxAgeMs` since journalled) and the policy at the limit:
 *   drop-oldest   the oldest entries are removed for every sink (counted `dropped.oldest`, and per sink the entries it
 *                 had not acknowledged); a batch larger than the limit keeps its newest records
 *   drop-newest   the new records that do not fit are refused (counted `dropped.newest`), the rest accepted
 *   block         nothing is accepted, `blocked: true`: the caller stops reading its source until `waitForSpace()`
 *                 resolves (backpressure). A batch that could never fit is an error, so the caller appends less.
 * Entries older than `maxAgeMs` are removed at the next append or `compact()` (counted `dropped.expired`, and per sink
 * `expired`). A record whose JSON is over `maxBytes` or the store's value limit is never journalled: its index is in
 * the answer's `tooLarge` (counted `dropped.tooLarge`) for the caller's dead-letter queue.
 *
 * Sinks are fixed per journal: at open a sink the meta does not know starts at the current sequence (it gets what is
 * appended from now on), and a sink no longer configured is forgotten (what only it held back is deleted).
 */
import { TalonError } from '../../runtime/core/errors.ts';
import type { HandStore, HandStoreOp } from '../../runtime/core/hand.ts';
import type { OnFull, PipelineRecord } from './types.ts';

/** the queue's settings (./types.ts QueueSpec: config.ts fills them) and the pipeline's sinks */
export interface JournalOptions {
  /** the pipeline's name (no "/"): part of the keys and of the idempotency keys */
  pipeline: string;
  /** the ids of the pipeline's sinks (at least one, no "/") */
  sinks: string[];
  /** the most entries kept (default: no limit but maxBytes) */
  maxRecords?: number;
  /** the most bytes of record JSON kept (default 256 MiB) */
  maxBytes?: number;
  /** entries journalled longer ago than this are removed at the next append or compact (default: kept) */
  maxAgeMs?: number;
  /** what happens at a limit (default block: nothing is lost) */
  onFull?: OnFull;
  /** where the keys start in the Hand's store (default `journal/`) */
  prefix?: string;
  /** the clock (ms since epoch); tests pass a fake one */
  now?: () => number;
}

/** one journalled record as a sink reads it */
export interface JournalEntry {
  seq: number;
  /** when it was journalled (ms since epoch) */
  at: number;
  record: PipelineRecord;
  /** `${pipeline}:${seq}`: the same on every redelivery */
  id: string;
}

export interface AppendResult {
  /** records journalled (durable when the promise resolved) */
  accepted: number;
  /** records of this call not journalled: refused (drop-newest), over the limit by themselves (drop-oldest), too large */
  dropped: number;
  /** block: nothing was accepted; stop reading the source until waitForSpace() resolves */
  blocked: boolean;
  /** older entries removed to make room (drop-oldest) or because they expired */
  evicted: number;
  /** indexes (in `records`) of records too large to journal: for the dead-letter queue */
  tooLarge: number[];
  /** the sequence numbers given, first to last (0 and 0 when none) */
  firstSeq: number;
  lastSeq: number;
}

export interface SinkCounters {
  /** the last sequence number the sink acknowledged (or that was removed before it did) */
  cursor: number;
  /** entries acknowledged */
  delivered: number;
  /** entries removed by age before this sink acknowledged them */
  expired: number;
  /** entries removed by drop-oldest before this sink acknowledged them */
  droppedOldest: number;
}

export interface DroppedCounters {
  oldest: number;
  newest: number;
  expired: number;
  tooLarge: number;
}

export interface JournalStats {
  pipeline: string;
  /** entries kept and their record bytes */
  records: number;
  bytes: number;
  /** the first and last sequence numbers kept (first > last when empty) */
  firstSeq: number;
  lastSeq: number;
  appended: number;
  dropped: DroppedCounters;
  /** appends answered `blocked` since open (not kept across restarts) */
  blockedAppends: number;
  sinks: Record<string, SinkCounters & { lag: number }>;
}

export interface Lag {
  /** entries the sink has not acknowledged */
  entries: number;
  /** how long ago the oldest of them was journalled (0 when none) */
  oldestAgeMs: number;
  /** its sequence number (0 when none) */
  oldestSeq: number;
}

interface Meta {
  v: 1;
  /** the last sequence number given */
  seq: number;
  /** the lowest sequence number that may still be kept (seq + 1 when empty) */
  first: number;
  bytes: number;
  appended: number;
  dropped: DroppedCounters;
  sinks: Record<string, SinkCounters>;
}

interface StoredEntry {
  t: number;
  b: number;
  r: PipelineRecord;
}

/** a store batch's most operations (runtime/supervisor STORE_BATCH_MAX); one of them is the meta */
const BATCH_MAX = 1000;
/** a store list's most rows */
const LIST_MAX = 1000;
/** the store's largest value (runtime/supervisor STORE_VALUE_MAX_BYTES), less room for { t, b } */
const VALUE_MAX_BYTES = 256 * 1024 - 64;
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;
const SEQ_DIGITS = 16;
/** names that go into keys: no "/", not empty, short */
const NAME = /^[^/]{1,128}$/;
const POLICIES: readonly OnFull[] = ['drop-oldest', 'drop-newest', 'block'];

/** the idempotency key of a pipeline's record: `${pipeline}:${seq}` (what an upsert by key or Idempotency-Key uses) */
export function idempotencyKey(pipeline: string, seq: number): string {
  return `${pipeline}:${seq}`;
}

const pad = (seq: number): string => String(seq).padStart(SEQ_DIGITS, '0');
const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`);

function positive(field: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0))
    throw new TalonError(
      'BAD_REQUEST',
      `journal ${field} must be a number above 0 (got ${String(v)}); leave it out for no limit`,
    );
  return v;
}

export class Journal {
  readonly pipeline: string;
  readonly sinks: readonly string[];
  readonly #store: HandStore;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #maxAgeMs: number;
  readonly #onFull: OnFull;
  readonly #now: () => number;
  readonly #entries: string;
  readonly #metaKey: string;
  #meta: Meta | undefined;
  /** when the first kept entry was journalled: undefined = not known, null = none kept */
  #headAt: number | null | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #blockedAppends = 0;
  #spaceWaiters = new Set<() => void>();

  constructor(store: HandStore, opts: JournalOptions) {
    if (typeof opts.pipeline !== 'string' || !NAME.test(opts.pipeline))
      throw new TalonError(
        'BAD_REQUEST',
        `journal pipeline must be a name of 1 to 128 characters without "/" (got ${JSON.stringify(opts.pipeline)})`,
      );
    if (!Array.isArray(opts.sinks) || opts.sinks.length === 0)
      throw new TalonError('BAD_REQUEST', `journal of ${opts.pipeline}: sinks must list at least one sink id`);
    for (const [i, s] of opts.sinks.entries())
      if (typeof s !== 'string' || !NAME.test(s))
        throw new TalonError(
          'BAD_REQUEST',
          `journal of ${opts.pipeline}: sinks[${i}] must be an id of 1 to 128 characters without "/"`,
        );
    if (new Set(opts.sinks).size !== opts.sinks.length)
      throw new TalonError(
        'BAD_REQUEST',
        `journal of ${opts.pipeline}: sinks has an id twice (${opts.sinks.join(', ')})`,
      );
    const onFull = opts.onFull ?? 'block';
    if (!POLICIES.includes(onFull))
      throw new TalonError(
        'BAD_REQUEST',
        `journal onFull must be one of ${POLICIES.join(', ')} (got ${JSON.stringify(onFull)})`,
      );
    this.pipeline = opts.pipeline;
    this.sinks = [...opts.sinks];
    this.#store = store;
    this.#maxRecords = positive('maxRecords', opts.maxRecords, Number.POSITIVE_INFINITY);
    this.#maxBytes = positive('maxBytes', opts.maxBytes, DEFAULT_MAX_BYTES);
    this.#maxAgeMs = positive('maxAgeMs', opts.maxAgeMs, Number.POSITIVE_INFINITY);
    this.#onFull = onFull;
    this.#now = opts.now ?? Date.now;
    const prefix = opts.prefix ?? 'journal/';
    this.#entries = `${prefix}${opts.pipeline}/e/`;
    this.#metaKey = `${prefix}${opts.pipeline}/m`;
  }

  /** reads the meta back (after a restart: the sequence, the cursors, the counters); call once before anything else */
  open(): Promise<void> {
    return this.#serial(async () => {
      if (await this.#load())
        await this.#write(async (tx) => {
          tx.dirty = true;
          await this.#removeAcked(tx);
        });
    });
  }

  /**
   * Journals records durably (in store batches with `sync: true`) under the limits and the policy; when it resolves
   * the accepted ones survive a crash and the source may acknowledge them.
   */
  async append(records: PipelineRecord[]): Promise<AppendResult> {
    if (!Array.isArray(records))
      throw new TalonError(
        'BAD_REQUEST',
        `journal of ${this.pipeline}: append takes an array of records, not ${describe(records)}`,
      );
    const sized = records.map((r, i) => {
      if (typeof r !== 'object' || r === null || Array.isArray(r))
        throw new TalonError(
          'BAD_REQUEST',
          `journal of ${this.pipeline}: records[${i}] is ${describe(r)}; a record is a JSON object`,
        );
      let json: string;
      try {
        json = JSON.stringify(r);
      } catch (err) {
        throw new TalonError(
          'BAD_REQUEST',
          `journal of ${this.pipeline}: records[${i}] is not JSON: ${(err as Error).message}`,
        );
      }
      // what is kept is what JSON makes of it (undefined fields gone, dates as strings)
      return { index: i, b: Buffer.byteLength(json), record: r };
    });
    return this.#serial(() => this.#append(sized));
  }

  async #append(sized: Array<{ index: number; b: number; record: PipelineRecord }>): Promise<AppendResult> {
    const m = this.#opened();
    const now = this.#now();
    const out: AppendResult = {
      accepted: 0,
      dropped: 0,
      blocked: false,
      evicted: 0,
      tooLarge: [],
      firstSeq: 0,
      lastSeq: 0,
    };
    let take = sized.filter((s) => {
      if (s.b <= this.#maxBytes && s.b <= VALUE_MAX_BYTES) return true;
      out.tooLarge.push(s.index);
      return false;
    });
    out.dropped += out.tooLarge.length;
    const count = (): number => m.seq - m.first + 1;
    const sum = (list: typeof take): number => list.reduce((a, s) => a + s.b, 0);
    if (this.#onFull === 'block') {
      const bytes = sum(take);
      if (take.length > this.#maxRecords || bytes > this.#maxBytes)
        throw new TalonError(
          'BAD_REQUEST',
          `journal of ${this.pipeline}: ${take.length} records (${bytes} bytes) can never fit its limit (maxRecords ` +
            `${this.#maxRecords}, maxBytes ${this.#maxBytes}); append fewer at once`,
        );
    }
    await this.#write(async (tx) => {
      m.dropped.tooLarge += out.tooLarge.length;
      if (out.tooLarge.length > 0) tx.dirty = true;
      out.evicted += await this.#expire(tx, now);
      if (this.#onFull === 'block') {
        if (count() + take.length > this.#maxRecords || m.bytes + sum(take) > this.#maxBytes) {
          this.#blockedAppends++;
          out.blocked = true;
          take = [];
        }
      } else if (this.#onFull === 'drop-newest') {
        let n = count();
        let bytes = m.bytes;
        const fits = take.findIndex((s) => {
          n++;
          bytes += s.b;
          return n > this.#maxRecords || bytes > this.#maxBytes;
        });
        if (fits >= 0) {
          m.dropped.newest += take.length - fits;
          out.dropped += take.length - fits;
          take = take.slice(0, fits);
          tx.dirty = true;
        }
      } else {
        // drop-oldest: the batch's own newest that fit, then room made for them at the head
        let keep = Math.min(take.length, this.#maxRecords);
        let bytes = sum(take.slice(take.length - keep));
        while (bytes > this.#maxBytes) bytes -= take[take.length - keep--]!.b;
        const lost = take.length - keep;
        if (lost > 0) {
          m.dropped.oldest += lost;
          out.dropped += lost;
          take = take.slice(lost);
          tx.dirty = true;
        }
        const room = { n: keep, bytes };
        out.evicted += await this.#removeHead(
          tx,
          () => count() + room.n > this.#maxRecords || m.bytes + room.bytes > this.#maxBytes,
          'oldest',
        );
      }
      for (const s of take) {
        m.seq++;
        m.bytes += s.b;
        m.appended++;
        if (this.#headAt === null) this.#headAt = now;
        await tx.add({ type: 'put', key: this.#entries + pad(m.seq), value: { t: now, b: s.b, r: s.record } });
      }
      out.accepted = take.length;
      if (take.length > 0) {
        out.firstSeq = m.seq - take.length + 1;
        out.lastSeq = m.seq;
      }
    });
    return out;
  }

  /**
   * The entries after the sink's cursor (or after `opts.after`, to read ahead of what is in flight), in order, at
   * most `max`. The same entries come back until the sink acknowledges them.
   */
  async next(sink: string, max: number, opts: { after?: number } = {}): Promise<JournalEntry[]> {
    const m = this.#opened();
    const s = this.#sink(sink);
    if (!Number.isInteger(max) || max < 1)
      throw new TalonError(
        'BAD_REQUEST',
        `journal of ${this.pipeline}: next(${sink}, max): max must be a whole number above 0`,
      );
    let from = Math.max(s.cursor, m.first - 1, opts.after ?? 0);
    const out: JournalEntry[] = [];
    while (out.length < max) {
      const want = Math.min(LIST_MAX, max - out.length);
      const page = await this.#store.list<unknown>({
        prefix: this.#entries,
        after: this.#entries + pad(from),
        limit: want,
      });
      for (const [key, value] of page) {
        const e = decode(value);
        const seq = Number(key.slice(this.#entries.length));
        out.push({ seq, at: e.t, record: e.r, id: idempotencyKey(this.pipeline, seq) });
        from = seq;
      }
      if (page.length < want) break;
    }
    return out;
  }

  /**
   * The sink has delivered everything up to `uptoSeq`: its cursor moves there (durably), and entries every sink has
   * passed are deleted. An ack below the cursor changes nothing. Answers how many entries this ack delivered.
   */
  async ack(sink: string, uptoSeq: number): Promise<number> {
    this.#sink(sink);
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0)
      throw new TalonError(
        'BAD_REQUEST',
        `journal of ${this.pipeline}: ack(${sink}, uptoSeq): uptoSeq must be a sequence number`,
      );
    return this.#serial(async () => {
      const m = this.#opened();
      const s = this.#sink(sink);
      const upto = Math.min(uptoSeq, m.seq);
      if (upto <= s.cursor) return 0;
      const n = upto - s.cursor;
      await this.#write(async (tx) => {
        s.delivered += n;
        s.cursor = upto;
        tx.dirty = true;
        await this.#removeAcked(tx);
      });
      return n;
    });
  }

  /** removes expired entries (and, under drop-oldest, entries over a limit lowered since) */
  compact(): Promise<number> {
    return this.#serial(async () => {
      const m = this.#opened();
      let removed = 0;
      await this.#write(async (tx) => {
        removed += await this.#expire(tx, this.#now());
        if (this.#onFull === 'drop-oldest')
          removed += await this.#removeHead(
            tx,
            () => m.seq - m.first + 1 > this.#maxRecords || m.bytes > this.#maxBytes,
            'oldest',
          );
      });
      return removed;
    });
  }

  /** what the sink has not acknowledged: how many and how old the oldest */
  async lag(sink: string): Promise<Lag> {
    const m = this.#opened();
    const s = this.#sink(sink);
    const from = Math.max(s.cursor, m.first - 1);
    const entries = m.seq - from;
    if (entries <= 0) return { entries: 0, oldestAgeMs: 0, oldestSeq: 0 };
    const [row] = await this.#store.list<unknown>({
      prefix: this.#entries,
      after: this.#entries + pad(from),
      limit: 1,
    });
    if (!row) return { entries, oldestAgeMs: 0, oldestSeq: from + 1 };
    return {
      entries,
      oldestAgeMs: Math.max(0, this.#now() - decode(row[1]).t),
      oldestSeq: Number(row[0].slice(this.#entries.length)),
    };
  }

  /** the counters (kept in the store but `blockedAppends`), sizes and cursors */
  stats(): JournalStats {
    const m = this.#opened();
    const sinks: JournalStats['sinks'] = {};
    for (const [id, s] of Object.entries(m.sinks)) sinks[id] = { ...s, lag: m.seq - Math.max(s.cursor, m.first - 1) };
    return {
      pipeline: this.pipeline,
      records: m.seq - m.first + 1,
      bytes: m.bytes,
      firstSeq: m.first,
      lastSeq: m.seq,
      appended: m.appended,
      dropped: { ...m.dropped },
      blockedAppends: this.#blockedAppends,
      sinks,
    };
  }

  /** resolves when entries are next removed (an ack, a drop, an expiry) or the signal aborts: when a blocked append may
   *  be tried again */
  waitForSpace(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = (): void => {
        this.#spaceWaiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#spaceWaiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #sink(sink: string): SinkCounters {
    const s = this.#opened().sinks[sink];
    if (!s || !this.sinks.includes(sink))
      throw new TalonError(
        'BAD_REQUEST',
        `journal of ${this.pipeline}: no sink "${sink}" (have: ${this.sinks.join(', ')})`,
      );
    return s;
  }

  #opened(): Meta {
    if (!this.#meta)
      throw new TalonError('NOT_RUNNING', `the journal of ${this.pipeline} is not open: await journal.open() first`);
    return this.#meta;
  }

  /** one at a time: appends, acks and compactions change the meta */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** the meta from the store, set right for the configured sinks; answers whether the sinks changed */
  async #load(): Promise<boolean> {
    const stored = await this.#store.get<Meta>(this.#metaKey);
    const m: Meta =
      stored && stored.v === 1
        ? stored
        : {
            v: 1,
            seq: 0,
            first: 1,
            bytes: 0,
            appended: 0,
            dropped: { oldest: 0, newest: 0, expired: 0, tooLarge: 0 },
            sinks: {},
          };
    // the keys win where they say more: never reuse a sequence number
    const [last] = await this.#store.list<unknown>({ prefix: this.#entries, reverse: true, limit: 1 });
    if (last) {
      let after = m.seq;
      const lastSeq = Number(last[0].slice(this.#entries.length));
      while (after < lastSeq) {
        const page = await this.#store.list<unknown>({
          prefix: this.#entries,
          after: this.#entries + pad(after),
          limit: LIST_MAX,
        });
        if (page.length === 0) break;
        for (const [key, value] of page) {
          m.bytes += decode(value).b;
          m.appended++;
          after = Number(key.slice(this.#entries.length));
        }
      }
      m.seq = Math.max(m.seq, lastSeq);
      const [head] = await this.#store.list<unknown>({ prefix: this.#entries, limit: 1 });
      if (head) m.first = Math.max(m.first, Number(head[0].slice(this.#entries.length)));
    } else {
      m.first = m.seq + 1;
      m.bytes = 0;
    }
    // sinks that are no longer configured hold nothing back; new ones start with what is appended from now on (all
    // that is kept when the meta was lost: nothing is deleted unread)
    const lost = !(stored && stored.v === 1) && last !== undefined;
    let changed = false;
    for (const s of Object.keys(m.sinks))
      if (!this.sinks.includes(s)) {
        delete m.sinks[s];
        changed = true;
      }
    for (const s of this.sinks)
      if (!m.sinks[s]) {
        m.sinks[s] = { cursor: lost ? m.first - 1 : m.seq, delivered: 0, expired: 0, droppedOldest: 0 };
        changed = true;
      }
    this.#meta = m;
    this.#headAt = last ? undefined : null;
    return changed;
  }

  /** runs `fn` with a writer that batches its operations (each batch with the meta, synced); on a failed write the
   *  meta is read back from the store, so memory never runs ahead of the disk */
  async #write(fn: (tx: Tx) => Promise<void>): Promise<void> {
    const tx = new Tx(this.#store, this.#metaKey, this.#opened());
    try {
      await fn(tx);
      await tx.flush();
    } catch (err) {
      await this.#load();
      throw err;
    } finally {
      if (tx.removed > 0) for (const w of [...this.#spaceWaiters]) w();
    }
  }

  async #removeAcked(tx: Tx): Promise<number> {
    const m = this.#opened();
    const min = Math.min(...Object.values(m.sinks).map((s) => s.cursor));
    return this.#removeHead(tx, (seq) => seq <= min, 'acked', min);
  }

  async #expire(tx: Tx, now: number): Promise<number> {
    if (this.#maxAgeMs === Number.POSITIVE_INFINITY) return 0;
    const m = this.#opened();
    if (this.#headAt === undefined) {
      const [row] = await this.#store.list<unknown>({
        prefix: this.#entries,
        after: this.#entries + pad(m.first - 1),
        limit: 1,
      });
      this.#headAt = row ? decode(row[1]).t : null;
    }
    if (this.#headAt === null || now - this.#headAt <= this.#maxAgeMs) return 0;
    return this.#removeHead(tx, (_seq, e) => now - e.t > this.#maxAgeMs, 'expired');
  }

  /** removes entries from the head while `more` says so (and up to `upto`), counting them by reason and moving the
   *  cursors past them */
  async #removeHead(
    tx: Tx,
    more: (seq: number, e: StoredEntry) => boolean,
    reason: 'acked' | 'oldest' | 'expired',
    upto = Number.POSITIVE_INFINITY,
  ): Promise<number> {
    const m = this.#opened();
    let removed = 0;
    for (;;) {
      const last = Math.min(m.seq, upto);
      if (m.first > last) break;
      const page = await this.#store.list<unknown>({
        prefix: this.#entries,
        after: this.#entries + pad(m.first - 1),
        limit: Math.min(LIST_MAX, last - m.first + 1),
      });
      if (page.length === 0) {
        // nothing left on disk: the meta follows
        m.first = m.seq + 1;
        m.bytes = 0;
        tx.dirty = true;
        break;
      }
      for (const [key, value] of page) {
        const seq = Number(key.slice(this.#entries.length));
        const e = decode(value);
        if (!more(seq, e)) return removed;
        m.first = seq + 1;
        m.bytes = Math.max(0, m.bytes - e.b);
        if (reason !== 'acked') {
          m.dropped[reason]++;
          for (const s of Object.values(m.sinks))
            if (s.cursor < seq) {
              if (reason === 'expired') s.expired++;
              else s.droppedOldest++;
              s.cursor = seq;
            }
        }
        this.#headAt = m.first > m.seq ? null : undefined;
        removed++;
        tx.removed++;
        await tx.add({ type: 'del', key });
      }
    }
    return removed;
  }
}

/** an entry as the store gives it back */
function decode(value: unknown): StoredEntry {
  return (typeof value === 'string' ? JSON.parse(value) : value) as StoredEntry;
}

/** the operations of one change, flushed as batches of at most 1000 (the meta included), each synced */
class Tx {
  readonly #store: HandStore;
  readonly #metaKey: string;
  readonly #meta: Meta;
  #ops: HandStoreOp[] = [];
  /** the meta changed without an operation (a counter, a cursor): flush writes it even with no operation */
  dirty = false;
  removed = 0;

  constructor(store: HandStore, metaKey: string, meta: Meta) {
    this.#store = store;
    this.#metaKey = metaKey;
    this.#meta = meta;
  }

  async add(op: HandStoreOp): Promise<void> {
    this.#ops.push(op);
    if (this.#ops.length >= BATCH_MAX - 1) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#ops.length === 0 && !this.dirty) return;
    const ops = this.#ops;
    this.#ops = [];
    this.dirty = false;
    ops.push({ type: 'put', key: this.#metaKey, value: structuredClone(this.#meta) });
    await this.#store.batch(ops, { sync: true });
  }
}
