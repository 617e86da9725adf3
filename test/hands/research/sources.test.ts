/**
 * The Research Hand's sources (hands/research/sources/*) over real HTTP against the fixture web
 * (test/fixtures/web/research.ts): the settings' shorthand checked, each kind giving candidates, conditional requests
 * answered 304 on a second run, a "feed" that is HTML counted as a parse error while the other sources are read, a
 * slow and a huge page counted as errors, robots.txt kept, a folder of Markdown, text, HTML and a real PDF read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseSource, readSource, type SourceEnv } from '../../../hands/research/sources/index.ts';
import { arxivId, arxivQuery } from '../../../hands/research/sources/arxiv.ts';
import type { SourceResult, SourceSpec } from '../../../hands/research/types.ts';
import { Fetcher } from '../../../hands/sdk/web/index.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { type FixtureWeb, startWeb } from '../../fixtures/web/server.ts';
import {
  ARTICLES,
  ARXIV,
  ARXIV_ID,
  ARXIV_V1_ABSTRACT,
  ARXIV_V2_ABSTRACT,
  BLOG,
  HN,
  HN_ASK_ID,
  HN_STORY_ID,
  NEWS,
  PDF_LINES,
  researchSites,
  searchResults,
  writeResearchFolder,
} from '../../fixtures/web/research.ts';
import { memStore } from '../../helpers/mem-store.ts';
import { webFetch } from '../../helpers/web-fetch.ts';
import { fakeCtx, type FakeCtx } from '../scheduling/fake-ctx.ts';

interface Setup {
  web: FixtureWeb;
  f: FakeCtx;
  env: SourceEnv;
  fetcher: Fetcher;
  spec(raw: Record<string, unknown>): SourceSpec;
  close(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const web = await startWeb(researchSites());
  const f = fakeCtx({ name: 'research' });
  const fetcher = new Fetcher(webFetch(web.port).fetch, memStore(), {
    minIntervalMs: 0,
    timeoutMs: 500,
    maxBytes: 1024 * 1024,
  });
  const env: SourceEnv = { fetcher, tools: f.ctx.tools, log: f.ctx.log, now: () => Date.now() };
  return {
    web,
    f,
    env,
    fetcher,
    spec(raw) {
      const s = parseSource(raw, 'sources[0]');
      assert.equal(typeof s, 'object', String(s));
      return s as SourceSpec;
    },
    async close() {
      f.close();
      await web.close();
    },
  };
}

const urlsOf = (r: SourceResult): string[] => r.candidates.map((c) => c.url);

// ---- the settings' shorthand -------------------------------------------------------------------------------------

test('parseSource: each kind, its defaults and its label', () => {
  assert.deepEqual(parseSource({ feed: 'https://news.example/feed.xml' }, 's'), {
    kind: 'feed',
    url: 'https://news.example/feed.xml',
    max: 50,
    label: 'feed:news.example',
  });
  assert.deepEqual(parseSource({ sitemap: 'https://x.example/sm.xml', match: '/blog/', max: 5 }, 's'), {
    kind: 'sitemap',
    url: 'https://x.example/sm.xml',
    max: 5,
    match: '/blog/',
    label: 'sitemap:x.example',
  });
  assert.deepEqual(parseSource({ search: ' edge AI ' }, 's'), {
    kind: 'search',
    query: 'edge AI',
    max: 50,
    label: 'search:edge AI',
  });
  assert.deepEqual(parseSource({ arxiv: 'surface codes', url: 'http://127.0.0.1:9/api/query', max: 500 }, 's'), {
    kind: 'arxiv',
    query: 'surface codes',
    url: 'http://127.0.0.1:9/api/query',
    max: 500,
    label: 'arxiv:surface codes',
  });
  assert.deepEqual(parseSource({ hn: 'rust', follow: true, label: 'HN rust' }, 's'), {
    kind: 'hn',
    query: 'rust',
    max: 50,
    follow: true,
    label: 'HN rust',
  });
  assert.deepEqual(parseSource({ folder: '/home/talon/notes' }, 's'), {
    kind: 'folder',
    path: '/home/talon/notes',
    max: 50,
    label: 'folder:/home/talon/notes',
  });
  const page = parseSource({ page: 'https://news.example/', match: '/articles/' }, 's');
  assert.equal((page as SourceSpec).kind, 'page');
});

test('parseSource: every mistake is a message naming the field and saying what to write', () => {
  assert.equal(
    parseSource({ feed: 'https://a.example/f', page: 'https://a.example/' }, 'sources[1]'),
    'sources[1]: has both feed and page; one source is one of feed, page, sitemap, search, arxiv, hn, folder ' +
      '(write two sources instead)',
  );
  const cases: Array<[unknown, RegExp]> = [
    ['https://a.example/feed', /^sources\[0\]: must be an object such as \{ feed:/],
    [{ url: 'https://a.example/' }, /^sources\[0\]: names no source; write one of feed, page/],
    [{ feed: 'ftp://a.example/f' }, /^sources\[0\]\.feed: must be an http\(s\) URL/],
    [{ feed: 'not a url' }, /^sources\[0\]\.feed: must be an http\(s\) URL/],
    [{ search: '' }, /^sources\[0\]\.search: must be a search query/],
    [{ arxiv: 'x', url: 'file:///etc/passwd' }, /^sources\[0\]\.url: must be an http\(s\) URL of the arxiv API/],
    [{ folder: 'notes' }, /^sources\[0\]\.folder: must be an absolute path/],
    [{ feed: 'https://a.example/f', max: 0 }, /^sources\[0\]\.max: must be a whole number from 1 to 500/],
    [{ feed: 'https://a.example/f', max: 501 }, /^sources\[0\]\.max: must be a whole number from 1 to 500/],
    [{ feed: 'https://a.example/f', max: 2.5 }, /^sources\[0\]\.max: must be a whole number/],
    [{ sitemap: 'https://a.example/s', match: '(' }, /^sources\[0\]\.match: not a regular expression \(.+\)/],
    [{ feed: 'https://a.example/f', match: 'x' }, /^sources\[0\]\.match: a feed source has no match; it takes max/],
    [{ search: 'x', follow: true }, /^sources\[0\]\.follow: a search source has no follow/],
    [{ feed: 'https://a.example/f', follow: 'yes' }, /^sources\[0\]\.follow: must be true or false/],
    [{ hn: 'x', label: '' }, /^sources\[0\]\.label: must be a short name/],
  ];
  for (const [raw, re] of cases) {
    const got = parseSource(raw, 'sources[0]');
    assert.equal(typeof got, 'string', `${JSON.stringify(raw)} should be refused`);
    assert.match(got as string, re);
  }
});

test('arXiv query and id helpers', () => {
  assert.equal(arxivQuery('surface  codes'), 'all:surface AND all:codes');
  assert.equal(arxivQuery('cat:quant-ph AND ti:surface'), 'cat:quant-ph AND ti:surface');
  assert.equal(arxivId('http://arxiv.org/abs/2611.01234v2'), '2611.01234');
  assert.equal(arxivId('http://arxiv.org/abs/hep-th/9901001v1'), 'hep-th/9901001');
  assert.equal(arxivId('2611.01234v3'), '2611.01234');
});

// ---- feeds -------------------------------------------------------------------------------------------------------

test('feed: RSS items become candidates; the second run is a 304 with no candidates', async () => {
  const s = await setup();
  try {
    const spec = s.spec({ feed: s.web.url(NEWS, '/feed.xml') });
    const r1 = await readSource(spec, s.env);
    assert.deepEqual(r1.errors, []);
    assert.equal(r1.requests, 1);
    assert.equal(r1.candidates.length, 3);
    const q = r1.candidates.find((c) => c.itemId === 'news-quantum-1');
    assert.ok(q, 'the quantum item');
    assert.equal(q.title, ARTICLES.quantum.title);
    assert.match(q.url, /\/articles\/quantum\.html\?utm_source=rss/);
    assert.match(q.text, /surface codes on 72 superconducting qubits/);
    assert.doesNotMatch(q.text, /<p>/, 'the description is text, tags stripped');
    assert.equal(q.published, Date.parse('2026-11-20T09:00:00Z'));
    assert.equal(q.source, 'feed:news.example');
    // newest first
    assert.deepEqual(
      r1.candidates.map((c) => c.itemId),
      ['news-quantum-1', 'news-battery-1', 'news-garden-1'],
    );

    const r2 = await readSource(spec, s.env);
    assert.deepEqual(r2.candidates, []);
    assert.equal(r2.notModified, 1);
    assert.deepEqual(r2.errors, []);
    const feedReqs = s.web.requests.filter((r) => r.path === '/feed.xml');
    assert.equal(feedReqs.length, 2);
    assert.equal(feedReqs[1]!.headers['if-none-match'], '"rss-v1"');
  } finally {
    await s.close();
  }
});

test('feed: Atom entries (content preferred to summary); Last-Modified gives the 304; max limits the items', async () => {
  const s = await setup();
  try {
    const spec = s.spec({ feed: s.web.url(NEWS, '/atom.xml') });
    const r1 = await readSource(spec, s.env);
    assert.deepEqual(r1.errors, []);
    assert.equal(r1.candidates.length, 2);
    const battery = r1.candidates.find((c) => c.url.endsWith('/articles/battery.html'));
    assert.match(battery!.text, /sulfide electrolyte/);
    const r2 = await readSource(spec, s.env);
    assert.equal(r2.notModified, 1);
    assert.equal(r2.candidates.length, 0);

    const one = await readSource(s.spec({ feed: s.web.url(NEWS, '/feed.xml'), max: 1 }), s.env);
    assert.deepEqual(
      one.candidates.map((c) => c.itemId),
      ['news-quantum-1'],
    );
  } finally {
    await s.close();
  }
});

test('feed with follow: each item page is read for its full text; pages already read are not fetched again', async () => {
  const s = await setup();
  try {
    const spec = s.spec({ feed: s.web.url(NEWS, '/feed.xml'), follow: true });
    const r1 = await readSource(spec, s.env);
    assert.deepEqual(r1.errors, []);
    assert.equal(r1.candidates.length, 3);
    assert.equal(r1.requests, 4);
    const q = r1.candidates.find((c) => c.itemId === 'news-quantum-1')!;
    assert.match(q.text, /Surface codes cross the error-correction threshold/, 'the page text has its heading');
    assert.doesNotMatch(q.text, /© News Example/, 'footer removed by readHtml');
    assert.equal(s.web.hits(NEWS, '/articles/quantum.html'), 1);
  } finally {
    await s.close();
  }
});

test('a "feed" that is HTML is a parse error naming the real feed; the other sources of the run are read', async () => {
  const s = await setup();
  try {
    const specs = [
      s.spec({ feed: s.web.url(NEWS, '/not-a-feed.xml') }),
      s.spec({ feed: s.web.url(NEWS, '/feed.xml') }),
      s.spec({ page: s.web.url(NEWS, '/articles/battery.html') }),
    ];
    const results: SourceResult[] = [];
    for (const spec of specs) results.push(await readSource(spec, s.env));
    assert.equal(results[0]!.candidates.length, 0);
    assert.equal(results[0]!.errors.length, 1);
    const e = results[0]!.errors[0]!;
    assert.equal(e.kind, 'parse');
    assert.equal(e.source, 'feed:news.example');
    assert.match(e.url!, /not-a-feed\.xml$/);
    assert.match(e.message, /is an HTML page, not a feed; it links to http:\/\/news\.example:\d+\/feed\.xml/);
    assert.equal(results[1]!.candidates.length, 3);
    assert.equal(results[2]!.candidates.length, 1);
  } finally {
    await s.close();
  }
});

// ---- pages -------------------------------------------------------------------------------------------------------

test('page: HTML, plain text and Markdown give one candidate each; a 304 on the second run', async () => {
  const s = await setup();
  try {
    const spec = s.spec({ page: s.web.url(NEWS, '/articles/quantum.html') });
    const r1 = await readSource(spec, s.env);
    assert.deepEqual(r1.errors, []);
    assert.equal(r1.candidates.length, 1);
    const c = r1.candidates[0]!;
    assert.equal(c.title, `${ARTICLES.quantum.title} – News Example`);
    assert.match(c.text, /logical error rates falling by half/);
    assert.doesNotMatch(c.text, /Home\s+About/, 'the nav is not text');
    assert.equal(c.published, Date.parse(ARTICLES.quantum.published));
    assert.equal(c.source, 'page:news.example');
    assert.equal(c.itemId, undefined);
    const r2 = await readSource(spec, s.env);
    assert.equal(r2.notModified, 1);
    assert.equal(r2.candidates.length, 0);

    const txt = await readSource(s.spec({ page: s.web.url(NEWS, '/notes.txt') }), s.env);
    assert.equal(txt.candidates[0]!.title, 'Editor notes');
    assert.match(txt.candidates[0]!.text, /most read this month/);
    const md = await readSource(s.spec({ page: s.web.url(NEWS, '/readme.md') }), s.env);
    assert.equal(md.candidates[0]!.title, 'About our science desk');
    assert.match(md.candidates[0]!.text, /\*\*quantum computing\*\*/, 'Markdown kept as it is');
  } finally {
    await s.close();
  }
});

test('page: an image is a type error, a robots.txt-forbidden page a robots error (never requested)', async () => {
  const s = await setup();
  try {
    const img = await readSource(s.spec({ page: s.web.url(NEWS, '/image.png') }), s.env);
    assert.equal(img.candidates.length, 0);
    assert.equal(img.errors[0]?.kind, 'type');
    const secret = await readSource(s.spec({ page: s.web.url(NEWS, '/private/secret.html') }), s.env);
    assert.equal(secret.errors[0]?.kind, 'robots');
    assert.equal(secret.requests, 0);
    assert.equal(s.web.hits(NEWS, '/private/secret.html'), 0);
    assert.equal(s.web.hits(NEWS, '/robots.txt'), 1, 'robots.txt read once and kept');
  } finally {
    await s.close();
  }
});

test('page with match: the links of a list page that match are read (up to max)', async () => {
  const s = await setup();
  try {
    const r = await readSource(
      s.spec({ page: s.web.url(NEWS, '/'), match: '/articles/(quantum|battery)', max: 5 }),
      s.env,
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(urlsOf(r).sort(), [
      s.web.url(NEWS, '/articles/battery.html'),
      s.web.url(NEWS, '/articles/quantum.html'),
    ]);
    const one = await readSource(s.spec({ page: s.web.url(NEWS, '/'), match: '/articles/', max: 1 }), s.env);
    assert.equal(one.candidates.length + one.notModified, 1);
  } finally {
    await s.close();
  }
});

test('a slow page and a huge page are counted errors (timeout, too-large); the run goes on', async () => {
  const s = await setup();
  try {
    const slow = await readSource(s.spec({ page: s.web.url(NEWS, '/slow.html') }), s.env);
    assert.equal(slow.candidates.length, 0);
    assert.equal(slow.errors.length, 1);
    assert.equal(slow.errors[0]!.kind, 'timeout');
    assert.match(slow.errors[0]!.url!, /slow\.html$/);
    // the byte cap alone ends the huge page (a time cap generous enough for a loaded machine)
    const big = new Fetcher(webFetch(s.web.port).fetch, memStore(), {
      minIntervalMs: 0,
      timeoutMs: 30_000,
      maxBytes: 1024 * 1024,
    });
    const huge = await readSource(s.spec({ page: s.web.url(NEWS, '/huge.html') }), { ...s.env, fetcher: big });
    assert.equal(huge.candidates.length, 0);
    assert.equal(huge.errors[0]?.kind, 'too-large');
    const after = await readSource(s.spec({ page: s.web.url(NEWS, '/articles/battery.html') }), s.env);
    assert.equal(after.candidates.length, 1);
    assert.equal(s.fetcher.stats().errors.timeout, 1);
    assert.equal(big.stats().errors['too-large'], 1);
  } finally {
    await s.close();
  }
});

// ---- sitemaps ----------------------------------------------------------------------------------------------------

test('sitemap: newest lastmod first, robots.txt kept, match filters, max limits; the second run is a 304', async () => {
  const s = await setup();
  try {
    const spec = s.spec({ sitemap: s.web.url(NEWS, '/sitemap.xml') });
    const r1 = await readSource(spec, s.env);
    assert.deepEqual(urlsOf(r1), [
      s.web.url(NEWS, '/articles/quantum.html'),
      s.web.url(NEWS, '/articles/battery.html'),
      s.web.url(NEWS, '/articles/garden.html'),
      s.web.url(NEWS, '/about'),
    ]);
    assert.deepEqual(
      r1.errors.map((e) => [e.kind, e.url]),
      [['robots', s.web.url(NEWS, '/private/secret.html')]],
    );
    assert.equal(r1.candidates[0]!.published, Date.parse(ARTICLES.quantum.published), 'the page meta wins');
    assert.equal(r1.candidates[3]!.published, undefined);
    const r2 = await readSource(spec, s.env);
    assert.equal(r2.notModified, 1);
    assert.equal(r2.candidates.length, 0);

    const s2 = await setup();
    try {
      const filtered = await readSource(
        s2.spec({ sitemap: s2.web.url(NEWS, '/sitemap.xml'), match: '/articles/', max: 2 }),
        s2.env,
      );
      assert.deepEqual(urlsOf(filtered), [
        s2.web.url(NEWS, '/articles/quantum.html'),
        s2.web.url(NEWS, '/articles/battery.html'),
      ]);
      assert.equal(s2.web.hits(NEWS, '/articles/garden.html'), 0);
    } finally {
      await s2.close();
    }
  } finally {
    await s.close();
  }
});

test('sitemap index: its child sitemaps are read one level deep', async () => {
  const s = await setup();
  try {
    const r = await readSource(s.spec({ sitemap: s.web.url(NEWS, '/sitemap-index.xml') }), s.env);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(urlsOf(r), [
      s.web.url(NEWS, '/articles/quantum.html'),
      s.web.url(NEWS, '/articles/battery.html'),
      s.web.url(NEWS, '/notes.txt'),
      s.web.url(NEWS, '/readme.md'),
    ]);
    assert.equal(r.candidates[2]!.published, Date.parse('2026-11-10'), 'lastmod when the page has no date');
    assert.equal(r.requests, 7);
  } finally {
    await s.close();
  }
});

// ---- search, arXiv, HN ---------------------------------------------------------------------------------------------

test('search: web.search through the tools, then each http(s) result page read', async () => {
  const s = await setup();
  try {
    s.f.tools['web.search'] = () => searchResults(s.web.port);
    const r = await readSource(s.spec({ search: 'solid-state battery', max: 10 }), s.env);
    assert.deepEqual(s.f.toolCalls, [{ name: 'web.search', input: { query: 'solid-state battery', limit: 10 } }]);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(urlsOf(r), [s.web.url(NEWS, '/articles/battery.html'), s.web.url(BLOG, '/post.html')]);
    assert.match(r.candidates[1]!.text, /stabilizer measurements/);
    assert.equal(r.candidates[0]!.source, 'search:solid-state battery');
  } finally {
    await s.close();
  }
});

test('search: a failed tool call is one error of kind search', async () => {
  const s = await setup();
  try {
    s.f.tools['web.search'] = () => {
      throw new TalonError('TOOL_FAILED', 'no search provider configured (tools.search)');
    };
    const r = await readSource(s.spec({ search: 'anything' }), s.env);
    assert.equal(r.candidates.length, 0);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]!.kind, 'search');
    assert.match(r.errors[0]!.message, /no search provider configured/);
    s.f.tools['web.search'] = () => ({ nothing: true });
    const odd = await readSource(s.spec({ search: 'anything' }), s.env);
    assert.equal(odd.errors[0]?.kind, 'search');
  } finally {
    await s.close();
  }
});

test('arxiv: the API asked newest first without robots.txt; the id without its version is the item id', async () => {
  const s = await setup();
  try {
    const spec = s.spec({ arxiv: 'surface codes', url: s.web.url(ARXIV, '/api/query'), max: 5 });
    const r1 = await readSource(spec, s.env);
    assert.deepEqual(r1.errors, []);
    assert.equal(r1.candidates.length, 2);
    const p = r1.candidates[0]!;
    assert.equal(p.itemId, ARXIV_ID);
    assert.equal(p.url, `http://arxiv.org/abs/${ARXIV_ID}v1`);
    assert.match(p.text, /^Exponential suppression of logical errors with surface codes\n\n/);
    assert.ok(p.text.includes(ARXIV_V1_ABSTRACT));
    assert.equal(p.published, Date.parse('2026-11-02T18:00:00Z'));
    assert.equal(r1.candidates[1]!.itemId, '2611.00777');
    const asked = new URL(s.web.requests.find((q) => q.host === ARXIV)!.path, 'http://x');
    assert.equal(asked.searchParams.get('search_query'), 'all:surface AND all:codes');
    assert.equal(asked.searchParams.get('sortBy'), 'submittedDate');
    assert.equal(asked.searchParams.get('sortOrder'), 'descending');
    assert.equal(asked.searchParams.get('max_results'), '5');
    assert.equal(s.web.hits(ARXIV, '/robots.txt'), 0);

    const r2 = await readSource(spec, s.env);
    assert.equal(r2.candidates[0]!.itemId, ARXIV_ID, 'v2 is the same item');
    assert.equal(r2.candidates[0]!.url, `http://arxiv.org/abs/${ARXIV_ID}v2`);
    assert.ok(r2.candidates[0]!.text.includes(ARXIV_V2_ABSTRACT));
  } finally {
    await s.close();
  }
});

test('hn: stories from the Algolia API; follow reads the linked page', async () => {
  const s = await setup();
  try {
    const base = s.web.url(HN, '/api/v1/search_by_date');
    const r = await readSource(s.spec({ hn: 'surface code', url: base, max: 20 }), s.env);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.candidates.map((c) => c.itemId),
      [HN_STORY_ID, HN_ASK_ID],
    );
    const [story, ask] = r.candidates;
    assert.equal(story!.url, s.web.url(BLOG, '/post.html'));
    assert.equal(story!.text, 'Show HN: A surface code simulator in the browser');
    assert.equal(story!.published, 1795356000 * 1000);
    assert.equal(ask!.url, `https://news.ycombinator.com/item?id=${HN_ASK_ID}`);
    assert.match(ask!.text, /logical qubits beat physical ones/);
    assert.match(ask!.text, /What's the catch\?/, 'HTML entities decoded');
    assert.doesNotMatch(ask!.text, /<p>/);
    const asked = new URL(s.web.requests.find((q) => q.host === HN)!.path, 'http://x');
    assert.equal(asked.searchParams.get('query'), 'surface code');
    assert.equal(asked.searchParams.get('tags'), 'story');
    assert.equal(asked.searchParams.get('hitsPerPage'), '20');
    assert.equal(s.web.hits(BLOG, '/post.html'), 0, 'not followed');

    const f = await readSource(s.spec({ hn: 'surface code', url: base, follow: true }), s.env);
    assert.match(f.candidates[0]!.text, /stabilizer measurements of a distance-five surface code/);
    assert.equal(s.web.hits(BLOG, '/post.html'), 1);
    assert.equal(f.candidates[1]!.itemId, HN_ASK_ID, 'an Ask HN has no page to follow');
  } finally {
    await s.close();
  }
});

test('hn: an answer that is not JSON is a parse error', async () => {
  const s = await setup();
  try {
    s.web.sites[HN]!['/api/v1/search_by_date'] = { type: 'text/html', body: '<html>maintenance</html>' };
    const r = await readSource(s.spec({ hn: 'x', url: s.web.url(HN, '/api/v1/search_by_date') }), s.env);
    assert.equal(r.candidates.length, 0);
    assert.equal(r.errors[0]?.kind, 'parse');
  } finally {
    await s.close();
  }
});

// ---- folder ------------------------------------------------------------------------------------------------------

test('folder: Markdown, text, HTML and PDF read two levels down, newest first; the rest skipped; 20 MB refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'talon-research-'));
  const s = await setup();
  try {
    const paths = await writeResearchFolder(dir);
    const r = await readSource(s.spec({ folder: dir }), s.env);
    const names = r.candidates.map((c) => c.url.slice(pathToFileURL(dir).href.length + 1));
    assert.deepEqual(names, ['notes.md', 'log.txt', 'page.html', 'paper.pdf', 'sub/deeper.md', 'sub/two/deepest.md']);
    assert.deepEqual(
      r.errors.map((e) => [e.kind, e.url]),
      [['too-large', pathToFileURL(paths['big.txt']!).href]],
    );
    const byName = (n: string) => r.candidates[names.indexOf(n)]!;
    assert.equal(byName('notes.md').title, 'Quantum notes');
    assert.equal(byName('page.html').title, 'Saved article');
    assert.match(byName('page.html').text, /Logical qubits outlived physical qubits/);
    assert.doesNotMatch(byName('page.html').text, /<p>/);
    const pdf = byName('paper.pdf');
    assert.match(pdf.text, /Majorana zero modes are braided/);
    assert.equal(pdf.title, PDF_LINES[0]);
    assert.ok(pdf.published! > byName('sub/deeper.md').published!, 'mtime as published');
    assert.equal(pdf.source, `folder:${dir.length > 40 ? `${dir.slice(0, 39)}…` : dir}`);

    const two = await readSource(s.spec({ folder: dir, max: 2 }), s.env);
    assert.equal(two.candidates.length, 2);
    const missing = await readSource(s.spec({ folder: join(dir, 'nope') }), s.env);
    assert.equal(missing.candidates.length, 0);
    assert.equal(missing.errors[0]?.kind, 'fs');
  } finally {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('readSource never throws: a reader that blows up is one error of its source', async () => {
  const s = await setup();
  try {
    const broken = {
      ...s.env,
      fetcher: {
        get: () => {
          throw new TypeError('boom');
        },
      } as unknown as Fetcher,
    };
    const r = await readSource(s.spec({ feed: s.web.url(NEWS, '/feed.xml') }), broken);
    assert.deepEqual(r.candidates, []);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!.message, /boom/);
    const odd = await readSource({ kind: 'gopher' as never, label: 'gopher:x' }, s.env);
    assert.equal(odd.errors.length, 1);
  } finally {
    await s.close();
  }
});

test('a run that is stopped reads no more pages: the abort is an error of kind aborted', async () => {
  const s = await setup();
  try {
    const ac = new AbortController();
    ac.abort();
    const r = await readSource(s.spec({ sitemap: s.web.url(NEWS, '/sitemap.xml') }), { ...s.env, signal: ac.signal });
    assert.equal(r.candidates.length, 0);
    assert.equal(r.errors[0]?.kind, 'aborted');
    assert.equal(s.web.hits(NEWS, '/articles/quantum.html'), 0);
  } finally {
    await s.close();
  }
});
