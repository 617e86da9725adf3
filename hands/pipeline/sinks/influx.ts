/**
 * The Data Pipeline Hand's InfluxDB sink: each batch is one POST of line protocol to the v2 write API
 * (`<url>/api/v2/write?org=<org>&bucket=<bucket>&precision=ms`) through `deps.fetch` (ctx.fetch, the Hand's network
 * grant), following ./types.ts's contract; the HTTP answers are read as ./http.ts reads them (its Retry-After parser
 * and backoff are reused).
 *
 * One record is one point, one line:
 *   <measurement>[,<tag>=<value>…] <field>=<value>[,<field>=<value>…] [<time in ms>]
 * Escaping per the line protocol reference: the measurement escapes "," and " "; tag keys, tag values and field keys
 * escape ",", "=" and " "; string field values are double-quoted with '"' and "\" escaped. Tags are written sorted by
 * key (InfluxDB's advice); a tag whose value is absent, null or "" is left out (InfluxDB takes no empty tag value).
 * Field values: a finite number as a float (`21.5`, `3`), a bigint as an integer (`3i`), a boolean as `true`/`false`,
 * a string quoted, an object or array quoted as its JSON text; an absent or null field (or NaN/Infinity) is left out.
 * The time: with `spec.timeField`, the record's value there (ms since the epoch, or ISO text) in ms; without it no
 * time is written and InfluxDB stamps the point on arrival.
 *
 * A record InfluxDB could not take is rejected alone before anything is sent: no field with a value (a point needs
 * one), a newline in a tag or field value (line protocol cannot carry it), a missing or unreadable time.
 *
 * What an answer means:
 *   2xx (204)              the whole batch is written
 *   408, 429, 5xx, a network error
 *                          transient: done 0, retryAfterMs from Retry-After or this sink's backoff (1 s doubled after
 *                          each failure in a row, up to 5 min, reset by a 2xx)
 *   400, 413, 422          InfluxDB refuses something in the batch (a field's type clashing with the stored one, a
 *                          point outside the bucket's retention, too large a body): the batch is split in halves (in
 *                          order) until the refused lines stand alone; a line refused alone is rejected with the status
 *                          and the start of InfluxDB's message, the rest delivered. Writing a point again is harmless
 *                          (same measurement, tags and time: it is overwritten), so halves InfluxDB partly wrote before
 *                          answering 400 can be sent again.
 *   401, 403, 404, other   misconfiguration (the token, the org or bucket, the url): done 0, retry in 5 min, an error
 *                          saying what to check
 */
import { TalonError } from '../../../runtime/core/errors.ts';
import type { InfluxSinkSpec, PipelineRecord } from '../types.ts';
import { BODY_QUOTE, HTTP_BACKOFF, parseRetryAfter } from './http.ts';
import type { SinkDeps, SinkEntry, SinkFetch, SinkResult, SinkWriter } from './types.ts';

export interface InfluxSinkOptions {
  /** an InfluxDB API token (the Hand resolves it from a sealed secret): sent as `Authorization: Token <token>` */
  token?: string;
}

const SPLITTABLE = new Set([400, 413, 422]);
const transient = (status: number): boolean => status === 408 || status === 429 || status >= 500;

/** the measurement: "," and " " escaped */
export const escapeMeasurement = (s: string): string => s.replace(/[\\, ]/g, (c) => `\\${c}`);
/** a tag key, tag value or field key: ",", "=" and " " escaped */
export const escapeKey = (s: string): string => s.replace(/[\\,= ]/g, (c) => `\\${c}`);
/** a string field value, quoted: '"' and "\" escaped */
export const quoteString = (s: string): string => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/** A record's time in ms (a number, or text Date.parse reads), or undefined when it has none readable. */
export function recordTime(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return Math.floor(v);
  if (typeof v === 'string' && v.trim() !== '') {
    const asNumber = Number(v);
    if (Number.isFinite(asNumber)) return Math.floor(asNumber);
    const at = Date.parse(v);
    if (!Number.isNaN(at)) return at;
  }
  return undefined;
}

/** One record as a line of line protocol, or the reason it cannot be one. */
export function toLine(spec: InfluxSinkSpec, record: PipelineRecord): { line: string } | { error: string } {
  let line = escapeMeasurement(spec.measurement);
  for (const tag of [...spec.tags].sort()) {
    const v = record[tag];
    if (v === undefined || v === null) continue;
    const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (text === '') continue;
    if (/[\n\r]/.test(text))
      return { error: `tag "${tag}" holds a line break: line protocol cannot carry one in a tag value` };
    line += `,${escapeKey(tag)}=${escapeKey(text)}`;
  }
  const fields: string[] = [];
  for (const field of spec.fields) {
    const v = record[field];
    let value: string;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) continue;
      value = String(v);
    } else if (typeof v === 'bigint') value = `${v}i`;
    else if (typeof v === 'boolean') value = String(v);
    else if (typeof v === 'string' || (typeof v === 'object' && v !== null)) {
      let text: string;
      try {
        text = typeof v === 'string' ? v : JSON.stringify(v);
      } catch (err) {
        return { error: `field "${field}" cannot be written as text: ${(err as Error).message}` };
      }
      if (/[\n\r]/.test(text))
        return { error: `field "${field}" holds a line break: line protocol cannot carry one in a field value` };
      value = quoteString(text);
    } else continue;
    fields.push(`${escapeKey(field)}=${value}`);
  }
  if (fields.length === 0)
    return {
      error: `no field has a value (fields: ${spec.fields.join(', ')}): an InfluxDB point needs at least one`,
    };
  line += ` ${fields.join(',')}`;
  if (spec.timeField !== undefined) {
    const v = record[spec.timeField];
    const at = recordTime(v);
    if (at === undefined)
      return {
        error:
          v === undefined || v === null
            ? `the time field "${spec.timeField}" is missing`
            : `the time field "${spec.timeField}" is ${JSON.stringify(v)}: write ms since the epoch or ISO 8601 text`,
      };
    line += ` ${at}`;
  }
  return { line };
}

interface Failure {
  kind: 'fail';
  retryAfterMs: number;
  error: string;
}

class InfluxSink implements SinkWriter {
  readonly #spec: InfluxSinkSpec;
  readonly #fetch: SinkFetch;
  readonly #deps: SinkDeps;
  readonly #token: string | undefined;
  readonly #url: string;
  #failures = 0;

  constructor(spec: InfluxSinkSpec, fetch: SinkFetch, deps: SinkDeps, token: string | undefined) {
    this.#spec = spec;
    this.#fetch = fetch;
    this.#deps = deps;
    this.#token = token;
    const q = new URLSearchParams();
    if (spec.org !== undefined) q.set('org', spec.org);
    q.set('bucket', spec.bucket);
    q.set('precision', 'ms');
    this.#url = `${spec.url.replace(/\/+$/, '')}/api/v2/write?${q}`;
  }

  async write(batch: SinkEntry[]): Promise<SinkResult> {
    if (batch.length === 0) return { done: 0, rejected: [] };
    const rejected: SinkResult['rejected'] = [];
    const lines = batch.map((e, index) => {
      const r = toLine(this.#spec, e.record);
      if ('line' in r) return r.line;
      rejected.push({ index, error: r.error });
      return undefined;
    });
    // settle [lo, hi) in order; answers where a transient failure stopped it (what is before is settled), or hi
    const settle = async (lo: number, hi: number): Promise<{ upto: number; fail?: Failure }> => {
      const sent: number[] = [];
      for (let i = lo; i < hi; i++) if (lines[i] !== undefined) sent.push(i);
      if (sent.length === 0) return { upto: hi };
      const r = await this.#post(sent.map((i) => lines[i] as string));
      if (r.kind === 'ok') return { upto: hi };
      if (r.kind === 'fail') return { upto: lo, fail: r };
      if (sent.length === 1) {
        rejected.push({ index: sent[0] as number, error: r.error });
        return { upto: hi };
      }
      const mid = sent[Math.ceil(sent.length / 2)] as number;
      const left = await settle(lo, mid);
      if (left.fail) return left;
      return settle(mid, hi);
    };
    const { upto, fail } = await settle(0, batch.length);
    const settled = rejected.filter((r) => r.index < upto).sort((x, y) => x.index - y.index);
    if (!fail) {
      this.#failures = 0;
      return { done: upto, rejected: settled };
    }
    return { done: upto, rejected: settled, retryAfterMs: fail.retryAfterMs, error: fail.error };
  }

  async close(): Promise<void> {}

  #backoff(): number {
    const ms = Math.min(HTTP_BACKOFF.firstMs * 2 ** this.#failures, HTTP_BACKOFF.maxMs);
    this.#failures++;
    return ms;
  }

  async #post(lines: string[]): Promise<{ kind: 'ok' } | Failure | { kind: 'refused'; error: string }> {
    const where = `InfluxDB write to bucket "${this.#spec.bucket}" at ${this.#spec.url}`;
    let res: Response;
    try {
      res = await this.#fetch(this.#url, {
        method: 'POST',
        headers: {
          'content-type': 'text/plain; charset=utf-8',
          accept: 'application/json',
          ...(this.#token !== undefined && { authorization: `Token ${this.#token}` }),
        },
        body: lines.join('\n'),
      });
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
    const quote = influxMessage(text).slice(0, BODY_QUOTE);
    if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
    if (transient(res.status)) {
      const given = parseRetryAfter(res.headers.get('retry-after'), this.#deps.now());
      if (given !== undefined) this.#failures++;
      const retryAfterMs = given ?? this.#backoff();
      const said = quote ? `: ${quote}` : '';
      const error = `${where} answered ${res.status} (transient); retrying in ${retryAfterMs} ms${said}`;
      return { kind: 'fail', retryAfterMs, error };
    }
    if (SPLITTABLE.has(res.status)) return { kind: 'refused', error: `InfluxDB answered ${res.status}: ${quote}` };
    const what =
      res.status === 401 || res.status === 403
        ? 'check the token (a sealed secret holding an InfluxDB API token with write access to the bucket)'
        : res.status === 404
          ? "check the sink's org and bucket (InfluxDB knows no such bucket in that org)"
          : "check the sink's url (the InfluxDB server's base URL, like http://influx.local:8086)";
    const said = quote ? ` (${quote})` : '';
    const error = `${where} answered ${res.status}: the sink is misconfigured, not the records: ${what}${said}`;
    this.#deps.log('error', error);
    return { kind: 'fail', retryAfterMs: HTTP_BACKOFF.misconfiguredMs, error };
  }
}

/** InfluxDB answers errors as `{ "code": …, "message": … }`: its message, else the body as it is */
function influxMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { message?: unknown };
    if (typeof j?.message === 'string') return j.message;
  } catch {
    // not JSON: quoted as it is
  }
  return text;
}

/**
 * An InfluxDB sink over `deps.fetch`; throws when fetch is missing (a bug in the Hand, not a delivery problem) or the
 * measurement starts with "#" (a line starting so is a comment).
 */
export function createInfluxSink(spec: InfluxSinkSpec, deps: SinkDeps, opts: InfluxSinkOptions = {}): SinkWriter {
  if (!deps.fetch)
    throw new TalonError('BAD_REQUEST', "createInfluxSink: deps.fetch is missing: pass ctx.fetch (the Hand's network)");
  if (spec.measurement.startsWith('#'))
    throw new TalonError(
      'BAD_REQUEST',
      `influx sink: measurement ${JSON.stringify(spec.measurement)} starts with "#", which line protocol reads as a ` +
        'comment: write a name not starting with "#"',
    );
  return new InfluxSink(spec, deps.fetch, deps, opts.token);
}
