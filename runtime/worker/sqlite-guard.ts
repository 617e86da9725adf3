/**
 * node:sqlite, held to the Hand's fs grants: installed in every Hand's worker before any Hand
 * code runs. SQLite opens its files itself, past Node's permission model (a worker with no fs
 * grant created and wrote a database in /tmp), so the worker runtime decides instead:
 *
 *  - `new DatabaseSync(path)` (and `Database`, the same class): `:memory:`, or a path inside the
 *    Hand's `fs.write` grants, or inside its `fs.read` grants when opened with `readOnly: true`;
 *    file: URIs (as strings or URLs with a query) are refused (their `vfs=`, `mode=` and friends
 *    would undo the check), and so is `allowExtension: true` (an extension is native code);
 *  - every database made here gets an authorizer the Hand cannot replace or remove: `ATTACH`
 *    (and `VACUUM INTO`, which attaches its target) follows the same path rule, and so do the
 *    pragmas that move SQLite's files (`temp_store_directory`, `data_store_directory`);
 *    `setAuthorizer` installs the Hand's own behind it;
 *  - `backup(db, path)` writes only inside the write grants.
 *
 * A refusal is CAPABILITY_DENIED in the Hand and a `capability.check` / `deny` in the audit
 * (action `fs.sqlite`). Paths are compared after path.resolve(), as Node's permission model
 * compares them (symbolic links are not followed).
 */
import sqlite from 'node:sqlite';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syncBuiltinESMExports } from 'node:module';
import { TalonError } from '../core/errors.ts';
import type { DenyReport } from './net-guard.ts';

export interface SqliteGuardOptions {
  hand?: string;
  report: DenyReport;
  /** the Hand's granted paths (absolute) */
  fs: { read: string[]; write: string[] };
}

export const SQLITE_ACTION = 'fs.sqlite';

type Fn = (...args: unknown[]) => unknown;

const MOVES_FILES = new Set(['temp_store_directory', 'data_store_directory']);

export function installSqliteGuard(opts: SqliteGuardOptions): void {
  const who = opts.hand === undefined ? 'A Hand' : `Hand "${opts.hand}"`;
  const reads = opts.fs.read.map((p) => resolve(p));
  const writes = opts.fs.write.map((p) => resolve(p));
  const covers = (grants: string[], p: string): boolean =>
    grants.some((g) => p === g || p.startsWith(g.endsWith(sep) ? g : g + sep));
  const C = sqlite.constants;

  const denied = (subject: string, why: string): TalonError => {
    const s = subject.slice(0, 300);
    opts.report(SQLITE_ACTION, s);
    return new TalonError(
      'CAPABILITY_DENIED',
      `${who} may not open ${s} with node:sqlite: ${why}. A Hand may use ':memory:', or database files inside its ` +
        'capabilities.fs.write paths (inside capabilities.fs.read paths with readOnly: true)',
      { details: { action: SQLITE_ACTION, subject: s } },
    );
  };

  /** an absolute path from what DatabaseSync / backup take, or a refusal */
  const pathOf = (where: unknown, what: string): string => {
    if (where instanceof URL) {
      if (where.protocol !== 'file:') throw denied(where.href, 'only file: URLs name a database file');
      if (where.search !== '') throw denied(where.href, 'URI parameters are not allowed');
      return resolve(fileURLToPath(where));
    }
    const s =
      typeof where === 'string'
        ? where
        : ArrayBuffer.isView(where)
          ? Buffer.from(where.buffer, where.byteOffset, where.byteLength).toString('utf8')
          : undefined;
    if (s === undefined)
      throw new TalonError('BAD_REQUEST', `${what}: the database path must be a string, a Buffer or a file: URL`);
    if (s.includes('\0')) throw denied(JSON.stringify(s), 'the path contains a NUL byte');
    if (/^file:/i.test(s)) throw denied(s, 'file: URIs are not allowed; pass a plain path');
    if (s === '') throw denied('(a temporary database)', 'only :memory: and granted paths are allowed');
    return resolve(s);
  };
  /** may the Hand open `where`, read-only or not? */
  const allowed = (where: unknown, readOnly: boolean, what: string): void => {
    if (where === ':memory:') return;
    const p = pathOf(where, what);
    if (covers(writes, p)) return;
    if (covers(reads, p)) {
      if (readOnly) return;
      throw denied(p, 'its grant is read-only (open it with { readOnly: true })');
    }
    throw denied(p, 'the path is outside its fs grants');
  };

  const Orig = sqlite.DatabaseSync as unknown as new (...args: unknown[]) => object;
  const proto = Orig.prototype as Record<string, unknown>;
  const origSetAuthorizer = proto.setAuthorizer as Fn;
  /** each database's read-only flag and the Hand's own authorizer, if it set one */
  const dbs = new WeakMap<object, { readOnly: boolean; hand: Fn | null }>();

  const authorize =
    (db: object) =>
    (code: number, a1: unknown, a2: unknown, dbName: unknown, trigger: unknown): number => {
      const st = dbs.get(db);
      try {
        if (code === C.SQLITE_ATTACH) {
          // a1: the file name when it is a literal; null for an expression or a parameter
          if (typeof a1 !== 'string') throw denied('ATTACH (an expression)', 'ATTACH needs a literal file name');
          if (a1 !== '' && a1 !== ':memory:') allowed(a1, st?.readOnly === true, 'ATTACH');
          else if (a1 === '') throw denied("ATTACH ''", 'only :memory: and granted paths are allowed');
        } else if (
          code === C.SQLITE_PRAGMA &&
          typeof a1 === 'string' &&
          MOVES_FILES.has(a1.toLowerCase()) &&
          a2 !== null &&
          a2 !== undefined
        ) {
          throw denied(`PRAGMA ${a1}`, "a Hand may not move SQLite's files");
        }
      } catch {
        return C.SQLITE_DENY;
      }
      const h = st?.hand;
      return h ? (h(code, a1, a2, dbName, trigger) as number) : C.SQLITE_OK;
    };

  function DatabaseSync(this: unknown, ...args: unknown[]): object {
    if (!new.target) throw new TypeError("Class constructor DatabaseSync cannot be invoked without 'new'");
    const o = (typeof args[1] === 'object' && args[1] !== null ? args[1] : {}) as {
      readOnly?: unknown;
      allowExtension?: unknown;
    };
    if (o.allowExtension === true)
      throw denied(String(args[0]), 'SQLite extensions are native code, which a Hand may not load');
    const readOnly = o.readOnly === true;
    allowed(args[0], readOnly, 'DatabaseSync');
    const db = Reflect.construct(Orig, args, new.target) as object;
    dbs.set(db, { readOnly, hand: null });
    origSetAuthorizer.call(db, authorize(db));
    return db;
  }
  Object.defineProperty(DatabaseSync, 'name', { value: 'DatabaseSync' });
  DatabaseSync.prototype = proto;
  // `db.constructor` must not hand out the unguarded class
  Object.defineProperty(proto, 'constructor', {
    value: DatabaseSync,
    writable: false,
    configurable: false,
    enumerable: false,
  });
  Object.defineProperty(proto, 'setAuthorizer', {
    value: function setAuthorizer(this: object, cb: unknown): void {
      const st = dbs.get(this);
      if (!st) throw denied('a database', "it was not opened through node:sqlite's DatabaseSync");
      if (cb !== null && typeof cb !== 'function')
        throw new TypeError('The "callback" argument must be a function or null');
      st.hand = cb as Fn | null;
    },
    writable: false,
    configurable: false,
    enumerable: false,
  });
  // a database made some other way (there is none today) would have no authorizer: refuse it
  for (const key of ['open', 'exec', 'prepare', 'createTagStore', 'loadExtension', 'enableLoadExtension']) {
    const f = proto[key];
    if (typeof f !== 'function') continue;
    Object.defineProperty(proto, key, {
      value: function (this: object, ...args: unknown[]) {
        if (!dbs.has(this)) throw denied('a database', "it was not opened through node:sqlite's DatabaseSync");
        return (f as Fn).apply(this, args);
      },
      writable: false,
      configurable: false,
      enumerable: false,
    });
  }
  const backup = sqlite.backup as unknown as Fn;
  const mod = sqlite as unknown as Record<string, unknown>;
  const setExport = (key: string, value: unknown): void => {
    Object.defineProperty(mod, key, { value, writable: false, configurable: false, enumerable: true });
  };
  setExport('DatabaseSync', DatabaseSync);
  setExport('Database', DatabaseSync);
  if (typeof backup === 'function') {
    setExport('backup', function (this: unknown, ...args: unknown[]) {
      try {
        const p = pathOf(args[1], 'backup');
        if (!covers(writes, p)) throw denied(p, 'a backup is written, and the path is outside its fs.write grants');
      } catch (err) {
        return Promise.reject(err);
      }
      return backup.apply(this, args);
    });
  }
  syncBuiltinESMExports();
}
