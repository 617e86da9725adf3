/**
 * Where the Lead Generation Hand finds companies, one reader per source kind, each giving raw leads (fields named as
 * LEAD_FIELDS, the page or file they came from) and counted errors — never a throw:
 *   list    a directory or exhibitor page through the web kit's Fetcher (robots.txt and the never-scrape hosts are
 *           the Fetcher's business: a refusal is an error of kind `robots`), rows read with CSS selectors
 *           (selectList; a website on the directory's own host is left out) or by the model (./extract.ts);
 *           `next` (a selector, `@href` implied) is followed up to maxPages, a page seen before stops it
 *   import  a CSV (header row; csv-parse) or JSON file (an array of objects, or `{ leads: [...] }`) from `path`
 *           (env.readFile, under the Hand's fs grant) or `url`; `map` renames columns to lead fields, other columns
 *           whose names are lead fields (any case) are taken as they are, the rest ignored
 *   feed    RSS/Atom/JSON Feed: an item is a lead when its link is on another host than the feed's own (a news
 *           item about a company links to the company's site): that link's origin is the website, the item's title
 *           the company, its summary the description. An item linking to the feed's own site becomes a lead only
 *           when its text writes a URL of another host (the first one); other items are skipped.
 *   search  `web.search` through ctx.tools (the device's SearXNG or Brave): each result's origin is a website, its
 *           title (up to ` | `, ` - `, ` – `) the company, its snippet the description; one lead per domain, social
 *           networks' results skipped
 * parseLeadSource checks a source from the settings and names the field that is wrong.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import type { HandContext } from '../sdk/types.ts';
import type { ListSelectors } from '../sdk/web/types.ts';
import { Fetcher, WebError, parseFeed, readHtml, selectList, selectOne } from '../sdk/web/index.ts';
import { extractWithModel, type ModelChat } from './extract.ts';
import { normalizeDomain, normalizeEmail, websiteDomain } from './normalize.ts';
import { LEAD_FIELDS, type LeadField, type LeadSource, type RawLead } from './types.ts';

export type { ModelChat } from './extract.ts';

export interface LeadSourceEnv {
  fetcher: Fetcher;
  tools: HandContext['tools'];
  llm: ModelChat | null;
  log: HandContext['log'];
  now: () => number;
  readFile(path: string): Promise<string>;
}

export interface LeadSourceError {
  source: string;
  url?: string;
  kind: string;
  message: string;
}

/** what one source gave: `dropped` (an extension) counts the model's leads not found on the page */
export interface LeadSourceResult {
  leads: RawLead[];
  errors: LeadSourceError[];
  pages: number;
  dropped: number;
}

/** the most pages one list source follows, the most rows or items one source gives */
export const MAX_PAGES = 50;
export const MAX_ROWS = 5000;
/** an import file's cap (a URL's is the Fetcher's) */
export const MAX_IMPORT_CHARS = 10 * 1024 * 1024;

const FIELD_SET = new Set<string>(LEAD_FIELDS);
const isField = (k: string): k is LeadField => FIELD_SET.has(k);

/** a row's values cleaned: whitespace collapsed, e-mails without `mailto:`, empty values left out */
function cleanFields(row: Record<string, unknown>, map: Record<string, string> = {}): RawLead['fields'] {
  const out: RawLead['fields'] = {};
  const lowerMap = new Map(Object.entries(map).map(([k, v]) => [k.trim().toLowerCase(), v]));
  for (const [key, raw] of Object.entries(row)) {
    if (raw === null || raw === undefined || typeof raw === 'object') continue;
    const name = map[key] ?? lowerMap.get(key.trim().toLowerCase()) ?? key.trim().toLowerCase();
    if (!isField(name) || out[name]) continue;
    let v = String(raw).replace(/\s+/g, ' ').trim();
    if (name === 'email') v = normalizeEmail(v) ?? (/^mailto:/i.test(v) ? '' : v);
    if (name === 'phone') v = v.replace(/^tel:/i, '').trim();
    if (v) out[name] = v.slice(0, 2000);
  }
  return out;
}

const useful = (f: RawLead['fields']): boolean => !!(f.website || f.email || f.company);

function errorOf(source: string, url: string | undefined, err: unknown): LeadSourceError {
  if (err instanceof WebError) return { source, url: err.url || url, kind: err.kind, message: err.message };
  const e = err as Error & { code?: string };
  return { source, url, kind: e.code === 'CAPABILITY_DENIED' ? 'denied' : 'error', message: e.message ?? String(err) };
}

/** reads one source; every failure is an entry of `errors` */
export async function readLeadSource(src: LeadSource, env: LeadSourceEnv): Promise<LeadSourceResult> {
  const res: LeadSourceResult = { leads: [], errors: [], pages: 0, dropped: 0 };
  try {
    if (src.kind === 'list') await readList(src, env, res);
    else if (src.kind === 'import') await readImport(src, env, res);
    else if (src.kind === 'feed') await readFeedSource(src, env, res);
    else await readSearch(src, env, res);
  } catch (err) {
    res.errors.push(errorOf(src.name, 'url' in src ? src.url : undefined, err));
  }
  if (res.leads.length > MAX_ROWS) res.leads.length = MAX_ROWS;
  return res;
}

async function readList(src: Extract<LeadSource, { kind: 'list' }>, env: LeadSourceEnv, res: LeadSourceResult) {
  const seen = new Set<string>();
  let url: string | undefined = src.url;
  const max = Math.min(Math.max(1, src.maxPages), MAX_PAGES);
  while (url && res.pages < max && !seen.has(url)) {
    seen.add(url);
    let text: string;
    let base: string;
    try {
      const page = await env.fetcher.get(url, { accept: 'text/html,application/xhtml+xml' });
      text = page.text;
      base = page.finalUrl || url;
    } catch (err) {
      res.errors.push(errorOf(src.name, url, err));
      return;
    }
    res.pages++;
    seen.add(base);
    if (src.extract === 'model') {
      if (!env.llm) {
        res.errors.push({ source: src.name, url, kind: 'no-model', message: 'extract: model needs an LLM grant' });
        return;
      }
      const got = await extractWithModel(readHtml(text, base), base, env.llm);
      if ('error' in got) {
        const kind = got.error.startsWith('model-json') ? 'model-json' : 'model';
        res.errors.push({ source: src.name, url: base, kind, message: got.error });
      } else {
        res.dropped += got.dropped;
        if (got.dropped) env.log.warn('model named companies not on the page: dropped', { url: base, n: got.dropped });
        for (const fields of got.leads) res.leads.push({ fields, sourceUrl: base, source: src.name });
      }
    } else if (src.selectors) {
      const own = normalizeDomain(base);
      for (const row of selectList(text, base, src.selectors)) {
        const fields = cleanFields(row);
        // a link to the directory's own pages (a profile, a booth plan) is not the company's website
        if (fields.website && own && normalizeDomain(fields.website) === own) delete fields.website;
        if (useful(fields)) res.leads.push({ fields, sourceUrl: base, source: src.name });
      }
    }
    if (!src.next) return;
    const sel = src.next.includes('@') ? src.next : `${src.next}@href`;
    const next = selectOne(text, base, sel);
    url = next && /^https?:\/\//i.test(next) ? next.split('#')[0] : undefined;
  }
}

async function readImport(src: Extract<LeadSource, { kind: 'import' }>, env: LeadSourceEnv, res: LeadSourceResult) {
  let text: string;
  let where: string;
  if (src.path) {
    where = `file://${src.path}`;
    try {
      text = await env.readFile(src.path);
    } catch (err) {
      res.errors.push({ source: src.name, url: where, kind: 'file', message: (err as Error).message });
      return;
    }
  } else {
    where = src.url!;
    try {
      const page = await env.fetcher.get(where, { accept: 'text/csv,application/json,text/plain,*/*' });
      text = page.text;
    } catch (err) {
      res.errors.push(errorOf(src.name, where, err));
      return;
    }
  }
  res.pages++;
  if (text.length > MAX_IMPORT_CHARS) {
    res.errors.push({ source: src.name, url: where, kind: 'too-large', message: `over ${MAX_IMPORT_CHARS} chars` });
    return;
  }
  let rows: unknown[];
  try {
    if (src.format === 'csv') {
      rows = parseCsv(text, {
        columns: true,
        relax_column_count: true,
        bom: true,
        skip_empty_lines: true,
        trim: true,
      }) as unknown[];
    } else {
      const v = JSON.parse(text.replace(/^\uFEFF/, '')) as unknown;
      const list = Array.isArray(v) ? v : (v as { leads?: unknown } | null)?.leads;
      if (!Array.isArray(list)) throw new Error('a JSON import is an array of objects or { "leads": [...] }');
      rows = list;
    }
  } catch (err) {
    res.errors.push({ source: src.name, url: where, kind: 'parse', message: (err as Error).message });
    return;
  }
  for (const row of rows.slice(0, MAX_ROWS)) {
    if (!row || typeof row !== 'object' || Array.isArray(row)) continue;
    const fields = cleanFields(row as Record<string, unknown>, src.map);
    if (useful(fields)) res.leads.push({ fields, sourceUrl: where, source: src.name });
  }
}

const origin = (url: string): string | undefined => {
  try {
    const u = new URL(url);
    return /^https?:$/.test(u.protocol) ? `${u.origin}/` : undefined;
  } catch {
    return undefined;
  }
};

const URL_IN_TEXT = /https?:\/\/[^\s"'<>()]+/gi;

async function readFeedSource(src: Extract<LeadSource, { kind: 'feed' }>, env: LeadSourceEnv, res: LeadSourceResult) {
  let text: string;
  let base: string;
  try {
    const page = await env.fetcher.get(src.url, {
      accept: 'application/rss+xml,application/atom+xml,application/feed+json,application/xml,text/xml,*/*',
    });
    text = page.text;
    base = page.finalUrl || src.url;
  } catch (err) {
    res.errors.push(errorOf(src.name, src.url, err));
    return;
  }
  res.pages++;
  let feed: ReturnType<typeof parseFeed>;
  try {
    feed = parseFeed(text, base);
  } catch (err) {
    res.errors.push(errorOf(src.name, base, err));
    return;
  }
  const own = normalizeDomain(base);
  const other = (u: string): boolean => {
    const d = websiteDomain(u);
    return !!d && d !== own && !d.endsWith(`.${own}`);
  };
  for (const item of feed.items.slice(0, MAX_ROWS)) {
    let site = item.url && other(item.url) ? item.url : undefined;
    if (!site) {
      const body = `${item.summary} ${item.content ?? ''}`;
      site = [...body.matchAll(URL_IN_TEXT)].map((m) => m[0].replace(/[.,;:]+$/, '')).find(other);
    }
    const website = site ? origin(site) : undefined;
    if (!website) continue;
    const fields: RawLead['fields'] = { website };
    if (item.title.trim()) fields.company = item.title.replace(/\s+/g, ' ').trim().slice(0, 200);
    if (item.summary.trim()) fields.description = item.summary.replace(/\s+/g, ' ').trim().slice(0, 1000);
    res.leads.push({ fields, sourceUrl: item.url || base, source: src.name });
  }
}

interface SearchOutput {
  results?: Array<{ title?: string; url?: string; snippet?: string }>;
}

async function readSearch(src: Extract<LeadSource, { kind: 'search' }>, env: LeadSourceEnv, res: LeadSourceResult) {
  let out: SearchOutput;
  try {
    const r = await env.tools.call<SearchOutput>('web.search', {
      query: src.query,
      limit: Math.min(Math.max(1, src.max), 50),
    });
    out = r.output ?? {};
  } catch (err) {
    const e = err as Error & { code?: string };
    res.errors.push({ source: src.name, kind: 'search', message: `${e.code ?? 'error'}: ${e.message}` });
    return;
  }
  res.pages++;
  const seen = new Set<string>();
  for (const r of out.results ?? []) {
    if (res.leads.length >= src.max) break;
    if (typeof r.url !== 'string') continue;
    const d = websiteDomain(r.url);
    const website = origin(r.url);
    if (!d || !website || seen.has(d)) continue;
    seen.add(d);
    const fields: RawLead['fields'] = { website };
    const title = (r.title ?? '')
      .split(/\s+[|–—-]\s+/)[0]!
      .replace(/\s+/g, ' ')
      .trim();
    if (title) fields.company = title.slice(0, 200);
    if (r.snippet?.trim()) fields.description = r.snippet.replace(/\s+/g, ' ').trim().slice(0, 1000);
    res.leads.push({ fields, sourceUrl: r.url, source: src.name });
  }
}

// ---- settings -----------------------------------------------------------------------------------

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isHttp = (v: unknown): v is string => {
  if (typeof v !== 'string') return false;
  try {
    return /^https?:$/.test(new URL(v).protocol);
  } catch {
    return false;
  }
};

/**
 * A source from the settings, or a message naming the field (`sources[1].selectors.fields.phon: not a lead field;
 * use one of company, website, …`). The kind is `kind`, or the shorthand key: `{ list: URL }`, `{ import: path or
 * URL }`, `{ feed: URL }`, `{ search: query }`. Defaults: name `<kind>-<n>` (from `where`), maxPages 10 with `next`
 * else 1, max 10, format from the file's extension (.json, else csv), map {}.
 */
export function parseLeadSource(raw: unknown, where: string): LeadSource | string {
  if (!isObj(raw)) return `${where}: must be an object such as { kind: list, url: https://…, selectors: {…} }`;
  const o = { ...raw };
  let kind = o.kind;
  if (kind === undefined) {
    for (const k of ['list', 'import', 'feed', 'search'] as const) {
      if (o[k] === undefined) continue;
      kind = k;
      if (k === 'search') o.query ??= o[k];
      else if (k === 'import' && typeof o[k] === 'string' && !isHttp(o[k])) o.path ??= o[k];
      else o.url ??= o[k];
      break;
    }
  }
  if (kind !== 'list' && kind !== 'import' && kind !== 'feed' && kind !== 'search')
    return `${where}.kind: must be list, import, feed or search`;
  const idx = /\[(\d+)\]$/.exec(where)?.[1];
  const name = o.name ?? `${kind}-${idx ?? 0}`;
  if (typeof name !== 'string' || !/^[\w.-]{1,64}$/.test(name))
    return `${where}.name: must be 1–64 letters, digits, '_', '-' or '.'`;
  if (kind === 'list') {
    if (!isHttp(o.url)) return `${where}.url: must be an http(s) URL of the list page`;
    let selectors: ListSelectors | undefined;
    if (o.selectors !== undefined) {
      const s = o.selectors;
      if (!isObj(s) || typeof s.item !== 'string' || !s.item.trim())
        return `${where}.selectors.item: must be a CSS selector for each entry (e.g. ".exhibitor")`;
      if (!isObj(s.fields) || Object.keys(s.fields).length === 0)
        return `${where}.selectors.fields: must map lead fields to selectors ({ company: "h3", website: "a@href" })`;
      const fields: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.fields)) {
        if (!isField(k))
          return `${where}.selectors.fields.${k}: not a lead field; use one of ${LEAD_FIELDS.join(', ')}`;
        if (typeof v !== 'string' || !v.trim()) return `${where}.selectors.fields.${k}: must be a CSS selector string`;
        fields[k] = v;
      }
      selectors = { item: s.item, fields };
    }
    if (o.extract !== undefined && o.extract !== 'model') return `${where}.extract: the only value is "model"`;
    if (!selectors && o.extract !== 'model')
      return `${where}: a list needs selectors ({ item, fields }) or extract: model`;
    if (o.next !== undefined && (typeof o.next !== 'string' || !o.next.trim()))
      return `${where}.next: must be a CSS selector of the next page's link (e.g. "a.next")`;
    const maxPages = o.maxPages ?? (o.next ? 10 : 1);
    if (!Number.isInteger(maxPages) || (maxPages as number) < 1 || (maxPages as number) > MAX_PAGES)
      return `${where}.maxPages: must be an integer 1–${MAX_PAGES}`;
    const out: LeadSource = { kind, name, url: o.url, maxPages: maxPages as number };
    if (selectors) out.selectors = selectors;
    if (o.extract === 'model') out.extract = 'model';
    if (typeof o.next === 'string') out.next = o.next;
    return out;
  }
  if (kind === 'import') {
    const hasPath = typeof o.path === 'string' && o.path.trim() !== '';
    if (hasPath === (o.url !== undefined))
      return `${where}: an import needs exactly one of path (a file the Hand may read) or url`;
    if (o.url !== undefined && !isHttp(o.url)) return `${where}.url: must be an http(s) URL`;
    const file = String(hasPath ? o.path : o.url);
    const format = o.format ?? (/\.json(\?|$)/i.test(file) ? 'json' : 'csv');
    if (format !== 'csv' && format !== 'json') return `${where}.format: must be csv or json`;
    const map: Record<string, string> = {};
    if (o.map !== undefined) {
      if (!isObj(o.map)) return `${where}.map: must map column names to lead fields ({ "Firma": "company" })`;
      for (const [k, v] of Object.entries(o.map)) {
        if (typeof v !== 'string' || !isField(v))
          return `${where}.map.${k}: must be a lead field: ${LEAD_FIELDS.join(', ')}`;
        map[k] = v;
      }
    }
    const out: LeadSource = { kind, name, format, map };
    if (hasPath) out.path = o.path as string;
    else out.url = o.url as string;
    return out;
  }
  if (kind === 'feed') {
    if (!isHttp(o.url)) return `${where}.url: must be an http(s) URL of an RSS, Atom or JSON feed`;
    return { kind, name, url: o.url };
  }
  if (typeof o.query !== 'string' || !o.query.trim() || o.query.length > 400)
    return `${where}.query: must be a search query of 1–400 characters`;
  const max = o.max ?? 10;
  if (!Number.isInteger(max) || (max as number) < 1 || (max as number) > 50) return `${where}.max: must be 1–50`;
  return { kind, name, query: o.query.trim(), max: max as number };
}
