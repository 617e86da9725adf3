/**
 * Google Chat through a space's incoming webhook: `gchat://WORKSPACE/KEY/TOKEN` (Apprise's form) posts
 * `{ text }` to https://chat.googleapis.com/v1/spaces/WORKSPACE/messages?key=KEY&token=TOKEN. Out only.
 *
 * The KEY and TOKEN are what the webhook URL Google shows carries; write them as secrets:
 * `gchat://AAAAxyz/{secret:gchat_key}/{secret:gchat_token}`. `?api=BASEURL` replaces https://chat.googleapis.com
 * (tests point it at a local fake). Text goes as plain text (Google Chat's own markup differs from Markdown and
 * escapes nothing), in parts of at most 4096 characters; the platform id of a part is the message's `name`.
 */
import { splitRendered } from '../format.ts';
import { callJson } from './http.ts';
import type { Channel, ChannelEnv, ChannelKind, ChannelUrl, OutMessage, SendResult } from './types.ts';
import { ChannelConfigError } from './types.ts';

const FORM = 'gchat://WORKSPACE/{secret:key}/{secret:token}[?api=BASEURL]';

export const gchat: ChannelKind = {
  kind: 'gchat',
  schemes: ['gchat'],
  direction: 'out',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new GchatChannel(u, env, name);
  },
};

class GchatChannel implements Channel {
  readonly name: string;
  readonly kind = 'gchat';
  readonly maxChars = 4096;
  readonly dialect = 'plain' as const;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #url: string;

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    const [key, token] = u.path;
    if (u.host === '' || key === undefined || token === undefined)
      throw new ChannelConfigError(
        `channel "${name}": a Google Chat URL needs the space, the key and the token: ${FORM}`,
      );
    this.name = name;
    this.#env = env;
    const base = (u.query.api ?? 'https://chat.googleapis.com').replace(/\/+$/, '');
    // a space id is case-sensitive: the URL parser lower-cases host names, so it is read back from the URL as written
    const written = /^[a-z]+:\/\/(?:[^@/?]*@)?([^/?:]+)/i.exec(u.display)?.[1];
    const space = written !== undefined && written.toLowerCase() === u.host ? written : u.host;
    this.#url = `${base}/v1/spaces/${encodeURIComponent(space)}/messages?key=${encodeURIComponent(key)}&token=${encodeURIComponent(token)}`;
    this.targets = [space];
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const md = msg.title ? `**${msg.title}**\n${msg.text}` : msg.text;
    const platformIds: string[] = [];
    for (const [i, text] of splitRendered(md, this.dialect, this.maxChars).entries()) {
      const r = await callJson<{ name?: string }>(this.#env, 'Google Chat', this.#url, { json: { text }, signal });
      platformIds.push(typeof r?.name === 'string' ? r.name : `${msg.id}#${i}`);
    }
    return { platformIds };
  }
}
