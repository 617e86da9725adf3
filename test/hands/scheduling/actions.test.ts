/**
 * The Scheduling Hand's actions (hands/scheduling/actions.ts) against a fake HandContext: each action kind does its
 * call (recorded), placeholders are filled, an ask goes over the task protocol (answered, refused, unanswered, a
 * Hand that cannot answer), results are bounded, a cancelled run stops waiting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandActions, MAX_RESULT_BYTES, boundResult, fillPlaceholders } from '../../../hands/scheduling/actions.ts';
import { ClockWatch } from '../../../hands/scheduling/clock.ts';
import type { Action, RunRecord } from '../../../hands/scheduling/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { fakeCtx, type FakeCtx } from './fake-ctx.ts';

const run = (over: Partial<RunRecord> = {}): RunRecord => ({
  runId: 'job1@000000000001000',
  jobId: 'job1',
  scheduledAt: 1000,
  cause: 'schedule',
  attempt: 1,
  status: 'running',
  ...over,
});

const toolsGrant = (allow: string[]) => ({ tools: { allow, approve: [] } });

async function go(f: FakeCtx, action: Action, r = run(), signal = new AbortController().signal): Promise<unknown> {
  return new HandActions(f.ctx).run(action, { run: r, signal });
}

async function rejects(p: Promise<unknown>, code: string, re?: RegExp): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, `a TalonError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** a Hand serving its inbox: answers with `answer(task)` (or an error), counts tasks */
function serve(f: FakeCtx, hand: string, answer: (task: unknown) => { ok: boolean; v: unknown }): { tasks: unknown[] } {
  const seen: unknown[] = [];
  void f.ctx.bus.subscribe(`hands/${hand}/tasks`, (m) => {
    const req = m.json as { id: string; replyTo: string; task: unknown };
    seen.push(req);
    const a = answer(req.task);
    f.deliver(
      req.replyTo,
      a.ok ? { id: req.id, ok: true, result: a.v } : { id: req.id, ok: false, error: a.v as { code: string } },
    );
  });
  return { tasks: seen };
}

test('hand: start and stop call their tools; restart stops, then starts', async () => {
  const f = fakeCtx();
  try {
    f.tools['hands.start'] = (i) => ({ name: i.name, state: 'running' });
    f.tools['hands.stop'] = (i) => ({ name: i.name, state: 'stopped' });
    assert.deepEqual(await go(f, { hand: { name: 'research', op: 'start' } }), { name: 'research', state: 'running' });
    assert.deepEqual(await go(f, { hand: { name: 'research', op: 'stop' } }), { name: 'research', state: 'stopped' });
    f.toolCalls.length = 0;
    await go(f, { hand: { name: 'research', op: 'restart' } });
    assert.deepEqual(
      f.toolCalls.map((c) => [c.name, c.input]),
      [
        ['hands.stop', { name: 'research' }],
        ['hands.start', { name: 'research' }],
      ],
    );
    // with the hands.restart grant: the one tool
    const g = fakeCtx({ grants: toolsGrant(['hands.restart']) });
    g.tools['hands.restart'] = (i) => ({ name: i.name, state: 'running', restarts: 1 });
    assert.deepEqual(await go(g, { hand: { name: 'research', op: 'restart' } }), {
      name: 'research',
      state: 'running',
      restarts: 1,
    });
    assert.deepEqual(
      g.toolCalls.map((c) => c.name),
      ['hands.restart'],
    );
    g.close();
    // a refusal keeps its code
    f.tools['hands.start'] = () => {
      throw new TalonError('CAPABILITY_DENIED', 'not granted');
    };
    await rejects(go(f, { hand: { name: 'x', op: 'start' } }), 'CAPABILITY_DENIED');
  } finally {
    f.close();
  }
});

test('publish: placeholders filled in string leaves, QoS 1 by default, retain as asked', async () => {
  const f = fakeCtx();
  try {
    const r = run({
      cause: 'event',
      event: { topic: 'alerts/warning', payload: { severity: 'warning', s: { id: 7 } } },
    });
    const out = await go(
      f,
      {
        publish: {
          topic: 'reports/out',
          payload: {
            at: '{{scheduledAt}}',
            text: 'run {{ runId }} of {{jobId}} at {{scheduledAt}}',
            ev: '{{event}}',
            sev: '{{event.severity}}',
            deep: ['{{event.s.id}}', 'id={{event.s.id}}', '{{event.missing}}', 'x{{event.missing}}y'],
            n: 5,
            keep: '{{notAPlaceholder}}',
          },
          retain: true,
        },
      } as Action, // qos left out: the default (1) applies
      r,
    );
    assert.equal(f.published.length, 1);
    const p = f.published[0]!;
    assert.equal(p.topic, 'reports/out');
    assert.deepEqual(p.opts, { qos: 1, retain: true });
    assert.deepEqual(p.payload, {
      at: 1000,
      text: 'run job1@000000000001000 of job1 at 1000',
      ev: { severity: 'warning', s: { id: 7 } },
      sev: 'warning',
      deep: [7, 'id=7', null, 'xy'],
      n: 5,
      keep: '{{notAPlaceholder}}',
    });
    assert.equal((out as { topic: string }).topic, 'reports/out');
    // the spec is not changed by filling
    const spec = { a: '{{runId}}' };
    fillPlaceholders(spec, r);
    assert.deepEqual(spec, { a: '{{runId}}' });
  } finally {
    f.close();
  }
});

test('ask: the task goes to the Hand inbox with the run id as correlation id; the answer is the result', async () => {
  const f = fakeCtx();
  try {
    const research = serve(f, 'research', (task) => ({ ok: true, v: { echoed: task } }));
    const out = await go(f, {
      ask: { hand: 'research', task: { topic: 'daily', at: '{{scheduledAt}}' }, timeout: '5s' },
    });
    assert.deepEqual(out, { echoed: { topic: 'daily', at: 1000 } });
    const req = research.tasks[0] as { id: string; replyTo: string; deadline: number };
    assert.equal(req.id, 'job1@000000000001000');
    assert.equal(req.replyTo, 'hands/scheduler/replies');
    assert.equal(typeof req.deadline, 'number');
  } finally {
    f.close();
  }
});

test("ask: the Hand's refusal keeps its code; no answer in time is HAND_TIMEOUT", async () => {
  const f = fakeCtx();
  try {
    serve(f, 'picky', () => ({ ok: false, v: { code: 'BAD_REQUEST', message: 'topic: unknown' } }));
    await rejects(go(f, { ask: { hand: 'picky', task: {} } }), 'BAD_REQUEST', /topic: unknown/);
    // nobody serves "silent"
    await rejects(go(f, { ask: { hand: 'silent', task: {}, timeout: 30 } }), 'HAND_TIMEOUT', /silent/);
  } finally {
    f.close();
  }
});

test('ask: a Hand in backoff fails at once naming its state; an on-demand Hand is asked anyway', async () => {
  const f = fakeCtx({ grants: toolsGrant(['hands.status']) });
  try {
    const states: Record<string, { state: string; mode?: string }> = {
      crashing: { state: 'backoff' },
      lazy: { state: 'stopped', mode: 'on-demand' },
    };
    f.tools['hands.status'] = (i) => {
      const s = states[i.name as string];
      if (!s) throw new TalonError('HAND_NOT_FOUND', `no Hand ${String(i.name)}`);
      return { name: i.name, since: 0, ...s };
    };
    const crashing = serve(f, 'crashing', () => ({ ok: true, v: 1 }));
    await rejects(go(f, { ask: { hand: 'crashing', task: {} } }), 'HAND_NOT_RUNNING', /"crashing" is backoff/);
    assert.equal(crashing.tasks.length, 0, 'no task was sent');
    serve(f, 'lazy', () => ({ ok: true, v: 'woke up' }));
    assert.equal(await go(f, { ask: { hand: 'lazy', task: {} } }), 'woke up');
    await rejects(go(f, { ask: { hand: 'ghost', task: {} } }), 'HAND_NOT_FOUND', /action\.ask\.hand/);
  } finally {
    f.close();
  }
});

test('ask: without the hands.status grant the status is not looked at', async () => {
  const f = fakeCtx();
  try {
    f.tools['hands.status'] = () => ({ state: 'failed' });
    serve(f, 'research', () => ({ ok: true, v: 'fine' }));
    assert.equal(await go(f, { ask: { hand: 'research', task: {} } }), 'fine');
    assert.equal(f.toolCalls.length, 0);
  } finally {
    f.close();
  }
});

test('tool: the input is filled and the output is the result', async () => {
  const f = fakeCtx();
  try {
    f.tools['web.fetch'] = (i) => ({ got: i });
    const out = await go(f, { tool: { name: 'web.fetch', input: { url: 'https://x/{{jobId}}', n: 1 } } });
    assert.deepEqual(out, { got: { url: 'https://x/job1', n: 1 } });
  } finally {
    f.close();
  }
});

test('agent: goal, tools and budget reach ctx.agent.run; the answer is the result', async () => {
  const f = fakeCtx();
  try {
    const out = await go(
      f,
      {
        agent: { goal: 'summarise {{event.title}}', tools: ['web.*'], maxSteps: 4, maxTokens: 2000, deadline: '2m' },
      },
      run({ event: { topic: 't', payload: { title: 'news' } } }),
    );
    assert.deepEqual(f.agentRuns, [
      { goal: 'summarise news', tools: ['web.*'], maxSteps: 4, maxTokens: 2000, deadlineMs: 120_000 },
    ]);
    assert.deepEqual(out, { runId: 'r1', answer: 'ok', steps: 1, usage: { inputTokens: 1, outputTokens: 1 } });
  } finally {
    f.close();
  }
});

test('results are bounded to 16 KiB of JSON', async () => {
  const f = fakeCtx();
  try {
    f.tools.big = () => ({ text: 'x'.repeat(MAX_RESULT_BYTES) });
    f.tools.small = () => ({ text: 'x'.repeat(100) });
    const big = (await go(f, { tool: { name: 'big' } })) as { truncated: boolean; bytes: number; preview: string };
    assert.equal(big.truncated, true);
    assert.ok(big.bytes > MAX_RESULT_BYTES);
    assert.ok(JSON.stringify(big).length <= MAX_RESULT_BYTES);
    assert.ok(big.preview.startsWith('{"text":"xxx'));
    assert.deepEqual(await go(f, { tool: { name: 'small' } }), { text: 'x'.repeat(100) });
    assert.deepEqual(boundResult(undefined), null);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal((boundResult(cyclic) as { truncated: boolean }).truncated, true);
  } finally {
    f.close();
  }
});

test('a cancelled run stops waiting: a hung tool, an unanswered ask', async () => {
  const f = fakeCtx();
  try {
    f.tools.hang = () => new Promise(() => undefined);
    const ac = new AbortController();
    const p = go(f, { tool: { name: 'hang' } }, run(), ac.signal);
    setImmediate(() => ac.abort());
    await rejects(p, 'HAND_STOPPED');
    const ac2 = new AbortController();
    const actions = new HandActions(f.ctx);
    const q = actions.run({ ask: { hand: 'nobody', task: {}, timeout: '1h' } }, { run: run(), signal: ac2.signal });
    setImmediate(() => ac2.abort());
    await rejects(q, 'HAND_STOPPED');
    assert.equal(actions.pendingTasks, 0);
  } finally {
    f.close();
  }
});

test('clock trust: a wall clock before the build is never trusted; the kernel is asked at most every pollMs', async () => {
  let wall = Date.parse('1970-01-02T00:00:00Z');
  let mono = 0;
  const answers: unknown[] = [];
  let asked = 0;
  const w = new ClockWatch({
    status: async () => {
      asked++;
      const a = answers.shift();
      if (a instanceof Error) throw a;
      return a;
    },
    wall: () => wall,
    mono: () => mono,
    buildTime: Date.parse('2026-12-01T00:00:00Z'),
    pollMs: 10_000,
  });
  answers.push({ synced: true, source: 'systemd-timesyncd' });
  await w.refresh();
  assert.equal(w.synced(), false, 'booted in 1970: not trusted whatever the kernel says');
  wall = Date.parse('2026-12-02T10:00:00Z');
  assert.equal(w.synced(), true);
  assert.equal(w.source, 'systemd-timesyncd');
  // the kernel now says unsynchronised: seen at the next poll, not before
  answers.push({ synced: false, source: 'systemd-timesyncd' });
  mono = 5_000;
  assert.equal(w.synced(), true);
  assert.equal(asked, 1);
  mono = 10_001;
  w.synced(); // starts the poll
  await new Promise((r) => setImmediate(r));
  assert.equal(asked, 2);
  assert.equal(w.synced(), false);
  // a kernel without the service: the build-time check alone, and no more asking
  answers.push(Object.assign(new Error('no such service'), { code: 'NOT_FOUND' }));
  mono = 30_000;
  w.synced();
  await new Promise((r) => setImmediate(r));
  mono = 90_000;
  assert.equal(w.synced(), false, 'the last known answer stands');
  assert.equal(asked, 3);
  const fresh = new ClockWatch({
    status: async () => {
      throw Object.assign(new Error('no'), { code: 'NOT_FOUND' });
    },
    wall: () => Date.parse('2027-01-01T00:00:00Z'),
  });
  await fresh.refresh();
  assert.equal(fresh.synced(), true, 'later than the build and not known unsynchronised');
});
