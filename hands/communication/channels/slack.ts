/**
 * The Slack channel: out through the Web API's chat.postMessage, in through Socket Mode.
 *
 *   slack://{secret:bot_token}/#CHANNEL[/#CHANNEL…][?app={secret:app_token}&api=http://127.0.0.1:PORT]
 *
 * The host is the bot token (xoxb-…), the path the default channels (`#name` or an id like C0123). `app` is an
 * app-level token (xapp-…): with it the channel also receives, over Socket Mode's WebSocket (so the Hand needs the
 * `network.raw` grant for such a URL); without it the channel only sends. `api` replaces https://slack.com/api (tests).
 *
 * Out: Markdown is rendered to Slack's mrkdwn (slackMrkdwn below), split at 4000 characters, one chat.postMessage per
 * part and channel. Slack answers most refusals with a 200 and `{ok: false, error}`: the `check` hook of callJson
 * (./http.ts) sorts them into ChannelError kinds (bad token → auth, unknown channel → permanent, ratelimited → rate).
 *
 * In: apps.connections.open gives a one-use wss:// URL; each Events API envelope carrying a message is queued and
 * acknowledged (`{envelope_id}` sent back) only in the batch's commit(), once the Hand journalled it: an envelope lost
 * to a crash is redelivered by Slack (with `retry_attempt`), and the Hand drops it by platformId, which is the event's
 * client_msg_id (or channel:ts), never the envelope id. Slack has no replay, so the cursor is informational: the last
 * event's ts. `disconnect` (Slack refreshing the connection) and a closed socket open a new connection.
 */
import { abortError, sleep } from './wait.ts';
import { callJson, retryAfterHeader } from './http.ts';
import { splitText } from '../format.ts';
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

const FORM = 'slack://{secret:bot_token}/#CHANNEL[/#CHANNEL…][?app={secret:app_token}]';
const MAX_CHARS = 4000;
const PLATFORM = 'Slack';

const AUTH_ERRORS = new Set([
  'invalid_auth',
  'not_authed',
  'account_inactive',
  'token_revoked',
  'token_expired',
  'missing_scope',
  'not_allowed_token_type',
  'no_permission',
  'org_login_required',
  'ekm_access_denied',
]);
const TRANSIENT_ERRORS = new Set([
  'fatal_error',
  'internal_error',
  'service_unavailable',
  'request_timeout',
  'team_added_to_org',
]);

/** Slack's `{ok: false, error}` as a ChannelError (undefined for `ok: true`) */
export function slackError(body: unknown, res: Response, now = Date.now()): ChannelError | undefined {
  if (body === null || typeof body !== 'object' || typeof (body as { ok?: unknown }).ok !== 'boolean')
    return new ChannelError('transient', `${PLATFORM} answered ${res.status} without an "ok" field`, {
      status: res.status,
    });
  const b = body as { ok: boolean; error?: string };
  if (b.ok) return undefined;
  const code = typeof b.error === 'string' ? b.error : 'unknown_error';
  if (AUTH_ERRORS.has(code))
    return new ChannelError(
      'auth',
      `${PLATFORM} refused the token (${code}); check the channel's secret and the app's scopes`,
      {
        status: code,
      },
    );
  if (code === 'ratelimited' || code === 'rate_limited')
    return new ChannelError('rate', `${PLATFORM} asks to slow down (${code})`, {
      status: code,
      retryAfterMs: retryAfterHeader(res.headers, now) ?? 1000,
    });
  if (TRANSIENT_ERRORS.has(code))
    return new ChannelError('transient', `${PLATFORM} failed (${code})`, { status: code });
  const hint =
    code === 'channel_not_found' || code === 'not_in_channel'
      ? ': invite the bot to the channel (/invite @bot) or fix the channel name'
      : '';
  return new ChannelError('permanent', `${PLATFORM} refused the message (${code})${hint}`, { status: code });
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown → mrkdwn

const escapeSlack = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Markdown (the CommonMark subset of ../format.ts) as Slack mrkdwn: **bold** → *bold*, *italic* / _italic_ → _italic_,
 * ~~strike~~ → ~strike~, [text](url) → <url|text>, # heading → *heading*, - item → • item; `code` and ``` blocks kept;
 * & < > escaped everywhere (Slack's control characters), so a message cannot ping @channel or forge a link.
 */
export function slackMrkdwn(md: string): string {
  const held: string[] = [];
  const hold = (s: string): string => {
    held.push(s);
    return `\u0000${held.length - 1}\u0000`;
  };
  let s = md.replace(/\u0000/g, '');
  // code first: nothing inside it is markup
  s = s.replace(/```[^\n]*\n?([\s\S]*?)```/g, (_a, code: string) =>
    hold('```' + escapeSlack(code.replace(/\n$/, '')) + '```'),
  );
  s = s.replace(/`([^`\n]+)`/g, (_a, code: string) => hold('`' + escapeSlack(code) + '`'));
  // links: the text keeps its own emphasis, the URL must not contain | or >
  s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (_a, text: string, url: string) =>
    hold(`<${escapeSlack(url).replace(/\|/g, '%7C')}|${inline(escapeSlack(text).replace(/\|/g, '¦'))}>`),
  );
  s = s.replace(/<(https?:\/\/[^>\s]+)>/g, (_a, url: string) => hold(`<${escapeSlack(url)}>`));
  s = escapeSlack(s);
  s = s
    .split('\n')
    .map((line) => {
      const h = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (h) return `\u0001${h[1]!.replace(/\*\*/g, '')}\u0001`;
      const li = /^(\s*)[-*+]\s+(.*)$/.exec(line);
      if (li) return `${li[1]}• ${li[2]}`;
      return line;
    })
    .join('\n');
  s = inline(s);
  return s.replace(/\u0000(\d+)\u0000/g, (_a, i: string) => held[Number(i)] ?? '');
}

/** emphasis inside one run of text (bold held as \u0001 so the italic pass does not see its stars) */
function inline(s: string): string {
  return s
    .replace(/\*\*(?=\S)([^\n]*?\S)\*\*/g, '\u0001$1\u0001')
    .replace(/__(?=\S)([^\n]*?\S)__/g, '\u0001$1\u0001')
    .replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])/g, '$1_$2_')
    .replace(/~~(?=\S)([^\n]*?\S)~~/g, '~$1~')
    .replace(/\u0001/g, '*');
}

// ---------------------------------------------------------------------------------------------------------------
// the channel

interface SlackEvent {
  type?: string;
  subtype?: string;
  user?: string;
  bot_id?: string;
  text?: string;
  channel?: string;
  ts?: string;
  thread_ts?: string;
  client_msg_id?: string;
}

interface Envelope {
  envelope_id?: string;
  type?: string;
  reason?: string;
  retry_attempt?: number;
  payload?: { event?: SlackEvent; event_id?: string };
}

interface Queued {
  msg: InMessage;
  ts: string;
  /** the envelopes carrying it (a redelivery while it is still queued adds its id) and the socket they came on */
  acks: Array<{ id: string; ws: WebSocket }>;
}

/** message subtypes that are a person's (or a bot's) words; the others (joins, edits, deletes) are acked and skipped */
const WORDS = new Set(['bot_message', 'file_share', 'thread_broadcast', 'me_message']);

class SlackChannel implements Channel {
  readonly kind = 'slack';
  readonly maxChars = MAX_CHARS;
  readonly dialect = 'slack' as const;
  readonly name: string;
  readonly targets: readonly string[];
  readonly receive?: (cursor: string | undefined, signal: AbortSignal) => Promise<InboundBatch>;
  #env: ChannelEnv;
  #token: string;
  #app: string | undefined;
  #api: string;
  #botUser: string | undefined;
  #ws: WebSocket | undefined;
  #opening: Promise<void> | undefined;
  #queue: Queued[] = [];
  #wake: Array<() => void> = [];
  #failures = 0;
  #closed = false;

  constructor(name: string, env: ChannelEnv, token: string, targets: string[], app: string | undefined, api: string) {
    this.name = name;
    this.#env = env;
    this.#token = token;
    this.targets = targets;
    this.#app = app;
    this.#api = api;
    if (app !== undefined) this.receive = (cursor, signal) => this.#receive(cursor, signal);
  }

  async #call<T>(method: string, json: unknown, token: string, signal: AbortSignal): Promise<T> {
    return callJson<T>(this.#env, PLATFORM, `${this.#api}/${method}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      json,
      signal,
      timeoutMs: 30_000,
      check: (body, res) => slackError(body, res, this.#env.now()),
    });
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const to = msg.to !== undefined ? [msg.to] : this.targets;
    if (to.length === 0)
      throw new ChannelError(
        'permanent',
        `${this.name}: no Slack channel to send to; add one to the URL (${FORM}) or address the message`,
      );
    const md = msg.title ? `**${msg.title}**\n\n${msg.text}` : msg.text;
    const parts = splitText(slackMrkdwn(md), MAX_CHARS);
    const ids: string[] = [];
    for (const channel of to)
      for (const text of parts) {
        const r = await this.#call<{ channel?: string; ts?: string }>(
          'chat.postMessage',
          { channel, text, mrkdwn: true },
          this.#token,
          signal,
        );
        if (typeof r.ts !== 'string')
          throw new ChannelError('transient', `${PLATFORM} confirmed chat.postMessage without a message ts`);
        ids.push(`${r.channel ?? channel}:${r.ts}`);
      }
    return { platformIds: ids };
  }

  async probe(signal: AbortSignal): Promise<void> {
    const r = await this.#call<{ user_id?: string }>('auth.test', {}, this.#token, signal);
    if (typeof r.user_id === 'string') this.#botUser = r.user_id;
  }

  // --- Socket Mode -------------------------------------------------------------------------------------------------

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  async #receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    for (;;) {
      if (signal.aborted) throw abortError(signal);
      if (this.#closed) throw new ChannelError('transient', `${this.name} is closed`);
      if (this.#queue.length > 0) return this.#batch(cursor);
      if (this.#ws === undefined) {
        // a new connection after a failure waits a little longer each time (1 s, 2 s, … 30 s)
        if (this.#failures > 0 && this.#opening === undefined)
          await sleep(Math.min(30_000, 1000 * 2 ** (this.#failures - 1)), signal);
        try {
          this.#opening ??= this.#open().finally(() => {
            this.#opening = undefined;
          });
          await this.#opening;
          this.#failures = 0;
        } catch (err) {
          this.#failures++;
          throw err;
        }
        continue;
      }
      // wait for an envelope, a closed socket or the signal
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(abortError(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        this.#wake.push(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
  }

  #batch(cursor: string | undefined): InboundBatch {
    const taken = this.#queue.splice(0);
    let last = cursor;
    for (const q of taken) if (last === undefined || Number(q.ts) > Number(last)) last = q.ts;
    return {
      messages: taken.map((q) => q.msg),
      cursor: last,
      commit: async () => {
        for (const q of taken) for (const a of q.acks) this.#ack(a.ws, a.id);
      },
    };
  }

  #ack(ws: WebSocket, id: string): void {
    // an envelope whose socket is gone is redelivered on the next one (and dropped by the Hand as a duplicate)
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ envelope_id: id }));
  }

  async #open(): Promise<void> {
    const signal = AbortSignal.timeout(30_000);
    if (this.#botUser === undefined) await this.probe(signal);
    const r = await this.#call<{ url?: string }>('apps.connections.open', {}, this.#app!, signal);
    if (typeof r.url !== 'string' || !/^wss?:\/\//.test(r.url))
      throw new ChannelError('transient', `${PLATFORM} apps.connections.open gave no wss:// url`);
    const ws = new WebSocket(r.url);
    await new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        cleanup();
        reject(new ChannelError('transient', `${PLATFORM} Socket Mode: ${why}`));
      };
      const onOpen = (): void => {
        cleanup();
        resolve();
      };
      const onError = (): void => fail('the WebSocket failed to connect');
      const onClose = (e: CloseEvent): void => fail(`the WebSocket closed (${e.code}) before it opened`);
      const t = setTimeout(() => {
        ws.close();
        fail('no WebSocket within 30 s');
      }, 30_000);
      const cleanup = (): void => {
        clearTimeout(t);
        ws.removeEventListener('open', onOpen);
        ws.removeEventListener('error', onError);
        ws.removeEventListener('close', onClose);
      };
      ws.addEventListener('open', onOpen);
      ws.addEventListener('error', onError);
      ws.addEventListener('close', onClose);
    });
    if (this.#closed) {
      ws.close();
      return;
    }
    this.#ws = ws;
    ws.addEventListener('message', (e) => this.#onFrame(ws, e.data));
    ws.addEventListener('close', (e) => {
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      if (!this.#closed) {
        this.#env.log.info(`${this.name}: Slack Socket Mode closed (${e.code}); reconnecting`);
        this.#failures++;
      }
      this.#notify();
    });
  }

  #onFrame(ws: WebSocket, data: unknown): void {
    let env: Envelope;
    try {
      env = JSON.parse(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer).toString('utf8')) as Envelope;
    } catch {
      this.#env.log.warn(`${this.name}: Slack sent a frame that is not JSON; ignored`);
      return;
    }
    if (env.type === 'hello') return;
    if (env.type === 'disconnect') {
      // Slack refreshes connections: drop this one, the next receive opens a new one
      this.#env.log.info(`${this.name}: Slack asks to reconnect (${env.reason ?? 'no reason'})`);
      if (this.#ws === ws) this.#ws = undefined;
      ws.close();
      this.#notify();
      return;
    }
    const id = env.envelope_id;
    if (typeof id !== 'string') return;
    const ev = env.payload?.event;
    const msg = env.type === 'events_api' && ev ? this.#message(ev) : undefined;
    if (!msg) {
      // not a message (or an edit, a join, an app_mention doubling a message event): nothing to journal
      this.#ack(ws, id);
      return;
    }
    const queued = this.#queue.find((q) => q.msg.platformId === msg.msg.platformId);
    if (queued) queued.acks.push({ id, ws });
    else this.#queue.push({ ...msg, acks: [{ id, ws }] });
    this.#notify();
  }

  #message(ev: SlackEvent): Omit<Queued, 'acks'> | undefined {
    if (ev.type !== 'message' || typeof ev.channel !== 'string' || typeof ev.ts !== 'string') return undefined;
    if (ev.subtype !== undefined && !WORDS.has(ev.subtype)) return undefined;
    const fromBot =
      ev.bot_id !== undefined ||
      ev.subtype === 'bot_message' ||
      (this.#botUser !== undefined && ev.user === this.#botUser);
    const msg: InMessage = {
      platformId: ev.client_msg_id ?? `${ev.channel}:${ev.ts}`,
      from: ev.user ?? ev.bot_id ?? '',
      fromBot,
      text: ev.text ?? '',
      at: Math.round(Number(ev.ts) * 1000),
      replyTo: ev.channel,
    };
    return { msg, ts: ev.ts };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const ws = this.#ws;
    this.#ws = undefined;
    ws?.close();
    this.#notify();
  }
}

export const slack: ChannelKind = {
  kind: 'slack',
  schemes: ['slack'],
  direction: 'both',
  form: FORM,
  raw: (u: ChannelUrl) => (u.query.app ?? '') !== '',
  create(u: ChannelUrl, env: ChannelEnv, name: string): Channel {
    const token = u.host;
    if (!/^xox[bp]-/.test(token))
      throw new ChannelConfigError(
        `${name}: the Slack URL's host must be the bot token (xoxb-…), as a secret reference: ${FORM}`,
      );
    const app = u.query.app;
    if (app !== undefined && !/^xapp-/.test(app))
      throw new ChannelConfigError(
        `${name}: "app" must be the Slack app-level token (xapp-…, for Socket Mode): ${FORM}`,
      );
    const targets = u.path.map((p) => p.trim()).filter((p) => p !== '');
    for (const t of targets)
      if (!/^#?[\w.-]{1,80}$/.test(t))
        throw new ChannelConfigError(`${name}: "${t}" is not a Slack channel (#name or an id like C0123): ${FORM}`);
    let api = 'https://slack.com/api';
    if (u.query.api !== undefined) {
      if (!/^https?:\/\/[^/]+/.test(u.query.api))
        throw new ChannelConfigError(`${name}: "api" must be an http(s) URL (default https://slack.com/api)`);
      api = u.query.api.replace(/\/+$/, '');
    }
    return new SlackChannel(name, env, token, targets, app === '' ? undefined : app, api);
  },
};
