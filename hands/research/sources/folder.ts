/**
 * The `folder` source: documents on the device itself (a synced notes folder, downloaded papers), read with
 * node:fs/promises under the Hand's fs grant. The folder and its subfolders two levels down are listed (deeper
 * ones, dot files and dot folders are not), the newest files first (by mtime), up to `max`:
 *
 *   .md .markdown .txt   as text (the title: the first heading or line)
 *   .html .htm           through the web kit's readHtml
 *   .pdf                 its text through unpdf (loaded on the first PDF only: it is big)
 *   anything else        skipped, not an error
 *
 * A file over 20 MB is skipped with a SourceError of kind 'too-large'; a file that cannot be read or a PDF that
 * cannot be parsed is one of kind 'fs' or 'parse'. The URL is `file://<absolute path>`, the mtime is the published
 * time. Unchanged files are read again each run: the document store knows their text by its hash.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readHtml } from '../../sdk/web/index.ts';
import type { Candidate, SourceResult, SourceSpec } from '../types.ts';
import type { SourceEnv } from './index.ts';
import { emptyResult, textTitle } from './page.ts';

export const MAX_FILE_BYTES = 20 * 1024 * 1024;
/** subfolder levels listed below the folder itself */
export const MAX_DEPTH = 2;
/** the most directory entries looked at in one run (a folder of a million files is not listed whole) */
const MAX_ENTRIES = 10_000;

const TEXT = new Set(['.md', '.markdown', '.txt']);
const HTML = new Set(['.html', '.htm']);
const PDF = '.pdf';

interface FileEntry {
  path: string;
  size: number;
  mtime: number;
}

async function list(root: string, res: SourceResult, label: string): Promise<FileEntry[]> {
  const out: FileEntry[] = [];
  let looked = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      res.errors.push({ source: label, url: pathToFileURL(dir).href, kind: 'fs', message: (err as Error).message });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (++looked > MAX_ENTRIES) return;
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (depth < MAX_DEPTH) await walk(p, depth + 1);
      } else if (e.isFile()) {
        const ext = extname(e.name).toLowerCase();
        if (!TEXT.has(ext) && !HTML.has(ext) && ext !== PDF) continue;
        try {
          const s = await stat(p);
          out.push({ path: p, size: s.size, mtime: s.mtimeMs });
        } catch (err) {
          res.errors.push({ source: label, url: pathToFileURL(p).href, kind: 'fs', message: (err as Error).message });
        }
      }
    }
  };
  await walk(root, 0);
  return out;
}

/** a PDF's text (all pages, joined), unpdf imported on first use */
export async function pdfText(buf: Uint8Array): Promise<string> {
  const { extractText } = await import('unpdf');
  const { text } = await extractText(new Uint8Array(buf), { mergePages: true });
  return text;
}

async function readOne(f: FileEntry, label: string): Promise<Candidate> {
  const url = pathToFileURL(f.path).href;
  const ext = extname(f.path).toLowerCase();
  const name = basename(f.path);
  const buf = await readFile(f.path);
  let title: string;
  let text: string;
  if (ext === PDF) {
    text = (await pdfText(buf)).trim();
    title = textTitle(text, url).slice(0, 120) || name;
  } else if (HTML.has(ext)) {
    const page = readHtml(buf.toString('utf8'), url);
    text = page.text;
    title = page.title || name;
  } else {
    text = buf.toString('utf8');
    title = textTitle(text, url);
  }
  return { url, title, text, published: Math.round(f.mtime), source: label };
}

export async function readFolder(spec: SourceSpec, env: SourceEnv): Promise<SourceResult> {
  const res = emptyResult();
  const root = resolve(spec.path!);
  const files = (await list(root, res, spec.label)).sort((a, b) => b.mtime - a.mtime).slice(0, spec.max ?? 50);
  for (const f of files) {
    if (env.signal?.aborted) break;
    const url = pathToFileURL(f.path).href;
    if (f.size > MAX_FILE_BYTES) {
      res.errors.push({
        source: spec.label,
        url,
        kind: 'too-large',
        message: `${f.path}: ${Math.round(f.size / 1048576)} MB is over the ${MAX_FILE_BYTES / 1048576} MB a file may have`,
      });
      continue;
    }
    try {
      res.candidates.push(await readOne(f, spec.label));
    } catch (err) {
      const kind = extname(f.path).toLowerCase() === PDF && !(err as NodeJS.ErrnoException).code ? 'parse' : 'fs';
      res.errors.push({ source: spec.label, url, kind, message: `${f.path}: ${(err as Error).message}` });
    }
  }
  return res;
}
