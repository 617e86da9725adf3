/**
 * Pooled Hands (runtime/supervisor/pool.ts): a Hand with `instances: {min, max}` runs min
 * workers; its task inbox is shared out (each task to one worker, at most PER_INSTANCE in flight
 * per worker), workers are added while the queue is deep and stopped when idle; other
 * subscriptions reach every worker. Config errors name the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT, startHarness, waitFor, waitState } from '../../helpers/supervisor-harness.ts';
import { Supervisor } from '../../../runtime/supervisor/supervisor.ts';
import { PER_INSTANCE } from '../../../runtime/supervisor/pool.ts';
import { checkConfig } from '../../../runtime/config/validate.ts';
import type { HandStatus } from '../../../runtime/supervisor/types.ts';
import { kernelTools, type KernelToolDeps } from '../../../runtime/tools/builtin/kernel.ts';

const INBOX = `${ROOT}/hands/pool/tasks`;

interface Answer {
  id: string;
  ok: boolean;
  result: { echo: number; worker: string; concurrent: number };
}

test('40 tasks to a {min: 1, max: 3} Hand: it scales up, each task is answered once, then it scales back to min', async (t) => {
  const h = await startHarness([
    { name: 'pool', fixture: 'pool-worker', instances: { min: 1, max: 3 }, idleStopMs: 1000 },
  ]);
  t.after(() => h.close());
  const replies = await h.collect(`${ROOT}/test/replies/#`);
  let maxRunning = 0;
  const onStatus = (s: HandStatus): void => {
    if (s.name === 'pool' && s.instances) maxRunning = Math.max(maxRunning, s.instances.running);
  };
  h.sup.on('status', onStatus);
  t.after(() => h.sup.off('status', onStatus));

  const boot = h.sup.status('pool');
  assert.equal(boot.state, 'running');
  assert.equal(boot.mode, 'always');
  assert.deepEqual(boot.instances, { running: 1, min: 1, max: 3, queued: 0, inFlight: 0 });

  for (let i = 0; i < 40; i++) {
    await h.bus.publish(
      INBOX,
      JSON.stringify({ id: `t${i}`, replyTo: 'test/replies/pool', task: { value: i, ms: 150 } }),
      { qos: 1 },
    );
  }
  await waitFor('40 answers', () => replies.length >= 40, 30_000);
  // settled: nothing queued or in flight any more, so a late duplicate would have come by now
  await waitState(h.sup, 'pool', (s) => s.instances?.queued === 0 && s.instances.inFlight === 0);
  const got = replies.map((m) => JSON.parse(m.payload.toString('utf8')) as Answer);
  assert.equal(got.length, 40, 'no task answered twice');
  assert.deepEqual(
    got.map((a) => a.result.echo).sort((a, b) => a - b),
    Array.from({ length: 40 }, (_, i) => i),
  );
  assert.ok(
    got.every((a) => a.ok),
    'all succeeded',
  );
  assert.ok(maxRunning > 1, `scaled up (at most ${maxRunning} running)`);
  assert.ok(maxRunning <= 3, 'never above max');
  const workers = new Set(got.map((a) => a.result.worker));
  assert.ok(workers.size > 1, `more than one worker served tasks (${workers.size})`);
  const most = Math.max(...got.map((a) => a.result.concurrent));
  assert.ok(most <= PER_INSTANCE, `a worker held at most ${PER_INSTANCE} tasks at once (${most})`);

  // idle: back to min
  const down = await waitState(h.sup, 'pool', (s) => s.instances?.running === 1 && s.state === 'running', 20_000);
  assert.equal(down.instances?.min, 1);
  const scale = (await h.auditEntries()).filter((e) => e.action === 'hand.scale' && e.subject === 'pool');
  const ups = scale.filter((e) => (e.detail as { to: number; from: number }).to > (e.detail as { from: number }).from);
  const downs = scale.filter(
    (e) => (e.detail as { to: number; from: number }).to < (e.detail as { from: number }).from,
  );
  assert.ok(ups.length >= 1, 'scale up audited');
  assert.equal(ups.length, downs.length, 'each added worker was stopped again');
  assert.ok(typeof (ups[0]!.detail as { queued: number }).queued === 'number');
  assert.ok(scale.every((e) => e.actor === 'kernel'));
});

test('a pooled Hand starts min workers; subscriptions besides the inbox reach every worker', async (t) => {
  const h = await startHarness([
    { name: 'pool', fixture: 'pool-worker', instances: { min: 2, max: 2 }, idleStopMs: 60_000 },
  ]);
  t.after(() => h.close());
  const seen = await h.collect(`${ROOT}/test/other/seen`);
  const replies = await h.collect(`${ROOT}/test/replies/#`);
  const st = await waitState(h.sup, 'pool', (s) => s.instances?.running === 2);
  assert.equal(st.state, 'running');
  await h.bus.publish(`${ROOT}/test/other/in`, 'hi', { qos: 1 });
  await waitFor('both workers to see the broadcast', () => seen.length >= 2);
  assert.equal(new Set(seen.map((m) => m.payload.toString())).size, 2, 'two different workers');
  // one task goes to one worker
  await h.bus.publish(INBOX, JSON.stringify({ id: 'one', replyTo: 'test/replies/pool', task: { value: 1 } }), {
    qos: 1,
  });
  await waitFor('the answer', () => replies.length >= 1);
  await waitState(h.sup, 'pool', (s) => s.instances?.inFlight === 0);
  assert.equal(replies.length, 1);

  // stop: every worker; start: min again; the store scope and logs are the Hand's
  const stopped = await h.sup.stopHand('pool', { actor: 'cli' });
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.instances?.running, 0);
  const started = await h.sup.startHand('pool', { actor: 'cli' });
  assert.equal(started.instances?.running, 2);
  const restarted = await h.sup.restartHand('pool', { actor: 'cli' });
  assert.equal(restarted.instances?.running, 2);
  assert.ok(
    h.sup.logs('pool').some((l) => l.msg.startsWith('[pool~2]')),
    'the second worker is named in the log',
  );
});

test('config errors name the field', async () => {
  const bad = (instances: unknown) => checkConfig({ hands: [{ name: 'p', module: './p.js', instances }] }).problems;
  assert.deepEqual(
    bad({ min: 2, max: 1 }).map((p) => p.path),
    ['hands[0].instances.max'],
  );
  assert.deepEqual(
    bad({ min: 1, max: 17 }).map((p) => p.path),
    ['hands[0].instances.max'],
  );
  assert.deepEqual(
    bad({ min: 0, max: 2 }).map((p) => p.path),
    ['hands[0].instances.min'],
  );
  assert.deepEqual(
    checkConfig({ hands: [{ name: 'p', module: './p.js', idleStopMs: 10 }] }).problems.map((p) => p.path),
    ['hands[0].idleStopMs'],
  );
  assert.deepEqual(
    checkConfig({ hands: [{ name: 'p', module: './p.js', mode: 'lazy' }] }).problems.map((p) => p.path),
    ['hands[0].mode'],
  );
  assert.deepEqual(
    checkConfig({ hands: [{ name: 'p', module: './p.js', instances: { min: 1, max: 3 } }] }).problems,
    [],
  );
  // the supervisor refuses it too (a config that did not pass through validation)
  assert.throws(
    () =>
      new Supervisor({
        config: {} as never,
        hands: [{ name: 'p', module: './p.js', enabled: true, settings: {}, instances: { min: 3, max: 2 } }],
        bus: {} as never,
        store: {} as never,
        audit: {} as never,
        deviceId: 'd',
        workerEntry: '/nonexistent',
      }),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && e.message.includes('hands[0].instances.max'),
  );
});

test('hands.restart: destructive like hands.stop, never the caller itself, restarts through the supervisor', async () => {
  const ops: string[][] = [];
  const deps = {
    hands: {
      list: () => [],
      status: () => ({}) as HandStatus,
      start: async () => ({}) as HandStatus,
      stop: async () => ({}) as HandStatus,
      restart: async (name: string, actor: string) => {
        ops.push([name, actor]);
        return { name, state: 'running' } as HandStatus;
      },
    },
  };
  const tools = kernelTools(deps as unknown as KernelToolDeps);
  const restart = tools.find((t) => t.name === 'hands.restart')!;
  const stop = tools.find((t) => t.name === 'hands.stop')!;
  assert.equal(restart.annotations.destructiveHint, stop.annotations.destructiveHint);
  assert.equal(restart.annotations.readOnlyHint, false);
  const caller = (hand?: string) => ({
    actor: hand ? `hand:${hand}` : 'cli',
    hand,
    admin: !hand,
    grants: {},
    folder: '/x',
  });
  assert.throws(
    () => restart.check!({ name: 'pool' }, caller('pool') as never),
    (e: Error & { code?: string }) => e.code === 'CAPABILITY_DENIED' && /may not restart itself/.test(e.message),
  );
  assert.equal(restart.check!({ name: 'pool' }, caller('other') as never), null);
  const out = await restart.run({ name: 'pool' }, {
    caller: caller('other'),
    signal: new AbortController().signal,
  } as never);
  assert.equal((out as HandStatus).state, 'running');
  assert.deepEqual(ops, [['pool', 'hand:other']]);
});

test('a worker subscribed to its inbox through a wildcard gets each task once, from the pool', async (t) => {
  const h = await startHarness([
    { name: 'pool', fixture: 'pool-worker', instances: { min: 2, max: 2 }, settings: { wildcard: true } },
  ]);
  t.after(() => h.close());
  const replies = await h.collect(`${ROOT}/test/replies/#`);
  await waitState(h.sup, 'pool', (s) => s.instances?.running === 2);
  for (let i = 0; i < 12; i++) {
    await h.bus.publish(
      INBOX,
      JSON.stringify({ id: `w${i}`, replyTo: 'test/replies/pool', task: { value: i, ms: 50 } }),
      { qos: 1 },
    );
  }
  await waitFor('12 answers', () => replies.length >= 12);
  await waitState(h.sup, 'pool', (s) => s.instances?.queued === 0 && s.instances.inFlight === 0);
  const got = replies.map((m) => JSON.parse(m.payload.toString('utf8')) as Answer);
  assert.equal(got.length, 12, 'each task once (not once per worker, not once per subscription)');
  assert.equal(new Set(got.map((a) => a.result.worker)).size, 2, 'both workers served tasks');
  assert.ok(Math.max(...got.map((a) => a.result.concurrent)) <= PER_INSTANCE);
});
