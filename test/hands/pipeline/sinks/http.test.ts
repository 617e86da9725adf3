/**
 * The Pipeline Hand's HTTP sink (hands/pipeline/sinks/http.ts) against a real local HTTP server on 127.0.0.1 that
 * answers on command (200, 503 with Retry-After, 400 for a batch holding a marked record, 401, or drops the
 * connection) and records every request's body and headers. deps.fetch is the global fetch, deps.now a fake clock.
 * Records are readings from a public traffic data set (../shared/datasets/nab, speed_6005.csv).
 */
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { HTTP_BACKOFF, createHttpSink, parseRetryAfter } from '../../../../hands/pipeline/sinks/http.ts';
import type { SinkDeps, SinkEntry } from '../../../../hands/pipeline/sinks/types.ts';
import type { HttpSinkSpec } from '../../../../hands/pipeline/types.ts';
import { nabRows } from '../fixtures.ts';

const ROWS = nabRows().map(({ timestamp, value }) => ({ timestamp, speed: value }));

const entries = (n: number, from = 0): SinkEntry[] =>
  ROWS.slice(from, from + n).map((record, i) => ({ id: `p1:${from + i + 1}`, record: { ...record } }));

interface Seen {
  headers: IncomingHttpHeaders;
  body: string;
}
type Mode = 'ok' | 'busy' | 'busy-date' | 'marked' | 'unauthorized' | 'drop';

let server: Server;
let url = '';
let mode: Mode = 'ok';
let seen: Seen[] = [];
/** a record whose speed is this is refused by the server (400) in any batch holding it */
let marked = new Set<number>();

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ headers: req.headers, body });
      if (mode === 'drop') {
        req.socket.destroy();
        return;
      }
      if (mode === 'busy') return void res.writeHead(503, { 'retry-after': '7' }).end('overloaded');
      if (mode === 'busy-date')
        return void res.writeHead(503, { 'retry-after': new Date(Date.UTC(2026, 0, 1, 0, 1)).toUTCString() }).end();
      if (mode === 'unauthorized') return void res.writeHead(401).end('bad token');
      if (mode === 'marked') {
        const records =
          req.headers['content-type'] === 'application/x-ndjson'
            ? body
                .trim()
                .split('\n')
                .map((l) => JSON.parse(l))
            : (JSON.parse(body) as Array<{ speed: number }>);
        const bad = records.find((r: { speed: number }) => marked.has(r.speed));
        if (bad) return void res.writeHead(400).end(`speed ${bad.speed} is not allowed ${'x'.repeat(300)}`);
      }
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  mode = 'ok';
  seen = [];
  marked = new Set();
});

const NOW = Date.UTC(2026, 0, 1, 0, 0);
const logs: string[] = [];
const deps = (): SinkDeps => ({
  fetch: (u, init) => fetch(u, init as RequestInit),
  now: () => NOW,
  log: (level, msg) => logs.push(`${level} ${msg}`),
});
const spec = (over: Partial<HttpSinkSpec> = {}): HttpSinkSpec => ({
  type: 'http',
  inputs: ['raw'],
  url,
  format: 'json',
  batch: { maxRecords: 500, maxMs: 1000 },
  ...over,
});

describe('http sink', () => {
  test('a 2xx delivers the whole batch as a JSON array with Idempotency-Key first..last', async () => {
    const sink = createHttpSink(spec({ headers: { authorization: 'Bearer t' } }), deps());
    const batch = entries(5);
    assert.deepEqual(await sink.write(batch), { done: 5, rejected: [] });
    assert.equal(seen.length, 1);
    const got = seen[0] as Seen;
    assert.equal(got.headers['idempotency-key'], 'p1:1..p1:5');
    assert.equal(got.headers['content-type'], 'application/json');
    assert.equal(got.headers.authorization, 'Bearer t');
    assert.deepEqual(
      JSON.parse(got.body),
      batch.map((e) => e.record),
    );
    // the same batch again carries the same key (a redelivery the server can recognise)
    await sink.write(batch);
    assert.equal(seen[1]?.headers['idempotency-key'], 'p1:1..p1:5');
    await sink.close();
  });

  test('NDJSON, and each record carries its id in spec.idempotencyKey unless it has that field', async () => {
    const sink = createHttpSink(spec({ format: 'ndjson', idempotencyKey: 'rid' }), deps());
    const batch = entries(3);
    (batch[1] as SinkEntry).record.rid = 'own-key';
    assert.deepEqual(await sink.write(batch), { done: 3, rejected: [] });
    const got = seen[0] as Seen;
    assert.equal(got.headers['content-type'], 'application/x-ndjson');
    assert.ok(got.body.endsWith('\n'));
    const lines = got.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((r) => r.rid),
      ['p1:1', 'own-key', 'p1:3'],
    );
    assert.equal(lines[0].speed, ROWS[0]?.speed);
  });

  test('503 with Retry-After in seconds or as a date: done 0 and retryAfterMs from it', async () => {
    const sink = createHttpSink(spec(), deps());
    mode = 'busy';
    const r = await sink.write(entries(4));
    assert.equal(r.done, 0);
    assert.deepEqual(r.rejected, []);
    assert.equal(r.retryAfterMs, 7000);
    assert.match(r.error ?? '', /503/);
    mode = 'busy-date';
    assert.equal((await sink.write(entries(4))).retryAfterMs, 60_000);
    mode = 'ok';
    assert.equal((await sink.write(entries(4))).done, 4);
  });

  test('a network error: done 0, exponential backoff per sink (1 s, 2 s, 4 s), reset by a success', async () => {
    const sink = createHttpSink(spec(), deps());
    mode = 'drop';
    const waits: Array<number | undefined> = [];
    for (let i = 0; i < 3; i++) {
      const r = await sink.write(entries(2));
      assert.equal(r.done, 0);
      assert.match(r.error ?? '', /POST .* failed/);
      waits.push(r.retryAfterMs);
    }
    assert.deepEqual(waits, [HTTP_BACKOFF.firstMs, HTTP_BACKOFF.firstMs * 2, HTTP_BACKOFF.firstMs * 4]);
    mode = 'ok';
    assert.equal((await sink.write(entries(2))).done, 2);
    mode = 'drop';
    assert.equal((await sink.write(entries(2))).retryAfterMs, HTTP_BACKOFF.firstMs);
  });

  test('400 for a batch with marked records: split in halves, the marked rejected alone, the rest sent', async () => {
    const sink = createHttpSink(spec(), deps());
    const batch = entries(10, 100);
    // two records refused by the server (distinct speeds in this window of the data set)
    const speeds = batch.map((e) => e.record.speed as number);
    const i1 = 2;
    const i2 = speeds.findIndex((s, i) => i > 5 && s !== speeds[i1] && speeds.indexOf(s) === i);
    assert.ok(i2 > 5, 'the data set window has a second distinct speed');
    marked = new Set([speeds[i1] as number, speeds[i2] as number]);
    const expectRejected = speeds.flatMap((s, i) => (marked.has(s) ? [i] : []));
    mode = 'marked';
    const r = await sink.write(batch);
    assert.equal(r.done, 10);
    assert.equal(r.retryAfterMs, undefined);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      expectRejected,
    );
    for (const x of r.rejected) {
      assert.match(x.error, /^HTTP 400: speed \d+ is not allowed x+$/);
      assert.equal(x.error.length, 'HTTP 400: '.length + 200);
    }
    // every other record reached the server in an accepted request, once
    const delivered = new Map<string, number>();
    for (const s of seen) {
      const records = JSON.parse(s.body) as Array<{ timestamp: string; speed: number }>;
      if (records.some((x) => marked.has(x.speed))) continue;
      for (const x of records) delivered.set(x.timestamp, (delivered.get(x.timestamp) ?? 0) + 1);
    }
    const expected = batch.filter((_, i) => !expectRejected.includes(i)).map((e) => e.record.timestamp as string);
    assert.deepEqual([...delivered.keys()].sort(), [...expected].sort());
    assert.ok([...delivered.values()].every((n) => n === 1));
    // single-record requests carry that record's id as the key
    assert.ok(seen.some((s) => s.headers['idempotency-key'] === `p1:${101 + i1}`));
  });

  test('a transient failure while splitting keeps what was settled before it', async () => {
    const batch = entries(4, 200);
    marked = new Set([batch[0]?.record.speed as number]);
    assert.ok(
      batch.slice(1).every((e) => !marked.has(e.record.speed as number)),
      'only the first record is marked',
    );
    // requests: [0,4) 400, [0,2) 400, [0,1) 400 → rejected, [1,2) 200, then [2,4) meets a 503
    let calls = 0;
    const d = deps();
    const sink = createHttpSink(spec(), {
      ...d,
      fetch: (u, init) => {
        mode = ++calls === 5 ? 'busy' : 'marked';
        return fetch(u, init as RequestInit);
      },
    });
    const r = await sink.write(batch);
    assert.equal(calls, 5);
    assert.equal(r.done, 2);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [0],
    );
    assert.equal(r.retryAfterMs, 7000);
    assert.match(r.error ?? '', /503/);
    assert.deepEqual(
      seen.map((x) => (JSON.parse(x.body) as unknown[]).length),
      [4, 2, 1, 1, 2],
    );
  });

  test('a record that cannot be sent as JSON is rejected alone, the rest posted', async () => {
    const sink = createHttpSink(spec(), deps());
    const batch = entries(3, 300);
    (batch[1] as SinkEntry).record.big = 10n;
    const r = await sink.write(batch);
    assert.equal(r.done, 3);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1],
    );
    assert.match(r.rejected[0]?.error ?? '', /cannot be sent as JSON: .*BigInt/);
    assert.equal(seen.length, 1);
    assert.deepEqual(JSON.parse((seen[0] as Seen).body), [batch[0]?.record, batch[2]?.record]);
    assert.equal((seen[0] as Seen).headers['idempotency-key'], 'p1:301..p1:303');
  });

  test('401: done 0, a long retry and an error saying it is the credentials, not the records', async () => {
    const sink = createHttpSink(spec(), deps());
    mode = 'unauthorized';
    const r = await sink.write(entries(3));
    assert.equal(r.done, 0);
    assert.deepEqual(r.rejected, []);
    assert.equal(r.retryAfterMs, HTTP_BACKOFF.misconfiguredMs);
    assert.match(r.error ?? '', /401: the sink is misconfigured, not the records: check the credentials/);
    assert.equal(seen.length, 1, 'no splitting for a 401');
  });

  test('parseRetryAfter: seconds, an HTTP date, a past date, junk, capped at an hour', () => {
    assert.equal(parseRetryAfter('3', NOW), 3000);
    assert.equal(parseRetryAfter(new Date(NOW + 5000).toUTCString(), NOW), 5000);
    assert.equal(parseRetryAfter(new Date(NOW - 5000).toUTCString(), NOW), 0);
    assert.equal(parseRetryAfter('soon', NOW), undefined);
    assert.equal(parseRetryAfter(null, NOW), undefined);
    assert.equal(parseRetryAfter('999999', NOW), HTTP_BACKOFF.maxRetryAfterMs);
  });

  test('creating without deps.fetch throws (a bug in the Hand)', () => {
    assert.throws(() => createHttpSink(spec(), { now: () => NOW, log: () => {} }), /deps\.fetch is missing/);
  });
});
