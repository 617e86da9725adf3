/**
 * Detection quality on seeded, labelled series (drivers/sim/patterns.ts): the exact detector
 * code the Hand runs (SensorMonitor) is fed 1 Hz samples; its alert onsets are scored against
 * the injected anomalies. Shared by quality.test.ts (asserts floors) and the bench (prints).
 *
 * Scenario per seed (4 h at 1 Hz): a sine base (period 1 h) or a bounded random walk, uniform
 * noise, and injected: spikes (1–3 s), steps (a 5-min level shift, labelled `step`), stuck
 * intervals (90 s), dropouts (30 s) and one slow drift (1 h).
 *
 *   recall(kind)  = labelled anomalies of that kind with an onset of a matching rule in
 *                   [from, to + grace] / labelled anomalies of that kind;
 *   precision     = onsets inside some labelled interval (+ grace) / all onsets
 *                   (per rule and overall; clean stretches count against it).
 */
import { labels, makeSeries, type Label, type SeriesSpec } from '../../../drivers/sim/patterns.ts';
import { SensorMonitor } from '../../../hands/monitoring/monitor.ts';
import { defaultEntry, type SensorEntry } from '../../../hands/monitoring/settings.ts';
import { hash01 } from '../../../drivers/sim/patterns.ts';

export type Kind = 'spike' | 'step' | 'drift' | 'stuck' | 'dropout';
const KINDS: Kind[] = ['spike', 'step', 'drift', 'stuck', 'dropout'];

/** which rules count as detecting which kind */
const MATCH: Record<Kind, string[]> = {
  spike: ['anomaly'],
  step: ['anomaly'],
  drift: ['drift'],
  stuck: ['stuck'],
  dropout: ['missing'],
};
/** how long after a labelled interval ends an onset still belongs to it (ms) */
const GRACE: Record<Kind, number> = { spike: 2000, step: 60_000, drift: 30 * 60_000, stuck: 5000, dropout: 5000 };

export const DURATION_MS = 4 * 3_600_000;

export function scenario(seed: number): { spec: SeriesSpec; kinds: Kind[] } {
  const u = (i: number): number => hash01(seed, 9000, i);
  const walk = u(0) < 0.5;
  const noise = 0.3 + u(1) * 0.4;
  const amplitude = 2 + u(2) * 6;
  const base: SeriesSpec['base'] = walk
    ? { type: 'walk', start: 50, step: noise * 0.3, stepMs: 1000, min: 30, max: 70 }
    : { type: 'sine', mean: 50, amplitude, periodMs: 3_600_000 };
  const mag = (k: number): number => noise * (10 + u(k) * 10);
  const spec: SeriesSpec = {
    base,
    noise,
    noiseMs: 1000,
    anomalies: [
      {
        type: 'spike',
        magnitude: mag(3),
        direction: 'both',
        everyMs: 600_000,
        probability: 0.7,
        durationMs: 1000 + Math.floor(u(4) * 2) * 1000,
      },
      {
        type: 'spike',
        magnitude: mag(5),
        direction: 'both',
        everyMs: 1_800_000,
        probability: 0.8,
        durationMs: 300_000,
      },
      { type: 'stuck', everyMs: 900_000, probability: 0.6, durationMs: 90_000 },
      { type: 'dropout', everyMs: 900_000, probability: 0.6, durationMs: 30_000 },
      // a drift steeper than the sensor's own normal slopes (1.5–3 × the sine's steepest slope,
      // or the walk's typical 1-minute slope), lasting an hour; the offset stays afterwards
      {
        type: 'drift',
        startMs: 3_600_000 + Math.floor(u(6) * 3_600_000),
        ratePerHour: (u(7) < 0.5 ? -1 : 1) * (walk ? 40 * noise : 2 * Math.PI * amplitude) * (1.5 + u(8) * 1.5),
        durationMs: 3_600_000,
      },
    ],
  };
  return { spec, kinds: ['spike', 'step', 'stuck', 'dropout', 'drift'] };
}

export interface Onset {
  rule: string;
  t: number;
}

/** run the monitor over one series; `entry` defaults to the Hand's defaults at 1 Hz */
export function runSeries(spec: SeriesSpec, seed: number, entry?: SensorEntry): Onset[] {
  const series = makeSeries(spec, seed);
  const e = entry ?? { ...defaultEntry('sim'), intervalMs: 1000 };
  e.rules.missingAfterMs = 3 * e.intervalMs;
  const m = new SensorMonitor('sim', e, { startedAt: 0 });
  const onsets: Onset[] = [];
  for (let t = 0; t < DURATION_MS; t += 1000) {
    const v = series(t);
    const edges = v === null ? m.checkMissing(t) : [...m.checkMissing(t), ...m.sample(v, t)];
    for (const ed of edges) if (ed.op === 'raise') onsets.push({ rule: ed.input.rule, t });
  }
  return onsets;
}

export interface Score {
  recall: Record<Kind, number>;
  labelled: Record<Kind, number>;
  precision: number;
  precisionByRule: Record<string, number>;
  onsets: number;
  /** median samples from a step's start to its first onset */
  stepDelaySamples: number;
}

export function score(seeds: number[]): Score {
  const hit: Record<string, number> = {};
  const total: Record<string, number> = {};
  const tpRule: Record<string, number> = {};
  const allRule: Record<string, number> = {};
  const delays: number[] = [];
  let tp = 0;
  let all = 0;
  for (const seed of seeds) {
    const { spec } = scenario(seed);
    const onsets = runSeries(spec, seed);
    const labs = labels(spec, seed, 0, DURATION_MS).map((l: Label) => ({
      ...l,
      kind: (l.kind === 'spike' &&
      spec.anomalies![l.anomaly]!.type === 'spike' &&
      (spec.anomalies![l.anomaly] as { durationMs: number }).durationMs >= 60_000
        ? 'step'
        : l.kind) as Kind,
      to: Math.min(l.to, DURATION_MS),
    }));
    const masked = (l: { kind: Kind; from: number; to: number }): boolean =>
      l.kind === 'spike' &&
      labs.some((x) => (x.kind === 'stuck' || x.kind === 'dropout') && x.from < l.to && x.to > l.from);
    for (const l of labs) {
      if (masked(l)) continue; // a spike inside a stuck or dropout interval never reaches the data
      total[l.kind] = (total[l.kind] ?? 0) + 1;
      const first = onsets.find((o) => MATCH[l.kind].includes(o.rule) && o.t >= l.from && o.t <= l.to + GRACE[l.kind]);
      if (first) {
        hit[l.kind] = (hit[l.kind] ?? 0) + 1;
        if (l.kind === 'step') delays.push((first.t - l.from) / 1000);
      }
    }
    for (const o of onsets) {
      all++;
      allRule[o.rule] = (allRule[o.rule] ?? 0) + 1;
      if (labs.some((l) => MATCH[l.kind].includes(o.rule) && o.t >= l.from && o.t <= l.to + GRACE[l.kind])) {
        tp++;
        tpRule[o.rule] = (tpRule[o.rule] ?? 0) + 1;
      }
    }
  }
  const recall = {} as Record<Kind, number>;
  const labelled = {} as Record<Kind, number>;
  for (const k of KINDS) {
    labelled[k] = total[k] ?? 0;
    recall[k] = total[k] ? (hit[k] ?? 0) / total[k]! : 1;
  }
  const precisionByRule: Record<string, number> = {};
  for (const r of Object.keys(allRule)) precisionByRule[r] = (tpRule[r] ?? 0) / allRule[r]!;
  delays.sort((a, b) => a - b);
  return {
    recall,
    labelled,
    precision: all ? tp / all : 1,
    precisionByRule,
    onsets: all,
    stepDelaySamples: delays[Math.floor(delays.length / 2)] ?? NaN,
  };
}
