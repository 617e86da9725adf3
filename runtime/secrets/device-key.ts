/**
 * The device's identity: an Ed25519 key pair made at first start and kept in the data
 * folder (mode 0600) in tweetnacl's format (32-byte public key, 64-byte secret key =
 * seed ‖ public key), base64 in a small JSON file. The device id is derived from the public
 * key, so it is stable across restarts and anyone holding the key can prove it.
 * Signing uses node:crypto (≈90× faster than tweetnacl, byte-identical signatures).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, renameSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { TalonError } from '../core/errors.ts';

export const DEVICE_KEY_FILE = 'device-key.json';

export interface DeviceKeyFile {
  v: 1;
  type: 'ed25519';
  /** base64, 32 bytes */
  publicKey: string;
  /** base64, 64 bytes: seed ‖ public key (tweetnacl's nacl.sign.keyPair secretKey) */
  secretKey: string;
  createdAt: string;
}

export class DeviceKey {
  readonly publicKey: Buffer;
  readonly secretKey: Buffer;
  readonly id: string;
  #private: KeyObject;
  #public: KeyObject;

  constructor(publicKey: Buffer, secretKey: Buffer) {
    if (publicKey.length !== 32 || secretKey.length !== 64 || !secretKey.subarray(32).equals(publicKey)) {
      throw new TalonError(
        'STORE_OPEN_FAILED',
        'the device key file is corrupt (wrong key lengths or mismatched halves)',
      );
    }
    this.publicKey = publicKey;
    this.secretKey = secretKey;
    this.#private = privateKeyFromSeed(secretKey.subarray(0, 32));
    this.#public = publicKeyFromRaw(publicKey);
    this.id = deviceIdFromPublicKey(publicKey);
  }

  sign(message: Buffer | string): Buffer {
    return sign(null, typeof message === 'string' ? Buffer.from(message) : message, this.#private);
  }

  verify(message: Buffer | string, signature: Buffer): boolean {
    return verify(null, typeof message === 'string' ? Buffer.from(message) : message, this.#public, signature);
  }

  static generate(): DeviceKey {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
    const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
    return new DeviceKey(pub, Buffer.concat([seed, pub]));
  }

  /** Loads `<dataDir>/device-key.json`, making it at first start. */
  static loadOrCreate(dataDir: string): DeviceKey {
    const file = join(dataDir, DEVICE_KEY_FILE);
    if (existsSync(file)) {
      let parsed: DeviceKeyFile;
      try {
        parsed = JSON.parse(readFileSync(file, 'utf8')) as DeviceKeyFile;
      } catch (err) {
        throw new TalonError(
          'STORE_OPEN_FAILED',
          `the device key ${file} is not valid JSON; restore it from a backup (a new key would change the device id)`,
          { cause: err },
        );
      }
      return new DeviceKey(Buffer.from(parsed.publicKey, 'base64'), Buffer.from(parsed.secretKey, 'base64'));
    }
    const key = DeviceKey.generate();
    const body: DeviceKeyFile = {
      v: 1,
      type: 'ed25519',
      publicKey: key.publicKey.toString('base64'),
      secretKey: key.secretKey.toString('base64'),
      createdAt: new Date().toISOString(),
    };
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    return key;
  }
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function privateKeyFromSeed(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function publicKeyFromRaw(pub: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pub]), format: 'der', type: 'spki' });
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** `t` + 16 base32 characters of SHA-256(public key): short, lowercase, safe in topics and paths. */
export function deviceIdFromPublicKey(pub: Buffer): string {
  const h = createHash('sha256').update(pub).digest();
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of h.subarray(0, 10)) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return `t${out}`;
}
