/**
 * A real kernel (LevelDB in a temp folder, embedded broker, one idle worker Hand) and the
 * HTTP layer in process through light-my-request; helpers to log in and send requests.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import inject, { type InjectOptions, type Response } from 'light-my-request';
import { Kernel } from '../../runtime/host/kernel.ts';
import { validateConfig } from '../../runtime/config/load.ts';
import { createLogger } from '../../runtime/log.ts';
import { fixture, workerEntry } from '../helpers/fixtures.ts';

export interface Harness {
  kernel: Kernel;
  dataDir: string;
  cliToken: string;
  send(opts: InjectOptions): Promise<Response>;
  cli(): Record<string, string>;
  stop(): Promise<void>;
}

export async function startHarness(
  extra: Record<string, unknown> = {},
  dataDir = mkdtempSync(join(tmpdir(), 'talon-web-')),
): Promise<Harness> {
  const config = validateConfig({
    dataDir,
    http: { host: '127.0.0.1', port: 0 },
    bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: 0 } } },
    hands: [{ name: 'idle', module: await fixture('idle') }],
    ...extra,
  });
  const kernel = await Kernel.start({
    config,
    logger: createLogger('error', () => {}),
    workerEntry: await workerEntry(),
  });
  const cliToken = readFileSync(join(dataDir, 'cli-token'), 'utf8').trim();
  return {
    kernel,
    dataDir,
    cliToken,
    send: (opts) => inject((rq, rs) => void kernel.http.handle(rq, rs), opts),
    cli: () => ({ authorization: `Bearer ${cliToken}` }),
    stop: () => kernel.stop(),
  };
}

export const code = (r: Response): string => (r.json() as { error: { code: string } }).error.code;

/** the session cookie's `name=value` from a Set-Cookie header */
export function cookieOf(r: Response): string {
  const raw = r.headers['set-cookie'];
  const line = Array.isArray(raw) ? raw[0]! : String(raw);
  return line.split(';')[0]!;
}

/** sets up the first admin through the setup code; returns the cookie and csrf token */
export async function setupAdmin(
  h: Harness,
  username = 'admin',
  password = 'correct horse battery',
): Promise<{ cookie: string; csrf: string }> {
  const r = await h.send({
    method: 'POST',
    url: '/api/v1/setup',
    payload: { code: h.kernel.http.setupCode, username, password },
  });
  if (r.statusCode !== 201) throw new Error(`setup failed: ${r.body}`);
  return { cookie: cookieOf(r), csrf: (r.json() as { csrf: string }).csrf };
}
