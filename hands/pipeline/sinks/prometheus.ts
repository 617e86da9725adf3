/**
 * The Data Pipeline Hand's Prometheus sink: each batch is one Prometheus remote write 1.0 request through `deps.fetch`
 * (ctx.fetch, the Hand's network grant), following ./types.ts's contract; the HTTP answers are read as ./http.ts
 * reads them (its Retry-After parser and backoff are reused).
 *
 * One record is one sample: `metric{label=record[label]…} = record[valueField]` at the record's time
 * (`opts.timeField`, default "ts": ms since the epoch or ISO text; a record without one is stamped deps.now()).
 * A label whose field is absent, null or "" is left out (Prometheus reads an empty label as no label). The value is a
 * finite number, a numeric string ("21.5") or a boolean (1/0); anything else is not a sample and the record is
 * rejected alone, as is a record whose time is unreadable. Nothing is sent for a batch whose every record is rejected.
 *
 * The request (the remote write 1.0 spec): a protobuf `WriteRequest { repeated TimeSeries timeseries = 1 }` with
 * `TimeSeries { repeated Label labels = 1; repeated Sample samples = 2 }`, `Label { string name = 1; string value =
 * 2 }`, `Sample { double value = 1; int64 timestamp = 2 }`, encoded here (the four messages are small), then snappy
 * block-compressed (snappyjs); headers `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
 * `X-Prometheus-Remote-Write-Version: 0.1.0`. The batch's samples are grouped by series (their labels, `__name__`
 * included, sorted by name as the spec requires), each series' samples sorted by time.
 *
 * What an answer means:
 *   2xx                    the whole batch is written
 *   408, 429, 5xx, a network error
 *                          transient: done 0, retryAfterMs from Retry-After or this sink's backoff (1 s doubled after
 *                          each failure in a row, up to 5 min, reset by a 2xx)
 *   401, 403, 404, 405     misconfiguration (credentials, the url): done 0, retry in 5 min, an error saying what to
 *                          check
 *   any other 4xx          the receiver refuses the data (an out-of-order or duplicate sample, a bad label): the spec
 *                          says such a request must not be retried, so every record sent is rejected with the status
 *                          and the start of the body
 */
// @ts-expect-error snappyjs ships no type declarations: the two functions used are declared below
import snappyjs from 'snappyjs';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { PipelineRecord, PrometheusSinkSpec } from '../types.ts';
import { BODY_QUOTE, HTTP_BACKOFF, parseRetryAfter } from './http.ts';
import { recordTime } from './influx.ts';
import type { SinkDeps, SinkEntry, SinkFetch, SinkResult, SinkWriter } from './types.ts';

/** snappyjs's block format (not the framed one): what remote write sends */
const snappy = snappyjs as { compress(data: Uint8Array): Uint8Array; uncompress(data: Uint8Array): Uint8Array };

export interface PrometheusSinkOptions {
  /** the record field holding a sample's time (the pipeline's timeField; default "ts") */
  timeField?: string;
  /** extra request headers (an Authorization the Hand resolved from a sealed secret) */
  headers?: Record<string, string>;
}

export const REMOTE_WRITE_HEADERS = Object.freeze({
  'content-encoding': 'snappy',
  'content-type': 'application/x-protobuf',
  'x-prometheus-remote-write-version': '0.1.0',
  'user-agent': 'talon-pipeline',
});

const MISCONFIGURED = new Set([401, 403, 404, 405]);
const transient = (status: number): boolean => status === 408 || status === 429 || status >= 500;

export interface Sample {
  value: number;
  timestamp: number;
}
export interface Series {
  /** sorted by name, `__name__` included */
  labels: Array<[string, string]>;
  samples: Sample[];
}

// ---------------------------------------------------------------- protobuf, by hand

/** the bytes of a protobuf message, appended field by field */
class ProtoWriter {
  #parts: Uint8Array[] = [];
  #length = 0;
  static readonly #text = new TextEncoder();

  get length(): number {
    return this.#length;
  }

  #push(bytes: Uint8Array): void {
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  /** an unsigned varint; a negative int64 as its 64-bit two's complement (10 bytes) */
  varint(n: number): this {
    const out: number[] = [];
    if (n < 0) {
      let v = BigInt.asUintN(64, BigInt(n));
      while (v >= 128n) {
        out.push(Number(v & 127n) | 128);
        v >>= 7n;
      }
      out.push(Number(v));
    } else {
      let v = n;
      while (v >= 128) {
        out.push((v % 128) | 128);
        v = Math.floor(v / 128);
      }
      out.push(v);
    }
    this.#push(Uint8Array.from(out));
    return this;
  }

  /** a field's key: (number << 3) | wire type */
  key(field: number, wire: 0 | 1 | 2): this {
    return this.varint(field * 8 + wire);
  }

  bytes(field: number, data: Uint8Array): this {
    this.key(field, 2).varint(data.length);
    this.#push(data);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, ProtoWriter.#text.encode(s));
  }

  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.key(field, 1);
    this.#push(b);
    return this;
  }

  int64(field: number, v: number): this {
    return this.key(field, 0).varint(v);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** A WriteRequest's protobuf bytes (uncompressed). */
export function encodeWriteRequest(series: Series[]): Uint8Array {
  const req = new ProtoWriter();
  for (const s of series) {
    const ts = new ProtoWriter();
    for (const [name, value] of s.labels) ts.bytes(1, new ProtoWriter().string(1, name).string(2, value).finish());
    for (const sample of s.samples)
      ts.bytes(2, new ProtoWriter().double(1, sample.value).int64(2, sample.timestamp).finish());
    req.bytes(1, ts.finish());
  }
  return req.finish();
}

// ---------------------------------------------------------------- records → samples

const labelText = (v: unknown): string =>
  v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);

/** A record's sample value, or undefined when it is not a number. */
function sampleValue(v: unknown): number | undefined {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

class PrometheusSink implements SinkWriter {
  readonly #spec: PrometheusSinkSpec;
  readonly #fetch: SinkFetch;
  readonly #deps: SinkDeps;
  readonly #timeField: string;
  readonly #headers: Record<string, string>;
  #failures = 0;

  constructor(spec: PrometheusSinkSpec, fetch: SinkFetch, deps: SinkDeps, opts: PrometheusSinkOptions) {
    this.#spec = spec;
    this.#fetch = fetch;
    this.#deps = deps;
    this.#timeField = opts.timeField ?? 'ts';
    this.#headers = { ...opts.headers, ...REMOTE_WRITE_HEADERS };
  }

  /** the batch's series (labels sorted, samples by time), or each record's reason it is not a sample */
  #toSeries(batch: SinkEntry[]): { series: Series[]; sent: number[]; rejected: SinkResult['rejected'] } {
    const bySeries = new Map<string, Series>();
    const sent: number[] = [];
    const rejected: SinkResult['rejected'] = [];
    batch.forEach((e, index) => {
      const r = this.#sample(e.record);
      if ('error' in r) return void rejected.push({ index, error: r.error });
      const id = JSON.stringify(r.labels);
      let s = bySeries.get(id);
      if (!s) bySeries.set(id, (s = { labels: r.labels, samples: [] }));
      s.samples.push(r.sample);
      sent.push(index);
    });
    const series = [...bySeries.values()];
    for (const s of series) s.samples.sort((a, b) => a.timestamp - b.timestamp);
    return { series, sent, rejected };
  }

  async write(batch: SinkEntry[]): Promise<SinkResult> {
    if (batch.length === 0) return { done: 0, rejected: [] };
    const { series, sent, rejected } = this.#toSeries(batch);
    if (sent.length === 0) return { done: batch.length, rejected };
    const r = await this.#post(snappy.compress(encodeWriteRequest(series)), sent.length);
    if (r.kind === 'ok') {
      this.#failures = 0;
      return { done: batch.length, rejected };
    }
    if (r.kind === 'refused') {
      this.#failures = 0;
      for (const index of sent) rejected.push({ index, error: r.error });
      return { done: batch.length, rejected: rejected.sort((x, y) => x.index - y.index) };
    }
    return { done: 0, rejected: [], retryAfterMs: r.retryAfterMs, error: r.error };
  }

  async close(): Promise<void> {}

  #sample(record: PipelineRecord): { labels: Array<[string, string]>; sample: Sample } | { error: string } {
    const { valueField, metric } = this.#spec;
    const raw = record[valueField];
    const value = sampleValue(raw);
    if (value === undefined) {
      const what = raw === undefined || raw === null ? 'missing' : JSON.stringify(String(raw)).slice(0, 80);
      return { error: `the value field "${valueField}" is ${what}: a Prometheus sample needs a finite number` };
    }
    let timestamp = this.#deps.now();
    const t = record[this.#timeField];
    if (t !== undefined && t !== null) {
      const at = recordTime(t);
      if (at === undefined)
        return {
          error: `the time field "${this.#timeField}" is ${JSON.stringify(t)}: write ms since the epoch or ISO 8601`,
        };
      timestamp = at;
    }
    const labels: Array<[string, string]> = [['__name__', metric]];
    for (const name of this.#spec.labels) {
      const text = labelText(record[name]);
      if (text !== '') labels.push([name, text]);
    }
    labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { labels, sample: { value, timestamp } };
  }

  #backoff(): number {
    const ms = Math.min(HTTP_BACKOFF.firstMs * 2 ** this.#failures, HTTP_BACKOFF.maxMs);
    this.#failures++;
    return ms;
  }

  async #post(
    body: Uint8Array,
    samples: number,
  ): Promise<
    { kind: 'ok' } | { kind: 'fail'; retryAfterMs: number; error: string } | { kind: 'refused'; error: string }
  > {
    const url = this.#spec.url;
    const where = `Prometheus remote write of ${samples} sample(s) to ${url}`;
    let res: Response;
    try {
      res = await this.#fetch(url, { method: 'POST', headers: this.#headers, body });
    } catch (err) {
      const error = `${where} failed: ${(err as Error).message ?? String(err)}`;
      return { kind: 'fail', retryAfterMs: this.#backoff(), error };
    }
    let text = '';
    try {
      text = await res.text();
    } catch {
      // the answer's body is only quoted in errors
    }
    const quote = text.trim().slice(0, BODY_QUOTE);
    if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
    if (transient(res.status)) {
      const given = parseRetryAfter(res.headers.get('retry-after'), this.#deps.now());
      if (given !== undefined) this.#failures++;
      const retryAfterMs = given ?? this.#backoff();
      const said = quote ? `: ${quote}` : '';
      return {
        kind: 'fail',
        retryAfterMs,
        error: `${where} answered ${res.status} (transient); retrying in ${retryAfterMs} ms${said}`,
      };
    }
    if (MISCONFIGURED.has(res.status)) {
      const what =
        res.status === 401 || res.status === 403
          ? 'check the credentials (the Authorization header the Hand adds from its secret)'
          : "check the sink's url (a remote write endpoint, like http://prometheus.local:9090/api/v1/write)";
      const said = quote ? ` (${quote})` : '';
      const error = `${where} answered ${res.status}: the sink is misconfigured, not the records: ${what}${said}`;
      this.#deps.log('error', error);
      return { kind: 'fail', retryAfterMs: HTTP_BACKOFF.misconfiguredMs, error };
    }
    return { kind: 'refused', error: `Prometheus answered ${res.status}: ${quote}` };
  }
}

/** A Prometheus remote write sink over `deps.fetch`; throws when fetch is missing (a bug in the Hand). */
export function createPrometheusSink(
  spec: PrometheusSinkSpec,
  deps: SinkDeps,
  opts: PrometheusSinkOptions = {},
): SinkWriter {
  if (!deps.fetch)
    throw new TalonError(
      'BAD_REQUEST',
      "createPrometheusSink: deps.fetch is missing: pass ctx.fetch (the Hand's network)",
    );
  return new PrometheusSink(spec, deps.fetch, deps, opts);
}
