/**
 * The Data Pipeline Hand's shared types: a record, and every stage of a pipeline as ./config.ts hands it over after
 * checking the settings (defaults filled, names resolved). A pipeline is a graph, Vector-style:
 *
 *   pipelines: { NAME: { sources: { ID: { type, … } },
 *                        transforms: { ID: { type, inputs: [ID…], … } },
 *                        sinks: { ID: { type, inputs: [ID…], … } },
 *                        queue?: { maxRecords?, maxBytes?, maxAgeMs?, onFull }, timeField? } }
 *
 * A stage's id is its key in `sources`, `transforms` or `sinks` (the spec does not repeat it). `inputs` name sources
 * or transforms of the same pipeline, never a sink. Expressions (filter, derive) are JSONata, compiled at load by
 * ./transforms.ts; code transforms run in QuickJS (./sandbox.ts); the queue is the journal's (./journal.ts).
 *
 * No code here: types only, so every part of the Hand can import this file.
 */

/** A record: a plain JSON object. Its time is `record[timeField]` (ms since the epoch or ISO text) or its arrival. */
export type PipelineRecord = Record<string, unknown>;

// ---------------------------------------------------------------- sources

/** Records published on the bus (sensor readings included): each message's payload, an object, is a record. */
export interface BusSourceSpec {
  type: 'bus';
  /** an MQTT topic filter (`+` and `#` allowed): `sensors/+/reading` */
  topic: string;
}

/** How an HTTP source follows pages. */
export interface HttpPagination {
  /** `link`: the response's `Link: <…>; rel="next"` header; `cursor`: a field of the body sent back as a parameter */
  next: 'link' | 'cursor';
  /** (cursor) the body's field holding the next cursor (a dotted path: `meta.next`) */
  cursorField?: string;
  /** (cursor) the query parameter it is sent back as */
  param?: string;
  /** pages read per poll at most (default 10) */
  maxPages?: number;
}

/** Polls an HTTP API (GET) every `intervalMs`; the body is a record or an array of records. */
export interface HttpSourceSpec {
  type: 'http';
  /** http: or https: */
  url: string;
  intervalMs: number;
  /** send If-None-Match with the last ETag (default true): a 304 reads nothing */
  etag?: boolean;
  pagination?: HttpPagination;
  headers?: Record<string, string>;
}

/** A watched folder: each new file's rows are records. */
export interface FileSourceSpec {
  type: 'file';
  dir: string;
  format: 'csv' | 'jsonl' | 'json';
  /** a glob of the names read (`*.csv`); default every file */
  pattern?: string;
  /** (csv) one character, default "," */
  delimiter?: string;
  /** (csv) the first row names the fields (default true) */
  header?: boolean;
}

/** An SQL query run every `intervalMs`, incremental: rows past the last `cursor.column` value read. */
export interface SqlSourceSpec {
  type: 'sql';
  driver: 'sqlite' | 'postgres';
  /** (sqlite) the database file */
  database?: string;
  /** (postgres) the name of the sealed secret holding the connection string */
  connection?: string;
  /** the query; `:cursor` stands for the last value read (`SELECT * FROM t WHERE id > :cursor ORDER BY id`) */
  query: string;
  cursor: { column: string; initial?: string | number };
  intervalMs: number;
}

/**
 * The Web Automation Hand's extractions as they arrive on the bus: a watch's changes (`web/watch/<id>/changed`) or a
 * flow's runs (`web/flow/<name>/run`, the run's output as the record). Neither: every watch's changes and every
 * flow's runs. At most one of the two.
 */
export interface WebSourceSpec {
  type: 'web';
  watch?: string;
  flow?: string;
}

export type SourceSpec = BusSourceSpec | HttpSourceSpec | FileSourceSpec | SqlSourceSpec | WebSourceSpec;
export type SourceType = SourceSpec['type'];

// ---------------------------------------------------------------- transforms

interface StageInputs {
  /** the sources and transforms whose records this stage takes (at least one) */
  inputs: string[];
}

/** Keeps only the fields named: `{ out: in }` (a dotted path on the right reads a nested field). */
export interface MapTransformSpec extends StageInputs {
  type: 'map';
  fields: Record<string, string>;
}

/** Renames fields `{ from: to }`, the rest kept. */
export interface RenameTransformSpec extends StageInputs {
  type: 'rename';
  fields: Record<string, string>;
}

export type CastType = 'number' | 'integer' | 'string' | 'boolean' | 'timestamp';

/** Casts fields; a value that cannot be cast fails the record (to the dead-letter queue). `timestamp` = ms. */
export interface CastTransformSpec extends StageInputs {
  type: 'cast';
  fields: Record<string, CastType>;
}

/** Keeps the records the JSONata expression is truthy for. */
export interface FilterTransformSpec extends StageInputs {
  type: 'filter';
  expr: string;
}

export interface DropTransformSpec extends StageInputs {
  type: 'drop';
  fields: string[];
}

/** Sets fields from JSONata expressions over the record: `{ name: expr }`. */
export interface DeriveTransformSpec extends StageInputs {
  type: 'derive';
  fields: Record<string, string>;
}

/** Drops a record whose key was seen within `windowMs`. config.ts always hands `key` over as a list. */
export interface DedupeTransformSpec extends StageInputs {
  type: 'dedupe';
  key: string | string[];
  windowMs: number;
  /** keys remembered at most (the oldest forgotten first; ./transforms.ts says the default) */
  maxKeys?: number;
}

export type AggregateOp = 'count' | 'sum' | 'min' | 'max' | 'mean' | 'p50' | 'p90' | 'p95' | 'p99' | 'percentile';

/** One output field of an aggregate: `count` needs no field; `percentile` needs `p` (0-100). */
export interface AggregateField {
  op: AggregateOp;
  field?: string;
  p?: number;
}

export interface AggregateWindow {
  type: 'tumbling' | 'sliding';
  sizeMs: number;
  /** (sliding) how far a window moves; 0 < slideMs ≤ sizeMs */
  slideMs?: number;
}

/** Windowed aggregates by record time (`timeField`, else the pipeline's), per group. */
export interface AggregateTransformSpec extends StageInputs {
  type: 'aggregate';
  window: AggregateWindow;
  groupBy?: string[];
  timeField?: string;
  fields: Record<string, AggregateField>;
  /** how long after its end a window still takes late records (default 0) */
  graceMs?: number;
  /** windows open at once at most (./window.ts says the default) */
  maxOpen?: number;
}

/** Unit conversion of one field (`{ field: temp, from: degF, to: degC }`); the units are ./units.ts's. */
export interface ConvertTransformSpec extends StageInputs {
  type: 'convert';
  field: string;
  from: string;
  to: string;
}

/** JSON Schema validation (ajv): a record that fails goes to the dead-letter queue with ajv's errors. */
export interface ValidateTransformSpec extends StageInputs {
  type: 'validate';
  schema: Record<string, unknown>;
}

/**
 * A JavaScript function run in QuickJS (WebAssembly): `source` inline or `file` (read at load by the Hand), with a CPU
 * deadline per record and a memory limit (config.ts fills both: CODE_DEFAULTS).
 */
export interface CodeTransformSpec extends StageInputs {
  type: 'code';
  source?: string;
  file?: string;
  timeoutMs?: number;
  memoryMb?: number;
}

export type TransformSpec =
  | MapTransformSpec
  | RenameTransformSpec
  | CastTransformSpec
  | FilterTransformSpec
  | DropTransformSpec
  | DeriveTransformSpec
  | DedupeTransformSpec
  | AggregateTransformSpec
  | ConvertTransformSpec
  | ValidateTransformSpec
  | CodeTransformSpec;
export type TransformType = TransformSpec['type'];

// ---------------------------------------------------------------- sinks

/**
 * Batched POSTs with an `Idempotency-Key` header (the batch's first..last journal ids); `idempotencyKey` names a record
 * field that also carries each record's own id (./sinks/http.ts).
 */
export interface HttpSinkSpec extends StageInputs {
  type: 'http';
  url: string;
  format: 'json' | 'ndjson';
  batch: { maxRecords: number; maxMs: number };
  idempotencyKey?: string;
  headers?: Record<string, string>;
}

/** Publishes each record on another broker (mqtt: or mqtts:). */
export interface MqttSinkSpec extends StageInputs {
  type: 'mqtt';
  url: string;
  topic: string;
  qos?: 0 | 1 | 2;
}

/** Appends to a file, rotated by size or age (at least one of the two). */
export interface FileSinkSpec extends StageInputs {
  type: 'file';
  path: string;
  format: 'jsonl' | 'csv';
  rotate: { maxBytes?: number; maxAgeMs?: number };
}

/** Inserts (or upserts by `key`) in transactions; `connection` is a sealed secret's name. */
export interface PostgresSinkSpec extends StageInputs {
  type: 'postgres';
  connection: string;
  table: string;
  key?: string[];
  /** the columns written (default: the record's fields) */
  columns?: string[];
}

export interface SqliteSinkSpec extends StageInputs {
  type: 'sqlite';
  database: string;
  table: string;
  key?: string[];
  /** the columns written (default: the record's keys) */
  columns?: string[];
}

/** InfluxDB line protocol over HTTP (v2 write API). */
export interface InfluxSinkSpec extends StageInputs {
  type: 'influx';
  url: string;
  org?: string;
  bucket: string;
  measurement: string;
  tags: string[];
  fields: string[];
  timeField?: string;
}

/** Prometheus remote write: one sample per record, `metric{labels…} = record[valueField]`. */
export interface PrometheusSinkSpec extends StageInputs {
  type: 'prometheus';
  url: string;
  metric: string;
  labels: string[];
  valueField: string;
}

export type SinkSpec =
  | HttpSinkSpec
  | MqttSinkSpec
  | FileSinkSpec
  | PostgresSinkSpec
  | SqliteSinkSpec
  | InfluxSinkSpec
  | PrometheusSinkSpec;
export type SinkType = SinkSpec['type'];

export type StageSpec = SourceSpec | TransformSpec | SinkSpec;

// ---------------------------------------------------------------- queue and pipeline

/** What the on-disk queue does at its limit: drop the oldest record, refuse the newest, or slow the sources. */
export type OnFull = 'drop-oldest' | 'drop-newest' | 'block';

/** The store-and-forward queue's limits (config.ts fills every field from DEFAULT_QUEUE). */
export interface QueueSpec {
  maxRecords: number;
  maxBytes: number;
  maxAgeMs: number;
  onFull: OnFull;
}

/** A checked pipeline. */
export interface Pipeline {
  name: string;
  sources: Record<string, SourceSpec>;
  transforms: Record<string, TransformSpec>;
  sinks: Record<string, SinkSpec>;
  queue: QueueSpec;
  /** every transform id, each after all the transforms it reads from */
  order: string[];
  /** the stages (transforms and sinks) reading each source and transform, by id */
  consumers: Record<string, string[]>;
  /** the record field holding its time (default "ts") */
  timeField: string;
}
