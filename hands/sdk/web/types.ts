/**
 * The web kit Hands share for reading the public web politely (the Research and Lead Generation Hands, own Hands):
 * a fetcher that keeps robots.txt, a pause between requests to one host, conditional requests (ETag,
 * Last-Modified) and a byte and time cap on every answer (./fetcher.ts); HTML read into text, links and metadata and
 * lists read with CSS selectors (./html.ts); RSS, Atom, RDF and JSON feeds (./feed.ts); sitemaps (./sitemap.ts); a
 * stable content hash and extracts (./text.ts). Everything goes through the Hand's ctx.fetch, so the kernel's network
 * grant still decides what may be reached.
 */

/** why a page could not be had; every failure of the kit is a WebError with one of these */
export type WebErrorKind =
  /** robots.txt forbids this URL to our user agent, or the host is on the never-scrape list */
  | 'robots'
  /** no answer within the time cap */
  | 'timeout'
  /** the answer is larger than the byte cap (the rest was not downloaded) */
  | 'too-large'
  /** the server answered an error status (err.status) */
  | 'http'
  /** DNS, connection, TLS */
  | 'network'
  /** the kernel refused (outside the Hand's network grant) */
  | 'denied'
  /** the answer is not what was expected (a feed that is not XML, a sitemap without urls) */
  | 'parse'
  /** a content type the caller does not read (an image, a zip) */
  | 'type';

export interface FetcherOptions {
  /** sent as User-Agent and matched against robots.txt groups (default `TalonBot/1.0 (+https://talon.dev/bot)`) */
  userAgent?: string;
  /** the least time between two requests to one host (default 1000 ms); robots.txt's Crawl-delay raises it (≤ 60 s) */
  minIntervalMs?: number;
  /** per request (default 15 000 ms) */
  timeoutMs?: number;
  /** the most of one answer read (default 5 MiB); more is WebError 'too-large' */
  maxBytes?: number;
  /** hosts never fetched whatever robots.txt says (their terms forbid scraping); suffix match on the host name */
  neverHosts?: string[];
  /** how long a robots.txt answer is trusted (default 24 h) */
  robotsTtlMs?: number;
  /** now(), for tests */
  now?: () => number;
}

/** one answer, read whole (text decoded by its charset, UTF-8 by default) */
export interface FetchedPage {
  /** the URL asked for */
  url: string;
  /** the URL after redirects */
  finalUrl: string;
  status: number;
  /** a conditional request answered 304: `text` is '' and the caller keeps what it had */
  notModified: boolean;
  /** the media type without parameters, lower case (`text/html`) */
  contentType: string;
  text: string;
  bytes: number;
  etag?: string;
  lastModified?: string;
  fetchedAt: number;
  ms: number;
}

export interface FetchOptions {
  /** send If-None-Match / If-Modified-Since from the last answer for this URL (kept in the Hand's store) */
  conditional?: boolean;
  /** Accept header */
  accept?: string;
  /** below the fetcher's cap */
  maxBytes?: number;
  timeoutMs?: number;
  /** skip robots.txt (only for APIs meant for programs: arXiv's and HN's APIs, a CRM) */
  ignoreRobots?: boolean;
  signal?: AbortSignal;
}

/** what the fetcher did since it was made (the Hands' /metrics) */
export interface FetcherStats {
  requests: number;
  notModified: number;
  bytes: number;
  errors: Record<WebErrorKind, number>;
  robotsRefused: number;
}

/** a page's HTML, read (./html.ts readHtml) */
export interface HtmlPage {
  title: string;
  /** meta description or og:description */
  description: string;
  /** readable text: blocks separated by blank lines, scripts, styles, nav, header and footer removed */
  text: string;
  lang?: string;
  /** every <a href> made absolute (http/https/mailto/tel only), with its text */
  links: Array<{ url: string; text: string }>;
  /** <meta name|property → content>, names lower case */
  meta: Record<string, string>;
  /** <link rel=alternate type=rss/atom> feeds, absolute */
  feeds: string[];
  /** <script src>, absolute (technology detection) */
  scripts: string[];
  /** <link rel=canonical>, absolute */
  canonical?: string;
}

/**
 * a list on a page read with CSS selectors: `item` selects each entry, each field a selector inside it — `css`
 * (the text), `css@attr` (an attribute, URLs made absolute for href/src), `@attr` (the item's own attribute)
 */
export interface ListSelectors {
  item: string;
  fields: Record<string, string>;
}

/** one entry of a feed */
export interface FeedItem {
  /** guid / id, else the link */
  id: string;
  url: string;
  title: string;
  /** ms epoch when the feed says */
  published?: number;
  /** the summary or description, as text */
  summary: string;
  /** the full content when the feed carries it, as text */
  content?: string;
  authors: string[];
}

export interface Feed {
  format: 'rss' | 'atom' | 'rdf' | 'json';
  title: string;
  items: FeedItem[];
}

export interface Sitemap {
  /** page URLs with their lastmod (ms epoch) */
  urls: Array<{ url: string; lastModified?: number }>;
  /** a sitemap index's child sitemaps */
  sitemaps: string[];
}
