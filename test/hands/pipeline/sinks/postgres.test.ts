/**
 * The Pipeline Hand's PostgreSQL sink (hands/pipeline/sinks/postgres.ts) against a real PostgreSQL 15
 * (test/helpers/postgres.ts): upsert by key written twice leaves one row per key (with the second write's values),
 * a key updated twice in one batch applied in order, NOT NULL / CHECK / type / unknown-column violations rejected
 * alone with the rest committed (a bad row found in a batch of 400 by splitting), objects written as jsonb, plain
 * inserts without a key, spec.columns, a missing table and a key without a unique index answered as transient with
 * what to fix, and the server down (done 0, growing retryAfterMs, never a throw) then up (everything delivered once).
 * Read back through the helper's own connection. Records are readings from a public traffic data set
 * (../shared/datasets/nab, speed_6005.csv).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { POSTGRES_BACKOFF, createPostgresSink } from '../../../../hands/pipeline/sinks/postgres.ts';
import type { SinkDeps, SinkEntry } from '../../../../hands/pipeline/sinks/types.ts';
import type { PipelineRecord, PostgresSinkSpec } from '../../../../hands/pipeline/types.ts';
import { type Postgres, startPostgres } from '../../../helpers/postgres.ts';
import { nabRows } from '../fixtures.ts';

const ROWS: PipelineRecord[] = nabRows().map(({ timestamp, value }) => ({
  sensor: 'speed_6005',
  ts: timestamp,
  speed: value,
}));
const entries = (records: PipelineRecord[], from = 0): SinkEntry[] =>
  records.map((record, i) => ({ id: `p1:${from + i + 1}`, record }));

let pg: Postgres;
before(async () => {
  pg = await startPostgres();
  await pg.query(`
    CREATE TABLE readings (sensor text NOT NULL, ts timestamp NOT NULL, speed double precision NOT NULL
                           CHECK (speed >= 0), meta jsonb, PRIMARY KEY (sensor, ts));
    CREATE TABLE log (sensor text, ts text, speed double precision);
    CREATE TABLE nokey (sensor text, ts timestamp, speed double precision);`);
});
after(() => pg?.stop());

const deps: SinkDeps = { now: () => 0, log: () => {} };
const spec = (over: Partial<PostgresSinkSpec> = {}): PostgresSinkSpec => ({
  type: 'postgres',
  inputs: ['raw'],
  connection: 'pg-main',
  table: 'readings',
  key: ['sensor', 'ts'],
  ...over,
});
const sinkOf = (over: Partial<PostgresSinkSpec> = {}) =>
  createPostgresSink(spec(over), deps, { connectionString: pg.url });
const between = async (from: number, to: number) =>
  pg.query<{ ts: string; speed: number }>(
    `SELECT to_char(ts, 'YYYY-MM-DD HH24:MI:SS') AS ts, speed FROM readings WHERE ts BETWEEN $1 AND $2 ORDER BY ts`,
    [ROWS[from]?.ts, ROWS[to]?.ts],
  );

describe('postgres sink', () => {
  test('upsert by key: the same batch twice leaves one row per key, with the last values', async () => {
    const sink = sinkOf();
    const batch = entries(ROWS.slice(0, 200));
    assert.deepEqual(await sink.write(batch), { done: 200, rejected: [] });
    assert.deepEqual(await sink.write(batch), { done: 200, rejected: [] });
    const changed = batch.map((e) => ({ ...e, record: { ...e.record, speed: (e.record.speed as number) + 1 } }));
    assert.deepEqual(await sink.write(changed), { done: 200, rejected: [] });
    await sink.close();
    assert.deepEqual(
      await pg.query('SELECT count(*)::int AS n, count(DISTINCT (sensor, ts))::int AS keys FROM readings'),
      [{ n: 200, keys: 200 }],
    );
    const rows = await between(0, 199);
    assert.deepEqual(
      rows.map((r) => r.speed),
      ROWS.slice(0, 200).map((r) => (r.speed as number) + 1),
    );
  });

  test('a key written twice in one batch: both applied in order, the last one wins', async () => {
    const sink = sinkOf();
    const a = ROWS[250] as PipelineRecord;
    const b = ROWS[251] as PipelineRecord;
    const batch = entries([{ ...a, speed: 1 }, { ...b, speed: 2 }, { ...a, speed: 3 }, { ...a, speed: 4 }, b], 250);
    assert.deepEqual(await sink.write(batch), { done: 5, rejected: [] });
    await sink.close();
    assert.deepEqual(
      (await between(250, 251)).map((r) => r.speed),
      [4, b.speed],
    );
  });

  test('NOT NULL, CHECK, a bad type and an unknown column are rejected alone, the rest committed', async () => {
    const sink = sinkOf();
    const records = ROWS.slice(300, 307).map((r) => ({ ...r }));
    (records[1] as PipelineRecord).speed = null; // NOT NULL
    (records[4] as PipelineRecord).speed = -5; // CHECK (speed >= 0)
    (records[5] as PipelineRecord).speed = 'fast'; // not a double precision
    (records[2] as PipelineRecord).meta = { lane: 2, tags: ['a', 'b'] };
    const unknown = { ...(ROWS[307] as PipelineRecord), colour: 'red' }; // no such column
    const missingKey = { ...(ROWS[308] as PipelineRecord) };
    delete missingKey.ts;
    const r = await sink.write(entries([...records, unknown, missingKey], 300));
    assert.equal(r.done, 9);
    assert.equal(r.retryAfterMs, undefined);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1, 4, 5, 7, 8],
    );
    assert.match(r.rejected[0]?.error ?? '', /null value in column "speed".*violates not-null constraint/);
    assert.match(r.rejected[1]?.error ?? '', /violates check constraint "readings_speed_check"/);
    assert.match(r.rejected[2]?.error ?? '', /invalid input syntax for type double precision: "fast"/);
    assert.match(r.rejected[3]?.error ?? '', /column "colour" of relation "readings" does not exist/);
    assert.match(r.rejected[4]?.error ?? '', /the key field "ts" is missing/);
    await sink.close();
    const rows = await pg.query<{ ts: string; meta: unknown }>(
      `SELECT to_char(ts, 'YYYY-MM-DD HH24:MI:SS') AS ts, meta FROM readings WHERE ts BETWEEN $1 AND $2 ORDER BY ts`,
      [ROWS[300]?.ts, ROWS[308]?.ts],
    );
    assert.deepEqual(
      rows.map((x) => x.ts),
      [0, 2, 3, 6].map((i) => records[i]?.ts),
    );
    assert.deepEqual(rows[1]?.meta, { lane: 2, tags: ['a', 'b'] });
  });

  test('one bad row in a batch of 400 (one INSERT): found by splitting, the other 399 committed', async () => {
    const sink = sinkOf();
    const records = ROWS.slice(1000, 1400).map((r) => ({ ...r }));
    (records[277] as PipelineRecord).speed = -1;
    const r = await sink.write(entries(records, 1000));
    assert.equal(r.done, 400);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [277],
    );
    await sink.close();
    const rows = await between(1000, 1399);
    assert.equal(rows.length, 399);
    assert.ok(!rows.some((x) => x.ts === records[277]?.ts));
  });

  test('without a key: plain inserts (a redelivery inserts again); spec.columns limits what is written', async () => {
    const sink = sinkOf({ table: 'public.log', key: undefined, columns: ['sensor', 'speed'] });
    const batch = entries(ROWS.slice(0, 10));
    assert.deepEqual(await sink.write(batch), { done: 10, rejected: [] });
    assert.deepEqual(await sink.write(batch), { done: 10, rejected: [] });
    await sink.close();
    assert.deepEqual(await pg.query('SELECT count(*)::int AS n, count(ts)::int AS "withTs" FROM log'), [
      { n: 20, withTs: 0 },
    ]);
  });

  test('a missing table, a key with no unique index: the sink’s problem, done 0, retry, what to fix', async () => {
    const missing = sinkOf({ table: 'later' });
    const batch = entries(ROWS.slice(0, 3));
    const m = await missing.write(batch);
    assert.deepEqual([m.done, m.rejected, m.retryAfterMs], [0, [], POSTGRES_BACKOFF.firstMs]);
    assert.match(m.error ?? '', /no such table.*relation "later" does not exist/);
    // once the table exists the same sink (its connection kept after the rollback) delivers the batch
    await pg.query('CREATE TABLE later (sensor text, ts timestamp, speed double precision, PRIMARY KEY (sensor, ts))');
    assert.deepEqual(await missing.write(batch), { done: 3, rejected: [] });
    await missing.close();
    assert.deepEqual(await pg.query('SELECT count(*)::int AS n FROM later'), [{ n: 3 }]);
    const noIndex = sinkOf({ table: 'nokey' });
    const n = await noIndex.write(batch);
    assert.deepEqual([n.done, n.rejected, n.retryAfterMs], [0, [], POSTGRES_BACKOFF.firstMs]);
    assert.match(n.error ?? '', /no unique index or primary key on \(sensor, ts\)/);
    const again = await noIndex.write(batch);
    assert.equal(again.retryAfterMs, POSTGRES_BACKOFF.firstMs * 2);
    await noIndex.close();
    assert.deepEqual(await pg.query('SELECT count(*)::int AS n FROM nokey'), [{ n: 0 }]);
  });

  test('the server down: done 0 with a growing retryAfterMs, never a throw; up again: delivered once', async () => {
    const logs: string[] = [];
    const sink = createPostgresSink(
      spec(),
      { now: () => 0, log: (_l, msg) => logs.push(msg) },
      { connectionString: pg.url },
    );
    // connected first, so the shutdown cuts a live connection (its 'error' event must not crash the process)
    assert.deepEqual(await sink.write(entries(ROWS.slice(2000, 2010), 2000)), { done: 10, rejected: [] });
    const batch = entries(ROWS.slice(2000, 2050), 2000);
    await pg.stopServer();
    try {
      const waits: Array<number | undefined> = [];
      for (let i = 0; i < 3; i++) {
        const r = await sink.write(batch);
        assert.deepEqual([r.done, r.rejected], [0, []]);
        assert.match(r.error ?? '', /cannot reach the server/);
        waits.push(r.retryAfterMs);
      }
      assert.deepEqual(
        waits,
        [1, 2, 4].map((k) => k * POSTGRES_BACKOFF.firstMs),
      );
    } finally {
      await pg.startServer();
    }
    assert.deepEqual(await sink.write(batch), { done: 50, rejected: [] });
    // the backoff starts over after a success
    await pg.stopServer();
    try {
      assert.equal((await sink.write(batch)).retryAfterMs, POSTGRES_BACKOFF.firstMs);
    } finally {
      await pg.startServer();
    }
    await sink.close();
    assert.equal((await between(2000, 2049)).length, 50);
    assert.ok(logs.some((l) => /cannot reach the server.*retrying in 4000 ms/.test(l)));
  });
});
