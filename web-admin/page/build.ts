/**
 * Builds the web admin page into one folder (dist/web/ in the shipped program):
 *   index.html            references app-<hash>.js and app-<hash>.css, no inline script or style (CSP)
 *   app-<hash>.js|css     the bundle (Preact, uPlot, tweetnacl, @noble/hashes), minified
 *   *.gz, *.br            precompressed siblings, so the server never compresses at request time
 *   manifest.json         every file with its raw, gzip and brotli sizes
 * Fails when the page (index.html, JS and CSS) weighs more than MAX_GZIP_BYTES gzipped.
 */
import { build } from 'esbuild';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const here = import.meta.dirname;

/** the issue's budget for the whole page */
export const MAX_GZIP_BYTES = 150 * 1024;

export interface PageFile {
  name: string;
  contentType: string;
  bytes: number;
  gzip: number;
  brotli: number;
}

export interface PageManifest {
  entry: 'index.html';
  files: PageFile[];
  /** gzip bytes of everything a browser loads */
  totalGzip: number;
  totalBytes: number;
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** Builds the page into `outDir` (emptied first) and returns its manifest. */
export async function buildPage(outDir: string, opts: { maxGzipBytes?: number } = {}): Promise<PageManifest> {
  const result = await build({
    entryPoints: [join(here, 'src/main.tsx')],
    bundle: true,
    write: false,
    outdir: outDir,
    entryNames: 'app-[hash]',
    format: 'esm',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'warning',
    charset: 'utf8',
  });
  const assets = result.outputFiles.map((f) => ({ name: basename(f.path), data: Buffer.from(f.contents) }));
  const js = assets.find((a) => a.name.endsWith('.js'));
  const css = assets.find((a) => a.name.endsWith('.css'));
  if (!js || !css) throw new Error(`the page build produced ${assets.map((a) => a.name).join(', ')}: expected one .js and one .css`);
  const html = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>Talon</title>',
    '<link rel="icon" href="data:,">',
    `<link rel="stylesheet" href="${css.name}">`,
    `<script type="module" src="${js.name}"></script>`,
    '</head>',
    '<body>',
    '<div id="app"><p class="boot">Loading Talon…</p></div>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
  const files = [{ name: 'index.html', data: Buffer.from(html, 'utf8') }, js, css];

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const manifest: PageManifest = { entry: 'index.html', files: [], totalGzip: 0, totalBytes: 0 };
  for (const f of files) {
    const gz = gzipSync(f.data, { level: 9 });
    const br = brotliCompressSync(f.data, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: f.data.length },
    });
    writeFileSync(join(outDir, f.name), f.data);
    writeFileSync(join(outDir, `${f.name}.gz`), gz);
    writeFileSync(join(outDir, `${f.name}.br`), br);
    const ext = f.name.slice(f.name.lastIndexOf('.') + 1);
    manifest.files.push({ name: f.name, contentType: TYPES[ext] ?? 'application/octet-stream', bytes: f.data.length, gzip: gz.length, brotli: br.length });
    manifest.totalGzip += gz.length;
    manifest.totalBytes += f.data.length;
  }
  writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const max = opts.maxGzipBytes ?? MAX_GZIP_BYTES;
  if (manifest.totalGzip > max) {
    throw new Error(`the web admin page is ${manifest.totalGzip} bytes gzipped, over its budget of ${max}: ${manifest.files.map((f) => `${f.name} ${f.gzip}`).join(', ')}`);
  }
  return manifest;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const out = process.argv[2] ?? join(here, '../../dist/web');
  buildPage(out).then((m) => {
    console.log(`web admin page: ${m.files.map((f) => `${f.name} ${f.bytes} B (${f.gzip} B gz)`).join(', ')}; total ${m.totalGzip} B gzipped`);
  }, (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
