/**
 * The Lead Generation Hand (hands/leads/index.ts) end to end on the fixture web (test/fixtures/web/leads.ts: two
 * directories, one forbidden by robots.txt, company sites) and the CRM fake (test/fixtures/platforms/crm.ts), over
 * real HTTP: a scan stores each lead once (deduped across directories and spellings), enriched with each field's
 * source and scored; the qualified ones reach HubSpot once; a second scan adds and delivers nothing; a CRM outage
 * during a scan then recovery delivers each qualified lead exactly once; an import through the request takes the same
 * path; export gives CSV; a robots-forbidden source is counted; a scan asked twice at once runs once; tasks and the
 * scheduler job; settings mistakes are named by field.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import leadsHand, { LeadsHand, leadKey, scanJobId } from '../../../hands/leads/index.ts';
import { manifestSchema } from '../../../runtime/core/manifest-schema.ts';
import { parseSettings, settingsSchema } from '../../../hands/leads/settings.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import type { Lead } from '../../../hands/leads/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { type CrmFake, startCrm } from '../../fixtures/platforms/crm.ts';
import { type FixtureWeb, startWeb } from '../../fixtures/web/server.ts';
import { CSV_IMPORT, DIRECTORY_TRUTH, EXPO_SELECTORS, FAIR_SELECTORS, leadsSites } from '../../fixtures/web/leads.ts';
import { webFetch } from '../../helpers/web-fetch.ts';
import type { MemStore } from '../../helpers/mem-store.ts';
import { type FakeCtx, fakeCtx } from '../scheduling/fake-ctx.ts';

let web: FixtureWeb;
let crm: CrmFake;
const open: Array<{ f: FakeCtx; hand: LeadsHand }> = [];

before(async () => {
  web = await startWeb(leadsSites());
  crm = await startCrm();
});
after(async () => {
  await web.close();
  await crm.close();
});
afterEach(async () => {
  for (const { f, hand } of open.splice(0)) {
    await hand.stop();
    f.close();
  }
  crm.hubspot.companies.clear();
  crm.requests.length = 0;
  crm.outage(false);
  crm.failNext(0, 0);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** polls `cond` every 50 ms for at most `ms` */
async function until(cond: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(50);
  }
}

function sources(): unknown[] {
  return [
    { name: 'expo', list: web.url('expo-directory.example', '/exhibitors'), selectors: EXPO_SELECTORS, next: 'a.next' },
    { name: 'fair', list: web.url('fair-members.example', '/members'), selectors: FAIR_SELECTORS },
    {
      name: 'closed',
      list: web.url('closed-directory.example', '/members'),
      selectors: { item: 'li.exhibitor', fields: { company: 'h3', website: 'a.site@href' } },
    },
  ];
}

function settings(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    criteria: { industries: ['Robotics'], locations: ['Berlin', 'Stuttgart'] },
    sources: sources(),
    threshold: 40,
    crm: [{ name: 'hubspot', kind: 'hubspot', url: crm.url, secret: 'hs' }],
    politenessMs: 0,
    timeoutMs: 1000,
    scheduler: null,
    ...extra,
  };
}

/** a Hand on a fake context: the fixture web for every name, the CRM fake on its own port, secrets and dns.mx */
function makeHand(s: Record<string, unknown>, opts: { store?: MemStore; llm?: boolean } = {}) {
  const f = fakeCtx({ name: 'leads', ...(opts.llm && { grants: { llm: { tokensPerHour: 100_000 } } }) });
  if (opts.store) (f.ctx as unknown as { store: MemStore }).store = opts.store;
  (f.ctx as { settings: unknown }).settings = s;
  const webF = webFetch(web.port).fetch;
  const crmF = webFetch(crm.port).fetch;
  f.ctx.fetch = ((input: string | URL | { url: string }, init?: never) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    return url.port === String(crm.port) ? crmF(input, init) : webF(input, init);
  }) as typeof f.ctx.fetch;
  const calls: string[] = [];
  f.ctx.call = (async (method: string, ...args: unknown[]) => {
    calls.push(method);
    if (method === 'secrets.get') return args[0] === 'hs' ? crm.hubspot.token : null;
    if (method === 'dns.mx') return [{ exchange: `mx.${String(args[0])}`, priority: 10 }];
    throw new TalonError('NOT_FOUND', `no kernel service ${method}`);
  }) as typeof f.ctx.call;
  const hand = new LeadsHand(f.ctx, { outbox: { baseDelayMs: 100, maxDelayMs: 400, random: () => 0.5 } });
  open.push({ f, hand });
  return { f, hand, store: f.ctx.store as MemStore, calls };
}

const storedIds = (store: MemStore): string[] =>
  [...store.map.keys()]
    .filter((k) => k.startsWith('lead/'))
    .map((k) => k.slice('lead/'.length))
    .sort();

/** HubSpot writes (create or update) per domain, from the fake's request log */
function hubspotWrites(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of crm.requests) {
    if (r.method === 'POST' && r.path === '/crm/v3/objects/companies') {
      const d = (JSON.parse(r.body) as { properties: { domain: string } }).properties.domain;
      m.set(d, (m.get(d) ?? 0) + 1);
    }
    if (r.method === 'PATCH' && r.path.startsWith('/crm/v3/objects/companies/')) {
      const d = (JSON.parse(r.body) as { properties: { domain?: string } }).properties.domain ?? r.path;
      m.set(d, (m.get(d) ?? 0) + 1);
    }
  }
  return m;
}

const QUALIFIED = ['d:acme-robotics.example', 'd:juniper-robotics.example'];

describe('a scan of the directories', () => {
  it('stores each lead once, enriched and scored; delivers the qualified ones to HubSpot once; counts robots', async () => {
    const { f, hand, store } = makeHand(settings());
    await hand.start();
    const r = await hand.scan({});
    assert.deepEqual(storedIds(store), DIRECTORY_TRUTH.map((t) => t.id).sort());
    assert.equal(r.new, DIRECTORY_TRUTH.length);
    assert.ok(r.found > DIRECTORY_TRUTH.length, `duplicates were found and merged (found ${r.found})`);
    assert.ok((r.errors as Record<string, number>).robots! >= 1, `robots counted: ${JSON.stringify(r.errors)}`);
    assert.equal(web.hits('closed-directory.example', '/members'), 0, 'a forbidden page is never fetched');
    assert.ok(r.enriched > 0);

    const acme = store.map.get(leadKey('d:acme-robotics.example')) as Lead;
    assert.equal(acme.company?.value, 'Acme Robotics');
    assert.deepEqual(acme.sources.sort(), ['expo']);
    assert.ok(acme.enrichedAt !== undefined);
    assert.ok(
      acme.mx.some((m) => m.value === 'mx.acme-robotics.example' && m.source === 'dns:MX acme-robotics.example'),
      JSON.stringify(acme.mx),
    );
    const cobalt = store.map.get(leadKey('d:cobalt-analytics.example')) as Lead;
    assert.deepEqual(cobalt.sources.sort(), ['expo', 'fair'], 'one lead from both directories');
    assert.ok(cobalt.enrichedAt !== undefined);
    assert.equal(cobalt.description?.value, 'Dashboards for factory data.');
    assert.match(cobalt.description!.source, /^http:\/\/cobalt-analytics\.example:\d+\/$/);
    const hello = cobalt.emails.find((e) => e.value === 'hello@cobalt-analytics.example');
    assert.ok(hello, `the public e-mail from the about page: ${JSON.stringify(cobalt.emails)}`);
    assert.match(hello.source, /^http:\/\/cobalt-analytics\.example:\d+\/about$/);
    assert.ok(cobalt.technologies.length > 0, 'technologies detected from the HTML');

    const qualified = storedIds(store).filter((id) => (store.map.get(leadKey(id)) as Lead).status === 'qualified');
    assert.deepEqual(qualified, QUALIFIED);
    assert.equal(r.qualified, 2);
    for (const id of qualified) {
      const l = store.map.get(leadKey(id)) as Lead;
      assert.ok(l.score >= 40 && l.score <= 100);
      assert.ok(l.reasons.some((x) => x.startsWith('industry: Robotics')));
    }
    assert.equal(r.enqueued, 2);
    await until(() => crm.hubspot.companies.size === 2);
    assert.deepEqual([...hubspotWrites().entries()].sort(), [
      ['acme-robotics.example', 1],
      ['juniper-robotics.example', 1],
    ]);
    await until(() => f.audits.filter((a) => a.action === 'delivered').length === 2);
    assert.deepEqual(
      f.audits
        .filter((a) => a.action === 'delivered')
        .map((a) => a.subject)
        .sort(),
      QUALIFIED.map((id) => `hubspot/${id}`),
    );
    assert.equal(f.audits.filter((a) => a.action === 'scan').length, 1);
    assert.deepEqual(
      f.audits
        .filter((a) => a.action === 'qualified')
        .map((a) => a.subject)
        .sort(),
      ['acme-robotics.example', 'juniper-robotics.example'],
    );
    const pub = f.published.filter((p) => p.topic === 'leads/qualified');
    assert.equal(pub.length, 2);
    assert.equal(pub[0]!.opts?.qos, 1);
    assert.ok(['acme-robotics.example', 'juniper-robotics.example'].includes((pub[0]!.payload as Lead).domain!));

    // the second scan: nothing new, nothing delivered again
    const requestsBefore = crm.requests.length;
    const r2 = await hand.scan({});
    assert.equal(r2.new, 0);
    assert.equal(r2.updated, 0);
    assert.equal(r2.enqueued, 0);
    assert.equal(r2.enriched, 0, 'enriched leads are not read again before refreshDays');
    assert.deepEqual(storedIds(store), DIRECTORY_TRUTH.map((t) => t.id).sort());
    await hand.tick();
    assert.equal(crm.requests.length, requestsBefore, 'no request to the CRM');
    assert.equal(f.audits.filter((a) => a.action === 'qualified').length, 2);
    assert.equal(f.audits.filter((a) => a.action === 'delivered').length, 2);
    const stats = await hand.stats();
    assert.equal(stats.scans, 2);
    assert.equal(stats.leads.qualified, 2);
    assert.equal(stats.leads.qualified + stats.leads.unqualified + stats.leads.excluded, DIRECTORY_TRUTH.length);
    assert.deepEqual(stats.deliveries, { hubspot: { pending: 0, sent: 2, failed: 0 } });
    assert.equal(stats.delivered, 2);
  });

  it('a CRM outage during the scan, then recovery: each qualified lead delivered exactly once', async () => {
    const { f, hand } = makeHand(settings({ sources: sources().slice(0, 1) }));
    await hand.start();
    crm.outage(true);
    const r = await hand.scan({});
    assert.equal(r.enqueued, 2);
    assert.equal(crm.hubspot.companies.size, 0);
    const pending = await hand.deliveries({ limit: 50, state: 'pending' });
    assert.deepEqual(
      pending.deliveries.map((d) => d.key).sort(),
      QUALIFIED.map((id) => `hubspot/${id}`),
    );
    // ticks during the outage: the target is probed, nothing is lost or failed
    for (let i = 0; i < 3; i++) {
      await sleep(150);
      await hand.tick();
    }
    assert.equal((await hand.deliveries({ limit: 50, state: 'failed' })).deliveries.length, 0);
    crm.outage(false);
    await until(async () => {
      await hand.tick();
      return crm.hubspot.companies.size === 2;
    });
    for (let i = 0; i < 3; i++) {
      await sleep(100);
      await hand.tick();
    }
    assert.deepEqual([...hubspotWrites().entries()].sort(), [
      ['acme-robotics.example', 1],
      ['juniper-robotics.example', 1],
    ]);
    const sent = await hand.deliveries({ limit: 50, state: 'sent' });
    assert.equal(sent.deliveries.length, 2);
    assert.equal(f.audits.filter((a) => a.action === 'delivered').length, 2);
    assert.equal(f.audits.filter((a) => a.action === 'delivery.failed').length, 0);
  });

  it('a scan asked while one runs joins it; an unknown source is NOT_FOUND', async () => {
    const { hand, store } = makeHand(settings({ crm: [], enrich: { enabled: false } }));
    await hand.start();
    const hits = web.hits('expo-directory.example', '/exhibitors');
    const [a, b] = await Promise.all([hand.scan({}), hand.scan({})]);
    assert.equal(a.new, DIRECTORY_TRUTH.length);
    assert.equal(b.joined, true);
    assert.equal(b.new, a.new);
    assert.equal(web.hits('expo-directory.example', '/exhibitors'), hits + 1, 'one scan read the list page');
    assert.equal(storedIds(store).length, DIRECTORY_TRUTH.length);
    await assert.rejects(hand.scan({ source: 'nope' }), (e: TalonError) => e.code === 'NOT_FOUND');
    const one = await hand.scan({ source: 'fair' });
    assert.deepEqual(one.sources, ['fair']);
    assert.equal(one.new, 0);
  });
});

describe('imports and exports', () => {
  const MAP = {
    Firma: 'company',
    Webseite: 'website',
    'E-Mail': 'email',
    Ort: 'location',
    Branche: 'industry',
    Mitarbeiter: 'size',
  } as const;

  it('an import through the request goes the same way as a source; export gives the CSV', async () => {
    const { f, hand, store } = makeHand(settings({ sources: [], enrich: { enabled: false } }));
    await hand.start();
    const r = await hand.import({ format: 'csv', data: CSV_IMPORT, source: 'fair-list', map: MAP });
    assert.equal(r.new, 3);
    assert.deepEqual(storedIds(store), ['d:acme-robotics.example', 'd:rhein-tools.example', 'e:solo.dev@outlook.com']);
    const rhein = store.map.get(leadKey('d:rhein-tools.example')) as Lead;
    assert.equal(rhein.company?.value, 'Rhein Tools, GmbH');
    assert.equal(rhein.size?.value, 120);
    assert.deepEqual(rhein.sources, ['fair-list']);
    assert.equal((store.map.get(leadKey('d:acme-robotics.example')) as Lead).status, 'qualified');
    await until(() => crm.hubspot.companies.size === 1);
    assert.equal(f.audits.filter((a) => a.action === 'delivered').length, 1);

    // the same file again: nothing new, nothing sent again
    const again = await hand.import({ format: 'csv', data: CSV_IMPORT, source: 'fair-list', map: MAP });
    assert.equal(again.new, 0);
    assert.equal(again.enqueued, 0);

    const all = await hand.export({});
    assert.equal(all.count, 3);
    const lines = all.csv.trim().split(/\r?\n/);
    assert.equal(lines.length, 4, 'a header and three rows');
    assert.ok(all.csv.includes('"Rhein Tools, GmbH"'), 'a comma is quoted');
    const q = await hand.export({ status: 'qualified' });
    assert.equal(q.count, 1);
    assert.ok(q.csv.includes('acme-robotics.example'));
    assert.ok(!q.csv.includes('rhein-tools'));

    const page = await hand.leads({ limit: 2 });
    assert.equal(page.leads.length, 2);
    assert.equal(page.next, 'd:rhein-tools.example');
    const rest = await hand.leads({ limit: 2, after: page.next! });
    assert.deepEqual(
      rest.leads.map((l) => l.id),
      ['e:solo.dev@outlook.com'],
    );
    assert.equal(rest.next, undefined);
    assert.deepEqual(
      (await hand.leads({ limit: 50, q: 'rhein' })).leads.map((l) => l.id),
      ['d:rhein-tools.example'],
    );
    assert.deepEqual(
      (await hand.leads({ limit: 50, minScore: 40 })).leads.map((l) => l.id),
      ['d:acme-robotics.example'],
    );
    assert.equal((await hand.lead('d:rhein-tools.example')).id, 'd:rhein-tools.example');
    await assert.rejects(hand.lead('d:nowhere.example'), (e: TalonError) => e.code === 'NOT_FOUND');
  });

  it('a CRM refusing a lead for good: failed, kept, retried by hand', async () => {
    const { f, hand } = makeHand(
      settings({
        sources: [],
        enrich: { enabled: false },
        crm: [{ name: 'hubspot', kind: 'hubspot', url: crm.url, secret: 'wrong' }],
      }),
    );
    await hand.start();
    await hand.import({ format: 'csv', data: CSV_IMPORT, map: MAP });
    await until(async () => (await hand.deliveries({ limit: 10, state: 'failed' })).deliveries.length === 1);
    assert.equal(f.audits.filter((a) => a.action === 'delivery.failed').length, 1);
    assert.equal(f.audits.find((a) => a.action === 'delivery.failed')?.subject, 'hubspot/d:acme-robotics.example');
    const again = await hand.retry('hubspot/d:acme-robotics.example');
    assert.equal(again.delivery.key, 'hubspot/d:acme-robotics.example');
    await assert.rejects(hand.retry('hubspot/d:nowhere.example'), (e: TalonError) => e.code === 'NOT_FOUND');
  });
});

describe('tasks, the schedule and the settings', () => {
  it('a scan task is answered on the asker’s reply topic', async () => {
    const { f, hand } = makeHand(settings({ crm: [], enrich: { enabled: false }, sources: sources().slice(1, 2) }));
    await hand.start();
    f.deliver('hands/leads/tasks', { id: 't1', replyTo: 'hands/scheduler/replies', task: { op: 'scan' } });
    f.deliver('hands/leads/tasks', { id: 't2', replyTo: 'hands/scheduler/replies', task: { op: 'dance' } });
    await until(() => f.published.filter((p) => p.topic === 'hands/scheduler/replies').length === 2);
    const replies = f.published
      .filter((p) => p.topic === 'hands/scheduler/replies')
      .map((p) => p.payload as { id: string; ok: boolean; result?: { new: number }; error?: { code: string } });
    const t1 = replies.find((x) => x.id === 't1')!;
    assert.equal(t1.ok, true);
    assert.equal(t1.result?.new, 8);
    assert.equal(replies.find((x) => x.id === 't2')?.error?.code, 'BAD_REQUEST');
  });

  it('schedule: the Scheduling Hand gets a cron job asking this Hand for a scan', async () => {
    const { f, hand } = makeHand(settings({ schedule: '0 6 * * 1-5', scheduler: 'scheduler', crm: [] }));
    const asked: unknown[] = [];
    await f.ctx.bus.subscribe('hands/scheduler/tasks', (m) => {
      const req = m.json as { id: string; replyTo: string; task: unknown };
      asked.push(req.task);
      f.ctx.bus.publish(req.replyTo, { id: req.id, ok: true, result: { id: scanJobId('leads') } });
    });
    await hand.start();
    await until(() => asked.length === 1);
    assert.deepEqual(asked[0], {
      op: 'put',
      job: {
        id: 'leads-leads-scan',
        description: 'Lead Generation (leads): scan the sources',
        trigger: { cron: '0 6 * * 1-5' },
        action: { ask: { hand: 'leads', task: { op: 'scan' }, timeout: '10m' } },
      },
    });
    await until(async () => (await f.ctx.store.get('schedule/job')) !== undefined);
  });

  it('no scheduler answers: the Hand scans on its own timer', async () => {
    const f = fakeCtx({ name: 'leads' });
    (f.ctx as { settings: unknown }).settings = settings({
      crm: [],
      enrich: { enabled: false },
      sources: [],
      schedule: '* * * * * *',
      scheduler: 'scheduler',
    });
    const hand = new LeadsHand(f.ctx, { schedulerTimeoutMs: 200 });
    open.push({ f, hand });
    await hand.start();
    await until(() => f.audits.some((a) => a.action === 'scan'), 5000);
    assert.ok(
      f.logs.some(([level, m]) => level === 'warn' && /did not take the job leads-leads-scan.*own timer/.test(m)),
    );
  });

  it('a Hand with a broken source and CRM target names them and runs with the rest', async () => {
    const { f, hand, store } = makeHand(
      settings({
        sources: [...sources().slice(1, 2), { name: 'broken', list: 'not a url', selectors: FAIR_SELECTORS }],
        crm: [{ name: 'hs', kind: 'salesforce' }],
        enrich: { enabled: false },
      }),
    );
    await hand.start();
    const warnings = f.logs.filter(([l]) => l === 'warn').map(([, m]) => m);
    assert.ok(
      warnings.some((m) => m.includes('sources[1].url')),
      warnings.join('\n'),
    );
    assert.ok(
      warnings.some((m) => m.includes('crm[0]')),
      warnings.join('\n'),
    );
    const r = await hand.scan({});
    assert.deepEqual(r.sources, ['fair']);
    assert.equal(storedIds(store).length, 8);
  });

  it('the settings: mistakes named by field, the rest kept', () => {
    const validate = createAjv('hand').compile(settingsSchema as object);
    const example = {
      criteria: { industries: ['Robotics'], size: { min: 10, max: 500 }, exclude: { domains: ['competitor.example'] } },
      sources: [{ list: 'https://x.example/list', selectors: { item: 'li', fields: { company: 'h3' } } }],
      crm: [{ name: 'hs', kind: 'hubspot', secret: 'hs' }],
      schedule: '0 6 * * 1-5',
      enrich: { maxPerScan: 20 },
      useModel: { judge: true },
    };
    assert.ok(validate(example), JSON.stringify(validate.errors));
    assert.equal((example as { threshold?: number }).threshold, 60, 'the default filled in');
    assert.ok(!validate({ threshold: 101 }));
    assert.ok(!validate({ criteria: { industry: ['x'] } }));
    const p = parseSettings({
      criteria: { industries: ['Robotics', ''], size: { min: 500, max: 10 } },
      sources: [
        { name: 'ok', list: 'https://x.example/list', selectors: { item: 'li', fields: { company: 'h3' } } },
        { name: 'bad', list: 'ftp://x.example/' },
        { name: 'ok', feed: 'https://x.example/feed.xml' },
      ],
      crm: [
        { name: 'hs', kind: 'hubspot', secret: 'hs' },
        { name: 'nope', kind: 'salesforce' },
      ],
      schedule: 'every day',
      threshold: 60,
      useModel: { judge: true },
    });
    assert.deepEqual(
      p.sources.map((s) => s.name),
      ['ok'],
    );
    assert.deepEqual(
      p.crm.map((c) => c.name),
      ['hs'],
    );
    assert.deepEqual(p.criteria.industries, ['Robotics']);
    assert.equal(p.criteria.size, undefined);
    assert.equal(p.schedule, undefined);
    assert.deepEqual(p.useModel, { extract: false, judge: false });
    const text = p.problems.join('\n');
    for (const field of [
      'criteria.industries[1]',
      'criteria.size',
      'sources[1].',
      'sources[2].name',
      'crm[1]',
      'schedule:',
      'useModel:',
    ])
      assert.ok(text.includes(field), `${field} named in:\n${text}`);
    const withLlm = parseSettings({ useModel: { judge: true } }, { llm: true });
    assert.deepEqual(withLlm.useModel, { extract: false, judge: true });
    assert.equal(withLlm.threshold, 60);
    assert.deepEqual(withLlm.enrich, { enabled: true, maxPerScan: 50, refreshDays: 30 });
  });

  it('the manifest: id leads, its grants as the issue says, valid for the kernel', () => {
    const m = structuredClone((leadsHand as { manifest: Record<string, unknown> }).manifest);
    const validate = createAjv('hand').compile(manifestSchema as object);
    assert.ok(validate(m), JSON.stringify(validate.errors));
    assert.equal(m.id, 'leads');
    assert.deepEqual(m.capabilities, {
      bus: {
        publish: ['leads/#', 'notify/+', 'hands/+/tasks', 'hands/+/replies'],
        subscribe: ['hands/leads/tasks', 'hands/leads/replies'],
      },
    });
    const opt = m.optionalCapabilities as Record<string, unknown>;
    assert.deepEqual(opt.tools, ['web.search']);
    assert.deepEqual(opt.secrets, ['*']);
    assert.ok(opt.llm);
  });

  it("the model's judgement: an answer that is not JSON is counted, the rules score alone", async () => {
    const { f, hand, store } = makeHand(
      settings({ sources: [], crm: [], enrich: { enabled: false }, useModel: { judge: true } }),
      { llm: true },
    );
    let asked = 0;
    f.ctx.llm.chat = (async () => {
      asked++;
      return {
        provider: 'fake',
        model: 'fake',
        text: 'Sure! I think it is a great lead.',
        toolCalls: [],
        usage: { inputTokens: 1, outputTokens: 1 },
        finishReason: 'stop',
      };
    }) as typeof f.ctx.llm.chat;
    await hand.start();
    const r = await hand.import({
      format: 'json',
      data: JSON.stringify([
        { company: 'Acme Robotics', website: 'acme-robotics.example', location: 'Berlin', industry: 'Robotics' },
      ]),
    });
    assert.ok(asked >= 1);
    assert.ok(
      Object.keys(r.errors).some((k) => k.startsWith('model')),
      JSON.stringify(r.errors),
    );
    const acme = store.map.get(leadKey('d:acme-robotics.example')) as Lead;
    assert.equal(acme.model, undefined);
    assert.equal(acme.score, 40);
    assert.equal(acme.status, 'qualified');
    assert.ok((await hand.stats()).modelErrors >= 1);
  });
});
