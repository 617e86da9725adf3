/** parseSitemap: a urlset with lastmod, a sitemap index, the plain-text form, and what is not a sitemap. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSitemap } from '../../../../hands/sdk/web/sitemap.ts';
import { WebError } from '../../../../hands/sdk/web/fetcher.ts';

test('a urlset: loc absolute, lastmod as ms epoch, duplicates once, non-http dropped', () => {
  const s = parseSitemap(
    `<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://acme.example/</loc><lastmod>2025-05-01</lastmod></url>
  <url><loc> /products?a=1&amp;b=2 </loc><lastmod>2025-05-02T10:00:00+00:00</lastmod><priority>0.5</priority></url>
  <url><loc>https://acme.example/</loc></url>
  <url><loc>ftp://acme.example/file</loc></url>
  <url><loc>https://acme.example/no-date</loc><lastmod>soon</lastmod></url>
</urlset>`,
    'https://acme.example/sitemap.xml',
  );
  assert.deepEqual(s.sitemaps, []);
  assert.deepEqual(s.urls, [
    { url: 'https://acme.example/', lastModified: Date.parse('2025-05-01') },
    { url: 'https://acme.example/products?a=1&b=2', lastModified: Date.parse('2025-05-02T10:00:00Z') },
    { url: 'https://acme.example/no-date' },
  ]);
});

test('a single <url> and a prefixed namespace are read too', () => {
  const s = parseSitemap(
    '<sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9"><sm:url><sm:loc>https://a.example/x</sm:loc></sm:url></sm:urlset>',
    'https://a.example/sitemap.xml',
  );
  assert.deepEqual(s.urls, [{ url: 'https://a.example/x' }]);
});

test('a sitemap index lists its child sitemaps', () => {
  const s = parseSitemap(
    `<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://acme.example/sitemap-posts.xml</loc><lastmod>2025-01-01</lastmod></sitemap>
  <sitemap><loc>/sitemap-pages.xml</loc></sitemap></sitemapindex>`,
    'https://acme.example/sitemap_index.xml',
  );
  assert.deepEqual(s.urls, []);
  assert.deepEqual(s.sitemaps, ['https://acme.example/sitemap-posts.xml', 'https://acme.example/sitemap-pages.xml']);
});

test('a text sitemap: one URL per line', () => {
  const s = parseSitemap(
    'https://t.example/a\r\nhttps://t.example/b\n\n# comment\nhttps://t.example/a\n',
    'https://t.example/sitemap.txt',
  );
  assert.deepEqual(
    s.urls.map((u) => u.url),
    ['https://t.example/a', 'https://t.example/b'],
  );
});

test('what is not a sitemap is a parse error', () => {
  const cases: Array<[string, RegExp]> = [
    ['<!doctype html><html><body>Not found</body></html>', /HTML page, not a sitemap/],
    ['<rss version="2.0"><channel><title>x</title></channel></rss>', /a feed with the root <rss>/],
    ['just some words\nand more words\nnothing here\nat all', /not a sitemap/],
    ['', /empty/],
  ];
  for (const [text, why] of cases)
    assert.throws(
      () => parseSitemap(text, 'https://x.example/sitemap.xml'),
      (err: unknown) => err instanceof WebError && err.kind === 'parse' && why.test(err.message),
      `for ${JSON.stringify(text.slice(0, 30))}`,
    );
});

test('at most 50 000 URLs', () => {
  const body = Array.from({ length: 50_010 }, (_, i) => `<url><loc>https://big.example/${i}</loc></url>`).join('');
  const s = parseSitemap(`<urlset>${body}</urlset>`, 'https://big.example/sitemap.xml');
  assert.equal(s.urls.length, 50_000);
});
