/**
 * Where the program's own files are. In the esbuild bundle (dist/talon.cjs) the worker
 * runtime and the built-in Hands sit beside the bundle; when running from source (tests,
 * tsx) they are in <repo>/dist, made by `npm run build`.
 */
import { join } from 'node:path';

declare const __TALON_BUNDLE__: boolean | undefined;

export const isBundled: boolean = typeof __TALON_BUNDLE__ !== 'undefined' && __TALON_BUNDLE__ === true;

export function distDir(): string {
  return isBundled ? import.meta.dirname : join(import.meta.dirname, '..', 'dist');
}

/** the file a Hand's worker_thread runs */
export function handWorkerEntry(): string {
  return join(distDir(), 'hand-worker.cjs');
}

/** a built-in Hand's module file, by id */
export function builtinHandModule(id: string): string {
  return join(distDir(), 'hands', `${id}.cjs`);
}
