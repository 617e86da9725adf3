/**
 * The Monitoring Hand: polls (or receives) sensor readings, scores them with the rules of
 * its settings (thresholds, anomalies, drift, stuck, forecast, missing data), raises alerts
 * with a suggested fix, keeps downsampled history, and optionally drives an actuator.
 *
 * Bus (relative to talon/<deviceId>/):
 *   alerts/<severity>           every alert event: JSON Alert (alerts.ts) — firing, resolved, flapping
 *   monitoring/status           retained counters, every settings.statusEveryMs
 *   sensors/<id>                pushed readings (JSON Reading), when the grant allows sensors/#
 * Requests (typed, from the kernel over the worker protocol; ./protocol.ts, served by ./surface.ts's
 * routes): status, sensors, active, alerts, history, ack, resolve.
 * Kernel services: sensors.list, sensors.read, actuators.write (actions; needs the actuator's
 * pin in the Hand's gpio grant).
 * Store (the Hand's own scope; the web admin may read it through the kernel):
 *   alerts/active/<sensor>|<rule>, alerts/history/<chunk>, alerts/meta      (alerts.ts)
 *   h/m/<sensor>/<hour>, h/h/<sensor>/<day>, h/i/<sensor>                   (history.ts)
 *
 * Nothing a sensor or a setting does may crash it: a read that throws, times out, or returns
 * NaN or text is counted and, after `faultAfter` in a row, raises a `sensor-fault` alert; it is
 * never fed to the detectors as a value. Bad settings are logged and raised as `config-error`
 * alerts while every sensor entry that is fine keeps being watched.
 */
import { defineHand, type RequestOf, type AnswerOf } from '../sdk/index.ts';
import type { HandContext, BusMessageIn } from '../sdk/types.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { protocol, type MonitoringProtocol } from './protocol.ts';
import type { Reading, SensorInfo } from '../../drivers/types.ts';
import { AlertLog, AlertManager, type Alert, type AlertInput } from './alerts.ts';
import { History, type Resolution } from './history.ts';
import { SensorMonitor, type Edge } from './monitor.ts';
import { PlaybookAdvisor, playbookFix, sensorKind, type Advisor, type SensorKind } from './playbooks.ts';
import { LlmAdvisor } from './advisor.ts';
import { answer, type MonitoringState } from './chat.ts';
import {
  defaultEntry,
  globMatch,
  parseSettings,
  settingsSchema,
  type ConfigProblem,
  type MonitoringSettings,
  type SensorEntry,
} from './settings.ts';

const DAY = 86_400_000;
const ADVISOR_TIMEOUT_MS = 5000;

type Req<K extends keyof MonitoringProtocol & string> = RequestOf<MonitoringProtocol, K>;
type Ans<K extends keyof MonitoringProtocol & string> = AnswerOf<MonitoringProtocol, K>;

interface Watched {
  info: SensorInfo;
  entry: SensorEntry;
  monitor: SensorMonitor;
  kind: SensorKind;
  /** performance of the read in flight: its start (ms epoch) and generation */
  inflightSince: number;
  gen: number;
  failures: number;
  actuator: boolean | undefined;
  actuating: boolean;
}

export interface Counters {
  polls: number;
  readings: number;
  pushed: number;
  /** readings with no usable value: NaN, text where a number was due, a malformed payload */
  invalid: number;
  /** a polled read returned the same reading as before (no new value) */
  stale: number;
  /** failed reads by error code (SENSOR_FAULT, SENSOR_TIMEOUT, …) */
  faults: Record<string, number>;
  /** polls skipped because the previous read of the sensor was still in flight */
  overruns: number;
  configErrors: number;
  alertsPublished: number;
  publishErrors: number;
  storeErrors: number;
  actions: number;
  actionErrors: number;
  /** typed requests answered (and refused) */
  queries: number;
  badQueries: number;
}

export class MonitoringHand {
  readonly ctx: HandContext;
  readonly settings: MonitoringSettings;
  readonly problems: ConfigProblem[];
  readonly advisor: Advisor;
  readonly alerts: AlertManager;
  readonly log: AlertLog;
  readonly history: History;
  readonly watched = new Map<string, Watched>();
  readonly counters: Counters = {
    polls: 0,
    readings: 0,
    pushed: 0,
    invalid: 0,
    stale: 0,
    faults: {},
    overruns: 0,
    configErrors: 0,
    alertsPublished: 0,
    publishErrors: 0,
    storeErrors: 0,
    actions: 0,
    actionErrors: 0,
    queries: 0,
    badQueries: 0,
  };
  readonly startedAt = Date.now();
  #emitQueue: Promise<void> = Promise.resolve();
  #timers: Array<() => void> = [];
  #stopped = false;
  #unmatched = new Set<number>();
  #pushedSubscribed = false;

  constructor(ctx: HandContext, advisor?: Advisor) {
    this.ctx = ctx;
    const { settings, problems } = parseSettings(ctx.settings);
    this.settings = settings;
    this.problems = problems;
    this.advisor =
      advisor ??
      new LlmAdvisor(
        (m, ...a) => ctx.call(m, ...a),
        new PlaybookAdvisor((s) => this.watched.get(s)?.kind ?? sensorKind(s)),
      );
    this.alerts = new AlertManager({
      ...settings.alerts,
      suggest: (a) => playbookFix(a.sensor, a.rule, this.watched.get(a.sensor)?.kind ?? sensorKind(a.sensor)),
    });
    this.log = new AlertLog(ctx.store, settings.alerts.historyMax);
    this.history = new History(ctx.store, settings.history);
    const storeError = (err: unknown): void => {
      this.counters.storeErrors++;
      if (this.counters.storeErrors <= 5 || this.counters.storeErrors % 100 === 0) {
        ctx.log('warn', `store write failed (${this.counters.storeErrors} so far): ${(err as Error).message}`);
      }
    };
    this.log.onError = storeError;
    this.history.onError = storeError;
  }

  async start(): Promise<void> {
    const ctx = this.ctx;
    try {
      this.alerts.restore(await this.log.load());
    } catch (err) {
      ctx.log('warn', `could not load the alert history: ${(err as Error).message}; starting with none`);
    }
    this.#reportProblems(this.problems);
    await this.#listAndWatch();
    this.#every(1000, () => this.#housekeeping());
    if (this.settings.statusEveryMs > 0) this.#every(this.settings.statusEveryMs, () => this.#publishStatus());
    this.#publishStatus();
    ctx.log('info', `monitoring ${this.watched.size} sensor(s)`, {
      sensors: [...this.watched.keys()].slice(0, 50),
      configProblems: this.problems.length,
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) t();
    await this.#emitQueue;
    await Promise.all([this.log.flush(), this.history.flush()]);
  }

  #every(ms: number, fn: () => void): void {
    this.#timers.push(this.ctx.timers.every(ms, fn));
  }

  // -- config -----------------------------------------------------------------------------------

  #reportProblems(problems: ConfigProblem[]): void {
    const bySensor = new Map<string, string[]>();
    for (const p of problems) {
      this.counters.configErrors++;
      this.ctx.log('error', `settings: ${p.message}`, { path: p.path });
      const key = p.sensor ?? 'settings';
      bySensor.set(key, [...(bySensor.get(key) ?? []), p.message]);
    }
    for (const [sensor, msgs] of bySensor) {
      this.#raise({
        sensor,
        rule: 'config-error',
        severity: 'warning',
        value: null,
        message: `configuration error: ${msgs.join('; ')}`,
      });
    }
  }

  async #listAndWatch(): Promise<void> {
    let list: SensorInfo[];
    try {
      const got = await this.ctx.call<SensorInfo[]>('sensors.list');
      list = Array.isArray(got) ? got.filter((s) => s && typeof s.id === 'string') : [];
    } catch (err) {
      this.counters.faults.LIST = (this.counters.faults.LIST ?? 0) + 1;
      this.ctx.log('error', `sensors.list failed: ${(err as Error).message}; retrying in 10 s`);
      this.#timers.push(
        this.ctx.timers.after(10_000, () => {
          if (!this.#stopped) void this.#listAndWatch();
        }),
      );
      return;
    }
    const fresh: Watched[] = [];
    if (this.settings.watchAll) {
      for (const info of list) {
        if (info.kind === 'string' || this.watched.has(info.id)) continue;
        fresh.push(this.#watch(info, defaultEntry(info.id)));
      }
    } else {
      this.settings.sensors.forEach((entry, i) => {
        const matches = list.filter((s) => globMatch(entry.id, s.id));
        if (matches.length === 0) {
          if (!this.#unmatched.has(i)) {
            this.#unmatched.add(i);
            const known =
              list
                .map((s) => s.id)
                .slice(0, 20)
                .join(', ') || 'none';
            const msg = `sensors[${i}]: "${entry.id}" names no sensor this Hand can read (known: ${known}); it is checked again every minute`;
            this.counters.configErrors++;
            this.ctx.log('error', `settings: ${msg}`);
            this.#raise({
              sensor: entry.id,
              rule: 'config-error',
              severity: 'warning',
              value: null,
              message: `configuration error: ${msg}`,
            });
          }
          return;
        }
        if (this.#unmatched.delete(i))
          this.#resolve(
            entry.id,
            'config-error',
            null,
            `"${entry.id}" now matches ${matches.map((s) => s.id).join(', ')}`,
          );
        for (const info of matches) {
          if (this.watched.has(info.id)) continue; // the first entry that matches a sensor wins
          fresh.push(this.#watch(info, entry));
        }
      });
    }
    for (const w of fresh) {
      try {
        await this.history.load(w.info.id, Date.now());
      } catch (err) {
        this.ctx.log('warn', `history of ${w.info.id} could not be loaded: ${(err as Error).message}`);
      }
    }
    this.#schedule(fresh);
    if (this.#unmatched.size > 0 || this.settings.watchAll) {
      this.#timers.push(
        this.ctx.timers.after(60_000, () => {
          if (!this.#stopped) void this.#listAndWatch();
        }),
      );
    }
  }

  #watch(info: SensorInfo, entry: SensorEntry): Watched {
    const w: Watched = {
      info,
      entry,
      kind: sensorKind(info.id, info.unit, info.deviceClass),
      monitor: new SensorMonitor(info.id, entry, {
        unit: info.unit,
        deviceClass: info.deviceClass,
        startedAt: Date.now(),
        numeric: info.kind === 'number',
      }),
      inflightSince: 0,
      gen: 0,
      failures: 0,
      actuator: undefined,
      actuating: false,
    };
    this.watched.set(info.id, w);
    return w;
  }

  #schedule(ws: Watched[]): void {
    const polled = new Map<number, Watched[]>();
    let pushed = false;
    for (const w of ws) {
      if (w.info.mode === 'pushed') pushed = true;
      else polled.set(w.entry.intervalMs, [...(polled.get(w.entry.intervalMs) ?? []), w]);
    }
    // one timer per interval, not per sensor: 50 sensors at 1 Hz wake the Hand once a second
    for (const [ms, group] of polled) {
      this.#every(ms, () => {
        for (const w of group) this.#poll(w);
      });
      for (const w of group) this.#poll(w);
    }
    if (pushed && !this.#pushedSubscribed) {
      this.#pushedSubscribed = true;
      this.ctx.bus
        .subscribe('sensors/#', (m) => this.#onPushed(m))
        .catch((err: unknown) => {
          this.#pushedSubscribed = false;
          this.#reportProblems([
            {
              path: 'capabilities.bus.subscribe',
              message: `pushed sensors cannot be received (${(err as Error).message}); grant bus.subscribe sensors/# to the Hand`,
            },
          ]);
          // fall back to polling: a pushed sensor answers read() with its latest value
          for (const w of ws) if (w.info.mode === 'pushed') this.#every(w.entry.intervalMs, () => this.#poll(w));
        });
    }
  }

  // -- readings ---------------------------------------------------------------------------------

  #readTimeout(w: Watched): number {
    return this.settings.readTimeoutMs > 0 ? this.settings.readTimeoutMs : Math.max(5000, 2 * w.entry.intervalMs);
  }

  #poll(w: Watched): void {
    if (this.#stopped) return;
    const now = Date.now();
    if (w.inflightSince > 0) {
      if (now - w.inflightSince < this.#readTimeout(w)) {
        this.counters.overruns++;
        return;
      }
      w.gen++; // abandon the hung read: a late answer is ignored
      w.inflightSince = 0;
      this.#failure(w, { code: 'SENSOR_TIMEOUT', message: `no answer within ${this.#readTimeout(w)} ms` });
    }
    const gen = ++w.gen;
    w.inflightSince = now;
    this.counters.polls++;
    this.ctx.call<Reading>('sensors.read', w.info.id).then(
      (r) => {
        if (gen !== w.gen) return;
        w.inflightSince = 0;
        this.#reading(w, r, false);
      },
      (err: unknown) => {
        if (gen !== w.gen) return;
        w.inflightSince = 0;
        if ((err as { code?: string }).code === 'HAND_STOPPED') return;
        this.#failure(w, err);
      },
    );
  }

  #onPushed(m: BusMessageIn): void {
    const id = m.topic.slice('sensors/'.length);
    const w = this.watched.get(id);
    // the kernel publishes polled sensors' readings too: those are already fed by our polls
    if (!w || w.info.mode !== 'pushed') return;
    this.counters.pushed++;
    if (m.json === undefined || typeof m.json !== 'object' || m.json === null) {
      this.counters.invalid++;
      this.#failure(w, {
        code: 'SENSOR_FAULT',
        message: `pushed a payload that is not a JSON Reading: ${JSON.stringify(m.text.slice(0, 60))}`,
      });
      return;
    }
    this.#reading(w, m.json as Reading, true);
  }

  /** a usable number from a reading, or an error message saying why not */
  #value(w: Watched, r: unknown): number | string {
    if (typeof r !== 'object' || r === null || !('value' in r))
      return `returned ${JSON.stringify(r)?.slice(0, 60)} instead of a Reading`;
    const v = (r as Reading).value;
    if (typeof v === 'number') return Number.isFinite(v) ? v : `returned ${String(v)}`;
    if (typeof v === 'boolean' && w.info.kind === 'boolean') return v ? 1 : 0;
    return `returned ${JSON.stringify(v)?.slice(0, 60)} where a ${w.info.kind === 'boolean' ? 'boolean' : 'number'} was due`;
  }

  #reading(w: Watched, r: Reading, pushed: boolean): void {
    if (this.#stopped) return;
    const v = this.#value(w, r);
    if (typeof v === 'string') {
      this.counters.invalid++;
      this.#failure(w, { code: 'SENSOR_FAULT', message: v });
      return;
    }
    const now = Date.now();
    const ts = typeof r.ts === 'number' && Number.isFinite(r.ts) && Math.abs(r.ts - now) < DAY ? r.ts : now;
    if (!pushed && w.monitor.samples > 0 && ts <= w.monitor.lastTs) {
      this.counters.stale++; // the same reading again: not new data (missing-data catches a long run)
      return;
    }
    this.counters.readings++;
    if (w.failures > 0) {
      w.failures = 0;
      if (this.alerts.isActive(w.info.id, 'sensor-fault'))
        this.#resolve(w.info.id, 'sensor-fault', v, `${w.info.id} reads again (${v})`);
    }
    this.history.add(w.info.id, ts, v);
    this.#edges(w.monitor.sample(v, ts), ts);
    if (w.entry.action) this.#act(w, v);
  }

  #failure(w: Watched, err: unknown): void {
    const e = err as { code?: unknown; message?: unknown };
    const code = typeof e?.code === 'string' ? e.code : 'INTERNAL';
    const message = typeof e?.message === 'string' ? e.message : String(err);
    this.counters.faults[code] = (this.counters.faults[code] ?? 0) + 1;
    w.failures++;
    if (
      w.failures === this.settings.faultAfter ||
      (w.failures > this.settings.faultAfter && !this.alerts.isActive(w.info.id, 'sensor-fault'))
    ) {
      this.ctx.log('warn', `${w.info.id}: ${w.failures} failed reads in a row (${code}: ${message})`);
      this.#raise({
        sensor: w.info.id,
        rule: 'sensor-fault',
        severity: 'warning',
        value: null,
        message: `${w.info.id} failed ${w.failures} reads in a row: ${code}: ${message}`,
      });
    }
  }

  // -- actions ----------------------------------------------------------------------------------

  #act(w: Watched, v: number): void {
    const a = w.entry.action!;
    let want: boolean | undefined;
    if (v > a.on.above && w.actuator !== true) want = true;
    else if (v < a.off.below && w.actuator !== false) want = false;
    if (want === undefined || w.actuating) return;
    w.actuating = true;
    const target = want;
    this.ctx.call('actuators.write', a.actuator, target).then(
      () => {
        w.actuating = false;
        w.actuator = target;
        this.counters.actions++;
        this.ctx.log(
          'info',
          `${a.actuator} ${target ? 'on' : 'off'}: ${w.info.id} is ${v} (on above ${a.on.above}, off below ${a.off.below})`,
        );
        if (this.alerts.isActive(w.info.id, 'action-failed'))
          this.#resolve(w.info.id, 'action-failed', v, `${a.actuator} switched ${target ? 'on' : 'off'}`);
      },
      (err: unknown) => {
        w.actuating = false;
        this.counters.actionErrors++;
        const e = err as { code?: string; message?: string };
        this.#raise({
          sensor: w.info.id,
          rule: 'action-failed',
          severity: 'warning',
          value: v,
          message: `could not switch ${a.actuator} ${target ? 'on' : 'off'}: ${e.code ?? 'INTERNAL'}: ${e.message ?? String(err)}`,
        });
      },
    );
  }

  // -- alerts -----------------------------------------------------------------------------------

  #edges(edges: Edge[], now: number): void {
    for (const e of edges) {
      if (e.op === 'raise') this.#raise(e.input, now);
      else this.#resolve(e.input.sensor, e.input.rule, e.input.value, e.input.message, now);
    }
  }

  #raise(input: AlertInput, now = Date.now()): void {
    this.#emit(this.alerts.raise(input, now));
  }

  #resolve(sensor: string, rule: string, value: number | null, message: string, now = Date.now()): void {
    this.#emit(this.alerts.resolve(sensor, rule, value, message, now));
  }

  /** enrich (suggested fix), publish and persist, in order */
  #emit(events: Alert[]): void {
    for (const ev of events) {
      this.#emitQueue = this.#emitQueue.then(async () => {
        if (ev.state !== 'resolved' && ev.ts === ev.since) ev.suggestedFix = await this.#suggest(ev);
        try {
          this.ctx.bus.publish(`alerts/${ev.severity}`, ev);
          this.counters.alertsPublished++;
        } catch (err) {
          this.counters.publishErrors++;
          this.ctx.log('error', `alert ${ev.id} could not be published: ${(err as Error).message}`);
        }
        void this.log.record(ev);
      });
    }
  }

  async #suggest(ev: Alert): Promise<string> {
    const recent = this.history.recent(ev.sensor, ev.ts - 10 * 60_000);
    const last = {
      ts: recent.ts.slice(-120),
      values: recent.values.slice(-120),
      unit: this.watched.get(ev.sensor)?.info.unit,
    };
    let timer: (() => void) | undefined;
    try {
      const fix = await Promise.race([
        this.advisor.suggestFix(ev, last),
        new Promise<string>((resolve) => {
          timer = this.ctx.timers.after(ADVISOR_TIMEOUT_MS, () => resolve(ev.suggestedFix));
        }),
      ]);
      if (typeof fix === 'string' && fix.length > 0) {
        const clipped = fix.slice(0, 2000);
        this.alerts.annotate(ev.sensor, ev.rule, clipped);
        return clipped;
      }
    } catch (err) {
      this.ctx.log('warn', `no suggested fix for ${ev.id}: ${(err as Error).message}`);
    } finally {
      timer?.();
    }
    return ev.suggestedFix;
  }

  // -- periodic -----------------------------------------------------------------------------------

  #housekeeping(): void {
    const now = Date.now();
    for (const w of this.watched.values()) {
      // a sensor whose reads fail is already reported by its sensor-fault alert
      if (w.failures >= this.settings.faultAfter && !w.monitor.holding.has('missing')) continue;
      this.#edges(w.monitor.checkMissing(now), now);
    }
    this.#emit(this.alerts.tick(now));
    this.history.tick(now);
  }

  status(): Record<string, unknown> {
    return {
      startedAt: this.startedAt,
      sensors: this.watched.size,
      active: this.alerts.active().length,
      counters: this.counters,
      alerts: this.alerts.counts,
      configProblems: this.problems.map((p) => p.message),
    };
  }

  #publishStatus(): void {
    try {
      this.ctx.bus.publish('monitoring/status', this.status(), { retain: true });
    } catch (err) {
      this.counters.publishErrors++;
      this.ctx.log('warn', `status could not be published: ${(err as Error).message}`);
    }
  }

  /** what chat answers from: active alerts and the watched sensors' latest values */
  chatState(): MonitoringState {
    return {
      alerts: this.alerts.active(),
      sensors: [...this.watched.values()].map((w) => ({
        id: w.info.id,
        name: w.info.name,
        unit: w.info.unit,
        last: Number.isNaN(w.monitor.last) ? null : w.monitor.last,
        lastTs: w.monitor.lastTs || null,
        failures: w.failures,
      })),
    };
  }

  // -- requests (./protocol.ts; the kernel validated each against its schema) ----------------------

  #bad(message: string): never {
    this.counters.badQueries++;
    throw new TalonError('BAD_REQUEST', message);
  }

  sensorList(): Ans<'sensors'> {
    return {
      sensors: [...this.watched.values()].map((w) => ({
        id: w.info.id,
        name: w.info.name,
        ...(w.info.unit !== undefined ? { unit: w.info.unit } : {}),
        kind: w.info.kind,
        intervalMs: w.entry.intervalMs,
        last: Number.isNaN(w.monitor.last) ? null : w.monitor.last,
        lastTs: w.monitor.lastTs || null,
        holding: [...w.monitor.holding],
        failures: w.failures,
      })),
    };
  }

  async alertHistory(q: Req<'alerts'>): Promise<Ans<'alerts'>> {
    return { alerts: await this.log.history({ sensor: q.sensor, from: q.from, to: q.to, limit: q.limit ?? 200 }) };
  }

  async sensorHistory(q: Req<'history'>, now = Date.now()): Promise<Ans<'history'>> {
    if (!this.watched.has(q.sensor))
      this.#bad(`history needs "sensor": one of ${[...this.watched.keys()].slice(0, 20).join(', ') || 'none'}`);
    const from = q.from ?? now - 3_600_000;
    const to = q.to ?? now;
    if (!(from <= to)) this.#bad(`from (${from}) must not be after to (${to})`);
    const h = await this.history.query(
      q.sensor,
      from,
      to,
      (q.resolution ?? 'auto') as Resolution,
      q.maxPoints ?? 1000,
      now,
    );
    return { sensor: q.sensor, from, to, ...h };
  }

  /** acknowledge or resolve an active alert by hand: the event is published and stored before the answer */
  async change(type: 'ack' | 'resolve', q: Req<'ack'>, now = Date.now()): Promise<Ans<'ack'>> {
    const ack = { by: q.by, at: now, ...(typeof q.note === 'string' && q.note.length > 0 ? { note: q.note } : {}) };
    const alert = type === 'ack' ? this.alerts.acknowledge(q.alertId, ack) : this.alerts.dismiss(q.alertId, ack, now);
    if (!alert)
      throw new TalonError('NOT_FOUND', `no active alert has the id ${JSON.stringify(q.alertId.slice(0, 80))}`);
    this.#emit([alert]);
    await this.#emitQueue;
    return { alert };
  }
}

let hand: MonitoringHand | null = null;

export default defineHand({
  manifest: {
    id: 'monitoring',
    version: '1.0.0',
    description:
      'Watches sensors: thresholds, anomalies, drift, stuck sensors, forecasts, missing data; alerts with suggested fixes; downsampled history',
    capabilities: {
      bus: { publish: ['alerts/#', 'monitoring/#'], subscribe: ['sensors/#'] },
      sensors: ['*'],
      gpio: [],
    },
    // fan/relay actions: only the pins a config grants (`capabilities: { gpio: [18] }`)
    // a fan's pin for actions; an LLM budget for suggested fixes (`capabilities: { llm: { tokensPerHour: 20000 } }`)
    optionalCapabilities: { gpio: Array.from({ length: 54 }, (_, pin) => pin), llm: { tokensPerHour: 1_000_000 } },
    quotas: { heapMb: 32 },
    settingsSchema: settingsSchema as unknown as Record<string, unknown>,
  },
  async start(ctx) {
    hand = new MonitoringHand(ctx);
    await hand.start();
  },
  async stop() {
    await hand?.stop();
    hand = null;
  },
  async chat(messages, ctx) {
    if (!hand) throw new Error('the Monitoring Hand is not running');
    return answer(messages, ctx, hand.chatState());
  },
  protocol,
  requests: {
    status: () => ({ status: running().status() }),
    sensors: () => running().sensorList(),
    active: () => ({ alerts: running().alerts.active() }),
    alerts: (q) => running().alertHistory(q),
    history: (q) => running().sensorHistory(q),
    ack: (q) => running().change('ack', q),
    resolve: (q) => running().change('resolve', q),
  },
});

/** the running Hand, counted as one request; HAND_STOPPED between stop() and the worker's end */
function running(): MonitoringHand {
  if (!hand) throw new TalonError('HAND_STOPPED', 'the Monitoring Hand is not running');
  hand.counters.queries++;
  return hand;
}
