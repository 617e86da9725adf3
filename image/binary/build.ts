/**
 * `npm run build:binary -- --arch arm64|x64 [--llama] [--browser] [--no-sizes]`: Talon as one executable,
 * dist/bin/talon-linux-<arch> (+ .sha256); with --llama or --browser also the optional companions
 * (talon-llama-linux-<arch>.tar, talon-browser.tar: ./llama.ts, ./browser.ts). See ./README.md.
 *
 *  1. the official Node (NODE_VERSION) for the target and for this machine, from the npm
 *     registry's node-linux-<arch> packages (./node-dist.ts, cached in .cache/node/);
 *  2. the bundle (image/bundle.ts) into .cache/binary/bundle-<arch>/ (not dist/: other
 *     builds may rewrite dist/ meanwhile);
 *  3. a SEA config: image/launcher.cjs as `main`; every bundle file, the native addons for
 *     the target (./addons.ts), esm-import.cjs and talon-assets.json (the assets' hash,
 *     names and modes, read by the launcher to extract them) as `assets`;
 *  4. the blob, made by this machine's Node of the same version (the blob's format belongs
 *     to the Node version, not to the architecture: no snapshot, no code cache in it);
 *  5. the target's node copied, stripped, the blob injected with postject (NODE_SEA_FUSE);
 *  6. renamed into place only when complete, its SHA-256 beside it, sizes printed.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { bundle } from '../bundle.ts';
import { nativeAssets } from './addons.ts';
import { ARCHES, NODE_VERSION, nodeDist, type Arch } from './node-dist.ts';
import { buildLlamaCompanion } from './llama.ts';
import { buildBrowserCompanion } from './browser.ts';

const root = join(import.meta.dirname, '..', '..');
/** the fuse postject flips in the node binary (Node's SEA sentinel) */
export const SENTINEL = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export interface BinaryResult {
  arch: Arch;
  file: string;
  sha256: string;
  bytes: number;
  assetsHash: string;
  nodeVersion: string;
}

const STRIP: Record<Arch, string> = { x64: 'x86_64-linux-gnu-strip', arm64: 'aarch64-linux-gnu-strip' };

function stripTool(arch: Arch): string {
  const native = (process.arch === 'arm64' ? 'arm64' : 'x64') === arch;
  for (const tool of native ? ['strip', STRIP[arch]] : [STRIP[arch]]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return tool;
    } catch {
      /* next */
    }
  }
  throw new Error(
    `stripping the ${arch} node needs ${STRIP[arch]} (apt-get install binutils-${arch === 'arm64' ? 'aarch64' : 'x86-64'}-linux-gnu)`,
  );
}

function walk(dir: string, base = dir): string[] {
  const files: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) files.push(...walk(p, base));
    else if (e.isFile()) files.push(relative(base, p));
  }
  return files.sort();
}

/** asset name → file: the bundle (without the launcher, which is `main`), addons, the import helper */
function collectAssets(bundleDir: string, addons: Record<string, string>): Record<string, string> {
  const assets: Record<string, string> = {};
  for (const name of walk(bundleDir)) {
    if (name === 'talon.cjs' || name.endsWith('.v8cache')) continue;
    assets[name] = join(bundleDir, name);
  }
  // import() needs a real module file: the SEA's main script has no ESM loader
  const helper = join(bundleDir, '..', `esm-import-${process.pid}.cjs`);
  writeFileSync(helper, "'use strict';\nmodule.exports = (specifier) => import(specifier);\n");
  assets['esm-import.cjs'] = helper;
  return { ...assets, ...addons };
}

/** the manifest the launcher reads; its hash names the extraction folder */
function manifest(assets: Record<string, string>): { hash: string; files: [string, number][] } {
  const h = createHash('sha256');
  const files: [string, number][] = [];
  for (const name of Object.keys(assets).sort()) {
    const mode = name.endsWith('.node') ? 0o755 : 0o644;
    h.update(`${name}\0${mode}\0`).update(readFileSync(assets[name]!)).update('\0');
    files.push([name, mode]);
  }
  return { hash: h.digest('hex').slice(0, 24), files };
}

export async function buildBinary(
  arch: Arch,
  opts: { log?: (s: string) => void; outDir?: string } = {},
): Promise<BinaryResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`build:binary ${s}\n`));
  const outDir = opts.outDir ?? join(root, 'dist', 'bin');
  const work = join(root, '.cache', 'binary');
  mkdirSync(work, { recursive: true });

  const target = nodeDist(root, arch, NODE_VERSION, log);
  const host = nodeDist(root, process.arch === 'arm64' ? 'arm64' : 'x64', NODE_VERSION, log);

  log(`bundling for ${arch}`);
  const bundleDir = join(work, `bundle-${arch}-${process.pid}`);
  await bundle(bundleDir);
  const addons = nativeAssets(root, target, log);
  const assets = collectAssets(bundleDir, addons);
  const m = manifest(assets);
  const manifestFile = join(work, `talon-assets-${arch}-${process.pid}.json`);
  writeFileSync(manifestFile, JSON.stringify(m));
  assets['talon-assets.json'] = manifestFile;

  const blob = join(work, `sea-${arch}-${process.pid}.blob`);
  const config = join(work, `sea-config-${arch}-${process.pid}.json`);
  writeFileSync(
    config,
    JSON.stringify(
      {
        main: join(root, 'image', 'launcher.cjs'),
        output: blob,
        disableExperimentalSEAWarning: true,
        useSnapshot: false,
        useCodeCache: false,
        assets,
      },
      null,
      2,
    ),
  );
  log(`making the SEA blob (${Object.keys(assets).length} assets) with node ${host.version} ${host.arch}`);
  execFileSync(host.node, ['--experimental-sea-config', config], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });

  mkdirSync(outDir, { recursive: true });
  const name = `talon-linux-${arch}`;
  const final = join(outDir, name);
  const tmp = join(outDir, `.${name}.tmp-${process.pid}`);
  try {
    copyFileSync(target.node, tmp);
    chmodSync(tmp, 0o755);
    log(`stripping node (${stripTool(arch)})`);
    execFileSync(stripTool(arch), ['--strip-all', tmp], { stdio: ['ignore', 'pipe', 'pipe'] });
    log('injecting the blob (postject)');
    execFileSync(
      process.execPath,
      [
        join(root, 'node_modules', 'postject', 'dist', 'cli.js'),
        tmp,
        'NODE_SEA_BLOB',
        blob,
        '--sentinel-fuse',
        SENTINEL,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    renameSync(tmp, final);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(blob, { force: true });
    rmSync(config, { force: true });
    rmSync(manifestFile, { force: true });
    rmSync(bundleDir, { recursive: true, force: true });
    rmSync(join(work, `esm-import-${process.pid}.cjs`), { force: true });
  }
  const sha256 = createHash('sha256').update(readFileSync(final)).digest('hex');
  writeFileSync(`${final}.sha256`, `${sha256}  ${name}\n`);
  return { arch, file: final, sha256, bytes: statSync(final).size, assetsHash: m.hash, nodeVersion: target.version };
}

/** bytes after `zstd -19` and `xz -9` (what a download or an image carries) */
export function compressedSizes(file: string): { zstd: number; xz: number } {
  const count = (cmd: string, args: string[]): number =>
    execFileSync('sh', ['-c', `${cmd} ${args.join(' ')} -c -- "$0" | wc -c`, file], {
      encoding: 'utf8',
    }).trim() as unknown as number;
  return { zstd: Number(count('zstd', ['-19', '-T0', '-q'])), xz: Number(count('xz', ['-9', '-T0'])) };
}

export function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

const USAGE = 'usage: npm run build:binary -- --arch arm64|x64 [--llama] [--browser] [--no-sizes]';

export function parseArgs(argv: string[]): { arches: Arch[]; sizes: boolean; llama: boolean; browser: boolean } {
  const arches: Arch[] = [];
  let sizes = true;
  let llama = false;
  let browser = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = a.startsWith('--arch=') ? a.slice(7) : a === '--arch' ? argv[++i] : undefined;
    if (value !== undefined) {
      for (const v of value.split(',')) {
        if (!ARCHES.includes(v as Arch))
          throw new Error(`--arch: ${v || '(nothing)'} is not one of ${ARCHES.join(', ')}`);
        arches.push(v as Arch);
      }
    } else if (a === '--no-sizes') sizes = false;
    else if (a === '--llama') llama = true;
    else if (a === '--browser') browser = true;
    else throw new Error(`unknown option ${a} (${USAGE})`);
  }
  if (arches.length === 0) arches.push(process.arch === 'arm64' ? 'arm64' : 'x64');
  return { arches, sizes, llama, browser };
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  (async () => {
    const { arches, sizes, llama, browser } = parseArgs(process.argv.slice(2));
    const sized = (file: string): string => {
      let line = `${relative(process.cwd(), file)}  ${mb(statSync(file).size)}`;
      if (sizes) {
        const c = compressedSizes(file);
        line += `  zstd -19: ${mb(c.zstd)}  xz -9: ${mb(c.xz)}`;
      }
      return line;
    };
    for (const arch of arches) {
      const r = await buildBinary(arch);
      console.log(
        `${sized(r.file)}  (node ${r.nodeVersion}, assets ${r.assetsHash}, sha256 ${r.sha256.slice(0, 16)}…)`,
      );
      if (llama)
        console.log(`${sized(buildLlamaCompanion(root, arch, dirname(r.file)))}  (optional llama.cpp companion)`);
    }
    // one for every architecture: playwright-core has no native code
    if (browser)
      console.log(
        `${sized(buildBrowserCompanion(root, join(root, 'dist', 'bin')))}  (optional browser companion, any architecture)`,
      );
  })().catch((err: unknown) => {
    console.error(`build:binary: ${(err as Error).message}`);
    process.exit(1);
  });
}
