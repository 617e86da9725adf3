/**
 * SystemDriver: the driver contract over the real /proc here and over a fixture tree, rates
 * from two snapshots, a missing thermal zone, garbage in /proc files, get_throttled.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { driverContract, type FaultKind } from './contract.ts';
import { SystemDriver, type SystemDriverConfig } from '../../drivers/system/driver.ts';
import { slug } from '../../drivers/system/procfs.ts';
import { systemClock, type Clock } from '../../runtime/core/clock.ts';
import { TalonError } from '../../runtime/core/errors.ts';

const tmpRoots: string[] = [];
after(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

function manualClock(start = 1_700_000_000_000): Clock & { t: number } {
  const c = { ...systemClock, t: start, now: () => c.t };
  return c;
}

interface Tree {
  root: string;
  proc: string;
  sys: string;
  write(rel: string, text: string): void;
}

const STAT = (busy: number, idle: number) =>
  [
    `cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0`,
    `cpu0 ${busy / 2} 0 0 ${idle / 2} 0 0 0 0 0 0`,
    `cpu1 ${busy / 2} 0 0 ${idle / 2} 0 0 0 0 0 0`,
    'intr 1 2 3',
    'ctxt 100',
    'btime 1700000000',
    'processes 500',
    'procs_running 1',
    'procs_blocked 0',
    '',
  ].join('\n');

const MEMINFO = (availKb: number, swapFreeKb = 1024 * 1024) =>
  [
    'MemTotal:        4000000 kB',
    'MemFree:          500000 kB',
    `MemAvailable:    ${availKb} kB`,
    'Buffers:           10000 kB',
    'Cached:           900000 kB',
    `SwapTotal:       ${1024 * 1024} kB`,
    `SwapFree:        ${swapFreeKb} kB`,
    'HugePages_Total:       0',
    '',
  ].join('\n');

const NETDEV = (rx: number, tx: number) =>
  [
    'Inter-|   Receive                                                |  Transmit',
    ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
    '    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0',
    `  eth0: ${rx} 10 0 0 0 0 0 0 ${tx} 10 0 0 0 0 0 0`,
    '  veth12ab: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0',
    '',
  ].join('\n');

const DISKSTATS = (sectorsRead: number, sectorsWritten: number) =>
  [
    '   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0',
    ` 179       0 mmcblk0 100 0 ${sectorsRead} 0 50 0 ${sectorsWritten} 0 0 0 0 0 0 0 0 0 0`,
    ' 179       1 mmcblk0p1 10 0 20 0 5 0 10 0 0 0 0 0 0 0 0 0 0',
    '',
  ].join('\n');

/** a fake /proc and /sys of a Pi-like board with one disk mounted at the tree's data dir */
function makeTree(opts: { thermal?: boolean; hwmon?: boolean; throttledFile?: string } = {}): Tree {
  const root = mkdtempSync(join(tmpdir(), 'talon-sys-'));
  tmpRoots.push(root);
  const proc = join(root, 'proc');
  const sys = join(root, 'sys');
  const write = (rel: string, text: string): void => {
    const file = join(root, rel);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, text);
  };
  mkdirSync(join(root, 'data'));
  write('proc/stat', STAT(1000, 3000));
  write('proc/meminfo', MEMINFO(1000000));
  write(
    'proc/mounts',
    [
      'proc /proc proc rw 0 0',
      'sysfs /sys sysfs rw 0 0',
      'tmpfs /run tmpfs rw 0 0',
      `/dev/mmcblk0p2 ${join(root, 'data')} ext4 rw 0 0`,
      `/dev/mmcblk0p2 ${join(root, 'data')} ext4 rw 0 0`,
      '',
    ].join('\n'),
  );
  write('proc/diskstats', DISKSTATS(2000, 4000));
  write('proc/net/dev', NETDEV(10_000, 20_000));
  write('proc/uptime', '12345.67 20000.00\n');
  write('proc/loadavg', '0.52 0.40 0.30 2/187 4242\n');
  mkdirSync(join(sys, 'block', 'mmcblk0'), { recursive: true });
  mkdirSync(join(sys, 'block', 'loop0'), { recursive: true });
  mkdirSync(join(sys, 'class', 'thermal'), { recursive: true });
  if (opts.thermal) {
    write('sys/class/thermal/thermal_zone0/type', 'wifi_thermal\n');
    write('sys/class/thermal/thermal_zone0/temp', '30000\n');
    write('sys/class/thermal/thermal_zone1/type', 'cpu-thermal\n');
    write('sys/class/thermal/thermal_zone1/temp', '48500\n');
  }
  if (opts.hwmon) {
    write('sys/class/hwmon/hwmon0/name', 'nvme\n');
    write('sys/class/hwmon/hwmon0/temp1_input', '35000\n');
    write('sys/class/hwmon/hwmon1/name', 'coretemp\n');
    write('sys/class/hwmon/hwmon1/temp1_input', '61000\n');
  }
  if (opts.throttledFile !== undefined)
    write('sys/devices/platform/soc/soc:firmware/get_throttled', opts.throttledFile);
  return { root, proc, sys, write };
}

const fixtureConfig = (tree: Tree, extra: Partial<SystemDriverConfig> = {}): SystemDriverConfig => ({
  type: 'system',
  name: 'system-fixture',
  procRoot: tree.proc,
  sysRoot: tree.sys,
  vcgencmd: false,
  cacheMs: 0,
  ...extra,
});

driverContract('system (real /proc and /sys)', async () => ({
  driver: new SystemDriver({ type: 'system', name: 'system' }),
  cleanup: async () => {},
}));

driverContract('system (fixture tree)', async () => {
  const tree = makeTree({ thermal: true, throttledFile: '0\n' });
  const driver = new SystemDriver(fixtureConfig(tree));
  const good = '12345.67 20000.00\n';
  return {
    driver,
    cleanup: async () => {},
    faults: {
      sensor: 'system.uptime',
      kinds: ['throw', 'nan', 'text'] as FaultKind[],
      inject: (kind) => {
        const file = join(tree.proc, 'uptime');
        if (kind === 'throw') {
          // reading a directory throws EISDIR
          rmSync(file);
          mkdirSync(file);
        } else {
          writeFileSync(file, kind === 'nan' ? 'NaN NaN\n' : 'uptime: lots\n');
        }
      },
      clear: () => {
        rmSync(join(tree.proc, 'uptime'), { recursive: true, force: true });
        writeFileSync(join(tree.proc, 'uptime'), good);
      },
    },
  };
});

async function value(d: SystemDriver, id: string): Promise<number> {
  const r = await d.read(id);
  assert.equal(typeof r.value, 'number');
  return r.value as number;
}

describe('SystemDriver on the real /proc', () => {
  it('reports plausible values for this machine', async () => {
    const d = new SystemDriver({ type: 'system', name: 'system' });
    const ids = d.sensors().map((s) => s.id);
    for (const id of [
      'cpu.load',
      'cpu.core0.load',
      'mem.used',
      'mem.available',
      'system.uptime',
      'system.processes',
      'disk.root.used',
    ]) {
      assert.ok(ids.includes(id), `has ${id} (has ${ids.join(', ')})`);
    }
    await d.start();
    try {
      for (const id of ids.filter((i) => i.endsWith('.load') || i.endsWith('.used'))) {
        const v = await value(d, id);
        assert.ok(v >= 0 && v <= 100, `${id} = ${v} is a percentage`);
      }
      assert.ok((await value(d, 'system.processes')) > 0);
      assert.ok((await value(d, 'system.uptime')) > 0);
      assert.ok((await value(d, 'mem.available')) > 0);
      // no pseudo file systems, no loop devices, no loopback interface
      assert.ok(
        !ids.some((i) => /^disk\.(proc|sys|dev)/.test(i) || /^diskio\.loop/.test(i) || /^net\.lo\./.test(i)),
        ids.join(', '),
      );
      assert.equal(d.health().ok, true);
    } finally {
      await d.stop();
    }
  });

  it('inventory() describes the device (systeminformation, lazily, cached)', async () => {
    const d = new SystemDriver({ type: 'system', name: 'system' });
    const inv = await d.inventory();
    assert.equal(typeof inv.board.model, 'string');
    assert.equal(typeof inv.os.kernel, 'string');
    assert.ok(inv.os.kernel.length > 0);
    assert.ok(inv.cpu.cores > 0);
    assert.ok(inv.memory.totalMb > 0);
    assert.equal(d.inventory(), d.inventory(), 'one call, cached');
  });
});

describe('SystemDriver on a fixture tree', () => {
  it('discovers what is there and nothing else', () => {
    const tree = makeTree({ thermal: true });
    const d = new SystemDriver(fixtureConfig(tree));
    const disk = slug(join(tree.root, 'data'));
    assert.deepEqual(
      d
        .sensors()
        .map((s) => s.id)
        .sort(),
      [
        'cpu.core0.load',
        'cpu.core1.load',
        'cpu.load',
        'cpu.temp',
        `disk.${disk}.free`,
        `disk.${disk}.used`,
        'diskio.mmcblk0.read',
        'diskio.mmcblk0.write',
        'mem.available',
        'mem.used',
        'net.eth0.rx',
        'net.eth0.tx',
        'swap.used',
        'system.load1',
        'system.processes',
        'system.uptime',
      ].sort(),
      'no /proc, /sys or tmpfs disks, the double mount once, no loop0 or partition, no lo or veth',
    );
    assert.equal(d.sensors().find((s) => s.id === 'cpu.temp')?.unit, '°C');
  });

  it('a missing thermal zone → no temperature sensor rather than a fake value', async () => {
    const d = new SystemDriver(fixtureConfig(makeTree()));
    assert.ok(!d.sensors().some((s) => s.id === 'cpu.temp'));
    await d.start();
    await assert.rejects(d.read('cpu.temp'), (e: unknown) => e instanceof TalonError && e.code === 'SENSOR_NOT_FOUND');
    await d.stop();
  });

  it('cpu.temp prefers the CPU thermal zone, else a CPU hwmon', async () => {
    const zone = new SystemDriver(fixtureConfig(makeTree({ thermal: true, hwmon: true })));
    await zone.start();
    assert.equal(await value(zone, 'cpu.temp'), 48.5);
    await zone.stop();
    const hw = new SystemDriver(fixtureConfig(makeTree({ hwmon: true })));
    await hw.start();
    assert.equal(await value(hw, 'cpu.temp'), 61);
    await hw.stop();
  });

  it('loads and rates are deltas between two snapshots', async () => {
    const tree = makeTree();
    const clock = manualClock();
    const d = new SystemDriver(fixtureConfig(tree), { clock });
    await d.start(); // first snapshot
    clock.t += 2000;
    tree.write('proc/stat', STAT(1000 + 300, 3000 + 100)); // 300 busy of 400 jiffies
    tree.write('proc/net/dev', NETDEV(10_000 + 4000, 20_000 + 1000));
    tree.write('proc/diskstats', DISKSTATS(2000 + 8, 4000 + 16)); // 8 and 16 sectors of 512 B
    assert.equal(await value(d, 'cpu.load'), 75);
    assert.equal(await value(d, 'cpu.core0.load'), 75);
    assert.equal(await value(d, 'net.eth0.rx'), 2000);
    assert.equal(await value(d, 'net.eth0.tx'), 500);
    assert.equal(await value(d, 'diskio.mmcblk0.read'), 2048);
    assert.equal(await value(d, 'diskio.mmcblk0.write'), 4096);
    // the next delta starts where the last ended
    clock.t += 1000;
    tree.write('proc/stat', STAT(1300 + 0, 3100 + 200));
    tree.write('proc/net/dev', NETDEV(14_000, 21_000));
    assert.equal(await value(d, 'cpu.load'), 0);
    assert.equal(await value(d, 'net.eth0.rx'), 0);
    // the same instant again: the last value, not a division by zero
    assert.equal(await value(d, 'net.eth0.rx'), 0);
    await d.stop();
  });

  it('a reset counter gives SENSOR_UNAVAILABLE once, then rates from the new baseline', async () => {
    const tree = makeTree();
    const clock = manualClock();
    const d = new SystemDriver(fixtureConfig(tree), { clock });
    await d.start();
    clock.t += 1000;
    tree.write('proc/net/dev', NETDEV(100, 100));
    await assert.rejects(
      d.read('net.eth0.rx'),
      (e: unknown) => e instanceof TalonError && e.code === 'SENSOR_UNAVAILABLE' && /reset/.test(e.message),
    );
    clock.t += 1000;
    tree.write('proc/net/dev', NETDEV(1100, 100));
    assert.equal(await value(d, 'net.eth0.rx'), 1000);
    await d.stop();
  });

  it('memory, swap, uptime, load and processes come from their files', async () => {
    const tree = makeTree();
    tree.write('proc/meminfo', MEMINFO(1_000_000, 786_432));
    const d = new SystemDriver(fixtureConfig(tree));
    await d.start();
    assert.equal(await value(d, 'mem.used'), 75);
    assert.equal(await value(d, 'mem.available'), 976.6);
    assert.equal(await value(d, 'swap.used'), 25);
    assert.equal(await value(d, 'system.uptime'), 12345.67);
    assert.equal(await value(d, 'system.load1'), 0.52);
    assert.equal(await value(d, 'system.processes'), 187);
    const used = d.sensors().find((s) => s.id.startsWith('disk.') && s.id.endsWith('.used'))!;
    const u = await value(d, used.id);
    assert.ok(u >= 0 && u <= 100);
    await d.stop();
  });

  it('garbage in /proc files → SENSOR_FAULT, counted, never a value', async () => {
    const tree = makeTree({ thermal: true });
    const d = new SystemDriver(fixtureConfig(tree));
    await d.start();
    const cases: Array<[string, string, string]> = [
      ['proc/stat', 'cpu  a b c d\n', 'cpu.load'],
      ['proc/meminfo', 'MemTotal: lots\n', 'mem.used'],
      ['proc/meminfo', 'MemTotal: 100 kB\nMemAvailable: 200 kB\n', 'mem.available'],
      ['proc/net/dev', 'garbage\n', 'net.eth0.rx'],
      ['proc/diskstats', ' 179 0 mmcblk0 x\n', 'diskio.mmcblk0.read'],
      ['proc/loadavg', '\u0000\u0001\n', 'system.processes'],
      ['sys/class/thermal/thermal_zone1/temp', 'NaN\n', 'cpu.temp'],
      ['sys/class/thermal/thermal_zone1/temp', '-274000\n', 'cpu.temp'],
    ];
    let errors = d.health().counters.errors!;
    for (const [file, text, id] of cases) {
      const good = readFileSync(join(tree.root, file), 'utf8');
      tree.write(file, text);
      await assert.rejects(
        d.read(id),
        (e: unknown) => e instanceof TalonError && e.code === 'SENSOR_FAULT' && e.message.includes(id),
        `${file} ${JSON.stringify(text)}`,
      );
      assert.equal(d.health().counters.errors, ++errors);
      assert.equal(d.health().ok, false);
      assert.equal(d.health().error?.code, 'SENSOR_FAULT');
      tree.write(file, good);
      await d.read(id);
    }
    assert.equal(d.health().ok, true);
    await d.stop();
  });

  it('a file that disappears → SENSOR_UNAVAILABLE', async () => {
    const tree = makeTree({ thermal: true });
    const d = new SystemDriver(fixtureConfig(tree));
    await d.start();
    rmSync(join(tree.sys, 'class', 'thermal', 'thermal_zone1'), { recursive: true });
    await assert.rejects(
      d.read('cpu.temp'),
      (e: unknown) => e instanceof TalonError && e.code === 'SENSOR_UNAVAILABLE',
    );
    await d.stop();
  });

  it('pi.throttled reads the firmware sysfs file when the kernel has it', async () => {
    const d = new SystemDriver(fixtureConfig(makeTree({ throttledFile: '50005\n' })));
    await d.start();
    assert.equal(await value(d, 'pi.throttled'), 0x50005);
    await d.stop();
  });

  it('pi.throttled runs vcgencmd once per slow interval, never per poll', async () => {
    const tree = makeTree();
    const log = join(tree.root, 'vcgencmd.log');
    const fake = join(tree.root, 'vcgencmd');
    writeFileSync(fake, `#!/bin/sh\necho "$@" >> ${log}\necho throttled=0x80008\n`);
    chmodSync(fake, 0o755);
    const d = new SystemDriver(fixtureConfig(tree, { vcgencmd: fake, throttledIntervalMs: 3_600_000 }));
    assert.ok(d.sensors().some((s) => s.id === 'pi.throttled'));
    await d.start();
    const deadline = Date.now() + 10_000;
    let v: number | undefined;
    while (v === undefined) {
      try {
        v = await value(d, 'pi.throttled');
      } catch (e) {
        assert.ok(e instanceof TalonError && e.code === 'SENSOR_UNAVAILABLE', String(e));
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.equal(v, 0x80008);
    for (let i = 0; i < 20; i++) assert.equal(await value(d, 'pi.throttled'), 0x80008);
    assert.equal(readFileSync(log, 'utf8'), 'get_throttled\n', 'one run for 20+ reads');
    await d.stop();
    assert.ok(
      !new SystemDriver(fixtureConfig(tree)).sensors().some((s) => s.id === 'pi.throttled'),
      'no sensor without vcgencmd or sysfs',
    );
  });
});
