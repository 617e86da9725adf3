/**
 * A Hand's surface, served generically: the fixture Hand (test/fixtures/hands/surface-demo)
 * declares a route, a CLI command, a metric and a page through hands/sdk/surface.ts and nothing
 * in runtime/ or web-admin/ names it. Mounted on a kernel slice (the real supervisor, worker,
 * runtime API and HTTP layer, in process through light-my-request): its route answers through
 * the worker protocol's typed request, it is in the OpenAPI document, its series is in /metrics,
 * its command runs; a stopped Hand is HAND_NOT_RUNNING (503), a body its request schema refuses
 * is BAD_REQUEST with the field, a Hand that does not answer is HAND_TIMEOUT, and the Hand's own
 * errors reach the caller only as the codes a Hand may answer with.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import type { InjectOptions, Response } from 'light-my-request';
import { startHarness, waitState, type Harness } from '../../helpers/supervisor-harness.ts';
import { fixture } from '../../helpers/fixtures.ts';
import { HandRequests } from '../../../runtime/api/hand-requests.ts';
import type { HandStatus } from '../../../runtime/supervisor/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HttpServer } from '../../../web-admin/server.ts';
import type { RuntimeApi } from '../../../runtime/api/runtime-api.ts';
import { serveSurfaces, type Slice } from './slice.ts';
import { surfaceRoutes } from '../../../web-admin/routes/surfaces.ts';
import { main } from '../../../runtime/cli/main.ts';
import { routeOf, type AnySurface, type HandRouteContext, type RequestHandlers } from '../../../hands/sdk/surface.ts';
import type { DemoProtocol } from '../../fixtures/hands/surface-demo/protocol.ts';
import demo from '../../fixtures/hands/surface-demo/surface.ts';

const TIMEOUT_MS = 300;
let h: Harness;
let slice: Slice;
let http: HttpServer;
let api: RuntimeApi;

before(async () => {
  const module = await fixture('surface-demo/index');
  // a path module: the kernel finds the Hand by its manifest id, as for a Hand loaded from a folder
  h = await startHarness([
    { name: 'demo', fixture: module },
    { name: 'other', fixture: 'idle' },
  ]);
  await waitState(h.sup, 'demo', 'running');
  await waitState(h.sup, 'other', 'running');
  slice = await serveSurfaces(h, [demo], { requestTimeoutMs: TIMEOUT_MS });
  ({ http, api } = slice);
});

after(async () => {
  await slice?.close();
  await h?.close();
});

const send = (opts: InjectOptions): Promise<Response> => slice.send(opts);
const errorOf = (r: Response): { code: string; message: string; details?: { errors?: Array<{ path: string }> } } =>
  (r.json() as { error: { code: string; message: string } }).error;

test("the fixture Hand's route answers through its typed request, audited, with the declared schema", async () => {
  const r = await send({ method: 'POST', url: '/api/v1/hands/demo/greet', payload: { who: 'ada' } });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { greeting: 'hello ada', count: 1 });
  const route = http.router.routes.find((x) => x.operationId === 'demoGreet')!;
  assert.deepEqual(http.router.checkResponse(route, 200, r.json()), []);
  const count = await send({ method: 'GET', url: '/api/v1/hands/demo/greetings' });
  assert.equal(count.statusCode, 200, count.body);
  assert.deepEqual(count.json(), { count: 1 });
  const entries = (await h.auditEntries()).filter((e) => e.action === 'api.demo.greet');
  assert.deepEqual(
    entries.map((e) => [e.actor, e.subject, e.decision]),
    [
      ['cli', 'ada', 'allow'],
      ['cli', 'ada', 'ok'],
    ],
  );
});

test("the route is in the OpenAPI document, under its tag, with the Hand's errors", async () => {
  const r = await send({ method: 'GET', url: '/api/v1/openapi.json' });
  assert.equal(r.statusCode, 200);
  const doc = r.json() as {
    paths: Record<
      string,
      Record<string, { operationId: string; tags: string[]; 'x-hand'?: string; responses: Record<string, unknown> }>
    >;
  };
  const op = doc.paths['/api/v1/hands/{name}/greet']?.post;
  assert.ok(op, 'the route is documented');
  assert.equal(op.operationId, 'demoGreet');
  assert.deepEqual(op.tags, ['hands']);
  assert.equal(op['x-hand'], 'surface-demo');
  assert.ok(op.responses['503'] && op.responses['504'], 'HAND_NOT_RUNNING and HAND_TIMEOUT are documented');
  // every route served is documented, and only those
  const fromSpec = Object.entries(doc.paths)
    .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
    .sort();
  assert.deepEqual(fromSpec, http.router.routes.map((x) => `${x.method} ${x.path}`).sort());
});

test('its series is in /metrics, labelled with the device and the Hand', async () => {
  await send({ method: 'POST', url: '/api/v1/hands/demo/greet', payload: { who: 'bob' } });
  const r = await send({ method: 'GET', url: '/metrics' });
  assert.equal(r.statusCode, 200);
  assert.match(r.body, /^# TYPE talon_surface_demo_greetings_total counter$/m);
  assert.match(r.body, /^talon_surface_demo_greetings_total\{device="dev1",kind="hello",hand="demo"\} 2$/m);
  assert.match(r.body, /^talon_up\{device="dev1"\} 1$/m, "the kernel's own series are still there");
});

test('its CLI command runs as `talon surface-demo hello`, with help and usage errors from its declaration', async () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s), env: {}, cwd: tmpdir() },
    };
  };
  const ok = io();
  assert.equal(await main(['surface-demo', 'hello', '--name', 'ada'], ok.io, [demo]), 0);
  assert.equal(ok.out.join(''), 'hello ada\n');
  const help = io();
  assert.equal(await main(['surface-demo', 'hello', '--help'], help.io, [demo]), 0);
  assert.match(help.out.join(''), /^usage: talon surface-demo hello \[--name NAME\]\n\nPrint a greeting/);
  const top = io();
  assert.equal(await main(['--help'], top.io, [demo]), 0);
  assert.match(top.out.join(''), /\n {2}surface-demo +say hello from the fixture Hand/);
  const bad = io();
  assert.equal(await main(['surface-demo', 'hello'], bad.io, [demo]), 2);
  assert.match(bad.err.join(''), /--name NAME is required/);
  const none = io();
  assert.equal(await main(['surface-demo', 'hello'], none.io, []), 2, 'without the surface there is no such command');
  assert.match(none.err.join(''), /unknown command "surface-demo"/);
});

test("a body the request kind's schema refuses is BAD_REQUEST naming the field; the route's own schema first", async () => {
  const kind = await send({ method: 'POST', url: '/api/v1/hands/demo/greet', payload: { who: '' } });
  assert.equal(kind.statusCode, 400, kind.body);
  assert.equal(errorOf(kind).code, 'BAD_REQUEST');
  assert.match(errorOf(kind).message, /greet request .*\/name/);
  assert.deepEqual(
    errorOf(kind).details?.errors?.map((e) => e.path),
    ['/name'],
  );
  const route = await send({ method: 'POST', url: '/api/v1/hands/demo/greet', payload: { who: 7 } });
  assert.equal(route.statusCode, 400);
  assert.match(errorOf(route).message, /body field who/);
  const unknown = await send({ method: 'POST', url: '/api/v1/hands/demo/greet', payload: { who: 'x', extra: 1 } });
  assert.equal(unknown.statusCode, 400);
});

test('a Hand that does not answer in time is HAND_TIMEOUT; its own errors pass only as BAD_REQUEST, NOT_FOUND or CONFLICT', async () => {
  const t0 = Date.now();
  const r = await send({ method: 'GET', url: '/api/v1/hands/demo/stall' });
  assert.equal(errorOf(r).code, 'HAND_TIMEOUT', r.body);
  assert.equal(r.statusCode, 504);
  assert.ok(Date.now() - t0 >= TIMEOUT_MS - 20, 'after the injected timeout');
  assert.match(errorOf(r).message, /Hand "demo" did not answer the stall request within 300 ms/);
  for (const code of ['NOT_FOUND', 'CONFLICT', 'BAD_REQUEST']) {
    const e = await send({ method: 'GET', url: `/api/v1/hands/demo/fail?code=${code}` });
    assert.equal(errorOf(e).code, code);
    assert.equal(errorOf(e).message, `refused with ${code}`);
  }
  for (const code of ['CAPABILITY_DENIED', 'AUDIT_UNAVAILABLE', 'WHATEVER']) {
    const e = await send({ method: 'GET', url: `/api/v1/hands/demo/fail?code=${code}` });
    assert.equal(e.statusCode, 500, e.body);
    assert.equal(errorOf(e).code, 'INTERNAL');
    assert.match(errorOf(e).message, new RegExp(`Hand "demo" failed to answer: ${code}`));
  }
  // an answer over the cap never crosses: refused in the worker, INTERNAL to the caller
  await assert.rejects(
    api.handRequests.request('surface-demo', 'huge', {}, { timeoutMs: 5000 }),
    (e: TalonError) => e.code === 'INTERNAL' && /PAYLOAD_TOO_LARGE/.test(e.message),
  );
  // an answer that breaks its kind's answer schema never reaches the caller: INTERNAL naming the field
  await assert.rejects(
    api.handRequests.request('surface-demo', 'stray', {}),
    (e: TalonError) =>
      e.code === 'INTERNAL' &&
      /answered the stray request with a shape its surface does not declare: \/count/.test(e.message),
  );
  // a kind the Hand has no handler for (the supervisor knows no protocol): the worker refuses it
  await assert.rejects(
    h.sup.request('demo', 'nope', {}),
    (e: TalonError) => e.code === 'BAD_REQUEST' && /has no request "nope"; it answers greet, count/.test(e.message),
  );
  assert.equal(h.sup.status('demo').state, 'running', 'the Hand runs on');
});

test("another module's Hand on the route is NOT_FOUND; an unknown Hand is HAND_NOT_FOUND", async () => {
  const other = await send({ method: 'GET', url: '/api/v1/hands/other/greetings' });
  assert.equal(other.statusCode, 404, other.body);
  assert.equal(errorOf(other).code, 'NOT_FOUND');
  assert.match(errorOf(other).message, /Hand "other" is not a Surface demo Hand/);
  const unknown = await send({ method: 'GET', url: '/api/v1/hands/nobody/greetings' });
  assert.equal(unknown.statusCode, 404);
  assert.equal(errorOf(unknown).code, 'HAND_NOT_FOUND');
});

test('a stopped Hand answers its routes with HAND_NOT_RUNNING (503) naming it and its state; started again, it answers', async () => {
  await h.sup.stopHand('demo', { actor: 'test' });
  const r = await send({ method: 'GET', url: '/api/v1/hands/demo/greetings' });
  assert.equal(r.statusCode, 503, r.body);
  assert.equal(errorOf(r).code, 'HAND_NOT_RUNNING');
  assert.match(errorOf(r).message, /the Surface demo Hand "demo" is stopped; start it to see greetings/);
  // the module's running instance (a route outside /hands/{name}/ asks this way)
  await assert.rejects(
    api.handRequests.request('surface-demo', 'count', {}),
    (e: TalonError) => e.code === 'HAND_NOT_RUNNING' && /"demo" is stopped/.test(e.message),
  );
  const metrics = await send({ method: 'GET', url: '/metrics' });
  assert.equal(metrics.statusCode, 200);
  assert.doesNotMatch(metrics.body, /talon_surface_demo_greetings_total\{/, 'a stopped Hand reports no series');
  await h.sup.startHand('demo', { actor: 'test' });
  const again = await send({ method: 'GET', url: '/api/v1/hands/demo/greetings' });
  assert.equal(again.statusCode, 200, again.body);
});

test('no instance configured: HAND_NOT_RUNNING saying how to add one', async () => {
  const none = new HandRequests({ list: () => [], request: () => Promise.reject(new Error('not called')) }, [demo]);
  await assert.rejects(
    none.request('surface-demo', 'count', {}),
    (e: TalonError) =>
      e.code === 'HAND_NOT_RUNNING' &&
      e.status === 503 &&
      /no Surface demo Hand is configured \(add a Hand with module "surface-demo" to the config\); greetings come from it/.test(
        e.message,
      ),
  );
});

test("mounting refuses a route outside the API's areas, a tag that is no area, and a route two Hands declare", () => {
  const route = demo.routes![0]!;
  const withRoute = (r: Partial<typeof route>, id = 'x'): AnySurface => ({ ...demo, id, routes: [{ ...route, ...r }] });
  assert.throws(
    () => surfaceRoutes([withRoute({ tag: 'greetings' })]),
    /tag "greetings" is not one of the API's areas/,
  );
  assert.throws(
    () => surfaceRoutes([withRoute({ path: '/api/v1/hands/demo' })]),
    /own routes are under \/api\/v1\/hands\/\{name\}\//,
  );
  assert.throws(() => surfaceRoutes([withRoute({ path: '/healthz2' })]), /under \/api\/v1\//);
  assert.throws(() => surfaceRoutes([demo, withRoute({}, 'y')]), /is declared by Hand "surface-demo" too/);
  const [mounted] = surfaceRoutes([withRoute({ tag: 'alerts' })]);
  assert.equal(
    mounted!.tag,
    'alerts',
    'an existing area: its token scope (alerts:read / alerts:write) guards the route',
  );
  assert.deepEqual((mounted!.params as { required: string[] }).required, ['name'], '{name} gets the Hand name pattern');
});

test("the kernel holds a worker's answers to the cap and the shape, whatever the worker sends", async () => {
  const open = { type: 'object' } as const;
  const raw: AnySurface = {
    id: 'raw-reply',
    title: 'Raw',
    protocol: Object.fromEntries(
      ['huge', 'notjson', 'nostring', 'denied', 'fine'].map((k) => [k, { request: open, answer: open }]),
    ),
  };
  const r = await startHarness([{ name: 'raw', fixture: 'idle' }], { workerFixture: 'surface-demo/raw-reply' });
  try {
    await waitState(r.sup, 'raw', 'running');
    const requests = new HandRequests(r.sup, [raw]);
    assert.deepEqual(await requests.request('raw-reply', 'fine', {}), { ok: true });
    await assert.rejects(
      requests.request('raw-reply', 'huge', {}),
      (e: TalonError) => e.code === 'INTERNAL' && /over the \d+ a request's answer may take/.test(e.message),
    );
    await assert.rejects(
      requests.request('raw-reply', 'notjson', {}),
      (e: TalonError) => e.code === 'INTERNAL' && /not JSON/.test(e.message),
    );
    await assert.rejects(
      requests.request('raw-reply', 'nostring', {}),
      (e: TalonError) => e.code === 'INTERNAL' && /no JSON text/.test(e.message),
    );
    await assert.rejects(
      requests.request('raw-reply', 'denied', {}),
      (e: TalonError) =>
        e.code === 'INTERNAL' && /failed to answer: CAPABILITY_DENIED/.test(e.message) && e.message.length < 2500,
    );
    await assert.rejects(
      requests.request('raw-reply', 'nothing', {}),
      (e: TalonError) => e.code === 'BAD_REQUEST' && /takes no request "nothing"/.test(e.message),
    );
    assert.equal(r.sup.status('raw').state, 'running');
  } finally {
    await r.close();
  }
});

test('types: request bodies and answers are derived from the schemas (tsc checks the expected errors)', () => {
  const route = async (ctx: HandRouteContext<DemoProtocol>): Promise<number> => {
    // @ts-expect-error a greet body needs its name
    await ctx.request('greet', {});
    // @ts-expect-error no such kind
    await ctx.request('nope', {});
    const answer = await ctx.request('greet', { name: 'x' });
    // @ts-expect-error the greeting is text
    const wrong: number = answer.greeting;
    return answer.count + wrong;
  };
  const handlers: RequestHandlers<DemoProtocol>['greet'] = ({ name }) => ({ greeting: name, count: 1 });
  // @ts-expect-error an answer missing its count
  const bad: RequestHandlers<DemoProtocol>['count'] = () => ({});
  const typedRoute = routeOf<DemoProtocol>()({
    method: 'GET',
    path: '/api/v1/hands/{name}/typed',
    operationId: 'typed',
    summary: 'typed',
    access: 'read',
    query: { type: 'object', additionalProperties: false, required: ['n'], properties: { n: { type: 'integer' } } },
    responses: { 200: { description: 'typed' } },
    handler: ({ query }) => {
      const n: number = query.n;
      // @ts-expect-error the query's n is a number (from the route's own schema)
      const text: string = query.n;
      return { n, text };
    },
  });
  assert.equal(typedRoute.operationId, 'typed');
  assert.equal(typeof route, 'function');
  assert.equal(typeof handlers, 'function');
  assert.equal(typeof bad, 'function');
});

test('the running instance of the module itself is asked before a path-loaded Hand that only claims its id', async () => {
  const asked: string[] = [];
  const status = (name: string, module: string): HandStatus =>
    ({ name, module, id: 'surface-demo', state: 'running' }) as HandStatus;
  const requests = new HandRequests(
    {
      // the impostor is listed first
      list: () => [status('claims-it', './hands/not-the-demo.cjs'), status('real', 'surface-demo')],
      request: async (name) => {
        asked.push(name);
        return { count: 1 };
      },
    },
    [demo],
  );
  assert.deepEqual(await requests.request('surface-demo', 'count', {}), { count: 1 });
  assert.deepEqual(asked, ['real']);
  // with the module's own instance gone, the Hand loaded by path is the instance (as for any Hand from a folder)
  const only = new HandRequests(
    {
      list: () => [status('claims-it', './hands/not-the-demo.cjs')],
      request: async (name) => ({ count: name.length }),
    },
    [demo],
  );
  assert.deepEqual(await only.request('surface-demo', 'count', {}), { count: 'claims-it'.length });
});
