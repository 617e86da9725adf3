/**
 * The whole path of DESIGN.md's "one reading, end to end", on the real daemon: a sim driver
 * with a scripted spike → the kernel's sensor registry → the Monitoring Hand in its worker
 * (reading through ctx.call, under its grant) → an alert on talon/<id>/alerts/critical with
 * a suggested fix → resolved when the value comes back.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { ensureBuilt, startDaemon, cli } from '../helpers/daemon.ts';

before(() => ensureBuilt());

interface Alert { id: string; sensor: string; rule: string; severity: string; state: string; value: number | null; suggestedFix: string }

test('a spike on a sensor raises a critical alert with a suggested fix, and it resolves', async () => {
  const d = await startDaemon({
    drivers: [{
      type: 'sim', name: 'green', seed: 3,
      sensors: [{ id: 'green.temp', name: 'Greenhouse temperature', unit: '°C', deviceClass: 'temperature',
        pattern: { base: { type: 'constant', value: 22 }, anomalies: [{ type: 'spike', magnitude: 60, direction: 'up', at: [4000], durationMs: 4000 }] } }],
      actuators: [{ id: 'green.fan', name: 'Fan' }],
    }],
    hands: [{
      name: 'monitoring', module: 'monitoring',
      settings: { sensors: [{ id: 'green.temp', intervalMs: 250, severity: 'critical', rules: { above: 50, hysteresis: 5 } }], alerts: { cooldownMs: 0 } },
    }],
  });
  const id = d.deviceId();
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  const alerts: Alert[] = [];
  client.on('message', (_t, p) => alerts.push(JSON.parse(p.toString()) as Alert));
  try {
    await client.subscribeAsync(`talon/${id}/alerts/#`);
    const waitAlert = async (pred: (a: Alert) => boolean, what: string): Promise<Alert> => {
      const t0 = Date.now();
      for (;;) {
        const a = alerts.find(pred);
        if (a) return a;
        assert.ok(Date.now() - t0 < 20_000, `no ${what}; got ${JSON.stringify(alerts)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const firing = await waitAlert((a) => a.sensor === 'green.temp' && a.rule === 'above' && a.state === 'firing', 'firing alert');
    assert.equal(firing.severity, 'critical');
    assert.ok((firing.value ?? 0) > 50);
    assert.ok(firing.suggestedFix.length > 10, firing.suggestedFix);
    const resolved = await waitAlert((a) => a.id === firing.id && a.state === 'resolved', 'resolve event');
    assert.ok((resolved.value ?? 99) < 45);
    // the Hand kept running and the kernel audited its reads' grant
    const status = JSON.parse(cli(['hands', 'status', 'monitoring', '--json', '--data', d.dataDir]).stdout) as { state: string; restarts: number };
    assert.equal(status.state, 'running');
    assert.equal(status.restarts, 0);
  } finally {
    client.end(true);
    assert.equal(await d.stop(), 0);
  }
});

test('a Hand without the grant for a sensor never sees it: its rule is a config-error alert, not a silent "all good"', async () => {
  const d = await startDaemon({
    drivers: [{ type: 'sim', name: 'green', sensors: [{ id: 'green.temp', pattern: 'temperature' }] }],
    hands: [{ name: 'monitoring', module: 'monitoring', capabilities: { sensors: ['cpu.*'] },
      settings: { sensors: [{ id: 'green.temp', intervalMs: 250, rules: { above: 50 } }] } }],
  });
  const id = d.deviceId();
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  const alerts: Alert[] = [];
  client.on('message', (_t, p) => alerts.push(JSON.parse(p.toString()) as Alert));
  try {
    await client.subscribeAsync(`talon/${id}/alerts/#`);
    const t0 = Date.now();
    while (!alerts.some((a) => a.rule === 'config-error' && JSON.stringify(a).includes('green.temp'))) {
      assert.ok(Date.now() - t0 < 20_000, `no config-error alert: ${JSON.stringify(alerts)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(!alerts.some((a) => a.sensor === 'green.temp' && a.rule === 'above'));
    const status = JSON.parse(cli(['hands', 'status', 'monitoring', '--json', '--data', d.dataDir]).stdout) as { state: string };
    assert.equal(status.state, 'running');
  } finally {
    client.end(true);
    assert.equal(await d.stop(), 0);
  }
});

test('pushed readings reach the Monitoring Hand through the bus and raise alerts without polling', async () => {
  const d = await startDaemon({
    drivers: [{
      type: 'sim', name: 'gate', seed: 5,
      sensors: [{ id: 'gate.open', name: 'Gate', push: true, periodMs: 200, decimals: 0,
        pattern: { base: { type: 'steps', levels: [0, 1], holdMs: 1500 } } }],
    }],
    hands: [{
      name: 'monitoring', module: 'monitoring',
      // a long poll interval: an alert within seconds can only come from the pushed readings
      settings: { sensors: [{ id: 'gate.open', intervalMs: 600_000, severity: 'warning', rules: { above: 0.5, missingAfterMs: 3_600_000 } }], alerts: { cooldownMs: 0 } },
    }],
  });
  const id = d.deviceId();
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  const alerts: Alert[] = [];
  client.on('message', (_t, p) => alerts.push(JSON.parse(p.toString()) as Alert));
  try {
    await client.subscribeAsync(`talon/${id}/alerts/#`);
    const t0 = Date.now();
    while (!alerts.some((a) => a.sensor === 'gate.open' && a.rule === 'above' && a.state === 'firing')) {
      assert.ok(Date.now() - t0 < 20_000, `no alert from pushed readings: ${JSON.stringify(alerts)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const firing = alerts.find((a) => a.sensor === 'gate.open' && a.state === 'firing')!;
    while (!alerts.some((a) => a.id === firing.id && a.state === 'resolved')) {
      assert.ok(Date.now() - t0 < 20_000, `no resolve from pushed readings: ${JSON.stringify(alerts)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    client.end(true);
    assert.equal(await d.stop(), 0);
  }
});
