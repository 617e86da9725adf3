/**
 * The web admin page build (web-admin/page/build.ts): what it writes is self-contained and
 * fits the CSP and the size budget. Builds into a temp folder, like `npm run build` does into
 * dist/web/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { MAX_GZIP_BYTES, buildPage, type PageManifest } from '../../web-admin/page/build.ts';

/** XML namespace names: identifiers inside Preact and uPlot, never fetched */
const NAMESPACES = new Set([
  'http://www.w3.org/2000/svg',
  'http://www.w3.org/1999/xhtml',
  'http://www.w3.org/1999/xlink',
  'http://www.w3.org/1998/Math/MathML',
  'http://www.w3.org/XML/1998/namespace',
]);

const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'talon-page-'));
  dirs.push(d);
  return d;
};

let built: Promise<{ dir: string; manifest: PageManifest }> | null = null;
const page = (): Promise<{ dir: string; manifest: PageManifest }> => {
  built ??= (async () => {
    const dir = join(temp(), 'web');
    return { dir, manifest: await buildPage(dir) };
  })();
  return built;
};

test('index.html references only files that exist, with no inline script, style or handler', async () => {
  const { dir } = await page();
  const html = readFileSync(join(dir, 'index.html'), 'utf8');
  const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
  const local = refs.filter((r) => !r.startsWith('data:'));
  assert.ok(
    local.some((r) => /^app-[A-Z0-9]+\.js$/.test(r)),
    `a hashed script: ${local.join(', ')}`,
  );
  assert.ok(
    local.some((r) => /^app-[A-Z0-9]+\.css$/.test(r)),
    `a hashed stylesheet: ${local.join(', ')}`,
  );
  for (const r of local) {
    assert.doesNotMatch(r, /^[a-z]+:|^\/\//i, `${r} is on this device`);
    assert.ok(existsSync(join(dir, r)), `${r} exists`);
  }
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.ok(scripts.length >= 1);
  for (const [, attrs, body] of scripts) {
    assert.match(attrs!, /\bsrc="/, 'every script is a file');
    assert.equal(body!.trim(), '', 'no inline script');
  }
  assert.doesNotMatch(html, /<style\b/i, 'no style element');
  assert.doesNotMatch(html, /\sstyle=/i, 'no style attribute');
  assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handler');
});

test('the bundle fetches nothing from another host and needs no eval', async () => {
  const { dir, manifest } = await page();
  for (const f of manifest.files) {
    const text = readFileSync(join(dir, f.name), 'utf8');
    const urls = [...text.matchAll(/\b(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi)]
      .map((m) => m[0])
      .filter((u) => /^https?:/i.test(u) && !NAMESPACES.has(u));
    assert.deepEqual(urls, [], `${f.name} has no URL to another host`);
    if (f.name.endsWith('.js')) {
      assert.doesNotMatch(text, /\bnew Function\(|\beval\(/, `${f.name} needs no eval (CSP script-src 'self')`);
    }
    if (f.name.endsWith('.css'))
      assert.doesNotMatch(text, /@import|url\((?!["']?data:)/, `${f.name} loads nothing else`);
  }
});

test('precompressed siblings and the manifest match the files, and the page fits its budget', async () => {
  const { dir, manifest } = await page();
  const onDisk = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as PageManifest;
  assert.deepEqual(onDisk, manifest);
  const names = new Set(readdirSync(dir));
  let total = 0;
  for (const f of manifest.files) {
    const raw = readFileSync(join(dir, f.name));
    const gz = readFileSync(join(dir, `${f.name}.gz`));
    const br = readFileSync(join(dir, `${f.name}.br`));
    assert.equal(f.bytes, raw.length, f.name);
    assert.equal(f.gzip, gz.length, f.name);
    assert.equal(f.brotli, br.length, f.name);
    assert.ok(gunzipSync(gz).equals(raw), `${f.name}.gz decompresses to the file`);
    assert.ok(brotliDecompressSync(br).equals(raw), `${f.name}.br decompresses to the file`);
    for (const n of [f.name, `${f.name}.gz`, `${f.name}.br`]) names.delete(n);
    total += gz.length;
  }
  names.delete('manifest.json');
  assert.deepEqual([...names], [], 'nothing else in the folder');
  assert.equal(manifest.totalGzip, total);
  assert.ok(total <= MAX_GZIP_BYTES, `${total} bytes gzipped ≤ ${MAX_GZIP_BYTES}`);
  assert.ok(manifest.files.some((f) => f.name === 'index.html' && f.contentType.startsWith('text/html')));
});

test('a build over its gzip budget fails and says by how much', async () => {
  const dir = join(temp(), 'web');
  await assert.rejects(buildPage(dir, { maxGzipBytes: 10_000 }), /over its budget of 10000/);
});
