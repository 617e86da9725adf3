/**
 * The optional browser companion, talon-browser.tar: playwright-core (plain CommonJS with no dependencies and no
 * native code, so one tar serves every architecture), loaded by the binary from the unpacked folder talon-browser/
 * next to it or $TALON_BROWSER_DIR (image/launcher.cjs, browserCompanion). The kernel's browser pool
 * (runtime/browser/pool.ts) imports it on its first job; image/bundle.ts routes that import to the launcher inside
 * the binary and to node_modules everywhere else. Chromium itself is the system's (Debian's `chromium`).
 * Not carried: TypeScript declarations, source maps, and lib/vite/ (the trace viewer's and recorder's web apps,
 * which Talon never opens). Why a companion and not assets in the binary: ./README.md.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, relative, sep } from 'node:path';

/** the folder's (and the tar's) name; the launcher looks for it next to the binary */
export const BROWSER_COMPANION = 'talon-browser';
/** the file the launcher requires from the folder */
export const BROWSER_ENTRY = 'index.cjs';

/** what of playwright-core is left out: declarations, maps, the trace viewer's and recorder's web apps */
export function skipped(rel: string): boolean {
  const parts = rel.split(/[\\/]/);
  return (
    /\.d\.ts$/.test(rel) ||
    /\.map$/.test(rel) ||
    parts[0] === 'types' ||
    (parts[0] === 'lib' && parts[1] === 'vite') ||
    parts.includes('node_modules')
  );
}

/** the installed playwright-core's folder and version; an error saying what to do when it is missing */
export function playwrightPackage(root: string): { dir: string; version: string } {
  const dir = join(root, 'node_modules', 'playwright-core');
  if (!existsSync(join(dir, 'package.json')))
    throw new Error(`playwright-core is not installed in ${join(root, 'node_modules')}: run npm ci`);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    version: string;
    dependencies?: Record<string, string>;
  };
  // the companion carries playwright-core alone: a version that grows dependencies needs them copied too
  const deps = Object.keys(pkg.dependencies ?? {});
  if (deps.length > 0)
    throw new Error(
      `playwright-core ${pkg.version} has dependencies (${deps.join(', ')}); image/binary/browser.ts copies none`,
    );
  return { dir, version: pkg.version };
}

/** writes <outDir>/talon-browser.tar (talon-browser/{package.json,index.cjs,node_modules/playwright-core/…}) */
export function buildBrowserCompanion(root: string, outDir: string): string {
  const { dir, version } = playwrightPackage(root);
  const work = join(root, '.cache', 'binary', `${BROWSER_COMPANION}-${process.pid}`);
  const folder = join(work, BROWSER_COMPANION);
  rmSync(work, { recursive: true, force: true });
  try {
    cpSync(dir, join(folder, 'node_modules', 'playwright-core'), {
      recursive: true,
      dereference: true,
      filter: (src) => src === dir || !skipped(relative(dir, src).split(sep).join('/')),
    });
    writeFileSync(
      join(folder, BROWSER_ENTRY),
      "'use strict';\n// loaded by the Talon binary's launcher when the kernel's browser starts\nmodule.exports = require('playwright-core');\n",
    );
    writeFileSync(
      join(folder, 'package.json'),
      `${JSON.stringify({ name: BROWSER_COMPANION, private: true, type: 'commonjs', playwrightCore: version }, null, 2)}\n`,
    );
    mkdirSync(outDir, { recursive: true });
    const tar = join(outDir, `${BROWSER_COMPANION}.tar`);
    const tmp = `${tar}.tmp-${process.pid}`;
    try {
      execFileSync(
        'tar',
        [
          '--sort=name',
          '--owner=0',
          '--group=0',
          '--numeric-owner',
          '--mtime=@0',
          '--mode=go-w',
          '-cf',
          tmp,
          '-C',
          work,
          BROWSER_COMPANION,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      renameSync(tmp, tar);
    } finally {
      rmSync(tmp, { force: true });
    }
    return tar;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
