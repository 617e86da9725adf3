/**
 * Every route in the table, fuzzed with bad input derived from its schemas: malformed JSON,
 * wrong types, unknown fields, oversized bodies, the wrong media type, path traversal in
 * names, huge and wrongly typed query values. Each answer is a 4xx with an error code
 * (never a 500), and nothing is written: the config, auth and secrets sublevels and the
 * config generation are the same before and after.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import type { Response } from 'light-my-request';
import { startHarness, type Harness } from './harness.ts';
import type { Route, Schema } from '../../web-admin/route.ts';

let h: Harness;
const ajv = new Ajv({ strict: false });

before(async () => {
  h = await startHarness();
});

after(async () => {
  await h.stop();
});

async function snapshot(): Promise<string> {
  const out: Record<string, unknown[]> = {};
  for (const name of ['config', 'auth', 'secrets'] as const) {
    out[name] = [];
    for await (const kv of h.kernel.store.sublevel(name).iterator()) out[name].push(kv);
  }
  return JSON.stringify(out);
}

const CANDIDATES = [
  'idle',
  '00000001',
  'aaaaaaaaaaaa',
  'aaaaaaaaaaaaaaaa',
  'a'.repeat(32),
  'admin',
  'x',
  '1',
  'abc',
  'a.b',
  'A1',
  // a research report id (`<topic>-<13-digit start><4 random>`), a lead id, a CRM delivery key
  'topic-1796310479398abcd',
  'd:acme.example',
  'hubspot/d:acme.example',
  // a Web Automation run id (13-digit start, 4 random)
  '1796310479398abcd',
];

/** a value the param schema accepts, so the other parts of the request get tested */
function validParam(schema: Schema): string {
  const v = ajv.compile(schema);
  const hit = CANDIDATES.find((c) => v(c));
  assert.ok(hit, `no sample value matches ${JSON.stringify(schema)}: add one to CANDIDATES`);
  return hit;
}

function url(route: Route, override?: [string, string]): string {
  return route.path.replace(/\{(\w+)\}/g, (_m, k: string) => {
    if (override && override[0] === k) return override[1];
    const s = ((route.params?.properties ?? {}) as Record<string, Schema>)[k] ?? {};
    return encodeURIComponent(validParam(s));
  });
}

/** a value of the wrong JSON type for a schema */
function wrongType(schema: Schema): unknown {
  const t = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (t) {
    case 'string':
      return 12345;
    case 'integer':
    case 'number':
      return 'not a number';
    case 'boolean':
      return 'yes';
    case 'array':
      return { not: 'an array' };
    case 'object':
      return ['not', 'an', 'object'];
    default:
      return undefined;
  }
}

/** a query value of the wrong kind (query values are strings; only the shape can be wrong) */
function badQueryValues(schema: Schema): string[] {
  const t = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (t === 'integer' || t === 'number') return ['abc', '1e400', '-1', '99999999999999999999', '1.5x'];
  if (t === 'boolean') return ['maybe'];
  if (schema.enum) return ['not-in-the-enum'];
  if (typeof schema.maxLength === 'number') return ['x'.repeat(schema.maxLength + 1)];
  return [];
}

function expect4xx(r: Response, what: string, statuses?: number[]): void {
  assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${what}: got ${r.statusCode} ${r.body.slice(0, 300)}`);
  if (statuses)
    assert.ok(
      statuses.includes(r.statusCode),
      `${what}: got ${r.statusCode}, wanted ${statuses.join('/')}: ${r.body.slice(0, 300)}`,
    );
  const body = r.json() as { error?: { code?: unknown; message?: unknown } };
  assert.match(String(body.error?.code), /^[A-Z][A-Z0-9_]+$/, `${what}: an error code`);
  assert.equal(typeof body.error?.message, 'string', `${what}: a message`);
}

test('every route answers bad input with a coded 4xx, never a 500, and writes nothing', async () => {
  const before = await snapshot();
  const generation = (await h.kernel.generations.current())?.generation;
  let cases = 0;
  // the table the server serves: the kernel's routes and its Hands'
  const routes = h.kernel.http.router.routes;
  for (const route of routes) {
    const name = `${route.method} ${route.path}`;
    const headers = h.cli();
    const send = async (opts: { url?: string; payload?: string | Buffer; contentType?: string }): Promise<Response> => {
      cases++;
      return h.send({
        method: route.method,
        url: opts.url ?? url(route),
        headers: {
          ...headers,
          ...(opts.payload !== undefined ? { 'content-type': opts.contentType ?? 'application/json' } : {}),
        },
        ...(opts.payload !== undefined ? { payload: opts.payload } : {}),
      });
    };

    // path traversal and junk in every path parameter
    for (const key of Object.keys((route.params?.properties ?? {}) as object)) {
      for (const bad of ['..%2F..%2Fetc%2Fpasswd', '..', '%2e%2e', 'a%00b', '%ZZ', 'x'.repeat(300), 'UPPER%20CASE']) {
        expect4xx(await send({ url: url(route, [key, bad]) }), `${name} ${key}=${bad}`, [400, 404]);
      }
    }
    // query: unknown parameters, wrong types, huge ranges
    expect4xx(await send({ url: `${url(route)}?zz_unknown=1` }), `${name} unknown query`, [400]);
    for (const [key, s] of Object.entries((route.query?.properties ?? {}) as Record<string, Schema>)) {
      for (const bad of badQueryValues(s)) {
        expect4xx(
          await send({ url: `${url(route)}?${key}=${encodeURIComponent(bad)}` }),
          `${name} ?${key}=${bad.slice(0, 20)}`,
          [400],
        );
      }
    }
    if (route.rawBody) {
      // a webhook takes any body as text (its Hand checks the signature); only its size is the kernel's to refuse
      expect4xx(await send({ payload: 'x'.repeat(70 * 1024), contentType: 'text/plain' }), `${name} oversized`, [413]);
      continue;
    }
    if (!route.body) {
      expect4xx(await send({ payload: '{"a":1}' }), `${name} with a body it does not take`, [400]);
      continue;
    }
    // bodies: malformed JSON, wrong media type, oversized, not an object, unknown fields, wrong types
    for (const bad of ['{"a":', '{bad json}', '{"a":1,}', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]) {
      expect4xx(await send({ payload: bad }), `${name} malformed JSON`, [400]);
    }
    expect4xx(await send({ payload: '{}', contentType: 'text/plain' }), `${name} text/plain`, [415]);
    expect4xx(await send({ payload: JSON.stringify({ big: 'x'.repeat(70 * 1024) }) }), `${name} oversized`, [413]);
    for (const notObject of ['[]', '"string"', '42', 'null'])
      expect4xx(await send({ payload: notObject }), `${name} body ${notObject}`, [400]);
    expect4xx(await send({ payload: JSON.stringify({ zz_unknown_field: true }) }), `${name} unknown field`, [400]);
    for (const [key, s] of Object.entries((route.body.properties ?? {}) as Record<string, Schema>)) {
      const wrong = wrongType(s);
      if (wrong === undefined) continue;
      expect4xx(await send({ payload: JSON.stringify({ [key]: wrong }) }), `${name} ${key} of the wrong type`, [400]);
    }
  }
  assert.ok(cases > routes.length * 3, `${cases} cases`);
  assert.equal(await snapshot(), before, 'nothing was written');
  assert.equal((await h.kernel.generations.current())?.generation, generation);
});

test('bad input on the auth routes: no account made, no session handed out', async () => {
  for (const payload of [
    { code: 'AAAA', username: '../../etc/passwd', password: 'long enough password' },
    { code: 'AAAA', username: 'Admin', password: 'long enough password' },
    { code: 'AAAA', username: 'admin', password: 'short' },
    { code: h.kernel.http.setupCode, username: 'admin', password: 'x'.repeat(300) },
  ]) {
    const r = await h.send({ method: 'POST', url: '/api/v1/setup', payload });
    expect4xx(r, JSON.stringify(payload).slice(0, 60), [400, 401]);
    assert.equal(r.headers['set-cookie'], undefined);
  }
  assert.deepEqual((await h.send({ method: 'GET', url: '/api/v1/setup' })).json(), { needed: true });
});
