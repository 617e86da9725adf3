/**
 * Deterministic, seeded signal patterns for simulated sensors, demos and labelled test
 * series. A series is a pure function of time: `makeSeries(spec, seed)(t)` gives the same
 * value for the same (spec, seed, t) in any order of calls, and `labels(spec, seed, from, to)`
 * lists exactly the anomalies the series injects in [from, to), so a detector's output can
 * be scored (precision/recall) against them.
 *
 * Time `t` is in ms since the series' origin (the SimDriver uses ms since its start).
 *
 *   value(t) = base(t) + noise(t) + Σ drift(t) + Σ spike(t)
 *   then a `stuck` interval freezes the value at the interval's start,
 *   then a `dropout` interval answers null (no value).
 *
 * Random events (spikes, stuck, dropouts) are placed per slot of `everyMs`: in slot k an
 * event happens with `probability` at an offset drawn from hash(seed, anomaly, k), and it
 * lies wholly inside its slot, so evaluating any t touches one slot: O(1), no state.
 * Only the random walk is path-dependent; it keeps checkpoints so any t is cheap.
 */
import { TalonError } from '../../runtime/core/errors.ts';
import type { AnomalySpec, BaseSpec, SeriesSpec } from './schema.ts';

// ---- PRNG ---------------------------------------------------------------------------

/** mulberry32: a small, fast 32-bit PRNG; same seed, same sequence. Returns [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stateless hash of (seed, stream, index) to [0, 1): random access into a seeded stream. */
export function hash01(seed: number, stream: number, index: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0;
  // fold both 32-bit halves of the index so negative and large indexes differ
  const lo = index >>> 0;
  const hi = Math.floor(index / 4294967296) >>> 0;
  h = Math.imul(h ^ lo, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13) ^ hi, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

// ---- specs --------------------------------------------------------------------------

// The spec types are derived from their JSON Schema (./schema.ts, documented there).
export type { BaseSpec, AnomalySpec, SeriesSpec } from './schema.ts';

/** When random events happen: explicit start times, or at most one per `everyMs` slot. */
export type EventTiming = Omit<Extract<AnomalySpec, { type: 'stuck' }>, 'type'>;

export type LabelKind = 'spike' | 'stuck' | 'dropout' | 'drift';

/** An injected anomaly: [from, to) in ms since origin. */
export interface Label {
  kind: LabelKind;
  from: number;
  to: number;
  /** index of the anomaly spec in spec.anomalies */
  anomaly: number;
}

export type Series = (t: number) => number | null;

// ---- validation ---------------------------------------------------------------------

function bad(msg: string): never {
  throw new TalonError('CONFIG_INVALID', `sim pattern: ${msg}`);
}
function finite(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${what} must be a finite number (got ${String(v)})`);
  return v;
}
function positive(v: unknown, what: string): number {
  if (finite(v, what) <= 0) bad(`${what} must be > 0 (got ${String(v)})`);
  return v as number;
}

/** Throws CONFIG_INVALID with a clear message when a spec cannot make a series. */
export function validateSpec(spec: SeriesSpec): void {
  if (typeof spec !== 'object' || spec === null || typeof spec.base !== 'object' || spec.base === null)
    bad('spec needs a base');
  const b = spec.base;
  switch (b.type) {
    case 'constant':
      finite(b.value, 'constant.value');
      break;
    case 'sine':
      finite(b.mean, 'sine.mean');
      finite(b.amplitude, 'sine.amplitude');
      positive(b.periodMs, 'sine.periodMs');
      if (b.phase !== undefined) finite(b.phase, 'sine.phase');
      break;
    case 'walk':
      finite(b.start, 'walk.start');
      finite(b.step, 'walk.step');
      positive(b.stepMs, 'walk.stepMs');
      if (b.min !== undefined) finite(b.min, 'walk.min');
      if (b.max !== undefined) finite(b.max, 'walk.max');
      if (b.min !== undefined && b.max !== undefined && !(b.min < b.max)) bad('walk.min must be < walk.max');
      if (b.min !== undefined && b.start < b.min) bad('walk.start must be >= walk.min');
      if (b.max !== undefined && b.start > b.max) bad('walk.start must be <= walk.max');
      break;
    case 'steps':
      positive(b.holdMs, 'steps.holdMs');
      if (!Array.isArray(b.levels) || b.levels.length === 0) bad('steps.levels must be a non-empty array');
      b.levels.forEach((l, i) => finite(l, `steps.levels[${i}]`));
      break;
    default:
      bad(`unknown base type ${String((b as { type: unknown }).type)}`);
  }
  if (spec.noise !== undefined && finite(spec.noise, 'noise') < 0) bad('noise must be >= 0');
  if (spec.noiseMs !== undefined) positive(spec.noiseMs, 'noiseMs');
  (spec.anomalies ?? []).forEach((a, i) => {
    const w = `anomalies[${i}]`;
    if (a.type === 'drift') {
      finite(a.startMs, `${w}.startMs`);
      finite(a.ratePerHour, `${w}.ratePerHour`);
      if (a.durationMs !== undefined) positive(a.durationMs, `${w}.durationMs`);
      return;
    }
    if (a.type !== 'spike' && a.type !== 'stuck' && a.type !== 'dropout')
      bad(`${w}: unknown anomaly type ${String((a as { type: unknown }).type)}`);
    if (a.type === 'spike') finite(a.magnitude, `${w}.magnitude`);
    const d = positive(a.durationMs, `${w}.durationMs`);
    if (a.at !== undefined) {
      if (!Array.isArray(a.at)) bad(`${w}.at must be an array`);
      a.at.forEach((s, j) => finite(s, `${w}.at[${j}]`));
    } else {
      const every = positive(a.everyMs ?? 60_000, `${w}.everyMs`);
      if (d >= every) bad(`${w}.durationMs (${d}) must be < everyMs (${every})`);
      const p = finite(a.probability ?? 1, `${w}.probability`);
      if (p < 0 || p > 1) bad(`${w}.probability must be within 0..1`);
    }
  });
}

// ---- events -------------------------------------------------------------------------

type Timed = Extract<AnomalySpec, EventTiming>;

/** The event of a slotted anomaly whose interval contains t, or null. */
function eventAt(a: Timed, seed: number, index: number, t: number): { from: number; to: number; slot: number } | null {
  if (a.at) {
    for (let j = 0; j < a.at.length; j++) {
      const s = a.at[j]!;
      if (t >= s && t < s + a.durationMs) return { from: s, to: s + a.durationMs, slot: j };
    }
    return null;
  }
  const every = a.everyMs ?? 60_000;
  const k = Math.floor(t / every);
  const ev = slotEvent(a, seed, index, k);
  return ev && t >= ev.from && t < ev.to ? ev : null;
}

function slotEvent(
  a: Timed,
  seed: number,
  index: number,
  k: number,
): { from: number; to: number; slot: number } | null {
  const every = a.everyMs ?? 60_000;
  const p = a.probability ?? 1;
  if (hash01(seed, 1000 + index * 4, k) >= p) return null;
  const from = k * every + Math.floor(hash01(seed, 1001 + index * 4, k) * (every - a.durationMs));
  return { from, to: from + a.durationMs, slot: k };
}

const LABEL_KIND: Record<AnomalySpec['type'], LabelKind> = {
  spike: 'spike',
  stuck: 'stuck',
  dropout: 'dropout',
  drift: 'drift',
};

/** At most this many slots are scanned by labels(); a wider window is an error. */
export const MAX_LABEL_SLOTS = 5_000_000;

/**
 * The anomalies the series for (spec, seed) injects that overlap [from, to), sorted by
 * start. Intervals are not clipped: a label keeps its true [from, to) even where it
 * sticks out of the window. A drift without durationMs ends at Infinity.
 */
export function labels(spec: SeriesSpec, seed: number, from: number, to: number): Label[] {
  validateSpec(spec);
  const out: Label[] = [];
  (spec.anomalies ?? []).forEach((a, index) => {
    if (a.type === 'drift') {
      const end = a.durationMs === undefined ? Infinity : a.startMs + a.durationMs;
      if (a.startMs < to && end > from) out.push({ kind: 'drift', from: a.startMs, to: end, anomaly: index });
      return;
    }
    if (a.at) {
      for (const s of a.at)
        if (s < to && s + a.durationMs > from)
          out.push({ kind: LABEL_KIND[a.type], from: s, to: s + a.durationMs, anomaly: index });
      return;
    }
    const every = a.everyMs ?? 60_000;
    const k0 = Math.floor(from / every);
    const k1 = Math.floor((to - 1) / every);
    if (k1 - k0 > MAX_LABEL_SLOTS)
      throw new TalonError(
        'BAD_REQUEST',
        `sim labels: window of ${k1 - k0} slots is too wide (max ${MAX_LABEL_SLOTS})`,
      );
    for (let k = k0; k <= k1; k++) {
      const ev = slotEvent(a, seed, index, k);
      if (ev && ev.from < to && ev.to > from)
        out.push({ kind: LABEL_KIND[a.type], from: ev.from, to: ev.to, anomaly: index });
    }
  });
  return out.sort((x, y) => x.from - y.from || x.anomaly - y.anomaly);
}

// ---- series -------------------------------------------------------------------------

function makeBase(b: BaseSpec, seed: number): (t: number) => number {
  switch (b.type) {
    case 'constant':
      return () => b.value;
    case 'sine':
      return (t) => b.mean + b.amplitude * Math.sin((2 * Math.PI * t) / b.periodMs + (b.phase ?? 0));
    case 'steps':
      return (t) => {
        const n = b.levels.length;
        const i = ((Math.floor(t / b.holdMs) % n) + n) % n;
        return b.levels[i]!;
      };
    case 'walk':
      return makeWalk(b, seed);
  }
}

const CHECKPOINT_EVERY = 1024;

/** A reflected random walk with random access: checkpoints every 1024 steps. */
function makeWalk(b: Extract<BaseSpec, { type: 'walk' }>, seed: number): (t: number) => number {
  const lo = b.min ?? -Infinity;
  const hi = b.max ?? Infinity;
  const checkpoints: number[] = [b.start]; // value after k·CHECKPOINT_EVERY steps
  const stepOnce = (v: number, i: number): number => {
    let x = v + (hash01(seed, 7, i) * 2 - 1) * b.step;
    // reflect into [lo, hi] (a step never exceeds the range twice unless step > range)
    for (let guard = 0; guard < 8 && (x < lo || x > hi); guard++) x = x < lo ? 2 * lo - x : 2 * hi - x;
    return Math.min(hi, Math.max(lo, x));
  };
  return (t) => {
    const n = Math.max(0, Math.floor(t / b.stepMs));
    const c = Math.floor(n / CHECKPOINT_EVERY);
    while (checkpoints.length <= c) {
      const k = checkpoints.length - 1;
      let v = checkpoints[k]!;
      for (let i = k * CHECKPOINT_EVERY; i < (k + 1) * CHECKPOINT_EVERY; i++) v = stepOnce(v, i);
      checkpoints.push(v);
    }
    let v = checkpoints[c]!;
    for (let i = c * CHECKPOINT_EVERY; i < n; i++) v = stepOnce(v, i);
    return v;
  };
}

/** The series for (spec, seed): value at t (ms since origin), or null during a dropout. */
export function makeSeries(spec: SeriesSpec, seed: number): Series {
  validateSpec(spec);
  const base = makeBase(spec.base, seed);
  const noise = spec.noise ?? 0;
  const noiseMs = spec.noiseMs ?? 1000;
  const anomalies = (spec.anomalies ?? []).map((a, index) => ({ a, index }));
  const additive = anomalies.filter(({ a }) => a.type === 'spike' || a.type === 'drift');
  const stuck = anomalies.filter(({ a }) => a.type === 'stuck') as { a: Timed; index: number }[];
  const dropouts = anomalies.filter(({ a }) => a.type === 'dropout') as { a: Timed; index: number }[];

  const raw = (t: number): number => {
    let v = base(t);
    if (noise > 0) v += (hash01(seed, 3, Math.floor(t / noiseMs)) * 2 - 1) * noise;
    for (const { a, index } of additive) {
      if (a.type === 'drift') {
        if (t >= a.startMs) v += (a.ratePerHour * Math.min(t - a.startMs, a.durationMs ?? Infinity)) / 3_600_000;
      } else if (a.type === 'spike') {
        const ev = eventAt(a, seed, index, t);
        if (ev) {
          const dir = a.direction ?? 'up';
          const sign = dir === 'up' ? 1 : dir === 'down' ? -1 : hash01(seed, 1002 + index * 4, ev.slot) < 0.5 ? -1 : 1;
          v += sign * Math.abs(a.magnitude);
        }
      }
    }
    return v;
  };

  return (t: number): number | null => {
    if (!Number.isFinite(t)) return null;
    for (const { a, index } of dropouts) if (eventAt(a, seed, index, t)) return null;
    for (const { a, index } of stuck) {
      const ev = eventAt(a, seed, index, t);
      if (ev) return raw(ev.from);
    }
    return raw(t);
  };
}

/** Named presets for configs and demos (`pattern: "cpu-like"` style shortcuts). */
export const PRESETS: Record<string, SeriesSpec> = {
  temperature: { base: { type: 'sine', mean: 21, amplitude: 3, periodMs: 600_000 }, noise: 0.2 },
  humidity: { base: { type: 'walk', start: 50, step: 0.5, stepMs: 1000, min: 20, max: 90 } },
  load: {
    base: { type: 'walk', start: 20, step: 3, stepMs: 1000, min: 0, max: 100 },
    anomalies: [{ type: 'spike', magnitude: 60, everyMs: 120_000, probability: 0.5, durationMs: 5_000 }],
  },
  door: { base: { type: 'steps', levels: [0, 1], holdMs: 30_000 } },
};
