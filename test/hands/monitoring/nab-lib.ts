/**
 * The Numenta Anomaly Benchmark (NAB) on the Monitoring Hand: each labelled series of
 * /work/shared/datasets/nab (or $NAB_DIR) is replayed through the Hand's own detectors
 * (replay.ts) and the alert onsets are scored as NAB defines it (nab/sweeper.py, standard
 * profile: A_TP = 1, A_FP = 0.11, A_FN = 1, probationary period 15 % of the rows, at most 750):
 *
 *   - a row in a window gets σ'(−(right − i + 1)/width), σ'(x) = 2/(1 + e^{5x}) − 1 (−1 when x > 3);
 *     a row before the first window −1; a row after a window σ'(|i − prevRight| / (prevWidth − 1));
 *   - rows in the probationary period are not scored;
 *   - each window detected scores A_TP × the best (first) detection in it; a detection outside
 *     every window scores A_FP × its (negative) value; an undetected window scores −A_FN;
 *   - normalised: 100 × (raw − null) / (perfect − null), null = −A_FN × windows (no detections),
 *     perfect = A_TP × σ'(−1) × windows; per category and over all files.
 *
 * A detection is a raise edge of any rule (anomaly, drift, stuck; missing is off: NAB's
 * series are irregular). The settings are NAB_SETTINGS (also test/bench/nab-settings.json, for
 * `talon monitoring replay … --settings`): the generic profile with z 3, alpha 0.01 and the
 * novelty gate over the last 2000 samples (about a week at NAB's 5-minute spacing). Like NAB's
 * own threshold sweep, these three numbers were chosen on this corpus.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseCsv, replay, type Row } from '../../../hands/monitoring/replay.ts';

export { NAB_DIR } from '../../helpers/datasets.ts';
import { NAB_DIR } from '../../helpers/datasets.ts';
export const PROFILE = { tp: 1, fp: 0.11, fn: 1 };

export function nabAvailable(): boolean {
  return existsSync(join(NAB_DIR, 'combined_windows.json'));
}

export function scaledSigmoid(x: number): number {
  return x > 3 ? -1 : 2 / (1 + Math.exp(5 * x)) - 1;
}

export interface FileScore {
  file: string;
  category: string;
  rows: number;
  windows: number;
  detected: number;
  /** onsets outside every window (after the probationary period) */
  falseAlerts: number;
  onsets: number;
  raw: number;
  nullScore: number;
  perfect: number;
}

/** NAB's score of detections (row indices) on one series */
export function scoreFile(
  ts: number[],
  detections: Set<number>,
  windows: Array<[number, number]>,
): Omit<FileScore, 'file' | 'category' | 'onsets'> {
  const n = ts.length;
  const probation = Math.min(Math.floor(0.15 * n), 0.15 * 5000);
  // windows as row ranges
  const wins = windows
    .map(([a, b]) => {
      let l = ts.findIndex((t) => t >= a);
      let r = -1;
      for (let i = n - 1; i >= 0; i--)
        if (ts[i]! <= b) {
          r = i;
          break;
        }
      if (l < 0) l = n;
      return { l, r, width: r - l + 1 };
    })
    .filter((w) => w.width > 0)
    .sort((x, y) => x.l - y.l);
  let raw = 0;
  let falseAlerts = 0;
  const best = new Map<number, number>();
  let wi = 0;
  let prev: { r: number; width: number } | null = null;
  for (let i = 0; i < n; i++) {
    while (wi < wins.length && wins[wi]!.r < i) prev = wins[wi++]!;
    const w = wi < wins.length && wins[wi]!.l <= i ? wins[wi]! : null;
    if (i < probation || !detections.has(i)) continue;
    if (w) {
      const s = scaledSigmoid(-(w.r - i + 1) / w.width);
      best.set(wi, Math.max(best.get(wi) ?? -Infinity, s));
    } else {
      const s = prev === null ? -1 : scaledSigmoid(Math.abs(prev.r - i) / Math.max(1, prev.width - 1));
      raw += PROFILE.fp * s;
      falseAlerts++;
    }
  }
  for (const s of best.values()) raw += PROFILE.tp * s;
  raw -= PROFILE.fn * (wins.length - best.size);
  return {
    rows: n,
    windows: wins.length,
    detected: best.size,
    falseAlerts,
    raw,
    nullScore: -PROFILE.fn * wins.length,
    perfect: PROFILE.tp * scaledSigmoid(-1) * wins.length,
  };
}

/** NAB timestamps: `2015-07-10 14:24:00(.000000)`, UTC */
const nabTs = (s: string): number => Date.parse(`${s.slice(0, 19).replace(' ', 'T')}Z`);

export interface NabOptions {
  /** only these files (`category/name.csv`); all by default */
  files?: string[];
  /** Hand settings for the replay; by default the generic defaults with missing data off */
  settings?: unknown;
  sensor?: string;
}

export const NAB_SETTINGS = {
  sensors: [
    { id: '*', rules: { missingAfterMs: 0, anomaly: { profile: 'generic', z: 3, alpha: 0.01, novelty: 2000 } } },
  ],
};

export function runNab(opts: NabOptions = {}): FileScore[] {
  const windows = JSON.parse(readFileSync(join(NAB_DIR, 'combined_windows.json'), 'utf8')) as Record<
    string,
    string[][]
  >;
  const files =
    opts.files ??
    Object.keys(windows)
      .filter((f) => existsSync(join(NAB_DIR, 'data', f)))
      .sort();
  const out: FileScore[] = [];
  for (const file of files) {
    const { rows } = parseCsv(readFileSync(join(NAB_DIR, 'data', file), 'utf8'));
    const res = replay(rows, { sensor: opts.sensor ?? 'nab.value', settings: opts.settings ?? NAB_SETTINGS });
    const index = new Map<number, number>();
    rows.forEach((r: Row, i) => {
      if (!index.has(r.ts)) index.set(r.ts, i);
    });
    const det = new Set<number>();
    for (const o of res.onsets) {
      const i = index.get(o.ts);
      if (i !== undefined) det.add(i);
    }
    const w = (windows[file] ?? []).map(([a, b]) => [nabTs(a!), nabTs(b!)] as [number, number]);
    out.push({
      file,
      category: file.split('/')[0]!,
      onsets: res.onsets.length,
      ...scoreFile(
        rows.map((r) => r.ts),
        det,
        w,
      ),
    });
  }
  return out;
}

export interface Summary {
  category: string;
  files: number;
  rows: number;
  windows: number;
  detected: number;
  falseAlerts: number;
  /** NAB standard-profile score, normalised 0..100 (null detector 0, perfect 100) */
  score: number | null;
  recall: number | null;
  falsePer1000: number;
}

export function summarise(scores: FileScore[]): Summary[] {
  const groups = new Map<string, FileScore[]>();
  for (const s of scores) groups.set(s.category, [...(groups.get(s.category) ?? []), s]);
  groups.set('all', scores);
  return [...groups].map(([category, g]) => {
    const sum = (f: (s: FileScore) => number): number => g.reduce((a, s) => a + f(s), 0);
    const raw = sum((s) => s.raw);
    const nul = sum((s) => s.nullScore);
    const perfect = sum((s) => s.perfect);
    const windows = sum((s) => s.windows);
    const rows = sum((s) => s.rows);
    return {
      category,
      files: g.length,
      rows,
      windows,
      detected: sum((s) => s.detected),
      falseAlerts: sum((s) => s.falseAlerts),
      score: perfect - nul > 0 ? (100 * (raw - nul)) / (perfect - nul) : null,
      recall: windows > 0 ? sum((s) => s.detected) / windows : null,
      falsePer1000: (1000 * sum((s) => s.falseAlerts)) / rows,
    };
  });
}

export function table(sum: Summary[]): string {
  const f = (x: number | null, d = 1): string => (x === null ? '–' : x.toFixed(d));
  return [
    '| category | files | rows | windows | detected | window recall | false alerts | per 1000 pts | NAB standard |',
    '|---|---|---|---|---|---|---|---|---|',
    ...sum.map(
      (s) =>
        `| ${s.category} | ${s.files} | ${s.rows} | ${s.windows} | ${s.detected} | ${s.recall === null ? '–' : `${(s.recall * 100).toFixed(0)} %`} | ${s.falseAlerts} | ${f(s.falsePer1000, 2)} | ${f(s.score)} |`,
    ),
  ].join('\n');
}

export function listCategories(): string[] {
  return existsSync(join(NAB_DIR, 'data')) ? readdirSync(join(NAB_DIR, 'data')).sort() : [];
}
