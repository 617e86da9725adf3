import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../runtime/store/store.ts';
import { ConfigGenerations, canonicalJson, configHash } from '../../../runtime/config/generations.ts';
import { validateConfig } from '../../../runtime/config/validate.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { Clock } from '../../../runtime/core/clock.ts';
import { systemClock } from '../../../runtime/core/clock.ts';

let dir: string;
let store: Store;
let now = 1_700_000_000_000;
const clock: Clock = { ...systemClock, now: () => now };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-gen-'));
  store = await Store.open(dir);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const base = () => validateConfig({ dataDir: '/var/lib/talon' });
const meta = { actor: 'kernel', source: 'test' };

test('canonical JSON ignores key order, not array order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}');
  const a = validateConfig({ http: { port: 1 }, log: { level: 'debug' } });
  const b = validateConfig({ log: { level: 'debug' }, http: { port: 1 } });
  assert.equal(configHash(a), configHash(b));
  assert.notEqual(configHash(a), configHash(validateConfig({ http: { port: 2 }, log: { level: 'debug' } })));
});

test('nothing applied: current is undefined, list is empty, get is NOT_FOUND', async () => {
  const gens = new ConfigGenerations(store);
  assert.equal(await gens.current(), undefined);
  assert.deepEqual(await gens.list(), []);
  await assert.rejects(
    gens.get(1),
    (err: unknown) => err instanceof TalonError && err.code === 'NOT_FOUND' && /none applied yet/.test(err.message),
  );
});

test('applying the same content twice makes one generation; a change makes a new one', async () => {
  const gens = new ConfigGenerations(store, { clock });
  assert.deepEqual(await gens.apply(base(), meta), { generation: 1, changed: true });
  // same content, keys in another order, written by someone else: no new generation
  const reordered = JSON.parse(canonicalJson(base())) as ReturnType<typeof base>;
  assert.deepEqual(await gens.apply(reordered, { actor: 'cli', source: 'again' }), { generation: 1, changed: false });
  now += 1000;
  const changed = { ...base(), log: { level: 'debug' as const } };
  assert.deepEqual(await gens.apply(changed, { actor: 'http:admin', source: 'PUT /api/v1/config' }), {
    generation: 2,
    changed: true,
  });
  const cur = await gens.current();
  assert.equal(cur?.generation, 2);
  assert.equal(cur?.config.log.level, 'debug');
  assert.equal(cur?.actor, 'http:admin');
  assert.equal(cur?.source, 'PUT /api/v1/config');
  assert.equal(cur?.appliedAt, now);
  assert.equal(cur?.hash, configHash(changed));
});

test('list is newest first, without the configs, and honours limit; get returns one', async () => {
  const gens = new ConfigGenerations(store, { clock });
  for (let i = 0; i < 5; i++)
    await gens.apply({ ...base(), deviceName: `d${i}` }, { actor: 'kernel', source: `s${i}` });
  const all = await gens.list();
  assert.deepEqual(
    all.map((g) => g.generation),
    [5, 4, 3, 2, 1],
  );
  assert.equal('config' in all[0]!, false);
  assert.deepEqual(
    (await gens.list({ limit: 2 })).map((g) => g.generation),
    [5, 4],
  );
  const g3 = await gens.get(3);
  assert.equal(g3.config.deviceName, 'd2');
  assert.equal(g3.source, 's2');
  await assert.rejects(
    gens.get(6),
    (err: unknown) => err instanceof TalonError && err.code === 'NOT_FOUND' && /newest is 5/.test(err.message),
  );
  await assert.rejects(gens.get(0), (err: unknown) => err instanceof TalonError && err.code === 'BAD_REQUEST');
});

test('rollback is apply(get(n).config): a new generation with the old content', async () => {
  const gens = new ConfigGenerations(store);
  await gens.apply(base(), meta);
  await gens.apply({ ...base(), deviceName: 'second' }, meta);
  const r = await gens.apply((await gens.get(1)).config, { actor: 'cli', source: 'rollback to 1' });
  assert.deepEqual(r, { generation: 3, changed: true });
  assert.equal((await gens.current())?.hash, (await gens.get(1)).hash);
  assert.equal((await gens.current())?.config.deviceName, 'talon');
});

test('an invalid config is refused before anything is written', async () => {
  const gens = new ConfigGenerations(store);
  await gens.apply(base(), meta);
  const bad = { ...base(), http: { host: '127.0.0.1', port: 70000 } };
  await assert.rejects(
    gens.apply(bad, meta),
    (err: unknown) => err instanceof TalonError && err.code === 'CONFIG_INVALID',
  );
  assert.equal((await gens.current())?.generation, 1);
  assert.equal((await gens.list()).length, 1);
});

test('concurrent applies get distinct generations', async () => {
  const gens = new ConfigGenerations(store);
  const results = await Promise.all([0, 1, 2, 3].map((i) => gens.apply({ ...base(), deviceName: `c${i}` }, meta)));
  assert.deepEqual(results.map((r) => r.generation).sort(), [1, 2, 3, 4]);
  assert.equal((await gens.list()).length, 4);
});

test('generations survive closing and reopening the store', async () => {
  let gens = new ConfigGenerations(store);
  await gens.apply(base(), meta);
  await gens.apply({ ...base(), deviceName: 'kept' }, meta);
  await store.close();
  store = await Store.open(dir);
  gens = new ConfigGenerations(store);
  const cur = await gens.current();
  assert.equal(cur?.generation, 2);
  assert.equal(cur?.config.deviceName, 'kept');
  assert.deepEqual(await gens.apply({ ...base(), deviceName: 'kept' }, meta), { generation: 2, changed: false });
  assert.deepEqual(await gens.apply(base(), meta), { generation: 3, changed: true });
});
