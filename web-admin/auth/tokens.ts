/**
 * API tokens for automation: `tln_<id>_<secret>`, shown once, stored as the sha256 of the
 * secret with the owner, scopes (`<tag>:read`, `<tag>:write`, `*`), optional expiry and the
 * last use.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store, Sublevel } from '../../runtime/store/store.ts';
import { SYNC } from '../../runtime/store/store.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { authSublevel } from './sublevel.ts';

export const TOKEN_ID_PATTERN = '^[a-f0-9]{12}$';
const TOKEN = /^tln_([a-f0-9]{12})_([A-Za-z0-9_-]{43})$/;
const TOUCH_MS = 60_000;

export interface TokenInfo {
  id: string;
  name: string;
  user: string;
  scopes: string[];
  createdAt: number;
  expiresAt?: number;
  lastUsedAt?: number;
}

interface TokenRecord extends TokenInfo {
  /** sha256 of the secret, hex */
  hash: string;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class TokenStore {
  #db: Sublevel<TokenRecord>;
  #clock: Clock;

  constructor(store: Store, clock: Clock) {
    this.#db = authSublevel<TokenRecord>(store, 'tokens');
    this.#clock = clock;
  }

  /** `expiresAt` (ms) wins over `expiresInDays` */
  async create(input: {
    name: string;
    user: string;
    scopes: string[];
    expiresInDays?: number;
    expiresAt?: number;
  }): Promise<{ token: string; info: TokenInfo }> {
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = this.#clock.now();
    const expiresAt =
      input.expiresAt ?? (input.expiresInDays !== undefined ? now + input.expiresInDays * 86_400_000 : undefined);
    const info: TokenInfo = {
      id,
      name: input.name,
      user: input.user,
      scopes: [...new Set(input.scopes)],
      createdAt: now,
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    };
    await this.#db.put(id, { ...info, hash: digest(secret).toString('hex') }, SYNC);
    return { token: `tln_${id}_${secret}`, info };
  }

  async list(): Promise<TokenInfo[]> {
    const out: TokenInfo[] = [];
    for await (const v of this.#db.values()) out.push(strip(v));
    return out;
  }

  async delete(id: string): Promise<TokenInfo> {
    const rec = /^[a-f0-9]{12}$/.test(id) ? await this.#db.get(id) : undefined;
    if (!rec) throw new TalonError('TOKEN_NOT_FOUND', `no API token "${id.slice(0, 40)}"`);
    await this.#db.del(id, SYNC);
    return strip(rec);
  }

  async deleteForUser(user: string): Promise<void> {
    const keys: string[] = [];
    for await (const [k, v] of this.#db.iterator()) if (v.user === user) keys.push(k);
    if (keys.length > 0) await this.#db.batch(keys.map((key) => ({ type: 'del' as const, key })));
  }

  /** The token's info when the bearer value is a live token; null otherwise. */
  async verify(bearer: string): Promise<TokenInfo | null> {
    const m = TOKEN.exec(bearer);
    if (!m) return null;
    const rec = await this.#db.get(m[1]!);
    if (!rec) return null;
    if (!timingSafeEqual(digest(m[2]!), Buffer.from(rec.hash, 'hex'))) return null;
    const now = this.#clock.now();
    if (rec.expiresAt !== undefined && now >= rec.expiresAt) return null;
    if (rec.lastUsedAt === undefined || now - rec.lastUsedAt > TOUCH_MS) {
      rec.lastUsedAt = now;
      await this.#db.put(rec.id, rec);
    }
    return strip(rec);
  }
}

function strip(rec: TokenRecord): TokenInfo {
  const { hash: _hash, ...info } = rec;
  return info;
}
