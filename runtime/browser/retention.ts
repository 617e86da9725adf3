/**
 * Retention of the files the browser tools store (runtime/tools/builtin/browser.ts): screenshots and downloads go into
 * each caller's folder under `browser/` (`browser/read-<ms>-<rand>.png`, `browser/<flow>-<ms>/<name>`), and nothing
 * else removes them. `sweepBrowserFiles(folder)` prunes one caller's `browser/`:
 *   1. files last modified more than `maxAgeMs` ago (default 7 days) are deleted;
 *   2. then, while the files left hold more than `maxBytes` (default 200 MiB), the oldest is deleted;
 *   3. folders under `browser/` left empty and not modified for an hour are removed (a flow that is running made its
 *      folder a moment ago and is about to write into it).
 * Only regular files inside `<folder>/browser/` are touched: symbolic links are neither followed nor deleted, and a
 * `browser` that is itself a link is left alone. KernelBrowser runs it for the callers it served (its comment says
 * when). It answers what it removed.
 */
import { lstat, readdir, realpath, rmdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const RETENTION_MAX_AGE_MS = 7 * 24 * 3600_000;
export const RETENTION_MAX_BYTES = 200 * 1024 * 1024;
/** an empty folder younger than this is kept (a flow may be about to write into it) */
const EMPTY_DIR_GRACE_MS = 3600_000;

export interface SweepOptions {
  /** files older than this are deleted (default 7 days) */
  maxAgeMs?: number;
  /** then the oldest files go until the rest hold at most this many bytes (default 200 MiB) */
  maxBytes?: number;
  /** the clock (tests) */
  now?: number;
}

export interface SweepResult {
  /** the files deleted, relative to the caller's folder (`browser/…`), and why */
  removed: Array<{ file: string; size: number; reason: 'age' | 'size' }>;
  /** folders removed because they were left empty */
  removedDirs: string[];
  /** the files kept and their bytes */
  kept: number;
  keptBytes: number;
}

interface Entry {
  rel: string;
  abs: string;
  size: number;
  mtimeMs: number;
}

/** Prunes `<folder>/browser/` (see the file's comment); a folder without one answers an empty result. */
export async function sweepBrowserFiles(folder: string, opts: SweepOptions = {}): Promise<SweepResult> {
  const maxAge = opts.maxAgeMs ?? RETENTION_MAX_AGE_MS;
  const maxBytes = opts.maxBytes ?? RETENTION_MAX_BYTES;
  const now = opts.now ?? Date.now();
  const result: SweepResult = { removed: [], removedDirs: [], kept: 0, keptBytes: 0 };
  const root = join(folder, 'browser');
  const top = await lstat(root).catch(() => null);
  if (!top?.isDirectory()) return result;
  // where browser/ really is: each file's folder is checked against it right before the unlink (a folder the caller
  // swapped for a link after the walk would send the unlink elsewhere)
  const rootReal = await realpath(root).catch(() => null);
  if (rootReal === null) return result;

  const files: Entry[] = [];
  const dirs: Array<{ rel: string; abs: string }> = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    const names = await readdir(abs).catch(() => [] as string[]);
    for (const name of names) {
      const a = join(abs, name);
      const r = `${rel}/${name}`;
      const st = await lstat(a).catch(() => null);
      if (!st) continue;
      if (st.isDirectory()) {
        await walk(a, r);
        dirs.push({ rel: r, abs: a });
      } else if (st.isFile()) files.push({ rel: r, abs: a, size: st.size, mtimeMs: st.mtimeMs });
    }
  };
  await walk(root, 'browser');

  const remove = async (f: Entry, reason: 'age' | 'size'): Promise<boolean> => {
    const expected = join(rootReal, dirname(f.rel).slice('browser'.length));
    if ((await realpath(dirname(f.abs)).catch(() => null)) !== expected) return false;
    try {
      await unlink(f.abs);
    } catch (err) {
      // gone already is as good as removed
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    }
    result.removed.push({ file: f.rel, size: f.size, reason });
    return true;
  };

  const left: Entry[] = [];
  for (const f of files) {
    if (now - f.mtimeMs > maxAge && (await remove(f, 'age'))) continue;
    left.push(f);
  }
  left.sort((x, y) => x.mtimeMs - y.mtimeMs || (x.rel < y.rel ? -1 : 1));
  let bytes = left.reduce((n, f) => n + f.size, 0);
  let i = 0;
  while (bytes > maxBytes && i < left.length) {
    const f = left[i++]!;
    if (await remove(f, 'size')) bytes -= f.size;
    else result.kept++;
  }
  result.kept += left.length - i;
  result.keptBytes = bytes;

  // deepest first (walk pushed children before their parent); browser/ itself stays
  for (const d of dirs) {
    const st = await lstat(d.abs).catch(() => null);
    if (!st?.isDirectory() || now - st.mtimeMs < EMPTY_DIR_GRACE_MS) continue;
    if ((await readdir(d.abs).catch(() => ['?'])).length > 0) continue;
    if (
      await rmdir(d.abs).then(
        () => true,
        () => false,
      )
    )
      result.removedDirs.push(d.rel);
  }
  return result;
}
