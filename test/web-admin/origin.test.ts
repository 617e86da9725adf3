/**
 * Host and Origin (web-admin/auth/origin.ts): against DNS rebinding the device answers only to
 * its own names and addresses (plus http.allowedHosts), and refuses writes from pages on other
 * sites; requests without Origin (the CLI, curl) keep working.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import { startHarness, code, type Harness } from './harness.ts';
import { HostGuard, hostOf } from '../../web-admin/auth/origin.ts';
import type { IncomingMessage } from 'node:http';

let h: Harness;

before(async () => {
  h = await startHarness();
});

after(async () => {
  await h.stop();
});

test('a foreign Host is refused (421 HOST_NOT_ALLOWED) on the API and the page; /healthz answers anyway', async () => {
  for (const url of ['/api/v1/hands', '/', '/api/v1/openapi.json', '/metrics']) {
    const r = await h.send({ method: 'GET', url, headers: { ...h.cli(), host: 'attacker.example:8080' } });
    assert.equal(r.statusCode, 421, `${url}: ${r.body}`);
    assert.equal(code(r), 'HOST_NOT_ALLOWED');
  }
  const write = await h.send({
    method: 'POST',
    url: '/api/v1/hands/idle/stop',
    headers: { ...h.cli(), host: 'rebind.attacker.example' },
  });
  assert.equal(write.statusCode, 421);
  assert.equal(
    (await h.send({ method: 'GET', url: '/healthz', headers: { host: 'attacker.example' } })).statusCode,
    200,
  );
  assert.equal(
    (await h.send({ method: 'GET', url: '/api/v1/hands', headers: { ...h.cli(), host: 'bad host!' } })).statusCode,
    421,
  );
});

test("the device's own names and addresses are answered", async () => {
  const own = [
    'localhost',
    'localhost:8080',
    '127.0.0.1:8080',
    '127.0.1.1',
    '[::1]:8080',
    'LOCALHOST.',
    'talon.localhost',
    `${hostname()}`,
    `${hostname()}.local:8080`,
  ];
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) own.push(a.family === 'IPv6' ? `[${a.address}]:80` : `${a.address}:80`);
  for (const host of own) {
    const r = await h.send({ method: 'GET', url: '/api/v1/hands', headers: { ...h.cli(), host } });
    assert.equal(r.statusCode, 200, `${host}: ${r.body}`);
  }
});

test("over a real socket: a rebinding page's Host is refused, the device's address is not", async () => {
  const { port } = h.kernel.http.address();
  const get = (host: string): Promise<number> =>
    new Promise((resolve, reject) => {
      request(
        { host: '127.0.0.1', port, path: '/api/v1/hands', headers: { host, authorization: `Bearer ${h.cliToken}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      )
        .on('error', reject)
        .end();
    });
  assert.equal(await get(`evil.example:${port}`), 421);
  assert.equal(await get(`127.0.0.1:${port}`), 200);
});

test('writes from another site are refused (403 ORIGIN_NOT_ALLOWED); without Origin (CLI, curl) they pass', async () => {
  const stop = (headers: Record<string, string>) =>
    h.send({
      method: 'POST',
      url: '/api/v1/bus/publish',
      headers: { ...h.cli(), ...headers },
      payload: { topic: 'test/origin', payload: 'x' },
    });
  const foreign: Array<Record<string, string>> = [
    { origin: 'http://attacker.example' },
    { origin: 'null' },
    { referer: 'https://attacker.example/page' },
    { origin: 'http://localhost.attacker.example' },
  ];
  for (const headers of foreign) {
    const r = await stop(headers);
    assert.equal(r.statusCode, 403, `${JSON.stringify(headers)}: ${r.body}`);
    assert.equal(code(r), 'ORIGIN_NOT_ALLOWED');
  }
  // public writes too: a foreign page cannot log in or run setup
  const login = await h.send({
    method: 'POST',
    url: '/api/v1/session',
    headers: { origin: 'http://attacker.example' },
    payload: { username: 'a', password: 'b' },
  });
  assert.equal(code(login), 'ORIGIN_NOT_ALLOWED');
  const own: Array<Record<string, string>> = [
    {},
    { origin: 'http://localhost:8080' },
    { origin: 'http://127.0.0.1:5173' },
    { referer: 'http://localhost/#/hands' },
  ];
  for (const headers of own) {
    const r = await stop(headers);
    assert.equal(r.statusCode, 200, `${JSON.stringify(headers)}: ${r.body}`);
  }
  // reads from anywhere are not writes (and the browser keeps their answer from the other site)
  assert.equal(
    (await h.send({ method: 'GET', url: '/api/v1/hands', headers: { ...h.cli(), origin: 'http://attacker.example' } }))
      .statusCode,
    200,
  );
});

test('http.allowedHosts adds names; `*` turns the check off', async () => {
  const named = await startHarness({ http: { host: '127.0.0.1', port: 0, allowedHosts: ['talon.example.lan'] } });
  try {
    const cli = named.cli();
    assert.equal(
      (await named.send({ method: 'GET', url: '/api/v1/hands', headers: { ...cli, host: 'talon.example.lan:443' } }))
        .statusCode,
      200,
    );
    assert.equal(
      (
        await named.send({
          method: 'POST',
          url: '/api/v1/bus/publish',
          headers: { ...cli, origin: 'https://talon.example.lan' },
          payload: { topic: 'test/x', payload: 'x' },
        })
      ).statusCode,
      200,
    );
    assert.equal(
      (await named.send({ method: 'GET', url: '/api/v1/hands', headers: { ...cli, host: 'other.example.lan' } }))
        .statusCode,
      421,
    );
    assert.equal(
      (await named.send({ method: 'GET', url: '/api/v1/hands', headers: { ...cli, host: 'localhost' } })).statusCode,
      200,
      'the own names stay',
    );
  } finally {
    await named.stop();
  }
  const any = await startHarness({ http: { host: '127.0.0.1', port: 0, allowedHosts: ['*'] } });
  try {
    assert.equal(
      (await any.send({ method: 'GET', url: '/api/v1/hands', headers: { ...any.cli(), host: 'anything.example' } }))
        .statusCode,
      200,
    );
  } finally {
    await any.stop();
  }
});

test('HostGuard: host parsing, the listen address, interface addresses read again when they change', () => {
  assert.equal(hostOf('Example.LAN.:8080'), 'example.lan');
  assert.equal(hostOf('[FE80::1%25eth0]:80'), 'fe80::1');
  assert.equal(hostOf('10.0.0.5'), '10.0.0.5');
  for (const bad of ['', 'a b', 'host:port', '[::1', 'x:99999999', 'a/b']) assert.equal(hostOf(bad), null, bad);

  let now = 0;
  let addrs = ['10.0.0.5'];
  const g = new HostGuard({
    listen: { host: '192.168.7.7' },
    hostname: () => 'edge-box',
    interfaceAddresses: () => addrs,
    clock: {
      now: () => now,
      setTimeout: () => 0,
      clearTimeout: () => {},
      setInterval: () => 0,
      clearInterval: () => {},
    },
  });
  for (const host of ['192.168.7.7', 'edge-box', 'edge-box.local', '10.0.0.5', 'localhost', '127.0.0.1', '::1'])
    assert.equal(g.allowed(host), true, host);
  assert.equal(g.allowed('10.0.0.6'), false);
  addrs = ['10.0.0.6'];
  assert.equal(g.allowed('10.0.0.6'), false, 'read again at most once a second');
  now += 1001;
  assert.equal(g.allowed('10.0.0.6'), true, 'a new DHCP address');
  const wild = new HostGuard({ listen: { host: '0.0.0.0' }, hostname: () => 'h', interfaceAddresses: () => [] });
  assert.equal(wild.allowed('0.0.0.0'), false, 'a wildcard listen address is no name');
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  assert.throws(() => g.check(req({ host: 'evil.example' }), 'GET', '/'), { code: 'HOST_NOT_ALLOWED' });
  assert.doesNotThrow(() => g.check(req({}), 'POST', '/api/v1/x'), 'HTTP/1.0 without Host, no Origin: not a browser');
});
