/**
 * Google Gemini API: POST {baseUrl}/v1beta/models/{model}:generateContent and
 * :streamGenerateContent?alt=sse (each SSE `data:` is a whole GenerateContentResponse; the
 * stream has no end marker: the last chunk carries finishReason and usageMetadata), key in
 * `x-goog-api-key`. contents/parts with roles user|model, systemInstruction, tools as
 * functionDeclarations, calls as functionCall parts, answers as functionResponse parts;
 * jsonSchema as generationConfig.responseMimeType = 'application/json' + responseSchema.
 * Embeddings: :batchEmbedContents; models: GET /v1beta/models.
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
import { vector } from './openai.ts';

const FINISH: Record<string, ChatResult['finishReason']> = {
  STOP: 'stop',
  MAX_TOKENS: 'length',
  SAFETY: 'error',
  RECITATION: 'error',
  BLOCKLIST: 'error',
  PROHIBITED_CONTENT: 'error',
  SPII: 'error',
  MALFORMED_FUNCTION_CALL: 'error',
  OTHER: 'error',
  LANGUAGE: 'error',
};

export class GeminiProvider implements LlmProvider {
  readonly name: string;
  readonly kind = 'gemini';
  readonly local = false;
  readonly #o: RemoteProviderOptions;
  readonly #ctx: ErrorContext;

  constructor(opts: RemoteProviderOptions) {
    this.name = opts.name;
    this.#o = opts;
    this.#ctx = { provider: opts.name, secrets: [opts.apiKey], ...(opts.now ? { now: opts.now } : {}) };
  }

  #fetch(path: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      ...this.#o.headers,
    };
    if (this.#o.apiKey) headers['x-goog-api-key'] = this.#o.apiKey;
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

  #path(model: string, method: string): string {
    const m = model.startsWith('models/') ? model.slice(7) : model;
    return `/v1beta/models/${encodeURIComponent(m)}:${method}`;
  }

  body(req: ChatRequest): Record<string, unknown> {
    const system = req.messages
      .filter((m) => m.role === 'system')
      .map((m) => m.content)
      .join('\n\n');
    const b: Record<string, unknown> = { contents: toWire(req.messages.filter((m) => m.role !== 'system')) };
    if (system) b.systemInstruction = { parts: [{ text: system }] };
    if (req.tools?.length) {
      b.tools = [
        {
          functionDeclarations: req.tools.map((t) => ({
            name: t.name,
            description: t.description,
            parameters: t.parameters,
          })),
        },
      ];
    }
    const gc: Record<string, unknown> = {};
    if (req.maxTokens !== undefined) gc.maxOutputTokens = req.maxTokens;
    if (req.temperature !== undefined) gc.temperature = req.temperature;
    if (req.jsonSchema) {
      gc.responseMimeType = 'application/json';
      gc.responseSchema = req.jsonSchema;
    }
    if (Object.keys(gc).length) b.generationConfig = gc;
    return b;
  }

  async chat(req: ChatRequest): Promise<ChatResult> {
    const model = req.model ?? this.#o.model;
    const res = await this.#fetch(
      this.#path(model, 'generateContent'),
      { method: 'POST', body: JSON.stringify(this.body(req)) },
      req.signal,
    );
    const j = await readJson(res, this.#ctx);
    const p = this.#parse(j, { n: 0 });
    if (!p.candidate) this.#noCandidate(j);
    return checkResult(this.#ctx, {
      provider: this.name,
      model: typeof j.modelVersion === 'string' ? j.modelVersion : model,
      text: p.text,
      toolCalls: p.toolCalls,
      usage: p.usage ?? { inputTokens: 0, outputTokens: 0 },
      finishReason: p.toolCalls.length ? 'tool_calls' : (p.finish ?? 'stop'),
    });
  }

  #noCandidate(j: Record<string, unknown>): never {
    const fb = (j.promptFeedback ?? {}) as Record<string, unknown>;
    if (typeof fb.blockReason === 'string')
      throw llmError(this.#ctx, 'LLM_BAD_REQUEST', `the prompt was blocked (${fb.blockReason})`, {
        vendorCode: fb.blockReason,
      });
    throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', 'the answer has no candidates');
  }

  /** one GenerateContentResponse → its text, calls, finish reason and usage */
  #parse(
    j: Record<string, unknown>,
    ids: { n: number },
  ): {
    candidate: boolean;
    text: string;
    toolCalls: ToolCall[];
    finish?: ChatResult['finishReason'];
    usage?: ChatResult['usage'];
  } {
    const c = (Array.isArray(j.candidates) ? j.candidates[0] : undefined) as Record<string, unknown> | undefined;
    const parts = (((c?.content ?? {}) as Record<string, unknown>).parts ?? []) as Record<string, unknown>[];
    let text = '';
    const toolCalls: ToolCall[] = [];
    for (const part of Array.isArray(parts) ? parts : []) {
      if (typeof part.text === 'string' && part.thought !== true) text += part.text;
      else if (part.functionCall && typeof part.functionCall === 'object') {
        const fc = part.functionCall as Record<string, unknown>;
        const name = String(fc.name ?? '');
        toolCalls.push({
          id: typeof fc.id === 'string' ? fc.id : `call_${ids.n++}`,
          name,
          arguments: parseArguments(this.#ctx, name, fc.args ?? {}),
        });
      }
    }
    const um = j.usageMetadata as Record<string, unknown> | undefined;
    return {
      candidate: !!c,
      text,
      toolCalls,
      ...(typeof c?.finishReason === 'string' ? { finish: FINISH[c.finishReason] ?? 'error' } : {}),
      ...(um
        ? {
            usage: {
              inputTokens: num(um.promptTokenCount),
              outputTokens: num(um.candidatesTokenCount) + num(um.thoughtsTokenCount),
            },
          }
        : {}),
    };
  }

  stream(req: ChatRequest): AsyncIterable<ChatChunk> {
    return finishStream(this.#ctx, req.model ?? this.#o.model, this.#raw(req), req.signal);
  }

  async *#raw(req: ChatRequest): AsyncGenerator<RawChunk> {
    const model = req.model ?? this.#o.model;
    const res = await this.#fetch(
      `${this.#path(model, 'streamGenerateContent')}?alt=sse`,
      { method: 'POST', body: JSON.stringify(this.body(req)) },
      req.signal,
    );
    const ids = { n: 0 };
    let usage = { inputTokens: 0, outputTokens: 0 };
    let finish: ChatResult['finishReason'] | undefined;
    let version: string | undefined;
    for await (const ev of sseEvents(res.body, this.#ctx)) {
      const j = parseChunk(ev.data, this.#ctx);
      if (j.error) {
        const e = j.error as Record<string, unknown>;
        throw llmError(this.#ctx, 'LLM_UNAVAILABLE', `error in the stream: ${String(e.message ?? '').slice(0, 300)}`, {
          vendorCode: e.status,
        });
      }
      const p = this.#parse(j, ids);
      if (!p.candidate && !p.usage) this.#noCandidate(j);
      if (typeof j.modelVersion === 'string') version = j.modelVersion;
      if (p.usage) usage = p.usage;
      if (p.text) yield { type: 'text', text: p.text };
      for (const call of p.toolCalls) yield { type: 'tool_call', call };
      if (p.finish) finish = p.finish;
    }
    // no end marker in this protocol: a finishReason is what says the stream is complete
    if (finish) yield { type: 'end', usage, finishReason: finish, ...(version ? { model: version } : {}) };
  }

  async embed(input: string[], model?: string): Promise<number[][]> {
    const m = model ?? this.#o.embedModel ?? this.#o.model;
    const name = m.startsWith('models/') ? m : `models/${m}`;
    const res = await this.#fetch(this.#path(m, 'batchEmbedContents'), {
      method: 'POST',
      body: JSON.stringify({ requests: input.map((text) => ({ model: name, content: { parts: [{ text }] } })) }),
    });
    const j = await readJson(res, this.#ctx);
    const e = Array.isArray(j.embeddings) ? (j.embeddings as Record<string, unknown>[]) : [];
    if (e.length !== input.length)
      throw llmError(this.#ctx, 'LLM_BAD_RESPONSE', `asked for ${input.length} embeddings, got ${e.length}`);
    return e.map((x) => vector(this.#ctx, x.values));
  }

  async models(): Promise<string[]> {
    const res = await this.#fetch('/v1beta/models', { method: 'GET' });
    const j = await readJson(res, this.#ctx);
    return (Array.isArray(j.models) ? (j.models as Record<string, unknown>[]) : []).map((m) =>
      String(m.name).replace(/^models\//, ''),
    );
  }
}

/** our messages → contents: assistant → model; tool answers → functionResponse parts (name looked up by call id) */
function toWire(messages: ChatMessage[]): Record<string, unknown>[] {
  const names = new Map<string, string>();
  for (const m of messages) for (const c of m.toolCalls ?? []) names.set(c.id, c.name);
  const out: { role: 'user' | 'model'; parts: Record<string, unknown>[] }[] = [];
  for (const m of messages) {
    const role = m.role === 'assistant' ? 'model' : 'user';
    const parts: Record<string, unknown>[] = [];
    if (m.role === 'tool') {
      parts.push({
        functionResponse: {
          name: names.get(m.toolCallId ?? '') ?? m.toolCallId ?? '',
          response: toolResponse(m.content),
        },
      });
    } else {
      if (m.content) parts.push({ text: m.content });
      for (const c of m.toolCalls ?? []) parts.push({ functionCall: { name: c.name, args: c.arguments } });
    }
    const last = out[out.length - 1];
    if (last && last.role === role) last.parts.push(...parts);
    else out.push({ role, parts });
  }
  return out;
}

/** functionResponse.response must be an object */
function toolResponse(content: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(content);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* plain text */
  }
  return { result: content };
}
