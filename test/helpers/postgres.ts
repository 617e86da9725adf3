/**
 * A real PostgreSQL 15 for tests (Debian's `postgresql` package): a cluster of its own in a temp dir, made by initdb
 * and run by pg_ctl from /usr/lib/postgresql/15/bin, trust auth, its unix socket in the temp dir and TCP on a free
 * 127.0.0.1 port, fsync off (a test's data need not survive a power cut).
 *
 *   const pg = await startPostgres();
 *   after(() => pg.stop());
 *   ... pg.url ...; await pg.query('CREATE TABLE t (id int)'); const rows = await pg.query('SELECT * FROM t');
 *   await pg.stopServer(); ... await pg.startServer();   // the server down and up again, same port, same data
 *
 * PostgreSQL refuses to run as root: as root (CI) the temp dir is chown'ed to the `postgres` OS user and initdb and
 * pg_ctl run through `runuser -u postgres`. Cleanup: `stop()` stops the server (fast shutdown) and removes the temp
 * dir; a test process that exits without calling it (a failed before hook, an uncaught error, SIGINT/SIGTERM) sends
 * the postmaster SIGQUIT (immediate shutdown) from its 'exit' handler and removes the dir, so no cluster outlives it.
 * Only a SIGKILL of the test process leaves one behind (its dir is /tmp/talon-pg-*).
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { appendFile, mkdtemp } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.ts';

export const PG_BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'].find(
  (d) => existsSync(join(d, 'initdb')),
);

export interface Postgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust auth: no password) */
  url: string;
  port: number;
  /** the temp dir: data/ (the cluster), the unix socket, server.log */
  dir: string;
  /** runs one statement on a fresh connection and answers its rows (the server must be up) */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** fast shutdown of the server, keeping the cluster: connections are cut, new ones refused */
  stopServer(): Promise<void>;
  /** starts the server again after stopServer(), on the same port with the same data */
  startServer(): Promise<void>;
  /** everything the server logged so far */
  log(): string;
  /** stops the server and removes the temp dir; safe to call twice */
  stop(): Promise<void>;
}

interface Owner {
  uid: number;
  gid: number;
}

/** the `postgres` OS user's ids when we are root (PostgreSQL will not run as root), else undefined */
function postgresOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid)
    throw new Error('startPostgres: running as root needs the `postgres` OS user (apt-get install postgresql)');
  return { uid: Number(uid), gid: Number(gid) };
}

function run(owner: Owner | undefined, cwd: string, bin: string, args: string[]): Promise<string> {
  const [file, argv] = owner ? ['/usr/sbin/runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { cwd, env: { ...process.env, LC_ALL: 'C', LANG: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

/** every cluster still running in this process, by dir: the exit handler's list */
const running = new Map<string, string>(); // dir → data dir
let hooked = false;

/** SIGQUIT to the cluster's postmaster (immediate shutdown), then its dir removed: synchronous, for 'exit' */
function kill(dir: string): void {
  const data = running.get(dir);
  running.delete(dir);
  if (data === undefined) return;
  try {
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pid > 0) {
      process.kill(pid, 'SIGQUIT');
      waitGone(pid, 10_000);
    }
  } catch {
    // not running (no pid file) or gone already
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
}

/** blocks (an 'exit' handler cannot await) until `pid` is gone or a zombie, at most `ms` */
function waitGone(pid: number, ms: number): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
      if (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return;
    } catch {
      return;
    }
    Atomics.wait(nap, 0, 0, 20);
  }
}

function killAll(): void {
  for (const dir of [...running.keys()]) kill(dir);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      killAll();
      process.kill(process.pid, sig); // the default action again: the handler above ran once
    });
}

export async function startPostgres(): Promise<Postgres> {
  if (!PG_BIN) throw new Error('startPostgres: no initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  const bin = PG_BIN;
  const owner = postgresOwner();
  const dir = await mkdtemp(join(tmpdir(), 'talon-pg-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  if (owner) chownSync(dir, owner.uid, owner.gid);
  hookExit();
  running.set(dir, data);
  const port = await freePort();
  const user = owner ? 'postgres' : userInfo().username;
  let up = false;

  const startServer = async (): Promise<void> => {
    const opts = `-p ${port} -k ${dir} -h 127.0.0.1`;
    await run(owner, dir, join(bin, 'pg_ctl'), ['-D', data, '-l', logFile, '-o', opts, '-w', '-t', '60', 'start']);
    up = true;
  };
  const stopServer = async (): Promise<void> => {
    if (!up) return;
    up = false;
    await run(owner, dir, join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  };

  try {
    await run(owner, dir, join(bin, 'initdb'), [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      user,
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    const conf = [
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      "listen_addresses = '127.0.0.1'",
      'max_connections = 40',
      'shared_buffers = 32MB',
      "log_min_messages = 'warning'",
    ];
    // appended to postgresql.conf (the last setting wins), so ALTER SYSTEM still overrides them
    await appendFile(join(data, 'postgresql.conf'), `\n# test/helpers/postgres.ts\n${conf.join('\n')}\n`);
    await startServer();
  } catch (err) {
    await stopServer().catch(() => undefined);
    kill(dir);
    throw err;
  }

  const url = `postgres://${user}@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dir,
    async query<T>(sql: string, params?: unknown[]): Promise<T[]> {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows as T[];
      } finally {
        await client.end();
      }
    },
    stopServer,
    startServer,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async stop() {
      if (!running.has(dir)) return;
      try {
        await stopServer();
      } finally {
        running.delete(dir);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
