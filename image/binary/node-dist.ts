/**
 * The official Node binaries and headers, from the npm registry's node-linux-<arch> packages:
 * fetched once with `npm pack` into .cache/node/, checked against the integrity the
 * registry's metadata gives, unpacked (bin/node and include/node only).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Node 26 LTS: the same Node the project runs on in development and tests (package.json's node-linux-<arch>) */
export const NODE_VERSION = '26.12.1';

export type Arch = 'arm64' | 'x64';
export const ARCHES: readonly Arch[] = ['arm64', 'x64'];

export interface NodeDist {
  arch: Arch;
  version: string;
  /** folder with bin/node and include/node (node-gyp's --nodedir) */
  dir: string;
  node: string;
}

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

export function nodeDist(
  root: string,
  arch: Arch,
  version: string = NODE_VERSION,
  log: (s: string) => void = () => {},
): NodeDist {
  const cache = join(root, '.cache', 'node');
  const name = `node-linux-${arch}`;
  const dir = join(cache, `${name}-${version}`);
  const node = join(dir, 'bin', 'node');
  const marker = join(dir, '.verified');
  if (existsSync(marker) && existsSync(node)) return { arch, version, dir, node };

  mkdirSync(cache, { recursive: true });
  const tgz = join(cache, `${name}-${version}.tgz`);
  const integrityFile = `${tgz}.integrity`;
  let expected: string;
  if (existsSync(integrityFile)) {
    expected = readFileSync(integrityFile, 'utf8').trim();
  } else {
    log(`fetching the registry's metadata for ${name}@${version}`);
    try {
      expected = (
        JSON.parse(run('npm', ['view', `${name}@${version}`, 'dist.integrity', '--json'], cache)) as string
      ).trim();
    } catch (err) {
      throw new Error(`cannot read ${name}@${version} from the npm registry: ${(err as Error).message}`);
    }
    if (!expected.startsWith('sha512-')) throw new Error(`${name}@${version}: the registry gives no sha512 integrity`);
  }
  if (!existsSync(tgz)) {
    log(`npm pack ${name}@${version}`);
    run('npm', ['pack', `${name}@${version}`, '--silent'], cache);
  }
  const actual = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  if (actual !== expected) {
    rmSync(tgz, { force: true });
    throw new Error(
      `${tgz} does not match the registry's integrity (${expected}); it was removed, run the build again`,
    );
  }
  writeFileSync(integrityFile, `${expected}\n`);

  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', tmp, '--strip-components=1', 'package/bin/node', 'package/include'], cache);
  writeFileSync(join(tmp, '.verified'), `${expected}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { arch, version, dir, node };
}
