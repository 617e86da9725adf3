/** The sim driver as drivers/index.ts lists it: its type, its config schema, how to make one. */
import type { DriverEntry } from '../types.ts';
import { simDriverSchema, type SimDriverConfig } from './schema.ts';

export const simDriver: DriverEntry<SimDriverConfig> = {
  type: 'sim',
  schema: simDriverSchema,
  async create(config, deps) {
    const { SimDriver } = await import('./driver.ts');
    return new SimDriver(config, { clock: deps.clock, onListenerError: deps.onListenerError, origin: deps.simOrigin });
  },
};
