/**
 * The Lead Generation Hand's surface (hands/leads/surface.ts): its routes mount in the `leads` area, lead ids and
 * delivery keys (with `:` `.` `/` `@`) reach the routes percent-encoded, and `export` is not taken for a lead id; the
 * routes' schemas take the documented examples and refuse bad input naming the field; handlers audit changes and send
 * the right typed request, whose answers match the declared schemas; /metrics families come from `stats`; `talon
 * leads …` parses, formats, writes the CSV (stdout or --out) and refuses bad options as usage errors before any request.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  deliveriesCommand,
  exportCommand,
  importCommand,
  leadIdArg,
  listCommand,
  retryCommand,
  scanCommand,
  showCommand,
} from '../../../hands/leads/cli.ts';
import { protocol } from '../../../hands/leads/protocol.ts';
import surface from '../../../hands/leads/surface.ts';
import type { AnySurface, HandCommandArgs, HandDaemon, HandRouteContext } from '../../../hands/sdk/surface.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { main } from '../../../runtime/cli/main.ts';
import type { Io } from '../../../runtime/cli/args.ts';
import { TAGS } from '../../../web-admin/auth/scopes.ts';
import { buildOpenApi } from '../../../web-admin/openapi.ts';
import { Router } from '../../../web-admin/router.ts';
import { surfaceRoutes } from '../../../web-admin/routes/surfaces.ts';

// ---- examples: the Hand's records as its requests answer them ------------------------------------------------------

const T = 1_796_000_000_000;
const at = (value: unknown, source = 'https://expo.example/exhibitors') => ({ value, source, at: T });
const LEAD = {
  id: 'd:acme-robotics.example',
  domain: 'acme-robotics.example',
  company: at('Acme Robotics'),
  website: at('https://acme-robotics.example/'),
  emails: [at('info@acme-robotics.example', 'https://acme-robotics.example/kontakt')],
  phones: [],
  industry: at('Robotics'),
  location: at('Berlin'),
  size: at(120),
  social: [at('https://github.com/acme-robotics', 'https://acme-robotics.example/kontakt')],
  technologies: [at('WordPress', 'https://acme-robotics.example/')],
  mx: [at('mx.acme-robotics.example', 'dns:MX acme-robotics.example')],
  score: 55,
  reasons: ['industry: Robotics +25', 'location: Berlin +15'],
  model: { score: 80, reason: 'builds robots' },
  status: 'qualified',
  sources: ['expo'],
  firstSeen: T,
  lastSeen: T,
  enrichedAt: T,
  version: 'a3333002c16332ac',
};
const DELIVERY = {
  key: 'hubspot/d:acme-robotics.example',
  target: 'hubspot',
  leadId: 'd:acme-robotics.example',
  version: 'a3333002c16332ac',
  state: 'failed',
  attempts: 3,
  nextAt: T,
  createdAt: T,
  lastError: 'HubSpot answered 401: check the token',
};
const SCAN = {
  found: 24,
  new: 19,
  updated: 0,
  qualified: 2,
  newlyQualified: 2,
  enqueued: 2,
  enriched: 15,
  pages: 3,
  errors: { robots: 1, 'no-id': 1 },
  sources: ['expo', 'fair'],
  startedAt: T,
  finishedAt: T + 1000,
};
const STATS = {
  leads: { new: 0, qualified: 2, unqualified: 15, excluded: 2 },
  scans: 3,
  found: 60,
  errors: { timeout: 1, robots: 2 },
  modelErrors: 1,
  deliveries: { hubspot: { pending: 1, sent: 2, failed: 0 }, hook: { pending: 0, sent: 3, failed: 1 } },
  delivered: 5,
  deliveryFailures: 1,
  lastScan: SCAN,
  scanning: false,
};
const CSV = 'company,domain\r\nAcme Robotics,acme-robotics.example\r\n';
const ANSWERS: Record<string, unknown> = {
  leads: { leads: [LEAD], next: 'd:acme-robotics.example' },
  lead: { lead: LEAD },
  scan: SCAN,
  import: SCAN,
  export: { csv: CSV, count: 1 },
  deliveries: { deliveries: [DELIVERY] },
  retry: { delivery: { ...DELIVERY, state: 'pending', attempts: 0 } },
  stats: STATS,
};

/** the routes as the kernel mounts them (`leads` is one of the API's areas) */
const routes = surfaceRoutes([surface as AnySurface]);
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

test('the routes: paths, methods, access and the prospects area; ids percent-encoded; export is not a lead id', () => {
  assert.ok((TAGS as readonly string[]).includes('prospects'));
  assert.deepEqual(
    surface.routes!.map((r) => [r.operationId, r.method, r.path, r.access, r.tag]),
    [
      ['listLeads', 'GET', '/api/v1/leads', 'read', 'prospects'],
      ['exportLeads', 'GET', '/api/v1/leads/export', 'read', 'prospects'],
      ['listLeadDeliveries', 'GET', '/api/v1/leads/deliveries', 'read', 'prospects'],
      ['retryLeadDelivery', 'POST', '/api/v1/leads/deliveries/retry', 'write', 'prospects'],
      ['scanLeads', 'POST', '/api/v1/leads/scan', 'write', 'prospects'],
      ['importLeads', 'POST', '/api/v1/leads/import', 'write', 'prospects'],
      ['getLead', 'GET', '/api/v1/leads/{id}', 'read', 'prospects'],
    ],
  );
  const m = (method: string, path: string) => {
    const r = router.match(method, path);
    return r.kind === 'route' ? `${r.route.operationId} ${JSON.stringify(r.params)}` : r.kind;
  };
  const id = encodeURIComponent('d:acme-robotics.example');
  assert.equal(m('GET', `/api/v1/leads/${id}`), 'getLead {"id":"d:acme-robotics.example"}');
  assert.equal(
    m('GET', `/api/v1/leads/${encodeURIComponent('e:jane.doe@gmail.com')}`),
    'getLead {"id":"e:jane.doe@gmail.com"}',
  );
  assert.equal(m('GET', '/api/v1/leads/export'), 'exportLeads {}');
  assert.equal(m('GET', '/api/v1/leads/deliveries'), 'listLeadDeliveries {}');
  assert.equal(m('POST', '/api/v1/leads/deliveries/retry'), 'retryLeadDelivery {}');
  assert.equal(m('POST', '/api/v1/leads/scan'), 'scanLeads {}');
  // the decoded params pass their schemas; what is not a lead id is refused naming the parameter
  router.validateParams(byOp('getLead'), { id: 'd:acme-robotics.example' });
  router.validateParams(byOp('getLead'), { id: 'e:jane.doe@gmail.com' });
  assert.match(refused(() => router.validateParams(byOp('getLead'), { id: 'acme' })).message, /\bid\b/);
  assert.match(refused(() => router.validateParams(byOp('getLead'), { id: 'd:../x' })).message, /\bid\b/);
  const doc = buildOpenApi(routes, { version: 'test' }) as { paths: Record<string, Record<string, unknown>> };
  assert.ok(doc.paths['/api/v1/leads/{id}']?.get);
  assert.ok(doc.paths['/api/v1/leads/import']?.post);
  assert.deepEqual([surface.id, surface.title, surface.page], ['leads', 'Lead Generation', { label: 'Leads' }]);
});

test('the documented examples pass the routes’ schemas; bad input is refused naming the field', () => {
  assert.deepEqual(
    router.validateQuery(
      byOp('listLeads'),
      new URLSearchParams('status=qualified&minScore=60&q=robot&limit=10&after=d:a'),
    ),
    { status: 'qualified', minScore: 60, q: 'robot', limit: 10, after: 'd:a' },
  );
  assert.deepEqual(router.validateQuery(byOp('listLeads'), new URLSearchParams('')), { limit: 50 });
  assert.match(
    refused(() => router.validateQuery(byOp('listLeads'), new URLSearchParams('status=hot'))).message,
    /status/,
  );
  assert.match(
    refused(() => router.validateQuery(byOp('listLeads'), new URLSearchParams('minScore=101'))).message,
    /minScore/,
  );
  assert.match(refused(() => router.validateQuery(byOp('listLeads'), new URLSearchParams('limit=0'))).message, /limit/);
  assert.deepEqual(router.validateQuery(byOp('exportLeads'), new URLSearchParams('status=excluded')), {
    status: 'excluded',
  });
  assert.match(
    refused(() => router.validateQuery(byOp('listLeadDeliveries'), new URLSearchParams('state=lost'))).message,
    /state/,
  );
  assert.deepEqual(router.validateBody(byOp('scanLeads'), {}), {});
  assert.deepEqual(router.validateBody(byOp('scanLeads'), { source: 'expo' }), { source: 'expo' });
  assert.match(refused(() => router.validateBody(byOp('scanLeads'), { source: 'a b' })).message, /source/);
  const imp = {
    format: 'csv',
    data: 'company,website\nAcme,acme.example\n',
    source: 'fair-list',
    map: { Firma: 'company' },
  };
  assert.deepEqual(router.validateBody(byOp('importLeads'), imp), imp);
  assert.match(refused(() => router.validateBody(byOp('importLeads'), { ...imp, format: 'xlsx' })).message, /format/);
  assert.match(refused(() => router.validateBody(byOp('importLeads'), { format: 'csv' })).message, /data/);
  assert.match(
    refused(() => router.validateBody(byOp('importLeads'), { ...imp, map: { Firma: 'firm' } })).message,
    /map/,
  );
  assert.match(
    refused(() => router.validateBody(byOp('importLeads'), { format: 'json', data: 'x'.repeat(1_048_577) })).message,
    /data/,
  );
});

function fakeRouteCtx(over: Partial<HandRouteContext> = {}) {
  const calls: Array<[string, unknown]> = [];
  const audits: unknown[] = [];
  const ctx = {
    caller: { actor: 'user:ada' },
    params: {},
    query: {},
    body: undefined,
    signal: new AbortController().signal,
    request: async (kind: string, body: unknown) => {
      calls.push([kind, body]);
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

test('handlers: changes are audited before the request; reads are not; the answers match the schemas', async () => {
  const imp = { format: 'json', data: '[]', source: 'crm-dump' };
  const cases: Array<[string, Partial<HandRouteContext>, [string, unknown], unknown]> = [
    [
      'listLeads',
      { query: { limit: 20, status: 'qualified', q: 'acme' } },
      ['leads', { limit: 20, status: 'qualified', q: 'acme' }],
      undefined,
    ],
    ['getLead', { params: { id: 'd:acme-robotics.example' } }, ['lead', { id: 'd:acme-robotics.example' }], undefined],
    ['exportLeads', { query: {} }, ['export', {}], undefined],
    ['exportLeads', { query: { status: 'qualified' } }, ['export', { status: 'qualified' }], undefined],
    [
      'listLeadDeliveries',
      { query: { limit: 50, state: 'failed' } },
      ['deliveries', { limit: 50, state: 'failed' }],
      undefined,
    ],
    ['scanLeads', { body: {} }, ['scan', {}], { action: 'api.leads.scan', subject: '*' }],
    [
      'scanLeads',
      { body: { source: 'expo' } },
      ['scan', { source: 'expo' }],
      { action: 'api.leads.scan', subject: 'expo' },
    ],
    [
      'importLeads',
      { body: imp },
      ['import', imp],
      { action: 'api.leads.import', subject: 'crm-dump', detail: { format: 'json', chars: 2 } },
    ],
    [
      'retryLeadDelivery',
      { body: { key: DELIVERY.key } },
      ['retry', { key: DELIVERY.key }],
      { action: 'api.leads.retry', subject: DELIVERY.key },
    ],
  ];
  for (const [op, over, call, audit] of cases) {
    const f = fakeRouteCtx(over);
    const out = await own(op).handler(f.ctx);
    assert.deepEqual(f.calls, [call], op);
    assert.deepEqual(f.audits, audit ? [audit] : [], op);
    assert.deepEqual(router.checkResponse(byOp(op), 200, out), [], op);
  }
  // a broken record does not fit (the check is not vacuous)
  assert.notDeepEqual(router.checkResponse(byOp('getLead'), 200, { lead: { ...LEAD, score: 120 } }), []);
  assert.notDeepEqual(router.checkResponse(byOp('listLeadDeliveries'), 200, { deliveries: [{ key: 'x' }] }), []);
});

test("the protocol's schemas take the Hand's answers and refuse requests it could not act on", () => {
  const ajv = createAjv('hand');
  const checker = createAjv('check');
  for (const [kind, answer] of Object.entries(ANSWERS)) {
    const check = checker.compile(protocol[kind as keyof typeof protocol].answer as object);
    assert.ok(check(answer), `${kind}: ${JSON.stringify(check.errors)}`);
  }
  const req = (kind: keyof typeof protocol, body: unknown) =>
    ajv.compile(protocol[kind].request as object)(structuredClone(body));
  assert.ok(req('leads', { limit: 5 }));
  assert.ok(!req('leads', { limit: 501 }));
  assert.ok(req('lead', { id: 'e:a@b.example' }));
  assert.ok(!req('lead', { id: 'x:a' }));
  assert.ok(req('retry', { key: 'hook/d:a.example' }));
  assert.ok(!req('retry', { key: 'hook' }));
  assert.ok(!req('scan', { source: '../etc' }));
  assert.ok(!req('import', { format: 'csv', data: '' }));
  assert.ok(!req('stats', { x: 1 }));
});

test('tools: leads.list, leads.get, leads.scan on their request kinds', () => {
  assert.deepEqual(
    surface.tools!.map((t) => [t.name, t.kind, t.readOnly ?? false]),
    [
      ['leads.list', 'leads', true],
      ['leads.get', 'lead', true],
      ['leads.scan', 'scan', false],
    ],
  );
});

test('metrics: the talon_leads families from the stats answer', async () => {
  const f = fakeRouteCtx();
  const families = await surface.metrics!.collect({ hand: 'leads', request: f.ctx.request });
  assert.deepEqual(f.calls, [['stats', {}]]);
  const get = (n: string) => {
    const fam = families.find((x) => x.name === n);
    assert.ok(fam, n);
    return fam.samples.map((s) => `${Object.values(s.labels ?? {}).join('/')}=${s.value}`);
  };
  for (const fam of families) assert.match(fam.name, /^talon_leads_[a-z_]+$/);
  assert.deepEqual(get('talon_leads_leads'), ['new=0', 'qualified=2', 'unqualified=15', 'excluded=2']);
  assert.deepEqual(get('talon_leads_scans_total'), ['=3']);
  assert.deepEqual(get('talon_leads_found_total'), ['=60']);
  assert.deepEqual(get('talon_leads_errors_total'), ['robots=2', 'timeout=1']);
  assert.deepEqual(get('talon_leads_deliveries'), [
    'hook/pending=0',
    'hook/sent=3',
    'hook/failed=1',
    'hubspot/pending=1',
    'hubspot/sent=2',
    'hubspot/failed=0',
  ]);
  assert.deepEqual(get('talon_leads_model_errors_total'), ['=1']);
  assert.deepEqual(get('talon_leads_delivered_total'), ['=5']);
  assert.deepEqual(get('talon_leads_delivery_failures_total'), ['=1']);
});

// ---- the CLI --------------------------------------------------------------------------------------------------------

function io(cwd = process.cwd()) {
  const out: string[] = [];
  const err: string[] = [];
  const o: Io = { out: (s) => void out.push(s), err: (s) => void err.push(s), env: {}, cwd };
  return { io: o, out, err };
}

const enc = encodeURIComponent;
const DAEMON_ANSWERS: Record<string, unknown> = {
  'GET /api/v1/leads': ANSWERS.leads,
  [`GET /api/v1/leads/${enc('d:acme-robotics.example')}`]: ANSWERS.lead,
  'POST /api/v1/leads/scan': ANSWERS.scan,
  'POST /api/v1/leads/import': ANSWERS.import,
  'GET /api/v1/leads/export': ANSWERS.export,
  'GET /api/v1/leads/deliveries': ANSWERS.deliveries,
  'POST /api/v1/leads/deliveries/retry': ANSWERS.retry,
};

class Usage extends Error {}

function args(positionals: string[], values: HandCommandArgs['values'] = {}, cwd?: string) {
  const t = io(cwd);
  const calls: Array<[string, string, unknown]> = [];
  const daemon: HandDaemon = {
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      calls.push([method, path, body]);
      const a = DAEMON_ANSWERS[`${method} ${path.split('?')[0]}`];
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
  return { a, out: t.out, err: t.err, calls };
}

test('`talon leads list` and `show`: a table, the query from the options; a lead with each field’s source', async () => {
  const r = args([], { status: 'qualified', 'min-score': '50', limit: '10' });
  assert.equal(await listCommand(r.a), 0);
  assert.equal(r.calls[0]![1], '/api/v1/leads?status=qualified&minScore=50&limit=10');
  const lines = r.out.join('').trimEnd().split('\n');
  assert.match(lines[0]!, /^SCORE\s+STATUS\s+COMPANY\s+DOMAIN\s+SOURCES$/);
  assert.match(lines[1]!, /^55\s+qualified\s+Acme Robotics\s+acme-robotics\.example\s+expo$/);
  await assert.rejects(listCommand(args([], { status: 'hot' }).a), /--status must be one of new, qualified/);
  await assert.rejects(listCommand(args([], { 'min-score': '200' }).a), /--min-score/);
  await assert.rejects(listCommand(args([], { limit: '0' }).a), /--limit must be from 1 to 500/);

  for (const typed of ['d:acme-robotics.example', 'acme-robotics.example', 'https://www.acme-robotics.example/x']) {
    const s = args([typed]);
    assert.equal(await showCommand(s.a), 0, typed);
    const text = s.out.join('');
    assert.match(text, /^Acme Robotics {2}\[d:acme-robotics\.example\]/);
    assert.match(text, /e-mail\s+info@acme-robotics\.example {2}\(https:\/\/acme-robotics\.example\/kontakt\)/);
    assert.match(text, /mx\s+mx\.acme-robotics\.example {2}\(dns:MX acme-robotics\.example\)/);
  }
  assert.equal(leadIdArg('Jane@Example.org'), 'e:jane@example.org');
  assert.equal(leadIdArg('not a lead'), undefined);
  await assert.rejects(showCommand(args(['not a lead']).a), /ID must be a lead id/);
});

test('`talon leads scan`, `import FILE`, `export [--out FILE]`', async () => {
  const s = args([], { source: 'expo' });
  assert.equal(await scanCommand(s.a), 0);
  assert.deepEqual(s.calls[0], ['POST', '/api/v1/leads/scan', { source: 'expo' }]);
  assert.match(s.out.join(''), /found 24, new 19, updated 0, qualified 2 \(2 newly\)/);
  assert.match(s.out.join(''), /errors: robots 1, no-id 1/);

  const dir = mkdtempSync(join(tmpdir(), 'talon-leads-'));
  try {
    writeFileSync(join(dir, 'list.csv'), 'company,website\nAcme,acme.example\n');
    const i = args(['list.csv'], { source: 'fair' }, dir);
    assert.equal(await importCommand(i.a), 0);
    assert.deepEqual(i.calls[0], [
      'POST',
      '/api/v1/leads/import',
      { format: 'csv', data: 'company,website\nAcme,acme.example\n', source: 'fair' },
    ]);
    writeFileSync(join(dir, 'list.txt'), 'x');
    await assert.rejects(importCommand(args(['list.txt'], {}, dir).a), /--format csv or --format json/);
    await assert.rejects(importCommand(args(['list.txt'], { format: 'xml' }, dir).a), /--format must be csv or json/);
    const j = args(['list.txt'], { format: 'json' }, dir);
    assert.equal(await importCommand(j.a), 0);
    assert.equal((j.calls[0]![2] as { format: string }).format, 'json');
    await assert.rejects(importCommand(args(['missing.csv'], {}, dir).a), (e: TalonError) => e.code === 'NOT_FOUND');

    const e = args([]);
    assert.equal(await exportCommand(e.a), 0);
    assert.equal(e.out.join(''), CSV, 'the CSV itself on stdout');
    const o = args([], { out: 'leads.csv', status: 'qualified' }, dir);
    assert.equal(await exportCommand(o.a), 0);
    assert.equal(o.calls[0]![1], '/api/v1/leads/export?status=qualified');
    assert.equal(readFileSync(join(dir, 'leads.csv'), 'utf8'), CSV);
    assert.equal(o.out.join(''), '');
    assert.match(o.err.join(''), /1 lead\(s\) written to leads\.csv/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`talon leads deliveries` and `retry KEY`', async () => {
  const d = args([], { state: 'failed' });
  assert.equal(await deliveriesCommand(d.a), 0);
  assert.equal(d.calls[0]![1], '/api/v1/leads/deliveries?limit=50&state=failed');
  const lines = d.out.join('').trimEnd().split('\n');
  assert.match(lines[0]!, /^KEY\s+STATE\s+TRIES\s+NEXT \/ SENT\s+CRM ID\s+LAST ERROR$/);
  assert.match(lines[1]!, /^hubspot\/d:acme-robotics\.example\s+failed\s+3\s+-\s+-\s+HubSpot answered 401/);
  await assert.rejects(
    deliveriesCommand(args([], { state: 'lost' }).a),
    /--state must be one of pending, sent, failed/,
  );
  const r = args([DELIVERY.key]);
  assert.equal(await retryCommand(r.a), 0);
  assert.deepEqual(r.calls[0], ['POST', '/api/v1/leads/deliveries/retry', { key: DELIVERY.key }]);
  assert.match(r.out.join(''), /^hubspot\/d:acme-robotics\.example: pending, next try/);
  await assert.rejects(retryCommand(args(['acme']).a), /KEY must be a delivery key/);
});

test('`talon leads --help` lists the commands; usage errors exit 2 before the daemon is reached', async () => {
  const t = io();
  assert.equal(await main(['leads', '--help'], t.io, [surface as AnySurface]), 0);
  for (const c of ['list', 'show', 'scan', 'import', 'export', 'deliveries', 'retry'])
    assert.match(t.out.join(''), new RegExp(`\\b${c}\\b`));
  const empty = mkdtempSync(join(tmpdir(), 'talon-leads-'));
  try {
    const p = io();
    assert.equal(await main(['leads', 'list', '--status', 'hot', '--data', empty], p.io, [surface as AnySurface]), 2);
    assert.match(p.err.join(''), /--status must be one of/);
    const miss = io();
    assert.equal(await main(['leads', 'show'], miss.io, [surface as AnySurface]), 2, 'a missing ID is a usage error');
    const nr = io();
    assert.equal(await main(['leads', 'list', '--data', empty], nr.io, [surface as AnySurface]), 1);
    assert.match(nr.err.join(''), /NOT_RUNNING/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
