/** What the supervisor tells the rest of the kernel (runtime API, HTTP, MQTT, CLI) about Hands. */
import type { ErrorJSON } from '../core/errors.ts';
import type { LogLevel } from '../core/hand.ts';

export type HandState = 'stopped' | 'starting' | 'running' | 'backoff' | 'failed' | 'stopping';

export interface HandStatus {
  name: string;
  /** the configured module (built-in id or path) */
  module: string;
  /** from the manifest, once loaded */
  id?: string;
  version?: string;
  description?: string;
  state: HandState;
  /** ms epoch of the last state change */
  since: number;
  /** ms the current worker has been running, 0 when not running */
  uptimeMs: number;
  restarts: number;
  lastError?: ErrorJSON;
  /** when in backoff: ms epoch of the next start */
  nextStartAt?: number;
  /** event-loop utilisation of the worker over the last heartbeat window, 0..1 of one core */
  cpu: number;
  /** the worker's V8 heap, as the kernel reads it */
  heapUsedMb: number;
  heapLimitMb: number;
  /** the Hand's effective heap quota (quotas.heapMb, from its manifest and the config) once it was started */
  heapQuotaMb?: number;
  /**
   * memory outside the V8 heap the kernel reads from V8 (Buffers, ArrayBuffers, typed arrays),
   * and its quota (quotas.externalMb); over it the Hand is stopped with QUOTA_EXCEEDED
   */
  externalMb?: number;
  externalLimitMb?: number;
  /**
   * published: accepted and sent to the bus; received: delivered to the Hand; dropped: over
   * the message quota (shed by the worker or the kernel); denied: refused by a grant check;
   * malformed: deliveries dropped because the payload was not valid UTF-8
   */
  messages: { published: number; received: number; dropped: number; denied: number; malformed: number };
  /** exceptions thrown by the Hand's handlers and timers (caught, logged, not fatal) */
  handlerErrors: number;
  /** log lines dropped because the Hand logged faster than its log rate */
  logsDropped: number;
  /** fields the worker sent that were cut to size (log text and data, audit subjects, error messages) */
  truncated?: number;
  /** audit entries of the Hand's making held back by its per-second budget (summed up as audit.suppressed) */
  auditSuppressed?: number;
  /**
   * its network grant, once started: the hosts ctx.fetch may reach, and `raw` (the worker runs
   * with --allow-net: raw sockets to ALL of the network, no host list)
   */
  network?: { hosts: string[]; raw: boolean };
  /** `on-demand`: started by a job, the API or a task-inbox message, stopped when idle; shown for such Hands and pools */
  mode?: 'always' | 'on-demand';
  /**
   * an on-demand Hand: `armed` while a message to its task inbox starts it (not after a person's stop),
   * `queued` the inbox messages held until it subscribes
   */
  onDemand?: { armed: boolean; idleStopMs: number; queued: number };
  /**
   * a pooled Hand (`instances: {min, max}`): workers running, its bounds, task-inbox messages waiting
   * because every worker has `perInstance` in flight, and those delivered and not yet finished
   */
  instances?: { running: number; min: number; max: number; queued: number; inFlight: number };
}

export interface LogLine {
  ts: number;
  hand: string;
  level: LogLevel;
  msg: string;
  data?: Record<string, unknown>;
}

/** Who asked: written into every audit entry a state change makes. */
export interface Caller {
  /** `cli`, `http:<user>`, `mqtt:<clientId>`, `kernel` */
  actor: string;
}

/**
 * A kernel service a Hand reaches with `ctx.call(method, ...args)`. The supervisor checks
 * the Hand exists and is running; the service checks the Hand's grants (it receives them)
 * and throws TalonError('CAPABILITY_DENIED') to refuse.
 */
export interface HandCaller {
  name: string;
  grants: import('../core/hand.ts').Capabilities;
}
export type KernelService = (hand: HandCaller, args: unknown[]) => Promise<unknown>;
