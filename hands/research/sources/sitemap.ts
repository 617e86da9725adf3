/**
 * The `sitemap` source: a sitemap (`<urlset>`) or a sitemap index (`<sitemapindex>`, its child sitemaps read one
 * level deep, never an index of indexes), parsed with the web kit's parseSitemap. The page URLs are filtered by
 * `match` (a regular expression, checked by parseSource), newest `lastmod` first (those without one last), and up to
 * `max` pages read, each conditionally: a page already read and unchanged answers 304 and gives no candidate.
 *
 * The sitemap itself is fetched conditionally too: an unchanged sitemap means no page changed (its lastmods would
 * have), so a 304 ends the run for this source with nothing to read. A page that failed on one run is read again
 * only when the sitemap changes.
 */
import { parseSitemap } from '../../sdk/web/index.ts';
import type { SourceResult, SourceSpec } from '../types.ts';
import type { SourceEnv } from './index.ts';
import { emptyResult, fetchCandidate, sourceError } from './page.ts';

/** the most child sitemaps of an index read in one run */
export const MAX_CHILD_SITEMAPS = 20;
const SITEMAP_ACCEPT = 'application/xml, text/xml;q=0.9, */*;q=0.5';

type Entry = { url: string; lastModified?: number };

async function readOne(
  url: string,
  env: SourceEnv,
  res: SourceResult,
  label: string,
): Promise<{ urls: Entry[]; sitemaps: string[] } | undefined> {
  try {
    res.requests++;
    const page = await env.fetcher.get(url, {
      conditional: true,
      accept: SITEMAP_ACCEPT,
      ...(env.signal && { signal: env.signal }),
    });
    if (page.notModified) {
      res.notModified++;
      return undefined;
    }
    return parseSitemap(page.text, page.finalUrl);
  } catch (err) {
    const e = sourceError(err, label, url);
    if (e.kind === 'robots' || e.kind === 'denied') res.requests--;
    res.errors.push(e);
    return undefined;
  }
}

export async function readSitemap(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  const res = emptyResult();
  const top = await readOne(spec.url!, env, res, spec.label);
  if (!top) return res;
  const entries: Entry[] = [...top.urls];
  for (const child of top.sitemaps.slice(0, MAX_CHILD_SITEMAPS)) {
    if (env.signal?.aborted) break;
    const sm = await readOne(child, env, res, spec.label);
    if (sm) entries.push(...sm.urls); // an index inside an index is not followed
  }
  const re = spec.match === undefined ? undefined : new RegExp(spec.match);
  const seen = new Set<string>();
  const pages = entries
    .filter((e) => /^https?:/.test(e.url) && (!re || re.test(e.url)) && !seen.has(e.url) && seen.add(e.url))
    .sort((a, b) => (b.lastModified ?? -1) - (a.lastModified ?? -1))
    .slice(0, spec.max ?? 50);
  for (const p of pages) {
    if (env.signal?.aborted) break;
    const c = await fetchCandidate(p.url, env, res, spec.label);
    if (c)
      res.candidates.push({
        ...c,
        ...(c.published === undefined && p.lastModified !== undefined && { published: p.lastModified }),
      });
  }
  return res;
}
