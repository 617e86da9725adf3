/**
 * The device's sealing key: an X25519 key pair (nacl.box) made at first start and kept next to
 * the Ed25519 device key in `<data>/device-box-key.json` (mode 0600, tweetnacl format, base64).
 * Fleet bundles seal secrets to its public half; only this device can open them.
 */
import { existsSync, readFileSync, writeFileSync, renameSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { TalonError } from '../../runtime/core/errors.ts';

export const DEVICE_BOX_KEY_FILE = 'device-box-key.json';

export interface BoxKeyFile {
  v: 1;
  type: 'x25519';
  /** base64, 32 bytes */
  publicKey: string;
  /** base64, 32 bytes */
  secretKey: string;
  createdAt: string;
}

export interface BoxKey {
  publicKey: Buffer;
  secretKey: Buffer;
}

/** Loads `<dataDir>/device-box-key.json`, making it at first start. */
export function loadOrCreateBoxKey(dataDir: string, now: () => number = Date.now): BoxKey {
  const file = join(dataDir, DEVICE_BOX_KEY_FILE);
  if (existsSync(file)) {
    let parsed: Partial<BoxKeyFile>;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<BoxKeyFile>;
    } catch (err) {
      throw new TalonError(
        'STORE_OPEN_FAILED',
        `the sealing key ${file} is not valid JSON; restore it from a backup (a new key cannot open secrets sealed to the old one)`,
        { cause: err },
      );
    }
    const publicKey = Buffer.from(String(parsed.publicKey ?? ''), 'base64');
    const secretKey = Buffer.from(String(parsed.secretKey ?? ''), 'base64');
    if (
      publicKey.length !== 32 ||
      secretKey.length !== 32 ||
      !Buffer.from(nacl.box.keyPair.fromSecretKey(new Uint8Array(secretKey)).publicKey).equals(publicKey)
    ) {
      throw new TalonError(
        'STORE_OPEN_FAILED',
        `the sealing key ${file} is corrupt (wrong lengths or mismatched halves); restore it from a backup`,
      );
    }
    return { publicKey, secretKey };
  }
  const kp = nacl.box.keyPair();
  const body: BoxKeyFile = {
    v: 1,
    type: 'x25519',
    publicKey: Buffer.from(kp.publicKey).toString('base64'),
    secretKey: Buffer.from(kp.secretKey).toString('base64'),
    createdAt: new Date(now()).toISOString(),
  };
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return { publicKey: Buffer.from(kp.publicKey), secretKey: Buffer.from(kp.secretKey) };
}
