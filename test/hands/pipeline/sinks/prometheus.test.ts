/**
 * The Pipeline Hand's Prometheus remote write sink (hands/pipeline/sinks/prometheus.ts) against a local node:http
 * server on 127.0.0.1 that DECODES what a remote write receiver gets: it checks the headers, snappy-decompresses the
 * body (snappyjs's uncompress: the block format) and decodes the protobuf WriteRequest with a wire-format decoder
 * written here (varints, 64-bit doubles, length-delimited fields), then answers on command (200, 503 with
 * Retry-After, 429, 400, 401, or drops the connection). deps.fetch is the global fetch, deps.now a fake clock.
 * Records are readings from a public traffic data set (../shared/datasets/nab).
 */
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
// @ts-expect-error snappyjs ships no type declarations
import snappyjs from 'snappyjs';
import { HTTP_BACKOFF } from '../../../../hands/pipeline/sinks/http.ts';
import { createPrometheusSink, encodeWriteRequest } from '../../../../hands/pipeline/sinks/prometheus.ts';
import type { SinkDeps, SinkEntry } from '../../../../hands/pipeline/sinks/types.ts';
import type { PrometheusSinkSpec } from '../../../../hands/pipeline/types.ts';
import { nabRows } from '../fixtures.ts';

const snappy = snappyjs as { uncompress(data: Uint8Array): Uint8Array };

// ---------------------------------------------------------------- a protobuf decoder (the receiver's side)

type Wire = { field: number; wire: 0; value: bigint } | { field: number; wire: 1 | 2; bytes: Uint8Array };

/** A message's fields in order; throws on a truncated or unknown wire type. */
function fields(buf: Uint8Array): Wire[] {
  const out: Wire[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++] as number;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  };
  const take = (n: number): Uint8Array => {
    if (i + n > buf.length) throw new Error('truncated field');
    const b = buf.subarray(i, i + n);
    i += n;
    return b;
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 1) out.push({ field, wire, bytes: take(8) });
    else if (wire === 2) out.push({ field, wire, bytes: take(Number(varint())) });
    else throw new Error(`wire type ${wire} unexpected`);
  }
  return out;
}

interface DecodedSeries {
  labels: Array<[string, string]>;
  samples: Array<{ value: number; timestamp: number }>;
}

const bytesOf = (w: Wire): Uint8Array => {
  if (w.wire === 0) throw new Error(`field ${w.field} is a varint, expected bytes`);
  return w.bytes;
};

function decodeWriteRequest(buf: Uint8Array): DecodedSeries[] {
  const text = new TextDecoder('utf-8', { fatal: true });
  return fields(buf).map((ts) => {
    assert.equal(ts.field, 1, 'WriteRequest holds only timeseries (1)');
    const s: DecodedSeries = { labels: [], samples: [] };
    for (const f of fields(bytesOf(ts))) {
      const inner = fields(bytesOf(f));
      if (f.field === 1) {
        const name = inner.find((x) => x.field === 1);
        const value = inner.find((x) => x.field === 2);
        s.labels.push([
          text.decode(name ? bytesOf(name) : new Uint8Array()),
          text.decode(value ? bytesOf(value) : new Uint8Array()),
        ]);
      } else if (f.field === 2) {
        const v = inner.find((x) => x.field === 1);
        const t = inner.find((x) => x.field === 2);
        const value = v ? new DataView(bytesOf(v).slice().buffer).getFloat64(0, true) : 0;
        const timestamp = t && t.wire === 0 ? Number(BigInt.asIntN(64, t.value)) : 0;
        s.samples.push({ value, timestamp });
      } else throw new Error(`TimeSeries field ${f.field} unexpected`);
    }
    return s;
  });
}

// ---------------------------------------------------------------- the server

interface Seen {
  headers: IncomingHttpHeaders;
  series: DecodedSeries[];
}
type Mode = 'ok' | 'busy' | 'throttle' | 'bad' | 'unauthorized' | 'drop';

let server: Server;
let url = '';
let mode: Mode = 'ok';
let seen: Seen[] = [];

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (mode === 'drop') {
        req.socket.destroy();
        return;
      }
      let series: DecodedSeries[];
      try {
        series = decodeWriteRequest(snappy.uncompress(new Uint8Array(Buffer.concat(chunks))));
      } catch (err) {
        return void res.writeHead(400).end(`cannot decode: ${(err as Error).message}`);
      }
      seen.push({ headers: req.headers, series });
      if (mode === 'busy') return void res.writeHead(503, { 'retry-after': '7' }).end('overloaded');
      if (mode === 'throttle') return void res.writeHead(429).end();
      if (mode === 'bad') return void res.writeHead(400).end('out of order sample\n');
      if (mode === 'unauthorized') return void res.writeHead(401).end('no token');
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  mode = 'ok';
  seen = [];
});

const NOW = Date.UTC(2026, 0, 1, 0, 0);
const logs: string[] = [];
const deps = (): SinkDeps => ({
  fetch: (u, init) => fetch(u, init as RequestInit),
  now: () => NOW,
  log: (level, msg) => logs.push(`${level} ${msg}`),
});

const ROWS = nabRows();
const entries = (n: number, from = 0): SinkEntry[] =>
  ROWS.slice(from, from + n).map((r, i) => ({
    id: `p1:${from + i + 1}`,
    record: { sensor: 'speed_6005', road: 'I-35', ts: `${r.timestamp.replace(' ', 'T')}Z`, speed: r.value },
  }));

const spec = (over: Partial<PrometheusSinkSpec> = {}): PrometheusSinkSpec => ({
  type: 'prometheus',
  inputs: ['src'],
  url,
  metric: 'traffic_speed_mph',
  labels: ['sensor', 'road'],
  valueField: 'speed',
  ...over,
});

describe('prometheus sink: the request', () => {
  test('one POST: remote write headers, a snappy protobuf WriteRequest with one sample per record', async () => {
    const batch = entries(30);
    const r = await createPrometheusSink(spec(), deps()).write(batch);
    assert.deepEqual(r, { done: 30, rejected: [] });
    assert.equal(seen.length, 1);
    const h = seen[0]!.headers;
    assert.equal(h['content-encoding'], 'snappy');
    assert.equal(h['content-type'], 'application/x-protobuf');
    assert.equal(h['x-prometheus-remote-write-version'], '0.1.0');
    assert.deepEqual(seen[0]!.series, [
      {
        labels: [
          ['__name__', 'traffic_speed_mph'],
          ['road', 'I-35'],
          ['sensor', 'speed_6005'],
        ],
        samples: batch.map((e) => ({ value: e.record.speed as number, timestamp: Date.parse(e.record.ts as string) })),
      },
    ]);
  });

  test('records are grouped by series; each series sorted by time; an absent label is left out', async () => {
    const batch: SinkEntry[] = [
      { id: 'p1:1', record: { sensor: 'b', road: 'I-35', ts: 3000, speed: 3 } },
      { id: 'p1:2', record: { sensor: 'a', road: 'I-35', ts: 2000, speed: 2 } },
      { id: 'p1:3', record: { sensor: 'b', road: 'I-35', ts: 1000, speed: 1 } },
      { id: 'p1:4', record: { sensor: 'a', ts: 500, speed: '4.5' } },
      { id: 'p1:5', record: { sensor: 'a', road: 'I-35', ts: 1500, speed: true } },
      { id: 'p1:6', record: { sensor: 'a', road: '', speed: 6 } },
    ];
    const r = await createPrometheusSink(spec(), deps()).write(batch);
    assert.deepEqual(r, { done: 6, rejected: [] });
    assert.deepEqual(seen[0]!.series, [
      {
        labels: [
          ['__name__', 'traffic_speed_mph'],
          ['road', 'I-35'],
          ['sensor', 'b'],
        ],
        samples: [
          { value: 1, timestamp: 1000 },
          { value: 3, timestamp: 3000 },
        ],
      },
      {
        labels: [
          ['__name__', 'traffic_speed_mph'],
          ['road', 'I-35'],
          ['sensor', 'a'],
        ],
        samples: [
          { value: 1, timestamp: 1500 },
          { value: 2, timestamp: 2000 },
        ],
      },
      {
        labels: [
          ['__name__', 'traffic_speed_mph'],
          ['sensor', 'a'],
        ],
        samples: [
          { value: 4.5, timestamp: 500 },
          { value: 6, timestamp: NOW },
        ],
      },
    ]);
  });

  test('opts.timeField names the time; a negative (pre-1970) time and unicode labels survive the wire', async () => {
    const sink = createPrometheusSink(spec({ labels: ['place'] }), deps(), { timeField: 'at' });
    const r = await sink.write([{ id: 'p1:1', record: { place: 'Zürich ☀', at: -86_400_000, speed: -0.25 } }]);
    assert.equal(r.done, 1);
    assert.deepEqual(seen[0]!.series, [
      {
        labels: [
          ['__name__', 'traffic_speed_mph'],
          ['place', 'Zürich ☀'],
        ],
        samples: [{ value: -0.25, timestamp: -86_400_000 }],
      },
    ]);
  });

  test('a non-numeric value or an unreadable time is rejected alone; the rest is sent', async () => {
    const batch = entries(5);
    batch[1]!.record.speed = 'fast';
    batch[2]!.record.speed = null;
    batch[3]!.record.ts = 'soon';
    const r = await createPrometheusSink(spec(), deps()).write(batch);
    assert.equal(r.done, 5);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1, 2, 3],
    );
    assert.match(r.rejected[0]!.error, /the value field "speed" is "fast": a Prometheus sample needs a finite number/);
    assert.match(r.rejected[1]!.error, /the value field "speed" is missing: a Prometheus sample needs a finite number/);
    assert.match(r.rejected[2]!.error, /the time field "ts" is "soon"/);
    assert.deepEqual(
      seen[0]!.series[0]!.samples.map((s) => s.value),
      [batch[0]!.record.speed, batch[4]!.record.speed],
    );
  });

  test('a batch whose every record is rejected sends nothing', async () => {
    const r = await createPrometheusSink(spec(), deps()).write([{ id: 'p1:1', record: { speed: Number.NaN } }]);
    assert.equal(r.done, 1);
    assert.equal(r.rejected.length, 1);
    assert.equal(seen.length, 0);
  });

  test('the encoder writes varints across byte boundaries and 64-bit doubles exactly', () => {
    const ts = 2 ** 41 + 12345; // a ms time needs 6 varint bytes
    const decoded = decodeWriteRequest(
      encodeWriteRequest([{ labels: [['__name__', 'x'.repeat(200)]], samples: [{ value: 0.1 + 0.2, timestamp: ts }] }]),
    );
    assert.deepEqual(decoded, [
      { labels: [['__name__', 'x'.repeat(200)]], samples: [{ value: 0.1 + 0.2, timestamp: ts }] },
    ]);
  });
});

describe('prometheus sink: answers', () => {
  test('400: every record sent is rejected with the answer (not retried), local rejections kept', async () => {
    mode = 'bad';
    const batch = entries(4);
    batch[2]!.record.speed = 'n/a';
    const r = await createPrometheusSink(spec(), deps()).write(batch);
    assert.equal(r.done, 4);
    assert.equal(r.retryAfterMs, undefined);
    assert.deepEqual(
      r.rejected.map((x) => [x.index, x.error]),
      [
        [0, 'Prometheus answered 400: out of order sample'],
        [1, 'Prometheus answered 400: out of order sample'],
        [2, r.rejected[2]!.error],
        [3, 'Prometheus answered 400: out of order sample'],
      ],
    );
    assert.match(r.rejected[2]!.error, /"n\/a"/);
  });

  test('503 with Retry-After: done 0, nothing rejected, retryAfterMs from the header', async () => {
    mode = 'busy';
    const r = await createPrometheusSink(spec(), deps()).write(entries(3));
    assert.deepEqual(
      { done: r.done, rejected: r.rejected, retryAfterMs: r.retryAfterMs },
      { done: 0, rejected: [], retryAfterMs: 7000 },
    );
    assert.match(r.error ?? '', /answered 503 \(transient\); retrying in 7000 ms: overloaded/);
  });

  test('429 without Retry-After and a dropped connection back off 1 s, 2 s, 4 s; a 2xx resets it', async () => {
    const sink = createPrometheusSink(spec(), deps());
    mode = 'throttle';
    const a = await sink.write(entries(2));
    mode = 'drop';
    const b = await sink.write(entries(2));
    mode = 'throttle';
    const c = await sink.write(entries(2));
    assert.deepEqual(
      [a.retryAfterMs, b.retryAfterMs, c.retryAfterMs],
      [HTTP_BACKOFF.firstMs, HTTP_BACKOFF.firstMs * 2, HTTP_BACKOFF.firstMs * 4],
    );
    assert.match(b.error ?? '', /Prometheus remote write of 2 sample\(s\) to .* failed/);
    mode = 'ok';
    assert.equal((await sink.write(entries(2))).done, 2);
    mode = 'throttle';
    assert.equal((await sink.write(entries(2))).retryAfterMs, HTTP_BACKOFF.firstMs);
  });

  test('401 is misconfiguration: done 0, nothing rejected, retry in 5 min; extra headers are sent', async () => {
    mode = 'unauthorized';
    const sink = createPrometheusSink(spec(), deps(), { headers: { authorization: 'Bearer old' } });
    const r = await sink.write(entries(2));
    assert.deepEqual([r.done, r.rejected.length, r.retryAfterMs], [0, 0, HTTP_BACKOFF.misconfiguredMs]);
    assert.match(r.error ?? '', /answered 401: the sink is misconfigured, not the records: check the credentials/);
    assert.equal(seen[0]!.headers.authorization, 'Bearer old');
    assert.ok(logs.some((l) => l.startsWith('error ') && l.includes('401')));
  });

  test('an empty batch sends nothing; a missing fetch throws at creation', async () => {
    assert.deepEqual(await createPrometheusSink(spec(), deps()).write([]), { done: 0, rejected: [] });
    assert.equal(seen.length, 0);
    assert.throws(
      () => createPrometheusSink(spec(), { now: () => NOW, log: () => undefined }),
      /deps\.fetch is missing/,
    );
  });
});
