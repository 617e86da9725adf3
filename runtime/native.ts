/**
 * Native addons, found the same way in every form Talon runs in. From source and from the
 * bundle next to node_modules, node-gyp-build picks the prebuild for this platform from the
 * package's folder. The single executable (image/binary/) carries each addon for its
 * architecture as an asset, extracted with the bundle to a cache folder as
 * `native/<name>.node`; there they are loaded with process.dlopen. The bundler points
 * classic-level's `binding.js`, @serialport/bindings-cpp's loader and epoll's loader here, so
 * the rest of those packages is bundled and covered by the code cache.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { isBundled } from './paths.ts';

const requireHere = createRequire(import.meta.url);

/** the file name an addon has in the single executable's `native/` folder */
export function addonFileName(pkg: string): string {
  return `${pkg.replace(/^@/, '').replace(/\//g, '-')}.node`;
}

/**
 * The extracted `native/` folder, when this code runs from one: the bundle files sit at the
 * folder's top (talon-main.cjs, hand-worker.cjs) or one level down (vendor/*.cjs, hands/*.cjs).
 */
function extractedAddon(pkg: string): string | null {
  if (!isBundled) return null;
  const here = import.meta.dirname;
  for (const dir of [join(here, 'native'), join(here, '..', 'native')]) {
    const file = join(dir, addonFileName(pkg));
    if (existsSync(file)) return file;
  }
  return null;
}

export function loadAddon(pkg: string): unknown {
  const extracted = extractedAddon(pkg);
  if (extracted) {
    const mod = { exports: {} as unknown };
    process.dlopen(mod, extracted);
    return mod.exports;
  }
  const dir = dirname(requireHere.resolve(`${pkg}/package.json`));
  const nodeGypBuild = requireHere('node-gyp-build') as (dir: string) => unknown;
  return nodeGypBuild(dir);
}
