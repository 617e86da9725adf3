/** Hands: the process manager (list, status, start/stop/restart, settings, logs). */
import { defineRoutes, route, type Schema } from '../route.ts';
import type { RuntimeApi } from '../../runtime/api/runtime-api.ts';
import type { Caller } from '../../runtime/supervisor/types.ts';
import { HAND_NAME, anyObject, bool, int, num, obj, open, params, str } from './schemas.ts';
import { sseHeaders, sseSend } from './sse.ts';

const counters = obj({ published: num, received: num, dropped: num, denied: num, malformed: num });
export const HAND_STATUS: Schema = open(
  {
    name: str(),
    module: str(4096),
    state: str(),
    since: num,
    uptimeMs: num,
    restarts: num,
    cpu: num,
    heapUsedMb: num,
    heapLimitMb: num,
    heapQuotaMb: num,
    messages: counters,
    handlerErrors: num,
    logsDropped: num,
    id: str(),
    version: str(),
    description: str(4096),
    nextStartAt: num,
    lastError: anyObject,
    network: obj({ hosts: { type: 'array', items: str(300) }, raw: bool }),
  },
  [
    'name',
    'module',
    'state',
    'since',
    'uptimeMs',
    'restarts',
    'cpu',
    'heapUsedMb',
    'heapLimitMb',
    'messages',
    'handlerErrors',
    'logsDropped',
  ],
);
export const LOG_LINE: Schema = open({ ts: num, hand: str(), level: str(), msg: { type: 'string' }, data: anyObject }, [
  'ts',
  'hand',
  'level',
  'msg',
]);

const name = params({ name: HAND_NAME });

/** the runtime API's Hand settings calls (runtime-api.ts); typed here so this file stands alone */
interface SettingsApi {
  settings(caller: Caller, name: string): Promise<unknown>;
  updateSettings(caller: Caller, name: string, settings: Record<string, unknown>): Promise<unknown>;
}
const settingsApi = (api: RuntimeApi): SettingsApi => api.hands as unknown as SettingsApi;
const action = (verb: 'start' | 'stop' | 'restart', summary: string) =>
  route({
    method: 'POST',
    path: `/api/v1/hands/{name}/${verb}`,
    operationId: `${verb}Hand`,
    summary,
    tag: 'hands',
    access: 'write',
    params: name,
    responses: { 200: { description: "the Hand's status after the change", schema: HAND_STATUS } },
    handler: ({ api, caller, params: p }) => api.hands[verb](caller, p.name),
  });

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/hands',
    operationId: 'listHands',
    summary: 'List Hands and their status',
    tag: 'hands',
    access: 'read',
    responses: {
      200: { description: 'every configured Hand', schema: obj({ hands: { type: 'array', items: HAND_STATUS } }) },
    },
    handler: async ({ api, caller }) => ({ hands: await api.hands.list(caller) }),
  },
  route({
    method: 'GET',
    path: '/api/v1/hands/{name}',
    operationId: 'getHand',
    summary: "One Hand's status",
    tag: 'hands',
    access: 'read',
    params: name,
    responses: { 200: { description: "the Hand's status", schema: HAND_STATUS } },
    handler: ({ api, caller, params: p }) => api.hands.get(caller, p.name),
  }),
  action('start', 'Start a Hand'),
  action('stop', 'Stop a Hand'),
  action('restart', 'Restart a Hand'),
  route({
    method: 'GET',
    path: '/api/v1/hands/{name}/settings',
    operationId: 'getHandSettings',
    summary: "A Hand's settings and the JSON Schema they follow",
    tag: 'hands',
    access: 'read',
    params: name,
    responses: {
      200: {
        description: 'settings and schema (null when the Hand declares none)',
        schema: obj({ settings: anyObject, schema: { type: ['object', 'null'] } }),
      },
    },
    handler: ({ api, caller, params: p }) => settingsApi(api).settings(caller, p.name),
  }),
  route({
    method: 'PUT',
    path: '/api/v1/hands/{name}/settings',
    operationId: 'updateHandSettings',
    summary: "Replace a Hand's settings (validated against its schema; a new config generation; the Hand restarts)",
    tag: 'hands',
    access: 'write',
    params: name,
    body: obj({ settings: anyObject }),
    responses: {
      200: {
        description: 'the new settings and config generation',
        schema: open({ settings: anyObject, generation: int(0, Number.MAX_SAFE_INTEGER) }),
      },
    },
    handler: ({ api, caller, params: p, body }) => settingsApi(api).updateSettings(caller, p.name, body.settings),
  }),
  route({
    method: 'GET',
    path: '/api/v1/hands/{name}/logs',
    operationId: 'handLogs',
    summary: "A Hand's recent log lines; ?follow=1 streams new ones as server-sent events",
    tag: 'hands',
    access: 'read',
    params: name,
    query: obj({ lines: int(1, 1000, { default: 100 }), follow: { type: 'integer', enum: [0, 1], default: 0 } }, [
      'lines',
      'follow',
    ]),
    responses: {
      200: {
        description: 'recent lines (follow=1: text/event-stream, one LogLine per event)',
        schema: obj({ lines: { type: 'array', items: LOG_LINE } }),
      },
    },
    handler: async ({ api, caller, params: p, query, res, signal }) => {
      const hand = p.name;
      const lines = await api.hands.logs(caller, hand, { lines: query.lines });
      if (query.follow !== 1) return { lines };
      const off = api.hands.follow(caller, hand, (line) => sseSend(res, line));
      sseHeaders(res);
      for (const line of lines) sseSend(res, line);
      const ping = setInterval(() => res.write(': ping\n\n'), 15000);
      // the response's close (client gone, or shutdown ending the stream) ends the follow
      signal.addEventListener(
        'abort',
        () => {
          off();
          clearInterval(ping);
        },
        { once: true },
      );
      return undefined;
    },
  }),
]);
