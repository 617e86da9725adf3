/**
 * The router is a composition of providers, so its providers here are in-memory doubles that
 * follow a script (the wire-format fakes belong to the provider tests). Time is a fake clock
 * that only moves when `drive` finds nothing left to do, so no assertion depends on real time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../../runtime/core/clock.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { AuditEvent } from '../../../runtime/audit/types.ts';
import { CircuitBreaker } from '../../../runtime/llm/breaker.ts';
import { LlmRouter, type RouterChunk, type RouterConfig, type CallOptions } from '../../../runtime/llm/router.ts';
import type {
  ChatChunk,
  ChatRequest,
  ChatResult,
  LlmProvider,
  ToolCall,
  ToolSpec,
  Usage,
} from '../../../runtime/llm/types.ts';
import type { HandCaller } from '../../../runtime/supervisor/types.ts';

// ---- a clock the test moves ----

function fakeClock(start = 1_767_225_600_000): Clock & { advance(ms: number): void; pending(): number } {
  let now = start;
  let id = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.set(++id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    setInterval: () => 0,
    clearInterval: () => {},
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let next: [number, { at: number; fn: () => void }] | undefined;
        for (const e of timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
        if (!next) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = end;
    },
    pending: () => timers.size,
  };
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** runs `work` to completion, moving the fake clock in `stepMs` steps whenever it is idle */
async function drive<T>(clock: ReturnType<typeof fakeClock>, work: Promise<T>, stepMs = 50): Promise<T> {
  let settled = false;
  const p = work.finally(() => {
    settled = true;
  });
  p.catch(() => {});
  for (let i = 0; i < 10_000; i++) {
    await flush();
    if (settled) return p;
    clock.advance(stepMs);
  }
  throw new Error('drive: the work never settled');
}

async function rejects(p: Promise<unknown>, code: string): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, `expected a TalonError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

// ---- scripted providers ----

type Step =
  | { ok: string; usage?: Usage; toolCalls?: ToolCall[]; chunks?: string[]; model?: string }
  | { fail: TalonError }
  | { partial: string[]; then: TalonError | 'stall' | 'end' }
  | { hang: true }
  | { empty: true }
  | { noToken: true }
  | { raw: unknown[] };

const err = (
  code: ConstructorParameters<typeof TalonError>[0],
  message = code.toLowerCase(),
  details?: unknown,
): TalonError => new TalonError(code, message, details === undefined ? {} : { details });

class Fake implements LlmProvider {
  readonly kind = 'fake';
  readonly calls: Array<{ at: number; req: ChatRequest }> = [];
  aborted = 0;
  /** streams whose generator finished (returned, threw or was closed by the router) */
  closed = 0;
  constructor(
    readonly name: string,
    readonly local: boolean,
    public script: Step[],
    readonly clock: Clock,
    public fallback: Step = { ok: `answer from ${name}` },
  ) {}

  #step(req: ChatRequest): Step {
    this.calls.push({ at: this.clock.now(), req });
    return this.script.shift() ?? this.fallback;
  }

  #result(s: { ok: string; usage?: Usage; toolCalls?: ToolCall[]; model?: string }): ChatResult {
    return {
      provider: this.name,
      model: s.model ?? 'm1',
      text: s.ok,
      toolCalls: s.toolCalls ?? [],
      usage: s.usage ?? { inputTokens: 10, outputTokens: 5 },
      finishReason: s.toolCalls?.length ? 'tool_calls' : 'stop',
    };
  }

  #hang(signal: AbortSignal | undefined): Promise<never> {
    return new Promise((_, reject) =>
      signal?.addEventListener(
        'abort',
        () => {
          this.aborted++;
          reject(signal.reason);
        },
        { once: true },
      ),
    );
  }

  async chat(req: ChatRequest): Promise<ChatResult> {
    const s = this.#step(req);
    if ('fail' in s) throw s.fail;
    if ('hang' in s) return this.#hang(req.signal);
    if ('empty' in s || 'noToken' in s) return this.#result({ ok: '' });
    if ('partial' in s) throw s.then instanceof TalonError ? s.then : err('LLM_UNAVAILABLE');
    if ('raw' in s) return s.raw[0] as ChatResult;
    return this.#result(s);
  }

  async *stream(req: ChatRequest): AsyncIterable<ChatChunk> {
    try {
      yield* this.#stream(req);
    } finally {
      this.closed++;
    }
  }

  async *#stream(req: ChatRequest): AsyncIterable<ChatChunk> {
    const s = this.#step(req);
    await Promise.resolve();
    if ('fail' in s) throw s.fail;
    if ('hang' in s) return yield* [await this.#hang(req.signal)];
    if ('empty' in s) return;
    if ('noToken' in s) {
      yield { type: 'done', result: this.#result({ ok: '', usage: { inputTokens: 1, outputTokens: 0 } }) };
      return;
    }
    if ('raw' in s) {
      for (const c of s.raw) yield c as ChatChunk;
      return;
    }
    if ('partial' in s) {
      for (const t of s.partial) yield { type: 'text', text: t };
      if (s.then === 'stall') await this.#hang(req.signal);
      if (s.then === 'end') return;
      throw s.then;
    }
    for (const t of s.chunks ?? [s.ok]) yield { type: 'text', text: t };
    for (const c of s.toolCalls ?? []) yield { type: 'tool_call', call: c };
    yield { type: 'done', result: this.#result(s) };
  }
}

// ---- a router under test ----

function setup(over: Partial<RouterConfig> & { providers?: LlmProvider[] } = {}, scripts: Record<string, Step[]> = {}) {
  const clock = fakeClock();
  const audit: AuditEvent[] = [];
  const local = new Fake('local', true, scripts.local ?? [], clock);
  const cloud = new Fake('cloud', false, scripts.cloud ?? [], clock);
  const cfg: RouterConfig = {
    providers: [local, cloud],
    chains: { default: ['local', 'cloud'] },
    retry: { maxAttempts: 4, baseMs: 100, maxMs: 5_000, jitter: 0.5 },
    timeouts: { firstTokenMs: 2_000, stallMs: 1_000 },
    breaker: { failureThreshold: 3, coolDownMs: 10_000, maxCoolDownMs: 60_000, authCoolDownMs: 600_000, jitter: 0.2 },
    ...over,
  };
  const router = new LlmRouter(cfg, { audit: { record: async (e) => void audit.push(e) }, clock, random: () => 0.5 });
  return { clock, audit, local, cloud, router };
}

const ask = (text = 'hello there'): ChatRequest => ({ messages: [{ role: 'user', content: text }] });

async function collect(it: AsyncIterable<RouterChunk>, seen: RouterChunk[] = []): Promise<RouterChunk[]> {
  for await (const c of it) seen.push(c);
  return seen;
}

/** what a caller that honours the failover marker shows on screen */
function screen(chunks: RouterChunk[]): string {
  let shown = '';
  for (const c of chunks) {
    if (c.type === 'text') shown += c.text;
    if (c.type === 'failover') shown = '';
  }
  return shown;
}

const hand = (name: string, llm: { tokensPerHour: number } | null): HandCaller => ({
  name,
  grants: {
    bus: { publish: [], subscribe: [] },
    sensors: [],
    gpio: [],
    llm,
    network: [],
    fs: { read: [], write: [] },
    shell: [],
  } as unknown as HandCaller['grants'],
});

// ---- chains and policies ----

test('chat answers from the first provider of the chain and fails over in order when it fails', async () => {
  const { router, local, cloud, audit, clock } = setup(
    {},
    { local: [{ fail: err('LLM_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:1') }] },
  );
  const r = await drive(clock, router.chat(ask(), { hand: 'notes' }));
  assert.equal(r.text, 'answer from cloud');
  assert.equal(r.provider, 'cloud');
  assert.equal(local.calls.length, 1);
  assert.equal(cloud.calls.length, 1);
  assert.equal(audit.length, 1);
  assert.deepEqual(
    { ...audit[0], detail: undefined },
    { actor: 'hand:notes', action: 'llm.chat', subject: 'cloud/m1', decision: 'ok', detail: undefined },
  );
  assert.equal(audit[0]!.detail!.attempts, 2);
  assert.equal(audit[0]!.detail!.failovers, 1);

  const r2 = await drive(clock, router.chat(ask()));
  assert.equal(r2.provider, 'local', 'a single failure does not take the local provider out');
});

test('without a configured chain local providers come first', async () => {
  const clock = fakeClock();
  const cloud = new Fake('cloud', false, [], clock);
  const local = new Fake('local', true, [], clock);
  const router = new LlmRouter(
    {
      providers: [cloud, local],
      chains: {},
      retry: { maxAttempts: 2, baseMs: 1, maxMs: 10, jitter: 0 },
      timeouts: { firstTokenMs: 100, stallMs: 100 },
    },
    { audit: { record: async () => {} }, clock, random: () => 0 },
  );
  assert.equal((await router.chat(ask())).provider, 'local');
  assert.equal(cloud.calls.length, 0);
});

test('a Hand chain beats a purpose chain, which beats the default one', async () => {
  const { router, clock } = setup({ chains: { default: ['local'], summarize: ['cloud'], mailer: ['cloud', 'local'] } });
  assert.equal((await drive(clock, router.chat(ask()))).provider, 'local');
  assert.equal((await drive(clock, router.chat(ask(), { purpose: 'summarize' }))).provider, 'cloud');
  assert.equal((await drive(clock, router.chat(ask(), { hand: 'mailer', purpose: 'nope' }))).provider, 'cloud');
  assert.equal((await drive(clock, router.chat(ask(), { hand: 'other', purpose: 'nope' }))).provider, 'local');
});

test('a Hand whose policy forbids the cloud never reaches a cloud provider', async () => {
  const { router, local, cloud, clock, audit } = setup(
    { policies: { diary: { cloud: false } } },
    {
      local: [
        { fail: err('LLM_UNAVAILABLE') },
        { fail: err('LLM_UNAVAILABLE') },
        { fail: err('LLM_UNAVAILABLE') },
        { fail: err('LLM_UNAVAILABLE') },
      ],
    },
  );
  const e = await rejects(drive(clock, router.chat(ask('my private diary'), { hand: 'diary' })), 'LLM_UNAVAILABLE');
  assert.equal(cloud.calls.length, 0);
  assert.ok(local.calls.length >= 1);
  assert.match(e.message, /local: LLM_UNAVAILABLE/);
  assert.doesNotMatch(e.message, /cloud/);

  // asking for the cloud provider by name is refused, and the refusal is audited
  const denied = await rejects(
    drive(clock, router.chat(ask(), { hand: 'diary', provider: 'cloud' })),
    'CAPABILITY_DENIED',
  );
  assert.match(denied.message, /diary.*cloud: false/);
  assert.equal(audit.at(-1)!.decision, 'deny');

  // a chain with only cloud providers leaves nothing for it
  const only = setup({ chains: { default: ['cloud'] }, policies: { diary: { cloud: false } } });
  await rejects(drive(only.clock, only.router.chat(ask(), { hand: 'diary' })), 'CAPABILITY_DENIED');
  assert.equal(only.cloud.calls.length, 0);

  // a call may forbid the cloud for itself; the policy cannot be lifted by allowCloud: true
  const c = setup({ policies: { diary: { cloud: false } } }, { local: [{ fail: err('LLM_UNAVAILABLE') }] });
  c.router.chat(ask(), { allowCloud: false }).catch(() => {});
  await rejects(
    drive(c.clock, c.router.chat(ask(), { hand: 'diary', allowCloud: true, provider: 'cloud' })),
    'CAPABILITY_DENIED',
  );
  assert.equal(c.cloud.calls.length, 0);
});

test('an unknown provider, an empty request or a chain naming an unknown provider is a clear error', async () => {
  const { router, clock, audit } = setup();
  const e = await rejects(drive(clock, router.chat(ask(), { provider: 'gpt-nine' })), 'LLM_BAD_REQUEST');
  assert.match(e.message, /no LLM provider "gpt-nine" \(configured: local, cloud\)/);
  await rejects(drive(clock, router.chat({ messages: [] })), 'LLM_BAD_REQUEST');
  assert.equal(audit.length, 2, 'refusals are audited too');
  assert.throws(
    () =>
      new LlmRouter(
        { ...baseCfg(), chains: { default: ['local', 'ghost'] } },
        { audit: { record: async () => {} }, clock, random: () => 0 },
      ),
    (x: TalonError) => x.code === 'CONFIG_INVALID' && /ghost/.test(x.message),
  );

  function baseCfg(): RouterConfig {
    return {
      providers: [new Fake('local', true, [], clock)],
      chains: {},
      retry: { maxAttempts: 1, baseMs: 1, maxMs: 1, jitter: 0 },
      timeouts: { firstTokenMs: 1, stallMs: 1 },
    };
  }
});

test('a provider error that means the request is wrong (unknown model) does not fail over', async () => {
  const { router, cloud, clock } = setup(
    {},
    { local: [{ fail: err('LLM_BAD_REQUEST', 'model "llama-9" not found') }] },
  );
  const e = await rejects(drive(clock, router.chat({ ...ask(), model: 'llama-9' })), 'LLM_BAD_REQUEST');
  assert.match(e.message, /llama-9/);
  assert.equal(cloud.calls.length, 0);
  assert.equal(router.status().find((s) => s.name === 'local')!.state, 'closed');
});

// ---- circuit breaker ----

test('breaker: N consecutive failures open it; one probe at a time when half-open; success closes it', () => {
  const clock = fakeClock();
  const b = new CircuitBreaker(
    { failureThreshold: 3, coolDownMs: 1_000, maxCoolDownMs: 8_000, jitter: 0.2 },
    clock,
    () => 0.5,
  );
  for (let i = 0; i < 2; i++) {
    assert.ok(b.acquire());
    b.failure(err('LLM_TIMEOUT'));
  }
  assert.equal(b.state, 'closed');
  assert.ok(b.acquire());
  b.failure(err('LLM_UNAVAILABLE'));
  assert.equal(b.state, 'open');
  assert.equal(b.retryAt, clock.now() + 1_000);
  assert.equal(b.acquire(), false);
  clock.advance(999);
  assert.equal(b.acquire(), false);
  clock.advance(1);
  assert.equal(b.state, 'half-open');
  assert.ok(b.acquire(), 'the probe');
  assert.equal(b.acquire(), false, 'only one probe at a time');
  b.failure(err('LLM_TIMEOUT'));
  assert.equal(b.state, 'open');
  assert.equal(b.retryAt, clock.now() + 2_000, 'a failed probe doubles the cool-down');
  clock.advance(2_000);
  assert.ok(b.acquire());
  b.release();
  assert.ok(b.acquire(), 'a released probe frees the slot');
  b.success();
  assert.equal(b.state, 'closed');
  assert.equal(b.snapshot().consecutiveFailures, 0);
  b.failure(err('LLM_TIMEOUT'));
  assert.equal(b.state, 'closed', 'a success reset the count');
});

test('breaker: a 429 or a 5xx opens at once, auth and billing cool down longer, bad requests do not count, jitter is applied', () => {
  const clock = fakeClock();
  const mk = (random = 0.5): CircuitBreaker =>
    new CircuitBreaker(
      { failureThreshold: 5, coolDownMs: 1_000, authCoolDownMs: 100_000, jitter: 0.2 },
      clock,
      () => random,
    );
  const a = mk();
  a.failure(err('LLM_RATE_LIMITED'));
  assert.equal(a.state, 'open');
  const b = mk();
  b.failure(err('LLM_UNAVAILABLE', 'HTTP 503', { status: 503 }));
  assert.equal(b.state, 'open');
  const c = mk();
  c.failure(err('LLM_UNAVAILABLE', 'ECONNREFUSED'));
  assert.equal(c.state, 'closed');
  const d = mk();
  d.failure(err('LLM_AUTH', 'no API key'));
  assert.equal(d.retryAt, clock.now() + 100_000);
  const e = mk();
  e.failure(err('LLM_BILLING'));
  assert.equal(e.retryAt, clock.now() + 100_000);
  const f = mk();
  for (let i = 0; i < 10; i++) f.failure(err('LLM_BAD_REQUEST'));
  assert.equal(f.state, 'closed');
  const g = mk(1);
  g.failure(err('LLM_RATE_LIMITED'));
  assert.equal(g.retryAt, clock.now() + 1_200);
  const h = mk(0);
  h.failure(err('LLM_RATE_LIMITED'));
  assert.equal(h.retryAt, clock.now() + 800);
  const i = mk();
  i.failure(err('LLM_RATE_LIMITED', 'slow down', { retryAfterMs: 42_000 }));
  assert.equal(i.retryAt, clock.now() + 42_000, 'Retry-After sets the earliest retry');
  assert.equal(i.snapshot().lastError!.message, 'slow down');
});

test('router: an open breaker is skipped, half-open sends one probe, a good probe closes it', async () => {
  const down = Array.from({ length: 3 }, () => ({ fail: err('LLM_UNAVAILABLE', 'ECONNREFUSED') }));
  const { router, local, cloud, clock } = setup({}, { local: down });
  for (let i = 0; i < 3; i++) assert.equal((await drive(clock, router.chat(ask()), 1)).provider, 'cloud');
  assert.equal(local.calls.length, 3);
  const s = router.status().find((x) => x.name === 'local')!;
  assert.equal(s.state, 'open');
  assert.equal(s.lastError!.code, 'LLM_UNAVAILABLE');
  assert.equal(s.failures, 3);
  assert.equal((await drive(clock, router.chat(ask()), 1)).provider, 'cloud');
  assert.equal(local.calls.length, 3, 'skipped while open');
  assert.equal(cloud.calls.length, 4);
  clock.advance(10_000);
  assert.equal(router.status()[0]!.state, 'half-open');
  assert.equal((await drive(clock, router.chat(ask()), 1)).provider, 'local', 'the probe went to local and succeeded');
  assert.equal(router.status()[0]!.state, 'closed');
});

test('Retry-After is honoured: no call before it, and one beyond retry.maxMs is not waited for', async () => {
  const { router, cloud, clock } = setup(
    { chains: { default: ['cloud'] } },
    { cloud: [{ fail: err('LLM_RATE_LIMITED', '429 Too Many Requests', { retryAfterMs: 3_000 }) }] },
  );
  const t0 = clock.now();
  const r = await drive(clock, router.chat(ask()), 10);
  assert.equal(r.provider, 'cloud');
  assert.equal(cloud.calls.length, 2);
  assert.ok(cloud.calls[1]!.at - t0 >= 3_000, `second call ${cloud.calls[1]!.at - t0} ms after the first`);

  const far = setup(
    { chains: { default: ['cloud'] } },
    { cloud: [{ fail: err('LLM_RATE_LIMITED', '429', { retryAfterMs: 60_000 }) }] },
  );
  const e = await rejects(drive(far.clock, far.router.chat(ask())), 'LLM_RATE_LIMITED');
  assert.equal(far.cloud.calls.length, 1);
  assert.equal((e.details as { retryAfterMs: number }).retryAfterMs, 60_000);
  assert.equal(e.status, 429);
});

test('the retry budget is bounded: every provider failing gives one error naming each failure', async () => {
  const clock = fakeClock();
  const local = new Fake('local', true, [], clock, { fail: err('LLM_TIMEOUT', 'no first token within 2000 ms') });
  const cloud = new Fake('cloud', false, [], clock, { fail: err('LLM_AUTH', 'the API key was refused (401)') });
  const audit: AuditEvent[] = [];
  const router = new LlmRouter(
    {
      providers: [local, cloud],
      chains: { default: ['local', 'cloud'] },
      retry: { maxAttempts: 5, baseMs: 100, maxMs: 1_000, jitter: 0 },
      timeouts: { firstTokenMs: 2_000, stallMs: 1_000 },
      breaker: { failureThreshold: 10 },
    },
    { audit: { record: async (e) => void audit.push(e) }, clock, random: () => 0.5 },
  );
  const t0 = clock.now();
  const e = await rejects(drive(clock, router.chat(ask()), 10), 'LLM_UNAVAILABLE');
  assert.match(e.message, /local: LLM_TIMEOUT no first token within 2000 ms/);
  assert.match(e.message, /cloud: LLM_AUTH circuit open until .* after: the API key was refused \(401\)/);
  // local failed, cloud (auth) opened for a long time, then local alone was retried with backoff
  assert.equal(cloud.calls.length, 1, 'an auth failure is not retried within the call');
  assert.equal(local.calls.length, 4);
  assert.equal(local.calls.length + cloud.calls.length, 5);
  const gaps = local.calls.slice(1).map((c, i) => c.at - local.calls[i]!.at);
  assert.ok(gaps[0]! >= 100 && gaps[1]! >= 200 && gaps[2]! >= 400, `exponential backoff: ${gaps.join(', ')}`);
  assert.ok(clock.now() - t0 < 2_000);
  const failures = (e.details as { failures: Array<{ provider: string; code: string }> }).failures;
  assert.deepEqual(
    failures.map((f) => f.provider),
    ['local', 'cloud'],
  );
  assert.equal(audit.at(-1)!.decision, 'error');
  assert.equal(audit.at(-1)!.detail!.attempts, 5);
});

test('an empty answer is retried within the budget, never forever (chat and stream)', async () => {
  const clock = fakeClock();
  const local = new Fake('local', true, [], clock, { empty: true });
  const router = new LlmRouter(
    {
      providers: [local],
      chains: {},
      retry: { maxAttempts: 3, baseMs: 10, maxMs: 100, jitter: 0 },
      timeouts: { firstTokenMs: 1_000, stallMs: 1_000 },
    },
    { audit: { record: async () => {} }, clock, random: () => 0 },
  );
  const e = await rejects(drive(clock, router.chat(ask())), 'LLM_BAD_RESPONSE');
  assert.match(e.message, /empty answer/);
  assert.equal(local.calls.length, 3);
  // three failures opened its breaker (cool-down 5 s > retry.maxMs): the next call does not even try
  const open = await rejects(drive(clock, collect(router.stream(ask()))), 'LLM_BAD_RESPONSE');
  assert.match(open.message, /circuit open until .* after: local returned an empty answer/);
  assert.equal(local.calls.length, 3);
  clock.advance(10_000);
  const e2 = await rejects(drive(clock, collect(router.stream(ask()))), 'LLM_BAD_RESPONSE');
  assert.match(e2.message, /local: LLM_BAD_RESPONSE local: the stream ended without a token/);
  assert.equal(local.calls.length, 4, 'the half-open probe failed and reopened the breaker: one call');
});

// ---- streams ----

test('stream: an empty stream, a stream without a token, a malformed chunk each fail over silently', async () => {
  for (const bad of [
    { empty: true },
    { noToken: true },
    { raw: [{ type: 'text', text: 42 }] },
    { raw: [{ type: 'weird' }] },
    { raw: [null] },
    { partial: [], then: 'end' },
  ] as Step[]) {
    const { router, clock, local, cloud } = setup({}, { local: [bad] });
    const chunks = await drive(clock, collect(router.stream(ask())));
    assert.deepEqual(
      chunks.map((c) => c.type),
      ['text', 'done'],
      JSON.stringify(bad),
    );
    assert.equal(screen(chunks), 'answer from cloud');
    assert.equal(local.calls.length, 1);
    assert.equal(cloud.calls.length, 1);
    assert.equal(router.status()[0]!.lastError!.code, 'LLM_BAD_RESPONSE');
  }
});

test('stream: no first token within firstTokenMs fails over, and the hung provider is aborted', async () => {
  const { router, clock, local } = setup({}, { local: [{ hang: true }] });
  const t0 = clock.now();
  const chunks = await drive(clock, collect(router.stream(ask())), 100);
  assert.equal(screen(chunks), 'answer from cloud');
  assert.ok(
    clock.now() - t0 >= 2_000 && clock.now() - t0 < 2_200,
    `failed over after ${clock.now() - t0} ms of fake time`,
  );
  assert.equal(local.aborted, 1, 'the provider saw its signal abort');
  assert.equal(router.status()[0]!.lastError!.code, 'LLM_TIMEOUT');
  assert.match(router.status()[0]!.lastError!.message, /no first token within 2000 ms/);
});

test('stream: output reached the caller, then the provider failed: LLM_PARTIAL, nothing repeated', async () => {
  const { router, clock, cloud, audit } = setup(
    {},
    { local: [{ partial: ['Hel', 'lo'], then: err('LLM_UNAVAILABLE', 'socket hang up') }] },
  );
  const seen: RouterChunk[] = [];
  const e = await rejects(drive(clock, collect(router.stream(ask()), seen)), 'LLM_PARTIAL');
  assert.deepEqual(seen, [
    { type: 'text', text: 'Hel' },
    { type: 'text', text: 'lo' },
  ]);
  assert.deepEqual(
    { ...(e.details as object), cause: undefined, partialToolCalls: undefined },
    { provider: 'local', partialText: 'Hello', next: 'cloud', cause: undefined, partialToolCalls: undefined },
  );
  assert.match(e.message, /socket hang up.*onPartial 'restart'/);
  assert.equal(cloud.calls.length, 0, 'no silent failover after output');
  assert.equal(audit.at(-1)!.decision, 'error');
});

test('stream: a stall after output with onPartial restart emits one marker, then the whole answer from the next provider', async () => {
  const { router, clock, cloud } = setup(
    {},
    {
      local: [{ partial: ['The answer', ' is'], then: 'stall' }],
      cloud: [{ ok: 'The answer is 42.', chunks: ['The answer', ' is', ' 42.'] }],
    },
  );
  const t0 = clock.now();
  const chunks = await drive(clock, collect(router.stream(ask(), { onPartial: 'restart' })), 100);
  assert.deepEqual(
    chunks.map((c) => c.type),
    ['text', 'text', 'failover', 'text', 'text', 'text', 'done'],
  );
  const marker = chunks[2] as Extract<RouterChunk, { type: 'failover' }>;
  assert.deepEqual(marker, {
    type: 'failover',
    restart: true,
    from: 'local',
    to: 'cloud',
    partialText: 'The answer is',
  });
  const done = chunks.at(-1) as Extract<RouterChunk, { type: 'done' }>;
  assert.equal(done.result.text, 'The answer is 42.', 'not concatenated with the partial text');
  assert.equal(screen(chunks), done.result.text, 'a caller honouring the marker shows the answer once');
  assert.equal(cloud.calls.length, 1);
  assert.ok(clock.now() - t0 >= 1_000, 'the stall timeout fired');
  assert.equal(router.status()[0]!.lastError!.code, 'LLM_TIMEOUT');
  assert.match(router.status()[0]!.lastError!.message, /stalled/);
});

test('stream: restart whose next provider fails before its first token stays one marker; all failing ends in LLM_PARTIAL', async () => {
  const clock = fakeClock();
  const a = new Fake('a', true, [{ partial: ['one'], then: err('LLM_UNAVAILABLE') }], clock);
  const b = new Fake('b', true, [{ fail: err('LLM_UNAVAILABLE') }], clock);
  const c = new Fake('c', true, [{ ok: 'two' }], clock);
  const router = new LlmRouter(
    {
      providers: [a, b, c],
      chains: {},
      retry: { maxAttempts: 3, baseMs: 1, maxMs: 10, jitter: 0 },
      timeouts: { firstTokenMs: 100, stallMs: 100 },
    },
    { audit: { record: async () => {} }, clock, random: () => 0 },
  );
  const chunks = await drive(clock, collect(router.stream(ask(), { onPartial: 'restart' })));
  assert.deepEqual(
    chunks.filter((x) => x.type === 'failover'),
    [{ type: 'failover', restart: true, from: 'a', to: 'c', partialText: 'one' }],
  );
  assert.equal(screen(chunks), 'two');

  a.script.push({ partial: ['one'], then: err('LLM_UNAVAILABLE') });
  b.script.push({ fail: err('LLM_UNAVAILABLE') });
  c.script.push({ fail: err('LLM_UNAVAILABLE') });
  const seen: RouterChunk[] = [];
  const e = await rejects(drive(clock, collect(router.stream(ask(), { onPartial: 'restart' }), seen)), 'LLM_PARTIAL');
  assert.equal((e.details as { partialText: string }).partialText, 'one');
  assert.deepEqual(seen, [{ type: 'text', text: 'one' }], 'the caller still shows only what it was given once');
});

test('stream: a caller that stops reading closes the provider stream and the call is audited as cancelled', async () => {
  const { router, clock, local, audit } = setup({}, { local: [{ partial: ['a', 'b'], then: 'stall' }] });
  const run = async (): Promise<void> => {
    for await (const c of router.stream(ask())) if (c.type === 'text') break;
  };
  await drive(clock, run());
  await flush();
  assert.equal(local.closed, 1);
  assert.equal(audit.at(-1)!.decision, 'info');
  assert.equal(audit.at(-1)!.detail!.cancelled, true);
});

test("the caller's abort signal stops the call without failover and without counting against the provider", async () => {
  const { router, clock, cloud } = setup({}, { local: [{ hang: true }] });
  const ac = new AbortController();
  const p = router.chat({ ...ask(), signal: ac.signal });
  await flush();
  ac.abort();
  await rejects(drive(clock, p), 'LLM_UNAVAILABLE');
  assert.equal(cloud.calls.length, 0);
  assert.equal(router.status()[0]!.failures, 0);
  assert.equal(router.status()[0]!.state, 'closed');
});

// ---- tools ----

const weather: ToolSpec = {
  name: 'weather',
  description: 'the weather in a city',
  parameters: {
    type: 'object',
    required: ['city'],
    additionalProperties: false,
    properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1 } },
  },
};

test('tool-call arguments are validated against the tool schema: LLM_BAD_REQUEST, no failover, the router keeps working', async () => {
  const bad: ToolCall = { id: 't1', name: 'weather', arguments: { town: 'Oslo' } };
  const { router, clock, cloud, audit } = setup(
    {},
    {
      local: [
        { ok: '', toolCalls: [bad] },
        { ok: '', toolCalls: [{ id: 't2', name: 'rm', arguments: {} }] },
      ],
    },
  );
  const req = { ...ask('weather in Oslo?'), tools: [weather] };
  const e = await rejects(drive(clock, router.chat(req)), 'LLM_BAD_REQUEST');
  assert.match(
    e.message,
    /tool "weather" with arguments that fail its schema: arguments must have required property 'city'/,
  );
  const e2 = await rejects(drive(clock, router.chat(req)), 'LLM_BAD_REQUEST');
  assert.match(e2.message, /tool "rm", which the request did not offer \(offered: weather\)/);
  assert.equal(cloud.calls.length, 0);
  assert.equal(audit.at(-1)!.decision, 'error');

  const ok = setup(
    {},
    { local: [{ ok: '', toolCalls: [{ id: 't3', name: 'weather', arguments: { city: 'Oslo', days: 2 } }] }] },
  );
  const r = await drive(ok.clock, ok.router.chat(req));
  assert.deepEqual(r.toolCalls, [{ id: 't3', name: 'weather', arguments: { city: 'Oslo', days: 2 } }]);
  assert.equal(r.finishReason, 'tool_calls');

  // streamed tool calls are checked before they reach the caller
  const st = setup(
    {},
    { local: [{ ok: 'checking', toolCalls: [{ id: 't4', name: 'weather', arguments: { city: 'Oslo', days: 0 } }] }] },
  );
  const seen: RouterChunk[] = [];
  await rejects(drive(st.clock, collect(st.router.stream(req), seen)), 'LLM_BAD_REQUEST');
  assert.ok(!seen.some((c) => c.type === 'tool_call'));

  // a tool whose schema is not a schema is refused before any provider is called
  const s2 = setup();
  await rejects(
    drive(
      s2.clock,
      s2.router.chat({ ...ask(), tools: [{ name: 'x', description: '', parameters: { type: 'no-such-type' } }] }),
    ),
    'LLM_BAD_REQUEST',
  );
  assert.equal(s2.local.calls.length, 0);
});

// ---- budgets, usage, audit ----

test('token budget per Hand per rolling hour: refused before calling, answers capped, rolls over with the clock', async () => {
  const { router, clock, local } = setup(
    {},
    {
      local: [
        { ok: 'a', usage: { inputTokens: 40, outputTokens: 30 } },
        { ok: 'b', usage: { inputTokens: 20, outputTokens: 20 } },
      ],
    },
  );
  const opts: CallOptions = { hand: 'notes', tokensPerHour: 100 };
  await drive(clock, router.chat(ask('hi'), opts));
  assert.equal(
    local.calls[0]!.req.maxTokens,
    100 - 3,
    'maxTokens capped to what the budget leaves after the prompt estimate',
  );
  assert.deepEqual(router.budget('notes', 100), { tokensPerHour: 100, used: 70, remaining: 30 });
  clock.advance(60_000);
  await drive(clock, router.chat(ask('hi'), opts));
  assert.equal(local.calls[1]!.req.maxTokens, 30 - 3);
  assert.equal(router.budget('notes', 100).used, 110);
  const e = await rejects(drive(clock, router.chat(ask('hi'), opts)), 'LLM_BUDGET');
  assert.match(e.message, /Hand "notes" has used 110 of its 100 LLM tokens this hour/);
  assert.equal(
    (e.details as { retryAfterMs: number }).retryAfterMs,
    3_600_000 - 60_000,
    'free once the first call leaves the window',
  );
  assert.equal(local.calls.length, 2, 'refused before calling');
  await rejects(drive(clock, router.chat(ask('hi'), { ...opts, hand: 'notes' })), 'LLM_BUDGET');
  assert.equal(
    (await drive(clock, router.chat(ask('hi'), { hand: 'other', tokensPerHour: 100 }))).provider,
    'local',
    'budgets are per Hand',
  );

  clock.advance(3_600_000 - 60_000);
  assert.equal(router.budget('notes', 100).used, 40);
  assert.equal((await drive(clock, router.chat(ask('hi'), opts))).provider, 'local');

  // a prompt that alone exceeds the budget is refused outright
  await rejects(drive(clock, router.chat(ask('x'.repeat(1_000)), { hand: 'tiny', tokensPerHour: 50 })), 'LLM_BUDGET');
});

test('usage and estimated cost per provider and per Hand', async () => {
  const { router, clock } = setup(
    { prices: { cloud: { inputPerMTok: 3, outputPerMTok: 15 } } },
    {
      local: [{ fail: err('LLM_UNAVAILABLE') }],
      cloud: [{ ok: 'x', usage: { inputTokens: 1_000, outputTokens: 500 } }],
    },
  );
  await drive(clock, router.chat(ask(), { hand: 'notes' }));
  await drive(clock, router.chat(ask(), { hand: 'notes' }));
  const u = router.usage();
  assert.deepEqual(u.providers.cloud, { calls: 1, inputTokens: 1_000, outputTokens: 500, costUsd: 0.0105 });
  assert.deepEqual(u.providers.local, { calls: 1, inputTokens: 10, outputTokens: 5, costUsd: 0 });
  assert.deepEqual(u.hands.notes, { calls: 2, inputTokens: 1_010, outputTokens: 505, costUsd: 0.0105 });
  const st = router.status();
  assert.deepEqual(
    st.map((s) => [s.name, s.calls, s.failures]),
    [
      ['local', 2, 1],
      ['cloud', 1, 0],
    ],
  );
});

test('every call is audited with provider, model, tokens, latency, outcome and never the prompt unless configured', async () => {
  const secret = 'my bank PIN is 4321';
  const { router, clock, audit } = setup(
    {},
    { local: [{ ok: 'noted', model: 'qwen-0.5b', usage: { inputTokens: 7, outputTokens: 2 } }] },
  );
  await drive(clock, router.chat(ask(secret), { actor: 'http:admin', purpose: 'chat' }));
  assert.equal(audit.length, 1);
  const a = audit[0]!;
  assert.equal(a.actor, 'http:admin');
  assert.equal(a.subject, 'local/qwen-0.5b');
  assert.deepEqual(a.detail!.tokens, { input: 7, output: 2 });
  assert.equal(typeof a.detail!.latencyMs, 'number');
  assert.equal(a.detail!.purpose, 'chat');
  assert.ok(!JSON.stringify(audit).includes(secret), 'no prompt text');
  assert.ok(!JSON.stringify(audit).includes('noted'), 'no answer text');

  const withPrompts = setup({ auditPrompts: true });
  await drive(withPrompts.clock, withPrompts.router.chat(ask(secret)));
  assert.deepEqual(withPrompts.audit[0]!.detail!.messages, [{ role: 'user', content: secret }]);
  assert.equal(withPrompts.audit[0]!.actor, 'kernel');
});

test('status(): breaker state, last error, p50 latency, calls and failures per provider', async () => {
  const clock = fakeClock();
  const slow: LlmProvider = {
    name: 'slow',
    kind: 'fake',
    local: true,
    chat: (req) =>
      new Promise((resolve) => {
        clock.setTimeout(
          () =>
            resolve({
              provider: 'slow',
              model: 'm',
              text: 'ok',
              toolCalls: [],
              usage: { inputTokens: 1, outputTokens: 1 },
              finishReason: 'stop',
            }),
          req.messages[0]!.content.length,
        );
      }),
    stream: () => {
      throw new Error('unused');
    },
  };
  const router = new LlmRouter(
    {
      providers: [slow],
      chains: {},
      retry: { maxAttempts: 1, baseMs: 1, maxMs: 1, jitter: 0 },
      timeouts: { firstTokenMs: 10_000, stallMs: 10_000 },
    },
    { audit: { record: async () => {} }, clock, random: () => 0 },
  );
  assert.equal(router.status()[0]!.p50LatencyMs, null);
  for (const n of [100, 300, 200]) await drive(clock, router.chat(ask('x'.repeat(n))), 100);
  assert.deepEqual(router.status()[0], {
    name: 'slow',
    kind: 'fake',
    local: true,
    state: 'closed',
    consecutiveFailures: 0,
    retryAt: null,
    lastError: null,
    p50LatencyMs: 200,
    calls: 3,
    failures: 0,
  });
});

// ---- kernel services ----

test('services(): llm.chat is checked against the Hand grant, its budget and its arguments; the Hand gets clear errors', async () => {
  const { router, clock, local, audit } = setup({ policies: { diary: { cloud: false } } });
  const svc = router.services();
  const denied = await rejects(svc['llm.chat']!(hand('blinky', null), [ask()]), 'CAPABILITY_DENIED');
  assert.match(denied.message, /Hand "blinky" may not use the LLM/);
  assert.equal(audit.at(-1)!.decision, 'deny');
  assert.equal(audit.at(-1)!.actor, 'hand:blinky');
  assert.equal(local.calls.length, 0);

  const r = await drive(
    clock,
    svc['llm.chat']!(hand('notes', { tokensPerHour: 1_000 }), [ask(), { purpose: 'summarize' }]) as Promise<ChatResult>,
  );
  assert.equal(r.text, 'answer from local');
  assert.equal(audit.at(-1)!.actor, 'hand:notes');
  assert.equal(router.usage().hands.notes!.calls, 1);
  assert.deepEqual(await svc['llm.budget']!(hand('notes', { tokensPerHour: 1_000 }), []), {
    tokensPerHour: 1_000,
    used: 15,
    remaining: 985,
  });

  await rejects(svc['llm.chat']!(hand('notes', { tokensPerHour: 1_000 }), [{ messages: 'hi' }]), 'LLM_BAD_REQUEST');
  await rejects(
    svc['llm.chat']!(hand('notes', { tokensPerHour: 1_000 }), [{ messages: [{ role: 'wizard', content: 'x' }] }]),
    'LLM_BAD_REQUEST',
  );
  const sneaky = await rejects(
    svc['llm.chat']!(hand('notes', { tokensPerHour: 1_000 }), [ask(), { tokensPerHour: 1e9 }]),
    'LLM_BAD_REQUEST',
  );
  assert.match(sneaky.message, /options may be \{ purpose\?, allowCloud\? \}/);
  await rejects(
    svc['llm.chat']!(hand('notes', { tokensPerHour: 2 }), [ask('a long prompt that is over two tokens')]),
    'LLM_BUDGET',
  );
  // the Hand's cloud policy holds through the service
  await rejects(
    svc['llm.chat']!(hand('diary', { tokensPerHour: 1_000 }), [ask(), { allowCloud: true }]).then(() =>
      router.chat(ask(), { hand: 'diary', provider: 'cloud' }),
    ),
    'CAPABILITY_DENIED',
  );
});

// ---- with the real providers against the wire-format fakes on 127.0.0.1 ----

test('over loopback: a 503 fails over at once, a 429 Retry-After opens the breaker, a stalled stream restarts on the next provider', async (t) => {
  const { startFakeLlm } = await import('../../helpers/llm-fakes.ts');
  const { OpenAiProvider } = await import('../../../runtime/llm/providers/openai.ts');
  const { AnthropicProvider } = await import('../../../runtime/llm/providers/anthropic.ts');
  const { systemClock } = await import('../../../runtime/core/clock.ts');
  const a = await startFakeLlm('openai');
  const b = await startFakeLlm('anthropic');
  t.after(() => Promise.all([a.close(), b.close()]));
  const primary = new OpenAiProvider({
    name: 'primary',
    baseUrl: a.url,
    model: 'fake-model',
    apiKey: 'sk-test-000000',
  });
  const secondary = new AnthropicProvider({
    name: 'secondary',
    baseUrl: b.url,
    model: 'fake-model',
    apiKey: 'sk-ant-test-000000',
  });
  const audit: AuditEvent[] = [];
  const router = new LlmRouter(
    {
      providers: [primary, secondary],
      chains: { default: ['primary', 'secondary'] },
      retry: { maxAttempts: 3, baseMs: 10, maxMs: 100, jitter: 0.5 },
      timeouts: { firstTokenMs: 5_000, stallMs: 300 },
    },
    { audit: { record: async (e) => void audit.push(e) }, clock: systemClock, random: Math.random },
  );

  a.reply({ fault: { kind: 'status', status: 503, message: 'overloaded' } });
  b.reply({ text: 'from anthropic' });
  const r = await router.chat(ask());
  assert.equal(r.provider, 'secondary');
  assert.equal(r.text, 'from anthropic');
  let s = router.status().find((x) => x.name === 'primary')!;
  assert.equal(s.state, 'open', 'a 5xx opens the breaker at once');
  assert.equal(s.lastError!.code, 'LLM_UNAVAILABLE');

  const fresh = new LlmRouter(
    {
      providers: [primary, secondary],
      chains: { default: ['primary', 'secondary'] },
      retry: { maxAttempts: 3, baseMs: 10, maxMs: 100, jitter: 0.5 },
      timeouts: { firstTokenMs: 5_000, stallMs: 300 },
    },
    { audit: { record: async () => {} }, clock: systemClock, random: Math.random },
  );
  a.reply({ fault: { kind: 'status', status: 429, retryAfter: '30', message: 'slow down' } });
  const before = Date.now();
  assert.equal((await fresh.chat(ask())).provider, 'secondary');
  s = fresh.status().find((x) => x.name === 'primary')!;
  assert.equal(s.lastError!.code, 'LLM_RATE_LIMITED');
  assert.ok(s.retryAt! >= before + 30_000, 'no call to primary before its Retry-After');

  const third = new LlmRouter(
    {
      providers: [primary, secondary],
      chains: { default: ['primary', 'secondary'] },
      retry: { maxAttempts: 3, baseMs: 10, maxMs: 100, jitter: 0.5 },
      timeouts: { firstTokenMs: 5_000, stallMs: 1_000 },
    },
    { audit: { record: async () => {} }, clock: systemClock, random: Math.random },
  );
  a.reply({ chunks: ['Paris ', 'is ', 'the ', 'capital.'], fault: { kind: 'stall', afterText: 2 } });
  b.reply({ chunks: ['The capital ', 'is Paris.'] });
  const chunks = await collect(third.stream(ask('capital of France?'), { onPartial: 'restart' }));
  const marker = chunks.find((c) => c.type === 'failover');
  assert.deepEqual(marker, {
    type: 'failover',
    restart: true,
    from: 'primary',
    to: 'secondary',
    partialText: 'Paris is ',
  });
  const done = chunks.at(-1) as Extract<RouterChunk, { type: 'done' }>;
  assert.equal(done.result.text, 'The capital is Paris.');
  assert.equal(screen(chunks), 'The capital is Paris.');
});
