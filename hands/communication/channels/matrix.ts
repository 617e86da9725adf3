/**
 * Matrix through the client-server API (https://spec.matrix.org/latest/client-server-api/), over HTTP(S) through
 * the Hand's granted fetch (./http.ts callJson), no raw sockets:
 *
 *   matrixs://{secret:access_token}@HOMESERVER[:PORT]/!ROOM_ID:server[/#alias:server…]
 *
 * `matrixs` is HTTPS, `matrix` plain HTTP (a homeserver on the LAN, tests). The user part is the bot account's
 * access token, the path segments are the default rooms: room ids (`!abc:server`) or aliases (`#ops:server`,
 * `%23ops:server`), an alias resolved once through the room directory.
 *
 *   send     PUT /rooms/{room}/send/m.room.message/{txnId} per part (parts of at most 16000 characters of body):
 *            `body` the Markdown as written, `formatted_body` its HTML (./telegram.ts markdownHtml, 'matrix'). The
 *            txnId is the OutMessage id and the part's index, so a retry after a crash mid-send is deduplicated by
 *            the homeserver (it keeps transaction ids per device for a while; Synapse: about 30 minutes).
 *   receive  GET /sync, long-polled 25 s, the cursor its next_batch. The first sync (no cursor) returns no message,
 *            only a cursor: what was said before the bot was configured is not a command. The bot's own messages
 *            (whoami's user id) and m.notice (other bots) come back with fromBot set, so nothing answers itself
 *            (OpenFang #757). A `limited` timeline (more arrived than the sync returns, e.g. while Talon was down)
 *            is paged back with /messages until the previous cursor, so nothing said meanwhile is lost.
 *   probe    whoami.
 */
import { splitText } from '../format.ts';
import { callJson, type JsonCall } from './http.ts';
import { markdownHtml } from './telegram.ts';
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

const FORM = 'matrixs://{secret:access_token}@HOMESERVER[:PORT]/!ROOM_ID:server[/#alias:server…]';
const API = '/_matrix/client/v3';
/** the longest body a part carries (a Matrix event is at most 64 KiB of JSON, formatted_body included) */
export const MATRIX_MAX = 16000;
/** the JSON of one event's content above which the formatted_body is left out */
const MAX_CONTENT_BYTES = 60_000;
const POLL_MS = 25_000;
/** pages of /messages read back after a limited timeline, per room */
const MAX_BACKFILL_PAGES = 10;
const ROOM = /^[!#][^\s:]+:\S+$/;

/** what /sync is asked for: room messages and the senders' member events, nothing else */
const SYNC_FILTER = JSON.stringify({
  presence: { not_types: ['*'] },
  account_data: { not_types: ['*'] },
  room: {
    timeline: { limit: 50, types: ['m.room.message'] },
    state: { lazy_load_members: true, types: ['m.room.member'] },
    ephemeral: { not_types: ['*'] },
    account_data: { not_types: ['*'] },
  },
});
/** the first sync only wants a next_batch */
const FIRST_FILTER = JSON.stringify({
  presence: { not_types: ['*'] },
  account_data: { not_types: ['*'] },
  room: {
    timeline: { limit: 1, types: ['m.room.message'] },
    state: { types: [] },
    ephemeral: { not_types: ['*'] },
    account_data: { not_types: ['*'] },
  },
});
const MESSAGES_FILTER = JSON.stringify({ types: ['m.room.message'], lazy_load_members: true });

interface MatrixEvent {
  event_id: string;
  type: string;
  sender: string;
  origin_server_ts?: number;
  state_key?: string;
  content?: {
    msgtype?: string;
    body?: unknown;
    displayname?: string;
    'm.relates_to'?: { rel_type?: string; 'm.in_reply_to'?: unknown };
  };
}

interface SyncRoom {
  timeline?: { events?: MatrixEvent[]; limited?: boolean; prev_batch?: string };
  state?: { events?: MatrixEvent[] };
}

interface SyncResponse {
  next_batch?: string;
  rooms?: { join?: Record<string, SyncRoom> };
}

const retryAfterOf = (body: unknown): number | undefined => {
  const ms = (body as { retry_after_ms?: unknown } | undefined)?.retry_after_ms;
  return typeof ms === 'number' && ms >= 0 ? ms : undefined;
};

/** a reply's body starts with the quoted original (`> <@user> …` lines, then a blank line): the answer is after it */
function stripReplyFallback(body: string): string {
  const lines = body.split('\n');
  let i = 0;
  while (i < lines.length && lines[i]!.startsWith('>')) i++;
  if (i === 0) return body;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  return lines.slice(i).join('\n');
}

class MatrixChannel implements Channel {
  readonly kind = 'matrix';
  readonly maxChars = MATRIX_MAX;
  readonly dialect = 'html' as const;
  readonly name: string;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #base: string;
  #token: string;
  #me: string | undefined;
  /** alias → room id */
  #aliases = new Map<string, string>();

  constructor(name: string, env: ChannelEnv, base: string, token: string, targets: string[]) {
    this.name = name;
    this.#env = env;
    this.#base = base;
    this.#token = token;
    this.targets = targets;
  }

  #call<T>(path: string, c: JsonCall = {}): Promise<T> {
    return callJson<T>(this.#env, 'Matrix', `${this.#base}${API}${path}`, {
      ...c,
      headers: { authorization: `Bearer ${this.#token}`, ...c.headers },
      retryAfterOf,
    });
  }

  async #roomId(room: string, signal: AbortSignal): Promise<string> {
    if (room.startsWith('!')) return room;
    const known = this.#aliases.get(room);
    if (known) return known;
    let r: { room_id?: unknown };
    try {
      r = await this.#call<{ room_id?: unknown }>(`/directory/room/${encodeURIComponent(room)}`, { signal });
    } catch (err) {
      if (err instanceof ChannelError && err.status === 404)
        throw new ChannelError('permanent', `${this.name}: the room alias ${room} does not exist on the homeserver`, {
          status: 404,
        });
      throw err;
    }
    if (typeof r?.room_id !== 'string' || !r.room_id.startsWith('!'))
      throw new ChannelError('transient', `Matrix resolved ${room} to no room id: ${JSON.stringify(r)?.slice(0, 120)}`);
    this.#aliases.set(room, r.room_id);
    return r.room_id;
  }

  async #whoami(signal: AbortSignal): Promise<string> {
    if (this.#me) return this.#me;
    const r = await this.#call<{ user_id?: unknown }>('/account/whoami', { signal });
    if (typeof r?.user_id !== 'string' || !r.user_id.startsWith('@'))
      throw new ChannelError('transient', `Matrix whoami named no user: ${JSON.stringify(r)?.slice(0, 120)}`);
    this.#me = r.user_id;
    return r.user_id;
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const rooms = msg.to !== undefined ? [msg.to] : [...this.targets];
    if (rooms.length === 0)
      throw new ChannelError(
        'permanent',
        `${this.name}: no room to send to; add one to the URL (${FORM}) or address one`,
      );
    for (const r of rooms)
      if (!ROOM.test(r))
        throw new ChannelError('permanent', `${this.name}: "${r}" is not a Matrix room (!id:server or #alias:server)`);
    const md = msg.title ? `**${msg.title}**\n\n${msg.text}` : msg.text;
    const parts = splitText(md, MATRIX_MAX);
    const ids: string[] = [];
    for (const room of rooms) {
      const roomId = await this.#roomId(room, signal);
      for (let i = 0; i < parts.length; i++) {
        const body = parts[i]!;
        const content: Record<string, string> = { msgtype: 'm.text', body };
        const html = markdownHtml(body, 'matrix');
        if (Buffer.byteLength(JSON.stringify({ ...content, html }), 'utf8') <= MAX_CONTENT_BYTES) {
          content.format = 'org.matrix.custom.html';
          content.formatted_body = html;
        }
        // the same OutMessage and part: the same transaction, which the homeserver answers once
        const txn = encodeURIComponent(`talon.${msg.id}.${i}`);
        const r = await this.#call<{ event_id?: unknown }>(
          `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`,
          { method: 'PUT', json: content, signal },
        );
        if (typeof r?.event_id !== 'string')
          throw new ChannelError(
            'transient',
            `Matrix confirmed a send without an event_id: ${JSON.stringify(r)?.slice(0, 120)}`,
          );
        ids.push(r.event_id);
      }
    }
    return { platformIds: ids };
  }

  async receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    const me = await this.#whoami(signal);
    if (cursor === undefined) {
      const first = await this.#call<SyncResponse>(`/sync?timeout=0&filter=${encodeURIComponent(FIRST_FILTER)}`, {
        signal,
      });
      if (typeof first?.next_batch !== 'string')
        throw new ChannelError(
          'transient',
          `Matrix sync answered without next_batch: ${JSON.stringify(first)?.slice(0, 120)}`,
        );
      this.#env.log.info(`${this.name}: first sync; what the rooms said before now is not read as commands`);
      return { messages: [], cursor: first.next_batch };
    }
    const q = `since=${encodeURIComponent(cursor)}&timeout=${POLL_MS}&filter=${encodeURIComponent(SYNC_FILTER)}`;
    const s = await this.#call<SyncResponse>(`/sync?${q}`, { signal, timeoutMs: POLL_MS + 10_000 });
    if (typeof s?.next_batch !== 'string')
      throw new ChannelError(
        'transient',
        `Matrix sync answered without next_batch: ${JSON.stringify(s)?.slice(0, 120)}`,
      );
    const messages: InMessage[] = [];
    for (const [roomId, room] of Object.entries(s.rooms?.join ?? {})) {
      let events = room.timeline?.events ?? [];
      if (room.timeline?.limited && room.timeline.prev_batch)
        events = [...(await this.#backfill(roomId, room.timeline.prev_batch, cursor, signal)), ...events];
      const names = new Map<string, string>();
      for (const e of [...(room.state?.events ?? []), ...events])
        if (e?.type === 'm.room.member' && e.state_key && typeof e.content?.displayname === 'string')
          names.set(e.state_key, e.content.displayname);
      const seen = new Set<string>();
      for (const e of events) {
        if (e?.type !== 'm.room.message' || typeof e.event_id !== 'string' || seen.has(e.event_id)) continue;
        seen.add(e.event_id);
        const c = e.content ?? {};
        // an edit repeats a message already read; a redacted one has no body
        if (typeof c.body !== 'string' || c['m.relates_to']?.rel_type === 'm.replace') continue;
        const im: InMessage = {
          platformId: e.event_id,
          from: String(e.sender),
          fromBot: e.sender === me || c.msgtype === 'm.notice',
          text: c['m.relates_to']?.['m.in_reply_to'] ? stripReplyFallback(c.body) : c.body,
          at: typeof e.origin_server_ts === 'number' ? e.origin_server_ts : this.#env.now(),
          replyTo: roomId,
        };
        const n = names.get(e.sender);
        if (n) im.fromName = n;
        messages.push(im);
      }
    }
    return { messages, cursor: s.next_batch };
  }

  /** the events of a limited timeline before `from`, back to `since` (oldest first) */
  async #backfill(roomId: string, from: string, since: string, signal: AbortSignal): Promise<MatrixEvent[]> {
    const older: MatrixEvent[] = [];
    let token: string | undefined = from;
    for (let page = 0; page < MAX_BACKFILL_PAGES && token !== undefined; page++) {
      const q = `dir=b&limit=100&from=${encodeURIComponent(token)}&to=${encodeURIComponent(since)}&filter=${encodeURIComponent(MESSAGES_FILTER)}`;
      const r: { chunk?: MatrixEvent[]; end?: string } = await this.#call(
        `/rooms/${encodeURIComponent(roomId)}/messages?${q}`,
        {
          signal,
        },
      );
      const chunk = Array.isArray(r?.chunk) ? r.chunk : [];
      older.push(...chunk);
      token = chunk.length === 0 ? undefined : r.end;
    }
    if (token !== undefined)
      this.#env.log.warn(
        `${this.name}: more than ${MAX_BACKFILL_PAGES * 100} messages arrived in ${roomId} since the last sync; ` +
          `read the latest ${older.length}, older ones were skipped`,
      );
    return older.reverse();
  }

  async probe(signal: AbortSignal): Promise<void> {
    this.#me = undefined;
    await this.#whoami(signal);
  }
}

export const matrix: ChannelKind = {
  kind: 'matrix',
  schemes: ['matrix', 'matrixs'],
  direction: 'both',
  form: FORM,
  raw: false,
  create(u: ChannelUrl, env: ChannelEnv, name: string): Channel {
    if (u.user === undefined || u.user === '')
      throw new ChannelConfigError(`${name}: the Matrix URL needs the bot's access token as its user part: ${FORM}`);
    if (/\s/.test(u.user))
      throw new ChannelConfigError(`${name}: the access token holds white space; check the secret (${FORM})`);
    if (u.host === '')
      throw new ChannelConfigError(`${name}: the Matrix URL needs the homeserver as its host: ${FORM}`);
    for (const r of u.path)
      if (!ROOM.test(r))
        throw new ChannelConfigError(
          `${name}: "${r}" is not a Matrix room: write a room id (!abc:server) or an alias (#ops:server or %23ops:server): ${FORM}`,
        );
    const proto = u.scheme === 'matrixs' ? 'https' : 'http';
    if (proto === 'http' && !/^(localhost|127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|\[::1\]|[^.]+$)/.test(u.host))
      env.log.warn(`${name}: matrix:// sends the access token unencrypted to ${u.host}; use matrixs:// beyond the LAN`);
    const base = `${proto}://${u.host}${u.port !== undefined ? `:${u.port}` : ''}`;
    return new MatrixChannel(name, env, base, u.user, u.path);
  },
};
