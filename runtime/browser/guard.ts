/**
 * The browser's network guard: may a page of a job (./pool.ts) load this URL under the caller's network grant? The
 * same checks ctx.fetch makes (../capabilities/fetch.ts, ../core/network.ts), answered per URL for request
 * interception:
 *   1. the scheme: http:, https:, ws:, wss: are checked below; data:, blob: and about:blank stay inside the page and
 *      are let through; file:, chrome:, javascript:, ftp: and anything else are refused;
 *   2. the host and port against the grant (NetworkPolicy.allowsHost; an IP in the URL matches address entries);
 *   3. a name is resolved (all addresses; the resolver is injectable) and every address must pass allowsAddress: a
 *      granted name that resolves to loopback, the LAN, link-local, CGNAT… is refused unless that address is granted.
 * Resolutions are cached for CACHE_MS (a page loads dozens of resources from one host), at most CACHE_MAX names.
 *
 * Two users in ./pool.ts: request interception (`context.route`) asks `url()` for every request Chromium starts, and
 * GuardProxy, the HTTP proxy every job's context goes through, asks `target()` and connects to exactly the addresses
 * it was given (like ctx.fetch's pinning: a name that changes its answer cannot move the connection, and Chromium
 * does not resolve proxied names itself). Interception alone could not pin: it only answers yes or no and Chromium
 * would then resolve the name again (a DNS rebinding window); nor does it see redirect hops. Not covered: WebRTC's UDP
 * does not use an HTTP proxy (a launch flag in pool.ts forbids UDP outside the proxy; not tested), and the proxy
 * connects to the first checked address only (no fallback to a name's other addresses).
 */
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import type { Resolver } from '../capabilities/fetch.ts';
import type { NetworkGrant } from '../core/hand.ts';
import { NetworkPolicy, canonicalAddress, hostName, isSpecialAddress } from '../core/network.ts';

export type { Resolver };

export type GuardAnswer = { ok: true } | { ok: false; reason: string };
export type RequestGuard = (url: string) => Promise<GuardAnswer>;

/** how long a name's addresses are trusted, and how many names are kept */
export const CACHE_MS = 30_000;
export const CACHE_MAX = 256;

const systemResolver: Resolver = (host) => lookup(host, { all: true });

const CHECKED = new Set(['http:', 'https:', 'ws:', 'wss:']);
const INSIDE = new Set(['data:', 'blob:']);

/** a host and port checked: the addresses a connection may go to, or why not */
export type TargetAnswer = { ok: true; addresses: string[] } | { ok: false; reason: string };

/** the checks for one grant: a URL (interception) and a host:port (the proxy, which also needs the addresses) */
export interface GrantChecker {
  url(raw: string): Promise<GuardAnswer>;
  target(host: string, port: number): Promise<TargetAnswer>;
}

/**
 * The checks for one grant, with their DNS cache. `resolve` defaults to the system's lookup (getaddrinfo); `now` is
 * for tests of the cache. A refusal's `reason` names the host and what to grant instead, like ctx.fetch's.
 */
export function grantChecker(grant: NetworkGrant, opts: { resolve?: Resolver; now?: () => number } = {}): GrantChecker {
  const policy = new NetworkPolicy(grant);
  const resolve = opts.resolve ?? systemResolver;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { at: number; addresses: Promise<string[]> }>();
  const allowed = grant.hosts.length ? grant.hosts.join(', ') : 'no hosts';

  const addressesOf = (name: string): Promise<string[]> => {
    const t = now();
    const hit = cache.get(name);
    if (hit && t - hit.at < CACHE_MS) return hit.addresses;
    if (hit) cache.delete(name);
    const addresses = resolve(name).then((list) => {
      if (!Array.isArray(list) || list.length === 0) throw new Error('no addresses');
      return list.map((a) => String(a.address));
    });
    // a failed lookup is not cached: the next request asks again
    addresses.catch(() => cache.delete(name));
    cache.set(name, { at: t, addresses });
    while (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
    return addresses;
  };

  const target = async (hostname: string, port: number): Promise<TargetAnswer> => {
    const host = bare(hostname);
    const where = `${host.endsWith('.') ? host.slice(0, -1) : host}:${port}`;
    if (!policy.allowsHost(host, port))
      return { ok: false, reason: `${where} is not in the network grant (it allows ${allowed})` };
    const literal = canonicalAddress(host);
    let addresses: string[];
    if (literal) addresses = [literal.address];
    else {
      const name = hostName(host);
      try {
        addresses = await addressesOf(name);
      } catch (err) {
        return {
          ok: false,
          reason: `${name} did not resolve: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        };
      }
    }
    const checked: string[] = [];
    for (const a of addresses) {
      const c = canonicalAddress(a);
      if (!c)
        return {
          ok: false,
          reason: `${host} resolved to ${JSON.stringify(a.slice(0, 60))}, which is not an IP address`,
        };
      if (!policy.allowsAddress(c.address, port))
        return {
          ok: false,
          reason:
            `${where} resolves to ${c.address}, a ${describeAddress(c.address)} address the network grant does not name; ` +
            `grant that address or its range (e.g. "${c.address}${c.family === 4 ? `:${port}` : ''}") if it is meant`,
        };
      checked.push(c.address);
    }
    return { ok: true, addresses: checked };
  };

  const url = async (raw: string): Promise<GuardAnswer> => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return { ok: false, reason: `${JSON.stringify(raw.slice(0, 80))} is not a URL` };
    }
    if (INSIDE.has(u.protocol) || raw === 'about:blank') return { ok: true };
    if (!CHECKED.has(u.protocol))
      return { ok: false, reason: `the ${u.protocol} scheme is not allowed (http, https, ws, wss only)` };
    if (u.username || u.password) return { ok: false, reason: `${u.host}: credentials in a URL are not allowed` };
    const port = u.port ? Number(u.port) : u.protocol === 'https:' || u.protocol === 'wss:' ? 443 : 80;
    const answer = await target(u.hostname, port);
    return answer.ok ? { ok: true } : answer;
  };

  return { url, target };
}

/** A URL guard for one grant (see grantChecker). */
export function requestGuard(grant: NetworkGrant, opts: { resolve?: Resolver; now?: () => number } = {}): RequestGuard {
  return grantChecker(grant, opts).url;
}

// ---- the proxy ------------------------------------------------------------------------

export interface ProxyTicket {
  /** playwright's `proxy` option for the job's context */
  proxy: { server: string; bypass: string; username: string; password: string };
  /** the job ended: its credentials stop working */
  release(): void;
}

/**
 * An HTTP proxy on 127.0.0.1 that every job's context goes through (playwright's per-context `proxy`, with
 * `<-loopback>` so loopback is not exempt): it knows the job by its proxy credentials, checks each request
 * (`http://…` absolute URLs) and tunnel (`CONNECT host:port` for https and WebSockets) with the job's checker, and
 * connects to exactly the addresses it checked. Redirect hops, which request interception never sees, pass here
 * too. A refusal closes the connection (the page sees a failed load); `onRefuse` hears of it.
 */
export class GuardProxy {
  readonly #server: http.Server;
  readonly #jobs = new Map<
    string,
    { password: string; checker: GrantChecker; onRefuse: (what: string, reason: string) => void }
  >();
  readonly #sockets = new Set<net.Socket>();
  #port = 0;

  constructor() {
    this.#server = http.createServer((req, res) => void this.#request(req, res));
    this.#server.on(
      'connect',
      (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void this.#connect(req, socket, head),
    );
    this.#server.on('connection', (s: net.Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
  }

  async start(): Promise<void> {
    if (this.#port) return;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as net.AddressInfo).port;
  }

  /** credentials for one job under `checker` */
  ticket(checker: GrantChecker, onRefuse: (what: string, reason: string) => void): ProxyTicket {
    const username = randomBytes(12).toString('hex');
    const password = randomBytes(12).toString('hex');
    this.#jobs.set(username, { password, checker, onRefuse });
    return {
      proxy: { server: `http://127.0.0.1:${this.#port}`, bypass: '<-loopback>', username, password },
      release: () => void this.#jobs.delete(username),
    };
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    if (this.#port) await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#port = 0;
  }

  #job(req: http.IncomingMessage) {
    const auth = req.headers['proxy-authorization'];
    const m = typeof auth === 'string' ? /^Basic\s+(\S+)$/i.exec(auth) : null;
    if (!m) return undefined;
    const [user, pass] = Buffer.from(m[1]!, 'base64').toString('utf8').split(':');
    const job = this.#jobs.get(user ?? '');
    return job && job.password === pass ? job : undefined;
  }

  async #request(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const job = this.#job(req);
    if (!job) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="talon-browser"', connection: 'close' });
      res.end();
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (url.protocol !== 'http:') {
      job.onRefuse(url.href, `the ${url.protocol} scheme is not allowed through the proxy`);
      req.socket.destroy();
      return;
    }
    const port = url.port ? Number(url.port) : 80;
    const answer = await job.checker.target(url.hostname, port);
    if (!answer.ok) {
      job.onRefuse(url.href, answer.reason);
      req.socket.destroy();
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const up = http.request(
      { host: answer.addresses[0], port, method: req.method, path: `${url.pathname}${url.search}`, headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.statusMessage, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    // Chromium gave up on the request (the page or the context closed): so does the upstream one
    res.once('close', () => up.destroy());
    req.pipe(up);
  }

  async #connect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const job = this.#job(req);
    if (!job) {
      socket.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="talon-browser"\r\n\r\n',
      );
      return;
    }
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(req.url ?? '');
    if (!m) {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const port = Number(m[2]);
    const answer = await job.checker.target(m[1]!, port);
    if (!answer.ok) {
      job.onRefuse(`${req.url}`, answer.reason);
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const up = net.connect({ host: answer.addresses[0], port });
    up.on('error', () => socket.destroy());
    up.once('connect', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    socket.once('close', () => up.destroy());
    up.once('close', () => socket.destroy());
  }
}

function bare(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function describeAddress(a: string): string {
  if (!isSpecialAddress(a)) return 'public';
  if (/^127\./.test(a) || a === '::1') return 'loopback';
  if (/^169\.254\./.test(a) || /^fe[89ab]/i.test(a)) return 'link-local';
  if (/^(0\.|::$)/.test(a)) return 'unspecified';
  if (/^(22[4-9]|23\d)\./.test(a) || /^ff/i.test(a)) return 'multicast';
  return 'private or reserved';
}
