/**
 * `talon tools list|call`, `talon approvals [list]|approve|deny` and `talon runs HAND|show ID`:
 * the tools, the approval queue and the agent runs of the running daemon, through its REST API
 * with the CLI token (web-admin/routes/tools.ts). The CLI is an admin: its calls skip grants and
 * approvals (the registry audits each one as `cli`), and its answers are audited with `by: cli`.
 * Exit codes: 0 ok, 1 Talon not running or the tool failed, 2 bad usage or a refused input.
 */
import { helpText, parse, parseSubcommand, plural, printable, UsageError, type CommandSpec, type Io } from '../args.ts';
import { DaemonClient } from '../client.ts';
import { dataDir, DATA_OPTIONS } from './hands.ts';
import type { CommandModule } from '../main.ts';
import type { AgentRun, Approval, ToolInfo, ToolResult } from '../../tools/types.ts';

type RunSummary = Omit<AgentRun, 'steps'> & { stepCount: number };

const APPROVAL_STATES = ['pending', 'approved', 'denied', 'expired'];

// ---------------------------------------------------------------------------------------
// talon tools

export const toolsSpec: CommandSpec = {
  name: 'talon tools',
  summary: 'The tools Hands, admins and MCP clients can call.',
  subcommands: [
    { name: 'list', summary: 'every tool: name, annotations, source, the grant it needs' },
    { name: 'call', summary: 'call one tool as the admin and print its output' },
  ],
  notes:
    'Exit codes: 0 ok, 1 Talon not running or the tool failed (TOOL_FAILED, TOOL_TIMEOUT, MCP_*), 2 bad usage or input.',
};

const TOOLS_SUBSPECS: Record<string, CommandSpec> = {
  list: { name: 'talon tools list', summary: 'List the tools.', options: DATA_OPTIONS },
  call: {
    name: 'talon tools call',
    summary: "Call NAME with the JSON object INPUT (checked against the tool's schema) and print its output.",
    positionals: [{ name: 'NAME', required: true, description: 'the tool: time.now, shell.exec, mcp.<server>.<tool>' }],
    options: {
      ...DATA_OPTIONS,
      input: { type: 'string', short: 'i', value: 'JSON', description: 'the input object (default {})' },
    },
  },
};

/** the annotations as words (read-only, destructive, idempotent, open-world) */
export function annotationWords(t: Pick<ToolInfo, 'annotations'>): string[] {
  const a = t.annotations ?? {};
  const words: string[] = [];
  if (a.readOnlyHint) words.push('read-only');
  else if (a.destructiveHint !== false) words.push('destructive');
  if (a.idempotentHint) words.push('idempotent');
  if (a.openWorldHint) words.push('open-world');
  return words;
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

async function toolsMain(argv: string[], io: Io): Promise<number> {
  const picked = parseSubcommand(toolsSpec, TOOLS_SUBSPECS, argv, io);
  if (!picked) return 0;
  const { spec: s, args } = picked;
  const client = DaemonClient.open(await dataDir(args, io));
  const json = args.values.json === true;
  if (picked.name === 'list') {
    const { tools } = await client.request<{ tools: ToolInfo[] }>('GET', '/api/v1/tools');
    if (json) {
      io.out(`${JSON.stringify(tools, null, 2)}\n`);
      return 0;
    }
    if (tools.length === 0) {
      io.out('no tools\n');
      return 0;
    }
    const w = Math.max(...tools.map((t) => t.name.length));
    for (const t of tools) {
      const flags = [
        ...annotationWords(t),
        ...(t.needsApproval ? ['needs approval'] : []),
        ...(t.available === false ? ['UNAVAILABLE'] : []),
      ];
      io.out(
        `${printable(t.name).padEnd(w)}  ${printable(t.source).padEnd(10)} ${flags.join(', ').padEnd(34)} ${printable(t.capability)}\n`,
      );
    }
    io.out(`${plural(tools.length, 'tool')}\n`);
    return 0;
  }
  const name = args.positionals[0]!;
  let input: unknown = {};
  if (args.values.input !== undefined) {
    try {
      input = JSON.parse(String(args.values.input));
    } catch (err) {
      throw new UsageError(`--input is not valid JSON: ${(err as Error).message.slice(0, 120)}`, s);
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input))
      throw new UsageError('--input must be a JSON object, like \'{"path": "notes.txt"}\'', s);
  }
  const r = await client.request<ToolResult>('POST', `/api/v1/tools/${encodeURIComponent(name)}/call`, { input });
  if (json) io.out(`${JSON.stringify(r, null, 2)}\n`);
  else {
    const text = show(r.output);
    io.out(`${printable(text)}${text.endsWith('\n') ? '' : '\n'}`);
    if (r.truncated) io.err('talon: the output was cut at the tool’s maxOutputBytes\n');
  }
  return 0;
}

// ---------------------------------------------------------------------------------------
// talon approvals

export const approvalsSpec: CommandSpec = {
  name: 'talon approvals',
  summary: 'Tool calls that wait for a person: list them, approve or deny one.',
  subcommands: [
    { name: 'list', summary: 'the approvals, newest first (the default command)' },
    { name: 'approve', summary: 'let a pending call run' },
    { name: 'deny', summary: 'refuse a pending call (the Hand gets APPROVAL_DENIED)' },
  ],
  notes:
    'No answer before an approval expires counts as deny. Exit codes: 0 ok, 1 Talon not running, 2 bad usage, no such approval, or already decided (CONFLICT).',
};

const decideSpec = (verb: 'approve' | 'deny'): CommandSpec => ({
  name: `talon approvals ${verb}`,
  summary: verb === 'approve' ? 'Approve the pending call ID.' : 'Deny the pending call ID.',
  positionals: [{ name: 'ID', required: true, description: 'the approval (talon approvals list)' }],
  options: {
    ...DATA_OPTIONS,
    note: { type: 'string', short: 'n', value: 'TEXT', description: 'the reason, shown to whoever asked (≤ 500)' },
  },
});

const APPROVALS_SUBSPECS: Record<string, CommandSpec> = {
  list: {
    name: 'talon approvals list',
    summary: 'List the approvals, newest first.',
    options: {
      ...DATA_OPTIONS,
      state: { type: 'string', short: 's', value: 'STATE', description: 'only pending, approved, denied or expired' },
      limit: { type: 'string', short: 'n', value: 'N', description: 'at most N (1-500, default 100)' },
    },
  },
  approve: decideSpec('approve'),
  deny: decideSpec('deny'),
};

function left(ms: number): string {
  if (ms <= 0) return 'expired';
  const s = Math.ceil(ms / 1000);
  return s >= 120 ? `${Math.floor(s / 60)} min left` : `${s} s left`;
}

function approvalLine(a: Approval, now: number): string {
  const when = a.state === 'pending' ? left(a.expiresAt - now) : `by ${a.by ?? '?'}${a.note ? ` (${a.note})` : ''}`;
  let input = JSON.stringify(a.input) ?? '';
  if (input.length > 120) input = `${input.slice(0, 119)}…`;
  return printable(
    `${a.id}  ${a.state.padEnd(8)} ${a.tool}  asked by ${a.actor}  ${when}\n    input ${input}${a.goal ? `\n    goal  ${a.goal}` : ''}`,
  );
}

async function approvalsMain(argv: string[], io: Io): Promise<number> {
  // `talon approvals` and `talon approvals --state pending` list
  const first = argv[0];
  const listing = first === undefined || (first.startsWith('-') && first !== '--help' && first !== '-h');
  const picked = parseSubcommand(approvalsSpec, APPROVALS_SUBSPECS, listing ? ['list', ...argv] : argv, io);
  if (!picked) return 0;
  const { spec: s, args } = picked;
  const client = DaemonClient.open(await dataDir(args, io));
  const json = args.values.json === true;
  if (picked.name === 'list') {
    const q = new URLSearchParams();
    const state = args.values.state as string | undefined;
    if (state !== undefined) {
      if (!APPROVAL_STATES.includes(state))
        throw new UsageError(`--state must be one of ${APPROVAL_STATES.join(', ')}`, s);
      q.set('state', state);
    }
    if (args.values.limit !== undefined) {
      const n = Number(args.values.limit);
      if (!Number.isInteger(n) || n < 1 || n > 500) throw new UsageError('--limit must be a whole number 1-500', s);
      q.set('limit', String(n));
    }
    const qs = q.toString();
    const r = await client.request<{ approvals: Approval[]; pending: number }>(
      'GET',
      `/api/v1/approvals${qs ? `?${qs}` : ''}`,
    );
    if (json) io.out(`${JSON.stringify(r, null, 2)}\n`);
    else {
      const now = Date.now();
      for (const a of r.approvals) io.out(`${approvalLine(a, now)}\n`);
      io.out(`${plural(r.approvals.length, 'approval')}; ${r.pending} pending\n`);
    }
    return 0;
  }
  const id = args.positionals[0]!;
  const note = args.values.note as string | undefined;
  if (note !== undefined && note.length > 500) throw new UsageError('--note is at most 500 characters', s);
  const { approval } = await client.request<{ approval: Approval }>(
    'POST',
    `/api/v1/approvals/${encodeURIComponent(id)}`,
    { decision: picked.name, ...(note !== undefined ? { note } : {}) },
  );
  if (json) io.out(`${JSON.stringify(approval, null, 2)}\n`);
  else io.out(printable(`${approval.id} ${approval.state}: ${approval.tool} for ${approval.actor}\n`));
  return 0;
}

// ---------------------------------------------------------------------------------------
// talon runs

export const runsSpec: CommandSpec = {
  name: 'talon runs',
  summary: "A Hand's agent runs (`talon runs HAND`), or one run's steps (`talon runs show ID`).",
  positionals: [
    { name: 'HAND', required: true, description: "the Hand's name, or `show` followed by a run id" },
    { name: 'ID', required: false, description: 'with `show`: the run' },
  ],
  options: {
    ...DATA_OPTIONS,
    limit: { type: 'string', short: 'n', value: 'N', description: 'at most N runs (1-200, default 20)' },
    before: { type: 'string', value: 'ID', description: 'the runs older than this one' },
  },
  notes: 'Exit codes: 0 ok, 1 Talon not running, 2 bad usage or no such Hand or run.',
};

const tokens = (u: { inputTokens: number; outputTokens: number }): string =>
  `${u.inputTokens}+${u.outputTokens} tokens`;
const duration = (r: { startedAt: number; endedAt?: number }): string =>
  r.endedAt !== undefined ? `${((r.endedAt - r.startedAt) / 1000).toFixed(1)} s` : 'running';
const clip = (v: unknown, n = 300): string => {
  const t = show(v) ?? '';
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
};

async function runsMain(argv: string[], io: Io): Promise<number> {
  const args = parse(runsSpec, argv);
  if (args.help) {
    io.out(helpText(runsSpec));
    return 0;
  }
  const [first, second] = args.positionals;
  const json = args.values.json === true;
  const showing = first === 'show' && second !== undefined;
  if (!showing && second !== undefined) throw new UsageError(`unexpected argument "${second}"`, runsSpec);
  const client = DaemonClient.open(await dataDir(args, io));
  if (showing) {
    const { run } = await client.request<{ run: AgentRun }>('GET', `/api/v1/runs/${encodeURIComponent(second)}`);
    if (json) {
      io.out(`${JSON.stringify(run, null, 2)}\n`);
      return 0;
    }
    const out: string[] = [
      `${run.id}  ${run.hand}  ${run.state}  ${duration(run)}  ${tokens(run.usage)}${run.cost !== undefined ? `  $${run.cost.toFixed(4)}` : ''}`,
      `goal: ${run.goal}`,
    ];
    for (const st of run.steps) {
      out.push(
        `step ${st.index}${st.provider ? ` ${st.provider}${st.model ? `/${st.model}` : ''}` : ''}: model ${Math.round(st.modelMs)} ms, kernel ${st.overheadMs.toFixed(1)} ms, ${tokens(st.usage)}`,
      );
      if (st.text) out.push(`  says: ${clip(st.text)}`);
      for (const c of st.calls) {
        out.push(`  → ${c.tool} ${clip(c.input, 200)}  (${Math.round(c.ms)} ms)`);
        out.push(
          c.error ? `  ✗ ${c.error.code}: ${c.error.message}` : `  ← ${clip(c.output)}${c.truncated ? ' (cut)' : ''}`,
        );
      }
    }
    if (run.error) out.push(`error: ${run.error.code}: ${run.error.message}`);
    else if (run.answer !== undefined) out.push(`answer: ${show(run.answer)}`);
    io.out(`${printable(out.join('\n'))}\n`);
    return 0;
  }
  const q = new URLSearchParams();
  if (args.values.limit !== undefined) {
    const n = Number(args.values.limit);
    if (!Number.isInteger(n) || n < 1 || n > 200)
      throw new UsageError('--limit must be a whole number 1-200', runsSpec);
    q.set('limit', String(n));
  }
  if (args.values.before !== undefined) q.set('before', String(args.values.before));
  const qs = q.toString();
  const { runs } = await client.request<{ runs: RunSummary[] }>(
    'GET',
    `/api/v1/hands/${encodeURIComponent(first!)}/runs${qs ? `?${qs}` : ''}`,
  );
  if (json) io.out(`${JSON.stringify(runs, null, 2)}\n`);
  else {
    for (const r of runs) {
      let goal = r.goal.replace(/\s+/g, ' ');
      if (goal.length > 60) goal = `${goal.slice(0, 59)}…`;
      io.out(
        printable(
          `${r.id}  ${new Date(r.startedAt).toISOString()}  ${r.state.padEnd(7)} ${plural(r.stepCount, 'step')}, ${tokens(r.usage)}, ${duration(r)}  ${goal}${r.error ? `  [${r.error.code}]` : ''}\n`,
        ),
      );
    }
    io.out(`${plural(runs.length, 'run')}\n`);
  }
  return 0;
}

export const tools: CommandModule = { main: toolsMain };
export const approvals: CommandModule = { main: approvalsMain };
export const runs: CommandModule = { main: runsMain };
/** `talon tools` (the module's default command) */
export const main = toolsMain;
