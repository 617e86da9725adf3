/**
 * A token or user grants only what it holds (web-admin/auth/scopes.ts), over the real HTTP
 * layer: a `tokens:write` token cannot mint `*` (which then read secrets) or any scope it
 * lacks, nor a token outliving itself; a `users:write` token cannot make an admin, or a
 * viewer (who reads every area), or take over an admin by setting its password. Refusals are
 * 403 SCOPE_ESCALATION and audited as `deny`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, setupAdmin, code, type Harness } from './harness.ts';
import { covers, holds, ROLE_SCOPES } from '../../web-admin/auth/scopes.ts';
import type { Principal } from '../../web-admin/route.ts';

let h: Harness;
let admin: Record<string, string>;

before(async () => {
  h = await startHarness();
  const a = await setupAdmin(h);
  admin = { cookie: a.cookie, 'x-csrf-token': a.csrf };
});

after(async () => {
  await h.stop();
});

async function token(
  scopes: string[],
  headers: Record<string, string> = admin,
  extra: Record<string, unknown> = {},
): Promise<{ bearer: Record<string, string>; info: { id: string; scopes: string[]; expiresAt?: number } }> {
  const r = await h.send({
    method: 'POST',
    url: '/api/v1/tokens',
    headers,
    payload: { name: `t-${scopes.join('-').replace(/[^\w]/g, '_')}`.slice(0, 64), scopes, ...extra },
  });
  assert.equal(r.statusCode, 201, r.body);
  const { token: t, info } = r.json() as { token: string; info: { id: string; scopes: string[]; expiresAt?: number } };
  return { bearer: { authorization: `Bearer ${t}` }, info };
}

async function auditText(): Promise<string> {
  await h.kernel.audit.flush();
  const out: unknown[] = [];
  for await (const e of h.kernel.audit.entries()) out.push(e);
  return JSON.stringify(out);
}

test('a tokens:write token mints only tokens within its own scopes', async () => {
  const { bearer } = await token(['tokens:write']);
  for (const scopes of [['*'], ['secrets:read'], ['tokens:write', 'hands:write'], ['users:write']]) {
    const r = await h.send({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: bearer,
      payload: { name: 'escalate', scopes },
    });
    assert.equal(r.statusCode, 403, `${scopes.join(',')}: ${r.body}`);
    assert.equal(code(r), 'SCOPE_ESCALATION');
  }
  // what it holds it may pass on (write covers read)
  const same = await h.send({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: bearer,
    payload: { name: 'narrower', scopes: ['tokens:read'] },
  });
  assert.equal(same.statusCode, 201, same.body);
  // nothing with `*` was made, so secrets stay closed to it
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/secrets', headers: bearer })).statusCode, 403);
  assert.match(
    await auditText(),
    /"action":"auth.token.create","subject":"escalate","decision":"deny","detail":\{[^}]*"code":"SCOPE_ESCALATION"/,
  );
});

test('`*` comes only from `*`: an admin session or a `*` token', async () => {
  const star = await token(['*']);
  assert.deepEqual(star.info.scopes, ['*']);
  const again = await token(['*'], star.bearer);
  assert.deepEqual(again.info.scopes, ['*']);
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/secrets', headers: again.bearer })).statusCode, 200);
});

test('a token made by a token expires no later than its maker', async () => {
  const short = await token(['tokens:write', 'hands:read'], admin, { expiresInDays: 1 });
  const r = await h.send({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: short.bearer,
    payload: { name: 'longer', scopes: ['hands:read'], expiresInDays: 3650 },
  });
  assert.equal(r.statusCode, 201, r.body);
  assert.equal((r.json() as { info: { expiresAt: number } }).info.expiresAt, short.info.expiresAt);
  const forever = await h.send({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: short.bearer,
    payload: { name: 'forever', scopes: ['hands:read'] },
  });
  assert.equal((forever.json() as { info: { expiresAt: number } }).info.expiresAt, short.info.expiresAt);
});

test('a users:write token cannot make an admin, a viewer, or take over an admin', async () => {
  const { bearer } = await token(['users:write']);
  const mkAdmin = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: bearer,
    payload: { name: 'mallory', password: 'a long password 1', role: 'admin' },
  });
  assert.equal(mkAdmin.statusCode, 403, mkAdmin.body);
  assert.equal(code(mkAdmin), 'SCOPE_ESCALATION');
  const mkViewer = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: bearer,
    payload: { name: 'mallory', password: 'a long password 1', role: 'viewer' },
  });
  assert.equal(code(mkViewer), 'SCOPE_ESCALATION', 'a viewer reads every area: more than users:write holds');
  const takeover = await h.send({
    method: 'PUT',
    url: '/api/v1/users/admin',
    headers: bearer,
    payload: { password: 'a long password 2' },
  });
  assert.equal(code(takeover), 'SCOPE_ESCALATION');
  const del = await h.send({ method: 'DELETE', url: '/api/v1/users/admin', headers: bearer });
  assert.equal(code(del), 'SCOPE_ESCALATION');
  const users = (await h.send({ method: 'GET', url: '/api/v1/users', headers: admin })).json() as {
    users: Array<{ name: string }>;
  };
  assert.deepEqual(
    users.users.map((u) => u.name),
    ['admin'],
  );
  // the admin's password is unchanged
  const login = await h.send({
    method: 'POST',
    url: '/api/v1/session',
    payload: { username: 'admin', password: 'correct horse battery' },
    remoteAddress: '10.9.0.1',
  });
  assert.equal(login.statusCode, 200);
  const audit = await auditText();
  assert.match(audit, /"action":"auth.user.create","subject":"mallory","decision":"deny"/);
  assert.match(audit, /"action":"auth.user.update","subject":"admin","decision":"deny"/);
});

test('a user session acts with its role: an admin makes admins and viewers; a token with * too', async () => {
  const a = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: admin,
    payload: { name: 'ada', password: 'a long password 3', role: 'admin' },
  });
  assert.equal(a.statusCode, 201, a.body);
  const star = await token(['*']);
  const v = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: star.bearer,
    payload: { name: 'vic', password: 'a long password 4', role: 'viewer' },
  });
  assert.equal(v.statusCode, 201, v.body);
  // a token with every viewer scope and users:write may make a viewer, not an admin
  const reader = await token([...ROLE_SCOPES.viewer, 'users:write']);
  const v2 = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: reader.bearer,
    payload: { name: 'val', password: 'a long password 5', role: 'viewer' },
  });
  assert.equal(v2.statusCode, 201, v2.body);
  const promote = await h.send({
    method: 'PUT',
    url: '/api/v1/users/val',
    headers: reader.bearer,
    payload: { role: 'admin' },
  });
  assert.equal(code(promote), 'SCOPE_ESCALATION');
  const reset = await h.send({
    method: 'PUT',
    url: '/api/v1/users/val',
    headers: reader.bearer,
    payload: { password: 'a long password 6' },
  });
  assert.equal(reset.statusCode, 200, 'a viewer it could make, it may change');
  const takeover = await h.send({
    method: 'PUT',
    url: '/api/v1/users/ada',
    headers: reader.bearer,
    payload: { password: 'a long password 7' },
  });
  assert.equal(code(takeover), 'SCOPE_ESCALATION');
});

test("holds(): a token is bounded by its scopes and by its account's role", () => {
  const p = (role: Principal['role'], scopes: string[]): Principal => ({ actor: 'x', kind: 'token', role, scopes });
  assert.equal(holds(p('admin', ['*']), '*'), true);
  assert.equal(holds(p('viewer', ['*']), '*'), false, "a viewer's token never holds *");
  assert.equal(holds(p('viewer', ['*']), 'hands:read'), true);
  assert.equal(holds(p('viewer', ['*']), 'hands:write'), false);
  assert.equal(holds(p('viewer', ['*']), 'secrets:read'), false);
  assert.equal(holds(p('admin', ['hands:write']), 'hands:read'), true);
  assert.equal(holds(p('admin', ['hands:read']), 'hands:write'), false);
  assert.equal(holds(p(null, ['*']), 'hands:read'), false);
  assert.equal(covers(['hands:write'], '*'), false);
});
