/**
 * The CLI's argument handling: a command describes itself once (usage, options,
 * positionals) and gets parsing (node:util parseArgs, strict), `--help`/`-h` and usage
 * errors from that one description.
 */
import { parseArgs } from 'node:util';
import { TalonError } from '../core/errors.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** placeholder shown in help for string options: `DIR`, `N` */
  value?: string;
  description: string;
  /** a string option that may be given more than once: its values arrive joined by newlines */
  multiple?: boolean;
}

export interface CommandSpec {
  /** full command: `talon hands logs` */
  name: string;
  summary: string;
  /** positionals by name, in order */
  positionals?: Array<{ name: string; required: boolean; description?: string }>;
  options?: Record<string, OptionSpec>;
  /** for a command with subcommands: listed in the help */
  subcommands?: Array<{ name: string; summary: string }>;
  /** extra paragraphs at the end of the help */
  notes?: string;
}

/** The process's surroundings, injectable for tests. */
export interface Io {
  out(s: string): void;
  err(s: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const processIo: Io = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  env: process.env,
  cwd: process.cwd(),
};

/** A usage error: exit 2, the message and then the command's usage on stderr. */
export class UsageError extends TalonError {
  readonly usage: string;
  constructor(message: string, spec: CommandSpec) {
    super('USAGE', message);
    this.usage = usageLine(spec);
  }
}

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  /** `--help` was given: the caller prints helpText(spec) and exits 0 */
  help: boolean;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' };

export function parse(spec: CommandSpec, argv: string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries({ ...spec.options, help: HELP })) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple && o.type === 'string' ? { multiple: true } : {}),
    };
  }
  // --help anywhere wins over every other problem with the line
  if (argv.some((a) => a === '--help' || a === '-h')) {
    return { values: {}, positionals: [], help: true };
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError(cleanParseError((err as Error).message), spec);
  }
  const pos = spec.positionals ?? [];
  const required = pos.filter((p) => p.required).length;
  if (parsed.positionals.length < required) {
    const missing = pos
      .slice(parsed.positionals.length)
      .filter((p) => p.required)
      .map((p) => p.name);
    throw new UsageError(`missing ${missing.join(' and ')}`, spec);
  }
  if (parsed.positionals.length > pos.length) {
    throw new UsageError(`unexpected argument "${parsed.positionals[pos.length]}"`, spec);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [k, x] of Object.entries(values)) if (Array.isArray(x)) values[k] = x.join('\n');
  return { values: parsed.values, positionals: parsed.positionals, help: false };
}

function cleanParseError(msg: string): string {
  // node: "Unknown option '--foo'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- \"--foo\"" → first sentence
  const unknown = /^Unknown option '([^']+)'/.exec(msg);
  if (unknown) return `unknown option ${unknown[1]}`;
  const m = /^Option '([^']+)' argument missing/.exec(msg);
  if (m) return `option ${m[1]!.replace(/^-\w, /, '').replace(/ <value>$/, '')} needs a value`;
  return msg.split('. ')[0]!.replace(/\.$/, '');
}

export function usageLine(spec: CommandSpec): string {
  const parts = [spec.name];
  if (spec.subcommands) parts.push('<command>');
  for (const p of spec.positionals ?? []) parts.push(p.required ? p.name : `[${p.name}]`);
  for (const [name, o] of Object.entries(spec.options ?? {})) {
    parts.push(`[--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}]`);
  }
  return `usage: ${parts.join(' ')}`;
}

export function helpText(spec: CommandSpec): string {
  const lines = [usageLine(spec), '', spec.summary];
  if (spec.subcommands?.length) {
    lines.push('', 'commands:');
    const w = Math.max(...spec.subcommands.map((s) => s.name.length));
    for (const s of spec.subcommands) lines.push(`  ${s.name.padEnd(w)}  ${s.summary}`);
  }
  const pos = (spec.positionals ?? []).filter((p) => p.description);
  if (pos.length) {
    lines.push('', 'arguments:');
    const w = Math.max(...pos.map((p) => p.name.length));
    for (const p of pos) lines.push(`  ${p.name.padEnd(w)}  ${p.description}`);
  }
  const opts = Object.entries({ ...spec.options, help: HELP }).map(
    ([name, o]) =>
      [
        `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`,
        o.description,
      ] as const,
  );
  lines.push('', 'options:');
  const w = Math.max(...opts.map(([f]) => f.length));
  for (const [flag, d] of opts) lines.push(`  ${flag.padEnd(w)}  ${d}`);
  if (spec.notes) lines.push('', spec.notes.trim());
  return `${lines.join('\n')}\n`;
}

/**
 * For a command with subcommands: splits `argv` into the subcommand and its arguments.
 * Returns null when the parent's help was asked for.
 */
export function subcommand(spec: CommandSpec, argv: string[]): { name: string; rest: string[] } | null {
  const first = argv[0];
  if (first === undefined) throw new UsageError(`${spec.name} needs a command`, spec);
  if (first === '--help' || first === '-h' || first === 'help') return null;
  if (first.startsWith('-')) throw new UsageError(`${spec.name} needs a command before options (got ${first})`, spec);
  const known = spec.subcommands?.map((s) => s.name) ?? [];
  if (!known.includes(first)) {
    throw new UsageError(`unknown command "${spec.name} ${first}"; expected one of: ${known.join(', ')}`, spec);
  }
  return { name: first, rest: argv.slice(1) };
}

/**
 * `talon <command> <sub> [options]`: picks the subcommand, parses its options, and prints
 * help for `--help` at either level. Returns null when help was printed (exit 0).
 */
export function parseSubcommand(
  spec: CommandSpec,
  subspecs: Record<string, CommandSpec>,
  argv: string[],
  io: Io,
): { name: string; spec: CommandSpec; args: Parsed } | null {
  const sub = subcommand(spec, argv);
  if (!sub) {
    io.out(helpText(spec));
    return null;
  }
  const s = subspecs[sub.name]!;
  const args = parse(s, sub.rest);
  if (args.help) {
    io.out(helpText(s));
    return null;
  }
  return { name: sub.name, spec: s, args };
}

/** Replaces terminal control characters (a Hand's log line may hold escape sequences). */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** `1 entry`, `2 entries`, `0 Hands`: a count with its noun in the right number. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
