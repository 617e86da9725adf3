/**
 * The tools, approvals and runs routes through the real HTTP server (auth in LevelDB, the
 * route table's validation) over small fakes of the registry, the approval queue and the run
 * store: answers match their response schemas, the registry's typed errors keep their statuses,
 * a viewer reads but does not call or decide, and /mcp takes only a token with mcp:write.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_TOKEN, serveTools, TOOL_LIST, type ToolsServer } from './tools-fakes.ts';
import { renderMetrics } from '../../runtime/api/metrics.ts';
import { holds, ROLE_SCOPES } from '../../web-admin/auth/scopes.ts';

let s: ToolsServer;
let bare: ToolsServer;
let adminToken: string;
let viewerToken: string;
let mcpToken: string;
let toolsWriteToken: string;
const mcpSeen: Array<{ method: string; body: unknown; actor: string }> = [];

const mcp = {
  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: { actor: string }) {
    mcpSeen.push({ method: req.method ?? '', body, actor: principal.actor });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: (body as { id?: unknown } | undefined)?.id ?? null, result: {} }));
  },
};

before(async () => {
  s = await serveTools({ mcp });
  bare = await serveTools({ withTools: false });
  const auth = s.http.auth;
  await auth.users.create({ name: 'owner', password: 'correct horse battery', role: 'admin' });
  await auth.users.create({ name: 'val', password: 'correct horse battery', role: 'viewer' });
  adminToken = (await auth.tokens.create({ name: 'all', user: 'owner', scopes: ['*'] })).token;
  viewerToken = (await auth.tokens.create({ name: 'read', user: 'val', scopes: ['tools:read'] })).token;
  mcpToken = (await auth.tokens.create({ name: 'assistant', user: 'owner', scopes: ['mcp:write'] })).token;
  toolsWriteToken = (await auth.tokens.create({ name: 'tools', user: 'owner', scopes: ['tools:write'] })).token;
});

after(async () => {
  await s?.close();
  await bare?.close();
});

interface Answer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

async function send(
  method: string,
  path: string,
  opts: { token?: string | null; body?: unknown; on?: ToolsServer; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const token = opts.token === undefined ? CLI_TOKEN : opts.token;
  const headers: Record<string, string> = { ...opts.headers };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${(opts.on ?? s).url}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, body, text };
}

/** the answer matches the route's schema for its status */
function conforms(method: string, path: string, a: Answer): void {
  const m = s.http.router.match(method, new URL(path, 'http://x').pathname);
  assert.equal(m.kind, 'route', `${method} ${path} is a route`);
  if (m.kind !== 'route') return;
  assert.deepEqual(s.http.router.checkResponse(m.route, a.status, a.body), [], `${method} ${path} ${a.status}`);
}

test('GET /api/v1/tools lists every tool with its info; one tool by name; an unknown one is TOOL_NOT_FOUND', async () => {
  const list = await send('GET', '/api/v1/tools');
  assert.equal(list.status, 200, list.text);
  conforms('GET', '/api/v1/tools', list);
  assert.deepEqual(
    list.body.tools.map((t: { name: string }) => t.name),
    TOOL_LIST.map((t) => t.name),
  );
  assert.equal(list.body.tools.find((t: { name: string }) => t.name === 'file.delete').needsApproval, true);

  const one = await send('GET', '/api/v1/tools/shell.exec');
  assert.equal(one.status, 200);
  conforms('GET', '/api/v1/tools/shell.exec', one);
  assert.equal(one.body.tool.capability, 'shell: the programs of the pipeline');

  const none = await send('GET', '/api/v1/tools/no.such');
  assert.equal(none.status, 404);
  assert.equal(none.body.error.code, 'TOOL_NOT_FOUND');
  assert.match(none.body.error.message, /no tool "no\.such"/);

  const bad = await send('GET', '/api/v1/tools/..%2Fetc');
  assert.equal(bad.status, 400);
});

test('POST /api/v1/tools/{name}/call runs it as the admin and answers the ToolResult', async () => {
  const r = await send('POST', '/api/v1/tools/shell.exec/call', { body: { input: { command: 'ls | wc -l' } } });
  assert.equal(r.status, 200, r.text);
  conforms('POST', '/api/v1/tools/shell.exec/call', r);
  assert.deepEqual(r.body.output, { stdout: 'ran ls | wc -l\n', stderr: '', exitCode: 0 });
  assert.equal(r.body.truncated, false);
  const call = s.tools.calls.at(-1)!;
  assert.equal(call.name, 'shell.exec');
  assert.equal(call.caller.actor, 'cli');
  assert.equal(call.caller.admin, true);
  assert.equal(call.signal, true, 'the request’s abort signal is handed on');

  const byToken = await send('POST', '/api/v1/tools/time.now/call', { token: adminToken, body: { input: {} } });
  assert.equal(byToken.status, 200);
  assert.match(s.tools.calls.at(-1)!.caller.actor, /^token:[0-9a-f]+\(owner\)$/);
});

test("the registry's typed errors keep their codes and statuses", async () => {
  const cases: Array<[string, unknown, number, string]> = [
    ['shell.exec', {}, 400, 'TOOL_BAD_INPUT'],
    ['shell.exec', { command: 'sleep 100' }, 504, 'TOOL_TIMEOUT'],
    ['shell.exec', { command: 'false' }, 502, 'TOOL_FAILED'],
    ['mcp.lab.probe', {}, 503, 'MCP_UNAVAILABLE'],
    ['no.such', {}, 404, 'TOOL_NOT_FOUND'],
  ];
  for (const [name, input, status, code] of cases) {
    const r = await send('POST', `/api/v1/tools/${name}/call`, { body: { input } });
    assert.equal(r.status, status, `${name} ${JSON.stringify(input)}: ${r.text}`);
    assert.equal(r.body.error.code, code);
  }
  const badInput = await send('POST', '/api/v1/tools/shell.exec/call', { body: { input: {} } });
  assert.equal(badInput.body.error.code, 'TOOL_BAD_INPUT');
  assert.deepEqual(badInput.body.error.details.errors, [{ path: '/command', message: 'is required' }]);
  // the body's shape is the route's: input must be an object, nothing else beside it
  for (const body of [{ input: 'ls' }, { input: {}, extra: 1 }, { input: [1] }]) {
    const r = await send('POST', '/api/v1/tools/time.now/call', { body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error.code, 'BAD_REQUEST');
  }
});

test('a viewer reads tools, approvals and runs, but neither calls nor decides; a tools:write token does', async () => {
  s.approvals.add({ id: 'ap-viewer' });
  for (const path of ['/api/v1/tools', '/api/v1/approvals', '/api/v1/hands/gardener/runs', '/api/v1/runs/run-1']) {
    const r = await send('GET', path, { token: viewerToken });
    assert.equal(r.status, 200, `${path}: ${r.text}`);
  }
  const call = await send('POST', '/api/v1/tools/time.now/call', { token: viewerToken, body: { input: {} } });
  assert.equal(call.status, 403);
  assert.equal(call.body.error.code, 'FORBIDDEN');
  const decide = await send('POST', '/api/v1/approvals/ap-viewer', {
    token: viewerToken,
    body: { decision: 'approve' },
  });
  assert.equal(decide.status, 403);
  assert.equal((await s.approvals.get('ap-viewer')).state, 'pending');
  const none = await send('GET', '/api/v1/tools', { token: null });
  assert.equal(none.status, 401);
  // an mcp-only token reaches no REST area
  const mcpOnly = await send('GET', '/api/v1/tools', { token: mcpToken });
  assert.equal(mcpOnly.status, 403);
  const writer = await send('POST', '/api/v1/tools/time.now/call', { token: toolsWriteToken, body: { input: {} } });
  assert.equal(writer.status, 200, writer.text);
});

test('approvals: list by state with the pending count, approve with a note, a second answer is a CONFLICT', async () => {
  s.approvals.add({ id: 'ap-1', tool: 'shell.exec', input: { command: 'rm -rf old' } });
  s.approvals.add({ id: 'ap-2' });
  const pending = await send('GET', '/api/v1/approvals?state=pending');
  assert.equal(pending.status, 200, pending.text);
  conforms('GET', '/api/v1/approvals', pending);
  const ids = pending.body.approvals.map((a: { id: string }) => a.id);
  assert.ok(ids.includes('ap-1') && ids.includes('ap-2'));
  assert.equal(pending.body.pending, s.approvals.pending());

  const one = await send('GET', '/api/v1/approvals/ap-1');
  assert.equal(one.status, 200);
  conforms('GET', '/api/v1/approvals/ap-1', one);
  assert.deepEqual(one.body.approval.input, { command: 'rm -rf old' });

  const ok = await send('POST', '/api/v1/approvals/ap-1', {
    token: adminToken,
    body: { decision: 'approve', note: 'old is a scratch folder' },
  });
  assert.equal(ok.status, 200, ok.text);
  conforms('POST', '/api/v1/approvals/ap-1', ok);
  assert.equal(ok.body.approval.state, 'approved');
  assert.equal(ok.body.approval.note, 'old is a scratch folder');
  assert.match(ok.body.approval.by, /^token:[0-9a-f]+\(owner\)$/, 'the queue is told who answered');

  const again = await send('POST', '/api/v1/approvals/ap-1', { body: { decision: 'deny' } });
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'CONFLICT');

  const deny = await send('POST', '/api/v1/approvals/ap-2', { body: { decision: 'deny' } });
  assert.equal(deny.body.approval.state, 'denied');
  assert.equal(deny.body.approval.by, 'cli');

  const approvedOnly = await send('GET', '/api/v1/approvals?state=approved');
  assert.deepEqual(
    approvedOnly.body.approvals.map((a: { id: string }) => a.id),
    ['ap-1'],
  );

  const missing = await send('POST', '/api/v1/approvals/nope', { body: { decision: 'approve' } });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'APPROVAL_NOT_FOUND');
  const long = await send('POST', '/api/v1/approvals/ap-viewer', { body: { decision: 'deny', note: 'x'.repeat(501) } });
  assert.equal(long.status, 400);
  const maybe = await send('POST', '/api/v1/approvals/ap-viewer', { body: { decision: 'maybe' } });
  assert.equal(maybe.status, 400);
  const badState = await send('GET', '/api/v1/approvals?state=open');
  assert.equal(badState.status, 400);
  assert.equal((await s.approvals.get('ap-viewer')).state, 'pending', 'refused answers change nothing');
});

test("runs: a Hand's runs without steps, one run with its steps, RUN_NOT_FOUND", async () => {
  const list = await send('GET', '/api/v1/hands/gardener/runs?limit=5');
  assert.equal(list.status, 200, list.text);
  conforms('GET', '/api/v1/hands/gardener/runs', list);
  assert.deepEqual(
    list.body.runs.map((r: { id: string; stepCount: number }) => [r.id, r.stepCount]),
    [
      ['run-1', 2],
      ['run-0', 0],
    ],
  );
  assert.equal(list.body.runs[0].steps, undefined);
  assert.deepEqual(s.runs.asked.at(-1), { hand: 'gardener', limit: 5 });

  const page = await send('GET', '/api/v1/hands/gardener/runs?before=run-1');
  assert.deepEqual(
    page.body.runs.map((r: { id: string }) => r.id),
    ['run-0'],
  );

  const one = await send('GET', '/api/v1/runs/run-1');
  assert.equal(one.status, 200);
  conforms('GET', '/api/v1/runs/run-1', one);
  assert.equal(one.body.run.steps[0].calls[1].error.code, 'APPROVAL_DENIED');

  const none = await send('GET', '/api/v1/runs/run-9');
  assert.equal(none.status, 404);
  assert.equal(none.body.error.code, 'RUN_NOT_FOUND');
  const badHand = await send('GET', '/api/v1/hands/Not_A_Hand/runs');
  assert.equal(badHand.status, 400);
  const badLimit = await send('GET', '/api/v1/hands/gardener/runs?limit=0');
  assert.equal(badLimit.status, 400);
});

test("a Hand's browser files: a PNG inline, anything else as an attachment; nothing outside browser/", async () => {
  const dir = join(s.dataDir, 'hands', 'web', 'files');
  mkdirSync(join(dir, 'browser', 'login-1'), { recursive: true });
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  writeFileSync(join(dir, 'browser', 'read-1.png'), png);
  writeFileSync(join(dir, 'browser', 'login-1', 'page.html'), '<script>alert(1)</script>');
  writeFileSync(join(dir, 'secret.txt'), 'not served');
  symlinkSync(join(dir, 'secret.txt'), join(dir, 'browser', 'link.png'));
  const get = (hand: string, path: string, token?: string | null) =>
    fetch(`${s.url}/api/v1/hands/${hand}/file?path=${encodeURIComponent(path)}`, {
      headers: token === null ? {} : { authorization: `Bearer ${token ?? CLI_TOKEN}` },
    });
  const shot = await get('web', 'browser/read-1.png', viewerToken);
  assert.equal(shot.status, 200);
  assert.equal(shot.headers.get('content-type'), 'image/png');
  assert.match(shot.headers.get('content-disposition') ?? '', /^inline/);
  assert.deepEqual(Buffer.from(await shot.arrayBuffer()), png);
  const page = await get('web', 'browser/login-1/page.html');
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'application/octet-stream');
  assert.match(page.headers.get('content-disposition') ?? '', /^attachment; filename="page.html"/);
  for (const bad of ['secret.txt', 'browser/../secret.txt', 'browser/a/b/c.png', '/etc/passwd', 'browser/.hidden'])
    assert.equal((await get('web', bad)).status, 400, bad);
  assert.equal((await get('web', 'browser/link.png')).status, 404, 'a link in the folder leads nowhere');
  // a run folder that is a link out of the Hand's folder, and a Hand whose whole browser/ is such a link
  mkdirSync(join(s.dataDir, 'elsewhere'), { recursive: true });
  writeFileSync(join(s.dataDir, 'elsewhere', 'key.png'), "not the Hand's");
  symlinkSync(join(s.dataDir, 'elsewhere'), join(dir, 'browser', 'run-9'));
  assert.equal((await get('web', 'browser/run-9/key.png')).status, 404, 'a linked run folder leads nowhere');
  const other = join(s.dataDir, 'hands', 'sly', 'files');
  mkdirSync(other, { recursive: true });
  symlinkSync(join(s.dataDir, 'elsewhere'), join(other, 'browser'));
  assert.equal((await get('sly', 'browser/key.png')).status, 404, 'a linked browser/ leads nowhere');
  assert.equal((await get('web', 'browser/gone.png')).status, 404);
  assert.equal((await get('other', 'browser/read-1.png')).status, 404, "another Hand's folder");
  assert.equal((await get('web', 'browser/read-1.png', null)).status, 401);
});

test('the OpenAPI document has the tools area and names /mcp in its description', async () => {
  const r = await send('GET', '/api/v1/openapi.json', { token: null });
  assert.equal(r.status, 200);
  assert.ok(r.body.tags.some((t: { name: string }) => t.name === 'tools'));
  for (const p of ['/api/v1/tools', '/api/v1/tools/{name}/call', '/api/v1/approvals/{id}', '/api/v1/runs/{id}'])
    assert.ok(r.body.paths[p], p);
  assert.equal(r.body.paths['/api/v1/approvals/{id}'].post['x-access'], 'write');
  assert.ok(r.body.paths['/api/v1/approvals/{id}'].post.responses['409']);
  assert.equal(r.body.paths['/mcp'], undefined, 'not a route of the table');
  assert.match(r.body.info.description, /\/mcp .*mcp:write/);
});

test('without tools set up the routes answer 503 NOT_RUNNING; without MCP /mcp is 404', async () => {
  const r = await send('GET', '/api/v1/tools', { on: bare });
  assert.equal(r.status, 503);
  assert.equal(r.body.error.code, 'NOT_RUNNING');
  assert.match(r.body.error.message, /tools are not set up/);
  const m = await send('POST', '/mcp', { on: bare, body: { jsonrpc: '2.0', id: 1, method: 'ping' } });
  assert.equal(m.status, 404);
  assert.equal(m.body.error.code, 'NOT_FOUND');
  assert.match(m.body.error.message, /tools\.mcp\.serve/);
});

test('/mcp takes a bearer token with mcp:write (or *), hands the parsed body on, refuses everything else', async () => {
  const rpc = { jsonrpc: '2.0', id: 7, method: 'tools/list' };
  const before = mcpSeen.length;
  const none = await send('POST', '/mcp', { token: null, body: rpc });
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'UNAUTHORIZED');
  const wrong = await send('POST', '/mcp', { token: 'tln_not-a-token', body: rpc });
  assert.equal(wrong.status, 401);
  const noScope = await send('POST', '/mcp', { token: toolsWriteToken, body: rpc });
  assert.equal(noScope.status, 403);
  assert.equal(noScope.body.error.code, 'FORBIDDEN');
  assert.match(noScope.body.error.message, /mcp:write/);
  const viewer = await send('POST', '/mcp', { token: viewerToken, body: rpc });
  assert.equal(viewer.status, 403);
  assert.equal(mcpSeen.length, before, 'no refused request reached the MCP server');

  const ok = await send('POST', '/mcp', { token: mcpToken, body: rpc });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.body, { jsonrpc: '2.0', id: 7, result: {} });
  const seen = mcpSeen.at(-1)!;
  assert.deepEqual(seen.body, rpc);
  assert.equal(seen.method, 'POST');
  assert.match(seen.actor, /^token:[0-9a-f]+\(owner\)$/);

  const all = await send('GET', '/mcp', { token: adminToken });
  assert.equal(all.status, 200);
  assert.equal(mcpSeen.at(-1)!.method, 'GET');
  assert.equal(mcpSeen.at(-1)!.body, undefined);

  const put = await send('PUT', '/mcp', { token: mcpToken, body: rpc });
  assert.equal(put.status, 405);
  const notJson = await fetch(`${s.url}/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${mcpToken}`, 'content-type': 'application/json' },
    body: '{"jsonrpc":',
  });
  assert.equal(notJson.status, 400);
  const big = await send('POST', '/mcp', { token: mcpToken, body: { pad: 'x'.repeat(70 * 1024) } });
  assert.equal(big.status, 413);
  // a page on another site cannot drive it even with the token in hand
  const cross = await send('POST', '/mcp', { token: mcpToken, body: rpc, headers: { origin: 'https://evil.example' } });
  assert.equal(cross.status, 403);
  assert.equal(cross.body.error.code, 'ORIGIN_NOT_ALLOWED');
});

test('the mcp scope: a viewer never holds it (tools:read it does); the token scopes accept mcp:write', async () => {
  const viewer = { actor: 'user:val', kind: 'session', user: 'val', role: 'viewer', scopes: ['*'] } as const;
  assert.equal(holds({ ...viewer, scopes: ['*'] }, 'mcp:write'), false);
  assert.equal(holds({ ...viewer, scopes: ['mcp:write'] }, 'mcp:write'), false);
  assert.equal(holds({ ...viewer, role: 'admin', scopes: ['mcp:write'] }, 'mcp:write'), true);
  assert.ok(ROLE_SCOPES.viewer.includes('tools:read'));
  assert.ok(!ROLE_SCOPES.viewer.some((x) => x.startsWith('mcp:')));
  const r = await send('POST', '/api/v1/tokens', {
    token: adminToken,
    body: { name: 'assistant-2', scopes: ['mcp:write'] },
  });
  assert.equal(r.status, 201, r.text);
});

test('/metrics renders the tool, approval and run families', async () => {
  const r = await send('GET', '/metrics');
  assert.equal(r.status, 200);
  for (const line of [
    'talon_tool_calls_total{device="dev1",tool="shell.exec",outcome="ok"} 3',
    'talon_tool_calls_total{device="dev1",tool="shell.exec",outcome="denied"} 1',
    'talon_tool_calls_total{device="dev1",tool="shell.exec",outcome="failed"} 2',
    '# TYPE talon_tool_call_seconds summary',
    'talon_tool_call_seconds_sum{device="dev1",tool="shell.exec"} 1.5',
    'talon_tool_call_seconds_count{device="dev1",tool="shell.exec"} 6',
    'talon_agent_runs_total{device="dev1",state="done"} 4',
    'talon_agent_steps_total{device="dev1"} 17',
  ])
    assert.ok(r.text.includes(`${line}\n`), `${line}\n---\n${r.text.slice(-1500)}`);
  assert.match(r.text, /^talon_approvals_pending\{device="dev1"\} \d+$/m);
  // without a tools input the families are not there at all
  const plain = renderMetrics({
    deviceId: 'd',
    uptimeMs: 0,
    sensors: [],
    drivers: [],
    hands: [],
    bus: { published: 0, delivered: 0, droppedOversize: 0, droppedMalformed: 0, handlerErrors: 0, clients: 0 } as never,
    audit: { seq: 0, checkpointSeq: 0 },
    process: { rssBytes: 0, heapUsedBytes: 0, cpuSeconds: 0 },
  });
  assert.doesNotMatch(plain, /talon_tool_|talon_approvals_|talon_agent_/);
});
