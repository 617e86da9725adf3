/**
 * `talon <hand id> <command>`: the CLI commands a Hand declares in its surface
 * (hands/sdk/surface.ts `cli`), parsed, helped and reported like every other command from their
 * declaration (./args.ts), so a Hand's command lives in the Hand's folder.
 */
import type { AnySurface, HandCommand } from '../../hands/sdk/surface.ts';
import { helpText, parse, subcommand, UsageError, type CommandSpec, type Io } from './args.ts';

/** the command specs of a Hand's CLI: the parent (`talon <id>`) and one per subcommand */
export function handCommandSpecs(surface: AnySurface): {
  spec: CommandSpec;
  subs: Map<string, { spec: CommandSpec; command: HandCommand }>;
} {
  const cli = surface.cli!;
  const spec: CommandSpec = {
    name: `talon ${surface.id}`,
    summary: cli.description,
    subcommands: cli.commands.map((c) => ({ name: c.name, summary: c.summary })),
  };
  const subs = new Map<string, { spec: CommandSpec; command: HandCommand }>();
  for (const c of cli.commands) {
    subs.set(c.name, {
      command: c,
      spec: {
        name: `talon ${surface.id} ${c.name}`,
        summary: c.description,
        ...(c.positionals ? { positionals: c.positionals } : {}),
        ...(c.options ? { options: c.options } : {}),
        ...(c.notes ? { notes: c.notes } : {}),
      },
    });
  }
  return { spec, subs };
}

/** `talon <id> …` for a Hand with CLI commands: the same shape as a command module's main */
export async function runHandCommand(surface: AnySurface, argv: string[], io: Io): Promise<number> {
  const { spec, subs } = handCommandSpecs(surface);
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
  return command.run({
    values: args.values,
    positionals: args.positionals,
    io,
    usage: (message: string): never => {
      throw new UsageError(message, subSpec);
    },
  });
}
