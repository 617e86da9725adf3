/**
 * The device's provisioning agent in a real kernel (KernelHost in process: LevelDB, worker Hands,
 * soft restarts) against a real mosquitto started from the files `talon fleet init` writes (its
 * ACL: the claim credential announces itself and reads its own bundle; the device user its own
 * tree). Bundles come from the fleet library (FleetOperator), the same code the CLI runs; only
 * the bad ones are forged here. One device goes through the whole life: bad input while
 * announcing, provision, update with a soft restart, rollback, flood, broker loss, key rotation,
 * decommission.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { KernelHost } from '../../../runtime/host/kernel.ts';
import { validateConfig } from '../../../runtime/config/validate.ts';
import { createLogger } from '../../../runtime/log.ts';
import { SecretStore } from '../../../runtime/secrets/sealed.ts';
import { Store } from '../../../runtime/store/store.ts';
import { AgentStore, type PendingApply } from '../../../provisioning/device/state.ts';
import { hashPassword } from '../../../runtime/secrets/password.ts';
import { initFleet, type Fleet } from '../../../provisioning/fleet/keys.ts';
import { brokerPaths } from '../../../provisioning/fleet/broker.ts';
import { FleetOperator } from '../../../provisioning/fleet/operator.ts';
import { buildDecommission } from '../../../provisioning/fleet/bundle.ts';
import { getDevice, writeDevice } from '../../../provisioning/fleet/registry.ts';
import {
  checkAck,
  encodeEnvelope,
  newBoxKeyPair,
  newSigningKeyPair,
  parseEnvelope,
  provisionTopics,
  sealBundleBody,
  signEnvelope,
  type AckPayload,
  type BundleBody,
  type BundlePayload,
} from '../../../provisioning/format.ts';
import { DEVICE_BOX_KEY_FILE } from '../../../provisioning/device/identity.ts';
import { startMosquitto, type Mosquitto } from '../../helpers/mosquitto.ts';
import { connectClient } from '../../helpers/mqtt-client.ts';
import { freePort } from '../../helpers/ports.ts';
import { fixture, workerEntry } from '../../helpers/fixtures.ts';
import { waitFor } from '../../helpers/wait.ts';

let root: string;
let fleet: Fleet;
let broker: Mosquitto;
let op: FleetOperator;
let raw: MqttClient;
let host: KernelHost;
let deviceId: string;
let idle: string;
let startOpts: Parameters<typeof KernelHost.start>[0];
const acks: AckPayload[] = [];

const kernel = () => host.kernel;
const agent = () => host.kernel.provisioning!;
const topics = () => provisionTopics(fleet.fleetId);

async function generation(): Promise<{ generation: number; hash: string }> {
  const cur = await kernel().generations.current();
  return { generation: cur!.generation, hash: cur!.hash };
}

/** the config a bundle carries: what the device runs, with other Hands or another name */
function bundleConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  const { dataDir: _d, provisioning: _p, ...rest } = kernel().config as unknown as Record<string, unknown>;
  return { ...rest, ...over };
}

async function nextAck(pred: (a: AckPayload) => boolean, what: string): Promise<AckPayload> {
  let found: AckPayload | undefined;
  await waitFor(() => (found = acks.find(pred)) !== undefined, what, 10_000);
  return found!;
}

async function auditActions(
  action: string,
): Promise<Array<{ subject: string; decision: string; detail?: Record<string, unknown> }>> {
  const page = await kernel().audit.query({ actor: 'provisioning', action, limit: 1000 });
  return page.items as unknown as Array<{ subject: string; decision: string; detail?: Record<string, unknown> }>;
}

/** publishes raw bytes on the device's bundle topic with the operator credential */
async function publishRaw(bytes: Buffer | string): Promise<void> {
  await raw.publishAsync(topics().bundle(deviceId), bytes, { qos: 1, retain: false });
}

let forged = 0;
/**
 * A forged bundle: valid in every way except what `mutate` breaks in its header or its body (the
 * body is sealed to `sealTo`, the device's key unless given). Its version is far above the
 * operator's, so the device's 'rejected' ack is never mistaken for the answer to a real bundle.
 */
function forge(
  mutate: (p: BundlePayload, body: BundleBody) => void,
  signWith: Buffer = fleet.secretKey,
  sealTo?: Buffer,
): Buffer {
  const rec = getDevice(fleet.dir, deviceId);
  const version = 1_000_000 + ++forged;
  const now = Date.now();
  const body: BundleBody = { deviceId, version, config: bundleConfig(), secrets: {} };
  const p: BundlePayload = {
    v: 2,
    type: 'bundle',
    fleet: fleet.fleetId,
    deviceId,
    ts: now,
    version,
    issuedAt: now,
    expiresAt: now + 60_000,
    sealed: { epk: '', nonce: '', box: '' },
  };
  mutate(p, body);
  p.sealed = sealBundleBody(body, sealTo ?? Buffer.from(rec.announce.payload.boxPublicKey, 'base64'));
  return encodeEnvelope(signEnvelope(p, signWith));
}

/** sends `bytes` and waits for the device's 'rejected' ack with `code`; nothing may change */
async function expectRejected(bytes: Buffer | string, code: string): Promise<void> {
  const before = await generation();
  const state = agent().status().state;
  const n = acks.length;
  await publishRaw(bytes);
  const ack = await nextAck((a) => acks.indexOf(a) >= n && a.outcome === 'rejected', `a rejected ack (${code})`);
  assert.equal(ack.code, code);
  assert.deepEqual(await generation(), before, 'nothing applied');
  assert.equal(agent().status().state, state);
  const rejects = await auditActions('provision.reject');
  assert.ok(
    rejects.some((r) => r.detail?.code === code),
    `provision.reject audited with ${code}`,
  );
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'talon-prov-'));
  const port = await freePort();
  fleet = initFleet(join(root, 'fleet'), {
    fleetId: 'greenhouses',
    brokerUrl: `mqtt://127.0.0.1:${port}`,
    ...(process.getuid?.() === 0 ? { brokerRunAs: 'root' } : {}),
  });
  broker = await startMosquitto({ configFile: brokerPaths(fleet.dir).conf, port });
  op = await FleetOperator.connect(fleet);
  raw = await connectClient(broker.url, {
    username: fleet.operator.username,
    password: fleet.operator.password,
    clientId: 'test-observer',
  });
  raw.on('message', (topic, payload) => {
    if (!topic.startsWith(`talon/provision/${fleet.fleetId}/status/`)) return;
    try {
      const env = parseEnvelope(payload);
      acks.push(
        checkAck(env, {
          fleet: (env.payload as { fleet: string }).fleet,
          deviceId,
          signPublicKey: kernel().key.publicKey,
        }),
      );
    } catch {
      /* not ours */
    }
  });
  idle = await fixture('idle');
  const dataDir = join(root, 'device');
  const config = validateConfig({
    dataDir,
    deviceName: 'generic',
    http: { host: '127.0.0.1', port: 0 },
    bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: 0 } } },
    supervisor: { backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.1 } },
    drivers: [],
    hands: [{ name: 'idle', module: idle }],
    provisioning: { ...fleet.bootstrap, healthWindowMs: 400 },
  });
  startOpts = { config, source: 'test', logger: createLogger('error', () => {}), workerEntry: await workerEntry() };
  host = await KernelHost.start(startOpts);
  deviceId = kernel().deviceId;
  await raw.subscribeAsync(topics().status(deviceId), { qos: 1 });
  await waitFor(() => agent().status().broker?.connected === true, 'the agent connected to the bootstrap broker');
  // the operator sees the signed announce
  for (let i = 0; i < 200 && !(await op.sync()).some((d) => d.deviceId === deviceId); i++)
    await new Promise((r) => setTimeout(r, 25));
});

after(async () => {
  await host?.stop();
  await op?.close().catch(() => {});
  await raw?.endAsync(true).catch(() => {});
  await broker?.stop();
  rmSync(root, { recursive: true, force: true });
});

test('first start: a sealing key (0600) and a signed announce with keys and inventory the operator verified', async () => {
  const file = join(kernel().config.dataDir, DEVICE_BOX_KEY_FILE);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const rec = getDevice(fleet.dir, deviceId);
  assert.equal(rec.state, 'pending');
  assert.equal(
    rec.announce.payload.boxPublicKey,
    (JSON.parse(readFileSync(file, 'utf8')) as { publicKey: string }).publicKey,
  );
  assert.equal(rec.announce.payload.signPublicKey, kernel().key.publicKey.toString('base64'));
  assert.ok(rec.announce.payload.inventory.memoryBytes > 0);
  assert.equal(agent().status().state, 'announcing');
  // audited once the broker confirmed the announce, which may be a moment after the operator saw it
  for (let i = 0; i < 400 && (await auditActions('provision.announce')).length === 0; i++)
    await new Promise((r) => setTimeout(r, 25));
  assert.ok((await auditActions('provision.announce')).length >= 1);
  const api = await kernel().api.provisioning.status({ actor: 'cli' });
  assert.equal(api.state, 'announcing');
  assert.equal(api.fleet, 'greenhouses');
});

test('bad input while announcing: each refused with its code, audited, acked, nothing applied', async () => {
  const other = newSigningKeyPair();
  await expectRejected(
    forge(() => {}, other.secretKey),
    'PROVISION_BAD_SIGNATURE',
  );
  await expectRejected(
    forge((p) => {
      p.fleet = 'orchards';
    }, other.secretKey),
    'PROVISION_WRONG_FLEET',
  );
  await expectRejected(
    forge((p) => {
      p.deviceId = 'tzzzzzzzzzzzzzzzz';
    }),
    'PROVISION_WRONG_DEVICE',
  );
  await expectRejected(
    forge((p) => {
      p.expiresAt = Date.now() - 1000;
    }),
    'PROVISION_EXPIRED',
  );
  const stranger = newBoxKeyPair();
  await expectRejected(
    forge(() => {}, fleet.secretKey, stranger.publicKey),
    'PROVISION_SEAL',
  );
  await expectRejected(
    forge((_p, b) => {
      b.deviceId = 'tzzzzzzzzzzzzzzzz';
    }),
    'PROVISION_WRONG_DEVICE',
  );
  await expectRejected(
    forge((_p, b) => {
      b.config = { ...b.config, hands: [{ name: 'Bad Name!', module: idle }] };
    }),
    'CONFIG_INVALID',
  );
  // the old format, its config in clear: refused even when the fleet signed it
  const v1 = {
    v: 1,
    type: 'bundle',
    fleet: fleet.fleetId,
    deviceId,
    ts: Date.now(),
    version: 1_000_000 + ++forged,
    issuedAt: Date.now(),
    expiresAt: Date.now() + 60_000,
    config: bundleConfig(),
    secrets: {},
  };
  await expectRejected(encodeEnvelope(signEnvelope(v1, fleet.secretKey)), 'PROVISION_UNSEALED');
  await expectRejected(Buffer.alloc(300 * 1024, 0x7b), 'PAYLOAD_TOO_LARGE');
  await expectRejected('this is not json', 'PROVISION_MALFORMED');
  assert.equal(agent().status().appliedVersion, 0);
  assert.equal((await new SecretStore(kernel().store, kernel().key).list()).length, 0);
});

test('a first bundle that is rolled back takes its admin account with it: no account again, and the setup code back', async () => {
  const users = kernel().http.auth.users;
  assert.equal(await users.count(), 0, 'a generic device has no account');
  const before = await generation();
  const crash = await fixture('throw-on-start');
  const r = await op.provision(deviceId, {
    config: bundleConfig({
      hands: [
        { name: 'idle', module: idle },
        { name: 'broken', module: crash },
      ],
    }),
    admin: { username: 'earlyadmin', passwordHash: hashPassword('early bird password', { N: 1024 }) },
    timeoutMs: 15_000,
  });
  assert.equal(r.ack?.outcome, 'rolled-back', JSON.stringify(r.ack));
  assert.equal((await generation()).hash, before.hash);
  assert.equal(await users.count(), 0, 'the account of the rolled-back bundle is gone');
  assert.equal(await users.verify('earlyadmin', 'early bird password'), null);
  assert.equal(await kernel().http.auth.setupNeeded(), true);
  assert.ok(existsSync(join(kernel().config.dataDir, 'setup-code')), 'the setup code is back');
  const undone = (await auditActions('provision.rollback')).find((e) => e.subject === 'user earlyadmin');
  assert.equal(undone?.detail?.admin, 'removed');
  assert.equal(agent().status().state, 'announcing');
});

test('provision: secrets, the admin account and the config applied; acked; the device moves to its own broker user', async () => {
  const before = await generation();
  const r = await op.provision(deviceId, {
    config: bundleConfig({
      hands: [
        { name: 'idle', module: idle },
        { name: 'idle2', module: idle },
      ],
    }),
    secrets: { API_KEY: 's3cret' },
    admin: { username: 'fleetadmin', passwordHash: hashPassword('correct horse battery') },
    timeoutMs: 10_000,
  });
  assert.equal(r.ack?.outcome, 'applied', JSON.stringify(r.ack));
  const st = agent().status();
  assert.equal(st.state, 'provisioned');
  assert.equal(st.appliedVersion, r.version);
  assert.ok((await generation()).generation > before.generation);
  assert.equal((await kernel().generations.current())!.source, `provisioning v${r.version}`);
  assert.deepEqual(
    kernel()
      .supervisor.list()
      .map((h) => h.name)
      .sort(),
    ['idle', 'idle2'],
  );
  assert.equal(await new SecretStore(kernel().store, kernel().key).get('API_KEY'), 's3cret');
  assert.ok(await kernel().http.auth.users.verify('fleetadmin', 'correct horse battery'));
  await waitFor(
    () => agent().status().broker?.kind === 'fleet' && agent().status().broker?.connected === true,
    'connected with the device credential',
  );
  // the fleet membership survives: it is the device's own, not the bundle's
  assert.equal(kernel().config.provisioning?.fleet, 'greenhouses');
  for (const action of ['provision.bundle', 'provision.apply', 'provision.ack'])
    assert.ok((await auditActions(action)).length > 0, action);
});

test('re-provisioned with a new broker password and the fleet broker reloaded (SIGHUP): the refused device falls back to the claim credential, applies, and is back on its own user', async () => {
  await waitFor(
    () => agent().status().broker?.kind === 'fleet' && agent().status().broker?.connected === true,
    'on its own credential',
  );
  // the operator's registry lost the ack (a restored backup, a --no-wait run): it issues the device
  // a new password, reloads mosquitto — which drops the device, whose old password is now refused —
  // and sends the new one in a bundle the device can only read with the claim credential
  writeDevice(fleet.dir, { ...getDevice(fleet.dir, deviceId), state: 'provisioning' });
  const r = await op.provision(deviceId, { config: bundleConfig(), timeoutMs: 20_000 });
  assert.equal(r.reload, 'reloaded');
  assert.equal(
    r.ack?.outcome,
    'applied',
    `no ack: the device stayed disconnected\n${JSON.stringify(agent().status())}`,
  );
  await waitFor(
    () => agent().status().broker?.kind === 'fleet' && agent().status().broker?.connected === true,
    'back on its own (new) credential',
  );
  const link = await auditActions('provision.link');
  assert.ok(
    link.some((e) => e.decision === 'error'),
    'the fallback is audited',
  );
  assert.equal(agent().status().appliedVersion, r.version);
});

test("an update that needs a soft restart: the next kernel's agent watches health and acks applied; a replay is refused", async () => {
  const r = await op.provision(deviceId, { config: bundleConfig({ deviceName: 'greenhouse-7' }), timeoutMs: 15_000 });
  assert.equal(r.ack?.outcome, 'applied', JSON.stringify(r.ack));
  await waitFor(() => kernel().config.deviceName === 'greenhouse-7', 'the restarted kernel runs the new config');
  await waitFor(() => agent().status().appliedVersion === r.version, 'the new agent knows the applied version');
  assert.equal(agent().status().pending, undefined);
  // the very bundle again, byte for byte (read back from the broker), is a replay
  const copy = await new Promise<Buffer>((resolve) => {
    const onMsg = (topic: string, payload: Buffer): void => {
      if (topic !== topics().bundle(deviceId)) return;
      raw.off('message', onMsg);
      resolve(payload);
    };
    raw.on('message', onMsg);
    void raw.subscribeAsync(topics().bundle(deviceId), { qos: 1 });
  });
  await raw.unsubscribeAsync(topics().bundle(deviceId));
  assert.equal((parseEnvelope(copy).payload as { version: number }).version, r.version);
  await expectRejected(copy, 'PROVISION_REPLAY');
  // the same version again (and an older one) is a replay
  await expectRejected(
    forge((p, b) => {
      p.version = b.version = r.version;
    }),
    'PROVISION_REPLAY',
  );
  await expectRejected(
    forge((p, b) => {
      p.version = b.version = 1;
    }),
    'PROVISION_REPLAY',
  );
});

test('a config whose Hand fails at once is rolled back to the previous generation', async () => {
  const before = await generation();
  const crash = await fixture('throw-on-start');
  const r = await op.provision(deviceId, {
    config: bundleConfig({
      hands: [
        { name: 'idle', module: idle },
        { name: 'broken', module: crash },
      ],
    }),
    timeoutMs: 15_000,
  });
  assert.equal(r.ack?.outcome, 'rolled-back', JSON.stringify(r.ack));
  assert.equal(r.ack?.code, 'PROVISION_UNHEALTHY');
  assert.equal((await generation()).hash, before.hash, 'the old config is in force again');
  assert.ok(
    !kernel()
      .supervisor.list()
      .some((h) => h.name === 'broken'),
  );
  assert.equal(agent().status().state, 'provisioned');
  assert.notEqual(agent().status().appliedVersion, r.version);
  assert.ok((await auditActions('provision.rollback')).length > 0);
});

test('a config the kernel cannot start with (its HTTP port taken) is rolled back when the restart fails', async () => {
  const before = await generation();
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const taken = (blocker.address() as { port: number }).port;
  try {
    const r = await op.provision(deviceId, {
      config: bundleConfig({ http: { host: '127.0.0.1', port: taken } }),
      timeoutMs: 20_000,
    });
    assert.equal(r.ack?.outcome, 'rolled-back', JSON.stringify(r.ack));
    assert.equal(r.ack?.code, 'PROVISION_UNHEALTHY');
    assert.match(r.ack?.message ?? '', /did not start/);
    assert.equal((await generation()).hash, before.hash);
    assert.equal(kernel().api.health().ok, true);
  } finally {
    blocker.close();
  }
});

test('a flood of bogus bundles is capped (dropped and counted); the device stays up and still takes a good bundle', async () => {
  const before = await generation();
  const other = newSigningKeyPair();
  const junk = forge(() => {}, other.secretKey);
  await Promise.all(Array.from({ length: 300 }, () => publishRaw(junk)));
  await waitFor(() => agent().status().dropped > 0, 'dropped messages counted');
  assert.deepEqual(await generation(), before);
  assert.equal(kernel().api.health().ok, true);
  const r = await op.provision(deviceId, {
    config: bundleConfig({ hands: [{ name: 'idle', module: idle }] }),
    timeoutMs: 15_000,
  });
  assert.equal(r.ack?.outcome, 'applied', JSON.stringify(r.ack));
});

test('the broker gone mid-way through an apply: the device finishes, reconnects, acks, and the next bundle applies', async () => {
  assert.equal(agent().status().broker?.connected, true);
  const sent = await op.provision(deviceId, {
    config: bundleConfig({
      hands: [
        { name: 'idle', module: idle },
        { name: 'idle3', module: idle },
      ],
    }),
    wait: false,
  });
  await waitFor(() => agent().status().pending?.version === sent.version, 'the apply under way');
  await broker.kill();
  await waitFor(() => agent().status().broker?.connected === false, 'the agent noticed the broker is gone');
  await waitFor(() => agent().status().pending === undefined, 'the apply settled with the broker down');
  assert.equal(agent().status().lastResult?.outcome, 'applied');
  assert.deepEqual(
    kernel()
      .supervisor.list()
      .map((h) => h.name)
      .sort(),
    ['idle', 'idle3'],
  );
  await broker.launch();
  await waitFor(() => agent().status().broker?.connected === true, 'the agent reconnected');
  // the broker forgot everything (no persistence): the operator and the observer connect again
  await op.close().catch(() => {});
  op = await FleetOperator.connect(fleet);
  await raw.endAsync(true);
  raw = await connectClient(broker.url, {
    username: fleet.operator.username,
    password: fleet.operator.password,
    clientId: 'test-observer',
  });
  raw.on('message', (topic, payload) => {
    try {
      if (topic === topics().status(deviceId))
        acks.push(
          checkAck(parseEnvelope(payload), { fleet: fleet.fleetId, deviceId, signPublicKey: kernel().key.publicKey }),
        );
    } catch {
      /* not ours */
    }
  });
  await raw.subscribeAsync(topics().status(deviceId), { qos: 1 });
  // the ack queued while the broker was down went out on reconnect (retained)
  await nextAck((a) => a.version === sent.version && a.outcome === 'applied', 'the queued ack');
  await op.sync();
  const r = await op.provision(deviceId, {
    config: bundleConfig({ hands: [{ name: 'idle', module: idle }] }),
    timeoutMs: 15_000,
  });
  assert.equal(r.ack?.outcome, 'applied', JSON.stringify(r.ack));
});

test('key rotation: a bundle signed by the old key installs the new anchor; the old key is refused afterwards', async () => {
  const oldKey = fleet.secretKey;
  const rot = await op.rotateKey({ timeoutMs: 15_000 });
  assert.equal(rot.results[0]?.ack?.outcome, 'applied', JSON.stringify(rot.results));
  assert.ok((await auditActions('provision.rotate')).length > 0);
  await op.close();
  const { loadFleet } = await import('../../../provisioning/fleet/keys.ts');
  fleet = loadFleet(fleet.dir);
  op = await FleetOperator.connect(fleet);
  await expectRejected(
    forge(() => {}, oldKey),
    'PROVISION_BAD_SIGNATURE',
  );
  const r = await op.provision(deviceId, {
    config: bundleConfig({ hands: [{ name: 'idle', module: idle }] }),
    timeoutMs: 15_000,
  });
  assert.equal(r.ack?.outcome, 'applied', JSON.stringify(r.ack));
});

test('decommission wipes secrets and the broker credential, returns to the bootstrap config and announces again', async () => {
  const r = await op.decommission(deviceId, { timeoutMs: 15_000 });
  assert.equal(r.ack?.outcome, 'decommissioned', JSON.stringify(r.ack));
  await waitFor(() => kernel().config.deviceName === 'generic', 'the bootstrap generation back in force', 15_000);
  await waitFor(
    () => agent().status().broker?.kind === 'bootstrap' && agent().status().broker?.connected === true,
    'back on the bootstrap broker',
  );
  assert.equal(agent().status().state, 'decommissioned');
  assert.deepEqual(await new SecretStore(kernel().store, kernel().key).list(), []);
  assert.deepEqual(
    kernel().config.hands.map((h) => h.name),
    ['idle'],
  );
  assert.ok((await auditActions('provision.decommission')).length > 0);
  // a decommission replayed, or an old bundle, does not bring it back
  const rec = getDevice(fleet.dir, deviceId);
  await expectRejected(encodeEnvelope(buildDecommission(fleet, rec, rec.version, Date.now())), 'PROVISION_REPLAY');
});

test('power lost mid-apply, replayed at start: a marker from before the config was written is dropped; one from mid-rollback is finished', async () => {
  const dataDir = kernel().config.dataDir;
  const cur = await generation();
  const older = (await kernel().generations.list()).find((g) => g.hash !== cur.hash)!;
  await host.stop();
  const writeMarker = async (p: PendingApply): Promise<void> => {
    const store = await Store.open(dataDir);
    await new AgentStore(store).putPending(p);
    await store.close();
  };
  // 1. cut before the new generation was written: the old one is in force, nothing to undo
  await writeMarker({
    v: 1,
    phase: 'applying',
    version: 999,
    sig: 'x',
    previousGeneration: cur.generation,
    previousHash: cur.hash,
    targetHash: 'f'.repeat(64),
    startedAt: Date.now(),
  });
  host = await KernelHost.start(startOpts);
  await waitFor(() => agent().status().pending === undefined, 'the stale marker dropped');
  assert.deepEqual(await generation(), cur);
  assert.ok((await auditActions('provision.apply')).some((e) => e.detail?.interrupted === true));
  // 2. cut in the middle of a rollback: the next start rolls back to the generation named and acks
  await host.stop();
  await writeMarker({
    v: 1,
    phase: 'rolling-back',
    version: 998,
    sig: 'y',
    previousGeneration: older.generation,
    previousHash: older.hash,
    targetHash: cur.hash,
    startedAt: Date.now(),
    reason: { code: 'PROVISION_UNHEALTHY', message: 'test' },
  });
  const n = acks.length;
  host = await KernelHost.start(startOpts);
  const ack = await nextAck((a) => acks.indexOf(a) >= n && a.version === 998, 'the rolled-back ack');
  assert.equal(ack.outcome, 'rolled-back');
  await waitFor(() => agent()?.status().pending === undefined, 'the rollback settled', 15_000);
  assert.equal((await generation()).hash, older.hash, 'the generation the marker named is in force');
});
