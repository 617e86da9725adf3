/**
 * Every built-in tool keeps the same contract (runtime/tools/builtin/index.ts): a `group.verb` name, once;
 * a description a model can act on; input and output schemas that are valid JSON Schemas (the registry
 * skips the meta-schema for built-ins at start, so this is where a broken schema is caught) and that
 * compile; an object input; annotations that say whether it changes anything; the grant it needs; and
 * the list of tools all there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { builtinTools } from '../../../runtime/tools/builtin/index.ts';
import type { KernelToolDeps } from '../../../runtime/tools/builtin/kernel.ts';

const unused = (): never => {
  throw new Error('not called in this test');
};
const tools = builtinTools({
  kernel: {
    services: () => undefined,
    publish: unused,
    deviceRoot: 'talon/dev1',
    store: { scope: unused },
    auditQuery: unused,
    hands: { list: unused, status: unused, start: unused, stop: unused },
  } as KernelToolDeps,
  web: { fetch: { request: unused }, search: () => undefined, secret: async () => undefined },
});

test('the built-in tools the issue names are all there, each name once', () => {
  const names = tools.map((t) => t.name);
  assert.equal(new Set(names).size, names.length, `a name twice: ${names.join(', ')}`);
  for (const n of [
    'http.request',
    'web.read',
    'web.search',
    'file.read',
    'file.write',
    'file.list',
    'file.delete',
    'shell.exec',
    'sensors.list',
    'sensors.read',
    'actuators.write',
    'bus.publish',
    'store.get',
    'store.put',
    'store.list',
    'audit.query',
    'hands.list',
    'hands.status',
    'hands.start',
    'hands.stop',
    'llm.embed',
    'json.query',
    'csv.parse',
    'time.now',
    'notify',
  ])
    assert.ok(names.includes(n), `missing ${n}`);
});

test('each has a description, valid compiling schemas, annotations and its grant in words', () => {
  const ajv = createAjv('check');
  for (const t of tools) {
    assert.match(t.name, /^[a-z]+(\.[a-z_]+)?$/, t.name);
    assert.ok(t.description.length >= 20, `${t.name}: a description a model can act on`);
    assert.ok(t.capability.length > 0, `${t.name}: the grant it needs`);
    assert.equal(t.source, 'builtin');
    assert.equal(t.inputSchema.type, 'object', `${t.name}: the input is an object`);
    for (const [what, schema] of [
      ['input', t.inputSchema],
      ['output', t.outputSchema],
    ] as const) {
      if (!schema) continue;
      assert.equal(ajv.validateSchema(schema), true, `${t.name} ${what}: ${ajv.errorsText(ajv.errors)}`);
      assert.doesNotThrow(() => ajv.compile(schema), `${t.name} ${what} compiles`);
    }
    const a = t.annotations;
    assert.equal(typeof a.readOnlyHint, 'boolean', `${t.name}: says whether it changes anything`);
    if (!a.readOnlyHint) assert.equal(typeof a.destructiveHint, 'boolean', `${t.name}: says whether it destroys`);
    assert.equal(typeof a.openWorldHint, 'boolean', `${t.name}: says whether it reaches outside the device`);
  }
});

test('what changes the world irreversibly is marked destructive (a person approves it)', () => {
  const destructive = tools
    .filter((t) => t.annotations.destructiveHint && !t.annotations.readOnlyHint)
    .map((t) => t.name);
  assert.deepEqual(destructive.sort(), [
    'actuators.write',
    'file.delete',
    'hands.restart',
    'hands.start',
    'hands.stop',
  ]);
  for (const n of ['sensors.read', 'web.read', 'json.query', 'time.now', 'audit.query'])
    assert.equal(tools.find((t) => t.name === n)!.annotations.readOnlyHint, true, n);
});
