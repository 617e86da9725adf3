import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { GeminiProvider } from '../../../runtime/llm/providers/gemini.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { startFakeLlm, type FakeLlm } from '../../helpers/llm-fakes.ts';
import { fakeHarness, providerContract } from './contract.ts';

const KEY = 'AIzaSyTEST-0123456789abcdefghijkl';

providerContract(
  'gemini',
  fakeHarness(
    'gemini',
    KEY,
    (baseUrl, o) =>
      new GeminiProvider({
        name: 'gemini',
        baseUrl,
        apiKey: KEY,
        model: 'fake-model',
        ...(o.timeouts ? { timeouts: o.timeouts } : {}),
      }),
  ),
);

describe('Gemini wire format', () => {
  let fake: FakeLlm;
  let p: GeminiProvider;
  before(async () => {
    fake = await startFakeLlm('gemini');
    p = new GeminiProvider({
      name: 'gemini',
      baseUrl: fake.url,
      apiKey: KEY,
      model: 'fake-model',
      embedModel: 'fake-embed',
    });
  });
  after(() => fake.close());

  it('generateContent with x-goog-api-key (never in the URL), systemInstruction, generationConfig', async () => {
    await p.chat({
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      maxTokens: 20,
      temperature: 0,
    });
    const r = fake.requests.at(-1)!;
    assert.equal(r.path, '/v1beta/models/fake-model:generateContent');
    assert.equal(r.headers['x-goog-api-key'], KEY);
    assert.equal([...r.query.keys()].length, 0);
    assert.deepEqual(r.body, {
      contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
      systemInstruction: { parts: [{ text: 'sys' }] },
      generationConfig: { maxOutputTokens: 20, temperature: 0 },
    });
  });

  it('streamGenerateContent?alt=sse (CRLF-framed events)', async () => {
    const chunks: string[] = [];
    for await (const c of p.stream({ messages: [{ role: 'user', content: 'hi' }] }))
      if (c.type === 'text') chunks.push(c.text);
    const r = fake.requests.at(-1)!;
    assert.equal(r.path, '/v1beta/models/fake-model:streamGenerateContent');
    assert.equal(r.query.get('alt'), 'sse');
    assert.equal(chunks.join(''), 'Hello from the fake server.');
  });

  it('functionDeclarations; functionCall and functionResponse parts (name found from the call id)', async () => {
    const params = { type: 'object', properties: { city: { type: 'string' } } };
    await p.chat({
      tools: [{ name: 'get_weather', description: 'weather', parameters: params }],
      messages: [
        { role: 'user', content: 'weather?' },
        {
          role: 'assistant',
          content: '',
          toolCalls: [{ id: 'call_0', name: 'get_weather', arguments: { city: 'Oslo' } }],
        },
        { role: 'tool', toolCallId: 'call_0', content: '{"sky":"sunny"}' },
        { role: 'tool', toolCallId: 'call_0', content: 'plain text' },
      ],
    });
    const b = fake.requests.at(-1)!.body;
    assert.deepEqual(b.tools, [
      { functionDeclarations: [{ name: 'get_weather', description: 'weather', parameters: params }] },
    ]);
    assert.deepEqual(b.contents[1], {
      role: 'model',
      parts: [{ functionCall: { name: 'get_weather', args: { city: 'Oslo' } } }],
    });
    assert.deepEqual(b.contents[2], {
      role: 'user',
      parts: [
        { functionResponse: { name: 'get_weather', response: { sky: 'sunny' } } },
        { functionResponse: { name: 'get_weather', response: { result: 'plain text' } } },
      ],
    });
  });

  it('jsonSchema → responseMimeType application/json + responseSchema', async () => {
    const schema = { type: 'object', properties: { a: { type: 'integer' } } };
    fake.reply({ text: '{"a":1}' });
    await p.chat({ messages: [{ role: 'user', content: 'x' }], jsonSchema: schema });
    assert.deepEqual(fake.requests.at(-1)!.body.generationConfig, {
      responseMimeType: 'application/json',
      responseSchema: schema,
    });
  });

  it('embeddings via batchEmbedContents; models via GET /v1beta/models', async () => {
    const v = await p.embed(['abc', 'de']);
    assert.deepEqual(
      v.map((x) => x[0]),
      [3, 2],
    );
    const r = fake.requests.at(-1)!;
    assert.equal(r.path, '/v1beta/models/fake-embed:batchEmbedContents');
    assert.deepEqual(r.body.requests[0], { model: 'models/fake-embed', content: { parts: [{ text: 'abc' }] } });
    assert.deepEqual(await p.models(), ['fake-model', 'fake-embed']);
  });

  it('a blocked prompt (promptFeedback, no candidates) → LLM_BAD_REQUEST', async () => {
    const q = new GeminiProvider({
      name: 'g',
      baseUrl: 'http://x',
      model: 'm',
      fetch: async () =>
        Response.json({ promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: { promptTokenCount: 3 } }),
    });
    const e = (await q.chat({ messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_BAD_REQUEST');
    assert.match(e.message, /blocked \(SAFETY\)/);
  });

  it('a stream that ends cleanly after text but without finishReason is a cut → LLM_UNAVAILABLE, partial', async () => {
    const body = 'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}\r\n\r\n';
    const q = new GeminiProvider({
      name: 'g',
      baseUrl: 'http://x',
      model: 'm',
      fetch: async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    });
    const e = (await (async () => {
      for await (const _ of q.stream({ messages: [{ role: 'user', content: 'x' }] })) {
        /* drain */
      }
    })().catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_UNAVAILABLE');
    assert.equal((e.details as { partial: boolean }).partial, true);
  });
});
