/**
 * Provisioning wire format, shared by the device agent and the fleet side.
 *
 * Every message is a signed envelope `{ payload, sig }`: `sig` is the base64 Ed25519
 * signature over the RFC 8785 (JCS) bytes of `payload`. Keys are in tweetnacl formats
 * (32-byte public, 64-byte secret = seed ‖ public, base64); signing goes through node:crypto
 * (byte-identical to nacl.sign.detached). Messages are JSON, UTF-8, ≤ 256 KB.
 *
 * A bundle (format v2) carries nothing readable but its routing header (fleet, device, version,
 * dates): its whole body — config, secrets, the device's broker credential, the admin account's
 * scrypt hash, a new anchor — is one box sealed to the device's X25519 key (nacl.box with a
 * fresh ephemeral key), and the fleet signs header + box. Anyone who reads a retained bundle
 * off the broker (the claim credential is in every image) sees ciphertext; the device checks
 * the signature before it opens anything. The body repeats the device id and version, so a box
 * cannot be moved under another header. v1 bundles (body in clear, secrets sealed one by one)
 * are refused with PROVISION_UNSEALED. Announces, acks and decommissions are v1 and carry no secret.
 *
 * Checking order (cheapest first, so a flood of junk costs little): size → JSON → shape
 * (exact members, no extras) → fleet → device → signature → version → expiry → open the body
 * (openBundle) → the body's shape. Every failure is a TalonError with a precise code; nothing
 * is ever partly accepted.
 */
import { randomBytes, sign, verify } from 'node:crypto';
import nacl from 'tweetnacl';
import { TalonError } from '../runtime/core/errors.ts';
import { canonicalize } from '../runtime/core/canonical.ts';
import { deviceIdFromPublicKey, privateKeyFromSeed, publicKeyFromRaw } from '../runtime/secrets/device-key.ts';
import { SECRET_NAME } from '../runtime/core/names.ts';

/** announces, acks, decommissions */
export const FORMAT_VERSION = 1;
/** bundles: the body sealed to the device */
export const BUNDLE_FORMAT_VERSION = 2;
/** the largest message either side reads or writes */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** the most sealed secrets a bundle may carry */
export const MAX_SECRETS = 64;
const MAX_SECRET_BYTES = 16 * 1024;
const MAX_TEXT = 256;

/** A value sealed to one device: nacl.box(utf8 plaintext, nonce, recipient X25519 public key, ephemeral secret key). */
export interface Sealed {
  /** base64, the ephemeral X25519 public key (32 bytes) */
  epk: string;
  /** base64, 24 bytes */
  nonce: string;
  /** base64, the box (plaintext + 16) */
  box: string;
}

interface Common {
  v: 1 | 2;
  /** the fleet id */
  fleet: string;
  deviceId: string;
  /** ms since the epoch, when the sender made it */
  ts: number;
}

export interface Inventory {
  board: string;
  serial: string;
  memoryBytes: number;
  os: string;
  arch: string;
  hostname: string;
}

export interface AnnouncePayload extends Common {
  type: 'announce';
  /** base64 Ed25519 public key; deviceId = deviceIdFromPublicKey(it) */
  signPublicKey: string;
  /** base64 X25519 public key (nacl.box) */
  boxPublicKey: string;
  inventory: Inventory;
  software: { version: string; node: string };
  /** base64, 16 random bytes */
  nonce: string;
}

/** What travels on the wire: the routing header in clear, the body sealed to the device. */
export interface BundlePayload extends Common {
  v: 2;
  type: 'bundle';
  /** integer ≥ 1, strictly increasing per device */
  version: number;
  issuedAt: number;
  expiresAt: number;
  /** the BundleBody as UTF-8 JSON, sealed to the device's X25519 key */
  sealed: Sealed;
}

/** The sealed part of a bundle: everything but the routing header. */
export interface BundleBody {
  /** the header's, repeated: the box belongs to this device and version only */
  deviceId: string;
  version: number;
  /** a Talon config object, validated on the device */
  config: Record<string, unknown>;
  /** into the device's SecretStore */
  secrets: Record<string, string>;
  /** the device's own fleet-broker credential */
  broker?: { url: string; username: string; password: string };
  /** scrypt hash (runtime/secrets/password.ts) → the web admin's first account */
  admin?: { username: string; passwordHash: string };
  /** key rotation: install this fleet public key (the bundle is signed by the current anchor) */
  anchor?: { publicKey: string; fleet?: string };
}

/** A bundle opened on its device: the verified header and the body. */
export type OpenedBundle = Omit<BundlePayload, 'sealed'> & Omit<BundleBody, 'deviceId' | 'version'>;

export interface DecommissionPayload extends Common {
  v: 1;
  type: 'decommission';
  version: number;
  issuedAt: number;
  expiresAt: number;
}

export type AckOutcome = 'applied' | 'rolled-back' | 'rejected' | 'decommissioned';
export const ACK_OUTCOMES: readonly AckOutcome[] = ['applied', 'rolled-back', 'rejected', 'decommissioned'];

export interface AckPayload extends Common {
  type: 'ack';
  /** the version the ack is about (for a rejected message whose version cannot be read: 0) */
  version: number;
  outcome: AckOutcome;
  /** the TalonError code of a rejection or rollback */
  code?: string;
  message?: string;
  /** the config generation now running */
  generation?: number;
}

export type Payload = AnnouncePayload | BundlePayload | DecommissionPayload | AckPayload;

export interface Envelope<P = Payload> {
  payload: P;
  /** base64 Ed25519 signature over canonicalBytes(payload) */
  sig: string;
}

// ---------------------------------------------------------------- signing

/** RFC 8785 canonical JSON bytes of a payload: what is signed. */
export function canonicalBytes(payload: unknown): Buffer {
  const text = canonicalize(payload);
  if (text === undefined) throw new TalonError('PROVISION_MALFORMED', 'the payload is not serialisable as JSON');
  return Buffer.from(text, 'utf8');
}

/** Signs a payload with a tweetnacl-format Ed25519 secret key (64 bytes: seed ‖ public key). */
export function signEnvelope<P extends object>(payload: P, secretKey64: Uint8Array): Envelope<P> {
  if (secretKey64.length !== 64)
    throw new TalonError('PROVISION_MALFORMED', 'an Ed25519 secret key has 64 bytes (seed ‖ public key)');
  const key = privateKeyFromSeed(Buffer.from(secretKey64.subarray(0, 32)));
  return { payload, sig: sign(null, canonicalBytes(payload), key).toString('base64') };
}

/** True when `env.sig` is a valid signature of `env.payload` by `publicKey32`; never throws. */
export function verifyEnvelope(env: { payload: unknown; sig: string }, publicKey32: Uint8Array): boolean {
  try {
    if (publicKey32.length !== 32 || typeof env.sig !== 'string') return false;
    const sig = strictB64(env.sig, 64);
    if (!sig) return false;
    return verify(null, canonicalBytes(env.payload), publicKeyFromRaw(Buffer.from(publicKey32)), sig);
  } catch {
    return false;
  }
}

/** A fresh Ed25519 key pair in tweetnacl format (publicKey 32 bytes, secretKey 64). */
export function newSigningKeyPair(): { publicKey: Buffer; secretKey: Buffer } {
  const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(randomBytes(32)));
  return { publicKey: Buffer.from(kp.publicKey), secretKey: Buffer.from(kp.secretKey) };
}

/** A fresh X25519 key pair (nacl.box.keyPair format). */
export function newBoxKeyPair(): { publicKey: Buffer; secretKey: Buffer } {
  const kp = nacl.box.keyPair();
  return { publicKey: Buffer.from(kp.publicKey), secretKey: Buffer.from(kp.secretKey) };
}

// ---------------------------------------------------------------- sealing

/** Seals a UTF-8 string to a device's X25519 public key with a one-time ephemeral key. */
export function seal(plaintext: string, recipientPublicKey32: Uint8Array): Sealed {
  if (recipientPublicKey32.length !== 32) throw new TalonError('PROVISION_SEAL', 'an X25519 public key has 32 bytes');
  const eph = nacl.box.keyPair();
  const nonce = new Uint8Array(randomBytes(nacl.box.nonceLength));
  const box = nacl.box(
    new Uint8Array(Buffer.from(plaintext, 'utf8')),
    nonce,
    new Uint8Array(recipientPublicKey32),
    eph.secretKey,
  );
  return { epk: b64(eph.publicKey), nonce: b64(nonce), box: b64(box) };
}

/** Opens a Sealed value with the device's X25519 secret key; PROVISION_SEAL when it was sealed to another key or damaged. */
export function openSealed(sealed: Sealed, boxSecretKey32: Uint8Array): string {
  const epk = strictB64(sealed?.epk, 32);
  const nonce = strictB64(sealed?.nonce, 24);
  const box = typeof sealed?.box === 'string' ? strictB64(sealed.box) : null;
  if (!epk || !nonce || !box || box.length < nacl.box.overheadLength) {
    throw new TalonError('PROVISION_SEAL', 'a sealed value is not {epk, nonce, box} in base64 with the right lengths');
  }
  const opened = nacl.box.open(
    new Uint8Array(box),
    new Uint8Array(nonce),
    new Uint8Array(epk),
    new Uint8Array(boxSecretKey32),
  );
  if (opened === null)
    throw new TalonError(
      'PROVISION_SEAL',
      "a sealed value cannot be opened with this device's key (sealed to another device, or damaged)",
    );
  return Buffer.from(opened).toString('utf8');
}

/** Seals a bundle's body to the device: the `sealed` member of its payload. */
export function sealBundleBody(body: BundleBody, recipientPublicKey32: Uint8Array): Sealed {
  return seal(JSON.stringify(body), recipientPublicKey32);
}

/**
 * Opens a bundle whose header checkBundle verified: the body must open with this device's key
 * (PROVISION_SEAL), be a well-formed body (PROVISION_MALFORMED) and name the header's device and
 * version (PROVISION_WRONG_DEVICE). All or nothing.
 */
export function openBundle(bundle: BundlePayload, boxSecretKey32: Uint8Array): OpenedBundle {
  let plain: string;
  try {
    plain = openSealed(bundle.sealed, boxSecretKey32);
  } catch (err) {
    throw new TalonError(
      'PROVISION_SEAL',
      "the bundle cannot be opened with this device's key (sealed to another device, or damaged)",
      { cause: err },
    );
  }
  let b: unknown;
  try {
    b = JSON.parse(plain);
  } catch (err) {
    throw new TalonError('PROVISION_MALFORMED', "the bundle's sealed body is not JSON", { cause: err });
  }
  if (!isObj(b)) throw malformed("the bundle's sealed body is not an object");
  exactKeys(b, ['deviceId', 'version', 'config', 'secrets'], ['broker', 'admin', 'anchor'], "the bundle's body");
  if (b.deviceId !== bundle.deviceId || b.version !== bundle.version) {
    throw new TalonError(
      'PROVISION_WRONG_DEVICE',
      "the bundle's sealed body names another device or version than its signed header",
    );
  }
  if (!isObj(b.config)) throw malformed('config is not an object');
  if (!isObj(b.secrets)) throw malformed('secrets is not an object');
  const names = Object.keys(b.secrets);
  if (names.length > MAX_SECRETS)
    throw malformed(`a bundle may carry at most ${MAX_SECRETS} secrets, this one has ${names.length}`);
  for (const name of names) {
    if (!SECRET_NAME.test(name)) throw malformed(`"${name.slice(0, 80)}" is not a secret name`);
    const v = b.secrets[name];
    if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > MAX_SECRET_BYTES)
      throw malformed(`secrets.${name} is not a string of 1-${MAX_SECRET_BYTES} bytes`);
  }
  if (b.broker !== undefined) {
    const br = b.broker;
    if (!isObj(br)) throw malformed('broker is not an object');
    exactKeys(br, ['url', 'username', 'password'], [], 'broker');
    text(br.url, 'broker.url', false, 2048);
    if (!/^(mqtts?|wss?):\/\//.test(br.url as string))
      throw malformed('broker.url is not an mqtt://, mqtts://, ws:// or wss:// URL');
    text(br.username, 'broker.username');
    text(br.password, 'broker.password', false, 1024);
  }
  if (b.admin !== undefined) {
    const a = b.admin;
    if (!isObj(a)) throw malformed('admin is not an object');
    exactKeys(a, ['username', 'passwordHash'], [], 'admin');
    text(a.username, 'admin.username');
    text(a.passwordHash, 'admin.passwordHash', false, 512);
  }
  if (b.anchor !== undefined) {
    const a = b.anchor;
    if (!isObj(a)) throw malformed('anchor is not an object');
    exactKeys(a, ['publicKey'], ['fleet'], 'anchor');
    if (!strictB64(a.publicKey, 32)) throw malformed('anchor.publicKey is not a base64 32-byte key');
    if (a.fleet !== undefined) text(a.fleet, 'anchor.fleet');
  }
  const { sealed: _sealed, ...header } = bundle;
  const { deviceId: _d, version: _v, ...body } = b as unknown as BundleBody;
  return { ...header, ...body };
}

// ---------------------------------------------------------------- parsing

/** Parses raw message bytes into an envelope: size cap, UTF-8 JSON, exactly {payload: object, sig: string}. */
export function parseEnvelope(
  bytes: Uint8Array | string,
  maxBytes = MAX_MESSAGE_BYTES,
): Envelope<Record<string, unknown>> {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  if (size > maxBytes)
    throw new TalonError(
      'PAYLOAD_TOO_LARGE',
      `a provisioning message may have at most ${maxBytes} bytes, this one has ${size}`,
    );
  let value: unknown;
  try {
    const text = typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    value = JSON.parse(text);
  } catch (err) {
    throw new TalonError('PROVISION_MALFORMED', 'a provisioning message must be UTF-8 JSON', { cause: err });
  }
  if (!isObj(value)) throw malformed('the message is not a JSON object');
  exactKeys(value, ['payload', 'sig'], [], 'the envelope');
  if (!isObj(value.payload)) throw malformed("the envelope's payload is not an object");
  if (typeof value.sig !== 'string') throw malformed("the envelope's sig is not a string");
  return { payload: value.payload, sig: value.sig };
}

/** Serialises an envelope for publishing (plain JSON; the receiver re-canonicalises the payload). */
export function encodeEnvelope(env: Envelope<object>): Buffer {
  const buf = Buffer.from(JSON.stringify(env), 'utf8');
  if (buf.length > MAX_MESSAGE_BYTES)
    throw new TalonError(
      'PAYLOAD_TOO_LARGE',
      `the message is ${buf.length} bytes, more than the ${MAX_MESSAGE_BYTES} a provisioning message may have`,
    );
  return buf;
}

// ---------------------------------------------------------------- checkers

export interface AnnounceCheck {
  fleet: string;
  /** the device the topic names, when known */
  deviceId?: string;
}

/** An announce: shape, fleet, deviceId = deviceIdFromPublicKey(signPublicKey), signed by that key. */
export function checkAnnounce(env: Envelope<unknown>, ctx: AnnounceCheck): AnnouncePayload {
  const p = payloadOf(env);
  common(p, 'announce', ['signPublicKey', 'boxPublicKey', 'inventory', 'software', 'nonce'], []);
  const signKey = strictB64(p.signPublicKey, 32);
  if (!signKey) throw malformed('signPublicKey is not a base64 32-byte key');
  if (!strictB64(p.boxPublicKey, 32)) throw malformed('boxPublicKey is not a base64 32-byte key');
  if (!strictB64(p.nonce, 16)) throw malformed('nonce is not 16 bytes in base64');
  const inv = p.inventory;
  if (!isObj(inv)) throw malformed('inventory is not an object');
  exactKeys(inv, ['board', 'serial', 'memoryBytes', 'os', 'arch', 'hostname'], [], 'inventory');
  for (const k of ['board', 'serial', 'os', 'arch', 'hostname']) text(inv[k], `inventory.${k}`, true);
  if (!Number.isSafeInteger(inv.memoryBytes) || (inv.memoryBytes as number) < 0)
    throw malformed('inventory.memoryBytes is not a non-negative integer');
  const sw = p.software;
  if (!isObj(sw)) throw malformed('software is not an object');
  exactKeys(sw, ['version', 'node'], [], 'software');
  text(sw.version, 'software.version');
  text(sw.node, 'software.node');
  checkFleet(p, ctx.fleet);
  if (ctx.deviceId !== undefined && p.deviceId !== ctx.deviceId) {
    throw new TalonError(
      'PROVISION_WRONG_DEVICE',
      `the announce is for device ${p.deviceId as string}, not ${ctx.deviceId}`,
    );
  }
  if (deviceIdFromPublicKey(signKey) !== p.deviceId) {
    throw new TalonError(
      'PROVISION_WRONG_DEVICE',
      `the announce's deviceId ${p.deviceId as string} is not derived from its signing key`,
    );
  }
  if (!verifyEnvelope(env, signKey))
    throw new TalonError(
      'PROVISION_BAD_SIGNATURE',
      "the announce's signature does not verify against its own signing key",
    );
  return p as unknown as AnnouncePayload;
}

export interface FleetMessageCheck {
  fleet: string;
  deviceId: string;
  /** the fleet public key the device trusts (32 bytes) */
  anchor: Uint8Array;
  /** the version the device has applied (0 before the first) */
  appliedVersion: number;
  /** ms since the epoch */
  now: number;
}

/**
 * A bundle's signed header from the fleet: shape, fleet, device, signature by the anchor,
 * version > applied, not expired. Its body stays sealed: openBundle opens it on the device.
 */
export function checkBundle(env: Envelope<unknown>, ctx: FleetMessageCheck): BundlePayload {
  const p = payloadOf(env);
  if (p.type === 'bundle' && p.v === 1) {
    throw new TalonError(
      'PROVISION_UNSEALED',
      'the bundle is in the old v1 format, its config and admin account readable by anyone on the broker; ' +
        'this device takes only sealed (v2) bundles: send it again with an up-to-date `talon fleet provision`',
    );
  }
  common(p, 'bundle', ['version', 'issuedAt', 'expiresAt', 'sealed'], [], BUNDLE_FORMAT_VERSION);
  versioned(p);
  sealedShape(p.sealed, 'sealed', MAX_MESSAGE_BYTES);
  fromFleet(env, p, ctx);
  return p as unknown as BundlePayload;
}

/** A decommission from the fleet: the same checks as a bundle. */
export function checkDecommission(env: Envelope<unknown>, ctx: FleetMessageCheck): DecommissionPayload {
  const p = payloadOf(env);
  common(p, 'decommission', ['version', 'issuedAt', 'expiresAt'], []);
  versioned(p);
  fromFleet(env, p, ctx);
  return p as unknown as DecommissionPayload;
}

/** Whatever arrives on a device's bundle topic: a bundle or a decommission, by its `type`. */
export function checkFleetMessage(env: Envelope<unknown>, ctx: FleetMessageCheck): BundlePayload | DecommissionPayload {
  const p = payloadOf(env);
  if (p.type === 'decommission') return checkDecommission(env, ctx);
  if (p.type === 'bundle') return checkBundle(env, ctx);
  throw malformed(
    `a message on the bundle topic must be a bundle or a decommission, not ${JSON.stringify(p.type)?.slice(0, 40)}`,
  );
}

export interface AckCheck {
  fleet: string;
  deviceId: string;
  /** the device's Ed25519 public key from its announce (32 bytes) */
  signPublicKey: Uint8Array;
}

/** An ack from a device: shape, fleet, device, signed by the device's announced key. */
export function checkAck(env: Envelope<unknown>, ctx: AckCheck): AckPayload {
  const p = payloadOf(env);
  common(p, 'ack', ['version', 'outcome'], ['code', 'message', 'generation']);
  if (!Number.isSafeInteger(p.version) || (p.version as number) < 0)
    throw malformed('version is not a non-negative integer');
  if (!ACK_OUTCOMES.includes(p.outcome as AckOutcome))
    throw malformed(`outcome must be one of ${ACK_OUTCOMES.join(', ')}`);
  if (p.code !== undefined) text(p.code, 'code');
  if (p.message !== undefined) text(p.message, 'message', false, 2048);
  if (p.generation !== undefined && (!Number.isSafeInteger(p.generation) || (p.generation as number) < 0))
    throw malformed('generation is not a non-negative integer');
  checkFleet(p, ctx.fleet);
  if (p.deviceId !== ctx.deviceId)
    throw new TalonError(
      'PROVISION_WRONG_DEVICE',
      `the ack is from device ${p.deviceId as string}, not ${ctx.deviceId}`,
    );
  if (!verifyEnvelope(env, ctx.signPublicKey))
    throw new TalonError(
      'PROVISION_BAD_SIGNATURE',
      "the ack's signature does not verify against the device's announced key",
    );
  return p as unknown as AckPayload;
}

// ---------------------------------------------------------------- helpers

function fromFleet(env: Envelope<unknown>, p: Record<string, unknown>, ctx: FleetMessageCheck): void {
  checkFleet(p, ctx.fleet);
  if (p.deviceId !== ctx.deviceId)
    throw new TalonError(
      'PROVISION_WRONG_DEVICE',
      `the ${p.type as string} is for device ${p.deviceId as string}, not this one (${ctx.deviceId})`,
    );
  if (!verifyEnvelope(env, ctx.anchor))
    throw new TalonError(
      'PROVISION_BAD_SIGNATURE',
      `the ${p.type as string}'s signature does not verify against the fleet key`,
    );
  if ((p.version as number) <= ctx.appliedVersion) {
    throw new TalonError(
      'PROVISION_REPLAY',
      `the ${p.type as string} has version ${p.version as number}, not above the applied ${ctx.appliedVersion} (a replay or a downgrade)`,
    );
  }
  if ((p.expiresAt as number) <= ctx.now) {
    throw new TalonError(
      'PROVISION_EXPIRED',
      `the ${p.type as string} expired at ${new Date(p.expiresAt as number).toISOString()}`,
    );
  }
}

function checkFleet(p: Record<string, unknown>, fleet: string): void {
  if (p.fleet !== fleet)
    throw new TalonError(
      'PROVISION_WRONG_FLEET',
      `the ${p.type as string} is for fleet ${JSON.stringify(p.fleet).slice(0, 80)}, not ${fleet}`,
    );
}

function payloadOf(env: Envelope<unknown>): Record<string, unknown> {
  if (!isObj(env) || !isObj(env.payload) || typeof env.sig !== 'string')
    throw malformed('not an envelope {payload, sig}');
  return env.payload;
}

function common(
  p: Record<string, unknown>,
  type: string,
  required: string[],
  optional: string[],
  v: number = FORMAT_VERSION,
): void {
  if (p.type !== type) throw malformed(`expected a ${type}, got ${JSON.stringify(p.type)?.slice(0, 40)}`);
  exactKeys(p, ['v', 'type', 'fleet', 'deviceId', 'ts', ...required], optional, `the ${type}`);
  if (p.v !== v) throw malformed(`v must be ${v}`);
  text(p.fleet, 'fleet');
  text(p.deviceId, 'deviceId');
  if (!Number.isSafeInteger(p.ts) || (p.ts as number) < 0) throw malformed('ts is not a time in ms');
}

function versioned(p: Record<string, unknown>): void {
  if (!Number.isSafeInteger(p.version) || (p.version as number) < 1)
    throw malformed('version is not a positive integer');
  if (!Number.isSafeInteger(p.issuedAt) || (p.issuedAt as number) < 0) throw malformed('issuedAt is not a time in ms');
  if (!Number.isSafeInteger(p.expiresAt) || (p.expiresAt as number) < 0)
    throw malformed('expiresAt is not a time in ms');
}

function sealedShape(v: unknown, what: string, maxBytes = MAX_SECRET_BYTES): void {
  if (!isObj(v)) throw malformed(`${what} is not a sealed value`);
  exactKeys(v, ['epk', 'nonce', 'box'], [], what);
  if (!strictB64(v.epk, 32) || !strictB64(v.nonce, 24)) throw malformed(`${what} has a bad epk or nonce`);
  const box = strictB64(v.box);
  if (!box || box.length < nacl.box.overheadLength || box.length > maxBytes + nacl.box.overheadLength)
    throw malformed(`${what} has a bad box`);
}

function exactKeys(o: Record<string, unknown>, required: string[], optional: string[], what: string): void {
  for (const k of required) if (o[k] === undefined) throw malformed(`${what} has no "${k}"`);
  const allowed = new Set([...required, ...optional]);
  for (const k of Object.keys(o))
    if (!allowed.has(k)) throw malformed(`${what} has an unknown member "${k.slice(0, 40)}"`);
}

function text(v: unknown, what: string, allowEmpty = false, max = MAX_TEXT): void {
  if (typeof v !== 'string' || (!allowEmpty && v.length === 0) || v.length > max)
    throw malformed(`${what} is not a string of ${allowEmpty ? 0 : 1}-${max} characters`);
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** base64 → bytes when well-formed (and of `len` bytes when given), else null. */
export function strictB64(v: unknown, len?: number): Buffer | null {
  if (typeof v !== 'string' || !B64.test(v)) return null;
  const buf = Buffer.from(v, 'base64');
  return len === undefined || buf.length === len ? buf : null;
}

function b64(u: Uint8Array): string {
  return Buffer.from(u).toString('base64');
}

function malformed(message: string): TalonError {
  return new TalonError('PROVISION_MALFORMED', message);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------- topics

/** The provisioning topics of one fleet. */
export function provisionTopics(fleet: string): {
  announce: (deviceId: string) => string;
  bundle: (deviceId: string) => string;
  status: (deviceId: string) => string;
  /** every provisioning topic of the fleet (a subscription filter) */
  all: string;
  announces: string;
  statuses: string;
} {
  const base = `talon/provision/${fleet}`;
  return {
    announce: (id) => `${base}/announce/${id}`,
    bundle: (id) => `${base}/bundle/${id}`,
    status: (id) => `${base}/status/${id}`,
    all: `${base}/#`,
    announces: `${base}/announce/+`,
    statuses: `${base}/status/+`,
  };
}

/** A fleet id: lowercase letters, digits and '-', 3-40, safe in topics and paths. */
export const FLEET_ID = /^[a-z0-9][a-z0-9-]{2,39}$/;
