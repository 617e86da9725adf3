/**
 * Provisioning end to end, the way it is used: `talon fleet init` makes the fleet folder, a real
 * mosquitto runs from its files (ACL included), the real daemon (`node dist/talon.cjs run`)
 * starts with the bootstrap section baked into its config, and the operator uses the CLI
 * (`talon fleet devices | provision | decommission`). Power is cut (SIGKILL) while the new
 * config is being applied: after a restart the device is in the old or the new generation,
 * never between, its config validates, and the agent finishes the apply.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, startDaemon, spawnTalon, cli, type Daemon } from '../helpers/daemon.ts';
import { connectClient } from '../helpers/mqtt-client.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';
import { validateConfig } from '../../runtime/config/validate.ts';
import { configHash } from '../../runtime/config/generations.ts';
import type { TalonConfig } from '../../runtime/config/types.ts';

let root: string;
let fleetDir: string;
let broker: Mosquitto;
let daemon: Daemon | null = null;

interface Status {
  state: string;
  appliedVersion?: number;
  pending?: { version: number; phase: string };
  lastResult?: { outcome: string; version: number };
  broker?: { kind: string; connected: boolean } | null;
}
interface Current {
  generation: number;
  hash: string;
  config: TalonConfig;
}

async function get<T>(d: Daemon, path: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${d.httpPort}${path}`, { headers: { authorization: `Bearer ${d.token()}` } });
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  return (await r.json()) as T;
}

/** polls without failing on a daemon that is between lives */
async function until<T>(
  d: Daemon,
  path: string,
  pred: (v: T) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  let last: T | undefined;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      last = await get<T>(d, path);
      if (pred(last)) return last;
    } catch {
      /* restarting */
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last ${JSON.stringify(last)}\n${d.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function talon(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return cli(['fleet', ...args, '--fleet', fleetDir]);
}

before(async () => {
  ensureBuilt();
  root = mkdtempSync(join(tmpdir(), 'talon-e2e-prov-'));
  fleetDir = join(root, 'fleet');
  const port = await freePort();
  const init = cli([
    'fleet',
    'init',
    '--out',
    fleetDir,
    '--fleet-id',
    'vineyard',
    '--broker-url',
    `mqtt://127.0.0.1:${port}`,
    ...(process.getuid?.() === 0 ? ['--broker-user', 'root'] : []),
  ]);
  assert.equal(init.status, 0, init.stderr);
  broker = await startMosquitto({ configFile: join(fleetDir, 'broker', 'mosquitto.conf'), port });
});

after(async () => {
  await daemon?.stop('SIGKILL');
  await broker?.stop();
  rmSync(root, { recursive: true, force: true });
});

test('a generic device is provisioned by the CLI; power cut mid-apply ends in the old or new generation and the agent finishes', async () => {
  const bootstrap = JSON.parse(readFileSync(join(fleetDir, 'device-bootstrap.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  daemon = await startDaemon({
    hands: [],
    drivers: [],
    deviceName: 'generic',
    provisioning: { ...bootstrap, healthWindowMs: 2500 },
  });
  const d0 = daemon;
  const deviceId = d0.deviceId();
  await until<Status>(
    d0,
    '/api/v1/provisioning',
    (s) => s.state === 'announcing' && s.broker?.connected === true,
    'announcing',
  );

  // the operator sees it
  let listed = '';
  await waitFor(
    () => (listed = talon('devices', '--json').stdout).includes(deviceId),
    'the device in `talon fleet devices`',
    15_000,
  );

  const old = await get<Current>(d0, '/api/v1/config');
  const cfg = JSON.parse(readFileSync(d0.configFile, 'utf8')) as Record<string, unknown>;
  const { dataDir: _d, provisioning: _p, ...fleetConfig } = cfg;
  const configFile = join(root, 'device-config.json');
  writeFileSync(configFile, JSON.stringify({ ...fleetConfig, deviceName: 'vine-row-3' }));
  const sent = talon('provision', deviceId, '--config', configFile, '--secret', 'API_KEY=k-123', '--no-wait', '--json');
  assert.equal(sent.status, 0, sent.stderr + sent.stdout);

  // the apply is under way (marker written, health window running): cut the power
  await until<Status>(d0, '/api/v1/provisioning', (s) => s.pending !== undefined, 'the apply in progress');
  await d0.stop('SIGKILL');

  daemon = await startDaemon({}, { configFile: d0.configFile });
  const d1 = daemon;
  const now = await get<Current>(d1, '/api/v1/config');
  const next = validateConfig({ ...now.config });
  assert.ok(
    now.hash === old.hash || now.config.deviceName === 'vine-row-3',
    'the old generation or the new one, nothing between',
  );
  assert.equal(configHash(next), now.hash, 'the config in force validates as it is');
  const done = await until<Status>(
    d1,
    '/api/v1/provisioning',
    (s) => s.state === 'provisioned' && s.pending === undefined,
    'the agent finished the apply',
  );
  assert.equal(done.lastResult?.outcome, 'applied');
  const fin = await get<Current>(d1, '/api/v1/config');
  assert.equal(fin.config.deviceName, 'vine-row-3');
  await until<Status>(
    d1,
    '/api/v1/provisioning',
    (s) => s.broker?.kind === 'fleet' && s.broker.connected,
    'on the fleet broker with its own user',
  );

  // the operator's registry has the signed ack
  const devices = JSON.parse(talon('devices', '--json').stdout) as
    | { devices?: Array<{ deviceId: string; state: string }> }
    | Array<{ deviceId: string; state: string }>;
  const list = Array.isArray(devices) ? devices : (devices.devices ?? []);
  assert.equal(list.find((x) => x.deviceId === deviceId)?.state, 'provisioned');

  // decommission through the CLI: back to the bootstrap config, announcing again
  const dec = talon('decommission', deviceId, '--timeout', '20');
  assert.equal(dec.status, 0, dec.stderr + dec.stdout);
  await until<Status>(
    d1,
    '/api/v1/provisioning',
    (s) => s.state === 'decommissioned' && s.broker?.kind === 'bootstrap' && s.broker.connected,
    'decommissioned',
  );
  const back = await until<Current>(
    d1,
    '/api/v1/config',
    (c) => c.config.deviceName === 'generic',
    'the bootstrap config',
  );
  assert.equal(back.config.provisioning?.fleet, 'vineyard');
});

test("`talon fleet provision` waits for the real device's signed ack; a bad config is refused by the device and nothing changes", async () => {
  const d = daemon!;
  // the decommission before restarted the kernel in place: runtime.json is gone until its listeners are up again
  await until<Status>(d, '/api/v1/provisioning', (s) => s.broker?.connected === true, 'connected');
  const deviceId = d.deviceId();
  const cfg = JSON.parse(readFileSync(d.configFile, 'utf8')) as Record<string, unknown>;
  const { dataDir: _d, provisioning: _p, ...fleetConfig } = cfg;
  const good = join(root, 'good.json');
  writeFileSync(good, JSON.stringify({ ...fleetConfig, deviceName: 'vine-row-4' }));
  const ok = talon('provision', deviceId, '--config', good, '--timeout', '60');
  assert.equal(ok.status, 0, ok.stderr + ok.stdout);
  assert.match(ok.stdout, /applied/);
  const applied = await until<Current>(
    d,
    '/api/v1/config',
    (c) => c.config.deviceName === 'vine-row-4',
    'the new config in force',
  );

  // the device's own validation refuses it (the CLI is told to skip its own check, as a broken operator tool might)
  const bad = join(root, 'bad.json');
  writeFileSync(bad, JSON.stringify({ ...fleetConfig, http: { host: '127.0.0.1', port: 'eighty' } }));
  const refused = talon('provision', deviceId, '--config', bad, '--skip-validation', '--timeout', '60');
  assert.equal(refused.status, 1, refused.stderr + refused.stdout);
  assert.match(refused.stdout + refused.stderr, /rejected|CONFIG_INVALID/);
  const after = await get<Current>(d, '/api/v1/config');
  assert.equal(after.hash, applied.hash, 'nothing applied');
  const audit = await get<{ items: Array<{ action: string; decision: string }> }>(
    d,
    '/api/v1/audit?action=provision.reject',
  );
  assert.ok(audit.items.length >= 1, 'the refusal is audited');
});

test('TALON_HTTP and TALON_MQTT apply over the provisioned config as over a file config, and are not written into it', async () => {
  const d = daemon!;
  const before = await get<Current & { source?: string }>(d, '/api/v1/config');
  assert.equal(before.config.deviceName, 'vine-row-4', 'the provisioned generation is in force');
  await d.stop('SIGTERM');
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const t = spawnTalon(['run', '--config', d.configFile], {
    TALON_HTTP: `127.0.0.1:${httpPort}`,
    TALON_MQTT: `127.0.0.1:${mqttPort}`,
  });
  try {
    const e: Daemon = {
      ...d,
      proc: t.proc,
      httpPort,
      mqttPort,
      output: t.output,
      exited: t.exited,
      stop: async (sig = 'SIGTERM') => {
        t.proc.kill(sig);
        return t.exited;
      },
    };
    const now = await until<Current>(e, '/api/v1/config', () => true, 'the daemon on the TALON_HTTP port');
    assert.equal(
      now.hash,
      before.hash,
      'the provisioned generation is still in force, unchanged: the variables are not in it',
    );
    assert.equal(now.config.http.port, d.httpPort);
    const runtime = JSON.parse(readFileSync(join(d.dataDir, 'runtime.json'), 'utf8')) as {
      http: { port: number };
      mqtt?: { port: number };
    };
    assert.equal(runtime.http.port, httpPort);
    assert.equal(runtime.mqtt?.port, mqttPort);
    const c = await connectClient(`mqtt://127.0.0.1:${mqttPort}`);
    const seen: string[] = [];
    c.on('message', (topic) => seen.push(topic));
    await c.subscribeAsync(`talon/${d.deviceId()}/state`);
    await waitFor(() => seen.length > 0, 'the device state on the TALON_MQTT port');
    await c.endAsync();
    daemon = e;
  } catch (err) {
    t.proc.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${t.output().slice(-3000)}`);
  }
  // the same variables at the next start (a systemd unit's Environment=): still laid over the same generation
  await daemon.stop('SIGTERM');
  const t2 = spawnTalon(['run', '--config', d.configFile], {
    TALON_HTTP: `127.0.0.1:${httpPort}`,
    TALON_MQTT: `127.0.0.1:${mqttPort}`,
  });
  const e2: Daemon = {
    ...d,
    proc: t2.proc,
    httpPort,
    mqttPort,
    output: t2.output,
    exited: t2.exited,
    stop: async (sig = 'SIGTERM') => {
      t2.proc.kill(sig);
      return t2.exited;
    },
  };
  daemon = e2;
  const again = await until<Current>(
    e2,
    '/api/v1/config',
    () => true,
    `the daemon on the TALON_HTTP port again\n${t2.output().slice(-2000)}`,
  );
  assert.equal(again.hash, before.hash);
  assert.equal(
    (JSON.parse(readFileSync(join(d.dataDir, 'runtime.json'), 'utf8')) as { mqtt?: { port: number } }).mqtt?.port,
    mqttPort,
  );
});
