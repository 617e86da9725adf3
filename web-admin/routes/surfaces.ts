/**
 * Where the Hands' routes mount: every route a Hand's surface declares (hands/sdk/surface.ts)
 * becomes a route of the table like the kernel's own, so it is dispatched, validated,
 * access-checked (its tag is an API area: `alerts` → the `alerts:read` scope) and listed in the
 * OpenAPI document. Its handler gets the Hand's side of the context: `request(kind, body)` to
 * the running Hand (through the runtime API's one client, runtime/api/hand-requests.ts), an
 * audited action, bus messages to follow and an event stream. This file names no Hand.
 *
 * A route under `/api/v1/hands/{name}/…` is the Hand's own: `{name}` names the instance its
 * requests go to (a Hand of another module there is NOT_FOUND). A route elsewhere (an area
 * prefix such as `/api/v1/alerts`) asks the running instance of the module.
 */
import type { AnySurface, HandRoute, HandRouteContext } from '../../hands/sdk/surface.ts';
import type { Route, RouteContext, Schema, Tag } from '../route.ts';
import { TAGS } from '../auth/scopes.ts';
import { HAND_NAME } from './schemas.ts';
import { openStream } from './live.ts';

/** the prefix of a Hand's own routes; `{name}` is the instance */
export const HAND_ROUTE_PREFIX = '/api/v1/hands/{name}/';

/** The routes of every surface, in the order given; a bad declaration throws (at start, not at the first call). */
export function surfaceRoutes(surfaces: readonly AnySurface[]): Route[] {
  const out: Route[] = [];
  const seen = new Map<string, string>();
  for (const s of surfaces) {
    for (const r of s.routes ?? []) {
      const key = `${r.method} ${r.path}`;
      const other = seen.get(key);
      if (other !== undefined) throw new Error(`Hand "${s.id}": route ${key} is declared by Hand "${other}" too`);
      seen.set(key, s.id);
      out.push(mount(s, r));
    }
    if (s.webhooks) {
      const w = s.webhooks;
      const key = `POST ${w.path}`;
      const other = seen.get(key);
      if (other !== undefined) throw new Error(`Hand "${s.id}": route ${key} is declared by Hand "${other}" too`);
      seen.set(key, s.id);
      out.push(webhookRoute(s, w));
    }
  }
  return out;
}

/** the headers a webhook's Hand sees (lower-cased names, at most 40 of them, values cut at 1 KiB) */
function webhookHeaders(ctx: RouteContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.req.headers).slice(0, 40)) {
    if (k === 'cookie' || k === 'authorization') continue;
    out[k] = (Array.isArray(v) ? v.join(', ') : String(v ?? '')).slice(0, 1024);
  }
  return out;
}

/** a surface's inbound webhooks: public, raw body and headers to its request kind (the Hand checks the signature) */
function webhookRoute(s: AnySurface, w: NonNullable<AnySurface['webhooks']>): Route {
  const where = `Hand "${s.id}": webhook POST ${w.path}`;
  if (!w.path.startsWith('/api/v1/') || !w.path.includes('{name}'))
    throw new Error(`${where}: a webhook path is under /api/v1/ and has a {name} (the channel)`);
  return {
    method: 'POST',
    path: w.path,
    operationId: `${s.id.replace(/-(\w)/g, (_m, c: string) => c.toUpperCase())}Webhook`,
    summary: w.summary,
    tag: 'hands',
    access: 'public',
    params: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' } },
    },
    responses: {
      200: {
        description: 'accepted (or a duplicate, accepted again)',
        schema: {
          type: 'object',
          additionalProperties: false,
          required: ['accepted'],
          properties: { accepted: { type: 'boolean' } },
        },
      },
    },
    rawBody: true,
    hand: s.id,
    handler: (ctx: RouteContext) =>
      ctx.api.handSurface.request(
        ctx.caller,
        s.id,
        w.kind,
        { channel: ctx.params.name, headers: webhookHeaders(ctx), body: ctx.rawBody ?? '' },
        { signal: ctx.signal },
      ),
  };
}

function mount(s: AnySurface, r: HandRoute): Route {
  const where = `Hand "${s.id}": route ${r.method} ${r.path}`;
  const tag = r.tag ?? 'hands';
  if (!(TAGS as readonly string[]).includes(tag))
    throw new Error(`${where}: tag "${tag}" is not one of the API's areas (${TAGS.join(', ')})`);
  if (!r.path.startsWith('/api/v1/')) throw new Error(`${where}: a Hand's routes are under /api/v1/`);
  const own = r.path.startsWith(HAND_ROUTE_PREFIX);
  if (!own && r.path.startsWith('/api/v1/hands/'))
    throw new Error(`${where}: a Hand's own routes are under ${HAND_ROUTE_PREFIX}…`);
  if ((r.access as string) === 'public') throw new Error(`${where}: a Hand's routes are never public`);
  let params = r.params as Schema | undefined;
  if (own) {
    // `{name}` is the kernel's: the Hand name pattern, whatever the surface wrote for it
    const props = { ...((params?.properties ?? {}) as Record<string, Schema>), name: HAND_NAME };
    params = {
      type: 'object',
      additionalProperties: false,
      ...params,
      properties: props,
      required: Object.keys(props),
    };
  }
  return {
    method: r.method,
    path: r.path,
    operationId: r.operationId,
    summary: r.summary,
    tag: tag as Tag,
    access: r.access,
    ...(params ? { params } : {}),
    ...(r.query ? { query: r.query as Schema } : {}),
    ...(r.body ? { body: r.body as Schema } : {}),
    responses: r.responses as Route['responses'],
    hand: s.id,
    handler: (ctx: RouteContext) => r.handler(handContext(s, ctx, own ? ctx.params.name : undefined)),
  };
}

function handContext(s: AnySurface, ctx: RouteContext, hand: string | undefined): HandRouteContext {
  const { api, caller } = ctx;
  return {
    caller,
    params: ctx.params,
    query: ctx.query,
    body: ctx.body,
    signal: ctx.signal,
    request: ((kind: string, body: unknown, opts: { hand?: string; timeoutMs?: number } = {}) =>
      api.handSurface.request(caller, s.id, kind, body, {
        ...(hand !== undefined ? { hand } : {}),
        ...opts,
        signal: ctx.signal,
      })) as HandRouteContext['request'],
    audited: (intent, act) => api.handSurface.audited(caller, intent, act),
    follow: (filter, onMessage) => api.handSurface.follow(caller, filter, onMessage),
    events: () => openStream(ctx),
  };
}
