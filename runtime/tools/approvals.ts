/**
 * The approval queue: a tool call that is destructive (or named in the caller's `approve` list)
 * waits here for a person. Each request is stored in the store's `approvals` sublevel (the last
 * 1000 kept), audited (`approval.request`), published (the integrator puts it on MQTT, retained)
 * and shown to listeners (the web admin's badge); each answer likewise (`approval.decide`, the
 * actor being who answered).
 *
 * Never an allow by default: nobody answering within the timeout is `expired` (by `timeout`) and
 * counts as a deny; a request left pending by a previous run is `expired` at start (by `restart`);
 * stopping denies what still waits (by `shutdown`); a caller that goes away withdraws its request
 * (by `cancelled`). A decision that cannot be stored or audited denies the call, and the person
 * deciding gets the error.
 */
import { randomBytes } from 'node:crypto';
import type { Audit } from '../audit/types.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';
import type { Store, Sublevel } from '../store/store.ts';
import { argsHash, capJson } from './registry.ts';
import type { Approval, ApprovalDecision, ApprovalState, ApprovalsApi } from './types.ts';

/** approvals kept in the store; older decided ones are removed */
export const APPROVALS_KEPT = 1000;
/** the input a person sees, at most this many bytes of JSON (strings cut with `…`) */
export const APPROVAL_INPUT_MAX_BYTES = 4096;
/** a person's note, at most this many characters */
const NOTE_MAX = 1000;
const LIST_DEFAULT = 100;
/** calls one caller may have waiting for a person at once; more are denied at once, asking nobody */
export const MAX_PENDING_PER_ACTOR = 20;

/** what an approval is asked with: the stored Approval's own fields, before the queue adds id, state and times */
export type ApprovalRequest = Pick<Approval, 'actor' | 'hand' | 'tool' | 'input' | 'reason' | 'goal' | 'runId'>;

export interface ApprovalOutcome {
  approved: boolean;
  /** `user:<name>`, `cli`, `mqtt:<client>`; `timeout`, `restart`, `shutdown` or `cancelled` when nobody answered */
  by: string;
  note?: string;
  id: string;
}

/** What the tool registry needs of the queue (./registry.ts). */
export interface ApprovalRequester {
  request(req: ApprovalRequest, signal?: AbortSignal): Promise<ApprovalOutcome>;
  pending(): number;
}

export interface ApprovalsDeps {
  store: Store;
  audit: Audit;
  clock?: Clock;
  /** the integrator's MQTT publish (`talon/<id>/approvals/<approvalId>`, retained) */
  publish?: (a: Approval) => void;
  /** how long a request waits for a person (config tools.approvalTimeoutMs) */
  timeoutMs: () => number;
}

interface Waiting {
  approval: Approval;
  resolve: (o: ApprovalOutcome) => void;
  timer: unknown;
  detach: () => void;
}

export class Approvals implements ApprovalsApi, ApprovalRequester {
  #db: Sublevel<Approval>;
  #audit: Audit;
  #clock: Clock;
  #publish: ((a: Approval) => void) | undefined;
  #timeoutMs: () => number;
  #waiting = new Map<string, Waiting>();
  #listeners = new Set<(a: Approval) => void>();
  #stored = 0;
  #stopped = false;
  #seq = 0;
  #pruning: Promise<void> | null = null;

  constructor(deps: ApprovalsDeps) {
    this.#db = deps.store.sublevel<Approval>('approvals');
    this.#audit = deps.audit;
    this.#clock = deps.clock ?? systemClock;
    this.#publish = deps.publish;
    this.#timeoutMs = deps.timeoutMs;
  }

  /** requests a previous run left pending become `expired`: a restart never allows */
  async start(): Promise<void> {
    this.#stopped = false;
    const stale: Approval[] = [];
    let n = 0;
    for await (const [, a] of this.#db.iterator()) {
      n++;
      if (a.state === 'pending' && !this.#waiting.has(a.id)) stale.push(a);
    }
    this.#stored = n;
    for (const a of stale) {
      const done: Approval = {
        ...a,
        state: 'expired',
        by: 'restart',
        decidedAt: this.#clock.now(),
        note: 'Talon restarted before anyone answered; the call was not made',
      };
      await this.#db.put(done.id, done);
      await this.#audit.record({
        actor: 'kernel',
        action: 'approval.decide',
        subject: a.tool,
        decision: 'deny',
        detail: decideDetail(done),
      });
      this.#emit(done);
    }
    await this.#prune();
  }

  /** what still waits is denied (by `shutdown`) */
  async stop(): Promise<void> {
    this.#stopped = true;
    const waiting = [...this.#waiting.values()];
    await Promise.allSettled(
      waiting.map((w) => this.#finish(w, 'expired', 'shutdown', 'Talon stopped before anyone answered', 'kernel')),
    );
  }

  /**
   * Ask a person. Resolves with their answer, or a deny when nobody answers within the timeout,
   * Talon stops, or `signal` aborts (the caller went away). Rejects only when the request cannot
   * be stored or audited (then nothing was asked, and the call must not go ahead).
   */
  async request(req: ApprovalRequest, signal?: AbortSignal): Promise<ApprovalOutcome> {
    const now = this.#clock.now();
    const id = newId(now, this.#seq++);
    if (this.#stopped) return { approved: false, by: 'shutdown', note: 'Talon is stopping', id };
    if (signal?.aborted) return { approved: false, by: 'cancelled', note: 'the caller went away', id };
    // one caller cannot bury everyone else's requests: past its share of waiting ones, a deny at once
    let mine = 0;
    for (const w of this.#waiting.values()) if (w.approval.actor === req.actor) mine++;
    if (mine >= MAX_PENDING_PER_ACTOR)
      return {
        approved: false,
        by: 'kernel',
        note: `${req.actor} already has ${mine} calls waiting for a person; answer or let them expire first`,
        id,
      };
    const timeoutMs = Math.max(1, this.#timeoutMs());
    const approval: Approval = {
      id,
      actor: req.actor,
      ...(req.hand !== undefined && { hand: req.hand }),
      tool: req.tool,
      input: capJson(req.input ?? null, APPROVAL_INPUT_MAX_BYTES, '…').value,
      reason: req.reason,
      ...(req.goal !== undefined && { goal: req.goal.slice(0, 2000) }),
      ...(req.runId !== undefined && { runId: req.runId }),
      state: 'pending',
      createdAt: now,
      expiresAt: now + timeoutMs,
    };
    await this.#db.put(id, approval);
    this.#stored++;
    // a request the audit log refuses is removed again and asks nobody; the caller gets the error
    await this.#audit
      .record({
        actor: req.actor,
        action: 'approval.request',
        subject: req.tool,
        decision: 'info',
        detail: {
          id,
          ...(req.hand !== undefined && { hand: req.hand }),
          reason: req.reason,
          argsHash: argsHash(req.input ?? null),
          ...(req.runId !== undefined && { runId: req.runId }),
          expiresAt: approval.expiresAt,
        },
      })
      .catch(async (err: unknown) => {
        await this.#db.del(id).catch(() => {});
        this.#stored--;
        throw err;
      });
    const outcome = new Promise<ApprovalOutcome>((resolve) => {
      const onAbort = (): void => {
        const w = this.#waiting.get(id);
        if (w) void this.#finish(w, 'expired', 'cancelled', 'the caller went away', 'kernel').catch(() => {});
      };
      const timer = this.#clock.setTimeout(() => {
        const w = this.#waiting.get(id);
        const within = timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`;
        if (w) void this.#finish(w, 'expired', 'timeout', `nobody answered within ${within}`, 'kernel').catch(() => {});
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.set(id, {
        approval,
        resolve,
        timer,
        detach: () => signal?.removeEventListener('abort', onAbort),
      });
      // the caller may have gone, or Talon begun to stop, while the request was being stored
      if (signal?.aborted) onAbort();
      else if (this.#stopped) {
        const w = this.#waiting.get(id);
        if (w)
          void this.#finish(w, 'expired', 'shutdown', 'Talon stopped before anyone answered', 'kernel').catch(() => {});
      }
    });
    this.#emit(approval);
    void this.#prune().catch(() => {});
    return outcome;
  }

  async list(opts: { state?: ApprovalState; limit?: number } = {}): Promise<Approval[]> {
    const asked = typeof opts.limit === 'number' && Number.isFinite(opts.limit) ? opts.limit : LIST_DEFAULT;
    const limit = Math.min(APPROVALS_KEPT, Math.max(1, Math.floor(asked)));
    const out: Approval[] = [];
    for await (const [, a] of this.#db.iterator({ reverse: true })) {
      const live = this.#waiting.get(a.id)?.approval ?? a;
      if (opts.state && live.state !== opts.state) continue;
      out.push(live);
      if (out.length >= limit) break;
    }
    return out;
  }

  async get(id: string): Promise<Approval> {
    const live = this.#waiting.get(id);
    if (live) return live.approval;
    const a = typeof id === 'string' && id.length > 0 && id.length <= 64 ? await this.#read(id) : undefined;
    if (!a) throw new TalonError('APPROVAL_NOT_FOUND', `there is no approval "${String(id).slice(0, 64)}"`);
    return a;
  }

  async decide(id: string, decision: ApprovalDecision, by: string, note?: string): Promise<Approval> {
    if (decision !== 'approve' && decision !== 'deny')
      throw new TalonError('BAD_REQUEST', `a decision is "approve" or "deny", not "${String(decision).slice(0, 20)}"`);
    if (typeof by !== 'string' || by.length === 0)
      throw new TalonError('BAD_REQUEST', 'a decision must say who made it');
    const w = this.#waiting.get(id);
    if (!w) {
      const a = await this.get(id);
      throw new TalonError(
        'CONFLICT',
        a.state === 'pending'
          ? `approval ${id} is being answered already`
          : `approval ${id} was already ${a.state}${a.by ? ` (by ${a.by})` : ''}; the call it was for is over`,
        { details: { state: a.state, by: a.by } },
      );
    }
    const n = typeof note === 'string' && note.length > 0 ? note.slice(0, NOTE_MAX) : undefined;
    return this.#finish(w, decision === 'approve' ? 'approved' : 'denied', by, n, by);
  }

  pending(): number {
    return this.#waiting.size;
  }

  onChange(listener: (a: Approval) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Settle one waiting request: stored, audited, published, then the caller is answered. Removed
   * from the waiting set first, so a second answer meets CONFLICT. When storing or auditing
   * fails the caller is denied (an approval nobody can see in the log is no approval) and the
   * error goes to whoever decided.
   */
  async #finish(
    w: Waiting,
    state: Exclude<ApprovalState, 'pending'>,
    by: string,
    note: string | undefined,
    actor: string,
  ): Promise<Approval> {
    const id = w.approval.id;
    this.#waiting.delete(id);
    this.#clock.clearTimeout(w.timer);
    w.detach();
    const done: Approval = {
      ...w.approval,
      state,
      by,
      decidedAt: this.#clock.now(),
      ...(note !== undefined && { note }),
    };
    try {
      await this.#db.put(id, done);
      await this.#audit.record({
        actor,
        action: 'approval.decide',
        subject: done.tool,
        decision: state === 'approved' ? 'allow' : 'deny',
        detail: decideDetail(done),
      });
    } catch (err) {
      w.resolve({ approved: false, by, note: 'the decision could not be recorded', id });
      throw err;
    }
    this.#emit(done);
    w.resolve({ approved: state === 'approved', by, ...(note !== undefined && { note }), id });
    return done;
  }

  #emit(a: Approval): void {
    try {
      this.#publish?.(a);
    } catch {
      /* the bus being down does not change the decision */
    }
    for (const l of this.#listeners) {
      try {
        l(a);
      } catch {
        /* a listener's problem is its own */
      }
    }
  }

  async #read(id: string): Promise<Approval | undefined> {
    try {
      return (await this.#db.get(id)) ?? undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'LEVEL_NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** keep the newest APPROVALS_KEPT (ids sort by creation time); a waiting one is never removed */
  #prune(): Promise<void> {
    if (this.#stored <= APPROVALS_KEPT) return Promise.resolve();
    // one at a time: two would count the same keys twice
    this.#pruning ??= this.#pruneOnce().finally(() => {
      this.#pruning = null;
    });
    return this.#pruning;
  }

  async #pruneOnce(): Promise<void> {
    let excess = this.#stored - APPROVALS_KEPT;
    const doomed: string[] = [];
    for await (const key of this.#db.keys()) {
      if (excess <= 0) break;
      if (this.#waiting.has(key)) continue;
      doomed.push(key);
      excess--;
    }
    if (doomed.length === 0) return;
    await this.#db.batch(doomed.map((key) => ({ type: 'del' as const, key })));
    this.#stored -= doomed.length;
  }
}

function decideDetail(a: Approval): Record<string, unknown> {
  return {
    id: a.id,
    by: a.by,
    state: a.state,
    requester: a.actor,
    ...(a.hand !== undefined && { hand: a.hand }),
    ...(a.note !== undefined && { note: a.note }),
  };
}

/** sortable by creation: ms epoch in base 36 (fixed width), a counter, then randomness */
function newId(now: number, seq: number): string {
  const time = Math.max(0, now).toString(36).padStart(9, '0');
  return `${time}${(seq % 1296).toString(36).padStart(2, '0')}${randomBytes(4).toString('hex')}`;
}
