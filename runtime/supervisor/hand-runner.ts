/**
 * One Hand, supervised: its worker_thread, its state machine, its quotas and its watchdog.
 *
 *   stopped → starting → running → stopping → stopped
 *   starting|running --crash--> backoff --timer--> starting
 *   crash loop (RestartPolicy) or a config/manifest error --> failed
 *
 * The worker runs runtime/worker/worker.ts under Node's permission model (./permissions.ts) with
 * a V8 heap cap from quotas.heapMb. Everything it sends is re-checked here: publish grants
 * and the message quota, subscribe grants, store scope and sizes, kernel services. Every
 * refusal is audited as `capability.check` / `deny`, and the Hand gets a typed error.
 */
import { Worker } from 'node:worker_threads';
import { isUtf8 } from 'node:buffer';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { Capabilities, LogLevel, Quotas } from '../core/hand.ts';
import type { CallMsg, KernelToWorker, WorkerData, WorkerToKernel } from '../core/protocol.ts';
import { REQUEST_ANSWER_MAX, REQUEST_ERROR_CODES, RETAIN_FLAG } from '../core/protocol.ts';
import { boundedJson } from '../core/bounded-json.ts';
import type { Bus, BusMessage, QoS } from '../bus/types.ts';
import { toAbsolute, toRelative, topicMatches, topics, validateFilter, validateTopic } from '../core/topics.ts';
import { SYNC, type Store } from '../store/store.ts';
import type { Audit, AuditEvent } from '../audit/types.ts';
import type { HandConfig, SupervisorConfig } from '../config/types.ts';
import type { Clock, Random } from '../core/clock.ts';
import { TalonError, type ErrorJSON } from '../core/errors.ts';
import { TokenBucket } from '../core/token-bucket.ts';
import { Grants, effectiveGrants } from '../core/grants.ts';
import { effectiveQuotas, validateManifest, validateSettings, type ValidManifest } from './manifest.ts';
import { workerExecArgv } from './permissions.ts';
import { RestartPolicy } from './backoff.ts';
import type { HandState, HandStatus, KernelService, LogLine } from './types.ts';

const MB = 1024 * 1024;
export const LOG_RING = 1000;
/** a Hand's kept log lines, about (text and data): the oldest go first */
export const LOG_RING_BYTES = 1024 * 1024;
/** the text of a log line a worker sends, characters; the rest is cut and counted */
export const LOG_MSG_MAX = 8192;
/** a log line's data, bytes of JSON; over it, the data is replaced by a marker and counted */
export const LOG_DATA_MAX = 16 * 1024;
/** an audit entry's subject taken from what a worker sent (a topic, a path, a host), characters */
export const AUDIT_SUBJECT_MAX = 256;
/** an audit entry's detail from a Hand's doing, bytes of JSON */
export const AUDIT_DETAIL_MAX = 4096;
/** an error message or a stack a worker reports (kept in the status, the log and the audit) */
export const ERROR_TEXT_MAX = 2000;
export const STACK_MAX = 4000;
export const STORE_KEY_MAX_BYTES = 512;
export const STORE_VALUE_MAX_BYTES = 256 * 1024;
export const STORE_LIST_MAX = 1000;
/** the action of an audit entry a Hand writes itself (prefixed with its manifest id) */
const HAND_AUDIT_ACTION = /^[a-z][a-z0-9-]{0,31}(\.[a-z][a-z0-9-]{0,31}){0,2}$/;
/** operations in one store.batch */
export const STORE_BATCH_MAX = 1000;
export const MAX_SUBSCRIPTIONS = 256;
/** publishes dropped over messagesPerSec are logged at most this often */
export const SHED_WARN_MS = 60_000;

/** Limits that are policy, not config: overridable for tests. */
export interface RunnerLimits {
  /** a Hand attempting more than factor × its messagesPerSec ... */
  floodFactor: number;
  /** ... for this many consecutive seconds is terminated with QUOTA_EXCEEDED */
  floodSeconds: number;
  /** log lines per second a Hand may write (burst: twice that); the rest are dropped and counted */
  logLinesPerSec: number;
  /**
   * audit entries a Hand's doing may write per second (capability denials and checks); the rest
   * are counted and summed up in one `audit.suppressed` entry per second
   */
  deniesAuditedPerSec: number;
  /** ... and bytes of them per second */
  auditBytesPerSec: number;
  /** how often the kernel reads a worker's memory (V8 heap and external: Buffers, ArrayBuffers), ms */
  memoryPollMs: number;
  /**
   * the supervisor reads the process's RSS this often (cheap: no worker is asked), and when it grew
   * by rssJumpMb since the last look, reads every running Hand's memory at once
   */
  rssWatchMs: number;
  rssJumpMb: number;
  /**
   * event-loop utilisation (measured by the kernel) at or above which a worker counts as busy;
   * busy for longer than hangTimeoutMs, whatever it posts, ends it with HAND_TIMEOUT
   */
  busyElu: number;
}

export const DEFAULT_LIMITS: RunnerLimits = {
  floodFactor: 10,
  floodSeconds: 3,
  logLinesPerSec: 200,
  deniesAuditedPerSec: 20,
  auditBytesPerSec: 16 * 1024,
  memoryPollMs: 1000,
  rssWatchMs: 50,
  rssJumpMb: 16,
  busyElu: 0.98,
};

/** the external-memory quota when a manifest or config gives none: twice the heap, at least 16 MB */
export function externalLimitMb(q: Quotas): number {
  return q.externalMb ?? Math.max(16, 2 * q.heapMb);
}

export interface RunnerDeps {
  config: SupervisorConfig;
  hand: HandConfig;
  bus: Bus;
  store: Store;
  audit: Audit;
  deviceId: string;
  clock: Clock;
  random: Random;
  workerEntry: string;
  modulePath: string;
  services: Map<string, KernelService>;
  limits: RunnerLimits;
  readManifest(modulePath: string): Promise<unknown>;
  onStatus(status: HandStatus): void;
  onLog(line: LogLine): void;
  /** one worker of a pooled Hand (./pool.ts): 1 is the first; its log lines and worker name carry `~<n>` */
  instance?: number;
  /** publish the status on the bus (hands/<name>/status); a pool publishes its own (default true) */
  publishStatus?: boolean;
  /**
   * set for on-demand and pooled Hands (./pool.ts): the task inbox (an absolute topic) is routed by the pool,
   * not subscribed per worker. A subscription whose filter matches it is a sink the pool delivers to;
   * `changed` is called when sinks come or go and when routed messages finish.
   */
  inbox?: { topic: string; changed(): void };
}

/** One worker's life: events from an older worker are ignored. */
interface Session {
  worker: Worker;
  grants: Grants;
  quotas: Quotas;
  startedAt: number;
  lastHb: number;
  /** the worker's loop idle time (ms) at the last heartbeat: unforgeable by the Hand */
  lastIdle: number;
  gotHb: boolean;
  elu: EventLoopUtilization | undefined;
  /** why we terminated it (watchdog, flood, start timeout, start error) */
  killReason: TalonError | null;
  /** an uncaught error the worker died of */
  error: TalonError | null;
  stopRequested: boolean;
  exited: boolean;
  exitedPromise: Promise<void>;
  stoppedMsg: () => void;
  stoppedPromise: Promise<void>;
  subs: Map<number, () => Promise<void>>;
  deliver: Array<number | string | boolean>;
  deliverScheduled: boolean;
  /** messagesPerSec, burst the same; refilled only when empty (the batch's `now`) */
  bucket: TokenBucket;
  floodCount: number;
  floodWindowStart: number;
  floodStreak: number;
  /** publishes shed over messagesPerSec since the last warning, and when that warning was logged */
  shed: { count: number; warnedAt: number | undefined };
  cpuOverStreak: number;
  topicOk: Map<string, boolean>;
  timers: unknown[];
  /** a memory reading is on its way */
  measuring: boolean;
  /** the busy watch: the last ELU sample and when it was taken, and when the busy stretch began */
  eluMark: { elu: EventLoopUtilization; at: number } | undefined;
  busySince: number | undefined;
  /** the worker's CPU time (µs, read by the kernel with each memory reading), now and when the busy stretch began */
  cpu: { usec: number; at: number } | undefined;
  busyCpu: { usec: number; at: number } | undefined;
  /** the kernel has read the worker's memory itself: its heartbeat's figures are no longer used */
  measured: boolean;
  /** heartbeats that came in during the busy stretch */
  busyBeats: number;
  /** the external memory at the last reading, and the early reading it asked for */
  lastExternal: number;
  soon: unknown;
  /** subscriptions matching the routed task inbox (RunnerDeps.inbox), their pending batch and what is in flight */
  inboxSubs: Set<number>;
  tracked: Array<number | string | boolean>;
  inFlight: number;
}

/** how long a Hand may take to answer a chat message, and how long the answer may be */
export const ASK_TIMEOUT_MS = 120_000;
export const ASK_MAX_CHARS = 256 * 1024;
const ANSWER_PIECE_MAX = 64 * 1024;
/** how long a Hand may take to answer a typed request (./supervisor.ts request) */
export const REQUEST_TIMEOUT_MS = 5000;

export class HandRunner {
  readonly name: string;
  #d: RunnerDeps;
  #policy: RestartPolicy;
  #state: HandState = 'stopped';
  #since: number;
  #restarts = 0;
  #lastError: ErrorJSON | undefined;
  #nextStartAt: number | undefined;
  #backoffTimer: unknown = null;
  #manifest: ValidManifest | undefined;
  #session: Session | null = null;
  #settle: Array<() => void> = [];
  /** bumped by every launch: a launch overtaken by a stop or another launch gives up */
  #gen = 0;
  #cpu = 0;
  #heapUsed = 0;
  #heapLimit = 0;
  #heapQuota = 0;
  #external = 0;
  #externalLimit = 0;
  /** fields a worker sent that were cut to size (log text and data, subjects, error messages) */
  #truncated = 0;
  #handlerErrors = 0;
  #counters = { published: 0, received: 0, dropped: 0, denied: 0, malformed: 0 };
  #logs: LogLine[] = [];
  #logBytes = 0;
  #logSizes: number[] = [];
  #logBucket: TokenBucket;
  #logsDropped = 0;
  /** the per-Hand audit budget: this second's entries and bytes, and what it held back */
  #auditWindow = 0;
  #auditCount = 0;
  #auditBytes = 0;
  #auditSuppressed = 0;
  #auditSuppressedBytes = 0;
  #auditSuppressedTotal = 0;
  #auditSummaryTimer: unknown = null;
  #auditPending = new Set<Promise<void>>();
  /** the network grant of the last start: shown in the status (raw opens all of the network) */
  #network: { hosts: string[]; raw: boolean } | undefined;
  #asks = new Map<number, { session: Session; push: (text: string) => void; end: (err: TalonError | null) => void }>();
  #askSeq = 0;
  #requests = new Map<number, { session: Session; finish: (err: TalonError | null, value?: unknown) => void }>();
  #requestSeq = 0;
  /** for idle stops (./pool.ts): when it last did work, and the kernel calls it is waiting on */
  #lastWork = 0;
  #calls = 0;
  /** why the running start began (audited with hand.start) */
  #startReason: string | undefined;

  constructor(deps: RunnerDeps) {
    this.#d = deps;
    this.name = deps.hand.name;
    this.#since = deps.clock.now();
    this.#lastWork = this.#since;
    this.#policy = new RestartPolicy(deps.config.backoff, deps.config.crashLoop, deps.random);
    this.#logBucket = new TokenBucket({
      rate: deps.limits.logLinesPerSec,
      burst: deps.limits.logLinesPerSec * 2,
      now: this.#since,
    });
  }

  get state(): HandState {
    return this.#state;
  }

  status(): HandStatus {
    const now = this.#d.clock.now();
    const m = this.#manifest;
    const s: HandStatus = {
      name: this.name,
      module: this.#d.hand.module,
      state: this.#state,
      since: this.#since,
      uptimeMs: this.#state === 'running' && this.#session ? now - this.#session.startedAt : 0,
      restarts: this.#restarts,
      cpu: round(this.#cpu, 3),
      heapUsedMb: round(this.#heapUsed / MB, 2),
      heapLimitMb: round(this.#heapLimit / MB, 2),
      ...(this.#heapQuota ? { heapQuotaMb: this.#heapQuota } : {}),
      externalMb: round(this.#external / MB, 2),
      externalLimitMb: round(this.#externalLimit / MB, 2),
      messages: { ...this.#counters },
      handlerErrors: this.#handlerErrors,
      logsDropped: this.#logsDropped,
      truncated: this.#truncated,
      auditSuppressed: this.#auditSuppressedTotal,
    };
    if (m) {
      s.id = m.id;
      s.version = m.version;
      s.description = m.description;
    }
    if (this.#network) s.network = { hosts: [...this.#network.hosts], raw: this.#network.raw };
    if (this.#lastError) s.lastError = this.#lastError;
    if (this.#state === 'backoff' && this.#nextStartAt !== undefined) s.nextStartAt = this.#nextStartAt;
    return s;
  }

  /** read the worker's memory now (the supervisor saw the process grow) */
  measureNow(): void {
    const s = this.#session;
    if (s) this.#measure(s);
  }

  logs(lines = 100): LogLine[] {
    const n = Math.max(0, Math.min(LOG_RING, Math.floor(lines)));
    return n === 0 ? [] : this.#logs.slice(-n);
  }

  /** audit entries not yet durable */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#auditPending]);
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Start from stopped, failed or backoff. Resolves once the Hand is running, in backoff or failed. */
  start(actor: string, opts: { resetPolicy?: boolean; reason?: string } = {}): Promise<void> {
    if (this.#state === 'starting' || this.#state === 'running' || this.#state === 'stopping') {
      throw new TalonError('HAND_STATE', `Hand "${this.name}" is ${this.#state}; stop it first or use restart`);
    }
    if (opts.resetPolicy) this.#policy.reset();
    this.#startReason = opts.reason;
    this.#clearBackoff();
    return this.#launch(actor, 'hand.start');
  }

  /** Stop from any state but stopped / stopping. Resolves once stopped. */
  /** `reason`: written into the hand.stop entry (`idle`); `quiet`: no entry (a pool's extra worker) */
  async stop(
    actor: string,
    deadlineMs: number = this.#d.config.stopTimeoutMs,
    opts: { reason?: string; quiet?: boolean } = {},
  ): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') {
      throw new TalonError('HAND_STATE', `Hand "${this.name}" is already ${this.#state}`);
    }
    await this.#stop(actor, deadlineMs, opts.quiet === true, opts.reason);
  }

  /** Stop (if needed) then start. */
  async restart(actor: string): Promise<void> {
    if (this.#state === 'stopping')
      throw new TalonError('HAND_STATE', `Hand "${this.name}" is stopping; wait for it to stop`);
    this.#audit({ actor, action: 'hand.restart', subject: this.name, decision: 'ok', detail: { from: this.#state } });
    if (this.#state !== 'stopped') await this.#stop(actor, this.#d.config.stopTimeoutMs, true);
    this.#restarts++;
    this.#policy.reset();
    this.#startReason = undefined;
    await this.#launch(actor, 'hand.start');
  }

  async #stop(actor: string, deadlineMs: number, quiet = false, reason?: string): Promise<void> {
    const from = this.#state;
    const why = reason === undefined ? {} : { reason };
    this.#clearBackoff();
    const s = this.#session;
    this.#gen++; // a launch still reading its manifest gives up
    if (!s || s.exited) {
      this.#setState('stopped');
      if (!quiet)
        this.#audit({ actor, action: 'hand.stop', subject: this.name, decision: 'ok', detail: { from, ...why } });
      return;
    }
    this.#setState('stopping');
    s.stopRequested = true;
    this.#post(s, { t: 'stop' });
    let graceful = true;
    const deadline = new Promise<'late'>((resolve) => {
      const h = this.#d.clock.setTimeout(() => resolve('late'), Math.max(0, deadlineMs));
      s.timers.push(h);
    });
    const outcome = await Promise.race([
      s.stoppedPromise.then(() => 'ok' as const),
      s.exitedPromise.then(() => 'ok' as const),
      deadline,
    ]);
    if (outcome === 'late') {
      graceful = false;
      this.#log('warn', `stop() did not finish within ${deadlineMs} ms; terminating the worker`);
    }
    await this.#terminate(s);
    this.#setState('stopped');
    if (!quiet)
      this.#audit({
        actor,
        action: 'hand.stop',
        subject: this.name,
        decision: 'ok',
        detail: { from, graceful, ...why },
      });
  }

  #clearBackoff(): void {
    if (this.#backoffTimer !== null) this.#d.clock.clearTimeout(this.#backoffTimer);
    this.#backoffTimer = null;
    this.#nextStartAt = undefined;
  }

  /** Resolves when the state leaves `starting`. */
  #launch(actor: string, action: string): Promise<void> {
    const settled = new Promise<void>((resolve) => this.#settle.push(resolve));
    this.#setState('starting');
    void this.#spawn(actor, action, ++this.#gen);
    return settled;
  }

  async #spawn(actor: string, action: string, gen: number): Promise<void> {
    const d = this.#d;
    const current = (): boolean => gen === this.#gen && this.#state === 'starting';
    const where = `hands.${this.name}`;
    let grants: Capabilities;
    let quotas: Quotas;
    let settings: Record<string, unknown>;
    try {
      const raw = await d.readManifest(d.modulePath);
      if (!current()) return; // stopped or relaunched meanwhile
      const manifest = validateManifest(raw, d.hand.module);
      this.#manifest = manifest;
      grants = effectiveGrants(
        manifest.capabilities,
        d.hand.capabilities,
        topics.root(d.deviceId),
        `${where}.capabilities`,
        manifest.optionalCapabilities,
      );
      quotas = effectiveQuotas(manifest, d.hand.quotas, `${where}.quotas`);
      settings = validateSettings(manifest, d.hand.settings ?? {}, `${where}.settings`);
      this.#network = { hosts: grants.network.hosts, raw: grants.network.raw };
    } catch (err) {
      if (!current()) return;
      this.#fail(TalonError.from(err), actor);
      return;
    }
    if (!current()) return;

    const workerData: WorkerData = {
      mode: 'run',
      name: this.name,
      deviceId: d.deviceId,
      modulePath: d.modulePath,
      settings,
      grants,
      quotas,
      heartbeatMs: d.config.heartbeatMs,
    };
    let worker: Worker;
    try {
      worker = new Worker(d.workerEntry, {
        workerData,
        execArgv: workerExecArgv({
          workerEntry: d.workerEntry,
          modulePath: d.modulePath,
          fs: grants.fs,
          rawNetwork: grants.network.raw,
        }),
        env: {},
        stdout: true,
        stderr: true,
        name: `hand:${this.#label}`,
        resourceLimits: { maxOldGenerationSizeMb: quotas.heapMb },
      });
    } catch (err) {
      this.#fail(
        new TalonError('HAND_START_FAILED', `cannot start a worker for Hand "${this.name}": ${(err as Error).message}`),
        actor,
      );
      return;
    }
    const now = d.clock.now();
    let stoppedMsg = (): void => {};
    const stoppedPromise = new Promise<void>((resolve) => {
      stoppedMsg = resolve;
    });
    let exitedResolve = (): void => {};
    const exitedPromise = new Promise<void>((resolve) => {
      exitedResolve = resolve;
    });
    const s: Session = {
      worker,
      grants: new Grants(grants, topics.root(d.deviceId)),
      quotas,
      startedAt: now,
      lastHb: now,
      lastIdle: 0,
      gotHb: false,
      elu: undefined,
      killReason: null,
      error: null,
      stopRequested: false,
      exited: false,
      exitedPromise,
      stoppedMsg,
      stoppedPromise,
      subs: new Map(),
      deliver: [],
      deliverScheduled: false,
      bucket: new TokenBucket({ rate: quotas.messagesPerSec, now }),
      floodCount: 0,
      floodWindowStart: now,
      floodStreak: 0,
      shed: { count: 0, warnedAt: undefined },
      cpuOverStreak: 0,
      topicOk: new Map(),
      timers: [],
      measuring: false,
      eluMark: undefined,
      busySince: undefined,
      cpu: undefined,
      busyCpu: undefined,
      measured: false,
      busyBeats: 0,
      lastExternal: 0,
      soon: null,
      inboxSubs: new Set(),
      tracked: [],
      inFlight: 0,
    };
    this.#session = s;
    this.#externalLimit = externalLimitMb(quotas) * MB;
    this.#heapQuota = quotas.heapMb;

    captureLines(worker.stdout, (line) => this.#handLog('info', line, { stream: 'stdout' }, true));
    captureLines(worker.stderr, (line) => this.#handLog('error', line, { stream: 'stderr' }, true));
    worker.on('message', (msg: WorkerToKernel) => {
      if (this.#session !== s || s.exited) return;
      try {
        this.#onMessage(s, msg, actor, action);
      } catch (err) {
        this.#log('error', `kernel error handling a message from the worker: ${(err as Error).message}`);
      }
    });
    worker.on('error', (err: Error & { code?: string }) => {
      s.error =
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new TalonError(
              'QUOTA_EXCEEDED',
              `Hand "${this.name}" went over its heap quota of ${quotas.heapMb} MB and was stopped by V8 (ERR_WORKER_OUT_OF_MEMORY)`,
            )
          : new TalonError('HAND_CRASHED', `Hand "${this.name}" crashed: ${this.#clip(err?.message, ERROR_TEXT_MAX)}`, {
              details: { stack: this.#clip(err?.stack, ERROR_TEXT_MAX) },
            });
    });
    worker.on('exit', (code) => {
      s.exited = true;
      for (const a of this.#asks.values()) {
        if (a.session === s)
          a.end(new TalonError('HAND_STOPPED', `Hand "${this.name}" stopped before it finished answering`));
      }
      for (const r of [...this.#requests.values()]) {
        if (r.session === s)
          r.finish(
            new TalonError('HAND_NOT_RUNNING', `Hand "${this.name}" stopped before it answered`, {
              details: { hand: this.name },
            }),
          );
      }
      for (const t of s.timers) d.clock.clearTimeout(t);
      if (s.soon !== null) d.clock.clearTimeout(s.soon);
      this.#flushAuditSummary();
      void this.#cleanup(s);
      exitedResolve();
      if (this.#session !== s) return;
      if (s.stopRequested) return; // #stop finishes the transition
      const reason =
        s.killReason ??
        s.error ??
        new TalonError('HAND_CRASHED', `Hand "${this.name}"'s worker exited unexpectedly with code ${code}`);
      this.#crashed(reason);
    });

    // start timeout
    s.timers.push(
      d.clock.setTimeout(() => {
        if (this.#session === s && this.#state === 'starting' && !s.exited) {
          this.#kill(
            s,
            new TalonError(
              'HAND_TIMEOUT',
              `Hand "${this.name}" did not finish start() within ${d.config.startTimeoutMs} ms`,
            ),
          );
        }
      }, d.config.startTimeoutMs),
    );
    // watchdog: no heartbeat for hangTimeoutMs while the worker's loop never went idle = blocked.
    // A Hand awaiting a kernel call sits idle in its loop and keeps sending heartbeats: busy, not hung.
    const interval = Math.max(10, Math.min(d.config.heartbeatMs, d.config.hangTimeoutMs / 4));
    const watchdog = d.clock.setInterval(() => this.#watch(s), interval);
    s.timers.push(watchdog);
    // memory outside the V8 heap (Buffers, ArrayBuffers), read by the kernel: the worker cannot lie about it
    const memory = d.clock.setInterval(() => this.#measure(s), Math.max(10, d.limits.memoryPollMs));
    s.timers.push(memory);
    const clearWatch = () => {
      d.clock.clearInterval(watchdog);
      d.clock.clearInterval(memory);
    };
    void exitedPromise.then(clearWatch);
  }

  /**
   * The worker's heap and external memory, asked of V8 by the kernel (an interrupt: it is answered
   * even while the Hand's loop spins). Over the external quota: QUOTA_EXCEEDED.
   */
  #measure(s: Session): void {
    if (this.#session !== s || s.exited || s.measuring) return;
    s.measuring = true;
    const at = this.#d.clock.now();
    s.worker.cpuUsage().then(
      (c) => {
        s.cpu = { usec: c.user + c.system, at };
      },
      () => undefined,
    );
    s.worker.getHeapStatistics().then(
      (st) => {
        s.measuring = false;
        if (this.#session !== s || s.exited) return;
        s.measured = true;
        const external = Number(st.external_memory) || 0;
        this.#external = external;
        this.#heapUsed = Number(st.used_heap_size) || this.#heapUsed;
        this.#heapLimit = Number(st.heap_size_limit) || this.#heapLimit;
        const grew = external - s.lastExternal;
        s.lastExternal = external;
        if (external > this.#externalLimit && !s.stopRequested) {
          this.#kill(
            s,
            new TalonError(
              'QUOTA_EXCEEDED',
              `Hand "${this.name}" went over its external memory quota of ${round(this.#externalLimit / MB, 1)} MB ` +
                `(${round(external / MB, 1)} MB of Buffers and ArrayBuffers outside the V8 heap; quotas.externalMb) and was stopped`,
            ),
          );
          return;
        }
        // growing fast (a quarter of its quota since the last reading): look again soon, not at the next poll
        if (grew > this.#externalLimit / 4 && s.soon === null) {
          s.soon = this.#d.clock.setTimeout(() => {
            s.soon = null;
            this.#measure(s);
          }, 5);
        }
      },
      () => {
        s.measuring = false;
      },
    );
  }

  /**
   * A worker whose event loop the kernel measures at ≥ busyElu for longer than hangTimeoutMs is
   * ended, whatever it posts (a spinning Hand can post heartbeats). A Hand waiting on a kernel
   * call sits idle in its loop: never busy.
   */
  #watchBusy(s: Session, now: number): boolean {
    const elu = s.worker.performance.eventLoopUtilization();
    const mark = s.eluMark;
    s.eluMark = { elu, at: now };
    if (!mark) return false;
    const u = s.worker.performance.eventLoopUtilization(elu, mark.elu).utilization;
    if (!Number.isFinite(u)) return false;
    if (u < this.#d.limits.busyElu) {
      s.busySince = undefined;
      return false;
    }
    if (s.busySince === undefined) {
      s.busySince = mark.at;
      s.busyCpu = s.cpu;
      s.busyBeats = 0;
      return false;
    }
    const busyMs = now - s.busySince;
    const hang = this.#d.config.hangTimeoutMs;
    if (busyMs <= hang) return false;
    // the CPU time it burnt meanwhile, as the kernel last read it
    const a = s.busyCpu;
    const b = s.cpu;
    const share = a && b && b.at > a.at ? (b.usec - a.usec) / 1000 / (b.at - a.at) : NaN;
    const cpu = Number.isFinite(share) ? `, ${Math.round(share * 100)}% of a core in CPU time` : '';
    // (almost) no heartbeat all along: a plain blocked loop; heartbeats while the loop never idled: posted from a busy loop
    const silent = now - s.lastHb;
    this.#kill(
      s,
      new TalonError(
        'HAND_TIMEOUT',
        s.busyBeats < 2
          ? `Hand "${this.name}"'s event loop has been blocked for ${silent} ms (no heartbeat${cpu}; hangTimeoutMs is ${hang})`
          : `Hand "${this.name}"'s event loop has been busy for ${busyMs} ms (${Math.round(u * 100)}% at the last look${cpu}; ` +
              `hangTimeoutMs is ${hang}) while it kept posting heartbeats: it was stopped`,
      ),
    );
    return true;
  }

  #watch(s: Session): void {
    if (this.#session !== s || s.exited || !s.gotHb || s.stopRequested) return;
    const now = this.#d.clock.now();
    if (this.#watchBusy(s, now)) return;
    const silent = now - s.lastHb;
    // no heartbeat for a while: report CPU since the last one (a blocked loop shows ~1.0)
    if (silent > 2 * this.#d.config.heartbeatMs && s.elu) {
      const u = s.worker.performance.eventLoopUtilization(s.elu).utilization;
      if (Number.isFinite(u)) this.#cpu = u;
    }
    if (silent <= this.#d.config.hangTimeoutMs) return;
    // a late heartbeat may be queued behind a busy kernel: the worker's own loop clock decides
    const idle = s.worker.performance.eventLoopUtilization().idle;
    if (idle > s.lastIdle + 1) {
      s.lastIdle = idle;
      s.lastHb = now;
      return;
    }
    this.#kill(
      s,
      new TalonError(
        'HAND_TIMEOUT',
        `Hand "${this.name}"'s event loop has been blocked for ${silent} ms (no heartbeat; hangTimeoutMs is ${this.#d.config.hangTimeoutMs})`,
      ),
    );
  }

  #onMessage(s: Session, msg: WorkerToKernel, actor: string, action: string): void {
    switch (msg.t) {
      case 'pub':
        this.#onPublish(s, msg.m, msg.dropped);
        return;
      case 'hb':
        this.#onHeartbeat(s, msg.heapUsed, msg.heapLimit, msg.handlerErrors);
        return;
      case 'call':
        void this.#onCall(s, msg);
        return;
      case 'log':
        this.#handLog(isLevel(msg.level) ? msg.level : 'info', msg.msg, msg.data);
        return;
      case 'denied': {
        const more =
          typeof msg.suppressed === 'number' && Number.isSafeInteger(msg.suppressed) && msg.suppressed > 0
            ? Math.min(msg.suppressed, 1e9)
            : 0;
        this.#deny(
          this.#clip(msg.action, 100),
          this.#clip(msg.subject, AUDIT_SUBJECT_MAX),
          'refused in the worker',
          true,
          more,
        );
        return;
      }
      case 'started':
        if (this.#state !== 'starting') return;
        this.#lastWork = this.#d.clock.now();
        this.#setState('running');
        this.#audit({
          actor,
          action,
          subject: this.name,
          decision: 'ok',
          detail: {
            restarts: this.#restarts,
            module: this.#d.hand.module,
            ...(this.#startReason === undefined ? {} : { reason: this.#startReason }),
            ...(this.#d.instance === undefined ? {} : { instance: this.#d.instance }),
          },
        });
        this.#startReason = undefined; // a restart after a crash is the kernel's own
        return;
      case 'done': {
        const n = typeof msg.n === 'number' && Number.isSafeInteger(msg.n) && msg.n > 0 ? msg.n : 0;
        if (n === 0) return;
        s.inFlight = Math.max(0, s.inFlight - n);
        this.#lastWork = this.#d.clock.now();
        this.#d.inbox?.changed();
        return;
      }
      case 'stopped':
        s.stoppedMsg();
        return;
      case 'answer': {
        const a = this.#asks.get(Number(msg.id));
        if (!a || a.session !== s) return;
        if (typeof msg.text === 'string' && msg.text.length > 0) a.push(this.#clip(msg.text, ANSWER_PIECE_MAX));
        if (msg.end === true) {
          a.end(
            msg.error
              ? new TalonError(
                  isCode(msg.error.code) ? msg.error.code : 'INTERNAL',
                  this.#clip(msg.error.message ?? 'chat failed', ERROR_TEXT_MAX),
                )
              : null,
          );
        }
        return;
      }
      case 'reply':
        this.#onReply(s, msg);
        return;
      case 'error': {
        const e = new TalonError(
          isCode(msg.error?.code) ? msg.error.code : 'INTERNAL',
          this.#clip(msg.error?.message ?? 'unknown error', ERROR_TEXT_MAX),
        );
        const stack = msg.stack ? { stack: this.#clip(msg.stack, STACK_MAX) } : undefined;
        const phase = this.#clip(msg.phase, 20);
        if (phase === 'start' || phase === 'load') {
          if (this.#state !== 'starting') return;
          this.#log('error', `start() failed: ${e.message}`, stack);
          this.#kill(
            s,
            new TalonError('HAND_START_FAILED', `Hand "${this.name}" failed to start: ${e.message}`, {
              details: { cause: e.toJSON() },
            }),
          );
        } else {
          this.#log('error', `${phase} failed: ${e.message}`, stack);
        }
        return;
      }
      default:
        this.#log(
          'warn',
          `unknown message from the worker: ${this.#clip(JSON.stringify((msg as { t?: unknown }).t) ?? 'undefined', 100)}`,
        );
    }
  }

  #onHeartbeat(s: Session, heapUsed: number, heapLimit: number, handlerErrors: number): void {
    const now = this.#d.clock.now();
    s.lastHb = now;
    s.gotHb = true;
    if (s.busySince !== undefined) s.busyBeats++;
    const elu = s.worker.performance.eventLoopUtilization();
    // the first heartbeat only sets the baseline: the worker's whole life so far is its boot
    // (loading the Hand), which would read as a full core for a Hand that just started
    const window = s.elu ? s.worker.performance.eventLoopUtilization(elu, s.elu) : undefined;
    s.elu = elu;
    s.lastIdle = elu.idle;
    if (window) this.#cpu = Number.isFinite(window.utilization) ? window.utilization : 0;
    // the worker's own figures only until the kernel has read them itself (#measure)
    if (!s.measured && typeof heapUsed === 'number' && Number.isFinite(heapUsed)) this.#heapUsed = heapUsed;
    if (!s.measured && typeof heapLimit === 'number' && Number.isFinite(heapLimit)) this.#heapLimit = heapLimit;
    if (typeof handlerErrors === 'number') this.#handlerErrors = handlerErrors;
    // cpuShare is reported and flagged, not enforced: a worker_thread cannot be throttled
    if (this.#cpu > s.quotas.cpuShare) {
      if (++s.cpuOverStreak === 10)
        this.#log(
          'warn',
          `using ${Math.round(this.#cpu * 100)}% of a core, over its cpuShare quota of ${Math.round(s.quotas.cpuShare * 100)}%`,
        );
    } else {
      s.cpuOverStreak = 0;
    }
  }

  // ---- publish: grant, quota, flood -------------------------------------------------------

  #onPublish(s: Session, m: Array<string | Uint8Array | number>, dropped: number): void {
    const now = this.#d.clock.now();
    const rate = s.quotas.messagesPerSec;
    const shed = typeof dropped === 'number' && dropped > 0 ? Math.floor(dropped) : 0;
    const n = Array.isArray(m) ? Math.floor(m.length / 3) : 0;
    this.#counters.dropped += shed;
    if (shed > 0) this.#shed(s, now, rate, shed);
    s.floodCount += n + shed;
    if (now - s.floodWindowStart >= 1000) {
      const elapsed = now - s.floodWindowStart;
      const attempted = (s.floodCount * 1000) / elapsed;
      s.floodStreak =
        attempted > this.#d.limits.floodFactor * rate ? s.floodStreak + Math.max(1, Math.floor(elapsed / 1000)) : 0;
      s.floodCount = 0;
      s.floodWindowStart = now;
      if (s.floodStreak >= this.#d.limits.floodSeconds) {
        this.#kill(
          s,
          new TalonError(
            'QUOTA_EXCEEDED',
            `Hand "${this.name}" published at ${Math.round(attempted)} msg/s for ${s.floodStreak} s, over ${this.#d.limits.floodFactor}× its quota of ${rate} msg/s`,
          ),
        );
        return;
      }
    }
    if (n === 0) return;
    const bus = this.#d.bus;
    for (let i = 0; i < n * 3; i += 3) {
      const topic = m[i];
      const payload = m[i + 1];
      const flags = m[i + 2];
      if (typeof topic !== 'string' || !this.#topicAllowed(s, topic)) {
        this.#deny(
          'bus.publish',
          typeof topic === 'string' ? this.#clip(topic, AUDIT_SUBJECT_MAX) : '(not a topic)',
          'refused by the kernel',
        );
        continue;
      }
      if (!s.bucket.takeBanked() && !s.bucket.take(now)) {
        this.#counters.dropped++;
        this.#shed(s, now, rate);
        continue;
      }
      let body: Buffer | string;
      if (typeof payload === 'string') body = payload;
      else if (payload instanceof Uint8Array)
        body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      else {
        this.#counters.dropped++;
        continue;
      }
      const f = typeof flags === 'number' ? flags : 0;
      this.#counters.published++;
      bus
        .publish(topic, body, { qos: (f & 3) as QoS, retain: (f & RETAIN_FLAG) !== 0 })
        .then(undefined, this.#onPublishError);
    }
  }

  /**
   * A publish over messagesPerSec is dropped (task answers included): say so in the Hand's log, at most once a
   * minute with the count, so a quota too small for a Hand's real load shows before anyone reads /metrics.
   */
  #shed(s: Session, now: number, rate: number, n = 1): void {
    s.shed.count += n;
    if (s.shed.warnedAt !== undefined && now - s.shed.warnedAt < SHED_WARN_MS) return;
    this.#log(
      'warn',
      `over its messagesPerSec quota of ${rate}: ${s.shed.count} publish(es) dropped` +
        `${s.shed.warnedAt === undefined ? '' : ' in the last minute'}; if this is its normal load, raise quotas.messagesPerSec in its config entry`,
      { dropped: s.shed.count, messagesPerSec: rate },
    );
    s.shed.warnedAt = now;
    s.shed.count = 0;
  }

  #onPublishError = (err: unknown): void => {
    this.#counters.dropped++;
    this.#log('warn', `publish failed: ${(err as Error).message}`);
  };

  #topicAllowed(s: Session, topic: string): boolean {
    let ok = s.topicOk.get(topic);
    if (ok === undefined) {
      try {
        validateTopic(topic);
        ok = s.grants.canPublish(topic);
      } catch {
        ok = false;
      }
      if (topic.length <= 1024) {
        // a long topic is checked each time, never kept
        if (s.topicOk.size > 4096) s.topicOk.clear();
        s.topicOk.set(topic, ok);
      }
    }
    return ok;
  }

  // ---- calls: bus.subscribe, store.*, kernel services --------------------------------------

  async #onCall(s: Session, msg: CallMsg): Promise<void> {
    const id = msg.id;
    let reply: KernelToWorker;
    this.#calls++;
    try {
      const value = await this.#dispatch(s, this.#clip(msg.method, 200), Array.isArray(msg.args) ? msg.args : []);
      reply = { t: 'result', id, ok: true, value };
    } catch (err) {
      const e = TalonError.from(err);
      if (e.code === 'INTERNAL') this.#log('error', `${this.#clip(msg.method, 200)} failed: ${e.message}`);
      reply = { t: 'result', id, ok: false, error: e.toJSON() };
    } finally {
      this.#calls--;
      if (this.#d.inbox) this.#lastWork = this.#d.clock.now();
    }
    if (s.exited) return;
    try {
      this.#post(s, reply);
    } catch (err) {
      this.#post(s, {
        t: 'result',
        id,
        ok: false,
        error: {
          code: 'INTERNAL',
          message: `the result of ${msg.method} cannot be sent to the Hand: ${(err as Error).message}`,
        },
      });
    }
  }

  async #dispatch(s: Session, method: string, args: unknown[]): Promise<unknown> {
    switch (method) {
      case 'bus.subscribe':
        return this.#subscribe(s, args[0], args[1]);
      case 'bus.unsubscribe': {
        const unsub = s.subs.get(Number(args[0]));
        s.subs.delete(Number(args[0]));
        if (s.inboxSubs.delete(Number(args[0]))) this.#d.inbox?.changed();
        if (unsub) await unsub();
        return true;
      }
      case 'store.get':
        return this.#scope().get(storeKey(args[0]));
      case 'store.put': {
        const key = storeKey(args[0]);
        await this.#scope().put(key, storeValue(key, args[1]), syncOpt(args[2]));
        return undefined;
      }
      case 'store.batch':
        await this.#batch(args[0], args[1]);
        return undefined;
      case 'audit.record':
        this.#ownAudit(args);
        return undefined;
      case 'store.del':
        await this.#scope().del(storeKey(args[0]));
        return undefined;
      case 'store.list':
        return this.#list(args[0]);
    }
    const service = this.#d.services.get(method);
    if (!service) throw new TalonError('NOT_FOUND', `no kernel service "${method}"`);
    // ctx.fetch's request ids count per worker, and a pool's workers share the Hand's name: made unique per worker
    const inst = this.#d.instance ?? 1;
    if (inst > 1 && method.startsWith('net.') && Number.isSafeInteger(args[0]) && (args[0] as number) < 2 ** 40)
      args = [(args[0] as number) + inst * 2 ** 40, ...args.slice(1)];
    try {
      return await service({ name: this.name, grants: s.grants.caps }, args);
    } catch (err) {
      const e = TalonError.from(err);
      if (e.code === 'CAPABILITY_DENIED' && method === 'tools.call') {
        // the tool registry wrote its own tool.call entry for this refusal: counted here, not audited twice
        this.#counters.denied++;
      } else if (e.code === 'CAPABILITY_DENIED') {
        // a service may name what was refused (net.fetch: { action, subject: 'host:port' })
        const d = isRecord(e.details) ? e.details : {};
        const action = typeof d.action === 'string' ? d.action : method;
        const subject = typeof d.subject === 'string' ? d.subject : describeArgs(args);
        this.#deny(this.#clip(action, 100), this.#clip(subject, AUDIT_SUBJECT_MAX), e.message, true);
      }
      throw e;
    }
  }

  async #subscribe(s: Session, subId: unknown, filter: unknown): Promise<boolean> {
    if (typeof subId !== 'number' || !Number.isInteger(subId) || typeof filter !== 'string') {
      throw new TalonError('BAD_REQUEST', 'bus.subscribe needs (subscription id, topic filter)');
    }
    validateFilter(filter);
    const root = s.grants.root;
    const abs = toAbsolute(root, filter);
    if (!s.grants.canSubscribe(abs)) {
      this.#deny('bus.subscribe', this.#clip(abs, AUDIT_SUBJECT_MAX), 'refused by the kernel', true);
      throw new TalonError(
        'CAPABILITY_DENIED',
        `Hand "${this.name}" may not subscribe to ${abs}; its grant allows ${s.grants.caps.bus.subscribe.join(', ') || 'no topics'}`,
      );
    }
    if (s.subs.size >= MAX_SUBSCRIPTIONS)
      throw new TalonError(
        'QUOTA_EXCEEDED',
        `Hand "${this.name}" has ${MAX_SUBSCRIPTIONS} subscriptions, the most a Hand may hold`,
      );
    // a granted subscription is a capability decision too (rare: once per subscribe, not per message)
    this.#handAudit({
      actor: `hand:${this.name}`,
      action: 'capability.check',
      subject: this.#clip(abs, AUDIT_SUBJECT_MAX),
      decision: 'allow',
      detail: { capability: 'bus.subscribe' },
    });
    if (s.subs.has(subId)) throw new TalonError('BAD_REQUEST', `subscription ${subId} exists`);
    const bus = this.#d.bus;
    // a routed task inbox (./pool.ts) reaches this subscription from the pool, never from the bus
    const inbox = this.#d.inbox?.topic;
    const routed = inbox !== undefined && topicMatches(abs, inbox);
    if (routed && abs === inbox) {
      s.subs.set(subId, async () => undefined);
      s.inboxSubs.add(subId);
      this.#d.inbox?.changed();
      return true;
    }
    const handler = (msg: BusMessage): void => {
      if (s.exited || s.stopRequested) return;
      if (inbox !== undefined && msg.topic === inbox) return;
      if (!isUtf8(msg.payload)) {
        bus.countMalformed();
        this.#counters.malformed++;
        return;
      }
      this.#counters.received++;
      s.deliver.push(subId, toRelative(root, msg.topic), msg.payload.toString('utf8'), msg.retain);
      if (!s.deliverScheduled) {
        s.deliverScheduled = true;
        setImmediate(() => this.#flushDeliveries(s));
      }
    };
    const unsub = await bus.subscribe(abs, handler);
    if (s.exited || this.#session !== s) {
      await unsub();
      throw new TalonError('HAND_STOPPED', `Hand "${this.name}" stopped`);
    }
    s.subs.set(subId, unsub);
    if (routed) {
      s.inboxSubs.add(subId);
      this.#d.inbox?.changed();
    }
    return true;
  }

  #flushDeliveries(s: Session): void {
    s.deliverScheduled = false;
    if (s.exited) return;
    if (this.#d.inbox && (s.deliver.length > 0 || s.tracked.length > 0)) this.#lastWork = this.#d.clock.now();
    if (s.deliver.length > 0) {
      const m = s.deliver;
      s.deliver = [];
      this.#post(s, { t: 'deliver', m });
    }
    if (s.tracked.length > 0) {
      const m = s.tracked;
      s.tracked = [];
      this.#post(s, { t: 'deliver', m, track: true });
    }
  }

  // ---- the routed task inbox (./pool.ts) ----------------------------------------------------

  /** a worker that subscribed to the routed inbox and is not stopping */
  acceptsInbox(): boolean {
    const s = this.#session;
    return s !== null && !s.exited && !s.stopRequested && s.inboxSubs.size > 0 && this.#state !== 'stopping';
  }

  /** routed inbox messages delivered to the current worker and not yet finished by its handlers */
  get inFlight(): number {
    const s = this.#session;
    return s === null || s.exited ? 0 : s.inFlight;
  }

  /** hands an inbox message to each of the worker's matching subscriptions; false when it has none */
  routeInbox(msg: BusMessage): boolean {
    const s = this.#session;
    if (!s || !this.acceptsInbox()) return false;
    if (!isUtf8(msg.payload)) {
      this.#d.bus.countMalformed();
      this.#counters.malformed++;
      return true;
    }
    const topic = toRelative(s.grants.root, msg.topic);
    const text = msg.payload.toString('utf8');
    for (const subId of s.inboxSubs) {
      this.#counters.received++;
      s.inFlight++;
      s.tracked.push(subId, topic, text, msg.retain);
    }
    if (!s.deliverScheduled) {
      s.deliverScheduled = true;
      setImmediate(() => this.#flushDeliveries(s));
    }
    return true;
  }

  /**
   * ms since the Hand last did work (deliveries, requests, chat, kernel calls, finished tasks);
   * 0 while something is in flight or its event loop is busy (a long handler is work)
   */
  idleFor(now: number): number {
    const s = this.#session;
    if (!s || s.exited || this.#state !== 'running') return 0;
    if (s.inFlight > 0 || this.#calls > 0 || s.deliverScheduled) return 0;
    for (const r of this.#requests.values()) if (r.session === s) return 0;
    for (const a of this.#asks.values()) if (a.session === s) return 0;
    if (s.busySince !== undefined || this.#cpu >= 0.5) return 0;
    return Math.max(0, now - this.#lastWork);
  }

  /** the name in log lines and the worker's: `<name>~<n>` for a pool's second worker on */
  get #label(): string {
    const i = this.#d.instance;
    return i === undefined || i === 1 ? this.name : `${this.name}~${i}`;
  }

  #scope() {
    return this.#d.store.handScope(this.name);
  }

  async #list(opts: unknown): Promise<Array<[string, unknown]>> {
    const o = isRecord(opts) ? opts : {};
    const prefix = typeof o.prefix === 'string' ? o.prefix : '';
    if (Buffer.byteLength(prefix) > STORE_KEY_MAX_BYTES)
      throw new TalonError('STORE_LIMIT', `store.list prefix is longer than ${STORE_KEY_MAX_BYTES} bytes`);
    const limit =
      typeof o.limit === 'number' && o.limit > 0 ? Math.min(STORE_LIST_MAX, Math.floor(o.limit)) : STORE_LIST_MAX;
    const range: { gte?: string; gt?: string; lt?: string } = prefix ? { gte: prefix, lt: `${prefix}\uffff` } : {};
    // paging: the rows after the last key of the page before (before it, in reverse)
    if (typeof o.after === 'string') {
      if (Buffer.byteLength(o.after) > STORE_KEY_MAX_BYTES)
        throw new TalonError('STORE_LIMIT', `store.list after is longer than ${STORE_KEY_MAX_BYTES} bytes`);
      if (o.reverse === true) range.lt = range.lt === undefined || o.after < range.lt ? o.after : range.lt;
      else if (range.gte === undefined || o.after >= range.gte) {
        delete range.gte;
        range.gt = o.after;
      }
    }
    const out: Array<[string, unknown]> = [];
    const reverse = o.reverse === true;
    for await (const [k, v] of this.#scope().iterator({ ...range, limit, reverse })) out.push([k, v]);
    return out;
  }

  /** a Hand's writes that land together (and, with `{ sync: true }`, are on disk when it resolves) */
  async #batch(ops: unknown, opts: unknown): Promise<void> {
    if (!Array.isArray(ops)) throw new TalonError('BAD_REQUEST', 'store.batch needs an array of operations');
    if (ops.length > STORE_BATCH_MAX)
      throw new TalonError('STORE_LIMIT', `store.batch takes at most ${STORE_BATCH_MAX} operations at once`);
    const checked = ops.map((op, i) => {
      if (!isRecord(op) || (op.type !== 'put' && op.type !== 'del'))
        throw new TalonError('BAD_REQUEST', `store.batch: operation ${i} must be { type: 'put'|'del', key, value? }`);
      const key = storeKey(op.key);
      return op.type === 'put'
        ? { type: 'put' as const, key, value: storeValue(key, op.value) }
        : { type: 'del' as const, key };
    });
    if (checked.length > 0) await this.#scope().batch(checked, syncOpt(opts));
  }

  async #cleanup(s: Session): Promise<void> {
    const subs = [...s.subs.values()];
    s.subs.clear();
    s.deliver = [];
    s.tracked = [];
    s.inFlight = 0;
    if (s.inboxSubs.size > 0) {
      s.inboxSubs.clear();
      this.#d.inbox?.changed();
    }
    await Promise.allSettled(subs.map((u) => u()));
  }

  // ---- failure paths -----------------------------------------------------------------------

  #kill(s: Session, reason: TalonError): void {
    if (s.exited || s.killReason) return;
    s.killReason = reason;
    void s.worker.terminate();
  }

  async #terminate(s: Session): Promise<void> {
    if (!s.exited) await s.worker.terminate();
    await s.exitedPromise;
  }

  #crashed(err: TalonError): void {
    const d = this.#d;
    const now = d.clock.now();
    this.#lastError = err.toJSON();
    this.#log('error', `crashed: ${err.message}`);
    this.#audit({
      actor: 'kernel',
      action: 'hand.crash',
      subject: this.name,
      decision: 'error',
      detail: { error: err.toJSON(), from: this.#state },
    });
    const decision = this.#policy.crash(now);
    if (decision.action === 'fail') {
      const { restarts, windowMs } = d.config.crashLoop;
      this.#log(
        'error',
        `crash loop: ${decision.crashesInWindow} crashes within ${windowMs} ms (limit ${restarts}); parked as failed`,
      );
      this.#setState('failed');
      this.#audit({
        actor: 'kernel',
        action: 'hand.failed',
        subject: this.name,
        decision: 'error',
        detail: { reason: 'crash loop', crashes: decision.crashesInWindow, windowMs, lastError: err.toJSON() },
      });
      return;
    }
    this.#nextStartAt = now + decision.delayMs;
    this.#setState('backoff', now);
    this.#backoffTimer = d.clock.setTimeout(() => {
      this.#backoffTimer = null;
      if (this.#state !== 'backoff') return;
      this.#nextStartAt = undefined;
      this.#restarts++;
      this.#audit({
        actor: 'kernel',
        action: 'hand.restart',
        subject: this.name,
        decision: 'ok',
        detail: { restarts: this.#restarts, after: err.code },
      });
      void this.#launch('kernel', 'hand.start');
    }, decision.delayMs);
  }

  #fail(err: TalonError, actor: string): void {
    this.#lastError = err.toJSON();
    this.#log('error', err.message);
    this.#setState('failed');
    this.#audit({
      actor,
      action: 'hand.failed',
      subject: this.name,
      decision: 'error',
      detail: { error: err.toJSON() },
    });
  }

  /** `alsoSuppressed`: refusals the worker counted but did not send (summed up in this second's audit.suppressed) */
  #deny(action: string, subject: string, why: string, counted = true, alsoSuppressed = 0): void {
    if (counted) this.#counters.denied += 1 + alsoSuppressed;
    if (alsoSuppressed > 0) this.#suppress(alsoSuppressed, 0);
    this.#handAudit({
      actor: `hand:${this.name}`,
      action: 'capability.check',
      subject,
      decision: 'deny',
      detail: { action, why: this.#clip(why, 500) },
    });
  }

  /**
   * An audit entry of the Hand's making: fields capped, and at most deniesAuditedPerSec entries and
   * auditBytesPerSec bytes a second; the rest are counted and summed up in one audit.suppressed
   * entry when the second ends.
   */
  #handAudit(event: AuditEvent): void {
    const now = this.#d.clock.now();
    if (now - this.#auditWindow >= 1000) {
      this.#flushAuditSummary();
      this.#auditWindow = now;
      this.#auditCount = 0;
      this.#auditBytes = 0;
    }
    const subject = this.#clip(event.subject, AUDIT_SUBJECT_MAX);
    let detail = event.detail;
    let detailJson = detail === undefined ? '' : boundedJson(detail, AUDIT_DETAIL_MAX);
    if (detailJson === null) {
      this.#truncated++;
      detail = { truncated: `the detail was over ${AUDIT_DETAIL_MAX} bytes of JSON` };
      detailJson = JSON.stringify(detail);
    }
    const bytes = 120 + event.actor.length + event.action.length + subject.length + detailJson.length;
    const limits = this.#d.limits;
    if (this.#auditCount + 1 > limits.deniesAuditedPerSec || this.#auditBytes + bytes > limits.auditBytesPerSec) {
      this.#suppress(1, bytes);
      return;
    }
    this.#auditCount++;
    this.#auditBytes += bytes;
    this.#audit({ ...event, subject, ...(detail === undefined ? {} : { detail }) });
  }

  /**
   * An entry of the Hand's own doing (a scheduled run, a message sent): actor `hand:<name>`, action under its
   * manifest id (`<id>.run`) so it cannot pass for the kernel's, within the Hand's audit budget.
   */
  #ownAudit(args: unknown[]): void {
    const [action, subject, decision, detail] = args;
    if (typeof action !== 'string' || !HAND_AUDIT_ACTION.test(action))
      throw new TalonError(
        'BAD_REQUEST',
        'ctx.audit(action, …): action must be dotted lowercase words (`run`, `run.end`), at most 64 characters',
      );
    if (typeof subject !== 'string')
      throw new TalonError('BAD_REQUEST', 'ctx.audit(action, subject): subject must be a string');
    if (decision !== 'ok' && decision !== 'error' && decision !== 'info')
      throw new TalonError('BAD_REQUEST', "ctx.audit: decision must be 'ok', 'error' or 'info'");
    if (detail !== undefined && !isRecord(detail))
      throw new TalonError('BAD_REQUEST', 'ctx.audit: detail must be an object');
    this.#handAudit({
      actor: `hand:${this.name}`,
      action: `${this.#manifest?.id ?? 'hand'}.${action}`,
      subject,
      decision,
      ...(detail === undefined ? {} : { detail }),
    });
  }

  #suppress(entries: number, bytes: number): void {
    this.#auditSuppressed += entries;
    this.#auditSuppressedBytes += bytes;
    this.#auditSuppressedTotal += entries;
    if (this.#auditSummaryTimer === null) {
      const wait = Math.max(1, 1000 - (this.#d.clock.now() - this.#auditWindow));
      this.#auditSummaryTimer = this.#d.clock.setTimeout(() => {
        this.#auditSummaryTimer = null;
        this.#flushAuditSummary();
      }, wait);
    }
  }

  /** one entry for what this second's budget held back */
  #flushAuditSummary(): void {
    if (this.#auditSummaryTimer !== null) {
      this.#d.clock.clearTimeout(this.#auditSummaryTimer);
      this.#auditSummaryTimer = null;
    }
    if (this.#auditSuppressed === 0) return;
    const detail = {
      entries: this.#auditSuppressed,
      bytes: this.#auditSuppressedBytes,
      windowMs: 1000,
      limits: { entries: this.#d.limits.deniesAuditedPerSec, bytes: this.#d.limits.auditBytesPerSec },
    };
    this.#auditSuppressed = 0;
    this.#auditSuppressedBytes = 0;
    this.#audit({ actor: 'kernel', action: 'audit.suppressed', subject: this.name, decision: 'info', detail });
  }

  /** a string a worker sent, at most `max` characters (a fresh copy: a slice would keep the whole original alive) */
  #clip(v: unknown, max: number): string {
    const s =
      typeof v === 'string' ? v : v === undefined || v === null ? '' : typeof v === 'object' ? '[object]' : String(v);
    if (s.length <= max) return s;
    this.#truncated++;
    return `${flat(s.slice(0, max))}… [${s.length - max} more characters cut]`;
  }

  /**
   * a log line from the worker (ctx.log, console, stdout/stderr): rate, size and shape checked here.
   * `copy`: the text is a piece of a larger string (a stdout chunk) and must not keep it alive
   */
  #handLog(level: LogLevel, msg: unknown, data: unknown, copy = false): void {
    if (!this.#logToken()) return;
    let text = this.#clip(msg, LOG_MSG_MAX);
    if (copy && text === msg) text = flat(text);
    let d: Record<string, unknown> | undefined;
    let dataSize: number | undefined;
    if (data !== undefined && data !== null) {
      const json = isRecord(data) ? boundedJson(data, LOG_DATA_MAX) : null;
      if (json !== null) {
        d = JSON.parse(json) as Record<string, unknown>; // a compact copy of plain data
        dataSize = json.length;
      } else {
        this.#truncated++;
        d = {
          truncated: isRecord(data)
            ? `the data was over ${LOG_DATA_MAX} bytes of JSON (or not JSON) and was dropped`
            : 'the data was not an object',
        };
      }
    }
    this.#push(level, text, d, dataSize);
  }

  // ---- state, status, logs, audit ----------------------------------------------------------

  #setState(state: HandState, now: number = this.#d.clock.now()): void {
    const d = this.#d;
    // lifecycle in the Hand's own log, so `talon hands logs` tells what happened to it
    if (state !== this.#state && (state === 'running' || state === 'stopped' || state === 'backoff')) {
      this.#log(
        'info',
        state === 'backoff'
          ? `backoff: next start in ${Math.max(0, Math.round((this.status().nextStartAt ?? now) - now))} ms`
          : state,
      );
    }
    this.#state = state;
    this.#since = now;
    if (state === 'stopped' || state === 'failed' || state === 'backoff') {
      this.#cpu = 0;
      this.#heapUsed = 0;
    }
    if (state !== 'starting') {
      const waiters = this.#settle.splice(0);
      for (const w of waiters) w();
    }
    const status = this.status();
    d.onStatus(status);
    if (d.publishStatus !== false && d.bus.isUp()) {
      d.bus
        .publish(topics.handStatus(d.deviceId, this.name), JSON.stringify(status), { qos: 0, retain: true })
        .then(undefined, (err: unknown) => this.#log('warn', `status publish failed: ${(err as Error).message}`));
    }
  }

  #log(level: LogLevel, msg: string, data?: Record<string, unknown>): void {
    if (this.#logToken()) this.#push(level, msg, data);
  }

  /** the log rate: logLinesPerSec, burst twice that; a line over it is dropped and counted */
  #logToken(): boolean {
    if (this.#logBucket.take(this.#d.clock.now())) return true;
    this.#logsDropped++;
    return false;
  }

  /** `dataSize`: the length of `data` as JSON, when the caller has it already (a worker's log line) */
  #push(level: LogLevel, text: string, data?: Record<string, unknown>, dataSize?: number): void {
    const now = this.#d.clock.now();
    const msg = (this.#d.instance ?? 1) > 1 ? `[${this.#label}] ${text}` : text;
    const line: LogLine =
      data === undefined ? { ts: now, hand: this.name, level, msg } : { ts: now, hand: this.name, level, msg, data };
    // the ring: LOG_RING lines and about LOG_RING_BYTES, the oldest go first
    const size = 80 + msg.length + (data === undefined ? 0 : (dataSize ?? JSON.stringify(data).length));
    this.#logs.push(line);
    this.#logSizes.push(size);
    this.#logBytes += size;
    let drop = 0;
    while (this.#logs.length - drop > 1 && (this.#logs.length - drop > LOG_RING || this.#logBytes > LOG_RING_BYTES)) {
      this.#logBytes -= this.#logSizes[drop]!;
      drop++;
    }
    if (drop > 0) {
      this.#logs.splice(0, drop);
      this.#logSizes.splice(0, drop);
    }
    this.#d.onLog(line);
  }

  #audit(event: AuditEvent): void {
    const p = this.#d.audit.record(event).then(undefined, (err: unknown) => {
      this.#log('error', `audit write failed for ${event.action}: ${(err as Error).message}`);
    });
    this.#auditPending.add(p);
    void p.finally(() => this.#auditPending.delete(p));
  }

  /**
   * Talks to the Hand: its chat(messages) answer, piece by piece. HAND_NOT_RUNNING when it is
   * not running; HAND_TIMEOUT past `timeoutMs`; PAYLOAD_TOO_LARGE past `maxChars`; the
   * worker's chat is aborted when `signal` aborts or the consumer stops reading.
   */
  async *ask(
    messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string }>,
    opts: { signal?: AbortSignal; timeoutMs?: number; maxChars?: number } = {},
  ): AsyncGenerator<string> {
    const s = this.#session;
    if (!s || s.exited || this.#state !== 'running') {
      throw new TalonError('HAND_NOT_RUNNING', `Hand "${this.name}" is ${this.#state}; start it to talk to it`);
    }
    const id = ++this.#askSeq;
    this.#lastWork = this.#d.clock.now();
    const queue: string[] = [];
    let ended = false;
    let error: TalonError | null = null;
    let wake: (() => void) | null = null;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    this.#asks.set(id, {
      session: s,
      push: (text) => {
        queue.push(text);
        notify();
      },
      end: (err) => {
        if (ended) return;
        ended = true;
        error = err;
        notify();
      },
    });
    const timeoutMs = opts.timeoutMs ?? ASK_TIMEOUT_MS;
    const maxChars = opts.maxChars ?? ASK_MAX_CHARS;
    const timer = this.#d.clock.setTimeout(
      () =>
        this.#asks
          .get(id)
          ?.end(new TalonError('HAND_TIMEOUT', `Hand "${this.name}" did not finish its answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = (): void => this.#asks.get(id)?.end(new TalonError('NOT_RUNNING', 'the question was withdrawn'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    this.#post(s, { t: 'ask', id, messages: messages.map((m) => ({ role: m.role, content: String(m.content) })) });
    try {
      let chars = 0;
      for (;;) {
        while (queue.length > 0) {
          const t = queue.shift()!;
          chars += t.length;
          if (chars > maxChars)
            throw new TalonError(
              'PAYLOAD_TOO_LARGE',
              `Hand "${this.name}"'s answer passed ${maxChars} characters and was cut`,
            );
          yield t;
        }
        if (ended) {
          finished = error === null;
          if (error) throw error;
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      this.#lastWork = this.#d.clock.now();
      this.#d.clock.clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      this.#asks.delete(id);
      if (!finished) this.#post(s, { t: 'ask-cancel', id });
    }
  }

  /**
   * Sends a typed request to the Hand's handler for `kind` (the caller validated `body` against
   * the kind's schema) and resolves with its answer. HAND_NOT_RUNNING when the Hand is not
   * running or stops before it answers; HAND_TIMEOUT past `timeoutMs`; an answer over
   * REQUEST_ANSWER_MAX characters of JSON is refused. The Hand may refuse with BAD_REQUEST,
   * NOT_FOUND or CONFLICT; any other error it reports reaches the caller as INTERNAL.
   */
  request(kind: string, body: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<unknown> {
    const s = this.#session;
    if (!s || s.exited || this.#state !== 'running') {
      return Promise.reject(
        new TalonError('HAND_NOT_RUNNING', `Hand "${this.name}" is ${this.#state}; start it to send it requests`, {
          details: { hand: this.name, state: this.#state },
        }),
      );
    }
    if (opts.signal?.aborted) return Promise.reject(new TalonError('NOT_RUNNING', 'the request was withdrawn'));
    const id = ++this.#requestSeq;
    this.#lastWork = this.#d.clock.now();
    const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const clock = this.#d.clock;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => finish(new TalonError('NOT_RUNNING', 'the request was withdrawn'));
      const timer = clock.setTimeout(
        () =>
          finish(
            new TalonError(
              'HAND_TIMEOUT',
              `Hand "${this.name}" did not answer the ${kind.slice(0, 80)} request within ${timeoutMs} ms`,
              { details: { hand: this.name } },
            ),
          ),
        timeoutMs,
      );
      const finish = (err: TalonError | null, value?: unknown): void => {
        if (!this.#requests.delete(id)) return;
        this.#lastWork = clock.now();
        clock.clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(value);
      };
      this.#requests.set(id, { session: s, finish });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        this.#post(s, { t: 'request', id, kind, body });
      } catch (err) {
        finish(
          new TalonError(
            'BAD_REQUEST',
            `the ${kind.slice(0, 80)} request cannot be sent to Hand "${this.name}": ${(err as Error).message}`,
          ),
        );
      }
    });
  }

  /** a worker's answer to a request: its size and shape checked, its error code held to what a Hand may answer */
  #onReply(
    s: Session,
    msg: { id: unknown; ok?: unknown; json?: unknown; error?: { code?: unknown; message?: unknown } },
  ): void {
    const r = this.#requests.get(Number(msg.id));
    if (!r || r.session !== s) return;
    if (msg.ok === true) {
      if (typeof msg.json !== 'string' || msg.json.length > REQUEST_ANSWER_MAX) {
        r.finish(
          new TalonError(
            'INTERNAL',
            `Hand "${this.name}" answered with ${typeof msg.json === 'string' ? `${msg.json.length} characters, over the ${REQUEST_ANSWER_MAX} a request's answer may take` : 'no JSON text'}`,
          ),
        );
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(msg.json);
      } catch {
        r.finish(new TalonError('INTERNAL', `Hand "${this.name}" answered with text that is not JSON`));
        return;
      }
      r.finish(null, value);
      return;
    }
    const code = msg.error?.code;
    const message = this.#clip(msg.error?.message ?? 'the request failed', ERROR_TEXT_MAX);
    if ((REQUEST_ERROR_CODES as readonly unknown[]).includes(code)) {
      r.finish(new TalonError(code as (typeof REQUEST_ERROR_CODES)[number], message));
    } else if (code === 'HAND_STOPPED') {
      r.finish(
        new TalonError('HAND_NOT_RUNNING', `Hand "${this.name}" is stopping: ${message}`, {
          details: { hand: this.name },
        }),
      );
    } else {
      const shown = isCode(code) ? code : 'INTERNAL';
      this.#log('error', `a request failed in the Hand: ${shown}: ${message}`);
      r.finish(new TalonError('INTERNAL', `Hand "${this.name}" failed to answer: ${shown}: ${message}`));
    }
  }

  #post(s: Session, msg: KernelToWorker): void {
    if (s.exited) return;
    s.worker.postMessage(msg);
  }
}

/** `{ sync: true }` from a Hand's options: written through to disk before the call resolves */
function syncOpt(opts: unknown): Record<string, never> {
  return isRecord(opts) && opts.sync === true ? SYNC : {};
}

function storeKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0)
    throw new TalonError('BAD_REQUEST', 'a store key must be a non-empty string');
  if (Buffer.byteLength(key) > STORE_KEY_MAX_BYTES)
    throw new TalonError(
      'STORE_LIMIT',
      `store key is ${Buffer.byteLength(key)} bytes; the limit is ${STORE_KEY_MAX_BYTES}`,
    );
  return key;
}

function storeValue(key: string, value: unknown): unknown {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new TalonError('BAD_REQUEST', `the value for "${key}" is not JSON: ${(err as Error).message}`);
  }
  if (json === undefined)
    throw new TalonError('BAD_REQUEST', `the value for "${key}" is not JSON (undefined or a function)`);
  const bytes = Buffer.byteLength(json);
  if (bytes > STORE_VALUE_MAX_BYTES)
    throw new TalonError(
      'STORE_LIMIT',
      `the value for "${key}" is ${bytes} bytes of JSON; the limit is ${STORE_VALUE_MAX_BYTES}`,
    );
  return JSON.parse(json);
}

/** a worker's stdout / stderr, line by line (a line is cut at 64 KB) */
function captureLines(stream: NodeJS.ReadableStream | null | undefined, onLine: (line: string) => void): void {
  if (!stream) return;
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.length) onLine(line);
    }
    if (buf.length > 65536) {
      onLine(buf);
      buf = '';
    }
  });
  stream.on('end', () => {
    if (buf.length) onLine(buf);
  });
}

/** a copy of `s` that owns its characters (V8 keeps the parent of a sliced string alive) */
function flat(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

function describeArgs(args: unknown[]): string {
  return (boundedJson(args, 4096) ?? '(arguments)').slice(0, 200);
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isLevel(v: unknown): v is LogLevel {
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error';
}

function isCode(v: unknown): v is ErrorJSON['code'] {
  return typeof v === 'string' && /^[A-Z_]{2,40}$/.test(v);
}
