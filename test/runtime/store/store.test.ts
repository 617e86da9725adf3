import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, SCHEMA_VERSION, type Migration } from '../../../runtime/store/store.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'talon-store-'));

test('a new store records the schema version and writes its pid', async () => {
  const dir = tmp();
  const s = await Store.open(dir);
  try {
    assert.equal(await s.schemaVersion(), SCHEMA_VERSION);
    assert.equal(readFileSync(join(dir, 'talon.pid'), 'utf8').trim(), String(process.pid));
    assert.equal(s.isOpen(), true);
  } finally {
    await s.close();
  }
  assert.equal(s.isOpen(), false);
  assert.equal(existsSync(join(dir, 'talon.pid')), false, 'a clean close removes talon.pid (issue 14)');
});

test('sublevels are isolated from each other', async () => {
  const s = await Store.open(tmp());
  try {
    await s.sublevel('hands').put('k', { a: 1 });
    await s.sublevel('alerts').put('k', 'other');
    assert.deepEqual(await s.sublevel('hands').get('k'), { a: 1 });
    assert.equal(await s.sublevel('alerts').get('k'), 'other');
    assert.equal(await s.sublevel('config').get('k'), undefined);
  } finally {
    await s.close();
  }
});

test('a sublevel and a Hand scope are made once: abstract-level keeps every one made, so one per call leaked', async () => {
  const s = await Store.open(tmp());
  try {
    assert.equal(s.sublevel('hands'), s.sublevel('hands'));
    assert.notEqual(s.sublevel('hands'), s.sublevel('alerts'));
    assert.equal(s.handScope('a'), s.handScope('a'));
    await s.handScope('a').put('k', { v: 1 });
    await s.handScope('b').put('k', { v: 2 });
    assert.deepEqual(await s.handScope('a').get('k'), { v: 1 });
    // the layout stays what it was: the `hands` sublevel's child named after the Hand
    const keys: string[] = [];
    for await (const k of s.sublevel('hands').keys()) keys.push(k);
    assert.deepEqual(keys, ['!a!k', '!b!k']);
    assert.deepEqual(await s.sublevel('hands').sublevel('a', { valueEncoding: 'json' }).get('k'), { v: 1 });
  } finally {
    await s.close();
  }
});

test('migrations run once, in order, from the stored version; data survives', async () => {
  const dir = tmp();
  const ran: number[] = [];
  const m = (version: number): Migration => ({
    version,
    description: `v${version}`,
    async up(store) {
      ran.push(version);
      await store.sublevel('meta').put(`m${version}`, true);
    },
  });
  let s = await Store.open(dir, { migrations: [m(1)] });
  await s.sublevel('hands').put('keep', 'me');
  await s.close();
  assert.deepEqual(ran, [1]);

  s = await Store.open(dir, { migrations: [m(3), m(1), m(2)] });
  try {
    assert.deepEqual(ran, [1, 2, 3]);
    assert.equal(await s.schemaVersion(), 3);
    assert.equal(await s.sublevel('hands').get('keep'), 'me');
  } finally {
    await s.close();
  }
});

test('a data folder from a newer Talon is refused, and a failed migration leaves the version as it was', async () => {
  const dir = tmp();
  const up = async (): Promise<void> => {};
  await (await Store.open(dir, { migrations: [{ version: 5, description: 'future', up }] })).close();
  await assert.rejects(
    Store.open(dir, { migrations: [{ version: 1, description: 'old', up }] }),
    (e: TalonError) => e.code === 'STORE_OPEN_FAILED' && /newer Talon \(schema 5/.test(e.message),
  );

  const dir2 = tmp();
  await (await Store.open(dir2, { migrations: [{ version: 1, description: 'a', up }] })).close();
  await assert.rejects(
    Store.open(dir2, {
      migrations: [
        { version: 1, description: 'a', up },
        {
          version: 2,
          description: 'broken',
          up: async () => {
            throw new Error('boom');
          },
        },
      ],
    }),
    /boom/,
  );
  const s = await Store.open(dir2, { migrations: [{ version: 1, description: 'a', up }] });
  try {
    assert.equal(await s.schemaVersion(), 1);
  } finally {
    await s.close();
  }
});

test('a second open of the same folder fails with STORE_LOCKED naming the pid; the first keeps working', async () => {
  const dir = tmp();
  const s = await Store.open(dir);
  try {
    await assert.rejects(
      Store.open(dir),
      (e: TalonError) => e.code === 'STORE_LOCKED' && e.exitCode === 2 && e.message.includes(`pid ${process.pid}`),
    );
    await s.sublevel('hands').put('still', 'works');
    assert.equal(await s.sublevel('hands').get('still'), 'works');
  } finally {
    await s.close();
  }
});
