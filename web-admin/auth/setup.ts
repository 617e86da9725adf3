/**
 * First start: no account exists, so a one-time setup code (XXXX-XXXX-XXXX-XXXX, base32) is
 * written to `<dataDir>/setup-code` (0600) and printed on the console; POST /api/v1/setup with
 * it creates the first admin. There is never a default password.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SETUP_CODE_FILE = 'setup-code';
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function newSetupCode(): string {
  const bytes = randomBytes(16);
  const chars = [...bytes].map((b) => ALPHABET[b & 31]).join('');
  return chars.match(/.{4}/g)!.join('-');
}

const normal = (code: string): string => code.toUpperCase().replace(/[\s-]/g, '');
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class SetupCode {
  #file: string;
  #code: string | null = null;

  constructor(dataDir: string) {
    this.#file = join(dataDir, SETUP_CODE_FILE);
  }

  /** Makes (or reuses, across restarts) the code; returns it for the console. */
  ensure(): string {
    if (this.#code) return this.#code;
    if (existsSync(this.#file)) {
      const old = readFileSync(this.#file, 'utf8').trim();
      if (normal(old).length === 16) this.#code = old;
    }
    if (!this.#code) {
      this.#code = newSetupCode();
      writeFileSync(this.#file, this.#code + '\n', { mode: 0o600 });
    }
    chmodSync(this.#file, 0o600);
    return this.#code;
  }

  /** constant-time comparison (dashes, spaces and case ignored) */
  matches(code: string): boolean {
    if (!this.#code) return false;
    return timingSafeEqual(digest(normal(code)), digest(normal(this.#code)));
  }

  consume(): void {
    this.#code = null;
    rmSync(this.#file, { force: true });
  }

  /** an account exists (made by setup, provisioning or an older start): no code is valid */
  retire(): void {
    this.consume();
  }
}
