/**
 * A Hand's network grant, in one place: its syntax, its validation, and the checks the
 * kernel makes for `ctx.fetch` (./fetch.ts). Pure functions over node:net and node:url, no
 * I/O: the worker runtime bundles this file too.
 *
 * A grant is written as a host list, `network: ['api.example.com', '10.0.0.0/8:1883']`, or as
 * an object, `network: { hosts?: [...], raw?: true, maxResponseBytes?, timeoutMs? }`; both
 * normalize to a NetworkGrant. A host entry is one of
 *
 *   api.example.com        that name (any port); a name matches only itself
 *   api.example.com:443    that name on that port
 *   *.example.com          any name below example.com (not example.com itself)
 *   *                      any name (public addresses only, see below)
 *   192.0.2.7, 2001:db8::1 that address; [2001:db8::1]:8080 with a port
 *   10.0.0.0/8, fd00::/8   the addresses in that range; 10.0.0.0/8:1883, [fd00::/8]:1883 with a port
 *
 * Names match name entries and addresses (an IP in the URL) match address entries. Whatever
 * a name resolves to must be a public address unless that address is itself granted by an
 * address entry: a granted name that resolves to 127.0.0.1 or a LAN address is refused.
 * `raw: true` starts the Hand's worker with --allow-net: all of the network, no host list.
 */
import { BlockList, isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { NetworkCapability, NetworkGrant } from './hand.ts';
import { TalonError } from './errors.ts';

export type { NetworkCapability, NetworkGrant };

const MB = 1024 * 1024;
/** what a grant that does not say gets */
export const NETWORK_DEFAULTS = { maxResponseBytes: 10 * MB, timeoutMs: 30_000 } as const;
/** the most a grant may say */
export const NETWORK_MAX = { maxResponseBytes: 1024 * MB, timeoutMs: 10 * 60_000, hosts: 256 } as const;
export const NETWORK_MIN = { maxResponseBytes: 1, timeoutMs: 100 } as const;

export const NO_NETWORK: NetworkGrant = { hosts: [], raw: false, ...NETWORK_DEFAULTS };

export type HostEntry =
  | { kind: 'any'; text: string; port?: number }
  | { kind: 'name'; text: string; name: string; port?: number }
  /** `suffix` starts with a dot: `.example.com` */
  | { kind: 'wildcard'; text: string; suffix: string; port?: number }
  | { kind: 'net'; text: string; family: 4 | 6; address: string; prefix: number; list: BlockList; port?: number };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * One host entry, validated and normalized (lower case, punycode, no trailing dot). Throws an
 * Error whose message says what is wrong; callers prefix it with the entry's path.
 */
export function parseHostEntry(input: unknown): HostEntry {
  if (typeof input !== 'string' || input.length === 0)
    throw new Error('is empty; write a host name, an IP address or a CIDR range (api.example.com, 10.0.0.0/8)');
  const s = input;
  if (s.length > 300) throw new Error('is longer than 300 characters');
  if (/\s/.test(s)) throw new Error(`${JSON.stringify(s)} contains white space`);
  if (s.includes('://') || s.includes('@') || /^[a-z]+:\/\//i.test(s))
    throw new Error(`${JSON.stringify(s)} is a URL; write only its host (and :port), e.g. api.example.com:443`);
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
    if (!host.includes(':')) throw new Error(`${JSON.stringify(s)}: brackets are for IPv6 addresses only`);
  } else if ((s.match(/:/g) ?? []).length > 1) {
    host = s; // an IPv6 address or range without a port (a port needs brackets: [fd00::1]:8080)
  } else {
    const i = s.indexOf(':');
    host = i < 0 ? s : s.slice(0, i);
    portText = i < 0 ? undefined : s.slice(i + 1);
  }
  let port: number | undefined;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw new Error(`${JSON.stringify(s)} has a bad port ${JSON.stringify(portText)}; a port is a number 1-65535`);
    }
    port = Number(portText);
  }
  const withPort = (t: string): string =>
    port === undefined ? t : t.includes(':') ? `[${t}]:${port}` : `${t}:${port}`;
  if (host === '') throw new Error(`${JSON.stringify(s)} has an empty host`);

  // an address or a range
  const slash = host.indexOf('/');
  if (slash >= 0 || isIP(host) !== 0 || /^[\d.]+$/.test(host) || host.includes(':')) {
    const addr = slash >= 0 ? host.slice(0, slash) : host;
    if (addr.includes('%'))
      throw new Error(`${JSON.stringify(s)}: a zone index (%eth0) is not allowed; grant the address or a range`);
    const family = isIP(addr);
    if (family === 0) throw new Error(`${JSON.stringify(s)}: ${JSON.stringify(addr)} is not an IP address`);
    if (family === 6 && /^::ffff:/i.test(addr))
      throw new Error(`${JSON.stringify(s)}: write an IPv4-mapped address as plain IPv4`);
    const bits = family === 4 ? 32 : 128;
    let prefix = bits;
    if (slash >= 0) {
      const p = host.slice(slash + 1);
      if (!/^\d{1,3}$/.test(p) || Number(p) > bits)
        throw new Error(`${JSON.stringify(s)} is not a valid CIDR range: the prefix length must be 0-${bits}`);
      prefix = Number(p);
    }
    const list = new BlockList();
    list.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
    const text = withPort(prefix === bits ? addr.toLowerCase() : `${addr.toLowerCase()}/${prefix}`);
    return {
      kind: 'net',
      text,
      family: family as 4 | 6,
      address: addr.toLowerCase(),
      prefix,
      list,
      ...(port === undefined ? {} : { port }),
    };
  }

  // a name, `*.name` or `*`
  if (host === '*') return { kind: 'any', text: withPort('*'), ...(port === undefined ? {} : { port }) };
  let wildcard = false;
  let name = host;
  if (name.startsWith('*.')) {
    wildcard = true;
    name = name.slice(2);
  }
  if (name.includes('*'))
    throw new Error(`${JSON.stringify(s)}: a wildcard may only be the whole first label (*.example.com)`);
  if (name.endsWith('.')) name = name.slice(0, -1);
  const ascii = domainToASCII(name);
  if (ascii === '' || ascii.length > 253) throw new Error(`${JSON.stringify(s)} is not a valid host name`);
  const labels = ascii.split('.');
  const bad = labels.find((l) => !LABEL.test(l));
  if (bad !== undefined)
    throw new Error(`${JSON.stringify(s)} is not a valid host name (label ${JSON.stringify(bad)})`);
  if (/^\d+$/.test(labels[labels.length - 1]!))
    throw new Error(
      `${JSON.stringify(s)} is neither an IP address nor a host name (a name's last label is not all digits)`,
    );
  if (wildcard)
    return {
      kind: 'wildcard',
      text: withPort(`*.${ascii}`),
      suffix: `.${ascii}`,
      ...(port === undefined ? {} : { port }),
    };
  return { kind: 'name', text: withPort(ascii), name: ascii, ...(port === undefined ? {} : { port }) };
}

/** Does granted entry `g` cover everything entry `h` allows? (A config may only narrow.) */
export function entryCovers(g: HostEntry, h: HostEntry): boolean {
  if (g.port !== undefined && g.port !== h.port) return false;
  switch (g.kind) {
    case 'any':
      return h.kind !== 'net';
    case 'name':
      return h.kind === 'name' && h.name === g.name;
    case 'wildcard':
      return (
        (h.kind === 'name' && h.name.endsWith(g.suffix)) ||
        (h.kind === 'wildcard' && (h.suffix === g.suffix || h.suffix.endsWith(g.suffix)))
      );
    case 'net':
      return (
        h.kind === 'net' &&
        h.family === g.family &&
        h.prefix >= g.prefix &&
        g.list.check(h.address, g.family === 4 ? 'ipv4' : 'ipv6')
      );
  }
}

type Declared = { hosts?: unknown; raw?: unknown; maxResponseBytes?: unknown; timeoutMs?: unknown };

/** the parts of a declared grant, validated; what it leaves out is undefined (`hosts` and `raw` never are) */
export interface ParsedNetwork {
  hosts: HostEntry[];
  raw: boolean;
  maxResponseBytes?: number;
  timeoutMs?: number;
}

/**
 * A declared grant (a host list or an object), validated; errors are CONFIG_INVALID naming
 * the path under `where` (e.g. `hands.foo.capabilities.network`): `…network[2]: …` for a
 * list, `…network.hosts[2]: …` for an object.
 */
export function parseNetwork(decl: NetworkCapability | undefined | null, where: string): ParsedNetwork {
  if (decl === undefined || decl === null) return { hosts: [], raw: false };
  const fail = (path: string, msg: string): never => {
    throw new TalonError('CONFIG_INVALID', `${where}${path}: ${msg}`);
  };
  const entries = (list: unknown, path: string): HostEntry[] => {
    if (!Array.isArray(list)) fail(path, 'must be a list of hosts');
    const l = list as unknown[];
    if (l.length > NETWORK_MAX.hosts) fail(path, `has ${l.length} entries; at most ${NETWORK_MAX.hosts}`);
    return l.map((h, i) => {
      try {
        return parseHostEntry(h);
      } catch (err) {
        return fail(`${path}[${i}]`, (err as Error).message);
      }
    });
  };
  if (Array.isArray(decl)) return { hosts: entries(decl, ''), raw: false };
  if (typeof decl !== 'object')
    return fail('', 'must be a list of hosts or { hosts?, raw?, maxResponseBytes?, timeoutMs? }');
  const d = decl as Declared;
  for (const k of Object.keys(d)) {
    if (!['hosts', 'raw', 'maxResponseBytes', 'timeoutMs'].includes(k))
      fail(`.${k}`, 'is not a network setting (hosts, raw, maxResponseBytes, timeoutMs)');
  }
  const out: ParsedNetwork = { hosts: d.hosts === undefined ? [] : entries(d.hosts, '.hosts'), raw: false };
  if (d.raw !== undefined) {
    if (typeof d.raw !== 'boolean') fail('.raw', 'must be true or false');
    out.raw = d.raw as boolean;
  }
  const int = (k: 'maxResponseBytes' | 'timeoutMs'): void => {
    const v = d[k];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < NETWORK_MIN[k] || v > NETWORK_MAX[k]) {
      fail(`.${k}`, `must be an integer ${NETWORK_MIN[k]}-${NETWORK_MAX[k]}`);
    }
    out[k] = v as number;
  };
  int('maxResponseBytes');
  int('timeoutMs');
  return out;
}

/** A declared grant normalized: the manifest's view (what it leaves out is nothing / the defaults). */
export function normalizeNetwork(decl: NetworkCapability | undefined | null, where: string): NetworkGrant {
  const p = parseNetwork(decl, where);
  return {
    hosts: unique(p.hosts.map((e) => e.text)),
    raw: p.raw,
    maxResponseBytes: p.maxResponseBytes ?? NETWORK_DEFAULTS.maxResponseBytes,
    timeoutMs: p.timeoutMs ?? NETWORK_DEFAULTS.timeoutMs,
  };
}

/** the union of two grants (a manifest's capabilities and its optionalCapabilities) */
export function mergeNetwork(a: NetworkGrant, b: NetworkGrant): NetworkGrant {
  return {
    hosts: unique([...a.hosts, ...b.hosts]),
    raw: a.raw || b.raw,
    maxResponseBytes: Math.max(a.maxResponseBytes, b.maxResponseBytes),
    timeoutMs: Math.max(a.timeoutMs, b.timeoutMs),
  };
}

/**
 * A config's network grant within the manifest's `ceiling`: every host must be covered by a
 * ceiling entry, raw only if the ceiling has raw, limits no higher. Limits it leaves out are
 * the ceiling's; hosts and raw it leaves out are none.
 */
export function narrowNetwork(ceiling: NetworkGrant, decl: NetworkCapability, where: string): NetworkGrant {
  const p = parseNetwork(decl, where);
  const granted = ceiling.hosts.map((h) => parseHostEntry(h));
  const hostPath = Array.isArray(decl) ? '' : '.hosts';
  const widen = (path: string, value: unknown, what: string): never => {
    throw new TalonError(
      'CONFIG_INVALID',
      `${where}${path}: ${JSON.stringify(value)} widens the manifest's grant (${what}); a Hand's config may only narrow what its manifest declares`,
    );
  };
  p.hosts.forEach((h, i) => {
    if (!granted.some((g) => entryCovers(g, h)))
      widen(`${hostPath}[${i}]`, h.text, ceiling.hosts.length ? ceiling.hosts.join(', ') : 'no hosts');
  });
  if (p.raw && !ceiling.raw) widen('.raw', true, 'no raw network');
  if (p.maxResponseBytes !== undefined && p.maxResponseBytes > ceiling.maxResponseBytes)
    widen('.maxResponseBytes', p.maxResponseBytes, `${ceiling.maxResponseBytes}`);
  if (p.timeoutMs !== undefined && p.timeoutMs > ceiling.timeoutMs)
    widen('.timeoutMs', p.timeoutMs, `${ceiling.timeoutMs}`);
  return {
    hosts: unique(p.hosts.map((e) => e.text)),
    raw: p.raw,
    maxResponseBytes: p.maxResponseBytes ?? ceiling.maxResponseBytes,
    timeoutMs: p.timeoutMs ?? ceiling.timeoutMs,
  };
}

// ---- addresses --------------------------------------------------------------------------

/**
 * Ranges a name may not reach unless the address is granted: this device and its LAN, not
 * the internet. (Documentation ranges such as 192.0.2.0/24 are not here: they route nowhere.)
 */
const SPECIAL_V4: Array<[string, number]> = [
  ['0.0.0.0', 8], // "this network", 0.0.0.0
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (and cloud metadata at 169.254.169.254)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];
const SPECIAL_V6: Array<[string, number]> = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001::', 32], // Teredo
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];
const SPECIAL = new BlockList();
for (const [a, p] of SPECIAL_V4) SPECIAL.addSubnet(a, p, 'ipv4');
for (const [a, p] of SPECIAL_V6) SPECIAL.addSubnet(a, p, 'ipv6');

/** the 8 hextets of an IPv6 address (which must be valid) */
function hextets(addr: string): number[] {
  let a = addr;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const q = dotted[1]!.split('.').map(Number);
    a = `${a.slice(0, dotted.index)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((x) => parseInt(x, 16));
}

const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/**
 * An address as the checks see it: IPv4-mapped IPv6 (::ffff:a.b.c.d) as IPv4. Returns null
 * for something that is not an IP address. `embedded` is the IPv4 address a NAT64 (64:ff9b::/96)
 * or 6to4 (2002::/16) address points to, checked too.
 */
export function canonicalAddress(input: string): { address: string; family: 4 | 6; embedded?: string } | null {
  const a = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  const family = isIP(a);
  if (family === 4) return { address: a, family: 4 };
  if (family !== 6 || a.includes('%')) return null;
  const x = hextets(a.toLowerCase());
  if (x.length !== 8 || x.some((n) => !Number.isInteger(n) || n < 0 || n > 0xffff)) return null;
  if (x.slice(0, 5).every((n) => n === 0) && x[5] === 0xffff) return { address: v4(x[6]!, x[7]!), family: 4 };
  const address = a.toLowerCase();
  if (x[0] === 0x64 && x[1] === 0xff9b && x.slice(2, 6).every((n) => n === 0))
    return { address, family: 6, embedded: v4(x[6]!, x[7]!) };
  if (x[0] === 0x2002) return { address, family: 6, embedded: v4(x[1]!, x[2]!) };
  return { address, family: 6 };
}

/** loopback, private, link-local, CGNAT, unspecified, multicast, reserved: not the internet */
export function isSpecialAddress(input: string): boolean {
  const c = canonicalAddress(input);
  if (!c) return true;
  if (c.embedded !== undefined && SPECIAL.check(c.embedded, 'ipv4')) return true;
  return SPECIAL.check(c.address, c.family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The checks for one Hand's grant. `allowsHost`: may a URL name this host? `allowsAddress`:
 * may a connection go to this (resolved) address? Both take the port the request uses.
 */
export class NetworkPolicy {
  readonly grant: NetworkGrant;
  readonly entries: HostEntry[];

  constructor(grant: NetworkGrant) {
    this.grant = grant;
    this.entries = grant.hosts.map((h) => parseHostEntry(h));
  }

  /** `host` is a URL's hostname: a name, an IPv4 address, or an IPv6 address with or without brackets */
  allowsHost(host: string, port: number): boolean {
    const addr = canonicalAddress(host);
    if (addr) return this.#coversAddress(addr.address, addr.family, port);
    const name = hostName(host);
    return this.entries.some((e) => {
      if (e.port !== undefined && e.port !== port) return false;
      if (e.kind === 'any') return true;
      if (e.kind === 'name') return e.name === name;
      if (e.kind === 'wildcard') return name.endsWith(e.suffix) && name.length > e.suffix.length;
      return false;
    });
  }

  /** a public address is fine (its name or literal was checked by allowsHost); a special one must be granted itself */
  allowsAddress(address: string, port: number): boolean {
    const c = canonicalAddress(address);
    if (!c) return false;
    if (!isSpecialAddress(c.address)) return true;
    return this.#coversAddress(c.address, c.family, port);
  }

  #coversAddress(address: string, family: 4 | 6, port: number): boolean {
    return this.entries.some(
      (e) =>
        e.kind === 'net' &&
        (e.port === undefined || e.port === port) &&
        e.list.check(address, family === 4 ? 'ipv4' : 'ipv6'),
    );
  }
}

/** a URL hostname as host entries spell names: lower case, punycode, no trailing dot */
export function hostName(host: string): string {
  const h = host.endsWith('.') ? host.slice(0, -1) : host;
  return domainToASCII(h) || h.toLowerCase();
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}
