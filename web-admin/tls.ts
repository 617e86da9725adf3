/**
 * Optional HTTPS for the web admin. With cert and key files given they are used; without, a
 * self-signed certificate is made once at first start into `<dataDir>/tls/` (key 0600) and
 * reused after. `selfsigned` is loaded only when TLS is on and no certificate exists yet.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { TalonError } from '../runtime/core/errors.ts';

export interface TlsOptions {
  enabled: boolean;
  cert?: string;
  key?: string;
}

export interface TlsMaterial {
  cert: string;
  key: string;
  /** true when this call made a new self-signed certificate */
  created: boolean;
}

export async function loadTls(opts: TlsOptions, dataDir: string): Promise<TlsMaterial> {
  if (opts.cert !== undefined || opts.key !== undefined) {
    if (opts.cert === undefined || opts.key === undefined)
      throw new TalonError(
        'CONFIG_INVALID',
        'http.tls needs both cert and key, or neither (then a self-signed certificate is made)',
      );
    try {
      return { cert: readFileSync(opts.cert, 'utf8'), key: readFileSync(opts.key, 'utf8'), created: false };
    } catch (err) {
      throw new TalonError('CONFIG_INVALID', `cannot read the TLS certificate or key: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const dir = join(dataDir, 'tls');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) {
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), created: false };
  }
  const { generate } = (await import('selfsigned')) as unknown as typeof import('selfsigned');
  const host = hostname();
  const pems = generate([{ name: 'commonName', value: host }], {
    keySize: 2048,
    days: 3650,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: host },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { cert: pems.cert, key: pems.private, created: true };
}
