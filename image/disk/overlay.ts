/**
 * `talon image overlay`: Talon as a tar to unpack on an existing root filesystem (Jetson's
 * L4T, a board's vendor image): the binary, the unit (enabled), the config, the user. Files
 * are root-owned in the tar whoever builds it; written to a temp name and renamed at the end.
 *
 *   sudo tar -xpf talon-rootfs.tar -C /        # or -C /path/to/Linux_for_Tegra/rootfs before flashing
 *   sudo systemd-sysusers && sudo systemd-tmpfiles --create && sudo systemctl daemon-reload && sudo systemctl enable --now talon
 */
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { TalonError } from '../../runtime/core/errors.ts';
import { deviceConfig, fleetBootstrap, talonLayer, writeLayer } from './talon-files.ts';
import { checkBinary } from './binary.ts';
import { run } from './progress.ts';
import { checkSpace } from './assemble.ts';

export interface OverlayOptions {
  out: string;
  binary: string;
  fleet?: string;
  arch?: 'arm64' | 'x64';
  hostname?: string;
}

export async function buildOverlay(opts: OverlayOptions): Promise<{ file: string; bytes: number; entries: string[] }> {
  const out = resolve(opts.out);
  if (!existsSync(dirname(out))) throw new TalonError('USAGE', `the output folder ${dirname(out)} does not exist`);
  const bootstrap = opts.fleet !== undefined ? fleetBootstrap(resolve(opts.fleet)) : null;
  checkBinary(opts.binary, opts.arch ?? 'arm64');
  const binBytes = statSync(opts.binary).size;
  checkSpace([
    { where: dirname(out), bytes: binBytes + 1024 * 1024, what: 'the overlay tar' },
    { where: tmpdir(), bytes: binBytes + 1024 * 1024, what: 'staging' },
  ]);
  const work = mkdtempSync(join(tmpdir(), 'talon-overlay-'));
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${randomBytes(3).toString('hex')}`);
  try {
    const layer = talonLayer({ binary: opts.binary, config: deviceConfig(bootstrap, opts.hostname ?? 'talon') });
    writeLayer(work, layer);
    const entries = layer.map((e) => `.${e.path}`);
    await run(
      'tar',
      ['-cf', tmp, '--numeric-owner', '--owner=0', '--group=0', '--no-recursion', '-C', work, ...entries],
      null,
      { label: 'tar' },
    );
    renameSync(tmp, out);
    return { file: out, bytes: statSync(out).size, entries };
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
