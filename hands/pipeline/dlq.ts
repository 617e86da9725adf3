/**
 * The dead-letter queue of the Pipeline Hand: records that failed validation, a transform or a sink, kept with the
 * pipeline, the stage, the error and the original record until a person replays or drops them
 * (`talon pipeline dlq list|replay|drop`, the API).
 *
 * It uses nothing but the Hand's store (runtime/core/hand.ts HandStore), one queue for all pipelines, under `prefix`
 * (default `dlq/`):
 *
 *   <prefix>e/<id, 16 digits>   a dead letter: { id, pipeline, stage, error, record, at, b } (b: its JSON bytes)
 *   <prefix>m                   the meta: the last id, how many and how many bytes are kept, the counters
 *
 * Ids are 1, 2, 3 … in arrival order (never reused while the store lives). Every change is a store batch of at most
 * 1000 operations carrying the meta, written with `sync: true`.
 *
 * Replay is two steps so a crash in between loses nothing: `take` answers the letters and holds them (in memory, for
 * `leaseMs`) so a second take does not hand them out twice; `done` removes them once the caller has put them back
 * into the pipeline; `release` gives them back at once. After a restart every held letter is free again.
 *
 * The cap (`maxEntries`, default 100,000, and `maxBytes`, default 64 MiB): when a put passes it the oldest letters
 * are removed and counted in `evicted` (kept in the store, with `lastEvictedAt`), and `onEvict` is called so the Hand
 * can log it: a full dead-letter queue loses data and must be loud about it. A record too large for one store value
 * (or not JSON) is kept as a preview of its JSON with `truncated: true` (it cannot be replayed, but it is not lost
 * silently).
 */
import { TalonError } from '../../runtime/core/errors.ts';
import type { HandStore, HandStoreOp } from '../../runtime/core/hand.ts';

export interface DeadLetterInput {
  pipeline: string;
  /** the stage that failed: a transform's or sink's id, or `validate`, `source` … */
  stage: string;
  /** the reason: an Error's message, or a string */
  error: unknown;
  /** the record as it entered the pipeline */
  record: unknown;
  /** when it failed (ms since epoch; default now) */
  at?: number;
}

export interface DeadLetter {
  id: number;
  pipeline: string;
  stage: string;
  error: string;
  /** the original record; null when truncated */
  record: unknown;
  at: number;
  /** the record was too large or not JSON: `preview` holds the start of it */
  truncated?: true;
  preview?: string;
}

export interface DeadLetterFilter {
  pipeline?: string;
  stage?: string;
}

export interface DeadLettersOptions {
  /** where the keys start in the Hand's store (default `dlq/`) */
  prefix?: string;
  /** the most letters kept (default 100,000) */
  maxEntries?: number;
  /** the most bytes of letters' JSON kept (default 64 MiB) */
  maxBytes?: number;
  /** how long a taken letter is held for its replay before another take may have it (default 10 min) */
  leaseMs?: number;
  /** the clock (ms since epoch); tests pass a fake one */
  now?: () => number;
  /** called after letters were removed to stay under the cap: how many now, and the total since the queue began */
  onEvict?: (evicted: number, total: number) => void;
}

export interface DeadLetterStats {
  /** letters kept and their bytes */
  entries: number;
  bytes: number;
  /** letters put, dropped by a person, replayed (done), removed for the cap */
  put: number;
  dropped: number;
  replayed: number;
  evicted: number;
  /** records kept only as a preview */
  truncated: number;
  lastEvictedAt: number | null;
  /** letters held by a take now */
  taken: number;
}

interface Meta {
  v: 1;
  seq: number;
  entries: number;
  bytes: number;
  put: number;
  dropped: number;
  replayed: number;
  evicted: number;
  truncated: number;
  lastEvictedAt: number | null;
}

type Stored = DeadLetter & { b: number };

const BATCH_MAX = 1000;
const LIST_MAX = 1000;
/** the store's largest value (runtime/supervisor STORE_VALUE_MAX_BYTES), with room to spare */
const VALUE_MAX_BYTES = 255 * 1024;
const PREVIEW_CHARS = 16 * 1024;
const ERROR_CHARS = 4096;
const NAME_CHARS = 200;
const SEQ_DIGITS = 16;

const pad = (id: number): string => String(id).padStart(SEQ_DIGITS, '0');
const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n)}…` : s);
const message = (err: unknown): string =>
  err instanceof Error ? err.message : typeof err === 'string' ? err : (safeJson(err) ?? String(err));

function safeJson(v: unknown): string | undefined {
  try {
    return JSON.stringify(v);
  } catch {
    return undefined;
  }
}

function positive(field: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0))
    throw new TalonError('BAD_REQUEST', `dead-letter queue ${field} must be a number above 0 (got ${String(v)})`);
  return v;
}

function ids(list: unknown, what: string): number[] {
  if (!Array.isArray(list) || list.some((id) => !Number.isSafeInteger(id) || (id as number) < 1))
    throw new TalonError('BAD_REQUEST', `dead-letter ${what} takes a list of ids (whole numbers from 1), e.g. [3, 4]`);
  return [...new Set(list as number[])];
}

export class DeadLetters {
  readonly #store: HandStore;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #leaseMs: number;
  readonly #now: () => number;
  readonly #onEvict: ((evicted: number, total: number) => void) | undefined;
  readonly #entries: string;
  readonly #metaKey: string;
  #meta: Meta | undefined;
  /** held for a replay: id → until when */
  readonly #taken = new Map<number, number>();
  #chain: Promise<unknown> = Promise.resolve();

  constructor(store: HandStore, opts: DeadLettersOptions = {}) {
    this.#store = store;
    this.#maxEntries = positive('maxEntries', opts.maxEntries, 100_000);
    this.#maxBytes = positive('maxBytes', opts.maxBytes, 64 * 1024 * 1024);
    this.#leaseMs = positive('leaseMs', opts.leaseMs, 10 * 60_000);
    this.#now = opts.now ?? Date.now;
    this.#onEvict = opts.onEvict;
    const prefix = opts.prefix ?? 'dlq/';
    this.#entries = `${prefix}e/`;
    this.#metaKey = `${prefix}m`;
  }

  /** reads the meta back; call once before anything else */
  open(): Promise<void> {
    return this.#serial(async () => {
      const stored = await this.#store.get<Meta>(this.#metaKey);
      const m = stored && stored.v === 1 ? stored : fresh();
      const [last] = await this.#store.list({ prefix: this.#entries, reverse: true, limit: 1 });
      if (last) m.seq = Math.max(m.seq, Number(last[0].slice(this.#entries.length)));
      else {
        m.entries = 0;
        m.bytes = 0;
      }
      this.#meta = m;
    });
  }

  /** keeps one failed record durably; answers its id */
  async put(letter: DeadLetterInput): Promise<number> {
    const [id] = await this.putMany([letter]);
    return id as number;
  }

  /** keeps failed records durably (in as few synced batches as fit); answers their ids */
  async putMany(letters: DeadLetterInput[]): Promise<number[]> {
    if (!Array.isArray(letters))
      throw new TalonError('BAD_REQUEST', 'dead-letter putMany takes an array of { pipeline, stage, error, record }');
    for (const [i, l] of letters.entries())
      if (typeof l !== 'object' || l === null || typeof l.pipeline !== 'string' || typeof l.stage !== 'string')
        throw new TalonError('BAD_REQUEST', `dead letter [${i}] needs pipeline and stage as strings, error and record`);
    return this.#serial(async () => {
      const m = this.#opened();
      const out: number[] = [];
      let evicted = 0;
      await this.#write(async (tx) => {
        for (const l of letters) {
          const letter = this.#letter(++m.seq, l);
          m.entries++;
          m.bytes += letter.b;
          m.put++;
          if (letter.truncated) m.truncated++;
          out.push(letter.id);
          await tx.add({ type: 'put', key: this.#entries + pad(letter.id), value: letter });
        }
        // on disk first: the eviction reads the oldest from the store (this put's own, when they alone pass the cap)
        await tx.flush();
        evicted = await this.#evict(tx);
      });
      if (evicted > 0) this.#onEvict?.(evicted, m.evicted);
      return out;
    });
  }

  /** letters in id order (oldest first), after the id `after`, at most `limit` (default 100, at most 1000) */
  async list(opts: DeadLetterFilter & { limit?: number; after?: number } = {}): Promise<DeadLetter[]> {
    this.#opened();
    const limit = opts.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX)
      throw new TalonError('BAD_REQUEST', `dead-letter list limit must be a whole number from 1 to ${LIST_MAX}`);
    const out: DeadLetter[] = [];
    await this.#scan(opts, opts.after ?? 0, (l) => {
      out.push(l);
      return out.length < limit;
    });
    return out;
  }

  /** one letter, or undefined */
  async get(id: number): Promise<DeadLetter | undefined> {
    this.#opened();
    const s = await this.#store.get<Stored>(this.#entries + pad(id));
    return s ? strip(s) : undefined;
  }

  /**
   * removes letters for good: by id, or every one (of a pipeline, of a stage); answers how many went. A letter held by
   * a take goes too (its `done` then changes nothing).
   */
  async drop(what: number[] | ({ all: true } & DeadLetterFilter)): Promise<number> {
    const byId = Array.isArray(what) ? ids(what, 'drop') : undefined;
    if (!byId && (typeof what !== 'object' || what === null || (what as { all?: unknown }).all !== true))
      throw new TalonError('BAD_REQUEST', 'dead-letter drop takes a list of ids or { all: true, pipeline?, stage? }');
    return this.#serial(() => this.#remove(byId ?? (what as DeadLetterFilter), 'dropped'));
  }

  /**
   * letters to replay, held for `leaseMs` so another take skips them: by id (those that exist and are not held), or
   * the first `limit` (default 100) of a pipeline or stage. Nothing is removed: call done(ids) once they are back in
   * the pipeline, release(ids) to give them up.
   */
  async take(what: number[] | (DeadLetterFilter & { limit?: number })): Promise<DeadLetter[]> {
    this.#opened();
    const now = this.#now();
    const free = (id: number): boolean => (this.#taken.get(id) ?? 0) <= now;
    const out: DeadLetter[] = [];
    if (Array.isArray(what)) {
      for (const id of ids(what, 'take')) {
        if (!free(id)) continue;
        const s = await this.#store.get<Stored>(this.#entries + pad(id));
        if (s) out.push(strip(s));
      }
    } else {
      const limit = what.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX)
        throw new TalonError('BAD_REQUEST', `dead-letter take limit must be a whole number from 1 to ${LIST_MAX}`);
      await this.#scan(what, 0, (l) => {
        if (free(l.id)) out.push(l);
        return out.length < limit;
      });
    }
    for (const l of out) this.#taken.set(l.id, now + this.#leaseMs);
    return out;
  }

  /** the taken letters are back in the pipeline: removed (counted `replayed`); answers how many went */
  async done(list: number[]): Promise<number> {
    const byId = ids(list, 'done');
    return this.#serial(() => this.#remove(byId, 'replayed'));
  }

  /** gives taken letters up without removing them (a replay that failed): the next take may have them */
  release(list: number[]): void {
    for (const id of ids(list, 'release')) this.#taken.delete(id);
  }

  stats(): DeadLetterStats {
    const m = this.#opened();
    const now = this.#now();
    let taken = 0;
    for (const until of this.#taken.values()) if (until > now) taken++;
    return {
      entries: m.entries,
      bytes: m.bytes,
      put: m.put,
      dropped: m.dropped,
      replayed: m.replayed,
      evicted: m.evicted,
      truncated: m.truncated,
      lastEvictedAt: m.lastEvictedAt,
      taken,
    };
  }

  #letter(id: number, l: DeadLetterInput): Stored {
    const at = typeof l.at === 'number' && Number.isFinite(l.at) ? l.at : this.#now();
    const base = {
      id,
      pipeline: clip(l.pipeline, NAME_CHARS),
      stage: clip(l.stage, NAME_CHARS),
      error: clip(message(l.error), ERROR_CHARS),
      at,
    };
    const json = safeJson(l.record);
    const size = (v: object): number => Buffer.byteLength(JSON.stringify(v)) + 20;
    if (json !== undefined) {
      const full = { ...base, record: JSON.parse(json) as unknown, b: 0 };
      full.b = size(full);
      if (full.b <= VALUE_MAX_BYTES) return full;
    }
    const preview =
      json === undefined ? `not JSON: ${clip(String(l.record), PREVIEW_CHARS)}` : clip(json, PREVIEW_CHARS);
    const cut: Stored = { ...base, record: null, truncated: true, preview, b: 0 };
    cut.b = size(cut);
    return cut;
  }

  /** the letters matching the filter after `after`, in id order, until `each` answers false */
  async #scan(f: DeadLetterFilter, after: number, each: (l: DeadLetter) => boolean): Promise<void> {
    let from = this.#entries + pad(after);
    for (;;) {
      const page = await this.#store.list<Stored>({ prefix: this.#entries, after: from, limit: LIST_MAX });
      for (const [key, s] of page) {
        from = key;
        if ((f.pipeline === undefined || s.pipeline === f.pipeline) && (f.stage === undefined || s.stage === f.stage))
          if (!each(strip(s))) return;
      }
      if (page.length < LIST_MAX) return;
    }
  }

  async #remove(what: number[] | DeadLetterFilter, counter: 'dropped' | 'replayed'): Promise<number> {
    const m = this.#opened();
    let n = 0;
    const one = async (tx: Tx, key: string, s: Stored): Promise<void> => {
      m.entries = Math.max(0, m.entries - 1);
      m.bytes = Math.max(0, m.bytes - s.b);
      m[counter]++;
      this.#taken.delete(s.id);
      n++;
      await tx.add({ type: 'del', key });
    };
    await this.#write(async (tx) => {
      if (Array.isArray(what)) {
        for (const id of what) {
          const key = this.#entries + pad(id);
          const s = await this.#store.get<Stored>(key);
          if (s) await one(tx, key, s);
        }
        return;
      }
      // the scan reads ahead of the deletes: collect a page, then delete it
      let from = this.#entries + pad(0);
      for (;;) {
        const page = await this.#store.list<Stored>({ prefix: this.#entries, after: from, limit: LIST_MAX });
        for (const [key, s] of page) {
          from = key;
          if (
            (what.pipeline === undefined || s.pipeline === what.pipeline) &&
            (what.stage === undefined || s.stage === what.stage)
          )
            await one(tx, key, s);
        }
        if (page.length < LIST_MAX) break;
      }
    });
    return n;
  }

  /** removes the oldest letters while over the cap */
  async #evict(tx: Tx): Promise<number> {
    const m = this.#opened();
    let n = 0;
    let from = this.#entries + pad(0);
    while (m.entries > this.#maxEntries || m.bytes > this.#maxBytes) {
      const page = await this.#store.list<Stored>({ prefix: this.#entries, after: from, limit: LIST_MAX });
      if (page.length === 0) break;
      for (const [key, s] of page) {
        if (m.entries <= this.#maxEntries && m.bytes <= this.#maxBytes) break;
        from = key;
        m.entries--;
        m.bytes = Math.max(0, m.bytes - s.b);
        m.evicted++;
        m.lastEvictedAt = this.#now();
        this.#taken.delete(s.id);
        n++;
        await tx.add({ type: 'del', key });
      }
    }
    return n;
  }

  #opened(): Meta {
    if (!this.#meta) throw new TalonError('NOT_RUNNING', 'the dead-letter queue is not open: await dlq.open() first');
    return this.#meta;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** batches the operations with the meta; on a failed write the meta is read back from the store */
  async #write(fn: (tx: Tx) => Promise<void>): Promise<void> {
    const m = this.#opened();
    const tx = new Tx(this.#store, this.#metaKey, m);
    try {
      await fn(tx);
      await tx.flush();
    } catch (err) {
      const stored = await this.#store.get<Meta>(this.#metaKey);
      this.#meta = stored && stored.v === 1 ? stored : fresh();
      throw err;
    }
  }
}

function fresh(): Meta {
  return {
    v: 1,
    seq: 0,
    entries: 0,
    bytes: 0,
    put: 0,
    dropped: 0,
    replayed: 0,
    evicted: 0,
    truncated: 0,
    lastEvictedAt: null,
  };
}

function strip(s: Stored): DeadLetter {
  const { b: _b, ...letter } = s;
  return letter;
}

/** the operations of one change, flushed as batches of at most 1000 (the meta included), each synced */
class Tx {
  readonly #store: HandStore;
  readonly #metaKey: string;
  readonly #meta: Meta;
  #ops: HandStoreOp[] = [];

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
    if (this.#ops.length === 0) return;
    const ops = this.#ops;
    this.#ops = [];
    ops.push({ type: 'put', key: this.#metaKey, value: structuredClone(this.#meta) });
    await this.#store.batch(ops, { sync: true });
  }
}
