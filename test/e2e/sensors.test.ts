/**
 * Drivers through the kernel, as a user sees them: the REST API reads sensors, good readings
 * go out on talon/<id>/sensors/<sensor> and into /metrics, Home Assistant discovery configs
 * are retained and published again when Home Assistant comes online.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { ensureBuilt, startDaemon } from '../helpers/daemon.ts';

before(() => ensureBuilt());

const simDriver = {
  type: 'sim',
  name: 'green',
  seed: 7,
  sensors: [
    {
      id: 'green.temp',
      name: 'Greenhouse temperature',
      unit: '°C',
      deviceClass: 'temperature',
      pattern: 'temperature',
    },
    { id: 'green.door', name: 'Door', pattern: 'door', decimals: 0 },
  ],
};

test('sensors over REST, MQTT and /metrics; Home Assistant discovery field by field', async () => {
  const d = await startDaemon({ hands: [], drivers: [{ type: 'system', name: 'system' }, simDriver] });
  const id = d.deviceId();
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  const seen = new Map<string, string[]>();
  client.on('message', (t, p) => seen.set(t, [...(seen.get(t) ?? []), p.toString()]));
  const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
    const t0 = Date.now();
    while (!pred()) {
      assert.ok(Date.now() - t0 < 5000, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await client.subscribeAsync(['homeassistant/#', `talon/${id}/sensors/#`]);
    const auth = { authorization: `Bearer ${d.token()}` };
    const list = (await (await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/sensors`, { headers: auth })).json()) as {
      sensors: Array<{ id: string; driver: string }>;
    };
    const ids = list.sensors.map((s) => s.id);
    assert.ok(ids.includes('green.temp') && ids.includes('cpu.load') && ids.includes('mem.used'), ids.join(' '));

    const r = (await (
      await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/sensors/green.temp`, { headers: auth })
    ).json()) as { sensor: string; value: number };
    assert.equal(r.sensor, 'green.temp');
    assert.ok(Number.isFinite(r.value));
    const missing = await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/sensors/nope`, { headers: auth });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'SENSOR_NOT_FOUND');

    // the reading went out on the bus, retained, and into /metrics
    await waitFor(() => seen.has(`talon/${id}/sensors/green.temp`), 'the reading on the bus');
    assert.equal((JSON.parse(seen.get(`talon/${id}/sensors/green.temp`)!.at(-1)!) as { value: number }).value, r.value);
    const metrics = await (await fetch(`http://127.0.0.1:${d.httpPort}/metrics`, { headers: auth })).text();
    assert.match(
      metrics,
      new RegExp(`talon_sensor_value\\{device="${id}",sensor="green.temp",unit="°C",driver="green"\\} ${r.value}`),
    );
    assert.match(metrics, /talon_hand_state|talon_bus_messages_total\{/);
    assert.match(metrics, /# TYPE talon_audit_head_seq gauge/);

    // Home Assistant discovery, field by field
    const cfgTopic = `homeassistant/sensor/${id}/green_temp/config`;
    await waitFor(() => seen.has(cfgTopic), 'the discovery config');
    const cfg = JSON.parse(seen.get(cfgTopic)![0]!) as Record<string, unknown>;
    assert.equal(cfg.unique_id, `talon_${id}_green_temp`);
    assert.equal(cfg.state_topic, `talon/${id}/sensors/green.temp`);
    assert.equal(cfg.value_template, '{{ value_json.value }}');
    assert.equal(cfg.unit_of_measurement, '°C');
    assert.equal(cfg.device_class, 'temperature');
    assert.equal(cfg.state_class, 'measurement');
    assert.equal(cfg.availability_topic, `talon/${id}/state`);
    assert.equal(cfg.payload_available, 'online');
    assert.equal(cfg.payload_not_available, 'offline');
    assert.deepEqual((cfg.device as { identifiers: string[] }).identifiers, [`talon_${id}`]);
    const alertCfg = JSON.parse(seen.get(`homeassistant/binary_sensor/${id}/alert_critical/config`)![0]!) as Record<
      string,
      unknown
    >;
    assert.equal(alertCfg.state_topic, `talon/${id}/alerts/critical`);
    assert.equal(alertCfg.device_class, 'problem');
    assert.ok(seen.has(`homeassistant/sensor/${id}/cpu_load/config`));

    // Home Assistant restarts: everything is published again
    const before = seen.get(cfgTopic)!.length;
    await client.publishAsync('homeassistant/status', 'online');
    await waitFor(() => seen.get(cfgTopic)!.length > before, 'discovery published again');
  } finally {
    client.end(true);
    assert.equal(await d.stop(), 0);
  }
});

test('a driver that cannot start is reported and the others keep working', async () => {
  const d = await startDaemon({
    hands: [],
    drivers: [
      simDriver,
      {
        type: 'serial',
        name: 'weather',
        path: '/dev/does-not-exist',
        baudRate: 9600,
        protocol: 'kv',
        sensors: [{ id: 'weather.temp', field: 'temp' }],
      },
    ],
  });
  try {
    const auth = { authorization: `Bearer ${d.token()}` };
    const ok = await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/sensors/green.temp`, { headers: auth });
    assert.equal(ok.status, 200);
    const gone = await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/sensors/weather.temp`, { headers: auth });
    assert.equal(gone.status, 503);
    assert.equal(((await gone.json()) as { error: { code: string } }).error.code, 'SENSOR_UNAVAILABLE');
    const metrics = await (await fetch(`http://127.0.0.1:${d.httpPort}/metrics`, { headers: auth })).text();
    assert.match(metrics, /talon_driver_up\{[^}]*driver="weather",type="serial"\} 0/);
  } finally {
    assert.equal(await d.stop(), 0);
  }
});
