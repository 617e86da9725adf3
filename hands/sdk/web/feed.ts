/**
 * Feeds read with feedsmith: RSS (0.9x, 2.0), Atom (0.3, 1.0), RDF (RSS 1.0) and JSON Feed (1.0, 1.1), all as one
 * Feed (./types.ts): each item's id is its guid / id, else its link; its URL absolute against the feed's URL; its
 * summary and content as plain text (./text.ts htmlToText); its date in ms epoch when the feed gives a readable one.
 * Text that is not a feed (an HTML page, JSON that is not a JSON Feed, garbage) is WebError 'parse' with a message
 * saying what it looked like. At most MAX_FEED_ITEMS items are read (a feed is the newest few, not an archive).
 */
import { parseFeed as feedsmith } from 'feedsmith';
import { WebError } from './fetcher.ts';
import { htmlToText } from './text.ts';
import type { Feed, FeedItem } from './types.ts';

export const MAX_FEED_ITEMS = 1000;
const MAX_TEXT = 100_000;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]);

/** a string from a value feedsmith gives: a string, or `{ value }` (Atom's text constructs) */
function str(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (isObj(v) && typeof v.value === 'string') return v.value;
  return '';
}

/** as text: HTML when it looks like it (tags or entities), else as it is; whitespace collapsed */
function text(v: unknown, max = MAX_TEXT): string {
  const s = str(v);
  const t = /<[a-z!/]|&#?\w+;/i.test(s) ? htmlToText(s) : s;
  const flat = t.replace(/[ \t\r\f\v]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

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

function date(...vs: unknown[]): number | undefined {
  for (const v of vs) {
    const s = str(Array.isArray(v) ? v[0] : v).trim();
    if (!s) continue;
    const t = Date.parse(s);
    if (Number.isFinite(t)) return t;
  }
  return undefined;
}

function people(...vs: unknown[]): string[] {
  const out: string[] = [];
  for (const v of vs)
    for (const p of arr(v)) {
      const name = typeof p === 'string' ? p : isObj(p) ? str(p.name) || str(p.email) : '';
      const clean = text(name, 200);
      if (clean && !out.includes(clean)) out.push(clean);
    }
  return out;
}

function item(
  raw: {
    id: string;
    link: string;
    title: string;
    published?: number;
    summary: string;
    content: string;
    authors: string[];
  },
  base: string,
): FeedItem | undefined {
  const url =
    absolute(raw.link, base) ?? (/^https?:\/\//i.test(raw.id.trim()) ? absolute(raw.id, base) : undefined) ?? '';
  const id = raw.id.trim() || url;
  if (!id) return undefined;
  const summary = raw.summary || raw.content.slice(0, 1000);
  return {
    id,
    url,
    title: raw.title || summary.slice(0, 120),
    ...(raw.published !== undefined && { published: raw.published }),
    summary,
    ...(raw.content && { content: raw.content }),
    authors: raw.authors,
  };
}

/** what a text that is not a feed looks like, for the error message */
function lookOf(s: string): string {
  const head = s
    .replace(/^\uFEFF/, '')
    .trimStart()
    .slice(0, 2000);
  if (!head) return 'an empty answer, not a feed';
  if (/^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*<!doctype html|^<html[\s>]|<html[\s>]/i.test(head))
    return 'an HTML page, not a feed (look for its <link rel="alternate" type="application/rss+xml">)';
  if (head.startsWith('{') || head.startsWith('[')) {
    try {
      JSON.parse(s);
      return 'JSON that is not a JSON Feed (no `version: "https://jsonfeed.org/version/1.1"` and `items`)';
    } catch {
      return 'neither XML nor valid JSON';
    }
  }
  if (head.startsWith('<')) {
    const root = /<([A-Za-z][\w:.-]*)/.exec(head.replace(/<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<![^>]*>/g, ''));
    return `XML that is not RSS, Atom or RDF (its root is <${root?.[1] ?? '?'}>)`;
  }
  return 'text that is neither XML nor JSON';
}

/** a feed (RSS, Atom, RDF, JSON Feed) read into a Feed; anything else is WebError 'parse' */
export function parseFeed(input: string, url: string): Feed {
  let parsed: { format: string; feed: unknown };
  try {
    parsed = feedsmith(input.replace(/^\uFEFF/, '')) as { format: string; feed: unknown };
  } catch (err) {
    throw new WebError('parse', url, `${url} is ${lookOf(input)}: ${(err as Error).message}`);
  }
  const feed = isObj(parsed.feed) ? parsed.feed : {};
  const items: FeedItem[] = [];
  const add = (it: FeedItem | undefined): void => {
    if (it && items.length < MAX_FEED_ITEMS) items.push(it);
  };
  switch (parsed.format) {
    case 'rss':
    case 'rdf': {
      for (const raw of arr(feed.items).slice(0, MAX_FEED_ITEMS)) {
        if (!isObj(raw)) continue;
        const dc = isObj(raw.dc) ? raw.dc : {};
        const content = isObj(raw.content) ? raw.content : {};
        const guid = isObj(raw.guid) ? str(raw.guid.value) : str(raw.guid);
        const about = isObj(raw.rdf) ? str(raw.rdf.about) : '';
        add(
          item(
            {
              id: guid || about,
              link: str(raw.link) || (isObj(raw.guid) && raw.guid.isPermaLink !== false ? guid : '') || about,
              title: text(raw.title, 1000),
              published: date(raw.pubDate, dc.dates, dc.date, isObj(raw.dcterms) ? raw.dcterms.modified : undefined),
              summary: text(raw.description),
              content: text(content.encoded),
              authors: people(raw.authors, raw.author, dc.creators, dc.creator),
            },
            url,
          ),
        );
      }
      break;
    }
    case 'atom': {
      for (const raw of arr(feed.entries).slice(0, MAX_FEED_ITEMS)) {
        if (!isObj(raw)) continue;
        const links = arr(raw.links).filter(isObj);
        const link =
          links.find((l) => !l.rel || l.rel === 'alternate') ?? links.find((l) => l.rel !== 'self') ?? links[0];
        add(
          item(
            {
              id: str(raw.id),
              link: link ? str(link.href) : '',
              title: text(raw.title, 1000),
              published: date(raw.published, raw.updated, raw.issued, raw.modified),
              summary: text(raw.summary),
              content: text(raw.content),
              authors: people(raw.authors, raw.author, raw.contributors),
            },
            url,
          ),
        );
      }
      break;
    }
    case 'json': {
      for (const raw of arr(feed.items).slice(0, MAX_FEED_ITEMS)) {
        if (!isObj(raw)) continue;
        add(
          item(
            {
              id: str(raw.id),
              link: str(raw.url) || str(raw.external_url),
              title: text(raw.title, 1000),
              published: date(raw.date_published, raw.date_modified),
              summary: text(raw.summary),
              content: text(raw.content_html) || text(raw.content_text),
              authors: people(raw.authors, raw.author),
            },
            url,
          ),
        );
      }
      break;
    }
    default:
      throw new WebError('parse', url, `${url} is a feed of a format the kit does not read (${parsed.format})`);
  }
  return { format: parsed.format as Feed['format'], title: text(feed.title, 1000), items };
}
