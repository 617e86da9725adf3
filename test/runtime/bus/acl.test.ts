/**
 * Who may read and write what on the embedded broker (issue 13), with real mqtt.js clients:
 * anonymous clients of the local listener read only the public state and publish only to
 * running Hands' inputs, never retained; a command's reply reaches only the client that asked.
 * And on an external broker (a real mosquitto, MQTT 5): a command's Response Topic and
 * Correlation Data are honoured, but only inside the reply tree.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IClientOptions, MqttClient } from 'mqtt';
import { EmbeddedBus } from '../../../runtime/bus/embedded.ts';
import { RemoteBus } from '../../../runtime/bus/remote.ts';
import { HandInputs } from '../../../runtime/bus/inputs.ts';
import { filtersOverlap } from '../../../runtime/core/topics.ts';
import type { BusConfig } from '../../../runtime/config/types.ts';
import type { BusMessage } from '../../../runtime/bus/types.ts';
import { MqttCommands } from '../../../runtime/api/mqtt-commands.ts';
import type { RuntimeApi } from '../../../runtime/api/runtime-api.ts';
import { connectClient, connectRefused } from '../../helpers/mqtt-client.ts';
import { startMosquitto } from '../../helpers/mosquitto.ts';
import { once, waitFor } from '../../helpers/wait.ts';

const DEV = 'dev1';
const ROOT = `talon/${DEV}`;
const TOKEN = 'tok-acl-1';
const SECRET_LOG = 'db password is hunter2';

const config: BusConfig = {
  embedded: { enabled: true, listen: { host: '127.0.0.1', port: 0 } },
  maxPayloadBytes: 4096,
};

const clients: MqttClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
});

async function connect(bus: EmbeddedBus, opts: IClientOptions = {}): Promise<MqttClient> {
  const a = bus.address();
  const c = await connectClient(`mqtt://${a.host}:${a.port}`, opts);
  clients.push(c);
  return c;
}

function inbox(c: MqttClient): Array<{ topic: string; payload: string; retain: boolean }> {
  const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
  return got;
}

/** a SUBACK with the failure code 0x80 for the filter (mqtt.js turns it into an error carrying the SUBACK) */
async function subscribeRefused(c: MqttClient, filter: string): Promise<void> {
  await assert.rejects(c.subscribeAsync(filter), (e: unknown) => {
    assert.deepEqual((e as { packet?: { granted?: number[] } }).packet?.granted, [0x80], `SUBACK for ${filter}`);
    return true;
  });
}

/** MQTT 3.1.1 has no negative PUBACK: a refused PUBLISH closes the connection [MQTT-3.3.5-2] */
async function publishRefused(c: MqttClient, topic: string, payload: string, retain = false): Promise<void> {
  const closed = once(c, 'close');
  c.publish(topic, payload, { qos: 1, retain });
  await closed;
}

/** a round trip through the broker: after it, everything published before has been routed */
async function flush(bus: EmbeddedBus): Promise<void> {
  const seen: BusMessage[] = [];
  const off = await bus.subscribe(`${ROOT}/flush`, (m) => seen.push(m));
  await bus.publish(`${ROOT}/flush`, 'x');
  await waitFor(() => seen.length > 0, 'flush');
  await off();
  await new Promise((r) => setTimeout(r, 50)); // deliveries to outside clients go out on the next ticks
}

const api = {
  hands: {
    list: async () => [{ name: 'idle', state: 'running' }],
    logs: async () => [{ ts: 1, hand: 'idle', level: 'info', msg: SECRET_LOG }],
  },
} as unknown as RuntimeApi;

async function withBus(fn: (bus: EmbeddedBus, inputs: HandInputs) => Promise<void>): Promise<void> {
  const inputs = new HandInputs();
  const bus = new EmbeddedBus(config, DEV, {
    authenticateToken: (t) => t === TOKEN,
    anonymous: { inputs, read: ['homeassistant/#'], write: ['homeassistant/status'] },
  });
  await bus.start();
  const commands = new MqttCommands(bus, api);
  await commands.start();
  try {
    await fn(bus, inputs);
  } finally {
    await commands.stop();
    await bus.stop();
  }
}

test('filtersOverlap: two filters that can match a common topic', () => {
  assert.equal(filtersOverlap('#', `${ROOT}/state`), true);
  assert.equal(filtersOverlap(`${ROOT}/+`, `${ROOT}/state`), true);
  assert.equal(filtersOverlap(`${ROOT}/sensors/#`, `${ROOT}/sensors`), true, '# matches its parent level');
  assert.equal(filtersOverlap(`talon/+/sensors/+`, `${ROOT}/sensors/#`), true);
  assert.equal(filtersOverlap(`${ROOT}/cmd/#`, `${ROOT}/state`), false);
  assert.equal(filtersOverlap(`${ROOT}/cmd/#`, `${ROOT}/sensors/#`), false);
  assert.equal(filtersOverlap(`${ROOT}/+`, `${ROOT}/hands/+/status`), false);
  assert.equal(filtersOverlap('#', '$SYS/x'), false, 'a first-level wildcard does not match $ topics');
});

test('anonymous reads: public state and sensors yes; cmd/# refused (SUBACK 0x80), replies and Hand topics never forwarded, even under #', {
  timeout: 60_000,
}, async () => {
  await withBus(async (bus) => {
    await bus.publish(`${ROOT}/sensors/temp`, '21.5', { retain: true });
    await bus.publish(`${ROOT}/hands/idle/status`, '{"state":"running"}', { retain: true });
    await bus.publish(`${ROOT}/monitoring/status`, 'hand-internal', { retain: true });

    const anon = await connect(bus);
    const anonGot = inbox(anon);
    await subscribeRefused(anon, `${ROOT}/cmd/#`);
    await subscribeRefused(anon, `${ROOT}/cmd/reply/+/+`);
    await subscribeRefused(anon, `${ROOT}/monitoring/#`);
    await subscribeRefused(anon, '$SYS/#');
    // a filter that can match public state is granted; what it matches outside it is not forwarded
    assert.equal((await anon.subscribeAsync('#'))[0]!.qos, 0);
    assert.equal((await anon.subscribeAsync(`${ROOT}/sensors/+`))[0]!.qos, 0);
    await waitFor(
      () => anonGot.some((m) => m.topic === `${ROOT}/sensors/temp` && m.retain),
      'the retained sensor reading',
    );
    await waitFor(
      () => anonGot.some((m) => m.topic === `${ROOT}/state` && m.payload === 'online'),
      'the retained state',
    );
    await waitFor(() => anonGot.some((m) => m.topic === `${ROOT}/hands/idle/status`), 'the Hand status');

    // an admin asks for a Hand's logs and gets them on its own reply topic
    const admin = await connect(bus, { username: 'token', password: TOKEN, clientId: 'admin-1' });
    const adminGot = inbox(admin);
    await admin.subscribeAsync(`${ROOT}/cmd/reply/admin-1/+`);
    await admin.publishAsync(`${ROOT}/cmd/hands/logs`, JSON.stringify({ id: 'r1', name: 'idle' }), { qos: 1 });
    await waitFor(() => adminGot.some((m) => m.topic === `${ROOT}/cmd/reply/admin-1/r1`), 'the reply at the asker');
    assert.match(adminGot.find((m) => m.topic === `${ROOT}/cmd/reply/admin-1/r1`)!.payload, /hunter2/);

    await bus.publish(`${ROOT}/alerts/critical`, 'disk full');
    await bus.publish(`${ROOT}/monitoring/reply/q1`, 'hand-internal');
    await flush(bus);
    await waitFor(() => anonGot.some((m) => m.topic === `${ROOT}/alerts/critical`), 'a live alert');
    assert.deepEqual(
      anonGot.filter((m) => m.topic.includes('/cmd/') || m.topic.includes('/monitoring/') || m.topic.startsWith('$')),
      [],
      'nothing but the public state reached the anonymous client',
    );
    assert.ok(!anonGot.some((m) => m.payload.includes('hunter2')));
    assert.ok(bus.stats().refusedSubscribe >= 4);
  });
});

test("a command reply reaches only the client that asked: another admin neither subscribes to it nor sees it under #; an anonymous client cannot take the asker's client id", {
  timeout: 60_000,
}, async () => {
  await withBus(async (bus) => {
    const a = await connect(bus, { username: 'token', password: TOKEN, clientId: 'admin-a' });
    const b = await connect(bus, { username: 'token', password: TOKEN, clientId: 'admin-b' });
    const aGot = inbox(a);
    const bGot = inbox(b);
    await a.subscribeAsync(`${ROOT}/cmd/reply/admin-a/+`);
    await subscribeRefused(b, `${ROOT}/cmd/reply/admin-a/+`);
    await subscribeRefused(b, `${ROOT}/cmd/reply/+/+`);
    await subscribeRefused(b, `${ROOT}/cmd/reply/#`);
    await b.subscribeAsync('#');
    await b.subscribeAsync(`${ROOT}/cmd/#`);
    await a.publishAsync(`${ROOT}/cmd/hands/logs`, JSON.stringify({ id: 'ra', name: 'idle' }), { qos: 1 });
    await waitFor(() => aGot.some((m) => m.topic === `${ROOT}/cmd/reply/admin-a/ra`), "a's reply");
    // b's own command: its reply goes to b, on b's topic
    await b.publishAsync(`${ROOT}/cmd/hands/list`, JSON.stringify({ id: 'rb' }), { qos: 1 });
    await waitFor(() => bGot.some((m) => m.topic === `${ROOT}/cmd/reply/admin-b/rb`), "b's reply");
    await flush(bus);
    assert.ok(!bGot.some((m) => m.topic.startsWith(`${ROOT}/cmd/reply/admin-a/`)), "a's reply reached b");
    assert.ok(!aGot.some((m) => m.topic.startsWith(`${ROOT}/cmd/reply/admin-b/`)), "b's reply reached a");

    // an anonymous client asking for admin-a's client id is refused (CONNACK 2) and admin-a stays connected
    const a0 = bus.address();
    const refused = await connectRefused(`mqtt://${a0.host}:${a0.port}`, { clientId: 'admin-a' });
    assert.equal(refused.code, 2);
    assert.equal(a.connected, true);
    // and an anonymous client gets no reply at all: it may not publish commands
    const anon = await connect(bus, { clientId: 'anon-1' });
    await publishRefused(anon, `${ROOT}/cmd/hands/logs`, JSON.stringify({ id: 'rx', name: 'idle' }));
  });
});

test("anonymous writes: retained alerts/critical and Home Assistant discovery refused (not stored, not delivered); only running Hands' inputs accepted", {
  timeout: 60_000,
}, async () => {
  await withBus(async (bus, inputs) => {
    const kernelGot: BusMessage[] = [];
    await bus.subscribe('#', (m) => kernelGot.push(m));
    const admin = await connect(bus, { username: 'token', password: TOKEN });
    const adminGot = inbox(admin);
    await admin.subscribeAsync([`${ROOT}/#`, 'homeassistant/#']);
    // a Hand that listens to alerts (as a notifier would) does not make them writable: they are the device's voice
    const hand = inputs.track(bus);
    const handGot: BusMessage[] = [];
    await hand.subscribe(`${ROOT}/alerts/#`, (m) => handGot.push(m));

    const refusedBefore = bus.stats().refusedPublish;
    const evil = [
      { topic: `${ROOT}/alerts/critical`, retain: true },
      { topic: `${ROOT}/alerts/critical`, retain: false },
      { topic: 'homeassistant/sensor/talon_dev1/config', retain: true },
      { topic: 'homeassistant/sensor/talon_dev1/config', retain: false },
      { topic: `${ROOT}/notify/high`, retain: false },
      { topic: `${ROOT}/monitoring/reply/q1`, retain: false },
      { topic: 'elsewhere/x', retain: false },
    ];
    for (const e of evil) {
      const anon = await connect(bus);
      await publishRefused(anon, e.topic, 'evil', e.retain);
    }
    assert.equal(bus.stats().refusedPublish - refusedBefore, evil.length);
    await flush(bus);
    assert.ok(!kernelGot.some((m) => m.payload.toString() === 'evil'), 'a refused publish reached the kernel');
    assert.ok(!adminGot.some((m) => m.payload === 'evil'), 'a refused publish reached a client');
    assert.equal(handGot.length, 0);
    // nothing stored as retained: a new subscription gets no retained evil
    const later: BusMessage[] = [];
    await bus.subscribe('#', (m) => later.push(m));
    assert.ok(
      later.some((m) => m.topic === `${ROOT}/state`),
      'retained messages are replayed',
    );
    assert.ok(!later.some((m) => m.payload.toString() === 'evil'), 'a refused publish was stored as retained');

    // Home Assistant's birth message is accepted
    const ha = await connect(bus);
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor(() => kernelGot.some((m) => m.topic === 'homeassistant/status'), 'the birth message at the kernel');

    // a Hand input: refused before the Hand listens, accepted while it does, refused again after, never retained
    const go = `${ROOT}/bench/go`;
    await publishRefused(await connect(bus), go, 'too early');
    const got: BusMessage[] = [];
    const off = await hand.subscribe(`${ROOT}/bench/+`, (m) => got.push(m));
    assert.deepEqual(inputs.filters(), [`${ROOT}/alerts/#`, `${ROOT}/bench/+`]);
    const anon = await connect(bus);
    await anon.publishAsync(go, 'now', { qos: 1 });
    await waitFor(() => got.some((m) => m.payload.toString() === 'now'), 'the input at the Hand');
    await publishRefused(anon, go, 'kept', true);
    await off();
    await publishRefused(await connect(bus), go, 'too late');
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      ['now'],
    );
  });
});

test("external broker (mosquitto, MQTT 5): the reply goes to the command's Response Topic with its Correlation Data, only inside the reply tree", {
  timeout: 60_000,
}, async () => {
  const mosq = await startMosquitto();
  const bus = new RemoteBus({ ...config, url: mosq.url }, DEV);
  await bus.start();
  const commands = new MqttCommands(bus, api);
  await commands.start();
  try {
    const c = await connectClient(mosq.url, { protocolVersion: 5 });
    clients.push(c);
    const got: Array<{ topic: string; correlation?: string }> = [];
    c.on('message', (topic, _p, packet) =>
      got.push({
        topic,
        ...(packet.properties?.correlationData
          ? { correlation: Buffer.from(packet.properties.correlationData).toString() }
          : {}),
      }),
    );
    await c.subscribeAsync(['#']);
    const mine = `${ROOT}/cmd/reply/me-42/x`;
    await c.publishAsync(`${ROOT}/cmd/hands/list`, JSON.stringify({ id: 'r5' }), {
      qos: 1,
      properties: { responseTopic: mine, correlationData: Buffer.from('corr-7') },
    });
    await waitFor(() => got.some((m) => m.topic === mine), 'the reply on the response topic');
    assert.equal(got.find((m) => m.topic === mine)!.correlation, 'corr-7');
    // a response topic outside the reply tree: no reply (a command must not make the device publish an alert)
    await c.publishAsync(`${ROOT}/cmd/hands/list`, JSON.stringify({ id: 'r6' }), {
      qos: 1,
      properties: { responseTopic: `${ROOT}/alerts/critical` },
    });
    // without one: the request id's reply topic, as before
    await c.publishAsync(`${ROOT}/cmd/hands/list`, JSON.stringify({ id: 'r7' }), { qos: 1 });
    await waitFor(() => got.some((m) => m.topic === `${ROOT}/cmd/reply/r7`), 'the reply without a response topic');
    assert.ok(!got.some((m) => m.topic === `${ROOT}/alerts/critical`));
    assert.equal(commands.rejected, 1);
  } finally {
    await commands.stop();
    await bus.stop();
    await mosq.stop();
  }
});
