import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { OllamaProvider, type PullProgress } from '../../../runtime/llm/providers/ollama.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { startFakeLlm, type FakeLlm } from '../../helpers/llm-fakes.ts';
import { fakeHarness, providerContract } from './contract.ts';

const KEY = 'ollama-cloud-KEY-0123456789';

providerContract(
  'ollama',
  fakeHarness(
    'ollama',
    KEY,
    (baseUrl, o) =>
      new OllamaProvider({
        name: 'ollama',
        baseUrl,
        apiKey: KEY,
        model: 'fake-model',
        ...(o.timeouts ? { timeouts: o.timeouts } : {}),
      }),
  ),
);

describe('Ollama wire format (through the ollama client)', () => {
  let fake: FakeLlm;
  let p: OllamaProvider;
  before(async () => {
    fake = await startFakeLlm('ollama');
    p = new OllamaProvider({
      name: 'ollama',
      baseUrl: fake.url,
      model: 'fake-model',
      embedModel: 'fake-embed',
      keepAlive: '5m',
    });
  });
  after(() => fake.close());

  it('is local on loopback, not elsewhere', () => {
    assert.equal(p.local, true);
    assert.equal(new OllamaProvider({ name: 'o', baseUrl: 'http://10.0.0.5:11434', model: 'm' }).local, false);
  });

  it('chat: POST /api/chat, stream false, options, keep_alive; stream: NDJSON', async () => {
    await p.chat({
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      maxTokens: 30,
      temperature: 0.1,
    });
    const r = fake.requests.at(-1)!;
    assert.equal(r.path, '/api/chat');
    assert.equal(r.headers.authorization, undefined);
    assert.deepEqual(r.body, {
      model: 'fake-model',
      stream: false,
      keep_alive: '5m',
      options: { num_predict: 30, temperature: 0.1 },
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
    });
    const texts: string[] = [];
    for await (const c of p.stream({ messages: [{ role: 'user', content: 'hi' }] }))
      if (c.type === 'text') texts.push(c.text);
    assert.equal(fake.requests.at(-1)!.body.stream, true);
    assert.equal(texts.join(''), 'Hello from the fake server.');
  });

  it('tools, tool_calls with object arguments, tool messages with tool_name; format = the JSON Schema', async () => {
    const params = { type: 'object', properties: { city: { type: 'string' } } };
    const schema = { type: 'object', properties: { a: { type: 'integer' } } };
    fake.reply({ text: '{"a":1}' });
    await p.chat({
      tools: [{ name: 'get_weather', description: 'weather', parameters: params }],
      jsonSchema: schema,
      messages: [
        { role: 'user', content: 'weather?' },
        {
          role: 'assistant',
          content: '',
          toolCalls: [{ id: 'call_0', name: 'get_weather', arguments: { city: 'Oslo' } }],
        },
        { role: 'tool', toolCallId: 'call_0', content: 'sunny' },
      ],
    });
    const b = fake.requests.at(-1)!.body;
    assert.deepEqual(b.tools, [
      { type: 'function', function: { name: 'get_weather', description: 'weather', parameters: params } },
    ]);
    assert.deepEqual(b.format, schema);
    assert.deepEqual(b.messages[1], {
      role: 'assistant',
      content: '',
      tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Oslo' } } }],
    });
    assert.deepEqual(b.messages[2], { role: 'tool', content: 'sunny', tool_name: 'get_weather' });
  });

  it('an API key goes as a bearer token (Ollama cloud)', async () => {
    const q = new OllamaProvider({ name: 'o', baseUrl: fake.url, apiKey: KEY, model: 'fake-model' });
    await q.chat({ messages: [{ role: 'user', content: 'x' }] });
    assert.equal(fake.requests.at(-1)!.headers.authorization, `Bearer ${KEY}`);
  });

  it('embed via /api/embed, models via /api/tags', async () => {
    const v = await p.embed(['abc', 'de']);
    assert.deepEqual(
      v.map((x) => x[0]),
      [3, 2],
    );
    assert.deepEqual(fake.requests.at(-1)!.body, { model: 'fake-embed', input: ['abc', 'de'] });
    assert.deepEqual(await p.models(), ['fake-model:latest']);
    assert.equal(fake.requests.at(-1)!.path, '/api/tags');
  });

  it('pull: progress lines as an async iterable, ending with success', async () => {
    const seen: PullProgress[] = [];
    for await (const s of p.pull('fake-model')) seen.push(s);
    assert.deepEqual(fake.requests.at(-1)!.body, { name: 'fake-model', stream: true });
    assert.equal(seen[0]!.status, 'pulling manifest');
    assert.equal(seen.at(-1)!.status, 'success');
    const bytes = seen.filter((s) => s.total !== undefined);
    assert.deepEqual(
      bytes.map((s) => s.completed),
      [0, 500, 1000],
    );
  });

  it('pull: a cut mid-way and an error line → LLM_UNAVAILABLE; a 404 → LLM_BAD_REQUEST', async () => {
    fake.reply({ fault: { kind: 'cut', afterText: 1 } });
    let e = (await (async () => {
      for await (const _ of p.pull('fake-model')) {
        /* drain */
      }
    })().catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_UNAVAILABLE');
    fake.reply({ fault: { kind: 'status', status: 404, message: 'pull model manifest: file does not exist' } });
    e = (await (async () => {
      for await (const _ of p.pull('nope')) {
        /* drain */
      }
    })().catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_BAD_REQUEST');
    assert.match(e.message, /file does not exist/);
    const q = new OllamaProvider({
      name: 'o',
      baseUrl: 'http://127.0.0.1:1',
      model: 'm',
      fetch: async () =>
        new Response('{"status":"pulling manifest"}\n{"error":"max retries exceeded"}\n', {
          headers: { 'content-type': 'application/x-ndjson' },
        }),
    });
    e = (await (async () => {
      for await (const _ of q.pull('m')) {
        /* drain */
      }
    })().catch((x: unknown) => x)) as TalonError;
    assert.equal(e.code, 'LLM_UNAVAILABLE');
    assert.match(e.message, /max retries exceeded/);
  });

  it('the client writes nothing to the console on errors and bad lines', async () => {
    const orig = { log: console.log, warn: console.warn, error: console.error };
    const lines: unknown[] = [];
    console.log =
      console.warn =
      console.error =
        (...a: unknown[]) => {
          lines.push(a);
        };
    try {
      fake.reply({ fault: { kind: 'malformed', afterText: 1 } });
      await (async () => {
        for await (const _ of p.stream({ messages: [{ role: 'user', content: 'x' }] })) {
          /* drain */
        }
      })().catch(() => {});
      fake.reply({ fault: { kind: 'status', status: 500, message: 'plain text' } });
      await p.chat({ messages: [{ role: 'user', content: 'x' }] }).catch(() => {});
    } finally {
      Object.assign(console, orig);
    }
    assert.deepEqual(lines, []);
  });
});
