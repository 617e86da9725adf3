/**
 * The chain fails closed and recovers: after a failed write every record is refused at once
 * (AUDIT_UNAVAILABLE) without touching the store, health() says why, and with free space
 * again the store is re-synced and an `audit.gap` entry records the window and what was
 * refused. `privileged()` writes the intent first and does not act when it cannot.
 * (The same on a real full tmpfs, end to end: test/e2e/web-failclosed.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditEntry } from '../../../runtime/audit/format.ts';
import type { AuditHealth } from '../../../runtime/audit/chain.ts';
import { privileged } from '../../../runtime/audit/privileged.ts';
import type { Audit, AuditEvent } from '../../../runtime/audit/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { openEnv, type Env } from './harness.ts';

const ENOSPC = (): Error =>
  Object.assign(new Error('IO error: /data/db/000003.log: No space left on device'), { code: 'LEVEL_IO_ERROR' });

/** makes the store's batch writes fail while `full.on`; counts the attempts and the re-syncs */
function breakable(env: Env): {
  full: { on: boolean; resyncWorks?: boolean };
  batches: () => number;
  resyncs: () => number;
} {
  const full: { on: boolean; resyncWorks?: boolean } = { on: false };
  let batches = 0;
  let resyncs = 0;
  const db = env.store.db as unknown as { batch: (...a: unknown[]) => Promise<void> };
  const real = db.batch.bind(db);
  db.batch = (...a: unknown[]) => {
    batches++;
    return full.on ? Promise.reject(ENOSPC()) : real(...a);
  };
  const realResync = env.store.resync.bind(env.store);
  env.store.resync = async () => {
    resyncs++;
    if (full.on && !full.resyncWorks) throw ENOSPC();
    await realResync();
  };
  return { full, batches: () => batches, resyncs: () => resyncs };
}

async function entries(env: Env): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of env.chain.entries()) out.push(e);
  return out;
}

const ev = (action: string, subject = 's'): AuditEvent => ({ actor: 'cli', action, subject, decision: 'ok' });

test('a failed write refuses every record until space returns; then the gap is recorded first and the chain verifies', async () => {
  let free = 0;
  const healths: AuditHealth[] = [];
  const env = await openEnv({
    verifyAtStart: false,
    recoverEveryMs: 60_000,
    recoverMinFreeBytes: 1000,
    freeBytes: () => free,
    onHealth: (h) => healths.push(h),
  });
  try {
    const s = breakable(env);
    await env.chain.record(ev('before'));
    const head = env.chain.head().seq;
    assert.deepEqual(env.chain.health(), { ok: true });

    s.full.on = true;
    await assert.rejects(
      env.chain.record(ev('api.hands.restart', 'idle')),
      (e: TalonError) => e.code === 'AUDIT_UNAVAILABLE' && e.status === 503 && /No space left/.test(e.message),
    );
    const tried = s.batches();
    // refused at once: the store is not written again (a write after a failed one may be lost at the next open)
    for (let i = 0; i < 4; i++)
      await assert.rejects(env.chain.record(ev('api.hands.restart', 'idle')), { code: 'AUDIT_UNAVAILABLE' });
    await assert.rejects(env.chain.record(ev('auth.token.create')), { code: 'AUDIT_UNAVAILABLE' });
    assert.equal(s.batches(), tried, 'no write while unwritable');
    assert.equal(s.resyncs(), 0, 'no re-sync without free space');
    const h = env.chain.health();
    assert.equal(h.ok, false);
    assert.equal(h.failing?.refused, 6);
    assert.match(h.reason!, /cannot be written since .*No space left.*0 bytes free/);
    assert.equal(healths.length, 1);
    assert.equal(healths[0]!.ok, false);
    assert.equal(env.chain.head().seq, head, 'nothing was added');

    // space returns: the next record re-syncs, writes the gap entry, then itself
    s.full.on = false;
    free = 10_000;
    await env.chain.record(ev('after'));
    assert.equal(s.resyncs(), 1);
    assert.deepEqual(env.chain.health(), { ok: true });
    assert.equal(healths.length, 2);
    assert.equal(healths[1]!.ok, true);
    const all = await entries(env);
    const tail = all.filter((e) => e.seq > head);
    assert.deepEqual(
      tail.map((e) => e.action),
      ['audit.gap', 'after'],
    );
    const gap = tail[0]!;
    assert.equal(gap.actor, 'kernel');
    assert.equal(gap.decision, 'error');
    const d = gap.detail as {
      from: number;
      to: number;
      refused: number;
      actions: Record<string, number>;
      error: string;
    };
    assert.equal(d.refused, 6);
    assert.deepEqual(d.actions, { 'api.hands.restart': 5, 'auth.token.create': 1 });
    assert.ok(d.to >= d.from);
    assert.match(d.error, /No space left/);
    // the gap entry is sealed with a checkpoint right away
    assert.ok((env.chain.latestCheckpoint()?.seq ?? 0) >= gap.seq);
    const r = await env.chain.verify({ from: 'start' });
    assert.equal(r.ok, true, r.reason);
  } finally {
    await env.cleanup();
  }
});

test('recovery that fails again stays closed and keeps counting; the gap then covers the whole window', async () => {
  const env = await openEnv({
    verifyAtStart: false,
    recoverEveryMs: 1,
    recoverMinFreeBytes: 0,
    freeBytes: () => 1 << 30,
  });
  try {
    const s = breakable(env);
    s.full.on = true;
    await assert.rejects(env.chain.record(ev('one')), { code: 'AUDIT_UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, 5));
    // free space says yes, the store says no: still closed
    await assert.rejects(env.chain.record(ev('two')), { code: 'AUDIT_UNAVAILABLE' });
    assert.ok(s.resyncs() >= 1);
    assert.equal(env.chain.health().ok, false);
    // the re-sync passes but the gap entry cannot be written (LevelDB after a failed table write)
    s.full.resyncWorks = true;
    await new Promise((r) => setTimeout(r, 5));
    await assert.rejects(env.chain.record(ev('three')), { code: 'AUDIT_UNAVAILABLE' });
    assert.match(env.chain.health().reason!, /restart Talon/);
    s.full.on = false;
    await new Promise((r) => setTimeout(r, 5));
    await env.chain.record(ev('four'));
    const gap = (await entries(env)).find((e) => e.action === 'audit.gap')!;
    assert.deepEqual((gap.detail as { actions: Record<string, number> }).actions, { one: 1, two: 1, three: 1 });
    assert.deepEqual(
      (await entries(env)).map((e) => e.action).filter((a) => a !== 'kernel.start'),
      ['audit.gap', 'four'],
    );
    assert.equal((await env.chain.verify({ from: 'start' })).ok, true);
  } finally {
    await env.cleanup();
  }
});

test('the chain recovers by itself, without a record, once space returns', async () => {
  let free = 0;
  const env = await openEnv({
    verifyAtStart: false,
    recoverEveryMs: 10,
    recoverMinFreeBytes: 100,
    freeBytes: () => free,
  });
  try {
    const s = breakable(env);
    s.full.on = true;
    await assert.rejects(env.chain.record(ev('x')), { code: 'AUDIT_UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(env.chain.health().ok, false);
    s.full.on = false;
    free = 1000;
    const deadline = Date.now() + 5000;
    while (!env.chain.health().ok) {
      assert.ok(Date.now() < deadline, 'never recovered');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok((await entries(env)).some((e) => e.action === 'audit.gap'));
  } finally {
    await env.cleanup();
  }
});

test('a stop while unwritable finishes; the next start verifies what was written', async () => {
  const env = await openEnv({ verifyAtStart: false, freeBytes: () => 0 });
  const s = breakable(env);
  await env.chain.record(ev('a'));
  s.full.on = true;
  await assert.rejects(env.chain.record(ev('b')), { code: 'AUDIT_UNAVAILABLE' });
  s.full.on = false;
  await env.reopen({ verifyAtStart: false });
  assert.equal((await env.chain.verify({ from: 'start' })).ok, true);
  assert.deepEqual(
    (await entries(env)).map((e) => e.action).filter((a) => a === 'a' || a === 'b'),
    ['a'],
  );
  await env.cleanup();
});

test('privileged(): the intent is written before acting; no entry, no action', async () => {
  const log: AuditEvent[] = [];
  let failing = false;
  const audit: Audit = {
    record: async (e) => {
      if (failing) throw new TalonError('AUDIT_UNAVAILABLE', 'full');
      log.push(e);
    },
  };
  const order: string[] = [];
  const out = await privileged(audit, { actor: 'cli', action: 'api.hands.restart', subject: 'idle' }, async () => {
    order.push(`act after ${log.length} entries`);
    return 42;
  });
  assert.equal(out, 42);
  assert.deepEqual(order, ['act after 1 entries']);
  assert.deepEqual(
    log.map((e) => e.decision),
    ['allow', 'ok'],
  );

  // the action's own refusal is a deny; another failure an error, with its code
  await assert.rejects(
    privileged(audit, { actor: 'cli', action: 'x', subject: 's' }, () => {
      throw new TalonError('FORBIDDEN', 'no');
    }),
    { code: 'FORBIDDEN' },
  );
  await assert.rejects(
    privileged(audit, { actor: 'cli', action: 'x', subject: 's' }, () => {
      throw new TalonError('HAND_STATE', 'busy');
    }),
    { code: 'HAND_STATE' },
  );
  assert.deepEqual(
    log.slice(2).map((e) => [e.decision, e.detail?.code]),
    [
      ['allow', undefined],
      ['deny', 'FORBIDDEN'],
      ['allow', undefined],
      ['error', 'HAND_STATE'],
    ],
  );

  failing = true;
  let acted = false;
  await assert.rejects(
    privileged(audit, { actor: 'cli', action: 'api.hands.restart', subject: 'idle' }, () => {
      acted = true;
    }),
    { code: 'AUDIT_UNAVAILABLE' },
  );
  assert.equal(acted, false);
  // any audit failure (a stopped log) refuses with AUDIT_UNAVAILABLE
  const stopped: Audit = { record: () => Promise.reject(new TalonError('NOT_RUNNING', 'the audit log is stopped')) };
  await assert.rejects(
    privileged(stopped, { actor: 'cli', action: 'api.secrets.set', subject: 'k' }, () => {
      acted = true;
    }),
    (e: TalonError) => e.code === 'AUDIT_UNAVAILABLE' && e.status === 503,
  );
  assert.equal(acted, false);
});
