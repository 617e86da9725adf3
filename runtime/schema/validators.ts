/** A validator for a registered schema: precompiled in the bundle, compiled on first use from source. */
import { Ajv, type ValidateFunction } from 'ajv';
import { precompiled } from './precompiled.ts';
import { SCHEMAS, type SchemaEntry } from './registry.ts';

const cache = new Map<string, ValidateFunction>();

export function makeAjv(entry: Pick<SchemaEntry, 'options' | 'keywords'>, extra: Record<string, unknown> = {}): Ajv {
  const ajv = new Ajv({ ...entry.options, ...extra });
  for (const keyword of entry.keywords ?? []) ajv.addKeyword({ keyword, schemaType: 'string' });
  return ajv;
}

export function validator(id: keyof typeof SCHEMAS & string): ValidateFunction {
  let v = cache.get(id) ?? precompiled[id];
  if (!v) {
    const entry = SCHEMAS[id];
    if (!entry) throw new Error(`no schema registered as "${id}"`);
    v = makeAjv(entry).compile(entry.schema);
  }
  cache.set(id, v);
  return v;
}
