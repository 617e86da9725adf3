/**
 * `talon config validate FILE`: check a config file and list every problem with its path.
 * `talon config hash-password`: hash a password (read from stdin) for `bus.embedded.lan.users`.
 */
import { parse, helpText, subcommand, type CommandSpec, type Io } from '../args.ts';
import { TalonError } from '../../errors.ts';

export const spec: CommandSpec = {
  name: 'talon config',
  summary: 'Work with Talon config files.',
  subcommands: [
    { name: 'validate', summary: 'check a config file (exit 0 valid, 2 invalid)' },
    { name: 'hash-password', summary: 'hash a password read from stdin, for bus.embedded.lan.users[].passwordHash' },
  ],
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

export const hashSpec: CommandSpec = {
  name: 'talon config hash-password',
  summary: 'Read a password from stdin (one line) and print its scrypt hash for bus.embedded.lan.users[].passwordHash.',
  notes: 'example: printf %s "$PASSWORD" | talon config hash-password',
};

async function hashPassword(argv: string[], io: Io, stdin: NodeJS.ReadableStream): Promise<number> {
  const args = parse(hashSpec, argv);
  if (args.help) {
    io.out(helpText(hashSpec));
    return 0;
  }
  let text = '';
  for await (const chunk of stdin) text += chunk.toString();
  const password = text.replace(/\r?\n$/, '');
  if (password.length < 8) throw new TalonError('USAGE', 'the password on stdin must be at least 8 characters');
  const { hashPassword: hash } = await import('../../secrets/password.ts');
  io.out(`${hash(password)}\n`);
  return 0;
}

export async function main(argv: string[], io: Io, stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const sub = subcommand(spec, argv);
  if (!sub) {
    io.out(helpText(spec));
    return 0;
  }
  if (sub.name === 'hash-password') return hashPassword(sub.rest, io, stdin);
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
