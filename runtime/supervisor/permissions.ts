/**
 * The worker's execArgv for Node's permission model, built from a Hand's grants. The worker
 * may read its own entry file, its Hand's module file, and the paths it was granted; it may
 * write only the paths it was granted. It gets --allow-net only with a `network: { raw: true }`
 * grant (raw sockets to all of the network); every other Hand reaches the network through the
 * kernel (ctx.fetch). It never gets --allow-worker (a worker holding it can start a child
 * worker with broader rights), --allow-child-process, --allow-addons, --allow-wasi,
 * --allow-ffi or --allow-inspector.
 * What Node enforces with these flags, and what it does not, is in ./README.md.
 */
import { resolve } from 'node:path';
import type { Capabilities } from '../core/hand.ts';

/** the flag that turns the permission model on: experimental on Node 20 and 21, stable from 22 */
export function permissionFlag(nodeVersion: string = process.versions.node): string {
  const major = Number(nodeVersion.split('.')[0]);
  return major >= 22 ? '--permission' : '--experimental-permission';
}

export interface PermissionInput {
  workerEntry: string;
  modulePath: string;
  fs: Capabilities['fs'];
  /** `network.raw`: the worker may open sockets itself (--allow-net) */
  rawNetwork?: boolean;
}

const FORBIDDEN = [
  '--allow-worker',
  '--allow-child-process',
  '--allow-addons',
  '--allow-wasi',
  '--allow-ffi',
  '--allow-inspector',
  '--allow-fs-vfs',
  '--allow-openssl-store',
];

export function workerExecArgv(input: PermissionInput, nodeVersion: string = process.versions.node): string[] {
  const reads = unique([input.workerEntry, input.modulePath, ...input.fs.read].map((p) => resolve(p)));
  const writes = unique(input.fs.write.map((p) => resolve(p)));
  const argv = [permissionFlag(nodeVersion), '--disable-warning=ExperimentalWarning'];
  // one flag per path: Node 20 also accepts a comma list, but a path may contain a comma
  for (const p of reads) argv.push(`--allow-fs-read=${p}`);
  for (const p of writes) argv.push(`--allow-fs-write=${p}`);
  if (input.rawNetwork === true) argv.push('--allow-net');
  for (const a of argv) {
    if (FORBIDDEN.some((f) => a.startsWith(f))) throw new Error(`refusing to grant ${a} to a Hand`);
  }
  return argv;
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}
