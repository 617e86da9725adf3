/**
 * The signed, hash-chained audit log (format: ./FORMAT.md).
 *
 * Storage: sublevel `auditlog` holds entries under their seq as 12 hex digits; sublevel
 * `auditcp` holds checkpoints under the seq they sign (same key form), plus two records
 * under non-hex keys: `prune` (the newest prune checkpoint, the floor of the log) and
 * `verified` (the checkpoint through which a verification last passed, to resume from).
 *
 * Appends are group-committed: `record` chains the entry at once (seq, prev, hash) and
 * queues it; one sync batch per flush turn writes everything queued plus any checkpoint
 * due (every `checkpointEvery` entries, and when `checkpointMs` has passed), and the
 * callers' promises resolve after that batch.
 *
 * Writes fail closed: a batch that fails (a full disk) rejects its callers and everything
 * queued behind it with AUDIT_UNAVAILABLE, and from then on every `record` is refused at
 * once, without touching the store, until the chain recovers: with enough free space it
 * re-syncs the store (Store.resync: LevelDB's log may hold a torn record after the failure)
 * and appends an `audit.gap` entry saying from when to when, and how many entries (by
 * action) were refused. It tries on the next `record` and every `recoverEveryMs`. `health()`
 * says whether it can be written; callers that act only once their entry is durable
 * (./privileged.ts) are refused meanwhile.
 *
 * A broken chain is never rewritten and never stops appends: start() checks the tail, then
 * verifies from the last verified checkpoint in the background; what it finds is recorded
 * as an `audit.broken` entry (signed like any other), handed to `onBroken`, and kept in
 * `problem()`. An unsigned tail at start (power cut, or a truncation) is recorded as
 * `audit.recover` and sealed with a checkpoint.
 */
import { once } from 'node:events';
import type { Audit, AuditDecision, AuditEvent } from './types.ts';
import type { Store, Sublevel } from '../store/store.ts';
import { SYNC } from '../store/store.ts';
import type { DeviceKey } from '../secrets/device-key.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';
import {
  DECISIONS,
  GENESIS_PREV,
  MAX_CHECKPOINT_GAP,
  checkpointMessage,
  checkpointProblem,
  entryHash,
  entryProblem,
  pruneMessage,
  signedMessage,
  type AnyCheckpoint,
  type AuditEntry,
  type Checkpoint,
  type PruneCheckpoint,
} from './format.ts';
import { ChainVerifier, type VerifyReport } from './verifier.ts';
import { ed25519Verifier, sha256Hex } from './crypto.ts';

export type { VerifyReport } from './verifier.ts';

export const seqKey = (seq: number): string => seq.toString(16).padStart(12, '0');
const keySeq = (key: string): number => parseInt(key, 16);
/** checkpoint keys are hex; `prune` and `verified` sort after them */
const CP_RANGE_END = 'g';
/** records read per step while verifying or exporting */
const CHUNK = 1000;
/** classic-level iterator option; abstract-level's types do not list it */
const READ_AHEAD = { highWaterMarkBytes: 1 << 20 } as unknown as Record<string, never>;
const PRUNE_KEY = 'prune';
const VERIFIED_KEY = 'verified';

export interface AuditChainOptions {
  clock?: Clock;
  /** a checkpoint at least every this many entries (at most MAX_CHECKPOINT_GAP = 256) */
  checkpointEvery?: number;
  /** and at most this long after an entry arrives (default 5000) */
  checkpointMs?: number;
  /** prune old entries behind a signed prune checkpoint; applied at start and every `pruneEveryMs` */
  retention?: { maxEntries?: number; maxAgeMs?: number };
  /** default 5 minutes */
  pruneEveryMs?: number;
  /** the newest checkpoint of each written batch, once durable (for publishing the head) */
  onCheckpoint?: (cp: Checkpoint) => void;
  /** a problem found by start() or by a verification */
  onBroken?: (report: VerifyReport) => void;
  /** verify from the last verified checkpoint in the background after start (default true) */
  verifyAtStart?: boolean;
  /** after a failed write, writing resumes only with this much free space in the data folder (default 8 MiB: LevelDB's memtable goes to a table file first) */
  recoverMinFreeBytes?: number;
  /** after a failed write, try to recover at most this often (default 2000 ms); also on the next record after that */
  recoverEveryMs?: number;
  /** the free bytes of the data folder (default: the store's file system) */
  freeBytes?: () => number | null;
  /** the chain became unwritable, or writable again */
  onHealth?: (health: AuditHealth) => void;
}

/** Whether the chain can be written. */
export interface AuditHealth {
  ok: boolean;
  /** why not, for a person */
  reason?: string;
  /** the write failure the chain has not recovered from */
  failing?: { since: number; error: string; refused: number };
}

/** What the chain keeps while it cannot write: the gap entry reports it. */
interface Failure {
  since: number;
  error: string;
  refused: number;
  byAction: Map<string, number>;
  /** the last time recovery re-synced the store (0: never) */
  triedAt: number;
  /** what stands in the way now (free space), when known */
  waiting?: string;
}

export const DEFAULT_RECOVER_MIN_FREE = 8 * 1024 * 1024;
/** distinct actions the gap entry counts one by one; the rest go under `other` */
const GAP_ACTIONS = 50;

export interface AuditQuery {
  actor?: string;
  /** exact, or a prefix ending in `.*` (`hand.*`) */
  action?: string;
  decision?: AuditDecision | AuditDecision[];
  /** ts range, milliseconds, inclusive */
  from?: number;
  to?: number;
  /** from a previous page's nextCursor */
  cursor?: string;
  /** items per page, default 50, at most 1000 */
  limit?: number;
  /** newest first (default) or oldest first */
  order?: 'desc' | 'asc';
  /** entries examined per call at most (default 10,000): a page may come back short with a cursor */
  maxScan?: number;
}

export interface AuditPage {
  items: AuditEntry[];
  /** null when the scan reached the end of the log */
  nextCursor: string | null;
}

export interface VerifyOptions {
  /** 'start': from seq 1 (or the prune checkpoint); 'checkpoint': from the last verified checkpoint (default) */
  from?: 'start' | 'checkpoint';
  /** a head seen elsewhere (the retained MQTT head) that this log must still contain */
  against?: Checkpoint;
}

interface Pending {
  entry: AuditEntry;
  resolve: () => void;
  reject: (err: unknown) => void;
}

type Rec = { kind: 'entry' | 'cp'; key: number; raw: string };

export class AuditChain implements Audit {
  #store: Store;
  #key: DeviceKey;
  #clock: Clock;
  #every: number;
  #cpMs: number;
  #opts: AuditChainOptions;
  #log: Sublevel;
  #cps: Sublevel;
  #verifySig;

  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  /** last chained (maybe not yet durable) */
  #seq = 0;
  #hash = GENESIS_PREV;
  /** last durable */
  #durable = { seq: 0, hash: GENESIS_PREV };
  #pending: Pending[] = [];
  #flushing: Promise<void> | null = null;
  #sealWanted = false;
  #cp: { seq: number; at: number } = { seq: 0, at: 0 };
  #latest: Checkpoint | null = null;
  #floor: PruneCheckpoint | null = null;
  #cpTimer: unknown = null;
  #pruneTimer: unknown = null;
  #exclusive: Promise<unknown> = Promise.resolve();
  #abort = false;
  #problem: VerifyReport | null = null;
  #startup: Promise<VerifyReport> | null = null;
  #failure: Failure | null = null;
  /** the failure whose gap entry is being written: still unhealthy until it is durable */
  #closing: Failure | null = null;
  #recovering: Promise<boolean> | null = null;
  #recoverTimer: unknown = null;

  constructor(store: Store, key: DeviceKey, opts: AuditChainOptions = {}) {
    this.#store = store;
    this.#key = key;
    this.#clock = opts.clock ?? systemClock;
    this.#every = opts.checkpointEvery ?? MAX_CHECKPOINT_GAP;
    if (!Number.isInteger(this.#every) || this.#every < 1 || this.#every > MAX_CHECKPOINT_GAP) {
      throw new TalonError('USAGE', `checkpointEvery must be 1..${MAX_CHECKPOINT_GAP}`);
    }
    this.#cpMs = opts.checkpointMs ?? 5000;
    this.#opts = opts;
    this.#log = store.sublevel('auditlog');
    this.#cps = store.sublevel('auditcp');
    this.#verifySig = ed25519Verifier(key.publicKey);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * Finds the head and the newest checkpoint, checks the stretch between them, seals an
   * unsigned tail (recorded as `audit.recover`), finishes an interrupted prune, then
   * verifies from the last verified checkpoint in the background (`startupReport`).
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new TalonError('INTERNAL', 'the audit chain was already started');
    this.#floor = await this.#readPrune();
    let headKey: number | null = null;
    let headRaw = '';
    for await (const [k, v] of this.#log.iterator({ reverse: true, limit: 1, valueEncoding: 'utf8' })) {
      headKey = keySeq(k as string);
      headRaw = v as string;
    }
    let latestRaw: string | null = null;
    for await (const [, v] of this.#cps.iterator({ lt: CP_RANGE_END, reverse: true, limit: 1, valueEncoding: 'utf8' }))
      latestRaw = v as string;
    const latest = latestRaw === null ? null : parseCheckpoint(latestRaw);

    const notes: Array<Omit<AuditEvent, 'actor'>> = [];
    const floorSeq = this.#floor?.seq ?? 0;
    if (headKey === null || headKey <= floorSeq) {
      // empty, or everything pruned: continue from the prune checkpoint
      this.#setHead(this.#floor ? { seq: floorSeq, hash: this.#floor.hash } : { seq: 0, hash: GENESIS_PREV });
    } else {
      this.#setHead({ seq: headKey, hash: rawEntryHash(headRaw) });
    }
    if (latest && latest.seq > this.#seq && this.#verifySig(checkpointMessage(latest.seq, latest.hash), latest.sig)) {
      // entries a signed checkpoint vouches for are gone: continue after that checkpoint, never over it
      notes.push({
        action: 'audit.broken',
        subject: 'audit',
        decision: 'error',
        detail: {
          firstBrokenSeq: this.#seq + 1,
          kind: 'missing',
          reason: `the log ends at seq ${this.#seq} but a checkpoint signs seq ${latest.seq}: entries ${this.#seq + 1}..${latest.seq} were removed`,
        },
      });
      this.#setHead({ seq: latest.seq, hash: latest.hash });
    }
    this.#latest = latest && latest.seq <= this.#seq ? latest : null;
    this.#cp = { seq: Math.max(latest?.seq ?? 0, floorSeq), at: this.#clock.now() };

    // the stretch after the newest checkpoint: bounded (a checkpoint every ≤ 256 entries)
    let tailBroken: number | undefined;
    if (notes.length === 0) {
      const { report: tail } = await this.#verifyRange('checkpoint-tail', false);
      if (!tail.ok) {
        tailBroken = tail.firstBrokenSeq;
        this.#report(tail);
        notes.push({ action: 'audit.broken', subject: 'audit', decision: 'error', detail: brokenDetail(tail) });
      }
    }
    if (this.#seq > this.#cp.seq) {
      notes.push({
        action: 'audit.recover',
        subject: 'audit',
        decision: 'info',
        detail: {
          head: this.#seq,
          lastCheckpoint: this.#cp.seq,
          unsigned: this.#seq - this.#cp.seq,
          reason: 'no checkpoint at the head: the device lost power, or the tail was truncated',
        },
      });
    }
    this.#state = 'running';
    if (notes.length > 0) {
      for (const n of notes) void this.record({ actor: 'kernel', ...n }).catch(() => {});
      this.#sealWanted = true;
      await this.flush();
    }
    // an interrupted prune leaves entries under the floor: finish it
    if (this.#floor) await this.#sweep(this.#floor.seq);
    if (this.#opts.verifyAtStart ?? true) {
      this.#startup = this.verify({ from: 'checkpoint' }).then(async (r) => {
        if (!r.ok && r.firstBrokenSeq !== tailBroken && this.#state === 'running') {
          await this.record({
            actor: 'kernel',
            action: 'audit.broken',
            subject: 'audit',
            decision: 'error',
            detail: brokenDetail(r),
          }).catch(() => {});
        }
        if (this.#retentionOn()) await this.prune().catch(() => {});
        return r;
      });
      this.#startup.catch(() => {});
    } else if (this.#retentionOn()) {
      await this.prune();
    }
    if (this.#retentionOn()) {
      this.#pruneTimer = this.#clock.setInterval(
        () => void this.prune().catch(() => {}),
        this.#opts.pruneEveryMs ?? 300_000,
      );
      unref(this.#pruneTimer);
    }
  }

  /** The background verification start() began (null when disabled). */
  get startupReport(): Promise<VerifyReport> | null {
    return this.#startup;
  }

  /** Writes everything queued and the shutdown checkpoint. Records after this are refused. */
  async stop(): Promise<void> {
    if (this.#state !== 'running') return;
    this.#state = 'stopping';
    this.#abort = true;
    if (this.#pruneTimer) this.#clock.clearInterval(this.#pruneTimer);
    this.#stopRecoverTimer();
    await this.#recovering?.catch(() => {});
    await this.#exclusive.catch(() => {});
    this.#sealWanted = true;
    await this.flush();
    if (this.#cpTimer) this.#clock.clearTimeout(this.#cpTimer);
    this.#cpTimer = null;
    this.#state = 'stopped';
    this.#abort = false;
  }

  // ---- appending ----------------------------------------------------------------------------

  record(event: AuditEvent): Promise<void> {
    if (this.#state !== 'running') {
      return Promise.reject(
        new TalonError(
          'NOT_RUNNING',
          `the audit log is ${this.#state === 'new' ? 'not started' : 'stopped'}; entry ${event.action} refused`,
        ),
      );
    }
    // unwritable: refused unless recovery succeeds now (in call order: the callbacks run in turn)
    if (this.#failure)
      return this.#recover().then((ok) => (ok ? this.#append(event) : Promise.reject(this.#refuse(event))));
    return this.#append(event);
  }

  #append(event: AuditEvent): Promise<void> {
    if (this.#state !== 'running')
      return Promise.reject(new TalonError('NOT_RUNNING', `the audit log is stopped; entry ${event.action} refused`));
    if (this.#failure) return Promise.reject(this.#refuse(event));
    let entry: AuditEntry;
    try {
      entry = this.#chain(event);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, resolve, reject });
      this.#kick();
    });
  }

  /** Resolves when everything recorded so far is durable. */
  async flush(): Promise<void> {
    if (this.#sealWanted || this.#pending.length > 0) this.#kick();
    while (this.#flushing) await this.#flushing;
  }

  /** The newest durable entry: seq 0 when the log is empty. */
  head(): { seq: number; hash: string } {
    return { ...this.#durable };
  }

  /** The newest durable checkpoint (what is published as the head). */
  latestCheckpoint(): Checkpoint | null {
    return this.#latest;
  }

  /** The newest prune checkpoint: entries up to its seq are gone. */
  pruneCheckpoint(): PruneCheckpoint | null {
    return this.#floor;
  }

  /** The first problem found since start (start's check, a verification), or null. */
  problem(): VerifyReport | null {
    return this.#problem;
  }

  /** started and not stopping: records are taken (though refused while unwritable) */
  isRunning(): boolean {
    return this.#state === 'running';
  }

  /** Whether entries can be written now; while not, every record is refused (AUDIT_UNAVAILABLE). */
  health(): AuditHealth {
    if (this.#state !== 'running')
      return { ok: false, reason: `the audit log is ${this.#state === 'new' ? 'not started' : this.#state}` };
    const f = this.#failure ?? this.#closing;
    if (!f) return { ok: true };
    return {
      ok: false,
      reason: `the audit log cannot be written since ${new Date(f.since).toISOString()} (${f.error})${f.waiting ? `; ${f.waiting}` : ''}; ${f.refused} entr${f.refused === 1 ? 'y' : 'ies'} refused so far`,
      failing: { since: f.since, error: f.error, refused: f.refused },
    };
  }

  #chain(event: AuditEvent): AuditEntry {
    if (!DECISIONS.includes(event.decision)) {
      throw new TalonError(
        'AUDIT_FORMAT',
        `audit decision ${JSON.stringify(event.decision)} is not one of ${DECISIONS.join(', ')}`,
      );
    }
    const entry: AuditEntry = {
      v: 1,
      seq: this.#seq + 1,
      ts: this.#clock.now(),
      actor: String(event.actor),
      action: String(event.action),
      subject: String(event.subject),
      decision: event.decision,
      detail: jsonDetail(event.detail),
      prev: this.#hash,
    };
    try {
      entry.hash = entryHash(entry, sha256Hex);
    } catch {
      // a lone surrogate somewhere: JCS refuses it, so record it replaced rather than lose the event
      const clean = JSON.parse(JSON.stringify(entry).replace(LONE_SURROGATE_ESCAPE, '\\ufffd')) as AuditEntry;
      Object.assign(entry, clean);
      entry.hash = entryHash(entry, sha256Hex);
    }
    this.#seq = entry.seq;
    this.#hash = entry.hash;
    return entry;
  }

  /** one flush loop at a time; it may finish without awaiting, so the handle is set around it */
  #kick(): void {
    if (this.#flushing) return;
    this.#flushing = this.#flushLoop().then(() => {
      this.#flushing = null;
      if (!this.#failure && (this.#pending.length > 0 || this.#sealWanted)) this.#kick();
    });
  }

  async #flushLoop(): Promise<void> {
    // while unwritable nothing is written (a checkpoint wish waits for the recovery)
    while (!this.#failure && (this.#pending.length > 0 || this.#sealWanted)) {
      const batch = this.#pending.splice(0);
      const seal = this.#sealWanted;
      this.#sealWanted = false;
      const cpBefore = { ...this.#cp };
      const ops: Array<{ type: 'put'; sublevel: Sublevel; key: string; value: unknown }> = [];
      const made: Checkpoint[] = [];
      for (const { entry } of batch) {
        ops.push({ type: 'put', sublevel: this.#log, key: seqKey(entry.seq), value: entry });
        if (entry.seq - this.#cp.seq >= this.#every) made.push(this.#checkpoint(entry.seq, entry.hash!));
      }
      const last = batch.length > 0 ? batch[batch.length - 1]!.entry : null;
      const head = last ? { seq: last.seq, hash: last.hash! } : this.#durable;
      if (head.seq > this.#cp.seq && (seal || this.#clock.now() - this.#cp.at >= this.#cpMs)) {
        made.push(this.#checkpoint(head.seq, head.hash));
      }
      for (const cp of made) ops.push({ type: 'put', sublevel: this.#cps, key: seqKey(cp.seq), value: cp });
      if (ops.length === 0) continue;
      try {
        await this.#store.db.batch(ops as never, SYNC);
      } catch (err) {
        // fail closed: this batch and everything queued behind it are refused, and nothing
        // more is written until recovery re-syncs the store (a write after a failed one
        // may be acknowledged by LevelDB and still lost at the next open)
        this.#cp = cpBefore;
        if (seal) this.#sealWanted = true;
        const rest = this.#pending.splice(0);
        this.#rechain();
        const e = this.#fail(
          err,
          [...batch, ...rest].map((p) => p.entry.action),
        );
        for (const p of batch) p.reject(e);
        for (const p of rest) p.reject(e);
        break;
      }
      this.#durable = head;
      const newest = made[made.length - 1];
      if (newest) this.#latest = newest;
      for (const p of batch) p.resolve();
      if (newest) this.#opts.onCheckpoint?.(newest);
      this.#armCheckpointTimer();
    }
  }

  #checkpoint(seq: number, hash: string): Checkpoint {
    const ts = this.#clock.now();
    this.#cp = { seq, at: ts };
    return {
      v: 1,
      type: 'checkpoint',
      seq,
      hash,
      ts,
      sig: this.#key.sign(checkpointMessage(seq, hash)).toString('base64'),
    };
  }

  // ---- failing closed, and recovering -------------------------------------------------------

  /** a write failed: the chain is unwritable from now until #recover; returns the callers' error */
  #fail(err: unknown, actions: string[]): TalonError {
    const error = String((err as Error)?.message ?? err).slice(0, 300);
    const first = !this.#failure;
    const f = (this.#failure ??= { since: this.#clock.now(), error, refused: 0, byAction: new Map(), triedAt: 0 });
    f.error = error;
    for (const a of actions) this.#count(f, a);
    if (first && !this.#recoverTimer) {
      this.#recoverTimer = this.#clock.setInterval(() => void this.#recover().catch(() => {}), this.#recoverEveryMs());
      unref(this.#recoverTimer);
    }
    // a recovery whose gap entry fails was unwritable all along: no news
    if (first && !this.#recovering) this.#opts.onHealth?.(this.health());
    return this.#unavailable(f, `writing the audit log failed (${error})`);
  }

  /** a record while unwritable: counted for the gap entry, refused */
  #refuse(event: AuditEvent): TalonError {
    const f = this.#failure;
    if (!f)
      return new TalonError('AUDIT_UNAVAILABLE', `the audit log cannot be written; ${String(event.action)} refused`);
    this.#count(f, String(event.action));
    return this.#unavailable(
      f,
      `the audit log cannot be written since ${new Date(f.since).toISOString()} (${f.error})${f.waiting ? `; ${f.waiting}` : ''}; ${String(event.action).slice(0, 80)} refused`,
    );
  }

  #unavailable(f: Failure, message: string): TalonError {
    return new TalonError('AUDIT_UNAVAILABLE', message, {
      details: {
        since: f.since,
        error: f.error,
        refused: f.refused,
        retryAfterSec: Math.max(1, Math.ceil(this.#recoverEveryMs() / 1000)),
      },
    });
  }

  #count(f: Failure, action: string): void {
    f.refused++;
    const key = f.byAction.has(action) || f.byAction.size < GAP_ACTIONS ? action : 'other';
    f.byAction.set(key, (f.byAction.get(key) ?? 0) + 1);
  }

  #recoverEveryMs(): number {
    return this.#opts.recoverEveryMs ?? 2000;
  }

  #stopRecoverTimer(): void {
    if (this.#recoverTimer) this.#clock.clearInterval(this.#recoverTimer);
    this.#recoverTimer = null;
  }

  /**
   * Writable again? With enough free space (and not more often than recoverEveryMs): re-sync
   * the store, then append and seal the `audit.gap` entry. True when the chain is writable.
   */
  #recover(): Promise<boolean> {
    const f = this.#failure;
    if (!f) return Promise.resolve(true);
    if (this.#recovering) return this.#recovering;
    if (this.#state !== 'running') return Promise.resolve(false);
    const now = this.#clock.now();
    if (f.triedAt > 0 && now - f.triedAt < this.#recoverEveryMs()) return Promise.resolve(false);
    const min = this.#opts.recoverMinFreeBytes ?? DEFAULT_RECOVER_MIN_FREE;
    const free = (this.#opts.freeBytes ?? (() => this.#store.freeBytes()))();
    if (free !== null && free < min) {
      f.waiting = `${free} bytes free in the data folder, writing resumes at ${min}`;
      return Promise.resolve(false);
    }
    f.triedAt = now;
    delete f.waiting;
    const run = async (): Promise<boolean> => {
      try {
        await this.#store.resync();
      } catch (err) {
        f.error = String((err as Error)?.message ?? err).slice(0, 300);
        return false;
      }
      this.#failure = null;
      this.#closing = f;
      this.#sealWanted = true;
      const to = this.#clock.now();
      const gap = this.#append({
        actor: 'kernel',
        action: 'audit.gap',
        subject: 'audit',
        decision: 'error',
        detail: {
          from: f.since,
          to,
          ms: to - f.since,
          refused: f.refused,
          actions: Object.fromEntries(f.byAction),
          error: f.error,
          reason:
            'the audit log could not be written: these entries were refused, and the actions that needed them did not happen',
        },
      });
      try {
        await gap;
      } catch {
        this.#closing = null;
        // still failing (LevelDB refuses every write after a failed table write until the store is opened again)
        const again = this.#failure as Failure | null;
        this.#failure = f;
        f.error = again?.error ?? f.error;
        // what was refused with the gap entry (records that came meanwhile) still counts
        for (const [action, n] of again?.byAction ?? [])
          for (let i = action === 'audit.gap' ? 1 : 0; i < n; i++) this.#count(f, action);
        f.waiting =
          free === null || free >= min ? 'writing fails with free space: if it persists, restart Talon' : f.waiting;
        return false;
      }
      this.#closing = null;
      this.#stopRecoverTimer();
      this.#opts.onHealth?.(this.health());
      return true;
    };
    const p = run().finally(() => {
      this.#recovering = null;
    });
    this.#recovering = p;
    return p;
  }

  /** a failed batch: the head goes back to the last durable entry (and what is still pending chains onto it) */
  #rechain(): void {
    this.#seq = this.#durable.seq;
    this.#hash = this.#durable.hash;
    for (const p of this.#pending) {
      p.entry.seq = this.#seq + 1;
      p.entry.prev = this.#hash;
      delete p.entry.hash;
      p.entry.hash = entryHash(p.entry, sha256Hex);
      this.#seq = p.entry.seq;
      this.#hash = p.entry.hash;
    }
  }

  /** no entry stays unsigned longer than checkpointMs */
  #armCheckpointTimer(): void {
    if (this.#cpTimer || this.#durable.seq <= this.#cp.seq || this.#state !== 'running') return;
    const wait = Math.max(0, this.#cp.at + this.#cpMs - this.#clock.now());
    this.#cpTimer = this.#clock.setTimeout(() => {
      this.#cpTimer = null;
      if (this.#durable.seq > this.#cp.seq && this.#state === 'running') {
        this.#sealWanted = true;
        this.#kick();
      }
    }, wait);
    unref(this.#cpTimer);
  }

  #setHead(h: { seq: number; hash: string }): void {
    this.#seq = h.seq;
    this.#hash = h.hash;
    this.#durable = { ...h };
  }

  // ---- reading ------------------------------------------------------------------------------

  /** Entries in seq order (or newest first); compatible with the plain log's entries(). */
  async *entries(opts: { since?: number; limit?: number; reverse?: boolean } = {}): AsyncGenerator<AuditEntry> {
    const lo = Math.max(opts.since ?? 1, (this.#floor?.seq ?? 0) + 1);
    const it = this.#log.iterator({
      gte: seqKey(lo),
      limit: opts.limit ?? -1,
      reverse: opts.reverse ?? false,
      valueEncoding: 'utf8',
    });
    for await (const [k, raw] of it) yield parseStoredEntry(k as string, raw as string);
  }

  /** One page of entries matching the filters, scanning at most `maxScan` entries. */
  async query(q: AuditQuery = {}): Promise<AuditPage> {
    const limit = Math.min(Math.max(q.limit ?? 50, 1), 1000);
    const maxScan = Math.max(q.maxScan ?? 10_000, 1);
    const desc = (q.order ?? 'desc') === 'desc';
    const floor = (this.#floor?.seq ?? 0) + 1;
    let cursor: number | null = null;
    if (q.cursor !== undefined) {
      cursor = Number(q.cursor);
      if (!Number.isSafeInteger(cursor) || cursor < 0)
        throw new TalonError('BAD_REQUEST', `cursor ${JSON.stringify(q.cursor)} is not one this API gave`);
    }
    const range = desc
      ? { gte: seqKey(floor), ...(cursor !== null ? { lt: seqKey(cursor) } : {}) }
      : { gte: seqKey(Math.max(floor, cursor !== null ? cursor + 1 : 1)) };
    const decisions = q.decision === undefined ? null : new Set(Array.isArray(q.decision) ? q.decision : [q.decision]);
    const prefix = q.action?.endsWith('.*') ? q.action.slice(0, -1) : null;
    const items: AuditEntry[] = [];
    let scanned = 0;
    let lastKey: number | null = null;
    for await (const [k, raw] of this.#log.iterator({ ...range, reverse: desc, valueEncoding: 'utf8' })) {
      lastKey = keySeq(k as string);
      scanned++;
      let e: AuditEntry;
      try {
        e = JSON.parse(raw as string) as AuditEntry;
      } catch {
        continue; // corrupt records are verify's business, not the page's
      }
      const match =
        (q.actor === undefined || e.actor === q.actor) &&
        (q.action === undefined || (prefix !== null ? e.action.startsWith(prefix) : e.action === q.action)) &&
        (decisions === null || decisions.has(e.decision)) &&
        (q.from === undefined || e.ts >= q.from) &&
        (q.to === undefined || e.ts <= q.to);
      if (match) items.push(e);
      if (items.length >= limit || scanned >= maxScan) {
        return { items, nextCursor: String(lastKey) };
      }
    }
    return { items, nextCursor: null };
  }

  // ---- verification -------------------------------------------------------------------------

  /**
   * Streams the log through the verifier with bounded memory and reports the first broken
   * seq. On a running chain it first writes what is queued and seals the head, and a pass
   * moves the `verified` mark forward; it never changes an entry.
   */
  verify(opts: VerifyOptions = {}): Promise<VerifyReport> {
    return this.#serial(async () => {
      if (this.#state === 'running') {
        this.#sealWanted = true;
        await this.flush();
      }
      const { report, aborted } = await this.#verifyRange(opts.from ?? 'checkpoint', true, opts.against);
      if (!report.ok && !aborted) this.#report(report);
      return report;
    });
  }

  /**
   * from 'start': the prune checkpoint or genesis; 'checkpoint': the `verified` mark when it
   * still holds, else the start; 'checkpoint-tail' (start()): the newest checkpoint at or under
   * the head, which must hold, so the work is bounded.
   */
  async #verifyRange(
    from: 'start' | 'checkpoint' | 'checkpoint-tail',
    requireSealed: boolean,
    against?: Checkpoint,
    upTo?: number,
  ): Promise<{ report: VerifyReport; aborted: boolean }> {
    const v = new ChainVerifier({
      sha256Hex,
      verifySig: this.#verifySig,
      requireSealed,
      ...(against ? { against } : {}),
    });
    const live = this.#state === 'running';
    const floor = this.#state === 'new' ? await this.#readPrune() : this.#floor;
    const floorSeq = floor?.seq ?? 0;
    let start = floorSeq + 1;
    let resumed: AnyCheckpoint | null = null;
    if (from === 'checkpoint-tail') {
      const newest = await this.#newestCheckpointAtOrBelow(this.#seq);
      if (newest && newest.key > floorSeq) {
        const bad = newest.cp === null ? 'is corrupt' : await this.#resumeProblem(newest.cp);
        if (bad) {
          return {
            aborted: false,
            report: {
              ok: false,
              checked: 0,
              firstSeq: null,
              lastSeq: null,
              anchor: null,
              lastCheckpoint: null,
              firstBrokenSeq: newest.key,
              kind: bad.includes('signed') ? 'signature' : bad.includes('corrupt') ? 'corrupt' : 'checkpoint',
              reason: `the newest checkpoint (seq ${newest.key}) ${bad}`,
            },
          };
        }
        resumed = newest.cp;
      }
    } else if (from === 'checkpoint') {
      resumed = await this.#readVerified();
      if (resumed && (resumed.seq <= floorSeq || (await this.#resumeProblem(resumed)) !== null)) resumed = null;
    }
    if (resumed) {
      v.resume(resumed);
      start = resumed.seq + 1;
    } else if (floor) {
      v.checkpoint(floor);
    }
    if (against && against.seq < start) {
      const pruned = against.seq < floorSeq;
      v.againstEarlier(pruned ? null : await this.#storedHash(against.seq), pruned);
    }
    // a running chain verifies up to its newest checkpoint (entries after it are still being
    // appended); a stopped one everything on disk
    const to = upTo ?? (live ? (this.#latest?.seq ?? floorSeq) : Number.MAX_SAFE_INTEGER);
    let n = 0;
    let aborted = false;
    // LevelDB itself may refuse (a damaged table block): then read on one record at a time
    // from the last good entry to find where, and report it rather than throw
    for (let chunk = CHUNK; chunk > 0; chunk = chunk === 1 ? 0 : 1) {
      const from1 = v.head ? v.head.seq + 1 : start;
      try {
        feed: for await (const recs of this.#records(from1, to, chunk)) {
          if (this.#abort && from !== 'checkpoint-tail') {
            aborted = true;
            break;
          }
          for (const rec of recs) {
            if (!feed(v, rec)) break feed;
          }
          if (++n % 8 === 0) await new Promise(setImmediate); // appends keep flowing meanwhile
        }
        break;
      } catch (err) {
        if (chunk === 1) {
          const at = (v.head?.seq ?? start - 1) + 1;
          v.corrupt({ key: at }, `the store cannot read the log from seq ${at}: ${(err as Error).message}`);
        }
      }
    }
    const r = v.end();
    if (
      live &&
      from !== 'checkpoint-tail' &&
      upTo === undefined &&
      !aborted &&
      r.lastCheckpoint?.type === 'checkpoint' &&
      r.lastCheckpoint.seq > (resumed?.seq ?? 0)
    ) {
      await this.#cps.put(VERIFIED_KEY, r.lastCheckpoint).catch(() => {});
    }
    return { report: r, aborted };
  }

  /**
   * Entries and checkpoints from seq `lo` to `hi` merged in export order (a checkpoint right
   * after its entry), in chunks of up to CHUNK records: memory stays bounded, and reading in
   * chunks (nextv) rather than one promise per record is what makes ≥ 100k entries/s.
   */
  async *#records(lo: number, hi: number, chunk = CHUNK): AsyncGenerator<Rec[]> {
    const bound = hi === Number.MAX_SAFE_INTEGER ? {} : { lte: seqKey(hi) };
    const cpIt = this.#cps.iterator({ gte: seqKey(lo), lt: CP_RANGE_END, ...bound, valueEncoding: 'utf8' });
    // classic-level's read-ahead (default 16 KiB) is what a scan waits on; 1 MiB halves the cost
    const logIt = this.#log.iterator({
      gte: seqKey(lo),
      ...bound,
      valueEncoding: 'utf8',
      ...(chunk > 1 ? READ_AHEAD : {}),
    });
    let cps: Array<[string, string]> = [];
    let ci = 0;
    let cpsDone = false;
    /** the next checkpoint's key, or Infinity when there are none left */
    const peekCp = async (): Promise<number> => {
      if (ci >= cps.length && !cpsDone) {
        cps = (await cpIt.nextv(256)) as Array<[string, string]>;
        ci = 0;
        if (cps.length === 0) cpsDone = true;
      }
      return ci < cps.length ? keySeq(cps[ci]![0]) : Infinity;
    };
    // one read ahead: LevelDB fetches the next chunk while this one is hashed
    let ahead: Promise<Array<[string, string]>> | null = null;
    try {
      ahead = logIt.nextv(chunk) as Promise<Array<[string, string]>>;
      for (;;) {
        const rows = (await ahead)!;
        ahead = null;
        if (rows.length === 0) break;
        if (chunk > 1) ahead = logIt.nextv(chunk) as Promise<Array<[string, string]>>;
        else ahead = null;
        const out: Rec[] = [];
        for (const [k, raw] of rows) {
          const key = keySeq(k);
          let c: number;
          while ((c = await peekCp()) < key) out.push({ kind: 'cp', key: c, raw: cps[ci++]![1] });
          out.push({ kind: 'entry', key, raw });
          while ((await peekCp()) === key) out.push({ kind: 'cp', key, raw: cps[ci++]![1] });
        }
        yield out;
        if (chunk === 1) ahead = logIt.nextv(1) as Promise<Array<[string, string]>>;
      }
      const rest: Rec[] = [];
      let c: number;
      while ((c = await peekCp()) !== Infinity) rest.push({ kind: 'cp', key: c, raw: cps[ci++]![1] });
      if (rest.length > 0) yield rest;
    } finally {
      await ahead?.catch(() => {});
      await cpIt.close();
      await logIt.close();
    }
  }

  /** a resume point holds when its signature verifies and the stored entry still hashes to it */
  async #resumeProblem(cp: AnyCheckpoint): Promise<string | null> {
    if (checkpointProblem(cp) !== null) return 'is malformed';
    if (!this.#verifySig(signedMessage(cp), cp.sig)) return 'is not signed by this device key';
    const stored = await this.#storedHash(cp.seq);
    if (stored === null) return `signs entry ${cp.seq}, which is missing or unreadable`;
    if (stored !== cp.hash) return `does not match entry ${cp.seq}: the entry was changed`;
    return null;
  }

  async #storedHash(seq: number): Promise<string | null> {
    const raw = (await this.#log.get(seqKey(seq), { valueEncoding: 'utf8' })) as string | undefined;
    if (raw === undefined) return null;
    try {
      const e = JSON.parse(raw) as AuditEntry;
      return entryProblem(e) === null ? entryHash(e, sha256Hex) : null;
    } catch {
      return null;
    }
  }

  async #newestCheckpointAtOrBelow(seq: number): Promise<{ key: number; cp: Checkpoint | null } | null> {
    for await (const [k, raw] of this.#cps.iterator({
      lte: seqKey(seq),
      reverse: true,
      limit: 1,
      valueEncoding: 'utf8',
    })) {
      return { key: keySeq(k as string), cp: parseCheckpoint(raw as string) };
    }
    return null;
  }

  async #readVerified(): Promise<Checkpoint | null> {
    const raw = (await this.#cps.get(VERIFIED_KEY, { valueEncoding: 'utf8' })) as string | undefined;
    return raw === undefined ? null : parseCheckpoint(raw);
  }

  async #readPrune(): Promise<PruneCheckpoint | null> {
    const raw = (await this.#cps.get(PRUNE_KEY, { valueEncoding: 'utf8' })) as string | undefined;
    if (raw === undefined) return null;
    const cp = parseCheckpoint(raw) as AnyCheckpoint | null;
    // a prune checkpoint that does not verify is no floor: verification then reports the gap
    return cp && cp.type === 'prune' && this.#verifySig(pruneMessage(cp.seq, cp.hash), cp.sig) ? cp : null;
  }

  #report(r: VerifyReport): void {
    this.#problem ??= r;
    this.#opts.onBroken?.(r);
  }

  // ---- export -------------------------------------------------------------------------------

  /**
   * JSON Lines, entries and checkpoints in seq order. With `since`, starts at the checkpoint
   * at or before since - 1 (written first, as the anchor) so the file verifies on its own;
   * after pruning, the prune checkpoint is the first line. A running chain seals its head
   * first, so the file ends with a checkpoint.
   */
  async export(
    out: NodeJS.WritableStream,
    opts: { since?: number } = {},
  ): Promise<{ lines: number; firstSeq: number | null; lastSeq: number | null }> {
    if (this.#state === 'running') {
      this.#sealWanted = true;
      await this.flush();
    }
    const floor = this.#state === 'new' ? await this.#readPrune() : this.#floor;
    let anchor: AnyCheckpoint | null = floor;
    const since = opts.since ?? 1;
    if (since - 1 > (floor?.seq ?? 0)) {
      const newest = await this.#newestCheckpointAtOrBelow(since - 1);
      if (newest?.cp && newest.cp.seq > (floor?.seq ?? 0)) anchor = newest.cp;
    }
    let lines = 0;
    let firstSeq: number | null = null;
    let lastSeq: number | null = null;
    const write = async (line: string): Promise<void> => {
      lines++;
      if (!out.write(`${line}\n`)) await once(out, 'drain');
    };
    if (anchor) await write(JSON.stringify(anchor));
    const to = this.#state === 'running' ? (this.#latest?.seq ?? 0) : Number.MAX_SAFE_INTEGER;
    for await (const recs of this.#records((anchor?.seq ?? 0) + 1, to)) {
      for (const rec of recs) {
        if (/[\r\n]/.test(rec.raw))
          throw new TalonError(
            'AUDIT_BROKEN',
            `the record at seq ${rec.key} is corrupt (it holds a line break); run \`talon audit verify\``,
          );
        if (rec.kind === 'entry') {
          firstSeq ??= rec.key;
          lastSeq = rec.key;
        }
        await write(rec.raw);
      }
    }
    return { lines, firstSeq, lastSeq };
  }

  // ---- retention ----------------------------------------------------------------------------

  /**
   * Applies the retention limits: verifies up to the head, then writes a signed prune
   * checkpoint for the newest entry to drop and deletes what is under it. Refuses on a
   * broken chain (pruning would destroy the evidence). Returns null when nothing is due.
   */
  prune(): Promise<{ floor: number; removed: number } | null> {
    return this.#serial(async () => {
      if (this.#state !== 'running' || !this.#retentionOn() || this.#failure) return null;
      const ret = this.#opts.retention ?? {};
      this.#sealWanted = true;
      await this.flush();
      const head = this.#durable.seq;
      const floorSeq = this.#floor?.seq ?? 0;
      let target = floorSeq;
      if (ret.maxEntries !== undefined) target = Math.max(target, head - Math.max(0, ret.maxEntries));
      if (ret.maxAgeMs !== undefined) {
        const cutoff = this.#clock.now() - ret.maxAgeMs;
        for await (const [k, raw] of this.#log.iterator({
          gt: seqKey(Math.max(target, floorSeq)),
          lte: seqKey(head),
          valueEncoding: 'utf8',
        })) {
          let ts: number;
          try {
            ts = (JSON.parse(raw as string) as AuditEntry).ts;
          } catch {
            break;
          }
          if (ts >= cutoff) break;
          target = keySeq(k as string);
        }
      }
      if (target <= floorSeq) return null;
      // everything about to be deleted, and its link to what stays, must verify first
      const { report: check } = await this.#verifyRange('start', false, undefined, Math.min(target + 1, head));
      if (!check.ok) {
        this.#report(check);
        throw new TalonError(
          'AUDIT_BROKEN',
          `not pruning: the audit log is broken at seq ${check.firstBrokenSeq} (${check.reason}); pruning would destroy the evidence`,
          { details: check },
        );
      }
      const hash = await this.#storedHash(target);
      if (hash === null) throw new TalonError('AUDIT_BROKEN', `not pruning: entry ${target} cannot be read`);
      const cp: PruneCheckpoint = {
        v: 1,
        type: 'prune',
        seq: target,
        hash,
        ts: this.#clock.now(),
        sig: this.#key.sign(pruneMessage(target, hash)).toString('base64'),
      };
      const ops: Array<{ type: 'put' | 'del'; key: string; value?: unknown }> = [
        { type: 'put', key: PRUNE_KEY, value: cp },
      ];
      const verified = await this.#readVerified();
      if (verified && verified.seq <= target) ops.push({ type: 'del', key: VERIFIED_KEY });
      await this.#cps.batch(ops as never, SYNC);
      this.#floor = cp;
      await this.#sweep(target);
      return { floor: target, removed: target - floorSeq };
    });
  }

  /** deletes entries and checkpoints at or under the floor, in chunks (resumable) */
  async #sweep(floor: number): Promise<void> {
    await this.#log.clear({ lte: seqKey(floor) });
    await this.#cps.clear({ lte: seqKey(floor) });
  }

  #retentionOn(): boolean {
    const r = this.#opts.retention;
    return r !== undefined && (r.maxEntries !== undefined || r.maxAgeMs !== undefined);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#exclusive.then(fn, fn);
    this.#exclusive = run.catch(() => {});
    return run;
  }
}

// ---- helpers ----------------------------------------------------------------------------------

const LONE_SURROGATE_ESCAPE =
  /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2})|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/gi;

/** detail as plain JSON (what the store will hold); never lose an event over an odd value */
function jsonDetail(detail: Record<string, unknown> | undefined): Record<string, unknown> {
  if (detail === undefined || detail === null) return {};
  try {
    const v = JSON.parse(JSON.stringify(detail)) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v };
  } catch (err) {
    return { unserialisable: (err as Error).message };
  }
}

function rawEntryHash(raw: string): string {
  try {
    const e = JSON.parse(raw) as AuditEntry;
    if (entryProblem(e) === null) return entryHash(e, sha256Hex);
  } catch {
    /* corrupt: chain onto the bytes */
  }
  return sha256Hex(raw);
}

function parseCheckpoint(raw: string): Checkpoint | null {
  try {
    const cp = JSON.parse(raw) as Checkpoint;
    return checkpointProblem(cp) === null ? cp : null;
  } catch {
    return null;
  }
}

function parseStoredEntry(key: string, raw: string): AuditEntry {
  try {
    return JSON.parse(raw) as AuditEntry;
  } catch {
    throw new TalonError(
      'AUDIT_BROKEN',
      `the audit record at seq ${keySeq(key)} is corrupt (not JSON); run \`talon audit verify\``,
    );
  }
}

/** one stored record into the verifier: a record that is not JSON is reported as corrupt, never thrown */
function feed(v: ChainVerifier, rec: Rec): boolean {
  let value: unknown;
  try {
    value = JSON.parse(rec.raw);
  } catch {
    return v.corrupt(
      { key: rec.key },
      `the ${rec.kind === 'entry' ? 'record' : 'checkpoint'} stored as seq ${rec.key} is corrupt (not JSON)`,
    );
  }
  return rec.kind === 'entry' ? v.entry(value, { key: rec.key }) : v.checkpoint(value, { key: rec.key });
}

function brokenDetail(r: VerifyReport): Record<string, unknown> {
  return { firstBrokenSeq: r.firstBrokenSeq, kind: r.kind, reason: r.reason };
}

function unref(handle: unknown): void {
  (handle as { unref?: () => void } | null)?.unref?.();
}
