/**
 * The audit log until the signed hash chain replaces it: entries written plainly to the
 * store's `audit` sublevel with a sequence number, group-committed with sync writes so an
 * acknowledged entry is durable. Nothing is dropped.
 */
import type { Audit, AuditEvent } from './types.ts';
import type { Store } from '../store/store.ts';
import { SYNC } from '../store/store.ts';
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';

export interface PlainAuditEntry extends AuditEvent {
  seq: number;
  ts: number;
}

export const seqKey = (seq: number): string => seq.toString(16).padStart(12, '0');

export class PlainAuditLog implements Audit {
  #store: Store;
  #clock: Clock;
  #seq = 0;
  #pending: Array<{ entry: PlainAuditEntry; resolve: () => void; reject: (e: unknown) => void }> = [];
  #flushing: Promise<void> | null = null;

  constructor(store: Store, clock: Clock = systemClock) {
    this.#store = store;
    this.#clock = clock;
  }

  async start(): Promise<void> {
    for await (const key of this.#store.sublevel('audit').keys({ reverse: true, limit: 1 })) {
      this.#seq = parseInt(key, 16);
    }
  }

  record(event: AuditEvent): Promise<void> {
    const entry: PlainAuditEntry = { seq: ++this.#seq, ts: this.#clock.now(), ...event };
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, resolve, reject });
      if (!this.#flushing) this.#flushing = this.#flush();
    });
  }

  async #flush(): Promise<void> {
    // one sync batch per turn: everything that arrived while the last write was in flight
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0);
      try {
        await this.#store.sublevel('audit').batch(
          batch.map(({ entry }) => ({ type: 'put' as const, key: seqKey(entry.seq), value: entry })), SYNC);
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    this.#flushing = null;
  }

  /** resolves when everything recorded so far is durable */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async *entries(opts: { since?: number; limit?: number; reverse?: boolean } = {}): AsyncGenerator<PlainAuditEntry> {
    const range = opts.since ? { gte: seqKey(opts.since) } : {};
    for await (const [, value] of this.#store.sublevel<PlainAuditEntry>('audit').iterator({ ...range, limit: opts.limit ?? -1, reverse: opts.reverse ?? false })) {
      yield value as PlainAuditEntry;
    }
  }
}
