/**
 * The parts of `talon image` that need no root and no image: the device config (checked by
 * Talon's own config loader), the unit, the binary check, sizes, board names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../runtime/config/load.ts';
import { initFleet } from '../../provisioning/fleet/keys.ts';
import { deviceConfig, fleetBootstrap, unitText } from '../../image/disk/talon-files.ts';
import { checkBinary } from '../../image/disk/binary.ts';
import { outputNames, parseSize } from '../../image/disk/assemble.ts';
import { board, BOARD_NAMES } from '../../image/disk/boards.ts';
import { rootfsKey, rootfsSpec } from '../../image/disk/rootfs.ts';

test("the device config is a valid Talon config with the fleet's provisioning section, the web admin on the LAN", () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-image-files-'));
  try {
    const fleet = initFleet(join(dir, 'fleet'), { fleetId: 'files-test', brokerUrl: 'mqtt://broker.example:1883' });
    const boot = fleetBootstrap(fleet.dir);
    assert.equal(boot.anchor, fleet.publicKey.toString('base64'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, deviceConfig(boot, 'pi-17'));
    const { config } = loadConfig({ file, env: {} });
    assert.equal(config.deviceName, 'pi-17');
    assert.equal(config.dataDir, '/var/lib/talon');
    assert.equal(config.http.host, '0.0.0.0');
    assert.equal(config.http.port, 8080);
    assert.equal(config.provisioning?.fleet, 'files-test');
    assert.equal(config.provisioning?.anchor, fleet.publicKey.toString('base64'));
    assert.equal(config.provisioning?.bootstrap.url, 'mqtt://broker.example:1883');
    // standalone (overlay without --fleet): no provisioning section
    writeFileSync(file, deviceConfig(null));
    assert.equal(loadConfig({ file, env: {} }).config.provisioning, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the unit: notify + watchdog, own user, sandboxed, restarted on failure', () => {
  const unit = unitText();
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
    'CapabilityBoundingSet=',
    'WantedBy=multi-user.target',
  ]) {
    assert.ok(unit.split('\n').includes(line), line);
  }
  assert.ok(!unit.includes('MemoryDenyWriteExecute=yes'), 'V8 needs writable+executable memory');
});

test('the binary must be an arm64 ELF, and a missing one says how to build it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-image-bin-'));
  try {
    assert.throws(
      () => checkBinary(join(dir, 'none'), 'arm64'),
      (e: Error & { code?: string }) =>
        e.code === 'IMAGE_BINARY_MISSING' && e.message.includes('npm run build:binary -- --arch arm64'),
    );
    writeFileSync(join(dir, 'script'), '#!/bin/sh\necho hi\n');
    assert.throws(() => checkBinary(join(dir, 'script'), 'arm64'), /not a Linux executable/);
    copyFileSync(process.execPath, join(dir, 'node'));
    const arch = process.arch === 'arm64' ? 'x64' : 'arm64';
    assert.throws(
      () => checkBinary(join(dir, 'node'), arch),
      new RegExp(`is a ${process.arch} executable; the image needs ${arch}`),
    );
    checkBinary(join(dir, 'node'), process.arch as 'arm64' | 'x64');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sizes, boards, output names, the rootfs cache key', () => {
  assert.equal(parseSize('2G'), 2 * 1024 ** 3);
  assert.equal(parseSize('1536M'), 1536 * 1024 ** 2);
  assert.throws(() => parseSize('512M'), /too small/);
  assert.throws(() => parseSize('lots'), /not a size/);
  assert.deepEqual(BOARD_NAMES, ['rpi4', 'rpi5', 'generic-arm64']);
  assert.throws(() => board('jetson'), /unknown board "jetson"; the boards are: rpi4, rpi5, generic-arm64/);
  assert.ok(board('rpi5').warning?.includes('6.1'));
  assert.deepEqual(outputNames('/x/device.img', 'zstd'), { raw: '/x/device.img', compressed: '/x/device.img.zst' });
  assert.deepEqual(outputNames('/x/device.img.xz', 'xz'), { raw: '/x/device.img', compressed: '/x/device.img.xz' });
  assert.equal(outputNames('/x/device.img', 'none').compressed, null);
  assert.notEqual(rootfsKey(rootfsSpec('rpi')), rootfsKey(rootfsSpec('generic')));
  assert.ok(rootfsSpec('rpi').packages.includes('raspi-firmware'));
  assert.ok(!rootfsSpec('generic').packages.includes('raspi-firmware'));
});
