/**
 * The web kit (see ./types.ts for what it is): one import for a Hand —
 * `import { Fetcher, readHtml, parseFeed, parseSitemap, contentHash } from '../sdk/web/index.ts'`.
 */
export { DEFAULT_USER_AGENT, Fetcher, MAX_REDIRECTS, NEVER_SCRAPE, WebError, parseRetryAfter } from './fetcher.ts';
export { MAX_DOM_CHARS, readHtml, selectList, selectOne } from './html.ts';
export { MAX_FEED_ITEMS, parseFeed } from './feed.ts';
export { MAX_SITEMAP_URLS, parseSitemap } from './sitemap.ts';
export { STOP_WORDS, bestExtract, contentHash, decodeEntities, htmlToText, normalizeText, terms } from './text.ts';
export type * from './types.ts';
