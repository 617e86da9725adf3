/**
 * Alerts: what turns detector output into the few messages a person should see.
 *
 * AlertManager (pure state, injectable time: every method takes `now`): one slot per
 * key = sensor + rule. Callers report the underlying condition with raise()/resolve() as
 * often as they like; the manager returns only the events worth publishing:
 *   dedup      raising an alert that is already firing returns nothing (a higher severity
 *              re-publishes it as an escalation, same id);
 *   flapping   when the condition flips `flapTransitions` times within `flapWindowMs`, one
 *              `flapping` event replaces the fire/resolve storm; it ends once the flips in the
 *              window drop to half that, with a `firing` or `resolved` event for the real state;
 *   cool-down  after a resolve, the same key does not fire again for `cooldownMs`; a raise in
 *              that time is held and fires when the cool-down ends if the condition still holds;
 *   resolve    a firing (or flapping) alert that clears yields one `resolved` event, same id.
 * tick(now) must be called periodically (the Hand does every second) to end cool-downs and
 * flapping.
 *
 * AlertLog: the store side. `alerts/active/<sensor>|<rule>` holds each active alert;
 * `alerts/history/<seq>` chunks of up to CHUNK events hold the history, oldest chunks deleted
 * past `historyMax` events; `alerts/meta` = { first, last } chunk numbers.
 */
import type { Severity } from './settings.ts';
import type { HandStore } from '../sdk/types.ts';

export type AlertState = 'firing' | 'resolved' | 'flapping';

/** The payload published on alerts/<severity> and kept in the store. */
export interface Alert {
  /** stable across the alert's life: its firing, escalations, flapping and resolved events */
  id: string;
  sensor: string;
  /** above, below, spike/shift (anomaly), drift, stuck, forecast, missing, sensor-fault, config-error, action-failed */
  rule: string;
  severity: Severity;
  state: AlertState;
  /** the value that raised (or resolved) it; null when there is none (faults, missing data) */
  value: number | null;
  message: string;
  suggestedFix: string;
  /** ms epoch the alert started firing */
  since: number;
  /** ms epoch of this event */
  ts: number;
  /** set once a person acknowledged it (kept through its later events) */
  acknowledged?: Acknowledgement;
  /** set when a person resolved it by hand */
  resolvedBy?: Acknowledgement;
}

export interface Acknowledgement {
  by: string;
  /** ms epoch */
  at: number;
  note?: string;
}

export interface AlertInput {
  sensor: string;
  rule: string;
  severity: Severity;
  value: number | null;
  message: string;
}

export interface AlertOptions {
  cooldownMs: number;
  flapWindowMs: number;
  flapTransitions: number;
  /** the fix attached when an alert fires (playbooks); the Hand may refine it later with annotate() */
  suggest?: (a: AlertInput) => string;
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

interface Slot {
  sensor: string;
  rule: string;
  state: 'ok' | 'firing' | 'flapping' | 'cooldown';
  /** the underlying condition as last reported */
  cond: boolean;
  last: AlertInput;
  current: Alert | null;
  /** ts of condition flips, oldest first, within the flap window */
  flips: number[];
  resolvedAt: number;
  /** a raise held back by the cool-down */
  held: boolean;
}

export const alertKey = (sensor: string, rule: string): string => `${sensor}|${rule}`;

export class AlertManager {
  readonly opts: AlertOptions;
  #slots = new Map<string, Slot>();
  #seq = 0;
  /** counters: events by kind, raises swallowed by dedup / cool-down / flapping */
  readonly counts = {
    fired: 0,
    resolved: 0,
    flapping: 0,
    escalated: 0,
    deduped: 0,
    heldByCooldown: 0,
    suppressedByFlapping: 0,
  };

  constructor(opts: AlertOptions) {
    this.opts = opts;
  }

  #slot(sensor: string, rule: string, input: AlertInput): Slot {
    const key = alertKey(sensor, rule);
    let s = this.#slots.get(key);
    if (!s) {
      s = {
        sensor,
        rule,
        state: 'ok',
        cond: false,
        last: input,
        current: null,
        flips: [],
        resolvedAt: -Infinity,
        held: false,
      };
      this.#slots.set(key, s);
    }
    return s;
  }

  #flip(s: Slot, now: number): void {
    s.flips.push(now);
    this.#prune(s, now);
  }

  #prune(s: Slot, now: number): void {
    const from = now - this.opts.flapWindowMs;
    let i = 0;
    while (i < s.flips.length && s.flips[i]! <= from) i++;
    if (i > 0) s.flips.splice(0, i);
    if (s.flips.length > this.opts.flapTransitions * 2)
      s.flips.splice(0, s.flips.length - this.opts.flapTransitions * 2);
  }

  #event(s: Slot, state: AlertState, input: AlertInput, now: number): Alert {
    if (!s.current) {
      const since = now;
      s.current = {
        id: `${input.rule}:${input.sensor}:${since.toString(36)}${(this.#seq++ % 1296).toString(36).padStart(2, '0')}`,
        sensor: input.sensor,
        rule: input.rule,
        severity: input.severity,
        state,
        value: input.value,
        message: input.message,
        suggestedFix: this.opts.suggest?.(input) ?? '',
        since,
        ts: now,
      };
    } else {
      s.current = { ...s.current, state, value: input.value, message: input.message, ts: now };
      if (state !== 'resolved' && RANK[input.severity] > RANK[s.current.severity]) s.current.severity = input.severity;
    }
    return { ...s.current };
  }

  #fire(s: Slot, input: AlertInput, now: number): Alert {
    s.state = 'firing';
    s.held = false;
    this.counts.fired++;
    return this.#event(s, 'firing', input, now);
  }

  #enterFlapping(s: Slot, now: number): Alert {
    s.state = 'flapping';
    s.held = false;
    this.counts.flapping++;
    const n = s.flips.length;
    return this.#event(
      s,
      'flapping',
      {
        ...s.last,
        message: `${s.last.sensor} ${s.last.rule} is flapping: ${n} changes within ${Math.round(this.opts.flapWindowMs / 1000)} s; further changes are held until it settles. Last: ${s.last.message}`,
      },
      now,
    );
  }

  #isFlapping(s: Slot): boolean {
    return s.flips.length >= this.opts.flapTransitions;
  }

  raise(input: AlertInput, now: number): Alert[] {
    const s = this.#slot(input.sensor, input.rule, input);
    s.last = input;
    if (!s.cond) {
      s.cond = true;
      this.#flip(s, now);
    }
    switch (s.state) {
      case 'flapping':
        this.counts.suppressedByFlapping++;
        return [];
      case 'firing': {
        if (this.#isFlapping(s)) return [this.#enterFlapping(s, now)];
        if (s.current && RANK[input.severity] > RANK[s.current.severity]) {
          this.counts.escalated++;
          return [this.#event(s, 'firing', input, now)];
        }
        this.counts.deduped++;
        if (s.current) s.current = { ...s.current, value: input.value };
        return [];
      }
      case 'cooldown':
        if (this.#isFlapping(s)) return [this.#enterFlapping(s, now)];
        if (now - s.resolvedAt < this.opts.cooldownMs) {
          if (!s.held) this.counts.heldByCooldown++;
          s.held = true;
          return [];
        }
        return [this.#fire(s, input, now)];
      case 'ok':
        if (this.#isFlapping(s)) return [this.#enterFlapping(s, now)];
        return [this.#fire(s, input, now)];
    }
  }

  resolve(sensor: string, rule: string, value: number | null, message: string, now: number): Alert[] {
    const key = alertKey(sensor, rule);
    const s = this.#slots.get(key);
    if (!s) return [];
    if (s.cond) {
      s.cond = false;
      this.#flip(s, now);
    }
    switch (s.state) {
      case 'flapping':
        this.counts.suppressedByFlapping++;
        return [];
      case 'firing':
        if (this.#isFlapping(s)) return [this.#enterFlapping(s, now)];
        return [this.#resolve(s, value, message, now)];
      case 'cooldown':
        s.held = false;
        if (this.#isFlapping(s)) return [this.#enterFlapping(s, now)];
        return [];
      case 'ok':
        return [];
    }
  }

  #resolve(s: Slot, value: number | null, message: string, now: number): Alert {
    s.state = 'cooldown';
    s.resolvedAt = now;
    s.held = false;
    this.counts.resolved++;
    const ev = this.#event(s, 'resolved', { ...s.last, value, message }, now);
    s.current = null;
    return ev;
  }

  /** end cool-downs (firing held raises) and flapping states; call periodically */
  tick(now: number): Alert[] {
    const out: Alert[] = [];
    for (const s of this.#slots.values()) {
      if (s.state === 'cooldown' && now - s.resolvedAt >= this.opts.cooldownMs) {
        if (s.held && s.cond) out.push(this.#fire(s, s.last, now));
        else if (!s.cond) {
          s.state = 'ok';
          s.held = false;
        }
      } else if (s.state === 'flapping') {
        this.#prune(s, now);
        if (s.flips.length <= Math.floor(this.opts.flapTransitions / 2)) {
          if (s.cond) {
            s.state = 'firing';
            out.push(
              this.#event(s, 'firing', { ...s.last, message: `${s.last.message} (settled after flapping)` }, now),
            );
          } else {
            out.push(this.#resolve(s, s.last.value, `${s.last.sensor} ${s.last.rule} settled after flapping`, now));
          }
        }
      }
    }
    return out;
  }

  #byId(id: string): Slot | undefined {
    for (const s of this.#slots.values())
      if (s.current?.id === id && (s.state === 'firing' || s.state === 'flapping')) return s;
    return undefined;
  }

  /** mark an active alert acknowledged; returns the updated alert, or null when no active alert has that id */
  acknowledge(id: string, ack: Acknowledgement): Alert | null {
    const s = this.#byId(id);
    if (!s?.current) return null;
    s.current = { ...s.current, acknowledged: { ...ack } };
    return { ...s.current };
  }

  /**
   * Resolve an active alert by hand: one `resolved` event, then the usual cool-down; if the
   * condition still holds when the cool-down ends, it fires again (with a new id).
   */
  dismiss(id: string, ack: Acknowledgement, now: number): Alert | null {
    const s = this.#byId(id);
    if (!s?.current) return null;
    s.current = { ...s.current, resolvedBy: { ...ack } };
    const ev = this.#resolve(s, s.last.value, `resolved by ${ack.by}${ack.note ? `: ${ack.note}` : ''}`, now);
    s.held = s.cond; // still true: fires again once the cool-down ends
    return ev;
  }

  /** replace the suggested fix of an active alert (a slower advisor answered) */
  annotate(sensor: string, rule: string, fix: string): void {
    const s = this.#slots.get(alertKey(sensor, rule));
    if (s?.current) s.current = { ...s.current, suggestedFix: fix };
  }

  isActive(sensor: string, rule: string): boolean {
    const s = this.#slots.get(alertKey(sensor, rule));
    return !!s && (s.state === 'firing' || s.state === 'flapping');
  }

  active(): Alert[] {
    const out: Alert[] = [];
    for (const s of this.#slots.values())
      if (s.current && (s.state === 'firing' || s.state === 'flapping')) out.push({ ...s.current });
    return out;
  }

  /** adopt alerts that were active when the Hand last stopped: they resolve normally, they are not raised twice */
  restore(alerts: Alert[]): void {
    for (const a of alerts) {
      if (a.state === 'resolved') continue;
      const input: AlertInput = {
        sensor: a.sensor,
        rule: a.rule,
        severity: a.severity,
        value: a.value,
        message: a.message,
      };
      const s = this.#slot(a.sensor, a.rule, input);
      s.state = 'firing';
      s.cond = true;
      s.current = { ...a, state: 'firing' };
    }
  }
}

// -- persistence ------------------------------------------------------------------------------

export const CHUNK = 50;
const pad = (n: number): string => String(n).padStart(10, '0');

export class AlertLog {
  readonly store: HandStore;
  readonly historyMax: number;
  #meta = { first: 0, last: 0 };
  #chunk: Alert[] = [];
  #queue: Promise<void> = Promise.resolve();
  errors = 0;
  onError: (err: unknown) => void = () => {};

  constructor(store: HandStore, historyMax: number) {
    this.store = store;
    this.historyMax = historyMax;
  }

  /** read the meta and the newest chunk; returns the alerts active at the last stop */
  async load(): Promise<Alert[]> {
    const meta = await this.store.get<{ first: number; last: number }>('alerts/meta');
    if (meta && Number.isInteger(meta.first) && Number.isInteger(meta.last) && meta.last >= meta.first) {
      this.#meta = { first: meta.first, last: meta.last };
      this.#chunk = (await this.store.get<Alert[]>(`alerts/history/${pad(meta.last)}`)) ?? [];
      if (!Array.isArray(this.#chunk)) this.#chunk = [];
    }
    const active = await this.store.list<Alert>({ prefix: 'alerts/active/' });
    return active.map(([, a]) => a).filter((a) => a && typeof a === 'object' && typeof a.id === 'string');
  }

  #enqueue(fn: () => Promise<void>): Promise<void> {
    this.#queue = this.#queue.then(fn).catch((err: unknown) => {
      this.errors++;
      this.onError(err);
    });
    return this.#queue;
  }

  /** persist one event: the active entry and the history */
  record(a: Alert): Promise<void> {
    const ev = { ...a };
    return this.#enqueue(async () => {
      const activeKey = `alerts/active/${alertKey(ev.sensor, ev.rule)}`;
      if (ev.state === 'resolved') await this.store.del(activeKey);
      else await this.store.put(activeKey, ev);
      if (this.#chunk.length >= CHUNK) {
        this.#meta.last++;
        this.#chunk = [];
      }
      this.#chunk.push(ev);
      await this.store.put(`alerts/history/${pad(this.#meta.last)}`, this.#chunk);
      const maxChunks = Math.ceil(this.historyMax / CHUNK) + 1; // at least historyMax events stay
      while (this.#meta.last - this.#meta.first + 1 > maxChunks) {
        await this.store.del(`alerts/history/${pad(this.#meta.first)}`);
        this.#meta.first++;
      }
      await this.store.put('alerts/meta', this.#meta);
    });
  }

  /** wait for the writes queued so far */
  flush(): Promise<void> {
    return this.#queue;
  }

  /** events newest first, optionally for one sensor and a time range */
  async history(q: { sensor?: string; from?: number; to?: number; limit?: number } = {}): Promise<Alert[]> {
    await this.flush();
    const limit = Math.min(Math.max(1, q.limit ?? 200), 5000);
    const out: Alert[] = [];
    for (let c = this.#meta.last; c >= this.#meta.first && out.length < limit; c--) {
      const chunk = c === this.#meta.last ? this.#chunk : await this.store.get<Alert[]>(`alerts/history/${pad(c)}`);
      if (!Array.isArray(chunk)) continue;
      for (let i = chunk.length - 1; i >= 0 && out.length < limit; i--) {
        const a = chunk[i]!;
        if (q.sensor !== undefined && a.sensor !== q.sensor) continue;
        if (q.from !== undefined && a.ts < q.from) continue;
        if (q.to !== undefined && a.ts > q.to) continue;
        out.push(a);
      }
      if (q.from !== undefined && chunk.length > 0 && chunk[0]!.ts < q.from) break;
    }
    return out;
  }
}
