/**
 * The Communication Hand's inbox: what people write to the bot, journalled before anything is done with it.
 *
 * For each channel that receives, one loop: `batch = await channel.receive(cursor)`; the messages not journalled yet
 * (a platformId already stored is dropped) are written together with the channel's new cursor in ONE synced batch;
 * then the batch is committed (Slack envelope acks); then each new entry goes to `onMessage` (the Hand runs the
 * command and answers) and what came of it is stored as the entry's `handled`. A crash before the journal repeats
 * the batch (its messages are dropped as journalled if they were); a crash after it hands the unhandled entries
 * over again at the next start. Webhooks come in through push() on the same path.
 *
 * Store keys (the Hand's store):
 *   in/<channel>/<sha256(platformId), first 24 hex>   an InboxEntry (./types.ts); its id is `<channel>/<hash>`
 *   inlog/<receivedAt 13 digits>-<id>                   the entry's key, in the order received (list() reads it)
 *   inwait/<receivedAt 13 digits>-<id>                  the entry's key while it is not handled yet (start() reads it)
 *   cursor/<channel>                                    the cursor after the last batch journalled
 *
 * Senders: the bot itself and other bots are `bot`; an address on the channel's allow-list (exact, case-insensitive;
 * `*@example.com` for every address of a mail domain) is `allowed`; everyone else is `unknown` (the Hand refuses and
 * audits them).
 */
import { createHash } from 'node:crypto';
import type { HandStore, HandStoreOp } from '../sdk/types.ts';
import type { Channel, InMessage } from './channels/types.ts';
import type { InboxEntry } from './types.ts';

export const IN_PREFIX = 'in/';
export const INLOG_PREFIX = 'inlog/';
export const INWAIT_PREFIX = 'inwait/';
export const cursorKey = (channel: string): string => `cursor/${channel}`;

const STORE_PAGE = 1000;
const STORE_BATCH = 1000;

/** the hash of a platform id in the entry's key */
export function platformHash(platformId: string): string {
  return createHash('sha256').update(platformId).digest('hex').slice(0, 24);
}

export const inKey = (channel: string, platformId: string): string =>
  `${IN_PREFIX}${channel}/${platformHash(platformId)}`;

const stamp = (ms: number): string => String(Math.max(0, Math.floor(ms))).padStart(13, '0');

/** bot, allowed or unknown: `allow` is the channel's list (exact addresses or `*@domain`) */
export function classifySender(m: Pick<InMessage, 'from' | 'fromBot'>, allow: readonly string[]): InboxEntry['sender'] {
  if (m.fromBot) return 'bot';
  const from = m.from.trim().toLowerCase();
  for (const a of allow) {
    const rule = a.trim().toLowerCase();
    if (rule === '*' || rule === from) return 'allowed';
    if (rule.startsWith('*@') && from.endsWith(rule.slice(1)) && from.length > rule.length - 1) return 'allowed';
  }
  return 'unknown';
}

export interface InboxTimers {
  after(ms: number, fn: () => void | Promise<void>): () => void;
}

export interface InboxOptions {
  store: HandStore;
  /** the channels; those with receive() get a loop */
  channels: Iterable<Channel>;
  clock: { now(): number };
  timers: InboxTimers;
  /** allow-lists by channel name (exact addresses, `*@domain` for mail) */
  allow?: Readonly<Record<string, readonly string[]>>;
  /** runs what the message asks (a command, a refusal) and says what came of it; stored as the entry's `handled` */
  onMessage(entry: InboxEntry): Promise<InboxEntry['handled'] | undefined> | InboxEntry['handled'] | undefined;
  log?: { warn(msg: string, data?: Record<string, unknown>): void };
  /** how long a channel whose credentials were refused waits before it receives again (default 5 min) */
  authRetryMs?: number;
  /** a receive that resolves at once with nothing new (no messages, same cursor) is followed by this wait (1 s) */
  idleMs?: number;
  /** the first wait after a failed receive (default 1 s), doubling up to backoffMaxMs (default 60 s) */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export interface InboxHealth {
  state: 'ok' | 'degraded' | 'auth';
  lastReceivedAt?: number;
  lastError?: string;
  lastErrorAt?: number;
  consecutiveFailures: number;
  /** ms epoch until which it waits before receiving again */
  waitUntil?: number;
}

export interface InboxCounters {
  received: number;
  duplicates: number;
  allowed: number;
  unknown: number;
  bot: number;
  handled: number;
  errors: number;
}

interface Lane {
  channel: Channel;
  health: InboxHealth;
  counters: InboxCounters;
  running: Promise<void> | undefined;
  wake: (() => void) | undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const zero = (): InboxCounters => ({
  received: 0,
  duplicates: 0,
  allowed: 0,
  unknown: 0,
  bot: 0,
  handled: 0,
  errors: 0,
});

export class Inbox {
  #o: InboxOptions;
  #store: HandStore;
  #lanes = new Map<string, Lane>();
  #counters = new Map<string, InboxCounters>();
  #abort = new AbortController();
  #started = false;
  #stopped = false;
  /** per channel: journal and handling one batch at a time (a loop's batch and a pushed one do not interleave) */
  #chains = new Map<string, Promise<unknown>>();

  constructor(o: InboxOptions) {
    this.#o = o;
    this.#store = o.store;
    for (const ch of o.channels) {
      if (!ch.receive) continue;
      this.#lanes.set(ch.name, {
        channel: ch,
        health: { state: 'ok', consecutiveFailures: 0 },
        counters: this.#count(ch.name),
        running: undefined,
        wake: undefined,
      });
    }
  }

  #count(channel: string): InboxCounters {
    let c = this.#counters.get(channel);
    if (!c) {
      c = zero();
      this.#counters.set(channel, c);
    }
    return c;
  }

  /** hands the entries journalled but never handled (a crash in between) to onMessage again, then starts the loops */
  async start(): Promise<{ resumed: number }> {
    if (this.#started) throw new Error('the inbox is already started (stop() it first, then make a new one)');
    this.#started = true;
    let resumed = 0;
    for (;;) {
      const rows = await this.#store.list<string>({ prefix: INWAIT_PREFIX, limit: STORE_PAGE });
      if (rows.length === 0) break;
      for (const [waitKey, key] of rows) {
        const e = await this.#store.get<InboxEntry>(key);
        if (e && !e.handled) {
          await this.#handle(e, waitKey, key);
          resumed++;
        } else await this.#store.del(waitKey);
      }
    }
    for (const l of this.#lanes.values()) l.running = this.#loop(l);
    return { resumed };
  }

  /** stops the loops (their receive is aborted) and waits for them */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort(new Error('the inbox is stopping'));
    for (const l of this.#lanes.values()) l.wake?.();
    await Promise.all([...this.#lanes.values()].map((l) => l.running));
    await Promise.all([...this.#chains.values()].map((p) => p.catch(() => undefined)));
  }

  /** messages a webhook delivered: journalled and handled as a received batch (no cursor); resolves the new entries */
  push(channel: string, messages: InMessage[]): Promise<InboxEntry[]> {
    return this.#serial(channel, async () => {
      const fresh = await this.#journal(channel, messages, undefined);
      for (const [e, waitKey, key] of fresh) await this.#handle(e, waitKey, key);
      return fresh.map(([e]) => e);
    });
  }

  #serial<T>(channel: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(channel) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.#chains.set(channel, next);
    return next;
  }

  async #loop(l: Lane): Promise<void> {
    const name = l.channel.name;
    let cursor = await this.#store.get<string>(cursorKey(name)).catch(() => undefined);
    const signal = this.#abort.signal;
    while (!this.#stopped) {
      try {
        const prev = cursor;
        const batch = await (l.channel.receive as NonNullable<Channel['receive']>)(cursor, signal);
        if (this.#stopped) break;
        const next = batch.cursor ?? cursor;
        await this.#serial(name, async () => {
          const fresh = await this.#journal(name, batch.messages, next);
          cursor = next;
          l.health.consecutiveFailures = 0;
          l.health.state = 'ok';
          delete l.health.waitUntil;
          if (batch.messages.length > 0) l.health.lastReceivedAt = this.#o.clock.now();
          try {
            await batch.commit?.();
          } catch (err) {
            // the platform sends the batch again; its messages are journalled and dropped then
            this.#o.log?.warn(`inbox ${name}: commit failed: ${errorText(err)}`);
          }
          for (const [e, waitKey, key] of fresh) await this.#handle(e, waitKey, key);
        });
        // a channel that answers at once with nothing (not a long poll) is not spun on
        if (batch.messages.length === 0 && (batch.cursor ?? prev) === prev)
          await this.#sleep(l, this.#o.idleMs ?? 1000);
      } catch (err) {
        if (this.#stopped || signal.aborted) break;
        const now = this.#o.clock.now();
        const h = l.health;
        h.consecutiveFailures++;
        h.lastError = errorText(err);
        h.lastErrorAt = now;
        l.counters.errors++;
        const e = err as { name?: unknown; kind?: unknown };
        const auth = e?.name === 'ChannelError' && e.kind === 'auth';
        const base = this.#o.backoffBaseMs ?? 1000;
        const max = this.#o.backoffMaxMs ?? 60_000;
        const wait = auth
          ? (this.#o.authRetryMs ?? 5 * 60_000)
          : Math.min(max, base * 2 ** Math.min(30, h.consecutiveFailures - 1));
        h.state = auth ? 'auth' : 'degraded';
        h.waitUntil = now + wait;
        await this.#sleep(l, wait);
      }
    }
  }

  #sleep(l: Lane, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let cancel: (() => void) | undefined;
      const done = (): void => {
        if (l.wake !== done) return;
        l.wake = undefined;
        cancel?.();
        resolve();
      };
      l.wake = done;
      cancel = this.#o.timers.after(ms, done);
    });
  }

  /** journals the new messages (and the cursor, unless undefined) in one synced batch; returns them with their keys */
  async #journal(
    channel: string,
    messages: InMessage[],
    cursor: string | undefined,
  ): Promise<Array<[InboxEntry, string, string]>> {
    const c = this.#count(channel);
    const now = this.#o.clock.now();
    const allow = this.#o.allow?.[channel] ?? [];
    const fresh: Array<[InboxEntry, string, string]> = [];
    const seen = new Set<string>();
    for (const m of messages) {
      const hash = platformHash(String(m.platformId));
      const key = `${IN_PREFIX}${channel}/${hash}`;
      if (seen.has(key) || (await this.#store.get(key)) !== undefined) {
        c.duplicates++;
        continue;
      }
      seen.add(key);
      const id = `${channel}/${hash}`;
      const e: InboxEntry = { ...m, channel, id, receivedAt: now, sender: classifySender(m, allow) };
      fresh.push([e, `${INWAIT_PREFIX}${stamp(now)}-${id}`, key]);
    }
    // one batch when it fits; else chunks of whole messages (entry, log, wait key together), the cursor with the last
    // chunk: a crash between chunks repeats the batch, whose journalled messages are then dropped
    const per = Math.floor((STORE_BATCH - 1) / 3);
    for (let i = 0; i === 0 || i < fresh.length; i += per) {
      const ops: HandStoreOp[] = [];
      for (const [e, waitKey, key] of fresh.slice(i, i + per)) {
        ops.push({ type: 'put', key, value: e });
        ops.push({ type: 'put', key: `${INLOG_PREFIX}${stamp(now)}-${e.id}`, value: key });
        ops.push({ type: 'put', key: waitKey, value: key });
      }
      if (cursor !== undefined && i + per >= fresh.length)
        ops.push({ type: 'put', key: cursorKey(channel), value: cursor });
      if (ops.length > 0) await this.#store.batch(ops, { sync: true });
    }
    for (const [e] of fresh) {
      c.received++;
      c[e.sender]++;
    }
    return fresh;
  }

  async #handle(e: InboxEntry, waitKey: string, key: string): Promise<void> {
    const c = this.#count(e.channel);
    let handled: NonNullable<InboxEntry['handled']>;
    try {
      handled = (await this.#o.onMessage(e)) ?? { command: 'none', ok: true, at: this.#o.clock.now() };
    } catch (err) {
      handled = { command: 'error', ok: false, answer: errorText(err).slice(0, 500), at: this.#o.clock.now() };
      this.#o.log?.warn(`inbox ${e.id}: handling failed: ${errorText(err)}`);
    }
    await this.#store.batch(
      [
        { type: 'put', key, value: { ...e, handled } },
        { type: 'del', key: waitKey },
      ],
      { sync: true },
    );
    c.handled++;
  }

  /** the channel's receiving side (a channel without receive(): undefined) */
  health(channel: string): InboxHealth | undefined {
    const l = this.#lanes.get(channel);
    return l ? { ...l.health } : undefined;
  }

  /** counters by channel for /metrics */
  stats(): Record<string, InboxCounters> {
    const out: Record<string, InboxCounters> = {};
    for (const [name, c] of this.#counters) out[name] = { ...c };
    return out;
  }

  /** the entries received, newest first; `before` is the `next` of the page before */
  async list(o: { limit?: number; before?: string } = {}): Promise<{ items: InboxEntry[]; next?: string }> {
    const limit = Math.min(Math.max(1, Math.floor(o.limit ?? 50)), STORE_PAGE);
    const rows = await this.#store.list<string>({
      prefix: INLOG_PREFIX,
      limit,
      reverse: true,
      ...(o.before !== undefined && { after: `${INLOG_PREFIX}${o.before}` }),
    });
    const items: InboxEntry[] = [];
    for (const [, key] of rows) {
      const e = await this.#store.get<InboxEntry>(key);
      if (e) items.push(e);
    }
    const last = rows[rows.length - 1];
    return { items, ...(rows.length === limit && last && { next: last[0].slice(INLOG_PREFIX.length) }) };
  }
}
