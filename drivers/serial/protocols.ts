/**
 * Line protocols spoken by serial sensors: key=value, CSV, JSON lines and NMEA 0183.
 *
 * Every parser is pure and total: it takes one line (without its terminator) and returns
 * `{ ok: true, fields }` or `{ ok: false, code, message }`. It never throws on garbage and
 * never hands out NaN or ±Infinity as a value: a number that is not finite is not a number.
 * A line with one bad part is rejected whole, so a half-read line never changes a value.
 *
 * LineSplitter turns the byte stream into lines with a hard length limit: a line longer
 * than the limit is dropped (and reported once) instead of growing a buffer without bound.
 */

export type FieldValue = number | boolean | string;
export type Fields = Record<string, FieldValue>;

export type LineErrorCode =
  /** blank line (or only whitespace) */
  | 'empty'
  /** longer than the limit */
  | 'oversize'
  /** not the expected shape: binary noise, a token without `=`, wrong column count, bad JSON */
  | 'garbage'
  /** NMEA `*hh` missing or not matching the XOR of the sentence */
  | 'bad_checksum'
  /** a well-formed NMEA sentence of a type this parser does not decode (GSV, GSA…) */
  | 'unsupported';

export interface LineOk {
  ok: true;
  fields: Fields;
}
export interface LineError {
  ok: false;
  code: LineErrorCode;
  message: string;
}
export type LineResult = LineOk | LineError;

/** the default longest line, in characters (bytes for the splitter) */
export const MAX_LINE = 4096;
/** the longest string value kept from a line */
const MAX_STRING_VALUE = 256;
/** the most fields one line may carry */
const MAX_FIELDS = 256;

const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
/** C0 controls other than tab, DEL, and U+FFFD (what invalid UTF-8 decodes to) */
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u0008\u000a-\u001f\u007f\ufffd]/;

function fail(code: LineErrorCode, message: string): LineError {
  return { ok: false, code, message };
}

function clip(s: string, n = 40): string {
  const t = s.length > n ? `${s.slice(0, n)}…` : s;
  return JSON.stringify(t);
}

/**
 * A scalar from text: a finite number, `true`/`false`, or the text itself (trimmed). An
 * overflowing number (`1e999`) stays text, so it can never reach a sensor as Infinity.
 */
export function parseScalar(raw: string): FieldValue {
  const s = raw.trim();
  if (NUMBER_RE.test(s)) {
    const n = Number(s);
    if (Number.isFinite(n)) return n;
    return s;
  }
  if (s === 'true') return true;
  if (s === 'false') return false;
  return s.length > MAX_STRING_VALUE ? s.slice(0, MAX_STRING_VALUE) : s;
}

function precheck(line: string, max: number): LineError | undefined {
  if (line.length > max) return fail('oversize', `line of ${line.length} characters exceeds the limit of ${max}`);
  if (line.trim() === '') return fail('empty', 'empty line');
  if (CONTROL_RE.test(line)) return fail('garbage', `line contains control or invalid bytes: ${clip(line)}`);
  return undefined;
}

/**
 * `temp=21.5 hum=40`, `temp=21.5,hum=40`, `temp=21.5; hum=40` (also `key:value`).
 * Keys: a letter or `_`, then letters, digits, `_`, `.`, `-`. Every token must be a pair.
 */
export function parseKeyValue(line: string, max = MAX_LINE): LineResult {
  const pre = precheck(line, max);
  if (pre) return pre;
  const fields: Fields = {};
  let count = 0;
  const tokens = line.split(/[\s,;]+/);
  for (const token of tokens) {
    if (token === '') continue;
    let eq = token.indexOf('=');
    if (eq < 0) eq = token.indexOf(':');
    if (eq <= 0) return fail('garbage', `not a key=value pair: ${clip(token)}`);
    const key = token.slice(0, eq);
    if (!KEY_RE.test(key)) return fail('garbage', `not a valid key: ${clip(key)}`);
    const value = token.slice(eq + 1);
    if (value === '') return fail('garbage', `key ${key} has no value`);
    if (++count > MAX_FIELDS) return fail('garbage', `more than ${MAX_FIELDS} fields on one line`);
    fields[key] = parseScalar(value);
  }
  if (count === 0) return fail('garbage', `no key=value pairs in ${clip(line)}`);
  return { ok: true, fields };
}

/**
 * One CSV record against a column list. Double-quoted cells may contain commas and `""`.
 * An empty column name (or `_`) skips that column; an empty cell gives no field. The number
 * of cells must equal the number of columns, so a truncated line is rejected whole.
 */
export function parseCsv(line: string, columns: readonly string[], max = MAX_LINE): LineResult {
  const pre = precheck(line, max);
  if (pre) return pre;
  const cells: string[] = [];
  let i = 0;
  const n = line.length;
  while (true) {
    if (line.charCodeAt(i) === 34 /* " */) {
      let out = '';
      i++;
      while (true) {
        const q = line.indexOf('"', i);
        if (q < 0) return fail('garbage', `unterminated quoted cell in ${clip(line)}`);
        out += line.slice(i, q);
        if (line.charCodeAt(q + 1) === 34) {
          out += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      // only spaces may follow a closing quote before the separator
      const comma = line.indexOf(',', i);
      const rest = line.slice(i, comma < 0 ? n : comma);
      if (rest.trim() !== '') return fail('garbage', `text after a quoted cell in ${clip(line)}`);
      cells.push(out);
      if (comma < 0) break;
      i = comma + 1;
    } else {
      const comma = line.indexOf(',', i);
      if (comma < 0) {
        cells.push(line.slice(i));
        break;
      }
      cells.push(line.slice(i, comma));
      i = comma + 1;
    }
    if (cells.length > columns.length) break;
  }
  if (cells.length !== columns.length) {
    return fail(
      'garbage',
      `expected ${columns.length} columns, got ${cells.length > columns.length ? 'more' : cells.length} in ${clip(line)}`,
    );
  }
  const fields: Fields = {};
  for (let c = 0; c < columns.length; c++) {
    const name = columns[c]!;
    if (name === '' || name === '_') continue;
    const cell = cells[c]!.trim();
    if (cell === '') continue;
    fields[name] = parseScalar(cell);
  }
  return { ok: true, fields };
}

/**
 * One JSON object per line. Nested objects are flattened with dots (`{"env":{"t":1}}` gives
 * `env.t`), up to 4 levels; nulls, arrays and non-finite numbers give no field.
 */
export function parseJsonLine(line: string, max = MAX_LINE): LineResult {
  if (line.length > max) return fail('oversize', `line of ${line.length} characters exceeds the limit of ${max}`);
  const s = line.trim();
  if (s === '') return fail('empty', 'empty line');
  if (s.charCodeAt(0) !== 123 /* { */) return fail('garbage', `not a JSON object: ${clip(s)}`);
  let doc: unknown;
  try {
    doc = JSON.parse(s);
  } catch (err) {
    return fail('garbage', `not valid JSON (${(err as Error).message}): ${clip(s)}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return fail('garbage', `not a JSON object: ${clip(s)}`);
  const fields: Fields = {};
  let count = 0;
  const walk = (obj: Record<string, unknown>, prefix: string, depth: number): boolean => {
    for (const key of Object.keys(obj)) {
      const v = obj[key];
      const name = prefix + key;
      if (typeof v === 'number') {
        if (!Number.isFinite(v)) continue;
        fields[name] = v;
      } else if (typeof v === 'boolean') {
        fields[name] = v;
      } else if (typeof v === 'string') {
        fields[name] = v.length > MAX_STRING_VALUE ? v.slice(0, MAX_STRING_VALUE) : v;
      } else if (typeof v === 'object' && v !== null && !Array.isArray(v) && depth < 4) {
        if (!walk(v as Record<string, unknown>, `${name}.`, depth + 1)) return false;
        continue;
      } else {
        continue;
      }
      if (++count > MAX_FIELDS) return false;
    }
    return true;
  };
  if (!walk(doc as Record<string, unknown>, '', 1))
    return fail('garbage', `more than ${MAX_FIELDS} fields on one line`);
  return { ok: true, fields };
}

// ---------------------------------------------------------------------------------- NMEA

/** XOR of the characters of `s` from `start` up to (not including) `end` */
export function nmeaChecksum(s: string, start = 0, end = s.length): number {
  let x = 0;
  for (let i = start; i < end; i++) x ^= s.charCodeAt(i);
  return x & 0xff;
}

/** the `*hh` suffix for a sentence body (without `$`) */
export function nmeaSentence(body: string): string {
  return `$${body}*${nmeaChecksum(body).toString(16).toUpperCase().padStart(2, '0')}`;
}

function hexNibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** `ddmm.mmmm` (lat, 2 degree digits) or `dddmm.mmmm` (lon, 3) and a hemisphere → signed degrees */
function coord(value: string, hemi: string, degDigits: 2 | 3): number | undefined | null {
  if (value === '' && hemi === '') return undefined; // no fix: field absent
  if (!/^\d+(?:\.\d+)?$/.test(value)) return null;
  const dot = value.indexOf('.');
  const intLen = dot < 0 ? value.length : dot;
  if (intLen !== degDigits + 2) return null;
  const deg = Number(value.slice(0, degDigits));
  const min = Number(value.slice(degDigits));
  if (!(min < 60)) return null;
  const v = deg + min / 60;
  const limit = degDigits === 2 ? 90 : 180;
  if (v > limit) return null;
  const pos = degDigits === 2 ? 'N' : 'E';
  const neg = degDigits === 2 ? 'S' : 'W';
  if (hemi === pos) return round(v, 7);
  if (hemi === neg) return round(-v, 7);
  return null;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** a decimal field: '' → undefined (absent), not a finite number → null (invalid) */
function num(s: string | undefined): number | undefined | null {
  if (s === undefined || s === '') return undefined;
  if (!NUMBER_RE.test(s)) return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function hhmmss(s: string | undefined): string | undefined | null {
  if (s === undefined || s === '') return undefined;
  const m = /^(\d\d)(\d\d)(\d\d(?:\.\d+)?)$/.exec(s);
  if (!m) return null;
  if (Number(m[1]) > 23 || Number(m[2]) > 59 || Number(m[3]) >= 61) return null;
  return `${m[1]}:${m[2]}:${m[3]}`;
}

const KNOT_KMH = 1.852;

type Put = (name: string, v: FieldValue | undefined | null) => boolean;

function decodeGga(f: string[], put: Put): boolean {
  // $--GGA,time,lat,N,lon,E,quality,numSats,hdop,alt,M,geoidSep,M,age,station
  if (f.length < 15) return false;
  return (
    put('time', hhmmss(f[1])) &&
    put('lat', coord(f[2]!, f[3]!, 2)) &&
    put('lon', coord(f[4]!, f[5]!, 3)) &&
    put('fix', int(f[6], 0, 9)) &&
    put('satellites', int(f[7], 0, 99)) &&
    put('hdop', num(f[8])) &&
    put('alt', num(f[9])) &&
    put('geoidSep', num(f[11]))
  );
}

function decodeRmc(f: string[], put: Put): boolean {
  // $--RMC,time,status,lat,N,lon,E,speedKnots,course,ddmmyy,magVar,E[,mode[,navStatus]]
  if (f.length < 12) return false;
  const status = f[2];
  if (status !== 'A' && status !== 'V') return false;
  const knots = num(f[7]);
  let date: string | undefined | null;
  if (f[9] === '') date = undefined;
  else {
    const m = /^(\d\d)(\d\d)(\d\d)$/.exec(f[9]!);
    date =
      m && Number(m[1]) >= 1 && Number(m[1]) <= 31 && Number(m[2]) >= 1 && Number(m[2]) <= 12
        ? // two-digit years: 80–99 are 1980–1999 (GPS began in 1980), the rest 2000–2079
          `${Number(m[3]) >= 80 ? '19' : '20'}${m[3]}-${m[2]}-${m[1]}`
        : null;
  }
  return (
    put('time', hhmmss(f[1])) &&
    put('valid', status === 'A') &&
    put('lat', coord(f[3]!, f[4]!, 2)) &&
    put('lon', coord(f[5]!, f[6]!, 3)) &&
    put('speed', knots) &&
    put('speedKmh', typeof knots === 'number' ? round(knots * KNOT_KMH, 3) : knots) &&
    put('course', num(f[8])) &&
    put('date', date)
  );
}

function decodeVtg(f: string[], put: Put): boolean {
  // $--VTG,courseTrue,T,courseMag,M,speedKnots,N,speedKmh,K[,mode]
  if (f.length < 9) return false;
  return put('course', num(f[1])) && put('speed', num(f[5])) && put('speedKmh', num(f[7]));
}

function decodeGll(f: string[], put: Put): boolean {
  // $--GLL,lat,N,lon,E,time,status[,mode]
  if (f.length < 7) return false;
  const status = f[6];
  if (status !== 'A' && status !== 'V') return false;
  return (
    put('lat', coord(f[1]!, f[2]!, 2)) &&
    put('lon', coord(f[3]!, f[4]!, 3)) &&
    put('time', hhmmss(f[5])) &&
    put('valid', status === 'A')
  );
}

function int(s: string | undefined, min: number, max: number): number | undefined | null {
  if (s === undefined || s === '') return undefined;
  if (!/^\d{1,3}$/.test(s)) return null;
  const n = Number(s);
  return n >= min && n <= max ? n : null;
}

const DECODERS: Record<string, (f: string[], put: Put) => boolean> = {
  GGA: decodeGga,
  RMC: decodeRmc,
  VTG: decodeVtg,
  GLL: decodeGll,
};

/**
 * An NMEA 0183 sentence `$GPGGA,...*hh`: the checksum is required and verified (XOR of the
 * characters between `$` and `*`). GGA, RMC, VTG and GLL from any talker (GP, GN, GL, GA,
 * BD…) decode to numbers: lat/lon (signed decimal degrees), alt and geoidSep (m), fix (GGA
 * quality 0–8), satellites, hdop, speed (knots), speedKmh, course (°), valid (RMC/GLL
 * status A), time (`hh:mm:ss.ss`, UTC) and date (`YYYY-MM-DD`). Empty fields (no fix yet)
 * give no field. Every field also carries the sentence type (`sentence`: 'GGA'…).
 */
export function parseNmea(line: string, max = MAX_LINE): LineResult {
  const pre = precheck(line, Math.min(max, 1024));
  if (pre) return pre;
  let s = line;
  // tolerate surrounding whitespace but nothing else
  if (s.charCodeAt(0) <= 32 || s.charCodeAt(s.length - 1) <= 32) s = s.trim();
  const c0 = s.charCodeAt(0);
  if (c0 !== 36 /* $ */ && c0 !== 33 /* ! */) return fail('garbage', `not an NMEA sentence: ${clip(s)}`);
  const star = s.lastIndexOf('*');
  if (star < 0 || star !== s.length - 3)
    return fail('bad_checksum', `NMEA sentence without a *hh checksum: ${clip(s)}`);
  const hi = hexNibble(s.charCodeAt(star + 1));
  const lo = hexNibble(s.charCodeAt(star + 2));
  if (hi < 0 || lo < 0) return fail('bad_checksum', `NMEA checksum is not hex: ${clip(s.slice(star))}`);
  const want = (hi << 4) | lo;
  const got = nmeaChecksum(s, 1, star);
  if (want !== got) {
    return fail(
      'bad_checksum',
      `NMEA checksum mismatch: sentence says ${s.slice(star + 1)}, computed ${got.toString(16).toUpperCase().padStart(2, '0')}`,
    );
  }
  const f = s.slice(1, star).split(',');
  const address = f[0]!;
  if (!/^[A-Z0-9]{3,6}$/.test(address)) return fail('garbage', `not an NMEA address field: ${clip(address)}`);
  const type = address.charCodeAt(0) === 80 /* P, proprietary */ ? address : address.slice(-3);
  const decode = DECODERS[type];
  if (!decode) return fail('unsupported', `NMEA ${address} sentences are not decoded`);
  const fields: Fields = {};
  let bad = '';
  const put: Put = (name, v) => {
    if (v === null) {
      bad = name;
      return false;
    }
    if (v !== undefined) fields[name] = v;
    return true;
  };
  if (!decode(f, put)) {
    return fail(
      'garbage',
      bad ? `NMEA ${address}: invalid ${bad}` : `NMEA ${address}: wrong number of fields (${f.length})`,
    );
  }
  fields.sentence = type;
  return { ok: true, fields };
}

// ------------------------------------------------------------------------- line splitter

export interface SplitterEvents {
  line(line: string): void;
  /** a line longer than the limit was dropped; `bytes` is how many were seen before the limit */
  oversize(bytes: number): void;
}

/**
 * Bytes in, lines out. `\n`, `\r\n` and a lone `\r` end a line; empty lines are skipped.
 * Holds at most `max` bytes: past that the line is dropped up to its end and reported once.
 */
export class LineSplitter {
  readonly #max: number;
  readonly #events: SplitterEvents;
  #buf: Buffer;
  #len = 0;
  #dropping = false;

  constructor(events: SplitterEvents, max = MAX_LINE) {
    this.#events = events;
    this.#max = max;
    this.#buf = Buffer.allocUnsafe(Math.min(max, 1024));
  }

  push(chunk: Buffer): void {
    let start = 0;
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      const c = chunk[i]!;
      if (c !== 10 && c !== 13) continue;
      this.#append(chunk, start, i);
      this.#end();
      start = i + 1;
    }
    if (start < n) this.#append(chunk, start, n);
  }

  /** forget a partial line (the port closed mid-line) */
  reset(): void {
    this.#len = 0;
    this.#dropping = false;
  }

  #append(chunk: Buffer, from: number, to: number): void {
    if (this.#dropping || to <= from) return;
    const add = to - from;
    if (this.#len + add > this.#max) {
      this.#dropping = true;
      this.#events.oversize(this.#len + add);
      this.#len = 0;
      return;
    }
    if (this.#len + add > this.#buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(this.#max, Math.max(this.#buf.length * 2, this.#len + add)));
      this.#buf.copy(bigger, 0, 0, this.#len);
      this.#buf = bigger;
    }
    chunk.copy(this.#buf, this.#len, from, to);
    this.#len += add;
  }

  #end(): void {
    if (this.#dropping) {
      this.#dropping = false;
      this.#len = 0;
      return;
    }
    if (this.#len === 0) return;
    const line = this.#buf.toString('utf8', 0, this.#len);
    this.#len = 0;
    this.#events.line(line);
  }
}

export type LineProtocol = 'kv' | 'csv' | 'jsonl' | 'nmea';

/** the parser for a protocol, as `line → result` */
export function lineParser(
  protocol: LineProtocol,
  opts: { columns?: readonly string[]; maxLine?: number } = {},
): (line: string) => LineResult {
  const max = opts.maxLine ?? MAX_LINE;
  switch (protocol) {
    case 'kv':
      return (l) => parseKeyValue(l, max);
    case 'csv': {
      const cols = opts.columns ?? [];
      return (l) => parseCsv(l, cols, max);
    }
    case 'jsonl':
      return (l) => parseJsonLine(l, max);
    case 'nmea':
      return (l) => parseNmea(l, max);
  }
}
