/**
 * One interface for every LLM provider (local llama.cpp, Ollama, OpenAI-compatible,
 * Anthropic, Gemini) and one contract suite run against all (test/runtime/llm/contract.ts).
 * The router (./router.ts) composes providers into failover chains; Hands reach it only
 * through `ctx.call('llm.chat', …)` under their grant's token budget.
 */

export type Role = 'system' | 'user' | 'assistant' | 'tool';

export interface ToolCall {
  id: string;
  name: string;
  /** parsed JSON arguments (validated against the tool's schema by the router) */
  arguments: Record<string, unknown>;
}

export interface ChatMessage {
  role: Role;
  content: string;
  /** assistant messages that called tools */
  toolCalls?: ToolCall[];
  /** tool messages: which call this answers */
  toolCallId?: string;
}

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments */
  parameters: Record<string, unknown>;
}

export interface ChatRequest {
  /** the provider's model name; a provider may have a default */
  model?: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  /** constrain the answer to this JSON Schema (grammar locally, response_format / schema remotely) */
  jsonSchema?: Record<string, unknown>;
  maxTokens?: number;
  temperature?: number;
  /** aborts the call (the caller went away, a timeout) */
  signal?: AbortSignal;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

export interface ChatResult {
  provider: string;
  model: string;
  text: string;
  toolCalls: ToolCall[];
  usage: Usage;
  finishReason: 'stop' | 'length' | 'tool_calls' | 'error';
}

/** what a stream yields: text deltas, tool calls, then exactly one `done` */
export type ChatChunk =
  | { type: 'text'; text: string }
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'done'; result: ChatResult };

/**
 * Errors a provider throws are TalonErrors with these codes (see runtime/core/errors.ts):
 *   LLM_UNAVAILABLE  connection refused, DNS, 5xx, a stream cut mid-way
 *   LLM_RATE_LIMITED 429 (details.retryAfterMs when the server said Retry-After)
 *   LLM_AUTH         401/403, a missing key (longer breaker cool-down)
 *   LLM_BILLING      402, quota exhausted (longer cool-down)
 *   LLM_BAD_RESPONSE an empty 200, a stream with no token, malformed JSON or chunks
 *   LLM_TIMEOUT      no first token / a stalled stream
 *   LLM_BAD_REQUEST  unknown model, prompt over the context length, bad tool arguments
 */
export interface LlmProvider {
  /** instance name from the config (`local`, `openai`, …) */
  readonly name: string;
  /** `llama.cpp` | `ollama` | `openai` | `anthropic` | `gemini` */
  readonly kind: string;
  /** runs on this device: data never leaves it */
  readonly local: boolean;
  chat(req: ChatRequest): Promise<ChatResult>;
  stream(req: ChatRequest): AsyncIterable<ChatChunk>;
  embed?(input: string[], model?: string): Promise<number[][]>;
  models?(): Promise<string[]>;
  close?(): Promise<void>;
}
