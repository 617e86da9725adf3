/**
 * SimDriver: simulated sensors from seeded patterns (./patterns.ts), so `npm start` shows
 * live data on any laptop and tests get exact, repeatable series. The value of a sensor at
 * clock time `now` is `series((now - origin) quantised to periodMs)`: with an injected clock
 * the same config and seed give the same readings, in any order of reads. A dropout in the
 * pattern answers SENSOR_UNAVAILABLE for that read.
 *
 * Sensors with `push: true` are delivered through onReading() every periodMs instead.
 * Actuators are in-memory (a simulated fan or relay): write() stores, actuatorState() reads.
 * For tests, inject(sensor, fault) makes a sensor throw, answer NaN or text, or hang.
 */
import { BaseDriver } from '../base.ts';
import type { ActuatorInfo, SensorInfo } from '../types.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { makeSeries, PRESETS, validateSpec, type Series } from './patterns.ts';
import type { SimDriverConfig } from './schema.ts';

// the config types are derived from the config's JSON Schema (./schema.ts)
export type { SimDriverConfig, SimSensorConfig, SimActuatorConfig } from './schema.ts';

export interface SimDriverDeps {
  clock?: Clock;
  /** origin of all series, ms epoch; default: clock.now() when the driver is made */
  origin?: number;
  onListenerError?: (err: unknown) => void;
}

export type SimFault = 'throw' | 'nan' | 'text' | 'timeout';

interface SimSensor {
  info: SensorInfo;
  series: Series;
  periodMs: number;
  scale: number;
}

export class SimDriver extends BaseDriver {
  readonly origin: number;
  readonly #list: SensorInfo[];
  readonly #byId = new Map<string, SimSensor>();
  readonly #acts: ActuatorInfo[];
  readonly #actState = new Map<string, boolean | number>();
  readonly #faults = new Map<string, SimFault>();
  #timers: unknown[] = [];

  constructor(config: SimDriverConfig, deps: SimDriverDeps = {}) {
    super({
      name: config.name,
      type: 'sim',
      clock: deps.clock,
      readTimeoutMs: config.readTimeoutMs,
      onListenerError: deps.onListenerError,
    });
    this.origin = deps.origin ?? this.clock.now();
    const seed = config.seed ?? 1;
    this.#list = config.sensors.map((s, i) => {
      if (this.#byId.has(s.id))
        throw new TalonError('CONFIG_INVALID', `sim driver ${config.name}: sensor id ${s.id} is used twice`);
      const spec = typeof s.pattern === 'string' ? PRESETS[s.pattern] : s.pattern;
      if (!spec)
        throw new TalonError(
          'CONFIG_INVALID',
          `sim sensor ${s.id}: unknown preset ${JSON.stringify(s.pattern)} (known: ${Object.keys(PRESETS).join(', ')})`,
        );
      try {
        validateSpec(spec);
      } catch (err) {
        throw new TalonError('CONFIG_INVALID', `sim sensor ${s.id}: ${(err as Error).message}`, { cause: err });
      }
      const info: SensorInfo = {
        id: s.id,
        name: s.name ?? s.id,
        kind: 'number',
        mode: s.push ? 'pushed' : 'polled',
        stateClass: s.stateClass ?? 'measurement',
        ...(s.unit === undefined ? {} : { unit: s.unit }),
        ...(s.deviceClass === undefined ? {} : { deviceClass: s.deviceClass }),
      };
      const sensorSeed = s.seed ?? (Math.imul(seed, 0x9e3779b1) ^ (i + 1)) >>> 0;
      this.#byId.set(s.id, {
        info,
        series: makeSeries(spec, sensorSeed),
        periodMs: s.periodMs ?? 1000,
        scale: 10 ** (s.decimals ?? 3),
      });
      return info;
    });
    this.#acts = (config.actuators ?? []).map((a) => ({ id: a.id, name: a.name ?? a.id, kind: a.kind ?? 'boolean' }));
    for (const a of this.#acts) this.#actState.set(a.id, a.kind === 'boolean' ? false : 0);
  }

  /** The value the sensor shows at clock time `now` (null = dropout); no counters. */
  valueAt(id: string, now: number): number | null {
    const s = this.#byId.get(id);
    if (!s) throw new TalonError('SENSOR_NOT_FOUND', `sim driver ${this.name} has no sensor ${id}`);
    const t = Math.floor((now - this.origin) / s.periodMs) * s.periodMs;
    const v = s.series(t);
    return v === null ? null : Math.round(v * s.scale) / s.scale;
  }

  /** Test hook: reads of `id` fail this way until inject(id, null). */
  inject(id: string, fault: SimFault | null): void {
    if (!this.#byId.has(id)) throw new TalonError('SENSOR_NOT_FOUND', `sim driver ${this.name} has no sensor ${id}`);
    if (fault === null) this.#faults.delete(id);
    else this.#faults.set(id, fault);
  }

  actuatorState(id: string): boolean | number | undefined {
    return this.#actState.get(id);
  }

  protected sensorList(): SensorInfo[] {
    return this.#list;
  }

  protected override actuatorList(): ActuatorInfo[] {
    return this.#acts;
  }

  protected sample(info: SensorInfo): unknown {
    const fault = this.#faults.get(info.id);
    switch (fault) {
      case 'throw':
        throw new Error('simulated sensor failure');
      case 'nan':
        return NaN;
      case 'text':
        return 'ERR 42';
      case 'timeout':
        return new Promise(() => {});
      default:
        break;
    }
    const v = this.valueAt(info.id, this.clock.now());
    if (v === null)
      throw new TalonError('SENSOR_UNAVAILABLE', `sensor ${info.id} has no value (simulated dropout)`, {
        details: { sensor: info.id },
      });
    return v;
  }

  protected async onStart(): Promise<void> {
    for (const s of this.#byId.values()) {
      if (s.info.mode !== 'pushed') continue;
      this.#timers.push(this.clock.setInterval(() => this.pushNow(s.info.id), s.periodMs));
    }
  }

  protected async onStop(): Promise<void> {
    for (const t of this.#timers) this.clock.clearInterval(t);
    this.#timers = [];
  }

  /** Delivers the current value of a pushed sensor now (also what its timer does). */
  pushNow(id: string): void {
    const s = this.#byId.get(id);
    if (!s || !this.isRunning) return;
    try {
      this.emit(id, this.sample(s.info));
    } catch (err) {
      this.pushError(id, err);
    }
  }

  protected override async actuate(a: ActuatorInfo, value: boolean | number): Promise<void> {
    this.#actState.set(a.id, value);
  }
}
