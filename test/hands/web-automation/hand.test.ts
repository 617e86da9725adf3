/**
 * The Web Automation Hand (hands/web-automation/index.ts) with the kernel's browser tools faked in fakeCtx's `f.tools` (real
 * Chromium is the tools' own test business): a page that changes between checks (baseline, pending, then one
 * 'changed' on the bus with its diff, a notification and an audit entry); a noisy page whose ignore patterns keep it
 * quiet; a selector that disappears (broken once, then recovered); a JSON watch read through ctx.fetch; a flow run
 * whose step fails, stored with its step path and screenshot; a definition with an unknown step refused naming the
 * step before any tool call; a goal flow through the agent loop; the schedules put into a fake Scheduling Hand over the
 * task protocol (stale jobs removed) and a task answered; run retention; the settings' problems named by field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeCtx, type FakeCtx } from '../scheduling/fake-ctx.ts';
import def, { WebHand, flowJobId, newRunId, summaryOf, watchJobId } from '../../../hands/web-automation/index.ts';
import { parseSettings } from '../../../hands/web-automation/settings.ts';
import { validateManifest, validateSettings } from '../../../runtime/supervisor/manifest.ts';
import { effectiveGrants } from '../../../runtime/core/grants.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandContext } from '../../../hands/sdk/types.ts';

interface Page {
  status: number;
  /** undefined: the selector matches nothing */
  text: string | undefined;
  value?: string;
}

interface Made {
  f: FakeCtx;
  ctx: HandContext;
  hand: WebHand;
  page: Page;
  /** what was published on web/watch/… */
  events(): Array<{ topic: string; payload: Record<string, unknown>; qos: number | undefined }>;
  notes(): Array<{ topic: string; payload: Record<string, unknown> }>;
}

function make(
  settings: Record<string, unknown>,
  opts: { fetch?: HandContext['fetch']; schedulerTimeoutMs?: number } = {},
): Made {
  const f = fakeCtx({ name: 'web' });
  const page: Page = { status: 200, text: 'Widget 10 EUR' };
  f.tools['browser.read'] = (input) => ({
    url: input.url,
    finalUrl: input.url,
    status: page.status,
    title: 'Shop',
    found: page.text !== undefined,
    text: page.text ?? null,
    ...(input.attribute !== undefined && { value: page.value ?? null }),
    refused: [],
  });
  const ctx: HandContext = {
    ...f.ctx,
    settings: { scheduler: '', ...settings },
    ...(opts.fetch && { fetch: opts.fetch }),
  };
  const hand = new WebHand(ctx, { schedulerTimeoutMs: opts.schedulerTimeoutMs ?? 300 });
  return {
    f,
    ctx,
    hand,
    page,
    events: () =>
      f.published
        .filter((p) => p.topic.startsWith('web/watch/'))
        .map((p) => ({ topic: p.topic, payload: p.payload as Record<string, unknown>, qos: p.opts?.qos })),
    notes: () =>
      f.published
        .filter((p) => p.topic.startsWith('notify/'))
        .map((p) => ({ topic: p.topic, payload: p.payload as Record<string, unknown> })),
  };
}

async function withHand(m: Made, fn: () => Promise<void>): Promise<void> {
  await m.hand.start();
  try {
    await fn();
  } finally {
    await m.hand.stop();
    m.f.close();
  }
}

const SHOP = 'https://shop.example/product/42';

test('a page that changes between checks: baseline, pending, then one changed event with its diff, notified and audited', async () => {
  const m = make({ watches: [{ id: 'widget', url: SHOP, what: { text: '#offer' } }] });
  await withHand(m, async () => {
    const first = await m.hand.check('widget');
    assert.deepEqual(first.run.events, [], 'the first check sets the baseline');
    assert.deepEqual(m.f.toolCalls[0], {
      name: 'browser.read',
      input: { url: SHOP, timeoutMs: 30_000, selector: '#offer', waitFor: '#offer' },
    });
    m.page.text = 'Widget 12 EUR';
    const second = await m.hand.check('widget');
    assert.deepEqual(second.run.events, ['pending'], 'a new value is seen once first');
    assert.deepEqual(m.events(), [], 'a pending change is not published');
    const third = await m.hand.check('widget');
    assert.deepEqual(third.run.events, ['changed']);
    await m.hand.check('widget');
    await m.hand.check('widget');
    const events = m.events();
    assert.equal(events.length, 1, 'one changed event, not one per check');
    const e = events[0]!;
    assert.equal(e.topic, 'web/watch/widget/changed');
    assert.equal(e.qos, 1);
    assert.equal(e.payload.before, 'Widget 10 EUR');
    assert.equal(e.payload.after, 'Widget 12 EUR');
    assert.equal(e.payload.url, SHOP);
    const diff = e.payload.diff as { added: string[]; removed: string[]; unified: string };
    assert.deepEqual([diff.removed, diff.added], [['10'], ['12']]);
    const notes = m.notes();
    assert.equal(notes.length, 1);
    assert.equal(notes[0]!.topic, 'notify/normal');
    assert.match(String(notes[0]!.payload.title), /widget changed/);
    assert.match(String(notes[0]!.payload.text), /shop\.example/);
    const audits = m.f.audits.filter((a) => a.action === 'watch.changed');
    assert.equal(audits.length, 1);
    assert.equal(audits[0]!.subject, 'widget');
    const view = m.hand.watchesView().watches[0]!;
    assert.equal(view.value, 'Widget 12 EUR');
    assert.equal(view.broken, false);
    assert.equal(view.lastChangeAt, third.run.at);
    assert.equal(m.hand.stats().stats.changes, 1);
    assert.equal(m.hand.stats().stats.checks, 5);
    // the state survives a restart: a new Hand on the same store remembers the value
    const stored = await m.ctx.store.get<{ value: string }>('watch/widget');
    assert.equal(stored?.value, 'Widget 12 EUR');
    const detail = await m.hand.watchDetail('widget');
    assert.deepEqual(
      detail.history.map((h) => h.result),
      ['baseline', 'pending', 'changed', 'same', 'same'],
    );
    assert.equal(detail.runs.length, 5);
    const runs = await m.hand.runs({ kind: 'check', limit: 2 });
    assert.equal(runs.runs.length, 2);
    assert.ok(runs.next, 'more runs are paged');
  });
});

test('a noisy page: a clock and a counter that change every check, removed by ignore patterns, never alert', async () => {
  const m = make({
    watches: [
      {
        id: 'news',
        url: 'https://news.example/',
        what: { text: null },
        ignore: ['\\d{1,2}:\\d{2}:\\d{2}', '/visitors: \\d+/i'],
      },
    ],
  });
  await withHand(m, async () => {
    for (let i = 0; i < 6; i++) {
      m.page.text = `Headline: the board ships\nUpdated 10:0${i}:1${i}\nVisitors: ${1000 + i * 37}`;
      const r = await m.hand.check('news');
      assert.deepEqual(r.run.events, [], `check ${i}`);
    }
    assert.deepEqual(m.events(), []);
    assert.deepEqual(m.notes(), []);
    assert.equal(
      (m.f.toolCalls[0]!.input as Record<string, unknown>).selector,
      undefined,
      'no selector: the whole page',
    );
    // the check is not blind: a real change of the headline is seen (pending first)
    m.page.text = 'Headline: the board is late\nUpdated 11:00:00\nVisitors: 5';
    assert.deepEqual((await m.hand.check('news')).run.events, ['pending']);
  });
});

test('a selector that disappears: broken once (notify/high, audited), not again, then recovered', async () => {
  const m = make({ watches: [{ id: 'price', url: SHOP, what: { price: '.price' }, brokenAfter: 2 }] });
  await withHand(m, async () => {
    m.page.text = '€ 1.299,00';
    await m.hand.check('price');
    m.page.text = undefined;
    const r1 = await m.hand.check('price');
    assert.equal(r1.run.ok, false);
    assert.match(r1.run.error ?? '', /selector "\.price" matched nothing/);
    assert.deepEqual(r1.run.events, [], 'one failure is not yet broken');
    const r2 = await m.hand.check('price');
    assert.deepEqual(r2.run.events, ['broken']);
    await m.hand.check('price');
    await m.hand.check('price');
    assert.equal(m.hand.stats().stats.broken, 1);
    assert.equal(m.hand.watchesView().watches[0]!.broken, true);
    assert.equal(m.hand.watchesView().watches[0]!.failures, 4);
    m.page.text = '€ 1.299,00';
    const back = await m.hand.check('price');
    assert.deepEqual(back.run.events, ['recovered']);
    assert.deepEqual(
      m.events().map((e) => e.topic),
      ['web/watch/price/broken', 'web/watch/price/recovered'],
    );
    assert.equal((m.events()[0]!.payload as { reason: string }).reason, 'the selector ".price" matched nothing');
    assert.deepEqual(
      m.notes().map((n) => n.topic),
      ['notify/high'],
      'broken notifies high; recovered notifies nobody',
    );
    const broken = m.f.audits.filter((a) => a.action === 'watch.broken');
    assert.equal(broken.length, 1);
    assert.equal(broken[0]!.decision, 'error');
    assert.equal(m.hand.stats().stats.broken, 0);
    assert.equal(m.hand.stats().stats.checkFailures, 4);
    // a page answering 404 is a failure too, never "no change"
    m.page.status = 404;
    const gone = await m.hand.check('price');
    assert.equal(gone.run.ok, false);
    assert.match(gone.run.error ?? '', /HTTP 404/);
  });
});

test('a JSON watch reads the URL through ctx.fetch (no browser) and compares the path', async () => {
  let body = JSON.stringify({ items: [{ price: 10 }] });
  const fetched: string[] = [];
  const m = make(
    { watches: [{ id: 'api', url: 'https://api.example/items', what: { json: '$.items[0].price' }, confirm: false }] },
    {
      fetch: async (input) => {
        fetched.push(String(input));
        return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
      },
    },
  );
  await withHand(m, async () => {
    await m.hand.check('api');
    body = JSON.stringify({ items: [{ price: 11 }], other: 'noise' });
    const r = await m.hand.check('api');
    assert.deepEqual(r.run.events, ['changed'], 'confirm: false reports at once');
    assert.equal(m.f.toolCalls.length, 0, 'no browser for JSON');
    assert.deepEqual(fetched, ['https://api.example/items', 'https://api.example/items']);
    assert.equal((m.events()[0]!.payload as { after: string }).after, '11');
  });
});

test('an attribute watch reads the attribute (no wait for visibility: its element may be hidden)', async () => {
  const m = make({
    watches: [{ id: 'dl', url: SHOP, what: { attribute: { selector: 'a.download', name: 'href' } }, confirm: false }],
  });
  await withHand(m, async () => {
    m.page.value = '/files/v1.zip';
    await m.hand.check('dl');
    m.page.value = '/files/v2.zip';
    assert.deepEqual((await m.hand.check('dl')).run.events, ['changed']);
    assert.deepEqual(m.f.toolCalls[0]!.input, {
      url: SHOP,
      timeoutMs: 30_000,
      selector: 'a.download',
      attribute: 'href',
    });
    assert.equal(m.events()[0]!.payload.after, '/files/v2.zip');
    assert.equal(m.hand.watchesView().watches[0]!.what, 'attribute a.download@href');
  });
});

const LOGIN = {
  inputs: { user: 'string' },
  steps: [
    { goto: 'https://shop.example/login' },
    { fill: { selector: '#user', value: '{{input.user}}' } },
    { click: 'text=Sign in' },
    { extract: { fields: { status: '.status' } } },
  ],
};

test('a flow run whose step fails: stored with its step path, page URL and screenshot; audited; published', async () => {
  const m = make({ flows: { login: LOGIN } });
  m.f.tools['browser.run_flow'] = () => ({
    ok: false,
    output: {},
    steps: [
      { index: 0, path: 'steps[0]', kind: 'goto', ms: 40, ok: true, url: 'https://shop.example/login' },
      { index: 1, path: 'steps[1]', kind: 'fill', ms: 5, ok: true, url: 'https://shop.example/login' },
      {
        index: 2,
        path: 'steps[2]',
        kind: 'click',
        ms: 15000,
        ok: false,
        error: 'no element matches text=Sign in',
        url: 'https://shop.example/login',
      },
    ],
    failure: {
      path: 'steps[2]',
      kind: 'click',
      message: 'no element matches text=Sign in',
      url: 'https://shop.example/login',
      screenshot: 'browser/login-1795000000000/failure.png',
    },
    screenshots: [{ name: 'failure', file: 'browser/login-1795000000000/failure.png' }],
    downloads: [],
    refused: [],
  });
  await withHand(m, async () => {
    const run = await m.hand.run({ flow: 'login', inputs: { user: 'ada' } });
    assert.equal(run.ok, false);
    assert.equal(run.failure?.path, 'steps[2]');
    assert.match(run.error ?? '', /^steps\[2\] no element matches/);
    assert.deepEqual(run.inputs, ['user'], 'input names are kept, not their values');
    assert.equal(run.steps?.length, 3);
    const call = m.f.toolCalls.find((c) => c.name === 'browser.run_flow')!;
    assert.deepEqual(call.input, { flow: { ...LOGIN, name: 'login' }, inputs: { user: 'ada' } });
    const stored = await m.hand.runDetail(run.id);
    assert.deepEqual(stored.run, run);
    assert.equal(stored.run.failure?.screenshot, 'browser/login-1795000000000/failure.png');
    const listed = await m.hand.runs({ kind: 'flow', limit: 10 });
    assert.deepEqual(listed.runs, [summaryOf(run)]);
    assert.equal((listed.runs[0] as Record<string, unknown>).steps, undefined, 'listings leave the steps out');
    const audit = m.f.audits.find((a) => a.action === 'flow.run')!;
    assert.equal(audit.subject, 'login');
    assert.equal(audit.decision, 'error');
    assert.equal((audit.detail?.failure as { path: string }).path, 'steps[2]');
    const pub = m.f.published.find((p) => p.topic === 'web/flow/login/run')!;
    assert.equal((pub.payload as { ok: boolean }).ok, false);
    assert.equal(m.hand.flowsView().flows[0]!.lastRun?.id, run.id);
    assert.deepEqual(m.hand.stats().stats.runs, { ok: 0, failed: 1, error: 0 });
    // an input that is missing is refused before the tool is called
    const calls = m.f.toolCalls.length;
    await assert.rejects(
      m.hand.run({ flow: 'login' }),
      (e: TalonError) => e.code === 'BAD_REQUEST' && /input "user" is not given/.test(e.message),
    );
    await assert.rejects(m.hand.run({ flow: 'nope' }), (e: TalonError) => e.code === 'NOT_FOUND');
    assert.equal(m.f.toolCalls.length, calls);
    // a tool that cannot run at all (the browser missing) is a recorded run with the error
    m.f.tools['browser.run_flow'] = () => {
      throw new TalonError('TOOL_FAILED', 'Chromium is not installed: apt install chromium');
    };
    const failed = await m.hand.run({ flow: 'login', inputs: { user: 'ada' } });
    assert.equal(failed.ok, false);
    assert.match(failed.error ?? '', /^TOOL_FAILED: Chromium is not installed/);
    assert.deepEqual(m.hand.stats().stats.runs, { ok: 0, failed: 1, error: 1 });
  });
});

test('a definition with an unknown step: BAD_REQUEST naming the step, and no tool is called', async () => {
  const m = make({});
  m.f.tools['browser.run_flow'] = () => assert.fail('the browser must not be asked');
  await withHand(m, async () => {
    await assert.rejects(
      m.hand.run({ definition: { name: 'bad', steps: [{ goto: 'https://x.example/' }, { clik: '#go' }] } }),
      (e: TalonError) =>
        e.code === 'BAD_REQUEST' &&
        /steps\[1\]: unknown step "clik"/.test(e.message) &&
        /did you mean "click"/.test(e.message),
    );
    await assert.rejects(
      m.hand.run({}),
      (e: TalonError) => e.code === 'BAD_REQUEST' && /either flow .* or definition/.test(e.message),
    );
    await assert.rejects(
      m.hand.run({ definition: { name: 'later', steps: [{ goto: 'https://x.example/' }], schedule: '0 * * * *' } }),
      (e: TalonError) => e.code === 'BAD_REQUEST' && /definition\.schedule/.test(e.message),
    );
    assert.equal(m.f.toolCalls.length, 0);
    // a good definition runs
    m.f.tools['browser.run_flow'] = () => ({
      ok: true,
      output: { t: 'x' },
      steps: [],
      screenshots: [],
      downloads: [],
      refused: [],
    });
    const run = await m.hand.run({ definition: { name: 'ok', steps: [{ goto: 'https://x.example/' }] } });
    assert.equal(run.ok, true);
    assert.deepEqual(run.output, { t: 'x' });
    assert.equal(m.f.audits.find((a) => a.action === 'flow.run')?.decision, 'ok');
  });
});

test('a goal flow runs the agent loop with the browser tools, its step, token and time budgets and the output schema', async () => {
  const output = { type: 'object', required: ['hours'], properties: { hours: { type: 'string' } } };
  const m = make({
    flows: {
      hours: {
        goal: 'Find the opening hours on the shop site',
        maxSteps: 6,
        maxTokens: 3000,
        timeoutMs: 90_000,
        output,
      },
    },
  });
  m.f.agent = () => ({
    runId: 'a1',
    answer: { hours: '9-18' },
    text: '{"hours":"9-18"}',
    steps: 4,
    usage: { inputTokens: 1, outputTokens: 1 },
  });
  await withHand(m, async () => {
    const run = await m.hand.run({ flow: 'hours' });
    assert.deepEqual(m.f.agentRuns, [
      {
        goal: 'Find the opening hours on the shop site',
        tools: ['browser.*'],
        maxSteps: 6,
        maxTokens: 3000,
        deadlineMs: 90_000,
        jsonSchema: output,
      },
    ]);
    assert.equal(run.ok, true);
    assert.equal(run.mode, 'goal');
    assert.deepEqual(run.output, { hours: '9-18' });
    assert.equal(run.agentSteps, 4);
    await assert.rejects(m.hand.run({ flow: 'hours', inputs: { x: 1 } }), (e: TalonError) => e.code === 'BAD_REQUEST');
    m.f.agent = () => {
      throw new TalonError('AGENT_BUDGET', 'the step budget ran out');
    };
    const failed = await m.hand.run({ flow: 'hours' });
    assert.equal(failed.ok, false);
    assert.match(failed.error ?? '', /AGENT_BUDGET/);
    const v = m.hand.flowsView().flows[0]!;
    assert.equal(v.mode, 'goal');
    assert.equal(v.goal, 'Find the opening hours on the shop site');
  });
});

function jobView(hand: string, jobId: string) {
  return { id: jobId, source: 'api', spec: { action: { ask: { hand, task: { op: 'check', watch: 'x' } } } } };
}

async function waitFor<T>(fn: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('schedules: Scheduling Hand jobs over the task protocol (watch and flow); stale jobs removed; a task answered', async () => {
  const m = make({
    scheduler: 'scheduler',
    watches: [
      { id: 'widget', url: SHOP, what: { text: '#offer' }, schedule: '*/30 * * * *' },
      { id: 'quiet', url: SHOP, what: { text: '#offer' } },
    ],
    flows: { login: { ...LOGIN, schedule: '0 6 * * *' } },
  });
  const asked: Array<{ op: string; job?: Record<string, unknown>; id?: string }> = [];
  await m.f.ctx.bus.subscribe('hands/scheduler/tasks', (msg) => {
    const req = msg.json as { id: string; replyTo: string; task: { op: string; job?: Record<string, unknown> } };
    asked.push(req.task);
    const result =
      req.task.op === 'list'
        ? {
            jobs: [
              jobView('web', watchJobId('web', 'widget')),
              jobView('web', watchJobId('web', 'gone')),
              // another Web Hand, `web-2`, whose job ids start with this one's prefix
              jobView('web-2', 'web-web-2-gone'),
              { ...jobView('web', watchJobId('web', 'in-config')), source: 'config' },
            ],
          }
        : req.task.op === 'put'
          ? { job: req.task.job, created: true }
          : { removed: (req.task as { id?: string }).id };
    m.f.deliver(req.replyTo, { id: req.id, ok: true, result });
  });
  await withHand(m, async () => {
    await m.hand.scheduled;
    const puts = asked.filter((t) => t.op === 'put').map((t) => t.job);
    assert.deepEqual(puts, [
      {
        id: 'web-web-widget',
        description: `Check the page watch widget: ${SHOP}`,
        trigger: { cron: '*/30 * * * *' },
        action: { ask: { hand: 'web', task: { op: 'check', watch: 'widget' }, timeout: '2m' } },
        policy: { overlap: 'skip', timeout: '3m' },
      },
      {
        id: flowJobId('web', 'login'),
        description: 'Run the browser flow login',
        trigger: { cron: '0 6 * * *' },
        action: { ask: { hand: 'web', task: { op: 'run', flow: 'login' }, timeout: '3m' } },
        policy: { overlap: 'skip', timeout: '4m' },
      },
    ]);
    assert.equal(flowJobId('web', 'login'), 'web-web-flow.login');
    assert.deepEqual(
      asked.map((t) => (t.op === 'remove' ? `remove ${t.id}` : t.op)),
      ['put', 'put', 'list', 'remove web-web-gone'],
      "only this Hand's job no longer scheduled is removed",
    );
    const views = m.hand.watchesView().watches;
    assert.equal(views.find((w) => w.id === 'widget')?.scheduledBy, 'scheduler');
    assert.equal(views.find((w) => w.id === 'quiet')?.schedule, undefined);
    assert.equal(m.hand.flowsView().flows[0]!.scheduledBy, 'scheduler');
    // the job's action reaches the Hand's task inbox: a check answered with its run
    m.f.deliver('hands/web/tasks', {
      id: 'job-1',
      replyTo: 'hands/scheduler/replies',
      task: { op: 'check', watch: 'widget' },
    });
    const reply = await waitFor(() =>
      m.f.published.find((p) => p.topic === 'hands/scheduler/replies' && (p.payload as { id: string }).id === 'job-1'),
    );
    const answer = reply.payload as { ok: boolean; result: { runId: string; ok: boolean; events: string[] } };
    assert.equal(answer.ok, true);
    assert.match(answer.result.runId, /^\d{13}[a-z0-9]{4}$/);
    assert.deepEqual(answer.result.events, []);
    m.f.deliver('hands/web/tasks', {
      id: 'job-2',
      replyTo: 'hands/scheduler/replies',
      task: { op: 'dance' },
    });
    const refused = await waitFor(() =>
      m.f.published.find((p) => p.topic === 'hands/scheduler/replies' && (p.payload as { id: string }).id === 'job-2'),
    );
    assert.equal((refused.payload as { ok: boolean; error: { code: string } }).error.code, 'BAD_REQUEST');
  });
});

test('schedules: a scheduler that does not answer leaves the watch on a local timer', async () => {
  const m = make({
    scheduler: 'scheduler',
    watches: [{ id: 'widget', url: SHOP, what: { text: '#offer' }, schedule: '*/30 * * * *' }],
  });
  await withHand(m, async () => {
    await m.hand.scheduled;
    assert.ok(m.f.published.some((p) => p.topic === 'hands/scheduler/tasks'));
    assert.equal(m.hand.watchesView().watches[0]!.scheduledBy, 'local');
    assert.ok(m.f.logs.some(([level, msg]) => level === 'warn' && /did not take the schedules/.test(msg)));
  });
});

test('retention: only the newest screenshotsKeep run records are kept', async () => {
  const m = make({ screenshotsKeep: 3, watches: [{ id: 'widget', url: SHOP, what: { text: '#offer' } }] });
  await withHand(m, async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await m.hand.check('widget')).run.id);
      await new Promise((r) => setTimeout(r, 2));
    }
    const kept = (await m.ctx.store.list({ prefix: 'run/' })).map(([k]) => k.slice(4));
    assert.equal(kept.length, 3);
    assert.deepEqual(kept.sort(), ids.slice(2).sort());
    await assert.rejects(m.hand.runDetail(ids[0]!), (e: TalonError) => e.code === 'NOT_FOUND');
  });
});

test('settings: problems named by field; the good watches and flows are kept', () => {
  const s = parseSettings({
    watches: [
      { id: 'ok', url: SHOP, what: { text: '#a' } },
      { id: 'bad-path', url: SHOP, what: { json: 'items' } },
      { id: 'ok', url: SHOP, what: { text: '#b' } },
      { id: 'bad-cron', url: SHOP, what: { text: '#a' }, schedule: 'every hour' },
    ],
    flows: {
      login: LOGIN,
      typo: { steps: [{ goto: 'https://x.example/' }, { clik: '#go' }] },
      other: { name: 'different', steps: [{ goto: 'https://x.example/' }] },
      find: { goal: 'Find it', maxSteps: 100 },
      both: { goal: 'Find it', steps: [] },
      costly: { goal: 'Find it', maxTokens: 50 },
      slow: { goal: 'Find it', timeoutMs: 7_200_000 },
    },
    scheduler: 'Not A Name',
    screenshotsKeep: 0,
    colour: 'blue',
  });
  assert.deepEqual(
    s.watches.map((w) => w.id),
    ['ok'],
  );
  assert.deepEqual(
    s.flows.map((f) => f.name),
    ['login'],
  );
  const has = (re: RegExp) =>
    assert.ok(
      s.problems.some((p) => re.test(p)),
      `${re}\n${s.problems.join('\n')}`,
    );
  has(/^watches\[1\]\.what\.json: "items" must start with \$/);
  has(/^watches\[2\]\.id: "ok" is used by an earlier watch/);
  has(/^watches\[3\]\.schedule: /);
  has(/^flows\.typo: steps\[1\]: unknown step "clik"/);
  has(/^flows\.other\.name: "different" differs from the key "other"/);
  has(/^flows\.find\.maxSteps: must be a whole number of model turns from 1 to 64/);
  has(/^flows\.both\.steps: not a field of a goal flow/);
  has(
    /^flows\.costly\.maxTokens: must be a whole number of tokens \(in and out, the whole run\) from 100 to 10000000, not 50/,
  );
  has(/^flows\.slow\.timeoutMs: must be the whole run's time in ms from 1000 to 3600000 \(an hour\), not 7200000/);
  has(/^settings\.scheduler: must be a Hand instance name/);
  has(/^settings\.screenshotsKeep: must be a whole number from 1 to 10000, not 0; 50 is used/);
  has(/^settings\.colour: is not a known field/);
  assert.equal(s.scheduler, 'scheduler');
  assert.equal(s.screenshotsKeep, 50);
  assert.deepEqual(parseSettings(undefined).problems, []);
});

test('a Hand with bad settings starts with the rest, logs and audits the problems', async () => {
  const m = make({
    watches: [
      { id: 'x', url: 'ftp://x', what: { text: '#a' } },
      { id: 'ok', url: SHOP, what: { text: '#a' } },
    ],
  });
  await withHand(m, async () => {
    assert.ok(
      m.f.logs.some(([level, msg]) => level === 'error' && /^watches\[0\]\.url: must be an http\(s\) URL/.test(msg)),
    );
    const a = m.f.audits.find((x) => x.action === 'settings');
    assert.equal(a?.decision, 'error');
    assert.equal(m.hand.watchesView().watches.length, 1);
    await assert.rejects(
      m.hand.check('x'),
      (e: TalonError) => e.code === 'NOT_FOUND' && /the watches are: ok/.test(e.message),
    );
  });
});

test('the manifest validates (browser.* tools, globs); a config may grant the sites, secrets, a model, more tools', () => {
  const manifest = validateManifest(def.manifest, 'web');
  assert.equal(manifest.id, 'web-automation');
  assert.deepEqual(manifest.capabilities?.bus?.subscribe, ['hands/web/tasks', 'hands/web/replies']);
  assert.deepEqual(manifest.capabilities?.tools, ['browser.*']);
  const settings = validateSettings(
    manifest,
    {
      watches: [{ id: 'a', url: SHOP, what: { text: '#a' } }],
      flows: { login: LOGIN },
      scheduler: '',
      screenshotsKeep: 10,
    },
    'hands.web.settings',
  );
  const parsed = parseSettings(settings);
  assert.deepEqual([parsed.watches.length, parsed.flows.length, parsed.problems], [1, 1, []]);
  assert.throws(
    () => validateSettings(manifest, { watchs: [] }, 'hands.web.settings'),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /watchs/.test(e.message),
  );
  const g = effectiveGrants(
    manifest.capabilities,
    {
      network: { hosts: ['shop.example'] },
      secrets: ['SHOP_PW'],
      llm: { tokensPerHour: 50_000 },
      tools: ['browser.*', 'web.read'],
    },
    'talon/dev1',
    'hands.web',
    manifest.optionalCapabilities,
  );
  assert.ok(g.tools.allow.includes('browser.*'));
  assert.ok(g.llm);
  assert.deepEqual(g.secrets, ['SHOP_PW']);
  assert.throws(() =>
    effectiveGrants(manifest.capabilities, { fs: { write: ['/'] } }, 'talon/dev1', 'h', manifest.optionalCapabilities),
  );
});

test('run ids sort by time; summaries leave out steps and output', () => {
  assert.match(
    newRunId(1_795_000_000_000, () => 0.5),
    /^1795000000000i{4}$/,
  );
  assert.ok(newRunId(1_000, () => 0) < newRunId(2_000, () => 0));
  const s = summaryOf({
    id: '1795000000000aaaa',
    kind: 'flow',
    name: 'x',
    at: 1,
    ok: true,
    ms: 1,
    cause: 'api',
    steps: [],
    output: { a: 1 },
    inputs: ['a'],
  });
  assert.deepEqual(s, { id: '1795000000000aaaa', kind: 'flow', name: 'x', at: 1, ok: true, ms: 1, cause: 'api' });
});
