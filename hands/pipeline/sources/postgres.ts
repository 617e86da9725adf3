/**
 * The Data Pipeline Hand's PostgreSQL source (`type: sql, driver: postgres`): runs `spec.query` through `pg` (one
 * client, connected on the first poll, over the raw socket the Hand's `network: { raw: true }` grant allows) with
 * `:cursor` sent as the parameter $1, bound to the last acknowledged value of `spec.cursor.column` (kept in the
 * source's state; `spec.cursor.initial` before the first ack). Follows ./types.ts's contract: the cursor moves only on
 * ack(), so a crash between poll and ack re-reads. The Hand resolves the `connection` secret and passes the connection
 * string in `opts`; this file never reads secrets.
 *
 * The query is wrapped: `SELECT * FROM (query) AS talon_source ORDER BY "column" LIMIT n`, n = `opts.limit` (default
 * POSTGRES_POLL_LIMIT, 1000 rows per poll); `more` when the limit was hit. The cursor column should be unique and
 * increasing (an id, or an update time with ties broken by the query): rows sharing the last value past a limit would
 * be skipped by `column > :cursor`. Without `cursor.initial` and before the first ack, `:cursor` is the smallest value
 * of the column's type (read from the query's row description: -2^15/-2^31/-2^63 for integers, -Infinity for
 * floats and numeric, -infinity for dates and times, '' for text, the nil UUID), so `column > :cursor` reads every
 * row (a text row holding '' excepted); another type needs `cursor.initial`.
 *
 * Values: the session runs with TimeZone UTC; timestamps, dates and times come as ISO 8601 text, exactly as stored
 * (`2015-09-08T11:39:00.123456Z` for timestamptz, no zone for timestamp: microseconds kept, so the cursor round-trips
 * exactly); bigint becomes a number when it is a safe integer (else its text); numeric stays text (exact); bytea
 * becomes base64 text; json/jsonb are parsed; arrays are arrays.
 *
 * Failures: a poll that cannot connect, or whose query fails, answers `{ error }` (nothing read, the cursor unchanged)
 * and never throws; a connection error (refused, cut, the server shutting down: no SQLSTATE, class 08, 57P) drops the
 * client and the next poll connects again.
 */
import pg from 'pg';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { PipelineRecord, SqlSourceSpec } from '../types.ts';
import type { PollResult, Source, SourceDeps } from './types.ts';

const STATE_KEY = 'cursor';
export const POSTGRES_POLL_LIMIT = 1000;
/** a connection attempt is given up after this long (the poll answers the error) */
export const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;
/** a poll's query is cancelled by the server after this long */
export const POSTGRES_STATEMENT_TIMEOUT_MS = 60_000;

export interface PostgresSourceOptions {
  /** the connection string (`postgres://user:pass@host:5432/db`), resolved by the Hand from the `connection` secret */
  connectionString: string;
  /** rows per poll at most (default POSTGRES_POLL_LIMIT) */
  limit?: number;
}

type CursorValue = string | number;

// type OIDs (pg_type): the ones read as text here, and the ones with a known smallest value
const OID = {
  int2: 21,
  int4: 23,
  int8: 20,
  float4: 700,
  float8: 701,
  numeric: 1700,
  text: 25,
  varchar: 1043,
  bpchar: 1042,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  timetz: 1266,
  uuid: 2950,
} as const;

const SMALLEST: Record<number, string> = {
  [OID.int2]: '-32768',
  [OID.int4]: '-2147483648',
  [OID.int8]: '-9223372036854775808',
  [OID.float4]: '-Infinity',
  [OID.float8]: '-Infinity',
  [OID.numeric]: '-Infinity',
  [OID.text]: '',
  [OID.varchar]: '',
  [OID.bpchar]: '',
  [OID.date]: '-infinity',
  [OID.timestamp]: '-infinity',
  [OID.timestamptz]: '-infinity',
  [OID.time]: '00:00:00',
  [OID.uuid]: '00000000-0000-0000-0000-000000000000',
};

const isoTime = (text: string): string => text.replace(' ', 'T');
const PARSERS: Record<number, (text: string) => unknown> = {
  [OID.timestamp]: isoTime,
  [OID.timestamptz]: (text) => isoTime(text).replace(/\+00(:00)?$/, 'Z'),
  [OID.date]: (text) => text,
  [OID.time]: (text) => text,
  [OID.timetz]: (text) => text,
  [OID.int8]: (text) => {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : text;
  },
};

/** pg's own parsers, except the ones above (text parsers only: the client never asks for binary results) */
export const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    PARSERS[oid] ?? pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};

/**
 * An error that means the connection is gone (drop the client, connect again), not a fault of the query: anything
 * but the server's own error answer (refused, reset, a timeout, "Connection terminated"), or one of class 08
 * (connection exception) or 57P (the server shutting down, not accepting connections yet).
 */
export function connectionLost(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError)) return true;
  const code = err.code ?? '';
  return code.startsWith('08') || code.startsWith('57P');
}

/** `:cursor` → `$1` (not `::cursor`, a cast to a type named cursor); answers the text and whether it was there */
export function bindCursor(query: string): { text: string; found: boolean } {
  let found = false;
  const text = query.replace(/(?<!:):cursor\b/g, () => {
    found = true;
    return '$1';
  });
  return { text, found };
}

/** A PostgreSQL source; a spec that is not for PostgreSQL, a bad cursor column or limit throw (misconfiguration). */
export function createPostgresSource(
  spec: SqlSourceSpec,
  deps: Pick<SourceDeps, 'state' | 'log'>,
  opts: PostgresSourceOptions,
): Source {
  return new PostgresSource(spec, deps, opts);
}

class PostgresSource implements Source {
  readonly #spec: SqlSourceSpec;
  readonly #deps: Pick<SourceDeps, 'state' | 'log'>;
  readonly #connectionString: string;
  readonly #limit: number;
  /** the query with $1 for :cursor, and its wrapping */
  readonly #inner: string;
  readonly #sql: string;
  #closed = false;
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  /** the smallest value of the cursor column's type, once read (no cursor.initial) */
  #smallest: string | undefined;

  constructor(spec: SqlSourceSpec, deps: Pick<SourceDeps, 'state' | 'log'>, opts: PostgresSourceOptions) {
    if (spec.driver !== 'postgres')
      throw new TalonError(
        'BAD_REQUEST',
        'driver: a PostgreSQL source is driver: postgres (a SQLite database is sources/sqlite.ts, driver: sqlite)',
      );
    if (typeof opts.connectionString !== 'string' || opts.connectionString === '')
      throw new TalonError(
        'BAD_REQUEST',
        `connection: the secret ${JSON.stringify(spec.connection ?? '')} gave no connection string: ` +
          'store one ("postgres://user:pass@host:5432/db") with `talon secrets set`',
      );
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.cursor.column))
      throw new TalonError(
        'BAD_REQUEST',
        `cursor.column: ${JSON.stringify(spec.cursor.column)} is not a column name (letters, digits, _)`,
      );
    const limit = opts.limit ?? POSTGRES_POLL_LIMIT;
    if (!Number.isInteger(limit) || limit < 1)
      throw new TalonError('BAD_REQUEST', `limit: must be a whole number ≥ 1, not ${limit}`);
    const { text, found } = bindCursor(spec.query.trim().replace(/;+\s*$/, ''));
    if (!found)
      throw new TalonError(
        'BAD_REQUEST',
        'query: does not use :cursor: compare the cursor column with it ("… WHERE id > :cursor ORDER BY id"), ' +
          'or every poll reads every row again',
      );
    this.#spec = spec;
    this.#deps = deps;
    this.#connectionString = opts.connectionString;
    this.#limit = limit;
    this.#inner = text;
    this.#sql = `SELECT * FROM (${text}\n) AS talon_source ORDER BY "${spec.cursor.column}" LIMIT ${limit}`;
  }

  /** the connected client, connecting once (concurrent polls share the attempt) */
  #connect(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= (async () => {
      const client = new pg.Client({
        connectionString: this.#connectionString,
        connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
        types: pgTypes,
      });
      // an idle client whose server went away emits 'error': without a listener that would crash the worker
      client.on('error', (err) => {
        this.#deps.log('warn', `PostgreSQL source: the connection was lost (${err.message}); the next poll reconnects`);
        if (this.#client === client) this.#client = undefined;
      });
      client.on('end', () => {
        if (this.#client === client) this.#client = undefined;
      });
      try {
        await client.connect();
        await client.query(
          `SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET statement_timeout = ${POSTGRES_STATEMENT_TIMEOUT_MS}`,
        );
      } catch (err) {
        client.end().catch(() => undefined);
        throw err;
      }
      if (this.#closed) {
        await client.end().catch(() => undefined);
        throw new Error('the source was closed');
      }
      this.#client = client;
      return client;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  #drop(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    return client ? client.end().catch(() => undefined) : Promise.resolve();
  }

  #failed(err: unknown): PollResult {
    const lost = connectionLost(err);
    if (lost) void this.#drop();
    const e = err as Error & { code?: string; detail?: string };
    const what = e.message || (e as { code?: string }).code || String(err);
    const error = lost
      ? `PostgreSQL source: cannot reach the server (${what}); the next poll connects again`
      : `PostgreSQL source: the query failed: ${what}${e.detail ? ` (${e.detail})` : ''}`;
    this.#deps.log('warn', error);
    return { records: [], bad: [], token: null, more: false, error };
  }

  /** the smallest value of the cursor column's type, from the query's row description (no rows read) */
  async #smallestValue(client: pg.Client): Promise<string | { error: string }> {
    if (this.#smallest !== undefined) return this.#smallest;
    const column = this.#spec.cursor.column;
    const res = await client.query(`SELECT * FROM (${this.#inner}\n) AS talon_source LIMIT 0`, [null]);
    const field = res.fields.find((f) => f.name === column);
    if (!field) return { error: `cursor.column: the query's rows have no column "${column}"; select it` };
    const smallest = SMALLEST[field.dataTypeID];
    if (smallest === undefined)
      return {
        error:
          `cursor.initial: the cursor column "${column}" is of a type (oid ${field.dataTypeID}) with no known ` +
          'smallest value: write cursor.initial (the value before the first row)',
      };
    this.#smallest = smallest;
    return smallest;
  }

  async poll(): Promise<PollResult> {
    const saved = await this.#deps.state.get<{ value: CursorValue }>(STATE_KEY);
    const column = this.#spec.cursor.column;
    let rows: Record<string, unknown>[];
    try {
      const client = await this.#connect();
      let cursor: CursorValue | undefined = saved ? saved.value : this.#spec.cursor.initial;
      if (cursor === undefined) {
        const smallest = await this.#smallestValue(client);
        if (typeof smallest !== 'string') return { records: [], bad: [], token: null, more: false, ...smallest };
        cursor = smallest;
      }
      rows = (await client.query({ text: this.#sql, values: [cursor] })).rows as Record<string, unknown>[];
    } catch (err) {
      return this.#failed(err);
    }
    if (rows.length === 0) return { records: [], bad: [], token: null, more: false };
    const records: PipelineRecord[] = rows.map((row) => {
      const rec: PipelineRecord = {};
      for (const [k, v] of Object.entries(row))
        rec[k] = Buffer.isBuffer(v) ? v.toString('base64') : v instanceof Date ? v.toISOString() : v;
      return rec;
    });
    const last = records[records.length - 1]![column];
    if (typeof last !== 'number' && typeof last !== 'string')
      return {
        records: [],
        bad: [],
        token: null,
        more: false,
        error:
          `cursor.column: the query's rows have no number or text column "${column}" ` +
          `(got ${last === null ? 'null' : typeof last}); select it`,
      };
    // ±Infinity and NaN (a float column) as PostgreSQL's text for them: the Hand's store keeps JSON, which has none
    const cursor = typeof last === 'number' && !Number.isFinite(last) ? String(last) : last;
    return { records, bad: [], token: { cursor }, more: rows.length === this.#limit };
  }

  async ack(token: unknown): Promise<void> {
    if (typeof token !== 'object' || token === null || !('cursor' in token)) return;
    const value = (token as { cursor: unknown }).cursor;
    if (typeof value !== 'number' && typeof value !== 'string') return;
    await this.#deps.state.put(STATE_KEY, { value });
  }

  /** ends the client; a poll after close() connects again */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    await this.#drop();
    this.#closed = false;
  }
}
