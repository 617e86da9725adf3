/**
 * parseFeed on samples of each format (RSS 2.0, Atom, RDF, JSON Feed): ids, absolute URLs, text without tags, dates,
 * authors; what is not a feed is a parse error saying what it looked like; a feed served by the fixture web.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FEED_ITEMS, parseFeed } from '../../../../hands/sdk/web/feed.ts';
import { Fetcher, WebError } from '../../../../hands/sdk/web/fetcher.ts';
import { startWeb } from '../../../fixtures/web/server.ts';
import { webFetch } from '../../../helpers/web-fetch.ts';
import { memStore } from '../../../helpers/mem-store.ts';

const RSS = `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Robot News &amp; More</title><link>https://news.example/</link><description>d</description>
<item><title>Acme raises &lt;b&gt;$10M&lt;/b&gt;</title><link>/2025/acme-raises</link>
  <guid isPermaLink="false">news-1</guid><pubDate>Tue, 10 Jun 2025 04:00:00 GMT</pubDate>
  <description>&lt;p&gt;Acme &amp;amp; partners &lt;a href="/x"&gt;raised&lt;/a&gt; money.&lt;/p&gt;</description>
  <content:encoded><![CDATA[<p>Full <b>story</b> here.</p><script>evil()</script>]]></content:encoded>
  <dc:creator>Ann Writer</dc:creator></item>
<item><title>No guid</title><link>https://news.example/2025/no-guid</link><description>plain</description>
  <pubDate>not a date</pubDate></item>
<item><title>Permalink guid only</title><guid>https://news.example/2025/perma</guid></item>
</channel></rss>`;

const ATOM = `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title type="text">Lab Blog</title><id>urn:lab</id>
<link rel="self" href="https://lab.example/atom.xml"/>
<entry><title type="html">Grippers &lt;em&gt;that&lt;/em&gt; see</title><id>urn:uuid:1</id>
  <link rel="alternate" href="/posts/grippers"/><link rel="edit" href="/edit/1"/>
  <updated>2025-02-01T10:00:00Z</updated><published>2025-01-31T09:30:00Z</published>
  <summary>Short summary.</summary><content type="html">&lt;p&gt;Long &lt;i&gt;content&lt;/i&gt;.&lt;/p&gt;</content>
  <author><name>Dr. Lab</name></author></entry>
</feed>`;

const RDF = `<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://old.example/"><title>Old Site</title><link>https://old.example/</link><description>x</description></channel>
<item rdf:about="https://old.example/item/1"><title>RDF item</title><link>https://old.example/item/1</link>
  <description>An RDF description.</description><dc:date>2024-12-24T18:00:00Z</dc:date><dc:creator>Old Author</dc:creator></item>
</rdf:RDF>`;

const JSON_FEED = JSON.stringify({
  version: 'https://jsonfeed.org/version/1.1',
  title: 'JSON Journal',
  home_page_url: 'https://json.example/',
  items: [
    {
      id: 'j-1',
      url: '/entries/1',
      title: 'Edge AI',
      content_html: '<p>Edge <b>AI</b> &amp; robots</p>',
      date_published: '2025-03-03T12:00:00Z',
      authors: [{ name: 'Jay' }],
    },
    { id: 'j-2', content_text: 'Only text, no title or url' },
  ],
});

test('RSS 2.0: guid as id, link absolute against the feed URL, text without tags, date, authors', () => {
  const f = parseFeed(RSS, 'https://news.example/feed.xml');
  assert.equal(f.format, 'rss');
  assert.equal(f.title, 'Robot News & More');
  assert.equal(f.items.length, 3);
  const [a, b, c] = f.items;
  assert.equal(a!.id, 'news-1');
  assert.equal(a!.url, 'https://news.example/2025/acme-raises');
  assert.equal(a!.title, 'Acme raises $10M');
  assert.equal(a!.summary, 'Acme & partners raised money.');
  assert.equal(a!.content, 'Full story here.');
  assert.equal(a!.published, Date.parse('2025-06-10T04:00:00Z'));
  assert.deepEqual(a!.authors, ['Ann Writer']);
  assert.equal(b!.id, 'https://news.example/2025/no-guid', 'no guid: the link is the id');
  assert.equal(b!.published, undefined);
  assert.equal(c!.url, 'https://news.example/2025/perma', 'a permalink guid is the URL');
});

test('Atom: id, the alternate link, html title as text, published, author', () => {
  const f = parseFeed(ATOM, 'https://lab.example/atom.xml');
  assert.equal(f.format, 'atom');
  assert.equal(f.title, 'Lab Blog');
  const [e] = f.items;
  assert.equal(e!.id, 'urn:uuid:1');
  assert.equal(e!.url, 'https://lab.example/posts/grippers');
  assert.equal(e!.title, 'Grippers that see');
  assert.equal(e!.summary, 'Short summary.');
  assert.equal(e!.content, 'Long content.');
  assert.equal(e!.published, Date.parse('2025-01-31T09:30:00Z'));
  assert.deepEqual(e!.authors, ['Dr. Lab']);
});

test('RDF (RSS 1.0): rdf:about as id, dc:date, dc:creator', () => {
  const f = parseFeed(RDF, 'https://old.example/index.rdf');
  assert.equal(f.format, 'rdf');
  assert.equal(f.title, 'Old Site');
  const [i] = f.items;
  assert.equal(i!.id, 'https://old.example/item/1');
  assert.equal(i!.url, 'https://old.example/item/1');
  assert.equal(i!.summary, 'An RDF description.');
  assert.equal(i!.published, Date.parse('2024-12-24T18:00:00Z'));
  assert.deepEqual(i!.authors, ['Old Author']);
});

test('JSON Feed: id, url absolute, content_html as text; an item without a title takes its text', () => {
  const f = parseFeed(JSON_FEED, 'https://json.example/feed.json');
  assert.equal(f.format, 'json');
  assert.equal(f.title, 'JSON Journal');
  const [a, b] = f.items;
  assert.equal(a!.id, 'j-1');
  assert.equal(a!.url, 'https://json.example/entries/1');
  assert.equal(a!.content, 'Edge AI & robots');
  assert.equal(a!.published, Date.parse('2025-03-03T12:00:00Z'));
  assert.deepEqual(a!.authors, ['Jay']);
  assert.equal(b!.id, 'j-2');
  assert.equal(b!.url, '');
  assert.equal(b!.title, 'Only text, no title or url');
});

test('what is not a feed is a parse error saying what it looked like', () => {
  const cases: Array<[string, RegExp]> = [
    ['<!doctype html><html><head><title>Shop</title></head><body>hi</body></html>', /an HTML page, not a feed/],
    ['{"name":"not a feed","items":3}', /JSON that is not a JSON Feed/],
    ['<?xml version="1.0"?><urlset><url><loc>https://a.example/</loc></url></urlset>', /XML that is not RSS.*<urlset>/],
    ['%PDF-1.4 garbage \u0000\u0001', /neither XML nor JSON/],
    ['', /empty/],
  ];
  for (const [text, why] of cases)
    assert.throws(
      () => parseFeed(text, 'https://x.example/feed'),
      (err: unknown) => err instanceof WebError && err.kind === 'parse' && why.test(err.message),
      `for ${JSON.stringify(text.slice(0, 30))}`,
    );
});

test(`at most ${MAX_FEED_ITEMS} items are read`, () => {
  const items = Array.from(
    { length: MAX_FEED_ITEMS + 50 },
    (_, i) => `<item><title>t${i}</title><link>https://n.example/${i}</link></item>`,
  ).join('');
  const f = parseFeed(`<rss version="2.0"><channel><title>Many</title>${items}</channel></rss>`, 'https://n.example/f');
  assert.equal(f.items.length, MAX_FEED_ITEMS);
});

test('a feed from the fixture web, fetched and parsed', async () => {
  const web = await startWeb({ 'news.example': { '/feed.xml': { type: 'application/rss+xml', body: RSS } } });
  try {
    const f = new Fetcher(webFetch(web.port).fetch, memStore(), { minIntervalMs: 0 });
    const page = await f.get(web.url('news.example', '/feed.xml'));
    const feed = parseFeed(page.text, page.finalUrl);
    assert.equal(feed.items[0]!.url, web.url('news.example', '/2025/acme-raises'));
  } finally {
    await web.close();
  }
});
