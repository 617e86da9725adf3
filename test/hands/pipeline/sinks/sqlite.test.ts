/**
 * The Pipeline Hand's SQLite sink (hands/pipeline/sinks/sqlite.ts) on a real SQLite file in a temp folder: upsert by
 * key written twice leaves one row per key (with the second write's values), NOT NULL and CHECK violations rejected
 * alone with the rest committed, objects bound as JSON text, plain inserts without a key, spec.columns, a missing
 * table and a database held by another writer (SQLITE_BUSY) answered as transient. Read back through a second
 * connection. Records are readings from a public traffic data set (../shared/datasets/nab, speed_6005.csv).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { SQLITE_BACKOFF, type SqliteSinkOptions, createSqliteSink } from '../../../../hands/pipeline/sinks/sqlite.ts';
import type { SinkDeps, SinkEntry } from '../../../../hands/pipeline/sinks/types.ts';
import type { PipelineRecord } from '../../../../hands/pipeline/types.ts';
import { nabRows } from '../fixtures.ts';

const ROWS: PipelineRecord[] = nabRows().map(({ timestamp, value }) => ({
  sensor: 'speed_6005',
  ts: timestamp,
  speed: value,
}));
const entries = (records: PipelineRecord[], from = 0): SinkEntry[] =>
  records.map((record, i) => ({ id: `p1:${from + i + 1}`, record }));

const dir = mkdtempSync(join(tmpdir(), 'talon-sqlite-sink-'));
const database = join(dir, 'out.db');
const setup = new DatabaseSync(database);
setup.exec(`
  CREATE TABLE readings (sensor TEXT NOT NULL, ts TEXT NOT NULL, speed REAL NOT NULL CHECK (speed >= 0),
                         meta TEXT, PRIMARY KEY (sensor, ts));
  CREATE TABLE log (sensor TEXT, ts TEXT, speed REAL);
`);
setup.close();
after(() => rmSync(dir, { recursive: true, force: true }));

const deps: SinkDeps = { now: () => 0, log: () => {} };
const spec = (over: Partial<SqliteSinkOptions> = {}): SqliteSinkOptions => ({
  type: 'sqlite',
  inputs: ['raw'],
  database,
  table: 'readings',
  key: ['sensor', 'ts'],
  ...over,
});
function query<T>(sql: string): T[] {
  const db = new DatabaseSync(database, { readOnly: true });
  try {
    return db
      .prepare(sql)
      .all()
      .map((row) => ({ ...row })) as T[];
  } finally {
    db.close();
  }
}

describe('sqlite sink', () => {
  test('upsert by key: the same batch twice leaves one row per key, with the last values', async () => {
    const sink = createSqliteSink(spec(), deps);
    const batch = entries(ROWS.slice(0, 200));
    assert.deepEqual(await sink.write(batch), { done: 200, rejected: [] });
    const changed = batch.map((e) => ({ ...e, record: { ...e.record, speed: (e.record.speed as number) + 1 } }));
    assert.deepEqual(await sink.write(changed), { done: 200, rejected: [] });
    await sink.close();
    assert.deepEqual(query('SELECT count(*) AS n, count(DISTINCT sensor || ts) AS keys FROM readings'), [
      { n: 200, keys: 200 },
    ]);
    const first = query<{ speed: number }>(`SELECT speed FROM readings WHERE ts = '${ROWS[0]?.ts}'`);
    assert.deepEqual(first, [{ speed: (ROWS[0]?.speed as number) + 1 }]);
  });

  test('a NOT NULL and a CHECK violation are rejected alone, the rest committed; an object is JSON text', async () => {
    const sink = createSqliteSink(spec(), deps);
    const records = ROWS.slice(300, 306).map((r) => ({ ...r }));
    (records[1] as PipelineRecord).speed = null; // NOT NULL
    (records[4] as PipelineRecord).speed = -5; // CHECK (speed >= 0)
    (records[2] as PipelineRecord).meta = { lane: 2, tags: ['a', 'b'] };
    const r = await sink.write(entries(records, 300));
    assert.equal(r.done, 6);
    assert.equal(r.retryAfterMs, undefined);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1, 4],
    );
    assert.match(r.rejected[0]?.error ?? '', /NOT NULL constraint failed: readings\.speed/);
    assert.match(r.rejected[1]?.error ?? '', /CHECK constraint failed/);
    await sink.close();
    const rows = query<{ ts: string; meta: string | null }>(
      `SELECT ts, meta FROM readings WHERE ts >= '${records[0]?.ts}' AND ts <= '${records[5]?.ts}' ORDER BY ts`,
    );
    assert.deepEqual(
      rows.map((x) => x.ts),
      [0, 2, 3, 5].map((i) => records[i]?.ts),
    );
    assert.deepEqual(JSON.parse(rows[1]?.meta as string), { lane: 2, tags: ['a', 'b'] });
  });

  test('a record missing a key field or holding a field the table lacks is rejected alone', async () => {
    const sink = createSqliteSink(spec(), deps);
    const records = ROWS.slice(400, 403).map((r) => ({ ...r }));
    delete (records[0] as PipelineRecord).ts;
    (records[1] as PipelineRecord).colour = 'red';
    const r = await sink.write(entries(records, 400));
    assert.equal(r.done, 3);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [0, 1],
    );
    assert.match(r.rejected[0]?.error ?? '', /key field "ts" is missing/);
    assert.match(r.rejected[1]?.error ?? '', /no column named colour/);
    await sink.close();
    assert.equal(query(`SELECT ts FROM readings WHERE ts = '${records[2]?.ts}'`).length, 1);
  });

  test('without a key: plain inserts (a redelivery inserts again); spec.columns limits what is written', async () => {
    const sink = createSqliteSink(spec({ table: 'main.log', key: undefined, columns: ['sensor', 'speed'] }), deps);
    const batch = entries(ROWS.slice(0, 10));
    assert.deepEqual(await sink.write(batch), { done: 10, rejected: [] });
    assert.deepEqual(await sink.write(batch), { done: 10, rejected: [] });
    await sink.close();
    assert.deepEqual(query('SELECT count(*) AS n, count(ts) AS withTs FROM log'), [{ n: 20, withTs: 0 }]);
  });

  test('a missing table is the sink, not the records: done 0, retry, error', async () => {
    const sink = createSqliteSink(spec({ table: 'nowhere' }), deps);
    const r = await sink.write(entries(ROWS.slice(0, 3)));
    assert.deepEqual([r.done, r.rejected, r.retryAfterMs], [0, [], SQLITE_BACKOFF.firstMs]);
    assert.match(r.error ?? '', /no such table: nowhere/);
    await sink.close();
  });

  test('SQLITE_BUSY (another writer holds the database): done 0, retry later, nothing half written', async () => {
    const other = new DatabaseSync(database);
    other.exec('BEGIN EXCLUSIVE');
    const sink = createSqliteSink(spec(), deps);
    const batch = entries(ROWS.slice(500, 520), 500);
    const r = await sink.write(batch);
    assert.equal(r.done, 0);
    assert.deepEqual(r.rejected, []);
    assert.equal(r.retryAfterMs, SQLITE_BACKOFF.firstMs);
    assert.match(r.error ?? '', /busy/);
    other.exec('ROLLBACK');
    other.close();
    assert.equal(query(`SELECT 1 FROM readings WHERE ts = '${ROWS[500]?.ts}'`).length, 0);
    assert.deepEqual(await sink.write(batch), { done: 20, rejected: [] });
    await sink.close();
    assert.equal(
      query(`SELECT 1 FROM readings WHERE ts >= '${ROWS[500]?.ts}' AND ts <= '${ROWS[519]?.ts}'`).length,
      20,
    );
  });
});
