/**
 * The Hand manifest's JSON Schema, its defaults, and the checks the kernel runs on what a
 * Hand's module declares (read in a throwaway worker, so never trusted): the manifest
 * itself, the config's quota overrides, and the Hand's settings against its settingsSchema.
 * Every error names the field path.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { HandManifest, Quotas } from '../../hands/sdk/types.ts';
import { TalonError } from '../errors.ts';

export const DEFAULT_QUOTAS: Quotas = { heapMb: 32, cpuShare: 0.5, messagesPerSec: 1000, llmTokensPerHour: 0 };

const stringList = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 1024 }, maxItems: 256 } as const;

export const capabilitiesSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bus: {
      type: 'object',
      additionalProperties: false,
      properties: { publish: stringList, subscribe: stringList },
    },
    sensors: stringList,
    gpio: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 63 }, maxItems: 64 },
    llm: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['tokensPerHour'],
          properties: { tokensPerHour: { type: 'integer', minimum: 0 } },
        },
      ],
    },
    network: stringList,
    fs: {
      type: 'object',
      additionalProperties: false,
      properties: { read: stringList, write: stringList },
    },
    shell: stringList,
  },
} as const;

const quotaProps = {
  heapMb: { type: 'integer', minimum: 8, maximum: 4096 },
  cpuShare: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  messagesPerSec: { type: 'integer', minimum: 1, maximum: 1_000_000 },
  llmTokensPerHour: { type: 'integer', minimum: 0 },
} as const;

export const quotasSchema = { type: 'object', additionalProperties: false, properties: quotaProps } as const;

export const manifestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'version', 'description'],
  properties: {
    id: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.-]+)?$' },
    description: { type: 'string', maxLength: 500 },
    capabilities: { ...capabilitiesSchema, default: {} },
    quotas: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        heapMb: { ...quotaProps.heapMb, default: DEFAULT_QUOTAS.heapMb },
        cpuShare: { ...quotaProps.cpuShare, default: DEFAULT_QUOTAS.cpuShare },
        messagesPerSec: { ...quotaProps.messagesPerSec, default: DEFAULT_QUOTAS.messagesPerSec },
        llmTokensPerHour: { ...quotaProps.llmTokensPerHour, default: DEFAULT_QUOTAS.llmTokensPerHour },
      },
    },
    schedule: { anyOf: [{ type: 'string', minLength: 1, maxLength: 200 }, { type: 'integer', minimum: 1 }] },
    settingsSchema: { type: 'object' },
  },
} as const;

/** A manifest after validation: quotas complete. */
export interface ValidManifest extends HandManifest {
  quotas: Quotas;
}

// compiled on first use, not at import: keeps schema compilation off the kernel's cold start
let compiled: { manifest: ValidateFunction; quotas: ValidateFunction } | null = null;
function validators(): { manifest: ValidateFunction; quotas: ValidateFunction } {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
    compiled = { manifest: ajv.compile(manifestSchema), quotas: ajv.compile(quotasSchema) };
  }
  return compiled;
}

/** `/quotas/heapMb` → `quotas.heapMb`; a missing property is named too */
export function fieldPath(e: ErrorObject, prefix = ''): string {
  const parts = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
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
    if (e.keyword === 'anyOf') continue; // its branches say it better
    const what = e.keyword === 'additionalProperties' ? 'is not a known field'
      : e.keyword === 'required' ? 'is required'
        : e.message ?? 'is invalid';
    seen.add(`${fieldPath(e, prefix)} ${what}`);
  }
  if (seen.size === 0) for (const e of errors ?? []) seen.add(`${fieldPath(e, prefix)} ${e.message ?? 'is invalid'}`);
  return [...seen].join('; ');
}

/** Validate what a module declared as its manifest; defaults applied to a copy. */
export function validateManifest(raw: unknown, module: string): ValidManifest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TalonError('MANIFEST_INVALID', `the Hand module ${module} has no manifest object (export default defineHand({ manifest, start }))`);
  }
  const copy = structuredClone(raw) as Record<string, unknown>;
  const validateManifestFn = validators().manifest;
  if (!validateManifestFn(copy)) {
    throw new TalonError('MANIFEST_INVALID', `the manifest of ${module} is invalid: ${describeErrors(validateManifestFn.errors, 'manifest')}`,
      { details: { errors: validateManifestFn.errors?.map((e) => ({ path: fieldPath(e, 'manifest'), message: e.message })) } });
  }
  const m = copy as unknown as ValidManifest;
  if (m.settingsSchema !== undefined) {
    try {
      settingsValidator(m.settingsSchema);
    } catch (err) {
      throw new TalonError('MANIFEST_INVALID', `manifest.settingsSchema of ${module} is not a valid JSON Schema: ${(err as Error).message}`);
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

function settingsValidator(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = settingsCache.get(key);
  if (!v) {
    settingsAjv ??= new Ajv({ allErrors: true, useDefaults: true, strict: false });
    v = settingsAjv.compile(schema);
    if (settingsCache.size > 256) settingsCache.clear();
    settingsCache.set(key, v);
  }
  return v;
}

/** Validate a Hand's settings against its manifest's settingsSchema; defaults applied to a copy. */
export function validateSettings(manifest: ValidManifest, settings: Record<string, unknown>, where: string): Record<string, unknown> {
  const copy = structuredClone(settings ?? {});
  if (!manifest.settingsSchema) return copy;
  const v = settingsValidator(manifest.settingsSchema);
  if (!v(copy)) throw new TalonError('CONFIG_INVALID', `${where} is invalid: ${describeErrors(v.errors, where)}`);
  return copy;
}
