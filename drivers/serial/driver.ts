/**
 * SerialDriver: sensors on a serial port (serialport), speaking a line protocol (key=value,
 * CSV, JSON lines, NMEA 0183) or Modbus RTU.
 *
 * - Line protocols push: each good line updates the sensors it names, and listeners get a
 *   Reading; read() answers the latest value. A bad line (garbage, bad NMEA checksum, too
 *   long) is counted and changes nothing. A field of the wrong kind (text where a number
 *   is due) turns that sensor into a SENSOR_FAULT until a good value comes.
 * - Modbus RTU is polled every pollMs, one request at a time; read() answers the result of
 *   the latest poll: the value, or SENSOR_TIMEOUT / SENSOR_FAULT (exception, bad CRC).
 * - The port is opened once, locked (no second opener, in this process or another). When it
 *   is missing or vanishes (USB unplugged, socat gone) every read answers SENSOR_UNAVAILABLE,
 *   health() is not ok, and the driver reopens it with a doubling backoff until it is back.
 * Nothing a device sends can throw out of the driver: parsers are total, listeners are
 * isolated, and every serialport error lands in health().
 */
import { lstat } from 'node:fs';
import type { SerialPort as SerialPortClass } from 'serialport';
import type { ErrorObject } from 'ajv';
import { createAjv } from '../../runtime/core/ajv.ts';
import type { Driver, DriverHealth, Reading, SensorInfo, SensorValue, ActuatorInfo } from '../types.ts';
import { TalonError, type ErrorJSON } from '../../runtime/core/errors.ts';
import { systemClock, systemRandom, type Clock, type Random } from '../../runtime/core/clock.ts';
import { LineSplitter, lineParser, MAX_LINE, type FieldValue, type LineResult } from './protocols.ts';
import {
  ModbusMaster,
  planReads,
  decodeRaw,
  scaleValue,
  registerCount,
  type ReadPlan,
  type ReadResult,
} from './modbus.ts';
import { serialDriverSchema, type SerialDriverConfig, type SensorKind, type SerialSensorConfig } from './schema.ts';

/** the part of a serialport SerialPort the driver uses (so a test may hand in another) */
export interface PortLike {
  readonly isOpen: boolean;
  open(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  write(data: Buffer, cb?: (err: Error | null | undefined) => void): boolean;
  drain(cb: (err: Error | null) => void): void;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'close', fn: (err?: Error & { disconnected?: boolean }) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  removeAllListeners(): unknown;
}

export interface PortOptions {
  path: string;
  baudRate: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: 'none' | 'even' | 'odd';
  stopBits: 1 | 2;
}

export interface SerialDriverOptions {
  clock?: Clock;
  random?: Random;
  /** how a port is made; default: a locked serialport SerialPort, not opened */
  openPort?: (opts: PortOptions) => PortLike;
}

type Latest = { value: SensorValue; ts: number } | { error: TalonError; ts: number };

interface LineSensor {
  info: SensorInfo;
  field: string;
}

interface RegSensor {
  info: SensorInfo;
  scale: number;
  offset: number;
}

/** consecutive unparsable lines before health() says the line is wrong (baud rate, protocol) */
const BAD_STREAK = 10;

const COUNTERS = [
  'lines',
  'parsed',
  'badLines',
  'badChecksums',
  'oversize',
  'ignored',
  'faults',
  'reconnects',
  'disconnects',
  'openFailures',
  'portErrors',
  'requests',
  'responses',
  'timeouts',
  'exceptions',
  'polls',
  /** read(): answered with a value / failed (any code) for a known sensor */
  'reads',
  'errors',
] as const;
type Counter = (typeof COUNTERS)[number];

let validate: (((d: unknown) => boolean) & { errors?: ErrorObject[] | null }) | undefined;

/**
 * Checks a serial driver config against the schema and the rules it cannot say; returns
 * the problems as `path: reason` strings (empty when fine).
 */
export function checkSerialConfig(config: unknown): string[] {
  validate ??= createAjv('strict').compile(serialDriverSchema);
  if (!validate(config)) {
    return (validate.errors ?? [])
      .filter((e) => e.keyword !== 'if')
      .map(
        (e) =>
          `${e.instancePath || '(root)'}: ${e.message ?? 'invalid'}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`,
      );
  }
  const c = config as SerialDriverConfig;
  const problems: string[] = [];
  const ids = new Set<string>();
  const all = c.protocol === 'modbus' ? (c.modbus?.registers ?? []) : (c.sensors ?? []);
  for (const s of all) {
    if (ids.has(s.id)) problems.push(`sensor id "${s.id}" is used twice`);
    ids.add(s.id);
  }
  if (c.protocol === 'csv' && c.columns) {
    for (const s of c.sensors ?? []) {
      const field = s.field ?? s.id;
      if (!c.columns.includes(field))
        problems.push(
          `/sensors: "${s.id}" reads field "${field}", which is not one of the columns (${c.columns.join(', ')})`,
        );
    }
  }
  if (c.protocol === 'modbus') {
    for (const r of c.modbus?.registers ?? []) {
      if (r.address + registerCount(r.type) > 0x10000)
        problems.push(`/modbus/registers: "${r.id}" (${r.type} at ${r.address}) runs past register 65535`);
    }
  }
  const rc = c.reconnect;
  if (rc?.initialMs !== undefined && rc.maxMs !== undefined && rc.maxMs < rc.initialMs) {
    problems.push(`/reconnect: maxMs (${rc.maxMs}) is below initialMs (${rc.initialMs})`);
  }
  return problems;
}

const NMEA_KINDS: Record<string, SensorKind> = { time: 'string', date: 'string', sentence: 'string', valid: 'boolean' };

function coerce(kind: SensorKind, v: FieldValue): SensorValue | undefined {
  switch (kind) {
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    case 'string':
      return typeof v === 'string' ? v : String(v);
    case 'boolean': {
      if (typeof v === 'boolean') return v;
      if (v === 1 || v === 0) return v === 1;
      if (typeof v === 'string') {
        const s = v.toLowerCase();
        if (s === 'on' || s === 'true' || s === 'yes') return true;
        if (s === 'off' || s === 'false' || s === 'no') return false;
      }
      return undefined;
    }
  }
}

/** serialport (and its native addon) is loaded when the first serial driver starts, not at Talon's start */
let SerialPortCtor: typeof SerialPortClass | null = null;

/**
 * serialport's poller on Node ≥ 26.4: the addon calls its JavaScript callback outside a
 * callback scope, so the promise continuations it resolves (unixRead awaiting 'readable') wait
 * for some later, unrelated event — a Modbus answer arrived only when the request's timeout
 * fired (nodejs/node#62969; serialport/node-serialport#3148; the upstream fix, bindings-cpp
 * PR #239, is not released). Until it is, the poller's events are re-emitted from
 * setImmediate, which Node runs in a proper callback scope. The Poller class is not exported,
 * so it is reached through the first opened port; patched once per process, on any Node.
 */
export function deferPollerEvents(port: unknown): void {
  const poller = (port as { port?: { poller?: object } } | null)?.port?.poller;
  if (!poller) return;
  const proto = Object.getPrototypeOf(poller) as { emit?: (...args: unknown[]) => boolean; [POLLER_PATCHED]?: true };
  if (proto[POLLER_PATCHED] || typeof proto.emit !== 'function') return;
  const emit = proto.emit;
  proto.emit = function deferredEmit(this: object, ...args: unknown[]): boolean {
    setImmediate(() => emit.apply(this, args));
    return true;
  };
  proto[POLLER_PATCHED] = true;
}
const POLLER_PATCHED = Symbol.for('talon.serialport.pollerPatched');

function defaultPort(opts: PortOptions): PortLike {
  if (!SerialPortCtor) throw new Error('serialport is not loaded');
  return new SerialPortCtor({ ...opts, autoOpen: false, lock: true }) as unknown as PortLike;
}

export class SerialDriver implements Driver {
  readonly name: string;
  readonly type = 'serial';
  readonly #cfg: SerialDriverConfig;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #makePort: (opts: PortOptions) => PortLike;
  readonly #portOpts: PortOptions;
  readonly #initialMs: number;
  readonly #maxMs: number;

  /** line protocols: field → sensors fed by it */
  readonly #byField = new Map<string, LineSensor[]>();
  readonly #lineSensors = new Map<string, LineSensor>();
  readonly #regSensors = new Map<string, RegSensor>();
  readonly #plans: ReadPlan[] = [];
  readonly #parse: ((line: string) => LineResult) | undefined;
  readonly #splitter: LineSplitter | undefined;
  readonly #master: ModbusMaster | undefined;

  readonly #latest = new Map<string, Latest>();
  readonly #listeners = new Set<(r: Reading) => void>();
  readonly #counters: Record<Counter, number>;

  #running = false;
  /** bumped on every open, close and stop: async work from an older generation drops out */
  #gen = 0;
  #port: PortLike | undefined;
  #connected = false;
  #everOpened = false;
  #everOpenedBefore = false;
  #attempt = 0;
  #retryTimer: unknown;
  #opening: Promise<void> | undefined;
  #pollTimer: unknown;
  /** the device-node check while open (see #watchPath) */
  #pathTimer: unknown;
  #lastError: TalonError | undefined;
  /** the last failure of each Modbus request (index in #plans), cleared by its next success */
  #planErrors = new Map<number, TalonError>();
  #badStreak = 0;
  #lastBadLine = '';
  /** sensors whose last read() failed, until they read well or get a good value */
  #readErrors = new Map<string, TalonError>();
  /** the first poll cycle after start(), which start() waits for */
  #firstPoll: Promise<void> | undefined;

  constructor(config: SerialDriverConfig, opts: SerialDriverOptions = {}) {
    const problems = checkSerialConfig(config);
    if (problems.length > 0) {
      const name =
        typeof (config as { name?: unknown })?.name === 'string' ? ` "${(config as { name: string }).name}"` : '';
      throw new TalonError('CONFIG_INVALID', `serial driver${name}: ${problems.join('; ')}`, { details: { problems } });
    }
    this.#cfg = config;
    this.name = config.name;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
    this.#makePort = opts.openPort ?? defaultPort;
    this.#portOpts = {
      path: config.path,
      baudRate: config.baudRate,
      dataBits: config.dataBits ?? 8,
      parity: config.parity ?? 'none',
      stopBits: config.stopBits ?? 1,
    };
    this.#initialMs = config.reconnect?.initialMs ?? 500;
    this.#maxMs = Math.max(this.#initialMs, config.reconnect?.maxMs ?? 30_000);
    this.#counters = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>;

    if (config.protocol === 'modbus') {
      const m = config.modbus!;
      for (const r of m.registers) {
        this.#regSensors.set(r.id, {
          info: this.#info({ ...r, kind: 'number' }, 'polled'),
          scale: r.scale ?? 1,
          offset: r.offset ?? 0,
        });
      }
      this.#plans = planReads(m.registers);
      this.#master = new ModbusMaster({
        clock: this.#clock,
        baudRate: config.baudRate,
        timeoutMs: m.timeoutMs ?? 500,
        write: (bytes) => this.#write(bytes),
      });
    } else {
      for (const s of config.sensors ?? []) {
        const field = s.field ?? s.id;
        const kind = s.kind ?? (config.protocol === 'nmea' ? NMEA_KINDS[field] : undefined) ?? 'number';
        const ls: LineSensor = { info: this.#info({ ...s, kind }, 'pushed'), field };
        this.#lineSensors.set(s.id, ls);
        const list = this.#byField.get(field);
        if (list) list.push(ls);
        else this.#byField.set(field, [ls]);
      }
      const maxLine = config.maxLineBytes ?? MAX_LINE;
      this.#parse = lineParser(config.protocol, { columns: config.columns, maxLine });
      this.#splitter = new LineSplitter(
        {
          line: (l) => this.#onLine(l),
          oversize: () => {
            this.#counters.oversize++;
            this.#bad(`a line longer than ${maxLine} bytes was dropped`);
          },
        },
        maxLine,
      );
    }
  }

  #info(s: Omit<SerialSensorConfig, 'field'> & { kind: SensorKind }, mode: 'polled' | 'pushed'): SensorInfo {
    const info: SensorInfo = { id: s.id, name: s.name ?? s.id, kind: s.kind, mode };
    if (s.unit !== undefined) info.unit = s.unit;
    if (s.deviceClass !== undefined) info.deviceClass = s.deviceClass;
    if (s.stateClass !== undefined) info.stateClass = s.stateClass;
    else if (s.kind === 'number') info.stateClass = 'measurement';
    return info;
  }

  // ------------------------------------------------------------------------ lifecycle

  /**
   * Opens the port. Resolves after the first attempt either way: a missing device is not a
   * reason to hold up the kernel; it shows in health() and is retried with backoff.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    if (this.#makePort === defaultPort && !SerialPortCtor) SerialPortCtor = (await import('serialport')).SerialPort;
    await this.#open();
    // polled sensors answer from the first read on: wait for one cycle (bounded by the timeouts)
    const first = this.#firstPoll;
    this.#firstPoll = undefined;
    if (first) await first;
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#gen++;
    this.#clock.clearTimeout(this.#retryTimer);
    this.#clock.clearTimeout(this.#pollTimer);
    this.#clock.clearTimeout(this.#pathTimer);
    this.#retryTimer = undefined;
    this.#pollTimer = undefined;
    this.#pathTimer = undefined;
    this.#master?.abort('the driver stopped');
    if (this.#opening) await this.#opening;
    const port = this.#port;
    this.#port = undefined;
    this.#connected = false;
    this.#splitter?.reset();
    if (port) await closePort(port);
    this.#lastError = undefined;
    this.#everOpened = false;
    this.#firstPoll = undefined;
    this.#latest.clear();
    this.#readErrors.clear();
    this.#planErrors.clear();
    this.#badStreak = 0;
  }

  #open(): Promise<void> {
    const p = this.#openOnce().finally(() => {
      if (this.#opening === p) this.#opening = undefined;
    });
    this.#opening = p;
    return p;
  }

  #openOnce(): Promise<void> {
    const gen = ++this.#gen;
    let port: PortLike;
    try {
      port = this.#makePort(this.#portOpts);
    } catch (err) {
      this.#openFailed(err);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      // serialport emits 'error' for failures that have no callback: always listen
      port.on('error', (err) => this.#onError(port, err));
      port.open((err) => {
        if (gen !== this.#gen || !this.#running) {
          // stopped (or superseded) while opening: let go of it
          if (!err) {
            void closePort(port).then(resolve);
            return;
          }
          resolve();
          return;
        }
        if (err) {
          port.removeAllListeners();
          port.on('error', () => {});
          this.#openFailed(err);
          resolve();
          return;
        }
        deferPollerEvents(port);
        this.#port = port;
        this.#connected = true;
        this.#attempt = 0;
        this.#lastError = undefined;
        this.#badStreak = 0;
        this.#planErrors.clear();
        // reads that failed because the port was gone: that cause is gone now
        for (const [id, e] of this.#readErrors) if (e.code === 'SENSOR_UNAVAILABLE') this.#readErrors.delete(id);
        if (this.#everOpened) this.#counters.reconnects++;
        this.#everOpenedBefore = this.#everOpened;
        this.#everOpened = true;
        port.on('data', (chunk) => this.#onData(gen, chunk));
        port.on('close', (e) => this.#onClose(port, e));
        this.#watchPath(gen, port);
        if (this.#master) {
          const cycle = this.#pollCycle(gen);
          if (!this.#everOpenedBefore) this.#firstPoll = cycle;
        }
        resolve();
      });
    });
  }

  #openFailed(err: unknown): void {
    this.#counters.openFailures++;
    const msg = (err instanceof Error ? err.message : String(err)).replace(/^(Error: )+/, '');
    const inUse = /lock|resource temporarily unavailable|busy/i.test(msg);
    this.#lastError = new TalonError(
      'SENSOR_UNAVAILABLE',
      inUse
        ? `serial port ${this.#cfg.path} is in use by another program or driver (${msg}); retrying`
        : `cannot open serial port ${this.#cfg.path}: ${msg}; retrying`,
      { details: { path: this.#cfg.path } },
    );
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (!this.#running) return;
    this.#clock.clearTimeout(this.#retryTimer);
    const base = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    // ±20 % jitter so a fleet of devices does not retry in lockstep
    const delay = Math.max(1, Math.round(base * (0.8 + 0.4 * this.#random())));
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#running && !this.#connected) void this.#open();
    }, delay);
  }

  /**
   * Belt and braces for a device that goes away: serialport reports it when a read fails
   * (EIO on a USB adapter or a pty whose other end closed), but not always promptly on every
   * kernel; a device node that existed at open and is gone now (unplugged, socat ended) is a
   * disconnect too. Checked every PATH_CHECK_MS while open; skipped for paths that never
   * existed as files (test doubles).
   */
  #watchPath(gen: number, port: PortLike): void {
    const path = this.#cfg.path;
    const live = (): boolean => gen === this.#gen && port === this.#port && this.#running;
    lstat(path, (first) => {
      if (first || !live()) return;
      const tick = (): void => {
        this.#pathTimer = undefined;
        if (!live()) return;
        lstat(path, (err) => {
          if (!live()) return;
          if (err?.code === 'ENOENT') {
            this.#onClose(port, Object.assign(new Error('the device node is gone'), { disconnected: true }));
            void closePort(port);
            return;
          }
          this.#pathTimer = this.#clock.setTimeout(tick, PATH_CHECK_MS);
        });
      };
      this.#pathTimer = this.#clock.setTimeout(tick, PATH_CHECK_MS);
    });
  }

  #onClose(port: PortLike, err?: Error & { disconnected?: boolean }): void {
    if (port !== this.#port || !this.#running) return;
    this.#gen++;
    this.#clock.clearTimeout(this.#pathTimer);
    this.#pathTimer = undefined;
    this.#port = undefined;
    this.#connected = false;
    this.#counters.disconnects++;
    this.#clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#splitter?.reset();
    this.#master?.abort(`serial port ${this.#cfg.path} closed`);
    // values from before the loss are not served after it: new ones must come
    this.#latest.clear();
    this.#planErrors.clear();
    port.removeAllListeners();
    port.on('error', () => {});
    this.#lastError = new TalonError(
      'SENSOR_UNAVAILABLE',
      `serial port ${this.#cfg.path} went away${err?.message ? ` (${err.message})` : ''}; reconnecting`,
      { details: { path: this.#cfg.path } },
    );
    this.#attempt = 0;
    this.#scheduleReconnect();
  }

  #onError(port: PortLike, err: Error): void {
    this.#counters.portErrors++;
    if (port !== this.#port) return;
    this.#lastError = new TalonError('SENSOR_FAULT', `serial port ${this.#cfg.path}: ${err.message}`);
  }

  // ------------------------------------------------------------------------ line input

  #onData(gen: number, chunk: Buffer): void {
    if (gen !== this.#gen) return;
    try {
      if (this.#master) this.#master.feed(chunk);
      else this.#splitter!.push(chunk);
    } catch (err) {
      // a bug here must not take the kernel down with it
      this.#counters.portErrors++;
      this.#lastError = new TalonError(
        'SENSOR_FAULT',
        `serial driver ${this.name} failed on input: ${(err as Error).message}`,
      );
    }
  }

  #bad(message: string): void {
    this.#badStreak++;
    this.#lastBadLine = message;
  }

  #onLine(line: string): void {
    this.#counters.lines++;
    const r = this.#parse!(line);
    if (!r.ok) {
      switch (r.code) {
        case 'empty':
          return;
        case 'unsupported':
          this.#counters.ignored++;
          return;
        case 'bad_checksum':
          this.#counters.badChecksums++;
          break;
        case 'oversize':
          this.#counters.oversize++;
          break;
        case 'garbage':
          this.#counters.badLines++;
          break;
      }
      this.#bad(r.message);
      return;
    }
    this.#counters.parsed++;
    this.#badStreak = 0;
    this.#lastError = undefined; // a good line: the port works, whatever it said before
    const ts = this.#clock.now();
    for (const field in r.fields) {
      const sensors = this.#byField.get(field);
      if (!sensors) continue;
      const raw = r.fields[field]!;
      for (const s of sensors) {
        const value = coerce(s.info.kind, raw);
        if (value === undefined) {
          this.#counters.faults++;
          this.#latest.set(s.info.id, {
            ts,
            error: new TalonError(
              'SENSOR_FAULT',
              `sensor ${s.info.id}: field "${field}" is ${JSON.stringify(raw).slice(0, 60)}, not a ${s.info.kind}`,
              { details: { field } },
            ),
          });
          continue;
        }
        this.#latest.set(s.info.id, { value, ts });
        this.#readErrors.delete(s.info.id);
        this.#emit({ sensor: s.info.id, value, ts });
      }
    }
  }

  #emit(r: Reading): void {
    for (const l of this.#listeners) {
      try {
        l(r);
      } catch {
        /* a listener's problem is its own */
      }
    }
  }

  // --------------------------------------------------------------------------- modbus

  #write(bytes: Buffer): Promise<void> {
    const port = this.#port;
    if (!port || !this.#connected) return Promise.reject(new Error(`serial port ${this.#cfg.path} is not open`));
    return new Promise((resolve, reject) => {
      port.write(bytes, (err) => {
        if (err) {
          reject(err);
          return;
        }
        port.drain((e) => (e ? reject(e) : resolve()));
      });
    });
  }

  #schedulePoll(gen: number, delay: number): void {
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      void this.#pollCycle(gen);
    }, delay);
  }

  async #pollCycle(gen: number): Promise<void> {
    const started = this.#clock.now();
    const m = this.#cfg.modbus!;
    for (let i = 0; i < this.#plans.length; i++) {
      if (gen !== this.#gen) return;
      const plan = this.#plans[i]!;
      this.#counters.requests++;
      const r = await this.#master!.read(m.unitId, plan.fn, plan.address, plan.quantity);
      if (gen !== this.#gen) return; // closed meanwhile: the port-gone error says it all
      this.#applyPoll(i, plan, r);
    }
    if (gen !== this.#gen) return;
    this.#counters.polls++;
    const pollMs = m.pollMs ?? 1000;
    this.#schedulePoll(gen, Math.max(0, pollMs - (this.#clock.now() - started)));
  }

  #applyPoll(index: number, plan: ReadPlan, r: ReadResult): void {
    const ts = this.#clock.now();
    if (r.ok) {
      this.#counters.responses++;
      this.#planErrors.delete(index);
      this.#lastError = undefined;
      for (const { spec, index: at } of plan.items) {
        const s = this.#regSensors.get(spec.id)!;
        const value = scaleValue(decodeRaw(r.registers, at, spec.type, spec.wordOrder ?? 'big'), s.scale, s.offset);
        if (value === undefined) {
          this.#counters.faults++;
          this.#latest.set(spec.id, {
            ts,
            error: new TalonError(
              'SENSOR_FAULT',
              `sensor ${spec.id}: register ${spec.address} holds a ${spec.type} that is not a finite number`,
            ),
          });
        } else {
          this.#latest.set(spec.id, { value, ts });
          this.#readErrors.delete(spec.id);
        }
      }
      return;
    }
    let error: TalonError;
    const where = `${plan.table} registers ${plan.address}..${plan.address + plan.quantity - 1} of unit ${this.#cfg.modbus!.unitId} on ${this.#cfg.path}`;
    switch (r.code) {
      case 'timeout':
        this.#counters.timeouts++;
        error = new TalonError('SENSOR_TIMEOUT', `Modbus timeout reading ${where}: ${r.message}`);
        break;
      case 'exception':
        this.#counters.exceptions++;
        error = new TalonError('SENSOR_FAULT', `Modbus exception reading ${where}: ${r.message}`, {
          details: { exception: r.exception },
        });
        break;
      case 'crc':
        this.#counters.badChecksums++;
        error = new TalonError('SENSOR_FAULT', `Modbus bad CRC reading ${where}: ${r.message}`);
        break;
      case 'mismatch':
        this.#counters.badLines++;
        error = new TalonError('SENSOR_FAULT', `Modbus unexpected answer reading ${where}: ${r.message}`);
        break;
      case 'io':
        this.#counters.portErrors++;
        error = new TalonError('SENSOR_UNAVAILABLE', `Modbus request failed for ${where}: ${r.message}`);
        break;
    }
    this.#planErrors.set(index, error);
    for (const { spec } of plan.items) this.#latest.set(spec.id, { ts, error });
  }

  // ------------------------------------------------------------------------ the API

  sensors(): SensorInfo[] {
    const list = this.#master ? [...this.#regSensors.values()] : [...this.#lineSensors.values()];
    return list.map((s) => ({ ...s.info }));
  }

  async read(sensor: string): Promise<Reading> {
    const known = this.#lineSensors.has(sensor) || this.#regSensors.has(sensor);
    if (!known)
      throw new TalonError('SENSOR_NOT_FOUND', `driver ${this.name} has no sensor "${String(sensor).slice(0, 80)}"`);
    try {
      const r = this.#answer(sensor);
      this.#counters.reads++;
      this.#readErrors.delete(sensor);
      return r;
    } catch (err) {
      const e = TalonError.from(err);
      this.#counters.errors++;
      // health() stays not ok until this sensor has a good value again
      if (this.#running) this.#readErrors.set(sensor, e);
      throw e;
    }
  }

  #answer(sensor: string): Reading {
    if (!this.#running)
      throw new TalonError('SENSOR_UNAVAILABLE', `sensor ${sensor}: serial driver ${this.name} is not running`);
    if (!this.#connected) {
      throw new TalonError(
        'SENSOR_UNAVAILABLE',
        `sensor ${sensor}: ${this.#lastError?.message ?? `serial port ${this.#cfg.path} is not open`}`,
      );
    }
    const latest = this.#latest.get(sensor);
    if (!latest) {
      throw new TalonError(
        'SENSOR_UNAVAILABLE',
        this.#master
          ? `sensor ${sensor}: no answer from Modbus unit ${this.#cfg.modbus!.unitId} on ${this.#cfg.path} yet`
          : `sensor ${sensor}: no value from ${this.#cfg.path} yet`,
      );
    }
    if ('error' in latest) {
      const e = latest.error;
      // one failed Modbus request fails several sensors: each error names its sensor
      throw e.message.includes(sensor)
        ? e
        : new TalonError(e.code, `sensor ${sensor}: ${e.message}`, { details: e.details });
    }
    const stale = this.#cfg.staleMs;
    if (stale !== undefined && this.#clock.now() - latest.ts > stale) {
      throw new TalonError(
        'SENSOR_UNAVAILABLE',
        `sensor ${sensor}: last value is ${this.#clock.now() - latest.ts} ms old (staleMs ${stale})`,
      );
    }
    return { sensor, value: latest.value, ts: latest.ts };
  }

  onReading(listener: (r: Reading) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  actuators(): ActuatorInfo[] {
    return [];
  }

  async write(actuator: string, _value: boolean | number): Promise<void> {
    throw new TalonError(
      'ACTUATOR_NOT_FOUND',
      `serial driver ${this.name} has no actuator "${String(actuator).slice(0, 80)}"`,
    );
  }

  health(): DriverHealth {
    const counters: Record<string, number> = { ...this.#counters };
    let error: ErrorJSON | undefined;
    if (!this.#running) error = { code: 'NOT_RUNNING', message: `serial driver ${this.name} is not running` };
    else if (!this.#connected)
      error = (
        this.#lastError ?? new TalonError('SENSOR_UNAVAILABLE', `serial port ${this.#cfg.path} is not open`)
      ).toJSON();
    else if (this.#lastError) error = this.#lastError.toJSON();
    else if (this.#planErrors.size > 0) error = [...this.#planErrors.values()].at(-1)!.toJSON();
    else if (this.#readErrors.size > 0) error = [...this.#readErrors.values()].at(-1)!.toJSON();
    else if (this.#badStreak >= BAD_STREAK) {
      error = new TalonError(
        'SENSOR_FAULT',
        `the last ${this.#badStreak} lines from ${this.#cfg.path} could not be used (last: ${this.#lastBadLine}); check baudRate and protocol`,
      ).toJSON();
    }
    return error ? { ok: false, error, counters } : { ok: true, counters };
  }
}

/** how often an open port's device node is checked (see #watchPath) */
const PATH_CHECK_MS = 1000;

function closePort(port: PortLike): Promise<void> {
  return new Promise<void>((resolve) => {
    port.removeAllListeners();
    port.on('error', () => {});
    if (!port.isOpen) {
      resolve();
      return;
    }
    try {
      port.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
