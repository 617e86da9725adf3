/**
 * `talon image`: a flashable SD-card image for Raspberry Pi class boards (and qemu), and an
 * overlay tar for boards that keep their vendor root filesystem (Jetson L4T). See image/disk/.
 */
import { parseSubcommand, plural, type CommandSpec, type Io } from '../args.ts';
import { TalonError } from '../../core/errors.ts';
import { reportError } from '../main.ts';

export const spec: CommandSpec = {
  name: 'talon image',
  summary: "Build a device image (Debian bookworm arm64 + Talon + the fleet's bootstrap) or a rootfs overlay tar.",
  subcommands: [
    { name: 'build', summary: 'a partitioned, compressed disk image for rpi4, rpi5 or generic-arm64' },
    {
      name: 'overlay',
      summary: 'a tar of the binary, unit and config to unpack on an existing root filesystem (Jetson/L4T)',
    },
  ],
  notes: 'Exit codes: 0 ok, 1 the build failed, 2 bad input (board, fleet folder, binary, size).',
};

const BOARD_LIST = 'rpi4, rpi5, generic-arm64';

const subspecs: Record<string, CommandSpec> = {
  build: {
    name: 'talon image build',
    summary:
      "Assemble a disk image without loop devices or mounts: a FAT32 boot partition and an ext4 root with Debian bookworm arm64 (mmdebstrap, cached), the Talon binary, a hardened systemd unit and the fleet's bootstrap config. Writes OUT.zst (or .xz) and OUT.zst.sha256.",
    options: {
      board: { type: 'string', value: 'BOARD', description: `one of ${BOARD_LIST}` },
      fleet: {
        type: 'string',
        value: 'DIR',
        description:
          'the fleet folder (`talon fleet init --out DIR`): its device-bootstrap.json goes into /etc/talon/config.yaml',
      },
      out: { type: 'string', value: 'FILE', description: 'the image, like device.img (written as device.img.zst)' },
      binary: {
        type: 'string',
        value: 'PATH',
        description: 'the arm64 Talon binary (default dist/bin/talon-linux-arm64)',
      },
      size: { type: 'string', value: 'SIZE', description: 'the image size (default 2G)' },
      hostname: { type: 'string', value: 'NAME', description: "the device's host name (default talon)" },
      compress: { type: 'string', value: 'zstd|xz|none', description: 'compression (default zstd)' },
      'keep-raw': { type: 'boolean', description: 'keep the uncompressed .img too' },
      'with-browser': {
        type: 'boolean',
        description:
          "Debian's chromium (+ fonts-dejavu-core, ~0.7 GB) and the browser companion (talon-browser.tar next to the binary) in /usr/local/bin/talon-browser/; default: on when --config runs a web-automation Hand",
      },
      config: {
        type: 'string',
        value: 'FILE',
        description: 'the config these devices will be provisioned with (talon fleet provision --config)',
      },
      'browser-companion': {
        type: 'string',
        value: 'PATH',
        description: 'talon-browser.tar (default: next to the binary)',
      },
      json: { type: 'boolean', description: 'print the result as JSON' },
    },
    notes:
      'Needs root, and on a non-arm64 machine qemu-user-static with binfmt_misc for the first build of a root filesystem.\n' +
      'Flash: zstd -d device.img.zst && sudo dd if=device.img of=/dev/sdX bs=4M conv=fsync status=progress',
  },
  overlay: {
    name: 'talon image overlay',
    summary:
      'A tar with /usr/local/bin/talon, talon.service (enabled), /etc/talon/config.yaml and the talon user, to unpack on an existing root filesystem.',
    options: {
      out: { type: 'string', value: 'FILE', description: 'the tar to write, like talon-rootfs.tar' },
      fleet: {
        type: 'string',
        value: 'DIR',
        description: 'the fleet folder whose bootstrap goes into the config (without it: a standalone device)',
      },
      binary: { type: 'string', value: 'PATH', description: 'the Talon binary (default dist/bin/talon-linux-arm64)' },
      arch: { type: 'string', value: 'arm64|x64', description: "the binary's architecture (default arm64)" },
      hostname: { type: 'string', value: 'NAME', description: 'the deviceName in the config (default talon)' },
      'with-browser': {
        type: 'boolean',
        description:
          "the browser companion (talon-browser.tar next to the binary) as /usr/local/bin/talon-browser/; Chromium is the board's package to install",
      },
      'browser-companion': {
        type: 'string',
        value: 'PATH',
        description: 'talon-browser.tar (default: next to the binary)',
      },
    },
    notes:
      "On the device (or into L4T's rootfs before flashing):\n  sudo tar -xpf talon-rootfs.tar -C /\n" +
      '  sudo systemd-sysusers && sudo systemd-tmpfiles --create && sudo systemctl daemon-reload && sudo systemctl enable --now talon',
  },
};

/** Input mistakes exit 2, like a usage error. */
const BAD_INPUT = new Set(['USAGE', 'FLEET_NOT_FOUND', 'IMAGE_BINARY_MISSING']);

export async function main(argv: string[], io: Io): Promise<number> {
  const p = parseSubcommand(spec, subspecs, argv, io);
  if (!p) return 0;
  const v = p.args.values;
  const str = (k: string): string | undefined => v[k] as string | undefined;
  try {
    const { defaultBinary } = await import('../../../image/disk/binary.ts');
    if (p.name === 'overlay') {
      const out = str('out');
      if (!out) throw new TalonError('USAGE', '--out FILE is required (like --out talon-rootfs.tar)');
      const arch = str('arch') ?? 'arm64';
      if (arch !== 'arm64' && arch !== 'x64')
        throw new TalonError('USAGE', `--arch must be arm64 or x64, got "${arch}"`);
      const { buildOverlay } = await import('../../../image/disk/overlay.ts');
      const fleet = str('fleet');
      const hostname = str('hostname');
      const r = await buildOverlay({
        out,
        arch,
        binary: str('binary') ?? defaultBinary(arch),
        ...(fleet !== undefined ? { fleet } : {}),
        ...(hostname !== undefined ? { hostname } : {}),
        ...(v['with-browser'] === true ? { withBrowser: true } : {}),
        ...(str('browser-companion') !== undefined ? { browserCompanion: str('browser-companion')! } : {}),
      });
      io.out(
        `${r.file}: ${(r.bytes / 1024 ** 2).toFixed(1)} MB, ${plural(r.entries.length, 'entry', 'entries')}${fleet ? '' : ' (standalone: no --fleet)'}\n`,
      );
      return 0;
    }
    (await import('../../../image/disk/boards.ts')).board(str('board'));
    const out = str('out');
    if (!out) throw new TalonError('USAGE', '--out FILE is required (like --out device.img)');
    const { buildImage, parseSize, BUILD_STEPS } = await import('../../../image/disk/assemble.ts');
    const { Progress } = await import('../../../image/disk/progress.ts');
    const compress = str('compress') ?? 'zstd';
    if (compress !== 'zstd' && compress !== 'xz' && compress !== 'none')
      throw new TalonError('USAGE', `--compress must be zstd, xz or none, got "${compress}"`);
    const size = str('size');
    const hostname = str('hostname');
    if (hostname !== undefined && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(hostname))
      throw new TalonError('USAGE', `"${hostname}" is not a host name (letters, digits and -)`);
    const config = str('config');
    const companion = str('browser-companion');
    const json = v.json === true;
    const progress = new Progress(BUILD_STEPS, {
      write: json ? (s) => io.err(s) : (s) => io.out(s),
      tty: !json && process.stdout.isTTY === true,
    });
    const r = await buildImage({
      board: str('board'),
      fleet: str('fleet'),
      out,
      binary: str('binary') ?? defaultBinary('arm64'),
      compress,
      keepRaw: v['keep-raw'] === true,
      progress,
      ...(size !== undefined ? { sizeBytes: parseSize(size) } : {}),
      ...(hostname !== undefined ? { hostname } : {}),
      ...(v['with-browser'] === true ? { withBrowser: true } : {}),
      ...(config !== undefined
        ? { provisionConfig: (await import('../../../provisioning/fleet/bundle.ts')).loadBundleConfig(config) }
        : {}),
      ...(companion !== undefined ? { browserCompanion: companion } : {}),
    });
    if (json) io.out(`${JSON.stringify(r, null, 2)}\n`);
    else {
      progress.finish(
        `image for ${r.board} (kernel ${r.kernel}): ${[r.compressed, r.raw].filter(Boolean).join(' and ')}`,
      );
      if (r.compressed)
        io.out(
          `flash it: zstd -d ${r.compressed} -o ${r.raw ?? 'device.img'} && sudo dd if=${r.raw ?? 'device.img'} of=/dev/sdX bs=4M conv=fsync status=progress\n`.replace(
            /zstd -d (\S+\.xz)/,
            'xz -dk $1',
          ),
        );
    }
    return 0;
  } catch (err) {
    const code = reportError(err, io);
    return err instanceof TalonError && BAD_INPUT.has(err.code) ? 2 : code;
  }
}
