/**
 * The Data Pipeline Hand's settings (hands/pipeline/config.ts parsePipelines): a full pipeline (bus source → derive →
 * aggregate → two sinks) parsed with its defaults and its transforms in topological order; a table of bad pipelines,
 * each asserting the exact path its problem names and the words that say what to write (unknown inputs with a "did
 * you mean", an input naming a sink, cycles named, dangling stages, stages without inputs, bad types, URLs, schemes,
 * windows, percentiles, identifiers, queue policies, wrong value types); a bad pipeline left out while a good one
 * stays; the expression and code hooks' messages added with their path; the outline schema compiled with ajv.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAjv } from '../../../runtime/core/ajv.ts';
import {
  CODE_DEFAULTS,
  DEFAULT_QUEUE,
  nearest,
  parsePipelines,
  settingsSchema,
  type ParseHooks,
} from '../../../hands/pipeline/config.ts';

type Obj = Record<string, any>;

/** bus source → derive → aggregate → a PostgreSQL sink and an HTTP sink; the aggregate is written before the derive */
function good(): Obj {
  return {
    sources: { raw: { type: 'bus', topic: 'sensors/+/reading' } },
    transforms: {
      agg: {
        type: 'aggregate',
        inputs: ['f'],
        window: { type: 'sliding', sizeMs: 60_000, slideMs: 10_000 },
        groupBy: ['sensor'],
        fields: {
          n: { op: 'count' },
          avg: { op: 'mean', field: 'tempF' },
          p95: { op: 'percentile', field: 'tempF', p: 95 },
        },
      },
      f: { type: 'derive', inputs: ['raw'], fields: { tempF: 'temp * 9 / 5 + 32' } },
    },
    sinks: {
      db: {
        type: 'postgres',
        inputs: ['agg'],
        connection: 'pg-main',
        table: 'public.readings',
        key: ['sensor', 'ts'],
        columns: ['sensor', 'ts', 'n', 'avg', 'p95'],
      },
      up: { type: 'http', inputs: ['agg', 'f'], url: 'https://ingest.example.com/v1', format: 'ndjson' },
    },
    queue: { maxRecords: 10_000, onFull: 'drop-oldest' },
  };
}

function parseOne(p: Obj, hooks?: ParseHooks) {
  return parsePipelines({ pipelines: { p1: p } }, hooks);
}

test('a full pipeline parses with defaults filled and its transforms in topological order', () => {
  const { pipelines, problems } = parseOne(good());
  assert.deepEqual(problems, []);
  assert.equal(pipelines.length, 1);
  const p = pipelines[0]!;
  assert.equal(p.name, 'p1');
  assert.deepEqual(p.order, ['f', 'agg']);
  assert.deepEqual(p.consumers, { raw: ['f'], agg: ['db', 'up'], f: ['agg', 'up'] });
  assert.equal(p.timeField, 'ts');
  assert.deepEqual(p.queue, { ...DEFAULT_QUEUE, maxRecords: 10_000, onFull: 'drop-oldest' });
  assert.deepEqual(p.sources.raw, { type: 'bus', topic: 'sensors/+/reading' });
  assert.deepEqual(p.transforms.agg, {
    type: 'aggregate',
    inputs: ['f'],
    window: { type: 'sliding', sizeMs: 60_000, slideMs: 10_000 },
    groupBy: ['sensor'],
    fields: {
      n: { op: 'count' },
      avg: { op: 'mean', field: 'tempF' },
      p95: { op: 'percentile', field: 'tempF', p: 95 },
    },
  });
  assert.deepEqual(p.sinks.up, {
    type: 'http',
    inputs: ['agg', 'f'],
    url: 'https://ingest.example.com/v1',
    format: 'ndjson',
    batch: { maxRecords: 500, maxMs: 1000 },
  });
  assert.equal(p.sinks.db?.type, 'postgres');
});

test('one name for a source and a sink is refused; no queue given: DEFAULT_QUEUE; no transforms: an empty order', () => {
  const { pipelines, problems } = parseOne({
    sources: { lite: { type: 'bus', topic: 'a/b' } },
    sinks: {
      out: { type: 'file', inputs: ['lite'], path: '/data/out.jsonl', format: 'jsonl' },
      lite: { type: 'sqlite', inputs: ['lite'], database: '/data/out.db', table: 'readings' },
    },
  });
  // "lite" is both a source and a sink: refused (inputs name stages, one name each)
  assert.equal(pipelines.length, 0);
  assert.ok(problems.some((m) => m.startsWith('pipelines.p1.sinks.lite: "lite" is also the name of a source')));
  const second = parsePipelines({
    pipelines: {
      p1: {
        sources: { raw: { type: 'bus', topic: 'a/#' } },
        sinks: { out: { type: 'sqlite', inputs: ['raw'], database: '/data/out.db', table: 'readings' } },
      },
    },
  });
  assert.deepEqual(second.problems, []);
  assert.deepEqual(second.pipelines[0]!.queue, DEFAULT_QUEUE);
  assert.deepEqual(second.pipelines[0]!.order, []);
});

test('every source, transform and sink type parses, with its defaults', () => {
  const { pipelines, problems } = parseOne({
    sources: {
      api: {
        type: 'http',
        url: 'https://api.example.com/r',
        intervalMs: 60_000,
        pagination: { next: 'cursor', cursorField: 'meta.next', param: 'cursor' },
      },
      csv: { type: 'file', dir: '/data/in', format: 'csv', delimiter: ';' },
      lite: {
        type: 'sql',
        driver: 'sqlite',
        database: '/data/x.db',
        query: 'SELECT * FROM t WHERE id > :cursor ORDER BY id',
        cursor: { column: 'id', initial: 0 },
        intervalMs: 5000,
      },
      web: { type: 'web', watch: 'prices' },
    },
    transforms: {
      m: { type: 'map', inputs: ['api'], fields: { t: 'data.temp' } },
      r: { type: 'rename', inputs: ['csv'], fields: { temperature: 't' } },
      c: { type: 'cast', inputs: ['m', 'r'], fields: { t: 'number', ts: 'timestamp' } },
      fl: { type: 'filter', inputs: ['c'], expr: 't > -40' },
      dr: { type: 'drop', inputs: ['fl', 'lite', 'web'], fields: ['debug'] },
      dd: { type: 'dedupe', inputs: ['dr'], key: 'id', windowMs: 60_000 },
      cv: { type: 'convert', inputs: ['dd'], field: 't', from: 'degF', to: 'degC' },
      v: { type: 'validate', inputs: ['cv'], schema: { type: 'object', required: ['t'] } },
      js: { type: 'code', inputs: ['v'], source: '(r) => r' },
      tw: {
        type: 'aggregate',
        inputs: ['js'],
        window: { type: 'tumbling', sizeMs: 60_000 },
        fields: { hi: { op: 'p99', field: 't' } },
      },
    },
    sinks: {
      mq: { type: 'mqtt', inputs: ['tw'], url: 'mqtts://broker.example.com:8883', topic: 'site/agg' },
      file: { type: 'file', inputs: ['js'], path: '/data/out.jsonl', format: 'jsonl' },
      db: { type: 'sqlite', inputs: ['js'], database: '/data/out.db', table: 'readings', key: ['id'] },
      influx: {
        type: 'influx',
        inputs: ['js'],
        url: 'http://influx.local:8086',
        bucket: 'b',
        measurement: 'climate',
        tags: ['sensor'],
        fields: ['t'],
      },
      prom: {
        type: 'prometheus',
        inputs: ['tw'],
        url: 'http://prom.local:9090/api/v1/write',
        metric: 'site_temp_celsius',
        labels: ['sensor'],
        valueField: 'hi',
      },
    },
  });
  assert.deepEqual(problems, []);
  const p = pipelines[0]!;
  assert.deepEqual(p.order, ['m', 'r', 'c', 'fl', 'dr', 'dd', 'cv', 'v', 'js', 'tw']);
  assert.deepEqual(p.sources.api, {
    type: 'http',
    url: 'https://api.example.com/r',
    intervalMs: 60_000,
    etag: true,
    pagination: { next: 'cursor', cursorField: 'meta.next', param: 'cursor', maxPages: 10 },
  });
  assert.deepEqual(p.sources.csv, { type: 'file', dir: '/data/in', format: 'csv', delimiter: ';', header: true });
  assert.deepEqual(p.transforms.dd, { type: 'dedupe', inputs: ['dr'], key: ['id'], windowMs: 60_000 });
  assert.deepEqual(p.transforms.js, { type: 'code', inputs: ['v'], source: '(r) => r', ...CODE_DEFAULTS });
  assert.deepEqual(p.sinks.mq, {
    type: 'mqtt',
    inputs: ['tw'],
    url: 'mqtts://broker.example.com:8883',
    topic: 'site/agg',
    qos: 1,
  });
  assert.deepEqual(p.sinks.file, {
    type: 'file',
    inputs: ['js'],
    path: '/data/out.jsonl',
    format: 'jsonl',
    rotate: { maxBytes: 64 * 1024 * 1024 },
  });
});

/** [what, change to the good pipeline, the exact path, words the message holds] */
const BAD: [string, (p: Obj) => void, string, RegExp][] = [
  [
    'an unknown input, with a suggestion',
    (p) => {
      p.sinks.db.inputs = ['ag'];
    },
    'pipelines.p1.sinks.db.inputs[0]',
    /"ag" is not a source or transform of p1 \(have: raw, agg, f\); did you mean "agg"\?/,
  ],
  [
    'an unknown input, no near miss',
    (p) => {
      p.sinks.up.inputs = ['agg', 'something-else'];
    },
    'pipelines.p1.sinks.up.inputs[1]',
    /"something-else" is not a source or transform of p1 \(have: raw, agg, f\)$/,
  ],
  [
    'an input naming a sink',
    (p) => {
      p.transforms.agg.inputs = ['up'];
    },
    'pipelines.p1.transforms.agg.inputs[0]',
    /"up" is a sink: .*name a source or transform/,
  ],
  [
    'a cycle among transforms, named',
    (p) => {
      p.transforms.c = { type: 'drop', inputs: ['agg'], fields: ['x'] };
      p.transforms.f.inputs = ['raw', 'c'];
    },
    'pipelines.p1.transforms.agg.inputs',
    /a cycle agg → c → f → agg/,
  ],
  [
    'a transform reading itself',
    (p) => {
      p.transforms.f.inputs = ['f'];
    },
    'pipelines.p1.transforms.f.inputs',
    /a cycle f → f/,
  ],
  [
    'a dangling source',
    (p) => {
      p.sources.extra = { type: 'bus', topic: 'x/y' };
    },
    'pipelines.p1.sources.extra',
    /feeds nothing, so its records would be dropped: name "extra" in a transform's or sink's inputs, or remove it/,
  ],
  [
    'a dangling transform',
    (p) => {
      p.transforms.lonely = { type: 'drop', inputs: ['raw'], fields: ['x'] };
    },
    'pipelines.p1.transforms.lonely',
    /feeds nothing/,
  ],
  [
    'a sink without inputs',
    (p) => {
      delete p.sinks.db.inputs;
    },
    'pipelines.p1.sinks.db.inputs',
    /is missing: write the sources or transforms this stage reads/,
  ],
  [
    'a transform with empty inputs',
    (p) => {
      p.transforms.agg.inputs = [];
    },
    'pipelines.p1.transforms.agg.inputs',
    /is empty: a transform reads at least one/,
  ],
  [
    'a bad source type, with a suggestion',
    (p) => {
      p.sources.raw.type = 'buss';
    },
    'pipelines.p1.sources.raw.type',
    /must be one of "bus", "http", "file", "sql", "web", not "buss"; did you mean "bus"\?/,
  ],
  [
    'a sink type that is a source type',
    (p) => {
      p.sinks.db.type = 'sql';
    },
    'pipelines.p1.sinks.db.type',
    /must be one of "http", "mqtt", "file", "postgres"/,
  ],
  [
    'a missing url',
    (p) => {
      delete p.sinks.up.url;
    },
    'pipelines.p1.sinks.up.url',
    /is missing: write an http or https URL/,
  ],
  [
    'a bad scheme on an http sink',
    (p) => {
      p.sinks.up.url = 'ftp://ingest.example.com/';
    },
    'pipelines.p1.sinks.up.url',
    /the scheme "ftp:" is not taken: must be an absolute http or https URL/,
  ],
  [
    'an https URL for an mqtt sink',
    (p) => {
      p.sinks.mq = { type: 'mqtt', inputs: ['agg'], url: 'https://broker', topic: 'a/b' };
    },
    'pipelines.p1.sinks.mq.url',
    /the scheme "https:" is not taken: must be an absolute mqtt or mqtts URL/,
  ],
  [
    'a url that is no URL',
    (p) => {
      p.sinks.up.url = 'ingest.example.com';
    },
    'pipelines.p1.sinks.up.url',
    /"ingest.example.com" is not a URL/,
  ],
  [
    'a window of size 0',
    (p) => {
      p.transforms.agg.window.sizeMs = 0;
    },
    'pipelines.p1.transforms.agg.window.sizeMs',
    /must be a whole number of milliseconds from 1 to \d+, not 0/,
  ],
  [
    'a slide longer than the window',
    (p) => {
      p.transforms.agg.window.slideMs = 120_000;
    },
    'pipelines.p1.transforms.agg.window.slideMs',
    /120000 is more than sizeMs 60000/,
  ],
  [
    'a sliding window without a slide',
    (p) => {
      delete p.transforms.agg.window.slideMs;
    },
    'pipelines.p1.transforms.agg.window.slideMs',
    /is missing/,
  ],
  [
    'a tumbling window with a slide',
    (p) => {
      p.transforms.agg.window.type = 'tumbling';
    },
    'pipelines.p1.transforms.agg.window.slideMs',
    /is for a sliding window/,
  ],
  [
    'a percentile over 100',
    (p) => {
      p.transforms.agg.fields.p95.p = 101;
    },
    'pipelines.p1.transforms.agg.fields.p95.p',
    /must be a percentile from 0 to 100, not 101/,
  ],
  [
    'a percentile without p',
    (p) => {
      delete p.transforms.agg.fields.p95.p;
    },
    'pipelines.p1.transforms.agg.fields.p95.p',
    /is missing: write the percentile, 0 to 100/,
  ],
  [
    'an aggregate op needing a field',
    (p) => {
      delete p.transforms.agg.fields.avg.field;
    },
    'pipelines.p1.transforms.agg.fields.avg.field',
    /is missing/,
  ],
  [
    'an unknown aggregate op',
    (p) => {
      p.transforms.agg.fields.avg.op = 'average';
    },
    'pipelines.p1.transforms.agg.fields.avg.op',
    /must be one of "count", .*not "average"/,
  ],
  [
    'a bad sql cursor column',
    (p) => {
      p.sources.q = {
        type: 'sql',
        driver: 'sqlite',
        database: '/d.db',
        query: 'SELECT * FROM t WHERE id > :cursor',
        cursor: { column: 'id; DROP TABLE t' },
        intervalMs: 5000,
      };
      p.transforms.f.inputs.push('q');
    },
    'pipelines.p1.sources.q.cursor.column',
    /"id; DROP TABLE t" is not an SQL identifier/,
  ],
  [
    'a sql query without :cursor',
    (p) => {
      p.sources.q = {
        type: 'sql',
        driver: 'postgres',
        connection: 'pg-main',
        query: 'SELECT * FROM t',
        cursor: { column: 'id' },
        intervalMs: 5000,
      };
      p.transforms.f.inputs.push('q');
    },
    'pipelines.p1.sources.q.query',
    /does not use :cursor/,
  ],
  [
    'a postgres source without its connection secret',
    (p) => {
      p.sources.q = {
        type: 'sql',
        driver: 'postgres',
        query: 'SELECT * FROM t WHERE id > :cursor',
        cursor: { column: 'id' },
        intervalMs: 5000,
      };
      p.transforms.f.inputs.push('q');
    },
    'pipelines.p1.sources.q.connection',
    /is missing: write the name of the sealed secret/,
  ],
  [
    'a bad sink key column',
    (p) => {
      p.sinks.db.key = ['sensor', 'bad col'];
    },
    'pipelines.p1.sinks.db.key[1]',
    /"bad col" is not an SQL identifier/,
  ],
  [
    'a key column not among the columns',
    (p) => {
      p.sinks.db.key = ['sensor', 'site'];
    },
    'pipelines.p1.sinks.db.key[1]',
    /"site" is not one of the columns written/,
  ],
  [
    'a bad table name',
    (p) => {
      p.sinks.db.table = 'readings; --';
    },
    'pipelines.p1.sinks.db.table',
    /is not a table name/,
  ],
  [
    'a bad queue policy',
    (p) => {
      p.queue.onFull = 'drop-old';
    },
    'pipelines.p1.queue.onFull',
    /must be one of "drop-oldest", "drop-newest", "block", not "drop-old"; did you mean "drop-oldest"\?/,
  ],
  [
    'a queue too small in bytes',
    (p) => {
      p.queue.maxBytes = 10;
    },
    'pipelines.p1.queue.maxBytes',
    /must be a whole number of bytes from 1048576/,
  ],
  [
    'an interval as text',
    (p) => {
      p.sources.api = { type: 'http', url: 'https://a.example.com', intervalMs: '5000' };
      p.transforms.f.inputs.push('api');
    },
    'pipelines.p1.sources.api.intervalMs',
    /must be a whole number of milliseconds between polls from 1000 to \d+, not "5000"/,
  ],
  [
    'groupBy as a text',
    (p) => {
      p.transforms.agg.groupBy = 'sensor';
    },
    'pipelines.p1.transforms.agg.groupBy',
    /must be a list: the fields grouped by/,
  ],
  [
    'sources as a list',
    (p) => {
      p.sources = [{ type: 'bus', topic: 'a' }];
    },
    'pipelines.p1.sources',
    /must be an object \{ ID: \{ type, … \} \}/,
  ],
  [
    'no sinks',
    (p) => {
      delete p.sinks;
    },
    'pipelines.p1.sinks',
    /is missing: a pipeline needs at least one sink/,
  ],
  [
    'a bad stage name',
    (p) => {
      p.sources['Raw Sensor'] = p.sources.raw;
    },
    'pipelines.p1.sources["Raw Sensor"]',
    /"Raw Sensor" is not a stage name: a stage name must be 1-63 lowercase letters, digits, "-" or "_"/,
  ],
  [
    'a field misspelt, with a suggestion',
    (p) => {
      p.transforms.f.field = p.transforms.f.fields;
      delete p.transforms.f.fields;
    },
    'pipelines.p1.transforms.f.field',
    /is not a field of a derive transform \(the fields are type, inputs, fields\); did you mean "fields"\?/,
  ],
  [
    'a topic with "#" not last',
    (p) => {
      p.sources.raw.topic = 'sensors/#/reading';
    },
    'pipelines.p1.sources.raw.topic',
    /"#" must be the whole last level/,
  ],
  [
    'an mqtt sink topic with a wildcard',
    (p) => {
      p.sinks.mq = { type: 'mqtt', inputs: ['agg'], url: 'mqtt://broker', topic: 'site/+' };
    },
    'pipelines.p1.sinks.mq.topic',
    /has a wildcard/,
  ],
  [
    'a code transform with both source and file',
    (p) => {
      p.transforms.js = { type: 'code', inputs: ['f'], source: '(r) => r', file: 'x.js' };
      p.sinks.up.inputs.push('js');
    },
    'pipelines.p1.transforms.js',
    /has both source and file/,
  ],
  [
    'a code transform with too long a deadline',
    (p) => {
      p.transforms.js = { type: 'code', inputs: ['f'], source: '(r) => r', timeoutMs: 60_000 };
      p.sinks.up.inputs.push('js');
    },
    'pipelines.p1.transforms.js.timeoutMs',
    /from 1 to 10000, not 60000/,
  ],
  [
    'a validate schema that is no JSON Schema',
    (p) => {
      p.transforms.v = { type: 'validate', inputs: ['f'], schema: { type: 'nope' } };
      p.sinks.up.inputs.push('v');
    },
    'pipelines.p1.transforms.v.schema',
    /is not a JSON Schema at \/type/,
  ],
  [
    'a cast to an unknown type, with a suggestion',
    (p) => {
      p.transforms.c = { type: 'cast', inputs: ['f'], fields: { temp: 'numbr' } };
      p.sinks.up.inputs.push('c');
    },
    'pipelines.p1.transforms.c.fields.temp',
    /"numbr" is not a type to cast to: write one of number, .*; did you mean "number"\?/,
  ],
  [
    'a file sink rotated by nothing',
    (p) => {
      p.sinks.file = { type: 'file', inputs: ['agg'], path: '/d/out.csv', format: 'csv', rotate: {} };
    },
    'pipelines.p1.sinks.file.rotate',
    /names no limit: write maxBytes, maxAgeMs or both/,
  ],
  [
    'a bad Prometheus metric name',
    (p) => {
      p.sinks.prom = { type: 'prometheus', inputs: ['agg'], url: 'http://p', metric: '9temp', valueField: 'avg' };
    },
    'pipelines.p1.sinks.prom.metric',
    /"9temp" is not a Prometheus metric name/,
  ],
  [
    'a csv delimiter of two characters',
    (p) => {
      p.sources.csv = { type: 'file', dir: '/in', format: 'csv', delimiter: ';;' };
      p.transforms.f.inputs.push('csv');
    },
    'pipelines.p1.sources.csv.delimiter',
    /must be one character/,
  ],
  [
    'cursor pagination without its field',
    (p) => {
      p.sources.api = {
        type: 'http',
        url: 'https://a.example.com',
        intervalMs: 5000,
        pagination: { next: 'cursor', param: 'c' },
      };
      p.transforms.f.inputs.push('api');
    },
    'pipelines.p1.sources.api.pagination.cursorField',
    /is missing/,
  ],
  [
    'a timeField that is a number',
    (p) => {
      p.timeField = 5;
    },
    'pipelines.p1.timeField',
    /must be a record field name/,
  ],
  [
    'a rename of two fields to one',
    (p) => {
      p.transforms.r = { type: 'rename', inputs: ['f'], fields: { a: 'x', b: 'x' } };
      p.sinks.up.inputs.push('r');
    },
    'pipelines.p1.transforms.r.fields.b',
    /renames to "x" as "a" does/,
  ],
];

for (const [what, change, path, words] of BAD)
  test(`bad: ${what} → ${path}`, () => {
    const p = good();
    change(p);
    const { pipelines, problems } = parseOne(p);
    assert.equal(pipelines.length, 0, `left out: ${what}`);
    const mine = problems.filter((m) => m.startsWith(`${path}: `));
    assert.ok(mine.length > 0, `a problem at ${path}, got:\n${problems.join('\n')}`);
    assert.ok(
      mine.some((m) => words.test(m.slice(path.length + 2))),
      `${words} in:\n${mine.join('\n')}`,
    );
    assert.match(problems.at(-1)!, /^pipelines\.p1: left out \(\d+ problems? above\); the other pipelines run$/);
  });

test("the transforms' own limits: dedupe maxKeys, aggregate graceMs and maxOpen kept; out of range named", () => {
  const p = good();
  p.transforms.agg.graceMs = 0;
  p.transforms.agg.maxOpen = 500;
  p.transforms.d = { type: 'dedupe', inputs: ['raw'], key: 'id', windowMs: 60_000, maxKeys: 2000 };
  p.transforms.f.inputs = ['d'];
  const r = parseOne(p);
  assert.deepEqual(r.problems, []);
  const t = r.pipelines[0]!.transforms;
  assert.equal((t.agg as { graceMs?: number }).graceMs, 0);
  assert.equal((t.agg as { maxOpen?: number }).maxOpen, 500);
  assert.equal((t.d as { maxKeys?: number }).maxKeys, 2000);
  p.transforms.agg.graceMs = -1;
  p.transforms.d.maxKeys = 0;
  const bad = parseOne(p).problems.join('\n');
  assert.match(bad, /pipelines\.p1\.transforms\.agg\.graceMs: must be a whole number of milliseconds from 0/);
  assert.match(bad, /pipelines\.p1\.transforms\.d\.maxKeys: must be a whole number of keys from 1/);
});

test('a bad pipeline is left out, a good one stays; a bad pipeline name is named', () => {
  const bad = good();
  bad.sinks.db.inputs = ['nope'];
  const { pipelines, problems } = parsePipelines({ pipelines: { bad, ok: good(), 'Not-OK': good() } });
  assert.deepEqual(
    pipelines.map((p) => p.name),
    ['ok'],
  );
  assert.ok(problems.some((m) => m.startsWith('pipelines.bad.sinks.db.inputs[0]: "nope" is not a source')));
  assert.ok(problems.includes('pipelines.bad: left out (1 problem above); the other pipelines run'));
  assert.ok(problems.some((m) => m.startsWith('pipelines.Not-OK: "Not-OK" is not a pipeline name')));
});

test('settings that are not an object, an unknown settings field, no pipelines', () => {
  assert.deepEqual(parsePipelines(undefined), { pipelines: [], problems: [] });
  assert.deepEqual(parsePipelines({}), { pipelines: [], problems: [] });
  assert.match(parsePipelines([1]).problems[0]!, /^settings: must be an object/);
  assert.match(parsePipelines({ pipelines: [] }).problems[0]!, /^pipelines: must be an object/);
  const r = parsePipelines({ pipeline: {} });
  assert.deepEqual(r.problems, [
    'settings.pipeline: is not a known field (pipelines); did you mean "pipelines"?; ignored',
  ]);
});

test('the expression and code hooks: their messages added with the path, a throwing hook reported', () => {
  const p = good();
  p.transforms.fl = { type: 'filter', inputs: ['f'], expr: 'temp >' };
  p.transforms.js = { type: 'code', inputs: ['fl'], source: 'function (' };
  p.sinks.up.inputs = ['agg', 'js'];
  const seen: [string, string][] = [];
  const hooks: ParseHooks = {
    checkExpr: (expr, path) => {
      seen.push([expr, path]);
      return expr.trim().endsWith('>') ? 'line 1, column 7: expected an operand' : null;
    },
    checkCode: (src, path) => {
      seen.push([src, path]);
      return src.includes('(') && !src.includes(')') ? 'SyntaxError at line 1' : null;
    },
  };
  const { pipelines, problems } = parseOne(p, hooks);
  assert.equal(pipelines.length, 0);
  assert.ok(problems.includes('pipelines.p1.transforms.fl.expr: line 1, column 7: expected an operand'));
  assert.ok(problems.includes('pipelines.p1.transforms.js.source: SyntaxError at line 1'));
  assert.deepEqual(seen.sort(), [
    ['function (', 'pipelines.p1.transforms.js.source'],
    ['temp * 9 / 5 + 32', 'pipelines.p1.transforms.f.fields.tempF'],
    ['temp >', 'pipelines.p1.transforms.fl.expr'],
  ]);

  const ok = parseOne(good(), { checkExpr: () => null, checkCode: () => null });
  assert.deepEqual(ok.problems, []);

  const thrown = parseOne(good(), {
    checkExpr: () => {
      throw new Error('boom');
    },
  });
  assert.ok(thrown.problems.includes('pipelines.p1.transforms.f.fields.tempF: could not be checked: boom'));
});

test('nearest: a near miss within a third of the word, nothing for a far one', () => {
  assert.equal(nearest('agregate', ['aggregate', 'map']), 'aggregate');
  assert.equal(nearest('RAW', ['raw']), 'raw');
  assert.equal(nearest('xyz', ['raw', 'agg']), undefined);
  assert.equal(nearest('drop-old', ['drop-newest', 'drop-oldest']), 'drop-oldest');
  assert.equal(nearest('dr', ['drop']), undefined);
});

test('settingsSchema: ajv compiles it; the outline takes a pipeline map and refuses a list', () => {
  const validate = createAjv('hand').compile(settingsSchema);
  assert.equal(validate({ pipelines: { p1: good() } }), true);
  assert.equal(validate({ pipelines: [good()] }), false);
  assert.equal(validate({ other: 1 }), false);
});
