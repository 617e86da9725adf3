/**
 * Every GET route with a JSON answer, called on a running kernel: the body matches the
 * route's declared response schema (errors match the error schema). And an event stream
 * over a real socket.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { Ajv } from 'ajv';
import { startHarness, type Harness } from './harness.ts';
import { ERROR_SCHEMA } from '../../web-admin/openapi.ts';
import type { Schema } from '../../web-admin/route.ts';
import { waitFor } from '../helpers/wait.ts';

let h: Harness;
const ajv = new Ajv({ strict: false });
const isError = ajv.compile(ERROR_SCHEMA);

before(async () => {
  h = await startHarness();
  await waitFor(
    () => h.kernel.supervisor.list().some((x) => x.name === 'idle' && x.state === 'running'),
    'idle running',
  );
});

after(async () => {
  await h.stop();
});

const SAMPLES = ['idle', '00000001', 'aaaaaaaaaaaa', 'aaaaaaaaaaaaaaaa', 'a'.repeat(32), 'x', '1', 'a.b', 'A1'];
function sample(schema: Schema): string {
  const v = ajv.compile(schema);
  return SAMPLES.find((s) => v(s)) ?? 'x';
}

test('every JSON GET route answers with a body that matches its declared schema', async () => {
  let checked = 0;
  // the table the server serves: the kernel's routes and its Hands'
  for (const route of h.kernel.http.router.routes) {
    if (route.method !== 'GET') continue;
    const success = Object.entries(route.responses).find(([s]) => Number(s) < 300)!;
    if (success[1].contentType && success[1].contentType !== 'application/json') continue;
    const path = route.path.replace(/\{(\w+)\}/g, (_m, k: string) =>
      sample(((route.params?.properties ?? {}) as Record<string, Schema>)[k] ?? {}),
    );
    const r = await h.send({ method: 'GET', url: path, headers: h.cli() });
    const where = `GET ${path}`;
    assert.ok(r.statusCode < 500 || r.statusCode === 503, `${where}: ${r.statusCode} ${r.body.slice(0, 200)}`);
    if (String(r.headers['content-type']).startsWith('text/event-stream')) continue;
    const body = r.json() as unknown;
    if (r.statusCode >= 400) {
      assert.ok(isError(body), `${where}: the error shape`);
      // a missing object (sample names) or a part this config does not run (503) is fine; anything else is not
      assert.ok(
        route.params || r.statusCode === 503,
        `${where}: a route without parameters answered ${r.statusCode}: ${r.body.slice(0, 200)}`,
      );
      continue;
    }
    assert.deepEqual(
      h.kernel.http.router.checkResponse(route, r.statusCode, body),
      [],
      `${where}: ${r.body.slice(0, 300)}`,
    );
    checked++;
  }
  assert.ok(checked >= 8, `${checked} routes checked`);
});

test('checkResponse catches a body that does not match', () => {
  const hands = h.kernel.http.router.routes.find((r) => r.operationId === 'listHands')!;
  assert.notDeepEqual(h.kernel.http.router.checkResponse(hands, 200, { hands: [{ name: 1 }] }), []);
  assert.notDeepEqual(h.kernel.http.router.checkResponse(hands, 200, { hands: [], extra: true }), []);
});

test("a Hand's logs follow as server-sent events over a real socket, with the security headers", async () => {
  const { host, port } = h.kernel.http.address();
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    get({ host, port, path: '/api/v1/hands/idle/logs?follow=1&lines=5', headers: h.cli() }, resolve).on(
      'error',
      reject,
    );
  });
  try {
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(String(res.headers['content-security-policy']), /default-src 'self'.*frame-ancestors 'none'/);
    // a new line from the Hand arrives as an event
    const got = new Promise<string>((resolve) => {
      let buf = '';
      res.on('data', (c: Buffer) => {
        buf += c.toString();
        const m = /data: (.*)\n\n/.exec(buf);
        if (m) resolve(m[1]!);
      });
    });
    await h.send({ method: 'POST', url: '/api/v1/hands/idle/restart', headers: h.cli() });
    const line = JSON.parse(await got) as { hand: string; msg: string };
    assert.equal(line.hand, 'idle');
  } finally {
    res.destroy();
  }
});
