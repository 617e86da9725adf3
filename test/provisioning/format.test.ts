import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { deviceIdFromPublicKey } from '../../runtime/secrets/device-key.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import {
  canonicalBytes,
  checkAck,
  checkAnnounce,
  checkBundle,
  checkDecommission,
  checkFleetMessage,
  encodeEnvelope,
  MAX_MESSAGE_BYTES,
  newBoxKeyPair,
  newSigningKeyPair,
  openBundle,
  openSealed,
  parseEnvelope,
  provisionTopics,
  seal,
  sealBundleBody,
  signEnvelope,
  verifyEnvelope,
  type AckPayload,
  type AnnouncePayload,
  type BundleBody,
  type BundlePayload,
  type DecommissionPayload,
  type Envelope,
} from '../../provisioning/format.ts';

const NOW = 1_800_000_000_000;
const fleetKey = newSigningKeyPair();
const devSign = newSigningKeyPair();
const devBox = newBoxKeyPair();
const deviceId = deviceIdFromPublicKey(devSign.publicKey);
const ctx = { fleet: 'acme', deviceId, anchor: fleetKey.publicKey, appliedVersion: 3, now: NOW };

function announce(over: Partial<AnnouncePayload> = {}): AnnouncePayload {
  return {
    v: 1,
    type: 'announce',
    fleet: 'acme',
    deviceId,
    ts: NOW,
    signPublicKey: devSign.publicKey.toString('base64'),
    boxPublicKey: devBox.publicKey.toString('base64'),
    inventory: {
      board: 'Raspberry Pi 4 Model B',
      serial: '10000000abcd',
      memoryBytes: 4 * 2 ** 30,
      os: 'Debian 12',
      arch: 'arm64',
      hostname: 'pi-1',
    },
    software: { version: '0.1.0', node: 'v20.0.0' },
    nonce: Buffer.alloc(16, 7).toString('base64'),
    ...over,
  };
}

const ADMIN_HASH = 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';

function body(over: Partial<BundleBody> = {}): BundleBody {
  return {
    deviceId,
    version: 4,
    config: { deviceName: 'greenhouse-west-7', hands: [] },
    secrets: { OPENAI_KEY: 'sk-123' },
    broker: { url: 'mqtt://127.0.0.1:1883', username: deviceId, password: 'broker-pw' },
    admin: { username: 'fleetadmin', passwordHash: ADMIN_HASH },
    ...over,
  };
}

/** a v2 bundle: the header, and the body sealed to `to` (this device by default) */
function bundle(
  over: Partial<BundlePayload> = {},
  b: BundleBody = body({
    ...(over.version !== undefined ? { version: over.version } : {}),
    ...(over.deviceId !== undefined ? { deviceId: over.deviceId } : {}),
  }),
  to: Uint8Array = devBox.publicKey,
): BundlePayload {
  return {
    v: 2,
    type: 'bundle',
    fleet: 'acme',
    deviceId,
    ts: NOW,
    version: 4,
    issuedAt: NOW,
    expiresAt: NOW + 60_000,
    sealed: sealBundleBody(b, to),
    ...over,
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
  assert.equal(
    nacl.sign.detached.verify(
      new Uint8Array(canonicalBytes(env.payload)),
      new Uint8Array(Buffer.from(env.sig, 'base64')),
      new Uint8Array(fleetKey.publicKey),
    ),
    true,
  );
  const naclSig = nacl.sign.detached(new Uint8Array(canonicalBytes(env.payload)), new Uint8Array(fleetKey.secretKey));
  assert.equal(
    Buffer.from(naclSig).toString('base64'),
    env.sig,
    'Ed25519 is deterministic: both libraries make the same signature',
  );
  assert.equal(verifyEnvelope(wire(env), fleetKey.publicKey), true);
  // member order does not matter (JCS), a changed value does
  const reordered = Object.fromEntries(Object.entries(env.payload).reverse());
  assert.equal(verifyEnvelope({ payload: reordered, sig: env.sig }, fleetKey.publicKey), true);
  assert.equal(verifyEnvelope({ payload: { ...env.payload, version: 5 }, sig: env.sig }, fleetKey.publicKey), false);
  assert.equal(verifyEnvelope({ payload: env.payload, sig: 'not base64!' }, fleetKey.publicKey), false);
});

test("a good bundle passes every check and its body opens with the device's key", () => {
  const p = checkBundle(wire(signEnvelope(bundle(), fleetKey.secretKey)), ctx);
  assert.equal(p.version, 4);
  const opened = openBundle(p, devBox.secretKey);
  assert.deepEqual(opened.secrets, { OPENAI_KEY: 'sk-123' });
  assert.deepEqual(opened.broker, { url: 'mqtt://127.0.0.1:1883', username: deviceId, password: 'broker-pw' });
  assert.deepEqual(opened.admin, { username: 'fleetadmin', passwordHash: ADMIN_HASH });
  assert.deepEqual(opened.config, { deviceName: 'greenhouse-west-7', hands: [] });
  assert.equal(opened.version, 4);
  assert.equal(opened.deviceId, deviceId);
  assert.equal(checkFleetMessage(wire(signEnvelope(bundle(), fleetKey.secretKey)), ctx).type, 'bundle');
  const d: DecommissionPayload = {
    v: 1,
    type: 'decommission',
    fleet: 'acme',
    deviceId,
    ts: NOW,
    version: 9,
    issuedAt: NOW,
    expiresAt: NOW + 1000,
  };
  assert.equal(checkDecommission(wire(signEnvelope(d, fleetKey.secretKey)), ctx).version, 9);
  assert.equal(checkFleetMessage(wire(signEnvelope(d, fleetKey.secretKey)), ctx).type, 'decommission');
});

test('every forged or stale bundle is rejected with its code', () => {
  const sign = (p: object, key = fleetKey.secretKey): Envelope<Record<string, unknown>> => wire(signEnvelope(p, key));
  const other = newSigningKeyPair();
  const good = signEnvelope(bundle(), fleetKey.secretKey);

  // bad signature: the sealed body swapped after signing (any box could be sealed to the device's public key)
  assert.equal(
    code(() =>
      checkBundle(
        wire({
          payload: {
            ...good.payload,
            sealed: sealBundleBody(body({ config: { hands: [{ name: 'evil' }] } }), devBox.publicKey),
          },
          sig: good.sig,
        }),
        ctx,
      ),
    ),
    'PROVISION_BAD_SIGNATURE',
  );
  // another fleet's key, claiming this fleet / its own fleet
  assert.equal(
    code(() => checkBundle(sign(bundle(), other.secretKey), ctx)),
    'PROVISION_BAD_SIGNATURE',
  );
  assert.equal(
    code(() => checkBundle(sign(bundle({ fleet: 'other-fleet' }), other.secretKey), ctx)),
    'PROVISION_WRONG_FLEET',
  );
  // a genuine bundle for another device, replayed to this one
  assert.equal(
    code(() => checkBundle(sign(bundle({ deviceId: 'tzzzzzzzzzzzzzzzz' })), ctx)),
    'PROVISION_WRONG_DEVICE',
  );
  // replayed (same version as applied) and downgraded
  assert.equal(
    code(() => checkBundle(sign(bundle({ version: 3 })), ctx)),
    'PROVISION_REPLAY',
  );
  assert.equal(
    code(() => checkBundle(sign(bundle({ version: 1 })), ctx)),
    'PROVISION_REPLAY',
  );
  // expired
  assert.equal(
    code(() => checkBundle(sign(bundle({ expiresAt: NOW })), ctx)),
    'PROVISION_EXPIRED',
  );
  // sealed to another device's key: the header is genuine, the body cannot be opened
  const elsewhere = newBoxKeyPair();
  const p = checkBundle(sign(bundle({}, body(), elsewhere.publicKey)), ctx);
  assert.equal(
    code(() => openBundle(p, devBox.secretKey)),
    'PROVISION_SEAL',
  );
  // a body that names another device or version than its signed header
  assert.equal(
    code(() =>
      openBundle(checkBundle(sign(bundle({}, body({ deviceId: 'tzzzzzzzzzzzzzzzz' }))), ctx), devBox.secretKey),
    ),
    'PROVISION_WRONG_DEVICE',
  );
  assert.equal(
    code(() => openBundle(checkBundle(sign(bundle({}, body({ version: 9 }))), ctx), devBox.secretKey)),
    'PROVISION_WRONG_DEVICE',
  );
  assert.equal(
    code(() =>
      openSealed({ ...seal('v', devBox.publicKey), nonce: Buffer.alloc(24).toString('base64') }, devBox.secretKey),
    ),
    'PROVISION_SEAL',
  );
  // the decommission is held to the same rules
  const d: DecommissionPayload = {
    v: 1,
    type: 'decommission',
    fleet: 'acme',
    deviceId,
    ts: NOW,
    version: 2,
    issuedAt: NOW,
    expiresAt: NOW + 1000,
  };
  assert.equal(
    code(() => checkDecommission(sign(d), ctx)),
    'PROVISION_REPLAY',
  );
  assert.equal(
    code(() => checkDecommission(sign({ ...d, version: 7 }, other.secretKey), ctx)),
    'PROVISION_BAD_SIGNATURE',
  );
});

test('non-JSON, oversized, missing and extra fields are malformed', () => {
  const sign = (p: object): Envelope<Record<string, unknown>> => wire(signEnvelope(p, fleetKey.secretKey));
  assert.equal(
    code(() => parseEnvelope(Buffer.from('not json'))),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => parseEnvelope(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))),
    'PROVISION_MALFORMED',
  ); // not UTF-8
  assert.equal(
    code(() => parseEnvelope(Buffer.from('[1,2]'))),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => parseEnvelope(Buffer.from('{"payload":{},"sig":"x","more":1}'))),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => parseEnvelope(Buffer.from('{"payload":"x","sig":"x"}'))),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => parseEnvelope(Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20))),
    'PAYLOAD_TOO_LARGE',
  );
  assert.equal(
    code(() =>
      encodeEnvelope(
        signEnvelope(bundle({}, body({ config: { big: 'x'.repeat(MAX_MESSAGE_BYTES) } })), fleetKey.secretKey),
      ),
    ),
    'PAYLOAD_TOO_LARGE',
  );

  const { version: _v, ...noVersion } = bundle();
  assert.equal(
    code(() => checkBundle(sign(noVersion), ctx)),
    'PROVISION_MALFORMED',
  );
  const { sealed: _s, ...notSealed } = bundle();
  assert.equal(
    code(() => checkBundle(sign(notSealed), ctx)),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => checkBundle(sign({ ...bundle(), extra: 1 }), ctx)),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => checkBundle(sign({ ...bundle(), config: { hands: [] } }), ctx)),
    'PROVISION_MALFORMED',
    'nothing in clear beside the header',
  );
  assert.equal(
    code(() => checkBundle(sign(bundle({ sealed: { ...seal('v', devBox.publicKey), x: 1 } as never })), ctx)),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => checkBundle(sign(bundle({ version: 1.5 })), ctx)),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => checkBundle(sign(bundle({ v: 3 as 2 })), ctx)),
    'PROVISION_MALFORMED',
  );
  assert.equal(
    code(() => checkBundle(sign({ ...bundle(), type: 'announce' }), ctx)),
    'PROVISION_MALFORMED',
  );
  // the body is held to the same exact shape, once opened
  const open = (b: unknown): string =>
    code(() => openBundle(checkBundle(sign(bundle({}, b as BundleBody)), ctx), devBox.secretKey));
  assert.equal(
    open(body({ admin: { username: 'a', passwordHash: 'h', role: 'admin' } as unknown as BundleBody['admin'] })),
    'PROVISION_MALFORMED',
  );
  assert.equal(open(body({ secrets: { 'bad name!': 'v' } })), 'PROVISION_MALFORMED');
  assert.equal(open(body({ secrets: { K: 7 as unknown as string } })), 'PROVISION_MALFORMED');
  assert.equal(open(body({ broker: { url: 'http://x', username: 'u', password: 'p' } })), 'PROVISION_MALFORMED');
  assert.equal(open({ ...body(), extra: 1 }), 'PROVISION_MALFORMED');
  const { config: _c, ...noConfig } = body();
  assert.equal(open(noConfig), 'PROVISION_MALFORMED');
});

test('a v1 bundle (body in clear) is refused with PROVISION_UNSEALED, before its signature is even checked', () => {
  const v1 = {
    v: 1,
    type: 'bundle',
    fleet: 'acme',
    deviceId,
    ts: NOW,
    version: 4,
    issuedAt: NOW,
    expiresAt: NOW + 60_000,
    config: { hands: [] },
    secrets: { OPENAI_KEY: seal('sk-123', devBox.publicKey) },
  };
  assert.equal(
    code(() => checkBundle(wire(signEnvelope(v1, fleetKey.secretKey)), ctx)),
    'PROVISION_UNSEALED',
  );
  assert.equal(
    code(() => checkFleetMessage(wire(signEnvelope(v1, newSigningKeyPair().secretKey)), ctx)),
    'PROVISION_UNSEALED',
  );
  assert.match(
    (() => {
      try {
        checkBundle(wire(signEnvelope(v1, fleetKey.secretKey)), ctx);
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })(),
    /talon fleet provision/,
  );
});

test('the wire bytes of a bundle reveal nothing but its header: no config value, secret, broker password or admin hash', () => {
  const bytes = encodeEnvelope(signEnvelope(bundle(), fleetKey.secretKey));
  const raw = bytes.toString('latin1');
  for (const clear of [
    'greenhouse-west-7',
    'sk-123',
    'OPENAI_KEY',
    'broker-pw',
    'fleetadmin',
    ADMIN_HASH,
    'scrypt$',
    'mqtt://127.0.0.1',
    'hands',
  ]) {
    assert.ok(!raw.includes(clear), `"${clear}" readable in the bundle`);
    assert.ok(
      !raw.includes(Buffer.from(clear).toString('base64').slice(0, 12)),
      `"${clear}" readable in the bundle as base64`,
    );
  }
  const payload = parseEnvelope(bytes).payload;
  assert.deepEqual(Object.keys(payload).sort(), [
    'deviceId',
    'expiresAt',
    'fleet',
    'issuedAt',
    'sealed',
    'ts',
    'type',
    'v',
    'version',
  ]);
});

test('announces: the device id is derived from the signing key, and the key signs', () => {
  const env = wire(signEnvelope(announce(), devSign.secretKey));
  assert.equal(checkAnnounce(env, { fleet: 'acme', deviceId }).deviceId, deviceId);
  // someone else's key claiming this device id
  const mallory = newSigningKeyPair();
  assert.equal(
    code(() =>
      checkAnnounce(
        wire(signEnvelope(announce({ signPublicKey: mallory.publicKey.toString('base64') }), mallory.secretKey)),
        { fleet: 'acme' },
      ),
    ),
    'PROVISION_WRONG_DEVICE',
  );
  // published on another device's topic
  assert.equal(
    code(() => checkAnnounce(env, { fleet: 'acme', deviceId: 'tother' })),
    'PROVISION_WRONG_DEVICE',
  );
  // inventory changed after signing
  assert.equal(
    code(() =>
      checkAnnounce(
        { payload: { ...env.payload, inventory: { ...announce().inventory, board: 'fake' } }, sig: env.sig },
        { fleet: 'acme' },
      ),
    ),
    'PROVISION_BAD_SIGNATURE',
  );
  assert.equal(
    code(() => checkAnnounce(env, { fleet: 'other' })),
    'PROVISION_WRONG_FLEET',
  );
  assert.equal(
    code(() =>
      checkAnnounce(
        wire(signEnvelope({ ...announce(), inventory: { ...announce().inventory, gpu: 'x' } }, devSign.secretKey)),
        { fleet: 'acme' },
      ),
    ),
    'PROVISION_MALFORMED',
  );
});

test('acks verify against the announced device key', () => {
  const a: AckPayload = {
    v: 1,
    type: 'ack',
    fleet: 'acme',
    deviceId,
    ts: NOW,
    version: 4,
    outcome: 'applied',
    generation: 2,
  };
  const ok = { fleet: 'acme', deviceId, signPublicKey: devSign.publicKey };
  assert.equal(checkAck(wire(signEnvelope(a, devSign.secretKey)), ok).outcome, 'applied');
  assert.equal(
    code(() => checkAck(wire(signEnvelope(a, fleetKey.secretKey)), ok)),
    'PROVISION_BAD_SIGNATURE',
  );
  assert.equal(
    code(() => checkAck(wire(signEnvelope({ ...a, outcome: 'maybe' }, devSign.secretKey)), ok)),
    'PROVISION_MALFORMED',
  );
  assert.deepEqual(provisionTopics('acme').status(deviceId), `talon/provision/acme/status/${deviceId}`);
});
