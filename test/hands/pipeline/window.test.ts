/**
 * hands/pipeline/window.ts: percentiles against hand-computed values (numpy's linear method), tumbling windows over a
 * public series (NAB's ec2_cpu_utilization_5f5533.csv, 5-minute readings) checked hour by hour against a separate
 * recomputation, sliding windows that overlap, late records, grace, groups, the memory bounds, and state()/restore()
 * giving the same windows as an uninterrupted run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WindowAggregator, percentile, recordTime, type WindowOptions } from '../../../hands/pipeline/window.ts';
import type { PipelineRecord } from '../../../hands/pipeline/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { nabFile } from '../../helpers/datasets.ts';

const HOUR = 3_600_000;
const NAB = nabFile('realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv');

/** the CSV's rows as records: NAB's times are UTC without a zone */
function nabRecords(): PipelineRecord[] {
  const lines = readFileSync(NAB, 'utf8').trim().split('\n').slice(1);
  return lines.map((line) => {
    const [ts, value] = line.split(',');
    return { ts: `${ts!.replace(' ', 'T')}Z`, value: Number(value) };
  });
}

const near = (a: unknown, b: number, what: string): void => {
  assert.equal(typeof a, 'number', what);
  assert.ok(Math.abs((a as number) - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} is not ${b}`);
};

function added(agg: WindowAggregator, r: PipelineRecord, arrival = 0): PipelineRecord[] {
  const res = agg.add(r, arrival);
  if ('error' in res) assert.fail(`refused: ${res.error}`);
  return res.out;
}

test('percentile: linear between ranks, as numpy.percentile', () => {
  const xs = [15, 20, 35, 40, 50];
  assert.equal(percentile(xs, 0), 15);
  assert.equal(percentile(xs, 40), 29); // h = 1.6: 20 + 0.6 × 15
  assert.equal(percentile(xs, 50), 35);
  assert.equal(percentile(xs, 90), 46); // h = 3.6: 40 + 0.6 × 10
  assert.equal(percentile(xs, 100), 50);
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentile([1, 2, 3, 4], 25), 1.75);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), null);
});

test('recordTime: ms, ISO text, arrival when missing, an error naming the field otherwise', () => {
  assert.equal(recordTime({ ts: 1000 }, 'ts', 5), 1000);
  assert.equal(recordTime({ at: '2024-05-01T00:00:00Z' }, 'at', 5), Date.UTC(2024, 4, 1));
  assert.equal(recordTime({}, 'ts', 5), 5);
  assert.match(String(recordTime({ ts: 'yesterday' }, 'ts', 5)), /^ts: "yesterday" is not a time/);
  assert.match(String(recordTime({ ts: true }, 'ts', 5)), /^ts: true is not a time/);
});

test('tumbling hourly windows over a NAB series match an independent recomputation', () => {
  const records = nabRecords();
  assert.equal(records.length, 4032);
  const agg = new WindowAggregator({
    window: { type: 'tumbling', sizeMs: HOUR },
    fields: {
      n: { op: 'count' },
      total: { op: 'sum', field: 'value' },
      avg: { op: 'mean', field: 'value' },
      lo: { op: 'min', field: 'value' },
      hi: { op: 'max', field: 'value' },
      med: { op: 'p50', field: 'value' },
    },
  });
  const out: PipelineRecord[] = [];
  for (const r of records) out.push(...added(agg, r));
  out.push(...agg.flush(Number.POSITIVE_INFINITY));
  assert.equal(agg.open, 0);

  // the recomputation: hour keys from the text itself, no Date arithmetic shared with the code under test
  const hours = new Map<string, number[]>();
  for (const line of readFileSync(NAB, 'utf8').trim().split('\n').slice(1)) {
    const [ts, v] = line.split(',');
    const hour = `${ts!.slice(0, 13)}:00:00.000Z`.replace(' ', 'T');
    hours.set(hour, [...(hours.get(hour) ?? []), Number(v)]);
  }
  assert.equal(out.length, hours.size);
  let i = 0;
  for (const [hour, vs] of hours) {
    const w = out[i++]!;
    assert.equal(new Date(w.window_start as number).toISOString(), hour);
    assert.equal(w.window_end, (w.window_start as number) + HOUR);
    assert.equal(w.ts, w.window_start);
    assert.equal(w.n, vs.length, hour);
    let sum = 0;
    for (const v of vs) sum += v;
    near(w.total, sum, `${hour} sum`);
    near(w.avg, sum / vs.length, `${hour} mean`);
    assert.equal(w.lo, Math.min(...vs));
    assert.equal(w.hi, Math.max(...vs));
    const sorted = [...vs].sort((a, b) => a - b);
    const mid =
      sorted.length % 2 === 1
        ? sorted[(sorted.length - 1) / 2]!
        : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    near(w.med, mid, `${hour} median`);
  }
  // the series is 5-minute readings: a full hour holds 12
  assert.ok([...hours.values()].filter((vs) => vs.length === 12).length > 300);
});

test('sliding windows overlap: each record counts in every window covering it', () => {
  const agg = new WindowAggregator({
    window: { type: 'sliding', sizeMs: 10_000, slideMs: 5_000 },
    fields: { n: { op: 'count' }, s: { op: 'sum', field: 'v' } },
  });
  assert.deepEqual(agg.starts(1_000), [-5_000, 0]);
  assert.deepEqual(agg.starts(5_000), [0, 5_000]);
  assert.deepEqual(added(agg, { ts: 1_000, v: 1 }), []);
  const first = added(agg, { ts: 6_000, v: 2 });
  assert.deepEqual(first, [{ window_start: -5_000, window_end: 5_000, ts: -5_000, n: 1, s: 1 }]);
  const second = added(agg, { ts: 12_000, v: 4 });
  assert.deepEqual(second, [{ window_start: 0, window_end: 10_000, ts: 0, n: 2, s: 3 }]);
  assert.deepEqual(agg.flush(Number.POSITIVE_INFINITY), [
    { window_start: 5_000, window_end: 15_000, ts: 5_000, n: 2, s: 6 },
    { window_start: 10_000, window_end: 20_000, ts: 10_000, n: 1, s: 4 },
  ]);

  // a slide that does not divide the size: (t − size, t] still decides
  const odd = new WindowAggregator({
    window: { type: 'sliding', sizeMs: 10, slideMs: 4 },
    fields: { n: { op: 'count' } },
  });
  assert.deepEqual(odd.starts(9), [0, 4, 8]);
  assert.deepEqual(odd.starts(10), [4, 8]);
});

test('late records are errors, counted and not folded in; graceMs keeps windows open longer', () => {
  const opts: WindowOptions = { window: { type: 'tumbling', sizeMs: 60_000 }, fields: { n: { op: 'count' } } };
  const agg = new WindowAggregator(opts);
  added(agg, { ts: 30_000 });
  assert.deepEqual(added(agg, { ts: 130_000 }), [{ window_start: 0, window_end: 60_000, ts: 0, n: 1 }]);
  const late = agg.add({ ts: 50_000 }, 0);
  assert.ok('error' in late);
  assert.match(
    late.error,
    /^late: ts 1970-01-01T00:00:50\.000Z falls in windows already closed \(closed up to 1970-01-01T00:02:10\.000Z\)/,
  );
  assert.equal(agg.late, 1);
  // [60 s, 120 s) ended before the latest time seen (130 s): also closed
  assert.ok('error' in agg.add({ ts: 70_000 }, 0));
  assert.equal(agg.late, 2);
  added(agg, { ts: 125_000 });
  assert.deepEqual(agg.flush(Number.POSITIVE_INFINITY), [
    { window_start: 120_000, window_end: 180_000, ts: 120_000, n: 2 },
  ]);

  const graced = new WindowAggregator({ ...opts, graceMs: 60_000 });
  added(graced, { ts: 30_000 });
  assert.deepEqual(added(graced, { ts: 130_000 }), [{ window_start: 0, window_end: 60_000, ts: 0, n: 1 }]);
  added(graced, { ts: 70_000 }); // 130 s − 60 s grace = 70 s: [60 s, 120 s) still open
  assert.equal(graced.late, 0);
  // by the clock: a window closes at its end + grace
  assert.deepEqual(graced.flush(179_999), []);
  assert.deepEqual(graced.flush(180_000), [{ window_start: 60_000, window_end: 120_000, ts: 60_000, n: 1 }]);
  assert.deepEqual(graced.flush(239_999), []);
  assert.equal(graced.flush(240_000).length, 1);
});

test('groups, arrival time, values that are not numbers, and the bounds', () => {
  const agg = new WindowAggregator({
    window: { type: 'tumbling', sizeMs: 1000 },
    groupBy: ['room'],
    fields: {
      n: { op: 'count' },
      readings: { op: 'count', field: 't' },
      avg: { op: 'mean', field: 't' },
      q: { op: 'percentile', field: 't', p: 25 },
    },
    timeField: 'at',
    maxOpen: 2,
  });
  added(agg, { room: 'kitchen', t: 20 }, 100); // no `at`: its arrival time
  added(agg, { at: 200, room: 'hall', t: 18 });
  added(agg, { at: 300, room: 'kitchen', t: 22 });
  added(agg, { at: 400, room: 'kitchen' }); // counted, no value
  const bad = agg.add({ at: 500, room: 'hall', t: '19' }, 0);
  assert.ok('error' in bad && bad.error === 't: "19" is not a number (cast it first, or drop the record)');
  const full = agg.add({ at: 600, room: 'attic', t: 1 }, 0);
  assert.ok('error' in full && /^too many open windows: 2/.test(full.error));
  assert.deepEqual(agg.flush(1000), [
    { window_start: 0, window_end: 1000, at: 0, room: 'kitchen', n: 3, readings: 2, avg: 21, q: 20.5 },
    { window_start: 0, window_end: 1000, at: 0, room: 'hall', n: 1, readings: 1, avg: 18, q: 18 },
  ]);
  assert.deepEqual(agg.flush(5000), []);

  const few = new WindowAggregator({
    window: { type: 'tumbling', sizeMs: 1000 },
    fields: { p: { op: 'p99', field: 'v' }, lo: { op: 'min', field: 'w' } },
    maxValues: 3,
  });
  for (const v of [1, 2, 3]) added(few, { ts: 10, v });
  const over = few.add({ ts: 10, v: 4 }, 0);
  assert.ok('error' in over && /too many values kept/.test(over.error));
  assert.deepEqual(few.flush(1000), [{ window_start: 0, window_end: 1000, ts: 0, p: 2.98, lo: null }]);
  // the closed window's values were given back: room for three more
  for (const v of [1, 2, 3]) added(few, { ts: 1500, v });
});

test('state() and restore(): a restart in the middle gives the same windows as an uninterrupted run', () => {
  const records = nabRecords().slice(0, 1000);
  const opts: WindowOptions = {
    window: { type: 'sliding', sizeMs: 2 * HOUR, slideMs: HOUR / 2 },
    fields: { n: { op: 'count' }, avg: { op: 'mean', field: 'value' }, p90: { op: 'p90', field: 'value' } },
  };
  const whole = new WindowAggregator(opts);
  const expected: PipelineRecord[] = [];
  for (const r of records) expected.push(...added(whole, r));
  expected.push(...whole.flush(Number.POSITIVE_INFINITY));

  const before = new WindowAggregator(opts);
  const got: PipelineRecord[] = [];
  for (const r of records.slice(0, 457)) got.push(...added(before, r));
  const saved = JSON.parse(JSON.stringify(before.state()));
  assert.ok(saved.buckets.length > 1);
  const after = new WindowAggregator(opts);
  after.restore(saved);
  assert.equal(after.open, before.open);
  for (const r of records.slice(457)) got.push(...added(after, r));
  got.push(...after.flush(Number.POSITIVE_INFINITY));
  assert.deepEqual(got, expected);
  assert.ok(expected.length > 160, `${expected.length} windows`); // 83 hours of readings, a window every 30 min
  // a late record is still late after the restart
  const again = new WindowAggregator(opts);
  again.restore(saved);
  assert.ok('error' in again.add(records[0]!, 0));

  assert.throws(
    () => after.restore({ v: 99, buckets: [] }),
    (e: unknown) => e instanceof TalonError && e.code === 'BAD_REQUEST' && /aggregate state/.test(e.message),
  );
});
