import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { AnthropicProvider, JSON_TOOL } from '../../../runtime/llm/providers/anthropic.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { startFakeLlm, type FakeLlm } from '../../helpers/llm-fakes.ts';
import { fakeHarness, providerContract } from './contract.ts';

const KEY = 'sk-ant-api03-testKEY0123456789';

providerContract(
  'anthropic',
  fakeHarness(
    'anthropic',
    KEY,
    (baseUrl, o) =>
      new AnthropicProvider({
        name: 'anthropic',
        baseUrl,
        apiKey: KEY,
        model: 'fake-model',
        ...(o.timeouts ? { timeouts: o.timeouts } : {}),
      }),
  ),
);

describe('Anthropic wire format', () => {
  let fake: FakeLlm;
  let p: AnthropicProvider;
  before(async () => {
    fake = await startFakeLlm('anthropic');
    p = new AnthropicProvider({ name: 'claude', baseUrl: fake.url, apiKey: KEY, model: 'fake-model' });
  });
  after(() => fake.close());

  it('POST /v1/messages with x-api-key and anthropic-version, system apart, max_tokens defaulted', async () => {
    await p.chat({
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      temperature: 0.5,
    });
    const r = fake.requests.at(-1)!;
    assert.equal(r.path, '/v1/messages');
    assert.equal(r.headers['x-api-key'], KEY);
    assert.equal(r.headers['anthropic-version'], '2023-06-01');
    assert.equal(r.headers.authorization, undefined);
    assert.deepEqual(r.body, {
      model: 'fake-model',
      max_tokens: 4096,
      system: 'be brief',
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 0.5,
    });
  });

  it('stream: stream true', async () => {
    for await (const _ of p.stream({ messages: [{ role: 'user', content: 'hi' }], maxTokens: 10 })) {
      /* drain */
    }
    const b = fake.requests.at(-1)!.body;
    assert.equal(b.stream, true);
    assert.equal(b.max_tokens, 10);
  });

  it('tools with input_schema; tool_use and tool_result blocks; tool answers merged into one user turn', async () => {
    const params = { type: 'object', properties: { city: { type: 'string' } } };
    await p.chat({
      tools: [{ name: 'get_weather', description: 'weather', parameters: params }],
      messages: [
        { role: 'user', content: 'weather in two cities?' },
        {
          role: 'assistant',
          content: 'Checking.',
          toolCalls: [
            { id: 'toolu_1', name: 'get_weather', arguments: { city: 'Oslo' } },
            { id: 'toolu_2', name: 'get_weather', arguments: { city: 'Lima' } },
          ],
        },
        { role: 'tool', toolCallId: 'toolu_1', content: 'sunny' },
        { role: 'tool', toolCallId: 'toolu_2', content: 'rain' },
      ],
    });
    const b = fake.requests.at(-1)!.body;
    assert.deepEqual(b.tools, [{ name: 'get_weather', description: 'weather', input_schema: params }]);
    assert.deepEqual(b.messages[1], {
      role: 'assistant',
      content: [
        { type: 'text', text: 'Checking.' },
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } },
        { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Lima' } },
      ],
    });
    assert.deepEqual(b.messages[2], {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' },
        { type: 'tool_result', tool_use_id: 'toolu_2', content: 'rain' },
      ],
    });
    assert.equal(b.messages.length, 3);
  });

  it('jsonSchema → a forced tool whose input is the answer', async () => {
    const schema = { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] };
    fake.reply({ text: '{"a":5}' });
    const r = await p.chat({ messages: [{ role: 'user', content: 'x' }], jsonSchema: schema });
    const b = fake.requests.at(-1)!.body;
    assert.deepEqual(b.tool_choice, { type: 'tool', name: JSON_TOOL });
    assert.deepEqual(b.tools.at(-1), {
      name: JSON_TOOL,
      description: 'Answer with JSON that follows this schema.',
      input_schema: schema,
    });
    assert.deepEqual(JSON.parse(r.text), { a: 5 });
    assert.deepEqual(r.toolCalls, []);
    assert.equal(r.finishReason, 'stop');
  });

  it('an error event in the stream (overloaded_error) → LLM_UNAVAILABLE; usage from message_start + message_delta', async () => {
    const body = [
      'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
      'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n',
      'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
    ].join('');
    const q = new AnthropicProvider({
      name: 'a',
      baseUrl: 'http://x',
      model: 'm',
      fetch: async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    });
    const seen: string[] = [];
    const e = (await (async () => {
      for await (const c of q.stream({ messages: [{ role: 'user', content: 'x' }] }))
        if (c.type === 'text') seen.push(c.text);
    })().catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_UNAVAILABLE');
    assert.equal((e.details as { partial: boolean }).partial, true);
    assert.deepEqual(seen, ['Hi']);
  });

  it('a 529 overloaded answer → LLM_UNAVAILABLE; models via /v1/models', async () => {
    fake.reply({ fault: { kind: 'status', status: 529, message: 'Overloaded' } });
    const e = (await p.chat({ messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_UNAVAILABLE');
    assert.equal((e.details as { vendorCode: string }).vendorCode, 'overloaded_error');
    assert.deepEqual(await p.models(), ['fake-model']);
  });
});
