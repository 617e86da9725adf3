/**
 * Gotify: `gotify(s)://HOST[:PORT][/PATH…]/{secret:app_token}` posts `{ title, message, priority, extras }` to
 * http(s)://HOST[:PORT][/PATH]/message with the app token in `X-Gotify-Key`. Out only.
 *
 * Priorities map low 2, normal 5, high 8, critical 10 (`?priority=N` fixes one, 0-10). The message is Markdown
 * (`extras.client::display.contentType = text/markdown`), in parts of at most 8192 characters. A path before the
 * token is a reverse proxy's prefix. `?api=BASEURL` replaces http(s)://HOST[:PORT][/PATH] (tests).
 */
import { splitRendered } from '../format.ts';
import { callJson } from './http.ts';
import type { Channel, ChannelEnv, ChannelKind, ChannelUrl, OutMessage, Priority, SendResult } from './types.ts';
import { ChannelConfigError } from './types.ts';

const FORM = 'gotify(s)://HOST[:PORT][/PATH]/{secret:app_token}[?priority=0-10&api=BASEURL]';
const PRIORITY: Record<Priority, number> = { low: 2, normal: 5, high: 8, critical: 10 };

export const gotify: ChannelKind = {
  kind: 'gotify',
  schemes: ['gotify', 'gotifys'],
  direction: 'out',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new GotifyChannel(u, env, name);
  },
};

class GotifyChannel implements Channel {
  readonly name: string;
  readonly kind = 'gotify';
  readonly maxChars = 8192;
  readonly dialect = 'markdown' as const;
  readonly targets: readonly string[] = [];
  #env: ChannelEnv;
  #url: string;
  #token: string;
  #priority: number | undefined;

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    const token = u.path.at(-1);
    if (u.host === '' || token === undefined)
      throw new ChannelConfigError(`channel "${name}": a Gotify URL needs the host and the app token: ${FORM}`);
    this.name = name;
    this.#env = env;
    this.#token = token;
    const prefix = u.path.slice(0, -1).map(encodeURIComponent).join('/');
    const base =
      u.query.api ??
      `${u.scheme === 'gotifys' ? 'https' : 'http'}://${u.host}${u.port ? `:${u.port}` : ''}${prefix ? `/${prefix}` : ''}`;
    this.#url = `${base.replace(/\/+$/, '')}/message`;
    if (u.query.priority !== undefined) {
      const p = Number(u.query.priority);
      if (!Number.isInteger(p) || p < 0 || p > 10)
        throw new ChannelConfigError(`channel "${name}": ?priority= is 0-10`);
      this.#priority = p;
    }
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const platformIds: string[] = [];
    for (const message of splitRendered(msg.text, this.dialect, this.maxChars)) {
      const r = await callJson<{ id?: number }>(this.#env, 'Gotify', this.#url, {
        headers: { 'x-gotify-key': this.#token },
        json: {
          title: msg.title ?? '',
          message,
          priority: this.#priority ?? PRIORITY[msg.priority],
          extras: { 'client::display': { contentType: 'text/markdown' } },
        },
        signal,
      });
      platformIds.push(r?.id !== undefined ? String(r.id) : `${msg.id}#${platformIds.length}`);
    }
    return { platformIds };
  }
}
