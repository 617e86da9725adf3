/**
 * Apprise-style channel URLs: `scheme://[user[:password]@]host[:port][/path…][?key=value&…]`.
 *
 * Secrets are never written inline: `{secret:name}` names a sealed secret (runtime/secrets). The URL is split into
 * its components first and the references are filled in afterwards, so a token holding `@ # ; % / ?` (Apprise #161,
 * #1237) cannot move the split. `display` keeps the references: it is what logs, the API and the audit show.
 */
import type { ChannelUrl } from './types.ts';
import { ChannelConfigError } from './types.ts';

const REF = /\{secret:([A-Za-z0-9_.-]{1,64})\}/g;
const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/** a channel URL's scheme in lower case (`tgram`), undefined when it has none */
export function schemeOf(url: string): string | undefined {
  return SCHEME.exec(url.trim())?.[1]?.toLowerCase();
}

/** the secret names a URL refers to, in order of appearance */
export function secretRefs(url: string): string[] {
  return [...new Set([...url.matchAll(REF)].map((m) => m[1]!))];
}

/** a value that looks like a credential written inline where a `{secret:…}` reference belongs */
function inlineSecret(u: ChannelUrl): string | undefined {
  if (u.password !== undefined && u.password !== '' && !u.password.includes('\u0000')) return 'the password';
  return undefined;
}

/**
 * Split `raw` and fill in its references with `secret(name)` (undefined: no such secret → ChannelConfigError naming
 * it). An inline password is refused: it would sit in the config in clear.
 */
export async function parseChannelUrl(
  raw: string,
  secret: (name: string) => Promise<string | undefined>,
): Promise<ChannelUrl> {
  if (typeof raw !== 'string' || raw.trim() === '') throw new ChannelConfigError('a channel needs a URL (scheme://…)');
  const display = raw.trim();
  const m = SCHEME.exec(display);
  if (!m)
    throw new ChannelConfigError(
      `"${cut(display)}" is not a channel URL: it must start with scheme:// (tgram://, mailto://, ntfy://, …)`,
    );
  // references become placeholders so the split cannot see their characters
  const values: string[] = [];
  const masked = display.replace(REF, (_all, name: string) => {
    values.push(name);
    return `\u0000${values.length - 1}\u0000`;
  });
  if (/\{secret:/.test(masked))
    throw new ChannelConfigError(
      `"${cut(display)}": a secret reference is {secret:name} (letters, digits, _ . -, at most 64)`,
    );
  const scheme = m[1]!.toLowerCase();
  let rest = masked.slice(m[0].length);
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const hash = rest.indexOf('#');
  // a `#` starts a Slack channel name, not a fragment: kept in the path
  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const pathPart = slash >= 0 ? rest.slice(slash + 1) : '';
  void hash;
  let userinfo: string | undefined;
  let hostport = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    userinfo = authority.slice(0, at);
    hostport = authority.slice(at + 1);
  }
  let host = hostport;
  let port: number | undefined;
  const pm = /^(.*?):(\d{1,5})$/.exec(hostport);
  if (pm && !hostport.startsWith('[')) {
    host = pm[1]!;
    port = Number(pm[2]);
  } else {
    const v6 = /^(\[[^\]]+\])(?::(\d{1,5}))?$/.exec(hostport);
    if (v6) {
      host = v6[1]!;
      if (v6[2] !== undefined) port = Number(v6[2]);
    }
  }
  if (port !== undefined && (port < 1 || port > 65535))
    throw new ChannelConfigError(`"${cut(display)}": port ${port} is not 1-65535`);
  const u: ChannelUrl = {
    scheme,
    host: host.includes('\u0000') ? host : host.toLowerCase(),
    path: [],
    query: {},
    display,
  };
  if (port !== undefined) u.port = port;
  if (userinfo !== undefined) {
    const c = userinfo.indexOf(':');
    u.user = c >= 0 ? userinfo.slice(0, c) : userinfo;
    if (c >= 0) u.password = userinfo.slice(c + 1);
  }
  if (inlineSecret(u))
    throw new ChannelConfigError(
      `"${cut(redact(display))}": write the password as a sealed secret reference, {secret:name} (talon secrets set name), not inline`,
    );
  u.path = pathPart
    .split('/')
    .filter((s) => s !== '')
    .map((s) => decode(s, display));
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const e = pair.indexOf('=');
    const k = decode(e >= 0 ? pair.slice(0, e) : pair, display);
    u.query[k] = decode(e >= 0 ? pair.slice(e + 1) : '', display);
  }
  // fill in the references, component by component
  const names = new Map<number, string>();
  for (let i = 0; i < values.length; i++) {
    const name = values[i]!;
    const v = await secret(name);
    if (v === undefined || v === '')
      throw new ChannelConfigError(
        `"${cut(display)}": the secret "${name}" does not exist; set it with \`talon secrets set ${name}\` (or the web admin's Secrets page)`,
      );
    names.set(i, v);
  }
  const fill = (s: string): string => s.replace(/\u0000(\d+)\u0000/g, (_a, i: string) => names.get(Number(i)) ?? '');
  if (u.user !== undefined) u.user = fill(u.user);
  if (u.password !== undefined) u.password = fill(u.password);
  u.host = fill(u.host);
  u.path = u.path.map(fill);
  for (const k of Object.keys(u.query)) u.query[k] = fill(u.query[k]!);
  return u;
}

function decode(s: string, display: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ChannelConfigError(`"${cut(display)}": "${cut(s, 40)}" has a bad percent-escape`);
  }
}

/** the URL with anything after `user:` up to `@` hidden (for refusing an inline password without echoing it) */
export function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i, '$1***@');
}

function cut(s: string, n = 120): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
