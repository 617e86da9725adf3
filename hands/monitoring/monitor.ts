/**
 * One watched sensor: its rules wired to its detectors. Pure (no clock, no I/O): `sample()`
 * takes a validated number and its ts, `checkMissing(now)` is called periodically, and both
 * return the condition *edges* (a rule started or stopped holding) as AlertInputs for the
 * AlertManager. The Hand and the detection-quality test run exactly this code.
 *
 * Rules (the `rule` of the alerts): above, below (threshold.ts), anomaly (a spike or level
 * shift, detect.ts), drift, stuck, forecast (forecast.ts), missing.
 */
import { AnomalyDetector, MissingWatch, QUIET_SAMPLES, StuckDetector, type AnomalyKind } from './detect.ts';
import { TrendBuffer, formatDuration, timeToLimit } from './forecast.ts';
import type { AlertInput } from './alerts.ts';
import type { SensorEntry, Severity } from './settings.ts';
import { Threshold } from './threshold.ts';
import { anomalyProfile, resolveAnomaly } from './kinds.ts';

export interface Edge {
  /** raise: the condition holds (again, or with a new message); resolve: it stopped */
  op: 'raise' | 'resolve';
  input: AlertInput;
}

const r = (x: number): string => String(Number(x.toPrecision(4)));

export class SensorMonitor {
  readonly id: string;
  readonly entry: SensorEntry;
  readonly unit: string;
  readonly threshold: Threshold | null;
  readonly anomaly: AnomalyDetector | null;
  readonly stuck: StuckDetector | null;
  readonly trend: TrendBuffer | null;
  readonly missing: MissingWatch;
  /** rules currently holding */
  readonly holding = new Set<string>();
  /** the sensor kind's stuck mode (kinds.ts), unless the user tuned the rule */
  readonly stuckMode: 'on' | 'off' | 'nonzero';
  #quiet = 0;
  #anomalyKind: AnomalyKind | null = null;
  #forecastEvery = 0;
  samples = 0;
  last = NaN;
  lastTs = 0;

  constructor(
    id: string,
    entry: SensorEntry,
    opts: { unit?: string; deviceClass?: string; startedAt: number; numeric?: boolean },
  ) {
    this.id = id;
    this.entry = entry;
    this.unit = opts.unit ? ` ${opts.unit}` : '';
    const rules = entry.rules;
    const numeric = opts.numeric !== false;
    this.threshold = rules.above !== undefined || rules.below !== undefined ? new Threshold(rules) : null;
    this.anomaly =
      rules.anomaly && numeric
        ? new AnomalyDetector(resolveAnomaly(rules.anomaly, id, opts.unit, opts.deviceClass, entry.intervalMs))
        : null;
    this.stuckMode = rules.stuck?.explicit ? 'on' : anomalyProfile(id, opts.unit, opts.deviceClass).stuck;
    this.stuck = rules.stuck && numeric && this.stuckMode !== 'off' ? new StuckDetector(rules.stuck) : null;
    this.trend = rules.forecast ? new TrendBuffer(rules.forecast.windowMs) : null;
    this.missing = new MissingWatch(rules.missingAfterMs, opts.startedAt);
  }

  #input(rule: string, severity: Severity, value: number | null, message: string): AlertInput {
    return { sensor: this.id, rule, severity, value, message };
  }

  #set(out: Edge[], rule: string, on: boolean, input: () => AlertInput): void {
    if (on === this.holding.has(rule)) return;
    if (on) this.holding.add(rule);
    else this.holding.delete(rule);
    out.push({ op: on ? 'raise' : 'resolve', input: input() });
  }

  sample(v: number, ts: number): Edge[] {
    const out: Edge[] = [];
    this.samples++;
    this.last = v;
    this.lastTs = ts;
    this.missing.seen(ts);
    if (this.holding.has('missing'))
      this.#set(out, 'missing', false, () =>
        this.#input('missing', 'warning', v, `${this.id} is reporting again (${r(v)}${this.unit})`),
      );

    const sev = this.entry.severity;
    if (this.threshold) {
      const step = this.threshold.update(v, ts);
      if (step.change === 'fire') {
        const dur = this.entry.rules.forDurationMs > 0 ? ` for ${formatDuration(this.entry.rules.forDurationMs)}` : '';
        this.#set(out, step.side!, true, () =>
          this.#input(
            step.side!,
            sev,
            v,
            `${this.id} is ${r(v)}${this.unit}, ${step.side} ${r(step.limit!)}${this.unit}${dur}`,
          ),
        );
      } else if (step.change === 'resolve') {
        this.#set(out, step.side!, false, () =>
          this.#input(
            step.side!,
            sev,
            v,
            `${this.id} is back to ${r(v)}${this.unit} (limit ${step.side} ${r(step.limit!)}${this.unit}, hysteresis ${r(this.entry.rules.hysteresis)})`,
          ),
        );
      }
    }

    if (this.anomaly) {
      const a = this.anomaly.update(v);
      if (a.kind) {
        this.#quiet = 0;
        const kind = a.kind;
        const fresh = !this.holding.has('anomaly');
        if (fresh || (kind === 'shift' && this.#anomalyKind !== 'shift')) {
          this.#anomalyKind = kind;
          const what = kind === 'spike' ? 'a spike' : 'a level shift';
          const msg = `${this.id}: ${what}: ${r(v)}${this.unit} where ${r(a.mean)} ± ${r(a.std)} is usual (z = ${r(a.z)})`;
          if (fresh) this.#set(out, 'anomaly', true, () => this.#input('anomaly', 'warning', v, msg));
          else out.push({ op: 'raise', input: this.#input('anomaly', 'warning', v, msg) });
        }
      } else if (this.holding.has('anomaly') && ++this.#quiet >= QUIET_SAMPLES) {
        this.#anomalyKind = null;
        this.#set(out, 'anomaly', false, () =>
          this.#input('anomaly', 'warning', v, `${this.id} is back within its usual range (${r(v)}${this.unit})`),
        );
      }
      if (a.drift !== this.holding.has('drift')) {
        this.#set(out, 'drift', a.drift, () =>
          this.#input(
            'drift',
            'warning',
            v,
            a.drift
              ? `${this.id} is drifting: its recent level ${r(this.anomaly!.mean)}${this.unit} has moved away from its long-run level ${r(this.anomaly!.slow)}${this.unit}`
              : `${this.id} has settled (${r(v)}${this.unit})`,
          ),
        );
      }
    }

    if (this.stuck) {
      const s = this.stuck.update(v, ts);
      if (this.stuckMode === 'nonzero' && v === 0) s.stuck = false; // at rest, not stuck
      if (s.stuck !== this.holding.has('stuck')) {
        this.#set(out, 'stuck', s.stuck, () =>
          this.#input(
            'stuck',
            'warning',
            v,
            s.stuck
              ? `${this.id} has reported exactly ${r(v)}${this.unit} ${s.run} times in a row, though it normally varies`
              : `${this.id} is changing again (${r(v)}${this.unit})`,
          ),
        );
      }
    }

    if (this.trend) {
      this.trend.add(ts, v);
      // a least-squares fit is cheap but not free: every 10th sample is plenty for a forecast
      if (++this.#forecastEvery >= 10) {
        this.#forecastEvery = 0;
        this.#forecast(out, v);
      }
    }
    return out;
  }

  #forecast(out: Edge[], v: number): void {
    const f = this.entry.rules.forecast!;
    const t = this.trend!.trend();
    const holding = this.holding.has('forecast');
    if (!t || t.n < 10) return;
    const fc = timeToLimit(t, f.limit);
    const believable = t.r2 >= (holding ? f.minR2 * 0.8 : f.minR2);
    const soon = fc.etaMs <= (holding ? f.horizonMs * 1.2 : f.horizonMs);
    const on = believable && soon;
    if (on === holding) return;
    this.#set(out, 'forecast', on, () =>
      this.#input(
        'forecast',
        'warning',
        v,
        on
          ? fc.crossed || fc.etaMs <= 0
            ? `${this.id} has reached its forecast limit ${r(f.limit)}${this.unit}`
            : `${this.id} will reach ${r(f.limit)}${this.unit} in ${formatDuration(fc.etaMs)} at the current trend (${r(t.slope * 3_600_000)}${this.unit}/h, R² ${r(t.r2)})`
          : `${this.id}: the trend no longer reaches ${r(f.limit)}${this.unit} within ${formatDuration(f.horizonMs)}`,
      ),
    );
  }

  /** the missing-data rule; call periodically */
  checkMissing(now: number): Edge[] {
    const out: Edge[] = [];
    const m = this.missing.missing(now);
    if (m !== this.holding.has('missing')) {
      this.#set(out, 'missing', m, () =>
        this.#input(
          'missing',
          'warning',
          null,
          m
            ? `no reading from ${this.id} for ${formatDuration(now - this.missing.last)} (expected every ${formatDuration(this.entry.intervalMs)})`
            : `${this.id} is reporting again`,
        ),
      );
    }
    return out;
  }
}
