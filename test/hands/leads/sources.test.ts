import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { HandChatRequest, HandContext } from '../../../hands/sdk/types.ts';
import { Fetcher } from '../../../hands/sdk/web/index.ts';
import { leadIdOf, mergeLead } from '../../../hands/leads/normalize.ts';
import { type LeadSourceEnv, parseLeadSource, readLeadSource } from '../../../hands/leads/sources.ts';
import type { Lead, LeadSource, RawLead } from '../../../hands/leads/types.ts';
import {
  CSV_IMPORT,
  DIRECTORY_TRUTH,
  EXPO_SELECTORS,
  FAIR_SELECTORS,
  JSON_IMPORT,
  leadsSites,
} from '../../fixtures/web/leads.ts';
import { type FixtureWeb, startWeb } from '../../fixtures/web/server.ts';
import { webFetch } from '../../helpers/web-fetch.ts';
import { memStore } from '../../helpers/mem-store.ts';

const log = Object.assign(() => {}, { debug() {}, info() {}, warn() {}, error() {} }) as unknown as HandContext['log'];

let web: FixtureWeb;
before(async () => {
  web = await startWeb(leadsSites());
});
after(() => web.close());

function env(over: Partial<LeadSourceEnv> = {}): LeadSourceEnv {
  return {
    fetcher: new Fetcher(webFetch(web.port).fetch, memStore(), { minIntervalMs: 0, timeoutMs: 5000 }),
    tools: {
      list: async () => [],
      call: async () => {
        throw new Error('no tools here');
      },
    } as unknown as HandContext['tools'],
    llm: null,
    log,
    now: () => 1_000,
    readFile: async () => {
      throw new Error('no files here');
    },
    ...over,
  };
}

/** raw leads → leads by id, as the Hand does (no key: dropped) */
function dedup(raws: RawLead[]): Map<string, Lead> {
  const leads = new Map<string, Lead>();
  for (const r of raws) {
    const id = leadIdOf(r.fields);
    if (!id) continue;
    leads.set(id, mergeLead(leads.get(id), r, 1_000));
  }
  return leads;
}

const expo = (): LeadSource => ({
  kind: 'list',
  name: 'expo',
  url: web.url('expo-directory.example', '/exhibitors'),
  selectors: EXPO_SELECTORS,
  next: 'a.next',
  maxPages: 10,
});
const fair = (): LeadSource => ({
  kind: 'list',
  name: 'fair',
  url: web.url('fair-members.example', '/members'),
  selectors: FAIR_SELECTORS,
  maxPages: 1,
});

describe('list sources with CSS selectors', () => {
  it('reads both directories with precision 1 and full recall against DIRECTORY_TRUTH', async () => {
    const e = env();
    const a = await readLeadSource(expo(), e);
    const b = await readLeadSource(fair(), e);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
    assert.equal(a.pages, 2, 'page 2 links back to page 1: followed once, then stopped');
    assert.equal(b.pages, 1);
    const leads = dedup([...a.leads, ...b.leads]);
    const truth = new Map(DIRECTORY_TRUTH.map((t) => [t.id, t]));
    let correct = 0;
    for (const [id, lead] of leads) {
      const t = truth.get(id);
      if (
        t &&
        lead.company?.value === t.company &&
        lead.location?.value === t.location &&
        lead.industry?.value === t.industry
      )
        correct++;
      else
        assert.fail(`not in the truth or wrong: ${id} ${JSON.stringify([lead.company, lead.location, lead.industry])}`);
    }
    const precision = correct / leads.size;
    const recall = correct / truth.size;
    assert.equal(precision, 1);
    assert.ok(recall >= 1, `recall ${recall}`);
    // the tricky bits
    const acme = leads.get('d:acme-robotics.example')!;
    assert.equal(acme.sources.length, 1);
    assert.match(acme.website!.value, /^http:\/\/www\.acme-robotics\.example:\d+\/$/);
    assert.equal(acme.company!.source, web.url('expo-directory.example', '/exhibitors'));
    assert.deepEqual(
      leads.get('d:bright-foods.example')!.emails.map((x) => x.value),
      ['hello@bright-foods.example'],
    );
    assert.equal(leads.get('e:jane.doe.consulting@gmail.com')!.domain, undefined);
    const cobalt = leads.get('d:cobalt-analytics.example')!;
    assert.deepEqual(cobalt.sources, ['expo', 'fair']);
    assert.equal(cobalt.size?.value, 126);
    assert.equal(leads.get('d:magnet-motors.example')!.size?.value, 1200);
    // the entry without website or e-mail is read but cannot be a lead
    assert.ok(a.leads.some((r) => r.fields.company === 'Nordic Widgets'));
    assert.equal(leadIdOf(a.leads.find((r) => r.fields.company === 'Nordic Widgets')!.fields), undefined);
    // the directory's own footer address is not an exhibitor
    assert.ok(!leads.has('d:expo-directory.example'));
  });

  it('stops at maxPages', async () => {
    const r = await readLeadSource({ ...expo(), maxPages: 1 } as LeadSource, env());
    assert.equal(r.pages, 1);
    assert.ok(!r.leads.some((l) => l.fields.company === 'Helix Bio'));
  });

  it('a directory whose robots.txt forbids it gives no leads and one robots error', async () => {
    const before = web.hits('closed-directory.example', '/members');
    const r = await readLeadSource(
      {
        kind: 'list',
        name: 'closed',
        url: web.url('closed-directory.example', '/members'),
        selectors: EXPO_SELECTORS,
        maxPages: 3,
      },
      env(),
    );
    assert.deepEqual(r.leads, []);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]!.kind, 'robots');
    assert.equal(r.errors[0]!.source, 'closed');
    assert.equal(web.hits('closed-directory.example', '/members'), before, 'the page was never asked for');
  });

  it('never fetches a never-scrape host (LinkedIn)', async () => {
    const f = webFetch(web.port);
    const r = await readLeadSource(
      {
        kind: 'list',
        name: 'li',
        url: 'https://www.linkedin.com/search/results/companies/',
        selectors: EXPO_SELECTORS,
        maxPages: 1,
      },
      env({ fetcher: new Fetcher(f.fetch, memStore(), { minIntervalMs: 0 }) }),
    );
    assert.deepEqual(r.leads, []);
    assert.equal(r.errors[0]?.kind, 'robots');
    assert.deepEqual(f.calls, []);
  });
});

describe('list sources read by the model', () => {
  it('takes what the model found on the page and drops an invented company', async () => {
    const asked: HandChatRequest[] = [];
    const llm = async (req: HandChatRequest) => {
      asked.push(req);
      const text = JSON.stringify({
        leads: [
          { company: 'Acme Robotics', website: 'https://www.acme-robotics.example/', location: 'Berlin' },
          { company: 'Phantom Corp', website: 'https://phantom-corp.example/' },
        ],
      });
      return {
        provider: 'fake',
        model: 'm',
        text,
        toolCalls: [],
        usage: { inputTokens: 1, outputTokens: 1 },
        finishReason: 'stop' as const,
      };
    };
    const r = await readLeadSource(
      {
        kind: 'list',
        name: 'expo-m',
        url: web.url('expo-directory.example', '/exhibitors'),
        extract: 'model',
        maxPages: 1,
      },
      env({ llm }),
    );
    assert.deepEqual(r.errors, []);
    assert.equal(r.dropped, 1);
    assert.deepEqual(
      r.leads.map((l) => l.fields.company),
      ['Acme Robotics'],
    );
    // the page's own link (with the fixture's port) replaces what the model wrote
    assert.match(r.leads[0]!.fields.website!, /^http:\/\/www\.acme-robotics\.example:\d+\/$/);
    assert.ok(asked[0]!.jsonSchema);
    assert.match(asked[0]!.messages[1]!.content, /Fjord Software/);
  });

  it('without a model, extract: model is an error, not a crash', async () => {
    const r = await readLeadSource(
      { kind: 'list', name: 'x', url: web.url('expo-directory.example', '/exhibitors'), extract: 'model', maxPages: 1 },
      env(),
    );
    assert.equal(r.errors[0]?.kind, 'no-model');
  });
});

describe('import sources', () => {
  it('reads a CSV file with a BOM, map renaming German columns', async () => {
    const r = await readLeadSource(
      {
        kind: 'import',
        name: 'csv',
        path: '/data/leads.csv',
        format: 'csv',
        map: {
          Firma: 'company',
          Webseite: 'website',
          'E-Mail': 'email',
          Ort: 'location',
          Branche: 'industry',
          Mitarbeiter: 'size',
        },
      },
      env({ readFile: async (p) => (p === '/data/leads.csv' ? CSV_IMPORT : '') }),
    );
    assert.deepEqual(r.errors, []);
    assert.equal(r.leads.length, 3, 'the empty row is skipped');
    assert.deepEqual(r.leads[0], {
      fields: {
        company: 'Acme Robotics',
        website: 'https://acme-robotics.example/',
        email: 'sales@acme-robotics.example',
        location: 'Berlin',
        industry: 'Robotics',
        size: '51-200',
      },
      sourceUrl: 'file:///data/leads.csv',
      source: 'csv',
    });
    assert.equal(r.leads[1]!.fields.company, 'Rhein Tools, GmbH');
    const leads = dedup(r.leads);
    assert.deepEqual([...leads.keys()].sort(), [
      'd:acme-robotics.example',
      'd:rhein-tools.example',
      'e:solo.dev@outlook.com',
    ]);
    assert.equal(leads.get('d:rhein-tools.example')!.size?.value, 120);
  });

  it('reads a JSON file from a URL ({ leads: [...] }), map renaming keys', async () => {
    const r = await readLeadSource(
      {
        kind: 'import',
        name: 'json',
        url: web.url('data.example', '/leads.json'),
        format: 'json',
        map: { name: 'company', url: 'website', city: 'location', sector: 'industry', staff: 'size' },
      },
      env(),
    );
    assert.deepEqual(r.errors, []);
    assert.equal(r.leads.length, 3);
    assert.deepEqual(r.leads[0]!.fields, {
      company: 'Tidal Water',
      website: 'https://www.tidal-water.example',
      location: 'Rotterdam',
      industry: 'Utilities',
      size: '75',
    });
    const leads = dedup(r.leads);
    assert.deepEqual([...leads.keys()].sort(), ['d:tidal-water.example', 'd:umbra-security.example']);
    assert.equal(JSON.parse(JSON_IMPORT).leads.length, 3);
  });

  it('a file that is not JSON is a parse error', async () => {
    const r = await readLeadSource(
      { kind: 'import', name: 'j', path: '/x.json', format: 'json', map: {} },
      env({ readFile: async () => 'not json' }),
    );
    assert.deepEqual(r.leads, []);
    assert.equal(r.errors[0]?.kind, 'parse');
  });
});

describe('feed and search sources', () => {
  it('takes items that link to another site (or name one in their text) as companies', async () => {
    const r = await readLeadSource(
      { kind: 'feed', name: 'news', url: web.url('startup-news.example', '/feed.xml') },
      env(),
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.leads.map((l) => [l.fields.company, l.fields.website]),
      [
        ['Vortex Batteries', 'https://vortex-batteries.example/'],
        ['Willow Health', 'https://willow-health.example/'],
      ],
    );
  });

  it('a feed that is not XML is a parse error', async () => {
    const r = await readLeadSource(
      { kind: 'feed', name: 'bad', url: web.url('expo-directory.example', '/exhibitors') },
      env(),
    );
    assert.deepEqual(r.leads, []);
    assert.equal(r.errors[0]?.kind, 'parse');
  });

  it('asks web.search and takes one lead per domain, social networks skipped', async () => {
    const calls: unknown[] = [];
    const tools = {
      list: async () => [],
      call: async (name: string, input: unknown) => {
        calls.push([name, input]);
        return {
          output: {
            provider: 'searxng',
            results: [
              { title: 'Acme Robotics | Cobots', url: 'https://www.acme.example/en/', snippet: 'Robot arms.' },
              { title: 'Acme Robotics - Jobs', url: 'https://acme.example/jobs', snippet: 'Jobs' },
              { title: 'Acme on LinkedIn', url: 'https://www.linkedin.com/company/acme', snippet: '' },
              { title: 'Beta Motion – Home', url: 'https://beta-motion.example/', snippet: 'Linear motors.' },
            ],
          },
          truncated: false,
          ms: 1,
        };
      },
    } as unknown as HandContext['tools'];
    const r = await readLeadSource({ kind: 'search', name: 's', query: 'cobot makers berlin', max: 5 }, env({ tools }));
    assert.deepEqual(calls, [['web.search', { query: 'cobot makers berlin', limit: 5 }]]);
    assert.deepEqual(
      r.leads.map((l) => l.fields),
      [
        { website: 'https://www.acme.example/', company: 'Acme Robotics', description: 'Robot arms.' },
        { website: 'https://beta-motion.example/', company: 'Beta Motion', description: 'Linear motors.' },
      ],
    );
  });

  it('a failing search is an error', async () => {
    const r = await readLeadSource({ kind: 'search', name: 's', query: 'x', max: 5 }, env());
    assert.equal(r.errors[0]?.kind, 'search');
  });
});

describe('parseLeadSource', () => {
  it('checks a list source and names the field', () => {
    assert.deepEqual(
      parseLeadSource(
        { kind: 'list', name: 'expo', url: 'https://expo.example/list', selectors: EXPO_SELECTORS, next: 'a.next' },
        'sources[0]',
      ),
      {
        kind: 'list',
        name: 'expo',
        url: 'https://expo.example/list',
        selectors: EXPO_SELECTORS,
        next: 'a.next',
        maxPages: 10,
      },
    );
    assert.equal(
      parseLeadSource(
        { kind: 'list', url: 'https://e.example/', selectors: { item: 'li', fields: { phon: 'b' } } },
        'sources[1]',
      ),
      'sources[1].selectors.fields.phon: not a lead field; use one of company, website, email, phone, contact, title, industry, location, size, description',
    );
    assert.match(String(parseLeadSource({ kind: 'list', url: 'ftp://x' }, 's[0]')), /^s\[0\]\.url:/);
    assert.match(
      String(parseLeadSource({ kind: 'list', url: 'https://x.example/' }, 's[0]')),
      /selectors .* or extract: model/,
    );
    assert.match(String(parseLeadSource({ kind: 'rss' }, 's[0]')), /^s\[0\]\.kind:/);
  });
  it('takes the shorthand forms and fills defaults', () => {
    assert.deepEqual(parseLeadSource({ feed: 'https://news.example/feed.xml' }, 'sources[2]'), {
      kind: 'feed',
      name: 'feed-2',
      url: 'https://news.example/feed.xml',
    });
    assert.deepEqual(parseLeadSource({ search: 'robotics startups' }, 'sources[3]'), {
      kind: 'search',
      name: 'search-3',
      query: 'robotics startups',
      max: 10,
    });
    assert.deepEqual(parseLeadSource({ import: '/data/x.json', map: { Name: 'company' } }, 'sources[4]'), {
      kind: 'import',
      name: 'import-4',
      format: 'json',
      map: { Name: 'company' },
      path: '/data/x.json',
    });
    assert.equal(
      parseLeadSource({ import: '/x.csv', map: { Name: 'firm' } }, 'sources[5]'),
      'sources[5].map.Name: must be a lead field: company, website, email, phone, contact, title, industry, location, size, description',
    );
    assert.match(
      String(parseLeadSource({ kind: 'import', path: '/a.csv', url: 'https://a.example/a.csv' }, 's')),
      /exactly one/,
    );
  });
});
