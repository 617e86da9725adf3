/**
 * The Data Pipeline Hand's settings (`hands: [{ name: etl, module: pipeline, settings: { pipelines: {…} } }]`), checked
 * before anything runs. Pure: no file, network or clock here.
 *
 *   pipelines: { NAME: { sources: { ID: { type, … } }, transforms?: { ID: { type, inputs: [ID…], … } },
 *                        sinks: { ID: { type, inputs: [ID…], … } }, queue?: { maxRecords?, maxBytes?, maxAgeMs?,
 *                        onFull? }, timeField?: "ts" } }
 *
 * The stage types and their fields are ./types.ts's. `parsePipelines` checks each pipeline field by field and as a
 * graph: every input names a source or transform of the same pipeline (a near miss gets a "did you mean"), never a
 * sink; the transforms have no cycle (the cycle is named); every source and transform feeds something (else its
 * records would be dropped); every transform and sink has inputs. Each problem names its path
 * (`pipelines.p1.sinks.db.inputs[0]: …`) and what to write instead; a pipeline with a problem is left out, the others
 * are kept. The schema below (`settingsSchema`) checks the outline only, so one bad pipeline never stops the Hand.
 *
 * Expressions and code are not compiled here: ./transforms.ts (JSONata) and ./sandbox.ts (QuickJS) do that at load
 * and pass their checks in as hooks (`ParseHooks`); what a hook answers becomes a problem with the field's path.
 * A `validate` stage's schema is checked against JSON Schema's meta-schema here (ajv, no compiling).
 */
import type { FromSchema } from '../sdk/index.ts';
import { createAjv, type Ajv } from '../../runtime/core/ajv.ts';
import { SECRET_NAME, SECRET_NAME_PATTERN, STAGE_NAME, STAGE_NAME_PATTERN } from '../../runtime/core/names.ts';
import type {
  AggregateField,
  AggregateOp,
  CastType,
  OnFull,
  Pipeline,
  QueueSpec,
  SinkSpec,
  SinkType,
  SourceSpec,
  SourceType,
  TransformSpec,
  TransformType,
} from './types.ts';

/** a pipeline's or a stage's name: runtime/core/names.ts STAGE_NAME */
export { STAGE_NAME, STAGE_NAME_PATTERN };
export const STAGE_NAME_HINT = 'must be 1-63 lowercase letters, digits, "-" or "_", starting with a letter or digit';

/** An SQL column or table name (a table may be qualified: `schema.table`), quoted by the sinks as written. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;
const PROM_METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$/;
const PROM_LABEL = /^[a-zA-Z_][a-zA-Z0-9_]{0,99}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;

export const MAX_PIPELINES = 50;
/** sources, transforms and sinks of one pipeline together */
export const MAX_STAGES = 100;
/** a sliding window's size over its slide: each record joins this many windows at most */
export const MAX_WINDOWS_PER_RECORD = 1000;

/**
 * The store-and-forward queue when the settings say nothing: a million records, 256 MiB or a week, whichever comes
 * first, and then the sources are slowed (`block`, as Vector's buffers do) rather than a record dropped. A bus source
 * cannot be slowed: the Hand counts what it could not queue.
 */
export const DEFAULT_QUEUE: Readonly<QueueSpec> = Object.freeze({
  maxRecords: 1_000_000,
  maxBytes: 256 * 1024 * 1024,
  maxAgeMs: 7 * 24 * 3_600_000,
  onFull: 'block',
});

/** A code transform's limits when not given: a CPU deadline per record and the QuickJS runtime's memory. */
export const CODE_DEFAULTS = Object.freeze({ timeoutMs: 100, memoryMb: 32 });
export const CODE_LIMITS = Object.freeze({ timeoutMs: 10_000, memoryMb: 512 });

export const DEFAULTS = Object.freeze({
  timeField: 'ts',
  httpEtag: true,
  httpMaxPages: 10,
  csvDelimiter: ',',
  csvHeader: true,
  httpBatch: Object.freeze({ maxRecords: 500, maxMs: 1000 }),
  httpFormat: 'json' as const,
  mqttQos: 1 as const,
  fileRotate: Object.freeze({ maxBytes: 64 * 1024 * 1024 }),
});

const SOURCE_TYPES: readonly SourceType[] = ['bus', 'http', 'file', 'sql', 'web'];
const TRANSFORM_TYPES: readonly TransformType[] = [
  'map',
  'rename',
  'cast',
  'filter',
  'drop',
  'derive',
  'dedupe',
  'aggregate',
  'convert',
  'validate',
  'code',
];
const SINK_TYPES: readonly SinkType[] = ['http', 'mqtt', 'file', 'postgres', 'sqlite', 'influx', 'prometheus'];
const CAST_TYPES: readonly CastType[] = ['number', 'integer', 'string', 'boolean', 'timestamp'];
const AGGREGATE_OPS: readonly AggregateOp[] = [
  'count',
  'sum',
  'min',
  'max',
  'mean',
  'p50',
  'p90',
  'p95',
  'p99',
  'percentile',
];
const ON_FULL: readonly OnFull[] = ['drop-oldest', 'drop-newest', 'block'];
const PIPELINE_FIELDS = ['sources', 'transforms', 'sinks', 'queue', 'timeField'];

const DAY = 86_400_000;

export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    pipelines: {
      type: 'object',
      maxProperties: MAX_PIPELINES,
      default: {},
      description:
        'pipelines by name: { sources: { ID: { type: bus|http|file|sql|web, … } }, transforms?: { ID: { type: map|rename|cast|filter|drop|derive|dedupe|aggregate|convert|validate|code, inputs: [ID…], … } }, sinks: { ID: { type: http|mqtt|file|postgres|sqlite|influx|prometheus, inputs: [ID…], … } }, queue?: { maxRecords?, maxBytes?, maxAgeMs?, onFull?: drop-oldest|drop-newest|block }, timeField?: "ts" }',
      additionalProperties: {
        type: 'object',
        properties: {
          sources: { type: 'object', additionalProperties: { type: 'object' } },
          transforms: { type: 'object', additionalProperties: { type: 'object' } },
          sinks: { type: 'object', additionalProperties: { type: 'object' } },
          queue: { type: 'object' },
          timeField: { type: 'string' },
        },
      },
    },
  },
} as const;

export type PipelineSettings = FromSchema<typeof settingsSchema>;

/** Checks done by other parts of the Hand at load: each answers a message (the problem) or null (fine). */
export interface ParseHooks {
  /** a JSONata expression (filter `expr`, each derive field) */
  checkExpr?: (expr: string, path: string) => string | null;
  /** a code transform's inline `source` (a `file` is read and checked by the Hand) */
  checkCode?: (source: string, path: string) => string | null;
}

export interface ParsedPipelines {
  pipelines: Pipeline[];
  /** what was wrong, each naming its path; a pipeline with a problem is left out */
  problems: string[];
}

// ---------------------------------------------------------------- small helpers

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A value quoted back in a message, cut short so a megabyte of junk is not echoed. */
function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** A path segment: `.name`, or `["odd name"]` when the key is not a plain word. */
function seg(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? `.${key}` : `[${JSON.stringify(key.slice(0, 80))}]`;
}

/** Levenshtein distance, stopping early past `max`. */
function distance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      best = Math.min(best, v);
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The closest of `names` to `word` (case ignored): within a third of its length in edits (at least 1, at most 3), or
 * the first name `word` begins (3 characters at least: "drop-old" for "drop-oldest").
 */
export function nearest(word: string, names: Iterable<string>): string | undefined {
  const max = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  const w = word.toLowerCase();
  let found: string | undefined;
  let prefixed: string | undefined;
  let best = max + 1;
  for (const n of names) {
    if (w.length >= 3 && prefixed === undefined && n.toLowerCase().startsWith(w)) prefixed = n;
    const d = distance(w, n.toLowerCase(), max);
    if (d < best) {
      best = d;
      found = n;
    }
  }
  return found ?? prefixed;
}

const didYouMean = (word: string, names: Iterable<string>): string => {
  const n = nearest(word, names);
  return n === undefined ? '' : `; did you mean "${n}"?`;
};

/** The URL's problem (an absolute URL with one of `schemes`), or undefined. */
function urlProblem(v: unknown, schemes: readonly string[], example: string): string | undefined {
  const want = `must be an absolute ${schemes.join(' or ')} URL ("${example}")`;
  if (typeof v !== 'string' || v.trim() === '') return `${want}, not ${show(v)}`;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return `${show(v)} is not a URL: ${want}`;
  }
  const scheme = u.protocol.slice(0, -1);
  if (!schemes.includes(scheme)) return `the scheme "${scheme}:" is not taken: ${want}`;
  if (u.hostname === '') return `${show(v)} has no host: ${want}`;
  return undefined;
}

/** An MQTT topic (a filter when `filter`: "+" a whole level, "#" the last), or its problem. */
function topicProblem(v: unknown, filter: boolean): string | undefined {
  const example = filter ? '"sensors/+/reading"' : '"site/readings"';
  if (typeof v !== 'string' || v === '') return `must be an MQTT topic (${example}), not ${show(v)}`;
  if (v.length > 256) return `is ${v.length} characters long: an MQTT topic here is at most 256`;
  if (v.includes('\u0000')) return 'holds a NUL character: write the topic without it';
  const levels = v.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (!filter && (l.includes('+') || l.includes('#')))
      return `${show(v)} has a wildcard: a topic published to names one topic (${example})`;
    if (l.includes('+') && l !== '+') return `${show(v)}: "+" must be a whole level ("a/+/c"), not part of one`;
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1))
      return `${show(v)}: "#" must be the whole last level ("a/#")`;
  }
  return undefined;
}

let metaAjv: Ajv | undefined;

// ---------------------------------------------------------------- field reader

interface IntOpts {
  min: number;
  max: number;
  /** what the number counts, for the message ("milliseconds") */
  unit: string;
  dflt?: number;
  required?: boolean;
}

/** Reads the fields of one object at `path`, each problem pushed with the field's path. */
class Fields {
  readonly obj: Record<string, unknown>;
  readonly path: string;
  readonly #problems: string[];

  constructor(obj: Record<string, unknown>, path: string, problems: string[]) {
    this.obj = obj;
    this.path = path;
    this.#problems = problems;
  }

  at(k: string): string {
    return `${this.path}${seg(k)}`;
  }

  /** a problem at field `k` (the object itself when null), `suffix` (`[2]`, `.name`) appended to the path */
  problem(k: string | null, message: string, suffix = ''): undefined {
    this.#problems.push(`${k === null ? this.path : this.at(k)}${suffix}: ${message}`);
    return undefined;
  }

  has(k: string): boolean {
    return this.obj[k] !== undefined && this.obj[k] !== null;
  }

  /** a problem for each field not in `known` (with a near miss offered) */
  known(known: readonly string[], what: string): void {
    for (const k of Object.keys(this.obj))
      if (!known.includes(k))
        this.problem(k, `is not a field of ${what} (the fields are ${known.join(', ')})${didYouMean(k, known)}`);
  }

  str(
    k: string,
    hint: string,
    opts: { required?: boolean; pattern?: RegExp; patternHint?: string; max?: number } = {},
  ): string | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null) return opts.required ? this.problem(k, `is missing: write ${hint}`) : undefined;
    if (typeof v !== 'string' || v.trim() === '') return this.problem(k, `must be ${hint}, not ${show(v)}`);
    if (v.length > (opts.max ?? 4096))
      return this.problem(k, `is ${v.length} characters long: at most ${opts.max ?? 4096}`);
    if (opts.pattern && !opts.pattern.test(v)) return this.problem(k, `${show(v)} ${opts.patternHint ?? hint}`);
    return v;
  }

  int(k: string, o: IntOpts): number | undefined {
    const v = this.obj[k];
    const range = `a whole number of ${o.unit} from ${o.min} to ${o.max}`;
    if (v === undefined || v === null)
      return o.required ? this.problem(k, `is missing: write ${range}`) : (o.dflt ?? undefined);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < o.min || v > o.max)
      return this.problem(k, `must be ${range}, not ${show(v)}`);
    return v;
  }

  bool(k: string, dflt?: boolean): boolean | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') return this.problem(k, `must be true or false, not ${show(v)}`);
    return v;
  }

  oneOf<T extends string>(k: string, values: readonly T[], opts: { required?: boolean; dflt?: T } = {}): T | undefined {
    const v = this.obj[k];
    const list = values.map((x) => `"${x}"`).join(', ');
    if (v === undefined || v === null)
      return opts.required ? this.problem(k, `is missing: write one of ${list}`) : opts.dflt;
    if (typeof v !== 'string' || !values.includes(v as T))
      return this.problem(
        k,
        `must be one of ${list}, not ${show(v)}${typeof v === 'string' ? didYouMean(v, values) : ''}`,
      );
    return v as T;
  }

  url(k: string, schemes: readonly string[], example: string): string | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null)
      return this.problem(k, `is missing: write an ${schemes.join(' or ')} URL ("${example}")`);
    const p = urlProblem(v, schemes, example);
    return p ? this.problem(k, p) : (v as string);
  }

  /** a list of non-empty texts, each checked by `each` (its problem, or undefined) */
  list(
    k: string,
    hint: string,
    opts: { required?: boolean; nonEmpty?: boolean; each?: (s: string) => string | undefined } = {},
  ): string[] | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null) return opts.required ? this.problem(k, `is missing: write ${hint}`) : undefined;
    if (!Array.isArray(v)) return this.problem(k, `must be a list: ${hint}, not ${show(v)}`);
    if (opts.nonEmpty && v.length === 0) return this.problem(k, `is empty: write ${hint}`);
    let ok = true;
    const seen = new Set<string>();
    v.forEach((x, i) => {
      const where = `[${i}]`;
      if (typeof x !== 'string' || x.trim() === '') {
        ok = false;
        this.problem(k, `must be a non-empty text, not ${show(x)}`, where);
        return;
      }
      const p = opts.each?.(x);
      if (p) {
        ok = false;
        this.problem(k, p, where);
      } else if (seen.has(x)) {
        ok = false;
        this.problem(k, `${show(x)} is listed twice: list it once`, where);
      }
      seen.add(x);
    });
    return ok ? (v as string[]) : undefined;
  }

  /** `{ key: text }` with at least one entry, each value checked by `each` */
  textMap(
    k: string,
    hint: string,
    opts: { each?: (key: string, value: string, path: string) => string | undefined; allowEmpty?: boolean } = {},
  ): Record<string, string> | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null)
      return opts.allowEmpty ? undefined : this.problem(k, `is missing: write ${hint}`);
    if (!isObject(v)) return this.problem(k, `must be an object: ${hint}, not ${show(v)}`);
    const keys = Object.keys(v);
    if (keys.length === 0 && !opts.allowEmpty) return this.problem(k, `is empty: write ${hint}`);
    let ok = true;
    for (const key of keys) {
      const where = seg(key);
      const x = v[key];
      if (typeof x !== 'string' || x.trim() === '') {
        ok = false;
        this.problem(k, `must be a non-empty text, not ${show(x)} (${hint})`, where);
        continue;
      }
      const p = opts.each?.(key, x, `${this.at(k)}${where}`);
      if (p) {
        ok = false;
        this.problem(k, p, where);
      }
    }
    return ok ? (v as Record<string, string>) : undefined;
  }

  /** a nested object, read with its own Fields; undefined (and a problem) when it is not an object */
  sub(k: string, hint: string, required = false): Fields | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null) return required ? this.problem(k, `is missing: write ${hint}`) : undefined;
    if (!isObject(v)) return this.problem(k, `must be an object: ${hint}, not ${show(v)}`);
    return new Fields(v, this.at(k), this.#problems);
  }

  headers(k: string): Record<string, string> | undefined {
    return this.textMap(k, '{ Header-Name: "value" }', {
      allowEmpty: true,
      each: (name) =>
        HEADER_NAME.test(name) ? undefined : `${show(name)} is not an HTTP header name (letters, digits and "-")`,
    });
  }
}

const identifierHint = 'is not an SQL identifier: letters, digits and "_", starting with a letter or "_" (≤ 63)';
const identifier = (s: string): string | undefined => (IDENTIFIER.test(s) ? undefined : `${show(s)} ${identifierHint}`);

// ---------------------------------------------------------------- stages

interface Hooked {
  hooks: ParseHooks;
  problems: string[];
}

function runHook(
  h: Hooked,
  hook: ((text: string, path: string) => string | null) | undefined,
  text: string,
  path: string,
): void {
  if (!hook) return;
  let message: string | null;
  try {
    message = hook(text, path);
  } catch (err) {
    message = `could not be checked: ${(err as Error)?.message ?? String(err)}`;
  }
  if (message) h.problems.push(`${path}: ${message}`);
}

function parseSource(f: Fields, type: SourceType): SourceSpec | undefined {
  const interval = (k = 'intervalMs') =>
    f.int(k, { min: 1000, max: 7 * DAY, unit: 'milliseconds between polls', required: true });
  switch (type) {
    case 'bus': {
      f.known(['type', 'topic'], 'a bus source');
      if (!f.has('topic')) return f.problem('topic', 'is missing: write an MQTT topic filter ("sensors/+/reading")');
      const p = topicProblem(f.obj.topic, true);
      if (p) return f.problem('topic', p);
      return { type, topic: f.obj.topic as string };
    }
    case 'http': {
      f.known(['type', 'url', 'intervalMs', 'etag', 'pagination', 'headers'], 'an http source');
      const url = f.url('url', ['http', 'https'], 'https://api.example.com/readings');
      const intervalMs = interval();
      const etag = f.bool('etag', DEFAULTS.httpEtag);
      const headers = f.headers('headers');
      let pagination: Extract<SourceSpec, { type: 'http' }>['pagination'];
      const pg = f.sub('pagination', '{ next: "link" } or { next: "cursor", cursorField, param }');
      if (pg) {
        pg.known(['next', 'cursorField', 'param', 'maxPages'], 'pagination');
        const next = pg.oneOf('next', ['link', 'cursor'] as const, { required: true });
        const maxPages = pg.int('maxPages', { min: 1, max: 1000, unit: 'pages', dflt: DEFAULTS.httpMaxPages });
        if (next === 'cursor') {
          const cursorField = pg.str('cursorField', 'the body field holding the next cursor ("meta.next")', {
            required: true,
          });
          const param = pg.str('param', 'the query parameter the cursor is sent as ("cursor")', { required: true });
          if (cursorField && param && maxPages) pagination = { next, cursorField, param, maxPages };
        } else if (next === 'link') {
          for (const k of ['cursorField', 'param'])
            if (pg.has(k)) pg.problem(k, 'is for next: "cursor" only (a Link header names the next page itself)');
          if (maxPages) pagination = { next, maxPages };
        }
      }
      if (!url || !intervalMs) return undefined;
      return {
        type,
        url,
        intervalMs,
        etag: etag ?? DEFAULTS.httpEtag,
        ...(pagination && { pagination }),
        ...(headers && { headers }),
      };
    }
    case 'file': {
      f.known(['type', 'dir', 'format', 'pattern', 'delimiter', 'header'], 'a file source');
      const dir = f.str('dir', 'the folder watched ("/data/incoming")', { required: true });
      const format = f.oneOf('format', ['csv', 'jsonl', 'json'] as const, { required: true });
      const pattern = f.str('pattern', 'a glob of the file names read ("*.csv")', { max: 256 });
      let delimiter: string | undefined;
      let header: boolean | undefined;
      if (format === 'csv') {
        delimiter = f.str('delimiter', 'one character ("," or ";" or "\\t")') ?? DEFAULTS.csvDelimiter;
        if (delimiter.length !== 1 || /[\r\n"]/.test(delimiter)) {
          f.problem('delimiter', `must be one character other than a quote or a line break, not ${show(delimiter)}`);
          delimiter = undefined;
        }
        header = f.bool('header', DEFAULTS.csvHeader);
      } else if (format)
        for (const k of ['delimiter', 'header'])
          if (f.has(k)) f.problem(k, `is for a csv file only, not ${format}: remove it`);
      if (!dir || !format) return undefined;
      return {
        type,
        dir,
        format,
        ...(pattern && { pattern }),
        ...(delimiter !== undefined && { delimiter }),
        ...(header !== undefined && { header }),
      };
    }
    case 'sql': {
      f.known(['type', 'driver', 'database', 'connection', 'query', 'cursor', 'intervalMs'], 'an sql source');
      const driver = f.oneOf('driver', ['sqlite', 'postgres'] as const, { required: true });
      let database: string | undefined;
      let connection: string | undefined;
      if (driver === 'sqlite') {
        database = f.str('database', 'the SQLite database file ("/data/readings.db")', { required: true });
        if (f.has('connection'))
          f.problem('connection', 'is for driver "postgres": a SQLite source names its database');
      } else if (driver === 'postgres') {
        connection = f.str('connection', 'the name of the sealed secret holding the connection string ("pg-main")', {
          required: true,
          pattern: SECRET_NAME,
          patternHint: `is not a secret name (${SECRET_NAME_PATTERN}): store the URL with \`talon secrets set NAME\` and write NAME`,
        });
        if (f.has('database'))
          f.problem('database', 'is for driver "sqlite": a PostgreSQL source names its connection secret');
      }
      const query = f.str('query', 'a SELECT using :cursor ("SELECT * FROM t WHERE id > :cursor ORDER BY id")', {
        required: true,
        max: 65_536,
      });
      if (query && !/:cursor\b/.test(query))
        f.problem(
          'query',
          'does not use :cursor: compare the cursor column with it ("… WHERE id > :cursor ORDER BY id"), or every poll reads every row again',
        );
      const intervalMs = interval();
      let cursor: { column: string; initial?: string | number } | undefined;
      const c = f.sub('cursor', '{ column: "id", initial?: 0 }', true);
      if (c) {
        c.known(['column', 'initial'], 'a cursor');
        const column = c.str('column', 'the column read incrementally ("id" or "updated_at")', {
          required: true,
          pattern: IDENTIFIER,
          patternHint: identifierHint,
        });
        const initial = c.obj.initial;
        if (initial !== undefined && typeof initial !== 'string' && typeof initial !== 'number')
          c.problem('initial', `must be a number or a text (the value before the first row), not ${show(initial)}`);
        else if (column) cursor = { column, ...(initial !== undefined && { initial }) };
      }
      if (!driver || !query || !intervalMs || !cursor || (!database && !connection)) return undefined;
      return {
        type,
        driver,
        ...(database && { database }),
        ...(connection && { connection }),
        query,
        cursor,
        intervalMs,
      };
    }
    case 'web': {
      f.known(['type', 'watch', 'flow'], 'a web source');
      const hint = 'must be a watch id or flow name of the Web Automation Hand (lowercase letters, digits, "-", "_")';
      const name = /^[a-z0-9][a-z0-9_-]{0,63}$/;
      const watch = f.str('watch', 'a watch id ("prices")', { pattern: name, patternHint: hint });
      const flow = f.str('flow', 'a flow name ("login")', { pattern: name, patternHint: hint });
      if (watch && flow)
        return f.problem(null, 'names both a watch and a flow: one source reads one of them (write two sources)');
      if ((f.has('watch') && !watch) || (f.has('flow') && !flow)) return undefined;
      return { type, ...(watch && { watch }), ...(flow && { flow }) };
    }
  }
}

const FIELD_HINT = 'a record field name ("temp" or "meta.site")';

function parseAggregateField(f: Fields, key: string): AggregateField | undefined {
  const a = f.sub(key, '{ op: "mean", field: "temp" }', true);
  if (!a) return undefined;
  a.known(['op', 'field', 'p'], 'an aggregate field');
  const op = a.oneOf('op', AGGREGATE_OPS, { required: true });
  const field = a.str('field', FIELD_HINT, { required: op !== undefined && op !== 'count' });
  if (op === 'percentile') {
    const p = a.obj.p;
    if (p === undefined || p === null) return a.problem('p', 'is missing: write the percentile, 0 to 100 (95 for p95)');
    if (typeof p !== 'number' || !Number.isFinite(p) || p < 0 || p > 100)
      return a.problem('p', `must be a percentile from 0 to 100, not ${show(p)}`);
    return field ? { op, field, p } : undefined;
  }
  if (a.has('p')) return a.problem('p', `is for op "percentile" only, not "${op ?? '?'}": remove it`);
  if (!op || (op !== 'count' && !field)) return undefined;
  return { op, ...(field && { field }) };
}

function parseTransform(f: Fields, type: TransformType, inputs: string[], h: Hooked): TransformSpec | undefined {
  const common = ['type', 'inputs'];
  switch (type) {
    case 'map':
    case 'rename': {
      f.known([...common, 'fields'], `a ${type} transform`);
      const hint = type === 'map' ? '{ out: "in.path" } (the fields kept, renamed)' : '{ from: "to" }';
      const fields = f.textMap('fields', hint);
      if (fields && type === 'rename') {
        const to = new Map<string, string>();
        for (const [from, name] of Object.entries(fields)) {
          const before = to.get(name);
          if (before !== undefined)
            f.problem('fields', `renames to "${name}" as "${before}" does: one field each`, seg(from));
          to.set(name, from);
        }
      }
      return fields && { type, inputs, fields };
    }
    case 'cast': {
      f.known([...common, 'fields'], 'a cast transform');
      const fields = f.textMap('fields', `{ field: ${CAST_TYPES.join('|')} }`, {
        each: (_k, v) =>
          CAST_TYPES.includes(v as CastType)
            ? undefined
            : `${show(v)} is not a type to cast to: write one of ${CAST_TYPES.join(', ')}${didYouMean(v, CAST_TYPES)}`,
      });
      return fields && { type, inputs, fields: fields as Record<string, CastType> };
    }
    case 'filter': {
      f.known([...common, 'expr'], 'a filter transform');
      const expr = f.str('expr', 'a JSONata expression kept records are true for ("temp > -40 and temp < 85")', {
        required: true,
        max: 16_384,
      });
      if (expr) runHook(h, h.hooks.checkExpr, expr, f.at('expr'));
      return expr ? { type, inputs, expr } : undefined;
    }
    case 'drop': {
      f.known([...common, 'fields'], 'a drop transform');
      const fields = f.list('fields', 'the fields removed (["raw", "debug"])', { required: true, nonEmpty: true });
      return fields && { type, inputs, fields };
    }
    case 'derive': {
      f.known([...common, 'fields'], 'a derive transform');
      const fields = f.textMap('fields', '{ name: "JSONata expression" } ({ tempF: "temp * 9 / 5 + 32" })');
      if (fields)
        for (const [k, expr] of Object.entries(fields))
          runHook(h, h.hooks.checkExpr, expr, `${f.at('fields')}${seg(k)}`);
      return fields && { type, inputs, fields };
    }
    case 'dedupe': {
      f.known([...common, 'key', 'windowMs', 'maxKeys'], 'a dedupe transform');
      let key: string[] | undefined;
      if (typeof f.obj.key === 'string') {
        const one = f.str('key', FIELD_HINT);
        key = one === undefined ? undefined : [one];
      } else
        key = f.list('key', 'the field or fields that make a record the same (["sensor", "ts"])', {
          required: true,
          nonEmpty: true,
        });
      const windowMs = f.int('windowMs', { min: 1, max: 30 * DAY, unit: 'milliseconds', required: true });
      const maxKeys = f.int('maxKeys', { min: 1, max: 10_000_000, unit: 'keys' });
      return key && windowMs ? { type, inputs, key, windowMs, ...(maxKeys ? { maxKeys } : {}) } : undefined;
    }
    case 'aggregate': {
      f.known([...common, 'window', 'groupBy', 'timeField', 'fields', 'graceMs', 'maxOpen'], 'an aggregate transform');
      const graceMs = f.int('graceMs', { min: 0, max: 30 * DAY, unit: 'milliseconds' });
      const maxOpen = f.int('maxOpen', { min: 1, max: 1_000_000, unit: 'windows' });
      let window: Extract<TransformSpec, { type: 'aggregate' }>['window'] | undefined;
      const w = f.sub('window', '{ type: "tumbling", sizeMs: 60000 } or { type: "sliding", sizeMs, slideMs }', true);
      if (w) {
        w.known(['type', 'sizeMs', 'slideMs'], 'a window');
        const wt = w.oneOf('type', ['tumbling', 'sliding'] as const, { required: true });
        const sizeMs = w.int('sizeMs', { min: 1, max: 30 * DAY, unit: 'milliseconds', required: true });
        if (wt === 'tumbling') {
          if (w.has('slideMs')) w.problem('slideMs', 'is for a sliding window: a tumbling one moves by its size');
          else if (sizeMs) window = { type: wt, sizeMs };
        } else if (wt === 'sliding') {
          const slideMs = w.int('slideMs', { min: 1, max: 30 * DAY, unit: 'milliseconds', required: true });
          if (sizeMs && slideMs) {
            if (slideMs > sizeMs)
              w.problem(
                'slideMs',
                `${slideMs} is more than sizeMs ${sizeMs}: a window's slide is at most its size (records between windows would be missed); write a tumbling window for slide = size`,
              );
            else if (sizeMs / slideMs > MAX_WINDOWS_PER_RECORD)
              w.problem(
                'slideMs',
                `${slideMs} puts each record in ${Math.ceil(sizeMs / slideMs)} windows: at most ${MAX_WINDOWS_PER_RECORD} (slideMs ≥ sizeMs / ${MAX_WINDOWS_PER_RECORD})`,
              );
            else window = { type: wt, sizeMs, slideMs };
          }
        }
      }
      const groupBy = f.list('groupBy', 'the fields grouped by (["sensor"])');
      const timeField = f.str('timeField', FIELD_HINT);
      const fs = f.sub('fields', '{ out: { op: "mean", field: "temp" } }', true);
      let fields: Record<string, AggregateField> | undefined;
      if (fs) {
        const keys = Object.keys(fs.obj);
        if (keys.length === 0) fs.problem(null, 'is empty: write { out: { op: "count" } } at least');
        else {
          fields = {};
          for (const k of keys) {
            const a = parseAggregateField(fs, k);
            if (a && fields) fields[k] = a;
            else fields = undefined;
          }
        }
      }
      if (!window || !fields || (f.has('groupBy') && !groupBy) || (f.has('timeField') && !timeField)) return undefined;
      return {
        type,
        inputs,
        window,
        ...(groupBy && { groupBy }),
        ...(timeField && { timeField }),
        fields,
        ...(graceMs !== undefined && { graceMs }),
        ...(maxOpen !== undefined && { maxOpen }),
      };
    }
    case 'convert': {
      f.known([...common, 'field', 'from', 'to'], 'a convert transform');
      const field = f.str('field', FIELD_HINT, { required: true });
      const from = f.str('from', 'the unit the field is in ("degF")', { required: true, max: 64 });
      const to = f.str('to', 'the unit wanted ("degC")', { required: true, max: 64 });
      if (from && to && from === to) return f.problem('to', `is the same unit as from ("${from}"): nothing to convert`);
      return field && from && to ? { type, inputs, field, from, to } : undefined;
    }
    case 'validate': {
      f.known([...common, 'schema'], 'a validate transform');
      const s = f.sub('schema', 'a JSON Schema ({ type: "object", required: ["temp"], … })', true);
      if (!s) return undefined;
      metaAjv ??= createAjv('check');
      let valid: boolean;
      try {
        valid = metaAjv.validateSchema(s.obj) === true;
      } catch (err) {
        return s.problem(null, `is not a JSON Schema: ${(err as Error).message}`);
      }
      if (!valid) {
        const e = metaAjv.errors?.[0];
        const where = e?.instancePath ? ` at ${e.instancePath}` : '';
        return s.problem(null, `is not a JSON Schema${where}: ${e?.message ?? 'refused by the meta-schema'}`);
      }
      return { type, inputs, schema: s.obj };
    }
    case 'code': {
      f.known([...common, 'source', 'file', 'timeoutMs', 'memoryMb'], 'a code transform');
      const timeoutMs = f.int('timeoutMs', {
        min: 1,
        max: CODE_LIMITS.timeoutMs,
        unit: 'milliseconds of CPU per record',
        dflt: CODE_DEFAULTS.timeoutMs,
      });
      const memoryMb = f.int('memoryMb', {
        min: 1,
        max: CODE_LIMITS.memoryMb,
        unit: 'MB',
        dflt: CODE_DEFAULTS.memoryMb,
      });
      if (f.has('source') && f.has('file'))
        return f.problem(null, 'has both source and file: write the function inline (source) or in a file, not both');
      if (!f.has('source') && !f.has('file'))
        return f.problem(
          null,
          'has neither source nor file: write source: "(record) => ({ ...record, ok: true })" or file: "transforms/clean.js"',
        );
      const source = f.str('source', 'a JavaScript function over the record', { max: 262_144 });
      const file = f.str('file', 'the path of a JavaScript file ("transforms/clean.js")', { max: 1024 });
      if (source) runHook(h, h.hooks.checkCode, source, f.at('source'));
      if ((!source && !file) || !timeoutMs || !memoryMb) return undefined;
      return { type, inputs, ...(source && { source }), ...(file && { file }), timeoutMs, memoryMb };
    }
  }
}

function parseSink(f: Fields, type: SinkType, inputs: string[]): SinkSpec | undefined {
  const common = ['type', 'inputs'];
  const httpExample = 'https://ingest.example.com/v1/readings';
  switch (type) {
    case 'http': {
      f.known([...common, 'url', 'format', 'batch', 'idempotencyKey', 'headers'], 'an http sink');
      const url = f.url('url', ['http', 'https'], httpExample);
      const format = f.oneOf('format', ['json', 'ndjson'] as const, { dflt: DEFAULTS.httpFormat });
      let batch: { maxRecords: number; maxMs: number } | undefined = { ...DEFAULTS.httpBatch };
      const b = f.sub('batch', '{ maxRecords: 500, maxMs: 1000 }');
      if (b) {
        b.known(['maxRecords', 'maxMs'], 'a batch');
        const maxRecords = b.int('maxRecords', {
          min: 1,
          max: 10_000,
          unit: 'records',
          dflt: DEFAULTS.httpBatch.maxRecords,
        });
        const maxMs = b.int('maxMs', { min: 0, max: 3_600_000, unit: 'milliseconds', dflt: DEFAULTS.httpBatch.maxMs });
        batch = maxRecords !== undefined && maxMs !== undefined ? { maxRecords, maxMs } : undefined;
      }
      const idempotencyKey = f.str('idempotencyKey', `${FIELD_HINT}, sent as Idempotency-Key`);
      const headers = f.headers('headers');
      if (!url || !format || !batch || (f.has('idempotencyKey') && !idempotencyKey)) return undefined;
      return {
        type,
        inputs,
        url,
        format,
        batch,
        ...(idempotencyKey && { idempotencyKey }),
        ...(headers && { headers }),
      };
    }
    case 'mqtt': {
      f.known([...common, 'url', 'topic', 'qos'], 'an mqtt sink');
      const url = f.url('url', ['mqtt', 'mqtts'], 'mqtts://broker.example.com:8883');
      let topic: string | undefined;
      if (!f.has('topic')) f.problem('topic', 'is missing: write the topic published to ("site/readings")');
      else {
        const p = topicProblem(f.obj.topic, false);
        if (p) f.problem('topic', p);
        else topic = f.obj.topic as string;
      }
      const qos = f.obj.qos ?? DEFAULTS.mqttQos;
      if (qos !== 0 && qos !== 1 && qos !== 2) return f.problem('qos', `must be 0, 1 or 2, not ${show(qos)}`);
      return url && topic ? { type, inputs, url, topic, qos } : undefined;
    }
    case 'file': {
      f.known([...common, 'path', 'format', 'rotate'], 'a file sink');
      const path = f.str('path', 'the file written ("/data/out/readings.jsonl")', { required: true, max: 1024 });
      const format = f.oneOf('format', ['jsonl', 'csv'] as const, { required: true });
      let rotate: { maxBytes?: number; maxAgeMs?: number } | undefined = { ...DEFAULTS.fileRotate };
      const r = f.sub('rotate', '{ maxBytes: 67108864 } or { maxAgeMs: 86400000 }');
      if (r) {
        r.known(['maxBytes', 'maxAgeMs'], 'rotate');
        const maxBytes = r.int('maxBytes', { min: 1024, max: 2 ** 40, unit: 'bytes' });
        const maxAgeMs = r.int('maxAgeMs', { min: 1000, max: 366 * DAY, unit: 'milliseconds' });
        if (!r.has('maxBytes') && !r.has('maxAgeMs'))
          rotate = r.problem(null, 'names no limit: write maxBytes, maxAgeMs or both');
        else if ((r.has('maxBytes') && !maxBytes) || (r.has('maxAgeMs') && !maxAgeMs)) rotate = undefined;
        else rotate = { ...(maxBytes && { maxBytes }), ...(maxAgeMs && { maxAgeMs }) };
      }
      return path && format && rotate ? { type, inputs, path, format, rotate } : undefined;
    }
    case 'postgres':
    case 'sqlite': {
      const known =
        type === 'postgres' ? ['connection', 'table', 'key', 'columns'] : ['database', 'table', 'key', 'columns'];
      f.known([...common, ...known], `a ${type} sink`);
      const connection =
        type === 'postgres'
          ? f.str('connection', 'the name of the sealed secret holding the connection string ("pg-main")', {
              required: true,
              pattern: SECRET_NAME,
              patternHint: `is not a secret name (${SECRET_NAME_PATTERN}): store the URL with \`talon secrets set NAME\` and write NAME`,
            })
          : undefined;
      const database =
        type === 'sqlite'
          ? f.str('database', 'the SQLite database file ("/data/out.db")', { required: true })
          : undefined;
      const table = f.str('table', 'the table written ("readings" or "public.readings")', {
        required: true,
        pattern: TABLE,
        patternHint: `is not a table name: ${identifierHint.slice(7)}, optionally "schema.table"`,
      });
      const key = f.list('key', 'the key columns an upsert matches on (["sensor", "ts"])', {
        nonEmpty: true,
        each: identifier,
      });
      const columns = f.list('columns', 'the columns written (["sensor", "ts", "temp"])', {
        nonEmpty: true,
        each: identifier,
      });
      if (key && columns)
        key.forEach((k, i) => {
          if (!columns.includes(k))
            f.problem('key', `"${k}" is not one of the columns written: add it to columns`, `[${i}]`);
        });
      if (!table || (f.has('key') && !key) || (f.has('columns') && !columns)) return undefined;
      if (type === 'postgres')
        return connection
          ? { type, inputs, connection, table, ...(key && { key }), ...(columns && { columns }) }
          : undefined;
      return database ? { type, inputs, database, table, ...(key && { key }), ...(columns && { columns }) } : undefined;
    }
    case 'influx': {
      f.known([...common, 'url', 'org', 'bucket', 'measurement', 'tags', 'fields', 'timeField'], 'an influx sink');
      const url = f.url('url', ['http', 'https'], 'http://influx.local:8086');
      const org = f.str('org', 'the InfluxDB organization ("site")');
      const bucket = f.str('bucket', 'the bucket written ("readings")', { required: true });
      const measurement = f.str('measurement', 'the measurement ("climate")', { required: true });
      const tags = f.list('tags', 'the fields written as tags (["sensor"])') ?? (f.has('tags') ? undefined : []);
      const fields = f.list('fields', 'the fields written as fields (["temp", "humidity"])', {
        required: true,
        nonEmpty: true,
      });
      const timeField = f.str('timeField', FIELD_HINT);
      if (tags && fields)
        fields.forEach((x, i) => {
          if (tags.includes(x))
            f.problem('fields', `"${x}" is also a tag: a field is written as one or the other`, `[${i}]`);
        });
      if (!url || !bucket || !measurement || !tags || !fields || (f.has('org') && !org)) return undefined;
      if (f.has('timeField') && !timeField) return undefined;
      return {
        type,
        inputs,
        url,
        ...(org && { org }),
        bucket,
        measurement,
        tags,
        fields,
        ...(timeField && { timeField }),
      };
    }
    case 'prometheus': {
      f.known([...common, 'url', 'metric', 'labels', 'valueField'], 'a prometheus sink');
      const url = f.url('url', ['http', 'https'], 'http://prometheus.local:9090/api/v1/write');
      const metric = f.str('metric', 'a metric name ("site_temperature_celsius")', {
        required: true,
        pattern: PROM_METRIC,
        patternHint: 'is not a Prometheus metric name: letters, digits, "_" and ":", not starting with a digit',
      });
      const labels =
        f.list('labels', 'the fields sent as labels (["sensor"])', {
          each: (s) =>
            PROM_LABEL.test(s) && !s.startsWith('__')
              ? undefined
              : `${show(s)} is not a Prometheus label name: letters, digits and "_", not starting with a digit or "__"`,
        }) ?? (f.has('labels') ? undefined : []);
      const valueField = f.str('valueField', `${FIELD_HINT} holding the sample's value`, { required: true });
      return url && metric && labels && valueField ? { type, inputs, url, metric, labels, valueField } : undefined;
    }
  }
}

// ---------------------------------------------------------------- graph

/** A transform cycle as `a → b → a`, found among `left` (the transforms Kahn's sort could not place). */
function findCycle(left: Set<string>, inputsOf: Map<string, string[]>): string[] {
  const start = [...left][0]!;
  // walk inputs inside `left`: every node there has an input there, so the walk repeats a node
  const seen = new Map<string, number>();
  const walk: string[] = [];
  let at = start;
  while (!seen.has(at)) {
    seen.set(at, walk.length);
    walk.push(at);
    at = (inputsOf.get(at) ?? []).find((i) => left.has(i))!;
  }
  // the walk follows inputs (upstream); the cycle is written downstream, in the order records flow
  return [...walk.slice(seen.get(at)!), at].reverse();
}

// ---------------------------------------------------------------- pipelines

type Kind = 'sources' | 'transforms' | 'sinks';

interface Stage {
  kind: Kind;
  id: string;
  path: string;
  inputs?: string[];
}

function parsePipeline(
  name: string,
  raw: unknown,
  path: string,
  hooks: ParseHooks,
  problems: string[],
): Pipeline | undefined {
  if (!isObject(raw)) {
    problems.push(`${path}: must be an object { sources, transforms?, sinks, queue? }, not ${show(raw)}`);
    return undefined;
  }
  const p = new Fields(raw, path, problems);
  p.known(PIPELINE_FIELDS, 'a pipeline');
  const h: Hooked = { hooks, problems };
  const stages = new Map<string, Stage>();
  const out: Pick<Pipeline, Kind> = { sources: {}, transforms: {}, sinks: {} };
  const types: Record<Kind, readonly string[]> = {
    sources: SOURCE_TYPES,
    transforms: TRANSFORM_TYPES,
    sinks: SINK_TYPES,
  };
  const what: Record<Kind, string> = { sources: 'source', transforms: 'transform', sinks: 'sink' };
  let count = 0;

  for (const kind of ['sources', 'transforms', 'sinks'] as const) {
    const group = p.obj[kind];
    if (group === undefined || group === null) {
      if (kind !== 'transforms')
        p.problem(
          kind,
          `is missing: a pipeline needs at least one ${what[kind]} ({ ID: { type: ${types[kind][0]}, … } })`,
        );
      continue;
    }
    if (!isObject(group)) {
      p.problem(kind, `must be an object { ID: { type, … } }, not ${show(group)}`);
      continue;
    }
    const ids = Object.keys(group);
    if (ids.length === 0 && kind !== 'transforms')
      p.problem(kind, `is empty: a pipeline needs at least one ${what[kind]}`);
    for (const id of ids) {
      const spath = `${p.at(kind)}${seg(id)}`;
      if (++count > MAX_STAGES) {
        problems.push(`${spath}: a pipeline has at most ${MAX_STAGES} stages: split it in two`);
        continue;
      }
      if (!STAGE_NAME.test(id)) {
        problems.push(`${spath}: ${show(id)} is not a stage name: a stage name ${STAGE_NAME_HINT}`);
        continue;
      }
      const other = stages.get(id);
      if (other) {
        problems.push(
          `${spath}: "${id}" is also the name of a ${what[other.kind]}: inputs name stages, so each name once`,
        );
        continue;
      }
      const stage: Stage = { kind, id, path: spath };
      stages.set(id, stage);
      const spec = group[id];
      if (!isObject(spec)) {
        problems.push(`${spath}: must be an object { type: ${types[kind].join('|')}, … }, not ${show(spec)}`);
        continue;
      }
      const f = new Fields(spec, spath, problems);
      if (kind !== 'sources') {
        // read first, so the graph is checked even when the rest of the stage is wrong
        const inputs = f.list('inputs', 'the sources or transforms this stage reads (["raw"])', { required: true });
        if (inputs?.length === 0)
          f.problem('inputs', `is empty: a ${what[kind]} reads at least one source or transform`);
        else if (inputs) stage.inputs = inputs;
      }
      const type = f.oneOf('type', types[kind], { required: true });
      if (!type) continue;
      const parsed =
        kind === 'sources'
          ? parseSource(f, type as SourceType)
          : kind === 'transforms'
            ? stage.inputs && parseTransform(f, type as TransformType, stage.inputs, h)
            : stage.inputs && parseSink(f, type as SinkType, stage.inputs);
      if (parsed) (out[kind] as Record<string, unknown>)[id] = parsed;
    }
  }

  // inputs: each names a source or transform of this pipeline
  const consumers: Record<string, string[]> = {};
  const feeders = [...stages.values()].filter((s) => s.kind !== 'sinks').map((s) => s.id);
  for (const id of feeders) consumers[id] = [];
  for (const s of stages.values()) {
    s.inputs?.forEach((input, i) => {
      const where = `${s.path}.inputs[${i}]`;
      const target = stages.get(input);
      if (target?.kind === 'sinks')
        problems.push(
          `${where}: "${input}" is a sink: a sink's records go nowhere further; name a source or transform (have: ${feeders.join(', ') || 'none'})`,
        );
      else if (!target)
        problems.push(
          `${where}: "${input}" is not a source or transform of ${name} (have: ${feeders.join(', ') || 'none'})${didYouMean(input, feeders)}`,
        );
      else consumers[input]!.push(s.id);
    });
  }

  // cycles among transforms, and the order they run in (Kahn's, in the order they are written)
  const transformIds = [...stages.values()].filter((s) => s.kind === 'transforms').map((s) => s.id);
  const inputsOf = new Map(transformIds.map((id) => [id, stages.get(id)!.inputs ?? []]));
  const waiting = new Map(
    transformIds.map((id) => [id, inputsOf.get(id)!.filter((i) => stages.get(i)?.kind === 'transforms').length]),
  );
  const order: string[] = [];
  const ready = transformIds.filter((id) => waiting.get(id) === 0);
  while (ready.length > 0) {
    const id = ready.shift()!;
    order.push(id);
    for (const c of consumers[id] ?? []) {
      if (!waiting.has(c)) continue;
      const n = waiting.get(c)! - 1;
      waiting.set(c, n);
      if (n === 0) ready.push(c);
    }
  }
  if (order.length < transformIds.length) {
    const left = new Set(transformIds.filter((id) => !order.includes(id)));
    const cycle = findCycle(left, inputsOf);
    problems.push(
      `${stages.get(cycle[0]!)!.path}.inputs: the transforms make a cycle ${cycle.join(' → ')}: a record would go round for ever; make one of them read a source or an earlier transform instead`,
    );
  }

  // every source and transform feeds something
  for (const id of feeders) {
    const s = stages.get(id)!;
    if (consumers[id]!.length === 0)
      problems.push(
        `${s.path}: feeds nothing, so its records would be dropped: name "${id}" in a transform's or sink's inputs, or remove it`,
      );
  }

  // queue and timeField
  let queue: QueueSpec | undefined = { ...DEFAULT_QUEUE };
  const q = p.sub('queue', '{ maxRecords?, maxBytes?, maxAgeMs?, onFull?: "drop-oldest" | "drop-newest" | "block" }');
  if (q) {
    q.known(['maxRecords', 'maxBytes', 'maxAgeMs', 'onFull'], 'a queue');
    const maxRecords = q.int('maxRecords', {
      min: 1,
      max: 1_000_000_000,
      unit: 'records',
      dflt: DEFAULT_QUEUE.maxRecords,
    });
    const maxBytes = q.int('maxBytes', { min: 1024 * 1024, max: 2 ** 42, unit: 'bytes', dflt: DEFAULT_QUEUE.maxBytes });
    const maxAgeMs = q.int('maxAgeMs', {
      min: 1000,
      max: 366 * DAY,
      unit: 'milliseconds',
      dflt: DEFAULT_QUEUE.maxAgeMs,
    });
    const onFull = q.oneOf('onFull', ON_FULL, { dflt: DEFAULT_QUEUE.onFull });
    queue = maxRecords && maxBytes && maxAgeMs && onFull ? { maxRecords, maxBytes, maxAgeMs, onFull } : undefined;
  }
  const timeField = p.str('timeField', FIELD_HINT) ?? (p.has('timeField') ? undefined : DEFAULTS.timeField);

  if (!queue || !timeField) return undefined;
  return { name, ...out, queue, order, consumers, timeField };
}

/**
 * The Hand's settings (`{ pipelines: { NAME: … } }`) checked: the pipelines that are right, with defaults filled and
 * their transforms in order, and a problem for everything wrong, each naming its path. A pipeline with a problem is
 * left out (one more problem says so); the others are kept.
 */
export function parsePipelines(raw: unknown, hooks: ParseHooks = {}): ParsedPipelines {
  const pipelines: Pipeline[] = [];
  const problems: string[] = [];
  if (raw === undefined || raw === null) return { pipelines, problems };
  if (!isObject(raw)) {
    problems.push(
      `settings: must be an object { pipelines: { NAME: { sources, transforms?, sinks } } }, not ${show(raw)}`,
    );
    return { pipelines, problems };
  }
  for (const k of Object.keys(raw))
    if (k !== 'pipelines')
      problems.push(`settings${seg(k)}: is not a known field (pipelines)${didYouMean(k, ['pipelines'])}; ignored`);
  const all = raw.pipelines;
  if (all === undefined || all === null) return { pipelines, problems };
  if (!isObject(all)) {
    problems.push(`pipelines: must be an object { NAME: { sources, transforms?, sinks } }, not ${show(all)}`);
    return { pipelines, problems };
  }
  const names = Object.keys(all);
  for (const name of names.slice(0, MAX_PIPELINES)) {
    const path = `pipelines${seg(name)}`;
    if (!STAGE_NAME.test(name)) {
      problems.push(`${path}: ${show(name)} is not a pipeline name: a pipeline name ${STAGE_NAME_HINT}; left out`);
      continue;
    }
    const mine: string[] = [];
    const pipeline = parsePipeline(name, all[name], path, hooks, mine);
    if (mine.length === 0 && pipeline) pipelines.push(pipeline);
    else {
      problems.push(...mine);
      problems.push(
        `${path}: left out (${mine.length || 'a'} problem${mine.length === 1 ? '' : 's'} above); the other pipelines run`,
      );
    }
  }
  if (names.length > MAX_PIPELINES)
    problems.push(`pipelines: at most ${MAX_PIPELINES}; ${names.slice(MAX_PIPELINES).join(', ')} left out`);
  return { pipelines, problems };
}
