/**
 * The Scheduling Hand's surface (hands/scheduling/surface.ts): its routes mount in the `schedules` area and their
 * schemas refuse bad input naming the field; their handlers audit changes and send the right typed request; the
 * answers match the declared schemas; /metrics families come from `stats`; `talon schedule …` is the CLI alias, and
 * `add FILE` stores each job through the running daemon's API (a real HTTP server here), a refusal exiting 2 with the
 * job and the field named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import surface, { jobForPath } from '../../../hands/scheduling/surface.ts';
import { protocol } from '../../../hands/scheduling/protocol.ts';
import { parseJobsFile } from '../../../hands/scheduling/cli.ts';
import { surfaceRoutes } from '../../../web-admin/routes/surfaces.ts';
import { Router } from '../../../web-admin/router.ts';
import { TAGS } from '../../../web-admin/auth/scopes.ts';
import { main } from '../../../runtime/cli/main.ts';
import { createAjv, fieldErrors } from '../../../runtime/core/ajv.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandRouteContext } from '../../../hands/sdk/surface.ts';
import type { Io } from '../../../runtime/cli/args.ts';
import def, { SchedulingHand, handClock, handEngineStore } from '../../../hands/scheduling/index.ts';
import { fakeCtx } from './fake-ctx.ts';
import { memStore } from '../../helpers/mem-store.ts';

const routes = surfaceRoutes([surface]);
const router = new Router(routes);
const byOp = (op: string) => {
  const r = routes.find((x) => x.operationId === op);
  assert.ok(r, `route ${op}`);
  return r;
};
/** the surface's own routes, their handlers called with a fake context */
type OwnRoute = { operationId: string; handler(ctx: HandRouteContext): unknown };
const ownRoutes = surface.routes as unknown as OwnRoute[];
const own = (op: string): OwnRoute => ownRoutes.find((r) => r.operationId === op)!;

function refused(fn: () => unknown): TalonError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TalonError);
    assert.equal(err.code, 'BAD_REQUEST');
    return err;
  }
  assert.fail('expected BAD_REQUEST');
}

const VIEW = {
  id: 'nightly',
  spec: { id: 'nightly', trigger: { cron: '0 0 3 * * *' }, action: { publish: { topic: 'x' } } },
  source: 'api',
  state: {
    paused: false,
    runs: 3,
    failuresInARow: 0,
    lastOutcome: { runId: 'nightly@1', status: 'success', endedAt: 5 },
  },
  running: [],
  next: [1_000, 2_000],
};
const RUN = {
  runId: 'nightly@000000000001000',
  jobId: 'nightly',
  scheduledAt: 1000,
  cause: 'manual',
  attempt: 1,
  status: 'running',
  startedAt: 1001,
};

test('the routes mount in the schedules area: reads need read access, changes write', () => {
  assert.ok((TAGS as readonly string[]).includes('schedules'));
  const want: Array<[string, string, string, string]> = [
    ['listSchedules', 'GET', '/api/v1/schedules', 'read'],
    ['createSchedule', 'POST', '/api/v1/schedules', 'write'],
    ['getSchedule', 'GET', '/api/v1/schedules/{id}', 'read'],
    ['putSchedule', 'PUT', '/api/v1/schedules/{id}', 'write'],
    ['deleteSchedule', 'DELETE', '/api/v1/schedules/{id}', 'write'],
    ['runSchedule', 'POST', '/api/v1/schedules/{id}/run', 'write'],
    ['pauseSchedule', 'POST', '/api/v1/schedules/{id}/pause', 'write'],
    ['resumeSchedule', 'POST', '/api/v1/schedules/{id}/resume', 'write'],
    ['scheduleHistory', 'GET', '/api/v1/schedules/{id}/history', 'read'],
  ];
  for (const [op, method, path, access] of want) {
    const r = byOp(op);
    assert.deepEqual([r.method, r.path, r.access, r.tag], [method, path, access, 'schedules'], op);
  }
  assert.equal(routes.length, want.length);
  const m = router.match('POST', '/api/v1/schedules/nightly/pause');
  assert.equal(m.kind === 'route' ? `${m.route.operationId} ${m.params.id}` : m.kind, 'pauseSchedule nightly');
  assert.equal(router.match('PATCH', '/api/v1/schedules/nightly').kind, 'method');
});

test('bad input is refused naming the field: the id, the history query, the body', () => {
  const e1 = refused(() => router.validateParams(byOp('getSchedule'), { id: 'Not An Id!' }));
  assert.match(e1.message, /\bid\b/);
  const e2 = refused(() => router.validateQuery(byOp('scheduleHistory'), new URLSearchParams('limit=0')));
  assert.match(e2.message, /limit/);
  const e3 = refused(() => router.validateQuery(byOp('scheduleHistory'), new URLSearchParams('before=soon')));
  assert.match(e3.message, /before/);
  const q = router.validateQuery(byOp('scheduleHistory'), new URLSearchParams('before=5')) as Record<string, unknown>;
  assert.deepEqual(q, { limit: 50, before: 5 });
  const e4 = refused(() => router.validateBody(byOp('putSchedule'), ['not', 'a', 'job']));
  assert.match(e4.message, /body/);
  const e6 = refused(() => router.validateBody(byOp('createSchedule'), { id: 'a', trigger: {}, acton: {} }));
  assert.match(e6.message, /acton is not a known field/);
  const e7 = refused(() => router.validateBody(byOp('createSchedule'), { id: 'a', trigger: 'cron' }));
  assert.match(e7.message, /trigger/);
  // a route that takes no body refuses one
  assert.equal(byOp('pauseSchedule').body, undefined);
  // the body's id must be the path's
  const e5 = refused(() => jobForPath({ id: 'other', trigger: {}, action: {} }, 'nightly'));
  assert.match(e5.message, /^id: .*"other".*"nightly"/);
  assert.deepEqual(jobForPath({ trigger: { every: '5m' } }, 'nightly'), { trigger: { every: '5m' }, id: 'nightly' });
});

function fakeRouteCtx(over: Partial<HandRouteContext> = {}) {
  const calls: Array<[string, unknown]> = [];
  const audits: unknown[] = [];
  const answers: Record<string, unknown> = {
    list: { jobs: [VIEW] },
    get: { job: VIEW },
    put: { job: VIEW, created: true },
    remove: { removed: 'nightly' },
    run: { run: RUN },
    pause: { job: { ...VIEW, state: { ...VIEW.state, paused: true, pausedBy: 'api' } } },
    resume: { job: VIEW },
    history: { runs: [RUN] },
    stats: {
      stats: {
        jobs: 4,
        paused: 1,
        running: 2,
        runs: { success: 7, failure: 2, timeout: 0, cancelled: 0, interrupted: 1, skipped: 3, running: 0 },
        buffered: 0,
        lastLagMs: 12,
        clockSynced: false,
        clockJumps: 0,
      },
    },
  };
  const ctx = {
    caller: { actor: 'user:ada' },
    params: {},
    query: {},
    body: undefined,
    signal: new AbortController().signal,
    request: async (kind: string, body: unknown) => {
      calls.push([kind, body]);
      return answers[kind];
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

test('handlers: changes are audited before the request; reads are not; answers match the schemas', async () => {
  const cases: Array<[string, Partial<HandRouteContext>, [string, unknown], unknown]> = [
    ['listSchedules', {}, ['list', {}], undefined],
    ['getSchedule', { params: { id: 'nightly' } }, ['get', { id: 'nightly' }], undefined],
    [
      'putSchedule',
      { params: { id: 'nightly' }, body: { trigger: { every: '5m' }, action: { publish: { topic: 'x' } } } },
      ['put', { job: { trigger: { every: '5m' }, action: { publish: { topic: 'x' } }, id: 'nightly' } }],
      { action: 'api.schedules.put', subject: 'nightly' },
    ],
    [
      'createSchedule',
      { body: { id: 'nightly', trigger: { every: '5m' }, action: {} } },
      ['put', { job: { id: 'nightly', trigger: { every: '5m' }, action: {} } }],
      { action: 'api.schedules.put', subject: 'nightly' },
    ],
    [
      'deleteSchedule',
      { params: { id: 'nightly' } },
      ['remove', { id: 'nightly' }],
      { action: 'api.schedules.remove', subject: 'nightly' },
    ],
    [
      'runSchedule',
      { params: { id: 'nightly' } },
      ['run', { id: 'nightly' }],
      { action: 'api.schedules.run', subject: 'nightly' },
    ],
    [
      'pauseSchedule',
      { params: { id: 'nightly' } },
      ['pause', { id: 'nightly' }],
      { action: 'api.schedules.pause', subject: 'nightly' },
    ],
    [
      'resumeSchedule',
      { params: { id: 'nightly' } },
      ['resume', { id: 'nightly' }],
      { action: 'api.schedules.resume', subject: 'nightly' },
    ],
    [
      'scheduleHistory',
      { params: { id: 'nightly' }, query: { limit: 10, before: 99 } },
      ['history', { id: 'nightly', limit: 10, before: 99 }],
      undefined,
    ],
  ];
  for (const [op, over, call, audit] of cases) {
    const f = fakeRouteCtx(over);
    const out = await own(op).handler(f.ctx);
    assert.deepEqual(f.calls, [call], op);
    assert.deepEqual(f.audits, audit ? [audit] : [], op);
    assert.deepEqual(router.checkResponse(byOp(op), 200, out), [], op);
  }
  // POST without an id: refused before anything is audited
  const f = fakeRouteCtx({ body: { trigger: { every: '5m' } } });
  await assert.rejects(async () => own('createSchedule').handler(f.ctx), /^TalonError: id: /);
  assert.deepEqual([f.audits, f.calls], [[], []]);
  // a response that breaks its schema is caught by the check (the check is not vacuous)
  assert.notDeepEqual(router.checkResponse(byOp('getSchedule'), 200, { job: { ...VIEW, running: 'no' } }), []);
  assert.notDeepEqual(
    router.checkResponse(byOp('getSchedule'), 200, { job: { ...VIEW, spec: { id: 'x', trigger: { cron: 5 } } } }),
    [],
  );
});

test("the protocol's put takes any job object (the engine names its fields); ids are checked by pattern", () => {
  const ajv = createAjv('hand');
  const put = ajv.compile(protocol.put.request);
  assert.equal(put({ job: { id: 'x', trigger: { cron: 'bad' } } }), true);
  assert.equal(put({ job: 'x' }), false);
  assert.deepEqual(fieldErrors(put.errors)[0]?.path, '/job');
  const get = ajv.compile(protocol.get.request);
  assert.equal(get({ id: 'nightly.report-1' }), true);
  assert.equal(get({ id: '../etc' }), false);
});

test('metrics: the schedule families from the stats answer', async () => {
  const f = fakeRouteCtx();
  const families = await surface.metrics!.collect({ hand: 'scheduler', request: f.ctx.request });
  const get = (n: string) => families.find((x) => x.name === n);
  assert.deepEqual(
    families.map((x) => x.name),
    [
      'talon_schedule_jobs',
      'talon_schedule_paused',
      'talon_schedule_runs_total',
      'talon_schedule_running',
      'talon_schedule_clock_synced',
      'talon_schedule_lag_ms',
    ],
  );
  assert.equal(get('talon_schedule_jobs')!.samples[0]!.value, 4);
  assert.equal(get('talon_schedule_clock_synced')!.samples[0]!.value, 0);
  assert.equal(get('talon_schedule_runs_total')!.type, 'counter');
  const byStatus = Object.fromEntries(
    get('talon_schedule_runs_total')!.samples.map((s) => [s.labels!.status, s.value]),
  );
  assert.deepEqual(byStatus, { success: 7, failure: 2, timeout: 0, cancelled: 0, interrupted: 1, skipped: 3 });
  assert.equal(get('talon_schedule_lag_ms')!.samples[0]!.value, 12);
});

function io(env: Record<string, string | undefined> = {}, cwd = process.cwd()) {
  const out: string[] = [];
  const err: string[] = [];
  const o: Io = { out: (s) => void out.push(s), err: (s) => void err.push(s), env, cwd };
  return { io: o, out, err };
}

test('`talon schedule` is the alias of `talon scheduling`: the same commands and help', async () => {
  for (const name of ['schedule', 'scheduling']) {
    const t = io();
    assert.equal(await main([name, '--help'], t.io, [surface]), 0);
    const text = t.out.join('');
    assert.match(text, new RegExp(`talon ${name}`));
    for (const c of ['list', 'show', 'add', 'remove', 'run', 'pause', 'resume', 'history'])
      assert.match(text, new RegExp(`\\b${c}\\b`));
  }
  const h = io();
  assert.equal(await main(['schedule', 'history', '--help'], h.io, [surface]), 0);
  assert.match(h.out.join(''), /--data/);
  assert.match(h.out.join(''), /--limit/);
  const u = io();
  assert.equal(await main(['schedule', 'show'], u.io, [surface]), 2, 'a missing ID is a usage error');
  const nr = io();
  const empty = mkdtempSync(join(tmpdir(), 'talon-sched-'));
  try {
    assert.equal(await main(['schedule', 'list', '--data', empty], nr.io, [surface]), 1);
    assert.match(nr.err.join(''), /NOT_RUNNING/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('job files: one job, a list, or { jobs: [...] }, YAML or JSON', async () => {
  assert.deepEqual(await parseJobsFile('id: a\ntrigger: { every: 5m }\naction: {}\n', 'a.yaml'), [
    { id: 'a', trigger: { every: '5m' }, action: {} },
  ]);
  assert.equal((await parseJobsFile('- id: a\n- id: b\n', 'l.yml')).length, 2);
  assert.equal((await parseJobsFile('{"jobs":[{"id":"a"},{"id":"b"},{"id":"c"}]}', 'j.json')).length, 3);
  await assert.rejects(parseJobsFile('{"id": ', 'bad.json'), /bad\.json/);
  await assert.rejects(parseJobsFile('42', 'n.json'), /holds no job/);
});

test('`talon schedule add FILE` stores each job through the API; a refusal names the job and field, exit 2', async () => {
  const puts: Array<{ url: string; auth: string | undefined; body: unknown }> = [];
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const body = text ? JSON.parse(text) : undefined;
      puts.push({ url: `${req.method} ${req.url}`, auth: req.headers.authorization, body });
      res.setHeader('content-type', 'application/json');
      if (body?.trigger?.cron === 'nonsense') {
        res.statusCode = 400;
        res.end(
          JSON.stringify({
            error: { code: 'BAD_REQUEST', message: 'trigger.cron: "nonsense" is not a cron expression' },
          }),
        );
        return;
      }
      res.end(JSON.stringify({ job: { ...VIEW, id: body.id }, created: body.id === 'fresh' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'talon-sched-'));
  try {
    const port = (server.address() as AddressInfo).port;
    writeFileSync(join(dir, 'runtime.json'), JSON.stringify({ pid: process.pid, http: { host: '127.0.0.1', port } }));
    writeFileSync(join(dir, 'cli-token'), 'tok123\n');
    writeFileSync(
      join(dir, 'jobs.yaml'),
      [
        '- id: fresh',
        '  trigger: { every: 5m }',
        '  action: { publish: { topic: reports/x } }',
        '- id: known',
        '  trigger: { every: 1h }',
        '  action: { publish: { topic: reports/y } }',
        '- id: broken',
        '  trigger: { cron: nonsense }',
        '  action: { publish: { topic: reports/z } }',
        '- id: never-tried',
        '  trigger: { every: 1h }',
        '  action: { publish: { topic: reports/w } }',
      ].join('\n'),
    );
    const t = io({}, dir);
    const code = await main(['schedule', 'add', 'jobs.yaml', '--data', dir], t.io, [surface]);
    assert.equal(code, 2, t.err.join(''));
    assert.deepEqual(
      puts.map((p) => p.url),
      ['PUT /api/v1/schedules/fresh', 'PUT /api/v1/schedules/known', 'PUT /api/v1/schedules/broken'],
    );
    assert.equal(puts[0]!.auth, 'Bearer tok123');
    assert.deepEqual(puts[0]!.body, {
      id: 'fresh',
      trigger: { every: '5m' },
      action: { publish: { topic: 'reports/x' } },
    });
    assert.equal(t.out.join(''), 'created fresh\nupdated known\n');
    assert.match(
      t.err.join(''),
      /jobs\.yaml: jobs\[2\] \(broken\): trigger\.cron: "nonsense" is not a cron expression \(BAD_REQUEST\)/,
    );
    // a job without an id is refused locally, naming the field
    writeFileSync(join(dir, 'noid.json'), JSON.stringify({ trigger: { every: '5m' }, action: {} }));
    const t2 = io({}, dir);
    assert.equal(await main(['schedule', 'add', 'noid.json', '--data', dir], t2.io, [surface]), 2);
    assert.match(t2.err.join(''), /noid\.json: id: a job needs an id/);
    assert.equal(puts.length, 3);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- the Hand behind the surface: its requests, its task inbox and its events, on the real engine -----------------

/** waits (bounded) until `cond` holds: not a timing assertion, the bus delivers on later ticks */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), what);
}

const OPEN_BUS = { bus: { publish: ['talon/dev1/#'], subscribe: ['talon/dev1/#'] } };

test('the Hand: a config event job runs on a matching message; runs and job changes are published; requests answer', async () => {
  const f = fakeCtx({ grants: OPEN_BUS });
  (f.ctx as { settings: unknown }).settings = {
    jobs: [
      {
        id: 'on-alert',
        trigger: {
          event: {
            topic: 'alerts/+',
            where: [{ path: 'severity', op: 'gte', value: 'warning', order: ['info', 'warning', 'critical'] }],
          },
        },
        action: {
          publish: { topic: 'reports/alert', payload: { sensor: '{{event.sensor}}', run: '{{runId}}' }, qos: 0 },
        },
      },
    ],
  };
  await def.start(f.ctx);
  try {
    const req = def.requests as Record<string, (b: unknown, ctx: unknown) => Promise<unknown> | unknown>;
    const { jobs } = (await req.list!({}, f.ctx)) as { jobs: Array<{ id: string; source: string }> };
    assert.deepEqual(
      jobs.map((j) => [j.id, j.source]),
      [['on-alert', 'config']],
    );
    f.deliver('alerts/info', { severity: 'info', sensor: 'a' });
    f.deliver('alerts/critical', { severity: 'critical', sensor: 'cpu.temp' });
    await until(() => f.published.some((p) => p.topic === 'reports/alert'), 'the event job published');
    const reports = f.published.filter((p) => p.topic === 'reports/alert');
    assert.equal(reports.length, 1, 'the info alert did not match the condition');
    assert.equal((reports[0]!.payload as { sensor: string }).sensor, 'cpu.temp');
    await until(
      () =>
        f.published.some(
          (p) => p.topic === 'hands/scheduler/runs' && (p.payload as { status: string }).status === 'success',
        ),
      'the run record was published',
    );
    assert.equal(f.published.find((p) => p.topic === 'hands/scheduler/runs')!.opts?.qos, 0);
    const { runs } = (await req.history!({ id: 'on-alert' }, f.ctx)) as {
      runs: Array<{ status: string; cause: string }>;
    };
    assert.deepEqual(
      runs.map((r) => [r.cause, r.status]),
      [['event', 'success']],
    );
    // a config job is changed in the config, not through the API
    await assert.rejects(
      Promise.resolve(
        req.put!({ job: { id: 'on-alert', trigger: { every: '1h' }, action: { publish: { topic: 'x' } } } }, f.ctx),
      ),
      (e: TalonError) => e.code === 'CONFLICT',
    );
    const stats = (await req.stats!({}, f.ctx)) as { stats: { jobs: number; clockSource: string } };
    assert.equal(stats.stats.jobs, 1);
    assert.equal(stats.stats.clockSource, 'build-time');
  } finally {
    await def.stop!();
    f.close();
  }
});

test("the Hand's task inbox: another Hand puts, lists, runs and removes a job over the bus; a bad job names its field", async () => {
  const f = fakeCtx({ grants: OPEN_BUS });
  const hand = new SchedulingHand(f.ctx);
  await hand.start();
  try {
    const replies: Array<{ id: string; ok: boolean; result?: unknown; error?: { code: string; message: string } }> = [];
    await f.ctx.bus.subscribe('hands/research/replies', (m) => void replies.push(m.json as (typeof replies)[number]));
    const ask = async (id: string, task: unknown) => {
      f.deliver('hands/scheduler/tasks', { id, replyTo: 'hands/research/replies', task });
      await until(() => replies.some((r) => r.id === id), `an answer to ${id}`);
      return replies.find((r) => r.id === id)!;
    };
    const job = {
      id: 'follow-up',
      trigger: { at: '2099-01-01T00:00:00Z' },
      action: { publish: { topic: 'research/again', payload: { q: 'more' } } },
    };
    const put = await ask('t1', { op: 'put', job });
    assert.equal(put.ok, true, JSON.stringify(put.error));
    assert.equal((put.result as { created: boolean }).created, true);
    assert.equal(((await ask('t2', { op: 'put', job })).result as { created: boolean }).created, false, 'an update');
    const bad = await ask('t3', { op: 'put', job: { ...job, id: 'bad', trigger: { cron: 'not a cron' } } });
    assert.equal(bad.ok, false);
    assert.equal(bad.error!.code, 'BAD_REQUEST');
    assert.match(bad.error!.message, /trigger\.cron/);
    assert.equal(
      hand.engine.list().some((j) => j.id === 'bad'),
      false,
      'nothing half-created',
    );
    const list = await ask('t4', { op: 'list' });
    assert.deepEqual(
      (list.result as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id),
      ['follow-up'],
    );
    const ran = await ask('t5', { op: 'run', id: 'follow-up' });
    assert.equal(ran.ok, true, JSON.stringify(ran.error));
    await until(() => f.published.some((p) => p.topic === 'research/again'), 'the manual run published');
    const unknown = await ask('t6', { op: 'explode' });
    assert.match(unknown.error!.message, /^task\.op: /);
    assert.equal((await ask('t7', { op: 'remove', id: 'follow-up' })).ok, true);
    assert.deepEqual(hand.engine.list(), []);
    assert.ok(
      f.published.some(
        (p) => p.topic === 'hands/scheduler/jobs' && (p.payload as { change: string }).change === 'removed',
      ),
      'job changes are published',
    );
  } finally {
    await hand.stop();
    f.close();
  }
});

test('without the grant for its events topic the Hand does not publish them, and says so once', async () => {
  const f = fakeCtx({ grants: { bus: { publish: ['talon/dev1/reports/#'], subscribe: ['talon/dev1/#'] } } });
  const hand = new SchedulingHand(f.ctx);
  await hand.start();
  try {
    await hand.put({ id: 'j', trigger: { at: '2099-01-01T00:00:00Z' }, action: { publish: { topic: 'reports/x' } } });
    await hand.engine.runNow('j');
    await until(() => f.published.some((p) => p.topic === 'reports/x'), 'the action ran');
    assert.equal(f.published.filter((p) => p.topic.startsWith('hands/')).length, 0);
    assert.equal(f.logs.filter(([l, m]) => l === 'warn' && /hands\/scheduler\/(runs|jobs)/.test(m)).length, 2);
  } finally {
    await hand.stop();
    f.close();
  }
});

test('the engine store over the Hand store: listings past 1000 rows come back whole and in order; big batches land', async () => {
  const s = memStore();
  const es = handEngineStore(s);
  const ops = Array.from({ length: 2500 }, (_, i) => ({
    type: 'put' as const,
    key: `job/j${String(i).padStart(5, '0')}`,
    value: i,
  }));
  ops.push({ type: 'put', key: 'state/x', value: -1 });
  await es.batch(ops, { sync: true });
  assert.equal(s.map.size, 2501);
  const all = await es.list<number>({ prefix: 'job/', limit: 100_000 });
  assert.equal(all.length, 2500);
  assert.deepEqual(
    all.map(([, v]) => v),
    Array.from({ length: 2500 }, (_, i) => i),
  );
  const newest = await es.list<number>({ prefix: 'job/', limit: 3, reverse: true });
  assert.deepEqual(
    newest.map(([, v]) => v),
    [2499, 2498, 2497],
  );
});

test("the engine's timer runs on the Hand's timers; a wait past setTimeout's limit is chained, and cancelled", () => {
  const armed: Array<{ ms: number; fn: () => void; cancelled: boolean }> = [];
  const clock = handClock({
    timers: {
      every: () => () => undefined,
      after: (ms, fn) => {
        const t = { ms, fn: fn as () => void, cancelled: false };
        armed.push(t);
        return () => void (t.cancelled = true);
      },
    },
  });
  let fired = 0;
  const max = 2 ** 31 - 1;
  const h = clock.setTimer(() => void fired++, max + 1000);
  assert.deepEqual(
    armed.map((t) => t.ms),
    [max],
  );
  armed[0]!.fn();
  assert.equal(fired, 0, 'not yet: the rest is armed');
  assert.deepEqual(
    armed.map((t) => t.ms),
    [max, 1000],
  );
  armed[1]!.fn();
  assert.equal(fired, 1);
  const h2 = clock.setTimer(() => void fired++, 50);
  clock.clearTimer(h2);
  assert.equal(armed[2]!.cancelled, true);
  clock.clearTimer(h);
});

test('on a kernel slice (real worker, store, bus, audit, HTTP): the routes store, refuse, run and page a job', async () => {
  const { build } = await import('esbuild');
  const { common } = await import('../../../image/bundle.ts');
  const { fixturesDir } = await import('../../helpers/fixtures.ts');
  const { startHarness, waitState, waitFor } = await import('../../helpers/supervisor-harness.ts');
  const { serveSurfaces } = await import('../../runtime/surface/slice.ts');
  const outfile = join(fixturesDir(), 'scheduling-hand.cjs');
  await build({ ...common, entryPoints: [join(import.meta.dirname, '../../../hands/scheduling/index.ts')], outfile });
  const h = await startHarness([
    {
      name: 'sched',
      fixture: outfile,
      capabilities: {
        bus: {
          publish: ['hands/+/tasks', 'hands/+/replies', 'hands/sched/#', 'reports/#'],
          subscribe: ['hands/sched/#', 'alerts/#'],
        },
        tools: [],
      },
    },
  ]);
  const slice = await serveSurfaces(h, [surface]);
  try {
    await waitState(h.sup, 'sched', 'running');
    const reports = await h.collect('talon/+/reports/#');
    const job = {
      trigger: { at: '2099-01-01T00:00:00Z' },
      action: { publish: { topic: 'reports/daily', payload: { run: '{{runId}}' } } },
    };
    const put = await slice.send({ method: 'PUT', url: '/api/v1/schedules/daily', payload: job });
    assert.equal(put.statusCode, 200, put.body);
    assert.equal((put.json() as { created: boolean }).created, true);
    // bad input: a field-named 400, nothing stored
    const bad = await slice.send({
      method: 'PUT',
      url: '/api/v1/schedules/broken',
      payload: { ...job, trigger: { cron: 'every tuesday' } },
    });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.match((bad.json() as { error: { message: string } }).error.message, /trigger\.cron/);
    const outside = await slice.send({
      method: 'PUT',
      url: '/api/v1/schedules/outside',
      payload: { ...job, action: { publish: { topic: 'config/evil' } } },
    });
    assert.equal(outside.statusCode, 400, outside.body);
    assert.match((outside.json() as { error: { message: string } }).error.message, /action\.publish\.topic/);
    const list = await slice.send({ method: 'GET', url: '/api/v1/schedules' });
    assert.deepEqual(
      (list.json() as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id),
      ['daily'],
    );
    assert.deepEqual(slice.http.router.checkResponse(byOp('listSchedules'), 200, list.json()), []);
    const run = await slice.send({ method: 'POST', url: '/api/v1/schedules/daily/run' });
    assert.equal(run.statusCode, 200, run.body);
    await waitFor('the run published', () => reports.length > 0);
    const runId = (run.json() as { run: { runId: string } }).run.runId;
    assert.deepEqual(JSON.parse(reports[0]!.payload.toString()), { run: runId });
    let runs: Array<{ runId: string; status: string }> = [];
    for (let i = 0; i < 200; i++) {
      const r = await slice.send({ method: 'GET', url: '/api/v1/schedules/daily/history?limit=5' });
      runs = (r.json() as { runs: typeof runs }).runs;
      if (runs[0]?.status === 'success') break;
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.deepEqual(
      runs.map((r) => [r.runId, r.status]),
      [[runId, 'success']],
    );
    const audits = (await h.auditEntries()).filter((e) => e.action.startsWith('api.schedules.'));
    assert.deepEqual(
      audits.filter((e) => e.decision === 'allow').map((e) => [e.action, e.subject]),
      [
        ['api.schedules.put', 'daily'],
        ['api.schedules.put', 'broken'],
        ['api.schedules.put', 'outside'],
        ['api.schedules.run', 'daily'],
      ],
    );
    const metrics = await slice.send({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /talon_schedule_jobs\{[^}]*hand="sched"[^}]*\} 1/);
    const del = await slice.send({ method: 'DELETE', url: '/api/v1/schedules/daily' });
    assert.equal(del.statusCode, 200, del.body);
    const gone = await slice.send({ method: 'GET', url: '/api/v1/schedules/daily' });
    assert.equal(gone.statusCode, 404, gone.body);
  } finally {
    await slice.close();
    await h.close();
  }
});

test('a nearly full heap refuses a new job with what to raise, still takes changes to held jobs, and stores nothing', async () => {
  const f = fakeCtx({ grants: OPEN_BUS });
  const heap = { used: 10, limit: 100 };
  const hand = new SchedulingHand(f.ctx, { heap: () => heap });
  await hand.start();
  try {
    const job = (id: string, topic = 'reports/x') => ({
      id,
      trigger: { at: '2099-01-01T00:00:00Z' },
      action: { publish: { topic } },
    });
    assert.equal((await hand.put(job('a'))).created, true);
    heap.used = 80; // over HEAP_FULL (75 %)
    await assert.rejects(hand.put(job('b')), (e: TalonError) => {
      assert.equal(e.code, 'BAD_REQUEST');
      assert.match(e.message, /heap is 0 of 0 MB with 1 jobs: no new job .*quotas\.heapMb/);
      return true;
    });
    assert.equal(hand.engine.has('b'), false);
    assert.deepEqual(
      (await f.ctx.store.list({ prefix: '' })).map(([k]) => k).filter((k) => k.endsWith('/b')),
      [],
    );
    // an existing job can still change
    const changed = await hand.put(job('a', 'reports/y'));
    assert.equal(changed.created, false);
    heap.used = 10;
    assert.equal((await hand.put(job('b'))).created, true);
  } finally {
    await hand.stop();
    f.close();
  }
});
