/**
 * ConfigManager over real generations in a real LevelDB: validate with paths, diff, apply
 * (audited with the actor and sections), 409 on a stale base, rollback as a new generation,
 * and nothing written for an invalid config.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../runtime/store/store.ts';
import { ConfigGenerations } from '../../../runtime/config/generations.ts';
import { ConfigManager, resolveStartConfig } from '../../../runtime/config/apply.ts';
import { validateConfig } from '../../../runtime/config/validate.ts';
import type { AuditEvent } from '../../../runtime/audit/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { TalonConfig } from '../../../runtime/config/types.ts';

let dir: string;
let store: Store;
let gens: ConfigGenerations;
let base: TalonConfig;
const events: AuditEvent[] = [];
const reconfigured: string[][] = [];
let manager: ConfigManager;
const caller = { actor: 'user:ada' };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-apply-'));
  store = await Store.open(dir);
  gens = new ConfigGenerations(store);
  base = validateConfig({ dataDir: dir, deviceName: 'bench' });
  await resolveStartConfig(store, gens, base, 'test');
  manager = new ConfigManager({
    generations: gens,
    audit: {
      record: async (e) => {
        events.push(e);
      },
    },
    reconfigure: async (_p, _n, sections) => {
      reconfigured.push(sections);
      return sections.includes('hands') ? ['x'] : ['kernel'];
    },
  });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const rejects = async (p: Promise<unknown>, code: string): Promise<TalonError> => {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
};

test('validate names every problem with its path and never throws', async () => {
  const r = await manager.validate({ dataDir: dir, http: { port: 'eighty' }, deviceName: '' });
  assert.equal(r.ok, false);
  const paths = r.errors.map((e) => e.path);
  assert.ok(paths.includes('http.port'), JSON.stringify(r.errors));
  assert.ok(paths.includes('deviceName'), JSON.stringify(r.errors));
  assert.deepEqual(await manager.validate({ dataDir: dir }), { ok: true, errors: [] });
  const moved = await manager.validate({ dataDir: join(dir, 'elsewhere') });
  assert.equal(moved.errors[0]?.path, 'dataDir');
});

test('diff shows the changed lines and the sections', async () => {
  const same = await manager.diff({ dataDir: dir, deviceName: 'bench' });
  assert.deepEqual(same, { changed: false, diff: '', sections: [] });
  const d = await manager.diff({ dataDir: dir, deviceName: 'lab', log: { level: 'debug' } });
  assert.equal(d.changed, true);
  assert.deepEqual(d.sections, ['deviceName', 'log']);
  assert.match(d.diff, /^-\s+"deviceName": "bench",$/m);
  assert.match(d.diff, /^\+\s+"deviceName": "lab",$/m);
  assert.match(d.diff, /^\+\s+"level": "debug"$/m);
  assert.match(d.diff, /^@@ -\d+,\d+ \+\d+,\d+ @@$/m);
});

test('apply writes a generation, audits actor and sections; a stale base is a 409; an invalid config writes nothing', async () => {
  const g0 = (await manager.current()).generation;
  const r = await manager.apply(caller, { dataDir: dir, deviceName: 'lab' }, { baseGeneration: g0 });
  assert.deepEqual(r, { generation: g0 + 1, changed: true, restarted: ['kernel'] });
  assert.deepEqual(reconfigured.at(-1), ['deviceName']);
  const ev = events.at(-1)!;
  assert.equal(ev.actor, 'user:ada');
  assert.equal(ev.action, 'config.apply');
  assert.deepEqual((ev.detail as { sections: string[] }).sections, ['deviceName']);
  assert.equal((await manager.current()).config.deviceName, 'lab');

  const stale = await rejects(
    manager.apply(caller, { dataDir: dir, deviceName: 'other' }, { baseGeneration: g0 }),
    'CONFLICT',
  );
  assert.equal(stale.status, 409);
  assert.equal(events.at(-1)!.decision, 'error');

  const bad = await rejects(manager.apply(caller, { dataDir: dir, http: { port: 70000 } }), 'CONFIG_INVALID');
  assert.equal(bad.status, 400);
  assert.ok((bad.details as { errors: Array<{ path: string }> }).errors.some((e) => e.path === 'http.port'));
  assert.equal((await manager.current()).generation, g0 + 1);

  const again = await manager.apply(caller, { dataDir: dir, deviceName: 'lab' });
  assert.equal(again.changed, false);
  assert.equal(again.generation, g0 + 1);
});

test('concurrent applies over the same base: one wins, the other is a conflict', async () => {
  const g = (await manager.current()).generation;
  const results = await Promise.allSettled([
    manager.apply(caller, { dataDir: dir, deviceName: 'one' }, { baseGeneration: g }),
    manager.apply(caller, { dataDir: dir, deviceName: 'two' }, { baseGeneration: g }),
  ]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.equal((failed.reason as TalonError).code, 'CONFLICT');
});

test('rollback re-applies an old generation as a new one', async () => {
  const before = (await manager.current()).generation;
  const r = await manager.rollback(caller, 1);
  assert.equal(r.generation, before + 1);
  const cur = await manager.current();
  assert.equal(cur.config.deviceName, 'bench');
  assert.equal(cur.source, 'rollback to 1');
  assert.equal(events.at(-1)!.action, 'config.rollback');
  await rejects(manager.rollback(caller, 999), 'NOT_FOUND');
  const list = await manager.list();
  assert.equal(list[0]!.generation, cur.generation);
});
