/** Shared pieces of the benchmarks: spawning Talon, polling /healthz, reading RSS, stats. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { common } from '../../image/bundle.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const TALON = join(ROOT, 'dist', 'talon.cjs');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function httpGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** ms from `t0` (performance.now()) until GET path answers 200, polling every ms */
export async function waitFor200(port: number, path: string, t0: number, timeoutMs = 30000): Promise<number> {
  for (;;) {
    try {
      const r = await httpGet(port, path);
      if (r.status === 200) return performance.now() - t0;
    } catch {
      /* not listening yet */
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`no 200 from ${path} on ${port} within ${timeoutMs} ms`);
    await sleep(1);
  }
}

export function rssMb(pid: number): number {
  return memMb(pid).rss;
}

/** resident memory from /proc/<pid>/status, MB: VmRSS = RssAnon (heaps, stacks) + RssFile (mapped files: the executable, libraries) + RssShmem */
export interface Mem {
  rss: number;
  anon: number;
  file: number;
}

export function memMb(pid: number): Mem {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => {
    const m = new RegExp(`${k}:\\s+(\\d+) kB`).exec(status);
    return m ? Number(m[1]) / 1024 : NaN;
  };
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/** the median of each figure over several samples */
export function medianMem(samples: Mem[]): Mem {
  return {
    rss: median(samples.map((m) => m.rss)),
    anon: median(samples.map((m) => m.anon)),
    file: median(samples.map((m) => m.file)),
  };
}

/**
 * Rows of the idle-memory table (process | VmRSS | RssAnon | RssFile | ratio | budget), which
 * `npm run bench` prints after the main table: sections add to it with memRow().
 */
export const memRows: string[] = [];

export function memRow(what: string, m: Mem, ref?: { label: string; mem: Mem }, budget = ''): void {
  const f = (n: number): string => n.toFixed(1);
  const ratio = ref ? `${(m.rss / ref.mem.rss).toFixed(2)}× ${ref.label}` : '';
  memRows.push(`| ${what} | ${f(m.rss)} MB | ${f(m.anon)} MB | ${f(m.file)} MB | ${ratio} | ${budget} |`);
}

export function printMemTable(say: (line: string) => void): void {
  if (memRows.length === 0) return;
  say('');
  say(
    "Idle memory, from /proc/<pid>/status (VmRSS = RssAnon + RssFile; RssFile is mapped files, mostly the executable's own pages: clean, shared, reclaimable):",
  );
  say('');
  say('| process | VmRSS | RssAnon | RssFile | VmRSS ratio | budget |');
  say('|---|---|---|---|---|---|');
  for (const row of memRows.splice(0)) say(row);
}

/** the reference programs (./ref-main.cjs): a minimal http server, idle Node, and the floor */
export const REF_MAIN = join(ROOT, 'test', 'bench', 'ref-main.cjs');

/** how to run ref-main: `node ref-main.cjs` or a single executable made of it */
export type RefRunner = { cmd: string; args: string[]; env?: NodeJS.ProcessEnv };
export const nodeRef = (node = process.execPath): RefRunner => ({ cmd: node, args: [REF_MAIN] });

/** ms from spawn to the first 200 of the reference in `mode` (http or floor); the process is stopped after */
export async function refStart(r: RefRunner, mode: 'http' | 'floor'): Promise<number> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'talon-bench-ref-'));
  const t0 = performance.now();
  const p = spawn(r.cmd, [...r.args, mode, String(port), ...(mode === 'floor' ? [join(dir, 'db'), ROOT] : [])], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: r.env ?? process.env,
  });
  try {
    return await waitFor200(port, '/', t0);
  } finally {
    await kill(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** the reference idle (mode idle, or floor with its worker running), sampled `settleMs` after it answers */
export async function refMem(r: RefRunner, mode: 'idle' | 'floor', settleMs = 3000): Promise<Mem> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'talon-bench-ref-'));
  const p = spawn(r.cmd, [...r.args, mode, ...(mode === 'floor' ? [String(port), join(dir, 'db'), ROOT] : [])], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: r.env ?? process.env,
  });
  try {
    if (mode === 'floor') await waitFor200(port, '/', performance.now());
    await sleep(settleMs);
    return memMb(p.pid!);
  } finally {
    await kill(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function kill(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill(signal);
  });
}

let handsDir: string | null = null;
/** bundles the benchmark Hands (test/bench/hands) to CommonJS files like the built-in ones */
export async function benchHands(): Promise<Record<'idle' | 'sender' | 'receiver', string>> {
  handsDir ??= mkdtempSync(join(tmpdir(), 'talon-bench-hands-'));
  const names = ['idle', 'sender', 'receiver'] as const;
  await Promise.all(
    names.map((n) =>
      build({
        ...common,
        entryPoints: [join(ROOT, 'test/bench/hands', `bench-${n}.ts`)],
        outfile: join(handsDir!, `bench-${n}.cjs`),
      }),
    ),
  );
  return Object.fromEntries(names.map((n) => [n, join(handsDir!, `bench-${n}.cjs`)])) as Record<
    (typeof names)[number],
    string
  >;
}

export interface TalonProc {
  proc: ChildProcess;
  dataDir: string;
  httpPort: number;
  mqttPort: number;
  token(): string;
  stop(): Promise<void>;
}

/**
 * starts `node dist/talon.cjs run` (or `opts.cmd run`, say the single executable) with a fresh
 * data folder and the given config (JSON)
 */
export async function startTalon(
  config: Record<string, unknown>,
  opts: { wait?: boolean; cmd?: { cmd: string; args: string[]; env?: NodeJS.ProcessEnv } } = {},
): Promise<TalonProc & { startMs: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-bench-data-'));
  mkdirSync(dataDir, { recursive: true });
  const httpPort = await freePort();
  let mqttPort = await freePort();
  while (mqttPort === httpPort) mqttPort = await freePort(); // the kernel refuses two listeners on one port

  // the budgets are about the kernel: no drivers unless a measure asks for them
  const cfg = {
    dataDir,
    http: { host: '127.0.0.1', port: httpPort },
    log: { level: 'warn' },
    drivers: [],
    ...config,
  };
  if (!('bus' in config))
    (cfg as Record<string, unknown>).bus = {
      embedded: { enabled: true, listen: { host: '127.0.0.1', port: mqttPort } },
    };
  const file = join(dataDir, 'talon.json');
  writeFileSync(file, JSON.stringify(cfg));
  const t0 = performance.now();
  const run = opts.cmd ?? { cmd: process.execPath, args: [TALON] };
  const proc = spawn(run.cmd, [...run.args, 'run', '--config', file], {
    stdio: ['ignore', 'inherit', 'inherit'],
    ...(run.env ? { env: run.env } : {}),
  });
  const startMs = opts.wait === false ? 0 : await waitFor200(httpPort, '/healthz', t0);
  return {
    proc,
    dataDir,
    httpPort,
    mqttPort,
    startMs,
    token: () => readFileSync(join(dataDir, 'cli-token'), 'utf8').trim(),
    stop: () => kill(proc),
  };
}

export async function handsRunning(t: TalonProc, n: number, timeoutMs = 30000): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    try {
      const r = await httpGet(t.httpPort, '/api/v1/hands', { authorization: `Bearer ${t.token()}` });
      if (r.status === 200) {
        const hands = (
          JSON.parse(r.body) as { hands: Array<{ state: string; name: string; lastError?: { message: string } }> }
        ).hands;
        const running = hands.filter((h) => h.state === 'running').length;
        if (running >= n) return;
        const failed = hands.find((h) => h.state === 'failed');
        if (failed) throw new Error(`Hand ${failed.name} failed: ${failed.lastError?.message ?? '?'}`);
      }
    } catch (err) {
      if ((err as Error).message.startsWith('Hand ')) throw err;
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`fewer than ${n} Hands running after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** the heading every Markdown report of `npm run bench` (and each standalone bench script) starts with */
export async function reportHeader(say: (line: string) => void): Promise<void> {
  const { cpus, loadavg } = await import('node:os');
  say(
    `Run on ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} cores, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} at the start.`,
  );
  say('');
  say('| measure | Talon | reference | ratio | budget |');
  say('|---|---|---|---|---|');
}

/** runs a section's rows when its file is executed directly (`node --import tsx test/bench/x.ts`) */
export async function runIfMain(
  moduleUrl: string,
  rows: (say: (line: string) => void) => Promise<void>,
): Promise<void> {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  const say = (line: string): void => console.log(line);
  await reportHeader(say);
  await rows(say);
  printMemTable(say);
}
