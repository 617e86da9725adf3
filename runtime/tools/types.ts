/**
 * Tools: what a Hand (through the agent loop or `ctx.tools.call`), an admin (REST, CLI) or an
 * assistant over MCP can make the device do. One registry (./registry.ts) holds every tool, the
 * built-in ones (./builtin/) and those of connected MCP servers (./mcp/client.ts); each call goes
 * through the same steps there, in this order, each refusal a typed error and an audit entry:
 *
 *   1. the tool exists                                   TOOL_NOT_FOUND
 *   2. the caller may call it (its `tools` grant)        CAPABILITY_DENIED
 *   3. the input passes the tool's JSON Schema           TOOL_BAD_INPUT (details.errors)
 *   4. the tool's own capability check (grants)          CAPABILITY_DENIED (details.action/subject)
 *   5. an approval when the tool is destructive or
 *      named in the caller's `approve` list             APPROVAL_DENIED (denied or timed out)
 *   6. run within timeoutMs                              TOOL_TIMEOUT, TOOL_FAILED, the tool's own codes
 *   7. the output capped at maxOutputBytes (text cut, `truncated: true`), checked against
 *      outputSchema                                      TOOL_BAD_OUTPUT
 *
 * and one `tool.call` audit entry per call: actor, subject = tool name, decision, detail
 * { hand?, argsHash (sha256 of the canonical JSON of the input), args? (only with
 * tools.auditArgs), outcome: 'ok' | error code, ms, approval? }.
 */
import type { Capabilities } from '../core/hand.ts';
import type {
  AgentRun,
  AgentRunState,
  AgentStep,
  Approval,
  ApprovalState,
  HandToolInfo,
  HandToolResult,
  ToolAnnotations,
} from '../core/tool-shapes.ts';

// one declaration for a Hand's view (ctx.tools, ctx.agent), the kernel's and the page's (runtime/core/tool-shapes.ts)
export type { AgentRun, AgentRunState, AgentStep, Approval, ApprovalState, ToolAnnotations };
/** A tool as listed (GET /api/v1/tools, ctx.tools.list(), MCP's tools/list). */
export type ToolInfo = HandToolInfo;
export type ToolResult<O = unknown> = HandToolResult<O>;

/** Who calls a tool, and under which rights. */
export interface ToolCaller {
  /** written as the audit entry's actor: `hand:<name>`, `cli`, `user:<name>`, `token:<id>(<user>)`, `mcp:<token>` */
  actor: string;
  /** the Hand instance calling, when a Hand calls (its run, its folder) */
  hand?: string;
  /**
   * an admin (REST, CLI): every tool, no grant checks, no approvals (the admin is the person who
   * would approve). Hands and MCP clients are never admin.
   */
  admin: boolean;
  /** the rights tools check (a Hand's effective grants; for an MCP client, the server's grant) */
  grants: Capabilities;
  /** the folder file.* and shell.exec work in: `<dataDir>/hands/<name>/files` for a Hand */
  folder: string;
}

/** What a tool's `run` gets besides its input. */
export interface ToolRunContext {
  caller: ToolCaller;
  /** aborted at the tool's timeout or when the caller goes away: stop work, kill processes */
  signal: AbortSignal;
  /** the tool's effective limits for this call (a shell grant may set its own) */
  timeoutMs: number;
  maxOutputBytes: number;
  /**
   * asks a person from inside run() (a browser click that would pay): the registry's approvals queue, recorded in
   * the call's audit entry; resolves when approved, throws APPROVAL_DENIED when denied or unanswered. An admin is not
   * asked. `detail` is shown with the input.
   */
  approve?(reason: string, detail?: Record<string, unknown>): Promise<void>;
}

export interface ToolDefinition<I = unknown, O = unknown> {
  /** `group.verb`, lower case (`http.request`, `file.read`, `mcp.<server>.<tool>`) */
  name: string;
  /** what the model and a person read: what it does, what it returns, when to use it */
  description: string;
  /** JSON Schema (draft 2020-12) of the input object */
  inputSchema: Record<string, unknown>;
  /** JSON Schema of the output, when the tool promises one */
  outputSchema?: Record<string, unknown>;
  annotations: ToolAnnotations;
  /** the grant it needs, in words, for listings (`shell: the programs of the pipeline`) */
  capability: string;
  /** default 30 s */
  timeoutMs?: number;
  /** default 64 KiB of JSON */
  maxOutputBytes?: number;
  /**
   * the capability check on the validated input (step 4), for non-admin callers: return null
   * to allow, or throw TalonError('CAPABILITY_DENIED', message, { details: { action, subject } }).
   * May refine limits (a shell grant's timeout) by returning them.
   */
  check?(input: I, caller: ToolCaller): { timeoutMs?: number; maxOutputBytes?: number } | null;
  run(input: I, ctx: ToolRunContext): Promise<O>;
  /** where it came from: `builtin` or `mcp:<server>` */
  source?: string;
}

/** Config `tools:` (runtime/config/schema.ts), as the registry reads it. */
export interface ToolsConfig {
  /** write the tools' input into audit entries (default: only its hash) */
  auditArgs: boolean;
  /** how long an approval waits for a person before it counts as denied */
  approvalTimeoutMs: number;
  /**
   * tool calls a second one Hand or MCP client may make (twice that in a burst); past it QUOTA_EXCEEDED,
   * audited once a second with the count (each call is a signed, durable audit entry: this bounds
   * what one caller can write into the log). Admins are not limited. Default 50.
   */
  callsPerSec?: number;
}

export interface ToolCallOptions {
  /** the caller went away (an HTTP client, a stopping Hand) */
  signal?: AbortSignal;
  /** the agent run the call belongs to (shown with its approval) */
  runId?: string;
  goal?: string;
}

/** The registry as the rest of the kernel sees it (./registry.ts implements it). */
export interface Tools {
  /** every tool, or those `caller` may call, sorted by name */
  list(caller?: ToolCaller): ToolInfo[];
  info(name: string, caller?: ToolCaller): ToolInfo | undefined;
  call(caller: ToolCaller, name: string, input: unknown, opts?: ToolCallOptions): Promise<ToolResult>;
}

export type ApprovalDecision = 'approve' | 'deny';

/** The approval queue as the API, the CLI, MQTT and the web admin see it (./approvals.ts implements it). */
export interface ApprovalsApi {
  list(opts?: { state?: ApprovalState; limit?: number }): Promise<Approval[]>;
  get(id: string): Promise<Approval>;
  /** APPROVAL_NOT_FOUND; CONFLICT when it was already decided or expired */
  decide(id: string, decision: ApprovalDecision, by: string, note?: string): Promise<Approval>;
  /** pending right now (the web admin's badge) */
  pending(): number;
  /** called on every new request and every decision */
  onChange(listener: (a: Approval) => void): () => void;
}

export interface AgentRunsApi {
  list(opts?: {
    hand?: string;
    limit?: number;
    before?: string;
  }): Promise<Array<Omit<AgentRun, 'steps'> & { stepCount: number }>>;
  get(id: string): Promise<AgentRun>;
}
