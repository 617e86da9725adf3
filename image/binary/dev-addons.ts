/**
 * `npm ci`'s postinstall: makes onoff's epoll addon load on the project's own Node.
 *
 * epoll is a NAN addon, tied to one Node ABI, with no prebuilds. npm builds it while
 * installing with whatever Node runs npm (the machine's, e.g. Node 20), but Talon runs on the
 * Node that package.json brings (node_modules/node-linux-<arch>, Node 26). When the built
 * addon does not load there, it is rebuilt with node-gyp against that Node's own headers
 * (they ship in the same package), the way image/binary/addons.ts builds it for the binary.
 * Only the GPIO driver needs epoll: a failure here is a warning, never a failed install.
 */
import { copyFileSync, existsSync, readFileSync, renameSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildEpoll } from './addons.ts';
import type { Arch } from './node-dist.ts';

const root = join(import.meta.dirname, '..', '..');
const arch: Arch = process.arch === 'arm64' ? 'arm64' : 'x64';
const pkgDir = join(root, 'node_modules', `node-linux-${arch}`);
const node = join(pkgDir, 'bin', 'node');
const addon = join(root, 'node_modules', 'epoll', 'build', 'Release', 'epoll.node');

function loads(file: string): boolean {
  const r = spawnSync(node, ['-e', 'process.dlopen({ exports: {} }, process.argv[1])', file], { stdio: 'ignore' });
  return r.status === 0;
}

try {
  if (!existsSync(node) || !existsSync(join(root, 'node_modules', 'epoll', 'binding.gyp'))) process.exit(0);
  if (existsSync(addon) && loads(addon)) process.exit(0);
  const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const built = buildEpoll(root, { arch, version, dir: pkgDir, node }, (s) => console.log(`postinstall: ${s}`));
  copyFileSync(built, `${addon}.tmp`);
  renameSync(`${addon}.tmp`, addon);
  if (!loads(addon)) throw new Error(`the rebuilt ${addon} still does not load on Node ${version}`);
} catch (err) {
  console.warn(
    `postinstall: onoff's epoll addon could not be built for the project's Node; the GPIO driver will not start:\n  ${(err as Error).message}`,
  );
}
