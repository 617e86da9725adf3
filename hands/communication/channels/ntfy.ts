/**
 * ntfy (https://ntfy.sh or a self-hosted server), both ways, on one topic:
 *
 *   ntfy(s)://[{secret:user}:{secret:pass}@ | {secret:token}@]HOST[:PORT]/TOPIC[?priority=1-5|min|low|default|high|max]
 *
 * `ntfys` is https, `ntfy` http; a user part alone is an access token (Bearer), user:pass is Basic auth.
 *
 * Out: JSON publishing (`POST /` with {topic, message, title, priority, tags, markdown: true}); priorities map low 2,
 * normal 3, high 4, critical 5 unless `?priority=` fixes one. ntfy turns a message over 4096 bytes into an attachment,
 * so parts are cut at 4096 UTF-8 bytes. Every message carries the tag `talon`, and the ids ntfy answers are
 * remembered: both mark Talon's own messages when they come back on the topic (fromBot).
 *
 * In: `GET /TOPIC/json?poll=1&since=CURSOR` answers what is cached after the cursor; when that is nothing, the JSON
 * stream `GET /TOPIC/json?since=CURSOR` is held open until a message event arrives, 25 s pass or the signal aborts
 * (an empty batch then, the cursor kept). The cursor is the last message id; a first receive without one starts from
 * now (a unix timestamp cursor: no backlog), and an empty batch hands that timestamp back so nothing published
 * meanwhile is skipped. ntfy carries no sender: `from` is the topic (whoever may publish to it, so protect the topic
 * with an access token). `?api=BASEURL` replaces http(s)://HOST[:PORT] (tests).
 */
import { splitRendered, splitText } from '../format.ts';
import { callJson, retryAfterHeader, statusError } from './http.ts';
import type {
  Channel,
  ChannelEnv,
  ChannelKind,
  ChannelUrl,
  InboundBatch,
  InMessage,
  OutMessage,
  Priority,
  SendResult,
} from './types.ts';
import { ChannelConfigError, ChannelError } from './types.ts';

const FORM = 'ntfy(s)://[{secret:user}:{secret:pass}@|{secret:token}@]HOST[:PORT]/TOPIC[?priority=1-5&api=BASEURL]';
const PRIORITY: Record<Priority, number> = { low: 2, normal: 3, high: 4, critical: 5 };
const NAMED: Record<string, number> = { min: 1, low: 2, default: 3, high: 4, max: 5, urgent: 5 };
const TOPIC = /^[-_A-Za-z0-9]{1,64}$/;
const MAX_BYTES = 4096;
/** the longest a receive holds the stream open */
const LONG_POLL_MS = 25_000;
/** the tag on every message Talon publishes */
export const NTFY_OWN_TAG = 'talon';

export const ntfy: ChannelKind = {
  kind: 'ntfy',
  schemes: ['ntfy', 'ntfys'],
  direction: 'both',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new NtfyChannel(u, env, name);
  },
};

interface NtfyEvent {
  id?: string;
  time?: number;
  event?: string;
  topic?: string;
  message?: string;
  title?: string;
  tags?: string[];
}

/** `text` cut further so that no part is over `max` UTF-8 bytes */
function splitBytes(parts: string[], max: number): string[] {
  const out: string[] = [];
  for (const p of parts) {
    const bytes = Buffer.byteLength(p);
    if (bytes <= max) {
      out.push(p);
      continue;
    }
    // characters per part so that even the widest (4-byte) characters stay under the limit, then merged greedily
    let chars = Math.floor((p.length * max) / bytes);
    let pieces = splitText(p, chars);
    while (pieces.some((x) => Buffer.byteLength(x) > max) && chars > 1) {
      chars = Math.max(1, Math.floor(chars * 0.8));
      pieces = splitText(p, chars);
    }
    out.push(...pieces);
  }
  return out;
}

class NtfyChannel implements Channel {
  readonly name: string;
  readonly kind = 'ntfy';
  readonly maxChars = MAX_BYTES;
  readonly dialect = 'markdown' as const;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #base: string;
  #topic: string;
  #auth: string | undefined;
  #priority: number | undefined;
  /** ids ntfy gave the messages published here (the newest 1000) */
  #own = new Set<string>();

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    const topic = u.path[0];
    if (u.host === '' || topic === undefined)
      throw new ChannelConfigError(`channel "${name}": an ntfy URL needs the server and the topic: ${FORM}`);
    if (!TOPIC.test(topic) || u.path.length > 1)
      throw new ChannelConfigError(
        `channel "${name}": "${u.path.join('/')}" is not an ntfy topic (letters, digits, - and _, at most 64)`,
      );
    this.name = name;
    this.#env = env;
    this.#topic = topic;
    this.targets = [topic];
    this.#base = (
      u.query.api ?? `${u.scheme === 'ntfys' ? 'https' : 'http'}://${u.host}${u.port ? `:${u.port}` : ''}`
    ).replace(/\/+$/, '');
    if (u.user && u.password !== undefined)
      this.#auth = `Basic ${Buffer.from(`${u.user}:${u.password}`).toString('base64')}`;
    else if (u.user) this.#auth = `Bearer ${u.user}`;
    if (u.query.priority !== undefined) {
      const p = NAMED[u.query.priority] ?? Number(u.query.priority);
      if (!Number.isInteger(p) || p < 1 || p > 5)
        throw new ChannelConfigError(
          `channel "${name}": ?priority= is 1-5 or min, low, default, high, max (not "${u.query.priority}")`,
        );
      this.#priority = p;
    }
  }

  #headers(): Record<string, string> {
    return this.#auth ? { authorization: this.#auth } : {};
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const topic = msg.to ?? this.#topic;
    if (!TOPIC.test(topic)) throw new ChannelError('permanent', `"${topic}" is not an ntfy topic`);
    const parts = splitBytes(splitRendered(msg.text, this.dialect, MAX_BYTES), MAX_BYTES);
    const platformIds: string[] = [];
    for (const message of parts) {
      const r = await callJson<NtfyEvent>(this.#env, 'ntfy', `${this.#base}/`, {
        headers: this.#headers(),
        json: {
          topic,
          message,
          ...(msg.title && { title: msg.title }),
          priority: this.#priority ?? PRIORITY[msg.priority],
          tags: [...msg.tags.filter((t) => t !== NTFY_OWN_TAG), NTFY_OWN_TAG],
          markdown: true,
        },
        signal,
        check: (b) =>
          typeof (b as NtfyEvent | undefined)?.id === 'string'
            ? undefined
            : new ChannelError('transient', `ntfy answered without a message id: ${JSON.stringify(b)?.slice(0, 80)}`),
      });
      platformIds.push(r.id!);
      this.#own.add(r.id!);
      if (this.#own.size > 1000) this.#own.delete(this.#own.values().next().value!);
    }
    return { platformIds };
  }

  async receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    const since = cursor ?? String(Math.floor(this.#env.now() / 1000));
    const q = `since=${encodeURIComponent(since)}`;
    const polled = await this.#read(`${this.#base}/${this.#topic}/json?poll=1&${q}`, signal, false);
    if (polled.length > 0) return this.#batch(polled, since);
    // nothing cached after the cursor: hold the stream open (it replays from the same cursor, so nothing slips by)
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), LONG_POLL_MS);
    try {
      const streamed = await this.#read(
        `${this.#base}/${this.#topic}/json?${q}`,
        AbortSignal.any([signal, ac.signal]),
        true,
      );
      return this.#batch(streamed, since);
    } finally {
      clearTimeout(t);
    }
  }

  #batch(events: NtfyEvent[], since: string): InboundBatch {
    const messages: InMessage[] = events.map((e) => {
      const m: InMessage = {
        platformId: e.id!,
        from: e.topic ?? this.#topic,
        fromBot: (e.tags ?? []).includes(NTFY_OWN_TAG) || this.#own.has(e.id!),
        text: e.message ?? '',
        at: typeof e.time === 'number' ? e.time * 1000 : this.#env.now(),
      };
      if (e.title) m.fromName = e.title;
      return m;
    });
    return { messages, cursor: events.at(-1)?.id ?? since };
  }

  /**
   * the message events of one /json request; `stream`: stops at the first chunk holding a message event, and an
   * abort (the bound or the caller's signal) ends it with what it has
   */
  async #read(url: string, signal: AbortSignal, stream: boolean): Promise<NtfyEvent[]> {
    const out: NtfyEvent[] = [];
    let res: Response;
    try {
      res = await this.#env.fetch(url, {
        headers: { ...this.#headers(), 'user-agent': `talon/${this.#env.self}` },
        signal,
      });
    } catch (err) {
      if (signal.aborted) return out;
      const e = err as { code?: string; message?: string };
      throw new ChannelError(
        e.code === 'CAPABILITY_DENIED' ? 'auth' : 'transient',
        `ntfy: ${e.message ?? String(err)}`,
        {
          status: e.code,
          cause: err,
        },
      );
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw statusError('ntfy', res.status, text, retryAfterHeader(res.headers, this.#env.now()));
    }
    if (!res.body) return out;
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    const take = (line: string): void => {
      if (line.trim() === '') return;
      let e: NtfyEvent;
      try {
        e = JSON.parse(line) as NtfyEvent;
      } catch {
        throw new ChannelError('transient', `ntfy sent a line that is not JSON: ${JSON.stringify(line.slice(0, 80))}`);
      }
      if (e.event === 'message' && typeof e.id === 'string') out.push(e);
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          take(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        if (stream && out.length > 0) break;
      }
      take(buf);
    } catch (err) {
      if (!signal.aborted) {
        if (err instanceof ChannelError) throw err;
        throw new ChannelError('transient', `ntfy: the stream broke: ${(err as Error).message}`, { cause: err });
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
    return out;
  }

  async probe(signal: AbortSignal): Promise<void> {
    // a poll from "now" reads nothing but checks the server and the credentials
    await this.#read(
      `${this.#base}/${this.#topic}/json?poll=1&since=${Math.floor(this.#env.now() / 1000) + 1}`,
      signal,
      false,
    );
  }
}
