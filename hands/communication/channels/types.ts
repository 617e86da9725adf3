/**
 * One interface for every channel (./<kind>.ts), one contract suite for all of them
 * (test/hands/communication/channels/contract.ts).
 *
 * A channel is configured as an Apprise-style URL (./url.ts) whose secrets are references to sealed secrets
 * (`{secret:telegram_token}`), resolved by the Hand before the kind's `create` sees the URL. A channel only talks to
 * its platform: the Hand (../outbox.ts, ../inbox.ts) owns durability, retries, the circuit breaker, dedup and audit.
 *
 *   send(msg)          one message, split into parts of at most `maxChars` in the platform's dialect; resolves once
 *                      the platform confirmed every part, rejects with a ChannelError saying how to go on
 *   receive(cursor)    (in-and-out kinds) waits for the next batch after `cursor` (long poll, sync, IDLE, a socket's
 *                      queue) and resolves it with the cursor that follows it; the Hand journals the batch, stores
 *                      the cursor, then calls `commit()` (Slack envelope acks): a crash in between neither loses nor
 *                      repeats a message (the Hand also drops a platformId it has journalled)
 */
import type { HandLog, HandContext } from '../../sdk/types.ts';

export type Priority = 'low' | 'normal' | 'high' | 'critical';
export const PRIORITIES: readonly Priority[] = ['low', 'normal', 'high', 'critical'];

/** the markup a platform reads (./../format.ts renders Markdown into it) */
export type Dialect = 'plain' | 'markdown' | 'slack' | 'telegram-html' | 'discord' | 'html';

/** what the Hand hands a channel to send */
export interface OutMessage {
  /** the outbox id: stable across retries and restarts; the idempotency key where the platform takes one */
  id: string;
  title?: string;
  /** Markdown source (the channel renders it into its dialect, plain text as the fallback) */
  text: string;
  priority: Priority;
  /** an address on this channel (chat id, e-mail address, room, phone number, topic); absent: the URL's targets */
  to?: string;
  tags: string[];
  /** true when this is a retry of a send that may have reached the platform (a crash mid-send) */
  retry?: boolean;
}

export interface SendResult {
  /** the platform's ids of the parts sent, in order (a message over maxChars is several parts) */
  platformIds: string[];
}

/** one message received */
export interface InMessage {
  /** unique on this channel for this message (update id, event id, UID, envelope id): the dedup key */
  platformId: string;
  /** the sender's address on the channel (chat/user id, e-mail address, user id) */
  from: string;
  /** a human name when the platform gives one */
  fromName?: string;
  /** true for the bot's own messages, other bots and notices: never answered, never a command */
  fromBot: boolean;
  /** plain text */
  text: string;
  /** ms epoch, the platform's time when it gives one */
  at: number;
  /** where an answer goes (a chat id, room, channel, thread; e-mail: the sender) when it differs from `from` */
  replyTo?: string;
}

export interface InboundBatch {
  messages: InMessage[];
  /** the cursor after this batch (IMAP UID, Telegram offset, Matrix next_batch, ntfy id, Discord snowflake) */
  cursor: string | undefined;
  /** called after the batch is journalled and its cursor stored (acks a platform wants); optional */
  commit?(): Promise<void>;
}

export type ChannelErrorKind =
  /** credentials refused (401/403, SMTP 535): the breaker opens, the message waits, a person must fix the secret */
  | 'auth'
  /** slowed down by the platform (429 retry_after, Retry-After, Discord buckets, SMTP 4xx rate): wait retryAfterMs */
  | 'rate'
  /** the network or the platform failed (connect errors, timeouts, 5xx, garbage answers): retry with backoff */
  | 'transient'
  /** the platform refused this message for good (400 bad chat id, 413 after splitting): kept as failed, audited */
  | 'permanent';

export class ChannelError extends Error {
  readonly kind: ChannelErrorKind;
  readonly retryAfterMs: number | undefined;
  /** the HTTP status or protocol code when there is one */
  readonly status: number | string | undefined;
  constructor(
    kind: ChannelErrorKind,
    message: string,
    opts: { retryAfterMs?: number; status?: number | string; cause?: unknown } = {},
  ) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'ChannelError';
    this.kind = kind;
    this.retryAfterMs = opts.retryAfterMs;
    this.status = opts.status;
  }
}

/** what a channel may use of the Hand: its granted fetch, its bus, its log, the clock */
export interface ChannelEnv {
  /** ctx.fetch: under the Hand's network grant (the kernel checks hosts, caps bodies, audits) */
  fetch: HandContext['fetch'];
  /** the Hand's bus (the mqtt channel on the device's own broker) */
  bus: HandContext['bus'];
  log: HandLog;
  now(): number;
  /** the bot's own name on the device (the Hand's name): used in User-Agent and e-mail headers */
  self: string;
}

/** a channel URL after ./url.ts: components split first, then `{secret:…}` references filled in */
export interface ChannelUrl {
  /** lower case, e.g. `tgram` */
  scheme: string;
  user?: string;
  password?: string;
  /** as written (names lower-cased), possibly empty (`json:///…` is not valid; kinds say what they need) */
  host: string;
  port?: number;
  /** path segments, percent-decoded, empty ones dropped */
  path: string[];
  /** query parameters, percent-decoded; a repeated key keeps the last */
  query: Record<string, string>;
  /** the URL as configured, secrets still as references: safe to log, show and audit */
  display: string;
}

export interface Channel {
  readonly name: string;
  /** the kind's id (`telegram`, `email`, …) */
  readonly kind: string;
  /** the longest part the platform takes, in characters of the rendered text */
  readonly maxChars: number;
  readonly dialect: Dialect;
  /** the URL's default addresses (chat ids, recipients): where a message without `to` goes */
  readonly targets: readonly string[];
  send(msg: OutMessage, signal: AbortSignal): Promise<SendResult>;
  receive?(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch>;
  /** a cheap authenticated call (getMe, auth.test, whoami, SMTP NOOP): resolves or throws a ChannelError */
  probe?(signal: AbortSignal): Promise<void>;
  close?(): Promise<void>;
}

/** one kind of channel: a module per kind, listed in ./index.ts */
export interface ChannelKind {
  /** `telegram` */
  kind: string;
  /** URL schemes it answers (`tgram`); `s` variants for TLS where the platform has them (`ntfys`) */
  schemes: readonly string[];
  /** `both`: sends and receives; `out`: sends only */
  direction: 'both' | 'out';
  /** its URL form for errors and the README: `tgram://{secret:bot_token}/CHAT_ID[/CHAT_ID…]` */
  form: string;
  /**
   * needs raw sockets (SMTP, IMAP, WebSocket gateways, a remote MQTT broker): the Hand's `network.raw` grant;
   * a function when it depends on the URL (mqtt://local/… does not)
   */
  raw: boolean | ((u: ChannelUrl) => boolean);
  /** checks the URL and builds the channel; throws ChannelConfigError naming what is wrong and the form */
  create(u: ChannelUrl, env: ChannelEnv, name: string): Channel;
}

/** a channel URL that cannot work (missing token, bad chat id, unknown scheme, missing secret) */
export class ChannelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelConfigError';
  }
}
