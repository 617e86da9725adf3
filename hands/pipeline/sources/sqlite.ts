/**
 * The Data Pipeline Hand's SQLite source (`type: sql, driver: sqlite`): runs `spec.query` through node:sqlite
 * (DatabaseSync, opened read-only on the first poll, on a path under the Hand's fs grant) with `:cursor` bound to the
 * last acknowledged value of `spec.cursor.column` (kept in the source's state; `spec.cursor.initial` before the first
 * ack). Follows ./types.ts's contract: the cursor moves only on ack(), so a crash between poll and ack re-reads.
 *
 * The query is wrapped: `SELECT * FROM (query) ORDER BY "column" LIMIT n`, n = `limit` (default SQLITE_POLL_LIMIT,
 * 1000 rows per poll); `more` when the limit was hit. The cursor column should be unique and increasing (an id, or
 * an update time with ties broken by the query): rows sharing the last value past a limit would be skipped by
 * `column > :cursor`. Without `cursor.initial`, `:cursor` is -Infinity, which SQLite orders before every number and
 * every text, so `column > :cursor` reads every row. A BLOB becomes base64 text; a row is a plain object.
 *
 * PostgreSQL (driver: postgres) is another source, still to come.
 */
import { TalonError } from '../../../runtime/core/errors.ts';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { PipelineRecord, SqlSourceSpec } from '../types.ts';
import type { PollResult, Source, SourceDeps } from './types.ts';

const STATE_KEY = 'cursor';
export const SQLITE_POLL_LIMIT = 1000;

export interface SqliteSourceOptions {
  /** rows per poll at most (default SQLITE_POLL_LIMIT) */
  limit?: number;
}

type CursorValue = string | number;

/** A SQLite source; a spec that is not for SQLite throws (config.ts refuses one without a database). */
export function createSqliteSource(
  spec: SqlSourceSpec,
  deps: Pick<SourceDeps, 'state' | 'log'>,
  opts: SqliteSourceOptions = {},
): Source {
  return new SqliteSource(spec, deps, opts);
}

class SqliteSource implements Source {
  #spec: SqlSourceSpec;
  #deps: Pick<SourceDeps, 'state' | 'log'>;
  #limit: number;
  #db: DatabaseSync | undefined;
  #stmt: StatementSync | undefined;

  constructor(spec: SqlSourceSpec, deps: Pick<SourceDeps, 'state' | 'log'>, opts: SqliteSourceOptions) {
    if (spec.driver !== 'sqlite' || !spec.database)
      throw new TalonError(
        'BAD_REQUEST',
        'database: a SQLite source names its database file (driver: sqlite, database: /data/x.db)',
      );
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.cursor.column))
      throw new TalonError(
        'BAD_REQUEST',
        `cursor.column: ${JSON.stringify(spec.cursor.column)} is not a column name (letters, digits, _)`,
      );
    const limit = opts.limit ?? SQLITE_POLL_LIMIT;
    if (!Number.isInteger(limit) || limit < 1)
      throw new TalonError('BAD_REQUEST', `limit: must be a whole number ≥ 1, not ${limit}`);
    this.#spec = spec;
    this.#deps = deps;
    this.#limit = limit;
  }

  #statement(): StatementSync {
    if (this.#stmt) return this.#stmt;
    this.#db ??= new DatabaseSync(this.#spec.database!, { readOnly: true });
    const query = this.#spec.query.trim().replace(/;+\s*$/, '');
    this.#stmt = this.#db.prepare(
      `SELECT * FROM (${query}\n) AS talon_source ORDER BY "${this.#spec.cursor.column}" LIMIT ${this.#limit}`,
    );
    return this.#stmt;
  }

  async poll(): Promise<PollResult> {
    const saved = await this.#deps.state.get<{ value: CursorValue }>(STATE_KEY);
    const cursor = saved ? saved.value : (this.#spec.cursor.initial ?? Number.NEGATIVE_INFINITY);
    const column = this.#spec.cursor.column;
    let rows: Record<string, unknown>[];
    try {
      rows = this.#statement().all({ cursor }) as Record<string, unknown>[];
    } catch (e) {
      const error = `${this.#spec.database}: ${(e as Error).message}`;
      this.#deps.log('warn', error);
      return { records: [], bad: [], token: null, more: false, error };
    }
    if (rows.length === 0) return { records: [], bad: [], token: null, more: false };
    const records: PipelineRecord[] = rows.map((row) => {
      const rec: PipelineRecord = {};
      for (const [k, v] of Object.entries(row))
        rec[k] = v instanceof Uint8Array ? Buffer.from(v).toString('base64') : typeof v === 'bigint' ? Number(v) : v;
      return rec;
    });
    const last = rows[rows.length - 1]![column];
    if (typeof last !== 'number' && typeof last !== 'string')
      return {
        records: [],
        bad: [],
        token: null,
        more: false,
        error: `cursor.column: the query's rows have no number or text column "${column}" (got ${last === null ? 'null' : typeof last}); select it`,
      };
    return { records, bad: [], token: { cursor: last }, more: rows.length === this.#limit };
  }

  async ack(token: unknown): Promise<void> {
    if (typeof token !== 'object' || token === null || !('cursor' in token)) return;
    const value = (token as { cursor: unknown }).cursor;
    if (typeof value !== 'number' && typeof value !== 'string') return;
    await this.#deps.state.put(STATE_KEY, { value });
  }

  async close(): Promise<void> {
    this.#db?.close();
    this.#db = undefined;
    this.#stmt = undefined;
  }
}
