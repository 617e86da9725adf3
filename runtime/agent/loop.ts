/**
 * The agent loop behind `ctx.agent.run({ goal, tools, … })`: the model gets the goal and the
 * schemas of the tools it is offered; each tool call it makes goes through the tool registry
 * (`Tools.call`: schema, grants, approvals, timeouts, output caps, audit) and its result, cut to
 * a budget, is fed back, until the model answers in text, or a budget ends the run with a typed
 * error that carries the partial transcript (`details: { runId, transcript }`).
 *
 *   ends                                         error
 *   a turn without tool calls                    (the answer)
 *   maxSteps turns without an answer             AGENT_BUDGET
 *   maxTokens (input + output, all turns)        AGENT_BUDGET
 *   deadlineMs (the in-flight call is aborted)   AGENT_DEADLINE
 *   the same tool, same canonical input, 3×      AGENT_LOOP
 *   a second unusable tool call in the run       AGENT_BAD_CALL (the first is fed back: `repair`)
 *   jsonSchema: the answer fails after a repair  AGENT_BAD_CALL
 *   the caller's signal (the Hand stopping)      HAND_STOPPED
 *   the LLM failed (every provider)              its LLM_* code
 *
 * A tool that refuses or fails does not end the run: the model reads `ERROR CODE: message` as the
 * call's result and may correct itself. An unusable call is one that names a tool not offered, or
 * whose arguments are not a JSON object (or not JSON at all: the provider or the router refuses
 * those before the loop sees them; a call whose arguments fail the tool's schema is fed back as
 * TOOL_BAD_INPUT, like the registry's own refusal).
 *
 * jsonSchema: tool turns never carry it. When the model answers in text, the text is parsed and
 * checked (ajv); if it fails, one more turn without tools asks for the answer as JSON with the
 * schema set on the request (a grammar on llama.cpp, response_format remotely) and says what
 * failed. The local llama.cpp provider refuses `jsonSchema` together with `tools` (one grammar
 * per answer), which is why the schema'd answer is asked for in a turn of its own. That turn may
 * go past maxSteps (it is the answer, not more work), not past maxTokens or the deadline.
 *
 * Every run is stored (./runs.ts) when it starts, after every step and at its end.
 */
import { randomBytes } from 'node:crypto';
import type { ValidateFunction } from 'ajv';
import { createAjv, fieldErrors } from '../core/ajv.ts';
import { boundedJson } from '../core/bounded-json.ts';
import { canonicalize } from '../core/canonical.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { TalonError, type ErrorCode } from '../core/errors.ts';
import { raceAbort } from '../core/abort.ts';
import type { ChatMessage, ChatRequest, ChatResult, ToolCall, ToolSpec } from '../llm/types.ts';
import type { HandCaller, KernelService } from '../supervisor/types.ts';
import type { AgentRun, AgentStep, ToolCaller, ToolInfo, Tools } from '../tools/types.ts';
import type { HandAgentRunOptions, HandAgentRunResult } from '../core/hand.ts';
import type { RunStore } from './runs.ts';

/** what ctx.agent.run takes and answers: one declaration, in runtime/core/hand.ts (a Hand's view) */
export type AgentRunOptions = HandAgentRunOptions;
export type AgentRunResult = HandAgentRunResult;

export type AgentChat = (caller: ToolCaller, req: ChatRequest, opts: { purpose: string }) => Promise<ChatResult>;

export interface AgentRunnerDeps {
  /** the router under the caller's grant and token budget (the `llm.chat` kernel service) */
  chat: AgentChat;
  tools: Tools;
  runs: RunStore;
  clock?: Clock;
  newId?: () => string;
  /** USD for one turn's tokens on a provider (the router's `prices`), undefined when it has no price */
  cost?: (provider: string, usage: { inputTokens: number; outputTokens: number }) => number | undefined;
}

/** a step's and a call's durations (fractions of a ms, monotonic); deadlines keep the injected clock */
const stopwatch = (): number => performance.now();

/** the largest answer schema a run takes (it is compiled on the kernel's thread) */
export const MAX_ANSWER_SCHEMA_BYTES = 64 * 1024;

export const AGENT_DEFAULTS = { maxSteps: 8, maxTokens: 8000, deadlineMs: 120_000, maxResultChars: 4000 } as const;
export const AGENT_LIMITS = { maxSteps: 64, deadlineMs: 3_600_000 } as const;
/** the `purpose` the router picks a chain by (`llm.chains.agent`) */
export const AGENT_PURPOSE = 'agent';
/** calls of one tool with one canonical input that end the run */
export const LOOP_REPEATS = 3;

export const DEFAULT_SYSTEM =
  "You work towards the user's goal with the tools you are offered, then answer in plain text without calling a tool. " +
  'The kernel checks every tool call (the input schema, your grants, approvals by a person); a refused or failed call ' +
  'comes back as "ERROR CODE: message": read it, then correct the call or take another way. ' +
  'Do not repeat a call with the same input: it is stopped.';

const OPTIONS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['goal', 'tools'],
  properties: {
    goal: { type: 'string', minLength: 1, maxLength: 32_000 },
    tools: { type: 'array', maxItems: 256, items: { type: 'string', minLength: 1, maxLength: 200 } },
    system: { type: 'string', maxLength: 32_000 },
    maxSteps: { type: 'integer', minimum: 1, maximum: AGENT_LIMITS.maxSteps },
    maxTokens: { type: 'integer', minimum: 1, maximum: 10_000_000 },
    deadlineMs: { type: 'integer', minimum: 1, maximum: AGENT_LIMITS.deadlineMs },
    jsonSchema: { type: 'object' },
    maxResultChars: { type: 'integer', minimum: 64, maximum: 1_000_000 },
  },
} as const;

type Resolved = Required<Omit<AgentRunOptions, 'system' | 'jsonSchema'>> & {
  system: string;
  jsonSchema?: Record<string, unknown>;
};

let lastMs = 0;
let seq = 0;

/** a run id that sorts by time: 9 base-36 digits of ms, a 4-digit sequence, 6 random hex digits */
export function newRunId(now = Date.now()): string {
  if (now === lastMs) seq++;
  else {
    lastMs = now;
    seq = 0;
  }
  return (
    Math.max(0, Math.floor(now)).toString(36).padStart(9, '0') +
    (seq % 36 ** 4).toString(36).padStart(4, '0') +
    randomBytes(3).toString('hex')
  );
}

/** `*` matches any characters (dots included) */
function globRe(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** the call's arguments as text, cut for a message */
const short = (v: unknown, n = 200): string => {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > n ? `${s.slice(0, n)}…` : s;
};

/** a tool's output as the model reads it, cut to `max` characters with a note */
export function feedBack(
  output: unknown,
  max: number,
  registryTruncated = false,
): { text: string; value: unknown; cut: boolean } {
  let text: string;
  try {
    text = typeof output === 'string' ? output : (JSON.stringify(output) ?? 'null');
  } catch {
    text = String(output);
  }
  const note = registryTruncated ? ' [the tool cut its output at its size cap]' : '';
  if (text.length <= max) return { text: text + note, value: output, cut: false };
  const kept = text.slice(0, max);
  return {
    text: `${kept}… [cut: ${max} of ${text.length} characters shown]${note}`,
    value: `${kept}…`,
    cut: true,
  };
}

/** strips one Markdown code fence around a JSON answer */
function unfence(text: string): string {
  const m = /^\s*```[a-zA-Z]*\s*\n([\s\S]*?)\n?```\s*$/.exec(text);
  return (m ? m[1]! : text).trim();
}

/** a tool call the provider or the router refused before it reached the loop */
interface Refused {
  /** `schema`: arguments failing the tool's schema (fed back as TOOL_BAD_INPUT); else unusable */
  kind: 'unknown' | 'schema' | 'unreadable';
  call?: ToolCall;
  message: string;
}

function refusedCall(err: TalonError, offered: Map<string, ToolInfo>): Refused | undefined {
  const d = err.details as { toolCall?: ToolCall } | undefined;
  if (err.code === 'LLM_BAD_REQUEST' && d?.toolCall && typeof d.toolCall.name === 'string') {
    const call = d.toolCall;
    if (!offered.has(call.name)) return { kind: 'unknown', call, message: err.message };
    if (!isObject(call.arguments)) return { kind: 'unreadable', call, message: err.message };
    return { kind: 'schema', call, message: err.message };
  }
  // providers: "tool call NAME: arguments are not valid JSON | not a JSON object" (through the router's failure list too)
  if (/tool call [^:]*: arguments are not (valid JSON|a JSON object)/.test(err.message))
    return { kind: 'unreadable', message: err.message };
  return undefined;
}

export class AgentRunner {
  readonly #chat: AgentChat;
  readonly #tools: Tools;
  readonly #runs: RunStore;
  readonly #clock: Clock;
  readonly #newId: () => string;
  #cost: AgentRunnerDeps['cost'];
  /** compiled at the first run, not at the kernel's start (~20 ms of ajv) */
  #checkOptsFn: ValidateFunction | undefined;

  constructor(deps: AgentRunnerDeps) {
    this.#chat = deps.chat;
    this.#tools = deps.tools;
    this.#runs = deps.runs;
    this.#clock = deps.clock ?? systemClock;
    this.#newId = deps.newId ?? (() => newRunId(this.#clock.now()));
    this.#cost = deps.cost;
  }

  /** `agent.run` for Hands (ctx.agent.run(opts) → ctx.call('agent.run', opts)) */
  services(folderOf: (hand: string) => string): Record<string, KernelService> {
    return {
      'agent.run': async (hand: HandCaller, args: unknown[]) => {
        const caller: ToolCaller = {
          actor: `hand:${hand.name}`,
          hand: hand.name,
          admin: false,
          grants: hand.grants,
          folder: folderOf(hand.name),
        };
        return this.run(caller, args[0] as AgentRunOptions);
      },
    };
  }

  async run(caller: ToolCaller, opts: AgentRunOptions, signal?: AbortSignal): Promise<AgentRunResult> {
    const o = this.#options(opts);
    const offered = this.#resolve(caller, o.tools);
    let check: ValidateFunction | undefined;
    if (o.jsonSchema) {
      // compiled on the kernel's thread from what a Hand sent: bounded first, like everything that crosses over
      if (boundedJson(o.jsonSchema, MAX_ANSWER_SCHEMA_BYTES) === null)
        throw new TalonError(
          'BAD_REQUEST',
          `agent.run: jsonSchema is larger than ${MAX_ANSWER_SCHEMA_BYTES} bytes of JSON (or not JSON)`,
        );
      try {
        // an instance per run: answer schemas are not cached for ever, and two runs' `$id`s never clash
        check = createAjv('check').compile(o.jsonSchema);
      } catch (err) {
        throw new TalonError(
          'BAD_REQUEST',
          `agent.run: jsonSchema is not a valid JSON Schema: ${(err as Error).message}`,
        );
      }
    }
    if (signal?.aborted) throw new TalonError('HAND_STOPPED', 'the caller stopped before the agent run began');

    const startedAt = this.#clock.now();
    const run = await this.#runs.create({
      id: this.#newId(),
      hand: caller.hand ?? caller.actor,
      goal: o.goal,
      startedAt,
    });
    const ac = new AbortController();
    const timer = this.#clock.setTimeout(
      () =>
        ac.abort(
          new TalonError(
            'AGENT_DEADLINE',
            `the agent run passed its deadline of ${o.deadlineMs} ms after ${run.steps.length} step(s); give it a longer deadlineMs or a smaller goal`,
          ),
        ),
      o.deadlineMs,
    );
    const onStop = (): void =>
      ac.abort(new TalonError('HAND_STOPPED', 'the agent run was stopped: its caller went away (the Hand stopping)'));
    signal?.addEventListener('abort', onStop, { once: true });
    try {
      const out = await this.#loop(caller, o, offered, check, run, ac.signal);
      run.state = 'done';
      run.answer = out.answer;
      run.endedAt = this.#clock.now();
      await this.#runs.finish(run);
      return { runId: run.id, answer: out.answer, text: out.text, steps: run.steps.length, usage: { ...run.usage } };
    } catch (err) {
      const cause = ac.signal.aborted && ac.signal.reason instanceof TalonError ? ac.signal.reason : err;
      const e = TalonError.from(cause);
      const base = isObject(e.details) ? e.details : e.details === undefined ? {} : { cause: e.details };
      const typed = new TalonError(e.code, e.message, {
        details: { ...base, runId: run.id, transcript: run.steps },
        cause: err,
      });
      run.state = 'failed';
      run.error = { code: e.code, message: e.message };
      run.endedAt = this.#clock.now();
      await this.#runs.finish(run).catch(() => {});
      throw typed;
    } finally {
      this.#clock.clearTimeout(timer);
      signal?.removeEventListener('abort', onStop);
    }
  }

  #options(opts: AgentRunOptions): Resolved {
    const checkOpts = (this.#checkOptsFn ??= createAjv('check').compile(OPTIONS_SCHEMA));
    if (!checkOpts(opts)) {
      const f = fieldErrors(checkOpts.errors)
        .map((e) => `${e.path} ${e.message}`)
        .join('; ');
      throw new TalonError('BAD_REQUEST', `agent.run options: ${f}`, {
        details: { errors: fieldErrors(checkOpts.errors) },
      });
    }
    return {
      goal: opts.goal,
      tools: opts.tools,
      system: opts.system ?? DEFAULT_SYSTEM,
      maxSteps: opts.maxSteps ?? AGENT_DEFAULTS.maxSteps,
      maxTokens: opts.maxTokens ?? AGENT_DEFAULTS.maxTokens,
      deadlineMs: opts.deadlineMs ?? AGENT_DEFAULTS.deadlineMs,
      maxResultChars: opts.maxResultChars ?? AGENT_DEFAULTS.maxResultChars,
      ...(opts.jsonSchema ? { jsonSchema: opts.jsonSchema } : {}),
    };
  }

  /** the tools the model sees: those named (or globbed) that the caller may call */
  #resolve(caller: ToolCaller, patterns: string[]): Map<string, ToolInfo> {
    const mine = this.#tools.list(caller).filter((t) => t.available !== false);
    const out = new Map<string, ToolInfo>();
    for (const p of patterns) {
      const re = globRe(p);
      const hits = mine.filter((t) => re.test(t.name));
      if (!hits.length) {
        throw new TalonError(
          'BAD_REQUEST',
          `agent.run options: /tools "${p.slice(0, 80)}" matches no tool ${caller.hand ? `Hand "${caller.hand}"` : caller.actor} may call (its tools grant decides; see GET /api/v1/tools)`,
          { details: { errors: [{ path: '/tools', message: `"${p.slice(0, 80)}" matches no tool` }] } },
        );
      }
      for (const t of hits) out.set(t.name, t);
    }
    return out;
  }

  async #loop(
    caller: ToolCaller,
    o: Resolved,
    offered: Map<string, ToolInfo>,
    check: ValidateFunction | undefined,
    run: AgentRun,
    signal: AbortSignal,
  ): Promise<{ answer: unknown; text: string }> {
    const specs: ToolSpec[] = [...offered.values()].map((t) => ({
      name: t.name,
      description: t.description,
      parameters: t.inputSchema,
    }));
    const names = specs.map((s) => s.name).join(', ') || 'none';
    const messages: ChatMessage[] = [
      { role: 'system', content: o.system },
      { role: 'user', content: o.goal },
    ];
    const seen = new Map<string, number>();
    let badCalls = 0;
    const clock = this.#clock;
    const end = (code: ErrorCode, message: string): TalonError => new TalonError(code, message);

    const spent = (): number => run.usage.inputTokens + run.usage.outputTokens;
    const budgetLeft = (): number => {
      const left = o.maxTokens - spent();
      if (left <= 0)
        throw end(
          'AGENT_BUDGET',
          `the agent run used ${spent()} of its ${o.maxTokens} tokens after ${run.steps.length} step(s) without an answer; raise maxTokens or narrow the goal`,
        );
      return left;
    };
    const newStep = (): AgentStep => ({
      index: run.steps.length,
      text: '',
      calls: [],
      usage: { inputTokens: 0, outputTokens: 0 },
      modelMs: 0,
      overheadMs: 0,
    });
    const record = async (step: AgentStep, t0: number, toolMs: number, store = true): Promise<void> => {
      step.overheadMs = Math.max(0, stopwatch() - t0 - step.modelMs - toolMs);
      run.steps.push(step);
      if (store) await this.#runs.update(run);
    };
    const ask = async (req: Omit<ChatRequest, 'signal' | 'messages'>, step: AgentStep): Promise<ChatResult> => {
      const m0 = stopwatch();
      try {
        const res = await raceAbort(
          this.#chat(caller, { ...req, messages: messages.slice(), signal }, { purpose: AGENT_PURPOSE }),
          signal,
        );
        step.text = res.text;
        step.usage = { inputTokens: res.usage.inputTokens, outputTokens: res.usage.outputTokens };
        step.provider = res.provider;
        step.model = res.model;
        run.usage.inputTokens += res.usage.inputTokens;
        run.usage.outputTokens += res.usage.outputTokens;
        const cost = this.#cost?.(res.provider, res.usage);
        if (cost !== undefined) run.cost = (run.cost ?? 0) + cost;
        return res;
      } finally {
        step.modelMs = stopwatch() - m0;
      }
    };
    const answerCheck = (text: string): { ok: true; value: unknown } | { ok: false; why: string } => {
      let value: unknown;
      try {
        value = JSON.parse(unfence(text));
      } catch {
        return { ok: false, why: 'is not JSON' };
      }
      if (check && !check(value)) {
        const f = fieldErrors(check.errors)
          .map((e) => `${e.path} ${e.message}`)
          .join('; ');
        return { ok: false, why: `does not match the schema: ${f}` };
      }
      return { ok: true, value };
    };

    for (;;) {
      if (run.steps.length >= o.maxSteps)
        throw end(
          'AGENT_BUDGET',
          `the agent run took its ${o.maxSteps} step(s) without an answer; raise maxSteps or narrow the goal`,
        );
      const left = budgetLeft();
      const t0 = stopwatch();
      const step = newStep();
      let res: ChatResult;
      try {
        res = await ask({ ...(specs.length ? { tools: specs } : {}), maxTokens: left }, step);
      } catch (err) {
        if (signal.aborted) {
          await record(step, t0, 0, false);
          throw err;
        }
        const refused = refusedCall(TalonError.from(err), offered);
        if (!refused) throw err;
        const call = refused.call;
        if (refused.kind === 'schema' && call) {
          // as the registry would answer: the model reads it and may correct the arguments
          const message = `ERROR TOOL_BAD_INPUT: ${refused.message}`;
          messages.push({ role: 'assistant', content: '', toolCalls: [call] });
          messages.push({ role: 'tool', toolCallId: call.id, content: message });
          step.calls.push({
            id: call.id,
            tool: call.name,
            input: call.arguments,
            error: { code: 'TOOL_BAD_INPUT', message: refused.message },
            ms: 0,
          });
          await record(step, t0, 0);
          continue;
        }
        badCalls++;
        step.calls.push({
          id: call?.id ?? `bad_${run.steps.length}`,
          tool: call ? String(call.name) : '?',
          input: call?.arguments,
          error: { code: 'AGENT_BAD_CALL', message: refused.message },
          ms: 0,
        });
        if (badCalls >= 2) {
          await record(step, t0, 0, false);
          throw end('AGENT_BAD_CALL', `the model made a second unusable tool call: ${refused.message}`);
        }
        await record(step, t0, 0);
        messages.push({
          role: 'user',
          content: `ERROR AGENT_BAD_CALL: your last tool call could not be used (${refused.message}). Call only the offered tools (${names}) with a JSON object of arguments, or answer in text.`,
        });
        continue;
      }

      if (!res.toolCalls.length) {
        if (!o.jsonSchema) {
          await record(step, t0, 0, false);
          return { answer: res.text, text: res.text };
        }
        const first = answerCheck(res.text);
        await record(step, t0, 0, !first.ok);
        if (first.ok) return { answer: first.value, text: res.text };
        // one more turn, without tools, with the schema on the request (see the file comment)
        messages.push({ role: 'assistant', content: res.text });
        messages.push({
          role: 'user',
          content: `Give your final answer now as JSON only, matching this JSON Schema: ${JSON.stringify(o.jsonSchema)}. Your last answer ${first.why}.`,
        });
        const left2 = budgetLeft();
        const t1 = stopwatch();
        const step2 = newStep();
        let res2: ChatResult;
        try {
          res2 = await ask({ jsonSchema: o.jsonSchema, maxTokens: left2 }, step2);
        } catch (err) {
          await record(step2, t1, 0, false);
          if (signal.aborted) throw err;
          const e = TalonError.from(err);
          // a provider refusing the schema itself (LLM_BAD_REQUEST) keeps its own code: not the model's fault
          if (e.code === 'LLM_BAD_RESPONSE')
            throw end('AGENT_BAD_CALL', `the final answer could not be read after one repair: ${e.message}`);
          throw err;
        }
        await record(step2, t1, 0, false);
        const second = res2.toolCalls.length
          ? ({ ok: false, why: 'called a tool instead of answering' } as const)
          : answerCheck(res2.text);
        if (second.ok) return { answer: second.value, text: res2.text };
        throw end('AGENT_BAD_CALL', `the final answer ${second.why}, after one repair (the run's jsonSchema)`);
      }

      // a turn with tool calls
      messages.push({ role: 'assistant', content: res.text, toolCalls: res.toolCalls });
      let toolMs = 0;
      for (const call of res.toolCalls) {
        const info = offered.get(call.name);
        if (!info || !isObject(call.arguments)) {
          badCalls++;
          const why = !info
            ? `tool "${String(call.name).slice(0, 64)}" is not offered in this run (offered: ${names})`
            : `the arguments of "${call.name}" are not a JSON object: ${short(call.arguments)}`;
          step.calls.push({
            id: call.id,
            tool: String(call.name),
            input: call.arguments,
            error: { code: 'AGENT_BAD_CALL', message: why },
            ms: 0,
          });
          messages.push({ role: 'tool', toolCallId: call.id, content: `ERROR AGENT_BAD_CALL: ${why}` });
          if (badCalls >= 2) {
            await record(step, t0, toolMs, false);
            throw end('AGENT_BAD_CALL', `the model made a second unusable tool call: ${why}`);
          }
          continue;
        }
        const key = `${call.name}\0${canonicalize(call.arguments) ?? ''}`;
        const times = (seen.get(key) ?? 0) + 1;
        seen.set(key, times);
        if (times >= LOOP_REPEATS) {
          const why = `the model called ${call.name} with the same input ${times} times: ${short(call.arguments)}`;
          step.calls.push({
            id: call.id,
            tool: call.name,
            input: call.arguments,
            error: { code: 'AGENT_LOOP', message: why },
            ms: 0,
          });
          await record(step, t0, toolMs, false);
          throw end('AGENT_LOOP', `${why}; the run is stopped (a loop)`);
        }
        const c0 = stopwatch();
        try {
          const r = await raceAbort(
            this.#tools.call(caller, call.name, call.arguments, { signal, runId: run.id, goal: o.goal }),
            signal,
          );
          const wall = stopwatch() - c0;
          const ms = Math.min(wall, Number.isFinite(r.ms) ? r.ms : wall);
          toolMs += ms;
          const fed = feedBack(r.output, o.maxResultChars, r.truncated);
          step.calls.push({
            id: call.id,
            tool: call.name,
            input: call.arguments,
            output: fed.value,
            ms,
            ...(fed.cut || r.truncated ? { truncated: true } : {}),
          });
          messages.push({ role: 'tool', toolCallId: call.id, content: fed.text });
        } catch (err) {
          const ms = stopwatch() - c0;
          toolMs += ms;
          const e = TalonError.from(signal.aborted ? signal.reason : err);
          step.calls.push({
            id: call.id,
            tool: call.name,
            input: call.arguments,
            error: { code: e.code, message: e.message },
            ms,
          });
          if (signal.aborted) {
            await record(step, t0, toolMs, false);
            throw e;
          }
          messages.push({ role: 'tool', toolCallId: call.id, content: `ERROR ${e.code}: ${e.message}` });
        }
      }
      await record(step, t0, toolMs);
    }
  }
}
