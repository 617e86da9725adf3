/**
 * Acknowledge and resolve over the Monitoring Hand's typed requests (its surface's protocol),
 * through the kernel's one client for them (runtime/api/hand-requests.ts) and the worker
 * protocol, with the real Hand in a worker; and talking to the Hand (chat) over the worker
 * protocol: it answers from its current state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitState } from '../../helpers/supervisor-harness.ts';
import { hotRoom } from './sim-kernel.ts';
import { HandRequests } from '../../../runtime/api/hand-requests.ts';
import surface from '../../../hands/monitoring/surface.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { Alert } from '../../../hands/monitoring/alerts.ts';

test('alerts are acknowledged and resolved over typed requests; the Hand answers a chat from its state', {
  timeout: 60_000,
}, async () => {
  const { h } = await hotRoom('monitoring', { start: false });
  // the module is a path, so the client recognises the Hand by its manifest id
  const requests = new HandRequests(h.sup, [surface], { timeoutMs: 5000 });
  const client = {
    query: (kind: string, body: Record<string, unknown> = {}) =>
      requests.request('monitoring', kind, body) as Promise<Record<string, unknown>>,
  };
  try {
    await assert.rejects(client.query('active'), (e: TalonError) => e.code === 'HAND_NOT_RUNNING' && e.status === 503);
    await h.sup.start();
    await waitState(h.sup, 'monitoring', 'running');
    let alert: Alert | undefined;
    for (let i = 0; i < 200 && !alert; i++) {
      alert = ((await client.query('active')).alerts as Alert[]).find(
        (a) => a.sensor === 'room.temp' && a.rule === 'above',
      );
      if (!alert) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(alert, 'the above-30 alert fires');
    assert.equal(alert.acknowledged, undefined);
    // its /metrics series, from its surface: one critical alert active
    const families = await requests.metrics();
    const active = families.find((f) => f.name === 'talon_monitoring_alerts_active');
    assert.deepEqual(
      active?.samples.map((x) => [x.labels?.severity, x.labels?.hand, x.value]),
      [
        ['info', 'monitoring', 0],
        ['warning', 'monitoring', 0],
        ['critical', 'monitoring', 1],
      ],
    );

    const acked = (await client.query('ack', { alertId: alert.id, by: 'user:ada', note: 'looking' })).alert as Alert;
    assert.equal(acked.id, alert.id);
    assert.deepEqual(
      { by: acked.acknowledged?.by, note: acked.acknowledged?.note },
      { by: 'user:ada', note: 'looking' },
    );
    const stillActive = (await client.query('active')).alerts as Alert[];
    assert.equal(
      stillActive.find((a) => a.id === alert.id)?.acknowledged?.by,
      'user:ada',
      'the acknowledgement is kept on the active alert',
    );

    await assert.rejects(
      client.query('ack', { alertId: 'no-such-alert', by: 'user:ada' }),
      (e: TalonError) => e.code === 'NOT_FOUND',
    );
    await assert.rejects(client.query('ack', { alertId: alert.id }), (e: TalonError) => e.code === 'BAD_REQUEST');

    const answer: string[] = [];
    for await (const piece of h.sup.ask('monitoring', [{ role: 'user', content: 'what is going on?' }]))
      answer.push(piece);
    const text = answer.join('');
    assert.match(text, /room\.temp/);
    assert.match(text, /1 active alert/);
    assert.match(text, /acknowledged by user:ada/);

    const resolved = (await client.query('resolve', { alertId: alert.id, by: 'user:ada' })).alert as Alert;
    assert.equal(resolved.state, 'resolved');
    assert.equal(resolved.resolvedBy?.by, 'user:ada');
    const after = (await client.query('active')).alerts as Alert[];
    assert.equal(
      after.find((a) => a.sensor === 'room.temp'),
      undefined,
      'resolved by hand, held by the cool-down',
    );
    const history = (await client.query('alerts', { sensor: 'room.temp' })).alerts as Alert[];
    assert.equal(history[0]?.state, 'resolved');
    assert.equal(history[0]?.id, alert.id);
  } finally {
    await h.close();
  }
});
