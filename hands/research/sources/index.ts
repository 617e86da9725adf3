/**
 * The Research Hand's sources: the settings' shorthand checked into a SourceSpec (parseSource) and one reader per
 * kind (readSource), each handing over Candidates for the document store (../docs.ts):
 *
 *   { feed: URL, follow?: true }          RSS, Atom, RDF, JSON Feed (./feed.ts)
 *   { page: URL, match?: regex }          one page, or its links matching `match` (./page.ts)
 *   { sitemap: URL, match?: regex }       a sitemap or sitemap index, newest lastmod first (./sitemap.ts)
 *   { search: 'query' }                   the kernel's web.search tool, then each result's page (./search.ts)
 *   { arxiv: 'query', url?: base }        the arXiv API (./arxiv.ts)
 *   { hn: 'query', url?: base, follow? }  Hacker News through Algolia's API (./hn.ts)
 *   { folder: '/path' }                   Markdown, text, HTML and PDF files on the device (./folder.ts)
 *
 * each with `max` (1–500, default 50: the most documents the source gives per run) and an optional `label`. The web
 * goes through the kit's Fetcher (robots.txt, per-host pause, conditional requests, byte and time caps), so a
 * reader's only job is to turn answers into candidates. readSource never throws: every failure is a SourceError in
 * its result, counted by the run, and the run's other sources are read as usual.
 */
import type { Fetcher } from '../../sdk/web/index.ts';
import type { HandContext } from '../../sdk/types.ts';
import type { SourceKind, SourceResult, SourceSpec } from '../types.ts';
import { readArxiv } from './arxiv.ts';
import { readFeed } from './feed.ts';
import { readFolder } from './folder.ts';
import { readHn } from './hn.ts';
import { emptyResult, readPage, sourceError } from './page.ts';
import { readSearch } from './search.ts';
import { readSitemap } from './sitemap.ts';

export { ARXIV_API } from './arxiv.ts';
export { HN_API } from './hn.ts';

export interface SourceEnv {
  fetcher: Fetcher;
  /** web.search and llm.embed go through the tools (ctx.tools.call) */
  tools: HandContext['tools'];
  log: HandContext['log'];
  now: () => number;
  signal?: AbortSignal;
}

export const SOURCE_KINDS: readonly SourceKind[] = ['feed', 'page', 'sitemap', 'search', 'arxiv', 'hn', 'folder'];
export const DEFAULT_MAX = 50;
export const MAX_MAX = 500;
const MAX_QUERY = 500;
const MAX_REGEX = 256;

const READERS: Record<SourceKind, (spec: SourceSpec, env: SourceEnv) => Promise<SourceResult>> = {
  feed: readFeed,
  page: readPage,
  sitemap: readSitemap,
  search: readSearch,
  arxiv: readArxiv,
  hn: readHn,
  folder: readFolder,
};

/** never throws: every failure is a SourceError in the result */
export async function readSource(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  try {
    const reader = READERS[spec.kind];
    if (!reader) throw new Error(`no reader for a source of kind ${String(spec.kind)}`);
    return await reader(spec, env);
  } catch (err) {
    // a reader's own bug (or an unexpected throw in the kit): the source failed, the run goes on
    const res = emptyResult();
    res.errors.push(sourceError(err, spec.label, spec.url ?? spec.path));
    env.log.warn(`research source ${spec.label} failed`, { error: (err as Error)?.message ?? String(err) });
    return res;
  }
}

/** the fields each kind takes besides its own key, `max` and `label` */
const EXTRA: Record<SourceKind, readonly string[]> = {
  feed: ['follow'],
  page: ['match'],
  sitemap: ['match'],
  search: [],
  arxiv: ['url'],
  hn: ['url', 'follow'],
  folder: [],
};

const WHAT = SOURCE_KINDS.join(', ');

function httpUrl(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length > 2048) return undefined;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

function shortLabel(kind: SourceKind, value: string): string {
  if (kind === 'feed' || kind === 'page' || kind === 'sitemap') return `${kind}:${new URL(value).hostname}`;
  return `${kind}:${value.length > 40 ? `${value.slice(0, 39)}…` : value}`;
}

/** the settings' shorthand → SourceSpec, or a message naming the field (`sources[2].feed: must be an http(s) URL`) */
export function parseSource(raw: unknown, where: string): SourceSpec | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return `${where}: must be an object such as { feed: 'https://example.com/feed.xml' } (one of ${WHAT})`;
  const o = raw as Record<string, unknown>;
  const kinds = SOURCE_KINDS.filter((k) => k in o);
  if (kinds.length === 0) return `${where}: names no source; write one of ${WHAT} (e.g. { feed: 'https://…' })`;
  if (kinds.length > 1)
    return `${where}: has both ${kinds[0]} and ${kinds[1]}; one source is one of ${WHAT} (write two sources instead)`;
  const kind = kinds[0]!;
  const allowed = new Set([kind, 'max', 'label', ...EXTRA[kind]]);
  for (const key of Object.keys(o))
    if (!allowed.has(key))
      return `${where}.${key}: a ${kind} source has no ${key}; it takes ${[...allowed].filter((k) => k !== kind).join(', ')}`;
  const value = o[kind];
  const spec: SourceSpec = { kind, label: '' };
  if (kind === 'feed' || kind === 'page' || kind === 'sitemap') {
    const url = httpUrl(value);
    if (!url) return `${where}.${kind}: must be an http(s) URL (https://example.com/…)`;
    spec.url = url;
  } else if (kind === 'folder') {
    if (typeof value !== 'string' || !value.startsWith('/') || value.includes('\0'))
      return `${where}.folder: must be an absolute path (/home/talon/notes)`;
    spec.path = value;
  } else {
    if (typeof value !== 'string' || value.trim().length === 0 || value.length > MAX_QUERY)
      return `${where}.${kind}: must be a search query (words, 1–${MAX_QUERY} characters)`;
    spec.query = value.trim();
  }
  if (o.url !== undefined) {
    const url = httpUrl(o.url);
    if (!url) return `${where}.url: must be an http(s) URL of the ${kind} API (or left out for the public one)`;
    spec.url = url;
  }
  if (o.max !== undefined) {
    if (typeof o.max !== 'number' || !Number.isInteger(o.max) || o.max < 1 || o.max > MAX_MAX)
      return `${where}.max: must be a whole number from 1 to ${MAX_MAX} (default ${DEFAULT_MAX})`;
    spec.max = o.max;
  } else spec.max = DEFAULT_MAX;
  if (o.match !== undefined) {
    if (typeof o.match !== 'string' || o.match.length === 0 || o.match.length > MAX_REGEX)
      return `${where}.match: must be a regular expression of 1–${MAX_REGEX} characters ('/blog/2026/')`;
    try {
      new RegExp(o.match);
    } catch (err) {
      return `${where}.match: not a regular expression (${(err as Error).message}); write e.g. '/articles/'`;
    }
    spec.match = o.match;
  }
  if (o.follow !== undefined) {
    if (typeof o.follow !== 'boolean') return `${where}.follow: must be true or false`;
    spec.follow = o.follow;
  }
  if (o.label !== undefined) {
    if (typeof o.label !== 'string' || o.label.trim().length === 0 || o.label.length > 80)
      return `${where}.label: must be a short name (1–80 characters)`;
    spec.label = o.label.trim();
  } else spec.label = shortLabel(kind, spec.query ?? spec.path ?? spec.url!);
  return spec;
}
