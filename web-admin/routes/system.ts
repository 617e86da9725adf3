/** System: device info, health, a stats sample and a live stats stream, soft restart. */
import { defineRoutes, route, type Schema } from '../route.ts';
import { HEALTH } from './meta.ts';
import { bool, int, num, obj, open, str } from './schemas.ts';
import { openStream } from './live.ts';

export const STATS_EVERY_MS = 2000;

const nullableNum: Schema = { type: ['number', 'null'] };
export const INFO: Schema = open(
  {
    deviceId: str(),
    deviceName: str(),
    version: str(),
    node: str(),
    platform: str(),
    arch: str(),
    board: str(),
    publicKey: str(100),
    startedAt: num,
    uptimeMs: num,
    configGeneration: { type: ['integer', 'null'] },
  },
  [
    'deviceId',
    'deviceName',
    'version',
    'node',
    'platform',
    'arch',
    'publicKey',
    'startedAt',
    'uptimeMs',
    'configGeneration',
  ],
);

export const STATS: Schema = open({
  ts: num,
  cpu: open({ percent: num, load1: num, cores: num }),
  memory: open({ totalBytes: num, usedBytes: num, rssBytes: num }),
  temperatureC: nullableNum,
  disk: open({ totalBytes: num, usedBytes: num, freeBytes: num, percent: num, path: str(4096) }),
  network: open({ rxBytesPerSec: num, txBytesPerSec: num }),
  hands: { type: 'array', items: open({ name: str(), state: str(), cpu: num, heapUsedMb: num }) },
});

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/system',
    operationId: 'systemInfo',
    summary: 'The device: id, name, version, platform, board, public key, uptime, config generation',
    tag: 'system',
    access: 'read',
    responses: { 200: { description: 'device info', schema: INFO } },
    handler: ({ api, caller }) => api.system.info(caller),
  },
  {
    method: 'GET',
    path: '/api/v1/system/health',
    operationId: 'systemHealth',
    summary: 'The same checks as /healthz, for signed-in callers (always 200; see `ok`)',
    tag: 'system',
    access: 'read',
    responses: { 200: { description: 'health', schema: HEALTH } },
    handler: ({ api }) => {
      const h = api.health();
      return { status: h.ok ? 'ok' : 'unavailable', ...h };
    },
  },
  {
    method: 'GET',
    path: '/api/v1/system/stats',
    operationId: 'systemStats',
    summary: "One sample: CPU, load, memory, temperature, disk, network rates, each Hand's CPU and heap",
    tag: 'system',
    access: 'read',
    responses: { 200: { description: 'a stats sample', schema: STATS } },
    handler: ({ api, caller }) => api.system.stats(caller),
  },
  route({
    method: 'GET',
    path: '/api/v1/system/stats/history',
    operationId: 'systemStatsHistory',
    summary: 'The stats samples of the last minutes (at most 5; the device samples every 2 s), oldest first',
    tag: 'system',
    access: 'read',
    query: obj({ minutes: int(1, 5) }, ['minutes']),
    responses: {
      200: { description: 'stats samples, oldest first', schema: obj({ samples: { type: 'array', items: STATS } }) },
    },
    handler: ({ api, caller, query }) => api.system.statsHistory(caller, (query.minutes ?? 5) * 60_000),
  }),
  {
    method: 'GET',
    path: '/api/v1/system/stream',
    operationId: 'systemStream',
    summary: 'Server-sent events: a `stats` event every 2 s',
    tag: 'system',
    access: 'read',
    responses: {
      200: {
        description: "text/event-stream; each `stats` event's data is a stats sample",
        contentType: 'text/event-stream',
        schema: STATS,
      },
    },
    handler: async (ctx) => {
      const { api, caller } = ctx;
      const first = await api.system.stats(caller);
      const live = openStream(ctx);
      live.send('stats', first, first.ts);
      const timer = setInterval(() => {
        api.system.stats(caller).then(
          (s) => live.send('stats', s, s.ts),
          () => live.end(),
        );
      }, STATS_EVERY_MS);
      live.onClose(() => clearInterval(timer));
      return undefined;
    },
  },
  {
    method: 'POST',
    path: '/api/v1/system/restart',
    operationId: 'systemRestart',
    summary: 'Soft restart of the kernel in process: stop everything, start again from the config generation in force',
    tag: 'system',
    access: 'write',
    responses: {
      202: { description: 'the restart begins once this reply is sent', schema: obj({ restarting: bool }) },
    },
    handler: ({ api, caller }) => api.system.restart(caller),
  },
]);
