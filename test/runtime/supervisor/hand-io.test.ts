/**
 * What a Hand does through ctx, checked in the kernel: publish and subscribe grants (typed
 * errors in the Hand, `capability.check` / deny in the audit), deliveries (batched, malformed
 * payloads dropped and counted), the message quota, the scoped store and its limits, kernel
 * services, and the watchdog's "busy, not hung" rule for a Hand awaiting a slow kernel call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT, startHarness, waitFor, waitState, sleep } from '../../helpers/supervisor-harness.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

const json = (m: { payload: Buffer }) => JSON.parse(m.payload.toString());

test('publish and subscribe outside the grant: typed errors in the Hand, deny entries in the audit', async () => {
  const h = await startHarness([{ name: 'po', fixture: 'publish-outside' }], {
    start: false,
    register: (sup) =>
      sup.registerService('test.denied', async (hand) => {
        throw new TalonError('CAPABILITY_DENIED', `Hand "${hand.name}" has no grant for test.denied`);
      }),
  });
  try {
    const results = await h.collect(`${ROOT}/publish-outside/result`);
    const leaked = await h.collect(`${ROOT}/alerts/#`);
    const ha = await h.collect('homeassistant/#');
    await h.sup.start();
    await waitFor('the result', () => results.length > 0);
    const r = json(results[0]!);
    assert.equal(r.publish.code, 'CAPABILITY_DENIED');
    assert.equal(r.publish.name, 'TalonError');
    assert.match(r.publish.message, /talon\/dev1\/alerts\/fire/);
    assert.equal(r.absolute.code, 'CAPABILITY_DENIED', 'an absolute topic outside the grant');
    assert.equal(r.subscribe.code, 'CAPABILITY_DENIED', 'sensors/# is wider than the granted sensors/+/value');
    assert.equal(r.subscribeInside.code, 'none', 'the granted filter itself is fine');
    assert.equal(r.service.code, 'CAPABILITY_DENIED', 'a kernel service refusal reaches the Hand typed');
    assert.equal(r.unknown.code, 'NOT_FOUND', 'an unknown kernel service');
    assert.equal(leaked.length + ha.length, 0, 'nothing was published outside the grant');

    const s = h.sup.status('po');
    assert.equal(s.messages.denied, 4);
    const audit = await h.auditEntries();
    const denies = audit.filter(
      (e) => e.action === 'capability.check' && e.decision === 'deny' && e.actor === 'hand:po',
    );
    assert.deepEqual(
      denies
        .map((e) => e.subject)
        .slice(0, 3)
        .sort(),
      ['homeassistant/status', 'talon/dev1/alerts/fire', 'talon/dev1/sensors/#'].sort(),
    );
    assert.ok(denies.some((e) => (e.detail as { action: string }).action === 'test.denied'));
    assert.equal(s.state, 'running', 'a refused call does not crash the Hand');
  } finally {
    await h.close();
  }
});

test('deliveries reach the Hand batched and in order; non-UTF-8 payloads are dropped and counted', async (t) => {
  const h = await startHarness([{ name: 'echo', fixture: 'echo' }], { start: false });
  try {
    const out = await h.collect(`${ROOT}/echo/out/#`);
    await h.sup.start();
    await waitFor('echo ready', () => out.some((m) => m.topic.endsWith('/ready')));
    await h.bus.publish(`${ROOT}/echo/in/bad`, Buffer.from([0xff, 0xfe, 0xc3]));
    const n = 10000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) void h.bus.publish(`${ROOT}/echo/in/n`, String(i));
    await waitFor(`${n} echoes`, () => out.filter((m) => m.topic.endsWith('/n')).length >= n, 20000, 10);
    const ms = performance.now() - t0;
    const echoed = out.filter((m) => m.topic.endsWith('/n')).map((m) => Number(m.payload.toString()));
    assert.deepEqual(echoed.slice(0, 5), [0, 1, 2, 3, 4]);
    assert.ok(
      echoed.every((v, i) => v === i),
      'in order, none lost',
    );
    assert.ok(!out.some((m) => m.topic.endsWith('/bad')), 'the malformed payload never reached the Hand');
    const s = h.sup.status('echo');
    assert.equal(s.messages.malformed, 1);
    assert.ok(h.bus.stats().droppedMalformed >= 1);
    assert.equal(s.messages.received, n);
    assert.equal(s.messages.dropped, 0);
    t.diagnostic(`kernel → hand → kernel round trip: ${Math.round((n / ms) * 1000)} msg/s`);
  } finally {
    await h.close();
  }
});

test('handler exceptions are caught, counted and logged; console output goes to the Hand log', async () => {
  const h = await startHarness([{ name: 'ht', fixture: 'handler-throws' }]);
  try {
    const seen = await h.collect(`${ROOT}/handler-throws/seen`);
    for (let i = 0; i < 3; i++) await h.bus.publish(`${ROOT}/handler-throws/in`, `m${i}`);
    await waitFor('three messages seen', () => seen.length >= 3);
    const s = await waitState(h.sup, 'ht', (st) => st.handlerErrors >= 3);
    assert.equal(s.state, 'running');
    assert.equal(s.restarts, 0);
    const logs = h.sup.logs('ht', { lines: 50 });
    assert.ok(logs.some((l) => l.level === 'error' && /handler failure 1/.test(l.msg)));
    assert.ok(
      logs.some((l) => l.level === 'info' && l.msg === 'got m0'),
      'console.log → ctx.log',
    );
    assert.equal(h.sup.logs('ht', { lines: 1 }).length, 1);
  } finally {
    await h.close();
  }
});

test('publishes over the message quota are dropped and counted', async () => {
  const quota = 20;
  const h = await startHarness(
    [{ name: 'c', fixture: 'counter', settings: { intervalMs: 10 }, quotas: { messagesPerSec: quota } }],
    { start: false },
  );
  try {
    const ticks = await h.collect(`${ROOT}/counter/tick`);
    const t0 = Date.now();
    await h.sup.start();
    await waitState(h.sup, 'c', (s) => s.messages.dropped >= 30);
    await sleep(200);
    const elapsed = (Date.now() - t0) / 1000;
    const s = h.sup.status('c');
    assert.equal(s.state, 'running', 'a 5× overrun is shed, not punished');
    assert.ok(s.messages.published <= quota + quota * elapsed + 5, `published ${s.messages.published} in ${elapsed}s`);
    assert.ok(ticks.length <= s.messages.published);
    assert.ok(ticks.length > 0);
    // the Hand's log says so, once (not once per dropped publish), naming the quota to raise
    const warned = h.sup.logs('c', { lines: 200 }).filter((l) => /over its messagesPerSec quota/.test(l.msg));
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.match(warned[0]!.msg, /quota of 20: \d+ publish\(es\) dropped; .*raise quotas\.messagesPerSec/);
    assert.equal(warned[0]!.level, 'warn');
  } finally {
    await h.close();
  }
});

test('ctx.store is scoped to the Hand and size-limited', async () => {
  const h = await startHarness([{ name: 's1', fixture: 'store-user' }], { start: false });
  try {
    const results = await h.collect(`${ROOT}/store-user/result`);
    await h.store.sublevel('hands').sublevel('s2', { valueEncoding: 'json' }).put('a/9', 'another Hand');
    await h.sup.start();
    await waitFor('the result', () => results.length > 0);
    const r = json(results[0]!);
    assert.deepEqual(r.get, { n: 2 });
    assert.equal(r.missing, null);
    assert.deepEqual(
      r.list,
      [
        ['a/1', { n: 1 }],
        ['a/2', { n: 2 }],
      ],
      'only its own keys, by prefix',
    );
    assert.deepEqual(r.afterDel, [['a/2', { n: 2 }]]);
    assert.equal(r.bigKey, 'STORE_LIMIT');
    assert.equal(r.bigValue, 'STORE_LIMIT');
    assert.equal(r.notJson, 'BAD_REQUEST');
    assert.deepEqual(
      r.reverse,
      [
        ['c/4', 4],
        ['c/3', 3],
      ],
      'newest first, limited',
    );
    assert.deepEqual(r.after, ['c/3', 'c/4'], 'the next page starts after the key given');
    assert.deepEqual(r.afterReverse, ['c/2', 'c/1']);
    assert.equal(r.badBatch, 'STORE_LIMIT');
    assert.equal(r.c9, null, 'a refused batch writes nothing');
    assert.equal(r.hugeBatch, 'STORE_LIMIT');
    assert.deepEqual(r.grants, [`${ROOT}/store-user/#`], 'ctx.grants: its effective grants, topics absolute');
    assert.equal(r.grantsFrozen, true);
    const own = h.store.sublevel('hands').sublevel('s1', { valueEncoding: 'json' });
    assert.equal(await own.get('b/1'), undefined, 'deleted by the batch');
    assert.equal(await own.get('c/2'), 2);
    assert.equal(await own.get('big'), undefined);
  } finally {
    await h.close();
  }
});

test('a Hand awaiting a kernel call longer than hangTimeoutMs is busy, not hung', async () => {
  const h = await startHarness([{ name: 'slow', fixture: 'slow-call', settings: { ms: 700 } }], {
    start: false,
    config: { heartbeatMs: 30, hangTimeoutMs: 250 },
    register: (sup) =>
      sup.registerService('test.slow', async (_hand, args) => {
        await sleep(Number(args[0]));
        return 'done';
      }),
  });
  try {
    const done = await h.collect(`${ROOT}/slow-call/done`);
    await h.sup.start();
    await waitFor('three slow answers', () => done.length >= 3, 15000);
    const s = h.sup.status('slow');
    assert.equal(s.state, 'running');
    assert.equal(s.restarts, 0);
    assert.equal(s.lastError, undefined);
    assert.deepEqual(json(done[2]!), { n: 3, answer: 'done' });
  } finally {
    await h.close();
  }
});

test('registerService refuses reserved and duplicate names', async () => {
  const h = await startHarness([], { start: false });
  try {
    assert.throws(
      () => h.sup.registerService('store.get', async () => 1),
      (e: TalonError) => e.code === 'BAD_REQUEST',
    );
    assert.throws(
      () => h.sup.registerService('bus.anything', async () => 1),
      (e: TalonError) => e.code === 'BAD_REQUEST',
    );
    h.sup.registerService('sensors.read', async () => 1);
    assert.throws(
      () => h.sup.registerService('sensors.read', async () => 2),
      (e: TalonError) => e.code === 'BAD_REQUEST',
    );
  } finally {
    await h.close();
  }
});
