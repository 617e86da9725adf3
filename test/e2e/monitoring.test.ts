/**
 * The whole path of DESIGN.md's "one reading, end to end", on the real daemon: a sim driver
 * with a scripted spike → the kernel's sensor registry → the Monitoring Hand in its worker
 * (reading through ctx.call, under its grant) → an alert on talon/<id>/alerts/critical with
 * a suggested fix → resolved when the value comes back.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { ensureBuilt, startDaemon, cli, type Daemon } from '../helpers/daemon.ts';

before(() => ensureBuilt());

interface Alert {
  id: string;
  sensor: string;
  rule: string;
  severity: string;
  state: string;
  value: number | null;
  suggestedFix: string;
}

/** every alert the daemon publishes, and a bounded wait for one that matches */
async function watchAlerts(
  d: Daemon,
): Promise<{ alerts: Alert[]; waitFor(pred: (a: Alert) => boolean, what: string): Promise<Alert>; close(): void }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  const alerts: Alert[] = [];
  client.on('message', (_t, p) => alerts.push(JSON.parse(p.toString()) as Alert));
  await client.subscribeAsync(`talon/${d.deviceId()}/alerts/#`);
  return {
    alerts,
    async waitFor(pred, what) {
      const t0 = Date.now();
      for (;;) {
        const found = alerts.find(pred);
        if (found) return found;
        assert.ok(Date.now() - t0 < 20_000, `no ${what}; got ${JSON.stringify(alerts)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: () => void client.end(true),
  };
}

test('a spike on a sensor raises a critical alert with a suggested fix, and it resolves', async () => {
  const d = await startDaemon({
    drivers: [
      {
        type: 'sim',
        name: 'green',
        seed: 3,
        sensors: [
          {
            id: 'green.temp',
            name: 'Greenhouse temperature',
            unit: '°C',
            deviceClass: 'temperature',
            pattern: {
              base: { type: 'constant', value: 22 },
              anomalies: [{ type: 'spike', magnitude: 60, direction: 'up', at: [4000], durationMs: 4000 }],
            },
          },
        ],
      },
    ],
    hands: [
      {
        name: 'monitoring',
        module: 'monitoring',
        settings: {
          sensors: [{ id: 'green.temp', intervalMs: 250, severity: 'critical', rules: { above: 50, hysteresis: 5 } }],
          alerts: { cooldownMs: 0 },
        },
      },
    ],
  });
  const w = await watchAlerts(d);
  try {
    const firing = await w.waitFor(
      (a) => a.sensor === 'green.temp' && a.rule === 'above' && a.state === 'firing',
      'firing alert',
    );
    assert.equal(firing.severity, 'critical');
    assert.ok((firing.value ?? 0) > 50);
    assert.ok(firing.suggestedFix.length > 10, firing.suggestedFix);
    const resolved = await w.waitFor((a) => a.id === firing.id && a.state === 'resolved', 'resolve event');
    assert.ok((resolved.value ?? 99) < 45);
    // the Hand kept running and the kernel audited its reads' grant
    const status = JSON.parse(cli(['hands', 'status', 'monitoring', '--json', '--data', d.dataDir]).stdout) as {
      state: string;
      restarts: number;
    };
    assert.equal(status.state, 'running');
    assert.equal(status.restarts, 0);
  } finally {
    w.close();
    assert.equal(await d.stop(), 0);
  }
});

test('a Hand without the grant for a sensor never sees it: its rule is a config-error alert, not a silent "all good"', async () => {
  const d = await startDaemon({
    drivers: [{ type: 'sim', name: 'green', sensors: [{ id: 'green.temp', pattern: 'temperature' }] }],
    hands: [
      {
        name: 'monitoring',
        module: 'monitoring',
        capabilities: { sensors: ['cpu.*'] },
        settings: { sensors: [{ id: 'green.temp', intervalMs: 250, rules: { above: 50 } }] },
      },
    ],
  });
  const w = await watchAlerts(d);
  try {
    await w.waitFor((a) => a.rule === 'config-error' && JSON.stringify(a).includes('green.temp'), 'config-error alert');
    assert.ok(!w.alerts.some((a) => a.sensor === 'green.temp' && a.rule === 'above'));
    const status = JSON.parse(cli(['hands', 'status', 'monitoring', '--json', '--data', d.dataDir]).stdout) as {
      state: string;
    };
    assert.equal(status.state, 'running');
  } finally {
    w.close();
    assert.equal(await d.stop(), 0);
  }
});

test('pushed readings reach the Monitoring Hand through the bus and raise alerts without polling', async () => {
  const d = await startDaemon({
    drivers: [
      {
        type: 'sim',
        name: 'gate',
        seed: 5,
        sensors: [
          {
            id: 'gate.open',
            name: 'Gate',
            push: true,
            periodMs: 200,
            decimals: 0,
            pattern: { base: { type: 'steps', levels: [0, 1], holdMs: 1500 } },
          },
        ],
      },
    ],
    hands: [
      {
        name: 'monitoring',
        module: 'monitoring',
        // a long poll interval: an alert within seconds can only come from the pushed readings
        settings: {
          sensors: [
            {
              id: 'gate.open',
              intervalMs: 600_000,
              severity: 'warning',
              rules: { above: 0.5, missingAfterMs: 3_600_000 },
            },
          ],
          alerts: { cooldownMs: 0 },
        },
      },
    ],
  });
  const w = await watchAlerts(d);
  try {
    const firing = await w.waitFor(
      (a) => a.sensor === 'gate.open' && a.rule === 'above' && a.state === 'firing',
      'alert from pushed readings',
    );
    await w.waitFor((a) => a.id === firing.id && a.state === 'resolved', 'resolve from pushed readings');
  } finally {
    w.close();
    assert.equal(await d.stop(), 0);
  }
});
