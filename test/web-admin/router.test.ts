/**
 * The router compiles request validators lazily and without checking the schemas against
 * ajv's meta-schema (`validateSchema: false`: that compile is ~15–25 ms on a process's
 * first request). So this is where every route schema is checked against the meta-schema,
 * with the same options the router compiles them with. A route without a query schema
 * takes no query parameters, checked without ajv, with the errors ajv gave before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { routes as kernelRoutes } from '../../web-admin/routes/index.ts';
import { surfaceRoutes } from '../../web-admin/routes/surfaces.ts';
import { BUILTIN_SURFACES } from '../../hands/catalog.ts';
import { QUERY_AJV_OPTIONS, REQUEST_AJV_OPTIONS, Router } from '../../web-admin/router.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Route } from '../../web-admin/route.ts';

/** the kernel's routes and the built-in Hands' (as the composition root mounts them) */
const routes = [...kernelRoutes, ...surfaceRoutes(BUILTIN_SURFACES)];

test("every route's params, query and body schema is a valid schema and compiles with the router's options", () => {
  const body = new Ajv({ ...REQUEST_AJV_OPTIONS, validateSchema: true });
  const query = new Ajv({ ...QUERY_AJV_OPTIONS, validateSchema: true });
  let n = 0;
  for (const r of routes) {
    for (const [part, schema, ajv] of [
      ['params', r.params, body],
      ['query', r.query, query],
      ['body', r.body, body],
    ] as const) {
      if (!schema) continue;
      assert.equal(ajv.validateSchema(schema), true, `${r.method} ${r.path} ${part}: ${ajv.errorsText(ajv.errors)}`);
      ajv.compile(schema);
      n++;
    }
  }
  assert.ok(n > 20, `${n} request schemas`);
});

function badRequest(fn: () => unknown): { message: string; details: unknown } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TalonError);
    assert.equal(err.code, 'BAD_REQUEST');
    return { message: err.message, details: err.details };
  }
  assert.fail('no error');
}

test('a route without a query schema refuses query parameters, one error per name, as additionalProperties: false did', () => {
  const router = new Router(routes);
  const healthz = routes.find((r) => r.operationId === 'healthz')!;
  assert.equal(healthz.query, undefined);
  assert.deepEqual(router.validateQuery(healthz, new URLSearchParams('')), {});
  const e = badRequest(() => router.validateQuery(healthz, new URLSearchParams('x=1&y=2&x=3')));
  assert.equal(e.message, 'query parameter x is not a known field');
  assert.deepEqual(e.details, {
    in: 'query',
    errors: [
      { path: '/x', message: 'is not a known field' },
      { path: '/y', message: 'is not a known field' },
    ],
  });

  // the same answer ajv gives for a schema with no properties
  const withSchema: Route = {
    ...healthz,
    operationId: 'healthz2',
    path: '/healthz2',
    query: { type: 'object', additionalProperties: false, properties: {} },
  };
  const r2 = new Router([withSchema]);
  assert.deepEqual(
    badRequest(() => r2.validateQuery(withSchema, new URLSearchParams('x=1&y=2&x=3'))),
    e,
  );
});

test('query values are coerced, params and bodies are checked, each validator compiled on first use', () => {
  const router = new Router(routes);
  const logs = routes.find((r) => r.method === 'GET' && r.path === '/api/v1/hands/{name}/logs')!;
  assert.ok(logs.query && logs.params);
  const q = router.validateQuery(logs, new URLSearchParams('lines=10'));
  assert.equal(q.lines, 10);
  assert.match(
    badRequest(() => router.validateQuery(logs, new URLSearchParams('lines=abc'))).message,
    /^query parameter lines /,
  );
  router.validateParams(logs, { name: 'idle' });
  assert.match(badRequest(() => router.validateParams(logs, { name: 'UPPER' })).message, /^path parameter name /);
  const withBody = routes.find((r) => r.body && r.method === 'POST')!;
  assert.match(badRequest(() => router.validateBody(withBody, 'not an object')).message, /^body field /);
  assert.throws(() => router.validateBody({ ...withBody }, {}), /not in this route table/);
});
