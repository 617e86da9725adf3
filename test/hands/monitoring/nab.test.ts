/**
 * NAB (Numenta Anomaly Benchmark) on the Monitoring Hand: the scorer against hand-computed
 * cases, then the whole stored subset (41 series, ~1.5 s) with floors at what was measured.
 * Skipped when the data set is not on this machine ($NAB_DIR, default /work/shared/datasets/nab).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nabAvailable, runNab, scaledSigmoid, scoreFile, summarise, table } from './nab-lib.ts';

test('NAB scorer: scaled sigmoid, first detection per window, FP weighting, null and perfect', () => {
  assert.ok(Math.abs(scaledSigmoid(-1) - 0.9866) < 1e-4);
  assert.equal(scaledSigmoid(0), 0);
  assert.equal(scaledSigmoid(3.5), -1);
  const ts = Array.from({ length: 1000 }, (_, i) => i * 1000);
  const win: Array<[number, number]> = [[500_000, 599_000]]; // rows 500..599, width 100
  // nothing detected: the null score
  const none = scoreFile(ts, new Set(), win);
  assert.equal(none.raw, -1);
  assert.equal(none.nullScore, -1);
  // detection at the window's first row: σ'(−(599 − 500 + 1)/100) = σ'(−1), the perfect score
  const first = scoreFile(ts, new Set([500, 550]), win);
  assert.ok(Math.abs(first.raw - scaledSigmoid(-1)) < 1e-12);
  assert.ok(Math.abs(first.perfect - scaledSigmoid(-1)) < 1e-12);
  // a false alert before the first window (after probation, row 150 of 1000) costs A_FP × 1
  const fp = scoreFile(ts, new Set([300]), win);
  assert.ok(Math.abs(fp.raw - (-1 - 0.11)) < 1e-12);
  assert.equal(fp.falseAlerts, 1);
  // in the probationary period (first 15 %): not scored
  assert.equal(scoreFile(ts, new Set([100]), win).raw, -1);
  // just after the window: σ'(|599 − 600| / 99) × 0.11
  const after = scoreFile(ts, new Set([600]), win);
  assert.ok(Math.abs(after.raw - (-1 + 0.11 * scaledSigmoid(1 / 99))) < 1e-12);
});

test("NAB standard score of the Hand's detectors stays at the measured floors", {
  skip: !nabAvailable() && 'NAB data not found',
}, () => {
  const scores = runNab();
  const sum = summarise(scores);
  console.log(table(sum));
  const by = Object.fromEntries(sum.map((s) => [s.category, s]));
  // measured (see BENCHMARKS.md): all 59.0, artificialWithAnomaly 33.8, realAWSCloudwatch 57.9,
  // realAdExchange 59.6, realTraffic 71.6; artificialNoAnomaly 5 onsets, 0 after probation
  const FLOOR: Record<string, number> = {
    all: 58.5,
    artificialWithAnomaly: 33,
    realAWSCloudwatch: 57,
    realAdExchange: 59,
    realTraffic: 71,
  };
  for (const [cat, floor] of Object.entries(FLOOR)) {
    const s = by[cat];
    assert.ok(
      s && s.score !== null && s.score >= floor,
      `${cat}: NAB standard score ${s?.score?.toFixed(1)} under the floor ${floor}`,
    );
  }
  const noAnomaly = scores.filter((s) => s.category === 'artificialNoAnomaly');
  assert.equal(
    noAnomaly.reduce((a, s) => a + s.falseAlerts, 0),
    0,
    'alerts on artificialNoAnomaly after the probationary period',
  );
  assert.ok(noAnomaly.reduce((a, s) => a + s.onsets, 0) <= 5, 'alert onsets on artificialNoAnomaly');
  assert.ok(by.all!.falsePer1000 <= 0.6, `false alerts per 1000 points: ${by.all!.falsePer1000}`);
  assert.ok(by.all!.recall! >= 0.69, `window recall ${by.all!.recall}`);
});
