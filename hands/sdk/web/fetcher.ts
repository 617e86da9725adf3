/**
 * The web kit's fetcher: how a Hand reads the public web politely. Every byte goes through the Hand's ctx.fetch, so
 * the kernel's network grant still decides what may be reached (a refusal is WebError 'denied'); on top of it:
 *   - hosts whose terms forbid scraping (NEVER_SCRAPE: LinkedIn, Facebook, …) are never asked anything;
 *   - robots.txt, fetched once per origin and kept in the Hand's store under `web/robots/<origin>` for robotsTtlMs:
 *     404/410 (and other 4xx) allow everything, 401/403 forbid everything, 5xx/429/no answer forbid everything for a
 *     few minutes only (kept in memory, not in the store); its Crawl-delay (≤ 60 s) raises the pause between requests;
 *   - requests to one host are serialized, their starts at least minIntervalMs apart (a promise chain per host,
 *     different hosts in parallel; the per-host state is an LRU of MAX_HOSTS hosts);
 *   - redirects followed here (at most MAX_REDIRECTS), each hop checked against the never-scrape list and robots.txt;
 *   - conditional requests: an answer's validators (ETag, Last-Modified) are kept under `web/v/<sha1(url)>` after a
 *     200, and `conditional: true` sends them back; a 304 is `notModified: true` with text '';
 *   - a time cap (the whole request, body included) and a byte cap (the body streamed and cancelled past it), passed to
 *     ctx.fetch too (timeoutMs, maxResponseBytes) and enforced here whatever the fetch does;
 *   - text decoded by its charset (the Content-Type's, else the page's own `<meta charset>` / XML declaration, else
 *     UTF-8), bad bytes replaced rather than refused.
 * Every failure is a WebError with a kind (./types.ts WebErrorKind); 429 and 503 carry Retry-After as retryAfterMs.
 * An abort through the caller's own signal is rethrown as it is (the caller asked for it).
 */
import { createHash } from 'node:crypto';
import robotsParser from 'robots-parser';
import { raceAbort } from '../../../runtime/core/abort.ts';
import type { HandContext, HandFetchInit, HandStore } from '../../../runtime/core/hand.ts';
import type { FetchedPage, FetcherOptions, FetcherStats, FetchOptions, WebErrorKind } from './types.ts';
import { retryAfterMs } from '../http.ts';

export const DEFAULT_USER_AGENT = 'TalonBot/1.0 (+https://github.com/talon)';

/** hosts whose terms forbid scraping: never fetched, whatever robots.txt says (suffix match) */
export const NEVER_SCRAPE: readonly string[] = Object.freeze([
  'linkedin.com',
  'facebook.com',
  'instagram.com',
  'x.com',
  'twitter.com',
  'tiktok.com',
  'threads.net',
  'lnkd.in',
]);

/** the most redirects followed for one request */
export const MAX_REDIRECTS = 5;
/** how many hosts' state (pause chain, robots.txt) is kept in memory; the least recently used goes first */
export const MAX_HOSTS = 1000;
/** Crawl-delay above this is taken as this */
export const MAX_CRAWL_DELAY_MS = 60_000;
/** the most of a robots.txt read (Google reads 500 KiB) */
const ROBOTS_MAX_BYTES = 512 * 1024;
/** a robots.txt that could not be had (5xx, 429, no answer) forbids the origin this long, in memory only */
const ROBOTS_TEMPORARY_MS = 5 * 60_000;
const MAX_RETRY_AFTER_MS = 24 * 3600_000;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** media types a text reader never wants: refused (WebError 'type') without reading the body */
const BINARY =
  /^(image|audio|video|font)\/|^application\/(pdf|zip|gzip|x-gzip|x-tar|x-7z-compressed|x-rar-compressed|vnd\.ms-|vnd\.openxmlformats)/;

const KINDS: readonly WebErrorKind[] = ['robots', 'timeout', 'too-large', 'http', 'network', 'denied', 'parse', 'type'];

/** why the kit could not have a page: `kind` says what happened (./types.ts), `status` the HTTP status if any */
export class WebError extends Error {
  readonly kind: WebErrorKind;
  readonly url: string;
  readonly status?: number;
  readonly retryAfterMs?: number;

  constructor(kind: WebErrorKind, url: string, message: string, opts: { status?: number; retryAfterMs?: number } = {}) {
    super(message);
    this.name = 'WebError';
    this.kind = kind;
    this.url = url;
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }
}

/** robots.txt of one origin, as kept in memory and (when it is not temporary) in the store */
interface RobotsRecord {
  fetchedAt: number;
  /** all: nothing forbidden (404); none: everything forbidden (401/403, or temporarily 5xx); rules: `text` decides */
  mode: 'all' | 'none' | 'rules';
  text?: string;
  /** why everything is forbidden, for the error message */
  why?: string;
  /** kept in memory only, until fetchedAt + ROBOTS_TEMPORARY_MS */
  temporary?: boolean;
  /** robots.txt could not be had at all (the site is down, slow, refusing): the page's error is of this kind, not 'robots' */
  unreachable?: WebErrorKind;
}

interface RobotsRules {
  record: RobotsRecord;
  robot?: ReturnType<typeof robotsParser>;
  expires: number;
}

interface HostState {
  /** the end of the last request queued for this host */
  chain: Promise<void>;
  /** when the last request to this host started (performance.now()) */
  lastStart: number;
  /** Crawl-delay from its robots.txt, ms (0 when none) */
  crawlDelayMs: number;
}

interface Validators {
  url: string;
  finalUrl: string;
  etag?: string;
  lastModified?: string;
  contentType: string;
  at: number;
}

type Fetch = HandContext['fetch'];

export class Fetcher {
  readonly #fetch: Fetch;
  readonly #store: HandStore | null;
  readonly #ua: string;
  readonly #minIntervalMs: number;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #never: string[];
  readonly #robotsTtlMs: number;
  readonly #now: () => number;
  /** per host (`name:port`), least recently used first */
  readonly #hosts = new Map<string, HostState>();
  /** per origin, least recently used first; also bounded by MAX_HOSTS */
  readonly #robots = new Map<string, RobotsRules>();
  /** robots.txt fetches under way, so that parallel requests to one origin ask once */
  readonly #robotsPending = new Map<string, Promise<RobotsRules>>();
  readonly #stats: FetcherStats = {
    requests: 0,
    notModified: 0,
    bytes: 0,
    errors: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<WebErrorKind, number>,
    robotsRefused: 0,
  };

  constructor(fetch: Fetch, store: HandStore | null, opts: FetcherOptions = {}) {
    this.#fetch = fetch;
    this.#store = store;
    this.#ua = opts.userAgent ?? DEFAULT_USER_AGENT;
    this.#minIntervalMs = Math.max(0, opts.minIntervalMs ?? 1000);
    this.#timeoutMs = Math.max(1, opts.timeoutMs ?? 15_000);
    this.#maxBytes = Math.max(1, opts.maxBytes ?? 5 * 1024 * 1024);
    this.#never = (opts.neverHosts ?? NEVER_SCRAPE).map((h) => h.toLowerCase().replace(/^\.+|\.+$/g, ''));
    this.#robotsTtlMs = Math.max(0, opts.robotsTtlMs ?? 24 * 3600_000);
    this.#now = opts.now ?? Date.now;
  }

  stats(): FetcherStats {
    return { ...this.#stats, errors: { ...this.#stats.errors } };
  }

  /** whether robots.txt (and the never-scrape list) lets us fetch `url`; never throws */
  async allowed(url: string): Promise<boolean> {
    let u: URL;
    try {
      u = parseUrl(url);
    } catch {
      return false;
    }
    if (this.#neverScrape(u.hostname)) return false;
    try {
      const rules = await this.#robotsFor(u);
      return robotsAllow(rules, u, this.#ua);
    } catch {
      return false;
    }
  }

  /** the page at `url`, read whole; throws WebError (or the caller's abort reason) */
  async get(url: string, opts: FetchOptions = {}): Promise<FetchedPage> {
    const started = performance.now();
    try {
      return await this.#get(url, opts, started);
    } catch (err) {
      if (err instanceof WebError) {
        this.#stats.errors[err.kind]++;
        if (err.kind === 'robots') this.#stats.robotsRefused++;
      }
      throw err;
    }
  }

  async #get(url: string, opts: FetchOptions, started: number): Promise<FetchedPage> {
    let u: URL;
    try {
      u = parseUrl(url);
    } catch (err) {
      throw new WebError('parse', url, (err as Error).message);
    }
    const maxBytes = Math.min(this.#maxBytes, opts.maxBytes ?? Infinity);
    const timeoutMs = Math.min(this.#timeoutMs, opts.timeoutMs ?? Infinity);
    const validators = opts.conditional ? await this.#validators(u.href) : undefined;
    let hop = u;
    for (let hops = 0; ; hops++) {
      if (this.#neverScrape(hop.hostname))
        throw new WebError(
          'robots',
          hop.href,
          `${hop.hostname} is on the never-scrape list (its terms forbid automated reading)` +
            (hop.href === u.href ? '' : ` (redirected from ${u.href})`),
        );
      if (!opts.ignoreRobots) {
        // robots.txt is fetched once for every caller waiting on it: a caller's abort stops its wait, not the fetch
        const rules = await (opts.signal ? raceAbort(this.#robotsFor(hop), opts.signal) : this.#robotsFor(hop));
        if (!robotsAllow(rules, hop, this.#ua))
          throw new WebError(
            rules.record.unreachable ?? 'robots',
            hop.href,
            rules.record.mode === 'none'
              ? `${hop.origin}/robots.txt ${rules.record.why ?? 'forbids everything'}`
              : `${hop.origin}/robots.txt disallows ${hop.pathname} for ${this.#ua}`,
          );
      }
      const headers: Record<string, string> = { 'user-agent': this.#ua, accept: opts.accept ?? '*/*' };
      const conditional = validators !== undefined && validators.finalUrl === hop.href;
      if (conditional && validators.etag) headers['if-none-match'] = validators.etag;
      if (conditional && validators.lastModified) headers['if-modified-since'] = validators.lastModified;
      const ans = await this.#request(hop, headers, { maxBytes, timeoutMs, signal: opts.signal }, (res) =>
        res.status >= 200 && res.status < 300 ? 'read' : 'skip',
      );
      const { res } = ans;
      if (REDIRECTS.has(res.status) && res.headers.get('location')) {
        if (hops >= MAX_REDIRECTS)
          throw new WebError('network', u.href, `more than ${MAX_REDIRECTS} redirects from ${u.href}`, {
            status: res.status,
          });
        try {
          hop = parseUrl(new URL(res.headers.get('location')!, hop).href);
        } catch (err) {
          throw new WebError('http', hop.href, `a redirect to a bad location: ${(err as Error).message}`, {
            status: res.status,
          });
        }
        continue;
      }
      const contentType = mediaType(res.headers.get('content-type'));
      if (res.status === 304 && conditional) {
        this.#stats.notModified++;
        return {
          url: u.href,
          finalUrl: hop.href,
          status: 304,
          notModified: true,
          contentType: contentType || validators.contentType,
          text: '',
          bytes: 0,
          ...optional('etag', res.headers.get('etag') ?? validators.etag),
          ...optional('lastModified', res.headers.get('last-modified') ?? validators.lastModified),
          fetchedAt: this.#now(),
          ms: Math.round(performance.now() - started),
        };
      }
      if (res.status < 200 || res.status >= 300) {
        const retryAfterMs =
          res.status === 429 || res.status === 503
            ? parseRetryAfter(res.headers.get('retry-after'), this.#now())
            : undefined;
        throw new WebError('http', hop.href, `${hop.href} answered ${res.status}`, {
          status: res.status,
          ...(retryAfterMs !== undefined && { retryAfterMs }),
        });
      }
      if (ans.body === undefined)
        throw new WebError('type', hop.href, `${hop.href} is ${contentType}, not something the kit reads as text`, {
          status: res.status,
        });
      const text = decode(ans.body, res.headers.get('content-type'), contentType);
      const etag = res.headers.get('etag') ?? undefined;
      const lastModified = res.headers.get('last-modified') ?? undefined;
      if (res.status === 200) await this.#keepValidators(u.href, hop.href, etag, lastModified, contentType);
      return {
        url: u.href,
        finalUrl: hop.href,
        status: res.status,
        notModified: false,
        contentType,
        text,
        bytes: ans.body.byteLength,
        ...optional('etag', etag),
        ...optional('lastModified', lastModified),
        fetchedAt: this.#now(),
        ms: Math.round(performance.now() - started),
      };
    }
  }

  /**
   * one HTTP request (no redirect followed) in its host's turn, within the time and byte caps; the body is read when
   * `want` says so and the type is text-like, else cancelled
   */
  async #request(
    u: URL,
    headers: Record<string, string>,
    caps: { maxBytes: number; timeoutMs: number; signal?: AbortSignal | undefined },
    want: (res: Response) => 'read' | 'skip',
  ): Promise<{ res: Response; body?: Uint8Array }> {
    return this.#inTurn(u.host, caps.signal, async () => {
      const timeout = AbortSignal.timeout(caps.timeoutMs);
      const signal = caps.signal ? AbortSignal.any([timeout, caps.signal]) : timeout;
      const fail = (err: unknown): never => {
        if (caps.signal?.aborted) throw caps.signal.reason;
        throw toWebError(err, u.href, timeout.aborted, caps);
      };
      this.#stats.requests++;
      const init: HandFetchInit = {
        method: 'GET',
        headers,
        redirect: 'manual',
        signal,
        timeoutMs: caps.timeoutMs,
        maxResponseBytes: caps.maxBytes,
      };
      let res: Response;
      try {
        res = await this.#fetch(u.href, init);
      } catch (err) {
        return fail(err);
      }
      const type = mediaType(res.headers.get('content-type'));
      if (want(res) === 'skip' || BINARY.test(type)) {
        await res.body?.cancel().catch(() => {});
        return { res };
      }
      const length = Number(res.headers.get('content-length'));
      if (Number.isFinite(length) && length > caps.maxBytes) {
        await res.body?.cancel().catch(() => {});
        throw new WebError('too-large', u.href, `${u.href} is ${length} bytes, more than the cap of ${caps.maxBytes}`);
      }
      try {
        const body = await readCapped(res, caps.maxBytes, signal, u.href);
        this.#stats.bytes += body.byteLength;
        return { res, body };
      } catch (err) {
        return fail(err);
      }
    });
  }

  /** runs `fn` when the host's turn comes: after the requests queued before it, its start ≥ the pause after theirs */
  async #inTurn<T>(host: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const st = this.#host(host);
    const before = st.chain;
    let done!: () => void;
    const mine = new Promise<void>((r) => {
      done = r;
    });
    // the next request waits for this one and, should this one give up early (aborted), for the one before it
    st.chain = before.then(() => mine);
    try {
      await (signal ? raceAbort(before, signal) : before);
      const pause = Math.max(this.#minIntervalMs, st.crawlDelayMs);
      const wait = st.lastStart + pause - performance.now();
      if (wait > 0) await sleep(wait, signal);
      if (signal?.aborted) throw signal.reason;
      st.lastStart = performance.now();
      return await fn();
    } finally {
      done();
    }
  }

  #host(host: string): HostState {
    let st = this.#hosts.get(host);
    if (st) this.#hosts.delete(host);
    else st = { chain: Promise.resolve(), lastStart: -Infinity, crawlDelayMs: 0 };
    this.#hosts.set(host, st);
    trim(this.#hosts);
    return st;
  }

  #neverScrape(hostname: string): boolean {
    const h = hostname.toLowerCase().replace(/\.+$/, '');
    return this.#never.some((n) => h === n || h.endsWith(`.${n}`));
  }

  // ---- robots.txt -----------------------------------------------------------------------------------------------

  async #robotsFor(u: URL): Promise<RobotsRules> {
    const origin = u.origin;
    const now = this.#now();
    const mem = this.#robots.get(origin);
    if (mem && mem.expires > now) {
      this.#robots.delete(origin);
      this.#robots.set(origin, mem);
      return mem;
    }
    let pending = this.#robotsPending.get(origin);
    if (!pending) {
      pending = this.#loadRobots(u).finally(() => this.#robotsPending.delete(origin));
      this.#robotsPending.set(origin, pending);
    }
    return pending;
  }

  async #loadRobots(u: URL): Promise<RobotsRules> {
    const origin = u.origin;
    const key = `web/robots/${origin}`;
    let record: RobotsRecord | undefined;
    try {
      const kept = await this.#store?.get<RobotsRecord>(key);
      if (kept && typeof kept.fetchedAt === 'number' && kept.fetchedAt + this.#robotsTtlMs > this.#now()) record = kept;
    } catch {
      /* fetched again */
    }
    if (!record) {
      record = await this.#fetchRobots(u);
      if (!record.temporary) {
        try {
          await this.#store?.put(key, record);
        } catch {
          /* kept in memory only */
        }
      }
    }
    const rules: RobotsRules = {
      record,
      expires:
        record.fetchedAt + (record.temporary ? Math.min(ROBOTS_TEMPORARY_MS, this.#robotsTtlMs) : this.#robotsTtlMs),
    };
    if (record.mode === 'rules') {
      rules.robot = robotsParser(`${origin}/robots.txt`, record.text ?? '');
      const delay = rules.robot.getCrawlDelay(this.#ua);
      if (typeof delay === 'number' && Number.isFinite(delay) && delay > 0)
        this.#host(u.host).crawlDelayMs = Math.min(MAX_CRAWL_DELAY_MS, delay * 1000);
    }
    this.#robots.delete(origin);
    this.#robots.set(origin, rules);
    trim(this.#robots);
    return rules;
  }

  /** robots.txt over HTTP (redirects followed, within the origin's pause); what it means for us */
  async #fetchRobots(u: URL): Promise<RobotsRecord> {
    const fetchedAt = this.#now();
    let hop = new URL('/robots.txt', u.origin);
    const caps = { maxBytes: ROBOTS_MAX_BYTES, timeoutMs: Math.min(this.#timeoutMs, 10_000) };
    for (let hops = 0; hops <= MAX_REDIRECTS; hops++) {
      let ans: { res: Response; body?: Uint8Array };
      try {
        ans = await this.#request(hop, { 'user-agent': this.#ua, accept: 'text/plain, */*' }, caps, (res) =>
          res.status === 200 ? 'read' : 'skip',
        );
      } catch (err) {
        const e = err as WebError;
        if (e.kind === 'denied') throw e;
        if (e.kind === 'too-large')
          return { fetchedAt, mode: 'none', why: 'is larger than 512 KiB: treated as forbidding everything' };
        return {
          fetchedAt,
          mode: 'none',
          why: `could not be read (${e.message}): treated as forbidding everything for now`,
          temporary: true,
          unreachable: e instanceof WebError ? e.kind : 'network',
        };
      }
      const { res } = ans;
      const location = res.headers.get('location');
      if (REDIRECTS.has(res.status) && location) {
        try {
          hop = parseUrl(new URL(location, hop).href);
        } catch {
          return { fetchedAt, mode: 'all' };
        }
        continue;
      }
      if (res.status === 200) {
        const text = ans.body ? decode(ans.body, res.headers.get('content-type'), 'text/plain') : '';
        return { fetchedAt, mode: 'rules', text };
      }
      if (res.status === 401 || res.status === 403)
        return { fetchedAt, mode: 'none', why: `answered ${res.status}: treated as forbidding everything` };
      if (res.status === 429 || res.status >= 500)
        return {
          fetchedAt,
          mode: 'none',
          why: `answered ${res.status}: treated as forbidding everything for now`,
          temporary: true,
          unreachable: 'http',
        };
      // 404, 410 and the other 4xx: no robots.txt, nothing forbidden
      return { fetchedAt, mode: 'all' };
    }
    return { fetchedAt, mode: 'all' };
  }

  // ---- validators -----------------------------------------------------------------------------------------------

  async #validators(url: string): Promise<Validators | undefined> {
    try {
      const v = await this.#store?.get<Validators>(`web/v/${sha1(url)}`);
      return v && v.url === url ? v : undefined;
    } catch {
      return undefined;
    }
  }

  async #keepValidators(
    url: string,
    finalUrl: string,
    etag: string | undefined,
    lastModified: string | undefined,
    contentType: string,
  ): Promise<void> {
    if (!this.#store || (!etag && !lastModified)) return;
    const v: Validators = {
      url,
      finalUrl,
      ...optional('etag', etag),
      ...optional('lastModified', lastModified),
      contentType,
      at: this.#now(),
    };
    try {
      await this.#store.put(`web/v/${sha1(url)}`, v);
    } catch {
      /* the next request is not conditional */
    }
  }
}

// ---- small things -------------------------------------------------------------------------------------------------

function parseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${JSON.stringify(url.slice(0, 200))} is not an absolute URL: write it as https://host/path`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new Error(`${u.protocol} URLs are not fetched: only http:// and https://`);
  u.hash = '';
  return u;
}

function robotsAllow(rules: RobotsRules, u: URL, ua: string): boolean {
  if (rules.record.mode === 'all') return true;
  if (rules.record.mode === 'none' || !rules.robot) return false;
  return rules.robot.isAllowed(u.href, ua) !== false;
}

function sha1(s: string): string {
  return createHash('sha1').update(s).digest('hex');
}

function optional<K extends string>(key: K, v: string | undefined): { [P in K]?: string } {
  return (v ? { [key]: v } : {}) as { [P in K]?: string };
}

function trim<V>(m: Map<string, V>): void {
  while (m.size > MAX_HOSTS) {
    const oldest = m.keys().next().value;
    if (oldest === undefined) break;
    m.delete(oldest);
  }
}

function mediaType(header: string | null): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Retry-After as ms from now: seconds or an HTTP date; undefined when missing or unreadable */
export function parseRetryAfter(v: string | null, now: number): number | undefined {
  const ms = retryAfterMs(v, now);
  return ms === undefined ? undefined : Math.min(MAX_RETRY_AFTER_MS, ms);
}

/** the body, at most `max` bytes: past it the stream is cancelled and WebError 'too-large' thrown */
async function readCapped(res: Response, max: number, signal: AbortSignal, url: string): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const onAbort = (): void => {
    reader.cancel(signal.reason).catch(() => {});
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new WebError('too-large', url, `${url} is larger than the cap of ${max} bytes (the rest was not read)`);
      }
      chunks.push(value);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    reader.releaseLock?.();
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** a ctx.fetch failure as a WebError */
function toWebError(
  err: unknown,
  url: string,
  timedOut: boolean,
  caps: { maxBytes: number; timeoutMs: number },
): WebError {
  if (err instanceof WebError) return err;
  const code = (err as { code?: unknown })?.code;
  const message = (err as Error)?.message ?? String(err);
  if (timedOut || code === 'NET_TIMEOUT' || (err as Error)?.name === 'TimeoutError')
    return new WebError('timeout', url, `${url} did not answer within ${caps.timeoutMs} ms`);
  switch (code) {
    case 'CAPABILITY_DENIED':
      return new WebError(
        'denied',
        url,
        `the kernel refused ${url}: ${message} (add the host to the Hand's network grant)`,
      );
    case 'NET_TOO_LARGE':
      return new WebError('too-large', url, `${url} is larger than the cap of ${caps.maxBytes} bytes: ${message}`);
    case 'NET_DNS':
    case 'NET_CONNECT':
    case 'NET_REDIRECT':
      return new WebError('network', url, message);
    default:
      return new WebError('network', url, `${url}: ${message}`);
  }
}

/** the charset a Content-Type header names, else one the document declares in its first bytes */
function charsetOf(header: string | null, body: Uint8Array, type: string): string {
  const m = /charset\s*=\s*"?([\w.:-]+)/i.exec(header ?? '');
  if (m) return m[1]!.toLowerCase();
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return 'utf-8';
  if (type.includes('html') || type.includes('xml') || type === '') {
    const head = Buffer.from(body.subarray(0, 2048)).toString('latin1');
    const meta =
      /<meta[^>]+charset\s*=\s*["']?([\w.:-]+)/i.exec(head) ?? /<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)/i.exec(head);
    if (meta) return meta[1]!.toLowerCase();
  }
  return 'utf-8';
}

function decode(body: Uint8Array, header: string | null, type: string): string {
  const charset = charsetOf(header, body, type);
  try {
    return new TextDecoder(charset, { fatal: false }).decode(body);
  } catch {
    return new TextDecoder('utf-8', { fatal: false }).decode(body);
  }
}
