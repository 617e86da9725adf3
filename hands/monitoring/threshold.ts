/**
 * A threshold rule: `above` and/or `below` with a hysteresis band and a minimum duration.
 *
 *   fires    when the value has been past the threshold (> above, < below) for forDurationMs
 *            (0 = on the first sample past it);
 *   resolves when the value comes back past the band: ≤ above − hysteresis (or ≥ below + hysteresis).
 *
 * Inside the band nothing changes: a firing alert stays firing, a pending one stays pending
 * (the clock keeps running), which is what stops a value hovering at the limit from chattering.
 * The relations between the numbers are validated by settings.ts (parseRules).
 */

export type Side = 'above' | 'below';

export interface ThresholdConfig {
  above?: number;
  below?: number;
  hysteresis: number;
  forDurationMs: number;
}

export interface ThresholdStep {
  state: 'ok' | 'pending' | 'firing';
  /** set on the sample that changed the firing state */
  change: 'fire' | 'resolve' | null;
  /** which limit is (or was) crossed */
  side: Side | null;
  /** the limit crossed */
  limit: number | null;
}

export class Threshold {
  readonly cfg: ThresholdConfig;
  #state: 'ok' | 'pending' | 'firing' = 'ok';
  #side: Side | null = null;
  #since = 0;

  constructor(cfg: ThresholdConfig) {
    this.cfg = cfg;
  }

  get state(): 'ok' | 'pending' | 'firing' {
    return this.#state;
  }

  /** true when the rule has anything to check */
  get active(): boolean {
    return this.cfg.above !== undefined || this.cfg.below !== undefined;
  }

  #past(v: number): Side | null {
    if (this.cfg.above !== undefined && v > this.cfg.above) return 'above';
    if (this.cfg.below !== undefined && v < this.cfg.below) return 'below';
    return null;
  }

  #cleared(v: number, side: Side): boolean {
    const h = this.cfg.hysteresis;
    return side === 'above' ? v <= this.cfg.above! - h : v >= this.cfg.below! + h;
  }

  #limit(side: Side | null): number | null {
    return side === null ? null : side === 'above' ? this.cfg.above! : this.cfg.below!;
  }

  update(v: number, ts: number): ThresholdStep {
    const past = this.#past(v);
    let change: ThresholdStep['change'] = null;
    switch (this.#state) {
      case 'ok':
        if (past) {
          this.#side = past;
          this.#since = ts;
          this.#state = 'pending';
        }
        break;
      case 'pending':
        if (past && past !== this.#side) {
          this.#side = past;
          this.#since = ts;
        } else if (!past && this.#cleared(v, this.#side!)) {
          this.#state = 'ok';
          this.#side = null;
        }
        break;
      case 'firing':
        if (past && past !== this.#side) {
          // jumped straight across to the other limit: resolve this side, start the other
          change = 'resolve';
          const was = this.#side;
          this.#side = past;
          this.#since = ts;
          this.#state = 'pending';
          return { state: 'pending', change, side: was, limit: this.#limit(was) };
        }
        if (!past && this.#cleared(v, this.#side!)) {
          const was = this.#side;
          this.#state = 'ok';
          this.#side = null;
          return { state: 'ok', change: 'resolve', side: was, limit: this.#limit(was) };
        }
        break;
    }
    if (this.#state === 'pending' && ts - this.#since >= this.cfg.forDurationMs) {
      this.#state = 'firing';
      change = 'fire';
    }
    return { state: this.#state, change, side: this.#side, limit: this.#limit(this.#side) };
  }
}
