/**
 * Page change detection for the Web Automation Hand: what a watch compares, how a check's answer is judged, and the
 * little state a watch carries between checks. Pure: no browser and no clock here. The Hand (later) asks the kernel's
 * browser to read the page and hands the answer to `evaluate`, which says what happened; the Hand publishes the
 * events on the bus and stores the state.
 *
 * A watch (`parseWatch`, from the Hand's settings or `talon web watch add`):
 *
 *   { id, url,
 *     what: { text: SELECTOR? } | { json: '$.a.b[0].c' } | { attribute: { selector, name } } | { price: SELECTOR? }
 *           | { visual: SELECTOR? } | { visual: { selector?, tolerance? } },
 *     schedule?: cron, ignore?: [regex], minChange?: { chars?, percent? } (text, json, attribute) | { amount?, percent? }
 *     (price) | { percent? } (visual: the share of the grid's cells, default 1), confirm?: true, unchangedDays?: n,
 *     brokenAfter?: 3 }
 *
 * What the check's `value` is: the selector's visible text (text, price), the attribute's value (attribute), the
 * response body (json: the path is applied here, so the watch carries it), the region's fingerprint (visual:
 * ./visual.ts encodeVisual of what browser.read answered), null when the selector matched nothing. A visual value is
 * compared by ./visual.ts compareVisual (a size change, or the share of cells past `tolerance`), never as text; its
 * history notes and events say the share in words and carry the check's screenshot file.
 *
 * The rules `evaluate` keeps (the complaints about changedetection.io they answer in brackets):
 *   - text is normalized before comparing: white space collapsed per line, blank lines dropped, then every `ignore`
 *     pattern removed (a timestamp, a counter, a rotating ad line) [#1432, #1679: false positives];
 *   - a change smaller than `minChange` is no change (every threshold given must be reached; the baseline stays, so
 *     small changes that add up are reported once they pass it);
 *   - with `confirm` (the default) a new value must be read on two checks in a row: the first sighting is a
 *     'pending' event, the second a 'changed'; a value that flips back was noise and is forgotten. A failed check
 *     between the two neither confirms nor forgets the candidate;
 *   - a selector that matches nothing, a price that cannot be read, a JSON path that is missing and a page that failed
 *     are failures, never "no change" [#735]: `brokenAfter` in a row give one 'broken' event (not one per check), the
 *     next good check a 'recovered';
 *   - 'unchanged' fires once when the value has not changed for `unchangedDays` (counted from the baseline or the last
 *     change), and again only after a change [#35];
 *   - the first good check sets the baseline without a 'changed' event.
 *
 * Prices (`parsePrice`): the first amount next to a currency (else the first amount) in "$1,299.00", "1.299,00 €",
 * "EUR 12", "12,50 €", "CHF 1'299.50", "1 299,00 €" and the like; a lone separator followed by exactly three digits
 * is a thousands separator ("1.299 €" is 1299). A change of currency is always a change.
 */
import { Cron } from 'croner';
import { TalonError } from '../../runtime/core/errors.ts';
import { textDiff, type TextDiff } from './diff.ts';
import {
  DEFAULT_TOLERANCE,
  DEFAULT_VISUAL_MIN_PERCENT,
  compareVisual,
  decodeVisual,
  visualWords,
  type VisualChange,
} from './visual.ts';

const DAY_MS = 86_400_000;
/** watch ids: what a bus topic and a URL path can carry */
const WATCH_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const DEFAULT_BROKEN_AFTER = 3;
export const MAX_IGNORE = 50;
const MAX_PATTERN = 500;
/** entries kept in WatchState's history */
export const HISTORY = 20;
/** characters of a value kept in a history entry */
const HISTORY_VALUE_CHARS = 200;
/** the largest value compared (characters); the rest is cut before normalizing */
export const MAX_VALUE_CHARS = 2_000_000;

export type WatchWhat =
  /** the visible text of a selector (the whole page when no selector) */
  | { kind: 'text'; selector?: string }
  /** one value of a JSON answer, by a JSONPath of names and indexes */
  | { kind: 'json'; path: string; segments: Array<string | number> }
  /** an attribute of the first element a selector matches */
  | { kind: 'attribute'; selector: string; name: string }
  /** a price in the selector's text (the whole page when no selector) */
  | { kind: 'price'; selector?: string }
  /** a screenshot of a selector's element (the viewport when none), compared as ./visual.ts fingerprints */
  | { kind: 'visual'; selector?: string; tolerance: number };

/** a parsed watch; `ignore` is compiled, the rest is what was written or its default */
export interface Watch {
  id: string;
  url: string;
  what: WatchWhat;
  schedule?: string;
  ignore: RegExp[];
  minChange?: { chars?: number; percent?: number; amount?: number };
  confirm: boolean;
  unchangedDays?: number;
  brokenAfter: number;
}

/** what the browser read at one check; `screenshot`: the file the check stored (visual watches) */
export type Check =
  | { ok: true; value: string | number | null; at: number; screenshot?: string }
  | { ok: false; error: string; at: number };

export interface Price {
  amount: number;
  /** an ISO code where the symbol names one ("$" → USD), else the symbol as written ("kr"); null when none */
  currency: string | null;
}

export type WatchEvent =
  | {
      type: 'changed';
      before: string;
      after: string;
      diff: TextDiff;
      /** price watches: both prices and the change */
      price?: { before: Price; after: Price; delta: number; percent: number | null };
      /** visual watches: how much changed (before and after are the encoded fingerprints; diff is empty) */
      visual?: VisualChange;
      /** visual watches: the screenshot of this check (a file in the Hand's folder) */
      screenshot?: string;
    }
  | { type: 'broken'; reason: string; failures: number }
  | { type: 'recovered'; failures: number }
  | { type: 'unchanged'; days: number }
  /** a new value seen once, waiting for the next check to confirm it */
  | { type: 'pending'; before: string; after: string; visual?: VisualChange; screenshot?: string };

export interface HistoryEntry {
  at: number;
  /** baseline | same | small (below minChange) | pending | changed | failed */
  result: 'baseline' | 'same' | 'small' | 'pending' | 'changed' | 'failed';
  /** the value (cut) or the failure's reason */
  note?: string;
}

/** WatchState as JSON (what the Hand stores) */
export interface WatchStateData {
  v: 1;
  /** the last confirmed value, normalized (price: "1299 USD"); null before the first good check */
  value: string | null;
  /** when the baseline was first set */
  baselineAt: number | null;
  /** a new value seen once, waiting for confirmation */
  pending: { value: string; at: number } | null;
  /** failed checks in a row */
  failures: number;
  /** a 'broken' event was sent and no good check came since */
  broken: boolean;
  lastChangeAt: number | null;
  lastCheckAt: number | null;
  /** the 'unchanged' event was sent since the last change */
  unchangedSent: boolean;
  history: HistoryEntry[];
}

/** what a watch remembers between checks; immutable (evaluate answers a new one), JSON by toJSON/fromJSON */
export class WatchState {
  readonly #d: WatchStateData;

  constructor(data?: WatchStateData) {
    this.#d = data
      ? structuredClone(data)
      : {
          v: 1,
          value: null,
          baselineAt: null,
          pending: null,
          failures: 0,
          broken: false,
          lastChangeAt: null,
          lastCheckAt: null,
          unchangedSent: false,
          history: [],
        };
  }

  /** a stored state back; a TalonError CONFIG_INVALID naming the field when it is not one */
  static fromJSON(raw: unknown): WatchState {
    const bad = (field: string, want: string): never => {
      throw new TalonError('CONFIG_INVALID', `watch state: ${field} must be ${want}`, { details: { field } });
    };
    if (!isObject(raw) || raw.v !== 1) return bad('v', '1 (a state written by this version)');
    const numOrNull = (k: string): void => {
      if (raw[k] !== null && !(typeof raw[k] === 'number' && Number.isFinite(raw[k]))) bad(k, 'a number or null');
    };
    if (raw.value !== null && typeof raw.value !== 'string') bad('value', 'a string or null');
    for (const k of ['baselineAt', 'lastChangeAt', 'lastCheckAt']) numOrNull(k);
    const p = raw.pending;
    if (p !== null && !(isObject(p) && typeof p.value === 'string' && typeof p.at === 'number'))
      bad('pending', '{ value, at } or null');
    if (!Number.isInteger(raw.failures) || (raw.failures as number) < 0) bad('failures', 'a whole number ≥ 0');
    if (typeof raw.broken !== 'boolean') bad('broken', 'true or false');
    if (typeof raw.unchangedSent !== 'boolean') bad('unchangedSent', 'true or false');
    if (!Array.isArray(raw.history)) bad('history', 'a list');
    return new WatchState(raw as unknown as WatchStateData);
  }

  toJSON(): WatchStateData {
    return structuredClone(this.#d);
  }

  get value(): string | null {
    return this.#d.value;
  }
  get pending(): { value: string; at: number } | null {
    return this.#d.pending ? { ...this.#d.pending } : null;
  }
  get failures(): number {
    return this.#d.failures;
  }
  get broken(): boolean {
    return this.#d.broken;
  }
  get lastChangeAt(): number | null {
    return this.#d.lastChangeAt;
  }
  get lastCheckAt(): number | null {
    return this.#d.lastCheckAt;
  }
  get history(): HistoryEntry[] {
    return this.#d.history.map((h) => ({ ...h }));
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** the watch `raw` describes, or a message naming the field (`${where}.what.json: …`) */
export function parseWatch(raw: unknown, where = 'watch'): Watch | string {
  if (!isObject(raw)) return `${where}: must be an object { id, url, what, … }`;
  const known = ['id', 'url', 'what', 'schedule', 'ignore', 'minChange', 'confirm', 'unchangedDays', 'brokenAfter'];
  for (const k of Object.keys(raw))
    if (!known.includes(k)) return `${where}.${k}: not a watch field (the fields are ${known.join(', ')})`;

  if (typeof raw.id !== 'string' || !WATCH_ID.test(raw.id))
    return `${where}.id: must be 1–64 lower-case letters, digits, - and _ starting with a letter or digit ("prices-shop")`;
  const url = typeof raw.url === 'string' ? URL.parse(raw.url) : null;
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    return `${where}.url: must be an http(s) URL ("https://example.com/product/42")`;
  if (url.username || url.password) return `${where}.url: must not carry a user name or password`;

  const what = parseWhat(raw.what, `${where}.what`);
  if (typeof what === 'string') return what;

  const watch: Watch = {
    id: raw.id,
    url: url.href,
    what,
    ignore: [],
    confirm: true,
    brokenAfter: DEFAULT_BROKEN_AFTER,
  };

  if (raw.schedule !== undefined) {
    const problem = cronProblem(raw.schedule);
    if (problem) return `${where}.schedule: ${problem}`;
    watch.schedule = (raw.schedule as string).trim();
  }

  if (raw.ignore !== undefined) {
    if (!Array.isArray(raw.ignore) || raw.ignore.length > MAX_IGNORE)
      return `${where}.ignore: must be a list of at most ${MAX_IGNORE} regular expressions ("\\\\d{1,2}:\\\\d{2}" for a time of day)`;
    for (const [i, p] of raw.ignore.entries()) {
      const re = compilePattern(p);
      if (typeof re === 'string') return `${where}.ignore[${i}]: ${re}`;
      watch.ignore.push(re);
    }
  }

  if (raw.minChange !== undefined) {
    const m = raw.minChange;
    const allowed =
      what.kind === 'price' ? ['amount', 'percent'] : what.kind === 'visual' ? ['percent'] : ['chars', 'percent'];
    const shape =
      what.kind === 'price'
        ? '{ amount?, percent? }'
        : what.kind === 'visual'
          ? '{ percent? } (the share of the region that changed)'
          : '{ chars?, percent? }';
    if (!isObject(m)) return `${where}.minChange: must be ${shape}`;
    const out: NonNullable<Watch['minChange']> = {};
    for (const [k, v] of Object.entries(m)) {
      if (!allowed.includes(k))
        return `${where}.minChange.${k}: not a threshold of a ${what.kind} watch (write ${shape})`;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `${where}.minChange.${k}: must be a number ≥ 0`;
      if (k === 'percent' && what.kind === 'visual' && v > 100)
        return `${where}.minChange.percent: must be a share of the region from 0 to 100`;
      if (k === 'chars' && !Number.isInteger(v)) return `${where}.minChange.chars: must be a whole number`;
      (out as Record<string, number>)[k] = v;
    }
    watch.minChange = out;
  }

  if (raw.confirm !== undefined) {
    if (typeof raw.confirm !== 'boolean')
      return `${where}.confirm: must be true (a change must be read on two checks in a row) or false`;
    watch.confirm = raw.confirm;
  }
  if (raw.unchangedDays !== undefined) {
    const d = raw.unchangedDays;
    if (typeof d !== 'number' || !Number.isFinite(d) || d <= 0 || d > 3650)
      return `${where}.unchangedDays: must be a number of days > 0 and ≤ 3650`;
    watch.unchangedDays = d;
  }
  if (raw.brokenAfter !== undefined) {
    const n = raw.brokenAfter;
    if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 1000)
      return `${where}.brokenAfter: must be a whole number of failed checks from 1 to 1000 (default ${DEFAULT_BROKEN_AFTER})`;
    watch.brokenAfter = n as number;
  }
  return watch;
}

function parseWhat(raw: unknown, where: string): WatchWhat | string {
  const shapes =
    "{ text: 'SELECTOR' }, { json: '$.path' }, { attribute: { selector, name } }, { price: 'SELECTOR' } or { visual: 'SELECTOR' }";
  if (!isObject(raw)) return `${where}: must be one of ${shapes}`;
  const keys = Object.keys(raw);
  if (keys.length !== 1) return `${where}: must have exactly one of text, json, attribute, price, visual (${shapes})`;
  const key = keys[0]!;
  const v = raw[key];
  const selector = (s: unknown, field: string): string | undefined | { error: string } => {
    if (s === null || s === true || s === '') return undefined;
    if (typeof s !== 'string' || s.trim() === '' || s.length > 1000)
      return { error: `${field}: must be a selector ("#price", "text=In stock") or null for the whole page` };
    return s.trim();
  };
  switch (key) {
    case 'text':
    case 'price': {
      const s = selector(v, `${where}.${key}`);
      if (typeof s === 'object') return s.error;
      return s === undefined ? { kind: key } : { kind: key, selector: s };
    }
    case 'json': {
      if (typeof v !== 'string') return `${where}.json: must be a JSONPath like "$.items[0].price"`;
      const segments = parseJsonPath(v);
      if (typeof segments === 'string') return `${where}.json: ${segments}`;
      return { kind: 'json', path: v, segments };
    }
    case 'attribute': {
      if (!isObject(v))
        return `${where}.attribute: must be { selector, name } ({ selector: "a.download", name: "href" })`;
      const s = selector(v.selector, `${where}.attribute.selector`);
      if (typeof s === 'object') return s.error;
      if (s === undefined) return `${where}.attribute.selector: must be a selector ("a.download")`;
      if (typeof v.name !== 'string' || !/^[^\s"'>/=]{1,100}$/.test(v.name))
        return `${where}.attribute.name: must be an attribute name ("href", "data-price")`;
      for (const k of Object.keys(v))
        if (k !== 'selector' && k !== 'name') return `${where}.attribute.${k}: not a field (write { selector, name })`;
      return { kind: 'attribute', selector: s, name: v.name };
    }
    case 'visual': {
      if (!isObject(v)) {
        const s = selector(v, `${where}.visual`);
        if (typeof s === 'object') return s.error;
        return s === undefined
          ? { kind: 'visual', tolerance: DEFAULT_TOLERANCE }
          : { kind: 'visual', selector: s, tolerance: DEFAULT_TOLERANCE };
      }
      for (const k of Object.keys(v))
        if (k !== 'selector' && k !== 'tolerance')
          return `${where}.visual.${k}: not a field (write { selector?, tolerance? })`;
      const s = selector(v.selector ?? null, `${where}.visual.selector`);
      if (typeof s === 'object') return s.error;
      const t = v.tolerance ?? DEFAULT_TOLERANCE;
      if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 254)
        return `${where}.visual.tolerance: must be a whole number from 0 to 254: how much a cell's brightness (0–255) may move before it counts as changed (default ${DEFAULT_TOLERANCE})`;
      return s === undefined ? { kind: 'visual', tolerance: t } : { kind: 'visual', selector: s, tolerance: t };
    }
    default:
      return `${where}.${key}: not a kind of watch (write ${shapes})`;
  }
}

/** a cron expression croner reads, or why not */
function cronProblem(expr: unknown): string | undefined {
  if (typeof expr !== 'string' || expr.trim() === '')
    return 'must be a cron expression ("*/30 * * * *": every half hour)';
  const fields = expr.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6)
    return `"${expr}" has ${fields} field(s): write five (minute hour day-of-month month day-of-week), "0 * * * *" for hourly`;
  try {
    new Cron(expr, { paused: true }).stop();
  } catch (err) {
    return `"${expr}" is not a cron expression croner reads (${(err as Error).message}); "0 7 * * *" is 07:00 daily`;
  }
  return undefined;
}

/** "pattern" or "/pattern/flags" (flags i, m, s, u) compiled global and multiline, or why not */
function compilePattern(p: unknown): RegExp | string {
  if (typeof p !== 'string' || p === '' || p.length > MAX_PATTERN)
    return `must be a regular expression of 1–${MAX_PATTERN} characters`;
  let source = p;
  let flags = '';
  const slashed = /^\/(.+)\/([a-z]*)$/s.exec(p);
  if (slashed) {
    source = slashed[1]!;
    flags = slashed[2]!;
    if (/[^imsu]/.test(flags)) return `flags "${flags}": only i, m, s and u are allowed`;
  }
  try {
    const re = new RegExp(source, `g${flags.includes('m') ? '' : 'm'}${flags}`);
    if (re.test('')) return `"${p}" matches an empty text: it would remove nothing useful (write what to ignore)`;
    return re;
  } catch (err) {
    return `"${p}" is not a regular expression (${(err as Error).message})`;
  }
}

// ---------- JSONPath (a small subset: $.a.b[0]["c d"][-1]) ----------

/** the segments of `$.a.b[0].c` (names and indexes; a negative index counts from the end), or why not */
export function parseJsonPath(path: string): Array<string | number> | string {
  const example = 'write "$.items[0].price" (names after dots, [n] indexes, ["a name"] quoted names)';
  if (!path.startsWith('$')) return `"${path}" must start with $ (${example})`;
  const out: Array<string | number> = [];
  let i = 1;
  while (i < path.length) {
    const rest = path.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^\.([A-Za-z_$][\w$-]*)/.exec(rest))) out.push(m[1]!);
    else if ((m = /^\[(-?\d+)\]/.exec(rest))) out.push(Number(m[1]));
    else if ((m = /^\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]/.exec(rest)))
      out.push((m[1] ?? m[2]!).replace(/\\(.)/g, '$1'));
    else return `"${path}": cannot read "${rest}" (${example}; wildcards and filters are not supported)`;
    i += m[0].length;
  }
  return out;
}

/** the value at `segments` in `doc`, undefined when the path is missing */
export function readJsonPath(doc: unknown, segments: Array<string | number>): unknown {
  let cur: unknown = doc;
  for (const s of segments) {
    if (typeof s === 'number') {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[s < 0 ? cur.length + s : s];
    } else {
      if (!isObject(cur) || !Object.hasOwn(cur, s)) return undefined;
      cur = cur[s];
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

/**
 * The value at a watch's path in a JSON answer as comparable text: a string as is, anything else as JSON with sorted
 * keys, two-space indented (so the diff goes by lines); an Error's message when the body is not JSON or the path is
 * missing.
 */
export function extractJson(body: string, segments: Array<string | number>): string | Error {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    return new Error(`the answer is not JSON (${(err as Error).message})`);
  }
  const v = readJsonPath(doc, segments);
  if (v === undefined) return new Error('the JSON path matched nothing');
  return typeof v === 'string' ? v : JSON.stringify(sortKeys(v), null, 2);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
  return out;
}

// ---------- prices ----------

const SYMBOLS: Array<[string, string]> = [
  ['US$', 'USD'],
  ['C$', 'CAD'],
  ['CA$', 'CAD'],
  ['A$', 'AUD'],
  ['AU$', 'AUD'],
  ['NZ$', 'NZD'],
  ['HK$', 'HKD'],
  ['R$', 'BRL'],
  ['$', 'USD'],
  ['€', 'EUR'],
  ['£', 'GBP'],
  ['¥', 'JPY'],
  ['₹', 'INR'],
  ['₽', 'RUB'],
  ['₩', 'KRW'],
  ['₺', 'TRY'],
  ['₪', 'ILS'],
  ['zł', 'PLN'],
  ['Kč', 'CZK'],
  ['kr', 'kr'],
  ['Fr.', 'CHF'],
];
const CODES =
  'USD EUR GBP JPY CHF CAD AUD NZD SEK NOK DKK PLN CZK HUF RON BGN INR CNY BRL MXN ZAR RUB TRY KRW SGD HKD ILS';
const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const CURRENCY = `(?:\\b(?:${CODES.split(' ').join('|')})\\b|${SYMBOLS.map(([s]) => escapeRe(s)).join('|')})`;
const CURRENCY_BEFORE = new RegExp(`(${CURRENCY})\\s*$`);
const CURRENCY_AFTER = new RegExp(`^\\s*(${CURRENCY})`);
/** digits with thousands groups (, . ' ’ or a space before exactly three digits) and a decimal part */
const AMOUNT = /\d+(?:[.,]\d+|[ \u00a0\u202f'’]\d{3}(?!\d))*/g;

const currencyOf = (found: string): string => SYMBOLS.find(([s]) => s === found)?.[1] ?? found.toUpperCase();

/** the price in `text` (see the file comment), or null when there is no amount in it */
export function parsePrice(text: string): Price | null {
  const t = text.slice(0, 10_000);
  let first: Price | null = null;
  for (const m of t.matchAll(AMOUNT)) {
    const amount = readAmount(m[0]);
    if (amount === null) continue;
    const before = CURRENCY_BEFORE.exec(t.slice(Math.max(0, m.index - 8), m.index));
    const after = CURRENCY_AFTER.exec(t.slice(m.index + m[0].length, m.index + m[0].length + 8));
    const cur = before?.[1] ?? after?.[1];
    if (cur) return { amount, currency: currencyOf(cur) };
    first ??= { amount, currency: null };
  }
  return first;
}

/** "1.299,00" → 1299, "1,299.00" → 1299, "12,50" → 12.5, "1'299.50" → 1299.5; null when not a number */
function readAmount(token: string): number | null {
  const s = token.replace(/[ \u00a0\u202f'’]/g, '');
  const lastDot = s.lastIndexOf('.');
  const lastComma = s.lastIndexOf(',');
  let decimalSep: string | null = null;
  if (lastDot >= 0 && lastComma >= 0) decimalSep = lastDot > lastComma ? '.' : ',';
  else if (lastDot >= 0 || lastComma >= 0) {
    const sep = lastDot >= 0 ? '.' : ',';
    const count = s.split(sep).length - 1;
    const digitsAfter = s.length - s.lastIndexOf(sep) - 1;
    // one separator before exactly three digits groups thousands ("1.299 €"), unless the whole part is 0 ("0.299")
    decimalSep = count === 1 && (digitsAfter !== 3 || /^0[.,]/.test(s)) ? sep : null;
  }
  let normalized = s;
  if (decimalSep) {
    const thousands = decimalSep === '.' ? ',' : '.';
    const head = s.slice(0, s.lastIndexOf(decimalSep)).split(thousands).join('');
    if (head.includes(decimalSep)) return null; // two decimal separators: not an amount
    normalized = `${head}.${s.slice(s.lastIndexOf(decimalSep) + 1)}`;
  } else normalized = s.replace(/[.,]/g, '');
  const n = Number(normalized);
  return Number.isFinite(n) ? n : null;
}

const formatPrice = (p: Price): string => (p.currency ? `${p.amount} ${p.currency}` : String(p.amount));

function priceFromKey(key: string): Price {
  const [amount, currency] = key.split(' ');
  return { amount: Number(amount), currency: currency ?? null };
}

// ---------- comparing ----------

/** white space collapsed per line, blank lines dropped, the ignore patterns removed */
export function normalizeText(text: string, ignore: RegExp[] = []): string {
  const collapse = (s: string): string =>
    s
      .split(/\r?\n|\r/)
      .map((l) => l.replace(/\s+/g, ' ').trim())
      .filter((l) => l !== '')
      .join('\n');
  let t = collapse(text.length > MAX_VALUE_CHARS ? text.slice(0, MAX_VALUE_CHARS) : text);
  if (ignore.length === 0) return t;
  for (const re of ignore) t = t.replace(re, '');
  return collapse(t);
}

type Reading = { ok: true; value: string; price?: Price } | { ok: false; reason: string };

/** a visual watch's two values compared, or null when either is not a fingerprint */
function visualChange(watch: Watch, before: string, after: string): VisualChange | null {
  if (watch.what.kind !== 'visual') return null;
  const a = decodeVisual(before);
  const b = decodeVisual(after);
  return a && b ? compareVisual(a, b, watch.what.tolerance) : null;
}

/** does a visual change reach the watch's minimum (a size change always does)? */
function visualBigEnough(watch: Watch, c: VisualChange): boolean {
  return c.sizeChanged || c.percent >= (watch.minChange?.percent ?? DEFAULT_VISUAL_MIN_PERCENT);
}

/** the check's value as the comparable text, or why it is a failure */
function read(watch: Watch, check: Check): Reading {
  if (!check.ok) return { ok: false, reason: `the page failed: ${check.error}` };
  const v = check.value;
  const what = watch.what;
  if (v === null) {
    const sel = what.kind === 'json' ? undefined : what.selector;
    return { ok: false, reason: sel ? `the selector "${sel}" matched nothing` : 'the page had nothing to read' };
  }
  switch (what.kind) {
    case 'price': {
      if (typeof v === 'number') {
        if (!Number.isFinite(v)) return { ok: false, reason: `the price ${v} is not a number` };
        return { ok: true, value: formatPrice({ amount: v, currency: null }), price: { amount: v, currency: null } };
      }
      const p = parsePrice(normalizeText(v, watch.ignore));
      if (!p) return { ok: false, reason: `no price in "${v.slice(0, 80)}"` };
      return { ok: true, value: formatPrice(p), price: p };
    }
    case 'visual': {
      const fp = typeof v === 'string' ? decodeVisual(v) : null;
      if (!fp) return { ok: false, reason: 'the browser answered no picture of the region (visual: true)' };
      return { ok: true, value: v as string };
    }
    case 'json': {
      const got = extractJson(String(v), what.segments);
      if (got instanceof Error) return { ok: false, reason: `${got.message} (${what.path})` };
      return { ok: true, value: normalizeText(got, watch.ignore) };
    }
    default:
      return { ok: true, value: normalizeText(String(v), watch.ignore) };
  }
}

/** is the move from `before` to `after` at least watch.minChange? (every threshold given must be reached) */
function bigEnough(watch: Watch, before: string, after: string, diff: TextDiff): boolean {
  const min = watch.minChange;
  if (!min) return true;
  if (watch.what.kind === 'price') {
    const a = priceFromKey(before);
    const b = priceFromKey(after);
    if (a.currency !== b.currency) return true;
    const delta = Math.abs(b.amount - a.amount);
    if (min.amount !== undefined && delta < min.amount) return false;
    if (min.percent !== undefined) {
      if (a.amount === 0) return delta > 0;
      if ((delta / Math.abs(a.amount)) * 100 < min.percent) return false;
    }
    return true;
  }
  if (min.chars !== undefined && diff.changedChars < min.chars) return false;
  if (min.percent !== undefined) {
    const base = Math.max(before.length, 1);
    if ((diff.changedChars / base) * 100 < min.percent) return false;
  }
  return true;
}

const NO_DIFF: TextDiff = { added: [], removed: [], unified: '', changedChars: 0, truncated: false };

/** a stored visual value in words: "a picture 800×600" */
export function visualValueWords(value: string): string {
  const v = decodeVisual(value);
  return v ? `a picture ${v.width}×${v.height}` : value.slice(0, 40);
}

/** what one check means for a watch: the state to keep and the events to publish (see the file comment) */
export function evaluate(watch: Watch, state: WatchState, check: Check): { state: WatchState; events: WatchEvent[] } {
  const d = state.toJSON();
  const events: WatchEvent[] = [];
  const note = (result: HistoryEntry['result'], text?: string): void => {
    d.history.push(
      text === undefined
        ? { at: check.at, result }
        : { at: check.at, result, note: text.slice(0, HISTORY_VALUE_CHARS) },
    );
    if (d.history.length > HISTORY) d.history.splice(0, d.history.length - HISTORY);
  };
  d.lastCheckAt = check.at;

  const r = read(watch, check);
  if (!r.ok) {
    d.failures++;
    if (d.failures >= watch.brokenAfter && !d.broken) {
      d.broken = true;
      events.push({ type: 'broken', reason: r.reason, failures: d.failures });
    }
    note('failed', r.reason);
    return { state: new WatchState(d), events };
  }
  if (d.broken) events.push({ type: 'recovered', failures: d.failures });
  d.broken = false;
  d.failures = 0;

  const isVisual = watch.what.kind === 'visual';
  const screenshot = check.ok && check.screenshot !== undefined ? { screenshot: check.screenshot } : {};
  if (d.value === null) {
    d.value = r.value;
    d.baselineAt = check.at;
    d.pending = null;
    note('baseline', isVisual ? visualValueWords(r.value) : r.value);
    return { state: new WatchState(d), events };
  }

  const before = d.value;
  const after = r.value;
  const unchanged = (result: 'same' | 'small'): void => {
    d.pending = null; // a candidate that flipped back (or shrank below minChange) was noise
    const since = d.lastChangeAt ?? d.baselineAt ?? check.at;
    if (watch.unchangedDays !== undefined && !d.unchangedSent && check.at - since >= watch.unchangedDays * DAY_MS) {
      d.unchangedSent = true;
      events.push({ type: 'unchanged', days: Math.floor((check.at - since) / DAY_MS) });
    }
    note(result);
  };
  if (after === before) {
    unchanged('same');
    return { state: new WatchState(d), events };
  }
  const visual = isVisual ? visualChange(watch, before, after) : null;
  if (isVisual && !visual) {
    // the baseline is not a fingerprint (a state from before the watch became visual): take the new one
    d.value = after;
    d.baselineAt = check.at;
    d.pending = null;
    note('baseline', visualValueWords(after));
    return { state: new WatchState(d), events };
  }
  const diff = visual ? NO_DIFF : textDiff(before, after);
  if (visual ? !visualBigEnough(watch, visual) : !bigEnough(watch, before, after, diff)) {
    unchanged('small');
    return { state: new WatchState(d), events };
  }
  // the candidate seen last time is confirmed by the same value again (a picture: one that differs from it by less
  // than a change)
  const pendingValue = d.pending?.value;
  let confirmed = pendingValue === after;
  if (!confirmed && visual && pendingValue !== undefined) {
    const again = visualChange(watch, pendingValue, after);
    confirmed = again !== null && !visualBigEnough(watch, again);
  }
  const words = visual ? visualWords(visual) : after;
  if (watch.confirm && !confirmed) {
    d.pending = { value: after, at: check.at };
    events.push({ type: 'pending', before, after, ...(visual && { visual }), ...screenshot });
    note('pending', words);
    return { state: new WatchState(d), events };
  }
  const changed: Extract<WatchEvent, { type: 'changed' }> = {
    type: 'changed',
    before,
    after,
    diff,
    ...(visual && { visual }),
    ...screenshot,
  };
  if (watch.what.kind === 'price' && r.price) {
    const a = priceFromKey(before);
    const delta = r.price.amount - a.amount;
    changed.price = {
      before: a,
      after: r.price,
      delta,
      percent: a.amount === 0 ? null : (delta / Math.abs(a.amount)) * 100,
    };
  }
  events.push(changed);
  d.value = after;
  d.pending = null;
  d.lastChangeAt = check.at;
  d.unchangedSent = false;
  note('changed', words);
  return { state: new WatchState(d), events };
}
