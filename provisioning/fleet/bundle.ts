/**
 * Building what the fleet sends a device: a bundle (config, secrets, the device's own broker
 * credential, an admin account, a new anchor) or a decommission, signed by the fleet key.
 * The bundle's whole body is sealed to the X25519 key of the device's verified announce (only
 * that device reads it; format.ts); the config file is read like any Talon config (JSON or
 * YAML) and checked before it leaves.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import { readConfigFile, parseConfigText, checkConfig } from '../../runtime/config/load.ts';
import { invalid } from '../../runtime/config/validate.ts';
import { SECRET_NAME, USER_NAME } from '../../runtime/core/names.ts';
import { hashPassword } from '../../runtime/secrets/password.ts';
import {
  BUNDLE_FORMAT_VERSION,
  MAX_SECRETS,
  sealBundleBody,
  signEnvelope,
  encodeEnvelope,
  type BundleBody,
  type BundlePayload,
  type DecommissionPayload,
  type Envelope,
} from '../format.ts';
import type { Fleet } from './keys.ts';
import type { DeviceRecord } from './registry.ts';

export const DEFAULT_EXPIRES_MS = 7 * 24 * 3600 * 1000;

export interface BundleInput {
  fleet: Fleet;
  device: DeviceRecord;
  version: number;
  config: Record<string, unknown>;
  /** plaintext; sealed here */
  secrets?: Record<string, string>;
  /** the device's own broker credential (plaintext password, sealed here) */
  broker?: { url: string; username: string; password: string };
  admin?: { username: string; passwordHash: string };
  anchor?: { publicKey: string; fleet?: string };
  /** ms since the epoch */
  now: number;
  expiresInMs?: number;
  /** sign with this key instead of the fleet's (key rotation signs with the old one) */
  signingKey?: Buffer;
}

export function buildBundle(input: BundleInput): Envelope<BundlePayload> {
  const box = Buffer.from(input.device.announce.payload.boxPublicKey, 'base64');
  const body: BundleBody = {
    deviceId: input.device.deviceId,
    version: input.version,
    config: input.config,
    secrets: { ...(input.secrets ?? {}) },
    ...(input.broker
      ? { broker: { url: input.broker.url, username: input.broker.username, password: input.broker.password } }
      : {}),
    ...(input.admin ? { admin: input.admin } : {}),
    ...(input.anchor ? { anchor: input.anchor } : {}),
  };
  const payload: BundlePayload = {
    v: BUNDLE_FORMAT_VERSION,
    type: 'bundle',
    fleet: input.fleet.fleetId,
    deviceId: input.device.deviceId,
    ts: input.now,
    version: input.version,
    issuedAt: input.now,
    expiresAt: input.now + (input.expiresInMs ?? DEFAULT_EXPIRES_MS),
    sealed: sealBundleBody(body, box),
  };
  const env = signEnvelope(payload, input.signingKey ?? input.fleet.secretKey);
  encodeEnvelope(env); // refuses an oversized bundle here, not on the device
  return env;
}

export function buildDecommission(
  fleet: Fleet,
  device: DeviceRecord,
  version: number,
  now: number,
  expiresInMs = DEFAULT_EXPIRES_MS,
): Envelope<DecommissionPayload> {
  const payload: DecommissionPayload = {
    v: 1,
    type: 'decommission',
    fleet: fleet.fleetId,
    deviceId: device.deviceId,
    ts: now,
    version,
    issuedAt: now,
    expiresAt: now + expiresInMs,
  };
  return signEnvelope(payload, fleet.secretKey);
}

/** Reads a device config file (JSON or YAML) and checks it against the config schema (unless `validate` is false). */
export function loadBundleConfig(file: string, validate = true): Record<string, unknown> {
  const raw = readConfigFile(resolve(file));
  if (validate) {
    const { problems } = checkConfig(structuredClone(raw));
    if (problems.length) throw invalid(problems, `the device config ${file}`);
  }
  return raw;
}

/** A secrets file: a JSON or YAML mapping NAME → string value. */
export function readSecretsFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TalonError('CONFIG_NOT_FOUND', `cannot read the secrets file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const v = parseConfigText(text, file);
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new TalonError('CONFIG_INVALID', `the secrets file ${file} must be a mapping NAME: value`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' && typeof val !== 'number')
      throw new TalonError('CONFIG_INVALID', `the secret ${k} in ${file} must be a string`);
    out[k] = String(val);
  }
  return checkSecrets(out);
}

/** `--secret NAME=VALUE` arguments. */
export function parseSecretArgs(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of args) {
    const i = a.indexOf('=');
    if (i <= 0) throw new TalonError('USAGE', `--secret takes NAME=VALUE, got "${a.slice(0, 40)}"`);
    out[a.slice(0, i)] = a.slice(i + 1);
  }
  return checkSecrets(out);
}

function checkSecrets(s: Record<string, string>): Record<string, string> {
  const names = Object.keys(s);
  if (names.length > MAX_SECRETS) throw new TalonError('USAGE', `a bundle may carry at most ${MAX_SECRETS} secrets`);
  for (const n of names) {
    if (!SECRET_NAME.test(n))
      throw new TalonError('USAGE', `"${n.slice(0, 80)}" is not a secret name (letters, digits, _ . -, at most 64)`);
    if (s[n] === '') throw new TalonError('USAGE', `the secret ${n} is empty`);
  }
  return s;
}

/** `--admin-user NAME --admin-password-file F` → the admin account the device creates (scrypt hash; the password never leaves). */
export function adminFromFile(username: string, passwordFile: string): { username: string; passwordHash: string } {
  if (!USER_NAME.test(username))
    throw new TalonError(
      'USAGE',
      `"${username.slice(0, 40)}" is not a user name (a-z, 0-9, . _ -, starting with a letter, at most 32)`,
    );
  let pw: string;
  try {
    pw = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new TalonError('USAGE', `cannot read the password file ${passwordFile}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (pw.length < 8) throw new TalonError('USAGE', 'the admin password must have at least 8 characters');
  return { username, passwordHash: hashPassword(pw) };
}

/** `7d`, `12h`, `30m`, `90s` or plain seconds → ms. */
export function parseDuration(s: string): number {
  const m = /^(\d+)\s*(d|h|m|s)?$/.exec(s.trim());
  if (!m) throw new TalonError('USAGE', `"${s.slice(0, 40)}" is not a duration (like 7d, 12h, 30m, 90s)`);
  const n = Number(m[1]);
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[(m[2] ?? 's') as 'd' | 'h' | 'm' | 's'];
  if (n <= 0) throw new TalonError('USAGE', 'a duration must be positive');
  return n * unit;
}
