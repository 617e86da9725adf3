/**
 * Sealed secrets: API keys and passwords kept in the store encrypted with a key derived from
 * the device's own key (HKDF-SHA256 → XSalsa20-Poly1305, nacl.secretbox). A copy of the
 * database alone reveals nothing; values are never logged, audited or returned by the API
 * (only names are). Provisioning bundles (later) seal secrets to the device's X25519 key and
 * land here.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import type { Store } from '../store/store.ts';
import { SYNC } from '../store/store.ts';
import type { DeviceKey } from './device-key.ts';
import { TalonError } from '../core/errors.ts';
import { SECRET_NAME } from '../core/names.ts';

/** a secret's name: the rule lives in runtime/core/names.ts */
export { SECRET_NAME };
const MAX_SECRET_BYTES = 16 * 1024;

interface SealedRecord {
  v: 1;
  nonce: string;
  box: string;
  updatedAt: number;
}

export class SecretStore {
  #store: Store;
  #key: Uint8Array;

  constructor(store: Store, deviceKey: DeviceKey) {
    this.#store = store;
    this.#key = new Uint8Array(
      hkdfSync(
        'sha256',
        deviceKey.secretKey.subarray(0, 32),
        Buffer.from('talon'),
        Buffer.from('talon-secrets-v1'),
        32,
      ),
    );
  }

  static checkName(name: string): void {
    if (!SECRET_NAME.test(name))
      throw new TalonError(
        'BAD_REQUEST',
        `"${name.slice(0, 80)}" is not a secret name (letters, digits, _ . -, at most 64)`,
      );
  }

  async set(name: string, value: string): Promise<void> {
    SecretStore.checkName(name);
    if (typeof value !== 'string' || value.length === 0)
      throw new TalonError('BAD_REQUEST', 'a secret needs a non-empty value');
    const plain = Buffer.from(value, 'utf8');
    if (plain.length > MAX_SECRET_BYTES)
      throw new TalonError('PAYLOAD_TOO_LARGE', `a secret may hold at most ${MAX_SECRET_BYTES} bytes`);
    const nonce = randomBytes(nacl.secretbox.nonceLength);
    const box = nacl.secretbox(new Uint8Array(plain), new Uint8Array(nonce), this.#key);
    const rec: SealedRecord = {
      v: 1,
      nonce: nonce.toString('base64'),
      box: Buffer.from(box).toString('base64'),
      updatedAt: Date.now(),
    };
    await this.#store.sublevel<SealedRecord>('secrets').put(name, rec, SYNC);
  }

  async get(name: string): Promise<string | undefined> {
    SecretStore.checkName(name);
    const rec = await this.#store.sublevel<SealedRecord>('secrets').get(name);
    if (rec === undefined) return undefined;
    const opened = nacl.secretbox.open(
      new Uint8Array(Buffer.from(rec.box, 'base64')),
      new Uint8Array(Buffer.from(rec.nonce, 'base64')),
      this.#key,
    );
    if (opened === null) {
      throw new TalonError(
        'STORE_OPEN_FAILED',
        `the secret "${name}" cannot be opened with this device's key (the data folder was copied from another device, or the record is damaged); set it again`,
      );
    }
    return Buffer.from(opened).toString('utf8');
  }

  async delete(name: string): Promise<boolean> {
    SecretStore.checkName(name);
    const had = (await this.#store.sublevel<SealedRecord>('secrets').get(name)) !== undefined;
    await this.#store.sublevel('secrets').del(name, SYNC);
    return had;
  }

  async list(): Promise<Array<{ name: string; updatedAt: number }>> {
    const out: Array<{ name: string; updatedAt: number }> = [];
    for await (const [name, rec] of this.#store.sublevel<SealedRecord>('secrets').iterator())
      out.push({ name: name as string, updatedAt: (rec as SealedRecord).updatedAt });
    return out;
  }
}
