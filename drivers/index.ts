/**
 * The driver types Talon knows, as one list of entries (`{ type, schema, create }`, one per
 * folder: ./<type>/entry.ts), and the one way drivers are made from their config entries
 * (`drivers: [...]` in the Talon config), used by the kernel and the tests alike. The config
 * schema's driver section and the per-type validators (./schema.ts) are derived from the same
 * list, so adding a driver type touches its folder and DRIVERS below.
 *
 * Importing this loads no driver code: an entry loads its driver's module when it first makes
 * one. Nothing here touches hardware until a driver's start().
 */
import type { ConfigOf, Driver, DriverDeps } from './types.ts';
import { TalonError } from '../runtime/core/errors.ts';
import { systemDriver } from './system/entry.ts';
import { simDriver } from './sim/entry.ts';
import { gpioDriver } from './gpio/entry.ts';
import { serialDriver } from './serial/entry.ts';

/** every driver type, in the order the config schema lists them */
export const DRIVERS = [systemDriver, simDriver, gpioDriver, serialDriver] as const;

export type DriverType = (typeof DRIVERS)[number]['type'];
/** one entry of the config's `drivers: [...]`, of any type (derived from the types' schemas) */
export type DriverConfig = ConfigOf<(typeof DRIVERS)[number]>;
export type { SystemDriverConfig } from './system/schema.ts';
export type { SimDriverConfig } from './sim/schema.ts';
export type { GpioDriverConfig } from './gpio/schema.ts';
export type { SerialDriverConfig } from './serial/schema.ts';
export type { Driver, DriverDeps, DriverEntry, Reading, SensorInfo, ActuatorInfo, DriverHealth } from './types.ts';

const byType = new Map<string, (typeof DRIVERS)[number]>(DRIVERS.map((e) => [e.type, e]));

/** Makes one driver (its code loaded on first use); CONFIG_INVALID for a type no entry has. */
export async function createDriver(config: DriverConfig, deps: DriverDeps = {}): Promise<Driver> {
  const entry = byType.get(config.type);
  if (!entry) {
    throw new TalonError(
      'CONFIG_INVALID',
      `unknown driver type ${JSON.stringify((config as { type?: unknown }).type)} (known: ${DRIVERS.map((e) => e.type).join(', ')})`,
    );
  }
  // the entry was chosen by the config's own type, so the config is the entry's
  return (entry.create as (c: DriverConfig, d: DriverDeps) => Promise<Driver>)(config, deps);
}

/**
 * Makes every configured driver, in order, checking what one driver cannot: names are unique,
 * and sensor and actuator ids are unique across all drivers (they are global ids).
 */
/**
 * The drivers of a config, in order. Two drivers with one name are a config error. A sensor or
 * actuator id two drivers both report is one too, unless `onClash` is given: the kernel passes
 * it, because a system driver's sensors follow the hardware it finds (an interface that appears
 * on one board only), and a device that refused to start over that would be worse than one
 * that logs it and keeps the first (the sensor registry ignores the second).
 */
export async function createDrivers(
  configs: readonly DriverConfig[],
  deps: DriverDeps = {},
  opts: { onClash?: (message: string) => void } = {},
): Promise<Driver[]> {
  const names = new Set<string>();
  const sensorOwner = new Map<string, string>();
  const actuatorOwner = new Map<string, string>();
  const out: Driver[] = [];
  for (const c of configs) {
    if (names.has(c.name)) throw new TalonError('CONFIG_INVALID', `two drivers are named ${JSON.stringify(c.name)}`);
    names.add(c.name);
    const d = await createDriver(c, deps);
    for (const s of d.sensors()) {
      const other = sensorOwner.get(s.id);
      if (other) {
        const message = `sensor id ${s.id} is used by drivers ${other} and ${c.name}`;
        if (!opts.onClash) throw new TalonError('CONFIG_INVALID', message);
        opts.onClash(message);
        continue;
      }
      sensorOwner.set(s.id, c.name);
    }
    for (const a of d.actuators()) {
      const other = actuatorOwner.get(a.id);
      if (other) {
        const message = `actuator id ${a.id} is used by drivers ${other} and ${c.name}`;
        if (!opts.onClash) throw new TalonError('CONFIG_INVALID', message);
        opts.onClash(message);
        continue;
      }
      actuatorOwner.set(a.id, c.name);
    }
    out.push(d);
  }
  return out;
}

export { DEMO_DRIVERS } from './demo.ts';
