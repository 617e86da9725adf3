/**
 * A HandContext for the Scheduling Hand's unit tests: an in-memory bus (exact topics and `+`/`#` filters, delivered
 * on the next tick as the kernel would), recorded tool and agent calls, real timers (cancelled by close()).
 */
import type { BusMessageIn, Capabilities, HandContext } from '../../../hands/sdk/types.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { memStore } from '../../helpers/mem-store.ts';

export interface Published {
  topic: string;
  payload: unknown;
  opts: { qos?: 0 | 1 | 2; retain?: boolean } | undefined;
}

function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export interface FakeCtx {
  ctx: HandContext;
  published: Published[];
  toolCalls: Array<{ name: string; input: unknown }>;
  agentRuns: unknown[];
  logs: Array<[string, string]>;
  /** entries the Hand wrote with ctx.audit */
  audits: Array<{ action: string; subject: string; decision: string; detail?: Record<string, unknown> }>;
  /** answers by tool name (a function gets the input; a thrown error rejects) */
  tools: Record<string, (input: Record<string, unknown>) => unknown>;
  agent: (opts: unknown) => unknown;
  /** deliver a message to the subscribers (as the kernel would) */
  deliver(topic: string, payload: unknown): void;
  close(): void;
}

export function fakeCtx(opts: { name?: string; grants?: Partial<Capabilities> } = {}): FakeCtx {
  const name = opts.name ?? 'scheduler';
  const subs = new Set<{ filter: string; fn: (m: BusMessageIn) => void | Promise<void> }>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const f: FakeCtx = {
    ctx: undefined as unknown as HandContext,
    published: [],
    toolCalls: [],
    agentRuns: [],
    logs: [],
    audits: [],
    tools: {},
    agent: () => ({ runId: 'r1', answer: 'ok', text: 'ok', steps: 1, usage: { inputTokens: 1, outputTokens: 1 } }),
    deliver(topic, payload) {
      const text = JSON.stringify(payload);
      const msg: BusMessageIn = { topic, payload: Buffer.from(text), text, json: payload, retain: false };
      for (const s of [...subs]) if (matches(s.filter, topic)) setImmediate(() => void s.fn(msg));
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      subs.clear();
    },
  };
  const log = Object.assign((level: string, msg: string) => void f.logs.push([level, msg]), {
    debug: (m: string) => void f.logs.push(['debug', m]),
    info: (m: string) => void f.logs.push(['info', m]),
    warn: (m: string) => void f.logs.push(['warn', m]),
    error: (m: string) => void f.logs.push(['error', m]),
  });
  const after = (ms: number, fn: () => void | Promise<void>): (() => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      void fn();
    }, ms);
    timers.add(t);
    return () => {
      clearTimeout(t);
      timers.delete(t);
    };
  };
  f.ctx = {
    name,
    deviceId: 'dev1',
    settings: {},
    grants: { ...structuredClone(NO_CAPABILITIES), ...opts.grants },
    audit: async (action: string, subject: string, o?: { decision?: string; detail?: Record<string, unknown> }) => {
      f.audits.push({ action, subject, decision: o?.decision ?? 'ok', ...(o?.detail ? { detail: o.detail } : {}) });
    },
    signal: new AbortController().signal,
    log,
    bus: {
      publish(topic, payload, o) {
        f.published.push({ topic, payload, opts: o });
        f.deliver(topic, payload);
      },
      async subscribe(filter, fn) {
        const s = { filter, fn };
        subs.add(s);
        return async () => void subs.delete(s);
      },
    },
    store: memStore(),
    timers: {
      after,
      every: (ms, fn) => {
        const t = setInterval(() => void fn(), ms);
        return () => clearInterval(t);
      },
    },
    call: async (method: string) => {
      throw new TalonError('NOT_FOUND', `no kernel service ${method}`);
    },
    fetch: async () => {
      throw new TalonError('CAPABILITY_DENIED', 'no network');
    },
    llm: {
      chat: async () => {
        throw new TalonError('CAPABILITY_DENIED', 'no llm');
      },
    },
    tools: {
      list: async () => [],
      call: async (tool: string, input: Record<string, unknown> = {}) => {
        f.toolCalls.push({ name: tool, input });
        const impl = f.tools[tool];
        if (!impl) throw new TalonError('NOT_FOUND', `no tool ${tool}`);
        return { output: (await impl(input)) as never, truncated: false, ms: 1 };
      },
    },
    agent: {
      run: async (o: unknown) => {
        f.agentRuns.push(o);
        return f.agent(o) as never;
      },
    },
  } as HandContext;
  return f;
}
