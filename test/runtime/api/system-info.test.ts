/** System stats from a fake /proc and /sys tree: CPU % from deltas, memory, temperature, network rates, board model. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, statfsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemStats, boardModel, diskUse } from '../../../runtime/api/system-info.ts';

const NET_HEAD =
  'Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n';
const net = (rx: number, tx: number): string =>
  `${NET_HEAD}    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: ${rx} 10 0 0 0 0 0 0 ${tx} 10 0 0 0 0 0 0\n`;

test('a sample reads CPU from deltas, memory, temperature, disk and network rates from the files', () => {
  const root = mkdtempSync(join(tmpdir(), 'talon-proc-'));
  mkdirSync(join(root, 'proc/net'), { recursive: true });
  mkdirSync(join(root, 'sys/class/thermal/thermal_zone0'), { recursive: true });
  mkdirSync(join(root, 'proc/device-tree'), { recursive: true });
  writeFileSync(join(root, 'proc/stat'), 'cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n');
  writeFileSync(join(root, 'proc/loadavg'), '0.42 0.30 0.20 1/123 4567\n');
  writeFileSync(
    join(root, 'proc/meminfo'),
    'MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n',
  );
  writeFileSync(join(root, 'proc/net/dev'), net(1000, 500));
  writeFileSync(join(root, 'sys/class/thermal/thermal_zone0/temp'), '48312\n');
  writeFileSync(join(root, 'proc/device-tree/model'), 'Raspberry Pi 4 Model B Rev 1.4\0');
  let now = 10_000;
  const stats = new SystemStats({
    dataDir: root,
    root,
    clock: { now: () => now } as never,
    hands: () => [{ name: 'a', state: 'running', cpu: 0.25, heapUsedMb: 12 } as never],
  });
  // 1000 more jiffies of which 250 idle: 75 % busy; 2 s later with 4000/1000 more bytes
  writeFileSync(join(root, 'proc/stat'), 'cpu  400 0 550 1050 0 0 0 0 0 0\n');
  writeFileSync(join(root, 'proc/net/dev'), net(5000, 1500));
  now += 2000;
  const s = stats.sample();
  assert.equal(s.ts, 12_000);
  assert.equal(s.cpu.percent, 75);
  assert.equal(s.cpu.load1, 0.42);
  assert.deepEqual({ total: s.memory.totalBytes, used: s.memory.usedBytes }, { total: 1_024_000, used: 614_400 });
  assert.equal(s.temperatureC, 48.3);
  assert.deepEqual(s.network, { rxBytesPerSec: 2000, txBytesPerSec: 500 });
  assert.ok(s.disk.totalBytes > 0);
  assert.deepEqual(s.hands, [{ name: 'a', state: 'running', cpu: 0.25, heapUsedMb: 12 }]);
  assert.equal(boardModel(root), 'Raspberry Pi 4 Model B Rev 1.4');
});

test('no thermal zone and no device tree: temperature and board are null', () => {
  const root = mkdtempSync(join(tmpdir(), 'talon-proc-'));
  const stats = new SystemStats({ dataDir: root, root, hands: () => [] });
  const s = stats.sample();
  assert.equal(s.temperatureC, null);
  assert.equal(boardModel(root), null);
  assert.deepEqual(s.network, { rxBytesPerSec: 0, txBytesPerSec: 0 });
});

test('disk use of the data folder matches df: used = blocks - bfree, percent of used + bavail (issue 14)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-df-'));
  const s = new SystemStats({ dataDir: dir, hands: () => [] }).sample();
  const st = statfsSync(dir);
  assert.equal(s.disk.usedBytes, (st.blocks - st.bfree) * st.bsize);
  assert.equal(s.disk.totalBytes, st.blocks * st.bsize);
  // df -P --block-size=1 <dir>: "Filesystem 1-blocks Used Available Capacity Mounted on"
  const line = execFileSync('df', ['-P', '-B1', dir], { encoding: 'utf8' }).trim().split('\n').at(-1)!.split(/\s+/);
  const dfPercent = Number(line[4]!.replace('%', ''));
  assert.ok(Math.abs(s.disk.percent - dfPercent) <= 1, `sample ${s.disk.percent} % vs df ${dfPercent} %`);
  assert.ok(
    Math.abs(s.disk.usedBytes - Number(line[2])) <= 64 * 1024 * 1024,
    `used ${s.disk.usedBytes} vs df ${line[2]}`,
  );
});

test('diskUse: a filesystem with a root reserve reads as df does, not as used / total', () => {
  // 100 blocks, 40 free of which 35 available to users: df says 60 used, 60 / 95 = 63.2 %
  const d = diskUse({ bsize: 4096, blocks: 100, bfree: 40, bavail: 35 }, '/x');
  assert.equal(d.usedBytes, 60 * 4096);
  assert.equal(d.freeBytes, 35 * 4096);
  assert.equal(d.percent, 63.2);
});

test('network rates leave out loopback and virtual interfaces (a veth pair counts the same bytes both ways)', () => {
  const root = mkdtempSync(join(tmpdir(), 'talon-net-'));
  mkdirSync(join(root, 'proc/net'), { recursive: true });
  const dev = (eth: [number, number], veth: number): string =>
    `${NET_HEAD}    lo: ${veth} 1 0 0 0 0 0 0 ${veth} 1 0 0 0 0 0 0\n  eth0: ${eth[0]} 10 0 0 0 0 0 0 ${eth[1]} 10 0 0 0 0 0 0\n  veth12ab: ${veth} 1 0 0 0 0 0 0 ${veth} 1 0 0 0 0 0 0\n  docker0: ${veth} 1 0 0 0 0 0 0 ${veth} 1 0 0 0 0 0 0\n`;
  let now = 1_000_000;
  writeFileSync(join(root, 'proc/net/dev'), dev([100, 100], 0));
  const stats = new SystemStats({ dataDir: root, hands: () => [], root, clock: { now: () => now } as never });
  now += 1000;
  writeFileSync(join(root, 'proc/net/dev'), dev([100, 100], 5_000_000));
  assert.deepEqual(stats.sample().network, { rxBytesPerSec: 0, txBytesPerSec: 0 });
  now += 1000;
  writeFileSync(join(root, 'proc/net/dev'), dev([2100, 600], 9_000_000));
  assert.deepEqual(stats.sample().network, { rxBytesPerSec: 2000, txBytesPerSec: 500 });
});
