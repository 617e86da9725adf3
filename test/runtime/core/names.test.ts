import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sourceFiles } from '../../helpers/source-files.ts';
import {
  CHAT_TARGET,
  CHAT_TARGET_PATTERN,
  HAND_ID,
  HAND_NAME,
  HAND_NAME_PATTERN,
  SECRET_NAME,
  USER_NAME,
  SENSOR_ID,
  SENSOR_ID_PATTERN,
  checkHandName,
  checkSensorId,
  isHandName,
} from '../../../runtime/core/names.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { HAND_NAME_PATTERN as CONFIG_HAND_NAME_PATTERN } from '../../../runtime/config/schema.ts';
import { HAND_NAME as ROUTE_HAND_NAME, SENSOR_ID as ROUTE_SENSOR_ID } from '../../../web-admin/routes/schemas.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

const GOOD = ['a', '0', 'monitoring', 'web-automation-2', 'x'.repeat(63), '0-', 'a--b'];
const BAD = [
  '',
  '-x',
  'Mon',
  'UPPER',
  'snake_case',
  'a/b',
  'a b',
  'a.b',
  'a+',
  '#',
  'ünï',
  'x'.repeat(64),
  '..',
  'a\n',
];

test('a Hand name: lowercase letters, digits and "-", 1-63, not starting with "-"', () => {
  for (const n of GOOD) assert.ok(isHandName(n), n);
  for (const n of BAD) assert.ok(!isHandName(n), n);
  assert.ok(!isHandName(42));
  assert.ok(!isHandName(undefined));
  assert.equal(HAND_NAME.source, HAND_NAME_PATTERN);
});

test('checkHandName throws BAD_REQUEST (or the code asked for) saying what a name may hold', () => {
  assert.doesNotThrow(() => checkHandName('monitoring'));
  assert.throws(
    () => checkHandName('Bad_Name'),
    (err: unknown) => {
      assert.ok(err instanceof TalonError);
      assert.equal(err.code, 'BAD_REQUEST');
      assert.match(
        err.message,
        /^"Bad_Name" is not a Hand name: a Hand name must be 1-63 lowercase letters, digits or "-"/,
      );
      return true;
    },
  );
  assert.throws(
    () => checkHandName(undefined, { code: 'CONFIG_INVALID', where: 'hands[2].name' }),
    (err: unknown) =>
      err instanceof TalonError &&
      err.code === 'CONFIG_INVALID' &&
      /^hands\[2\]\.name undefined is not a Hand name/.test(err.message),
  );
  assert.throws(
    () => checkHandName('x'.repeat(10_000)),
    (err: unknown) => err instanceof TalonError && err.message.length < 400,
    'a long name is not echoed whole',
  );
});

test('sensor ids and chat targets', () => {
  for (const id of ['t1', 'green.temp', 'a_b-c.d', 'x'.repeat(128)]) assert.ok(SENSOR_ID.test(id), id);
  for (const id of ['', '.a', 'A', 'a/b', 'x'.repeat(129)]) assert.ok(!SENSOR_ID.test(id), id);
  assert.throws(
    () => checkSensorId('A/B'),
    (err: unknown) => err instanceof TalonError && err.code === 'BAD_REQUEST' && /is not a sensor id/.test(err.message),
  );
  for (const t of ['router', 'hand:monitoring', 'hand:a']) assert.ok(CHAT_TARGET.test(t), t);
  for (const t of ['hand:', 'hand:Bad', 'hand:a_b', 'routers', 'hand:a/b', `hand:${'x'.repeat(64)}`])
    assert.ok(!CHAT_TARGET.test(t), t);
  assert.equal(CHAT_TARGET_PATTERN, '^(router|hand:[a-z0-9][a-z0-9-]{0,62})$', 'the OpenAPI pattern of before');
});

test('the config schema and the REST schemas take the same patterns', () => {
  assert.equal(CONFIG_HAND_NAME_PATTERN, HAND_NAME_PATTERN);
  assert.equal(ROUTE_HAND_NAME.pattern, HAND_NAME_PATTERN);
  assert.equal(ROUTE_SENSOR_ID.pattern, SENSOR_ID_PATTERN);
});

test('the Hand name, sensor id, user name and secret name rules are written only in runtime/core/names.ts', () => {
  const offenders: string[] = [];
  for (const top of ['runtime', 'web-admin', 'provisioning', 'hands', 'image']) {
    for (const file of sourceFiles(join(ROOT, top))) {
      if (file.endsWith('runtime/core/names.ts') || file.endsWith('runtime/llm/config.ts')) continue; // a provider name is its own rule
      const text = readFileSync(file, 'utf8');
      if (text.includes('[a-z0-9][a-z0-9-]{0,62}') || text.includes('[a-z0-9][a-z0-9_-]{0,62}'))
        offenders.push(file.slice(ROOT.length));
      // the sensor id, user name and secret name rules too
      if (
        /\[a-z0-9\]\[a-z0-9\._-\]\{0,127\}|\[a-z\]\[a-z0-9\._-\]\{0,31\}|\[A-Za-z0-9\]\[A-Za-z0-9(\._|_\.)-\]\{0,63\}/.test(
          text,
        )
      )
        offenders.push(file.slice(ROOT.length));
    }
  }
  assert.deepEqual(offenders, []);
});

test('a Hand module id starts with a letter', () => {
  for (const id of ['monitoring', 'web-automation', 'a', `a${'x'.repeat(62)}`]) assert.ok(HAND_ID.test(id), id);
  for (const id of ['0abc', '-a', 'Mon', 'a_b', './x.js', `a${'x'.repeat(63)}`]) assert.ok(!HAND_ID.test(id), id);
});

test('user names and secret names', () => {
  for (const n of ['admin', 'a', 'jo.doe_2-x', `a${'x'.repeat(31)}`]) assert.ok(USER_NAME.test(n), n);
  for (const n of ['', 'Admin', '1admin', '.a', 'a b', `a${'x'.repeat(32)}`]) assert.ok(!USER_NAME.test(n), n);
  for (const n of ['OPENAI_KEY', 'a', 'x.y-z_1', 'A'.repeat(64)]) assert.ok(SECRET_NAME.test(n), n);
  for (const n of ['', '_a', '-a', 'a/b', 'a b', 'A'.repeat(65)]) assert.ok(!SECRET_NAME.test(n), n);
});
