import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ensureBuilt, TALON } from '../../helpers/daemon.ts';
import { verifyPassword } from '../../../runtime/secrets/password.ts';

before(() => ensureBuilt());

const run = (input: string) =>
  spawnSync(process.execPath, [TALON, 'config', 'hash-password'], { input, encoding: 'utf8' });

test('config hash-password prints a scrypt hash that verifies the password it read', () => {
  const r = run('correct horse battery\n');
  assert.equal(r.status, 0, r.stderr);
  const hash = r.stdout.trim();
  assert.match(hash, /^scrypt\$/);
  assert.equal(verifyPassword('correct horse battery', hash), true);
  assert.equal(verifyPassword('correct horse battery\n', hash), false);
});

test('config hash-password refuses a short password with exit 2', () => {
  const r = run('short');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /at least 8/);
});
