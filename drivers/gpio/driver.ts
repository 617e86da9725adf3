/**
 * GpioDriver: header pins by BCM number. Inputs are pushed boolean sensors (a button, a door
 * contact, a PIR), delivered on each debounced edge; outputs are boolean actuators (a fan, a
 * relay). `activeLow` inverts both: true means "active", whatever the wiring.
 *
 * Edges come from kernel interrupts (onoff's epoll on the value file) unless `pollMs` is set:
 * then the driver reads the value file every pollMs and detects edges itself. A line whose
 * interrupts cannot be watched falls back to polling every FALLBACK_POLL_MS (counted as
 * `pollFallbacks`). Polling is what the faked-sysfs test exercises (a file on tmpfs raises no
 * interrupt). Debounce is the driver's own (both paths): a change is
 * accepted once the level has held for debounceMs; shorter blips are counted as bounces.
 *
 * sysfs numbers = BCM + the header chip's base (./chip.ts); the 'sim' backend uses base 0.
 */
import { BaseDriver } from '../base.ts';
import type { ActuatorInfo, SensorInfo } from '../types.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { OnoffBackend, SimGpio, type GpioBackend, type Level, type PinHandle } from './backend.ts';
import { findHeaderChip, type GpioChip } from './chip.ts';
import type { GpioDriverConfig, GpioPinConfig } from './schema.ts';

// the config types are derived from the config's JSON Schema (./schema.ts)
export type { GpioDriverConfig, GpioPinConfig } from './schema.ts';

export interface GpioDriverDeps {
  clock?: Clock;
  /** a backend to use instead of the config's (tests pass a SimGpio to drive inputs) */
  backend?: GpioBackend;
  onListenerError?: (err: unknown) => void;
}

/** how often an input is polled when it was to use interrupts but its line has none */
export const FALLBACK_POLL_MS = 20;

interface Pin {
  cfg: GpioPinConfig;
  handle: PinHandle | null;
  /** the debounced raw level */
  stable: Level | null;
  /** the last raw level seen (polling) */
  seen: Level | null;
  debounce: unknown;
  poll: unknown;
  polling: boolean;
}

export class GpioDriver extends BaseDriver {
  readonly backend: GpioBackend;
  readonly #cfg: GpioDriverConfig;
  readonly #pins: Pin[];
  readonly #sensorInfos: SensorInfo[];
  readonly #actuatorInfos: ActuatorInfo[];
  #chip: GpioChip | null = null;
  #generation = 0;

  constructor(config: GpioDriverConfig, deps: GpioDriverDeps = {}) {
    super({ name: config.name, type: 'gpio', clock: deps.clock, onListenerError: deps.onListenerError });
    this.#cfg = config;
    this.backend = deps.backend ?? (config.backend === 'sim' ? new SimGpio() : new OnoffBackend());
    const ids = new Set<string>();
    const bcms = new Set<number>();
    for (const p of config.pins) {
      if (ids.has(p.id))
        throw new TalonError('CONFIG_INVALID', `gpio driver ${config.name}: pin id ${p.id} is used twice`);
      if (bcms.has(p.bcm))
        throw new TalonError('CONFIG_INVALID', `gpio driver ${config.name}: BCM ${p.bcm} is configured twice`);
      if (!Number.isInteger(p.bcm) || p.bcm < 0 || p.bcm > 53)
        throw new TalonError('CONFIG_INVALID', `gpio pin ${p.id}: bcm must be 0-53 (got ${p.bcm})`);
      ids.add(p.id);
      bcms.add(p.bcm);
    }
    this.#pins = config.pins.map((cfg) => ({
      cfg,
      handle: null,
      stable: null,
      seen: null,
      debounce: null,
      poll: null,
      polling: false,
    }));
    this.#sensorInfos = config.pins
      .filter((p) => p.direction === 'in')
      .map((p) => ({
        id: p.id,
        name: p.name ?? p.id,
        kind: 'boolean',
        mode: 'pushed',
        ...(p.deviceClass === undefined ? {} : { deviceClass: p.deviceClass }),
      }));
    this.#actuatorInfos = config.pins
      .filter((p) => p.direction === 'out')
      .map((p) => ({ id: p.id, name: p.name ?? p.id, kind: 'boolean', pin: p.bcm }));
  }

  /** the chip found at the last start (null for the sim backend or a fixed base) */
  get headerChip(): GpioChip | null {
    return this.#chip;
  }

  /** the sysfs GPIO number of a BCM pin (valid after start) */
  gpioNumber(bcm: number): number {
    return this.#base() + bcm;
  }

  protected sensorList(): SensorInfo[] {
    return this.#sensorInfos;
  }

  protected override actuatorList(): ActuatorInfo[] {
    return this.#actuatorInfos;
  }

  protected sample(info: SensorInfo): unknown {
    // every sensor is pushed: the base answers reads from the latest value
    throw new TalonError('SENSOR_UNAVAILABLE', `sensor ${info.id} is pushed, not polled`);
  }

  #base(): number {
    if (this.#cfg.base !== undefined) return this.#cfg.base;
    if (this.backend.kind === 'sim') return 0;
    return this.#chip?.base ?? 0;
  }

  protected async onStart(): Promise<void> {
    const gen = ++this.#generation;
    this.#chip = null;
    if (this.#cfg.base === undefined && this.backend.kind === 'onoff') {
      this.#chip = findHeaderChip(this.#cfg.sysRoot ?? '/sys', this.#cfg.chip);
      for (const p of this.#pins) {
        if (p.cfg.bcm >= this.#chip.ngpio)
          throw new TalonError(
            'CONFIG_INVALID',
            `gpio pin ${p.cfg.id}: BCM ${p.cfg.bcm} is beyond ${this.#chip.label} (${this.#chip.ngpio} lines)`,
          );
      }
    }
    for (const p of this.#pins) {
      const c = p.cfg;
      const pollMs = c.pollMs ?? this.#cfg.pollMs;
      p.polling = c.direction === 'in' && pollMs !== undefined;
      const initial: Level = this.#raw(c, c.initial ?? false);
      try {
        p.handle = await this.backend.open({
          gpio: this.gpioNumber(c.bcm),
          direction: c.direction,
          initial,
          interrupts: c.direction === 'in' && !p.polling,
        });
      } catch (err) {
        throw new TalonError(
          'SENSOR_UNAVAILABLE',
          `gpio pin ${c.id} (BCM ${c.bcm}, gpio${this.gpioNumber(c.bcm)}) cannot be opened: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (c.direction === 'out') continue;
      const level = await p.handle.read();
      p.stable = level;
      p.seen = level;
      if (!p.polling) {
        try {
          p.handle.watch((err, lvl) => {
            if (gen !== this.#generation) return;
            if (err) this.pushError(c.id, err);
            else this.#change(p, lvl, gen);
          });
        } catch {
          // a line without interrupt support: poll it instead
          p.polling = true;
          this.count('pollFallbacks');
        }
      }
      if (p.polling) p.poll = this.clock.setInterval(() => this.#pollPin(p, gen), pollMs ?? FALLBACK_POLL_MS);
    }
  }

  /** the initial level of every input, once the driver counts as running */
  protected override onStarted(): void {
    for (const p of this.#pins) if (p.cfg.direction === 'in' && p.stable !== null) this.#deliver(p, p.stable, true);
  }

  protected async onStop(): Promise<void> {
    this.#generation++;
    for (const p of this.#pins) {
      if (p.poll !== null) this.clock.clearInterval(p.poll);
      if (p.debounce !== null) this.clock.clearTimeout(p.debounce);
      p.poll = null;
      p.debounce = null;
      try {
        p.handle?.close();
      } catch {
        // unexport of a pin the kernel already dropped: nothing left to release
      }
      p.handle = null;
      p.stable = null;
      p.seen = null;
    }
  }

  protected override async actuate(a: ActuatorInfo, value: boolean | number): Promise<void> {
    const p = this.#pins.find((x) => x.cfg.id === a.id);
    if (!p?.handle) throw new TalonError('SENSOR_UNAVAILABLE', `actuator ${a.id} is not open`);
    await p.handle.write(this.#raw(p.cfg, value === true));
  }

  /** logical → raw level */
  #raw(c: GpioPinConfig, active: boolean): Level {
    return active !== (c.activeLow === true) ? 1 : 0;
  }

  #pollPin(p: Pin, gen: number): void {
    if (!p.handle || gen !== this.#generation) return;
    p.handle.read().then(
      (lvl) => {
        if (gen !== this.#generation) return;
        if (lvl !== p.seen) {
          p.seen = lvl;
          this.#change(p, lvl, gen);
        }
      },
      (err) => {
        if (gen === this.#generation) this.pushError(p.cfg.id, err);
      },
    );
  }

  /** a raw change seen (interrupt or poll): accept it now or after it held for debounceMs */
  #change(p: Pin, lvl: Level, gen: number): void {
    this.count('changes');
    const ms = p.cfg.debounceMs ?? 0;
    if (ms <= 0) {
      this.#settle(p, lvl);
      return;
    }
    if (p.debounce !== null) this.clock.clearTimeout(p.debounce);
    p.debounce = this.clock.setTimeout(() => {
      p.debounce = null;
      if (!p.handle || gen !== this.#generation) return;
      p.handle.read().then(
        (now) => {
          if (gen !== this.#generation) return;
          p.seen = now;
          this.#settle(p, now);
        },
        (err) => {
          if (gen === this.#generation) this.pushError(p.cfg.id, err);
        },
      );
    }, ms);
  }

  #settle(p: Pin, lvl: Level): void {
    if (lvl === p.stable) {
      this.count('bounces');
      return;
    }
    p.stable = lvl;
    this.count('edges');
    this.#deliver(p, lvl, false);
  }

  #deliver(p: Pin, lvl: Level, initial: boolean): void {
    const active = (lvl === 1) !== (p.cfg.activeLow === true);
    const edge = p.cfg.edge ?? 'both';
    // the initial level, and edges the config wants, go to listeners; others only update read()
    if (initial || edge === 'both' || (edge === 'rising') === active) this.emit(p.cfg.id, active);
    else this.remember(p.cfg.id, active);
  }
}
