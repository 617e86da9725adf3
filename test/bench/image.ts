/**
 * `node --import tsx test/bench/image.ts` (or `npm run bench -- image`): a generic-arm64 image
 * built with `talon image build` (the root filesystem from .cache/rootfs/ when there): its size
 * raw (nominal and the bytes actually used) and compressed, the build time, and the time from
 * power-on (qemu -M virt started, TCG emulation on this x64 host) to the first 200 from
 * /healthz through the forwarded port. Needs root, like the build.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIfMain, sleep } from './lib.ts';
import { bootGuest, buildWithCli, ensureArm64Binary, guestFleet, imageSkipReason } from '../image/fixture.ts';

const mb = (n: number): string => `${(n / 1024 ** 2).toFixed(0)} MB`;

export async function imageRows(say: (line: string) => void): Promise<void> {
  const skip = imageSkipReason();
  if (skip) {
    say(`| device image | skipped: ${skip} | | | |`);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'talon-bench-image-'));
  try {
    const binary = ensureArm64Binary();
    guestFleet(join(work, 'fleet'), 1883);
    mkdirSync(join(work, 'out'));
    const t0 = performance.now();
    const b = buildWithCli('generic-arm64', join(work, 'fleet'), join(work, 'out', 'device.img'), binary);
    const buildS = (performance.now() - t0) / 1000;
    const used = statSync(b.raw).blocks * 512;
    say(`| generic-arm64 image: raw | ${mb(b.sizeBytes)} (${mb(used)} written) | | | |`);
    say(`| generic-arm64 image: compressed (zstd -6) | ${mb(b.compressedBytes)} | | | |`);
    say(`| generic-arm64 image: build time, root filesystem cached | ${buildS.toFixed(0)} s | | | |`);
    const guest = await bootGuest(b.raw, work);
    const start = performance.now();
    try {
      let ms = -1;
      while (performance.now() - start < 15 * 60_000) {
        const ok = await fetch(`http://127.0.0.1:${guest.httpPort}/healthz`, {
          signal: AbortSignal.timeout(3000),
        }).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) {
          ms = performance.now() - start;
          break;
        }
        await sleep(500);
      }
      if (ms < 0) throw new Error(`no /healthz from the guest; console in ${guest.consoleFile}`);
      say(`| power-on (qemu -M virt, TCG on x64) → first 200 from /healthz | ${(ms / 1000).toFixed(1)} s | | | |`);
    } finally {
      await guest.stop();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await runIfMain(import.meta.url, imageRows);
