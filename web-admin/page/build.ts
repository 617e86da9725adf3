/**
 * Builds the web admin page into one folder (dist/web/ in the shipped program):
 *   index.html            references app-<hash>.js and app-<hash>.css, no inline script or style (CSP)
 *   app-<hash>.js|css     the page itself (Preact, uPlot, tweetnacl, @noble/hashes), minified
 *   chunk-<hash>.js       code the page shares with the Hands' pages (when there are any)
 *   hand-<id>-<hash>.js   each Hand's page module (hands/<id>/page/index.tsx, hands/sdk/page.ts),
 *                         loaded by the page only when it is opened: the first paint does not
 *                         grow with every Hand
 *   *.gz, *.br            precompressed siblings, so the server never compresses at request time
 *   manifest.json         every file with its raw, gzip and brotli sizes, the files of the first
 *                         paint, and the Hands' pages
 * Fails when the page (index.html, JS and CSS, the Hands' pages included) weighs more than
 * MAX_GZIP_BYTES gzipped.
 *
 * The Hands' pages are found by their place (`<hands dir>/<id>/page/index.tsx`), not named
 * here: the page knows no Hand. Each module is also run once under Node at build time to read
 * its id, label and section for the nav, which the page gets from the `virtual:hand-pages`
 * module together with a loader (`import()`) for each.
 */
import { build, type Metafile, type Plugin } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { pageProblem, type HandPage } from '../../hands/sdk/page.ts';

const here = import.meta.dirname;

/** the issue's budget for the whole page */
export const MAX_GZIP_BYTES = 150 * 1024;

/** where the built-in Hands live; each `<id>/page/index.tsx` in it is a Hand's page */
export const HANDS_DIR = resolve(here, '../../hands');

/** a Hand's folder name, as the page build accepts it */
const HAND_ID = /^[a-z][a-z0-9-]{0,39}$/;

/** the web admin's own pages: a Hand's page of its own may not take their routes */
export const KERNEL_PAGES = [
  'dashboard',
  'hands',
  'sensors',
  'chat',
  'tools',
  'approvals',
  'runs',
  'audit',
  'config',
  'login',
] as const;

export interface PageFile {
  name: string;
  contentType: string;
  bytes: number;
  gzip: number;
  brotli: number;
}

/** A Hand's page as built: what the nav shows, and its chunk. */
export interface HandPageEntry {
  /** the Hand's folder name */
  hand: string;
  id: string;
  label: string;
  section?: string;
  /** its chunk, loaded when the page opens */
  file: string;
}

export interface PageManifest {
  entry: 'index.html';
  files: PageFile[];
  /** gzip bytes of everything a browser loads */
  totalGzip: number;
  totalBytes: number;
  /** the files a browser loads to show the page at all (index.html, the app and what it imports statically) */
  firstPaint: string[];
  /** the Hands' pages, each a chunk of its own */
  hands: HandPageEntry[];
}

export interface BuildOptions {
  maxGzipBytes?: number;
  /** folders of Hands whose `<id>/page/index.tsx` are built in; default [HANDS_DIR] (tests add fixtures) */
  handDirs?: string[];
}

interface FoundPage {
  hand: string;
  path: string;
  page: Pick<HandPage, 'id' | 'label' | 'section'>;
}

/** every `<dir>/<id>/page/index.tsx`, sorted by id; the same id in two folders is an error */
export function findHandPages(dirs: string[]): Array<{ hand: string; path: string }> {
  const found = new Map<string, string>();
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const path = join(dir, e.name, 'page', 'index.tsx');
      if (!existsSync(path)) continue;
      if (!HAND_ID.test(e.name)) throw new Error(`${path}: a Hand's folder name must match ${HAND_ID}`);
      const other = found.get(e.name);
      if (other) throw new Error(`two page modules for the Hand "${e.name}": ${other} and ${path}`);
      found.set(e.name, path);
    }
  }
  return [...found].sort(([a], [b]) => a.localeCompare(b)).map(([hand, path]) => ({ hand, path }));
}

/**
 * Runs a page module once under Node (bundled, from a data: URL) for its descriptor, so the nav
 * entry is known without loading the Hand's chunk in the browser.
 */
async function readHandPage(hand: string, path: string): Promise<FoundPage['page']> {
  const r = await build({
    entryPoints: [path],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: ['node20'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    loader: { '.css': 'empty' },
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const code = Buffer.from(r.outputFiles[0]!.contents).toString('base64');
  let mod: { default?: unknown };
  try {
    mod = (await import(`data:text/javascript;base64,${code}`)) as { default?: unknown };
  } catch (err) {
    throw new Error(
      `${path}: the page module fails when loaded (its top level must only declare): ${(err as Error).message}`,
    );
  }
  const problem = pageProblem(mod.default);
  if (problem) throw new Error(`${path}: the default export is not a page descriptor: ${problem}`);
  const p = mod.default as HandPage;
  return { id: p.id, label: p.label, ...(p.section ? { section: p.section } : {}) };
}

/** `virtual:hand-pages`: the nav entries and a loader for each Hand's chunk */
function handPagesPlugin(pages: FoundPage[]): Plugin {
  const J = JSON.stringify;
  const contents = `export default [${pages.map((p) => `{hand:${J(p.hand)},id:${J(p.page.id)},label:${J(p.page.label)},section:${J(p.page.section ?? null)},load:()=>import(${J(p.path)})}`).join(',')}];\n`;
  return {
    name: 'hand-pages',
    setup(b) {
      b.onResolve({ filter: /^virtual:hand-pages$/ }, () => ({ path: 'hand-pages', namespace: 'talon-hand-pages' }));
      b.onLoad({ filter: /.*/, namespace: 'talon-hand-pages' }, () => ({ contents, loader: 'js', resolveDir: here }));
    },
  };
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** Builds the page into `outDir` (emptied first) and returns its manifest. */
export async function buildPage(outDir: string, opts: BuildOptions = {}): Promise<PageManifest> {
  const found: FoundPage[] = [];
  for (const { hand, path } of findHandPages(opts.handDirs ?? [HANDS_DIR]))
    found.push({ hand, path, page: await readHandPage(hand, path) });
  const taken = new Map<string, string>(KERNEL_PAGES.map((id) => [id, 'the web admin']));
  for (const f of found) {
    const key = f.page.section ? `${f.page.section}/${f.page.id}` : f.page.id;
    const other = taken.get(key);
    if (other) throw new Error(`${f.path}: the page "${key}" is already ${other}'s`);
    taken.set(key, `the Hand "${f.hand}"`);
  }
  const main = join(here, 'src/main.tsx');
  const result = await build({
    entryPoints: [{ in: main, out: 'app' }, ...found.map((f) => ({ in: f.path, out: `hand-${f.hand}` }))],
    bundle: true,
    splitting: true,
    write: false,
    metafile: true,
    outdir: outDir,
    entryNames: '[name]-[hash]',
    chunkNames: 'chunk-[hash]',
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
    plugins: [handPagesPlugin(found)],
  });
  const assets = result.outputFiles.map((f) => ({ name: basename(f.path), data: Buffer.from(f.contents) }));
  const outputs = new Map<string, Metafile['outputs'][string]>(
    Object.entries(result.metafile.outputs).map(([k, v]) => [basename(k), v]),
  );
  const entryOf = (name: string): string | undefined => {
    const e = outputs.get(name)?.entryPoint;
    return e === undefined ? undefined : resolve(e);
  };
  const js = assets.find((a) => a.name.endsWith('.js') && entryOf(a.name) === main);
  const cssFiles = assets.filter((a) => a.name.endsWith('.css'));
  const css = cssFiles.find((a) => a.name.startsWith('app-'));
  if (!js || !css)
    throw new Error(
      `the page build produced ${assets.map((a) => a.name).join(', ')}: expected one app .js and one app .css`,
    );
  if (cssFiles.length > 1) {
    throw new Error(
      `a Hand's page imports CSS (${cssFiles
        .filter((c) => c !== css)
        .map((c) => c.name)
        .join(', ')}): use the page's classes instead`,
    );
  }
  const hands: HandPageEntry[] = found.map((f) => {
    const chunk = assets.find((a) => a.name.endsWith('.js') && entryOf(a.name) === f.path);
    if (!chunk) throw new Error(`the page build made no chunk for ${f.path}`);
    return { hand: f.hand, ...f.page, file: chunk.name };
  });
  // what index.html makes the browser load before any click: the app and its static imports
  const firstPaint = ['index.html', css.name];
  const visit = (name: string): void => {
    if (firstPaint.includes(name)) return;
    firstPaint.push(name);
    for (const i of outputs.get(name)?.imports ?? []) if (i.kind === 'import-statement') visit(basename(i.path));
  };
  visit(js.name);
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
  const files = [
    { name: 'index.html', data: Buffer.from(html, 'utf8') },
    js,
    css,
    ...assets.filter((a) => a !== js && a !== css),
  ];

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const manifest: PageManifest = { entry: 'index.html', files: [], totalGzip: 0, totalBytes: 0, firstPaint, hands };
  for (const f of files) {
    const gz = gzipSync(f.data, { level: 9 });
    const br = brotliCompressSync(f.data, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: f.data.length },
    });
    writeFileSync(join(outDir, f.name), f.data);
    writeFileSync(join(outDir, `${f.name}.gz`), gz);
    writeFileSync(join(outDir, `${f.name}.br`), br);
    const ext = f.name.slice(f.name.lastIndexOf('.') + 1);
    manifest.files.push({
      name: f.name,
      contentType: TYPES[ext] ?? 'application/octet-stream',
      bytes: f.data.length,
      gzip: gz.length,
      brotli: br.length,
    });
    manifest.totalGzip += gz.length;
    manifest.totalBytes += f.data.length;
  }
  writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const max = opts.maxGzipBytes ?? MAX_GZIP_BYTES;
  if (manifest.totalGzip > max) {
    throw new Error(
      `the web admin page is ${manifest.totalGzip} bytes gzipped, over its budget of ${max}: ${manifest.files.map((f) => `${f.name} ${f.gzip}`).join(', ')}`,
    );
  }
  return manifest;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const out = process.argv[2] ?? join(here, '../../dist/web');
  buildPage(out).then(
    (m) => {
      console.log(
        `web admin page: ${m.files.map((f) => `${f.name} ${f.bytes} B (${f.gzip} B gz)`).join(', ')}; total ${m.totalGzip} B gzipped`,
      );
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
