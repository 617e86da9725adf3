/**
 * OpenAI-compatible chat completions (OpenAI, vLLM, LM Studio, Groq, OpenRouter, Together,
 * Mistral…): POST {baseUrl}/chat/completions, streamed as SSE `data:` lines ending with
 * `data: [DONE]`, usage from `stream_options.include_usage`; tools as `type: function`,
 * streamed `tool_calls` deltas assembled by index; jsonSchema as
 * `response_format: {type: 'json_schema', json_schema: {name, schema, strict: true}}`.
 * Embeddings: POST /embeddings; models: GET /models. `baseUrl` includes the version
 * (`https://api.openai.com/v1`, `http://127.0.0.1:8000/v1`).
 */
import type { ChatChunk, ChatMessage, ChatRequest, ChatResult, LlmProvider, ToolCall } from '../types.ts';
import {
  checkResult,
  finishStream,
  guardedFetch,
  joinUrl,
  llmError,
  num,
  parseArguments,
  parseChunk,
  readJson,
  sseEvents,
  type ErrorContext,
  type RawChunk,
  type RemoteProviderOptions,
} from './http.ts';

export interface OpenAiProviderOptions extends RemoteProviderOptions {
  /** `max_tokens` (most compatible servers) or `max_completion_tokens` (newer OpenAI models) */
  maxTokensParam?: 'max_tokens' | 'max_completion_tokens';
}

const FINISH: Record<string, ChatResult['finishReason']> = {
  stop: 'stop',
  length: 'length',
  tool_calls: 'tool_calls',
  function_call: 'tool_calls',
  content_filter: 'error',
};

export class OpenAiProvider implements LlmProvider {
  readonly name: string;
  readonly kind = 'openai';
  readonly local = false;
  readonly #o: OpenAiProviderOptions;
  readonly #ctx: ErrorContext;

  constructor(opts: OpenAiProviderOptions) {
    this.name = opts.name;
    this.#o = opts;
    this.#ctx = { provider: opts.name, secrets: [opts.apiKey], ...(opts.now ? { now: opts.now } : {}) };
  }

  #headers(): Record<string, string> {
    const h: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      ...this.#o.headers,
    };
    if (this.#o.apiKey) h.authorization = `Bearer ${this.#o.apiKey}`;
    return h;
  }

  #fetch(path: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    return guardedFetch(
      joinUrl(this.#o.baseUrl, path),
      { ...init, headers: this.#headers() },
      {
        ...this.#ctx,
        timeouts: this.#o.timeouts,
        maxBytes: this.#o.maxResponseBytes,
        signal,
        fetch: this.#o.fetch,
      },
    );
  }

  /** the request body for /chat/completions (exported shape, asserted by the wire tests) */
  body(req: ChatRequest, stream: boolean): Record<string, unknown> {
    const b: Record<string, unknown> = { model: req.model ?? this.#o.model, messages: req.messages.map(toWire) };
    if (req.tools?.length) {
      b.tools = req.tools.map((t) => ({
        type: 'function',
        function: { name: t.name, description: t.description, parameters: t.parameters },
      }));
    }
    if (req.jsonSchema) {
      b.response_format = {
        type: 'json_schema',
        json_schema: { name: schemaName(req.jsonSchema), schema: req.jsonSchema, strict: true },
      };
    }
    if (req.maxTokens !== undefined) b[this.#o.maxTokensParam ?? 'max_tokens'] = req.maxTokens;
    if (req.temperature !== undefined) b.temperature = req.temperature;
    if (stream) {
      b.stream = true;
      b.stream_options = { include_usage: true };
    }
    return b;
  }

  async chat(req: ChatRequest): Promise<ChatResult> {
    const model = req.model ?? this.#o.model;
    const res = await this.#fetch(
      '/chat/completions',
      { method: 'POST', body: JSON.stringify(this.body(req, false)) },
      req.signal,
    );
    const j = await readJson(res, this.#ctx);
    const choice = (Array.isArray(j.choices) ? j.choices[0] : undefined) as Record<string, unknown> | undefined;
    if (!choice) throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', 'the answer has no choices');
    const msg = (choice.message ?? {}) as Record<string, unknown>;
    const toolCalls: ToolCall[] = Array.isArray(msg.tool_calls)
      ? (msg.tool_calls as Record<string, unknown>[]).map((tc, i) => {
          const fn = (tc.function ?? {}) as Record<string, unknown>;
          const name = String(fn.name ?? '');
          return {
            id: typeof tc.id === 'string' ? tc.id : `call_${i}`,
            name,
            arguments: parseArguments(this.#ctx, name, fn.arguments),
          };
        })
      : [];
    const usage = (j.usage ?? {}) as Record<string, unknown>;
    return checkResult(this.#ctx, {
      provider: this.name,
      model: typeof j.model === 'string' ? j.model : model,
      text: typeof msg.content === 'string' ? msg.content : '',
      toolCalls,
      usage: { inputTokens: num(usage.prompt_tokens), outputTokens: num(usage.completion_tokens) },
      finishReason: FINISH[String(choice.finish_reason)] ?? 'stop',
    });
  }

  stream(req: ChatRequest): AsyncIterable<ChatChunk> {
    return finishStream(this.#ctx, req.model ?? this.#o.model, this.#raw(req), req.signal);
  }

  async *#raw(req: ChatRequest): AsyncGenerator<RawChunk> {
    const res = await this.#fetch(
      '/chat/completions',
      { method: 'POST', body: JSON.stringify(this.body(req, true)) },
      req.signal,
    );
    const calls = new Map<number, { id: string; name: string; args: string }>();
    let finish: ChatResult['finishReason'] | undefined;
    let usage = { inputTokens: 0, outputTokens: 0 };
    let model: string | undefined;
    for await (const ev of sseEvents(res.body, this.#ctx)) {
      if (ev.data === '[DONE]') {
        for (const [i, c] of [...calls.entries()].sort((a, b) => a[0] - b[0])) {
          yield {
            type: 'tool_call',
            call: { id: c.id || `call_${i}`, name: c.name, arguments: parseArguments(this.#ctx, c.name, c.args) },
          };
        }
        yield { type: 'end', usage, finishReason: finish ?? 'stop', ...(model ? { model } : {}) };
        return;
      }
      const j = parseChunk(ev.data, this.#ctx);
      if (j.error) {
        const e = j.error as Record<string, unknown>;
        throw llmError(
          this.#ctx,
          'LLM_UNAVAILABLE',
          `error in the stream: ${String(e.message ?? JSON.stringify(e)).slice(0, 300)}`,
        );
      }
      if (typeof j.model === 'string') model = j.model;
      if (j.usage && typeof j.usage === 'object') {
        const u = j.usage as Record<string, unknown>;
        usage = { inputTokens: num(u.prompt_tokens), outputTokens: num(u.completion_tokens) };
      }
      for (const choice of (Array.isArray(j.choices) ? j.choices : []) as Record<string, unknown>[]) {
        const delta = (choice.delta ?? {}) as Record<string, unknown>;
        if (typeof delta.content === 'string' && delta.content) yield { type: 'text', text: delta.content };
        for (const tc of (Array.isArray(delta.tool_calls) ? delta.tool_calls : []) as Record<string, unknown>[]) {
          const index = typeof tc.index === 'number' ? tc.index : 0;
          const cur = calls.get(index) ?? { id: '', name: '', args: '' };
          const fn = (tc.function ?? {}) as Record<string, unknown>;
          if (typeof tc.id === 'string' && tc.id) cur.id = tc.id;
          if (typeof fn.name === 'string') cur.name += fn.name;
          if (typeof fn.arguments === 'string') cur.args += fn.arguments;
          calls.set(index, cur);
        }
        if (typeof choice.finish_reason === 'string') finish = FINISH[choice.finish_reason] ?? 'stop';
      }
    }
    // EOF without [DONE]: finishStream decides (cut mid-way, or no token at all)
  }

  async embed(input: string[], model?: string): Promise<number[][]> {
    const res = await this.#fetch('/embeddings', {
      method: 'POST',
      body: JSON.stringify({ model: model ?? this.#o.embedModel ?? this.#o.model, input }),
    });
    const j = await readJson(res, this.#ctx);
    const data = Array.isArray(j.data) ? (j.data as Record<string, unknown>[]) : [];
    if (data.length !== input.length)
      throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', `asked for ${input.length} embeddings, got ${data.length}`);
    return [...data].sort((a, b) => num(a.index) - num(b.index)).map((d) => vector(this.#ctx, d.embedding));
  }

  async models(): Promise<string[]> {
    const res = await this.#fetch('/models', { method: 'GET' });
    const j = await readJson(res, this.#ctx);
    return (Array.isArray(j.data) ? (j.data as Record<string, unknown>[]) : []).map((m) => String(m.id));
  }
}

function toWire(m: ChatMessage): Record<string, unknown> {
  if (m.role === 'tool') return { role: 'tool', tool_call_id: m.toolCallId ?? '', content: m.content };
  if (m.role === 'assistant' && m.toolCalls?.length) {
    return {
      role: 'assistant',
      content: m.content || null,
      tool_calls: m.toolCalls.map((c) => ({
        id: c.id,
        type: 'function',
        function: { name: c.name, arguments: JSON.stringify(c.arguments) },
      })),
    };
  }
  return { role: m.role, content: m.content };
}

/** json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$ */
export function schemaName(schema: Record<string, unknown>): string {
  const t = typeof schema.title === 'string' ? schema.title.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 64) : '';
  return t || 'answer';
}

export function vector(ctx: ErrorContext, v: unknown): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number'))
    throw llmError(ctx, 'LLM_BAD_RESPONSE', 'an embedding is not an array of numbers');
  return v as number[];
}
