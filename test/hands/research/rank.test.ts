/**
 * Relevance ranking (hands/research/rank.ts): BM25 keyword scores in 0–1 with the relevant document first, keywords
 * weighing double, no query term scoring 0; the embeddings path with a fake embed (questions embedded once, documents
 * in batches of 16); an embed that fails or answers nonsense falls back to keywords with one warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMBED_BATCH, keywordRank, queryTerms, rank } from '../../../hands/research/rank.ts';
import type { Doc, Topic } from '../../../hands/research/types.ts';
import { ARTICLES } from '../../fixtures/web/research.ts';

const topic = (over: Partial<Topic> = {}): Topic => ({
  id: 'qec',
  title: 'Quantum error correction',
  questions: ['Is quantum error correction below the threshold?', 'Which codes suppress logical errors?'],
  keywords: ['surface code'],
  sources: [],
  minScore: 0.1,
  maxDocs: 10,
  notify: 'off',
  ...over,
});

let n = 0;
const doc = (title: string, text: string, over: Partial<Doc> = {}): Doc => {
  n++;
  const id = n.toString(16).padStart(32, '0');
  return {
    id,
    url: `https://x.example/${n}`,
    urls: [`https://x.example/${n}`],
    title,
    text,
    fetchedAt: 1000,
    source: 'test',
    ...over,
  };
};

const quantum = doc(ARTICLES.quantum.title, ARTICLES.quantum.text);
const battery = doc(ARTICLES.battery.title, ARTICLES.battery.text);
const garden = doc(ARTICLES.garden.title, ARTICLES.garden.text);

test('keywordRank: the relevant document first, scores in 0–1, no query term scores 0', () => {
  const ranked = keywordRank(topic(), [garden, battery, quantum]);
  assert.equal(ranked[0]!.doc.id, quantum.id);
  assert.ok(ranked[0]!.score > 0.2, `quantum scores well (${ranked[0]!.score})`);
  assert.ok(ranked[0]!.score <= 1);
  assert.equal(ranked.find((r) => r.doc.id === garden.id)!.score, 0, 'tomatoes share no term');
  for (const r of ranked) {
    assert.ok(r.score >= 0 && r.score <= 1);
    assert.equal(r.by, 'keywords');
    assert.ok(r.extract.length <= 400);
  }
  assert.match(ranked[0]!.extract, /error|surface|logical/i);
  for (let i = 1; i < ranked.length; i++) assert.ok(ranked[i - 1]!.score >= ranked[i]!.score, 'sorted desc');
});

test('keywordRank: keywords weigh double; a document with every term many times nears 1; no query → 0', () => {
  const t = topic({ questions: ['lithium anodes'], keywords: ['electrolyte'] });
  assert.deepEqual(
    [...queryTerms(t)],
    [
      ['lithium', 1],
      ['anodes', 1],
      ['electrolyte', 2],
    ],
  );
  const kw = doc('k', 'The electrolyte matters. Other words here to fill.');
  const q = doc('q', 'The lithium matters. Other words here to fill.');
  const r = keywordRank(t, [kw, q]);
  assert.equal(r[0]!.doc.id, kw.id);
  assert.ok(r[0]!.score > r[1]!.score * 1.5, `${r[0]!.score} vs ${r[1]!.score}`);
  const full = doc('all', 'lithium anodes electrolyte '.repeat(200));
  const best = keywordRank(t, [full, kw, q, garden]).find((x) => x.doc.id === full.id)!;
  assert.ok(best.score > 0.8 && best.score <= 1, `near 1: ${best.score}`);
  const none = keywordRank(topic({ questions: [], keywords: [], title: 'the of and' }), [quantum]);
  assert.equal(none[0]!.score, 0);
  assert.deepEqual(keywordRank(t, []), []);
});

/** a bag-of-words embedding over a tiny vocabulary: enough to make cosine meaningful */
const VOCAB = ['quantum', 'error', 'logical', 'surface', 'code', 'battery', 'electrolyte', 'tomato', 'threshold'];
function bow(text: string): number[] {
  const t = text.toLowerCase();
  return VOCAB.map((w) => t.split(w).length - 1 + 0.01);
}

test('rank with embeddings: questions embedded once, documents in batches of 16, best cosine wins', async () => {
  const calls: string[][] = [];
  const embed = async (texts: string[]): Promise<number[][]> => {
    calls.push(texts);
    return texts.map(bow);
  };
  const filler = Array.from({ length: 20 }, (_, i) => doc(`Tomato ${i}`, 'tomato tomato garden balcony pot'));
  const docs = [...filler, garden, battery, quantum];
  const ranked = await rank(topic(), docs, embed);
  assert.equal(ranked.length, docs.length);
  assert.equal(ranked[0]!.doc.id, quantum.id);
  assert.equal(ranked[0]!.by, 'embeddings');
  assert.ok(ranked.every((r) => r.score >= 0 && r.score <= 1));
  assert.deepEqual(calls[0], topic().questions, 'the questions first, once');
  assert.equal(calls.length, 1 + Math.ceil(docs.length / EMBED_BATCH));
  assert.ok(calls.slice(1).every((c) => c.length <= EMBED_BATCH));
  assert.ok(
    calls.slice(1).every((c) => c.every((t) => t.length <= 2000 + 200)),
    'title + first 2000 chars',
  );
  for (let i = 1; i < ranked.length; i++) assert.ok(ranked[i - 1]!.score >= ranked[i]!.score);
});

test('rank: an embed that fails or answers the wrong shape falls back to keywords with one warning', async () => {
  const warnings: string[] = [];
  const log = { warn: (m: string) => void warnings.push(m) };
  const failing = async (): Promise<number[][]> => {
    throw new Error('no embedding provider');
  };
  const r1 = await rank(topic(), [garden, quantum], failing, log);
  assert.equal(r1[0]!.by, 'keywords');
  assert.equal(r1[0]!.doc.id, quantum.id);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /no embedding provider/);

  let call = 0;
  const short = async (texts: string[]): Promise<number[][]> => (call++ === 0 ? texts.map(bow) : [[1, 2]]);
  const r2 = await rank(topic(), [garden, quantum], short, log);
  assert.equal(r2[0]!.by, 'keywords');
  assert.equal(warnings.length, 2);
  const nan = async (texts: string[]): Promise<number[][]> => texts.map(() => [Number.NaN, 1]);
  assert.equal((await rank(topic(), [quantum], nan, log))[0]!.by, 'keywords');
  assert.equal(warnings.length, 3, 'one warning per fallback, not per batch');

  assert.equal((await rank(topic(), [quantum]))[0]!.by, 'keywords', 'no embed: keywords');
  assert.deepEqual(await rank(topic(), [], failing, log), []);
});
