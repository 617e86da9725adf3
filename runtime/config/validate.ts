/**
 * validateConfig: defaults + the JSON Schema (./schema.ts) + the rules a schema cannot say.
 * Every problem is reported at once as `<path>: <reason>` with a readable path
 * (`hands[0].quotas.heapMb`), and unknown keys close to a known one get "did you mean".
 *
 * Decisions the schema cannot express:
 * - Hand names are unique (they name topics, store keys and CLI targets).
 * - `bus.url` (an external broker) and the embedded broker are exclusive: with `url` set
 *   the embedded broker is turned off in the result; saying `bus.embedded.enabled: true`
 *   next to a `url` is an error rather than a silent choice. A fleet uplink is a bridge
 *   from the embedded broker, configured separately, not this.
 * - `bus.username`/`bus.password` only make sense with `bus.url`.
 * - The LAN listener needs the embedded broker and at least one user.
 * - Two listeners on the same host:port clash (port 0, "any free port", never clashes).
 * - Topic filters in a Hand's bus grant follow MQTT's wildcard rules.
 * - A Hand's `module` is a built-in id (lowercase, like a Hand name) or a path
 *   (starts with `.` or `/`, or contains `/`, or ends in .js/.cjs/.mjs).
 * - Timings are consistent: the hang timeout outlasts several heartbeats, backoff
 *   maxMs >= initialMs.
 */
import type { ErrorObject } from 'ajv';
import { validator as schemaValidator } from '../schema/validators.ts';
import { TalonError } from '../core/errors.ts';
import { validateFilter } from '../core/topics.ts';
import { parseHostEntry } from '../core/network.ts';
import type { TalonConfig } from './types.ts';
import { defaultHands } from './builtins.ts';
import { HAND_NAME_PATTERN, HAND_NAME_HINT, talonConfigSchema } from './schema.ts';

export interface ConfigProblem {
  /** readable path: `hands[0].quotas.heapMb`; `(root)` for the whole document; `env TALON_HTTP` for an override */
  path: string;
  message: string;
}

type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

function validator(): Validator {
  return schemaValidator('config') as Validator;
}

const HAND_NAME = new RegExp(HAND_NAME_PATTERN);

/** Is a Hand's `module` a file path (as opposed to a built-in Hand id)? */
export function isModulePath(module: string): boolean {
  return (
    module.startsWith('.') ||
    module.startsWith('/') ||
    module.includes('/') ||
    module.includes('\\') ||
    /\.(c|m)?(js|ts)$/.test(module)
  );
}

/**
 * Checks `input` and returns the effective config (a copy with defaults applied); throws
 * TalonError('CONFIG_INVALID') listing every problem. Does not resolve relative paths:
 * loadConfig does that, knowing the config file's folder.
 */
export function validateConfig(
  input: unknown,
  opts: { extraProblems?: ConfigProblem[]; what?: string } = {},
): TalonConfig {
  const { config, problems } = checkConfig(input);
  const all = [...(opts.extraProblems ?? []), ...problems];
  if (all.length > 0 || !config) throw invalid(all, opts.what);
  return config;
}

/** Like validateConfig but returns the problems instead of throwing. */
export function checkConfig(input: unknown): { config?: TalonConfig; problems: ConfigProblem[] } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return {
      problems: [{ path: '(root)', message: `must be a mapping of settings (an object), got ${describe(input)}` }],
    };
  }
  const data = structuredClone(input) as Record<string, unknown>;
  // the schema names no Hand: a config without `hands` gets the registered built-ins' default instances
  const given = Object.keys(data);
  const handsDefaulted = data.hands === undefined;
  if (handsDefaulted) data.hands = defaultHands();
  const explicitEmbedded = (data.bus as { embedded?: { enabled?: unknown } } | undefined)?.embedded?.enabled;
  const validate = validator();
  const ok = validate(data);
  if (handsDefaulted) inSchemaOrder(data, given);
  const problems: ConfigProblem[] = ok ? [] : schemaProblems(validate.errors ?? []);
  problems.push(...semanticProblems(data, explicitEmbedded));
  if (problems.length > 0) return { problems: dedupe(problems) };
  delete data.$schema;
  const config = data as unknown as TalonConfig;
  if (config.bus.url) config.bus.embedded.enabled = false;
  return { config, problems };
}

/**
 * Puts the keys validation added (defaults) after the given ones in the schema's order, where
 * ajv's defaults put them: `hands`, filled before validation, would otherwise come first.
 */
function inSchemaOrder(data: Record<string, unknown>, given: string[]): void {
  const had = new Set(given);
  for (const key of Object.keys(talonConfigSchema.properties)) {
    if (had.has(key) || !(key in data)) continue;
    const value = data[key];
    delete data[key];
    data[key] = value;
  }
}

export function invalid(problems: ConfigProblem[], what = 'the config'): TalonError {
  const n = problems.length;
  const lines = problems.map((p) => `  ${p.path}: ${p.message}`);
  return new TalonError(
    'CONFIG_INVALID',
    `${what} is invalid (${n} problem${n === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    { details: problems },
  );
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// ---------------------------------------------------------------------------------------
// ajv errors → readable problems

/** `/hands/0/quotas/heapMb` → `hands[0].quotas.heapMb` */
export function readablePath(pointer: string, extra?: string): string {
  const segs =
    pointer === ''
      ? []
      : pointer
          .slice(1)
          .split('/')
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) segs.push(extra);
  let out = '';
  for (const s of segs) {
    if (/^\d+$/.test(s)) out += `[${s}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out === '' ? '(root)' : out;
}

function schemaProblems(errors: ErrorObject[]): ConfigProblem[] {
  // an if/then/else failure is reported by the branch's own errors
  return errors
    .filter((e) => e.keyword !== 'if')
    .map((e) => {
      const params = e.params as Record<string, unknown>;
      const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
      switch (e.keyword) {
        case 'additionalProperties': {
          const key = String(params.additionalProperty);
          const known = Object.keys((parent.properties ?? {}) as Record<string, unknown>).filter(
            (k) => k !== '$schema',
          );
          const guess = didYouMean(key, known);
          const message = guess
            ? `unknown key; did you mean "${guess}"?`
            : known.length > 0
              ? `unknown key; expected one of: ${known.join(', ')}`
              : 'unknown key';
          return { path: readablePath(e.instancePath, key), message };
        }
        case 'required':
          return { path: readablePath(e.instancePath, String(params.missingProperty)), message: 'is required' };
        case 'type':
          return {
            path: readablePath(e.instancePath),
            message: `must be ${typeName(String(params.type))}, got ${describe(e.data)}`,
          };
        case 'minimum':
        case 'maximum':
        case 'exclusiveMinimum':
        case 'exclusiveMaximum': {
          if (typeof parent['x-hint'] === 'string')
            return { path: readablePath(e.instancePath), message: `${parent['x-hint']}, got ${describe(e.data)}` };
          const range =
            typeof parent.minimum === 'number' && typeof parent.maximum === 'number'
              ? `must be between ${parent.minimum} and ${parent.maximum}`
              : `must be ${String(params.comparison)} ${String(params.limit)}`;
          return { path: readablePath(e.instancePath), message: `${range}, got ${describe(e.data)}` };
        }
        case 'enum':
          return {
            path: readablePath(e.instancePath),
            message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${describe(e.data)}`,
          };
        case 'pattern':
          return {
            path: readablePath(e.instancePath),
            message: `${typeof parent['x-hint'] === 'string' ? parent['x-hint'] : `must match ${String(params.pattern)}`}, got ${describe(e.data)}`,
          };
        case 'minLength':
          return {
            path: readablePath(e.instancePath),
            message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters`,
          };
        case 'maxLength':
          return { path: readablePath(e.instancePath), message: `must be at most ${String(params.limit)} characters` };
        case 'maxItems':
          return { path: readablePath(e.instancePath), message: `must have at most ${String(params.limit)} entries` };
        case 'uniqueItems':
          return {
            path: readablePath(e.instancePath),
            message: `must not repeat entries (items ${String(params.j)} and ${String(params.i)} are the same)`,
          };
        default:
          return { path: readablePath(e.instancePath), message: e.message ?? `fails ${e.keyword}` };
      }
    });
}

function typeName(t: string): string {
  return t
    .split(',')
    .map(
      (x) =>
        ({
          integer: 'an integer',
          number: 'a number',
          string: 'a string',
          boolean: 'true or false',
          object: 'a mapping (object)',
          array: 'a list (array)',
          null: 'null',
        })[x] ?? x,
    )
    .join(' or ');
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') {
    const s = JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    return `string ${s}`;
  }
  if (typeof v === 'number' && !Number.isInteger(v)) return `${v}`;
  return String(v);
}

/** The closest known key, if it is close enough to be a likely typo. */
export function didYouMean(key: string, known: string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const kl = k.toLowerCase();
    if (kl === lower) return k;
    const d = levenshtein(lower, kl);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.floor(Math.max(key.length, best.length) / 3));
  if (bestD <= limit) return best;
  // a prefix of three or more characters either way: `hand` → `hands`, `heartbeat` → `heartbeatMs`
  for (const k of known) {
    const kl = k.toLowerCase();
    if (Math.min(kl.length, lower.length) >= 3 && (kl.startsWith(lower) || lower.startsWith(kl))) return k;
  }
  return undefined;
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

// ---------------------------------------------------------------------------------------
// rules a schema cannot say; written defensively: they run even when the schema failed

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function semanticProblems(data: Record<string, unknown>, explicitEmbedded: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];

  // MCP servers: exactly one transport each, unique names (their tools are mcp.<name>.<tool>)
  const mcp = isObj(data.tools) && isObj(data.tools.mcp) ? data.tools.mcp : undefined;
  if (mcp && Array.isArray(mcp.servers)) {
    const seen = new Map<string, number>();
    mcp.servers.forEach((srv, i) => {
      if (!isObj(srv)) return;
      if ((srv.command === undefined) === (srv.url === undefined))
        out.push({
          path: `tools.mcp.servers[${i}]`,
          message: 'needs exactly one of command (a program started over stdio) or url (Streamable HTTP)',
        });
      if (
        srv.url !== undefined &&
        (srv.env !== undefined || srv.cwd !== undefined) &&
        isObj(srv.env) &&
        Object.keys(srv.env).length
      )
        out.push({
          path: `tools.mcp.servers[${i}].env`,
          message: 'env is for a stdio server (command); an HTTP server has none',
        });
      if (typeof srv.name === 'string') {
        const first = seen.get(srv.name);
        if (first !== undefined)
          out.push({
            path: `tools.mcp.servers[${i}].name`,
            message: `"${srv.name}" is already used by tools.mcp.servers[${first}]; server names must be unique`,
          });
        else seen.set(srv.name, i);
      }
    });
  }

  // Hands: unique names, module ids, topic filters
  if (Array.isArray(data.hands)) {
    const firstIndex = new Map<string, number>();
    data.hands.forEach((h, i) => {
      if (!isObj(h)) return;
      if (typeof h.name === 'string' && HAND_NAME.test(h.name)) {
        const first = firstIndex.get(h.name);
        if (first === undefined) firstIndex.set(h.name, i);
        else
          out.push({
            path: `hands[${i}].name`,
            message: `"${h.name}" is already used by hands[${first}]; Hand names must be unique`,
          });
      }
      if (typeof h.module === 'string' && h.module !== '' && !isModulePath(h.module) && !HAND_NAME.test(h.module)) {
        out.push({
          path: `hands[${i}].module`,
          message: `"${h.module.slice(0, 60)}" is neither a built-in Hand id (${HAND_NAME_HINT.replace('must be ', '')}) nor a path (start a path with ./ or /)`,
        });
      }
      const inst = isObj(h.instances) ? h.instances : undefined;
      if (inst && typeof inst.min === 'number' && typeof inst.max === 'number' && inst.max < inst.min)
        out.push({ path: `hands[${i}].instances.max`, message: `must be at least instances.min (${inst.min})` });
      const bus = isObj(h.capabilities) ? h.capabilities.bus : undefined;
      if (isObj(bus)) {
        for (const dir of ['publish', 'subscribe'] as const) {
          const list = bus[dir];
          if (!Array.isArray(list)) continue;
          list.forEach((f, j) => {
            if (typeof f !== 'string' || f === '') return;
            try {
              validateFilter(f.startsWith('/') ? f.slice(1) : f);
            } catch (err) {
              out.push({ path: `hands[${i}].capabilities.bus.${dir}[${j}]`, message: (err as Error).message });
            }
          });
        }
      }
      // network host entries: one parser (runtime/core/network.ts) for config and kernel
      const net = isObj(h.capabilities) ? h.capabilities.network : undefined;
      const hosts = Array.isArray(net)
        ? { list: net, path: 'network' }
        : isObj(net) && Array.isArray(net.hosts)
          ? { list: net.hosts, path: 'network.hosts' }
          : null;
      hosts?.list.forEach((e: unknown, j: number) => {
        if (typeof e !== 'string' || e === '') return; // the schema says so
        try {
          parseHostEntry(e);
        } catch (err) {
          out.push({ path: `hands[${i}].capabilities.${hosts.path}[${j}]`, message: (err as Error).message });
        }
      });
    });
  }

  // Bus: external broker vs embedded, LAN listener
  const bus = isObj(data.bus) ? data.bus : {};
  const url = typeof bus.url === 'string' && bus.url !== '' ? bus.url : undefined;
  const embedded = isObj(bus.embedded) ? bus.embedded : {};
  if (url && explicitEmbedded === true) {
    out.push({
      path: 'bus.embedded.enabled',
      message:
        'cannot be true when bus.url is set: Talon uses either an external broker (bus.url) or the embedded one; remove one of them',
    });
  }
  if (!url) {
    if (bus.username !== undefined)
      out.push({
        path: 'bus.username',
        message:
          'is only used with an external broker (bus.url); the embedded broker takes users in bus.embedded.lan.users',
      });
    if (bus.password !== undefined)
      out.push({ path: 'bus.password', message: 'is only used with an external broker (bus.url)' });
  }
  const lan = isObj(embedded.lan) ? embedded.lan : undefined;
  const embeddedOn = !url && embedded.enabled !== false;
  if (lan && lan.enabled === true) {
    if (!embeddedOn) {
      out.push({
        path: 'bus.embedded.lan.enabled',
        message: url
          ? 'the LAN listener belongs to the embedded broker, which is off because bus.url is set'
          : 'the LAN listener needs the embedded broker (bus.embedded.enabled: true)',
      });
    }
    if (Array.isArray(lan.users) && lan.users.length === 0) {
      out.push({
        path: 'bus.embedded.lan.users',
        message:
          'the LAN listener needs at least one user (usernames and password hashes); it never accepts anonymous clients',
      });
    }
  }
  if (lan && Array.isArray(lan.users)) {
    const seen = new Map<string, number>();
    lan.users.forEach((u, i) => {
      if (!isObj(u) || typeof u.username !== 'string') return;
      const first = seen.get(u.username);
      if (first === undefined) seen.set(u.username, i);
      else
        out.push({
          path: `bus.embedded.lan.users[${i}].username`,
          message: `"${u.username}" is already used by users[${first}]`,
        });
    });
  }

  // Listeners must not clash
  const listeners: Array<{ path: string; host: unknown; port: unknown }> = [];
  if (isObj(data.http)) listeners.push({ path: 'http', host: data.http.host, port: data.http.port });
  if (embeddedOn && isObj(embedded.listen))
    listeners.push({ path: 'bus.embedded.listen', host: embedded.listen.host, port: embedded.listen.port });
  if (embeddedOn && lan && lan.enabled === true)
    listeners.push({ path: 'bus.embedded.lan', host: lan.host, port: lan.port });
  for (let i = 0; i < listeners.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = listeners[i]!;
      const b = listeners[j]!;
      if (typeof a.port !== 'number' || a.port === 0 || a.port !== b.port) continue;
      if (typeof a.host !== 'string' || typeof b.host !== 'string') continue;
      const wild = (h: string) => h === '0.0.0.0' || h === '::';
      if (a.host === b.host || wild(a.host) || wild(b.host)) {
        out.push({
          path: `${a.path}.port`,
          message: `${a.port} is already used by ${b.path} (${b.host}:${b.port}); choose another port`,
        });
      }
    }
  }

  // Timings
  const sup = isObj(data.supervisor) ? data.supervisor : {};
  if (
    typeof sup.heartbeatMs === 'number' &&
    typeof sup.hangTimeoutMs === 'number' &&
    sup.hangTimeoutMs < sup.heartbeatMs * 2
  ) {
    out.push({
      path: 'supervisor.hangTimeoutMs',
      message: `must be at least twice supervisor.heartbeatMs (${sup.heartbeatMs}), got ${sup.hangTimeoutMs}; one late heartbeat is not a hang`,
    });
  }
  const backoff = isObj(sup.backoff) ? sup.backoff : {};
  if (typeof backoff.initialMs === 'number' && typeof backoff.maxMs === 'number' && backoff.maxMs < backoff.initialMs) {
    out.push({
      path: 'supervisor.backoff.maxMs',
      message: `must be at least supervisor.backoff.initialMs (${backoff.initialMs}), got ${backoff.maxMs}`,
    });
  }
  return out;
}
