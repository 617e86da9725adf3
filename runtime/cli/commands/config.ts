/**
 * `talon config validate FILE`: check a config file and list every problem with its path.
 * `talon config apply FILE`: validate it here, then apply it to the running daemon as a new
 * config generation (PUT /api/v1/config): a change to `hands` only starts, stops or restarts
 * just those Hands; other sections restart the kernel in process.
 * `talon config hash-password`: hash a password (read from stdin) for `bus.embedded.lan.users`.
 */
import { parse, helpText, subcommand, type CommandSpec, type Io } from '../args.ts';
import { TalonError } from '../../core/errors.ts';

export const spec: CommandSpec = {
  name: 'talon config',
  summary: 'Work with Talon config files.',
  subcommands: [
    { name: 'validate', summary: 'check a config file (exit 0 valid, 2 invalid)' },
    {
      name: 'apply',
      summary:
        'apply a config file to the running daemon (a new generation; Hands-only changes restart just those Hands)',
    },
    { name: 'hash-password', summary: 'hash a password read from stdin, for bus.embedded.lan.users[].passwordHash' },
  ],
};

export const validateSpec: CommandSpec = {
  name: 'talon config validate',
  summary: "Check a config file against the schema and Talon's rules; print OK or every problem as <path>: <reason>.",
  positionals: [{ name: 'FILE', required: true, description: 'the config file (YAML or JSON)' }],
  options: {
    json: {
      type: 'boolean',
      description: 'print {ok, source, config} or {ok: false, error: {code, message, details}}',
    },
  },
  notes: 'The file is checked as written: TALON_* environment overrides are not applied.',
};

export const applySpec: CommandSpec = {
  name: 'talon config apply',
  summary: 'Validate a config file, then apply it to the running daemon as a new config generation.',
  positionals: [
    {
      name: 'FILE',
      required: true,
      description: 'the config file (YAML or JSON); relative paths in it are taken from its folder',
    },
  ],
  options: {
    data: {
      type: 'string',
      short: 'd',
      value: 'DIR',
      description: "the running daemon's data folder (default: the file's dataDir)",
    },
    json: { type: 'boolean', description: 'print {generation, changed, restarted}' },
  },
  notes:
    "The daemon keeps its data folder: the file's dataDir is replaced by the one in force. Roll back with the web admin or POST /api/v1/config/rollback.",
};

export const hashSpec: CommandSpec = {
  name: 'talon config hash-password',
  summary: 'Read a password from stdin (one line) and print its scrypt hash for bus.embedded.lan.users[].passwordHash.',
  notes: 'example: printf %s "$PASSWORD" | talon config hash-password',
};

async function apply(argv: string[], io: Io): Promise<number> {
  const args = parse(applySpec, argv);
  if (args.help) {
    io.out(helpText(applySpec));
    return 0;
  }
  const { loadConfig } = await import('../../config/load.ts');
  const { DaemonClient } = await import('../client.ts');
  const data = args.values.data as string | undefined;
  const { config } = loadConfig({
    file: args.positionals[0]!,
    env: {},
    cwd: io.cwd,
    ...(data !== undefined ? { dataDir: data } : {}),
  });
  const client = DaemonClient.open(config.dataDir);
  const current = await client.request<{ generation: number; config: { dataDir: string } }>('GET', '/api/v1/config');
  config.dataDir = current.config.dataDir;
  const r = await client.request<{ generation: number; changed: boolean; restarted: string[] }>(
    'PUT',
    '/api/v1/config',
    { config, baseGeneration: current.generation },
  );
  if (args.values.json) io.out(`${JSON.stringify(r)}\n`);
  else if (!r.changed) io.out(`unchanged: generation ${r.generation} is already this config\n`);
  else
    io.out(
      `applied as generation ${r.generation}${r.restarted.length > 0 ? `; restarted: ${r.restarted.join(', ')}` : ''}\n`,
    );
  return 0;
}

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
  if (sub.name === 'apply') return apply(sub.rest, io);
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
    else
      io.out(
        `OK: ${source} (${config.hands.length} Hand${config.hands.length === 1 ? '' : 's'}, data in ${config.dataDir})\n`,
      );
    return 0;
  } catch (err) {
    if (args.values.json && err instanceof TalonError) {
      io.out(`${JSON.stringify({ ok: false, error: err.toJSON() }, null, 2)}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
