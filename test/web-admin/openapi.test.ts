/**
 * The OpenAPI document is generated from the route table: every route is in the spec and
 * every spec operation is a route; the document has the OpenAPI 3.1 shape.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from './harness.ts';

let h: Harness;
let doc: {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
  tags: Array<{ name: string }>;
};

before(async () => {
  h = await startHarness();
  const r = await h.send({ method: 'GET', url: '/api/v1/openapi.json' });
  assert.equal(r.statusCode, 200);
  doc = r.json() as typeof doc;
});

after(async () => {
  await h.stop();
});

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

test('every route is in the spec, and every spec operation is a route', () => {
  const fromSpec = Object.entries(doc.paths)
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
  // the table the server serves: the kernel's routes and its Hands' (web-admin/routes/surfaces.ts)
  const fromTable = h.kernel.http.router.routes.map((r) => `${r.method} ${r.path}`).sort();
  assert.deepEqual(fromSpec, fromTable);
  assert.ok(fromTable.length >= 30, `${fromTable.length} routes`);
  for (const need of [
    'GET /healthz',
    'GET /api/v1/openapi.json',
    'POST /api/v1/setup',
    'POST /api/v1/session',
    'GET /api/v1/users',
    'POST /api/v1/tokens',
    'PUT /api/v1/hands/{name}/settings',
  ]) {
    assert.ok(fromTable.includes(need), need);
  }
});

test('the document has the OpenAPI 3.1 shape', () => {
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(typeof doc.info.title, 'string');
  assert.equal(typeof doc.info.version, 'string');
  assert.ok(doc.components.schemas.Error);
  const tagNames = new Set(doc.tags.map((t) => t.name));
  const ids = new Set<string>();
  for (const [path, ops] of Object.entries(doc.paths)) {
    assert.match(path, /^\//);
    const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries(ops)) {
      const where = `${method} ${path}`;
      assert.ok(METHODS.includes(method), where);
      assert.equal(typeof op.operationId, 'string', where);
      assert.ok(!ids.has(op.operationId as string), `duplicate operationId ${String(op.operationId)}`);
      ids.add(op.operationId as string);
      assert.equal(typeof op.summary, 'string', where);
      for (const t of op.tags as string[]) assert.ok(tagNames.has(t), `${where}: tag ${t}`);
      const params = (op.parameters ?? []) as Array<{ name: string; in: string; required: boolean; schema: unknown }>;
      for (const p of params) {
        assert.ok(['path', 'query', 'header', 'cookie'].includes(p.in), where);
        assert.equal(typeof p.schema, 'object', `${where} ${p.name}`);
        if (p.in === 'path') assert.equal(p.required, true, `${where} ${p.name}`);
      }
      assert.deepEqual(
        params
          .filter((p) => p.in === 'path')
          .map((p) => p.name)
          .sort(),
        [...templated].sort(),
        `${where}: path parameters`,
      );
      const responses = op.responses as Record<
        string,
        { description: string; content?: Record<string, { schema?: unknown }> }
      >;
      assert.ok(
        Object.keys(responses).some((s) => /^2\d\d$/.test(s)),
        `${where}: a success response`,
      );
      for (const [status, resp] of Object.entries(responses)) {
        assert.match(status, /^[1-5]\d\d$/, where);
        assert.equal(typeof resp.description, 'string', `${where} ${status}`);
      }
      assert.ok(responses['400'] && responses['500'], `${where}: error responses`);
      const access = op['x-access'];
      if (access !== 'public') assert.ok(responses['401'] && responses['403'], `${where}: auth errors`);
      else assert.deepEqual(op.security, [], `${where}: public`);
      if (op.requestBody) {
        assert.ok(responses['413'] && responses['415'], `${where}: body errors`);
        const body = (op.requestBody as { content: Record<string, { schema: { additionalProperties?: unknown } }> })
          .content['application/json'];
        assert.equal(body?.schema.additionalProperties, false, `${where}: unknown body fields are refused`);
      }
      if (method === 'get') assert.equal(op.requestBody, undefined, `${where}: GET takes no body`);
    }
  }
});

test('the spec is served without auth and lists the security schemes', async () => {
  assert.ok(doc.components.securitySchemes.bearer);
  assert.ok(doc.components.securitySchemes.session);
  const again = await h.send({ method: 'GET', url: '/api/v1/openapi.json' });
  assert.equal(again.headers['cache-control'], 'no-store');
  assert.deepEqual(again.json(), doc);
});
