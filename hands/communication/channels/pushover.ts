/**
 * Pushover: `pover://{secret:user_key}@{secret:app_token}[/DEVICE[/DEVICE…]]` (Apprise's form) posts form fields to
 * https://api.pushover.net/1/messages.json. Out only.
 *
 * Priorities map low -1, normal 0, high 1, critical 2; an emergency (2) repeats every `?retry=` seconds (default 60,
 * at least 30) until acknowledged in the app or `?expire=` seconds pass (default 3600, at most 10800). `?sound=`
 * picks the sound. Messages go as plain text in parts of at most 1024 characters, the title cut to 250. Pushover says
 * "invalid token / user" with a 400 whose body names the field: that is an auth error here, not a refused message.
 * `?api=BASEURL` replaces https://api.pushover.net (tests point it at a local fake).
 */
import { splitRendered } from '../format.ts';
import { callJson } from './http.ts';
import type { Channel, ChannelEnv, ChannelKind, ChannelUrl, OutMessage, Priority, SendResult } from './types.ts';
import { ChannelConfigError, ChannelError } from './types.ts';

const FORM = 'pover://{secret:user_key}@{secret:app_token}[/DEVICE…][?retry=60&expire=3600&sound=NAME&api=BASEURL]';
const PRIORITY: Record<Priority, string> = { low: '-1', normal: '0', high: '1', critical: '2' };

export const pushover: ChannelKind = {
  kind: 'pushover',
  schemes: ['pover', 'pushover'],
  direction: 'out',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new PushoverChannel(u, env, name);
  },
};

class PushoverChannel implements Channel {
  readonly name: string;
  readonly kind = 'pushover';
  readonly maxChars = 1024;
  readonly dialect = 'plain' as const;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #url: string;
  #user: string;
  #token: string;
  #extra: Record<string, string> = {};
  #retry: string;
  #expire: string;

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    if (!u.user || u.host === '')
      throw new ChannelConfigError(`channel "${name}": a Pushover URL needs the user key and the app token: ${FORM}`);
    this.name = name;
    this.#env = env;
    this.#user = u.user;
    this.#token = u.host;
    this.targets = u.path;
    this.#url = `${(u.query.api ?? 'https://api.pushover.net').replace(/\/+$/, '')}/1/messages.json`;
    const retry = Number(u.query.retry ?? 60);
    const expire = Number(u.query.expire ?? 3600);
    if (!Number.isInteger(retry) || retry < 30)
      throw new ChannelConfigError(`channel "${name}": ?retry= is seconds between emergency repeats, 30 or more`);
    if (!Number.isInteger(expire) || expire < 1 || expire > 10800)
      throw new ChannelConfigError(`channel "${name}": ?expire= is seconds an emergency repeats, 1-10800`);
    this.#retry = String(retry);
    this.#expire = String(expire);
    if (u.query.sound) this.#extra.sound = u.query.sound;
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const platformIds: string[] = [];
    const device = msg.to ?? this.targets.join(',');
    const parts = splitRendered(msg.text, this.dialect, this.maxChars);
    for (const message of parts) {
      const form: Record<string, string> = {
        token: this.#token,
        user: this.#user,
        message,
        priority: PRIORITY[msg.priority],
        ...this.#extra,
      };
      if (msg.title) form.title = [...msg.title].slice(0, 250).join('');
      if (device !== '') form.device = device;
      if (msg.priority === 'critical') Object.assign(form, { retry: this.#retry, expire: this.#expire });
      try {
        const r = await callJson<{ status?: number; request?: string; errors?: string[] }>(
          this.#env,
          'Pushover',
          this.#url,
          {
            form,
            signal,
            check: (b) => {
              const body = b as { status?: unknown; errors?: unknown } | undefined;
              return body?.status === 1
                ? undefined
                : new ChannelError(
                    'permanent',
                    `Pushover refused the message: ${JSON.stringify(body?.errors ?? body)}`,
                  );
            },
          },
        );
        platformIds.push(r.request ?? `${msg.id}#${platformIds.length}`);
      } catch (err) {
        // {"token":"invalid"} / {"user":"invalid"} with a 400: the credentials, not the message
        if (err instanceof ChannelError && err.status === 400 && /"(token|user)":"invalid"/.test(err.message))
          throw new ChannelError(
            'auth',
            `Pushover refused the ${/"token":"invalid"/.test(err.message) ? 'app token' : 'user key'} (400); check the channel's secrets`,
            {
              status: 400,
              cause: err,
            },
          );
        throw err;
      }
    }
    return { platformIds };
  }
}
