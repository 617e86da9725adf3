/**
 * Home Assistant's notify services: `hassio(s)://HOST[:PORT][/PATH]/{secret:long_lived_token}[?service=notify.NAME]`
 * posts `{ title, message }` to /api/services/notify/NAME with the long-lived access token as a Bearer token. Out only.
 *
 * The default service is `notify.notify` (every notifier); `?service=notify.mobile_app_pixel` picks one (a message's
 * `to` names another service the same way). Plain text in parts of at most 4096 characters. Home Assistant answers
 * the states it changed (usually `[]`), no message id: a part's id is `<outbox id>#<part>`. `?api=BASEURL` replaces
 * http(s)://HOST[:PORT][/PATH] (tests).
 */
import { splitRendered } from '../format.ts';
import { callJson } from './http.ts';
import type { Channel, ChannelEnv, ChannelKind, ChannelUrl, OutMessage, SendResult } from './types.ts';
import { ChannelConfigError } from './types.ts';

const FORM = 'hassio(s)://HOST[:PORT]/{secret:long_lived_token}[?service=notify.mobile_app_NAME&api=BASEURL]';

export const homeassistant: ChannelKind = {
  kind: 'homeassistant',
  schemes: ['hassio', 'hassios'],
  direction: 'out',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new HomeAssistantChannel(u, env, name);
  },
};

function serviceName(s: string, name: string): string {
  const m = /^(?:notify\.)?([a-z0-9_]+)$/.exec(s);
  if (!m) throw new ChannelConfigError(`channel "${name}": "${s}" is not a notify service (notify.mobile_app_NAME)`);
  return m[1]!;
}

class HomeAssistantChannel implements Channel {
  readonly name: string;
  readonly kind = 'homeassistant';
  readonly maxChars = 4096;
  readonly dialect = 'plain' as const;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #base: string;
  #token: string;

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    const token = u.path.at(-1);
    if (u.host === '' || token === undefined)
      throw new ChannelConfigError(
        `channel "${name}": a Home Assistant URL needs the host and a long-lived token: ${FORM}`,
      );
    this.name = name;
    this.#env = env;
    this.#token = token;
    this.targets = [serviceName(u.query.service ?? 'notify.notify', name)];
    const prefix = u.path.slice(0, -1).map(encodeURIComponent).join('/');
    this.#base = (
      u.query.api ??
      `${u.scheme === 'hassios' ? 'https' : 'http'}://${u.host}${u.port ? `:${u.port}` : ''}${prefix ? `/${prefix}` : ''}`
    ).replace(/\/+$/, '');
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const service = msg.to !== undefined ? serviceName(msg.to, this.name) : this.targets[0]!;
    const url = `${this.#base}/api/services/notify/${service}`;
    const platformIds: string[] = [];
    for (const message of splitRendered(msg.text, this.dialect, this.maxChars)) {
      await callJson(this.#env, 'Home Assistant', url, {
        headers: { authorization: `Bearer ${this.#token}` },
        json: { ...(msg.title && { title: msg.title }), message },
        signal,
      });
      platformIds.push(`${msg.id}#${platformIds.length}`);
    }
    return { platformIds };
  }
}
