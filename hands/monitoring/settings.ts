/**
 * The Monitoring Hand's settings: one JSON Schema (the kernel validates shapes and fills
 * defaults with it before the Hand starts) and `parseSettings`, which the Hand runs again on
 * whatever it was given, because a schema cannot say "the hysteresis band of `above` must not
 * reach `below`" and a Hand must not trust that its kernel validated anything.
 *
 * parseSettings never throws: every problem becomes a ConfigProblem naming the sensor entry
 * and the numbers, and the entry it concerns is dropped (or the offending rule disabled),
 * so one bad line never stops the rest of the monitoring.
 */

import { PROFILES, type AnomalyProfileName } from './kinds.ts';

export type Severity = 'info' | 'warning' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

export interface AnomalySettings {
  /** EWMA weight of a new sample for the mean/variance baseline (0..1) */
  alpha: number;
  /** samples before the baseline is trusted (no anomaly alerts before) */
  warmup: number;
  /** |z| above this is a spike */
  z: number;
  /** consecutive out-of-band samples that make a level shift rather than a spike */
  shiftSamples: number;
  /** standard-deviation floor in the sensor's unit (a quantised or very steady sensor) */
  minStd: number;
  /** slow-drift detector: two-sided CUSUM on the noise-scaled residual of a slow baseline */
  drift: boolean;
  /** CUSUM decision threshold (in noise standard deviations) */
  driftH: number;
  /** kind defaults (kinds.ts) for the fields below: 'auto' (from the sensor's id and unit) or a profile name */
  profile?: 'auto' | AnomalyProfileName;
  /** the sensor's quantum: the std is never taken below it */
  resolution?: number;
  /** smallest change worth an alert, in the sensor's unit */
  minChange?: number;
  /** smallest change worth an alert, as a share of |baseline| */
  minChangeRel?: number;
  /** the std is never below this share of |baseline| */
  scaleFloor?: number;
  /** median/MAD over a sliding window instead of EWMA mean/variance */
  robust?: boolean;
  /** a single out-of-band sample alerts (false: `sustain` in a row are needed) */
  spikes?: boolean;
  /** out-of-band samples in a row needed when spikes are off */
  sustain?: number;
  /** novelty gate: remember this many samples; an outlier must also leave their range (0 = off) */
  novelty?: number;
  /** ... by this share of the range */
  noveltyMargin?: number;
}

export interface StuckSettings {
  /** fewest identical samples in a row that may be called stuck */
  samples: number;
  /** or: unchanged for this long (ms); 0 = off */
  windowMs: number;
  /** values closer than this count as unchanged */
  epsilon: number;
  /** set by parseSettings when the user tuned the rule: the sensor kind's default (kinds.ts) no longer applies */
  explicit?: boolean;
}

export interface ForecastSettings {
  /** the limit the trend is extrapolated to, e.g. 95 (% disk used) */
  limit: number;
  /** alert when the limit is forecast to be crossed within this many ms */
  horizonMs: number;
  /** least-squares window (ms) */
  windowMs: number;
  /** minimum fit quality (R²) before a forecast is believed */
  minR2: number;
}

export interface Rules {
  above?: number;
  below?: number;
  hysteresis: number;
  forDurationMs: number;
  anomaly: AnomalySettings | null;
  stuck: StuckSettings | null;
  forecast: ForecastSettings | null;
  /** no new reading for this long → `missing` alert */
  missingAfterMs: number;
}

export interface ActionSettings {
  actuator: string;
  on: { above: number };
  off: { below: number };
}

export interface SensorEntry {
  /** a sensor id or glob (`cpu.*`) */
  id: string;
  intervalMs: number;
  severity: Severity;
  rules: Rules;
  action?: ActionSettings;
}

export interface MonitoringSettings {
  sensors: SensorEntry[];
  /** true when no sensors were configured: watch everything the grant lists, with defaults */
  watchAll: boolean;
  /** consecutive failed reads before a `sensor-fault` alert */
  faultAfter: number;
  /** a read still unanswered after this long is counted as a timeout (ms); 0 = 2 × interval, at least 5 s */
  readTimeoutMs: number;
  alerts: { cooldownMs: number; flapWindowMs: number; flapTransitions: number; historyMax: number };
  history: { rawPoints: number; minuteRetentionMs: number; hourRetentionMs: number };
  /** publish counters on monitoring/status (retained) this often; 0 = never */
  statusEveryMs: number;
}

export interface ConfigProblem {
  /** JSON path of the offending setting, e.g. `sensors[2].rules.hysteresis` */
  path: string;
  /** the sensor entry it concerns, when it concerns one */
  sensor?: string;
  message: string;
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export const DEFAULTS = {
  intervalMs: 5000,
  severity: 'warning' as Severity,
  hysteresis: 0,
  forDurationMs: 0,
  missingFactor: 3,
  anomaly: {
    alpha: 0.05,
    warmup: 30,
    z: 6,
    shiftSamples: 3,
    minStd: 0,
    drift: true,
    driftH: 20,
  } satisfies AnomalySettings,
  stuck: { samples: 10, windowMs: 0, epsilon: 0 } satisfies StuckSettings,
  forecastWindowMs: 30 * MIN,
  forecastMinR2: 0.6,
  faultAfter: 3,
  readTimeoutMs: 0,
  alerts: { cooldownMs: 60_000, flapWindowMs: 10 * MIN, flapTransitions: 6, historyMax: 1000 },
  history: { rawPoints: 600, minuteRetentionMs: 2 * DAY, hourRetentionMs: 90 * DAY },
  statusEveryMs: 30_000,
};

const num = { type: 'number' } as const;
const posInt = (max: number) => ({ type: 'integer', minimum: 1, maximum: max }) as const;
const ms = (min: number, max: number) => ({ type: 'integer', minimum: min, maximum: max }) as const;

/** The JSON Schema in the manifest. Shapes and ranges only; relations are checked by parseSettings. */
export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    sensors: {
      description: 'sensors to watch; leave out to watch every sensor the grant lists with default rules',
      type: 'array',
      maxItems: 500,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: {
          id: { type: 'string', minLength: 1, maxLength: 200, description: 'sensor id or glob (cpu.*)' },
          intervalMs: { ...ms(100, DAY), description: 'poll interval (pushed sensors: the expected interval)' },
          severity: { enum: SEVERITIES },
          rules: {
            type: 'object',
            additionalProperties: false,
            properties: {
              above: num,
              below: num,
              hysteresis: {
                type: 'number',
                description: 'how far back past the threshold the value must come to resolve',
              },
              forDurationMs: { ...ms(0, 7 * DAY), description: 'the condition must hold this long before firing' },
              anomaly: {
                anyOf: [
                  { type: 'boolean' },
                  {
                    type: 'object',
                    additionalProperties: false,
                    properties: {
                      alpha: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
                      warmup: posInt(100_000),
                      z: { type: 'number', exclusiveMinimum: 0 },
                      shiftSamples: posInt(10_000),
                      minStd: { type: 'number', minimum: 0 },
                      drift: { type: 'boolean' },
                      driftH: { type: 'number', exclusiveMinimum: 0 },
                      profile: {
                        enum: [
                          'auto',
                          'generic',
                          'percent',
                          'disk-percent',
                          'disk-size',
                          'cpu',
                          'memory',
                          'temperature',
                          'humidity',
                          'rate',
                        ],
                      },
                      resolution: { type: 'number', minimum: 0 },
                      minChange: { type: 'number', minimum: 0 },
                      minChangeRel: { type: 'number', minimum: 0 },
                      scaleFloor: { type: 'number', minimum: 0 },
                      robust: { type: 'boolean' },
                      spikes: { type: 'boolean' },
                      sustain: posInt(10_000),
                      novelty: { type: 'integer', minimum: 0, maximum: 100_000 },
                      noveltyMargin: { type: 'number', minimum: 0 },
                    },
                  },
                ],
              },
              stuck: {
                anyOf: [
                  { type: 'boolean' },
                  {
                    type: 'object',
                    additionalProperties: false,
                    properties: {
                      samples: posInt(1_000_000),
                      windowMs: ms(0, 30 * DAY),
                      epsilon: { type: 'number', minimum: 0 },
                    },
                  },
                ],
              },
              forecast: {
                type: 'object',
                additionalProperties: false,
                required: ['limit', 'horizonMs'],
                properties: {
                  limit: num,
                  horizonMs: ms(1000, 365 * DAY),
                  windowMs: ms(10_000, 30 * DAY),
                  minR2: { type: 'number', minimum: 0, maximum: 1 },
                },
              },
              missingAfterMs: ms(0, 30 * DAY),
            },
          },
          action: {
            type: 'object',
            additionalProperties: false,
            required: ['actuator', 'on', 'off'],
            properties: {
              actuator: { type: 'string', minLength: 1, maxLength: 200 },
              on: { type: 'object', additionalProperties: false, required: ['above'], properties: { above: num } },
              off: { type: 'object', additionalProperties: false, required: ['below'], properties: { below: num } },
            },
          },
        },
      },
    },
    faultAfter: { ...posInt(1000), default: DEFAULTS.faultAfter },
    readTimeoutMs: { ...ms(0, HOUR), default: DEFAULTS.readTimeoutMs },
    alerts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cooldownMs: { ...ms(0, DAY), default: DEFAULTS.alerts.cooldownMs },
        flapWindowMs: { ...ms(1000, DAY), default: DEFAULTS.alerts.flapWindowMs },
        flapTransitions: { type: 'integer', minimum: 2, maximum: 1000, default: DEFAULTS.alerts.flapTransitions },
        historyMax: { ...posInt(100_000), default: DEFAULTS.alerts.historyMax },
      },
    },
    history: {
      type: 'object',
      additionalProperties: false,
      properties: {
        rawPoints: { type: 'integer', minimum: 10, maximum: 100_000, default: DEFAULTS.history.rawPoints },
        minuteRetentionMs: { ...ms(HOUR, 30 * DAY), default: DEFAULTS.history.minuteRetentionMs },
        hourRetentionMs: { ...ms(DAY, 5 * 365 * DAY), default: DEFAULTS.history.hourRetentionMs },
      },
    },
    statusEveryMs: { ...ms(0, DAY), default: DEFAULTS.statusEveryMs },
  },
} as const;

// -- parsing ---------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6))));

/** sensor ids: the driver id alphabet plus `*` for globs */
const ID_RE = /^[a-z0-9._*-]+$/;

class Collector {
  problems: ConfigProblem[] = [];
  add(path: string, message: string, sensor?: string): void {
    this.problems.push(sensor === undefined ? { path, message } : { path, sensor, message });
  }
  /** a number in [min, max] (or undefined → fallback); a wrong one is reported and replaced */
  num(
    o: Obj,
    key: string,
    path: string,
    fallback: number,
    min: number,
    max: number,
    sensor?: string,
    integer = false,
  ): number {
    const v = o[key];
    if (v === undefined) return fallback;
    if (!isNum(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      this.add(
        `${path}.${key}`,
        `${path}.${key} is ${JSON.stringify(v)}; it must be ${integer ? 'an integer' : 'a number'} from ${fmt(min)} to ${fmt(max)} (using ${fmt(fallback)})`,
        sensor,
      );
      return fallback;
    }
    return v;
  }
}

function parseAnomaly(c: Collector, v: unknown, path: string, sensor: string): AnomalySettings | null {
  if (v === false) return null;
  if (v === undefined || v === true) return { ...DEFAULTS.anomaly };
  if (!isObj(v)) {
    c.add(path, `${path} must be true, false or an object; anomaly detection left on with defaults`, sensor);
    return { ...DEFAULTS.anomaly };
  }
  const d = DEFAULTS.anomaly;
  const out: AnomalySettings = {
    alpha: c.num(v, 'alpha', path, d.alpha, 1e-6, 1, sensor),
    warmup: c.num(v, 'warmup', path, d.warmup, 1, 100_000, sensor, true),
    z: c.num(v, 'z', path, d.z, 0.5, 1000, sensor),
    shiftSamples: c.num(v, 'shiftSamples', path, d.shiftSamples, 1, 10_000, sensor, true),
    minStd: c.num(v, 'minStd', path, d.minStd, 0, Number.MAX_VALUE, sensor),
    drift: typeof v.drift === 'boolean' ? v.drift : d.drift,
    driftH: c.num(v, 'driftH', path, d.driftH, 1, 1e6, sensor),
  };
  if (v.profile !== undefined) {
    if (typeof v.profile === 'string' && (v.profile === 'auto' || Object.hasOwn(PROFILES, v.profile)))
      out.profile = v.profile as AnomalySettings['profile'];
    else
      c.add(
        `${path}.profile`,
        `${path}.profile is ${JSON.stringify(v.profile)}; it must be auto or one of ${Object.keys(PROFILES).join(', ')} (using auto)`,
        sensor,
      );
  }
  for (const k of ['resolution', 'minChange', 'minChangeRel', 'scaleFloor'] as const) {
    if (v[k] !== undefined) out[k] = c.num(v, k, path, 0, 0, Number.MAX_VALUE, sensor);
  }
  if (v.novelty !== undefined) out.novelty = c.num(v, 'novelty', path, 0, 0, 100_000, sensor, true);
  if (v.noveltyMargin !== undefined) out.noveltyMargin = c.num(v, 'noveltyMargin', path, 0, 0, 100, sensor);
  if (v.sustain !== undefined) out.sustain = c.num(v, 'sustain', path, 3, 1, 10_000, sensor, true);
  if (typeof v.robust === 'boolean') out.robust = v.robust;
  if (typeof v.spikes === 'boolean') out.spikes = v.spikes;
  return out;
}

function parseStuck(c: Collector, v: unknown, path: string, sensor: string): StuckSettings | null {
  if (v === false) return null;
  if (v === undefined || v === true) return { ...DEFAULTS.stuck };
  if (!isObj(v)) {
    c.add(path, `${path} must be true, false or an object; stuck detection left on with defaults`, sensor);
    return { ...DEFAULTS.stuck };
  }
  const d = DEFAULTS.stuck;
  return {
    samples: c.num(v, 'samples', path, d.samples, 2, 1_000_000, sensor, true),
    windowMs: c.num(v, 'windowMs', path, d.windowMs, 0, 30 * DAY, sensor, true),
    epsilon: c.num(v, 'epsilon', path, d.epsilon, 0, Number.MAX_VALUE, sensor),
    explicit: true,
  };
}

/**
 * One sensor entry's rules, with the relations a schema cannot express:
 * - hysteresis ≥ 0 and smaller than the gap between `below` and `above`;
 * - a threshold below its own hysteresis band (`above` whose clear level `above − hysteresis`
 *   reaches `below + hysteresis`) is refused with both numbers named;
 * - an action whose `off.below` is not under `on.above` would toggle on every sample.
 */
function parseRules(c: Collector, v: unknown, path: string, sensor: string, intervalMs: number): Rules | null {
  const r: Obj = v === undefined ? {} : isObj(v) ? v : {};
  if (v !== undefined && !isObj(v)) c.add(path, `${path} must be an object`, sensor);
  let ok = true;
  const rules: Rules = {
    hysteresis: DEFAULTS.hysteresis,
    forDurationMs: c.num(r, 'forDurationMs', path, DEFAULTS.forDurationMs, 0, 7 * DAY, sensor, true),
    anomaly: parseAnomaly(c, r.anomaly, `${path}.anomaly`, sensor),
    stuck: parseStuck(c, r.stuck, `${path}.stuck`, sensor),
    forecast: null,
    missingAfterMs: c.num(r, 'missingAfterMs', path, DEFAULTS.missingFactor * intervalMs, 0, 30 * DAY, sensor, true),
  };
  for (const side of ['above', 'below'] as const) {
    const t = r[side];
    if (t === undefined) continue;
    if (!isNum(t)) {
      c.add(
        `${path}.${side}`,
        `sensor "${sensor}": ${side} is ${JSON.stringify(t)}; it must be a finite number`,
        sensor,
      );
      ok = false;
    } else rules[side] = t;
  }
  if (r.hysteresis !== undefined) {
    const h = r.hysteresis;
    if (!isNum(h) || h < 0) {
      c.add(
        `${path}.hysteresis`,
        `sensor "${sensor}": hysteresis is ${JSON.stringify(h)}; it must be a number ≥ 0 (the distance back past the threshold before an alert resolves)`,
        sensor,
      );
      ok = false;
    } else rules.hysteresis = h;
  }
  if (ok && rules.above !== undefined && rules.below !== undefined) {
    const h = rules.hysteresis;
    const clearAbove = rules.above - h;
    const clearBelow = rules.below + h;
    if (rules.below >= rules.above) {
      c.add(
        `${path}.below`,
        `sensor "${sensor}": below ${fmt(rules.below)} is not under above ${fmt(rules.above)}; every value would be out of range`,
        sensor,
      );
      ok = false;
    } else if (clearAbove <= clearBelow) {
      c.add(
        `${path}.hysteresis`,
        `sensor "${sensor}": threshold above ${fmt(rules.above)} is below its hysteresis band: it resolves under ${fmt(clearAbove)} (above − hysteresis ${fmt(h)}), ` +
          `which reaches the band of below ${fmt(rules.below)} (resolves over ${fmt(clearBelow)}); use a hysteresis under ${fmt((rules.above - rules.below) / 2)}`,
        sensor,
      );
      ok = false;
    }
  }
  if (r.forecast !== undefined) {
    const f = r.forecast;
    if (!isObj(f) || !isNum(f.limit) || !isNum(f.horizonMs) || f.horizonMs <= 0) {
      c.add(
        `${path}.forecast`,
        `sensor "${sensor}": forecast needs { limit: number, horizonMs: number > 0 }; forecast disabled`,
        sensor,
      );
    } else {
      rules.forecast = {
        limit: f.limit,
        horizonMs: f.horizonMs,
        windowMs: c.num(f, 'windowMs', `${path}.forecast`, DEFAULTS.forecastWindowMs, 1000, 30 * DAY, sensor, true),
        minR2: c.num(f, 'minR2', `${path}.forecast`, DEFAULTS.forecastMinR2, 0, 1, sensor),
      };
    }
  }
  return ok ? rules : null;
}

function parseAction(c: Collector, v: unknown, path: string, sensor: string): ActionSettings | undefined | null {
  if (v === undefined) return undefined;
  if (
    !isObj(v) ||
    typeof v.actuator !== 'string' ||
    v.actuator === '' ||
    !isObj(v.on) ||
    !isObj(v.off) ||
    !isNum(v.on.above) ||
    !isNum(v.off.below)
  ) {
    c.add(
      path,
      `sensor "${sensor}": action needs { actuator: string, on: { above: number }, off: { below: number } }; action disabled`,
      sensor,
    );
    return null;
  }
  if (v.off.below >= v.on.above) {
    c.add(
      `${path}.off.below`,
      `sensor "${sensor}": action ${v.actuator}: off below ${fmt(v.off.below)} is not under on above ${fmt(v.on.above)}; the actuator would toggle on every reading; action disabled`,
      sensor,
    );
    return null;
  }
  return { actuator: v.actuator, on: { above: v.on.above }, off: { below: v.off.below } };
}

export function parseSettings(raw: unknown): { settings: MonitoringSettings; problems: ConfigProblem[] } {
  const c = new Collector();
  const s: Obj = isObj(raw) ? raw : {};
  if (raw !== undefined && !isObj(raw)) c.add('settings', 'the settings must be an object');
  const alertsIn: Obj = isObj(s.alerts) ? s.alerts : {};
  const historyIn: Obj = isObj(s.history) ? s.history : {};
  const da = DEFAULTS.alerts;
  const dh = DEFAULTS.history;
  const settings: MonitoringSettings = {
    sensors: [],
    watchAll: s.sensors === undefined,
    faultAfter: c.num(s, 'faultAfter', 'settings', DEFAULTS.faultAfter, 1, 1000, undefined, true),
    readTimeoutMs: c.num(s, 'readTimeoutMs', 'settings', DEFAULTS.readTimeoutMs, 0, HOUR, undefined, true),
    alerts: {
      cooldownMs: c.num(alertsIn, 'cooldownMs', 'alerts', da.cooldownMs, 0, DAY, undefined, true),
      flapWindowMs: c.num(alertsIn, 'flapWindowMs', 'alerts', da.flapWindowMs, 1000, DAY, undefined, true),
      flapTransitions: c.num(alertsIn, 'flapTransitions', 'alerts', da.flapTransitions, 2, 1000, undefined, true),
      historyMax: c.num(alertsIn, 'historyMax', 'alerts', da.historyMax, 1, 100_000, undefined, true),
    },
    history: {
      rawPoints: c.num(historyIn, 'rawPoints', 'history', dh.rawPoints, 10, 100_000, undefined, true),
      minuteRetentionMs: c.num(
        historyIn,
        'minuteRetentionMs',
        'history',
        dh.minuteRetentionMs,
        HOUR,
        30 * DAY,
        undefined,
        true,
      ),
      hourRetentionMs: c.num(
        historyIn,
        'hourRetentionMs',
        'history',
        dh.hourRetentionMs,
        DAY,
        5 * 365 * DAY,
        undefined,
        true,
      ),
    },
    statusEveryMs: c.num(s, 'statusEveryMs', 'settings', DEFAULTS.statusEveryMs, 0, DAY, undefined, true),
  };
  if (s.sensors !== undefined && !Array.isArray(s.sensors)) {
    c.add(
      'sensors',
      'sensors must be a list of { id, intervalMs?, rules?, severity?, action? }; watching every granted sensor instead',
    );
    settings.watchAll = true;
  }
  const list = Array.isArray(s.sensors) ? s.sensors : [];
  list.forEach((e: unknown, i: number) => {
    const path = `sensors[${i}]`;
    if (!isObj(e) || typeof e.id !== 'string' || !ID_RE.test(e.id)) {
      c.add(
        `${path}.id`,
        `${path} needs an id: a sensor id or glob of lowercase letters, digits, ".", "_", "-", "*" (got ${JSON.stringify(isObj(e) ? e.id : e)}); entry skipped`,
      );
      return;
    }
    const id = e.id;
    const intervalMs = c.num(e, 'intervalMs', path, DEFAULTS.intervalMs, 100, DAY, id, true);
    let severity = DEFAULTS.severity;
    if (e.severity !== undefined) {
      if (SEVERITIES.includes(e.severity as Severity)) severity = e.severity as Severity;
      else
        c.add(
          `${path}.severity`,
          `sensor "${id}": severity ${JSON.stringify(e.severity)} is not one of ${SEVERITIES.join(', ')} (using ${severity})`,
          id,
        );
    }
    const rules = parseRules(c, e.rules, `${path}.rules`, id, intervalMs);
    if (!rules) return; // the problem names the entry; the other entries keep running
    const entry: SensorEntry = { id, intervalMs, severity, rules };
    const action = parseAction(c, e.action, `${path}.action`, id);
    if (action) entry.action = action;
    settings.sensors.push(entry);
  });
  return { settings, problems: c.problems };
}

/** `cpu.*` style globs, `*` = any run of characters */
export function globMatch(glob: string, id: string): boolean {
  if (!glob.includes('*')) return glob === id;
  const re = new RegExp(
    `^${glob
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\-]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(id);
}

/** default rules for a sensor watched without configuration */
export function defaultEntry(id: string): SensorEntry {
  const intervalMs = DEFAULTS.intervalMs;
  return {
    id,
    intervalMs,
    severity: DEFAULTS.severity,
    rules: {
      hysteresis: 0,
      forDurationMs: 0,
      anomaly: { ...DEFAULTS.anomaly },
      stuck: { ...DEFAULTS.stuck },
      forecast: null,
      missingAfterMs: DEFAULTS.missingFactor * intervalMs,
    },
  };
}
