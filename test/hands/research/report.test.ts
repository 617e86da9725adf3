/**
 * Reports (hands/research/report.ts): a model report's sources are exactly the documents its kept findings cite and
 * its Markdown cites exactly those; the nothing report writes no findings and says so; the digest lists the ranked
 * documents with extracts; the findings event's follow-up is a job the Scheduling Hand takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { checkDraft, type LedgerLookup } from '../../../hands/research/ledger.ts';
import {
  digestReport,
  findingsEvent,
  followUpJobId,
  modelReport,
  nothingReport,
  type RunBase,
} from '../../../hands/research/report.ts';
import type { Doc, RankedDoc, Report, Topic } from '../../../hands/research/types.ts';
import { validateJob } from '../../../hands/scheduling/jobs.ts';
import { JOB_ID_PATTERN, JOB_SCHEMA, type JobSpec } from '../../../hands/scheduling/types.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { Grants, NO_CAPABILITIES } from '../../../runtime/core/grants.ts';

function doc(url: string, text: string, title: string): Doc {
  const id = createHash('sha256').update(text).digest('hex').slice(0, 32);
  return { id, url, urls: [url], title, text, fetchedAt: Date.UTC(2026, 11, 2, 9), source: 'feed:test' };
}

const topic: Topic = {
  id: 'robots',
  title: 'Warehouse <robots>',
  questions: ['Who ships warehouse robots?', 'What do they cost?'],
  keywords: [],
  sources: [
    { kind: 'feed', url: 'https://news.example/feed', label: 'feed:news.example' },
    { kind: 'hn', query: 'warehouse robot', label: 'hn:warehouse robot' },
  ],
  minScore: 0.2,
  maxDocs: 2,
  notify: 'normal',
};
const base: RunBase = {
  runId: 'r20261203T0900',
  startedAt: Date.UTC(2026, 11, 3, 9),
  finishedAt: Date.UTC(2026, 11, 3, 9, 1),
  stats: { sources: 2, requests: 5, notModified: 1, candidates: 12, new: 4, relevant: 0, errors: 1, ms: 60_000 },
  errors: [
    { source: 'feed:news.example', url: 'https://news.example/feed', kind: 'timeout', message: 'no answer in 10 s' },
  ],
};
const d1 = doc('https://news.example/a', 'Acme ships its picker.', 'Acme <b>ships</b> [x]');
const d2 = doc('https://blog.example/b', 'The picker costs 40k.', 'Blog: costs');
const d3 = doc('https://other.example/c', 'Shown to the model, never cited.', 'Uncited');
const old = doc('https://archive.example/old', 'Announced last week.', 'Old news');
const lookup: LedgerLookup = {
  get: async (id) => [d1, d2, d3, old].find((d) => d.id === id),
  byUrl: async (url) => [d1, d2, d3, old].find((d) => d.urls.includes(url)),
};

/** the [n] references of a Markdown section (escaped brackets `\[` are not references) */
function refsIn(markdown: string, section: string): number[] {
  const start = markdown.indexOf(`## ${section}`);
  assert.ok(start >= 0, `no ${section} section`);
  const next = markdown.indexOf('\n## ', start + 3);
  const body = markdown.slice(start, next < 0 ? undefined : next);
  return [...body.matchAll(/(?<!\\)\[(\d+)\]/g)].map((m) => Number(m[1]));
}

async function aModelReport(): Promise<Report> {
  const checked = await checkDraft(
    {
      summary: 'Acme ships [3], at 40k.',
      findings: [
        { claim: 'It costs 40k.', sources: [2], confirmed: true, question: 2 },
        { claim: 'Acme ships, as announced.', sources: [1, 'https://archive.example/old'], confirmed: true },
        { claim: 'Acme <script>alert(1)</script> raised 50M.', sources: ['https://made-up.example/x'] },
        { claim: 'Acme again.', sources: [1, 2] },
      ],
    },
    [d1, d2, d3],
    lookup,
  );
  return modelReport(topic, base, 'Acme ships [3], at 40k.', checked, checked.docs);
}

test('a model report lists only cited documents, numbered in order of first citation; the Markdown cites exactly them', async () => {
  const r = await aModelReport();
  assert.equal(r.id, 'robots-r20261203T0900');
  assert.equal(r.mode, 'model');
  assert.deepEqual(
    r.sources.map((s) => [s.n, s.docId, s.url]),
    [
      [1, d2.id, d2.url],
      [2, d1.id, d1.url],
      [3, old.id, old.url],
    ],
  );
  assert.ok(!r.sources.some((s) => s.docId === d3.id), 'a document shown but not cited is not a source');
  assert.deepEqual(
    r.findings.map((f) => [f.claim, f.status, f.citations]),
    [
      ['It costs 40k.', 'reported', [d2.id]],
      ['Acme ships, as announced.', 'confirmed', [d1.id, old.id]],
      ['Acme again.', 'reported', [d1.id, d2.id]],
    ],
  );
  assert.equal(r.findings[0]?.question, 1);
  assert.equal(r.refused.length, 1);
  assert.equal(r.downgraded, 1);
  assert.equal(r.summary, 'Acme ships, at 40k.', 'the summary loses [n] references the report does not check');

  const md = r.markdown;
  assert.ok(md.startsWith('# Warehouse &lt;robots&gt; — 2026-12-03\n'), md.split('\n')[0]);
  assert.deepEqual([...new Set(refsIn(md, 'Findings'))].sort(), [1, 2, 3]);
  assert.deepEqual(refsIn(md, 'Sources'), [1, 2, 3]);
  // the references before the Findings (title, summary) are none
  assert.deepEqual([...md.slice(0, md.indexOf('## Findings')).matchAll(/(?<!\\)\[(\d+)\]/g)], []);
  assert.match(md, /- It costs 40k\. \[1\] \(question 2\)/);
  assert.match(md, /- Acme ships, as announced\. \[2\]\[3\] — \*\*confirmed\*\*/);
  assert.match(md, /- Acme again\. \[2\]\[1\]/);
  assert.match(
    md,
    /- \[2\] Acme &lt;b&gt;ships&lt;\/b&gt; \\\[x\\\] — <https:\/\/news\.example\/a> — fetched 2026-12-02/,
  );
  assert.match(md, /Checked by the ledger: 1 claim refused \(unknown source\), 1 downgraded/);
  assert.doesNotMatch(md, /made-up\.example|<script>|<b>/);
  assert.match(md, /## Errors\n\n- feed:news\.example <https:\/\/news\.example\/feed>: timeout — no answer in 10 s/);
});

test('modelReport does not render a citation it has no document for: that finding is refused whole', () => {
  const r = modelReport(
    topic,
    base,
    'S',
    {
      findings: [
        { claim: 'Known.', status: 'reported', citations: [d1.id] },
        { claim: 'Unknown id.', status: 'confirmed', citations: ['f'.repeat(32)] },
        { claim: 'Half known.', status: 'confirmed', citations: [d1.id, 'e'.repeat(32)] },
      ],
      refused: [],
      downgraded: 0,
    },
    new Map([[d1.id, d1]]),
  );
  assert.deepEqual(
    r.findings.map((f) => [f.claim, f.status, f.citations]),
    [['Known.', 'reported', [d1.id]]],
  );
  assert.deepEqual(r.refused, [
    { claim: 'Unknown id.', reason: 'unknown-citation', cited: ['f'.repeat(32)] },
    { claim: 'Half known.', reason: 'unknown-citation', cited: ['e'.repeat(32)] },
  ]);
  assert.equal(r.downgraded, 0);
  assert.deepEqual(
    r.sources.map((s) => s.n),
    [1],
  );
});

test('the nothing report has no findings and no sources, and says what was asked, searched and checked', () => {
  const r = nothingReport(topic, base);
  assert.equal(r.mode, 'nothing');
  assert.deepEqual(r.findings, []);
  assert.deepEqual(r.sources, []);
  assert.match(r.summary, /^Nothing relevant found/);
  const md = r.markdown;
  assert.match(md, /## Nothing relevant found/);
  assert.match(md, /1\. Who ships warehouse robots\?\n2\. What do they cost\?/);
  assert.match(md, /Sources searched: 2 \(feed:news\.example, hn:warehouse robot\)/);
  assert.match(md, /Documents checked: 12 \(4 new, 0 relevant\)/);
  assert.match(md, /timeout — no answer in 10 s/);
  assert.doesNotMatch(md, /## Findings|## Sources/);
  assert.deepEqual([...md.matchAll(/(?<!\\)\[(\d+)\]/g)], []);
});

test('a digest lists the ranked documents (at most maxDocs) with extracts and links, best first', () => {
  const ranked: RankedDoc[] = [
    { doc: d2, score: 0.91, extract: 'The picker <costs> 40k.', by: 'keywords' },
    { doc: d1, score: 0.4, extract: '', by: 'keywords' },
    { doc: d3, score: 0.3, extract: 'cut by maxDocs', by: 'keywords' },
  ];
  const r = digestReport(topic, base, ranked, 'no model configured');
  assert.equal(r.mode, 'digest');
  assert.deepEqual(r.findings, []);
  assert.deepEqual(
    r.sources.map((s) => [s.n, s.docId, s.extract, s.score]),
    [
      [1, d2.id, 'The picker <costs> 40k.', 0.91],
      [2, d1.id, 'Acme ships its picker.', 0.4],
    ],
  );
  assert.equal(r.note, 'no model configured');
  assert.match(r.summary, /^2 new documents on Warehouse <robots>, ranked by keywords\.$/);
  const md = r.markdown;
  assert.match(md, /_no model configured_/);
  assert.match(
    md,
    /## New documents\n\n1\. \[Blog: costs\]\(https:\/\/blog\.example\/b\) — relevance 0\.91 — fetched 2026-12-02\n {3}> The picker &lt;costs&gt; 40k\./,
  );
  assert.match(md, /2\. \[Acme &lt;b&gt;ships&lt;\/b&gt; \\\[x\\\]\]\(https:\/\/news\.example\/a\) — relevance 0\.40/);
  assert.doesNotMatch(md, /cut by maxDocs/);
});

test('findingsEvent: findings with their sources, and a follow-up job the Scheduling Hand accepts', async () => {
  const r = await aModelReport();
  const e = findingsEvent(r, 'research');
  assert.equal(e.topic, 'robots');
  assert.equal(e.reportId, r.id);
  assert.deepEqual(e.findings[1], {
    claim: 'Acme ships, as announced.',
    status: 'confirmed',
    sources: [
      { url: d1.url, title: d1.title },
      { url: old.url, title: old.title },
    ],
  });
  assert.equal(e.followUp.text, 'Look again in 24 h: 3 new findings on robots');
  const job = e.followUp.job;
  assert.equal(job.id, 'research-followup-robots-r20261203t0900');
  assert.deepEqual(job.trigger, { at: '2026-12-04T09:01:00.000Z' });
  assert.deepEqual(job.action, { ask: { hand: 'research', task: { op: 'run', topic: 'robots' } } });

  const check = createAjv('check').compile(JOB_SCHEMA);
  assert.ok(check(job), JSON.stringify(check.errors));
  // and the Scheduling Hand's own checks beyond the schema (the ask's inbox within its grants)
  const root = 'talon/dev1';
  const grants = new Grants(
    {
      ...NO_CAPABILITIES,
      bus: { publish: [`${root}/hands/research/tasks`], subscribe: [`${root}/hands/scheduling/replies`] },
    },
    root,
  );
  const spec = await validateJob(job, {
    grants,
    self: 'scheduling',
    deviceRoot: root,
    jobs: new Map<string, JobSpec>(),
    handExists: () => true,
  });
  assert.equal(spec.id, job.id);
});

test('follow-up job ids fit the Scheduling Hand pattern whatever the topic and run ids are', () => {
  const re = new RegExp(JOB_ID_PATTERN);
  const long = followUpJobId('a-very-long-topic-name-about-warehouse-robots', '2026-12-03T09:00:00.000Z#a1b2c3d4e5');
  assert.ok(re.test(long) && long.length <= 64, long);
  assert.notEqual(
    long,
    followUpJobId('a-very-long-topic-name-about-warehouse-robots', '2026-12-03T09:00:00.000Z#a1b2c3d4e6'),
  );
  const odd = followUpJobId('Robots Ünïcode', 'Run/1 2');
  assert.ok(re.test(odd), odd);
  const check = createAjv('check').compile(JOB_SCHEMA);
  const digest = findingsEvent(digestReport(topic, { ...base, runId: 'X Y/Z'.repeat(20) }, []), 'research');
  assert.ok(check(digest.followUp.job), JSON.stringify(check.errors));
  assert.equal(digest.followUp.text, 'Look again in 24 h: 0 new documents on robots');
});
