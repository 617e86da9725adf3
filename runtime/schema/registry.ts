/**
 * Every JSON Schema the kernel validates against at run time, with its ajv options. The
 * bundler (image/bundle.ts) compiles them ahead of time with ajv's standalone code, so the
 * shipped program validates without compiling schemas at start (that cost ~65 ms of a
 * ~200 ms cold start here); from source they are compiled on first use.
 * Keep these modules pure data: the bundler imports them at build time.
 */
import type { Options } from 'ajv';
import { talonConfigSchema } from '../config/schema.ts';
import { manifestSchema, quotasSchema } from '../supervisor/manifest-schema.ts';

export interface SchemaEntry {
  schema: Record<string, unknown>;
  options: Options;
  /** annotation keywords that validate nothing (registered as no-ops) */
  keywords?: string[];
}

export const SCHEMAS: Record<string, SchemaEntry> = {
  config: {
    schema: talonConfigSchema as unknown as Record<string, unknown>,
    options: { allErrors: true, useDefaults: true, verbose: true, allowUnionTypes: true, strict: true },
    keywords: ['x-hint'],
  },
  // a Hand's manifest (read from its module) and a config's quota overrides
  manifest: {
    schema: manifestSchema as unknown as Record<string, unknown>,
    options: { allErrors: true, useDefaults: true, strict: false },
  },
  quotas: {
    schema: quotasSchema as unknown as Record<string, unknown>,
    options: { allErrors: true, useDefaults: true, strict: false },
  },
};
