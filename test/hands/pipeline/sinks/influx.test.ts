/**
 * The Pipeline Hand's InfluxDB sink (hands/pipeline/sinks/influx.ts) against a local node:http server on 127.0.0.1
 * that speaks InfluxDB's v2 write API: it PARSES each body's line protocol (a parser written here, from the line
 * protocol reference: escapes, quoted strings, typed fields) and answers on command (204, 503 with Retry-After, 429,
 * 400 naming a refused point for a batch holding a marked one, 401, 404, or drops the connection). deps.fetch is the
 * global fetch, deps.now a fake clock. Records are readings from a public traffic data set (../shared/datasets/nab).
 */
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { HTTP_BACKOFF } from '../../../../hands/pipeline/sinks/http.ts';
import { createInfluxSink, toLine } from '../../../../hands/pipeline/sinks/influx.ts';
import type { SinkDeps, SinkEntry } from '../../../../hands/pipeline/sinks/types.ts';
import type { InfluxSinkSpec } from '../../../../hands/pipeline/types.ts';
import { nabRows } from '../fixtures.ts';

// ---------------------------------------------------------------- a line protocol parser (the server's side)

type FieldValue = number | bigint | boolean | string;
interface Point {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, FieldValue>;
  time?: number;
}

/** Parses one line of line protocol; throws on anything malformed (the server answers 400 then). */
function parseLine(line: string): Point {
  let i = 0;
  /** reads up to an unescaped character of `stops`, unescaping `\x` to x */
  const token = (stops: string): string => {
    let out = '';
    while (i < line.length && !stops.includes(line[i] as string)) {
      if (line[i] === '\\' && i + 1 < line.length) {
        out += line[i + 1];
        i += 2;
      } else out += line[i++];
    }
    return out;
  };
  const expect = (c: string): void => {
    if (line[i] !== c) throw new Error(`expected "${c}" at ${i} in ${line}`);
    i++;
  };
  const measurement = token(', ');
  if (!measurement) throw new Error(`no measurement in ${line}`);
  const tags: Record<string, string> = {};
  while (line[i] === ',') {
    i++;
    const k = token('=, ');
    expect('=');
    const v = token(', ');
    if (!k || !v) throw new Error(`empty tag key or value in ${line}`);
    tags[k] = v;
  }
  expect(' ');
  const fields: Record<string, FieldValue> = {};
  for (;;) {
    const k = token('=, ');
    expect('=');
    if (!k) throw new Error(`empty field key in ${line}`);
    if (line[i] === '"') {
      i++;
      let s = '';
      while (line[i] !== '"') {
        if (i >= line.length) throw new Error(`unterminated string in ${line}`);
        if (line[i] === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) {
          s += line[i + 1];
          i += 2;
        } else s += line[i++];
      }
      i++;
      fields[k] = s;
    } else {
      const raw = token(', ');
      if (raw === 'true' || raw === 'false') fields[k] = raw === 'true';
      else if (/^-?\d+i$/.test(raw)) fields[k] = BigInt(raw.slice(0, -1));
      else if (raw !== '' && Number.isFinite(Number(raw))) fields[k] = Number(raw);
      else throw new Error(`bad field value ${raw} in ${line}`);
    }
    if (line[i] !== ',') break;
    i++;
  }
  if (i === line.length) return { measurement, tags, fields };
  expect(' ');
  const t = line.slice(i);
  if (!/^-?\d+$/.test(t)) throw new Error(`bad timestamp ${t} in ${line}`);
  return { measurement, tags, fields, time: Number(t) };
}

// ---------------------------------------------------------------- the server

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
  points: Point[];
}
type Mode = 'ok' | 'busy' | 'throttle' | 'marked' | 'unauthorized' | 'missing' | 'drop';

let server: Server;
let base = '';
let mode: Mode = 'ok';
let seen: Seen[] = [];
/** every point written (as the server kept them) */
let stored: Point[] = [];
/** a point whose speed is one of these is refused (400) in any batch holding it */
let marked = new Set<number>();

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (mode === 'drop') {
        req.socket.destroy();
        return;
      }
      const fail = (status: number, message: string, headers: Record<string, string> = {}): void =>
        void res
          .writeHead(status, { 'content-type': 'application/json', ...headers })
          .end(JSON.stringify({ code: 'x', message }));
      let points: Point[];
      try {
        points = body.split('\n').map(parseLine);
      } catch (err) {
        return fail(400, `unable to parse: ${(err as Error).message}`);
      }
      seen.push({ url: req.url ?? '', headers: req.headers, points });
      if (mode === 'busy') return fail(503, 'overloaded', { 'retry-after': '7' });
      if (mode === 'throttle') return fail(429, 'too many requests');
      if (mode === 'unauthorized') return fail(401, 'unauthorized access');
      if (mode === 'missing') return fail(404, 'bucket "readings" not found');
      if (mode === 'marked') {
        const bad = points.find((p) => marked.has(p.fields.speed as number));
        if (bad) return fail(400, `failure writing points: field type conflict on speed=${bad.fields.speed}`);
      }
      stored.push(...points);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  mode = 'ok';
  seen = [];
  stored = [];
  marked = new Set();
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
    record: { sensor: 'speed_6005', ts: Date.parse(`${r.timestamp.replace(' ', 'T')}Z`), speed: r.value },
  }));

const spec = (over: Partial<InfluxSinkSpec> = {}): InfluxSinkSpec => ({
  type: 'influx',
  inputs: ['src'],
  url: base,
  org: 'site',
  bucket: 'readings',
  measurement: 'traffic',
  tags: ['sensor'],
  fields: ['speed'],
  timeField: 'ts',
  ...over,
});

describe('influx sink: line protocol', () => {
  test('a batch is one POST to /api/v2/write with org, bucket, precision=ms and the token', async () => {
    const sink = createInfluxSink(spec(), deps(), { token: 'tok-123' });
    const batch = entries(25);
    const r = await sink.write(batch);
    assert.deepEqual(r, { done: 25, rejected: [] });
    assert.equal(seen.length, 1);
    const u = new URL(seen[0]!.url, base);
    assert.equal(u.pathname, '/api/v2/write');
    assert.deepEqual(Object.fromEntries(u.searchParams), { org: 'site', bucket: 'readings', precision: 'ms' });
    assert.equal(seen[0]!.headers.authorization, 'Token tok-123');
    assert.match(String(seen[0]!.headers['content-type']), /^text\/plain/);
    assert.deepEqual(
      stored,
      batch.map((e) => ({
        measurement: 'traffic',
        tags: { sensor: 'speed_6005' },
        fields: { speed: e.record.speed },
        time: e.record.ts,
      })),
    );
  });

  test('no org: the parameter is left out; no token: no Authorization', async () => {
    const { org: _, ...noOrg } = spec();
    const r = await createInfluxSink(noOrg, deps()).write(entries(1));
    assert.equal(r.done, 1);
    const u = new URL(seen[0]!.url, base);
    assert.equal(u.searchParams.has('org'), false);
    assert.equal(seen[0]!.headers.authorization, undefined);
  });

  test('special characters are escaped per the spec and read back intact by the parser', async () => {
    const s = spec({
      measurement: 'road speed,km',
      tags: ['place name', 'lane=x', 'empty', 'absent'],
      fields: ['speed', 'note, "quoted"', 'ok', 'count', 'meta', 'nan'],
    });
    const record = {
      'place name': 'A1, exit 3=north',
      'lane=x': 'left lane\\',
      empty: '',
      speed: 61.5,
      'note, "quoted"': 'he said "slow\\down", then=ok',
      ok: true,
      count: 12n,
      meta: { a: [1, 'b c'] },
      nan: Number.NaN,
      ts: '2026-01-01T00:00:00.250Z',
    };
    const r = await createInfluxSink(s, deps()).write([{ id: 'p1:1', record }]);
    assert.deepEqual(r, { done: 1, rejected: [] });
    assert.deepEqual(stored, [
      {
        measurement: 'road speed,km',
        tags: { 'lane=x': 'left lane\\', 'place name': 'A1, exit 3=north' },
        fields: {
          speed: 61.5,
          'note, "quoted"': 'he said "slow\\down", then=ok',
          ok: true,
          count: 12n,
          meta: '{"a":[1,"b c"]}',
        },
        time: Date.UTC(2026, 0, 1, 0, 0, 0, 250),
      },
    ]);
  });

  test('tags are written sorted by key; an integer number stays a float field', () => {
    const r = toLine(spec({ tags: ['z', 'a'], timeField: undefined }), { z: 'last', a: 'first', speed: 3 });
    assert.deepEqual(r, { line: 'traffic,a=first,z=last speed=3' });
  });

  test('a record without a field value, with a line break or without its time is rejected alone', async () => {
    const batch = entries(6);
    batch[1]!.record = { sensor: 'speed_6005', ts: NOW, speed: null };
    batch[2]!.record = { sensor: 'two\nlines', ts: NOW, speed: 1 };
    batch[3]!.record = { sensor: 'speed_6005', speed: 1 };
    batch[4]!.record = { sensor: 'speed_6005', ts: 'yesterday', speed: 1 };
    const r = await createInfluxSink(spec(), deps()).write(batch);
    assert.equal(r.done, 6);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1, 2, 3, 4],
    );
    assert.match(r.rejected[0]!.error, /no field has a value \(fields: speed\)/);
    assert.match(r.rejected[1]!.error, /tag "sensor" holds a line break/);
    assert.match(r.rejected[2]!.error, /the time field "ts" is missing/);
    assert.match(r.rejected[3]!.error, /the time field "ts" is "yesterday": write ms since the epoch or ISO 8601/);
    assert.deepEqual(
      stored.map((p) => p.time),
      [batch[0]!.record.ts, batch[5]!.record.ts],
    );
  });

  test('a batch whose every record is rejected sends nothing', async () => {
    const r = await createInfluxSink(spec(), deps()).write([{ id: 'p1:1', record: { sensor: 'x', ts: NOW } }]);
    assert.equal(r.done, 1);
    assert.equal(r.rejected.length, 1);
    assert.equal(seen.length, 0);
  });

  test('without timeField no time is written (InfluxDB stamps the point)', async () => {
    const r = await createInfluxSink(spec({ timeField: undefined }), deps()).write(entries(2));
    assert.equal(r.done, 2);
    assert.equal(stored[0]!.time, undefined);
  });
});

describe('influx sink: answers', () => {
  test('400 for a point: the batch is split until the refused lines stand alone, the rest written', async () => {
    mode = 'marked';
    const batch = entries(16);
    const badAt = [3, 11];
    for (const i of badAt) marked.add(batch[i]!.record.speed as number);
    // a speed that repeats elsewhere in the batch would be refused there too
    const refused = batch.flatMap((e, i) => (marked.has(e.record.speed as number) ? [i] : []));
    const r = await createInfluxSink(spec(), deps()).write(batch);
    assert.equal(r.done, 16);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      refused,
    );
    assert.match(r.rejected[0]!.error, /^InfluxDB answered 400: failure writing points: field type conflict/);
    assert.deepEqual(
      stored.map((p) => p.time).sort(),
      batch
        .filter((_, i) => !refused.includes(i))
        .map((e) => e.record.ts)
        .sort(),
    );
  });

  test('503 with Retry-After: done 0, retryAfterMs from the header, nothing rejected', async () => {
    mode = 'busy';
    const r = await createInfluxSink(spec(), deps()).write(entries(5));
    assert.equal(r.done, 0);
    assert.deepEqual(r.rejected, []);
    assert.equal(r.retryAfterMs, 7000);
    assert.match(r.error ?? '', /answered 503 \(transient\); retrying in 7000 ms: overloaded/);
  });

  test('429 without Retry-After backs off 1 s, 2 s …; a 204 resets it', async () => {
    mode = 'throttle';
    const sink = createInfluxSink(spec(), deps());
    const waits: Array<number | undefined> = [];
    for (let i = 0; i < 3; i++) waits.push((await sink.write(entries(2))).retryAfterMs);
    assert.deepEqual(waits, [HTTP_BACKOFF.firstMs, HTTP_BACKOFF.firstMs * 2, HTTP_BACKOFF.firstMs * 4]);
    mode = 'ok';
    assert.equal((await sink.write(entries(2))).done, 2);
    mode = 'throttle';
    assert.equal((await sink.write(entries(2))).retryAfterMs, HTTP_BACKOFF.firstMs);
  });

  test('a dropped connection is transient', async () => {
    mode = 'drop';
    const r = await createInfluxSink(spec(), deps()).write(entries(3));
    assert.equal(r.done, 0);
    assert.equal(r.retryAfterMs, HTTP_BACKOFF.firstMs);
    assert.match(r.error ?? '', /InfluxDB write to bucket "readings" at .* failed/);
  });

  test('401 and 404 are misconfiguration: done 0, retry in 5 min, the error says what to check', async () => {
    mode = 'unauthorized';
    const a = await createInfluxSink(spec(), deps(), { token: 'old' }).write(entries(3));
    assert.equal(a.done, 0);
    assert.deepEqual(a.rejected, []);
    assert.equal(a.retryAfterMs, HTTP_BACKOFF.misconfiguredMs);
    assert.match(a.error ?? '', /answered 401: the sink is misconfigured, not the records: check the token/);
    mode = 'missing';
    const b = await createInfluxSink(spec(), deps()).write(entries(3));
    assert.match(
      b.error ?? '',
      /answered 404: .*check the sink's org and bucket \(.*\) \(bucket "readings" not found\)/,
    );
    assert.ok(logs.some((l) => l.startsWith('error ') && l.includes('404')));
  });

  test('an empty batch sends nothing; a missing fetch throws at creation', async () => {
    assert.deepEqual(await createInfluxSink(spec(), deps()).write([]), { done: 0, rejected: [] });
    assert.equal(seen.length, 0);
    assert.throws(() => createInfluxSink(spec(), { now: () => NOW, log: () => undefined }), /deps\.fetch is missing/);
    assert.throws(() => createInfluxSink(spec({ measurement: '#x' }), deps()), /starts with "#".*comment/);
  });
});
