/**
 * Issue 14: `hands list` showed 100 % CPU for a Hand that had just started: the first heartbeat's
 * event-loop window was the worker's whole life, its boot included. The first heartbeat is only a
 * baseline; CPU is reported over full heartbeat intervals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, sleep, waitState } from '../../helpers/supervisor-harness.ts';

test('an idle Hand that just started does not show a busy CPU', async () => {
  const h = await startHarness([{ name: 'idle', fixture: 'idle' }], {
    config: { heartbeatMs: 300, hangTimeoutMs: 3000 },
  });
  try {
    await waitState(h.sup, 'idle', 'running');
    const seen: number[] = [];
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      seen.push(h.sup.status('idle').cpu);
      await sleep(5);
    }
    assert.ok(
      Math.max(...seen) < 0.5,
      `an idle Hand showed ${Math.max(...seen)} of a core: ${[...new Set(seen)].join(', ')}`,
    );
  } finally {
    await h.close();
  }
});
