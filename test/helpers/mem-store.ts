/** A HandStore in memory (a Map, values cloned as the kernel's JSON store would), for unit tests of Hands' parts. */
import type { HandStore, HandStoreOp } from '../../hands/sdk/types.ts';

export type MemStore = HandStore & { map: Map<string, unknown> };

export function memStore(map: Map<string, unknown> = new Map()): MemStore {
  return {
    map,
    async get<T>(k: string) {
      return structuredClone(map.get(k)) as T | undefined;
    },
    async put(k, v) {
      map.set(k, structuredClone(v));
    },
    async del(k) {
      map.delete(k);
    },
    async list<T>(o: { prefix?: string; limit?: number; reverse?: boolean; after?: string } = {}) {
      const rows = [...map.entries()]
        .filter(([k]) => k.startsWith(o.prefix ?? ''))
        .filter(([k]) => o.after === undefined || (o.reverse ? k < o.after : k > o.after))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      if (o.reverse) rows.reverse();
      return structuredClone(rows.slice(0, Math.min(o.limit ?? 1000, 1000))) as Array<[string, T]>;
    },
    async batch(ops: HandStoreOp[]) {
      for (const op of ops) {
        if (op.type === 'put') map.set(op.key, structuredClone(op.value));
        else map.delete(op.key);
      }
    },
  };
}
