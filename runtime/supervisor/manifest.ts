/**
 * The Hand manifest's JSON Schema, its defaults, and the checks the kernel runs on what a
 * Hand's module declares (read in a throwaway worker, so never trusted): the manifest
 * itself, the config's quota overrides, and the Hand's settings against its settingsSchema.
 * Every error names the field path.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv, type Ajv } from '../core/ajv.ts';
import type { HandManifest, Quotas } from '../core/hand.ts';
import { TalonError } from '../core/errors.ts';
import { validator } from '../schema/validators.ts';

export { DEFAULT_QUOTAS, capabilitiesSchema, quotasSchema, manifestSchema } from './manifest-schema.ts';

/** A manifest after validation: quotas complete. */
export interface ValidManifest extends HandManifest {
  quotas: Quotas;
}

// precompiled in the bundle (runtime/schema/registry.ts), compiled on first use from source
function validators(): { manifest: ValidateFunction; quotas: ValidateFunction } {
  return { manifest: validator('manifest'), quotas: validator('quotas') };
}

/** `/quotas/heapMb` → `quotas.heapMb`; a missing property is named too */
export function fieldPath(e: ErrorObject, prefix = ''): string {
  const parts = e.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const missing = (e.params as { missingProperty?: string }).missingProperty;
  const extra = (e.params as { additionalProperty?: string }).additionalProperty;
  if (missing) parts.push(missing);
  if (extra) parts.push(extra);
  const path = parts.map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('');
  const full = `${prefix}${path}`.replace(/^\./, '');
  return full || '(root)';
}

export function describeErrors(errors: ErrorObject[] | null | undefined, prefix = ''): string {
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    if (e.keyword === 'anyOf' || e.keyword === 'if') continue; // its branches say it better
    const what =
      e.keyword === 'additionalProperties'
        ? 'is not a known field'
        : e.keyword === 'required'
          ? 'is required'
          : (e.message ?? 'is invalid');
    seen.add(`${fieldPath(e, prefix)} ${what}`);
  }
  if (seen.size === 0) for (const e of errors ?? []) seen.add(`${fieldPath(e, prefix)} ${e.message ?? 'is invalid'}`);
  return [...seen].join('; ');
}

/** Validate what a module declared as its manifest; defaults applied to a copy. */
export function validateManifest(raw: unknown, module: string): ValidManifest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TalonError(
      'MANIFEST_INVALID',
      `the Hand module ${module} has no manifest object (export default defineHand({ manifest, start }))`,
    );
  }
  const copy = structuredClone(raw) as Record<string, unknown>;
  const validateManifestFn = validators().manifest;
  if (!validateManifestFn(copy)) {
    throw new TalonError(
      'MANIFEST_INVALID',
      `the manifest of ${module} is invalid: ${describeErrors(validateManifestFn.errors, 'manifest')}`,
      {
        details: {
          errors: validateManifestFn.errors?.map((e) => ({ path: fieldPath(e, 'manifest'), message: e.message })),
        },
      },
    );
  }
  const m = copy as unknown as ValidManifest;
  if (m.settingsSchema !== undefined) {
    try {
      settingsValidator(m.settingsSchema);
    } catch (err) {
      throw new TalonError(
        'MANIFEST_INVALID',
        `manifest.settingsSchema of ${module} is not a valid JSON Schema: ${(err as Error).message}`,
      );
    }
  }
  return m;
}

/** Effective quotas: defaults ← manifest ← config (the config may narrow or override). */
export function effectiveQuotas(manifest: ValidManifest, configQuotas: unknown, where: string): Quotas {
  if (configQuotas === undefined) return { ...manifest.quotas };
  const copy = structuredClone(configQuotas);
  const validateQuotasFn = validators().quotas;
  if (!validateQuotasFn(copy)) {
    throw new TalonError('CONFIG_INVALID', `${where} is invalid: ${describeErrors(validateQuotasFn.errors, where)}`);
  }
  return { ...manifest.quotas, ...(copy as Partial<Quotas>) };
}

let settingsAjv: Ajv | null = null;
/** by schema text: each launch validates a fresh copy of the manifest */
const settingsCache = new Map<string, ValidateFunction>();

export function settingsValidator(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = settingsCache.get(key);
  if (!v) {
    settingsAjv ??= createAjv('hand');
    v = settingsAjv.compile(schema);
    if (settingsCache.size > 256) settingsCache.clear();
    settingsCache.set(key, v);
  }
  return v;
}

/** Validate a Hand's settings against its manifest's settingsSchema; defaults applied to a copy. */
export function validateSettings(
  manifest: ValidManifest,
  settings: Record<string, unknown>,
  where: string,
): Record<string, unknown> {
  const copy = structuredClone(settings ?? {});
  if (!manifest.settingsSchema) return copy;
  const v = settingsValidator(manifest.settingsSchema);
  if (!v(copy)) throw new TalonError('CONFIG_INVALID', `${where} is invalid: ${describeErrors(v.errors, where)}`);
  return copy;
}
