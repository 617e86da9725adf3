import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_QUOTAS,
  effectiveQuotas,
  validateManifest,
  validateSettings,
} from '../../../runtime/supervisor/manifest.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { externalLimitMb } from '../../../runtime/supervisor/hand-runner.ts';

const base = { id: 'monitoring', version: '1.2.0', description: 'watches sensors' };
const code = (c: string, msg?: RegExp) => (e: TalonError) => e.code === c && (!msg || msg.test(e.message));

test('defaults fill quotas and capabilities; the input is not mutated', () => {
  const raw = { ...base };
  const m = validateManifest(raw, 'monitoring');
  assert.deepEqual(m.quotas, DEFAULT_QUOTAS);
  assert.deepEqual(DEFAULT_QUOTAS, { heapMb: 32, cpuShare: 0.5, messagesPerSec: 1000, llmTokensPerHour: 0 });
  assert.deepEqual(m.capabilities, {});
  assert.equal('quotas' in raw, false);
  assert.deepEqual(validateManifest({ ...base, quotas: { heapMb: 64 } }, 'x').quotas, {
    ...DEFAULT_QUOTAS,
    heapMb: 64,
  });
});

test('errors name the field path', () => {
  assert.throws(
    () => validateManifest({ ...base, quotas: { heapMb: 'lots' } }, 'x'),
    code('MANIFEST_INVALID', /manifest\.quotas\.heapMb must be integer/),
  );
  assert.throws(
    () => validateManifest({ ...base, quotas: { cpuShare: 2 } }, 'x'),
    code('MANIFEST_INVALID', /manifest\.quotas\.cpuShare/),
  );
  assert.throws(
    () => validateManifest({ version: '1.0.0', description: '' }, 'x'),
    code('MANIFEST_INVALID', /manifest\.id is required/),
  );
  assert.throws(() => validateManifest({ ...base, id: 'Bad Id' }, 'x'), code('MANIFEST_INVALID', /manifest\.id/));
  assert.throws(
    () => validateManifest({ ...base, capabilities: { bus: { publish: [1] } } }, 'x'),
    code('MANIFEST_INVALID', /manifest\.capabilities\.bus\.publish\[0\]/),
  );
  assert.throws(
    () => validateManifest({ ...base, capabilities: { gpio: [99] } }, 'x'),
    code('MANIFEST_INVALID', /manifest\.capabilities\.gpio\[0\]/),
  );
  assert.throws(
    () => validateManifest({ ...base, capabilities: { root: true } }, 'x'),
    code('MANIFEST_INVALID', /manifest\.capabilities\.root is not a known field/),
  );
  assert.throws(() => validateManifest({ ...base, schedule: -1 }, 'x'), code('MANIFEST_INVALID', /manifest\.schedule/));
  assert.throws(
    () => validateManifest(undefined, 'my-hand.cjs'),
    code('MANIFEST_INVALID', /my-hand\.cjs has no manifest/),
  );
  assert.throws(
    () => validateManifest({ ...base, settingsSchema: { type: 'nonsense' } }, 'x'),
    code('MANIFEST_INVALID', /settingsSchema .* not a valid JSON Schema/),
  );
});

test('config quotas override the manifest, and are validated', () => {
  const m = validateManifest({ ...base, quotas: { heapMb: 64 } }, 'x');
  assert.deepEqual(effectiveQuotas(m, { messagesPerSec: 10 }, 'hands.m.quotas'), {
    ...DEFAULT_QUOTAS,
    heapMb: 64,
    messagesPerSec: 10,
  });
  assert.deepEqual(effectiveQuotas(m, undefined, 'q'), m.quotas);
  assert.throws(
    () => effectiveQuotas(m, { heapMb: 1 }, 'hands.m.quotas'),
    code('CONFIG_INVALID', /hands\.m\.quotas\.heapMb must be >= 8/),
  );
  // memory outside the V8 heap: twice heapMb (at least 16) unless given
  assert.equal(m.quotas.externalMb, undefined);
  assert.equal(externalLimitMb(m.quotas), 128);
  assert.equal(externalLimitMb({ ...DEFAULT_QUOTAS, heapMb: 8 }), 16);
  const q = effectiveQuotas(m, { externalMb: 40 }, 'hands.m.quotas');
  assert.equal(externalLimitMb(q), 40);
  assert.throws(
    () => effectiveQuotas(m, { externalMb: 2 }, 'hands.m.quotas'),
    code('CONFIG_INVALID', /hands\.m\.quotas\.externalMb must be >= 8/),
  );
  assert.equal(validateManifest({ ...base, quotas: { externalMb: 256 } }, 'x').quotas.externalMb, 256);
});

test('settings are validated against the settingsSchema, defaults applied', () => {
  const m = validateManifest(
    {
      ...base,
      settingsSchema: {
        type: 'object',
        properties: { threshold: { type: 'number', default: 0.9 }, name: { type: 'string' } },
        required: ['name'],
      },
    },
    'x',
  );
  assert.deepEqual(validateSettings(m, { name: 'a' }, 'hands.m.settings'), { name: 'a', threshold: 0.9 });
  assert.throws(
    () => validateSettings(m, {}, 'hands.m.settings'),
    code('CONFIG_INVALID', /hands\.m\.settings\.name is required/),
  );
  assert.throws(
    () => validateSettings(m, { name: 'a', threshold: 'high' }, 'hands.m.settings'),
    code('CONFIG_INVALID', /hands\.m\.settings\.threshold must be number/),
  );
  const free = validateManifest(base, 'x');
  assert.deepEqual(validateSettings(free, { anything: 1 }, 's'), { anything: 1 });
});
