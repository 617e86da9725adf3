/**
 * A lead's profile from public data: the company's own home page (the lead's website URL as given, scheme and port
 * kept) and the first link on it (same host only) whose text or path says contact / kontakt / impressum / imprint /
 * about, both through the web kit's Fetcher (robots.txt, the byte and time caps); the domain's MX records through
 * env.mx (the kernel's `dns.mx`). Read from the pages: the description (meta description, else the first paragraph,
 * ≤ 300 chars), public e-mail addresses (mailto: links and addresses written in the text; those on the company's
 * domain or a subdomain of it, and only when there are none the others), phone numbers (tel: links), social links
 * (the company's profiles on LinkedIn, X/Twitter, GitHub, Facebook, Instagram, YouTube: links found on its own pages,
 * never fetched) and technologies (detectTechnologies). Every field is Sourced with the URL of the page it was read
 * on (`dns:MX <domain>` for MX). A field the lead already has keeps its value (e-mails and phones are added to);
 * social links, technologies and MX are replaced by what this enrichment found when it read a page. Failures (robots,
 * timeout, 404, DNS) are collected in `errors`, never thrown.
 */
import type { FetchedPage, HtmlPage } from '../sdk/web/types.ts';
import { Fetcher, WebError, readHtml } from '../sdk/web/index.ts';
import { MAX_CONTACTS, cleanPhone, leadVersion, normalizeEmail, unionSourced } from './normalize.ts';
import type { Lead, Sourced } from './types.ts';

export interface EnrichEnv {
  fetcher: Fetcher;
  mx(domain: string): Promise<Array<{ exchange: string; priority: number }>>;
  now: () => number;
}

export interface EnrichError {
  kind: string;
  url?: string;
  message: string;
}

/** the most of a page's description kept */
export const MAX_DESCRIPTION = 300;

const CONTACT_WORDS = /\b(contact|kontakt|impressum|imprint|about|about-us|ueber-uns|über uns|uber-uns|team)\b/i;

/** the social profiles kept, by host; share and intent links are not profiles */
const SOCIAL: Array<{ host: RegExp; path?: RegExp }> = [
  { host: /(^|\.)linkedin\.com$/, path: /^\/(company|school|showcase)\/[^/]+/ },
  { host: /(^|\.)(x|twitter)\.com$/, path: /^\/(?!intent\/|share|home|search)[A-Za-z0-9_]{1,15}\/?$/ },
  { host: /(^|\.)github\.com$/, path: /^\/[A-Za-z0-9-]+\/?$/ },
  { host: /(^|\.)facebook\.com$/, path: /^\/(?!sharer|share|dialog|plugins)[^/]+\/?$/ },
  { host: /(^|\.)instagram\.com$/, path: /^\/[A-Za-z0-9_.]+\/?$/ },
  { host: /(^|\.)youtube\.com$/, path: /^\/(@|c\/|channel\/|user\/)[^/]+/ },
];

const EMAIL_IN_TEXT =
  /[a-z0-9][a-z0-9._%+-]{0,63}@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+/gi;

/** known technologies: a marker in the HTML, a script URL, or the generator meta tag */
const TECH: Array<{ name: string; html?: RegExp; script?: RegExp; generator?: RegExp }> = [
  { name: 'WordPress', html: /\/wp-(content|includes)\//i, generator: /wordpress/i },
  { name: 'Shopify', html: /cdn\.shopify\.com|Shopify\.theme/i, script: /cdn\.shopify\.com/i },
  { name: 'Wix', html: /static\.wixstatic\.com|wix-code/i, generator: /wix\.com/i },
  { name: 'Squarespace', html: /static1?\.squarespace\.com/i, generator: /squarespace/i },
  { name: 'Webflow', html: /data-wf-(page|site)/i, generator: /webflow/i, script: /webflow/i },
  { name: 'Drupal', html: /\/sites\/default\/files\//i, generator: /drupal/i },
  { name: 'Joomla', generator: /joomla/i },
  { name: 'TYPO3', html: /typo3(conf|temp)\//i, generator: /typo3/i },
  { name: 'Ghost', generator: /ghost/i },
  { name: 'Hugo', generator: /hugo/i },
  { name: 'Next.js', html: /__NEXT_DATA__|\/_next\/static\//i, script: /\/_next\//i, generator: /next\.js/i },
  { name: 'Nuxt', html: /__NUXT__|\/_nuxt\//i, script: /\/_nuxt\//i },
  {
    name: 'React',
    html: /data-reactroot|__NEXT_DATA__|react-dom/i,
    script: /react(-dom)?(\.production)?(\.min)?\.js/i,
  },
  { name: 'Vue', html: /data-v-[0-9a-f]{6,}|__NUXT__|\bv-cloak\b/i, script: /vue(\.runtime)?(\.global)?(\.min)?\.js/i },
  { name: 'Angular', html: /\bng-version=|\bng-app\b/i, script: /angular(\.min)?\.js/i },
  { name: 'jQuery', script: /jquery[.-]?(\d|min|\.js)/i },
  { name: 'Bootstrap', script: /bootstrap(\.bundle)?(\.min)?\.js/i, html: /bootstrap(\.min)?\.css/i },
  {
    name: 'Google Analytics',
    html: /google-analytics\.com\/(analytics|ga)\.js|gtag\(\s*['"]config['"]\s*,\s*['"](G|UA)-/i,
    script: /googletagmanager\.com\/gtag\/js|google-analytics\.com/i,
  },
  {
    name: 'Google Tag Manager',
    html: /googletagmanager\.com\/gtm\.js|GTM-[A-Z0-9]{4,}/i,
    script: /googletagmanager\.com\/gtm\.js/i,
  },
  {
    name: 'HubSpot',
    html: /js\.hs-scripts\.com|js\.hsforms\.net/i,
    script: /js\.hs-(scripts|analytics)\.(com|net)|hsforms/i,
  },
  { name: 'Salesforce', html: /force\.com|salesforce\.com\/|pardot\.com/i, script: /salesforce|pardot|force\.com/i },
  { name: 'Marketo', script: /munchkin\.marketo\.net|mktoForms/i },
  { name: 'Stripe', script: /js\.stripe\.com/i },
  { name: 'Intercom', html: /widget\.intercom\.io|intercomSettings/i, script: /intercom(cdn)?\.(io|com)/i },
  { name: 'Zendesk', script: /static\.zdassets\.com|zendesk/i },
  { name: 'Hotjar', html: /static\.hotjar\.com/i, script: /hotjar/i },
  { name: 'Matomo', html: /matomo\.js|piwik\.js/i, script: /matomo|piwik/i },
  { name: 'Cloudflare', html: /cdnjs\.cloudflare\.com|\/cdn-cgi\//i, script: /cdnjs\.cloudflare\.com|\/cdn-cgi\//i },
];

/** the technologies a page shows (its generator meta tag, script URLs, known markers in the HTML), sorted, once each */
export function detectTechnologies(html: string, page: HtmlPage): string[] {
  const generator = page.meta.generator ?? '';
  const scripts = page.scripts.join('\n');
  const head = html.length > 2_000_000 ? html.slice(0, 2_000_000) : html;
  const found = new Set<string>();
  for (const t of TECH) {
    if (
      (t.generator && generator && t.generator.test(generator)) ||
      (t.script && scripts && t.script.test(scripts)) ||
      (t.html && t.html.test(head))
    )
      found.add(t.name);
  }
  return [...found].sort();
}

const hostOf = (url: string): string | undefined => {
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return undefined;
  }
};

/** the description: meta description, else the first paragraph of some length, cut at MAX_DESCRIPTION */
function describe(page: HtmlPage): string | undefined {
  const meta = page.description.replace(/\s+/g, ' ').trim();
  const para =
    page.text
      .split(/\n\s*\n/)
      .map((p) => p.replace(/\s+/g, ' ').trim())
      .find((p) => p.length >= 40) ?? '';
  const d = meta || para;
  if (!d) return undefined;
  return d.length <= MAX_DESCRIPTION ? d : `${d.slice(0, MAX_DESCRIPTION - 1).replace(/\s+\S*$/, '')}…`;
}

function socialOf(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  const host = u.hostname.toLowerCase();
  for (const s of SOCIAL) {
    if (!s.host.test(host)) continue;
    if (s.path && !s.path.test(u.pathname)) return undefined;
    return `https://${host.replace(/^(www|m|mobile)\./, '')}${u.pathname.replace(/\/$/, '')}`;
  }
  return undefined;
}

interface Found {
  url: string;
  description?: string;
  emails: string[];
  phones: string[];
  social: string[];
  technologies: string[];
}

const safeDecode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

function readPage(html: string, url: string): { page: HtmlPage; found: Found } {
  const page = readHtml(html, url);
  const emails = new Set<string>();
  const phones: string[] = [];
  const social = new Set<string>();
  for (const l of page.links) {
    if (/^mailto:/i.test(l.url)) {
      const e = normalizeEmail(l.url);
      if (e) emails.add(e);
    } else if (/^tel:/i.test(l.url)) {
      // the number as the page writes it when the link's text is the same number (`+49 30 1234567`)
      const href = cleanPhone(safeDecode(l.url));
      const text = cleanPhone(l.text);
      const digits = (v: string) => v.replace(/[^\d+]/g, '');
      const p = href && text && digits(text) === digits(href) ? text : href;
      if (p) phones.push(p);
    } else {
      const s = socialOf(l.url);
      if (s) social.add(s);
    }
  }
  for (const m of page.text.matchAll(EMAIL_IN_TEXT)) {
    const e = normalizeEmail(m[0]);
    if (e) emails.add(e);
  }
  return {
    page,
    found: {
      url,
      description: describe(page),
      emails: [...emails],
      phones,
      social: [...social],
      technologies: detectTechnologies(html, page),
    },
  };
}

function errorOf(err: unknown, url?: string): EnrichError {
  if (err instanceof WebError) return { kind: err.kind, url: err.url || url, message: err.message };
  const e = err as Error & { code?: string };
  return { kind: e.code === 'CAPABILITY_DENIED' ? 'denied' : 'error', url, message: e.message ?? String(err) };
}

/** the company's own addresses (its domain or a subdomain) first; the others only when it has none */
function companyFirst(emails: Array<{ email: string; url: string }>, domain: string) {
  const own = emails.filter(({ email }) => {
    const d = email.slice(email.indexOf('@') + 1);
    return d === domain || d.endsWith(`.${domain}`);
  });
  return own.length ? own : emails;
}

/** a lead's profile from its own site and its MX records (see the file's comment) */
/**
 * the home page: the website as given, else (it failed: a `www.` name that does not answer, a dead path) the bare
 * domain on the same scheme and port; the first failure is the one reported when both fail
 */
async function homePage(env: EnrichEnv, home: string, domain: string): Promise<FetchedPage> {
  const accept = 'text/html,application/xhtml+xml';
  try {
    return await env.fetcher.get(home, { accept });
  } catch (err) {
    let bare: URL;
    try {
      bare = new URL(home);
    } catch {
      throw err;
    }
    if (bare.hostname === domain && bare.pathname === '/') throw err;
    bare.hostname = domain;
    bare.pathname = '/';
    bare.search = '';
    bare.hash = '';
    try {
      return await env.fetcher.get(bare.href, { accept });
    } catch {
      throw err;
    }
  }
}

export async function enrich(lead: Lead, env: EnrichEnv): Promise<{ lead: Lead; errors: EnrichError[] }> {
  const errors: EnrichError[] = [];
  if (!lead.domain) return { lead, errors };
  const domain = lead.domain;
  const at = env.now();
  const out: Lead = {
    ...lead,
    emails: [...lead.emails],
    phones: [...lead.phones],
    social: [...lead.social],
    technologies: [...lead.technologies],
    mx: [...lead.mx],
  };
  const home = lead.website?.value ?? `https://${domain}/`;
  const pages: Found[] = [];
  try {
    const got = await homePage(env, home, domain);
    const finalUrl = got.finalUrl || home;
    const { page, found } = readPage(got.text, finalUrl);
    pages.push(found);
    const host = hostOf(finalUrl);
    const contact = page.links.find((l) => {
      if (!/^https?:/i.test(l.url) || hostOf(l.url) !== host) return false;
      const path = new URL(l.url).pathname;
      if (path === new URL(finalUrl).pathname) return false;
      return CONTACT_WORDS.test(l.text) || CONTACT_WORDS.test(path.replace(/[/_.]/g, ' '));
    });
    if (contact) {
      const url = contact.url.split('#')[0]!;
      try {
        const c = await env.fetcher.get(url, { accept: 'text/html,application/xhtml+xml' });
        pages.push(readPage(c.text, c.finalUrl || url).found);
      } catch (err) {
        errors.push(errorOf(err, url));
      }
    }
  } catch (err) {
    errors.push(errorOf(err, home));
  }

  if (pages.length) {
    const desc = pages.find((p) => p.description);
    if (!out.description?.value && desc?.description)
      out.description = { value: desc.description, source: desc.url, at };
    const emails = companyFirst(
      pages.flatMap((p) => p.emails.map((email) => ({ email, url: p.url }))),
      domain,
    );
    out.emails = unionSourced(
      out.emails,
      emails.map(({ email, url }) => ({ value: email, source: url, at })),
      MAX_CONTACTS,
    );
    out.phones = unionSourced(
      out.phones,
      pages.flatMap((p) => p.phones.map((value) => ({ value, source: p.url, at }))),
      MAX_CONTACTS,
      (v) => v.replace(/[^\d+]/g, ''),
    );
    const once = (list: Sourced[]): Sourced[] => unionSourced([], list, 50, (v) => v.toLowerCase());
    out.social = once(pages.flatMap((p) => p.social.map((value) => ({ value, source: p.url, at }))));
    out.technologies = once(pages.flatMap((p) => p.technologies.map((value) => ({ value, source: p.url, at }))));
  }

  try {
    const mx = await env.mx(domain);
    out.mx = [...mx]
      .filter((r) => r && typeof r.exchange === 'string' && r.exchange)
      .sort((a, b) => a.priority - b.priority)
      .slice(0, 10)
      .map((r) => ({ value: r.exchange.toLowerCase().replace(/\.$/, ''), source: `dns:MX ${domain}`, at }));
  } catch (err) {
    errors.push({ kind: 'dns', url: `dns:MX ${domain}`, message: (err as Error).message ?? String(err) });
  }

  out.enrichedAt = at;
  out.version = leadVersion(out);
  return { lead: out, errors };
}
