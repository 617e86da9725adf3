/**
 * Tools end to end, on the real daemon (dist/talon.cjs): a Hand calls tools through ctx.tools and runs an
 * agent through ctx.agent against a scripted model speaking the OpenAI wire format; a shell pipeline
 * runs for real; refusals leave the Hand running; a destructive call waits for a person who answers
 * from the CLI and over MQTT; the run is stored and shown by the CLI and REST; Talon's /mcp is driven
 * by the MCP SDK's own client; every call lands in the audit log.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ensureBuilt, startDaemon, cli, type Daemon } from '../helpers/daemon.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startFakeLlm, type FakeLlm } from '../helpers/llm-fakes.ts';

let fake: FakeLlm;
let d: Daemon;
let client: mqtt.MqttClient;
const answers = new Map<string, { result?: unknown; error?: { code: string; message: string } }>();
const waiters = new Map<string, (v: { result?: unknown; error?: { code: string; message: string } }) => void>();

before(async () => {
  ensureBuilt();
  fake = await startFakeLlm('openai');
  const smith = await fixture('toolsmith');
  d = await startDaemon({
    hands: [{ name: 'smith', module: smith }],
    drivers: [],
    llm: {
      providers: [{ name: 'cloud', kind: 'openai', baseUrl: fake.url, model: 'fake-model' }],
      retry: { maxAttempts: 1, baseMs: 10, maxMs: 100, jitter: 0.1 },
    },
    tools: {
      approvalTimeoutMs: 60_000,
      mcp: { serve: { enabled: true, expose: ['time.now', 'hands.list', 'json.query'] } },
    },
  });
  // an admin client: a Hand's outputs are not public
  client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
    username: 'token',
    password: d.token(),
    reconnectPeriod: 0,
  });
  client.on('message', (_topic, payload) => {
    const m = JSON.parse(payload.toString()) as {
      id: string;
      result?: unknown;
      error?: { code: string; message: string };
    };
    answers.set(m.id, m);
    waiters.get(m.id)?.(m);
  });
  await client.subscribeAsync(`talon/${d.deviceId()}/toolsmith/res`);
  // the Hand is running once it answers
  for (let i = 0; ; i++) {
    const r = await ask({ op: 'list' }, 1000).catch(() => null);
    if (r) break;
    if (i > 40) throw new Error(`the Hand never answered:\n${d.output()}`);
  }
});

after(async () => {
  await client?.endAsync();
  await d?.stop();
  await fake?.close();
});

let seq = 0;
function ask(
  req: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<{ result?: unknown; error?: { code: string; message: string } }> {
  const id = `r${++seq}`;
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      waiters.delete(id);
      reject(new Error(`no answer to ${JSON.stringify(req)} within ${timeoutMs} ms`));
    }, timeoutMs);
    waiters.set(id, (v) => {
      clearTimeout(t);
      waiters.delete(id);
      resolve(v);
    });
    void client.publishAsync(`talon/${d.deviceId()}/toolsmith/req`, JSON.stringify({ id, ...req }));
  });
}

const talon = (...args: string[]) => cli([...args, '--data', d.dataDir]);

async function api(path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(`http://127.0.0.1:${d.httpPort}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${d.token()}`, 'content-type': 'application/json', ...init.headers },
  });
  return { status: r.status, body: await r.json() };
}

test('a Hand sees only the tools its grant allows, and runs a real shell pipeline in its own folder', async () => {
  const list = await ask({ op: 'list' });
  const names = (list.result as Array<{ name: string }>).map((t) => t.name).sort();
  assert.ok(names.includes('shell.exec') && names.includes('file.write') && names.includes('time.now'), names.join());
  assert.ok(!names.includes('http.request') && !names.includes('audit.query'), `outside the grant: ${names.join()}`);

  const r = await ask({
    op: 'call',
    name: 'shell.exec',
    input: { command: "printf 'pear\\napple\\nfig\\n' | sort | head -1 > first.txt; head -1 first.txt" },
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const out = (r.result as { output: { exitCode: number; stdout: string } }).output;
  assert.deepEqual([out.exitCode, out.stdout], [0, 'apple\n']);
  assert.ok(
    existsSync(join(d.dataDir, 'hands', 'smith', 'files', 'first.txt')),
    'the redirect wrote into the Hand folder',
  );
});

test('refusals are typed errors the Hand can read, and it keeps running', async () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ name: 'shell.exec', input: { command: 'printf x | wc -c' } }, 'CAPABILITY_DENIED'],
    [{ name: 'shell.exec', input: { command: 'printf $(id)' } }, 'SHELL_SYNTAX'],
    [{ name: 'shell.exec', input: { command: 'printf x > /tmp/escape' } }, 'CAPABILITY_DENIED'],
    [{ name: 'http.request', input: { url: 'http://example.com/' } }, 'CAPABILITY_DENIED'],
    [{ name: 'no.such.tool', input: {} }, 'TOOL_NOT_FOUND'],
    [{ name: 'json.query', input: { data: {}, path: 7 } }, 'TOOL_BAD_INPUT'],
  ];
  for (const [req, code] of cases) {
    const r = await ask({ op: 'call', ...req });
    assert.equal(r.error?.code, code, `${JSON.stringify(req)} → ${JSON.stringify(r)}`);
  }
  const st = talon('hands', 'status', 'smith', '--json');
  assert.equal(st.status, 0, st.stderr);
  assert.equal((JSON.parse(st.stdout) as { state: string }).state, 'running');
});

test('a destructive call waits for a person: approved from the CLI, denied over MQTT', async () => {
  const w = await ask({ op: 'call', name: 'file.write', input: { path: 'notes/a.txt', content: 'hello' } });
  assert.equal(w.error, undefined, JSON.stringify(w.error));

  const pendingDelete = ask({ op: 'call', name: 'file.delete', input: { path: 'notes/a.txt' } }, 60_000);
  const pending = async (): Promise<Array<{ id: string; tool: string; hand?: string }>> => {
    for (let i = 0; i < 200; i++) {
      const l = talon('approvals', 'list', '--state', 'pending', '--json');
      assert.equal(l.status, 0, l.stderr);
      const list = (JSON.parse(l.stdout) as { approvals: Array<{ id: string; tool: string; hand?: string }> })
        .approvals;
      if (list.length) return list;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('no approval appeared');
  };
  const [a] = await pending();
  assert.equal(a!.tool, 'file.delete');
  assert.equal(a!.hand, 'smith');
  assert.ok(
    existsSync(join(d.dataDir, 'hands', 'smith', 'files', 'notes', 'a.txt')),
    'nothing deleted before the answer',
  );
  const ok = talon('approvals', 'approve', a!.id, '--note', 'fine');
  assert.equal(ok.status, 0, ok.stderr);
  const done = await pendingDelete;
  assert.equal(done.error, undefined, JSON.stringify(done.error));
  assert.equal(existsSync(join(d.dataDir, 'hands', 'smith', 'files', 'notes', 'a.txt')), false);
  const twice = talon('approvals', 'approve', a!.id);
  assert.equal(
    twice.status,
    2,
    'answering twice is a conflict (a 4xx: the operator asked for something that cannot be)',
  );
  assert.match(twice.stderr, /CONFLICT/);

  // over MQTT: an admin client answers on cmd/approvals/deny; the retained approval topic shows the request
  const admin = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
    username: 'token',
    password: d.token(),
    reconnectPeriod: 0,
    clientId: 'approver',
  });
  try {
    const seen: Array<{ id: string; state: string }> = [];
    admin.on('message', (topic, payload) => {
      // an empty payload is the retained copy being cleared (MQTT's convention)
      if (topic.includes('/approvals/') && payload.length > 0) seen.push(JSON.parse(payload.toString()));
    });
    await admin.subscribeAsync(`talon/${d.deviceId()}/approvals/+`);
    const denied = ask({ op: 'call', name: 'file.write', input: { path: 'x.txt', content: 'y' } }, 60_000);
    // file.write is not destructive: it ran without a person; file.delete of it waits
    assert.equal((await denied).error, undefined);
    const waiting = ask({ op: 'call', name: 'file.delete', input: { path: 'x.txt' } }, 60_000);
    const b = (await pending())[0]!;
    for (let i = 0; i < 100 && !seen.some((s) => s.id === b.id && s.state === 'pending'); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(
      seen.some((s) => s.id === b.id && s.state === 'pending'),
      'the request was published on MQTT',
    );
    await admin.publishAsync(
      `talon/${d.deviceId()}/cmd/approvals/deny`,
      JSON.stringify({ id: 'q1', approval: b.id, note: 'keep it' }),
    );
    const r = await waiting;
    assert.equal(r.error?.code, 'APPROVAL_DENIED');
    assert.match(r.error!.message, /keep it/);
    assert.ok(existsSync(join(d.dataDir, 'hands', 'smith', 'files', 'x.txt')), 'a denied delete deletes nothing');
    // the outcome went out to whoever listened; the retained copies are cleared: nothing answered stays in the tree
    for (let i = 0; i < 100 && !seen.some((s) => s.id === b.id && s.state === 'denied'); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(seen.some((s) => s.id === b.id && s.state === 'denied'));
    const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
      username: 'token',
      password: d.token(),
      reconnectPeriod: 0,
    });
    try {
      const retained: string[] = [];
      late.on('message', (topic, payload, packet) => {
        if (packet.retain && payload.length > 0) retained.push(topic);
      });
      await late.subscribeAsync(`talon/${d.deviceId()}/approvals/+`);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(retained, [], 'no answered approval is kept retained');
    } finally {
      await late.endAsync();
    }
  } finally {
    await admin.endAsync();
  }
});

test('ctx.agent.run: the model calls a tool, reads its result and answers; the run is stored and shown', async () => {
  fake.reply(
    { toolCalls: [{ id: 'c1', name: 'json.query', arguments: { data: { temps: [21, 25, 19] }, path: '$.temps[1]' } }] },
    { text: 'The second reading is 25.' },
  );
  const r = await ask({ op: 'agent', run: { goal: 'What is the second reading?', tools: ['json.query', 'time.now'] } });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const run = r.result as { runId: string; answer: string; steps: number };
  assert.equal(run.answer, 'The second reading is 25.');
  assert.equal(run.steps, 2);
  // the model saw exactly the tools asked for, and the tool's result came back to it
  const second = fake.requests.filter((q) => q.path.endsWith('/chat/completions')).at(-1)!.body as {
    messages: Array<{ role: string; content: string }>;
    tools: Array<{ function: { name: string } }>;
  };
  assert.deepEqual(second.tools.map((t) => t.function.name).sort(), ['json.query', 'time.now']);
  assert.match(second.messages.find((m) => m.role === 'tool')!.content, /25/);

  const listed = talon('runs', 'smith', '--json');
  assert.equal(listed.status, 0, listed.stderr);
  assert.ok((JSON.parse(listed.stdout) as Array<{ id: string }>).some((x) => x.id === run.runId));
  const one = await api(`/api/v1/runs/${run.runId}`);
  assert.equal(one.status, 200);
  assert.equal(one.body.run.state, 'done');
  assert.equal(one.body.run.steps[0].calls[0].tool, 'json.query');
  assert.match(JSON.stringify(one.body.run.steps[0].calls[0].output), /25/);
});

test("Talon's /mcp, driven by the MCP SDK's client: only the exposed tools, calls audited", async () => {
  const mcp = new Client({ name: 'laptop-assistant', version: '1.0.0' });
  await mcp.connect(
    new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${d.httpPort}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${d.token()}` } },
    }),
  );
  try {
    const { tools } = await mcp.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['hands.list', 'json.query', 'time.now']);
    const now = await mcp.callTool({ name: 'time.now', arguments: {} });
    assert.notEqual(now.isError, true, JSON.stringify(now));
    const refused = await mcp.callTool({ name: 'shell.exec', arguments: { command: 'true' } });
    assert.equal(refused.isError, true);
  } finally {
    await mcp.close();
  }
  const unauth = await fetch(`http://127.0.0.1:${d.httpPort}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  assert.equal(unauth.status, 401);

  // every call above is in the signed audit log, with a hash of its input and not the input itself
  const q = await api('/api/v1/audit?action=tool.call&limit=500');
  assert.equal(q.status, 0 + 200);
  const entries = q.body.items as Array<{
    actor: string;
    subject: string;
    decision: string;
    detail: Record<string, unknown>;
  }>;
  const by = (subject: string, decision: string) =>
    entries.filter((e) => e.subject === subject && e.decision === decision);
  assert.ok(by('shell.exec', 'ok').some((e) => e.actor === 'hand:smith'));
  assert.ok(by('shell.exec', 'deny').length >= 2);
  assert.ok(by('time.now', 'ok').some((e) => e.actor.startsWith('mcp:')));
  for (const e of entries) {
    assert.match(String(e.detail.argsHash), /^[0-9a-f]{64}$/);
    assert.equal(e.detail.args, undefined, 'the input itself is not audited unless tools.auditArgs');
  }
  // one entry per refusal: the kernel's generic capability.check denial is not written again for a tool call
  const checks = await api('/api/v1/audit?action=capability.check&decision=deny&limit=500');
  assert.deepEqual(
    (checks.body.items as Array<{ actor: string }>).filter((e) => e.actor === 'hand:smith'),
    [],
  );
});

test('the daemon keeps its tools in the OpenAPI document and /metrics', async () => {
  const spec = await api('/api/v1/openapi.json');
  for (const p of ['/api/v1/tools', '/api/v1/tools/{name}/call', '/api/v1/approvals/{id}', '/api/v1/runs/{id}'])
    assert.ok(spec.body.paths[p], p);
  const m = await fetch(`http://127.0.0.1:${d.httpPort}/metrics`, {
    headers: { authorization: `Bearer ${d.token()}` },
  });
  const text = await m.text();
  assert.match(text, /talon_tool_calls_total\{[^}]*tool="shell\.exec"[^}]*outcome="ok"[^}]*\} [1-9]/);
  assert.match(text, /talon_agent_runs_total\{[^}]*state="done"[^}]*\} [1-9]/);
});
