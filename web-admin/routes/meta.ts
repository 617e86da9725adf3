/** The health check, the OpenAPI document and the Prometheus metrics. */
import { defineRoutes, type Route } from '../route.ts';
import { VERSION } from '../../runtime/version.ts';
import { buildOpenApi } from '../openapi.ts';
import { bool, num, obj, open, str } from './schemas.ts';

export const HEALTH = open(
  {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    ok: bool,
    deviceId: str(),
    uptimeMs: num,
    checks: {
      type: 'object',
      required: ['store', 'bus', 'supervisor', 'audit'],
      additionalProperties: { type: 'boolean' },
    },
    problems: { type: 'object', additionalProperties: str(1000), description: 'why each failing check fails' },
  },
  ['status', 'ok', 'deviceId', 'uptimeMs', 'checks'],
);

/** the document of each table a server serves (the kernel's routes and its Hands'), built once */
const docs = new WeakMap<readonly Route[], Record<string, unknown>>();
function openApiOf(routes: readonly Route[]): Record<string, unknown> {
  let doc = docs.get(routes);
  if (!doc) docs.set(routes, (doc = buildOpenApi(routes, { version: VERSION })));
  return doc;
}

export default defineRoutes([
  {
    method: 'GET',
    path: '/healthz',
    operationId: 'healthz',
    summary:
      'Liveness and readiness: 200 when the store (open, writable, with free space), the audit log (writable), the bus and the supervisor are up, else 503 naming the failing checks',
    tag: 'system',
    access: 'public',
    responses: {
      200: { description: 'healthy', schema: HEALTH },
      503: { description: 'a part is down', schema: HEALTH },
    },
    handler: ({ api, res }) => {
      const health = api.health();
      const text = JSON.stringify({ status: health.ok ? 'ok' : 'unavailable', ...health });
      res.writeHead(health.ok ? 200 : 503, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
      return undefined;
    },
  },
  {
    method: 'GET',
    path: '/api/v1/openapi.json',
    operationId: 'openapi',
    summary: 'This API as an OpenAPI 3.1 document, generated from the route table',
    tag: 'system',
    access: 'public',
    responses: {
      200: {
        description: 'the OpenAPI document',
        schema: obj({ openapi: { const: '3.1.0' } }, [], { additionalProperties: true }),
      },
    },
    handler: ({ routes }) => openApiOf(routes),
  },
  {
    method: 'GET',
    path: '/metrics',
    operationId: 'metrics',
    summary: "Prometheus text exposition of the readings and the runtime's own metrics",
    tag: 'system',
    access: 'read',
    responses: { 200: { description: 'Prometheus text format 0.0.4', contentType: 'text/plain' } },
    handler: async ({ api, caller, res }) => {
      const text = await api.system.metrics(caller);
      res.writeHead(200, {
        'content-type': 'text/plain; version=0.0.4; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
      return undefined;
    },
  },
]);
