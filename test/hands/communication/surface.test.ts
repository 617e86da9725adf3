/**
 * The Communication Hand's surface (hands/communication/surface.ts): its routes mount in the `channels` and
 * `messages` areas and their schemas take the documented examples and refuse bad input naming the field; their
 * handlers audit changes and send the right typed request, whose answers match the declared schemas; the protocol's
 * request and answer schemas take the Hand's records; /metrics families come from `stats` and `channels`; `talon
 * channels …` parses, formats and refuses bad options (priority "urgent", limit 0) as usage errors before any request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import surface, { NOTIFY_BODY, sourceOf } from '../../../hands/communication/surface.ts';
import { protocol, MAX_WEBHOOK_BODY } from '../../../hands/communication/protocol.ts';
import {
  ackCommand,
  decisionWords,
  escalationsCommand,
  listCommand,
  messagesCommand,
  notifyBody,
  notifyCommand,
  testCommand,
} from '../../../hands/communication/cli.ts';
import { surfaceRoutes } from '../../../web-admin/routes/surfaces.ts';
import { Router } from '../../../web-admin/router.ts';
import { TAGS } from '../../../web-admin/auth/scopes.ts';
import { buildOpenApi } from '../../../web-admin/openapi.ts';
import { main } from '../../../runtime/cli/main.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandCommandArgs, HandDaemon, HandRouteContext, AnySurface } from '../../../hands/sdk/surface.ts';
import type { Io } from '../../../runtime/cli/args.ts';

// ---- examples: the Hand's records as its requests answer them ------------------------------------------------------

const CHANNEL = {
  name: 'phone',
  kind: 'ntfy',
  direction: 'both',
  url: 'ntfy://ntfy.sh/{secret:ntfy_topic}',
  targets: ['alerts'],
  health: 'ok',
  lastOkAt: 1_700_000_000_000,
  queued: 2,
  held: 1,
  sent: 10,
  failed: 1,
  received: 4,
  breaker: { state: 'closed' },
};
const BROKEN = {
  name: 'team',
  kind: 'telegram',
  direction: 'both',
  url: 'tgram://{secret:telegram_token}/123',
  targets: ['123'],
  health: 'auth',
  lastError: 'Unauthorized (401): check the bot token',
  queued: 5,
  held: 0,
  sent: 0,
  failed: 0,
  received: 0,
  breaker: { state: 'open', waitUntil: 1_700_000_060_000 },
};
const OUTBOX = {
  id: 'o1',
  notification: 'n1',
  channel: 'team',
  rule: 'critical',
  route: 'ops',
  text: 'disk full',
  priority: 'high',
  tags: [],
  state: 'queued',
  attempts: 3,
  nextAt: 1_700_000_100_000,
  createdAt: 1_700_000_000_000,
  lastError: 'Unauthorized (401)',
};
const HISTORY = {
  id: 'h1',
  notification: 'n0',
  channel: 'phone',
  rule: 'default',
  route: 'all',
  title: 'Backup',
  text: 'done',
  priority: 'normal',
  outcome: 'sent',
  attempts: 1,
  createdAt: 1_700_000_000_000,
  doneAt: 1_700_000_001_000,
  platformIds: ['abc'],
};
const INBOX = {
  id: 'i1',
  channel: 'team',
  platformId: '991',
  from: '123',
  fromName: 'Ada',
  fromBot: false,
  text: '/status',
  at: 1_700_000_000_000,
  receivedAt: 1_700_000_000_500,
  sender: 'allowed',
  handled: { command: 'status', ok: true, answer: 'all well', at: 1_700_000_000_600 },
};
const ESCALATION = {
  ackId: 'K3F9',
  notification: 'n2',
  text: 'pump stopped',
  priority: 'critical',
  steps: [
    { to: ['ada'], afterMs: 300_000 },
    { to: ['team'], afterMs: 600_000 },
  ],
  step: 0,
  dueAt: 1_700_000_300_000,
  startedAt: 1_700_000_000_000,
};
const ACKED = { ...ESCALATION, acked: { by: 'user:ada', at: 1_700_000_010_000 }, ended: 'acked' };
const DECISIONS = {
  id: 'n3',
  decisions: [
    { kind: 'send', channel: 'phone', rule: 'default', route: 'all' },
    {
      kind: 'hold',
      channel: 'mail',
      to: 'ada@example.org',
      rule: 'digest',
      until: 1_700_003_600_000,
      reason: 'digest',
    },
  ],
  ackId: 'Q7TX',
};
const STATS = {
  sent: 10,
  failed: 1,
  expired: 2,
  queued: 7,
  held: 1,
  received: 4,
  refused: 3,
  escalationsOpen: 1,
  byChannel: {
    phone: { sent: 10, failed: 1, queued: 2, received: 4 },
    team: { sent: 0, failed: 0, queued: 5, received: 0 },
  },
  routed: 12,
  deduped: 5,
  unrouted: 1,
};

const ANSWERS: Record<string, unknown> = {
  channels: { channels: [CHANNEL, BROKEN] },
  test: { ok: false, error: { kind: 'auth', message: 'Unauthorized (401)' } },
  notify: DECISIONS,
  messages: { messages: [HISTORY], next: 'h0' },
  escalations: { escalations: [ESCALATION] },
  ack: { escalation: ACKED, already: false },
  webhook: { accepted: true },
  stats: STATS,
};

// ---- the routes -----------------------------------------------------------------------------------------------------

/**
 * The routes as the kernel mounts them. The kernel integrator adds `channels` and `messages` to the API's areas
 * (TAGS); until it has, they are mounted here under `hands` so the schemas can still be checked.
 */
const mountable: AnySurface = {
  ...surface,
  routes: surface.routes!.map((r) => ({
    ...r,
    tag: (TAGS as readonly string[]).includes(r.tag!) ? r.tag! : 'hands',
  })),
};
const routes = surfaceRoutes([mountable]);
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

test('the routes: paths, methods, access and areas (channels, messages); no webhook route', () => {
  const want: Array<[string, string, string, string, string]> = [
    ['listChannels', 'GET', '/api/v1/channels', 'read', 'channels'],
    ['testChannel', 'POST', '/api/v1/channels/{name}/test', 'write', 'channels'],
    ['listMessages', 'GET', '/api/v1/messages', 'read', 'messages'],
    ['sendNotification', 'POST', '/api/v1/messages', 'write', 'messages'],
    ['listEscalations', 'GET', '/api/v1/messages/escalations', 'read', 'messages'],
    ['ackEscalation', 'POST', '/api/v1/messages/escalations/{id}/ack', 'write', 'messages'],
  ];
  const declared = surface.routes!;
  assert.deepEqual(
    declared.map((r) => [r.operationId, r.method, r.path, r.access, r.tag]),
    want,
  );
  assert.equal(
    declared.some((r) => /webhook/i.test(r.path)),
    false,
  );
  const m = router.match('POST', '/api/v1/messages/escalations/K3F9/ack');
  assert.equal(m.kind === 'route' ? `${m.route.operationId} ${m.params.id}` : m.kind, 'ackEscalation K3F9');
  const e = router.match('GET', '/api/v1/messages/escalations');
  assert.equal(e.kind === 'route' ? e.route.operationId : e.kind, 'listEscalations');
  // the OpenAPI document takes them
  const doc = buildOpenApi(routes, { version: 'test' }) as { paths: Record<string, Record<string, unknown>> };
  assert.ok(doc.paths['/api/v1/messages']?.post);
  assert.ok(doc.paths['/api/v1/channels/{name}/test']?.post);
  // the surface says where notifications go and what it provides
  assert.deepEqual(
    [surface.id, surface.title, surface.provides, surface.notify],
    ['communication', 'Communication', 'notifications', 'notify'],
  );
  assert.deepEqual(surface.page, { label: 'Messages' });
});

test('the documented examples pass the routes’ schemas; bad input is refused naming the field', () => {
  // GET /api/v1/messages?box=&limit=&before=
  const q = router.validateQuery(byOp('listMessages'), new URLSearchParams('box=inbox&limit=10&before=i9'));
  assert.deepEqual(q, { box: 'inbox', limit: 10, before: 'i9' });
  assert.deepEqual(router.validateQuery(byOp('listMessages'), new URLSearchParams('')), { box: 'history', limit: 50 });
  assert.match(
    refused(() => router.validateQuery(byOp('listMessages'), new URLSearchParams('limit=0'))).message,
    /limit/,
  );
  assert.match(
    refused(() => router.validateQuery(byOp('listMessages'), new URLSearchParams('limit=501'))).message,
    /limit/,
  );
  assert.match(
    refused(() => router.validateQuery(byOp('listMessages'), new URLSearchParams('box=spam'))).message,
    /box/,
  );
  assert.deepEqual(router.validateQuery(byOp('listEscalations'), new URLSearchParams('all=true')), { all: true });
  // POST /api/v1/messages
  const body = {
    text: 'Pump stopped',
    title: 'Cellar',
    priority: 'critical',
    to: ['phone', 'mail:ada@example.org'],
    tags: ['pump'],
    needsAck: true,
  };
  assert.deepEqual(router.validateBody(byOp('sendNotification'), body), body);
  assert.match(
    refused(() => router.validateBody(byOp('sendNotification'), { text: 'x', priority: 'urgent' })).message,
    /priority/,
  );
  assert.match(refused(() => router.validateBody(byOp('sendNotification'), { text: '' })).message, /text/);
  assert.match(
    refused(() => router.validateBody(byOp('sendNotification'), { text: 'x'.repeat(4001) })).message,
    /text/,
  );
  assert.match(refused(() => router.validateBody(byOp('sendNotification'), { title: 'no text' })).message, /text/);
  // the API's caller is the source: a body cannot claim one
  assert.match(
    refused(() => router.validateBody(byOp('sendNotification'), { text: 'x', source: 'hand:alarm' })).message,
    /source is not a known field/,
  );
  assert.equal('source' in NOTIFY_BODY.properties, false);
  // POST /api/v1/channels/{name}/test
  router.validateParams(byOp('testChannel'), { name: 'phone' });
  router.validateParams(byOp('ackEscalation'), { id: 'K3F9' });
  assert.match(refused(() => router.validateParams(byOp('testChannel'), { name: '../x' })).message, /name/);
  assert.deepEqual(router.validateBody(byOp('testChannel'), {}), {});
  assert.match(refused(() => router.validateBody(byOp('testChannel'), { txt: 'hi' })).message, /txt/);
  // POST /api/v1/messages/escalations/{id}/ack
  assert.match(refused(() => router.validateParams(byOp('ackEscalation'), { id: 'K3 F9' })).message, /\bid\b/);
  assert.deepEqual(router.validateBody(byOp('ackEscalation'), { note: 'on it' }), { note: 'on it' });
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
  const cases: Array<[string, Partial<HandRouteContext>, [string, unknown], unknown]> = [
    ['listChannels', {}, ['channels', {}], undefined],
    [
      'testChannel',
      { params: { name: 'team' }, body: { text: 'hello' } },
      ['test', { channel: 'team', text: 'hello' }],
      { action: 'api.channels.test', subject: 'team' },
    ],
    [
      'testChannel',
      { params: { name: 'team' }, body: {} },
      ['test', { channel: 'team' }],
      { action: 'api.channels.test', subject: 'team' },
    ],
    [
      'listMessages',
      { query: { box: 'history', limit: 20, before: 'h9' } },
      ['messages', { box: 'history', limit: 20, before: 'h9' }],
      undefined,
    ],
    [
      'sendNotification',
      { body: { text: 'Pump\nstopped', priority: 'critical', to: ['phone'] } },
      ['notify', { text: 'Pump\nstopped', priority: 'critical', to: ['phone'], source: 'api:ada' }],
      { action: 'api.messages.notify', subject: 'Pump stopped', detail: { priority: 'critical', to: ['phone'] } },
    ],
    ['listEscalations', { query: { all: false } }, ['escalations', {}], undefined],
    ['listEscalations', { query: { all: true } }, ['escalations', { all: true }], undefined],
    [
      'ackEscalation',
      { params: { id: 'K3F9' }, body: { note: 'on it' } },
      ['ack', { id: 'K3F9', by: 'user:ada', note: 'on it' }],
      { action: 'api.messages.ack', subject: 'K3F9' },
    ],
  ];
  for (const [op, over, call, audit] of cases) {
    const f = fakeRouteCtx(over);
    const out = await own(op).handler(f.ctx);
    assert.deepEqual(f.calls, [call], op);
    assert.deepEqual(f.audits, audit ? [audit] : [], op);
    assert.deepEqual(router.checkResponse(byOp(op), 200, out), [], op);
  }
  // each box's entries fit the listing's schema; a broken one does not (the check is not vacuous)
  for (const m of [OUTBOX, HISTORY, INBOX])
    assert.deepEqual(router.checkResponse(byOp('listMessages'), 200, { messages: [m] }), [], JSON.stringify(m));
  assert.notDeepEqual(router.checkResponse(byOp('listMessages'), 200, { messages: [{ id: 'x' }] }), []);
  assert.notDeepEqual(
    router.checkResponse(byOp('listChannels'), 200, { channels: [{ ...CHANNEL, health: 'fine' }] }),
    [],
  );
  assert.equal(sourceOf('cli'), 'cli');
  assert.equal(sourceOf('token:ci'), 'api:token:ci');
});

test("the protocol's schemas take the Hand's records and refuse what the Hand could not act on", () => {
  const ajv = createAjv('hand');
  const check = createAjv('check');
  for (const [kind, k] of Object.entries(protocol)) {
    const answer = check.compile(k.answer);
    assert.equal(answer(ANSWERS[kind]), true, `${kind}: ${JSON.stringify(answer.errors)}`);
  }
  const v = (kind: keyof typeof protocol) => ajv.compile(protocol[kind].request);
  const notify = v('notify');
  assert.equal(notify({ text: 'hi', priority: 'low', source: 'hand:alarm', tags: ['a'], needsAck: false }), true);
  assert.equal(notify({ text: 'hi', priority: 'urgent' }), false);
  assert.equal(notify({ text: 'hi', title: 't'.repeat(201) }), false);
  assert.equal(notify({ text: 'hi', cc: ['x'] }), false);
  const messages = v('messages');
  const m: Record<string, unknown> = { box: 'outbox' };
  assert.equal(messages(m), true);
  assert.equal(m.limit, 50, 'the default limit is filled in');
  assert.equal(messages({ box: 'outbox', limit: 0 }), false);
  assert.equal(messages({ box: 'spam' }), false);
  assert.equal(messages({}), false);
  const webhook = v('webhook');
  assert.equal(webhook({ channel: 'slack', headers: { 'x-slack-signature': 'v0=ab' }, body: '{}' }), true);
  assert.equal(webhook({ channel: 'slack', headers: { n: 5 }, body: '{}' }), false);
  assert.equal(webhook({ channel: 'slack', headers: {}, body: 'x'.repeat(MAX_WEBHOOK_BODY + 1) }), false);
  assert.equal(v('test')({ channel: 'phone' }), true);
  assert.equal(v('test')({}), false);
  assert.equal(v('ack')({ id: 'K3F9', by: 'telegram:ada', note: 'ok' }), true);
  assert.equal(v('ack')({ id: '' }), false);
  assert.equal(v('escalations')({ all: true }), true);
  assert.equal(v('stats')({ x: 1 }), false);
  // the answers are strict where the kernel reads them: a decision of an unknown kind is refused
  const nd = check.compile(protocol.notify.answer);
  assert.equal(nd({ id: 'n', decisions: [{ kind: 'maybe' }] }), false);
});

test('tools: notify.send, channels.list, messages.list, escalations.ack on their request kinds', () => {
  assert.deepEqual(
    surface.tools!.map((t) => [t.name, t.kind, t.readOnly === true]),
    [
      ['notify.send', 'notify', false],
      ['channels.list', 'channels', true],
      ['messages.list', 'messages', true],
      ['escalations.ack', 'ack', false],
    ],
  );
});

// ---- metrics --------------------------------------------------------------------------------------------------------

test('metrics: the talon_comms families from the stats and channels answers', async () => {
  const f = fakeRouteCtx();
  const families = await surface.metrics!.collect({ hand: 'messenger', request: f.ctx.request });
  assert.deepEqual(f.calls.map(([k]) => k).sort(), ['channels', 'stats']);
  const get = (n: string) => {
    const fam = families.find((x) => x.name === n);
    assert.ok(fam, n);
    return fam;
  };
  assert.deepEqual(
    families.map((x) => [x.name, x.type]),
    [
      ['talon_comms_messages_total', 'counter'],
      ['talon_comms_queued', 'gauge'],
      ['talon_comms_held', 'gauge'],
      ['talon_comms_received_total', 'counter'],
      ['talon_comms_refused_total', 'counter'],
      ['talon_comms_escalations_open', 'gauge'],
      ['talon_comms_channel_up', 'gauge'],
      ['talon_comms_deduped_total', 'counter'],
      ['talon_comms_unrouted_total', 'counter'],
    ],
  );
  const samples = (n: string) =>
    get(n).samples.map((s) => [Object.values(s.labels ?? {}).join('/'), s.value] as [string, number]);
  assert.deepEqual(samples('talon_comms_messages_total'), [
    ['phone/sent', 10],
    ['phone/failed', 1],
    ['team/sent', 0],
    ['team/failed', 0],
    ['/expired', 2],
  ]);
  assert.deepEqual(samples('talon_comms_queued'), [
    ['phone', 2],
    ['team', 5],
  ]);
  assert.deepEqual(samples('talon_comms_channel_up'), [
    ['phone', 1],
    ['team', 0],
  ]);
  assert.deepEqual(samples('talon_comms_received_total'), [
    ['phone', 4],
    ['team', 0],
  ]);
  assert.equal(get('talon_comms_held').samples[0]!.value, 1);
  assert.equal(get('talon_comms_refused_total').samples[0]!.value, 3);
  assert.equal(get('talon_comms_escalations_open').samples[0]!.value, 1);
  assert.equal(get('talon_comms_deduped_total').samples[0]!.value, 5);
  assert.equal(get('talon_comms_unrouted_total').samples[0]!.value, 1);
  for (const fam of families) assert.match(fam.name, /^talon_comms_[a-z_]+$/);
  // a Hand that counts expired per channel gets it per channel
  const per = fakeRouteCtx({
    request: (async (kind: string) =>
      kind === 'stats'
        ? { ...STATS, byChannel: { phone: { ...STATS.byChannel.phone, expired: 2 } } }
        : { channels: [CHANNEL] }) as HandRouteContext['request'],
  });
  const fams2 = await surface.metrics!.collect({ hand: 'messenger', request: per.ctx.request });
  assert.deepEqual(
    fams2[0]!.samples.map((s) => `${s.labels!.channel}/${s.labels!.outcome}=${s.value}`),
    ['phone/sent=10', 'phone/failed=1', 'phone/expired=2'],
  );
});

// ---- the CLI --------------------------------------------------------------------------------------------------------

function io(env: Record<string, string | undefined> = {}, cwd = process.cwd()) {
  const out: string[] = [];
  const err: string[] = [];
  const o: Io = { out: (s) => void out.push(s), err: (s) => void err.push(s), env, cwd };
  return { io: o, out, err };
}

/** a fake daemon: records the requests, answers from `answers` by `METHOD path` (query left out) */
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
  'GET /api/v1/channels': ANSWERS.channels,
  'POST /api/v1/channels/team/test': ANSWERS.test,
  'POST /api/v1/channels/phone/test': { ok: true, platformIds: ['p1', 'p2'] },
  'POST /api/v1/messages': DECISIONS,
  'GET /api/v1/messages': { messages: [OUTBOX], next: 'o0' },
  'GET /api/v1/messages/escalations': ANSWERS.escalations,
  'POST /api/v1/messages/escalations/K3F9/ack': ANSWERS.ack,
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

test('`talon channels list`: a table of name, kind, health, queued and last error; --json prints the channels', async () => {
  const r = args([]);
  assert.equal(await listCommand(r.a), 0);
  const lines = r.out.join('').trimEnd().split('\n');
  assert.match(lines[0]!, /^NAME\s+KIND\s+HEALTH\s+QUEUED\s+LAST ERROR$/);
  assert.match(lines[1]!, /^phone\s+ntfy \(in\+out\)\s+ok\s+2 \(\+1 held\)\s+-$/);
  assert.match(lines[2]!, /^team\s+telegram \(in\+out\)\s+auth\s+5\s+Unauthorized \(401\): check the bot token$/);
  const open = args([], {}, { 'GET /api/v1/channels': { channels: [{ ...BROKEN, health: 'open' }] } });
  await listCommand(open.a);
  assert.match(open.out.join(''), /team\s+telegram \(in\+out\)\s+open until 2023-11-14T22:14:20Z\s+5/);
  assert.deepEqual(r.calls, [['GET', '/api/v1/channels', undefined]]);
  const j = args([], { json: true });
  assert.equal(await listCommand(j.a), 0);
  assert.deepEqual(JSON.parse(j.out.join('')), [CHANNEL, BROKEN]);
  const none = args([], {}, { 'GET /api/v1/channels': { channels: [] } });
  assert.equal(await listCommand(none.a), 0);
  assert.match(none.out.join(''), /^no channels/);
});

test('`talon channels test NAME`: exit 0 with the platform ids, 1 with the error and its kind', async () => {
  const ok = args(['phone'], { text: 'hello' });
  assert.equal(await testCommand(ok.a), 0);
  assert.deepEqual(ok.calls, [['POST', '/api/v1/channels/phone/test', { text: 'hello' }]]);
  assert.equal(ok.out.join(''), 'sent on phone (p1, p2)\n');
  const bad = args(['team']);
  assert.equal(await testCommand(bad.a), 1);
  assert.deepEqual(bad.calls, [['POST', '/api/v1/channels/team/test', {}]]);
  assert.equal(bad.err.join(''), 'team: not sent: Unauthorized (401) (auth)\n');
});

test('`talon channels notify TEXT`: options become the body; the decisions and the ack id are printed', async () => {
  const r = args(['Pump stopped'], {
    priority: 'critical',
    to: 'phone, mail:ada@example.org',
    title: 'Cellar',
    tag: 'pump,,cellar',
    ack: true,
  });
  assert.equal(await notifyCommand(r.a), 0);
  assert.deepEqual(r.calls, [
    [
      'POST',
      '/api/v1/messages',
      {
        text: 'Pump stopped',
        priority: 'critical',
        title: 'Cellar',
        to: ['phone', 'mail:ada@example.org'],
        tags: ['pump', 'cellar'],
        needsAck: true,
      },
    ],
  ]);
  const out = r.out.join('');
  assert.match(
    out,
    /^notification n3\n {2}queued for phone \[default\]\n {2}held for mail:ada@example\.org until 2023-11-14T23:13:20Z \(digest\) \[digest\]\n/,
  );
  assert.match(out, /acknowledge with: talon channels ack Q7TX\n$/);
  assert.equal(
    decisionWords({ kind: 'drop', reason: 'duplicate', group: 'n1' }),
    'dropped: duplicate (counted into n1)',
  );
  // usage errors before any request
  for (const [values, re] of [
    [{ priority: 'urgent' }, /--priority must be one of low, normal, high, critical, not "urgent"/],
    [{ to: ' , ' }, /--to needs targets/],
    [{ title: 'x'.repeat(201) }, /--title/],
  ] as const) {
    const u = args(['hi'], values);
    await assert.rejects(notifyCommand(u.a), (e: Error) => e instanceof Usage && re.test(e.message));
    assert.deepEqual(u.calls, []);
  }
  const empty = args(['  ']);
  assert.throws(() => notifyBody(empty.a), /TEXT must not be empty/);
});

test('`talon channels messages`: --box and --limit checked; each box has its table', async () => {
  const r = args([], { box: 'outbox', limit: '5' });
  assert.equal(await messagesCommand(r.a), 0);
  assert.deepEqual(r.calls, [['GET', '/api/v1/messages?box=outbox&limit=5', undefined]]);
  const lines = r.out.join('').trimEnd().split('\n');
  assert.match(lines[0]!, /^CREATED\s+CHANNEL\s+STATE\s+TRIES\s+NEXT\s+LAST ERROR\s+TEXT$/);
  assert.match(
    lines[1]!,
    /^2023-11-14T22:13:20Z\s+team\s+queued\s+3\s+2023-11-14T22:15:00Z\s+Unauthorized \(401\)\s+disk full$/,
  );
  assert.match(lines[2]!, /more: older messages past o0/);
  const h = args([], {}, { 'GET /api/v1/messages': { messages: [HISTORY] } });
  assert.equal(await messagesCommand(h.a), 0);
  assert.equal(h.calls[0]![1], '/api/v1/messages?box=history&limit=20');
  assert.match(h.out.join(''), /phone\s+sent\s+1\s+normal\s+Backup/);
  const i = args([], { box: 'inbox' }, { 'GET /api/v1/messages': { messages: [INBOX] } });
  assert.equal(await messagesCommand(i.a), 0);
  assert.match(i.out.join(''), /Ada \(123\)\s+allowed\s+\/status\s+all well/);
  for (const [values, re] of [
    [{ limit: '0' }, /--limit must be from 1 to 500, not 0/],
    [{ limit: 'ten' }, /--limit must be a whole number/],
    [{ limit: '501' }, /--limit must be from 1 to 500/],
    [{ box: 'sent' }, /--box must be one of outbox, history, inbox/],
  ] as const) {
    const u = args([], values);
    await assert.rejects(messagesCommand(u.a), (e: Error) => e instanceof Usage && re.test(e.message));
    assert.deepEqual(u.calls, []);
  }
});

test('`talon channels escalations` and `ack ID`', async () => {
  const e = args([]);
  assert.equal(await escalationsCommand(e.a), 0);
  assert.match(
    e.out.join(''),
    /^ACK ID\s+PRIORITY\s+STEP\s+NEXT STEP\s+STATE\s+TEXT\nK3F9\s+critical\s+1\/2\s+2023-11-14T22:18:20Z\s+waiting\s+pump stopped\n$/,
  );
  const all = args([], { all: true });
  await escalationsCommand(all.a);
  assert.equal(all.calls[0]![1], '/api/v1/messages/escalations?all=true');
  const a = args(['K3F9'], { note: 'on it' });
  assert.equal(await ackCommand(a.a), 0);
  assert.deepEqual(a.calls, [['POST', '/api/v1/messages/escalations/K3F9/ack', { note: 'on it' }]]);
  assert.equal(a.out.join(''), 'acknowledged K3F9: no further step is notified\n');
  const again = args(
    ['K3F9'],
    {},
    { 'POST /api/v1/messages/escalations/K3F9/ack': { escalation: ACKED, already: true } },
  );
  await ackCommand(again.a);
  assert.match(again.out.join(''), /K3F9 was already acknowledged by user:ada/);
  const bad = args(['K3/../x']);
  await assert.rejects(ackCommand(bad.a), (err: Error) => err instanceof Usage && /ack id/.test(err.message));
  assert.deepEqual(bad.calls, []);
});

test('`talon channels` is the alias of `talon communication`; usage errors exit 2 before the daemon is reached', async () => {
  assert.equal(surface.cli!.alias, 'channels');
  assert.deepEqual(surface.cli!.topLevel, ['notify']);
  for (const name of ['channels', 'communication']) {
    const t = io();
    assert.equal(await main([name, '--help'], t.io, [surface]), 0);
    const text = t.out.join('');
    for (const c of ['list', 'test', 'notify', 'messages', 'escalations', 'ack'])
      assert.match(text, new RegExp(`\\b${c}\\b`));
  }
  const h = io();
  assert.equal(await main(['channels', 'notify', '--help'], h.io, [surface]), 0);
  for (const o of ['--priority', '--to', '--title', '--tag', '--ack', '--json'])
    assert.match(h.out.join(''), new RegExp(o));
  const empty = mkdtempSync(join(tmpdir(), 'talon-comms-'));
  try {
    const p = io();
    assert.equal(await main(['channels', 'notify', 'hi', '--priority', 'urgent', '--data', empty], p.io, [surface]), 2);
    assert.match(p.err.join(''), /--priority must be one of low, normal, high, critical, not "urgent"/);
    const l = io();
    assert.equal(await main(['channels', 'messages', '--limit', '0', '--data', empty], l.io, [surface]), 2);
    assert.match(l.err.join(''), /--limit must be from 1 to 500/);
    const miss = io();
    assert.equal(await main(['channels', 'test'], miss.io, [surface]), 2, 'a missing NAME is a usage error');
    // a good line reaches for the daemon: none runs in an empty data folder
    const nr = io();
    assert.equal(await main(['channels', 'list', '--data', empty], nr.io, [surface]), 1);
    assert.match(nr.err.join(''), /NOT_RUNNING/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
