/**
 * The optional llama.cpp companion, talon-llama-linux-<arch>.tar: node-llama-cpp (ESM, loaded
 * by the binary with import() from the unpacked folder next to it, see image/launcher.cjs)
 * with its runtime dependencies and the prebuilt llama.cpp libraries for one architecture
 * (@node-llama-cpp/linux-<arch>). Not carried: llama.cpp's source bundle (for building it
 * from source), TypeScript declarations, source maps, other platforms' packages.
 * Why a companion and not assets in the binary: ./README.md.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import type { Arch } from './node-dist.ts';

interface Pkg {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** the folder `name` resolves to from `from` (Node's node_modules walk) */
function findPackage(name: string, from: string, root: string): string | null {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === dirname(dir)) return null;
  }
}

/** node-llama-cpp and every package it needs at run time, as folders under root/node_modules */
export function llamaClosure(root: string, arch: Arch): string[] {
  const seen = new Set<string>();
  const visit = (dir: string): void => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Pkg;
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      const found = findPackage(dep, dir, root);
      if (!found) throw new Error(`${dep} (needed by ${relative(root, dir)}) is not installed`);
      visit(found);
    }
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
      // of node-llama-cpp's prebuilt libraries only the plain CPU build for this architecture
      if (dep.startsWith('@node-llama-cpp/') && dep !== `@node-llama-cpp/linux-${arch}`) continue;
      const found = findPackage(dep, dir, root);
      if (found) visit(found);
    }
  };
  const top = findPackage('node-llama-cpp', root, root);
  if (!top) throw new Error('node-llama-cpp is not installed');
  visit(top);
  if (!findPackage(`@node-llama-cpp/linux-${arch}`, top, root))
    throw new Error(`@node-llama-cpp/linux-${arch} is not installed`);
  return [...seen].sort();
}

const SKIP = [/\.d\.ts$/, /\.map$/, /[\\/]node-llama-cpp[\\/]llama[\\/]gitRelease\.bundle$/];

/** writes <outDir>/talon-llama-linux-<arch>.tar; returns its path */
export function buildLlamaCompanion(root: string, arch: Arch, outDir: string): string {
  const name = `talon-llama-linux-${arch}`;
  const work = join(root, '.cache', 'binary', `${name}-${process.pid}`);
  const folder = join(work, name);
  rmSync(work, { recursive: true, force: true });
  for (const dir of llamaClosure(root, arch)) {
    const rel = relative(join(root, 'node_modules'), dir);
    cpSync(dir, join(folder, 'node_modules', rel), {
      recursive: true,
      dereference: true,
      filter: (src) => !SKIP.some((re) => re.test(src)) && !relative(dir, src).split(/[\\/]/).includes('node_modules'),
    });
  }
  writeFileSync(join(folder, 'index.mjs'), "export * from 'node-llama-cpp';\n");
  writeFileSync(join(folder, 'package.json'), `${JSON.stringify({ name, private: true, type: 'module' }, null, 2)}\n`);
  mkdirSync(outDir, { recursive: true });
  const tar = join(outDir, `${name}.tar`);
  const tmp = `${tar}.tmp-${process.pid}`;
  try {
    execFileSync(
      'tar',
      ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-cf', tmp, '-C', work, name],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    renameSync(tmp, tar);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(work, { recursive: true, force: true });
  }
  return tar;
}
