/**
 * The native addons the binary carries, for one architecture, as `native/<name>.node`
 * (the names runtime/native.ts looks for):
 * - classic-level and @serialport/bindings-cpp: N-API prebuilds shipped in their packages
 *   (any Node version);
 * - onoff's epoll: a NAN addon (tied to one Node ABI) with no prebuilds, so it is compiled
 *   here with node-gyp against the headers of the very Node the binary is made of; for arm64
 *   with Debian's cross compiler (g++-aarch64-linux-gnu). Cached in .cache/epoll/.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, cpSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { addonFileName } from '../../runtime/native.ts';
import type { Arch, NodeDist } from './node-dist.ts';

const PREBUILDS: Record<string, Record<Arch, string>> = {
  'classic-level': {
    x64: 'node_modules/classic-level/prebuilds/linux-x64/classic-level.node',
    arm64: 'node_modules/classic-level/prebuilds/linux-arm64/classic-level.armv8.node',
  },
  '@serialport/bindings-cpp': {
    x64: 'node_modules/@serialport/bindings-cpp/prebuilds/linux-x64/@serialport+bindings-cpp.glibc.node',
    arm64: 'node_modules/@serialport/bindings-cpp/prebuilds/linux-arm64/@serialport+bindings-cpp.armv8.glibc.node',
  },
};

/** npm's own node-gyp (every npm carries one), next to the npm that runs this build */
function nodeGyp(): string {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  const found = candidates.find((c): c is string => !!c && existsSync(c));
  if (!found) throw new Error('node-gyp not found (it comes with npm); set npm_config_node_gyp to its bin/node-gyp.js');
  return found;
}

const CROSS: Record<Arch, { cc: string; cxx: string; pkg: string }> = {
  arm64: { cc: 'aarch64-linux-gnu-gcc', cxx: 'aarch64-linux-gnu-g++', pkg: 'g++-aarch64-linux-gnu' },
  x64: { cc: 'x86_64-linux-gnu-gcc', cxx: 'x86_64-linux-gnu-g++', pkg: 'g++-x86-64-linux-gnu' },
};

function hostArch(): Arch {
  return process.arch === 'arm64' ? 'arm64' : 'x64';
}

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** epoll.node for `dist`'s architecture and Node ABI, built once */
export function buildEpoll(root: string, dist: NodeDist, log: (s: string) => void = () => {}): string {
  const out = join(root, '.cache', 'epoll', `${dist.arch}-node${dist.version}`, 'epoll.node');
  if (existsSync(out)) return out;
  const work = join(root, '.cache', 'epoll', `build-${dist.arch}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const src = join(root, 'node_modules', 'epoll');
  cpSync(join(src, 'binding.gyp'), join(work, 'binding.gyp'));
  cpSync(join(src, 'src'), join(work, 'src'), { recursive: true });
  // under `npm run`/`npm test`, npm exports its config as npm_config_* (on this machine
  // nodedir=/usr, the host Node's headers), and node-gyp lets those beat --nodedir: drop them
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)),
  );
  Object.assign(env, { NODE_PATH: join(root, 'node_modules'), V: '0' });
  if (dist.arch !== hostArch()) {
    const cross = CROSS[dist.arch];
    if (!onPath(cross.cxx))
      throw new Error(`cross-compiling epoll for ${dist.arch} needs ${cross.cxx} (apt-get install ${cross.pkg})`);
    Object.assign(env, { CC: cross.cc, CXX: cross.cxx, LINK: cross.cxx, AR: cross.cc.replace(/gcc$/, 'ar') });
  }
  log(`compiling epoll for linux-${dist.arch}, Node ${dist.version}`);
  try {
    execFileSync(process.execPath, [nodeGyp(), 'rebuild', `--nodedir=${dist.dir}`, `--arch=${dist.arch}`, '--jobs=2'], {
      cwd: work,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as { stderr?: Buffer; stdout?: Buffer };
    throw new Error(
      `node-gyp could not build epoll for ${dist.arch}:\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`,
    );
  }
  mkdirSync(dirname(out), { recursive: true });
  copyFileSync(join(work, 'build', 'Release', 'epoll.node'), `${out}.tmp`);
  renameSync(`${out}.tmp`, out);
  rmSync(work, { recursive: true, force: true });
  return out;
}

/** asset name (native/<name>.node) → file on disk, for one architecture */
export function nativeAssets(root: string, dist: NodeDist, log?: (s: string) => void): Record<string, string> {
  const assets: Record<string, string> = {};
  for (const [pkg, perArch] of Object.entries(PREBUILDS)) {
    const file = join(root, perArch[dist.arch]);
    if (!existsSync(file)) throw new Error(`${pkg} has no prebuild for linux-${dist.arch} at ${file}`);
    assets[`native/${addonFileName(pkg)}`] = file;
  }
  assets[`native/${addonFileName('epoll')}`] = buildEpoll(root, dist, log);
  return assets;
}
