/** Sensors: the list with latest values, a read now, live readings. (A Hand may add more, such as history by range, through its surface.) */
import { defineRoutes, route, type Schema } from '../route.ts';
import { SENSOR_ID, num, obj, open, params, str } from './schemas.ts';
import { openStream, type Live } from './live.ts';

const READING: Schema = open({ sensor: str(), value: {}, ts: num }, ['value', 'ts']);
const SENSOR: Schema = open(
  {
    id: str(),
    name: str(),
    unit: str(),
    kind: str(),
    driver: str(),
    latest: { anyOf: [READING, { type: 'null' }] },
    faults: num,
  },
  ['id', 'driver', 'latest', 'faults'],
);
const LIVE: Schema = open({ id: str(), value: {}, ts: {} }, ['id', 'value']);

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/sensors',
    operationId: 'listSensors',
    summary: 'Every sensor with its latest good reading and fault count',
    tag: 'sensors',
    access: 'read',
    responses: { 200: { description: 'the sensors', schema: obj({ sensors: { type: 'array', items: SENSOR } }) } },
    handler: async ({ api, caller }) => ({ sensors: await api.sensors.list(caller) }),
  },
  {
    // before /{id} so `stream` is never taken for a sensor id
    method: 'GET',
    path: '/api/v1/sensors/stream',
    operationId: 'sensorStream',
    summary: 'Server-sent events: one `reading` event per reading published on the bus',
    tag: 'sensors',
    access: 'read',
    responses: {
      200: { description: 'text/event-stream of {id, value, ts}', contentType: 'text/event-stream', schema: LIVE },
    },
    handler: async (ctx) => {
      let live: Live | null = null;
      const off = await ctx.api.sensors.follow(ctx.caller, (r) => live?.send('reading', r));
      live = openStream(ctx);
      live.onClose(off);
      return undefined;
    },
  },
  route({
    method: 'GET',
    path: '/api/v1/sensors/{id}',
    operationId: 'readSensor',
    summary: 'Read one sensor now',
    tag: 'sensors',
    access: 'read',
    params: params({ id: SENSOR_ID }),
    responses: { 200: { description: 'the reading', schema: READING } },
    handler: ({ api, caller, params: p }) => api.sensors.read(caller, p.id),
  }),
]);
