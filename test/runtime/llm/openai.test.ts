import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { OpenAiProvider } from '../../../runtime/llm/providers/openai.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { startFakeLlm, type FakeLlm } from '../../helpers/llm-fakes.ts';
import { fakeHarness, providerContract } from './contract.ts';

const KEY = 'sk-test-0123456789abcdefSECRET';

const make = fakeHarness(
  'openai',
  KEY,
  (baseUrl, o) =>
    new OpenAiProvider({
      name: 'openai',
      baseUrl,
      apiKey: KEY,
      model: 'fake-model',
      ...(o.timeouts ? { timeouts: o.timeouts } : {}),
    }),
);

providerContract('openai', make);

describe('OpenAI wire format', () => {
  let fake: FakeLlm;
  let p: OpenAiProvider;
  before(async () => {
    fake = await startFakeLlm('openai');
    p = new OpenAiProvider({
      name: 'groq',
      baseUrl: fake.url,
      apiKey: KEY,
      model: 'fake-model',
      embedModel: 'fake-embed',
      now: () => Date.parse('2025-01-01T00:00:00Z'),
    });
  });
  after(() => fake.close());

  it('chat: POST /chat/completions with a bearer key, messages as sent, no stream', async () => {
    await p.chat({
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      maxTokens: 50,
      temperature: 0.2,
    });
    const r = fake.requests.at(-1)!;
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/v1/chat/completions');
    assert.equal(r.headers.authorization, `Bearer ${KEY}`);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.deepEqual(r.body, {
      model: 'fake-model',
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      max_tokens: 50,
      temperature: 0.2,
    });
  });

  it('stream: stream + stream_options.include_usage', async () => {
    for await (const _ of p.stream({ model: 'other-model', messages: [{ role: 'user', content: 'hi' }] })) {
      /* drain */
    }
    const r = fake.requests.at(-1)!;
    assert.equal(r.body.stream, true);
    assert.deepEqual(r.body.stream_options, { include_usage: true });
    assert.equal(r.body.model, 'other-model');
  });

  it('tools, assistant tool_calls and tool messages in the OpenAI shape', async () => {
    await p.chat({
      tools: [
        {
          name: 'get_weather',
          description: 'weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      ],
      messages: [
        { role: 'user', content: 'weather?' },
        {
          role: 'assistant',
          content: '',
          toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Oslo' } }],
        },
        { role: 'tool', toolCallId: 'call_1', content: '{"sky":"sunny"}' },
      ],
    });
    const b = fake.requests.at(-1)!.body;
    assert.deepEqual(b.tools, [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ]);
    assert.deepEqual(b.messages[1], {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }],
    });
    assert.deepEqual(b.messages[2], { role: 'tool', tool_call_id: 'call_1', content: '{"sky":"sunny"}' });
  });

  it('jsonSchema → response_format json_schema, strict, named from the title', async () => {
    fake.reply({ text: '{"a":1}' });
    const schema = {
      title: 'my answer',
      type: 'object',
      properties: { a: { type: 'integer' } },
      required: ['a'],
      additionalProperties: false,
    };
    await p.chat({ messages: [{ role: 'user', content: 'x' }], jsonSchema: schema });
    assert.deepEqual(fake.requests.at(-1)!.body.response_format, {
      type: 'json_schema',
      json_schema: { name: 'my_answer', schema, strict: true },
    });
  });

  it('max_completion_tokens when configured', async () => {
    const q = new OpenAiProvider({
      name: 'openai',
      baseUrl: fake.url,
      apiKey: KEY,
      model: 'fake-model',
      maxTokensParam: 'max_completion_tokens',
    });
    await q.chat({ messages: [{ role: 'user', content: 'x' }], maxTokens: 9 });
    const b = fake.requests.at(-1)!.body;
    assert.equal(b.max_completion_tokens, 9);
    assert.equal(b.max_tokens, undefined);
  });

  it('embeddings via /embeddings, models via /models', async () => {
    const v = await p.embed(['a', 'bb']);
    assert.equal(v.length, 2);
    assert.deepEqual(
      v.map((x) => x[0]),
      [1, 2],
    );
    assert.deepEqual(fake.requests.at(-1)!.body, { model: 'fake-embed', input: ['a', 'bb'] });
    assert.deepEqual(await p.models(), ['fake-model', 'fake-embed']);
    assert.equal(fake.requests.at(-1)!.method, 'GET');
    assert.equal(fake.requests.at(-1)!.path, '/v1/models');
  });

  it('429 insufficient_quota is billing, not a rate limit', async () => {
    fake.reply({
      fault: {
        kind: 'status',
        status: 429,
        message: 'You exceeded your current quota',
        vendorCode: 'insufficient_quota',
      },
    });
    const e = await p.chat({ messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x);
    assert.ok(e instanceof TalonError);
    assert.equal(e.code, 'LLM_BILLING');
    assert.match(e.message, /exceeded your current quota/);
  });

  it('Retry-After as an HTTP date uses the injected clock', async () => {
    fake.reply({ fault: { kind: 'status', status: 429, retryAfter: 'Wed, 01 Jan 2025 00:00:30 GMT' } });
    const e = (await p.chat({ messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_RATE_LIMITED');
    assert.equal((e.details as { retryAfterMs: number }).retryAfterMs, 30_000);
  });

  it('a 401 that echoes the key: the key is redacted', async () => {
    fake.reply({ fault: { kind: 'status', status: 401 } });
    const e = (await p.chat({ messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_AUTH');
    assert.match(e.message, /Incorrect API key provided: \[redacted\]/);
    assert.ok(!e.message.includes(KEY));
    assert.equal((e.details as { provider: string }).provider, 'groq');
  });

  it('an error object inside the stream → LLM_UNAVAILABLE', async () => {
    // a vLLM/OpenRouter-style mid-stream error: served as a scripted stream over a raw fetch
    const q = new OpenAiProvider({
      name: 'openai',
      baseUrl: 'http://x/v1',
      model: 'm',
      fetch: async () =>
        new Response('data: {"error":{"message":"upstream overloaded"}}\n\n', {
          headers: { 'content-type': 'text/event-stream' },
        }),
    });
    const e = (await (async () => {
      for await (const _ of q.stream({ messages: [{ role: 'user', content: 'x' }] })) {
        /* drain */
      }
    })().catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_UNAVAILABLE');
    assert.match(e.message, /upstream overloaded/);
  });

  it('names the provider in every error', async () => {
    fake.reply({ fault: { kind: 'status', status: 500 } });
    const e = (await p.chat({ messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x)) as TalonError;
    assert.match(e.message, /^groq: HTTP 500/);
  });
});
