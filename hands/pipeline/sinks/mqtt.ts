/**
 * The Data Pipeline Hand's MQTT sink: publishes each record, as JSON, on another broker (mqtt: or mqtts:) with the
 * `mqtt` package, following ./types.ts's contract. It opens raw sockets, so the Hand needs `network: { raw: true }`.
 *
 * Connection: lazy (the package is loaded and the broker reached at the first write), MQTT 5 with a clean session and
 * no automatic reconnect: a connection that drops is dropped, and the next write connects again. A broker that only
 * speaks MQTT 3.1.1 (it refuses version 5 in its CONNACK) is spoken to in 3.1.1 from then on. The user name comes from
 * the url (`mqtts://sensor-gw@broker.example.com:8883`), the password from `opts.password` (the Hand resolves it from a
 * sealed secret; a password written in the url is used when opts has none).
 *
 * Topic: `spec.topic`, where `{field}` stands for the record's field (a dotted path reads a nested one):
 * `site/{sensor}/reading`. A record whose field is absent, null, empty, an object, or holds "+", "#" or NUL is rejected
 * alone, as is one that cannot be written as JSON (a BigInt, a cycle).
 *
 * Delivery: the batch's publishes are pipelined in order (at most the broker's Receive Maximum in flight, 100 at
 * most). `done` counts, from the start of the batch, the publishes the broker acknowledged (PUBACK at QoS 1, PUBCOMP
 * at QoS 2; at QoS 0 the ones written to the socket, which is all QoS 0 promises). The broker refusing one message
 * for good in its acknowledgement (MQTT 5: not authorized by its ACL, topic name invalid, payload format invalid,
 * packet too large) rejects that record; any other failure stops the batch there:
 *   the broker unreachable, the connection lost, no acknowledgement within ackTimeoutMs, a busy broker (quota
 *   exceeded, server busy …)
 *                       transient: done = the acknowledged prefix, retryAfterMs = 1 s doubled after each failure in a
 *                       row, up to 5 min, reset by a write that went through; the entries after it are published again
 *                       (at-least-once: a message acknowledged after one that was not is sent twice)
 *   the broker refusing the credentials (CONNACK: bad user name or password, not authorized, banned)
 *                       misconfiguration: done 0, retry in 5 min, an error saying what to check
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { MqttSinkSpec, PipelineRecord } from '../types.ts';
import type { SinkDeps, SinkEntry, SinkResult, SinkWriter } from './types.ts';

export const MQTT_SINK = Object.freeze({
  firstMs: 1000,
  maxMs: 300_000,
  misconfiguredMs: 300_000,
  connectTimeoutMs: 10_000,
  ackTimeoutMs: 15_000,
  /** publishes in flight at most (fewer when the broker's CONNACK says a smaller Receive Maximum) */
  maxInFlight: 100,
});

export interface MqttSinkOptions {
  /** the broker password (from a sealed secret) */
  password?: string;
  /** default `talon-pipeline-<random>` (the session is clean: nothing is kept under it) */
  clientId?: string;
  connectTimeoutMs?: number;
  ackTimeoutMs?: number;
}

/** CONNACK codes meaning the credentials are wrong (3.1.1: 4, 5; MQTT 5: 134, 135, 138 banned, 140) */
const REFUSED_CREDENTIALS = new Set([4, 5, 134, 135, 138, 140]);
/** CONNACK codes meaning the broker does not speak MQTT 5 */
const NO_V5 = new Set([1, 132]);
/** PUBACK/PUBREC reason codes refusing one message for good: not authorized, topic invalid, too large, bad payload */
const REFUSED_MESSAGE = new Set([135, 144, 149, 153]);

const MAX_TOPIC_BYTES = 65_535;

type Part = { text: string } | { field: string };

/** `site/{sensor}/reading` → its literal parts and placeholders */
function parseTopic(topic: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const m of topic.matchAll(/\{([^{}]+)\}/g)) {
    if (m.index > last) parts.push({ text: topic.slice(last, m.index) });
    parts.push({ field: (m[1] as string).trim() });
    last = m.index + m[0].length;
  }
  if (last < topic.length) parts.push({ text: topic.slice(last) });
  return parts;
}

const read = (record: PipelineRecord, path: string): unknown => {
  if (path in record) return record[path];
  let v: unknown = record;
  for (const k of path.split('.'))
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v;
};

interface Message {
  topic: string;
  payload: string;
}

/** a publish's outcome: acknowledged, refused for good (that record only), or failed (the batch stops there) */
type Outcome = { kind: 'ok' } | { kind: 'refused'; error: string } | { kind: 'fail'; error: string };

class MqttSink implements SinkWriter {
  readonly #spec: MqttSinkSpec;
  readonly #deps: SinkDeps;
  readonly #opts: MqttSinkOptions;
  readonly #topic: Part[];
  readonly #url: URL;
  readonly #where: string;
  #client: MqttClient | undefined;
  #inFlight: number = MQTT_SINK.maxInFlight;
  #protocol: 4 | 5 = 5;
  /** by connection: called with the reason when it closes, each publish waiting for its acknowledgement on it */
  readonly #onLost = new Map<MqttClient, Set<(why: string) => void>>();
  #failures = 0;
  #closed = false;

  constructor(spec: MqttSinkSpec, deps: SinkDeps, opts: MqttSinkOptions) {
    this.#spec = spec;
    this.#deps = deps;
    this.#opts = opts;
    this.#topic = parseTopic(spec.topic);
    try {
      this.#url = new URL(spec.url);
    } catch {
      throw new TalonError(
        'BAD_REQUEST',
        `mqtt sink: url ${JSON.stringify(spec.url)} is not a URL: write mqtts://HOST:8883`,
      );
    }
    if (this.#url.protocol !== 'mqtt:' && this.#url.protocol !== 'mqtts:')
      throw new TalonError('BAD_REQUEST', `mqtt sink: url must be mqtt:// or mqtts://, not ${this.#url.protocol}//`);
    this.#where = `${this.#url.protocol}//${this.#url.host}`;
  }

  async write(batch: SinkEntry[]): Promise<SinkResult> {
    if (batch.length === 0) return { done: 0, rejected: [] };
    const rejected: SinkResult['rejected'] = [];
    const messages = batch.map((e, index) => {
      const m = this.#message(e.record);
      if ('error' in m) rejected.push({ index, error: m.error });
      return 'error' in m ? undefined : m;
    });
    if (messages.every((m) => m === undefined)) return { done: batch.length, rejected };
    if (this.#closed) return this.#fail(0, rejected, `mqtt sink to ${this.#where} is closed`, MQTT_SINK.firstMs);
    let client: MqttClient;
    try {
      client = await this.#connect();
    } catch (err) {
      const e = err as Error & { code?: number };
      if (typeof e.code === 'number' && REFUSED_CREDENTIALS.has(e.code)) {
        const error =
          `${this.#where} refused the connection (${e.message}): the sink is misconfigured, not the records: check ` +
          "the user name in the sink's url and the password secret, and the broker's ACL for this client";
        this.#deps.log('error', error);
        return this.#fail(0, rejected, error, MQTT_SINK.misconfiguredMs);
      }
      return this.#fail(0, rejected, `cannot connect to ${this.#where}: ${e.message}`);
    }
    const outcomes = await this.#publishAll(client, messages);
    let done = batch.length;
    let error: string | undefined;
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i];
      if (!o || o.kind === 'ok') continue;
      if (o.kind === 'refused') rejected.push({ index: i, error: o.error });
      else {
        done = i;
        error = o.error;
        break;
      }
    }
    const settled = rejected.filter((r) => r.index < done).sort((x, y) => x.index - y.index);
    if (error === undefined) {
      this.#failures = 0;
      return { done, rejected: settled };
    }
    return this.#fail(done, settled, error);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const c = this.#client;
    this.#client = undefined;
    if (!c) return;
    await Promise.race([
      c.endAsync().catch(() => undefined),
      new Promise<void>((resolve) => setTimeout(resolve, 2000).unref()),
    ]);
    c.end(true);
  }

  #fail(done: number, rejected: SinkResult['rejected'], error: string, wait?: number): SinkResult {
    let retryAfterMs = wait;
    if (retryAfterMs === undefined) {
      retryAfterMs = Math.min(MQTT_SINK.firstMs * 2 ** this.#failures, MQTT_SINK.maxMs);
      this.#failures++;
    }
    return { done, rejected: rejected.filter((r) => r.index < done), retryAfterMs, error };
  }

  /** the record's topic and JSON, or why it cannot be published */
  #message(record: PipelineRecord): Message | { error: string } {
    let topic = '';
    for (const p of this.#topic) {
      if ('text' in p) {
        topic += p.text;
        continue;
      }
      const v = read(record, p.field);
      const text = typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean';
      if (!text || String(v) === '')
        return {
          error: `the topic "${this.#spec.topic}" needs the record's field "${p.field}" (text or a number), which is ${
            v === undefined ? 'missing' : v === '' ? 'empty' : JSON.stringify(v)?.slice(0, 40)
          }`,
        };
      const s = String(v);
      if (/[+#\u0000]/.test(s)) {
        const shown = JSON.stringify(s).slice(0, 40);
        return {
          error: `the record's field "${p.field}" (${shown}) holds "+", "#" or NUL: a topic published to cannot`,
        };
      }
      topic += s;
    }
    if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES)
      return { error: `the topic is ${Buffer.byteLength(topic)} bytes long: MQTT allows ${MAX_TOPIC_BYTES}` };
    let payload: string;
    try {
      payload = JSON.stringify(record);
    } catch (err) {
      return { error: `cannot be sent as JSON: ${(err as Error).message}` };
    }
    return { topic, payload };
  }

  /** publishes in order, at most #inFlight unacknowledged; stops starting new ones after a failure */
  async #publishAll(client: MqttClient, messages: Array<Message | undefined>): Promise<Array<Outcome | undefined>> {
    const outcomes: Array<Outcome | undefined> = new Array(messages.length);
    const running = new Set<Promise<void>>();
    let failed = false;
    for (let i = 0; i < messages.length && !failed; i++) {
      const m = messages[i];
      if (!m) continue;
      while (running.size >= this.#inFlight) await Promise.race(running);
      if (failed) break;
      const p: Promise<void> = this.#publish(client, m).then((o) => {
        outcomes[i] = o;
        if (o.kind === 'fail') failed = true;
        running.delete(p);
      });
      running.add(p);
    }
    await Promise.all(running);
    // a message never started after a failure is not delivered
    for (let i = 0; i < messages.length; i++)
      if (messages[i] && !outcomes[i]) outcomes[i] = { kind: 'fail', error: 'not sent: an earlier publish failed' };
    return outcomes;
  }

  #publish(client: MqttClient, m: Message): Promise<Outcome> {
    const qos = this.#spec.qos ?? 1;
    const ackMs = this.#opts.ackTimeoutMs ?? MQTT_SINK.ackTimeoutMs;
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const finish = (o: Outcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#onLost.get(client)?.delete(onLost);
        resolve(o);
      };
      const onLost = (why: string): void => finish({ kind: 'fail', error: `publish on ${m.topic}: ${why}` });
      const timer = setTimeout(() => {
        finish({
          kind: 'fail',
          error: `publish on ${m.topic}: no acknowledgement from ${this.#where} within ${ackMs} ms`,
        });
        // a broker that stopped answering: this connection is not used again
        this.#drop(client, 'no acknowledgement');
      }, ackMs);
      if (!client.connected || this.#client !== client) return onLost(`the connection to ${this.#where} was lost`);
      this.#onLost.get(client)?.add(onLost);
      const answered = (err?: Error): void => {
        if (!err) return finish({ kind: 'ok' });
        const code = (err as Error & { code?: number }).code;
        if (typeof code === 'number' && REFUSED_MESSAGE.has(code))
          return finish({ kind: 'refused', error: `${this.#where} refused the message on ${m.topic}: ${err.message}` });
        finish({ kind: 'fail', error: `publish on ${m.topic} to ${this.#where}: ${err.message}` });
      };
      try {
        client.publish(m.topic, m.payload, { qos }, answered);
      } catch (err) {
        // mqtt.js answers through the callback; a throw is its bug, answered like a failed publish all the same
        answered(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** forgets a connection (closing it) and fails every publish waiting on it */
  #drop(client: MqttClient, why: string): void {
    if (this.#client === client) this.#client = undefined;
    const waiting = this.#onLost.get(client);
    if (!waiting) return;
    this.#onLost.delete(client);
    client.end(true);
    for (const f of [...waiting]) f(`the connection to ${this.#where} was lost (${why})`);
  }

  async #connect(): Promise<MqttClient> {
    if (this.#client?.connected) return this.#client;
    if (this.#client) this.#drop(this.#client, 'disconnected');
    try {
      return await this.#open();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (this.#protocol === 5 && typeof code === 'number' && NO_V5.has(code)) {
        this.#protocol = 4;
        this.#deps.log('info', `mqtt sink: ${this.#where} does not speak MQTT 5; using MQTT 3.1.1`);
        return this.#open();
      }
      throw err;
    }
  }

  async #open(): Promise<MqttClient> {
    const { default: lib } = await import('mqtt');
    const u = this.#url;
    const username = u.username ? decodeURIComponent(u.username) : undefined;
    const password = this.#opts.password ?? (u.password ? decodeURIComponent(u.password) : undefined);
    const timeoutMs = this.#opts.connectTimeoutMs ?? MQTT_SINK.connectTimeoutMs;
    const options: IClientOptions = {
      protocolVersion: this.#protocol,
      clientId: this.#opts.clientId ?? `talon-pipeline-${Math.random().toString(36).slice(2, 10)}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      queueQoSZero: false,
      ...(username !== undefined && { username }),
      ...(password !== undefined && { password }),
    };
    const client = lib.connect(`${u.protocol}//${u.host}`, options);
    // mqtt.js emits errors that would otherwise be thrown: always listened to
    let lastError: (Error & { code?: number }) | undefined;
    client.on('error', (err) => {
      lastError = err;
    });
    client.on('close', () => this.#drop(client, lastError?.message ?? 'closed by the broker or the network'));
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('close', onClose);
        client.off('error', onError);
        if (err) {
          client.end(true);
          reject(err);
        } else resolve();
      };
      const onConnect = (connack: { properties?: { receiveMaximum?: number } }): void => {
        const most = connack.properties?.receiveMaximum;
        this.#inFlight = Math.max(1, Math.min(MQTT_SINK.maxInFlight, most ?? MQTT_SINK.maxInFlight));
        done();
      };
      // a refused CONNACK carries a code: stop at once
      const onError = (err: Error & { code?: number }): void => {
        if (typeof err.code === 'number') done(err);
      };
      const onClose = (): void => done(lastError ?? new Error('the connection closed before the broker answered'));
      const timer = setTimeout(() => done(lastError ?? new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
      client.on('connect', onConnect);
      client.on('error', onError);
      client.on('close', onClose);
    });
    this.#onLost.set(client, new Set());
    this.#client = client;
    return client;
  }
}

/** An MQTT sink; throws (TalonError) only for a url that is not mqtt: or mqtts: (config.ts checks it first). */
export function createMqttSink(spec: MqttSinkSpec, deps: SinkDeps, opts: MqttSinkOptions = {}): SinkWriter {
  return new MqttSink(spec, deps, opts);
}
