/**
 * Detectors that learn what normal looks like for one sensor, one sample at a time, in O(1)
 * time and memory. Pure: no clock, no I/O; the caller passes timestamps.
 *
 * AnomalyDetector
 *   baseline  EWMA mean and variance (weight alpha), trusted after `warmup` samples;
 *   floor     std is floored by max(minStd, ½ × the typical non-zero step between samples,
 *             1e-9 × |mean|): a quantised or almost constant sensor (21.0, 21.0, 21.1) does
 *             not turn one quantum into a 50-sigma event;
 *   spike     |z| > z on one sample; the baseline learns from the value clamped to mean ± z·std,
 *             so one wild sample cannot drag it;
 *   shift     `shiftSamples` outliers in a row on the same side: a step / level change;
 *   drift     a two-sided CUSUM on (fast mean − slow mean) / std, the slow mean having 1/10 of
 *             the weight: a slow ramp that the fast baseline follows sample by sample (so no
 *             single z stands out) still piles up in the CUSUM;
 * StuckDetector: the same value (within epsilon) for a run of samples that the sensor's own
 *   learned change rate makes implausible (P < 1e-6), never fewer than `samples`; or for
 *   `windowMs` while the sensor normally varies. A sensor that never varies is never "stuck".
 * MissingWatch: no reading for more than `afterMs`.
 */
import type { AnomalySettings, StuckSettings } from './settings.ts';

export type AnomalyKind = 'spike' | 'shift';

export interface AnomalyStep {
  /** the baseline is still warming up: nothing below is meaningful yet */
  warm: boolean;
  z: number;
  /** a sample-level anomaly on this sample */
  kind: AnomalyKind | null;
  /** the drift detector is in alarm */
  drift: boolean;
  /** the drift CUSUM (positive side or negative side, whichever is larger), in noise sigmas */
  driftScore: number;
  /** the learned baseline before this sample */
  mean: number;
  std: number;
}

/** samples within the band needed after an outlier before the anomaly counts as over */
export const QUIET_SAMPLES = 5;

export class AnomalyDetector {
  readonly cfg: AnomalySettings;
  n = 0;
  mean = 0;
  variance = 0;
  /** EWMA of |x − previous x| over non-zero steps */
  step = 0;
  prev = NaN;
  slow = 0;
  cusumUp = 0;
  cusumDown = 0;
  /** consecutive outliers on one side (+n above, −n below) */
  run = 0;
  drifting = false;
  /** EWMA of (fast mean − slow mean)²: how far the two usually diverge for this sensor */
  divergence = 0;
  #slowAlpha: number;
  #driftStart: number;
  #hold = 0;

  constructor(cfg: AnomalySettings) {
    this.cfg = cfg;
    this.#slowAlpha = cfg.alpha / 10;
    // the slow mean needs about 1/slowAlpha samples before its divergence means anything
    this.#driftStart = cfg.warmup + Math.ceil(3 / this.#slowAlpha);
  }

  get warm(): boolean {
    return this.n >= this.cfg.warmup;
  }

  std(): number {
    return Math.max(Math.sqrt(this.variance), this.cfg.minStd, 0.5 * this.step, 1e-9 * Math.abs(this.mean), 1e-12);
  }

  update(x: number): AnomalyStep {
    const a = this.cfg.alpha;
    if (this.n === 0) {
      this.mean = x;
      this.slow = x;
      this.prev = x;
      this.n = 1;
      return { warm: false, z: 0, kind: null, drift: false, driftScore: 0, mean: x, std: this.std() };
    }
    const mean = this.mean;
    const std = this.std();
    const z = (x - mean) / std;
    const warm = this.n >= this.cfg.warmup;
    const k = this.cfg.z;
    let kind: AnomalyKind | null = null;
    let learn = x;
    if (warm && Math.abs(z) > k) {
      const side = z > 0 ? 1 : -1;
      this.run = Math.sign(this.run) === side ? this.run + side : side;
      kind = Math.abs(this.run) >= this.cfg.shiftSamples ? 'shift' : 'spike';
      learn = mean + side * k * std;
      if (kind === 'shift') this.#hold = Math.ceil(3 / a);
    } else {
      this.run = 0;
    }

    // baseline (West's incremental EWMA variance), fed the clamped value
    const d = learn - mean;
    this.mean = mean + a * d;
    this.variance = (1 - a) * (this.variance + a * d * d);
    const dx = Math.abs(learn - this.prev);
    if (dx > 0) this.step = this.step === 0 ? dx : this.step + a * (Math.min(dx, k * std) - this.step);
    this.prev = x;
    this.slow += this.#slowAlpha * (learn - this.slow);
    this.n++;

    let driftScore = 0;
    if (this.#hold > 0) {
      // after an outlier the fast mean is still absorbing a step: that is the anomaly rule's
      // news, not a drift; keep the slow baseline with it until it has settled
      this.#hold--;
      if (!this.drifting && this.n > this.cfg.warmup) {
        this.slow = this.mean;
        this.cusumUp = 0;
        this.cusumDown = 0;
      }
    } else if (this.cfg.drift && this.n > this.#driftStart) {
      // the divergence is scaled by the sample noise *and* by how far the two means usually
      // diverge for this sensor (a sine or a random walk diverges too): only an unusual
      // divergence piles up. Its scale is not learned while a drift is suspected.
      const d = this.mean - this.slow;
      const sd = this.std();
      const g = d / Math.sqrt(sd * sd + this.divergence);
      if (Math.max(this.cusumUp, this.cusumDown) < this.cfg.driftH / 2) this.divergence += this.#slowAlpha * (d * d - this.divergence);
      const allowance = 1.5;
      this.cusumUp = Math.max(0, this.cusumUp + g - allowance);
      this.cusumDown = Math.max(0, this.cusumDown - g - allowance);
      driftScore = Math.max(this.cusumUp, this.cusumDown);
      if (!this.drifting && driftScore > this.cfg.driftH) this.drifting = true;
      else if (this.drifting && driftScore === 0) this.drifting = false;
    } else if (this.n <= this.#driftStart) {
      if (this.n <= this.cfg.warmup + Math.ceil(1 / this.#slowAlpha)) this.slow = this.mean; // anchor the slow baseline on the warmed-up fast one
      const d = this.mean - this.slow;
      this.divergence += this.#slowAlpha * (d * d - this.divergence);
    }
    return { warm, z, kind, drift: this.drifting, driftScore, mean, std };
  }
}

export interface StuckStep {
  stuck: boolean;
  /** identical samples in a row */
  run: number;
  /** the run length that counts as stuck for this sensor now (Infinity: it never varies) */
  required: number;
}

export class StuckDetector {
  readonly cfg: StuckSettings;
  n = 0;
  prev = NaN;
  run = 0;
  runStart = 0;
  /** learned probability that a sample differs from the previous one */
  changeRate = 0.5;

  constructor(cfg: StuckSettings) {
    this.cfg = cfg;
  }

  /** the run length with chance < 1e-6 under the learned change rate, at least cfg.samples */
  required(): number {
    const p = this.changeRate;
    if (p < 0.05) return Infinity; // the sensor does not normally vary: flat is normal
    const q = Math.min(1 - p, 0.999);
    return Math.max(this.cfg.samples, q <= 0 ? 0 : Math.ceil(Math.log(1e-6) / Math.log(q)));
  }

  #changes = 0;

  update(x: number, ts: number): StuckStep {
    const warmN = Math.max(20, this.cfg.samples * 2);
    const changed = this.n > 0 && Math.abs(x - this.prev) > this.cfg.epsilon;
    if (this.n > 0 && this.n < warmN) {
      // warm-up: the exact share of changing samples (a sensor that never varies learns 0)
      if (changed) this.#changes++;
      this.changeRate = this.#changes / this.n;
    }
    if (this.n === 0 || changed) {
      if (this.n >= warmN) this.#learn(1);
      this.run = 1;
      this.runStart = ts;
    } else {
      this.run++;
      // stop learning inside a suspicious run, or a stuck sensor would teach us that flat is normal
      if (this.n >= warmN && this.run < this.cfg.samples) this.#learn(0);
    }
    this.prev = x;
    this.n++;
    const required = this.required();
    const warm = this.n >= warmN;
    const stuck = warm && (this.run >= required
      || (this.cfg.windowMs > 0 && this.changeRate >= 0.05 && this.run > 1 && ts - this.runStart >= this.cfg.windowMs));
    return { stuck, run: this.run, required };
  }

  #learn(changed: 0 | 1): void {
    this.changeRate += 0.02 * (changed - this.changeRate);
  }
}

export class MissingWatch {
  readonly afterMs: number;
  /** ts of the last good reading (or of the start, so a sensor that never answers is caught too) */
  last: number;

  constructor(afterMs: number, startedAt: number) {
    this.afterMs = afterMs;
    this.last = startedAt;
  }

  seen(ts: number): void {
    if (ts > this.last) this.last = ts;
  }

  /** true while no reading came for more than afterMs (afterMs 0 = off) */
  missing(now: number): boolean {
    return this.afterMs > 0 && now - this.last > this.afterMs;
  }
}
