/**
 * `talon monitoring replay FILE.csv --sensor ID [--settings FILE] [--json]`: runs the
 * Monitoring Hand's own rules and detectors (hands/monitoring/replay.ts) over recorded
 * `timestamp,value` rows at the data's own time — no daemon, no waiting — and prints the alert
 * events the Hand would have published, so rules can be tuned before a device goes out.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse, helpText, subcommand, UsageError, type CommandSpec, type Io } from '../args.ts';
import { TalonError } from '../../core/errors.ts';

export const spec: CommandSpec = {
  name: 'talon monitoring',
  summary: 'Work with the Monitoring Hand offline.',
  subcommands: [{ name: 'replay', summary: 'replay recorded timestamp,value data through the Hand\'s rules and print the alerts it would raise' }],
};

export const replaySpec: CommandSpec = {
  name: 'talon monitoring replay',
  summary: 'Replay recorded readings of one sensor through the Monitoring Hand\'s detectors and rules, at the data\'s own time, and print the alerts it would have raised.',
  positionals: [{ name: 'FILE', required: true, description: 'CSV of timestamp,value rows (header optional; ISO 8601 / "YYYY-MM-DD hh:mm:ss" UTC, or epoch s / ms); - reads stdin' }],
  options: {
    sensor: { type: 'string', value: 'ID', description: 'the sensor id the data belongs to (required): picks the settings entry and the sensor kind\'s defaults' },
    unit: { type: 'string', value: 'UNIT', description: 'the sensor\'s unit (%, °C, B/s, MB …), for the kind defaults' },
    settings: { type: 'string', value: 'FILE', description: 'the Monitoring Hand\'s settings (JSON or YAML; default: an unconfigured Hand\'s defaults)' },
    json: { type: 'boolean', description: 'print {sensor, profile, samples, skipped, problems, events, onsets} as JSON' },
  },
  notes: 'Exit 0 when replayed (alerts or not); 2 on a bad file or option. An unconfigured sensor gets the data\'s median spacing as its interval.',
};

function readText(file: string, io: Io): string {
  try {
    return readFileSync(file === '-' ? 0 : resolve(io.cwd, file), 'utf8');
  } catch (err) {
    throw new TalonError('NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`);
  }
}

async function replayCmd(argv: string[], io: Io): Promise<number> {
  const args = parse(replaySpec, argv);
  if (args.help) {
    io.out(helpText(replaySpec));
    return 0;
  }
  const sensor = args.values.sensor as string | undefined;
  if (!sensor) throw new UsageError('--sensor ID is required', replaySpec);
  const { parseCsv, replay } = await import('../../../hands/monitoring/replay.ts');
  let settings: unknown;
  const sf = args.values.settings as string | undefined;
  if (sf !== undefined) {
    const text = readText(sf, io);
    try {
      settings = /\.json$/i.test(sf) ? JSON.parse(text) : (await import('yaml')).parse(text);
    } catch (err) {
      throw new TalonError('CONFIG_PARSE', `${sf}: ${(err as Error).message}`);
    }
  }
  const { rows, problems: csvProblems } = parseCsv(readText(args.positionals[0]!, io));
  if (rows.length === 0) throw new TalonError('CONFIG_INVALID', `${args.positionals[0]}: no timestamp,value rows${csvProblems[0] ? ` (line ${csvProblems[0].line}: ${csvProblems[0].message})` : ''}`);
  const unit = args.values.unit as string | undefined;
  const r = replay(rows, { sensor, ...(unit !== undefined ? { unit } : {}), settings });
  if (args.values.json) {
    io.out(`${JSON.stringify({ sensor: r.sensor, profile: r.profile, samples: r.samples, skipped: r.skipped, csvProblems, problems: r.problems, events: r.events, onsets: r.onsets }, null, 2)}\n`);
    return 0;
  }
  for (const p of csvProblems.slice(0, 10)) io.err(`${args.positionals[0]}:${p.line}: ${p.message}\n`);
  if (csvProblems.length > 10) io.err(`… ${csvProblems.length - 10} more bad lines\n`);
  for (const p of r.problems) io.err(`settings: ${p.message}\n`);
  const iso = (t: number): string => new Date(t).toISOString().replace('.000Z', 'Z');
  for (const e of r.events) io.out(`${iso(e.ts)}  ${e.state.padEnd(8)}  ${e.severity.padEnd(8)}  ${e.rule.padEnd(8)}  ${e.message}\n`);
  const firing = r.events.filter((e) => e.state === 'firing').length;
  const span = rows.length > 1 ? `${iso(rows[0]!.ts)} – ${iso(rows[rows.length - 1]!.ts)}` : iso(rows[0]!.ts);
  io.out(`${sensor}: ${r.samples} readings (${span}), profile ${r.profile ?? 'none'}, interval ${r.entry.intervalMs} ms: ${firing} alert${firing === 1 ? '' : 's'} fired, ${r.events.length} event${r.events.length === 1 ? '' : 's'}${r.skipped ? `, ${r.skipped} rows skipped (time did not advance)` : ''}\n`);
  return 0;
}

export async function main(argv: string[], io: Io): Promise<number> {
  const sub = subcommand(spec, argv);
  if (!sub) {
    io.out(helpText(spec));
    return 0;
  }
  return replayCmd(sub.rest, io);
}
