/**
 * The Research Hand's surface (hands/research/surface.ts): its routes mount in the `research` area, the OpenAPI
 * document takes them, their schemas take the documented queries and refuse bad ones naming the field; a run through
 * the API is audited before the request and waits long enough for a run; the answers (built from real reports of
 * ./report.ts) match the declared schemas; /metrics families come from `stats`; `talon research …` parses, formats
 * and refuses bad options as usage errors before any request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import surface, { RUN_TIMEOUT_MS } from '../../../hands/research/surface.ts';
import { protocol } from '../../../hands/research/protocol.ts';
import { docsCommand, reportCommand, reportsCommand, runCommand, topicsCommand } from '../../../hands/research/cli.ts';
import { summaryOf } from '../../../hands/research/index.ts';
import { digestReport, nothingReport, type RunBase } from '../../../hands/research/report.ts';
import type { Doc, Topic } from '../../../hands/research/types.ts';
import { surfaceRoutes } from '../../../web-admin/routes/surfaces.ts';
import { Router } from '../../../web-admin/router.ts';
import { TAGS } from '../../../web-admin/auth/scopes.ts';
import { buildOpenApi } from '../../../web-admin/openapi.ts';
import { main } from '../../../runtime/cli/main.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandCommandArgs, HandDaemon, HandRouteContext } from '../../../hands/sdk/surface.ts';
import type { Io } from '../../../runtime/cli/args.ts';

// ---- examples: real reports, as ./report.ts writes them --------------------------------------------------------------

const RUN_ID = '1795000000000ab12';
const TOPIC: Topic = {
  id: 'quantum',
  title: 'Quantum error correction',
  questions: ['Did surface codes cross the threshold?'],
  keywords: ['qubits'],
  sources: [{ kind: 'feed', url: 'https://news.example/feed.xml', label: 'feed:news.example' }],
  schedule: '0 7 * * *',
  minScore: 0.1,
  maxDocs: 10,
  notify: 'off',
};
const DOC: Doc = {
  id: '0123456789abcdef0123456789abcdef',
  url: 'https://news.example/articles/quantum.html',
  urls: ['https://news.example/articles/quantum.html', 'https://news.example/articles/quantum.html?utm_source=rss'],
  title: 'Surface codes cross the error-correction threshold',
  text: 'Surface codes on 72 qubits kept logical errors below the physical error rate.',
  fetchedAt: 1_795_000_000_000,
  source: 'feed:news.example',
};
const STATS = { sources: 1, requests: 3, notModified: 1, candidates: 3, new: 2, relevant: 1, errors: 1, ms: 120 };
const BASE: RunBase = {
  runId: RUN_ID,
  startedAt: 1_795_000_000_000,
  finishedAt: 1_795_000_001_000,
  stats: STATS,
  errors: [{ source: 'feed:news.example', url: 'https://news.example/x.xml', kind: 'parse', message: 'not a feed' }],
};
const DIGEST = digestReport(TOPIC, BASE, [{ doc: DOC, score: 0.42, extract: DOC.text, by: 'keywords' }], 'No model');
const NOTHING = nothingReport(TOPIC, { ...BASE, runId: '1794999990000zz99', stats: { ...STATS, relevant: 0 } });
const TOPIC_VIEW = {
  id: 'quantum',
  title: 'Quantum error correction',
  questions: TOPIC.questions,
  sources: ['feed:news.example', 'hn:risc-v'],
  schedule: '0 7 * * *',
  scheduledBy: 'scheduler',
  notify: 'off',
  running: false,
  lastRun: {
    at: 1_795_000_000_000,
    finishedAt: 1_795_000_001_000,
    reportId: DIGEST.id,
    mode: 'digest',
    new: 2,
    relevant: 1,
    errors: 1,
  },
};
const DOC_VIEW = {
  id: DOC.id,
  url: DOC.url,
  urls: DOC.urls,
  title: DOC.title,
  fetchedAt: DOC.fetchedAt,
  source: DOC.source,
  chars: DOC.text.length,
};
const RSTATS = {
  topics: 2,
  running: 1,
  runs: { model: 3, digest: 2, nothing: 5, failed: 1 },
  documents: 40,
  new: 12,
  requests: 90,
  notModified: 30,
  errors: { parse: 2, timeout: 1, custom: 4 },
  refused: 2,
  downgraded: 1,
  published: 5,
};

const ANSWERS: Record<string, unknown> = {
  topics: { topics: [TOPIC_VIEW] },
  run: { report: summaryOf(DIGEST) },
  reports: { reports: [summaryOf(DIGEST), summaryOf(NOTHING)], next: NOTHING.id },
  report: { report: DIGEST },
  documents: { documents: [DOC_VIEW], next: DOC.id },
  stats: { stats: RSTATS },
};

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

test('the routes: paths, methods, access, the reports area; the OpenAPI document takes them', () => {
  assert.ok((TAGS as readonly string[]).includes('reports'), 'the API knows the reports area');
  assert.deepEqual(
    surface.routes!.map((r) => [r.operationId, r.method, r.path, r.access, r.tag]),
    [
      ['listResearchTopics', 'GET', '/api/v1/research/topics', 'read', 'reports'],
      ['runResearchTopic', 'POST', '/api/v1/research/topics/{topic}/run', 'write', 'reports'],
      ['listResearchReports', 'GET', '/api/v1/research/reports', 'read', 'reports'],
      ['getResearchReport', 'GET', '/api/v1/research/reports/{id}', 'read', 'reports'],
      ['listResearchDocuments', 'GET', '/api/v1/research/documents', 'read', 'reports'],
    ],
  );
  const m = router.match('GET', `/api/v1/research/reports/${DIGEST.id}`);
  assert.equal(m.kind === 'route' ? `${m.route.operationId} ${m.params.id}` : m.kind, `getResearchReport ${DIGEST.id}`);
  const r = router.match('POST', '/api/v1/research/topics/quantum/run');
  assert.equal(r.kind === 'route' ? `${r.route.operationId} ${r.params.topic}` : r.kind, 'runResearchTopic quantum');
  const doc = buildOpenApi(routes, { version: 'test' }) as { paths: Record<string, Record<string, unknown>> };
  assert.ok(doc.paths['/api/v1/research/topics/{topic}/run']?.post);
  assert.ok(doc.paths['/api/v1/research/reports/{id}']?.get);
  assert.deepEqual([surface.id, surface.title, surface.page], ['research', 'Research', { label: 'Research' }]);
});

test('the queries and parameters: defaults filled in, bad input refused naming the field', () => {
  assert.deepEqual(router.validateQuery(byOp('listResearchReports'), new URLSearchParams('')), { limit: 20 });
  assert.deepEqual(
    router.validateQuery(byOp('listResearchReports'), new URLSearchParams(`topic=quantum&limit=5&before=${DIGEST.id}`)),
    { topic: 'quantum', limit: 5, before: DIGEST.id },
  );
  for (const q of ['limit=0', 'limit=201'])
    assert.match(
      refused(() => router.validateQuery(byOp('listResearchReports'), new URLSearchParams(q))).message,
      /limit/,
    );
  assert.match(
    refused(() => router.validateQuery(byOp('listResearchReports'), new URLSearchParams('topic=Not/A/Topic'))).message,
    /topic/,
  );
  assert.match(
    refused(() => router.validateQuery(byOp('listResearchReports'), new URLSearchParams('before=yesterday'))).message,
    /before/,
  );
  assert.deepEqual(router.validateQuery(byOp('listResearchDocuments'), new URLSearchParams('')), { limit: 50 });
  assert.match(
    refused(() => router.validateQuery(byOp('listResearchDocuments'), new URLSearchParams('after=<script>'))).message,
    /after/,
  );
  assert.match(
    refused(() => router.validateQuery(byOp('listResearchDocuments'), new URLSearchParams('sort=new'))).message,
    /sort/,
  );
  router.validateParams(byOp('runResearchTopic'), { topic: 'ai-chips' });
  assert.match(refused(() => router.validateParams(byOp('runResearchTopic'), { topic: '../x' })).message, /topic/);
  router.validateParams(byOp('getResearchReport'), { id: DIGEST.id });
  assert.match(refused(() => router.validateParams(byOp('getResearchReport'), { id: 'quantum' })).message, /\bid\b/);
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

test('handlers: a run is audited before the request and waits for it; reads are not; answers match the schemas', async () => {
  const cases: Array<[string, Partial<HandRouteContext>, [string, unknown, unknown], unknown]> = [
    ['listResearchTopics', {}, ['topics', {}, undefined], undefined],
    [
      'runResearchTopic',
      { params: { topic: 'quantum' } },
      ['run', { topic: 'quantum' }, { timeoutMs: RUN_TIMEOUT_MS }],
      { action: 'api.research.run', subject: 'quantum' },
    ],
    [
      'listResearchReports',
      { query: { limit: 5, topic: 'quantum', before: DIGEST.id } },
      ['reports', { limit: 5, topic: 'quantum', before: DIGEST.id }, undefined],
      undefined,
    ],
    ['listResearchReports', { query: { limit: 20 } }, ['reports', { limit: 20 }, undefined], undefined],
    ['getResearchReport', { params: { id: DIGEST.id } }, ['report', { id: DIGEST.id }, undefined], undefined],
    [
      'listResearchDocuments',
      { query: { limit: 50, after: DOC.id } },
      ['documents', { limit: 50, after: DOC.id }, undefined],
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
  assert.ok(RUN_TIMEOUT_MS >= 5 * 60_000, 'a run through the API waits minutes, not the default seconds');
  // the check is not vacuous: a report without its markdown, or of an unknown mode, does not fit
  const { markdown: _m, ...bare } = DIGEST;
  assert.notDeepEqual(router.checkResponse(byOp('getResearchReport'), 200, { report: bare }), []);
  assert.notDeepEqual(
    router.checkResponse(byOp('listResearchReports'), 200, { reports: [{ ...summaryOf(DIGEST), mode: 'essay' }] }),
    [],
  );
});

test("the protocol's schemas take the Hand's records (real reports) and refuse what it could not act on", () => {
  const ajv = createAjv('hand');
  const check = createAjv('check');
  for (const [kind, k] of Object.entries(protocol)) {
    const answer = check.compile(k.answer);
    assert.equal(answer(ANSWERS[kind]), true, `${kind}: ${JSON.stringify(answer.errors)}`);
  }
  assert.equal(check.compile(protocol.report.answer)({ report: NOTHING }), true);
  const v = (kind: keyof typeof protocol) => ajv.compile(protocol[kind].request);
  assert.equal(v('run')({ topic: 'quantum' }), true);
  assert.equal(v('run')({}), false);
  assert.equal(v('run')({ topic: 'Quantum!' }), false);
  const reports: Record<string, unknown> = {};
  assert.equal(v('reports')(reports), true);
  assert.equal(reports.limit, 20, 'the default limit is filled in');
  assert.equal(v('reports')({ before: 'x' }), false);
  assert.equal(v('report')({ id: DIGEST.id }), true);
  assert.equal(v('report')({ id: '../../etc' }), false);
  assert.equal(v('documents')({ limit: 501 }), false);
  assert.equal(v('stats')({ x: 1 }), false);
  assert.equal(v('topics')({}), true);
});

test('tools: research.topics, research.run, research.reports, research.report', () => {
  assert.deepEqual(
    surface.tools!.map((t) => [t.name, t.kind, t.readOnly === true]),
    [
      ['research.topics', 'topics', true],
      ['research.run', 'run', false],
      ['research.reports', 'reports', true],
      ['research.report', 'report', true],
    ],
  );
});

// ---- metrics --------------------------------------------------------------------------------------------------------

test('metrics: the talon_research families from the stats answer', async () => {
  const f = fakeRouteCtx();
  const families = await surface.metrics!.collect({ hand: 'research', request: f.ctx.request });
  assert.deepEqual(
    f.calls.map(([k]) => k),
    ['stats'],
  );
  const get = (n: string) => {
    const fam = families.find((x) => x.name === n);
    assert.ok(fam, n);
    return fam;
  };
  const samples = (n: string) =>
    get(n).samples.map((s) => [Object.values(s.labels ?? {}).join('/'), s.value] as [string, number]);
  assert.deepEqual(samples('talon_research_runs_total'), [
    ['model', 3],
    ['digest', 2],
    ['nothing', 5],
    ['failed', 1],
  ]);
  assert.equal(get('talon_research_runs_total').type, 'counter');
  assert.deepEqual(samples('talon_research_documents'), [['', 40]]);
  assert.equal(get('talon_research_documents').type, 'gauge');
  assert.deepEqual(samples('talon_research_new_documents_total'), [['', 12]]);
  assert.deepEqual(samples('talon_research_requests_total'), [['', 90]]);
  assert.deepEqual(samples('talon_research_not_modified_total'), [['', 30]]);
  assert.deepEqual(samples('talon_research_citations_refused_total'), [['', 2]]);
  assert.deepEqual(samples('talon_research_downgraded_total'), [['', 1]]);
  assert.deepEqual(samples('talon_research_running'), [['', 1]]);
  const errors = Object.fromEntries(samples('talon_research_errors_total'));
  assert.equal(errors.parse, 2);
  assert.equal(errors.timeout, 1);
  assert.equal(errors.custom, 4, 'a kind counted by the Hand shows too');
  assert.equal(errors.robots, 0, 'the usual kinds show from the start');
  for (const fam of families) assert.match(fam.name, /^talon_research_[a-z_]+$/);
});

// ---- the CLI --------------------------------------------------------------------------------------------------------

function io(env: Record<string, string | undefined> = {}, cwd = process.cwd()) {
  const out: string[] = [];
  const err: string[] = [];
  const o: Io = { out: (s) => void out.push(s), err: (s) => void err.push(s), env, cwd };
  return { io: o, out, err };
}

function fakeDaemon(answers: Record<string, unknown>) {
  const calls: Array<[string, string, unknown]> = [];
  const daemon: HandDaemon = {
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      calls.push([method, path, body]);
      const a = answers[`${method} ${path.split('?')[0]}`];
      if (a === undefined) throw new TalonError('NOT_FOUND', `no answer for ${method} ${path}`);
      return a as T;
    },
  };
  return { daemon, calls };
}

const DAEMON_ANSWERS = {
  'GET /api/v1/research/topics': ANSWERS.topics,
  'POST /api/v1/research/topics/quantum/run': ANSWERS.run,
  'GET /api/v1/research/reports': ANSWERS.reports,
  [`GET /api/v1/research/reports/${DIGEST.id}`]: ANSWERS.report,
  'GET /api/v1/research/documents': ANSWERS.documents,
};

class Usage extends Error {}

function args(
  positionals: string[],
  values: HandCommandArgs['values'] = {},
  answers: Record<string, unknown> = DAEMON_ANSWERS,
) {
  const t = io();
  const d = fakeDaemon(answers);
  const a: HandCommandArgs = {
    positionals,
    values,
    io: t.io,
    daemon: d.daemon,
    usage: (m: string): never => {
      throw new Usage(m);
    },
  };
  return { a, out: t.out, err: t.err, calls: d.calls };
}

test('`talon research topics`: a table with schedule, last run and sources; --json; none', async () => {
  const r = args([]);
  assert.equal(await topicsCommand(r.a), 0);
  const lines = r.out.join('').trimEnd().split('\n');
  assert.match(lines[0]!, /^TOPIC\s+SCHEDULE\s+LAST RUN\s+RESULT\s+SOURCES$/);
  assert.match(
    lines[1]!,
    /^quantum\s+0 7 \* \* \*\s+2026-11-18T\S+Z\s+digest: 2 new, 1 relevant, 1 error\s+feed:news\.example, hn:risc-v$/,
  );
  const j = args([], { json: true });
  await topicsCommand(j.a);
  assert.deepEqual(JSON.parse(j.out.join('')), [TOPIC_VIEW]);
  const none = args([], {}, { 'GET /api/v1/research/topics': { topics: [] } });
  await topicsCommand(none.a);
  assert.match(none.out.join(''), /^no topics/);
});

test('`talon research run TOPIC`: the summary and how to show it; a bad id is a usage error before any request', async () => {
  const r = args(['quantum']);
  assert.equal(await runCommand(r.a), 0);
  assert.deepEqual(r.calls, [['POST', '/api/v1/research/topics/quantum/run', undefined]]);
  const out = r.out.join('');
  assert.match(out, new RegExp(`^report ${DIGEST.id} \\(digest\\)\\n`));
  assert.match(out, /1 source\(s\), 3 request\(s\) \(1 not modified\), 3 candidate\(s\)/);
  assert.match(out, /note: No model/);
  assert.match(out, new RegExp(`show it with: talon research report ${DIGEST.id}\\n$`));
  const bad = args(['../etc']);
  await assert.rejects(
    runCommand(bad.a),
    (e: Error) => e instanceof Usage && /TOPIC must be a topic id/.test(e.message),
  );
  assert.deepEqual(bad.calls, []);
});

test('`talon research reports` and `report ID`: options checked, newest first, Markdown or --json', async () => {
  const r = args([], { topic: 'quantum', limit: '5' });
  assert.equal(await reportsCommand(r.a), 0);
  assert.deepEqual(r.calls, [['GET', '/api/v1/research/reports?limit=5&topic=quantum', undefined]]);
  const lines = r.out.join('').trimEnd().split('\n');
  assert.match(lines[0]!, /^STARTED\s+ID\s+MODE\s+FINDINGS\s+NEW\s+ERRORS\s+SUMMARY$/);
  assert.match(lines[1]!, new RegExp(`^\\S+Z\\s+${DIGEST.id}\\s+digest\\s+0\\s+2\\s+1\\s+1 new document`));
  assert.match(lines[2]!, new RegExp(`${NOTHING.id}\\s+nothing`));
  assert.equal(lines[3], `more: --before ${NOTHING.id}`);
  for (const [values, re] of [
    [{ limit: '0' }, /--limit must be from 1 to 200, not 0/],
    [{ limit: 'ten' }, /--limit must be a whole number/],
    [{ topic: 'A B' }, /--topic must be a topic id/],
    [{ before: 'yesterday' }, /--before must be a report id/],
  ] as const) {
    const u = args([], values);
    await assert.rejects(reportsCommand(u.a), (e: Error) => e instanceof Usage && re.test(e.message));
    assert.deepEqual(u.calls, []);
  }
  const one = args([DIGEST.id]);
  assert.equal(await reportCommand(one.a), 0);
  assert.equal(one.out.join(''), DIGEST.markdown);
  const j = args([DIGEST.id], { json: true });
  await reportCommand(j.a);
  assert.deepEqual(JSON.parse(j.out.join('')), JSON.parse(JSON.stringify(DIGEST)));
  const bad = args(['quantum']);
  await assert.rejects(
    reportCommand(bad.a),
    (e: Error) => e instanceof Usage && /ID must be a report id/.test(e.message),
  );
  assert.deepEqual(bad.calls, []);
});

test('`talon research docs`: title, URL and how many more URLs; --after checked', async () => {
  const r = args([], { limit: '10' });
  assert.equal(await docsCommand(r.a), 0);
  assert.deepEqual(r.calls, [['GET', '/api/v1/research/documents?limit=10', undefined]]);
  const out = r.out.join('');
  assert.match(out, /^ID\s+FETCHED\s+TITLE\s+URL\n0123456789ab\s+\S+Z\s+Surface codes cross/);
  assert.match(out, /https:\/\/news\.example\/articles\/quantum\.html \(\+1 more\)\n/);
  assert.match(out, new RegExp(`more: --after ${DOC.id}\\n$`));
  const u = args([], { after: 'not hex' });
  await assert.rejects(
    docsCommand(u.a),
    (e: Error) => e instanceof Usage && /--after must be a document id/.test(e.message),
  );
  assert.deepEqual(u.calls, []);
});

test('`talon research --help` lists the commands; usage errors exit 2 before the daemon is reached', async () => {
  const t = io();
  assert.equal(await main(['research', '--help'], t.io, [surface]), 0);
  for (const c of ['topics', 'run', 'reports', 'report', 'docs'])
    assert.match(t.out.join(''), new RegExp(`\\b${c}\\b`));
  const h = io();
  assert.equal(await main(['research', 'reports', '--help'], h.io, [surface]), 0);
  for (const o of ['--topic', '--limit', '--before', '--json']) assert.match(h.out.join(''), new RegExp(o));
  const empty = mkdtempSync(join(tmpdir(), 'talon-research-'));
  try {
    const l = io();
    assert.equal(await main(['research', 'reports', '--limit', '0', '--data', empty], l.io, [surface]), 2);
    assert.match(l.err.join(''), /--limit must be from 1 to 200/);
    const miss = io();
    assert.equal(await main(['research', 'run'], miss.io, [surface]), 2, 'a missing TOPIC is a usage error');
    const nr = io();
    assert.equal(await main(['research', 'topics', '--data', empty], nr.io, [surface]), 1);
    assert.match(nr.err.join(''), /NOT_RUNNING/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
