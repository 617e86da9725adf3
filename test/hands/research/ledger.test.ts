/**
 * The citation ledger (hands/research/ledger.ts): every kept claim rests on fetched documents only, a claim citing
 * anything else is removed whole, confirmed needs two distinct documents, the text is bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  checkDraft,
  cleanSummary,
  type Draft,
  type LedgerLookup,
  MAX_CLAIM_CHARS,
  MAX_FINDINGS,
  urlVariants,
} from '../../../hands/research/ledger.ts';
import type { Doc } from '../../../hands/research/types.ts';

function doc(url: string, text: string, title = text.slice(0, 20)): Doc {
  const id = createHash('sha256').update(text).digest('hex').slice(0, 32);
  return { id, url, urls: [url], title, text, fetchedAt: Date.UTC(2026, 11, 1), source: 'feed:test' };
}

/** an in-memory lookup over `docs`, counting calls */
function lookupOf(docs: Doc[]): LedgerLookup & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async get(id) {
      calls.push(`get ${id}`);
      return docs.find((d) => d.id === id);
    },
    async byUrl(url) {
      calls.push(`byUrl ${url}`);
      return docs.find((d) => d.urls.includes(url));
    },
  };
}

const a = doc('https://news.example/a', 'Alpha robots ship in March');
const b = doc('https://blog.example/b/', 'Beta robots ship in March as well');
const old = doc('https://archive.example/2025/old-post', 'An older post about robots, fetched last week');
const numbered = [a, b];
const lookup = lookupOf([a, b, old]);

test('claims citing [1] and [2] are kept with their doc ids; confirmed on two documents stays confirmed', async () => {
  const draft: Draft = {
    summary: 'Robots ship.',
    findings: [
      { claim: 'Alpha ships in March.', sources: [1], confirmed: false },
      { claim: 'Both ship in March.', sources: [1, 2], confirmed: true, question: 1 },
    ],
  };
  const r = await checkDraft(draft, numbered, lookup);
  assert.deepEqual(r.refused, []);
  assert.equal(r.downgraded, 0);
  assert.deepEqual(r.findings, [
    { claim: 'Alpha ships in March.', status: 'reported', citations: [a.id] },
    { claim: 'Both ship in March.', status: 'confirmed', citations: [a.id, b.id], question: 0 },
  ]);
  assert.deepEqual([...r.docs.keys()].sort(), [a.id, b.id].sort());
});

test('an invented URL gets the whole claim refused (unknown-citation), even next to a real source; others kept', async () => {
  const draft: Draft = {
    summary: '',
    findings: [
      { claim: 'Real claim.', sources: [2] },
      { claim: 'Invented claim.', sources: ['https://made-up.example/x'] },
      { claim: 'Half invented.', sources: [1, 'https://made-up.example/y'], confirmed: true },
    ],
  };
  const r = await checkDraft(draft, numbered, lookup);
  assert.deepEqual(
    r.findings.map((f) => f.claim),
    ['Real claim.'],
  );
  assert.deepEqual(r.refused, [
    { claim: 'Invented claim.', reason: 'unknown-citation', cited: ['https://made-up.example/x'] },
    { claim: 'Half invented.', reason: 'unknown-citation', cited: ['https://made-up.example/y'] },
  ]);
  assert.equal(r.downgraded, 0, 'a refused claim is not also counted as downgraded');
});

test('a URL or a doc id of a document fetched in an earlier run is a valid citation', async () => {
  const r = await checkDraft(
    {
      summary: '',
      findings: [
        { claim: 'From last week, by URL.', sources: ['https://archive.example/2025/old-post'] },
        { claim: 'From last week, by id.', sources: [old.id.toUpperCase()] },
      ],
    },
    numbered,
    lookup,
  );
  assert.deepEqual(r.refused, []);
  assert.deepEqual(
    r.findings.map((f) => f.citations),
    [[old.id], [old.id]],
  );
});

test('URLs are matched lightly normalized: fragment, trailing slash, http/https — not more', async () => {
  const r = await checkDraft(
    {
      summary: '',
      findings: [
        { claim: 'Fragment and http.', sources: ['http://news.example/a#section-2'] },
        { claim: 'Missing trailing slash.', sources: ['https://blog.example/b'] },
        { claim: 'Extra trailing slash, earlier run.', sources: ['https://archive.example/2025/old-post/'] },
        { claim: 'Another host is another document.', sources: ['https://www.news.example/a'] },
        { claim: 'Not a URL at all.', sources: ['The Alpha press release'] },
        { claim: 'A javascript URL.', sources: ['javascript:alert(1)'] },
      ],
    },
    numbered,
    lookup,
  );
  assert.deepEqual(
    r.findings.map((f) => [f.claim, f.citations[0]]),
    [
      ['Fragment and http.', a.id],
      ['Missing trailing slash.', b.id],
      ['Extra trailing slash, earlier run.', old.id],
    ],
  );
  assert.deepEqual(
    r.refused.map((c) => c.claim),
    ['Another host is another document.', 'Not a URL at all.', 'A javascript URL.'],
  );
  assert.ok(urlVariants('https://x.example/p/#f').includes('http://x.example/p'));
  assert.deepEqual(urlVariants('ftp://x.example/p'), []);
});

test('a number out of range (or zero, negative, fractional) is an unknown citation; "[2]" as a string is 2', async () => {
  const r = await checkDraft(
    {
      summary: '',
      findings: [
        { claim: 'Three.', sources: [3] },
        { claim: 'Zero.', sources: [0] },
        { claim: 'Negative.', sources: [-1] },
        { claim: 'Fraction.', sources: [1.5] },
        { claim: 'String two.', sources: ['[2]'] },
      ],
    },
    numbered,
    lookup,
  );
  assert.deepEqual(
    r.refused.map((c) => [c.claim, c.reason, c.cited]),
    [
      ['Three.', 'unknown-citation', ['[3]']],
      ['Zero.', 'unknown-citation', ['[0]']],
      ['Negative.', 'unknown-citation', ['[-1]']],
      ['Fraction.', 'unknown-citation', ['[1.5]']],
    ],
  );
  assert.deepEqual(r.findings, [{ claim: 'String two.', status: 'reported', citations: [b.id] }]);
});

test('no sources → no-citation; confirmed on one document (cited three ways) → reported and counted', async () => {
  const r = await checkDraft(
    {
      summary: '',
      findings: [
        { claim: 'Uncited.', sources: [], confirmed: true },
        { claim: 'One doc, three ways.', sources: [1, 1, a.id, 'https://news.example/a'], confirmed: true },
        { claim: 'Two docs.', sources: [1, 'https://blog.example/b/'], confirmed: true },
      ],
    },
    numbered,
    lookup,
  );
  assert.deepEqual(r.refused, [{ claim: 'Uncited.', reason: 'no-citation', cited: [] }]);
  assert.equal(r.downgraded, 1);
  assert.deepEqual(
    r.findings.map((f) => [f.claim, f.status, f.citations]),
    [
      ['One doc, three ways.', 'reported', [a.id]],
      ['Two docs.', 'confirmed', [a.id, b.id]],
    ],
  );
});

test('claims are trimmed, one line, inline [n] removed, capped; empty and repeated ones dropped; at most 50', async () => {
  const many = Array.from({ length: 80 }, (_, i) => ({ claim: `Claim ${i}.`, sources: [1] }));
  const r = await checkDraft(
    {
      summary: '',
      findings: [
        { claim: '   ', sources: [1] },
        { claim: '  Robots\n\nship [1][2] soon [1, 2].\u0007 ', sources: [1] },
        { claim: 'robots ship soon.', sources: [2] },
        { claim: 'x'.repeat(5000), sources: [2] },
        ...many,
      ],
    },
    numbered,
    lookup,
  );
  assert.equal(r.findings.length, MAX_FINDINGS);
  assert.equal(r.findings[0]?.claim, 'Robots ship soon.');
  assert.equal(r.findings[1]?.claim.length, MAX_CLAIM_CHARS);
  assert.ok(r.findings[1]?.claim.endsWith('…'));
  assert.equal(r.findings[2]?.claim, 'Claim 0.');
  assert.equal(cleanSummary(`${'s'.repeat(3000)}`).length, 2000);
  assert.equal(cleanSummary('One [3].\r\n\r\nTwo.'), 'One.\n\nTwo.');
});

test('a lookup that fails is not taken for a fake citation: the error reaches the caller', async () => {
  const failing: LedgerLookup = {
    get: async () => {
      throw new Error('store closed');
    },
    byUrl: async () => {
      throw new Error('store closed');
    },
  };
  await assert.rejects(
    checkDraft(
      { summary: '', findings: [{ claim: 'C.', sources: ['https://elsewhere.example/'] }] },
      numbered,
      failing,
    ),
    /store closed/,
  );
  // numbers never need the store
  const r = await checkDraft({ summary: '', findings: [{ claim: 'C.', sources: [1] }] }, numbered, failing);
  assert.equal(r.findings.length, 1);
});
