/**
 * The HTTP(S) listener of the web admin and REST API. One route table (./routes/index.ts)
 * drives dispatch, validation (./router.ts) and the OpenAPI document (./openapi.ts); auth is
 * ./auth/; the page is served from the web root (./static.ts). Listens on 127.0.0.1 unless
 * configured for the LAN. Errors are always `{error: {code, message, details}}`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { RuntimeApi } from '../runtime/api/runtime-api.ts';
import type { ListenAddress } from '../runtime/config/types.ts';
import type { Store } from '../runtime/store/store.ts';
import type { Audit } from '../runtime/audit/types.ts';
import type { Logger } from '../runtime/log.ts';
import type { Clock } from '../runtime/core/clock.ts';
import { TalonError } from '../runtime/core/errors.ts';
import { AuthService } from './auth/index.ts';
import { Router } from './router.ts';
import { StaticFiles } from './static.ts';
import { HostGuard } from './auth/origin.ts';
import { loadTls, type TlsOptions } from './tls.ts';
import { routes as defaultRoutes } from './routes/index.ts';
import { surfaceRoutes } from './routes/surfaces.ts';
import type { Route } from './route.ts';
import type { AnySurface } from '../hands/sdk/surface.ts';
import { holds } from './auth/scopes.ts';

export interface HttpServerOptions {
  api: RuntimeApi;
  /** where to listen; `allowedHosts`: more names the server answers to (./auth/origin.ts) */
  listen: ListenAddress & { allowedHosts?: string[] };
  /** the bearer token that authenticates the CLI */
  cliToken: string;
  store: Store;
  audit: Audit;
  dataDir: string;
  logger?: Logger;
  tls?: TlsOptions;
  clock?: Clock;
  /** where the built page is (default dist/web beside the program) */
  webRoot?: string;
  /** the route table (default: every area's routes, then the Hands' from `surfaces`) */
  routes?: Route[];
  /**
   * the Hands whose routes this server mounts (hands/sdk/surface.ts); default: the surfaces the
   * runtime API was given, so the composition root names them once
   */
  surfaces?: readonly AnySurface[];
  /**
   * Talon's MCP server (Streamable HTTP) at /mcp: POST, GET and DELETE reach `handle` with the
   * parsed JSON body once a bearer token holding `mcp:write` (or `*`) is checked; without it
   * /mcp answers 404 NOT_FOUND
   */
  mcp?: McpEndpoint;
}

/** what serves /mcp (runtime/tools/mcp/server.ts over the SDK's transport) */
export interface McpEndpoint {
  handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: { actor: string }): Promise<void>;
}

export const MAX_BODY_BYTES = 64 * 1024;

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

export class HttpServer {
  readonly auth: AuthService;
  readonly router: Router;
  #opts: HttpServerOptions;
  #server: Server | null = null;
  #static: StaticFiles;
  #streams = new Set<ServerResponse>();
  #tls: boolean;
  #setupCode: string | null = null;
  #hosts: HostGuard;

  constructor(opts: HttpServerOptions) {
    this.#opts = opts;
    this.#tls = opts.tls?.enabled === true;
    const surfaces = opts.surfaces ?? (opts.api as Partial<RuntimeApi> | undefined)?.handRequests?.surfaces ?? [];
    this.router = new Router(opts.routes ?? [...defaultRoutes, ...surfaceRoutes(surfaces)]);
    this.auth = new AuthService({
      store: opts.store,
      audit: opts.audit,
      dataDir: opts.dataDir,
      cliToken: opts.cliToken,
      secure: this.#tls,
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    this.#static = new StaticFiles(opts.webRoot);
    this.#hosts = new HostGuard({
      listen: opts.listen,
      ...(opts.listen.allowedHosts ? { allowedHosts: opts.listen.allowedHosts } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
  }

  /** the one-time setup code while no account exists (the kernel prints it), else null */
  get setupCode(): string | null {
    return this.#setupCode;
  }

  get secure(): boolean {
    return this.#tls;
  }

  address(): ListenAddress {
    const a = this.#server?.address();
    if (!a || typeof a === 'string') throw new TalonError('NOT_RUNNING', 'the HTTP server is not listening');
    return { host: a.address, port: a.port };
  }

  /** Prepares auth (the setup code on first start), TLS when enabled, and listens. */
  async listen(): Promise<void> {
    this.#setupCode = await this.auth.init();
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    if (this.#tls) {
      const tls = await loadTls(this.#opts.tls!, this.#opts.dataDir);
      if (tls.created) this.#opts.logger?.info(`made a self-signed TLS certificate in ${this.#opts.dataDir}/tls/`);
      // node:https (and node:tls under it: ~65 internal modules on Node 26) only with TLS on
      const { createServer: createHttpsServer } = await import('node:https');
      this.#server = createHttpsServer({ cert: tls.cert, key: tls.key }, handler);
    } else {
      this.#server = createServer(handler);
    }
    const server = this.#server;
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10000;
    server.requestTimeout = 30000;
    const { host, port } = this.#opts.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        if (err.code === 'EADDRINUSE') {
          reject(
            new TalonError(
              'PORT_IN_USE',
              `HTTP port ${host}:${port} is in use by another program; set http.port in the config or TALON_HTTP=host:port`,
            ),
          );
        } else {
          reject(
            new TalonError('LISTEN_FAILED', `cannot listen for HTTP on ${host}:${port}: ${err.message}`, {
              cause: err,
            }),
          );
        }
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    for (const res of this.#streams) res.end();
    this.#streams.clear();
    const server = this.#server;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The request handler, also used in process by tests (light-my-request). Never rejects. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.#route(req, res);
    } catch (err) {
      const e = TalonError.from(err);
      if (e.status >= 500 && e.code === 'INTERNAL')
        this.#opts.logger?.error(`${req.method ?? ''} ${(req.url ?? '').split('?')[0]}: ${e.message}`);
      sendError(res, e);
      if (!req.complete) req.resume();
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('content-security-policy', CSP);
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('cross-origin-opener-policy', 'same-origin');
    if (this.#tls) res.setHeader('strict-transport-security', 'max-age=31536000');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://talon.local');
    } catch {
      throw new TalonError('BAD_REQUEST', 'the request URL is not valid');
    }
    const method = req.method ?? 'GET';
    const pathname = url.pathname;
    // DNS rebinding and cross-site writes: only the device's own names, writes only from its own pages
    this.#hosts.check(req, method, pathname);
    const isApi =
      pathname.startsWith('/api/') || pathname === '/api' || pathname === '/healthz' || pathname === '/metrics';
    if (isApi) res.setHeader('cache-control', 'no-store');
    if (pathname === '/mcp') return this.#mcp(req, res, method);
    const match = this.router.match(method === 'HEAD' && !isApi ? 'GET' : method, pathname);
    if (match.kind === 'none') {
      if (!isApi && (method === 'GET' || method === 'HEAD')) {
        req.resume();
        this.#static.serve(req, res, pathname);
        return;
      }
      throw new TalonError('NOT_FOUND', `no route ${method} ${pathname.slice(0, 200)}`);
    }
    if (match.kind === 'method') {
      res.setHeader('allow', match.allowed.join(', '));
      throw new TalonError(
        'METHOD_NOT_ALLOWED',
        `${method} is not allowed on ${pathname.slice(0, 200)}; use ${match.allowed.join(' or ')}`,
      );
    }
    const { route, params } = match;
    const who = await this.auth.authenticate(req);
    this.auth.authorize(route, who, req);
    this.router.validateParams(route, params);
    const query = this.router.validateQuery(route, url.searchParams);
    const rawBody = route.rawBody ? await readText(req) : undefined;
    const raw = route.rawBody ? undefined : await readJson(req);
    let body: unknown;
    if (route.body) body = this.router.validateBody(route, raw === undefined ? {} : raw);
    else if (raw !== undefined) throw new TalonError('BAD_REQUEST', `${method} ${route.path} takes no body`);
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    const result = await route.handler({
      api: this.#opts.api,
      principal: who.principal,
      caller: { actor: who.principal.actor },
      params,
      query,
      body,
      ...(rawBody !== undefined && { rawBody }),
      req,
      res,
      signal: ac.signal,
      auth: this.auth,
      session: who.sessionId && who.csrf ? { id: who.sessionId, csrf: who.csrf } : null,
      ip: req.socket?.remoteAddress ?? 'unknown',
      routes: this.router.routes,
    });
    if (result !== undefined) {
      const status = Number(Object.keys(route.responses).find((s) => Number(s) >= 200 && Number(s) < 300) ?? 200);
      sendJson(res, status, result);
    } else if (String(res.getHeader('content-type') ?? '').startsWith('text/event-stream') && !res.writableEnded) {
      // an open event stream: ended cleanly on shutdown, so followers see the end, not a reset
      this.#streams.add(res);
      res.once('close', () => this.#streams.delete(res));
    }
  }

  /** /mcp: an API token with `mcp:write` (no cookie sessions: a page cannot drive it), the body parsed and capped */
  async #mcp(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    res.setHeader('cache-control', 'no-store');
    const mcp = this.#opts.mcp;
    if (!mcp) throw new TalonError('NOT_FOUND', 'MCP is not enabled (tools.mcp.serve)');
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      res.setHeader('allow', 'POST, GET, DELETE');
      throw new TalonError('METHOD_NOT_ALLOWED', `${method} is not allowed on /mcp; use POST, GET or DELETE`);
    }
    if (req.headers.authorization === undefined)
      throw new TalonError(
        'UNAUTHORIZED',
        'send `Authorization: Bearer <token>` with an API token that has the mcp:write scope (Tokens in the web admin)',
      );
    const { principal } = await this.auth.authenticate(req);
    if (!holds(principal, 'mcp:write'))
      throw new TalonError('FORBIDDEN', `this token lacks the scope mcp:write (${principal.actor})`);
    const body = await readJson(req);
    await mcp.handle(req, res, body, { actor: principal.actor });
    if (String(res.getHeader('content-type') ?? '').startsWith('text/event-stream') && !res.writableEnded) {
      this.#streams.add(res);
      res.once('close', () => this.#streams.delete(res));
    }
  }
}

/** a webhook's body, as text: at most this many bytes */
export const WEBHOOK_MAX_BYTES = 64 * 1024;

/** A webhook's body as UTF-8 text, at most WEBHOOK_MAX_BYTES (the signature covers these exact bytes). */
function readText(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    const tooLarge = () =>
      new TalonError('PAYLOAD_TOO_LARGE', `a webhook's body may be at most ${WEBHOOK_MAX_BYTES} bytes`);
    if (declared > WEBHOOK_MAX_BYTES) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > WEBHOOK_MAX_BYTES) {
        req.destroy();
        reject(tooLarge());
      } else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
      } catch {
        reject(new TalonError('BAD_REQUEST', 'the webhook body is not valid UTF-8'));
      }
    });
  });
}

/** A JSON request body: at most MAX_BODY_BYTES, UTF-8, JSON; undefined when empty; anything else a coded 4xx. */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const type = req.headers['content-type'] ?? '';
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      reject(
        new TalonError(
          'PAYLOAD_TOO_LARGE',
          `the request body is ${declared} bytes; at most ${MAX_BODY_BYTES} are accepted`,
        ),
      );
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        over = true;
        reject(new TalonError('PAYLOAD_TOO_LARGE', `the request body is over ${MAX_BODY_BYTES} bytes`));
      } else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (over) return;
      if (size === 0) return resolve(undefined);
      if (!/^application\/json\b/i.test(type)) {
        reject(new TalonError('UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json'));
        return;
      }
      try {
        resolve(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))));
      } catch (err) {
        reject(
          new TalonError(
            'BAD_REQUEST',
            `the request body is not valid UTF-8 JSON: ${(err as Error).message.slice(0, 200)}`,
          ),
        );
      }
    });
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, e: TalonError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const retry = (e.details as { retryAfterSec?: unknown } | undefined)?.retryAfterSec;
  if (typeof retry === 'number') res.setHeader('retry-after', String(retry));
  res.setHeader('cache-control', 'no-store');
  sendJson(res, e.status, { error: e.toJSON() });
}
