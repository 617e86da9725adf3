/**
 * `file.read`, `file.write`, `file.list`, `file.delete`: a caller's own folder (`caller.folder`,
 * `<dataDir>/hands/<name>/files` for a Hand), and nothing outside it.
 *
 * Every path is resolved against the folder; a `..` that leaves it, an absolute path elsewhere,
 * or a symbolic link that points out of it (the nearest existing part of the path is resolved
 * with realpath) is refused with CAPABILITY_DENIED naming the path as the caller wrote it. The
 * check runs twice: in `check` (so the registry audits it as a denial) and again in `run` (for
 * admins, who skip `check`, and to narrow the window between the two). A link made between the
 * check and the open is not caught: the folder is the Hand's, so only a program the Hand runs
 * itself (a granted `ln`) could race it.
 *
 * Writes go to a temporary file beside the target and are renamed over it, so a reader never
 * sees half a file; a file larger than `maxFileBytes` (10 MiB) or a write that would take the
 * folder past `quotaBytes` (100 MiB) is refused with QUOTA_EXCEEDED.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { TalonError } from '../../core/errors.ts';
import type { ToolCaller, ToolDefinition } from '../types.ts';

export const FILE_DEFAULTS = { maxFileBytes: 10 * 1024 * 1024, quotaBytes: 100 * 1024 * 1024 } as const;

export interface FileToolsOptions {
  /** the largest file file.write may leave (default 10 MiB) */
  maxFileBytes?: number;
  /** the most the whole folder may hold after a write (default 100 MiB) */
  quotaBytes?: number;
}

/** `inner` is `outer` or lies inside it (both absolute and normalized). */
export function isInside(outer: string, inner: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

function denied(action: string, path: string, why: string): TalonError {
  return new TalonError(
    'CAPABILITY_DENIED',
    `${action}: "${path}" ${why}; only paths inside the caller's folder are allowed`,
    {
      details: { action, subject: path },
    },
  );
}

/**
 * Resolve `path` (as a caller wrote it) inside `folder`, or throw CAPABILITY_DENIED: a `..`
 * escape, an absolute path elsewhere, a symbolic link on the way that points outside. With
 * `followLast: false` the last part may itself be a link (file.delete removes the link, not
 * what it points at). Returns the absolute path and the path relative to the folder.
 */
export function resolveInside(
  folder: string,
  path: string,
  action: string,
  opts: { followLast?: boolean } = {},
): { abs: string; rel: string } {
  const root = resolve(folder);
  if (path.includes('\0')) throw denied(action, path, 'contains a NUL byte');
  const abs = resolve(root, path);
  if (!isInside(root, abs)) throw denied(action, path, 'is outside the folder');
  // the folder itself may be a link (a data dir on another disk): compare real paths with real paths
  const realRoot = existsSync(root) ? realpathSync(root) : root;
  let probe = opts.followLast === false && abs !== root ? dirname(abs) : abs;
  for (;;) {
    if (!isInside(root, probe)) break; // nothing inside the folder exists yet
    let exists = false;
    try {
      lstatSync(probe);
      exists = true;
    } catch {
      exists = false;
    }
    if (exists) {
      let real: string;
      try {
        real = realpathSync(probe);
      } catch {
        // a dangling link: where it points does not exist, so it cannot be followed safely
        throw denied(action, path, 'goes through a symbolic link that points nowhere');
      }
      if (!isInside(realRoot, real))
        throw denied(action, path, 'goes through a symbolic link that points outside the folder');
      break;
    }
    if (probe === root) break;
    probe = dirname(probe);
  }
  return { abs, rel: relative(root, abs) || '.' };
}

function notFound(rel: string): TalonError {
  return new TalonError('NOT_FOUND', `no such file or folder: "${rel}" (paths are relative to the caller's folder)`, {
    details: { path: rel },
  });
}

function isENOENT(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT' || (err as NodeJS.ErrnoException)?.code === 'ENOTDIR';
}

/** Bytes of regular files under `dir` (links not followed), stopping early past `stopAt`. */
async function usage(dir: string, stopAt: number): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        try {
          total += (await lstat(p)).size;
        } catch {
          // removed meanwhile
        }
        if (total > stopAt) return total;
      }
    }
  }
  return total;
}

const PATH_PROP = {
  type: 'string',
  maxLength: 4096,
  description: "a path relative to the caller's folder (an absolute path must lie inside it)",
};

export interface FileReadInput {
  path: string;
  encoding?: 'utf8' | 'base64';
  offset?: number;
  length?: number;
}
export interface FileReadOutput {
  path: string;
  content: string;
  encoding: 'utf8' | 'base64';
  /** the whole file's size in bytes */
  size: number;
  offset: number;
  /** bytes of the file this answer covers */
  bytes: number;
  /** where the next read starts; null at the end of the file */
  nextOffset: number | null;
}
export interface FileWriteInput {
  path: string;
  content: string;
  encoding?: 'utf8' | 'base64';
  append?: boolean;
}
export interface FileListInput {
  path?: string;
  recursive?: boolean;
  limit?: number;
}
export interface FileEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mtime: string;
}
export interface FileDeleteInput {
  path: string;
  recursive?: boolean;
}

export function fileTools(opts: FileToolsOptions = {}): ToolDefinition[] {
  const maxFileBytes = opts.maxFileBytes ?? FILE_DEFAULTS.maxFileBytes;
  const quotaBytes = opts.quotaBytes ?? FILE_DEFAULTS.quotaBytes;

  const read: ToolDefinition<FileReadInput, FileReadOutput> = {
    name: 'file.read',
    description:
      "Read a file of the caller's own folder, as UTF-8 text (default) or base64. Long files come in parts: " +
      'the answer says the size and `nextOffset`; call again with `offset` to go on.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: PATH_PROP,
        encoding: { enum: ['utf8', 'base64'], description: 'utf8 (default) or base64 for binary files' },
        offset: { type: 'integer', minimum: 0, description: 'the byte to start at (default 0)' },
        length: { type: 'integer', minimum: 0, description: 'bytes to read at most (default: what fits the answer)' },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['path', 'content', 'encoding', 'size', 'offset', 'bytes', 'nextOffset'],
      properties: {
        path: { type: 'string' },
        content: { type: 'string' },
        encoding: { enum: ['utf8', 'base64'] },
        size: { type: 'integer' },
        offset: { type: 'integer' },
        bytes: { type: 'integer' },
        nextOffset: { type: ['integer', 'null'] },
      },
    },
    annotations: { title: 'Read a file', readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    capability: "the caller's own folder (no grant needed)",
    check(input, caller) {
      resolveInside(caller.folder, input.path, 'file.read');
      return null;
    },
    async run(input, ctx) {
      const { abs, rel } = resolveInside(ctx.caller.folder, input.path, 'file.read');
      const encoding = input.encoding ?? 'utf8';
      let fh: import('node:fs/promises').FileHandle;
      try {
        fh = await open(abs, 'r');
      } catch (err) {
        if (isENOENT(err)) throw notFound(rel);
        if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw notAFile(rel, 'a folder');
        throw failed('file.read', rel, err);
      }
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw notAFile(rel, 'not a regular file');
        const offset = Math.min(input.offset ?? 0, st.size);
        const budget = Math.max(1024, ctx.maxOutputBytes - 1024);
        const fits = encoding === 'base64' ? Math.floor((budget * 3) / 4) : budget;
        let length = Math.min(input.length ?? fits, st.size - offset, maxFileBytes);
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        length = bytesRead;
        if (encoding === 'utf8' && offset + length < st.size) length = utf8Boundary(buf, length);
        const end = offset + length;
        return {
          path: rel,
          content: buf.subarray(0, length).toString(encoding),
          encoding,
          size: st.size,
          offset,
          bytes: length,
          nextOffset: end < st.size ? end : null,
        };
      } finally {
        await fh.close();
      }
    },
  };

  const write: ToolDefinition<FileWriteInput, { path: string; bytes: number; size: number }> = {
    name: 'file.write',
    description:
      "Write a file in the caller's own folder (creating its folders), replacing it or, with `append`, adding to " +
      'its end. The content is UTF-8 text, or base64 with encoding: base64. Readers never see half a file.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['path', 'content'],
      properties: {
        path: PATH_PROP,
        content: { type: 'string', description: 'what to write' },
        encoding: { enum: ['utf8', 'base64'], description: 'how `content` is written: utf8 (default) or base64' },
        append: { type: 'boolean', description: 'add to the end instead of replacing (default false)' },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['path', 'bytes', 'size'],
      properties: { path: { type: 'string' }, bytes: { type: 'integer' }, size: { type: 'integer' } },
    },
    // not destructive: it writes only in the caller's own folder (a Hand's scratch space, under a quota), and
    // asking a person for every note a Hand keeps would teach people to wave approvals through; file.delete is
    // destructive. A Hand's `tools.approve` can still put every write before a person.
    annotations: {
      title: 'Write a file',
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: false,
      openWorldHint: false,
    },
    capability: "the caller's own folder (no grant needed); a file size cap and a folder quota",
    check(input, caller) {
      resolveInside(caller.folder, input.path, 'file.write');
      return null;
    },
    async run(input, ctx) {
      const folder = resolve(ctx.caller.folder);
      await mkdir(folder, { recursive: true });
      const { abs, rel } = resolveInside(folder, input.path, 'file.write');
      if (abs === folder) throw notAFile(rel, 'the folder itself');
      const data = Buffer.from(input.content, input.encoding ?? 'utf8');
      let old = 0;
      try {
        const st = await lstat(abs);
        if (st.isDirectory()) throw notAFile(rel, 'a folder');
        old = st.isFile() ? st.size : 0;
      } catch (err) {
        if (!isENOENT(err)) throw err instanceof TalonError ? err : failed('file.write', rel, err);
      }
      const size = input.append ? old + data.length : data.length;
      if (size > maxFileBytes) {
        throw new TalonError(
          'QUOTA_EXCEEDED',
          `file.write: "${rel}" would be ${size} bytes, over the ${maxFileBytes}-byte limit for one file`,
          { details: { path: rel, size, limit: maxFileBytes } },
        );
      }
      const used = await usage(folder, quotaBytes + maxFileBytes);
      if (used - old + size > quotaBytes) {
        throw new TalonError(
          'QUOTA_EXCEEDED',
          `file.write: the folder holds ${used} bytes; writing "${rel}" would take it past its ${quotaBytes}-byte quota`,
          { details: { path: rel, used, size, limit: quotaBytes } },
        );
      }
      await mkdir(dirname(abs), { recursive: true });
      // mkdir may have walked through a link made meanwhile: check once more before writing
      resolveInside(folder, input.path, 'file.write');
      const tmp = join(dirname(abs), `.${basename(abs)}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        if (input.append && old > 0) {
          await copyFile(abs, tmp);
          await writeFile(tmp, data, { flag: 'a' });
        } else {
          await writeFile(tmp, data, { flag: 'wx' });
        }
        await rename(tmp, abs);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => {});
        throw failed('file.write', rel, err);
      }
      return { path: rel, bytes: data.length, size };
    },
  };

  const list: ToolDefinition<FileListInput, { path: string; entries: FileEntry[]; truncated: boolean }> = {
    name: 'file.list',
    description:
      "List a folder of the caller's own folder (default: its top): each entry's name, type (file, dir, symlink, " +
      'other), size in bytes and modification time. `recursive` walks sub-folders (names then hold their path).',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      properties: {
        path: { ...PATH_PROP, description: 'the folder to list (default: the top of the caller folder)' },
        recursive: { type: 'boolean', description: 'walk sub-folders too (links are not followed)' },
        limit: { type: 'integer', minimum: 1, maximum: 10_000, description: 'entries at most (default 1000)' },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['path', 'entries', 'truncated'],
      properties: {
        path: { type: 'string' },
        truncated: { type: 'boolean' },
        entries: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'type', 'size', 'mtime'],
            properties: {
              name: { type: 'string' },
              type: { enum: ['file', 'dir', 'symlink', 'other'] },
              size: { type: 'integer' },
              mtime: { type: 'string' },
            },
          },
        },
      },
    },
    annotations: { title: 'List files', readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    capability: "the caller's own folder (no grant needed)",
    check(input, caller) {
      resolveInside(caller.folder, input.path ?? '.', 'file.list');
      return null;
    },
    async run(input, ctx) {
      const folder = resolve(ctx.caller.folder);
      await mkdir(folder, { recursive: true });
      const { abs, rel } = resolveInside(folder, input.path ?? '.', 'file.list');
      const limit = input.limit ?? 1000;
      try {
        const st = await stat(abs);
        if (!st.isDirectory()) throw notAFile(rel, 'not a folder', 'file.list lists folders');
      } catch (err) {
        if (isENOENT(err)) throw notFound(rel);
        throw err instanceof TalonError ? err : failed('file.list', rel, err);
      }
      const entries: FileEntry[] = [];
      let truncated = false;
      const walk = async (dir: string, prefix: string): Promise<void> => {
        let names: string[];
        try {
          names = (await readdir(dir)).sort();
        } catch {
          return;
        }
        for (const name of names) {
          if (entries.length >= limit) {
            truncated = true;
            return;
          }
          let st: import('node:fs').Stats;
          try {
            st = await lstat(join(dir, name));
          } catch {
            continue;
          }
          const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
          entries.push({ name: prefix + name, type, size: st.size, mtime: st.mtime.toISOString() });
          if (input.recursive && type === 'dir') await walk(join(dir, name), `${prefix}${name}/`);
          if (truncated) return;
        }
      };
      await walk(abs, '');
      return { path: rel, entries, truncated };
    },
  };

  const del: ToolDefinition<FileDeleteInput, { path: string; type: 'file' | 'dir' | 'symlink' | 'other' }> = {
    name: 'file.delete',
    description:
      "Delete a file, a link or an empty folder of the caller's own folder; a folder with its contents needs " +
      '`recursive: true`. A link is removed, never what it points at.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: PATH_PROP,
        recursive: { type: 'boolean', description: 'delete a folder with everything in it (default false)' },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['path', 'type'],
      properties: { path: { type: 'string' }, type: { enum: ['file', 'dir', 'symlink', 'other'] } },
    },
    annotations: {
      title: 'Delete a file',
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    },
    capability: "the caller's own folder (no grant needed)",
    check(input, caller) {
      resolveInside(caller.folder, input.path, 'file.delete', { followLast: false });
      return null;
    },
    async run(input, ctx) {
      const folder = resolve(ctx.caller.folder);
      const { abs, rel } = resolveInside(folder, input.path, 'file.delete', { followLast: false });
      if (abs === folder) {
        throw new TalonError('CAPABILITY_DENIED', "file.delete: the caller's folder itself cannot be deleted", {
          details: { action: 'file.delete', subject: input.path },
        });
      }
      let st: import('node:fs').Stats;
      try {
        st = await lstat(abs);
      } catch (err) {
        if (isENOENT(err)) throw notFound(rel);
        throw failed('file.delete', rel, err);
      }
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
      try {
        if (type !== 'dir') await unlink(abs);
        else if (input.recursive) await rm(abs, { recursive: true });
        else await rmdir(abs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') {
          throw new TalonError(
            'CONFLICT',
            `file.delete: "${rel}" is a folder that is not empty; pass recursive: true`,
            {
              details: { path: rel },
            },
          );
        }
        if (isENOENT(err)) throw notFound(rel);
        throw failed('file.delete', rel, err);
      }
      return { path: rel, type };
    },
  };

  return [read, write, list, del] as ToolDefinition[];
}

function notAFile(rel: string, what: string, hint = ''): TalonError {
  return new TalonError('BAD_REQUEST', `"${rel}" is ${what}${hint ? `: ${hint}` : ''}`, { details: { path: rel } });
}

function failed(tool: string, rel: string, err: unknown): TalonError {
  const e = err as NodeJS.ErrnoException;
  return new TalonError('TOOL_FAILED', `${tool}: "${rel}": ${e?.code ?? ''} ${e?.message ?? String(err)}`.trim(), {
    details: { path: rel, errno: e?.code },
    cause: err,
  });
}

/** `caller.folder`, created (file.* and shell.exec work there). */
export function ensureFolder(caller: ToolCaller): string {
  const folder = resolve(caller.folder);
  mkdirSync(folder, { recursive: true });
  return folder;
}

/** The length ≤ `n` that does not end inside a UTF-8 sequence. */
function utf8Boundary(buf: Buffer, n: number): number {
  let i = n;
  // step back over continuation bytes (10xxxxxx), at most 3
  let back = 0;
  while (i > 0 && back < 4 && ((buf[i - 1] as number) & 0xc0) === 0x80) {
    i--;
    back++;
  }
  if (i === 0) return n;
  const lead = buf[i - 1] as number;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return back + 1 >= need ? n : i - 1;
}
