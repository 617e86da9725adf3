/**
 * What a Hand is, as seen from inside its worker. Kept free of runtime imports so the
 * kernel, the SDK and third-party Hands can all share it.
 */

/** What a Hand may do. Topic filters are relative to `talon/<deviceId>/` unless they start with `/`. */
export interface Capabilities {
  bus: { publish: string[]; subscribe: string[] };
  /** sensor ids or globs (`cpu.*`) */
  sensors: string[];
  /** BCM pin numbers */
  gpio: number[];
  llm: { tokensPerHour: number } | null;
  /**
   * what the Hand may reach through the kernel (`ctx.fetch`), and whether its worker gets raw
   * sockets; written as a host list or { hosts, raw, … } (NetworkCapability), normalized here
   */
  network: NetworkGrant;
  /** extra filesystem paths the worker may read / write (Node permission model) */
  fs: { read: string[]; write: string[] };
  /** programs the `shell.exec` tool may run for the Hand (every command of a pipeline is checked) */
  shell: string[];
  /** one command line's limits under the shell grant */
  shellLimits: { timeoutMs: number; maxOutputBytes: number };
  /** the tools the Hand may call (names or globs), and those whose every call waits for a person */
  tools: {
    allow: string[];
    approve: string[];
    /** destructive tools this Hand calls without a person (granted by its config entry only), unless in `approve` */
    unattended?: string[];
  };
  /** sealed secrets the Hand may read (`ctx.call('secrets.get', name)`), names or globs */
  secrets: string[];
  /** may relay a person's answer to an approval request (`ctx.call('approvals.decide', …)`) */
  approvals: boolean;
}

/** A network grant, normalized: host entries in canonical form, limits filled in. */
export interface NetworkGrant {
  hosts: string[];
  raw: boolean;
  maxResponseBytes: number;
  timeoutMs: number;
}

import type { HandToolInfo, HandToolResult } from './tool-shapes.ts';
export type * from './tool-shapes.ts';

// The manifest's types are derived from its JSON Schema (./manifest-schema.ts, documented there).
import type { HandManifest } from './manifest-schema.ts';
export type {
  HandManifest,
  ValidatedManifest,
  Quotas,
  DeclaredCapabilities,
  NetworkCapability,
} from './manifest-schema.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A Hand's log: a function of (level, msg, data?) with a method per level. */
export interface HandLog {
  (level: LogLevel, msg: string, data?: Record<string, unknown>): void;
  debug(msg: string, data?: Record<string, unknown>): void;
  info(msg: string, data?: Record<string, unknown>): void;
  warn(msg: string, data?: Record<string, unknown>): void;
  error(msg: string, data?: Record<string, unknown>): void;
}

export interface BusMessageIn {
  /** topic relative to the device root, or absolute with a leading `/` when outside it */
  topic: string;
  payload: Buffer;
  /** payload as UTF-8 text (only delivered when the payload is valid UTF-8) */
  text: string;
  /** payload parsed as JSON when it is JSON, else undefined */
  json: unknown;
  retain: boolean;
}

export interface HandStore {
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** `{ sync: true }`: on disk (fsync) when it resolves, so a power cut right after keeps it */
  put(key: string, value: unknown, opts?: { sync?: boolean }): Promise<void>;
  del(key: string): Promise<void>;
  /**
   * keys and values in key order (or reverse), optionally under a prefix; at most 1000 at once: the next page starts
   * `after` the last key of the one before
   */
  list<T = unknown>(opts?: {
    prefix?: string;
    limit?: number;
    reverse?: boolean;
    after?: string;
  }): Promise<Array<[string, T]>>;
  /** up to 1000 writes that land together, all or none; `{ sync: true }` as for put */
  batch(ops: Array<HandStoreOp>, opts?: { sync?: boolean }): Promise<void>;
}

export type HandStoreOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

export interface HandContext {
  readonly name: string;
  readonly deviceId: string;
  readonly settings: Readonly<Record<string, unknown>>;
  /** what the Hand may do (its effective grants; topics absolute), to check a plan before acting on it */
  readonly grants: Readonly<Capabilities>;
  /** aborted when the kernel asks the Hand to stop */
  readonly signal: AbortSignal;
  /** `ctx.log('warn', msg, data?)`, or the same as `ctx.log.warn(msg, data?)` (and .debug, .info, .error) */
  log: HandLog;
  bus: {
    /** QoS 0 publishes are fire-and-forget; throws CAPABILITY_DENIED at once when outside the grant */
    publish(topic: string, payload: unknown, opts?: { qos?: 0 | 1 | 2; retain?: boolean }): void;
    subscribe(filter: string, handler: (msg: BusMessageIn) => void | Promise<void>): Promise<() => Promise<void>>;
  };
  store: HandStore;
  /**
   * an entry in the signed audit log of the Hand's own doing (a scheduled run, a message sent): actor `hand:<name>`,
   * action `<manifest id>.<action>`; within the Hand's audit budget (entries over it are summed up, not lost silently)
   */
  audit(
    action: string,
    subject: string,
    opts?: { decision?: 'ok' | 'error' | 'info'; detail?: Record<string, unknown> },
  ): Promise<void>;
  timers: {
    every(ms: number, fn: () => void | Promise<void>): () => void;
    after(ms: number, fn: () => void | Promise<void>): () => void;
  };
  /** call a kernel service by name (sensors.read, llm.chat, ...); checked against the grants */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  /**
   * fetch() through the kernel, under the Hand's `network` grant: the host list, DNS resolved
   * and pinned by the kernel (a granted name may not lead to a loopback or LAN address that is
   * not granted), every redirect checked again, the body streamed and capped at the grant's
   * maxResponseBytes, the whole request within its timeoutMs. A refusal is CAPABILITY_DENIED;
   * failures are NET_DNS, NET_CONNECT, NET_TIMEOUT, NET_TOO_LARGE, NET_REDIRECT. Read or cancel
   * every body you do not need: an unread one holds one of the Hand's open requests.
   */
  fetch(input: string | URL | { url: string }, init?: HandFetchInit): Promise<Response>;
  /** the LLM router, under the Hand's `llm` grant and token budget (a shorthand for ctx.call('llm.chat', …)) */
  llm: {
    chat(request: HandChatRequest, opts?: { purpose?: string; allowCloud?: boolean }): Promise<HandChatResult>;
  };
  /**
   * the kernel's tools (runtime/tools), under the Hand's `tools` grant: each call is validated against the tool's
   * schema, checked against the grant the tool needs (network, shell, sensors, …), approved by a person when the tool
   * is destructive or in the grant's `approve` list, run within its timeout, and audited
   */
  tools: {
    list(): Promise<HandToolInfo[]>;
    call<O = unknown>(name: string, input?: Record<string, unknown>): Promise<HandToolResult<O>>;
  };
  /** the agent loop: the model gets the tools' schemas and acts through them until it answers or a budget ends it */
  agent: {
    run<A = unknown>(opts: HandAgentRunOptions): Promise<HandAgentRunResult<A>>;
  };
}

export interface HandAgentRunOptions {
  /** what to achieve, in words */
  goal: string;
  /** the tools the model may use (names or globs), within the Hand's `tools` grant */
  tools: string[];
  system?: string;
  /** model turns (default 8, at most 64) */
  maxSteps?: number;
  /** tokens in and out over the whole run (default 8000) */
  maxTokens?: number;
  /** the whole run (default 120 000 ms) */
  deadlineMs?: number;
  /** the final answer must match this JSON Schema (repaired once, then AGENT_BAD_CALL) */
  jsonSchema?: Record<string, unknown>;
  /** each tool result fed back to the model is cut to this (default 4000 characters) */
  maxResultChars?: number;
}

export interface HandAgentRunResult<A = unknown> {
  runId: string;
  /** the answer: parsed JSON with a jsonSchema, else the text */
  answer: A;
  text: string;
  steps: number;
  usage: { inputTokens: number; outputTokens: number };
}

/** fetch()'s RequestInit, as far as ctx.fetch takes it, and two limits below the grant's */
export interface HandFetchInit {
  method?: string;
  headers?: Record<string, string> | Array<[string, string]> | Iterable<[string, string]>;
  /** string, bytes, URLSearchParams, Blob, FormData or a ReadableStream (read whole, then sent) */
  body?: unknown;
  redirect?: 'follow' | 'manual' | 'error';
  signal?: AbortSignal;
  /** at most the grant's timeoutMs */
  timeoutMs?: number;
  /** at most the grant's maxResponseBytes */
  maxResponseBytes?: number;
}

/** what a Hand sends to the LLM router (runtime/llm/types.ts ChatRequest, without the signal) */
export interface HandChatRequest {
  messages: Array<{ role: 'system' | 'user' | 'assistant' | 'tool'; content: string; toolCallId?: string }>;
  model?: string;
  tools?: Array<{ name: string; description: string; parameters: Record<string, unknown> }>;
  jsonSchema?: Record<string, unknown>;
  maxTokens?: number;
  temperature?: number;
}

export interface HandChatResult {
  provider: string;
  model: string;
  text: string;
  toolCalls: Array<{ id: string; name: string; arguments: Record<string, unknown> }>;
  usage: { inputTokens: number; outputTokens: number };
  finishReason: 'stop' | 'length' | 'tool_calls' | 'error';
}

/** A message of a conversation with a Hand (the web admin's chat page). */
export interface HandChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface HandDefinition {
  manifest: HandManifest;
  start(ctx: HandContext): void | Promise<void>;
  stop?(): void | Promise<void>;
  /**
   * Optional: answer a person talking to the Hand. Returns the whole answer, or its pieces as
   * they come; `signal` aborts when the asker goes away or the Hand stops.
   */
  chat?(
    messages: HandChatMessage[],
    ctx: HandContext & { signal: AbortSignal },
  ): string | Promise<string> | AsyncIterable<string>;
  /**
   * Optional: the answers to the kernel's typed requests, one function per request kind the
   * Hand's surface declares (hands/sdk/surface.ts; typed there from the kind's schemas). The
   * kernel validated `body` against the kind's schema; a handler throws TalonError with
   * BAD_REQUEST, NOT_FOUND or CONFLICT to refuse (anything else reaches the caller as INTERNAL).
   */
  requests?: Readonly<Record<string, (body: never, ctx: HandContext) => unknown>>;
}
