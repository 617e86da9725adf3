/**
 * What a REST route is. One table (web-admin/routes/*.ts, one file per area) drives the
 * dispatcher, request validation (ajv), response checks in tests, and the OpenAPI 3.1
 * document at /api/v1/openapi.json: no route outside the spec, no spec entry without a route.
 *
 * Paths use OpenAPI's template syntax (`/api/v1/hands/{name}`), so the spec needs no rewriting.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { RuntimeApi } from '../runtime/api/runtime-api.ts';
import type { Caller } from '../runtime/supervisor/types.ts';
import type { AuthService } from './auth/index.ts';

/** A JSON Schema (draft 2020-12 subset that both ajv and OpenAPI 3.1 read). */
export type Schema = Record<string, unknown>;

export type Role = 'viewer' | 'admin';

/** Who is calling, as the auth layer established it. */
export interface Principal {
  /** written into audit entries: `cli`, `user:<name>`, `token:<id>(<user>)`, `anonymous` */
  actor: string;
  kind: 'cli' | 'session' | 'token' | 'anonymous';
  /** the account behind a session or a token */
  user?: string;
  role: Role | null;
  /** token scopes (`hands:read`, `config:write`, `*`); sessions and the CLI hold `*` (bounded by the role: auth/scopes.ts) */
  scopes: string[];
  /** a token's expiry: the tokens it makes expire no later */
  expiresAt?: number;
}

/**
 * Who may call a route:
 * - `public`: anyone (healthz, login, first-run setup, the OpenAPI document);
 * - `read`:   a viewer or an admin; a token needs `<tag>:read` (or `<tag>:write`, or `*`);
 * - `write`:  an admin; a token needs `<tag>:write` (or `*`); cookie sessions also need the CSRF header;
 * - `admin`:  an admin even to read (users, tokens, secrets); a token needs `<tag>:write` (or `*`).
 */
export type Access = 'public' | 'read' | 'write' | 'admin';

/**
 * An area of the API: the OpenAPI tag, and the first half of a token scope. A Hand's routes
 * (hands/sdk/surface.ts) name one of these as their `tag` (default `hands`), so a token's
 * `alerts:read` covers a Hand's routes in the alerts area as it covers the kernel's; a tag
 * outside this list is refused when the routes are mounted (./routes/surfaces.ts).
 */
export type Tag =
  | 'system'
  | 'hands'
  | 'sensors'
  | 'alerts'
  | 'audit'
  | 'config'
  | 'llm'
  | 'chat'
  | 'bus'
  | 'users'
  | 'tokens'
  | 'session'
  | 'provisioning'
  | 'secrets'
  | 'tools'
  | 'schedules'
  | 'channels'
  | 'messages'
  | 'reports'
  | 'prospects'
  | 'automation'
  /** a token scope only (`mcp:write`): the MCP endpoint /mcp, outside the route table */
  | 'mcp';

export interface ResponseSpec {
  description: string;
  /** default application/json; `text/event-stream`, `application/x-ndjson`, `text/plain` for streams and text */
  contentType?: string;
  /** the JSON body (checked against it in tests); for streams, the schema of one event's data */
  schema?: Schema;
}

export interface RouteContext {
  api: RuntimeApi;
  principal: Principal;
  /** principal.actor, in the shape the runtime API takes */
  caller: Caller;
  /** path parameters, validated against `params` */
  params: Record<string, string>;
  /** query parameters, validated (and coerced: numbers, booleans) against `query` */
  query: Record<string, unknown>;
  /** the JSON body, validated against `body` (undefined when the route takes none) */
  body: unknown;
  /** the body as sent, for a `rawBody` route (a webhook whose signature covers the exact bytes) */
  rawBody?: string;
  req: IncomingMessage;
  res: ServerResponse;
  /** aborted when the client goes away */
  signal: AbortSignal;
  /** accounts, sessions and tokens (the session, users and tokens routes) */
  auth: AuthService;
  /** the cookie session behind the request, when there is one */
  session: { id: string; csrf: string } | null;
  /** the client's address (login rate limits) */
  ip: string;
  /** the whole route table this server serves (the kernel's and the Hands'): the OpenAPI document's source */
  routes: readonly Route[];
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** `/api/v1/hands/{name}` */
  path: string;
  /** unique, camelCase: the OpenAPI operationId */
  operationId: string;
  summary: string;
  tag: Tag;
  access: Access;
  /** object schema whose properties are the path parameters (all strings) */
  params?: Schema;
  /** object schema of the query parameters (values arrive as strings; ajv coerces) */
  query?: Schema;
  /** the JSON request body; routes without it refuse a body */
  body?: Schema;
  /** keyed by status code; 200 (or 201/202) is the success, errors are added by the generator */
  responses: Record<number, ResponseSpec>;
  /**
   * Returns the JSON body for the success status (the first 2xx in `responses`), or
   * `undefined` when it wrote the response itself (streams, text).
   */
  handler(ctx: RouteContext): Promise<unknown> | unknown;
  /** for a Hand's route: the Hand module that declared it (its surface's id) */
  hand?: string;
  /** the body is read as text (any content type, at most WEBHOOK_MAX_BYTES) into `rawBody`, not parsed: webhooks */
  rawBody?: boolean;
}

/** Identity helper so route files get type checking without repeating the type. */
export const defineRoutes = (routes: Route[]): Route[] => routes;

/** a schema's type (json-schema-to-ts), or `fallback` when the route declares none */
type SchemaType<S, Fallback> = [S] extends [never] ? Fallback : S extends JSONSchema ? FromSchema<S> : Fallback;

/** A route whose handler sees its params, query and body typed from the route's own schemas. */
export interface TypedRoute<PS, QS, BS> extends Omit<Route, 'params' | 'query' | 'body' | 'handler'> {
  params?: PS;
  query?: QS;
  body?: BS;
  handler(
    ctx: Omit<RouteContext, 'params' | 'query' | 'body'> & {
      params: SchemaType<PS, Record<string, string>>;
      query: SchemaType<QS, Record<string, unknown>>;
      body: SchemaType<BS, undefined>;
    },
  ): Promise<unknown> | unknown;
}

/**
 * A route that takes params, a query or a body: `route({ …, body: obj({…}), handler: ({ body }) => … })`.
 * The schemas (inline, or built with ./routes/schemas.ts's helpers, which keep literal types) are
 * the one declaration: the handler's `params`, `query` and `body` are typed from them
 * (json-schema-to-ts `FromSchema`), so it needs no casts. Returns the plain Route: the router
 * and the OpenAPI document see no difference.
 */
export function route<
  const PS extends JSONSchema = never,
  const QS extends JSONSchema = never,
  const BS extends JSONSchema = never,
>(r: TypedRoute<PS, QS, BS>): Route {
  return r as unknown as Route;
}
