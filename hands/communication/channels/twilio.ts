/**
 * Twilio SMS: `twilio://{secret:account_sid}:{secret:auth_token}@FROM_NUMBER/TO_NUMBER[/TO_NUMBER…]` posts form fields
 * {From, To, Body} to https://api.twilio.com/2010-04-01/Accounts/SID/Messages.json with Basic auth. Out only.
 *
 * Plain text in parts of at most 1600 characters (Twilio's limit for a concatenated SMS); each part goes to each
 * target (or to the message's `to`), so platformIds holds parts × targets message SIDs. Numbers are E.164
 * (`+15551234567`). `?api=BASEURL` replaces https://api.twilio.com (tests point it at a local fake).
 */
import { splitRendered } from '../format.ts';
import { callJson } from './http.ts';
import type { Channel, ChannelEnv, ChannelKind, ChannelUrl, OutMessage, SendResult } from './types.ts';
import { ChannelConfigError } from './types.ts';

const FORM = 'twilio://{secret:account_sid}:{secret:auth_token}@+FROM/+TO[/+TO…][?api=BASEURL]';
const E164 = /^\+?\d{6,15}$/;

export const twilio: ChannelKind = {
  kind: 'twilio',
  schemes: ['twilio'],
  direction: 'out',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new TwilioChannel(u, env, name);
  },
};

const e164 = (n: string): string => (n.startsWith('+') ? n : `+${n}`);

class TwilioChannel implements Channel {
  readonly name: string;
  readonly kind = 'twilio';
  readonly maxChars = 1600;
  readonly dialect = 'plain' as const;
  readonly targets: readonly string[];
  #env: ChannelEnv;
  #url: string;
  #auth: string;
  #from: string;

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    if (!u.user || !u.password)
      throw new ChannelConfigError(`channel "${name}": a Twilio URL needs the account SID and the auth token: ${FORM}`);
    if (!E164.test(u.host))
      throw new ChannelConfigError(`channel "${name}": "${u.host}" is not a phone number (+15551234567): ${FORM}`);
    for (const t of u.path)
      if (!E164.test(t))
        throw new ChannelConfigError(`channel "${name}": target "${t}" is not a phone number (+15551234567)`);
    this.name = name;
    this.#env = env;
    this.#from = e164(u.host);
    this.targets = u.path.map(e164);
    this.#auth = `Basic ${Buffer.from(`${u.user}:${u.password}`).toString('base64')}`;
    this.#url = `${(u.query.api ?? 'https://api.twilio.com').replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(u.user)}/Messages.json`;
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const to = msg.to !== undefined ? [e164(msg.to)] : this.targets;
    if (to.length === 0)
      throw new ChannelConfigError(`channel "${this.name}": no number to send to (add /+TO to the URL)`);
    const md = msg.title ? `${msg.title}\n${msg.text}` : msg.text;
    const platformIds: string[] = [];
    for (const Body of splitRendered(md, this.dialect, this.maxChars))
      for (const To of to) {
        const r = await callJson<{ sid?: string }>(this.#env, 'Twilio', this.#url, {
          headers: { authorization: this.#auth },
          form: { From: this.#from, To, Body },
          signal,
        });
        platformIds.push(r?.sid ?? `${msg.id}#${platformIds.length}`);
      }
    return { platformIds };
  }
}
