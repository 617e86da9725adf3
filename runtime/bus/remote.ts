/**
 * RemoteBus: the kernel on an external broker (mosquitto, EMQX, HiveMQ) through mqtt.js,
 * used when `bus.url` is set.
 *
 * - Last will `talon/<id>/state` = `offline` (retained, QoS 1); retained `online` on every
 *   connect; a clean `offline` on stop().
 * - MQTT 5. Local subscriptions are ref-counted per filter: one broker subscription per
 *   distinct filter, each tagged with a subscription identifier, so a message is dispatched
 *   to the handlers of exactly the subscriptions the broker says it matched — once per local
 *   subscription even with overlapping filters, whether the broker sends one PUBLISH per
 *   matching subscription or one PUBLISH carrying several identifiers. (A broker that does
 *   not send identifiers gets local topicMatches dispatch instead.)
 * - A second local subscription on a filter that is already subscribed re-sends SUBSCRIBE
 *   with a fresh identifier so the broker replays retained messages; replayed (RETAIN=1)
 *   messages go only to the subscriptions that asked for that identifier, live ones (RETAIN=0,
 *   as the broker must send them without Retain-As-Published) to all.
 * - Reconnects itself with exponential backoff and jitter; isUp() is the connection state;
 *   subscriptions are restored (and retained state replayed) after every reconnect.
 */
import type { IClientOptions, IConnackPacket, IPublishPacket, MqttClient } from 'mqtt';
import type { Bus, BusHandler, BusMessage, BusStats, PublishOptions, QoS } from './types.ts';
import type { BusConfig } from '../config/types.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';
import { topicMatches, topics, validateFilter } from '../core/topics.ts';
import { BusCounters } from './counters.ts';

export interface RemoteBusOptions {
  clock?: Clock;
  /** MQTT client id; default `talon-<deviceId>` */
  clientId?: string;
  /** how long start() waits for the first connection before it gives up; default 15 s */
  startTimeoutMs?: number;
  /** reconnect backoff; defaults 250 ms .. 10 s, factor 2, jitter 0.2 */
  backoff?: { initialMs: number; maxMs: number; factor: number; jitter: number };
  /** MQTT keepalive in seconds; default 30 */
  keepaliveSec?: number;
}

export interface RemoteBusStats extends BusStats {
  /** connections made since start(), the first one included */
  connects: number;
}

interface Entry {
  readonly handler: BusHandler;
  /** the subscription identifier whose retained replay this entry is waiting for */
  replayId: number;
}

interface FilterSub {
  readonly filter: string;
  readonly entries: Set<Entry>;
  /** every identifier issued for this filter, still mapped until the filter goes away */
  readonly ids: number[];
}

const MAX_SUBSCRIPTION_ID = 268_435_455;
/** payload limit + the longest topic + headers and properties */
const FRAME_OVERHEAD = 65535 + 2 + 2 + 4096;
const UNAUTHORIZED_CODES = new Set([4, 5, 134, 135]);

export class RemoteBus implements Bus {
  readonly deviceId: string;
  readonly root: string;

  readonly #config: BusConfig;
  readonly #clock: Clock;
  readonly #opts: RemoteBusOptions;
  readonly #maxPayload: number;
  readonly #stateTopic: string;
  readonly #backoff: { initialMs: number; maxMs: number; factor: number; jitter: number };

  #client: MqttClient | null = null;
  #connected = false;
  #stopping = false;
  #started = false;
  #attempt = 0;
  #reconnectTimer: unknown = null;
  #connectWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  #lastError: Error | null = null;

  readonly #subs = new Map<string, FilterSub>();
  readonly #byId = new Map<number, FilterSub>();
  #nextId = 1;
  #idsAvailable = true;

  readonly #counters = new BusCounters();
  #connects = 0;

  constructor(config: BusConfig, deviceId: string, opts: RemoteBusOptions = {}) {
    if (!config.url) throw new TalonError('CONFIG_INVALID', 'RemoteBus needs bus.url');
    this.#config = config;
    this.deviceId = deviceId;
    this.root = topics.root(deviceId);
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#maxPayload = config.maxPayloadBytes;
    this.#stateTopic = topics.state(deviceId);
    this.#backoff = opts.backoff ?? { initialMs: 250, maxMs: 10_000, factor: 2, jitter: 0.2 };
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    if (this.#started) {
      if (!this.#connected) await this.#waitConnected(this.#opts.startTimeoutMs ?? 15_000);
      return;
    }
    this.#started = true;
    this.#stopping = false;
    this.#attempt = 0;
    const options: IClientOptions = {
      clientId: this.#opts.clientId ?? `talon-${this.deviceId}`,
      protocolVersion: 5,
      clean: true,
      keepalive: this.#opts.keepaliveSec ?? 30,
      reconnectPeriod: 0, // we reconnect ourselves, with backoff
      connectTimeout: 10_000,
      resubscribe: false, // we restore subscriptions ourselves, with fresh identifiers
      queueQoSZero: false,
      manualConnect: true,
      will: { topic: this.#stateTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
      properties: { maximumPacketSize: this.#maxPayload + FRAME_OVERHEAD },
    };
    if (this.#config.username !== undefined) options.username = this.#config.username;
    if (this.#config.password !== undefined) options.password = this.#config.password;
    // loaded here, not at the top: the embedded-broker default never pays for mqtt.js at start
    const { default: mqtt } = await import('mqtt');
    const client = mqtt.connect(this.#config.url!, options);
    this.#client = client;
    client.on('connect', (connack) => this.#onConnect(client, connack));
    client.on('close', () => this.#onClose(client));
    client.on('error', (err) => {
      this.#lastError = err;
    });
    client.on('message', (topic, payload, packet) => this.#onMessage(topic, payload, packet));
    client.connect();
    try {
      await this.#waitConnected(this.#opts.startTimeoutMs ?? 15_000);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#stopping = true;
    this.#started = false;
    if (this.#reconnectTimer !== null) {
      this.#clock.clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
    this.#failWaiters(new TalonError('BUS_DOWN', 'the bus was stopped'));
    const client = this.#client;
    this.#client = null;
    if (!client) return;
    if (this.#connected) {
      try {
        await withTimeout(client.publishAsync(this.#stateTopic, 'offline', { qos: 1, retain: true }), 5_000);
      } catch {
        // the will covers us
      }
    }
    this.#connected = false;
    // a normal DISCONNECT: the broker discards the will (we published `offline` ourselves)
    await withTimeout(client.endAsync(false), 5_000).catch(async () => {
      await client.endAsync(true);
    });
    client.removeAllListeners();
    client.on('error', () => undefined);
  }

  isUp(): boolean {
    return this.#connected;
  }

  #waitConnected(timeoutMs: number): Promise<void> {
    if (this.#connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#connectWaiters = this.#connectWaiters.filter((w) => w !== waiter);
        const why = this.#lastError ? `: ${this.#lastError.message}` : '';
        reject(
          new TalonError('BUS_DOWN', `cannot connect to MQTT broker ${redact(this.#config.url!)} (bus.url)${why}`, {
            cause: this.#lastError ?? undefined,
          }),
        );
      }, timeoutMs);
      const waiter = {
        resolve: () => {
          this.#clock.clearTimeout(timer);
          resolve();
        },
        reject: (err: Error) => {
          this.#clock.clearTimeout(timer);
          reject(err);
        },
      };
      this.#connectWaiters.push(waiter);
    });
  }

  #failWaiters(err: Error): void {
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  #onConnect(client: MqttClient, connack: IConnackPacket): void {
    if (client !== this.#client || this.#stopping) return;
    this.#connected = true;
    this.#connects++;
    this.#attempt = 0;
    this.#lastError = null;
    this.#idsAvailable = connack.properties?.subscriptionIdentifiersAvailable !== false;
    // small request/answer packets: Nagle would hold an answer for the broker's delayed ACK (40 ms)
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    // retained `online` replaces the will's `offline` (or a previous run's)
    client.publish(this.#stateTopic, 'online', { qos: 1, retain: true }, () => undefined);
    // restore subscriptions, each with a fresh identifier so its retained replay reaches every entry
    for (const sub of this.#subs.values()) {
      const id = this.#issueId(sub);
      for (const e of sub.entries) e.replayId = id;
      this.#sendSubscribe(client, sub.filter, id).catch(() => undefined);
    }
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  #onClose(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#connected = false;
    if (this.#stopping) return;
    const err = this.#lastError as (Error & { code?: number }) | null;
    if (err && typeof err.code === 'number' && UNAUTHORIZED_CODES.has(err.code) && this.#connects === 0) {
      // wrong credentials on the first connection: an operator error, do not hammer the broker
      this.#failWaiters(
        new TalonError(
          'UNAUTHORIZED',
          `MQTT broker ${redact(this.#config.url!)} refused the credentials (bus.username / bus.password): ${err.message}`,
          { cause: err },
        ),
      );
      return;
    }
    this.#scheduleReconnect(client);
  }

  #scheduleReconnect(client: MqttClient): void {
    if (this.#reconnectTimer !== null) return;
    const b = this.#backoff;
    const base = Math.min(b.maxMs, b.initialMs * b.factor ** this.#attempt);
    const delay = Math.max(0, Math.round(base * (1 + b.jitter * (Math.random() * 2 - 1))));
    this.#attempt++;
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#stopping || client !== this.#client) return;
      client.reconnect();
    }, delay);
  }

  // ---------------------------------------------------------------- pub/sub

  publish(topic: string, payload: Buffer | string, opts?: PublishOptions): Promise<void> {
    const client = this.#client;
    if (!this.#connected || !client) {
      return Promise.reject(
        new TalonError('BUS_DOWN', `not connected to MQTT broker ${redact(this.#config.url ?? '')}`),
      );
    }
    let buf: Buffer;
    try {
      buf = this.#counters.checkPublish(topic, payload, this.#maxPayload);
    } catch (err) {
      return Promise.reject(err);
    }
    const qos = opts?.qos ?? 0;
    if (opts?.correlationData) {
      // a response (MQTT 5, 4.10): the requester matches it by its Correlation Data
      const properties = { correlationData: opts.correlationData };
      return new Promise((resolve, reject) => {
        client.publish(
          topic,
          buf,
          { qos, retain: opts.retain ?? false, properties },
          this.#counters.ack(topic, resolve, reject),
        );
      });
    }
    if (qos === 0) {
      // QoS 0 is fire-and-forget: no callback, because mqtt.js parks a callback on the
      // socket's 'drain' event whenever its buffer is full, and thousands of those listeners
      // made every publish O(n) (measured: 5.6k msg/s with callbacks, >100k without).
      client.publish(topic, buf, { qos: 0, retain: opts?.retain ?? false });
      this.#counters.published++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      client.publish(topic, buf, { qos, retain: opts?.retain ?? false }, this.#counters.ack(topic, resolve, reject));
    });
  }

  async subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>> {
    validateFilter(filter);
    if (!this.#started) throw new TalonError('BUS_DOWN', 'the bus is not started');
    let sub = this.#subs.get(filter);
    if (!sub) {
      sub = { filter, entries: new Set(), ids: [] };
      this.#subs.set(filter, sub);
    }
    const id = this.#issueId(sub);
    const entry: Entry = { handler, replayId: id };
    sub.entries.add(entry);
    const client = this.#client;
    if (this.#connected && client) {
      try {
        await this.#sendSubscribe(client, filter, id);
      } catch (err) {
        this.#removeEntry(sub, entry);
        if (sub.entries.size === 0 && this.#connected && client === this.#client) {
          client.unsubscribe(filter, () => undefined);
        }
        throw err;
      }
    }
    // when disconnected, the subscription is sent on the next connect
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      const gone = this.#removeEntry(sub, entry);
      const c = this.#client;
      if (gone && this.#connected && c) {
        await new Promise<void>((resolve) => c.unsubscribe(filter, () => resolve()));
      }
    };
  }

  /** Remove an entry; true when that was the filter's last one and the filter is gone. */
  #removeEntry(sub: FilterSub, entry: Entry): boolean {
    sub.entries.delete(entry);
    if (sub.entries.size > 0 || this.#subs.get(sub.filter) !== sub) return false;
    this.#subs.delete(sub.filter);
    for (const id of sub.ids) this.#byId.delete(id);
    return true;
  }

  #issueId(sub: FilterSub): number {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= MAX_SUBSCRIPTION_ID ? 1 : this.#nextId + 1;
    sub.ids.push(id);
    this.#byId.set(id, sub);
    return id;
  }

  #sendSubscribe(client: MqttClient, filter: string, id: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const properties = this.#idsAvailable ? { subscriptionIdentifier: id } : undefined;
      client.subscribe(filter, properties ? { qos: 1, properties } : { qos: 1 }, (err, granted) => {
        if (err) {
          reject(new TalonError('BUS_DOWN', `subscribe to "${filter}" failed: ${err.message}`, { cause: err }));
          return;
        }
        const g = granted?.[0];
        if (g && g.qos === 128) {
          reject(new TalonError('FORBIDDEN', `the MQTT broker refused the subscription to "${filter}"`));
          return;
        }
        resolve();
      });
    });
  }

  #onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (payload.length > this.#maxPayload) {
      this.#counters.droppedOversize++;
      return;
    }
    const ids = packet.properties?.subscriptionIdentifier;
    const retain = packet.retain;
    const qos = packet.qos;
    // a request (MQTT 5 Response Topic / Correlation Data [MQTT-3.3.2.3.5, 3.3.2.3.6]): passed on to the handler
    const responseTopic = packet.properties?.responseTopic;
    const correlationData = packet.properties?.correlationData;
    const extra =
      responseTopic !== undefined || correlationData !== undefined
        ? {
            ...(responseTopic !== undefined ? { responseTopic } : {}),
            ...(correlationData !== undefined ? { correlationData: Buffer.from(correlationData) } : {}),
          }
        : undefined;
    if (ids === undefined) {
      // no identifiers from this broker: every local filter that matches
      for (const sub of this.#subs.values()) {
        if (topicMatches(sub.filter, topic)) this.#deliverTo(sub, undefined, topic, payload, qos, retain, extra);
      }
      return;
    }
    if (typeof ids === 'number') {
      const sub = this.#byId.get(ids);
      if (sub) this.#deliverTo(sub, ids, topic, payload, qos, retain, extra);
      return;
    }
    // one PUBLISH for several matching subscriptions: each filter once
    let seen: FilterSub[] | null = null;
    for (const id of ids) {
      const sub = this.#byId.get(id);
      if (!sub) continue;
      if (seen) {
        if (seen.includes(sub)) continue;
        seen.push(sub);
      } else {
        seen = [sub];
      }
      this.#deliverTo(sub, id, topic, payload, qos, retain, extra);
    }
  }

  #deliverTo(
    sub: FilterSub,
    id: number | undefined,
    topic: string,
    payload: Buffer,
    qos: QoS,
    retain: boolean,
    extra?: Pick<BusMessage, 'responseTopic' | 'correlationData'>,
  ): void {
    for (const entry of sub.entries) {
      // a retained replay goes only to the entries that asked for it
      if (retain && id !== undefined && entry.replayId !== id) continue;
      this.#counters.call(
        entry.handler,
        extra ? { topic, payload, qos, retain, ...extra } : { topic, payload, qos, retain },
      );
    }
  }

  countMalformed(): void {
    this.#counters.droppedMalformed++;
  }

  stats(): RemoteBusStats {
    return { ...this.#counters.stats(this.#connected ? 1 : 0), connects: this.#connects };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** the URL without credentials, for messages */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
