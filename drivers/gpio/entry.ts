/**
 * The gpio driver as drivers/index.ts lists it: its type, its config schema, how to make one.
 * The driver's code (and onoff, which it loads on start) is loaded only for a config with a
 * gpio driver.
 */
import type { DriverEntry } from '../types.ts';
import { gpioDriverSchema, type GpioDriverConfig } from './schema.ts';

export const gpioDriver: DriverEntry<GpioDriverConfig> = {
  type: 'gpio',
  schema: gpioDriverSchema,
  async create(config, deps) {
    const { GpioDriver } = await import('./driver.ts');
    return new GpioDriver(config, {
      clock: deps.clock,
      onListenerError: deps.onListenerError,
      backend: deps.gpioBackend,
    });
  },
};
