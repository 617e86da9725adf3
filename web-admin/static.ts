/**
 * The built page (dist/web, made by `npm run build`): index.html for `/` and unknown non-API
 * paths (the page routes itself), hashed assets cached for a year with an ETag, `.br` / `.gz`
 * siblings when the client accepts them. No web root: 503 PAGE_NOT_BUILT.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { TalonError } from '../runtime/core/errors.ts';
import { distDir } from '../runtime/paths.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
/** `name-<8+ hex or base32>.ext`: content-addressed, safe to cache forever */
const HASHED = /[.-][A-Za-z0-9_]{8,}\.[a-z0-9]+$/;

export function defaultWebRoot(): string {
  return join(distDir(), 'web');
}

interface Cached {
  body: Buffer;
  etag: string;
  mtimeMs: number;
}

export class StaticFiles {
  readonly root: string;
  #cache = new Map<string, Cached>();

  constructor(root: string = defaultWebRoot()) {
    this.root = normalize(root);
  }

  available(): boolean {
    return existsSync(join(this.root, 'index.html'));
  }

  serve(req: IncomingMessage, res: ServerResponse, pathname: string): void {
    if (!this.available()) throw new TalonError('PAGE_NOT_BUILT', 'the web page is not built: run npm run build');
    let rel: string;
    try {
      rel = decodeURIComponent(pathname);
    } catch {
      throw new TalonError('BAD_REQUEST', 'the path is not valid percent-encoding');
    }
    let file = rel === '/' || rel.includes('\0') ? null : this.#resolve(rel);
    const isIndex = file === null;
    file ??= join(this.root, 'index.html');
    const ext = extname(file);
    const accept = String(req.headers['accept-encoding'] ?? '');
    let served = file;
    let encoding: string | null = null;
    for (const [enc, suffix] of [
      ['br', '.br'],
      ['gzip', '.gz'],
    ] as const) {
      if (new RegExp(`\\b${enc}\\b`).test(accept) && existsSync(file + suffix)) {
        served = file + suffix;
        encoding = enc;
        break;
      }
    }
    const c = this.#read(served);
    res.setHeader('content-type', TYPES[ext] ?? 'application/octet-stream');
    res.setHeader('vary', 'accept-encoding');
    res.setHeader('etag', c.etag);
    res.setHeader('cache-control', !isIndex && HASHED.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (encoding) res.setHeader('content-encoding', encoding);
    if (req.headers['if-none-match'] === c.etag) {
      res.writeHead(304);
      res.end();
      return;
    }
    res.setHeader('content-length', c.body.length);
    res.writeHead(200);
    res.end(req.method === 'HEAD' ? undefined : c.body);
  }

  /** a file inside the root, or null (then index.html answers) */
  #resolve(rel: string): string | null {
    const full = normalize(join(this.root, rel));
    if (!full.startsWith(this.root + sep)) return null;
    try {
      return statSync(full).isFile() ? full : null;
    } catch {
      return null;
    }
  }

  #read(file: string): Cached {
    const st = statSync(file);
    const hit = this.#cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs) return hit;
    const body = readFileSync(file);
    const c = {
      body,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      mtimeMs: st.mtimeMs,
    };
    this.#cache.set(file, c);
    return c;
  }
}
