/**
 * `talon`: the entry of dist/talon.cjs. Starts fast: it reads the command name and loads
 * only that command's module (`await import()`; esbuild keeps each one lazy in the bundle).
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.
 * Errors print as `talon: <message> (<CODE>)`; stack traces only with TALON_DEBUG=1.
 */
import { TalonError } from '../core/errors.ts';
import { isBundled } from '../paths.ts';
import { processIo, UsageError, type Io } from './args.ts';
import { setBuiltinHands } from '../config/builtins.ts';
import { BUILTIN_HANDS, BUILTIN_SURFACES } from '../../hands/catalog.ts';
import type { AnySurface } from '../../hands/sdk/surface.ts';

export interface CommandModule {
  main(argv: string[], io: Io): Promise<number>;
}

interface CommandEntry {
  summary: string;
  load(): Promise<CommandModule>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  run: { summary: 'run the Talon daemon in the foreground', load: () => import('./commands/run.ts') },
  hands: {
    summary: 'list, inspect, start, stop and tail Hands of the running daemon',
    load: () => import('./commands/hands.ts'),
  },
  config: { summary: 'check a config file', load: () => import('./commands/config.ts') },
  audit: { summary: 'read, verify and export the signed audit log', load: () => import('./commands/audit.ts') },
  llm: { summary: 'chat through the LLM router, list its providers', load: () => import('./commands/llm.ts') },
  tools: {
    summary: 'list the tools, call one as the admin',
    load: () => import('./commands/tools.ts').then((m) => m.tools),
  },
  approvals: {
    summary: 'tool calls waiting for a person: list, approve, deny',
    load: () => import('./commands/tools.ts').then((m) => m.approvals),
  },
  runs: {
    summary: "a Hand's agent runs, one run's steps",
    load: () => import('./commands/tools.ts').then((m) => m.runs),
  },
  secrets: { summary: 'seal API keys and passwords on the device', load: () => import('./commands/secrets.ts') },
  keys: { summary: 'show the device id and its public key', load: () => import('./commands/keys.ts') },
  fleet: {
    summary: 'provision devices over MQTT: fleet keys, devices, signed bundles',
    load: () => import('./commands/fleet.ts'),
  },
  image: {
    summary: 'build a flashable device image (rpi4, rpi5, generic-arm64) or a rootfs overlay tar',
    load: () => import('./commands/image.ts'),
  },
  version: { summary: 'print the Talon and Node versions', load: () => import('./commands/version.ts') },
};

/**
 * The kernel's commands, then `talon <hand id>` for each Hand whose surface declares CLI
 * commands (hands/sdk/surface.ts; run by ./hand-commands.ts). A Hand cannot take a kernel
 * command's name.
 */
export function commands(surfaces: readonly AnySurface[] = BUILTIN_SURFACES): Record<string, CommandEntry> {
  const all: Record<string, CommandEntry> = { ...COMMANDS };
  for (const s of surfaces) {
    if (!s.cli) continue;
    // `talon <alias>` (what people type, `talon schedule`) as well as `talon <hand id>`
    for (const name of [s.id, ...(s.cli.alias ? [s.cli.alias] : [])]) {
      if (Object.hasOwn(all, name)) continue;
      all[name] = {
        summary: s.cli.summary,
        load: async () => {
          const { runHandCommand } = await import('./hand-commands.ts');
          return { main: (argv, io) => runHandCommand(s, argv, io, name) };
        },
      };
    }
  }
  // a Hand's commands people type without its name (`talon notify`), after every kernel and Hand command
  for (const s of surfaces) {
    for (const name of s.cli?.topLevel ?? []) {
      const c = s.cli!.commands.find((x) => x.name === name);
      if (!c || Object.hasOwn(all, name)) continue;
      const as = s.cli!.alias ?? s.id;
      all[name] = {
        summary: c.summary,
        load: async () => {
          const { runHandCommand } = await import('./hand-commands.ts');
          return { main: (argv, io) => runHandCommand(s, [name, ...argv], io, as) };
        },
      };
    }
  }
  // `version` last, as it always was
  const { version, ...rest } = all;
  return version ? { ...rest, version } : rest;
}

export function topHelp(surfaces: readonly AnySurface[] = BUILTIN_SURFACES): string {
  const all = commands(surfaces);
  const w = Math.max(...Object.keys(all).map((k) => k.length));
  return [
    'usage: talon <command> [options]',
    '',
    'Talon runs autonomous Hands on an edge device.',
    '',
    'commands:',
    ...Object.entries(all).map(([name, c]) => `  ${name.padEnd(w)}  ${c.summary}`),
    '',
    'options:',
    '  -h, --help     show this help',
    '  -V, --version  print the version',
    '',
    "Run `talon <command> --help` for a command's options.",
    'Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.',
    '',
  ].join('\n');
}

/** Runs one command line; never throws; returns the exit code. */
export async function main(
  argv: string[],
  io: Io = processIo,
  surfaces: readonly AnySurface[] = BUILTIN_SURFACES,
): Promise<number> {
  // the composition root tells the config layer which Hands are built in (it names none itself)
  setBuiltinHands(BUILTIN_HANDS);
  const [name, ...rest] = argv;
  const all = commands(surfaces);
  try {
    if (name === undefined) {
      io.err(topHelp(surfaces));
      return 2;
    }
    if (name === '--help' || name === '-h') {
      io.out(topHelp(surfaces));
      return 0;
    }
    if (name === 'help') {
      const sub = rest[0];
      if (sub === undefined) {
        io.out(topHelp(surfaces));
        return 0;
      }
      const entry = Object.hasOwn(all, sub) ? all[sub] : undefined;
      if (!entry) return usage(io, `unknown command "${sub}"`, surfaces);
      return await (await entry.load()).main([...rest.slice(1), '--help'], io);
    }
    if (name === '--version' || name === '-V') return await (await COMMANDS.version!.load()).main([], io);
    const entry = Object.hasOwn(all, name) ? all[name] : undefined;
    if (!entry)
      return usage(io, name.startsWith('-') ? `unknown option ${name}` : `unknown command "${name}"`, surfaces);
    const mod = await entry.load();
    return await mod.main(rest, io);
  } catch (err) {
    return reportError(err, io);
  }
}

function usage(io: Io, message: string, surfaces: readonly AnySurface[]): number {
  io.err(`talon: ${message}\n\n${topHelp(surfaces)}`);
  return 2;
}

/** Prints an error the way every command does and returns its exit code. */
export function reportError(err: unknown, io: Io): number {
  const e = TalonError.from(err);
  const [first, ...more] = e.message.split('\n');
  if (e instanceof UsageError) {
    io.err(
      `talon: ${e.message}\n${e.usage}\n(see ${e.usage.replace(/^usage: (\S+(?: [a-z][\w-]*)*).*$/, '$1')} --help)\n`,
    );
  } else {
    io.err(`talon: ${first} (${e.code})${more.length ? `\n${more.join('\n')}` : ''}\n`);
  }
  if (io.env.TALON_DEBUG === '1') {
    const stack = (err as Error)?.stack ?? String(err);
    io.err(`${stack}\n`);
    const cause = (err as { cause?: unknown })?.cause;
    if (cause) io.err(`cause: ${(cause as Error)?.stack ?? String(cause)}\n`);
  }
  return e.exitCode;
}

// in the bundle this file is the entry; from source (tsx runtime/cli/main.ts) it is when run directly
const isEntry = isBundled || (process.argv[1] !== undefined && import.meta.filename === process.argv[1]);

if (isEntry) {
  // `talon hands logs x -f | head`: a closed pipe is the reader's choice, not an error
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const argv = process.argv.slice(2);
  void main(argv).then((code) => {
    if (argv[0] === 'run') process.exit(code); // the daemon has stopped: do not wait on stray handles
    process.exitCode = code;
  });
}
