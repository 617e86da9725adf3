/**
 * The Data Pipeline Hand's declarative transforms: a transform spec (./types.ts, as ./config.ts checked it) compiled
 * once at load into a `Transform` that takes records one at a time. Pure and in memory: no I/O, no clock but the
 * `now` the Hand passes. Code transforms (`type: 'code'`) are not here: ./sandbox.ts runs them in QuickJS.
 *
 *   map      { out: 'in.path' }: a new record of only those fields (a missing one is left out)
 *   rename   { from: to }: the rest kept; `to` is overwritten if it exists; a missing `from` is no change
 *   cast     { field: number|integer|string|boolean|timestamp }: see `castValue`; null and missing are left alone
 *   filter   a JSONata expression; the record passes when it is truthy by JSONata's rules ($boolean)
 *   drop     [field…]
 *   derive   { name: JSONata }: in the spec's order, each seeing the fields set before it; a result of nothing
 *            (undefined) removes the field; a function is an error
 *   dedupe   key fields + windowMs: a record whose key was first seen less than windowMs ago (the Hand's clock) is
 *            dropped (`{ out: [] }`, counted in stats().duplicates); the window counts from the first sighting, a
 *            duplicate does not extend it. At most `maxKeys` keys remembered (default 10 000): past that the oldest
 *            is forgotten (stats().evicted) — a duplicate of an evicted key passes. A missing key field is an error.
 *   aggregate windows over record time: ./window.ts (late records are errors; flush(now) closes windows by the clock)
 *   convert  { field, from, to }: ./units.ts; a value that is not a number is an error (cast it first)
 *   validate a JSON Schema (ajv, the `check` preset: no defaults filled, the record is not changed); the errors name
 *            the record's fields (`/temp must be number`)
 *
 * Fields are dotted paths (`a.b` is `record.a.b`); `__proto__`, `constructor` and `prototype` are refused as path
 * segments. A transform never changes the record it is given (the Hand keeps it for the dead-letter queue).
 *
 * Errors. A bad spec throws TalonError('BAD_REQUEST') at compile, naming the field from `opts.path`
 * (`pipelines.p1.transforms.clean.expr: JSONata syntax error at character 9: …`). A record the transform cannot
 * take answers `{ error }` (the Hand sends it to the dead-letter queue with the stage and the original); process()
 * does not reject for a record's fault.
 *
 * JSONata (jsonata 2, whose evaluate is async) is compiled with its own guardrails: `timeout` (checked by the
 * evaluator at every step: an expression running past `exprTimeoutMs`, default 50 ms, fails with D1012, reported as
 * a timeout), `stack` (depth 1000) and `sequence` (no sequence or range longer than 1 000 000 items, so a single
 * built-in over a huge range, which the step check cannot interrupt, stays bounded). The cap is per expression.
 */
import jsonata from 'jsonata';
import { createAjv, fieldErrors } from '../../runtime/core/ajv.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { AggregateField, CastType, PipelineRecord, TransformSpec } from './types.ts';
import { unitConverter } from './units.ts';
import { WindowAggregator } from './window.ts';

/** What a transform answers for one record: the records it passes on (none, one or more), or why it failed it. */
export type StageResult = { out: PipelineRecord[] } | { error: string };

export interface Transform {
  readonly type: string;
  process(record: PipelineRecord): Promise<StageResult>;
  /** (aggregate) the windows that closed by `now` */
  flush?(now: number): PipelineRecord[];
  /** (aggregate, dedupe) what to persist across a restart: plain JSON */
  state?(): unknown;
  /** (aggregate, dedupe) puts back what state() answered; another shape throws BAD_REQUEST */
  restore?(state: unknown): void;
  /** counters: duplicates, evicted (dedupe), late, open (aggregate) */
  stats?(): Record<string, number>;
}

export interface CompileOptions {
  /** the Hand's clock (ms): dedupe's window, a record's arrival time (default Date.now) */
  now?: () => number;
  /** the pipeline's time field (default "ts"); an aggregate's own `timeField` wins */
  timeField?: string;
  /** where the spec sits, for error messages (default "transform") */
  path?: string;
  /** the time cap of one JSONata evaluation (default 50 ms) */
  exprTimeoutMs?: number;
}

export const DEFAULT_EXPR_TIMEOUT_MS = 50;
export const DEFAULT_DEDUPE_MAX_KEYS = 10_000;
const EXPR_STACK = 1000;
const EXPR_SEQUENCE = 1_000_000;
const CAST_TYPES: readonly CastType[] = ['number', 'integer', 'string', 'boolean', 'timestamp'];
const OPS = ['count', 'sum', 'min', 'max', 'mean', 'p50', 'p90', 'p95', 'p99', 'percentile'];
const TYPES = ['map', 'rename', 'cast', 'filter', 'drop', 'derive', 'dedupe', 'aggregate', 'convert', 'validate'];
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

const bad = (path: string, message: string): TalonError => new TalonError('BAD_REQUEST', `${path}: ${message}`);
const show = (v: unknown): string =>
  v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? String(v) : (JSON.stringify(v) ?? String(v));

// ---------------------------------------------------------------- paths

function checkPath(field: unknown, path: string): string[] {
  if (typeof field !== 'string' || field === '')
    throw bad(path, `write a field name (a dotted path), not ${show(field)}`);
  const parts = field.split('.');
  if (parts.some((p) => p === '')) throw bad(path, `${show(field)} has an empty segment`);
  const evil = parts.find((p) => FORBIDDEN.has(p));
  if (evil !== undefined) throw bad(path, `${show(field)}: "${evil}" cannot be a field name`);
  return parts;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function getPath(record: unknown, parts: readonly string[]): unknown {
  let v = record;
  for (const p of parts) {
    if (!isObject(v) || !Object.hasOwn(v, p)) return undefined;
    v = v[p];
  }
  return v;
}

function setPath(record: PipelineRecord, parts: readonly string[], value: unknown): void {
  let o = record;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(o[p])) o[p] = {};
    o = o[p] as PipelineRecord;
  }
  const last = parts.at(-1)!;
  if (value === undefined) delete o[last];
  else o[last] = value;
}

function deletePath(record: PipelineRecord, parts: readonly string[]): void {
  const parent = parts.length === 1 ? record : getPath(record, parts.slice(0, -1));
  if (isObject(parent)) delete parent[parts.at(-1)!];
}

// ---------------------------------------------------------------- JSONata

interface JsonataError {
  code?: string;
  position?: number;
  message?: string;
}

/** null when the expression compiles, else the error with its position (for ./config.ts's check at load). */
export function checkExpr(expr: string): string | null {
  try {
    jsonata(expr);
    return null;
  } catch (err) {
    return exprMessage(err);
  }
}

function exprMessage(err: unknown): string {
  const e = err as JsonataError;
  if (typeof e === 'object' && e !== null && typeof e.code === 'string') {
    const at = typeof e.position === 'number' ? ` at character ${e.position}` : '';
    return `JSONata ${/^S/.test(e.code) ? 'syntax error' : 'error'} ${e.code}${at}: ${e.message ?? ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}

type Expr = (record: PipelineRecord) => Promise<{ value: unknown } | { error: string }>;

function compileExpr(expr: unknown, path: string, timeoutMs: number): Expr {
  if (typeof expr !== 'string' || expr.trim() === '') throw bad(path, `write a JSONata expression, not ${show(expr)}`);
  let compiled: jsonata.Expression;
  try {
    compiled = jsonata(expr, { timeout: timeoutMs, stack: EXPR_STACK, sequence: EXPR_SEQUENCE });
  } catch (err) {
    throw bad(path, exprMessage(err));
  }
  return async (record) => {
    try {
      return { value: await compiled.evaluate(record) };
    } catch (err) {
      const code = (err as JsonataError)?.code;
      if (code === 'D1012') return { error: `timed out after ${timeoutMs} ms (JSONata D1012)` };
      if (code === 'D2015') return { error: `a sequence passed the limit of ${EXPR_SEQUENCE} items (JSONata D2015)` };
      return { error: exprMessage(err) };
    }
  };
}

/** JSONata's $boolean: an array is true when one of its items is, an object when it has a key, a function never. */
export function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(truthy);
  if (isFunction(v)) return false;
  if (typeof v === 'object' && v !== null) return Object.keys(v).length > 0;
  if (typeof v === 'number') return v !== 0 && !Number.isNaN(v);
  return Boolean(v);
}

/** a JavaScript function, or a JSONata lambda or built-in (objects marked by the evaluator) */
function isFunction(v: unknown): boolean {
  return typeof v === 'function' || (isObject(v) && (v._jsonata_lambda === true || v._jsonata_function === true));
}

/** a JSONata result as plain JSON (its sequences are arrays with extra keys); undefined stays undefined */
function plain(v: unknown): { value: unknown } | { error: string } {
  if (isFunction(v)) return { error: 'the expression gives a function, not a value' };
  try {
    return { value: v === undefined ? undefined : JSON.parse(JSON.stringify(v)) };
  } catch {
    return { error: 'the expression gives something that is not JSON (a function inside?)' };
  }
}

// ---------------------------------------------------------------- cast

const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
  on: true,
  off: false,
};

/**
 * A value cast to a type, or an error. number: a finite number, numeric text (trimmed, not empty), true/false as
 * 1/0. integer: the same, and it must be whole (3.5 is an error, never rounded). string: text as is, a number or a
 * boolean written out, an object or array as JSON. boolean: true/false, 1/0, and the words true/false, yes/no,
 * on/off, 1/0 (any case). timestamp: ms since the epoch — a number as is, numeric text, ISO 8601 text
 * (`2024-05-01T12:00:00Z`; text not starting with a date is refused rather than guessed).
 */
export function castValue(v: unknown, to: CastType): { value: unknown } | { error: string } {
  const fail = { error: `${show(v)} cannot be cast to ${to}` };
  const asNumber = (): number | undefined => {
    if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v === 'string' && v.trim() !== '') {
      const n = Number(v.trim());
      return Number.isFinite(n) ? n : undefined;
    }
    return undefined;
  };
  switch (to) {
    case 'number': {
      const n = asNumber();
      return n === undefined ? fail : { value: n };
    }
    case 'integer': {
      const n = asNumber();
      if (n === undefined) return fail;
      return Number.isInteger(n) ? { value: n } : { error: `${show(v)} is not a whole number (integer)` };
    }
    case 'string':
      if (typeof v === 'string') return { value: v };
      if (typeof v === 'number' || typeof v === 'boolean') return { value: String(v) };
      return { value: JSON.stringify(v) };
    case 'boolean': {
      if (typeof v === 'boolean') return { value: v };
      if (v === 1 || v === 0) return { value: v === 1 };
      if (typeof v === 'string') {
        const b = BOOLEAN_WORDS[v.trim().toLowerCase()];
        if (b !== undefined) return { value: b };
      }
      return fail;
    }
    case 'timestamp': {
      if (typeof v === 'number') return Number.isFinite(v) ? { value: v } : fail;
      if (typeof v === 'string') {
        const s = v.trim();
        if (/^-?\d+(\.\d+)?$/.test(s)) return { value: Number(s) };
        if (/^\d{4}-\d{2}-\d{2}/.test(s)) {
          const t = Date.parse(s);
          if (Number.isFinite(t)) return { value: t };
        }
      }
      return fail;
    }
  }
}

// ---------------------------------------------------------------- spec checks

function fieldMap(v: unknown, path: string): [string, string][] {
  if (!isObject(v) || Object.keys(v).length === 0) throw bad(path, 'write an object of fields: { name: value, … }');
  return Object.entries(v).map(([k, x]) => {
    if (typeof x !== 'string' || x === '') throw bad(`${path}.${k}`, `write a string, not ${show(x)}`);
    return [k, x];
  });
}

function positive(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw bad(path, `write a number of ms above 0, not ${show(v)}`);
  return v;
}

function cloneRecord(record: PipelineRecord): PipelineRecord {
  return structuredClone(record);
}

// ---------------------------------------------------------------- compile

/** Compiles a transform spec; a bad spec throws TalonError('BAD_REQUEST') naming the field. */
export function compileTransform(spec: TransformSpec, opts: CompileOptions = {}): Transform {
  const path = opts.path ?? 'transform';
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.exprTimeoutMs ?? DEFAULT_EXPR_TIMEOUT_MS;
  const s = spec as unknown as Record<string, unknown>;
  if (!isObject(s)) throw bad(path, 'write a transform: { type, inputs, … }');
  const type = s.type;
  if (type === 'code') throw bad(`${path}.type`, 'a code transform is compiled by sandbox.ts, not here');
  if (typeof type !== 'string' || !TYPES.includes(type))
    throw bad(`${path}.type`, `${show(type)} is not a transform (have: ${TYPES.join(', ')}, code)`);
  const ok = (out: PipelineRecord[]): StageResult => ({ out });

  switch (type) {
    case 'map': {
      const fields = fieldMap(s.fields, `${path}.fields`).map(
        ([out, from]) => [checkPath(out, `${path}.fields.${out}`), checkPath(from, `${path}.fields.${out}`)] as const,
      );
      return {
        type,
        async process(record) {
          const out: PipelineRecord = {};
          for (const [to, from] of fields) {
            const v = getPath(record, from);
            if (v !== undefined) setPath(out, to, structuredClone(v));
          }
          return ok([out]);
        },
      };
    }
    case 'rename': {
      const fields = fieldMap(s.fields, `${path}.fields`).map(
        ([from, to]) => [checkPath(from, `${path}.fields.${from}`), checkPath(to, `${path}.fields.${from}`)] as const,
      );
      return {
        type,
        async process(record) {
          const out = cloneRecord(record);
          for (const [from, to] of fields) {
            const v = getPath(out, from);
            if (v === undefined) continue;
            deletePath(out, from);
            setPath(out, to, v);
          }
          return ok([out]);
        },
      };
    }
    case 'cast': {
      const fields = fieldMap(s.fields, `${path}.fields`).map(([field, to]) => {
        if (!CAST_TYPES.includes(to as CastType))
          throw bad(`${path}.fields.${field}`, `${show(to)} is not a type (have: ${CAST_TYPES.join(', ')})`);
        return [field, checkPath(field, `${path}.fields.${field}`), to as CastType] as const;
      });
      return {
        type,
        async process(record) {
          const out = cloneRecord(record);
          for (const [name, parts, to] of fields) {
            const v = getPath(out, parts);
            if (v === undefined || v === null) continue;
            const r = castValue(v, to);
            if ('error' in r) return { error: `${name}: ${r.error}` };
            setPath(out, parts, r.value);
          }
          return ok([out]);
        },
      };
    }
    case 'filter': {
      const expr = compileExpr(s.expr, `${path}.expr`, timeoutMs);
      return {
        type,
        async process(record) {
          const r = await expr(record);
          if ('error' in r) return { error: `filter: ${r.error}` };
          return ok(truthy(r.value) ? [record] : []);
        },
      };
    }
    case 'drop': {
      if (!Array.isArray(s.fields) || s.fields.length === 0) throw bad(`${path}.fields`, 'write a list of field names');
      const fields = s.fields.map((f, i) => checkPath(f, `${path}.fields[${i}]`));
      return {
        type,
        async process(record) {
          const out = cloneRecord(record);
          for (const parts of fields) deletePath(out, parts);
          return ok([out]);
        },
      };
    }
    case 'derive': {
      const fields = fieldMap(s.fields, `${path}.fields`).map(
        ([name, e]) =>
          [
            name,
            checkPath(name, `${path}.fields.${name}`),
            compileExpr(e, `${path}.fields.${name}`, timeoutMs),
          ] as const,
      );
      return {
        type,
        async process(record) {
          const out = cloneRecord(record);
          for (const [name, parts, expr] of fields) {
            const r = await expr(out);
            if ('error' in r) return { error: `${name}: ${r.error}` };
            const v = plain(r.value);
            if ('error' in v) return { error: `${name}: ${v.error}` };
            setPath(out, parts, v.value);
          }
          return ok([out]);
        },
      };
    }
    case 'dedupe':
      return dedupe(s, path, now);
    case 'aggregate':
      return aggregate(s, path, now, opts.timeField);
    case 'convert': {
      const field = checkPath(s.field, `${path}.field`);
      if (typeof s.from !== 'string') throw bad(`${path}.from`, `write a unit, not ${show(s.from)}`);
      if (typeof s.to !== 'string') throw bad(`${path}.to`, `write a unit, not ${show(s.to)}`);
      const convert = unitConverter(s.from, s.to, path);
      const name = s.field as string;
      return {
        type,
        async process(record) {
          const v = getPath(record, field);
          if (v === undefined || v === null) return ok([record]);
          if (typeof v !== 'number' || !Number.isFinite(v))
            return { error: `${name}: ${show(v)} is not a number to convert from ${s.from} (cast it first)` };
          const out = cloneRecord(record);
          setPath(out, field, convert(v));
          return ok([out]);
        },
      };
    }
    case 'validate': {
      if (!isObject(s.schema)) throw bad(`${path}.schema`, 'write a JSON Schema (an object)');
      let validate: ReturnType<ReturnType<typeof createAjv>['compile']>;
      try {
        validate = createAjv('check').compile(s.schema);
      } catch (err) {
        throw bad(`${path}.schema`, err instanceof Error ? err.message : String(err));
      }
      return {
        type,
        async process(record) {
          if (validate(record)) return ok([record]);
          const errors = fieldErrors(validate.errors).map((e) => `${e.path} ${e.message}`);
          return { error: `schema: ${errors.join('; ')}` };
        },
      };
    }
  }
  throw bad(`${path}.type`, `${show(type)} is not a transform`);
}

// ---------------------------------------------------------------- dedupe

interface DedupeState {
  v: 1;
  /** [key, first seen ms], oldest first */
  seen: [string, number][];
  duplicates: number;
  evicted: number;
}

function dedupe(s: Record<string, unknown>, path: string, now: () => number): Transform {
  const keyNames = typeof s.key === 'string' ? [s.key] : s.key;
  if (!Array.isArray(keyNames) || keyNames.length === 0)
    throw bad(`${path}.key`, 'write a field name or a list of them');
  const keys = keyNames.map((k, i) => [String(k), checkPath(k, `${path}.key[${i}]`)] as const);
  const windowMs = positive(s.windowMs, `${path}.windowMs`);
  const maxKeys = s.maxKeys === undefined ? DEFAULT_DEDUPE_MAX_KEYS : positive(s.maxKeys, `${path}.maxKeys`);
  let seen = new Map<string, number>();
  let duplicates = 0;
  let evicted = 0;
  return {
    type: 'dedupe',
    async process(record) {
      const values: unknown[] = [];
      for (const [name, parts] of keys) {
        const v = getPath(record, parts);
        if (v === undefined || v === null) return { error: `${name}: missing (a field of the dedupe key)` };
        values.push(v);
      }
      const key = JSON.stringify(values);
      const t = now();
      // the map is in order of first sighting: the expired ones are at its front
      for (const [k, at] of seen) {
        if (t - at < windowMs) break;
        seen.delete(k);
      }
      if (seen.has(key)) {
        duplicates++;
        return { out: [] };
      }
      seen.set(key, t);
      while (seen.size > maxKeys) {
        seen.delete(seen.keys().next().value!);
        evicted++;
      }
      return { out: [record] };
    },
    state(): DedupeState {
      return { v: 1, seen: [...seen], duplicates, evicted };
    },
    restore(state: unknown) {
      const st = state as DedupeState;
      if (
        !isObject(st) ||
        st.v !== 1 ||
        !Array.isArray(st.seen) ||
        !st.seen.every((e) => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number')
      )
        throw new TalonError('BAD_REQUEST', `${path}: dedupe state is not what state() answers`);
      seen = new Map(st.seen);
      duplicates = typeof st.duplicates === 'number' ? st.duplicates : 0;
      evicted = typeof st.evicted === 'number' ? st.evicted : 0;
    },
    stats: () => ({ duplicates, evicted, keys: seen.size }),
  };
}

// ---------------------------------------------------------------- aggregate

function aggregate(s: Record<string, unknown>, path: string, now: () => number, timeField?: string): Transform {
  const w = s.window;
  if (!isObject(w)) throw bad(`${path}.window`, "write { type: 'tumbling' | 'sliding', sizeMs, slideMs? }");
  if (w.type !== 'tumbling' && w.type !== 'sliding')
    throw bad(`${path}.window.type`, `${show(w.type)} is not a window (have: tumbling, sliding)`);
  const sizeMs = positive(w.sizeMs, `${path}.window.sizeMs`);
  let slideMs = sizeMs;
  if (w.type === 'sliding') {
    if (w.slideMs === undefined)
      throw bad(`${path}.window.slideMs`, 'a sliding window needs slideMs (0 < slideMs ≤ sizeMs)');
    slideMs = positive(w.slideMs, `${path}.window.slideMs`);
    if (slideMs > sizeMs) throw bad(`${path}.window.slideMs`, `${slideMs} is more than sizeMs (${sizeMs})`);
  }
  const groupBy = s.groupBy ?? [];
  if (!Array.isArray(groupBy)) throw bad(`${path}.groupBy`, 'write a list of field names');
  groupBy.forEach((g, i) => {
    if (typeof g !== 'string' || g === '' || FORBIDDEN.has(g))
      throw bad(`${path}.groupBy[${i}]`, `write a field name, not ${show(g)}`);
  });
  if (!isObject(s.fields) || Object.keys(s.fields).length === 0)
    throw bad(`${path}.fields`, "write the outputs: { name: { op: 'mean', field: 'value' }, … }");
  const fields: Record<string, AggregateField> = {};
  for (const [name, f] of Object.entries(s.fields)) {
    const at = `${path}.fields.${name}`;
    if (FORBIDDEN.has(name)) throw bad(at, `"${name}" cannot be a field name`);
    if (!isObject(f)) throw bad(at, "write { op, field?, p? }: { op: 'sum', field: 'value' }");
    if (typeof f.op !== 'string' || !OPS.includes(f.op))
      throw bad(`${at}.op`, `${show(f.op)} is not an aggregate (have: ${OPS.join(', ')})`);
    if (f.field !== undefined && (typeof f.field !== 'string' || f.field === '' || FORBIDDEN.has(f.field)))
      throw bad(`${at}.field`, `write a field name, not ${show(f.field)}`);
    if (f.op !== 'count' && f.field === undefined) throw bad(`${at}.field`, `${f.op} needs the field it reads`);
    if (f.op === 'percentile' && (typeof f.p !== 'number' || !(f.p >= 0 && f.p <= 100)))
      throw bad(`${at}.p`, `write the percentile, 0 to 100, not ${show(f.p)}`);
    fields[name] = {
      op: f.op as AggregateField['op'],
      ...(f.field === undefined ? {} : { field: f.field as string }),
      ...(f.op === 'percentile' ? { p: f.p as number } : {}),
    };
  }
  const graceMs = s.graceMs === undefined ? 0 : s.graceMs;
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0)
    throw bad(`${path}.graceMs`, `write a number of ms, 0 or more, not ${show(graceMs)}`);
  const tf = s.timeField ?? timeField ?? 'ts';
  if (typeof tf !== 'string' || tf === '') throw bad(`${path}.timeField`, `write a field name, not ${show(tf)}`);
  const agg = new WindowAggregator({
    window: { type: w.type, sizeMs, slideMs },
    groupBy: groupBy as string[],
    fields,
    timeField: tf,
    graceMs,
    ...(s.maxOpen === undefined ? {} : { maxOpen: positive(s.maxOpen, `${path}.maxOpen`) }),
  });
  return {
    type: 'aggregate',
    async process(record) {
      return agg.add(record, now());
    },
    flush: (t) => agg.flush(t),
    state: () => agg.state(),
    restore: (st) => agg.restore(st),
    stats: () => ({ late: agg.late, open: agg.open }),
  };
}
