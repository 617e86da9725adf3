/**
 * One MQTT connection of the agent (mqtt.js, MQTT 5, clean session, clientId = deviceId): to
 * the bootstrap broker with the claim credential, or to the fleet broker with the device's own.
 * Reconnects by itself with exponential backoff and jitter (reset on every CONNACK); on every
 * connect it subscribes again (the broker then replays the retained bundle) and calls onConnect.
 * Packets larger than maxPacketBytes are refused at the broker (MQTT 5 Maximum Packet Size).
 *
 * A refused CONNACK (bad credentials, not authorised) is retried too, with the same backoff:
 * mqtt.js on its own stops for good after one [its reconnectOnConnackError], and a fleet broker
 * refuses a device for a moment around a reload (SIGHUP after `talon fleet provision` changed its
 * password file: mosquitto drops clients whose credentials changed, and a reconnect can race the
 * reload). onRefused reports each one, so the agent can fall back to the claim credential when
 * its own keeps being refused.
 */
import type { MqttClient } from 'mqtt';

export interface LinkOptions {
  url: string;
  username: string;
  password: string;
  clientId: string;
  /** topics to (re)subscribe at QoS 1 on every connect */
  subscribe: string[];
  onConnect: () => void;
  onMessage: (topic: string, payload: Buffer, retained: boolean) => void;
  /** the broker refused the credential (CONNACK 4/5, MQTT 5 134/135); `times` in a row since the last connect */
  onRefused?: (code: number, times: number) => void;
  /**
   * The broker cannot be reached (or dropped the link): called on the first failed attempt
   * (`down`), then at most every `outageReportMs` while it lasts (`still-down`), and once on the
   * connect that ends it (`up`). A device that cannot reach its fleet says so rather than nothing.
   */
  onOutage?: (o: Outage) => void;
  /** how often a lasting outage is reported again (default 60 s) */
  outageReportMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  maxPacketBytes?: number;
  random?: () => number;
}

export interface Outage {
  event: 'down' | 'still-down' | 'up';
  /** failed attempts (closed connections) since the last connect */
  failures: number;
  /** since the first failure, ms */
  downMs: number;
  /** the last error mqtt.js reported, if any */
  error: string | null;
}

/** CONNACK codes that mean "not with this credential": 4 bad user name or password, 5 not authorised (3.1.1); 134, 135 (5.0) */
const REFUSED = new Set([4, 5, 134, 135]);

export class MqttLink {
  readonly url: string;
  readonly username: string;
  #opts: LinkOptions;
  #client: MqttClient | null = null;
  #delay: number;
  /** publishes waiting for their PUBACK: stop() fails them at once instead of letting them time out */
  #waiting = new Set<(err: Error) => void>();
  connects = 0;
  lastError: string | null = null;
  /** CONNACK refusals in a row since the last connect */
  refusals = 0;
  /** failed attempts since the last connect, and when the first one was */
  failures = 0;
  #downSince = 0;
  #reportedAt = 0;

  constructor(opts: LinkOptions) {
    this.#opts = opts;
    this.url = opts.url;
    this.username = opts.username;
    this.#delay = opts.backoff?.initialMs ?? 250;
  }

  #stopped = false;

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  /** mqtt.js is loaded here, not at module load: the bundle keeps it in dist/vendor/mqtt.cjs, read only by a device that provisions */
  async start(): Promise<void> {
    const { default: mqtt } = await import('mqtt');
    if (this.#stopped) return;
    const o = this.#opts;
    const initial = o.backoff?.initialMs ?? 250;
    const max = o.backoff?.maxMs ?? 10_000;
    const random = o.random ?? Math.random;
    const client = mqtt.connect(o.url, {
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      protocolVersion: 5,
      clean: true,
      resubscribe: false,
      reconnectPeriod: initial,
      connectTimeout: 10_000,
      keepalive: 30,
      reconnectOnConnackError: true,
      properties: { maximumPacketSize: o.maxPacketBytes ?? 1024 * 1024 },
    });
    this.#client = client;
    client.on('connect', () => {
      this.connects++;
      if (this.failures > 0) {
        o.onOutage?.({
          event: 'up',
          failures: this.failures,
          downMs: Date.now() - this.#downSince,
          error: this.lastError,
        });
        this.failures = 0;
      }
      this.refusals = 0;
      this.lastError = null;
      this.#delay = initial;
      client.options.reconnectPeriod = initial;
      if (o.subscribe.length > 0) {
        client.subscribe(o.subscribe, { qos: 1 }, (err) => {
          if (err) this.lastError = err.message;
        });
      }
      o.onConnect();
    });
    client.on('close', () => {
      if (!this.#stopped) {
        const now = Date.now();
        if (++this.failures === 1) this.#downSince = now;
        if (this.failures === 1 || now - this.#reportedAt >= (o.outageReportMs ?? 60_000)) {
          this.#reportedAt = now;
          o.onOutage?.({
            event: this.failures === 1 ? 'down' : 'still-down',
            failures: this.failures,
            downMs: now - this.#downSince,
            error: this.lastError,
          });
        }
      }
      // the next attempt waits longer, up to max, with ±20 % jitter
      this.#delay = Math.min(max, this.#delay * 2);
      client.options.reconnectPeriod = Math.max(initial, Math.round(this.#delay * (0.8 + 0.4 * random())));
    });
    client.on('error', (err) => {
      this.lastError = err.message;
      const code = (err as Error & { code?: unknown }).code;
      if (typeof code === 'number' && REFUSED.has(code) && !this.#stopped) {
        this.refusals++;
        o.onRefused?.(code, this.refusals);
      }
    });
    client.on('message', (topic, payload, packet) => o.onMessage(topic, payload, packet.retain));
  }

  /** QoS 1 publish; resolves on PUBACK (mqtt.js keeps it queued while disconnected), rejects after timeoutMs. */
  publish(topic: string, payload: Buffer | string, opts: { retain: boolean; timeoutMs?: number }): Promise<void> {
    const client = this.#client;
    if (!client) return Promise.reject(new Error('the link is stopped'));
    return new Promise((resolve, reject) => {
      const fail = (err: Error): void => {
        clearTimeout(t);
        this.#waiting.delete(fail);
        reject(err);
      };
      const t = setTimeout(
        () => fail(new Error(`no PUBACK for ${topic} within ${opts.timeoutMs ?? 10_000} ms`)),
        opts.timeoutMs ?? 10_000,
      );
      this.#waiting.add(fail);
      client.publish(topic, payload, { qos: 1, retain: opts.retain }, (err) => {
        if (err) return fail(err);
        clearTimeout(t);
        this.#waiting.delete(fail);
        resolve();
      });
    });
  }

  /** Subscribes again: the broker replays the retained messages. */
  resubscribe(): void {
    const client = this.#client;
    if (client?.connected) client.subscribe(this.#opts.subscribe, { qos: 1 }, () => {});
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const client = this.#client;
    this.#client = null;
    for (const fail of [...this.#waiting]) fail(new Error('the connection was closed before the broker confirmed'));
    if (!client) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        client.end(true, {}, () => resolve());
      }, 1_000);
      client.end(false, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
