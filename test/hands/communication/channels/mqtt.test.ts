/**
 * The mqtt channel (hands/communication/channels/mqtt.ts): the contract on the device's own bus (a fake ctx.bus that
 * fails the way the kernel's does), and the remote path against a real mosquitto (credentials, persistent session).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { BusMessageIn } from '../../../../hands/sdk/types.ts';
import { mqtt } from '../../../../hands/communication/channels/mqtt.ts';
import type { Channel, ChannelEnv } from '../../../../hands/communication/channels/types.ts';
import { startMosquitto, type Mosquitto } from '../../../helpers/mosquitto.ts';
import { connectClient } from '../../../helpers/mqtt-client.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { channelContract, makeChannel, testEnv, type PlatformFake } from './contract.ts';

/** ctx.bus as a Hand sees it: relative topics, CAPABILITY_DENIED outside the grant, QoS-1 publishes accepted or thrown */
function fakeBus(grant = 'alerts/#') {
  const published: Array<{ topic: string; payload: unknown; qos: number | undefined }> = [];
  const subs = new Map<string, (m: BusMessageIn) => void | Promise<void>>();
  let next: string | undefined;
  let wait: number | undefined;
  const inGrant = (t: string): boolean => t.startsWith(grant.replace('#', ''));
  const denied = (t: string) =>
    Object.assign(new Error(`bus: ${t} is outside the grant`), { code: 'CAPABILITY_DENIED' });
  const bus: ChannelEnv['bus'] = {
    publish(topic, payload, opts) {
      const fail = next;
      next = undefined;
      if (fail === 'auth' || !inGrant(topic)) throw denied(topic);
      if (fail === 'rate')
        throw Object.assign(new Error('over messagesPerSec'), {
          code: 'RATE_LIMITED',
          details: { retryAfterMs: wait },
        });
      if (fail === 'server') throw Object.assign(new Error('kernel bus unavailable'), { code: 'BUS_DOWN' });
      if (fail === 'garbage') throw 'a string, not an Error';
      published.push({ topic, payload, qos: opts?.qos });
    },
    async subscribe(filter, handler) {
      if (!inGrant(filter)) throw denied(filter);
      subs.set(filter, handler);
      return async () => {
        subs.delete(filter);
      };
    },
  };
  const deliver = async (topic: string, body: string): Promise<void> => {
    const h = subs.get(topic);
    assert.ok(h, `nothing subscribed to ${topic}`);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {}
    await h({ topic, payload: Buffer.from(body), text: body, json, retain: false });
  };
  return { bus, published, subs, deliver, failNext: (k: string, ms?: number) => ((next = k), (wait = ms)) };
}

let contractBus = fakeBus();
channelContract(
  {
    ...mqtt,
    create: (u, env, name) => mqtt.create(u, { ...env, bus: contractBus.bus }, name),
  },
  async (): Promise<PlatformFake> => {
    contractBus = fakeBus();
    const b = contractBus;
    return {
      url: 'mqtt://local/alerts/talon',
      secrets: {},
      failNext: (k, ms) => b.failNext(k, ms),
      async sent() {
        return b.published.map((p) => ({ to: p.topic, text: (p.payload as { text: string }).text }));
      },
      async inject(text, from = 'ops') {
        await b.deliver('alerts/talon/in', JSON.stringify({ from, text }));
      },
      async close() {},
    };
  },
);

describe('mqtt on the local bus', () => {
  it('publishes the JSON payload at QoS 1 and reads plain text with the ?from= default', async () => {
    const b = fakeBus();
    const ch = await makeChannel(
      mqtt,
      { url: 'mqtt://local/alerts/x?from=panel', secrets: {} },
      testEnv({ bus: b.bus }),
    );
    await ch.send(
      { id: 'o1', title: 'Disk', text: 'full', priority: 'high', tags: ['disk'] },
      AbortSignal.timeout(5000),
    );
    assert.deepEqual(b.published, [
      {
        topic: 'alerts/x',
        payload: { id: 'o1', title: 'Disk', text: 'full', priority: 'high', tags: ['disk'] },
        qos: 1,
      },
    ]);
    const p = ch.receive!(undefined, AbortSignal.timeout(5000));
    await waitFor(() => b.subs.has('alerts/x/in'), 'the subscription');
    await b.deliver('alerts/x/in', 'status');
    const got = await p;
    assert.deepEqual(
      got.messages.map((m) => [m.from, m.text, m.fromBot]),
      [['panel', 'status', false]],
    );
    assert.equal(got.cursor, undefined);
    await ch.close!();
    assert.equal(b.subs.size, 0);
  });

  it('a topic outside the grant is an auth error; raw sockets only for a remote broker', async () => {
    const b = fakeBus();
    const ch = await makeChannel(mqtt, { url: 'mqtt://local/other/x', secrets: {} }, testEnv({ bus: b.bus }));
    await assert.rejects(
      ch.send({ id: 'o', text: 't', priority: 'normal', tags: [] }, AbortSignal.timeout(5000)),
      (e: Error & { kind?: string }) => e.kind === 'auth',
    );
    const raw = mqtt.raw as (u: { host: string }) => boolean;
    assert.equal(raw({ host: 'local' }), false);
    assert.equal(raw({ host: 'broker.lan' }), true);
  });
});

describe('mqtt on a remote broker (mosquitto)', () => {
  let broker: Mosquitto;
  let outside: MqttClient;
  const channels: Channel[] = [];
  const secrets = { mq_user: 'talon', mq_pass: 'pw-talon' };
  let url: string;
  before(async () => {
    broker = await startMosquitto({ users: { talon: 'pw-talon', ext: 'pw-ext' } });
    url = `mqtt://{secret:mq_user}:{secret:mq_pass}@127.0.0.1:${broker.port}/site/alerts`;
    outside = await connectClient(broker.url, { username: 'ext', password: 'pw-ext' });
  });
  after(async () => {
    for (const ch of channels) await ch.close?.();
    await outside?.endAsync(true);
    await broker?.stop();
  });
  const open = async (u = url, s: Record<string, string> = secrets, name = 'mqtt-remote'): Promise<Channel> => {
    const ch = mqtt.create(
      await (await import('../../../../hands/communication/channels/url.ts')).parseChannelUrl(u, async (n) => s[n]),
      testEnv(),
      name,
    );
    channels.push(ch);
    return ch;
  };

  it('a send is confirmed by the broker and reaches a subscriber', async () => {
    const got: string[] = [];
    outside.on('message', (t, p) => t === 'site/alerts' && got.push(p.toString()));
    await outside.subscribeAsync('site/alerts', { qos: 1 });
    const ch = await open();
    const r = await ch.send(
      { id: 'o1', text: 'pump **stopped**', priority: 'critical', tags: [] },
      AbortSignal.timeout(10_000),
    );
    assert.deepEqual(r.platformIds, ['o1']);
    await waitFor(() => got.length > 0, 'the message at the subscriber');
    assert.deepEqual(JSON.parse(got[0]!), {
      id: 'o1',
      title: null,
      text: 'pump **stopped**',
      priority: 'critical',
      tags: [],
    });
  });

  it('receives JSON {from, text, id} on TOPIC/in', async () => {
    const ch = await open(url, secrets, 'mqtt-in');
    await ch.receive!(undefined, AbortSignal.timeout(300)); // subscribes
    await outside.publishAsync('site/alerts/in', JSON.stringify({ from: 'ana', text: 'status', id: 'e1' }), { qos: 1 });
    const b = await ch.receive!(undefined, AbortSignal.timeout(10_000));
    assert.deepEqual(
      b.messages.map((m) => [m.platformId, m.from, m.text]),
      [['e1', 'ana', 'status']],
    );
  });

  it('a persistent session: a QoS-1 message published while the channel was closed arrives when it opens again', async () => {
    const first = await open(url, secrets, 'mqtt-persist');
    await first.receive!(undefined, AbortSignal.timeout(300));
    await first.close!();
    await outside.publishAsync('site/alerts/in', 'written while Talon was down', { qos: 1 });
    const again = await open(url, secrets, 'mqtt-persist');
    const got: string[] = [];
    const deadline = Date.now() + 15_000;
    while (!got.includes('written while Talon was down') && Date.now() < deadline) {
      const b = await again.receive!(undefined, AbortSignal.timeout(3000));
      got.push(...b.messages.map((m) => m.text));
    }
    assert.deepEqual(got, ['written while Talon was down']);
  });

  it('a wrong password is an auth error, and the channel does not keep retrying it', async () => {
    const ch = await open(url, { ...secrets, mq_pass: 'wrong' }, 'mqtt-bad');
    await assert.rejects(
      ch.send({ id: 'o', text: 't', priority: 'normal', tags: [] }, AbortSignal.timeout(15_000)),
      (e: Error & { kind?: string }) => e.kind === 'auth',
    );
  });
});
