/**
 * The agent loop over a scripted fake model speaking the OpenAI wire format (test/helpers/llm-fakes.ts),
 * through the real OpenAI provider and the real router (which checks the model's tool calls
 * against the offered schemas), with a small real Tools implementation (ajv-validated) and the
 * runs stored in a real LevelDB.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRunner, DEFAULT_SYSTEM, feedBack, newRunId, type AgentChat } from '../../../runtime/agent/loop.ts';
import { RunStore } from '../../../runtime/agent/runs.ts';
import { systemClock } from '../../../runtime/core/clock.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import { OpenAiProvider } from '../../../runtime/llm/providers/openai.ts';
import { LlmRouter } from '../../../runtime/llm/router.ts';
import type { AuditEvent } from '../../../runtime/audit/types.ts';
import { Store } from '../../../runtime/store/store.ts';
import { Approvals } from '../../../runtime/tools/approvals.ts';
import { ToolRegistry } from '../../../runtime/tools/registry.ts';
import type {
  AgentStep,
  Approval,
  ToolCallOptions,
  ToolCaller,
  ToolDefinition,
  ToolInfo,
  ToolResult,
  Tools,
} from '../../../runtime/tools/types.ts';
import { startFakeLlm, type FakeLlm, type Reply } from '../../helpers/llm-fakes.ts';

// ---- the real tool registry (and its approval queue), its calls recorded ----

class RecordingTools implements Tools {
  readonly calls: Array<{ name: string; input: unknown; caller: ToolCaller; runId?: string; goal?: string }> = [];
  readonly registry: ToolRegistry;
  constructor(registry: ToolRegistry) {
    this.registry = registry;
  }
  list(caller?: ToolCaller): ToolInfo[] {
    return this.registry.list(caller);
  }
  info(name: string, caller?: ToolCaller): ToolInfo | undefined {
    return this.registry.info(name, caller);
  }
  call(caller: ToolCaller, name: string, input: unknown, opts: ToolCallOptions = {}): Promise<ToolResult> {
    this.calls.push({ name, input, caller, ...(opts.runId ? { runId: opts.runId } : {}), goal: opts.goal });
    return this.registry.call(caller, name, input, opts);
  }
}

function makeTools(approvals: Approvals, audit: AuditEvent[]): RecordingTools {
  const registry = new ToolRegistry({
    audit: {
      record: async (e) => {
        audit.push(e);
      },
    },
    approvals,
    config: () => ({ auditArgs: false, approvalTimeoutMs: 10_000 }),
  });
  const defs: ToolDefinition<any, any>[] = [
    {
      name: 'math.add',
      description: 'adds two numbers; returns { sum }',
      inputSchema: {
        type: 'object',
        properties: { a: { type: 'number' }, b: { type: 'number' } },
        required: ['a', 'b'],
        additionalProperties: false,
      },
      annotations: { readOnlyHint: true },
      capability: 'none',
      run: async (i: { a: number; b: number }) => ({ sum: i.a + i.b }),
    },
    {
      name: 'fail.always',
      description: 'always fails',
      inputSchema: { type: 'object', properties: {} },
      annotations: { readOnlyHint: true },
      capability: 'none',
      run: async () => {
        throw new TalonError('TOOL_FAILED', 'the disk is on fire');
      },
    },
    {
      name: 'text.repeat',
      description: 'repeats a letter n times',
      inputSchema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
      annotations: { readOnlyHint: true },
      capability: 'none',
      run: async (i: { n: number }) => ({ text: 'x'.repeat(i.n) }),
    },
    {
      name: 'valve.open',
      description: 'opens the irrigation valve (waits for a person)',
      inputSchema: { type: 'object', properties: { minutes: { type: 'integer' } }, required: ['minutes'] },
      annotations: { readOnlyHint: false, destructiveHint: true },
      capability: 'actuators',
      run: async () => ({ open: true }),
    },
    {
      name: 'secret.read',
      description: 'not granted to the test Hand',
      inputSchema: { type: 'object' },
      annotations: { readOnlyHint: true },
      capability: 'secrets',
      run: async () => 'the secret',
    },
  ];
  for (const d of defs) registry.register(d);
  return new RecordingTools(registry);
}
const grants = (allow: string[]): Capabilities =>
  ({ tools: { allow, approve: [] }, llm: { tokensPerHour: 1_000_000 } }) as unknown as Capabilities;

const caller = (allow = ['math.*', 'fail.always', 'text.repeat']): ToolCaller => ({
  actor: 'hand:tester',
  hand: 'tester',
  admin: false,
  grants: grants(allow),
  folder: '/tmp/nowhere',
});

async function rejects(p: Promise<unknown>, code: string): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, `expected a TalonError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, it resolved`);
}

const transcript = (e: TalonError): { runId: string; transcript: AgentStep[] } =>
  e.details as { runId: string; transcript: AgentStep[] };

const call = (id: string, name: string, args: unknown): NonNullable<Reply['toolCalls']>[number] => ({
  id,
  name,
  arguments: args as Record<string, unknown>,
});

// ---- the fixture: fake server, provider, router, store ----

describe('AgentRunner over the OpenAI wire format', () => {
  let fake: FakeLlm;
  let provider: OpenAiProvider;
  let router: LlmRouter;
  let dir: string;
  let store: Store;
  let runs: RunStore;
  let tools: RecordingTools;
  let approvals: Approvals;
  const audit: AuditEvent[] = [];

  /** through the router, as the integrator binds it (the Hand's budget, purpose `agent`) */
  const viaRouter: AgentChat = (c, req, opts) =>
    router.chat(req, { hand: c.hand, purpose: opts.purpose, tokensPerHour: c.grants.llm?.tokensPerHour });
  /** straight to the provider (no router check of the tool calls) */
  const direct: AgentChat = (_c, req) => provider.chat(req);

  const runner = (chat: AgentChat = viaRouter): AgentRunner => new AgentRunner({ chat, tools, runs });
  const bodies = (): any[] => fake.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body);

  before(async () => {
    fake = await startFakeLlm('openai');
    provider = new OpenAiProvider({ name: 'fake', baseUrl: fake.url, model: 'fake-model' });
    router = new LlmRouter(
      {
        providers: [provider],
        chains: { default: ['fake'] },
        retry: { maxAttempts: 1, baseMs: 1, maxMs: 1, jitter: 0 },
        timeouts: { firstTokenMs: 30_000, stallMs: 30_000, chatMs: 30_000 },
      },
      {
        audit: {
          record: async (e) => {
            audit.push(e);
          },
        },
        clock: {
          now: () => Date.now(),
          setTimeout: (fn, ms) => setTimeout(fn, ms),
          clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
          setInterval: (fn, ms) => setInterval(fn, ms),
          clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
        },
        random: () => 0.5,
      },
    );
    dir = mkdtempSync(join(tmpdir(), 'talon-agent-'));
    store = await Store.open(dir);
    runs = new RunStore(store);
    await runs.start();
    approvals = new Approvals({
      store,
      audit: {
        record: async (e) => {
          audit.push(e);
        },
      },
      timeoutMs: () => 10_000,
    });
    await approvals.start();
  });

  beforeEach(() => {
    fake.requests.length = 0;
    tools = makeTools(approvals, audit);
  });

  after(async () => {
    await fake.close();
    await approvals.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a run's cost is the provider's prices over each turn's tokens (the router's costOf); none without a price", async () => {
    const priced = new LlmRouter(
      {
        providers: [provider],
        chains: { default: ['fake'] },
        retry: { maxAttempts: 1, baseMs: 1, maxMs: 1, jitter: 0 },
        timeouts: { firstTokenMs: 5000, stallMs: 5000 },
        prices: { fake: { inputPerMTok: 2, outputPerMTok: 10 } },
      },
      { audit: { record: async () => {} }, clock: systemClock, random: Math.random },
    );
    const withCost = (r: LlmRouter): AgentRunner =>
      new AgentRunner({
        chat: (c, req, opts) => r.chat(req, { hand: c.hand, purpose: opts.purpose }),
        tools,
        runs,
        cost: (p, u) => r.costOf(p, u),
      });
    fake.reply(
      { toolCalls: [call('c1', 'math.add', { a: 1, b: 1 })], usage: { input: 1000, output: 100 } },
      { text: '2', usage: { input: 2000, output: 50 } },
    );
    const a = await withCost(priced).run(caller(), { goal: 'add', tools: ['math.add'] });
    // (3000 × 2 + 150 × 10) / 1e6 USD
    assert.ok(Math.abs((await runs.get(a.runId)).cost! - 0.0075) < 1e-12);
    fake.reply({ text: 'nothing to do', usage: { input: 10, output: 2 } });
    const b = await withCost(router).run(caller(), { goal: 'nothing', tools: ['math.add'] });
    assert.equal((await runs.get(b.runId)).cost, undefined);
  });

  test('an answer schema over 64 KiB of JSON is refused before anything runs or is stored', async () => {
    const big = { type: 'object', description: 'x'.repeat(70_000) };
    const before = (await runs.list({ limit: 200 })).length;
    await assert.rejects(
      runner().run(caller(), { goal: 'g', tools: ['math.add'], jsonSchema: big }),
      (e: TalonError) => e.code === 'BAD_REQUEST' && /jsonSchema is larger than 65536/.test(e.message),
    );
    assert.equal((await runs.list({ limit: 200 })).length, before);
  });

  test('two steps: a tool call, its result fed back, then the answer; the run is stored', async () => {
    fake.reply(
      { toolCalls: [call('c1', 'math.add', { a: 2, b: 3 })], usage: { input: 40, output: 10 } },
      { text: 'The sum is 5.', usage: { input: 60, output: 6 } },
    );
    const r = await runner().run(caller(), { goal: 'add 2 and 3', tools: ['math.*', 'fail.always'] });
    assert.equal(r.answer, 'The sum is 5.');
    assert.equal(r.text, 'The sum is 5.');
    assert.equal(r.steps, 2);
    assert.deepEqual(r.usage, { inputTokens: 100, outputTokens: 16 });

    const [first, second] = bodies();
    assert.deepEqual(
      first.tools.map((t: any) => t.function.name),
      ['math.add', 'fail.always'],
      'in the order the patterns name them',
    );
    assert.deepEqual(first.tools[0].function.parameters, tools.info('math.add')!.inputSchema);
    assert.equal(first.messages[0].role, 'system');
    assert.equal(first.messages[0].content, DEFAULT_SYSTEM);
    assert.match(first.messages[0].content, /ERROR CODE: message/);
    assert.deepEqual(first.messages[1], { role: 'user', content: 'add 2 and 3' });
    assert.equal(first.response_format, undefined);
    // the result goes back as a tool message answering the call
    const toolMsg = second.messages.at(-1);
    assert.deepEqual(toolMsg, { role: 'tool', tool_call_id: 'c1', content: '{"sum":5}' });
    assert.equal(second.messages.at(-2).tool_calls[0].function.name, 'math.add');

    assert.equal(tools.calls.length, 1);
    assert.equal(tools.calls[0]!.runId, r.runId);
    assert.equal(tools.calls[0]!.goal, 'add 2 and 3');
    assert.equal(tools.calls[0]!.caller.actor, 'hand:tester');
    const entry = audit.findLast((e) => e.action === 'tool.call');
    assert.equal(entry?.subject, 'math.add', 'the registry audited the call');
    assert.equal(entry?.actor, 'hand:tester');

    const stored = await runs.get(r.runId);
    assert.equal(stored.state, 'done');
    assert.equal(stored.hand, 'tester');
    assert.equal(stored.answer, 'The sum is 5.');
    assert.equal(stored.steps.length, 2);
    assert.deepEqual(stored.steps[0]!.calls[0]!.output, { sum: 5 });
    assert.equal(stored.steps[0]!.calls[0]!.tool, 'math.add');
    assert.deepEqual(stored.steps[0]!.usage, { inputTokens: 40, outputTokens: 10 });
    assert.equal(stored.steps[0]!.provider, 'fake');
    assert.equal(stored.steps[1]!.text, 'The sum is 5.');
    assert.ok(stored.steps.every((s) => s.overheadMs >= 0 && s.modelMs >= 0));
    assert.ok(typeof stored.endedAt === 'number' && stored.endedAt >= stored.startedAt);
    const listed = await runs.list({ hand: 'tester', limit: 1 });
    assert.equal(listed[0]!.id, r.runId);
    assert.equal(listed[0]!.stepCount, 2);
    assert.equal((listed[0] as { steps?: unknown }).steps, undefined);
  });

  test('tool errors are fed back as ERROR CODE: message and the model corrects itself', async () => {
    fake.reply(
      { toolCalls: [call('c1', 'fail.always', {})] },
      { toolCalls: [call('c2', 'math.add', { a: 'two', b: 3 })] },
      { toolCalls: [call('c3', 'math.add', { a: 2, b: 3 })] },
      { text: '5' },
    );
    const r = await runner().run(caller(), { goal: 'add', tools: ['math.add', 'fail.always'] });
    assert.equal(r.answer, '5');
    assert.equal(r.steps, 4);
    const b = bodies();
    assert.deepEqual(b[1].messages.at(-1), {
      role: 'tool',
      tool_call_id: 'c1',
      content: 'ERROR TOOL_FAILED: the disk is on fire',
    });
    // arguments failing the schema: the router refuses them; the model reads TOOL_BAD_INPUT
    const bad = b[2].messages.at(-1);
    assert.equal(bad.role, 'tool');
    assert.equal(bad.tool_call_id, 'c2');
    assert.match(bad.content, /^ERROR TOOL_BAD_INPUT: .*math\.add.*a/);
    assert.deepEqual(b[3].messages.at(-1).content, '{"sum":5}');
    const stored = await runs.get(r.runId);
    assert.equal(stored.state, 'done');
    assert.deepEqual(
      stored.steps.map((s) => s.calls.map((c) => c.error?.code ?? 'ok')),
      [['TOOL_FAILED'], ['TOOL_BAD_INPUT'], ['ok'], []],
    );
  });

  test('a destructive tool waits for a person; a deny is fed back and the run goes on', async () => {
    fake.reply({ toolCalls: [call('c1', 'valve.open', { minutes: 5 })] }, { text: 'I could not open it.' });
    const seen: Approval[] = [];
    const off = approvals.onChange((a) => {
      seen.push(a);
      if (a.state === 'pending') void approvals.decide(a.id, 'deny', 'user:ann', 'not today');
    });
    try {
      const r = await runner().run(caller(['math.*', 'valve.open']), {
        goal: 'water the beds',
        tools: ['valve.open', 'math.add'],
      });
      assert.equal(r.answer, 'I could not open it.');
      const asked = seen.find((a) => a.state === 'pending');
      assert.ok(asked, 'a person was asked');
      assert.equal(asked.tool, 'valve.open');
      assert.equal(asked.runId, r.runId, 'the approval names the run');
      assert.equal(asked.goal, 'water the beds');
      assert.match(bodies()[1].messages.at(-1).content, /^ERROR APPROVAL_DENIED: /);
      const stored = await runs.get(r.runId);
      assert.equal(stored.steps[0]!.calls[0]!.error?.code, 'APPROVAL_DENIED');
    } finally {
      off();
    }
  });

  test('an unknown tool is repaired once (straight to the provider, the loop checks)', async () => {
    fake.reply({ toolCalls: [call('c1', 'rm.everything', { path: '/' })] }, { text: 'done without it' });
    const r = await runner(direct).run(caller(), { goal: 'clean up', tools: ['math.add'] });
    assert.equal(r.answer, 'done without it');
    const msg = bodies()[1].messages.at(-1);
    assert.equal(msg.role, 'tool');
    assert.match(msg.content, /^ERROR AGENT_BAD_CALL: tool "rm\.everything" is not offered.*math\.add/);
    assert.equal(tools.calls.length, 0, 'nothing ran');
  });

  test('a second unusable call ends the run with AGENT_BAD_CALL and the transcript', async () => {
    fake.reply(
      { toolCalls: [call('c1', 'secret.read', {})] },
      // arguments that are not an object: the provider refuses to read them
      { toolCalls: [call('c2', 'math.add', [1, 2])] },
    );
    const e = await rejects(runner().run(caller(), { goal: 'x', tools: ['math.add'] }), 'AGENT_BAD_CALL');
    const d = transcript(e);
    assert.equal(d.transcript.length, 2);
    assert.equal(d.transcript[0]!.calls[0]!.tool, 'secret.read');
    assert.equal(d.transcript[0]!.calls[0]!.error?.code, 'AGENT_BAD_CALL');
    // the repair message the model read before its second try
    const repair = bodies()[1].messages.at(-1);
    assert.equal(repair.role, 'user');
    assert.match(repair.content, /ERROR AGENT_BAD_CALL: .*secret\.read.*Call only the offered tools \(math\.add\)/);
    assert.equal(tools.calls.length, 0, 'secret.read never ran');
    const stored = await runs.get(d.runId);
    assert.equal(stored.state, 'failed');
    assert.equal(stored.error?.code, 'AGENT_BAD_CALL');
    assert.equal(stored.steps.length, 2);
  });

  test('the same call with the same canonical input three times: AGENT_LOOP', async () => {
    fake.reply(
      { toolCalls: [call('c1', 'math.add', { a: 1, b: 2 })] },
      { toolCalls: [call('c2', 'math.add', { b: 2, a: 1 })] },
      { toolCalls: [call('c3', 'math.add', { a: 1, b: 2 })] },
    );
    const e = await rejects(runner().run(caller(), { goal: 'loop', tools: ['math.add'] }), 'AGENT_LOOP');
    assert.match(e.message, /math\.add .*3 times/);
    const d = transcript(e);
    assert.equal(d.transcript.length, 3);
    assert.equal(d.transcript[2]!.calls[0]!.error?.code, 'AGENT_LOOP');
    assert.equal(tools.calls.length, 2, 'the third call did not run');
    assert.equal((await runs.get(d.runId)).error?.code, 'AGENT_LOOP');
  });

  test('maxSteps and maxTokens end the run with AGENT_BUDGET and the partial transcript', async () => {
    fake.reply(
      { toolCalls: [call('c1', 'math.add', { a: 1, b: 1 })] },
      { toolCalls: [call('c2', 'math.add', { a: 1, b: 2 })] },
    );
    const e = await rejects(runner().run(caller(), { goal: 'g', tools: ['math.add'], maxSteps: 2 }), 'AGENT_BUDGET');
    assert.match(e.message, /2 step/);
    const d = transcript(e);
    assert.equal(d.transcript.length, 2);
    assert.deepEqual(
      d.transcript.map((s) => s.calls[0]!.output),
      [{ sum: 2 }, { sum: 3 }],
    );
    assert.equal(bodies().length, 2, 'no third model call');
    fake.requests.length = 0;
    fake.reply({ toolCalls: [call('c1', 'math.add', { a: 1, b: 1 })], usage: { input: 20, output: 20 } });
    const t = await rejects(runner().run(caller(), { goal: 'g', tools: ['math.add'], maxTokens: 30 }), 'AGENT_BUDGET');
    assert.match(t.message, /40 of its 30 tokens/);
    assert.equal(bodies().length, 1);
    assert.equal(bodies()[0].max_tokens, 30, 'the turn may use at most what is left');
  });

  test('a stalled model: AGENT_DEADLINE, the in-flight call aborted; a stopping caller: HAND_STOPPED', async () => {
    fake.reply({ fault: { kind: 'noHeaders' } });
    const signals: AbortSignal[] = [];
    const watching: AgentChat = (c, req, opts) => {
      if (req.signal) signals.push(req.signal);
      return viaRouter(c, req, opts);
    };
    const e = await rejects(
      runner(watching).run(caller(), { goal: 'g', tools: ['math.add'], deadlineMs: 300 }),
      'AGENT_DEADLINE',
    );
    assert.equal(signals.length, 1);
    assert.ok(signals[0]!.aborted, 'the in-flight model call was aborted');
    assert.equal((signals[0]!.reason as TalonError).code, 'AGENT_DEADLINE');
    assert.match(e.message, /deadline of 300 ms/);
    const d = transcript(e);
    assert.equal(d.transcript.length, 1, 'the step in flight is in the transcript');
    assert.equal((await runs.get(d.runId)).state, 'failed');

    fake.reply({ fault: { kind: 'noHeaders' } });
    const ac = new AbortController();
    const p = runner().run(caller(), { goal: 'g', tools: ['math.add'] }, ac.signal);
    while (fake.requests.length < 2) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    const s = await rejects(p, 'HAND_STOPPED');
    const stored = await runs.get(transcript(s).runId);
    assert.equal(stored.state, 'failed');
    assert.equal(stored.error?.code, 'HAND_STOPPED');
  });

  test('jsonSchema: the answer is parsed and checked; a bad one gets one repair turn without tools', async () => {
    const schema = {
      type: 'object',
      properties: { sum: { type: 'number' }, unit: { enum: ['none'] } },
      required: ['sum'],
      additionalProperties: false,
    };
    fake.reply(
      { toolCalls: [call('c1', 'math.add', { a: 2, b: 3 })] },
      { text: 'The sum is 5.' },
      { text: '{"sum": 5}' },
    );
    const r = await runner().run(caller(), { goal: 'add', tools: ['math.add'], jsonSchema: schema });
    assert.deepEqual(r.answer, { sum: 5 });
    assert.equal(r.steps, 3);
    const b = bodies();
    assert.equal(b[0].response_format, undefined, 'tool turns carry no schema (llama.cpp: one grammar per answer)');
    assert.equal(b[2].tools, undefined, 'the repair turn offers no tools');
    assert.deepEqual(b[2].response_format.json_schema.schema, schema);
    assert.match(b[2].messages.at(-1).content, /JSON only.*is not JSON/);
    assert.deepEqual((await runs.get(r.runId)).answer, { sum: 5 });

    // a fenced valid answer needs no repair
    fake.reply({ text: '```json\n{"sum": 1}\n```' });
    const f = await runner().run(caller(), { goal: 'one', tools: [], jsonSchema: schema });
    assert.deepEqual(f.answer, { sum: 1 });
    assert.equal(f.steps, 1);

    // wrong twice: AGENT_BAD_CALL naming what failed
    fake.reply({ text: '{"sum": "five"}' }, { text: '{"total": 5}' });
    const e = await rejects(
      runner().run(caller(), { goal: 'add', tools: ['math.add'], jsonSchema: schema }),
      'AGENT_BAD_CALL',
    );
    assert.match(e.message, /does not match the schema: \/total is not a known field|\/sum is required/);
    assert.equal(transcript(e).transcript.length, 2);
  });

  test('tool results are cut to maxResultChars with a note', async () => {
    fake.reply({ toolCalls: [call('c1', 'text.repeat', { n: 5000 })] }, { text: 'long' });
    const r = await runner().run(caller(), { goal: 'g', tools: ['text.*'], maxResultChars: 100 });
    const fed = bodies()[1].messages.at(-1).content as string;
    assert.ok(fed.startsWith('{"text":"xxx'));
    assert.match(fed, /\[cut: 100 of 5011 characters shown\]$/);
    const stored = await runs.get(r.runId);
    assert.equal(stored.steps[0]!.calls[0]!.truncated, true);
    assert.equal((stored.steps[0]!.calls[0]!.output as string).length, 101);
    assert.deepEqual(feedBack({ a: 1 }, 100), { text: '{"a":1}', value: { a: 1 }, cut: false });
  });

  test('bad options are BAD_REQUEST naming the field, and nothing is stored', async () => {
    const before = (await runs.list({ hand: 'tester', limit: 500 })).length;
    const r = runner();
    let e = await rejects(r.run(caller(), { goal: 'g', tools: [], maxSteps: 65 }), 'BAD_REQUEST');
    assert.match(e.message, /\/maxSteps/);
    e = await rejects(r.run(caller(), { goal: '', tools: [] }), 'BAD_REQUEST');
    assert.match(e.message, /\/goal/);
    e = await rejects(r.run(caller(), { goal: 'g', tools: [], deadlineMs: 3_600_001 }), 'BAD_REQUEST');
    assert.match(e.message, /\/deadlineMs/);
    e = await rejects(r.run(caller(), { goal: 'g', tools: [], colour: 'red' } as never), 'BAD_REQUEST');
    assert.match(e.message, /\/colour is not a known field/);
    // a tool the caller may not call is never offered
    e = await rejects(r.run(caller(), { goal: 'g', tools: ['secret.read'] }), 'BAD_REQUEST');
    assert.match(e.message, /secret\.read.*matches no tool Hand "tester" may call/);
    e = await rejects(r.run(caller(), { goal: 'g', tools: [], jsonSchema: { type: 'nonsense' } }), 'BAD_REQUEST');
    assert.match(e.message, /jsonSchema/);
    assert.equal((await runs.list({ hand: 'tester', limit: 500 })).length, before);
    assert.equal(bodies().length, 0);
  });

  test('agent.run as a kernel service builds the Hand caller', async () => {
    fake.reply({ toolCalls: [call('c1', 'math.add', { a: 1, b: 1 })] }, { text: '2' });
    const svc = runner().services((h) => `/data/hands/${h}/files`)['agent.run']!;
    const r = (await svc({ name: 'greenhouse', grants: grants(['math.add']) }, [
      { goal: 'one plus one', tools: ['math.add'] },
    ])) as { answer: string; runId: string };
    assert.equal(r.answer, '2');
    assert.deepEqual(tools.calls[0]!.caller, {
      actor: 'hand:greenhouse',
      hand: 'greenhouse',
      admin: false,
      grants: grants(['math.add']),
      folder: '/data/hands/greenhouse/files',
    });
    assert.equal((await runs.get(r.runId)).hand, 'greenhouse');
  });
});

describe('RunStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'talon-runs-'));
  });
  after(() => {});

  const step = (index: number): AgentStep => ({
    index,
    text: `step ${index}`,
    calls: [{ id: `c${index}`, tool: 'math.add', input: { a: index, b: 1 }, output: { sum: index + 1 }, ms: 1 }],
    usage: { inputTokens: 10, outputTokens: 2 },
    modelMs: 5,
    overheadMs: 1,
  });

  test('a restart marks a run left running as failed, keeping its steps', async () => {
    try {
      let store = await Store.open(dir);
      let runs = new RunStore(store);
      assert.equal(await runs.start(), 0);
      const run = await runs.create({ id: newRunId(), hand: 'h1', goal: 'g', startedAt: Date.now() });
      run.steps.push(step(0));
      run.usage = { inputTokens: 10, outputTokens: 2 };
      await runs.update(run);
      assert.equal(runs.stats().running, 1);
      assert.equal(runs.stats().steps, 1);
      await store.close(); // "the kernel stopped" mid-run

      store = await Store.open(dir);
      runs = new RunStore(store);
      assert.equal((await runs.get(run.id)).state, 'running');
      assert.equal(await runs.start(), 1);
      const after = await runs.get(run.id);
      assert.equal(after.state, 'failed');
      assert.deepEqual(after.error, { code: 'HAND_STOPPED', message: 'the kernel stopped during the run' });
      assert.equal(after.steps.length, 1);
      assert.equal(after.steps[0]!.text, 'step 0');
      assert.equal((await runs.list({ hand: 'h1' }))[0]!.state, 'failed');
      assert.equal(await runs.start(), 0, 'only once');
      await rejects(runs.get('nope'), 'RUN_NOT_FOUND');
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('lists newest first per Hand and overall, pages with before, keeps the last N per Hand', async () => {
    try {
      const store = await Store.open(dir);
      const runs = new RunStore(store, { keepPerHand: 3 });
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const hand = i === 2 ? 'other' : 'h1';
        const r = await runs.create({ id: newRunId(1_700_000_000_000 + i), hand, goal: `g${i}`, startedAt: i });
        r.steps.push(step(0));
        r.state = i === 3 ? 'failed' : 'done';
        await runs.finish(r);
        ids.push(r.id);
      }
      const h1 = await runs.list({ hand: 'h1' });
      assert.deepEqual(
        h1.map((r) => r.goal),
        ['g4', 'g3', 'g1'],
        'newest first, g0 pruned (3 kept)',
      );
      await rejects(runs.get(ids[0]!), 'RUN_NOT_FOUND');
      assert.deepEqual(
        (await runs.list({ hand: 'h1', limit: 2, before: ids[4] })).map((r) => r.goal),
        ['g3', 'g1'],
      );
      assert.deepEqual(
        (await runs.list()).map((r) => r.goal),
        ['g4', 'g3', 'g2', 'g1'],
      );
      assert.deepEqual(
        (await runs.list({ limit: 1, before: ids[3] })).map((r) => r.goal),
        ['g2'],
      );
      const s = runs.stats();
      assert.equal(s.started, 5);
      assert.equal(s.done, 4);
      assert.equal(s.failed, 1);
      assert.equal(s.running, 0);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
