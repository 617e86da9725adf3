/** `talon config validate FILE`: check a config file and list every problem with its path. */
import { parse, helpText, subcommand, type CommandSpec, type Io } from '../args.ts';
import { TalonError } from '../../errors.ts';

export const spec: CommandSpec = {
  name: 'talon config',
  summary: 'Work with Talon config files.',
  subcommands: [{ name: 'validate', summary: 'check a config file (exit 0 valid, 2 invalid)' }],
};

export const validateSpec: CommandSpec = {
  name: 'talon config validate',
  summary: 'Check a config file against the schema and Talon\'s rules; print OK or every problem as <path>: <reason>.',
  positionals: [{ name: 'FILE', required: true, description: 'the config file (YAML or JSON)' }],
  options: {
    json: { type: 'boolean', description: 'print {ok, source, config} or {ok: false, error: {code, message, details}}' },
  },
  notes: 'The file is checked as written: TALON_* environment overrides are not applied.',
};

export async function main(argv: string[], io: Io): Promise<number> {
  const sub = subcommand(spec, argv);
  if (!sub) {
    io.out(helpText(spec));
    return 0;
  }
  const args = parse(validateSpec, sub.rest);
  if (args.help) {
    io.out(helpText(validateSpec));
    return 0;
  }
  const file = args.positionals[0]!;
  const { loadConfig } = await import('../../config/load.ts');
  try {
    const { config, source } = loadConfig({ file, env: {}, cwd: io.cwd });
    if (args.values.json) io.out(`${JSON.stringify({ ok: true, source, config }, null, 2)}\n`);
    else io.out(`OK: ${source} (${config.hands.length} Hand${config.hands.length === 1 ? '' : 's'}, data in ${config.dataDir})\n`);
    return 0;
  } catch (err) {
    if (args.values.json && err instanceof TalonError) {
      io.out(`${JSON.stringify({ ok: false, error: err.toJSON() }, null, 2)}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
