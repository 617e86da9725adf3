/**
 * `talon image build`: a partitioned disk image made without loop devices or mounts.
 *
 *   MBR (sfdisk): 1 FAT32 boot partition (mkfs.vfat on a file, files put in with mcopy)
 *                 2 ext4 root (mke2fs -d from a staged folder: the cached Debian rootfs + Talon)
 *   the partitions are written at their offsets into a temp file next to the output, which is
 *   renamed only when everything worked, then compressed (zstd or xz) with a .sha256 file.
 *
 * Every check (board, fleet, binary, tools, root, disk space, binfmt) runs before anything
 * is written; a failed build removes its temp files and leaves no partial image behind.
 */
import { randomBytes, createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
  ftruncateSync,
  accessSync,
  constants,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { TalonError } from '../../runtime/core/errors.ts';
import { board as findBoard, type Board, type KernelFiles } from './boards.ts';
import { parse as parseYaml } from 'yaml';
import { buildRootfs, cacheDir, cachedRootfs, checkBinfmt, rootfsSpec } from './rootfs.ts';
import { BINARY_PATH, deviceConfig, fleetBootstrap, systemLayer, talonLayer, writeLayer } from './talon-files.ts';
import { BROWSER_DIR, browserChoice, browserCompanionTar, type BrowserChoice } from './browser.ts';
import { Progress, run, TOOL_PACKAGES } from './progress.ts';
import { checkBinary } from './binary.ts';

export const SECTOR = 512;
/** the first partition starts at 4 MiB (SD card erase blocks) */
export const FIRST_SECTOR = 8192;
export const BOOT_BYTES = 256 * 1024 * 1024;
export const DEFAULT_SIZE = 2 * 1024 ** 3;
/** with the browser: Chromium and its libraries are ~0.7 GB more in the root filesystem */
export const DEFAULT_SIZE_BROWSER = 3 * 1024 ** 3;
/** the root filesystem's files when it is not built yet: without and with the browser */
const ROOTFS_GUESS_BYTES = 1024 ** 3;
const BROWSER_GUESS_BYTES = 800 * 1024 ** 2;
/** what the rootfs cache needs when it has to be built (the tarball and mmdebstrap's working copy) */
const ROOTFS_BUILD_BYTES = 3 * 1024 ** 3;

export type Compression = 'zstd' | 'xz' | 'none';

export interface BuildOptions {
  board: string | undefined;
  fleet: string | undefined;
  out: string;
  binary: string;
  sizeBytes?: number;
  hostname?: string;
  compress?: Compression;
  /** keep the raw .img next to the compressed one */
  keepRaw?: boolean;
  cache?: string;
  progress: Progress;
  /**
   * `--with-browser`: Debian's chromium (and fonts-dejavu-core) in the root filesystem and the browser companion
   * next to the binary; false: never. Default: on when the image's config or `provisionConfig` runs a Hand of
   * module web-automation (./browser.ts)
   */
  withBrowser?: boolean;
  /** the config the devices will be provisioned with (`talon fleet provision --config`), when known */
  provisionConfig?: unknown;
  /** talon-browser.tar (default: next to the binary) */
  browserCompanion?: string;
}

export interface BuildResult {
  raw: string | null;
  compressed: string | null;
  sha256File: string | null;
  sizeBytes: number;
  compressedBytes: number | null;
  board: string;
  kernel: string;
  partitions: {
    boot: { start: number; sectors: number; partuuid: string };
    root: { start: number; sectors: number; partuuid: string };
  };
}

export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(s.trim());
  if (!m) throw new TalonError('USAGE', `"${s}" is not a size (like 2G, 1536M)`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[
    m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'
  ];
  const bytes = Math.floor((Number(m[1]) * mult) / (1024 * 1024)) * 1024 * 1024; // whole MiB
  if (bytes < 1024 ** 3)
    throw new TalonError(
      'USAGE',
      `--size ${s} is too small: an image needs at least 1G (the Debian root filesystem with its kernel is about 700 MB)`,
    );
  return bytes;
}

export const TOOLS = ['sfdisk', 'mkfs.vfat', 'mcopy', 'mmd', 'mke2fs', 'tar', 'dd'];

export function checkTools(tools: string[]): void {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length) {
    const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
    throw new TalonError('IMAGE_TOOL_MISSING', `missing ${missing.join(', ')}: apt-get install ${pkgs.join(' ')}`);
  }
}

function onPath(tool: string): boolean {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

/** Free bytes where `path` (or its nearest existing parent) lives. */
export function freeBytes(path: string): number {
  let p = resolve(path);
  while (!existsSync(p)) p = dirname(p);
  const s = statfsSync(p);
  return Number(s.bavail) * Number(s.bsize);
}

export function checkSpace(
  needs: Array<{ where: string; bytes: number; what: string }>,
  free: (p: string) => number = freeBytes,
): void {
  // needs on the same filesystem add up
  const byFs = new Map<string, { bytes: number; whats: string[]; where: string }>();
  for (const n of needs) {
    let p = resolve(n.where);
    while (!existsSync(p)) p = dirname(p);
    const key = String(statSync(p).dev);
    const cur = byFs.get(key) ?? { bytes: 0, whats: [], where: p };
    cur.bytes += n.bytes;
    cur.whats.push(n.what);
    byFs.set(key, cur);
  }
  for (const { bytes, whats, where } of byFs.values()) {
    const have = free(where);
    if (have < bytes) {
      throw new TalonError(
        'IMAGE_NO_SPACE',
        `not enough disk space: the build needs ${gb(bytes)} at ${where} (${whats.join(', ')}) and ${gb(have)} is free; free some space or pick another --out`,
      );
    }
  }
}

function gb(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GB` : `${Math.ceil(n / 1024 ** 2)} MB`;
}

export function outputNames(out: string, compress: Compression): { raw: string; compressed: string | null } {
  const raw = resolve(out.replace(/\.(zst|xz)$/, ''));
  return { raw, compressed: compress === 'none' ? null : `${raw}.${compress === 'zstd' ? 'zst' : 'xz'}` };
}

/** All the checks, in the order a person fixes them; nothing is written. */
export function preflight(opts: BuildOptions): {
  board: Board;
  bootstrap: ReturnType<typeof fleetBootstrap>;
  sizeBytes: number;
  rootfsFile: string;
  cached: boolean;
  browser: BrowserChoice;
  /** the companion tar when the browser is on */
  browserTar: string | null;
} {
  const b = findBoard(opts.board);
  if (opts.fleet === undefined)
    throw new TalonError(
      'USAGE',
      '--fleet DIR is required: the fleet folder made by `talon fleet init --out DIR` (its device-bootstrap.json goes into the image)',
    );
  const bootstrap = fleetBootstrap(resolve(opts.fleet));
  checkBinary(opts.binary, 'arm64');
  const browser = browserChoice({
    withBrowser: opts.withBrowser,
    configs: [parseYaml(deviceConfig(bootstrap, opts.hostname ?? 'talon')), opts.provisionConfig],
  });
  const browserTar = browser.browser ? browserCompanionTar(opts.binary, opts.browserCompanion) : null;
  const sizeBytes = opts.sizeBytes ?? (browser.browser ? DEFAULT_SIZE_BROWSER : DEFAULT_SIZE);
  const compress = opts.compress ?? 'zstd';
  const names = outputNames(opts.out, compress);
  const outDir = dirname(names.raw);
  if (!existsSync(outDir)) throw new TalonError('USAGE', `the output folder ${outDir} does not exist`);
  checkTools([...TOOLS, ...(compress === 'none' ? [] : [compress])]);
  if (process.getuid?.() !== 0) {
    throw new TalonError(
      'IMAGE_NEEDS_ROOT',
      "building an image needs root: the root filesystem's files keep their owners (root, systemd users) only when unpacked as root; run it with sudo",
    );
  }
  const spec = rootfsSpec(b.family, { browser: browser.browser });
  const cache = opts.cache ?? cacheDir();
  const { file, cached } = cachedRootfs(spec, cache);
  const rootfsBytes = cached
    ? statSync(file).size
    : ROOTFS_GUESS_BYTES + (browser.browser ? BROWSER_GUESS_BYTES : 0) + (browserTar ? statSync(browserTar).size : 0);
  if (rootfsBytes * 1.15 + 64 * 1024 ** 2 > sizeBytes - BOOT_BYTES - FIRST_SECTOR * SECTOR) {
    throw new TalonError(
      'USAGE',
      `--size ${gb(sizeBytes)} is too small for this root filesystem (${gb(rootfsBytes)} of files); give --size ${Math.ceil((rootfsBytes * 1.3 + BOOT_BYTES) / 1024 ** 3)}G or more`,
    );
  }
  checkSpace([
    { where: outDir, bytes: sizeBytes + (compress === 'none' ? 0 : Math.ceil(rootfsBytes * 0.6)), what: 'the image' },
    { where: tmpdir(), bytes: Math.ceil(rootfsBytes * 1.1) + BOOT_BYTES, what: 'the staged root filesystem' },
    ...(cached ? [] : [{ where: cache, bytes: ROOTFS_BUILD_BYTES, what: 'building the root filesystem' }]),
  ]);
  if (!cached) {
    checkTools(['mmdebstrap']);
    checkBinfmt();
  }
  return { board: b, bootstrap, sizeBytes, rootfsFile: file, cached, browser, browserTar };
}

export const BUILD_STEPS = 7;

export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  const pre = preflight(opts);
  const p = opts.progress;
  const compress = opts.compress ?? 'zstd';
  const names = outputNames(opts.out, compress);
  const tag = `.partial-${process.pid}-${randomBytes(3).toString('hex')}`;
  const tmpImage = join(dirname(names.raw), `.${basename(names.raw)}${tag}`);
  const work = mkdtempSync(join(tmpdir(), 'talon-image-'));
  const cleanup = [tmpImage, work];
  try {
    p.begin(
      `root filesystem (Debian bookworm arm64, ${pre.board.family} packages${pre.browser.browser ? ', chromium' : ''})`,
    );
    p.note(`browser ${pre.browser.browser ? 'on' : 'off'}: ${pre.browser.why}`);
    const rootfs = await buildRootfs(
      rootfsSpec(pre.board.family, { browser: pre.browser.browser }),
      p,
      opts.cache ?? cacheDir(),
    );
    p.done();

    const diskId = randomBytes(4).toString('hex');
    const bootPartuuid = `${diskId}-01`;
    const rootPartuuid = `${diskId}-02`;
    const hostname = opts.hostname ?? 'talon';

    p.begin('staging the root filesystem with Talon');
    const root = join(work, 'root');
    mkdirSync(root);
    await run('tar', ['-xpf', rootfs, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', root], p, {
      label: 'unpacking the root filesystem',
    });
    // a mount point: what raspi-firmware's kernel hook copied there in the chroot lives on the boot partition instead
    rmSync(join(root, 'boot', 'firmware'), { recursive: true, force: true });
    writeLayer(root, talonLayer({ binary: opts.binary, config: deviceConfig(pre.bootstrap, hostname) }));
    writeLayer(root, systemLayer({ hostname, rootPartuuid, bootPartuuid }));
    if (pre.browserTar) {
      // talon-browser/ next to the binary, where its launcher looks (root-owned, as the tar says)
      await run('tar', ['-xf', pre.browserTar, '--numeric-owner', '-C', join(root, dirname(BINARY_PATH))], p, {
        label: 'unpacking the browser companion',
      });
      if (!existsSync(join(root, BROWSER_DIR, 'index.cjs')))
        throw new TalonError('IMAGE_BUILD', `${pre.browserTar} did not unpack into ${BROWSER_DIR}/index.cjs`);
    }
    const kernel = findKernel(root);
    p.note(`kernel ${kernel.version}, fleet ${pre.bootstrap.fleet}, broker ${pre.bootstrap.bootstrap.url}`);
    p.done();

    const totalSectors = pre.sizeBytes / SECTOR;
    const bootSectors = BOOT_BYTES / SECTOR;
    const rootStart = FIRST_SECTOR + bootSectors;
    const rootSectors = totalSectors - rootStart;

    p.begin(`boot partition (FAT32, ${BOOT_BYTES / 1024 ** 2} MB, ${pre.board.name})`);
    const bootImg = join(work, 'boot.vfat');
    await run('mkfs.vfat', ['-F', '32', '-n', 'TALONBOOT', '-i', diskId, '-C', bootImg, String(BOOT_BYTES / 1024)], p);
    const files = pre.board.bootFiles(kernel, { partuuid: rootPartuuid });
    const skipped = new Set<string>();
    if (pre.board.warning) p.note(`WARNING: ${pre.board.warning}`);
    const dirs = [...new Set(files.map((f) => dirname(f.name)).filter((d) => d !== '.'))];
    for (const d of dirs) await run('mmd', ['-i', bootImg, `::${d}`], p);
    for (const f of files) {
      let src: string;
      if ('text' in f.from) {
        src = join(work, 'boot-text', f.name);
        mkdirSync(dirname(src), { recursive: true });
        writeFileSync(src, f.from.text);
      } else {
        src = join(root, f.from.rootfs);
        if (!existsSync(src) && f.optional) {
          p.note(`skipped ${f.name}: the root filesystem has no ${f.from.rootfs}`);
          skipped.add(f.name);
          continue;
        }
        if (!existsSync(src))
          throw new TalonError(
            'IMAGE_BUILD',
            `the root filesystem has no ${f.from.rootfs}, which the ${pre.board.name} boot partition needs as ${f.name}`,
          );
      }
      await run('mcopy', ['-o', '-i', bootImg, src, `::${f.name}`], p);
    }
    const placed = files.filter((f) => !skipped.has(f.name));
    p.note(
      `${placed.length} files: ${placed
        .map((f) => f.name)
        .join(', ')
        .slice(0, 200)}`,
    );
    p.done();

    p.begin(`root partition (ext4, ${gb(rootSectors * SECTOR)})`);
    const rootImg = join(work, 'root.ext4');
    await run(
      'mke2fs',
      [
        '-q',
        '-t',
        'ext4',
        '-L',
        'talon-root',
        '-E',
        'root_owner=0:0',
        '-d',
        root,
        '-F',
        rootImg,
        `${rootSectors / 2}k`,
      ],
      p,
      {
        label: 'mke2fs (the root filesystem may not fit: try a bigger --size)',
      },
    );
    rmSync(root, { recursive: true, force: true });
    p.done();

    p.begin(`disk image (MBR, ${gb(pre.sizeBytes)})`);
    const fd = openSync(tmpImage, 'w', 0o644);
    ftruncateSync(fd, pre.sizeBytes);
    closeSync(fd);
    await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', tmpImage], p, {
      input: `label: dos\nlabel-id: 0x${diskId}\nunit: sectors\n\nstart=${FIRST_SECTOR}, size=${bootSectors}, type=c, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n`,
    });
    await placeAt(bootImg, tmpImage, FIRST_SECTOR, p);
    await placeAt(rootImg, tmpImage, rootStart, p);
    rmSync(work, { recursive: true, force: true });
    p.done();

    p.begin(compress === 'none' ? 'no compression' : `compressing (${compress})`);
    let compressed: string | null = null;
    let compressedBytes: number | null = null;
    let sha256File: string | null = null;
    if (names.compressed) {
      const tmpC = `${tmpImage}.${compress}`;
      cleanup.push(tmpC);
      if (compress === 'zstd') await run('zstd', ['-q', '-T0', '-6', '-f', tmpImage, '-o', tmpC], p);
      else await run('sh', ['-c', 'xz -T0 -6 -c "$0" > "$1"', tmpImage, tmpC], p, { label: 'xz' });
      const digest = await sha256(tmpC);
      renameSync(tmpC, names.compressed);
      compressed = names.compressed;
      compressedBytes = statSync(compressed).size;
      sha256File = `${compressed}.sha256`;
      writeFileSync(sha256File, `${digest}  ${basename(compressed)}\n`);
      p.note(`${compressed}: ${gb(compressedBytes)} (sha256 ${digest.slice(0, 16)}…)`);
    }
    p.done();

    p.begin('finishing');
    let raw: string | null = null;
    if (!names.compressed || opts.keepRaw) {
      renameSync(tmpImage, names.raw);
      raw = names.raw;
    } else {
      rmSync(tmpImage, { force: true });
    }
    p.done();
    return {
      raw,
      compressed,
      sha256File,
      sizeBytes: pre.sizeBytes,
      compressedBytes,
      board: pre.board.name,
      kernel: kernel.version,
      partitions: {
        boot: { start: FIRST_SECTOR, sectors: bootSectors, partuuid: bootPartuuid },
        root: { start: rootStart, sectors: rootSectors, partuuid: rootPartuuid },
      },
    };
  } catch (err) {
    for (const f of cleanup) rmSync(f, { recursive: true, force: true });
    throw err;
  }
}

/** The newest /boot/vmlinuz-<version> with its initrd (the kernel's postinst made it). */
export function findKernel(root: string): KernelFiles {
  const versions = readdirSync(join(root, 'boot'))
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const version = versions.at(-1);
  if (!version)
    throw new TalonError(
      'IMAGE_BUILD',
      'the root filesystem has no kernel in /boot (linux-image-arm64 did not install)',
    );
  const k = {
    version,
    vmlinuz: `/boot/vmlinuz-${version}`,
    initrd: `/boot/initrd.img-${version}`,
    dtbDir: `/usr/lib/linux-image-${version}`,
  };
  if (!existsSync(join(root, k.initrd)))
    throw new TalonError('IMAGE_BUILD', `the root filesystem has no ${k.initrd} (initramfs-tools did not run)`);
  return k;
}

/** Copies a partition file into the image at a sector, skipping zero blocks (the image stays sparse). */
async function placeAt(part: string, image: string, sector: number, p: Progress): Promise<void> {
  await run(
    'dd',
    [
      `if=${part}`,
      `of=${image}`,
      'bs=1M',
      `seek=${sector * SECTOR}`,
      'oflag=seek_bytes',
      'conv=notrunc,sparse',
      'status=none',
    ],
    p,
  );
}

export function sha256(file: string): Promise<string> {
  return new Promise((resolveHash, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolveHash(h.digest('hex')));
  });
}
