/**
 * `node --import tsx test/bench/llm-router.ts`: what the LLM router costs, measured in this
 * process against the same provider called directly, in the same run.
 *
 * 1. Overhead per call: router.chat / router.stream (10 text chunks) over a provider double
 *    that answers at once, vs that provider called directly; then the same over loopback
 *    HTTP: the OpenAI-compatible provider against the wire-format fake on 127.0.0.1.
 *    The router's audit is a no-op here (the audit chain's own cost is in test/bench/audit.ts).
 * 2. Failover time: primary = the OpenAI provider pointed at a closed port on 127.0.0.1
 *    (connection refused), secondary = the loopback fake; from router.stream() to the
 *    secondary's first token, with the primary's breaker closed (tried and refused each
 *    time) and open (skipped), vs the secondary's first token called directly.
 * LLM_BENCH_CALLS sets the iterations of the in-process runs (default 20 000).
 */
import { createServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../../runtime/core/clock.ts';
import { LlmRouter, type RouterConfig } from '../../runtime/llm/router.ts';
import { OpenAiProvider } from '../../runtime/llm/providers/openai.ts';
import type { ChatChunk, ChatRequest, ChatResult, LlmProvider } from '../../runtime/llm/types.ts';
import { startFakeLlm } from '../helpers/llm-fakes.ts';

const us = (ms: number): string => (ms * 1000).toFixed(1);
const f = (n: number): string => n.toFixed(2);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
}

const RESULT: ChatResult = {
  provider: 'instant',
  model: 'm',
  text: 'ok',
  toolCalls: [],
  usage: { inputTokens: 10, outputTokens: 10 },
  finishReason: 'stop',
};
const CHUNKS: ChatChunk[] = [
  ...Array.from({ length: 10 }, (_, i): ChatChunk => ({ type: 'text', text: `w${i} ` })),
  { type: 'done', result: { ...RESULT, text: Array.from({ length: 10 }, (_, i) => `w${i} `).join('') } },
];

const instant: LlmProvider = {
  name: 'instant',
  kind: 'bench',
  local: true,
  chat: async () => RESULT,
  async *stream() {
    for (const c of CHUNKS) yield c;
  },
};

const req: ChatRequest = { messages: [{ role: 'user', content: 'Say ok.' }] };

function router(providers: LlmProvider[], chain: string[], extra: Partial<RouterConfig> = {}): LlmRouter {
  return new LlmRouter(
    {
      providers,
      chains: { default: chain },
      retry: { maxAttempts: 3, baseMs: 50, maxMs: 2_000, jitter: 0.5 },
      timeouts: { firstTokenMs: 10_000, stallMs: 10_000 },
      ...extra,
    },
    { audit: { record: async () => {} }, clock: systemClock, random: Math.random },
  );
}

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) {
    /* consume */
  }
}

/** times `n` sequential calls of each function, interleaved in blocks so drift hits both */
async function compare(
  n: number,
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
): Promise<{ a: number[]; b: number[] }> {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < Math.min(500, n / 10); i++) {
    await a();
    await b();
  }
  const block = 100;
  for (let done = 0; done < n; done += block) {
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await a();
      ta.push(performance.now() - t);
    }
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await b();
      tb.push(performance.now() - t);
    }
  }
  return { a: ta, b: tb };
}

function row(what: string, r: { a: number[]; b: number[] }): string {
  const [d50, d99, r50, r99] = [pct(r.a, 0.5), pct(r.a, 0.99), pct(r.b, 0.5), pct(r.b, 0.99)];
  return `| ${what} | ${us(d50)} / ${us(d99)} | ${us(r50)} / ${us(r99)} | ${us(r50 - d50)} | ${r50 - d50 <= 1 ? 'yes' : 'no'} |`;
}

async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

async function firstToken(it: AsyncIterable<ChatChunk | { type: string }>): Promise<number> {
  const t = performance.now();
  let at = NaN;
  for await (const c of it) if (c.type === 'text' && Number.isNaN(at)) at = performance.now() - t;
  return at;
}

export async function llmRouterRows(): Promise<string[]> {
  const n = Number(process.env.LLM_BENCH_CALLS ?? 20_000);
  const rows: string[] = [
    '| router overhead | direct p50 / p99 µs | via router p50 / p99 µs | overhead p50 µs | ≤ 1 ms p50 |',
    '|---|---|---|---|---|',
  ];
  const r = router([instant], ['instant']);
  rows.push(
    row(
      `chat, in-process provider (${n} calls)`,
      await compare(
        n,
        () => instant.chat(req),
        () => r.chat(req),
      ),
    ),
  );
  rows.push(
    row(
      `stream 10 chunks, in-process provider (${n} calls)`,
      await compare(
        n,
        () => drain(instant.stream(req)),
        () => drain(r.stream(req)),
      ),
    ),
  );

  const fake = await startFakeLlm('openai', {
    defaultReply: { text: 'ok', chunks: Array.from({ length: 10 }, (_, i) => `w${i} `) },
  });
  const dead = await closedPort();
  try {
    const live = new OpenAiProvider({
      name: 'live',
      baseUrl: fake.url,
      model: 'fake-model',
      apiKey: 'sk-bench-000000',
    });
    const lr = router([live], ['live']);
    const m = Math.max(200, Math.round(n / 20));
    rows.push(
      row(
        `chat, OpenAI provider over loopback HTTP (${m} calls)`,
        await compare(
          m,
          () => live.chat(req),
          () => lr.chat(req),
        ),
      ),
    );
    rows.push(
      row(
        `stream 10 chunks, OpenAI provider over loopback HTTP (${m} calls)`,
        await compare(
          m,
          () => drain(live.stream(req)),
          () => drain(lr.stream(req)),
        ),
      ),
    );

    rows.push(
      '',
      '| failover, dead primary (connection refused on 127.0.0.1) → loopback secondary | p50 ms | p99 ms |',
      '|---|---|---|',
    );
    const deadP = new OpenAiProvider({
      name: 'dead',
      baseUrl: `http://127.0.0.1:${dead}/v1`,
      model: 'fake-model',
      apiKey: 'sk-bench-000000',
    });
    const k = 200;
    const direct: number[] = [];
    for (let i = 0; i < k; i++) direct.push(await firstToken(live.stream(req)));
    // a breaker that never opens: the primary is tried (and refused) on every call
    const tried = router([deadP, live], ['dead', 'live'], { breaker: { failureThreshold: 1e9 } });
    const viaTried: number[] = [];
    for (let i = 0; i < k; i++) viaTried.push(await firstToken(tried.stream(req)));
    // the default breaker: opens after 3 refusals, then the primary is skipped until its cool-down
    const skipping = router([deadP, live], ['dead', 'live']);
    for (let i = 0; i < 3; i++) await drain(skipping.stream(req));
    const viaSkip: number[] = [];
    for (let i = 0; i < k; i++) viaSkip.push(await firstToken(skipping.stream(req)));
    rows.push(
      `| secondary called directly, first token (${k} calls) | ${f(pct(direct, 0.5))} | ${f(pct(direct, 0.99))} |`,
    );
    rows.push(
      `| via router, primary tried and refused each call (${k}) | ${f(pct(viaTried, 0.5))} | ${f(pct(viaTried, 0.99))} |`,
    );
    rows.push(`| via router, primary's breaker open (${k}) | ${f(pct(viaSkip, 0.5))} | ${f(pct(viaSkip, 0.99))} |`);
    rows.push(`| failover cost (tried − direct, p50) | ${f(pct(viaTried, 0.5) - pct(direct, 0.5))} | |`);
    const st = skipping.status().find((s) => s.name === 'dead')!;
    rows.push(
      '',
      `dead primary after the run: breaker ${st.state}, last error ${st.lastError?.code}: ${st.lastError?.message}`,
    );
  } finally {
    await fake.close();
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(`LLM router, node ${process.version}, ${new Date().toISOString()}\n`);
  for (const line of await llmRouterRows()) console.log(line);
}
