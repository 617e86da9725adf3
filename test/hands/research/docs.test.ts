/**
 * The Research Hand's document store (hands/research/docs.ts) over an in-memory HandStore: one document per text
 * whatever the URLs (tracking parameters), one per source item whatever its URL or revision (arXiv v1/v2 read from
 * the fixture web), a page whose counter changed is the same document and one that really changed a new one, seen
 * marks across runs, prune with its index entries, the bounds (text, URLs), listing and counting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DocStore, MAX_TEXT_CHARS, MAX_URLS } from '../../../hands/research/docs.ts';
import { parseSource, readSource } from '../../../hands/research/sources/index.ts';
import type { Candidate, SourceSpec } from '../../../hands/research/types.ts';
import { contentHash, Fetcher } from '../../../hands/sdk/web/index.ts';
import { startWeb } from '../../fixtures/web/server.ts';
import { ARXIV, ARXIV_ID, ARXIV_V2_ABSTRACT, NEWS, researchSites } from '../../fixtures/web/research.ts';
import { memStore } from '../../helpers/mem-store.ts';
import { webFetch } from '../../helpers/web-fetch.ts';
import { fakeCtx } from '../scheduling/fake-ctx.ts';

const cand = (over: Partial<Candidate> = {}): Candidate => ({
  url: 'https://news.example/a',
  title: 'A',
  text: 'Surface codes cross the threshold.',
  source: 'feed:news.example',
  ...over,
});

const keys = (map: Map<string, unknown>, prefix: string): string[] =>
  [...map.keys()].filter((k) => k.startsWith(prefix));

test('the same text under two URLs (tracking parameters) is one document with both URLs', async () => {
  const web = await startWeb(researchSites());
  const f = fakeCtx({ name: 'research' });
  try {
    const fetcher = new Fetcher(webFetch(web.port).fetch, memStore(), { minIntervalMs: 0, timeoutMs: 2000 });
    const env = { fetcher, tools: f.ctx.tools, log: f.ctx.log, now: () => Date.now() };
    const clean = web.url(NEWS, '/articles/quantum.html');
    const tracked = `${clean}?utm_source=rss&utm_medium=feed`;
    const store = memStore();
    const docs = new DocStore(store);
    const got = [];
    for (const url of [clean, tracked]) {
      const r = await readSource(parseSource({ page: url }, 's') as SourceSpec, env);
      assert.equal(r.candidates.length, 1, JSON.stringify(r.errors));
      got.push(await docs.put(r.candidates[0]!, 1000));
    }
    assert.equal(got[0]!.isNew, true);
    assert.equal(got[1]!.isNew, false);
    assert.equal(got[1]!.doc.id, got[0]!.doc.id);
    assert.deepEqual(got[1]!.doc.urls, [clean, tracked]);
    assert.equal(got[1]!.doc.url, clean, 'the first URL stays the URL');
    assert.equal(got[0]!.doc.id, contentHash(got[0]!.doc.text));
    assert.equal(await docs.count(), 1);
    assert.equal((await docs.byUrl(tracked))?.id, got[0]!.doc.id);
    assert.equal((await docs.byUrl(clean))?.id, got[0]!.doc.id);
    assert.equal(await docs.byUrl('https://elsewhere.example/'), undefined);
    const stored = await docs.get(got[0]!.doc.id);
    assert.deepEqual(Object.keys(stored!).sort(), [
      'fetchedAt',
      'id',
      'published',
      'source',
      'text',
      'title',
      'url',
      'urls',
    ]);
  } finally {
    f.close();
    await web.close();
  }
});

test('an arXiv paper read as v1 then v2 is one document, with the revised abstract', async () => {
  const web = await startWeb(researchSites());
  const f = fakeCtx({ name: 'research' });
  try {
    const fetcher = new Fetcher(webFetch(web.port).fetch, memStore(), { minIntervalMs: 0, timeoutMs: 2000 });
    const env = { fetcher, tools: f.ctx.tools, log: f.ctx.log, now: () => Date.now() };
    const spec = parseSource({ arxiv: 'surface codes', url: web.url(ARXIV, '/api/query') }, 's') as SourceSpec;
    const docs = new DocStore(memStore());
    const run1 = await readSource(spec, env);
    const first = [];
    for (const c of run1.candidates) first.push(await docs.put(c, 1000));
    assert.deepEqual(
      first.map((x) => x.isNew),
      [true, true],
    );
    const run2 = await readSource(spec, env);
    const second = [];
    for (const c of run2.candidates) second.push(await docs.put(c, 2000));
    assert.deepEqual(
      second.map((x) => x.isNew),
      [false, false],
    );
    const paper = second[0]!.doc;
    assert.equal(paper.id, first[0]!.doc.id, 'the same document');
    assert.ok(paper.text.includes(ARXIV_V2_ABSTRACT), 'the newest text kept');
    assert.deepEqual(paper.urls, [`http://arxiv.org/abs/${ARXIV_ID}v1`, `http://arxiv.org/abs/${ARXIV_ID}v2`]);
    assert.equal(await docs.count(), 2);
    assert.equal((await docs.byUrl(`http://arxiv.org/abs/${ARXIV_ID}v2`))?.id, paper.id);
  } finally {
    f.close();
    await web.close();
  }
});

test('a feed item under a new URL is the same document; item ids are per source', async () => {
  const docs = new DocStore(memStore());
  const a = await docs.put(cand({ itemId: 'guid-1' }), 1000);
  const moved = await docs.put(
    cand({ url: 'https://news.example/a-moved', itemId: 'guid-1', text: 'Edited text.' }),
    2000,
  );
  assert.equal(moved.isNew, false);
  assert.equal(moved.doc.id, a.doc.id);
  assert.equal(moved.doc.text, 'Edited text.');
  assert.deepEqual(moved.doc.urls, ['https://news.example/a', 'https://news.example/a-moved']);
  const other = await docs.put(
    cand({ url: 'https://b.example/x', itemId: 'guid-1', source: 'feed:b.example', text: 'B' }),
    3000,
  );
  assert.equal(other.isNew, true, 'another source with the same guid is another document');
});

test('the same URL: a small change is the same document, a real change a new one', async () => {
  const docs = new DocStore(memStore());
  const words = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
  const v1 = await docs.put(cand({ url: 'https://x.example/status', text: `${words} visitors 1234` }), 1000);
  const v2 = await docs.put(cand({ url: 'https://x.example/status', text: `${words} visitors 1240` }), 2000);
  assert.equal(v2.isNew, false, 'a counter changed');
  assert.equal(v2.doc.id, v1.doc.id);
  const v3 = await docs.put(
    cand({ url: 'https://x.example/status', text: 'An entirely new release, 2.0, is out today.' }),
    3000,
  );
  assert.equal(v3.isNew, true, 'the page really changed');
  assert.equal((await docs.byUrl('https://x.example/status'))?.id, v3.doc.id);
  assert.equal(await docs.count(), 2);
});

test('bounds: an empty text takes the title; nothing at all is not stored; text and URL list capped', async () => {
  const store = memStore();
  const docs = new DocStore(store);
  const titled = await docs.put(cand({ text: '   ', title: 'Only a title' }), 1000);
  assert.equal(titled.isNew, true);
  assert.equal(titled.doc.text, 'Only a title');
  const nothing = await docs.put(cand({ url: 'https://e.example/', text: ' \n ', title: '' }), 1000);
  assert.equal(nothing.isNew, false);
  assert.equal(nothing.doc.id, '');
  assert.equal(await docs.byUrl('https://e.example/'), undefined);
  const long = await docs.put(cand({ url: 'https://l.example/', text: 'x'.repeat(MAX_TEXT_CHARS + 5000) }), 1000);
  assert.equal(long.doc.text.length, MAX_TEXT_CHARS);
  for (let i = 0; i < MAX_URLS + 5; i++)
    await docs.put(cand({ url: `https://l.example/?p=${i}`, text: 'x'.repeat(MAX_TEXT_CHARS + 5000) }), 1000);
  const d = await docs.get(long.doc.id);
  assert.equal(d!.urls.length, MAX_URLS);
  assert.equal(await docs.get('../etc'), undefined);
});

test('seen and markSeen hold across runs (a new DocStore on the same store), per topic', async () => {
  const store = memStore();
  const run1 = new DocStore(store, { now: () => 5000 });
  const a = await run1.put(cand(), 1000);
  const b = await run1.put(cand({ url: 'https://news.example/b', text: 'Batteries.' }), 1000);
  assert.equal(await run1.seen('quantum', a.doc.id), false);
  await run1.markSeen('quantum', [a.doc.id, a.doc.id]);
  const run2 = new DocStore(store);
  assert.equal(await run2.seen('quantum', a.doc.id), true);
  assert.equal(await run2.seen('quantum', b.doc.id), false);
  assert.equal(await run2.seen('batteries', a.doc.id), false, 'per topic');
  assert.equal(store.map.get(`seen/quantum/${a.doc.id}`), 5000);
  const many = Array.from({ length: 1500 }, (_, i) => `id${i}`);
  await run2.markSeen('bulk', many);
  assert.equal(keys(store.map, 'seen/bulk/').length, 1500);
});

test('prune: documents not handed over since `before` go, with their URL, item and seen entries', async () => {
  const store = memStore();
  const docs = new DocStore(store);
  const old = await docs.put(cand({ url: 'https://o.example/1', text: 'Old news.', itemId: 'o1' }), 1000);
  await docs.put(cand({ url: 'https://o.example/1?utm=x', text: 'Old news.' }), 1500);
  const kept = await docs.put(cand({ url: 'https://k.example/1', text: 'Kept, still in the feed.' }), 1000);
  await docs.put(cand({ url: 'https://k.example/1', text: 'Kept, still in the feed.' }), 9000); // handed over again
  const fresh = await docs.put(cand({ url: 'https://f.example/1', text: 'Fresh.' }), 8000);
  await docs.markSeen('t', [old.doc.id, kept.doc.id]);
  assert.equal(await docs.count(), 3);

  assert.equal(await docs.prune(5000), 1);
  assert.equal(await docs.count(), 2);
  assert.equal(await docs.get(old.doc.id), undefined);
  assert.equal(await docs.byUrl('https://o.example/1'), undefined);
  assert.equal(await docs.byUrl('https://o.example/1?utm=x'), undefined);
  assert.ok(await docs.get(kept.doc.id));
  assert.ok(await docs.get(fresh.doc.id));
  assert.equal(await docs.seen('t', old.doc.id), false);
  assert.equal(await docs.seen('t', kept.doc.id), true);
  const leftovers = [...store.map.entries()].filter(([, v]) => v === old.doc.id);
  assert.deepEqual(leftovers, [], 'no index entry points at the pruned document');
  // the same item again is a new document
  assert.equal(
    (await docs.put(cand({ url: 'https://o.example/1', text: 'Old news.', itemId: 'o1' }), 10_000)).isNew,
    true,
  );
  assert.equal(await docs.prune(0), 0);
});

test('list pages through the documents in id order', async () => {
  const docs = new DocStore(memStore());
  for (let i = 0; i < 5; i++)
    await docs.put(cand({ url: `https://p.example/${i}`, text: `Doc number ${i}.` }), 1000 + i);
  const first = await docs.list({ limit: 3 });
  assert.equal(first.length, 3);
  const rest = await docs.list({ after: first[2]!.id, limit: 3 });
  assert.equal(rest.length, 2);
  const ids = [...first, ...rest].map((d) => d.id);
  assert.deepEqual(ids, [...ids].sort());
  assert.equal(new Set(ids).size, 5);
  assert.ok(!('lastAt' in first[0]!), 'bookkeeping fields are not handed out');
});
