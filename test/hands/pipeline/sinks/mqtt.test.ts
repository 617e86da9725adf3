/**
 * The Pipeline Hand's MQTT sink (hands/pipeline/sinks/mqtt.ts) against a real mosquitto (test/helpers/mosquitto.ts):
 * publishes checked by a subscriber on the same broker, topic placeholders, QoS 0/1/2, a broker stopped then started
 * again on the same port (transient answers with backoff, then delivery), credentials and an ACL (a refused
 * publish rejects that record: MQTT 5's PUBACK reason code). An aedes broker in this process stands in where the
 * broker's behaviour must be steered: it speaks only MQTT 3.1.1 (the sink falls back) and holds back acknowledgements
 * on command (an acknowledgement timeout, a connection lost mid-batch). Records are readings from a public traffic
 * data set (../shared/datasets/nab).
 */
import assert from 'node:assert/strict';
import { type Server, type Socket, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Aedes } from 'aedes';
import type { MqttClient } from 'mqtt';
import { MQTT_SINK, createMqttSink } from '../../../../hands/pipeline/sinks/mqtt.ts';
import type { SinkDeps, SinkEntry, SinkWriter } from '../../../../hands/pipeline/sinks/types.ts';
import type { MqttSinkSpec } from '../../../../hands/pipeline/types.ts';
import { type Mosquitto, startMosquitto } from '../../../helpers/mosquitto.ts';
import { connectClient } from '../../../helpers/mqtt-client.ts';
import { freePort } from '../../../helpers/ports.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { nabRows } from '../fixtures.ts';

const ROWS = nabRows();
const SENSORS = ['north', 'south', 'east'];
const entries = (n: number, from = 0): SinkEntry[] =>
  ROWS.slice(from, from + n).map((r, i) => ({
    id: `p1:${from + i + 1}`,
    record: { sensor: SENSORS[(from + i) % SENSORS.length], timestamp: r.timestamp, speed: r.value },
  }));

const logs: string[] = [];
const deps: SinkDeps = { now: () => Date.now(), log: (level, msg) => logs.push(`${level} ${msg}`) };

const spec = (url: string, over: Partial<MqttSinkSpec> = {}): MqttSinkSpec => ({
  type: 'mqtt',
  inputs: ['src'],
  url,
  topic: 'traffic/{sensor}/speed',
  qos: 1,
  ...over,
});

interface Got {
  topic: string;
  record: Record<string, unknown>;
}

/** a subscriber on `filter` collecting what arrives */
async function subscriber(url: string, filter: string, opts = {}): Promise<{ client: MqttClient; got: Got[] }> {
  const client = await connectClient(url, opts);
  const got: Got[] = [];
  client.on('message', (topic, payload) => got.push({ topic, record: JSON.parse(payload.toString('utf8')) }));
  await client.subscribeAsync(filter, { qos: 2 });
  return { client, got };
}

const sinks: SinkWriter[] = [];
const track = (s: SinkWriter): SinkWriter => {
  sinks.push(s);
  return s;
};
after(async () => {
  for (const s of sinks) await s.close();
});

describe('mqtt sink on mosquitto', () => {
  let m: Mosquitto;
  before(async () => {
    m = await startMosquitto();
  });
  after(() => m.stop());

  test('a batch is published in order on the filled topics; done counts the acknowledged publishes', async () => {
    const sub = await subscriber(m.url, 'traffic/#');
    const sink = track(createMqttSink(spec(m.url), deps));
    const batch = entries(60);
    const r = await sink.write(batch);
    assert.deepEqual(r, { done: 60, rejected: [] });
    await waitFor(() => sub.got.length === 60, '60 messages at the subscriber');
    assert.deepEqual(
      sub.got,
      batch.map((e) => ({ topic: `traffic/${e.record.sensor}/speed`, record: e.record })),
    );
    await sub.client.endAsync();
  });

  test('QoS 0 and QoS 2 deliver too', async () => {
    const sub = await subscriber(m.url, 'traffic/#');
    for (const qos of [0, 2] as const) {
      const r = await track(createMqttSink(spec(m.url, { qos }), deps)).write(entries(10, 100));
      assert.deepEqual(r, { done: 10, rejected: [] }, `qos ${qos}`);
    }
    await waitFor(() => sub.got.length === 20, '20 messages at the subscriber');
    await sub.client.endAsync();
  });

  test('a record missing the topic field (or holding a wildcard, or not JSON) is rejected alone', async () => {
    const sub = await subscriber(m.url, 'traffic/#');
    const sink = track(createMqttSink(spec(m.url, { topic: 'traffic/{site.area}/{sensor}' }), deps));
    const batch: SinkEntry[] = entries(6, 200).map((e) => ({ ...e, record: { ...e.record, site: { area: 'a1' } } }));
    delete batch[1]!.record.sensor;
    batch[2]!.record.site = { area: 'a+b' };
    batch[3]!.record.sensor = '';
    batch[4]!.record.extra = 10n;
    const r = await sink.write(batch);
    assert.equal(r.done, 6);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1, 2, 3, 4],
    );
    assert.match(
      r.rejected[0]!.error,
      /topic "traffic\/\{site.area\}\/\{sensor\}" needs the record's field "sensor".*missing/,
    );
    assert.match(
      r.rejected[1]!.error,
      /field "site.area" \("a\+b"\) holds "\+", "#" or NUL: a topic published to cannot/,
    );
    assert.match(r.rejected[2]!.error, /field "sensor".*empty/);
    assert.match(r.rejected[3]!.error, /cannot be sent as JSON/);
    await waitFor(() => sub.got.length === 2, 'the 2 good messages');
    assert.deepEqual(
      sub.got.map((g) => g.topic),
      [`traffic/a1/${batch[0]!.record.sensor}`, `traffic/a1/${batch[5]!.record.sensor}`],
    );
    await sub.client.endAsync();
  });

  test('after close() a write answers transient and publishes nothing', async () => {
    const sub = await subscriber(m.url, 'traffic/#');
    const sink = createMqttSink(spec(m.url), deps);
    assert.equal((await sink.write(entries(1, 500))).done, 1);
    await sink.close();
    const r = await sink.write(entries(2, 501));
    assert.deepEqual([r.done, r.rejected.length, r.retryAfterMs], [0, 0, MQTT_SINK.firstMs]);
    assert.match(r.error ?? '', /is closed/);
    await waitFor(() => sub.got.length === 1, 'the message before close');
    // a publish after close would have arrived in the meantime: one more round trip on the broker proves it did not
    await sub.client.publishAsync('traffic/marker', '{}', { qos: 1 });
    await waitFor(() => sub.got.length === 2, 'the marker');
    assert.deepEqual(
      sub.got.map((g) => g.topic),
      [`traffic/${entries(1, 500)[0]!.record.sensor}/speed`, 'traffic/marker'],
    );
    await sub.client.endAsync();
  });

  test('a sink made for a broker that is not there does not throw; writes answer transient with backoff', async () => {
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const sink = track(createMqttSink(spec(url), deps));
    const waits: Array<number | undefined> = [];
    for (let i = 0; i < 3; i++) {
      const r = await sink.write(entries(3));
      assert.equal(r.done, 0);
      assert.deepEqual(r.rejected, []);
      assert.match(r.error ?? '', /cannot connect to mqtt:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
      waits.push(r.retryAfterMs);
    }
    assert.deepEqual(waits, [MQTT_SINK.firstMs, MQTT_SINK.firstMs * 2, MQTT_SINK.firstMs * 4]);
  });

  test('the broker stopped, then started again: transient answers with backoff, then delivery', async () => {
    const sink = track(createMqttSink(spec(m.url), deps, { connectTimeoutMs: 2000 }));
    assert.equal((await sink.write(entries(5, 300))).done, 5);
    await m.kill();
    const down1 = await sink.write(entries(5, 305));
    const down2 = await sink.write(entries(5, 305));
    for (const r of [down1, down2]) {
      assert.equal(r.done, 0);
      assert.deepEqual(r.rejected, []);
      assert.ok(r.error, 'a transient answer says what went wrong');
    }
    assert.deepEqual([down1.retryAfterMs, down2.retryAfterMs], [MQTT_SINK.firstMs, MQTT_SINK.firstMs * 2]);
    await m.launch();
    const sub = await subscriber(m.url, 'traffic/#');
    const batch = entries(5, 305);
    assert.deepEqual(await sink.write(batch), { done: 5, rejected: [] });
    await waitFor(() => sub.got.length === 5, 'the 5 messages after the restart');
    assert.deepEqual(
      sub.got.map((g) => g.record),
      batch.map((e) => e.record),
    );
    await sub.client.endAsync();
    // the backoff starts over after a write that went through
    await m.kill();
    assert.equal((await sink.write(entries(1))).retryAfterMs, MQTT_SINK.firstMs);
    await m.launch();
  });
});

describe('mqtt sink: credentials and ACL', () => {
  let m: Mosquitto;
  before(async () => {
    m = await startMosquitto({
      users: { gw: 'pw-1', reader: 'pw-2' },
      acl: 'user gw\ntopic write traffic/north/#\ntopic write traffic/south/#\nuser reader\ntopic read traffic/#',
    });
  });
  after(() => m.stop());

  const withUser = (url: string, user: string): string => url.replace('mqtt://', `mqtt://${user}@`);

  test('the user from the url and opts.password connect; a publish the ACL refuses rejects that record', async () => {
    const sub = await subscriber(m.url, 'traffic/#', { username: 'reader', password: 'pw-2' });
    const sink = track(createMqttSink(spec(withUser(m.url, 'gw')), deps, { password: 'pw-1' }));
    const batch = entries(6, 400); // sensors south, east, north, south, east, north (400 % 3 = 1)
    const r = await sink.write(batch);
    assert.equal(r.done, 6);
    const east = batch.flatMap((e, i) => (e.record.sensor === 'east' ? [i] : []));
    assert.equal(east.length, 2);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      east,
    );
    assert.match(r.rejected[0]!.error, /refused the message on traffic\/east\/speed: Publish error: Not authorized/);
    await waitFor(() => sub.got.length === 4, 'the 4 authorized messages');
    assert.deepEqual(
      sub.got.map((g) => g.record),
      batch.filter((e) => e.record.sensor !== 'east').map((e) => e.record),
    );
    await sub.client.endAsync();
  });

  test('a wrong password is misconfiguration: done 0, retry in 5 min, the error says what to check', async () => {
    const sink = track(createMqttSink(spec(withUser(m.url, 'gw')), deps, { password: 'wrong' }));
    const r = await sink.write(entries(2));
    assert.deepEqual([r.done, r.rejected.length, r.retryAfterMs], [0, 0, MQTT_SINK.misconfiguredMs]);
    assert.match(
      r.error ?? '',
      /refused the connection .*: the sink is misconfigured, not the records: check the user/,
    );
    assert.ok(logs.some((l) => l.startsWith('error ') && l.includes('refused the connection')));
  });
});

describe('mqtt sink on an MQTT 3.1.1 broker that holds acknowledgements (aedes)', () => {
  let server: Server;
  let broker: Aedes;
  let url = '';
  const sockets = new Set<Socket>();
  /** publishes to hold (not acknowledged) from the n-th on; Infinity: none held */
  let holdFrom = Number.POSITIVE_INFINITY;
  let authorized = 0;
  let held = 0;

  before(async () => {
    broker = new Aedes({
      authorizePublish: (_client, _packet, done) => {
        if (authorized >= holdFrom) {
          held++;
          return; // never answered: no PUBACK
        }
        authorized++;
        done(null);
      },
    });
    await broker.listen();
    server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      broker.handle(sock);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  });

  test('a broker without MQTT 5 is spoken to in 3.1.1', async () => {
    holdFrom = Number.POSITIVE_INFINITY;
    const r = await track(createMqttSink(spec(url), deps)).write(entries(4));
    assert.deepEqual(r, { done: 4, rejected: [] });
    assert.ok(logs.some((l) => /does not speak MQTT 5; using MQTT 3\.1\.1/.test(l)));
  });

  test('no acknowledgement within ackTimeoutMs: done = the acknowledged prefix, the rest retried', async () => {
    authorized = 0;
    held = 0;
    holdFrom = 3;
    const sink = track(createMqttSink(spec(url), deps, { ackTimeoutMs: 500 }));
    const r = await sink.write(entries(8));
    assert.equal(r.done, 3);
    assert.deepEqual(r.rejected, []);
    assert.equal(r.retryAfterMs, MQTT_SINK.firstMs);
    assert.match(r.error ?? '', /no acknowledgement from mqtt:\/\/127\.0\.0\.1:\d+ within 500 ms/);
    // the next write uses a new connection and goes through
    holdFrom = Number.POSITIVE_INFINITY;
    assert.deepEqual(await sink.write(entries(5, 3)), { done: 5, rejected: [] });
  });

  test('the connection lost mid-batch: done = the acknowledged prefix, transient', async () => {
    authorized = 0;
    held = 0;
    holdFrom = 4;
    const sink = track(createMqttSink(spec(url), deps, { ackTimeoutMs: 60_000 }));
    const pending = sink.write(entries(10));
    await waitFor(() => held > 0, 'a held publish');
    for (const s of sockets) s.destroy();
    const r = await pending;
    assert.equal(r.done, 4);
    assert.equal(r.retryAfterMs, MQTT_SINK.firstMs);
    assert.match(
      r.error ?? '',
      /^publish on traffic\/\w+\/speed( to mqtt:\/\/127\.0\.0\.1:\d+)?: (Connection closed|.*was lost)/,
    );
  });
});
