/**
 * A kernel slice that serves Hands' surfaces: the supervisor harness (real workers, bus, store,
 * audit) under the runtime API and the HTTP layer, in process through light-my-request. What the
 * composition root wires (runtime/host/kernel.ts), with the surfaces a test picks.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import inject, { type InjectOptions, type Response } from 'light-my-request';
import type { Harness } from '../../helpers/supervisor-harness.ts';
import { RuntimeApi } from '../../../runtime/api/runtime-api.ts';
import { SensorRegistry } from '../../../runtime/sensors/registry.ts';
import { kernelHealth } from '../../../runtime/api/health.ts';
import { HttpServer } from '../../../web-admin/server.ts';
import type { AnySurface } from '../../../hands/sdk/surface.ts';

export const TOKEN = 't'.repeat(43);

export interface Slice {
  api: RuntimeApi;
  http: HttpServer;
  /** a request with the CLI's bearer token (override the header to send another; '' sends none) */
  send(opts: InjectOptions): Promise<Response>;
  close(): Promise<void>;
}

export async function serveSurfaces(
  h: Harness,
  surfaces: readonly AnySurface[],
  opts: { requestTimeoutMs?: number } = {},
): Promise<Slice> {
  const sensors = new SensorRegistry([], h.bus, h.audit);
  const api = new RuntimeApi({
    supervisor: h.sup,
    audit: h.audit,
    auditLog: h.audit,
    sensors,
    metrics: () => ({
      deviceId: 'dev1',
      uptimeMs: 1,
      sensors: [],
      drivers: [],
      hands: h.sup.list(),
      bus: h.bus.stats(),
      audit: { seq: 0, checkpointSeq: 0 },
      process: { rssBytes: 1, heapUsedBytes: 1, cpuSeconds: 0 },
    }),
    health: () =>
      kernelHealth({ store: h.store, bus: h.bus, supervisor: h.sup, audit: h.audit, deviceId: 'dev1', uptimeMs: 1 }),
    areas: { bus: h.bus },
    surfaces,
    ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
  });
  const http = new HttpServer({
    api,
    listen: { host: '127.0.0.1', port: 0 },
    cliToken: TOKEN,
    store: h.store,
    audit: h.audit,
    dataDir: mkdtempSync(join(tmpdir(), 'talon-surface-')),
  });
  await http.listen();
  return {
    api,
    http,
    send: (o) => {
      // the CLI's token unless the request says otherwise (an empty authorization: none)
      const headers: Record<string, string> = {
        authorization: `Bearer ${TOKEN}`,
        ...(o.headers as Record<string, string> | undefined),
      };
      if (headers.authorization === '') delete headers.authorization;
      return inject((rq, rs) => void http.handle(rq, rs), { ...o, headers });
    },
    close: () => http.close(),
  };
}
