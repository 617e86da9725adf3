import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sourceFiles } from '../../helpers/source-files.ts';
import { AJV_PRESETS, createAjv } from '../../../runtime/core/ajv.ts';
import { SCHEMAS } from '../../../runtime/schema/registry.ts';
import { QUERY_AJV_OPTIONS, REQUEST_AJV_OPTIONS } from '../../../web-admin/router.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

test('the presets behave as their sites need', () => {
  const schema = {
    type: 'object',
    properties: { n: { type: 'integer', default: 3 }, s: { type: 'string' } },
    additionalProperties: false,
  };
  const query = createAjv('query').compile(schema);
  const q: Record<string, unknown> = { s: 'x' };
  assert.ok(query(q));
  assert.deepEqual(q, { s: 'x', n: 3 }, 'query: defaults filled');
  assert.ok(query({ n: '5' }), 'query: "5" is taken as 5');
  const request = createAjv('request').compile(schema);
  assert.ok(!request({ n: '5' }), 'a body is not coerced');
  const check = createAjv('check').compile(schema);
  const c: Record<string, unknown> = {};
  assert.ok(check(c));
  assert.deepEqual(c, {}, 'check: no defaults, the value is not changed');
  const all = createAjv('check').compile(schema);
  assert.ok(!all({ n: 'x', s: 1 }));
  assert.equal(all.errors?.length, 2, 'every error, not the first');
  assert.throws(() => createAjv('strict').compile({ type: 'object', 'x-hint': 'a' }), /unknown keyword/);
  assert.doesNotThrow(
    () => createAjv('hand').compile({ type: 'object', 'x-hint': 'a' }),
    "a Hand's schema may carry annotations",
  );
  assert.doesNotThrow(() => createAjv('config', { keywords: ['x-hint'] }).compile({ type: 'string', 'x-hint': 'a' }));
  const verbose = createAjv('config').compile({ type: 'string' });
  verbose(5);
  assert.equal(verbose.errors?.[0]?.data, 5, 'config: verbose, the failing value is kept for messages');
});

test('the registry and the REST router use the presets', () => {
  assert.equal(SCHEMAS.config!.options, AJV_PRESETS.config);
  assert.equal(SCHEMAS.manifest!.options, AJV_PRESETS.hand);
  assert.equal(REQUEST_AJV_OPTIONS, AJV_PRESETS.request);
  assert.equal(QUERY_AJV_OPTIONS, AJV_PRESETS.query);
  assert.deepEqual(AJV_PRESETS.query, { ...AJV_PRESETS.request, coerceTypes: true });
});

test('`new Ajv` appears only in runtime/core/ajv.ts', () => {
  const offenders: string[] = [];
  for (const top of ['runtime', 'web-admin', 'provisioning', 'hands', 'drivers', 'image', 'scripts']) {
    let files: Generator<string>;
    try {
      statSync(join(ROOT, top));
      files = sourceFiles(join(ROOT, top), /\.(ts|tsx|js|mjs)$/);
    } catch {
      continue;
    }
    for (const file of files) {
      if (file.endsWith('runtime/core/ajv.ts')) continue;
      if (/new\s+Ajv\b|new\s+\w+\.Ajv\b/.test(readFileSync(file, 'utf8'))) offenders.push(file.slice(ROOT.length));
    }
  }
  assert.deepEqual(offenders, [], 'make an ajv with createAjv(preset) from runtime/core/ajv.ts');
});
