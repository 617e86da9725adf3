/**
 * Ollama through its official client (`ollama`, class Ollama with our host and our fetch):
 * /api/chat (NDJSON stream, `done: true` ends it; tools; `format` = a JSON Schema),
 * /api/embed, /api/tags, /api/pull (progress as an async iterable).
 *
 * The client is given a per-call fetch built on guardedFetch: deadlines, size cap, status
 * mapping and the caller's AbortSignal (the client itself passes no signal on non-streamed
 * calls). For streamed calls that fetch also checks the NDJSON: a malformed line errors the
 * body with LLM_BAD_RESPONSE (the client would log it and skip it), an `{"error": …}` line
 * errors it with LLM_UNAVAILABLE, and a clean end without a terminal line (`done: true`,
 * `status: "success"`) with LLM_UNAVAILABLE (cut). The client's own console output paths
 * (non-2xx bodies, bad lines) are therefore never reached.
 */
import {
  Ollama,
  type ChatRequest as OllamaChatRequest,
  type Message as OllamaMessage,
  type Tool as OllamaTool,
} from 'ollama';
import type { ChatChunk, ChatMessage, ChatRequest, ChatResult, LlmProvider, ToolCall } from '../types.ts';
import {
  checkResult,
  finishStream,
  guardedFetch,
  llmError,
  num,
  parseArguments,
  type ErrorContext,
  type RawChunk,
  type RemoteProviderOptions,
} from './http.ts';
import { TalonError } from '../../core/errors.ts';

export interface PullProgress {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

export interface OllamaProviderOptions extends RemoteProviderOptions {
  /** how long Ollama keeps the model loaded after a call (`5m`, seconds, -1) */
  keepAlive?: string | number;
}

export class OllamaProvider implements LlmProvider {
  readonly name: string;
  readonly kind = 'ollama';
  readonly local: boolean;
  readonly #o: OllamaProviderOptions;
  readonly #ctx: ErrorContext;

  constructor(opts: OllamaProviderOptions) {
    this.name = opts.name;
    this.#o = opts;
    this.#ctx = { provider: opts.name, secrets: [opts.apiKey], ...(opts.now ? { now: opts.now } : {}) };
    // data stays on the device only when the server is on this device
    this.local = isLoopback(opts.baseUrl);
  }

  /** a client for one call: its fetch carries the call's signal and deadlines */
  #client(signal?: AbortSignal): Ollama {
    const guarded = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
      this.#guardedFetch(String(input instanceof Request ? input.url : input), init, signal);
    const headers: Record<string, string> = { ...this.#o.headers };
    if (this.#o.apiKey) headers.authorization = `Bearer ${this.#o.apiKey}`;
    return new Ollama({ host: this.#o.baseUrl, fetch: guarded as typeof fetch, headers });
  }

  async #guardedFetch(url: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    const res = await guardedFetch(url, init, {
      ...this.#ctx,
      timeouts: this.#o.timeouts,
      maxBytes: this.#o.maxResponseBytes,
      signal,
      fetch: this.#o.fetch,
    });
    let streamed = false;
    try {
      streamed = typeof init.body === 'string' && (JSON.parse(init.body) as { stream?: unknown }).stream === true;
    } catch {
      /* not JSON: not a stream request */
    }
    if (!streamed || !res.body) return res;
    return new Response(ndjsonChecked(res.body, this.#ctx), { status: res.status, headers: res.headers });
  }

  body(req: ChatRequest, stream: boolean): OllamaChatRequest & { stream: boolean } {
    const b: OllamaChatRequest & { stream: boolean } = {
      model: req.model ?? this.#o.model,
      messages: toWire(req.messages),
      stream,
    };
    if (req.tools?.length) {
      b.tools = req.tools.map(
        (t) =>
          ({
            type: 'function',
            function: { name: t.name, description: t.description, parameters: t.parameters },
          }) as OllamaTool,
      );
    }
    if (req.jsonSchema) b.format = req.jsonSchema;
    const options: Record<string, number> = {};
    if (req.maxTokens !== undefined) options.num_predict = req.maxTokens;
    if (req.temperature !== undefined) options.temperature = req.temperature;
    if (Object.keys(options).length) b.options = options;
    if (this.#o.keepAlive !== undefined) b.keep_alive = this.#o.keepAlive;
    return b;
  }

  async chat(req: ChatRequest): Promise<ChatResult> {
    const model = req.model ?? this.#o.model;
    const r = await this.#call(
      () => this.#client(req.signal).chat(this.body(req, false) as OllamaChatRequest & { stream: false }),
      req.signal,
    );
    if (!r || typeof r !== 'object' || !r.message)
      throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', 'the answer has no message');
    const calls = toolCalls(this.#ctx, r.message.tool_calls, { n: 0 });
    return checkResult(this.#ctx, {
      provider: this.name,
      model: typeof r.model === 'string' ? r.model : model,
      text: typeof r.message.content === 'string' ? r.message.content : '',
      toolCalls: calls,
      usage: { inputTokens: num(r.prompt_eval_count), outputTokens: num(r.eval_count) },
      finishReason: calls.length ? 'tool_calls' : r.done_reason === 'length' ? 'length' : 'stop',
    });
  }

  stream(req: ChatRequest): AsyncIterable<ChatChunk> {
    return finishStream(this.#ctx, req.model ?? this.#o.model, this.#raw(req), req.signal);
  }

  async *#raw(req: ChatRequest): AsyncGenerator<RawChunk> {
    const it = await this.#call(
      () => this.#client(req.signal).chat(this.body(req, true) as OllamaChatRequest & { stream: true }),
      req.signal,
    );
    const ids = { n: 0 };
    try {
      for await (const part of it) {
        const msg = part.message ?? ({} as OllamaMessage);
        if (typeof msg.content === 'string' && msg.content) yield { type: 'text', text: msg.content };
        for (const call of toolCalls(this.#ctx, msg.tool_calls, ids)) yield { type: 'tool_call', call };
        if (part.done) {
          yield {
            type: 'end',
            usage: { inputTokens: num(part.prompt_eval_count), outputTokens: num(part.eval_count) },
            finishReason: part.done_reason === 'length' ? 'length' : 'stop',
            ...(typeof part.model === 'string' ? { model: part.model } : {}),
          };
          return;
        }
      }
    } catch (e) {
      throw this.#map(e, req.signal);
    } finally {
      it.abort();
    }
  }

  async embed(input: string[], model?: string): Promise<number[][]> {
    const r = await this.#call(() =>
      this.#client().embed({ model: model ?? this.#o.embedModel ?? this.#o.model, input }),
    );
    const e = Array.isArray(r?.embeddings) ? r.embeddings : [];
    if (e.length !== input.length)
      throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', `asked for ${input.length} embeddings, got ${e.length}`);
    for (const v of e) {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'number'))
        throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', 'an embedding is not an array of numbers');
    }
    return e;
  }

  async models(): Promise<string[]> {
    const r = await this.#call(() => this.#client().list());
    return (Array.isArray(r?.models) ? r.models : []).map((m) => String(m.name ?? m.model));
  }

  /** pulls a model; yields Ollama's progress lines, ends after `status: "success"` */
  async *pull(model: string, opts: { signal?: AbortSignal; insecure?: boolean } = {}): AsyncGenerator<PullProgress> {
    const it = await this.#call(
      () => this.#client(opts.signal).pull({ model, stream: true, ...(opts.insecure ? { insecure: true } : {}) }),
      opts.signal,
    );
    try {
      for await (const p of it) {
        yield {
          status: String(p.status),
          ...(typeof p.digest === 'string' ? { digest: p.digest } : {}),
          ...(typeof p.total === 'number' ? { total: p.total } : {}),
          ...(typeof p.completed === 'number' ? { completed: p.completed } : {}),
        };
      }
    } catch (e) {
      throw this.#map(e, opts.signal);
    } finally {
      it.abort();
    }
  }

  async #call<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.#map(e, signal);
    }
  }

  /** our fetch raises TalonErrors; anything else the client raised is a protocol surprise */
  #map(e: unknown, signal?: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason;
    if (e instanceof TalonError) return e;
    if (e instanceof SyntaxError) return llmError(this.#ctx, 'LLM_BAD_RESPONSE', 'malformed JSON in the response');
    const msg = e instanceof Error ? e.message : String(e);
    return llmError(this.#ctx, 'LLM_BAD_RESPONSE', `unexpected response: ${msg.slice(0, 200)}`);
  }
}

function toWire(messages: ChatMessage[]): OllamaMessage[] {
  const names = new Map<string, string>();
  for (const m of messages) for (const c of m.toolCalls ?? []) names.set(c.id, c.name);
  return messages.map((m) => {
    const w: OllamaMessage = { role: m.role, content: m.content };
    if (m.toolCalls?.length)
      w.tool_calls = m.toolCalls.map((c) => ({ function: { name: c.name, arguments: c.arguments } }));
    if (m.role === 'tool' && m.toolCallId) {
      const name = names.get(m.toolCallId);
      if (name) w.tool_name = name;
    }
    return w;
  });
}

function toolCalls(ctx: ErrorContext, calls: unknown, ids: { n: number }): ToolCall[] {
  if (!Array.isArray(calls)) return [];
  return (calls as Record<string, unknown>[]).map((tc) => {
    const fn = (tc.function ?? {}) as Record<string, unknown>;
    const name = String(fn.name ?? '');
    return {
      id: typeof tc.id === 'string' && tc.id ? tc.id : `call_${ids.n++}`,
      name,
      arguments: parseArguments(ctx, name, fn.arguments),
    };
  });
}

/**
 * validates an NDJSON body line by line (see the header comment). Pull-driven, one source
 * chunk per read: the lines before a bad one still reach the client, the error comes on the
 * read after them (a TransformStream would drop what it had queued when it errors).
 */
function ndjsonChecked(body: ReadableStream<Uint8Array>, ctx: ErrorContext): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  const encoder = new TextEncoder();
  let buf = '';
  let terminal = false;
  let lines = 0;
  let pending: unknown;
  const check = (line: string): void => {
    if (!line.trim()) return;
    lines++;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw llmError(ctx, 'LLM_BAD_RESPONSE', `malformed JSON line in the stream (${line.length} bytes)`);
    }
    if (!v || typeof v !== 'object') throw llmError(ctx, 'LLM_BAD_RESPONSE', 'a stream line is not a JSON object');
    const o = v as Record<string, unknown>;
    if (typeof o.error === 'string')
      throw llmError(ctx, 'LLM_UNAVAILABLE', `error in the stream: ${o.error.slice(0, 300)}`);
    if (o.done === true || o.status === 'success') terminal = true;
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        if (pending !== undefined) {
          ctrl.error(pending);
          return;
        }
        try {
          const { done, value } = await reader.read();
          if (done) {
            buf += decoder.decode();
            check(buf);
            if (!lines) throw llmError(ctx, 'LLM_BAD_RESPONSE', 'empty stream (HTTP 200 with nothing in it)');
            if (!terminal)
              throw llmError(ctx, 'LLM_UNAVAILABLE', 'the stream ended before its last line (cut mid-way)');
            ctrl.close();
            return;
          }
          buf += decoder.decode(value, { stream: true });
          const parts = buf.split('\n');
          buf = parts.pop() ?? '';
          const good: string[] = [];
          for (const l of parts) {
            try {
              check(l);
              good.push(l);
            } catch (e) {
              pending = e;
              break;
            }
          }
          if (good.length) ctrl.enqueue(encoder.encode(good.map((l) => `${l}\n`).join('')));
          else if (pending !== undefined) ctrl.error(pending);
        } catch (e) {
          ctrl.error(e);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

function isLoopback(baseUrl: string): boolean {
  try {
    const h = new URL(baseUrl).hostname;
    return h === 'localhost' || h === '::1' || h === '[::1]' || /^127\./.test(h);
  } catch {
    return false;
  }
}
