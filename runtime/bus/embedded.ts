/**
 * EmbeddedBus: an aedes broker in this process. The kernel publishes and subscribes with
 * aedes' in-process API (no socket); outside clients connect over a plain TCP listener on
 * 127.0.0.1 (anonymous, or username `token` + a CLI token for admin) and, optionally, a LAN
 * listener (username/password required, per-user topic ACL, TLS when cert/key are given).
 *
 * Rules enforced on outside clients (aedes authorizePublish / authorizeSubscribe / authorizeForward):
 *  - `talon/<id>/state`, `talon/<id>/hands/+/status`, `talon/<id>/audit/head` and `talon/<id>/sensors/#` are published by the kernel only;
 *  - `talon/<id>/cmd/#` needs an admin client (token or LAN user), and never takes retained messages;
 *  - anonymous clients (local listener only) read the device's public state (topics.ts PUBLIC:
 *    state, Hand status, sensors, alerts, the audit head; plus `anonymous.read`, the Home Assistant
 *    discovery prefix) and nothing else: a subscription that can match none of it gets a failure
 *    SUBACK (0x80 [MQTT-3.9.3]), and what a broader filter would match outside it is not forwarded.
 *    They publish only to topics a running Hand takes as input (`anonymous.inputs`) or that
 *    `anonymous.write` names (Home Assistant's birth message), never retained, never to public topics;
 *  - command replies go only to the client that asked: `talon/<id>/cmd/reply/<client id>/...` is
 *    forwarded to that client id alone (an admin), and subscribing under another client's reply
 *    topic is refused; an anonymous client may not take over the client id of an authenticated one
 *    (CONNACK 0x02, identifier rejected: MQTT 3.1.1 would otherwise let it [MQTT-3.1.4-2]);
 *  - a LAN user with a non-empty `allow` list may only publish to topics those filters match
 *    and subscribe to filters they cover;
 *  - payloads over `maxPayloadBytes` are refused (the connection is closed, as MQTT 3.1.1 has
 *    no negative PUBACK) and counted in stats().droppedOversize; frames far over the limit
 *    are refused while parsing the fixed header, before the payload is buffered.
 * A refused publish closes that client's connection (aedes behaviour, [MQTT-3.3.5-2]).
 */
import net from 'node:net';
import type tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { Aedes } from 'aedes';
import type { AedesPublishPacket, AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import type { Bus, BusHandler, BusMessage, BusStats, PublishOptions, QoS } from './types.ts';
import type { BusConfig, MqttUser } from '../config/types.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';
import {
  PUBLIC,
  REPLY_CLIENT_ID,
  filterCovers,
  filtersOverlap,
  topicMatches,
  topics,
  validateFilter,
} from '../core/topics.ts';
import type { InputQuery } from './inputs.ts';
import { BusCounters } from './counters.ts';
import { verifyPasswordAsync } from '../secrets/password.ts';

export interface EmbeddedBusOptions {
  /** checks a CLI token presented as username `token`; such a client is an admin */
  authenticateToken?: (token: string) => boolean;
  clock?: Clock;
  /** what anonymous clients of the local listener may do beyond reading the public state */
  anonymous?: AnonymousRules;
}

export interface AnonymousRules {
  /** the topics running Hands take as input (HandInputs): anonymous clients may publish there */
  inputs?: InputQuery;
  /** more absolute topic filters anyone may read (the Home Assistant discovery prefix `homeassistant/#`) */
  read?: readonly string[];
  /** absolute topic filters anyone may publish to (Home Assistant's birth message `homeassistant/status`) */
  write?: readonly string[];
}

export interface EmbeddedBusStats extends BusStats {
  /** outside publishes refused by the topic rules (reserved, cmd, ACL) */
  refusedPublish: number;
  /** outside subscriptions refused by a user's ACL */
  refusedSubscribe: number;
  /** CONNECTs refused for bad or missing credentials */
  authFailures: number;
}

type ListenerKind = 'local' | 'lan';

interface Principal {
  readonly name: string;
  readonly admin: boolean;
  /** null = everything */
  readonly allow: readonly string[] | null;
}

/** compared by identity: the principal of every unauthenticated client */
const ANONYMOUS: Principal = { name: 'anonymous', admin: false, allow: null };
const TOKEN_ADMIN: Principal = { name: 'token', admin: true, allow: null };

/** MQTT 3.1.1 CONNACK return codes (aedes' AuthErrorCode is a const enum, unusable with isolatedModules) */
const IDENTIFIER_REJECTED = 2;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

/** the largest frame accepted: payload limit + the longest topic + headers and MQTT 5 properties */
const FRAME_OVERHEAD = 65535 + 2 + 2 + 4096;

function authError(message: string, code: number): AuthenticateError {
  const err = new Error(message) as AuthenticateError;
  err.returnCode = code as AuthenticateError['returnCode'];
  return err;
}

export class EmbeddedBus implements Bus {
  readonly deviceId: string;
  readonly root: string;

  readonly #config: BusConfig;
  readonly #opts: EmbeddedBusOptions;
  readonly #maxPayload: number;
  readonly #stateTopic: string;
  readonly #handStatusFilter: string;
  readonly #auditHeadTopic: string;
  readonly #sensorsFilter: string;
  readonly #cmdTopic: string;
  readonly #cmdPrefix: string;
  readonly #replyPrefix: string;
  readonly #replyFilter: string;
  /** absolute filters anonymous clients may read */
  readonly #publicFilters: readonly string[];
  /** absolute filters anonymous clients may publish to besides Hands' inputs */
  readonly #anonymousWrite: readonly string[];

  #broker: Aedes | null = null;
  #servers: net.Server[] = [];
  #localServer: net.Server | null = null;
  #lanServer: net.Server | null = null;
  readonly #sockets = new Set<net.Socket>();
  readonly #listenerOf = new WeakMap<object, ListenerKind>();
  readonly #principals = new WeakMap<Client, Principal>();
  #up = false;
  #starting: Promise<void> | null = null;

  readonly #counters = new BusCounters();
  #refusedPublish = 0;
  #refusedSubscribe = 0;
  #authFailures = 0;

  constructor(config: BusConfig, deviceId: string, opts: EmbeddedBusOptions = {}) {
    this.#config = config;
    this.deviceId = deviceId;
    this.#opts = { clock: systemClock, ...opts };
    this.root = topics.root(deviceId);
    this.#maxPayload = config.maxPayloadBytes;
    this.#stateTopic = topics.state(deviceId);
    this.#handStatusFilter = topics.handStatus(deviceId, '+');
    this.#auditHeadTopic = topics.auditHead(deviceId);
    this.#sensorsFilter = `${topics.root(deviceId)}/sensors/#`;
    this.#cmdTopic = topics.command(deviceId);
    this.#cmdPrefix = `${this.#cmdTopic}/`;
    this.#replyPrefix = `${this.#cmdTopic}/reply/`;
    this.#replyFilter = `${this.#cmdTopic}/reply/#`;
    this.#publicFilters = [...PUBLIC.map((t) => `${this.root}/${t}`), ...(opts.anonymous?.read ?? [])];
    this.#anonymousWrite = opts.anonymous?.write ?? [];
  }

  // ---------------------------------------------------------------- lifecycle

  start(): Promise<void> {
    if (this.#up) return Promise.resolve();
    if (!this.#starting) {
      this.#starting = this.#doStart().finally(() => {
        this.#starting = null;
      });
    }
    return this.#starting;
  }

  async #doStart(): Promise<void> {
    const broker = new Aedes({
      id: `talon-${this.deviceId}`,
      authenticate: (client, username, password, done) => this.#authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => this.#authorizeSubscribe(client, sub, done),
      authorizeForward: (client, packet) => this.#authorizeForward(client, packet),
    });
    await broker.listen();
    broker.on('clientError', () => {
      /* a client's protocol error closes that client only */
    });
    broker.on('connectionError', () => {
      /* same, before CONNECT */
    });
    this.#broker = broker;
    try {
      const local = this.#config.embedded.listen;
      this.#localServer = net.createServer((sock) => this.#accept(sock, 'local'));
      await this.#listen(this.#localServer, local.host, local.port, 'bus.embedded.listen.port', true);
      const lan = this.#config.embedded.lan;
      if (lan?.enabled) {
        if (lan.tls) {
          let cert: Buffer;
          let key: Buffer;
          try {
            [cert, key] = await Promise.all([readFile(lan.tls.cert), readFile(lan.tls.key)]);
          } catch (err) {
            throw new TalonError(
              'LISTEN_FAILED',
              `MQTT LAN listener: cannot read TLS cert/key (bus.embedded.lan.tls): ${(err as Error).message}`,
              { cause: err },
            );
          }
          let server: tls.Server;
          try {
            // node:tls only for a TLS LAN listener: it is not loaded before /healthz otherwise
            const { createServer } = await import('node:tls');
            server = createServer({ cert, key, minVersion: 'TLSv1.2' }, (sock) => this.#accept(sock, 'lan'));
          } catch (err) {
            throw new TalonError(
              'LISTEN_FAILED',
              `MQTT LAN listener: invalid TLS cert/key (bus.embedded.lan.tls): ${(err as Error).message}`,
              { cause: err },
            );
          }
          server.on('tlsClientError', () => {
            /* failed handshake: the socket is destroyed by node */
          });
          this.#lanServer = server;
        } else {
          this.#lanServer = net.createServer((sock) => this.#accept(sock, 'lan'));
        }
        await this.#listen(this.#lanServer, lan.host, lan.port, 'bus.embedded.lan.port', false);
      }
    } catch (err) {
      await this.#teardown();
      throw err;
    }
    this.#up = true;
    await this.publish(this.#stateTopic, 'online', { qos: 1, retain: true });
  }

  async stop(): Promise<void> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    if (!this.#broker) return;
    if (this.#up) {
      await this.publish(this.#stateTopic, 'offline', { qos: 1, retain: true }).catch(() => undefined);
    }
    this.#up = false;
    await this.#teardown();
  }

  async #teardown(): Promise<void> {
    const broker = this.#broker;
    const servers = this.#servers;
    this.#servers = [];
    this.#localServer = null;
    this.#lanServer = null;
    const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    for (const sock of this.#sockets) sock.destroy();
    this.#sockets.clear();
    await Promise.all(closed);
    this.#broker = null;
  }

  #listen(server: net.Server, host: string, port: number, setting: string, envHint: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.off('listening', onListening);
        const where = `${host}:${port}`;
        if (err.code === 'EADDRINUSE') {
          reject(
            new TalonError(
              'PORT_IN_USE',
              `MQTT port ${where} is already in use (another broker or another Talon?). ` +
                `Change it with config \`${setting}\`${envHint ? ' or env TALON_MQTT=host:port' : ''}, or stop the other process.`,
              { cause: err, details: { host, port } },
            ),
          );
        } else {
          reject(
            new TalonError(
              'LISTEN_FAILED',
              `MQTT listener on ${where} failed: ${err.message} (config \`${setting}\`)`,
              { cause: err, details: { host, port } },
            ),
          );
        }
      };
      const onListening = (): void => {
        server.off('error', onError);
        server.on('error', () => {
          /* post-listen errors are per-connection; nothing to do */
        });
        this.#servers.push(server);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.on('connection', (sock: net.Socket) => {
        this.#sockets.add(sock);
        sock.once('close', () => this.#sockets.delete(sock));
      });
      server.listen(port, host);
    });
  }

  #accept(sock: net.Socket, kind: ListenerKind): void {
    const broker = this.#broker;
    if (!broker || broker.closed) {
      sock.destroy();
      return;
    }
    sock.on('error', () => {
      /* reported through aedes; keep the process alive */
    });
    // MQTT is request/answer in small packets: with Nagle on, an answer written while the client still owes the
    // ACK for our last packet (a PUBACK, say) waits for its delayed ACK, 40 ms a round trip
    sock.setNoDelay(true);
    this.#listenerOf.set(sock, kind);
    const client = broker.handle(sock);
    this.#guardFrameSize(client);
  }

  /**
   * Refuse a PUBLISH frame whose declared length is far over the payload limit while parsing
   * its fixed header, so a client cannot make the broker buffer a huge payload first.
   * Uses mqtt-packet's parser hook when present; authorizePublish checks the exact payload size
   * either way.
   */
  #guardFrameSize(client: Client): void {
    const parser = (client as unknown as { _parser?: ParserLike })._parser;
    if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') return;
    const limit = this.#maxPayload + FRAME_OVERHEAD;
    const original = parser._parseLength;
    const bus = this;
    parser._parseLength = function guardedParseLength(this: ParserLike): boolean {
      const ok = original.call(this);
      if (ok && this.packet.length > limit) {
        bus.#counters.droppedOversize++;
        this._emitError(new Error(`packet of ${this.packet.length} bytes is over the limit`));
        return false;
      }
      return ok;
    };
  }

  isUp(): boolean {
    return this.#up;
  }

  /** the bound address of the local TCP listener */
  address(): { host: string; port: number } {
    return this.#addressOf(this.#localServer, 'local');
  }

  /** the bound address of the LAN listener */
  lanAddress(): { host: string; port: number } {
    return this.#addressOf(this.#lanServer, 'LAN');
  }

  #addressOf(server: net.Server | null, what: string): { host: string; port: number } {
    const addr = server?.address();
    if (!addr || typeof addr === 'string')
      throw new TalonError('NOT_RUNNING', `the embedded MQTT ${what} listener is not bound`);
    return { host: addr.address, port: addr.port };
  }

  // ---------------------------------------------------------------- kernel API

  publish(topic: string, payload: Buffer | string, opts?: PublishOptions): Promise<void> {
    const broker = this.#broker;
    if (!this.#up || !broker)
      return Promise.reject(new TalonError('BUS_DOWN', 'the embedded MQTT broker is not running'));
    let buf: Buffer;
    try {
      buf = this.#counters.checkPublish(topic, payload, this.#maxPayload);
    } catch (err) {
      return Promise.reject(err);
    }
    const packet: PublishPacket = {
      cmd: 'publish',
      topic,
      payload: buf,
      qos: opts?.qos ?? 0,
      retain: opts?.retain ?? false,
      dup: false,
    };
    return new Promise((resolve, reject) => {
      broker.publish(packet, this.#counters.ack(topic, resolve, reject));
    });
  }

  async subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>> {
    validateFilter(filter);
    const broker = this.#broker;
    if (!this.#up || !broker) throw new TalonError('BUS_DOWN', 'the embedded MQTT broker is not running');
    // wildcards at the first level do not match `$` topics [MQTT-4.7.2-1]; mqemitter does not apply that rule
    const skipDollar = filter.charCodeAt(0) === 35 /* # */ || filter.charCodeAt(0) === 43 /* + */;
    const deliver = (packet: AedesPublishPacket, done: () => void): void => {
      if (!((skipDollar && packet.topic.charCodeAt(0) === 36) /* $ */)) {
        // aedes names the outside client that published it (absent for the kernel's own publishes)
        this.#dispatch(
          handler,
          packet.topic,
          packet.payload,
          packet.qos,
          false,
          (packet as { clientId?: string }).clientId,
        );
      }
      done();
    };
    await new Promise<void>((resolve, reject) => {
      broker.subscribe(filter, deliver, ((err?: Error) => {
        if (err)
          reject(
            new TalonError('BUS_TOPIC_INVALID', `cannot subscribe to "${filter}": ${err.message}`, { cause: err }),
          );
        else resolve();
      }) as () => void);
    });
    await this.#deliverRetained(broker, filter, handler, skipDollar);
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      if (broker.closed) return;
      await new Promise<void>((resolve) => broker.unsubscribe(filter, deliver, () => resolve()));
    };
  }

  /** retained messages matching a new kernel subscription, as an MQTT broker would send them */
  async #deliverRetained(broker: Aedes, filter: string, handler: BusHandler, skipDollar: boolean): Promise<void> {
    const persistence = (broker as unknown as { persistence?: RetainedSource }).persistence;
    if (!persistence || typeof persistence.createRetainedStreamCombi !== 'function') return;
    for await (const packet of persistence.createRetainedStreamCombi([filter])) {
      if (skipDollar && packet.topic.charCodeAt(0) === 36) continue;
      this.#dispatch(handler, packet.topic, packet.payload, packet.qos, true);
    }
  }

  #dispatch(
    handler: BusHandler,
    topic: string,
    payload: Buffer | string,
    qos: QoS,
    retain: boolean,
    clientId?: string,
  ): void {
    const msg: BusMessage = {
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos,
      retain,
    };
    if (clientId !== undefined) msg.clientId = clientId;
    this.#counters.call(handler, msg);
  }

  countMalformed(): void {
    this.#counters.droppedMalformed++;
  }

  stats(): EmbeddedBusStats {
    return {
      ...this.#counters.stats(this.#broker && !this.#broker.closed ? this.#broker.connectedClients : 0),
      refusedPublish: this.#refusedPublish,
      refusedSubscribe: this.#refusedSubscribe,
      authFailures: this.#authFailures,
    };
  }

  // ---------------------------------------------------------------- outside clients

  #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const kind = this.#listenerOf.get(client.conn) ?? 'lan';
    const refuse = (message: string, code = BAD_USERNAME_OR_PASSWORD): void => {
      this.#authFailures++;
      done(authError(message, code), false);
    };
    const admit = (who: Principal): void => {
      // a session takeover [MQTT-3.1.4-2] only by the same user: an anonymous client must not
      // knock an admin off its client id (and with it, off its command replies)
      const holder = (this.#broker as unknown as { clients?: Record<string, Client> } | null)?.clients?.[client.id];
      const held = holder && holder !== client ? this.#principals.get(holder) : undefined;
      if (held && held !== ANONYMOUS && held.name !== who.name)
        return refuse(`client id ${client.id} is in use by another user`, IDENTIFIER_REJECTED);
      this.#principals.set(client, who);
      done(null, true);
    };
    if (username === undefined || username === '') {
      if (kind === 'lan') return refuse('the LAN listener requires a username and password', NOT_AUTHORIZED);
      return admit(ANONYMOUS);
    }
    const pw = password ? password.toString('utf8') : '';
    if (kind === 'local' && username === 'token') {
      let ok = false;
      try {
        ok = pw !== '' && this.#opts.authenticateToken?.(pw) === true;
      } catch {
        ok = false;
      }
      if (!ok) return refuse('bad token');
      return admit(TOKEN_ADMIN);
    }
    const user = this.#findUser(username);
    if (!user) return refuse('bad username or password');
    verifyPasswordAsync(pw, user.passwordHash).then(
      (ok) => {
        if (!ok) return refuse('bad username or password');
        admit({
          name: user.username,
          admin: true,
          allow: user.allow && user.allow.length > 0 ? user.allow : null,
        });
      },
      () => refuse('bad username or password'),
    );
  }

  #findUser(username: string): MqttUser | undefined {
    const lan = this.#config.embedded.lan;
    if (!lan) return undefined;
    for (const u of lan.users) if (u.username === username) return u;
    return undefined;
  }

  /** Why `who` may not publish to `topic`, or null when it may. */
  #publishRefusal(who: Principal, topic: string, retain: boolean): string | null {
    if (topic.charCodeAt(0) === 36 /* $ */ && topic.startsWith('$SYS')) return '$SYS topics are reserved';
    if (
      topic === this.#stateTopic ||
      topic === this.#auditHeadTopic ||
      topicMatches(this.#handStatusFilter, topic) ||
      topicMatches(this.#sensorsFilter, topic)
    ) {
      return `${topic} is published by the kernel only`;
    }
    if (topic === this.#cmdTopic || topic.startsWith(this.#cmdPrefix)) {
      if (!who.admin) return `${topic} needs an admin client (token or LAN user)`;
      // a retained command would run again at every start
      if (retain) return `${topic}: commands are not retained`;
    }
    if (who.allow && !who.allow.some((g) => topicMatches(g, topic)))
      return `${topic} is not in the allow list of ${who.name}`;
    if (who === ANONYMOUS) {
      if (retain) return `${topic}: anonymous clients may not publish retained messages`;
      if (this.#anonymousWrite.some((f) => topicMatches(f, topic))) return null;
      if (this.#isPublic(topic)) return `${topic} is the device's public state: only the device publishes it`;
      if (this.#opts.anonymous?.inputs?.accepts(topic) !== true) {
        return `${topic} is not an input of a running Hand: anonymous clients may publish only to those (use the CLI token or a LAN user)`;
      }
    }
    return null;
  }

  #isPublic(topic: string): boolean {
    for (const f of this.#publicFilters) if (topicMatches(f, topic)) return true;
    return false;
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    // client === null: a will left by a client of a broker that is gone; treat it as anonymous
    const who = (client && this.#principals.get(client)) ?? ANONYMOUS;
    const size = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
    if (size > this.#maxPayload) {
      this.#counters.droppedOversize++;
      return done(new Error(`payload of ${size} bytes is over the limit of ${this.#maxPayload}`));
    }
    const refusal = this.#publishRefusal(who, packet.topic, packet.retain);
    if (refusal) {
      this.#refusedPublish++;
      return done(new Error(refusal));
    }
    this.#counters.published++;
    done(null);
  }

  #authorizeSubscribe(
    client: Client,
    sub: Subscription,
    done: (error: Error | null, subscription?: Subscription | null) => void,
  ): void {
    const who = this.#principals.get(client) ?? ANONYMOUS;
    const filter = sub.topic;
    const refused =
      (who.allow && !who.allow.some((g) => filterCovers(g, filter))) ||
      // anonymous: only filters that can match some of the public state
      (who === ANONYMOUS && !this.#publicFilters.some((p) => filtersOverlap(p, filter))) ||
      // under cmd/reply/: only the client's own replies
      (filterCovers(this.#replyFilter, filter) &&
        !(REPLY_CLIENT_ID.test(client.id) && filterCovers(`${this.#replyPrefix}${client.id}/#`, filter)));
    if (refused) {
      this.#refusedSubscribe++;
      return done(null, null); // failure SUBACK (0x80 [MQTT-3.9.3]) for this filter
    }
    done(null, sub);
  }

  /**
   * The last word on every message about to go to an outside client (retained ones included):
   * command traffic only to admins and a reply only to the client it names; to anonymous
   * clients only the public state, whatever their subscription matched.
   */
  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const topic = packet.topic;
    const who = this.#principals.get(client) ?? ANONYMOUS;
    if (topic.startsWith(this.#cmdPrefix) || topic === this.#cmdTopic) {
      if (!who.admin) return null;
      if (!topic.startsWith(this.#replyPrefix)) return packet;
      const rest = topic.slice(this.#replyPrefix.length);
      const slash = rest.indexOf('/');
      return slash > 0 && rest.slice(0, slash) === client.id ? packet : null;
    }
    if (who === ANONYMOUS && !this.#isPublic(topic)) return null;
    return packet;
  }
}

interface ParserLike {
  packet: { length: number };
  _parseLength: () => boolean;
  _emitError: (err: Error) => void;
}

interface RetainedSource {
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string; payload: Buffer | string; qos: QoS }>;
}
