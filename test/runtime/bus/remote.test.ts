import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MqttClient, IClientOptions } from 'mqtt';
import { RemoteBus, type RemoteBusOptions } from '../../../runtime/bus/remote.ts';
import type { BusMessage } from '../../../runtime/bus/types.ts';
import type { BusConfig } from '../../../runtime/config/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { startMosquitto, type Mosquitto } from '../../helpers/mosquitto.ts';
import { connectClient } from '../../helpers/mqtt-client.ts';
import { freePort } from '../../helpers/ports.ts';
import { once, waitFor } from '../../helpers/wait.ts';

const FAST: RemoteBusOptions = {
  backoff: { initialMs: 50, maxMs: 500, factor: 2, jitter: 0.1 },
  startTimeoutMs: 5_000,
};

function config(url: string, over: Partial<BusConfig> = {}): BusConfig {
  return { embedded: { enabled: false, listen: { host: '127.0.0.1', port: 0 } }, url, maxPayloadBytes: 1024, ...over };
}

let shared: Mosquitto;
before(async () => {
  shared = await startMosquitto();
});
after(async () => {
  await shared?.stop();
});

const buses: RemoteBus[] = [];
const clients: MqttClient[] = [];
afterEach(async () => {
  for (const b of buses.splice(0)) await b.stop();
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
});

async function startBus(
  url: string,
  deviceId: string,
  opts: RemoteBusOptions = FAST,
  over: Partial<BusConfig> = {},
): Promise<RemoteBus> {
  const bus = new RemoteBus(config(url, over), deviceId, opts);
  buses.push(bus);
  await bus.start();
  return bus;
}
async function client(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await connectClient(url, opts);
  clients.push(c);
  return c;
}
function recorder(c: MqttClient): Array<{ topic: string; payload: string; retain: boolean }> {
  const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
  return got;
}
function collector(): { msgs: BusMessage[]; handler: (m: BusMessage) => void; payloads: () => string[] } {
  const msgs: BusMessage[] = [];
  return { msgs, handler: (m) => msgs.push(m), payloads: () => msgs.map((m) => m.payload.toString()) };
}

test('pub/sub through mosquitto: retained online, both directions, offline on stop', async () => {
  const R = 'talon/r1';
  const watcher = await client(shared.url);
  const seen = recorder(watcher);
  await watcher.subscribeAsync(`${R}/#`);

  const bus = await startBus(shared.url, 'r1');
  assert.equal(bus.isUp(), true);
  assert.equal(bus.root, R);
  await waitFor(() => seen.some((m) => m.topic === `${R}/state` && m.payload === 'online'), 'online at the watcher');

  const k = collector();
  await bus.subscribe(`${R}/in/+`, k.handler);
  await watcher.publishAsync(`${R}/in/a`, 'from-outside', { qos: 1 });
  await waitFor(() => k.msgs.length === 1, 'outside publish at the kernel');
  assert.equal(k.msgs[0]!.topic, `${R}/in/a`);
  assert.equal(k.msgs[0]!.retain, false);

  await bus.publish(`${R}/out`, 'from-kernel', { qos: 1 });
  await waitFor(() => seen.some((m) => m.payload === 'from-kernel'), 'kernel publish at the watcher');

  // a new watcher gets the retained online
  const late = await client(shared.url);
  const lateSeen = recorder(late);
  await late.subscribeAsync(`${R}/state`);
  await waitFor(() => lateSeen.length === 1, 'retained state');
  assert.deepEqual(lateSeen[0], { topic: `${R}/state`, payload: 'online', retain: true });

  await bus.stop();
  assert.equal(bus.isUp(), false);
  await waitFor(() => seen.some((m) => m.topic === `${R}/state` && m.payload === 'offline'), 'offline at the watcher');
  await assert.rejects(bus.publish(`${R}/out`, 'x'), (e: unknown) => e instanceof TalonError && e.code === 'BUS_DOWN');
  assert.ok(bus.stats().published >= 1);
});

test('overlapping filters: each local subscription gets a message exactly once', async () => {
  const R = 'talon/r2';
  // the premise: mosquitto sends an MQTT 5 client one PUBLISH per matching subscription, so
  // dispatching every copy to every matching local filter would deliver twice
  const naive = await client(shared.url, { protocolVersion: 5 });
  const naiveSeen = recorder(naive);
  await naive.subscribeAsync(`${R}/#`, { qos: 1, properties: { subscriptionIdentifier: 1 } });
  await naive.subscribeAsync(`${R}/+/x`, { qos: 1, properties: { subscriptionIdentifier: 2 } });

  const bus = await startBus(shared.url, 'r2');
  const all = collector();
  const plus = collector();
  const exact = collector();
  const all2 = collector();
  const other = collector();
  await bus.subscribe(`${R}/#`, all.handler);
  await bus.subscribe(`${R}/+/x`, plus.handler);
  await bus.subscribe(`${R}/a/x`, exact.handler);
  await bus.subscribe(`${R}/#`, all2.handler); // same filter, second handler
  await bus.subscribe(`${R}/b/#`, other.handler);

  const pub = await client(shared.url);
  for (const p of ['1', '2', '3']) await pub.publishAsync(`${R}/a/x`, p, { qos: 1 });
  await pub.publishAsync(`${R}/a/x`, 'end', { qos: 1 });
  for (const c of [all, plus, exact, all2]) {
    await waitFor(() => c.payloads().includes('end'), 'the end marker');
  }
  await waitFor(() => naiveSeen.filter((m) => m.payload === 'end').length === 2, 'two copies at the MQTT 5 client');
  assert.equal(
    naiveSeen.filter((m) => m.payload === '1').length,
    2,
    'mosquitto duplicates for overlapping subscriptions',
  );

  const live = (c: ReturnType<typeof collector>): string[] =>
    c.msgs.filter((m) => !m.retain).map((m) => m.payload.toString());
  assert.deepEqual(live(all), ['1', '2', '3', 'end']);
  assert.deepEqual(live(plus), ['1', '2', '3', 'end']);
  assert.deepEqual(live(exact), ['1', '2', '3', 'end']);
  assert.deepEqual(live(all2), ['1', '2', '3', 'end']);
  assert.deepEqual(other.msgs, []);
  // retained state: once per `#` subscription, not replayed to the first when the second joined
  assert.deepEqual(
    all.msgs.filter((m) => m.retain).map((m) => m.topic),
    [`${R}/state`],
  );
  assert.deepEqual(
    all2.msgs.filter((m) => m.retain).map((m) => m.topic),
    [`${R}/state`],
  );

  // unsubscribing one of two on the same filter keeps the other
  const unsub = await bus.subscribe(`${R}/c`, () => undefined);
  const keep = collector();
  await bus.subscribe(`${R}/c`, keep.handler);
  await unsub();
  await unsub();
  await pub.publishAsync(`${R}/c`, 'still', { qos: 1 });
  await waitFor(() => keep.payloads().includes('still'), 'the remaining subscription');
});

test('handler errors are counted; oversize inbound dropped and counted; oversize publish rejected', async () => {
  const R = 'talon/r3';
  const bus = await startBus(shared.url, 'r3');
  const good = collector();
  await bus.subscribe(`${R}/t`, () => {
    throw new Error('boom');
  });
  await bus.subscribe(`${R}/t`, good.handler);
  const pub = await client(shared.url);
  await pub.publishAsync(`${R}/t`, Buffer.alloc(2048, 1), { qos: 1 }); // over bus.maxPayloadBytes
  await pub.publishAsync(`${R}/t`, 'ok', { qos: 1 });
  await waitFor(() => good.payloads().includes('ok'), 'the small message');
  assert.deepEqual(good.payloads(), ['ok']);
  assert.equal(bus.stats().droppedOversize, 1);
  assert.equal(bus.stats().handlerErrors, 1);
  await assert.rejects(
    bus.publish(`${R}/t`, Buffer.alloc(1025)),
    (e: unknown) => e instanceof TalonError && e.code === 'BUS_PAYLOAD_TOO_LARGE',
  );
  assert.equal(bus.stats().droppedOversize, 2);
  await assert.rejects(
    bus.publish(`${R}/+`, 'x'),
    (e: unknown) => e instanceof TalonError && e.code === 'BUS_TOPIC_INVALID',
  );
  assert.equal(bus.isUp(), true);
});

test('reconnects after mosquitto restarts, restores subscriptions and the online state', async () => {
  const m = await startMosquitto();
  try {
    const R = 'talon/r4';
    const bus = await startBus(m.url, 'r4');
    const k = collector();
    await bus.subscribe(`${R}/in/#`, k.handler);

    await m.kill();
    await waitFor(() => !bus.isUp(), 'isUp() false while the broker is down');
    await assert.rejects(bus.publish(`${R}/x`, 'y'), (e: unknown) => e instanceof TalonError && e.code === 'BUS_DOWN');
    // subscribing while the broker is down registers locally; it is sent on reconnect
    const down = collector();
    await bus.subscribe(`${R}/late`, down.handler);
    await m.launch();
    await waitFor(() => bus.isUp(), 'reconnected', 10_000);
    assert.equal(bus.stats().connects, 2);

    // mosquitto runs without persistence: the subscription and the retained state exist only
    // because the bus restored them
    const c = await client(m.url);
    const seen = recorder(c);
    await c.subscribeAsync(`${R}/state`);
    await waitFor(() => seen.some((s) => s.payload === 'online' && s.retain), 'online republished');
    await c.publishAsync(`${R}/in/after`, 'again', { qos: 1 });
    await waitFor(() => k.payloads().includes('again'), 'message on the restored subscription');
    await c.publishAsync(`${R}/late`, 'late', { qos: 1 });
    await waitFor(() => down.payloads().includes('late'), 'message on the subscription made while down');
    await bus.publish(`${R}/x`, 'y');
  } finally {
    for (const b of buses.splice(0)) await b.stop();
    await m.stop();
  }
});

test('last will: an outside client sees offline after the process holding the bus is SIGKILLed', async () => {
  const R = 'talon/r5';
  const watcher = await client(shared.url);
  const seen = recorder(watcher);
  await watcher.subscribeAsync(`${R}/state`);

  const fixture = fileURLToPath(new URL('../../fixtures/bus/remote-holder.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, shared.url, 'r5'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  try {
    await waitFor(() => out.includes('ready'), `the holder to connect (output: ${out})`, 15_000);
    await waitFor(() => seen.some((m) => m.payload === 'online'), 'online from the holder');
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    await waitFor(() => seen.at(-1)?.payload === 'offline', 'the will', 10_000);
    assert.equal(seen.at(-1)!.topic, `${R}/state`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  // the will was retained
  const late = await client(shared.url);
  const lateSeen = recorder(late);
  await late.subscribeAsync(`${R}/state`);
  await waitFor(() => lateSeen.length === 1, 'retained will');
  assert.deepEqual(lateSeen[0], { topic: `${R}/state`, payload: 'offline', retain: true });
});

test('wrong credentials: start() rejects UNAUTHORIZED; right ones connect', async () => {
  const m = await startMosquitto({ users: { talon: 'pw-ok' }, acl: 'user talon\ntopic readwrite talon/#' });
  try {
    const bad = new RemoteBus(config(m.url, { username: 'talon', password: 'nope' }), 'r6', FAST);
    await assert.rejects(bad.start(), (e: unknown) => e instanceof TalonError && e.code === 'UNAUTHORIZED');
    assert.equal(bad.isUp(), false);
    const ok = await startBus(m.url, 'r6', FAST, { username: 'talon', password: 'pw-ok' });
    const k = collector();
    await ok.subscribe('talon/r6/t', k.handler);
    await ok.publish('talon/r6/t', 'hello', { qos: 1 });
    await waitFor(() => k.payloads().includes('hello'), 'own publish');
  } finally {
    for (const b of buses.splice(0)) await b.stop();
    await m.stop();
  }
});

test('no broker: start() gives up with BUS_DOWN after startTimeoutMs', async () => {
  const port = await freePort();
  const bus = new RemoteBus(config(`mqtt://127.0.0.1:${port}`), 'r7', { ...FAST, startTimeoutMs: 500 });
  await assert.rejects(bus.start(), (e: unknown) => {
    assert.ok(e instanceof TalonError);
    assert.equal(e.code, 'BUS_DOWN');
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    return true;
  });
  assert.equal(bus.isUp(), false);
  await assert.rejects(
    bus.subscribe('talon/r7/#', () => undefined),
    (e: unknown) => e instanceof TalonError && e.code === 'BUS_DOWN',
  );
});

test('a credential changed under a connected bus (broker SIGHUP): dropped, refused, and retried with backoff until it is valid again', {
  timeout: 60_000,
}, async () => {
  const { writeFileSync } = await import('node:fs');
  const { passwdLine } = await import('../../helpers/mosquitto.ts');
  const mosq = await startMosquitto({
    users: { dev: 'pw-1', watcher: 'w' },
    acl: 'user dev\ntopic readwrite talon/#\nuser watcher\ntopic readwrite #',
  });
  try {
    const bus = await startBus(mosq.url, 'r-hup', FAST, { username: 'dev', password: 'pw-1' });
    const connects = bus.stats().connects;
    const setPassword = (pw: string): void => {
      writeFileSync(mosq.passwdPath!, [passwdLine('dev', pw), passwdLine('watcher', 'w')].join('\n') + '\n', {
        mode: 0o600,
      });
      mosq.reload();
    };
    setPassword('pw-2');
    await waitFor(() => !bus.isUp(), 'dropped by the reload');
    await new Promise((r) => setTimeout(r, 600)); // several refused attempts
    assert.equal(bus.isUp(), false);
    setPassword('pw-1');
    await waitFor(() => bus.isUp(), 'reconnected once the credential is valid again', 20_000);
    assert.ok(bus.stats().connects > connects);
  } finally {
    await mosq.stop();
  }
});
