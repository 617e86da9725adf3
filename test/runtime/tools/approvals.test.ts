/**
 * The approval queue over a real LevelDB store and a real audit chain: a person approves or
 * denies (audited with who answered), nobody answering is a deny, a restart expires what was
 * pending (never an allow), stopping denies what waits, a caller going away withdraws, a second
 * answer is a CONFLICT, and the store keeps the last 1000.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditChain } from '../../../runtime/audit/chain.ts';
import type { Audit, AuditEvent } from '../../../runtime/audit/types.ts';
import type { Clock } from '../../../runtime/core/clock.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { DeviceKey } from '../../../runtime/secrets/device-key.ts';
import { Store } from '../../../runtime/store/store.ts';
import { MAX_PENDING_PER_ACTOR, APPROVALS_KEPT, Approvals } from '../../../runtime/tools/approvals.ts';
import { argsHash } from '../../../runtime/tools/registry.ts';
import type { Approval } from '../../../runtime/tools/types.ts';

/** a clock the test moves; timers fire when it passes them */
function fakeClock(start = 1_767_225_600_000): Clock & { advance(ms: number): void } {
  let now = start;
  let timers: Array<{ at: number; fn: () => void; id: number }> = [];
  let id = 0;
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.push({ at: now + ms, fn, id: ++id });
      return id;
    },
    clearTimeout: (h) => void (timers = timers.filter((t) => t.id !== h)),
    setInterval: () => 0,
    clearInterval: () => {},
    advance(ms) {
      now += ms;
      const due = timers.filter((t) => t.at <= now);
      timers = timers.filter((t) => t.at > now);
      for (const t of due) t.fn();
    },
  };
}

interface Env {
  dir: string;
  store: Store;
  chain: AuditChain;
  key: DeviceKey;
  reopen(): Promise<void>;
  close(): Promise<void>;
}

async function openEnv(): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-approvals-'));
  const key = DeviceKey.loadOrCreate(dir);
  const store = await Store.open(dir);
  const chain = new AuditChain(store, key);
  await chain.start();
  const env: Env = {
    dir,
    store,
    chain,
    key,
    async reopen() {
      await env.chain.stop();
      await env.store.close();
      env.store = await Store.open(dir);
      env.chain = new AuditChain(env.store, key);
      await env.chain.start();
    },
    async close() {
      await env.chain.stop();
      await env.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

async function auditOf(chain: AuditChain, action: string) {
  const page = await chain.query({ action, order: 'asc', limit: 1000 });
  return page.items;
}

const ask = {
  actor: 'hand:gardener',
  hand: 'gardener',
  tool: 'actuators.write',
  input: { id: 'pump', value: true },
  reason: 'destructive',
};

test('a person approves: the caller hears it, the store, the bus and the audit log say who', async () => {
  const env = await openEnv();
  const published: Approval[] = [];
  const changes: Approval[] = [];
  try {
    const q = new Approvals({
      store: env.store,
      audit: env.chain,
      timeoutMs: () => 60_000,
      publish: (a) => published.push(a),
    });
    await q.start();
    q.onChange((a) => changes.push(a));
    const p = q.request({ ...ask, goal: 'keep the soil moist', runId: 'r1' });
    await waitFor(() => q.pending() === 1);
    const [pending] = await q.list({ state: 'pending' });
    assert.equal(pending?.tool, 'actuators.write');
    assert.deepEqual(pending?.input, { id: 'pump', value: true });
    assert.equal(pending?.goal, 'keep the soil moist');
    assert.ok(pending!.expiresAt > pending!.createdAt);
    const decided = await q.decide(pending!.id, 'approve', 'user:ada', 'go ahead');
    assert.equal(decided.state, 'approved');
    assert.deepEqual(await p, { approved: true, by: 'user:ada', note: 'go ahead', id: pending!.id });
    assert.equal(q.pending(), 0);
    const stored = await q.get(pending!.id);
    assert.equal(stored.state, 'approved');
    assert.equal(stored.by, 'user:ada');
    assert.equal(typeof stored.decidedAt, 'number');
    assert.deepEqual(
      published.map((a) => a.state),
      ['pending', 'approved'],
    );
    assert.deepEqual(
      changes.map((a) => a.state),
      ['pending', 'approved'],
    );
    const [req] = await auditOf(env.chain, 'approval.request');
    assert.equal(req?.actor, 'hand:gardener');
    assert.equal(req?.subject, 'actuators.write');
    assert.equal((req?.detail as { id: string }).id, pending!.id);
    assert.equal((req?.detail as { argsHash: string }).argsHash, argsHash({ id: 'pump', value: true }));
    const [dec] = await auditOf(env.chain, 'approval.decide');
    assert.equal(dec?.actor, 'user:ada');
    assert.equal(dec?.decision, 'allow');
    assert.equal((dec?.detail as { by: string }).by, 'user:ada');
    assert.equal((dec?.detail as { requester: string }).requester, 'hand:gardener');
    await q.stop();
  } finally {
    await env.close();
  }
});

test('a person denies with a reason; a second answer is CONFLICT; an unknown id APPROVAL_NOT_FOUND', async () => {
  const env = await openEnv();
  try {
    const q = new Approvals({ store: env.store, audit: env.chain, timeoutMs: () => 60_000 });
    await q.start();
    let id = '';
    q.onChange((a) => {
      if (a.state === 'pending') id = a.id;
    });
    const p = q.request(ask);
    await waitFor(() => id !== '');
    await assert.rejects(q.decide(id, 'maybe' as 'approve', 'user:ada'), (e: TalonError) => e.code === 'BAD_REQUEST');
    await q.decide(id, 'deny', 'mqtt:phone', 'it is raining');
    assert.deepEqual(await p, { approved: false, by: 'mqtt:phone', note: 'it is raining', id });
    await assert.rejects(
      q.decide(id, 'approve', 'user:ada'),
      (e: TalonError) => e.code === 'CONFLICT' && /already denied \(by mqtt:phone\)/.test(e.message),
    );
    await assert.rejects(q.decide('nope', 'approve', 'user:ada'), (e: TalonError) => e.code === 'APPROVAL_NOT_FOUND');
    await assert.rejects(q.get('nope'), (e: TalonError) => e.code === 'APPROVAL_NOT_FOUND');
    const [dec] = await auditOf(env.chain, 'approval.decide');
    assert.equal(dec?.actor, 'mqtt:phone');
    assert.equal(dec?.decision, 'deny');
    assert.equal((dec?.detail as { note: string }).note, 'it is raining');
    await q.stop();
  } finally {
    await env.close();
  }
});

test('nobody answering within the timeout is a deny: expired, by timeout, audited', async () => {
  const env = await openEnv();
  try {
    const clock = fakeClock();
    const q = new Approvals({ store: env.store, audit: env.chain, clock, timeoutMs: () => 120_000 });
    await q.start();
    const p = q.request(ask);
    await waitFor(() => q.pending() === 1);
    clock.advance(119_999);
    assert.equal(q.pending(), 1);
    clock.advance(1);
    const o = await p;
    assert.equal(o.approved, false);
    assert.equal(o.by, 'timeout');
    assert.match(o.note ?? '', /nobody answered within 120 s/);
    await waitFor(async () => (await q.get(o.id)).state === 'expired');
    const a = await q.get(o.id);
    assert.equal(a.by, 'timeout');
    await assert.rejects(q.decide(o.id, 'approve', 'user:late'), (e: TalonError) => e.code === 'CONFLICT');
    const decs = await auditOf(env.chain, 'approval.decide');
    assert.equal(decs.length, 1);
    assert.equal(decs[0]?.decision, 'deny');
    assert.equal((decs[0]?.detail as { by: string }).by, 'timeout');
    await q.stop();
  } finally {
    await env.close();
  }
});

test('after a restart a request left pending is expired, never allowed', async () => {
  const env = await openEnv();
  try {
    const q1 = new Approvals({ store: env.store, audit: env.chain, timeoutMs: () => 600_000 });
    await q1.start();
    const before = q1.request(ask);
    await waitFor(() => q1.pending() === 1);
    const [left] = await q1.list();
    // the process dies: no stop(), the store and the chain are closed under it
    await env.reopen();
    const q2 = new Approvals({ store: env.store, audit: env.chain, timeoutMs: () => 600_000 });
    await q2.start();
    const a = await q2.get(left!.id);
    assert.equal(a.state, 'expired');
    assert.equal(a.by, 'restart');
    assert.equal(q2.pending(), 0);
    await assert.rejects(q2.decide(a.id, 'approve', 'user:ada'), (e: TalonError) => e.code === 'CONFLICT');
    const decs = await auditOf(env.chain, 'approval.decide');
    assert.equal(decs.at(-1)?.decision, 'deny');
    assert.equal((decs.at(-1)?.detail as { by: string }).by, 'restart');
    // the old run's queue, stopped late, answers its caller with a deny
    await q1.stop();
    assert.equal((await before).approved, false);
    await q2.stop();
  } finally {
    await env.close();
  }
});

test('stop() denies what waits; a caller going away withdraws its request', async () => {
  const env = await openEnv();
  try {
    const q = new Approvals({ store: env.store, audit: env.chain, timeoutMs: () => 600_000 });
    await q.start();
    const ac = new AbortController();
    const withdrawn = q.request(ask, ac.signal);
    const waiting = q.request({ ...ask, tool: 'hands.stop' });
    await waitFor(() => q.pending() === 2);
    ac.abort();
    const w = await withdrawn;
    assert.deepEqual([w.approved, w.by], [false, 'cancelled']);
    await q.stop();
    const s = await waiting;
    assert.deepEqual([s.approved, s.by], [false, 'shutdown']);
    assert.equal((await q.get(s.id)).state, 'expired');
    const after = await q.request(ask);
    assert.equal(after.approved, false, 'a stopped queue asks nobody and denies');
  } finally {
    await env.close();
  }
});

test('the input a person sees is capped at 4 KiB of JSON, cut with …', async () => {
  const env = await openEnv();
  try {
    const q = new Approvals({ store: env.store, audit: env.chain, timeoutMs: () => 600_000 });
    await q.start();
    void q.request({ ...ask, tool: 'file.write', input: { path: 'notes.txt', content: 'x'.repeat(100_000) } });
    await waitFor(() => q.pending() === 1);
    const [a] = await q.list({ state: 'pending' });
    const input = a!.input as { path: string; content: string };
    assert.equal(input.path, 'notes.txt');
    assert.ok(input.content.endsWith('…'));
    assert.ok(Buffer.byteLength(JSON.stringify(input)) <= 4096);
    await q.stop();
  } finally {
    await env.close();
  }
});

test('the store keeps the last 1000 approvals, newest first in list()', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-approvals-'));
  const store = await Store.open(dir);
  try {
    // the audit is not what this test is about: a recording fake keeps 2000 decisions quick
    const events: AuditEvent[] = [];
    const audit: Audit = { record: async (e) => void events.push(e) };
    const clock = fakeClock();
    const q = new Approvals({ store, audit, clock, timeoutMs: () => 1000 });
    await q.start();
    const n = APPROVALS_KEPT + 25;
    const first: string[] = [];
    for (let i = 0; i < n; i++) {
      const p = q.request({ ...ask, input: { i } });
      await waitFor(() => q.pending() === 1);
      clock.advance(1000); // expires it
      const o = await p;
      if (i < 25) first.push(o.id);
      await waitFor(async () => (await q.get(o.id)).state !== 'pending');
    }
    const all = await q.list({ limit: 5000 });
    assert.equal(all.length, APPROVALS_KEPT);
    assert.deepEqual(all[0]?.input, { i: n - 1 });
    assert.deepEqual(all.at(-1)?.input, { i: 25 });
    await assert.rejects(q.get(first[0]!), (e: TalonError) => e.code === 'APPROVAL_NOT_FOUND');
    assert.equal(events.filter((e) => e.action === 'approval.request').length, n);
    await q.stop();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('one caller has at most 20 calls waiting: the 21st is denied at once, asking nobody; others still ask', async () => {
  const env = await openEnv();
  try {
    const q = new Approvals({ store: env.store, audit: env.chain, timeoutMs: () => 600_000 });
    await q.start();
    const waiting = Array.from({ length: MAX_PENDING_PER_ACTOR }, () => q.request(ask));
    await waitFor(() => q.pending() === MAX_PENDING_PER_ACTOR);
    const over = await q.request(ask);
    assert.deepEqual([over.approved, over.by], [false, 'kernel']);
    assert.match(over.note ?? '', /already has 20 calls waiting/);
    assert.equal(q.pending(), MAX_PENDING_PER_ACTOR, 'nobody was asked about it');
    const other = q.request({ ...ask, actor: 'hand:reporter', hand: 'reporter' });
    await waitFor(() => q.pending() === MAX_PENDING_PER_ACTOR + 1);
    await q.stop();
    for (const o of [...(await Promise.all(waiting)), await other]) assert.equal(o.approved, false);
  } finally {
    await env.close();
  }
});
