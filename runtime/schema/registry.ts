/**
 * Every JSON Schema the kernel validates against at run time, with its ajv options. The
 * bundler (image/bundle.ts) compiles them ahead of time with ajv's standalone code, so the
 * shipped program validates without compiling schemas at start (that cost ~65 ms of a
 * ~200 ms cold start here); from source they are compiled on first use.
 * Keep these modules pure data: the bundler imports them at build time.
 *
 * The config's driver entries are validated per driver type (`split`): the config's own
 * validator checks an entry's `type` and `name`, and the validator of that type
 * (`driver.<type>`, `lazy`: evaluated on first use) is run for the types the config uses. A
 * kernel without drivers compiles none of them, the default config system's and sim's (the
 * four are ~280 KB of generated code; sim's alone ~150 KB). Errors are the same as with the
 * whole schema (test/runtime/schema/validators.test.ts).
 */
import type { Options } from 'ajv';
import { AJV_PRESETS } from '../core/ajv.ts';
import { talonConfigSchema } from '../config/schema.ts';
import { manifestSchema, quotasSchema } from '../supervisor/manifest-schema.ts';
import { DRIVER_SCHEMAS, DRIVER_TYPES, driverEntrySchema } from '../../drivers/schema.ts';

export interface SchemaEntry {
  schema: Record<string, unknown>;
  options: Options;
  /** annotation keywords that validate nothing (registered as no-ops) */
  keywords?: string[];
  /** in the bundle, evaluated (so compiled by V8) on first use only */
  lazy?: boolean;
  /**
   * the items of the array `property` are checked here only as far as the schema says; each
   * item whose `by` is one of `ids`' keys is then checked by the validator `ids[value]`
   */
  split?: { property: string; by: string; ids: Record<string, string> };
}

const CONFIG_OPTIONS: Options = AJV_PRESETS.config;

type ConfigSchema = { properties: Record<string, Record<string, unknown>> } & Record<string, unknown>;

/** the config schema with each `drivers` entry checked by driverEntrySchema only */
function configWithoutDriverBodies(): Record<string, unknown> {
  const full = talonConfigSchema as unknown as ConfigSchema;
  const drivers = full.properties.drivers;
  if (!drivers || drivers.type !== 'array') throw new Error('the config schema has no drivers array');
  return { ...full, properties: { ...full.properties, drivers: { ...drivers, items: driverEntrySchema } } };
}

export const SCHEMAS: Record<string, SchemaEntry> = {
  config: {
    schema: configWithoutDriverBodies(),
    options: CONFIG_OPTIONS,
    keywords: ['x-hint'],
    split: { property: 'drivers', by: 'type', ids: Object.fromEntries(DRIVER_TYPES.map((t) => [t, `driver.${t}`])) },
  },
  ...Object.fromEntries(
    DRIVER_TYPES.map((t) => [
      `driver.${t}`,
      {
        schema: DRIVER_SCHEMAS[t],
        options: CONFIG_OPTIONS,
        keywords: ['x-hint'],
        lazy: true,
      } satisfies SchemaEntry,
    ]),
  ),
  // a Hand's manifest (read from its module) and a config's quota overrides
  manifest: {
    schema: manifestSchema as unknown as Record<string, unknown>,
    options: AJV_PRESETS.hand,
  },
  quotas: {
    schema: quotasSchema as unknown as Record<string, unknown>,
    options: AJV_PRESETS.hand,
  },
};
