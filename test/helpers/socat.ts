/**
 * A real pty pair for serial tests: socat links two ptys at `<dir>/a` and `<dir>/b`; bytes
 * written to one come out of the other, with real termios, real open/close and real EIO
 * when the other side goes away.
 *
 *   const pty = await startPtyPair();
 *   // driver opens pty.a; the test writes and reads pty.b (fs or serialport)
 *   await pty.kill();     // the port vanishes (links removed, the open side gets EIO)
 *   await pty.launch();   // a new pair on the same link paths
 *   await pty.stop();     // kill and remove the temp dir
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait.ts';

export const SOCAT_BIN = ['/usr/bin/socat', '/usr/local/bin/socat', '/bin/socat'].find((p) => existsSync(p)) ?? 'socat';

export interface PtyPair {
  dir: string;
  /** one end (give it to the driver) */
  a: string;
  /** the other end (the test plays the device here) */
  b: string;
  /** socat's stderr so far */
  log(): string;
  /** SIGTERM socat and wait until it exited and both links are gone */
  kill(): Promise<void>;
  /** start socat again on the same link paths */
  launch(): Promise<void>;
  /** kill and remove the temp dir */
  stop(): Promise<void>;
}

export async function startPtyPair(): Promise<PtyPair> {
  const dir = await mkdtemp(join(tmpdir(), 'talon-pty-'));
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const launch = async (): Promise<void> => {
    if (child) throw new Error('socat is already running');
    const c = spawn(SOCAT_BIN, ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = c;
    exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.stderr!.setEncoding('utf8');
    c.stderr!.on('data', (d: string) => {
      log = (log + d).slice(-20_000);
    });
    c.once('error', (err) => {
      log += `\nspawn error: ${err.message}`;
    });
    let dead = false;
    void exited.then(() => {
      dead = true;
      if (child === c) child = undefined;
    });
    // socat creates both links before its transfer loop says so; wait for the loop
    await waitFor(
      () => dead || (existsSync(a) && existsSync(b) && log.includes('starting data transfer loop')),
      `socat to link ${a} and ${b}`,
      10_000,
    );
    if (dead) throw new Error(`socat exited at start: ${log}`);
  };

  const kill = async (): Promise<void> => {
    const c = child;
    if (!c) return;
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(t);
    child = undefined;
    await waitFor(() => !existsSync(a) && !existsSync(b), 'socat to remove its links', 5_000).catch(async () => {
      // socat removes its links at exit; after a SIGKILL they may linger
      await rm(a, { force: true });
      await rm(b, { force: true });
    });
  };

  await launch();
  return {
    dir,
    a,
    b,
    log: () => log,
    kill,
    launch,
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
