/**
 * Issue 14: a device that could not reach its fleet broker said nothing. The link reports the
 * first failed attempt, again while the outage lasts, and the connect that ends it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startMosquitto, type Mosquitto } from '../../helpers/mosquitto.ts';
import { MqttLink, type Outage } from '../../../provisioning/device/link.ts';
import { freePort } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';

test('an unreachable broker is reported at once, periodically, and when it is back', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const seen: Outage[] = [];
  const link = new MqttLink({
    url: `mqtt://127.0.0.1:${port}`,
    username: 'u',
    password: 'p',
    clientId: 'tlinkoutage',
    subscribe: [],
    backoff: { initialMs: 50, maxMs: 100 },
    outageReportMs: 300,
    onConnect: () => undefined,
    onMessage: () => undefined,
    onOutage: (o) => seen.push(o),
  });
  await link.start();
  let broker: Mosquitto | undefined;
  try {
    await waitFor(() => seen.length >= 1, 'the first failure reported');
    assert.equal(seen[0]!.event, 'down');
    assert.equal(seen[0]!.failures, 1);
    await waitFor(() => seen.some((o) => o.event === 'still-down'), 'a lasting outage reported again', 10_000);
    const downs = seen.length;
    assert.ok(
      link.failures > downs,
      `reported ${downs} times for ${link.failures} failures: throttled, not every attempt`,
    );
    broker = await startMosquitto({ port });
    await waitFor(() => link.connected, 'connected once the broker is up', 10_000);
    const up = seen.at(-1)!;
    assert.equal(up.event, 'up');
    assert.ok(up.failures >= 2 && up.downMs > 0, JSON.stringify(up));
    assert.equal(link.failures, 0);
  } finally {
    await link.stop();
    await broker?.stop();
  }
});
