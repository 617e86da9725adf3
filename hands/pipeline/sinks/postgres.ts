/**
 * The Data Pipeline Hand's PostgreSQL sink: each batch is inserted, or upserted by `spec.key` (`INSERT … ON CONFLICT
 * (key) DO UPDATE SET` every other column `= EXCLUDED.` itself, `DO NOTHING` when the key is every column), in ONE
 * transaction through `pg` (one client, connected on the first write, over the raw socket the Hand's
 * `network: { raw: true }` grant allows), following ./types.ts's contract. The Hand resolves the `connection` secret
 * and passes the connection string in `opts`; this file never reads secrets.
 *
 * Exactly-once by key: a batch written twice (a redelivery after a crash) leaves one row per key. Without `key` the
 * sink plainly inserts, and a redelivery inserts again (at-least-once): write a key for exactly-once.
 *
 * Statements: consecutive records with the same columns go in one multi-row INSERT (at most POSTGRES_ROWS_PER_INSERT
 * rows and 65535 parameters); a record whose key already appears in the statement starts the next one, so a batch
 * updating the same key twice applies both in order (ON CONFLICT cannot touch a row twice in one statement).
 * Columns: `spec.columns` when given (a record's other fields are not written), else each record's own fields.
 * Identifiers come validated from ../config.ts and are quoted anyway (`"public"."readings"`). Values are sent as text
 * and PostgreSQL casts them to the column's type: null/absent → NULL; strings, numbers, booleans as they are; a
 * bigint as its digits; bytes (a Uint8Array) as bytea; an object or array as its JSON text (for a json/jsonb column).
 *
 * A record refused by the database (SQLSTATE class 22, a value the column's type does not take; class 23, a NOT NULL,
 * CHECK, UNIQUE or foreign key violation; 42703, a field the table has no column for; 42804, a type mismatch) is
 * rejected alone and the rest of the batch committed in the same transaction: each statement runs inside a SAVEPOINT;
 * a statement that fails is rolled back to it and split in halves (in order) until the refused records stand alone.
 * A record missing a key field is rejected before anything is sent. Anything else is the sink's problem, not the
 * records': the server down or refusing connections, the connection cut, a missing table, no unique index matching
 * `key` (42P10), no privilege, a deadlock: the transaction is rolled back, done 0, retryAfterMs (1 s doubled after each
 * failure in a row, up to 60 s) and the error naming what to fix; write() never throws.
 *
 * Known limit: a DEFERRABLE INITIALLY DEFERRED constraint is checked at COMMIT, where the record that breaks it cannot
 * be told apart: the whole batch fails and is retried with the backoff (make such constraints immediate).
 */
import pg from 'pg';
import { TalonError } from '../../../runtime/core/errors.ts';
import { connectionLost } from '../sources/postgres.ts';
import type { PipelineRecord, PostgresSinkSpec } from '../types.ts';
import type { SinkDeps, SinkEntry, SinkResult, SinkWriter } from './types.ts';

export const POSTGRES_BACKOFF = Object.freeze({ firstMs: 1000, maxMs: 60_000 });
/** rows per INSERT statement at most (and never more than 65535 parameters) */
export const POSTGRES_ROWS_PER_INSERT = 500;
const MAX_PARAMS = 65_535;
const CONNECT_TIMEOUT_MS = 10_000;
const STATEMENT_TIMEOUT_MS = 60_000;

export interface PostgresSinkOptions {
  /** the connection string (`postgres://user:pass@host:5432/db`), resolved by the Hand from the `connection` secret */
  connectionString: string;
}

export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const quoteTable = (table: string): string => table.split('.').map(quoteIdent).join('.');

/** SQLSTATEs that are one record's fault: its values, its constraints, a field the table lacks */
function recordsFault(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError)) return false;
  const code = err.code ?? '';
  return code.startsWith('22') || code.startsWith('23') || code === '42703' || code === '42804' || code === '54000';
}

/** SQLSTATE 21000: ON CONFLICT DO UPDATE met the same row twice in one statement (keys equal once cast): split */
const twice = (err: unknown): boolean => err instanceof pg.DatabaseError && err.code === '21000';

function describe(err: unknown): string {
  const e = err as Error & { code?: string; detail?: string };
  const msg = e.message || e.code || String(err);
  return e.detail ? `${msg} (${e.detail})` : msg;
}

function bindable(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v; // pg writes it as a timestamp
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return JSON.stringify(v);
}

/** one INSERT's worth: batch indexes sharing a column list */
interface Group {
  columns: string[];
  rows: number[];
}

class PostgresSink implements SinkWriter {
  readonly #spec: PostgresSinkSpec;
  readonly #deps: SinkDeps;
  readonly #connectionString: string;
  readonly #table: string;
  #client: pg.Client | undefined;
  #failures = 0;

  constructor(spec: PostgresSinkSpec, deps: SinkDeps, opts: PostgresSinkOptions) {
    if (typeof opts.connectionString !== 'string' || opts.connectionString === '')
      throw new TalonError(
        'BAD_REQUEST',
        `connection: the secret ${JSON.stringify(spec.connection)} gave no connection string: ` +
          'store one ("postgres://user:pass@host:5432/db") with `talon secrets set`',
      );
    if (spec.columns?.length === 0)
      throw new TalonError('BAD_REQUEST', 'columns: an empty list writes nothing: name the columns, or leave it out');
    this.#spec = spec;
    this.#deps = deps;
    this.#connectionString = opts.connectionString;
    this.#table = quoteTable(spec.table);
  }

  async write(batch: SinkEntry[]): Promise<SinkResult> {
    if (batch.length === 0) return { done: 0, rejected: [] };
    const rejected: SinkResult['rejected'] = [];
    const groups = this.#group(batch, rejected);
    let client: pg.Client | undefined;
    let open = false;
    try {
      client = await this.#connect();
      await client.query('BEGIN');
      open = true;
      for (const g of groups) await this.#settle(client, batch, g.columns, g.rows, rejected);
      await client.query('COMMIT');
      open = false;
      this.#failures = 0;
      return { done: batch.length, rejected: rejected.sort((a, b) => a.index - b.index) };
    } catch (err) {
      if (connectionLost(err)) this.#drop();
      else if (open && client)
        await client.query('ROLLBACK').catch(() => {
          this.#drop(); // the rollback failed too: start over on a new connection
        });
      const retryAfterMs = Math.min(POSTGRES_BACKOFF.firstMs * 2 ** this.#failures++, POSTGRES_BACKOFF.maxMs);
      const what = `${this.#hint(err)}: ${describe(err)}`;
      const error = `writing to PostgreSQL table ${this.#spec.table} failed${what}; retrying in ${retryAfterMs} ms`;
      this.#deps.log('warn', error);
      return { done: 0, rejected: [], retryAfterMs, error };
    }
  }

  async close(): Promise<void> {
    await this.#drop();
  }

  /** what to fix, for the errors that are the sink's configuration */
  #hint(err: unknown): string {
    const code = (err as { code?: unknown }).code;
    if (connectionLost(err)) return ' (cannot reach the server)';
    if (code === '42P01') return ` (no such table: create it, or fix the sink's table)`;
    if (code === '42P10')
      return ` (no unique index or primary key on (${(this.#spec.key ?? []).join(', ')}): create one, or fix the key)`;
    if (code === '42501') return ' (the user may not write there: GRANT INSERT, UPDATE)';
    return '';
  }

  /** the batch as INSERT groups, in order; records missing a key field or with no field are rejected here */
  #group(batch: SinkEntry[], rejected: SinkResult['rejected']): Group[] {
    const key = this.#spec.key ?? [];
    const groups: Group[] = [];
    let current: (Group & { id: string; keys: Set<string> }) | undefined;
    for (let i = 0; i < batch.length; i++) {
      const record = (batch[i] as SinkEntry).record;
      const missing = key.filter((k) => record[k] === undefined || record[k] === null);
      if (missing.length > 0) {
        rejected.push({ index: i, error: `the key field ${missing.map((k) => `"${k}"`).join(', ')} is missing` });
        continue;
      }
      const columns = this.#spec.columns ?? Object.keys(record);
      if (columns.length === 0) {
        rejected.push({ index: i, error: 'the record has no field to write' });
        continue;
      }
      const id = columns.join('\u0000');
      const k = key.length > 0 ? JSON.stringify(key.map((c) => record[c])) : '';
      const max = Math.min(POSTGRES_ROWS_PER_INSERT, Math.floor(MAX_PARAMS / columns.length));
      if (!current || current.id !== id || current.rows.length >= max || (k !== '' && current.keys.has(k))) {
        current = { columns, rows: [], id, keys: new Set() };
        groups.push(current);
      }
      current.rows.push(i);
      if (k !== '') current.keys.add(k);
    }
    return groups.map(({ columns, rows }) => ({ columns, rows }));
  }

  /** inserts `rows` (batch indexes) in a savepoint; on a record's error splits them until it stands alone */
  async #settle(
    client: pg.Client,
    batch: SinkEntry[],
    columns: string[],
    rows: number[],
    rejected: SinkResult['rejected'],
  ): Promise<void> {
    await client.query('SAVEPOINT talon_rows');
    try {
      await client.query(this.#insert(columns, rows.length), this.#values(batch, columns, rows));
      await client.query('RELEASE SAVEPOINT talon_rows');
      return;
    } catch (err) {
      if (!recordsFault(err) && !twice(err)) throw err;
      await client.query('ROLLBACK TO SAVEPOINT talon_rows');
      await client.query('RELEASE SAVEPOINT talon_rows');
      if (rows.length === 1) {
        rejected.push({ index: rows[0] as number, error: `PostgreSQL refused it: ${describe(err)}` });
        return;
      }
    }
    const mid = Math.ceil(rows.length / 2);
    await this.#settle(client, batch, columns, rows.slice(0, mid), rejected);
    await this.#settle(client, batch, columns, rows.slice(mid), rejected);
  }

  #insert(columns: string[], n: number): string {
    const names = columns.map(quoteIdent).join(', ');
    const tuples: string[] = [];
    for (let r = 0; r < n; r++) tuples.push(`(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(', ')})`);
    let sql = `INSERT INTO ${this.#table} (${names}) VALUES ${tuples.join(', ')}`;
    const key = this.#spec.key;
    if (key && key.length > 0) {
      const rest = columns.filter((c) => !key.includes(c));
      sql += ` ON CONFLICT (${key.map(quoteIdent).join(', ')}) DO ${
        rest.length === 0
          ? 'NOTHING'
          : `UPDATE SET ${rest.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}`
      }`;
    }
    return sql;
  }

  #values(batch: SinkEntry[], columns: string[], rows: number[]): unknown[] {
    const values: unknown[] = [];
    for (const i of rows) {
      const record: PipelineRecord = (batch[i] as SinkEntry).record;
      for (const c of columns) values.push(bindable(record[c]));
    }
    return values;
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    const client = new pg.Client({
      connectionString: this.#connectionString,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // an idle client whose server went away emits 'error': without a listener that would crash the worker
    client.on('error', (err) => {
      this.#deps.log('warn', `PostgreSQL sink: the connection was lost (${err.message}); the next write reconnects`);
      if (this.#client === client) this.#client = undefined;
    });
    client.on('end', () => {
      if (this.#client === client) this.#client = undefined;
    });
    try {
      await client.connect();
      await client.query(`SET statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
    } catch (err) {
      client.end().catch(() => undefined);
      throw err;
    }
    this.#client = client;
    return client;
  }

  #drop(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    return client ? client.end().catch(() => undefined) : Promise.resolve();
  }
}

/** A PostgreSQL sink; throws (TalonError) only for a missing connection string or an empty `columns`. */
export function createPostgresSink(spec: PostgresSinkSpec, deps: SinkDeps, opts: PostgresSinkOptions): SinkWriter {
  return new PostgresSink(spec, deps, opts);
}
