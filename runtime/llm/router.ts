/**
 * The LLM router: composes providers (./types.ts) into ordered failover chains.
 *
 * - A chain is picked per call: `opts.provider` alone, else `chains[hand]`, `chains[purpose]`,
 *   `chains.default`, else every provider, local ones first. A Hand whose policy says
 *   `cloud: false` (or a call with `allowCloud: false`) only ever reaches local providers.
 * - Each provider has a CircuitBreaker (./breaker.ts). A call walks the chain, skipping open
 *   breakers; when a whole round failed it backs off (exponential, jittered, capped at
 *   retry.maxMs, never before a Retry-After) and walks again, for at most retry.maxAttempts
 *   provider calls in all. Then it fails with every provider's failure in the message.
 * - Every provider stream is wrapped in a first-token timeout and an inter-chunk stall timeout.
 *   An empty answer, a stream that ends without a token or without `done`, a malformed chunk:
 *   LLM_BAD_RESPONSE, which fails over like any provider failure, within the same budget.
 * - Failover is silent only while nothing reached the caller. After output reached it, a
 *   failure throws LLM_PARTIAL (details: partialText, provider, next, cause), unless the caller
 *   passed `onPartial: 'restart'`: then the next provider's whole answer follows a
 *   `{ type: 'failover', restart: true }` marker telling the caller to discard what it showed.
 *   Text is never concatenated across providers.
 * - Tool-call arguments are validated against the tool's JSON Schema: LLM_BAD_REQUEST, no failover.
 * - Token budget per Hand per rolling hour (grants.llm.tokensPerHour); usage and estimated cost
 *   per provider and per Hand; every call audited as `llm.chat` without the prompt text
 *   unless `auditPrompts`.
 */
import type { ValidateFunction } from 'ajv';
import { createAjv } from '../core/ajv.ts';
import type { Audit, AuditDecision } from '../audit/types.ts';
import type { Clock, Random } from '../core/clock.ts';
import { TalonError, type ErrorCode } from '../core/errors.ts';
import type { HandCaller, KernelService } from '../supervisor/types.ts';
import { CircuitBreaker, type BreakerOptions, type BreakerState } from './breaker.ts';
import type { ChatChunk, ChatRequest, ChatResult, LlmProvider, ToolCall, ToolSpec, Usage } from './types.ts';

export interface RetryOptions {
  /** provider calls per router call, over all rounds of the chain (≥ 1) */
  maxAttempts: number;
  /** backoff after the first failed round, doubled each round */
  baseMs: number;
  /** cap of one backoff; a provider whose Retry-After is further away than this is given up on */
  maxMs: number;
  /** 0..1: the backoff is scaled by (1 - jitter × random) */
  jitter: number;
}

export interface RouterConfig {
  providers: LlmProvider[];
  /** purpose or Hand name → ordered provider names; `default` for the rest */
  chains: Record<string, string[]>;
  /** per Hand: `cloud: false` keeps its data on the device */
  policies?: Record<string, { cloud: boolean }>;
  retry: RetryOptions;
  timeouts: {
    /** from the request to the first text or tool call of a stream */
    firstTokenMs: number;
    /** between two chunks of a stream once it started */
    stallMs: number;
    /** a whole non-streaming chat() call (default: firstTokenMs + 60 × stallMs) */
    chatMs?: number;
  };
  /** USD per million tokens, for the cost estimate */
  prices?: Record<string, { inputPerMTok: number; outputPerMTok: number }>;
  /** write the messages into the audit entry (off by default: prompts may be private) */
  auditPrompts?: boolean;
  breaker?: Partial<BreakerOptions>;
}

export interface RouterDeps {
  audit: Audit;
  clock: Clock;
  random: Random;
}

export interface CallOptions {
  /** the Hand calling: picks its chain and policy, and its budget applies */
  hand?: string;
  /** picks `chains[purpose]` when the Hand has no chain of its own */
  purpose?: string;
  /** false: local providers only for this call (a Hand's `cloud: false` policy cannot be lifted) */
  allowCloud?: boolean;
  /** this provider only (CLI `--provider`, the admin's chat page) */
  provider?: string;
  /** the Hand's grants.llm.tokensPerHour; no budget when absent */
  tokensPerHour?: number;
  /** audit actor; default `hand:<name>` or `kernel` */
  actor?: string;
  /** streams: what to do when a provider fails after output reached the caller (default 'error') */
  onPartial?: 'error' | 'restart';
}

/** the caller must discard `partialText` it already showed: the whole answer from `to` follows */
export interface FailoverChunk {
  type: 'failover';
  restart: true;
  from: string;
  to: string;
  partialText: string;
}
export type RouterChunk = ChatChunk | FailoverChunk;

export interface ProviderStatus {
  name: string;
  kind: string;
  local: boolean;
  state: BreakerState;
  consecutiveFailures: number;
  /** ms epoch before which the breaker refuses calls */
  retryAt: number | null;
  lastError: { code: ErrorCode; message: string; at: number } | null;
  /** p50 of the last 100 successful calls, whole call (chat) or to the first token (stream); null before any */
  p50LatencyMs: number | null;
  calls: number;
  failures: number;
}

export interface UsageTotals {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

interface Failure {
  provider: string;
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
  skipped?: boolean;
}

const HOUR = 3_600_000;
const LATENCY_WINDOW = 100;

const ChatArgsSchema = {
  type: 'object',
  required: ['messages'],
  additionalProperties: false,
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 200 },
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: {
        type: 'object',
        required: ['role', 'content'],
        additionalProperties: false,
        properties: {
          role: { enum: ['system', 'user', 'assistant', 'tool'] },
          content: { type: 'string', maxLength: 1_000_000 },
          toolCallId: { type: 'string', maxLength: 200 },
          toolCalls: {
            type: 'array',
            maxItems: 100,
            items: {
              type: 'object',
              required: ['id', 'name', 'arguments'],
              properties: { id: { type: 'string' }, name: { type: 'string' }, arguments: { type: 'object' } },
            },
          },
        },
      },
    },
    tools: {
      type: 'array',
      maxItems: 128,
      items: {
        type: 'object',
        required: ['name', 'description', 'parameters'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 64 },
          description: { type: 'string', maxLength: 4096 },
          parameters: { type: 'object' },
        },
      },
    },
    jsonSchema: { type: 'object' },
    maxTokens: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
  },
} as const;

const CallOptsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { purpose: { type: 'string', maxLength: 100 }, allowCloud: { type: 'boolean' } },
} as const;

class Stats {
  calls = 0;
  failures = 0;
  latencies: number[] = [];
  #next = 0;
  addLatency(ms: number): void {
    if (this.latencies.length < LATENCY_WINDOW) this.latencies.push(ms);
    else this.latencies[this.#next] = ms;
    this.#next = (this.#next + 1) % LATENCY_WINDOW;
  }
  p50(): number | null {
    if (!this.latencies.length) return null;
    const s = [...this.latencies].sort((a, b) => a - b);
    return s[Math.floor((s.length - 1) / 2)]!;
  }
}

const emptyTotals = (): UsageTotals => ({ calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 });

/** a rough token count: ~4 characters a token */
export function estimateTokens(req: Pick<ChatRequest, 'messages' | 'tools'>): number {
  let chars = 0;
  for (const m of req.messages) chars += m.content.length + 8;
  for (const t of req.tools ?? []) chars += t.name.length + t.description.length + JSON.stringify(t.parameters).length;
  return Math.ceil(chars / 4);
}

const errInfo = (e: TalonError): { code: ErrorCode; message: string } => ({ code: e.code, message: e.message });

export class LlmRouter {
  readonly #cfg: RouterConfig;
  readonly #audit: Audit;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #providers = new Map<string, LlmProvider>();
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly #stats = new Map<string, Stats>();
  readonly #providerUsage = new Map<string, UsageTotals>();
  readonly #handUsage = new Map<string, UsageTotals>();
  /** per Hand: tokens charged in the last hour (estimates reserved at the start, actuals at the end) */
  readonly #window = new Map<string, Array<{ at: number; tokens: number }>>();
  readonly #ajv = createAjv('check');
  readonly #toolValidators = new Map<string, ValidateFunction>();
  readonly #checkArgs: ValidateFunction;
  readonly #checkOpts: ValidateFunction;

  constructor(cfg: RouterConfig, deps: RouterDeps) {
    this.#cfg = cfg;
    this.#audit = deps.audit;
    this.#clock = deps.clock;
    this.#random = deps.random;
    if (!Number.isInteger(cfg.retry.maxAttempts) || cfg.retry.maxAttempts < 1) {
      throw new TalonError(
        'CONFIG_INVALID',
        `llm retry.maxAttempts must be an integer ≥ 1, not ${cfg.retry.maxAttempts}`,
      );
    }
    for (const p of cfg.providers) {
      if (this.#providers.has(p.name))
        throw new TalonError('CONFIG_INVALID', `two LLM providers are named "${p.name}"`);
      this.#providers.set(p.name, p);
      this.#breakers.set(p.name, new CircuitBreaker(cfg.breaker, deps.clock, deps.random));
      this.#stats.set(p.name, new Stats());
      this.#providerUsage.set(p.name, emptyTotals());
    }
    for (const [key, chain] of Object.entries(cfg.chains)) {
      if (!chain.length) throw new TalonError('CONFIG_INVALID', `llm chain "${key}" is empty`);
      for (const name of chain) {
        if (!this.#providers.has(name)) {
          throw new TalonError(
            'CONFIG_INVALID',
            `llm chain "${key}" names provider "${name}", which is not configured (configured: ${this.#names()})`,
          );
        }
      }
    }
    this.#checkArgs = this.#ajv.compile(ChatArgsSchema);
    this.#checkOpts = this.#ajv.compile(CallOptsSchema);
  }

  /** one answer, walking the chain until a provider gives one */
  async chat(req: ChatRequest, opts: CallOptions = {}): Promise<ChatResult> {
    const call = this.#begin(req, opts, false);
    let result: ChatResult | undefined;
    let failure: TalonError | undefined;
    try {
      call.start();
      const walk = new Walk(this, call);
      for (let p = await walk.next(); p; p = await walk.next()) {
        const t0 = this.#clock.now();
        const ac = call.attemptController();
        try {
          const r = await this.#withTimeout(
            p.chat({ ...call.req, signal: ac.signal }),
            this.#chatMs(),
            ac,
            p.name,
            'no answer',
          );
          const res = this.#checkResult(r, p, call.req);
          this.#providerOk(p, this.#clock.now() - t0);
          this.#validateTools(res.toolCalls, call.req.tools, p.name);
          result = res;
          break;
        } catch (err) {
          this.#attemptFailed(call, walk, p, err);
        } finally {
          call.endAttempt(ac);
        }
      }
      if (!result) throw walk.exhausted();
      return result;
    } catch (err) {
      failure = TalonError.from(err);
      throw failure;
    } finally {
      await this.#finish(call, result, failure);
    }
  }

  /**
   * Embeddings from the first provider of the call's chain that embeds (local ones first when no chain
   * is configured), under the Hand's budget (about 4 characters a token) and its cloud policy. A provider
   * that fails is skipped for the next; none that embeds → LLM_UNAVAILABLE naming the chain.
   */
  async embed(
    input: string[],
    opts: CallOptions & { model?: string } = {},
  ): Promise<{ provider: string; vectors: number[][] }> {
    const chain = this.#chain(opts).filter((p) => typeof p.embed === 'function');
    if (!chain.length)
      throw new TalonError(
        'LLM_UNAVAILABLE',
        `no configured LLM provider makes embeddings (configured: ${this.#names()})`,
      );
    const estimate = input.reduce((n, t) => n + Math.ceil(t.length / 4), 0);
    if (opts.tokensPerHour !== undefined && opts.hand !== undefined) {
      const used = this.#used(opts.hand);
      if (estimate > opts.tokensPerHour - used)
        throw new TalonError(
          'LLM_BUDGET',
          `Hand "${opts.hand}" has used ${used} of its ${opts.tokensPerHour} LLM tokens this hour; embedding this is about ${estimate} more`,
          { details: { tokensPerHour: opts.tokensPerHour, used, estimate } },
        );
      this.#windowOf(opts.hand).push({ at: this.#clock.now(), tokens: estimate });
    }
    let last: TalonError | undefined;
    for (const p of chain) {
      if (!this.breaker(p.name).acquire()) continue;
      const t0 = this.#clock.now();
      try {
        const vectors = await p.embed!(input, opts.model);
        this.#providerOk(p, this.#clock.now() - t0);
        return { provider: p.name, vectors };
      } catch (err) {
        last = TalonError.from(err);
        this.breaker(p.name).failure(last);
        this.#providerFailed(p, last);
      }
    }
    throw (
      last ?? new TalonError('LLM_UNAVAILABLE', 'every provider that makes embeddings is cooling down after failures')
    );
  }

  /** USD for `usage` on `provider` at its configured price (`prices`), undefined when it has none */
  costOf(provider: string, usage: { inputTokens: number; outputTokens: number }): number | undefined {
    const price = this.#cfg.prices?.[provider];
    return price
      ? (usage.inputTokens * price.inputPerMTok + usage.outputTokens * price.outputPerMTok) / 1e6
      : undefined;
  }

  /** a streamed answer; see the file comment for failover and FailoverChunk */
  stream(req: ChatRequest, opts: CallOptions = {}): AsyncIterable<RouterChunk> {
    // checks that fail before anything is streamed throw on the first next()
    return { [Symbol.asyncIterator]: () => this.#stream(req, opts) };
  }

  async *#stream(req: ChatRequest, opts: CallOptions): AsyncGenerator<RouterChunk, void, undefined> {
    const call = this.#begin(req, opts, true);
    let result: ChatResult | undefined;
    let failure: TalonError | undefined;
    /** what the caller has been shown and not told to discard */
    let shown: { from: string; text: string; toolCalls: ToolCall[] } | null = null;
    try {
      call.start();
      const walk = new Walk(this, call);
      for (let p = await walk.next(); p; p = await walk.next()) {
        const t0 = this.#clock.now();
        const ac = call.attemptController();
        const it = this.#timed(p, call.req, ac);
        let text = '';
        const toolCalls: ToolCall[] = [];
        let first = true;
        try {
          for (;;) {
            const r = await it.next();
            if (r.done) break;
            const chunk = r.value;
            if (chunk.type === 'done') {
              if (first) this.#stats.get(p.name)!.addLatency(this.#clock.now() - t0);
              const res = this.#checkResult(
                chunk.result,
                p,
                call.req,
                text || toolCalls.length ? { text, toolCalls } : undefined,
              );
              this.#providerOk(p, null);
              this.#validateTools(
                res.toolCalls.filter((c) => !toolCalls.some((t) => t.id === c.id)),
                call.req.tools,
                p.name,
              );
              if (first) {
                // a provider that answered only in `done`: hand its text over as one chunk
                if (shown)
                  yield { type: 'failover', restart: true, from: shown.from, to: p.name, partialText: shown.text };
                shown = { from: p.name, text: res.text, toolCalls: res.toolCalls };
                if (res.text) yield { type: 'text', text: res.text };
              }
              result = res;
              yield { type: 'done', result: res };
              return;
            }
            if (chunk.type === 'tool_call') this.#validateTools([chunk.call], call.req.tools, p.name);
            if (first) {
              first = false;
              this.#stats.get(p.name)!.addLatency(this.#clock.now() - t0);
              if (shown) {
                yield { type: 'failover', restart: true, from: shown.from, to: p.name, partialText: shown.text };
              }
              shown = { from: p.name, text: '', toolCalls: [] };
            }
            if (chunk.type === 'text') {
              text += chunk.text;
              shown!.text = text;
            } else {
              toolCalls.push(chunk.call);
              shown!.toolCalls = toolCalls;
            }
            yield chunk;
          }
          throw new TalonError(
            'LLM_BAD_RESPONSE',
            `${p.name}: the stream ended ${first ? 'without a token' : 'without its final chunk'}`,
          );
        } catch (err) {
          const e = TalonError.from(err);
          if (first || e.code === 'LLM_BAD_REQUEST' || call.aborted()) {
            this.#attemptFailed(call, walk, p, e);
            continue;
          }
          // output from this provider reached the caller
          walk.record(p, e);
          this.#providerFailed(p, e);
          call.outputTokens += Math.ceil(text.length / 4);
          if (call.opts.onPartial !== 'restart') {
            throw new TalonError(
              'LLM_PARTIAL',
              `${p.name} failed after part of its answer was streamed (${e.code}: ${e.message}); call again with onPartial 'restart' to get a whole answer from ${walk.peek() ?? 'the next provider once one is available'}`,
              {
                details: {
                  provider: p.name,
                  partialText: text,
                  partialToolCalls: toolCalls,
                  next: walk.peek(),
                  cause: errInfo(e),
                },
                cause: e,
              },
            );
          }
          // restart: the next provider's first chunk is preceded by the failover marker
        } finally {
          call.endAttempt(ac);
          it.return(undefined).catch(() => {});
        }
      }
      const e = walk.exhausted();
      if (shown && (shown.text || shown.toolCalls.length)) {
        throw new TalonError('LLM_PARTIAL', `${e.message}; part of an answer from ${shown.from} was streamed before`, {
          details: {
            provider: shown.from,
            partialText: shown.text,
            partialToolCalls: shown.toolCalls,
            next: null,
            cause: errInfo(e),
            failures: (e.details as { failures: unknown }).failures,
          },
        });
      }
      throw e;
    } catch (err) {
      failure = TalonError.from(err);
      throw failure;
    } finally {
      // neither a result nor an error: the caller stopped reading (break, return())
      const cancelled = !result && !failure;
      call.cancel();
      await this.#finish(call, result, failure, cancelled);
    }
  }

  /** per provider: breaker, last error, latency, counts */
  status(): ProviderStatus[] {
    return [...this.#providers.values()].map((p) => {
      const b = this.#breakers.get(p.name)!.snapshot();
      const s = this.#stats.get(p.name)!;
      return {
        name: p.name,
        kind: p.kind,
        local: p.local,
        state: b.state,
        consecutiveFailures: b.consecutiveFailures,
        retryAt: b.retryAt,
        lastError: b.lastError,
        p50LatencyMs: s.p50(),
        calls: s.calls,
        failures: s.failures,
      };
    });
  }

  /** tokens and estimated cost since start, per provider and per Hand */
  usage(): { providers: Record<string, UsageTotals>; hands: Record<string, UsageTotals> } {
    const copy = (m: Map<string, UsageTotals>): Record<string, UsageTotals> =>
      Object.fromEntries([...m].map(([k, v]) => [k, { ...v }]));
    return { providers: copy(this.#providerUsage), hands: copy(this.#handUsage) };
  }

  /** a Hand's rolling-hour budget */
  budget(hand: string, tokensPerHour: number): { tokensPerHour: number; used: number; remaining: number } {
    const used = this.#used(hand);
    return { tokensPerHour, used, remaining: Math.max(0, tokensPerHour - used) };
  }

  /** the kernel services Hands reach through ctx.call */
  services(): Record<string, KernelService> {
    const grant = (hand: HandCaller, method: string): { tokensPerHour: number } => {
      const llm = hand.grants.llm;
      if (!llm) {
        const e = new TalonError(
          'CAPABILITY_DENIED',
          `Hand "${hand.name}" may not use the LLM: its grants have no llm capability (add llm: { tokensPerHour: … } to its capabilities)`,
        );
        void this.#audit
          .record({
            actor: `hand:${hand.name}`,
            action: method,
            subject: 'llm',
            decision: 'deny',
            detail: { error: errInfo(e) },
          })
          .catch(() => {});
        throw e;
      }
      return llm;
    };
    return {
      'llm.chat': async (hand: HandCaller, args: unknown[]) => {
        const llm = grant(hand, 'llm.chat');
        const [req, opts] = args;
        if (!this.#checkArgs(req)) {
          throw new TalonError(
            'LLM_BAD_REQUEST',
            `llm.chat needs a request { messages: [{ role, content }], … }: ${this.#ajv.errorsText(this.#checkArgs.errors, { dataVar: 'request' })}`,
          );
        }
        if (opts !== undefined && !this.#checkOpts(opts)) {
          throw new TalonError(
            'LLM_BAD_REQUEST',
            `llm.chat options may be { purpose?, allowCloud? }: ${this.#ajv.errorsText(this.#checkOpts.errors, { dataVar: 'options' })}`,
          );
        }
        const o = (opts ?? {}) as { purpose?: string; allowCloud?: boolean };
        return this.chat(req as ChatRequest, {
          hand: hand.name,
          purpose: o.purpose,
          allowCloud: o.allowCloud,
          tokensPerHour: llm.tokensPerHour,
        });
      },
      'llm.budget': async (hand: HandCaller) => this.budget(hand.name, grant(hand, 'llm.budget').tokensPerHour),
    };
  }

  // ---- internals shared with Walk ----

  /** @internal */ breaker(name: string): CircuitBreaker {
    return this.#breakers.get(name)!;
  }
  /** @internal */ get retry(): RetryOptions {
    return this.#cfg.retry;
  }
  /** @internal */ get clock(): Clock {
    return this.#clock;
  }
  /** @internal */ get random(): Random {
    return this.#random;
  }

  #names(): string {
    return [...this.#providers.keys()].join(', ') || 'none';
  }

  #chatMs(): number {
    return this.#cfg.timeouts.chatMs ?? this.#cfg.timeouts.firstTokenMs + 60 * this.#cfg.timeouts.stallMs;
  }

  /** checks that need no provider: chain, policy, tools, budget; a refusal is thrown by call.start() (so it is audited) */
  #begin(req: ChatRequest, opts: CallOptions, stream: boolean): Call {
    const call = new Call(this.#clock, req, opts, stream);
    try {
      if (!req || !Array.isArray(req.messages) || !req.messages.length)
        throw new TalonError('LLM_BAD_REQUEST', 'a chat request needs at least one message');
      call.chain = this.#chain(opts);
      for (const t of req.tools ?? []) this.#toolValidator(t);
    } catch (err) {
      call.denied = TalonError.from(err);
      return call;
    }
    const tokensPerHour = opts.tokensPerHour;
    if (tokensPerHour !== undefined && opts.hand !== undefined) {
      const used = this.#used(opts.hand);
      const remaining = tokensPerHour - used;
      if (call.estimate >= remaining) {
        call.denied = new TalonError(
          'LLM_BUDGET',
          `Hand "${opts.hand}" has used ${used} of its ${tokensPerHour} LLM tokens this hour and this prompt is about ${call.estimate} tokens; try again later or raise grants.llm.tokensPerHour`,
          {
            details: {
              tokensPerHour,
              used,
              estimate: call.estimate,
              retryAfterMs: this.#budgetFreesAt(opts.hand, call.estimate - remaining + 1),
            },
          },
        );
      } else {
        // never let the answer run past the budget
        const room = remaining - call.estimate;
        if (call.req.maxTokens === undefined || call.req.maxTokens > room) call.req = { ...call.req, maxTokens: room };
        call.reservation = { at: this.#clock.now(), tokens: call.estimate };
        this.#windowOf(opts.hand).push(call.reservation);
      }
    }
    return call;
  }

  #chain(opts: CallOptions): LlmProvider[] {
    const policyCloud = opts.hand !== undefined ? (this.#cfg.policies?.[opts.hand]?.cloud ?? true) : true;
    const cloudOk = policyCloud && opts.allowCloud !== false;
    const why = !policyCloud
      ? `Hand "${opts.hand}" is not allowed to send data off the device (policy cloud: false)`
      : 'this call does not allow cloud providers';
    if (opts.provider !== undefined) {
      const p = this.#providers.get(opts.provider);
      if (!p)
        throw new TalonError(
          'LLM_BAD_REQUEST',
          `there is no LLM provider "${opts.provider.slice(0, 80)}" (configured: ${this.#names()})`,
        );
      if (!p.local && !cloudOk) throw new TalonError('CAPABILITY_DENIED', `${p.name} is a cloud provider and ${why}`);
      return [p];
    }
    const names =
      (opts.hand !== undefined ? this.#cfg.chains[opts.hand] : undefined) ??
      (opts.purpose !== undefined ? this.#cfg.chains[opts.purpose] : undefined) ??
      this.#cfg.chains.default ??
      [...this.#providers.values()].sort((a, b) => Number(b.local) - Number(a.local)).map((p) => p.name);
    const chain = names.map((n) => this.#providers.get(n)!).filter((p) => cloudOk || p.local);
    if (!chain.length) {
      if (!names.length) throw new TalonError('LLM_UNAVAILABLE', 'no LLM provider is configured');
      throw new TalonError('CAPABILITY_DENIED', `no local LLM provider in the chain (${names.join(' → ')}) and ${why}`);
    }
    return chain;
  }

  #windowOf(hand: string): Array<{ at: number; tokens: number }> {
    let w = this.#window.get(hand);
    if (!w) this.#window.set(hand, (w = []));
    const cutoff = this.#clock.now() - HOUR;
    while (w.length && w[0]!.at <= cutoff) w.shift();
    return w;
  }

  #used(hand: string): number {
    let sum = 0;
    for (const e of this.#windowOf(hand)) sum += e.tokens;
    return sum;
  }

  /** ms until enough of the window expired to free `need` tokens */
  #budgetFreesAt(hand: string, need: number): number {
    let freed = 0;
    for (const e of this.#windowOf(hand)) {
      freed += e.tokens;
      if (freed >= need) return Math.max(0, e.at + HOUR - this.#clock.now());
    }
    return HOUR;
  }

  #toolValidator(t: ToolSpec): ValidateFunction {
    const key = JSON.stringify(t.parameters);
    let v = this.#toolValidators.get(key);
    if (!v) {
      try {
        v = this.#ajv.compile(t.parameters);
      } catch (err) {
        throw new TalonError(
          'LLM_BAD_REQUEST',
          `the parameters of tool "${t.name}" are not a valid JSON Schema: ${(err as Error).message}`,
        );
      }
      if (this.#toolValidators.size >= 256) this.#toolValidators.delete(this.#toolValidators.keys().next().value!);
      this.#toolValidators.set(key, v);
    }
    return v;
  }

  #validateTools(calls: ToolCall[], tools: ToolSpec[] | undefined, provider: string): void {
    for (const c of calls) {
      const spec = tools?.find((t) => t.name === c.name);
      if (!spec) {
        throw new TalonError(
          'LLM_BAD_REQUEST',
          `${provider} called tool "${String(c.name).slice(0, 64)}", which the request did not offer (offered: ${tools?.map((t) => t.name).join(', ') || 'none'})`,
          { details: { provider, toolCall: c } },
        );
      }
      const v = this.#toolValidator(spec);
      if (!v(c.arguments)) {
        throw new TalonError(
          'LLM_BAD_REQUEST',
          `${provider} called tool "${c.name}" with arguments that fail its schema: ${this.#ajv.errorsText(v.errors, { dataVar: 'arguments' })}`,
          {
            details: { provider, toolCall: c, errors: v.errors },
          },
        );
      }
    }
  }

  /** a provider's ChatResult, checked; `streamed` is what its chunks carried */
  #checkResult(
    r: unknown,
    p: LlmProvider,
    req: ChatRequest,
    streamed?: { text: string; toolCalls: ToolCall[] },
  ): ChatResult {
    const res = r as Partial<ChatResult> | null;
    if (
      !res ||
      typeof res !== 'object' ||
      typeof res.text !== 'string' ||
      (res.toolCalls !== undefined && !Array.isArray(res.toolCalls))
    ) {
      throw new TalonError('LLM_BAD_RESPONSE', `${p.name} returned something that is not a chat result`);
    }
    const toolCalls = res.toolCalls ?? [];
    for (const c of toolCalls) {
      if (
        !c ||
        typeof c.name !== 'string' ||
        typeof c.arguments !== 'object' ||
        c.arguments === null ||
        Array.isArray(c.arguments)
      ) {
        throw new TalonError('LLM_BAD_RESPONSE', `${p.name} returned a malformed tool call`);
      }
    }
    const text = streamed ? streamed.text || res.text : res.text;
    const calls = streamed?.toolCalls.length
      ? [...streamed.toolCalls, ...toolCalls.filter((c) => !streamed.toolCalls.some((s) => s.id === c.id))]
      : toolCalls;
    if (!text && !calls.length) throw new TalonError('LLM_BAD_RESPONSE', `${p.name} returned an empty answer`);
    const u = res.usage;
    const usage: Usage =
      u &&
      Number.isFinite(u.inputTokens) &&
      Number.isFinite(u.outputTokens) &&
      u.inputTokens >= 0 &&
      u.outputTokens >= 0
        ? { inputTokens: u.inputTokens, outputTokens: u.outputTokens }
        : { inputTokens: estimateTokens(req), outputTokens: Math.ceil(text.length / 4) };
    return {
      provider: p.name,
      model: typeof res.model === 'string' && res.model ? res.model : (req.model ?? 'default'),
      text,
      toolCalls: calls,
      usage,
      finishReason: res.finishReason ?? (calls.length ? 'tool_calls' : 'stop'),
    };
  }

  /** a provider stream under the first-token and stall timeouts, with malformed chunks rejected */
  async *#timed(p: LlmProvider, req: ChatRequest, ac: AbortController): AsyncGenerator<ChatChunk, void, undefined> {
    let source: AsyncIterator<ChatChunk>;
    try {
      source = p.stream({ ...req, signal: ac.signal })[Symbol.asyncIterator]();
    } catch (err) {
      throw TalonError.from(err);
    }
    let started = false;
    try {
      for (;;) {
        const ms = started ? this.#cfg.timeouts.stallMs : this.#cfg.timeouts.firstTokenMs;
        const r = await this.#withTimeout(
          source.next(),
          ms,
          ac,
          p.name,
          started ? 'the stream stalled: no chunk' : 'no first token',
        );
        if (r.done) return;
        const c = r.value as ChatChunk | null;
        if (!c || typeof c !== 'object')
          throw new TalonError('LLM_BAD_RESPONSE', `${p.name} streamed a malformed chunk`);
        if (c.type === 'text') {
          if (typeof c.text !== 'string')
            throw new TalonError('LLM_BAD_RESPONSE', `${p.name} streamed a text chunk without text`);
          if (!c.text) continue;
        } else if (c.type === 'tool_call') {
          const call = c.call as Partial<ToolCall> | undefined;
          if (
            !call ||
            typeof call.name !== 'string' ||
            typeof call.arguments !== 'object' ||
            call.arguments === null ||
            Array.isArray(call.arguments)
          ) {
            throw new TalonError('LLM_BAD_RESPONSE', `${p.name} streamed a malformed tool call`);
          }
        } else if (c.type !== 'done') {
          throw new TalonError(
            'LLM_BAD_RESPONSE',
            `${p.name} streamed a chunk of unknown type "${String((c as { type?: unknown }).type).slice(0, 40)}"`,
          );
        }
        started = true;
        yield c;
        if (c.type === 'done') return;
      }
    } finally {
      if (source.return)
        Promise.resolve()
          .then(() => source.return!())
          .catch(() => {});
    }
  }

  #withTimeout<T>(work: Promise<T>, ms: number, ac: AbortController, provider: string, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const h = this.#clock.setTimeout(() => {
        const e = new TalonError('LLM_TIMEOUT', `${provider}: ${what} within ${ms} ms`);
        ac.abort(e);
        reject(e);
      }, ms);
      const onAbort = (): void => {
        this.#clock.clearTimeout(h);
        reject(
          ac.signal.reason instanceof TalonError
            ? ac.signal.reason
            : new TalonError('LLM_UNAVAILABLE', `${provider}: the call was aborted`),
        );
      };
      if (ac.signal.aborted) return onAbort();
      ac.signal.addEventListener('abort', onAbort, { once: true });
      work.then(
        (v) => {
          this.#clock.clearTimeout(h);
          ac.signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (err) => {
          this.#clock.clearTimeout(h);
          ac.signal.removeEventListener('abort', onAbort);
          reject(TalonError.from(err));
        },
      );
    });
  }

  #providerOk(p: LlmProvider, latencyMs: number | null): void {
    this.#breakers.get(p.name)!.success();
    const s = this.#stats.get(p.name)!;
    s.calls++;
    if (latencyMs !== null) s.addLatency(latencyMs);
  }

  #providerFailed(p: LlmProvider, e: TalonError): void {
    const s = this.#stats.get(p.name)!;
    s.calls++;
    s.failures++;
    this.#breakers.get(p.name)!.failure(e);
  }

  /** a failed attempt before output reached the caller: fail over, or stop for what failover cannot fix */
  #attemptFailed(call: Call, walk: Walk, p: LlmProvider, err: unknown): void {
    const e = TalonError.from(err);
    if (call.aborted()) {
      this.#breakers.get(p.name)!.release();
      throw call.abortError();
    }
    if (e.code === 'LLM_BAD_REQUEST') {
      // the provider is fine; the request (or the model's tool call) is not: no failover
      this.#breakers.get(p.name)!.release();
      this.#stats.get(p.name)!.calls++;
      throw e;
    }
    this.#providerFailed(p, e);
    walk.record(p, e);
  }

  async #finish(
    call: Call,
    result: ChatResult | undefined,
    failure: TalonError | undefined,
    cancelled = false,
  ): Promise<void> {
    const { hand, purpose } = call.opts;
    const latencyMs = this.#clock.now() - call.t0;
    // a failed call is charged only for what a provider demonstrably processed (it streamed output)
    const input = result?.usage.inputTokens ?? (call.outputTokens > 0 ? call.estimate : 0);
    const output = result?.usage.outputTokens ?? call.outputTokens;
    const providerName = result?.provider ?? call.lastProvider;
    const price = providerName ? this.#cfg.prices?.[providerName] : undefined;
    const costUsd = price ? (input * price.inputPerMTok + output * price.outputPerMTok) / 1e6 : 0;
    if (call.reservation) call.reservation.tokens = input + output;
    if (call.attempts > 0 && providerName) {
      const add = (t: UsageTotals): void => {
        t.calls++;
        t.inputTokens += input;
        t.outputTokens += output;
        t.costUsd += costUsd;
      };
      add(this.#providerUsage.get(providerName)!);
      if (hand !== undefined) {
        let h = this.#handUsage.get(hand);
        if (!h) this.#handUsage.set(hand, (h = emptyTotals()));
        add(h);
      }
    }
    const decision: AuditDecision = result
      ? 'ok'
      : cancelled
        ? 'info'
        : failure?.code === 'LLM_BUDGET' || failure?.code === 'CAPABILITY_DENIED'
          ? 'deny'
          : 'error';
    const detail: Record<string, unknown> = {
      tokens: { input, output },
      latencyMs,
      attempts: call.attempts,
      failovers: call.failovers,
      stream: call.stream,
    };
    if (costUsd) detail.costUsd = costUsd;
    if (purpose !== undefined) detail.purpose = purpose;
    if (cancelled) detail.cancelled = true;
    else if (failure) detail.error = errInfo(failure);
    if (this.#cfg.auditPrompts) detail.messages = call.req.messages.map((m) => ({ role: m.role, content: m.content }));
    await this.#audit.record({
      actor: call.opts.actor ?? (hand !== undefined ? `hand:${hand}` : 'kernel'),
      action: 'llm.chat',
      subject: result
        ? `${result.provider}/${result.model}`
        : providerName
          ? `${providerName}/${call.req.model ?? 'default'}`
          : 'none',
      decision,
      detail,
    });
  }
}

/** one router call in flight */
class Call {
  readonly t0: number;
  readonly opts: CallOptions;
  readonly stream: boolean;
  readonly estimate: number;
  req: ChatRequest;
  chain: LlmProvider[] = [];
  attempts = 0;
  failovers = 0;
  outputTokens = 0;
  lastProvider: string | null = null;
  denied: TalonError | null = null;
  reservation: { at: number; tokens: number } | null = null;
  readonly #callerSignal: AbortSignal | undefined;
  #current: AbortController | null = null;
  #cancelled = false;

  constructor(clock: Clock, req: ChatRequest, opts: CallOptions, stream: boolean) {
    this.t0 = clock.now();
    this.opts = opts;
    this.stream = stream;
    const { signal, ...rest } = req;
    this.req = rest;
    this.#callerSignal = signal;
    this.estimate = Array.isArray(req.messages) ? estimateTokens(req) : 0;
  }

  start(): void {
    if (this.denied) throw this.denied;
    if (this.aborted()) throw this.abortError();
  }

  aborted(): boolean {
    return this.#cancelled || !!this.#callerSignal?.aborted;
  }

  abortError(): TalonError {
    const r: unknown = this.#callerSignal?.reason;
    return r instanceof TalonError ? r : new TalonError('LLM_UNAVAILABLE', 'the LLM call was aborted by its caller');
  }

  /** an AbortController for one provider call, aborted with the caller's signal */
  attemptController(): AbortController {
    const ac = new AbortController();
    const s = this.#callerSignal;
    if (s) {
      if (s.aborted) ac.abort(this.abortError());
      else s.addEventListener('abort', () => ac.abort(this.abortError()), { once: true, signal: ac.signal });
    }
    this.#current = ac;
    return ac;
  }

  endAttempt(ac: AbortController): void {
    if (!ac.signal.aborted) ac.abort(new TalonError('LLM_UNAVAILABLE', 'attempt over'));
    if (this.#current === ac) this.#current = null;
  }

  cancel(): void {
    this.#cancelled = true;
    this.#current?.abort(new TalonError('LLM_UNAVAILABLE', 'the caller stopped reading the stream'));
  }

  get callerSignal(): AbortSignal | undefined {
    return this.#callerSignal;
  }
}

/** walks a call's chain in rounds within the retry budget */
class Walk {
  readonly #router: LlmRouter;
  readonly #call: Call;
  #idx = 0;
  #round = 0;
  readonly #failures = new Map<string, Failure>();
  readonly #log: Failure[] = [];

  constructor(router: LlmRouter, call: Call) {
    this.#router = router;
    this.#call = call;
  }

  /** the next provider to call (its breaker acquired), or null when the budget is spent */
  async next(): Promise<LlmProvider | null> {
    const { retry, clock } = this.#router;
    const chain = this.#call.chain;
    for (;;) {
      if (this.#call.attempts >= retry.maxAttempts) return null;
      if (this.#call.aborted()) throw this.#call.abortError();
      while (this.#idx < chain.length) {
        const p = chain[this.#idx++]!;
        const b = this.#router.breaker(p.name);
        if (!b.acquire()) {
          const at = b.retryAt ?? clock.now();
          const last = b.snapshot().lastError;
          const f: Failure = {
            provider: p.name,
            code: last?.code ?? 'LLM_UNAVAILABLE',
            message: `circuit open until ${new Date(at).toISOString()}${last ? ` after: ${last.message}` : ''}`,
            skipped: true,
          };
          this.#failures.set(p.name, f);
          continue;
        }
        if (this.#call.lastProvider !== null && this.#call.lastProvider !== p.name) this.#call.failovers++;
        this.#call.attempts++;
        this.#call.lastProvider = p.name;
        return p;
      }
      // a whole round failed or was skipped: back off, never before the earliest breaker allows
      this.#idx = 0;
      if (this.#round >= retry.maxAttempts) return null;
      const now = clock.now();
      let earliest = Infinity;
      for (const p of chain) earliest = Math.min(earliest, this.#router.breaker(p.name).retryAt ?? now);
      const backoff =
        Math.min(retry.maxMs, retry.baseMs * 2 ** this.#round) *
        (1 - Math.max(0, Math.min(1, retry.jitter)) * this.#router.random());
      this.#round++;
      const until = Math.max(earliest - now, 0);
      if (until > retry.maxMs) return null;
      await this.#sleep(Math.max(backoff, until));
    }
  }

  record(p: LlmProvider, e: TalonError): void {
    const retryAfterMs = (e.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    const f: Failure = { provider: p.name, code: e.code, message: e.message };
    if (typeof retryAfterMs === 'number') f.retryAfterMs = retryAfterMs;
    this.#failures.set(p.name, f);
    this.#log.push(f);
  }

  /** the provider a restart would go to now, without taking it */
  peek(): string | null {
    const chain = this.#call.chain;
    for (let i = 0; i < chain.length; i++) {
      const p = chain[(this.#idx + i) % chain.length]!;
      if (this.#router.breaker(p.name).available()) return p.name;
    }
    return null;
  }

  /** the error once the budget is spent: every provider's last failure */
  exhausted(): TalonError {
    const failures = this.#call.chain.map(
      (p) =>
        this.#failures.get(p.name) ?? {
          provider: p.name,
          code: 'LLM_UNAVAILABLE' as ErrorCode,
          message: 'not tried: the retry budget was spent',
        },
    );
    const codes = new Set(failures.filter((f) => !f.message.startsWith('not tried')).map((f) => f.code));
    const code: ErrorCode = codes.size === 1 ? [...codes][0]! : 'LLM_UNAVAILABLE';
    const list = failures.map((f) => `${f.provider}: ${f.code} ${f.message}`).join('; ');
    const retryAfters = failures.map((f) => f.retryAfterMs).filter((x): x is number => x !== undefined);
    const details: Record<string, unknown> = { failures, attempts: this.#log };
    if (retryAfters.length) details.retryAfterMs = Math.min(...retryAfters);
    return new TalonError(
      code,
      `every LLM provider failed (${this.#call.attempts} attempt${this.#call.attempts === 1 ? '' : 's'}): ${list}`,
      { details },
    );
  }

  #sleep(ms: number): Promise<void> {
    const { clock } = this.#router;
    const signal = this.#call.callerSignal;
    return new Promise<void>((resolve, reject) => {
      const h = clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clock.clearTimeout(h);
        reject(this.#call.abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
