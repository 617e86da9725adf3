/**
 * Bundles fixture Hands (test/fixtures/hands/<name>.ts) and the worker runtime
 * (runtime/worker/worker.ts) with the same esbuild options as the image (image/bundle.ts
 * `common`) into a temp folder, once per test process. Tests then run real workers on
 * exactly what ships, without needing `npm run build` first.
 */
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { common } from '../../image/bundle.ts';

const repo = join(import.meta.dirname, '..', '..');
let outDir: string | null = null;
const built = new Map<string, Promise<string>>();

function out(): string {
  if (!outDir) {
    const dir = mkdtempSync(join(tmpdir(), 'talon-fixtures-'));
    outDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return outDir;
}

function bundleOnce(key: string, entry: string, file: string): Promise<string> {
  let p = built.get(key);
  if (!p) {
    const outfile = join(out(), file);
    p = build({ ...common, entryPoints: [entry], outfile }).then(() => outfile);
    built.set(key, p);
  }
  return p;
}

/** dist/hand-worker.cjs, built from source into the temp folder */
export function workerEntry(): Promise<string> {
  return bundleOnce('worker', join(repo, 'runtime/worker/worker.ts'), 'hand-worker.cjs');
}

/** a fixture Hand bundled to `<tmp>/<name>.cjs`; returns its path */
export function fixture(name: string): Promise<string> {
  return bundleOnce(`fixture:${name}`, join(repo, 'test/fixtures/hands', `${name}.ts`), `${name}.cjs`);
}

/** the temp folder the bundles are in */
export function fixturesDir(): string {
  return out();
}
