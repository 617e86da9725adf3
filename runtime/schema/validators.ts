/** A validator for a registered schema: precompiled in the bundle, compiled on first use from source. */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv, type Ajv, type AjvOptions } from '../core/ajv.ts';
import { precompiled } from './precompiled.ts';
import { SCHEMAS, type SchemaEntry } from './registry.ts';

const cache = new Map<string, ValidateFunction>();

/** An ajv for a registry entry: its options (a preset of runtime/core/ajv.ts) and its no-op keywords. */
export function makeAjv(entry: Pick<SchemaEntry, 'options' | 'keywords'>, extra: AjvOptions = {}): Ajv {
  return createAjv(entry.options, { ...(entry.keywords ? { keywords: entry.keywords } : {}), extra });
}

export function validator(id: keyof typeof SCHEMAS & string): ValidateFunction {
  let v = cache.get(id);
  if (v) return v;
  const entry = SCHEMAS[id];
  if (!entry) throw new Error(`no schema registered as "${id}"`);
  // a lazy entry of the bundle is a getter that loads its file
  v = precompiled[id] ?? makeAjv(entry).compile(entry.schema);
  if (entry.split) v = withSplit(v, entry);
  cache.set(id, v);
  return v;
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * `base` (which checks the items of `split.property` only partly) followed by each item's own
 * validator. The items' errors are rebased onto the whole document and put where the whole
 * schema's validator (ajv, allErrors) reports them: item by item, each item's own errors
 * right after its errors from `base`, after the errors of the properties before
 * `split.property` in the schema and before those of the properties after it.
 */
function withSplit(base: ValidateFunction, entry: SchemaEntry): ValidateFunction {
  const split = entry.split!;
  const order = Object.keys((entry.schema.properties ?? {}) as Record<string, unknown>);
  const at = order.indexOf(split.property);
  /** [rank of the top-level property (-1: the root), index of the item (-1: the array itself)] */
  const place = (e: ErrorObject): [number, number] => {
    const [, top, item] = e.instancePath.split('/');
    const rank = top === undefined ? -1 : order.indexOf(top.replace(/~1/g, '/').replace(/~0/g, '~'));
    return [rank, rank === at && item !== undefined ? Number(item) : -1];
  };
  const validate = ((data: unknown): boolean => {
    const errors = base(data) ? [] : [...(base.errors ?? [])];
    const items = isObj(data) ? data[split.property] : undefined;
    if (Array.isArray(items)) {
      items.forEach((item, i) => {
        const key = isObj(item) ? item[split.by] : undefined;
        const id = typeof key === 'string' && Object.hasOwn(split.ids, key) ? split.ids[key]! : undefined;
        if (id === undefined) return; // base reported a missing or unknown one
        const v = validator(id);
        if (v(item)) return;
        const own = (v.errors ?? []).map((e) => ({ ...e, instancePath: `/${split.property}/${i}${e.instancePath}` }));
        let pos = 0;
        errors.forEach((e, j) => {
          const [rank, index] = place(e);
          if (rank < at || (rank === at && index <= i)) pos = j + 1;
        });
        errors.splice(pos, 0, ...own);
      });
    }
    validate.errors = errors.length > 0 ? errors : null;
    return errors.length === 0;
  }) as ValidateFunction;
  validate.schema = entry.schema;
  return validate;
}
