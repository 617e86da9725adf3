/**
 * The JSON Schema (draft-07) of one entry of the config's `drivers: [...]`, chosen by `type`,
 * derived from the driver list (./index.ts: each entry brings its type's schema). Pure data
 * (the bundler precompiles it); importing it loads no driver code.
 *
 * Dispatch is `if type = X then <X's schema>` rather than a bare `oneOf`: with oneOf, one
 * typo in a sim sensor yields errors from all four branches ("must have required property
 * 'path'", "must be equal to constant 'gpio'"…); with if/then only the chosen driver's
 * schema speaks, and an unknown type gets one enum error.
 */
import { DRIVERS, type DriverType } from './index.ts';

export const DRIVER_TYPES: readonly DriverType[] = DRIVERS.map((e) => e.type);

/** a driver schema without its `$schema` (ajv allows that keyword only at the root) */
function sub(s: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { $schema: _drop, ...rest } = s;
  return rest;
}

/**
 * One schema per driver type, for a validator per type: the config validator the kernel runs
 * (runtime/schema/registry.ts) checks an entry of `drivers: [...]` against
 * `driverEntrySchema` only, and the entry's own type's validator does the rest. So a kernel
 * loads the validator code of the driver types its config uses, not all of them (the sim
 * driver's alone is ~150 KB of generated code). The errors are those of driverConfigSchema.
 */
export const DRIVER_SCHEMAS = Object.fromEntries(DRIVERS.map((e) => [e.type, sub(e.schema)])) as Record<
  DriverType,
  Record<string, unknown>
>;

/** an entry of `drivers: [...]` as far as the type-independent check goes (see DRIVER_SCHEMAS) */
export const driverEntrySchema = {
  type: 'object',
  required: ['type', 'name'],
  properties: {
    type: { type: 'string', enum: [...DRIVER_TYPES] },
    name: { type: 'string' },
  },
} as const;

export const driverConfigSchema = {
  ...driverEntrySchema,
  allOf: DRIVER_TYPES.map((type) => ({
    if: { type: 'object', required: ['type'], properties: { type: { type: 'string', const: type } } },
    then: DRIVER_SCHEMAS[type],
  })),
} as const;

/** `drivers: [...]` (unique names and sensor ids are checked by createDrivers()) */
export const driversSchema = {
  type: 'array',
  maxItems: 64,
  items: driverConfigSchema,
} as const;
