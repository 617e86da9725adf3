/**
 * Shared by the image tests and the image benchmark: the arm64 binary, a fleet folder whose
 * broker the qemu guest reaches at 10.0.2.2, `talon image build` through the CLI, and a qemu
 * -M virt boot of a generic-arm64 image (direct kernel boot, kernel and initrd read out of
 * the image with debugfs, the guest's 8080 forwarded to a free host port).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../helpers/daemon.ts';
import { freePort } from '../helpers/ports.ts';
import { initFleet, type Fleet } from '../../provisioning/fleet/keys.ts';
import { cut, extDump, extList, partitions } from './readback.ts';

export const ARM64_BINARY = join(REPO, 'dist', 'bin', 'talon-linux-arm64');

/** Why the image tests cannot run here, or null. */
export function imageSkipReason(): string | null {
  if (process.platform !== 'linux') return 'image builds need Linux';
  if (process.getuid?.() !== 0) return 'image builds need root (test/run.sh runs as root in CI)';
  return null;
}

export function ensureArm64Binary(): string {
  if (!existsSync(ARM64_BINARY)) {
    const r = spawnSync('npm', ['run', '--silent', 'build:binary', '--', '--arch', 'arm64', '--no-sizes'], {
      cwd: REPO,
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error('npm run build:binary -- --arch arm64 failed');
  }
  return ARM64_BINARY;
}

/** A fleet whose broker listens on every interface at `port` (the guest sees the host as 10.0.2.2). */
export function guestFleet(dir: string, port: number): Fleet {
  return initFleet(dir, {
    fleetId: 'image-test',
    brokerUrl: `mqtt://10.0.2.2:${port}`,
    ...(process.getuid?.() === 0 ? { brokerRunAs: 'root' } : {}),
  });
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function talonCli(args: string[], timeoutMs = 30 * 60_000): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'runtime', 'cli', 'main.ts'), ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface Built {
  raw: string;
  compressed: string;
  sha256File: string;
  sizeBytes: number;
  compressedBytes: number;
  kernel: string;
  partitions: {
    boot: { start: number; sectors: number; partuuid: string };
    root: { start: number; sectors: number; partuuid: string };
  };
}

export function buildWithCli(board: string, fleetDir: string, out: string, binary = ARM64_BINARY): Built {
  const r = talonCli([
    'image',
    'build',
    '--board',
    board,
    '--fleet',
    fleetDir,
    '--out',
    out,
    '--binary',
    binary,
    '--keep-raw',
    '--json',
  ]);
  if (r.status !== 0)
    throw new Error(`talon image build --board ${board} exited ${r.status}:\n${r.stderr.slice(-4000)}`);
  return JSON.parse(r.stdout) as Built;
}

export interface Guest {
  httpPort: number;
  consoleFile: string;
  console(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Boots a generic-arm64 image in qemu (the image itself is not changed: -snapshot). */
export async function bootGuest(image: string, work: string): Promise<Guest> {
  const table = partitions(image);
  const rootPart = table.partitions[1]!;
  const rootFs = cut(image, rootPart, work, 'root-for-kernel.ext4');
  const version = extList(rootFs, '/boot')
    .find((n) => n.startsWith('vmlinuz-'))
    ?.slice('vmlinuz-'.length);
  if (!version) throw new Error('no /boot/vmlinuz-* in the image');
  const kernel = join(work, 'vmlinuz');
  const initrd = join(work, 'initrd.img');
  extDump(rootFs, `/boot/vmlinuz-${version}`, kernel);
  extDump(rootFs, `/boot/initrd.img-${version}`, initrd);
  spawnSync('rm', ['-f', rootFs]);
  const partuuid = `${table.id.replace(/^0x/, '')}-02`;
  const httpPort = await freePort();
  const consoleFile = join(work, 'console.log');
  const log = createWriteStream(consoleFile);
  const qemu: ChildProcess = spawn(
    'qemu-system-aarch64',
    [
      '-M',
      'virt',
      '-cpu',
      'cortex-a72',
      '-smp',
      '2',
      '-m',
      '1536',
      '-nographic',
      '-no-reboot',
      '-snapshot',
      '-kernel',
      kernel,
      '-initrd',
      initrd,
      '-append',
      `console=ttyAMA0 root=PARTUUID=${partuuid} rootfstype=ext4 rootwait net.ifnames=0 panic=-1 systemd.journald.forward_to_console=1`,
      '-drive',
      `if=none,file=${image},format=raw,id=hd`,
      '-device',
      'virtio-blk-pci,drive=hd',
      '-netdev',
      `user,id=n,hostfwd=tcp:127.0.0.1:${httpPort}-:8080`,
      '-device',
      'virtio-net-pci,netdev=n,romfile=',
      '-device',
      'virtio-rng-pci',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  qemu.stdout!.pipe(log);
  qemu.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) => qemu.once('exit', (code) => resolve(code)));
  return {
    httpPort,
    consoleFile,
    exited,
    console: () => (existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8') : ''),
    async stop() {
      if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGTERM');
      await exited;
      log.end();
    },
  };
}
