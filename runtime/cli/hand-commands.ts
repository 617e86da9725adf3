/**
 * `talon <hand id> <command>` (and `talon <alias> <command>` when the surface names one): the CLI commands a Hand
 * declares in its surface (hands/sdk/surface.ts `cli`), parsed, helped and reported like every other command from
 * their declaration (./args.ts), so a Hand's command lives in the Hand's folder. A command declared `daemon: true`
 * gets the data-folder options and a client of the running daemon.
 */
import type { AnySurface, HandCommand, HandDaemon } from '../../hands/sdk/surface.ts';
import { helpText, parse, subcommand, UsageError, type CommandSpec, type Io } from './args.ts';

/** the command specs of a Hand's CLI: the parent (`talon <id>`) and one per subcommand */
export function handCommandSpecs(
  surface: AnySurface,
  as: string = surface.id,
  daemonOptions: CommandSpec['options'] = {},
): {
  spec: CommandSpec;
  subs: Map<string, { spec: CommandSpec; command: HandCommand }>;
} {
  const cli = surface.cli!;
  const spec: CommandSpec = {
    name: `talon ${as}`,
    summary: cli.description,
    subcommands: cli.commands.map((c) => ({ name: c.name, summary: c.summary })),
  };
  const subs = new Map<string, { spec: CommandSpec; command: HandCommand }>();
  for (const c of cli.commands) {
    const options = c.daemon ? { ...daemonOptions, ...c.options } : c.options;
    subs.set(c.name, {
      command: c,
      spec: {
        name: `talon ${as} ${c.name}`,
        summary: c.description,
        ...(c.positionals ? { positionals: c.positionals } : {}),
        ...(options ? { options } : {}),
        ...(c.notes ? { notes: c.notes } : {}),
      },
    });
  }
  return { spec, subs };
}

/** `talon <id> …` for a Hand with CLI commands: the same shape as a command module's main */
export async function runHandCommand(
  surface: AnySurface,
  argv: string[],
  io: Io,
  as: string = surface.id,
): Promise<number> {
  const needsDaemon = surface.cli!.commands.some((c) => c.daemon);
  const hands = needsDaemon ? await import('./commands/hands.ts') : null;
  const { spec, subs } = handCommandSpecs(surface, as, hands?.DATA_OPTIONS);
  const sub = subcommand(spec, argv);
  if (!sub) {
    io.out(helpText(spec));
    return 0;
  }
  const { spec: subSpec, command } = subs.get(sub.name)!;
  const args = parse(subSpec, sub.rest);
  if (args.help) {
    io.out(helpText(subSpec));
    return 0;
  }
  let daemon: HandDaemon | undefined;
  if (command.daemon && hands) {
    const { DaemonClient } = await import('./client.ts');
    let client: InstanceType<typeof DaemonClient> | undefined;
    daemon = {
      request: async <T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> => {
        client ??= DaemonClient.open(await hands.dataDir(args, io));
        return client.request<T>(method, path, body);
      },
    };
  }
  return command.run({
    values: args.values,
    positionals: args.positionals,
    io,
    usage: (message: string): never => {
      throw new UsageError(message, subSpec);
    },
    ...(daemon ? { daemon } : {}),
  });
}
