/**
 * GpioDriver: the driver contract over the simulated backend; edges, debounce, active-low and
 * actuator writes on simulated pins; the chip base discovery on fixture sysfs trees; and the
 * real onoff backend over a faked sysfs in a private mount namespace (gpio-sysfs.child.ts,
 * run as root under `unshare -m`; see there for what the fake can and cannot show).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { driverContract } from './contract.ts';
import { GpioDriver, type GpioDriverConfig } from '../../drivers/gpio/driver.ts';
import { SimGpio } from '../../drivers/gpio/backend.ts';
import { findHeaderChip, listChips } from '../../drivers/gpio/chip.ts';
import type { Reading } from '../../drivers/types.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Clock } from '../../runtime/core/clock.ts';

const tmpRoots: string[] = [];
after(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

const pins: GpioDriverConfig['pins'] = [
  { id: 'button', bcm: 17, direction: 'in' },
  { id: 'door', bcm: 27, direction: 'in', activeLow: true, deviceClass: 'door' },
  { id: 'fan', bcm: 22, direction: 'out' },
  { id: 'relay', bcm: 23, direction: 'out', activeLow: true },
];

driverContract('gpio (simulated pins)', async () => {
  const sim = new SimGpio();
  const driver = new GpioDriver({ type: 'gpio', name: 'gpio-sim', backend: 'sim', pins }, { backend: sim });
  return {
    driver,
    cleanup: async () => {},
    push: async () => sim.set(17, sim.level(17) === 1 ? 0 : 1),
  };
});

/** a clock whose timers run only when the test advances it */
function fakeClock(): Clock & { advance(ms: number): void; pending(): number } {
  let now = 1_700_000_000_000;
  let nextId = 1;
  const timers = new Map<number, { at: number; fn: () => void; every?: number }>();
  const clock = {
    now: () => now,
    setTimeout: (fn: () => void, ms: number) => {
      const id = nextId++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (h: unknown) => {
      timers.delete(h as number);
    },
    setInterval: (fn: () => void, ms: number) => {
      const id = nextId++;
      timers.set(id, { at: now + ms, fn, every: ms });
      return id;
    },
    clearInterval: (h: unknown) => {
      timers.delete(h as number);
    },
    advance(ms: number) {
      const end = now + ms;
      for (;;) {
        let next: [number, { at: number; fn: () => void; every?: number }] | undefined;
        for (const e of timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
        if (!next) break;
        now = next[1].at;
        if (next[1].every) next[1].at += next[1].every;
        else timers.delete(next[0]);
        next[1].fn();
      }
      now = end;
    },
    pending: () => timers.size,
  };
  return clock;
}

const flush = () => new Promise((r) => setImmediate(r));

async function simDriver(extra: Partial<GpioDriverConfig> = {}) {
  const sim = new SimGpio();
  const clock = fakeClock();
  const driver = new GpioDriver({ type: 'gpio', name: 'g', backend: 'sim', pins, ...extra }, { backend: sim, clock });
  const got: Reading[] = [];
  driver.onReading((r) => got.push(r));
  await driver.start();
  return { sim, clock, driver, got, values: (id: string) => got.filter((r) => r.sensor === id).map((r) => r.value) };
}

describe('GpioDriver on simulated pins', () => {
  it('inputs are pushed boolean sensors, outputs boolean actuators carrying their BCM pin', async () => {
    const { driver } = await simDriver();
    assert.deepEqual(
      driver.sensors().map((s) => [s.id, s.kind, s.mode]),
      [
        ['button', 'boolean', 'pushed'],
        ['door', 'boolean', 'pushed'],
      ],
    );
    assert.deepEqual(driver.actuators(), [
      { id: 'fan', name: 'fan', kind: 'boolean', pin: 22 },
      { id: 'relay', name: 'relay', kind: 'boolean', pin: 23 },
    ]);
    await driver.stop();
  });

  it('delivers the initial level, then every edge (interrupt path)', async () => {
    const { sim, driver, values } = await simDriver();
    assert.deepEqual(values('button'), [false]);
    sim.set(17, 1);
    sim.set(17, 0);
    sim.set(17, 1);
    assert.deepEqual(values('button'), [false, true, false, true]);
    assert.equal((await driver.read('button')).value, true);
    assert.equal(driver.health().counters.edges, 3);
    await driver.stop();
  });

  it('active-low inverts inputs and outputs', async () => {
    const { sim, driver, values } = await simDriver();
    // door: raw 0 = active (closed contact pulls low)
    assert.deepEqual(values('door'), [true]);
    sim.set(27, 1);
    assert.deepEqual(values('door'), [true, false]);
    // relay starts inactive: raw high
    assert.equal(sim.level(23), 1);
    await driver.write('relay', true);
    assert.equal(sim.level(23), 0);
    await driver.write('fan', true);
    assert.equal(sim.level(22), 1);
    await driver.write('fan', false);
    assert.equal(sim.level(22), 0);
    await assert.rejects(driver.write('fan', 1), (e: unknown) => e instanceof TalonError && e.code === 'BAD_REQUEST');
    await driver.stop();
  });

  it('an output can start active', async () => {
    const { sim, driver } = await simDriver({
      pins: [
        { id: 'pump', bcm: 5, direction: 'out', initial: true },
        { id: 'siren', bcm: 6, direction: 'out', initial: true, activeLow: true },
      ],
    });
    assert.equal(sim.level(5), 1);
    assert.equal(sim.level(6), 0);
    await driver.stop();
  });

  it('edge: rising delivers only rising edges; read() still answers the current state', async () => {
    const { sim, driver, values } = await simDriver({
      pins: [
        { id: 'pir', bcm: 4, direction: 'in', edge: 'rising' },
        { id: 'lid', bcm: 5, direction: 'in', edge: 'falling', activeLow: true },
      ],
    });
    sim.set(4, 1);
    sim.set(4, 0);
    sim.set(4, 1);
    assert.deepEqual(values('pir'), [false, true, true]);
    sim.set(4, 0);
    assert.equal((await driver.read('pir')).value, false);
    // lid is active-low: falling = active → inactive = raw 0 → 1
    assert.deepEqual(values('lid'), [true]);
    sim.set(5, 1);
    sim.set(5, 0);
    assert.deepEqual(values('lid'), [true, false]);
    await driver.stop();
  });

  it('debounce: a change counts once it held for debounceMs; blips are bounces', async () => {
    const { sim, clock, driver, values } = await simDriver({
      pins: [{ id: 'key', bcm: 6, direction: 'in', debounceMs: 50 }],
    });
    // a bouncing press: 1 0 1 0 1 within 20 ms, then held
    for (const l of [1, 0, 1, 0, 1] as const) {
      sim.set(6, l);
      clock.advance(5);
    }
    await flush();
    assert.deepEqual(values('key'), [false], 'nothing before the level held');
    clock.advance(60);
    await flush();
    assert.deepEqual(values('key'), [false, true], 'one edge for the whole bounce');
    // a 10 ms glitch that returns to the stable level
    sim.set(6, 0);
    clock.advance(10);
    sim.set(6, 1);
    clock.advance(60);
    await flush();
    assert.deepEqual(values('key'), [false, true]);
    assert.equal(driver.health().counters.bounces, 1);
    await driver.stop();
    assert.equal(clock.pending(), 0, 'stop() cleared every timer');
  });

  it('polling: edges found by reading the value every pollMs, with debounce', async () => {
    const { sim, clock, driver, values } = await simDriver({
      pollMs: 10,
      pins: [{ id: 'btn', bcm: 17, direction: 'in', debounceMs: 25 }],
    });
    sim.set(17, 1);
    clock.advance(10); // the poll sees it
    await flush();
    assert.deepEqual(values('btn'), [false], 'debounce still pending');
    clock.advance(30);
    await flush();
    assert.deepEqual(values('btn'), [false, true]);
    sim.set(17, 0);
    clock.advance(10);
    await flush();
    clock.advance(30);
    await flush();
    assert.deepEqual(values('btn'), [false, true, false]);
    await driver.stop();
    assert.equal(clock.pending(), 0);
  });

  it('a stopped driver releases its pins and can start again', async () => {
    const { sim, driver } = await simDriver();
    assert.ok(sim.isOpen(17));
    await driver.stop();
    assert.ok(!sim.isOpen(17) && !sim.isOpen(22));
    await rejectsCode(driver.write('fan', true), 'SENSOR_UNAVAILABLE');
    await driver.start();
    assert.ok(sim.isOpen(17));
    await driver.stop();
  });

  it('a pin that cannot be opened fails start() with SENSOR_UNAVAILABLE and releases the others', async () => {
    const sim = new SimGpio();
    const busy = await sim.open({ gpio: 22, direction: 'out' });
    const d = new GpioDriver({ type: 'gpio', name: 'g', backend: 'sim', pins }, { backend: sim });
    await rejectsCode(d.start(), 'SENSOR_UNAVAILABLE');
    assert.ok(!sim.isOpen(17), 'the pins opened before the failure were released');
    assert.equal(d.health().ok, false);
    busy.close();
    await d.start();
    assert.equal(d.health().ok, true);
    await d.stop();
  });

  it('a bad pin config is CONFIG_INVALID', () => {
    assert.throws(
      () => new GpioDriver({ type: 'gpio', name: 'g', backend: 'sim', pins: [{ id: 'a', bcm: 60, direction: 'in' }] }),
      /bcm must be 0-53/,
    );
    assert.throws(
      () =>
        new GpioDriver({
          type: 'gpio',
          name: 'g',
          backend: 'sim',
          pins: [
            { id: 'a', bcm: 1, direction: 'in' },
            { id: 'b', bcm: 1, direction: 'out' },
          ],
        }),
      /BCM 1 is configured twice/,
    );
    assert.throws(
      () =>
        new GpioDriver({
          type: 'gpio',
          name: 'g',
          backend: 'sim',
          pins: [
            { id: 'a', bcm: 1, direction: 'in' },
            { id: 'a', bcm: 2, direction: 'out' },
          ],
        }),
      /used twice/,
    );
  });
});

async function rejectsCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof TalonError && e.code === code);
}

function sysfsTree(chips: Array<[string, string, number, number]>): string {
  const root = mkdtempSync(join(tmpdir(), 'talon-gpio-'));
  tmpRoots.push(root);
  mkdirSync(join(root, 'class', 'gpio'), { recursive: true });
  for (const [name, label, base, ngpio] of chips) {
    const d = join(root, 'class', 'gpio', name);
    mkdirSync(d);
    writeFileSync(join(d, 'label'), `${label}\n`);
    writeFileSync(join(d, 'base'), `${base}\n`);
    writeFileSync(join(d, 'ngpio'), `${ngpio}\n`);
  }
  return root;
}

describe('GPIO chip base discovery', () => {
  it('Pi 4 on a recent kernel: pinctrl-bcm2711 at 512 (BCM 17 = gpio529)', () => {
    const sys = sysfsTree([
      ['gpiochip570', 'raspberrypi-exp-gpio', 570, 8],
      ['gpiochip512', 'pinctrl-bcm2711', 512, 58],
    ]);
    const chip = findHeaderChip(sys);
    assert.deepEqual(chip, { name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 });
    assert.equal(chip.base + 17, 529);
  });

  it('Pi 5: pinctrl-rp1 at 571 even with chips of lower base', () => {
    const sys = sysfsTree([
      ['gpiochip512', 'gpio-brcmstb@107d508500', 512, 32],
      ['gpiochip544', 'gpio-brcmstb@107d508500', 544, 4],
      ['gpiochip571', 'pinctrl-rp1', 571, 54],
    ]);
    assert.equal(findHeaderChip(sys).base, 571);
  });

  it('older Pi kernels: pinctrl-bcm2835 at 0', () => {
    assert.equal(
      findHeaderChip(
        sysfsTree([
          ['gpiochip0', 'pinctrl-bcm2835', 0, 54],
          ['gpiochip504', 'raspberrypi-exp-gpio', 504, 8],
        ]),
      ).base,
      0,
    );
  });

  it('another board: the lowest base, or the chip named in the config', () => {
    const sys = sysfsTree([
      ['gpiochip300', 'tegra234-gpio', 348, 164],
      ['gpiochip316', 'tegra234-gpio-aon', 316, 32],
    ]);
    assert.equal(findHeaderChip(sys).label, 'tegra234-gpio-aon');
    assert.equal(findHeaderChip(sys, 'tegra234-gpio').base, 348);
    assert.throws(
      () => findHeaderChip(sys, 'nope'),
      /no GPIO chip labelled "nope" \(found: tegra234-gpio-aon, tegra234-gpio\)/,
    );
  });

  it('no GPIO at all → SENSOR_UNAVAILABLE; malformed chips are ignored', () => {
    assert.throws(
      () => findHeaderChip(join(tmpdir(), 'talon-no-such-sysfs')),
      (e: unknown) => e instanceof TalonError && e.code === 'SENSOR_UNAVAILABLE' && /no GPIO/.test(e.message),
    );
    const sys = sysfsTree([['gpiochip0', 'broken', NaN, 4]]);
    assert.deepEqual(listChips(sys), []);
    assert.throws(() => findHeaderChip(sys), /no GPIO chip/);
  });

  it('the onoff backend refuses to start without a chip (this kernel has no GPIO)', async () => {
    const d = new GpioDriver({ type: 'gpio', name: 'g', sysRoot: join(tmpdir(), 'talon-no-such-sysfs'), pins });
    await rejectsCode(d.start(), 'SENSOR_UNAVAILABLE');
    await d.stop();
  });
});

describe('GpioDriver over onoff and a faked sysfs (private mount namespace)', () => {
  it('passes the contract and maps BCM → sysfs numbers, writes, reads, polled edges, active-low', async () => {
    assert.equal(process.getuid?.(), 0, 'this test runs as root (CI does): it needs `unshare -m` and `mount`');
    const child = join(import.meta.dirname, 'gpio-sysfs.child.ts');
    const script =
      'mount -t tmpfs -o size=1m talon-fake-sysfs /sys/class && exec "$0" --import tsx --test --test-reporter=spec "$1"';
    const proc = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, process.execPath, child], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TALON_FAKE_SYSFS: '1', NODE_TEST_CONTEXT: undefined },
    });
    let out = '';
    proc.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    proc.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), 25_000);
      proc.on('close', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    assert.equal(code, 0, `the namespace child failed:\n${out}`);
    assert.match(out, /ℹ fail 0/);
    assert.match(out, /ℹ skipped 0/);
    assert.match(out, /ℹ pass 14\b/, 'the contract (10) and the four sysfs tests ran');
  });
});
