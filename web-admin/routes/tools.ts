/**
 * Tools, approvals and agent runs (runtime/api/tools-api.ts over runtime/tools and
 * runtime/agent): the tools a caller may call and one admin call; the approval queue, where a
 * person answers a Hand's (or an MCP client's) request to run a destructive tool; a Hand's agent
 * runs and one run's steps. Viewers read; approving, denying and calling take an admin.
 *
 * The MCP endpoint (/mcp, Streamable HTTP) is not in this table: web-admin/server.ts hands it to
 * the MCP server behind a token with the `mcp:write` scope.
 */
import { defineRoutes, route, type Schema } from '../route.ts';
import { ERROR_SCHEMA } from '../openapi.ts';
import { anyObject, bool, HAND_NAME, int, ms, num, obj, open, params, str } from './schemas.ts';
import {
  APPROVAL_STATES,
  BROWSER_FILE_PATTERN,
  MAX_APPROVALS_LIMIT,
  MAX_NOTE_CHARS,
  MAX_RUNS_LIMIT,
  OBJECT_ID_PATTERN,
  TOOL_NAME_PATTERN,
} from '../../runtime/api/tools-api.ts';

const TOOL_NAME = {
  type: 'string',
  pattern: TOOL_NAME_PATTERN,
  description: 'a tool name: `file.read`, `mcp.<server>.<tool>`',
} as const;
const OBJECT_ID = { type: 'string', pattern: OBJECT_ID_PATTERN } as const;
const anyJson: Schema = { description: 'any JSON value' };
const ERROR_BODY: Schema = open({ code: str(64), message: { type: 'string' } });

export const TOOL_INFO: Schema = open(
  {
    name: str(),
    description: { type: 'string' },
    inputSchema: { ...anyObject, description: 'JSON Schema (draft 2020-12) of the input object' },
    outputSchema: { ...anyObject, description: 'JSON Schema of the output, when the tool promises one' },
    annotations: open(
      {
        title: str(),
        readOnlyHint: bool,
        destructiveHint: bool,
        idempotentHint: bool,
        openWorldHint: bool,
      },
      [],
    ),
    capability: { type: 'string', description: 'the grant it needs, in words' },
    timeoutMs: ms,
    maxOutputBytes: ms,
    source: { type: 'string', description: '`builtin` or `mcp:<server>`' },
    needsApproval: { ...bool, description: "a call by this caller waits for a person's approval" },
    available: { ...bool, description: 'false: an MCP tool whose server is down' },
  },
  ['name', 'description', 'inputSchema', 'annotations', 'capability', 'timeoutMs', 'maxOutputBytes', 'source'],
);

export const TOOL_RESULT: Schema = open(
  {
    output: anyJson,
    truncated: { ...bool, description: 'the output was cut to the tool’s maxOutputBytes' },
    ms,
    approval: open({ id: str(64), by: str() }),
  },
  ['output', 'truncated', 'ms'],
);

export const APPROVAL: Schema = open(
  {
    id: str(64),
    actor: { type: 'string', description: 'who asks: `hand:<name>`, `mcp:<token>`' },
    hand: str(63),
    tool: str(),
    input: { description: 'the input, as the person must see it (at most 4 KiB of JSON, `…` when cut)' },
    reason: { type: 'string', description: '`destructive`, `approve list`, `untrusted MCP annotations`' },
    goal: { type: 'string', description: "the agent run's goal, when the call came from one" },
    runId: str(64),
    state: { type: 'string', enum: [...APPROVAL_STATES] },
    createdAt: ms,
    expiresAt: { ...ms, description: 'no answer by then counts as deny' },
    decidedAt: ms,
    by: { type: 'string', description: 'who answered: `user:<name>`, `cli`, `mqtt:<client>`, or `timeout`' },
    note: { type: 'string', maxLength: MAX_NOTE_CHARS },
  },
  ['id', 'actor', 'tool', 'input', 'reason', 'state', 'createdAt', 'expiresAt'],
);

const USAGE: Schema = open({ inputTokens: num, outputTokens: num });
const AGENT_CALL: Schema = open(
  {
    id: str(),
    tool: str(),
    input: anyJson,
    output: anyJson,
    error: ERROR_BODY,
    ms: num,
    truncated: bool,
  },
  ['id', 'tool', 'input', 'ms'],
);
export const AGENT_STEP: Schema = open(
  {
    index: int(0, 100_000),
    text: { type: 'string', description: "the model's text of this turn (the answer on the last step)" },
    calls: { type: 'array', items: AGENT_CALL },
    usage: USAGE,
    provider: str(),
    model: str(),
    modelMs: num,
    overheadMs: { ...num, description: "the kernel's own time for the step (validation, checks, bookkeeping)" },
  },
  ['index', 'text', 'calls', 'usage', 'modelMs', 'overheadMs'],
);
const RUN_BASE = {
  id: str(64),
  hand: str(63),
  goal: { type: 'string' },
  state: { type: 'string', enum: ['running', 'done', 'failed'] },
  startedAt: ms,
  endedAt: ms,
  answer: anyJson,
  error: ERROR_BODY,
  usage: USAGE,
  cost: { ...num, description: 'USD, when the providers have prices' },
} satisfies Record<string, Schema>;
const RUN_REQUIRED = ['id', 'hand', 'goal', 'state', 'startedAt', 'usage'];
export const AGENT_RUN: Schema = open({ ...RUN_BASE, steps: { type: 'array', items: AGENT_STEP } }, [
  ...RUN_REQUIRED,
  'steps',
]);
export const RUN_SUMMARY: Schema = open({ ...RUN_BASE, stepCount: int(0, 100_000) }, [...RUN_REQUIRED, 'stepCount']);

const err = (description: string) => ({ description, schema: ERROR_SCHEMA });

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/tools',
    operationId: 'listTools',
    summary: 'The tools: name, description, input and output schemas, annotations, capability, limits, source',
    tag: 'tools',
    access: 'read',
    responses: {
      200: { description: 'every tool, sorted by name', schema: obj({ tools: { type: 'array', items: TOOL_INFO } }) },
    },
    handler: async ({ api, caller }) => ({ tools: await api.tools.list(caller) }),
  },
  route({
    method: 'GET',
    path: '/api/v1/tools/{name}',
    operationId: 'getTool',
    summary: 'One tool',
    tag: 'tools',
    access: 'read',
    params: params({ name: TOOL_NAME }),
    responses: { 200: { description: 'the tool', schema: obj({ tool: TOOL_INFO }) } },
    handler: async ({ api, caller, params: p }) => ({ tool: await api.tools.info(caller, p.name) }),
  }),
  route({
    method: 'POST',
    path: '/api/v1/tools/{name}/call',
    operationId: 'callTool',
    summary:
      'Call a tool as the admin (no grant checks, no approval): the input is checked against its schema, the call audited',
    tag: 'tools',
    access: 'write',
    params: params({ name: TOOL_NAME }),
    body: obj({ input: { ...anyObject, description: "the tool's input, checked against its inputSchema" } }),
    responses: {
      200: { description: "the tool's result", schema: TOOL_RESULT },
      400: err('TOOL_BAD_INPUT: the input fails the tool’s schema (details.errors names the fields); SHELL_SYNTAX'),
      404: err('TOOL_NOT_FOUND: no tool of that name'),
      502: err('TOOL_FAILED: the tool ran and failed; TOOL_BAD_OUTPUT; MCP_ERROR: its MCP server answered badly'),
      503: err('MCP_UNAVAILABLE: its MCP server is not connected; NOT_RUNNING: tools are not set up'),
      504: err('TOOL_TIMEOUT: the tool ran out of its time'),
    },
    handler: ({ api, caller, params: p, body, signal }) => api.tools.call(caller, p.name, body.input, signal),
  }),
  route({
    method: 'GET',
    path: '/api/v1/approvals',
    operationId: 'listApprovals',
    summary: 'Tool calls that wait (or waited) for a person, newest first; `state=pending` for the open ones',
    tag: 'tools',
    access: 'read',
    query: obj(
      {
        state: { type: 'string', enum: [...APPROVAL_STATES] },
        limit: int(1, MAX_APPROVALS_LIMIT, { default: 100 }),
      },
      ['state', 'limit'],
    ),
    responses: {
      200: {
        description: 'the approvals, and how many are pending right now',
        schema: obj({ approvals: { type: 'array', items: APPROVAL }, pending: int(0, Number.MAX_SAFE_INTEGER) }),
      },
    },
    handler: async ({ api, caller, query }) => ({
      approvals: await api.tools.approvals.list(caller, {
        ...(query.state !== undefined ? { state: query.state } : {}),
        limit: query.limit,
      }),
      pending: api.tools.approvals.pending(caller),
    }),
  }),
  route({
    method: 'GET',
    path: '/api/v1/approvals/{id}',
    operationId: 'getApproval',
    summary: 'One approval',
    tag: 'tools',
    access: 'read',
    params: params({ id: OBJECT_ID }),
    responses: {
      200: { description: 'the approval', schema: obj({ approval: APPROVAL }) },
      404: err('APPROVAL_NOT_FOUND'),
    },
    handler: async ({ api, caller, params: p }) => ({ approval: await api.tools.approvals.get(caller, p.id) }),
  }),
  route({
    method: 'POST',
    path: '/api/v1/approvals/{id}',
    operationId: 'decideApproval',
    summary: 'Approve or deny a pending tool call, with a reason; audited with who answered',
    tag: 'tools',
    access: 'write',
    params: params({ id: OBJECT_ID }),
    body: obj(
      {
        decision: { type: 'string', enum: ['approve', 'deny'] },
        note: str(MAX_NOTE_CHARS, { description: 'the reason, shown to whoever asked' }),
      },
      ['note'],
    ),
    responses: {
      200: { description: 'the approval as decided', schema: obj({ approval: APPROVAL }) },
      404: err('APPROVAL_NOT_FOUND'),
      409: err('CONFLICT: it was decided already, or expired (no answer in time counts as deny)'),
    },
    handler: async ({ api, caller, params: p, body }) => ({
      approval: await api.tools.approvals.decide(caller, p.id, body.decision, body.note),
    }),
  }),
  route({
    method: 'GET',
    path: '/api/v1/hands/{name}/runs',
    operationId: 'listAgentRuns',
    summary: "A Hand's agent runs, newest first, without their steps; `before` (a run id) pages on",
    tag: 'tools',
    access: 'read',
    params: params({ name: HAND_NAME }),
    query: obj({ limit: int(1, MAX_RUNS_LIMIT, { default: 20 }), before: OBJECT_ID }, ['limit', 'before']),
    responses: {
      200: { description: 'the runs', schema: obj({ runs: { type: 'array', items: RUN_SUMMARY } }) },
    },
    handler: async ({ api, caller, params: p, query }) => ({
      runs: await api.tools.runs.list(caller, {
        hand: p.name,
        limit: query.limit,
        ...(query.before !== undefined ? { before: query.before } : {}),
      }),
    }),
  }),
  route({
    method: 'GET',
    path: '/api/v1/hands/{name}/file',
    operationId: 'getHandFile',
    summary:
      'A screenshot or download the browser tools stored for a Hand (the `file` a run names): PNG and JPEG inline, ' +
      'anything else as an attachment',
    tag: 'tools',
    access: 'read',
    params: params({ name: HAND_NAME }),
    query: obj({
      path: {
        type: 'string',
        pattern: BROWSER_FILE_PATTERN,
        maxLength: 320,
        description: 'browser/<file> or browser/<run>/<file>',
      },
    }),
    responses: {
      200: { description: 'the file', contentType: 'application/octet-stream' },
      400: err('BAD_REQUEST: not a browser file path'),
      404: err('NOT_FOUND: no such file (removed after 7 days or over the cap)'),
    },
    handler: async ({ api, caller, params: p, query, res }) => {
      const f = await api.tools.files.read(caller, p.name, query.path);
      res.writeHead(200, {
        'content-type': f.type,
        'content-length': f.bytes.length,
        'content-disposition': `${f.inline ? 'inline' : 'attachment'}; filename="${f.name}"`,
        'cache-control': 'private, max-age=3600',
      });
      res.end(f.bytes);
      return undefined;
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/runs/{id}',
    operationId: 'getAgentRun',
    summary: "One agent run: its steps, the model's text, each tool call's input and output or error, tokens, cost",
    tag: 'tools',
    access: 'read',
    params: params({ id: OBJECT_ID }),
    responses: {
      200: { description: 'the run', schema: obj({ run: AGENT_RUN }) },
      404: err('RUN_NOT_FOUND'),
    },
    handler: async ({ api, caller, params: p }) => ({ run: await api.tools.runs.get(caller, p.id) }),
  }),
]);
