/**
 * What a Hand may do: its manifest's capabilities, narrowed by its config. A config may
 * take rights away but never add one; a config that widens is refused with the path of
 * the offending entry. Topics in a grant are stored absolute (`talon/<deviceId>/...`);
 * Hands write them relative to the device root, a leading `/` meaning absolute.
 *
 * Pure functions and one small class, no I/O: the worker bundles this file too, to pre-check
 * publishes locally (the kernel checks again).
 */
import { resolve, sep } from 'node:path';
import type { Capabilities, DeclaredCapabilities } from './hand.ts';
import { TalonError } from './errors.ts';
import { filterCovers, toAbsolute, topicMatches, validateFilter } from './topics.ts';
import { NO_NETWORK, NetworkPolicy, mergeNetwork, narrowNetwork, normalizeNetwork } from './network.ts';

/** one command line's limits when the shell grant does not say */
export const SHELL_DEFAULTS = { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 } as const;

type ShellDecl = DeclaredCapabilities['shell'];
type ToolsDecl = DeclaredCapabilities['tools'];

function shellCommands(d: ShellDecl): string[] | undefined {
  if (d === undefined) return undefined;
  return Array.isArray(d) ? [...d] : d.commands !== undefined ? [...d.commands] : undefined;
}

function shellLimits(d: ShellDecl): { timeoutMs: number; maxOutputBytes: number } {
  const o = d !== undefined && !Array.isArray(d) ? d : {};
  return {
    timeoutMs: o.timeoutMs ?? SHELL_DEFAULTS.timeoutMs,
    maxOutputBytes: o.maxOutputBytes ?? SHELL_DEFAULTS.maxOutputBytes,
  };
}

function toolsAllow(d: ToolsDecl): string[] | undefined {
  if (d === undefined) return undefined;
  return Array.isArray(d) ? [...d] : d.allow !== undefined ? [...d.allow] : undefined;
}

function toolsApprove(d: ToolsDecl): string[] {
  return d !== undefined && !Array.isArray(d) ? [...(d.approve ?? [])] : [];
}

export const NO_CAPABILITIES: Capabilities = {
  bus: { publish: [], subscribe: [] },
  sensors: [],
  gpio: [],
  llm: null,
  network: NO_NETWORK,
  fs: { read: [], write: [] },
  shell: [],
  shellLimits: { ...SHELL_DEFAULTS },
  tools: { allow: [], approve: [] },
  secrets: [],
  approvals: false,
};

/** Fill a manifest's partial capabilities with "nothing"; topics made absolute under `root`. */
export function normalizeCapabilities(
  caps: DeclaredCapabilities | undefined,
  root: string,
  where: string,
): Capabilities {
  const c = caps ?? {};
  const absolute = (list: string[] | undefined, path: string): string[] =>
    (list ?? []).map((f, i) => {
      try {
        validateFilter(f);
      } catch (err) {
        throw new TalonError('CONFIG_INVALID', `${where}.${path}[${i}]: ${(err as Error).message}`);
      }
      return toAbsolute(root, f);
    });
  return {
    bus: { publish: absolute(c.bus?.publish, 'bus.publish'), subscribe: absolute(c.bus?.subscribe, 'bus.subscribe') },
    sensors: [...(c.sensors ?? [])],
    gpio: [...(c.gpio ?? [])],
    llm: c.llm ? { tokensPerHour: c.llm.tokensPerHour } : null,
    network: normalizeNetwork(c.network, `${where}.network`),
    fs: { read: (c.fs?.read ?? []).map((p) => resolve(p)), write: (c.fs?.write ?? []).map((p) => resolve(p)) },
    shell: shellCommands(c.shell) ?? [],
    shellLimits: shellLimits(c.shell),
    tools: { allow: toolsAllow(c.tools) ?? [], approve: toolsApprove(c.tools) },
    secrets: [...(c.secrets ?? [])],
    approvals: c.approvals === true,
  };
}

function mergeCapabilities(a: Capabilities, b: Capabilities): Capabilities {
  const u = <T>(x: T[], y: T[]): T[] => [...new Set([...x, ...y])];
  return {
    bus: { publish: u(a.bus.publish, b.bus.publish), subscribe: u(a.bus.subscribe, b.bus.subscribe) },
    sensors: u(a.sensors, b.sensors),
    gpio: u(a.gpio, b.gpio),
    llm: a.llm || b.llm ? { tokensPerHour: Math.max(a.llm?.tokensPerHour ?? 0, b.llm?.tokensPerHour ?? 0) } : null,
    network: mergeNetwork(a.network, b.network),
    fs: { read: u(a.fs.read, b.fs.read), write: u(a.fs.write, b.fs.write) },
    shell: u(a.shell, b.shell),
    shellLimits: {
      timeoutMs: Math.max(a.shellLimits.timeoutMs, b.shellLimits.timeoutMs),
      maxOutputBytes: Math.max(a.shellLimits.maxOutputBytes, b.shellLimits.maxOutputBytes),
    },
    tools: { allow: u(a.tools.allow, b.tools.allow), approve: u(a.tools.approve, b.tools.approve) },
    secrets: u(a.secrets, b.secrets),
    approvals: a.approvals || b.approvals,
  };
}

/**
 * Effective grants = the manifest's capabilities, narrowed by the config's; the manifest's
 * optionalCapabilities are granted only when the config names them. A field the
 * config leaves out keeps the manifest's value; a field it sets replaces it, and every entry
 * must lie within the manifest's. `where` prefixes error paths, e.g. `hands.sensor-1.capabilities`.
 */
export function effectiveGrants(
  manifestCaps: DeclaredCapabilities | undefined,
  configCaps: DeclaredCapabilities | undefined,
  root: string,
  where: string,
  /** what the Hand can use only when its config grants it (a fan relay, a shell command): the ceiling, not the default */
  optionalCaps?: DeclaredCapabilities,
): Capabilities {
  const base = normalizeCapabilities(manifestCaps, root, `${where} (manifest)`);
  if (!configCaps) return base;
  const m = optionalCaps
    ? mergeCapabilities(base, normalizeCapabilities(optionalCaps, root, `${where} (manifest optionalCapabilities)`))
    : base;
  const c = configCaps;
  const out: Capabilities = structuredClone(base);
  const widen = (path: string, value: unknown, granted: string): never => {
    throw new TalonError(
      'CONFIG_INVALID',
      `${where}.${path}: ${JSON.stringify(value)} widens the manifest's grant (${granted}); a Hand's config may only narrow what its manifest declares`,
    );
  };
  const describe = (list: unknown[]): string =>
    list.length ? list.map((v) => JSON.stringify(v)).join(', ') : 'nothing';

  for (const kind of ['publish', 'subscribe'] as const) {
    const list = c.bus?.[kind];
    if (list === undefined) continue;
    out.bus[kind] = list.map((f, i) => {
      const path = `bus.${kind}[${i}]`;
      try {
        validateFilter(f);
      } catch (err) {
        throw new TalonError('CONFIG_INVALID', `${where}.${path}: ${(err as Error).message}`);
      }
      const abs = toAbsolute(root, f);
      if (!m.bus[kind].some((g) => filterCovers(g, abs))) widen(path, f, describe(m.bus[kind]));
      return abs;
    });
  }
  if (c.sensors !== undefined) {
    c.sensors.forEach((s, i) => {
      if (!m.sensors.some((g) => globCovers(g, s))) widen(`sensors[${i}]`, s, describe(m.sensors));
    });
    out.sensors = [...c.sensors];
  }
  if (c.gpio !== undefined) {
    c.gpio.forEach((p, i) => {
      if (!m.gpio.includes(p)) widen(`gpio[${i}]`, p, describe(m.gpio));
    });
    out.gpio = [...c.gpio];
  }
  if (c.llm !== undefined) {
    if (c.llm !== null) {
      if (m.llm === null) widen('llm', c.llm, 'no LLM');
      else if (c.llm.tokensPerHour > m.llm.tokensPerHour)
        widen('llm.tokensPerHour', c.llm.tokensPerHour, `${m.llm.tokensPerHour}`);
    }
    out.llm = c.llm ? { tokensPerHour: c.llm.tokensPerHour } : null;
  }
  if (c.network !== undefined) out.network = narrowNetwork(m.network, c.network, `${where}.network`);
  for (const kind of ['read', 'write'] as const) {
    const list = c.fs?.[kind];
    if (list === undefined) continue;
    out.fs[kind] = list.map((p, i) => {
      const abs = resolve(p);
      if (!m.fs[kind].some((g) => pathCovers(g, abs))) widen(`fs.${kind}[${i}]`, p, describe(m.fs[kind]));
      return abs;
    });
  }
  if (c.shell !== undefined) {
    const commands = shellCommands(c.shell);
    const at = Array.isArray(c.shell) ? 'shell' : 'shell.commands';
    if (commands !== undefined) {
      commands.forEach((s, i) => {
        if (!m.shell.includes(s)) widen(`${at}[${i}]`, s, describe(m.shell));
      });
      out.shell = commands;
    }
    if (!Array.isArray(c.shell)) {
      for (const k of ['timeoutMs', 'maxOutputBytes'] as const) {
        const v = c.shell[k];
        if (v === undefined) continue;
        if (v > m.shellLimits[k]) widen(`shell.${k}`, v, `${m.shellLimits[k]}`);
        out.shellLimits[k] = v;
      }
    }
  }
  if (c.tools !== undefined) {
    const allow = toolsAllow(c.tools);
    const at = Array.isArray(c.tools) ? 'tools' : 'tools.allow';
    if (allow !== undefined) {
      allow.forEach((t, i) => {
        if (!m.tools.allow.some((g) => globCovers(g, t))) widen(`${at}[${i}]`, t, describe(m.tools.allow));
      });
      out.tools.allow = allow;
    }
    // more approvals narrow a grant: the config may add to the manifest's list, never take from it
    out.tools.approve = [...new Set([...m.tools.approve, ...toolsApprove(c.tools)])];
    // calls approved in advance come from the config alone (a manifest cannot excuse itself), within `allow`
    const unattended = !Array.isArray(c.tools) ? c.tools.unattended : undefined;
    if (unattended !== undefined) {
      unattended.forEach((t, i) => {
        if (!out.tools.allow.some((g) => globCovers(g, t)))
          throw new TalonError(
            'CONFIG_INVALID',
            `${where}.tools.unattended[${i}]: ${JSON.stringify(t)} is not in the Hand's tools grant (${describe(out.tools.allow)}); a tool runs unattended only when the Hand may call it`,
          );
      });
      out.tools.unattended = [...unattended];
    }
  }
  if (c.secrets !== undefined) {
    c.secrets.forEach((n, i) => {
      if (!m.secrets.some((g) => globCovers(g, n))) widen(`secrets[${i}]`, n, describe(m.secrets));
    });
    out.secrets = [...c.secrets];
  }
  if (c.approvals !== undefined) {
    if (c.approvals && !m.approvals) widen('approvals', true, 'no approvals');
    out.approvals = c.approvals;
  }
  return out;
}

/** `*` matches any run of characters (dots included). */
export function globMatches(glob: string, id: string): boolean {
  if (!glob.includes('*')) return glob === id;
  const re = new RegExp(`^${glob.split('*').map(escapeRe).join('.*')}$`, 's');
  return re.test(id);
}

/**
 * Does grant glob `g` cover every id glob `s` can match? `g` must match `s` read literally,
 * its `*` absorbing any `*` of `s`.
 */
export function globCovers(g: string, s: string): boolean {
  return globMatches(g, s);
}

export function pathCovers(granted: string, path: string): boolean {
  const g = resolve(granted);
  const p = resolve(path);
  return p === g || p.startsWith(g.endsWith(sep) ? g : g + sep);
}

function escapeRe(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Checks against one Hand's effective grants. Topic checks take absolute topics and are
 * cached: a Hand publishes to few distinct topics, and this sits on the 20k msg/s path.
 */
export class Grants {
  readonly caps: Capabilities;
  readonly root: string;
  #pubCache = new Map<string, boolean>();
  #net: NetworkPolicy | undefined;

  constructor(caps: Capabilities, root: string) {
    this.caps = caps;
    this.root = root;
  }

  /** absolute topic from a Hand's relative one */
  absolute(topic: string): string {
    return toAbsolute(this.root, topic);
  }

  canPublish(absTopic: string): boolean {
    let ok = this.#pubCache.get(absTopic);
    if (ok === undefined) {
      ok = this.caps.bus.publish.some((g) => topicMatches(g, absTopic));
      if (absTopic.length <= 1024) {
        // a long topic (up to 64 KB) is checked each time, never kept
        if (this.#pubCache.size > 4096) this.#pubCache.clear();
        this.#pubCache.set(absTopic, ok);
      }
    }
    return ok;
  }

  /** a subscription is allowed when one granted filter covers every topic it can match */
  canSubscribe(absFilter: string): boolean {
    return this.caps.bus.subscribe.some((g) => filterCovers(g, absFilter));
  }

  canReadSensor(id: string): boolean {
    return this.caps.sensors.some((g) => globMatches(g, id));
  }

  canUseGpio(pin: number): boolean {
    return this.caps.gpio.includes(pin);
  }

  /** may the Hand name `host` (a URL's hostname) on `port` in a ctx.fetch? (its addresses are checked by the kernel) */
  canReach(host: string, port: number): boolean {
    this.#net ??= new NetworkPolicy(this.caps.network);
    return this.#net.allowsHost(host, port);
  }

  canRun(command: string): boolean {
    return this.caps.shell.includes(command);
  }

  /** may the Hand call tool `name` at all (its `tools` grant)? */
  canCallTool(name: string): boolean {
    return this.caps.tools.allow.some((g) => globMatches(g, name));
  }

  /** may the Hand call destructive tool `name` without a person (its config's `tools.unattended`, not `approve`)? */
  unattended(name: string): boolean {
    return !this.mustApprove(name) && (this.caps.tools.unattended ?? []).some((g) => globMatches(g, name));
  }

  /** does every call of tool `name` wait for a person (its `tools.approve` list)? */
  mustApprove(name: string): boolean {
    return this.caps.tools.approve.some((g) => globMatches(g, name));
  }

  canReadFile(path: string): boolean {
    return this.caps.fs.read.some((g) => pathCovers(g, path));
  }

  canWriteFile(path: string): boolean {
    return this.caps.fs.write.some((g) => pathCovers(g, path));
  }

  llmTokensPerHour(): number {
    return this.caps.llm?.tokensPerHour ?? 0;
  }
}
