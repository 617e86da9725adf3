/**
 * Isolation: Hands that throw, crash, spin, leak and flood are stopped and restarted by the
 * supervisor while a well-behaved counter Hand keeps running and keeps its message rate.
 * Real workers, real aedes bus, real LevelDB. Rates are compared as message counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT, startHarness, waitState, sleep } from '../../helpers/supervisor-harness.ts';

test('misbehaving Hands are contained; the counter keeps running and keeps its rate', async () => {
  const intervalMs = 20;
  const h = await startHarness(
    [
      { name: 'counter', fixture: 'counter', settings: { intervalMs } },
      { name: 'thrower', fixture: 'throw-on-start' },
      { name: 'crasher', fixture: 'crash-after', settings: { afterMs: 200 } },
      { name: 'spinner', fixture: 'spin', settings: { afterMs: 100 } },
      { name: 'leaker', fixture: 'leak' },
      { name: 'flooder', fixture: 'flood' },
    ],
    {
      config: {
        hangTimeoutMs: 800,
        crashLoop: { restarts: 3, windowMs: 60000 },
        backoff: { initialMs: 50, maxMs: 200, factor: 2, jitter: 0.1 },
      },
      limits: { floodSeconds: 2 },
    },
  );
  try {
    const ticks = await h.collect(`${ROOT}/counter/tick`);
    const t0 = Date.now();
    const n0 = ticks.length;

    // every misbehaving Hand is stopped with the right reason and restarted
    // while it spins, its status shows a busy core (measured by the kernel, not reported by the Hand)
    await waitState(h.sup, 'spinner', (s) => s.state === 'running' && s.cpu > 0.8, 20000);
    const spin = await waitState(
      h.sup,
      'spinner',
      (s) => s.restarts >= 1 && s.lastError?.code === 'HAND_TIMEOUT',
      20000,
    );
    assert.match(spin.lastError!.message, /event loop has been blocked/);
    const leak = await waitState(
      h.sup,
      'leaker',
      (s) => s.restarts >= 1 && s.lastError?.code === 'QUOTA_EXCEEDED',
      20000,
    );
    assert.match(leak.lastError!.message, /heap quota of 16 MB/);
    const flood = await waitState(
      h.sup,
      'flooder',
      (s) => s.restarts >= 1 && s.lastError?.code === 'QUOTA_EXCEEDED',
      20000,
    );
    assert.match(flood.lastError!.message, /msg\/s/);
    assert.ok(flood.messages.dropped > flood.messages.published, 'the flood was shed against its quota');
    const crash = await waitState(
      h.sup,
      'crasher',
      (s) => s.restarts >= 1 && s.lastError?.code === 'HAND_CRASHED',
      20000,
    );
    assert.match(crash.lastError!.message, /deliberate crash/);
    // throw-on-start: backoff, then a crash loop parks it as failed with the last error
    const thrower = await waitState(h.sup, 'thrower', 'failed', 20000);
    assert.equal(thrower.lastError?.code, 'HAND_START_FAILED');
    assert.match(thrower.lastError!.message, /boom in start/);

    await sleep(500);
    const elapsed = Date.now() - t0;
    const got = ticks.length - n0;
    const expected = elapsed / intervalMs;
    const counter = h.sup.status('counter');
    assert.equal(counter.state, 'running');
    assert.equal(counter.restarts, 0, 'the counter was never restarted');
    assert.ok(
      got >= expected * 0.5,
      `counter delivered ${got} of ~${Math.round(expected)} expected ticks during the chaos`,
    );
    // the flood did not leak onto the bus beyond its quota (100 msg/s, burst 100)
    const floodPublished = h.sup.status('flooder').messages.published;
    assert.ok(floodPublished <= 100 + (elapsed / 1000 + 10) * 100, `flood published ${floodPublished}`);

    const audit = await h.auditEntries();
    for (const name of ['spinner', 'leaker', 'flooder', 'crasher', 'thrower']) {
      assert.ok(
        audit.some((e) => e.action === 'hand.crash' && e.subject === name && e.decision === 'error'),
        `hand.crash audited for ${name}`,
      );
      assert.ok(
        audit.some((e) => e.action === 'hand.restart' && e.subject === name && e.actor === 'kernel'),
        `hand.restart audited for ${name}`,
      );
    }
    assert.ok(audit.some((e) => e.action === 'hand.failed' && e.subject === 'thrower'));
    assert.ok(
      !audit.some((e) => e.subject === 'counter' && e.action !== 'hand.start'),
      'nothing happened to the counter',
    );
  } finally {
    await h.close();
  }
});
