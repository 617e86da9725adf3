/**
 * The kernel's store: one LevelDB (classic-level through `level`) in `<data>/db`, one
 * sublevel per subsystem, a schema version in `meta` and ordered migrations run at open.
 * LevelDB's own LOCK file keeps a second Talon off the same data folder; we turn its error
 * into one a person can act on, naming the process that holds it when we know it.
 */
import { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
  unlinkSync,
  accessSync,
  constants,
  statfsSync,
} from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { TalonError } from '../core/errors.ts';

export type Sublevel<V = unknown> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

/** Subsystems that own a sublevel. A new subsystem adds its name here. */
export const SUBLEVELS = [
  'meta',
  'config',
  'audit',
  'auditlog',
  'auditcp',
  'hands',
  'logs',
  'alerts',
  'readings',
  'auth',
  'provision',
  'llm',
  'secrets',
  'chat',
  'approvals',
  'runs',
] as const;
/** classic-level honours `sync`; abstract-level's types do not list it */
export const SYNC = { sync: true } as unknown as Record<string, never>;

export type SublevelName = (typeof SUBLEVELS)[number];

/** a key no sublevel uses: compacting just its range flushes the memtable and touches no table */
const RESYNC_KEY = '\u00ff(resync)';

export interface Migration {
  /** the schema version this migration produces */
  version: number;
  description: string;
  up(store: Store): Promise<void>;
}

/** Bump with every migration appended to MIGRATIONS. */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'initial layout: one sublevel per subsystem',
    async up() {},
  },
];

export const SCHEMA_VERSION = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), 0);

export interface StoreOptions {
  migrations?: Migration[];
  /** refuse to open when free space is below this many bytes */
  minFreeBytes?: number;
}

export class Store {
  readonly dir: string;
  readonly db: Level<string, unknown>;
  #open = false;
  readonly #sublevels = new Map<string, Sublevel<unknown>>();
  readonly #handScopes = new Map<string, Sublevel<unknown>>();

  private constructor(dir: string) {
    this.dir = dir;
    this.db = new Level<string, unknown>(join(dir, 'db'), { valueEncoding: 'json' });
  }

  static async open(dataDir: string, opts: StoreOptions = {}): Promise<Store> {
    checkDataDir(dataDir, opts.minFreeBytes ?? 1024 * 1024);
    const store = new Store(dataDir);
    try {
      await store.db.open();
    } catch (err) {
      throw openError(dataDir, err);
    }
    store.#open = true;
    writeFileSync(join(dataDir, 'talon.pid'), `${process.pid}\n`);
    try {
      await store.#migrate(opts.migrations ?? MIGRATIONS);
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  isOpen(): boolean {
    return this.#open && this.db.status === 'open';
  }

  /** Free bytes (for an unprivileged user) on the data folder's file system; null when it cannot be read. */
  freeBytes(): number | null {
    try {
      const fs = statfsSync(this.dir);
      return fs.bavail * fs.bsize;
    } catch {
      return null;
    }
  }

  /**
   * After a failed write (a full disk), LevelDB's log may end in a torn record: later writes
   * are acknowledged but land after it, and the next open's replay of the log drops them
   * (measured on a full tmpfs: every write after the failure was gone after a reopen). Writing
   * the memtable to a table file starts a new log, so everything acknowledged since is
   * durable again. Call it only with free space: a table write that fails leaves LevelDB
   * refusing every write until the store is opened again.
   */
  async resync(): Promise<void> {
    // classic-level has it; level's types (shared with browser-level) do not list it
    await (this.db as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange(
      RESYNC_KEY,
      RESYNC_KEY,
    );
  }

  /**
   * A subsystem's sublevel, one object per name for the store's life: abstract-level keeps every sublevel made
   * (its hooks and listeners hang on the parent), so making one per operation grew the heap ~2 KB a call.
   */
  sublevel<V = unknown>(name: SublevelName): Sublevel<V> {
    let s = this.#sublevels.get(name);
    if (!s) {
      s = this.db.sublevel<string, unknown>(name, { valueEncoding: 'json' });
      this.#sublevels.set(name, s);
    }
    return s as Sublevel<V>;
  }

  /** a Hand's own scope (`hands` / `<name>`, JSON values), made once per name */
  handScope(name: string): Sublevel<unknown> {
    let s = this.#handScopes.get(name);
    if (!s) {
      const hands = this.sublevel('hands') as unknown as AbstractSublevel<
        Level<string, unknown>,
        string | Buffer | Uint8Array,
        string,
        unknown
      >;
      s = hands.sublevel<string, unknown>(name, { valueEncoding: 'json' }) as unknown as Sublevel<unknown>;
      this.#handScopes.set(name, s);
    }
    return s;
  }

  async schemaVersion(): Promise<number> {
    const v = await this.sublevel<number>('meta').get('schemaVersion');
    return typeof v === 'number' ? v : 0;
  }

  async #migrate(migrations: Migration[]): Promise<void> {
    const current = await this.schemaVersion();
    const newest = migrations.reduce((v, m) => Math.max(v, m.version), 0);
    if (current > newest) {
      throw new TalonError(
        'STORE_OPEN_FAILED',
        `the data folder ${this.dir} was written by a newer Talon (schema ${current}, this one knows ${newest}); upgrade Talon or use another data folder`,
      );
    }
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version <= current) continue;
      await m.up(this);
      await this.sublevel('meta').put('schemaVersion', m.version, SYNC);
    }
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.db.close();
    // a clean close leaves no pid file behind (only ours: another process may have taken the folder since)
    const pidFile = join(this.dir, 'talon.pid');
    try {
      if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) unlinkSync(pidFile);
    } catch {
      /* already gone */
    }
  }
}

function checkDataDir(dataDir: string, minFreeBytes: number): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    accessSync(dataDir, constants.W_OK);
    // root passes access() on a read-only mount; a real write settles it
    const probe = join(dataDir, '.write-test');
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (first) {
    const err = probeNearestExisting(dataDir) ?? first;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
      throw new TalonError(
        'STORE_READONLY',
        `the data folder ${dataDir} is not writable (${code}); choose another with --data or TALON_DATA`,
        { cause: err },
      );
    }
    if (code === 'ENOSPC')
      throw new TalonError('STORE_FULL', `the data folder ${dataDir} is on a full disk (ENOSPC); free some space`, {
        cause: err,
      });
    throw new TalonError('STORE_OPEN_FAILED', `cannot use the data folder ${dataDir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const fs = statfsSync(dataDir);
  const free = fs.bavail * fs.bsize;
  if (free < minFreeBytes) {
    throw new TalonError(
      'STORE_FULL',
      `the data folder ${dataDir} has ${free} bytes free, less than the ${minFreeBytes} Talon needs; free some space`,
    );
  }
}

/** mkdir -p on a read-only mount reports ENOENT; a write in the nearest existing ancestor tells the real reason */
function probeNearestExisting(dataDir: string): unknown {
  let dir = resolve(dataDir);
  while (!existsSync(dir)) {
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  const probe = join(dir, `.talon-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    unlinkSync(probe);
    return undefined;
  } catch (err) {
    return err;
  }
}

function openError(dataDir: string, err: unknown): TalonError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code === 'LEVEL_LOCKED') {
    let holder = '';
    try {
      holder = readFileSync(join(dataDir, 'talon.pid'), 'utf8').trim();
    } catch {
      /* no pid file */
    }
    return new TalonError(
      'STORE_LOCKED',
      `the data folder ${dataDir} is in use by another running Talon${holder ? ` (pid ${holder})` : ''}; stop it or choose another folder with --data`,
      { cause: err },
    );
  }
  const msg = cause?.message ?? (err as Error).message;
  if (/No space left/i.test(msg))
    return new TalonError('STORE_FULL', `the data folder ${dataDir} is full: ${msg}`, { cause: err });
  if (/Read-only|Permission denied/i.test(msg))
    return new TalonError('STORE_READONLY', `the data folder ${dataDir} is not writable: ${msg}`, { cause: err });
  return new TalonError('STORE_OPEN_FAILED', `cannot open the store in ${dataDir}: ${msg}`, { cause: err });
}
