/**
 * The Monitoring Hand's routes, served from its surface (hands/monitoring/surface.ts) by the
 * generic mount, with the real Hand in a worker: the alert list, acknowledge and resolve (audited
 * as api.alerts.ack / api.alerts.resolve with the caller, before the Hand acts), a sensor's
 * history, its /metrics series, every answer matching its declared schema; its Home Assistant
 * entities.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitState } from '../../helpers/supervisor-harness.ts';
import { hotRoom } from './sim-kernel.ts';
import { serveSurfaces } from '../../runtime/surface/slice.ts';
import surface from '../../../hands/monitoring/surface.ts';
import type { Alert } from '../../../hands/monitoring/alerts.ts';
import { discoveryMessages } from '../../../runtime/homeassistant/discovery.ts';

test("alerts, ack, resolve and history through the Monitoring Hand's routes; audited; in /metrics", {
  timeout: 60_000,
}, async () => {
  const { h } = await hotRoom('mon');
  const s = await serveSurfaces(h, [surface]);
  try {
    await waitState(h.sup, 'mon', 'running');
    const route = (id: string) => s.http.router.routes.find((r) => r.operationId === id)!;
    const get = async (url: string, id: string) => {
      const r = await s.send({ method: 'GET', url });
      assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
      assert.deepEqual(s.http.router.checkResponse(route(id), 200, r.json()), [], url);
      return r.json() as Record<string, unknown>;
    };
    let alert: Alert | undefined;
    for (let i = 0; i < 200 && !alert; i++) {
      alert = ((await get('/api/v1/alerts', 'listAlerts')).alerts as Alert[]).find((a) => a.rule === 'above');
      if (!alert) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(alert, 'the above-30 alert fires');
    assert.deepEqual((await get('/api/v1/alerts?sensor=other.x', 'listAlerts')).alerts, []);

    const metrics = await s.send({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /^talon_monitoring_alerts_active\{device="dev1",severity="critical",hand="mon"\} 1$/m);

    const acked = await s.send({ method: 'POST', url: `/api/v1/alerts/${alert.id}/ack`, payload: { note: 'looking' } });
    assert.equal(acked.statusCode, 200, acked.body);
    assert.deepEqual(s.http.router.checkResponse(route('ackAlert'), 200, acked.json()), []);
    const ack = (acked.json() as { alert: Alert }).alert.acknowledged;
    assert.deepEqual({ by: ack?.by, note: ack?.note }, { by: 'cli', note: 'looking' });
    const missing = await s.send({ method: 'POST', url: '/api/v1/alerts/no-such-alert/ack', payload: {} });
    assert.equal(missing.statusCode, 404, missing.body);
    assert.equal((missing.json() as { error: { code: string } }).error.code, 'NOT_FOUND');

    const hist = await get('/api/v1/sensors/room.temp/history?resolution=raw', 'sensorHistory');
    assert.equal(hist.sensor, 'room.temp');
    assert.ok((hist.points as unknown[]).length > 0);
    const far = await s.send({ method: 'GET', url: '/api/v1/sensors/room.temp/history?from=0&to=999999999999999' });
    assert.equal(far.statusCode, 400, far.body);
    const unwatched = await s.send({ method: 'GET', url: '/api/v1/sensors/room.nope/history' });
    assert.equal(unwatched.statusCode, 400, unwatched.body);
    assert.match(unwatched.body, /history needs \\"sensor\\"/);

    const resolved = await s.send({ method: 'POST', url: `/api/v1/alerts/${alert.id}/resolve`, payload: {} });
    assert.equal(resolved.statusCode, 200, resolved.body);
    assert.equal((resolved.json() as { alert: Alert }).alert.state, 'resolved');
    const all = await get('/api/v1/alerts?state=all&sensor=room.temp', 'listAlerts');
    assert.equal((all.alerts as Alert[])[0]?.state, 'resolved');

    const audit = (await h.auditEntries()).filter((e) => e.action.startsWith('api.alerts.'));
    assert.deepEqual(
      audit.map((e) => [e.action, e.actor, e.subject, e.decision]),
      [
        ['api.alerts.ack', 'cli', alert.id, 'allow'],
        ['api.alerts.ack', 'cli', alert.id, 'ok'],
        ['api.alerts.ack', 'cli', 'no-such-alert', 'allow'],
        ['api.alerts.ack', 'cli', 'no-such-alert', 'error'],
        ['api.alerts.resolve', 'cli', alert.id, 'allow'],
        ['api.alerts.resolve', 'cli', alert.id, 'ok'],
      ],
    );
    assert.deepEqual(audit[0]!.detail, { note: 'looking' });

    // token scopes: the routes are in the alerts and sensors areas, as they always were
    const setup = await s.send({
      method: 'POST',
      url: '/api/v1/setup',
      headers: { authorization: '' },
      payload: { code: s.http.setupCode, username: 'owner', password: 'the owner password' },
    });
    assert.equal(setup.statusCode, 201, setup.body);
    const cookie = String(setup.headers['set-cookie']).split(';')[0]!;
    const made = await s.send({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: { authorization: '', cookie, 'x-csrf-token': (setup.json() as { csrf: string }).csrf },
      payload: { name: 'reader', scopes: ['alerts:read'] },
    });
    assert.equal(made.statusCode, 201, made.body);
    const reader = { authorization: `Bearer ${(made.json() as { token: string }).token}` };
    assert.equal(
      (await s.send({ method: 'GET', url: '/api/v1/alerts', headers: reader })).statusCode,
      200,
      'alerts:read reads the alerts',
    );
    const write = await s.send({ method: 'POST', url: `/api/v1/alerts/${alert.id}/ack`, headers: reader, payload: {} });
    assert.equal(write.statusCode, 403, write.body);
    assert.match(write.body, /lacks the scope alerts:write/);
    assert.equal(
      (await s.send({ method: 'GET', url: '/api/v1/sensors/room.temp/history', headers: reader })).statusCode,
      403,
      'history is in the sensors area',
    );

    await h.sup.stopHand('mon', { actor: 'test' });
    const stopped = await s.send({ method: 'GET', url: '/api/v1/alerts' });
    assert.equal(stopped.statusCode, 503);
    assert.match(stopped.body, /the Monitoring Hand \\"mon\\" is stopped; start it to see sensor history and alerts/);
  } finally {
    await s.close();
    await h.close();
  }
});

test('its Home Assistant entities come from its surface: one problem binary sensor per severity, as before', () => {
  const device = { deviceId: 'dev1', name: 'Pi', swVersion: '1.0.0' };
  const msgs = discoveryMessages(device, [], 'homeassistant', [surface]);
  assert.deepEqual(
    msgs.map((m) => m.topic),
    ['info', 'warning', 'critical'].map((s) => `homeassistant/binary_sensor/dev1/alert_${s}/config`),
  );
  assert.deepEqual(msgs[2]!.payload, {
    name: 'Talon critical alert',
    unique_id: 'talon_dev1_alert_critical',
    object_id: 'talon_alert_critical',
    state_topic: 'talon/dev1/alerts/critical',
    value_template: "{{ 'ON' if value_json.state in ['firing', 'flapping'] else 'OFF' }}",
    json_attributes_topic: 'talon/dev1/alerts/critical',
    device_class: 'problem',
    device: {
      identifiers: ['talon_dev1'],
      name: 'Pi',
      manufacturer: 'Talon',
      model: 'Talon edge device',
      sw_version: '1.0.0',
    },
    availability_topic: 'talon/dev1/state',
    payload_available: 'online',
    payload_not_available: 'offline',
  });
  assert.deepEqual(discoveryMessages(device, [], 'homeassistant', []), [], 'no Hand, no alert entities');
});
