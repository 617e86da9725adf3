/**
 * Makes drivers from their config entries (`drivers: [...]` in the Talon config, validated
 * against ./schema.ts). Drivers are plain objects the kernel starts and stops; nothing here
 * touches hardware until start().
 */
import type { Driver } from './types.ts';
import { TalonError } from '../runtime/core/errors.ts';
import type { Clock, Random } from '../runtime/core/clock.ts';
import { SimDriver, type SimDriverConfig } from './sim/driver.ts';
import { SystemDriver, type SystemDriverConfig } from './system/driver.ts';
import { GpioDriver, type GpioDriverConfig } from './gpio/driver.ts';
import type { GpioBackend } from './gpio/backend.ts';
import { SerialDriver, type SerialDriverConfig, type SerialDriverOptions } from './serial/index.ts';

export type DriverConfig = SystemDriverConfig | SimDriverConfig | GpioDriverConfig | SerialDriverConfig;
export type { SystemDriverConfig, SimDriverConfig, GpioDriverConfig, SerialDriverConfig };
export type { Driver, Reading, SensorInfo, ActuatorInfo, DriverHealth } from './types.ts';
export { driverConfigSchema, driversSchema, DRIVER_TYPES } from './schema.ts';

export interface DriverDeps {
  clock?: Clock;
  random?: Random;
  /** a listener threw while a driver delivered a pushed reading (the driver carries on) */
  onListenerError?: (err: unknown) => void;
  /** gpio: a backend instead of the config's (tests, a shared SimGpio) */
  gpioBackend?: GpioBackend;
  /** serial: how a port is made (tests) */
  openPort?: SerialDriverOptions['openPort'];
  /** sim: the origin of every series, ms epoch (default: now) */
  simOrigin?: number;
}

export function createDriver(config: DriverConfig, deps: DriverDeps = {}): Driver {
  const { clock, onListenerError } = deps;
  switch (config.type) {
    case 'system':
      return new SystemDriver(config, { clock, onListenerError });
    case 'sim':
      return new SimDriver(config, { clock, onListenerError, origin: deps.simOrigin });
    case 'gpio':
      return new GpioDriver(config, { clock, onListenerError, backend: deps.gpioBackend });
    case 'serial':
      return new SerialDriver(config, { clock, random: deps.random, openPort: deps.openPort });
    default:
      throw new TalonError('CONFIG_INVALID', `unknown driver type ${JSON.stringify((config as { type?: unknown }).type)} (known: system, sim, gpio, serial)`);
  }
}

/**
 * Makes every configured driver, checking what one driver cannot: names are unique, and
 * sensor and actuator ids are unique across all drivers (they are global ids).
 */
export function createDrivers(configs: DriverConfig[], deps: DriverDeps = {}): Driver[] {
  const names = new Set<string>();
  const sensorOwner = new Map<string, string>();
  const actuatorOwner = new Map<string, string>();
  const out: Driver[] = [];
  for (const c of configs) {
    if (names.has(c.name)) throw new TalonError('CONFIG_INVALID', `two drivers are named ${JSON.stringify(c.name)}`);
    names.add(c.name);
    const d = createDriver(c, deps);
    for (const s of d.sensors()) {
      const other = sensorOwner.get(s.id);
      if (other) throw new TalonError('CONFIG_INVALID', `sensor id ${s.id} is used by drivers ${other} and ${c.name}`);
      sensorOwner.set(s.id, c.name);
    }
    for (const a of d.actuators()) {
      const other = actuatorOwner.get(a.id);
      if (other) throw new TalonError('CONFIG_INVALID', `actuator id ${a.id} is used by drivers ${other} and ${c.name}`);
      actuatorOwner.set(a.id, c.name);
    }
    out.push(d);
  }
  return out;
}

export { DEMO_DRIVERS } from './demo.ts';
