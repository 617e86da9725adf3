/**
 * The OpenAPI 3.1 document, generated from the route table: every route is an operation,
 * every operation a route. Error responses are added per route from its access and body.
 */
import type { Route, Schema } from './route.ts';

export const ERROR_SCHEMA: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', pattern: '^[A-Z][A-Z0-9_]*$' },
        message: { type: 'string' },
        details: {},
      },
    },
  },
};

const ERROR_TEXT: Record<number, string> = {
  400: 'Bad input: malformed JSON, a wrong type, an unknown field, a bad name (details.errors lists the fields)',
  401: 'Not logged in, or the bearer token is not valid',
  403: 'The role or the token scope does not allow this (SCOPE_ESCALATION: granting a scope or role the caller does not hold), the CSRF header is missing, or a write came from a page on another site (ORIGIN_NOT_ALLOWED)',
  404: 'No such route or object',
  413: 'The body is over 64 KB',
  415: 'The body is not application/json',
  421: "HOST_NOT_ALLOWED: the Host is not one of this device's names or addresses (http.allowedHosts adds more)",
  429: 'Too many attempts: wait for Retry-After seconds',
  500: 'A fault inside Talon',
  503: 'A part is not available; AUDIT_UNAVAILABLE: the audit log cannot be written (a full disk), so the change was refused and nothing happened (Retry-After)',
  504: 'HAND_TIMEOUT: the Hand did not answer in time',
};
/** 503 on a Hand's route: mostly that its Hand does not run */
const HAND_NOT_RUNNING_TEXT =
  'HAND_NOT_RUNNING: the Hand that serves this route is not running (or not configured); AUDIT_UNAVAILABLE on a write whose audit entry cannot be written';

const errorRef = { $ref: '#/components/schemas/Error' };

function errorStatuses(route: Route): number[] {
  const write = route.method !== 'GET';
  const s = [400];
  if (route.access !== 'public') s.push(401, 403);
  else if (write) s.push(403);
  if (route.params || route.access !== 'public') s.push(404);
  if (route.body) s.push(413, 415);
  if (route.path !== '/healthz') s.push(421);
  if (route.tag === 'session') s.push(429);
  s.push(500);
  // a Hand's route: its Hand may not be running (503) or not answer in time (504)
  if (write || route.hand) s.push(503);
  if (route.hand) s.push(504);
  return s;
}

function parameters(route: Route): unknown[] {
  const out: unknown[] = [];
  for (const [where, schema] of [
    ['path', route.params],
    ['query', route.query],
  ] as const) {
    if (!schema) continue;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    const required = new Set((schema.required ?? []) as string[]);
    for (const [name, s] of Object.entries(props)) {
      out.push({
        name,
        in: where,
        required: where === 'path' || required.has(name),
        schema: s,
        ...(typeof s.description === 'string' ? { description: s.description } : {}),
      });
    }
  }
  return out;
}

export function buildOpenApi(
  routes: readonly Route[],
  info: { version: string; title?: string },
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries(route.responses)) {
      responses[status] = {
        description: spec.description,
        ...(spec.schema || spec.contentType
          ? { content: { [spec.contentType ?? 'application/json']: spec.schema ? { schema: spec.schema } : {} } }
          : {}),
      };
    }
    for (const status of errorStatuses(route)) {
      const description = status === 503 && route.hand ? HAND_NOT_RUNNING_TEXT : ERROR_TEXT[status];
      responses[String(status)] ??= { description, content: { 'application/json': { schema: errorRef } } };
    }
    const params = parameters(route);
    const op: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(route.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } }
        : {}),
      responses,
      ...(route.access === 'public' ? { security: [] } : {}),
      'x-access': route.access,
      ...(route.hand ? { 'x-hand': route.hand } : {}),
    };
    (paths[route.path] ??= {})[route.method.toLowerCase()] = op;
  }
  const tags = [...new Set(routes.map((r) => r.tag))].sort().map((name) => ({ name }));
  return {
    openapi: '3.1.0',
    info: {
      title: info.title ?? 'Talon REST API',
      version: info.version,
      description:
        "The device's REST API. Log in (cookie session, with x-csrf-token on writes) or send Authorization: Bearer <token>. Errors are {error: {code, message, details}}. Outside this document: /mcp (POST, GET, DELETE) serves the Model Context Protocol over Streamable HTTP (spec 2025-06-18) when tools.mcp.serve is on; it takes only Authorization: Bearer <an API token with the mcp:write scope>, and answers 404 NOT_FOUND when MCP is not enabled.",
    },
    servers: [{ url: '/' }],
    tags,
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'an API token (tln_…) or the CLI token' },
        session: { type: 'apiKey', in: 'cookie', name: 'talon_session' },
      },
    },
    security: [{ bearer: [] }, { session: [] }],
  };
}
