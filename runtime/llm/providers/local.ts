/**
 * Local inference: llama.cpp through node-llama-cpp (pinned 3.21.1), on a GGUF model in the
 * data folder. Data never leaves the device.
 *
 * - node-llama-cpp is ESM-only and heavy: it is imported on first use, never at start-up.
 *   It runs its prebuilt binary only (`build: 'never'`, `skipDownload: true`): an appliance
 *   must never try to download or compile llama.cpp.
 * - The thread count is always explicit: default cores − 1 (at least 1), never more than the
 *   cores (node-llama-cpp's default of 4 nearly stalls a 2-core box).
 * - A model loads lazily on first use; concurrent first calls share one load. Calls on one
 *   model take turns on its single context sequence (the KV cache of the previous turn is
 *   reused when the new prompt starts with it). After `idleUnloadMs` without calls the model
 *   and its contexts are disposed to give the memory back; the next call loads it again.
 * - Chat uses the model's own template (node-llama-cpp maps a GGUF's Jinja chat template to
 *   its chat wrappers), `jsonSchema` becomes a grammar, `tools` become node-llama-cpp
 *   functions: a call ends the turn and is returned (the router runs tools, not us).
 * - Files are checked before llama.cpp sees them (./gguf.ts): llama.cpp only says "Failed to
 *   load model".
 */
import { availableParallelism } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { readdir } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import type {
  ChatHistoryItem,
  ChatModelFunctions,
  ChatModelResponse,
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaGrammar,
  LlamaModel,
} from 'node-llama-cpp';
import { TalonError } from '../../core/errors.ts';
import { GgufError, inspectGguf } from '../gguf.ts';
import type { ChatChunk, ChatMessage, ChatRequest, ChatResult, LlmProvider, ToolCall } from '../types.ts';

export interface LocalProviderOptions {
  /** instance name from the config */
  name: string;
  /** the data folder: relative paths below resolve against it */
  dataDir: string;
  /** the default model's GGUF file */
  modelPath: string;
  /** where `models()` looks for *.gguf and `req.model` names resolve; default: the model's folder */
  modelsDir?: string;
  /** compute threads; default max(1, cores − 1); clamped to [1, cores] */
  threads?: number;
  /** tokens of context; default min(4096, the model's training context) */
  contextSize?: number;
  /** 'auto': CUDA/Vulkan/Metal when a prebuilt binary works here, else CPU. false: CPU only */
  gpu?: 'auto' | false;
  /** dispose a model unused this long (ms); 0 keeps it loaded. Default 5 minutes */
  idleUnloadMs?: number;
  /** answer length when the request gives none; default 512 */
  maxTokens?: number;
  /** sampling seed (deterministic runs); default random */
  seed?: number;
  /** cores available (default os.availableParallelism()); injectable for tests */
  cores?: number;
  /** llama.cpp's own log lines (warnings and errors), e.g. to the daemon's log */
  log?: (level: string, message: string) => void;
}

export interface LocalModelStatus {
  name: string;
  path: string;
  contextSize: number;
  /** threads the context evaluates with */
  threads: number;
  gpuLayers: number;
  busy: boolean;
}

type NlcModule = typeof import('node-llama-cpp');

interface Loaded {
  name: string;
  path: string;
  model: LlamaModel;
  context: LlamaContext;
  sequence: LlamaContextSequence;
  embedding?: Promise<LlamaEmbeddingContext>;
  /** the tail of the per-model queue: calls take turns on the one sequence */
  turn: Promise<void>;
  busy: number;
  idleTimer?: NodeJS.Timeout;
}

const DEFAULT_IDLE_MS = 5 * 60_000;
const DEFAULT_MAX_TOKENS = 512;
const DEFAULT_CONTEXT = 4096;

export class LocalProvider implements LlmProvider {
  readonly name: string;
  readonly kind = 'llama.cpp';
  readonly local = true;
  /** the thread count every context uses (after the default and the clamp) */
  readonly threads: number;
  /** models loaded and unloaded (idle or closed) since the start */
  readonly stats = { loads: 0, unloads: 0 };
  readonly #o: LocalProviderOptions;
  readonly #cores: number;
  #nlc?: Promise<NlcModule>;
  #llama?: Promise<Llama>;
  readonly #loaded = new Map<string, Loaded>();
  readonly #loading = new Map<string, Promise<Loaded>>();
  readonly #inflight = new Set<AbortController>();
  /** the last llama.cpp log lines: a failed load's reason is only there */
  readonly #recentLog: string[] = [];
  #closed = false;

  constructor(opts: LocalProviderOptions) {
    this.#o = opts;
    this.name = opts.name;
    this.#cores = Math.max(1, Math.floor(opts.cores ?? availableParallelism()));
    this.threads = resolveThreads(opts.threads, this.#cores);
  }

  /** the default model's name: its file name without .gguf */
  get defaultModel(): string {
    return modelName(this.#defaultPath());
  }

  #defaultPath(): string {
    return this.#abs(this.#o.modelPath);
  }

  #abs(p: string): string {
    return isAbsolute(p) ? p : resolve(this.#o.dataDir, p);
  }

  #modelsDir(): string {
    return this.#o.modelsDir ? this.#abs(this.#o.modelsDir) : dirname(this.#defaultPath());
  }

  /** models in the models folder (names without .gguf), the default one included */
  async models(): Promise<string[]> {
    let files: string[] = [];
    try {
      files = (await readdir(this.#modelsDir())).filter((f) => f.toLowerCase().endsWith('.gguf'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return [...new Set([...files.map(modelName), this.defaultModel])].sort();
  }

  /** what is loaded now, and with how many threads */
  status(): LocalModelStatus[] {
    return [...this.#loaded.values()].map((l) => ({
      name: l.name,
      path: l.path,
      contextSize: l.context.contextSize,
      threads: l.context.currentThreads,
      gpuLayers: l.model.gpuLayers,
      busy: l.busy > 0,
    }));
  }

  /** req.model → a file: the default model, or <name>[.gguf] in the models folder */
  #resolveModel(model: string | undefined): { name: string; path: string } {
    if (model === undefined || model === '' || model === this.defaultModel || model === basename(this.#defaultPath())) {
      return { name: this.defaultModel, path: this.#defaultPath() };
    }
    if (!/^[\w][\w.+-]*$/.test(model)) {
      throw new TalonError(
        'LLM_BAD_REQUEST',
        `unknown model ${JSON.stringify(model)}: a local model is named by its file in ${this.#modelsDir()}`,
      );
    }
    const file = model.toLowerCase().endsWith('.gguf') ? model : `${model}.gguf`;
    return { name: modelName(file), path: join(this.#modelsDir(), file) };
  }

  #import(): Promise<NlcModule> {
    this.#nlc ??= importWithoutSignalHooks(() => esmImport<NlcModule>('node-llama-cpp')).catch((err: unknown) => {
      this.#nlc = undefined;
      throw new TalonError('LLM_UNAVAILABLE', `node-llama-cpp cannot be loaded: ${(err as Error).message}`, {
        cause: err,
      });
    });
    return this.#nlc;
  }

  #getLlama(): Promise<Llama> {
    this.#llama ??= (async () => {
      const nlc = await this.#import();
      try {
        return await nlc.getLlama({
          gpu: this.#o.gpu === false ? false : 'auto',
          build: 'never',
          skipDownload: true,
          progressLogs: false,
          maxThreads: this.#cores,
          logLevel: nlc.LlamaLogLevel.warn,
          logger: (level, message) => {
            const line = message.trim();
            if (!line) return;
            this.#recentLog.push(line);
            if (this.#recentLog.length > 8) this.#recentLog.shift();
            this.#o.log?.(level, line);
          },
        });
      } catch (err) {
        this.#llama = undefined;
        throw new TalonError(
          'LLM_UNAVAILABLE',
          `llama.cpp cannot start here (prebuilt binaries only, nothing is built or downloaded): ${(err as Error).message}`,
          { cause: err },
        );
      }
    })();
    return this.#llama;
  }

  async #load(name: string, path: string): Promise<Loaded> {
    const have = this.#loaded.get(path);
    if (have) return have;
    let p = this.#loading.get(path);
    if (!p) {
      p = this.#doLoad(name, path).finally(() => this.#loading.delete(path));
      this.#loading.set(path, p);
    }
    return p;
  }

  async #doLoad(name: string, path: string): Promise<Loaded> {
    let summary;
    try {
      summary = inspectGguf(path);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT')
        throw new TalonError('LLM_BAD_REQUEST', `unknown model ${JSON.stringify(name)}: no file ${path}`, {
          details: { path },
        });
      if (err instanceof GgufError) {
        throw new TalonError('LLM_BAD_REQUEST', `model file ${path} cannot be used: ${err.message}`, {
          details: { path, reason: err.message },
        });
      }
      throw new TalonError('LLM_UNAVAILABLE', `model file ${path} cannot be read: ${e.message}`, {
        details: { path },
        cause: err,
      });
    }
    const llama = await this.#getLlama();
    this.#recentLog.length = 0;
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: path, gpuLayers: llama.gpu === false ? 0 : 'auto' });
    } catch (err) {
      const reason = this.#recentLog.join(' | ') || (err as Error).message;
      throw new TalonError(
        'LLM_UNAVAILABLE',
        `llama.cpp could not load ${path} (${summary.architecture ?? 'unknown'} architecture): ${reason}`,
        { details: { path, reason }, cause: err },
      );
    }
    try {
      const contextSize = Math.min(this.#o.contextSize ?? DEFAULT_CONTEXT, model.trainContextSize || DEFAULT_CONTEXT);
      const context = await model.createContext({ contextSize, threads: this.threads, sequences: 1 });
      const loaded: Loaded = {
        name,
        path,
        model,
        context,
        sequence: context.getSequence(),
        turn: Promise.resolve(),
        busy: 0,
      };
      if (this.#closed) {
        await disposeLoaded(loaded);
        throw new TalonError('LLM_UNAVAILABLE', `provider ${this.name} is closed`);
      }
      this.#loaded.set(path, loaded);
      this.stats.loads++;
      return loaded;
    } catch (err) {
      await model.dispose().catch(() => undefined);
      if (err instanceof TalonError) throw err;
      throw new TalonError('LLM_UNAVAILABLE', `no context for ${path}: ${(err as Error).message}`, {
        details: { path },
        cause: err,
      });
    }
  }

  /**
   * Runs `fn` on the model when its turn comes; keeps the model loaded meanwhile and arms
   * the idle timer once nothing uses it.
   */
  async #withModel<T>(
    modelReq: string | undefined,
    signal: AbortSignal | undefined,
    fn: (l: Loaded) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw new TalonError('LLM_UNAVAILABLE', `provider ${this.name} is closed`);
    const { name, path } = this.#resolveModel(modelReq);
    const l = await this.#load(name, path);
    l.busy++;
    if (l.idleTimer) {
      clearTimeout(l.idleTimer);
      l.idleTimer = undefined;
    }
    const prev = l.turn;
    let done!: () => void;
    l.turn = new Promise<void>((r) => (done = r));
    try {
      await prev;
      throwIfAborted(signal);
      return await fn(l);
    } finally {
      done();
      l.busy--;
      this.#armIdle(l);
    }
  }

  #armIdle(l: Loaded): void {
    const ms = this.#o.idleUnloadMs ?? DEFAULT_IDLE_MS;
    if (l.busy > 0 || ms <= 0 || this.#closed) return;
    l.idleTimer = setTimeout(() => {
      if (l.busy > 0 || this.#loaded.get(l.path) !== l) return;
      this.#loaded.delete(l.path);
      this.stats.unloads++;
      void disposeLoaded(l);
    }, ms);
    l.idleTimer.unref();
  }

  async chat(req: ChatRequest): Promise<ChatResult> {
    let result: ChatResult | undefined;
    for await (const c of this.stream(req)) if (c.type === 'done') result = c.result;
    if (!result) throw new TalonError('LLM_BAD_RESPONSE', `${this.name}: the generation ended without a result`);
    return result;
  }

  async *stream(req: ChatRequest): AsyncGenerator<ChatChunk> {
    if (!Array.isArray(req.messages) || req.messages.length === 0) {
      throw new TalonError('LLM_BAD_REQUEST', 'a chat needs at least one message');
    }
    if (req.jsonSchema && req.tools?.length) {
      throw new TalonError(
        'LLM_BAD_REQUEST',
        `${this.name}: jsonSchema and tools cannot be combined on the local model (llama.cpp takes one grammar per answer)`,
      );
    }
    throwIfAborted(req.signal);
    const nlc = await this.#import();

    // a small channel from node-llama-cpp's callbacks to this generator
    const queue: ChatChunk[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    const push = (c: ChatChunk): void => {
      queue.push(c);
      wake?.();
    };
    const stop = new AbortController();
    this.#inflight.add(stop);
    const signal = req.signal ? AbortSignal.any([req.signal, stop.signal]) : stop.signal;

    const work = this.#withModel(req.model, req.signal, async (l) => {
      const history = toHistory(req.messages);
      const llama = await this.#getLlama();
      let grammar: LlamaGrammar | undefined;
      if (req.jsonSchema) {
        try {
          grammar = await llama.createGrammarForJsonSchema(req.jsonSchema as never);
        } catch (err) {
          throw new TalonError(
            'LLM_BAD_REQUEST',
            `jsonSchema cannot be turned into a grammar: ${(err as Error).message}`,
            { cause: err },
          );
        }
      }
      const functions: ChatModelFunctions | undefined = req.tools?.length
        ? Object.fromEntries(
            req.tools.map((t) => [t.name, { description: t.description, params: t.parameters as never }]),
          )
        : undefined;

      const chat = new nlc.LlamaChat({ contextSequence: l.sequence, autoDisposeSequence: false });
      try {
        // count the prompt as the model will see it, and refuse what does not fit: by
        // default node-llama-cpp would silently drop older messages instead
        let inputTokens: number;
        try {
          const state = chat.chatWrapper.generateContextState({
            chatHistory: history,
            availableFunctions: functions,
            documentFunctionParams: true,
          });
          inputTokens = state.contextText.tokenize(l.model.tokenizer).length;
        } catch (err) {
          throw new TalonError(
            'LLM_BAD_REQUEST',
            `the tools cannot be described to the model: ${(err as Error).message}`,
            { cause: err },
          );
        }
        const ctx = l.context.contextSize;
        if (inputTokens >= ctx) {
          throw new TalonError(
            'LLM_BAD_REQUEST',
            `the prompt is ${inputTokens} tokens but ${l.name}'s context holds ${ctx}: shorten the conversation or raise contextSize`,
            { details: { inputTokens, contextSize: ctx } },
          );
        }
        const maxTokens = Math.max(
          1,
          Math.min(req.maxTokens ?? this.#o.maxTokens ?? DEFAULT_MAX_TOKENS, ctx - inputTokens),
        );
        let outputTokens = 0;
        const common = {
          maxTokens,
          signal,
          stopOnAbortSignal: false,
          onTextChunk: (text: string) => {
            if (text) push({ type: 'text', text });
          },
          onToken: (tokens: readonly unknown[]) => {
            outputTokens += tokens.length;
          },
          ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
          ...(this.#o.seed !== undefined ? { seed: this.#o.seed } : {}),
        };
        const r = functions
          ? await chat.generateResponse(history, { ...common, functions })
          : await chat.generateResponse(history, { ...common, ...(grammar ? { grammar } : {}) });

        const toolCalls: ToolCall[] = (r.functionCalls ?? []).map((c) => ({
          id: `call_${randomUUID().replace(/-/g, '').slice(0, 16)}`,
          name: c.functionName,
          arguments: (c.params && typeof c.params === 'object' ? c.params : {}) as Record<string, unknown>,
        }));
        for (const call of toolCalls) push({ type: 'tool_call', call });
        // node-llama-cpp reports no onToken for the tokens of a function call: count what was said, so a
        // tool-calling turn is charged to the budget (the router's, an agent run's) like any other
        if (toolCalls.length > 0) {
          const said = r.response + toolCalls.map((c) => c.name + JSON.stringify(c.arguments)).join('');
          outputTokens = Math.max(outputTokens, l.model.tokenize(said).length);
        }
        const stopReason = r.metadata.stopReason;
        const finishReason: ChatResult['finishReason'] =
          toolCalls.length > 0 ? 'tool_calls' : stopReason === 'maxTokens' ? 'length' : 'stop';
        if (grammar && finishReason === 'stop') {
          try {
            JSON.parse(r.response);
          } catch {
            throw new TalonError('LLM_BAD_RESPONSE', `${l.name} ended a schema-constrained answer that is not JSON`);
          }
        }
        push({
          type: 'done',
          result: {
            provider: this.name,
            model: l.name,
            text: r.response,
            toolCalls,
            usage: { inputTokens, outputTokens },
            finishReason,
          },
        });
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    });
    work.then(
      () => {
        finished = true;
        wake?.();
      },
      (err: unknown) => {
        failure = err;
        finished = true;
        wake?.();
      },
    );

    try {
      for (;;) {
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        if (finished) break;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      if (failure !== undefined) {
        if (req.signal?.aborted) throw req.signal.reason;
        if (failure instanceof TalonError) throw failure;
        throw new TalonError('LLM_UNAVAILABLE', `${this.name}: generation failed: ${(failure as Error).message}`, {
          cause: failure,
        });
      }
    } finally {
      // the consumer stopped early (break, an error downstream): stop generating, wait for
      // the model's turn to end so the next call finds the sequence free
      if (!finished) stop.abort(new Error('stream closed by the consumer'));
      await work.catch(() => undefined);
      this.#inflight.delete(stop);
    }
  }

  async embed(input: string[], model?: string): Promise<number[][]> {
    if (!Array.isArray(input) || input.some((s) => typeof s !== 'string')) {
      throw new TalonError('LLM_BAD_REQUEST', 'embed takes an array of strings');
    }
    return this.#withModel(model, undefined, async (l) => {
      l.embedding ??= l.model.createEmbeddingContext({ contextSize: l.context.contextSize, threads: this.threads });
      let ctx: LlamaEmbeddingContext;
      try {
        ctx = await l.embedding;
      } catch (err) {
        l.embedding = undefined;
        throw new TalonError('LLM_UNAVAILABLE', `${l.name}: no embedding context: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const out: number[][] = [];
      for (const [i, text] of input.entries()) {
        const n = l.model.tokenize(text).length;
        if (n > l.context.contextSize) {
          throw new TalonError(
            'LLM_BAD_REQUEST',
            `input ${i} is ${n} tokens but ${l.name}'s context holds ${l.context.contextSize}`,
            { details: { index: i, tokens: n, contextSize: l.context.contextSize } },
          );
        }
        out.push(Array.from((await ctx.getEmbeddingFor(text)).vector));
      }
      return out;
    });
  }

  /** the model's tokenizer (loads the model): for tests and token accounting */
  async tokenize(text: string, model?: string): Promise<{ tokens: number[]; detokenize: (t: number[]) => string }> {
    return this.#withModel(model, undefined, async (l) => ({
      tokens: Array.from(l.model.tokenize(text)) as number[],
      detokenize: (t: number[]) => l.model.detokenize(t as never),
    }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const c of this.#inflight) c.abort(new Error('provider closed'));
    await Promise.allSettled([...this.#loading.values()]);
    const all = [...this.#loaded.values()];
    this.#loaded.clear();
    this.stats.unloads += all.length;
    await Promise.allSettled(
      all.map(async (l) => {
        if (l.idleTimer) clearTimeout(l.idleTimer);
        await l.turn;
        await disposeLoaded(l);
      }),
    );
    const llama = this.#llama;
    this.#llama = undefined;
    if (llama) await llama.then((x) => x.dispose()).catch(() => undefined);
  }
}

/** default cores − 1 (at least 1), and never more threads than cores */
export function resolveThreads(threads: number | undefined, cores: number): number {
  const want = threads === undefined || !Number.isFinite(threads) ? cores - 1 : Math.floor(threads);
  return Math.max(1, Math.min(cores, want));
}

function modelName(file: string): string {
  return basename(file).replace(/\.gguf$/i, '');
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

async function disposeLoaded(l: Loaded): Promise<void> {
  if (l.idleTimer) clearTimeout(l.idleTimer);
  const emb = l.embedding;
  l.embedding = undefined;
  if (emb) await emb.then((e) => e.dispose()).catch(() => undefined);
  await l.context.dispose().catch(() => undefined);
  await l.model.dispose().catch(() => undefined);
}

/**
 * Talon messages → node-llama-cpp chat history. An assistant turn that called tools becomes
 * a model response holding the calls with their results (taken from the tool messages that
 * answer them), which is how node-llama-cpp renders function calls in the model's template.
 */
export function toHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const results = new Map<string, string>();
  for (const m of messages)
    if (m.role === 'tool') {
      if (!m.toolCallId) throw new TalonError('LLM_BAD_REQUEST', 'a tool message needs toolCallId');
      results.set(m.toolCallId, m.content);
    }
  const calls = new Set(messages.flatMap((m) => m.toolCalls?.map((c) => c.id) ?? []));
  const out: ChatHistoryItem[] = [];
  for (const m of messages) {
    if (typeof m.content !== 'string')
      throw new TalonError('LLM_BAD_REQUEST', `a ${m.role} message needs string content`);
    switch (m.role) {
      case 'system':
        out.push({ type: 'system', text: m.content });
        break;
      case 'user':
        out.push({ type: 'user', text: m.content });
        break;
      case 'assistant': {
        const response: ChatModelResponse['response'] = [];
        if (m.content) response.push(m.content);
        for (const c of m.toolCalls ?? []) {
          response.push({ type: 'functionCall', name: c.name, params: c.arguments, result: results.get(c.id) ?? '' });
        }
        out.push({ type: 'model', response });
        break;
      }
      case 'tool':
        if (!calls.has(m.toolCallId!))
          throw new TalonError('LLM_BAD_REQUEST', `tool message answers unknown call ${JSON.stringify(m.toolCallId)}`);
        break;
      default:
        throw new TalonError('LLM_BAD_REQUEST', `unknown role ${JSON.stringify((m as ChatMessage).role)}`);
    }
  }
  // the answer continues the last model turn (after tool results) or opens a new one
  if (out.at(-1)?.type !== 'model') out.push({ type: 'model', response: [] });
  return out;
}

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/**
 * node-llama-cpp's dependencies pull in signal-exit, which hooks SIGTERM/SIGINT/SIGHUP and
 * re-raises the signal when it thinks nobody else listens, killing the daemon in the middle
 * of its graceful shutdown (measured: exit 143, no offline published). The kernel owns
 * signals: whatever listeners the import adds are removed.
 */
async function importWithoutSignalHooks<T>(load: () => Promise<T>): Promise<T> {
  const before = new Map(SIGNALS.map((sig) => [sig, new Set(process.listeners(sig))]));
  try {
    return await load();
  } finally {
    for (const sig of SIGNALS) {
      for (const l of process.listeners(sig))
        if (!before.get(sig)!.has(l)) process.removeListener(sig, l as (...a: unknown[]) => void);
    }
  }
}

/** import() of an ESM-only package: through the launcher's real import() in the bundle (see image/launcher.cjs) */
function esmImport<T>(specifier: string): Promise<T> {
  const viaLauncher = (globalThis as { __talonImport?: (s: string) => Promise<unknown> }).__talonImport;
  return (viaLauncher ? viaLauncher(specifier) : import(specifier)) as Promise<T>;
}
