/**
 * `talon image build` / `talon image overlay` for real: images for generic-arm64 and rpi4 read
 * back with sfdisk, mtools and debugfs and checked with e2fsck/fsck.vfat; bad input refused
 * before anything is written; and the generic image booted in qemu -M virt, where systemd
 * starts Talon, Talon announces itself on the fleet's mosquitto on the host and answers
 * /healthz through a forwarded port.
 *
 * The first run builds the Debian root filesystems (mmdebstrap, ~5 min each under emulation)
 * into .cache/rootfs/; later runs reuse them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectClient } from '../helpers/mqtt-client.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.ts';
import { freePort } from '../helpers/ports.ts';
import { checkAnnounce, parseEnvelope, provisionTopics } from '../../provisioning/format.ts';
import { loadFleet } from '../../provisioning/fleet/keys.ts';
import { brokerPaths } from '../../provisioning/fleet/broker.ts';
import { checkBinfmt, rootfsKey, rootfsSpec } from '../../image/disk/rootfs.ts';
import { buildImage } from '../../image/disk/assemble.ts';
import { Progress } from '../../image/disk/progress.ts';
import {
  buildWithCli,
  bootGuest,
  ensureArm64Binary,
  guestFleet,
  imageSkipReason,
  talonCli,
  type Built,
} from './fixture.ts';
import { check, cut, extRead, extStat, fatList, fatRead, partitions } from './readback.ts';

const skip = imageSkipReason();
const work = mkdtempSync(join(tmpdir(), 'talon-image-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('talon image', { skip: skip ?? false, timeout: 60 * 60_000 }, () => {
  let binary = '';
  let fleetDir = '';
  let brokerPort = 0;
  const built: Record<string, Built> = {};

  before(async () => {
    binary = ensureArm64Binary();
    brokerPort = await freePort();
    fleetDir = join(work, 'fleet');
    guestFleet(fleetDir, brokerPort);
    for (const board of ['generic-arm64', 'rpi4']) {
      const dir = join(work, board);
      mkdirSync(dir);
      built[board] = buildWithCli(board, fleetDir, join(dir, 'device.img'), binary);
    }
  });

  for (const board of ['generic-arm64', 'rpi4']) {
    test(`${board}: partitions, boot files, root files, fsck`, () => {
      const b = built[board]!;
      const fleet = loadFleet(fleetDir);
      const table = partitions(b.raw);
      assert.equal(table.label, 'dos');
      assert.equal(table.partitions.length, 2);
      const [boot, root] = table.partitions as [(typeof table.partitions)[0], (typeof table.partitions)[0]];
      assert.equal(boot.type, 'c', 'FAT32 LBA boot partition');
      assert.equal(boot.bootable, true);
      assert.equal(root.type, '83', 'Linux root partition');
      assert.equal(boot.start, b.partitions.boot.start);
      assert.equal(root.start, b.partitions.root.start);

      // the boot partition through mtools, in place in the image
      const bootOffset = boot.start * 512;
      const listing = fatList(b.raw, bootOffset);
      const cmdline = fatRead(b.raw, bootOffset, 'cmdline.txt').toString();
      assert.match(cmdline, new RegExp(`root=PARTUUID=${b.partitions.root.partuuid}\\b`));
      assert.match(cmdline, /rootwait/);
      for (const f of ['vmlinuz', 'initrd.img'])
        assert.match(listing, new RegExp(`::/${f.replace('.', '\\.')}\\b`), `${f} on the boot partition`);
      if (board === 'rpi4') {
        for (const f of ['start4.elf', 'fixup4.dat', 'bcm2711-rpi-4-b.dtb', 'config.txt'])
          assert.match(listing, new RegExp(`::/${f.replace(/\./g, '\\.')}`), `${f} on the boot partition`);
        const config = fatRead(b.raw, bootOffset, 'config.txt').toString();
        assert.match(config, /^arm_64bit=1$/m);
        assert.match(config, /^kernel=vmlinuz$/m);
        assert.match(config, /^initramfs initrd\.img followkernel$/m);
        assert.ok(
          fatRead(b.raw, bootOffset, 'start4.elf').length > 1024 * 1024,
          'the real firmware, not an empty file',
        );
      } else {
        assert.match(fatRead(b.raw, bootOffset, 'extlinux/extlinux.conf').toString(), /kernel \/vmlinuz/);
      }

      // partitions cut out: read-only fsck of both, files through debugfs
      const bootFs = cut(b.raw, boot, work, `${board}-boot.vfat`);
      const rootFs = cut(b.raw, root, work, `${board}-root.ext4`);
      try {
        const vfat = check('fsck.vfat', ['-n', bootFs]);
        assert.equal(vfat.status, 0, vfat.output);
        const ext = check('e2fsck', ['-fn', rootFs]);
        assert.equal(ext.status, 0, ext.output);

        assert.ok(
          extRead(rootFs, '/usr/local/bin/talon').equals(readFileSync(binary)),
          'the binary in the image is the built one, byte for byte',
        );
        assert.match(extStat(rootFs, '/usr/local/bin/talon'), /Mode:\s+0755/);
        assert.match(extStat(rootFs, '/usr/local/bin/talon'), /User:\s+0\s+Group:\s+0/);
        const unit = extRead(rootFs, '/etc/systemd/system/talon.service').toString();
        for (const line of [
          'Type=notify',
          'NotifyAccess=all',
          'WatchdogSec=30',
          'User=talon',
          'NoNewPrivileges=yes',
          'ProtectSystem=strict',
          'ProtectHome=yes',
          'PrivateTmp=yes',
          'StateDirectory=talon',
          'Restart=on-failure',
          'ExecStart=/usr/local/bin/talon run --config /etc/talon/config.yaml',
        ]) {
          assert.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), line);
        }
        assert.match(
          extStat(rootFs, '/etc/systemd/system/multi-user.target.wants/talon.service'),
          /Fast link dest: "\.\.\/talon\.service"/,
        );
        const config = extRead(rootFs, '/etc/talon/config.yaml').toString();
        assert.match(config, new RegExp(`anchor: ${fleet.publicKey.toString('base64').replace(/[+/]/g, '\\$&')}`));
        assert.match(config, new RegExp(`url: mqtt://10\\.0\\.2\\.2:${brokerPort}`));
        assert.match(config, /host: 0\.0\.0\.0\n\s+port: 8080/);
        assert.match(config, /dataDir: \/var\/lib\/talon/);
        assert.match(extStat(rootFs, '/etc/talon/config.yaml'), /Mode:\s+0640/);
        assert.match(extRead(rootFs, '/usr/lib/sysusers.d/talon.conf').toString(), /^u talon /m);
        assert.match(
          extRead(rootFs, '/etc/fstab').toString(),
          new RegExp(`PARTUUID=${b.partitions.root.partuuid}\\s+/\\s+ext4`),
        );
        assert.match(extRead(rootFs, '/etc/systemd/network/20-wired.network').toString(), /DHCP=yes/);
        assert.equal(extRead(rootFs, '/etc/hostname').toString(), 'talon\n');
      } finally {
        rmSync(bootFs, { force: true });
        rmSync(rootFs, { force: true });
      }

      // the compressed image and its checksum
      const sum = execFileSync('sha256sum', ['-c', `${b.compressed}.sha256`], {
        cwd: join(work, board),
        encoding: 'utf8',
      });
      assert.match(sum, /device\.img\.zst: OK/);
      assert.ok(b.compressedBytes < b.sizeBytes / 2);
    });
  }

  test('overlay: binary, unit, config and user as a root-owned tar', () => {
    const out = join(work, 'talon-rootfs.tar');
    const r = talonCli(['image', 'overlay', '--out', out, '--fleet', fleetDir, '--binary', binary]);
    assert.equal(r.status, 0, r.stderr);
    const listing = execFileSync('tar', ['-tvf', out], { encoding: 'utf8' });
    for (const f of [
      './usr/local/bin/talon',
      './etc/talon/config.yaml',
      './etc/systemd/system/talon.service',
      './etc/systemd/system/multi-user.target.wants/talon.service -> ../talon.service',
      './usr/lib/sysusers.d/talon.conf',
      './usr/lib/tmpfiles.d/talon.conf',
    ]) {
      assert.ok(listing.includes(f), `${f} in the overlay:\n${listing}`);
    }
    for (const line of listing.trim().split('\n')) assert.match(line, /^\S+ 0\/0 /, `root-owned: ${line}`);
    const x = join(work, 'overlay-x');
    mkdirSync(x);
    execFileSync('tar', ['-xpf', out, '-C', x]);
    assert.ok(readFileSync(join(x, 'usr/local/bin/talon')).equals(readFileSync(binary)));
    assert.match(readFileSync(join(x, 'etc/talon/config.yaml'), 'utf8'), /fleet: image-test/);
  });

  test('bad input: each refused with a clear error before anything is written', () => {
    const out = join(work, 'bad');
    mkdirSync(out);
    const img = join(out, 'device.img');
    const cases: Array<{ args: string[]; status: number; message: RegExp }> = [
      {
        args: ['--board', 'rpi3', '--fleet', fleetDir],
        status: 2,
        message: /unknown board "rpi3"; the boards are: rpi4, rpi5, generic-arm64/,
      },
      {
        args: ['--board', 'rpi4', '--fleet', join(work, 'no-such-fleet')],
        status: 2,
        message: /no fleet folder at .*no-such-fleet.*talon fleet init/,
      },
      {
        args: ['--board', 'rpi4', '--fleet', fleetDir, '--binary', join(work, 'no-binary')],
        status: 2,
        message: /no Talon binary at .*npm run build:binary -- --arch arm64/,
      },
      {
        args: ['--board', 'rpi4', '--fleet', fleetDir, '--size', '100000G'],
        status: 1,
        message: /not enough disk space: the build needs .* GB at .* free/,
      },
    ];
    const partial = join(work, 'partial-fleet');
    cpSync(fleetDir, partial, { recursive: true });
    rmSync(join(partial, 'device-bootstrap.json'));
    cases.push({
      args: ['--board', 'generic-arm64', '--fleet', partial],
      status: 2,
      message: /not a fleet folder: no device-bootstrap\.json/,
    });
    for (const c of cases) {
      const args = c.args.includes('--binary') ? c.args : [...c.args, '--binary', binary];
      const r = talonCli(['image', 'build', ...args, '--out', img]);
      assert.equal(r.status, c.status, `${c.args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, c.message);
      assert.deepEqual(readdirSync(out), [], `${c.args.join(' ')} wrote nothing`);
    }
  });

  test('a build that fails half-way leaves nothing under the output name', async () => {
    // a "cached" root filesystem without a kernel: staging fails after the rootfs step
    const cache = join(work, 'fake-cache');
    const fake = join(work, 'fake-root');
    mkdirSync(join(fake, 'boot'), { recursive: true });
    writeFileSync(join(fake, 'etc-placeholder'), 'x');
    mkdirSync(cache);
    execFileSync('tar', ['-cf', join(cache, `${rootfsKey(rootfsSpec('generic'))}.tar`), '-C', fake, '.']);
    const out = join(work, 'half');
    mkdirSync(out);
    const lines: string[] = [];
    await assert.rejects(
      buildImage({
        board: 'generic-arm64',
        fleet: fleetDir,
        out: join(out, 'device.img'),
        binary,
        cache,
        progress: new Progress(7, { write: (s) => void lines.push(s), tty: false }),
      }),
      (err: { code?: string; message: string }) =>
        err.code === 'IMAGE_BUILD' && /no kernel in \/boot/.test(err.message),
    );
    assert.deepEqual(readdirSync(out), [], 'no image, no temp file');
    assert.match(lines.join(''), /\[2\/7\] staging/, 'it got past the checks');
  });

  test('boot: systemd starts Talon, it announces itself on the fleet broker and answers /healthz', {
    timeout: 12 * 60_000,
  }, async () => {
    const fleet = loadFleet(fleetDir);
    let mosq: Mosquitto | null = null;
    const guestDir = join(work, 'guest');
    mkdirSync(guestDir);
    const guest = await bootGuest(built['generic-arm64']!.raw, guestDir);
    try {
      mosq = await startMosquitto({ configFile: brokerPaths(fleetDir).conf, port: brokerPort });
      const client = await connectClient(mosq.url, {
        username: fleet.operator.username,
        password: fleet.operator.password,
      });
      const announces: Buffer[] = [];
      client.on('message', (_t, payload) => announces.push(payload));
      await client.subscribeAsync(provisionTopics(fleet.fleetId).announce('+'), { qos: 1 });
      const deadline = Date.now() + 10 * 60_000;
      let health: { status: number; body: string } | null = null;
      while (Date.now() < deadline && (announces.length === 0 || health?.status !== 200)) {
        const code = await Promise.race([
          guest.exited,
          new Promise<'running'>((r) => setTimeout(() => r('running'), 2000)),
        ]);
        if (code !== 'running') assert.fail(`qemu exited (${code}); console:\n${guest.console().slice(-6000)}`);
        if (health?.status !== 200) {
          health = await fetch(`http://127.0.0.1:${guest.httpPort}/healthz`, {
            signal: AbortSignal.timeout(5000),
          }).then(
            async (r) => ({ status: r.status, body: await r.text() }),
            () => null,
          );
        }
      }
      await client.endAsync();
      assert.ok(
        announces.length > 0,
        `no announce from the guest; console (${guest.consoleFile}):\n${guest.console().slice(-6000)}`,
      );
      const announce = checkAnnounce(parseEnvelope(announces[0]!), { fleet: fleet.fleetId });
      assert.equal(announce.inventory.arch, 'arm64');
      assert.equal(announce.inventory.hostname, 'talon');
      assert.equal(
        health?.status,
        200,
        `no /healthz through the forwarded port; console:\n${guest.console().slice(-6000)}`,
      );
      assert.match(health.body, /"ok":\s*true/);
      assert.equal(
        (JSON.parse(health.body) as { deviceId: string }).deviceId,
        announce.deviceId,
        'the device that answers is the one that announced',
      );
      // Type=notify: systemd calls it started only after Talon's READY=1 (journald forwards to the console)
      await waitForConsole(guest, /Started talon\.service/, 60_000);
    } finally {
      await guest.stop();
      await mosq?.kill().catch(() => {});
      if (existsSync(guest.consoleFile)) cpSync(guest.consoleFile, join(tmpdir(), 'talon-image-boot-console.log'));
    }
  });
});

async function waitForConsole(guest: { console(): string }, re: RegExp, timeoutMs: number): Promise<void> {
  // eslint-disable-next-line no-control-regex
  const plain = (): string => guest.console().replace(/\x1b\[[0-9;]*m/g, '');
  const deadline = Date.now() + timeoutMs;
  while (!re.test(plain())) {
    if (Date.now() > deadline) assert.fail(`the console never showed ${re}:\n${plain().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

test('binfmt: a machine that cannot run arm64 programs is told how to fix it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-binfmt-'));
  try {
    assert.throws(
      () => checkBinfmt({ arch: 'x64', dir, tryMount: false }),
      (err: { code?: string; message: string }) =>
        err.code === 'IMAGE_NO_BINFMT' &&
        /qemu-user-static/.test(err.message) &&
        /update-binfmts --enable qemu-aarch64/.test(err.message),
    );
    writeFileSync(join(dir, 'qemu-aarch64'), 'disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n');
    assert.throws(() => checkBinfmt({ arch: 'x64', dir, tryMount: false }), { code: 'IMAGE_NO_BINFMT' });
    writeFileSync(join(dir, 'qemu-aarch64'), 'enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n');
    checkBinfmt({ arch: 'x64', dir, tryMount: false });
    checkBinfmt({ arch: 'arm64', dir: join(dir, 'absent'), tryMount: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
