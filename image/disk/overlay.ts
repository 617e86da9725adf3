/**
 * `talon image overlay`: Talon as a tar to unpack on an existing root filesystem (Jetson's
 * L4T, a board's vendor image): the binary, the unit (enabled), the config, the user. Files
 * are root-owned in the tar whoever builds it; written to a temp name and renamed at the end. With `withBrowser`, the
 * browser companion (talon-browser.tar, ./browser.ts) goes in as /usr/local/bin/talon-browser/; Chromium itself is
 * the board's own package to install (L4T: its chromium, or TALON_CHROMIUM pointing at one).
 *
 *   sudo tar -xpf talon-rootfs.tar -C /        # or -C /path/to/Linux_for_Tegra/rootfs before flashing
 *   sudo systemd-sysusers && sudo systemd-tmpfiles --create && sudo systemctl daemon-reload && sudo systemctl enable --now talon
 */
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { TalonError } from '../../runtime/core/errors.ts';
import { BINARY_PATH, deviceConfig, fleetBootstrap, talonLayer, writeLayer } from './talon-files.ts';
import { checkBinary } from './binary.ts';
import { BROWSER_DIR, browserCompanionTar } from './browser.ts';
import { run } from './progress.ts';
import { checkSpace } from './assemble.ts';

export interface OverlayOptions {
  out: string;
  binary: string;
  fleet?: string;
  arch?: 'arm64' | 'x64';
  hostname?: string;
  /** the browser companion in the tar too (default: its tar next to the binary, or `browserCompanion`) */
  withBrowser?: boolean;
  browserCompanion?: string;
}

export async function buildOverlay(opts: OverlayOptions): Promise<{ file: string; bytes: number; entries: string[] }> {
  const out = resolve(opts.out);
  if (!existsSync(dirname(out))) throw new TalonError('USAGE', `the output folder ${dirname(out)} does not exist`);
  const bootstrap = opts.fleet !== undefined ? fleetBootstrap(resolve(opts.fleet)) : null;
  checkBinary(opts.binary, opts.arch ?? 'arm64');
  const companion = opts.withBrowser ? browserCompanionTar(opts.binary, opts.browserCompanion) : null;
  const binBytes = statSync(opts.binary).size + (companion ? statSync(companion).size : 0);
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
    if (companion) {
      await run('tar', ['-xf', companion, '--no-same-owner', '-C', join(work, dirname(BINARY_PATH))], null, {
        label: 'unpacking the browser companion',
      });
      if (!existsSync(join(work, BROWSER_DIR, 'index.cjs')))
        throw new TalonError('IMAGE_BUILD', `${companion} did not unpack into ${BROWSER_DIR}/index.cjs`);
      await run('tar', ['-rf', tmp, '--numeric-owner', '--owner=0', '--group=0', '-C', work, `.${BROWSER_DIR}`], null, {
        label: 'tar',
      });
      entries.push(`.${BROWSER_DIR}/`);
    }
    renameSync(tmp, out);
    return { file: out, bytes: statSync(out).size, entries };
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
