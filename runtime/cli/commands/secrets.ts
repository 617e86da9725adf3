/** `talon secrets set NAME` (value on stdin) | `list` | `delete NAME`: sealed secrets, live or on a stopped data folder. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseSubcommand, type CommandSpec, type Io } from '../args.ts';
import { DaemonClient } from '../client.ts';
import { dataDir, DATA_OPTIONS } from './hands.ts';
import { TalonError } from '../../core/errors.ts';
import type { SecretStore } from '../../secrets/sealed.ts';

const NAME = [{ name: 'NAME', required: true, description: "the secret's name (letters, digits, _ . -)" }];

export const spec: CommandSpec = {
  name: 'talon secrets',
  summary: 'Sealed secrets (API keys, passwords), encrypted with a key derived from the device key.',
  subcommands: [
    { name: 'set', summary: 'seal the value read from stdin under NAME' },
    { name: 'list', summary: 'the names (never the values)' },
    { name: 'delete', summary: 'delete NAME' },
  ],
};

const SUBSPECS: Record<string, CommandSpec> = {
  set: {
    name: 'talon secrets set',
    summary: 'Seal the value read from stdin (one line) under NAME.',
    positionals: NAME,
    options: DATA_OPTIONS,
    notes: 'example: printf %s "$OPENAI_API_KEY" | talon secrets set openai-key',
  },
  list: { name: 'talon secrets list', summary: "List the sealed secrets' names.", options: DATA_OPTIONS },
  delete: {
    name: 'talon secrets delete',
    summary: 'Delete a sealed secret.',
    positionals: NAME,
    options: DATA_OPTIONS,
  },
};

async function withSecrets<T>(dir: string, fn: (s: SecretStore) => Promise<T>): Promise<T> {
  const [{ Store }, { DeviceKey, DEVICE_KEY_FILE }, { SecretStore: Secrets }] = await Promise.all([
    import('../../store/store.ts'),
    import('../../secrets/device-key.ts'),
    import('../../secrets/sealed.ts'),
  ]);
  if (!existsSync(join(dir, DEVICE_KEY_FILE)))
    throw new TalonError('NOT_FOUND', `no device key in ${dir} (run Talon there once first)`);
  const store = await Store.open(dir);
  try {
    return await fn(new Secrets(store, DeviceKey.loadOrCreate(dir)));
  } finally {
    await store.close();
  }
}

export async function main(argv: string[], io: Io, stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const picked = parseSubcommand(spec, SUBSPECS, argv, io);
  if (!picked) return 0;
  const { spec: s, args } = picked;
  const sub = { name: picked.name };
  const dir = await dataDir(args, io);
  let client: DaemonClient | null = null;
  try {
    client = DaemonClient.open(dir);
  } catch (err) {
    if (!(err instanceof TalonError && err.code === 'NOT_RUNNING')) throw err;
  }
  const name = args.positionals[0];
  switch (sub.name) {
    case 'list': {
      const list = client
        ? (await client.request<{ secrets: Array<{ name: string; updatedAt: number }> }>('GET', '/api/v1/secrets'))
            .secrets
        : await withSecrets(dir, (x) => x.list());
      io.out(
        args.values.json
          ? `${JSON.stringify(list)}\n`
          : list.length === 0
            ? 'no secrets\n'
            : list.map((x) => `${x.name}  ${new Date(x.updatedAt).toISOString()}\n`).join(''),
      );
      return 0;
    }
    case 'set': {
      let text = '';
      for await (const chunk of stdin) text += chunk.toString();
      const value = text.replace(/\r?\n$/, '');
      if (value.length === 0)
        throw new TalonError('USAGE', 'give the secret on stdin, e.g. printf %s "$KEY" | talon secrets set NAME');
      if (client) await client.request('PUT', `/api/v1/secrets/${encodeURIComponent(name!)}`, { value });
      else
        await withSecrets(dir, async (x) => {
          (await import('../../secrets/sealed.ts')).SecretStore.checkName(name!);
          await x.set(name!, value);
        });
      io.out(`sealed ${name}\n`);
      return 0;
    }
    default: {
      const r = client
        ? await client.request<{ deleted: boolean }>('DELETE', `/api/v1/secrets/${encodeURIComponent(name!)}`)
        : { deleted: await withSecrets(dir, (x) => x.delete(name!)) };
      io.out(r.deleted ? `deleted ${name}\n` : `no secret named ${name}\n`);
      return 0;
    }
  }
}
