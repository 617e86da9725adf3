/**
 * The Communication Hand's outbox: every message is stored (synced) before it is sent, sent by one loop per channel,
 * and moved into the history once the platform confirmed it (or refused it for good, or it grew too old). A crash at
 * any point loses nothing: an entry caught `sending` is sent again with `retry: true` (the platform's idempotency key
 * is the outbox id where it takes one) and its history entry says `maybeDuplicate`.
 *
 * Store keys (the Hand's store):
 *   out/<id>                   an OutboxEntry (./types.ts): queued, sending or held; ids are time-ordered (key order =
 *                              age), newOutboxId() makes them
 *   hist/<doneAt 13 digits>-<id>  a HistoryEntry: sent, failed or expired
 *
 * Per channel (concurrency 1, channels independent): the due queued entries go oldest first. A ChannelError's kind says
 * what follows: `rate` holds the whole channel for retryAfterMs; `transient` (and any other error) retries the entry
 * with backoff (1 s doubling to 5 min, ±20 % jitter) and counts a failure for the circuit breaker (open after 5 in a
 * row, for 30 s doubling to 10 min; then half-open: one send decides); `auth` opens the breaker as `auth` and keeps the
 * entry (a person fixes the secret; the channel's probe, or one send, tries again every authRetryMs); `permanent` moves
 * the entry into the history as failed. Entries older than maxAgeMs are moved into the history as expired.
 *
 * Holds (digests, quiet hours, route rate limits): a held entry waits until its nextAt; releaseDue() (armed on the
 * earliest hold, or called by the Hand) releases the due ones. Entries sharing a holdKey become ONE queued digest
 * message ("Digest — N messages"); the held entries go into the history as `sent` with `digest: <the digest's id>`
 * (the digest's own history entry says whether it reached the platform). Quiet-hour holds are released one by one
 * unless at least `quietDigestMin` share a key.
 *
 * Memory: only ids and their next times are kept per channel; entries are read from the store when their turn comes.
 */
import type { HandStore, HandStoreOp } from '../sdk/types.ts';
import { type Channel, type OutMessage, PRIORITIES } from './channels/types.ts';
import type { HistoryEntry, HistoryOutcome, OutboxEntry, Priority } from './types.ts';

export const OUT_PREFIX = 'out/';
export const HIST_PREFIX = 'hist/';
export const outKey = (id: string): string => `${OUT_PREFIX}${id}`;
export const histKey = (doneAt: number, id: string): string =>
  `${HIST_PREFIX}${String(Math.max(0, Math.floor(doneAt))).padStart(13, '0')}-${id}`;

/** the kernel's store lists at most this many rows at once */
const STORE_PAGE = 1000;
/** …and writes at most this many operations in one batch */
const STORE_BATCH = 1000;
/** the longest a loop sleeps before it looks again (a wall clock may jump) */
const MAX_SLEEP_MS = 5 * 60_000;

export interface OutboxClock {
  now(): number;
}

/** ctx.timers (only `after` is used) */
export interface OutboxTimers {
  after(ms: number, fn: () => void | Promise<void>): () => void;
}

export interface OutboxLog {
  warn(msg: string, data?: Record<string, unknown>): void;
}

export interface OutboxOptions {
  store: HandStore;
  /** the channels that send; an entry for a channel not listed waits in the store */
  channels: Iterable<Channel>;
  clock: OutboxClock;
  timers: OutboxTimers;
  /** [0, 1): the backoff's jitter (default Math.random) */
  random?: () => number;
  log?: OutboxLog;
  /** the platform confirmed it (the Hand audits) */
  onSent?(h: HistoryEntry, entry: OutboxEntry): void | Promise<void>;
  /** the platform refused it for good */
  onFailed?(h: HistoryEntry, entry: OutboxEntry): void | Promise<void>;
  /** older than maxAgeMs, never sent */
  onExpired?(h: HistoryEntry, entry: OutboxEntry): void | Promise<void>;
  /** default 7 days */
  maxAgeMs?: number;
  /** how often a channel whose credentials were refused is tried again (default 5 min) */
  authRetryMs?: number;
  /** the first retry's wait (default 1 s), doubling up to backoffMaxMs (default 5 min) */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** failures in a row that open the breaker (default 5) */
  breakerThreshold?: number;
  /** how long it stays open the first time (default 30 s), doubling up to breakerMaxOpenMs (default 10 min) */
  breakerOpenMs?: number;
  breakerMaxOpenMs?: number;
  /** a digest lists at most this many messages (default 20), in at most this many characters (default 3000) */
  digestMaxItems?: number;
  digestMaxChars?: number;
  /** quiet-hour holds sharing a key are merged into a digest from this many on (default 5) */
  quietDigestMin?: number;
  /** how often the whole outbox is swept for expired entries (default 1 h) */
  sweepMs?: number;
}

export type ChannelHealthState = 'ok' | 'degraded' | 'open' | 'auth';

export interface ChannelHealth {
  state: ChannelHealthState;
  consecutiveFailures: number;
  lastError?: string;
  lastOkAt?: number;
  lastErrorAt?: number;
  /** ms epoch until which the channel sends nothing (breaker open, rate limit, credentials refused) */
  waitUntil?: number;
  /** entries queued for it (held ones not counted) */
  queued: number;
}

export interface ChannelCounters {
  sent: number;
  failed: number;
  expired: number;
  retries: number;
  queued: number;
  held: number;
}

export interface OutboxStats {
  channels: Record<string, ChannelCounters>;
  queued: number;
  held: number;
}

export interface OutboxPage<T> {
  items: T[];
  /** pass as `before` for the next (older) page; absent: no more */
  next?: string;
}

let lastIdMs = 0;
let idSeq = 0;

/**
 * A time-ordered outbox id (16 lower-case base-36 characters): the time in ms, a counter within the ms, 4 random
 * characters. Ids made later sort later, also within one millisecond and when the clock steps back.
 */
export function newOutboxId(now: number, random: () => number = Math.random): string {
  if (now > lastIdMs) {
    lastIdMs = now;
    idSeq = 0;
  } else idSeq++;
  let rnd = '';
  for (let i = 0; i < 4; i++) rnd += Math.floor(random() * 36).toString(36);
  return `${lastIdMs.toString(36).padStart(9, '0')}${(idSeq % 46656).toString(36).padStart(3, '0')}${rnd}`;
}

type BreakerState = 'closed' | 'open' | 'half' | 'auth';

interface HeldRef {
  channel: string;
  nextAt: number;
  holdKey: string | undefined;
  reason: OutboxEntry['holdReason'];
}

/** one channel's sender: its queue (ids and next times, sorted by id = age), breaker and loop */
interface Lane {
  name: string;
  channel: Channel | undefined;
  ids: string[];
  nextAt: Map<string, number>;
  breaker: BreakerState;
  failures: number;
  openMs: number;
  openUntil: number;
  authUntil: number;
  rateUntil: number;
  lastError?: string;
  lastOkAt?: number;
  lastErrorAt?: number;
  inflight: string | undefined;
  running: Promise<void> | undefined;
  wake: (() => void) | undefined;
  counters: { sent: number; failed: number; expired: number; retries: number };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** the ChannelError kind of a failure (a ChannelError from another copy of the module counts too) */
function kindOf(err: unknown): { kind: 'auth' | 'rate' | 'transient' | 'permanent'; retryAfterMs?: number } {
  const e = err as { name?: unknown; kind?: unknown; retryAfterMs?: unknown } | null;
  if (e && e.name === 'ChannelError' && typeof e.kind === 'string') {
    const kind = ['auth', 'rate', 'transient', 'permanent'].includes(e.kind) ? e.kind : 'transient';
    return {
      kind: kind as 'auth' | 'rate' | 'transient' | 'permanent',
      ...(typeof e.retryAfterMs === 'number' && Number.isFinite(e.retryAfterMs) && { retryAfterMs: e.retryAfterMs }),
    };
  }
  return { kind: 'transient' };
}

/** sorted insert / remove on a sorted id array */
function bsearch(a: string[], id: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as string) < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function firstLine(text: string, max: number): string {
  const line =
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export class Outbox {
  #store: HandStore;
  #clock: OutboxClock;
  #timers: OutboxTimers;
  #random: () => number;
  #log: OutboxLog | undefined;
  #o: OutboxOptions;
  #lanes = new Map<string, Lane>();
  #held = new Map<string, HeldRef>();
  #started = false;
  #stopped = false;
  #abort = new AbortController();
  #heldTimer: (() => void) | undefined;
  #heldTimerAt = Number.POSITIVE_INFINITY;
  #sweepTimer: (() => void) | undefined;
  #maxAgeMs: number;
  #authRetryMs: number;

  constructor(o: OutboxOptions) {
    this.#o = o;
    this.#store = o.store;
    this.#clock = o.clock;
    this.#timers = o.timers;
    this.#random = o.random ?? Math.random;
    this.#log = o.log;
    this.#maxAgeMs = o.maxAgeMs ?? 7 * 24 * 3600_000;
    this.#authRetryMs = o.authRetryMs ?? 5 * 60_000;
    for (const ch of o.channels) this.#lane(ch.name).channel = ch;
  }

  /** a new time-ordered id on this outbox's clock */
  newId(): string {
    return newOutboxId(this.#clock.now(), this.#random);
  }

  #lane(name: string): Lane {
    let l = this.#lanes.get(name);
    if (!l) {
      l = {
        name,
        channel: undefined,
        ids: [],
        nextAt: new Map(),
        breaker: 'closed',
        failures: 0,
        openMs: 0,
        openUntil: 0,
        authUntil: 0,
        rateUntil: 0,
        inflight: undefined,
        running: undefined,
        wake: undefined,
        counters: { sent: 0, failed: 0, expired: 0, retries: 0 },
      };
      this.#lanes.set(name, l);
    }
    return l;
  }

  #index(e: Pick<OutboxEntry, 'id' | 'channel' | 'state' | 'nextAt' | 'holdKey' | 'holdReason'>): void {
    if (e.state === 'held') {
      this.#unqueue(e.channel, e.id);
      this.#held.set(e.id, { channel: e.channel, nextAt: e.nextAt, holdKey: e.holdKey, reason: e.holdReason });
      return;
    }
    this.#held.delete(e.id);
    const l = this.#lane(e.channel);
    if (!l.nextAt.has(e.id)) l.ids.splice(bsearch(l.ids, e.id), 0, e.id);
    l.nextAt.set(e.id, e.nextAt);
  }

  #unqueue(channel: string, id: string): void {
    const l = this.#lanes.get(channel);
    if (!l || !l.nextAt.delete(id)) return;
    const i = bsearch(l.ids, id);
    if (l.ids[i] === id) l.ids.splice(i, 1);
  }

  /**
   * Stores the entries (state `queued` or `held`; `sending` is taken as queued) in one synced batch (chunks of 1000
   * when there are more: each chunk durable before the next is written) and resolves once they are durable; the
   * loops see them only then.
   */
  async enqueue(entries: OutboxEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i += STORE_BATCH) {
      const chunk = entries.slice(i, i + STORE_BATCH).map((e) => {
        if (typeof e.id !== 'string' || e.id === '' || e.id.includes('/'))
          throw new Error(`outbox entry id: ${JSON.stringify(e.id)} is not an id (use Outbox.newId())`);
        if (typeof e.channel !== 'string' || e.channel === '')
          throw new Error(`outbox entry ${e.id}: channel is missing (write the channel's name)`);
        return e.state === 'sending' ? { ...e, state: 'queued' as const } : e;
      });
      await this.#store.batch(
        chunk.map((e) => ({ type: 'put', key: outKey(e.id), value: e })),
        { sync: true },
      );
      for (const e of chunk) this.#index(e);
    }
    if (!this.#started || this.#stopped) return;
    for (const name of new Set(entries.map((e) => e.channel))) this.#lanes.get(name)?.wake?.();
    this.#armHeld();
  }

  /**
   * Recovers and starts: every entry found `sending` (the Hand stopped mid-send) is queued again with `maybeSent`
   * (sent with `retry: true`), the queues are rebuilt from the store, expired entries are moved out, then one loop per
   * channel runs.
   */
  async start(): Promise<{ recovered: number; queued: number; held: number }> {
    if (this.#started) throw new Error('the outbox is already started (stop() it first, then make a new one)');
    this.#started = true;
    const now = this.#clock.now();
    let recovered = 0;
    let after: string | undefined;
    for (;;) {
      const rows = await this.#store.list<OutboxEntry>({
        prefix: OUT_PREFIX,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      const fix: HandStoreOp[] = [];
      for (const [key, e] of rows) {
        if (e.state === 'sending') {
          const back: OutboxEntry = { ...e, state: 'queued', maybeSent: true, nextAt: now };
          fix.push({ type: 'put', key, value: back });
          this.#index(back);
          recovered++;
        } else this.#index(e);
      }
      if (fix.length > 0) await this.#store.batch(fix, { sync: true });
      if (rows.length < STORE_PAGE) break;
      after = (rows[rows.length - 1] as [string, OutboxEntry])[0];
    }
    if (recovered > 0) this.#log?.warn(`${recovered} message(s) were being sent when the Hand stopped: sending again`);
    await this.expire(now);
    for (const l of this.#lanes.values()) if (l.channel) l.running = this.#loop(l);
    this.#armHeld();
    this.#armSweep();
    const s = this.stats();
    return { recovered, queued: s.queued, held: s.held };
  }

  /**
   * Stops the loops and waits for the sends in flight: they end, or `signal` aborts them (their entries stay
   * `sending`, so the next start sends them again with retry).
   */
  async stop(signal?: AbortSignal): Promise<void> {
    this.#stopped = true;
    this.#heldTimer?.();
    this.#heldTimer = undefined;
    this.#sweepTimer?.();
    this.#sweepTimer = undefined;
    const abort = (): void => this.#abort.abort(new Error('the outbox is stopping'));
    if (signal?.aborted) abort();
    else signal?.addEventListener('abort', abort, { once: true });
    for (const l of this.#lanes.values()) l.wake?.();
    await Promise.all([...this.#lanes.values()].map((l) => l.running));
    signal?.removeEventListener('abort', abort);
  }

  // ---- the sender loop ----

  async #loop(l: Lane): Promise<void> {
    while (!this.#stopped) {
      let wait: number | undefined;
      try {
        wait = await this.#step(l);
      } catch (err) {
        // the store failed: look again in a while rather than spin
        this.#log?.warn(`outbox ${l.name}: ${errorText(err)}`);
        wait = 1000;
      }
      if (wait === 0 || this.#stopped) continue;
      await this.#sleep(l, wait);
    }
  }

  #sleep(l: Lane, ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      let cancel: (() => void) | undefined;
      const done = (): void => {
        if (l.wake !== done) return;
        l.wake = undefined;
        cancel?.();
        resolve();
      };
      l.wake = done;
      cancel = this.#timers.after(Math.min(Math.max(0, ms ?? MAX_SLEEP_MS), MAX_SLEEP_MS), done);
    });
  }

  /** one turn: 0 when it did something (look again now), else how long nothing is due (undefined: nothing queued) */
  async #step(l: Lane): Promise<number | undefined> {
    const now = this.#clock.now();
    if (l.rateUntil > now) return l.rateUntil - now;
    if (l.breaker === 'open') {
      if (l.openUntil > now) return l.openUntil - now;
      l.breaker = 'half';
    }
    if (l.breaker === 'auth') {
      if (l.authUntil > now) return l.authUntil - now;
      if (l.ids.length === 0) return undefined;
      const ch = l.channel as Channel;
      if (ch.probe) {
        try {
          await ch.probe(this.#abort.signal);
          l.breaker = 'half';
        } catch (err) {
          if (this.#abort.signal.aborted) return 0;
          l.authUntil = this.#clock.now() + this.#authRetryMs;
          l.lastError = errorText(err);
          l.lastErrorAt = this.#clock.now();
          return 0;
        }
      } else l.breaker = 'half';
    }
    let min = Number.POSITIVE_INFINITY;
    for (const id of l.ids) {
      const at = l.nextAt.get(id) as number;
      if (at <= now) {
        await this.#sendOne(l, id);
        return 0;
      }
      if (at < min) min = at;
    }
    return min === Number.POSITIVE_INFINITY ? undefined : min - now;
  }

  async #sendOne(l: Lane, id: string): Promise<void> {
    const entry = await this.#store.get<OutboxEntry>(outKey(id));
    if (!entry || entry.state !== 'queued' || entry.channel !== l.name) {
      this.#unqueue(l.name, id);
      if (entry) this.#index(entry);
      return;
    }
    const now = this.#clock.now();
    if (now - entry.createdAt > this.#maxAgeMs) {
      await this.#finish(l, entry, 'expired', { error: `not sent within ${Math.round(this.#maxAgeMs / 60_000)} min` });
      return;
    }
    const ch = l.channel as Channel;
    const sending: OutboxEntry = { ...entry, state: 'sending' };
    await this.#store.put(outKey(id), sending, { sync: true });
    const msg: OutMessage = {
      id,
      text: entry.text,
      priority: entry.priority,
      tags: entry.tags,
      retry: entry.attempts > 0 || entry.maybeSent === true,
      ...(entry.title !== undefined && { title: entry.title }),
      ...(entry.to !== undefined && { to: entry.to }),
    };
    l.inflight = id;
    let platformIds: string[];
    try {
      platformIds = (await ch.send(msg, this.#abort.signal)).platformIds;
    } catch (err) {
      l.inflight = undefined;
      // stopping: the entry stays `sending`, the next start sends it again as a retry
      if (this.#abort.signal.aborted) return;
      await this.#failed(l, sending, err);
      return;
    }
    l.inflight = undefined;
    l.breaker = 'closed';
    l.failures = 0;
    l.openMs = 0;
    l.lastOkAt = this.#clock.now();
    await this.#finish(l, sending, 'sent', { platformIds: Array.isArray(platformIds) ? platformIds : [] });
  }

  #backoff(attempts: number): number {
    const base = this.#o.backoffBaseMs ?? 1000;
    const max = this.#o.backoffMaxMs ?? 5 * 60_000;
    const raw = Math.min(max, base * 2 ** Math.min(30, Math.max(0, attempts - 1)));
    return Math.max(0, Math.round(raw * (1 + (this.#random() * 2 - 1) * 0.2)));
  }

  async #failed(l: Lane, entry: OutboxEntry, err: unknown): Promise<void> {
    const now = this.#clock.now();
    const { kind, retryAfterMs } = kindOf(err);
    const error = errorText(err);
    l.lastError = error;
    l.lastErrorAt = now;
    if (kind === 'permanent') {
      // the platform answered: the channel works, this message does not
      if (l.breaker === 'half') l.breaker = 'closed';
      l.failures = 0;
      await this.#finish(l, entry, 'failed', { error });
      return;
    }
    const attempts = entry.attempts + 1;
    let nextAt = now;
    if (kind === 'rate') {
      l.rateUntil = now + Math.max(0, retryAfterMs ?? 1000);
      if (l.breaker === 'half') l.breaker = 'closed';
    } else if (kind === 'auth') {
      l.breaker = 'auth';
      l.authUntil = now + this.#authRetryMs;
    } else {
      nextAt = now + Math.max(this.#backoff(attempts), retryAfterMs ?? 0);
      l.failures++;
      const threshold = this.#o.breakerThreshold ?? 5;
      const firstOpen = this.#o.breakerOpenMs ?? 30_000;
      const maxOpen = this.#o.breakerMaxOpenMs ?? 10 * 60_000;
      if (l.breaker === 'half' || (l.breaker === 'closed' && l.failures >= threshold)) {
        l.openMs = l.breaker === 'half' ? Math.min(maxOpen, Math.max(firstOpen, l.openMs * 2)) : firstOpen;
        l.breaker = 'open';
        l.openUntil = now + l.openMs;
        this.#log?.warn(`channel ${l.name}: ${l.failures} failures in a row; pausing it for ${l.openMs / 1000} s`);
      }
    }
    const back: OutboxEntry = { ...entry, state: 'queued', attempts, nextAt, lastError: error };
    await this.#store.put(outKey(entry.id), back, { sync: true });
    l.counters.retries++;
    if (l.nextAt.has(entry.id)) l.nextAt.set(entry.id, nextAt);
  }

  async #finish(
    l: Lane,
    entry: OutboxEntry,
    outcome: HistoryOutcome,
    extra: { platformIds?: string[]; error?: string },
  ): Promise<void> {
    const now = this.#clock.now();
    const h = this.#history(entry, outcome, now, extra);
    // a send's completion is not synced by itself: the next synced write (the next `sending` mark, any enqueue)
    // carries it to disk, LevelDB's log being written in order; a power cut before that leaves the entry `sending`,
    // so it goes again flagged maybeDuplicate (as for a cut mid-send). One fsync per message instead of two.
    await this.#store.batch(
      [
        { type: 'del', key: outKey(entry.id) },
        { type: 'put', key: histKey(now, entry.id), value: h },
      ],
      { sync: outcome !== 'sent' },
    );
    this.#unqueue(l.name, entry.id);
    this.#held.delete(entry.id);
    l.counters[outcome === 'sent' ? 'sent' : outcome]++;
    const cb = outcome === 'sent' ? this.#o.onSent : outcome === 'failed' ? this.#o.onFailed : this.#o.onExpired;
    await this.#callback(cb, h, entry);
  }

  #history(
    entry: OutboxEntry,
    outcome: HistoryOutcome,
    now: number,
    extra: { platformIds?: string[]; error?: string; digest?: string },
  ): HistoryEntry {
    return {
      id: entry.id,
      notification: entry.notification,
      channel: entry.channel,
      ...(entry.to !== undefined && { to: entry.to }),
      rule: entry.rule,
      route: entry.route,
      ...(entry.title !== undefined && { title: entry.title }),
      text: entry.text,
      priority: entry.priority,
      outcome,
      attempts: entry.attempts + (entry.state === 'sending' ? 1 : 0),
      createdAt: entry.createdAt,
      doneAt: now,
      ...(extra.platformIds && { platformIds: extra.platformIds }),
      ...(extra.error !== undefined && { error: extra.error }),
      ...(outcome === 'sent' && entry.maybeSent === true && !extra.digest && { maybeDuplicate: true }),
      ...(extra.digest !== undefined && { digest: extra.digest }),
    };
  }

  async #callback(
    cb: ((h: HistoryEntry, e: OutboxEntry) => void | Promise<void>) | undefined,
    h: HistoryEntry,
    e: OutboxEntry,
  ): Promise<void> {
    if (!cb) return;
    try {
      await cb(h, e);
    } catch (err) {
      this.#log?.warn(`outbox callback for ${e.id} failed: ${errorText(err)}`);
    }
  }

  // ---- expiry ----

  /** moves every entry older than maxAgeMs (not being sent right now) into the history as expired */
  async expire(now = this.#clock.now()): Promise<number> {
    let n = 0;
    let after: string | undefined;
    for (;;) {
      const rows = await this.#store.list<OutboxEntry>({
        prefix: OUT_PREFIX,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const [, e] of rows) {
        if (now - e.createdAt <= this.#maxAgeMs) continue;
        const l = this.#lane(e.channel);
        if (l.inflight === e.id) continue;
        await this.#finish(l, e, 'expired', { error: `not sent within ${Math.round(this.#maxAgeMs / 60_000)} min` });
        n++;
      }
      if (rows.length < STORE_PAGE) break;
      after = (rows[rows.length - 1] as [string, OutboxEntry])[0];
    }
    return n;
  }

  #armSweep(): void {
    if (this.#stopped) return;
    this.#sweepTimer = this.#timers.after(this.#o.sweepMs ?? 3600_000, async () => {
      try {
        await this.expire();
      } catch (err) {
        this.#log?.warn(`outbox expiry sweep: ${errorText(err)}`);
      }
      this.#armSweep();
    });
  }

  // ---- holds and digests ----

  #armHeld(): void {
    if (this.#stopped || !this.#started) return;
    let min = Number.POSITIVE_INFINITY;
    for (const h of this.#held.values()) if (h.nextAt < min) min = h.nextAt;
    if (min === Number.POSITIVE_INFINITY || min >= this.#heldTimerAt) return;
    this.#heldTimer?.();
    this.#heldTimerAt = min;
    const wait = Math.min(MAX_SLEEP_MS, Math.max(0, min - this.#clock.now()));
    this.#heldTimer = this.#timers.after(wait, async () => {
      this.#heldTimer = undefined;
      this.#heldTimerAt = Number.POSITIVE_INFINITY;
      try {
        await this.releaseDue();
      } catch (err) {
        this.#log?.warn(`outbox hold release: ${errorText(err)}`);
      }
      this.#armHeld();
    });
  }

  /**
   * Releases the held entries due at `now`: those sharing a holdKey (digest and rate holds; quiet holds from
   * quietDigestMin on) become one queued digest message, the others are queued as they are.
   */
  async releaseDue(now = this.#clock.now()): Promise<{ released: number; digests: number }> {
    const groups = new Map<string, string[]>();
    for (const [id, h] of this.#held) {
      if (h.nextAt > now) continue;
      const key = h.holdKey !== undefined ? `${h.channel}\u0000${h.holdKey}` : `\u0001${id}`;
      const g = groups.get(key);
      if (g) g.push(id);
      else groups.set(key, [id]);
    }
    let released = 0;
    let digests = 0;
    // due as of `now`; queued (and recorded) as of the clock's time, so they go at once
    const at = this.#clock.now();
    const single: OutboxEntry[] = [];
    for (const ids of groups.values()) {
      const entries: OutboxEntry[] = [];
      for (const id of ids) {
        const e = await this.#store.get<OutboxEntry>(outKey(id));
        if (e && e.state === 'held') entries.push(e);
        else {
          this.#held.delete(id);
          if (e) this.#index(e);
        }
      }
      if (entries.length === 0) continue;
      const quiet = entries.every((e) => e.holdReason === 'quiet');
      if (entries.length === 1 || (quiet && entries.length < (this.#o.quietDigestMin ?? 5))) {
        single.push(...entries);
        continue;
      }
      entries.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      // one digest and its parts must fit one batch: digest put + (del + hist put) per part
      const per = Math.floor((STORE_BATCH - 1) / 2);
      for (let i = 0; i < entries.length; i += per) {
        await this.#digest(entries.slice(i, i + per), at);
        released += Math.min(per, entries.length - i);
        digests++;
      }
    }
    for (let i = 0; i < single.length; i += STORE_BATCH) {
      const chunk = single.slice(i, i + STORE_BATCH).map((e) => ({ ...e, state: 'queued' as const, nextAt: at }));
      await this.#store.batch(
        chunk.map((e) => ({ type: 'put', key: outKey(e.id), value: e })),
        { sync: true },
      );
      for (const e of chunk) this.#index(e);
      released += chunk.length;
    }
    if (released > 0 && this.#started && !this.#stopped) for (const l of this.#lanes.values()) l.wake?.();
    return { released, digests };
  }

  async #digest(parts: OutboxEntry[], now: number): Promise<void> {
    const newest = parts[parts.length - 1] as OutboxEntry;
    const maxItems = this.#o.digestMaxItems ?? 20;
    const maxChars = this.#o.digestMaxChars ?? 3000;
    const lines: string[] = [];
    let chars = 0;
    for (const p of parts) {
      const first = firstLine(p.text, 200);
      const ack = p.ackId ? ` (ack ${p.ackId})` : '';
      const line = p.title ? `- **${p.title}** — ${first}${ack}` : `- ${first}${ack}`;
      if (lines.length >= maxItems || chars + line.length + 1 > maxChars) break;
      lines.push(line);
      chars += line.length + 1;
    }
    if (lines.length < parts.length) lines.push(`- … and ${parts.length - lines.length} more`);
    const rank = (p: Priority): number => PRIORITIES.indexOf(p);
    const priority = parts.reduce<Priority>((m, p) => (rank(p.priority) > rank(m) ? p.priority : m), 'low');
    const digest: OutboxEntry = {
      id: this.newId(),
      notification: newest.notification,
      channel: newest.channel,
      ...(newest.to !== undefined && { to: newest.to }),
      rule: newest.rule,
      route: newest.route,
      title: `Digest — ${parts.length} messages`,
      text: lines.join('\n'),
      priority,
      tags: [...new Set(parts.flatMap((p) => p.tags))],
      state: 'queued',
      attempts: 0,
      nextAt: now,
      createdAt: now,
      ...(newest.holdKey !== undefined && { holdKey: newest.holdKey }),
    };
    const ops: HandStoreOp[] = [{ type: 'put', key: outKey(digest.id), value: digest }];
    for (const p of parts) {
      ops.push({ type: 'del', key: outKey(p.id) });
      ops.push({ type: 'put', key: histKey(now, p.id), value: this.#history(p, 'sent', now, { digest: digest.id }) });
    }
    await this.#store.batch(ops, { sync: true });
    for (const p of parts) this.#held.delete(p.id);
    this.#index(digest);
  }

  // ---- views ----

  /** the channel's sender as /health and the status command show it */
  health(channel: string): ChannelHealth {
    const l = this.#lanes.get(channel);
    if (!l) return { state: 'ok', consecutiveFailures: 0, queued: 0 };
    const now = this.#clock.now();
    const open = l.breaker === 'open' && l.openUntil > now;
    const state: ChannelHealthState =
      l.breaker === 'auth'
        ? 'auth'
        : open
          ? 'open'
          : l.failures > 0 || l.breaker !== 'closed' || l.rateUntil > now
            ? 'degraded'
            : 'ok';
    const waits = [l.rateUntil, open ? l.openUntil : 0, l.breaker === 'auth' ? l.authUntil : 0].filter((t) => t > now);
    return {
      state,
      consecutiveFailures: l.failures,
      ...(l.lastError !== undefined && { lastError: l.lastError }),
      ...(l.lastOkAt !== undefined && { lastOkAt: l.lastOkAt }),
      ...(l.lastErrorAt !== undefined && { lastErrorAt: l.lastErrorAt }),
      ...(waits.length > 0 && { waitUntil: Math.max(...waits) }),
      queued: l.ids.length,
    };
  }

  /** counters for /metrics (since this outbox started) and the queue sizes */
  stats(): OutboxStats {
    const channels: Record<string, ChannelCounters> = {};
    const held = new Map<string, number>();
    for (const h of this.#held.values()) held.set(h.channel, (held.get(h.channel) ?? 0) + 1);
    let queued = 0;
    for (const l of this.#lanes.values()) {
      channels[l.name] = { ...l.counters, queued: l.ids.length, held: held.get(l.name) ?? 0 };
      queued += l.ids.length;
    }
    for (const [name, n] of held) channels[name] ??= { sent: 0, failed: 0, expired: 0, retries: 0, queued: 0, held: n };
    return { channels, queued, held: this.#held.size };
  }

  /**
   * The outbox (entries waiting, by id) or the history (by the time they left), newest first; `before` is the
   * `next` of the page before.
   */
  list(o: { box: 'history'; limit?: number; before?: string }): Promise<OutboxPage<HistoryEntry>>;
  list(o?: { box?: 'outbox'; limit?: number; before?: string }): Promise<OutboxPage<OutboxEntry>>;
  list(o?: {
    box?: 'outbox' | 'history';
    limit?: number;
    before?: string;
  }): Promise<OutboxPage<OutboxEntry | HistoryEntry>>;
  async list(
    o: { box?: 'outbox' | 'history'; limit?: number; before?: string } = {},
  ): Promise<OutboxPage<OutboxEntry | HistoryEntry>> {
    const prefix = o.box === 'history' ? HIST_PREFIX : OUT_PREFIX;
    const limit = Math.min(Math.max(1, Math.floor(o.limit ?? 50)), STORE_PAGE);
    const rows = await this.#store.list<OutboxEntry & HistoryEntry>({
      prefix,
      limit,
      reverse: true,
      ...(o.before !== undefined && { after: `${prefix}${o.before}` }),
    });
    const last = rows[rows.length - 1];
    return {
      items: rows.map(([, v]) => v),
      ...(rows.length === limit && last && { next: last[0].slice(prefix.length) }),
    };
  }
}
