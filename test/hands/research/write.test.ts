/**
 * The model's draft (hands/research/write.ts) with a scripted model, then the citation ledger on it: what the prompt
 * says, JSON found inside fences and prose, one repair turn and no more, chat failures as errors, and a model that
 * invents a source losing that claim.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { checkDraft, type LedgerLookup } from '../../../hands/research/ledger.ts';
import type { Doc, RankedDoc, Topic } from '../../../hands/research/types.ts';
import { DRAFT_SCHEMA, draftWithModel, type ModelEnv, parseModelJson } from '../../../hands/research/write.ts';
import type { HandChatRequest, HandChatResult } from '../../../hands/sdk/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

function doc(url: string, text: string, title: string, published?: number): Doc {
  const id = createHash('sha256').update(text).digest('hex').slice(0, 32);
  return { id, url, urls: [url], title, text, fetchedAt: Date.UTC(2026, 11, 1), published, source: 'feed:test' };
}

const topic: Topic = {
  id: 'robots',
  title: 'Warehouse robots',
  questions: ['Who ships warehouse robots in 2027?', 'What do they cost?'],
  keywords: ['robot'],
  sources: [{ kind: 'feed', url: 'https://news.example/feed', label: 'feed:news.example' }],
  minScore: 0.1,
  maxDocs: 10,
  notify: 'normal',
};
const d1 = doc(
  'https://news.example/a',
  'Acme ships its picker robot in March 2027 at 40k.',
  'Acme picker',
  Date.UTC(2026, 10, 20),
);
const d2 = doc('https://blog.example/b', 'The Acme picker costs 40k, says the blog. '.repeat(40), 'Blog on Acme');
const earlier = doc('https://archive.example/old', 'Last week: Acme announced a picker robot.', 'Old news');
const ranked: RankedDoc[] = [
  { doc: d1, score: 0.9, extract: 'Acme ships its picker robot in March 2027 at 40k.', by: 'keywords' },
  { doc: d2, score: 0.5, extract: '', by: 'keywords' },
];
const lookup: LedgerLookup = {
  get: async (id) => [d1, d2, earlier].find((d) => d.id === id),
  byUrl: async (url) => [d1, d2, earlier].find((d) => d.urls.includes(url)),
};

/** a model answering the scripted texts in order (a thrown Error when the script says so) */
function scripted(...answers: Array<string | Error>): ModelEnv & { requests: HandChatRequest[] } {
  const requests: HandChatRequest[] = [];
  return {
    requests,
    async chat(req) {
      requests.push(structuredClone(req));
      const next = answers.shift();
      if (next === undefined) throw new Error('the script has no more answers');
      if (next instanceof Error) throw next;
      const res: HandChatResult = {
        provider: 'fake',
        model: 'scripted',
        text: next,
        toolCalls: [],
        usage: { inputTokens: 10, outputTokens: 10 },
        finishReason: 'stop',
      };
      return res;
    },
  };
}

const json = (v: unknown): string => JSON.stringify(v);

test('the prompt: JSON schema, maxTokens, low temperature; questions and documents numbered with URL, date, extract', async () => {
  const model = scripted(json({ summary: 'S', findings: [] }));
  const r = await draftWithModel(topic, ranked, model);
  assert.ok('draft' in r);
  assert.equal(model.requests.length, 1);
  const req = model.requests[0]!;
  assert.deepEqual(req.jsonSchema, DRAFT_SCHEMA);
  assert.equal(req.maxTokens, 1200);
  assert.equal(req.temperature, 0.2);
  assert.equal(req.messages[0]?.role, 'system');
  const system = req.messages[0]!.content;
  assert.match(system, /only .*JSON/i);
  assert.match(system, /never cite anything that is not in the list/i);
  const user = req.messages[1]!.content;
  assert.match(user, /Topic: Warehouse robots/);
  assert.match(user, /1\. Who ships warehouse robots in 2027\?\n2\. What do they cost\?/);
  assert.match(user, /\[1\] Acme picker\nURL: https:\/\/news\.example\/a\nPublished: 2026-11-20\nExtract: Acme ships/);
  assert.match(user, /\[2\] Blog on Acme\nURL: https:\/\/blog\.example\/b\nPublished: unknown/);
  // a document without an extract is shown by its text, at most 600 characters
  const extract2 = /\[2\][\s\S]*?Extract: (.*)/.exec(user)?.[1] ?? '';
  assert.ok(extract2.length <= 600 && extract2.length > 500, `extract of ${extract2.length} characters`);
  assert.deepEqual('draft' in r ? r.numbered.map((d) => d.id) : [], [d1.id, d2.id]);
});

test('a model citing [1] and [2] → kept with doc ids; an invented URL → that claim refused, the others kept', async () => {
  const model = scripted(
    json({
      summary: 'Acme ships in 2027.',
      findings: [
        { claim: 'Acme ships its picker in March 2027.', sources: [1], confirmed: false, question: 1 },
        { claim: 'It costs 40k.', sources: [1, 2], confirmed: true, question: 2 },
        { claim: 'Acme raised 50M.', sources: ['https://made-up.example/x'], confirmed: false },
        { claim: 'Acme announced it last week.', sources: ['https://archive.example/old'], confirmed: false },
      ],
    }),
  );
  const r = await draftWithModel(topic, ranked, model);
  assert.ok('draft' in r, JSON.stringify(r));
  const checked = await checkDraft(r.draft, r.numbered, lookup);
  assert.deepEqual(checked.findings, [
    { claim: 'Acme ships its picker in March 2027.', status: 'reported', citations: [d1.id], question: 0 },
    { claim: 'It costs 40k.', status: 'confirmed', citations: [d1.id, d2.id], question: 1 },
    { claim: 'Acme announced it last week.', status: 'reported', citations: [earlier.id] },
  ]);
  assert.deepEqual(checked.refused, [
    { claim: 'Acme raised 50M.', reason: 'unknown-citation', cited: ['https://made-up.example/x'] },
  ]);
});

test('a number past the list is refused; confirmed with one document is downgraded', async () => {
  const model = scripted(
    json({
      summary: 'x',
      findings: [
        { claim: 'From document seven.', sources: [7], confirmed: false },
        { claim: 'Confirmed by one.', sources: [2, 2], confirmed: true },
      ],
    }),
  );
  const r = await draftWithModel(topic, ranked, model);
  assert.ok('draft' in r);
  const checked = await checkDraft(r.draft, r.numbered, lookup);
  assert.deepEqual(checked.refused, [{ claim: 'From document seven.', reason: 'unknown-citation', cited: ['[7]'] }]);
  assert.equal(checked.downgraded, 1);
  assert.deepEqual(checked.findings, [{ claim: 'Confirmed by one.', status: 'reported', citations: [d2.id] }]);
});

test('invalid JSON, then valid after the repair turn → the draft, in exactly two chats', async () => {
  const bad = '{"summary": "Acme", "findings": [{"claim": "Acme ships", "sources": [1],}]';
  const model = scripted(bad, json({ summary: 'Acme', findings: [{ claim: 'Acme ships.', sources: [1] }] }));
  const r = await draftWithModel(topic, ranked, model);
  assert.ok('draft' in r, JSON.stringify(r));
  assert.equal(r.draft.findings[0]?.claim, 'Acme ships.');
  assert.equal(model.requests.length, 2);
  const repair = model.requests[1]!.messages;
  assert.equal(repair.length, 4);
  assert.deepEqual(repair[2], { role: 'assistant', content: bad });
  assert.equal(repair[3]?.role, 'user');
  assert.match(repair[3]!.content, /not valid: .*JSON only|not valid: .*only the JSON/i);
});

test('the wrong shape twice → { error: model-json … } after two chats, never a third', async () => {
  const model = scripted(
    json({ summary: 'no findings field' }),
    json({ summary: 'x', findings: [{ claim: 42, sources: 'one' }] }),
    json({ summary: 'never asked', findings: [] }),
  );
  const r = await draftWithModel(topic, ranked, model);
  assert.ok('error' in r);
  assert.match(r.error, /^model-json: /);
  assert.match(r.error, /claim|sources/);
  assert.equal(model.requests.length, 2);
  // the repair turn named what was wrong the first time
  assert.match(model.requests[1]!.messages[3]!.content, /findings/);
});

test('not JSON at all twice → model-json', async () => {
  const model = scripted('I could not find anything.', 'Sorry!');
  const r = await draftWithModel(topic, ranked, model);
  assert.deepEqual(r, { error: 'model-json: no JSON object found in the answer' });
});

test('a chat that throws → { error: model: <code> <message> }, no repair', async () => {
  const model = scripted(new TalonError('QUOTA_EXCEEDED', 'token budget spent'));
  const r = await draftWithModel(topic, ranked, model);
  assert.deepEqual(r, { error: 'model: QUOTA_EXCEEDED token budget spent' });
  assert.equal(model.requests.length, 1);
  const plain = await draftWithModel(topic, ranked, scripted(new Error('socket hang up')));
  assert.deepEqual(plain, { error: 'model: Error socket hang up' });
  // a failure on the repair turn is a model error too
  const late = await draftWithModel(topic, ranked, scripted('nope', new TypeError('fetch failed')));
  assert.deepEqual(late, { error: 'model: TypeError fetch failed' });
});

test('parseModelJson: fences, prose around, <think>, braces in strings, braces in prose; never evaluates', () => {
  const obj = { summary: 'a {b} "c"', findings: [{ claim: 'x } y', sources: [1] }] };
  assert.deepEqual(parseModelJson(`\`\`\`json\n${json(obj)}\n\`\`\``), obj);
  assert.deepEqual(parseModelJson(`Here is the report:\n\n${json(obj)}\n\nHope it helps {really}.`), obj);
  assert.deepEqual(parseModelJson(`<think>maybe {"summary": 1}</think>\n${json(obj)}`), obj);
  assert.deepEqual(parseModelJson(`Use {curly} braces. ${json(obj)}`), obj);
  assert.deepEqual(parseModelJson('```\n{"a": [1, {"b": "]"}]}\n```'), { a: [1, { b: ']' }] });
  assert.equal(parseModelJson('[1, 2, 3]'), undefined);
  assert.equal(parseModelJson('{"a": 1'), undefined);
  assert.equal(parseModelJson(''), undefined);
  let ran = false;
  (globalThis as { __ran?: () => void }).__ran = () => {
    ran = true;
  };
  assert.equal(parseModelJson('{"a": __ran()}'), undefined);
  assert.equal(ran, false);
  // past 32 KB nothing is read: a huge answer is not parsed
  assert.equal(parseModelJson(`{"summary": "${'x'.repeat(40_000)}", "findings": []}`), undefined);
});

test('fenced JSON with prose around it is a valid first answer: one chat', async () => {
  const model = scripted(
    `Sure! Here it is:\n\`\`\`json\n${json({ summary: 'Fenced', findings: [{ claim: 'C.', sources: [2], confirmed: false }] })}\n\`\`\`\nLet me know.`,
  );
  const r = await draftWithModel(topic, ranked, model);
  assert.ok('draft' in r);
  assert.equal(r.draft.summary, 'Fenced');
  assert.equal(model.requests.length, 1);
});
