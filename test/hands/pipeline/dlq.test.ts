/**
 * The Pipeline Hand's dead-letter queue (hands/pipeline/dlq.ts) over two stores: a faithful in-memory HandStore
 * written here (the same as test/hands/pipeline/journal.test.ts's: ordered keys, list with prefix/after/limit/reverse,
 * batches of at most 1000 applied all or nothing, values through JSON) and the kernel's real LevelDB store
 * (runtime/store, a Hand's scope served as hand-runner.ts serves ctx.store), closed and opened again for a restart.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  type DeadLetter,
  type DeadLetterInput,
  DeadLetters,
  type DeadLettersOptions,
} from '../../../hands/pipeline/dlq.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandStore } from '../../../runtime/core/hand.ts';
import { MemStore, type StoreBackend, closeStores, countKeys, storeBackends } from '../../helpers/hand-store.ts';

interface Backend extends StoreBackend {
  /** how many letters are on disk */
  entryKeys(): Promise<number>;
}

after(closeStores);

const BACKENDS: Record<string, () => Promise<Backend>> = Object.fromEntries(
  Object.entries(storeBackends('pipeline', 'talon-dlq-')).map(([name, make]) => [
    name,
    async () => {
      const b = (await make()) as Backend;
      b.entryKeys = () => countKeys(b.store, 'dlq/e/');
      return b;
    },
  ]),
);

// ------------------------------------------------------------------------------------------------ tests

const letter = (n: number, over: Partial<DeadLetterInput> = {}): DeadLetterInput => ({
  pipeline: 'p1',
  stage: 'clean',
  error: new Error(`bad value in row ${n}`),
  record: { n, value: `v${n}` },
  at: 1_000 + n,
  ...over,
});

async function open(store: HandStore, opts: DeadLettersOptions = {}): Promise<DeadLetters> {
  const q = new DeadLetters(store, opts);
  await q.open();
  return q;
}

const idsOf = (list: Array<{ id: number }>): number[] => list.map((l) => l.id);

for (const [kind, make] of Object.entries(BACKENDS)) {
  describe(`dead letters over the ${kind} store`, () => {
    test('put and list: in arrival order, with the stage, the error and the original record; filters and paging', async () => {
      const b = await make();
      const q = await open(b.store);
      assert.equal(await q.put(letter(1)), 1);
      assert.deepEqual(
        await q.putMany([
          letter(2, { stage: 'validate', error: 'schema: /value must be number' }),
          letter(3, { pipeline: 'p2' }),
        ]),
        [2, 3],
      );
      const all = await q.list();
      assert.deepEqual(all[0], {
        id: 1,
        pipeline: 'p1',
        stage: 'clean',
        error: 'bad value in row 1',
        record: { n: 1, value: 'v1' },
        at: 1001,
      });
      assert.deepEqual(idsOf(all), [1, 2, 3]);
      assert.equal(all[1]!.error, 'schema: /value must be number');
      assert.deepEqual(idsOf(await q.list({ pipeline: 'p1' })), [1, 2]);
      assert.deepEqual(idsOf(await q.list({ pipeline: 'p1', stage: 'clean' })), [1]);
      assert.deepEqual(idsOf(await q.list({ limit: 2 })), [1, 2]);
      assert.deepEqual(idsOf(await q.list({ after: 2 })), [3]);
      assert.equal((await q.get(2))?.stage, 'validate');
      assert.equal(await q.get(9), undefined);
      assert.equal(await b.entryKeys(), 3);
      await assert.rejects(q.list({ limit: 0 }), /limit must be a whole number from 1 to 1000/);
      const st = q.stats();
      assert.deepEqual([st.entries, st.put, st.evicted], [3, 3, 0]);
      assert.ok(st.bytes > 0);
    });

    test('take then done: held while replayed, removed only when confirmed; a crash in between loses nothing', async () => {
      const b = await make();
      const q = await open(b.store);
      await q.putMany([letter(1), letter(2), letter(3)]);
      const taken = await q.take([1, 2, 9]);
      assert.deepEqual(idsOf(taken), [1, 2], 'an id that does not exist is left out');
      assert.deepEqual(taken[0]!.record, { n: 1, value: 'v1' });
      assert.deepEqual(await q.take([1]), [], 'held by the first take');
      assert.equal(q.stats().taken, 2);
      assert.deepEqual(idsOf(await q.list()), [1, 2, 3], 'still kept until done');
      assert.equal(await q.done([1]), 1);
      assert.deepEqual(idsOf(await q.list()), [2, 3]);
      // the process dies while 2 is being replayed
      const q2 = await open(await b.restart());
      assert.deepEqual(idsOf(await q2.take([2])), [2], 'free again after the restart');
      q2.release([2]);
      assert.deepEqual(idsOf(await q2.take({ pipeline: 'p1', limit: 5 })), [2, 3]);
      assert.equal(await q2.done([2, 3]), 2);
      assert.equal(await b.entryKeys(), 0);
      const st = q2.stats();
      assert.deepEqual([st.entries, st.replayed, st.put, st.taken], [0, 3, 3, 0]);
      // ids go on after the restart
      assert.equal(await q2.put(letter(4)), 4);
    });

    test('a take is held for leaseMs (fake clock), then another take may have it', async () => {
      const b = await make();
      let now = 5_000;
      const q = await open(b.store, { leaseMs: 1000, now: () => now });
      await q.put(letter(1));
      assert.equal((await q.take([1])).length, 1);
      now += 999;
      assert.equal((await q.take([1])).length, 0);
      now += 2;
      assert.equal((await q.take([1])).length, 1);
    });

    test('drop: by id, every letter of a pipeline or a stage, or all; counted', async () => {
      const b = await make();
      const q = await open(b.store);
      await q.putMany([
        letter(1),
        letter(2, { pipeline: 'p2' }),
        letter(3, { stage: 'load' }),
        letter(4),
        letter(5, { pipeline: 'p2' }),
      ]);
      assert.equal(await q.drop([1, 42]), 1);
      assert.equal(await q.drop({ all: true, pipeline: 'p2' }), 2);
      assert.deepEqual(idsOf(await q.list()), [3, 4]);
      assert.equal(await q.drop({ all: true, stage: 'load' }), 1);
      assert.equal(await q.drop({ all: true }), 1);
      assert.equal(await b.entryKeys(), 0);
      const st = q.stats();
      assert.deepEqual([st.entries, st.bytes, st.dropped], [0, 0, 5]);
      await assert.rejects(
        q.drop({ all: false } as never),
        /drop takes a list of ids or \{ all: true, pipeline\?, stage\? \}/,
      );
      await assert.rejects(q.drop([0]), /list of ids \(whole numbers from 1\)/);
      // the counters come back after a restart
      const q2 = await open(await b.restart());
      assert.deepEqual([q2.stats().dropped, q2.stats().put, q2.stats().entries], [5, 5, 0]);
    });

    test('the cap on entries: the oldest go, counted loudly (counter, time, callback), also across a restart', async () => {
      const b = await make();
      const evictions: Array<[number, number]> = [];
      const now = 77_000;
      const opts: DeadLettersOptions = {
        maxEntries: 5,
        now: () => now,
        onEvict: (n, total) => evictions.push([n, total]),
      };
      const q = await open(b.store, opts);
      for (let i = 1; i <= 5; i++) await q.put(letter(i));
      assert.deepEqual(evictions, []);
      await q.putMany([letter(6), letter(7), letter(8)]);
      assert.deepEqual(idsOf(await q.list()), [4, 5, 6, 7, 8]);
      assert.deepEqual(evictions, [[3, 3]]);
      let st = q.stats();
      assert.deepEqual([st.entries, st.evicted, st.lastEvictedAt], [5, 3, 77_000]);
      const q2 = await open(await b.restart(), opts);
      await q2.put(letter(9));
      assert.deepEqual(idsOf(await q2.list()), [5, 6, 7, 8, 9]);
      assert.deepEqual(evictions, [
        [3, 3],
        [1, 4],
      ]);
      // a put larger than the cap keeps its own newest
      await q2.putMany([10, 11, 12, 13, 14, 15, 16].map((n) => letter(n)));
      assert.deepEqual(idsOf(await q2.list()), [12, 13, 14, 15, 16]);
      st = q2.stats();
      assert.deepEqual([st.entries, st.evicted, st.put], [5, 11, 16]);
      assert.equal(await b.entryKeys(), 5);
    });

    test('the cap on bytes', async () => {
      const b = await make();
      const q = await open(b.store);
      await q.put(letter(1));
      const one = q.stats().bytes;
      const capped = await open(b.store, { prefix: 'dlq2/', maxBytes: one * 3 + 1 });
      await capped.putMany([1, 2, 3, 4].map((n) => letter(n)));
      const st = capped.stats();
      assert.deepEqual([st.entries, st.evicted], [3, 1]);
      assert.ok(st.bytes <= one * 3 + 1);
      assert.deepEqual(idsOf(await capped.list()), [2, 3, 4]);
    });

    test('a record too large for the store, or not JSON, is kept as a preview (flagged), never lost silently', async () => {
      const b = await make();
      const q = await open(b.store);
      const circular: Record<string, unknown> = { a: 1 };
      circular.self = circular;
      await q.putMany([
        letter(1, { record: { blob: 'x'.repeat(400 * 1024) } }),
        letter(2, { record: circular }),
        letter(3, { record: { big: 10n } }),
        letter(4, { error: { code: 400, body: 'bad row' }, stage: 's'.repeat(500) }),
      ]);
      const [big, circ, bigint, obj] = (await q.list()) as [DeadLetter, DeadLetter, DeadLetter, DeadLetter];
      assert.equal(big.truncated, true);
      assert.equal(big.record, null);
      assert.ok(big.preview?.startsWith('{"blob":"xxx'));
      assert.ok((big.preview?.length ?? 0) < 20_000);
      assert.equal(circ.truncated, true);
      assert.match(circ.preview ?? '', /^not JSON: /);
      assert.equal(bigint.truncated, true);
      assert.equal(obj.error, '{"code":400,"body":"bad row"}');
      assert.equal(obj.stage.length, 201);
      assert.deepEqual(obj.record, { n: 4, value: 'v4' });
      assert.equal(q.stats().truncated, 3);
    });

    test('2,500 letters in one putMany (batches of at most 1000) and dropped at once', async () => {
      const b = await make();
      const q = await open(b.store);
      const ids = await q.putMany(Array.from({ length: 2500 }, (_, i) => letter(i + 1)));
      assert.equal(ids.length, 2500);
      assert.equal(ids[2499], 2500);
      assert.equal(await b.entryKeys(), 2500);
      const page2 = await q.list({ after: 1000, limit: 1000 });
      assert.deepEqual([page2[0]!.id, page2[999]!.id], [1001, 2000]);
      assert.equal(await q.drop({ all: true, pipeline: 'p1' }), 2500);
      assert.equal(await b.entryKeys(), 0);
      assert.equal(q.stats().entries, 0);
    });
  });
}

describe('dead letters: failures', () => {
  test('a failed write changes nothing in memory; the next put goes on', async () => {
    const s = new MemStore();
    const q = await open(s);
    await q.put(letter(1));
    s.failBatch = 1;
    await assert.rejects(q.put(letter(2)), (e: TalonError) => e.code === 'STORE_FULL');
    assert.deepEqual([q.stats().entries, q.stats().put], [1, 1]);
    assert.equal(await q.put(letter(2)), 2);
    assert.deepEqual(idsOf(await q.list()), [1, 2]);
  });

  test('every write is synced, one batch per put', async () => {
    const s = new MemStore();
    const q = await open(s);
    await q.put(letter(1));
    await q.done([1]);
    assert.deepEqual([s.batches, s.synced], [2, 2]);
  });

  test('not opened, bad options: clear errors', async () => {
    await assert.rejects(new DeadLetters(new MemStore()).put(letter(1)), /not open: await dlq.open\(\) first/);
    assert.throws(() => new DeadLetters(new MemStore(), { maxEntries: -1 }), /maxEntries must be a number above 0/);
    const q = await open(new MemStore());
    await assert.rejects(q.putMany([{ stage: 'x' } as never]), /dead letter \[0\] needs pipeline and stage/);
  });
});
