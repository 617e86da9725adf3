/**
 * The `page` source, and the one-page reading every other web source shares: a URL fetched through the web kit's
 * Fetcher (robots.txt, the per-host pause, the byte and time caps), HTML read into its text with readHtml, plain
 * text and Markdown taken as they are, anything else (an image, a PDF, a zip) refused as a SourceError of kind
 * 'type'. A conditional request answered 304 gives no candidate and is counted as notModified: the document store
 * has that page already.
 *
 *   { page: 'https://example.com/changelog' }                       the page itself, one candidate
 *   { page: 'https://news.example/', match: '/articles/', max: 20 }  the page's links matching `match`, each read
 *
 * Failures never throw out of a reader: sourceError() turns a WebError (or anything else) into the SourceError the
 * run counts, with the URL and the kind (robots, timeout, too-large, http, network, denied, parse, type).
 */
import type { FetchedPage } from '../../sdk/web/index.ts';
import { readHtml, WebError } from '../../sdk/web/index.ts';
import type { Candidate, SourceError, SourceResult, SourceSpec } from '../types.ts';
import type { SourceEnv } from './index.ts';

/** a failure of a reader that is not the web kit's (a content type, a search tool, a file) */
export class SourceFailure extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly url?: string,
  ) {
    super(message);
    this.name = 'SourceFailure';
  }
}

/** any error → the SourceError a run counts (WebError and SourceFailure keep their kind and URL) */
export function sourceError(err: unknown, source: string, url?: string): SourceError {
  if (err instanceof WebError || err instanceof SourceFailure)
    return { source, url: err.url ?? url, kind: err.kind, message: err.message };
  const e = err as { kind?: unknown; code?: unknown; url?: unknown; message?: unknown } | null;
  const kind =
    typeof e?.kind === 'string'
      ? e.kind
      : (e as Error | null)?.name === 'AbortError'
        ? 'aborted'
        : e?.code === 'CAPABILITY_DENIED'
          ? 'denied'
          : e?.code === 'NET_TIMEOUT'
            ? 'timeout'
            : 'error';
  const where = typeof e?.url === 'string' ? e.url : url;
  return {
    source,
    ...(where !== undefined && { url: where }),
    kind,
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
}

export function emptyResult(): SourceResult {
  return { candidates: [], errors: [], notModified: 0, requests: 0 };
}

const HTML_TYPES = new Set(['text/html', 'application/xhtml+xml']);
const TEXT_TYPES = new Set(['text/plain', 'text/markdown', 'text/x-markdown']);
export const PAGE_ACCEPT = 'text/html, application/xhtml+xml;q=0.9, text/plain;q=0.8, text/markdown;q=0.8';

/** a title for plain text or Markdown: its first heading or line, else the URL's last path segment */
export function textTitle(text: string, url: string): string {
  const first = text
    .split('\n')
    .map((l) => l.replace(/^#+\s*/, '').trim())
    .find((l) => l.length > 0);
  if (first) return first.slice(0, 200);
  try {
    const u = new URL(url);
    return decodeURIComponent(u.pathname.split('/').filter(Boolean).pop() ?? u.hostname);
  } catch {
    return url;
  }
}

function parseTime(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : undefined;
}

/** an answer → its candidate (HTML read, text as is); another content type → SourceFailure 'type' */
export function candidateOf(page: FetchedPage, source: string): Candidate {
  const type = page.contentType || (page.text.trimStart().startsWith('<') ? 'text/html' : 'text/plain');
  if (HTML_TYPES.has(type)) {
    const html = readHtml(page.text, page.finalUrl);
    const published = parseTime(html.meta['article:published_time'] ?? html.meta.date ?? html.meta['dc.date']);
    return {
      url: page.url,
      title: html.title || textTitle('', page.finalUrl),
      text: html.text,
      ...(published !== undefined && { published }),
      source,
    };
  }
  if (TEXT_TYPES.has(type))
    return { url: page.url, title: textTitle(page.text, page.finalUrl), text: page.text, source };
  throw new SourceFailure('type', `${page.url}: ${type} is not read (HTML, plain text or Markdown only)`, page.url);
}

/**
 * one URL read into a candidate, counted in `res`: undefined when it failed (the error is in res.errors) or was
 * not modified since the last run (res.notModified)
 */
export async function fetchCandidate(
  url: string,
  env: SourceEnv,
  res: SourceResult,
  source: string,
  opts: { conditional?: boolean } = {},
): Promise<Candidate | undefined> {
  try {
    res.requests++;
    const page = await env.fetcher.get(url, {
      conditional: opts.conditional ?? true,
      accept: PAGE_ACCEPT,
      ...(env.signal && { signal: env.signal }),
    });
    if (page.notModified) {
      res.notModified++;
      return undefined;
    }
    return candidateOf(page, source);
  } catch (err) {
    const e = sourceError(err, source, url);
    if (e.kind === 'robots' || e.kind === 'denied') res.requests--;
    res.errors.push(e);
    return undefined;
  }
}

function compile(match: string | undefined): RegExp | undefined {
  return match === undefined ? undefined : new RegExp(match);
}

/** `{ page }`: the page itself, or with `match` the page's links that match, each read (up to max) */
export async function readPage(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  const res = emptyResult();
  const url = spec.url!;
  const re = compile(spec.match);
  if (!re) {
    const c = await fetchCandidate(url, env, res, spec.label);
    if (c) res.candidates.push(c);
    return res;
  }
  // a list page: read without validators (its links are what we want, every run), then its matching links
  let links: string[];
  try {
    res.requests++;
    const page = await env.fetcher.get(url, { accept: PAGE_ACCEPT, ...(env.signal && { signal: env.signal }) });
    if (!HTML_TYPES.has(page.contentType))
      throw new SourceFailure('type', `${url}: ${page.contentType} has no links to follow (an HTML page has)`, url);
    const html = readHtml(page.text, page.finalUrl);
    links = [...new Set(html.links.map((l) => l.url.split('#')[0]!))].filter(
      (u) => /^https?:/.test(u) && u !== page.finalUrl && re.test(u),
    );
  } catch (err) {
    res.errors.push(sourceError(err, spec.label, url));
    return res;
  }
  for (const link of links.slice(0, spec.max ?? 50)) {
    if (env.signal?.aborted) break;
    const c = await fetchCandidate(link, env, res, spec.label);
    if (c) res.candidates.push(c);
  }
  return res;
}
