/**
 * Relevance of documents to a topic, 0–1, best first: with the router's embeddings when a provider offers them
 * (rank with `embed`), keyword scoring otherwise (keywordRank). Either way each document gets the passage that
 * matches the topic's terms best (bestExtract) for the report or the digest.
 *
 * Keywords: BM25 (k1 1.2, b 0.75) over the terms of each document's title and text, the query being the terms of
 * the topic's questions (weight 1) and of its keywords (weight 2; a term in both counts once, as a keyword). The
 * inverse document frequency is BM25's non-negative form, ln(1 + (N − df + 0.5) / (df + 0.5)), over the documents
 * ranked together. The score is divided by the most the query could score (every query term in the document with an
 * infinite frequency: Σ weight · idf · (k1 + 1)): so 1 is "all the query's terms, many times", 0.5 about "the
 * weightier half of them, a few times", 0 "none of them". The scale does not depend on how many documents there are,
 * so a topic's minScore keeps its meaning from run to run.
 *
 * Embeddings: the questions (else the keywords, else the title) embedded once, the documents (title and the first
 * 2000 characters) in batches of 16; a document's score is its best cosine with a question, below 0 taken as 0. Any
 * failure (no provider, an error, vectors of the wrong count or size) falls back to keywords and logs one warning.
 */
import type { HandContext } from '../sdk/types.ts';
import { bestExtract, terms } from '../sdk/web/index.ts';
import type { Doc, RankedDoc, Topic } from './types.ts';

export const BM25_K1 = 1.2;
export const BM25_B = 0.75;
export const EMBED_BATCH = 16;
export const EMBED_CHARS = 2000;

/** the topic's query terms with their weights (keywords 2, the questions' other words 1) */
export function queryTerms(topic: Topic): Map<string, number> {
  const q = new Map<string, number>();
  for (const t of terms(topic.questions.join('\n'))) q.set(t, 1);
  for (const t of terms(topic.keywords.join('\n'))) q.set(t, 2);
  if (q.size === 0) for (const t of terms(topic.title)) q.set(t, 1);
  return q;
}

function order(a: RankedDoc, b: RankedDoc): number {
  return (
    b.score - a.score ||
    (b.doc.published ?? b.doc.fetchedAt) - (a.doc.published ?? a.doc.fetchedAt) ||
    (a.doc.id < b.doc.id ? -1 : a.doc.id > b.doc.id ? 1 : 0)
  );
}

/** BM25 over questions' + keywords' terms, 0–1, best first */
export function keywordRank(topic: Topic, docs: Doc[]): RankedDoc[] {
  const query = queryTerms(topic);
  const qTerms = [...query.keys()];
  const tfs = docs.map((d) => {
    const tf = new Map<string, number>();
    let len = 0;
    for (const t of terms(`${d.title}\n${d.text}`)) {
      len++;
      if (query.has(t)) tf.set(t, (tf.get(t) ?? 0) + 1);
    }
    return { tf, len };
  });
  const n = docs.length;
  const avgLen = n === 0 ? 1 : Math.max(1, tfs.reduce((s, x) => s + x.len, 0) / n);
  const idf = new Map<string, number>();
  let most = 0;
  for (const t of qTerms) {
    const df = tfs.filter((x) => x.tf.has(t)).length;
    const v = Math.log(1 + (n - df + 0.5) / (df + 0.5));
    idf.set(t, v);
    most += query.get(t)! * v * (BM25_K1 + 1);
  }
  const ranked = docs
    .map((doc, i): RankedDoc => {
      const { tf, len } = tfs[i]!;
      let s = 0;
      for (const [t, f] of tf) {
        const norm = BM25_K1 * (1 - BM25_B + (BM25_B * len) / avgLen);
        s += query.get(t)! * idf.get(t)! * ((f * (BM25_K1 + 1)) / (f + norm));
      }
      const score = most > 0 ? Math.min(1, Math.max(0, s / most)) : 0;
      return { doc, score, extract: '', by: 'keywords' as const };
    })
    .sort(order);
  return withExtracts(ranked, qTerms, topic.maxDocs);
}

/**
 * the passage that matched best, for the first `n` only: a report rests on at most maxDocs of them, and an extract of
 * every new document (a first run reads hundreds) was most of a run's CPU
 */
function withExtracts(ranked: RankedDoc[], qTerms: string[], n: number): RankedDoc[] {
  for (const r of ranked.slice(0, Number.isFinite(n) ? Math.max(1, n) : 50))
    r.extract = bestExtract(r.doc.text, qTerms);
  return ranked;
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

function checkVectors(v: unknown, count: number, dim?: number): number[][] {
  if (!Array.isArray(v) || v.length !== count)
    throw new Error(`embeddings: ${Array.isArray(v) ? v.length : 'no'} vectors for ${count} texts`);
  const d = dim ?? (v[0] as unknown[] | undefined)?.length ?? 0;
  if (d === 0) throw new Error('embeddings: empty vectors');
  for (const x of v)
    if (!Array.isArray(x) || x.length !== d || !x.every((n) => typeof n === 'number' && Number.isFinite(n)))
      throw new Error(`embeddings: a vector is not ${d} finite numbers`);
  return v as number[][];
}

/**
 * embed given: the best cosine of each document with the questions' embeddings; any failure → keywordRank and one
 * `log.warn` (when a log is given)
 */
export async function rank(
  topic: Topic,
  docs: Doc[],
  embed?: (texts: string[]) => Promise<number[][]>,
  log?: Pick<HandContext['log'], 'warn'>,
): Promise<RankedDoc[]> {
  if (!embed || docs.length === 0) return keywordRank(topic, docs);
  try {
    const asks = topic.questions.length
      ? topic.questions
      : topic.keywords.length
        ? [topic.keywords.join(', ')]
        : [topic.title];
    const qv = checkVectors(await embed(asks), asks.length);
    const dim = qv[0]!.length;
    const qTerms = [...queryTerms(topic).keys()];
    const out: RankedDoc[] = [];
    for (let i = 0; i < docs.length; i += EMBED_BATCH) {
      const batch = docs.slice(i, i + EMBED_BATCH);
      const dv = checkVectors(
        await embed(batch.map((d) => `${d.title}\n${d.text.slice(0, EMBED_CHARS)}`)),
        batch.length,
        dim,
      );
      batch.forEach((doc, j) => {
        const best = Math.max(...qv.map((q) => cosine(q, dv[j]!)));
        out.push({ doc, score: Math.min(1, Math.max(0, best)), extract: '', by: 'embeddings' });
      });
    }
    return withExtracts(out.sort(order), qTerms, topic.maxDocs);
  } catch (err) {
    log?.warn(`research ranking: embeddings failed, keyword ranking used (${(err as Error)?.message ?? String(err)})`, {
      topic: topic.id,
    });
    return keywordRank(topic, docs);
  }
}
