import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { createSqliteSource } from '../../../../hands/pipeline/sources/sqlite.ts';
import type { SqlSourceSpec } from '../../../../hands/pipeline/types.ts';
import { memoryState } from '../fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'talon-sqlite-src-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function database(name: string): { path: string; db: DatabaseSync; insert: (n: number) => void } {
  const path = join(dir, name);
  const db = new DatabaseSync(path);
  db.exec(
    'PRAGMA journal_mode = WAL; CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT, temp REAL, raw BLOB)',
  );
  const stmt = db.prepare('INSERT INTO readings (sensor, temp, raw) VALUES (?, ?, ?)');
  const insert = (n: number) => {
    for (let i = 0; i < n; i++) stmt.run(`s${i % 3}`, 20 + i / 10, new Uint8Array([1, 2, 3]));
  };
  return { path, db, insert };
}

const spec = (database: string, extra: Partial<SqlSourceSpec> = {}): SqlSourceSpec => ({
  type: 'sql',
  driver: 'sqlite',
  database,
  query: 'SELECT id, sensor, temp, raw FROM readings WHERE id > :cursor',
  cursor: { column: 'id', initial: 0 },
  intervalMs: 1000,
  ...extra,
});

describe('sqlite source', () => {
  it('reads rows past the cursor, LIMIT per poll with `more`; the cursor moves only on ack', async () => {
    const { path, db, insert } = database('a.db');
    insert(5);
    const state = memoryState();
    const src = createSqliteSource(spec(path), { state, log: () => {} }, { limit: 3 });
    const a = await src.poll();
    assert.deepEqual(
      a.records.map((r) => r.id),
      [1, 2, 3],
    );
    assert.deepEqual(a.records[0], { id: 1, sensor: 's0', temp: 20, raw: 'AQID' });
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
    // rows inserted between polls (another connection, while the source holds its read-only one)
    insert(2);
    const c = await src.poll();
    assert.deepEqual(
      c.records.map((r) => r.id),
      [6, 7],
    );
    assert.deepEqual(state.map.get('cursor'), { value: 5 });
    await src.ack(c.token);
    const d = await src.poll();
    assert.deepEqual(d, { records: [], bad: [], token: null, more: false });
    await src.close();
    db.close();
  });

  it('orders by the cursor column even when the query does not; without initial every row is read', async () => {
    const { path, db, insert } = database('b.db');
    insert(4);
    const src = createSqliteSource(
      spec(path, {
        query: "SELECT sensor || '-' || id AS k, id FROM readings WHERE k > :cursor ORDER BY id DESC;",
        cursor: { column: 'k' },
      }),
      { state: memoryState(), log: () => {} },
    );
    const r = await src.poll();
    assert.deepEqual(
      r.records.map((x) => x.k),
      ['s0-1', 's0-4', 's1-2', 's2-3'],
    );
    assert.deepEqual(r.token, { cursor: 's2-3' });
    await src.close();
    db.close();
  });

  it('a missing database or a wrong query is an error in the result; a query without the cursor column too', async () => {
    const state = memoryState();
    const missing = await createSqliteSource(spec(join(dir, 'nope.db')), { state, log: () => {} }).poll();
    assert.equal(missing.records.length, 0);
    assert.match(missing.error!, /nope\.db: /);
    const { path, db, insert } = database('c.db');
    insert(1);
    const wrong = await createSqliteSource(spec(path, { query: 'SELECT * FROM no_such_table WHERE id > :cursor' }), {
      state,
      log: () => {},
    }).poll();
    assert.match(wrong.error!, /no such table: no_such_table/);
    const noCursor = await createSqliteSource(
      spec(path, { query: 'SELECT temp FROM readings WHERE id > :cursor', cursor: { column: 'id', initial: 0 } }),
      { state, log: () => {} },
    ).poll();
    assert.match(noCursor.error!, /no such column|no number or text column "id"/);
    // a spec for another driver is a bug at creation
    assert.throws(
      () => createSqliteSource({ ...spec(path), driver: 'postgres' }, { state, log: () => {} }),
      /database:/,
    );
    db.close();
  });
});
