/** The system driver as drivers/index.ts lists it: its type, its config schema, how to make one. */
import type { DriverEntry } from '../types.ts';
import { systemDriverSchema, type SystemDriverConfig } from './schema.ts';

export const systemDriver: DriverEntry<SystemDriverConfig> = {
  type: 'system',
  schema: systemDriverSchema,
  async create(config, deps) {
    const { SystemDriver } = await import('./driver.ts');
    return new SystemDriver(config, { clock: deps.clock, onListenerError: deps.onListenerError });
  },
};
