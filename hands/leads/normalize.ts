/**
 * The Lead Generation Hand's dedup keys and merging: a company is known by its normalised domain (`d:acme.com`), a
 * person with only a free-mail address by that address (`e:jane@gmail.com`). Every source's raw lead goes through
 * leadIdOf (no key: the lead is dropped and counted by the caller) and mergeLead, so the same company found on two
 * directories, with `www.` and without, in capitals or with a trailing slash, is one Lead whose fields each name the
 * URL they were read from. leadVersion (re-exported by ./score.ts) is here too: mergeLead keeps it current.
 */
import { createHash } from 'node:crypto';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Lead, LeadField, RawLead, Sourced } from './types.ts';

/** the most e-mail addresses and phone numbers one lead keeps */
export const MAX_CONTACTS = 20;
/** the most source names one lead keeps */
export const MAX_SOURCES = 50;

/** mail providers anyone can sign up with: an address there says nothing about a company's domain */
export const FREE_MAIL: ReadonlySet<string> = new Set([
  'gmail.com',
  'googlemail.com',
  'outlook.com',
  'outlook.de',
  'hotmail.com',
  'hotmail.de',
  'hotmail.co.uk',
  'live.com',
  'msn.com',
  'yahoo.com',
  'yahoo.de',
  'yahoo.co.uk',
  'ymail.com',
  'icloud.com',
  'me.com',
  'mac.com',
  'aol.com',
  'proton.me',
  'protonmail.com',
  'pm.me',
  'tutanota.com',
  'tuta.io',
  'zoho.com',
  'mail.com',
  'gmx.de',
  'gmx.net',
  'gmx.at',
  'gmx.ch',
  'web.de',
  't-online.de',
  'freenet.de',
  'posteo.de',
  'mailbox.org',
  'orange.fr',
  'free.fr',
  'laposte.net',
  'libero.it',
  'mail.ru',
  'yandex.ru',
  'yandex.com',
  'qq.com',
  '163.com',
  '126.com',
  'sina.com',
  'naver.com',
  'fastmail.com',
  'hey.com',
]);

/**
 * hosts that are not a company's own site (social networks, link services): a lead whose `website` points there
 * gets no domain from it (else every LinkedIn page would be one lead `d:linkedin.com`)
 */
const NOT_COMPANY_HOSTS = [
  'linkedin.com',
  'facebook.com',
  'instagram.com',
  'x.com',
  'twitter.com',
  'youtube.com',
  'xing.com',
  'tiktok.com',
  'linktr.ee',
  'bit.ly',
];

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * `https://www.Acme.com:8443/about` / `acme.com` / `WWW2.acme.com.` → `acme.com`. International names become
 * punycode (through WHATWG URL). Undefined for what is not a public host name: IP addresses, `localhost`, a single
 * label, a path without a host (`/about`), another scheme (`mailto:`), text with spaces.
 */
export function normalizeDomain(urlOrHost: string): string | undefined {
  const s = urlOrHost.trim();
  if (!s || /\s/.test(s) || s.startsWith('/') || s.startsWith('.')) return undefined;
  let host: string;
  try {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
      const u = new URL(s);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
      host = u.hostname;
    } else {
      if (/^[a-z][a-z0-9+.-]*:(?!\d)/i.test(s)) return undefined; // mailto:, tel:, javascript:
      if (s.split('/')[0]!.includes('@')) return undefined; // an e-mail address is not a host
      host = new URL(`http://${s}`).hostname;
    }
  } catch {
    return undefined;
  }
  host = host.toLowerCase().replace(/\.$/, '');
  if (!host || host.startsWith('[') || IPV4.test(host) || host === 'localhost' || host.endsWith('.localhost'))
    return undefined;
  host = host.replace(/^www\d*\./, '');
  const labels = host.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return undefined;
  if (/^\d+$/.test(labels.at(-1)!)) return undefined;
  return host;
}

const EMAIL =
  /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)$/;
/** `logo@2x.png`: file names that look like addresses in a page's text */
const FILE_TLD = /\.(png|jpe?g|gif|svg|webp|avif|ico|bmp|css|js|mjs|json|pdf|zip|woff2?|ttf|mp4|webm)$/;

/**
 * `  MAILTO:Jane.Doe@Acme.COM?subject=hi` → `jane.doe@acme.com`; undefined for what is not a plausible address (no
 * domain with a dot, a file name such as `logo@2x.png`, longer than 254 characters, a local part over 64).
 */
export function normalizeEmail(email: string): string | undefined {
  let s = email.trim().replace(/^mailto:/i, '');
  s = s.split('?')[0]!;
  try {
    s = decodeURIComponent(s);
  } catch {
    /* kept as it is */
  }
  s = s.trim().toLowerCase().replace(/\.$/, '');
  if (s.length > 254) return undefined;
  const m = EMAIL.exec(s);
  if (!m) return undefined;
  const local = s.slice(0, s.indexOf('@'));
  if (local.length > 64) return undefined;
  const domain = m[1]!;
  if (FILE_TLD.test(domain) || !/[a-z]{2,}$/.test(domain)) return undefined;
  return s;
}

/** the company's domain a website URL names, unless it is a social network's or a link service's */
export function websiteDomain(website: string | undefined): string | undefined {
  const d = website ? normalizeDomain(website) : undefined;
  if (!d || NOT_COMPANY_HOSTS.some((h) => d === h || d.endsWith(`.${h}`))) return undefined;
  return d;
}

/** the domain of an address that is not a free-mail one */
function companyMailDomain(email: string | undefined): string | undefined {
  const e = email ? normalizeEmail(email) : undefined;
  if (!e) return undefined;
  const d = normalizeDomain(e.slice(e.indexOf('@') + 1));
  return d && !FREE_MAIL.has(d) ? d : undefined;
}

/** `d:<domain>` from the website (or a non-free e-mail's domain), else `e:<email>`, else undefined */
export function leadIdOf(fields: RawLead['fields']): string | undefined {
  const d = websiteDomain(fields.website) ?? companyMailDomain(fields.email);
  if (d) return `d:${d}`;
  const e = fields.email ? normalizeEmail(fields.email) : undefined;
  return e ? `e:${e}` : undefined;
}

/**
 * employees from what directories write: `120` / `120 employees` / `1,200` → the number; a range `51-200` /
 * `51–200` / `51 to 200` → its midpoint rounded (126); `500+` / `10k` → 500 / 10000. Undefined when no number.
 */
export function parseSize(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const s = text.toLowerCase().replace(/(\d)[,.'\u2009 ](?=\d{3}\b)/g, '$1');
  const num = (n: string, k?: string): number => Number(n) * (k === 'k' ? 1000 : 1);
  const range = /(\d+(?:\.\d+)?)\s*(k)?\s*(?:-|–|—|to|bis)\s*(\d+(?:\.\d+)?)\s*(k)?/.exec(s);
  if (range) {
    const a = num(range[1]!, range[2]);
    const b = num(range[3]!, range[4]);
    if (Number.isFinite(a) && Number.isFinite(b)) return Math.round((a + b) / 2);
  }
  const one = /(\d+(?:\.\d+)?)\s*(k)?/.exec(s);
  if (!one) return undefined;
  const n = Math.round(num(one[1]!, one[2]));
  return Number.isFinite(n) ? n : undefined;
}

/** a website as a URL: kept as given when it has a scheme (and its port), else `https://<host…>` */
function websiteUrl(website: string): string {
  const s = website.trim();
  return /^https?:\/\//i.test(s) ? s : `https://${s.replace(/^\/+/, '')}`;
}

const phoneKey = (p: string): string => p.replace(/[^\d+]/g, '');
const cleanPhone = (p: string): string | undefined => {
  const s = p.replace(/^tel:/i, '').replace(/%20/g, ' ').replace(/\s+/g, ' ').trim();
  return phoneKey(s).replace(/\+/g, '').length >= 5 && s.length <= 40 ? s : undefined;
};

/** adds values not yet there (by `key`), up to `max` */
export function unionSourced(list: Sourced[], add: Sourced[], max: number, key = (v: string) => v): Sourced[] {
  const out = [...list];
  const seen = new Set(out.map((s) => key(s.value)));
  for (const s of add) {
    if (out.length >= max) break;
    const k = key(s.value);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(s);
  }
  return out;
}

const TEXT_FIELDS = [
  'company',
  'contact',
  'title',
  'industry',
  'location',
  'description',
] as const satisfies LeadField[];

/**
 * A new lead from a raw one (score 0, status `new`), or the existing one with the raw one's fields added: each field
 * becomes Sourced with the raw lead's sourceUrl; a field's first value is kept (a later one only fills an empty
 * field); e-mails (normalised) and phones (by their digits) are unioned up to MAX_CONTACTS; the raw lead's source
 * name is added to `sources` (up to MAX_SOURCES); lastSeen becomes `now`; `size` is parsed with parseSize; the
 * version is computed again. `sources` holds source names (the settings' `name`), not URLs: the URLs are on the
 * fields. Throws TalonError USAGE when there is no existing lead and the raw one has no key (check leadIdOf first).
 */
export function mergeLead(existing: Lead | undefined, raw: RawLead, now: number): Lead {
  const f = raw.fields;
  const id = existing?.id ?? leadIdOf(f);
  if (!id) throw new TalonError('USAGE', 'a lead needs a website or an e-mail address (none in this raw lead)');
  const at = now;
  const src = raw.sourceUrl;
  const lead: Lead = existing
    ? { ...existing, emails: [...existing.emails], phones: [...existing.phones], sources: [...existing.sources] }
    : {
        id,
        emails: [],
        phones: [],
        social: [],
        technologies: [],
        mx: [],
        score: 0,
        reasons: [],
        status: 'new',
        sources: [],
        firstSeen: now,
        lastSeen: now,
        version: '',
      };
  const sourced = (value: string): Sourced => ({ value, source: src, at });
  for (const k of TEXT_FIELDS) {
    const v = f[k]?.replace(/\s+/g, ' ').trim();
    if (v && !lead[k]?.value) lead[k] = sourced(k === 'description' ? v.slice(0, 1000) : v.slice(0, 300));
  }
  if (f.website?.trim() && !lead.website?.value) {
    const d = websiteDomain(f.website);
    if (d) lead.website = sourced(websiteUrl(f.website));
  }
  if (!lead.domain) lead.domain = websiteDomain(lead.website?.value) ?? companyMailDomain(f.email);
  const email = f.email ? normalizeEmail(f.email) : undefined;
  if (email) lead.emails = unionSourced(lead.emails, [sourced(email)], MAX_CONTACTS);
  const phone = f.phone ? cleanPhone(f.phone) : undefined;
  if (phone) lead.phones = unionSourced(lead.phones, [sourced(phone)], MAX_CONTACTS, phoneKey);
  if (lead.size === undefined) {
    const n = parseSize(f.size);
    if (n !== undefined) lead.size = { value: n, source: src, at };
  }
  if (!lead.sources.includes(raw.source) && lead.sources.length < MAX_SOURCES) lead.sources.push(raw.source);
  lead.lastSeen = Math.max(lead.lastSeen, now);
  lead.version = leadVersion(lead);
  return lead;
}

/** a phone number as written on a page (`tel:` links), or undefined when it has too few digits */
export { cleanPhone };

/** what a CRM gets, values only: the fields leadVersion hashes */
const VERSION_FIELDS = [
  'company',
  'website',
  'domain',
  'emails',
  'phones',
  'contact',
  'title',
  'industry',
  'location',
  'size',
  'description',
  'social',
  'technologies',
] as const;

/**
 * A hash of what a CRM gets: sha256 of the canonical JSON of the delivered fields' values (no sources, times, score,
 * reasons or status; lists sorted, keys in a fixed order), hex, first 16 characters. A lead whose delivered content
 * changed gets a new version (and is delivered again as an update); the order values arrived in does not matter.
 */
export function leadVersion(lead: Lead): string {
  const canon: Record<string, unknown> = {};
  for (const k of [...VERSION_FIELDS].sort()) {
    const v = lead[k];
    if (v === undefined) canon[k] = null;
    else if (typeof v === 'string') canon[k] = v;
    else if (Array.isArray(v)) canon[k] = v.map((s) => String(s.value)).sort();
    else canon[k] = v.value;
  }
  return createHash('sha256').update(JSON.stringify(canon)).digest('hex').slice(0, 16);
}
