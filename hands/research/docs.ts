/**
 * The Research Hand's document store: every fetched text kept once, by its content hash, in the Hand's store, so a
 * report's citations point at documents that were really fetched (the ledger, ./ledger.ts, looks them up here) and
 * a run knows which documents a topic has already reported (dedup across runs).
 *
 * Keys (the HandStore's, one namespace per Hand):
 *   doc/<id>                     the document (id: contentHash of its text, ../sdk/web/text.ts)
 *   url/<sha1(url)>              → id: every URL a document was seen under
 *   item/<sha1(source \n item)>  → id: a source's own item id (feed guid, arXiv id without version, HN objectID)
 *   at/<last seen ms, 15 digits>/<id> → id: when a source last handed the document over (prune's order)
 *   seen/<topic>/<id>            → ms: the topic reported this document
 *
 * put() decides what is one document:
 * - the same text (same hash) under another URL: one document, the URL added to `urls` (the 20 first kept);
 * - the same item id from the same source (a feed item moved to a new URL, an arXiv paper's v2): one document; its
 *   text, title and published time become the newest ones (the revision is what a reader wants), `id` stays;
 * - the same URL with another text and no item id: one document updated in place when most of its words are the
 *   same (a page with a changing date or counter, Jaccard of the word sets ≥ 0.8), else a new document (the page
 *   really changed: a "page" source that watches a changelog reports the change) and the URL now leads to it;
 * - an empty text takes the title as text; with no title either nothing is stored and `isNew` is false (the doc
 *   handed back has id '' and is not in the store: the caller counts it as an empty candidate).
 * Texts are capped at 200 000 characters. Each put() is one store.batch; calls are meant to be sequential (one run at
 * a time), as the Hand's worker makes them.
 */
import { createHash } from 'node:crypto';
import type { HandStore, HandStoreOp } from '../sdk/types.ts';
import { contentHash, terms } from '../sdk/web/index.ts';
import type { Candidate, Doc } from './types.ts';

export const MAX_TEXT_CHARS = 200_000;
export const MAX_URLS = 20;
/** word-set overlap above which a changed text under the same URL is the same document */
export const SAME_PAGE_JACCARD = 0.8;
const PAGE = 1000;

/** what is stored under doc/<id>: the Doc and the index keys that point at it (so prune can remove them) */
interface StoredDoc extends Doc {
  items?: string[];
  lastAt: number;
}

const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');
const urlKey = (url: string): string => `url/${sha1(url)}`;
const itemKey = (source: string, itemId: string): string => `item/${sha1(`${source}\n${itemId}`)}`;
const atKey = (ms: number, id: string): string => `at/${String(Math.max(0, Math.floor(ms))).padStart(15, '0')}/${id}`;

function publicDoc(s: StoredDoc): Doc {
  const { items: _items, lastAt: _lastAt, ...doc } = s;
  return doc;
}

function jaccard(a: string, b: string): number {
  const x = new Set(terms(a.slice(0, 50_000)));
  const y = new Set(terms(b.slice(0, 50_000)));
  if (x.size === 0 && y.size === 0) return 1;
  let both = 0;
  for (const t of x) if (y.has(t)) both++;
  return both / (x.size + y.size - both);
}

export class DocStore {
  readonly #store: HandStore;
  readonly #now: () => number;
  /** the number of documents, once counted (count()) */
  #count: number | undefined;

  constructor(store: HandStore, opts: { now?: () => number } = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * stores a candidate once by content hash; the same text under a new URL adds the URL; a feed item id seen under a
   * new URL is the same document too (see the file's comment for the rules)
   */
  async put(c: Candidate, now: number): Promise<{ doc: Doc; isNew: boolean }> {
    let text = c.text.length > MAX_TEXT_CHARS ? c.text.slice(0, MAX_TEXT_CHARS) : c.text;
    if (!/\S/.test(text)) text = c.title;
    const base = { url: c.url, urls: [c.url], title: c.title, fetchedAt: now, source: c.source };
    if (!/\S/.test(text))
      return {
        doc: { id: '', ...base, text: '', ...(c.published !== undefined && { published: c.published }) },
        isNew: false,
      };
    const id = contentHash(text);
    const iKey = c.itemId ? itemKey(c.source, c.itemId) : undefined;
    const uKey = urlKey(c.url);

    let existing = await this.#store.get<StoredDoc>(`doc/${id}`);
    let replaceText = false;
    if (!existing && iKey) {
      const other = await this.#store.get<string>(iKey);
      if (other) existing = await this.#store.get<StoredDoc>(`doc/${other}`);
      replaceText = existing !== undefined;
    }
    if (!existing) {
      const other = await this.#store.get<string>(uKey);
      const prev = other ? await this.#store.get<StoredDoc>(`doc/${other}`) : undefined;
      if (prev && jaccard(prev.text, text) >= SAME_PAGE_JACCARD) {
        existing = prev;
        replaceText = true;
      }
    }

    const ops: HandStoreOp[] = [];
    if (existing) {
      const doc: StoredDoc = { ...existing };
      if (!doc.urls.includes(c.url) && doc.urls.length < MAX_URLS) doc.urls = [...doc.urls, c.url];
      if (iKey && !(doc.items ?? []).includes(iKey)) doc.items = [...(doc.items ?? []), iKey];
      if (replaceText && text !== doc.text) {
        doc.text = text;
        doc.title = c.title || doc.title;
        if (c.published !== undefined) doc.published = c.published;
      }
      if (doc.published === undefined && c.published !== undefined) doc.published = c.published;
      doc.lastAt = Math.max(existing.lastAt, now);
      if (doc.lastAt !== existing.lastAt) {
        ops.push({ type: 'del', key: atKey(existing.lastAt, doc.id) });
        ops.push({ type: 'put', key: atKey(doc.lastAt, doc.id), value: doc.id });
      }
      ops.push({ type: 'put', key: `doc/${doc.id}`, value: doc });
      ops.push({ type: 'put', key: uKey, value: doc.id });
      if (iKey) ops.push({ type: 'put', key: iKey, value: doc.id });
      await this.#store.batch(ops);
      return { doc: publicDoc(doc), isNew: false };
    }

    const doc: StoredDoc = {
      id,
      ...base,
      text,
      ...(c.published !== undefined && { published: c.published }),
      ...(iKey && { items: [iKey] }),
      lastAt: now,
    };
    ops.push({ type: 'put', key: `doc/${id}`, value: doc });
    ops.push({ type: 'put', key: uKey, value: id });
    if (iKey) ops.push({ type: 'put', key: iKey, value: id });
    ops.push({ type: 'put', key: atKey(now, id), value: id });
    await this.#store.batch(ops);
    if (this.#count !== undefined) this.#count++;
    return { doc: publicDoc(doc), isNew: true };
  }

  async get(id: string): Promise<Doc | undefined> {
    if (!/^[0-9a-f]{1,64}$/.test(id)) return undefined;
    const s = await this.#store.get<StoredDoc>(`doc/${id}`);
    return s ? publicDoc(s) : undefined;
  }

  async byUrl(url: string): Promise<Doc | undefined> {
    const id = await this.#store.get<string>(urlKey(url));
    return id ? this.get(id) : undefined;
  }

  /** per topic: which documents were already reported (dedup across runs) */
  async seen(topic: string, id: string): Promise<boolean> {
    return (await this.#store.get<number>(`seen/${topic}/${id}`)) !== undefined;
  }

  async markSeen(topic: string, ids: string[]): Promise<void> {
    const at = this.#now();
    const unique = [...new Set(ids.filter((id) => id !== ''))];
    for (let i = 0; i < unique.length; i += PAGE)
      await this.#store.batch(
        unique.slice(i, i + PAGE).map((id) => ({ type: 'put' as const, key: `seen/${topic}/${id}`, value: at })),
      );
  }

  /** documents in id order, `after` an id, at most `limit` (≤ 1000, default 100) */
  async list(opts: { after?: string; limit?: number } = {}): Promise<Doc[]> {
    const rows = await this.#store.list<StoredDoc>({
      prefix: 'doc/',
      limit: Math.max(1, Math.min(opts.limit ?? 100, PAGE)),
      ...(opts.after !== undefined && { after: `doc/${opts.after}` }),
    });
    return rows.map(([, d]) => publicDoc(d));
  }

  async count(): Promise<number> {
    // counted from the store once, then kept as documents come (and after a prune counted again): /metrics asks on
    // every scrape, and a store of 100,000 documents is 100 pages of keys
    if (this.#count !== undefined) return this.#count;
    let n = 0;
    let after: string | undefined;
    for (;;) {
      const rows = await this.#store.list<string>({ prefix: 'at/', limit: PAGE, ...(after && { after }) });
      n += rows.length;
      if (rows.length < PAGE) return (this.#count = n);
      after = rows[rows.length - 1]![0];
    }
  }

  /**
   * deletes documents no source has handed over since `before` (ms epoch; a document still in a feed stays),
   * their URL and item index entries and the topics' seen marks of them; returns how many documents went
   */
  async prune(before: number): Promise<number> {
    const gone = new Set<string>();
    let after: string | undefined;
    outer: for (;;) {
      const rows = await this.#store.list<string>({ prefix: 'at/', limit: PAGE, ...(after && { after }) });
      if (rows.length === 0) break;
      for (const [key, id] of rows) {
        after = key;
        const ms = Number(key.slice(3, 18));
        if (ms >= before) break outer;
        const ops: HandStoreOp[] = [{ type: 'del', key }];
        const doc = await this.#store.get<StoredDoc>(`doc/${id}`);
        if (doc && doc.lastAt < before) {
          ops.push({ type: 'del', key: `doc/${id}` });
          for (const k of [...doc.urls.map(urlKey), ...(doc.items ?? [])])
            if ((await this.#store.get<string>(k)) === id) ops.push({ type: 'del', key: k });
          gone.add(id);
        }
        await this.#store.batch(ops);
      }
      if (rows.length < PAGE) break;
    }
    if (gone.size > 0) {
      let seenAfter: string | undefined;
      for (;;) {
        const rows = await this.#store.list<number>({
          prefix: 'seen/',
          limit: PAGE,
          ...(seenAfter && { after: seenAfter }),
        });
        if (rows.length === 0) break;
        const dels = rows.filter(([k]) => gone.has(k.slice(k.lastIndexOf('/') + 1)));
        if (dels.length) await this.#store.batch(dels.map(([key]) => ({ type: 'del' as const, key })));
        seenAfter = rows[rows.length - 1]![0];
        if (rows.length < PAGE) break;
      }
    }
    this.#count = undefined;
    return gone.size;
  }
}
