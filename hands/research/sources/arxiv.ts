/**
 * The `arxiv` source: the arXiv API (an Atom feed of the newest papers matching a query, read with the web kit's
 * parseFeed). The API is meant for programs, so robots.txt is not asked (`ignoreRobots`); the Fetcher's per-host
 * pause still spaces the calls (arXiv asks for a few seconds between them).
 *
 *   { arxiv: 'quantum error correction' }      → search_query=all:quantum AND all:error AND all:correction
 *   { arxiv: 'cat:cs.AI AND ti:agents' }        → passed as it is (it already uses arXiv's field syntax)
 *   { arxiv: '…', url: 'http://127.0.0.1:8080/api/query' }   another base (a mirror, the tests' fake)
 *
 * Each entry is a candidate whose itemId is the arXiv id without its version (`2401.01234`, `hep-th/9901001`): a
 * revised paper (v2) is the same item, so the document store keeps one document for it. Its text is the title and
 * the abstract.
 */
import { parseFeed } from '../../sdk/web/index.ts';
import type { SourceResult, SourceSpec } from '../types.ts';
import type { SourceEnv } from './index.ts';
import { emptyResult, sourceError } from './page.ts';

export const ARXIV_API = 'https://export.arxiv.org/api/query';

/** the user's words → arXiv's search_query (each word in all fields, all required) */
export function arxivQuery(query: string): string {
  const q = query.trim();
  if (/[:"()]|\b(AND|OR|ANDNOT)\b/.test(q)) return q;
  return q
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => `all:${w}`)
    .join(' AND ');
}

/** `http://arxiv.org/abs/2401.01234v2` → `2401.01234`; an id that is not an abs URL is kept as it is */
export function arxivId(id: string): string {
  const m = /\/abs\/(.+?)(?:v\d+)?$/.exec(id);
  return m ? m[1]! : id.replace(/v\d+$/, '');
}

export async function readArxiv(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  const res = emptyResult();
  const max = spec.max ?? 50;
  const url = new URL(spec.url ?? ARXIV_API);
  url.searchParams.set('search_query', arxivQuery(spec.query!));
  url.searchParams.set('sortBy', 'submittedDate');
  url.searchParams.set('sortOrder', 'descending');
  url.searchParams.set('max_results', String(max));
  try {
    res.requests++;
    const page = await env.fetcher.get(url.href, {
      ignoreRobots: true,
      accept: 'application/atom+xml, application/xml;q=0.9',
      ...(env.signal && { signal: env.signal }),
    });
    const feed = parseFeed(page.text, page.finalUrl);
    for (const it of feed.items.slice(0, max)) {
      const abstract = (it.content ?? '').trim() || it.summary.trim();
      res.candidates.push({
        url: it.url || it.id,
        title: it.title,
        text: `${it.title}\n\n${abstract}`.trim(),
        ...(it.published !== undefined && { published: it.published }),
        itemId: arxivId(it.id || it.url),
        source: spec.label,
      });
    }
  } catch (err) {
    res.errors.push(sourceError(err, spec.label, url.href));
  }
  return res;
}
