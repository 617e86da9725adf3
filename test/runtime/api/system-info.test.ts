/** System stats from a fake /proc and /sys tree: CPU % from deltas, memory, temperature, network rates, board model. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemStats, boardModel } from '../../../runtime/api/system-info.ts';

const NET_HEAD = 'Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n';
const net = (rx: number, tx: number): string => `${NET_HEAD}    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: ${rx} 10 0 0 0 0 0 0 ${tx} 10 0 0 0 0 0 0\n`;

test('a sample reads CPU from deltas, memory, temperature, disk and network rates from the files', () => {
  const root = mkdtempSync(join(tmpdir(), 'talon-proc-'));
  mkdirSync(join(root, 'proc/net'), { recursive: true });
  mkdirSync(join(root, 'sys/class/thermal/thermal_zone0'), { recursive: true });
  mkdirSync(join(root, 'proc/device-tree'), { recursive: true });
  writeFileSync(join(root, 'proc/stat'), 'cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n');
  writeFileSync(join(root, 'proc/loadavg'), '0.42 0.30 0.20 1/123 4567\n');
  writeFileSync(join(root, 'proc/meminfo'), 'MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n');
  writeFileSync(join(root, 'proc/net/dev'), net(1000, 500));
  writeFileSync(join(root, 'sys/class/thermal/thermal_zone0/temp'), '48312\n');
  writeFileSync(join(root, 'proc/device-tree/model'), 'Raspberry Pi 4 Model B Rev 1.4\0');
  let now = 10_000;
  const stats = new SystemStats({
    dataDir: root, root, clock: { now: () => now } as never,
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
