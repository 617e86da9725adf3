/**
 * loadConfig: read a config file (JSON or YAML), layer the overrides, validate, and resolve
 * relative paths.
 *
 * Precedence, lowest to highest: schema defaults < the file < environment < CLI flags.
 *   TALON_DATA=DIR            dataDir                      (--data DIR beats it)
 *   TALON_HTTP=host:port      http
 *   TALON_MQTT=host:port      the embedded broker's listener (turns it on, drops bus.url)
 *   TALON_MQTT_URL=url        an external broker (bus.url; turns the embedded broker off)
 * Setting both TALON_MQTT and TALON_MQTT_URL is an error. Empty variables are ignored.
 *
 * Relative paths written in the file (dataDir, a Hand's module path, its fs grants, TLS
 * cert/key) and the default `./data` resolve against the config file's folder, so a
 * config means the same thing whatever the working folder (systemd starts in `/`).
 * Without a file they resolve against the working folder. Paths from TALON_DATA and
 * --data are the operator's, typed in a shell: they resolve against the working folder.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { TalonError } from '../core/errors.ts';
import type { TalonConfig } from './types.ts';
import { validateConfig, isModulePath, didYouMean, type ConfigProblem } from './validate.ts';
import { builtinHandIds } from './builtins.ts';

export { validateConfig, checkConfig, isModulePath, type ConfigProblem } from './validate.ts';
export { setBuiltinHands, type BuiltinHandInfo } from './builtins.ts';

/** A config file larger than this is refused before parsing. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface LoadConfigOptions {
  /** the config file; without one, defaults + overrides */
  file?: string | undefined;
  /** --data: beats TALON_DATA and the file */
  dataDir?: string | undefined;
  /** environment to read TALON_* from; default process.env */
  env?: NodeJS.ProcessEnv | Record<string, string | undefined> | undefined;
  /** the folder relative paths given outside the file resolve against; default process.cwd() */
  cwd?: string | undefined;
}

export interface LoadedConfig {
  config: TalonConfig;
  /** where it came from: `/etc/talon/talon.yaml + TALON_HTTP + --data`, or `defaults` */
  source: string;
}

export function loadConfig(opts: LoadConfigOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  let raw: Record<string, unknown> = {};
  let base = cwd;
  const parts: string[] = [];
  let what = 'the config';

  if (opts.file !== undefined && opts.file !== '') {
    const file = resolve(cwd, opts.file);
    raw = readConfigFile(file);
    base = dirname(file);
    parts.push(file);
    what = `the config ${file}`;
  } else {
    parts.push('defaults');
  }

  const problems: ConfigProblem[] = [];
  const fromOutside = new Set<string>(); // paths already absolute, set by env or flags

  const data = nonEmpty(env.TALON_DATA);
  if (data !== undefined) {
    raw.dataDir = resolve(cwd, data);
    fromOutside.add('dataDir');
    parts.push('TALON_DATA');
  }
  applyNetworkEnv(raw, env, problems, parts);
  if (opts.dataDir !== undefined && opts.dataDir !== '') {
    raw.dataDir = resolve(cwd, opts.dataDir);
    fromOutside.add('dataDir');
    parts.push('--data');
  }

  problems.push(...moduleProblems(raw, base));
  const config = validateConfig(raw, { extraProblems: problems, what });
  resolvePaths(config, base, fromOutside);
  return { config, source: parts.join(' + ') };
}

/**
 * A Hand's `module` as a config file names it: a built-in id that exists (one the composition
 * root registered: ./builtins.ts), or a file that exists
 * (relative to the config file's folder), and not TypeScript (the worker loads CommonJS only, and
 * Node's permission model refuses the loader hooks a .ts file would need).
 */
export function moduleProblems(raw: Record<string, unknown>, base: string): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  if (!Array.isArray(raw.hands)) return out;
  raw.hands.forEach((h: unknown, i: number) => {
    if (!isObj(h) || typeof h.module !== 'string' || h.module === '') return;
    const m = h.module;
    const path = `hands[${i}].module`;
    if (/\.(c|m)?tsx?$/i.test(m)) {
      const out1 = m.replace(/\.(c|m)?tsx?$/i, '.cjs');
      out.push({
        path,
        message: `"${m.slice(0, 80)}" is TypeScript; a Hand must be a bundled CommonJS file: run \`npx esbuild ${m} --bundle --platform=node --format=cjs --outfile=${out1}\` and set module: ${out1}`,
      });
      return;
    }
    if (isModulePath(m)) {
      const file = isAbsolute(m) ? m : resolve(base, m);
      let isFile = false;
      try {
        isFile = statSync(file).isFile();
      } catch {
        /* missing */
      }
      if (!isFile) {
        out.push({
          path,
          message: existsSync(file)
            ? `"${m.slice(0, 80)}" (${file}) is not a file`
            : `"${m.slice(0, 80)}": no such file (${file}; a relative path is taken from the config file's folder)`,
        });
      }
      return;
    }
    const builtins = builtinHandIds();
    if (!builtins.includes(m)) {
      const guess = didYouMean(m, builtins);
      out.push({
        path,
        message: `"${m.slice(0, 60)}" is not a built-in Hand (built-in: ${builtins.length > 0 ? builtins.join(', ') : 'none'})${guess ? `; did you mean "${guess}"?` : ''}; a file path starts with ./ or /`,
      });
    }
  });
  return out;
}

/**
 * TALON_HTTP / TALON_MQTT / TALON_MQTT_URL over a config that did not come from the file: the
 * generation in force from the store (a provisioned one, say), which the kernel starts with when
 * the file did not change. The same rules as loadConfig; the config itself is returned when no
 * variable is set. They are never written into a generation.
 */
export function withEnvOverrides(config: TalonConfig, env: LoadConfigOptions['env']): TalonConfig {
  if (!env) return config;
  const raw = structuredClone(config) as unknown as Record<string, unknown>;
  const problems: ConfigProblem[] = [];
  const parts: string[] = [];
  applyNetworkEnv(raw, env, problems, parts);
  if (parts.length === 0) return config;
  return validateConfig(raw, { extraProblems: problems, what: `the config in force with ${parts.join(' + ')}` });
}

function applyNetworkEnv(
  raw: Record<string, unknown>,
  env: NonNullable<LoadConfigOptions['env']>,
  problems: ConfigProblem[],
  parts: string[],
): void {
  const http = nonEmpty(env.TALON_HTTP);
  if (http !== undefined) {
    const addr = parseHostPort(http);
    if (typeof addr === 'string') problems.push({ path: 'env TALON_HTTP', message: addr });
    else setIn(raw, ['http'], addr);
    parts.push('TALON_HTTP');
  }
  const mqtt = nonEmpty(env.TALON_MQTT);
  const mqttUrl = nonEmpty(env.TALON_MQTT_URL);
  if (mqtt !== undefined && mqttUrl !== undefined) {
    problems.push({
      path: 'env TALON_MQTT_URL',
      message: 'set either TALON_MQTT (embedded broker listener) or TALON_MQTT_URL (external broker), not both',
    });
  } else if (mqtt !== undefined) {
    const addr = parseHostPort(mqtt);
    if (typeof addr === 'string') problems.push({ path: 'env TALON_MQTT', message: addr });
    else {
      setIn(raw, ['bus', 'embedded', 'listen'], addr);
      setIn(raw, ['bus', 'embedded', 'enabled'], true);
      if (isObj(raw.bus)) delete raw.bus.url;
    }
    parts.push('TALON_MQTT');
  } else if (mqttUrl !== undefined) {
    setIn(raw, ['bus', 'url'], mqttUrl);
    // an explicit `enabled: true` in the file would clash with the URL; the environment wins
    if (isObj(raw.bus) && isObj(raw.bus.embedded)) raw.bus.embedded.enabled = false;
    parts.push('TALON_MQTT_URL');
  }
}

/** Reads and parses one config file; CONFIG_NOT_FOUND / CONFIG_PARSE with line and column. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw new TalonError('CONFIG_NOT_FOUND', `the config ${file} is a folder, not a file`);
    if (st.size > MAX_CONFIG_BYTES) {
      throw new TalonError(
        'CONFIG_PARSE',
        `the config ${file} is ${st.size} bytes, more than the ${MAX_CONFIG_BYTES} a config may have`,
      );
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof TalonError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new TalonError('CONFIG_NOT_FOUND', `the config file ${file} does not exist`, { cause: err });
    throw new TalonError('CONFIG_NOT_FOUND', `cannot read the config file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const value = parseConfigText(text, file);
  if (value === null || value === undefined) return {}; // an empty file is the defaults
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TalonError(
      'CONFIG_INVALID',
      `the config ${file} is invalid (1 problem):\n  (root): must be a mapping of settings, got ${Array.isArray(value) ? 'a list' : typeof value}`,
      { details: [{ path: '(root)', message: 'must be a mapping of settings' }] },
    );
  }
  return value as Record<string, unknown>;
}

/** JSON for `.json` (or content starting with `{` when the extension says neither), YAML otherwise. */
export function parseConfigText(text: string, file = '(config)'): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const ext = extname(file).toLowerCase();
  const json = ext === '.json' || (ext !== '.yaml' && ext !== '.yml' && /^\s*\{/.test(text));
  if (json) {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      const msg = (err as Error).message;
      const pos = /position (\d+)/.exec(msg);
      let where = '';
      if (pos) {
        const { line, col } = lineCol(text, Number(pos[1]));
        where = ` at line ${line}, column ${col}`;
      }
      const reason = msg.replace(/\s*in JSON at position \d+.*$/, '').replace(/^JSON\.parse: /, '');
      throw new TalonError('CONFIG_PARSE', `${file}${where}: not valid JSON: ${reason}`, {
        details: { file, ...(pos ? lineCol(text, Number(pos[1])) : {}) },
        cause: err,
      });
    }
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const lp = first.linePos?.[0];
    const where = lp ? ` at line ${lp.line}, column ${lp.col}` : '';
    const reason = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new TalonError('CONFIG_PARSE', `${file}${where}: not valid YAML: ${reason}`, {
      details: { file, ...(lp ? { line: lp.line, col: lp.col } : {}) },
      cause: first,
    });
  }
  try {
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (err) {
    throw new TalonError('CONFIG_PARSE', `${file}: not valid YAML: ${(err as Error).message}`, {
      details: { file },
      cause: err,
    });
  }
}

function lineCol(text: string, pos: number): { line: number; col: number } {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return { line, col };
}

/** `host:port` or `[v6]:port` → {host, port}; a string is the reason it is not one. */
export function parseHostPort(s: string): { host: string; port: number } | string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:\s]+):(\d+)$/.exec(s);
  if (!m) return `must be host:port (like 127.0.0.1:8080 or [::1]:8080), got "${s.slice(0, 80)}"`;
  const port = Number(m[2]);
  if (port > 65535) return `port must be 0-65535, got ${port}`;
  return { host: m[1]!, port };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Sets raw[path] = value, creating missing mappings; leaves a non-mapping alone for the schema to report. */
function setIn(raw: Record<string, unknown>, path: string[], value: unknown): void {
  let o: Record<string, unknown> = raw;
  for (const key of path.slice(0, -1)) {
    if (o[key] === undefined) o[key] = {};
    const next = o[key];
    if (!isObj(next)) return;
    o = next;
  }
  const last = path[path.length - 1]!;
  o[last] = isObj(value) && isObj(o[last]) ? { ...o[last], ...value } : value;
}

function resolvePaths(config: TalonConfig, base: string, fromOutside: Set<string>): void {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  if (!fromOutside.has('dataDir')) config.dataDir = abs(config.dataDir);
  for (const h of config.hands) {
    if (isModulePath(h.module)) h.module = abs(h.module);
    const fs = h.capabilities?.fs;
    if (fs) {
      fs.read = fs.read.map(abs);
      fs.write = fs.write.map(abs);
    }
  }
  const tls = config.bus.embedded.lan?.tls;
  if (tls) {
    tls.cert = abs(tls.cert);
    tls.key = abs(tls.key);
  }
  const httpTls = config.http.tls;
  if (httpTls?.cert !== undefined) httpTls.cert = abs(httpTls.cert);
  if (httpTls?.key !== undefined) httpTls.key = abs(httpTls.key);
}
