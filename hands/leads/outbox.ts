/**
 * The Lead Generation Hand's CRM outbox: every qualified lead version is delivered to every target once, durably.
 *
 * Store keys (the Hand's store):
 *   crm/q/<target>/<lead id>      a Delivery (./types.ts): pending, sent or failed; one per target and lead, the newest
 *                                 version enqueued (a newer version replaces a pending one: only the latest content
 *                                 matters to a CRM); written with { sync: true } before enqueue() resolves
 *   crm/sent/<target>/<lead id>   { version, at, crmId }: the last version the target confirmed. A version equal to it
 *                                 is never enqueued again (after a restart too); a changed version is (an update)
 *
 * tick(load) sends the due pending deliveries (nextAt ≤ now), oldest first, one at a time per target (targets side by
 * side), at most `perTick` per target per tick, reading each lead through `load` (the current lead is sent: its version
 * is what gets recorded). Success → `sent` (kept for the list, pruned after keepSentMs) and the sent marker, in one
 * synced batch. A failure counts an attempt. A retryable CrmError (429, 408, 5xx, network) → nextAt = now + the CRM's
 * wait (Retry-After, capped at 1 h) or exponential backoff with ±20 % jitter (base 2 s doubling to 10 min, by the
 * larger of the delivery's attempts and the target's failures in a row), and the whole target waits until then:
 * nothing else goes to a CRM that asked to slow down or is down (one probe per backoff, so an outage does not use up
 * every lead's attempts). Not retryable (401/403, other 4xx, the lead gone) or maxAttempts (default 12) reached →
 * `failed` (kept; retry(key) makes it pending again). The target's wait lives in memory: after a restart the
 * deliveries' own nextAt still hold.
 *
 * Exactly once, as far as it can be: a crash between the CRM's answer and the outbox's write leaves the delivery
 * pending and it is sent once more. That is why HubSpot and Pipedrive are create-or-update by domain (the second send
 * is an update of the same record) and the webhook carries `Idempotency-Key: <lead id>:<version>`.
 *
 * Memory: an index of keys with their state, target and nextAt, loaded from the store on first use; every write goes
 * through this object (one outbox per store), under one lock so enqueue() and a send's result cannot overwrite each
 * other.
 */
import { TalonError } from '../../runtime/core/errors.ts';
import type { HandContext, HandStore, HandStoreOp } from '../sdk/types.ts';
import type { CrmClient } from './crm/index.ts';
import type { Delivery, Lead } from './types.ts';

export const QUEUE_PREFIX = 'crm/q/';
export const SENT_PREFIX = 'crm/sent/';
export const deliveryKey = (target: string, leadId: string): string => `${target}/${leadId}`;
const STORE_PAGE = 1000;
/** the longest wait a CRM's Retry-After may impose */
const MAX_RETRY_AFTER_MS = 3600_000;

export interface SentMark {
  version: string;
  at: number;
  crmId?: string;
}

export interface LeadOutboxOptions {
  clients: Map<string, CrmClient>;
  now?: () => number;
  /** attempts before a delivery is `failed` (default 12) */
  maxAttempts?: number;
  /** the first retry's wait (default 2 s), doubling up to maxDelayMs (default 10 min) */
  baseDelayMs?: number;
  maxDelayMs?: number;
  log?: HandContext['log'];
  onResult?: (d: Delivery, outcome: 'sent' | 'retry' | 'failed', err?: Error) => void | Promise<void>;
  /** at most this many deliveries per target in one tick (default 20) */
  perTick?: number;
  /** sent deliveries are removed from the list after this long (default 30 days; the sent marker stays) */
  keepSentMs?: number;
  /** [0, 1): the backoff's jitter (default Math.random) */
  random?: () => number;
}

interface Ref {
  target: string;
  state: Delivery['state'];
  nextAt: number;
  sentAt?: number;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class LeadOutbox {
  #store: HandStore;
  #o: LeadOutboxOptions;
  #now: () => number;
  #random: () => number;
  #index: Map<string, Ref> | undefined;
  #loading: Promise<Map<string, Ref>> | undefined;
  /** per target: no delivery before this time (429, or down) */
  #holdUntil = new Map<string, number>();
  /** per target: retryable failures in a row (reset by a success) */
  #failures = new Map<string, number>();
  #lock: Promise<unknown> = Promise.resolve();
  #ticking: Promise<unknown> = Promise.resolve();

  constructor(store: HandStore, opts: LeadOutboxOptions) {
    this.#store = store;
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
  }

  /** runs fn alone among the outbox's writers */
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #idx(): Promise<Map<string, Ref>> {
    if (this.#index) return this.#index;
    this.#loading ??= (async () => {
      const m = new Map<string, Ref>();
      let after: string | undefined;
      for (;;) {
        const rows = await this.#store.list<Delivery>({
          prefix: QUEUE_PREFIX,
          limit: STORE_PAGE,
          ...(after !== undefined && { after }),
        });
        for (const [, d] of rows) m.set(d.key, this.#ref(d));
        if (rows.length < STORE_PAGE) break;
        after = (rows[rows.length - 1] as [string, Delivery])[0];
      }
      this.#index = m;
      return m;
    })();
    try {
      return await this.#loading;
    } finally {
      this.#loading = undefined;
    }
  }

  #ref(d: Delivery): Ref {
    return {
      target: d.target,
      state: d.state,
      nextAt: d.nextAt,
      ...(d.sentAt !== undefined && { sentAt: d.sentAt }),
    };
  }

  /**
   * One delivery per target for this lead version, all written in one synced batch; a version already sent to a
   * target, or already waiting (or failed) there, is not enqueued again. Resolves with how many were enqueued.
   */
  async enqueue(lead: Lead, targets: string[]): Promise<number> {
    if (typeof lead.version !== 'string' || lead.version === '')
      throw new Error(`lead ${lead.id}: version is missing (set it with leadVersion(lead) before enqueueing)`);
    const idx = await this.#idx();
    return this.#locked(async () => {
      const now = this.#now();
      const ops: HandStoreOp[] = [];
      const made: Delivery[] = [];
      for (const target of new Set(targets)) {
        const key = deliveryKey(target, lead.id);
        const sent = await this.#store.get<SentMark>(SENT_PREFIX + key);
        if (sent?.version === lead.version) continue;
        const old = await this.#store.get<Delivery>(QUEUE_PREFIX + key);
        if (old !== undefined && old.version === lead.version && old.state !== 'sent') continue;
        const d: Delivery =
          old !== undefined && old.state === 'pending'
            ? { ...old, version: lead.version, attempts: 0, nextAt: Math.max(now, old.nextAt) }
            : {
                key,
                target,
                leadId: lead.id,
                version: lead.version,
                state: 'pending',
                attempts: 0,
                nextAt: now,
                createdAt: now,
              };
        delete d.lastError;
        ops.push({ type: 'put', key: QUEUE_PREFIX + key, value: d });
        made.push(d);
      }
      if (ops.length === 0) return 0;
      await this.#store.batch(ops, { sync: true });
      for (const d of made) idx.set(d.key, this.#ref(d));
      return made.length;
    });
  }

  /** sends what is due; calls do not overlap (a second call waits for the first, then runs) */
  tick(load: (id: string) => Promise<Lead | undefined>): Promise<{ sent: number; retried: number; failed: number }> {
    const run = this.#ticking.then(
      () => this.#tick(load),
      () => this.#tick(load),
    );
    this.#ticking = run.catch(() => undefined);
    return run;
  }

  async #tick(
    load: (id: string) => Promise<Lead | undefined>,
  ): Promise<{ sent: number; retried: number; failed: number }> {
    const idx = await this.#idx();
    const now = this.#now();
    const result = { sent: 0, retried: 0, failed: 0 };
    await this.#prune(idx, now);
    const due = new Map<string, string[]>();
    for (const [key, r] of idx) {
      if (r.state !== 'pending' || r.nextAt > now || !this.#o.clients.has(r.target)) continue;
      if ((this.#holdUntil.get(r.target) ?? 0) > now) continue;
      let list = due.get(r.target);
      if (!list) due.set(r.target, (list = []));
      list.push(key);
    }
    const perTick = Math.max(1, this.#o.perTick ?? 20);
    const lanes = await Promise.allSettled(
      [...due].map(async ([target, keys]) => {
        keys.sort((a, b) => (idx.get(a)?.nextAt ?? 0) - (idx.get(b)?.nextAt ?? 0) || (a < b ? -1 : a > b ? 1 : 0));
        for (const key of keys.slice(0, perTick)) {
          const outcome = await this.#send(key, target, load, idx);
          if (outcome === 'sent') result.sent++;
          else if (outcome === 'failed') result.failed++;
          else if (outcome === 'retry') {
            result.retried++;
            break; // the target waits (rate limited or failing): the others keep their attempts
          }
        }
      }),
    );
    // the store failed (every target had its turn first): the tick fails, what was not written is sent again
    const broken = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (broken) throw broken.reason;
    return result;
  }

  async #send(
    key: string,
    target: string,
    load: (id: string) => Promise<Lead | undefined>,
    idx: Map<string, Ref>,
  ): Promise<'sent' | 'retry' | 'failed' | 'skip'> {
    const client = this.#o.clients.get(target);
    const d = await this.#store.get<Delivery>(QUEUE_PREFIX + key);
    if (!client || !d || d.state !== 'pending') return 'skip';
    let lead: Lead | undefined;
    try {
      lead = await load(d.leadId);
    } catch (err) {
      this.#o.log?.warn(`outbox ${key}: reading the lead failed: ${errorText(err)}`);
      return 'skip';
    }
    if (!lead) return this.#finish(key, d.version, idx, { error: new Error(`lead ${d.leadId} is gone`), final: true });
    const sent = await this.#store.get<SentMark>(SENT_PREFIX + key);
    // the current lead is what was sent already (a stale pending version): nothing to send
    if (sent?.version === lead.version) return this.#finish(key, lead.version, idx, { ok: { crmId: sent.crmId } });
    let r: { crmId: string; action: 'created' | 'updated' };
    try {
      r = await client.deliver(lead);
    } catch (err) {
      return this.#finish(key, lead.version, idx, { error: err instanceof Error ? err : new Error(String(err)) });
    }
    // a store failure here rejects the tick: the delivery stays pending and is sent once more (see the top)
    return this.#finish(key, lead.version, idx, { ok: r });
  }

  /** records a send's outcome under the lock, against the delivery as it is now (enqueue may have replaced it) */
  #finish(
    key: string,
    version: string,
    idx: Map<string, Ref>,
    how: {
      ok?: { crmId?: string | undefined; action?: 'created' | 'updated' };
      error?: Error;
      final?: boolean;
    },
  ): Promise<'sent' | 'retry' | 'failed' | 'skip'> {
    return this.#locked(async () => {
      const now = this.#now();
      const cur = await this.#store.get<Delivery>(QUEUE_PREFIX + key);
      if (!cur) return 'skip';
      if (how.ok) {
        const mark: SentMark = { version, at: now, ...(how.ok.crmId !== undefined && { crmId: how.ok.crmId }) };
        const ops: HandStoreOp[] = [{ type: 'put', key: SENT_PREFIX + key, value: mark }];
        let done: Delivery | undefined;
        // a newer version enqueued while this one was on its way stays pending (it is sent next, as an update)
        if (cur.version === version || cur.state !== 'pending') {
          done = {
            ...cur,
            version,
            state: 'sent',
            attempts: cur.attempts + 1,
            sentAt: now,
            ...(how.ok.crmId !== undefined && { crmId: how.ok.crmId }),
            ...(how.ok.action !== undefined && { action: how.ok.action }),
          };
          delete done.lastError;
          ops.push({ type: 'put', key: QUEUE_PREFIX + key, value: done });
        }
        await this.#store.batch(ops, { sync: true });
        if (done) idx.set(key, this.#ref(done));
        this.#failures.delete(cur.target);
        await this.#report(done ?? cur, 'sent');
        return 'sent';
      }
      const err = how.error ?? new Error('unknown failure');
      const e = err as { retryable?: unknown; retryAfterMs?: unknown; name?: unknown };
      const isCrm = e.name === 'CrmError';
      const retryable = !how.final && (isCrm ? e.retryable === true : true);
      const attempts = cur.attempts + 1;
      const max = this.#o.maxAttempts ?? 12;
      const failed = !retryable || attempts >= max;
      let nextAt = cur.nextAt;
      // the target's failures in a row: its backoff grows while it is down, whichever lead probes it
      const fails = (this.#failures.get(cur.target) ?? 0) + 1;
      if (retryable) this.#failures.set(cur.target, fails);
      if (!failed) {
        const wait =
          isCrm && typeof e.retryAfterMs === 'number' && Number.isFinite(e.retryAfterMs) && e.retryAfterMs >= 0
            ? Math.min(e.retryAfterMs, MAX_RETRY_AFTER_MS)
            : this.#backoff(Math.max(attempts, fails));
        nextAt = now + wait;
        this.#holdUntil.set(cur.target, Math.max(this.#holdUntil.get(cur.target) ?? 0, nextAt));
      }
      const next: Delivery = {
        ...cur,
        state: failed ? 'failed' : 'pending',
        attempts,
        nextAt,
        lastError: errorText(err).slice(0, 500),
      };
      await this.#store.put(QUEUE_PREFIX + key, next, { sync: true });
      idx.set(key, this.#ref(next));
      if (failed) this.#o.log?.warn(`CRM delivery ${key} failed for good: ${next.lastError}`, { attempts });
      await this.#report(next, failed ? 'failed' : 'retry', err);
      return failed ? 'failed' : 'retry';
    });
  }

  async #report(d: Delivery, outcome: 'sent' | 'retry' | 'failed', err?: Error): Promise<void> {
    try {
      await this.#o.onResult?.(d, outcome, err);
    } catch (e) {
      this.#o.log?.warn(`outbox onResult: ${errorText(e)}`);
    }
  }

  #backoff(attempts: number): number {
    const base = this.#o.baseDelayMs ?? 2000;
    const max = this.#o.maxDelayMs ?? 600_000;
    const raw = Math.min(max, base * 2 ** Math.min(30, attempts - 1));
    return Math.max(0, Math.round(raw * (0.8 + 0.4 * this.#random())));
  }

  async #prune(idx: Map<string, Ref>, now: number): Promise<void> {
    const keep = this.#o.keepSentMs ?? 30 * 24 * 3600_000;
    const old = [...idx].filter(([, r]) => r.state === 'sent' && r.sentAt !== undefined && now - r.sentAt > keep);
    if (old.length === 0) return;
    await this.#locked(async () => {
      for (let i = 0; i < old.length; i += STORE_PAGE) {
        const chunk = old.slice(i, i + STORE_PAGE);
        await this.#store.batch(chunk.map(([key]) => ({ type: 'del', key: QUEUE_PREFIX + key })));
        for (const [key] of chunk) idx.delete(key);
      }
    });
  }

  /** deliveries in key order (`<target>/<lead id>`), optionally of one state, starting after a key */
  async list(opts: { state?: Delivery['state']; limit?: number; after?: string } = {}): Promise<Delivery[]> {
    const limit = Math.max(1, Math.min(opts.limit ?? 100, 1000));
    const out: Delivery[] = [];
    let after = opts.after !== undefined ? QUEUE_PREFIX + opts.after : undefined;
    for (;;) {
      const rows = await this.#store.list<Delivery>({
        prefix: QUEUE_PREFIX,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const [, d] of rows) {
        if (opts.state !== undefined && d.state !== opts.state) continue;
        out.push(d);
        if (out.length >= limit) return out;
      }
      if (rows.length < STORE_PAGE) return out;
      after = (rows[rows.length - 1] as [string, Delivery])[0];
    }
  }

  /** a failed (or waiting) delivery is made pending and due now, its attempts counted from 0 again */
  async retry(key: string): Promise<Delivery> {
    const idx = await this.#idx();
    return this.#locked(async () => {
      const d = await this.#store.get<Delivery>(QUEUE_PREFIX + key);
      if (!d) throw new TalonError('NOT_FOUND', `no CRM delivery ${key} (keys are <target>/<lead id>; see the list)`);
      if (d.state === 'sent')
        throw new TalonError(
          'CONFLICT',
          `CRM delivery ${key} was sent already (a changed lead is delivered again by itself)`,
        );
      const now = this.#now();
      const next: Delivery = { ...d, state: 'pending', attempts: 0, nextAt: now };
      await this.#store.put(QUEUE_PREFIX + key, next, { sync: true });
      idx.set(key, this.#ref(next));
      this.#holdUntil.delete(d.target);
      return next;
    });
  }

  async counts(): Promise<Record<Delivery['state'], number>> {
    const c: Record<Delivery['state'], number> = { pending: 0, sent: 0, failed: 0 };
    for (const r of (await this.#idx()).values()) c[r.state]++;
    return c;
  }

  /** the same per target, from the index in memory (what /metrics asks on every scrape: no store reads) */
  async countsByTarget(): Promise<Record<string, Record<Delivery['state'], number>>> {
    const c: Record<string, Record<Delivery['state'], number>> = {};
    for (const r of (await this.#idx()).values()) (c[r.target] ??= { pending: 0, sent: 0, failed: 0 })[r.state]++;
    return c;
  }
}
