/**
 * The `feed` source: an RSS, Atom, RDF or JSON feed read with the web kit's parseFeed. The feed is fetched
 * conditionally (its ETag / Last-Modified kept by the Fetcher): a 304 gives no candidates and counts as notModified.
 * Each item is a candidate with its guid as itemId (so the same item under a new URL is the same document), its text
 * the item's content, else its summary, else its title. With `follow: true` each item's page is fetched too (also
 * conditionally: a page already read answers 304 and is skipped) and its readable text replaces the feed's; a page
 * that cannot be had keeps the feed's text and counts the error.
 *
 * A "feed" that is not one (an HTML page, a broken XML) is a SourceError of kind 'parse'; when the HTML page links
 * to feeds of its own, the message names them so the settings can be fixed.
 */
import { parseFeed, readHtml } from '../../sdk/web/index.ts';
import type { Candidate, SourceResult, SourceSpec } from '../types.ts';
import type { SourceEnv } from './index.ts';
import { emptyResult, fetchCandidate, sourceError } from './page.ts';

const FEED_ACCEPT =
  'application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5';

export async function readFeed(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  const res = emptyResult();
  const url = spec.url!;
  const max = spec.max ?? 50;
  let items: Candidate[];
  try {
    res.requests++;
    const page = await env.fetcher.get(url, {
      conditional: true,
      accept: FEED_ACCEPT,
      ...(env.signal && { signal: env.signal }),
    });
    if (page.notModified) {
      res.notModified++;
      return res;
    }
    let feed: ReturnType<typeof parseFeed>;
    try {
      feed = parseFeed(page.text, page.finalUrl);
    } catch (err) {
      const e = sourceError(err, spec.label, url);
      if (page.contentType === 'text/html') {
        let feeds: string[] = [];
        try {
          feeds = readHtml(page.text, page.finalUrl).feeds;
        } catch {
          // not even HTML: the parse error stands as it is
        }
        e.message = `${url} is an HTML page, not a feed${feeds.length ? `; it links to ${feeds.join(', ')}: use that as feed` : ''}`;
      }
      res.errors.push(e);
      return res;
    }
    items = [...feed.items]
      .sort((a, b) => (b.published ?? 0) - (a.published ?? 0))
      .slice(0, max)
      .map((it) => ({
        url: it.url,
        title: it.title || it.url,
        text: (it.content ?? '').trim() || it.summary.trim() || it.title,
        ...(it.published !== undefined && { published: it.published }),
        ...(it.id && { itemId: it.id }),
        source: spec.label,
      }));
  } catch (err) {
    const e = sourceError(err, spec.label, url);
    if (e.kind === 'robots' || e.kind === 'denied') res.requests--;
    res.errors.push(e);
    return res;
  }
  if (!spec.follow) {
    res.candidates.push(...items);
    return res;
  }
  for (const item of items) {
    if (env.signal?.aborted) break;
    if (!/^https?:/.test(item.url)) {
      res.candidates.push(item);
      continue;
    }
    const before = { errors: res.errors.length, notModified: res.notModified };
    const page = await fetchCandidate(item.url, env, res, spec.label);
    if (page) res.candidates.push({ ...item, title: item.title || page.title, text: page.text || item.text });
    else if (res.errors.length > before.errors) res.candidates.push(item);
    // else: 304, the page was read on an earlier run
  }
  return res;
}
