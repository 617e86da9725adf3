/**
 * Markdown to each platform's dialect, and splitting a long message into parts a platform takes.
 *
 * Messages are written in a CommonMark subset (the notify tool, rules' templates, the CLI): **bold** / __bold__,
 * *italic* / _italic_, `code`, ``` fenced blocks ```, [text](url), <https://autolinks>, # headings, - / * / 1. lists,
 * backslash escapes. Anything else is text. The renderers work line by line, so a message keeps its line breaks in
 * every dialect:
 *
 *   plain          markup stripped, links as `text (url)`, list items as `• item`
 *   markdown       as written
 *   html           escaped HTML: <b> <i> <code> <pre> <a href>, headings as <b>, list items as `• item`, lines joined
 *                  with <br> (e-mail bodies, Matrix formatted_body)
 *   telegram-html  Telegram's HTML subset: b i code pre a only, & < > escaped, lines joined with \n
 *   slack          mrkdwn: *bold* _italic_ `code` ```pre``` <url|text>, & < > escaped
 *   discord        Markdown, with @everyone / @here neutralised (a zero-width space after the @)
 *
 * A link is only a link when its URL is http(s), mailto or tel; any other (javascript:, data:) stays text. Text
 * from a person or a sensor can therefore never reach an HTML dialect as markup.
 *
 * splitText cuts plain text; splitRendered cuts the Markdown so that each part, once rendered, fits a platform's
 * limit (a fenced block cut in two is closed and reopened, so each part renders on its own).
 */
import type { Dialect } from './channels/types.ts';

type Inline =
  | { t: 'text'; v: string }
  | { t: 'b'; c: Inline[] }
  | { t: 'i'; c: Inline[] }
  | { t: 'code'; v: string }
  | { t: 'a'; c: Inline[]; href: string };

type Block =
  | { t: 'pre'; lang: string; lines: string[] }
  | { t: 'h'; c: Inline[] }
  | { t: 'li'; indent: string; marker: string; c: Inline[] }
  | { t: 'line'; c: Inline[] }
  | { t: 'blank' };

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const BULLET = /^(\s*)([-*+])\s+(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})([.)])\s+(.*)$/;
const SAFE_HREF = /^(https?:\/\/|mailto:|tel:)/i;

/** `md` (CommonMark subset: **bold**, *italic*, `code`, ``` blocks, [text](url), # headings, - lists) in `dialect` */
export function render(md: string, dialect: Dialect): string {
  if (dialect === 'markdown') return md;
  if (dialect === 'discord') return neutraliseMentions(md);
  let out = '';
  let prev: Block | undefined;
  for (const b of blocks(md)) {
    // HTML: a <br> ends each line, except after a <pre> (a block of its own: a <br> there would add an empty line)
    if (prev) out += dialect === 'html' && prev.t !== 'pre' ? '<br>\n' : '\n';
    out += renderBlock(b, dialect);
    prev = b;
  }
  return out;
}

/** `text` in parts of at most `max` characters, cut at a paragraph, then a line, then a space, then anywhere */
export function splitText(text: string, max: number): string[] {
  if (!(max >= 1)) throw new RangeError(`splitText: max must be 1 or more, not ${max}`);
  if (text.length <= max) return [text];
  const parts: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let cut = rest.lastIndexOf('\n\n', max);
    if (cut < max / 2) cut = rest.lastIndexOf('\n', max);
    if (cut < max / 2) cut = rest.lastIndexOf(' ', max);
    if (cut < max / 2) cut = max;
    // never between the two halves of a surrogate pair (an emoji would become two broken characters)
    if (cut > 1 && isHighSurrogate(rest.charCodeAt(cut - 1))) cut--;
    const part = rest.slice(0, cut).trimEnd();
    if (part !== '') parts.push(part);
    rest = rest.slice(cut).replace(/^\s+/, '');
  }
  if (rest !== '') parts.push(rest);
  return parts;
}

/**
 * `md` in parts whose rendering in `dialect` is at most `max` characters each, rendered: cut between lines (a blank
 * line preferred), a line too long on its own at a space, a word too long at a character. A fenced block cut in two
 * is closed at the end of one part and reopened at the start of the next.
 */
export function splitRendered(md: string, dialect: Dialect, max: number): string[] {
  if (!(max >= 1)) throw new RangeError(`splitRendered: max must be 1 or more, not ${max}`);
  const whole = render(md, dialect);
  if (whole.length <= max) return [whole];
  const lines = sourceLines(md);
  const parts: string[] = [];
  const fits = (ls: SrcLine[]): string | undefined => {
    const r = render(partSource(ls), dialect).trim();
    return r.length <= max ? r : undefined;
  };
  let cur: SrcLine[] = [];
  let curOut = '';
  // the last blank line in `cur`: a part preferably ends at a paragraph
  let lastBlank = -1;
  const flush = (upTo = cur.length): void => {
    const take = trimBlank(cur.slice(0, upTo));
    if (take.length > 0) parts.push(fits(take) ?? curOut);
    cur = cur.slice(upTo);
    lastBlank = -1;
    curOut = '';
    if (cur.length > 0) curOut = fits(cur) ?? '';
  };
  for (const line of lines) {
    const next = [...cur, line];
    const r = fits(next);
    if (r !== undefined) {
      cur = next;
      curOut = r;
      if (line.text.trim() === '' && !line.fence) lastBlank = cur.length - 1;
      continue;
    }
    // does not fit: end the part (at its last paragraph break when that leaves a part at least half full)
    if (cur.length > 0) {
      if (lastBlank > 0 && render(partSource(cur.slice(0, lastBlank)), dialect).length >= max / 2) flush(lastBlank + 1);
      else flush();
      const again = [...cur, line];
      const r2 = fits(again);
      if (r2 !== undefined) {
        cur = again;
        curOut = r2;
        continue;
      }
      if (cur.length > 0) flush();
    }
    // the line alone is too long: cut it into pieces that fit, the last one starts the next part
    const pieces = cutLine(line, dialect, max);
    for (const p of pieces.slice(0, -1)) parts.push(fits([p])!);
    cur = [pieces.at(-1)!];
    curOut = fits(cur)!;
  }
  if (trimBlank(cur).length > 0) parts.push(fits(trimBlank(cur)) ?? curOut);
  return parts.filter((p) => p !== '');
}

// ---- splitting ----

interface SrcLine {
  text: string;
  /** the fence that opened the block this line is in (its opener and closer included) */
  fence?: { open: string; close: string };
  /** this line opens / closes its fence */
  opens?: boolean;
  closes?: boolean;
}

function sourceLines(md: string): SrcLine[] {
  const out: SrcLine[] = [];
  let fence: SrcLine['fence'];
  for (const text of md.replace(/\r\n?/g, '\n').split('\n')) {
    if (!fence) {
      const m = FENCE.exec(text);
      if (m) {
        fence = { open: text, close: m[1]! };
        out.push({ text, fence, opens: true });
        continue;
      }
      out.push({ text });
    } else if (text.trim().startsWith(fence.close) && text.trim().replace(/[`~]/g, '') === '') {
      out.push({ text, fence, closes: true });
      fence = undefined;
    } else out.push({ text, fence });
  }
  return out;
}

/** the Markdown of some lines, a fence they start or end inside of reopened / closed */
function partSource(ls: SrcLine[]): string {
  const text = ls.map((l) => l.text);
  const first = ls[0];
  const last = ls.at(-1);
  if (first?.fence && !first.opens) text.unshift(first.fence.open);
  if (last?.fence && !last.closes) text.push(last.fence.close);
  return text.join('\n');
}

function trimBlank(ls: SrcLine[]): SrcLine[] {
  let a = 0;
  let b = ls.length;
  while (a < b && !ls[a]!.fence && ls[a]!.text.trim() === '') a++;
  while (b > a && !ls[b - 1]!.fence && ls[b - 1]!.text.trim() === '') b--;
  return ls.slice(a, b);
}

/** one source line too long for `max` once rendered, as pieces that each fit (at spaces, else anywhere) */
function cutLine(line: SrcLine, dialect: Dialect, max: number): SrcLine[] {
  const pieces: SrcLine[] = [];
  let rest = line.text;
  const ok = (s: string): boolean => render(partSource([{ ...line, text: s }]), dialect).trim().length <= max;
  while (rest !== '') {
    if (ok(rest)) {
      pieces.push({ ...line, text: rest });
      break;
    }
    // the longest prefix that fits (rendering only grows with the prefix, so a binary search finds it)
    let lo = 1;
    let hi = rest.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (ok(rest.slice(0, mid))) lo = mid;
      else hi = mid - 1;
    }
    let cut = lo;
    const space = rest.lastIndexOf(' ', cut);
    if (space >= cut / 2) cut = space;
    if (cut > 1 && isHighSurrogate(rest.charCodeAt(cut - 1))) cut--;
    if (cut < 1) cut = 1;
    const piece = rest.slice(0, cut).trimEnd();
    if (piece !== '') pieces.push({ ...line, text: piece });
    rest = rest.slice(cut).replace(/^ +/, '');
  }
  if (pieces.length === 0) pieces.push({ ...line, text: '' });
  return pieces;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

// ---- parsing ----

function blocks(md: string): Block[] {
  const out: Block[] = [];
  let pre: Extract<Block, { t: 'pre' }> | undefined;
  let close = '';
  for (const line of md.replace(/\r\n?/g, '\n').split('\n')) {
    if (pre) {
      if (line.trim().startsWith(close) && line.trim().replace(/[`~]/g, '') === '') {
        out.push(pre);
        pre = undefined;
      } else pre.lines.push(line);
      continue;
    }
    const f = FENCE.exec(line);
    if (f) {
      pre = { t: 'pre', lang: f[2] ?? '', lines: [] };
      close = f[1]!;
      continue;
    }
    if (line.trim() === '') {
      out.push({ t: 'blank' });
      continue;
    }
    const h = HEADING.exec(line);
    if (h) {
      out.push({ t: 'h', c: inline(h[2] ?? '') });
      continue;
    }
    const b = BULLET.exec(line);
    if (b && !/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      out.push({ t: 'li', indent: b[1]!, marker: '•', c: inline(b[3]!) });
      continue;
    }
    const o = ORDERED.exec(line);
    if (o) {
      out.push({ t: 'li', indent: o[1]!, marker: `${o[2]}${o[3]}`, c: inline(o[4]!) });
      continue;
    }
    out.push({ t: 'line', c: inline(line) });
  }
  // an unclosed fence runs to the end (as CommonMark has it)
  if (pre) out.push(pre);
  return out;
}

const PUNCT = /[!-/:-@[-`{-~]/;

/** the inline markup of one line */
function inline(s: string): Inline[] {
  const out: Inline[] = [];
  let text = '';
  const push = (n: Inline): void => {
    if (text !== '') out.push({ t: 'text', v: text });
    text = '';
    out.push(n);
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length && PUNCT.test(s[i + 1]!)) {
      text += s[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      let n = 1;
      while (s[i + n] === '`') n++;
      const ticks = '`'.repeat(n);
      let j = s.indexOf(ticks, i + n);
      while (j >= 0 && s[j + n] === '`') j = s.indexOf(ticks, j + n + 1);
      if (j > i + n - 1) {
        let v = s.slice(i + n, j);
        if (v.length > 1 && v.startsWith(' ') && v.endsWith(' ') && v.trim() !== '') v = v.slice(1, -1);
        push({ t: 'code', v });
        i = j + n;
        continue;
      }
      text += ticks;
      i += n;
      continue;
    }
    if ((c === '*' || c === '_') && s[i + 1] === c) {
      const j = closing(s, i, c + c);
      if (j > 0) {
        push({ t: 'b', c: inline(s.slice(i + 2, j)) });
        i = j + 2;
        continue;
      }
    }
    if (c === '*' || c === '_') {
      const j = closing(s, i, c);
      if (j > 0) {
        push({ t: 'i', c: inline(s.slice(i + 1, j)) });
        i = j + 1;
        continue;
      }
    }
    if (c === '[') {
      const link = linkAt(s, i);
      if (link) {
        push({ t: 'a', c: inline(link.text), href: link.href });
        i = link.end;
        continue;
      }
    }
    if (c === '<') {
      const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(s.slice(i));
      if (m) {
        push({ t: 'a', c: [{ t: 'text', v: m[1]! }], href: m[1]! });
        i += m[0].length;
        continue;
      }
    }
    text += c;
    i++;
  }
  if (text !== '') out.push({ t: 'text', v: text });
  return out;
}

/** the index of the delimiter closing the one at `i`, or -1 (emphasis needs text right inside its delimiters) */
function closing(s: string, i: number, d: string): number {
  const after = s[i + d.length];
  if (after === undefined || /\s/.test(after)) return -1;
  // `_` inside a word (snake_case) is not emphasis
  if (d[0] === '_' && i > 0 && /[\p{L}\p{N}]/u.test(s[i - 1]!)) return -1;
  let j = i + d.length + 1;
  while ((j = s.indexOf(d, j)) >= 0) {
    const before = s[j - 1]!;
    const next = s[j + d.length];
    const ok =
      !/\s/.test(before) &&
      before !== '\\' &&
      // a single delimiter is not half of a double one
      (d.length === 2 || (next !== d[0] && before !== d[0])) &&
      !(d[0] === '_' && next !== undefined && /[\p{L}\p{N}]/u.test(next));
    if (ok) return j;
    j++;
  }
  return -1;
}

function linkAt(s: string, i: number): { text: string; href: string; end: number } | undefined {
  let depth = 0;
  let j = i;
  for (; j < s.length; j++) {
    if (s[j] === '\\') {
      j++;
      continue;
    }
    if (s[j] === '[') depth++;
    else if (s[j] === ']' && --depth === 0) break;
  }
  if (j >= s.length || s[j + 1] !== '(') return undefined;
  let k = j + 2;
  let parens = 1;
  for (; k < s.length; k++) {
    if (s[k] === '(') parens++;
    else if (s[k] === ')' && --parens === 0) break;
  }
  if (k >= s.length) return undefined;
  let href = s.slice(j + 2, k).trim();
  // an optional title: [text](url "title")
  const t = /^(\S+)\s+(["'(]).*$/.exec(href);
  if (t) href = t[1]!;
  if (href.startsWith('<') && href.endsWith('>')) href = href.slice(1, -1);
  if (href === '') return undefined;
  return { text: s.slice(i + 1, j), href, end: k + 1 };
}

// ---- rendering ----

function renderBlock(b: Block, d: Dialect): string {
  switch (b.t) {
    case 'blank':
      return '';
    case 'pre': {
      const body = b.lines.join('\n');
      if (d === 'plain') return body;
      if (d === 'slack') return '```\n' + esc(body, d) + '\n```';
      return `<pre>${esc(body, d)}</pre>`;
    }
    case 'h': {
      const inner = inlines(b.c, d);
      if (d === 'plain' || inner === '') return inner;
      if (d === 'slack') return `*${inlines(b.c, 'plain-slack')}*`;
      return `<b>${inner}</b>`;
    }
    case 'li': {
      const indent = d === 'html' ? '&nbsp;'.repeat(b.indent.replace(/\t/g, '  ').length) : b.indent;
      return `${indent}${b.marker} ${inlines(b.c, d)}`;
    }
    case 'line':
      return inlines(b.c, d);
  }
}

/** 'plain-slack': the plain text of a Slack link's label or heading (mrkdwn does not nest there), escaped */
type RenderMode = Dialect | 'plain-slack';

function inlines(ns: Inline[], d: RenderMode): string {
  return ns.map((n) => renderInline(n, d)).join('');
}

function renderInline(n: Inline, d: RenderMode): string {
  switch (n.t) {
    case 'text':
      return esc(n.v, d);
    case 'code':
      if (d === 'plain' || d === 'plain-slack') return esc(n.v, d);
      if (d === 'slack') return '`' + esc(n.v, d) + '`';
      return `<code>${esc(n.v, d)}</code>`;
    case 'b':
      if (d === 'plain' || d === 'plain-slack') return inlines(n.c, d);
      if (d === 'slack') return `*${inlines(n.c, d)}*`;
      return `<b>${inlines(n.c, d)}</b>`;
    case 'i':
      if (d === 'plain' || d === 'plain-slack') return inlines(n.c, d);
      if (d === 'slack') return `_${inlines(n.c, d)}_`;
      return `<i>${inlines(n.c, d)}</i>`;
    case 'a': {
      const label = inlines(n.c, d === 'slack' ? 'plain-slack' : d);
      const labelText = inlines(n.c, 'plain');
      const safe = SAFE_HREF.test(n.href);
      if (d === 'plain' || d === 'plain-slack' || !safe) {
        return labelText === n.href || labelText === '' ? esc(n.href, d) : `${label} (${esc(n.href, d)})`;
      }
      if (d === 'slack') {
        const url = n.href.replace(/[|<> ]/g, (ch) => encodeURIComponent(ch)).replace(/&/g, '&amp;');
        return labelText === n.href ? `<${url}>` : `<${url}|${label}>`;
      }
      return `<a href="${escAttr(n.href)}">${label}</a>`;
    }
  }
}

function esc(s: string, d: RenderMode): string {
  if (d === 'plain' || d === 'markdown' || d === 'discord') return s;
  return s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

function escAttr(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": '#39' }[c]};`);
}

/** @everyone / @here (and their full-width look-alikes' plain forms) made inert with a zero-width space */
function neutraliseMentions(s: string): string {
  return s.replace(/@(everyone|here)\b/gi, '@\u200b$1');
}
