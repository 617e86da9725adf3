/**
 * The Discord channel: out through the REST API, in through the gateway (a WebSocket, so the Hand needs the
 * `network.raw` grant), with a REST catch-up so nothing written while the device was down is lost.
 *
 *   discord://{secret:bot_token}/CHANNEL_ID[/CHANNEL_ID…][?api=http://127.0.0.1:PORT&gateway=ws://127.0.0.1:PORT]
 *
 * The host is the bot token, the path the default channels (snowflake ids). `api` replaces
 * https://discord.com/api/v10 and `gateway` the URL GET /gateway/bot gives (tests).
 *
 * Out: POST /channels/{id}/messages with {content, nonce, enforce_nonce: true}, split at 2000 characters. The nonce
 * is derived from the outbox id, the channel and the part, so a retry after a crash mid-send is deduplicated by
 * Discord (for a few minutes) instead of posting twice. Rate limits are per route bucket: the X-RateLimit-* headers of
 * each answer are kept, and a call on a bucket that has no requests left waits for its reset instead of taking a 429
 * (a wait over MAX_BUCKET_WAIT_MS is handed to the Hand as a 'rate' error). 401 → auth; 403 (missing access) and 404
 * (unknown channel) → permanent.
 *
 * In: HELLO → heartbeats every heartbeat_interval (a heartbeat not acknowledged before the next one: the connection
 * is a zombie and is replaced), IDENTIFY with GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT, READY (the bot's
 * user id), MESSAGE_CREATE queued; a dropped connection RESUMEs the session (Discord replays what was missed), and
 * when that is refused the next batch is completed over REST. Only the URL's channels and direct messages are
 * taken. The cursor is JSON {channelId: last message id}: given one the channel has not handed out (the first receive
 * after a start), it first reads GET /channels/{id}/messages?after=… (oldest first) for each channel in it; gateway
 * messages at or before the cursor are dropped. platformId = the message id.
 */
import { createHash } from 'node:crypto';
import { abortError, sleep } from './wait.ts';
import { callJson } from './http.ts';
import { render, splitText } from '../format.ts';
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
import { ChannelConfigError, ChannelError } from './types.ts';

const FORM = 'discord://{secret:bot_token}/CHANNEL_ID[/CHANNEL_ID…]';
const MAX_CHARS = 2000;
const PLATFORM = 'Discord';
/** a bucket's wait the channel sits out itself; a longer one goes back to the Hand as a 'rate' error */
export const MAX_BUCKET_WAIT_MS = 30_000;
/** GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT */
export const INTENTS = (1 << 9) | (1 << 12) | (1 << 15);
const SNOWFLAKE = /^\d{1,20}$/;
/** pages of 100 the catch-up reads per channel at most (then the rest comes on the next receive) */
const CATCH_UP_PAGES = 5;

interface DiscordMessage {
  id: string;
  channel_id: string;
  guild_id?: string;
  content?: string;
  timestamp?: string;
  webhook_id?: string;
  author?: { id: string; username?: string; global_name?: string | null; bot?: boolean };
}

interface GatewayFrame {
  op: number;
  d?: unknown;
  s?: number | null;
  t?: string | null;
}

/** a nonce of at most 25 characters, the same for the same outbox message, channel and part */
export function discordNonce(outboxId: string, channel: string, part: number): string {
  const h = createHash('sha256').update(`${outboxId}\u0000${channel}`).digest('base64url').slice(0, 20);
  return `${h}.${part}`;
}

const later = (a: string, b: string | undefined): boolean => b === undefined || BigInt(a) > BigInt(b);

/** the cursor as a map; an unreadable one is no cursor (logged by the caller) */
function parseCursor(c: string | undefined): Map<string, string> | undefined {
  if (c === undefined || c === '') return undefined;
  try {
    const o = JSON.parse(c) as unknown;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) return undefined;
    const m = new Map<string, string>();
    for (const [k, v] of Object.entries(o))
      if (SNOWFLAKE.test(k) && typeof v === 'string' && SNOWFLAKE.test(v)) m.set(k, v);
    return m;
  } catch {
    return undefined;
  }
}

interface Bucket {
  remaining: number;
  /** ms epoch when it refills */
  resetAt: number;
}

class DiscordChannel implements Channel {
  readonly kind = 'discord';
  readonly maxChars = MAX_CHARS;
  readonly dialect = 'discord' as const;
  readonly name: string;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #token: string;
  #api: string;
  #gatewayUrl: string | undefined;
  /** route → the bucket id Discord named for it; bucket id (or the route, until named) → its state */
  #routeBucket = new Map<string, string>();
  #buckets = new Map<string, Bucket>();
  #globalUntil = 0;
  /** the last call queued on each route: calls on a route go one after the other, so a bucket is read before use */
  #routeTail = new Map<string, Promise<void>>();
  // gateway
  #ws: WebSocket | undefined;
  #connecting: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #acked = true;
  #seq: number | null = null;
  #session: string | undefined;
  #resumeUrl: string | undefined;
  #self: string | undefined;
  #queue: DiscordMessage[] = [];
  #wake: Array<() => void> = [];
  #fatal: ChannelError | undefined;
  #failures = 0;
  #closed = false;
  /** what this object has handed out, per channel (absent before the first receive) */
  #handed: Map<string, string> | undefined;
  /** a new session replaced a lost one: what happened in between is read over REST */
  #gap = false;

  constructor(
    name: string,
    env: ChannelEnv,
    token: string,
    targets: string[],
    api: string,
    gateway: string | undefined,
  ) {
    this.name = name;
    this.#env = env;
    this.#token = token;
    this.targets = targets;
    this.#api = api;
    this.#gatewayUrl = gateway;
  }

  // --- REST ---------------------------------------------------------------------------------------------------------

  /** one REST call on `route` (its bucket key: method and path with the major parameter), one at a time per route */
  async #rest<T>(route: string, path: string, signal: AbortSignal, json?: unknown): Promise<T> {
    const before = this.#routeTail.get(route) ?? Promise.resolve();
    const call = before.then(() => this.#restNow<T>(route, path, signal, json));
    const tail = call.then(
      () => undefined,
      () => undefined,
    );
    this.#routeTail.set(route, tail);
    try {
      return await call;
    } finally {
      if (this.#routeTail.get(route) === tail) this.#routeTail.delete(route);
    }
  }

  async #restNow<T>(route: string, path: string, signal: AbortSignal, json?: unknown): Promise<T> {
    const key = this.#routeBucket.get(route) ?? route;
    const b = this.#buckets.get(key);
    const now = this.#env.now();
    let wait = Math.max(0, this.#globalUntil - now);
    if (b && b.remaining <= 0 && b.resetAt > now) wait = Math.max(wait, b.resetAt - now);
    if (wait > MAX_BUCKET_WAIT_MS)
      throw new ChannelError('rate', `${PLATFORM}: the ${route} bucket is empty for ${Math.ceil(wait / 1000)} s`, {
        retryAfterMs: wait,
        status: 429,
      });
    if (wait > 0) await sleep(wait, signal);
    if (b && b.resetAt <= this.#env.now()) this.#buckets.delete(key);
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.remaining--;
    try {
      return await callJson<T>(this.#env, PLATFORM, `${this.#api}${path}`, {
        method: json !== undefined ? 'POST' : 'GET',
        headers: { authorization: `Bot ${this.#token}` },
        ...(json !== undefined && { json }),
        signal,
        timeoutMs: 30_000,
        retryAfterOf: (body) => {
          const r = (body as { retry_after?: unknown } | null)?.retry_after;
          return typeof r === 'number' ? Math.ceil(r * 1000) : undefined;
        },
        check: (body, res) => {
          this.#learn(route, res.headers);
          return undefined;
        },
      });
    } catch (err) {
      if (!(err instanceof ChannelError)) throw err;
      if (err.kind === 'rate') {
        const until = this.#env.now() + (err.retryAfterMs ?? 1000);
        if (/"global":\s*true/.test(err.message)) this.#globalUntil = until;
        else this.#buckets.set(this.#routeBucket.get(route) ?? route, { remaining: 0, resetAt: until });
      }
      // 403 is Discord's "Missing Access"/"Missing Permissions" for this channel, not a refused token
      if (err.status === 403) {
        const detail = /\(403\)(: .*?)(?:; check|$)/.exec(err.message)?.[1] ?? '';
        throw new ChannelError(
          'permanent',
          `${PLATFORM} refused ${route} (403)${detail}: the bot lacks access (View Channel, Send Messages, Read Message History)`,
          { status: 403, cause: err },
        );
      }
      throw err;
    }
  }

  /** the bucket headers of an answer */
  #learn(route: string, h: Headers): void {
    const id = h.get('x-ratelimit-bucket');
    const remaining = h.get('x-ratelimit-remaining');
    const resetAfter = h.get('x-ratelimit-reset-after');
    if (remaining === null || resetAfter === null) return;
    const key = id ?? route;
    if (id !== null) this.#routeBucket.set(route, id);
    const r = Number(remaining);
    const after = Number(resetAfter);
    if (!Number.isFinite(r) || !Number.isFinite(after)) return;
    this.#buckets.set(key, { remaining: r, resetAt: this.#env.now() + Math.ceil(after * 1000) });
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const to = msg.to !== undefined ? [msg.to] : this.targets;
    if (to.length === 0)
      throw new ChannelError(
        'permanent',
        `${this.name}: no Discord channel to send to; add one to the URL (${FORM}) or address the message`,
      );
    for (const c of to)
      if (!SNOWFLAKE.test(c))
        throw new ChannelError(
          'permanent',
          `${this.name}: "${c}" is not a Discord channel id (digits, e.g. 1234567890123456789)`,
        );
    const md = msg.title ? `**${msg.title}**\n\n${msg.text}` : msg.text;
    const parts = splitText(render(md, 'discord'), MAX_CHARS);
    const ids: string[] = [];
    for (const channel of to)
      for (let i = 0; i < parts.length; i++) {
        const r = await this.#rest<{ id?: unknown }>(
          `POST /channels/${channel}/messages`,
          `/channels/${channel}/messages`,
          signal,
          {
            content: parts[i],
            nonce: discordNonce(msg.id, channel, i),
            enforce_nonce: true,
            allowed_mentions: { parse: [] },
          },
        );
        if (typeof r?.id !== 'string')
          throw new ChannelError('transient', `${PLATFORM} confirmed a message without its id`);
        ids.push(r.id);
      }
    return { platformIds: ids };
  }

  async probe(signal: AbortSignal): Promise<void> {
    const me = await this.#rest<{ id?: string }>('GET /users/@me', '/users/@me', signal);
    if (typeof me?.id === 'string') this.#self ??= me.id;
  }

  // --- receiving --------------------------------------------------------------------------------------------------

  async receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    const given = parseCursor(cursor);
    if (cursor !== undefined && cursor !== '' && given === undefined)
      this.#env.log.warn(
        `${this.name}: the stored Discord cursor ${JSON.stringify(cursor.slice(0, 80))} is unreadable; starting from now`,
      );
    const at = new Map(given ?? []);
    // the gateway first, so nothing written during the catch-up falls between the two
    await this.#connected(signal);
    // channels whose cursor is behind what this object handed out (a first receive, a batch not journalled) or a gap
    const behind = [...at].filter(([c, id]) => {
      const h = this.#handed?.get(c);
      return this.#handed === undefined || h === undefined || BigInt(h) > BigInt(id) || this.#gap;
    });
    if (this.#gap) {
      for (const [c, id] of this.#handed ?? []) if (!at.has(c)) behind.push([c, id]);
      this.#gap = false;
    }
    const out: DiscordMessage[] = [];
    for (const [channel, after] of behind) {
      try {
        out.push(...(await this.#catchUp(channel, after, signal)));
      } catch (err) {
        // a channel the bot can no longer read must not stop the others: skipped, said once per start
        if (!(err instanceof ChannelError) || err.kind !== 'permanent') throw err;
        this.#env.log.warn(`${this.name}: cannot catch up on Discord channel ${channel}: ${err.message}`);
      }
    }
    for (const m of out) if (later(m.id, at.get(m.channel_id))) at.set(m.channel_id, m.id);
    // caught up: a receive that now waits and is aborted does not read the same history again
    if (out.length === 0) this.#handed = new Map(at);
    for (;;) {
      for (const m of this.#queue.splice(0)) {
        if (!later(m.id, at.get(m.channel_id))) continue; // at or before the cursor: already had
        if (out.some((x) => x.id === m.id)) continue;
        out.push(m);
        at.set(m.channel_id, m.id);
      }
      if (out.length > 0) break;
      if (this.#fatal) throw this.#fatal;
      if (this.#ws === undefined || this.#connecting !== undefined) {
        // a new session may replay what it missed before it is READY: back to the queue once it is
        await this.#connected(signal);
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(abortError(signal));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        this.#wake.push(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
    this.#handed = new Map(at);
    return {
      messages: out.map((m) => this.#inMessage(m)),
      cursor: JSON.stringify(Object.fromEntries(at)),
    };
  }

  async #catchUp(channel: string, after: string, signal: AbortSignal): Promise<DiscordMessage[]> {
    const got: DiscordMessage[] = [];
    let from = after;
    for (let page = 0; page < CATCH_UP_PAGES; page++) {
      const list = await this.#rest<DiscordMessage[]>(
        `GET /channels/${channel}/messages`,
        `/channels/${channel}/messages?after=${from}&limit=100`,
        signal,
      );
      if (!Array.isArray(list))
        throw new ChannelError('transient', `${PLATFORM} answered a message list that is not a list`);
      const ms = list.filter((m) => typeof m?.id === 'string' && SNOWFLAKE.test(m.id) && later(m.id, from));
      // Discord gives the newest first: oldest first here
      ms.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
      for (const m of ms) got.push({ ...m, channel_id: m.channel_id ?? channel });
      if (ms.length < 100) break;
      from = ms.at(-1)!.id;
    }
    return got;
  }

  #inMessage(m: DiscordMessage): InMessage {
    const a = m.author;
    const fromBot = a?.bot === true || m.webhook_id !== undefined || (this.#self !== undefined && a?.id === this.#self);
    const t = m.timestamp !== undefined ? Date.parse(m.timestamp) : Number.NaN;
    const out: InMessage = {
      platformId: m.id,
      from: a?.id ?? '',
      fromBot,
      text: m.content ?? '',
      // a snowflake holds its ms since the Discord epoch
      at: Number.isNaN(t) ? Number((BigInt(m.id) >> 22n) + 1420070400000n) : t,
      replyTo: m.channel_id,
    };
    const name = a?.global_name ?? a?.username;
    if (name) out.fromName = name;
    return out;
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  /** resolves once a session is READY (or RESUMED); rejects with the reason it cannot be */
  async #connected(signal: AbortSignal): Promise<void> {
    if (this.#closed) throw new ChannelError('transient', `${this.name} is closed`);
    if (this.#ws !== undefined && this.#connecting === undefined) return;
    if (this.#connecting === undefined) {
      const delay = this.#failures > 0 ? Math.min(30_000, 1000 * 2 ** (this.#failures - 1)) : 0;
      this.#connecting = (async () => {
        if (delay > 0) await sleep(delay, AbortSignal.timeout(delay + 1000)).catch(() => undefined);
        await this.#connect();
      })().then(
        () => {
          this.#failures = 0;
          this.#connecting = undefined;
        },
        (err: unknown) => {
          this.#failures++;
          this.#connecting = undefined;
          throw err;
        },
      );
    }
    const p = this.#connecting;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(abortError(signal));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  async #connect(): Promise<void> {
    this.#fatal = undefined;
    let base = this.#session !== undefined && this.#resumeUrl !== undefined ? this.#resumeUrl : this.#gatewayUrl;
    if (base === undefined) {
      const g = await this.#rest<{ url?: unknown }>('GET /gateway/bot', '/gateway/bot', AbortSignal.timeout(30_000));
      if (typeof g?.url !== 'string') throw new ChannelError('transient', `${PLATFORM} GET /gateway/bot gave no url`);
      base = g.url;
    }
    const u = new URL(base);
    u.searchParams.set('v', '10');
    u.searchParams.set('encoding', 'json');
    const ws = new WebSocket(u.toString());
    this.#ws = ws;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        if (err === undefined) resolve();
        else reject(err);
      };
      const t = setTimeout(() => {
        done(new ChannelError('transient', `${PLATFORM} gateway: no READY within 30 s`));
        ws.close();
      }, 30_000);
      ws.addEventListener('message', (e) => {
        let f: GatewayFrame;
        try {
          f = JSON.parse(String(e.data)) as GatewayFrame;
        } catch {
          this.#env.log.warn(`${this.name}: the Discord gateway sent a frame that is not JSON; ignored`);
          return;
        }
        this.#onFrame(ws, f, done);
      });
      ws.addEventListener('error', () =>
        done(new ChannelError('transient', `${PLATFORM} gateway: the WebSocket failed`)),
      );
      ws.addEventListener('close', (e) => {
        const err = this.#closeError(e.code, e.reason);
        done(err ?? new ChannelError('transient', `${PLATFORM} gateway closed (${e.code}) before READY`));
        this.#onClose(ws, e.code, err);
      });
    });
  }

  /** a close code that must not be retried as is (Discord's 4004 bad token, 4013/4014 intents, …) */
  #closeError(code: number, reason: string): ChannelError | undefined {
    const why = reason ? `: ${reason}` : '';
    if (code === 4004)
      return new ChannelError('auth', `${PLATFORM} gateway refused the token (4004)${why}`, { status: code });
    if (code === 4014)
      return new ChannelError(
        'auth',
        `${PLATFORM} gateway: the Message Content intent is not enabled for this bot (4014)${why}; enable it in the Developer Portal`,
        { status: code },
      );
    if (code >= 4010 && code <= 4013)
      return new ChannelError('permanent', `${PLATFORM} gateway refused the session (${code})${why}`, { status: code });
    return undefined;
  }

  #onClose(ws: WebSocket, code: number, fatal: ChannelError | undefined): void {
    if (this.#ws !== ws) return;
    this.#ws = undefined;
    this.#stopHeartbeat();
    if (fatal) {
      this.#fatal = fatal;
      this.#session = undefined;
    } else if (!this.#closed) {
      this.#env.log.info(`${this.name}: the Discord gateway closed (${code}); resuming`);
      this.#failures = Math.max(this.#failures, 1);
    }
    this.#notify();
  }

  #send(ws: WebSocket, f: GatewayFrame): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(f));
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat) clearTimeout(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  #onFrame(ws: WebSocket, f: GatewayFrame, ready: (err?: unknown) => void): void {
    if (typeof f.s === 'number') this.#seq = f.s;
    switch (f.op) {
      case 10: {
        const interval = Number((f.d as { heartbeat_interval?: unknown })?.heartbeat_interval);
        if (!Number.isFinite(interval) || interval <= 0) {
          ws.close(4000, 'bad HELLO');
          return;
        }
        this.#acked = true;
        const beat = (): void => {
          if (!this.#acked) {
            // no ACK since the last heartbeat: a zombie connection, replaced (and resumed)
            this.#env.log.warn(`${this.name}: the Discord gateway stopped acknowledging heartbeats; reconnecting`);
            ws.close(4000, 'zombie');
            return;
          }
          this.#acked = false;
          this.#send(ws, { op: 1, d: this.#seq });
          this.#heartbeat = setTimeout(beat, interval);
        };
        this.#stopHeartbeat();
        this.#heartbeat = setTimeout(beat, Math.floor(interval * Math.random()));
        if (this.#session !== undefined)
          this.#send(ws, { op: 6, d: { token: this.#token, session_id: this.#session, seq: this.#seq } });
        else
          this.#send(ws, {
            op: 2,
            d: { token: this.#token, intents: INTENTS, properties: { os: 'linux', browser: 'talon', device: 'talon' } },
          });
        return;
      }
      case 11:
        this.#acked = true;
        return;
      case 1:
        this.#send(ws, { op: 1, d: this.#seq });
        return;
      case 7:
        ws.close(4000, 'reconnect requested');
        return;
      case 9: {
        // invalid session: resumable (d true) or start over with a new IDENTIFY (and read the gap over REST)
        if (f.d !== true) {
          this.#session = undefined;
          this.#seq = null;
        }
        ws.close(4000, 'invalid session');
        return;
      }
      case 0:
        break;
      default:
        return;
    }
    if (f.t === 'READY') {
      const d = f.d as { session_id?: string; resume_gateway_url?: string; user?: { id?: string } };
      if (this.#handed !== undefined) this.#gap = true;
      this.#session = d.session_id;
      this.#resumeUrl = d.resume_gateway_url;
      if (typeof d.user?.id === 'string') this.#self = d.user.id;
      ready();
    } else if (f.t === 'RESUMED') ready();
    else if (f.t === 'MESSAGE_CREATE') {
      const m = f.d as DiscordMessage;
      if (typeof m?.id !== 'string' || typeof m.channel_id !== 'string' || !SNOWFLAKE.test(m.id)) return;
      // the URL's channels and direct messages (no guild); other channels the bot can see are not this channel's
      if (m.guild_id !== undefined && !this.targets.includes(m.channel_id)) return;
      this.#queue.push(m);
      this.#notify();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopHeartbeat();
    const ws = this.#ws;
    this.#ws = undefined;
    ws?.close(1000, 'closing');
    this.#notify();
  }
}

export const discord: ChannelKind = {
  kind: 'discord',
  schemes: ['discord'],
  direction: 'both',
  form: FORM,
  raw: true,
  create(u: ChannelUrl, env: ChannelEnv, name: string): Channel {
    const token = u.host;
    if (token === '' || /\s/.test(token))
      throw new ChannelConfigError(
        `${name}: the Discord URL's host must be the bot token, as a secret reference: ${FORM}`,
      );
    const targets = u.path.map((p) => p.trim()).filter((p) => p !== '');
    for (const t of targets)
      if (!SNOWFLAKE.test(t))
        throw new ChannelConfigError(
          `${name}: "${t}" is not a Discord channel id; write the channel's numeric id (Developer Mode → Copy Channel ID): ${FORM}`,
        );
    let api = 'https://discord.com/api/v10';
    if (u.query.api !== undefined) {
      if (!/^https?:\/\/[^/]+/.test(u.query.api))
        throw new ChannelConfigError(`${name}: "api" must be an http(s) URL (default https://discord.com/api/v10)`);
      api = u.query.api.replace(/\/+$/, '');
    }
    const gateway = u.query.gateway;
    if (gateway !== undefined && !/^wss?:\/\/[^/]+/.test(gateway))
      throw new ChannelConfigError(`${name}: "gateway" must be a ws(s):// URL (default: what GET /gateway/bot says)`);
    return new DiscordChannel(name, env, token, targets, api, gateway);
  },
};
