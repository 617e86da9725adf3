/**
 * Runs the real daemon (`node dist/talon.cjs run`, built by `npm run build`) the way a user
 * does, with a temp data folder and free ports, and the CLI against it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export const REPO = join(import.meta.dirname, '..', '..');
export const TALON = join(REPO, 'dist', 'talon.cjs');

export function ensureBuilt(): void {
  if (!existsSync(TALON) || !existsSync(join(REPO, 'dist', 'hand-worker.cjs'))) {
    const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
}

export interface Daemon {
  proc: ChildProcess;
  dataDir: string;
  configFile: string;
  httpPort: number;
  mqttPort: number;
  output(): string;
  exited: Promise<number | null>;
  token(): string;
  deviceId(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function writeConfig(
  config: Record<string, unknown>,
  dataDir = mkdtempSync(join(tmpdir(), 'talon-e2e-')),
): Promise<{ file: string; dataDir: string; httpPort: number; mqttPort: number }> {
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const cfg = {
    dataDir,
    http: { host: '127.0.0.1', port: httpPort },
    bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: mqttPort } } },
    supervisor: { backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.1 } },
    ...config,
  };
  const file = join(dataDir, 'talon.json');
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return { file, dataDir, httpPort, mqttPort };
}

function readConfig(file: string): { file: string; dataDir: string; httpPort: number; mqttPort: number } {
  const c = JSON.parse(readFileSync(file, 'utf8')) as {
    dataDir: string;
    http: { port: number };
    bus: { embedded: { listen: { port: number } } };
  };
  return { file, dataDir: c.dataDir, httpPort: c.http.port, mqttPort: c.bus.embedded.listen.port };
}

export function spawnTalon(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [TALON, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

/** starts the daemon on a new config file, or again on an earlier one (`opts.configFile`) */
export async function startDaemon(
  config: Record<string, unknown>,
  opts: { dataDir?: string; configFile?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Daemon> {
  const { file, dataDir, httpPort, mqttPort } = opts.configFile
    ? readConfig(opts.configFile)
    : await writeConfig(config, opts.dataDir);
  const { proc, output, exited } = spawnTalon(['run', '--config', file], opts.env);
  const d: Daemon = {
    proc,
    dataDir,
    configFile: file,
    httpPort,
    mqttPort,
    output,
    exited,
    token: () => readFileSync(join(dataDir, 'cli-token'), 'utf8').trim(),
    deviceId: () => (JSON.parse(readFileSync(join(dataDir, 'runtime.json'), 'utf8')) as { deviceId: string }).deviceId,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`talon exited ${proc.exitCode} before it was healthy:\n${output()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      if (r.status === 200 && existsSync(join(dataDir, 'runtime.json'))) return d;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`talon not healthy after 20 s:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** runs the CLI to completion */
export function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [TALON, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** an authenticated REST call to the daemon as its admin; the body parsed when it is JSON */
export async function api(
  d: Daemon,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const r = await fetch(`http://127.0.0.1:${d.httpPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${d.token()}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  try {
    return { status: r.status, body: JSON.parse(text) };
  } catch {
    return { status: r.status, body: text };
  }
}

/** polls an async `fn` until it gives a value (errors count as not yet); a ceiling, not a timing assertion */
export async function poll<T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 20_000): Promise<T> {
  const t0 = performance.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
