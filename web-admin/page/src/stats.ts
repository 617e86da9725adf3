/** The last ~5 minutes of system samples (GET /api/v1/system/stats and its SSE stream), kept in memory. */
import { store } from './store.ts';

export interface StatsSample {
  ts: number;
  cpu: { percent: number; load1?: number; cores?: number };
  memory: { totalBytes: number; usedBytes: number; rssBytes?: number };
  temperatureC: number | null;
  /** percent: like df (used / (used + available)); older daemons sent only the bytes */
  disk: { totalBytes: number; usedBytes: number; freeBytes?: number; percent?: number; path?: string };
  network: { rxBytesPerSec: number; txBytesPerSec: number };
  hands: Array<{ name: string; state?: string; cpu: number; heapUsedMb: number }>;
}

export const WINDOW_MS = 5 * 60_000;

export const samples = store<StatsSample[]>([]);

export function isSample(v: unknown): v is StatsSample {
  const s = v as StatsSample;
  return typeof s === 'object' && s !== null && typeof s.ts === 'number' && typeof s.cpu === 'object' && s.cpu !== null;
}

/** adds a sample in time order (a repeated ts replaces), dropping what is older than the window */
export function addSample(v: unknown): void {
  if (!isSample(v)) return;
  const list = samples.get().filter((s) => s.ts !== v.ts && s.ts >= v.ts - WINDOW_MS);
  list.push(v);
  list.sort((a, b) => a.ts - b.ts);
  samples.set(list);
}

/** adds many samples at once (the history the device kept, read at page load) */
export function addSamples(list: unknown): void {
  if (!Array.isArray(list)) return;
  const ok = list.filter(isSample);
  if (!ok.length) return;
  const byTs = new Map<number, StatsSample>();
  for (const s of [...samples.get(), ...ok]) byTs.set(s.ts, s);
  const newest = Math.max(...byTs.keys());
  samples.set([...byTs.values()].filter((s) => s.ts >= newest - WINDOW_MS).sort((a, b) => a.ts - b.ts));
}

/** the disk percent as df shows it; from the bytes when the daemon sent no percent */
export function diskPercent(s: StatsSample): number | null {
  if (typeof s.disk.percent === 'number') return s.disk.percent;
  if (!s.disk.totalBytes) return null;
  const avail = typeof s.disk.freeBytes === 'number' ? s.disk.freeBytes : s.disk.totalBytes - s.disk.usedBytes;
  return Math.round((1000 * s.disk.usedBytes) / (s.disk.usedBytes + avail)) / 10;
}

type Series = Array<Array<number | null>>;

/** [seconds, ...values] columns for uPlot */
export function columns(list: StatsSample[], pick: Array<(s: StatsSample) => number | null | undefined>): Series {
  return [
    list.map((s) => s.ts / 1000),
    ...pick.map((p) =>
      list.map((s) => {
        const v = p(s);
        return typeof v === 'number' && Number.isFinite(v) ? v : null;
      }),
    ),
  ];
}

/** every Hand name seen in the window, sorted */
export function handNames(list: StatsSample[]): string[] {
  const names = new Set<string>();
  for (const s of list) for (const h of s.hands ?? []) names.add(h.name);
  return [...names].sort();
}
