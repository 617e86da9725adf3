/**
 * McpClients against a real MCP server made with the SDK (test/fixtures/mcp/server.ts), over
 * stdio and over Streamable HTTP: tools registered with their prefix, annotations that can only
 * raise risk, timeouts that cancel, a server that dies mid-call and comes back, a stale HTTP
 * session, an explicit environment. The registry here is a Map; `def.run` is called directly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import {
  McpClients,
  mcpAnnotations,
  type McpServerConfig,
  type McpToolDefinition,
} from '../../../runtime/tools/mcp/client.ts';
import type { ToolDefinition, ToolRunContext } from '../../../runtime/tools/types.ts';

const repo = join(import.meta.dirname, '..', '..', '..');
const FIXTURE = join(repo, 'test', 'fixtures', 'mcp', 'server.ts');
const STDIO = [process.execPath, '--import', 'tsx', FIXTURE];

function harness(servers: McpServerConfig[], secrets: Record<string, string> = {}) {
  const defs = new Map<string, McpToolDefinition>();
  const logs: string[] = [];
  const clients = new McpClients({
    register(def: ToolDefinition) {
      if (defs.has(def.name)) throw new Error(`${def.name} is already registered`);
      defs.set(def.name, def as McpToolDefinition);
    },
    unregister(name: string) {
      defs.delete(name);
    },
    secret: async (name) => secrets[name],
    log: (level, msg) => logs.push(`${level} ${msg}`),
  });
  clients.start(servers);
  return { defs, logs, clients };
}

/** like the registry: a ToolRunContext whose signal is aborted at the timeout */
async function call(defs: Map<string, ToolDefinition>, name: string, input: unknown = {}, timeoutMs = 20_000) {
  const def = defs.get(name);
  assert.ok(def, `${name} is registered (have: ${[...defs.keys()].join(', ')})`);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const ctx: ToolRunContext = {
    caller: { actor: 'test', admin: false, grants: {} as Capabilities, folder: repo },
    signal: ac.signal,
    timeoutMs,
    maxOutputBytes: 65_536,
  };
  try {
    return await def.run(input, ctx);
  } finally {
    clearTimeout(timer);
  }
}

async function callError(defs: Map<string, ToolDefinition>, name: string, input: unknown = {}, timeoutMs = 20_000) {
  try {
    await call(defs, name, input, timeoutMs);
  } catch (err) {
    assert.ok(err instanceof TalonError, `a TalonError, got ${String(err)}`);
    return err;
  }
  assert.fail(`${name} should have failed`);
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const connected = (clients: McpClients, name: string) => () =>
  clients.status().find((s) => s.name === name)?.state === 'connected';

/** the fixture over HTTP; resolves with its port once it listens */
async function httpFixture(port = 0, extra: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, '--http', String(port), ...extra], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    out += chunk.toString();
    const m = /listening (\d+)/.exec(out);
    if (m) return { child, port: Number(m[1]) };
  }
  throw new Error(`the HTTP fixture did not start: ${out}`);
}

/** resolves once the child has exited (at once when it already has: its 'exit' event may be past) */
async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  child.kill('SIGKILL');
  await done;
}

test('annotations from a server can only raise risk unless the tool is trusted', () => {
  const untrusted = mcpAnnotations({ readOnlyHint: true, destructiveHint: false, openWorldHint: false }, false);
  assert.deepEqual(untrusted, {
    readOnlyHint: false,
    destructiveHint: true,
    idempotentHint: false,
    openWorldHint: true,
  });
  assert.equal(mcpAnnotations(undefined, true).destructiveHint, true, 'trusted but no annotations: destructive');
  assert.equal(mcpAnnotations({ readOnlyHint: false }, true).destructiveHint, true, 'destructiveHint absent');
  assert.equal(mcpAnnotations({ openWorldHint: false }, true).openWorldHint, false);
  assert.equal(mcpAnnotations({}, true).openWorldHint, true, 'openWorldHint defaults true');
  const ro = mcpAnnotations({ readOnlyHint: true, title: 'Echo' }, true);
  assert.deepEqual(ro, {
    title: 'Echo',
    readOnlyHint: true,
    destructiveHint: false,
    idempotentHint: false,
    openWorldHint: true,
  });
});

test('stdio: tools registered as mcp.<server>.<tool>, annotations, calls and their failures', async (t) => {
  const { defs, clients } = harness([
    { name: 'fx', command: STDIO, cwd: repo, timeoutMs: 20_000 },
    { name: 'fxt', command: STDIO, cwd: repo, trusted: ['echo', 'wipe'] },
  ]);
  t.after(() => clients.stop());
  await clients.settled();
  assert.deepEqual(
    clients.status().map((s) => [s.name, s.state, s.tools]),
    [
      ['fx', 'connected', 9],
      ['fxt', 'connected', 9],
    ],
  );

  const echo = defs.get('mcp.fx.echo');
  assert.ok(echo);
  assert.equal(echo.source, 'mcp:fx');
  assert.equal(echo.timeoutMs, 20_000);
  assert.equal(echo.available(), true);
  assert.deepEqual(echo.inputSchema, { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] });
  assert.deepEqual(echo.outputSchema, { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] });
  // the server says read-only; untrusted, it counts as destructive
  assert.equal(echo.annotations.destructiveHint, true);
  assert.equal(echo.annotations.readOnlyHint, false);
  assert.equal(echo.annotationsTrusted, false);
  assert.equal(defs.get('mcp.fxt.echo')?.annotationsTrusted, true);
  // trusted: believed
  assert.equal(defs.get('mcp.fxt.echo')?.annotations.readOnlyHint, true);
  assert.equal(defs.get('mcp.fxt.echo')?.annotations.destructiveHint, false);
  assert.equal(defs.get('mcp.fxt.echo')?.annotations.openWorldHint, false);
  // trusted but without annotations: still destructive
  assert.equal(defs.get('mcp.fxt.wipe')?.annotations.destructiveHint, true);
  assert.equal(defs.get('mcp.fx.wipe')?.annotations.destructiveHint, true);

  assert.deepEqual(await call(defs, 'mcp.fx.echo', { text: 'hello' }), { text: 'hello' });
  assert.deepEqual(await call(defs, 'mcp.fx.wipe'), { text: 'wiped' });

  const failed = await callError(defs, 'mcp.fx.fail');
  assert.equal(failed.code, 'TOOL_FAILED');
  assert.match(failed.message, /the disk is on fire/);

  const garbage = await callError(defs, 'mcp.fx.garbage');
  assert.equal(garbage.code, 'MCP_ERROR');

  // a hang: the registry's signal aborts at the timeout; the server is told to cancel
  const hung = await callError(defs, 'mcp.fx.hang', {}, 300);
  assert.equal(hung.code, 'TOOL_TIMEOUT');
  await waitFor('the server to see the cancellation', async () => {
    const out = (await call(defs, 'mcp.fx.stats')) as { text: string };
    return JSON.parse(out.text).cancelled === 1;
  });
  assert.deepEqual(await call(defs, 'mcp.fx.echo', { text: 'still here' }), { text: 'still here' });

  // notifications/tools/list_changed: re-listed and registered
  assert.equal(defs.has('mcp.fx.extra'), false);
  await call(defs, 'mcp.fx.grow');
  await waitFor('mcp.fx.extra', () => defs.has('mcp.fx.extra'));
  assert.deepEqual(await call(defs, 'mcp.fx.extra'), { text: 'extra' });

  await clients.stop();
  assert.equal(defs.size, 0, 'stop() unregisters every tool');
  assert.deepEqual(
    clients.status().map((s) => s.state),
    ['stopped', 'stopped'],
  );
  const after = await callError(new Map([['mcp.fx.echo', echo]]), 'mcp.fx.echo', { text: 'x' });
  assert.equal(after.code, 'MCP_UNAVAILABLE');
});

test('stdio: the child gets only the configured environment plus PATH', async (t) => {
  process.env.TALON_MCP_TEST_LEAK = 'secret';
  t.after(() => {
    delete process.env.TALON_MCP_TEST_LEAK;
  });
  const { defs, clients } = harness([{ name: 'envy', command: STDIO, cwd: repo, env: { ONLY_THIS: '1' } }]);
  t.after(() => clients.stop());
  await clients.settled();
  const out = (await call(defs, 'mcp.envy.env')) as { text: string };
  const keys = JSON.parse(out.text) as string[];
  assert.ok(keys.includes('ONLY_THIS'), keys.join(','));
  assert.ok(keys.includes('PATH'), keys.join(','));
  assert.ok(!keys.includes('TALON_MCP_TEST_LEAK'), 'a variable of the kernel is not passed through');
  assert.ok(!keys.includes('HOME'), 'not even HOME');
});

test('stdio: a server that dies mid-call fails at once with MCP_UNAVAILABLE and is respawned', async (t) => {
  const { defs, clients } = harness([{ name: 'fx', command: STDIO, cwd: repo }]);
  t.after(() => clients.stop());
  await clients.settled();
  const before = (await call(defs, 'mcp.fx.env')) as { text: string };
  assert.ok(before.text);

  // a 60 s timeout: a TOOL_TIMEOUT here would mean the call waited for it
  const crashed = await callError(defs, 'mcp.fx.crash', {}, 60_000);
  assert.equal(crashed.code, 'MCP_UNAVAILABLE');
  assert.match(crashed.message, /exited with code 3/);

  const status = clients.status()[0];
  assert.ok(status && status.state !== 'connected', 'not connected right after the crash');
  assert.equal(status.tools, 9, 'the tools stay listed');
  assert.equal(defs.get('mcp.fx.echo')?.available(), false);
  const caller = { actor: 'test', admin: false, grants: {} as Capabilities, folder: repo };
  assert.throws(
    () => defs.get('mcp.fx.echo')?.check?.({ text: 'x' }, caller),
    (e: unknown) => e instanceof TalonError && e.code === 'MCP_UNAVAILABLE',
    'refused before an approval is asked for',
  );
  const down = await callError(defs, 'mcp.fx.echo', { text: 'x' });
  assert.equal(down.code, 'MCP_UNAVAILABLE');

  await waitFor('the respawned server', connected(clients, 'fx'));
  assert.equal(defs.get('mcp.fx.echo')?.available(), true);
  assert.equal(defs.get('mcp.fx.echo')?.check?.({ text: 'x' }, caller), null);
  assert.deepEqual(await call(defs, 'mcp.fx.echo', { text: 'back' }), { text: 'back' });
});

test('stdio: a command that cannot start is failed with its reason, and config errors are shown', async (t) => {
  const { clients, defs } = harness([
    { name: 'nope', command: [join(repo, 'no-such-program')] },
    { name: 'Bad Name', command: STDIO },
    { name: 'both', command: STDIO, url: 'http://127.0.0.1:1/mcp' },
    { name: 'nosecret', url: 'http://127.0.0.1:1/mcp', tokenSecret: 'absent' },
  ]);
  t.after(() => clients.stop());
  await clients.settled();
  const by = Object.fromEntries(clients.status().map((s) => [s.name, s]));
  assert.equal(by.nope?.state, 'failed');
  assert.match(by.nope?.lastError ?? '', /ENOENT/);
  assert.equal(by['Bad Name']?.state, 'failed');
  assert.match(by['Bad Name']?.lastError ?? '', /must match/);
  assert.match(by.both?.lastError ?? '', /exactly one of command/);
  assert.match(by.nosecret?.lastError ?? '', /sealed secret "absent"/);
  assert.equal(defs.size, 0);
});

test('HTTP: calls, a crash mid-call, and the tools back after the server restarts on its port', async (t) => {
  let server = await httpFixture();
  t.after(() => killed(server.child));
  const url = `http://127.0.0.1:${server.port}/mcp`;
  const { defs, clients } = harness([{ name: 'web', url, tokenSecret: 'tok' }], { tok: 'abc' });
  t.after(() => clients.stop());
  await clients.settled();
  assert.equal(clients.status()[0]?.state, 'connected', clients.status()[0]?.lastError);
  assert.deepEqual(await call(defs, 'mcp.web.echo', { text: 'over http' }), { text: 'over http' });
  assert.equal((await callError(defs, 'mcp.web.fail')).code, 'TOOL_FAILED');
  assert.equal((await callError(defs, 'mcp.web.garbage')).code, 'MCP_ERROR');
  assert.equal((await callError(defs, 'mcp.web.hang', {}, 300)).code, 'TOOL_TIMEOUT');
  assert.deepEqual(await call(defs, 'mcp.web.echo', { text: 'again' }), { text: 'again' });

  const crashed = await callError(defs, 'mcp.web.crash', {}, 60_000);
  assert.equal(crashed.code, 'MCP_UNAVAILABLE');
  await exited(server.child);
  assert.equal(defs.get('mcp.web.echo')?.available(), false);
  assert.equal((await callError(defs, 'mcp.web.echo', { text: 'x' })).code, 'MCP_UNAVAILABLE');

  server = await httpFixture(server.port);
  await waitFor('the reconnection', connected(clients, 'web'), 40_000);
  assert.deepEqual(await call(defs, 'mcp.web.echo', { text: 'restarted' }), { text: 'restarted' });
});

test('HTTP: a stale session (404 after an unnoticed restart) is re-initialised and the call retried', async (t) => {
  let server = await httpFixture(0, ['--no-sse']);
  t.after(() => killed(server.child));
  const { defs, clients, logs } = harness([{ name: 'web', url: `http://127.0.0.1:${server.port}/mcp` }]);
  t.after(() => clients.stop());
  await clients.settled();
  assert.deepEqual(await call(defs, 'mcp.web.echo', { text: 'one' }), { text: 'one' });

  await killed(server.child);
  server = await httpFixture(server.port, ['--no-sse']);
  assert.equal(clients.status()[0]?.state, 'connected', 'nothing told the client');
  assert.deepEqual(await call(defs, 'mcp.web.echo', { text: 'two' }), { text: 'two' });
  assert.ok(
    logs.some((l) => /forgot our session/.test(l)),
    'it went through a new session',
  );
});
