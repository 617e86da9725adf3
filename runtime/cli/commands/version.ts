/** `talon version`: Talon's version (baked in at build time), the commit when known, Node's version. */
import { parse, helpText, type CommandSpec, type Io } from '../args.ts';
import { VERSION, COMMIT } from '../../version.ts';

export const spec: CommandSpec = {
  name: 'talon version',
  summary: 'Print the Talon version, the build commit and the Node version.',
  options: { json: { type: 'boolean', description: 'print JSON' } },
};

export function versionInfo(): { talon: string; commit: string | null; node: string; platform: string; arch: string } {
  return {
    talon: VERSION,
    commit: COMMIT && COMMIT !== 'unknown' ? COMMIT : null,
    node: process.version,
    platform: process.platform,
    arch: process.arch,
  };
}

export async function main(argv: string[], io: Io): Promise<number> {
  const args = parse(spec, argv);
  if (args.help) {
    io.out(helpText(spec));
    return 0;
  }
  const v = versionInfo();
  if (args.values.json) {
    io.out(`${JSON.stringify(v)}\n`);
  } else {
    io.out(`talon ${v.talon}${v.commit ? ` (${v.commit})` : ''}\nnode ${v.node} ${v.platform}-${v.arch}\n`);
  }
  return 0;
}
