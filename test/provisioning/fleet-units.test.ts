import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import { deviceIdFromPublicKey } from '../../runtime/secrets/device-key.ts';
import { verifyPassword } from '../../runtime/secrets/password.ts';
import {
  checkAnnounce,
  checkBundle,
  newBoxKeyPair,
  newSigningKeyPair,
  openBundle,
  signEnvelope,
  type AckPayload,
  type AnnouncePayload,
  type Envelope,
} from '../../provisioning/format.ts';
import { initFleet, loadFleet, rewriteBrokerFiles, type Fleet } from '../../provisioning/fleet/keys.ts';
import { recordAck, recordAnnounce, recordIssued, readDevice, listDevices } from '../../provisioning/fleet/registry.ts';
import {
  adminFromFile,
  buildBundle,
  buildDecommission,
  loadBundleConfig,
  parseDuration,
  parseSecretArgs,
  readSecretsFile,
} from '../../provisioning/fleet/bundle.ts';
import { addPolicy, findPolicy, globMatch, readPolicies, removePolicy } from '../../provisioning/fleet/policy.ts';
import { brokerUsers, setBrokerUser } from '../../provisioning/fleet/broker.ts';

let dir: string;
let fleet: Fleet;
const sign = newSigningKeyPair();
const box = newBoxKeyPair();
const deviceId = deviceIdFromPublicKey(sign.publicKey);

function announceEnv(ts: number, board = 'Raspberry Pi 4 Model B'): Envelope<AnnouncePayload> {
  const p: AnnouncePayload = {
    v: 1,
    type: 'announce',
    fleet: 'unit',
    deviceId,
    ts,
    signPublicKey: sign.publicKey.toString('base64'),
    boxPublicKey: box.publicKey.toString('base64'),
    inventory: { board, serial: 'abc', memoryBytes: 2 ** 31, os: 'Debian 12', arch: 'arm64', hostname: 'pi' },
    software: { version: '0.1.0', node: 'v20' },
    nonce: Buffer.alloc(16).toString('base64'),
  };
  return signEnvelope(p, sign.secretKey);
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof TalonError ? err.code : `not a TalonError: ${String(err)}`;
  }
  return 'no error';
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'talon-fleet-units-'));
  fleet = initFleet(join(dir, 'f'), { fleetId: 'unit', brokerUrl: 'mqtt://127.0.0.1:18830' });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('fleet folder: ids are checked, a missing or damaged folder is FLEET_NOT_FOUND', () => {
  assert.equal(
    code(() => initFleet(join(dir, 'x'), { fleetId: 'Bad Id' })),
    'USAGE',
  );
  assert.equal(
    code(() => initFleet(join(dir, 'y'), { brokerUrl: 'http://x' })),
    'USAGE',
  );
  assert.equal(
    code(() => initFleet(fleet.dir)),
    'CONFLICT',
  );
  assert.equal(
    code(() => loadFleet(join(dir, 'nothing'))),
    'FLEET_NOT_FOUND',
  );
  const other = initFleet(join(dir, 'other'), { fleetId: 'other' });
  writeFileSync(join(other.dir, 'fleet-key.json'), readFileSync(join(fleet.dir, 'fleet-key.json')));
  assert.equal(
    code(() => loadFleet(other.dir)),
    'FLEET_NOT_FOUND',
    'a key that does not match fleet.json',
  );
  unlinkSync(join(other.dir, 'operator.json'));
  assert.equal(
    code(() => loadFleet(other.dir)),
    'FLEET_NOT_FOUND',
  );
  assert.equal(loadFleet(fleet.dir).publicKey.equals(fleet.publicKey), true);
});

test('broker-config rewrite keeps device users; a new port reaches fleet.json and the bootstrap', () => {
  setBrokerUser(fleet.dir, deviceId, 'pw');
  const f = rewriteBrokerFiles(fleet, { port: 18831 });
  assert.deepEqual(brokerUsers(fleet.dir).sort(), [deviceId, 'claim', 'operator'].sort());
  assert.equal(f.brokerUrl, 'mqtt://127.0.0.1:18831');
  assert.equal(f.bootstrap.bootstrap.url, 'mqtt://127.0.0.1:18831');
  assert.match(readFileSync(join(fleet.dir, 'broker', 'mosquitto.conf'), 'utf8'), /^listener 18831 127\.0\.0\.1$/m);
  fleet = f;
});

test('registry: pending → provisioning → provisioned; a rejected update keeps it provisioned; decommissioned → pending on a fresh announce', () => {
  const first = announceEnv(1000);
  const r1 = recordAnnounce(fleet.dir, first, 1);
  assert.equal(r1.fresh, true);
  assert.equal(r1.record.state, 'pending');
  assert.equal(recordAnnounce(fleet.dir, first, 2).fresh, false, 'the retained copy again');
  assert.equal(readDevice(fleet.dir, deviceId)?.lastSeen, 1);
  assert.equal(recordIssued(fleet.dir, deviceId, 1, 'bundle', { hands: [] }, 3).state, 'provisioning');
  const ack = (version: number, outcome: AckPayload['outcome'], ts: number): AckPayload => ({
    v: 1,
    type: 'ack',
    fleet: 'unit',
    deviceId,
    ts,
    version,
    outcome,
  });
  assert.equal(recordAck(fleet.dir, ack(1, 'applied', 4), 4).state, 'provisioned');
  recordIssued(fleet.dir, deviceId, 2, 'bundle', { hands: [1] }, 5);
  const rej = recordAck(fleet.dir, ack(2, 'rejected', 6), 6);
  assert.equal(rej.state, 'provisioned');
  assert.deepEqual(rej.applied, { version: 1, at: 4 });
  assert.equal(recordAck(fleet.dir, ack(3, 'decommissioned', 7), 7).state, 'decommissioned');
  const again = recordAnnounce(fleet.dir, announceEnv(2000), 8);
  assert.equal(again.fresh, true);
  assert.equal(again.record.state, 'pending');
  assert.deepEqual(
    listDevices(fleet.dir).map((r) => r.deviceId),
    [deviceId],
  );
  assert.equal(readDevice(fleet.dir, '../etc/passwd'), undefined);
});

test('bundles: signed by the fleet key, sealed to the announced box key, checked by the device rules', () => {
  const rec = readDevice(fleet.dir, deviceId)!;
  assert.equal(checkAnnounce(rec.announce, { fleet: 'unit', deviceId }).deviceId, deviceId);
  const env = buildBundle({
    fleet,
    device: rec,
    version: 7,
    config: { hands: [] },
    secrets: { A: '1' },
    broker: { url: fleet.brokerUrl, username: deviceId, password: 'p' },
    now: 1000,
    expiresInMs: 500,
  });
  const ctx = { fleet: 'unit', deviceId, anchor: fleet.publicKey, appliedVersion: 6, now: 1499 };
  const p = checkBundle(env, ctx);
  const opened = openBundle(p, box.secretKey);
  assert.deepEqual(opened.secrets, { A: '1' });
  assert.equal(opened.broker?.password, 'p');
  assert.equal(
    code(() => checkBundle(env, { ...ctx, now: 1500 })),
    'PROVISION_EXPIRED',
  );
  assert.equal(
    code(() => openBundle(p, newBoxKeyPair().secretKey)),
    'PROVISION_SEAL',
  );
  assert.equal(
    code(() => buildBundle({ fleet, device: rec, version: 8, config: { pad: 'x'.repeat(300_000) }, now: 1 })),
    'PAYLOAD_TOO_LARGE',
  );
  assert.equal(buildDecommission(fleet, rec, 9, 1).payload.type, 'decommission');
});

test('bundle inputs: durations, --secret, secrets files, admin password, config checks', () => {
  assert.equal(parseDuration('7d'), 7 * 86_400_000);
  assert.equal(parseDuration('90'), 90_000);
  assert.equal(parseDuration('30m'), 1_800_000);
  assert.equal(
    code(() => parseDuration('soon')),
    'USAGE',
  );
  assert.deepEqual(parseSecretArgs(['A=1', 'B=x=y']), { A: '1', B: 'x=y' });
  assert.equal(
    code(() => parseSecretArgs(['novalue'])),
    'USAGE',
  );
  assert.equal(
    code(() => parseSecretArgs(['bad name=1'])),
    'USAGE',
  );
  writeFileSync(join(dir, 's.yaml'), 'OPENAI_KEY: sk-1\nPIN: 1234\n');
  assert.deepEqual(readSecretsFile(join(dir, 's.yaml')), { OPENAI_KEY: 'sk-1', PIN: '1234' });
  writeFileSync(join(dir, 'pw'), 'short\n');
  assert.equal(
    code(() => adminFromFile('admin', join(dir, 'pw'))),
    'USAGE',
  );
  writeFileSync(join(dir, 'pw'), 'long enough password\n');
  const admin = adminFromFile('admin', join(dir, 'pw'));
  assert.equal(verifyPassword('long enough password', admin.passwordHash), true);
  assert.equal(
    code(() => adminFromFile('Admin!', join(dir, 'pw'))),
    'USAGE',
  );
  writeFileSync(join(dir, 'bad.yaml'), 'hands: 3\n');
  assert.equal(
    code(() => loadBundleConfig(join(dir, 'bad.yaml'))),
    'CONFIG_INVALID',
  );
  assert.deepEqual(loadBundleConfig(join(dir, 'bad.yaml'), false), { hands: 3 });
  assert.equal(
    code(() => loadBundleConfig(join(dir, 'none.yaml'))),
    'CONFIG_NOT_FOUND',
  );
});

test('policies: globs on inventory fields, all must match, the first rule wins', () => {
  assert.equal(globMatch('Raspberry Pi 4*', 'Raspberry Pi 4 Model B Rev 1.4'), true);
  assert.equal(globMatch('Raspberry Pi 4*', 'Raspberry Pi 3 Model B'), false);
  assert.equal(globMatch('pi-?', 'pi-7'), true);
  assert.equal(globMatch('pi-?', 'pi-77'), false);
  assert.equal(globMatch('a.c', 'abc'), false, 'regex characters are literal');
  assert.equal(globMatch('(x)+', '(x)+'), true);
  const cfg = join(dir, 'p.yaml');
  writeFileSync(cfg, 'hands: []\n');
  assert.equal(
    code(() => addPolicy(fleet.dir, ['gpu=*'], cfg)),
    'USAGE',
  );
  assert.equal(
    code(() => addPolicy(fleet.dir, [], cfg)),
    'USAGE',
  );
  assert.equal(
    code(() => addPolicy(fleet.dir, ['board=*'], join(dir, 'missing.yaml'))),
    'CONFIG_NOT_FOUND',
  );
  const p1 = addPolicy(fleet.dir, ['board=Raspberry Pi 4*', 'memoryBytes=2147483648'], cfg);
  const p2 = addPolicy(fleet.dir, ['board=*'], cfg);
  const pi4 = announceEnv(1, 'Raspberry Pi 4 Model B').payload;
  const pi5 = announceEnv(1, 'Raspberry Pi 5').payload;
  assert.equal(findPolicy(readPolicies(fleet.dir), pi4)?.id, p1.id);
  assert.equal(findPolicy(readPolicies(fleet.dir), pi5)?.id, p2.id);
  assert.equal(removePolicy(fleet.dir, p2.id), true);
  assert.equal(findPolicy(readPolicies(fleet.dir), pi5), undefined);
  assert.equal(removePolicy(fleet.dir, p2.id), false);
});
