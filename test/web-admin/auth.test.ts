/**
 * Auth over the real HTTP layer: first-run setup code, login, lockout, CSRF, roles, token
 * scopes (shown once, stored hashed), logout; session expiry with an injected clock.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, cookieOf, code, type Harness } from './harness.ts';
import { Store } from '../../runtime/store/store.ts';
import { SessionStore, IDLE_MS, ABSOLUTE_MS } from '../../web-admin/auth/sessions.ts';
import { systemClock } from '../../runtime/core/clock.ts';

let h: Harness;
let admin: { cookie: string; csrf: string };
const PASSWORD = 'correct horse battery';

before(async () => {
  h = await startHarness();
});

after(async () => {
  await h.stop();
});

async function auditText(): Promise<string> {
  await h.kernel.audit.flush();
  const out: unknown[] = [];
  for await (const e of h.kernel.audit.entries()) out.push(e);
  return JSON.stringify(out);
}

async function authText(): Promise<string> {
  const out: unknown[] = [];
  for await (const kv of h.kernel.store.sublevel('auth').iterator()) out.push(kv);
  return JSON.stringify(out);
}

test('first start: a setup code in the data folder (0600), needed until the first admin exists', async () => {
  const file = join(h.dataDir, 'setup-code');
  const setupCode = h.kernel.http.setupCode;
  assert.match(setupCode ?? '', /^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$/);
  assert.equal(readFileSync(file, 'utf8').trim(), setupCode);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual((await h.send({ method: 'GET', url: '/api/v1/setup' })).json(), { needed: true });
  // nothing works without an account: no default password
  const login = await h.send({
    method: 'POST',
    url: '/api/v1/session',
    payload: { username: 'admin', password: 'admin' },
    remoteAddress: '10.0.0.1',
  });
  assert.equal(login.statusCode, 401);
  const wrong = await h.send({
    method: 'POST',
    url: '/api/v1/setup',
    payload: { code: 'AAAA-AAAA-AAAA-AAAA', username: 'admin', password: PASSWORD },
    remoteAddress: '10.0.0.1',
  });
  assert.equal(wrong.statusCode, 401);
  assert.equal(code(wrong), 'BAD_CREDENTIALS');
  assert.deepEqual((await h.send({ method: 'GET', url: '/api/v1/setup' })).json(), { needed: true });

  const r = await h.send({
    method: 'POST',
    url: '/api/v1/setup',
    payload: { code: setupCode!.toLowerCase(), username: 'admin', password: PASSWORD },
  });
  assert.equal(r.statusCode, 201, r.body);
  const setCookie = String(r.headers['set-cookie']);
  assert.match(setCookie, /^talon_session=[A-Za-z0-9_-]{43}; /);
  for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/']) assert.ok(setCookie.includes(attr), attr);
  assert.ok(!setCookie.includes('Secure'), 'no Secure flag over plain HTTP');
  admin = { cookie: cookieOf(r), csrf: (r.json() as { csrf: string }).csrf };
  assert.equal(existsSync(file), false, 'the setup code file is gone');
  assert.deepEqual((await h.send({ method: 'GET', url: '/api/v1/setup' })).json(), { needed: false });
  const again = await h.send({
    method: 'POST',
    url: '/api/v1/setup',
    payload: { code: setupCode!, username: 'evil', password: PASSWORD },
  });
  assert.equal(again.statusCode, 409);
  assert.equal(code(again), 'SETUP_DONE');
  const audit = await auditText();
  assert.ok(
    !audit.includes(setupCode!) && !audit.includes(setupCode!.replace(/-/g, '')),
    'the setup code is never audited',
  );
  assert.match(audit, /"actor":"user:admin","action":"auth.setup","subject":"admin","decision":"ok"/);
});

test('the session: whoami, CSRF on writes, the password stored as scrypt only', async () => {
  const me = await h.send({ method: 'GET', url: '/api/v1/session', headers: { cookie: admin.cookie } });
  assert.deepEqual(me.json(), { user: { name: 'admin', role: 'admin' }, csrf: admin.csrf, kind: 'session' });
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/session' })).statusCode, 401);
  const body = { name: 'viv', password: 'viewer password 1', role: 'viewer' };
  const noCsrf = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: { cookie: admin.cookie },
    payload: body,
  });
  assert.equal(noCsrf.statusCode, 403);
  assert.equal(code(noCsrf), 'CSRF');
  const badCsrf = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: { cookie: admin.cookie, 'x-csrf-token': 'x' + admin.csrf },
    payload: body,
  });
  assert.equal(code(badCsrf), 'CSRF');
  const ok = await h.send({
    method: 'POST',
    url: '/api/v1/users',
    headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    payload: body,
  });
  assert.equal(ok.statusCode, 201, ok.body);
  assert.deepEqual((ok.json() as { user: { name: string; role: string } }).user.role, 'viewer');
  const stored = await authText();
  assert.ok(!stored.includes(PASSWORD) && !stored.includes('viewer password 1'), 'no plain password in the store');
  assert.match(stored, /scrypt\$16384\$8\$1\$/);
  assert.ok(!(await auditText()).includes('viewer password 1'), 'no password in the audit log');
});

test('roles: a viewer reads but cannot change anything or see users', async () => {
  const login = await h.send({
    method: 'POST',
    url: '/api/v1/session',
    payload: { username: 'viv', password: 'viewer password 1' },
    remoteAddress: '10.0.0.2',
  });
  assert.equal(login.statusCode, 200, login.body);
  const viewer = { cookie: cookieOf(login), csrf: (login.json() as { csrf: string }).csrf };
  const headers = { cookie: viewer.cookie, 'x-csrf-token': viewer.csrf };
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/hands', headers })).statusCode, 200);
  const stop = await h.send({ method: 'POST', url: '/api/v1/hands/idle/stop', headers });
  assert.equal(stop.statusCode, 403);
  assert.equal(code(stop), 'FORBIDDEN');
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/users', headers })).statusCode, 403);
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/secrets', headers })).statusCode, 403);
  assert.equal(
    (await h.send({ method: 'GET', url: '/api/v1/users', headers: { cookie: admin.cookie } })).statusCode,
    200,
  );
});

test('five wrong passwords lock the account (429 LOCKED_OUT, Retry-After) even for the right one; audited without passwords', async () => {
  const ip = '10.0.0.3';
  for (let i = 0; i < 5; i++) {
    const r = await h.send({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: 'viv', password: `wrong guess ${i}` },
      remoteAddress: ip,
    });
    assert.equal(r.statusCode, 401);
    assert.equal(code(r), 'BAD_CREDENTIALS');
  }
  const locked = await h.send({
    method: 'POST',
    url: '/api/v1/session',
    payload: { username: 'viv', password: 'viewer password 1' },
    remoteAddress: '10.0.0.4',
  });
  assert.equal(locked.statusCode, 429);
  assert.equal(code(locked), 'LOCKED_OUT');
  const retry = Number(locked.headers['retry-after']);
  assert.ok(retry > 60 && retry <= 15 * 60, `Retry-After ${retry}`);
  const users = (await h.send({ method: 'GET', url: '/api/v1/users', headers: { cookie: admin.cookie } })).json() as {
    users: Array<{ name: string; locked?: boolean }>;
  };
  assert.equal(users.users.find((u) => u.name === 'viv')?.locked, true);
  const audit = await auditText();
  assert.ok(!audit.includes('wrong guess'), 'no password in the audit log');
  assert.match(audit, /"action":"auth.lockout","subject":"viv"/);
  assert.ok((audit.match(/"action":"auth.login","subject":"viv","decision":"deny"/g) ?? []).length >= 6);
});

test('per-address rate limit: RATE_LIMITED after a burst from one address', async () => {
  let last = 0;
  let codeSeen = '';
  for (let i = 0; i < 12 && last !== 429; i++) {
    const r = await h.send({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: `nobody${i}`, password: 'x' },
      remoteAddress: '10.0.0.5',
    });
    last = r.statusCode;
    if (last === 429) {
      codeSeen = code(r);
      assert.ok(Number(r.headers['retry-after']) >= 1);
    }
  }
  assert.equal(last, 429);
  assert.equal(codeSeen, 'RATE_LIMITED');
});

test('API tokens: shown once, stored hashed, limited to their scopes, revocable', async () => {
  const headers = { cookie: admin.cookie, 'x-csrf-token': admin.csrf };
  const made = await h.send({
    method: 'POST',
    url: '/api/v1/tokens',
    headers,
    payload: { name: 'grafana', scopes: ['hands:read'] },
  });
  assert.equal(made.statusCode, 201, made.body);
  const { token, info } = made.json() as { token: string; info: { id: string; user: string; scopes: string[] } };
  assert.match(token, /^tln_[a-f0-9]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(info.user, 'admin');
  const secret = token.split('_').slice(2).join('_');
  const list = await h.send({ method: 'GET', url: '/api/v1/tokens', headers });
  assert.ok(!list.body.includes(secret), 'the list never shows the secret');
  assert.ok(!(await authText()).includes(secret), 'the store holds only a hash');
  assert.ok(!(await auditText()).includes(secret), 'the audit log never holds the secret');

  const bearer = { authorization: `Bearer ${token}` };
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/hands', headers: bearer })).statusCode, 200);
  const stop = await h.send({ method: 'POST', url: '/api/v1/hands/idle/stop', headers: bearer });
  assert.equal(stop.statusCode, 403);
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/audit', headers: bearer })).statusCode, 403);
  const forged = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
  assert.equal(
    (await h.send({ method: 'GET', url: '/api/v1/hands', headers: { authorization: `Bearer ${forged}` } })).statusCode,
    401,
  );
  const me = (await h.send({ method: 'GET', url: '/api/v1/session', headers: bearer })).json() as {
    kind: string;
    csrf: null;
  };
  assert.deepEqual([me.kind, me.csrf], ['token', null]);

  const del = await h.send({ method: 'DELETE', url: `/api/v1/tokens/${info.id}`, headers });
  assert.equal(del.statusCode, 200, del.body);
  assert.equal((await h.send({ method: 'GET', url: '/api/v1/hands', headers: bearer })).statusCode, 401);
  const audit = await auditText();
  assert.match(audit, /"actor":"user:admin","action":"auth.token.create"/);
  assert.match(
    audit,
    new RegExp(`"actor":"user:admin","action":"auth.token.delete","subject":"${info.id}","decision":"ok"`),
  );
});

test('the last admin can be neither deleted nor demoted; logout (with the CSRF header) ends the session', async () => {
  const headers = { cookie: admin.cookie, 'x-csrf-token': admin.csrf };
  const del = await h.send({ method: 'DELETE', url: '/api/v1/users/admin', headers });
  assert.equal(del.statusCode, 409);
  assert.equal(code(del), 'LAST_ADMIN');
  const demote = await h.send({ method: 'PUT', url: '/api/v1/users/admin', headers, payload: { role: 'viewer' } });
  assert.equal(code(demote), 'LAST_ADMIN');
  assert.equal((await h.send({ method: 'DELETE', url: '/api/v1/users/viv', headers })).statusCode, 200);
  // the CLI's bearer token still works, as an admin
  const cli = await h.send({ method: 'GET', url: '/api/v1/session', headers: h.cli() });
  assert.deepEqual((cli.json() as { user: unknown }).user, { name: 'cli', role: 'admin' });
  // logout is a cookie-authenticated write like any other: without the CSRF header a page on
  // another site could end the session
  const forged = await h.send({ method: 'DELETE', url: '/api/v1/session', headers: { cookie: admin.cookie } });
  assert.equal(forged.statusCode, 403);
  assert.equal(code(forged), 'CSRF');
  assert.equal(
    (await h.send({ method: 'GET', url: '/api/v1/session', headers: { cookie: admin.cookie } })).statusCode,
    200,
    'still logged in',
  );
  const badToken = await h.send({
    method: 'DELETE',
    url: '/api/v1/session',
    headers: { cookie: admin.cookie, 'x-csrf-token': 'nope' },
  });
  assert.equal(code(badToken), 'CSRF');
  // without a (live) session there is nothing to protect: the cookie is cleared
  const anon = await h.send({ method: 'DELETE', url: '/api/v1/session' });
  assert.equal(anon.statusCode, 200);
  const out = await h.send({ method: 'DELETE', url: '/api/v1/session', headers });
  assert.equal(out.statusCode, 200);
  assert.match(String(out.headers['set-cookie']), /talon_session=; .*Max-Age=0/);
  assert.equal(
    (await h.send({ method: 'GET', url: '/api/v1/session', headers: { cookie: admin.cookie } })).statusCode,
    401,
  );
  assert.match(await auditText(), /"actor":"user:admin","action":"auth.logout"/);
});

test('sessions expire: 12 h idle, 7 days at most (injected clock)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-sessions-'));
  const store = await Store.open(dir);
  let now = 1_000_000;
  const sessions = new SessionStore(store, { ...systemClock, now: () => now });
  try {
    const a = await sessions.create('alice');
    now += IDLE_MS - 1000;
    assert.equal((await sessions.get(a.id))?.user, 'alice', 'within the idle window');
    now += IDLE_MS - 1000;
    assert.ok(await sessions.get(a.id), 'use keeps it alive');
    now += IDLE_MS + 1;
    assert.equal(await sessions.get(a.id), null, 'idle too long');
    const b = await sessions.create('alice');
    for (let t = 0; t < ABSOLUTE_MS; t += IDLE_MS / 2) {
      now += IDLE_MS / 2;
      if (t + IDLE_MS / 2 <= ABSOLUTE_MS) assert.ok(await sessions.get(b.id), `alive at ${t}`);
    }
    now += IDLE_MS / 2;
    assert.equal(await sessions.get(b.id), null, 'older than 7 days');
    assert.equal(await sessions.get('not-a-session-id'), null);
  } finally {
    await store.close();
  }
});
