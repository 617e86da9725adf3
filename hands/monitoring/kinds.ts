/**
 * Per-sensor-kind defaults for the anomaly detector, so that real system and sensor data
 * (flat series, counters, quantised percentages, heavy-tailed I/O rates) do not page anybody
 * while a real fault (a disk filling, a CPU pinned, a temperature rising) still does.
 *
 *   resolution    the sensor's quantum in its unit: the noise std is never taken below it;
 *   minChange     the smallest change worth an alert, in the sensor's unit (e.g. 2 % points of
 *                 disk, 3 °C); a spike or shift must also be at least this far from the baseline,
 *                 and a drift must have moved the fast baseline half this far from the slow one;
 *   minChangeRel  the same as a share of the baseline's magnitude (0.02: 2 % of 72 640 MB);
 *   scaleFloor    the std is never below this share of |baseline| (the sensor's scale);
 *   robust        centre and spread from a sliding window's median and MAD instead of EWMA mean
 *                 and variance: one burst of a rate does not inflate the spread for minutes;
 *   spikes        a single out-of-band sample alerts (false: only `sustain` in a row do);
 *   sustain       out-of-band samples in a row needed when spikes are off; with `sustainMs`, the
 *                 samples that span that long at the sensor's interval instead (3 to 60);
 *   drift         the slow-drift (CUSUM) rule suits this kind;
 *   stuck         the stuck rule suits this kind (off for disks and rates: unchanged for hours
 *                 is what they do; nonzero for CPU load: an idle core reads 0.0 again and again).
 *
 * A user's explicit `rules.anomaly` fields always win over these.
 */
import { sensorKind } from './playbooks.ts';
import type { AnomalySettings } from './settings.ts';

export type AnomalyProfileName =
  | 'generic'
  | 'percent'
  | 'disk-percent'
  | 'disk-size'
  | 'cpu'
  | 'memory'
  | 'temperature'
  | 'humidity'
  | 'rate';

export interface AnomalyProfile {
  name: AnomalyProfileName;
  resolution: number;
  minChange: number;
  minChangeRel: number;
  scaleFloor: number;
  robust: boolean;
  spikes: boolean;
  sustain: number;
  /** when set: sustain = the samples spanning this long at the sensor's interval, 3..60 */
  sustainMs?: number;
  drift: boolean;
  /** the stuck rule: on; off (a disk or an idle link sits unchanged for hours); nonzero (a run at 0 is rest, e.g. an idle core) */
  stuck: 'on' | 'off' | 'nonzero';
}

const base: Omit<AnomalyProfile, 'name'> = {
  resolution: 0,
  minChange: 0,
  minChangeRel: 0,
  scaleFloor: 1e-3,
  robust: false,
  spikes: true,
  sustain: 3,
  drift: true,
  stuck: 'on',
};

export const PROFILES: Record<AnomalyProfileName, AnomalyProfile> = {
  generic: { name: 'generic', ...base },
  percent: { name: 'percent', ...base, resolution: 0.1, minChange: 5 },
  'disk-percent': {
    name: 'disk-percent',
    ...base,
    resolution: 0.1,
    minChange: 2,
    spikes: false,
    sustain: 3,
    stuck: 'off',
  },
  'disk-size': { name: 'disk-size', ...base, minChangeRel: 0.02, spikes: false, sustain: 3, stuck: 'off' },
  cpu: {
    name: 'cpu',
    ...base,
    resolution: 0.1,
    minChange: 25,
    robust: true,
    spikes: false,
    sustain: 12,
    sustainMs: 60_000,
    drift: false,
    stuck: 'nonzero',
  },
  memory: { name: 'memory', ...base, resolution: 0.1, minChange: 5, spikes: false, sustain: 3 },
  temperature: { name: 'temperature', ...base, resolution: 0.1, minChange: 3 },
  humidity: { name: 'humidity', ...base, resolution: 0.5, minChange: 5 },
  rate: {
    name: 'rate',
    ...base,
    minChangeRel: 1,
    robust: true,
    spikes: false,
    sustain: 12,
    sustainMs: 60_000,
    drift: false,
    stuck: 'off',
  },
};

/** rates and counters: bytes, packets, operations per second */
const RATE_RE =
  /(^|[._-])(rx|tx|read|write|reads|writes|io|iops|bytes|packets|pkts|rate|ops|throughput|bandwidth)($|[._-])/;

/** the profile a sensor gets by default, from its id, unit and device class */
export function anomalyProfile(id: string, unit?: string, deviceClass?: string): AnomalyProfile {
  const u = (unit ?? '').trim().toLowerCase();
  const s = id.toLowerCase();
  if (u.endsWith('/s') || /ps$/.test(u) || RATE_RE.test(s)) {
    // a byte rate under 1 MB/s (1 kB/s for kB/s) is never news, however still the line was
    const floor = u === 'b/s' ? 1e6 : u === 'kb/s' || u === 'kib/s' ? 1e3 : u === 'mb/s' || u === 'mib/s' ? 1 : 0;
    return floor > 0 ? { ...PROFILES.rate, minChange: floor } : PROFILES.rate;
  }
  const kind = sensorKind(id, unit, deviceClass);
  const pct = u === '%' || /(^|[._-])(pct|percent|used|usage|util)($|[._-])/.test(s);
  switch (kind) {
    case 'temperature':
      return PROFILES.temperature;
    case 'humidity':
      return PROFILES.humidity;
    case 'cpu':
      return pct || /usage|load|util/.test(s) ? PROFILES.cpu : PROFILES.generic;
    case 'memory':
      return pct ? PROFILES.memory : PROFILES['disk-size'];
    case 'disk':
      return pct ? PROFILES['disk-percent'] : PROFILES['disk-size'];
    default:
      return pct ? PROFILES.percent : PROFILES.generic;
  }
}

/** AnomalySettings with every kind-dependent field filled in */
export type ResolvedAnomaly = AnomalySettings &
  Omit<AnomalyProfile, 'name' | 'stuck' | 'sustainMs'> & { profile: AnomalyProfileName };

/** the user's settings over the kind's profile */
export function resolveAnomaly(
  cfg: AnomalySettings,
  id: string,
  unit?: string,
  deviceClass?: string,
  intervalMs?: number,
): ResolvedAnomaly {
  const p = cfg.profile && cfg.profile !== 'auto' ? PROFILES[cfg.profile] : anomalyProfile(id, unit, deviceClass);
  const { stuck: _stuck, sustainMs, name: _name, ...rest } = p;
  void _stuck;
  void _name;
  const sustain =
    sustainMs !== undefined && intervalMs !== undefined && intervalMs > 0
      ? Math.min(60, Math.max(3, Math.ceil(sustainMs / intervalMs)))
      : p.sustain;
  return {
    ...rest,
    ...cfg,
    profile: p.name,
    resolution: cfg.resolution ?? p.resolution,
    minChange: cfg.minChange ?? p.minChange,
    minChangeRel: cfg.minChangeRel ?? p.minChangeRel,
    scaleFloor: cfg.scaleFloor ?? p.scaleFloor,
    robust: cfg.robust ?? p.robust,
    spikes: cfg.spikes ?? p.spikes,
    sustain: cfg.sustain ?? sustain,
    drift: cfg.drift && p.drift,
  };
}
