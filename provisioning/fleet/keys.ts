/**
 * The fleet folder (`talon fleet init --out DIR`): everything the operator side needs.
 *
 *   fleet.json             {fleetId, publicKey, createdAt, brokerUrl, operator: {username}}
 *   fleet-key.json  0600   the fleet's Ed25519 signing key (the trust anchor), tweetnacl format
 *   operator.json   0600   the operator's broker credential
 *   device-bootstrap.json 0600  the device config's `provisioning` section, for the image to bake in
 *   broker/                mosquitto.conf, acl, passwd (broker.ts)
 *   devices/<id>.json      one record per device that announced itself (registry.ts)
 *   policies.json          auto-approve rules (policy.ts)
 *   fleet-key.old.json     the previous key after `talon fleet rotate-key`
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import { FLEET_ID, newSigningKeyPair } from '../format.ts';
import { atomicWrite, brokerPaths, CLAIM_USER, OPERATOR_USER, writeBrokerFiles } from './broker.ts';

export interface FleetFile {
  v: 1;
  fleetId: string;
  /** base64 Ed25519 public key: the anchor devices trust */
  publicKey: string;
  createdAt: string;
  /** the broker devices and the operator connect to */
  brokerUrl: string;
  operator: { username: string };
  rotatedAt?: string;
}

export interface FleetKeyFile {
  v: 1;
  type: 'ed25519';
  publicKey: string;
  /** base64, 64 bytes: seed ‖ public key */
  secretKey: string;
  createdAt: string;
}

/** Exactly the device config's `provisioning` section. */
export interface DeviceBootstrap {
  fleet: string;
  anchor: string;
  bootstrap: { url: string; username: string; password: string };
}

export interface Fleet {
  dir: string;
  fleetId: string;
  publicKey: Buffer;
  secretKey: Buffer;
  brokerUrl: string;
  operator: { username: string; password: string };
  bootstrap: DeviceBootstrap;
}

export const FLEET_FILE = 'fleet.json';
export const FLEET_KEY_FILE = 'fleet-key.json';
export const OLD_FLEET_KEY_FILE = 'fleet-key.old.json';
export const OPERATOR_FILE = 'operator.json';
export const BOOTSTRAP_FILE = 'device-bootstrap.json';

export interface InitOptions {
  fleetId?: string;
  /** default mqtt://127.0.0.1:1883 */
  brokerUrl?: string;
  /** `user NAME` in mosquitto.conf */
  brokerRunAs?: string;
  now?: Date;
}

export function initFleet(dirIn: string, opts: InitOptions = {}): Fleet {
  const dir = resolve(dirIn);
  if (existsSync(join(dir, FLEET_FILE)))
    throw new TalonError('CONFLICT', `${dir} already holds a fleet (${FLEET_FILE}); pick another --out`);
  const fleetId = opts.fleetId ?? `fleet-${randomBytes(4).toString('hex')}`;
  if (!FLEET_ID.test(fleetId))
    throw new TalonError(
      'USAGE',
      `"${fleetId}" is not a fleet id (3-40 of a-z, 0-9 and -, starting with a letter or digit)`,
    );
  const brokerUrl = opts.brokerUrl ?? 'mqtt://127.0.0.1:1883';
  const url = parseBrokerUrl(brokerUrl);
  const now = (opts.now ?? new Date()).toISOString();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'devices'), { recursive: true });

  const kp = newSigningKeyPair();
  const key: FleetKeyFile = {
    v: 1,
    type: 'ed25519',
    publicKey: kp.publicKey.toString('base64'),
    secretKey: kp.secretKey.toString('base64'),
    createdAt: now,
  };
  atomicWrite(join(dir, FLEET_KEY_FILE), json(key), 0o600);
  const operator = { username: OPERATOR_USER, password: password() };
  atomicWrite(join(dir, OPERATOR_FILE), json(operator), 0o600);
  const bootstrap: DeviceBootstrap = {
    fleet: fleetId,
    anchor: key.publicKey,
    bootstrap: { url: brokerUrl, username: CLAIM_USER, password: password() },
  };
  atomicWrite(join(dir, BOOTSTRAP_FILE), json(bootstrap), 0o600);
  writeBrokerFiles(
    dir,
    fleetId,
    { [OPERATOR_USER]: operator.password, [CLAIM_USER]: bootstrap.bootstrap.password },
    {
      port: url.port,
      ...(isLoopback(url.host) ? { host: url.host } : {}),
      ...(opts.brokerRunAs ? { runAs: opts.brokerRunAs } : {}),
    },
  );
  const fleet: FleetFile = {
    v: 1,
    fleetId,
    publicKey: key.publicKey,
    createdAt: now,
    brokerUrl,
    operator: { username: OPERATOR_USER },
  };
  atomicWrite(join(dir, FLEET_FILE), json(fleet), 0o644);
  return loadFleet(dir);
}

/**
 * Rewrites broker/ from the fleet folder (a new port, lost files), keeping every password line;
 * a new port goes into fleet.json and device-bootstrap.json too (images made before keep the old one).
 */
export function rewriteBrokerFiles(fleet: Fleet, opts: { port?: number; runAs?: string } = {}): Fleet {
  const url = parseBrokerUrl(fleet.brokerUrl);
  const port = opts.port ?? url.port;
  const paths = brokerPaths(fleet.dir);
  const keep = existsSync(paths.passwd)
    ? readFileSync(paths.passwd, 'utf8')
        .split('\n')
        .filter((l) => l.includes(':') && !l.startsWith(`${OPERATOR_USER}:`) && !l.startsWith(`${CLAIM_USER}:`))
    : [];
  writeBrokerFiles(
    fleet.dir,
    fleet.fleetId,
    { [OPERATOR_USER]: fleet.operator.password, [CLAIM_USER]: fleet.bootstrap.bootstrap.password },
    {
      port,
      ...(isLoopback(url.host) ? { host: url.host } : {}),
      ...(opts.runAs ? { runAs: opts.runAs } : {}),
    },
  );
  if (keep.length) atomicWrite(paths.passwd, `${readFileSync(paths.passwd, 'utf8')}${keep.join('\n')}\n`, 0o600);
  if (port !== url.port) {
    const u = new URL(fleet.brokerUrl);
    u.port = String(port);
    const brokerUrl = u.toString().replace(/\/$/, '');
    const f = readJson<FleetFile>(fleet.dir, FLEET_FILE);
    atomicWrite(join(fleet.dir, FLEET_FILE), json({ ...f, brokerUrl }), 0o644);
    atomicWrite(
      join(fleet.dir, BOOTSTRAP_FILE),
      json({ ...fleet.bootstrap, bootstrap: { ...fleet.bootstrap.bootstrap, url: brokerUrl } }),
      0o600,
    );
  }
  return loadFleet(fleet.dir);
}

export function loadFleet(dirIn: string): Fleet {
  const dir = resolve(dirIn);
  const fleet = readJson<FleetFile>(dir, FLEET_FILE);
  const key = readJson<FleetKeyFile>(dir, FLEET_KEY_FILE);
  const operator = readJson<{ username: string; password: string }>(dir, OPERATOR_FILE);
  const bootstrap = readJson<DeviceBootstrap>(dir, BOOTSTRAP_FILE);
  const publicKey = Buffer.from(key.publicKey ?? '', 'base64');
  const secretKey = Buffer.from(key.secretKey ?? '', 'base64');
  if (
    publicKey.length !== 32 ||
    secretKey.length !== 64 ||
    !secretKey.subarray(32).equals(publicKey) ||
    fleet.publicKey !== key.publicKey
  ) {
    throw new TalonError(
      'FLEET_NOT_FOUND',
      `the fleet key in ${join(dir, FLEET_KEY_FILE)} is damaged or does not match ${FLEET_FILE}`,
    );
  }
  if (
    typeof fleet.fleetId !== 'string' ||
    typeof fleet.brokerUrl !== 'string' ||
    typeof operator.password !== 'string'
  ) {
    throw new TalonError('FLEET_NOT_FOUND', `${dir} is an incomplete fleet folder`);
  }
  return { dir, fleetId: fleet.fleetId, publicKey, secretKey, brokerUrl: fleet.brokerUrl, operator, bootstrap };
}

/**
 * Installs a new key pair as the fleet key: the current one moves to fleet-key.old.json and
 * fleet.json / device-bootstrap.json name the new public key (images made from now on trust it).
 */
export function installFleetKey(fleet: Fleet, next: { publicKey: Buffer; secretKey: Buffer }, now = new Date()): Fleet {
  const dir = fleet.dir;
  renameSync(join(dir, FLEET_KEY_FILE), join(dir, OLD_FLEET_KEY_FILE));
  const key: FleetKeyFile = {
    v: 1,
    type: 'ed25519',
    publicKey: next.publicKey.toString('base64'),
    secretKey: next.secretKey.toString('base64'),
    createdAt: now.toISOString(),
  };
  atomicWrite(join(dir, FLEET_KEY_FILE), json(key), 0o600);
  const f = readJson<FleetFile>(dir, FLEET_FILE);
  atomicWrite(join(dir, FLEET_FILE), json({ ...f, publicKey: key.publicKey, rotatedAt: now.toISOString() }), 0o644);
  atomicWrite(join(dir, BOOTSTRAP_FILE), json({ ...fleet.bootstrap, anchor: key.publicKey }), 0o600);
  return loadFleet(dir);
}

export function parseBrokerUrl(s: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new TalonError('USAGE', `"${s.slice(0, 120)}" is not a broker URL (like mqtt://fleet.example:1883)`);
  }
  if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:')
    throw new TalonError('USAGE', `the broker URL must be mqtt:// or mqtts://, got ${u.protocol}`);
  const port = u.port === '' ? (u.protocol === 'mqtts:' ? 8883 : 1883) : Number(u.port);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1';
}

function password(): string {
  return randomBytes(24).toString('base64url');
}

function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

function readJson<T>(dir: string, name: string): T {
  const file = join(dir, name);
  if (!existsSync(file))
    throw new TalonError(
      'FLEET_NOT_FOUND',
      `${dir} is not a fleet folder: no ${name} (make one with \`talon fleet init --out ${dir}\`)`,
    );
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null) throw new Error('not an object');
    return v as T;
  } catch (err) {
    throw new TalonError('FLEET_NOT_FOUND', `${file} is damaged: ${(err as Error).message}`, { cause: err });
  }
}
