/**
 * The import graph points one way (README, "Layout"). Every relative import in the shipped
 * folders is read from source and checked against the layer rules below, so an upward import
 * fails here rather than in a review. Also: no file in runtime/ or web-admin/ names a built-in
 * Hand; the composition root hands them the catalog (hands/catalog.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { BUILTIN_HANDS } from '../hands/catalog.ts';

const repo = join(import.meta.dirname, '..');
const SHIPPED = ['runtime', 'hands', 'drivers', 'web-admin', 'provisioning', 'image'];

/** the layer a file belongs to, most specific first */
export function layerOf(file: string): string {
  if (file.startsWith('runtime/core/')) return 'core';
  if (file.startsWith('runtime/worker/')) return 'worker';
  if (file.startsWith('runtime/host/')) return 'host';
  if (file.startsWith('runtime/cli/')) return 'cli';
  if (file.startsWith('runtime/')) return 'runtime';
  if (file.startsWith('hands/sdk/')) return 'sdk';
  if (file === 'hands/catalog.ts') return 'catalog';
  if (file.startsWith('hands/')) return `hand:${file.split('/')[1]}`;
  if (file.startsWith('drivers/')) return 'drivers';
  if (file.startsWith('web-admin/')) return 'web-admin';
  if (file.startsWith('provisioning/')) return 'provisioning';
  if (file.startsWith('image/')) return 'image';
  return 'other';
}

/**
 * What each layer may import (besides itself). A Hand imports the SDK, the core and its own
 * folder (drivers/types.ts for reading types); the runtime never imports a Hand, the web admin,
 * provisioning or the image builder; only the composition root (runtime/host) and the CLI front
 * end wire everything.
 */
const ALLOWED: Record<string, (target: string, targetFile: string) => boolean> = {
  core: () => false,
  sdk: (t) => t === 'core',
  drivers: (t) => t === 'core',
  worker: (t) => t === 'core',
  runtime: (t) => ['core', 'sdk', 'drivers'].includes(t),
  'web-admin': (t) => ['core', 'sdk', 'drivers', 'runtime'].includes(t),
  provisioning: (t) => ['core', 'runtime'].includes(t),
  catalog: (t) => t === 'sdk' || t === 'core' || t.startsWith('hand:'),
  image: (t) => !['host', 'cli'].includes(t),
  host: () => true,
  cli: () => true,
};
const allowedForHand = (t: string, targetFile: string): boolean =>
  t === 'sdk' || t === 'core' || targetFile === 'drivers/types.ts';

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(join(repo, dir), { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || e.name === 'dist') continue;
      yield* sources(p);
    } else if (/\.(ts|tsx)$/.test(e.name) && !e.name.endsWith('.d.ts')) yield p;
  }
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|^import\s*['"](\.{1,2}\/[^'"]+)['"]/gm;

export function importsOf(file: string): string[] {
  const src = readFileSync(join(repo, file), 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    out.push(normalize(join(dirname(file), spec)));
  }
  return out;
}

test('imports point one way: core ← sdk, drivers, worker ← runtime ← web-admin, provisioning ← host, cli', () => {
  const bad: string[] = [];
  let checked = 0;
  for (const top of SHIPPED) {
    for (const file of sources(top)) {
      const from = layerOf(file);
      // the web page is browser code built on its own (its own tsconfig); its imports are checked the same way
      for (const target of importsOf(file)) {
        const rel = relative(repo, join(repo, target));
        if (rel.startsWith('..') || rel.startsWith('node_modules')) continue;
        const to = layerOf(rel);
        checked++;
        if (to === from) continue;
        const ok = from.startsWith('hand:') ? allowedForHand(to, rel) : (ALLOWED[from] ?? (() => false))(to, rel);
        if (!ok) bad.push(`${file} (${from}) → ${rel} (${to})`);
      }
    }
  }
  assert.ok(checked > 300, `read ${checked} imports`);
  assert.deepEqual(bad, [], `imports against the layer rules:\n${bad.join('\n')}`);
});

test('the checker sees an upward import (it can fail)', () => {
  assert.equal(layerOf('runtime/api/areas.ts'), 'runtime');
  assert.equal(ALLOWED.runtime!('web-admin', 'web-admin/server.ts'), false);
  assert.equal(ALLOWED.core!('runtime', 'runtime/log.ts'), false);
  assert.equal(allowedForHand('runtime', 'runtime/api/areas.ts'), false);
  assert.equal(allowedForHand('drivers', 'drivers/types.ts'), true);
  assert.ok(
    importsOf('runtime/host/kernel.ts').some((p) => p.startsWith('web-admin/')),
    'the composition root imports the web admin',
  );
});

test('no file in runtime/ or web-admin/ names a built-in Hand (the composition root passes the catalog)', () => {
  const names = BUILTIN_HANDS.map((h) => h.id);
  assert.ok(names.length > 0);
  const word = new RegExp(`\\b(${names.join('|')})\\b`, 'i');
  const bad: string[] = [];
  for (const top of ['runtime', 'web-admin']) {
    for (const file of sources(top)) {
      if (file.startsWith('runtime/host/') || file.startsWith('runtime/cli/')) continue;
      const lines = readFileSync(join(repo, file), 'utf8').split('\n');
      lines.forEach((l, i) => {
        if (word.test(l)) bad.push(`${file}:${i + 1}: ${l.trim().slice(0, 120)}`);
      });
    }
  }
  assert.deepEqual(bad, [], `files that name a built-in Hand:\n${bad.join('\n')}`);
});
