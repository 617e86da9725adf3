/**
 * The `search` source: the kernel's `web.search` tool (a SearXNG instance or the Brave Search API, configured under
 * `tools.search`; runtime/tools/builtin/web.ts) asked through ctx.tools, then each result's page read with the
 * Fetcher (robots.txt and the per-host pause apply; conditionally, so a page read on an earlier run answers 304 and
 * is skipped). The search engine's snippets are not documents: only pages really fetched become candidates.
 *
 * A failed tool call (no search provider configured, the tool outside the Hand's grant, the provider down) is one
 * SourceError of kind 'search'; a result page that cannot be had is a SourceError of its own kind.
 */
import type { SourceResult, SourceSpec } from '../types.ts';
import type { SourceEnv } from './index.ts';
import { emptyResult, fetchCandidate } from './page.ts';

/** web.search's own ceiling for `limit` */
export const SEARCH_MAX_RESULTS = 50;

interface SearchHit {
  title?: unknown;
  url?: unknown;
  snippet?: unknown;
}

export async function readSearch(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  const res = emptyResult();
  const max = spec.max ?? 50;
  let hits: SearchHit[];
  try {
    res.requests++;
    const out = await env.tools.call<{ results?: unknown }>('web.search', {
      query: spec.query!,
      limit: Math.min(max, SEARCH_MAX_RESULTS),
    });
    if (!Array.isArray(out.output?.results)) throw new Error('web.search answered without a results list');
    hits = out.output.results as SearchHit[];
  } catch (err) {
    res.errors.push({
      source: spec.label,
      kind: 'search',
      message: `web.search "${spec.query}": ${err instanceof Error ? err.message : String(err)}`,
    });
    return res;
  }
  const urls = [
    ...new Set(
      hits.map((h) => (typeof h.url === 'string' ? h.url.split('#')[0]! : '')).filter((u) => /^https?:\/\//.test(u)),
    ),
  ];
  for (const url of urls.slice(0, max)) {
    if (env.signal?.aborted) break;
    const c = await fetchCandidate(url, env, res, spec.label);
    if (c) res.candidates.push(c);
  }
  return res;
}
