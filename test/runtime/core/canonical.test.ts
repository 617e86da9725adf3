import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sourceFiles } from '../../helpers/source-files.ts';
import rfc8785 from 'canonicalize';
import { canonicalJson, canonicalize, sortedKeysJson as sortedKeysJsonCore } from '../../../runtime/core/canonical.ts';
import { createHash } from 'node:crypto';
import { canonicalJson as configCanonical, configHash } from '../../../runtime/config/generations.ts';
import { canonicalJson as auditCanonical } from '../../../runtime/audit/format.ts';
import { canonicalBytes } from '../../../provisioning/format.ts';
import { validateConfig } from '../../../runtime/config/validate.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

/** what runtime/config/generations.ts hashed with, frozen here: config hashes stored on devices were made with it */
function sortedKeysJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, (v as Record<string, unknown>)[k]]),
      );
    }
    return v;
  });
}

/** a deterministic generator of JSON values with awkward keys, numbers and strings */
function* jsonValues(seed: number, count: number): Generator<unknown> {
  let s = seed;
  const rnd = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const keys = ['a', 'B', 'b', '_', '10', '9', '', 'é', '\u20ac', '\ud83d\ude00', 'ü', 'Z', 'aa', 'a\u0000', '\r'];
  const strings = ['', 'x', 'é€😀', 'line\nbreak', 'quote"back\\slash', '\u0001\u001f\u007f', '</script>', 'ŝ'];
  const numbers = [0, -0, 1, -1, 0.1, 1e21, 1e-7, 123456789.123, 2 ** 53, -2.5e-300, 333333333.33333329, 4.5];
  const value = (depth: number): unknown => {
    const r = rnd();
    if (depth > 3 || r < 0.35) {
      const k = Math.floor(rnd() * 5);
      if (k === 0) return strings[Math.floor(rnd() * strings.length)];
      if (k === 1) return numbers[Math.floor(rnd() * numbers.length)];
      if (k === 2) return rnd() < 0.5;
      if (k === 3) return null;
      return Math.floor(rnd() * 1e6) / 7;
    }
    if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 6); i > 0; i--) o[keys[Math.floor(rnd() * keys.length)]!] = value(depth + 1);
    if (rnd() < 0.2) o.gone = undefined;
    return o;
  };
  for (let i = 0; i < count; i++) yield value(0);
}

const INTEGER_LIKE = /^(0|[1-9][0-9]*)$/;
const hasIntegerLikeKey = (v: unknown): boolean =>
  typeof v === 'object' &&
  v !== null &&
  (Array.isArray(v)
    ? v.some(hasIntegerLikeKey)
    : Object.entries(v).some(([k, x]) => INTEGER_LIKE.test(k) || hasIntegerLikeKey(x)));

test('the config hash form is the sorted-keys JSON stored hashes were made with, byte for byte', () => {
  for (const v of jsonValues(7, 3000)) assert.equal(configCanonical(v), sortedKeysJson(v), JSON.stringify(v));
  assert.equal(
    sortedKeysJsonCore({ a: Number.NaN, b: '\ud800' }),
    '{"a":null,"b":"\\ud800"}',
    'lenient where JSON.stringify is',
  );
});

test('RFC 8785 and the config hash form agree except on integer-like keys', () => {
  let compared = 0;
  for (const v of jsonValues(11, 3000)) {
    if (hasIntegerLikeKey(v)) continue;
    assert.equal(canonicalJson(v), sortedKeysJson(v), JSON.stringify(v));
    compared++;
  }
  assert.ok(compared > 1000, String(compared));
  const v = { '': 1, 10: 2, 9: 3, a: 4 };
  assert.equal(canonicalJson(v), '{"":1,"10":2,"9":3,"a":4}', 'RFC 8785: UTF-16 order');
  assert.equal(configCanonical(v), '{"9":3,"10":2,"":1,"a":4}', 'JavaScript property order: integer-like keys first');
});

test('stored config hashes stay valid: the default config and configs with every section', () => {
  const configs = [
    validateConfig({}),
    validateConfig({ dataDir: '/var/lib/talon' }),
    validateConfig({
      http: { port: 8081, allowedHosts: ['talon.local'] },
      log: { level: 'debug' },
      hands: [
        {
          name: 'monitoring',
          module: 'monitoring',
          settings: { z: 1, 2: 'two', 10: 'ten', a: [3, 2, { y: 'é', b: null }], ключ: '€' },
        },
        { name: 'b-2', module: './hands/b.js', enabled: false, quotas: { heapMb: 64, messagesPerSec: 10 } },
      ],
    }),
  ];
  for (const c of configs) {
    assert.equal(configHash(c), createHash('sha256').update(sortedKeysJson(c)).digest('hex'));
    for (const v of Object.values(c)) assert.equal(configCanonical(v ?? null), sortedKeysJson(v ?? null));
  }
});

test('one implementation behind every name', () => {
  const v = { b: [1, 'two', { d: 4, c: 3 }], a: 1e21, '\u20ac': true };
  const want = rfc8785(v);
  assert.equal(canonicalJson(v), want);
  assert.equal(canonicalize(v), want);
  assert.equal(auditCanonical(v), want);
  assert.equal(canonicalBytes(v).toString('utf8'), want);
  assert.equal(canonicalize(undefined), undefined);
  assert.throws(() => canonicalJson(undefined), /not serialisable/);
  assert.throws(() => canonicalJson({ a: Number.NaN }), /NaN/);
  assert.throws(() => canonicalJson({ a: '\ud800' }), /surrogate/i);
});

test('the canonicalize package is imported only by runtime/core/canonical.ts', () => {
  const offenders: string[] = [];
  for (const top of ['runtime', 'web-admin', 'provisioning', 'hands', 'drivers', 'image']) {
    for (const file of sourceFiles(join(ROOT, top))) {
      if (file.endsWith('runtime/core/canonical.ts')) continue;
      const text = readFileSync(file, 'utf8');
      if (/from 'canonicalize'|Object\.keys\([a-z]+\)\.sort\(\)\.map/.test(text))
        offenders.push(file.slice(ROOT.length));
    }
  }
  assert.deepEqual(offenders, []);
});
