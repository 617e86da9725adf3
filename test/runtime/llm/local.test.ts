/**
 * LocalProvider on real llama.cpp (node-llama-cpp's prebuilt CPU binary) with random-weight
 * GGUF models written by the project's generator: gibberish text, real mechanics.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { LocalProvider, resolveThreads, toHistory } from '../../../runtime/llm/providers/local.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { ChatChunk, ChatRequest } from '../../../runtime/llm/types.ts';
import { inspectGguf, modelDir, TOOL_CALLER_STEER, writeTestModel, type ModelDir } from '../../fixtures/llm/gguf.ts';

const user = (content: string): ChatRequest['messages'] => [{ role: 'user', content }];

async function collect(it: AsyncIterable<ChatChunk>): Promise<ChatChunk[]> {
  const out: ChatChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

function isBadRequest(pathPart?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof TalonError, `expected a TalonError, got ${String(err)}`);
    assert.equal(err.code, 'LLM_BAD_REQUEST', err.message);
    if (pathPart) assert.ok(err.message.includes(pathPart), `message names ${pathPart}: ${err.message}`);
    return true;
  };
}

describe('GGUF generator', () => {
  test('writes a deterministic GGUF v3 file whose header checks out', () => {
    const d = modelDir();
    try {
      const a = d.write('a.gguf', { seed: 7 });
      const b = d.write('b.gguf', { seed: 7 });
      assert.deepEqual(readFileSync(a.path), readFileSync(b.path));
      const buf = readFileSync(a.path);
      assert.equal(buf.toString('latin1', 0, 4), 'GGUF');
      assert.equal(buf.readUInt32LE(4), 3);
      const s = inspectGguf(a.path);
      assert.equal(s.architecture, 'llama');
      assert.equal(s.tensorCount, 3 + 2 * 9);
      assert.equal(s.expectedBytes, s.fileBytes);
      assert.equal(a.vocab.tokens.length, 320);
      assert.ok(a.vocab.tokens.includes('<0x00>') && a.vocab.tokens.includes('<0xFF>'));
    } finally {
      d.cleanup();
    }
  });

  test('writes Q8_0 blocks (32 int8 + an f16 scale)', () => {
    const d = modelDir();
    try {
      const m = d.write('q.gguf', { type: 'Q8_0' });
      const s = inspectGguf(m.path);
      assert.equal(s.expectedBytes, s.fileBytes);
      assert.ok(m.bytes < d.write('f.gguf').bytes / 3);
    } finally {
      d.cleanup();
    }
  });
});

describe('LocalProvider (node-llama-cpp on a random GGUF)', () => {
  let d: ModelDir;
  let p: LocalProvider;

  before(() => {
    d = modelDir();
    mkdirSync(join(d.dir, 'models'));
    writeTestModel(join(d.dir, 'models', 'tiny.gguf'));
    writeTestModel(join(d.dir, 'models', 'caller.gguf'), { steer: TOOL_CALLER_STEER, seed: 3 });
    p = new LocalProvider({
      name: 'local',
      dataDir: d.dir,
      modelPath: 'models/tiny.gguf',
      threads: 1,
      contextSize: 1024,
      gpu: false,
      maxTokens: 24,
      seed: 42,
    });
  });
  after(async () => {
    await p.close();
    d.cleanup();
  });

  test('identity and the model list', async () => {
    assert.equal(p.kind, 'llama.cpp');
    assert.equal(p.local, true);
    assert.deepEqual(await p.models(), ['caller', 'tiny']);
  });

  test('tokenise and detokenise any bytes through the byte-fallback vocabulary', async () => {
    const text = 'hello world {"a": 1}\n\ttemperature 21.5 °C é € 🦅';
    const { tokens, detokenize } = await p.tokenize(text);
    assert.ok(tokens.length > 5);
    assert.ok(tokens.length < Buffer.byteLength(text), 'word pieces make it shorter than one token per byte');
    assert.equal(detokenize(tokens), text);
  });

  test('streams text chunks, then exactly one done with the usage', async () => {
    const chunks = await collect(
      p.stream({ messages: [{ role: 'system', content: 'be brief' }, ...user('hello')], maxTokens: 12 }),
    );
    const done = chunks.filter((c) => c.type === 'done');
    assert.equal(done.length, 1);
    assert.equal(chunks.at(-1)?.type, 'done');
    const texts = chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []));
    assert.ok(texts.length > 0, 'text chunks arrive');
    assert.ok(
      texts.every((t) => t.length > 0),
      'no empty chunks',
    );
    const r = done[0]!.type === 'done' ? done[0]!.result : undefined;
    assert.ok(r);
    assert.equal(r.text, texts.join(''), 'chunks add up to the text: none duplicated or lost');
    assert.equal(r.provider, 'local');
    assert.equal(r.model, 'tiny');
    assert.ok(r.usage.inputTokens > 5, `input tokens ${r.usage.inputTokens}`);
    assert.ok(r.usage.outputTokens > 0 && r.usage.outputTokens <= 12, `output tokens ${r.usage.outputTokens}`);
    assert.ok(['stop', 'length'].includes(r.finishReason));
  });

  test('chat() returns the same shape; maxTokens bounds the answer', async () => {
    const r = await p.chat({ messages: user('count to three'), maxTokens: 5 });
    assert.ok(r.usage.outputTokens <= 5);
    assert.equal(r.finishReason, 'length');
    assert.deepEqual(r.toolCalls, []);
  });

  test('jsonSchema constrains the answer: gibberish inside, valid shape', async () => {
    const schema = {
      type: 'object',
      properties: {
        ok: { type: 'boolean' },
        level: { enum: ['low', 'high', 'critical'] },
        reading: {
          type: 'object',
          properties: { unit: { enum: ['C', 'F'] }, valid: { type: 'boolean' } },
          required: ['unit', 'valid'],
        },
        tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 },
      },
      required: ['ok', 'level', 'reading', 'tags'],
    };
    const r = await p.chat({ messages: user('report as JSON'), jsonSchema: schema, maxTokens: 200, temperature: 0 });
    assert.equal(r.finishReason, 'stop', r.text);
    const v = JSON.parse(r.text);
    const ajv = new Ajv();
    assert.ok(ajv.validate(schema, v), JSON.stringify(ajv.errors));
  });

  test('tools: a function call comes back as a tool_call chunk and toolCalls (steered model)', async () => {
    const tools = [
      {
        name: 'set_alert',
        description: 'raise an alert',
        parameters: {
          type: 'object',
          properties: { level: { enum: ['low', 'high'] }, notify: { type: 'boolean' } },
          required: ['level', 'notify'],
        },
      },
    ];
    const chunks = await collect(
      p.stream({ model: 'caller', messages: user('is it hot?'), tools, maxTokens: 60, temperature: 0 }),
    );
    const calls = chunks.flatMap((c) => (c.type === 'tool_call' ? [c.call] : []));
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.name, 'set_alert');
    assert.ok(new Ajv().validate(tools[0]!.parameters, calls[0]!.arguments), JSON.stringify(calls[0]!.arguments));
    assert.match(calls[0]!.id, /^call_/);
    const done = chunks.at(-1);
    assert.ok(done?.type === 'done');
    assert.equal(done.result.finishReason, 'tool_calls');
    assert.deepEqual(done.result.toolCalls, calls);
    // the call's own tokens are counted (node-llama-cpp reports none for them): a budget sees the turn
    assert.ok(done.result.usage.outputTokens >= 3, `outputTokens ${done.result.usage.outputTokens}`);

    // the answer to the call goes back in the history; the model continues after it
    const r = await p.chat({
      model: 'caller',
      tools,
      maxTokens: 60,
      temperature: 0,
      messages: [
        ...user('is it hot?'),
        { role: 'assistant', content: '', toolCalls: calls },
        { role: 'tool', toolCallId: calls[0]!.id, content: '{"raised":true}' },
      ],
    });
    assert.ok(r.usage.inputTokens > done.result.usage.inputTokens, 'the call and its result are in the prompt');
  });

  test('history: tool results are attached to the call they answer', () => {
    const h = toHistory([
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'let me see', toolCalls: [{ id: 'c1', name: 'f', arguments: { x: 1 } }] },
      { role: 'tool', toolCallId: 'c1', content: '42' },
    ]);
    assert.deepEqual(h, [
      { type: 'user', text: 'q' },
      { type: 'model', response: ['let me see', { type: 'functionCall', name: 'f', params: { x: 1 }, result: '42' }] },
    ]);
    assert.throws(() => toHistory([{ role: 'tool', toolCallId: 'nope', content: '' }]), isBadRequest());
  });

  test('embeddings have the model width', async () => {
    const v = await p.embed(['hello world', 'sensor alert']);
    assert.equal(v.length, 2);
    assert.equal(v[0]!.length, 64);
    assert.ok(v.flat().every(Number.isFinite));
    assert.notDeepEqual(v[0], v[1]);
  });

  test('the thread count is explicit: the context uses what was configured', async () => {
    await p.chat({ messages: user('hi'), maxTokens: 1 });
    const s = p.status().find((m) => m.name === 'tiny');
    assert.equal(s?.threads, 1);
    assert.equal(s?.contextSize, 1024);
    assert.equal(s?.gpuLayers, 0);
    assert.equal(resolveThreads(undefined, 2), 1, 'default leaves one core free');
    assert.equal(resolveThreads(undefined, 1), 1);
    assert.equal(resolveThreads(undefined, 8), 7);
    assert.equal(resolveThreads(8, 2), 2, 'never more threads than cores');
    assert.equal(resolveThreads(0, 2), 1);
    assert.equal(new LocalProvider({ name: 'x', dataDir: d.dir, modelPath: 'm.gguf', cores: 2 }).threads, 1);
  });

  test('a prompt over the context length is refused with a clear error', async () => {
    const long = 'temperature sensor alert value '.repeat(300);
    await assert.rejects(p.chat({ messages: user(long) }), (err: unknown) => {
      isBadRequest()(err);
      assert.match((err as Error).message, /context holds 1024/);
      return true;
    });
  });

  test('abort mid-stream rejects with the reason; the model serves the next call', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const c of p.stream({ messages: user('tell me a long story'), maxTokens: 400, signal: ac.signal })) {
        if (c.type === 'text') {
          seen.push(c.text);
          ac.abort(new Error('caller went away'));
        }
      }
    }, /caller went away/);
    assert.ok(seen.length >= 1 && seen.length < 400);
    const r = await p.chat({ messages: user('again'), maxTokens: 3 });
    assert.ok(r.usage.outputTokens > 0);
  });

  test('a consumer that stops reading ends the generation and frees the model', async () => {
    for await (const c of p.stream({ messages: user('go on'), maxTokens: 400 })) if (c.type === 'text') break;
    const r = await p.chat({ messages: user('next'), maxTokens: 3 });
    assert.ok(r.usage.outputTokens > 0);
  });

  test('unknown model, not GGUF, truncated: LLM_BAD_REQUEST with the path and the reason', async () => {
    await assert.rejects(p.chat({ model: 'nope', messages: user('x') }), isBadRequest('nope.gguf'));
    await assert.rejects(p.chat({ model: '../etc/passwd', messages: user('x') }), isBadRequest());
    writeFileSync(join(d.dir, 'models', 'text.gguf'), 'this is not a model\n');
    await assert.rejects(p.chat({ model: 'text', messages: user('x') }), (err: unknown) => {
      isBadRequest('text.gguf')(err);
      assert.match((err as Error).message, /not a GGUF/);
      return true;
    });
    const full = readFileSync(join(d.dir, 'models', 'tiny.gguf'));
    writeFileSync(join(d.dir, 'models', 'cut.gguf'), full.subarray(0, full.length - 4096));
    await assert.rejects(p.chat({ model: 'cut', messages: user('x') }), (err: unknown) => {
      isBadRequest('cut.gguf')(err);
      assert.match((err as Error).message, /truncated/);
      return true;
    });
    writeFileSync(join(d.dir, 'models', 'head.gguf'), full.subarray(0, 2000));
    await assert.rejects(p.chat({ model: 'head', messages: user('x') }), isBadRequest('head.gguf'));
    await assert.rejects(p.chat({ messages: [] }), isBadRequest());
    await assert.rejects(
      p.chat({
        messages: user('x'),
        jsonSchema: { type: 'object' },
        tools: [{ name: 'f', description: '', parameters: {} }],
      }),
      isBadRequest(),
    );
  });

  test('an idle model is unloaded, and the next call loads it again', async () => {
    const q = new LocalProvider({
      name: 'idle',
      dataDir: d.dir,
      modelPath: 'models/tiny.gguf',
      threads: 1,
      contextSize: 256,
      gpu: false,
      idleUnloadMs: 50,
    });
    try {
      const a = await q.chat({ messages: user('one'), maxTokens: 2 });
      // no timing assertion: wait (bounded by the test runner) until the timer has fired
      while (q.status().length > 0) await new Promise((r) => setTimeout(r, 20));
      const b = await q.chat({ messages: user('two'), maxTokens: 2 });
      assert.ok(a.usage.outputTokens > 0 && b.usage.outputTokens > 0);
      assert.equal(q.status().length, 1);
      assert.deepEqual(q.stats, { loads: 2, unloads: 1 });
    } finally {
      await q.close();
    }
    assert.equal(q.status().length, 0);
    assert.deepEqual(q.stats, { loads: 2, unloads: 2 });
    await assert.rejects(q.chat({ messages: user('closed') }), /closed/);
  });

  test('a Q8_0 model from the generator loads and generates', async () => {
    writeTestModel(join(d.dir, 'models', 'q8.gguf'), { type: 'Q8_0' });
    const r = await p.chat({ model: 'q8', messages: user('hi'), maxTokens: 4 });
    assert.equal(r.model, 'q8');
    assert.ok(r.usage.outputTokens > 0);
  });

  test('concurrent first calls share one load', async () => {
    const q = new LocalProvider({
      name: 'shared',
      dataDir: d.dir,
      modelPath: 'models/tiny.gguf',
      threads: 1,
      contextSize: 256,
      gpu: false,
      idleUnloadMs: 0,
    });
    try {
      const rs = await Promise.all([1, 2, 3].map((i) => q.chat({ messages: user(`call ${i}`), maxTokens: 2 })));
      assert.equal(rs.length, 3);
      assert.equal(q.status().length, 1);
      assert.equal(q.stats.loads, 1);
    } finally {
      await q.close();
    }
  });
});
