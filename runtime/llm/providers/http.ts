/**
 * What the remote providers (OpenAI-compatible, Anthropic, Gemini, Ollama) share:
 *   - `guardedFetch`: fetch with a first-byte deadline, an inter-chunk stall deadline, a
 *     total deadline and a response size cap; every failure becomes a TalonError with an
 *     LLM_* code (see runtime/llm/types.ts), the caller's AbortSignal rejects with its reason;
 *   - `httpError`: HTTP status → error code (401/403 LLM_AUTH, 402 LLM_BILLING, 429
 *     LLM_RATE_LIMITED + details.retryAfterMs, 5xx LLM_UNAVAILABLE, other 4xx LLM_BAD_REQUEST
 *     with the vendor's message);
 *   - `sseEvents`: a WHATWG server-sent-events parser (LF, CRLF or CR line ends);
 *   - `finishStream`: turns a provider's raw stream into the ChatChunk contract (text and
 *     tool calls, then exactly one `done`; no token → LLM_BAD_RESPONSE; an error after output
 *     reached the caller carries details.partial = true);
 *   - `redact`: API keys never appear in an error message or detail.
 */
import { TalonError, type ErrorCode } from '../../core/errors.ts';
import type { ChatChunk, ChatResult, ToolCall, Usage } from '../types.ts';

export interface ProviderTimeouts {
  /** request sent → response headers (covers connect and, for non-streamed calls, the whole generation) */
  firstByteMs?: number;
  /** longest silence between two body chunks (and between headers and the first chunk) */
  stallMs?: number;
  /** whole call, headers to last byte: a body that never ends */
  totalMs?: number;
}

export interface RemoteProviderOptions {
  /** instance name from the config */
  name: string;
  baseUrl: string;
  /** handed in by the kernel; never logged, redacted from every error */
  apiKey?: string;
  /** default chat model */
  model: string;
  /** default embedding model (falls back to `model`) */
  embedModel?: string;
  timeouts?: ProviderTimeouts;
  /** cap on one response body (default 8 MiB); a stream may carry up to 4× that */
  maxResponseBytes?: number;
  /** extra request headers (an OpenRouter referer, a proxy's token) */
  headers?: Record<string, string>;
  /** injectable for tests; defaults to globalThis.fetch */
  fetch?: typeof fetch;
  /** injectable clock (Retry-After as an HTTP date) */
  now?: () => number;
}

export const DEFAULT_TIMEOUTS: Required<ProviderTimeouts> = {
  firstByteMs: 120_000,
  stallMs: 60_000,
  totalMs: 600_000,
};

export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// redaction

const KEY_SHAPES: RegExp[] = [
  /\bsk-[A-Za-z0-9_\-*.]{6,}/g, // OpenAI, Anthropic (sk-ant-…), OpenRouter (sk-or-…)
  /\bAIza[0-9A-Za-z_-]{10,}/g, // Google API keys
  /\bgsk_[A-Za-z0-9]{10,}/g, // Groq
  /(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/gi,
];

/** removes `secrets` (and anything shaped like a well-known API key) from a text */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  }
  for (const re of KEY_SHAPES)
    out = out.replace(re, (m) => (/^(bearer|basic)\s/i.test(m) ? `${m.split(/\s+/)[0]} [redacted]` : '[redacted]'));
  return out;
}

// ---------------------------------------------------------------------------------------
// errors

/** what the caller needs to build an error: who, and which secrets to keep out of it */
export interface ErrorContext {
  provider: string;
  secrets: readonly (string | undefined)[];
  now?: () => number;
}

export function llmError(
  ctx: ErrorContext,
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): TalonError {
  return new TalonError(code, redact(`${ctx.provider}: ${message}`, ctx.secrets), {
    details: { provider: ctx.provider, ...details },
    cause,
  });
}

/** Retry-After: delay-seconds or an HTTP date → milliseconds from now (undefined when absent or unparsable) */
export function parseRetryAfter(value: string | null | undefined, now: () => number = Date.now): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now());
}

/** the vendor's own error text out of an error body (OpenAI, Anthropic, Gemini, Ollama shapes) */
export function vendorMessage(body: string): { message?: string; type?: string } {
  const trimmed = body.trim();
  if (!trimmed) return {};
  try {
    const j = JSON.parse(trimmed) as Record<string, unknown>;
    const e = j.error;
    if (typeof e === 'string') return { message: e };
    if (e && typeof e === 'object') {
      const eo = e as Record<string, unknown>;
      const type =
        typeof eo.code === 'string'
          ? eo.code
          : typeof eo.type === 'string'
            ? eo.type
            : typeof eo.status === 'string'
              ? eo.status
              : undefined;
      return { message: typeof eo.message === 'string' ? eo.message : undefined, type };
    }
    if (typeof j.message === 'string') return { message: j.message };
    return {};
  } catch {
    return { message: trimmed.slice(0, 300) };
  }
}

const STATUS_TEXT: Record<string, string> = {
  LLM_AUTH: 'the API key was refused',
  LLM_BILLING: 'billing or quota exhausted',
  LLM_RATE_LIMITED: 'rate limited',
  LLM_UNAVAILABLE: 'the service failed',
  LLM_BAD_REQUEST: 'the request was refused',
  LLM_TIMEOUT: 'the service timed out',
};

/** HTTP status (+ body, headers) → a TalonError with the documented LLM_* code */
export function httpError(ctx: ErrorContext, status: number, body: string, headers: Headers): TalonError {
  const { message, type } = vendorMessage(body);
  let code: ErrorCode;
  if (status === 401 || status === 403) code = 'LLM_AUTH';
  else if (status === 402) code = 'LLM_BILLING';
  else if (status === 429) code = type === 'insufficient_quota' ? 'LLM_BILLING' : 'LLM_RATE_LIMITED';
  else if (status === 408) code = 'LLM_TIMEOUT';
  else if (status >= 500) code = 'LLM_UNAVAILABLE';
  else if (status >= 400) code = 'LLM_BAD_REQUEST';
  else code = 'LLM_BAD_RESPONSE';
  const details: Record<string, unknown> = { status };
  if (type) details.vendorCode = type;
  if (code === 'LLM_RATE_LIMITED') {
    const ms = parseRetryAfter(headers.get('retry-after'), ctx.now);
    if (ms !== undefined) details.retryAfterMs = ms;
  }
  const what = STATUS_TEXT[code] ?? 'unexpected status';
  const vendor = message ? `: ${message.slice(0, 500)}` : '';
  return llmError(ctx, code, `HTTP ${status}, ${what}${vendor}`, details);
}

/** a fetch/network failure (not an HTTP status) → LLM_UNAVAILABLE or LLM_TIMEOUT */
export function networkError(ctx: ErrorContext, err: unknown, phase: 'connect' | 'body'): TalonError {
  if (err instanceof TalonError) return err;
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const code = cause?.code ?? (err as { code?: string } | undefined)?.code;
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return llmError(ctx, 'LLM_TIMEOUT', `no answer in time (${code})`, { phase });
  }
  const why = cause?.message ?? (err instanceof Error ? err.message : String(err));
  const text =
    phase === 'connect' ? `cannot reach the service (${code ?? why})` : `the connection was cut mid-response (${why})`;
  return llmError(ctx, 'LLM_UNAVAILABLE', text, { phase, ...(code ? { errno: code } : {}) });
}

// ---------------------------------------------------------------------------------------
// fetch with deadlines

export interface GuardOptions extends ErrorContext {
  timeouts?: ProviderTimeouts;
  maxBytes?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/**
 * fetch with deadlines. Resolves with an ok Response whose body enforces the stall and total
 * deadlines and the size cap (the body stream errors with a TalonError); a non-2xx status
 * rejects with `httpError`. A caller abort rejects with `signal.reason`.
 */
export async function guardedFetch(url: string, init: RequestInit, opts: GuardOptions): Promise<Response> {
  const t = { ...DEFAULT_TIMEOUTS, ...definedOnly(opts.timeouts ?? {}) };
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const caller = opts.signal;
  caller?.throwIfAborted();
  const ac = new AbortController();
  let failure: unknown;
  const fail = (e: unknown): void => {
    if (failure === undefined) failure = e;
    ac.abort(e);
  };
  const onCallerAbort = (): void => fail(caller!.reason);
  caller?.addEventListener('abort', onCallerAbort, { once: true });
  // a signal in init (a client library's own) ends the exchange too
  const inner = init.signal ?? undefined;
  const onInnerAbort = (): void => fail(inner!.reason);
  if (inner?.aborted) onInnerAbort();
  inner?.addEventListener('abort', onInnerAbort, { once: true });
  const total = setTimeout(
    () => fail(llmError(opts, 'LLM_TIMEOUT', `no complete answer within ${t.totalMs} ms`, { timeout: 'total' })),
    t.totalMs,
  );
  let stall: NodeJS.Timeout | undefined = setTimeout(
    () => fail(llmError(opts, 'LLM_TIMEOUT', `no response within ${t.firstByteMs} ms`, { timeout: 'firstByte' })),
    t.firstByteMs,
  );
  const cleanup = (): void => {
    clearTimeout(total);
    if (stall) clearTimeout(stall);
    stall = undefined;
    caller?.removeEventListener('abort', onCallerAbort);
    inner?.removeEventListener('abort', onInnerAbort);
  };
  // whatever aborts the exchange, no timer outlives it
  ac.signal.addEventListener('abort', cleanup, { once: true });
  const armStall = (): void => {
    if (stall) clearTimeout(stall);
    if (ac.signal.aborted) return;
    stall = setTimeout(
      () => fail(llmError(opts, 'LLM_TIMEOUT', `the stream stalled for ${t.stallMs} ms`, { timeout: 'stall' })),
      t.stallMs,
    );
  };

  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, { ...init, signal: ac.signal });
  } catch (e) {
    cleanup();
    throw failure ?? networkError(opts, e, 'connect');
  }
  const reader = res.body?.getReader();
  let received = 0;
  const limit = init.method === 'GET' ? maxBytes : maxBytes * 4;
  armStall();

  const readAll = async (): Promise<string> => {
    const parts: Uint8Array[] = [];
    if (reader) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.byteLength;
        if (received > maxBytes) throw llmError(opts, 'LLM_BAD_RESPONSE', `the response is over ${maxBytes} bytes`);
        parts.push(value);
        armStall();
      }
    }
    return Buffer.concat(parts).toString('utf8');
  };

  if (!res.ok) {
    let text = '';
    try {
      text = await readAll();
    } catch (e) {
      if (failure !== undefined && caller?.aborted) {
        cleanup();
        throw failure;
      }
      // the status alone decides the code; a body we could not read is not worth more
    } finally {
      cleanup();
      reader?.cancel().catch(() => {});
    }
    throw httpError(opts, res.status, text, res.headers);
  }

  const body = new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        if (!reader) {
          cleanup();
          ctrl.close();
          return;
        }
        try {
          const { done, value } = await reader.read();
          if (done) {
            cleanup();
            ctrl.close();
            return;
          }
          received += value.byteLength;
          if (received > limit) {
            const e = llmError(opts, 'LLM_BAD_RESPONSE', `the response is over ${limit} bytes`);
            fail(e);
            cleanup();
            ctrl.error(e);
            return;
          }
          armStall();
          ctrl.enqueue(value);
        } catch (e) {
          cleanup();
          ctrl.error(failure ?? networkError(opts, e, 'body'));
        }
      },
      cancel() {
        cleanup();
        ac.abort();
        return reader?.cancel().catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** reads a guarded body through; errors are already TalonErrors */
export async function readText(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const parts: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** reads a guarded body as JSON: an empty or malformed body → LLM_BAD_RESPONSE */
export async function readJson(res: Response, ctx: ErrorContext): Promise<Record<string, unknown>> {
  const text = await readText(res);
  if (!text.trim()) throw llmError(ctx, 'LLM_BAD_RESPONSE', 'empty response body (HTTP 200 with nothing in it)');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw llmError(ctx, 'LLM_BAD_RESPONSE', `malformed JSON in the response (${text.length} bytes)`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw llmError(ctx, 'LLM_BAD_RESPONSE', 'the response is not a JSON object');
  return v as Record<string, unknown>;
}

/** parses JSON from a stream event; malformed → LLM_BAD_RESPONSE */
export function parseChunk(data: string, ctx: ErrorContext): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    throw llmError(ctx, 'LLM_BAD_RESPONSE', `malformed JSON chunk in the stream (${data.length} bytes)`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw llmError(ctx, 'LLM_BAD_RESPONSE', 'a stream chunk is not a JSON object');
  return v as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------
// server-sent events

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** WHATWG event-stream parsing over a byte stream; an event is dispatched on a blank line */
export async function* sseEvents(
  body: ReadableStream<Uint8Array> | null,
  ctx: ErrorContext,
  maxEventBytes = 4 * 1024 * 1024,
): AsyncGenerator<SseEvent> {
  if (!body) return;
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  let buf = '';
  let data: string[] = [];
  let event = '';
  let id: string | undefined;
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (;;) {
        const m = /\r\n|\n|\r/.exec(buf);
        if (!m) break;
        // a lone CR at the very end may be the first half of CRLF: wait for more
        if (m[0] === '\r' && m.index === buf.length - 1) break;
        const line = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        if (line === '') {
          if (data.length)
            yield { event: event || 'message', data: data.join('\n'), ...(id !== undefined ? { id } : {}) };
          data = [];
          event = '';
          size = 0;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'data') {
          size += val.length;
          if (size > maxEventBytes)
            throw llmError(ctx, 'LLM_BAD_RESPONSE', `a stream event is over ${maxEventBytes} bytes`);
          data.push(val);
        } else if (field === 'event') event = val;
        else if (field === 'id') id = val;
      }
      if (buf.length > maxEventBytes)
        throw llmError(ctx, 'LLM_BAD_RESPONSE', `a stream line is over ${maxEventBytes} bytes`);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  // an event not terminated by a blank line at EOF is discarded (WHATWG)
}

// ---------------------------------------------------------------------------------------
// the stream contract

/** what a provider's wire parser produces; `end` says the vendor's stream terminated properly */
export type RawChunk =
  | { type: 'text'; text: string }
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'end'; usage: Usage; finishReason: ChatResult['finishReason']; model?: string };

/**
 * Raw wire events → the ChatChunk contract: text and tool calls as they come, then exactly
 * one `done` whose text is their concatenation. A clean end without the vendor's terminal
 * marker is a cut (LLM_UNAVAILABLE); no text and no tool call → LLM_BAD_RESPONSE; any error
 * after output reached the caller carries details.partial = true.
 */
export async function* finishStream(
  ctx: ErrorContext,
  model: string,
  raw: AsyncIterable<RawChunk>,
  signal?: AbortSignal,
): AsyncGenerator<ChatChunk> {
  let text = '';
  const toolCalls: ToolCall[] = [];
  let end: Extract<RawChunk, { type: 'end' }> | undefined;
  try {
    for await (const c of raw) {
      if (c.type === 'text') {
        if (!c.text) continue;
        text += c.text;
        yield c;
      } else if (c.type === 'tool_call') {
        toolCalls.push(c.call);
        yield c;
      } else {
        end = c;
        break;
      }
    }
    if (!end) {
      if (text || toolCalls.length)
        throw llmError(ctx, 'LLM_UNAVAILABLE', 'the stream ended before the end marker (cut mid-way)');
      throw llmError(ctx, 'LLM_BAD_RESPONSE', 'the stream ended without any token');
    }
    if (!text && !toolCalls.length) throw llmError(ctx, 'LLM_BAD_RESPONSE', 'the stream finished without any token');
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    const err = e instanceof TalonError ? e : networkError(ctx, e, 'body');
    if (err instanceof TalonError && (text || toolCalls.length)) {
      const details = { ...(err.details as Record<string, unknown> | undefined), partial: true };
      throw new TalonError(err.code, err.message, { details, cause: err.cause });
    }
    throw err;
  }
  const finishReason = toolCalls.length && end.finishReason === 'stop' ? 'tool_calls' : end.finishReason;
  yield {
    type: 'done',
    result: { provider: ctx.provider, model: end.model ?? model, text, toolCalls, usage: end.usage, finishReason },
  };
}

/** a non-streamed answer with neither text nor tool calls is an error */
export function checkResult(ctx: ErrorContext, r: ChatResult): ChatResult {
  if (!r.text && !r.toolCalls.length)
    throw llmError(ctx, 'LLM_BAD_RESPONSE', 'the answer has no text and no tool call');
  return r;
}

/** tool-call arguments as a JSON string → an object; malformed → LLM_BAD_RESPONSE */
export function parseArguments(ctx: ErrorContext, name: string, args: unknown): Record<string, unknown> {
  if (args === undefined || args === null || args === '') return {};
  let v: unknown = args;
  if (typeof args === 'string') {
    try {
      v = JSON.parse(args);
    } catch {
      throw llmError(ctx, 'LLM_BAD_RESPONSE', `tool call ${name}: arguments are not valid JSON`);
    }
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw llmError(ctx, 'LLM_BAD_RESPONSE', `tool call ${name}: arguments are not a JSON object`);
  return v as Record<string, unknown>;
}

/** a number from a usage field, 0 when absent */
export function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path;
}

/** stream() implemented, chat() as its collection (for providers that only stream) */
export async function collect(chunks: AsyncIterable<ChatChunk>): Promise<ChatResult> {
  for await (const c of chunks) if (c.type === 'done') return c.result;
  throw new TalonError('LLM_BAD_RESPONSE', 'the stream ended without a result');
}
