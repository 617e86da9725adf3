/**
 * The messages between the kernel (supervisor) and a Hand's worker, over the worker's
 * parentPort. One discriminant `t` per message kind. The hot paths (publish, deliver) carry
 * flat arrays, one batch per event-loop tick, so a Hand publishing thousands of messages a
 * second costs one structured clone per tick rather than one per message.
 *
 * The kernel trusts nothing a worker sends: every message is re-checked there (grants,
 * quotas, sizes). The worker pre-checks grants and quotas only to fail fast and to spare the
 * kernel the traffic.
 */
import type { Capabilities, LogLevel, Quotas } from './hand.ts';
import type { ErrorJSON } from './errors.ts';

/** What the kernel hands a worker at spawn (`workerData`). */
export type WorkerData =
  | {
      mode: 'manifest';
      modulePath: string;
    }
  | {
      mode: 'run';
      name: string;
      deviceId: string;
      modulePath: string;
      settings: Record<string, unknown>;
      /** effective grants, topics already absolute */
      grants: Capabilities;
      quotas: Quotas;
      heartbeatMs: number;
    };

// ---- worker → kernel --------------------------------------------------------------------

/** manifest mode: the module's manifest (or why it could not be read) */
export interface ManifestMsg {
  t: 'manifest';
  manifest: unknown;
}
/** run mode: start(ctx) resolved */
export interface StartedMsg {
  t: 'started';
}
/** run mode: stop() finished (or threw; the error is logged); the kernel may terminate now */
export interface StoppedMsg {
  t: 'stopped';
}
/** something failed: in the module load, start(), stop(), or a handler (counted, not fatal) */
export interface ErrorMsg {
  t: 'error';
  phase: 'load' | 'start' | 'stop' | 'handler';
  error: ErrorJSON;
  stack?: string;
}
export interface HeartbeatMsg {
  t: 'hb';
  heapUsed: number;
  heapLimit: number;
  handlerErrors: number;
}
export interface LogMsg {
  t: 'log';
  level: LogLevel;
  msg: string;
  data?: Record<string, unknown>;
}
/**
 * One tick's publishes, flat: [topic, payload, flags, topic, payload, flags, ...];
 * topic absolute; payload a string or bytes; flags = qos | (retain ? 4 : 0).
 * `dropped`: publishes the worker shed itself against its own token bucket this tick.
 */
export interface PublishBatchMsg {
  t: 'pub';
  m: Array<string | Uint8Array | number>;
  dropped: number;
}
/**
 * the worker refused a call itself (outside the grant): the kernel audits it. `suppressed`:
 * further refusals the worker counted but did not send (it sends at most a few per second)
 */
export interface DeniedMsg {
  t: 'denied';
  action: string;
  subject: string;
  suppressed?: number;
}
/** an RPC: store.*, bus.subscribe / bus.unsubscribe, or a kernel service by name */
export interface CallMsg {
  t: 'call';
  id: number;
  method: string;
  args: unknown[];
}
/** a piece of the answer to an `ask`; `end` closes it (with `error` when chat() failed) */
export interface AnswerMsg {
  t: 'answer';
  id: number;
  text?: string;
  end?: boolean;
  error?: ErrorJSON;
}
/**
 * The answer to a `request`: the handler's value as JSON text (serialized once, in the worker,
 * under REQUEST_ANSWER_MAX: the kernel checks the length before it parses), or its error.
 */
export type ReplyMsg =
  | { t: 'reply'; id: number; ok: true; json: string }
  | { t: 'reply'; id: number; ok: false; error: ErrorJSON };

/**
 * deliveries of a `track` batch whose handlers finished (returned, or their promise settled), coalesced
 * per tick: the kernel counts a routed task as in flight until then (runtime/supervisor/pool.ts)
 */
export interface DoneMsg {
  t: 'done';
  n: number;
}

export type WorkerToKernel =
  | DoneMsg
  | ManifestMsg
  | StartedMsg
  | StoppedMsg
  | ErrorMsg
  | HeartbeatMsg
  | LogMsg
  | PublishBatchMsg
  | DeniedMsg
  | CallMsg
  | AnswerMsg
  | ReplyMsg;

// ---- kernel → worker --------------------------------------------------------------------

/** abort ctx.signal, clear timers, call stop(), answer `stopped` */
export interface StopMsg {
  t: 'stop';
}
export type ResultMsg =
  | { t: 'result'; id: number; ok: true; value: unknown }
  | { t: 'result'; id: number; ok: false; error: ErrorJSON };
/**
 * One tick's deliveries, flat: [subId, topic, text, retain, subId, topic, text, retain, ...];
 * topic relative to the device root (leading `/` when outside it); payloads are valid UTF-8
 * (the kernel drops and counts the rest).
 */
export interface DeliverBatchMsg {
  t: 'deliver';
  m: Array<number | string | boolean>;
  /** report each entry's handler finishing with `done` (routed task-inbox messages) */
  track?: true;
}

/** talk to the Hand: call its chat(messages, ctx); the answer comes back as `answer` messages */
export interface AskMsg {
  t: 'ask';
  id: number;
  messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string }>;
}
/** the asker went away: abort that chat's signal */
export interface AskCancelMsg {
  t: 'ask-cancel';
  id: number;
}
/**
 * A typed request from the kernel (a Hand's surface: hands/sdk/surface.ts): the Hand's
 * handler for `kind` answers with a `reply`. The kernel checked `body` against the kind's
 * request schema before it sent it; the worker checks that the Hand has a handler for `kind`.
 */
export interface RequestMsg {
  t: 'request';
  id: number;
  kind: string;
  body: unknown;
}

export type KernelToWorker = StopMsg | ResultMsg | DeliverBatchMsg | AskMsg | AskCancelMsg | RequestMsg;

/** methods the kernel answers itself; anything else goes to a registered KernelService */
export const BUILTIN_METHODS = [
  'bus.subscribe',
  'bus.unsubscribe',
  'store.get',
  'store.put',
  'store.del',
  'store.list',
  'store.batch',
  'audit.record',
] as const;

export const RETAIN_FLAG = 4;

/** the longest answer to a `request`, characters of JSON: cut in the worker, checked again in the kernel */
export const REQUEST_ANSWER_MAX = 8 * 1024 * 1024;
/** the codes a Hand's request handler may answer with; any other is INTERNAL to the caller */
export const REQUEST_ERROR_CODES = ['BAD_REQUEST', 'NOT_FOUND', 'CONFLICT'] as const;
