/**
 * The network, closed from JavaScript: installed in every Hand's worker before any Hand code
 * runs, unless the Hand holds `network: { raw: true }` (its worker then has --allow-net).
 *
 * Node's permission model is the lock: a worker without --allow-net cannot connect, listen,
 * send UDP or resolve a name (ERR_ACCESS_DENIED, see runtime/supervisor/README.md). This guard
 * is the sign on the door: the common entry points fail first with a typed CAPABILITY_DENIED
 * that says what to do instead (ctx.fetch), and the kernel is told so the attempt lands in the
 * audit log. Socket-style calls throw at once (no 'error' event that would crash a Hand without
 * a listener); callback and promise APIs fail through their callback or promise. A path this
 * misses still meets Node's ERR_ACCESS_DENIED underneath.
 *
 * Only net, dns and dgram are patched (about a millisecond and 0.4 MB per worker): tls, http,
 * https and http2 all connect through net.Socket.prototype.connect, so they meet the guard there
 * without being loaded into every Hand's worker (that would cost ~15 ms and ~4 MB each). fetch,
 * WebSocket and EventSource are replaced as globals, without loading undici.
 */
// default imports: the modules' own exports objects (a namespace import would be a copy)
import net from 'node:net';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import { TalonError } from '../core/errors.ts';

export type DenyReport = (action: string, subject: string) => void;

export interface GuardOptions {
  /** the Hand's name, for messages; undefined while only its manifest is read */
  hand?: string;
  /** tell the kernel (rate-limited by the caller) */
  report: DenyReport;
}

const DNS_FUNCTIONS = [
  'lookup',
  'lookupService',
  'reverse',
  'resolve',
  'resolve4',
  'resolve6',
  'resolveAny',
  'resolveCaa',
  'resolveCname',
  'resolveMx',
  'resolveNaptr',
  'resolveNs',
  'resolvePtr',
  'resolveSoa',
  'resolveSrv',
  'resolveTlsa',
  'resolveTxt',
];

type Fn = (...args: unknown[]) => unknown;

export function installNetworkGuard(opts: GuardOptions): void {
  const who = opts.hand === undefined ? 'A Hand' : `Hand "${opts.hand}"`;
  const denied = (action: string, subject: string, what: string): TalonError => {
    opts.report(action, subject);
    return new TalonError(
      'CAPABILITY_DENIED',
      `${who} may not use the network directly (${what} ${subject}): its worker runs without network access. ` +
        'Declare capabilities.network with the hosts it needs and call ctx.fetch(url), which the kernel checks; ' +
        'a Hand that needs raw sockets must be granted network: { raw: true }, which opens all of the network.',
      { details: { action, subject } },
    );
  };
  const set = (obj: object, key: string, value: unknown): void => {
    const d = Object.getOwnPropertyDescriptor(obj, key);
    if (d && !d.configurable) return;
    Object.defineProperty(obj, key, {
      value,
      writable: false,
      configurable: false,
      enumerable: d?.enumerable ?? false,
    });
  };
  /**
   * Node's lazy globals: asking for WebSocket's descriptor or redefining it in place loads undici
   * (~25 ms, ~3.5 MB per worker); `hasOwn` and `delete` do not
   */
  const setGlobal = (name: string, value: unknown): void => {
    const g = globalThis as Record<string, unknown>;
    if (!Object.hasOwn(g, name) || !delete g[name]) return;
    Object.defineProperty(g, name, { value, writable: false, configurable: false, enumerable: false });
  };
  /** socket-style: throw at once */
  const throwing = (
    obj: object,
    key: string,
    action: string,
    what: string,
    target: (args: unknown[]) => string,
  ): void => {
    if (typeof (obj as Record<string, unknown>)[key] !== 'function') return;
    set(obj, key, function denyNetwork(this: unknown, ...args: unknown[]): never {
      throw denied(
        action,
        safe(() => target(args)),
        what,
      );
    });
  };

  // TCP: the functions, and the prototype every socket connects through (tls, http, https and
  // http2 included: their connect, request and get throw from here, with the target's host:port)
  throwing(net, 'connect', 'network.connect', 'net.connect to', connectTarget);
  throwing(net, 'createConnection', 'network.connect', 'net.createConnection to', connectTarget);
  throwing(net.Socket.prototype, 'connect', 'network.connect', 'a connection to', connectTarget);
  // servers (http.Server, tls.Server: net.Server underneath)
  throwing(net.Server.prototype, 'listen', 'network.listen', 'listening on', listenTarget);
  // UDP
  throwing(dgram, 'createSocket', 'network.udp', 'a UDP socket', (a) => {
    const t = a[0];
    return `udp:${typeof t === 'string' ? t : isRecord(t) && typeof t.type === 'string' ? t.type : '?'}`;
  });
  // fetch, WebSocket, EventSource (globals, never read: see setGlobal)
  setGlobal('fetch', function fetch(input: unknown): Promise<never> {
    return Promise.reject(
      denied(
        'network.connect',
        safe(() => requestTarget([input], 'http:')),
        'fetch of',
      ),
    );
  });
  for (const name of ['WebSocket', 'EventSource']) {
    setGlobal(name, function denyConstructor(url: unknown): never {
      throw denied(
        'network.connect',
        safe(() => requestTarget([url], name === 'WebSocket' ? 'ws:' : 'http:')),
        `${name} to`,
      );
    });
  }
  // DNS: callback API, Resolver objects, promises
  const dnsSubject = (args: unknown[]): string =>
    typeof args[1] === 'number' ? `${String(args[0])}:${args[1]}` : String(args[0]).slice(0, 255);
  const callbackStyle = (obj: object): void => {
    for (const key of DNS_FUNCTIONS) {
      if (typeof (obj as Record<string, unknown>)[key] !== 'function') continue;
      set(obj, key, function denyDns(this: unknown, ...args: unknown[]): void {
        const err = denied(
          'network.dns',
          safe(() => dnsSubject(args)),
          `dns.${key} of`,
        );
        const cb = args[args.length - 1];
        if (typeof cb !== 'function') throw err;
        process.nextTick(cb as Fn, err);
      });
    }
  };
  const promiseStyle = (obj: object): void => {
    for (const key of DNS_FUNCTIONS) {
      if (typeof (obj as Record<string, unknown>)[key] !== 'function') continue;
      set(obj, key, function denyDns(this: unknown, ...args: unknown[]): Promise<never> {
        return Promise.reject(
          denied(
            'network.dns',
            safe(() => dnsSubject(args)),
            `dns.promises.${key} of`,
          ),
        );
      });
    }
  };
  callbackStyle(dns);
  callbackStyle(dns.Resolver.prototype);
  promiseStyle(dns.promises);
  promiseStyle(dns.promises.Resolver.prototype);
  // `import { connect } from 'node:net'` in an ES module Hand sees the guarded functions too
  syncBuiltinESMExports();
}

function safe(f: () => string): string {
  try {
    return f().slice(0, 300);
  } catch {
    return '(unknown)';
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** net.connect / Socket#connect arguments → `host:port` or `unix:path` */
export function connectTarget(args: unknown[]): string {
  let a = args[0];
  if (Array.isArray(a)) a = a[0]; // Node's normalized [options, cb]
  if (isRecord(a)) {
    if (typeof a.path === 'string') return `unix:${a.path}`;
    const host = typeof a.host === 'string' ? a.host : typeof a.hostname === 'string' ? a.hostname : 'localhost';
    return hostPort(host, a.port);
  }
  if (typeof a === 'number' || (typeof a === 'string' && /^\d+$/.test(a)))
    return hostPort(typeof args[1] === 'string' ? args[1] : 'localhost', a);
  if (typeof a === 'string') return `unix:${a}`;
  return '(unknown)';
}

function listenTarget(args: unknown[]): string {
  const a = args[0];
  if (isRecord(a)) {
    if (typeof a.path === 'string') return `unix:${a.path}`;
    return hostPort(typeof a.host === 'string' ? a.host : '*', a.port ?? 0);
  }
  if (typeof a === 'string' && !/^\d+$/.test(a)) return `unix:${a}`;
  return hostPort(typeof args[1] === 'string' ? args[1] : '*', a ?? 0);
}

const DEFAULT_PORT: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };

/** http.request / fetch / WebSocket arguments → `host:port` */
export function requestTarget(args: unknown[], scheme: string): string {
  const a = args[0];
  let url: URL | null = null;
  if (typeof a === 'string') url = new URL(a);
  else if (a instanceof URL) url = a;
  else if (isRecord(a) && typeof a.url === 'string') url = new URL(a.url); // a Request
  if (url) return hostPort(url.hostname, url.port || DEFAULT_PORT[url.protocol] || 0);
  const o = isRecord(a) ? a : isRecord(args[1]) ? args[1] : {};
  if (typeof o.socketPath === 'string') return `unix:${o.socketPath}`;
  const host = typeof o.hostname === 'string' ? o.hostname : typeof o.host === 'string' ? o.host : 'localhost';
  const protocol = typeof o.protocol === 'string' ? o.protocol : scheme;
  return hostPort(host, o.port ?? o.defaultPort ?? DEFAULT_PORT[protocol] ?? 0);
}

function hostPort(host: string, port: unknown): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${h}:${String(port)}`;
}
