import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Threshold } from '../../../hands/monitoring/threshold.ts';
import { AlertLog, AlertManager, type Alert } from '../../../hands/monitoring/alerts.ts';
import { fitTrend, formatDuration, timeToLimit, TrendBuffer } from '../../../hands/monitoring/forecast.ts';
import { History, HOUR, MINUTE, DAY } from '../../../hands/monitoring/history.ts';
import { parseSettings, globMatch } from '../../../hands/monitoring/settings.ts';
import { AnomalyDetector, MissingWatch, StuckDetector } from '../../../hands/monitoring/detect.ts';
import { PlaybookAdvisor, playbookFix, sensorKind } from '../../../hands/monitoring/playbooks.ts';
import { DEFAULTS } from '../../../hands/monitoring/settings.ts';
import { memStore } from '../../helpers/mem-store.ts';

test('threshold: hysteresis band and minimum duration', () => {
  const t = new Threshold({ above: 70, hysteresis: 10, forDurationMs: 3000 });
  assert.equal(t.update(71, 0).change, null); // pending
  assert.equal(t.update(72, 2000).change, null);
  assert.equal(t.update(69, 2500).state, 'pending'); // inside the band: the clock keeps running
  const fired = t.update(71, 3000);
  assert.equal(fired.change, 'fire');
  assert.equal(fired.side, 'above');
  assert.equal(t.update(65, 4000).change, null); // in the band: still firing
  assert.equal(t.update(60, 5000).change, 'resolve'); // at above − hysteresis
  assert.equal(t.state, 'ok');
  // a short excursion never fires
  assert.equal(t.update(90, 10_000).change, null);
  assert.equal(t.update(50, 11_000).change, null);
  assert.equal(t.update(90, 12_000).change, null);
  assert.equal(t.state, 'pending');
  const below = new Threshold({ below: 10, hysteresis: 2, forDurationMs: 0 });
  assert.equal(below.update(9, 0).change, 'fire');
  assert.equal(below.update(11, 1).change, null);
  assert.equal(below.update(12, 2).change, 'resolve');
});

test('settings: a threshold below its hysteresis band, bad actions and bad entries are named errors; good entries survive', () => {
  const { settings, problems } = parseSettings({
    sensors: [
      { id: 'greenhouse.temp', rules: { above: 30, below: 10, hysteresis: 12 } },
      { id: 'cpu.temp', rules: { above: 70, hysteresis: -1 } },
      {
        id: 'soc.temp',
        rules: { above: 80, hysteresis: 5 },
        action: { actuator: 'fan', on: { above: 60 }, off: { below: 70 } },
      },
      { id: 'BAD ID' },
      { id: 'disk.used', intervalMs: 60000, rules: { forecast: { limit: 95, horizonMs: 3 * 3600_000 } } },
      { id: 'x', rules: { below: 50, above: 40 } },
    ],
    alerts: { cooldownMs: -5 },
  });
  const msgs = problems.map((p) => p.message).join('\n');
  assert.match(
    msgs,
    /sensor "greenhouse\.temp": threshold above 30 is below its hysteresis band: it resolves under 18 .*below 10 \(resolves over 22\)/,
  );
  assert.match(msgs, /sensor "cpu\.temp": hysteresis is -1/);
  assert.match(msgs, /action fan: off below 70 is not under on above 60/);
  assert.match(msgs, /sensors\[3\] needs an id/);
  assert.match(msgs, /below 50 is not under above 40/);
  assert.match(msgs, /alerts\.cooldownMs is -5/);
  assert.deepEqual(
    settings.sensors.map((s) => s.id),
    ['soc.temp', 'disk.used'],
  );
  assert.equal(settings.sensors[0]!.action, undefined); // the bad action is dropped, the rule kept
  assert.equal(settings.sensors[1]!.rules.forecast!.limit, 95);
  assert.equal(settings.sensors[1]!.rules.missingAfterMs, 180_000);
  assert.equal(settings.alerts.cooldownMs, DEFAULTS.alerts.cooldownMs);
  assert.equal(parseSettings(undefined).settings.watchAll, true);
  assert.equal(parseSettings('nonsense').problems.length, 1);
  assert.ok(globMatch('cpu.*', 'cpu.load') && !globMatch('cpu.*', 'gpu.load') && globMatch('a-b', 'a-b'));
});

const input = (over: Partial<{ severity: 'info' | 'warning' | 'critical'; value: number }> = {}) =>
  ({ sensor: 's', rule: 'above', severity: over.severity ?? 'warning', value: over.value ?? 1, message: 'm' }) as const;

test('alerts: dedup, escalation, resolve with the same id, cool-down holds a re-raise', () => {
  const m = new AlertManager({ cooldownMs: 1000, flapWindowMs: 60_000, flapTransitions: 100, suggest: () => 'fix it' });
  const [a] = m.raise(input(), 0);
  assert.equal(a!.state, 'firing');
  assert.equal(a!.suggestedFix, 'fix it');
  assert.deepEqual(m.raise(input(), 10), []); // dedup
  const [esc] = m.raise(input({ severity: 'critical' }), 20);
  assert.equal(esc!.id, a!.id);
  assert.equal(esc!.severity, 'critical');
  const [r] = m.resolve('s', 'above', 0, 'ok', 30);
  assert.equal(r!.state, 'resolved');
  assert.equal(r!.id, a!.id);
  assert.equal(r!.since, 0);
  assert.deepEqual(m.resolve('s', 'above', 0, 'ok', 31), []);
  assert.deepEqual(m.raise(input(), 500), []); // within the cool-down: held
  assert.deepEqual(m.tick(900), []);
  const [again] = m.tick(1030);
  assert.equal(again!.state, 'firing');
  assert.notEqual(again!.id, a!.id);
  // a held raise that clears within the cool-down never fires
  m.resolve('s', 'above', 0, 'ok', 1100);
  m.raise(input(), 1200);
  m.resolve('s', 'above', 0, 'ok', 1300);
  assert.deepEqual(m.tick(5000), []);
  assert.equal(m.counts.fired, 2);
});

test('alerts: flapping replaces a fire/resolve storm with one flapping event, then settles', () => {
  const m = new AlertManager({ cooldownMs: 0, flapWindowMs: 10_000, flapTransitions: 6 });
  const events: Alert[] = [];
  for (let i = 0; i < 20; i++) {
    events.push(...(i % 2 === 0 ? m.raise(input(), i * 100) : m.resolve('s', 'above', 0, 'ok', i * 100)));
  }
  const flapping = events.filter((e) => e.state === 'flapping');
  assert.equal(flapping.length, 1);
  assert.ok(events.length <= 6, `storm of ${events.length} events`);
  assert.ok(m.isActive('s', 'above'));
  // last report was a resolve (i = 19): once quiet for the window it resolves
  const settled = m.tick(100_000);
  assert.equal(settled.length, 1);
  assert.equal(settled[0]!.state, 'resolved');
  assert.equal(settled[0]!.id, flapping[0]!.id);
});

test('alert log: active entries, bounded history, newest first, restore after restart', async () => {
  const store = memStore();
  const log = new AlertLog(store, 120);
  const m = new AlertManager({ cooldownMs: 0, flapWindowMs: 1000, flapTransitions: 1000 });
  for (let i = 0; i < 200; i++) {
    for (const e of m.raise({ ...input(), sensor: `s${i % 3}` }, i * 10_000)) void log.record(e);
    for (const e of m.resolve(`s${i % 3}`, 'above', 0, 'ok', i * 10_000 + 5000)) void log.record(e);
  }
  for (const e of m.raise(input(), 3_000_000)) void log.record(e);
  await log.flush();
  const chunks = [...store.map.keys()].filter((k) => k.startsWith('alerts/history/'));
  assert.ok(chunks.length <= 5, `${chunks.length} chunks kept`);
  const h = await log.history({ limit: 1000 });
  assert.ok(h.length >= 120 && h.length <= 200, `${h.length} events kept`);
  assert.ok(h[0]!.ts >= h[1]!.ts);
  assert.equal(
    (await log.history({ sensor: 's1', limit: 5 })).every((a) => a.sensor === 's1'),
    true,
  );
  const again = new AlertLog(store, 120);
  const active = await again.load();
  assert.equal(active.length, 1);
  const m2 = new AlertManager({ cooldownMs: 0, flapWindowMs: 1000, flapTransitions: 1000 });
  m2.restore(active);
  assert.deepEqual(m2.raise(input(), 3_000_100), []); // not raised twice
  assert.equal(m2.resolve('s', 'above', 0, 'ok', 3_000_200)[0]!.id, active[0]!.id);
});

test('forecast: least squares, time to limit, formatting', () => {
  const ts: number[] = [];
  const vs: number[] = [];
  const t0 = 1_700_000_000_000; // epoch-sized times: centring keeps precision
  for (let i = 0; i < 60; i++) {
    ts.push(t0 + i * 60_000);
    vs.push(50 + i * 0.25); // +15 per hour
  }
  const t = fitTrend(ts, vs)!;
  assert.ok(Math.abs(t.slope * HOUR - 15) < 1e-6);
  assert.ok(Math.abs(t.r2 - 1) < 1e-9);
  const f = timeToLimit(t, 95);
  assert.ok(Math.abs(f.etaMs - ((95 - 64.75) / 15) * HOUR) < 1);
  assert.equal(timeToLimit(t, 10).etaMs, Infinity); // heading away
  assert.equal(formatDuration(3 * HOUR), '3 h');
  assert.equal(formatDuration(3 * HOUR + 12 * MINUTE), '3 h 12 min');
  assert.equal(formatDuration(45_000), '45 s');
  assert.equal(formatDuration(50 * HOUR), '2 d 2 h');
  const b = new TrendBuffer(HOUR, 60);
  for (let i = 0; i < 7200; i++) b.add(t0 + i * 1000, 10 + i / 3600); // 2 h at 1 Hz, +1/h
  assert.ok(b.size <= 60);
  assert.ok(Math.abs(b.trend()!.slope * HOUR - 1) < 0.01);
});

test('history: raw ring, 1-min and 1-h aggregates, retention, range queries', async () => {
  const store = memStore();
  const h = new History(store, { rawPoints: 100, minuteRetentionMs: 2 * HOUR, hourRetentionMs: DAY });
  const t0 = Date.UTC(2024, 0, 1);
  const end = t0 + 3 * DAY;
  for (let t = t0; t < end; t += 10_000) h.add('s', t, ((t - t0) / MINUTE) % 60);
  h.tick(end + HOUR);
  await h.flush();
  const raw = await h.query('s', end - 200_000, end, 'auto', 1000, end);
  assert.equal(raw.resolution, 'raw');
  assert.equal(raw.points.length, 20);
  const min = await h.query('s', end - HOUR, end, '1m', 1000, end);
  assert.equal(min.points.length, 60);
  assert.equal(min.points[0]!.n, 6);
  assert.ok(min.points.every((p) => p.min <= p.avg && p.avg <= p.max));
  const hour = await h.query('s', t0, end, '1h', 1000, end);
  assert.ok(hour.points.length >= 24 && hour.points.length <= 48, `${hour.points.length} hourly points`); // retention 1 day, whole day chunks
  assert.equal(hour.points[1]!.n, 360);
  assert.ok(Math.abs(hour.points[1]!.avg - (59 + 5 / 6) / 2) < 1e-9);
  const minuteChunks = [...store.map.keys()].filter((k) => k.startsWith('h/m/s/'));
  assert.ok(minuteChunks.length <= 4, `${minuteChunks.length} minute chunks kept`);
  assert.equal((await h.query('s', end - HOUR, end, '1m', 10, end)).points.length, 10); // thinned
  // a restart picks up the index and the open chunks
  const h2 = new History(store, { rawPoints: 100, minuteRetentionMs: 2 * HOUR, hourRetentionMs: DAY });
  await h2.load('s', end);
  const after = (await h2.query('s', t0, end, '1h', 1000, end)).points;
  assert.ok(after.length >= 23 && after.length <= hour.points.length, `${after.length} hourly points after a restart`); // expired day chunks pruned at load
  assert.equal(after.at(-1)!.t, hour.points.at(-1)!.t);
});

test('detectors: spike after warm-up, no alerts while warming, stuck vs a sensor that never varies, missing', () => {
  const d = new AnomalyDetector({ ...DEFAULTS.anomaly });
  let s = 1;
  const noise = () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  };
  for (let i = 0; i < 20; i++) assert.equal(d.update(i === 10 ? 1000 : 20 + noise()).kind, null); // warm-up
  for (let i = 0; i < 300; i++) d.update(20 + noise());
  assert.equal(d.update(30).kind, 'spike');
  assert.equal(d.update(20 + noise()).kind, null);
  // a quantised steady sensor: one quantum is not an anomaly (the step floor)
  const q = new AnomalyDetector({ ...DEFAULTS.anomaly });
  for (let i = 0; i < 500; i++) q.update(i % 50 === 0 ? 21.1 : 21);
  assert.equal(q.update(21.1).kind, null);
  const st = new StuckDetector({ ...DEFAULTS.stuck });
  let stuck = false;
  for (let i = 0; i < 200; i++) st.update(20 + noise(), i);
  for (let i = 0; i < 30; i++) stuck = st.update(42, 200 + i).stuck || stuck;
  assert.equal(stuck, true);
  const flat = new StuckDetector({ ...DEFAULTS.stuck });
  for (let i = 0; i < 1000; i++) assert.equal(flat.update(1, i).stuck, false);
  const mw = new MissingWatch(3000, 0);
  assert.equal(mw.missing(2000), false);
  assert.equal(mw.missing(3500), true);
  mw.seen(3400);
  assert.equal(mw.missing(3500), false);
});

test('playbooks: a fix for every kind and rule, with the recent readings', async () => {
  assert.equal(sensorKind('disk.root.used'), 'disk');
  assert.equal(sensorKind('greenhouse.t', '°C'), 'temperature');
  assert.equal(sensorKind('soil', undefined, 'humidity'), 'humidity');
  assert.equal(sensorKind('cpu.load'), 'cpu');
  assert.match(playbookFix('disk.root.used', 'forecast'), /log rotation/);
  assert.match(playbookFix('x', 'sensor-fault'), /wiring/);
  const fix = await new PlaybookAdvisor().suggestFix(
    { sensor: 'cpu.temp', rule: 'above', severity: 'warning', value: 80, message: '' },
    { ts: [1, 2], values: [70, 80], unit: '°C' },
  );
  assert.match(fix, /fan.*Recent 2 readings: min 70 °C, avg 75 °C, max 80 °C, last 80 °C/s);
});
