/**
 * The REST route table: one entry per route, the thin layer over the runtime API.
 * (Issue 6 adds JSON Schemas per route, ajv validation and the generated OpenAPI document
 * from this same table.)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RuntimeApi } from '../runtime/api/runtime-api.ts';
import type { Caller } from '../runtime/supervisor/types.ts';
import { TalonError } from '../runtime/errors.ts';

export interface RouteContext {
  api: RuntimeApi;
  caller: Caller;
  params: Record<string, string>;
  query: URLSearchParams;
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
  /** returns the JSON body, or `undefined` when the handler wrote the response itself (SSE) */
  handler(ctx: RouteContext): Promise<unknown>;
}

function intParam(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,7}$/.test(raw)) throw new TalonError('BAD_REQUEST', `query parameter ${name} must be a whole number (got "${raw.slice(0, 40)}")`);
  return Number(raw);
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
];
