/**
 * Native addons, found the same way in every form Talon runs in. From source and from the
 * bundle next to node_modules, node-gyp-build picks the prebuild for this platform from the
 * package's folder. (The single executable carries the prebuilds as assets and loads them
 * with process.dlopen; see image/.) The bundler points classic-level's `binding.js` here, so
 * the rest of classic-level is bundled and covered by the code cache.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const requireHere = createRequire(import.meta.url);

export function loadAddon(pkg: string): unknown {
  const dir = dirname(requireHere.resolve(`${pkg}/package.json`));
  const nodeGypBuild = requireHere('node-gyp-build') as (dir: string) => unknown;
  return nodeGypBuild(dir);
}
