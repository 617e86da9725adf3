/**
 * The REST route table: one entry per route, the thin layer over the runtime API.
 * (Issue 6 adds JSON Schemas per route, ajv validation and the generated OpenAPI document
 * from this same table.)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RuntimeApi } from '../runtime/api/runtime-api.ts';
import type { Caller } from '../runtime/supervisor/types.ts';
import { TalonError } from '../runtime/errors.ts';
import type { AuditQuery } from '../runtime/audit/chain.ts';
import type { AuditDecision } from '../runtime/audit/types.ts';

export interface RouteContext {
  api: RuntimeApi;
  caller: Caller;
  params: Record<string, string>;
  query: URLSearchParams;
  /** the parsed JSON body, for routes that declare `body: true` */
  body: unknown;
  req: IncomingMessage;
  res: ServerResponse;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** `/api/v1/hands/:name` */
  path: string;
  summary: string;
  /** false only for /healthz */
  auth: boolean;
  /** reads a JSON body (at most MAX_BODY_BYTES) */
  body?: boolean;
  /** returns the JSON body, or `undefined` when the handler wrote the response itself (SSE) */
  handler(ctx: RouteContext): Promise<unknown>;
}

function intParam(query: URLSearchParams, name: string, max = 9_999_999): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,16}$/.test(raw) || Number(raw) > max) {
    throw new TalonError('BAD_REQUEST', `query parameter ${name} must be a whole number from 0 to ${max} (got "${raw.slice(0, 40)}")`);
  }
  return Number(raw);
}

const DECISIONS = new Set(['allow', 'deny', 'ok', 'error', 'info']);

function auditQuery(query: URLSearchParams): AuditQuery {
  const q: AuditQuery = {};
  const actor = query.get('actor');
  if (actor !== null) q.actor = actor.slice(0, 200);
  const action = query.get('action');
  if (action !== null) q.action = action.slice(0, 200);
  const decision = query.get('decision');
  if (decision !== null) {
    const list = decision.split(',');
    const bad = list.find((d) => !DECISIONS.has(d));
    if (bad !== undefined) throw new TalonError('BAD_REQUEST', `decision "${bad.slice(0, 20)}" is not one of allow, deny, ok, error, info`);
    q.decision = list as AuditDecision[];
  }
  const from = intParam(query, 'from', 1e15);
  if (from !== undefined) q.from = from;
  const to = intParam(query, 'to', 1e15);
  if (to !== undefined) q.to = to;
  const cursor = query.get('cursor');
  if (cursor !== null) q.cursor = cursor.slice(0, 20);
  const limit = intParam(query, 'limit', 1000);
  if (limit !== undefined) q.limit = limit;
  const order = query.get('order');
  if (order !== null) {
    if (order !== 'asc' && order !== 'desc') throw new TalonError('BAD_REQUEST', 'order must be asc or desc');
    q.order = order;
  }
  return q;
}

export const routes: Route[] = [
  {
    method: 'GET', path: '/api/v1/hands', summary: 'List Hands and their status', auth: true,
    handler: async ({ api, caller }) => ({ hands: await api.hands.list(caller) }),
  },
  {
    method: 'GET', path: '/api/v1/hands/:name', summary: 'One Hand\'s status', auth: true,
    handler: ({ api, caller, params }) => api.hands.get(caller, params.name!),
  },
  {
    method: 'POST', path: '/api/v1/hands/:name/start', summary: 'Start a Hand', auth: true,
    handler: ({ api, caller, params }) => api.hands.start(caller, params.name!),
  },
  {
    method: 'POST', path: '/api/v1/hands/:name/stop', summary: 'Stop a Hand', auth: true,
    handler: ({ api, caller, params }) => api.hands.stop(caller, params.name!),
  },
  {
    method: 'POST', path: '/api/v1/hands/:name/restart', summary: 'Restart a Hand', auth: true,
    handler: ({ api, caller, params }) => api.hands.restart(caller, params.name!),
  },
  {
    method: 'GET', path: '/api/v1/hands/:name/logs', summary: 'A Hand\'s recent log lines; ?follow=1 streams new ones as server-sent events', auth: true,
    handler: async ({ api, caller, params, query, req, res }) => {
      const name = params.name!;
      const lines = await api.hands.logs(caller, name, { lines: intParam(query, 'lines') ?? 100 });
      if (query.get('follow') !== '1') return { lines };
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      for (const line of lines) res.write(`data: ${JSON.stringify(line)}\n\n`);
      const off = api.hands.follow(caller, name, (line) => res.write(`data: ${JSON.stringify(line)}\n\n`));
      const ping = setInterval(() => res.write(': ping\n\n'), 15000);
      req.on('close', () => {
        off();
        clearInterval(ping);
      });
      return undefined;
    },
  },
  {
    method: 'GET', path: '/api/v1/audit', summary: 'Audit entries, newest first, filtered by actor, action (exact or `prefix.*`), decision, ts range; paged by cursor', auth: true,
    handler: ({ api, caller, query }) => api.audit.query(caller, auditQuery(query)),
  },
  {
    method: 'POST', path: '/api/v1/audit/verify', summary: 'Verify the chain (from the last verified checkpoint, or from the start) and optionally that it still holds a head seen elsewhere', auth: true, body: true,
    handler: ({ api, caller, body }) => {
      if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) throw new TalonError('BAD_REQUEST', 'the body must be a JSON object {from?, against?}');
      const b = (body ?? {}) as { from?: unknown; against?: unknown };
      const extra = Object.keys(b).find((k) => k !== 'from' && k !== 'against');
      if (extra !== undefined) throw new TalonError('BAD_REQUEST', `unknown field "${extra.slice(0, 40)}"; expected from, against`);
      return api.audit.verify(caller, b);
    },
  },
  {
    method: 'GET', path: '/api/v1/audit/head', summary: 'The newest signed checkpoint', auth: true,
    handler: async ({ api, caller }) => ({ head: await api.audit.head(caller) }),
  },
  {
    method: 'GET', path: '/api/v1/audit/export', summary: 'The log as JSON Lines (entries and checkpoints in seq order), optionally from a seq', auth: true,
    handler: async ({ api, caller, query, res }) => {
      const since = intParam(query, 'since', Number.MAX_SAFE_INTEGER);
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'content-disposition': 'attachment; filename="talon-audit.jsonl"' });
      await api.audit.export(caller, res, since !== undefined ? { since } : {});
      res.end();
      return undefined;
    },
  },
  {
    method: 'GET', path: '/metrics', summary: 'Prometheus text exposition of the readings and the runtime\'s own metrics', auth: false,
    handler: async ({ api, caller, res }) => {
      const text = await api.system.metrics(caller);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return undefined;
    },
  },
  {
    method: 'GET', path: '/api/v1/sensors', summary: 'Every sensor with its latest good reading and fault count', auth: true,
    handler: async ({ api, caller }) => ({ sensors: await api.sensors.list(caller) }),
  },
  {
    method: 'GET', path: '/api/v1/sensors/:id', summary: 'Read one sensor now', auth: true,
    handler: ({ api, caller, params }) => api.sensors.read(caller, params.id!),
  },
  {
    method: 'GET', path: '/api/v1/llm/providers', summary: 'LLM providers: breaker state, last error, p50 latency, calls; usage and cost per provider and Hand', auth: true,
    handler: async ({ api, caller }) => ({ providers: await api.llm.providers(caller), usage: await api.llm.usage(caller) }),
  },
  {
    method: 'POST', path: '/api/v1/llm/chat', summary: 'Chat through the LLM router; {"stream": true} answers with server-sent events', auth: true, body: true,
    handler: async ({ api, caller, body, req, res }) => {
      if (!(body as { stream?: unknown } | undefined)?.stream) return api.llm.chat(caller, body);
      const chunks = api.llm.stream(caller, body);
      const ac = new AbortController();
      req.on('close', () => ac.abort());
      const it = chunks[Symbol.asyncIterator]();
      // the first chunk decides the status: an error before any output is a plain JSON error
      const first = await it.next();
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      try {
        for (let r = first; !r.done && !ac.signal.aborted; r = await it.next()) res.write(`data: ${JSON.stringify(r.value)}\n\n`);
      } catch (err) {
        res.write(`event: error\ndata: ${JSON.stringify({ error: TalonError.from(err).toJSON() })}\n\n`);
      }
      res.end();
      return undefined;
    },
  },
  {
    method: 'GET', path: '/api/v1/secrets', summary: 'Names of the sealed secrets (never their values)', auth: true,
    handler: async ({ api, caller }) => ({ secrets: await api.secrets.list(caller) }),
  },
  {
    method: 'PUT', path: '/api/v1/secrets/:name', summary: 'Seal a secret: {"value": "…"}', auth: true, body: true,
    handler: ({ api, caller, params, body }) => api.secrets.set(caller, params.name!, (body as { value?: unknown } | undefined)?.value),
  },
  {
    method: 'DELETE', path: '/api/v1/secrets/:name', summary: 'Delete a sealed secret', auth: true,
    handler: ({ api, caller, params }) => api.secrets.delete(caller, params.name!),
  },
];
