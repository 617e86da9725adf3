import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestartPolicy } from '../../../runtime/supervisor/backoff.ts';

test('exponential delays capped at maxMs, jitter within ±jitter from the injected random', () => {
  const mid = new RestartPolicy(
    { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 },
    { restarts: 100, windowMs: 1000 },
    () => 0.5,
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((a) => mid.delay(a)),
    [100, 200, 400, 800, 1000, 1000],
  );
  const low = new RestartPolicy(
    { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 },
    { restarts: 100, windowMs: 1000 },
    () => 0,
  );
  const high = new RestartPolicy(
    { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 },
    { restarts: 100, windowMs: 1000 },
    () => 0.999999,
  );
  assert.equal(low.delay(1), 100);
  assert.equal(high.delay(1), 300);
});

test('K crashes within the window park the Hand; older crashes fall out of the window', () => {
  const p = new RestartPolicy({ initialMs: 10, maxMs: 1000, factor: 3, jitter: 0 }, { restarts: 3, windowMs: 1000 });
  assert.deepEqual(p.crash(0), { action: 'restart', delayMs: 10, crashesInWindow: 1 });
  assert.deepEqual(p.crash(100), { action: 'restart', delayMs: 30, crashesInWindow: 2 });
  assert.deepEqual(p.crash(200), { action: 'fail', crashesInWindow: 3 });

  const q = new RestartPolicy({ initialMs: 10, maxMs: 1000, factor: 3, jitter: 0 }, { restarts: 3, windowMs: 1000 });
  q.crash(0);
  q.crash(500);
  // the first crash left the window: two in it, and the delay steps back down
  assert.deepEqual(q.crash(1200), { action: 'restart', delayMs: 30, crashesInWindow: 2 });
  q.reset();
  assert.deepEqual(q.crash(1300), { action: 'restart', delayMs: 10, crashesInWindow: 1 });
});
