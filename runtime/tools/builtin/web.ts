/**
 * The network tools: `http.request` (one HTTP request, the answer as text or base64), `web.read`
 * (a page as its readable article, in Markdown or plain text) and `web.search` (a configured
 * SearXNG instance or the Brave Search API).
 *
 * Every byte goes through the kernel's HandFetch (../../capabilities/fetch.ts): the caller's
 * network grant is checked on every hop (redirects included), DNS is pinned, private addresses
 * need their own grant, the body is capped and each request is audited as `net.fetch`. A Hand
 * calls with its own grant; an admin with ADMIN_NETWORK (any public host, never the LAN or this
 * device unless it names the address). The search provider's host is not special: it must be in
 * the caller's grant like any other host.
 *
 * `check` refuses early, before any connection: a URL that is not http(s) (TOOL_BAD_INPUT), a
 * host outside the grant (CAPABILITY_DENIED, details { action: 'net.fetch', subject: 'host:port' },
 * the subject HandFetch itself would name).
 *
 * web.read: HTML is parsed with linkedom, its links and images made absolute against the final
 * URL (or the page's <base href>; linkedom has no baseURI, so Readability cannot do it), nav,
 * script, style and the like removed, the article found by @mozilla/readability and written as
 * Markdown by turndown (or as plain text, one paragraph per block). When Readability finds no
 * article (a page with hardly any text), the whole body is used instead, after the same removals.
 * text/* and JSON pass through as they are; any other type (PDF, images, archives) is refused
 * with TOOL_FAILED naming the type. The three libraries (about 1.4 MB bundled) are loaded with
 * `import()` on the first HTML page, not at the kernel's start.
 */
import type { Readability } from '@mozilla/readability';
import type TurndownService from 'turndown';
import type { HandFetch, FetchBody, FetchCaller, FetchResponse } from '../../capabilities/fetch.ts';
import type { NetworkGrant } from '../../core/hand.ts';
import { TalonError } from '../../core/errors.ts';
import { NetworkPolicy } from '../../core/network.ts';
import type { ToolCaller, ToolDefinition, ToolRunContext } from '../types.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Config `tools.search` (runtime/config/schema.ts). */
export interface SearchConfig {
  provider: 'searxng' | 'brave';
  /** the search endpoint itself: `https://searx.example/search`, `https://api.search.brave.com/res/v1/web/search` */
  url: string;
  /** the sealed secret holding the API key (Brave: sent as X-Subscription-Token) */
  keySecret?: string;
  maxResults: number;
}

export interface WebToolDeps {
  fetch: Pick<HandFetch, 'request'>;
  /** the current `tools.search`, read on every call (a config reload applies to the next search) */
  search: () => SearchConfig | undefined;
  /** a sealed secret's value, undefined when it is not set */
  secret: (name: string) => Promise<string | undefined>;
}

/** An admin's requests: any public host (`*` never covers loopback, private or link-local addresses). */
export const ADMIN_NETWORK: NetworkGrant = Object.freeze({
  hosts: Object.freeze(['*']) as unknown as string[],
  raw: false,
  maxResponseBytes: 10 * MiB,
  timeoutMs: 30_000,
});

/**
 * The most of an HTML page web.read parses; the rest is not downloaded. Parsing runs on the
 * kernel's thread (about 1 s per 0.5 MiB of HTML on a laptop core, several on a Pi), so the cap is low.
 */
export const WEB_READ_MAX_HTML_BYTES = 2 * MiB;
/** past this many elements Readability is not tried (its cost grows with them): the simple extraction instead */
const READABILITY_MAX_ELEMENTS = 30_000;
/** the most of a search provider's answer read */
const SEARCH_MAX_BYTES = 2 * MiB;
const MAX_URL = 8192;
const DEFAULT_MAX_CHARS = 20_000;
const MAX_CHARS = 200_000;
const TOOL_OUTPUT_BYTES = 256 * KiB;

// ---- the three tools ----------------------------------------------------------------------------

export interface HttpRequestInput {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

export interface HttpRequestOutput {
  status: number;
  headers: Record<string, string>;
  /** the final URL, after redirects */
  url: string;
  body: string;
  encoding: 'text' | 'base64';
  /** the body was cut (the tool's output size, or the grant's maxResponseBytes) */
  truncated: boolean;
}

export interface WebReadInput {
  url: string;
  format?: 'markdown' | 'text';
  maxChars?: number;
}

export interface WebReadOutput {
  url: string;
  title: string;
  byline?: string;
  text: string;
  format: 'markdown' | 'text';
  truncated: boolean;
}

export interface WebSearchInput {
  query: string;
  limit?: number;
  language?: string;
  timeRange?: 'day' | 'week' | 'month' | 'year';
}

export interface SearchResult {
  title: string;
  url: string;
  snippet: string;
  engine?: string;
}

export interface WebSearchOutput {
  results: SearchResult[];
  provider: 'searxng' | 'brave';
}

const urlProp = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_URL,
  description: 'an absolute http:// or https:// URL',
};

export function webTools(deps: WebToolDeps): ToolDefinition[] {
  const httpRequest: ToolDefinition<HttpRequestInput, HttpRequestOutput> = {
    name: 'http.request',
    description:
      'Send one HTTP request and return the status, the response headers, the final URL (redirects are followed, ' +
      'each hop checked against the network grant) and the body: text as it is, anything else as base64 ' +
      '(encoding says which). A long body is cut (truncated: true). Use web.read to read a web page as text.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: urlProp,
        method: {
          type: 'string',
          enum: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
          default: 'GET',
        },
        headers: {
          type: 'object',
          additionalProperties: { type: 'string', maxLength: 8192 },
          maxProperties: 100,
          description: 'request headers by name',
        },
        body: { type: 'string', maxLength: 10 * MiB, description: 'the request body (UTF-8); not with GET or HEAD' },
        timeoutMs: {
          type: 'integer',
          minimum: 1,
          maximum: 120_000,
          description: "the grant's network timeoutMs is the ceiling",
        },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['status', 'headers', 'url', 'body', 'encoding', 'truncated'],
      properties: {
        status: { type: 'integer' },
        headers: { type: 'object', additionalProperties: { type: 'string' } },
        url: { type: 'string' },
        body: { type: 'string' },
        encoding: { enum: ['text', 'base64'] },
        truncated: { type: 'boolean' },
      },
    },
    // GET and HEAD would be read-only and idempotent, but that is per call: the tool as a whole is neither
    annotations: {
      title: 'HTTP request',
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: false,
      openWorldHint: true,
    },
    capability: 'network: the hosts of the grant',
    timeoutMs: 60_000,
    maxOutputBytes: TOOL_OUTPUT_BYTES,
    source: 'builtin',
    check: (input, caller) => checkUrlGrant(input.url, caller),
    run: async (input, ctx) => {
      const url = toolUrl(input.url);
      const method = (input.method ?? 'GET').toUpperCase();
      if ((method === 'GET' || method === 'HEAD') && input.body !== undefined && input.body.length > 0)
        throw new TalonError('TOOL_BAD_INPUT', `a ${method} request cannot have a body; use POST, PUT or PATCH`);
      const res = await send(deps, ctx, {
        url: url.href,
        method,
        headers: Object.entries(input.headers ?? {}),
        ...(input.body !== undefined && { body: new TextEncoder().encode(input.body) }),
        ...(input.timeoutMs !== undefined && { timeoutMs: input.timeoutMs }),
      });
      // the output is JSON, capped by the registry at maxOutputBytes: no use reading more than fits
      // (room left for the headers; base64 is 4 characters for 3 bytes)
      const type = header(res, 'content-type');
      const room = Math.max(1024, ctx.maxOutputBytes - 256 - JSON.stringify(res.headers).length - res.url.length);
      const cap = isTextType(type) ? room : Math.floor(room / 4) * 3;
      const got = await readBody(res, cap, ctx.signal);
      const text = isTextType(type) ? decode(got.bytes, type, got.truncated) : utf8OrNull(got.bytes, got.truncated);
      return {
        status: res.status,
        headers: headerRecord(res.headers),
        url: res.url,
        body: text ?? Buffer.from(got.bytes).toString('base64'),
        encoding: text === null ? 'base64' : 'text',
        truncated: got.truncated,
      };
    },
  };

  const webRead: ToolDefinition<WebReadInput, WebReadOutput> = {
    name: 'web.read',
    description:
      'Read a web page: its main article as Markdown (links absolute; navigation, scripts and styles removed) or ' +
      'plain text, with its title, byline and final URL. Plain text and JSON come back as they are; PDFs and ' +
      'other binary types are refused. Long pages are cut at maxChars (truncated: true).',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: urlProp,
        format: { type: 'string', enum: ['markdown', 'text'], default: 'markdown' },
        maxChars: { type: 'integer', minimum: 100, maximum: MAX_CHARS, default: DEFAULT_MAX_CHARS },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['url', 'title', 'text', 'format', 'truncated'],
      properties: {
        url: { type: 'string' },
        title: { type: 'string' },
        byline: { type: 'string' },
        text: { type: 'string' },
        format: { enum: ['markdown', 'text'] },
        truncated: { type: 'boolean' },
      },
    },
    annotations: {
      title: 'Read a web page',
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: true,
    },
    capability: 'network: the hosts of the grant',
    timeoutMs: 60_000,
    maxOutputBytes: TOOL_OUTPUT_BYTES,
    source: 'builtin',
    check: (input, caller) => checkUrlGrant(input.url, caller),
    run: async (input, ctx) => {
      const url = toolUrl(input.url);
      const format = input.format ?? 'markdown';
      const maxChars = Math.min(input.maxChars ?? DEFAULT_MAX_CHARS, MAX_CHARS);
      const res = await send(deps, ctx, {
        url: url.href,
        method: 'GET',
        headers: [['accept', 'text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.8,*/*;q=0.5']],
      });
      if (res.status >= 400) {
        res.body?.cancel();
        throw new TalonError('TOOL_FAILED', `${res.url} answered HTTP ${res.status} ${res.statusText}`.trim(), {
          details: { status: res.status, url: res.url },
        });
      }
      const type = header(res, 'content-type');
      const kind = pageKind(type);
      if (kind === 'binary') {
        res.body?.cancel();
        throw new TalonError(
          'TOOL_FAILED',
          `${res.url} is ${mediaType(type)}, which web.read cannot read (it reads HTML, text and JSON); ` +
            'http.request returns such a body as base64',
          { details: { contentType: mediaType(type), url: res.url } },
        );
      }
      const got = await readBody(res, kind === 'html' ? WEB_READ_MAX_HTML_BYTES : maxChars * 4, ctx.signal);
      const raw = decode(got.bytes, type, got.truncated);
      let page: { title: string; byline?: string; text: string; cut?: boolean };
      if (kind === 'html' || (kind === 'unknown' && /^\s*</.test(raw)))
        page = await readHtml(raw, res.url, format, maxChars);
      else if (kind === 'unknown' && utf8OrNull(got.bytes, got.truncated) === null) {
        throw new TalonError(
          'TOOL_FAILED',
          `${res.url} sent binary data without a content type, which web.read cannot read; http.request returns it as base64`,
          { details: { url: res.url } },
        );
      } else page = { title: '', text: raw };
      const cut = page.text.length > maxChars;
      return {
        url: res.url,
        title: page.title,
        ...(page.byline && { byline: page.byline }),
        text: cut ? page.text.slice(0, maxChars) : page.text,
        format,
        truncated: cut || got.truncated || page.cut === true,
      };
    },
  };

  const webSearch: ToolDefinition<WebSearchInput, WebSearchOutput> = {
    name: 'web.search',
    description:
      "Search the web through the device's configured search provider (SearXNG or Brave Search) and return the " +
      'results: title, URL and a snippet each. Read a result with web.read.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['query'],
      properties: {
        query: { type: 'string', minLength: 1, maxLength: 400 },
        limit: { type: 'integer', minimum: 1, maximum: 50, description: 'at most tools.search.maxResults' },
        language: {
          type: 'string',
          pattern: '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$',
          description: 'a language code such as en or de-CH',
        },
        timeRange: { type: 'string', enum: ['day', 'week', 'month', 'year'] },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['results', 'provider'],
      properties: {
        provider: { enum: ['searxng', 'brave'] },
        results: {
          type: 'array',
          items: {
            type: 'object',
            required: ['title', 'url', 'snippet'],
            properties: {
              title: { type: 'string' },
              url: { type: 'string' },
              snippet: { type: 'string' },
              engine: { type: 'string' },
            },
          },
        },
      },
    },
    annotations: {
      title: 'Search the web',
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: true,
    },
    capability: "network: the search provider's host (tools.search.url)",
    timeoutMs: 30_000,
    maxOutputBytes: 64 * KiB,
    source: 'builtin',
    check: (_input, caller) => {
      const cfg = deps.search();
      // not configured: the run says what to set (a refusal here would blame the grant)
      return cfg ? checkUrlGrant(cfg.url, caller) : null;
    },
    run: async (input, ctx) => {
      const cfg = deps.search();
      if (!cfg)
        throw new TalonError(
          'TOOL_FAILED',
          'web.search has no search provider: set tools.search in the config ' +
            '({ provider: searxng, url: https://<instance>/search } or { provider: brave, url: ' +
            'https://api.search.brave.com/res/v1/web/search, keySecret: <sealed secret name> })',
        );
      const limit = Math.min(input.limit ?? cfg.maxResults, cfg.maxResults);
      const results =
        cfg.provider === 'brave' ? await brave(deps, ctx, cfg, input, limit) : await searxng(deps, ctx, cfg, input);
      return { results: results.slice(0, limit), provider: cfg.provider };
    },
  };

  return [httpRequest, webRead, webSearch] as ToolDefinition[];
}

// ---- search providers ---------------------------------------------------------------------------

const SEARXNG_RANGE = { day: 'day', week: 'week', month: 'month', year: 'year' } as const;
const BRAVE_FRESHNESS = { day: 'pd', week: 'pw', month: 'pm', year: 'py' } as const;

/** SearXNG's JSON API: GET {url}?q=…&format=json; results[].title / url / content / engine */
async function searxng(
  deps: WebToolDeps,
  ctx: ToolRunContext,
  cfg: SearchConfig,
  input: WebSearchInput,
): Promise<SearchResult[]> {
  const url = providerUrl(cfg);
  url.searchParams.set('q', input.query);
  url.searchParams.set('format', 'json');
  if (input.language) url.searchParams.set('language', input.language);
  if (input.timeRange) url.searchParams.set('time_range', SEARXNG_RANGE[input.timeRange]);
  const data = await searchJson(deps, ctx, cfg, url, [['accept', 'application/json']], (status) =>
    status === 403
      ? ' (a SearXNG instance answers 403 when its JSON format is off: add json to search.formats in its settings.yml)'
      : '',
  );
  const list = (data as { results?: unknown }).results;
  if (!Array.isArray(list)) throw badAnswer(cfg, 'it has no results list');
  const out: SearchResult[] = [];
  for (const r of list) {
    if (!isObject(r) || typeof r.url !== 'string') continue;
    out.push({
      title: str(r.title),
      url: r.url,
      snippet: str(r.content),
      ...(typeof r.engine === 'string' && { engine: r.engine }),
    });
  }
  return out;
}

/** Brave Search API: GET {url}?q=…&count=N, X-Subscription-Token; web.results[].title / url / description */
async function brave(
  deps: WebToolDeps,
  ctx: ToolRunContext,
  cfg: SearchConfig,
  input: WebSearchInput,
  limit: number,
): Promise<SearchResult[]> {
  if (!cfg.keySecret)
    throw new TalonError(
      'TOOL_FAILED',
      'web.search with Brave needs an API key: set tools.search.keySecret to the name of a sealed secret holding it',
    );
  const key = await deps.secret(cfg.keySecret);
  if (!key)
    throw new TalonError(
      'TOOL_FAILED',
      `web.search: the sealed secret "${cfg.keySecret}" (tools.search.keySecret, the Brave API key) is not set; ` +
        `set it with \`talon secrets set ${cfg.keySecret}\``,
    );
  const url = providerUrl(cfg);
  url.searchParams.set('q', input.query);
  url.searchParams.set('count', String(Math.min(limit, 20)));
  if (input.language) url.searchParams.set('search_lang', input.language.toLowerCase());
  if (input.timeRange) url.searchParams.set('freshness', BRAVE_FRESHNESS[input.timeRange]);
  const data = await searchJson(
    deps,
    ctx,
    cfg,
    url,
    [
      ['accept', 'application/json'],
      ['x-subscription-token', key],
    ],
    (status) =>
      status === 401 || status === 403
        ? ` (the key in the sealed secret "${cfg.keySecret}" was refused)`
        : status === 429
          ? ' (the plan’s rate limit or quota)'
          : '',
  );
  const web = (data as { web?: unknown }).web;
  if (web === undefined) return [];
  const list = isObject(web) ? web.results : undefined;
  if (!Array.isArray(list)) throw badAnswer(cfg, 'web.results is not a list');
  const out: SearchResult[] = [];
  for (const r of list) {
    if (!isObject(r) || typeof r.url !== 'string') continue;
    out.push({ title: str(r.title), url: r.url, snippet: stripTags(str(r.description)) });
  }
  return out;
}

async function searchJson(
  deps: WebToolDeps,
  ctx: ToolRunContext,
  cfg: SearchConfig,
  url: URL,
  headers: Array<[string, string]>,
  hint: (status: number) => string,
): Promise<unknown> {
  const res = await send(deps, ctx, { url: url.href, method: 'GET', headers });
  const got = await readBody(res, SEARCH_MAX_BYTES, ctx.signal);
  const text = decode(got.bytes, header(res, 'content-type'), got.truncated);
  if (res.status < 200 || res.status > 299) {
    throw new TalonError(
      'TOOL_FAILED',
      `the search provider (${cfg.provider}, ${url.host}) answered HTTP ${res.status}${hint(res.status)}: ${oneLine(text, 200)}`,
      { details: { status: res.status, provider: cfg.provider } },
    );
  }
  if (got.truncated) throw badAnswer(cfg, `it is larger than ${SEARCH_MAX_BYTES} bytes`);
  try {
    const data: unknown = JSON.parse(text);
    if (!isObject(data)) throw new Error('not an object');
    return data;
  } catch {
    throw badAnswer(cfg, `it is not a JSON object: ${oneLine(text, 120)}`);
  }
}

function providerUrl(cfg: SearchConfig): URL {
  try {
    const u = new URL(cfg.url);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u;
  } catch {
    /* below */
  }
  throw new TalonError('TOOL_FAILED', `tools.search.url ${JSON.stringify(cfg.url)} is not an http(s) URL`);
}

function badAnswer(cfg: SearchConfig, why: string): TalonError {
  return new TalonError('TOOL_FAILED', `the search provider (${cfg.provider}) answered something unreadable: ${why}`, {
    details: { provider: cfg.provider },
  });
}

// ---- the grant check ----------------------------------------------------------------------------

/** a tool's URL, parsed: http(s) only, no credentials (TOOL_BAD_INPUT otherwise) */
function toolUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TalonError('TOOL_BAD_INPUT', `${JSON.stringify(raw.slice(0, 200))} is not an absolute URL`, {
      details: { errors: [{ path: '/url', message: 'must be an absolute http:// or https:// URL' }] },
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TalonError('TOOL_BAD_INPUT', `only http:// and https:// URLs can be fetched, not ${url.protocol}`, {
      details: { errors: [{ path: '/url', message: 'must be an http:// or https:// URL' }] },
    });
  if (url.username || url.password)
    throw new TalonError('TOOL_BAD_INPUT', 'a URL with credentials in it is refused; send them in a header', {
      details: { errors: [{ path: '/url', message: 'must not contain a user name or password' }] },
    });
  if (url.hostname === '') throw new TalonError('TOOL_BAD_INPUT', 'the URL has no host');
  return url;
}

function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** `host:port` as grants (and HandFetch's refusals) write it */
function subjectOf(url: URL): string {
  return `${url.hostname.endsWith('.') ? url.hostname.slice(0, -1) : url.hostname}:${portOf(url)}`;
}

const policies = new WeakMap<NetworkGrant, NetworkPolicy>();
function policyOf(grant: NetworkGrant): NetworkPolicy {
  let p = policies.get(grant);
  if (!p) policies.set(grant, (p = new NetworkPolicy(grant)));
  return p;
}

/** step 4 for a non-admin caller: the URL's host must be in the network grant (HandFetch checks again, every hop) */
function checkUrlGrant(raw: string, caller: ToolCaller): null {
  const url = toolUrl(raw);
  const grant = caller.grants.network;
  const subject = subjectOf(url);
  const who = caller.hand !== undefined ? `Hand "${caller.hand}"` : caller.actor;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (grant.hosts.length === 0 || !policyOf(grant).allowsHost(host, portOf(url))) {
    throw new TalonError(
      'CAPABILITY_DENIED',
      grant.hosts.length === 0
        ? `${who} has no network grant: declare capabilities.network with the hosts it may reach (${subject} here)`
        : `${who} may not reach ${subject}; its network grant allows ${grant.hosts.join(', ')}`,
      { details: { action: 'net.fetch', subject } },
    );
  }
  return null;
}

// ---- requests and bodies ------------------------------------------------------------------------

function fetchCaller(caller: ToolCaller): FetchCaller {
  if (caller.admin) return { name: 'admin', network: ADMIN_NETWORK };
  return { name: caller.hand ?? caller.actor, network: caller.grants.network };
}

async function send(
  deps: WebToolDeps,
  ctx: ToolRunContext,
  req: Parameters<HandFetch['request']>[1],
): Promise<FetchResponse> {
  if (ctx.signal.aborted) throw abortError(ctx.signal);
  const timeoutMs = Math.min(req.timeoutMs ?? Infinity, ctx.timeoutMs);
  try {
    return await deps.fetch.request(
      fetchCaller(ctx.caller),
      { ...req, ...(Number.isFinite(timeoutMs) && { timeoutMs }) },
      { signal: ctx.signal },
    );
  } catch (err) {
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    if (err instanceof TalonError && err.code === 'BAD_REQUEST')
      throw new TalonError('TOOL_BAD_INPUT', err.message, { cause: err });
    throw err;
  }
}

/**
 * The body, at most `cap` bytes: the rest is not downloaded (the request is cancelled) and
 * `truncated` says so. The grant's maxResponseBytes stops the body too: what came before it is kept.
 */
async function readBody(
  res: FetchResponse,
  cap: number,
  signal: AbortSignal,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const body: FetchBody | null = res.body;
  if (!body) return { bytes: new Uint8Array(0), truncated: false };
  const onAbort = (): void => body.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  const parts: Buffer[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      let chunk: Buffer | null;
      try {
        chunk = await body.read();
      } catch (err) {
        if (signal.aborted) throw abortError(signal);
        // the grant's cap, reached while reading (a length announced up front is refused by request())
        if (err instanceof TalonError && err.code === 'NET_TOO_LARGE' && size > 0) {
          truncated = true;
          break;
        }
        throw err;
      }
      if (chunk === null) break;
      if (size + chunk.length >= cap) {
        // exactly at the cap: only one more read tells whether anything was left out
        truncated = size + chunk.length > cap || (await moreAfter(body));
        parts.push(chunk.subarray(0, cap - size));
        size = cap;
        if (truncated) body.cancel();
        break;
      }
      parts.push(chunk);
      size += chunk.length;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return { bytes: Buffer.concat(parts, size), truncated };
}

/** after exactly `cap` bytes: is there more? (reads at most one more piece) */
async function moreAfter(body: FetchBody): Promise<boolean> {
  try {
    return (await body.read()) !== null;
  } catch {
    return true;
  }
}

function abortError(signal: AbortSignal): TalonError {
  const r: unknown = signal.reason;
  return r instanceof TalonError ? r : new TalonError('TOOL_FAILED', 'the call was cancelled');
}

function header(res: FetchResponse, name: string): string {
  return res.headers.find(([n]) => n === name)?.[1] ?? '';
}

function headerRecord(list: Array<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [n, v] of list) out[n] = out[n] === undefined ? v : `${out[n]}, ${v}`;
  return out;
}

function mediaType(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase() || 'an unknown type';
}

function isTextType(contentType: string): boolean {
  const t = mediaType(contentType);
  return (
    t.startsWith('text/') ||
    /^application\/([\w.+-]+\+)?(json|xml)$/.test(t) ||
    /^application\/(javascript|ecmascript|x-www-form-urlencoded|x-ndjson|yaml|x-yaml|toml|graphql)$/.test(t) ||
    t === 'image/svg+xml'
  );
}

function pageKind(contentType: string): 'html' | 'text' | 'binary' | 'unknown' {
  if (!contentType.trim()) return 'unknown';
  const t = mediaType(contentType);
  if (t === 'text/html' || t === 'application/xhtml+xml') return 'html';
  return isTextType(contentType) ? 'text' : 'binary';
}

/** bytes as text in the content type's charset (UTF-8 when it names none or one this Node does not know) */
function decode(bytes: Uint8Array, contentType: string, truncated: boolean): string {
  const charset = /;\s*charset\s*=\s*"?([\w.:-]+)/i.exec(contentType)?.[1];
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset ?? 'utf-8');
  } catch {
    decoder = new TextDecoder('utf-8');
  }
  const text = decoder.decode(bytes);
  // a character cut in two at the end of a truncated body
  return truncated ? text.replace(/\uFFFD$/, '') : text;
}

/** UTF-8 text without control bytes, or null (binary) */
function utf8OrNull(bytes: Uint8Array, truncated: boolean): string | null {
  let view = bytes;
  // a cut body may end inside a character: up to 3 bytes of it
  if (truncated) {
    let i = view.length;
    while (i > 0 && view.length - i < 3 && (view[i - 1]! & 0xc0) === 0x80) i--;
    if (i > 0 && view[i - 1]! >= 0xc0) view = view.subarray(0, i - 1);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(view);
  } catch {
    return null;
  }
  return /[\u0000-\u0008\u000e-\u001a\u001c-\u001f]/.test(text) ? null : text;
}

// ---- HTML → article -----------------------------------------------------------------------------

/** elements that are never part of what a page says */
const NOISE = 'script, style, noscript, template, iframe, object, embed, nav, form, button, select, svg, canvas';
const BLOCKS = new Set(
  (
    'ADDRESS ARTICLE ASIDE BLOCKQUOTE DD DIV DL DT FIGCAPTION FIGURE FOOTER H1 H2 H3 H4 H5 H6 HEADER HR LI MAIN OL P ' +
    'PRE SECTION TABLE TR UL'
  ).split(' '),
);

/** the little of linkedom's DOM used here (this project compiles without the DOM lib) */
interface DomNode {
  nodeType: number;
  nodeName: string;
  textContent: string | null;
  childNodes: ArrayLike<DomNode>;
}
interface DomElement extends DomNode {
  outerHTML: string;
  getAttribute(name: string): string | null;
  setAttribute(name: string, value: string): void;
  removeAttribute(name: string): void;
  remove(): void;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): Iterable<DomElement>;
}
interface DomDocument {
  title: string;
  body: DomElement | null;
  documentElement: DomElement;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): Iterable<DomElement>;
}

/**
 * An HTML page as its readable article: Readability on a linkedom document whose links were made
 * absolute first; without an article (hardly any text), the body after the same removals.
 */
interface HtmlLibs {
  parseHTML: (html: string) => { document: unknown };
  Readability: typeof Readability;
  turndown: TurndownService;
}

let libs: Promise<HtmlLibs> | undefined;
/** linkedom, Readability and turndown, loaded on first use (a failed load is tried again next time) */
function htmlLibs(): Promise<HtmlLibs> {
  libs ??= Promise.all([import('linkedom'), import('@mozilla/readability'), import('turndown')]).then(
    ([l, r, t]) => {
      const turndown = new t.default({
        headingStyle: 'atx',
        codeBlockStyle: 'fenced',
        bulletListMarker: '-',
        emDelimiter: '*',
      });
      turndown.remove(['script', 'style', 'noscript', 'iframe', 'nav', 'form', 'button'] as TurndownService.Filter);
      return { parseHTML: l.parseHTML as HtmlLibs['parseHTML'], Readability: r.Readability, turndown };
    },
    (err: unknown) => {
      libs = undefined;
      throw new TalonError('TOOL_FAILED', `web.read cannot load its HTML libraries: ${(err as Error)?.message ?? err}`);
    },
  );
  return libs;
}

export async function readHtml(
  html: string,
  pageUrl: string,
  format: 'markdown' | 'text',
  maxChars = Infinity,
): Promise<{ title: string; byline?: string; text: string; cut: boolean }> {
  const { parseHTML, Readability, turndown } = await htmlLibs();
  const { document } = parseHTML(html);
  let doc = document as unknown as DomDocument;
  const base = baseOf(doc, pageUrl);
  absolutize(doc, base);
  const pageTitle = oneLine(doc.title ?? '', 500);
  for (const el of [...doc.querySelectorAll('nav')]) el.remove();
  let article: ReturnType<Readability<DomElement>['parse']> = null;
  let intact = true;
  try {
    // Readability reads JSON-LD from the scripts, then removes them; the serializer keeps the DOM node.
    // Past maxElemsToParse it throws before it changes anything.
    const reader = new Readability<DomElement>(doc as never, {
      serializer: (n) => n as unknown as DomElement,
      maxElemsToParse: READABILITY_MAX_ELEMENTS,
    });
    intact = false;
    article = reader.parse();
  } catch (err) {
    intact = /Aborting parsing document/.test(String((err as Error)?.message));
    article = null;
  }
  let root: DomElement | null = article?.content ?? null;
  if (!root || !(root.textContent ?? '').trim()) {
    // the simple extraction: the page's body without what is never content
    if (!intact) {
      doc = parseHTML(html).document as unknown as DomDocument;
      absolutize(doc, base);
    }
    for (const el of [...doc.querySelectorAll(NOISE)]) el.remove();
    root = doc.body ?? doc.documentElement;
    article = null;
  }
  for (const el of [...root.querySelectorAll(NOISE)]) el.remove();
  // what would be cut anyway is not converted (turndown's cost grows with the tree)
  const cut = prune(root, maxChars + 1000) <= 0;
  const title = oneLine(article?.title ?? '', 500) || pageTitle;
  const byline = oneLine(article?.byline ?? '', 300);
  const text = format === 'markdown' ? toMarkdown(turndown, root) : toText(root);
  return { title, ...(byline && { byline }), text, cut };
}

/** removes what comes after `budget` characters of text; returns the budget left (≤ 0: something was removed) */
function prune(node: DomElement, budget: number): number {
  let left = budget;
  for (const child of Array.from(node.childNodes) as DomElement[]) {
    if (left <= 0) {
      child.remove();
      continue;
    }
    if (child.nodeType === 3) left -= (child.textContent ?? '').replace(/\s+/g, ' ').length;
    else if (child.nodeType === 1) left = prune(child, left);
  }
  return left;
}

function baseOf(doc: DomDocument, pageUrl: string): string {
  const href = doc.querySelector('base[href]')?.getAttribute('href');
  if (href) {
    try {
      const b = new URL(href, pageUrl);
      if (b.protocol === 'http:' || b.protocol === 'https:') return b.href;
    } catch {
      /* the page's own URL */
    }
  }
  return pageUrl;
}

/** every link and image absolute (linkedom has no baseURI, so Readability leaves them as they are) */
function absolutize(doc: DomDocument, base: string): void {
  for (const [sel, attr] of [
    ['a[href]', 'href'],
    ['img[src]', 'src'],
    ['area[href]', 'href'],
  ] as const) {
    for (const el of [...doc.querySelectorAll(sel)]) {
      const v = el.getAttribute(attr)!.trim();
      if (/^javascript:/i.test(v)) {
        el.removeAttribute(attr);
        continue;
      }
      try {
        el.setAttribute(attr, new URL(v, base).href);
      } catch {
        /* left as it is */
      }
    }
  }
  for (const el of [...doc.querySelectorAll('img[srcset], source[srcset]')]) el.removeAttribute('srcset');
}

function toMarkdown(turndown: TurndownService, root: DomElement): string {
  return turndown
    .turndown(root.outerHTML)
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** plain text: blocks separated by a blank line, <br> a line break, other whitespace collapsed */
function toText(root: DomNode): string {
  const out: string[] = [];
  const walk = (n: DomNode): void => {
    if (n.nodeType === 3) {
      out.push((n.textContent ?? '').replace(/\s+/g, ' '));
      return;
    }
    if (n.nodeType !== 1) return;
    const tag = n.nodeName.toUpperCase();
    if (tag === 'BR') {
      out.push('\n');
      return;
    }
    if (tag === 'PRE') {
      out.push('\n\n', n.textContent ?? '', '\n\n');
      return;
    }
    const block = BLOCKS.has(tag);
    if (block) out.push('\n\n');
    for (const c of Array.from(n.childNodes)) walk(c);
    if (block) out.push('\n\n');
  };
  walk(root);
  return out
    .join('')
    .replace(/[ \t]*\n[ \t]*/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

// ---- small things -------------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function stripTags(s: string): string {
  return s
    .replace(/<[^>]*>/g, '')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function oneLine(s: string, max: number): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}
