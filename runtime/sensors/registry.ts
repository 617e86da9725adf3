/**
 * The kernel's sensor registry: owns every configured driver, answers reads with a timeout
 * and a sanity check (a NaN, a string where a number was due, a hung driver are faults, never
 * values), publishes every good reading on `talon/<deviceId>/sensors/<id>` (JSON Reading),
 * keeps the latest value of each for /metrics and Home Assistant, and serves Hands through
 * kernel services checked against their grants:
 *   sensors.list()           → SensorInfo[] the grant covers
 *   sensors.read(id)         → Reading            (CAPABILITY_DENIED outside `sensors` globs)
 *   actuators.list()         → ActuatorInfo[] the grant covers
 *   actuators.write(id, v)   → void               (needs the actuator's pin in `gpio`; audited)
 */
import type { ActuatorInfo, Driver, Reading, SensorInfo } from '../../drivers/types.ts';
import type { Bus } from '../bus/types.ts';
import type { Audit } from '../audit/types.ts';
import type { HandCaller, KernelService } from '../supervisor/types.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { TalonError, type ErrorJSON } from '../core/errors.ts';
import { globMatches } from '../core/grants.ts';
import { topics } from '../core/topics.ts';

export interface SensorState {
  info: SensorInfo;
  driver: string;
  latest?: Reading;
  reads: number;
  faults: number;
  lastError?: ErrorJSON;
}

export interface RegistryOptions {
  clock?: Clock;
  /** a read that takes longer is a SENSOR_TIMEOUT (default 5 s) */
  readTimeoutMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export class SensorRegistry {
  #drivers: Driver[];
  #bus: Bus;
  #audit: Audit;
  #clock: Clock;
  #timeoutMs: number;
  #log: NonNullable<RegistryOptions['log']>;
  #sensors = new Map<string, SensorState>();
  #actuators = new Map<string, { info: ActuatorInfo; driver: Driver }>();
  #unsubs: Array<() => void> = [];
  #listeners = new Set<(r: Reading) => void>();
  #started: Driver[] = [];

  constructor(drivers: Driver[], bus: Bus, audit: Audit, opts: RegistryOptions = {}) {
    this.#drivers = drivers;
    this.#bus = bus;
    this.#audit = audit;
    this.#clock = opts.clock ?? systemClock;
    this.#timeoutMs = opts.readTimeoutMs ?? 5000;
    this.#log = opts.log ?? (() => {});
  }

  /** Starts every driver; one that fails to start is reported and left out, the others run. */
  async start(): Promise<void> {
    await Promise.all(
      this.#drivers.map(async (d) => {
        try {
          await d.start();
          this.#started.push(d);
        } catch (err) {
          const e = TalonError.from(err);
          this.#log('error', `driver ${d.name} (${d.type}) did not start: ${e.message}`);
          void this.#audit
            .record({
              actor: 'kernel',
              action: 'driver.start',
              subject: d.name,
              decision: 'error',
              detail: { error: e.toJSON() },
            })
            .catch(() => {});
        }
      }),
    );
    for (const d of this.#started) {
      for (const info of d.sensors()) {
        const clash = this.#sensors.get(info.id);
        if (clash) {
          this.#log(
            'error',
            `sensor ${info.id} of driver ${d.name} has the same id as one of driver ${clash.driver}; the second is ignored`,
          );
          continue;
        }
        this.#sensors.set(info.id, { info, driver: d.name, reads: 0, faults: 0 });
      }
      for (const info of d.actuators()) {
        if (!this.#actuators.has(info.id)) this.#actuators.set(info.id, { info, driver: d });
      }
      this.#unsubs.push(d.onReading((r) => this.#accept(r)));
    }
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubs.splice(0)) u();
    await Promise.all(
      this.#started
        .splice(0)
        .map((d) =>
          d
            .stop()
            .catch((err: unknown) =>
              this.#log('warn', `driver ${d.name} did not stop cleanly: ${TalonError.from(err).message}`),
            ),
        ),
    );
  }

  list(): SensorInfo[] {
    return [...this.#sensors.values()].map((s) => s.info);
  }

  states(): SensorState[] {
    return [...this.#sensors.values()];
  }

  actuators(): ActuatorInfo[] {
    return [...this.#actuators.values()].map((a) => a.info);
  }

  drivers(): Driver[] {
    return [...this.#drivers];
  }

  /** every good reading, polled or pushed */
  onReading(listener: (r: Reading) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async read(id: string): Promise<Reading> {
    const state = this.#sensors.get(id);
    if (!state) throw new TalonError('SENSOR_NOT_FOUND', `there is no sensor "${String(id).slice(0, 80)}"`);
    const driver = this.#started.find((d) => d.name === state.driver)!;
    state.reads++;
    let timer: NodeJS.Timeout | undefined;
    try {
      const reading = await Promise.race([
        driver.read(id),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new TalonError('SENSOR_TIMEOUT', `sensor ${id} did not answer within ${this.#timeoutMs} ms`)),
            this.#timeoutMs,
          );
        }),
      ]);
      checkReading(state.info, reading);
      this.#accept(reading);
      return reading;
    } catch (err) {
      const e = TalonError.from(err);
      const fault = e.code === 'INTERNAL' ? new TalonError('SENSOR_FAULT', `sensor ${id} failed: ${e.message}`) : e;
      state.faults++;
      state.lastError = fault.toJSON();
      throw fault;
    } finally {
      clearTimeout(timer);
    }
  }

  async write(id: string, value: boolean | number): Promise<void> {
    const a = this.#actuators.get(id);
    if (!a) throw new TalonError('ACTUATOR_NOT_FOUND', `there is no actuator "${String(id).slice(0, 80)}"`);
    await a.driver.write(id, value);
  }

  #accept(r: Reading): void {
    const state = this.#sensors.get(r.sensor);
    if (!state) return;
    state.latest = r;
    if (this.#bus.isUp()) {
      this.#bus
        .publish(topics.sensor(this.#bus.deviceId, r.sensor), JSON.stringify(r), { retain: true })
        .catch(() => {});
    }
    for (const l of this.#listeners) {
      try {
        l(r);
      } catch {
        /* a listener's problem is its own */
      }
    }
  }

  /** the kernel services Hands reach through ctx.call */
  services(): Record<string, KernelService> {
    return {
      'sensors.list': async (hand: HandCaller) =>
        this.list().filter((s) => hand.grants.sensors.some((g) => globMatches(g, s.id))),
      'sensors.read': async (hand: HandCaller, args: unknown[]) => {
        const id = args[0];
        if (typeof id !== 'string') throw new TalonError('BAD_REQUEST', 'sensors.read needs a sensor id');
        if (!hand.grants.sensors.some((g) => globMatches(g, id))) {
          throw new TalonError(
            'CAPABILITY_DENIED',
            `Hand "${hand.name}" may not read sensor ${id.slice(0, 80)}; its grant allows ${hand.grants.sensors.join(', ') || 'no sensors'}`,
          );
        }
        return this.read(id);
      },
      'actuators.list': async (hand: HandCaller) =>
        this.actuators().filter((a) => a.pin !== undefined && hand.grants.gpio.includes(a.pin)),
      'actuators.write': async (hand: HandCaller, args: unknown[]) => {
        const [id, value] = args;
        if (typeof id !== 'string' || (typeof value !== 'boolean' && typeof value !== 'number')) {
          throw new TalonError('BAD_REQUEST', 'actuators.write needs (actuator id, boolean or number)');
        }
        const a = this.#actuators.get(id);
        if (!a) throw new TalonError('ACTUATOR_NOT_FOUND', `there is no actuator "${id.slice(0, 80)}"`);
        if (a.info.pin === undefined || !hand.grants.gpio.includes(a.info.pin)) {
          throw new TalonError(
            'CAPABILITY_DENIED',
            `Hand "${hand.name}" may not drive ${id}${a.info.pin !== undefined ? ` (BCM ${a.info.pin})` : ''}; its gpio grant allows ${hand.grants.gpio.join(', ') || 'no pins'}`,
          );
        }
        await a.driver.write(id, value);
        await this.#audit.record({
          actor: `hand:${hand.name}`,
          action: 'actuator.write',
          subject: id,
          decision: 'ok',
          detail: { value },
        });
        return undefined;
      },
    };
  }
}

/** a reading must be of its sensor's declared kind: a NaN or a text where a number was due is a fault */
export function checkReading(info: SensorInfo, r: Reading): void {
  if (!r || typeof r !== 'object' || r.sensor !== info.id || typeof r.ts !== 'number') {
    throw new TalonError('SENSOR_FAULT', `sensor ${info.id} returned something that is not a reading`);
  }
  const ok =
    info.kind === 'number'
      ? typeof r.value === 'number' && Number.isFinite(r.value)
      : info.kind === 'boolean'
        ? typeof r.value === 'boolean'
        : typeof r.value === 'string' && r.value.length <= 1024;
  if (!ok)
    throw new TalonError(
      'SENSOR_FAULT',
      `sensor ${info.id} returned ${JSON.stringify(r.value)?.slice(0, 40)} where a ${info.kind} was due`,
    );
}
