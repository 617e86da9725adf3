import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  hashPassword,
  isPasswordHash,
  verifyPassword,
  verifyPasswordAsync,
} from '../../../runtime/secrets/password.ts';

test('hashPassword makes scrypt$N$r$p$salt$hash with a fresh salt', () => {
  const a = hashPassword('correct horse');
  const b = hashPassword('correct horse');
  assert.match(a, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
  assert.notEqual(a, b, 'salted');
  assert.ok(isPasswordHash(a));
});

test('verifyPassword accepts the password and refuses anything else', async () => {
  const h = hashPassword('s3cret', { N: 1024 });
  assert.equal(verifyPassword('s3cret', h), true);
  assert.equal(verifyPassword('s3cret ', h), false);
  assert.equal(verifyPassword('', h), false);
  assert.equal(await verifyPasswordAsync('s3cret', h), true);
  assert.equal(await verifyPasswordAsync('S3cret', h), false);
  // NFC: the same text in another Unicode normal form is the same password
  const nfc = hashPassword('caf\u00e9', { N: 1024 });
  assert.equal(verifyPassword('cafe\u0301', nfc), true);
});

test('malformed or hostile hashes verify false and never throw', async () => {
  const good = hashPassword('pw', { N: 1024 });
  const parts = good.split('$');
  const bad = [
    '',
    'plain',
    'scrypt$1024$8$1$abc',
    `bcrypt$${parts.slice(1).join('$')}`,
    `scrypt$1000$8$1$${parts[4]}$${parts[5]}`, // N not a power of two
    `scrypt$${1 << 30}$8$1$${parts[4]}$${parts[5]}`, // N absurdly large (DoS)
    `scrypt$1024$999$1$${parts[4]}$${parts[5]}`,
    `scrypt$1024$8$1$!!!$${parts[5]}`,
    `scrypt$1024$8$1$${parts[4]}$`,
  ];
  for (const h of bad) {
    assert.equal(verifyPassword('pw', h), false, h);
    assert.equal(await verifyPasswordAsync('pw', h), false, h);
    assert.equal(isPasswordHash(h), false, h);
  }
});
