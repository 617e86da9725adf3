/**
 * MQTT, both ways: the device's own bus, or another broker.
 *
 *   mqtt://local/TOPIC/PATH[?in=IN_TOPIC&from=NAME]                     the device's bus through the Hand's grants
 *   mqtt(s)://{secret:user}:{secret:pass}@HOST[:PORT]/TOPIC/PATH[?in=…&from=…&client_id=…]   a remote broker
 *
 * `local` publishes and subscribes with ctx.bus (topics relative to the device root, so the Hand's bus grant must
 * cover TOPIC and its in-topic; no raw sockets). Any other host is a broker reached with the `mqtt` package (loaded
 * when the channel first connects; the Hand needs `network.raw`).
 *
 * Out: `{ id, title, text, priority, tags }` as JSON on TOPIC at QoS 1, in parts of at most 16 384 characters (a part
 * of several has the id `<outbox id>#<n>`): confirmed by the broker's PUBACK (remote) or accepted by the bus (local).
 * A remote send while the connection is down fails as transient at once, so nothing waits in a client-side queue.
 *
 * In: messages on `TOPIC/in` (or `?in=`): JSON `{ from, text, id? }` or plain text (from: `?from=`, default `mqtt`),
 * queued in memory until receive() takes them (waiting up to 25 s); the cursor is always undefined, MQTT replays
 * nothing. For a remote broker the session is persistent (clean: false, a stable client id `talon-<self>-<channel>`
 * or `?client_id=`), so QoS-1 messages published while Talon is down are delivered when it connects again; a message
 * is acknowledged to the broker when it reaches the queue (a crash before the Hand journals it loses it). The
 * platformId is the JSON's `id`, else one made up on arrival. JSON with `"bot": true` is fromBot.
 */
import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { splitRendered } from '../format.ts';
import type {
  Channel,
  ChannelEnv,
  ChannelKind,
  ChannelUrl,
  InboundBatch,
  InMessage,
  OutMessage,
  SendResult,
} from './types.ts';
import { PushQueue } from './wait.ts';
import { ChannelConfigError, ChannelError } from './types.ts';

const FORM =
  'mqtt://local/TOPIC  or  mqtt(s)://{secret:user}:{secret:pass}@HOST[:PORT]/TOPIC[?in=IN_TOPIC&from=NAME&client_id=ID]';
const WAIT_MS = 25_000;
const CONNECT_MS = 10_000;
const PUBACK_MS = 15_000;

export const mqtt: ChannelKind = {
  kind: 'mqtt',
  schemes: ['mqtt', 'mqtts'],
  direction: 'both',
  form: FORM,
  raw: (u) => u.host !== 'local',
  create(u, env, name) {
    return new MqttChannel(u, env, name);
  },
};

const TOPIC_OK = (t: string): boolean => t !== '' && !/[+#\u0000]/.test(t);

/** a publish or subscribe failure as a ChannelError: refused by a grant or ACL → auth, over a quota → rate */
function busError(err: unknown, what: string): ChannelError {
  if (err instanceof ChannelError) return err;
  const e = err as { code?: string | number; message?: string; details?: { retryAfterMs?: unknown } } | undefined;
  const code = e?.code;
  const msg = `MQTT ${what}: ${e?.message ?? String(err)}`;
  if (code === 'CAPABILITY_DENIED' || code === 4 || code === 5 || code === 134 || code === 135)
    return new ChannelError('auth', msg, { status: code, cause: err });
  if (code === 'RATE_LIMITED' || code === 'QUOTA_EXCEEDED' || code === 151) {
    // the kernel's error may say how long to wait (details.retryAfterMs)
    const wait = typeof e?.details?.retryAfterMs === 'number' ? e.details.retryAfterMs : 1000;
    return new ChannelError('rate', msg, { status: code, retryAfterMs: wait, cause: err });
  }
  return new ChannelError('transient', msg, { ...(code !== undefined && { status: code }), cause: err });
}

class MqttChannel implements Channel {
  readonly name: string;
  readonly kind = 'mqtt';
  readonly maxChars = 16_384;
  readonly dialect = 'markdown' as const;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #u: ChannelUrl;
  #local: boolean;
  #topic: string;
  #in: string;
  #from: string;
  #clientId: string;
  #queue = new PushQueue<InMessage>();
  #unsubscribe: (() => Promise<void>) | undefined;
  #subscribing: Promise<void> | undefined;
  #client: Promise<MqttClient> | undefined;
  #closed = false;

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    this.#topic = u.path.join('/');
    if (u.host === '' || !TOPIC_OK(this.#topic))
      throw new ChannelConfigError(
        `channel "${name}": an MQTT URL needs a host (or local) and a topic without + or #: ${FORM}`,
      );
    this.name = name;
    this.#env = env;
    this.#u = u;
    this.#local = u.host === 'local';
    if (this.#local && (u.user !== undefined || u.port !== undefined))
      throw new ChannelConfigError(`channel "${name}": mqtt://local/… is the device's own bus: no credentials or port`);
    this.#in = u.query.in ?? `${this.#topic}/in`;
    if (this.#in === '' || this.#in === this.#topic)
      throw new ChannelConfigError(
        `channel "${name}": ?in= must be another topic than the one sent to (or Talon reads its own messages)`,
      );
    this.#from = u.query.from ?? 'mqtt';
    this.#clientId = (u.query.client_id ?? `talon-${env.self}-${name}`).replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
    this.targets = [this.#topic];
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const topic = msg.to ?? this.#topic;
    if (!TOPIC_OK(topic)) throw new ChannelError('permanent', `"${topic}" is not a topic to publish to (no + or #)`);
    const parts = splitRendered(msg.text, this.dialect, this.maxChars);
    const platformIds: string[] = [];
    for (const [i, text] of parts.entries()) {
      const id = parts.length > 1 ? `${msg.id}#${i + 1}` : msg.id;
      const payload = { id, title: msg.title ?? null, text, priority: msg.priority, tags: msg.tags };
      if (this.#local) {
        try {
          this.#env.bus.publish(topic, payload, { qos: 1 });
        } catch (err) {
          throw busError(err, `publish on ${topic}`);
        }
      } else {
        const c = await this.#connect(signal);
        if (!c.connected) throw new ChannelError('transient', `MQTT: not connected to ${this.#u.host}; retry later`);
        await this.#withTimeout(
          c.publishAsync(topic, JSON.stringify(payload), { qos: 1 }),
          PUBACK_MS,
          'no PUBACK',
          signal,
        ).catch((err: unknown) => {
          throw busError(err, `publish on ${topic}`);
        });
      }
      platformIds.push(id);
    }
    return { platformIds };
  }

  async receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    await this.#subscribe(signal);
    return { messages: await this.#queue.take(WAIT_MS, signal), cursor: undefined };
  }

  async probe(signal: AbortSignal): Promise<void> {
    if (!this.#local) await this.#connect(signal);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.wake();
    const unsub = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsub?.().catch(() => undefined);
    const c = this.#client;
    this.#client = undefined;
    if (c) {
      const client = await c.catch(() => undefined);
      // a graceful end: the session (and its subscription) stays with the broker for the next start
      await client?.endAsync().catch(() => undefined);
    }
  }

  #push(payload: Buffer): void {
    const text = payload.toString('utf8');
    // answers go to the channel's own topic: `from` is a name, not a topic
    let m: InMessage = {
      platformId: randomUUID(),
      from: this.#from,
      fromBot: false,
      text,
      at: this.#env.now(),
      replyTo: this.#topic,
    };
    try {
      const j = JSON.parse(text) as { id?: unknown; from?: unknown; text?: unknown; bot?: unknown };
      if (j && typeof j === 'object' && typeof j.text === 'string') {
        m = { ...m, text: j.text, fromBot: j.bot === true };
        if (typeof j.from === 'string' && j.from !== '') m.from = j.from;
        if (typeof j.id === 'string' && j.id !== '') m.platformId = j.id;
      }
    } catch {
      /* plain text */
    }
    this.#queue.push(m);
  }

  #subscribe(signal: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new ChannelError('transient', `channel "${this.name}" is closed`));
    this.#subscribing ??= (async () => {
      if (this.#local) {
        this.#unsubscribe = await this.#env.bus.subscribe(this.#in, (m) => this.#push(m.payload));
        return;
      }
      const c = await this.#connect(signal);
      await this.#withTimeout(c.subscribeAsync(this.#in, { qos: 1 }), CONNECT_MS, 'no SUBACK', signal);
    })().catch((err: unknown) => {
      this.#subscribing = undefined;
      throw busError(err, `subscribe to ${this.#in}`);
    });
    return this.#subscribing;
  }

  #connect(signal: AbortSignal): Promise<MqttClient> {
    this.#client ??= (async () => {
      const { default: lib } = await import('mqtt');
      const u = this.#u;
      const port = u.port ?? (u.scheme === 'mqtts' ? 8883 : 1883);
      const client = lib.connect(`${u.scheme}://${u.host}:${port}`, {
        clientId: this.#clientId,
        clean: false,
        ...(u.user !== undefined && { username: u.user }),
        ...(u.password !== undefined && { password: u.password }),
        reconnectPeriod: 2_000,
        connectTimeout: CONNECT_MS,
        // publishes are only made while connected (send checks): nothing should wait in an offline queue
        queueQoSZero: false,
      });
      client.on('message', (_topic, payload) => this.#push(payload));
      let lastError: unknown;
      client.on('error', (err) => {
        lastError = err;
        this.#env.log.warn(`mqtt channel ${this.name}: ${err.message}`);
      });
      try {
        await this.#withTimeout(
          new Promise<void>((resolve, reject) => {
            client.once('connect', () => resolve());
            // a refused CONNACK (bad credentials) does not recover by retrying: stop at once
            client.once('error', (err) => {
              if ((err as { code?: number }).code !== undefined) reject(err);
            });
          }),
          CONNECT_MS,
          `cannot connect to ${u.host}:${port}`,
          signal,
        );
      } catch (err) {
        client.end(true);
        throw busError(err ?? lastError, `connect to ${u.host}:${port}`);
      }
      return client;
    })().catch((err: unknown) => {
      this.#client = undefined;
      throw err;
    });
    return this.#client;
  }

  async #withTimeout<T>(p: Promise<T>, ms: number, what: string, signal: AbortSignal): Promise<T> {
    let t: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          t = setTimeout(() => reject(new ChannelError('transient', `MQTT: ${what} within ${ms} ms`)), ms);
          onAbort = () => reject(signal.reason ?? new Error('aborted'));
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(t);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }
}
