/**
 * The JSON Schema (draft-07) of one entry of the config's `drivers: [...]`: chosen by `type`.
 * Pure data (the bundler precompiles it).
 *
 * Dispatch is `if type = X then <X's schema>` rather than a bare `oneOf`: with oneOf, one
 * typo in a sim sensor yields errors from all four branches ("must have required property
 * 'path'", "must be equal to constant 'gpio'"…); with if/then only the chosen driver's
 * schema speaks, and an unknown type gets one enum error.
 */
import { simDriverSchema } from './sim/schema.ts';
import { systemDriverSchema } from './system/schema.ts';
import { gpioDriverSchema } from './gpio/schema.ts';
import { serialDriverSchema } from './serial/schema.ts';

export const DRIVER_TYPES = ['system', 'sim', 'gpio', 'serial'] as const;

/** a driver schema without its `$schema` (ajv allows that keyword only at the root) */
function sub<T extends Record<string, unknown>>(s: T): Omit<T, '$schema'> {
  const { $schema: _drop, ...rest } = s;
  return rest;
}

const by = (type: string, schema: Record<string, unknown>) => ({
  if: { type: 'object', required: ['type'], properties: { type: { type: 'string', const: type } } },
  then: schema,
});

export const driverConfigSchema = {
  type: 'object',
  required: ['type', 'name'],
  properties: {
    type: { type: 'string', enum: [...DRIVER_TYPES] },
    name: { type: 'string' },
  },
  allOf: [
    by('system', sub(systemDriverSchema)),
    by('sim', sub(simDriverSchema)),
    by('gpio', sub(gpioDriverSchema)),
    by('serial', sub(serialDriverSchema)),
  ],
} as const;

/**
 * One schema per driver type, for a validator per type: the config validator the kernel runs
 * (runtime/schema/registry.ts) checks an entry of `drivers: [...]` against
 * `driverEntrySchema` only, and the entry's own type's validator does the rest. So a kernel
 * loads the validator code of the driver types its config uses, not all four (the sim
 * driver's alone is ~150 KB of generated code). The errors are those of driverConfigSchema.
 */
export const DRIVER_SCHEMAS: Record<(typeof DRIVER_TYPES)[number], Record<string, unknown>> = {
  system: sub(systemDriverSchema),
  sim: sub(simDriverSchema),
  gpio: sub(gpioDriverSchema),
  serial: sub(serialDriverSchema),
};

/** an entry of `drivers: [...]` as far as the type-independent check goes (see DRIVER_SCHEMAS) */
export const driverEntrySchema = {
  type: 'object',
  required: ['type', 'name'],
  properties: {
    type: { type: 'string', enum: [...DRIVER_TYPES] },
    name: { type: 'string' },
  },
} as const;

/** `drivers: [...]` (unique names and sensor ids are checked by createDrivers()) */
export const driversSchema = {
  type: 'array',
  maxItems: 64,
  items: driverConfigSchema,
} as const;
