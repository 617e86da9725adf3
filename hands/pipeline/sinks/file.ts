/**
 * The Data Pipeline Hand's file sink: records appended to `spec.path` as JSON Lines or CSV (RFC 4180: CRLF line ends,
 * a field holding a comma, a quote, CR, LF or leading/trailing space is quoted, quotes doubled), with node:fs on the
 * Hand's `fs` grant, following ./types.ts's contract.
 *
 * Durability: a batch is answered `done` only after its bytes are fsynced (and the folder fsynced after a file is
 * created or rotated), so an acknowledged record survives a power cut. A write error (ENOSPC, EACCES, ENOTDIR …)
 * truncates the file back to where the batch started (no half line) and answers done 0 with retryAfterMs (1 s,
 * doubled after each failure in a row up to 60 s) and the error.
 *
 * Rotation: before a record that would take the file past `rotate.maxBytes`, or once the file is `rotate.maxAgeMs`
 * old, the file is renamed `<name>.<UTC stamp>.<ext>` (`readings.20261203T192200123Z.jsonl`; `-1`, `-2` … on a clash)
 * and a new one started. A file's age counts from when this writer started it or first found it (a restart restarts
 * the count). A single record larger than maxBytes still goes in (alone in its file).
 *
 * CSV: the header is the first record's keys, written at the top of each new file (an existing file's first line is
 * read back as its header). A later record with a field the header lacks starts a new file (rotated as above) whose
 * header is that record's keys, so no field is dropped; a missing field is an empty cell. Values: null or absent →
 * empty, strings as written, numbers and booleans as text, objects and arrays as JSON. Reading an existing CSV file's
 * header needs the path on the grant's read list as well; JSON Lines only writes.
 * A record that cannot be serialized (a BigInt, a cycle) is rejected alone.
 */
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { type FileHandle, mkdir, open, rename, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { FileSinkSpec, PipelineRecord } from '../types.ts';
import type { SinkDeps, SinkEntry, SinkResult, SinkWriter } from './types.ts';

export const FILE_BACKOFF = Object.freeze({ firstMs: 1000, maxMs: 60_000 });

const CSV_SPECIAL = /[",\r\n]|^\s|\s$/;

/** One CSV field, quoted when RFC 4180 asks for it. */
export function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return CSV_SPECIAL.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export const csvLine = (values: unknown[]): string => `${values.map(csvField).join(',')}\r\n`;

/** `20261203T192200123Z` */
export function utcStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}

/** Splits a CSV header line (quotes allowed) into its names. */
function parseHeader(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

class FileSink implements SinkWriter {
  readonly #spec: FileSinkSpec;
  readonly #deps: SinkDeps;
  #fh: FileHandle | undefined;
  #size = 0;
  #startedAt = 0;
  #header: string[] | undefined;
  #failures = 0;

  constructor(spec: FileSinkSpec, deps: SinkDeps) {
    this.#spec = spec;
    this.#deps = deps;
  }

  async write(batch: SinkEntry[]): Promise<SinkResult> {
    const rejected: SinkResult['rejected'] = [];
    let settled = 0;
    let pending = '';
    let from = 0; // the current file's size where `pending` starts
    try {
      await this.#open();
      from = this.#size;
      for (let i = 0; i < batch.length; i++) {
        const record = (batch[i] as SinkEntry).record;
        let line: string;
        try {
          line = this.#line(record);
        } catch (err) {
          rejected.push({ index: i, error: `cannot be written as ${this.#spec.format}: ${(err as Error).message}` });
          continue;
        }
        const newFields =
          this.#spec.format === 'csv' && this.#header && Object.keys(record).some((k) => !this.#header?.includes(k));
        const bytes = Buffer.byteLength(line);
        const { maxBytes, maxAgeMs } = this.#spec.rotate;
        const full = maxBytes !== undefined && this.#size > 0 && this.#size + bytes > maxBytes;
        const old = maxAgeMs !== undefined && this.#size > 0 && this.#deps.now() - this.#startedAt >= maxAgeMs;
        if (newFields || full || old) {
          await this.#flush(pending);
          settled = i;
          pending = '';
          from = this.#size; // flushed: a later failure must not cut it off
          await this.#rotate();
          from = this.#size;
        }
        if (this.#spec.format === 'csv' && !this.#header) {
          this.#header = Object.keys(record);
          const head = csvLine(this.#header);
          pending += head;
          this.#size += Buffer.byteLength(head);
        }
        if (this.#spec.format === 'csv') line = this.#line(record);
        pending += line;
        this.#size += Buffer.byteLength(line);
      }
      await this.#flush(pending);
      this.#failures = 0;
      return { done: batch.length, rejected };
    } catch (err) {
      await this.#undo(from);
      const retryAfterMs = Math.min(FILE_BACKOFF.firstMs * 2 ** this.#failures++, FILE_BACKOFF.maxMs);
      const error = `writing ${this.#spec.path} failed: ${(err as Error).message}; retrying in ${retryAfterMs} ms`;
      this.#deps.log('warn', error);
      return { done: settled, rejected: rejected.filter((r) => r.index < settled), retryAfterMs, error };
    }
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => {});
  }

  #line(record: PipelineRecord): string {
    if (this.#spec.format === 'jsonl') {
      const json = JSON.stringify(record);
      if (typeof json !== 'string') throw new Error('not a JSON object');
      return `${json}\n`;
    }
    const header = this.#header ?? Object.keys(record);
    const values = header.map((k) => record[k]);
    for (const v of values) if (typeof v === 'object' && v !== null) JSON.stringify(v); // a cycle throws here
    return csvLine(values);
  }

  /** opens (creating the folder and file) when not open; reads an existing file's size and CSV header */
  async #open(): Promise<void> {
    if (this.#fh) return;
    const path = this.#spec.path;
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, 'a');
    try {
      const st = await fh.stat();
      this.#size = st.size;
      this.#startedAt = this.#deps.now();
      this.#header = undefined;
      if (this.#spec.format === 'csv' && st.size > 0) this.#header = await readHeader(path, st.size);
      if (st.size === 0) syncDir(dirname(path));
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.#fh = fh;
  }

  async #flush(text: string): Promise<void> {
    if (!this.#fh) return;
    if (text) await this.#fh.appendFile(text);
    await this.#fh.sync();
  }

  async #rotate(): Promise<void> {
    const path = this.#spec.path;
    await this.close();
    const ext = extname(path);
    const stem = join(dirname(path), basename(path, ext));
    const stamp = utcStamp(this.#deps.now());
    let target = `${stem}.${stamp}${ext}`;
    for (let n = 1; await exists(target); n++) target = `${stem}.${stamp}-${n}${ext}`;
    await rename(path, target);
    syncDir(dirname(path));
    this.#deps.log('info', `file sink rotated ${path} to ${target}`);
    await this.#open();
  }

  /** after a failed write: cut the file back to where the batch's unsettled part began, and reopen next time */
  async #undo(size: number): Promise<void> {
    const fh = this.#fh;
    if (fh) await fh.truncate(size).catch(() => {});
    await this.close();
  }
}

/** an existing CSV file's header: its first line (read needs the `fs` grant's read list to hold the path too) */
async function readHeader(path: string, size: number): Promise<string[]> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(Math.min(size, 65_536));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return parseHeader(buf.subarray(0, bytesRead).toString('utf8').split(/\r?\n/)[0] ?? '');
  } finally {
    await fh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** fsync a folder so a created or renamed entry survives a power cut (best effort: some systems refuse it) */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // not every file system lets a folder be fsynced
  }
}

export function createFileSink(spec: FileSinkSpec, deps: SinkDeps): SinkWriter {
  return new FileSink(spec, deps);
}
