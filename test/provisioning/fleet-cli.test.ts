/**
 * `talon fleet` end to end against a real mosquitto started from the files `fleet init`
 * wrote, with simulated devices (test/provisioning/sim-device.ts) on the other side. The CLI
 * runs in-process through main() except `watch`, which runs as a process until SIGINT.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../runtime/cli/main.ts';
import type { Io } from '../../runtime/cli/args.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.ts';
import { connectClient } from '../helpers/mqtt-client.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';
import { REPO } from '../helpers/daemon.ts';
import { verifyPassword } from '../../runtime/secrets/password.ts';
import { loadFleet, type DeviceBootstrap } from '../../provisioning/fleet/keys.ts';
import { brokerUsers } from '../../provisioning/fleet/broker.ts';
import { newSigningKeyPair } from '../../provisioning/format.ts';
import { SimDevice } from './sim-device.ts';

let dir: string;
let fleetDir: string;
let broker: Mosquitto;
let boot: DeviceBootstrap;
const devices: SimDevice[] = [];

async function talon(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
    env: { ...process.env, TALON_FLEET: '' },
    cwd: dir,
  };
  const code = await main(argv, io);
  return { code, out, err };
}

async function device(
  inventory: ConstructorParameters<typeof SimDevice>[1] = {},
  bootOver: Partial<DeviceBootstrap> = {},
): Promise<SimDevice> {
  const d = new SimDevice({ ...boot, ...bootOver }, inventory);
  devices.push(d);
  await d.start();
  return d;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-fleet-cli-'));
  fleetDir = join(dir, 'fleet');
  const port = await freePort();
  const init = await talon(
    'fleet',
    'init',
    '--out',
    'fleet',
    '--fleet-id',
    'acme',
    '--broker-url',
    `mqtt://127.0.0.1:${port}`,
    ...(process.getuid?.() === 0 ? ['--broker-user', 'root'] : []),
  );
  assert.equal(init.code, 0, init.err);
  assert.match(init.out, /fleet acme in /);
  boot = JSON.parse(readFileSync(join(fleetDir, 'device-bootstrap.json'), 'utf8')) as DeviceBootstrap;
  broker = await startMosquitto({ configFile: join(fleetDir, 'broker', 'mosquitto.conf'), port });
  writeFileSync(join(dir, 'device.yaml'), 'http:\n  port: 8080\nhands: []\n');
  writeFileSync(join(dir, 'device2.json'), JSON.stringify({ http: { port: 8081 }, hands: [] }));
  writeFileSync(join(dir, 'bad.yaml'), 'http:\n  port: "not a port"\n');
  writeFileSync(join(dir, 'admin-pw'), 'correct horse battery\n');
});

after(async () => {
  for (const d of devices) await d.stop().catch(() => undefined);
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('usage: help exits 0, missing options exit 2, an unknown fleet or device exits 1', async () => {
  assert.equal((await talon('fleet', '--help')).code, 0);
  const h = await talon('fleet', 'provision', '--help');
  assert.equal(h.code, 0);
  assert.match(h.out, /--admin-password-file/);
  assert.equal((await talon('fleet', 'policy', 'add', '--help')).code, 0);
  assert.equal((await talon('fleet', 'provision', 'tx', '--fleet', 'fleet')).code, 2); // no --config
  assert.equal((await talon('fleet', 'devices')).code, 2); // no --fleet
  assert.equal((await talon('fleet', 'bogus')).code, 2);
  const nf = await talon('fleet', 'devices', '--fleet', 'nowhere');
  assert.equal(nf.code, 1);
  assert.match(nf.err, /FLEET_NOT_FOUND/);
  const nd = await talon('fleet', 'provision', 'tnosuchdevice', '--fleet', 'fleet', '--config', 'device.yaml');
  assert.equal(nd.code, 1);
  assert.match(nd.err, /DEVICE_NOT_FOUND/);
  const again = await talon('fleet', 'init', '--out', 'fleet');
  assert.notEqual(again.code, 0, 'init refuses an existing fleet folder');
});

test("devices, provision with sealed secrets and an admin, update, then the device's own credential works", async () => {
  const a = await device();
  const list = await talon('fleet', 'devices', '--fleet', 'fleet', '--json');
  assert.equal(list.code, 0, list.err);
  const rec = (
    JSON.parse(list.out) as { devices: Array<{ deviceId: string; state: string; inventory: { board: string } }> }
  ).devices.find((d) => d.deviceId === a.id);
  assert.equal(rec?.state, 'pending');
  assert.equal(rec?.inventory.board, a.inventory.board);
  assert.match((await talon('fleet', 'devices', '--fleet', 'fleet')).out, new RegExp(`${a.id}\\s+pending`));

  const bad = await talon('fleet', 'provision', a.id, '--fleet', 'fleet', '--config', 'bad.yaml');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /CONFIG_INVALID/);
  assert.equal(a.acks.length, 0, 'an invalid config never leaves');

  const r = await talon(
    'fleet',
    'provision',
    a.id,
    '--fleet',
    'fleet',
    '--config',
    'device.yaml',
    '--secret',
    'OPENAI_KEY=sk-live-1',
    '--secret=HA_TOKEN=abc=def',
    '--admin-user',
    'admin',
    '--admin-password-file',
    'admin-pw',
    '--timeout',
    '20',
  );
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, new RegExp(`${a.id}: applied \\(config generation 101\\)`));
  // progress on stderr while it waits (issue 14): sent, then the ack
  assert.match(r.err, new RegExp(`sent v1 to ${a.id}; waiting up to 20 s for its ack`));
  assert.match(r.err, new RegExp(`${a.id} acked v1 after [\\d.]+ s: applied`));
  assert.deepEqual(a.config, { http: { port: 8080 }, hands: [] });
  assert.deepEqual(a.secrets, { OPENAI_KEY: 'sk-live-1', HA_TOKEN: 'abc=def' });
  assert.equal(a.admin?.username, 'admin');
  assert.equal(verifyPassword('correct horse battery', a.admin!.passwordHash), true);
  assert.ok(a.brokerPassword, 'the bundle carried its own broker credential');
  assert.ok(brokerUsers(fleetDir).includes(a.id));
  // another client id: the same one would take the simulated device's session over
  const own = await connectClient(boot.bootstrap.url, {
    username: a.id,
    password: a.brokerPassword,
    clientId: `${a.id}-check`,
  });
  await own.endAsync();

  const pw = a.brokerPassword;
  const u = await talon('fleet', 'provision', a.id, '--fleet', 'fleet', '--config', 'device2.json', '--json');
  assert.equal(u.code, 0, u.err);
  assert.equal((JSON.parse(u.out) as { version: number }).version, 2);
  assert.equal(a.appliedVersion, 2);
  assert.equal(a.brokerPassword, pw, 'an update keeps the credential');
  assert.match(
    (await talon('fleet', 'devices', '--fleet', 'fleet', '--offline')).out,
    new RegExp(`${a.id}\\s+provisioned\\s+2`),
  );
});

test('devices ignores announces that do not verify, and says why', async () => {
  const liar = new SimDevice(boot);
  const forged = JSON.parse(liar.announce().toString()) as { payload: { inventory: { board: string } }; sig: string };
  forged.payload.inventory.board = 'Raspberry Pi 4 (forged)';
  const c = await connectClient(boot.bootstrap.url, {
    username: boot.bootstrap.username,
    password: boot.bootstrap.password,
    clientId: liar.id,
  });
  await c.publishAsync(`talon/provision/acme/announce/${liar.id}`, JSON.stringify(forged), { qos: 1, retain: true });
  await c.endAsync();
  const list = await talon('fleet', 'devices', '--fleet', 'fleet', '--json');
  assert.equal(list.code, 0, list.err);
  const body = JSON.parse(list.out) as {
    devices: Array<{ deviceId: string }>;
    invalid: Array<{ topic: string; code: string }>;
  };
  assert.ok(!body.devices.some((d) => d.deviceId === liar.id));
  assert.deepEqual(
    body.invalid.filter((i) => i.topic.endsWith(liar.id)).map((i) => i.code),
    ['PROVISION_BAD_SIGNATURE'],
  );
  const text = await talon('fleet', 'devices', '--fleet', 'fleet');
  assert.match(text.err, new RegExp(`ignored .*${liar.id}.*PROVISION_BAD_SIGNATURE`));
});

test('a rollback, a rejection and a missing ack each exit 1', async () => {
  const b = await device();
  b.behaviour = 'rollback';
  const rb = await talon('fleet', 'provision', b.id, '--fleet', 'fleet', '--config', 'device.yaml');
  assert.equal(rb.code, 1);
  assert.match(rb.out, /rolled-back: health failed in the window \(HAND_CRASHED\)/);

  // a device baked with another fleet's key rejects our bundles
  const stranger = await device({}, { anchor: newSigningKeyPair().publicKey.toString('base64') });
  const rj = await talon('fleet', 'provision', stranger.id, '--fleet', 'fleet', '--config', 'device.yaml');
  assert.equal(rj.code, 1);
  assert.match(rj.out, /rejected: .*\(PROVISION_BAD_SIGNATURE\)/);
  assert.equal(stranger.appliedVersion, 0);
  assert.match(
    (await talon('fleet', 'devices', '--fleet', 'fleet', '--offline')).out,
    new RegExp(`${stranger.id}\\s+rejected`),
  );

  const gone = await device();
  await gone.stop();
  const to = await talon(
    'fleet',
    'provision',
    gone.id,
    '--fleet',
    'fleet',
    '--config',
    'device.yaml',
    '--timeout',
    '0.3',
  );
  assert.equal(to.code, 1);
  assert.match(to.err, /ACK_TIMEOUT/);
  assert.match(to.err, /waiting for .*: [\d.]+ s, [\d.]+ s left/, 'ticks while no ack comes');
  assert.match(to.err, /no ack from .* after [\d.]+ s/);
  const nw = await talon('fleet', 'provision', gone.id, '--fleet', 'fleet', '--config', 'device.yaml', '--no-wait');
  assert.equal(nw.code, 0, nw.err);
  assert.match(nw.out, /published v2/);
});

test('policy + watch approves matching devices as they announce, until SIGINT', async () => {
  const add = await talon(
    'fleet',
    'policy',
    'add',
    '--fleet',
    'fleet',
    '--match',
    'board=Raspberry Pi 4*',
    '--match',
    'arch=arm64',
    '--config',
    'device2.json',
  );
  assert.equal(add.code, 0, add.err);
  assert.match((await talon('fleet', 'policy', 'list', '--fleet', 'fleet')).out, /board=Raspberry Pi 4\* arch=arm64/);

  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO, 'runtime/cli/main.ts'), 'fleet', 'watch', '--fleet', fleetDir, '--timeout', '20'],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    await waitFor(() => out.includes('watching fleet acme'), 'watch to start', 20_000);
    const pi = await device({ board: 'Raspberry Pi 4 Model B Rev 1.5' });
    const rock = await device({ board: 'Rock Pi 4' });
    await waitFor(() => pi.acks.some((a) => a.outcome === 'applied'), 'the Pi to be provisioned by policy', 20_000);
    await waitFor(() => out.includes(`pending ${rock.id}: no policy matches`), 'the Rock Pi to stay pending', 20_000);
    assert.deepEqual(pi.config, { http: { port: 8081 }, hands: [] });
    assert.equal(rock.acks.length, 0);
    assert.match(out, new RegExp(`${pi.id} v1: applied`));
  } finally {
    proc.kill('SIGINT');
  }
  assert.equal(await exited, 0, out);
  assert.match(out, /stopped/);
});

test('decommission wipes the device and removes its broker user; rotate-key moves provisioned devices to a new anchor', async () => {
  const c = await device();
  assert.equal(
    (await talon('fleet', 'provision', c.id, '--fleet', 'fleet', '--config', 'device.yaml', '--secret', 'K=v')).code,
    0,
  );
  const d = await device();
  assert.equal((await talon('fleet', 'provision', d.id, '--fleet', 'fleet', '--config', 'device2.json')).code, 0);

  const dc = await talon('fleet', 'decommission', c.id, '--fleet', 'fleet');
  assert.equal(dc.code, 0, dc.out + dc.err);
  assert.match(dc.out, /decommissioned/);
  assert.deepEqual(c.secrets, {});
  assert.ok(!brokerUsers(fleetDir).includes(c.id));

  const oldKey = loadFleet(fleetDir).publicKey.toString('base64');
  const rot = await talon('fleet', 'rotate-key', '--fleet', 'fleet', '--timeout', '20');
  const fleet = loadFleet(fleetDir);
  const newKey = fleet.publicKey.toString('base64');
  assert.notEqual(newKey, oldKey);
  assert.ok(existsSync(join(fleetDir, 'fleet-key.old.json')));
  assert.equal(
    (JSON.parse(readFileSync(join(fleetDir, 'device-bootstrap.json'), 'utf8')) as DeviceBootstrap).anchor,
    newKey,
  );
  assert.match(rot.out, new RegExp(`${d.id} v2: applied`));
  assert.equal(d.anchor.toString('base64'), newKey);
  assert.equal(c.anchor.toString('base64'), oldKey, 'a decommissioned device is not rotated');
  assert.deepEqual(d.config, { http: { port: 8081 }, hands: [] }, 'rotation re-sends the last config');
  // every provisioned device acked (a rolled-back one from an earlier test is not provisioned)
  assert.equal(rot.code, 0, rot.out + rot.err);
  // bundles signed by the new key are accepted
  const up = await talon('fleet', 'provision', d.id, '--fleet', 'fleet', '--config', 'device.yaml');
  assert.equal(up.code, 0, up.out + up.err);
  assert.equal(d.appliedVersion, 3);
});
