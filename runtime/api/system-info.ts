/**
 * System info and stats samples for the dashboard, read straight from /proc and /sys (no
 * child processes): CPU % from /proc/stat deltas between samples, load, memory from
 * /proc/meminfo, the first thermal zone's temperature (null when the device has none), disk
 * use of the data folder's filesystem (fs.statfs), network byte rates from /proc/net/dev
 * deltas, and each Hand's CPU and heap from the supervisor.
 */
import { readFileSync, statfsSync, readdirSync } from 'node:fs';
import { cpus, totalmem, freemem, loadavg } from 'node:os';
import { join } from 'node:path';
import {
  parseStat,
  cpuLoad,
  parseMeminfo,
  parseNetDev,
  parseLoadavg,
  SKIP_IFACE,
  type CpuTimes,
} from '../../drivers/system/procfs.ts';
import type { HandStatus } from '../supervisor/types.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';

export interface StatsSample {
  ts: number;
  cpu: { percent: number; load1: number; cores: number };
  memory: { totalBytes: number; usedBytes: number; rssBytes: number };
  temperatureC: number | null;
  /** like df: used = blocks - bfree; percent = used / (used + bavail) (root's reserve is neither) */
  disk: { totalBytes: number; usedBytes: number; freeBytes: number; percent: number; path: string };
  network: { rxBytesPerSec: number; txBytesPerSec: number };
  hands: Array<{ name: string; state: string; cpu: number; heapUsedMb: number }>;
}

const read = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

/** The board model from the device tree (Raspberry Pi and friends), or null on a PC. */
export function boardModel(root = '/'): string | null {
  for (const p of ['proc/device-tree/model', 'sys/firmware/devicetree/base/model']) {
    const text = read(join(root, p));
    if (text !== null) {
      const model = text.replace(/\0/g, '').trim();
      if (model) return model.slice(0, 200);
    }
  }
  return null;
}

/** how often the background sampler runs, and how much of it is kept for the dashboard */
export const STATS_SAMPLE_MS = 2000;
export const HISTORY_MS = 5 * 60_000;
const HISTORY_MAX = 1000;

/** a filesystem's use computed the way df does: used = blocks - bfree, and the percent of
 * what users can have (used + bavail; root's reserve is left out), rounded up like df */
export function diskUse(
  s: { bsize: number; blocks: number; bfree: number; bavail: number },
  path: string,
): StatsSample['disk'] {
  const usedBlocks = Math.max(0, s.blocks - s.bfree);
  const denom = usedBlocks + s.bavail;
  return {
    totalBytes: s.blocks * s.bsize,
    usedBytes: usedBlocks * s.bsize,
    freeBytes: s.bavail * s.bsize,
    percent: denom > 0 ? Math.round((1000 * usedBlocks) / denom) / 10 : 0,
    path,
  };
}

export class SystemStats {
  #dataDir: string;
  #hands: () => HandStatus[];
  #clock: Clock;
  #root: string;
  #prevCpu: CpuTimes | null = null;
  #prevNet: { ts: number; rx: number; tx: number } | null = null;
  #history: StatsSample[] = [];
  #timer: ReturnType<typeof setInterval> | null = null;
  #last: StatsSample | null = null;

  constructor(opts: { dataDir: string; hands: () => HandStatus[]; clock?: Clock; root?: string }) {
    this.#dataDir = opts.dataDir;
    this.#hands = opts.hands;
    this.#clock = opts.clock ?? systemClock;
    this.#root = opts.root ?? '/';
    this.#cpuPercent(); // the first delta needs a baseline
    this.#netRates(this.#clock.now());
  }

  /** samples every `everyMs` in the background, so that history() has the last minutes */
  start(everyMs = STATS_SAMPLE_MS): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      try {
        this.sample();
      } catch {
        // a sample that fails is left out
      }
    }, everyMs);
    this.#timer.unref?.();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** the samples of the last `ms` (at most HISTORY_MS), oldest first */
  history(ms = HISTORY_MS): StatsSample[] {
    const from = this.#clock.now() - Math.min(ms, HISTORY_MS);
    return this.#history.filter((s) => s.ts >= from);
  }

  /** a fresh sample, or the last one when it is younger than `maxAgeMs` (several dashboards share it) */
  latest(maxAgeMs = 1000): StatsSample {
    const last = this.#last;
    if (last && this.#clock.now() - last.ts < maxAgeMs && this.#clock.now() >= last.ts) return last;
    return this.sample();
  }

  sample(): StatsSample {
    const s = this.#take();
    this.#last = s;
    const h = this.#history;
    if (h.length && h[h.length - 1]!.ts >= s.ts) h.pop();
    h.push(s);
    const from = s.ts - HISTORY_MS;
    while (h.length && h[0]!.ts < from) h.shift();
    if (h.length > HISTORY_MAX) h.splice(0, h.length - HISTORY_MAX);
    return s;
  }

  #take(): StatsSample {
    const ts = this.#clock.now();
    return {
      ts,
      cpu: { percent: this.#cpuPercent(), load1: this.#load1(), cores: Math.max(1, cpus().length) },
      memory: this.#memory(),
      temperatureC: this.#temperature(),
      disk: this.#disk(),
      network: this.#netRates(ts),
      hands: this.#hands().map((h) => ({ name: h.name, state: h.state, cpu: h.cpu, heapUsedMb: h.heapUsedMb })),
    };
  }

  #cpuPercent(): number {
    const text = read(join(this.#root, 'proc/stat'));
    if (text === null) return 0;
    try {
      const cur = parseStat(text).get('cpu')!;
      const prev = this.#prevCpu;
      this.#prevCpu = cur;
      if (!prev) return 0;
      return Math.round((cpuLoad(prev, cur) ?? 0) * 10) / 10;
    } catch {
      return 0;
    }
  }

  #load1(): number {
    const text = read(join(this.#root, 'proc/loadavg'));
    try {
      return text !== null ? parseLoadavg(text).load1 : loadavg()[0]!;
    } catch {
      return loadavg()[0]!;
    }
  }

  #memory(): StatsSample['memory'] {
    const rssBytes = process.memoryUsage.rss();
    const text = read(join(this.#root, 'proc/meminfo'));
    try {
      if (text === null) throw new Error('no meminfo');
      const m = parseMeminfo(text);
      const total = m.get('MemTotal')! * 1024;
      const available = (m.get('MemAvailable') ?? (m.get('MemFree') ?? 0) + (m.get('Cached') ?? 0)) * 1024;
      return { totalBytes: total, usedBytes: Math.max(0, total - available), rssBytes };
    } catch {
      return { totalBytes: totalmem(), usedBytes: totalmem() - freemem(), rssBytes };
    }
  }

  #temperature(): number | null {
    const base = join(this.#root, 'sys/class/thermal');
    let zones: string[];
    try {
      zones = readdirSync(base)
        .filter((z) => z.startsWith('thermal_zone'))
        .sort();
    } catch {
      return null;
    }
    for (const z of zones) {
      const t = read(join(base, z, 'temp'));
      if (t === null || !/^-?\d+\s*$/.test(t)) continue;
      return Math.round(Number(t.trim()) / 100) / 10;
    }
    return null;
  }

  #disk(): StatsSample['disk'] {
    try {
      return diskUse(statfsSync(this.#dataDir), this.#dataDir);
    } catch {
      return { totalBytes: 0, usedBytes: 0, freeBytes: 0, percent: 0, path: this.#dataDir };
    }
  }

  #netRates(ts: number): StatsSample['network'] {
    const text = read(join(this.#root, 'proc/net/dev'));
    if (text === null) return { rxBytesPerSec: 0, txBytesPerSec: 0 };
    let rx = 0;
    let tx = 0;
    try {
      for (const [iface, c] of parseNetDev(text)) {
        if (SKIP_IFACE.test(iface)) continue;
        rx += c.rx;
        tx += c.tx;
      }
    } catch {
      return { rxBytesPerSec: 0, txBytesPerSec: 0 };
    }
    const prev = this.#prevNet;
    this.#prevNet = { ts, rx, tx };
    if (!prev || ts <= prev.ts || rx < prev.rx || tx < prev.tx) return { rxBytesPerSec: 0, txBytesPerSec: 0 };
    const dt = (ts - prev.ts) / 1000;
    return { rxBytesPerSec: Math.round((rx - prev.rx) / dt), txBytesPerSec: Math.round((tx - prev.tx) / dt) };
  }
}
