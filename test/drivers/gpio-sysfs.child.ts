/**
 * The GPIO driver over real onoff and a faked sysfs. Run only by gpio.test.ts, as root,
 * inside `unshare -m --propagation private` with a tmpfs mounted on /sys/class (this file
 * refuses to run anywhere else, so it never touches a real /sys/class/gpio).
 *
 * The fake: /sys/class/gpio/gpiochip512/{label=pinctrl-bcm2711,base=512,ngpio=58} (a Pi 4
 * on a 6.x kernel), and `export`/`unexport` as FIFOs served by two small watcher processes.
 * onoff writes a number to `export` and then spins (synchronously, up to 10000 opens) until
 * gpioN/value appears; a FIFO makes its write wait for the watcher, which builds gpioN/
 * {direction,edge,active_low,value} in a staging directory and renames it into place at
 * once. `unexport` is logged (the directories are removed between tests by resetPins()).
 *
 * What a fake cannot show: a tmpfs file raises no interrupt (epoll on it reports nothing),
 * and no kernel applies `direction` or `active_low`. So inputs here are polled (pollMs),
 * which is the path tested; active-low is done by the driver itself (it writes active_low=0
 * and inverts), which the raw value files prove; interrupts are covered on simulated pins, and here only as
far as asking for them (edge=both) and falling back to polling when epoll refuses the file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { driverContract } from './contract.ts';
import { GpioDriver, type GpioDriverConfig } from '../../drivers/gpio/driver.ts';
import type { Reading } from '../../drivers/types.ts';

const GPIO = '/sys/class/gpio';

const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
if (process.env.TALON_FAKE_SYSFS !== '1' || !/ \/sys\/class rw[^\n]* - tmpfs talon-fake-sysfs /.test(mountinfo)) {
  throw new Error('gpio-sysfs.child.ts runs only inside the private mount namespace set up by gpio.test.ts');
}

const WATCHER = `
const fs = require('fs');
const [dir, which] = process.argv.slice(1);
const handle = (n) => {
  if (which === 'export') {
    const stage = dir + '/.stage' + n;
    fs.rmSync(stage, { recursive: true, force: true });
    fs.mkdirSync(stage);
    for (const [f, v] of [['direction', 'in'], ['edge', 'none'], ['active_low', '0'], ['value', '0']]) fs.writeFileSync(stage + '/' + f, v + '\\n');
    fs.renameSync(stage, dir + '/gpio' + n);
  }
  fs.appendFileSync(dir + '/' + which + '.log', n + '\\n');
};
// onoff writes no newline; every number on this fake chip (512-569) has three digits
const numbers = (text) => text.match(/\\d{3}/g) || [];
if (which === 'export') {
  // one open per export: onoff's write waits for this reader, and onoff exports the next
  // pin only after this one's files exist, so writes never meet
  for (;;) numbers(fs.readFileSync(dir + '/export', 'utf8')).forEach(handle);
} else {
  // unexports come back to back: a reader that closed at EOF could drop a write that opened
  // just before the close, so hold the FIFO open (read-write: never EOF) and read forever
  const fd = fs.openSync(dir + '/unexport', 'r+');
  const buf = Buffer.alloc(4096);
  for (;;) numbers(buf.toString('utf8', 0, fs.readSync(fd, buf, 0, buf.length, null))).forEach(handle);
}
`;

const watchers: ChildProcess[] = [];

before(() => {
  mkdirSync(GPIO, { recursive: true });
  const chip = join(GPIO, 'gpiochip512');
  mkdirSync(chip);
  writeFileSync(join(chip, 'label'), 'pinctrl-bcm2711\n');
  writeFileSync(join(chip, 'base'), '512\n');
  writeFileSync(join(chip, 'ngpio'), '58\n');
  const exp = join(GPIO, 'gpiochip570');
  mkdirSync(exp);
  writeFileSync(join(exp, 'label'), 'raspberrypi-exp-gpio\n');
  writeFileSync(join(exp, 'base'), '570\n');
  writeFileSync(join(exp, 'ngpio'), '8\n');
  for (const f of ['export', 'unexport']) {
    execFileSync('mkfifo', [join(GPIO, f)]);
    watchers.push(spawn(process.execPath, ['-e', WATCHER, GPIO, f], { stdio: 'inherit' }));
  }
});

after(async () => {
  for (const w of watchers) {
    if (w.exitCode === null) w.kill('SIGKILL');
  }
  await Promise.all(
    watchers.map((w) => (w.exitCode !== null || w.signalCode !== null ? null : new Promise((r) => w.once('exit', r)))),
  );
});

function file(gpio: number, f: string): string {
  return readFileSync(join(GPIO, `gpio${gpio}`, f), 'utf8').trim();
}

function log(which: 'export' | 'unexport'): number[] {
  const p = join(GPIO, `${which}.log`);
  return existsSync(p) ? readFileSync(p, 'utf8').trim().split('\n').filter(Boolean).map(Number) : [];
}

/** forget earlier tests' pins and logs: every driver below starts from unexported pins */
function resetPins(): void {
  for (const n of readdirSync(GPIO))
    if (/^gpio\d+$/.test(n) || n.endsWith('.log')) rmSync(join(GPIO, n), { recursive: true, force: true });
}

async function waitFor(pred: () => boolean, what: string | (() => string), ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const config: GpioDriverConfig = {
  type: 'gpio',
  name: 'gpio-sysfs',
  pollMs: 5,
  pins: [
    { id: 'button', bcm: 17, direction: 'in' },
    { id: 'door', bcm: 27, direction: 'in', activeLow: true, debounceMs: 20 },
    { id: 'fan', bcm: 22, direction: 'out' },
    { id: 'relay', bcm: 23, direction: 'out', activeLow: true },
  ],
};

driverContract('gpio (onoff over a faked sysfs)', async () => {
  resetPins();
  const driver = new GpioDriver(config);
  return {
    driver,
    // the watcher logs unexports a moment after stop() wrote them: let it finish
    cleanup: () => waitFor(() => log('unexport').length >= log('export').length, 'the unexports of this run'),
    // a level change on BCM 17 (gpio529), found by the driver's poll
    push: async () => writeFileSync(join(GPIO, 'gpio529', 'value'), file(529, 'value') === '1' ? '0\n' : '1\n'),
  };
});

describe('onoff over a faked sysfs', () => {
  it('finds pinctrl-bcm2711 at base 512, exports BCM 17 as gpio529, and configures every pin', async () => {
    resetPins();
    const d = new GpioDriver(config);
    await d.start();
    try {
      assert.equal(d.headerChip?.label, 'pinctrl-bcm2711');
      assert.equal(d.gpioNumber(17), 529);
      assert.deepEqual(log('export'), [529, 539, 534, 535], 'BCM 17, 27, 22, 23 exported as base + BCM');
      assert.equal(file(529, 'direction'), 'in');
      assert.equal(file(539, 'direction'), 'in');
      // onoff sets an output's direction and level at once: "low" / "high" (the kernel shows "out")
      assert.equal(file(534, 'direction'), 'low', 'the fan starts off');
      assert.equal(file(535, 'direction'), 'high', 'the active-low relay starts off: raw high');
      for (const n of [529, 539, 534, 535])
        assert.equal(file(n, 'active_low'), '0', `gpio${n}: the driver inverts, not the kernel`);
      assert.equal(file(529, 'edge'), 'none', 'polled inputs ask for no interrupts');
    } finally {
      await d.stop();
    }
    await waitFor(
      () => log('unexport').length === 4,
      () => `four unexports (logged: ${JSON.stringify(log('unexport'))}; files: ${readdirSync(GPIO).join(' ')})`,
    );
    assert.deepEqual(log('unexport').sort(), [529, 534, 535, 539]);
  });

  it('actuator writes land in the value files, active-low inverted', async () => {
    resetPins();
    const d = new GpioDriver(config);
    await d.start();
    try {
      await d.write('fan', true);
      assert.equal(file(534, 'value'), '1');
      await d.write('fan', false);
      assert.equal(file(534, 'value'), '0');
      await d.write('relay', true);
      assert.equal(file(535, 'value'), '0', 'active-low: on = raw 0');
      await d.write('relay', false);
      assert.equal(file(535, 'value'), '1');
    } finally {
      await d.stop();
    }
  });

  it('reads inputs and detects edges by polling the value file; active-low inverts', async () => {
    resetPins();
    const d = new GpioDriver(config);
    const got: Reading[] = [];
    d.onReading((r) => got.push(r));
    await d.start();
    const values = (id: string) => got.filter((r) => r.sensor === id).map((r) => r.value);
    try {
      assert.equal((await d.read('button')).value, false, 'raw 0 on an active-high input');
      assert.equal((await d.read('door')).value, true, 'raw 0 on an active-low input = active');
      writeFileSync(join(GPIO, 'gpio529', 'value'), '1\n');
      await waitFor(() => values('button').length >= 2, 'the rising edge on BCM 17');
      assert.deepEqual(values('button'), [false, true]);
      writeFileSync(join(GPIO, 'gpio529', 'value'), '0\n');
      await waitFor(() => values('button').length >= 3, 'the falling edge on BCM 17');
      assert.deepEqual(values('button'), [false, true, false]);
      assert.equal((await d.read('button')).value, false);
      // the door opens: raw 1 on an active-low pin, held past its 20 ms debounce
      writeFileSync(join(GPIO, 'gpio539', 'value'), '1\n');
      await waitFor(() => values('door').length >= 2, 'the door edge');
      assert.deepEqual(values('door'), [true, false]);
      assert.ok((d.health().counters.edges ?? 0) >= 3);
    } finally {
      await d.stop();
    }
  });

  it('an input set up for interrupts asks for them, and falls back to polling when the line has none; no fd leaks', async () => {
    resetPins();
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const d = new GpioDriver({ type: 'gpio', name: 'irq', pins: [{ id: 'pir', bcm: 5, direction: 'in' }] });
    const got: Reading[] = [];
    d.onReading((r) => got.push(r));
    await d.start();
    try {
      assert.equal(file(517, 'edge'), 'both', 'onoff asked the kernel for both edges');
      assert.equal(d.health().counters.pollFallbacks, 1, 'epoll refused the tmpfs file: polling instead');
      writeFileSync(join(GPIO, 'gpio517', 'value'), '1\n');
      await waitFor(() => got.length >= 2, 'the edge, found by the fallback poll');
      assert.deepEqual(
        got.map((r) => r.value),
        [false, true],
      );
    } finally {
      await d.stop();
    }
    assert.equal(fds(), before, 'the value file was closed');
  });
});
