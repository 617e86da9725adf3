/**
 * Replay: the Monitoring Hand's own rules and detectors (SensorMonitor, AlertManager) run over
 * recorded `timestamp,value` data at the data's own time — no clock, no daemon, no waiting —
 * returning the alert events the Hand would have published. `talon monitoring replay` prints
 * them, so rules can be tuned before a device goes out; the NAB benchmark scores them.
 *
 * Time: each row's timestamp is "now". The Hand's once-a-second housekeeping (missing-data
 * check, alert cool-downs) is run at every row and, inside a gap, at the moment a reading
 * becomes overdue. Rows whose timestamp does not advance are skipped, as the Hand skips a stale
 * reading.
 */
import { AlertManager, type Alert } from './alerts.ts';
import { SensorMonitor, type Edge } from './monitor.ts';
import { playbookFix, sensorKind } from './playbooks.ts';
import { defaultEntry, globMatch, parseSettings, type ConfigProblem, type SensorEntry } from './settings.ts';

export interface Row {
  ts: number;
  value: number;
}

export interface CsvProblem {
  line: number;
  message: string;
}

/**
 * `timestamp,value` rows: a header line is optional; timestamps are epoch ms, epoch s (< 1e11)
 * or anything Date.parse reads (ISO 8601, `2015-07-10 14:24:00`, taken as UTC when it names no
 * zone). Bad lines are reported, not fatal.
 */
export function parseCsv(text: string): { rows: Row[]; problems: CsvProblem[] } {
  const rows: Row[] = [];
  const problems: CsvProblem[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const cut = line.lastIndexOf(',');
    if (cut < 0) {
      problems.push({ line: i + 1, message: `expected "timestamp,value", got ${JSON.stringify(line.slice(0, 60))}` });
      return;
    }
    const t = line.slice(0, cut).trim().replace(/^"|"$/g, '');
    const v = line
      .slice(cut + 1)
      .trim()
      .replace(/^"|"$/g, '');
    const ts = parseTs(t);
    const value = v === '' ? NaN : Number(v);
    if (
      rows.length === 0 &&
      problems.length === 0 &&
      (Number.isNaN(ts) || Number.isNaN(value)) &&
      /[a-z]/i.test(line) &&
      i === lines.findIndex((l) => l.trim() !== '')
    )
      return; // header
    if (Number.isNaN(ts))
      problems.push({
        line: i + 1,
        message: `timestamp ${JSON.stringify(t.slice(0, 40))} is not a date or an epoch number`,
      });
    else if (!Number.isFinite(value))
      problems.push({ line: i + 1, message: `value ${JSON.stringify(v.slice(0, 40))} is not a finite number` });
    else rows.push({ ts, value });
  });
  return { rows, problems };
}

function parseTs(t: string): number {
  if (/^-?\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    return Math.abs(n) < 1e11 ? n * 1000 : n;
  }
  const iso = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(t) ? `${t.replace(' ', 'T')}Z` : t;
  return Date.parse(iso);
}

export interface ReplayOptions {
  /** the sensor id the rows belong to: picks the settings entry and the kind defaults */
  sensor: string;
  unit?: string;
  deviceClass?: string;
  /** the Hand's settings (as in the manifest); undefined = the defaults of an unconfigured Hand */
  settings?: unknown;
}

export interface ReplayResult {
  sensor: string;
  /** the entry the sensor was watched with (a defaulted one takes its interval from the data) */
  entry: SensorEntry;
  /** the anomaly profile the sensor got (kinds.ts), or null with anomaly detection off */
  profile: string | null;
  /** every alert event in order: firing, resolved, flapping */
  events: Alert[];
  /** the raise edges of the rules (before cool-down and flap suppression): what a scorer counts as detections */
  onsets: Array<{ ts: number; rule: string; message: string }>;
  samples: number;
  skipped: number;
  problems: ConfigProblem[];
}

/** the median spacing of the rows (ms), at least 100 */
function medianSpacing(rows: Row[]): number {
  const d: number[] = [];
  for (let i = 1; i < rows.length && d.length < 10_000; i++)
    if (rows[i]!.ts > rows[i - 1]!.ts) d.push(rows[i]!.ts - rows[i - 1]!.ts);
  if (d.length === 0) return 5000;
  d.sort((a, b) => a - b);
  return Math.max(100, Math.round(d[d.length >> 1]!));
}

export function replay(rows: Row[], opts: ReplayOptions): ReplayResult {
  const { settings, problems } = parseSettings(opts.settings);
  let entry: SensorEntry | undefined = settings.watchAll
    ? undefined
    : settings.sensors.find((e) => globMatch(e.id, opts.sensor));
  if (!entry) {
    if (!settings.watchAll) {
      problems.push({
        path: 'sensors',
        sensor: opts.sensor,
        message: `no sensors[] entry matches "${opts.sensor}"; the Hand would not watch it (replaying with the default rules)`,
      });
    }
    const intervalMs = medianSpacing(rows);
    const d = defaultEntry(opts.sensor);
    entry = { ...d, intervalMs, rules: { ...d.rules, missingAfterMs: 3 * intervalMs } };
  }
  const kind = sensorKind(opts.sensor, opts.unit, opts.deviceClass);
  const alerts = new AlertManager({ ...settings.alerts, suggest: (a) => playbookFix(a.sensor, a.rule, kind) });
  const start = rows[0]?.ts ?? 0;
  const monitor = new SensorMonitor(opts.sensor, entry, {
    unit: opts.unit,
    deviceClass: opts.deviceClass,
    startedAt: start,
  });
  const events: Alert[] = [];
  const onsets: ReplayResult['onsets'] = [];
  const apply = (edges: Edge[], now: number): void => {
    for (const e of edges) {
      if (e.op === 'raise') {
        onsets.push({ ts: now, rule: e.input.rule, message: e.input.message });
        events.push(...alerts.raise(e.input, now));
      } else events.push(...alerts.resolve(e.input.sensor, e.input.rule, e.input.value, e.input.message, now));
    }
  };
  const housekeeping = (now: number): void => {
    apply(monitor.checkMissing(now), now);
    events.push(...alerts.tick(now));
  };
  let samples = 0;
  let skipped = 0;
  const after = entry.rules.missingAfterMs;
  for (const row of rows) {
    if (samples > 0 && row.ts <= monitor.lastTs) {
      skipped++;
      continue;
    }
    // inside a gap: the housekeeping tick that would have seen the reading overdue
    if (samples > 0 && after > 0) {
      const overdue = monitor.lastTs + after + 1000 - ((monitor.lastTs + after) % 1000);
      if (overdue < row.ts) housekeeping(overdue);
    }
    housekeeping(row.ts);
    apply(monitor.sample(row.value, row.ts), row.ts);
    samples++;
  }
  return {
    sensor: opts.sensor,
    entry,
    profile: monitor.anomaly ? ((monitor.anomaly.cfg as { profile?: string }).profile ?? null) : null,
    events,
    onsets,
    samples,
    skipped,
    problems,
  };
}
