/**
 * The tools area of the runtime API: the registry's tools, the approval queue and the agent
 * runs, as the REST routes (web-admin/routes/tools.ts), the CLI (through them) and any other
 * transport call them. Transport-agnostic: every call takes the caller, and the composition root
 * says how a caller maps to the tools' rights (`callerFor`: a REST admin or the CLI is an admin
 * ToolCaller, no grant checks and no approvals: the admin is the person who would approve).
 *
 * Auditing is done where the decision is made: each tool call by the registry (one `tool.call`
 * entry), each approval decision by the approval queue (with `by` = the caller's actor). This
 * layer only checks the shape of what it hands on, so a bad id or limit is a BAD_REQUEST here
 * rather than a storage error there.
 */
import { constants } from 'node:fs';
import { open, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { TalonError } from '../core/errors.ts';
import { HAND_NAME } from '../core/names.ts';
import type { Audit } from '../audit/types.ts';
import type { Caller } from '../supervisor/types.ts';
import type {
  AgentRun,
  AgentRunsApi,
  Approval,
  ApprovalDecision,
  ApprovalState,
  ApprovalsApi,
  ToolCaller,
  ToolInfo,
  ToolResult,
  Tools,
} from '../tools/types.ts';

export interface ToolsAreaDeps {
  tools: Tools;
  approvals: ApprovalsApi;
  runs: AgentRunsApi;
  /** the kernel's audit (the registry and the approval queue write their own entries) */
  audit: Audit;
  /** the rights a transport caller holds when it calls a tool */
  callerFor: (caller: Caller) => ToolCaller;
  /** the folder a Hand's tools write into (runtime/host/tools.ts handFolder) */
  handFolder?: (hand: string) => string;
}

/**
 * A file the browser tools stored for a Hand (a screenshot, a download): `browser/<file>` or
 * `browser/<flow run>/<file>`, as the tools answer them. Nothing else of the Hand's folder is served.
 */
export const BROWSER_FILE_PATTERN = '^browser/(?:[A-Za-z0-9][A-Za-z0-9._-]{0,150}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,150}$';
const BROWSER_FILE = new RegExp(BROWSER_FILE_PATTERN);
export const MAX_FILE_BYTES = 32 * 1024 * 1024;
/** shown in the page; anything else is a download (a page a flow saved must not run on the admin's origin) */
const INLINE_TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg' };

export interface HandFile {
  bytes: Buffer;
  /** the media type; `inline` false: sent as an attachment */
  type: string;
  inline: boolean;
  name: string;
}

/** a tool's name: `group.verb`, `mcp.<server>.<tool>` (MCP servers name their tools freely) */
export const TOOL_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$';
const TOOL_NAME = new RegExp(TOOL_NAME_PATTERN);
/** an approval's or a run's id */
export const OBJECT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$';
const OBJECT_ID = new RegExp(OBJECT_ID_PATTERN);
export const APPROVAL_STATES: readonly ApprovalState[] = ['pending', 'approved', 'denied', 'expired'];
export const MAX_NOTE_CHARS = 500;
export const MAX_APPROVALS_LIMIT = 500;
export const MAX_RUNS_LIMIT = 200;

export type RunSummary = Omit<AgentRun, 'steps'> & { stepCount: number };

function checkTool(name: string): void {
  if (!TOOL_NAME.test(name))
    throw new TalonError(
      'BAD_REQUEST',
      `"${name.slice(0, 80)}" is not a tool name (letters, digits, ".", "_" and "-", like file.read or mcp.server.tool)`,
    );
}

function checkId(id: string, what: string): void {
  if (!OBJECT_ID.test(id))
    throw new TalonError('BAD_REQUEST', `"${id.slice(0, 80)}" is not ${what} id (letters, digits, "_" and "-")`);
}

function checkLimit(limit: number | undefined, max: number): void {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > max))
    throw new TalonError('BAD_REQUEST', `limit must be a whole number from 1 to ${max} (got ${String(limit)})`);
}

export function toolsArea(deps: ToolsAreaDeps) {
  const { tools, approvals, runs, callerFor } = deps;
  return {
    /** the tools this caller may call (an admin: every tool), sorted by name */
    list: async (caller: Caller): Promise<ToolInfo[]> => tools.list(callerFor(caller)),

    /** one tool; TOOL_NOT_FOUND when there is none of that name */
    info: async (caller: Caller, name: string): Promise<ToolInfo> => {
      checkTool(name);
      const info = tools.info(name, callerFor(caller));
      if (!info)
        throw new TalonError('TOOL_NOT_FOUND', `there is no tool "${name}" (GET /api/v1/tools lists them)`, {
          details: { tool: name },
        });
      return info;
    },

    /** one call through the registry (its checks, its audit entry); the refusals are its typed errors */
    call: async (caller: Caller, name: string, input: unknown, signal?: AbortSignal): Promise<ToolResult> => {
      checkTool(name);
      if (typeof input !== 'object' || input === null || Array.isArray(input))
        throw new TalonError('TOOL_BAD_INPUT', `the input of "${name}" must be a JSON object`, {
          details: { errors: [{ path: '', message: 'must be an object' }] },
        });
      return tools.call(callerFor(caller), name, input, signal ? { signal } : {});
    },

    approvals: {
      /** newest first as the queue keeps them; `state` filters */
      list: async (_caller: Caller, q: { state?: ApprovalState; limit?: number } = {}): Promise<Approval[]> => {
        if (q.state !== undefined && !APPROVAL_STATES.includes(q.state))
          throw new TalonError(
            'BAD_REQUEST',
            `state must be one of ${APPROVAL_STATES.join(', ')} (got ${String(q.state).slice(0, 40)})`,
          );
        checkLimit(q.limit, MAX_APPROVALS_LIMIT);
        return approvals.list({
          ...(q.state !== undefined ? { state: q.state } : {}),
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
        });
      },
      get: async (_caller: Caller, id: string): Promise<Approval> => {
        checkId(id, 'an approval');
        return approvals.get(id);
      },
      /** the caller's answer; APPROVAL_NOT_FOUND, CONFLICT when it was decided or expired already */
      decide: async (caller: Caller, id: string, decision: ApprovalDecision, note?: string): Promise<Approval> => {
        checkId(id, 'an approval');
        if (decision !== 'approve' && decision !== 'deny')
          throw new TalonError('BAD_REQUEST', `decision must be "approve" or "deny" (got ${String(decision)})`);
        if (note !== undefined && (typeof note !== 'string' || note.length > MAX_NOTE_CHARS))
          throw new TalonError('BAD_REQUEST', `the note must be text of at most ${MAX_NOTE_CHARS} characters`);
        return approvals.decide(id, decision, caller.actor, note);
      },
      /** pending right now */
      pending: (_caller: Caller): number => approvals.pending(),
    },

    files: {
      /** one file the browser tools stored for a Hand (BROWSER_FILE_PATTERN); NOT_FOUND when it is gone */
      read: async (_caller: Caller, hand: string, path: string): Promise<HandFile> => {
        if (!HAND_NAME.test(hand))
          throw new TalonError(
            'BAD_REQUEST',
            `"${hand.slice(0, 80)}" is not a Hand name (lowercase letters, digits and dashes)`,
          );
        if (!BROWSER_FILE.test(path) || path.includes('..'))
          throw new TalonError(
            'BAD_REQUEST',
            `"${path.slice(0, 200)}" is not a browser file of a Hand (browser/<file> or browser/<run>/<file>, as ` +
              'the runs name them)',
          );
        const gone = (): TalonError =>
          new TalonError(
            'NOT_FOUND',
            `Hand "${hand}" has no file ${path} (files older than 7 days, or over the folder's cap, are removed)`,
          );
        if (!deps.handFolder) throw gone();
        const folder = deps.handFolder(hand);
        // no link anywhere on the way: the folder is the Hand's, and a link in it must not lead out. Checked on the
        // file as opened (O_NOFOLLOW, then where the descriptor really is), not by looking first: a Hand could swap a
        // folder for a link between a look and the read
        const base = await realpath(folder).catch(() => null);
        const found = await realpath(join(folder, 'browser')).catch(() => null);
        // `browser` itself must be the folder's own, not a link to elsewhere
        const root = base && found === join(base, 'browser') ? found : null;
        const fh = root
          ? await open(join(folder, path), constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => null)
          : null;
        if (!root || !fh) throw gone();
        let bytes: Buffer;
        try {
          const real = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => null);
          const st = await fh.stat();
          if (!real?.startsWith(`${root}/`) || real !== join(root, path.slice('browser/'.length)) || !st.isFile())
            throw gone();
          if (st.size > MAX_FILE_BYTES)
            throw new TalonError(
              'PAYLOAD_TOO_LARGE',
              `${path} is ${st.size} bytes; at most ${MAX_FILE_BYTES} are served`,
            );
          bytes = await fh.readFile();
        } finally {
          await fh.close();
        }
        const name = path.split('/').at(-1) as string;
        const ext = name.includes('.') ? (name.split('.').at(-1) as string).toLowerCase() : '';
        const type = INLINE_TYPES[ext];
        return {
          bytes,
          type: type ?? 'application/octet-stream',
          inline: type !== undefined,
          name,
        };
      },
    },

    runs: {
      /** a Hand's runs, newest first, without their steps; `before` pages on (a run id) */
      list: async (_caller: Caller, q: { hand: string; limit?: number; before?: string }): Promise<RunSummary[]> => {
        if (!HAND_NAME.test(q.hand))
          throw new TalonError(
            'BAD_REQUEST',
            `"${q.hand.slice(0, 80)}" is not a Hand name (lowercase letters, digits and dashes)`,
          );
        checkLimit(q.limit, MAX_RUNS_LIMIT);
        if (q.before !== undefined) checkId(q.before, 'a run');
        return runs.list({
          hand: q.hand,
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.before !== undefined ? { before: q.before } : {}),
        });
      },
      /** one run with its steps; RUN_NOT_FOUND */
      get: async (_caller: Caller, id: string): Promise<AgentRun> => {
        checkId(id, 'a run');
        return runs.get(id);
      },
    },
  };
}

export type ToolsArea = ReturnType<typeof toolsArea>;
