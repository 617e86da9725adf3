/**
 * Small fakes of the tools contract (runtime/tools/types.ts): a registry with a few tools that
 * answer, fail and time out with the registry's typed errors, an approval queue and a run store,
 * and a kernel slice that serves them: the runtime API's tools area under the real HTTP server
 * (auth with LevelDB, routes, validation) on 127.0.0.1, port 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import { Store } from '../../runtime/store/store.ts';
import { RuntimeApi } from '../../runtime/api/runtime-api.ts';
import { toolsArea } from '../../runtime/api/tools-api.ts';
import type { AuditEvent } from '../../runtime/audit/types.ts';
import type { Capabilities } from '../../runtime/core/hand.ts';
import { HttpServer, type McpEndpoint } from '../../web-admin/server.ts';
import type {
  AgentRun,
  AgentRunsApi,
  Approval,
  ApprovalDecision,
  ApprovalsApi,
  ApprovalState,
  ToolCaller,
  ToolInfo,
  ToolResult,
  Tools,
} from '../../runtime/tools/types.ts';

export const CLI_TOKEN = 'c'.repeat(43);

const info = (name: string, over: Partial<ToolInfo> = {}): ToolInfo => ({
  name,
  description: `the ${name} tool`,
  inputSchema: { type: 'object', properties: {} },
  annotations: {},
  capability: 'none',
  timeoutMs: 30_000,
  maxOutputBytes: 65_536,
  source: 'builtin',
  ...over,
});

export const TOOL_LIST: ToolInfo[] = [
  info('file.delete', {
    description: 'delete a file in the Hand folder',
    annotations: { destructiveHint: true },
    capability: 'fs: write in the Hand folder',
    needsApproval: true,
  }),
  info('http.request', { annotations: { openWorldHint: true, readOnlyHint: false }, capability: 'network' }),
  info('mcp.lab.probe', { source: 'mcp:lab', available: false, capability: 'mcp server lab' }),
  info('shell.exec', {
    inputSchema: { type: 'object', required: ['command'], properties: { command: { type: 'string' } } },
    annotations: { destructiveHint: true },
    capability: 'shell: the programs of the pipeline',
  }),
  info('time.now', { annotations: { readOnlyHint: true, idempotentHint: true } }),
];

export class FakeTools implements Tools {
  calls: Array<{ caller: ToolCaller; name: string; input: unknown; signal: boolean }> = [];

  list(_caller?: ToolCaller): ToolInfo[] {
    return TOOL_LIST;
  }

  info(name: string): ToolInfo | undefined {
    return TOOL_LIST.find((t) => t.name === name);
  }

  async call(
    caller: ToolCaller,
    name: string,
    input: unknown,
    opts: { signal?: AbortSignal } = {},
  ): Promise<ToolResult> {
    this.calls.push({ caller, name, input, signal: opts.signal !== undefined });
    if (!this.info(name)) throw new TalonError('TOOL_NOT_FOUND', `there is no tool "${name}"`);
    if (name === 'time.now')
      return { output: { iso: '2026-01-01T00:00:00.000Z', ms: 1767225600000 }, truncated: false, ms: 1 };
    if (name === 'shell.exec') {
      const cmd = (input as { command?: unknown }).command;
      if (typeof cmd !== 'string')
        throw new TalonError('TOOL_BAD_INPUT', 'input of "shell.exec" is not valid: command is required', {
          details: { errors: [{ path: '/command', message: 'is required' }] },
        });
      if (cmd.includes('sleep')) throw new TalonError('TOOL_TIMEOUT', 'shell.exec ran out of its 30000 ms');
      if (cmd.includes('false')) throw new TalonError('TOOL_FAILED', 'shell.exec failed: no such program "nope"');
      return { output: { stdout: `ran ${cmd}\n`, stderr: '', exitCode: 0 }, truncated: false, ms: 3 };
    }
    if (name === 'mcp.lab.probe') throw new TalonError('MCP_UNAVAILABLE', 'the MCP server "lab" is not connected');
    return { output: null, truncated: false, ms: 0 };
  }
}

export class FakeApprovals implements ApprovalsApi {
  items: Approval[] = [];
  #listeners = new Set<(a: Approval) => void>();

  add(over: Partial<Approval> & { id: string }): Approval {
    const now = Date.now();
    const a: Approval = {
      actor: 'hand:gardener',
      hand: 'gardener',
      tool: 'file.delete',
      input: { path: 'old/notes.txt' },
      reason: 'destructive',
      goal: 'tidy the notes folder',
      runId: 'run-1',
      state: 'pending',
      createdAt: now,
      expiresAt: now + 300_000,
      ...over,
    };
    this.items.unshift(a);
    for (const l of this.#listeners) l(a);
    return a;
  }

  async list(opts: { state?: ApprovalState; limit?: number } = {}): Promise<Approval[]> {
    return this.items.filter((a) => !opts.state || a.state === opts.state).slice(0, opts.limit ?? 100);
  }

  async get(id: string): Promise<Approval> {
    const a = this.items.find((x) => x.id === id);
    if (!a) throw new TalonError('APPROVAL_NOT_FOUND', `there is no approval "${id}"`);
    return a;
  }

  async decide(id: string, decision: ApprovalDecision, by: string, note?: string): Promise<Approval> {
    const a = await this.get(id);
    if (a.state !== 'pending') throw new TalonError('CONFLICT', `approval "${id}" is ${a.state} already`);
    a.state = decision === 'approve' ? 'approved' : 'denied';
    a.by = by;
    a.decidedAt = Date.now();
    if (note !== undefined) a.note = note;
    for (const l of this.#listeners) l(a);
    return a;
  }

  pending(): number {
    return this.items.filter((a) => a.state === 'pending').length;
  }

  onChange(listener: (a: Approval) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export const RUN: AgentRun = {
  id: 'run-1',
  hand: 'gardener',
  goal: 'tidy the notes folder',
  state: 'done',
  startedAt: 1767225600000,
  endedAt: 1767225603000,
  steps: [
    {
      index: 0,
      text: '',
      calls: [
        { id: 'c1', tool: 'file.list', input: { path: '.' }, output: { files: ['old/notes.txt'] }, ms: 2 },
        {
          id: 'c2',
          tool: 'file.delete',
          input: { path: 'old/notes.txt' },
          error: { code: 'APPROVAL_DENIED', message: 'user:owner denied it: keep it' },
          ms: 5,
        },
      ],
      usage: { inputTokens: 120, outputTokens: 30 },
      provider: 'local',
      model: 'tiny',
      modelMs: 800,
      overheadMs: 1.5,
    },
    {
      index: 1,
      text: 'The folder is tidy; I kept old/notes.txt as asked.',
      calls: [],
      usage: { inputTokens: 200, outputTokens: 20 },
      modelMs: 500,
      overheadMs: 0.5,
    },
  ],
  answer: 'The folder is tidy; I kept old/notes.txt as asked.',
  usage: { inputTokens: 320, outputTokens: 50 },
};

export class FakeRuns implements AgentRunsApi {
  runs: AgentRun[] = [
    RUN,
    {
      id: 'run-0',
      hand: 'gardener',
      goal: 'count the files',
      state: 'failed',
      startedAt: 1767225000000,
      endedAt: 1767225001000,
      steps: [],
      error: { code: 'AGENT_BUDGET', message: 'the run used its 4 steps' },
      usage: { inputTokens: 10, outputTokens: 0 },
    },
  ];
  asked: Array<{ hand?: string; limit?: number; before?: string }> = [];

  async list(opts: { hand?: string; limit?: number; before?: string } = {}) {
    this.asked.push(opts);
    let list = this.runs.filter((r) => r.hand === opts.hand);
    if (opts.before) list = list.slice(list.findIndex((r) => r.id === opts.before) + 1);
    return list.slice(0, opts.limit ?? 20).map(({ steps, ...r }) => ({ ...r, stepCount: steps.length }));
  }

  async get(id: string): Promise<AgentRun> {
    const r = this.runs.find((x) => x.id === id);
    if (!r) throw new TalonError('RUN_NOT_FOUND', `there is no agent run "${id}"`);
    return r;
  }
}

export interface ToolsServer {
  http: HttpServer;
  url: string;
  tools: FakeTools;
  approvals: FakeApprovals;
  runs: FakeRuns;
  audit: AuditEvent[];
  store: Store;
  dataDir: string;
  close(): Promise<void>;
}

/** the runtime API's tools area over the fakes, served by the real HTTP server */
export async function serveTools(opts: { mcp?: McpEndpoint; withTools?: boolean } = {}): Promise<ToolsServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-tools-'));
  const store = await Store.open(dataDir);
  const audit: AuditEvent[] = [];
  const auditSink = { record: async (e: AuditEvent) => void audit.push(e) };
  const tools = new FakeTools();
  const approvals = new FakeApprovals();
  const runs = new FakeRuns();
  const api = new RuntimeApi({
    supervisor: {} as never,
    audit: auditSink,
    auditLog: {} as never,
    sensors: {} as never,
    health: () => ({}) as never,
    metrics: () => ({
      deviceId: 'dev1',
      uptimeMs: 1,
      sensors: [],
      drivers: [],
      hands: [],
      bus: {
        published: 0,
        delivered: 0,
        droppedOversize: 0,
        droppedMalformed: 0,
        handlerErrors: 0,
        clients: 0,
      } as never,
      audit: { seq: 0, checkpointSeq: 0 },
      process: { rssBytes: 1, heapUsedBytes: 1, cpuSeconds: 0 },
      tools: {
        calls: { 'shell.exec': { ok: 3, denied: 1, failed: 2, ms: 1500 } },
        approvalsPending: approvals.pending(),
        runs: { byState: { done: 4, failed: 1 }, steps: 17 },
      },
    }),
    ...(opts.withTools === false
      ? {}
      : {
          tools: toolsArea({
            tools,
            approvals,
            runs,
            audit: auditSink,
            callerFor: (c) => ({ actor: c.actor, admin: true, grants: {} as Capabilities, folder: dataDir }),
            handFolder: (hand) => join(dataDir, 'hands', hand, 'files'),
          }),
        }),
  });
  const http = new HttpServer({
    api,
    listen: { host: '127.0.0.1', port: 0 },
    cliToken: CLI_TOKEN,
    store,
    audit: auditSink,
    dataDir,
    ...(opts.mcp ? { mcp: opts.mcp } : {}),
  });
  await http.listen();
  const { port } = http.address();
  return {
    http,
    url: `http://127.0.0.1:${port}`,
    tools,
    approvals,
    runs,
    audit,
    store,
    dataDir,
    close: async () => {
      await http.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
