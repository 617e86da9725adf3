/** The Talon binary an image carries: where it is by default, and that it is an ELF for the board. */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import { distDir, isBundled } from '../../runtime/paths.ts';

const MACHINE: Record<string, number> = { arm64: 183, x64: 62 };

/** dist/bin/talon-linux-<arch> in a checkout (from source or dist/talon.cjs), else next to the running binary. */
export function defaultBinary(arch = 'arm64'): string {
  const inDist = join(distDir(), 'bin', `talon-linux-${arch}`);
  if (!isBundled || existsSync(inDist)) return inDist;
  return join(resolve(process.execPath, '..'), `talon-linux-${arch}`);
}

export function checkBinary(file: string, arch: 'arm64' | 'x64'): void {
  const hint = `build it with \`npm run build:binary -- --arch ${arch}\` (or give --binary PATH)`;
  if (!existsSync(file)) throw new TalonError('IMAGE_BINARY_MISSING', `no Talon binary at ${file}: ${hint}`);
  const head = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  if (head.readUInt32BE(0) !== 0x7f454c46)
    throw new TalonError('IMAGE_BINARY_MISSING', `${file} is not a Linux executable (no ELF header): ${hint}`);
  const machine = head.readUInt16LE(18);
  if (machine !== MACHINE[arch]) {
    const found = Object.entries(MACHINE).find(([, m]) => m === machine)?.[0] ?? `machine ${machine}`;
    throw new TalonError('IMAGE_BINARY_MISSING', `${file} is a ${found} executable; the image needs ${arch}: ${hint}`);
  }
}
