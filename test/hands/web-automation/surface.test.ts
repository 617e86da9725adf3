/**
 * The Web Automation Hand's surface (hands/web-automation/surface.ts): its routes mount in the `automation` area, the OpenAPI
 * document takes them, their schemas take the documented queries and bodies and refuse bad ones naming the field; a
 * check and a flow run through the API are audited before the request and wait long enough; the answers (real records
 * of a WebHand driven with faked browser tools) match the declared schemas; /metrics families come from `stats`;
 * `talon web …` parses, formats and refuses bad options, bad flow files and bad inputs as usage errors before any
 * request. Watches added at run time: PUT and DELETE /api/v1/web/watches/{id} through the routes to a real WebHand
 * (200 with created, 400 naming the field, 409 for a config watch, an API watch read back after a restart), and
 * `talon web watch add FILE|--id …`, `remove ID` and `list` with the source.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import surface, { CHECK_TIMEOUT_MS, RUN_TIMEOUT_MS } from '../../../hands/web-automation/surface.ts';
import { protocol } from '../../../hands/web-automation/protocol.ts';
import {
  flowsCommand,
  parseInputs,
  quickWatch,
  runCommand,
  runsCommand,
  watchCommand,
} from '../../../hands/web-automation/cli.ts';
import { WebHand, summaryOf, type RunRecord } from '../../../hands/web-automation/index.ts';
import { fakeCtx } from '../scheduling/fake-ctx.ts';
import { surfaceRoutes } from '../../../web-admin/routes/surfaces.ts';
import { Router } from '../../../web-admin/router.ts';
import { TAGS } from '../../../web-admin/auth/scopes.ts';
import { buildOpenApi } from '../../../web-admin/openapi.ts';
import { main } from '../../../runtime/cli/main.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandCommandArgs, HandDaemon, HandRouteContext } from '../../../hands/sdk/surface.ts';
import type { Io } from '../../../runtime/cli/args.ts';

// ---- examples: real records, from a WebHand with faked browser tools ----------------------------------------------

const SHOP = 'https://shop.example/product/42';
const FLOW = {
  name: 'login',
  inputs: { user: 'string', count: 'integer' },
  steps: [{ goto: 'https://shop.example/login' }, { click: 'text=Sign in' }],
};
const ANSWERS: Record<string, unknown> = {};
let CHECK_RUN: RunRecord;
let FLOW_RUN: RunRecord;

before(async () => {
  const f = fakeCtx({ name: 'web' });
  let text = 'Widget 10 EUR';
  f.tools['browser.read'] = (input) => ({ url: input.url, finalUrl: input.url, status: 200, found: true, text });
  f.tools['browser.run_flow'] = () => ({
    ok: false,
    output: { partial: true },
    steps: [
      { index: 0, path: 'steps[0]', kind: 'goto', ms: 30, ok: true, url: 'https://shop.example/login' },
      {
        index: 1,
        path: 'steps[1]',
        kind: 'click',
        ms: 15000,
        ok: false,
        error: 'no element',
        url: 'https://shop.example/login',
      },
    ],
    failure: {
      path: 'steps[1]',
      kind: 'click',
      message: 'no element matches text=Sign in',
      url: 'https://shop.example/login',
      screenshot: 'browser/login-1/failure.png',
    },
    screenshots: [{ name: 'failure', file: 'browser/login-1/failure.png' }],
    downloads: [{ name: 'invoice', file: 'browser/login-1/invoice.pdf', size: 1200 }],
    refused: [{ url: 'https://tracker.example/x.js', reason: 'host not granted' }],
  });
  const hand = new WebHand({
    ...f.ctx,
    settings: {
      scheduler: '',
      watches: [{ id: 'widget', url: SHOP, what: { text: '#offer' }, confirm: false, schedule: '0 * * * *' }],
      flows: { login: { ...FLOW, schedule: '0 6 * * *' } },
    },
  });
  await hand.start();
  try {
    await hand.check('widget');
    text = 'Widget 12 EUR';
    const changed = await hand.check('widget');
    CHECK_RUN = changed.run;
    FLOW_RUN = await hand.run({ flow: 'login', inputs: { user: 'ada', count: 2 } });
    ANSWERS.watches = hand.watchesView();
    ANSWERS.check = {
      watch: hand.watchView(hand.watches.get('widget')!),
      events: changed.events,
      run: summaryOf(changed.run),
    };
    ANSWERS.watch = await hand.watchDetail('widget');
    ANSWERS.flows = hand.flowsView();
    ANSWERS.run = { run: FLOW_RUN };
    ANSWERS.runs = { runs: [summaryOf(FLOW_RUN), summaryOf(CHECK_RUN)], next: CHECK_RUN.id };
    ANSWERS.runDetail = { run: FLOW_RUN };
    ANSWERS.putWatch = await hand.putWatch('hero', { url: SHOP, what: { visual: '#hero' } });
    ANSWERS.removeWatch = await hand.removeWatch('hero');
    ANSWERS.stats = hand.stats();
  } finally {
    await hand.stop();
    f.close();
  }
});

// ---- the routes -----------------------------------------------------------------------------------------------------

const routes = surfaceRoutes([surface]);
const router = new Router(routes);
const byOp = (op: string) => {
  const r = routes.find((x) => x.operationId === op);
  assert.ok(r, `route ${op}`);
  return r;
};
type OwnRoute = { operationId: string; handler(ctx: HandRouteContext): unknown };
const own = (op: string): OwnRoute => (surface.routes as unknown as OwnRoute[]).find((r) => r.operationId === op)!;

function refused(fn: () => unknown): TalonError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TalonError, String(err));
    assert.equal(err.code, 'BAD_REQUEST');
    return err;
  }
  assert.fail('expected BAD_REQUEST');
}

test('the routes: paths, methods, access, the automation area; the OpenAPI document takes them', () => {
  assert.ok((TAGS as readonly string[]).includes('automation'), 'the API knows the automation area');
  assert.deepEqual(
    surface.routes!.map((r) => [r.operationId, r.method, r.path, r.access, r.tag]),
    [
      ['listWebWatches', 'GET', '/api/v1/web/watches', 'read', 'automation'],
      ['getWebWatch', 'GET', '/api/v1/web/watches/{id}', 'read', 'automation'],
      ['putWebWatch', 'PUT', '/api/v1/web/watches/{id}', 'write', 'automation'],
      ['deleteWebWatch', 'DELETE', '/api/v1/web/watches/{id}', 'write', 'automation'],
      ['checkWebWatch', 'POST', '/api/v1/web/watches/{id}/check', 'write', 'automation'],
      ['listWebFlows', 'GET', '/api/v1/web/flows', 'read', 'automation'],
      ['runWebFlow', 'POST', '/api/v1/web/flows/run', 'write', 'automation'],
      ['listWebRuns', 'GET', '/api/v1/web/runs', 'read', 'automation'],
      ['getWebRun', 'GET', '/api/v1/web/runs/{id}', 'read', 'automation'],
    ],
  );
  const m = router.match('POST', '/api/v1/web/watches/widget/check');
  assert.equal(m.kind === 'route' ? `${m.route.operationId} ${m.params.id}` : m.kind, 'checkWebWatch widget');
  const r = router.match('GET', `/api/v1/web/runs/${FLOW_RUN.id}`);
  assert.equal(r.kind === 'route' ? `${r.route.operationId} ${r.params.id}` : r.kind, `getWebRun ${FLOW_RUN.id}`);
  const doc = buildOpenApi(routes, { version: 'test' }) as { paths: Record<string, Record<string, unknown>> };
  assert.ok(doc.paths['/api/v1/web/flows/run']?.post);
  assert.ok(doc.paths['/api/v1/web/watches/{id}']?.get);
  assert.ok(doc.paths['/api/v1/web/watches/{id}']?.put);
  assert.ok(doc.paths['/api/v1/web/watches/{id}']?.delete);
  assert.deepEqual([surface.id, surface.title, surface.page], ['web-automation', 'Web', { label: 'Web' }]);
});

test('queries, parameters and the run body: defaults filled in, bad input refused naming the field', () => {
  assert.deepEqual(router.validateQuery(byOp('listWebRuns'), new URLSearchParams('')), { limit: 50 });
  assert.deepEqual(
    router.validateQuery(byOp('listWebRuns'), new URLSearchParams(`kind=flow&limit=5&before=${FLOW_RUN.id}`)),
    { kind: 'flow', limit: 5, before: FLOW_RUN.id },
  );
  for (const [q, field] of [
    ['limit=0', /limit/],
    ['limit=501', /limit/],
    ['kind=page', /kind/],
    ['before=yesterday', /before/],
    ['sort=new', /sort/],
  ] as const)
    assert.match(refused(() => router.validateQuery(byOp('listWebRuns'), new URLSearchParams(q))).message, field);
  router.validateParams(byOp('checkWebWatch'), { id: 'shop-price_2' });
  assert.match(refused(() => router.validateParams(byOp('checkWebWatch'), { id: '../x' })).message, /\bid\b/);
  assert.match(refused(() => router.validateParams(byOp('getWebRun'), { id: 'widget' })).message, /\bid\b/);
  const body = (b: unknown) => router.validateBody(byOp('runWebFlow'), b);
  body({ flow: 'login', inputs: { user: 'ada' } });
  body({ definition: FLOW });
  assert.match(refused(() => body({ flow: 'Login!' })).message, /flow/);
  assert.match(refused(() => body({ definition: 'steps' })).message, /definition/);
  assert.match(refused(() => body({ flow: 'login', speed: 'fast' })).message, /speed/);
  const watch = (b: unknown) => router.validateBody(byOp('putWebWatch'), b);
  watch({ url: SHOP, what: { visual: { selector: '#hero', tolerance: 20 } }, schedule: '0 * * * *', ignore: ['x'] });
  assert.match(refused(() => watch({ url: SHOP, what: 'text' })).message, /what/);
  assert.match(refused(() => watch({ url: SHOP, what: {}, colour: 'red' })).message, /colour/);
  assert.match(refused(() => watch({ url: SHOP, what: {}, confirm: 'yes' })).message, /confirm/);
  router.validateParams(byOp('deleteWebWatch'), { id: 'hero' });
  assert.match(refused(() => router.validateParams(byOp('putWebWatch'), { id: 'Hero!' })).message, /\bid\b/);
});

function fakeRouteCtx(over: Partial<HandRouteContext> = {}) {
  const calls: Array<[string, unknown, unknown]> = [];
  const audits: unknown[] = [];
  const ctx = {
    caller: { actor: 'user:ada' },
    params: {},
    query: {},
    body: undefined,
    signal: new AbortController().signal,
    request: async (kind: string, body: unknown, opts?: unknown) => {
      calls.push([kind, body, opts]);
      return ANSWERS[kind];
    },
    audited: async (intent: unknown, act: () => unknown) => {
      audits.push(intent);
      return act();
    },
    follow: async () => () => undefined,
    events: () => {
      throw new Error('no streams here');
    },
    ...over,
  } as unknown as HandRouteContext;
  return { ctx, calls, audits };
}

test('handlers: a check and a run are audited before the request and wait for it; reads are not; answers fit', async () => {
  const cases: Array<[string, Partial<HandRouteContext>, [string, unknown, unknown], unknown]> = [
    ['listWebWatches', {}, ['watches', {}, undefined], undefined],
    ['getWebWatch', { params: { id: 'widget' } }, ['watch', { id: 'widget' }, undefined], undefined],
    [
      'checkWebWatch',
      { params: { id: 'widget' } },
      ['check', { id: 'widget' }, { timeoutMs: CHECK_TIMEOUT_MS }],
      { action: 'api.web.check', subject: 'widget' },
    ],
    ['listWebFlows', {}, ['flows', {}, undefined], undefined],
    [
      'runWebFlow',
      { body: { flow: 'login', inputs: { user: 'ada', count: 2 } } },
      ['run', { flow: 'login', inputs: { user: 'ada', count: 2 } }, { timeoutMs: RUN_TIMEOUT_MS }],
      { action: 'api.web.run', subject: 'login', detail: { inputs: ['user', 'count'] } },
    ],
    [
      'runWebFlow',
      { body: { definition: FLOW } },
      ['run', { definition: FLOW }, { timeoutMs: RUN_TIMEOUT_MS }],
      { action: 'api.web.run', subject: 'definition:login', detail: { inputs: [] } },
    ],
    [
      'listWebRuns',
      { query: { limit: 5, kind: 'check', before: FLOW_RUN.id } },
      ['runs', { limit: 5, kind: 'check', before: FLOW_RUN.id }, undefined],
      undefined,
    ],
    ['getWebRun', { params: { id: FLOW_RUN.id } }, ['runDetail', { id: FLOW_RUN.id }, undefined], undefined],
    [
      'putWebWatch',
      { params: { id: 'hero' }, body: { url: SHOP, what: { visual: '#hero' } } },
      ['putWatch', { id: 'hero', watch: { url: SHOP, what: { visual: '#hero' } } }, undefined],
      { action: 'api.web.watch.put', subject: 'hero' },
    ],
    [
      'deleteWebWatch',
      { params: { id: 'hero' } },
      ['removeWatch', { id: 'hero' }, undefined],
      { action: 'api.web.watch.remove', subject: 'hero' },
    ],
  ];
  for (const [op, over, call, audit] of cases) {
    const f = fakeRouteCtx(over);
    const out = await own(op).handler(f.ctx);
    assert.deepEqual(f.calls, [call], op);
    assert.deepEqual(f.audits, audit ? [audit] : [], op);
    assert.deepEqual(router.checkResponse(byOp(op), 200, out), [], op);
  }
  assert.ok(RUN_TIMEOUT_MS > 30 * 60_000, 'a run through the API waits as long as a flow may take');
  // the check is not vacuous: a run of an unknown kind, or without its id, does not fit
  assert.notDeepEqual(router.checkResponse(byOp('getWebRun'), 200, { run: { ...FLOW_RUN, kind: 'crawl' } }), []);
  const { id: _id, ...noId } = FLOW_RUN;
  assert.notDeepEqual(router.checkResponse(byOp('getWebRun'), 200, { run: noId }), []);
});

test("the protocol's schemas take the Hand's real records and refuse what it could not act on", () => {
  const ajv = createAjv('hand');
  const check = createAjv('check');
  for (const [kind, k] of Object.entries(protocol)) {
    const answer = check.compile(k.answer);
    assert.equal(answer(ANSWERS[kind]), true, `${kind}: ${JSON.stringify(answer.errors)}`);
  }
  assert.equal(FLOW_RUN.failure?.path, 'steps[1]');
  assert.deepEqual(
    (ANSWERS.check as { events: Array<{ type: string }> }).events.map((e) => e.type),
    ['changed'],
  );
  const v = (kind: keyof typeof protocol) => ajv.compile(protocol[kind].request);
  assert.equal(v('check')({ id: 'widget' }), true);
  assert.equal(v('check')({}), false);
  assert.equal(v('check')({ id: 'Widget!' }), false);
  const runs: Record<string, unknown> = {};
  assert.equal(v('runs')(runs), true);
  assert.equal(runs.limit, 50, 'the default limit is filled in');
  assert.equal(v('runs')({ kind: 'crawl' }), false);
  assert.equal(v('runDetail')({ id: FLOW_RUN.id }), true);
  assert.equal(v('runDetail')({ id: '../../etc' }), false);
  assert.equal(v('run')({ flow: 'login', inputs: { a: 1 } }), true);
  assert.equal(v('run')({ definition: [] }), false);
  assert.equal(v('stats')({ x: 1 }), false);
  assert.equal(v('putWatch')({ id: 'hero', watch: { url: SHOP, what: { text: null } } }), true);
  assert.equal(v('putWatch')({ id: 'hero' }), false);
  assert.equal(v('putWatch')({ id: '../x', watch: {} }), false);
  assert.equal(v('removeWatch')({ id: 'hero' }), true);
  assert.equal((ANSWERS.putWatch as { watch: { kind: string; source: string } }).watch.kind, 'visual');
  assert.equal((ANSWERS.putWatch as { watch: { kind: string; source: string } }).watch.source, 'api');
});

// ---- PUT and DELETE through the routes to a real Hand ----------------------------------------------------------------

/** a route context whose requests a real WebHand answers (as the kernel's hand-requests client would) */
function handRouteCtx(hand: WebHand, over: Partial<HandRouteContext>) {
  return fakeRouteCtx({
    request: (async (kind: string, body: { id: string; watch?: unknown }) => {
      if (kind === 'putWatch') return hand.putWatch(body.id, body.watch);
      if (kind === 'removeWatch') return hand.removeWatch(body.id);
      if (kind === 'watches') return hand.watchesView();
      throw new Error(`no ${kind} here`);
    }) as unknown as HandRouteContext['request'],
    ...over,
  }).ctx;
}

test('PUT /api/v1/web/watches/{id}: 200 created then replaced; 400 naming the field; 409 for a config watch; DELETE', async () => {
  const f = fakeCtx({ name: 'web' });
  const settings = { scheduler: '', watches: [{ id: 'widget', url: SHOP, what: { text: '#offer' } }] };
  const hand = new WebHand({ ...f.ctx, settings });
  await hand.start();
  const status = (op: string, over: Partial<HandRouteContext>) => callRoute(hand, op, over);
  try {
    const body = { url: SHOP, what: { visual: '#hero' }, schedule: '0 * * * *' };
    const [s1, a1] = await status('putWebWatch', { params: { id: 'hero' }, body });
    assert.equal(s1, 200);
    assert.equal((a1 as { created: boolean }).created, true);
    const [s2, a2] = await status('putWebWatch', { params: { id: 'hero' }, body: { ...body, id: 'hero' } });
    assert.deepEqual([s2, (a2 as { created: boolean }).created], [200, false]);
    const [s3, m3] = await status('putWebWatch', {
      params: { id: 'bad' },
      body: { url: SHOP, what: { visual: { tolerance: 900 } } },
    });
    assert.equal(s3, 400);
    assert.match(String(m3), /^watch\.what\.visual\.tolerance: must be a whole number from 0 to 254/);
    assert.equal(hand.watches.has('bad'), false);
    const [s4, m4] = await status('putWebWatch', { params: { id: 'widget' }, body: { url: SHOP, what: {} } });
    assert.equal(s4, 409);
    assert.match(String(m4), /watch "widget" is in the config/);
    const [s5, m5] = await status('deleteWebWatch', { params: { id: 'widget' } });
    assert.deepEqual([s5, /in the config/.test(String(m5))], [409, true]);
    const [s6] = await status('deleteWebWatch', { params: { id: 'nobody' } });
    assert.equal(s6, 404);
    assert.deepEqual(
      hand.watchesView().watches.map((w) => `${w.id}:${w.source}`),
      ['widget:config', 'hero:api'],
    );
  } finally {
    await hand.stop();
  }
  // a restart: the API watch is read back from the store; then DELETE removes it
  const again = new WebHand({ ...fakeCtx({ name: 'web' }).ctx, store: f.ctx.store, settings });
  await again.start();
  try {
    assert.deepEqual(
      again.watchesView().watches.map((w) => `${w.id}:${w.source}:${w.what}:${w.schedule}`),
      ['widget:config:text #offer:undefined', 'hero:api:visual #hero:0 * * * *'],
    );
    const [s7, a7] = await callRoute(again, 'deleteWebWatch', { params: { id: 'hero' } });
    assert.deepEqual([s7, a7], [200, { removed: 'hero' }]);
    assert.equal(await f.ctx.store.get('def/hero'), undefined);
  } finally {
    await again.stop();
    f.close();
  }
});

/** a route's handler run against a real Hand: [the success status, the answer (checked against its schema)], or
 * [the error's status, its message] */
async function callRoute(hand: WebHand, op: string, over: Partial<HandRouteContext>): Promise<[number, unknown]> {
  try {
    const out = await own(op).handler(handRouteCtx(hand, over));
    const ok = Number(Object.keys(byOp(op).responses)[0]);
    assert.deepEqual(router.checkResponse(byOp(op), ok, out), [], op);
    return [ok, out];
  } catch (err) {
    assert.ok(err instanceof TalonError, String(err));
    return [err.status, err.message];
  }
}

test('tools: automation.watches, automation.check, automation.flows, automation.runs (no tool runs a flow)', () => {
  assert.deepEqual(
    surface.tools!.map((t) => [t.name, t.kind, t.readOnly === true]),
    [
      ['automation.watches', 'watches', true],
      ['automation.check', 'check', false],
      ['automation.flows', 'flows', true],
      ['automation.runs', 'runs', true],
    ],
  );
});

// ---- metrics --------------------------------------------------------------------------------------------------------

test('metrics: the talon_web families from the stats answer', async () => {
  const f = fakeRouteCtx({
    request: (async () => ({
      stats: {
        watches: 3,
        flows: 2,
        checks: 40,
        checkFailures: 6,
        changes: 4,
        broken: 1,
        runs: { ok: 7, failed: 2, error: 1, custom: 5 },
      },
    })) as unknown as HandRouteContext['request'],
  });
  const families = await surface.metrics!.collect({ hand: 'web', request: f.ctx.request });
  const get = (n: string) => {
    const fam = families.find((x) => x.name === n);
    assert.ok(fam, n);
    return fam;
  };
  const samples = (n: string) =>
    get(n).samples.map((s) => [Object.values(s.labels ?? {}).join('/'), s.value] as [string, number]);
  assert.deepEqual(samples('talon_web_runs_total'), [
    ['ok', 7],
    ['failed', 2],
    ['error', 1],
    ['custom', 5],
  ]);
  assert.equal(get('talon_web_runs_total').type, 'counter');
  assert.deepEqual(samples('talon_web_checks_total'), [['', 40]]);
  assert.deepEqual(samples('talon_web_check_failures_total'), [['', 6]]);
  assert.deepEqual(samples('talon_web_changes_total'), [['', 4]]);
  assert.deepEqual(samples('talon_web_broken_watches'), [['', 1]]);
  assert.equal(get('talon_web_broken_watches').type, 'gauge');
  assert.deepEqual(samples('talon_web_watches'), [['', 3]]);
  for (const fam of families) assert.match(fam.name, /^talon_web_[a-z_]+$/);
});

// ---- the CLI --------------------------------------------------------------------------------------------------------

function io(env: Record<string, string | undefined> = {}, cwd = process.cwd()) {
  const out: string[] = [];
  const err: string[] = [];
  const o: Io = { out: (s) => void out.push(s), err: (s) => void err.push(s), env, cwd };
  return { io: o, out, err };
}

function daemonAnswers(): Record<string, unknown> {
  return {
    'GET /api/v1/web/watches': ANSWERS.watches,
    'GET /api/v1/web/watches/widget': ANSWERS.watch,
    'DELETE /api/v1/web/watches/hero': ANSWERS.removeWatch,
    'POST /api/v1/web/watches/widget/check': ANSWERS.check,
    'GET /api/v1/web/flows': ANSWERS.flows,
    'POST /api/v1/web/flows/run': ANSWERS.run,
    'GET /api/v1/web/runs': ANSWERS.runs,
    [`GET /api/v1/web/runs/${FLOW_RUN.id}`]: ANSWERS.runDetail,
  };
}

class Usage extends Error {}

function args(positionals: string[], values: HandCommandArgs['values'] = {}, cwd = process.cwd()) {
  const t = io({}, cwd);
  const calls: Array<[string, string, unknown]> = [];
  const answers = daemonAnswers();
  const daemon: HandDaemon = {
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      calls.push([method, path, body]);
      if (method === 'PUT' && path.startsWith('/api/v1/web/watches/')) {
        const w = body as { id: string; url: string };
        return { watch: { id: w.id, url: w.url, what: 'text #x', kind: 'text', source: 'api' }, created: true } as T;
      }
      const a = answers[`${method} ${path.split('?')[0]}`];
      if (a === undefined) throw new TalonError('NOT_FOUND', `no answer for ${method} ${path}`);
      return a as T;
    },
  };
  const a: HandCommandArgs = {
    positionals,
    values,
    io: t.io,
    daemon,
    usage: (m: string): never => {
      throw new Usage(m);
    },
  };
  return { a, out: t.out, calls };
}

const usageError = (re: RegExp) => (e: Error) => e instanceof Usage && re.test(e.message);

test('`talon web run FLOW.yaml`: the file read as YAML and checked, inputs typed; its steps and failure printed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-web-'));
  try {
    writeFileSync(
      join(dir, 'login.yaml'),
      'name: login\ninputs:\n  user: string\n  count: integer\nsteps:\n  - goto: https://shop.example/login\n  - click: text=Sign in\n',
    );
    const r = args(['login.yaml'], { input: 'user=Ada, Countess,count=2' }, dir);
    assert.equal(await runCommand(r.a), 1, 'a failed run exits 1');
    assert.deepEqual(r.calls, [
      ['POST', '/api/v1/web/flows/run', { definition: FLOW, inputs: { user: 'Ada, Countess', count: 2 } }],
    ]);
    const out = r.out.join('');
    assert.match(out, new RegExp(`^run ${FLOW_RUN.id}: flow login failed at steps\\[1\\]: no element matches`));
    assert.match(
      out,
      /STEP\s+KIND\s+MS\s+RESULT\nsteps\[0\]\s+goto\s+30\s+ok\nsteps\[1\]\s+click\s+15000\s+failed: no element/,
    );
    assert.match(out, /page: https:\/\/shop\.example\/login\n\s+screenshot: browser\/login-1\/failure\.png/);
    assert.match(out, /download invoice: browser\/login-1\/invoice\.pdf \(1200 bytes\)/);
    assert.match(out, /output: \{\n\s+"partial": true\n\}/);
    // a bad step is a usage error naming it, before any request
    writeFileSync(join(dir, 'bad.yml'), 'name: bad\nsteps:\n  - goto: https://x.example/\n  - clik: "#go"\n');
    const bad = args(['bad.yml'], {}, dir);
    await assert.rejects(runCommand(bad.a), usageError(/^bad\.yml: steps\[1\]: unknown step "clik"/));
    assert.deepEqual(bad.calls, []);
    const typed = args(['login.yaml'], { input: 'count=two' }, dir);
    await assert.rejects(runCommand(typed.a), usageError(/--input count: must be an integer, not "two"/));
    assert.deepEqual(typed.calls, []);
    const missing = args(['nothere.yaml'], {}, dir);
    await assert.rejects(runCommand(missing.a), usageError(/FLOW "nothere\.yaml" cannot be read \(ENOENT\)/));
    writeFileSync(join(dir, 'list.json'), '[1, 2]');
    await assert.rejects(runCommand(args(['list.json'], {}, dir).a), usageError(/must hold one flow/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`talon web run NAME`: a configured flow, inputs typed as GET /flows declares them', async () => {
  const r = args(['login'], { input: 'count=3,user=ada' });
  assert.equal(await runCommand(r.a), 1);
  assert.deepEqual(r.calls, [
    ['GET', '/api/v1/web/flows', undefined],
    ['POST', '/api/v1/web/flows/run', { flow: 'login', inputs: { count: 3, user: 'ada' } }],
  ]);
  const plain = args(['login']);
  await runCommand(plain.a);
  assert.deepEqual(plain.calls, [['POST', '/api/v1/web/flows/run', { flow: 'login' }]], 'no inputs: no flows lookup');
  await assert.rejects(runCommand(args(['Log In']).a), usageError(/FLOW must be a flow file/));
  const u = (m: string): never => {
    throw new Usage(m);
  };
  assert.deepEqual(parseInputs('a=1,b=true,c=x=y', { a: 'number', b: 'boolean' }, u), { a: 1, b: true, c: 'x=y' });
  assert.throws(() => parseInputs('novalue', {}, u), usageError(/--input "novalue": write NAME=VALUE/));
  assert.throws(() => parseInputs('a=1,a=2', {}, u), usageError(/"a" is given twice/));
  assert.throws(() => parseInputs('b=yes', { b: 'boolean' }, u), usageError(/must be true or false/));
});

test('`talon web watch list|check ID|show ID`: state, events with the diff, history; bad actions and ids refused', async () => {
  const l = args(['list']);
  assert.equal(await watchCommand(l.a), 0);
  const lines = l.out.join('').trimEnd().split('\n');
  assert.match(lines[0]!, /^WATCH\s+SOURCE\s+STATE\s+LAST CHECK\s+LAST CHANGE\s+WHAT\s+VALUE$/);
  assert.match(lines[1]!, /^widget\s+config\s+ok\s+\S+Z\s+\S+Z\s+text #offer\s+Widget 12 EUR$/);
  const c = args(['check', 'widget']);
  assert.equal(await watchCommand(c.a), 0);
  assert.deepEqual(c.calls, [['POST', '/api/v1/web/watches/widget/check', undefined]]);
  assert.match(c.out.join(''), /^widget: ok; checked\n {2}changed\n {4}@@ .*\n {4}-Widget 10 EUR\n {4}\+Widget 12 EUR/);
  const s = args(['show', 'widget']);
  assert.equal(await watchCommand(s.a), 0);
  const shown = s.out.join('');
  assert.match(
    shown,
    /^widget: https:\/\/shop\.example\/product\/42\n {2}what: text #offer\n {2}source: config\n {2}state: ok\n {2}schedule: 0 \* \* \* \* \(local timer\)/,
  );
  assert.match(shown, /last change \(\S+Z\):\n {4}@@ .*\n {4}-Widget 10 EUR\n {4}\+Widget 12 EUR/);
  assert.match(shown, /AT\s+RESULT\s+NOTE\n\S+Z\s+changed\s+Widget 12 EUR\n\S+Z\s+baseline\s+Widget 10 EUR\n$/);
  for (const [pos, re] of [
    [['dance'], /ACTION must be list, check ID, show ID, add FILE or remove ID/],
    [['check'], /`watch check` needs the watch ID/],
    [['show', '../etc'], /ID must be a watch id/],
    [['list', 'widget'], /takes no ID/],
  ] as const) {
    const u = args([...pos]);
    await assert.rejects(watchCommand(u.a), usageError(re));
    assert.deepEqual(u.calls, []);
  }
});

test('`talon web watch add FILE`: one watch or a list (YAML or JSON), checked before any request, each PUT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-web-'));
  try {
    writeFileSync(
      join(dir, 'watches.yaml'),
      `- id: lamp\n  url: ${SHOP}\n  what: { price: "#price" }\n  schedule: "*/30 * * * *"\n- id: hero\n  url: ${SHOP}\n  what: { visual: { selector: "#hero", tolerance: 24 } }\n  minChange: { percent: 5 }\n`,
    );
    const r = args(['add', 'watches.yaml'], {}, dir);
    assert.equal(await watchCommand(r.a), 0);
    assert.deepEqual(r.calls, [
      [
        'PUT',
        '/api/v1/web/watches/lamp',
        { id: 'lamp', url: SHOP, what: { price: '#price' }, schedule: '*/30 * * * *' },
      ],
      [
        'PUT',
        '/api/v1/web/watches/hero',
        { id: 'hero', url: SHOP, what: { visual: { selector: '#hero', tolerance: 24 } }, minChange: { percent: 5 } },
      ],
    ]);
    assert.match(r.out.join(''), /^added lamp: text #x of https:\/\/shop\.example\/product\/42\nadded hero: /);
    writeFileSync(join(dir, 'one.json'), JSON.stringify({ id: 'one', url: SHOP, what: { json: '$.price' } }));
    const one = args(['add', 'one.json'], {}, dir);
    assert.equal(await watchCommand(one.a), 0);
    assert.deepEqual(
      one.calls.map((c) => c[1]),
      ['/api/v1/web/watches/one'],
    );
    writeFileSync(join(dir, 'wrapped.yml'), `watches:\n  - { id: a, url: "${SHOP}", what: { text: null } }\n`);
    const wrapped = args(['add', 'wrapped.yml'], {}, dir);
    assert.equal(await watchCommand(wrapped.a), 0);
    assert.deepEqual(
      wrapped.calls.map((c) => c[1]),
      ['/api/v1/web/watches/a'],
    );
    // bad watches: a usage error naming the file, the entry and the field, before any request
    writeFileSync(
      join(dir, 'bad.yaml'),
      `- { id: ok, url: "${SHOP}", what: { text: null } }\n- { id: bad, url: "${SHOP}", what: { visual: { tolerance: 999 } } }\n`,
    );
    const bad = args(['add', 'bad.yaml'], {}, dir);
    await assert.rejects(watchCommand(bad.a), usageError(/^bad\.yaml: watches\[1\]\.what\.visual\.tolerance: must be/));
    assert.deepEqual(bad.calls, [], 'not even the good one is sent');
    writeFileSync(
      join(dir, 'twice.yaml'),
      `- { id: a, url: "${SHOP}", what: { text: null } }\n- { id: a, url: "${SHOP}", what: { text: "#b" } }\n`,
    );
    await assert.rejects(
      watchCommand(args(['add', 'twice.yaml'], {}, dir).a),
      usageError(/watches\[1\]\.id: "a" is used by an earlier/),
    );
    await assert.rejects(
      watchCommand(args(['add', 'none.yaml'], {}, dir).a),
      usageError(/FILE "none\.yaml" cannot be read \(ENOENT\)/),
    );
    writeFileSync(join(dir, 'num.yaml'), '42\n');
    await assert.rejects(watchCommand(args(['add', 'num.yaml'], {}, dir).a), usageError(/holds no watch/));
    await assert.rejects(
      watchCommand(args(['add', 'watches.yaml'], { id: 'x' }, dir).a),
      usageError(/takes FILE or the options \(--id\), not both/),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`talon web watch add --id … --url …`: the quick form for every kind; errors name the option; remove ID', async () => {
  const quick = (values: HandCommandArgs['values']) => quickWatch(args(['add'], values).a);
  const base = { id: 'lamp', url: SHOP };
  assert.deepEqual(quick({ ...base, text: '#price' }), { ...base, what: { text: '#price' } });
  assert.deepEqual(quick({ ...base, text: '-' }), { ...base, what: { text: null } });
  assert.deepEqual(quick({ ...base, price: '.cost', 'min-change': '0.5' }), {
    ...base,
    what: { price: '.cost' },
    minChange: { amount: 0.5 },
  });
  assert.deepEqual(quick({ ...base, 'json-path': '$.items[0].price', 'min-change': '10%' }), {
    ...base,
    what: { json: '$.items[0].price' },
    minChange: { percent: 10 },
  });
  assert.deepEqual(quick({ ...base, attribute: 'a.download@href', 'min-change': '3' }), {
    ...base,
    what: { attribute: { selector: 'a.download', name: 'href' } },
    minChange: { chars: 3 },
  });
  assert.deepEqual(
    quick({ ...base, visual: '#hero', 'min-change': '5', schedule: '0 * * * *', 'unchanged-days': '7', confirm: true }),
    {
      ...base,
      what: { visual: '#hero' },
      minChange: { percent: 5 },
      schedule: '0 * * * *',
      unchangedDays: 7,
      confirm: true,
    },
  );
  assert.deepEqual(quick({ ...base, visual: '-', 'no-confirm': true, ignore: '\\d+ visitors' }), {
    ...base,
    what: { visual: null },
    ignore: ['\\d+ visitors'],
    confirm: false,
  });
  assert.deepEqual(quick({ ...base, text: '#a', ignore: '\\d+ visitors\n\\d\\d:\\d\\d' }).ignore, [
    '\\d+ visitors',
    '\\d\\d:\\d\\d',
  ]);
  for (const [values, re] of [
    [{ url: SHOP, text: '#a' }, /needs FILE, or --id ID --url URL/],
    [{ ...base }, /takes exactly one of --text SEL/],
    [{ ...base, text: '#a', price: '#b' }, /\(given: --text, --price\)/],
    [{ ...base, attribute: 'a.download' }, /--attribute must be SELECTOR@NAME/],
    [{ ...base, text: '#a', 'min-change': 'lots' }, /--min-change must be a number/],
    [{ ...base, text: '#a', confirm: true, 'no-confirm': true }, /--confirm and --no-confirm: give one/],
    [{ ...base, text: '#a', 'unchanged-days': 'x' }, /--unchanged-days must be a number/],
    [{ ...base, id: 'Lamp!', text: '#a' }, /^--id: must be 1–64 lower-case/],
    [{ ...base, url: 'ftp://x', text: '#a' }, /^--url: must be an http\(s\) URL/],
    [{ ...base, schedule: 'hourly', text: '#a' }, /^--schedule: /],
    [{ ...base, ignore: '(', text: '#a' }, /^--ignore: "\(" is not a regular expression/],
    [{ ...base, visual: '-', 'unchanged-days': '0' }, /^--unchanged-days: must be a number of days > 0/],
    [{ ...base, 'json-path': 'items' }, /^--json-path: "items" must start with \$/],
    [{ ...base, visual: '#a', 'min-change': '150' }, /^--min-change: must be a share of the region/],
  ] as const)
    assert.throws(() => quick(values), usageError(re), String(re));
  const add = args(['add'], { ...base, visual: '#hero' });
  assert.equal(await watchCommand(add.a), 0);
  assert.deepEqual(add.calls, [['PUT', '/api/v1/web/watches/lamp', { ...base, what: { visual: '#hero' } }]]);
  const rm = args(['remove', 'hero']);
  assert.equal(await watchCommand(rm.a), 0);
  assert.deepEqual(rm.calls, [['DELETE', '/api/v1/web/watches/hero', undefined]]);
  assert.equal(rm.out.join(''), 'removed hero\n');
  for (const [pos, values, re] of [
    [['remove'], {}, /`watch remove` needs the watch ID/],
    [['remove', 'A B'], {}, /ID must be a watch id/],
    [['list'], { visual: '#x' }, /--visual is an option of `watch add`, not of `watch list`/],
  ] as const) {
    const u = args([...pos], values);
    await assert.rejects(watchCommand(u.a), usageError(re));
    assert.deepEqual(u.calls, []);
  }
});

test('`talon web flows` and `runs [ID]`: tables, one run with its steps, options checked', async () => {
  const f = args([]);
  assert.equal(await flowsCommand(f.a), 0);
  assert.match(
    f.out.join(''),
    /^FLOW\s+MODE\s+INPUTS\s+SCHEDULE\s+LAST RUN\s+RESULT\nlogin\s+2 step\(s\)\s+user:string count:integer\s+0 6 \* \* \* \(local\)\s+\S+Z\s+failed at steps\[1\]/,
  );
  const r = args([], { kind: 'flow', limit: '5' });
  assert.equal(await runsCommand(r.a), 0);
  assert.deepEqual(r.calls, [['GET', '/api/v1/web/runs?limit=5&kind=flow', undefined]]);
  const out = r.out.join('').trimEnd().split('\n');
  assert.match(out[0]!, /^AT\s+ID\s+KIND\s+NAME\s+RESULT$/);
  assert.match(out[1]!, new RegExp(`${FLOW_RUN.id}\\s+flow\\s+login\\s+failed at steps\\[1\\]`));
  assert.match(out[2]!, new RegExp(`${CHECK_RUN.id}\\s+check\\s+widget\\s+ok \\(changed\\) in`));
  assert.equal(out[3], `more: --before ${CHECK_RUN.id}`);
  const one = args([FLOW_RUN.id]);
  assert.equal(await runsCommand(one.a), 0);
  assert.match(one.out.join(''), /steps\[1\]\s+click\s+15000\s+failed/);
  for (const [pos, values, re] of [
    [[], { limit: '0' }, /--limit must be from 1 to 500, not 0/],
    [[], { kind: 'page' }, /--kind must be check or flow/],
    [[], { before: 'yesterday' }, /--before must be a run id/],
    [['widget'], {}, /ID must be a run id/],
  ] as const) {
    const u = args([...pos], values);
    await assert.rejects(runsCommand(u.a), usageError(re));
    assert.deepEqual(u.calls, []);
  }
});

test('`talon web --help` lists the commands; usage errors exit 2 before the daemon is reached', async () => {
  const t = io();
  assert.equal(await main(['web', '--help'], t.io, [surface]), 0);
  for (const c of ['run', 'flows', 'runs', 'watch']) assert.match(t.out.join(''), new RegExp(`\\b${c}\\b`));
  const h = io();
  assert.equal(await main(['web', 'run', '--help'], h.io, [surface]), 0);
  for (const o of ['--input', '--json', 'FLOW']) assert.match(h.out.join(''), new RegExp(o));
  const empty = mkdtempSync(join(tmpdir(), 'talon-web-'));
  try {
    const l = io();
    assert.equal(await main(['web', 'runs', '--limit', '0', '--data', empty], l.io, [surface]), 2);
    assert.match(l.err.join(''), /--limit must be from 1 to 500/);
    const miss = io();
    assert.equal(await main(['web', 'run'], miss.io, [surface]), 2, 'a missing FLOW is a usage error');
    const nr = io();
    assert.equal(await main(['web', 'watch', 'list', '--data', empty], nr.io, [surface]), 1);
    assert.match(nr.err.join(''), /NOT_RUNNING/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
