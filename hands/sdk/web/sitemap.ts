/**
 * Sitemaps read with fast-xml-parser: a <urlset> (each <url>'s <loc> and <lastmod>) or a <sitemapindex> (its child
 * sitemaps' <loc>), namespace prefixes ignored; also the plain-text form (one URL per line). URLs are made absolute
 * against the sitemap's own URL and kept only when http(s); at most MAX_SITEMAP_URLS of them (the protocol's own
 * limit). Text that is none of these (an HTML page, a feed, garbage) is WebError 'parse' saying what it looked like.
 */
import { XMLParser } from 'fast-xml-parser';
import { WebError } from './fetcher.ts';
import type { Sitemap } from './types.ts';

export const MAX_SITEMAP_URLS = 50_000;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]);
const str = (v: unknown): string =>
  typeof v === 'string'
    ? v
    : typeof v === 'number'
      ? String(v)
      : isObj(v) && typeof v['#text'] === 'string'
        ? v['#text']
        : '';

function absolute(v: string, base: string): string | undefined {
  const s = v.trim();
  if (!s) return undefined;
  try {
    const u = new URL(s, base);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (name) => name === 'url' || name === 'sitemap',
});

/** a sitemap (XML urlset or sitemapindex, or one URL per line) read into a Sitemap; anything else is WebError 'parse' */
export function parseSitemap(text: string, url: string): Sitemap {
  const src = text.replace(/^\uFEFF/, '').trim();
  if (!src) throw new WebError('parse', url, `${url} is empty, not a sitemap`);
  if (!src.startsWith('<')) return plainText(src, url);
  if (/<html[\s>]|<!doctype html/i.test(src.slice(0, 2000)))
    throw new WebError(
      'parse',
      url,
      `${url} is an HTML page, not a sitemap (a sitemap's root is <urlset> or <sitemapindex>)`,
    );
  let doc: unknown;
  try {
    doc = parser.parse(src);
  } catch (err) {
    throw new WebError('parse', url, `${url} is not well-formed XML, so not a sitemap: ${(err as Error).message}`);
  }
  const root = isObj(doc) ? doc : {};
  const seen = new Set<string>();
  if (isObj(root.urlset) || root.urlset === '') {
    const urls: Sitemap['urls'] = [];
    const set = isObj(root.urlset) ? root.urlset : {};
    for (const u of arr(set.url)) {
      if (urls.length >= MAX_SITEMAP_URLS) break;
      if (!isObj(u)) continue;
      const loc = absolute(str(u.loc), url);
      if (!loc || seen.has(loc)) continue;
      seen.add(loc);
      const t = Date.parse(str(u.lastmod).trim());
      urls.push(Number.isFinite(t) ? { url: loc, lastModified: t } : { url: loc });
    }
    return { urls, sitemaps: [] };
  }
  if (isObj(root.sitemapindex) || root.sitemapindex === '') {
    const sitemaps: string[] = [];
    const index = isObj(root.sitemapindex) ? root.sitemapindex : {};
    for (const s of arr(index.sitemap)) {
      if (sitemaps.length >= MAX_SITEMAP_URLS) break;
      const loc = isObj(s) ? absolute(str(s.loc), url) : undefined;
      if (!loc || seen.has(loc)) continue;
      seen.add(loc);
      sitemaps.push(loc);
    }
    return { urls: [], sitemaps };
  }
  const rootName = Object.keys(root).find((k) => !k.startsWith('?') && !k.startsWith('#')) ?? '?';
  const looks = /^(rss|feed|rdf|RDF)$/.test(rootName) ? 'a feed' : 'XML';
  throw new WebError(
    'parse',
    url,
    `${url} is ${looks} with the root <${rootName}>, not a sitemap (its root would be <urlset> or <sitemapindex>)`,
  );
}

/** the text form: one absolute URL per line (blank lines and # comments skipped); every other line must be a URL */
function plainText(src: string, url: string): Sitemap {
  const urls: Sitemap['urls'] = [];
  const seen = new Set<string>();
  let bad = 0;
  let lines = 0;
  for (const line of src.split(/\r?\n/)) {
    const l = line.trim();
    if (!l || l.startsWith('#')) continue;
    lines++;
    const u = /^https?:\/\/\S+$/i.test(l) ? absolute(l, url) : undefined;
    if (!u) {
      bad++;
      if (bad > 3 && bad * 10 > lines) break;
      continue;
    }
    if (seen.has(u) || urls.length >= MAX_SITEMAP_URLS) continue;
    seen.add(u);
    urls.push({ url: u });
  }
  if (urls.length === 0 || bad * 10 > lines)
    throw new WebError(
      'parse',
      url,
      `${url} is text that is not a sitemap: ${bad} of its ${lines} lines are not http(s) URLs ` +
        '(a text sitemap has one absolute URL per line)',
    );
  return { urls, sitemaps: [] };
}
