/**
 * The arm64 Debian root filesystem: mmdebstrap builds it once per package list and keeps it
 * as a tarball under the cache folder (.cache/rootfs/ in a checkout, ~/.cache/talon/rootfs
 * otherwise, or $TALON_IMAGE_CACHE), keyed by a hash of the suite, the board family, the
 * packages and the initramfs settings — a second build with the same list starts from it. The
 * browser (./browser.ts: Chromium and a font) is part of the package list, so an image with it
 * and one without come from two cached root filesystems.
 *
 * Building it on an x64 machine runs arm64 programs (the packages' scripts), which needs the
 * kernel's binfmt_misc with qemu-user-static registered for aarch64 (checkBinfmt).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import { distDir } from '../../runtime/paths.ts';
import { BASE_PACKAGES, familyPackages, INITRAMFS_MODULES, type BoardFamily } from './boards.ts';
import { browserPackages } from './browser.ts';
import { run, type Progress } from './progress.ts';

export const SUITE = 'bookworm';
export const MIRROR = 'http://deb.debian.org/debian';

export interface RootfsSpec {
  suite: string;
  family: BoardFamily;
  packages: string[];
  components: string[];
  initramfs: { modules: string[]; compress: string };
}

/** without the browser the spec (and so the cache key) is what it was before the browser existed */
export function rootfsSpec(family: BoardFamily, opts: { browser?: boolean } = {}): RootfsSpec {
  return {
    suite: SUITE,
    family,
    packages: [...BASE_PACKAGES, ...familyPackages(family), ...browserPackages(opts.browser === true)].sort(),
    components: family === 'rpi' ? ['main', 'non-free-firmware'] : ['main'],
    initramfs: { modules: INITRAMFS_MODULES, compress: 'gzip' },
  };
}

export function rootfsKey(spec: RootfsSpec): string {
  return `${spec.suite}-${spec.family}-${createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16)}`;
}

/** Where cached root filesystems live. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TALON_IMAGE_CACHE) return env.TALON_IMAGE_CACHE;
  const repo = join(distDir(), '..');
  if (existsSync(join(repo, 'package.json')) && existsSync(join(repo, 'image', 'disk')))
    return join(repo, '.cache', 'rootfs');
  return join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'talon', 'rootfs');
}

export function cachedRootfs(spec: RootfsSpec, dir = cacheDir()): { file: string; cached: boolean } {
  const file = join(dir, `${rootfsKey(spec)}.tar`);
  return { file, cached: existsSync(file) };
}

/**
 * arm64 programs run here: natively on arm64, else through binfmt_misc + qemu-aarch64.
 * Mounts binfmt_misc when it is missing and we may (root), then looks for the aarch64 entry.
 */
export function checkBinfmt(opts: { arch?: string; dir?: string; tryMount?: boolean } = {}): void {
  const arch = opts.arch ?? process.arch;
  if (arch === 'arm64') return;
  const dir = opts.dir ?? '/proc/sys/fs/binfmt_misc';
  const tryMount = opts.tryMount ?? (opts.dir === undefined && process.getuid?.() === 0);
  if (tryMount && !existsSync(join(dir, 'status'))) {
    try {
      execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir], { stdio: 'ignore' });
    } catch {
      /* reported below */
    }
  }
  const entry = ['qemu-aarch64', 'aarch64'].map((n) => join(dir, n)).find((f) => existsSync(f));
  if (!entry && tryMount && existsSync(join(dir, 'register'))) {
    try {
      execFileSync('update-binfmts', ['--enable', 'qemu-aarch64'], { stdio: 'ignore' });
    } catch {
      /* reported below */
    }
  }
  const found = ['qemu-aarch64', 'aarch64'].map((n) => join(dir, n)).find((f) => existsSync(f));
  const enabled = found !== undefined && readFileSync(found, 'utf8').startsWith('enabled');
  if (!enabled) {
    throw new TalonError(
      'IMAGE_NO_BINFMT',
      `this ${arch} machine cannot run arm64 programs, which building the arm64 root filesystem needs: no enabled qemu-aarch64 entry in ${dir}.\n` +
        'Install qemu-user-static and binfmt-support (apt-get install qemu-user-static binfmt-support), make sure binfmt_misc is mounted ' +
        '(mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc) and enabled (update-binfmts --enable qemu-aarch64); in a container, do it on the host.',
    );
  }
}

/** Builds the root filesystem tarball with mmdebstrap unless the cache has it; returns its path. */
export async function buildRootfs(spec: RootfsSpec, progress: Progress, dir = cacheDir()): Promise<string> {
  const { file, cached } = cachedRootfs(spec, dir);
  if (cached) {
    progress.note(`root filesystem from the cache: ${file}`);
    return file;
  }
  mkdirSync(dir, { recursive: true });
  const partial = `${file}.partial-${process.pid}`;
  const hooks = join(dir, `${rootfsKey(spec)}.setup.sh`);
  // before any package installs: the initramfs settings (the kernel's postinst builds it)
  writeFileSync(
    hooks,
    [
      '#!/bin/sh',
      'set -e',
      'mkdir -p "$1/etc/initramfs-tools/conf.d"',
      `printf 'MODULES=list\\nCOMPRESS=${spec.initramfs.compress}\\n' > "$1/etc/initramfs-tools/conf.d/talon.conf"`,
      `printf '${spec.initramfs.modules.join('\\n')}\\n' > "$1/etc/initramfs-tools/modules"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  try {
    await run(
      'mmdebstrap',
      [
        // --format: the temp name has no .tar ending to guess it from; --verbose: dpkg's lines feed the status line
        '--arch=arm64',
        '--variant=minbase',
        '--format=tar',
        '--verbose',
        `--components=${spec.components.join(',')}`,
        `--include=${spec.packages.join(',')}`,
        `--setup-hook=sh ${hooks} "$1"`,
        '--dpkgopt=path-exclude=/usr/share/doc/*',
        '--dpkgopt=path-include=/usr/share/doc/*/copyright',
        '--dpkgopt=path-exclude=/usr/share/man/*',
        '--dpkgopt=path-exclude=/usr/share/locale/*',
        '--customize-hook=rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id; touch "$1"/etc/machine-id',
        '--customize-hook=rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*',
        spec.suite,
        partial,
        MIRROR,
      ],
      progress,
      { label: 'mmdebstrap' },
    );
    if (statSync(partial).size < 50 * 1024 * 1024)
      throw new TalonError('IMAGE_BUILD', `mmdebstrap made a suspiciously small root filesystem (${partial})`);
    renameSync(partial, file);
  } finally {
    rmSync(partial, { recursive: true, force: true });
    rmSync(hooks, { force: true });
  }
  return file;
}
