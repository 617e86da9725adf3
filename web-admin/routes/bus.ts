/** Bus: recent traffic under talon/<deviceId>/, and publishing a test message. */
import { defineRoutes, route } from '../route.ts';
import { bool, int, num, obj, open, str } from './schemas.ts';

/** a topic relative to talon/<deviceId>/: levels of printable characters, no wildcards, no leading slash */
const TOPIC = {
  type: 'string',
  minLength: 1,
  maxLength: 512,
  pattern: '^[^/#+\\u0000-\\u001f$][^#+\\u0000-\\u001f]*$',
} as const;
const FILTER = { type: 'string', minLength: 1, maxLength: 512, pattern: '^[^\\u0000-\\u001f]+$' } as const;

export default defineRoutes([
  route({
    method: 'GET',
    path: '/api/v1/bus/recent',
    operationId: 'busRecent',
    summary: 'The most recent messages under talon/<deviceId>/ (newest first, payloads clipped to 1 KB)',
    tag: 'bus',
    access: 'read',
    query: obj({ limit: int(1, 500, { default: 100 }), filter: FILTER }, ['limit', 'filter']),
    responses: {
      200: {
        description: 'recent messages; topics relative to the device root',
        schema: obj({
          messages: {
            type: 'array',
            items: open({
              ts: num,
              topic: str(65535),
              payload: { type: 'string' },
              truncated: bool,
              bytes: num,
              retain: bool,
              qos: int(0, 2),
            }),
          },
        }),
      },
    },
    handler: async ({ api, caller, query }) => ({
      messages: await api.bus.recent(caller, query),
    }),
  }),
  route({
    method: 'POST',
    path: '/api/v1/bus/publish',
    operationId: 'busPublish',
    summary: 'Publish a test message on a topic under talon/<deviceId>/ (kernel-reserved topics are refused)',
    tag: 'bus',
    access: 'write',
    body: obj({ topic: TOPIC, payload: { type: 'string', maxLength: 16384 }, retain: bool, qos: int(0, 2) }, [
      'retain',
      'qos',
    ]),
    responses: { 200: { description: 'the absolute topic it went out on', schema: obj({ topic: str(1024) }) } },
    handler: ({ api, caller, body: b }) => {
      return api.bus.publish(caller, b.topic, b.payload, {
        ...(b.retain !== undefined ? { retain: b.retain } : {}),
        // the schema's range, 0..2 (an integer schema types as number)
        ...(b.qos !== undefined ? { qos: b.qos as 0 | 1 | 2 } : {}),
      });
    },
  }),
]);
