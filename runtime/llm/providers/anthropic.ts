/**
 * Anthropic Messages API: POST {baseUrl}/v1/messages with `x-api-key` and
 * `anthropic-version: 2023-06-01`; the system prompt goes in `system`, tools carry
 * `input_schema`, tool calls are `tool_use` blocks and their answers `tool_result` blocks in
 * a user turn. Streaming is SSE: message_start, content_block_start, content_block_delta
 * (text_delta | input_json_delta), content_block_stop, message_delta (stop_reason, usage),
 * message_stop, ping, error.
 *
 * jsonSchema is requested with a forced tool (`tool_choice: {type: 'tool', name}`) whose
 * input_schema is the schema: the documented way to get JSON that follows a schema from
 * every Claude model. The tool's input comes back as the answer's text (JSON), not as a call.
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

export const ANTHROPIC_VERSION = '2023-06-01';
/** the forced tool that carries a jsonSchema answer */
export const JSON_TOOL = 'json_answer';

export interface AnthropicProviderOptions extends RemoteProviderOptions {
  /** max_tokens is required by the API: used when the request sets none (default 4096) */
  defaultMaxTokens?: number;
}

const FINISH: Record<string, ChatResult['finishReason']> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  tool_use: 'tool_calls',
  pause_turn: 'stop',
  refusal: 'error',
};

/** error event types in a stream → codes */
const STREAM_ERRORS: Record<
  string,
  'LLM_UNAVAILABLE' | 'LLM_RATE_LIMITED' | 'LLM_AUTH' | 'LLM_BAD_REQUEST' | 'LLM_BILLING'
> = {
  overloaded_error: 'LLM_UNAVAILABLE',
  api_error: 'LLM_UNAVAILABLE',
  rate_limit_error: 'LLM_RATE_LIMITED',
  authentication_error: 'LLM_AUTH',
  permission_error: 'LLM_AUTH',
  invalid_request_error: 'LLM_BAD_REQUEST',
  billing_error: 'LLM_BILLING',
};

export class AnthropicProvider implements LlmProvider {
  readonly name: string;
  readonly kind = 'anthropic';
  readonly local = false;
  readonly #o: AnthropicProviderOptions;
  readonly #ctx: ErrorContext;

  constructor(opts: AnthropicProviderOptions) {
    this.name = opts.name;
    this.#o = opts;
    this.#ctx = { provider: opts.name, secrets: [opts.apiKey], ...(opts.now ? { now: opts.now } : {}) };
  }

  #fetch(path: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      'anthropic-version': ANTHROPIC_VERSION,
      ...this.#o.headers,
    };
    if (this.#o.apiKey) headers['x-api-key'] = this.#o.apiKey;
    return guardedFetch(
      joinUrl(this.#o.baseUrl, path),
      { ...init, headers },
      {
        ...this.#ctx,
        timeouts: this.#o.timeouts,
        maxBytes: this.#o.maxResponseBytes,
        signal,
        fetch: this.#o.fetch,
      },
    );
  }

  body(req: ChatRequest, stream: boolean): Record<string, unknown> {
    const system = req.messages
      .filter((m) => m.role === 'system')
      .map((m) => m.content)
      .join('\n\n');
    const b: Record<string, unknown> = {
      model: req.model ?? this.#o.model,
      max_tokens: req.maxTokens ?? this.#o.defaultMaxTokens ?? 4096,
      messages: toWire(req.messages.filter((m) => m.role !== 'system')),
    };
    if (system) b.system = system;
    const tools = (req.tools ?? []).map((t) => ({
      name: t.name,
      description: t.description,
      input_schema: t.parameters,
    }));
    if (req.jsonSchema) {
      tools.push({
        name: JSON_TOOL,
        description: 'Answer with JSON that follows this schema.',
        input_schema: req.jsonSchema,
      });
      b.tool_choice = { type: 'tool', name: JSON_TOOL };
    }
    if (tools.length) b.tools = tools;
    if (req.temperature !== undefined) b.temperature = req.temperature;
    if (stream) b.stream = true;
    return b;
  }

  async chat(req: ChatRequest): Promise<ChatResult> {
    const res = await this.#fetch(
      '/v1/messages',
      { method: 'POST', body: JSON.stringify(this.body(req, false)) },
      req.signal,
    );
    const j = await readJson(res, this.#ctx);
    if (j.type === 'error') throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', 'an error object with HTTP 200');
    const blocks = (Array.isArray(j.content) ? j.content : []) as Record<string, unknown>[];
    let text = '';
    const toolCalls: ToolCall[] = [];
    let json = false;
    for (const b of blocks) {
      if (b.type === 'text' && typeof b.text === 'string') text += b.text;
      else if (b.type === 'tool_use') {
        const name = String(b.name ?? '');
        const args = parseArguments(this.#ctx, name, b.input ?? {});
        if (req.jsonSchema && name === JSON_TOOL) {
          text = JSON.stringify(args);
          json = true;
        } else toolCalls.push({ id: String(b.id ?? ''), name, arguments: args });
      }
    }
    const u = (j.usage ?? {}) as Record<string, unknown>;
    return checkResult(this.#ctx, {
      provider: this.name,
      model: typeof j.model === 'string' ? j.model : (req.model ?? this.#o.model),
      text,
      toolCalls,
      usage: { inputTokens: num(u.input_tokens), outputTokens: num(u.output_tokens) },
      finishReason: json ? 'stop' : (FINISH[String(j.stop_reason)] ?? 'stop'),
    });
  }

  stream(req: ChatRequest): AsyncIterable<ChatChunk> {
    return finishStream(this.#ctx, req.model ?? this.#o.model, this.#raw(req), req.signal);
  }

  async *#raw(req: ChatRequest): AsyncGenerator<RawChunk> {
    const res = await this.#fetch(
      '/v1/messages',
      { method: 'POST', body: JSON.stringify(this.body(req, true)) },
      req.signal,
    );
    const blocks = new Map<number, { type: string; id: string; name: string; json: string }>();
    let usage = { inputTokens: 0, outputTokens: 0 };
    let finish: ChatResult['finishReason'] = 'stop';
    let model: string | undefined;
    let jsonAnswer = false;
    for await (const ev of sseEvents(res.body, this.#ctx)) {
      const j = parseChunk(ev.data, this.#ctx);
      const type = String(j.type ?? ev.event);
      switch (type) {
        case 'message_start': {
          const m = (j.message ?? {}) as Record<string, unknown>;
          if (typeof m.model === 'string') model = m.model;
          const u = (m.usage ?? {}) as Record<string, unknown>;
          usage = { inputTokens: num(u.input_tokens), outputTokens: num(u.output_tokens) };
          break;
        }
        case 'content_block_start': {
          const b = (j.content_block ?? {}) as Record<string, unknown>;
          blocks.set(num(j.index), {
            type: String(b.type),
            id: String(b.id ?? ''),
            name: String(b.name ?? ''),
            json: '',
          });
          if (b.type === 'text' && typeof b.text === 'string' && b.text) yield { type: 'text', text: b.text };
          break;
        }
        case 'content_block_delta': {
          const d = (j.delta ?? {}) as Record<string, unknown>;
          const blk = blocks.get(num(j.index));
          if (d.type === 'text_delta' && typeof d.text === 'string') yield { type: 'text', text: d.text };
          else if (d.type === 'input_json_delta' && blk && typeof d.partial_json === 'string') {
            blk.json += d.partial_json;
          }
          break;
        }
        case 'content_block_stop': {
          const blk = blocks.get(num(j.index));
          if (blk?.type === 'tool_use') {
            const args = parseArguments(this.#ctx, blk.name, blk.json || '{}');
            if (req.jsonSchema && blk.name === JSON_TOOL) {
              jsonAnswer = true;
              yield { type: 'text', text: JSON.stringify(args) };
            } else yield { type: 'tool_call', call: { id: blk.id, name: blk.name, arguments: args } };
          }
          break;
        }
        case 'message_delta': {
          const d = (j.delta ?? {}) as Record<string, unknown>;
          if (typeof d.stop_reason === 'string') finish = FINISH[d.stop_reason] ?? 'stop';
          const u = (j.usage ?? {}) as Record<string, unknown>;
          if (typeof u.output_tokens === 'number') usage = { ...usage, outputTokens: u.output_tokens };
          if (typeof u.input_tokens === 'number' && u.input_tokens > 0)
            usage = { ...usage, inputTokens: u.input_tokens };
          break;
        }
        case 'message_stop':
          yield { type: 'end', usage, finishReason: jsonAnswer ? 'stop' : finish, ...(model ? { model } : {}) };
          return;
        case 'error': {
          const e = (j.error ?? {}) as Record<string, unknown>;
          const code = STREAM_ERRORS[String(e.type)] ?? 'LLM_UNAVAILABLE';
          throw llmError(
            this.#ctx,
            code,
            `error in the stream (${String(e.type)}): ${String(e.message ?? '').slice(0, 300)}`,
            { vendorCode: e.type },
          );
        }
        default: // ping and future event types
      }
    }
  }

  async models(): Promise<string[]> {
    const res = await this.#fetch('/v1/models', { method: 'GET' });
    const j = await readJson(res, this.#ctx);
    return (Array.isArray(j.data) ? (j.data as Record<string, unknown>[]) : []).map((m) => String(m.id));
  }
}

/** our messages → Anthropic turns: tool answers become tool_result blocks in a user turn; same-role turns merge */
function toWire(messages: ChatMessage[]): Record<string, unknown>[] {
  const out: { role: 'user' | 'assistant'; content: Record<string, unknown>[] }[] = [];
  for (const m of messages) {
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const blocks: Record<string, unknown>[] = [];
    if (m.role === 'tool') blocks.push({ type: 'tool_result', tool_use_id: m.toolCallId ?? '', content: m.content });
    else {
      if (m.content) blocks.push({ type: 'text', text: m.content });
      for (const c of m.toolCalls ?? []) blocks.push({ type: 'tool_use', id: c.id, name: c.name, input: c.arguments });
    }
    const last = out[out.length - 1];
    if (last && last.role === role) last.content.push(...blocks);
    else out.push({ role, content: blocks });
  }
  // a lone text block goes as a plain string, as most clients send it
  return out.map((t) =>
    t.content.length === 1 && t.content[0]!.type === 'text' ? { role: t.role, content: t.content[0]!.text } : t,
  );
}
