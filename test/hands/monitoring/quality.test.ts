/**
 * Detection quality of the Monitoring Hand's detectors on 24 seeded 4-hour series with
 * labelled spikes, steps, drift, stuck intervals and dropouts (see quality-lib.ts). The floors
 * are what was measured (with this code) minus a small margin; the seeds are fixed, so the
 * figures are exact and a drop means the detectors got worse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { score } from './quality-lib.ts';

const SEEDS = Array.from({ length: 24 }, (_, i) => 1000 + i);

// measured: recall spike 0.942, step 1, drift 0.458, stuck 1, dropout 1; precision 0.916
// (anomaly 0.888, drift 0.40, stuck 1, missing 1)
const RECALL_FLOOR = { spike: 0.92, step: 0.97, drift: 0.4, stuck: 0.97, dropout: 0.97 };
const PRECISION_FLOOR = 0.89;
const RULE_PRECISION_FLOOR: Record<string, number> = { anomaly: 0.86, drift: 0.35, stuck: 0.97, missing: 0.97 };

test('detection quality on seeded labelled series stays at or above the measured precision and recall', () => {
  const s = score(SEEDS);
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  console.log('| anomaly | labelled | recall |\n|---|---|---|');
  for (const [k, r] of Object.entries(s.recall))
    console.log(`| ${k} | ${s.labelled[k as keyof typeof s.labelled]} | ${pct(r)} |`);
  console.log(
    `precision ${pct(s.precision)} over ${s.onsets} alert onsets; by rule: ${Object.entries(s.precisionByRule)
      .map(([r, p]) => `${r} ${pct(p)}`)
      .join(', ')}; median step detection delay ${s.stepDelaySamples.toFixed(2)} samples`,
  );
  for (const [k, floor] of Object.entries(RECALL_FLOOR)) {
    assert.ok(
      s.recall[k as keyof typeof s.recall] >= floor,
      `recall of ${k} fell to ${pct(s.recall[k as keyof typeof s.recall])} (floor ${pct(floor)})`,
    );
  }
  assert.ok(s.precision >= PRECISION_FLOOR, `precision fell to ${pct(s.precision)} (floor ${pct(PRECISION_FLOOR)})`);
  for (const [r, floor] of Object.entries(RULE_PRECISION_FLOOR)) {
    assert.ok(
      (s.precisionByRule[r] ?? 0) >= floor,
      `precision of rule ${r} fell to ${pct(s.precisionByRule[r] ?? 0)} (floor ${pct(floor)})`,
    );
  }
  assert.ok(s.stepDelaySamples <= 2, `a step is detected ${s.stepDelaySamples} samples after it starts`);
});
