/**
 * The HTTP layer in process with light-my-request over a real kernel (LevelDB, aedes,
 * worker Hands): auth, routes, error shapes, health.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import inject from 'light-my-request';
import { Kernel } from '../../runtime/host/kernel.ts';
import { validateConfig } from '../../runtime/config/load.ts';
import { createLogger } from '../../runtime/log.ts';
import { fixture, workerEntry } from '../helpers/fixtures.ts';

let kernel: Kernel;
let token: string;

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-http-'));
  const config = validateConfig({
    dataDir,
    http: { host: '127.0.0.1', port: 0 },
    bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: 0 } } },
    hands: [{ name: 'idle', module: await fixture('idle') }],
  });
  kernel = await Kernel.start({ config, logger: createLogger('error', () => {}), workerEntry: await workerEntry() });
  token = readFileSync(join(dataDir, 'cli-token'), 'utf8').trim();
});

after(async () => {
  await kernel.stop();
});

const dispatch = (req: Parameters<typeof inject>[1]) => inject((rq, rs) => void kernel.http.handle(rq, rs), req);
const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });

test('GET /healthz needs no auth and reports every check', async () => {
  const r = await dispatch({ method: 'GET', url: '/healthz' });
  assert.equal(r.statusCode, 200);
  const body = r.json() as { status: string; deviceId: string; checks: Record<string, boolean> };
  assert.equal(body.status, 'ok');
  assert.equal(body.deviceId, kernel.deviceId);
  assert.deepEqual(body.checks, { store: true, bus: true, supervisor: true, audit: true });
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
});

test('API routes refuse a missing or wrong token with 401 and a coded error', async () => {
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic abc' }]) {
    const r = await dispatch({ method: 'GET', url: '/api/v1/hands', headers });
    assert.equal(r.statusCode, 401);
    assert.equal((r.json() as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  }
});

test('hands list, get, stop and start through the API; every change audited with the caller', async () => {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await dispatch({ method: 'GET', url: '/api/v1/hands/idle', headers: auth() });
    assert.equal(r.statusCode, 200);
    if ((r.json() as { state: string }).state === 'running') break;
    assert.ok(Date.now() < deadline, 'idle never ran');
    await new Promise((res) => setTimeout(res, 50));
  }
  const list = await dispatch({ method: 'GET', url: '/api/v1/hands', headers: auth() });
  assert.deepEqual(
    (list.json() as { hands: Array<{ name: string }> }).hands.map((h) => h.name),
    ['idle'],
  );
  const stop = await dispatch({ method: 'POST', url: '/api/v1/hands/idle/stop', headers: auth() });
  assert.equal(stop.statusCode, 200);
  assert.equal((stop.json() as { state: string }).state, 'stopped');
  const again = await dispatch({ method: 'POST', url: '/api/v1/hands/idle/stop', headers: auth() });
  assert.equal(again.statusCode, 409);
  assert.equal((again.json() as { error: { code: string } }).error.code, 'HAND_STATE');
  const start = await dispatch({ method: 'POST', url: '/api/v1/hands/idle/start', headers: auth() });
  assert.equal(start.statusCode, 200);
  await kernel.audit.flush();
  const entries = [];
  for await (const e of kernel.audit.entries()) entries.push(e);
  const api = entries.filter((e) => e.action.startsWith('api.hands.'));
  // each change is written first (allow: the intent), then its outcome
  assert.deepEqual(
    api.map((e) => [e.actor, e.action, e.subject, e.decision]),
    [
      ['cli', 'api.hands.stop', 'idle', 'allow'],
      ['cli', 'api.hands.stop', 'idle', 'ok'],
      ['cli', 'api.hands.stop', 'idle', 'allow'],
      ['cli', 'api.hands.stop', 'idle', 'error'],
      ['cli', 'api.hands.start', 'idle', 'allow'],
      ['cli', 'api.hands.start', 'idle', 'ok'],
    ],
  );
});

test('unknown routes, wrong methods, bad names and bad query values get coded 4xx errors', async () => {
  const cases: Array<[string, string, number, string]> = [
    ['GET', '/api/v1/nothing', 404, 'NOT_FOUND'],
    ['DELETE', '/api/v1/hands', 405, 'METHOD_NOT_ALLOWED'],
    ['GET', '/api/v1/hands/missing', 404, 'HAND_NOT_FOUND'],
    ['GET', '/api/v1/hands/..%2F..%2Fetc', 400, 'BAD_REQUEST'],
    ['GET', '/api/v1/hands/UPPER', 400, 'BAD_REQUEST'],
    ['GET', '/api/v1/hands/idle/logs?lines=abc', 400, 'BAD_REQUEST'],
    ['GET', '/api/v1/hands/idle/logs?lines=5000', 400, 'BAD_REQUEST'],
    ['POST', '/healthz', 405, 'METHOD_NOT_ALLOWED'],
    ['GET', '/api/v1/hands?x=1', 400, 'BAD_REQUEST'],
  ];
  for (const [method, url, status, code] of cases) {
    const r = await dispatch({ method: method as 'GET', url, headers: auth() });
    assert.equal(r.statusCode, status, `${method} ${url}: ${r.body}`);
    assert.equal((r.json() as { error: { code: string } }).error.code, code, `${method} ${url}`);
  }
});

test("logs returns the Hand's recent lines", async () => {
  const r = await dispatch({ method: 'GET', url: '/api/v1/hands/idle/logs?lines=10', headers: auth() });
  assert.equal(r.statusCode, 200);
  const { lines } = r.json() as { lines: Array<{ hand: string }> };
  assert.ok(Array.isArray(lines));
  assert.ok(lines.every((l) => l.hand === 'idle'));
});
