/**
 * The `hn` source: Hacker News stories through the Algolia HN Search API (JSON: `hits` with objectID, title, url,
 * story_text, created_at_i), newest first by default (search_by_date). The API is meant for programs: robots.txt is
 * not asked (`ignoreRobots`).
 *
 * Each story is a candidate with the objectID as itemId, the linked URL (or the HN discussion for an Ask HN), and
 * as text the title and the story's own text; with `follow: true` the linked page is read (conditionally) and its
 * text used instead; a linked page that cannot be had keeps the story's text and counts the error.
 */
import { htmlToText } from '../../sdk/web/index.ts';
import type { Candidate, SourceResult, SourceSpec } from '../types.ts';
import type { SourceEnv } from './index.ts';
import { emptyResult, fetchCandidate, SourceFailure, sourceError } from './page.ts';

export const HN_API = 'https://hn.algolia.com/api/v1/search_by_date';
export const HN_ITEM = 'https://news.ycombinator.com/item?id=';

interface Hit {
  objectID?: unknown;
  title?: unknown;
  url?: unknown;
  story_text?: unknown;
  created_at_i?: unknown;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

export async function readHn(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  const res = emptyResult();
  const max = spec.max ?? 50;
  const url = new URL(spec.url ?? HN_API);
  url.searchParams.set('query', spec.query!);
  url.searchParams.set('tags', 'story');
  url.searchParams.set('hitsPerPage', String(max));
  const stories: Candidate[] = [];
  try {
    res.requests++;
    const page = await env.fetcher.get(url.href, {
      ignoreRobots: true,
      accept: 'application/json',
      ...(env.signal && { signal: env.signal }),
    });
    let body: { hits?: unknown };
    try {
      body = JSON.parse(page.text) as { hits?: unknown };
    } catch {
      throw new SourceFailure('parse', `${url.href}: the answer is not JSON`, url.href);
    }
    if (!Array.isArray(body?.hits)) throw new SourceFailure('parse', `${url.href}: the answer has no hits list`);
    for (const h of (body.hits as Hit[]).slice(0, max)) {
      const id = typeof h.objectID === 'string' || typeof h.objectID === 'number' ? String(h.objectID) : '';
      const title = str(h.title);
      if (!id || !title) continue;
      const own = str(h.story_text) ? htmlToText(str(h.story_text)) : '';
      const at = typeof h.created_at_i === 'number' ? h.created_at_i * 1000 : undefined;
      stories.push({
        url: /^https?:\/\//.test(str(h.url)) ? str(h.url) : `${HN_ITEM}${id}`,
        title,
        text: own ? `${title}\n\n${own}` : title,
        ...(at !== undefined && { published: at }),
        itemId: id,
        source: spec.label,
      });
    }
  } catch (err) {
    res.errors.push(sourceError(err, spec.label, url.href));
    return res;
  }
  if (!spec.follow) {
    res.candidates.push(...stories);
    return res;
  }
  for (const s of stories) {
    if (env.signal?.aborted) break;
    if (s.url.startsWith(HN_ITEM)) {
      res.candidates.push(s);
      continue;
    }
    const errorsBefore = res.errors.length;
    const page = await fetchCandidate(s.url, env, res, spec.label);
    if (page) res.candidates.push({ ...s, text: page.text ? `${s.title}\n\n${page.text}` : s.text });
    else if (res.errors.length > errorsBefore) res.candidates.push(s);
  }
  return res;
}
