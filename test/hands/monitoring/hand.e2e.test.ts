/**
 * The real Monitoring Hand in a worker under the real Supervisor (EmbeddedBus, LevelDB),
 * reading sim sensors through a stand-in sensors.* kernel service: a step change raises an
 * alert on talon/<dev>/alerts/<severity> which then resolves; a throwing sensor, a NaN sensor
 * and a hung sensor raise sensor-fault alerts; bad settings raise config-error alerts; the
 * Hand keeps running through all of it and answers its typed requests (its surface's protocol,
 * sent by the kernel's client over the worker protocol).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { ROOT, startHarness, waitFor, waitState } from '../../helpers/supervisor-harness.ts';
import { SimKernel, monitoringBundle } from './sim-kernel.ts';
import type { Alert } from '../../../hands/monitoring/alerts.ts';
import type { BusMessage } from '../../../runtime/bus/types.ts';
import { HandRequests } from '../../../runtime/api/hand-requests.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import surface from '../../../hands/monitoring/surface.ts';

const parse = (m: BusMessage): Alert => JSON.parse(m.payload.toString('utf8')) as Alert;

test('the Monitoring Hand raises and resolves alerts, survives faulty sensors and bad settings', {
  timeout: 60_000,
}, async () => {
  const module = await monitoringBundle();
  const sim = new SimKernel();
  const temp = sim.add(
    'room.temp',
    { base: { type: 'sine', mean: 22, amplitude: 0.5, periodMs: 60_000 }, noise: 0.1, noiseMs: 100 },
    7,
    { unit: '°C', deviceClass: 'temperature' },
  );
  const bad = sim.add('room.humidity', { base: { type: 'constant', value: 50 }, noise: 1, noiseMs: 100 }, 8);
  const nan = sim.add('disk.used', { base: { type: 'constant', value: 40 } }, 9);
  const hung = sim.add('net.rssi', { base: { type: 'constant', value: -60 }, noise: 2, noiseMs: 100 }, 10);
  sim.add('secret.sensor', { base: { type: 'constant', value: 1 } }, 11);
  bad.fault = 'throw';
  nan.fault = 'text';
  hung.fault = 'hang';
  const h = await startHarness(
    [
      {
        name: 'monitoring',
        fixture: module,
        capabilities: { sensors: ['room.*', 'disk.*', 'net.*'], gpio: [] },
        settings: {
          sensors: [
            {
              id: 'room.temp',
              intervalMs: 100,
              severity: 'critical',
              rules: { above: 30, hysteresis: 3, anomaly: { warmup: 10 } },
              action: { actuator: 'fan', on: { above: 30 }, off: { below: 25 } },
            },
            { id: 'room.humidity', intervalMs: 100 },
            { id: 'disk.used', intervalMs: 100 },
            { id: 'net.rssi', intervalMs: 100 },
            { id: 'secret.sensor', intervalMs: 100 },
            { id: 'greenhouse.temp', rules: { above: 30, below: 10, hysteresis: 15 } },
          ],
          faultAfter: 3,
          readTimeoutMs: 500,
          alerts: { cooldownMs: 0 },
          statusEveryMs: 200,
        },
      },
    ],
    { register: (sup) => sim.register(sup), start: false },
  );
  const moduleDir = dirname(module);
  try {
    const alerts = await h.collect(`${ROOT}/alerts/#`);
    await h.sup.start();
    await waitState(h.sup, 'monitoring', 'running');
    const find = (pred: (a: Alert, m: BusMessage) => boolean) => alerts.find((m) => pred(parse(m), m));

    // bad settings: named, alerted, and the rest keeps running
    const cfg = await waitFor('config-error for the hysteresis band', () =>
      find((a) => a.rule === 'config-error' && a.sensor === 'greenhouse.temp'),
    );
    assert.match(parse(cfg).message, /threshold above 30 is below its hysteresis band/);
    const unknown = await waitFor('config-error for a sensor outside the grant', () =>
      find((a) => a.rule === 'config-error' && a.sensor === 'secret.sensor'),
    );
    assert.match(parse(unknown).message, /names no sensor this Hand can read/);

    // faults: thrown, text instead of a number, no answer at all
    for (const [sensor, re] of [
      ['room.humidity', /SENSOR_FAULT: room\.humidity: I2C read failed/],
      ['disk.used', /SENSOR_FAULT: returned "ERR" where a number was due/],
      ['net.rssi', /SENSOR_TIMEOUT/],
    ] as const) {
      const m = await waitFor(
        `sensor-fault for ${sensor}`,
        () => find((a) => a.rule === 'sensor-fault' && a.sensor === sensor && a.state === 'firing'),
        15_000,
      );
      const a = parse(m);
      assert.match(a.message, re);
      assert.equal(m.topic, `${ROOT}/alerts/warning`);
      assert.match(a.suggestedFix, /wiring/);
      assert.equal(a.value, null);
    }

    // a step change: 22 °C → 40 °C fires above on alerts/critical (the warm-up is short here)
    await waitFor('readings of room.temp', () => temp.reads > 30);
    temp.offset = 18;
    const fired = await waitFor('the above alert', () => find((a) => a.rule === 'above' && a.state === 'firing'));
    const fa = parse(fired);
    assert.equal(fired.topic, `${ROOT}/alerts/critical`);
    assert.equal(fa.sensor, 'room.temp');
    assert.equal(fa.severity, 'critical');
    assert.ok(fa.value! > 30);
    assert.match(fa.message, /room\.temp is [\d.]+ °C, above 30 °C/);
    assert.match(fa.suggestedFix, /fan/);
    assert.match(fa.suggestedFix, /Recent \d+ readings/);
    assert.ok(fa.since > 0 && fa.ts >= fa.since && typeof fa.id === 'string');
    await waitFor('a level-shift anomaly', () => find((a) => a.rule === 'anomaly' && a.sensor === 'room.temp'));
    await waitFor('the fan switched on', () => sim.writes.some(([id, v]) => id === 'fan' && v === true));
    temp.offset = 0;
    const resolved = await waitFor('the above alert to resolve', () =>
      find((a) => a.rule === 'above' && a.state === 'resolved'),
    );
    assert.equal(parse(resolved).id, fa.id);
    assert.equal(resolved.topic, `${ROOT}/alerts/critical`);
    await waitFor('the fan switched off', () => sim.writes.some(([id, v]) => id === 'fan' && v === false));
    assert.equal(
      alerts.filter((m) => parse(m).rule === 'above' && parse(m).state === 'firing').length,
      1,
      'deduplicated',
    );

    // a sensor that recovers resolves its fault
    bad.fault = null;
    await waitFor('sensor-fault of room.humidity to resolve', () =>
      find((a) => a.rule === 'sensor-fault' && a.sensor === 'room.humidity' && a.state === 'resolved'),
    );

    // queries: history of the step, the alert history, the counters
    const requests = new HandRequests(h.sup, [surface]);
    // { ok: true, …answer } or { ok: false, error } as the Hand's answers were on the bus
    const ask = async ({ id: _id, type, ...body }: Record<string, unknown>) => {
      try {
        return { ok: true, ...((await requests.request('monitoring', String(type), body)) as Record<string, unknown>) };
      } catch (err) {
        return { ok: false, error: TalonError.from(err).toJSON() } as Record<string, unknown>;
      }
    };
    const hist = await ask({
      id: 'q1',
      type: 'history',
      sensor: 'room.temp',
      resolution: 'raw',
      from: Date.now() - 60_000,
    });
    assert.equal(hist.ok, true);
    const pts = hist.points as Array<{ max: number }>;
    assert.ok(pts.length > 10 && pts.some((p) => p.max > 30));
    const ah = await ask({ id: 'q2', type: 'alerts', sensor: 'room.temp' });
    assert.ok((ah.alerts as Alert[]).some((a) => a.id === fa.id && a.state === 'resolved'));
    const st = await ask({ id: 'q3', type: 'status' });
    const counters = (
      st.status as { counters: { faults: Record<string, number>; invalid: number; configErrors: number } }
    ).counters;
    assert.ok(
      counters.faults.SENSOR_FAULT! >= 3 &&
        counters.faults.SENSOR_TIMEOUT! >= 1 &&
        counters.invalid >= 3 &&
        counters.configErrors >= 2,
      JSON.stringify(counters),
    );
    const badq = await ask({ id: 'q4', type: 'history', sensor: 'nope' });
    assert.equal(badq.ok, false);
    assert.match((badq.error as { message: string }).message, /history needs "sensor"/);

    // the alerts are in the store
    const active = await h.store
      .sublevel('hands')
      .sublevel<string, unknown>('monitoring', { valueEncoding: 'json' })
      .get('alerts/active/disk.used|sensor-fault');
    assert.equal((active as Alert).state, 'firing');

    const s = h.sup.status('monitoring');
    assert.equal(s.state, 'running');
    assert.equal(s.restarts, 0);
    assert.equal(s.handlerErrors, 0);
  } finally {
    await h.close();
    rmSync(moduleDir, { recursive: true, force: true });
  }
});
