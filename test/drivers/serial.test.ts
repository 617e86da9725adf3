/**
 * SerialDriver over real ptys (socat): the driver opens one end with serialport, the test
 * plays the device on the other end (also serialport). Line protocols, bad input, a port
 * that vanishes and comes back, a port opened twice, and Modbus RTU against a slave written
 * here (register map, exception, bad CRC, silence). Then the driver contract, twice: a
 * pushed kv driver and a polled Modbus driver with fault hooks.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { SerialPort } from 'serialport';
import { SerialDriver, checkSerialConfig, type SerialDriverConfig } from '../../drivers/serial/index.ts';
import { deferPollerEvents } from '../../drivers/serial/driver.ts';
import { nmeaSentence } from '../../drivers/serial/protocols.ts';
import { buildExceptionResponse, buildReadResponse, crc16 } from '../../drivers/serial/modbus.ts';
import { TalonError, type ErrorCode } from '../../runtime/core/errors.ts';
import { systemClock } from '../../runtime/core/clock.ts';
import type { Reading } from '../../drivers/types.ts';
import { startPtyPair, type PtyPair } from '../helpers/socat.ts';
import { waitFor } from '../helpers/wait.ts';
import { driverContract } from './contract.ts';

// ------------------------------------------------------------------------------ helpers

interface Device {
  port: SerialPort;
  write(text: string | Buffer): Promise<void>;
  close(): Promise<void>;
}

/** the far end of the pty, where the test plays the device */
function openDevice(path: string): Promise<Device> {
  return new Promise((resolve, reject) => {
    const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
    port.on('error', () => {}); // the pty going away is part of the tests
    port.open((err) => {
      if (err) {
        reject(err);
        return;
      }
      deferPollerEvents(port); // the device end reads through the same poller (see the driver)
      resolve({
        port,
        write: (data) =>
          new Promise<void>((res, rej) => {
            port.write(data, (e) => (e ? rej(e) : port.drain((d) => (d ? rej(d) : res()))));
          }),
        close: () => new Promise<void>((res) => (port.isOpen ? port.close(() => res()) : res())),
      });
    });
  });
}

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, `expected TalonError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

async function valueOf(d: SerialDriver, id: string): Promise<unknown> {
  try {
    return (await d.read(id)).value;
  } catch {
    return undefined;
  }
}

/** waits until read(id) answers `want` */
async function waitValue(d: SerialDriver, id: string, want: unknown, timeoutMs = 20_000): Promise<void> {
  let last: unknown;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    last = await valueOf(d, id);
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(
    `timed out waiting for ${id} = ${String(want)} (last ${String(last)}; health ${JSON.stringify(d.health())})`,
  );
}

const counter = (d: SerialDriver, name: string): number => d.health().counters[name] ?? 0;

/** writes `lines` and waits until the driver has seen them all (lines counter) */
async function send(dev: Device, d: SerialDriver, ...lines: string[]): Promise<void> {
  const seen = counter(d, 'lines') + counter(d, 'oversize');
  await dev.write(lines.map((l) => `${l}\r\n`).join(''));
  const want = seen + lines.length;
  await waitFor(
    () => counter(d, 'lines') + counter(d, 'oversize') >= want,
    `the driver to take ${lines.length} line(s)`,
  );
}

interface Rig {
  pty: PtyPair;
  driver: SerialDriver;
  dev: Device;
  stop(): Promise<void>;
}

async function rig(
  config: Omit<SerialDriverConfig, 'path' | 'name' | 'type' | 'baudRate'> & Partial<SerialDriverConfig>,
): Promise<Rig> {
  const pty = await startPtyPair();
  const driver = new SerialDriver({
    name: 'serial-test',
    type: 'serial',
    baudRate: 115200,
    path: pty.a,
    ...config,
  } as SerialDriverConfig);
  const dev = await openDevice(pty.b);
  await driver.start();
  const r: Rig = {
    pty,
    driver,
    dev,
    stop: async () => {
      await driver.stop();
      await r.dev.close();
      await pty.stop();
    },
  };
  return r;
}

function noNaN(d: SerialDriver, ids: string[]): Promise<void[]> {
  return Promise.all(
    ids.map(async (id) => {
      const v = await valueOf(d, id);
      assert.ok(typeof v !== 'number' || Number.isFinite(v), `${id} is ${String(v)}`);
    }),
  );
}

// ------------------------------------------------------------------------ modbus slave

interface SlaveOptions {
  unitId: number;
}

/** a Modbus RTU slave on the far end of the pty: 0x03/0x04 from register maps */
class Slave {
  holding = new Map<number, number>();
  input = new Map<number, number>();
  /** addresses that answer exception 2 (illegal data address) */
  illegal = new Set<number>();
  mode: 'normal' | 'silent' | 'badcrc' | 'busy' = 'normal';
  requests = 0;
  #buf = Buffer.alloc(0);
  #dev: Device;
  #unit: number;

  constructor(dev: Device, opts: SlaveOptions) {
    this.#dev = dev;
    this.#unit = opts.unitId;
    dev.port.on('data', (chunk: Buffer) => this.#feed(chunk));
  }

  attach(dev: Device): void {
    this.#dev = dev;
    this.#buf = Buffer.alloc(0);
    dev.port.on('data', (chunk: Buffer) => this.#feed(chunk));
  }

  #feed(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    while (this.#buf.length >= 8) {
      const frame = this.#buf.subarray(0, 8);
      if (crc16(frame, 0, 6) !== (frame[6]! | (frame[7]! << 8))) {
        this.#buf = Buffer.alloc(0);
        return;
      }
      this.#buf = this.#buf.subarray(8);
      this.#handle(Buffer.from(frame));
    }
  }

  #handle(req: Buffer): void {
    this.requests++;
    const [unit, fn] = [req[0]!, req[1]!];
    if (unit !== this.#unit || this.mode === 'silent') return;
    const address = req.readUInt16BE(2);
    const qty = req.readUInt16BE(4);
    let answer: Buffer;
    if (fn !== 3 && fn !== 4) answer = buildExceptionResponse(unit, fn, 1);
    else if (this.mode === 'busy') answer = buildExceptionResponse(unit, fn, 6);
    else {
      const map = fn === 3 ? this.holding : this.input;
      const regs: number[] = [];
      let bad = false;
      for (let a = address; a < address + qty; a++) {
        if (this.illegal.has(a)) bad = true;
        regs.push(map.get(a) ?? 0);
      }
      answer = bad ? buildExceptionResponse(unit, fn, 2) : buildReadResponse(unit, fn as 3 | 4, regs);
    }
    if (this.mode === 'badcrc') answer[answer.length - 1] = answer[answer.length - 1]! ^ 0xff;
    void this.#dev.write(answer).catch(() => {});
  }
}

function f32(v: number): [number, number] {
  const b = Buffer.alloc(4);
  b.writeFloatBE(v);
  return [b.readUInt16BE(0), b.readUInt16BE(2)];
}

// -------------------------------------------------------------------------------- tests

describe('serial driver over a socat pty pair', () => {
  const rigs: Rig[] = [];
  after(async () => {
    for (const r of rigs) await r.stop().catch(() => {});
  });

  it('rejects a bad config with CONFIG_INVALID and every problem listed', () => {
    assert.throws(
      () =>
        new SerialDriver({
          name: 'x',
          type: 'serial',
          path: '/dev/null',
          baudRate: 9600,
          protocol: 'csv',
          sensors: [{ id: 't', field: 'nope' }],
        } as SerialDriverConfig),
      (e: unknown) => e instanceof TalonError && e.code === 'CONFIG_INVALID' && /columns/.test(e.message),
    );
    const problems = checkSerialConfig({
      name: 'x',
      type: 'serial',
      path: '/dev/x',
      baudRate: 9600,
      protocol: 'kv',
      sensors: [{ id: 'A b' }, { id: 't' }, { id: 't' }],
      color: 'red',
      reconnect: { initialMs: 100, maxMs: 10 },
    });
    assert.ok(
      problems.some((p) => p.includes('color')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.includes('/sensors/0/id')),
      problems.join('\n'),
    );
    const more = checkSerialConfig({
      name: 'x',
      type: 'serial',
      path: '/dev/x',
      baudRate: 9600,
      protocol: 'kv',
      sensors: [{ id: 't' }, { id: 't' }],
      reconnect: { initialMs: 100, maxMs: 10 },
    });
    assert.ok(
      more.some((p) => p.includes('used twice')),
      more.join('\n'),
    );
    assert.ok(
      more.some((p) => p.includes('maxMs')),
      more.join('\n'),
    );
    assert.ok(
      checkSerialConfig({ name: 'x', type: 'serial', path: '/dev/x', baudRate: 9600, protocol: 'modbus' }).some((p) =>
        p.includes('modbus'),
      ),
    );
  });

  it('key=value: values pushed and read; garbage, type mismatch and oversize lines counted, values unchanged', async () => {
    const r = await rig({
      protocol: 'kv',
      maxLineBytes: 256,
      sensors: [
        { id: 'gh.temp', field: 'temp', unit: '°C', deviceClass: 'temperature' },
        { id: 'gh.hum', field: 'hum', unit: '%' },
        { id: 'gh.door', field: 'door', kind: 'boolean' },
      ],
    });
    rigs.push(r);
    const { driver: d, dev } = r;
    assert.deepEqual(
      d.sensors().map((s) => [s.id, s.kind, s.mode, s.unit]),
      [
        ['gh.temp', 'number', 'pushed', '°C'],
        ['gh.hum', 'number', 'pushed', '%'],
        ['gh.door', 'boolean', 'pushed', undefined],
      ],
    );
    assert.equal(d.health().ok, true);
    await expectCode(d.read('gh.temp'), 'SENSOR_UNAVAILABLE'); // nothing yet
    await expectCode(d.read('gh.nope'), 'SENSOR_NOT_FOUND');

    const got: Reading[] = [];
    const off = d.onReading((x) => got.push(x));
    await send(dev, d, 'temp=21.5 hum=40 door=on');
    await waitValue(d, 'gh.temp', 21.5);
    assert.equal(await valueOf(d, 'gh.hum'), 40);
    assert.equal(await valueOf(d, 'gh.door'), true);
    assert.deepEqual(
      got.map((x) => [x.sensor, x.value]),
      [
        ['gh.temp', 21.5],
        ['gh.hum', 40],
        ['gh.door', true],
      ],
    );
    off();
    await send(dev, d, 'temp=22,hum=41,door=0');
    await waitValue(d, 'gh.temp', 22);
    assert.equal(await valueOf(d, 'gh.door'), false);

    // garbage: counted, nothing changes
    await send(dev, d, 'hello world', 'temp=99 junk', '\u0001\u0002\u0003 temp=99', 'temp= hum=99');
    assert.equal(counter(d, 'badLines'), 4);
    assert.equal(await valueOf(d, 'gh.temp'), 22);
    assert.equal(await valueOf(d, 'gh.hum'), 41);
    await dev.write(Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x0a])); // binary noise with a newline
    await waitFor(() => counter(d, 'badLines') === 5, 'binary noise counted');
    assert.equal(await valueOf(d, 'gh.temp'), 22);

    // a line longer than maxLineBytes: dropped and counted, the next line is fine
    await send(dev, d, `temp=${'9'.repeat(400)}`);
    assert.equal(counter(d, 'oversize'), 1);
    assert.equal(await valueOf(d, 'gh.temp'), 22);

    // text where a number is due: that sensor faults (never NaN), the others update
    await send(dev, d, 'temp=hot hum=42');
    await expectCode(d.read('gh.temp'), 'SENSOR_FAULT');
    assert.equal(await valueOf(d, 'gh.hum'), 42);
    assert.equal(d.health().ok, false, 'a failed read is not "all good"');
    assert.equal(d.health().error?.code, 'SENSOR_FAULT');
    await send(dev, d, 'temp=1e999'); // overflows: text, not Infinity
    await expectCode(d.read('gh.temp'), 'SENSOR_FAULT');
    await send(dev, d, 'temp=23.25');
    await waitValue(d, 'gh.temp', 23.25);
    assert.equal(d.health().ok, true, 'healthy again once the sensor reads well');
    const c = d.health().counters;
    assert.equal(c.parsed, 5);
    assert.equal(c.faults, 2);
    assert.ok((c.reads ?? 0) > 0 && (c.errors ?? 0) >= 3);
    await noNaN(d, ['gh.temp', 'gh.hum', 'gh.door']);

    // a stream of nothing but garbage (wrong baud rate) is not "all good"
    await send(dev, d, ...Array.from({ length: 10 }, (_, i) => `~~garbage ${i}~~`));
    assert.equal(d.health().ok, false);
    assert.match(d.health().error?.message ?? '', /baudRate/);
    await send(dev, d, 'temp=24');
    assert.equal(d.health().ok, true);
  });

  it('CSV and JSON lines', async () => {
    const csv = await rig({
      protocol: 'csv',
      columns: ['ts', 'temp', 'hum', 'label'],
      sensors: [
        { id: 'c.temp', field: 'temp' },
        { id: 'c.hum', field: 'hum' },
        { id: 'c.label', field: 'label', kind: 'string' },
      ],
    });
    rigs.push(csv);
    await send(csv.dev, csv.driver, '1700000000,19.5,55,"north, upper"');
    await waitValue(csv.driver, 'c.temp', 19.5);
    assert.equal(await valueOf(csv.driver, 'c.label'), 'north, upper');
    await send(csv.dev, csv.driver, '1700000001,20.5', '1700000001,x,y,z,extra', '1700000002,"unterminated,1,2');
    assert.equal(counter(csv.driver, 'badLines'), 3);
    assert.equal(await valueOf(csv.driver, 'c.temp'), 19.5);
    await send(csv.dev, csv.driver, '1700000003,,56,');
    await waitValue(csv.driver, 'c.hum', 56);
    assert.equal(await valueOf(csv.driver, 'c.temp'), 19.5, 'an empty cell leaves the value alone');

    const js = await rig({
      protocol: 'jsonl',
      sensors: [
        { id: 'j.temp', field: 'env.temp' },
        { id: 'j.ok', field: 'ok', kind: 'boolean' },
        { id: 'j.fw', field: 'fw', kind: 'string' },
      ],
    });
    rigs.push(js);
    await send(js.dev, js.driver, '{"env":{"temp":18.25},"ok":true,"fw":"1.2.3"}');
    await waitValue(js.driver, 'j.temp', 18.25);
    assert.equal(await valueOf(js.driver, 'j.ok'), true);
    assert.equal(await valueOf(js.driver, 'j.fw'), '1.2.3');
    await send(js.dev, js.driver, '{"env":{"temp":', 'not json', '[1,2,3]', '{"env":{"temp":NaN}}');
    assert.equal(counter(js.driver, 'badLines'), 4);
    assert.equal(await valueOf(js.driver, 'j.temp'), 18.25);
    await send(js.dev, js.driver, '{"env":{"temp":null}}'); // no field: nothing changes, not an error
    assert.equal(await valueOf(js.driver, 'j.temp'), 18.25);
    assert.equal(counter(js.driver, 'parsed'), 2);
  });

  it('NMEA 0183: GGA and RMC decoded; bad checksums and garbage counted, values unchanged, never NaN', async () => {
    const r = await rig({
      protocol: 'nmea',
      sensors: [
        { id: 'gps.lat', field: 'lat', unit: '°' },
        { id: 'gps.lon', field: 'lon', unit: '°' },
        { id: 'gps.alt', field: 'alt', unit: 'm' },
        { id: 'gps.fix', field: 'fix' },
        { id: 'gps.sats', field: 'satellites' },
        { id: 'gps.hdop', field: 'hdop' },
        { id: 'gps.speed', field: 'speedKmh', unit: 'km/h' },
        { id: 'gps.valid', field: 'valid' },
        { id: 'gps.time', field: 'time' },
      ],
    });
    rigs.push(r);
    const { driver: d, dev } = r;
    assert.equal(d.sensors().find((s) => s.id === 'gps.valid')?.kind, 'boolean');
    assert.equal(d.sensors().find((s) => s.id === 'gps.time')?.kind, 'string');
    const gga = nmeaSentence('GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,');
    const rmc = nmeaSentence('GNRMC,092751.000,A,5321.6802,N,00630.3372,W,10.80,36.88,150626,,,A');
    await send(dev, d, gga, rmc, nmeaSentence('GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00'));
    await waitValue(d, 'gps.valid', true);
    assert.equal(await valueOf(d, 'gps.lat'), 53.3613367);
    assert.equal(await valueOf(d, 'gps.lon'), -6.50562);
    assert.equal(await valueOf(d, 'gps.alt'), 61.7);
    assert.equal(await valueOf(d, 'gps.fix'), 1);
    assert.equal(await valueOf(d, 'gps.sats'), 8);
    assert.equal(await valueOf(d, 'gps.hdop'), 1.03);
    assert.equal(await valueOf(d, 'gps.speed'), 20.002);
    assert.equal(await valueOf(d, 'gps.time'), '09:27:51.000');
    assert.equal(counter(d, 'ignored'), 1, 'GSV is well-formed but not decoded');

    const tampered = gga.replace('5321.6802', '5921.6802'); // same checksum: now wrong
    const noSum = gga.slice(0, -3);
    await send(
      dev,
      d,
      tampered,
      noSum,
      gga.replace(/\*..$/, '*ZZ'),
      '$GPGGA,garbage*00',
      'random noise',
      '\u00ff\u00fe',
    );
    assert.equal(counter(d, 'badChecksums'), 4);
    assert.equal(counter(d, 'badLines'), 2);
    assert.equal(await valueOf(d, 'gps.lat'), 53.3613367, 'a bad sentence changes nothing');
    // no fix: the fix drops to 0, the position stays the last good one (absent fields)
    await send(dev, d, nmeaSentence('GPGGA,092752.000,,,,,0,00,99.99,,,,,,'));
    await waitValue(d, 'gps.fix', 0);
    assert.equal(await valueOf(d, 'gps.lat'), 53.3613367);
    await noNaN(
      d,
      d.sensors().map((s) => s.id),
    );
    assert.equal(d.health().ok, true);
  });

  it('the port vanishes (socat killed) → SENSOR_UNAVAILABLE and health not ok; back → reconnects, values flow', async () => {
    const r = await rig({
      protocol: 'kv',
      sensors: [{ id: 'v.temp', field: 'temp' }],
      reconnect: { initialMs: 20, maxMs: 100 },
    });
    rigs.push(r);
    const { driver: d, pty } = r;
    await send(r.dev, d, 'temp=20');
    await waitValue(d, 'v.temp', 20);

    await r.dev.close();
    await pty.kill();
    await waitFor(() => !d.health().ok, 'health to turn not ok');
    const h = d.health();
    assert.equal(h.error?.code, 'SENSOR_UNAVAILABLE');
    assert.ok(h.error?.message.includes(pty.a), h.error?.message);
    assert.equal(h.counters.disconnects, 1);
    const e = await expectCode(d.read('v.temp'), 'SENSOR_UNAVAILABLE');
    assert.ok(e.message.includes('v.temp'));
    // it keeps trying while the path is missing
    await waitFor(() => counter(d, 'openFailures') >= 2, 'reopen attempts while the port is gone');
    assert.equal(d.health().ok, false);

    await pty.launch();
    r.dev = await openDevice(pty.b);
    await waitFor(() => counter(d, 'reconnects') === 1, 'the driver to reconnect');
    // back, but no value since: still unavailable rather than an old value
    await expectCode(d.read('v.temp'), 'SENSOR_UNAVAILABLE');
    await send(r.dev, d, 'temp=25');
    await waitValue(d, 'v.temp', 25);
    assert.equal(d.health().ok, true);
  });

  it('a missing port at start: start() resolves, health says why, the driver connects when it appears', async () => {
    const pty = await startPtyPair();
    await pty.kill();
    const d = new SerialDriver({
      name: 'late',
      type: 'serial',
      path: pty.a,
      baudRate: 9600,
      protocol: 'kv',
      sensors: [{ id: 'l.x', field: 'x' }],
      reconnect: { initialMs: 20, maxMs: 50 },
    });
    let dev: Device | undefined;
    try {
      await d.start();
      assert.equal(d.health().ok, false);
      assert.match(d.health().error?.message ?? '', /cannot open serial port/);
      await expectCode(d.read('l.x'), 'SENSOR_UNAVAILABLE');
      await pty.launch();
      await waitFor(() => d.health().ok, 'the driver to open the port once it exists');
      assert.equal(counter(d, 'reconnects'), 0, 'a first open is not a reconnect');
      dev = await openDevice(pty.b);
      await send(dev, d, 'x=1');
      await waitValue(d, 'l.x', 1);
    } finally {
      await d.stop();
      await dev?.close();
      await pty.stop();
    }
  });

  it('staleMs: a pushed value too old answers SENSOR_UNAVAILABLE (injected clock)', async () => {
    const pty = await startPtyPair();
    const clock = { ...systemClock, t: 1_700_000_000_000, now: () => clock.t };
    const d = new SerialDriver(
      {
        name: 'stale',
        type: 'serial',
        path: pty.a,
        baudRate: 9600,
        protocol: 'kv',
        staleMs: 60_000,
        sensors: [{ id: 's.x', field: 'x' }],
      },
      { clock },
    );
    const dev = await openDevice(pty.b);
    try {
      await d.start();
      await send(dev, d, 'x=3');
      assert.deepEqual(await d.read('s.x'), { sensor: 's.x', value: 3, ts: 1_700_000_000_000 });
      clock.t += 60_001;
      const e = await expectCode(d.read('s.x'), 'SENSOR_UNAVAILABLE');
      assert.match(e.message, /60001 ms old/);
      await send(dev, d, 'x=4');
      assert.equal((await d.read('s.x')).value, 4);
    } finally {
      await d.stop();
      await dev.close();
      await pty.stop();
    }
  });

  it('the same port is never opened twice', async () => {
    const r = await rig({ protocol: 'kv', sensors: [{ id: 'o.x', field: 'x' }] });
    rigs.push(r);
    const second = new SerialDriver({
      name: 'second',
      type: 'serial',
      path: r.pty.a,
      baudRate: 115200,
      protocol: 'kv',
      sensors: [{ id: 'o2.x', field: 'x' }],
      reconnect: { initialMs: 20, maxMs: 40 },
    });
    try {
      await second.start();
      assert.equal(second.health().ok, false);
      assert.equal(second.health().error?.code, 'SENSOR_UNAVAILABLE');
      assert.match(second.health().error?.message ?? '', /in use/);
      await waitFor(() => counter(second, 'openFailures') >= 2, 'the second driver to keep trying');
      await send(r.dev, r.driver, 'x=7');
      await waitValue(r.driver, 'o.x', 7);
      await expectCode(second.read('o2.x'), 'SENSOR_UNAVAILABLE');
      // the first lets go: the second gets it
      await r.driver.stop();
      await waitFor(() => second.health().ok, 'the second driver to open the freed port');
    } finally {
      await second.stop();
    }
  });

  it('Modbus RTU: holding and input registers polled, decoded and scaled; exception, bad CRC and silence are faults', async () => {
    const pty = await startPtyPair();
    const dev = await openDevice(pty.b);
    const slave = new Slave(dev, { unitId: 17 });
    slave.holding.set(0, 215); // 21.5 °C at scale 0.1
    slave.holding.set(1, 0xfff6); // int16 -10
    const [fh, fl] = f32(12.75);
    slave.holding.set(2, fh);
    slave.holding.set(3, fl);
    slave.input.set(10, 0x0001); // uint32 0x0002_0001 in little word order = 131073
    slave.input.set(11, 0x0002);
    slave.input.set(20, 1000); // uint16 1000 * 0.1 - 40 = 60
    slave.illegal.add(50);
    const d = new SerialDriver({
      name: 'plc',
      type: 'serial',
      path: pty.a,
      baudRate: 115200,
      protocol: 'modbus',
      modbus: {
        unitId: 17,
        pollMs: 30,
        timeoutMs: 500,
        registers: [
          {
            id: 'plc.temp',
            table: 'holding',
            address: 0,
            type: 'int16',
            scale: 0.1,
            unit: '°C',
            deviceClass: 'temperature',
          },
          { id: 'plc.delta', table: 'holding', address: 1, type: 'int16' },
          { id: 'plc.flow', table: 'holding', address: 2, type: 'float32', unit: 'L/min' },
          {
            id: 'plc.energy',
            table: 'input',
            address: 10,
            type: 'uint32',
            wordOrder: 'little',
            unit: 'Wh',
            stateClass: 'total_increasing',
          },
          { id: 'plc.level', table: 'input', address: 20, type: 'uint16', scale: 0.1, offset: -40 },
          { id: 'plc.missing', table: 'holding', address: 50, type: 'uint16' },
        ],
      },
    });
    try {
      await d.start();
      // start() waited for the first poll: polled sensors answer at once
      assert.equal((await d.read('plc.temp')).value, 21.5);
      assert.equal((await d.read('plc.delta')).value, -10);
      assert.equal((await d.read('plc.flow')).value, 12.75);
      assert.equal((await d.read('plc.energy')).value, 131073);
      assert.equal((await d.read('plc.level')).value, 60);
      assert.deepEqual(
        d.sensors().map((s) => s.mode),
        Array(6).fill('polled'),
      );
      assert.equal(d.sensors().find((s) => s.id === 'plc.energy')?.stateClass, 'total_increasing');
      // an exception answer (illegal data address) is a fault of that sensor, counted
      const ex = await expectCode(d.read('plc.missing'), 'SENSOR_FAULT');
      assert.match(ex.message, /exception 2 \(illegal data address\)/);
      assert.ok(counter(d, 'exceptions') >= 1);
      assert.equal(d.health().ok, false);
      assert.equal(d.health().error?.code, 'SENSOR_FAULT');
      // four requests per cycle: holding 0..3, holding 50, input 10..11, input 20
      assert.ok(slave.requests >= 4);

      // values change on the next poll
      slave.holding.set(0, 0xffce); // -50 → -5.0
      await waitValue(d, 'plc.temp', -5);

      // fix the map: healthy
      slave.illegal.delete(50);
      slave.holding.set(50, 7);
      await waitValue(d, 'plc.missing', 7);
      await waitFor(() => d.health().ok, 'healthy once every request is answered');

      // bad CRC: counted, a fault, never the old value passed off as good
      slave.mode = 'badcrc';
      const crc0 = counter(d, 'badChecksums');
      await waitFor(() => counter(d, 'badChecksums') >= crc0 + 4, 'bad CRCs counted');
      await expectCode(d.read('plc.temp'), 'SENSOR_FAULT');
      assert.equal(d.health().ok, false);

      // silence: timeouts counted, SENSOR_TIMEOUT
      slave.mode = 'silent';
      const t0 = counter(d, 'timeouts');
      await waitFor(() => counter(d, 'timeouts') >= t0 + 4, 'timeouts counted');
      const te = await expectCode(d.read('plc.flow'), 'SENSOR_TIMEOUT');
      assert.match(te.message, /unit 17/);
      assert.equal(d.health().error?.code, 'SENSOR_TIMEOUT');

      // device busy (exception 6)
      slave.mode = 'busy';
      await waitFor(() => (d.health().error?.message ?? '').includes('busy'), 'a busy exception');
      await expectCode(d.read('plc.level'), 'SENSOR_FAULT');

      // a NaN float is a fault, not a value
      slave.mode = 'normal';
      slave.holding.set(2, 0x7fc0);
      slave.holding.set(3, 0);
      await waitFor(() => counter(d, 'faults') >= 1, 'the NaN float counted');
      await expectCode(d.read('plc.flow'), 'SENSOR_FAULT');
      await waitValue(d, 'plc.level', 60);
      slave.holding.set(2, fh);
      slave.holding.set(3, fl);
      await waitValue(d, 'plc.flow', 12.75);
      await waitFor(() => d.health().ok, 'healthy after everything reads well again');

      // the port vanishes mid-polling: unavailable, then back
      await dev.close();
      await pty.kill();
      await waitFor(() => !d.health().ok && d.health().error?.code === 'SENSOR_UNAVAILABLE', 'the Modbus port gone');
      await expectCode(d.read('plc.temp'), 'SENSOR_UNAVAILABLE');
      await pty.launch();
      const dev2 = await openDevice(pty.b);
      slave.attach(dev2);
      try {
        await waitValue(d, 'plc.temp', -5);
        assert.equal(counter(d, 'reconnects'), 1);
      } finally {
        await d.stop();
        await dev2.close();
      }
    } finally {
      await d.stop();
      await dev.close();
      await pty.stop();
    }
  });
});

// ----------------------------------------------------------------------------- contract

driverContract('serial (kv, pushed)', async () => {
  const pty = await startPtyPair();
  const dev = await openDevice(pty.b);
  const driver = new SerialDriver({
    name: 'serial-kv',
    type: 'serial',
    path: pty.a,
    baudRate: 115200,
    protocol: 'kv',
    sensors: [
      { id: 'kv.temp', field: 'temp', unit: '°C' },
      { id: 'kv.state', field: 'state', kind: 'string' },
    ],
  });
  let n = 0;
  return {
    driver,
    push: async () => {
      await dev.write(`temp=${20 + (n++ % 5)} state=ok\n`);
    },
    cleanup: async () => {
      await dev.close();
      await pty.stop();
    },
  };
});

driverContract('serial (modbus, polled)', async () => {
  const pty = await startPtyPair();
  const dev = await openDevice(pty.b);
  const slave = new Slave(dev, { unitId: 1 });
  const [fh, fl] = f32(3.5);
  slave.holding.set(0, fh);
  slave.holding.set(1, fl);
  slave.input.set(5, 123);
  const driver = new SerialDriver({
    name: 'serial-modbus',
    type: 'serial',
    path: pty.a,
    baudRate: 115200,
    protocol: 'modbus',
    modbus: {
      unitId: 1,
      pollMs: 20,
      timeoutMs: 500,
      registers: [
        { id: 'mb.flow', table: 'holding', address: 0, type: 'float32' },
        { id: 'mb.count', table: 'input', address: 5, type: 'uint16', scale: 2 },
      ],
    },
  });
  /** the faults act on the next poll: wait until two more cycles ended */
  const cycles = async (): Promise<void> => {
    const p0 = driver.health().counters.polls ?? 0;
    await waitFor(() => (driver.health().counters.polls ?? 0) >= p0 + 2, 'two poll cycles');
  };
  return {
    driver,
    cleanup: async () => {
      await dev.close();
      await pty.stop();
    },
    faults: {
      sensor: 'mb.flow',
      // throw: the slave answers an exception; nan: the float is NaN; timeout: silence
      kinds: ['throw', 'nan', 'timeout'],
      inject: async (kind) => {
        if (kind === 'throw') slave.illegal.add(0);
        if (kind === 'nan') {
          slave.holding.set(0, 0x7fc0);
          slave.holding.set(1, 0);
        }
        if (kind === 'timeout') slave.mode = 'silent';
        await cycles();
      },
      clear: async () => {
        slave.illegal.clear();
        slave.mode = 'normal';
        slave.holding.set(0, fh);
        slave.holding.set(1, fl);
        await cycles();
      },
    },
  };
});
