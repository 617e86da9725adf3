/**
 * Talon's /mcp endpoint (McpEndpoint) driven by the SDK's own Client over Streamable HTTP: an
 * http server on 127.0.0.1 stands in for the web admin (it checks a bearer token and parses the
 * JSON body), a fake Tools with three tools of which two are exposed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { McpEndpoint, toMcpTool } from '../../../runtime/tools/mcp/server.ts';
import type { ToolCaller, ToolInfo, ToolResult, Tools } from '../../../runtime/tools/types.ts';

const obj = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: 'object',
  properties,
  required,
});

const INFOS: ToolInfo[] = [
  {
    name: 'actuators.write',
    description: 'Sets an actuator.',
    inputSchema: obj({ id: { type: 'string' }, value: {} }, ['id', 'value']),
    annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: false },
    capability: 'actuators',
    timeoutMs: 30_000,
    maxOutputBytes: 65_536,
    source: 'builtin',
    needsApproval: true,
  },
  {
    name: 'sensors.list',
    description: 'Lists sensors.',
    inputSchema: obj({}),
    outputSchema: obj({ sensors: { type: 'array' } }, ['sensors']),
    annotations: { readOnlyHint: true, destructiveHint: false, openWorldHint: false },
    capability: 'sensors',
    timeoutMs: 30_000,
    maxOutputBytes: 65_536,
    source: 'builtin',
  },
  {
    name: 'sensors.read',
    description: 'Reads a sensor.',
    inputSchema: obj({ id: { type: 'string' } }, ['id']),
    outputSchema: obj({ id: { type: 'string' }, value: { type: 'number' } }, ['id', 'value']),
    annotations: { title: 'Read a sensor', readOnlyHint: true, destructiveHint: false, openWorldHint: false },
    capability: 'sensors',
    timeoutMs: 30_000,
    maxOutputBytes: 65_536,
    source: 'builtin',
  },
  {
    name: 'shell.exec',
    description: 'Runs a command.',
    inputSchema: obj({ command: { type: 'string' } }, ['command']),
    annotations: { destructiveHint: true },
    capability: 'shell',
    timeoutMs: 30_000,
    maxOutputBytes: 65_536,
    source: 'builtin',
  },
];

class FakeTools implements Tools {
  calls: Array<{ actor: string; name: string; input: unknown }> = [];
  list(): ToolInfo[] {
    return INFOS;
  }
  info(name: string): ToolInfo | undefined {
    return INFOS.find((t) => t.name === name);
  }
  async call(caller: ToolCaller, name: string, input: unknown): Promise<ToolResult> {
    this.calls.push({ actor: caller.actor, name, input });
    if (name === 'sensors.list') {
      return {
        output: { sensors: [{ id: 'greenhouse.temp', name: 'Greenhouse', kind: 'number', unit: 'C' }] },
        truncated: false,
        ms: 1,
      };
    }
    if (name === 'sensors.read' && (input as { id: string }).id === 'gone') {
      throw new TalonError('SENSOR_NOT_FOUND', 'no sensor "gone"');
    }
    if (name === 'sensors.read') {
      return { output: { id: (input as { id: string }).id, value: 21.5 }, truncated: false, ms: 1 };
    }
    if (name === 'actuators.write') throw new TalonError('APPROVAL_DENIED', 'nobody answered within 60 s');
    return { output: 'ran', truncated: false, ms: 1 };
  }
}

async function start(): Promise<{ url: URL; tools: FakeTools; http: HttpServer }> {
  const tools = new FakeTools();
  const endpoint = new McpEndpoint({
    tools,
    expose: () => ['sensors.*', 'actuators.write'],
    callerFor: (p) => ({ actor: `mcp:${p.actor}`, admin: false, grants: {} as Capabilities, folder: '/nonexistent' }),
    version: '9.9.9',
  });
  const http = createServer(async (req, res) => {
    if (req.headers.authorization !== 'Bearer good') {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"code":"UNAUTHORIZED"}');
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    await endpoint.handle(req, res, text ? JSON.parse(text) : undefined, { actor: 'token:t1(ann)' });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const { port } = http.address() as AddressInfo;
  return { url: new URL(`http://127.0.0.1:${port}/mcp`), tools, http };
}

test('the SDK client lists only exposed tools, calls one, and reads a refusal as a typed error', async (t) => {
  const { url, tools, http } = await start();
  t.after(() => new Promise((r) => http.close(r)));
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { authorization: 'Bearer good' } },
  });
  const client = new Client({ name: 'laptop', version: '1.0.0' });
  await client.connect(transport);
  t.after(() => client.close());

  assert.equal(client.getServerVersion()?.name, 'talon');
  assert.equal(client.getServerVersion()?.version, '9.9.9');
  assert.equal(transport.protocolVersion, LATEST_PROTOCOL_VERSION);
  assert.deepEqual(client.getServerCapabilities()?.tools, { listChanged: true });

  const { tools: listed } = await client.listTools();
  assert.deepEqual(
    listed.map((x) => x.name),
    ['actuators.write', 'sensors.list', 'sensors.read'],
    'shell.exec is not exposed',
  );
  const read = listed.find((x) => x.name === 'sensors.read');
  assert.deepEqual(read?.annotations, {
    title: 'Read a sensor',
    readOnlyHint: true,
    destructiveHint: false,
    openWorldHint: false,
  });
  assert.deepEqual(read?.outputSchema, INFOS.find((x) => x.name === 'sensors.read')?.outputSchema);
  assert.match(listed[0]?.description ?? '', /approve/, 'a tool that waits for a person says so');

  const ok = await client.callTool({ name: 'sensors.read', arguments: { id: 'temp' } });
  assert.equal(ok.isError, undefined);
  assert.deepEqual(ok.structuredContent, { id: 'temp', value: 21.5 });
  assert.deepEqual(ok.content, [{ type: 'text', text: '{"id":"temp","value":21.5}' }]);
  assert.deepEqual(tools.calls, [{ actor: 'mcp:token:t1(ann)', name: 'sensors.read', input: { id: 'temp' } }]);

  const refused = await client.callTool({ name: 'actuators.write', arguments: { id: 'fan', value: 1 } });
  assert.equal(refused.isError, true);
  assert.deepEqual(refused.content, [{ type: 'text', text: 'APPROVAL_DENIED: nobody answered within 60 s' }]);

  const hidden = await client.callTool({ name: 'shell.exec', arguments: { command: 'id' } });
  assert.equal(hidden.isError, true);
  assert.match((hidden.content as Array<{ text: string }>)[0]?.text ?? '', /^TOOL_NOT_FOUND: /);
  assert.equal(
    tools.calls.some((c) => c.name === 'shell.exec'),
    false,
    'an unexposed tool never reaches the registry',
  );
});

test('GET (no stream, no sessions) answers 405', async (t) => {
  const { url, http } = await start();
  t.after(() => new Promise((r) => http.close(r)));
  const get = await fetch(url, { headers: { authorization: 'Bearer good', accept: 'text/event-stream' } });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  await get.body?.cancel();
});

test('a tool whose output is not an object is listed without outputSchema (MCP structuredContent is an object)', () => {
  const sensorsRead = INFOS.find((x) => x.name === 'sensors.read') as ToolInfo;
  const info = { ...sensorsRead, outputSchema: { type: 'array', items: { type: 'number' } } };
  const tool = toMcpTool(info);
  assert.equal(tool.outputSchema, undefined);
  assert.equal(tool.title, 'Read a sensor');
  assert.equal(toMcpTool(sensorsRead).outputSchema?.type, 'object');
});

test('sensors are resources when sensors.list and sensors.read are exposed, read through the tools', async (t) => {
  const { url, tools, http } = await start();
  t.after(() => new Promise((r) => http.close(r)));
  const client = new Client({ name: 'laptop', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: 'Bearer good' } } }),
  );
  t.after(() => client.close());
  assert.ok(client.getServerCapabilities()?.resources, 'resources advertised');
  const { resources } = await client.listResources();
  assert.deepEqual(resources, [
    {
      uri: 'talon://sensors/greenhouse.temp',
      name: 'greenhouse.temp',
      title: 'Greenhouse',
      description: 'The current reading of sensor greenhouse.temp (number, C), as JSON',
      mimeType: 'application/json',
    },
  ]);
  const read = await client.readResource({ uri: 'talon://sensors/greenhouse.temp' });
  assert.deepEqual(JSON.parse((read.contents[0] as { text: string }).text), { id: 'greenhouse.temp', value: 21.5 });
  assert.deepEqual(
    tools.calls.map((c) => [c.actor, c.name, c.input]),
    [
      ['mcp:token:t1(ann)', 'sensors.list', {}],
      ['mcp:token:t1(ann)', 'sensors.read', { id: 'greenhouse.temp' }],
    ],
  );
  await assert.rejects(client.readResource({ uri: 'talon://sensors/gone' }), /SENSOR_NOT_FOUND: no sensor "gone"/);
  await assert.rejects(client.readResource({ uri: 'file:///etc/passwd' }), /NOT_FOUND: no resource/);
});
