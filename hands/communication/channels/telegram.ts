/**
 * Telegram through the Bot API (https://core.telegram.org/bots/api), over HTTPS through the Hand's granted fetch
 * (./http.ts callJson), no raw sockets:
 *
 *   tgram://{secret:bot_token}/CHAT_ID[/CHAT_ID…][?api=http://127.0.0.1:PORT]
 *
 * The host is the bot token (`123456:ABC…`, from @BotFather), the path segments are the default chats (numeric ids,
 * `-100…` for groups and channels, or `@channelname`), `api` replaces https://api.telegram.org (tests, a local Bot API
 * server).
 *
 *   send     sendMessage per part per chat, parse_mode HTML: the Markdown is rendered into Telegram's HTML subset
 *            (markdownHtml below, also used by ./matrix.ts for its formatted_body). The Markdown is split first (with
 *            a margin under 4096, so a cut never falls inside a tag), a part whose HTML is still too long, or that
 *            Telegram cannot parse, goes as plain text. Telegram has no idempotency key: the parts a send already
 *            delivered are remembered (in memory, per OutMessage id) so a retry after a failure on part 3 does not
 *            repeat parts 1 and 2; a crash mid-send can still repeat a part.
 *   receive  getUpdates long polling (25 s); the cursor is the last update_id, the next call's offset (cursor + 1)
 *            confirms everything before it on Telegram's side, so a restart with the stored cursor neither repeats
 *            nor loses an update.
 *   probe    getMe.
 */
import { splitText } from '../format.ts';
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
import { ChannelConfigError, ChannelError } from './types.ts';

const FORM = 'tgram://{secret:bot_token}/CHAT_ID[/CHAT_ID…]';
const API = 'https://api.telegram.org';
/** Telegram's limit on a message's text */
export const TELEGRAM_MAX = 4096;
/** the Markdown is cut at this many characters, leaving room for the tags its HTML adds */
const MD_PART = 3800;
/** seconds a getUpdates waits for an update */
const POLL_S = 25;
const TOKEN = /^\d{3,}:[A-Za-z0-9_-]{20,}$/;
const CHAT = /^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$/;

interface TgResponse<T> {
  ok: boolean;
  result?: T;
  error_code?: number;
  description?: string;
  parameters?: { retry_after?: number; migrate_to_chat_id?: number };
}

interface TgUser {
  id: number;
  is_bot: boolean;
  first_name?: string;
  last_name?: string;
  username?: string;
}

interface TgMessage {
  message_id: number;
  from?: TgUser;
  sender_chat?: { id: number; title?: string };
  chat: { id: number; type: string; title?: string; username?: string; first_name?: string; last_name?: string };
  date: number;
  text?: string;
  caption?: string;
}

interface TgUpdate {
  update_id: number;
  message?: TgMessage;
  channel_post?: TgMessage;
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown to HTML: Telegram's subset (b, i, s, code, pre, a, blockquote; no headings, no lists) or, for Matrix,
// the fuller org.matrix.custom.html (headings, lists, paragraphs)
// ---------------------------------------------------------------------------------------------------------------

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escAttr = (s: string): string => esc(s).replace(/"/g, '&quot;');
const SAFE_URL = /^(https?:\/\/|mailto:|tg:\/\/|matrix:)/i;

/** one line's inline Markdown: `code`, [text](url), **bold**, __bold__, *italic*, _italic_, ~~strike~~ */
function inline(s: string, held: string[]): string {
  const hold = (html: string): string => `\u0001${held.push(html) - 1}\u0001`;
  let t = s.replace(/\u0001/g, '');
  t = t.replace(/`([^`\n]+)`/g, (_a, code: string) => hold(`<code>${esc(code)}</code>`));
  t = t.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (all, text: string, url: string) =>
    SAFE_URL.test(url) ? hold(`<a href="${escAttr(url)}">${inline(text, held)}</a>`) : all,
  );
  t = esc(t);
  t = t.replace(/\*\*(?=\S)(.+?)(?<=\S)\*\*/g, '<b>$1</b>');
  t = t.replace(/(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])/g, '<b>$1</b>');
  t = t.replace(/~~(?=\S)(.+?)(?<=\S)~~/g, '<s>$1</s>');
  t = t.replace(/(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])/g, '<i>$1</i>');
  t = t.replace(/(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])/g, '<i>$1</i>');
  return t;
}

function restore(html: string, held: string[]): string {
  let out = html;
  for (let i = 0; i < 8 && out.includes('\u0001'); i++)
    out = out.replace(/\u0001(\d+)\u0001/g, (_a, n: string) => held[Number(n)] ?? '');
  return out;
}

/** true when every tag in `html` is closed, in order */
export function balancedTags(html: string): boolean {
  const stack: string[] = [];
  for (const m of html.matchAll(/<(\/?)([a-z][a-z0-9-]*)[^>]*?(\/?)>/gi)) {
    const name = m[2]!.toLowerCase();
    if (m[3] === '/' || name === 'br' || name === 'hr') continue;
    if (m[1] === '') stack.push(name);
    else if (stack.pop() !== name) return false;
  }
  return stack.length === 0;
}

/**
 * `md` (CommonMark subset: **bold**, *italic*, `code`, ``` blocks, [text](url), # headings, - lists, > quotes) as
 * HTML: `telegram` keeps to Telegram's tags (headings bold, list items with bullets, lines as newlines); `matrix`
 * writes org.matrix.custom.html. Markup that would not nest cleanly falls back to the escaped text.
 */
export function markdownHtml(md: string, mode: 'telegram' | 'matrix'): string {
  const held: string[] = [];
  const out: string[] = [];
  const lines = md.replace(/\r\n?/g, '\n').split('\n');
  let fence: { lang: string; body: string[] } | undefined;
  let quote: string[] = [];
  let list: { tag: 'ul' | 'ol'; items: string[] } | undefined;
  let para: string[] = [];
  const flush = (): void => {
    if (quote.length > 0) {
      out.push(`<blockquote>${quote.join(mode === 'telegram' ? '\n' : '<br>')}</blockquote>`);
      quote = [];
    }
    if (list) {
      out.push(`<${list.tag}>${list.items.map((i) => `<li>${i}</li>`).join('')}</${list.tag}>`);
      list = undefined;
    }
    if (para.length > 0) {
      out.push(`<p>${para.join('<br>')}</p>`);
      para = [];
    }
  };
  for (const line of lines) {
    if (fence) {
      if (/^\s*```\s*$/.test(line)) {
        const cls = fence.lang ? ` class="language-${escAttr(fence.lang)}"` : '';
        out.push(`<pre><code${cls}>${esc(fence.body.join('\n'))}</code></pre>`);
        fence = undefined;
      } else fence.body.push(line);
      continue;
    }
    const f = /^\s*```\s*([\w+#.-]*)\s*$/.exec(line);
    if (f) {
      flush();
      fence = { lang: f[1] ?? '', body: [] };
      continue;
    }
    const h = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    const hr = /^\s*([-*_])(\s*\1){2,}\s*$/.test(line);
    const ul = /^(\s*)[-*+]\s+(.*)$/.exec(line);
    const ol = /^(\s*)(\d{1,9})[.)]\s+(.*)$/.exec(line);
    const q = /^\s*>\s?(.*)$/.exec(line);
    if (mode === 'telegram') {
      if (q) {
        quote.push(inline(q[1]!, held));
        continue;
      }
      flush();
      if (h) out.push(`<b>${inline(h[2]!, held)}</b>`);
      else if (hr) out.push('──────────');
      else if (ul) out.push(`${ul[1]}• ${inline(ul[2]!, held)}`);
      else if (ol) out.push(`${ol[1]}${ol[2]}. ${inline(ol[3]!, held)}`);
      else out.push(inline(line, held));
      continue;
    }
    // matrix
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (h) {
      flush();
      out.push(`<h${h[1]!.length}>${inline(h[2]!, held)}</h${h[1]!.length}>`);
    } else if (hr) {
      flush();
      out.push('<hr>');
    } else if (q) {
      if (quote.length === 0) flush();
      quote.push(inline(q[1]!, held));
    } else if (ul || ol) {
      const tag = ul ? 'ul' : 'ol';
      if (!list || list.tag !== tag) flush();
      list ??= { tag, items: [] };
      list.items.push(inline(ul ? ul[2]! : ol![3]!, held));
    } else {
      if (quote.length > 0 || list) flush();
      para.push(inline(line, held));
    }
  }
  if (fence) {
    const cls = fence.lang ? ` class="language-${escAttr(fence.lang)}"` : '';
    out.push(`<pre><code${cls}>${esc(fence.body.join('\n'))}</code></pre>`);
  }
  flush();
  const html = restore(out.join(mode === 'telegram' ? '\n' : ''), held);
  if (!balancedTags(html)) return mode === 'telegram' ? esc(md) : `<p>${esc(md).replace(/\n/g, '<br>')}</p>`;
  return html;
}

/**
 * `md` in Markdown parts of at most `max` characters; a ``` block cut in two is closed at the end of one part and
 * opened again at the start of the next, so each part renders on its own.
 */
export function splitMarkdown(md: string, max: number): string[] {
  const parts = splitText(md, max - 8);
  let open = '';
  return parts.map((p) => {
    const text = open ? `${open}\n${p}` : p;
    const fences = text.split('\n').filter((l) => /^\s*```/.test(l));
    let inside = false;
    let lang = '';
    for (const l of fences) {
      inside = !inside;
      if (inside) lang = l.trim().slice(3);
    }
    open = inside ? `\`\`\`${lang}` : '';
    return inside ? `${text}\n\`\`\`` : text;
  });
}

// ---------------------------------------------------------------------------------------------------------------

function tgError(body: unknown): ChannelError | undefined {
  const b = body as TgResponse<unknown> | undefined;
  if (b && typeof b === 'object' && b.ok === true && 'result' in b) return undefined;
  return new ChannelError('transient', `Telegram answered without ok/result: ${JSON.stringify(body)?.slice(0, 120)}`);
}

const retryAfterOf = (body: unknown): number | undefined => {
  const s = (body as TgResponse<unknown> | undefined)?.parameters?.retry_after;
  return typeof s === 'number' && s >= 0 ? s * 1000 : undefined;
};

function nameOf(m: TgMessage): string | undefined {
  const u = m.from;
  if (u) {
    const n = [u.first_name, u.last_name].filter(Boolean).join(' ');
    return n || (u.username ? `@${u.username}` : undefined);
  }
  return m.sender_chat?.title ?? m.chat.title;
}

class TelegramChannel implements Channel {
  readonly kind = 'telegram';
  readonly maxChars = TELEGRAM_MAX;
  readonly dialect = 'telegram-html' as const;
  readonly name: string;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #base: string;
  /** OutMessage id → `chat#part` → the message id Telegram gave it (the parts a retry need not send again) */
  #delivered = new Map<string, Map<string, string>>();

  constructor(name: string, env: ChannelEnv, base: string, token: string, targets: string[]) {
    this.name = name;
    this.#env = env;
    this.#base = `${base}/bot${token}`;
    this.targets = targets;
  }

  #call<T>(method: string, json: unknown, signal: AbortSignal, timeoutMs?: number): Promise<T> {
    return callJson<TgResponse<T>>(this.#env, 'Telegram', `${this.#base}/${method}`, {
      method: 'POST',
      json,
      signal,
      retryAfterOf,
      check: tgError,
      ...(timeoutMs !== undefined && { timeoutMs }),
    }).then((r) => r.result as T);
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const chats = msg.to !== undefined ? [msg.to] : [...this.targets];
    if (chats.length === 0)
      throw new ChannelError(
        'permanent',
        `${this.name}: no chat to send to; add a chat id to the URL (${FORM}) or address one`,
      );
    for (const c of chats)
      if (!CHAT.test(c))
        throw new ChannelError(
          'permanent',
          `${this.name}: "${c}" is not a Telegram chat (a numeric id or @channelname)`,
        );
    const md = msg.title ? `**${msg.title}**\n\n${msg.text}` : msg.text;
    const parts = splitMarkdown(md, MD_PART);
    let done = this.#delivered.get(msg.id);
    if (!done) {
      done = new Map();
      this.#delivered.set(msg.id, done);
      // a bounded memory: the oldest sends are forgotten first
      if (this.#delivered.size > 256) this.#delivered.delete(this.#delivered.keys().next().value!);
    }
    const ids: string[] = [];
    for (const chat of chats) {
      for (let i = 0; i < parts.length; i++) {
        const key = `${chat}#${i}`;
        const had = done.get(key);
        if (had !== undefined) {
          ids.push(had);
          continue;
        }
        const id = await this.#sendPart(chat, parts[i]!, signal);
        done.set(key, id);
        ids.push(id);
      }
    }
    this.#delivered.delete(msg.id);
    return { platformIds: ids };
  }

  async #sendPart(chat: string, md: string, signal: AbortSignal): Promise<string> {
    const html = markdownHtml(md, 'telegram');
    const chatId = /^-?\d+$/.test(chat) ? Number(chat) : chat;
    const plain = { chat_id: chatId, text: md.slice(0, TELEGRAM_MAX), disable_web_page_preview: true };
    let sent: TgMessage;
    if (html.length > TELEGRAM_MAX || html.trim() === '')
      sent = await this.#call<TgMessage>('sendMessage', plain, signal);
    else
      try {
        sent = await this.#call<TgMessage>('sendMessage', { ...plain, text: html, parse_mode: 'HTML' }, signal);
      } catch (err) {
        // Telegram could not read our HTML ("can't parse entities"): the words matter more than the markup
        if (!(err instanceof ChannelError && err.status === 400 && /parse entities|too long/i.test(err.message)))
          throw err;
        this.#env.log.warn(
          `${this.name}: Telegram refused the HTML of a part (${err.message.slice(0, 120)}); sent as plain text`,
        );
        sent = await this.#call<TgMessage>('sendMessage', plain, signal);
      }
    if (!sent || typeof sent.message_id !== 'number')
      throw new ChannelError(
        'transient',
        `Telegram confirmed a sendMessage without a message_id: ${JSON.stringify(sent)?.slice(0, 120)}`,
      );
    return `${chat}:${sent.message_id}`;
  }

  async receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    if (cursor !== undefined && !/^\d+$/.test(cursor))
      throw new ChannelError('permanent', `${this.name}: the stored cursor "${cursor}" is not a Telegram update_id`);
    const req: Record<string, unknown> = { timeout: POLL_S, allowed_updates: ['message', 'channel_post'] };
    if (cursor !== undefined) req.offset = Number(cursor) + 1;
    let updates: TgUpdate[];
    try {
      updates = await this.#call<TgUpdate[]>('getUpdates', req, signal, (POLL_S + 10) * 1000);
    } catch (err) {
      if (err instanceof ChannelError && err.status === 409)
        throw new ChannelError(
          'transient',
          `${this.name}: another program polls this bot token, or a webhook is set (Telegram: ${err.message.slice(0, 160)}); ` +
            'run one Talon per bot token and remove the webhook (deleteWebhook)',
          { status: 409, retryAfterMs: 5000 },
        );
      throw err;
    }
    if (!Array.isArray(updates))
      throw new ChannelError(
        'transient',
        `Telegram getUpdates returned no list: ${JSON.stringify(updates)?.slice(0, 120)}`,
      );
    let last = cursor === undefined ? undefined : Number(cursor);
    const messages: InMessage[] = [];
    for (const u of updates) {
      if (typeof u?.update_id !== 'number') continue;
      if (last === undefined || u.update_id > last) last = u.update_id;
      const m = u.message ?? u.channel_post;
      const text = m?.text ?? m?.caption;
      if (!m || typeof text !== 'string' || !m.chat) continue;
      const chat = String(m.chat.id);
      const im: InMessage = {
        platformId: String(u.update_id),
        from: chat,
        fromBot: m.from?.is_bot === true,
        text,
        at: typeof m.date === 'number' ? m.date * 1000 : this.#env.now(),
        replyTo: chat,
      };
      const n = nameOf(m);
      if (n) im.fromName = n;
      messages.push(im);
    }
    return { messages, cursor: last === undefined ? cursor : String(last) };
  }

  async probe(signal: AbortSignal): Promise<void> {
    const me = await this.#call<TgUser>('getMe', {}, signal);
    if (!me || me.is_bot !== true)
      throw new ChannelError('auth', `${this.name}: getMe did not name a bot (${JSON.stringify(me)?.slice(0, 80)})`);
  }
}

export const telegram: ChannelKind = {
  kind: 'telegram',
  schemes: ['tgram'],
  direction: 'both',
  form: FORM,
  raw: false,
  create(u: ChannelUrl, env: ChannelEnv, name: string): Channel {
    const hostWritten = /^[a-z][a-z0-9+.-]*:\/\/([^/?]*)/i.exec(u.display)?.[1] ?? '';
    if (u.host === '')
      throw new ChannelConfigError(`${name}: the Telegram URL needs the bot token as its host: ${FORM}`);
    if (!hostWritten.includes('{secret:'))
      throw new ChannelConfigError(
        `${name}: write the bot token as a sealed secret, {secret:name} (talon secrets set name), not inline: ${FORM}`,
      );
    if (u.user !== undefined || u.port !== undefined || !TOKEN.test(u.host))
      throw new ChannelConfigError(
        `${name}: the secret in the host is not a Telegram bot token (digits, a colon, then letters, e.g. 123456:ABC-DEF1234…, from @BotFather): ${FORM}`,
      );
    for (const c of u.path)
      if (!CHAT.test(c))
        throw new ChannelConfigError(
          `${name}: "${c}" is not a Telegram chat: a numeric id (-100… for groups) or @channelname: ${FORM}`,
        );
    let base = API;
    if (u.query.api !== undefined) {
      if (!/^https?:\/\/[^/\s]+/i.test(u.query.api))
        throw new ChannelConfigError(`${name}: api= must be an http(s) URL (a Bot API server), got "${u.query.api}"`);
      base = u.query.api.replace(/\/+$/, '');
    }
    return new TelegramChannel(name, env, base, u.host, u.path);
  },
};
