/**
 * The serial driver as drivers/index.ts lists it: its type, its config schema, how to make one.
 * The driver's code (and serialport, which it loads on start) is loaded only for a config with
 * a serial driver.
 */
import type { DriverEntry } from '../types.ts';
import { serialDriverSchema, type SerialDriverConfig } from './schema.ts';

export const serialDriver: DriverEntry<SerialDriverConfig> = {
  type: 'serial',
  schema: serialDriverSchema,
  async create(config, deps) {
    const { SerialDriver } = await import('./driver.ts');
    return new SerialDriver(config, { clock: deps.clock, random: deps.random, openPort: deps.openPort });
  },
};
