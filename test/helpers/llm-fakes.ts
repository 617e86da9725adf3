/**
 * Local LLM servers on 127.0.0.1:0 speaking each vendor's real wire format, with scripted
 * replies and per-request fault injection. They record every request (method, path, query,
 * headers, parsed body) so tests can assert what we send, and close cleanly (open sockets
 * destroyed, trickle timers cleared).
 *
 *   openai     POST /v1/chat/completions (JSON | SSE `data:` + `[DONE]`), POST /v1/embeddings, GET /v1/models
 *   anthropic  POST /v1/messages (JSON | SSE named events), GET /v1/models
 *   gemini     POST /v1beta/models/{m}:generateContent | :streamGenerateContent?alt=sse (CRLF framed)
 *              | :batchEmbedContents, GET /v1beta/models
 *   ollama     POST /api/chat (JSON | NDJSON), POST /api/embed, GET /api/tags, POST /api/pull (NDJSON)
 *
 * A scripted Reply is consumed by the next request on any route; without one the server
 * answers `defaultReply`. A Reply's `fault` replaces or breaks the answer:
 *   status      that HTTP status with the vendor's error body (+ Retry-After when given);
 *               401 answers echo the key the client sent, so tests can check redaction
 *   empty200    200 with an empty body
 *   noTokens    a well-formed answer/stream with no text and no tool call
 *   stall       stop sending after `afterText` text frames (streams) / half the body; keep the socket open
 *   cut         destroy the socket at the same point
 *   malformed   a broken JSON frame at that point (then the rest)
 *   neverEnds   keep sending filler (SSE comments, blank NDJSON lines, JSON whitespace) forever
 *   noHeaders   accept the request and never answer
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Vendor = 'openai' | 'anthropic' | 'gemini' | 'ollama';
export type FaultKind = 'status' | 'empty200' | 'noTokens' | 'stall' | 'cut' | 'malformed' | 'neverEnds' | 'noHeaders';

export interface Fault {
  kind: FaultKind;
  /** kind 'status' */
  status?: number;
  retryAfter?: string;
  message?: string;
  /** the vendor's error code/type in the body (OpenAI `insufficient_quota`, Anthropic `overloaded_error`…) */
  vendorCode?: string;
  /** stall / cut / malformed / neverEnds on a stream: after this many text frames (default 0) */
  afterText?: number;
}

export interface FakeToolCall {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
}

export interface Reply {
  /** the answer's text; streamed as `chunks` when given, else word by word */
  text?: string;
  chunks?: string[];
  toolCalls?: FakeToolCall[];
  usage?: { input: number; output: number };
  finish?: 'stop' | 'length' | 'tool_calls';
  fault?: Fault;
}

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: any;
  raw: string;
}

export interface FakeLlm {
  readonly vendor: Vendor;
  /** the baseUrl a provider takes (OpenAI's includes /v1) */
  readonly url: string;
  readonly origin: string;
  readonly requests: Recorded[];
  /** queue replies for the next requests, in order */
  reply(...r: Reply[]): void;
  /** what unscripted requests get */
  defaultReply: Reply;
  close(): Promise<void>;
}

interface Frame {
  data: string;
  text: boolean;
}

type Route = 'chat' | 'models' | 'embed' | 'pull';

interface Dialect {
  route(method: string, path: string): Route | undefined;
  stream(route: Route, req: Recorded): boolean;
  /** a request the real service refuses with 400 (null when fine) */
  invalid(route: Route, req: Recorded): string | null;
  json(route: Route, reply: Reply, req: Recorded): unknown;
  frames(route: Route, reply: Reply, req: Recorded): Frame[];
  malformed: string;
  filler: string;
  streamType: string;
  errorBody(status: number, message: string, code?: string): unknown;
}

const MODEL = 'fake-model';

export const defaultUsage = { input: 12, output: 5 };

function chunksOf(r: Reply): string[] {
  if (r.chunks) return r.chunks;
  if (!r.text) return [];
  return r.text.match(/\S+\s*|\s+/g) ?? [r.text];
}

function vec(text: string): number[] {
  let s = 0;
  for (const ch of text) s = (s * 31 + ch.codePointAt(0)!) % 1000;
  return [text.length, s / 1000, 1];
}

function split2(s: string): [string, string] {
  const h = Math.ceil(s.length / 2);
  return [s.slice(0, h), s.slice(h)];
}

// ---------------------------------------------------------------------------------------
// OpenAI chat completions

const sse = (o: unknown, text = false): Frame => ({
  data: `data: ${typeof o === 'string' ? o : JSON.stringify(o)}\n\n`,
  text,
});

const openai: Dialect = {
  route(method, path) {
    if (method === 'POST' && path === '/v1/chat/completions') return 'chat';
    if (method === 'POST' && path === '/v1/embeddings') return 'embed';
    if (method === 'GET' && path === '/v1/models') return 'models';
    return undefined;
  },
  stream: (_r, req) => req.body?.stream === true,
  invalid(route, req) {
    if (route === 'chat' && (!req.body?.model || !Array.isArray(req.body?.messages)))
      return "'model' and 'messages' are required";
    return null;
  },
  json(route, r, req) {
    if (route === 'models')
      return {
        object: 'list',
        data: [
          { id: MODEL, object: 'model', created: 1700000000, owned_by: 'fake' },
          { id: 'fake-embed', object: 'model', created: 1700000000, owned_by: 'fake' },
        ],
      };
    if (route === 'embed') {
      const input: string[] = Array.isArray(req.body.input) ? req.body.input : [req.body.input];
      return {
        object: 'list',
        model: req.body.model,
        data: input.map((t, index) => ({ object: 'embedding', index, embedding: vec(t) })),
        usage: { prompt_tokens: input.length, total_tokens: input.length },
      };
    }
    const u = r.usage ?? defaultUsage;
    const calls = r.toolCalls ?? [];
    return {
      id: 'chatcmpl-fake',
      object: 'chat.completion',
      created: 1700000000,
      model: req.body.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: r.text ?? (calls.length ? null : ''),
            refusal: null,
            ...(calls.length
              ? {
                  tool_calls: calls.map((c) => ({
                    id: c.id,
                    type: 'function',
                    function: { name: c.name, arguments: JSON.stringify(c.arguments) },
                  })),
                }
              : {}),
          },
          logprobs: null,
          finish_reason: r.finish ?? (calls.length ? 'tool_calls' : 'stop'),
        },
      ],
      usage: { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output },
    };
  },
  frames(_route, r, req) {
    const base = {
      id: 'chatcmpl-fake',
      object: 'chat.completion.chunk',
      created: 1700000000,
      model: req.body.model,
      system_fingerprint: 'fp_fake',
    };
    const u = r.usage ?? defaultUsage;
    const calls = r.toolCalls ?? [];
    const withUsage = req.body.stream_options?.include_usage === true;
    const f: Frame[] = [
      sse({
        ...base,
        choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
        ...(withUsage ? { usage: null } : {}),
      }),
    ];
    for (const c of chunksOf(r))
      f.push(
        sse(
          {
            ...base,
            choices: [{ index: 0, delta: { content: c }, logprobs: null, finish_reason: null }],
            ...(withUsage ? { usage: null } : {}),
          },
          true,
        ),
      );
    calls.forEach((c, index) => {
      const [a, b] = split2(JSON.stringify(c.arguments));
      f.push(
        sse({
          ...base,
          choices: [
            {
              index: 0,
              delta: { tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] },
              finish_reason: null,
            },
          ],
        }),
      );
      f.push(
        sse({
          ...base,
          choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: a } }] }, finish_reason: null }],
        }),
      );
      f.push(
        sse({
          ...base,
          choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: b } }] }, finish_reason: null }],
        }),
      );
    });
    f.push(
      sse({
        ...base,
        choices: [
          { index: 0, delta: {}, logprobs: null, finish_reason: r.finish ?? (calls.length ? 'tool_calls' : 'stop') },
        ],
        ...(withUsage ? { usage: null } : {}),
      }),
    );
    if (withUsage)
      f.push(
        sse({
          ...base,
          choices: [],
          usage: { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output },
        }),
      );
    f.push(sse('[DONE]'));
    return f;
  },
  malformed: 'data: {"id":"chatcmpl-fake","choices":[{"delta":{"content":"x"\n\n',
  filler: ': keep-alive\n\n',
  streamType: 'text/event-stream',
  errorBody: (status, message, code) => ({
    error: {
      message,
      type:
        status === 401
          ? 'invalid_request_error'
          : status === 429
            ? 'requests'
            : status >= 500
              ? 'server_error'
              : 'invalid_request_error',
      param: null,
      code: code ?? (status === 401 ? 'invalid_api_key' : status === 429 ? 'rate_limit_exceeded' : null),
    },
  }),
};

// ---------------------------------------------------------------------------------------
// Anthropic messages

const ev = (type: string, o: Record<string, unknown>, text = false): Frame => ({
  data: `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`,
  text,
});

/** a forced tool (tool_choice {type: 'tool'}) turns the scripted JSON text into that tool's input, as the API does */
function anthropicBlocks(r: Reply, req: Recorded): { text: string[]; tools: FakeToolCall[] } {
  const forced = req.body?.tool_choice?.type === 'tool' ? String(req.body.tool_choice.name) : undefined;
  if (forced && r.text)
    return { text: [], tools: [{ id: 'toolu_forced', name: forced, arguments: JSON.parse(r.text) }] };
  return { text: chunksOf(r), tools: r.toolCalls ?? [] };
}

const anthropic: Dialect = {
  route(method, path) {
    if (method === 'POST' && path === '/v1/messages') return 'chat';
    if (method === 'GET' && path === '/v1/models') return 'models';
    return undefined;
  },
  stream: (_r, req) => req.body?.stream === true,
  invalid(route, req) {
    if (route !== 'chat') return null;
    if (typeof req.body?.max_tokens !== 'number') return 'max_tokens: Field required';
    if (!req.headers['anthropic-version']) return 'anthropic-version: header is required';
    const msgs = req.body?.messages;
    if (!Array.isArray(msgs) || !msgs.length) return 'messages: at least one message is required';
    if (msgs.some((m: any) => m.role === 'system'))
      return 'messages: Unexpected role "system". Use the top-level `system` parameter';
    for (let i = 1; i < msgs.length; i++)
      if (msgs[i].role === msgs[i - 1].role) return 'messages: roles must alternate between "user" and "assistant"';
    return null;
  },
  json(route, r, req) {
    if (route === 'models')
      return {
        data: [{ type: 'model', id: MODEL, display_name: 'Fake', created_at: '2025-01-01T00:00:00Z' }],
        has_more: false,
        first_id: MODEL,
        last_id: MODEL,
      };
    const u = r.usage ?? defaultUsage;
    const { text, tools } = anthropicBlocks(r, req);
    const content: unknown[] = [];
    if (text.length) content.push({ type: 'text', text: text.join('') });
    for (const t of tools) content.push({ type: 'tool_use', id: t.id, name: t.name, input: t.arguments });
    return {
      id: 'msg_fake',
      type: 'message',
      role: 'assistant',
      model: req.body.model,
      content,
      stop_reason: r.finish === 'length' ? 'max_tokens' : tools.length ? 'tool_use' : 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: u.input, output_tokens: u.output },
    };
  },
  frames(_route, r, req) {
    const u = r.usage ?? defaultUsage;
    const { text, tools } = anthropicBlocks(r, req);
    const f: Frame[] = [
      ev('message_start', {
        message: {
          id: 'msg_fake',
          type: 'message',
          role: 'assistant',
          model: req.body.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: u.input, output_tokens: 1 },
        },
      }),
    ];
    let index = 0;
    if (text.length) {
      f.push(ev('content_block_start', { index, content_block: { type: 'text', text: '' } }));
      f.push(ev('ping', {}));
      for (const t of text) f.push(ev('content_block_delta', { index, delta: { type: 'text_delta', text: t } }, true));
      f.push(ev('content_block_stop', { index }));
      index++;
    }
    for (const t of tools) {
      const [a, b] = split2(JSON.stringify(t.arguments));
      f.push(
        ev('content_block_start', { index, content_block: { type: 'tool_use', id: t.id, name: t.name, input: {} } }),
      );
      f.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } }));
      f.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: a } }));
      f.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: b } }));
      f.push(ev('content_block_stop', { index }));
      index++;
    }
    f.push(
      ev('message_delta', {
        delta: {
          stop_reason: r.finish === 'length' ? 'max_tokens' : tools.length ? 'tool_use' : 'end_turn',
          stop_sequence: null,
        },
        usage: { output_tokens: u.output },
      }),
    );
    f.push(ev('message_stop', {}));
    return f;
  },
  malformed:
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x\n\n',
  filler: 'event: ping\ndata: {"type": "ping"}\n\n',
  streamType: 'text/event-stream; charset=utf-8',
  errorBody: (status, message, code) => ({
    type: 'error',
    error: {
      type:
        (code ?? status === 401)
          ? 'authentication_error'
          : status === 403
            ? 'permission_error'
            : status === 429
              ? 'rate_limit_error'
              : status === 529
                ? 'overloaded_error'
                : status >= 500
                  ? 'api_error'
                  : status === 404
                    ? 'not_found_error'
                    : 'invalid_request_error',
      message,
    },
  }),
};

// ---------------------------------------------------------------------------------------
// Gemini generateContent

const gsse = (o: unknown, text = false): Frame => ({ data: `data: ${JSON.stringify(o)}\r\n\r\n`, text });

const GEMINI_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

const gemini: Dialect = {
  route(method, path) {
    if (method === 'GET' && path === '/v1beta/models') return 'models';
    const m = /^\/v1beta\/models\/[^/:]+:(\w+)$/.exec(path);
    if (method !== 'POST' || !m) return undefined;
    if (m[1] === 'generateContent' || m[1] === 'streamGenerateContent') return 'chat';
    if (m[1] === 'batchEmbedContents') return 'embed';
    return undefined;
  },
  stream: (_r, req) => req.path.endsWith(':streamGenerateContent'),
  invalid(route, req) {
    if (route === 'chat' && !Array.isArray(req.body?.contents))
      return '* GenerateContentRequest.contents: contents is not specified';
    if (route === 'chat' && req.path.endsWith(':streamGenerateContent') && req.query.get('alt') !== 'sse')
      return 'this fake only speaks alt=sse';
    return null;
  },
  json(route, r, req) {
    if (route === 'models')
      return {
        models: [
          {
            name: `models/${MODEL}`,
            displayName: 'Fake',
            supportedGenerationMethods: ['generateContent', 'countTokens'],
          },
          { name: 'models/fake-embed', supportedGenerationMethods: ['embedContent'] },
        ],
      };
    if (route === 'embed')
      return {
        embeddings: (req.body.requests as any[]).map((q) => ({ values: vec(String(q.content.parts[0].text)) })),
      };
    const u = r.usage ?? defaultUsage;
    const parts: unknown[] = [];
    if (r.text) parts.push({ text: r.text });
    for (const c of r.toolCalls ?? []) parts.push({ functionCall: { name: c.name, args: c.arguments } });
    return {
      candidates: [
        { content: { role: 'model', parts }, finishReason: r.finish === 'length' ? 'MAX_TOKENS' : 'STOP', index: 0 },
      ],
      usageMetadata: { promptTokenCount: u.input, candidatesTokenCount: u.output, totalTokenCount: u.input + u.output },
      modelVersion: MODEL,
      responseId: 'resp-fake',
    };
  },
  frames(_route, r) {
    const u = r.usage ?? defaultUsage;
    const chunks = chunksOf(r);
    const calls = r.toolCalls ?? [];
    const f: Frame[] = [];
    const last = { promptTokenCount: u.input, candidatesTokenCount: u.output, totalTokenCount: u.input + u.output };
    chunks.forEach((c, i) => {
      const isLast = i === chunks.length - 1 && !calls.length;
      f.push(
        gsse(
          {
            candidates: [
              {
                content: { role: 'model', parts: [{ text: c }] },
                index: 0,
                ...(isLast ? { finishReason: r.finish === 'length' ? 'MAX_TOKENS' : 'STOP' } : {}),
              },
            ],
            usageMetadata: isLast ? last : { promptTokenCount: u.input, totalTokenCount: u.input },
            modelVersion: MODEL,
          },
          true,
        ),
      );
    });
    if (calls.length) {
      f.push(
        gsse({
          candidates: [
            {
              content: {
                role: 'model',
                parts: calls.map((c) => ({ functionCall: { name: c.name, args: c.arguments } })),
              },
              finishReason: 'STOP',
              index: 0,
            },
          ],
          usageMetadata: last,
          modelVersion: MODEL,
        }),
      );
    }
    if (!chunks.length && !calls.length) {
      f.push(
        gsse({
          candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason: 'STOP', index: 0 }],
          usageMetadata: last,
          modelVersion: MODEL,
        }),
      );
    }
    return f;
  },
  malformed: 'data: {"candidates": [{"content": {"parts": [{"text": "x\r\n\r\n',
  filler: '\r\n',
  streamType: 'text/event-stream',
  errorBody: (status, message) => ({ error: { code: status, message, status: GEMINI_STATUS[status] ?? 'UNKNOWN' } }),
};

// ---------------------------------------------------------------------------------------
// Ollama

const nd = (o: unknown, text = false): Frame => ({ data: `${JSON.stringify(o)}\n`, text });
const TS = '2025-01-01T00:00:00.000000000Z';

const ollama: Dialect = {
  route(method, path) {
    if (method === 'POST' && path === '/api/chat') return 'chat';
    if (method === 'POST' && path === '/api/embed') return 'embed';
    if (method === 'GET' && path === '/api/tags') return 'models';
    if (method === 'POST' && path === '/api/pull') return 'pull';
    return undefined;
  },
  // Ollama streams unless told not to
  stream: (route, req) => (route === 'chat' || route === 'pull') && req.body?.stream !== false,
  invalid(route, req) {
    if (route === 'chat' && !req.body?.model) return 'model is required';
    return null;
  },
  json(route, r, req) {
    if (route === 'models') {
      return {
        models: [
          {
            name: `${MODEL}:latest`,
            model: `${MODEL}:latest`,
            modified_at: TS,
            size: 1000,
            digest: 'abc123',
            details: { format: 'gguf', family: 'llama', parameter_size: '1B', quantization_level: 'Q4_0' },
          },
        ],
      };
    }
    if (route === 'embed') {
      const input: string[] = Array.isArray(req.body.input) ? req.body.input : [req.body.input];
      return {
        model: req.body.model,
        embeddings: input.map(vec),
        total_duration: 1000,
        load_duration: 10,
        prompt_eval_count: input.length,
      };
    }
    if (route === 'pull') return { status: 'success' };
    const u = r.usage ?? defaultUsage;
    const calls = r.toolCalls ?? [];
    return {
      model: req.body.model,
      created_at: TS,
      message: {
        role: 'assistant',
        content: r.text ?? '',
        ...(calls.length
          ? { tool_calls: calls.map((c) => ({ function: { name: c.name, arguments: c.arguments } })) }
          : {}),
      },
      done: true,
      done_reason: r.finish === 'length' ? 'length' : 'stop',
      total_duration: 1000,
      load_duration: 10,
      prompt_eval_count: u.input,
      prompt_eval_duration: 10,
      eval_count: u.output,
      eval_duration: 100,
    };
  },
  frames(route, r, req) {
    if (route === 'pull') {
      const digest = 'sha256:' + 'ab'.repeat(32);
      return [
        nd({ status: 'pulling manifest' }),
        nd({ status: `pulling ${digest.slice(7, 19)}`, digest, total: 1000, completed: 0 }, true),
        nd({ status: `pulling ${digest.slice(7, 19)}`, digest, total: 1000, completed: 500 }, true),
        nd({ status: `pulling ${digest.slice(7, 19)}`, digest, total: 1000, completed: 1000 }, true),
        nd({ status: 'verifying sha256 digest' }),
        nd({ status: 'writing manifest' }),
        nd({ status: 'success' }),
      ];
    }
    const u = r.usage ?? defaultUsage;
    const f: Frame[] = chunksOf(r).map((c) =>
      nd({ model: req.body.model, created_at: TS, message: { role: 'assistant', content: c }, done: false }, true),
    );
    const calls = r.toolCalls ?? [];
    if (calls.length)
      f.push(
        nd({
          model: req.body.model,
          created_at: TS,
          message: {
            role: 'assistant',
            content: '',
            tool_calls: calls.map((c) => ({ function: { name: c.name, arguments: c.arguments } })),
          },
          done: false,
        }),
      );
    f.push(
      nd({
        model: req.body.model,
        created_at: TS,
        message: { role: 'assistant', content: '' },
        done: true,
        done_reason: r.finish === 'length' ? 'length' : 'stop',
        total_duration: 1000,
        load_duration: 10,
        prompt_eval_count: u.input,
        prompt_eval_duration: 10,
        eval_count: u.output,
        eval_duration: 100,
      }),
    );
    return f;
  },
  malformed: '{"model":"fake-model","message":{"role":"assistant","content":"x\n',
  filler: '\n',
  streamType: 'application/x-ndjson',
  errorBody: (_status, message) => ({ error: message }),
};

const DIALECTS: Record<Vendor, Dialect> = { openai, anthropic, gemini, ollama };

// ---------------------------------------------------------------------------------------
// the server

export async function startFakeLlm(vendor: Vendor, opts: { defaultReply?: Reply } = {}): Promise<FakeLlm> {
  const d = DIALECTS[vendor];
  const queue: Reply[] = [];
  const requests: Recorded[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      const u = new URL(req.url ?? '/', 'http://x');
      let body: any;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = undefined;
      }
      const rec: Recorded = {
        method: req.method ?? 'GET',
        path: u.pathname,
        query: u.searchParams,
        headers: req.headers,
        body,
        raw,
      };
      requests.push(rec);
      handle(rec, res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const sendJson = (
    res: http.ServerResponse,
    status: number,
    o: unknown,
    headers: Record<string, string> = {},
  ): void => {
    const b = JSON.stringify(o);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(b),
      ...headers,
    });
    res.end(b);
  };

  const trickle = (res: http.ServerResponse, filler: string): void => {
    const t = setInterval(() => {
      if (!res.destroyed) res.write(filler);
    }, 10);
    timers.add(t);
    res.on('close', () => {
      clearInterval(t);
      timers.delete(t);
    });
  };

  function handle(req: Recorded, res: http.ServerResponse): void {
    const route = d.route(req.method, req.path);
    if (!route) return sendJson(res, 404, d.errorBody(404, `no route for ${req.method} ${req.path}`));
    const invalid = d.invalid(route, req);
    if (invalid) return sendJson(res, 400, d.errorBody(400, invalid));
    const r = queue.shift() ?? fake.defaultReply;
    const f = r.fault;
    const stream = d.stream(route, req);

    if (f?.kind === 'noHeaders') return;
    if (f?.kind === 'status') {
      const status = f.status ?? 500;
      const key = String(
        req.headers.authorization ?? req.headers['x-api-key'] ?? req.headers['x-goog-api-key'] ?? '',
      ).replace(/^Bearer /, '');
      const message =
        f.message ??
        (status === 401
          ? `Incorrect API key provided: ${key}. You can find your API key in your account settings.`
          : `fake ${status}`);
      return sendJson(
        res,
        status,
        d.errorBody(status, message, f.vendorCode),
        f.retryAfter ? { 'retry-after': f.retryAfter } : {},
      );
    }
    if (f?.kind === 'empty200') {
      res.writeHead(200, { 'content-type': stream ? d.streamType : 'application/json', 'content-length': '0' });
      return void res.end();
    }
    const reply: Reply = f?.kind === 'noTokens' ? { usage: r.usage ?? defaultUsage } : r;

    if (!stream) {
      const body = JSON.stringify(d.json(route, reply, req));
      const [a] = split2(body);
      if (f?.kind === 'malformed') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(body.slice(0, -3) + ',,}');
      }
      if (f?.kind === 'stall' || f?.kind === 'cut' || f?.kind === 'neverEnds') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(a);
        if (f.kind === 'cut') setImmediate(() => res.socket?.destroy());
        if (f.kind === 'neverEnds') trickle(res, ' ');
        return;
      }
      return sendJson(res, 200, JSON.parse(body));
    }

    res.writeHead(200, {
      'content-type': d.streamType,
      'cache-control': 'no-cache',
      ...(vendor === 'ollama' ? {} : { connection: 'keep-alive' }),
    });
    res.flushHeaders();
    const frames = d.frames(route, reply, req);
    const after = f?.afterText ?? 0;
    let texts = 0;
    let i = 0;
    const breaking = f && (f.kind === 'stall' || f.kind === 'cut' || f.kind === 'malformed' || f.kind === 'neverEnds');
    // frames are written one per tick so a client sees them as separate chunks
    const next = (): void => {
      if (res.destroyed) return;
      if (breaking && texts >= after) {
        if (f.kind === 'stall') return;
        if (f.kind === 'cut') return void res.socket?.destroy();
        if (f.kind === 'neverEnds') return trickle(res, d.filler);
        res.write(d.malformed);
        for (const fr of frames.slice(i)) res.write(fr.data);
        return void res.end();
      }
      const fr = frames[i++];
      if (!fr) return void res.end();
      res.write(fr.data);
      if (fr.text) texts++;
      setImmediate(next);
    };
    next();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fake: FakeLlm = {
    vendor,
    origin,
    url: vendor === 'openai' ? `${origin}/v1` : origin,
    requests,
    defaultReply: opts.defaultReply ?? { text: 'Hello from the fake server.', usage: defaultUsage },
    reply: (...r) => {
      queue.push(...r);
    },
    close: async () => {
      for (const t of timers) clearInterval(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
