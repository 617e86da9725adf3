/**
 * The agent loop once over real llama.cpp (node-llama-cpp's CPU binary) with random-weight GGUF
 * models from the project's generator: a model steered to call tools (its calls are
 * grammar-constrained, so they parse and fit the tool's schema), and a plain one whose
 * gibberish answer needs the jsonSchema turn (a grammar, without tools: llama.cpp takes one
 * grammar per answer). Gibberish text, real mechanics: the run answers or ends with a typed
 * error, never a crash.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AgentRunner, type AgentChat } from '../../../runtime/agent/loop.ts';
import { RunStore } from '../../../runtime/agent/runs.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import { LocalProvider } from '../../../runtime/llm/providers/local.ts';
import { Store } from '../../../runtime/store/store.ts';
import type { AgentRun, ToolCaller, ToolInfo, ToolResult, Tools } from '../../../runtime/tools/types.ts';
import { modelDir, TOOL_CALLER_STEER, writeTestModel, type ModelDir } from '../../fixtures/llm/gguf.ts';

const SCHEMA = {
  type: 'object',
  properties: { level: { enum: ['low', 'high'] }, notify: { type: 'boolean' } },
  required: ['level', 'notify'],
  additionalProperties: false,
};

/** one tool, its input checked with ajv as the registry does */
class AlertTools implements Tools {
  readonly #check = createAjv('check').compile(SCHEMA);
  readonly inputs: unknown[] = [];
  #info: ToolInfo = {
    name: 'alert.set',
    description: 'raise an alert',
    inputSchema: SCHEMA,
    annotations: { readOnlyHint: false, destructiveHint: false },
    capability: 'none',
    timeoutMs: 1000,
    maxOutputBytes: 1024,
    source: 'builtin',
  };
  list(): ToolInfo[] {
    return [this.#info];
  }
  info(name: string): ToolInfo | undefined {
    return name === 'alert.set' ? this.#info : undefined;
  }
  async call(_c: ToolCaller, name: string, input: unknown): Promise<ToolResult> {
    if (name !== 'alert.set') throw new TalonError('TOOL_NOT_FOUND', `there is no tool "${name}"`);
    if (!this.#check(input)) throw new TalonError('TOOL_BAD_INPUT', 'alert.set: the input fails its schema');
    this.inputs.push(input);
    return { output: { raised: true }, truncated: false, ms: 0 };
  }
}

const caller: ToolCaller = {
  actor: 'hand:local',
  hand: 'local',
  admin: false,
  grants: { tools: { allow: ['*'], approve: [] } } as unknown as Capabilities,
  folder: '/tmp/nowhere',
};

describe('AgentRunner over the local llama.cpp provider (random-weight GGUF)', () => {
  let d: ModelDir;
  let p: LocalProvider;
  let store: Store;
  let runs: RunStore;

  before(async () => {
    d = modelDir();
    mkdirSync(join(d.dir, 'models'));
    writeTestModel(join(d.dir, 'models', 'tiny.gguf'));
    writeTestModel(join(d.dir, 'models', 'caller.gguf'), { steer: TOOL_CALLER_STEER, seed: 3 });
    p = new LocalProvider({
      name: 'local',
      dataDir: d.dir,
      modelPath: 'models/caller.gguf',
      threads: 1,
      contextSize: 2048,
      gpu: false,
      maxTokens: 64,
      seed: 42,
    });
    store = await Store.open(d.dir);
    runs = new RunStore(store);
    await runs.start();
  });
  after(async () => {
    await p.close();
    await store.close();
    d.cleanup();
  });

  test('grammar-constrained tool calls parse and fit the schema; the run ends typed', async () => {
    const tools = new AlertTools();
    const chat: AgentChat = (_c, req) =>
      p.chat({ ...req, maxTokens: Math.min(req.maxTokens ?? 64, 64), temperature: 0 });
    const runner = new AgentRunner({ chat, tools, runs });
    let run: AgentRun;
    try {
      const r = await runner.run(caller, { goal: 'is it hot?', tools: ['alert.*'], maxSteps: 2, maxTokens: 4000 });
      run = await runs.get(r.runId);
      assert.equal(run.state, 'done');
    } catch (err) {
      assert.ok(err instanceof TalonError, `a typed error, not a crash: ${String(err)}`);
      assert.ok(['AGENT_BUDGET', 'AGENT_LOOP', 'AGENT_BAD_CALL'].includes(err.code), `${err.code}: ${err.message}`);
      run = await runs.get((err.details as { runId: string }).runId);
      assert.equal(run.state, 'failed');
      assert.equal(run.error?.code, err.code);
    }
    const calls = run.steps.flatMap((s) => s.calls);
    assert.ok(calls.length >= 1, 'the steered model called the tool');
    const check = createAjv('check').compile(SCHEMA);
    for (const c of calls) {
      assert.equal(c.tool, 'alert.set');
      assert.ok(check(c.input), `the call's input fits the schema: ${JSON.stringify(c.input)}`);
      assert.equal(c.error, undefined, `the registry took it: ${c.error?.message}`);
      assert.deepEqual(c.output, { raised: true });
    }
    assert.equal(tools.inputs.length, calls.length);
    assert.ok(run.steps.every((s) => s.provider === 'local' && s.model === 'caller'));
    assert.ok(run.usage.inputTokens > 0);
  });

  test('jsonSchema: the answer turn runs without tools and a grammar makes it valid', async () => {
    const schema = { type: 'object', properties: { hot: { type: 'boolean' } }, required: ['hot'] };
    const chat: AgentChat = (_c, req) =>
      p.chat({ ...req, model: 'tiny', maxTokens: Math.min(req.maxTokens ?? 48, 48), temperature: 0 });
    const runner = new AgentRunner({ chat, tools: new AlertTools(), runs });
    // greedy decoding: the gibberish first answer is not JSON, the grammar turn is
    const r = await runner.run(caller, { goal: 'is it hot?', tools: [], jsonSchema: schema, maxTokens: 4000 });
    assert.equal(typeof (r.answer as { hot: unknown }).hot, 'boolean');
    const run = await runs.get(r.runId);
    assert.equal(run.steps.length, 2, 'one answer turn, one schema turn');
    assert.equal(run.state, 'done');
    assert.deepEqual(run.answer, r.answer);
  });
});
