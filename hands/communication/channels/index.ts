/**
 * The channel registry: every kind (a module each, ./<kind>.ts), found by its URL scheme, and `openChannel`, which
 * turns a configured channel (name + URL with `{secret:…}` references) into a Channel.
 *
 *   const ch = await openChannel('ops', 'tgram://{secret:tg}/12345', env, (n) => ctx.call('secrets.get', n));
 *
 * Only the kinds' small modules load here: their libraries (nodemailer, imapflow, ws, mqtt) load inside the
 * functions that use them, so a Hand with no e-mail channel never loads nodemailer. A kind's `raw` says whether it
 * needs the Hand's `network.raw` grant (the Hand checks it before opening); `direction` whether it receives.
 */
import { discord } from './discord.ts';
import { email } from './email.ts';
import { gchat } from './gchat.ts';
import { gotify } from './gotify.ts';
import { homeassistant } from './homeassistant.ts';
import { matrix } from './matrix.ts';
import { mqtt } from './mqtt.ts';
import { ntfy } from './ntfy.ts';
import { pushover } from './pushover.ts';
import { slack } from './slack.ts';
import { msteams } from './teams.ts';
import { telegram } from './telegram.ts';
import { twilio } from './twilio.ts';
import type { Channel, ChannelEnv, ChannelKind } from './types.ts';
import { ChannelConfigError } from './types.ts';
import { parseChannelUrl } from './url.ts';
import { webhook } from './webhook.ts';

export const CHANNEL_KINDS: readonly ChannelKind[] = [
  telegram,
  slack,
  discord,
  matrix,
  email,
  ntfy,
  mqtt,
  webhook,
  msteams,
  gchat,
  pushover,
  gotify,
  twilio,
  homeassistant,
];

let bySchemeCache: Map<string, ChannelKind> | undefined;

function byScheme(): Map<string, ChannelKind> {
  if (bySchemeCache) return bySchemeCache;
  const m = new Map<string, ChannelKind>();
  for (const k of CHANNEL_KINDS)
    for (const s of k.schemes) {
      const other = m.get(s);
      if (other) throw new Error(`channel kinds ${other.kind} and ${k.kind} both claim the scheme ${s}://`);
      m.set(s, k);
    }
  bySchemeCache = m;
  return m;
}

/** every scheme a channel URL may start with, sorted */
export function knownSchemes(): string[] {
  return [...byScheme().keys()].sort();
}

/** the kind answering `scheme` (any case, with or without `://`), or undefined */
export function kindOfScheme(scheme: string): ChannelKind | undefined {
  return byScheme().get(scheme.toLowerCase().replace(/:(\/\/)?$/, ''));
}

/**
 * The channel `name` configured as `rawUrl`: the URL split and its secrets filled in (./url.ts), its kind found by
 * scheme, the kind's `create` run. Throws ChannelConfigError for an unknown scheme (listing the known ones), a missing
 * secret or anything the kind finds wrong with the URL.
 */
export async function openChannel(
  name: string,
  rawUrl: string,
  env: ChannelEnv,
  secret: (name: string) => Promise<string | undefined>,
): Promise<Channel> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(typeof rawUrl === 'string' ? rawUrl.trim() : '')?.[1];
  // the kind first: an unknown scheme is said as such, before any secret is looked up
  if (scheme !== undefined && !kindOfScheme(scheme))
    throw new ChannelConfigError(
      `channel "${name}": no channel kind answers ${scheme.toLowerCase()}://; known schemes: ${knownSchemes().join(', ')}`,
    );
  const u = await parseChannelUrl(rawUrl, secret);
  const kind = kindOfScheme(u.scheme)!;
  return kind.create(u, env, name);
}
