import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineHand } from '../../../hands/sdk/index.ts';
import type { HandDefinition } from '../../../hands/sdk/index.ts';
import { fixture } from '../../helpers/fixtures.ts';
import { createRequire } from 'node:module';

const manifest = { id: 'x', version: '1.0.0', description: 'd', capabilities: {}, quotas: {} };

test('defineHand returns the definition and checks its shape', () => {
  const def = { manifest, start() {} };
  assert.equal(defineHand(def), def);
  assert.throws(() => defineHand(null as unknown as HandDefinition), /def must be an object/);
  assert.throws(() => defineHand({ start() {} } as unknown as HandDefinition), /manifest must be an object/);
  assert.throws(() => defineHand({ manifest: { ...manifest, id: '' }, start() {} }), /id must be a non-empty string/);
  assert.throws(() => defineHand({ manifest } as unknown as HandDefinition), /Hand "x" has no start\(ctx\)/);
  assert.throws(
    () => defineHand({ manifest, start() {}, stop: 1 } as unknown as HandDefinition),
    /stop must be a function/,
  );
});

test('a bundled Hand is CommonJS with the definition as its default export', async () => {
  const path = await fixture('idle');
  const mod = createRequire(import.meta.url)(path) as { default: HandDefinition };
  assert.equal(mod.default.manifest.id, 'idle');
  assert.equal(typeof mod.default.start, 'function');
});
