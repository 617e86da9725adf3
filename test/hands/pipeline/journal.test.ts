/**
 * The Pipeline Hand's journal (hands/pipeline/journal.ts) over two stores: a faithful in-memory HandStore written here
 * (ordered keys, list with prefix/after/limit/reverse, batches of at most 1000 applied all or nothing, values through
 * JSON, a write that fails on command) and the kernel's real LevelDB store (runtime/store, a Hand's scope, read and
 * written the way runtime/supervisor/hand-runner.ts serves ctx.store), closed and opened again for a restart.
 * Records are readings from a public traffic data set (../shared/datasets/nab, speed_6005.csv).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { Journal, type JournalOptions, idempotencyKey } from '../../../hands/pipeline/journal.ts';
import type { PipelineRecord } from '../../../hands/pipeline/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandStore } from '../../../runtime/core/hand.ts';
import { MemStore, type StoreBackend, closeStores, countKeys, storeBackends } from '../../helpers/hand-store.ts';
import { nabFile } from '../../helpers/datasets.ts';

interface Backend extends StoreBackend {
  /** how many entries the journal keeps on disk */
  entryKeys(pipeline: string): Promise<number>;
}

after(closeStores);

const BACKENDS: Record<string, () => Promise<Backend>> = Object.fromEntries(
  Object.entries(storeBackends('pipeline', 'talon-journal-')).map(([name, make]) => [
    name,
    async () => {
      const b = (await make()) as Backend;
      b.entryKeys = (p: string) => countKeys(b.store, `journal/${p}/e/`);
      return b;
    },
  ]),
);

// ------------------------------------------------------------------------------------------------ records

const readings: PipelineRecord[] = readFileSync(nabFile('realTraffic/speed_6005.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => {
    const [ts, value] = line.split(',');
    return { sensor: 'speed_6005', ts: `${ts!.replace(' ', 'T')}Z`, value: Number(value) };
  });

/** n readings, numbered from `from` so order can be checked */
const recs = (n: number, from = 1): PipelineRecord[] =>
  Array.from({ length: n }, (_, i) => ({ ...readings[(from + i - 1) % readings.length], n: from + i }));

async function open(store: HandStore, opts: Partial<JournalOptions> = {}): Promise<Journal> {
  const j = new Journal(store, { pipeline: 'p1', sinks: ['fast', 'slow'], ...opts });
  await j.open();
  return j;
}

const ns = (entries: Array<{ record: PipelineRecord }>): unknown[] => entries.map((e) => e.record.n);

// ------------------------------------------------------------------------------------------------ tests

test('the readings data set is there (the tests read real rows)', () => {
  assert.ok(readings.length >= 2000);
  assert.equal(typeof readings[0]!.value, 'number');
});

test('idempotencyKey is pipeline:seq', () => {
  assert.equal(idempotencyKey('p1', 42), 'p1:42');
});

test('options are checked, naming the field', () => {
  const s = new MemStore();
  const err = (opts: Partial<JournalOptions>, re: RegExp) =>
    assert.throws(() => new Journal(s, { pipeline: 'p1', sinks: ['a'], ...opts } as JournalOptions), re);
  err({ pipeline: 'a/b' }, /pipeline must be a name/);
  err({ sinks: [] }, /sinks must list at least one/);
  err({ sinks: ['a', 'a'] }, /sinks has an id twice/);
  err({ maxRecords: 0 }, /maxRecords must be a number above 0/);
  err({ onFull: 'drop' as never }, /onFull must be one of drop-oldest, drop-newest, block/);
});

for (const [kind, make] of Object.entries(BACKENDS)) {
  describe(`journal over the ${kind} store`, () => {
    test('two sinks at different speeds: each reads in order from its cursor; deleted only once both acked', async () => {
      const b = await make();
      const j = await open(b.store);
      const r = await j.append(recs(10));
      assert.deepEqual(r, {
        accepted: 10,
        dropped: 0,
        blocked: false,
        evicted: 0,
        tooLarge: [],
        firstSeq: 1,
        lastSeq: 10,
      });
      const fast = await j.next('fast', 100);
      assert.deepEqual(ns(fast), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual(
        fast.map((e) => e.seq),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      assert.equal(fast[3]!.id, 'p1:4');
      assert.deepEqual(fast[0]!.record, { ...readings[0], n: 1 });
      assert.equal(await j.ack('fast', 10), 10);
      // the slow sink has acked nothing: everything is kept
      assert.equal(await b.entryKeys('p1'), 10);
      const slow = await j.next('slow', 3);
      assert.deepEqual(ns(slow), [1, 2, 3]);
      // no ack: the same entries come again (a failed delivery is retried by reading again)
      assert.deepEqual(ns(await j.next('slow', 3)), [1, 2, 3]);
      // read ahead of what is in flight
      assert.deepEqual(ns(await j.next('slow', 2, { after: 3 })), [4, 5]);
      assert.equal(await j.ack('slow', 3), 3);
      assert.equal(await b.entryKeys('p1'), 7);
      assert.deepEqual(ns(await j.next('slow', 100)), [4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual(await j.next('fast', 100), []);
      // a repeated or lower ack changes nothing
      assert.equal(await j.ack('slow', 2), 0);
      await j.append(recs(2, 11));
      assert.deepEqual(ns(await j.next('fast', 100)), [11, 12]);
      assert.equal(await j.ack('slow', 12), 9);
      assert.equal(await b.entryKeys('p1'), 2, 'the fast sink has not acked 11 and 12');
      await j.ack('fast', 12);
      assert.equal(await b.entryKeys('p1'), 0);
      const st = j.stats();
      assert.equal(st.records, 0);
      assert.equal(st.bytes, 0);
      assert.equal(st.appended, 12);
      assert.equal(st.sinks.fast!.delivered, 12);
      assert.equal(st.sinks.slow!.delivered, 12);
      assert.equal(st.sinks.slow!.lag, 0);
      // an ack past the last sequence number stops there
      assert.equal(await j.ack('fast', 99), 0);
      await assert.rejects(j.ack('nope', 1), /no sink "nope" \(have: fast, slow\)/);
      await assert.rejects(j.next('fast', 0), /max must be a whole number above 0/);
    });

    test('restart: a new journal over the same store continues the sequence and redelivers what was not acked', async () => {
      const b = await make();
      const j = await open(b.store);
      await j.append(recs(5));
      await j.ack('fast', 5);
      await j.ack('slow', 2);
      // the process dies here (the old journal is never used again)
      const j2 = await open(await b.restart());
      assert.deepEqual(ns(await j2.next('slow', 100)), [3, 4, 5]);
      assert.deepEqual(await j2.next('fast', 100), []);
      const r = await j2.append(recs(2, 6));
      assert.equal(r.firstSeq, 6);
      assert.deepEqual(ns(await j2.next('fast', 100)), [6, 7]);
      await j2.ack('fast', 7);
      await j2.ack('slow', 7);
      assert.equal(await b.entryKeys('p1'), 0);
      // with nothing kept, the sequence still goes on after another restart (from the meta)
      const j3 = await open(await b.restart());
      assert.equal((await j3.append(recs(1, 8))).firstSeq, 8);
      const st = j3.stats();
      assert.equal(st.appended, 8);
      assert.deepEqual({ fast: st.sinks.fast!.delivered, slow: st.sinks.slow!.delivered }, { fast: 7, slow: 7 });
      assert.equal(st.records, 1);
    });

    test('restart with other sinks: a new sink gets what comes next; a removed one holds nothing back', async () => {
      const b = await make();
      const j = await open(b.store);
      await j.append(recs(4));
      await j.ack('fast', 4);
      const j2 = await open(await b.restart(), { sinks: ['fast', 'archive'] });
      // "slow" is gone: what only it held back was deleted
      assert.equal(await b.entryKeys('p1'), 0);
      assert.deepEqual(Object.keys(j2.stats().sinks).sort(), ['archive', 'fast']);
      await j2.append(recs(1, 5));
      assert.deepEqual(ns(await j2.next('archive', 10)), [5]);
    });

    test('drop-oldest at maxRecords: the oldest go for every sink, counted per sink', async () => {
      const b = await make();
      const j = await open(b.store, { maxRecords: 5, onFull: 'drop-oldest' });
      await j.append(recs(3));
      await j.ack('fast', 1);
      const r = await j.append(recs(4, 4));
      assert.equal(r.accepted, 4);
      assert.equal(r.evicted, 2);
      assert.equal(r.dropped, 0);
      assert.equal(await b.entryKeys('p1'), 5);
      assert.deepEqual(ns(await j.next('slow', 100)), [3, 4, 5, 6, 7]);
      assert.deepEqual(ns(await j.next('fast', 100)), [3, 4, 5, 6, 7]);
      let st = j.stats();
      assert.equal(st.dropped.oldest, 2);
      assert.equal(st.sinks.slow!.droppedOldest, 2);
      assert.equal(st.sinks.fast!.droppedOldest, 1, 'fast had delivered seq 1 itself');
      // a batch larger than the limit keeps its newest
      const big = await j.append(recs(8, 8));
      assert.deepEqual([big.accepted, big.dropped, big.evicted], [5, 3, 5]);
      assert.deepEqual(ns(await j.next('slow', 100)), [11, 12, 13, 14, 15]);
      st = j.stats();
      assert.equal(st.dropped.oldest, 2 + 3 + 5);
      assert.equal(st.records, 5);
    });

    test('drop-newest at maxRecords: what does not fit is refused and counted; what was kept stays', async () => {
      const b = await make();
      const j = await open(b.store, { maxRecords: 5, onFull: 'drop-newest' });
      await j.append(recs(3));
      const r = await j.append(recs(4, 4));
      assert.deepEqual([r.accepted, r.dropped, r.evicted, r.firstSeq, r.lastSeq], [2, 2, 0, 4, 5]);
      assert.deepEqual(ns(await j.next('slow', 100)), [1, 2, 3, 4, 5]);
      assert.equal(j.stats().dropped.newest, 2);
      const r2 = await j.append(recs(1, 8));
      assert.deepEqual([r2.accepted, r2.dropped], [0, 1]);
      await j.ack('fast', 5);
      await j.ack('slow', 5);
      assert.equal((await j.append(recs(1, 9))).accepted, 1);
      assert.equal(j.stats().dropped.newest, 3);
    });

    test('block at maxRecords: nothing accepted until the sinks make room; a batch that can never fit is an error', async () => {
      const b = await make();
      const j = await open(b.store, { maxRecords: 5, onFull: 'block' });
      await j.append(recs(4));
      const r = await j.append(recs(2, 5));
      assert.deepEqual([r.accepted, r.dropped, r.blocked], [0, 0, true]);
      assert.equal(await b.entryKeys('p1'), 4);
      assert.equal(j.stats().blockedAppends, 1);
      let freed = false;
      const space = j.waitForSpace().then(() => {
        freed = true;
      });
      await j.ack('fast', 2);
      await new Promise((res) => setImmediate(res));
      assert.equal(freed, false, 'one sink alone frees nothing');
      await j.ack('slow', 2);
      await space;
      const again = await j.append(recs(2, 5));
      assert.deepEqual([again.accepted, again.blocked, again.firstSeq], [2, false, 5]);
      await assert.rejects(j.append(recs(6, 7)), (e: TalonError) => {
        assert.equal(e.code, 'BAD_REQUEST');
        assert.match(e.message, /6 records .* can never fit .*maxRecords 5.*append fewer at once/);
        return true;
      });
      // an aborted wait resolves
      const ac = new AbortController();
      const w = j.waitForSpace(ac.signal);
      ac.abort();
      await w;
    });

    test('maxBytes (the JSON size of the records) under each policy; a record over it is tooLarge', async () => {
      const b = await make();
      const rec = (n: number) => ({ n, pad: 'x'.repeat(10) });
      const size = Buffer.byteLength(JSON.stringify(rec(1)));
      const limit = size * 4;
      const oldest = await open(b.store, { pipeline: 'o', maxBytes: limit, onFull: 'drop-oldest' });
      await oldest.append([1, 2, 3].map(rec));
      const ro = await oldest.append([4, 5].map(rec));
      assert.deepEqual([ro.accepted, ro.evicted], [2, 1]);
      assert.equal(oldest.stats().bytes, size * 4);
      assert.deepEqual(ns(await oldest.next('fast', 10)), [2, 3, 4, 5]);

      const newest = await open(b.store, { pipeline: 'n', maxBytes: limit, onFull: 'drop-newest' });
      const rn = await newest.append([1, 2, 3, 4, 5].map(rec));
      assert.deepEqual([rn.accepted, rn.dropped], [4, 1]);
      assert.equal(newest.stats().bytes, size * 4);

      const block = await open(b.store, { pipeline: 'b', maxBytes: limit, onFull: 'block' });
      await block.append([1, 2, 3].map(rec));
      assert.equal((await block.append([4, 5].map(rec))).blocked, true);

      const big = { n: 99, pad: 'y'.repeat(limit) };
      const rt = await newest.append([big]);
      assert.deepEqual([rt.accepted, rt.dropped, rt.tooLarge], [0, 1, [0]]);
      assert.equal(newest.stats().dropped.tooLarge, 1);
      // over the store's value limit (256 KB) with a large maxBytes: refused before the store would refuse the batch
      const roomy = await open(b.store, { pipeline: 'r', onFull: 'block' });
      const rr = await roomy.append([rec(1), { n: 2, blob: 'z'.repeat(300 * 1024) }, rec(3)]);
      assert.deepEqual([rr.accepted, rr.tooLarge], [2, [1]]);
      assert.deepEqual(ns(await roomy.next('fast', 10)), [1, 3]);
      await assert.rejects(
        roomy.append([[1, 2] as unknown as PipelineRecord]),
        /records\[0\] is an array; a record is a JSON object/,
      );
    });

    test('expiry by age with a fake clock: removed at the next append or compact, counted per sink', async () => {
      const b = await make();
      let now = 1_000_000;
      const j = await open(b.store, { maxAgeMs: 1000, now: () => now });
      await j.append(recs(3));
      await j.ack('fast', 1);
      now += 500;
      await j.append(recs(2, 4));
      assert.deepEqual(await j.lag('slow'), { entries: 5, oldestAgeMs: 500, oldestSeq: 1 });
      now += 600; // the first three are 1100 ms old, the next two 600
      const r = await j.append(recs(1, 6));
      assert.equal(r.evicted, 3);
      assert.deepEqual(ns(await j.next('slow', 10)), [4, 5, 6]);
      let st = j.stats();
      assert.equal(st.dropped.expired, 3);
      assert.equal(st.sinks.slow!.expired, 3);
      assert.equal(st.sinks.fast!.expired, 2, 'fast had delivered seq 1');
      assert.deepEqual(await j.lag('fast'), { entries: 3, oldestAgeMs: 600, oldestSeq: 4 });
      now += 450; // 4 and 5 are 1050 ms old, 6 is 450
      assert.equal(await j.compact(), 2);
      assert.deepEqual(ns(await j.next('fast', 10)), [6]);
      now += 2000;
      assert.equal(await j.compact(), 1);
      assert.equal(await b.entryKeys('p1'), 0);
      assert.deepEqual(await j.lag('slow'), { entries: 0, oldestAgeMs: 0, oldestSeq: 0 });
      st = j.stats();
      assert.equal(st.dropped.expired, 6);
      // the counters come back after a restart
      const j2 = await open(await b.restart(), { maxAgeMs: 1000, now: () => now });
      const st2 = j2.stats();
      assert.deepEqual({ ...st2, blockedAppends: 0 }, { ...st, blockedAppends: 0 });
      assert.equal((await j2.append(recs(1, 7))).firstSeq, 7);
    });

    test('counters after a restart: appended, delivered, dropped by reason, lag', async () => {
      const b = await make();
      const j = await open(b.store, { maxRecords: 6, onFull: 'drop-newest' });
      await j.append(recs(8));
      await j.ack('fast', 4);
      await j.ack('slow', 1);
      const before = j.stats();
      const j2 = await open(await b.restart(), { maxRecords: 6, onFull: 'drop-newest' });
      const st = j2.stats();
      assert.equal(st.appended, 6);
      assert.equal(st.dropped.newest, 2);
      assert.equal(st.sinks.fast!.delivered, 4);
      assert.equal(st.sinks.slow!.delivered, 1);
      assert.equal(st.sinks.slow!.lag, 5);
      assert.equal(st.records, 5);
      assert.deepEqual({ ...st, blockedAppends: 0 }, { ...before, blockedAppends: 0 });
      assert.equal((await j2.lag('slow')).entries, 5);
    });

    test('a long append is split into batches of at most 1000 operations and stays in order', async () => {
      const b = await make();
      const j = await open(b.store, { sinks: ['one'] });
      const r = await j.append(recs(2500));
      assert.deepEqual([r.accepted, r.firstSeq, r.lastSeq], [2500, 1, 2500]);
      const got = await j.next('one', 2500);
      assert.equal(got.length, 2500);
      assert.ok(got.every((e, i) => e.seq === i + 1 && e.record.n === i + 1));
      assert.equal(await j.ack('one', 2500), 2500);
      assert.equal(await b.entryKeys('p1'), 0);
    });

    test('100,000 records appended in batches of 1000 and drained by two sinks (throughput in a diagnostic)', async (t) => {
      const b = await make();
      const j = await open(b.store);
      const total = 100_000;
      let t0 = performance.now();
      for (let n = 1; n <= total; n += 1000) {
        const r = await j.append(recs(1000, n));
        assert.equal(r.accepted, 1000);
      }
      const appendMs = performance.now() - t0;
      assert.equal(j.stats().records, total);
      t0 = performance.now();
      let expect = 1;
      for (;;) {
        const fast = await j.next('fast', 1000);
        const slow = await j.next('slow', 1000);
        if (fast.length === 0 && slow.length === 0) break;
        for (const e of fast) assert.equal(e.record.n, expect++);
        if (fast.length) await j.ack('fast', fast[fast.length - 1]!.seq);
        if (slow.length) await j.ack('slow', slow[slow.length - 1]!.seq);
      }
      const drainMs = performance.now() - t0;
      assert.equal(expect, total + 1);
      assert.equal(await b.entryKeys('p1'), 0);
      assert.equal(j.stats().sinks.slow!.delivered, total);
      t.diagnostic(
        `${kind}: append ${Math.round(total / (appendMs / 1000))} records/s (${Math.round(appendMs)} ms), ` +
          `drain by 2 sinks ${Math.round(total / (drainMs / 1000))} records/s (${Math.round(drainMs)} ms)`,
      );
    });
  });
}

describe('journal failures (in-memory store that fails on command)', () => {
  test('a failed write leaves memory agreeing with the store: the next append goes on from what is on disk', async () => {
    const s = new MemStore();
    const j = await open(s, { sinks: ['one'] });
    await j.append(recs(3));
    s.failBatch = 1;
    await assert.rejects(j.append(recs(2, 4)), /no space left/);
    assert.equal(j.stats().lastSeq, 3);
    assert.equal(j.stats().appended, 3);
    const r = await j.append(recs(2, 4));
    assert.equal(r.firstSeq, 4);
    assert.deepEqual(ns(await j.next('one', 10)), [1, 2, 3, 4, 5]);
  });

  test('a crash in the middle of a long append: the batches that landed are whole (entries and meta agree)', async () => {
    const s = new MemStore();
    const j = await open(s, { sinks: ['one'] });
    s.failBatch = 2; // the first batch (999 entries and the meta) lands, the second does not
    await assert.rejects(j.append(recs(1500)), /no space left/);
    const s2 = s.restart();
    const j2 = await open(s2, { sinks: ['one'] });
    const st = j2.stats();
    assert.deepEqual([st.records, st.lastSeq, st.appended], [999, 999, 999]);
    // the source was never acknowledged: it sends all 1500 again (at-least-once: 999 twice, none lost)
    const r = await j2.append(recs(1500));
    assert.deepEqual([r.firstSeq, r.lastSeq], [1000, 2499]);
    assert.equal(
      j2.stats().bytes,
      (await j2.next('one', 2499)).reduce((a, e) => a + Buffer.byteLength(JSON.stringify(e.record)), 0),
    );
  });

  test('every write is synced, and an ack is one batch with its deletions', async () => {
    const s = new MemStore();
    const j = await open(s, { sinks: ['one'] });
    // the first open writes the meta with the sink's cursor
    assert.deepEqual([s.batches, s.synced], [1, 1]);
    await j.append(recs(10));
    await j.ack('one', 10);
    assert.deepEqual([s.batches, s.synced], [3, 3]);
    await open(s, { sinks: ['one'] });
    assert.equal(s.batches, 3, 'a second open with the same sinks writes nothing');
  });

  test('not opened: a clear error', async () => {
    const j = new Journal(new MemStore(), { pipeline: 'p1', sinks: ['a'] });
    await assert.rejects(j.append(recs(1)), /not open: await journal.open\(\) first/);
  });
});

test('a lost meta: the sequence, the sizes and the entries come back from the keys; every sink gets what is kept', async () => {
  const s = new MemStore();
  const j = await open(s);
  await j.append(recs(5));
  await j.ack('fast', 2);
  await j.ack('slow', 2);
  const bytes = j.stats().bytes;
  await s.del('journal/p1/m');
  const j2 = await open(s.restart());
  const st = j2.stats();
  assert.deepEqual([st.firstSeq, st.lastSeq, st.records, st.bytes], [3, 5, 3, bytes]);
  assert.deepEqual(ns(await j2.next('slow', 10)), [3, 4, 5]);
  assert.deepEqual(ns(await j2.next('fast', 10)), [3, 4, 5]);
  assert.equal((await j2.append(recs(1, 6))).firstSeq, 6);
});
