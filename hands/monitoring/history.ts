/**
 * Reading history, downsampled: raw → 1 min → 1 h, with retention limits, queryable by range.
 *
 *   raw     an in-memory ring per sensor (`rawPoints` samples, Float64Arrays: 16 bytes a
 *           sample); it feeds charts of the last minutes, forecasts and suggested fixes, and is
 *           not persisted (lost on restart, like the detectors' warm-up);
 *   1 min   min/max/avg/count per minute, in the store as one chunk per sensor per hour:
 *           `h/m/<sensor>/<hour start ms>` = [[t, min, max, avg, n], …] (≤ 60 points);
 *   1 h     per hour, one chunk per sensor per day: `h/h/<sensor>/<day start ms>` (≤ 24 points);
 *   index   `h/i/<sensor>` = { m: [chunk starts], h: [chunk starts] }: retention deletes
 *           exactly the chunks past `minuteRetentionMs` / `hourRetentionMs` without scans.
 *
 * A bucket closes when a sample from a later bucket arrives or when tick(now) sees its end
 * passed; the open chunk is rewritten (one put) at each minute close. Store writes are queued
 * one at a time; failures are counted, never thrown at the caller.
 */
import type { HandStore } from '../sdk/types.ts';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export type Resolution = 'raw' | '1m' | '1h' | 'auto';

/** one chart point: a raw sample has min = max = avg and n = 1 */
export interface Point {
  t: number;
  min: number;
  max: number;
  avg: number;
  n: number;
}

type Tuple = [t: number, min: number, max: number, avg: number, n: number];

export interface HistoryOptions {
  rawPoints: number;
  minuteRetentionMs: number;
  hourRetentionMs: number;
}

interface Bucket {
  t: number;
  min: number;
  max: number;
  sum: number;
  n: number;
}

interface Chunk {
  start: number;
  points: Tuple[];
}

interface Series {
  ts: Float64Array;
  v: Float64Array;
  head: number;
  size: number;
  minute: Bucket | null;
  hour: Bucket | null;
  mChunk: Chunk | null;
  hChunk: Chunk | null;
  index: { m: number[]; h: number[] };
}

const floorTo = (t: number, step: number): number => Math.floor(t / step) * step;

export class History {
  readonly store: HandStore;
  readonly opts: HistoryOptions;
  #series = new Map<string, Series>();
  #queue: Promise<void> = Promise.resolve();
  errors = 0;
  writes = 0;
  onError: (err: unknown) => void = () => {};

  constructor(store: HandStore, opts: HistoryOptions) {
    this.store = store;
    this.opts = opts;
  }

  #get(sensor: string): Series {
    let s = this.#series.get(sensor);
    if (!s) {
      const cap = this.opts.rawPoints;
      s = {
        ts: new Float64Array(cap),
        v: new Float64Array(cap),
        head: 0,
        size: 0,
        minute: null,
        hour: null,
        mChunk: null,
        hChunk: null,
        index: { m: [], h: [] },
      };
      this.#series.set(sensor, s);
    }
    return s;
  }

  #enqueue(fn: () => Promise<void>): void {
    this.#queue = this.#queue.then(fn).then(
      () => {
        this.writes++;
      },
      (err: unknown) => {
        this.errors++;
        this.onError(err);
      },
    );
  }

  /** wait for the queued store writes */
  flush(): Promise<void> {
    return this.#queue;
  }

  /** load a sensor's index and open chunks (after a restart), pruning what expired meanwhile */
  async load(sensor: string, now: number): Promise<void> {
    const s = this.#get(sensor);
    const index = await this.store.get<{ m: number[]; h: number[] }>(`h/i/${sensor}`);
    if (index && Array.isArray(index.m) && Array.isArray(index.h))
      s.index = { m: index.m.filter(Number.isFinite), h: index.h.filter(Number.isFinite) };
    const lastM = s.index.m.at(-1);
    if (lastM !== undefined && lastM === floorTo(now, HOUR)) {
      const pts = await this.store.get<Tuple[]>(`h/m/${sensor}/${lastM}`);
      s.mChunk = { start: lastM, points: Array.isArray(pts) ? pts : [] };
    }
    const lastH = s.index.h.at(-1);
    if (lastH !== undefined && lastH === floorTo(now, DAY)) {
      const pts = await this.store.get<Tuple[]>(`h/h/${sensor}/${lastH}`);
      s.hChunk = { start: lastH, points: Array.isArray(pts) ? pts : [] };
    }
    this.#prune(sensor, s, now);
  }

  add(sensor: string, ts: number, v: number): void {
    const s = this.#get(sensor);
    const cap = s.ts.length;
    s.ts[s.head] = ts;
    s.v[s.head] = v;
    s.head = (s.head + 1) % cap;
    if (s.size < cap) s.size++;

    const mt = floorTo(ts, MINUTE);
    if (s.minute && mt > s.minute.t) this.#closeMinute(sensor, s);
    if (s.minute && mt < s.minute.t) return; // out of order and older than the open minute: raw only
    if (!s.minute) s.minute = { t: mt, min: v, max: v, sum: v, n: 1 };
    else {
      if (v < s.minute.min) s.minute.min = v;
      if (v > s.minute.max) s.minute.max = v;
      s.minute.sum += v;
      s.minute.n++;
    }
  }

  /** close buckets whose time is over even if no new sample came */
  tick(now: number): void {
    for (const [sensor, s] of this.#series) {
      if (s.minute && now >= s.minute.t + MINUTE) this.#closeMinute(sensor, s);
      if (s.hour && now >= s.hour.t + HOUR) this.#closeHour(sensor, s);
    }
  }

  #closeMinute(sensor: string, s: Series): void {
    const b = s.minute!;
    s.minute = null;
    const point: Tuple = [b.t, b.min, b.max, b.sum / b.n, b.n];
    const start = floorTo(b.t, HOUR);
    if (!s.mChunk || s.mChunk.start !== start) {
      s.mChunk = { start, points: [] };
      s.index.m.push(start);
      this.#prune(sensor, s, b.t);
      this.#saveIndex(sensor, s);
    }
    const pts = s.mChunk.points;
    if (pts.length > 0 && pts[pts.length - 1]![0] === b.t) pts[pts.length - 1] = merge(pts[pts.length - 1]!, point);
    else pts.push(point);
    const key = `h/m/${sensor}/${start}`;
    const snapshot = pts.slice();
    this.#enqueue(() => this.store.put(key, snapshot));

    // roll into the hour bucket
    const ht = floorTo(b.t, HOUR);
    if (s.hour && ht > s.hour.t) this.#closeHour(sensor, s);
    if (!s.hour) s.hour = { t: ht, min: b.min, max: b.max, sum: b.sum, n: b.n };
    else if (ht === s.hour.t) {
      if (b.min < s.hour.min) s.hour.min = b.min;
      if (b.max > s.hour.max) s.hour.max = b.max;
      s.hour.sum += b.sum;
      s.hour.n += b.n;
    }
  }

  #closeHour(sensor: string, s: Series): void {
    const b = s.hour!;
    s.hour = null;
    const point: Tuple = [b.t, b.min, b.max, b.sum / b.n, b.n];
    const start = floorTo(b.t, DAY);
    if (!s.hChunk || s.hChunk.start !== start) {
      s.hChunk = { start, points: [] };
      s.index.h.push(start);
      this.#prune(sensor, s, b.t);
      this.#saveIndex(sensor, s);
    }
    const pts = s.hChunk.points;
    if (pts.length > 0 && pts[pts.length - 1]![0] === b.t) pts[pts.length - 1] = merge(pts[pts.length - 1]!, point);
    else pts.push(point);
    const key = `h/h/${sensor}/${start}`;
    const snapshot = pts.slice();
    this.#enqueue(() => this.store.put(key, snapshot));
  }

  /** delete chunks that lie entirely before the retention window */
  #prune(sensor: string, s: Series, now: number): void {
    const dropM = s.index.m.filter((start) => start + HOUR <= now - this.opts.minuteRetentionMs);
    const dropH = s.index.h.filter((start) => start + DAY <= now - this.opts.hourRetentionMs);
    if (dropM.length === 0 && dropH.length === 0) return;
    s.index.m = s.index.m.filter((x) => !dropM.includes(x));
    s.index.h = s.index.h.filter((x) => !dropH.includes(x));
    for (const start of dropM) this.#enqueue(() => this.store.del(`h/m/${sensor}/${start}`));
    for (const start of dropH) this.#enqueue(() => this.store.del(`h/h/${sensor}/${start}`));
    this.#saveIndex(sensor, s);
  }

  #saveIndex(sensor: string, s: Series): void {
    const index = { m: s.index.m.slice(), h: s.index.h.slice() };
    this.#enqueue(() => this.store.put(`h/i/${sensor}`, index));
  }

  /** the last raw samples, oldest first (all of them, or those at or after `since`) */
  recent(sensor: string, since = -Infinity): { ts: number[]; values: number[] } {
    const s = this.#series.get(sensor);
    const ts: number[] = [];
    const values: number[] = [];
    if (!s) return { ts, values };
    const cap = s.ts.length;
    for (let i = 0; i < s.size; i++) {
      const j = (s.head - s.size + i + cap) % cap;
      if (s.ts[j]! >= since) {
        ts.push(s.ts[j]!);
        values.push(s.v[j]!);
      }
    }
    return { ts, values };
  }

  /** the raw ring as views for a forecast fit, oldest first, without copying when possible */
  rawSpan(sensor: string): { first: number; last: number; size: number } | null {
    const s = this.#series.get(sensor);
    if (!s || s.size === 0) return null;
    const cap = s.ts.length;
    return { first: s.ts[(s.head - s.size + cap) % cap]!, last: s.ts[(s.head - 1 + cap) % cap]!, size: s.size };
  }

  sensors(): string[] {
    return [...this.#series.keys()];
  }

  /**
   * Points of one sensor in [from, to], at a resolution ('auto': raw if the ring covers
   * `from`, 1 min within the minute retention, else 1 h), at most maxPoints (adjacent points
   * merged when there are more).
   */
  async query(
    sensor: string,
    from: number,
    to: number,
    resolution: Resolution = 'auto',
    maxPoints = 1000,
    now = Date.now(),
  ): Promise<{ resolution: Exclude<Resolution, 'auto'>; points: Point[] }> {
    const s = this.#series.get(sensor);
    let res = resolution;
    if (res === 'auto') {
      const span = this.rawSpan(sensor);
      if (span && from >= span.first) res = 'raw';
      else if (from >= now - this.opts.minuteRetentionMs) res = '1m';
      else res = '1h';
    }
    let points: Point[] = [];
    if (res === 'raw') {
      const r = this.recent(sensor, from);
      for (let i = 0; i < r.ts.length; i++)
        if (r.ts[i]! <= to) points.push({ t: r.ts[i]!, min: r.values[i]!, max: r.values[i]!, avg: r.values[i]!, n: 1 });
    } else {
      await this.flush();
      const step = res === '1m' ? HOUR : DAY;
      const kind = res === '1m' ? 'm' : 'h';
      const starts = s ? (kind === 'm' ? s.index.m : s.index.h) : [];
      for (const start of starts) {
        if (start + step <= from || start > to) continue;
        const open = kind === 'm' ? s?.mChunk : s?.hChunk;
        const pts =
          open && open.start === start ? open.points : await this.store.get<Tuple[]>(`h/${kind}/${sensor}/${start}`);
        if (!Array.isArray(pts)) continue;
        for (const p of pts)
          if (p[0] >= from && p[0] <= to) points.push({ t: p[0], min: p[1], max: p[2], avg: p[3], n: p[4] });
      }
      const b = kind === 'm' ? s?.minute : s?.hour; // the bucket still open
      if (b && b.t >= from && b.t <= to) points.push({ t: b.t, min: b.min, max: b.max, avg: b.sum / b.n, n: b.n });
      points.sort((x, y) => x.t - y.t);
    }
    if (points.length > maxPoints) points = thin(points, maxPoints);
    return { resolution: res, points };
  }
}

function merge(a: Tuple, b: Tuple): Tuple {
  const n = a[4] + b[4];
  return [a[0], Math.min(a[1], b[1]), Math.max(a[2], b[2]), (a[3] * a[4] + b[3] * b[4]) / n, n];
}

function thin(points: Point[], max: number): Point[] {
  const per = Math.ceil(points.length / max);
  const out: Point[] = [];
  for (let i = 0; i < points.length; i += per) {
    let min = Infinity;
    let maxv = -Infinity;
    let sum = 0;
    let n = 0;
    for (let j = i; j < Math.min(points.length, i + per); j++) {
      const p = points[j]!;
      if (p.min < min) min = p.min;
      if (p.max > maxv) maxv = p.max;
      sum += p.avg * p.n;
      n += p.n;
    }
    out.push({ t: points[i]!.t, min, max: maxv, avg: sum / n, n });
  }
  return out;
}
