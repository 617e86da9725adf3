/**
 * The fleet folder's device records: DIR/devices/<deviceId>.json, one per device that sent a
 * verified announce. A record keeps the announce (its public keys and inventory), where the
 * device stands, the last version issued to it and the last ack it sent.
 *
 *   pending         announced, nothing applied yet
 *   provisioning    a bundle was published, no ack for it yet
 *   provisioned     it applied a bundle (a later rejected update leaves it provisioned)
 *   rejected        it rejected or rolled back every bundle so far
 *   decommissioned  it wiped its credentials (a fresh announce makes it pending again)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import type { AckPayload, AnnouncePayload, Envelope } from '../format.ts';
import { atomicWrite } from './broker.ts';

export type DeviceState = 'pending' | 'provisioning' | 'provisioned' | 'rejected' | 'decommissioned';

export interface DeviceRecord {
  v: 1;
  deviceId: string;
  state: DeviceState;
  /** the verified announce, as received */
  announce: Envelope<AnnouncePayload>;
  firstSeen: number;
  lastSeen: number;
  /** the last version issued (bundle or decommission); 0 = none */
  version: number;
  /** the config of the last bundle (no secrets), re-sent by key rotation */
  lastConfig?: Record<string, unknown>;
  /** the version and time of the last applied bundle */
  applied?: { version: number; at: number };
  lastAck?: AckPayload;
  /** the device has its own broker user in broker/passwd */
  brokerUser?: boolean;
  updatedAt: number;
}

const ID = /^[a-z0-9]{1,64}$/;

function devicesDir(fleetDir: string): string {
  return join(fleetDir, 'devices');
}

export function readDevice(fleetDir: string, deviceId: string): DeviceRecord | undefined {
  if (!ID.test(deviceId)) return undefined;
  const file = join(devicesDir(fleetDir), `${deviceId}.json`);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as DeviceRecord;
}

export function getDevice(fleetDir: string, deviceId: string): DeviceRecord {
  const rec = readDevice(fleetDir, deviceId);
  if (!rec)
    throw new TalonError(
      'DEVICE_NOT_FOUND',
      `no device ${deviceId.slice(0, 80)} announced itself to this fleet (see \`talon fleet devices\`)`,
    );
  return rec;
}

export function writeDevice(fleetDir: string, rec: DeviceRecord): void {
  if (!ID.test(rec.deviceId)) throw new TalonError('BAD_REQUEST', `"${rec.deviceId.slice(0, 80)}" is not a device id`);
  mkdirSync(devicesDir(fleetDir), { recursive: true });
  atomicWrite(join(devicesDir(fleetDir), `${rec.deviceId}.json`), `${JSON.stringify(rec, null, 2)}\n`, 0o644);
}

export function listDevices(fleetDir: string): DeviceRecord[] {
  const dir = devicesDir(fleetDir);
  if (!existsSync(dir)) return [];
  const out: DeviceRecord[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.json')) continue;
    const rec = readDevice(fleetDir, f.slice(0, -5));
    if (rec) out.push(rec);
  }
  return out;
}

/** Records a VERIFIED announce (checkAnnounce passed). Returns the record and whether it is new or pending again. */
export function recordAnnounce(
  fleetDir: string,
  env: Envelope<AnnouncePayload>,
  now: number,
): { record: DeviceRecord; fresh: boolean } {
  const p = env.payload;
  const old = readDevice(fleetDir, p.deviceId);
  if (!old) {
    const record: DeviceRecord = {
      v: 1,
      deviceId: p.deviceId,
      state: 'pending',
      announce: env,
      firstSeen: now,
      lastSeen: now,
      version: 0,
      updatedAt: now,
    };
    writeDevice(fleetDir, record);
    return { record, fresh: true };
  }
  if (p.ts <= old.announce.payload.ts) return { record: old, fresh: false }; // the retained copy again, or an older one
  const again = old.state === 'decommissioned' && p.ts >= old.updatedAt;
  const record: DeviceRecord = {
    ...old,
    announce: env,
    lastSeen: now,
    updatedAt: now,
    ...(again ? { state: 'pending' as const } : {}),
  };
  writeDevice(fleetDir, record);
  return { record, fresh: again };
}

/** A bundle or decommission with `version` was published. */
export function recordIssued(
  fleetDir: string,
  deviceId: string,
  version: number,
  kind: 'bundle' | 'decommission',
  config: Record<string, unknown> | undefined,
  now: number,
  brokerUser?: boolean,
): DeviceRecord {
  const old = getDevice(fleetDir, deviceId);
  const rec: DeviceRecord = {
    ...old,
    version,
    updatedAt: now,
    state: kind === 'decommission' ? old.state : old.state === 'provisioned' ? 'provisioned' : 'provisioning',
    ...(config ? { lastConfig: config } : {}),
    ...(brokerUser !== undefined ? { brokerUser } : {}),
  };
  writeDevice(fleetDir, rec);
  return rec;
}

/** A VERIFIED ack arrived. */
export function recordAck(fleetDir: string, ack: AckPayload, now: number): DeviceRecord {
  const old = getDevice(fleetDir, ack.deviceId);
  let state: DeviceState = old.state;
  let applied = old.applied;
  if (ack.outcome === 'applied') {
    state = 'provisioned';
    applied = { version: ack.version, at: now };
  } else if (ack.outcome === 'decommissioned') {
    state = 'decommissioned';
  } else if (old.state !== 'provisioned') {
    state = 'rejected';
  }
  const rec: DeviceRecord = { ...old, state, lastAck: ack, updatedAt: now, ...(applied ? { applied } : {}) };
  writeDevice(fleetDir, rec);
  return rec;
}
