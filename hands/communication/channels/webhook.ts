/**
 * Generic JSON webhooks, both ways: `json://HOST[:PORT]/PATH` (http) or `jsons://…` (https), Apprise's JSON webhook
 * schemes, with `?secret={secret:name}` to sign and to check signatures.
 *
 * Out: each part is POSTed as `{ id, title, text, priority, tags, ts }` (text Markdown, at most 16 000 characters a
 * part; a message in several parts has ids `<outbox id>#1`, `#2`, … so a receiver can dedup each). With a secret,
 * `X-Talon-Timestamp: <ms epoch>` and `X-Talon-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
 * go along. Any 2xx confirms; the answer's `id`, when it is JSON with one, is the part's platform id. A user name
 * (`json://{secret:u}:{secret:p}@host/…`) is sent as Basic auth. `?api=BASEURL` replaces http(s)://HOST[:PORT].
 *
 * In: the channel has no socket of its own. The Hand serves POST /api/v1/channels/{name}/webhook on the web admin's
 * port and hands the request to the channel:
 *
 *   if (isWebhookChannel(ch)) { const r = ch.accept(headers, rawBody, Date.now()); reply r.ok ? 202 : 401 }
 *
 * `accept` checks the signature (verifyWebhook: same headers and HMAC as above, compared in constant time, the
 * timestamp within 5 minutes of now, so a captured request cannot be replayed later) and queues the message;
 * `push(m)` queues one checked elsewhere. `receive()` resolves with what is queued (waiting up to 25 s for
 * something), cursor always undefined: the queue is in memory, the Hand journals each batch before anything else.
 * Without a `?secret=` every inbound request is refused.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { splitRendered } from '../format.ts';
import { callJson } from './http.ts';
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
import { ChannelConfigError } from './types.ts';

const FORM = 'json(s)://HOST[:PORT]/PATH[?secret={secret:name}&api=BASEURL]';
/** how far a signed timestamp may be from now (either way) */
export const WEBHOOK_MAX_SKEW_MS = 5 * 60_000;
/** the longest inbound body accepted, in characters */
export const WEBHOOK_MAX_BODY = 64 * 1024;
const WAIT_MS = 25_000;

export const webhook: ChannelKind = {
  kind: 'webhook',
  schemes: ['json', 'jsons'],
  direction: 'both',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new WebhookChannel(u, env, name);
  },
};

/** `sha256=<hex>` over `<timestamp>.<body>` */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * An inbound webhook request checked: the signature (constant time), the timestamp's age (replays), the body's shape
 * `{ id?, from, text }`. `headers` may have any case. The message's platformId is `id` or the body's SHA-256.
 */
export function verifyWebhook(
  channelSecret: string,
  headers: Record<string, string | undefined>,
  rawBody: string,
  now: number,
): { ok: true; message: InMessage } | { ok: false; reason: string } {
  if (!channelSecret) return { ok: false, reason: 'this channel has no ?secret= to check signatures with' };
  const h: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = v;
  const ts = h['x-talon-timestamp'];
  const sig = h['x-talon-signature'];
  if (!ts || !sig) return { ok: false, reason: 'X-Talon-Timestamp and X-Talon-Signature are required' };
  if (rawBody.length > WEBHOOK_MAX_BODY)
    return { ok: false, reason: `the body is over ${WEBHOOK_MAX_BODY} characters` };
  // both sides hashed to 32 bytes first: timingSafeEqual needs equal lengths, and the length must not leak either
  const digest = (v: string): Buffer => createHash('sha256').update(v).digest();
  const same = timingSafeEqual(digest(sig), digest(webhookSignature(channelSecret, ts, rawBody)));
  if (!same) return { ok: false, reason: 'the signature does not match' };
  const t = Number(ts);
  if (!/^\d{1,16}$/.test(ts) || Math.abs(now - t) > WEBHOOK_MAX_SKEW_MS)
    return { ok: false, reason: 'the timestamp is not within 5 minutes of now (a replay, or a clock off)' };
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch {
    return { ok: false, reason: 'the body is not JSON' };
  }
  const b = body as { id?: unknown; from?: unknown; text?: unknown };
  if (typeof b !== 'object' || b === null || typeof b.from !== 'string' || b.from === '' || typeof b.text !== 'string')
    return { ok: false, reason: 'the body must be {"from": "…", "text": "…"} (and an optional "id")' };
  if (b.id !== undefined && (typeof b.id !== 'string' || b.id === '' || b.id.length > 200))
    return { ok: false, reason: '"id" must be a non-empty string of at most 200 characters' };
  const platformId = typeof b.id === 'string' ? b.id : createHash('sha256').update(rawBody).digest('hex');
  return { ok: true, message: { platformId, from: b.from, fromBot: false, text: b.text, at: t } };
}

export function isWebhookChannel(ch: Channel): ch is WebhookChannel {
  return ch instanceof WebhookChannel;
}

export class WebhookChannel implements Channel {
  readonly name: string;
  readonly kind = 'webhook';
  readonly maxChars = 16_000;
  readonly dialect = 'markdown' as const;
  readonly targets: readonly string[] = [];
  #env: ChannelEnv;
  #url: string;
  #secret: string | undefined;
  #auth: string | undefined;
  #queue = new PushQueue<InMessage>();

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    if (u.host === '' && u.query.api === undefined)
      throw new ChannelConfigError(`channel "${name}": a webhook URL needs a host: ${FORM}`);
    this.name = name;
    this.#env = env;
    const path = u.path.map(encodeURIComponent).join('/');
    const base = u.query.api ?? `${u.scheme === 'jsons' ? 'https' : 'http'}://${u.host}${u.port ? `:${u.port}` : ''}`;
    this.#url = `${base.replace(/\/+$/, '')}/${path}`;
    if (u.query.secret !== undefined) {
      if (u.query.secret.length < 16)
        throw new ChannelConfigError(
          `channel "${name}": the webhook ?secret= must be 16 characters or more (talon secrets set NAME)`,
        );
      this.#secret = u.query.secret;
    }
    if (u.user) this.#auth = `Basic ${Buffer.from(`${u.user}:${u.password ?? ''}`).toString('base64')}`;
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const parts = splitRendered(msg.text, this.dialect, this.maxChars);
    const platformIds: string[] = [];
    for (const [i, text] of parts.entries()) {
      const id = parts.length > 1 ? `${msg.id}#${i + 1}` : msg.id;
      const ts = this.#env.now();
      const body = JSON.stringify({ id, title: msg.title ?? null, text, priority: msg.priority, tags: msg.tags, ts });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (this.#secret !== undefined) {
        headers['x-talon-timestamp'] = String(ts);
        headers['x-talon-signature'] = webhookSignature(this.#secret, String(ts), body);
      }
      if (this.#auth) headers.authorization = this.#auth;
      const r = await callJson<{ id?: unknown }>(this.#env, 'The webhook', this.#url, {
        raw: body,
        headers,
        signal,
      }).catch((err) => {
        // a 2xx with a body that is not JSON still confirms: a generic receiver answers what it likes
        if (err?.kind === 'transient' && typeof err.status === 'number' && err.status >= 200 && err.status < 300)
          return undefined;
        throw err;
      });
      platformIds.push(typeof r?.id === 'string' || typeof r?.id === 'number' ? String(r.id) : id);
    }
    return { platformIds };
  }

  /** an inbound request checked with this channel's secret, nothing queued (the Hand journals it itself) */
  verify(headers: Record<string, string | undefined>, rawBody: string, now: number): ReturnType<typeof verifyWebhook> {
    return verifyWebhook(this.#secret ?? '', headers, rawBody, now);
  }

  /** an inbound request checked with this channel's secret and, when good, queued for receive() */
  accept(headers: Record<string, string | undefined>, rawBody: string, now: number): ReturnType<typeof verifyWebhook> {
    const r = verifyWebhook(this.#secret ?? '', headers, rawBody, now);
    if (r.ok) this.push(r.message);
    return r;
  }

  /** queue a message already verified (the Hand's webhook route) for the next receive() */
  push(m: InMessage): void {
    this.#queue.push(m);
  }

  async receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    return { messages: await this.#queue.take(WAIT_MS, signal), cursor: undefined };
  }

  async close(): Promise<void> {
    this.#queue.wake();
  }
}
