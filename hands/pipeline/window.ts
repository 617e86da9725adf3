/**
 * Windowed aggregates for the Data Pipeline Hand's `aggregate` transform (./transforms.ts): count, sum, min, max,
 * mean and percentiles of record fields over tumbling or sliding windows of record time, per group. In memory, no
 * I/O: state() and restore() let the Hand keep the open windows across a restart.
 *
 * Windows. A window is [start, start + sizeMs); starts are multiples of the slide (`slideMs`, = sizeMs for tumbling),
 * counted from the epoch, so a record belongs to every window whose start is in (t − sizeMs, t] — one when tumbling,
 * about sizeMs / slideMs when sliding (windows overlap; slideMs need not divide sizeMs).
 *
 * Time. A record's time is `record[timeField]`: ms since the epoch, or ISO 8601 text (`recordTime`); a record without
 * the field takes its arrival time (the `now` the caller passes). Text that is not a date is an error for the record.
 *
 * Closing. Event time drives it: a window closes when the latest record time seen, less `graceMs` (default 0), has
 * reached its end; add() answers the windows its record closed. flush(now) closes the windows whose end + graceMs is
 * at or before `now` (the Hand's clock: data that stopped coming). A closed window is emitted once, one record per
 * group: `{ window_start, window_end, [timeField]: window_start, …the groupBy fields, …the spec's fields }`, in order
 * of start, then of the group's first record.
 *
 * Late records. A record none of whose windows is still open (its last window ends at or before what was already
 * closed) is an error — it goes to the dead-letter queue with the reason, counted in `late`, never folded into a
 * window that was already emitted, never dropped without a trace. A record some of whose (sliding) windows closed
 * counts in the ones still open.
 *
 * Values. A field's value must be a number; null or missing is skipped for that field (the window's `count` without
 * a field still counts the record); anything else (text "12" included: cast it first) is an error for the record and
 * nothing of it is counted. With no values a window's sum and count are 0, its min, max, mean and percentiles null.
 *
 * Percentiles are exact, by rank over the window's kept values, interpolated linearly between the two nearest ranks:
 * numpy's default (`method='linear'`, Hyndman and Fan's type 7): h = (n − 1) × p / 100, x[⌊h⌋] + (h − ⌊h⌋) ×
 * (x[⌊h⌋+1] − x[⌊h⌋]). Values are kept only for fields with a percentile.
 *
 * Memory is bounded: at most `maxOpen` (window, group) pairs open (default 10 000) and `maxValues` kept values in all
 * (default 1 000 000); a record that would pass either is an error for that record.
 */
import { TalonError } from '../../runtime/core/errors.ts';
import type { AggregateField, AggregateWindow, PipelineRecord } from './types.ts';

export const DEFAULT_MAX_OPEN = 10_000;
export const DEFAULT_MAX_VALUES = 1_000_000;
const STATE_VERSION = 1;

/** The aggregate's settings as ./transforms.ts checked them. */
export interface WindowOptions {
  window: AggregateWindow;
  groupBy?: string[];
  fields: Record<string, AggregateField>;
  /** the record field holding its time (default "ts") */
  timeField?: string;
  graceMs?: number;
  maxOpen?: number;
  maxValues?: number;
}

interface FieldAcc {
  n: number;
  sum: number;
  min: number | null;
  max: number | null;
  values?: number[];
}

interface Bucket {
  start: number;
  group: unknown[];
  count: number;
  acc: Record<string, FieldAcc>;
}

/** What state() answers: plain JSON. */
export interface WindowState {
  v: number;
  maxEvent: number | null;
  closedBefore: number | null;
  late: number;
  buckets: Bucket[];
}

/** A record's time in ms: the field's number or ISO text, else `arrival`; a string when the field holds no time. */
export function recordTime(record: PipelineRecord, timeField: string, arrival: number): number | string {
  const v = record[timeField];
  if (v === undefined || v === null) return arrival;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  return `${timeField}: ${JSON.stringify(v)} is not a time (write ms since the epoch or ISO 8601 text)`;
}

/** The p-th percentile (0-100) of sorted values, linear between ranks (numpy's default); null when there are none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  const h = ((n - 1) * p) / 100;
  const lo = Math.floor(h);
  const a = sorted[lo]!;
  if (lo + 1 >= n) return a;
  return a + (h - lo) * (sorted[lo + 1]! - a);
}

const PERCENT: Record<string, number> = { p50: 50, p90: 90, p95: 95, p99: 99 };

/** the percentile an op asks for, undefined for the other ops */
export function percentOf(f: AggregateField): number | undefined {
  return f.op === 'percentile' ? f.p : PERCENT[f.op];
}

/** Open windows per group; see the file's comment. */
export class WindowAggregator {
  readonly #size: number;
  readonly #slide: number;
  readonly #groupBy: string[];
  readonly #fields: [string, AggregateField][];
  /** the record fields read, and whether their values are kept (a percentile asks for them) */
  readonly #sources: Map<string, boolean>;
  readonly #timeField: string;
  readonly #grace: number;
  readonly #maxOpen: number;
  readonly #maxValues: number;
  #buckets = new Map<string, Bucket>();
  #kept = 0;
  /** the earliest open window's start (null: none open): add() closes nothing without a scan while it is open */
  #earliest: number | null = null;
  #maxEvent: number | null = null;
  #closedBefore: number | null = null;
  #late = 0;

  constructor(opts: WindowOptions) {
    this.#size = opts.window.sizeMs;
    this.#slide = opts.window.type === 'sliding' ? (opts.window.slideMs ?? opts.window.sizeMs) : opts.window.sizeMs;
    this.#groupBy = opts.groupBy ?? [];
    this.#fields = Object.entries(opts.fields);
    this.#sources = new Map();
    for (const [, f] of this.#fields) {
      if (f.field === undefined) continue;
      const keep = percentOf(f) !== undefined;
      this.#sources.set(f.field, keep || (this.#sources.get(f.field) ?? false));
    }
    this.#timeField = opts.timeField ?? 'ts';
    this.#grace = opts.graceMs ?? 0;
    this.#maxOpen = opts.maxOpen ?? DEFAULT_MAX_OPEN;
    this.#maxValues = opts.maxValues ?? DEFAULT_MAX_VALUES;
  }

  /** records refused as late so far */
  get late(): number {
    return this.#late;
  }

  /** (window, group) pairs open */
  get open(): number {
    return this.#buckets.size;
  }

  /** The starts of the windows a time falls in, oldest first. */
  starts(t: number): number[] {
    const first = Math.floor((t - this.#size) / this.#slide) + 1;
    const last = Math.floor(t / this.#slide);
    const out: number[] = [];
    for (let k = first; k <= last; k++) out.push(k * this.#slide);
    return out;
  }

  /**
   * Counts a record (its time from the time field, else `arrival`) and answers the windows that closed because of it;
   * an error (nothing counted) for a record that is late, holds a value that is not a number, or passes a bound.
   */
  add(record: PipelineRecord, arrival: number): { out: PipelineRecord[] } | { error: string } {
    const t = recordTime(record, this.#timeField, arrival);
    if (typeof t === 'string') return { error: t };
    const values = new Map<string, number | undefined>();
    for (const field of this.#sources.keys()) {
      const v = record[field];
      if (v === undefined || v === null) values.set(field, undefined);
      else if (typeof v === 'number' && Number.isFinite(v)) values.set(field, v);
      else return { error: `${field}: ${JSON.stringify(v)} is not a number (cast it first, or drop the record)` };
    }
    const starts = this.starts(t).filter((s) => this.#closedBefore === null || s + this.#size > this.#closedBefore);
    if (starts.length === 0) {
      this.#late++;
      return {
        error:
          `late: ${this.#timeField} ${new Date(t).toISOString()} falls in windows already closed ` +
          `(closed up to ${new Date(this.#closedBefore!).toISOString()})`,
      };
    }
    const group = this.#groupBy.map((g) => record[g] ?? null);
    const groupKey = JSON.stringify(group);
    const keys = starts.map((s) => `${s}|${groupKey}`);
    const fresh = keys.filter((k) => !this.#buckets.has(k)).length;
    if (this.#buckets.size + fresh > this.#maxOpen)
      return {
        error: `too many open windows: ${this.#maxOpen} (window, group) pairs are open; fewer groups or shorter windows`,
      };
    let keep = 0;
    for (const [field, kept] of this.#sources) if (kept && values.get(field) !== undefined) keep += starts.length;
    if (this.#kept + keep > this.#maxValues)
      return { error: `too many values kept for percentiles: ${this.#maxValues} in the open windows` };
    this.#kept += keep;
    starts.forEach((start, i) => {
      let b = this.#buckets.get(keys[i]!);
      if (b === undefined) {
        b = { start, group, count: 0, acc: {} };
        for (const [field, kept] of this.#sources)
          b.acc[field] = { n: 0, sum: 0, min: null, max: null, ...(kept ? { values: [] } : {}) };
        this.#buckets.set(keys[i]!, b);
        if (this.#earliest === null || start < this.#earliest) this.#earliest = start;
      }
      b.count++;
      for (const [field, v] of values) {
        if (v === undefined) continue;
        const a = b.acc[field]!;
        a.n++;
        a.sum += v;
        a.min = a.min === null ? v : Math.min(a.min, v);
        a.max = a.max === null ? v : Math.max(a.max, v);
        a.values?.push(v);
      }
    });
    if (this.#maxEvent === null || t > this.#maxEvent) this.#maxEvent = t;
    return { out: this.#close(this.#maxEvent - this.#grace) };
  }

  /** Closes the windows whose end + graceMs is at or before `now`, and answers them. */
  flush(now: number): PipelineRecord[] {
    return this.#close(now - this.#grace);
  }

  /** The open windows and the clock's marks, as JSON. */
  state(): WindowState {
    return {
      v: STATE_VERSION,
      maxEvent: this.#maxEvent,
      closedBefore: this.#closedBefore,
      late: this.#late,
      buckets: [...this.#buckets.values()].map((b) => structuredClone(b)),
    };
  }

  /** Puts back what state() answered (replacing what is open); a value of another shape throws BAD_REQUEST. */
  restore(state: unknown): void {
    const s = state as WindowState;
    const num = (v: unknown): boolean => v === null || (typeof v === 'number' && Number.isFinite(v));
    if (
      typeof s !== 'object' ||
      s === null ||
      s.v !== STATE_VERSION ||
      !num(s.maxEvent) ||
      !num(s.closedBefore) ||
      !Array.isArray(s.buckets) ||
      !s.buckets.every(
        (b) =>
          typeof b === 'object' &&
          b !== null &&
          typeof b.start === 'number' &&
          Array.isArray(b.group) &&
          typeof b.count === 'number' &&
          typeof b.acc === 'object' &&
          b.acc !== null,
      )
    )
      throw new TalonError('BAD_REQUEST', `aggregate state: not what state() answers (version ${STATE_VERSION})`);
    this.#buckets = new Map();
    this.#kept = 0;
    for (const b of s.buckets) {
      const copy = structuredClone(b);
      this.#buckets.set(`${copy.start}|${JSON.stringify(copy.group)}`, copy);
      for (const a of Object.values(copy.acc)) this.#kept += a.values?.length ?? 0;
    }
    this.#earliest = this.#earliestOpen();
    this.#maxEvent = s.maxEvent;
    this.#closedBefore = s.closedBefore;
    this.#late = typeof s.late === 'number' ? s.late : 0;
  }

  #close(before: number): PipelineRecord[] {
    if (this.#closedBefore === null || before > this.#closedBefore) this.#closedBefore = before;
    if (this.#earliest === null || this.#earliest + this.#size > before) return [];
    const closed = [...this.#buckets.entries()].filter(([, b]) => b.start + this.#size <= before);
    // Map order is the order of creation: a stable sort by start keeps each group's first appearance within a start
    closed.sort(([, a], [, b]) => a.start - b.start);
    const out: PipelineRecord[] = [];
    for (const [key, b] of closed) {
      this.#buckets.delete(key);
      for (const a of Object.values(b.acc)) this.#kept -= a.values?.length ?? 0;
      out.push(this.#emit(b));
    }
    this.#earliest = this.#earliestOpen();
    return out;
  }

  #earliestOpen(): number | null {
    let min: number | null = null;
    for (const b of this.#buckets.values()) if (min === null || b.start < min) min = b.start;
    return min;
  }

  #emit(b: Bucket): PipelineRecord {
    const r: PipelineRecord = { window_start: b.start, window_end: b.start + this.#size, [this.#timeField]: b.start };
    this.#groupBy.forEach((g, i) => {
      r[g] = b.group[i];
    });
    const sorted = new Map<string, number[]>();
    for (const [name, f] of this.#fields) {
      const a = f.field === undefined ? undefined : b.acc[f.field];
      if (f.op === 'count') {
        r[name] = a === undefined ? b.count : a.n;
        continue;
      }
      if (a === undefined) continue; // the spec's checks make this unreachable: every other op names a field
      const p = percentOf(f);
      if (p !== undefined) {
        let xs = sorted.get(f.field!);
        if (xs === undefined) {
          xs = [...(a.values ?? [])].sort((x, y) => x - y);
          sorted.set(f.field!, xs);
        }
        r[name] = percentile(xs, p);
      } else if (f.op === 'sum') r[name] = a.sum;
      else if (f.op === 'min') r[name] = a.min;
      else if (f.op === 'max') r[name] = a.max;
      else if (f.op === 'mean') r[name] = a.n === 0 ? null : a.sum / a.n;
    }
    return r;
  }
}
