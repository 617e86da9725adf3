import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, readFileSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { AuditChain } from '../../../runtime/audit/chain.ts';
import {
  checkpointMessage,
  pruneMessage,
  type AnyCheckpoint,
  type AuditEntry,
  type Checkpoint,
} from '../../../runtime/audit/format.ts';
import { verifyFile } from '../../../runtime/audit/verify-file.ts';
import type { Clock } from '../../../runtime/core/clock.ts';
import { fill, key12, openEnv, raw, tempDir, type Env } from './harness.ts';

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

async function exportTo(chain: AuditChain, opts: { since?: number } = {}): Promise<string> {
  const file = join(tempDir(), 'export.jsonl');
  const out = createWriteStream(file);
  await chain.export(out, opts);
  out.end();
  await finished(out);
  return file;
}

const lines = (file: string): Array<AuditEntry | AnyCheckpoint> =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditEntry | AnyCheckpoint);

test('entries chain from seq 1, checkpoints come every N entries in the same write, and tweetnacl verifies every one', async () => {
  const published: Checkpoint[] = [];
  const env = await openEnv({ checkpointEvery: 50, onCheckpoint: (cp) => published.push(cp) });
  await fill(env.chain, 420);
  assert.equal(env.chain.head().seq, 420);
  const cps = [...(await raw(env.store, 'auditcp')).entries()]
    .filter(([k]) => /^[0-9a-f]{12}$/.test(k))
    .map(([, v]) => JSON.parse(v) as Checkpoint);
  assert.deepEqual(
    cps.map((c) => c.seq),
    [50, 100, 150, 200, 250, 300, 350, 400],
  );
  for (const cp of cps) {
    assert.ok(
      nacl.sign.detached.verify(
        Buffer.from(checkpointMessage(cp.seq, cp.hash)),
        Buffer.from(cp.sig, 'base64'),
        new Uint8Array(env.key.publicKey),
      ),
      `checkpoint ${cp.seq}`,
    );
  }
  assert.equal(published.at(-1)?.seq, 400);
  await env.chain.stop();
  assert.equal(env.chain.latestCheckpoint()?.seq, 420, 'shutdown checkpoint');
  assert.equal(published.at(-1)?.seq, 420);
  const all: AuditEntry[] = [];
  for await (const e of env.chain.entries()) all.push(e);
  assert.deepEqual(
    all.map((e) => e.seq),
    Array.from({ length: 420 }, (_, i) => i + 1),
  );
  for (let i = 1; i < all.length; i++) assert.equal(all[i]!.prev, all[i - 1]!.hash);
  await assert.rejects(env.chain.record({ actor: 'x', action: 'y', subject: 'z', decision: 'ok' }), {
    code: 'NOT_RUNNING',
  });
  await env.store.close();
});

test('a checkpoint follows at most checkpointMs after the last entry, while entries trickle in', async () => {
  const clock = fakeClock();
  const env = await openEnv({ clock, checkpointMs: 5000 });
  await env.chain.record({ actor: 'a', action: 'b', subject: 'c', decision: 'ok' });
  assert.equal(env.chain.latestCheckpoint(), null);
  clock.advance(4999);
  await env.chain.flush();
  assert.equal(env.chain.latestCheckpoint(), null);
  clock.advance(1);
  await env.chain.flush();
  assert.equal(env.chain.latestCheckpoint()?.seq, 1);
  const t2 = clock.now() + 2000;
  for (let i = 0; i < 3; i++) {
    clock.advance(2000);
    await env.chain.record({ actor: 'a', action: 'b', subject: `c${i}`, decision: 'ok' });
  }
  await env.chain.flush();
  const cp = env.chain.latestCheckpoint()!;
  assert.ok(cp.seq >= 3, `entry 2 (and 3) signed, by checkpoint ${cp.seq}`);
  assert.ok(cp.ts - t2 <= 5000);
  await env.cleanup();
});

test('restart: the chain continues; an unclean stop is recorded as audit.recover and sealed', async () => {
  const env = await openEnv();
  await fill(env.chain, 30);
  const chain = await env.reopen();
  await chain.record({ actor: 'a', action: 'after.restart', subject: 'x', decision: 'ok' });
  assert.equal(chain.head().seq, 31);
  // an unclean stop: the store closes without stop(), so the head has no checkpoint
  await chain.flush();
  await env.store.close();
  const { Store } = await import('../../../runtime/store/store.ts');
  env.store = await Store.open(env.dir);
  env.chain = new AuditChain(env.store, env.key);
  await env.chain.start();
  const last: AuditEntry[] = [];
  for await (const e of env.chain.entries({ reverse: true, limit: 1 })) last.push(e);
  assert.equal(last[0]!.action, 'audit.recover');
  assert.deepEqual(last[0]!.detail, { head: 31, lastCheckpoint: 30, unsigned: 1, reason: last[0]!.detail.reason });
  assert.equal(env.chain.latestCheckpoint()?.seq, 32);
  assert.equal((await env.chain.startupReport)?.ok, true);
  assert.equal((await env.chain.verify({ from: 'start' })).ok, true);
  await env.cleanup();
});

test('start never writes over entries a checkpoint vouches for: a cut below a surviving checkpoint is recorded, and numbering goes on after it', async () => {
  const env = await openEnv({ checkpointEvery: 10 });
  await fill(env.chain, 25);
  await env.chain.stop();
  await env.store.sublevel('auditlog').clear({ gte: key12(22) }); // checkpoint 25 survives
  const found: unknown[] = [];
  const chain = await env.reopen({ onBroken: (r) => found.push(r) });
  const e: AuditEntry[] = [];
  for await (const x of chain.entries({ reverse: true, limit: 1 })) e.push(x);
  assert.equal(e[0]!.action, 'audit.broken');
  assert.equal(e[0]!.seq, 26);
  assert.match(String(e[0]!.detail.reason), /22\.\.25 were removed/);
  assert.equal((await env.store.sublevel('auditcp').get(key12(25), { valueEncoding: 'utf8' })) !== undefined, true);
  const r = await chain.verify({ from: 'start' });
  assert.equal(r.ok, false);
  assert.equal(r.firstBrokenSeq, 22);
  await env.cleanup();
});

test('odd events are recorded, not lost: no detail, BigInt, functions, NaN, lone surrogates; bad decisions are refused', async () => {
  const env = await openEnv();
  await env.chain.record({ actor: 'a', action: 'none', subject: 's', decision: 'info' });
  await env.chain.record({ actor: 'a', action: 'bigint', subject: 's', decision: 'info', detail: { n: 1n } });
  await env.chain.record({
    actor: 'a',
    action: 'fn',
    subject: 's',
    decision: 'info',
    detail: { f: () => 1, x: Number.NaN, d: new Date(0) },
  });
  await env.chain.record({
    actor: 'a\ud800',
    action: 'surrogate',
    subject: 's',
    decision: 'info',
    detail: { s: 'x\udc00y' },
  });
  await assert.rejects(env.chain.record({ actor: 'a', action: 'b', subject: 'c', decision: 'maybe' as 'ok' }), {
    code: 'AUDIT_FORMAT',
  });
  const got: AuditEntry[] = [];
  for await (const e of env.chain.entries()) got.push(e);
  assert.deepEqual(
    got.map((e) => e.detail),
    [
      {},
      { unserialisable: got[1]!.detail.unserialisable },
      { x: null, d: '1970-01-01T00:00:00.000Z' },
      { s: 'x\ufffdy' },
    ],
  );
  assert.equal(got[3]!.actor, 'a\ufffd');
  assert.equal((await env.chain.verify({ from: 'start' })).ok, true);
  await env.cleanup();
});

test('query: filters by actor, action (exact or prefix), decision and time, pages both ways without gaps or repeats', async () => {
  const clock = fakeClock();
  const env = await openEnv({ clock });
  for (let i = 0; i < 300; i++) {
    clock.advance(1000);
    await env.chain.record({
      actor: i % 2 ? 'hand:a' : 'cli',
      action: i % 3 ? 'hand.start' : 'capability.check',
      subject: `s${i}`,
      decision: i % 5 ? 'allow' : 'deny',
      detail: { i },
    });
  }
  const want = (f: (i: number) => boolean): number[] =>
    Array.from({ length: 300 }, (_, i) => i)
      .filter(f)
      .map((i) => i + 1);
  const collect = async (q: Parameters<AuditChain['query']>[0]): Promise<number[]> => {
    const out: number[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 1000; pages++) {
      const page = await env.chain.query({ ...q, ...(cursor ? { cursor } : {}) });
      assert.ok(page.items.length <= (q?.limit ?? 50));
      out.push(...page.items.map((e) => e.seq));
      if (page.nextCursor === null) return out;
      cursor = page.nextCursor;
    }
    throw new Error('no end');
  };
  assert.deepEqual(
    await collect({ actor: 'hand:a', decision: 'deny', limit: 7, order: 'asc' }),
    want((i) => i % 2 === 1 && i % 5 === 0),
  );
  assert.deepEqual(await collect({ action: 'capability.check', limit: 9 }), want((i) => i % 3 === 0).reverse());
  assert.deepEqual(
    await collect({ action: 'hand.*', decision: ['deny'], limit: 1000 }),
    want((i) => i % 3 !== 0 && i % 5 === 0).reverse(),
  );
  const t0 = 1_767_225_600_000;
  assert.deepEqual(
    await collect({ from: t0 + 10_000, to: t0 + 20_000, order: 'asc' }),
    want((i) => i + 1 >= 10 && i + 1 <= 20),
  );
  // a bounded scan comes back short, with a cursor to go on from
  const short = await env.chain.query({ actor: 'nobody', maxScan: 100 });
  assert.deepEqual(short.items, []);
  assert.equal(short.nextCursor, '201');
  assert.deepEqual(await collect({ actor: 'nobody', maxScan: 100 }), []);
  await assert.rejects(env.chain.query({ cursor: 'abc' }), { code: 'BAD_REQUEST' });
  await env.cleanup();
});

test('export → verify-file round trip, whole and --since (anchored on the checkpoint before it)', async () => {
  const env = await openEnv({ checkpointEvery: 100 });
  await fill(env.chain, 350);
  const whole = await exportTo(env.chain);
  const r = await verifyFile(whole, {
    publicKey: env.key.publicKey.toString('base64'),
    against: env.chain.latestCheckpoint()!,
  });
  assert.equal(r.ok, true, r.reason);
  assert.equal(r.checked, 350);
  assert.equal(r.anchor, 'genesis');
  const since = await exportTo(env.chain, { since: 250 });
  const first = lines(since)[0] as Checkpoint;
  assert.equal(first.type, 'checkpoint');
  assert.equal(first.seq, 200);
  const rs = await verifyFile(since, { publicKey: join(env.dir, 'device-key.json') });
  assert.equal(rs.ok, true, rs.reason);
  assert.equal(rs.anchor, 'checkpoint');
  assert.equal(rs.firstSeq, 201);
  assert.equal(rs.lastSeq, 350);
  await env.cleanup();
});

test('retention: a signed prune checkpoint replaces what it removes; the rest verifies, on the device and exported', async () => {
  const env = await openEnv({ checkpointEvery: 64, retention: { maxEntries: 100 }, verifyAtStart: false });
  await fill(env.chain, 1000);
  const res = await env.chain.prune();
  assert.ok(res);
  const floor = env.chain.pruneCheckpoint()!;
  assert.equal(floor.seq, res.floor);
  assert.ok(floor.seq >= 900, `floor ${floor.seq}`);
  assert.ok(
    nacl.sign.detached.verify(
      Buffer.from(pruneMessage(floor.seq, floor.hash)),
      Buffer.from(floor.sig, 'base64'),
      new Uint8Array(env.key.publicKey),
    ),
  );
  const left: number[] = [];
  for await (const e of env.chain.entries()) left.push(e.seq);
  assert.equal(left[0], floor.seq + 1);
  assert.ok(
    [...(await raw(env.store, 'auditlog')).keys()].every((k) => parseInt(k, 16) > floor.seq),
    'nothing under the floor',
  );
  const v = await env.chain.verify({ from: 'start' });
  assert.equal(v.ok, true, v.reason);
  assert.equal(v.anchor, 'prune');
  const file = await exportTo(env.chain);
  assert.equal((lines(file)[0] as AnyCheckpoint).type, 'prune');
  const rf = await verifyFile(file, { publicKey: env.key.publicKey.toString('base64') });
  assert.equal(rf.ok, true, rf.reason);
  // appending and restarting go on from there
  await fill(env.chain, 10);
  const chain = await env.reopen();
  assert.equal((await chain.verify({ from: 'start' })).ok, true);
  // the prune checkpoint is what makes the gap legitimate: without it, the start is missing
  await env.chain.stop();
  await env.store.sublevel('auditcp').del('prune');
  const gone = await new AuditChain(env.store, env.key).verify({ from: 'start' });
  assert.equal(gone.kind, 'anchor');
  await env.store.close();
});

test('retention by age, an interrupted prune finished at start, and no pruning across a break', async () => {
  const clock = fakeClock();
  const env = await openEnv({ clock, retention: { maxAgeMs: 60_000 }, verifyAtStart: false });
  for (let i = 0; i < 100; i++) {
    clock.advance(1000);
    await env.chain.record({ actor: 'a', action: 'tick', subject: String(i), decision: 'ok' });
  }
  const res = await env.chain.prune();
  assert.equal(res?.floor, 39, 'entries older than 60 s: entry s was written at s seconds, now is 100 s');
  // an interrupted prune: the prune checkpoint was written, the deletes were not
  const floor = env.chain.pruneCheckpoint()!;
  await env.chain.stop();
  await env.store.sublevel('auditlog').put(key12(5), JSON.stringify({ leftover: true }), { valueEncoding: 'utf8' });
  const chain = await env.reopen({ clock, retention: { maxAgeMs: 60_000 }, verifyAtStart: false });
  assert.equal(chain.pruneCheckpoint()?.seq, floor.seq);
  assert.equal(await env.store.sublevel('auditlog').get(key12(5)), undefined, 'swept at start');
  assert.equal((await chain.verify({ from: 'start' })).ok, true);
  // a broken chain is not pruned
  const e = JSON.parse((await env.store.sublevel('auditlog').get(key12(70), { valueEncoding: 'utf8' }))!) as AuditEntry;
  await env.store
    .sublevel('auditlog')
    .put(key12(70), JSON.stringify({ ...e, subject: 'edited' }), { valueEncoding: 'utf8' });
  clock.advance(30_000);
  await assert.rejects(chain.prune(), { code: 'AUDIT_BROKEN' });
  assert.equal(chain.pruneCheckpoint()?.seq, 39);
  await env.cleanup();
});

test('verification resumes from the last verified checkpoint; from the start it re-checks everything', async () => {
  const env = await openEnv({ checkpointEvery: 100, verifyAtStart: false });
  await fill(env.chain, 500);
  const full = await env.chain.verify({ from: 'start' });
  assert.equal(full.checked, 500);
  await fill(env.chain, 50, 500);
  const resumed = await env.chain.verify();
  assert.equal(resumed.ok, true, resumed.reason);
  assert.equal(resumed.anchor, 'resume');
  assert.equal(resumed.checked, 50);
  // an edit behind the mark is outside a resumed run, and inside a full one
  const e = JSON.parse((await env.store.sublevel('auditlog').get(key12(10), { valueEncoding: 'utf8' }))!) as AuditEntry;
  await env.store.sublevel('auditlog').put(key12(10), JSON.stringify({ ...e, actor: 'x' }), { valueEncoding: 'utf8' });
  assert.equal((await env.chain.verify()).ok, true);
  const again = await env.chain.verify({ from: 'start' });
  assert.equal(again.firstBrokenSeq, 10);
  assert.equal(env.chain.problem()?.firstBrokenSeq, 10);
  await env.cleanup();
});

test('appends from many callers while a verification runs are all durable and the log stays whole', async () => {
  const env: Env = await openEnv({ verifyAtStart: false });
  await fill(env.chain, 3000);
  const [r] = await Promise.all([env.chain.verify({ from: 'start' }), fill(env.chain, 3000, 3000)]);
  assert.equal(r.ok, true, r.reason);
  await env.chain.stop();
  const all = await new AuditChain(env.store, env.key).verify({ from: 'start' });
  assert.equal(all.ok, true, all.reason);
  assert.equal(all.checked, 6000);
  await env.store.close();
});
