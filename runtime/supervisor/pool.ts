/**
 * Hands on demand and pooled Hands (issue 17): one Hand's workers behind its task inbox.
 *
 * A Hand with `mode: on-demand` or `instances: {min, max}` is run by a HandPool instead of a
 * lone HandRunner. The pool holds ONE bus subscription to the Hand's task inbox
 * (`talon/<dev>/hands/<name>/tasks`, the protocol of hands/sdk/tasks.ts) and routes each message
 * on it to ONE worker: the one with the fewest in flight. A worker's subscriptions that match the
 * inbox are sinks fed by the pool, never by the bus (./hand-runner.ts RunnerDeps.inbox), so a
 * task is not broadcast to every worker; its other subscriptions behave as before (each worker
 * gets them).
 *
 *   on-demand  not started at boot: armed (the inbox subscription, nothing else). A message to
 *              the inbox starts it; the message is held (at most WAKE_BUFFER_MAX, the rest dropped
 *              and counted) until the Hand subscribes to its inbox, then delivered. After
 *              idleStopMs without work (deliveries, requests, chat, kernel calls; a busy loop is
 *              work) it is stopped (`hand.stop`, actor kernel, reason idle) and stays armed. A
 *              person's stop disarms it: it stays stopped until started.
 *   instances  `min` workers at start, each its own HandRunner and worker_thread with the Hand's
 *              grants, store scope and quotas (quotas are per worker). A worker takes at most
 *              PER_INSTANCE inbox messages in flight (delivered, its handler not finished: the
 *              worker reports `done`); the rest wait in the pool's queue (QUEUE_MAX). A queue
 *              deeper than PER_INSTANCE for SCALE_UP_AFTER_MS adds a worker, up to max; a worker
 *              above min idle for idleStopMs is stopped. Both are audited as `hand.scale`.
 *
 * Delivery is at most once: the inbox messages a worker holds when it crashes are lost (a task
 * asker's timeout covers them; hands/sdk/tasks.ts TaskClient).
 */
import type { Bus, BusMessage } from '../bus/types.ts';
import type { Audit, AuditEvent } from '../audit/types.ts';
import type { HandConfig } from '../config/types.ts';
import type { Clock } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';
import { topics } from '../core/topics.ts';
import type { HandRunner, RunnerDeps } from './hand-runner.ts';
import type { HandState, HandStatus, LogLine } from './types.ts';

export const DEFAULT_IDLE_STOP_MS = 300_000;
/** inbox messages one worker of a pool has in flight before the rest queue */
export const PER_INSTANCE = 4;
/** messages held while no worker takes the inbox (an on-demand Hand starting) */
export const WAKE_BUFFER_MAX = 100;
/** messages queued while every worker is full */
export const QUEUE_MAX = 1000;
/** how long the queue stays deeper than PER_INSTANCE before a worker is added */
export const SCALE_UP_AFTER_MS = 200;

/** a Hand's task inbox, absolute (hands/sdk/tasks.ts taskInbox, which the runtime may not import) */
export const taskInboxTopic = (deviceId: string, hand: string): string =>
  `${topics.root(deviceId)}/hands/${hand}/tasks`;

export function usesPool(hand: HandConfig): boolean {
  return hand.mode === 'on-demand' || hand.instances !== undefined;
}

export interface PoolDeps {
  hand: HandConfig;
  bus: Bus;
  audit: Audit;
  clock: Clock;
  deviceId: string;
  stopTimeoutMs: number;
  /** a worker of the Hand, wired to the pool (instance 1 is the first) */
  makeRunner(
    instance: number,
    hooks: { inbox: NonNullable<RunnerDeps['inbox']>; onStatus: (s: HandStatus) => void },
  ): HandRunner;
  onStatus(status: HandStatus): void;
}

interface Member {
  i: number;
  r: HandRunner;
}

export class HandPool {
  readonly name: string;
  readonly onDemand: boolean;
  readonly min: number;
  readonly max: number;
  readonly idleStopMs: number;
  #d: PoolDeps;
  #inbox: string;
  #members: Member[] = [];
  #armed = false;
  #unsub: (() => Promise<void>) | null = null;
  #subscribing: Promise<void> | null = null;
  #queue: BusMessage[] = [];
  #dropped = 0;
  #scaling = false;
  #scaleTimer: unknown = null;
  #tickTimer: unknown = null;
  #wake: Promise<void> | null = null;
  #stopping = false;
  #auditPending = new Set<Promise<void>>();

  constructor(d: PoolDeps) {
    this.#d = d;
    this.name = d.hand.name;
    this.onDemand = d.hand.mode === 'on-demand';
    this.min = d.hand.instances?.min ?? 1;
    this.max = Math.max(this.min, d.hand.instances?.max ?? 1);
    this.idleStopMs = d.hand.idleStopMs ?? DEFAULT_IDLE_STOP_MS;
    this.#inbox = taskInboxTopic(d.deviceId, this.name);
    this.#members.push(this.#make(1));
  }

  #make(i: number): Member {
    const r = this.#d.makeRunner(i, {
      inbox: { topic: this.#inbox, changed: () => this.#changed() },
      onStatus: () => this.#emit(),
    });
    return { i, r };
  }

  get #first(): HandRunner {
    return this.#members[0]!.r;
  }

  get state(): HandState {
    if (this.#members.some((m) => m.r.state === 'running')) return 'running';
    return this.#first.state;
  }

  get armed(): boolean {
    return this.#armed;
  }

  status(): HandStatus {
    const ms = this.#members;
    const s = this.#first.status();
    s.state = this.state;
    for (const m of ms.slice(1)) {
      const o = m.r.status();
      for (const k of Object.keys(s.messages) as Array<keyof HandStatus['messages']>) s.messages[k] += o.messages[k];
      s.handlerErrors += o.handlerErrors;
      s.logsDropped += o.logsDropped;
      s.cpu = Math.round((s.cpu + o.cpu) * 1000) / 1000;
      s.heapUsedMb = Math.round((s.heapUsedMb + o.heapUsedMb) * 100) / 100;
    }
    s.messages.dropped += this.#dropped;
    s.mode = this.onDemand ? 'on-demand' : 'always';
    if (this.onDemand) s.onDemand = { armed: this.#armed, idleStopMs: this.idleStopMs, queued: this.#queue.length };
    if (this.#d.hand.instances !== undefined) {
      s.instances = {
        running: ms.filter((m) => m.r.state === 'running').length,
        min: this.min,
        max: this.max,
        queued: this.#queue.length,
        inFlight: ms.reduce((n, m) => n + m.r.inFlight, 0),
      };
    }
    return s;
  }

  #emit(): void {
    const d = this.#d;
    const status = this.status();
    d.onStatus(status);
    if (d.bus.isUp()) {
      d.bus
        .publish(topics.handStatus(d.deviceId, this.name), JSON.stringify(status), { qos: 0, retain: true })
        .then(undefined, () => undefined);
    }
  }

  // ---- the inbox --------------------------------------------------------------------------------

  /** subscribes to the inbox (an on-demand Hand waits here for its first message) */
  async arm(): Promise<void> {
    this.#armed = true;
    if (!this.#tickTimer) {
      const every = Math.max(50, Math.min(5000, Math.floor(this.idleStopMs / 4)));
      this.#tickTimer = this.#d.clock.setInterval(() => this.#tick(), every);
      (this.#tickTimer as { unref?: () => void }).unref?.();
    }
    if (this.#unsub) return;
    if (!this.#subscribing) {
      this.#subscribing = this.#d.bus
        .subscribe(this.#inbox, (m) => this.#onInbox(m))
        .then(
          (unsub) => {
            this.#subscribing = null;
            if (this.#armed) this.#unsub = unsub;
            else void unsub().then(undefined, () => undefined);
          },
          (err: unknown) => {
            this.#subscribing = null;
            throw err;
          },
        );
    }
    await this.#subscribing;
    this.#emit();
  }

  async #disarm(): Promise<void> {
    this.#armed = false;
    if (this.#tickTimer !== null) this.#d.clock.clearInterval(this.#tickTimer);
    this.#tickTimer = null;
    this.#clearScaleTimer();
    await this.#subscribing?.catch(() => undefined);
    const u = this.#unsub;
    this.#unsub = null;
    if (u) await u().catch(() => undefined);
    this.#dropped += this.#queue.length;
    this.#queue = [];
  }

  #onInbox(msg: BusMessage): void {
    if (!this.#armed) return;
    const taking = this.#members.some((m) => m.r.acceptsInbox());
    if (this.#queue.length >= (taking ? QUEUE_MAX : WAKE_BUFFER_MAX)) {
      this.#dropped++;
      return;
    }
    this.#queue.push(msg);
    this.#drain();
    if (this.#queue.length === 0) return;
    if (this.onDemand && this.state === 'stopped' && !this.#stopping) void this.#wakeUp('inbox');
    this.#maybeScaleUp();
  }

  /** routed messages to workers with room, oldest first */
  #drain(): void {
    const limit = this.max > 1 ? PER_INSTANCE : Number.POSITIVE_INFINITY;
    while (this.#queue.length > 0) {
      let best: HandRunner | null = null;
      for (const m of this.#members) {
        if (!m.r.acceptsInbox()) continue;
        const n = m.r.inFlight;
        if (n < limit && (best === null || n < best.inFlight)) best = m.r;
      }
      if (!best) return;
      best.routeInbox(this.#queue.shift()!);
    }
  }

  /** a worker's inbox subscriptions came or went, or its handlers finished */
  #changed(): void {
    this.#drain();
    this.#maybeScaleUp();
  }

  // ---- starting and stopping ------------------------------------------------------------------

  #wakeUp(reason: string): Promise<void> {
    this.#wake ??= this.#startMembers('kernel', { reason })
      .catch(() => undefined)
      .finally(() => {
        this.#wake = null;
      });
    return this.#wake;
  }

  /** brings the workers up to min and starts those not running; resolves when each is running, in backoff or failed */
  async #startMembers(actor: string, opts: { resetPolicy?: boolean; reason?: string }): Promise<void> {
    const used = new Set(this.#members.map((m) => m.i));
    for (let i = 1; this.#members.length < this.min; i++) if (!used.has(i)) this.#members.push(this.#make(i));
    const startable = this.#members.filter(
      (m) => m.r.state === 'stopped' || m.r.state === 'failed' || m.r.state === 'backoff',
    );
    await Promise.all(
      startable.map((m) =>
        Promise.resolve()
          .then(() => m.r.start(actor, opts))
          .catch(() => undefined),
      ),
    );
    this.#drain();
    this.#maybeScaleUp();
  }

  /** Start from stopped, failed or backoff (arms an on-demand Hand too). */
  start(actor: string, opts: { resetPolicy?: boolean; reason?: string } = {}): Promise<void> {
    const st = this.state;
    if (st === 'starting' || st === 'running' || st === 'stopping') {
      throw new TalonError('HAND_STATE', `Hand "${this.name}" is ${st}; stop it first or use restart`);
    }
    return (async () => {
      await this.arm();
      await (this.#wake ?? this.#startMembers(actor, opts));
    })();
  }

  /** A person's (or the kernel's) stop: disarmed, every worker stopped. */
  async stop(actor: string, deadlineMs: number = this.#d.stopTimeoutMs): Promise<void> {
    const st = this.state;
    if (st === 'stopping' || (st === 'stopped' && !this.#armed)) {
      throw new TalonError('HAND_STATE', `Hand "${this.name}" is already ${st}`);
    }
    await this.#disarm();
    if (st === 'stopped') {
      this.#audit({
        actor,
        action: 'hand.stop',
        subject: this.name,
        decision: 'ok',
        detail: { from: st, reason: 'disarmed' },
      });
      this.#emit();
      return;
    }
    await this.#stopMembers(actor, deadlineMs, {});
    this.#emit();
  }

  /** the kernel's shutdown or a config change: disarmed and stopped, never throws */
  async close(actor: string, deadlineMs: number): Promise<void> {
    await this.#disarm();
    await this.#stopMembers(actor, deadlineMs, {}).catch(() => undefined);
  }

  async restart(actor: string): Promise<void> {
    if (this.state === 'stopping')
      throw new TalonError('HAND_STATE', `Hand "${this.name}" is stopping; wait for it to stop`);
    await this.#dropExtras(this.#d.stopTimeoutMs);
    await this.arm();
    await this.#first.restart(actor);
    await this.#startMembers(actor, {});
  }

  async #stopMembers(actor: string, deadlineMs: number, opts: { reason?: string }): Promise<void> {
    this.#stopping = true;
    try {
      await this.#dropExtras(deadlineMs);
      const first = this.#first;
      if (first.state !== 'stopped' && first.state !== 'stopping')
        await first.stop(actor, deadlineMs, opts).catch(() => undefined);
    } finally {
      this.#stopping = false;
    }
  }

  /** stops and forgets the workers beyond the first */
  async #dropExtras(deadlineMs: number): Promise<void> {
    const extras = this.#members.splice(1);
    await Promise.all(
      extras.map(async (m) => {
        if (m.r.state !== 'stopped' && m.r.state !== 'stopping')
          await m.r.stop('kernel', deadlineMs, { quiet: true }).catch(() => undefined);
        await m.r.settled();
      }),
    );
  }

  // ---- idle stop and scaling --------------------------------------------------------------------

  #tick(): void {
    if (!this.#armed || this.#scaling || this.#stopping || this.#wake !== null) return;
    const now = this.#d.clock.now();
    const ms = this.#members;
    // an extra worker that failed, or idle for idleStopMs: one at a time
    if (ms.length > this.min) {
      for (let k = ms.length - 1; k >= 1; k--) {
        const r = ms[k]!.r;
        if (
          r.state === 'failed' ||
          r.state === 'stopped' ||
          (r.state === 'running' && r.idleFor(now) >= this.idleStopMs)
        ) {
          void this.#scaleDown(ms[k]!);
          return;
        }
      }
    }
    // queued messages no worker takes (it never subscribed to its inbox) do not keep it up
    if (
      this.onDemand &&
      (this.#queue.length === 0 || !ms.some((m) => m.r.acceptsInbox())) &&
      ms.some((m) => m.r.state === 'running') &&
      ms.every((m) => m.r.state === 'stopped' || (m.r.state === 'running' && m.r.idleFor(now) >= this.idleStopMs))
    ) {
      void this.#idleStop();
    }
  }

  async #idleStop(): Promise<void> {
    this.#dropped += this.#queue.length;
    this.#queue = [];
    await this.#stopMembers('kernel', this.#d.stopTimeoutMs, { reason: 'idle' });
    this.#emit();
    // a message that came while it was stopping starts it again
    if (this.#armed && this.#queue.length > 0) void this.#wakeUp('inbox');
  }

  #maybeScaleUp(): void {
    if (!this.#armed || this.#scaleTimer !== null || this.#scaling) return;
    if (this.#members.length >= this.max || this.#queue.length <= PER_INSTANCE || this.state !== 'running') return;
    this.#scaleTimer = this.#d.clock.setTimeout(() => {
      this.#scaleTimer = null;
      if (
        this.#armed &&
        !this.#scaling &&
        !this.#stopping &&
        this.state === 'running' &&
        this.#members.length < this.max &&
        this.#queue.length > PER_INSTANCE
      )
        void this.#scaleUp();
    }, SCALE_UP_AFTER_MS);
  }

  #clearScaleTimer(): void {
    if (this.#scaleTimer !== null) this.#d.clock.clearTimeout(this.#scaleTimer);
    this.#scaleTimer = null;
  }

  async #scaleUp(): Promise<void> {
    this.#scaling = true;
    try {
      const used = new Set(this.#members.map((m) => m.i));
      let i = 2;
      while (used.has(i)) i++;
      const from = this.#members.length;
      const m = this.#make(i);
      this.#members.push(m);
      this.#audit({
        actor: 'kernel',
        action: 'hand.scale',
        subject: this.name,
        decision: 'ok',
        detail: { from, to: from + 1, queued: this.#queue.length },
      });
      await m.r.start('kernel', { reason: 'scale' }).catch(() => undefined);
    } finally {
      this.#scaling = false;
    }
    this.#emit();
    this.#drain();
    this.#maybeScaleUp();
  }

  async #scaleDown(m: Member): Promise<void> {
    this.#scaling = true;
    try {
      const from = this.#members.length;
      this.#members = this.#members.filter((x) => x !== m);
      this.#audit({
        actor: 'kernel',
        action: 'hand.scale',
        subject: this.name,
        decision: 'ok',
        detail: {
          from,
          to: from - 1,
          queued: this.#queue.length,
          reason: m.r.state === 'running' ? 'idle' : m.r.state,
        },
      });
      if (m.r.state !== 'stopped' && m.r.state !== 'stopping')
        await m.r.stop('kernel', this.#d.stopTimeoutMs, { quiet: true }).catch(() => undefined);
      await m.r.settled();
    } finally {
      this.#scaling = false;
    }
    this.#emit();
    this.#drain();
  }

  // ---- talking to it -------------------------------------------------------------------------

  /** the running worker with the least in flight; an armed on-demand Hand that is stopped is started first */
  async #target(): Promise<HandRunner> {
    if (this.onDemand && this.#armed && this.state === 'stopped' && !this.#stopping) await this.#wakeUp('request');
    else if (this.#wake) await this.#wake;
    let best: HandRunner | null = null;
    for (const m of this.#members) {
      if (m.r.state === 'running' && (best === null || m.r.inFlight < best.inFlight)) best = m.r;
    }
    return best ?? this.#first;
  }

  request(kind: string, body: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<unknown> {
    return this.#target().then((r) => r.request(kind, body, opts));
  }

  async *ask(
    messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string }>,
    opts: { signal?: AbortSignal; timeoutMs?: number; maxChars?: number } = {},
  ): AsyncGenerator<string> {
    const r = await this.#target();
    yield* r.ask(messages, opts);
  }

  logs(lines = 100): LogLine[] {
    if (lines < 1) return [];
    if (this.#members.length === 1) return this.#first.logs(lines);
    const all = this.#members.flatMap((m) => m.r.logs(lines));
    all.sort((a, b) => a.ts - b.ts);
    return all.slice(-Math.max(0, Math.floor(lines)));
  }

  measureNow(): void {
    for (const m of this.#members) m.r.measureNow();
  }

  async settled(): Promise<void> {
    await Promise.all(this.#members.map((m) => m.r.settled()));
    await Promise.allSettled([...this.#auditPending]);
  }

  #audit(event: AuditEvent): void {
    const p = this.#d.audit.record(event).then(
      () => undefined,
      () => undefined,
    );
    this.#auditPending.add(p);
    void p.finally(() => this.#auditPending.delete(p));
  }
}
