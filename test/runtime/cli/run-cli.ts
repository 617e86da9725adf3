/** Spawns `node talon.cjs ...` asynchronously (tests run HTTP servers in this process). */
import { spawn, type ChildProcess } from 'node:child_process';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliRun {
  child: ChildProcess;
  /** everything printed so far */
  readonly stdout: string;
  readonly stderr: string;
  done: Promise<CliResult>;
}

export function startCli(
  bin: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd: string; ceilingMs?: number },
): CliRun {
  // a clean environment: no TALON_* from the caller's shell
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    ...opts.env,
  };
  const child = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const ceiling = opts.ceilingMs ?? 20_000;
  const done = new Promise<CliResult>((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`talon ${args.join(' ')} still running after ${ceiling} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, ceiling);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    done,
  };
}

export function runCli(
  bin: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd: string },
): Promise<CliResult> {
  return startCli(bin, args, opts).done;
}
