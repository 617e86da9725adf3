import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { loadOrCreateBoxKey, DEVICE_BOX_KEY_FILE } from '../../../provisioning/device/identity.ts';
import { readInventory, osName } from '../../../provisioning/device/inventory.ts';
import { seal, openSealed } from '../../../provisioning/format.ts';

test('the sealing key is made once (0600, tweetnacl base64) and the same key comes back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-box-'));
  const a = loadOrCreateBoxKey(dir);
  const file = join(dir, DEVICE_BOX_KEY_FILE);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const body = JSON.parse(readFileSync(file, 'utf8')) as { type: string; publicKey: string; secretKey: string };
  assert.equal(body.type, 'x25519');
  assert.deepEqual(
    Buffer.from(nacl.box.keyPair.fromSecretKey(new Uint8Array(Buffer.from(body.secretKey, 'base64'))).publicKey),
    a.publicKey,
  );
  const b = loadOrCreateBoxKey(dir);
  assert.ok(a.publicKey.equals(b.publicKey) && a.secretKey.equals(b.secretKey));
  // what the fleet seals to the public half opens with the stored secret half, and not with another device's
  assert.equal(openSealed(seal('pw', a.publicKey), b.secretKey), 'pw');
  const other = loadOrCreateBoxKey(mkdtempSync(join(tmpdir(), 'talon-box-')));
  assert.throws(() => openSealed(seal('pw', a.publicKey), other.secretKey), { code: 'PROVISION_SEAL' });
});

test('a damaged sealing key file is refused, never silently replaced', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-box-'));
  const file = join(dir, DEVICE_BOX_KEY_FILE);
  writeFileSync(file, '{not json');
  assert.throws(() => loadOrCreateBoxKey(dir), { code: 'STORE_OPEN_FAILED' });
  const good = nacl.box.keyPair();
  const other = nacl.box.keyPair();
  writeFileSync(
    file,
    JSON.stringify({
      v: 1,
      type: 'x25519',
      publicKey: Buffer.from(other.publicKey).toString('base64'),
      secretKey: Buffer.from(good.secretKey).toString('base64'),
    }),
  );
  assert.throws(() => loadOrCreateBoxKey(dir), /mismatched/);
});

test('inventory reads the device tree, machine-id, meminfo and os-release from a root', () => {
  const root = mkdtempSync(join(tmpdir(), 'talon-inv-'));
  mkdirSync(join(root, 'proc/device-tree'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'proc/device-tree/model'), 'Raspberry Pi 4 Model B Rev 1.4\0');
  writeFileSync(join(root, 'etc/machine-id'), 'abc123\n');
  writeFileSync(join(root, 'proc/meminfo'), 'MemTotal:        3884096 kB\nMemFree: 1 kB\n');
  writeFileSync(
    join(root, 'etc/os-release'),
    'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
  );
  writeFileSync(join(root, 'etc/hostname'), 'greenhouse-1\n');
  const inv = readInventory({ root });
  assert.equal(inv.board, 'Raspberry Pi 4 Model B Rev 1.4');
  assert.equal(inv.serial, 'abc123');
  assert.equal(inv.memoryBytes, 3884096 * 1024);
  assert.equal(inv.os, 'Debian GNU/Linux 12 (bookworm)');
  assert.equal(inv.hostname, 'greenhouse-1');
  // a serial-number in the device tree wins over machine-id; DMI names x86 boards
  writeFileSync(join(root, 'proc/device-tree/serial-number'), '10000000deadbeef\0');
  assert.equal(readInventory({ root }).serial, '10000000deadbeef');
  const x86 = mkdtempSync(join(tmpdir(), 'talon-inv-'));
  mkdirSync(join(x86, 'sys/class/dmi/id'), { recursive: true });
  writeFileSync(join(x86, 'sys/class/dmi/id/product_name'), 'NUC8i5BEH\n');
  const inv2 = readInventory({ root: x86 });
  assert.equal(inv2.board, 'NUC8i5BEH');
  assert.equal(inv2.serial, '');
  assert.equal(inv2.os, '');
});

test('os-release without PRETTY_NAME falls back to NAME VERSION_ID; this machine gives a real inventory', () => {
  assert.equal(osName('NAME=Alpine\nVERSION_ID=3.20\n'), 'Alpine 3.20');
  const inv = readInventory();
  assert.ok(inv.memoryBytes > 0);
  assert.equal(inv.arch, process.arch);
  assert.ok(inv.hostname.length > 0);
});
