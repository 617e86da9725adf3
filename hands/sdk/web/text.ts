/**
 * Text helpers of the web kit: a normal form of a document's text and a content hash over it (the same text with other
 * whitespace is the same document), the terms of a text for keyword ranking (lower case, diacritics folded, English
 * stop words out), the passage of a text that best answers some terms (a report's extract), and HTML as plain text
 * without a DOM (feed summaries: tags out, entities decoded). Pure functions, no I/O.
 */
import { createHash } from 'node:crypto';

/** whitespace collapsed to one space, trimmed, Unicode NFC */
export function normalizeText(text: string): string {
  return text.normalize('NFC').replace(/\s+/g, ' ').trim();
}

/** sha256 of normalizeText(text), hex, the first 32 characters */
export function contentHash(text: string): string {
  return createHash('sha256').update(normalizeText(text)).digest('hex').slice(0, 32);
}

/** a compact English stop-word list (articles, pronouns, auxiliaries, prepositions, conjunctions) */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    'a about above after again against all am an and any are aren as at be because been before being below between ' +
    'both but by can cannot could couldn did didn do does doesn doing don down during each few for from further had ' +
    'hadn has hasn have haven having he her here hers herself him himself his how if in into is isn it its itself ' +
    'just let ll me more most mustn my myself no nor not now of off on once only or other ought our ours ourselves ' +
    'out over own re same shan she should shouldn so some such than that the their theirs them themselves then there ' +
    'these they this those through to too under until up us ve very was wasn we were weren what when where which ' +
    'while who whom why will with won would wouldn you your yours yourself yourselves also may might must shall via'
  ).split(' '),
);

/** lower case, diacritics folded (é → e), NFKC otherwise */
function fold(s: string): string {
  return s
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase();
}

const WORD = /[\p{L}\p{N}]+/gu;

/** lower-case words of at least 2 characters, diacritics folded, English stop words removed, in order (repeats kept) */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const m of fold(text).matchAll(WORD)) {
    const w = m[0];
    if (w.length >= 2 && !STOP_WORDS.has(w)) out.push(w);
  }
  return out;
}

/**
 * the passage of `text` (whitespace collapsed) that holds the most of `queryTerms`, at most `maxChars` characters:
 * the best sentence and its neighbours; a sentence longer than that is cut around its first match. Without a match,
 * the text's beginning.
 */
export function bestExtract(text: string, queryTerms: string[], maxChars = 400): string {
  const max = Math.max(20, Math.floor(maxChars));
  const flat = normalizeText(text);
  if (flat.length <= max) return flat;
  const wanted = new Set(queryTerms.map((t) => fold(t).trim()).filter((t) => t.length > 0));
  const sentences = flat.split(/(?<=[.!?;:])\s+/).filter((s) => s.length > 0);
  let best = -1;
  let bestScore = 0;
  for (let i = 0; i < sentences.length; i++) {
    const seen = new Set<string>();
    let hits = 0;
    for (const m of fold(sentences[i]!).matchAll(WORD)) {
      if (wanted.has(m[0])) {
        seen.add(m[0]);
        hits++;
      }
    }
    const score = seen.size * 10 + Math.min(hits, 9);
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  }
  if (best < 0) return cut(flat, 0, max);
  const first = sentences[best]!;
  if (first.length > max) {
    const folded = fold(first);
    let pos = 0;
    for (const m of folded.matchAll(WORD)) {
      if (wanted.has(m[0])) {
        pos = m.index ?? 0;
        break;
      }
    }
    return cut(first, Math.max(0, pos - Math.floor(max / 3)), max);
  }
  // grow around the best sentence: the next ones first (they explain it), then the one before
  let from = best;
  let to = best;
  let len = first.length;
  for (;;) {
    const next = sentences[to + 1];
    if (next !== undefined && len + 1 + next.length <= max) {
      to++;
      len += 1 + next.length;
      continue;
    }
    const prev = sentences[from - 1];
    if (prev !== undefined && len + 1 + prev.length <= max) {
      from--;
      len += 1 + prev.length;
      continue;
    }
    break;
  }
  return sentences.slice(from, to + 1).join(' ');
}

/** at most `max` characters of `s` from `start`, cut at word boundaries, with … where something was left out */
function cut(s: string, start: number, max: number): string {
  let a = start;
  if (a > 0) {
    const sp = s.indexOf(' ', a);
    a = sp >= 0 && sp - a < 30 ? sp + 1 : a;
  }
  const lead = a > 0 ? '…' : '';
  let piece = s.slice(a, a + max - lead.length);
  if (a + piece.length < s.length) {
    piece = piece.slice(0, max - lead.length - 1);
    const sp = piece.lastIndexOf(' ');
    if (sp > piece.length * 0.6) piece = piece.slice(0, sp);
    return `${lead}${piece.trimEnd()}…`;
  }
  return `${lead}${piece}`;
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  ndash: '–',
  mdash: '—',
  hellip: '…',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  laquo: '«',
  raquo: '»',
  bull: '•',
  middot: '·',
  copy: '©',
  reg: '®',
  trade: '™',
  euro: '€',
  pound: '£',
  yen: '¥',
  cent: '¢',
  sect: '§',
  deg: '°',
  times: '×',
  divide: '÷',
  shy: '',
  zwj: '',
  zwnj: '',
  thinsp: ' ',
  ensp: ' ',
  emsp: ' ',
  auml: 'ä',
  ouml: 'ö',
  uuml: 'ü',
  Auml: 'Ä',
  Ouml: 'Ö',
  Uuml: 'Ü',
  szlig: 'ß',
  eacute: 'é',
  egrave: 'è',
  ecirc: 'ê',
  aacute: 'á',
  agrave: 'à',
  acirc: 'â',
  iacute: 'í',
  oacute: 'ó',
  uacute: 'ú',
  ccedil: 'ç',
  ntilde: 'ñ',
  Eacute: 'É',
  aring: 'å',
  oslash: 'ø',
  aelig: 'æ',
};

/** HTML entities decoded: the common named ones and every numeric one */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z][a-z0-9]*);/gi, (all, name: string) => {
    if (name[0] === '#') {
      const cp = name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
      return Number.isInteger(cp) && cp > 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff)
        ? String.fromCodePoint(cp)
        : '\uFFFD';
    }
    return ENTITIES[name] ?? ENTITIES[name.toLowerCase()] ?? all;
  });
}

const BLOCK_TAGS =
  /^(p|div|br|li|ul|ol|h[1-6]|tr|table|blockquote|pre|section|article|header|footer|aside|dd|dt|dl|figure|figcaption|hr)$/i;

/** HTML as plain text without a DOM: scripts and styles out, block tags as line breaks, entities decoded */
export function htmlToText(html: string): string {
  const text = html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|noscript|template|svg)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, '$1')
    .replace(/<\/?([a-z][a-z0-9]*)\b[^>]*>/gi, (_all, tag: string) => (BLOCK_TAGS.test(tag) ? '\n' : ''))
    .replace(/<[!?][^>]*>/g, '');
  return decodeEntities(text)
    .replace(/[ \t\f\v\r\u00a0]+/g, ' ')
    .replace(/ *\n[\n ]*/g, '\n')
    .trim();
}
