/**
 * Escalations: a notification that needs an acknowledgement goes to a chain of steps (each step's targets, then how
 * long to wait for an ack before the next step) until someone acknowledges it on any channel (`ack K3F9`, the API, or
 * its alert acknowledged in the Monitoring Hand) or the chain runs out.
 *
 *   start(n, steps, ackId)   stores esc/<ackId> (synced): step 0 is the message the Hand just routed (or notified
 *                            here with `notifyFirst`); the timer for step 1 is armed at startedAt + steps[0].afterMs
 *   fire(ackId, step)        the timer went off: ignored unless `step` is the one due and the escalation is open;
 *                            else notifyStep(esc, step) (the Hand enqueues that step's messages), then the next step
 *                            is armed. After the last step's wait the escalation ends as `exhausted`.
 *   ack(ackId, by)           stores the ack and cancels the timer: the chain stops everywhere
 *   resume()                 at the Hand's start: due escalations fire, the others are armed again
 *
 * Timers (EscalationTimers) come in two kinds: schedulerTimers() puts a one-shot job into the Scheduling Hand over the
 * task protocol (it survives the Communication Hand being stopped; the job publishes `hands/<self>/escalate`
 * { ackId, step }, which the Hand subscribes to and passes to fire()); localTimers() uses ctx.timers. preferTimers()
 * uses the first and falls back to the second when the scheduler does not answer. Either way fire() is idempotent, so
 * a step fired twice (a job and a restart) notifies once.
 *
 * Ack ids: 4 characters of Crockford base32 (no I, L, O, U), more when many are open; what people type is read the
 * Crockford way (lower case, O for 0, I/L for 1, dashes ignored): normalizeAckId().
 */
import type { HandContext, HandStore } from '../sdk/types.ts';
import { TaskClient } from '../sdk/tasks.ts';
import type { Escalation, Notification } from './types.ts';

export const ESC_PREFIX = 'esc/';
export const escKey = (ackId: string): string => `${ESC_PREFIX}${ackId}`;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const STORE_PAGE = 1000;
/** the longest one timer waits (setTimeout's limit); longer waits are chained */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** a step whose notifying failed is tried again after this long */
const RETRY_MS = 30_000;

/** what a person typed, as an ack id: upper case, O → 0, I/L → 1, dashes and spaces dropped */
export function normalizeAckId(text: string): string {
  return text.trim().toUpperCase().replace(/[-\s]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
}

/**
 * A new ack id: 4 Crockford base32 characters (5, then 6, when `taken` refuses many tries in a row). `taken` says
 * whether an open escalation uses the id.
 */
export function newAckId(random: () => number = Math.random, taken: (id: string) => boolean = () => false): string {
  for (let len = 4; len <= 6; len++) {
    for (let tries = 0; tries < 32; tries++) {
      let id = '';
      for (let i = 0; i < len; i++) id += CROCKFORD[Math.floor(random() * 32) % 32];
      if (!taken(id)) return id;
    }
  }
  throw new Error('no free ack id: too many open escalations');
}

export interface EscalationTimers {
  /** arms the timer for the escalation's next step (esc.step + 1 at esc.dueAt); resolves the scheduler's job id */
  arm(esc: Escalation): Promise<string | undefined>;
  cancel(esc: Escalation): Promise<void>;
}

export type EscalationStep = Escalation['steps'][number];

/** the scheduler job's id for a step (job ids are lower case) */
export const escalationJobId = (ackId: string, step: number): string => `esc-${ackId.toLowerCase()}-${step}`;

/** the topic (relative to the device root) a scheduler job publishes on when a step is due */
export const escalateTopic = (selfName: string): string => `hands/${selfName}/escalate`;

/**
 * Timers as Scheduling Hand jobs: `{ op: 'put', job }` with an `at` trigger that publishes `{ ackId, step }` on
 * hands/<self>/escalate; cancel removes the job (`{ op: 'remove', id }`, a job already gone is fine).
 */
export function schedulerTimers(
  ctx: HandContext,
  schedulerName: string,
  selfName: string,
  opts: { client?: TaskClient; timeoutMs?: number } = {},
): EscalationTimers {
  const client = opts.client ?? new TaskClient(ctx);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    async arm(esc) {
      const step = esc.step + 1;
      const id = escalationJobId(esc.ackId, step);
      const what = step >= esc.steps.length ? 'ends unacknowledged' : `step ${step + 1} of ${esc.steps.length}`;
      const job = {
        id,
        description: `escalation ${esc.ackId} ${what}: ${(esc.title ?? esc.text).slice(0, 200)}`,
        trigger: { at: new Date(esc.dueAt).toISOString() },
        action: { publish: { topic: escalateTopic(selfName), payload: { ackId: esc.ackId, step } } },
      };
      await client.ask(schedulerName, { op: 'put', job }, { timeoutMs });
      return id;
    },
    async cancel(esc) {
      if (!esc.job) return;
      try {
        await client.ask(schedulerName, { op: 'remove', id: esc.job }, { timeoutMs });
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'NOT_FOUND') throw err;
      }
    },
  };
}

/** Timers on ctx.timers (lost when the Hand stops; resume() arms them again at the next start). */
export function localTimers(
  timers: { after(ms: number, fn: () => void | Promise<void>): () => void },
  clock: { now(): number },
  fire: (ackId: string, step: number) => Promise<unknown>,
): EscalationTimers {
  const armed = new Map<string, () => void>();
  return {
    async arm(esc) {
      armed.get(esc.ackId)?.();
      const step = esc.step + 1;
      const at = esc.dueAt;
      const h = { cancel: (): void => undefined };
      const wait = (): void => {
        const left = at - clock.now();
        if (left > 0) {
          h.cancel = timers.after(Math.min(left, MAX_TIMER_MS), wait);
          return;
        }
        armed.delete(esc.ackId);
        void fire(esc.ackId, step).catch(() => undefined);
      };
      h.cancel = timers.after(Math.max(0, Math.min(at - clock.now(), MAX_TIMER_MS)), wait);
      armed.set(esc.ackId, () => h.cancel());
      return undefined;
    },
    async cancel(esc) {
      armed.get(esc.ackId)?.();
      armed.delete(esc.ackId);
    },
  };
}

/**
 * The scheduler's timers while it answers, ctx.timers when it does not: an escalation armed locally has no `job`,
 * so its cancel goes to the local timers.
 */
export function preferTimers(
  primary: EscalationTimers,
  fallback: EscalationTimers,
  log?: { warn(msg: string, data?: Record<string, unknown>): void },
): EscalationTimers {
  return {
    async arm(esc) {
      try {
        return await primary.arm(esc);
      } catch (err) {
        log?.warn(`escalation ${esc.ackId}: the scheduler did not take the timer (${(err as Error).message}); local`);
        return fallback.arm(esc);
      }
    },
    async cancel(esc) {
      await fallback.cancel(esc);
      if (esc.job) await primary.cancel(esc);
    },
  };
}

export interface EscalationsOptions {
  store: HandStore;
  clock: { now(): number };
  timers: EscalationTimers;
  /** notifies step `stepIndex`'s targets (the Hand enqueues the messages); a rejection retries the step in 30 s */
  notifyStep(esc: Escalation, stepIndex: number): Promise<void>;
  random?: () => number;
  log?: { warn(msg: string, data?: Record<string, unknown>): void };
}

export type AckResult =
  | { result: 'acked'; escalation: Escalation }
  /** acknowledged before (the escalation as it was acknowledged) */
  | { result: 'already-acked'; escalation: Escalation }
  | { result: 'not-found' };

export class Escalations {
  #o: EscalationsOptions;
  #store: HandStore;
  /** open escalations: ack id → what they are about (for ackByRef and unique ids) */
  #open = new Map<string, Notification['ref'] | undefined>();
  /** one change at a time per escalation */
  #locks = new Map<string, Promise<unknown>>();
  #loaded = false;

  constructor(o: EscalationsOptions) {
    this.#o = o;
    this.#store = o.store;
  }

  /** switches the timers (the scheduler became reachable, or stopped being) for the escalations armed from now on */
  setTimers(timers: EscalationTimers): void {
    this.#o = { ...this.#o, timers };
  }

  /** an ack id no open escalation uses */
  newAckId(): string {
    return newAckId(this.#o.random, (id) => this.#open.has(id));
  }

  #lock<T>(ackId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(ackId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.#locks.set(ackId, next);
    const clear = (): void => {
      if (this.#locks.get(ackId) === next) this.#locks.delete(ackId);
    };
    next.then(clear, clear);
    return next;
  }

  async #put(esc: Escalation): Promise<void> {
    await this.#store.put(escKey(esc.ackId), esc, { sync: true });
    if (esc.ended) this.#open.delete(esc.ackId);
    else this.#open.set(esc.ackId, esc.ref);
  }

  /** arms the timer and records the scheduler's job id (if it changed) */
  async #arm(esc: Escalation): Promise<Escalation> {
    let job: string | undefined;
    try {
      job = await this.#o.timers.arm(esc);
    } catch (err) {
      this.#o.log?.warn(`escalation ${esc.ackId}: no timer could be armed: ${(err as Error).message}`);
    }
    if (job === esc.job) return esc;
    const next: Escalation = { ...esc };
    if (job === undefined) delete next.job;
    else next.job = job;
    await this.#put(next);
    return next;
  }

  /**
   * Starts an escalation for `n` with its chain (`steps[0]` is the first notification: the Hand's own message, or
   * sent here with `notifyFirst`). The ack id must not be in use by an open escalation (newAckId() makes one).
   */
  async start(
    n: Notification,
    steps: EscalationStep[],
    ackId: string,
    opts: { notifyFirst?: boolean } = {},
  ): Promise<Escalation> {
    if (steps.length === 0) throw new Error('escalation steps: at least one step { to, afterMs } is needed');
    for (const [i, s] of steps.entries())
      if (!Array.isArray(s.to) || !(Number.isFinite(s.afterMs) && s.afterMs >= 0))
        throw new Error(`escalation steps[${i}]: needs { to: [targets], afterMs: a wait in ms ≥ 0 }`);
    await this.#load();
    const id = normalizeAckId(ackId);
    return this.#lock(id, async () => {
      if (this.#open.has(id)) throw new Error(`ack id ${id} is in use by an open escalation (use newAckId())`);
      const now = this.#o.clock.now();
      const esc: Escalation = {
        ackId: id,
        notification: n.id,
        ...(n.title !== undefined && { title: n.title }),
        text: n.text,
        priority: n.priority,
        steps: steps.map((s) => ({ to: [...s.to], afterMs: s.afterMs })),
        step: 0,
        dueAt: now + (steps[0] as EscalationStep).afterMs,
        startedAt: now,
        ...(n.ref && { ref: { ...n.ref } }),
      };
      await this.#put(esc);
      if (opts.notifyFirst) await this.#o.notifyStep(esc, 0);
      return this.#arm(esc);
    });
  }

  /**
   * A step's timer went off. Ignored (resolves undefined) unless `step` is the one due (esc.step + 1) and the
   * escalation is neither acknowledged nor ended; else that step is notified and the next armed (or the escalation
   * ends as `exhausted` when the chain has run out). Resolves the escalation as it is now.
   */
  async fire(ackId: string, step: number): Promise<Escalation | undefined> {
    const id = normalizeAckId(ackId);
    return this.#lock(id, async () => {
      const esc = await this.#store.get<Escalation>(escKey(id));
      if (!esc || esc.acked || esc.ended || step !== esc.step + 1) return undefined;
      // the job that fired (or a timer that is left) is removed; the next is armed below
      await this.#o.timers.cancel(esc).catch(() => undefined);
      const now = this.#o.clock.now();
      if (step >= esc.steps.length) {
        const ended: Escalation = { ...esc, ended: 'exhausted' };
        delete ended.job;
        await this.#put(ended);
        return ended;
      }
      try {
        await this.#o.notifyStep(esc, step);
      } catch (err) {
        this.#o.log?.warn(`escalation ${id} step ${step}: ${(err as Error).message}; again in ${RETRY_MS / 1000} s`);
        const again: Escalation = { ...esc, dueAt: now + RETRY_MS };
        delete again.job;
        await this.#put(again);
        return this.#arm(again);
      }
      const next: Escalation = { ...esc, step, dueAt: now + (esc.steps[step] as EscalationStep).afterMs };
      delete next.job;
      await this.#put(next);
      return this.#arm(next);
    });
  }

  /** acknowledges it (on any channel: the chain stops everywhere); never throws for an unknown or acked id */
  async ack(ackId: string, by: string, channel?: string): Promise<AckResult> {
    await this.#load();
    const id = normalizeAckId(ackId);
    return this.#lock(id, async () => {
      const esc = await this.#store.get<Escalation>(escKey(id));
      if (!esc) return { result: 'not-found' as const };
      if (esc.acked) return { result: 'already-acked' as const, escalation: esc };
      const acked: Escalation = {
        ...esc,
        acked: { by, at: this.#o.clock.now(), ...(channel !== undefined && { channel }) },
        // acknowledged after the chain ran out: it stays `exhausted`, with who acknowledged it
        ended: esc.ended ?? 'acked',
      };
      delete acked.job;
      await this.#put(acked);
      await this.#o.timers.cancel(esc).catch((err: Error) => {
        this.#o.log?.warn(`escalation ${id}: the timer could not be cancelled (${err.message}); it will be ignored`);
      });
      return { result: 'acked' as const, escalation: acked };
    });
  }

  /** acknowledges every open escalation about this alert or approval (acknowledged where it came from) */
  async ackByRef(kind: 'alert' | 'approval', refId: string, by = `ref:${kind}`): Promise<Escalation[]> {
    await this.#load();
    const out: Escalation[] = [];
    for (const [ackId, ref] of [...this.#open]) {
      if (ref?.kind !== kind || ref.id !== refId) continue;
      const r = await this.ack(ackId, by);
      if (r.result === 'acked') out.push(r.escalation);
    }
    return out;
  }

  async get(ackId: string): Promise<Escalation | undefined> {
    return this.#store.get<Escalation>(escKey(normalizeAckId(ackId)));
  }

  /** the escalations stored (open ones only with `open`), by ack id */
  async list(o: { open?: boolean } = {}): Promise<Escalation[]> {
    const out: Escalation[] = [];
    let after: string | undefined;
    for (;;) {
      const rows = await this.#store.list<Escalation>({
        prefix: ESC_PREFIX,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const [, e] of rows) if (!o.open || !e.ended) out.push(e);
      if (rows.length < STORE_PAGE) break;
      after = (rows[rows.length - 1] as [string, Escalation])[0];
    }
    return out;
  }

  async #load(): Promise<void> {
    if (this.#loaded) return;
    this.#loaded = true;
    for (const e of await this.list({ open: true })) this.#open.set(e.ackId, e.ref);
  }

  /** at the Hand's start: due escalations fire now, the others are armed again; resolves how many of each */
  async resume(): Promise<{ fired: number; armed: number }> {
    this.#loaded = false;
    this.#open.clear();
    await this.#load();
    const now = this.#o.clock.now();
    let fired = 0;
    let armed = 0;
    for (const esc of await this.list({ open: true })) {
      if (esc.dueAt <= now) {
        await this.fire(esc.ackId, esc.step + 1);
        fired++;
      } else {
        await this.#lock(esc.ackId, () => this.#arm(esc));
        armed++;
      }
    }
    return { fired, armed };
  }

  /** open escalations (for /metrics and status) */
  get open(): number {
    return this.#open.size;
  }
}
