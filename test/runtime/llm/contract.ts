/**
 * The one suite every LlmProvider passes (runtime/llm/types.ts). A vendor test calls
 * `providerContract(name, make)`; `make` builds a fresh harness: the provider plus a way to
 * script its next answer or fault (test/helpers/llm-fakes.ts for the remote providers).
 * A provider that cannot have some fault kinds (a local model has no HTTP status) lists them
 * in `opts.skipFaults`: those cases are not registered.
 * A provider whose answers cannot be scripted (a real local model: its text is whatever it
 * samples) passes `scripted: false`: the cases that check scripted content (exact text, usage
 * numbers, tool calls) then check only the structure (text + usage, stream chunks adding up to
 * exactly one done, abort, JSON under jsonSchema), and the tool-call cases are not registered.
 * `script` is never called then.
 *
 * Caller aborts reject with the signal's reason (never an LLM_* code: the router must not
 * count them against the provider). Every error is checked for the API key.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TalonError, type ErrorCode } from '../../../runtime/core/errors.ts';
import type { ChatChunk, ChatRequest, ChatResult, LlmProvider } from '../../../runtime/llm/types.ts';
import type { ProviderTimeouts } from '../../../runtime/llm/providers/http.ts';
import { startFakeLlm, type Fault, type FakeLlm, type Reply, type Vendor } from '../../helpers/llm-fakes.ts';
import { freePort } from '../../helpers/ports.ts';

export interface ContractHarness {
  provider: LlmProvider;
  /** the next call answers this (text, chunks, tool calls, usage) or fails this way */
  script(r: Reply): void;
  /** the key the provider holds: must appear in no error */
  secret?: string;
  close(): Promise<void>;
}

export interface MakeOptions {
  timeouts?: ProviderTimeouts;
  /** a provider pointed at a port nobody listens on */
  unreachable?: boolean;
}

/** fault cases by name (see FAULTS below) */
export type ContractFault =
  | 'status500'
  | 'status503'
  | 'status429'
  | 'status401'
  | 'status403'
  | 'status402'
  | 'status400'
  | 'status404'
  | 'empty200'
  | 'noTokens'
  | 'malformed'
  | 'stall'
  | 'cut'
  | 'neverEnds'
  | 'noHeaders'
  | 'unreachable';

export interface ContractOptions {
  skipFaults?: ContractFault[];
  /** false: the provider's answers cannot be scripted; check structure only (see above). Default true */
  scripted?: boolean;
}

/** tight deadlines for the fault cases: the faults themselves never answer */
const FAULT_TIMEOUTS: ProviderTimeouts = { firstByteMs: 2_000, stallMs: 1_000, totalMs: 2_500 };

interface FaultCase {
  name: ContractFault;
  fault?: Fault;
  code: ErrorCode;
  check?: (e: TalonError) => void;
}

const FAULTS: FaultCase[] = [
  { name: 'status500', fault: { kind: 'status', status: 500 }, code: 'LLM_UNAVAILABLE' },
  { name: 'status503', fault: { kind: 'status', status: 503 }, code: 'LLM_UNAVAILABLE' },
  {
    name: 'status429',
    fault: { kind: 'status', status: 429, retryAfter: '7' },
    code: 'LLM_RATE_LIMITED',
    check: (e) => assert.equal((e.details as { retryAfterMs?: number }).retryAfterMs, 7_000),
  },
  { name: 'status401', fault: { kind: 'status', status: 401 }, code: 'LLM_AUTH' },
  {
    name: 'status403',
    fault: { kind: 'status', status: 403, message: 'permission denied for this model' },
    code: 'LLM_AUTH',
  },
  { name: 'status402', fault: { kind: 'status', status: 402, message: 'insufficient credit' }, code: 'LLM_BILLING' },
  {
    name: 'status400',
    fault: { kind: 'status', status: 400, message: 'prompt is too long: 9000 tokens > 8192 maximum' },
    code: 'LLM_BAD_REQUEST',
    check: (e) => assert.match(e.message, /prompt is too long/, 'the vendor message is kept'),
  },
  {
    name: 'status404',
    fault: { kind: 'status', status: 404, message: 'model "nope" not found' },
    code: 'LLM_BAD_REQUEST',
    check: (e) => assert.match(e.message, /not found/),
  },
  { name: 'empty200', fault: { kind: 'empty200' }, code: 'LLM_BAD_RESPONSE' },
  { name: 'noTokens', fault: { kind: 'noTokens' }, code: 'LLM_BAD_RESPONSE' },
  { name: 'malformed', fault: { kind: 'malformed' }, code: 'LLM_BAD_RESPONSE' },
  { name: 'stall', fault: { kind: 'stall' }, code: 'LLM_TIMEOUT' },
  { name: 'cut', fault: { kind: 'cut' }, code: 'LLM_UNAVAILABLE' },
  { name: 'neverEnds', fault: { kind: 'neverEnds' }, code: 'LLM_TIMEOUT' },
  { name: 'noHeaders', fault: { kind: 'noHeaders' }, code: 'LLM_TIMEOUT' },
  { name: 'unreachable', code: 'LLM_UNAVAILABLE' },
];

const USER: ChatRequest = {
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'What is the answer?' },
  ],
};

const WEATHER = {
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  },
};

const SCHEMA = {
  title: 'verdict',
  type: 'object',
  properties: { ok: { type: 'boolean' }, n: { type: 'integer' } },
  required: ['ok', 'n'],
  additionalProperties: false,
};

async function drain(it: AsyncIterable<ChatChunk>): Promise<ChatChunk[]> {
  const out: ChatChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

function assertNoSecret(e: unknown, secret: string | undefined): void {
  if (!secret) return;
  const err = e as TalonError;
  const all = [
    err.message,
    String(err.stack),
    JSON.stringify(err.toJSON?.() ?? {}),
    JSON.stringify(err.details ?? {}),
  ].join('\n');
  assert.ok(!all.includes(secret), `the API key leaked into an error: ${err.message}`);
}

function assertCode(e: unknown, code: ErrorCode, secret: string | undefined): TalonError {
  assert.ok(e instanceof TalonError, `expected a TalonError, got ${String(e)}`);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  assertNoSecret(e, secret);
  return e;
}

async function using<T>(
  make: (o: MakeOptions) => Promise<ContractHarness>,
  o: MakeOptions,
  fn: (h: ContractHarness) => Promise<T>,
): Promise<T> {
  const h = await make(o);
  try {
    return await fn(h);
  } finally {
    await h.provider.close?.();
    await h.close();
  }
}

export function providerContract(
  name: string,
  make: (o: MakeOptions) => Promise<ContractHarness>,
  opts: ContractOptions = {},
): void {
  const skip = new Set(opts.skipFaults ?? []);
  const scripted = opts.scripted ?? true;
  const structural = (r: ChatResult, h: ContractHarness): void => {
    assert.equal(r.provider, h.provider.name);
    assert.equal(typeof r.text, 'string');
    assert.equal(typeof r.model, 'string');
    assert.ok(Number.isInteger(r.usage.inputTokens) && r.usage.inputTokens > 0, `input tokens ${r.usage.inputTokens}`);
    assert.ok(
      Number.isInteger(r.usage.outputTokens) && r.usage.outputTokens > 0,
      `output tokens ${r.usage.outputTokens}`,
    );
  };

  describe(`LlmProvider contract: ${name}`, () => {
    it('has a name, a kind and a locality', async () => {
      await using(make, {}, async (h) => {
        assert.equal(typeof h.provider.name, 'string');
        assert.ok(h.provider.name.length > 0);
        assert.equal(typeof h.provider.kind, 'string');
        assert.equal(typeof h.provider.local, 'boolean');
      });
    });

    it('chat returns text, usage and a finish reason', async () => {
      await using(make, {}, async (h) => {
        if (!scripted) {
          const r = await h.provider.chat({ ...USER, maxTokens: 8 });
          structural(r, h);
          assert.ok(r.usage.outputTokens <= 8);
          assert.deepEqual(r.toolCalls, []);
          assert.ok(['stop', 'length'].includes(r.finishReason), r.finishReason);
          return;
        }
        h.script({ text: 'The answer is 42.', usage: { input: 7, output: 4 } });
        const r = await h.provider.chat(USER);
        assert.equal(r.provider, h.provider.name);
        assert.equal(r.text, 'The answer is 42.');
        assert.deepEqual(r.toolCalls, []);
        assert.deepEqual(r.usage, { inputTokens: 7, outputTokens: 4 });
        assert.equal(r.finishReason, 'stop');
        assert.equal(typeof r.model, 'string');
      });
    });

    it('chat reports a length stop', async () => {
      await using(make, {}, async (h) => {
        if (scripted) h.script({ text: 'The answer', finish: 'length' });
        const r = await h.provider.chat({ ...USER, maxTokens: 2 });
        assert.equal(r.finishReason, 'length');
      });
    });

    it('stream yields text chunks, then exactly one done whose text is their concatenation', async () => {
      await using(make, {}, async (h) => {
        if (scripted) h.script({ chunks: ['The ', 'answer ', 'is ', '42.'], usage: { input: 9, output: 4 } });
        const chunks = await drain(h.provider.stream(scripted ? USER : { ...USER, maxTokens: 12 }));
        const done = chunks.filter((c) => c.type === 'done');
        assert.equal(done.length, 1);
        assert.equal(chunks[chunks.length - 1]!.type, 'done');
        const texts = chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []));
        assert.ok(texts.length >= 2, 'text arrives in several chunks');
        const result = (done[0] as Extract<ChatChunk, { type: 'done' }>).result;
        assert.equal(result.text, texts.join(''));
        if (!scripted) {
          structural(result, h);
          assert.ok(
            texts.every((t) => t.length > 0),
            'no empty chunks',
          );
          assert.ok(['stop', 'length'].includes(result.finishReason), result.finishReason);
          return;
        }
        assert.equal(result.text, 'The answer is 42.');
        assert.deepEqual(result.usage, { inputTokens: 9, outputTokens: 4 });
        assert.equal(result.finishReason, 'stop');
        assert.equal(result.provider, h.provider.name);
      });
    });

    it('stream can be left early without leaking the exchange', async () => {
      await using(make, {}, async (h) => {
        if (scripted) h.script({ chunks: ['a ', 'b ', 'c ', 'd'] });
        for await (const c of h.provider.stream(scripted ? USER : { ...USER, maxTokens: 400 })) {
          assert.equal(c.type, 'text');
          break;
        }
        if (!scripted) {
          structural(await h.provider.chat({ ...USER, maxTokens: 4 }), h);
          return;
        }
        h.script({ text: 'still fine' });
        assert.equal((await h.provider.chat(USER)).text, 'still fine');
      });
    });

    // tool calls are scripted content: a model that cannot be scripted decides for itself
    if (scripted)
      it('tool call round trip (chat)', async () => {
        await using(make, {}, async (h) => {
          h.script({ toolCalls: [{ id: 'call_w1', name: 'get_weather', arguments: { city: 'Oslo' } }] });
          const first = await h.provider.chat({ ...USER, tools: [WEATHER] });
          assert.equal(first.toolCalls.length, 1);
          const call = first.toolCalls[0]!;
          assert.equal(call.name, 'get_weather');
          assert.deepEqual(call.arguments, { city: 'Oslo' });
          assert.ok(call.id.length > 0);
          assert.equal(first.finishReason, 'tool_calls');

          h.script({ text: 'It is sunny in Oslo.' });
          const second = await h.provider.chat({
            tools: [WEATHER],
            messages: [
              ...USER.messages,
              { role: 'assistant', content: '', toolCalls: [call] },
              { role: 'tool', toolCallId: call.id, content: JSON.stringify({ sky: 'sunny' }) },
            ],
          });
          assert.equal(second.text, 'It is sunny in Oslo.');
          assert.deepEqual(second.toolCalls, []);
        });
      });

    if (scripted)
      it('tool calls stream as tool_call chunks and land in done', async () => {
        await using(make, {}, async (h) => {
          h.script({
            toolCalls: [
              { id: 'call_a', name: 'get_weather', arguments: { city: 'Oslo' } },
              { id: 'call_b', name: 'get_weather', arguments: { city: 'Lima' } },
            ],
          });
          const chunks = await drain(h.provider.stream({ ...USER, tools: [WEATHER] }));
          const calls = chunks.flatMap((c) => (c.type === 'tool_call' ? [c.call] : []));
          assert.deepEqual(
            calls.map((c) => c.arguments),
            [{ city: 'Oslo' }, { city: 'Lima' }],
          );
          const done = chunks.at(-1) as Extract<ChatChunk, { type: 'done' }>;
          assert.equal(done.type, 'done');
          assert.deepEqual(done.result.toolCalls, calls);
          assert.equal(done.result.finishReason, 'tool_calls');
        });
      });

    it('jsonSchema: the answer is JSON (chat and stream)', async () => {
      await using(make, {}, async (h) => {
        if (!scripted) {
          const shape = (v: unknown): void => {
            const o = v as { ok?: unknown; n?: unknown };
            assert.deepEqual(Object.keys(o).sort(), ['n', 'ok']);
            assert.equal(typeof o.ok, 'boolean');
            assert.ok(Number.isInteger(o.n), `n: ${String(o.n)}`);
          };
          const r = await h.provider.chat({ ...USER, jsonSchema: SCHEMA });
          shape(JSON.parse(r.text));
          const chunks = await drain(h.provider.stream({ ...USER, jsonSchema: SCHEMA }));
          const done = chunks.at(-1) as Extract<ChatChunk, { type: 'done' }>;
          assert.equal(done.type, 'done');
          shape(JSON.parse(done.result.text));
          return;
        }
        h.script({ text: '{"ok":true,"n":3}' });
        const r = await h.provider.chat({ ...USER, jsonSchema: SCHEMA });
        assert.deepEqual(JSON.parse(r.text), { ok: true, n: 3 });
        h.script({ text: '{"ok":false,"n":1}' });
        const chunks = await drain(h.provider.stream({ ...USER, jsonSchema: SCHEMA }));
        const done = chunks.at(-1) as Extract<ChatChunk, { type: 'done' }>;
        assert.deepEqual(JSON.parse(done.result.text), { ok: false, n: 1 });
      });
    });

    it('abort: an aborted signal rejects with its reason, before and during a call', async () => {
      await using(make, {}, async (h) => {
        const pre = new AbortController();
        pre.abort();
        await assert.rejects(h.provider.chat({ ...USER, signal: pre.signal }), (e: Error) => e.name === 'AbortError');
        await assert.rejects(
          drain(h.provider.stream({ ...USER, signal: pre.signal })),
          (e: Error) => e.name === 'AbortError',
        );

        // during a stream: first text arrives, the server then holds; the caller leaves
        // (unscripted: a long answer, left at its first chunk)
        if (scripted) h.script({ chunks: ['one ', 'two ', 'three'], fault: { kind: 'stall', afterText: 1 } });
        const mid = new AbortController();
        const reason = new Error('the caller went away');
        const seen: string[] = [];
        await assert.rejects(
          (async () => {
            for await (const c of h.provider.stream({
              ...USER,
              signal: mid.signal,
              ...(scripted ? {} : { maxTokens: 400 }),
            })) {
              if (c.type === 'text') {
                seen.push(c.text);
                mid.abort(reason);
              }
            }
          })(),
          (e) => e === reason,
        );
        if (scripted) assert.deepEqual(seen, ['one ']);
        else assert.equal(seen.length, 1);

        // during a chat: the server never answers (unscripted: a long answer still being generated)
        if (scripted) h.script({ fault: { kind: 'noHeaders' } });
        const during = new AbortController();
        const p = h.provider.chat({ ...USER, signal: during.signal, ...(scripted ? {} : { maxTokens: 400 }) });
        setTimeout(() => during.abort(), 50);
        await assert.rejects(p, (e: Error) => e.name === 'AbortError');
      });
    });

    describe('faults map to the documented codes', { concurrency: true }, () => {
      for (const fc of FAULTS) {
        if (skip.has(fc.name)) continue;
        const o: MakeOptions = {
          timeouts: FAULT_TIMEOUTS,
          ...(fc.name === 'unreachable' ? { unreachable: true } : {}),
        };
        it(`${fc.name} → ${fc.code} (chat)`, async () => {
          await using(make, o, async (h) => {
            if (fc.fault) h.script({ text: 'Never seen.', fault: fc.fault });
            const e = await h.provider.chat(USER).then(
              () => assert.fail('resolved'),
              (err: unknown) => err,
            );
            const te = assertCode(e, fc.code, h.secret);
            fc.check?.(te);
          });
        });
        it(`${fc.name} → ${fc.code} (stream, before any token)`, async () => {
          await using(make, o, async (h) => {
            if (fc.fault) h.script({ text: 'Never seen.', fault: fc.fault });
            const seen: ChatChunk[] = [];
            const e = await (async () => {
              for await (const c of h.provider.stream(USER)) seen.push(c);
            })().then(
              () => assert.fail('resolved'),
              (err: unknown) => err,
            );
            const te = assertCode(e, fc.code, h.secret);
            assert.deepEqual(seen, [], 'nothing was yielded');
            assert.notEqual((te.details as { partial?: boolean } | undefined)?.partial, true);
            fc.check?.(te);
          });
        });
      }

      for (const kind of ['stall', 'cut', 'malformed'] as const) {
        if (skip.has(kind)) continue;
        const code: ErrorCode =
          kind === 'stall' ? 'LLM_TIMEOUT' : kind === 'cut' ? 'LLM_UNAVAILABLE' : 'LLM_BAD_RESPONSE';
        it(`${kind} after output → ${code} with details.partial (stream)`, async () => {
          await using(make, { timeouts: FAULT_TIMEOUTS }, async (h) => {
            h.script({ chunks: ['Partial ', 'answer ', 'here.'], fault: { kind, afterText: 1 } });
            const texts: string[] = [];
            const e = await (async () => {
              for await (const c of h.provider.stream(USER)) {
                assert.notEqual(c.type, 'done');
                if (c.type === 'text') texts.push(c.text);
              }
            })().then(
              () => assert.fail('resolved'),
              (err: unknown) => err,
            );
            const te = assertCode(e, code, h.secret);
            assert.ok(texts.join('').startsWith('Partial'), 'text was yielded before the fault');
            assert.equal((te.details as { partial?: boolean }).partial, true);
          });
        });
      }
    });
  });
}

/** a harness over a fake vendor server: `build` makes the provider for a baseUrl */
export function fakeHarness(
  vendor: Vendor,
  secret: string,
  build: (baseUrl: string, o: MakeOptions) => LlmProvider,
): (o: MakeOptions) => Promise<ContractHarness & { fake: FakeLlm }> {
  return async (o) => {
    const fake = await startFakeLlm(vendor);
    const baseUrl = o.unreachable
      ? `http://127.0.0.1:${await freePort()}${vendor === 'openai' ? '/v1' : ''}`
      : fake.url;
    return { provider: build(baseUrl, o), script: (r) => fake.reply(r), secret, fake, close: () => fake.close() };
  };
}
