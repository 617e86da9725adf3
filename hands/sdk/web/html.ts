/**
 * HTML pages read with linkedom (the DOM the kernel's web.read uses too): readHtml gives a page's title, description,
 * readable text, absolute links, meta tags, feeds, scripts, canonical URL and language; selectList / selectOne read
 * lists and single values with CSS selectors (the Lead Generation Hand's directories). URLs are made absolute against
 * the page's <base href> or its own URL. Links, meta, feeds and scripts are read from the whole page (a footer's
 * contact address and social links count); the text leaves out scripts, styles, navigation, header and footer.
 * Broken HTML is read as a browser would, as far as linkedom goes; the bulk that is never read (script and style
 * bodies, SVG, comments) is cut out before parsing, and past MAX_DOM_CHARS the rest of a page is read without a DOM
 * (its text and links for readHtml; selectList and selectOne see the first MAX_DOM_CHARS only).
 */
import { parseHTML } from 'linkedom';
import { WebError } from './fetcher.ts';
import { decodeEntities, htmlToText } from './text.ts';
import type { HtmlPage, ListSelectors } from './types.ts';

/** elements whose text is never part of what a page says */
const NOISE =
  'script, style, noscript, template, svg, nav, header, footer, iframe, object, embed, canvas, button, select';
const BLOCKS = new Set(
  (
    'ADDRESS ARTICLE ASIDE BLOCKQUOTE DD DIV DL DT FIGCAPTION FIGURE FOOTER FORM H1 H2 H3 H4 H5 H6 HEADER HR LI MAIN ' +
    'OL P PRE SECTION TABLE TR UL BODY'
  ).split(' '),
);
/** the most links, scripts and list rows read from one page */
const MAX_LINKS = 5000;
const MAX_SCRIPTS = 500;
const MAX_ROWS = 10_000;
const MAX_TITLE = 500;
const MAX_META = 2000;

/** the little of linkedom's DOM used here (this project compiles without the DOM lib) */
interface DomNode {
  nodeType: number;
  nodeName: string;
  textContent: string | null;
  childNodes: ArrayLike<DomNode>;
}
interface DomElement extends DomNode {
  getAttribute(name: string): string | null;
  hasAttribute(name: string): boolean;
  remove(): void;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement>;
}
interface DomDocument {
  title?: string;
  body: DomElement | null;
  documentElement: DomElement | null;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement>;
}

/** what is never read, cut before parsing: script and style bodies (the tags stay, for <script src>), SVG, comments */
function lighten(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<(script|style)\b([^>]*)>[\s\S]*?<\/\1\s*>/gi, '<$1$2></$1>')
    .replace(/<svg\b[\s\S]*?<\/svg\s*>/gi, '');
}

/**
 * the most of a page's (lightened) HTML put in a DOM: linkedom takes about 1.5 s per MiB on a laptop core, several
 * on a Pi. Past it, the rest is read without a DOM: its text (./text.ts htmlToText) and its <a href> links.
 */
export const MAX_DOM_CHARS = 2 * 1024 * 1024;

function parse(html: string): { doc: DomDocument; rest: string } {
  let src = lighten(html);
  let rest = '';
  if (src.length > MAX_DOM_CHARS) {
    const cut = src.lastIndexOf('<', MAX_DOM_CHARS);
    const at = cut > MAX_DOM_CHARS / 2 ? cut : MAX_DOM_CHARS;
    rest = src.slice(at);
    src = src.slice(0, at);
  }
  // linkedom needs an <html> root to make document.documentElement and body for a fragment
  const doc = parseHTML(/<html[\s>]/i.test(src) ? src : `<!doctype html><html><head></head><body>${src}</body></html>`)
    .document as unknown as DomDocument;
  return { doc, rest };
}

/** the <a href> links of HTML not put in a DOM, with their text */
function* restLinks(rest: string): Generator<{ href: string; text: string }> {
  const re = /<a\s[^>]*?href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>([\s\S]{0,2000}?)<\/a\s*>/gi;
  for (const m of rest.matchAll(re))
    yield { href: decodeEntities(m[1] ?? m[2] ?? m[3] ?? ''), text: htmlToText(m[4] ?? '') };
}

function baseOf(doc: DomDocument, pageUrl: string): string {
  const href = doc.querySelector('base[href]')?.getAttribute('href');
  if (href) {
    try {
      const b = new URL(href.trim(), pageUrl);
      if (b.protocol === 'http:' || b.protocol === 'https:') return b.href;
    } catch {
      /* the page's own URL */
    }
  }
  return pageUrl;
}

/** `v` absolute against `base`; undefined when it cannot be, or is not http(s) (mailto/tel too when `contact`) */
function absolute(v: string | null | undefined, base: string, contact = false): string | undefined {
  if (!v) return undefined;
  const s = v.trim();
  if (!s || /^(javascript|data|vbscript):/i.test(s)) return undefined;
  try {
    const u = new URL(s, base);
    if (
      u.protocol === 'http:' ||
      u.protocol === 'https:' ||
      (contact && (u.protocol === 'mailto:' || u.protocol === 'tel:'))
    )
      return u.href;
  } catch {
    /* not a URL */
  }
  return undefined;
}

const oneLine = (s: string | null | undefined, max = Infinity): string => {
  const t = (s ?? '').replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

/** a page's HTML, read: title, description, text, links, meta, feeds, scripts, canonical, lang */
export function readHtml(html: string, baseUrl: string): HtmlPage {
  const { doc, rest } = parse(html);
  const base = baseOf(doc, baseUrl);
  const meta: Record<string, string> = {};
  const metas = doc.querySelectorAll('meta[content]');
  for (let i = 0; i < metas.length && i < MAX_META; i++) {
    const el = metas[i]!;
    const name = (el.getAttribute('name') ?? el.getAttribute('property') ?? el.getAttribute('itemprop') ?? '')
      .trim()
      .toLowerCase();
    if (name && !(name in meta)) meta[name] = oneLine(el.getAttribute('content'), 2000);
  }
  const links: HtmlPage['links'] = [];
  const byUrl = new Map<string, number>();
  const anchors = doc.querySelectorAll('a[href], area[href]');
  const addLink = (href: string | null, linkText: string): void => {
    const url = absolute(href, base, true);
    if (!url) return;
    const text = oneLine(linkText, 300);
    const at = byUrl.get(url);
    if (at !== undefined) {
      if (!links[at]!.text && text) links[at]!.text = text;
      return;
    }
    byUrl.set(url, links.length);
    links.push({ url, text });
  };
  for (let i = 0; i < anchors.length && links.length < MAX_LINKS; i++) {
    const el = anchors[i]!;
    addLink(el.getAttribute('href'), el.textContent || el.getAttribute('title') || el.getAttribute('aria-label') || '');
  }
  if (rest)
    for (const l of restLinks(rest)) {
      if (links.length >= MAX_LINKS) break;
      addLink(l.href, l.text);
    }
  const feeds: string[] = [];
  for (const el of Array.from(doc.querySelectorAll('link[href]'))) {
    const rel = (el.getAttribute('rel') ?? '').toLowerCase().split(/\s+/);
    const type = (el.getAttribute('type') ?? '').toLowerCase();
    if (!rel.includes('alternate') || !/rss|atom|feed\+json|rdf/.test(type)) continue;
    const url = absolute(el.getAttribute('href'), base);
    if (url && !feeds.includes(url)) feeds.push(url);
  }
  const scripts: string[] = [];
  for (const el of Array.from(doc.querySelectorAll('script[src]'))) {
    const url = absolute(el.getAttribute('src'), base);
    if (url && !scripts.includes(url)) scripts.push(url);
    if (scripts.length >= MAX_SCRIPTS) break;
  }
  const canonical = absolute(doc.querySelector('link[rel~="canonical"][href]')?.getAttribute('href'), base);
  const lang = oneLine(doc.documentElement?.getAttribute('lang'), 35) || undefined;
  const title =
    oneLine(doc.querySelector('title')?.textContent, MAX_TITLE) ||
    oneLine(meta['og:title'], MAX_TITLE) ||
    oneLine(doc.querySelector('h1')?.textContent, MAX_TITLE);
  const description = meta.description ?? meta['og:description'] ?? meta['twitter:description'] ?? '';
  const root = doc.body ?? doc.documentElement;
  let text = '';
  if (root) {
    for (const el of Array.from(root.querySelectorAll(NOISE))) el.remove();
    text = toText(root);
  }
  if (rest) text = `${text}\n\n${htmlToText(rest).replace(/\n+/g, '\n\n')}`.trim();
  return {
    title,
    description,
    text,
    ...(lang && { lang }),
    links,
    meta,
    feeds,
    scripts,
    ...(canonical && { canonical }),
  };
}

/** plain text: blocks separated by a blank line, <br> a line break, other whitespace collapsed */
function toText(root: DomNode): string {
  const out: string[] = [];
  const walk = (n: DomNode): void => {
    if (n.nodeType === 3) {
      out.push((n.textContent ?? '').replace(/\s+/g, ' '));
      return;
    }
    if (n.nodeType !== 1) return;
    const tag = n.nodeName.toUpperCase();
    if (tag === 'BR') {
      out.push('\n');
      return;
    }
    if (tag === 'PRE') {
      out.push('\n\n', n.textContent ?? '', '\n\n');
      return;
    }
    const block = BLOCKS.has(tag);
    if (block) out.push('\n\n');
    else if (tag === 'TD' || tag === 'TH') out.push(' ');
    const kids = n.childNodes;
    for (let i = 0; i < kids.length; i++) walk(kids[i]!);
    if (block) out.push('\n\n');
  };
  walk(root);
  return out
    .join('')
    .replace(/[ \t]*\n[ \t]*/g, '\n')
    .replace(/[ \t]{2,}/g, ' ')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** `css`, `css@attr` or `@attr` → the selector (empty: the element itself) and the attribute (none: the text) */
function splitField(spec: string): { css: string; attr?: string } {
  const s = spec.trim();
  const m = /^(.*?)\s*@([A-Za-z_:][\w:.-]*)$/.exec(s);
  if (m) return { css: m[1]!.trim(), attr: m[2]!.toLowerCase() };
  return { css: s };
}

function valueOf(el: DomElement, attr: string | undefined, base: string): string | undefined {
  if (!attr) {
    const t = oneLine(el.textContent);
    return t || undefined;
  }
  const v = el.getAttribute(attr);
  if (v === null) return undefined;
  if (attr === 'href' || attr === 'src' || attr === 'action' || attr === 'data-href')
    return absolute(v, base, true) ?? (oneLine(v) || undefined);
  return oneLine(v) || undefined;
}

function query(root: DomElement | DomDocument, css: string, all: true, where: string, url: string): DomElement[];
function query(root: DomElement | DomDocument, css: string, all: false, where: string, url: string): DomElement | null;
function query(
  root: DomElement | DomDocument,
  css: string,
  all: boolean,
  where: string,
  url: string,
): DomElement[] | DomElement | null {
  try {
    return all ? Array.from(root.querySelectorAll(css)) : root.querySelector(css);
  } catch (err) {
    throw new WebError(
      'parse',
      url,
      `${where}: ${JSON.stringify(css)} is not a CSS selector linkedom reads (${(err as Error).message}); ` +
        'write e.g. `.company a@href`',
    );
  }
}

/**
 * a list on a page: each `sel.item` match a row, each field a selector inside it — `css` (its text, collapsed),
 * `css@attr` (an attribute; href/src absolute) or `@attr` (the item's own attribute). A field with no match is left
 * out of its row; a row with no field at all is dropped.
 */
export function selectList(html: string, baseUrl: string, sel: ListSelectors): Array<Record<string, string>> {
  const { doc } = parse(html);
  const base = baseOf(doc, baseUrl);
  const items = query(doc, sel.item, true, 'item', baseUrl);
  const fields = Object.entries(sel.fields).map(([name, spec]) => ({ name, ...splitField(spec), spec }));
  const rows: Array<Record<string, string>> = [];
  for (const item of items) {
    if (rows.length >= MAX_ROWS) break;
    const row: Record<string, string> = {};
    for (const f of fields) {
      const el = f.css ? query(item, f.css, false, `fields.${f.name}`, baseUrl) : item;
      if (!el) continue;
      const v = valueOf(el, f.attr, base);
      if (v !== undefined) row[f.name] = v;
    }
    if (Object.keys(row).length > 0) rows.push(row);
  }
  return rows;
}

/** the first match's text, or `css@attr` attribute (URLs absolute); `@attr` alone reads the <html> element */
export function selectOne(html: string, baseUrl: string, selector: string): string | undefined {
  const { doc } = parse(html);
  const base = baseOf(doc, baseUrl);
  const { css, attr } = splitField(selector);
  const el = css ? query(doc, css, false, 'selector', baseUrl) : doc.documentElement;
  return el ? valueOf(el, attr, base) : undefined;
}
