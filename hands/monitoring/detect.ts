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
 *   floors    (kinds.ts) the std is also never below the sensor's `resolution` nor `scaleFloor`
 *             × |baseline|, and an outlier must also differ from the baseline by `minChange`
 *             (unit) and `minChangeRel` × |baseline|: a 0.3 % move of a disk is not news;
 *   robust    centre = median and spread = 1.4826 × MAD of the last ROBUST_WINDOW samples,
 *             for heavy-tailed rates (one burst does not move them);
 *   spikes    false: only `sustain` outliers in a row alert (as a shift): bursts do not;
 *   novelty   (optional) an outlier must also leave the range of the last `novelty` samples:
 *             the edges of a daily cycle alert once, while the cycle is new.
 * StuckDetector: the same value (within epsilon) for a run of samples that the sensor's own
 *   learned change rate makes implausible (P < 1e-6), never fewer than `samples`; or for
 *   `windowMs` while the sensor normally varies. A sensor that never varies is never "stuck", and
 *   a run must be longer than 1.5 × the longest run the sensor came out of by itself (a square
 *   wave's flat halves, a quiet night).
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
/** samples in the robust (median/MAD) window */
export const ROBUST_WINDOW = 60;

function median(a: ArrayLike<number>): number {
  const n = a.length;
  const m = n >> 1;
  return n % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

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
  readonly resolution: number;
  readonly minChange: number;
  readonly minChangeRel: number;
  readonly scaleFloor: number;
  readonly robust: boolean;
  readonly spikes: boolean;
  readonly sustain: number;
  /** robust mode: ring of the last ROBUST_WINDOW samples, and its median / scaled MAD */
  #ring: number[] = [];
  /** ROBUST_WINDOW, or more: a sustained change must not become the median before `sustain` samples */
  #window: number;
  #ringAt = 0;
  #scratch: [Float64Array, Float64Array] | null = null;
  center = 0;
  spread = 0;
  /** novelty: the last `novelty` samples, in arrival order and sorted */
  #hist: number[] = [];
  #histAt = 0;
  #sorted: number[] = [];

  constructor(cfg: AnomalySettings) {
    this.cfg = cfg;
    this.resolution = cfg.resolution ?? 0;
    this.minChange = cfg.minChange ?? 0;
    this.minChangeRel = cfg.minChangeRel ?? 0;
    this.scaleFloor = cfg.scaleFloor ?? 1e-3;
    this.robust = cfg.robust ?? false;
    this.spikes = cfg.spikes ?? true;
    this.sustain = cfg.sustain ?? cfg.shiftSamples;
    this.#window = Math.max(ROBUST_WINDOW, 2 * (this.spikes ? cfg.shiftSamples : this.sustain) + 2);
    this.#slowAlpha = cfg.alpha / 10;
    // the slow mean needs about 1/slowAlpha samples before its divergence means anything
    this.#driftStart = cfg.warmup + Math.ceil(3 / this.#slowAlpha);
  }

  get warm(): boolean {
    return this.n >= this.cfg.warmup;
  }

  /** the noise std: EWMA (or robust) spread, floored by resolution, scale and step size */
  std(): number {
    const c = this.robust ? this.center : this.mean;
    const spread = this.robust ? this.spread : Math.sqrt(this.variance);
    return Math.max(
      spread,
      this.cfg.minStd,
      0.5 * this.step,
      this.resolution,
      this.scaleFloor * Math.abs(c),
      1e-9 * Math.abs(c),
      1e-12,
    );
  }

  /** novelty gate: x lies outside the range of the remembered history (or there is none yet) */
  novel(x: number): boolean {
    const n = this.#sorted.length;
    if (n < this.cfg.warmup) return true;
    const lo = this.#sorted[0]!;
    const hi = this.#sorted[n - 1]!;
    const margin = (this.cfg.noveltyMargin ?? 0) * (hi - lo);
    return x > hi + margin || x < lo - margin;
  }

  #remember(x: number): void {
    const cap = this.cfg.novelty ?? 0;
    if (cap <= 0) return;
    const at = (v: number): number => {
      let lo = 0;
      let hi = this.#sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.#sorted[mid]! < v) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    if (this.#hist.length >= cap) {
      const old = this.#hist[this.#histAt]!;
      this.#sorted.splice(at(old), 1);
      this.#hist[this.#histAt] = x;
      this.#histAt = (this.#histAt + 1) % cap;
    } else this.#hist.push(x);
    this.#sorted.splice(at(x), 0, x);
  }

  /** the smallest change from `c` that may count as an anomaly at all */
  minDelta(c: number): number {
    return Math.max(this.minChange, this.minChangeRel * Math.abs(c));
  }

  #robustAdd(x: number): void {
    if (this.#ring.length < this.#window) this.#ring.push(x);
    else {
      this.#ring[this.#ringAt] = x;
      this.#ringAt = (this.#ringAt + 1) % this.#window;
    }
    // two scratch buffers, made once: no arrays per sample (typed arrays sort numerically)
    const n = this.#ring.length;
    if (!this.#scratch) this.#scratch = [new Float64Array(this.#window), new Float64Array(this.#window)];
    const sorted = this.#scratch[0].subarray(0, n);
    sorted.set(this.#ring);
    sorted.sort();
    const m = median(sorted);
    const dev = this.#scratch[1].subarray(0, n);
    for (let i = 0; i < n; i++) dev[i] = Math.abs(sorted[i]! - m);
    dev.sort();
    this.center = m;
    this.spread = 1.4826 * median(dev);
  }

  update(x: number): AnomalyStep {
    const a = this.cfg.alpha;
    if (this.n === 0) {
      this.mean = x;
      this.slow = x;
      this.prev = x;
      this.n = 1;
      if (this.robust) this.#robustAdd(x);
      this.#remember(x);
      return { warm: false, z: 0, kind: null, drift: false, driftScore: 0, mean: x, std: this.std() };
    }
    const mean = this.mean;
    const center = this.robust ? this.center : mean;
    const std = this.std();
    const z = (x - center) / std;
    const warm = this.n >= this.cfg.warmup;
    const k = this.cfg.z;
    let kind: AnomalyKind | null = null;
    let learn = x;
    const novelty = (this.cfg.novelty ?? 0) > 0;
    if (warm && Math.abs(z) > k && Math.abs(x - center) >= this.minDelta(center) && (!novelty || this.novel(x))) {
      const side = z > 0 ? 1 : -1;
      this.run = Math.sign(this.run) === side ? this.run + side : side;
      const runs = Math.abs(this.run);
      if (this.spikes) kind = runs >= this.cfg.shiftSamples ? 'shift' : 'spike';
      else kind = runs >= this.sustain ? 'shift' : null;
      if (!this.robust) learn = mean + side * k * std;
      if (kind === 'shift') this.#hold = Math.ceil(3 / a);
    } else {
      this.run = 0;
    }
    if (this.robust) this.#robustAdd(x);
    this.#remember(x);

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
      if (Math.max(this.cusumUp, this.cusumDown) < this.cfg.driftH / 2)
        this.divergence += this.#slowAlpha * (d * d - this.divergence);
      const allowance = 1.5;
      this.cusumUp = Math.max(0, this.cusumUp + g - allowance);
      this.cusumDown = Math.max(0, this.cusumDown - g - allowance);
      driftScore = Math.max(this.cusumUp, this.cusumDown);
      if (!this.drifting && driftScore > this.cfg.driftH && Math.abs(d) >= 0.5 * this.minDelta(this.slow))
        this.drifting = true;
      else if (this.drifting && driftScore === 0) this.drifting = false;
    } else if (this.n <= this.#driftStart) {
      if (this.n <= this.cfg.warmup + Math.ceil(1 / this.#slowAlpha)) this.slow = this.mean; // anchor the slow baseline on the warmed-up fast one
      const d = this.mean - this.slow;
      this.divergence += this.#slowAlpha * (d * d - this.divergence);
    }
    return { warm, z, kind, drift: this.drifting, driftScore, mean: center, std };
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

  /** the longest run that ended without being called stuck: runs that long are this sensor's normal */
  longest = 0;

  /**
   * the run length with chance < 1e-6 under the learned change rate, at least cfg.samples,
   * and longer than 1.5 × any run this sensor has had and come out of by itself
   */
  required(): number {
    const p = this.changeRate;
    if (p < 0.05) return Infinity; // the sensor does not normally vary: flat is normal
    const q = Math.min(1 - p, 0.999);
    return Math.max(
      this.cfg.samples,
      q <= 0 ? 0 : Math.ceil(Math.log(1e-6) / Math.log(q)),
      Math.floor(1.5 * this.longest) + 1,
    );
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
      if (this.n > 0 && !this.#flagged) this.longest = Math.max(this.longest, this.run);
      this.#flagged = false;
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
    const stuck =
      warm &&
      (this.run >= required ||
        (this.cfg.windowMs > 0 && this.changeRate >= 0.05 && this.run > 1 && ts - this.runStart >= this.cfg.windowMs));
    if (stuck) this.#flagged = true;
    return { stuck, run: this.run, required };
  }

  #flagged = false;

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
