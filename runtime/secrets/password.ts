/**
 * Password hashes for MQTT LAN users (and anything else that checks a password):
 * `scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>`. Verification is timing-safe and never
 * throws on a malformed hash (it returns false).
 */
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

const DEFAULT_N = 16384;
const DEFAULT_R = 8;
const DEFAULT_P = 1;
const KEY_LEN = 32;
const SALT_LEN = 16;
/** refuse parameters that would make verification a denial of service */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

function maxmemFor(N: number, r: number, p: number): number {
  // scrypt needs about 128 * N * r bytes, plus 128 * r * p; leave headroom
  return 128 * N * r + 128 * r * p + 1024 * 1024;
}

export function hashPassword(password: string, params: Partial<ScryptParams> = {}): string {
  const N = params.N ?? DEFAULT_N;
  const r = params.r ?? DEFAULT_R;
  const p = params.p ?? DEFAULT_P;
  const salt = randomBytes(SALT_LEN);
  const hash = scryptSync(password.normalize('NFC'), salt, KEY_LEN, { N, r, p, maxmem: maxmemFor(N, r, p) });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Parse a hash string; returns null when it is not a well-formed scrypt hash. */
export function parsePasswordHash(encoded: string): (ScryptParams & { salt: Buffer; hash: Buffer }) | null {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const N = Number(parts[1]);
  const r = Number(parts[2]);
  const p = Number(parts[3]);
  if (!Number.isInteger(N) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0) return null;
  if (!Number.isInteger(r) || r < 1 || r > MAX_R) return null;
  if (!Number.isInteger(p) || p < 1 || p > MAX_P) return null;
  const b64 = /^[A-Za-z0-9+/]+={0,2}$/;
  if (!b64.test(parts[4] ?? '') || !b64.test(parts[5] ?? '')) return null;
  const salt = Buffer.from(parts[4]!, 'base64');
  const hash = Buffer.from(parts[5]!, 'base64');
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return null;
  return { N, r, p, salt, hash };
}

export function isPasswordHash(encoded: string): boolean {
  return parsePasswordHash(encoded) !== null;
}

export function verifyPassword(password: string, encoded: string): boolean {
  const parsed = parsePasswordHash(encoded);
  if (!parsed) return false;
  const { N, r, p, salt, hash } = parsed;
  let candidate: Buffer;
  try {
    candidate = scryptSync(password.normalize('NFC'), salt, hash.length, { N, r, p, maxmem: maxmemFor(N, r, p) });
  } catch {
    return false;
  }
  return timingSafeEqual(candidate, hash);
}

/** Same as verifyPassword, off the event loop (scrypt runs on the libuv threadpool). */
export function verifyPasswordAsync(password: string, encoded: string): Promise<boolean> {
  const parsed = parsePasswordHash(encoded);
  if (!parsed) return Promise.resolve(false);
  const { N, r, p, salt, hash } = parsed;
  return new Promise((resolve) => {
    scrypt(password.normalize('NFC'), salt, hash.length, { N, r, p, maxmem: maxmemFor(N, r, p) }, (err, candidate) => {
      resolve(!err && timingSafeEqual(candidate, hash));
    });
  });
}
