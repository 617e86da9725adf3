/**
 * The Research Hand (hands/research/index.ts) on the fixture web (test/fixtures/web/research.ts, real HTTP through
 * webFetch): a digest without a model; a model report whose claim citing an invented URL is removed, audited
 * `citation.refused` and logged; a "nothing relevant" report; dedup across runs (the same item again, and under a new
 * URL: nothing new, no second findings event); a feed that is not XML counted while the run still reports; the
 * topics' schedules put into a fake Scheduling Hand over the task protocol (stale jobs removed) or, when it does not
 * answer, kept on local timers; a run asked over the task inbox; the settings' problems named by field.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWeb, type FixtureWeb, type Sites } from '../../fixtures/web/server.ts';
import { ARTICLES, NEWS, researchSites } from '../../fixtures/web/research.ts';
import { webFetch } from '../../helpers/web-fetch.ts';
import { fakeCtx, type FakeCtx } from '../scheduling/fake-ctx.ts';
import { ResearchHand, eventFor, jobIdOf, newRunId, parseReportId } from '../../../hands/research/index.ts';
import { cronProblem, parseSettings } from '../../../hands/research/settings.ts';
import def from '../../../hands/research/index.ts';
import { validateManifest, validateSettings } from '../../../runtime/supervisor/manifest.ts';
import { effectiveGrants } from '../../../runtime/core/grants.ts';
import type { HandChatRequest, HandChatResult, HandContext } from '../../../hands/sdk/types.ts';
import type { FindingsEvent } from '../../../hands/research/types.ts';

const LAB = 'lab.example';
let web: FixtureWeb;

/** a feed without validators (read whole every time): one item, whose link can be changed between runs */
function labFeed(link: string): string {
  return `<?xml version="1.0"?><rss version="2.0"><channel><title>Lab</title><link>http://${LAB}/</link>
  <description>Lab notes</description>
  <item><title>Logical qubits below threshold in our lab</title><link>${link}</link><guid isPermaLink="false">lab-1</guid>
  <description>Our surface code experiment kept logical qubits below the error threshold: quantum error correction works.</description></item>
  </channel></rss>`;
}

before(async () => {
  const sites: Sites = {
    ...researchSites(),
    [LAB]: {
      '/robots.txt': { type: 'text/plain', body: 'User-agent: *\nAllow: /\n' },
      '/feed.xml': { type: 'application/rss+xml', body: '' },
    },
  };
  web = await startWeb(sites);
  setLabFeed('/notes/1.html');
});
after(async () => {
  await web.close();
});

function setLabFeed(path: string): void {
  web.sites[LAB]!['/feed.xml'] = { type: 'application/rss+xml', body: labFeed(web.url(LAB, path)) };
}

const QUANTUM = {
  id: 'quantum',
  title: 'Quantum error correction',
  questions: ['Did quantum error correction with surface codes cross the threshold?'],
  keywords: ['quantum', 'qubits', 'surface codes'],
  minScore: 0.05,
};

type Chat = (req: HandChatRequest) => string | Promise<string>;

interface Made {
  f: FakeCtx;
  ctx: HandContext;
  hand: ResearchHand;
  chats: HandChatRequest[];
  findings(): FindingsEvent[];
}

function make(
  settings: Record<string, unknown>,
  opts: { chat?: Chat; name?: string; tools?: string[]; now?: () => number } = {},
): Made {
  const f = fakeCtx({
    name: opts.name ?? 'research',
    grants: {
      ...(opts.chat && { llm: { tokensPerHour: 100_000 } }),
      ...(opts.tools && { tools: { allow: opts.tools, approve: [] } }),
    },
  });
  const chats: HandChatRequest[] = [];
  const ctx: HandContext = {
    ...f.ctx,
    settings: { politenessMs: 0, timeoutMs: 2000, scheduler: '', ...settings },
    fetch: webFetch(web.port).fetch,
    llm: {
      chat: async (req: HandChatRequest): Promise<HandChatResult> => {
        chats.push(req);
        if (!opts.chat) throw Object.assign(new Error('no llm grant'), { code: 'CAPABILITY_DENIED' });
        const text = await opts.chat(req);
        return {
          provider: 'fake',
          model: 'scripted',
          text,
          toolCalls: [],
          usage: { inputTokens: 10, outputTokens: 10 },
          finishReason: 'stop',
        };
      },
    },
  };
  const hand = new ResearchHand(ctx, { schedulerTimeoutMs: 300, ...(opts.now && { now: opts.now }) });
  return {
    f,
    ctx,
    hand,
    chats,
    findings: () =>
      f.published.filter((p) => /^research\/[^/]+\/findings$/.test(p.topic)).map((p) => p.payload as FindingsEvent),
  };
}

/** the number the prompt gave the document whose title starts with `title` */
function numberOf(req: HandChatRequest, title: string): number {
  const user = req.messages.find((m) => m.role === 'user')!.content;
  const m = new RegExp(`^\\[(\\d+)\\] ${title.slice(0, 20)}`, 'm').exec(user);
  assert.ok(m, `the prompt numbers "${title}":\n${user}`);
  return Number(m[1]);
}

test('a digest without a model: the ranked relevant documents, published as findings, audited and listed', async () => {
  const m = make({ topics: [{ ...QUANTUM, sources: [{ feed: web.url(NEWS, '/feed.xml') }], notify: 'normal' }] });
  await m.hand.start();
  try {
    const r = await m.hand.run('quantum');
    assert.equal(r.mode, 'digest');
    assert.match(r.note ?? '', /no llm grant/);
    assert.equal(m.chats.length, 0, 'no model is asked without an llm grant');
    const urls = r.sources.map((s) => s.url);
    assert.ok(
      urls.some((u) => u.includes('/articles/quantum.html')),
      urls.join(' '),
    );
    assert.ok(!urls.some((u) => u.includes('/articles/garden.html')), 'the tomato article is not relevant');
    assert.equal(r.stats.candidates, 3);
    assert.equal(r.stats.new, 3);
    assert.ok(r.stats.relevant >= 1 && r.stats.relevant < 3, `relevant ${r.stats.relevant}`);
    assert.match(r.markdown, /Surface codes cross the error-correction threshold/);
    // the findings event: the digest's documents as reported findings, with the follow-up job asking this Hand
    const events = m.findings();
    assert.equal(events.length, 1);
    assert.equal(events[0]!.reportId, r.id);
    assert.ok(events[0]!.findings.some((x) => x.claim === ARTICLES.quantum.title && x.status === 'reported'));
    assert.deepEqual((events[0]!.followUp.job.action as { ask: unknown }).ask, {
      hand: 'research',
      task: { op: 'run', topic: 'quantum' },
    });
    const pub = m.f.published.find((p) => p.topic === 'research/quantum/findings')!;
    assert.equal(pub.opts?.qos, 1);
    const note = m.f.published.find((p) => p.topic === 'notify/normal');
    assert.ok(note, 'notify: normal publishes a notification');
    assert.match(String((note.payload as { text: string }).text), /talon research report quantum-/);
    // audited with counts
    const run = m.f.audits.find((a) => a.action === 'run');
    assert.equal(run?.subject, 'quantum');
    assert.equal(run?.decision, 'ok');
    assert.equal(run?.detail?.mode, 'digest');
    assert.equal(run?.detail?.new, 3);
    // stored and listed
    assert.deepEqual(parseReportId(r.id), { topic: 'quantum', runId: r.runId });
    const { report } = await m.hand.report(r.id);
    assert.equal(report.markdown, r.markdown);
    const listed = await m.hand.reports({ limit: 10 });
    assert.deepEqual(
      listed.reports.map((x) => [x.id, x.mode, x.findings, x.sources]),
      [[r.id, 'digest', 0, r.sources.length]],
    );
    assert.equal('markdown' in listed.reports[0]!, false);
    const docs = await m.hand.documents({ limit: 50, topic: 'quantum' });
    assert.equal(docs.documents.length, 3);
    assert.ok(docs.documents.every((d) => !('text' in d) && d.chars > 0));
    const topics = m.hand.topicsView().topics;
    assert.deepEqual(topics[0]!.lastRun && [topics[0]!.lastRun.reportId, topics[0]!.lastRun.mode], [r.id, 'digest']);
    const { stats } = await m.hand.stats();
    assert.equal(stats.runs.digest, 1);
    assert.equal(stats.published, 1);
    assert.equal(stats.documents, 3);
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('a model report: a claim citing an invented URL is removed, audited citation.refused and logged', async () => {
  const invented = 'https://journal.invented.example/papers/quantum-supremacy-2026';
  const m = make(
    { topics: [{ ...QUANTUM, sources: [{ feed: web.url(NEWS, '/feed.xml') }] }] },
    {
      chat: (req) => {
        const n = numberOf(req, ARTICLES.quantum.title);
        return `Here is the JSON:\n\`\`\`json\n${JSON.stringify({
          summary: 'Surface codes now beat the physical error rate.',
          findings: [
            { claim: 'Surface codes on 72 qubits kept logical errors below the physical error rate.', sources: [n] },
            { claim: 'A lab demonstrated quantum supremacy on 10,000 logical qubits.', sources: [invented] },
          ],
        })}\n\`\`\``;
      },
    },
  );
  await m.hand.start();
  try {
    const r = await m.hand.run('quantum');
    assert.equal(r.mode, 'model');
    assert.equal(m.chats.length, 1);
    assert.deepEqual(
      r.findings.map((x) => x.claim),
      ['Surface codes on 72 qubits kept logical errors below the physical error rate.'],
    );
    assert.equal(r.refused.length, 1);
    assert.equal(r.refused[0]!.reason, 'unknown-citation');
    assert.doesNotMatch(r.markdown, /supremacy/, 'the refused claim is not in the report');
    assert.doesNotMatch(r.markdown, /invented\.example/);
    // every citation is a fetched document
    for (const f of r.findings)
      for (const id of f.citations) assert.ok(await m.hand.docs.get(id), `citation ${id} is a stored document`);
    const refusal = m.f.audits.filter((a) => a.action === 'citation.refused');
    assert.equal(refusal.length, 1);
    assert.equal(refusal[0]!.subject, invented);
    assert.match(String(refusal[0]!.detail?.claim), /^A lab demonstrated quantum supremacy/);
    assert.equal(refusal[0]!.detail?.reportId, r.id);
    assert.ok(m.f.logs.some(([level, msg]) => level === 'warn' && msg.includes(invented)));
    const run = m.f.audits.find((a) => a.action === 'run');
    assert.equal(run?.detail?.refused, 1);
    assert.equal(run?.detail?.mode, 'model');
    // the findings event carries the kept claim with its source's URL
    const [e] = m.findings();
    assert.equal(e!.findings.length, 1);
    assert.match(e!.findings[0]!.sources[0]!.url, /\/articles\/quantum\.html/);
    assert.equal((await m.hand.stats()).stats.refused, 1);
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('a model answer that is never valid JSON: a digest with the note, the error counted as model-json', async () => {
  const m = make(
    { topics: [{ ...QUANTUM, sources: [{ feed: web.url(NEWS, '/feed.xml') }] }] },
    { chat: () => 'Sure! The findings are: surface codes work.' },
  );
  await m.hand.start();
  try {
    const r = await m.hand.run('quantum');
    assert.equal(r.mode, 'digest');
    assert.equal(m.chats.length, 2, 'one repair request');
    assert.match(r.note ?? '', /model failed/);
    assert.deepEqual(
      r.errors.filter((e) => e.source === 'model').map((e) => e.kind),
      ['model-json'],
    );
    assert.equal((await m.hand.stats()).stats.errors['model-json'], 1);
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('nothing relevant: a nothing report that says so, no findings published', async () => {
  const m = make({
    topics: [
      {
        id: 'volcanoes',
        questions: ['Which volcanoes erupted in Iceland this month?'],
        keywords: ['volcano', 'eruption', 'lava'],
        sources: [{ feed: web.url(NEWS, '/feed.xml') }],
        notify: 'high',
      },
    ],
  });
  await m.hand.start();
  try {
    const r = await m.hand.run('volcanoes');
    assert.equal(r.mode, 'nothing');
    assert.deepEqual([r.findings.length, r.sources.length], [0, 0]);
    assert.equal(r.stats.relevant, 0);
    assert.ok(r.stats.candidates > 0);
    assert.match(r.markdown, /Nothing relevant found/);
    assert.deepEqual(m.findings(), []);
    assert.equal(
      m.f.published.some((p) => p.topic.startsWith('notify/')),
      false,
    );
    assert.equal(m.f.audits.find((a) => a.action === 'run')?.detail?.mode, 'nothing');
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('dedup across runs: the same item again, then under a new URL, is not new; no second findings event', async () => {
  setLabFeed('/notes/1.html');
  const m = make({ topics: [{ ...QUANTUM, id: 'lab', sources: [{ feed: web.url(LAB, '/feed.xml') }] }] });
  await m.hand.start();
  try {
    const first = await m.hand.run('lab');
    assert.equal(first.mode, 'digest');
    assert.equal(first.stats.new, 1);
    const second = await m.hand.run('lab');
    assert.equal(second.stats.candidates, 1, 'the feed was read again (no validators)');
    assert.equal(second.stats.new, 0);
    assert.equal(second.mode, 'nothing');
    // the same item (guid and text) under a new URL
    setLabFeed('/notes/1-moved.html?utm_source=x');
    const third = await m.hand.run('lab');
    assert.equal(third.stats.candidates, 1);
    assert.equal(third.stats.new, 0);
    assert.equal(third.mode, 'nothing');
    assert.equal(m.findings().length, 1, 'one findings event over three runs');
    assert.equal((await m.hand.documents({ limit: 50 })).documents.length, 1, 'one document stored');
    const listed = await m.hand.reports({ topic: 'lab', limit: 2 });
    assert.deepEqual(
      listed.reports.map((x) => x.id),
      [third.id, second.id],
      'newest first',
    );
    assert.equal(listed.next, second.id);
    const older = await m.hand.reports({ topic: 'lab', limit: 2, before: listed.next! });
    assert.deepEqual(
      older.reports.map((x) => x.id),
      [first.id],
    );
    assert.equal((await m.hand.reports({ limit: 1, before: third.id })).reports[0]!.id, second.id);
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('embeddings through the llm.embed tool rank by meaning; a failing tool falls back to keywords', async () => {
  // a fake embedding: texts about qubits point one way, the rest the other
  const vec = (t: string): number[] => (/qubit|quantum/i.test(t) ? [1, 0] : [0, 1]);
  const m = make(
    { topics: [{ ...QUANTUM, keywords: [], minScore: 0.5, sources: [{ feed: web.url(NEWS, '/feed.xml') }] }] },
    { tools: ['llm.embed'] },
  );
  m.f.tools['llm.embed'] = (input) => ({ vectors: (input.texts as string[]).map(vec), dimensions: 2 });
  await m.hand.start();
  try {
    const r = await m.hand.run('quantum');
    assert.equal(r.mode, 'digest');
    assert.match(r.summary, /by meaning/);
    assert.deepEqual(
      r.sources.map((s) => s.title),
      [ARTICLES.quantum.title],
    );
    const calls = m.f.toolCalls.filter((c) => c.name === 'llm.embed');
    assert.ok(calls.length >= 1);
    for (const c of calls) {
      const texts = (c.input as { texts: string[] }).texts;
      assert.ok(texts.length >= 1 && texts.length <= 32 && texts.every((t) => t.length <= 8000));
    }
  } finally {
    await m.hand.stop();
    m.f.close();
  }
  const broken = make(
    { topics: [{ ...QUANTUM, sources: [{ feed: web.url(NEWS, '/feed.xml') }] }] },
    { tools: ['llm.embed'] },
  );
  broken.f.tools['llm.embed'] = () => {
    throw Object.assign(new Error('no LLM provider on this device can embed texts'), { code: 'TOOL_FAILED' });
  };
  await broken.hand.start();
  try {
    const r = await broken.hand.run('quantum');
    assert.equal(r.mode, 'digest');
    assert.match(r.summary, /by keywords/);
    assert.ok(r.sources.some((s) => s.title === ARTICLES.quantum.title));
  } finally {
    await broken.hand.stop();
    broken.f.close();
  }
});

test('retention: reports past reportsPerTopic and documents past documentDays are deleted', async () => {
  setLabFeed('/notes/1.html');
  let now = Date.parse('2026-11-25T10:00:00Z');
  const m = make(
    {
      topics: [{ ...QUANTUM, id: 'lab', sources: [{ feed: web.url(LAB, '/feed.xml') }] }],
      retention: { reportsPerTopic: 2, documentDays: 1 },
    },
    { now: () => now },
  );
  await m.hand.start();
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      now += 60_000;
      ids.push((await m.hand.run('lab')).id);
    }
    assert.deepEqual(
      (await m.hand.reports({ limit: 10 })).reports.map((r) => r.id),
      [ids[2], ids[1]],
    );
    await assert.rejects(m.hand.report(ids[0]!), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
    assert.equal((await m.hand.stats()).stats.documents, 1);
    now += 2 * 86_400_000;
    const pruned = await m.hand.prune();
    assert.equal(pruned.documents, 1);
    assert.equal((await m.hand.stats()).stats.documents, 0);
    assert.equal((await m.hand.reports({ limit: 10 })).reports.length, 2, 'reports are kept by count, not age');
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('the manifest validates; a config may grant the sites, the model, the tools and a folder', () => {
  const manifest = validateManifest(def.manifest, 'research');
  assert.equal(manifest.id, 'research');
  assert.deepEqual(manifest.capabilities?.bus?.subscribe, ['hands/research/tasks', 'hands/research/replies']);
  const settings = validateSettings(
    manifest,
    {
      topics: [{ id: 'a', questions: ['Q?'], sources: [{ feed: 'https://example.org/f.xml' }], schedule: '0 7 * * *' }],
      scheduler: '',
      useModel: 'never',
      retention: { reportsPerTopic: 10 },
    },
    'hands.research.settings',
  );
  assert.equal(parseSettings(settings).topics.length, 1);
  assert.throws(
    () => validateSettings(manifest, { topcs: [] }, 'hands.research.settings'),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /topcs/.test(e.message),
  );
  const g = effectiveGrants(
    manifest.capabilities,
    {
      network: { hosts: ['*'] },
      llm: { tokensPerHour: 50_000 },
      tools: ['web.search', 'llm.embed'],
      fs: { read: ['/srv/notes'] },
    },
    'talon/dev1',
    'hands.research',
    manifest.optionalCapabilities,
  );
  assert.deepEqual(g.tools.allow, ['web.search', 'llm.embed']);
  assert.ok(g.llm);
  assert.throws(() =>
    effectiveGrants(manifest.capabilities, { tools: ['shell.exec'] }, 'talon/dev1', 'h', manifest.optionalCapabilities),
  );
});

test('two asks while a topic runs share one run', async () => {
  setLabFeed('/notes/1.html');
  const m = make({ topics: [{ ...QUANTUM, id: 'lab', sources: [{ feed: web.url(LAB, '/feed.xml') }] }] });
  await m.hand.start();
  try {
    const before = web.hits(LAB, '/feed.xml');
    const [a, b] = await Promise.all([m.hand.run('lab'), m.hand.run('lab')]);
    assert.equal(a.id, b.id);
    assert.equal(web.hits(LAB, '/feed.xml') - before, 1);
    await assert.rejects(m.hand.run('nope'), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('a feed that is not XML is a counted parse error; the run still reports from the other source', async () => {
  const m = make({
    topics: [
      {
        ...QUANTUM,
        sources: [{ feed: web.url(NEWS, '/not-a-feed.xml') }, { feed: web.url(NEWS, '/feed.xml') }],
      },
    ],
  });
  await m.hand.start();
  try {
    const r = await m.hand.run('quantum');
    assert.equal(r.mode, 'digest');
    const parse = r.errors.filter((e) => e.kind === 'parse');
    assert.equal(parse.length, 1, JSON.stringify(r.errors));
    assert.match(parse[0]!.source, /^feed:news\.example/);
    assert.equal(r.stats.errors, r.errors.length);
    assert.match(r.markdown, /## Errors/);
    assert.equal((await m.hand.stats()).stats.errors.parse, 1);
    assert.equal(m.f.audits.find((a) => a.action === 'run')?.decision, 'ok');
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

/** a job as the Scheduling Hand lists it (the parts the Research Hand reads) */
function jobView(hand: string, topic: string) {
  return {
    id: jobIdOf(hand, topic),
    source: 'api',
    spec: { action: { ask: { hand, task: { op: 'run', topic } } } },
  };
}

test('schedules: a Scheduling Hand job per topic over the task protocol; stale jobs of this Hand removed', async () => {
  const m = make({
    scheduler: 'scheduler',
    topics: [
      { ...QUANTUM, sources: [{ feed: web.url(NEWS, '/feed.xml') }], schedule: '0 7 * * *' },
      { ...QUANTUM, id: 'lab', sources: [{ feed: web.url(LAB, '/feed.xml') }] },
    ],
  });
  const asked: Array<{ op: string; job?: Record<string, unknown>; id?: string }> = [];
  // the fake scheduler answers on the asker's reply topic, as ../../../hands/sdk/tasks.ts serveTasks does
  await m.f.ctx.bus.subscribe('hands/scheduler/tasks', (msg) => {
    const req = msg.json as { id: string; replyTo: string; task: { op: string; job?: Record<string, unknown> } };
    asked.push(req.task);
    const result =
      req.task.op === 'list'
        ? {
            jobs: [
              jobView('research', 'quantum'),
              jobView('research', 'gone'),
              // another Research Hand, `research-2`, whose job ids start with this one's prefix
              jobView('research-2', 'gone'),
              { ...jobView('research', 'in-config'), source: 'config' },
              { id: 'nightly-backup', source: 'api', spec: { action: { hand: { name: 'backup' } } } },
            ],
          }
        : req.task.op === 'put'
          ? { job: req.task.job, created: true }
          : { removed: (req.task as { id?: string }).id };
    m.f.deliver(req.replyTo, { id: req.id, ok: true, result });
  });
  await m.hand.start();
  try {
    await m.hand.scheduled;
    const put = asked.find((t) => t.op === 'put');
    assert.deepEqual(put?.job, {
      id: 'research-research-quantum',
      description: 'Research topic quantum: Quantum error correction',
      trigger: { cron: '0 7 * * *' },
      action: { ask: { hand: 'research', task: { op: 'run', topic: 'quantum' }, timeout: '14m' } },
      policy: { overlap: 'skip', timeout: '15m' },
    });
    assert.deepEqual(
      asked.map((t) => (t.op === 'remove' ? `remove ${t.id}` : t.op)),
      ['put', 'list', 'remove research-research-gone'],
      'only this Hand’s job of a topic no longer scheduled is removed',
    );
    const views = m.hand.topicsView().topics;
    assert.equal(views.find((t) => t.id === 'quantum')?.scheduledBy, 'scheduler');
    assert.equal(views.find((t) => t.id === 'lab')?.schedule, undefined);
    // the job's action reaches the Hand's task inbox: a run answered with its report
    m.f.deliver('hands/research/tasks', {
      id: 'job-1',
      replyTo: 'hands/scheduler/replies',
      task: { op: 'run', topic: 'lab' },
    });
    const reply = await waitFor(() =>
      m.f.published.find((p) => p.topic === 'hands/scheduler/replies' && (p.payload as { id: string }).id === 'job-1'),
    );
    const answer = reply.payload as { ok: boolean; result: { reportId: string; mode: string; new: number } };
    assert.equal(answer.ok, true);
    assert.match(answer.result.reportId, /^lab-\d{13}[a-z0-9]{4}$/);
    assert.equal(typeof answer.result.new, 'number');
    m.f.deliver('hands/research/tasks', { id: 'job-2', replyTo: 'hands/scheduler/replies', task: { op: 'dance' } });
    const refused = await waitFor(() =>
      m.f.published.find((p) => p.topic === 'hands/scheduler/replies' && (p.payload as { id: string }).id === 'job-2'),
    );
    assert.equal((refused.payload as { ok: boolean; error: { code: string } }).error.code, 'BAD_REQUEST');
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('schedules: a scheduler that does not answer leaves the topic on a local timer', async () => {
  const m = make({
    scheduler: 'scheduler',
    topics: [{ ...QUANTUM, sources: [{ feed: web.url(NEWS, '/feed.xml') }], schedule: '*/5 * * * *' }],
  });
  await m.hand.start();
  try {
    await m.hand.scheduled;
    assert.ok(
      m.f.published.some((p) => p.topic === 'hands/scheduler/tasks'),
      'the scheduler was asked',
    );
    assert.equal(m.hand.topicsView().topics[0]!.scheduledBy, 'local');
    assert.ok(m.f.logs.some(([level, msg]) => level === 'warn' && /did not take the schedules/.test(msg)));
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('settings: problems named by field; the Hand starts with the good topics', () => {
  const s = parseSettings({
    topics: [
      { id: 'ok', questions: ['What is new?'], sources: [{ feed: 'https://example.org/feed.xml' }] },
      {
        id: 'half',
        questions: ['Q?'],
        sources: [{ feed: 'ftp://example.org/x' }, { hn: 'risc-v' }],
        schedule: '0 7 * * *',
        notify: 'loud',
      },
      { id: 'Bad Id', questions: ['Q?'], sources: [{ hn: 'x' }] },
      { id: 'nosrc', questions: ['Q?'], sources: [{ feed: 'nope' }] },
      { id: 'cron', questions: ['Q?'], sources: [{ hn: 'x' }], schedule: '0 0 7 * * *' },
      { id: 'noq', questions: [], sources: [{ hn: 'x' }] },
      { id: 'ok', questions: ['Again?'], sources: [{ hn: 'x' }] },
    ],
    politenessMs: -1,
    useModel: 'sometimes',
    retention: { reportsPerTopic: 5 },
  });
  assert.deepEqual(
    s.topics.map((t) => [t.id, t.sources.map((x) => x.kind), t.schedule ?? null, t.notify, t.maxDocs]),
    [
      ['ok', ['feed'], null, 'off', 10],
      ['half', ['hn'], '0 7 * * *', 'off', 10],
    ],
  );
  const text = s.problems.join('\n');
  assert.match(text, /^topics\[1\]\.sources\[0\]\.feed: must be an http\(s\) URL/m);
  assert.match(text, /^topics\[1\]\.notify: must be one of off, low, normal, high, not "loud"/m);
  assert.match(text, /^topics\[2\]\.id: "Bad Id" is not a topic id/m);
  assert.match(text, /^topics\[3\]\.sources: no source is usable/m);
  assert.match(text, /^topics\[4\]\.schedule: "0 0 7 \* \* \*" has 6 field\(s\): write five/m);
  assert.match(text, /^topics\[5\]\.questions: a topic needs 1 to 20 questions/m);
  assert.match(text, /^topics\[6\]\.id: "ok" is used by an earlier topic/m);
  assert.match(text, /^settings\.politenessMs: must be a whole number from 0 to 600000/m);
  assert.match(text, /^settings\.useModel: must be "auto" or "never"/m);
  assert.deepEqual(s.retention, { reportsPerTopic: 5, documentDays: 90 });
  assert.equal(s.scheduler, 'scheduler');
  assert.equal(cronProblem('0 7 * * 1-5'), undefined);
  assert.match(cronProblem('61 7 * * *') ?? '', /not a cron expression croner reads/);
});

test('a Hand with bad settings starts with the rest and logs and audits the problems', async () => {
  const m = make({ topics: [{ id: 'x', questions: ['Q?'], sources: [{ rss: 'https://x' }] }] });
  await m.hand.start();
  try {
    assert.equal(m.hand.topics.size, 0);
    assert.ok(m.f.logs.some(([level, msg]) => level === 'error' && /^topics\[0\]\.sources\[0\]/.test(msg)));
    const a = m.f.audits.find((x) => x.action === 'settings');
    assert.equal(a?.decision, 'error');
  } finally {
    await m.hand.stop();
    m.f.close();
  }
});

test('ids and the findings event of a nothing report', () => {
  const id = newRunId(1_795_000_000_000, () => 0.5);
  assert.match(id, /^1795000000000[a-z0-9]{4}$/);
  assert.deepEqual(parseReportId(`ai-chips-${id}`), { topic: 'ai-chips', runId: id });
  assert.equal(parseReportId('ai-chips-123'), undefined);
  const nothing = {
    id: `t-${id}`,
    topic: 't',
    runId: id,
    mode: 'nothing',
    findings: [],
    sources: [],
    summary: 'Nothing',
    finishedAt: 1,
  } as unknown as Parameters<typeof eventFor>[0];
  assert.equal(eventFor(nothing, 'research'), undefined);
});

async function waitFor<T>(fn: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
