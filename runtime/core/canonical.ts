/**
 * Canonical JSON, once: RFC 8785 (the JSON Canonicalization Scheme) through the `canonicalize`
 * package, the reference implementation. Object keys sorted by UTF-16 code units at every
 * level, numbers and strings as ECMAScript serialises them, no white space; `undefined`
 * members are left out, as JSON.stringify does.
 *
 * What depends on these bytes: the audit chain's entry hashes (runtime/audit/format.ts, which
 * keeps a faster path for its common entry shape, checked against this one in a test) and the
 * provisioning signatures (provisioning/format.ts). Unlike JSON.stringify it refuses what has
 * no canonical form: NaN, ±Infinity, a string with a lone surrogate, a cycle (it throws).
 *
 * The config generations' hashes use `sortedKeysJson` below, deliberately not RFC 8785: see there.
 */
import rfc8785 from 'canonicalize';

/**
 * The RFC 8785 text of `value`, or undefined when it has no JSON form at all (undefined, a
 * function, a symbol). Throws on NaN, ±Infinity, lone surrogates and cycles.
 */
export function canonicalize(value: unknown): string | undefined {
  return rfc8785(value);
}

/** The RFC 8785 text of `value`; throws when it has none. */
export function canonicalJson(value: unknown): string {
  const text = rfc8785(value);
  if (text === undefined) throw new Error('value is not serialisable as JSON');
  return text;
}

/**
 * The config's change-detection form (runtime/config/generations.ts: generation hashes, which
 * sections changed, the diff's text): JSON.stringify with every object's keys sorted, arrays in
 * order. Not RFC 8785, on purpose: the hashes of configs applied on devices are stored (the
 * head, each generation, the config file's last hash) and compared at every start, so the bytes
 * cannot change. It differs from `canonicalJson` only where JavaScript's own property order
 * wins over the sort (an object's integer-like keys such as "0" or "10" come first, in numeric
 * order) and where JSON.stringify is lenient (NaN and ±Infinity become null, lone surrogates are
 * escaped); test/runtime/core/canonical.test.ts pins both the sameness and the differences.
 */
export function sortedKeysJson(value: unknown): string {
  return JSON.stringify(value, sortKeys);
}

function sortKeys(_key: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, (v as Record<string, unknown>)[k]]),
    );
  }
  return v;
}
