/**
 * Host and Origin checks, against DNS rebinding and cross-site writes. Once the web admin
 * listens on the LAN, a page on another site can point its own host name at the device's
 * address and drive the API from the visitor's browser: the browser then sends that foreign
 * name as `Host`. So:
 * - a request whose `Host` is not one of the device's own names or addresses is refused
 *   (421 HOST_NOT_ALLOWED), except `GET /healthz`, which supervisors and load balancers poll
 *   by whatever address they have;
 * - a write (not GET, HEAD or OPTIONS) whose `Origin` (or, without one, `Referer`) names
 *   another host is refused (403 ORIGIN_NOT_ALLOWED); `Origin: null` too. Requests with
 *   neither (the CLI, curl, scripts) are not browsers and pass.
 * The device's names: localhost (and `*.localhost`), loopback addresses, the listen address,
 * the host name and `<hostname>.local`, every interface address (read again, at most once a
 * second, when a name is not found: DHCP moves them), and `http.allowedHosts` from the config
 * (a DNS name, a reverse proxy's name; `*` turns both checks off). Ports are not compared:
 * port forwarding and reverse proxies change them.
 */
import type { IncomingMessage } from 'node:http';
import { hostname as osHostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { systemClock } from '../../runtime/core/clock.ts';

export interface HostGuardOptions {
  /** the address the server listens on */
  listen: { host: string };
  /** `http.allowedHosts`: more names or addresses; `*` allows any */
  allowedHosts?: readonly string[];
  /** injectable for tests */
  hostname?: () => string;
  interfaceAddresses?: () => string[];
  clock?: Clock;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const WILDCARD_LISTEN = new Set(['', '0.0.0.0', '::', '[::]', '::0']);
const REFRESH_MS = 1000;

/** a Host header's or URL's host name: lowercase, no port, no brackets, no trailing dot, no IPv6 zone; null when malformed */
export function hostOf(value: string): string | null {
  let h = value.trim().toLowerCase();
  if (h.length === 0 || h.length > 300) return null;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    h = h.slice(1, end);
  } else {
    const colon = h.indexOf(':');
    if (colon >= 0) {
      if (!/^:\d{1,5}$/.test(h.slice(colon))) return null;
      h = h.slice(0, colon);
    }
  }
  h = h.replace(/%.*$/, '').replace(/\.$/, '');
  if (h.length === 0) return null;
  if (isIP(h) === 0 && !/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(h)) return null;
  return h;
}

function defaultInterfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

export class HostGuard {
  readonly any: boolean;
  #o: HostGuardOptions;
  #clock: Clock;
  #fixed: Set<string>;
  #found = new Set<string>();
  #foundAt = -Infinity;

  constructor(opts: HostGuardOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    const extra = (opts.allowedHosts ?? []).map((h) => h.trim().toLowerCase());
    this.any = extra.includes('*');
    this.#fixed = new Set(['localhost', '127.0.0.1', '::1']);
    for (const h of extra) {
      const n = hostOf(h) ?? h;
      if (n !== '*') this.#fixed.add(n);
    }
    const listen = hostOf(opts.listen.host);
    if (listen && !WILDCARD_LISTEN.has(opts.listen.host) && listen !== '::') this.#fixed.add(listen);
  }

  /** is `host` (as hostOf gives it) one of the device's names or addresses */
  allowed(host: string): boolean {
    if (this.any || this.#isFixed(host) || this.#found.has(host)) return true;
    if (this.#clock.now() - this.#foundAt < REFRESH_MS) return false;
    this.#refresh();
    return this.#found.has(host);
  }

  /** Throws HOST_NOT_ALLOWED or ORIGIN_NOT_ALLOWED (see the module comment). */
  check(req: IncomingMessage, method: string, pathname: string): void {
    if (this.any) return;
    const rawHost = req.headers.host;
    if (rawHost !== undefined && !(pathname === '/healthz' && (method === 'GET' || method === 'HEAD'))) {
      const host = hostOf(rawHost);
      if (host === null || !this.allowed(host)) {
        throw new TalonError(
          'HOST_NOT_ALLOWED',
          `this device does not answer to the host name "${rawHost.slice(0, 100)}"; if it is one of its names, add it to http.allowedHosts in the config`,
        );
      }
    }
    if (SAFE_METHODS.has(method)) return;
    const origin = req.headers.origin;
    const referer = req.headers.referer;
    const from = origin ?? (typeof referer === 'string' ? referer : undefined);
    if (from === undefined) return;
    let host: string | null = null;
    if (from !== 'null') {
      try {
        host = hostOf(new URL(from).host);
      } catch {
        host = null;
      }
    }
    if (host === null || !this.allowed(host)) {
      throw new TalonError(
        'ORIGIN_NOT_ALLOWED',
        `a change from a page on another site (${origin !== undefined ? 'Origin' : 'Referer'} ${from.slice(0, 100)}) is refused; open the web admin at this device's own address`,
      );
    }
  }

  #isFixed(host: string): boolean {
    if (this.#fixed.has(host) || host.endsWith('.localhost')) return true;
    // all of 127.0.0.0/8 and ::ffff:127.x are loopback
    return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  }

  #refresh(): void {
    this.#foundAt = this.#clock.now();
    const found = new Set<string>();
    try {
      const name = (this.#o.hostname ?? osHostname)().trim().toLowerCase().replace(/\.$/, '');
      if (name) {
        found.add(name);
        found.add(`${name}.local`);
        const short = name.split('.')[0]!;
        found.add(short);
        found.add(`${short}.local`);
      }
    } catch {
      /* no host name */
    }
    try {
      for (const a of (this.#o.interfaceAddresses ?? defaultInterfaceAddresses)()) {
        const n = hostOf(a.includes(':') ? `[${a}]` : a);
        if (n) found.add(n);
      }
    } catch {
      /* no interfaces */
    }
    this.#found = found;
  }
}
