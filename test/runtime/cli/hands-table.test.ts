import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handsTable, statusText } from '../../../runtime/cli/commands/hands.ts';
import type { HandStatus } from '../../../runtime/supervisor/types.ts';

const base: HandStatus = {
  name: 'h',
  module: 'x',
  state: 'running',
  since: 0,
  uptimeMs: 60_000,
  restarts: 0,
  cpu: 0.01,
  heapUsedMb: 3,
  heapLimitMb: 64,
  messages: { published: 0, received: 0, dropped: 0, denied: 0, malformed: 0 },
  handlerErrors: 0,
  logsDropped: 0,
};

test('talon hands list/status show an on-demand Hand and a pool for what they are', () => {
  const table = handsTable(
    [
      { ...base, name: 'plain' },
      {
        ...base,
        name: 'lazy',
        state: 'stopped',
        mode: 'on-demand',
        onDemand: { armed: true, idleStopMs: 300_000, queued: 0 },
      },
      { ...base, name: 'pool', instances: { running: 2, min: 1, max: 4, queued: 3, inFlight: 8 } },
    ],
    0,
  );
  const line = (name: string) => table.split('\n').find((l) => l.startsWith(name)) ?? '';
  assert.match(line('plain'), /^plain\s+running\s/);
  assert.match(line('lazy'), /stopped on demand/);
  assert.match(line('pool'), /running ×2 of 1–4/);
  const st = statusText(
    {
      ...base,
      mode: 'on-demand',
      onDemand: { armed: false, idleStopMs: 60_000, queued: 0 },
      instances: { running: 2, min: 1, max: 4, queued: 3, inFlight: 8 },
    },
    0,
  );
  assert.match(st, /mode:\s+on demand: .*stopped after 1m00s idle \(disarmed by a stop/);
  assert.match(st, /instances:\s+2 running \(1–4\), 8 tasks in flight, 3 queued/);
});
