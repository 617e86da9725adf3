/**
 * The generated mosquitto files, on a real mosquitto: what the claim credential, a device user
 * and the operator can and cannot do. "Cannot" is checked without sleeping: a client publishes
 * (or the operator publishes for it to read) the forbidden message, then a marker on an allowed
 * topic; when the marker arrives, the forbidden message would have arrived before it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.ts';
import { connectClient, connectRefused } from '../helpers/mqtt-client.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';
import { initFleet, type Fleet } from '../../provisioning/fleet/keys.ts';
import {
  brokerPaths,
  brokerUsers,
  reloadBroker,
  removeBrokerUser,
  setBrokerUser,
} from '../../provisioning/fleet/broker.ts';
import * as format from '../../provisioning/format.ts';
import { FleetOperator } from '../../provisioning/fleet/operator.ts';
import { hashPassword } from '../../runtime/secrets/password.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { SimDevice } from './sim-device.ts';

let dir: string;
let fleet: Fleet;
let broker: Mosquitto;
const A = 'taaaaaaaaaaaaaaaa';
const B = 'tbbbbbbbbbbbbbbbb';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-fleet-broker-'));
  const port = await freePort();
  fleet = initFleet(join(dir, 'fleet'), {
    fleetId: 'acme',
    brokerUrl: `mqtt://127.0.0.1:${port}`,
    ...(process.getuid?.() === 0 ? { brokerRunAs: 'root' } : {}),
  });
  broker = await startMosquitto({ configFile: brokerPaths(fleet.dir).conf, port });
});

after(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function recorder(c: MqttClient): Array<{ topic: string; text: string }> {
  const seen: Array<{ topic: string; text: string }> = [];
  c.on('message', (topic, payload) => seen.push({ topic, text: payload.toString() }));
  return seen;
}

const operator = (): Promise<MqttClient> =>
  connectClient(fleet.brokerUrl, {
    username: fleet.operator.username,
    password: fleet.operator.password,
    clientId: 'op-test',
  });
const claim = (clientId: string): Promise<MqttClient> =>
  connectClient(fleet.brokerUrl, { username: 'claim', password: fleet.bootstrap.bootstrap.password, clientId });

test('init writes the fleet folder with the secrets 0600', () => {
  for (const f of ['fleet-key.json', 'operator.json', 'device-bootstrap.json', 'broker/passwd', 'broker/acl']) {
    assert.equal(statSync(join(fleet.dir, f)).mode & 0o777, 0o600, f);
  }
  const boot = JSON.parse(readFileSync(join(fleet.dir, 'device-bootstrap.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(boot).sort(), ['anchor', 'bootstrap', 'fleet']);
  assert.equal(boot.anchor, fleet.publicKey.toString('base64'));
  assert.deepEqual(brokerUsers(fleet.dir).sort(), ['claim', 'operator']);
  assert.match(readFileSync(brokerPaths(fleet.dir).passwd, 'utf8'), /^operator:\$7\$101\$/m);
});

test('the claim credential announces only itself and reads only its own bundle', async () => {
  const t = format.provisionTopics('acme');
  const op = await operator();
  const opSeen = recorder(op);
  await op.subscribeAsync('talon/#', { qos: 1 });
  await op.publishAsync(t.bundle(A), 'bundle-for-A', { qos: 1, retain: true });
  await op.publishAsync(t.bundle(B), 'bundle-for-B', { qos: 1, retain: true });

  const dev = await claim(A);
  const devSeen = recorder(dev);
  await dev.subscribeAsync([t.bundle(A), t.bundle(B)], { qos: 1 });
  await dev.publishAsync(t.announce(B), 'forged-announce', { qos: 1 });
  await dev.publishAsync(t.bundle(B), 'forged-bundle', { qos: 1 });
  await dev.publishAsync(`talon/${A}/x`, 'tree', { qos: 1 });
  await dev.publishAsync(t.status(A), 'own-status', { qos: 1 });
  await dev.publishAsync(t.announce(A), 'own-announce', { qos: 1 });
  await waitFor(() => opSeen.some((m) => m.text === 'own-announce'), 'the own announce at the operator');
  assert.ok(
    opSeen.some((m) => m.text === 'own-status'),
    'it may write its own status (acks before it has a credential)',
  );
  assert.ok(!opSeen.some((m) => ['forged-announce', 'forged-bundle', 'tree'].includes(m.text)), JSON.stringify(opSeen));

  await op.publishAsync(t.bundle(A), 'marker', { qos: 1 });
  await waitFor(() => devSeen.some((m) => m.text === 'marker'), 'the marker at the device');
  assert.ok(devSeen.some((m) => m.text === 'bundle-for-A'));
  assert.ok(!devSeen.some((m) => m.text === 'bundle-for-B'), "another device's bundle is not readable");
  await dev.endAsync();
  await op.endAsync();
});

test('a device user has its own talon/<id>/# and its provisioning topics, nothing of another device', async () => {
  const t = format.provisionTopics('acme');
  setBrokerUser(fleet.dir, A, 'pw-A');
  assert.equal(reloadBroker(fleet.dir), 'reloaded');
  // the reload is asynchronous: the first accepted connection proves it happened
  let dev: MqttClient | undefined;
  for (let i = 0; i < 200 && !dev; i++) {
    dev = await connectClient(fleet.brokerUrl, { username: A, password: 'pw-A', clientId: A }).catch(() => undefined);
    if (!dev) await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(dev, 'the new device user can connect after the reload');
  const op = await operator();
  const opSeen = recorder(op);
  await op.subscribeAsync('talon/#', { qos: 1 });
  const devSeen = recorder(dev);
  await dev.subscribeAsync([`talon/${A}/#`, `talon/${B}/#`, t.bundle(A), t.bundle(B)], { qos: 1 });

  await dev.publishAsync(`talon/${B}/cmd`, 'into-B', { qos: 1 });
  await dev.publishAsync(t.status(B), 'status-of-B', { qos: 1 });
  await dev.publishAsync(`talon/${A}/state`, 'own-tree', { qos: 1 });
  await waitFor(() => opSeen.some((m) => m.text === 'own-tree'), 'its own tree at the operator');
  assert.ok(!opSeen.some((m) => m.text === 'into-B' || m.text === 'status-of-B'), JSON.stringify(opSeen));

  await op.publishAsync(`talon/${B}/cmd`, 'for-B', { qos: 1 });
  await op.publishAsync(`talon/${A}/cmd`, 'for-A', { qos: 1 });
  await waitFor(() => devSeen.some((m) => m.text === 'for-A'), 'its own command');
  assert.ok(!devSeen.some((m) => m.text === 'for-B' || m.text === 'bundle-for-B'), JSON.stringify(devSeen));
  assert.ok(
    devSeen.some((m) => m.text === 'marker' || m.text === 'bundle-for-A'),
    'it reads its own bundle',
  );
  await dev.endAsync();

  // removed and reloaded: refused
  assert.equal(removeBrokerUser(fleet.dir, A), true);
  assert.equal(reloadBroker(fleet.dir), 'reloaded');
  let refused: Error | undefined;
  for (let i = 0; i < 200 && !refused; i++) {
    refused = await connectRefused(fleet.brokerUrl, { username: A, password: 'pw-A', clientId: A }).catch(
      () => undefined,
    );
    if (!refused) await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(refused, 'a removed device user is refused');
  await op.endAsync();
});

test('a wrong claim password and anonymous clients are refused', async () => {
  await connectRefused(fleet.brokerUrl, { username: 'claim', password: 'wrong', clientId: A });
  await connectRefused(fleet.brokerUrl, { clientId: A });
});

test("a bundle read off the broker by another device (the claim credential under the victim's client id) reveals nothing; only its device opens it", async () => {
  const victim = new SimDevice(fleet.bootstrap);
  await victim.start();
  const op = await FleetOperator.connect(fleet);
  try {
    for (let i = 0; i < 200 && !(await op.sync()).some((d) => d.deviceId === victim.id); i++)
      await new Promise((r) => setTimeout(r, 25));
    const adminHash = hashPassword('correct horse battery', { N: 1024 });
    const config = { deviceName: 'greenhouse-west-7', http: { host: '0.0.0.0', port: 8443 }, hands: [] };
    const r = await op.provision(victim.id, {
      config,
      secrets: { OPENAI_KEY: 'sk-live-9f3a' },
      admin: { username: 'fleetadmin', passwordHash: adminHash },
      timeoutMs: 10_000,
    });
    assert.equal(r.ack?.outcome, 'applied', JSON.stringify(r.ack));
    await victim.stop();

    // anyone holding the claim credential (it is in every image) can connect as the victim and read its retained bundle
    const thief = await claim(victim.id);
    const got: Buffer[] = [];
    thief.on('message', (_t, payload) => got.push(payload));
    await thief.subscribeAsync(format.provisionTopics('acme').bundle(victim.id), { qos: 1 });
    await waitFor(() => got.length > 0, 'the retained bundle at the thief');
    await thief.endAsync();
    const raw = got[0]!.toString('latin1');
    for (const clear of [
      adminHash,
      adminHash.split('$').at(-1)!,
      'scrypt$',
      'fleetadmin',
      'greenhouse-west-7',
      '0.0.0.0',
      '8443',
      'sk-live-9f3a',
      'OPENAI_KEY',
      victim.brokerPassword!,
      fleet.brokerUrl,
    ]) {
      assert.ok(!raw.includes(clear), `"${clear}" is readable in the retained bundle`);
    }
    // the header is verifiable, the body opens with nobody else's key
    const env = format.parseEnvelope(got[0]!);
    const header = format.checkBundle(env, {
      fleet: 'acme',
      deviceId: victim.id,
      anchor: fleet.publicKey,
      appliedVersion: 0,
      now: Date.now(),
    });
    assert.throws(
      () => format.openBundle(header, format.newBoxKeyPair().secretKey),
      (e: unknown) => e instanceof TalonError && e.code === 'PROVISION_SEAL',
    );
    // the right device got all of it
    const opened = format.openBundle(header, victim.boxKeys.secretKey);
    assert.deepEqual(opened.config, config);
    assert.equal(opened.admin?.passwordHash, adminHash);
    assert.deepEqual(victim.config, config);
    assert.deepEqual(victim.secrets, { OPENAI_KEY: 'sk-live-9f3a' });
    assert.equal(victim.admin?.passwordHash, adminHash);
  } finally {
    await op.close();
    await victim.stop().catch(() => undefined);
  }
});
