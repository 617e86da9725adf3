/**
 * Talon as an MCP client: the servers of config `tools.mcp.servers` are connected by the kernel
 * and their tools join the one registry as `mcp.<server>.<tool>` (`source: 'mcp:<server>'`),
 * granted per Hand like any other tool (a Hand's `tools.allow: ['mcp.files.*']`).
 *
 * Transports: a stdio child (`command`, spawned without a shell, in its own process group, with
 * ONLY the config's `env` plus PATH: nothing of the kernel's environment leaks, not even HOME)
 * or Streamable HTTP (`url`, with `Authorization: Bearer <sealed secret tokenSecret>`).
 *
 * Trust. An MCP server describes its own tools, so its annotations are claims, not facts: a
 * server that says `readOnlyHint: true` about `delete_everything` would skip Talon's approval.
 * So annotations can only raise a tool's risk, never lower it:
 *   - every tool of a server is read-only: false, destructive: true, idempotent: false,
 *     open-world: true (so a call waits for a person, when the caller is not an admin),
 *   - unless the server's config names the tool in `trusted: ['tool', …]`: then its annotations are
 *     believed, with MCP's defaults where they are absent (destructiveHint true unless
 *     readOnlyHint is true, openWorldHint true, idempotentHint false).
 * A tool's name, description and schemas are the server's own, and the registry validates the
 * input against that schema before anything is sent.
 *
 * Failures, each a typed error the model can read: not connected → MCP_UNAVAILABLE at once (the
 * tool stays listed, `available()` false); a dead server mid-call (process exited, connection
 * reset) → MCP_UNAVAILABLE without waiting for the timeout; a hang → TOOL_TIMEOUT (the request is
 * cancelled with `notifications/cancelled`); `isError` → TOOL_FAILED with the server's text;
 * garbage or a JSON-RPC error → MCP_ERROR. A lost server is reconnected with backoff (1 s doubling
 * to 30 s); a stale HTTP session (404) is re-initialised once and the call retried;
 * `notifications/tools/list_changed` re-lists and re-registers.
 *
 * The SDK is loaded with `await import('./sdk.ts')` on the first connection, so a device without
 * MCP servers never loads it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, Tool as McpTool } from '@modelcontextprotocol/sdk/types.js';
import { systemClock, type Clock } from '../../core/clock.ts';
import { TalonError } from '../../core/errors.ts';
import { VERSION } from '../../version.ts';
import type { ToolAnnotations, ToolDefinition, ToolRunContext } from '../types.ts';

/** a server's name in config, and the middle part of its tools' names */
export const MCP_SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** an MCP tool name Talon registers (others are skipped with a warning) */
const MCP_TOOL_NAME = /^(?=.{1,64}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
export const MCP_DEFAULT_TIMEOUT_MS = 30_000;
export const MCP_DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** at most this many tools of one server are registered (a runaway tools/list) */
const MAX_TOOLS = 500;

/** One entry of config `tools.mcp.servers`. Exactly one of `command` and `url`. */
export interface McpServerConfig {
  /** `^[a-z0-9][a-z0-9_-]{0,31}$`; its tools are `mcp.<name>.<tool>` */
  name: string;
  /** stdio: the program and its arguments, spawned without a shell */
  command?: string[];
  /** stdio: the child's whole environment (plus PATH, taken from Talon's unless given here) */
  env?: Record<string, string>;
  /** stdio: the child's working folder */
  cwd?: string;
  /** Streamable HTTP: the server's endpoint */
  url?: string;
  /** Streamable HTTP: the name of a sealed secret sent as `Authorization: Bearer <secret>` */
  tokenSecret?: string;
  /** per call (default 30 000) */
  timeoutMs?: number;
  /** spawn/handshake and tools/list (default 15 000) */
  connectTimeoutMs?: number;
  /** tools whose annotations are believed (by their MCP name); every other tool counts as destructive */
  trusted?: string[];
}

export type McpServerState = 'connecting' | 'connected' | 'failed' | 'stopped';

export interface McpServerStatus {
  name: string;
  state: McpServerState;
  /** tools registered (listed, available or not) */
  tools: number;
  lastError?: string;
}

/**
 * A registered MCP tool. The registry may read `available()` (false while its server is down: listed
 * as `available: false`) and `annotationsTrusted` (false: the approval's reason can say
 * `untrusted MCP annotations`).
 */
export type McpToolDefinition = ToolDefinition & { available(): boolean; annotationsTrusted: boolean };

export type McpLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface McpClientsDeps {
  register(def: ToolDefinition): void;
  unregister(name: string): void;
  /** a sealed secret by name (tokenSecret) */
  secret(name: string): Promise<string | undefined>;
  log(level: McpLogLevel, msg: string): void;
  clock?: Clock;
}

/** Why a server's config cannot be used, or null. */
export function checkMcpServerConfig(cfg: McpServerConfig): string | null {
  if (typeof cfg.name !== 'string' || !MCP_SERVER_NAME.test(cfg.name)) {
    return `MCP server name "${String(cfg.name)}" must match ${MCP_SERVER_NAME.source}`;
  }
  const stdio = cfg.command !== undefined;
  const http = cfg.url !== undefined;
  if (stdio === http) return `MCP server "${cfg.name}" needs exactly one of command (stdio) and url (Streamable HTTP)`;
  if (stdio && (!Array.isArray(cfg.command) || cfg.command.length === 0 || !cfg.command[0])) {
    return `MCP server "${cfg.name}": command must be a non-empty list (program, then its arguments)`;
  }
  if (http) {
    let u: URL;
    try {
      u = new URL(cfg.url as string);
    } catch {
      return `MCP server "${cfg.name}": url "${cfg.url}" is not a URL`;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return `MCP server "${cfg.name}": url must be http(s)`;
  }
  if (stdio && cfg.tokenSecret !== undefined) return `MCP server "${cfg.name}": tokenSecret is for url servers`;
  if (http && (cfg.env !== undefined || cfg.cwd !== undefined)) {
    return `MCP server "${cfg.name}": env and cwd are for command (stdio) servers`;
  }
  return null;
}

/**
 * The annotations Talon uses for an MCP tool: the server's claims only when `trusted`, else the
 * riskiest reading (see the file's header).
 */
export function mcpAnnotations(claimed: McpTool['annotations'] | undefined, trusted: boolean): ToolAnnotations {
  const title = typeof claimed?.title === 'string' ? { title: claimed.title } : {};
  if (!trusted) {
    return { ...title, readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true };
  }
  const readOnly = claimed?.readOnlyHint === true;
  return {
    ...title,
    readOnlyHint: readOnly,
    destructiveHint: readOnly ? false : claimed?.destructiveHint !== false,
    idempotentHint: claimed?.idempotentHint === true,
    openWorldHint: claimed?.openWorldHint !== false,
  };
}

type Sdk = typeof import('./sdk.ts');

let sdkPromise: Promise<Sdk> | undefined;

function loadSdk(): Promise<Sdk> {
  sdkPromise ??= import('./sdk.ts');
  sdkPromise.catch(() => {
    sdkPromise = undefined;
  });
  return sdkPromise;
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * A stdio transport of our own (the SDK's adds HOME, USER, SHELL… to the child's environment):
 * the child gets exactly `env`, runs in its own process group, and the whole group is ended on
 * close (SIGTERM, then SIGKILL after 2 s). The last 2 KiB of its stderr are kept for errors.
 */
class ChildTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;
  /** how the process ended, once it has */
  exit?: string;
  stderrTail = '';
  #child?: ChildProcess;
  readonly #opts: { command: string[]; env: Record<string, string>; cwd?: string };
  readonly #sdk: Sdk;
  readonly #buffer: InstanceType<Sdk['ReadBuffer']>;

  constructor(opts: { command: string[]; env: Record<string, string>; cwd?: string }, sdk: Sdk) {
    this.#opts = opts;
    this.#sdk = sdk;
    this.#buffer = new sdk.ReadBuffer();
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const [program, ...args] = this.#opts.command as [string, ...string[]];
      const child = spawn(program, args, {
        env: this.#opts.env,
        cwd: this.#opts.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
        windowsHide: true,
      });
      this.#child = child;
      child.once('error', (err) => {
        reject(err);
        this.onerror?.(err);
      });
      child.once('spawn', () => resolve());
      child.once('close', (code, signal) => {
        this.exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
        this.#child = undefined;
        this.onclose?.();
      });
      child.stdin?.on('error', (err) => this.onerror?.(err));
      child.stdout?.on('data', (chunk: Buffer) => {
        try {
          this.#buffer.append(chunk);
        } catch (err) {
          this.onerror?.(err as Error);
          void this.close();
          return;
        }
        for (;;) {
          try {
            const msg = this.#buffer.readMessage();
            if (msg === null) break;
            this.onmessage?.(msg);
          } catch (err) {
            this.onerror?.(new Error(`the server wrote a line that is not JSON-RPC: ${errText(err)}`));
          }
        }
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-2048);
      });
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.#child?.stdin;
    if (!stdin?.writable) throw new Error('the MCP server process is not running');
    if (!stdin.write(this.#sdk.serializeMessage(message))) await once(stdin, 'drain');
  }

  async close(): Promise<void> {
    const child = this.#child;
    this.#buffer.clear();
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const closed = once(child, 'close').then(() => true);
    const wait = (ms: number) =>
      Promise.race([closed, new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    const kill = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    child.stdin?.end();
    kill('SIGTERM');
    if (!(await wait(2000))) {
      kill('SIGKILL');
      await wait(2000);
    }
  }
}

type Registered = { def: McpToolDefinition; sig: string };

/** One configured server: its connection, its state and its registered tools. */
class McpConnection {
  readonly name: string;
  readonly #cfg: McpServerConfig & { timeoutMs: number; connectTimeoutMs: number };
  readonly #deps: McpClientsDeps;
  readonly #clock: Clock;
  #state: McpServerState = 'connecting';
  #lastError: string | undefined;
  #sdk: Sdk | undefined;
  #client: Client | undefined;
  #childTransport: ChildTransport | undefined;
  /** bumped on every new connection and every teardown: handlers of an older one do nothing */
  #gen = 0;
  #attempt = 0;
  #timer: unknown;
  #stopped = false;
  /** aborted when the current connection is lost: in-flight calls fail at once */
  #lost = new AbortController();
  readonly #tools = new Map<string, Registered>();
  #relisting: Promise<void> = Promise.resolve();
  #reinit: Promise<void> | undefined;
  #firstAttempt: Promise<void>;
  #firstDone!: () => void;

  constructor(cfg: McpServerConfig, deps: McpClientsDeps) {
    this.name = cfg.name;
    this.#cfg = {
      ...cfg,
      timeoutMs: cfg.timeoutMs ?? MCP_DEFAULT_TIMEOUT_MS,
      connectTimeoutMs: cfg.connectTimeoutMs ?? MCP_DEFAULT_CONNECT_TIMEOUT_MS,
    };
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#firstAttempt = new Promise((r) => {
      this.#firstDone = r;
    });
  }

  status(): McpServerStatus {
    const s: McpServerStatus = { name: this.name, state: this.#state, tools: this.#tools.size };
    if (this.#lastError !== undefined && this.#state !== 'connected') s.lastError = this.#lastError;
    return s;
  }

  /** resolves once the first connection attempt has ended (either way) */
  settled(): Promise<void> {
    return this.#firstAttempt;
  }

  start(): void {
    void this.#connect();
  }

  /** a config that cannot be used: shown in status, never connected */
  invalid(problem: string): void {
    this.#state = 'failed';
    this.#lastError = problem;
    this.#deps.log('error', problem);
    this.#firstDone();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const closing = this.#teardown('stopped');
    this.#state = 'stopped';
    for (const name of [...this.#tools.keys()]) this.#unregister(name);
    this.#firstDone();
    await closing;
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const gen = ++this.#gen;
    this.#state = 'connecting';
    try {
      const sdk = await loadSdk();
      this.#sdk = sdk;
      const transport = await this.#transport(sdk);
      if (gen !== this.#gen || this.#stopped) return;
      const client = new sdk.Client({ name: 'talon', version: VERSION }, { capabilities: {} });
      client.onclose = () => this.#fail(gen, this.#closedReason());
      client.onerror = (err) => this.#onError(gen, err);
      client.setNotificationHandler(sdk.ToolListChangedNotificationSchema, async () => {
        if (gen !== this.#gen) return;
        this.#deps.log('info', `MCP server "${this.name}" changed its tools: listing them again`);
        await this.#relist(client, gen).catch((err) =>
          this.#deps.log('warn', `MCP server "${this.name}": tools/list failed: ${errText(err)}`),
        );
      });
      this.#client = client;
      this.#lost = new AbortController();
      await client.connect(transport, { timeout: this.#cfg.connectTimeoutMs });
      if (gen !== this.#gen) return;
      await this.#relist(client, gen);
      if (gen !== this.#gen) return;
      this.#state = 'connected';
      this.#attempt = 0;
      this.#lastError = undefined;
      const v = client.getServerVersion();
      this.#deps.log(
        'info',
        `MCP server "${this.name}" connected (${v ? `${v.name} ${v.version}` : 'unnamed'}, ${this.#tools.size} tools)`,
      );
    } catch (err) {
      this.#fail(gen, this.#describe(err));
    } finally {
      this.#firstDone();
    }
  }

  async #transport(sdk: Sdk): Promise<Transport> {
    const cfg = this.#cfg;
    if (cfg.command) {
      const env = { ...cfg.env, PATH: cfg.env?.PATH ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' };
      const t = new ChildTransport({ command: cfg.command, env, ...(cfg.cwd ? { cwd: cfg.cwd } : {}) }, sdk);
      this.#childTransport = t;
      return t;
    }
    const headers: Record<string, string> = {};
    if (cfg.tokenSecret) {
      const token = await this.#deps.secret(cfg.tokenSecret);
      if (!token) throw new Error(`the sealed secret "${cfg.tokenSecret}" (tokenSecret) is not set`);
      headers.authorization = `Bearer ${token}`;
    }
    this.#childTransport = undefined;
    return new sdk.StreamableHTTPClientTransport(new URL(cfg.url as string), { requestInit: { headers } });
  }

  #closedReason(): string {
    const child = this.#childTransport;
    if (!child) return 'the connection closed';
    const tail = child.stderrTail.trim().split('\n').slice(-3).join(' | ');
    return `the server process ${child.exit ?? 'closed its pipes'}${tail ? ` (stderr: ${tail.slice(-300)})` : ''}`;
  }

  #describe(err: unknown): string {
    const sdk = this.#sdk;
    if (sdk && err instanceof sdk.McpError && err.code === sdk.ErrorCode.ConnectionClosed) return this.#closedReason();
    if (err instanceof TypeError && err.cause instanceof Error) return `${err.message}: ${err.cause.message}`;
    return errText(err);
  }

  #onError(gen: number, err: Error): void {
    if (gen !== this.#gen) return;
    // HTTP: a failed fetch or a broken SSE stream means the server is gone (a POST's 404 is a
    // stale session, handled by the call that got it)
    const network =
      err instanceof TypeError ||
      /^(SSE stream disconnected|Failed to reconnect|Maximum reconnection attempts)/.test(err.message);
    if (network && !this.#cfg.command) {
      this.#fail(gen, this.#describe(err));
      return;
    }
    this.#deps.log('debug', `MCP server "${this.name}": ${errText(err)}`);
  }

  /** the connection of `gen` is lost: fail in-flight calls, close it, reconnect after a backoff */
  #fail(gen: number, reason: string): void {
    if (gen !== this.#gen || this.#stopped) return;
    const wasConnected = this.#state === 'connected';
    void this.#teardown(reason);
    this.#state = 'failed';
    this.#lastError = reason;
    const delay = Math.min(BACKOFF_MIN_MS * 2 ** this.#attempt, BACKOFF_MAX_MS);
    this.#attempt++;
    this.#deps.log(
      wasConnected ? 'warn' : 'info',
      `MCP server "${this.name}" ${wasConnected ? 'lost' : 'not connected'}: ${reason}; retrying in ${delay / 1000} s`,
    );
    this.#firstDone();
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay);
  }

  async #teardown(reason: string): Promise<void> {
    this.#gen++;
    this.#lost.abort(new Error(reason));
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.close().catch(() => undefined);
  }

  async #relist(client: Client, gen: number): Promise<void> {
    const run = async () => {
      const tools: McpTool[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor ? { cursor } : undefined, { timeout: this.#cfg.connectTimeoutMs });
        tools.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor && tools.length < MAX_TOOLS);
      if (gen !== this.#gen) return;
      this.#apply(tools.slice(0, MAX_TOOLS));
    };
    this.#relisting = this.#relisting.then(run, run);
    return this.#relisting;
  }

  /** registers new and changed tools, unregisters the ones the server no longer lists */
  #apply(tools: McpTool[]): void {
    const seen = new Set<string>();
    const trusted = new Set(this.#cfg.trusted ?? []);
    for (const tool of tools) {
      if (typeof tool.name !== 'string' || !MCP_TOOL_NAME.test(tool.name)) {
        this.#deps.log('warn', `MCP server "${this.name}": tool name "${String(tool.name)}" is not usable; skipped`);
        continue;
      }
      if (seen.has(tool.name)) continue;
      seen.add(tool.name);
      const def = this.#definition(tool, trusted.has(tool.name));
      const sig = JSON.stringify([def.description, def.inputSchema, def.outputSchema, def.annotations]);
      const had = this.#tools.get(tool.name);
      if (had?.sig === sig) continue;
      if (had) this.#unregister(tool.name);
      try {
        this.#deps.register(def);
        this.#tools.set(tool.name, { def, sig });
      } catch (err) {
        this.#deps.log('warn', `MCP server "${this.name}": tool ${def.name} not registered: ${errText(err)}`);
      }
    }
    for (const name of [...this.#tools.keys()]) if (!seen.has(name)) this.#unregister(name);
  }

  #unregister(remote: string): void {
    const had = this.#tools.get(remote);
    if (!had) return;
    this.#tools.delete(remote);
    try {
      this.#deps.unregister(had.def.name);
    } catch (err) {
      this.#deps.log('warn', `MCP server "${this.name}": unregister ${had.def.name}: ${errText(err)}`);
    }
  }

  #definition(tool: McpTool, trusted: boolean): McpToolDefinition {
    const name = `mcp.${this.name}.${tool.name}`;
    const outputSchema = tool.outputSchema ? withoutDialect(tool.outputSchema) : undefined;
    const described = tool.description?.trim() || tool.title || `Tool "${tool.name}"`;
    const def: McpToolDefinition = {
      name,
      description: `${described} (from MCP server "${this.name}")`,
      inputSchema: withoutDialect(tool.inputSchema),
      annotations: mcpAnnotations(tool.annotations, trusted),
      capability: `tools: ${name} (MCP server "${this.name}")`,
      timeoutMs: this.#cfg.timeoutMs,
      source: `mcp:${this.name}`,
      available: () => this.#state === 'connected',
      annotationsTrusted: trusted,
      // step 4, before any approval: nobody is asked to approve a call that cannot be made
      check: () => {
        if (this.#state !== 'connected') throw this.#unavailable(tool.name);
        return null;
      },
      run: (input: unknown, ctx: ToolRunContext) => this.#run(tool.name, outputSchema !== undefined, input, ctx),
    };
    if (outputSchema) def.outputSchema = outputSchema;
    return def;
  }

  #unavailable(tool: string): TalonError {
    const why = this.#lastError ? `: ${this.#lastError}` : '';
    const state = this.#state === 'stopped' ? 'stopped' : 'not connected';
    return new TalonError(
      'MCP_UNAVAILABLE',
      `MCP server "${this.name}" is ${state}${why}; Talon reconnects on its own, try mcp.${this.name}.${tool} again later`,
      { details: { server: this.name, tool, state: this.#state } },
    );
  }

  async #run(tool: string, structured: boolean, input: unknown, ctx: ToolRunContext): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const client = this.#client;
      const sdk = this.#sdk;
      if (this.#state !== 'connected' || !client || !sdk) throw this.#unavailable(tool);
      const gen = this.#gen;
      const lost = this.#lost.signal;
      try {
        const result = await client.callTool(
          { name: tool, arguments: (input ?? {}) as Record<string, unknown> },
          undefined,
          { signal: AbortSignal.any([ctx.signal, lost]), timeout: ctx.timeoutMs },
        );
        return this.#output(tool, structured, result as Record<string, unknown>);
      } catch (err) {
        if (attempt === 0 && err instanceof sdk.StreamableHTTPError && err.code === 404 && !ctx.signal.aborted) {
          await this.#reinitialise(gen);
          continue;
        }
        throw this.#mapError(err, sdk, gen, lost, tool, ctx);
      }
    }
  }

  /** a stale HTTP session: one new session (shared by the calls that found it stale) */
  #reinitialise(gen: number): Promise<void> {
    if (gen === this.#gen && !this.#reinit) {
      this.#deps.log('info', `MCP server "${this.name}" forgot our session: initialising a new one`);
      this.#reinit = (async () => {
        await this.#teardown('the session expired');
        this.#state = 'connecting';
        await this.#connect();
      })().finally(() => {
        this.#reinit = undefined;
      });
    }
    return this.#reinit ?? Promise.resolve();
  }

  #mapError(err: unknown, sdk: Sdk, gen: number, lost: AbortSignal, tool: string, ctx: ToolRunContext): TalonError {
    if (err instanceof TalonError) return err;
    const full = `mcp.${this.name}.${tool}`;
    const details = { server: this.name, tool };
    if (ctx.signal.aborted) {
      if (ctx.signal.reason instanceof TalonError) return ctx.signal.reason;
      return new TalonError(
        'TOOL_TIMEOUT',
        `${full} did not answer within ${ctx.timeoutMs} ms; the call was cancelled`,
        {
          details,
        },
      );
    }
    if (lost.aborted) return this.#unavailable(tool);
    if (this.#childTransport?.exit !== undefined) {
      this.#fail(gen, this.#closedReason());
      return this.#unavailable(tool);
    }
    if (err instanceof sdk.McpError) {
      if (err.code === sdk.ErrorCode.RequestTimeout) {
        return new TalonError(
          'TOOL_TIMEOUT',
          `${full} did not answer within ${ctx.timeoutMs} ms; the call was cancelled`,
          {
            details,
          },
        );
      }
      if (err.code === sdk.ErrorCode.ConnectionClosed) {
        this.#fail(gen, this.#closedReason());
        return this.#unavailable(tool);
      }
      return new TalonError('MCP_ERROR', `MCP server "${this.name}" answered ${full} with an error: ${err.message}`, {
        details: { ...details, mcpCode: err.code },
      });
    }
    if (err instanceof TypeError && !this.#cfg.command) {
      this.#fail(gen, this.#describe(err));
      return this.#unavailable(tool);
    }
    if (err instanceof sdk.StreamableHTTPError) {
      const hint = err.code === 401 || err.code === 403 ? ' (check the token in tokenSecret)' : '';
      return new TalonError('MCP_ERROR', `MCP server "${this.name}" refused ${full}: HTTP ${err.code}${hint}`, {
        details: { ...details, status: err.code },
      });
    }
    return new TalonError(
      'MCP_ERROR',
      `MCP server "${this.name}" sent an answer to ${full} Talon cannot read: ${errText(err)}`,
      {
        details,
      },
    );
  }

  #output(tool: string, structured: boolean, result: Record<string, unknown>): unknown {
    const content = Array.isArray(result.content) ? (result.content as Array<Record<string, unknown>>) : [];
    const text = content
      .filter((c) => c.type === 'text' && typeof c.text === 'string')
      .map((c) => c.text as string)
      .join('\n');
    if (result.isError === true) {
      throw new TalonError('TOOL_FAILED', `mcp.${this.name}.${tool} failed: ${text.slice(0, 2000) || 'no message'}`, {
        details: { server: this.name, tool },
      });
    }
    if (structured && result.structuredContent !== undefined) return result.structuredContent;
    const other = content.filter((c) => c.type !== 'text');
    const out: Record<string, unknown> = { text };
    if (other.length > 0) out.content = other;
    if (result.structuredContent !== undefined) out.structuredContent = result.structuredContent;
    return out;
  }
}

/** a schema without its `$schema` (MCP servers often say draft-07; the registry compiles 2020-12) */
function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/**
 * The kernel's MCP servers (config `tools.mcp.servers`). `start()` returns at once and connects in
 * the background; each server's tools are registered as it connects.
 *
 * What a tool's output is: its `structuredContent` when it declares an outputSchema; otherwise
 * `{ text, content?, structuredContent? }` — the text items joined, the other content items
 * (images, resources) as the server sent them.
 */
export class McpClients {
  readonly #deps: McpClientsDeps;
  readonly #conns = new Map<string, McpConnection>();

  constructor(deps: McpClientsDeps) {
    this.#deps = deps;
  }

  start(servers: McpServerConfig[]): void {
    for (const cfg of servers) {
      const old = this.#conns.get(cfg.name);
      if (old && old.status().state !== 'stopped') {
        this.#deps.log('error', `MCP server "${cfg.name}" is configured twice: the second one is ignored`);
        continue;
      }
      const conn = new McpConnection(cfg, this.#deps);
      this.#conns.set(cfg.name, conn);
      const problem = checkMcpServerConfig(cfg);
      if (problem) conn.invalid(problem);
      else conn.start();
    }
  }

  /** closes every connection (stdio children ended) and unregisters their tools */
  async stop(): Promise<void> {
    await Promise.all([...this.#conns.values()].map((c) => c.stop()));
  }

  status(): McpServerStatus[] {
    return [...this.#conns.values()].map((c) => c.status()).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** resolves when every server has finished its first connection attempt, connected or not */
  async settled(): Promise<void> {
    await Promise.all([...this.#conns.values()].map((c) => c.settled()));
  }
}
