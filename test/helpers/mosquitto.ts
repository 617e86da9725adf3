/**
 * A real mosquitto for tests: its own temp dir, a generated config, a free 127.0.0.1 port.
 *
 *   const m = await startMosquitto();                       // anonymous
 *   const m = await startMosquitto({ users: { alice: 'pw' }, acl: 'user alice\ntopic readwrite #' });
 *   ... m.url ...; await m.restart(); await m.stop();
 *
 * Users go to a password_file as PBKDF2-SHA512 hashes computed here (`$7$`, the format
 * mosquitto 2 reads; no mosquitto_passwd needed). Extra config lines go in `extraConfig`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort, waitForPort } from './ports.ts';
import { passwdLine } from '../../provisioning/fleet/broker.ts';

export { passwdLine };

export const MOSQUITTO_BIN =
  ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p)) ?? 'mosquitto';

export interface MosquittoOptions {
  /** username -> password; when given, anonymous access is off and a password_file is written */
  users?: Record<string, string>;
  /** contents of an acl_file (mosquitto syntax); written and referenced when given */
  acl?: string;
  /** allow anonymous clients (default: true when no users are given) */
  allowAnonymous?: boolean;
  /** extra lines appended to mosquitto.conf (applied to the listener) */
  extraConfig?: string[];
  /** fixed port; default a free one */
  port?: number;
  /**
   * a ready mosquitto.conf (like `talon fleet init` writes) listening on `port`: used as is,
   * nothing generated; stop() leaves its folder alone
   */
  configFile?: string;
}

export interface Mosquitto {
  url: string;
  port: number;
  dir: string;
  configPath: string;
  /** everything mosquitto wrote to stdout/stderr so far */
  log(): string;
  /** stop it and start it again on the same port (same config) */
  restart(): Promise<void>;
  /** SIGHUP: mosquitto rereads its password and ACL files (and drops clients whose credentials changed) */
  reload(): void;
  /** the password file generated from `users` (or null) */
  passwdPath: string | null;
  /** stop the process only (SIGTERM), keeping the config: `launch()` starts it again */
  kill(): Promise<void>;
  /** start the process again after kill(), on the same port */
  launch(): Promise<void>;
  /** SIGTERM, wait for exit, remove the temp dir */
  stop(): Promise<void>;
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  if (opts.configFile !== undefined && opts.port === undefined)
    throw new Error('startMosquitto: configFile needs the port it listens on');
  const dir =
    opts.configFile !== undefined ? dirname(opts.configFile) : await mkdtemp(join(tmpdir(), 'talon-mosquitto-'));
  const port = opts.port ?? (await freePort());
  const configPath = opts.configFile ?? join(dir, 'mosquitto.conf');
  if (opts.configFile === undefined) {
    const lines = [
      `listener ${port} 127.0.0.1`,
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
    ];
    // as root, mosquitto would drop to user `mosquitto`, which cannot read our 0600 files
    if (process.getuid?.() === 0) lines.push('user root');
    const users = opts.users ?? {};
    const hasUsers = Object.keys(users).length > 0;
    lines.push(`allow_anonymous ${(opts.allowAnonymous ?? !hasUsers) ? 'true' : 'false'}`);
    if (hasUsers) {
      const pwPath = join(dir, 'passwd');
      await writeFile(
        pwPath,
        Object.entries(users)
          .map(([u, p]) => passwdLine(u, p))
          .join('\n') + '\n',
        { mode: 0o600 },
      );
      lines.push(`password_file ${pwPath}`);
    }
    if (opts.acl !== undefined) {
      const aclPath = join(dir, 'acl');
      await writeFile(aclPath, opts.acl.endsWith('\n') ? opts.acl : `${opts.acl}\n`, { mode: 0o600 });
      lines.push(`acl_file ${aclPath}`);
    }
    lines.push(...(opts.extraConfig ?? []));
    await writeFile(configPath, lines.join('\n') + '\n');
  }

  let output = '';
  let child: ChildProcess | null = null;

  const launch = async (): Promise<void> => {
    const proc = spawn(MOSQUITTO_BIN, ['-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    proc.stderr!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code, sig) =>
        reject(new Error(`mosquitto exited (${code ?? sig}) during startup:\n${output}`)),
      );
      proc.once('error', (err) =>
        reject(new Error(`cannot run ${MOSQUITTO_BIN} (apt-get install mosquitto): ${err.message}`)),
      );
    });
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, '127.0.0.1', 10_000), exited]);
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  };

  // a mosquitto that fails to start must not leave the temp dir behind
  try {
    await launch();
  } catch (err) {
    await kill();
    if (opts.configFile === undefined) await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    dir,
    configPath,
    log: () => output,
    kill,
    launch,
    restart: async () => {
      await kill();
      await launch();
    },
    reload: () => {
      (child as ChildProcess | null)?.kill('SIGHUP');
    },
    passwdPath: opts.configFile === undefined && Object.keys(opts.users ?? {}).length > 0 ? join(dir, 'passwd') : null,
    stop: async () => {
      await kill();
      if (opts.configFile === undefined) await rm(dir, { recursive: true, force: true });
    },
  };
}
