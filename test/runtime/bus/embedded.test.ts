import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient, IClientOptions } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { EmbeddedBus } from '../../../runtime/bus/embedded.ts';
import { createBus } from '../../../runtime/bus/index.ts';
import { RemoteBus } from '../../../runtime/bus/remote.ts';
import { HandInputs } from '../../../runtime/bus/inputs.ts';
import type { BusMessage } from '../../../runtime/bus/types.ts';
import type { BusConfig, MqttUser } from '../../../runtime/config/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { hashPassword } from '../../../runtime/secrets/password.ts';
import { waitFor, once } from '../../helpers/wait.ts';
import { connectClient, connectRefused } from '../../helpers/mqtt-client.ts';

const DEV = 'dev1';
const ROOT = `talon/${DEV}`;
const CLI_TOKEN = 'tok-3f1c9a';

function config(over: Partial<BusConfig> = {}, lan?: BusConfig['embedded']['lan']): BusConfig {
  return {
    embedded: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, ...(lan ? { lan } : {}) },
    maxPayloadBytes: 1024,
    ...over,
  };
}

/** `inputs`: subscribe through `inputs.track(bus)` as a Hand would, and anonymous clients may publish there */
async function withBus(
  fn: (bus: EmbeddedBus, inputs: HandInputs) => Promise<void>,
  cfg: BusConfig = config(),
): Promise<void> {
  const inputs = new HandInputs();
  const bus = new EmbeddedBus(cfg, DEV, { authenticateToken: (t) => t === CLI_TOKEN, anonymous: { inputs } });
  await bus.start();
  try {
    await fn(bus, inputs);
  } finally {
    await bus.stop();
  }
}

const clients: MqttClient[] = [];
async function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await connectClient(url, opts);
  clients.push(c);
  return c;
}
async function closeAll(): Promise<void> {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
}
afterEach(closeAll);

function localUrl(bus: EmbeddedBus): string {
  const a = bus.address();
  return `mqtt://${a.host}:${a.port}`;
}

function collector(): { msgs: BusMessage[]; handler: (m: BusMessage) => void; texts: () => string[] } {
  const msgs: BusMessage[] = [];
  return { msgs, handler: (m) => msgs.push(m), texts: () => msgs.map((m) => `${m.topic}=${m.payload.toString()}`) };
}

function messages(c: MqttClient): Array<{ topic: string; payload: string; retain: boolean }> {
  const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
  return got;
}

/** publish from an outside client that the broker will refuse; resolves when the broker closed the connection */
async function publishRefused(c: MqttClient, topic: string, payload: string | Buffer): Promise<void> {
  const closed = once(c, 'close');
  c.publish(topic, payload, { qos: 0 });
  await closed;
}

test('in-process publish/subscribe: wildcards, # parent level, $ topics, unsubscribe', async () => {
  await withBus(async (bus) => {
    assert.equal(bus.root, ROOT);
    assert.equal(bus.isUp(), true);
    const all = collector();
    const plus = collector();
    const sys = collector();
    const parent = collector();
    await bus.subscribe('#', all.handler);
    const unsubPlus = await bus.subscribe(`${ROOT}/+/temp`, plus.handler);
    await bus.subscribe('$SYS/#', sys.handler);
    await bus.subscribe(`${ROOT}/sensors/#`, parent.handler);

    await bus.publish(`${ROOT}/sensors/temp`, '21.5');
    await bus.publish(`${ROOT}/sensors`, 'parent');
    await bus.publish('$SYS/talon/test', 'sys');
    await bus.publish(`${ROOT}/kitchen/temp`, Buffer.from('19'));
    await unsubPlus();
    await bus.publish(`${ROOT}/hall/temp`, '18');

    assert.deepEqual(plus.texts(), [`${ROOT}/sensors/temp=21.5`, `${ROOT}/kitchen/temp=19`]);
    assert.deepEqual(parent.texts(), [`${ROOT}/sensors/temp=21.5`, `${ROOT}/sensors=parent`]);
    assert.deepEqual(
      sys.texts().filter((t) => t.startsWith('$SYS/talon')),
      ['$SYS/talon/test=sys'],
    );
    assert.ok(!all.texts().some((t) => t.startsWith('$')), '# must not match $ topics');
    assert.ok(all.texts().includes(`${ROOT}/hall/temp=18`));
    assert.ok(Buffer.isBuffer(all.msgs[0]!.payload));
  });
});

test('retained messages reach a new in-process subscription with retain=true; live ones have retain=false', async () => {
  await withBus(async (bus) => {
    await bus.publish(`${ROOT}/cfg/a`, 'A', { retain: true, qos: 1 });
    const c = collector();
    await bus.subscribe(`${ROOT}/#`, c.handler);
    const state = c.msgs.find((m) => m.topic === `${ROOT}/state`);
    assert.equal(state?.payload.toString(), 'online');
    assert.equal(state?.retain, true);
    assert.equal(c.msgs.find((m) => m.topic === `${ROOT}/cfg/a`)?.retain, true);
    await bus.publish(`${ROOT}/cfg/a`, 'B', { retain: true });
    const last = c.msgs.at(-1)!;
    assert.equal(last.payload.toString(), 'B');
    assert.equal(last.retain, false);
  });
});

test('an outside TCP client sees retained online state and kernel publishes; its publishes to a Hand input reach the kernel; offline on stop', async () => {
  const inputs = new HandInputs();
  const bus = new EmbeddedBus(config(), DEV, { anonymous: { inputs } });
  await bus.start();
  try {
    const c = await connect(localUrl(bus));
    const got = messages(c);
    await c.subscribeAsync(`${ROOT}/#`);
    await waitFor(() => got.some((m) => m.topic === `${ROOT}/state`), 'retained state');
    assert.deepEqual(
      got.find((m) => m.topic === `${ROOT}/state`),
      { topic: `${ROOT}/state`, payload: 'online', retain: true },
    );

    await bus.publish(`${ROOT}/alerts/warning`, 'from-kernel');
    await waitFor(() => got.some((m) => m.payload === 'from-kernel'), 'kernel publish at the client');

    const k = collector();
    await inputs.track(bus).subscribe(`${ROOT}/in/#`, k.handler);
    await c.publishAsync(`${ROOT}/in/a`, 'from-client', { qos: 1 });
    await waitFor(() => k.msgs.length === 1, 'client publish at the kernel');
    assert.deepEqual(k.texts(), [`${ROOT}/in/a=from-client`]);
    assert.equal(k.msgs[0]!.clientId, c.options.clientId, 'the kernel learns which client published it');
    assert.equal(bus.stats().clients, 1);

    const closed = once(c, 'close');
    await bus.stop();
    await closed;
    assert.ok(
      got.some((m) => m.topic === `${ROOT}/state` && m.payload === 'offline'),
      'offline seen before the broker closed',
    );
    assert.equal(bus.isUp(), false);
    await assert.rejects(
      bus.publish(`${ROOT}/x`, 'y'),
      (e: unknown) => e instanceof TalonError && e.code === 'BUS_DOWN',
    );
  } finally {
    await bus.stop();
    await closeAll();
  }
});

test('reserved and cmd topics: anonymous refused, token admin may publish cmd, nobody outside may publish state', async () => {
  await withBus(async (bus) => {
    const url = localUrl(bus);
    const k = collector();
    await bus.subscribe(`${ROOT}/#`, k.handler);
    const before = k.msgs.length;

    for (const topic of [
      `${ROOT}/state`,
      `${ROOT}/hands/h1/status`,
      `${ROOT}/audit/head`,
      `${ROOT}/sensors/cpu.load`,
      `${ROOT}/cmd`,
      `${ROOT}/cmd/restart`,
      '$SYS/x',
    ]) {
      const anon = await connect(url);
      await publishRefused(anon, topic, 'evil');
    }
    assert.equal(bus.stats().refusedPublish, 7);

    const bad = await connectRefused(url, { username: 'token', password: 'wrong' });
    assert.equal(bad.code, 4);
    const noTokenFn = new EmbeddedBus(config(), 'dev2');
    await noTokenFn.start();
    try {
      const a = noTokenFn.address();
      await connectRefused(`mqtt://${a.host}:${a.port}`, { username: 'token', password: CLI_TOKEN });
    } finally {
      await noTokenFn.stop();
    }

    const admin = await connect(url, { username: 'token', password: CLI_TOKEN });
    await admin.publishAsync(`${ROOT}/cmd/restart`, 'ok', { qos: 1 });
    await waitFor(() => k.msgs.some((m) => m.topic === `${ROOT}/cmd/restart`), 'admin cmd at the kernel');
    await publishRefused(admin, `${ROOT}/state`, 'evil');
    assert.equal(bus.stats().refusedPublish, 8);

    // the kernel itself may publish everything
    await bus.publish(`${ROOT}/hands/h1/status`, 'running', { retain: true });
    assert.ok(
      !k.msgs.slice(before).some((m) => m.payload.toString() === 'evil'),
      'a refused publish reached the kernel',
    );
    assert.equal(bus.stats().authFailures, 1);
  });
  await closeAll();
});

test('oversize payloads: outside publish refused and counted; kernel publish rejects BUS_PAYLOAD_TOO_LARGE', async () => {
  await withBus(async (bus, inputs) => {
    const k = collector();
    await inputs.track(bus).subscribe(`${ROOT}/big/#`, k.handler);
    const c = await connect(localUrl(bus));
    await publishRefused(c, `${ROOT}/big/a`, Buffer.alloc(2048, 1));
    assert.equal(bus.stats().droppedOversize, 1);

    await assert.rejects(
      bus.publish(`${ROOT}/big/b`, Buffer.alloc(1025)),
      (e: unknown) => e instanceof TalonError && e.code === 'BUS_PAYLOAD_TOO_LARGE',
    );
    assert.equal(bus.stats().droppedOversize, 2);

    // exactly at the limit is fine, both ways
    const ok = await connect(localUrl(bus));
    await ok.publishAsync(`${ROOT}/big/c`, Buffer.alloc(1024, 2), { qos: 1 });
    await bus.publish(`${ROOT}/big/d`, Buffer.alloc(1024, 3));
    await waitFor(() => k.msgs.length === 2, 'the two at-limit messages');
    assert.deepEqual(
      k.msgs.map((m) => m.topic),
      [`${ROOT}/big/c`, `${ROOT}/big/d`],
    );
  });
  await closeAll();
});

test('a frame declaring a huge length is refused from its header, before the payload arrives', async () => {
  await withBus(async (bus) => {
    const { port, host } = bus.address();
    const sock = net.connect({ port, host });
    await once(sock, 'connect');
    const closed = once(sock, 'close');
    sock.on('error', () => undefined);
    sock.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'raw',
        clean: true,
        keepalive: 0,
      }),
    );
    // PUBLISH, QoS 0, remaining length 10 MiB (variable byte integer 0x80 0x80 0x80 0x05), then only a few bytes
    sock.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x05, 0x00, 0x01, 0x61]));
    await closed;
    assert.equal(bus.stats().droppedOversize, 1);
  });
});

test('stop() closes connections that never sent CONNECT', async () => {
  const bus = new EmbeddedBus(config(), DEV);
  await bus.start();
  const { port, host } = bus.address();
  const sock = net.connect({ port, host });
  sock.on('error', () => undefined);
  await once(sock, 'connect');
  const closed = once(sock, 'close');
  await bus.stop();
  await closed;
});

test('a throwing handler is counted and does not stop other subscribers', async () => {
  await withBus(async (bus) => {
    const good = collector();
    await bus.subscribe(`${ROOT}/t`, () => {
      throw new Error('boom');
    });
    await bus.subscribe(`${ROOT}/t`, async () => {
      throw new Error('async boom');
    });
    await bus.subscribe(`${ROOT}/t`, good.handler);
    await bus.publish(`${ROOT}/t`, '1');
    await bus.publish(`${ROOT}/t`, '2');
    assert.deepEqual(good.texts(), [`${ROOT}/t=1`, `${ROOT}/t=2`]);
    await waitFor(() => bus.stats().handlerErrors === 4, 'four handler errors');
    bus.countMalformed();
    assert.equal(bus.stats().droppedMalformed, 1);
    assert.equal(bus.isUp(), true);
  });
});

test('invalid topics and filters are refused with BUS_TOPIC_INVALID', async () => {
  await withBus(async (bus) => {
    const isInvalid = (e: unknown): boolean => e instanceof TalonError && e.code === 'BUS_TOPIC_INVALID';
    await assert.rejects(bus.publish(`${ROOT}/+/x`, 'y'), isInvalid);
    await assert.rejects(bus.publish('', 'y'), isInvalid);
    await assert.rejects(
      bus.subscribe(`${ROOT}/#/x`, () => undefined),
      isInvalid,
    );
  });
});

test('a port in use gives PORT_IN_USE naming host:port and how to change it', async () => {
  await withBus(async (first) => {
    const { port } = first.address();
    const second = new EmbeddedBus(config({ embedded: { enabled: true, listen: { host: '127.0.0.1', port } } }), DEV);
    await assert.rejects(second.start(), (e: unknown) => {
      assert.ok(e instanceof TalonError);
      assert.equal(e.code, 'PORT_IN_USE');
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(e.message, /bus\.embedded\.listen\.port/);
      assert.match(e.message, /TALON_MQTT=host:port/);
      assert.equal(e.exitCode, 2);
      return true;
    });
    assert.equal(second.isUp(), false);
    await second.stop();
  });
});

// ---------------------------------------------------------------------------------- LAN listener

async function lanUsers(): Promise<MqttUser[]> {
  return [
    { username: 'alice', passwordHash: hashPassword('alice-pw', { N: 1024 }), allow: [`${ROOT}/garden/#`] },
    { username: 'bob', passwordHash: hashPassword('bob-pw', { N: 1024 }) },
  ];
}

test('LAN listener: credentials required, wrong password refused, per-user ACL enforced', async () => {
  const cfg = config({}, { enabled: true, host: '127.0.0.1', port: 0, users: await lanUsers() });
  await withBus(async (bus) => {
    const lan = bus.lanAddress();
    assert.notEqual(lan.port, bus.address().port);
    const url = `mqtt://${lan.host}:${lan.port}`;

    assert.equal((await connectRefused(url)).code, 5, 'anonymous on LAN');
    assert.equal((await connectRefused(url, { username: 'alice', password: 'nope' })).code, 4);
    assert.equal((await connectRefused(url, { username: 'mallory', password: 'alice-pw' })).code, 4);
    assert.equal(
      (await connectRefused(url, { username: 'token', password: CLI_TOKEN })).code,
      4,
      'tokens are for the local listener',
    );
    assert.equal(bus.stats().authFailures, 4);

    const k = collector();
    await bus.subscribe(`${ROOT}/#`, k.handler);

    const alice = await connect(url, { username: 'alice', password: 'alice-pw' });
    // mqtt.js turns a SUBACK 0x80 into an error carrying the SUBACK
    await assert.rejects(alice.subscribeAsync(`${ROOT}/#`), (e: unknown) => {
      const granted = (e as { packet?: { granted?: number[] } }).packet?.granted;
      assert.deepEqual(granted, [128], 'subscription outside the allow list is refused');
      return true;
    });
    const granted = await alice.subscribeAsync(`${ROOT}/garden/+`);
    assert.equal(granted[0]!.qos, 0);
    assert.equal(bus.stats().refusedSubscribe, 1);
    const aliceGot = messages(alice);
    await alice.publishAsync(`${ROOT}/garden/t`, 'allowed', { qos: 1 });
    await waitFor(() => k.texts().includes(`${ROOT}/garden/t=allowed`), 'alice publish at the kernel');
    await waitFor(() => aliceGot.some((m) => m.payload === 'allowed'), 'alice sees her allowed topic');
    await publishRefused(alice, `${ROOT}/lights/1`, 'outside-acl');
    assert.equal(bus.stats().refusedPublish, 1);

    // bob has no allow list: everything, and he is an admin (cmd), but not the kernel (state)
    const bob = await connect(url, { username: 'bob', password: 'bob-pw' });
    await bob.publishAsync(`${ROOT}/lights/1`, 'bob-light', { qos: 1 });
    await bob.publishAsync(`${ROOT}/cmd/reboot`, 'bob-cmd', { qos: 1 });
    await waitFor(() => k.texts().includes(`${ROOT}/cmd/reboot=bob-cmd`), 'bob cmd at the kernel');
    await publishRefused(bob, `${ROOT}/state`, 'evil');
    assert.ok(!k.texts().includes(`${ROOT}/lights/1=outside-acl`));
    assert.ok(!k.texts().includes(`${ROOT}/state=evil`));

    // LAN users may also use the local listener
    await connect(localUrl(bus), { username: 'bob', password: 'bob-pw' });
  }, cfg);
  await closeAll();
});

test('LAN listener over TLS with a self-signed certificate', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'talon-bus-tls-'));
  try {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=talon-test',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const cfg = config({}, { enabled: true, host: '127.0.0.1', port: 0, tls: { cert, key }, users: await lanUsers() });
    await withBus(async (bus) => {
      const { host, port } = bus.lanAddress();
      const ca = await readFile(cert);
      const k = collector();
      await bus.subscribe(`${ROOT}/garden/#`, k.handler);

      const bob = await connect(`mqtts://${host}:${port}`, {
        username: 'bob',
        password: 'bob-pw',
        ca,
        rejectUnauthorized: true,
      });
      await bob.publishAsync(`${ROOT}/garden/tls`, 'secure', { qos: 1 });
      await waitFor(() => k.texts().includes(`${ROOT}/garden/tls=secure`), 'TLS publish at the kernel');

      const wrong = await connectRefused(`mqtts://${host}:${port}`, {
        username: 'bob',
        password: 'x',
        ca,
        rejectUnauthorized: true,
      });
      assert.equal(wrong.code, 4);
      // without the CA the client refuses the self-signed certificate
      const untrusted = await connectRefused(`mqtts://${host}:${port}`, {
        username: 'bob',
        password: 'bob-pw',
        rejectUnauthorized: true,
      });
      assert.match(untrusted.message, /self[- ]signed|certificate/i);
      // plain MQTT on the TLS port does not get through
      await connectRefused(`mqtt://${host}:${port}`, { username: 'bob', password: 'bob-pw', connectTimeout: 2_000 });
    }, cfg);
  } finally {
    await closeAll();
    await rm(dir, { recursive: true, force: true });
  }
});

test('createBus picks RemoteBus when bus.url is set, EmbeddedBus otherwise', () => {
  assert.ok(createBus(config(), DEV) instanceof EmbeddedBus);
  assert.ok(createBus(config({ url: 'mqtt://127.0.0.1:1' }), DEV) instanceof RemoteBus);
});

test('stats count published and delivered; start/stop are idempotent', async () => {
  const bus = new EmbeddedBus(config(), DEV);
  await Promise.all([bus.start(), bus.start()]);
  const k = collector();
  await bus.subscribe(`${ROOT}/n`, k.handler);
  for (let i = 0; i < 100; i++) await bus.publish(`${ROOT}/n`, String(i));
  const s = bus.stats();
  assert.equal(k.msgs.length, 100);
  assert.equal(s.delivered, 100);
  assert.equal(s.published, 101); // + retained online
  await bus.stop();
  await bus.stop();
  assert.equal(bus.stats().clients, 0);
});
