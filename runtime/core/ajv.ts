/**
 * The one place an ajv instance is made. Each use names a preset, so the options a kind of
 * schema is checked with are written once and a reader can see which sites share them (there
 * were seven `new Ajv(...)` with options copied by hand, already drifting).
 *
 * The kernel's own fixed schemas (the config, the drivers', a Hand's manifest) go through the
 * schema registry (runtime/schema/registry.ts), which precompiles them into the bundle; this
 * factory is what the registry compiles with from source, and what compiles the schemas that
 * only exist at run time (a Hand's settings and requests, the REST routes, LLM tools).
 *
 * It lives in runtime/core so drivers/ (which may import only runtime/core) use it too.
 * test/runtime/core/ajv.test.ts checks that `new Ajv` appears nowhere else in the program.
 */
import { Ajv, type ErrorObject, type Options } from 'ajv';

/** `strict: true` refuses schemas with unknown keywords or ambiguous types: for our own schemas. */
export const AJV_PRESETS = {
  /** the config and the drivers' schemas: every error, defaults filled, the failing data kept for messages */
  config: { allErrors: true, useDefaults: true, verbose: true, allowUnionTypes: true, strict: true },
  /** what a Hand declares (its manifest and the config's quota overrides, its settings, its requests): defaults filled, unknown keywords let through */
  hand: { allErrors: true, useDefaults: true, strict: false },
  /** a REST request body: like `hand`; the route schemas are ours and tested, so not checked against the meta-schema at start */
  request: { allErrors: true, strict: false, useDefaults: true, validateSchema: false },
  /** a REST query string: `request`, with "5" taken as 5 (every query value arrives as a string) */
  query: { allErrors: true, strict: false, useDefaults: true, validateSchema: false, coerceTypes: true },
  /** checks a value without changing it (no defaults): REST responses in tests, LLM call arguments and tool calls */
  check: { allErrors: true, strict: false },
  /** checks a value against one of our own schemas without changing it (a driver's config) */
  strict: { allErrors: true, strict: true },
} as const satisfies Record<string, Options>;

export type AjvPreset = keyof typeof AJV_PRESETS;

export interface CreateAjvOptions {
  /** annotation keywords (such as `x-hint`) registered as no-ops, so strict mode takes them */
  keywords?: readonly string[];
  /** options over the preset's (the bundler's `code` options) */
  extra?: Options;
}

/** A new ajv instance with a preset's options (or, for the schema registry, its entry's options). */
export function createAjv(preset: AjvPreset | Options, opts: CreateAjvOptions = {}): Ajv {
  const base = typeof preset === 'string' ? AJV_PRESETS[preset] : preset;
  const ajv = new Ajv({ ...base, ...opts.extra });
  for (const keyword of opts.keywords ?? []) ajv.addKeyword({ keyword, schemaType: 'string' });
  return ajv;
}

export type { Ajv, Options as AjvOptions };

/** One refused field: a JSON Pointer to it and what is wrong, as the API's 400 answers list them. */
export interface FieldError {
  path: string;
  message: string;
}

/** Ajv's errors as the API reports them (at most 20): the field a missing or unknown property names, in words. */
export function fieldErrors(errors: ErrorObject[] | null | undefined): FieldError[] {
  return (errors ?? []).slice(0, 20).map((e) => {
    let path = e.instancePath || '/';
    if (e.keyword === 'additionalProperties')
      path = `${e.instancePath}/${String((e.params as { additionalProperty: string }).additionalProperty)}`;
    if (e.keyword === 'required')
      path = `${e.instancePath}/${String((e.params as { missingProperty: string }).missingProperty)}`;
    const message =
      e.keyword === 'additionalProperties'
        ? 'is not a known field'
        : e.keyword === 'required'
          ? 'is required'
          : (e.message ?? 'is not valid');
    return { path, message };
  });
}
