import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { deviceIdFromPublicKey } from '../../runtime/secrets/device-key.ts';
import { TalonError } from '../../runtime/errors.ts';
import {
  canonicalBytes, checkAck, checkAnnounce, checkBundle, checkDecommission, checkFleetMessage, encodeEnvelope, MAX_MESSAGE_BYTES,
  newBoxKeyPair, newSigningKeyPair, openBundleSecrets, openSealed, parseEnvelope, provisionTopics, seal, signEnvelope, verifyEnvelope,
  type AckPayload, type AnnouncePayload, type BundlePayload, type DecommissionPayload, type Envelope,
} from '../../provisioning/format.ts';

const NOW = 1_800_000_000_000;
const fleetKey = newSigningKeyPair();
const devSign = newSigningKeyPair();
const devBox = newBoxKeyPair();
const deviceId = deviceIdFromPublicKey(devSign.publicKey);
const ctx = { fleet: 'acme', deviceId, anchor: fleetKey.publicKey, appliedVersion: 3, now: NOW };

function announce(over: Partial<AnnouncePayload> = {}): AnnouncePayload {
  return {
    v: 1, type: 'announce', fleet: 'acme', deviceId, ts: NOW,
    signPublicKey: devSign.publicKey.toString('base64'), boxPublicKey: devBox.publicKey.toString('base64'),
    inventory: { board: 'Raspberry Pi 4 Model B', serial: '10000000abcd', memoryBytes: 4 * 2 ** 30, os: 'Debian 12', arch: 'arm64', hostname: 'pi-1' },
    software: { version: '0.1.0', node: 'v20.0.0' }, nonce: Buffer.alloc(16, 7).toString('base64'), ...over,
  };
}

function bundle(over: Partial<BundlePayload> = {}): BundlePayload {
  return {
    v: 1, type: 'bundle', fleet: 'acme', deviceId, ts: NOW, version: 4, issuedAt: NOW, expiresAt: NOW + 60_000,
    config: { hands: [] }, secrets: { OPENAI_KEY: seal('sk-123', devBox.publicKey) },
    broker: { url: 'mqtt://127.0.0.1:1883', username: deviceId, password: seal('broker-pw', devBox.publicKey) }, ...over,
  };
}

/** the envelope as a device receives it: bytes through parseEnvelope */
function wire(env: Envelope<object>): Envelope<Record<string, unknown>> {
  return parseEnvelope(encodeEnvelope(env));
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TalonError, `expected a TalonError, got ${String(err)}`);
    return err.code;
  }
  return 'no error';
}

test('signatures: node:crypto signs, tweetnacl verifies the JCS bytes, and the other way round', () => {
  const env = signEnvelope(bundle(), fleetKey.secretKey);
  assert.equal(nacl.sign.detached.verify(new Uint8Array(canonicalBytes(env.payload)), new Uint8Array(Buffer.from(env.sig, 'base64')), new Uint8Array(fleetKey.publicKey)), true);
  const naclSig = nacl.sign.detached(new Uint8Array(canonicalBytes(env.payload)), new Uint8Array(fleetKey.secretKey));
  assert.equal(Buffer.from(naclSig).toString('base64'), env.sig, 'Ed25519 is deterministic: both libraries make the same signature');
  assert.equal(verifyEnvelope(wire(env), fleetKey.publicKey), true);
  // member order does not matter (JCS), a changed value does
  const reordered = Object.fromEntries(Object.entries(env.payload).reverse());
  assert.equal(verifyEnvelope({ payload: reordered, sig: env.sig }, fleetKey.publicKey), true);
  assert.equal(verifyEnvelope({ payload: { ...env.payload, version: 5 }, sig: env.sig }, fleetKey.publicKey), false);
  assert.equal(verifyEnvelope({ payload: env.payload, sig: 'not base64!' }, fleetKey.publicKey), false);
});

test('a good bundle passes every check and its secrets open', () => {
  const p = checkBundle(wire(signEnvelope(bundle(), fleetKey.secretKey)), ctx);
  assert.equal(p.version, 4);
  const opened = openBundleSecrets(p, devBox.secretKey);
  assert.deepEqual(opened, { secrets: { OPENAI_KEY: 'sk-123' }, brokerPassword: 'broker-pw' });
  assert.equal(checkFleetMessage(wire(signEnvelope(bundle(), fleetKey.secretKey)), ctx).type, 'bundle');
  const d: DecommissionPayload = { v: 1, type: 'decommission', fleet: 'acme', deviceId, ts: NOW, version: 9, issuedAt: NOW, expiresAt: NOW + 1000 };
  assert.equal(checkDecommission(wire(signEnvelope(d, fleetKey.secretKey)), ctx).version, 9);
  assert.equal(checkFleetMessage(wire(signEnvelope(d, fleetKey.secretKey)), ctx).type, 'decommission');
});

test('every forged or stale bundle is rejected with its code', () => {
  const sign = (p: object, key = fleetKey.secretKey): Envelope<Record<string, unknown>> => wire(signEnvelope(p, key));
  const other = newSigningKeyPair();
  const good = signEnvelope(bundle(), fleetKey.secretKey);

  // bad signature: a byte of the payload changed after signing
  assert.equal(code(() => checkBundle(wire({ payload: { ...good.payload, config: { hands: [{ name: 'evil' }] } }, sig: good.sig }), ctx)), 'PROVISION_BAD_SIGNATURE');
  // another fleet's key, claiming this fleet / its own fleet
  assert.equal(code(() => checkBundle(sign(bundle(), other.secretKey), ctx)), 'PROVISION_BAD_SIGNATURE');
  assert.equal(code(() => checkBundle(sign(bundle({ fleet: 'other-fleet' }), other.secretKey), ctx)), 'PROVISION_WRONG_FLEET');
  // a genuine bundle for another device, replayed to this one
  assert.equal(code(() => checkBundle(sign(bundle({ deviceId: 'tzzzzzzzzzzzzzzzz' })), ctx)), 'PROVISION_WRONG_DEVICE');
  // replayed (same version as applied) and downgraded
  assert.equal(code(() => checkBundle(sign(bundle({ version: 3 })), ctx)), 'PROVISION_REPLAY');
  assert.equal(code(() => checkBundle(sign(bundle({ version: 1 })), ctx)), 'PROVISION_REPLAY');
  // expired
  assert.equal(code(() => checkBundle(sign(bundle({ expiresAt: NOW })), ctx)), 'PROVISION_EXPIRED');
  // sealed to another device's key: the bundle is genuine, the secret cannot be opened
  const elsewhere = newBoxKeyPair();
  const p = checkBundle(sign(bundle({ secrets: { K: seal('v', elsewhere.publicKey) } })), ctx);
  assert.equal(code(() => openBundleSecrets(p, devBox.secretKey)), 'PROVISION_SEAL');
  assert.equal(code(() => openSealed({ ...seal('v', devBox.publicKey), nonce: Buffer.alloc(24).toString('base64') }, devBox.secretKey)), 'PROVISION_SEAL');
  // the decommission is held to the same rules
  const d: DecommissionPayload = { v: 1, type: 'decommission', fleet: 'acme', deviceId, ts: NOW, version: 2, issuedAt: NOW, expiresAt: NOW + 1000 };
  assert.equal(code(() => checkDecommission(sign(d), ctx)), 'PROVISION_REPLAY');
  assert.equal(code(() => checkDecommission(sign({ ...d, version: 7 }, other.secretKey), ctx)), 'PROVISION_BAD_SIGNATURE');
});

test('non-JSON, oversized, missing and extra fields are malformed', () => {
  const sign = (p: object): Envelope<Record<string, unknown>> => wire(signEnvelope(p, fleetKey.secretKey));
  assert.equal(code(() => parseEnvelope(Buffer.from('not json'))), 'PROVISION_MALFORMED');
  assert.equal(code(() => parseEnvelope(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))), 'PROVISION_MALFORMED'); // not UTF-8
  assert.equal(code(() => parseEnvelope(Buffer.from('[1,2]'))), 'PROVISION_MALFORMED');
  assert.equal(code(() => parseEnvelope(Buffer.from('{"payload":{},"sig":"x","more":1}'))), 'PROVISION_MALFORMED');
  assert.equal(code(() => parseEnvelope(Buffer.from('{"payload":"x","sig":"x"}'))), 'PROVISION_MALFORMED');
  assert.equal(code(() => parseEnvelope(Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20))), 'PAYLOAD_TOO_LARGE');
  assert.equal(code(() => encodeEnvelope(signEnvelope(bundle({ config: { big: 'x'.repeat(MAX_MESSAGE_BYTES) } }), fleetKey.secretKey))), 'PAYLOAD_TOO_LARGE');

  const { version: _v, ...noVersion } = bundle();
  assert.equal(code(() => checkBundle(sign(noVersion), ctx)), 'PROVISION_MALFORMED');
  const { secrets: _s, ...noSecrets } = bundle();
  assert.equal(code(() => checkBundle(sign(noSecrets), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign({ ...bundle(), extra: 1 }), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign(bundle({ admin: { username: 'a', passwordHash: 'h', role: 'admin' } as unknown as BundlePayload['admin'] })), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign(bundle({ secrets: { K: { ...seal('v', devBox.publicKey), x: 1 } as never } })), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign(bundle({ secrets: { 'bad name!': seal('v', devBox.publicKey) } })), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign(bundle({ version: 1.5 })), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign(bundle({ v: 2 as 1 })), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign({ ...bundle(), type: 'announce' }), ctx)), 'PROVISION_MALFORMED');
  assert.equal(code(() => checkBundle(sign(bundle({ broker: { url: 'http://x', username: 'u', password: seal('p', devBox.publicKey) } })), ctx)), 'PROVISION_MALFORMED');
});

test('announces: the device id is derived from the signing key, and the key signs', () => {
  const env = wire(signEnvelope(announce(), devSign.secretKey));
  assert.equal(checkAnnounce(env, { fleet: 'acme', deviceId }).deviceId, deviceId);
  // someone else's key claiming this device id
  const mallory = newSigningKeyPair();
  assert.equal(code(() => checkAnnounce(wire(signEnvelope(announce({ signPublicKey: mallory.publicKey.toString('base64') }), mallory.secretKey)), { fleet: 'acme' })), 'PROVISION_WRONG_DEVICE');
  // published on another device's topic
  assert.equal(code(() => checkAnnounce(env, { fleet: 'acme', deviceId: 'tother' })), 'PROVISION_WRONG_DEVICE');
  // inventory changed after signing
  assert.equal(code(() => checkAnnounce({ payload: { ...env.payload, inventory: { ...announce().inventory, board: 'fake' } }, sig: env.sig }, { fleet: 'acme' })), 'PROVISION_BAD_SIGNATURE');
  assert.equal(code(() => checkAnnounce(env, { fleet: 'other' })), 'PROVISION_WRONG_FLEET');
  assert.equal(code(() => checkAnnounce(wire(signEnvelope({ ...announce(), inventory: { ...announce().inventory, gpu: 'x' } }, devSign.secretKey)), { fleet: 'acme' })), 'PROVISION_MALFORMED');
});

test('acks verify against the announced device key', () => {
  const a: AckPayload = { v: 1, type: 'ack', fleet: 'acme', deviceId, ts: NOW, version: 4, outcome: 'applied', generation: 2 };
  const ok = { fleet: 'acme', deviceId, signPublicKey: devSign.publicKey };
  assert.equal(checkAck(wire(signEnvelope(a, devSign.secretKey)), ok).outcome, 'applied');
  assert.equal(code(() => checkAck(wire(signEnvelope(a, fleetKey.secretKey)), ok)), 'PROVISION_BAD_SIGNATURE');
  assert.equal(code(() => checkAck(wire(signEnvelope({ ...a, outcome: 'maybe' }, devSign.secretKey)), ok)), 'PROVISION_MALFORMED');
  assert.deepEqual(provisionTopics('acme').status(deviceId), `talon/provision/acme/status/${deviceId}`);
});
