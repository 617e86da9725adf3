/**
 * The runner of one pipeline (hands/pipeline/runner.ts) with real parts: the kernel's LevelDB store as the Hand's store
 * (test/helpers/hand-store.ts, restarted for a crash), an HTTP source (createHttpSource over the global fetch) reading
 * a local feed server on 127.0.0.1 that hands out one batch per ETag, an HTTP sink (createHttpSink) posting to a local
 * server that fails on command (503 with Retry-After, 400 for a marked record), and a SQLite sink (createSqliteSink,
 * upsert by key) in a temporary file; transforms filter + derive (JSONata) + code (QuickJS). The clock is fake.
 * Records are readings from a public traffic data set (../shared/datasets/nab, speed_6005.csv).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, beforeEach, test } from 'node:test';
import type { HandStore } from '../../../runtime/core/hand.ts';
import { parsePipelines } from '../../../hands/pipeline/config.ts';
import { PipelineRunner, type RunnerTimers } from '../../../hands/pipeline/runner.ts';
import { createHttpSink } from '../../../hands/pipeline/sinks/http.ts';
import { createSqliteSink } from '../../../hands/pipeline/sinks/sqlite.ts';
import type { SinkEntry, SinkWriter } from '../../../hands/pipeline/sinks/types.ts';
import { createHttpSource } from '../../../hands/pipeline/sources/http.ts';
import type { Source } from '../../../hands/pipeline/sources/types.ts';
import type { HttpSinkSpec, HttpSourceSpec, Pipeline, SqliteSinkSpec } from '../../../hands/pipeline/types.ts';
import { type StoreBackend, closeStores, storeBackends } from '../../helpers/hand-store.ts';
import { nabFile } from '../../helpers/datasets.ts';

const CSV = nabFile('realTraffic/speed_6005.csv');
const ROWS = readFileSync(CSV, 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line, i) => {
    const [timestamp, value] = line.split(',');
    return { id: `r${i}`, timestamp: timestamp as string, speed: Number(value) };
  });
type Row = (typeof ROWS)[number];

// ---------------------------------------------------------------- the feed (source) and the sink servers

/** the feed: each GET hands out the batch after the one its If-None-Match names (ETag "vN" = N batches read) */
let batches: Row[][] = [];
let gets = 0;
/** the sink: what it answers, and every record it took (in arrival order) */
let sinkMode: 'ok' | 'busy' = 'ok';
let marked = new Set<string>();
let received: Array<Record<string, unknown>> = [];
let posts = 0;
let feed: Server;
let sink: Server;
let feedUrl = '';
let sinkUrl = '';
let dir = '';

const listen = async (s: Server): Promise<string> => {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-runner-'));
  feed = createServer((req, res) => {
    gets++;
    const m = /^"v(\d+)"$/.exec(req.headers['if-none-match'] ?? '');
    const n = m ? Number(m[1]) : 0;
    if (n >= batches.length) return void res.writeHead(304, { etag: `"v${n}"` }).end();
    res.writeHead(200, { 'content-type': 'application/json', etag: `"v${n + 1}"` }).end(JSON.stringify(batches[n]));
  });
  sink = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts++;
      if (sinkMode === 'busy') return void res.writeHead(503, { 'retry-after': '7' }).end('down for maintenance');
      const records = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Array<Record<string, unknown>>;
      const bad = records.find((r) => marked.has(r.id as string));
      if (bad) return void res.writeHead(400).end(`record ${bad.id} is refused`);
      received.push(...records);
      res.writeHead(200).end('{}');
    });
  });
  feedUrl = `${await listen(feed)}/feed`;
  sinkUrl = `${await listen(sink)}/ingest`;
});

after(async () => {
  await new Promise<void>((resolve) => feed.close(() => resolve()));
  await new Promise<void>((resolve) => sink.close(() => resolve()));
  await closeStores();
  rmSync(dir, { recursive: true, force: true });
});

let clock = Date.UTC(2026, 11, 3, 12);
let dbFile = '';
let dbCount = 0;

beforeEach(() => {
  batches = [];
  gets = 0;
  sinkMode = 'ok';
  marked = new Set();
  received = [];
  posts = 0;
  dbFile = join(dir, `out-${++dbCount}.db`);
  const db = new DatabaseSync(dbFile);
  db.exec('CREATE TABLE readings (id TEXT PRIMARY KEY, timestamp TEXT, speed REAL, kmh REAL, fast INTEGER)');
  db.close();
});

// ---------------------------------------------------------------- the pipeline and its parts

/** the code transform throws for a record whose speed is `bad` (a "bug" fixed later by passing no `bad`) */
function pipeline(opts: { bad?: number; queue?: Record<string, unknown>; minSpeed?: number } = {}): Pipeline {
  const code =
    opts.bad === undefined
      ? 'function transform(r) { r.fast = r.kmh > 100; return r }'
      : `function transform(r) {\n  if (r.speed === ${opts.bad}) throw new Error('speed ' + r.speed + ' is a bug');\n` +
        '  r.fast = r.kmh > 100;\n  return r\n}';
  const { pipelines, problems } = parsePipelines({
    pipelines: {
      p1: {
        sources: { feed: { type: 'http', url: feedUrl, intervalMs: 1000 } },
        transforms: {
          js: { type: 'code', inputs: ['kmh'], source: code },
          kmh: { type: 'derive', inputs: ['slow'], fields: { kmh: 'speed * 1.609344' } },
          slow: { type: 'filter', inputs: ['feed'], expr: `speed >= ${opts.minSpeed ?? 0}` },
        },
        sinks: {
          up: { type: 'http', inputs: ['js'], url: sinkUrl, format: 'json', batch: { maxRecords: 10, maxMs: 1000 } },
          db: { type: 'sqlite', inputs: ['js'], database: dbFile, table: 'readings', key: ['id'] },
        },
        ...(opts.queue && { queue: opts.queue }),
      },
    },
  });
  assert.deepEqual(problems, []);
  return pipelines[0] as Pipeline;
}

const log = (): void => undefined;
const now = (): number => clock;

/** counts what the SQLite sink was handed, and can hang after a write (the process dies before the journal's ack) */
class CountingSink implements SinkWriter {
  written = 0;
  hang = false;
  closed = false;
  constructor(readonly inner: SinkWriter) {}
  async write(batch: SinkEntry[]) {
    const r = await this.inner.write(batch);
    this.written += batch.length;
    if (this.hang) return new Promise<never>(() => undefined);
    return r;
  }
  close() {
    this.closed = true;
    return this.inner.close();
  }
}

/** a source whose ack can hang: the process dies after the journal append, before the source's position moved */
class HangingAck implements Source {
  hang = false;
  acked = 0;
  /** an ack was called while hanging: the journal append before it had resolved */
  hung = false;
  constructor(readonly inner: Source) {}
  poll() {
    return this.inner.poll();
  }
  async ack(token: unknown) {
    if (this.hang) {
      this.hung = true;
      return new Promise<never>(() => undefined);
    }
    this.acked++;
    return this.inner.ack(token);
  }
  closed = false;
  close() {
    this.closed = true;
    return this.inner.close();
  }
}

function parts(p: Pipeline, store: HandStore, timers?: RunnerTimers) {
  const state = {
    get: <T>(key: string) => store.get<T>(`src/feed/${key}`),
    put: (key: string, value: unknown) => store.put(`src/feed/${key}`, value, { sync: true }),
  };
  const fetchIt = (url: string, init?: object) => fetch(url, init as RequestInit);
  const source = new HangingAck(createHttpSource(p.sources.feed as HttpSourceSpec, { fetch: fetchIt, state, log }));
  const db = new CountingSink(createSqliteSink(p.sinks.db as SqliteSinkSpec, { now, log }));
  const up = createHttpSink(p.sinks.up as HttpSinkSpec, { fetch: fetchIt, now, log });
  const runner = new PipelineRunner(p, { store, sources: { feed: source }, sinks: { up, db }, now, log, timers });
  return { runner, db, source, up };
}

async function leveldb(): Promise<StoreBackend> {
  return storeBackends('pipeline', 'talon-runner-store-').leveldb();
}

const rows = (): Array<{ id: string; speed: number; fast: number }> => {
  const db = new DatabaseSync(dbFile);
  try {
    return db.prepare('SELECT id, speed, fast FROM readings ORDER BY rowid').all() as never;
  } finally {
    db.close();
  }
};

/** ticks until `done()` holds, at most `max` times */
async function tickUntil(r: PipelineRunner, done: () => boolean, max = 20): Promise<number> {
  for (let i = 1; i <= max; i++) {
    await r.tick();
    if (done()) return i;
  }
  assert.fail(`not done after ${max} ticks`);
}

// ---------------------------------------------------------------- cases

test('records flow from the HTTP source through filter, derive and code into both sinks; counts match', async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(0, 25), ROWS.slice(25, 50), ROWS.slice(50, 80)];
  const min = 60;
  const want = ROWS.slice(0, 80).filter((r) => r.speed >= min);
  assert.ok(want.length > 10 && want.length < 80, 'the filter keeps some and drops some');
  const { runner } = parts(pipeline({ minSpeed: min }), backend.store);
  for (let i = 0; i < 4; i++) await runner.tick();
  assert.deepEqual(
    received.map((r) => r.id),
    want.map((r) => r.id),
  );
  assert.equal(received[0]?.kmh, want[0]!.speed * 1.609344);
  assert.equal(received[0]?.fast, want[0]!.speed * 1.609344 > 100);
  assert.deepEqual(
    rows().map((r) => r.id),
    want.map((r) => r.id),
  );
  const s = await runner.status();
  assert.deepEqual(s.stages.feed, { in: 80, out: 80, errors: 0 });
  assert.deepEqual(s.stages.slow, { in: 80, out: want.length, errors: 0 });
  assert.deepEqual(s.stages.kmh, { in: want.length, out: want.length, errors: 0 });
  assert.deepEqual(s.stages.js, { in: want.length, out: want.length, errors: 0 });
  assert.equal(s.sinks.up?.delivered, want.length);
  assert.equal(s.sinks.db?.delivered, want.length);
  assert.equal(s.sinks.up?.lag, 0);
  assert.equal(s.journal.appended, want.length * 2, 'one entry per record and sink');
  assert.equal(s.journal.records, 0, 'everything acknowledged by both sinks is removed');
  assert.equal(s.dlq, 0);
  assert.equal(gets, 4, 'three batches and a 304');
  await runner.stop();
});

test('a sink down (503) for a while, then up: it waits out Retry-After and drains in order, nothing lost', async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(100, 130), ROWS.slice(130, 160)];
  const want = ROWS.slice(100, 160);
  const { runner } = parts(pipeline(), backend.store);
  sinkMode = 'busy';
  await runner.tick();
  assert.equal(posts, 1, 'one POST refused');
  let s = await runner.status();
  assert.equal(s.sinks.up?.retryAt, clock + 7000);
  assert.match(s.sinks.up?.lastError ?? '', /503/);
  assert.equal(s.sinks.db?.delivered, 30, 'the other sink is not held up');
  await runner.tick();
  await runner.tick();
  assert.equal(posts, 1, 'no write before Retry-After passed');
  s = await runner.status();
  assert.equal(s.sinks.up?.lag, 120, 'both batches wait in the journal (entries of both sinks past its cursor)');
  assert.equal(s.journal.records, 120, "the other sink's entries stay until this one's cursor passes them");
  sinkMode = 'ok';
  clock += 7001;
  await runner.tick();
  assert.deepEqual(
    received.map((r) => r.id),
    want.map((r) => r.id),
  );
  s = await runner.status();
  assert.equal(s.sinks.up?.delivered, 60);
  assert.equal(s.sinks.up?.retryAt, 0);
  assert.equal(s.journal.records, 0);
  assert.equal(rows().length, 60);
  await runner.stop();
});

test('a crash between the journal append and the SQLite ack: a new runner delivers every record, none twice', async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(200, 240), ROWS.slice(240, 260)];
  const first = parts(pipeline(), backend.store);
  first.db.hang = true;
  // the round writes to SQLite, then "dies" before the journal hears of it
  void first.runner.tick();
  const deadline = Date.now() + 10_000;
  while (first.db.written === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(first.db.written, 40, 'the first batch reached SQLite');
  assert.equal(rows().length, 40);
  const store = await backend.restart();
  const second = parts(pipeline(), store);
  await tickUntil(second.runner, () => rows().length === 60 && received.length >= 60);
  await second.runner.tick();
  assert.deepEqual(
    rows()
      .map((r) => r.id)
      .sort(),
    ROWS.slice(200, 260)
      .map((r) => r.id)
      .sort(),
  );
  assert.equal(second.db.written, 60, 'the batch written before the crash was written again (upsert by key)');
  const ids = new Set(received.map((r) => r.id));
  assert.equal(ids.size, 60, 'the HTTP sink got every record (at least once)');
  const s = await second.runner.status();
  assert.equal(s.dlq, 0, 'no duplicate was refused');
  assert.equal(s.journal.records, 0);
  await second.runner.stop();
});

test('a transform error and a sink 400 land in the DLQ with stage and reason; replay after a fix delivers them', async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(300, 340)];
  const bad = ROWS[305]!.speed;
  const badRows = ROWS.slice(300, 340).filter((r) => r.speed === bad);
  const refused = ROWS.slice(300, 340).find((r) => r.speed !== bad)!;
  marked.add(refused.id);
  const first = parts(pipeline({ bad }), backend.store);
  await first.runner.tick();
  const s = await first.runner.status();
  assert.equal(s.stages.js?.errors, badRows.length);
  assert.equal(s.sinks.up?.rejected, 1);
  assert.equal(s.dlq, badRows.length + 1);
  const { DeadLetters } = await import('../../../hands/pipeline/dlq.ts');
  const dlq = new DeadLetters(backend.store);
  await dlq.open();
  const letters = await dlq.list();
  const js = letters.filter((l) => l.stage === 'js');
  assert.equal(js.length, badRows.length);
  assert.match(js[0]!.error, /is a bug/);
  const rec = js[0]!.record as Record<string, unknown>;
  assert.equal(rec.id, badRows[0]!.id);
  assert.equal(rec.kmh, bad * 1.609344, 'the record as it entered the code transform (derived, not yet coded)');
  assert.equal(rec.fast, undefined);
  const up = letters.filter((l) => l.stage === 'up');
  assert.equal(up.length, 1);
  assert.match(up[0]!.error, /HTTP 400: record r\d+ is refused/);
  assert.equal((up[0]!.record as Row).id, refused.id);
  assert.equal(rows().length, 40 - badRows.length, 'the 400 of one sink does not touch the other');
  await first.runner.stop();

  // the fix: the code no longer throws, the server takes the record; a new runner replays everything
  marked = new Set();
  const second = parts(pipeline(), backend.store);
  const r = await second.runner.replay(letters.map((l) => l.id));
  assert.equal(r.replayed, letters.length);
  assert.deepEqual(r.skipped, []);
  await second.runner.tick();
  assert.equal(rows().length, 40, 'the transform failures went through the rest of the pipeline');
  const got = received.map((x) => x.id);
  for (const row of [...badRows, refused]) assert.ok(got.includes(row.id), `${row.id} reached the HTTP sink`);
  assert.equal(got.length, 40);
  const after = await second.runner.status();
  assert.equal(after.dlq, 0);
  assert.equal((await second.runner.replay([letters[0]!.id])).skipped.length, 1, 'a replayed letter is gone');
  await second.runner.stop();
});

test('a full journal (onFull block) stops polling the source until the sinks make room, then resumes', async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(400, 412), ROWS.slice(412, 416)];
  const { runner } = parts(pipeline({ queue: { maxRecords: 5, onFull: 'block' } }), backend.store);
  sinkMode = 'busy';
  let rep = await runner.tick();
  assert.equal(rep.polled, 12);
  assert.ok(rep.blocked);
  assert.equal(gets, 1);
  rep = await runner.tick();
  rep = await runner.tick();
  assert.ok(rep.blocked);
  assert.equal(rep.polled, 0);
  assert.equal(gets, 1, 'the source is not polled while the journal is full');
  let s = await runner.status();
  assert.ok(s.blocked);
  assert.ok(s.blockedTicks >= 2);
  assert.ok(s.journal.records <= 5);
  assert.ok(s.journal.blockedAppends >= 2);
  sinkMode = 'ok';
  clock += 7001;
  await tickUntil(runner, () => received.length === 16 && rows().length === 16, 40);
  assert.deepEqual(
    received.map((r) => r.id),
    ROWS.slice(400, 416).map((r) => r.id),
  );
  assert.ok(gets >= 2, 'polling resumed');
  assert.equal(rows().length, 16);
  s = await runner.status();
  assert.equal(s.blocked, false);
  assert.equal(s.journal.dropped.newest + s.journal.dropped.oldest, 0, 'nothing dropped');
  await runner.stop();
});

test('a crash between the journal append and the source ack: the batch is read again, SQLite keeps one row a key', async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(500, 530)];
  const first = parts(pipeline(), backend.store);
  first.source.hang = true;
  void first.runner.tick();
  const deadline = Date.now() + 10_000;
  while (!first.source.hung && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(first.source.hung, 'the round reached the source ack');
  const store = await backend.restart();
  const second = parts(pipeline(), store);
  await second.runner.tick();
  assert.equal(gets, 2, 'the feed was read again: its ETag had not moved');
  assert.equal(second.source.acked, 1);
  const s = await second.runner.status();
  assert.equal(s.journal.appended, 120, 'journalled twice (at-least-once): 30 records for 2 sinks, twice');
  assert.equal(second.db.written, 60, 'SQLite was handed every record twice');
  assert.deepEqual(
    rows().map((r) => r.id),
    ROWS.slice(500, 530).map((r) => r.id),
    'one row per key',
  );
  assert.equal(s.dlq, 0);
  assert.equal(s.journal.records, 0);
  await second.runner.stop();
});

test('start() runs rounds on the timers until stop(), which closes the sources and sinks', async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(600, 610)];
  const queue: Array<{ fn: () => void; ms: number }> = [];
  const timers: RunnerTimers = {
    setTimeout: (fn, ms) => {
      const t = { fn, ms };
      queue.push(t);
      return t;
    },
    clearTimeout: (h) => {
      const i = queue.indexOf(h as never);
      if (i >= 0) queue.splice(i, 1);
    },
  };
  const { runner, source, db } = parts(pipeline(), backend.store, timers);
  await runner.start();
  assert.equal(queue.length, 1);
  assert.equal(queue[0]!.ms, 0, 'the first round right away');
  const fire = async (): Promise<void> => {
    const t = queue.shift()!;
    t.fn();
    const deadline = Date.now() + 10_000;
    while (queue.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  };
  await fire();
  assert.equal(received.length, 10);
  assert.equal(queue[0]!.ms, 1000, "then every source's intervalMs");
  assert.equal((await runner.status()).running, true);
  await runner.stop();
  assert.equal(queue.length, 0, 'stop() cleared the timer');
  assert.ok(source.closed);
  assert.ok(db.closed);
  assert.equal((await runner.status()).running, false);
  await assert.rejects(runner.tick(), /the runner was stopped/);
});

test("a source's bad input goes to the DLQ under the source's stage; replaying it is refused with the reason", async () => {
  const backend = await leveldb();
  batches = [[ROWS[700]!, 42 as never, ROWS[701]!]];
  const { runner } = parts(pipeline(), backend.store);
  const rep = await runner.tick();
  assert.equal(rep.polled, 2);
  assert.equal(rep.deadLettered, 1);
  assert.equal(received.length, 2);
  const s = await runner.status();
  assert.deepEqual(s.stages.feed, { in: 3, out: 2, errors: 1 });
  const { DeadLetters } = await import('../../../hands/pipeline/dlq.ts');
  const dlq = new DeadLetters(backend.store);
  await dlq.open();
  const [letter] = await dlq.list();
  assert.equal(letter?.stage, 'feed');
  assert.equal(letter?.pipeline, 'p1');
  assert.match(letter?.error ?? '', /not an object|object/);
  assert.deepEqual(letter?.record, { raw: '42' });
  const r = await runner.replay([letter!.id, 9999]);
  assert.equal(r.replayed, 0);
  assert.match(r.skipped.find((x) => x.id === letter!.id)?.reason ?? '', /raw input cannot be replayed/);
  assert.match(r.skipped.find((x) => x.id === 9999)?.reason ?? '', /not in the queue/);
  assert.equal((await runner.status()).dlq, 1, 'the letter stays');
  await runner.stop();
});

test("a windowed aggregate's windows are flushed by the clock each round and go downstream", async () => {
  const backend = await leveldb();
  batches = [ROWS.slice(800, 810), ROWS.slice(810, 814)];
  const { pipelines, problems } = parsePipelines({
    pipelines: {
      p2: {
        sources: { feed: { type: 'http', url: feedUrl, intervalMs: 1000 } },
        transforms: {
          agg: {
            type: 'aggregate',
            inputs: ['feed'],
            window: { type: 'tumbling', sizeMs: 60_000 },
            fields: { n: { op: 'count' }, avg: { op: 'mean', field: 'speed' }, top: { op: 'max', field: 'speed' } },
          },
        },
        sinks: { up: { type: 'http', inputs: ['agg'], url: sinkUrl, format: 'json' } },
      },
    },
  });
  assert.deepEqual(problems, []);
  const { runner } = parts(pipelines[0] as Pipeline, backend.store);
  await runner.tick();
  assert.equal(received.length, 0, 'the window is still open');
  clock += 60_000;
  await runner.tick();
  assert.equal(received.length, 1);
  const first = ROWS.slice(800, 810).map((r) => r.speed);
  assert.equal(received[0]?.n, 10, 'the records had no ts: their arrival time');
  assert.equal(received[0]?.avg, first.reduce((a, b) => a + b, 0) / 10);
  assert.equal(received[0]?.top, Math.max(...first));
  clock += 60_000;
  await runner.tick();
  assert.equal(received.length, 2);
  assert.equal(received[1]?.n, 4);
  const s = await runner.status();
  assert.deepEqual(s.stages.agg, { in: 14, out: 2, errors: 0 });
  await runner.stop();
});
