/**
 * Optional TLS: a self-signed certificate made once at first start (key 0600), reused after a
 * restart, served over HTTPS with HSTS and Secure cookies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { startHarness } from './harness.ts';

function httpsGet(
  port: number,
  path: string,
  ca: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ca, servername: 'localhost', agent: false }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          fingerprint,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

test('a self-signed certificate is made once, reused, and served over HTTPS', async () => {
  const tls = { enabled: true };
  const h = await startHarness({ http: { host: '127.0.0.1', port: 0, tls } });
  const certFile = join(h.dataDir, 'tls', 'cert.pem');
  const keyFile = join(h.dataDir, 'tls', 'key.pem');
  let cert: string;
  let first: string;
  try {
    cert = readFileSync(certFile, 'utf8');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const x509 = new X509Certificate(cert);
    assert.match(x509.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.ok(x509.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(keyFile))));
    const { port } = h.kernel.http.address();
    // the certificate verifies against itself as the CA: a real TLS handshake, not rejectUnauthorized: false
    const r = await httpsGet(port, '/healthz', cert);
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { status: string }).status, 'ok');
    assert.match(String(r.headers['strict-transport-security']), /max-age=\d+/);
    first = r.fingerprint;
    const setup = await h.send({
      method: 'POST',
      url: '/api/v1/setup',
      payload: { code: h.kernel.http.setupCode, username: 'admin', password: 'correct horse battery' },
    });
    assert.equal(setup.statusCode, 201);
    assert.match(String(setup.headers['set-cookie']), /; Secure/);
  } finally {
    await h.stop();
  }
  const again = await startHarness({ http: { host: '127.0.0.1', port: 0, tls } }, h.dataDir);
  try {
    assert.equal(readFileSync(certFile, 'utf8'), cert, 'the certificate is reused');
    const r = await httpsGet(again.kernel.http.address().port, '/healthz', cert);
    assert.equal(r.status, 200);
    assert.equal(r.fingerprint, first);
    assert.equal(again.kernel.http.setupCode, null, 'an account exists: no setup code');
  } finally {
    await again.stop();
  }
});
