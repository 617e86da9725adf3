/**
 * The Pipeline Hand's PostgreSQL source (hands/pipeline/sources/postgres.ts) against a real PostgreSQL 15
 * (test/helpers/postgres.ts): the cursor moves only on ack and a new source on the same state resumes there, LIMIT
 * per poll with `more`, the smallest value of the cursor column's type without `cursor.initial`, a timestamptz cursor
 * with microseconds that round-trips exactly, the values' conversions, a failing query answered as `{ error }`, and
 * the server stopped under a connected source then started again. Rows are readings from a public traffic data set
 * (../shared/datasets/nab, speed_6005.csv).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createPostgresSource } from '../../../../hands/pipeline/sources/postgres.ts';
import type { SqlSourceSpec } from '../../../../hands/pipeline/types.ts';
import { type Postgres, startPostgres } from '../../../helpers/postgres.ts';
import { memoryState, nabRows } from '../fixtures.ts';

const ROWS = nabRows();
let pg: Postgres;

before(async () => {
  pg = await startPostgres();
  await pg.query(`CREATE TABLE readings (id serial PRIMARY KEY, sensor text NOT NULL, ts timestamp NOT NULL,
                                         speed double precision, big bigint, raw bytea, meta jsonb, price numeric)`);
});
after(() => pg?.stop());

async function insert(from: number, n: number): Promise<void> {
  const values: unknown[] = [];
  const tuples: string[] = [];
  for (const [i, row] of ROWS.slice(from, from + n).entries()) {
    tuples.push(`($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`);
    values.push('speed_6005', row.timestamp, row.value);
  }
  await pg.query(`INSERT INTO readings (sensor, ts, speed) VALUES ${tuples.join(', ')}`, values);
}

const spec = (extra: Partial<SqlSourceSpec> = {}): SqlSourceSpec => ({
  type: 'sql',
  driver: 'postgres',
  connection: 'pg-main',
  query: 'SELECT id, sensor, ts, speed FROM readings WHERE id > :cursor',
  cursor: { column: 'id', initial: 0 },
  intervalMs: 1000,
  ...extra,
});
const silent = { log: () => {} };

describe('postgres source', () => {
  test('past the cursor, LIMIT per poll with `more`; the cursor moves only on ack; a new source resumes', async () => {
    await insert(0, 5);
    const state = memoryState();
    const src = createPostgresSource(spec(), { state, ...silent }, { connectionString: pg.url, limit: 3 });
    const a = await src.poll();
    assert.equal(a.error, undefined);
    assert.deepEqual(
      a.records.map((r) => r.id),
      [1, 2, 3],
    );
    assert.deepEqual(a.records[0], {
      id: 1,
      sensor: 'speed_6005',
      ts: (ROWS[0]?.timestamp as string).replace(' ', 'T'),
      speed: ROWS[0]?.value,
    });
    assert.equal(a.more, true);
    // a crash before ack: the same rows again
    const again = await src.poll();
    assert.deepEqual(again.records, a.records);
    assert.equal(state.map.size, 0);
    await src.ack(again.token);
    assert.deepEqual(state.map.get('cursor'), { value: 3 });
    const b = await src.poll();
    assert.deepEqual(
      b.records.map((r) => r.id),
      [4, 5],
    );
    assert.equal(b.more, false);
    await src.ack(b.token);
    await src.close();
    // rows inserted while no source runs; a new source on the same state starts after the acknowledged id 5
    await insert(5, 4);
    const resumed = createPostgresSource(spec(), { state, ...silent }, { connectionString: pg.url, limit: 3 });
    const c = await resumed.poll();
    assert.deepEqual(
      c.records.map((r) => r.id),
      [6, 7, 8],
    );
    await resumed.ack(c.token);
    const d = await resumed.poll();
    assert.deepEqual(
      d.records.map((r) => r.id),
      [9],
    );
    await resumed.ack(d.token);
    assert.deepEqual(await resumed.poll(), { records: [], bad: [], token: null, more: false });
    await resumed.close();
  });

  test('no cursor.initial: every row read (the type’s smallest value); text and bigint cursors too', async () => {
    await pg.query(`CREATE TABLE signed (n bigint PRIMARY KEY, label text NOT NULL)`);
    await pg.query(`INSERT INTO signed VALUES (-9223372036854775807, 'min+1'), (-5, 'a'), (0, 'b'), (7, 'c')`);
    const byNumber = createPostgresSource(
      spec({ query: 'SELECT n, label FROM signed WHERE n > :cursor', cursor: { column: 'n' } }),
      { state: memoryState(), ...silent },
      { connectionString: pg.url },
    );
    const r = await byNumber.poll();
    assert.deepEqual(
      r.records.map((x) => x.n),
      ['-9223372036854775807', -5, 0, 7],
    );
    assert.deepEqual(r.token, { cursor: 7 });
    await byNumber.close();
    const byText = createPostgresSource(
      spec({
        query: 'SELECT label, n FROM signed WHERE label > :cursor ORDER BY n DESC;',
        cursor: { column: 'label' },
      }),
      { state: memoryState(), ...silent },
      { connectionString: pg.url, limit: 2 },
    );
    const t1 = await byText.poll();
    assert.deepEqual(
      t1.records.map((x) => x.label),
      ['a', 'b'],
    );
    await byText.ack(t1.token);
    const t2 = await byText.poll();
    assert.deepEqual(
      t2.records.map((x) => x.label),
      ['c', 'min+1'],
    );
    await byText.close();
  });

  test('a timestamptz cursor keeps microseconds: rows 1 µs apart are each read once, in order', async () => {
    await pg.query(`CREATE TABLE events (at timestamptz PRIMARY KEY, what text)`);
    await pg.query(`INSERT INTO events VALUES ('2015-09-08 11:39:00.000001+00', 'a'),
                    ('2015-09-08 11:39:00.000002+00', 'b'),
                    ('2015-09-08 11:39:00.000003+00', 'c'), ('2015-09-08 13:39:00.5+02', 'd')`);
    const state = memoryState();
    const src = createPostgresSource(
      spec({ query: 'SELECT at, what FROM events WHERE at > :cursor', cursor: { column: 'at' } }),
      { state, ...silent },
      { connectionString: pg.url, limit: 1 },
    );
    const seen: unknown[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await src.poll();
      assert.equal(r.error, undefined);
      if (r.records.length === 0) break;
      seen.push(...r.records);
      await src.ack(r.token);
    }
    assert.deepEqual(seen, [
      { at: '2015-09-08T11:39:00.000001Z', what: 'a' },
      { at: '2015-09-08T11:39:00.000002Z', what: 'b' },
      { at: '2015-09-08T11:39:00.000003Z', what: 'c' },
      { at: '2015-09-08T11:39:00.5Z', what: 'd' },
    ]);
    assert.deepEqual(state.map.get('cursor'), { value: '2015-09-08T11:39:00.5Z' });
    await src.close();
  });

  test('values: bigint a number when safe, numeric exact text, bytea base64, jsonb parsed, NULL null', async () => {
    await pg.query(
      `UPDATE readings SET big = 9007199254740993, raw = '\\x010203', meta = '{"lane": 2, "tags": ["a"]}', price = 12.50
       WHERE id = 1`,
    );
    await pg.query(`UPDATE readings SET big = 42 WHERE id = 2`);
    const src = createPostgresSource(
      spec({ query: 'SELECT id, big, raw, meta, price FROM readings WHERE id > :cursor AND id <= 2' }),
      { state: memoryState(), ...silent },
      { connectionString: pg.url },
    );
    const r = await src.poll();
    assert.deepEqual(r.records, [
      { id: 1, big: '9007199254740993', raw: 'AQID', meta: { lane: 2, tags: ['a'] }, price: '12.50' },
      { id: 2, big: 42, raw: null, meta: null, price: null },
    ]);
    await src.close();
  });

  test('a failing query answers { error }, never throws; a misconfigured spec throws at creation', async () => {
    const state = memoryState();
    const missing = createPostgresSource(
      spec({ query: 'SELECT * FROM no_such_table WHERE id > :cursor' }),
      { state, ...silent },
      { connectionString: pg.url },
    );
    const m = await missing.poll();
    assert.deepEqual([m.records, m.token, m.more], [[], null, false]);
    assert.match(m.error ?? '', /the query failed: relation "no_such_table" does not exist/);
    await missing.close();
    const noColumn = createPostgresSource(
      spec({ query: 'SELECT speed FROM readings WHERE id > :cursor' }),
      { state, ...silent },
      { connectionString: pg.url },
    );
    assert.match((await noColumn.poll()).error ?? '', /column "id" does not exist/);
    await noColumn.close();
    const noColumnNoInitial = createPostgresSource(
      spec({ query: 'SELECT speed FROM readings WHERE id > :cursor', cursor: { column: 'id' } }),
      { state, ...silent },
      { connectionString: pg.url },
    );
    assert.match((await noColumnNoInitial.poll()).error ?? '', /cursor\.column: the query's rows have no column "id"/);
    await noColumnNoInitial.close();
    const noSmallest = createPostgresSource(
      spec({ query: "SELECT ip FROM (VALUES ('10.0.0.1'::inet)) v(ip) WHERE ip > :cursor", cursor: { column: 'ip' } }),
      { state, ...silent },
      { connectionString: pg.url },
    );
    assert.match((await noSmallest.poll()).error ?? '', /cursor\.initial: the cursor column "ip" is of a type/);
    await noSmallest.close();
    assert.equal(state.map.size, 0);
    assert.throws(
      () => createPostgresSource({ ...spec(), driver: 'sqlite' }, { state, ...silent }, { connectionString: pg.url }),
      /driver:/,
    );
    assert.throws(
      () =>
        createPostgresSource(
          spec({ query: 'SELECT * FROM readings' }),
          { state, ...silent },
          { connectionString: pg.url },
        ),
      /query: does not use :cursor/,
    );
    assert.throws(() => createPostgresSource(spec(), { state, ...silent }, { connectionString: '' }), /connection: /);
    assert.throws(
      () => createPostgresSource(spec(), { state, ...silent }, { connectionString: pg.url, limit: 0 }),
      /limit: must be a whole number/,
    );
  });

  test('the server stopped under a connected source: { error } with the cursor kept, then it reads on', async () => {
    const state = memoryState();
    const logs: string[] = [];
    const src = createPostgresSource(
      spec({ query: 'SELECT id, speed FROM readings WHERE id > :cursor' }),
      { state, log: (_level, msg) => logs.push(msg) },
      { connectionString: pg.url, limit: 4 },
    );
    const first = await src.poll();
    assert.deepEqual(
      first.records.map((r) => r.id),
      [1, 2, 3, 4],
    );
    await src.ack(first.token);
    await pg.stopServer();
    try {
      for (let i = 0; i < 2; i++) {
        const down = await src.poll();
        assert.deepEqual([down.records, down.token, down.more], [[], null, false]);
        assert.match(down.error ?? '', /cannot reach the server/);
      }
      assert.deepEqual(state.map.get('cursor'), { value: 4 });
    } finally {
      await pg.startServer();
    }
    const back = await src.poll();
    assert.equal(back.error, undefined);
    assert.deepEqual(
      back.records.map((r) => r.id),
      [5, 6, 7, 8],
    );
    assert.ok(logs.some((l) => /cannot reach the server/.test(l)));
    await src.close();
  });
});
