/**
 * The supervisor's API and state machine: start/stop/restart, HAND_NOT_FOUND / HAND_STATE,
 * restart backoff and crash-loop parking, graceful stop within a deadline, invalid manifests
 * and config that widens grants, retained status on the bus, audit of every transition.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT, startHarness, waitFor, waitState } from '../../helpers/supervisor-harness.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandStatus } from '../../../runtime/supervisor/types.ts';

const kernelIsFine = (statuses: HandStatus[], name: string) =>
  statuses.find((s) => s.name === name)?.state === 'running';

test('start, stop and restart through the API, with audit, events and retained status', async () => {
  const h = await startHarness(
    [
      { name: 'idle', fixture: 'idle' },
      { name: 'spare', fixture: 'idle', enabled: false },
    ],
    { start: false },
  );
  try {
    const events: HandStatus[] = [];
    h.sup.on('status', (s) => events.push(s));
    assert.equal(h.sup.isUp(), false);
    await h.sup.start();
    assert.equal(h.sup.isUp(), true);
    assert.equal(h.sup.status('idle').state, 'running');
    assert.equal(h.sup.status('spare').state, 'stopped', 'a disabled Hand is not started');
    assert.deepEqual(
      events.filter((e) => e.name === 'idle').map((e) => e.state),
      ['starting', 'running'],
    );
    assert.equal(h.sup.status('idle').id, 'idle');
    assert.ok(h.sup.logs('idle').some((l) => l.msg === 'idle started' && l.level === 'info'));

    // invalid transitions and unknown names are typed errors
    await assert.rejects(
      h.sup.startHand('idle', { actor: 'cli' }),
      (e: TalonError) => e.code === 'HAND_STATE' && e.status === 409,
    );
    await assert.rejects(h.sup.stopHand('spare', { actor: 'cli' }), (e: TalonError) => e.code === 'HAND_STATE');
    assert.throws(
      () => h.sup.status('ghost'),
      (e: TalonError) => e.code === 'HAND_NOT_FOUND' && e.status === 404,
    );
    await assert.rejects(h.sup.restartHand('ghost', { actor: 'cli' }), (e: TalonError) => e.code === 'HAND_NOT_FOUND');

    const stopped = await h.sup.stopHand('idle', { actor: 'http:admin' });
    assert.equal(stopped.state, 'stopped');
    const started = await h.sup.startHand('spare', { actor: 'cli' });
    assert.equal(started.state, 'running');
    const restarted = await h.sup.restartHand('spare', { actor: 'mqtt:ops' });
    assert.equal(restarted.state, 'running');
    assert.equal(restarted.restarts, 1);

    // the retained status is on the bus for anyone who subscribes later
    const seen = await h.collect(`${ROOT}/hands/+/status`);
    await waitFor('retained statuses', () => seen.length >= 2);
    const idleStatus = seen.map((m) => JSON.parse(m.payload.toString())).find((s) => s.name === 'idle');
    assert.equal(idleStatus.state, 'stopped');
    assert.ok(seen.every((m) => m.retain));

    const audit = await h.auditEntries();
    const find = (action: string, subject: string, actor: string) =>
      audit.find((e) => e.action === action && e.subject === subject && e.actor === actor);
    assert.ok(find('hand.start', 'idle', 'kernel'));
    assert.ok(find('hand.stop', 'idle', 'http:admin'));
    assert.ok(find('hand.start', 'spare', 'cli'));
    assert.ok(find('hand.restart', 'spare', 'mqtt:ops'));
  } finally {
    await h.close();
  }
});

test('a crashing Hand backs off, restarts, and a crash loop parks it as failed with the last error', async () => {
  const h = await startHarness(
    [
      { name: 'crasher', fixture: 'crash-after', settings: { afterMs: 30 } },
      { name: 'idle', fixture: 'idle' },
    ],
    {
      config: {
        backoff: { initialMs: 40, maxMs: 1000, factor: 2, jitter: 0 },
        crashLoop: { restarts: 4, windowMs: 60000 },
      },
      start: false,
    },
  );
  try {
    const states: HandStatus[] = [];
    // listening before the start: the first crash can come before the idle Hand is up
    h.sup.on('status', (s) => {
      if (s.name === 'crasher') states.push(s);
    });
    await h.sup.start();
    const failed = await waitState(h.sup, 'crasher', 'failed', 15000);
    assert.equal(failed.lastError?.code, 'HAND_CRASHED');
    assert.match(failed.lastError!.message, /deliberate crash/);
    assert.equal(failed.restarts, 3, 'four crashes: three restarts, then parked');
    // backoff grows: 40, 80, 160 ms (jitter 0)
    const backoffs = states.filter((s) => s.state === 'backoff').map((s) => s.nextStartAt! - s.since);
    assert.deepEqual(backoffs, [40, 80, 160]);
    assert.ok(kernelIsFine(h.sup.list(), 'idle'));

    const audit = await h.auditEntries();
    assert.equal(audit.filter((e) => e.action === 'hand.crash' && e.subject === 'crasher').length, 4);
    const parked = audit.find((e) => e.action === 'hand.failed' && e.subject === 'crasher');
    assert.equal((parked?.detail as { reason: string }).reason, 'crash loop');

    // an operator can start a failed Hand again; the crash history is reset
    const again = await h.sup.startHand('crasher', { actor: 'cli' });
    assert.equal(again.state, 'running');
    await h.sup.stopHand('crasher', { actor: 'cli' });
  } finally {
    await h.close();
  }
});

test('a Hand that throws in start goes to backoff; the supervisor and other Hands carry on', async () => {
  const h = await startHarness(
    [
      { name: 'thrower', fixture: 'throw-on-start' },
      { name: 'idle', fixture: 'idle' },
    ],
    {
      config: { backoff: { initialMs: 5000, maxMs: 5000, factor: 1, jitter: 0 } },
    },
  );
  try {
    const s = h.sup.status('thrower');
    assert.equal(s.state, 'backoff', 'start() resolved with the Hand in backoff');
    assert.equal(s.lastError?.code, 'HAND_START_FAILED');
    assert.ok(s.nextStartAt! > s.since);
    assert.equal(h.sup.status('idle').state, 'running');
    // stopping a Hand in backoff cancels the pending restart
    await h.sup.stopHand('thrower', { actor: 'cli' });
    assert.equal(h.sup.status('thrower').state, 'stopped');
  } finally {
    await h.close();
  }
});

test('stop() stops every Hand within the deadline, terminating those whose stop() hangs', async () => {
  const h = await startHarness([
    { name: 'a', fixture: 'idle' },
    { name: 'b', fixture: 'counter' },
    { name: 'stuck', fixture: 'stuck-stop' },
  ]);
  try {
    assert.deepEqual(
      h.sup.list().map((s) => s.state),
      ['running', 'running', 'running'],
    );
    const t0 = Date.now();
    await h.sup.stop(300);
    const took = Date.now() - t0;
    assert.deepEqual(
      h.sup.list().map((s) => s.state),
      ['stopped', 'stopped', 'stopped'],
    );
    assert.equal(h.sup.isUp(), false);
    assert.ok(
      h.sup.logs('stuck').some((l) => /did not finish within 300 ms/.test(l.msg)),
      'the stuck Hand was terminated at the deadline',
    );
    assert.ok(!h.sup.logs('a').some((l) => /did not finish/.test(l.msg)), 'the idle Hand stopped by itself');
    assert.ok(took < 5000, `stop took ${took} ms`); // a bound on a hang, not a timing assertion
    const audit = await h.auditEntries();
    const stuck = audit.find((e) => e.action === 'hand.stop' && e.subject === 'stuck');
    assert.equal((stuck?.detail as { graceful: boolean }).graceful, false);
    const a = audit.find((e) => e.action === 'hand.stop' && e.subject === 'a');
    assert.equal((a?.detail as { graceful: boolean }).graceful, true);
  } finally {
    await h.close();
  }
});

test('an invalid manifest parks that Hand as failed with MANIFEST_INVALID naming the fields; others run', async () => {
  const h = await startHarness([
    { name: 'bad', fixture: 'bad-manifest' },
    { name: 'idle', fixture: 'idle' },
  ]);
  try {
    const bad = h.sup.status('bad');
    assert.equal(bad.state, 'failed');
    assert.equal(bad.lastError?.code, 'MANIFEST_INVALID');
    assert.match(bad.lastError!.message, /manifest\.version/);
    assert.match(bad.lastError!.message, /manifest\.quotas\.heapMb/);
    assert.equal(h.sup.status('idle').state, 'running');
    const audit = await h.auditEntries();
    assert.ok(audit.some((e) => e.action === 'hand.failed' && e.subject === 'bad'));
  } finally {
    await h.close();
  }
});

test('a config that widens the manifest grants parks the Hand with CONFIG_INVALID naming the path', async () => {
  const h = await startHarness([
    { name: 'greedy', fixture: 'counter', capabilities: { bus: { publish: ['alerts/#'], subscribe: [] } } },
    { name: 'narrow', fixture: 'counter', capabilities: { bus: { publish: ['counter/tick'], subscribe: [] } } },
    { name: 'missing', fixture: '/nonexistent/hand.cjs' },
  ]);
  try {
    const greedy = h.sup.status('greedy');
    assert.equal(greedy.state, 'failed');
    assert.equal(greedy.lastError?.code, 'CONFIG_INVALID');
    assert.match(greedy.lastError!.message, /hands\.greedy\.capabilities\.bus\.publish\[0\]/);
    assert.equal(h.sup.status('narrow').state, 'running', 'narrowing is fine');
    const missing = h.sup.status('missing');
    assert.equal(missing.state, 'failed');
    assert.match(missing.lastError!.message, /does not exist/);
  } finally {
    await h.close();
  }
});
