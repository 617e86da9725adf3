/**
 * hands/pipeline/transforms.ts: every declarative transform on real values — map, rename, cast, filter, drop,
 * derive (JSONata: runtime errors, syntax errors with their position, the time cap on a pathological expression,
 * the sequence cap), dedupe on a fake clock (expiry, the key bound, state round trip), aggregate through the
 * Transform interface, convert, validate (ajv) — the spec errors naming the field, and no transform changing the
 * record it was given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CompileOptions,
  type StageResult,
  type Transform,
  castValue,
  checkExpr,
  compileTransform,
  truthy,
} from '../../../hands/pipeline/transforms.ts';
import type { PipelineRecord, TransformSpec } from '../../../hands/pipeline/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

const PATH = 'pipelines.p1.transforms.t';

function compile(spec: Record<string, unknown>, opts: CompileOptions = {}): Transform {
  return compileTransform({ inputs: ['src'], ...spec } as unknown as TransformSpec, { path: PATH, ...opts });
}

/** the one record out (fails when the transform refused it or gave another number) */
async function one(t: Transform, record: PipelineRecord): Promise<PipelineRecord> {
  const frozen = structuredClone(record);
  const r = await t.process(record);
  assert.deepEqual(record, frozen, 'the input record was changed');
  if ('error' in r) assert.fail(`refused: ${r.error}`);
  assert.equal(r.out.length, 1);
  return r.out[0]!;
}

async function refused(t: Transform, record: PipelineRecord): Promise<string> {
  const r: StageResult = await t.process(record);
  assert.ok('error' in r, `passed: ${JSON.stringify(r)}`);
  return r.error;
}

function throwsBad(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TalonError, String(e));
    assert.equal(e.code, 'BAD_REQUEST');
    assert.match(e.message, message);
    return true;
  });
}

test('map: a new record of the named fields, nested paths both ways, missing ones left out', async () => {
  const t = compile({
    type: 'map',
    fields: { id: 'device.id', temp: 'reading.value', 'meta.unit': 'reading.unit', x: 'nope.x' },
  });
  const out = await one(t, { device: { id: 'th-7', fw: '1.2' }, reading: { value: 21.5, unit: 'C' }, other: 1 });
  assert.deepEqual(out, { id: 'th-7', temp: 21.5, meta: { unit: 'C' } });
});

test('rename: renamed in place, the rest kept, a missing field is no change', async () => {
  const t = compile({ type: 'rename', fields: { tmp: 'temperature', 'loc.lat': 'lat', gone: 'never' } });
  assert.deepEqual(await one(t, { tmp: 19, loc: { lat: 51.5, lon: -0.12 }, temperature: 'old' }), {
    temperature: 19,
    loc: { lon: -0.12 },
    lat: 51.5,
  });
});

test('cast: real values to each type; a value that cannot be cast names the field and the value', async () => {
  const t = compile({
    type: 'cast',
    fields: { temp: 'number', count: 'integer', id: 'string', ok: 'boolean', at: 'timestamp', 'nested.n': 'number' },
  });
  assert.deepEqual(
    await one(t, {
      temp: ' 21.5 ',
      count: '42',
      id: 1007,
      ok: 'Yes',
      at: '2024-05-01T12:00:00Z',
      nested: { n: '1e3' },
    }),
    { temp: 21.5, count: 42, id: '1007', ok: true, at: Date.UTC(2024, 4, 1, 12), nested: { n: 1000 } },
  );
  // null and missing are left alone
  assert.deepEqual(await one(t, { temp: null, ok: 0 }), { temp: null, ok: false });
  assert.equal(await refused(t, { temp: 'warm' }), 'temp: "warm" cannot be cast to number');
  assert.equal(await refused(t, { count: 3.5 }), 'count: 3.5 is not a whole number (integer)');
  assert.equal(await refused(t, { ok: 'maybe' }), 'ok: "maybe" cannot be cast to boolean');
  assert.equal(await refused(t, { at: 'last tuesday' }), 'at: "last tuesday" cannot be cast to timestamp');
  assert.equal(await refused(t, { temp: '' }), 'temp: "" cannot be cast to number');

  assert.deepEqual(castValue(true, 'number'), { value: 1 });
  assert.deepEqual(castValue({ a: 1 }, 'string'), { value: '{"a":1}' });
  assert.deepEqual(castValue('1714564800000', 'timestamp'), { value: 1714564800000 });
  assert.deepEqual(castValue(Number.NaN, 'number'), { error: 'NaN cannot be cast to number' });
  throwsBad(
    () => compile({ type: 'cast', fields: { temp: 'float' } }),
    /^pipelines\.p1\.transforms\.t\.fields\.temp: "float" is not a type \(have: number, integer/,
  );
});

test('filter: JSONata truthiness keeps or drops; a runtime error names the position', async () => {
  const t = compile({ type: 'filter', expr: 'temp > 20 and status = "ok"' });
  assert.deepEqual(await t.process({ temp: 25, status: 'ok' }), { out: [{ temp: 25, status: 'ok' }] });
  assert.deepEqual(await t.process({ temp: 15, status: 'ok' }), { out: [] });
  assert.deepEqual(await t.process({ status: 'ok' }), { out: [] });
  const tags = compile({ type: 'filter', expr: 'tags' });
  assert.deepEqual(await tags.process({ tags: [] }), { out: [] });
  assert.deepEqual(await tags.process({ tags: [0, 'x'] }), { out: [{ tags: [0, 'x'] }] });
  assert.deepEqual(await tags.process({ tags: {} }), { out: [] });

  const err = await refused(compile({ type: 'filter', expr: '$number(code) > 1' }), { code: 'x' });
  assert.equal(err, 'filter: JSONata error D3030 at character 8: Unable to cast value to a number: "x"');
  assert.equal(truthy(''), false);
  assert.equal(truthy(Number.NaN), false);
  assert.equal(truthy({ _jsonata_lambda: true }), false);
});

test('JSONata syntax errors: refused at compile, naming the stage, the field and the position', () => {
  throwsBad(
    () => compile({ type: 'filter', expr: 'temp > (20 * ' }),
    /^pipelines\.p1\.transforms\.t\.expr: JSONata syntax error S0203 at character 13: Expected "\)" before end of expression$/,
  );
  throwsBad(
    () => compile({ type: 'derive', fields: { ok: 'a', f: 'celsius * 9 / 5 + ]' } }),
    /^pipelines\.p1\.transforms\.t\.fields\.f: JSONata syntax error S0211 at character 19: The symbol "\]" cannot be used as a unary operator$/,
  );
  throwsBad(() => compile({ type: 'filter', expr: '  ' }), /\.expr: write a JSONata expression, not " {2}"/);
  assert.equal(checkExpr('$sum(items.price) > 10'), null);
  assert.equal(checkExpr('a.(b'), 'JSONata syntax error S0203 at character 4: Expected ")" before end of expression');
});

test('drop: top-level and nested fields', async () => {
  const t = compile({ type: 'drop', fields: ['secret', 'meta.raw', 'absent'] });
  assert.deepEqual(await one(t, { v: 1, secret: 'x', meta: { raw: 'abc', unit: 'C' } }), { v: 1, meta: { unit: 'C' } });
  throwsBad(
    () => compile({ type: 'drop', fields: ['a', '__proto__.x'] }),
    /\.fields\[1\]: "__proto__\.x": "__proto__" cannot be a field name/,
  );
  throwsBad(() => compile({ type: 'drop', fields: [] }), /\.fields: write a list of field names/);
});

test('derive: fields in order, each seeing the ones before; nothing removes; a function is an error', async () => {
  const t = compile({
    type: 'derive',
    fields: {
      tempF: 'tempC * 9 / 5 + 32',
      hot: 'tempF > 86',
      label: '$uppercase(room) & ": " & $string(tempF)',
      'stats.n': '$count(samples)',
      old: 'nothing',
      samples: 'samples[$ > 1]',
    },
  });
  assert.deepEqual(await one(t, { tempC: 31, room: 'attic', old: 1, samples: [1, 2, 3] }), {
    tempC: 31,
    room: 'attic',
    samples: [2, 3],
    tempF: 87.8,
    hot: true,
    label: 'ATTIC: 87.8',
    stats: { n: 3 },
  });
  assert.equal(
    await refused(compile({ type: 'derive', fields: { f: 'function($a){ $a }' } }), {}),
    'f: the expression gives a function, not a value',
  );
  assert.equal(
    await refused(compile({ type: 'derive', fields: { n: '$number(v)' } }), { v: 'abc' }),
    'n: JSONata error D3030 at character 8: Unable to cast value to a number: "abc"',
  );
});

test('derive: a pathological expression is stopped by the time cap, a huge range by the sequence cap', async () => {
  // untimed, this takes well over a second here (a million lambda calls); the cap is checked at every step
  const slow = compile({ type: 'derive', fields: { x: '$sum($map([1..1000000], function($v){ $v * 2 }))' } });
  assert.equal(await refused(slow, { a: 1 }), 'x: timed out after 50 ms (JSONata D1012)');
  const loop = compile(
    { type: 'derive', fields: { x: '($f := function($n){ $f($n + 1) }; $f(0))' } },
    { exprTimeoutMs: 20 },
  );
  assert.match(await refused(loop, {}), /^x: (timed out after 20 ms \(JSONata D1012\)|JSONata error D1011)/);
  const huge = compile({ type: 'filter', expr: '$count([1..5000000]) > 0' });
  assert.equal(await refused(huge, {}), 'filter: a sequence passed the limit of 1000000 items (JSONata D2015)');
  // the same shape over a short range finishes (a loose cap: this machine may be busy)
  const fast = compile(
    { type: 'derive', fields: { x: '$sum($map([1..100], function($v){ $v * 2 }))' } },
    { exprTimeoutMs: 2000 },
  );
  assert.deepEqual(await one(fast, {}), { x: 10100 });
});

test('dedupe: a key seen within the window is dropped; the window counts from the first sighting', async () => {
  let clock = 1_000_000;
  const t = compile({ type: 'dedupe', key: ['device', 'seq'], windowMs: 60_000 }, { now: () => clock });
  const pass = async (r: PipelineRecord): Promise<number> => {
    const res = await t.process(r);
    assert.ok(!('error' in res));
    return res.out.length;
  };
  assert.equal(await pass({ device: 'a', seq: 1, v: 10 }), 1);
  assert.equal(await pass({ device: 'a', seq: 2, v: 11 }), 1);
  assert.equal(await pass({ device: 'b', seq: 1, v: 12 }), 1);
  clock += 30_000;
  assert.equal(await pass({ device: 'a', seq: 1, v: 10 }), 0);
  clock += 29_999; // 59.999 s after the first sighting: still within
  assert.equal(await pass({ device: 'a', seq: 1, v: 10 }), 0);
  clock += 1; // 60 s: expired (a duplicate did not extend the window)
  assert.equal(await pass({ device: 'a', seq: 1, v: 10 }), 1);
  assert.deepEqual(t.stats?.(), { duplicates: 2, evicted: 0, keys: 1 });
  assert.equal(await refused(t, { device: 'a', v: 1 }), 'seq: missing (a field of the dedupe key)');

  // state round trip: a new transform restored from it still knows a/1
  const saved = JSON.parse(JSON.stringify(t.state?.()));
  const again = compile({ type: 'dedupe', key: ['device', 'seq'], windowMs: 60_000 }, { now: () => clock });
  again.restore?.(saved);
  assert.deepEqual(await again.process({ device: 'a', seq: 1 }), { out: [] });
  assert.deepEqual(await again.process({ device: 'a', seq: 2 }), { out: [{ device: 'a', seq: 2 }] });
  assert.throws(() => again.restore?.({ v: 1, seen: [[1, 2]] }), /dedupe state/);
});

test('dedupe: memory bounded, the oldest key forgotten first', async () => {
  const clock = 0;
  const t = compile({ type: 'dedupe', key: 'id', windowMs: 3_600_000, maxKeys: 3 }, { now: () => clock });
  for (const id of [1, 2, 3, 4]) assert.equal(((await t.process({ id })) as { out: unknown[] }).out.length, 1);
  assert.deepEqual(t.stats?.(), { duplicates: 0, evicted: 1, keys: 3 });
  assert.deepEqual(await t.process({ id: 4 }), { out: [] });
  assert.deepEqual(await t.process({ id: 1 }), { out: [{ id: 1 }] }); // forgotten: passes again
  throwsBad(
    () => compile({ type: 'dedupe', key: 'id', windowMs: 0 }),
    /\.windowMs: write a number of ms above 0, not 0/,
  );
});

test('aggregate through the Transform: windows out of process() and flush(), state round trip, late errors', async () => {
  const spec = {
    type: 'aggregate',
    window: { type: 'tumbling', sizeMs: 60_000 },
    groupBy: ['room'],
    fields: {
      n: { op: 'count' },
      avg: { op: 'mean', field: 't' },
      top: { op: 'max', field: 't' },
      p: { op: 'percentile', field: 't', p: 40 },
    },
  };
  const t = compile(spec, { timeField: 'at' });
  const readings = [15, 20, 35, 40, 50].map((v, i) => ({ at: i * 10_000, room: 'lab', t: v }));
  for (const r of readings) assert.deepEqual(await t.process(r), { out: [] });
  const saved = JSON.parse(JSON.stringify(t.state?.()));
  const closing = await t.process({ at: 61_000, room: 'lab', t: 1 });
  const expected = [{ window_start: 0, window_end: 60_000, at: 0, room: 'lab', n: 5, avg: 32, top: 50, p: 29 }];
  assert.deepEqual(closing, { out: expected });
  const restored = compile(spec, { timeField: 'at' });
  restored.restore?.(saved);
  assert.deepEqual(await restored.process({ at: 61_000, room: 'lab', t: 1 }), { out: expected });
  assert.match(await refused(restored, { at: 5_000, room: 'lab', t: 3 }), /^late: at 1970-01-01T00:00:05\.000Z/);
  assert.deepEqual(restored.stats?.(), { late: 1, open: 1 });
  assert.deepEqual(restored.flush?.(120_000), [
    { window_start: 60_000, window_end: 120_000, at: 60_000, room: 'lab', n: 1, avg: 1, top: 1, p: 1 },
  ]);
});

test('aggregate: a bad spec names the field', () => {
  const base = {
    type: 'aggregate',
    window: { type: 'sliding', sizeMs: 60_000, slideMs: 10_000 },
    fields: { n: { op: 'count' } },
  };
  assert.ok(compile(base));
  throwsBad(
    () => compile({ ...base, window: { type: 'sliding', sizeMs: 10_000, slideMs: 60_000 } }),
    /\.window\.slideMs: 60000 is more than sizeMs \(10000\)/,
  );
  throwsBad(
    () => compile({ ...base, window: { type: 'sliding', sizeMs: 10_000 } }),
    /\.window\.slideMs: a sliding window needs slideMs/,
  );
  throwsBad(
    () => compile({ ...base, window: { type: 'session', sizeMs: 1 } }),
    /\.window\.type: "session" is not a window/,
  );
  throwsBad(
    () => compile({ ...base, fields: { m: { op: 'median', field: 'v' } } }),
    /\.fields\.m\.op: "median" is not an aggregate \(have: count, sum/,
  );
  throwsBad(
    () => compile({ ...base, fields: { m: { op: 'mean' } } }),
    /\.fields\.m\.field: mean needs the field it reads/,
  );
  throwsBad(
    () => compile({ ...base, fields: { q: { op: 'percentile', field: 'v', p: 101 } } }),
    /\.fields\.q\.p: write the percentile, 0 to 100, not 101/,
  );
});

test('convert: 100 °C is 212 °F in the record; a value that is not a number is an error; a bad pair at compile', async () => {
  const t = compile({ type: 'convert', field: 'reading.temp', from: 'C', to: 'F' });
  assert.deepEqual(await one(t, { reading: { temp: 100 }, id: 1 }), { reading: { temp: 212 }, id: 1 });
  assert.deepEqual(await one(t, { id: 2 }), { id: 2 });
  assert.equal(
    await refused(t, { reading: { temp: '100' } }),
    'reading.temp: "100" is not a number to convert from C (cast it first)',
  );
  const p = compile({ type: 'convert', field: 'p', from: 'bar', to: 'psi' });
  assert.equal(Math.round(((await one(p, { p: 1 })).p as number) * 1e4) / 1e4, 14.5038);
  throwsBad(
    () => compile({ type: 'convert', field: 'e', from: 'kWh', to: 'psi' }),
    /^pipelines\.p1\.transforms\.t: cannot convert kWh \(energy\) to psi \(pressure\)/,
  );
  throwsBad(
    () => compile({ type: 'convert', field: 'e', from: 'kwh', to: 'J' }),
    /\.from: "kwh" is not a known unit \(did you mean kWh\?\)/,
  );
});

test('validate: ajv against a JSON Schema; the errors name the record fields; a bad schema at compile', async () => {
  const t = compile({
    type: 'validate',
    schema: {
      type: 'object',
      required: ['id', 'temp'],
      properties: {
        id: { type: 'string' },
        temp: { type: 'number', minimum: -60, maximum: 85 },
        tags: { type: 'array' },
      },
      additionalProperties: false,
    },
  });
  assert.deepEqual(await one(t, { id: 'a', temp: 21.5 }), { id: 'a', temp: 21.5 });
  assert.equal(
    await refused(t, { temp: 120, extra: 1 }),
    'schema: /id is required; /extra is not a known field; /temp must be <= 85',
  );
  assert.equal(await refused(t, { id: 'b', temp: 'hot' }), 'schema: /temp must be number');
  throwsBad(
    () => compile({ type: 'validate', schema: { type: 'nope' } }),
    /^pipelines\.p1\.transforms\.t\.schema: schema is invalid/,
  );
  throwsBad(() => compile({ type: 'validate', schema: 'x' }), /\.schema: write a JSON Schema/);
});

test('unknown and code types are refused, naming the type field', () => {
  throwsBad(
    () => compile({ type: 'explode' }),
    /^pipelines\.p1\.transforms\.t\.type: "explode" is not a transform \(have: map, rename/,
  );
  throwsBad(() => compile({ type: 'code', source: 'x' }), /\.type: a code transform is compiled by sandbox\.ts/);
  throwsBad(() => compile({ type: 'map', fields: {} }), /\.fields: write an object of fields/);
  throwsBad(() => compile({ type: 'rename', fields: { a: 3 } }), /\.fields\.a: write a string, not 3/);
});
