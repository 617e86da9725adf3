/** What GET /api/v1/system says about the device, shared by the status bar and the pages. */
import { store } from './store.ts';

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

export interface PageProps {
  /** the parts of the hash route after the page's name */
  args: string[];
  user: { name: string; role: 'admin' | 'viewer' };
}
