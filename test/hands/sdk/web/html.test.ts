/**
 * readHtml / selectList / selectOne on linkedom: absolute links (base href, mailto/tel, javascript: dropped), what the
 * text leaves out, title fallbacks, feeds and scripts, a small directory read with selectors, broken HTML and a page
 * larger than the DOM cap; a page fetched from the fixture web and read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DOM_CHARS, readHtml, selectList, selectOne } from '../../../../hands/sdk/web/html.ts';
import { WebError } from '../../../../hands/sdk/web/fetcher.ts';
import { Fetcher } from '../../../../hands/sdk/web/fetcher.ts';
import { startWeb } from '../../../fixtures/web/server.ts';
import { webFetch } from '../../../helpers/web-fetch.ts';
import { memStore } from '../../../helpers/mem-store.ts';

const PAGE = `<!doctype html><html lang="de"><head>
<title>  Acme
 Robotics </title>
<meta name="Description" content="Industrial robots from Berlin">
<meta property="og:title" content="Acme (OG)">
<meta property="og:image" content="/logo.png">
<link rel="alternate" type="application/rss+xml" href="/news/feed.xml" title="News">
<link rel="alternate" type="application/atom+xml" href="https://acme.example/atom">
<link rel="alternate" hreflang="en" href="/en/">
<link rel="canonical" href="/">
<script src="/wp-content/themes/x/app.js"></script>
<script>window.secret = "SCRIPTTEXT";</script>
<style>.x { color: red } /* STYLETEXT */</style>
</head><body>
<header><a href="/">Home</a> HEADERTEXT</header>
<nav><a href="about">About us</a> NAVTEXT</nav>
<main>
<h1>Welcome to Acme</h1>
<p>We build <b>robots</b> for factories.</p><p>Second paragraph.</p>
<ul><li>Arms</li><li>Grippers</li></ul>
<p>Write to <a href="mailto:info@acme.example">info@acme.example</a> or call <a href="tel:+49301234">us</a>.
<a href="javascript:alert(1)">click</a> <a href="#top">top</a></p>
<svg><text>SVGTEXT</text></svg><noscript>NOSCRIPTTEXT</noscript><template><p>TEMPLATETEXT</p></template>
</main>
<footer><a href="https://twitter.com/acme">Twitter</a> FOOTERTEXT</footer>
</body></html>`;

test('readHtml: title, description, meta, lang, canonical, feeds, scripts', () => {
  const p = readHtml(PAGE, 'https://acme.example/company/index.html');
  assert.equal(p.title, 'Acme Robotics');
  assert.equal(p.description, 'Industrial robots from Berlin');
  assert.equal(p.lang, 'de');
  assert.equal(p.canonical, 'https://acme.example/');
  assert.equal(p.meta['og:title'], 'Acme (OG)');
  assert.equal(p.meta.description, 'Industrial robots from Berlin');
  assert.deepEqual(p.feeds, ['https://acme.example/news/feed.xml', 'https://acme.example/atom']);
  assert.deepEqual(p.scripts, ['https://acme.example/wp-content/themes/x/app.js']);
});

test('readHtml: links absolute (mailto and tel kept, javascript: dropped), footer links included', () => {
  const p = readHtml(PAGE, 'https://acme.example/company/index.html');
  const urls = p.links.map((l) => l.url);
  assert.ok(urls.includes('https://acme.example/'));
  assert.ok(urls.includes('https://acme.example/company/about'));
  assert.ok(urls.includes('mailto:info@acme.example'));
  assert.ok(urls.includes('tel:+49301234'));
  assert.ok(urls.includes('https://twitter.com/acme'));
  assert.ok(urls.includes('https://acme.example/company/index.html#top'));
  assert.ok(!urls.some((u) => u.startsWith('javascript:')));
  assert.equal(p.links.find((l) => l.url.startsWith('tel:'))?.text, 'us');
  for (const u of urls) assert.match(u, /^(https?:\/\/|mailto:|tel:)/);
});

test('readHtml: text without scripts, styles, nav, header, footer, svg, noscript, template; blocks apart', () => {
  const { text } = readHtml(PAGE, 'https://acme.example/');
  for (const gone of [
    'SCRIPTTEXT',
    'STYLETEXT',
    'HEADERTEXT',
    'NAVTEXT',
    'FOOTERTEXT',
    'SVGTEXT',
    'NOSCRIPTTEXT',
    'TEMPLATETEXT',
  ])
    assert.ok(!text.includes(gone), `${gone} left in the text`);
  assert.match(text, /Welcome to Acme\n\nWe build robots for factories\.\n\nSecond paragraph\./);
  assert.match(text, /Arms\n\nGrippers/);
});

test('readHtml: <base href> decides; title falls back to og:title, then h1', () => {
  const p = readHtml(
    '<html><head><base href="https://cdn.example/root/"><meta property="og:title" content="From OG"></head>' +
      '<body><a href="x.html">x</a></body></html>',
    'https://site.example/page',
  );
  assert.equal(p.links[0]?.url, 'https://cdn.example/root/x.html');
  assert.equal(p.title, 'From OG');
  assert.equal(readHtml('<body><h1> Only  a heading </h1></body>', 'https://a.example/').title, 'Only a heading');
});

test('readHtml survives broken HTML', () => {
  const p = readHtml(
    '<html><body><div><p>unclosed <b>bold <a href="/x">link<div></p></span>text after</td></table><<>>&bogus;',
    'https://a.example/',
  );
  assert.ok(p.text.includes('text after'));
  assert.equal(p.links[0]?.url, 'https://a.example/x');
  assert.doesNotThrow(() => readHtml('', 'https://a.example/'));
  assert.doesNotThrow(() => readHtml('\u0000\uFFFF<<<', 'https://a.example/'));
});

test('readHtml on a 5 MB page: the whole text and the links past the DOM cap are there', () => {
  const rows = Array.from(
    { length: 60_000 },
    (_, i) => `<div class="r"><p>row ${i} text <a href="/x/${i}">l${i}</a></p></div>`,
  );
  const html = `<html><head><title>Big</title><script>${'var a=1;'.repeat(100_000)}</script></head><body>${rows.join('\n')}</body></html>`;
  assert.ok(html.length > 5_000_000 && html.length > MAX_DOM_CHARS);
  const p = readHtml(html, 'https://big.example/');
  assert.equal(p.title, 'Big');
  assert.ok(p.text.includes('row 0 text'));
  assert.ok(p.text.includes('row 59999 text'));
  assert.ok(p.links.length > 4000);
  assert.ok(p.links.some((l) => l.url === 'https://big.example/x/4000'));
});

const DIRECTORY = `<html><body>
<h1>Exhibitors 2025</h1>
<ul class="exhibitors">
  <li class="ex" data-booth="A12"><h3><a href="/ex/acme">Acme   Robotics</a></h3><span class="city">Berlin</span>
      <a class="web" href="https://acme-robotics.example/">website</a></li>
  <li class="ex" data-booth="B3"><h3><a href="/ex/beta">Beta Sensors</a></h3><span class="city"> Munich </span></li>
  <li class="ex"><h3>Gamma GmbH</h3></li>
  <li class="ex"></li>
</ul></body></html>`;

test('selectList reads a small directory: text collapsed, css@attr absolute, @attr of the item, rows without fields dropped', () => {
  const rows = selectList(DIRECTORY, 'https://fair.example/exhibitors', {
    item: 'li.ex',
    fields: { name: 'h3', profile: 'h3 a@href', website: 'a.web@href', city: '.city', booth: '@data-booth' },
  });
  assert.deepEqual(rows, [
    {
      name: 'Acme Robotics',
      profile: 'https://fair.example/ex/acme',
      website: 'https://acme-robotics.example/',
      city: 'Berlin',
      booth: 'A12',
    },
    { name: 'Beta Sensors', profile: 'https://fair.example/ex/beta', city: 'Munich', booth: 'B3' },
    { name: 'Gamma GmbH' },
  ]);
});

test('selectOne: text or attribute of the first match; a bad selector is a parse error naming it', () => {
  assert.equal(selectOne(DIRECTORY, 'https://fair.example/', 'h1'), 'Exhibitors 2025');
  assert.equal(selectOne(DIRECTORY, 'https://fair.example/', 'li.ex a@href'), 'https://fair.example/ex/acme');
  assert.equal(selectOne(DIRECTORY, 'https://fair.example/', '.nothing'), undefined);
  assert.throws(
    () => selectList(DIRECTORY, 'https://fair.example/', { item: 'li[[', fields: { a: 'h3' } }),
    (err: unknown) => err instanceof WebError && err.kind === 'parse' && /li\[\[/.test(err.message),
  );
});

test('a page fetched from the fixture web, read with its final URL', async () => {
  const web = await startWeb({ 'acme.example': { '/about/': { type: 'text/html', body: PAGE } } });
  try {
    const f = new Fetcher(webFetch(web.port).fetch, memStore(), { minIntervalMs: 0 });
    const page = await f.get(web.url('acme.example', '/about/'));
    const p = readHtml(page.text, page.finalUrl);
    assert.equal(p.title, 'Acme Robotics');
    assert.ok(p.links.some((l) => l.url === web.url('acme.example', '/about/about')));
  } finally {
    await web.close();
  }
});
