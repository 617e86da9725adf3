/**
 * The Data Pipeline Hand's HTTP sink: each batch is one POST (a JSON array, or NDJSON: one record per line) through
 * `deps.fetch` (ctx.fetch, the Hand's network grant), following ./types.ts's contract.
 *
 * Idempotency: the request carries `Idempotency-Key: <first id>..<last id>` (one entry: its id alone), the journal's
 * ids (../journal.ts idempotencyKey), so a redelivered batch carries the same key. With `spec.idempotencyKey` set,
 * each record also carries its own id in that field (a record that already has the field keeps its value: its
 * natural key), so a server can drop duplicates record by record.
 *
 * What an answer means:
 *   2xx                   the whole batch is delivered
 *   408, 429, 5xx, a network error
 *                         transient: done 0, retryAfterMs from Retry-After (seconds or an HTTP date, at most an hour)
 *                         or this sink's backoff: 1 s, doubled after each failure in a row up to 5 min, reset by a 2xx
 *   400, 413, 422         the server refuses something in the batch: the batch is split in halves (in order) until the
 *                         refused records stand alone; a record refused alone is rejected with the status and the first
 *                         200 characters of the body, the rest is delivered. A transient answer while splitting stops
 *                         there: what was settled before it counts, the rest is retried.
 *   401, 403              misconfiguration (credentials), not the records' fault: done 0, retry in 5 min, a clear error
 *   any other status      (404, 405, 3xx …) misconfiguration of the URL: as 401/403
 * A record that cannot be serialized as JSON (a BigInt, a cycle) is rejected alone before anything is sent.
 */
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HttpSinkSpec, PipelineRecord } from '../types.ts';
import type { SinkDeps, SinkEntry, SinkFetch, SinkResult, SinkWriter } from './types.ts';

export const HTTP_BACKOFF = Object.freeze({
  firstMs: 1000,
  maxMs: 300_000,
  misconfiguredMs: 300_000,
  maxRetryAfterMs: 3_600_000,
});
/** how much of a refusing answer's body a rejection quotes */
export const BODY_QUOTE = 200;

const SPLITTABLE = new Set([400, 413, 422]);

const transient = (status: number): boolean => status === 408 || status === 429 || status >= 500;

/** Retry-After as milliseconds from now (`seconds` or an HTTP date), or undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v) * 1000, HTTP_BACKOFF.maxRetryAfterMs);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), HTTP_BACKOFF.maxRetryAfterMs);
}

interface Failure {
  kind: 'fail';
  retryAfterMs: number;
  error: string;
}

class HttpSink implements SinkWriter {
  readonly #spec: HttpSinkSpec;
  readonly #fetch: SinkFetch;
  readonly #deps: SinkDeps;
  #failures = 0;

  constructor(spec: HttpSinkSpec, fetch: SinkFetch, deps: SinkDeps) {
    this.#spec = spec;
    this.#fetch = fetch;
    this.#deps = deps;
  }

  async write(batch: SinkEntry[]): Promise<SinkResult> {
    if (batch.length === 0) return { done: 0, rejected: [] };
    const rejected: SinkResult['rejected'] = [];
    // each record's JSON first: one that cannot be serialized (a BigInt, a cycle) is rejected alone, never sent
    const json = batch.map((e, index) => {
      try {
        const text = JSON.stringify(this.#withId(e));
        if (typeof text === 'string') return text;
        throw new Error('not a JSON object');
      } catch (err) {
        rejected.push({ index, error: `cannot be sent as JSON: ${(err as Error).message}` });
        return undefined;
      }
    });
    // settle [lo, hi) in order; answers where a transient failure stopped it (what is before is settled), or hi
    const settle = async (lo: number, hi: number): Promise<{ upto: number; fail?: Failure }> => {
      const sent: number[] = [];
      for (let i = lo; i < hi; i++) if (json[i] !== undefined) sent.push(i);
      if (sent.length === 0) return { upto: hi };
      const r = await this.#post(
        sent.map((i) => (batch[i] as SinkEntry).id),
        sent.map((i) => json[i] as string),
      );
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

  /** the record, with its id in `spec.idempotencyKey` when set and the record has no such field */
  #withId(e: SinkEntry): PipelineRecord {
    const field = this.#spec.idempotencyKey;
    return field && e.record[field] === undefined ? { ...e.record, [field]: e.id } : e.record;
  }

  async #post(ids: string[], json: string[]): Promise<{ kind: 'ok' } | Failure | { kind: 'refused'; error: string }> {
    const key = ids.length === 1 ? (ids[0] as string) : `${ids[0]}..${ids[ids.length - 1]}`;
    const ndjson = this.#spec.format === 'ndjson';
    const url = this.#spec.url;
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method: 'POST',
        headers: {
          ...this.#spec.headers,
          'content-type': ndjson ? 'application/x-ndjson' : 'application/json',
          'idempotency-key': key,
        },
        body: ndjson ? json.map((line) => `${line}\n`).join('') : `[${json.join(',')}]`,
      });
    } catch (err) {
      const error = `POST ${url} failed: ${(err as Error).message ?? String(err)}`;
      return { kind: 'fail', retryAfterMs: this.#backoff(), error };
    }
    let text = '';
    try {
      text = await res.text();
    } catch {
      // the answer's body is only quoted in errors
    }
    const quote = text.slice(0, BODY_QUOTE);
    if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
    if (transient(res.status)) {
      const header = res.headers.get('retry-after');
      const given = parseRetryAfter(header, this.#deps.now());
      if (given !== undefined) this.#failures++;
      const retryAfterMs = given ?? this.#backoff();
      const said = quote ? `: ${quote}` : '';
      const error = `POST ${url} answered ${res.status} (transient); retrying in ${retryAfterMs} ms${said}`;
      return { kind: 'fail', retryAfterMs, error };
    }
    if (SPLITTABLE.has(res.status)) return { kind: 'refused', error: `HTTP ${res.status}: ${quote}` };
    const what =
      res.status === 401 || res.status === 403
        ? "check the credentials in the sink's headers (an Authorization header, a token that expired)"
        : "check the sink's url (the server does not take POSTs of records there)";
    const said = quote ? ` (${quote})` : '';
    const error = `POST ${url} answered ${res.status}: the sink is misconfigured, not the records: ${what}${said}`;
    this.#deps.log('error', error);
    return { kind: 'fail', retryAfterMs: HTTP_BACKOFF.misconfiguredMs, error };
  }
}

/** An HTTP sink over `deps.fetch`; throws when fetch is missing (a bug in the Hand, not a delivery problem). */
export function createHttpSink(spec: HttpSinkSpec, deps: SinkDeps): SinkWriter {
  if (!deps.fetch)
    throw new TalonError('BAD_REQUEST', "createHttpSink: deps.fetch is missing: pass ctx.fetch (the Hand's network)");
  return new HttpSink(spec, deps.fetch, deps);
}
