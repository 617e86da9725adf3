/**
 * Text for a Hand's CLI commands (hands/<id>/cli.ts): the same table, time and one-line forms in every Hand's output.
 * Pure functions; imported by the CLI side only.
 */
import type { HandCommandArgs } from './surface.ts';

/** a time as ISO 8601 to the second (`2026-12-03T15:04:05Z`), `-` when unknown */
export const iso = (t: number | undefined): string =>
  t === undefined ? '-' : new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** one line of at most `max` characters: white space folded, the rest cut with `…`; `-` when empty */
export function oneLine(s: string | undefined, max = 60): string {
  if (s === undefined || s === '') return '-';
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** rows as columns padded to their widest cell (the last column is not padded), two spaces apart */
export function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')).join('\n')}\n`;
}

/** `--json`: the value, indented; exit code 0 */
export function printJson(a: HandCommandArgs, v: unknown): number {
  a.io.out(`${JSON.stringify(v, null, 2)}\n`);
  return 0;
}
