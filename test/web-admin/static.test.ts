/**
 * The page from the web root: index.html for `/` and page paths, hashed assets cached for a
 * year with an ETag, precompressed siblings, no escape from the root, 503 PAGE_NOT_BUILT
 * without a build; the security headers on every answer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import inject from 'light-my-request';
import { HttpServer } from '../../web-admin/server.ts';
import { startHarness, code, type Harness } from './harness.ts';

let h: Harness;
let web: string;
let server: HttpServer;
const send = (srv: HttpServer, opts: Parameters<typeof inject>[1]) => inject((rq, rs) => void srv.handle(rq, rs), opts);
const JS = 'console.log("talon page");\n'.repeat(50);

before(async () => {
  h = await startHarness();
  web = mkdtempSync(join(tmpdir(), 'talon-webroot-'));
  mkdirSync(join(web, 'assets'));
  writeFileSync(
    join(web, 'index.html'),
    '<!doctype html><title>Talon</title><script type="module" src="/assets/app-3f9a1c2b.js"></script>',
  );
  writeFileSync(join(web, 'assets', 'app-3f9a1c2b.js'), JS);
  writeFileSync(join(web, 'assets', 'app-3f9a1c2b.js.gz'), gzipSync(JS));
  writeFileSync(join(tmpdir(), 'outside-secret.txt'), 'secret');
  server = new HttpServer({
    api: h.kernel.api,
    listen: { host: '127.0.0.1', port: 0 },
    cliToken: h.cliToken,
    store: h.kernel.store,
    audit: h.kernel.audit,
    dataDir: h.dataDir,
    webRoot: web,
  });
});

after(async () => {
  await h.stop();
});

test('index.html for / and for page paths, revalidated; API paths never fall back to it', async () => {
  for (const url of ['/', '/hands', '/audit/verify']) {
    const r = await send(server, { method: 'GET', url });
    assert.equal(r.statusCode, 200, url);
    assert.match(r.body, /<title>Talon<\/title>/);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.match(String(r.headers['content-type']), /^text\/html/);
  }
  const api = await send(server, { method: 'GET', url: '/api/v1/nothing' });
  assert.equal(api.statusCode, 404);
  assert.equal(code(api), 'NOT_FOUND');
  assert.equal(api.headers['cache-control'], 'no-store');
});

test('hashed assets: long cache, ETag and 304, gzip sibling when accepted', async () => {
  const plain = await send(server, { method: 'GET', url: '/assets/app-3f9a1c2b.js' });
  assert.equal(plain.statusCode, 200);
  assert.equal(plain.body, JS);
  assert.match(String(plain.headers['cache-control']), /max-age=31536000, immutable/);
  assert.equal(plain.headers['content-encoding'], undefined);
  const etag = String(plain.headers.etag);
  const cached = await send(server, {
    method: 'GET',
    url: '/assets/app-3f9a1c2b.js',
    headers: { 'if-none-match': etag },
  });
  assert.equal(cached.statusCode, 304);
  const gz = await send(server, {
    method: 'GET',
    url: '/assets/app-3f9a1c2b.js',
    headers: { 'accept-encoding': 'gzip, deflate' },
  });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.equal(gz.headers.vary, 'accept-encoding');
  assert.ok(gz.rawPayload.length < JS.length);
});

test('no file outside the web root is served', async () => {
  for (const url of [
    '/../outside-secret.txt',
    '/%2e%2e/outside-secret.txt',
    '/assets/..%2F..%2Foutside-secret.txt',
    '/..%5Coutside-secret.txt',
  ]) {
    const r = await send(server, { method: 'GET', url });
    assert.ok(!r.body.includes('secret'), url);
    assert.ok(r.statusCode === 200 ? r.body.includes('<title>Talon') : r.statusCode < 500, url);
  }
});

test('without a built page, / answers 503 PAGE_NOT_BUILT naming npm run build', async () => {
  const none = new HttpServer({
    api: h.kernel.api,
    listen: { host: '127.0.0.1', port: 0 },
    cliToken: h.cliToken,
    store: h.kernel.store,
    audit: h.kernel.audit,
    dataDir: h.dataDir,
    webRoot: join(web, 'missing'),
  });
  const r = await send(none, { method: 'GET', url: '/' });
  assert.equal(r.statusCode, 503);
  assert.equal(code(r), 'PAGE_NOT_BUILT');
  assert.match(r.body, /npm run build/);
});

test('security headers on every answer: page, API, errors', async () => {
  for (const url of ['/', '/healthz', '/api/v1/hands', '/api/v1/nothing']) {
    const r = await send(server, { method: 'GET', url });
    assert.equal(
      r.headers['content-security-policy'],
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
      url,
    );
    assert.equal(r.headers['x-content-type-options'], 'nosniff', url);
    assert.equal(r.headers['x-frame-options'], 'DENY', url);
    assert.equal(r.headers['referrer-policy'], 'no-referrer', url);
    assert.equal(r.headers['strict-transport-security'], undefined, `${url}: no HSTS over plain HTTP`);
  }
});
