/**
 * The HTTP listener: `/healthz` for anyone, `/api/v1/*` for callers with a bearer token
 * (the CLI's token from the data folder; users and sessions come with the web admin).
 * Listens on 127.0.0.1 unless configured otherwise.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { RuntimeApi } from '../runtime/api/runtime-api.ts';
import type { ListenAddress } from '../runtime/config/types.ts';
import { TalonError } from '../runtime/errors.ts';
import { routes, type Route } from './routes.ts';

export interface HttpServerOptions {
  api: RuntimeApi;
  listen: ListenAddress;
  /** the bearer token that authenticates the CLI */
  cliToken: string;
}

interface CompiledRoute {
  route: Route;
  regex: RegExp;
  keys: string[];
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function compile(route: Route): CompiledRoute {
  const keys: string[] = [];
  const pattern = route.path.replace(/:([a-z]+)/g, (_m, k: string) => {
    keys.push(k);
    return '([^/]+)';
  });
  return { route, regex: new RegExp(`^${pattern}$`), keys };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class HttpServer {
  #opts: HttpServerOptions;
  #server: Server;
  #compiled = routes.map(compile);
  #tokenDigest: Buffer;
  #streams = new Set<ServerResponse>();

  constructor(opts: HttpServerOptions) {
    this.#opts = opts;
    this.#tokenDigest = digest(opts.cliToken);
    this.#server = createServer((req, res) => void this.handle(req, res));
    this.#server.keepAliveTimeout = 5000;
    this.#server.headersTimeout = 10000;
    this.#server.requestTimeout = 30000;
  }

  address(): ListenAddress {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') throw new TalonError('NOT_RUNNING', 'the HTTP server is not listening');
    return { host: a.address, port: a.port };
  }

  listen(): Promise<void> {
    const { host, port } = this.#opts.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        if (err.code === 'EADDRINUSE') {
          reject(new TalonError('PORT_IN_USE', `HTTP port ${host}:${port} is in use by another program; set http.port in the config or TALON_HTTP=host:port`));
        } else {
          reject(new TalonError('LISTEN_FAILED', `cannot listen for HTTP on ${host}:${port}: ${err.message}`, { cause: err }));
        }
      };
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    for (const res of this.#streams) res.end();
    this.#streams.clear();
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  /** The request handler, also used in process by tests (light-my-request). Never rejects. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.#route(req, res);
    } catch (err) {
      sendError(res, err);
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://talon.local');
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);

    if (url.pathname === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new TalonError('BAD_REQUEST', 'use GET /healthz');
      const health = this.#opts.api.health();
      sendJson(res, health.ok ? 200 : 503, { status: health.ok ? 'ok' : 'unavailable', ...health });
      return;
    }

    let pathMatched = false;
    for (const { route, regex, keys } of this.#compiled) {
      const m = regex.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      const params: Record<string, string> = {};
      keys.forEach((k, i) => {
        params[k] = decodeURIComponent(m[i + 1]!);
      });
      const caller = route.auth ? this.#authenticate(req) : { actor: 'anonymous' };
      const input = route.body ? await readJson(req) : (req.resume(), undefined);
      const body = await route.handler({ api: this.#opts.api, caller, params, query: url.searchParams, body: input, req, res });
      if (body !== undefined) sendJson(res, 200, body);
      else if (String(res.getHeader('content-type') ?? '').startsWith('text/event-stream') && !res.writableEnded) {
        // an open event stream: ended cleanly on shutdown, so followers see the end, not a reset
        this.#streams.add(res);
        res.once('close', () => this.#streams.delete(res));
      }
      return;
    }
    if (pathMatched) throw new TalonError('METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed on ${url.pathname}`);
    throw new TalonError('NOT_FOUND', `no route ${req.method ?? ''} ${url.pathname}`);
  }

  #authenticate(req: IncomingMessage): { actor: string } {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer (\S+)$/.exec(header);
    if (!m) throw new TalonError('UNAUTHORIZED', 'this route needs `Authorization: Bearer <token>` (the CLI reads it from the data folder\'s cli-token)');
    if (!timingSafeEqual(digest(m[1]!), this.#tokenDigest)) throw new TalonError('UNAUTHORIZED', 'the bearer token is not valid');
    return { actor: 'cli' };
  }
}

export const MAX_BODY_BYTES = 64 * 1024;

/** A JSON request body: at most MAX_BODY_BYTES, UTF-8, JSON; anything else is a coded 4xx. */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const type = req.headers['content-type'] ?? '';
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      reject(new TalonError('PAYLOAD_TOO_LARGE', `the request body is ${declared} bytes; at most ${MAX_BODY_BYTES} are accepted`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        reject(new TalonError('PAYLOAD_TOO_LARGE', `the request body is over ${MAX_BODY_BYTES} bytes`));
      } else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size === 0) return resolve(undefined);
      if (!/^application\/json\b/i.test(type)) {
        reject(new TalonError('UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json'));
        return;
      }
      try {
        resolve(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))));
      } catch (err) {
        reject(new TalonError('BAD_REQUEST', `the request body is not valid UTF-8 JSON: ${(err as Error).message}`));
      }
    });
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  const e = TalonError.from(err);
  const status = e.status;
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, status, { error: e.toJSON() });
}
