/**
 * The Data Pipeline Hand's file source: a watched folder (`spec.dir`, the names matching `spec.pattern`, a glob with
 * `*`, `?` and `[…]`), read in name order, following ./types.ts's contract: where each file was read to (its inode,
 * byte offset, line number and, for CSV, its header) is kept in the source's state and moves only on ack().
 *
 * - csv and jsonl: the new bytes of a file from the acknowledged offset, whole records only, so a file still being
 *   written is read as it grows. A last line without a line break is taken once the file's size is the same as at
 *   the previous poll (the writer is done). CSV: RFC 4180 quotes (a delimiter, a quote `""` or a line break inside a
 *   quoted field); the first row is the header (spec.header, default true; without one the fields are field1, …);
 *   a row with the wrong number of fields, an unclosed quote or text after a closing quote goes to `bad` with its
 *   line number, and the rows after it are read. Values stay text (a cast transform makes numbers). JSON Lines: each
 *   line an object; a line that is not goes to `bad`.
 * - json: the whole file, an array of objects or one object, read again when its inode, size or mtime changes; a file
 *   that does not parse goes to `bad` whole.
 * - A file whose inode changed or that shrank below the offset was replaced: it is read again from the start.
 * - At most `chunkBytes` (default 1 MiB) are read per poll; `more` says the rest waits for the next poll.
 */
import { TalonError } from '../../../runtime/core/errors.ts';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../config.ts';
import type { FileSourceSpec, PipelineRecord } from '../types.ts';
import type { BadInput, PollResult, Source, SourceDeps } from './types.ts';

const STATE_KEY = 'files';
export const FILE_CHUNK_BYTES = 1024 * 1024;
/** a json file larger than this goes to `bad` unread (it cannot be read in chunks) */
export const JSON_MAX_BYTES = 64 * 1024 * 1024;

/** Where one file was read to. */
export interface FilePosition {
  ino: number;
  /** bytes consumed */
  offset: number;
  /** lines consumed (the next record starts on line + 1) */
  line: number;
  /** (csv) the header's fields, once read */
  header?: string[];
  /** (json) the size and mtime read */
  size?: number;
  mtimeMs?: number;
}

export interface FileSourceOptions {
  chunkBytes?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A glob (`*`, `?`, `[…]`) as an anchored RegExp over a file name. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export type CsvRow = { line: number; raw: string; fields: string[] } | { line: number; raw: string; error: string };

/**
 * CSV records (RFC 4180) from `text`, the first on line `firstLine`. With `final` false the last record is left
 * unread unless a line break ends it (it may still be growing); `consumed` is the characters read, `lines` the line
 * breaks among them. An unclosed quote at the end of a final text is a broken row: reading goes on at the line
 * after the one it started on.
 */
export function parseCsv(
  text: string,
  delimiter: string,
  final: boolean,
  firstLine = 1,
): { rows: CsvRow[]; consumed: number; lines: number } {
  const rows: CsvRow[] = [];
  let i = 0;
  let line = firstLine;
  let start = 0;
  let startLine = firstLine;
  const unfinished = () => ({ rows, consumed: start, lines: startLine - firstLine });
  const n = text.length;
  const lineEnd = (from: number) => {
    const k = text.indexOf('\n', from);
    return k < 0 ? n : k;
  };
  outer: while (i < n) {
    start = i;
    startLine = line;
    const fields: string[] = [];
    let broken: string | undefined;
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        let j = i + 1;
        let closed = false;
        while (j < n) {
          const c = text[j]!;
          if (c === '"') {
            if (text[j + 1] === '"') {
              field += '"';
              j += 2;
              continue;
            }
            closed = true;
            j++;
            break;
          }
          field += c;
          j++;
        }
        if (!closed) {
          if (!final) return unfinished();
          broken = `an unclosed quote in field ${fields.length + 1}`;
          const end = lineEnd(start);
          rows.push({ line: startLine, raw: text.slice(start, end).replace(/\r$/, ''), error: broken });
          i = Math.min(end + 1, n);
          line = startLine + 1;
          continue outer;
        }
        for (let k = i; k < j; k++) if (text[k] === '\n') line++;
        i = j;
        const c = text[i];
        if (c !== undefined && c !== delimiter && c !== '\n' && !(c === '\r' && text[i + 1] === '\n') && !broken)
          broken = `text after the closing quote of field ${fields.length + 1}`;
        if (broken) {
          // skip to the end of this physical line
          const end = lineEnd(i);
          if (end === n && !final) return unfinished();
          rows.push({ line: startLine, raw: text.slice(start, end).replace(/\r$/, ''), error: broken });
          i = Math.min(end + 1, n);
          line++;
          continue outer;
        }
      } else {
        let j = i;
        while (j < n && text[j] !== delimiter && text[j] !== '\n') j++;
        field = text.slice(i, j);
        if (text[j] === '\n' || j === n) field = field.replace(/\r$/, '');
        i = j;
      }
      fields.push(field);
      if (i >= n) {
        if (!final) return unfinished();
        break;
      }
      if (text[i] === delimiter) {
        i++;
        if (i >= n && !final) return unfinished();
        continue;
      }
      if (text[i] === '\r') i++;
      i++; // the line break
      line++;
      break;
    }
    const raw = text.slice(start, i).replace(/\r?\n$/, '');
    if (fields.length === 1 && fields[0] === '') continue; // a blank line
    rows.push({ line: startLine, raw, fields });
  }
  return { rows, consumed: i, lines: line - firstLine };
}

/** A source reading a watched folder; the folder is listed on each poll (a missing folder is an error in the result). */
export function createFileSource(
  spec: FileSourceSpec,
  deps: Pick<SourceDeps, 'state' | 'log'>,
  opts: FileSourceOptions = {},
): Source {
  return new FileSource(spec, deps, opts);
}

class FileSource implements Source {
  #spec: FileSourceSpec;
  #deps: Pick<SourceDeps, 'state' | 'log'>;
  #chunk: number;
  #match: RegExp | undefined;
  /** each file's size at the previous poll: a last line without a line break is taken when it has not changed */
  #seen = new Map<string, number>();

  constructor(spec: FileSourceSpec, deps: Pick<SourceDeps, 'state' | 'log'>, opts: FileSourceOptions) {
    const d = spec.delimiter ?? DEFAULTS.csvDelimiter;
    if (spec.format === 'csv' && (d.length !== 1 || /[\r\n"]/.test(d)))
      throw new TalonError(
        'BAD_REQUEST',
        `delimiter: must be one character other than a quote or a line break, not ${JSON.stringify(d)}`,
      );
    this.#spec = spec;
    this.#deps = deps;
    this.#chunk = Math.max(64, opts.chunkBytes ?? FILE_CHUNK_BYTES);
    this.#match = spec.pattern ? globToRegExp(spec.pattern) : undefined;
  }

  async poll(): Promise<PollResult> {
    const saved = (await this.#deps.state.get<Record<string, FilePosition>>(STATE_KEY)) ?? {};
    const next: Record<string, FilePosition> = {};
    const records: PipelineRecord[] = [];
    const bad: BadInput[] = [];
    let names: string[];
    try {
      const entries = await readdir(this.#spec.dir, { withFileTypes: true });
      names = entries
        .filter((e) => e.isFile() && (!this.#match || this.#match.test(e.name)))
        .map((e) => e.name)
        .sort();
    } catch (e) {
      return { records, bad, token: null, more: false, error: `dir ${this.#spec.dir}: ${(e as Error).message}` };
    }
    let budget = this.#chunk;
    let more = false;
    for (const name of names) {
      const path = join(this.#spec.dir, name);
      let st: Awaited<ReturnType<typeof stat>>;
      try {
        st = await stat(path);
      } catch {
        continue; // removed since the listing
      }
      const size = Number(st.size);
      const ino = Number(st.ino);
      let pos = saved[name];
      if (pos && (pos.ino !== ino || size < pos.offset)) {
        this.#deps.log('info', `${path}: replaced (a new inode or a smaller size): read again from the start`);
        pos = undefined;
      }
      pos ??= { ino, offset: 0, line: 0 };
      const prevSeen = this.#seen.get(name);
      this.#seen.set(name, size);
      if (budget <= 0) {
        next[name] = pos;
        if (this.#pending(pos, size, Number(st.mtimeMs))) more = true;
        continue;
      }
      if (this.#spec.format === 'json') {
        if (!this.#pending(pos, size, Number(st.mtimeMs))) {
          next[name] = pos;
          continue;
        }
        budget -= size;
        next[name] = { ino, offset: size, line: 0, size, mtimeMs: Number(st.mtimeMs) };
        if (size > JSON_MAX_BYTES) {
          bad.push({ error: `${name}: ${size} bytes, more than the ${JSON_MAX_BYTES} a json file may have`, raw: '' });
          continue;
        }
        const text = await this.#read(path, 0, size);
        this.#json(name, text, records, bad);
        continue;
      }
      if (size <= pos.offset) {
        next[name] = pos;
        continue;
      }
      const want = Math.min(size - pos.offset, budget);
      const buf = await this.#readBytes(path, pos.offset, want);
      const atEnd = pos.offset + buf.length >= size;
      // the last line without a break is complete when the file has stopped growing
      const final = atEnd && prevSeen === size;
      const cut = final ? buf.length : buf.lastIndexOf(10) + 1;
      if (cut === 0) {
        next[name] = pos;
        if (!atEnd) {
          more = true;
          // a line longer than a chunk would stop the file for good: it goes to bad
          if (buf.length >= this.#chunk) {
            bad.push({
              error: `${name} line ${pos.line + 1}: a line longer than ${this.#chunk} bytes: skipped`,
              raw: buf.subarray(0, 200).toString(),
              line: pos.line + 1,
            });
            const end = await this.#skipLine(path, pos.offset + buf.length, size);
            next[name] = { ...pos, offset: end, line: pos.line + 1 };
          }
        }
        budget -= buf.length;
        continue;
      }
      const text = buf.subarray(0, cut).toString('utf8');
      budget -= cut;
      const full = buf.length >= this.#chunk;
      next[name] =
        this.#spec.format === 'csv'
          ? this.#csv(name, text, final, full, pos, records, bad)
          : this.#jsonl(name, text, pos, records, bad);
      if (!atEnd) more = true;
    }
    return { records, bad, token: { files: next }, more };
  }

  #pending(pos: FilePosition, size: number, mtimeMs: number): boolean {
    if (this.#spec.format !== 'json') return size > pos.offset;
    return pos.size !== size || pos.mtimeMs !== mtimeMs;
  }

  #csv(
    name: string,
    text: string,
    final: boolean,
    full: boolean,
    pos: FilePosition,
    records: PipelineRecord[],
    bad: BadInput[],
  ): FilePosition {
    const delimiter = this.#spec.delimiter ?? DEFAULTS.csvDelimiter;
    let parsed = parseCsv(text, delimiter, final, pos.line + 1);
    // a quoted field open across a whole chunk would stop the file for good: read as final, it becomes a broken row
    if (parsed.consumed === 0 && full && !final) parsed = parseCsv(text, delimiter, true, pos.line + 1);
    const consumed = parsed.consumed;
    let header = pos.header;
    const useHeader = this.#spec.header ?? DEFAULTS.csvHeader;
    for (const row of parsed.rows) {
      if ('error' in row) {
        bad.push({ error: `${name} line ${row.line}: ${row.error}`, raw: row.raw, line: row.line });
        continue;
      }
      if (!header) {
        if (useHeader) {
          header = row.fields;
          continue;
        }
        header = row.fields.map((_, k) => `field${k + 1}`);
      }
      if (row.fields.length !== header.length) {
        bad.push({
          error: `${name} line ${row.line}: ${row.fields.length} field${row.fields.length === 1 ? '' : 's'}, the header has ${header.length}`,
          raw: row.raw,
          line: row.line,
        });
        continue;
      }
      const rec: PipelineRecord = {};
      header.forEach((h, k) => {
        rec[h] = row.fields[k];
      });
      records.push(rec);
    }
    const bytes = Buffer.byteLength(text.slice(0, consumed), 'utf8');
    return { ino: pos.ino, offset: pos.offset + bytes, line: pos.line + parsed.lines, ...(header && { header }) };
  }

  #jsonl(name: string, text: string, pos: FilePosition, records: PipelineRecord[], bad: BadInput[]): FilePosition {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    lines.forEach((raw, k) => {
      const line = pos.line + k + 1;
      const t = raw.trim();
      if (!t) return;
      try {
        const v: unknown = JSON.parse(t);
        if (isObject(v)) records.push(v);
        else bad.push({ error: `${name} line ${line}: not an object`, raw, line });
      } catch (e) {
        bad.push({ error: `${name} line ${line}: not JSON (${(e as Error).message})`, raw, line });
      }
    });
    return { ino: pos.ino, offset: pos.offset + Buffer.byteLength(text, 'utf8'), line: pos.line + lines.length };
  }

  #json(name: string, text: string, records: PipelineRecord[], bad: BadInput[]): void {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      bad.push({ error: `${name}: not JSON (${(e as Error).message}): the whole file is left out`, raw: text });
      return;
    }
    const list = Array.isArray(v) ? v : [v];
    list.forEach((item, k) => {
      if (isObject(item)) records.push(item);
      else bad.push({ error: `${name}: element ${k} is not an object`, raw: JSON.stringify(item) ?? String(item) });
    });
  }

  async #readBytes(path: string, offset: number, length: number): Promise<Buffer> {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async #read(path: string, offset: number, length: number): Promise<string> {
    return (await this.#readBytes(path, offset, length)).toString('utf8');
  }

  /** The offset after the next line break at or after `from` (or `size`). */
  async #skipLine(path: string, from: number, size: number): Promise<number> {
    let at = from;
    while (at < size) {
      const buf = await this.#readBytes(path, at, Math.min(this.#chunk, size - at));
      const k = buf.indexOf(10);
      if (k >= 0) return at + k + 1;
      at += buf.length;
    }
    return size;
  }

  async ack(token: unknown): Promise<void> {
    if (!isObject(token) || !isObject(token.files)) return;
    await this.#deps.state.put(STATE_KEY, token.files);
  }

  async close(): Promise<void> {}
}
