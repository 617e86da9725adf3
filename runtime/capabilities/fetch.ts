/**
 * ctx.fetch, the kernel side: the one way a Hand without raw sockets reaches the network.
 *
 * For every hop (the first request and each redirect) it
 *   1. parses the URL (http: and https: only, no credentials in it),
 *   2. checks the host and port against the Hand's network grant (./network.ts),
 *   3. resolves the name itself (all addresses; the resolver is injectable) and refuses the
 *      request when any address is loopback, private, link-local, CGNAT, multicast or
 *      unspecified unless that address is granted itself,
 *   4. connects to exactly the addresses it checked (node:http's `lookup` option answers with
 *      them), the Host header and TLS name staying the URL's name: a name that changes its
 *      answer between two lookups (DNS rebinding) cannot move the connection;
 * and it follows redirects itself (at most maxRedirects, each hop checked again), strips
 * hop-by-hop and proxy headers, caps the request body, the response body (decoded, so a zip
 * bomb stops at the cap) and the total time (body included).
 *
 * Hands reach it through three kernel calls: `net.fetch` (answers status and headers once they
 * arrive), `net.read` (the next piece of the body, null at its end) and `net.cancel`. A refusal
 * is a CAPABILITY_DENIED with details { action: 'net.fetch', subject: 'host:port' }; the
 * supervisor audits it (rate-limited) as a capability deny. Each request that was let through
 * is audited once when it ends (`net.fetch`, ok or error; without the query string).
 * `request()` is the same path for kernel code acting for a Hand (the http tool).
 */
import http from 'node:http';
import type { RequestOptions } from 'node:https';
import { pipeline, type Readable } from 'node:stream';
import type { LookupFunction } from 'node:net';
import type { NetworkGrant } from '../core/hand.ts';
import type { Audit } from '../audit/types.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';
import type { HandCaller, KernelService } from '../supervisor/types.ts';
import { mxResolver, type MxResolver } from './resolver.ts';
import { NetworkPolicy, canonicalAddress, hostName, isSpecialAddress } from '../core/network.ts';

const MB = 1024 * 1024;
/** a DNS name: labels of letters, digits and -, dot-separated */
const DOMAIN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*$/;

export interface ResolvedAddress {
  address: string;
  family: number;
}
/** every address of a name; the kernel's DNS, injectable for tests */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

// https, tls, zlib and DNS are loaded on the first ctx.fetch, not at the kernel's start
// (4–8 ms of a cold start, measured in BENCHMARKS.md's issue 12 section)
const lazy = {
  get https() {
    return process.getBuiltinModule('node:https');
  },
  get tls() {
    return process.getBuiltinModule('node:tls');
  },
  get zlib() {
    return process.getBuiltinModule('node:zlib');
  },
};

export const systemResolver: Resolver = (host) =>
  process.getBuiltinModule('node:dns').promises.lookup(host, { all: true });

export interface FetchServiceOptions {
  audit: Audit;
  clock?: Clock;
  resolve?: Resolver;
  /** extra CA certificates to trust besides Node's bundled roots (a private CA; tests) */
  ca?: string | Buffer | Array<string | Buffer>;
  /** the largest request body a Hand may send (default 10 MB) */
  maxRequestBytes?: number;
  /** a domain's MX records (the `dns.mx` service; default the system's DNS) */
  mx?: MxResolver;
  /** redirects followed per request (default 5) */
  maxRedirects?: number;
  /** requests a Hand may have open at once, bodies being read included (default 16) */
  maxOpenPerHand?: number;
  /** net.fetch audit entries per second per Hand; the rest are counted into the next entry (default 50) */
  auditPerSec?: number;
}

export type RedirectMode = 'follow' | 'manual' | 'error';

export interface FetchRequest {
  url: string;
  method?: string;
  /** [name, value] pairs */
  headers?: Array<[string, string]>;
  body?: Uint8Array;
  redirect?: RedirectMode;
  /** lower than the grant's: the grant's limit is the ceiling */
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export interface FetchBody {
  /** the next piece, null at the end; throws NET_TOO_LARGE / NET_TIMEOUT / NET_CONNECT */
  read(): Promise<Buffer | null>;
  cancel(): void;
}

export interface FetchResponse {
  status: number;
  statusText: string;
  /** [name, value] pairs, names lower case, hop-by-hop headers removed */
  headers: Array<[string, string]>;
  /** the final URL */
  url: string;
  redirected: boolean;
  /** null for HEAD and for 204 / 205 / 304 */
  body: FetchBody | null;
}

/** who the request is for: the Hand's name and its effective network grant */
export interface FetchCaller {
  name: string;
  network: NetworkGrant;
}

const REQUEST_HEADERS_DROPPED = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'expect',
  'http2-settings',
]);
const RESPONSE_HEADERS_DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'trailer',
]);
const CROSS_ORIGIN_DROPPED = new Set(['authorization', 'cookie', 'proxy-authorization']);
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/;
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const REDIRECT = new Set([301, 302, 303, 307, 308]);
const MAX_HEADERS = 100;
const MAX_HEADER_BYTES = 32 * 1024;
const MAX_URL = 8192;

/** one request in flight: from the first hop to the end of its body */
class Flight {
  readonly key: string;
  readonly hand: string;
  readonly started: number;
  readonly maxBytes: number;
  readonly ac = new AbortController();
  error: TalonError | null = null;
  req: http.ClientRequest | null = null;
  body: Readable | null = null;
  bytes = 0;
  status = 0;
  redirects = 0;
  subject = '';
  method = 'GET';
  path = '';
  address = '';
  timer: unknown = null;
  /** reads waiting for data (a well-behaved worker has at most one) */
  waiters: Array<() => void> = [];
  ended = false;

  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  constructor(key: string, hand: string, started: number, maxBytes: number) {
    this.key = key;
    this.hand = hand;
    this.started = started;
    this.maxBytes = maxBytes;
  }
}

/** keep-alive agents kept at once (all Hands), and how long an idle connection stays open */
const AGENTS_MAX = 64;
const AGENT_IDLE_MS = 15_000;

export class HandFetch {
  readonly #audit: Audit;
  readonly #clock: Clock;
  readonly #resolve: Resolver;
  readonly #mx: MxResolver | undefined;
  readonly #ca: Array<string | Buffer> | undefined;
  readonly #maxRequestBytes: number;
  readonly #maxRedirects: number;
  readonly #maxOpen: number;
  readonly #auditPerSec: number;
  #flights = new Map<string, Flight>();
  #seq = 0;
  #up = false;
  #auditGate = new Map<string, { window: number; n: number; suppressed: number }>();
  #pending = new Set<Promise<void>>();
  /**
   * keep-alive agents, one per Hand, origin and set of checked addresses: a connection is reused only for a request
   * to the same origin whose name resolved to the same addresses (a new answer is a new agent), so the pinning holds
   * while a Hand that sends often (a chat bot) does not pay a TCP and TLS handshake per request
   */
  #agents = new Map<string, http.Agent>();

  constructor(opts: FetchServiceOptions) {
    this.#audit = opts.audit;
    this.#clock = opts.clock ?? systemClock;
    this.#resolve = opts.resolve ?? systemResolver;
    this.#mx = opts.mx;
    this.#ca =
      opts.ca === undefined
        ? undefined
        : [...lazy.tls.rootCertificates, ...(Array.isArray(opts.ca) ? opts.ca : [opts.ca])];
    this.#maxRequestBytes = opts.maxRequestBytes ?? 10 * MB;
    this.#maxRedirects = opts.maxRedirects ?? 5;
    this.#maxOpen = opts.maxOpenPerHand ?? 16;
    this.#auditPerSec = opts.auditPerSec ?? 50;
  }

  async start(): Promise<void> {
    this.#up = true;
  }

  /** aborts everything in flight; resolves once their audit entries are written */
  async stop(): Promise<void> {
    this.#up = false;
    for (const f of [...this.#flights.values()]) this.#fail(f, new TalonError('NOT_RUNNING', 'the kernel is stopping'));
    await Promise.allSettled([...this.#pending]);
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }

  /** a Hand stopped: its open requests and unread bodies go */
  release(hand: string): void {
    for (const f of [...this.#flights.values()]) {
      if (f.hand === hand) this.#fail(f, new TalonError('HAND_STOPPED', `Hand "${hand}" stopped`));
    }
    for (const [key, a] of this.#agents)
      if (key.startsWith(`${hand}\u0000`)) {
        a.destroy();
        this.#agents.delete(key);
      }
  }

  /** the keep-alive agent for a Hand, an origin and the addresses its name was pinned to (AGENTS_MAX kept, LRU) */
  #agent(hand: string, protocol: string, host: string, port: number, pinned: ResolvedAddress[]): http.Agent {
    const key = `${hand}\u0000${protocol}//${host}:${port}\u0000${pinned.map((a) => a.address).join(',')}`;
    let a = this.#agents.get(key);
    if (a) {
      this.#agents.delete(key);
      this.#agents.set(key, a);
      return a;
    }
    const Agent = protocol === 'https:' ? lazy.https.Agent : http.Agent;
    a = new Agent({ keepAlive: true, maxSockets: 4, maxFreeSockets: 2, timeout: AGENT_IDLE_MS });
    this.#agents.set(key, a);
    if (this.#agents.size > AGENTS_MAX) {
      const [oldest, agent] = this.#agents.entries().next().value as [string, http.Agent];
      agent.destroy();
      this.#agents.delete(oldest);
    }
    return a;
  }

  /** requests open now (all Hands, or one) */
  open(hand?: string): number {
    let n = 0;
    for (const f of this.#flights.values()) if (hand === undefined || f.hand === hand) n++;
    return n;
  }

  /** the kernel calls Hands make (ctx.fetch in runtime/worker/worker.ts) */
  services(): Record<string, KernelService> {
    return {
      'net.fetch': async (hand: HandCaller, args: unknown[]) => {
        const [rid, req] = args;
        if (!Number.isSafeInteger(rid)) throw new TalonError('BAD_REQUEST', 'net.fetch needs (request id, request)');
        const r = await this.request({ name: hand.name, network: hand.grants.network }, checkRequest(req), {
          id: String(rid),
        });
        return {
          status: r.status,
          statusText: r.statusText,
          headers: r.headers,
          url: r.url,
          redirected: r.redirected,
          body: r.body !== null,
        };
      },
      'net.read': async (hand: HandCaller, args: unknown[]) => {
        const f = this.#flights.get(`${hand.name}\u0000${String(args[0])}`);
        if (!f)
          throw new TalonError('NOT_FOUND', 'no such response body: it was read to its end, cancelled, or timed out');
        const chunk = await this.#read(f);
        // a copy of just these bytes: a Buffer may be a view into a larger pool, and the whole pool would be cloned
        return chunk === null ? null : new Uint8Array(chunk);
      },
      // a domain's mail servers (a lead's domain takes mail?): a name the Hand's grant covers, like a fetch would
      'dns.mx': async (hand: HandCaller, args: unknown[]) => {
        const domain = typeof args[0] === 'string' ? args[0].toLowerCase().replace(/\.$/, '') : '';
        if (!DOMAIN.test(domain)) throw new TalonError('BAD_REQUEST', 'dns.mx needs a domain name (`example.com`)');
        const policy = policyOf(hand.grants.network);
        if (!policy.allowsHost(domain, 443) && !policy.allowsHost(domain, 80) && !policy.allowsHost(domain, 25))
          throw new TalonError(
            'CAPABILITY_DENIED',
            `Hand "${hand.name}" may not look up ${domain}: its network grant does not name it`,
            { details: { action: 'net.dns', subject: domain, hand: hand.name } },
          );
        const mx = this.#mx ?? mxResolver({});
        try {
          return await mx(domain);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          throw new TalonError('NET_DNS', `MX lookup of ${domain} failed: ${e.code ?? e.message}`);
        }
      },
      'net.cancel': async (hand: HandCaller, args: unknown[]) => {
        const f = this.#flights.get(`${hand.name}\u0000${String(args[0])}`);
        if (f) this.#fail(f, new TalonError('NOT_RUNNING', 'cancelled by the Hand'), true);
        return true;
      },
    };
  }

  /**
   * One request for a Hand, redirects followed (or not) per `req.redirect`. Resolves with the
   * status and headers; the body is read through `body.read()` within the same time limit.
   */
  async request(
    caller: FetchCaller,
    req: FetchRequest,
    opts: { id?: string; signal?: AbortSignal } = {},
  ): Promise<FetchResponse> {
    if (!this.#up) throw new TalonError('NOT_RUNNING', 'the network service is not running');
    const grant = caller.network;
    const policy = policyOf(grant);
    if (grant.hosts.length === 0) {
      const url = safeUrl(req.url);
      throw denied(
        caller.name,
        url ? target(url) : String(req.url).slice(0, 200),
        `Hand "${caller.name}" has no network grant: declare capabilities.network with the hosts it may reach`,
      );
    }
    const key = `${caller.name}\u0000${opts.id ?? `k${++this.#seq}`}`;
    if (this.#flights.has(key)) throw new TalonError('BAD_REQUEST', `request ${opts.id} is already open`);
    if (this.open(caller.name) >= this.#maxOpen) {
      throw new TalonError(
        'QUOTA_EXCEEDED',
        `Hand "${caller.name}" has ${this.#maxOpen} requests open, the most it may; read or cancel their bodies first`,
      );
    }
    const body = req.body;
    if (body !== undefined && body.byteLength > this.#maxRequestBytes) {
      throw new TalonError(
        'PAYLOAD_TOO_LARGE',
        `the request body is ${body.byteLength} bytes; the limit is ${this.#maxRequestBytes}`,
      );
    }
    const timeoutMs = Math.min(grant.timeoutMs, req.timeoutMs ?? Infinity);
    const maxBytes = Math.min(grant.maxResponseBytes, req.maxResponseBytes ?? Infinity);
    const f = new Flight(key, caller.name, this.#clock.now(), maxBytes);
    let url = parseUrl(req.url);
    f.subject = target(url);
    f.path = url.pathname.slice(0, 200);
    let method = normalizeMethod(req.method ?? 'GET');
    f.method = method;
    if ((method === 'GET' || method === 'HEAD') && body !== undefined && body.byteLength > 0) {
      throw new TalonError('BAD_REQUEST', `a ${method} request cannot have a body`);
    }
    let headers = checkHeaders(req.headers ?? []);
    let sendBody: Uint8Array | undefined = body;
    const mode: RedirectMode = req.redirect ?? 'follow';

    this.#flights.set(key, f);
    f.timer = this.#clock.setTimeout(
      () =>
        this.#fail(
          f,
          new TalonError(
            'NET_TIMEOUT',
            `the request to ${f.subject} took longer than ${timeoutMs} ms (the Hand's network timeoutMs)`,
          ),
        ),
      timeoutMs,
    );
    const onAbort = (): void => this.#fail(f, new TalonError('NOT_RUNNING', 'the request was withdrawn'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const res = await this.#hop(f, policy, caller.name, url, method, headers, sendBody);
        const location = res.headers.location;
        if (!REDIRECT.has(res.statusCode ?? 0) || typeof location !== 'string' || mode === 'manual') {
          return this.#respond(f, res, url, method);
        }
        res.destroy();
        if (mode === 'error')
          throw new TalonError(
            'NET_REDIRECT',
            `${f.subject} answered with a redirect (${res.statusCode}) and the request said redirect: 'error'`,
          );
        if (++f.redirects > this.#maxRedirects)
          throw new TalonError('NET_REDIRECT', `more than ${this.#maxRedirects} redirects, starting at ${f.subject}`);
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new TalonError(
            'NET_REDIRECT',
            `${target(url)} redirected to ${JSON.stringify(location.slice(0, 200))}, which is not a URL`,
          );
        }
        checkUrl(next);
        const status = res.statusCode!;
        if ((status === 303 && method !== 'HEAD') || ((status === 301 || status === 302) && method === 'POST')) {
          method = 'GET';
          sendBody = undefined;
          headers = headers.filter(([n]) => !n.startsWith('content-'));
        }
        if (next.origin !== url.origin) headers = headers.filter(([n]) => !CROSS_ORIGIN_DROPPED.has(n));
        url = next;
      }
    } catch (err) {
      const e = f.error ?? TalonError.from(err);
      this.#fail(f, e);
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** one hop: grant, DNS, address checks, connect to the pinned addresses, wait for the head */
  async #hop(
    f: Flight,
    policy: NetworkPolicy,
    hand: string,
    url: URL,
    method: string,
    headers: Array<[string, string]>,
    body: Uint8Array | undefined,
  ): Promise<http.IncomingMessage> {
    const port = portOf(url);
    const host = bare(url.hostname);
    const where = target(url);
    if (!policy.allowsHost(host, port)) {
      throw denied(
        hand,
        where,
        `Hand "${hand}" may not reach ${where}${f.redirects > 0 ? ` (a redirect from ${f.subject})` : ''}; its network grant allows ${policy.grant.hosts.join(', ')}`,
      );
    }
    const literal = canonicalAddress(host);
    let addresses: ResolvedAddress[];
    if (literal) addresses = [{ address: literal.address, family: literal.family }];
    else {
      const name = hostName(host);
      addresses = await this.#abortable(
        f,
        this.#resolve(name).then(
          (list) => list,
          (err: NodeJS.ErrnoException) => {
            throw new TalonError('NET_DNS', `${name} did not resolve: ${err.code ?? err.message}`);
          },
        ),
      );
      if (!Array.isArray(addresses) || addresses.length === 0)
        throw new TalonError('NET_DNS', `${name} has no addresses`);
    }
    const pinned: ResolvedAddress[] = [];
    for (const a of addresses) {
      const c = canonicalAddress(String(a.address));
      if (!c)
        throw new TalonError(
          'NET_DNS',
          `${host} resolved to ${JSON.stringify(String(a.address).slice(0, 60))}, which is not an IP address`,
        );
      if (!policy.allowsAddress(c.address, port)) {
        throw denied(
          hand,
          where,
          `Hand "${hand}" may not reach ${where}: it resolves to ${c.address}, a ${describeAddress(c.address)} address its network grant does not name; ` +
            `grant that address or its range (e.g. "${c.address}${c.family === 4 ? `:${port}` : ''}") if it is meant`,
          { address: c.address },
        );
      }
      pinned.push({ address: c.address, family: c.family });
    }
    f.address = pinned[0]!.address;
    const lookup: LookupFunction = (_hostname, options, callback) => {
      const fam =
        typeof options === 'object' && options !== null ? (options as { family?: number | string }).family : undefined;
      const want = fam === 4 || fam === 'IPv4' ? 4 : fam === 6 || fam === 'IPv6' ? 6 : 0;
      const list = want ? pinned.filter((a) => a.family === want) : pinned;
      const cb = callback as unknown as (
        err: Error | null,
        address: string | ResolvedAddress[],
        family?: number,
      ) => void;
      if (list.length === 0) {
        cb(Object.assign(new Error(`no IPv${want} address for ${host}`), { code: 'ENOTFOUND' }), '', 0);
        return;
      }
      if (typeof options === 'object' && options !== null && (options as { all?: boolean }).all) cb(null, list);
      else cb(null, list[0]!.address, list[0]!.family);
    };
    const outHeaders: Record<string, string | string[]> = {};
    for (const [n, v] of headers) {
      const cur = outHeaders[n];
      outHeaders[n] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
    }
    if (outHeaders['accept-encoding'] === undefined) outHeaders['accept-encoding'] = 'gzip, deflate, br';
    if (outHeaders['user-agent'] === undefined) outHeaders['user-agent'] = 'talon-hand';
    if (outHeaders.accept === undefined) outHeaders.accept = '*/*';
    if (body !== undefined) outHeaders['content-length'] = String(body.byteLength);
    else if (method !== 'GET' && method !== 'HEAD') outHeaders['content-length'] = '0';
    const options: RequestOptions = {
      protocol: url.protocol,
      host,
      port,
      method,
      path: `${url.pathname}${url.search}`,
      headers: outHeaders,
      agent: this.#agent(hand, url.protocol, host, port, pinned),
      lookup,
      signal: f.ac.signal,
      ...(url.protocol === 'https:' && this.#ca ? { ca: this.#ca } : {}),
    };
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      let req: http.ClientRequest;
      try {
        req = (url.protocol === 'https:' ? lazy.https : http).request(options);
      } catch (err) {
        reject(new TalonError('BAD_REQUEST', `the request to ${where} cannot be made: ${(err as Error).message}`));
        return;
      }
      f.req = req;
      req.once('response', resolve);
      // `on`, not `once`: an abort after the answer came is another 'error' on the request
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(
          f.error ??
            new TalonError(
              'NET_CONNECT',
              `${where} (${f.address}): ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ').trim(),
            ),
        );
      });
      req.end(body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    });
  }

  #respond(f: Flight, res: http.IncomingMessage, url: URL, method: string): FetchResponse {
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 599) {
      res.destroy();
      throw new TalonError(
        'NET_CONNECT',
        `${f.subject} answered with HTTP status ${status}, which ctx.fetch does not pass on`,
      );
    }
    f.status = status;
    const headers: Array<[string, string]> = [];
    const raw = res.rawHeaders;
    for (let i = 0; i + 1 < raw.length && headers.length < 256; i += 2) {
      const n = raw[i]!.toLowerCase();
      if (!RESPONSE_HEADERS_DROPPED.has(n)) headers.push([n, raw[i + 1]!]);
    }
    const out: FetchResponse = {
      status,
      statusText: res.statusMessage ?? '',
      headers,
      url: url.href,
      redirected: f.redirects > 0,
      body: null,
    };
    if (method === 'HEAD' || NULL_BODY.has(status)) {
      res.destroy();
      this.#finish(f);
      return out;
    }
    const encoding = String(res.headers['content-encoding'] ?? '')
      .trim()
      .toLowerCase();
    const length = Number(res.headers['content-length']);
    if (encoding === '' && Number.isFinite(length) && length > f.maxBytes) {
      res.destroy();
      throw tooLarge(f);
    }
    const decoder =
      encoding === 'gzip' || encoding === 'x-gzip'
        ? lazy.zlib.createGunzip()
        : encoding === 'deflate'
          ? lazy.zlib.createInflate()
          : encoding === 'br'
            ? lazy.zlib.createBrotliDecompress()
            : null;
    const stream: Readable = decoder ? pipeline(res, decoder, () => {}) : res;
    f.body = stream;
    const wake = (): void => f.wake();
    stream.on('readable', wake);
    stream.on('end', () => {
      f.ended = true;
      wake();
    });
    stream.on('error', (err: NodeJS.ErrnoException) => {
      this.#fail(
        f,
        f.error ?? new TalonError('NET_CONNECT', `the body from ${f.subject} broke off: ${err.code ?? err.message}`),
      );
    });
    out.body = {
      read: () => this.#read(f),
      cancel: () => this.#fail(f, new TalonError('NOT_RUNNING', 'cancelled'), true),
    };
    return out;
  }

  async #read(f: Flight): Promise<Buffer | null> {
    for (;;) {
      if (f.error) throw f.error;
      const s = f.body;
      if (!s) return null;
      const chunk = s.read() as Buffer | null;
      if (chunk !== null) {
        f.bytes += chunk.length;
        if (f.bytes > f.maxBytes) {
          const e = tooLarge(f);
          this.#fail(f, e);
          throw e;
        }
        return chunk;
      }
      if (f.ended || s.readableEnded) {
        this.#finish(f);
        return null;
      }
      await new Promise<void>((resolve) => f.waiters.push(resolve));
    }
  }

  #finish(f: Flight): void {
    if (!this.#flights.has(f.key) || this.#flights.get(f.key) !== f) return;
    this.#end(f);
    this.#record(f, null);
  }

  /** end a flight with an error (a cancel is not one); wakes a pending read */
  #fail(f: Flight, err: TalonError, cancelled = false): void {
    if (f.error) return;
    f.error = err;
    f.ac.abort();
    f.req?.destroy();
    f.body?.destroy();
    f.wake();
    if (this.#flights.get(f.key) !== f) return;
    this.#end(f);
    if (err.code !== 'CAPABILITY_DENIED') this.#record(f, cancelled ? null : err, cancelled);
  }

  #end(f: Flight): void {
    this.#flights.delete(f.key);
    if (f.timer !== null) this.#clock.clearTimeout(f.timer);
    f.timer = null;
  }

  #record(f: Flight, err: TalonError | null, cancelled = false): void {
    const now = this.#clock.now();
    let g = this.#auditGate.get(f.hand);
    if (!g) this.#auditGate.set(f.hand, (g = { window: now, n: 0, suppressed: 0 }));
    if (now - g.window >= 1000) {
      g.window = now;
      g.n = 0;
    }
    if (++g.n > this.#auditPerSec) {
      g.suppressed++;
      return;
    }
    const detail: Record<string, unknown> = { method: f.method, path: f.path, ms: now - f.started, bytes: f.bytes };
    if (f.status) detail.status = f.status;
    if (f.address) detail.address = f.address;
    if (f.redirects) detail.redirects = f.redirects;
    if (cancelled) detail.cancelled = true;
    if (err) detail.error = { code: err.code, message: err.message };
    if (g.suppressed > 0) {
      detail.suppressedBefore = g.suppressed;
      g.suppressed = 0;
    }
    const p = this.#audit
      .record({
        actor: `hand:${f.hand}`,
        action: 'net.fetch',
        subject: f.subject,
        decision: err ? 'error' : 'ok',
        detail,
      })
      .catch(() => {});
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** a step that gives up when the flight ends (timeout, cancel, stop) */
  #abortable<T>(f: Flight, p: Promise<T>): Promise<T> {
    if (f.error) return Promise.reject(f.error);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(f.error ?? new TalonError('NOT_RUNNING', 'the request was withdrawn'));
      f.ac.signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => f.ac.signal.removeEventListener('abort', onAbort));
    });
  }
}

/** a grant's checks, parsed once per grant object (a Hand's grant is the same object for all its requests) */
const policies = new WeakMap<NetworkGrant, NetworkPolicy>();
function policyOf(grant: NetworkGrant): NetworkPolicy {
  let p = policies.get(grant);
  if (!p) policies.set(grant, (p = new NetworkPolicy(grant)));
  return p;
}

function denied(hand: string, subject: string, message: string, extra: Record<string, unknown> = {}): TalonError {
  return new TalonError('CAPABILITY_DENIED', message, { details: { action: 'net.fetch', subject, hand, ...extra } });
}

function tooLarge(f: Flight): TalonError {
  return new TalonError(
    'NET_TOO_LARGE',
    `the response from ${f.subject} is larger than ${f.maxBytes} bytes (the Hand's network maxResponseBytes)`,
  );
}

function describeAddress(a: string): string {
  if (!isSpecialAddress(a)) return 'public';
  if (/^127\./.test(a) || a === '::1') return 'loopback';
  if (/^169\.254\./.test(a) || /^fe[89ab]/i.test(a)) return 'link-local';
  if (/^(0\.|::$)/.test(a)) return 'unspecified';
  if (/^(22[4-9]|23\d)\./.test(a) || /^ff/i.test(a)) return 'multicast';
  return 'private or reserved';
}

function bare(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** `host:port` as grants write it */
function target(url: URL): string {
  return `${url.hostname.endsWith('.') ? url.hostname.slice(0, -1) : url.hostname}:${portOf(url)}`;
}

function safeUrl(u: unknown): URL | null {
  try {
    return parseUrl(u);
  } catch {
    return null;
  }
}

function parseUrl(u: unknown): URL {
  if (typeof u !== 'string' || u.length === 0)
    throw new TalonError('BAD_REQUEST', 'ctx.fetch needs an absolute http:// or https:// URL');
  if (u.length > MAX_URL) throw new TalonError('BAD_REQUEST', `the URL is longer than ${MAX_URL} characters`);
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new TalonError('BAD_REQUEST', `${JSON.stringify(u.slice(0, 200))} is not an absolute URL`);
  }
  checkUrl(url);
  return url;
}

function checkUrl(url: URL): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TalonError('BAD_REQUEST', `ctx.fetch speaks http: and https: only, not ${url.protocol}`);
  if (url.username || url.password)
    throw new TalonError('BAD_REQUEST', 'a URL with credentials in it is refused; send them in a header');
  if (url.hostname === '') throw new TalonError('BAD_REQUEST', 'the URL has no host');
}

function normalizeMethod(m: unknown): string {
  if (typeof m !== 'string' || !METHOD.test(m))
    throw new TalonError('BAD_REQUEST', `${JSON.stringify(String(m).slice(0, 40))} is not an HTTP method`);
  const up = m.toUpperCase();
  const method = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH'].includes(up) ? up : m;
  if (FORBIDDEN_METHODS.has(up)) throw new TalonError('BAD_REQUEST', `the ${up} method is not allowed`);
  return method;
}

function checkHeaders(list: unknown): Array<[string, string]> {
  if (!Array.isArray(list)) throw new TalonError('BAD_REQUEST', 'headers must be [name, value] pairs');
  if (list.length > MAX_HEADERS) throw new TalonError('BAD_REQUEST', `more than ${MAX_HEADERS} request headers`);
  const out: Array<[string, string]> = [];
  let bytes = 0;
  for (const pair of list) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string')
      throw new TalonError('BAD_REQUEST', 'headers must be [name, value] pairs of strings');
    const name = pair[0].toLowerCase();
    const value = pair[1];
    try {
      http.validateHeaderName(name);
      http.validateHeaderValue(name, value);
    } catch (err) {
      throw new TalonError(
        'BAD_REQUEST',
        `request header ${JSON.stringify(name.slice(0, 60))}: ${(err as Error).message}`,
      );
    }
    bytes += name.length + value.length;
    if (bytes > MAX_HEADER_BYTES)
      throw new TalonError('BAD_REQUEST', `the request headers are larger than ${MAX_HEADER_BYTES} bytes`);
    if (REQUEST_HEADERS_DROPPED.has(name) || name.startsWith('proxy-')) continue;
    out.push([name, value]);
  }
  return out;
}

/** what a worker sent as a request, checked */
export function checkRequest(req: unknown): FetchRequest {
  if (typeof req !== 'object' || req === null)
    throw new TalonError('BAD_REQUEST', 'net.fetch needs a request { url, method?, headers?, body?, redirect? }');
  const r = req as Record<string, unknown>;
  const out: FetchRequest = { url: typeof r.url === 'string' ? r.url : '' };
  if (r.method !== undefined) out.method = String(r.method);
  if (r.headers !== undefined) out.headers = checkHeaders(r.headers);
  if (r.body !== undefined && r.body !== null) {
    if (!(r.body instanceof Uint8Array))
      throw new TalonError('BAD_REQUEST', 'a request body reaches the kernel as bytes');
    out.body = r.body;
  }
  if (r.redirect !== undefined) {
    if (r.redirect !== 'follow' && r.redirect !== 'manual' && r.redirect !== 'error')
      throw new TalonError('BAD_REQUEST', 'redirect must be "follow", "manual" or "error"');
    out.redirect = r.redirect;
  }
  for (const k of ['timeoutMs', 'maxResponseBytes'] as const) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw new TalonError('BAD_REQUEST', `${k} must be a positive number`);
    out[k] = Math.ceil(v);
  }
  return out;
}
