/**
 * Talon as an MCP server: `/mcp` on the web admin's port, Streamable HTTP, stateless (one SDK
 * transport and one low-level `Server` per request, no session ids, JSON answers; GET and
 * DELETE answer 405 since there is no session and no server-initiated stream).
 *
 * The web admin authenticates the request (an API token holding the `mcp` scope) and parses its
 * JSON body before calling `handle`; this file never sees a token. What an MCP client sees:
 *   - tools/list: the tools an admin chose (config `tools.mcp.serve.expose`, globs) that the
 *     principal's caller may call, with their description, schemas and annotations;
 *   - tools/call: `tools.call(callerFor(principal), name, input)`, so the registry's checks,
 *     approvals and audit apply exactly as for a Hand. A refusal or failure is a result with
 *     `isError: true` and the text `CODE: message` (the assistant's model can read and act on
 *     it); a success is the output as JSON text, plus `structuredContent` when the tool declares
 *     an object outputSchema.
 * A tool outside `expose` is not listed and a call to it is TOOL_NOT_FOUND, whatever the caller's
 * grants say.
 *
 * Resources: when `sensors.list` and `sensors.read` are both exposed, each sensor the caller may
 * read is also a resource `talon://sensors/<id>` (JSON, its current reading): resources/list and
 * resources/read go through those two tools, so the same grants and audit apply.
 *
 * The SDK is loaded with `await import('./sdk.ts')` on the first request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { CallToolResult, Tool as McpTool, ReadResourceResult, Resource } from '@modelcontextprotocol/sdk/types.js';
import { TalonError } from '../../core/errors.ts';
import { globMatches } from '../../core/grants.ts';
import type { ToolCaller, ToolInfo, Tools } from '../types.ts';

export interface McpEndpointDeps {
  tools: Tools;
  /** tool-name globs an admin chose to expose (`sensors.*`, `actuators.write`, `audit.query`) */
  expose: () => string[];
  /** the rights an authenticated MCP principal calls tools with (never admin) */
  callerFor(principal: { actor: string }): ToolCaller;
  /** Talon's version, sent as the server's version */
  version: string;
}

type ServerSdk = typeof import('./sdk.ts');

let sdkPromise: Promise<ServerSdk> | undefined;

function loadSdk(): Promise<ServerSdk> {
  sdkPromise ??= import('./sdk.ts');
  sdkPromise.catch(() => {
    sdkPromise = undefined;
  });
  return sdkPromise;
}

export const SENSOR_URI = 'talon://sensors/';
/** MCP's "resource not found" */
const RESOURCE_NOT_FOUND = -32002;

const isObjectSchema = (s: Record<string, unknown> | undefined): boolean => s !== undefined && s.type === 'object';

/** a Talon tool as MCP lists it */
export function toMcpTool(info: ToolInfo): McpTool {
  const inputSchema = (
    info.inputSchema.type === 'object' ? info.inputSchema : { ...info.inputSchema, type: 'object' }
  ) as McpTool['inputSchema'];
  const note = info.needsApproval ? ' Each call waits for a person to approve it on the device.' : '';
  const tool: McpTool = {
    name: info.name,
    description: `${info.description}${note}`,
    inputSchema,
    annotations: { ...info.annotations },
  };
  if (info.annotations.title) tool.title = info.annotations.title;
  // MCP's structuredContent is an object: a tool whose output is another shape is text only
  if (isObjectSchema(info.outputSchema)) tool.outputSchema = info.outputSchema as McpTool['outputSchema'];
  return tool;
}

function errorResult(err: unknown): CallToolResult {
  const e = TalonError.from(err);
  return { content: [{ type: 'text', text: `${e.code}: ${e.message}` }], isError: true };
}

function rpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

export class McpEndpoint {
  readonly #deps: McpEndpointDeps;

  constructor(deps: McpEndpointDeps) {
    this.#deps = deps;
  }

  #exposed(name: string): boolean {
    return this.#deps.expose().some((g) => globMatches(g, name));
  }

  /** the exposed tools this caller may call, as MCP lists them */
  list(caller: ToolCaller): McpTool[] {
    return this.#deps.tools
      .list(caller)
      .filter((t) => this.#exposed(t.name))
      .map(toMcpTool);
  }

  /** one tools/call, its errors as `isError` results */
  async call(caller: ToolCaller, name: string, input: unknown, signal?: AbortSignal): Promise<CallToolResult> {
    try {
      if (!this.#exposed(name)) {
        throw new TalonError(
          'TOOL_NOT_FOUND',
          `no tool "${name}" is exposed over MCP (tools/list shows those that are)`,
        );
      }
      const info = this.#deps.tools.info(name, caller);
      const result = await this.#deps.tools.call(caller, name, input ?? {}, signal ? { signal } : {});
      const out = result.output;
      const content: CallToolResult['content'] = [
        { type: 'text', text: typeof out === 'string' ? out : (JSON.stringify(out) ?? 'null') },
      ];
      if (result.truncated) content.push({ type: 'text', text: '(the output was cut to the size limit of the tool)' });
      const answer: CallToolResult = { content };
      if (isObjectSchema(info?.outputSchema) && typeof out === 'object' && out !== null && !Array.isArray(out)) {
        answer.structuredContent = out as Record<string, unknown>;
      }
      return answer;
    } catch (err) {
      return errorResult(err);
    }
  }

  #resourcesOn(): boolean {
    return this.#exposed('sensors.list') && this.#exposed('sensors.read');
  }

  /** the sensors this caller may read, as resources */
  async resources(caller: ToolCaller, signal?: AbortSignal): Promise<Resource[]> {
    const r = await this.#deps.tools.call(caller, 'sensors.list', {}, signal ? { signal } : {});
    const sensors = (r.output as { sensors?: Array<{ id?: unknown; name?: unknown; kind?: unknown; unit?: unknown }> })
      ?.sensors;
    if (!Array.isArray(sensors)) return [];
    return sensors
      .filter((x): x is { id: string; name?: unknown; kind?: unknown; unit?: unknown } => typeof x?.id === 'string')
      .map((x) => {
        const about = [x.kind, x.unit].filter((v) => typeof v === 'string' && v).join(', ');
        const res: Resource = {
          uri: `${SENSOR_URI}${encodeURIComponent(x.id)}`,
          name: x.id,
          description: `The current reading of sensor ${x.id}${about ? ` (${about})` : ''}, as JSON`,
          mimeType: 'application/json',
        };
        if (typeof x.name === 'string') res.title = x.name;
        return res;
      });
  }

  /** one sensor's current reading */
  async readResource(caller: ToolCaller, uri: string, signal?: AbortSignal): Promise<ReadResourceResult> {
    if (!uri.startsWith(SENSOR_URI) || uri.length === SENSOR_URI.length) {
      throw new TalonError('NOT_FOUND', `no resource "${uri}": Talon's resources are ${SENSOR_URI}<sensor id>`);
    }
    const id = decodeURIComponent(uri.slice(SENSOR_URI.length));
    const r = await this.#deps.tools.call(caller, 'sensors.read', { id }, signal ? { signal } : {});
    return { contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(r.output) }] };
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: { actor: string }): Promise<void> {
    if (req.method !== 'POST') {
      rpcError(res, 405, -32000, 'Talon serves MCP statelessly: POST JSON-RPC to /mcp (no GET stream, no sessions)', {
        allow: 'POST',
      });
      return;
    }
    if (body === undefined) {
      rpcError(res, 400, -32700, 'the request has no JSON-RPC body');
      return;
    }
    const sdk = await loadSdk();
    const caller = this.#deps.callerFor(principal);
    const server = this.#server(sdk, caller);
    const transport = new sdk.StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on('close', () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    } catch (err) {
      if (!res.headersSent) rpcError(res, 500, -32603, `Talon could not answer: ${TalonError.from(err).message}`);
      else res.end();
    }
  }

  #server(sdk: ServerSdk, caller: ToolCaller): Server {
    const resources = this.#resourcesOn();
    const server = new sdk.Server(
      { name: 'talon', version: this.#deps.version },
      {
        capabilities: resources ? { tools: { listChanged: true }, resources: {} } : { tools: { listChanged: true } },
        instructions:
          'Talon runs on an edge device. Its tools read sensors, drive actuators and report on the device; ' +
          'a tool that changes something may wait for a person to approve it. Errors read `CODE: message`.',
      },
    );
    server.setRequestHandler(sdk.ListToolsRequestSchema, async () => ({ tools: this.list(caller) }));
    server.setRequestHandler(sdk.CallToolRequestSchema, async (request, extra) =>
      this.call(caller, request.params.name, request.params.arguments ?? {}, extra.signal),
    );
    if (resources) {
      // a refusal is a JSON-RPC error whose message reads `CODE: message`
      const rpc = (err: unknown) => {
        const e = TalonError.from(err);
        const notFound = ['NOT_FOUND', 'SENSOR_NOT_FOUND', 'TOOL_NOT_FOUND', 'TOOL_BAD_INPUT'].includes(e.code);
        return new sdk.McpError(notFound ? RESOURCE_NOT_FOUND : -32603, `${e.code}: ${e.message}`);
      };
      server.setRequestHandler(sdk.ListResourcesRequestSchema, async (_request, extra) => {
        try {
          return { resources: await this.resources(caller, extra.signal) };
        } catch (err) {
          throw rpc(err);
        }
      });
      server.setRequestHandler(sdk.ReadResourceRequestSchema, async (request, extra) => {
        try {
          return await this.readResource(caller, request.params.uri, extra.signal);
        } catch (err) {
          throw rpc(err);
        }
      });
    }
    return server;
  }
}
