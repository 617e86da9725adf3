/**
 * What every driver does the same way, so each driver only says how to sample a sensor and
 * drive an actuator: the running state, idempotent start/stop, read() with a deadline and
 * value checks (NaN, text where a number was due → SENSOR_FAULT; no answer → SENSOR_TIMEOUT),
 * counters, health that is never a false "all good", and pushed readings to listeners.
 *
 * Counters (health().counters): reads, errors (every failed read of a known sensor), faults,
 * timeouts, unavailable, pushed, writes, writeErrors, listenerErrors; drivers add their own.
 */
import type { ActuatorInfo, Driver, DriverHealth, Reading, SensorInfo, SensorValue } from './types.ts';
import { TalonError } from '../runtime/core/errors.ts';
import { systemClock, type Clock } from '../runtime/core/clock.ts';

export interface BaseDriverOptions {
  name: string;
  type: string;
  clock?: Clock;
  /** a sample that has not answered after this long fails with SENSOR_TIMEOUT (default 2000) */
  readTimeoutMs?: number;
  /** called when a listener throws (the kernel logs it); the driver carries on */
  onListenerError?: (err: unknown) => void;
}

export const SENSOR_ID_PATTERN = '^[a-z0-9][a-z0-9._-]*$';

/** Checks a raw sample against the sensor's kind; throws SENSOR_FAULT with what was wrong. */
export function checkValue(info: SensorInfo, raw: unknown): SensorValue {
  const kind = info.kind;
  if (kind === 'number') {
    if (typeof raw === 'number') {
      if (Number.isFinite(raw)) return raw;
      throw new TalonError('SENSOR_FAULT', `sensor ${info.id} returned ${String(raw)} where a finite number was due`, {
        details: { sensor: info.id, value: String(raw) },
      });
    }
    throw new TalonError('SENSOR_FAULT', `sensor ${info.id} returned ${describe(raw)} where a number was due`, {
      details: { sensor: info.id, value: describe(raw) },
    });
  }
  if (typeof raw === kind) return raw as SensorValue;
  throw new TalonError('SENSOR_FAULT', `sensor ${info.id} returned ${describe(raw)} where a ${kind} was due`, {
    details: { sensor: info.id, value: describe(raw) },
  });
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

export abstract class BaseDriver implements Driver {
  readonly name: string;
  readonly type: string;
  protected readonly clock: Clock;
  readonly #readTimeoutMs: number;
  readonly #counters: Record<string, number> = {
    reads: 0,
    errors: 0,
    faults: 0,
    timeouts: 0,
    unavailable: 0,
    pushed: 0,
    writes: 0,
    writeErrors: 0,
    listenerErrors: 0,
  };
  #running = false;
  #transition: Promise<void> = Promise.resolve();
  readonly #sensorErrors = new Map<string, TalonError>();
  #driverError: TalonError | null = null;
  readonly #listeners = new Set<(r: Reading) => void>();
  readonly #latest = new Map<string, Reading>();
  readonly #onListenerError: ((err: unknown) => void) | undefined;

  constructor(opts: BaseDriverOptions) {
    this.name = opts.name;
    this.type = opts.type;
    this.clock = opts.clock ?? systemClock;
    this.#readTimeoutMs = opts.readTimeoutMs ?? 2000;
    this.#onListenerError = opts.onListenerError;
  }

  // ---- what a driver implements -------------------------------------------------------

  /** the sensors, by id (a fresh copy is handed out by sensors()) */
  protected abstract sensorList(): SensorInfo[];
  protected actuatorList(): ActuatorInfo[] {
    return [];
  }
  /** one raw sample of a polled sensor (checked against its kind by the base) */
  protected abstract sample(info: SensorInfo): unknown;
  protected abstract onStart(): Promise<void>;
  protected abstract onStop(): Promise<void>;
  /** runs once the driver counts as running (emit() delivers from here on) */
  protected onStarted(): void {}
  protected actuate(a: ActuatorInfo, _value: boolean | number): Promise<void> {
    return Promise.reject(new TalonError('ACTUATOR_NOT_FOUND', `driver ${this.name} has no actuator ${a.id}`));
  }

  // ---- Driver -------------------------------------------------------------------------

  get isRunning(): boolean {
    return this.#running;
  }

  start(): Promise<void> {
    this.#transition = this.#transition
      .catch(() => {})
      .then(async () => {
        if (this.#running) return;
        try {
          await this.onStart();
        } catch (err) {
          // leave nothing half-started behind
          await this.onStop().catch(() => {});
          this.#driverError = TalonError.from(err);
          throw err;
        }
        this.#running = true;
        this.#driverError = null;
        this.onStarted();
      });
    return this.#transition;
  }

  stop(): Promise<void> {
    this.#transition = this.#transition
      .catch(() => {})
      .then(async () => {
        if (!this.#running) return;
        this.#running = false;
        this.#latest.clear();
        this.#sensorErrors.clear();
        await this.onStop();
      });
    return this.#transition;
  }

  sensors(): SensorInfo[] {
    return this.sensorList().map((s) => ({ ...s }));
  }

  actuators(): ActuatorInfo[] {
    return this.actuatorList().map((a) => ({ ...a }));
  }

  async read(id: string): Promise<Reading> {
    const info = this.sensorList().find((s) => s.id === id);
    if (!info)
      throw new TalonError('SENSOR_NOT_FOUND', `driver ${this.name} has no sensor ${JSON.stringify(id)}`, {
        details: { sensor: id },
      });
    if (!this.#running) {
      this.count('errors');
      this.count('unavailable');
      throw new TalonError('SENSOR_UNAVAILABLE', `sensor ${id} is unavailable: driver ${this.name} is not running`, {
        details: { sensor: id },
      });
    }
    if (info.mode === 'pushed') {
      const last = this.#latest.get(id);
      if (last) {
        this.count('reads');
        return { ...last };
      }
      const err =
        this.#sensorErrors.get(id) ??
        new TalonError('SENSOR_UNAVAILABLE', `sensor ${id} has not delivered a value yet`, { details: { sensor: id } });
      this.#countError(err);
      throw err;
    }
    let value: SensorValue;
    try {
      value = checkValue(info, await this.#withDeadline(info));
    } catch (e) {
      const err = this.#asSensorError(id, e);
      this.#sensorErrors.set(id, err);
      this.#countError(err);
      throw err;
    }
    this.#sensorErrors.delete(id);
    this.count('reads');
    return { sensor: id, value, ts: this.clock.now() };
  }

  onReading(listener: (r: Reading) => void): () => void {
    // wrap so the same function subscribed twice is two subscriptions
    const fn = (r: Reading): void => listener(r);
    this.#listeners.add(fn);
    return () => {
      this.#listeners.delete(fn);
    };
  }

  async write(id: string, value: boolean | number): Promise<void> {
    const a = this.actuatorList().find((x) => x.id === id);
    if (!a)
      throw new TalonError('ACTUATOR_NOT_FOUND', `driver ${this.name} has no actuator ${JSON.stringify(id)}`, {
        details: { actuator: id },
      });
    if (!this.#running) {
      this.count('writeErrors');
      throw new TalonError('SENSOR_UNAVAILABLE', `actuator ${id} is unavailable: driver ${this.name} is not running`, {
        details: { actuator: id },
      });
    }
    if (a.kind === 'boolean' ? typeof value !== 'boolean' : typeof value !== 'number' || !Number.isFinite(value)) {
      this.count('writeErrors');
      throw new TalonError(
        'BAD_REQUEST',
        `actuator ${id} takes a ${a.kind === 'boolean' ? 'boolean' : 'finite number'}, not ${String(value)}`,
        { details: { actuator: id } },
      );
    }
    try {
      await this.actuate(a, value);
    } catch (err) {
      this.count('writeErrors');
      throw err;
    }
    this.count('writes');
  }

  health(): DriverHealth {
    const counters = { ...this.#counters };
    if (this.#driverError) return { ok: false, error: this.#driverError.toJSON(), counters };
    if (!this.#running) {
      return { ok: false, error: { code: 'NOT_RUNNING', message: `driver ${this.name} is not running` }, counters };
    }
    const first = this.#sensorErrors.values().next();
    if (!first.done) return { ok: false, error: first.value.toJSON(), counters };
    return { ok: true, counters };
  }

  // ---- for subclasses -----------------------------------------------------------------

  protected count(name: string, n = 1): void {
    this.#counters[name] = (this.#counters[name] ?? 0) + n;
  }

  /** a driver-wide failure (port gone, chip missing); cleared by clearDriverError() */
  protected setDriverError(err: unknown): void {
    this.#driverError = TalonError.from(err);
  }
  protected clearDriverError(): void {
    this.#driverError = null;
  }

  /** delivers a pushed value: checked, remembered for read(), handed to every listener */
  protected emit(id: string, raw: unknown, ts = this.clock.now()): void {
    const info = this.sensorList().find((s) => s.id === id);
    if (!info || !this.#running) return;
    let value: SensorValue;
    try {
      value = checkValue(info, raw);
    } catch (e) {
      this.pushError(id, e);
      return;
    }
    const reading: Reading = { sensor: id, value, ts };
    this.#sensorErrors.delete(id);
    this.#latest.set(id, reading);
    this.count('pushed');
    for (const fn of [...this.#listeners]) {
      try {
        fn({ ...reading });
      } catch (err) {
        this.count('listenerErrors');
        this.#onListenerError?.(err);
      }
    }
  }

  /** updates what read() answers for a pushed sensor without telling listeners */
  protected remember(id: string, raw: unknown, ts = this.clock.now()): void {
    const info = this.sensorList().find((s) => s.id === id);
    if (!info || !this.#running) return;
    try {
      this.#latest.set(id, { sensor: id, value: checkValue(info, raw), ts });
      this.#sensorErrors.delete(id);
    } catch (e) {
      this.pushError(id, e);
    }
  }

  /** a pushed sensor failed: its read() answers this error until the next good value */
  protected pushError(id: string, e: unknown): void {
    const err = this.#asSensorError(id, e);
    this.#latest.delete(id);
    this.#sensorErrors.set(id, err);
    this.#countError(err);
  }

  #countError(err: TalonError): void {
    this.count('errors');
    if (err.code === 'SENSOR_TIMEOUT') this.count('timeouts');
    else if (err.code === 'SENSOR_UNAVAILABLE') this.count('unavailable');
    else this.count('faults');
  }

  #asSensorError(id: string, e: unknown): TalonError {
    if (
      e instanceof TalonError &&
      (e.code === 'SENSOR_FAULT' || e.code === 'SENSOR_TIMEOUT' || e.code === 'SENSOR_UNAVAILABLE')
    )
      return e;
    const msg = e instanceof Error ? e.message : String(e);
    return new TalonError('SENSOR_FAULT', `sensor ${id} failed: ${msg}`, { details: { sensor: id }, cause: e });
  }

  #withDeadline(info: SensorInfo): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = this.clock.setTimeout(() => {
        if (done) return;
        done = true;
        reject(
          new TalonError('SENSOR_TIMEOUT', `sensor ${info.id} did not answer within ${this.#readTimeoutMs} ms`, {
            details: { sensor: info.id, timeoutMs: this.#readTimeoutMs },
          }),
        );
      }, this.#readTimeoutMs);
      const settle = (fn: () => void): void => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        fn();
      };
      try {
        Promise.resolve(this.sample(info)).then(
          (v) => settle(() => resolve(v)),
          (err) => settle(() => reject(err)),
        );
      } catch (err) {
        settle(() => reject(err));
      }
    });
  }
}
