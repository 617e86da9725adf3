/**
 * The kernel's DNS for what it reaches on Hands' behalf (config `network`): fixed addresses for names (`hosts`, like
 * /etc/hosts: a LAN without DNS, a service pinned to one address — and the tests' fixture names), and the DNS servers to
 * ask (`dns`; empty: the system's resolver through getaddrinfo). Used by ctx.fetch (./fetch.ts, which then checks every
 * address against the Hand's grant as usual: a fixed address gets no exemption) and by the `dns.mx` service (a lead's
 * mail servers).
 *
 * node:dns is loaded on the first lookup, not at the kernel's start.
 */
import { canonicalAddress } from '../core/network.ts';
import type { ResolvedAddress, Resolver } from './fetch.ts';

export interface NetworkConfig {
  hosts?: Record<string, string>;
  dns?: string[];
}

export interface MxRecord {
  exchange: string;
  priority: number;
}
export type MxResolver = (domain: string) => Promise<MxRecord[]>;

const dns = () => process.getBuiltinModule('node:dns').promises;

function fixed(config: NetworkConfig): Map<string, ResolvedAddress> {
  const m = new Map<string, ResolvedAddress>();
  for (const [name, address] of Object.entries(config.hosts ?? {})) {
    const c = canonicalAddress(address);
    if (!c) throw new Error(`network.hosts.${name}: ${JSON.stringify(address)} is not an IP address`);
    m.set(name.toLowerCase().replace(/\.$/, ''), { address: c.address, family: c.family });
  }
  return m;
}

/** a resolver that asks the configured servers (undefined: none configured) */
function serverResolver(config: NetworkConfig): InstanceType<ReturnType<typeof dns>['Resolver']> | undefined {
  if (!config.dns?.length) return undefined;
  const r = new (dns().Resolver)({ timeout: 3000, tries: 2 });
  r.setServers(config.dns);
  return r;
}

/** ctx.fetch's resolver: a fixed address first, then the configured servers (A and AAAA), else getaddrinfo */
export function configResolver(config: NetworkConfig, fallback: Resolver): Resolver {
  const names = fixed(config);
  let servers: ReturnType<typeof serverResolver> | null = null;
  return async (host) => {
    const hit = names.get(host.toLowerCase().replace(/\.$/, ''));
    if (hit) return [hit];
    servers ??= serverResolver(config) ?? null;
    if (!servers) return fallback(host);
    const [v4, v6] = await Promise.allSettled([servers.resolve4(host), servers.resolve6(host)]);
    const out: ResolvedAddress[] = [];
    if (v4.status === 'fulfilled') for (const a of v4.value) out.push({ address: a, family: 4 });
    if (v6.status === 'fulfilled') for (const a of v6.value) out.push({ address: a, family: 6 });
    if (out.length === 0) throw v4.status === 'rejected' ? v4.reason : new Error(`${host}: no A or AAAA records`);
    return out;
  };
}

/** MX records of a domain from the configured servers (else the system's); none → [] (not an error) */
export function mxResolver(config: NetworkConfig): MxResolver {
  let servers: ReturnType<typeof serverResolver> | null = null;
  return async (domain) => {
    servers ??= serverResolver(config) ?? null;
    try {
      const list = await (servers ?? dns()).resolveMx(domain);
      return list
        .map((r) => ({ exchange: r.exchange.toLowerCase(), priority: r.priority }))
        .sort((a, b) => a.priority - b.priority || a.exchange.localeCompare(b.exchange));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENODATA' || code === 'ENOTFOUND' || code === 'NOTFOUND') return [];
      throw err;
    }
  };
}
