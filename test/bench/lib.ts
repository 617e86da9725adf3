/** Shared pieces of the benchmarks: spawning Talon, polling /healthz, reading RSS, stats. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
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

export function httpGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
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
    } catch { /* not listening yet */ }
    if (performance.now() - t0 > timeoutMs) throw new Error(`no 200 from ${path} on ${port} within ${timeoutMs} ms`);
    await sleep(1);
  }
}

export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
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
  await Promise.all(names.map((n) => build({ ...common, entryPoints: [join(ROOT, 'test/bench/hands', `bench-${n}.ts`)], outfile: join(handsDir!, `bench-${n}.cjs`) })));
  return Object.fromEntries(names.map((n) => [n, join(handsDir!, `bench-${n}.cjs`)])) as Record<(typeof names)[number], string>;
}

export interface TalonProc {
  proc: ChildProcess;
  dataDir: string;
  httpPort: number;
  mqttPort: number;
  token(): string;
  stop(): Promise<void>;
}

/** starts `node dist/talon.cjs run` with a fresh data folder and the given config (JSON) */
export async function startTalon(config: Record<string, unknown>, opts: { wait?: boolean } = {}): Promise<TalonProc & { startMs: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-bench-data-'));
  mkdirSync(dataDir, { recursive: true });
  const httpPort = await freePort();
  const mqttPort = await freePort();
  // the budgets are about the kernel: no drivers unless a measure asks for them
  const cfg = {
    dataDir,
    http: { host: '127.0.0.1', port: httpPort },
    log: { level: 'warn' },
    drivers: [],
    ...config,
  };
  if (!('bus' in config)) (cfg as Record<string, unknown>).bus = { embedded: { enabled: true, listen: { host: '127.0.0.1', port: mqttPort } } };
  const file = join(dataDir, 'talon.json');
  writeFileSync(file, JSON.stringify(cfg));
  const t0 = performance.now();
  const proc = spawn(process.execPath, [TALON, 'run', '--config', file], { stdio: ['ignore', 'inherit', 'inherit'] });
  const startMs = opts.wait === false ? 0 : await waitFor200(httpPort, '/healthz', t0);
  return {
    proc, dataDir, httpPort, mqttPort, startMs,
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
        const hands = (JSON.parse(r.body) as { hands: Array<{ state: string; name: string; lastError?: { message: string } }> }).hands;
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
  const { cpus } = await import('node:os');
  say(`Run on ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} cores.`);
  say('');
  say('| measure | Talon | reference | ratio | budget |');
  say('|---|---|---|---|---|');
}

/** runs a section's rows when its file is executed directly (`node --import tsx test/bench/x.ts`) */
export async function runIfMain(moduleUrl: string, rows: (say: (line: string) => void) => Promise<void>): Promise<void> {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  const say = (line: string): void => console.log(line);
  await reportHeader(say);
  await rows(say);
}
