/**
 * `npm run bench -- tools` (or `node --import tsx test/bench/tools.ts`): what the kernel adds to a tool
 * call and to an agent step, the model excluded. Everything real but the model: LevelDB, the signed audit
 * chain (one `tool.call` entry per call), ajv validation, the grant check, the worker round trip.
 *
 * 1. In the kernel: ToolRegistry.call of `time.now` (a built-in tool) and of a no-op tool vs the same tool's
 *    run() called directly, interleaved in blocks; p50 / p99 and the difference.
 * 2. From a Hand: ctx.tools.call('time.now') from a worker (tool-bench fixture) vs ctx.call('bench.noop'),
 *    a kernel service of the same round trip without the registry.
 * 3. The agent loop: AgentRunner over a model double that answers at once (a tool call per step, then an
 *    answer) and the no-op tool; the loop's own time per step (wall time minus the time in the model and in
 *    tool calls, both measured around them: messages, budgets, repeat detection, the run's steps written to
 *    LevelDB after each step), p50 / p99 over runs, and wall time per step.
 * TOOLS_BENCH_CALLS sets the in-process iterations (default 5000).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../runtime/store/store.ts';
import { AuditChain } from '../../runtime/audit/chain.ts';
import { DeviceKey } from '../../runtime/secrets/device-key.ts';
import { ToolRegistry } from '../../runtime/tools/registry.ts';
import { Approvals } from '../../runtime/tools/approvals.ts';
import { kernelTools } from '../../runtime/tools/builtin/kernel.ts';
import { AgentRunner } from '../../runtime/agent/loop.ts';
import { RunStore } from '../../runtime/agent/runs.ts';
import { NO_CAPABILITIES } from '../../runtime/core/grants.ts';
import type { ToolCaller, ToolDefinition, ToolRunContext } from '../../runtime/tools/types.ts';
import type { ChatResult } from '../../runtime/llm/types.ts';
import { startHarness, waitFor, ROOT as DEVICE_ROOT } from '../helpers/supervisor-harness.ts';
import { runIfMain } from './lib.ts';

const us = (ms: number): string => (ms * 1000).toFixed(1);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
}

/** `n` calls of each, interleaved in blocks of 100 so drift hits both */
async function compare(n: number, a: () => Promise<unknown>, b: () => Promise<unknown>) {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < Math.min(300, n / 10); i++) {
    await a();
    await b();
  }
  for (let done = 0; done < n; done += 100) {
    for (let i = 0; i < 100; i++) {
      const t = performance.now();
      await a();
      ta.push(performance.now() - t);
    }
    for (let i = 0; i < 100; i++) {
      const t = performance.now();
      await b();
      tb.push(performance.now() - t);
    }
  }
  return { a: ta, b: tb };
}

const row = (what: string, r: { a: number[]; b: number[] }): string =>
  `| ${what} | ${us(pct(r.a, 0.5))} / ${us(pct(r.a, 0.99))} | ${us(pct(r.b, 0.5))} / ${us(pct(r.b, 0.99))} | ${us(pct(r.b, 0.5) - pct(r.a, 0.5))} / ${us(pct(r.b, 0.99) - pct(r.a, 0.99))} |`;

const NOOP: ToolDefinition = {
  name: 'bench.noop',
  description: 'does nothing',
  inputSchema: { type: 'object', properties: { x: { type: 'integer' } }, additionalProperties: false },
  outputSchema: { type: 'object', properties: { x: { type: 'integer' } } },
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  capability: 'none',
  run: async (input) => input,
};

export async function toolsRows(say: (line: string) => void): Promise<void> {
  const n = Number(process.env.TOOLS_BENCH_CALLS ?? 5000);
  const dir = mkdtempSync(join(tmpdir(), 'talon-tools-bench-'));
  const store = await Store.open(dir);
  const audit = new AuditChain(store, DeviceKey.generate(), { verifyAtStart: false });
  await audit.start();
  const approvals = new Approvals({ store, audit, timeoutMs: () => 60_000 });
  await approvals.start();
  const registry = new ToolRegistry({
    audit,
    approvals,
    config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000, callsPerSec: 1_000_000 }),
  });
  const time = kernelTools({
    services: () => undefined,
    publish: async () => {},
    deviceRoot: 'talon/bench',
    store: { scope: () => ({ get: async () => undefined, put: async () => {}, list: async () => [] }) },
    auditQuery: async () => ({ items: [], nextCursor: null }) as never,
    hands: {
      list: () => [],
      status: () => ({}) as never,
      start: async () => ({}) as never,
      stop: async () => ({}) as never,
    },
  }).find((t) => t.name === 'time.now')!;
  registry.register({ ...time, source: 'builtin' });
  registry.register({ ...NOOP, source: 'builtin' });
  const hand: ToolCaller = {
    actor: 'hand:bench',
    hand: 'bench',
    admin: false,
    grants: { ...NO_CAPABILITIES, tools: { allow: ['*'], approve: [] } },
    folder: join(dir, 'files'),
  };
  const ctx: ToolRunContext = {
    caller: hand,
    signal: new AbortController().signal,
    timeoutMs: 30_000,
    maxOutputBytes: 65536,
  };

  say('');
  say('### Tools and the agent loop (issue 16)');
  say('');
  say(
    `| kernel cost of a tool call (${n} calls each) | direct run() p50 / p99 µs | through the registry p50 / p99 µs | added p50 / p99 µs |`,
  );
  say('|---|---|---|---|');
  say(
    row(
      '`time.now`, a Hand caller, audited',
      await compare(
        n,
        () => time.run({}, ctx),
        () => registry.call(hand, 'time.now', {}),
      ),
    ),
  );
  say(
    row(
      'no-op tool with input and output schemas',
      await compare(
        n,
        () => NOOP.run({ x: 1 }, ctx),
        () => registry.call(hand, 'bench.noop', { x: 1 }),
      ),
    ),
  );

  // the same, the audit chain replaced by a no-op: what of the above is the signed, durable audit entry
  const unaudited = new ToolRegistry({
    audit: { record: async () => {} },
    approvals,
    config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000, callsPerSec: 1_000_000 }),
  });
  unaudited.register({ ...NOOP, source: 'builtin' });
  say(
    row(
      'no-op tool, the audit chain replaced by a no-op (the registry alone)',
      await compare(
        n,
        () => NOOP.run({ x: 1 }, ctx),
        () => unaudited.call(hand, 'bench.noop', { x: 1 }),
      ),
    ),
  );

  // from a Hand's worker: the same tool through ctx.tools.call, against a kernel call of the same round trip
  const h = await startHarness(
    [
      {
        name: 'tb',
        fixture: 'tool-bench',
        capabilities: { bus: { publish: ['tool-bench/done'], subscribe: ['tool-bench/go'] } },
      },
    ],
    {
      register: (sup) => {
        sup.registerService('bench.noop', async () => null);
        for (const [m, s] of Object.entries(registry.services((name) => join(dir, 'hands', name))))
          sup.registerService(m, s);
      },
    },
  );
  try {
    await waitFor('tool-bench running', () => h.sup.status('tb').state === 'running', 20_000);
    const done = await h.collect(`${DEVICE_ROOT}/tool-bench/done`);
    const go = async (body: Record<string, unknown>): Promise<number[]> => {
      const before = done.length;
      await h.bus.publish(`${DEVICE_ROOT}/tool-bench/go`, JSON.stringify(body));
      await waitFor('tool-bench answer', () => done.length > before, 300_000);
      return (JSON.parse(done.at(-1)!.payload.toString()) as { ms: number[] }).ms;
    };
    const m = Math.min(n, 2000);
    await go({ n: 200, name: 'time.now', input: {} });
    await go({ n: 200, baseline: true });
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 4; i++) {
      a.push(...(await go({ n: m / 4, baseline: true })));
      b.push(...(await go({ n: m / 4, name: 'time.now', input: {} })));
    }
    say(row(`from a Hand: ctx.tools.call('time.now') vs ctx.call of a no-op service (${m} calls)`, { a, b }));
  } finally {
    await h.close();
  }

  // the agent loop: per step, everything but the model and the tool
  const runs = new RunStore(store);
  await runs.start();
  const STEPS = 8;
  let turn = 0;
  const instant = async (): Promise<ChatResult> => {
    turn++;
    const last = turn % STEPS === 0;
    return {
      provider: 'instant',
      model: 'm',
      text: last ? 'done' : '',
      toolCalls: last ? [] : [{ id: `c${turn}`, name: 'bench.noop', arguments: { x: turn } }],
      usage: { inputTokens: 10, outputTokens: 5 },
      finishReason: last ? 'stop' : 'tool_calls',
    };
  };
  // time spent in the model double and in tool calls (the registry, audit included), measured around them
  let inModel = 0;
  let inTools = 0;
  const timedTools = {
    list: registry.list.bind(registry),
    info: registry.info.bind(registry),
    call: async (...args: Parameters<ToolRegistry['call']>) => {
      const t = performance.now();
      try {
        return await registry.call(...args);
      } finally {
        inTools += performance.now() - t;
      }
    },
  };
  const agent = new AgentRunner({
    chat: async () => {
      const t = performance.now();
      try {
        return await instant();
      } finally {
        inModel += performance.now() - t;
      }
    },
    tools: timedTools,
    runs,
  });
  const RUNS = Math.max(20, Math.round(n / 50));
  const loop: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    inModel = 0;
    inTools = 0;
    const t = performance.now();
    const r = await agent.run(hand, { goal: 'count', tools: ['bench.noop'], maxSteps: STEPS, maxTokens: 100_000 });
    const ms = performance.now() - t;
    if (i < 2) continue; // warm-up
    loop.push((ms - inModel - inTools) / r.steps);
    wall.push(ms / r.steps);
  }
  say('');
  say(
    `| agent loop, per step (${RUNS - 2} runs of ${STEPS} steps; the model double answers at once) | p50 µs | p99 µs |`,
  );
  say('|---|---|---|');
  say(
    `| the loop's own time per step (messages, budgets, repeat detection, the run written to LevelDB), model and tool calls excluded | ${us(pct(loop, 0.5))} | ${us(pct(loop, 0.99))} |`,
  );
  say(
    `| wall time per step, the no-op tool's call through the registry (audited) included | ${us(pct(wall, 0.5))} | ${us(pct(wall, 0.99))} |`,
  );

  await approvals.stop();
  await audit.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

await runIfMain(import.meta.url, toolsRows);
