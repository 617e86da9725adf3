/** `talon keys show`: the device's identity — id and Ed25519 public key — for verifying its audit log elsewhere. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseSubcommand, type CommandSpec, type Io } from '../args.ts';
import { dataDir, DATA_OPTIONS } from './hands.ts';
import { TalonError } from '../../core/errors.ts';

export const spec: CommandSpec = {
  name: 'talon keys',
  summary: "Show the device's keys.",
  subcommands: [
    {
      name: 'show',
      summary: 'the device id and its Ed25519 public key (base64), as `talon audit verify-file --public-key` takes it',
    },
  ],
};

export const showSpec: CommandSpec = {
  name: 'talon keys show',
  summary: 'Print the device id and its Ed25519 public key (base64, 32 bytes). Works with or without a running Talon.',
  options: DATA_OPTIONS,
};

export async function main(argv: string[], io: Io): Promise<number> {
  const picked = parseSubcommand(spec, { show: showSpec }, argv, io);
  if (!picked) return 0;
  const { args } = picked;
  const dir = await dataDir(args, io);
  const { DeviceKey, DEVICE_KEY_FILE } = await import('../../secrets/device-key.ts');
  const file = join(dir, DEVICE_KEY_FILE);
  if (!existsSync(file)) {
    throw new TalonError(
      'NOT_FOUND',
      `no device key in ${dir} (it is made the first time Talon runs there: \`talon run --data ${dir}\`)`,
    );
  }
  const key = DeviceKey.loadOrCreate(dir);
  const info = { deviceId: key.id, publicKey: key.publicKey.toString('base64'), algorithm: 'ed25519', file };
  io.out(
    args.values.json
      ? `${JSON.stringify(info)}\n`
      : `device ${info.deviceId}\npublic key (ed25519, base64) ${info.publicKey}\nkey file ${file}\n`,
  );
  return 0;
}
