/**
 * Trend forecasting: an ordinary least-squares line through the recent (ts, value) points,
 * extrapolated to a limit: "disk.used reaches 95 % in 3 h 12 min". Pure.
 *
 * Times are centred on their mean before squaring (epoch ms squared overflows the 53-bit
 * mantissa into noise). The fit's R² gates the answer: a noisy, flat or wandering series
 * yields no forecast rather than a confident wrong one.
 */

export interface Trend {
  /** units per ms */
  slope: number;
  /** the fitted value at the last point's ts */
  fitted: number;
  r2: number;
  n: number;
  lastTs: number;
}

export function fitTrend(ts: ArrayLike<number>, values: ArrayLike<number>, from = 0, to = ts.length): Trend | null {
  const n = to - from;
  if (n < 3) return null;
  let mt = 0;
  let mv = 0;
  for (let i = from; i < to; i++) {
    mt += ts[i]!;
    mv += values[i]!;
  }
  mt /= n;
  mv /= n;
  let stt = 0;
  let stv = 0;
  let svv = 0;
  for (let i = from; i < to; i++) {
    const dt = ts[i]! - mt;
    const dv = values[i]! - mv;
    stt += dt * dt;
    stv += dt * dv;
    svv += dv * dv;
  }
  if (stt === 0) return null;
  const slope = stv / stt;
  const r2 = svv === 0 ? 1 : (stv * stv) / (stt * svv);
  const lastTs = ts[to - 1]!;
  return { slope, fitted: mv + slope * (lastTs - mt), r2, n, lastTs };
}

export interface Forecast {
  /** ms from the last point until the line crosses `limit`; Infinity when it never will */
  etaMs: number;
  trend: Trend;
  /** the limit is already crossed by the fitted line */
  crossed: boolean;
}

/**
 * When does the trend cross `limit`? Heading away from it (or flat) → Infinity. Which side the
 * limit is on is read from where the fitted line is now: a limit above the current level is
 * crossed by a rising series, one below by a falling series.
 */
export function timeToLimit(trend: Trend, limit: number): Forecast {
  const gap = limit - trend.fitted;
  if (gap === 0) return { etaMs: 0, trend, crossed: true };
  if (trend.slope === 0 || Math.sign(gap) !== Math.sign(trend.slope)) return { etaMs: Infinity, trend, crossed: false };
  return { etaMs: gap / trend.slope, trend, crossed: false };
}

/** "3 h 12 min", "45 s", "2 d 4 h" */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return 'never';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/**
 * A fixed-size trend window for one sensor: `slots` averaged points spanning `windowMs`, so a
 * 30-minute or a 30-day window costs the same memory whatever the sample rate.
 */
export class TrendBuffer {
  readonly windowMs: number;
  readonly slotMs: number;
  readonly ts: Float64Array;
  readonly values: Float64Array;
  #head = 0;
  #size = 0;
  #slot = NaN;
  #sum = 0;
  #n = 0;
  #sumT = 0;

  constructor(windowMs: number, slots = 120) {
    this.windowMs = windowMs;
    this.slotMs = Math.max(1, windowMs / slots);
    this.ts = new Float64Array(slots);
    this.values = new Float64Array(slots);
  }

  get size(): number {
    return this.#size;
  }

  add(ts: number, v: number): void {
    const slot = Math.floor(ts / this.slotMs);
    if (slot !== this.#slot) {
      this.#close();
      this.#slot = slot;
    }
    this.#sum += v;
    this.#sumT += ts;
    this.#n++;
  }

  #close(): void {
    if (this.#n === 0) return;
    const cap = this.ts.length;
    this.ts[this.#head] = this.#sumT / this.#n;
    this.values[this.#head] = this.#sum / this.#n;
    this.#head = (this.#head + 1) % cap;
    if (this.#size < cap) this.#size++;
    this.#sum = 0;
    this.#sumT = 0;
    this.#n = 0;
  }

  /** the closed points plus the open one, oldest first, within the window ending at the newest */
  points(): { ts: number[]; values: number[] } {
    const cap = this.ts.length;
    const ts: number[] = [];
    const values: number[] = [];
    for (let i = 0; i < this.#size; i++) {
      const j = (this.#head - this.#size + i + cap) % cap;
      ts.push(this.ts[j]!);
      values.push(this.values[j]!);
    }
    if (this.#n > 0) {
      ts.push(this.#sumT / this.#n);
      values.push(this.#sum / this.#n);
    }
    const newest = ts.at(-1);
    if (newest === undefined) return { ts, values };
    let k = 0;
    while (k < ts.length && ts[k]! < newest - this.windowMs) k++;
    return k === 0 ? { ts, values } : { ts: ts.slice(k), values: values.slice(k) };
  }

  /** the fitted trend over the window, or null with too few points */
  trend(): Trend | null {
    const p = this.points();
    return fitTrend(p.ts, p.values);
  }
}
