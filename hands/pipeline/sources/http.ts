/**
 * The Data Pipeline Hand's HTTP source: GETs `spec.url` through the injected fetch (ctx.fetch: the Hand's network
 * grant), and turns the body into records. Follows ./types.ts's contract: the ETag, Last-Modified and the page to
 * resume from are kept in the source's state and move only on ack(), so a crash between poll and ack re-reads.
 *
 * - Conditional GET: with `etag` (default true) the first page is sent with If-None-Match / If-Modified-Since from the
 *   last acknowledged response; a 304 reads nothing.
 * - The body: a JSON array (each object element a record, any other element to `bad`); an object holding an array
 *   (types.ts's HttpSourceSpec names no field, so the FIRST array-valued field is taken, e.g. `{ data: […] }`); an
 *   object without one is one record; or NDJSON (a body that is not one JSON value but whose lines are, or a
 *   Content-Type naming ndjson/jsonl: a bad line to `bad`).
 * - Pagination (`spec.pagination`): `link` follows `Link: <…>; rel="next"`; `cursor` reads the dotted `cursorField`
 *   of the body and sends it back as the query parameter `param`. At most `maxPages` (default DEFAULTS.httpMaxPages)
 *   pages per poll; `more` when a next page remains: the token then holds that page's URL and the next poll starts
 *   there (without conditional headers). The ETag is the first page's.
 * - An HTTP error, a network error or a body that is not JSON: `error` in the result, the cursor unchanged. Pages read
 *   before the failing one in the same poll are returned, and the token resumes at the failing page.
 */
import { TalonError } from '../../../runtime/core/errors.ts';
import { DEFAULTS } from '../config.ts';
import type { HttpSourceSpec, PipelineRecord } from '../types.ts';
import type { BadInput, PollResult, Source, SourceDeps } from './types.ts';

const STATE_KEY = 'http';

/** What is persisted on ack: the first page's validators and the page to resume from. */
export interface HttpSourcePosition {
  etag?: string;
  lastModified?: string;
  /** the next page's URL when the last poll stopped at maxPages */
  next?: string;
}

interface Token {
  http: HttpSourcePosition;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `rel="next"` target of a Link header, resolved against `base`. */
export function nextLink(header: string | null, base: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!m) continue;
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(m[2]!);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (rels.includes('next')) return new URL(m[1]!, base).toString();
  }
  return undefined;
}

function dotted(obj: unknown, path: string): unknown {
  let at = obj;
  for (const k of path.split('.')) {
    if (!isObject(at)) return undefined;
    at = at[k];
  }
  return at;
}

/** The records in a parsed JSON body, and the elements that are not objects. */
function fromValue(value: unknown, where: string, bad: BadInput[]): PipelineRecord[] {
  let list: unknown[];
  if (Array.isArray(value)) list = value;
  else if (isObject(value)) {
    const field = Object.keys(value).find((k) => Array.isArray(value[k]));
    list = field === undefined ? [value] : (value[field] as unknown[]);
  } else {
    bad.push({
      error: `${where}: the body is ${JSON.stringify(value)}, not an object or an array`,
      raw: String(value),
    });
    return [];
  }
  const out: PipelineRecord[] = [];
  list.forEach((item, i) => {
    if (isObject(item)) out.push(item);
    else bad.push({ error: `${where}: element ${i} is not an object`, raw: JSON.stringify(item) ?? String(item) });
  });
  return out;
}

type Parsed = { ok: true; body: unknown; records: PipelineRecord[] } | { ok: false; error: string };

function parseBody(text: string, contentType: string, where: string, bad: BadInput[]): Parsed {
  const ndjsonType = /ndjson|jsonl|json-seq/i.test(contentType);
  if (!ndjsonType) {
    try {
      const body: unknown = JSON.parse(text);
      return { ok: true, body, records: fromValue(body, where, bad) };
    } catch {
      // maybe NDJSON without saying so: tried below
    }
  }
  const records: PipelineRecord[] = [];
  const lineBad: BadInput[] = [];
  let good = 0;
  text.split('\n').forEach((line, i) => {
    const t = line.trim();
    if (!t) return;
    try {
      const v: unknown = JSON.parse(t);
      good++;
      if (isObject(v)) records.push(v);
      else lineBad.push({ error: `${where} line ${i + 1}: not an object`, raw: line, line: i + 1 });
    } catch (e) {
      lineBad.push({ error: `${where} line ${i + 1}: not JSON (${(e as Error).message})`, raw: line, line: i + 1 });
    }
  });
  if (good === 0 && (!ndjsonType || text.trim() !== '')) {
    const start = text.slice(0, 80).replace(/\s+/g, ' ');
    return {
      ok: false,
      error: `${where}: the body is not JSON nor JSON Lines (${contentType || 'no Content-Type'}): ${JSON.stringify(start)}`,
    };
  }
  bad.push(...lineBad);
  return { ok: true, body: undefined, records };
}

/**
 * An HTTP source polling `spec.url`; only `deps.fetch` touches the network. A misconfigured spec (no URL, a cursor
 * pagination without its field or parameter) throws here; everything that goes wrong while polling is in the result.
 */
export function createHttpSource(spec: HttpSourceSpec, deps: Pick<SourceDeps, 'fetch' | 'state' | 'log'>): Source {
  return new HttpSource(spec, deps);
}

class HttpSource implements Source {
  #spec: HttpSourceSpec;
  #deps: Pick<SourceDeps, 'fetch' | 'state' | 'log'>;

  constructor(spec: HttpSourceSpec, deps: Pick<SourceDeps, 'fetch' | 'state' | 'log'>) {
    new URL(spec.url); // throws on a URL config.ts would have refused
    const p = spec.pagination;
    if (p?.next === 'cursor' && (!p.cursorField || !p.param))
      throw new TalonError(
        'BAD_REQUEST',
        'pagination: next "cursor" needs cursorField (the body field) and param (the query parameter)',
      );
    this.#spec = spec;
    this.#deps = deps;
  }

  async poll(): Promise<PollResult> {
    const spec = this.#spec;
    const saved = (await this.#deps.state.get<HttpSourcePosition>(STATE_KEY)) ?? {};
    const maxPages = spec.pagination ? (spec.pagination.maxPages ?? DEFAULTS.httpMaxPages) : 1;
    const useEtag = spec.etag ?? DEFAULTS.httpEtag;
    const records: PipelineRecord[] = [];
    const bad: BadInput[] = [];
    const pos: HttpSourcePosition = { ...saved };
    delete pos.next;
    let url: string | undefined = saved.next ?? spec.url;
    let first = saved.next === undefined;
    let pages = 0;
    const stop = (error: string): PollResult => {
      this.#deps.log('warn', error);
      // records of earlier pages are kept; the next poll resumes at the page that failed
      const token: Token | null = pages === 0 ? null : { http: { ...pos, next: url } };
      return { records, bad, token, more: false, error };
    };
    while (url !== undefined && pages < maxPages) {
      const headers: Record<string, string> = {
        accept: 'application/json, application/x-ndjson;q=0.9',
        ...spec.headers,
      };
      if (first && useEtag) {
        if (saved.etag) headers['if-none-match'] = saved.etag;
        if (saved.lastModified) headers['if-modified-since'] = saved.lastModified;
      }
      let res: Response;
      let text: string;
      try {
        res = await this.#deps.fetch(url, { method: 'GET', headers });
        text = await res.text();
      } catch (e) {
        return stop(`GET ${url}: ${(e as Error).message}`);
      }
      if (res.status === 304) {
        if (!first) return stop(`GET ${url}: 304 Not Modified for a next page (no conditional header was sent)`);
        return { records: [], bad: [], token: null, more: false };
      }
      if (!res.ok) {
        const snippet = text.slice(0, 200).replace(/\s+/g, ' ');
        return stop(`GET ${url}: HTTP ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`);
      }
      const parsed = parseBody(text, res.headers.get('content-type') ?? '', `GET ${url}`, bad);
      if (!parsed.ok) return stop(parsed.error);
      if (first) {
        const etag = res.headers.get('etag');
        const lastModified = res.headers.get('last-modified');
        delete pos.etag;
        delete pos.lastModified;
        if (useEtag && etag) pos.etag = etag;
        if (useEtag && lastModified) pos.lastModified = lastModified;
      }
      records.push(...parsed.records);
      pages++;
      first = false;
      url = this.#next(url, res, parsed.body);
    }
    return {
      records,
      bad,
      token: { http: { ...pos, ...(url !== undefined && { next: url }) } },
      more: url !== undefined,
    };
  }

  #next(url: string, res: Response, body: unknown): string | undefined {
    const p = this.#spec.pagination;
    if (!p) return undefined;
    if (p.next === 'link') return nextLink(res.headers.get('link'), url);
    const cursor = dotted(body, p.cursorField!);
    if (cursor === undefined || cursor === null || cursor === '' || cursor === false) return undefined;
    if (typeof cursor !== 'string' && typeof cursor !== 'number') return undefined;
    const next = new URL(this.#spec.url);
    next.searchParams.set(p.param!, String(cursor));
    return next.toString();
  }

  async ack(token: unknown): Promise<void> {
    if (!isObject(token) || !isObject(token.http)) return;
    await this.#deps.state.put(STATE_KEY, token.http);
  }

  async close(): Promise<void> {}
}
