/**
 * The Data Pipeline Hand's SQLite sink: each batch is inserted, or upserted by `spec.key` (`INSERT … ON CONFLICT(key)
 * DO UPDATE SET` every other column `= excluded.` itself, `DO NOTHING` when the key is every column), in one
 * transaction through node:sqlite (DatabaseSync, on the Hand's `fs` grant), following ./types.ts's contract.
 *
 * Exactly-once by key: a batch written twice (a redelivery after a crash) leaves one row per key. Without `key` the
 * sink plainly inserts, and a redelivery inserts again (at-least-once): write a key for exactly-once.
 *
 * Columns: `spec.columns` when given (the config may add it; a record's other fields are not written), else each
 * record's own fields. Identifiers come validated from ../config.ts and are quoted anyway (`"main"."readings"`).
 * Values: null/absent → NULL; strings, numbers, bigints, booleans and bytes bound as they are; an object or array is
 * bound as its JSON text.
 *
 * A record refused by the database (a NOT NULL, CHECK, UNIQUE or type violation, a field the table has no column
 * for, a missing key field) is rejected alone: each record runs inside a SAVEPOINT rolled back on its error, so the
 * rest of the batch is committed in the same call. SQLITE_BUSY/LOCKED (another writer holds the database past the
 * busy timeout), a missing table, a file that cannot be opened: the transaction is rolled back, done 0, retryAfterMs
 * (1 s doubled after each failure in a row, up to 60 s) and the error.
 */
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import type { SqliteSinkSpec } from '../types.ts';
import type { SinkDeps, SinkEntry, SinkResult, SinkWriter } from './types.ts';

export const SQLITE_BACKOFF = Object.freeze({ firstMs: 1000, maxMs: 60_000, busyTimeoutMs: 250 });

/** the spec ../config.ts hands over, with the columns it may add */
export type SqliteSinkOptions = SqliteSinkSpec & { columns?: string[] };

export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const quoteTable = (table: string): string => table.split('.').map(quoteIdent).join('.');

interface SqliteError extends Error {
  errcode?: number;
  errstr?: string;
}

const primary = (err: unknown): number => ((err as SqliteError).errcode ?? 0) & 0xff;
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

/** errors that are the sink's (or the database's), not one record's: the batch is retried later */
function notTheRecords(err: unknown): boolean {
  const code = primary(err);
  if (code === SQLITE_BUSY || code === SQLITE_LOCKED) return true;
  const msg = (err as Error).message ?? '';
  return /no such table|unable to open|disk I\/O|database or disk is full|readonly database|not a database/i.test(msg);
}

function bindable(v: unknown): SQLInputValue {
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || v instanceof Uint8Array) return v;
  return JSON.stringify(v);
}

class SqliteSink implements SinkWriter {
  readonly #spec: SqliteSinkOptions;
  readonly #deps: SinkDeps;
  #db: DatabaseSync | undefined;
  readonly #statements = new Map<string, StatementSync>();
  #failures = 0;

  constructor(spec: SqliteSinkOptions, deps: SinkDeps) {
    this.#spec = spec;
    this.#deps = deps;
  }

  async write(batch: SinkEntry[]): Promise<SinkResult> {
    const rejected: SinkResult['rejected'] = [];
    let db: DatabaseSync | undefined;
    try {
      db = this.#open();
      db.exec('BEGIN IMMEDIATE');
      for (let i = 0; i < batch.length; i++) {
        const record = (batch[i] as SinkEntry).record;
        const missing = (this.#spec.key ?? []).filter((k) => record[k] === undefined || record[k] === null);
        if (missing.length > 0) {
          rejected.push({ index: i, error: `the key field ${missing.map((k) => `"${k}"`).join(', ')} is missing` });
          continue;
        }
        db.exec('SAVEPOINT talon_record');
        try {
          const columns = this.#spec.columns ?? Object.keys(record);
          if (columns.length === 0) throw new Error('the record has no field to write');
          this.#statement(db, columns).run(...columns.map((c) => bindable(record[c])));
          db.exec('RELEASE talon_record');
        } catch (err) {
          if (notTheRecords(err)) throw err;
          if (!db.isTransaction) throw err; // a ROLLBACK conflict clause ended the transaction: retry the batch
          db.exec('ROLLBACK TO talon_record');
          db.exec('RELEASE talon_record');
          rejected.push({ index: i, error: `SQLite refused it: ${(err as Error).message}` });
        }
      }
      db.exec('COMMIT');
      this.#failures = 0;
      return { done: batch.length, rejected };
    } catch (err) {
      try {
        if (db?.isTransaction) db.exec('ROLLBACK');
      } catch {
        // the transaction is gone already
      }
      const retryAfterMs = Math.min(SQLITE_BACKOFF.firstMs * 2 ** this.#failures++, SQLITE_BACKOFF.maxMs);
      const busy = primary(err) === SQLITE_BUSY || primary(err) === SQLITE_LOCKED;
      const where = `${this.#spec.database} table ${this.#spec.table}`;
      const why = `${busy ? ' (busy: another writer holds it)' : ''}: ${(err as Error).message}`;
      const error = `writing to ${where} failed${why}; retrying in ${retryAfterMs} ms`;
      this.#deps.log('warn', error);
      return { done: 0, rejected: [], retryAfterMs, error };
    }
  }

  async close(): Promise<void> {
    this.#statements.clear();
    const db = this.#db;
    this.#db = undefined;
    if (db?.isOpen) db.close();
  }

  #open(): DatabaseSync {
    if (!this.#db) {
      this.#db = new DatabaseSync(this.#spec.database, { timeout: SQLITE_BACKOFF.busyTimeoutMs });
      this.#statements.clear();
    }
    return this.#db;
  }

  #statement(db: DatabaseSync, columns: string[]): StatementSync {
    const id = columns.join('\u0000');
    let st = this.#statements.get(id);
    if (st) return st;
    const key = this.#spec.key;
    const names = columns.map(quoteIdent).join(', ');
    let sql = `INSERT INTO ${quoteTable(this.#spec.table)} (${names}) VALUES (${columns.map(() => '?').join(', ')})`;
    if (key && key.length > 0) {
      const rest = columns.filter((c) => !key.includes(c));
      sql += ` ON CONFLICT (${key.map(quoteIdent).join(', ')}) DO ${
        rest.length === 0
          ? 'NOTHING'
          : `UPDATE SET ${rest.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(', ')}`
      }`;
    }
    st = db.prepare(sql);
    this.#statements.set(id, st);
    return st;
  }
}

export function createSqliteSink(spec: SqliteSinkOptions, deps: SinkDeps): SinkWriter {
  return new SqliteSink(spec, deps);
}
