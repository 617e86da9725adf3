/**
 * HandStores for tests of code that keeps its state in a Hand's store (hands/pipeline/journal.ts, dlq.ts): a faithful
 * in-memory one (ordered keys, list with prefix/after/limit/reverse, batches of at most 1000 applied all or nothing,
 * values through JSON, a write that fails on command) and a Hand's scope of the kernel's real LevelDB store
 * (runtime/store), served as runtime/supervisor/hand-runner.ts serves ctx.store; each as a backend that can restart
 * (the process ends and starts again: nothing closed cleanly for memory; the database closed and opened for LevelDB).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import type { HandStore, HandStoreOp } from '../../runtime/core/hand.ts';
import { SYNC, Store } from '../../runtime/store/store.ts';

/** an in-memory HandStore that keeps the kernel's rules */
export class MemStore implements HandStore {
  readonly map = new Map<string, string>();
  /** sorted keys, deleted ones among them until the next tidy-up (a head deletion is then not O(n) each) */
  keys: string[] = [];
  #inKeys = new Set<string>();
  batches = 0;
  synced = 0;
  /** the n-th batch from now fails (1 = the next), as a full disk would */
  failBatch = 0;

  #index(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #set(key: string, json: string): void {
    if (!this.#inKeys.has(key)) {
      const n = this.keys.length;
      if (n === 0 || this.keys[n - 1]! < key) this.keys.push(key);
      else this.keys.splice(this.#index(key), 0, key);
      this.#inKeys.add(key);
    }
    this.map.set(key, json);
  }

  #del(key: string): void {
    if (!this.map.delete(key)) return;
    if (this.keys.length > 64 && this.map.size < this.keys.length / 2) {
      this.keys = this.keys.filter((k) => this.map.has(k));
      this.#inKeys = new Set(this.keys);
    }
  }

  #check(key: unknown): void {
    if (typeof key !== 'string' || key.length === 0)
      throw new TalonError('BAD_REQUEST', 'a store key must be a string');
    if (Buffer.byteLength(key) > 512) throw new TalonError('STORE_LIMIT', 'store key over 512 bytes');
  }

  #json(key: string, value: unknown): string {
    this.#check(key);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TalonError('BAD_REQUEST', `the value for "${key}" is not JSON`);
    if (Buffer.byteLength(json) > 256 * 1024)
      throw new TalonError('STORE_LIMIT', `the value for "${key}" is too large`);
    return json;
  }

  async get<T>(key: string): Promise<T | undefined> {
    this.#check(key);
    const json = this.map.get(key);
    return json === undefined ? undefined : (JSON.parse(json) as T);
  }

  async put(key: string, value: unknown, opts?: { sync?: boolean }): Promise<void> {
    await this.batch([{ type: 'put', key, value }], opts);
  }

  async del(key: string): Promise<void> {
    this.#check(key);
    this.#del(key);
  }

  async list<T>(o: { prefix?: string; limit?: number; reverse?: boolean; after?: string } = {}) {
    const prefix = o.prefix ?? '';
    const limit = typeof o.limit === 'number' && o.limit > 0 ? Math.min(1000, Math.floor(o.limit)) : 1000;
    const out: Array<[string, T]> = [];
    if (o.reverse) {
      let end = prefix ? `${prefix}\uffff` : '\uffff\uffff';
      if (o.after !== undefined && o.after < end) end = o.after;
      for (let i = this.#index(end) - 1; i >= 0 && out.length < limit; i--) {
        const k = this.keys[i]!;
        if (!k.startsWith(prefix)) break;
        const json = this.map.get(k);
        if (json !== undefined) out.push([k, JSON.parse(json) as T]);
      }
      return out;
    }
    let i = this.#index(prefix);
    if (o.after !== undefined && o.after >= prefix) {
      i = this.#index(o.after);
      if (this.keys[i] === o.after) i++;
    }
    for (; i < this.keys.length && out.length < limit; i++) {
      const k = this.keys[i]!;
      if (!k.startsWith(prefix)) break;
      const json = this.map.get(k);
      if (json !== undefined) out.push([k, JSON.parse(json) as T]);
    }
    return out;
  }

  async batch(ops: HandStoreOp[], opts?: { sync?: boolean }): Promise<void> {
    if (ops.length > 1000) throw new TalonError('STORE_LIMIT', 'store.batch takes at most 1000 operations at once');
    // every operation checked before any lands: all or nothing
    const checked = ops.map((op) => ({
      op,
      json: op.type === 'put' ? this.#json(op.key, op.value) : this.#check(op.key),
    }));
    if (this.failBatch > 0 && --this.failBatch === 0) throw new TalonError('STORE_FULL', 'no space left on the device');
    for (const { op, json } of checked) {
      if (op.type === 'put') this.#set(op.key, json as string);
      else this.#del(op.key);
    }
    this.batches++;
    if (opts?.sync) this.synced++;
  }

  /** the same data seen by a new process */
  restart(): MemStore {
    const s = new MemStore();
    for (const k of this.keys) {
      const v = this.map.get(k);
      if (v !== undefined) s.#set(k, v);
    }
    return s;
  }
}

/** a Hand's scope of the real store, served as hand-runner.ts serves ctx.store */
export function levelHandStore(store: Store, hand: string): HandStore {
  const scope = store.handScope(hand);
  return {
    get: async <T>(key: string) => (await scope.get(key)) as T | undefined,
    put: (key, value, opts) => scope.put(key, value, opts?.sync ? SYNC : {}),
    del: (key) => scope.del(key),
    async list<T>(o: { prefix?: string; limit?: number; reverse?: boolean; after?: string } = {}) {
      const prefix = o.prefix ?? '';
      const limit = typeof o.limit === 'number' && o.limit > 0 ? Math.min(1000, Math.floor(o.limit)) : 1000;
      const range: { gte?: string; gt?: string; lt?: string } = prefix ? { gte: prefix, lt: `${prefix}\uffff` } : {};
      if (typeof o.after === 'string') {
        if (o.reverse === true) range.lt = range.lt === undefined || o.after < range.lt ? o.after : range.lt;
        else if (range.gte === undefined || o.after >= range.gte) {
          delete range.gte;
          range.gt = o.after;
        }
      }
      const out: Array<[string, T]> = [];
      for await (const [k, v] of scope.iterator({ ...range, limit, reverse: o.reverse === true }))
        out.push([k, v as T]);
      return out;
    },
    async batch(ops, opts) {
      if (ops.length > 1000) throw new TalonError('STORE_LIMIT', 'store.batch takes at most 1000 operations at once');
      if (ops.length > 0) await scope.batch(ops, opts?.sync ? SYNC : {});
    },
  };
}

export interface StoreBackend {
  store: HandStore;
  /** the process ends and starts again; answers the store to use from then on */
  restart(): Promise<HandStore>;
}

const dirs: string[] = [];
const opened: Store[] = [];

/** closes the LevelDB stores the backends opened and removes their folders (call it in `after`) */
export async function closeStores(): Promise<void> {
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** how many keys lie under `prefix` */
export async function countKeys(store: HandStore, prefix: string): Promise<number> {
  let n = 0;
  let from: string | undefined;
  for (;;) {
    const page = await store.list({ prefix, after: from, limit: 1000 });
    n += page.length;
    if (page.length < 1000) return n;
    from = page[page.length - 1]![0];
  }
}

/** the two backends by name; `hand` names the LevelDB scope, `tmp` the temporary folder's prefix */
export function storeBackends(hand: string, tmp: string): Record<'memory' | 'leveldb', () => Promise<StoreBackend>> {
  return {
    memory: async () => {
      const b: StoreBackend = {
        store: new MemStore(),
        async restart() {
          b.store = (b.store as MemStore).restart();
          return b.store;
        },
      };
      return b;
    },
    leveldb: async () => {
      const dir = mkdtempSync(join(tmpdir(), tmp));
      dirs.push(dir);
      let db = await Store.open(dir);
      opened.push(db);
      const b: StoreBackend = {
        store: levelHandStore(db, hand),
        async restart() {
          await db.close();
          db = await Store.open(dir);
          opened.push(db);
          b.store = levelHandStore(db, hand);
          return b.store;
        },
      };
      return b;
    },
  };
}
