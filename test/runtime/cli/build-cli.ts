/**
 * Builds the CLI bundle (runtime/cli/main.ts → talon.cjs) the way image/bundle.ts does,
 * into a temporary folder, so the CLI tests run the current source as the shipped bundle.
 */
import { build } from 'esbuild';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { common } from '../../../image/bundle.ts';

const root = join(import.meta.dirname, '..', '..', '..');

export async function buildCli(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-cli-'));
  const outfile = join(dir, 'talon.cjs');
  await build({ ...common, logLevel: 'error', entryPoints: [join(root, 'runtime/cli/main.ts')], outfile });
  return outfile;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  buildCli().then(
    (f) => console.log(f),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
