/**
 * The shapes of tools, approvals and agent runs that a Hand (ctx.tools, ctx.agent), the kernel
 * (runtime/tools, runtime/agent), the API and the web admin's page all read: plain data, no Node
 * types, so the page can import them too.
 */

/** MCP's tool annotations (spec 2025-06-18), the same names. */
export interface ToolAnnotations {
  title?: string;
  /** does not change anything */
  readOnlyHint?: boolean;
  /** may destroy or overwrite (meaningful when not read-only); MCP's default is true */
  destructiveHint?: boolean;
  /** calling twice with the same input does no more than once */
  idempotentHint?: boolean;
  /** reaches outside the device (the web, a remote service) */
  openWorldHint?: boolean;
}

/** a tool as ctx.tools.list(), GET /api/v1/tools and MCP's tools/list show it */
export interface HandToolInfo {
  name: string;
  description: string;
  /** JSON Schema of the input object */
  inputSchema: Record<string, unknown>;
  /** JSON Schema of the output, when the tool promises one */
  outputSchema?: Record<string, unknown>;
  annotations: ToolAnnotations;
  /** the grant it needs, in words */
  capability: string;
  timeoutMs: number;
  maxOutputBytes: number;
  /** `builtin` or `mcp:<server>` */
  source: string;
  /** a call by this caller waits for a person */
  needsApproval?: boolean;
  /** false: an MCP tool whose server is down */
  available?: boolean;
}

export interface HandToolResult<O = unknown> {
  output: O;
  /** the output was cut to the tool's maxOutputBytes */
  truncated: boolean;
  ms: number;
  /** the approval it waited for, and who gave it */
  approval?: { id: string; by: string };
}

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired';

/** A person's decision on one tool call, stored in LevelDB and shown in the web admin. */
export interface Approval {
  id: string;
  /** the asker: `hand:<name>`, `mcp:<token>` */
  actor: string;
  hand?: string;
  tool: string;
  /** the input, as the person must see it to decide (capped at 4 KiB of JSON, `…` when cut) */
  input: unknown;
  /** why it needs approval: `destructive`, `approve list`, `untrusted MCP annotations` */
  reason: string;
  /** an agent run's goal, when the call came from one */
  goal?: string;
  runId?: string;
  state: ApprovalState;
  createdAt: number;
  expiresAt: number;
  decidedAt?: number;
  /** who answered: `user:<name>`, `cli`, `mqtt:<client>`, or `timeout` */
  by?: string;
  /** the person's reason */
  note?: string;
}

/** One step of an agent run: the model's turn and the tool calls it made. */
export interface AgentStep {
  index: number;
  /** the model's text of this turn (the final answer on the last step) */
  text: string;
  calls: Array<{
    id: string;
    tool: string;
    input: unknown;
    /** the result fed back (already cut to the loop's budget), or the typed error the model read */
    output?: unknown;
    error?: { code: string; message: string };
    ms: number;
    truncated?: boolean;
  }>;
  usage: { inputTokens: number; outputTokens: number };
  provider?: string;
  model?: string;
  /** ms the model took, and the kernel's own time for the step (validation, checks, bookkeeping) */
  modelMs: number;
  overheadMs: number;
}

export type AgentRunState = 'running' | 'done' | 'failed';

/** A stored agent run (GET /api/v1/runs/{id}). */
export interface AgentRun {
  id: string;
  hand: string;
  goal: string;
  state: AgentRunState;
  startedAt: number;
  endedAt?: number;
  steps: AgentStep[];
  /** the model's final answer (parsed JSON when the run had a jsonSchema) */
  answer?: unknown;
  error?: { code: string; message: string };
  usage: { inputTokens: number; outputTokens: number };
  /** USD, when the providers have prices */
  cost?: number;
}
