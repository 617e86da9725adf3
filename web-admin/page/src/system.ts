/** What GET /api/v1/system says about the device, shared by the status bar and the pages. */
import { store } from './store.ts';
import { get } from './api.ts';

export interface SystemInfo {
  deviceId: string;
  deviceName?: string;
  version: string;
  node?: string;
  platform?: string;
  arch?: string;
  board?: string;
  /** base64 Ed25519 device key */
  publicKey: string;
  startedAt?: number | string;
  uptimeMs?: number;
  configGeneration?: number;
}

export const system = store<SystemInfo | null>(null);

/** reads GET /api/v1/system again (the status bar's device name changes with the config) */
export async function refreshSystem(): Promise<void> {
  try {
    system.set(await get<SystemInfo>('/api/v1/system'));
  } catch {
    // the status bar keeps what it had
  }
}

/** after a config change: now, and again while the kernel restarts in process */
export function refreshSystemSoon(): void {
  for (const ms of [0, 1000, 3000, 6000]) setTimeout(() => void refreshSystem(), ms);
}

export interface PageProps {
  /** the parts of the hash route after the page's name */
  args: string[];
  user: { name: string; role: 'admin' | 'viewer' };
}
