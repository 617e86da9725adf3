/**
 * `talon monitoring replay FILE.csv --sensor ID [--settings FILE] [--json]`: runs the
 * Monitoring Hand's own rules and detectors (./replay.ts) over recorded `timestamp,value` rows
 * at the data's own time — no daemon, no waiting — and prints the alert events the Hand would
 * have published, so rules can be tuned before a device goes out. Declared in ./surface.ts;
 * the CLI parses the options and prints the help from that declaration.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { HandCommandArgs } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';

function readText(file: string, cwd: string): string {
  try {
    return readFileSync(file === '-' ? 0 : resolve(cwd, file), 'utf8');
  } catch (err) {
    throw new TalonError('NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`);
  }
}

export async function replayCommand({ values, positionals, io, usage }: HandCommandArgs): Promise<number> {
  const sensor = values.sensor as string | undefined;
  if (!sensor) return usage('--sensor ID is required');
  const { parseCsv, replay } = await import('./replay.ts');
  let settings: unknown;
  const sf = values.settings as string | undefined;
  if (sf !== undefined) {
    const text = readText(sf, io.cwd);
    try {
      settings = /\.json$/i.test(sf) ? JSON.parse(text) : (await import('yaml')).parse(text);
    } catch (err) {
      throw new TalonError('CONFIG_PARSE', `${sf}: ${(err as Error).message}`);
    }
  }
  const file = positionals[0]!;
  const { rows, problems: csvProblems } = parseCsv(readText(file, io.cwd));
  if (rows.length === 0)
    throw new TalonError(
      'CONFIG_INVALID',
      `${file}: no timestamp,value rows${csvProblems[0] ? ` (line ${csvProblems[0].line}: ${csvProblems[0].message})` : ''}`,
    );
  const unit = values.unit as string | undefined;
  const r = replay(rows, { sensor, ...(unit !== undefined ? { unit } : {}), settings });
  if (values.json) {
    io.out(
      `${JSON.stringify({ sensor: r.sensor, profile: r.profile, samples: r.samples, skipped: r.skipped, csvProblems, problems: r.problems, events: r.events, onsets: r.onsets }, null, 2)}\n`,
    );
    return 0;
  }
  for (const p of csvProblems.slice(0, 10)) io.err(`${file}:${p.line}: ${p.message}\n`);
  if (csvProblems.length > 10) io.err(`… ${csvProblems.length - 10} more bad lines\n`);
  for (const p of r.problems) io.err(`settings: ${p.message}\n`);
  const iso = (t: number): string => new Date(t).toISOString().replace('.000Z', 'Z');
  for (const e of r.events)
    io.out(`${iso(e.ts)}  ${e.state.padEnd(8)}  ${e.severity.padEnd(8)}  ${e.rule.padEnd(8)}  ${e.message}\n`);
  const firing = r.events.filter((e) => e.state === 'firing').length;
  const span = rows.length > 1 ? `${iso(rows[0]!.ts)} – ${iso(rows[rows.length - 1]!.ts)}` : iso(rows[0]!.ts);
  io.out(
    `${sensor}: ${r.samples} readings (${span}), profile ${r.profile ?? 'none'}, interval ${r.entry.intervalMs} ms: ${firing} alert${firing === 1 ? '' : 's'} fired, ${r.events.length} event${r.events.length === 1 ? '' : 's'}${r.skipped ? `, ${r.skipped} rows skipped (time did not advance)` : ''}\n`,
  );
  return 0;
}
