/**
 * What the device tells the fleet about its hardware in the announce: board model, serial,
 * memory, OS, architecture, host name. Read from files only (device tree, DMI, os-release,
 * machine-id); no child processes. Anything unreadable is an empty string, never an error.
 */
import { readFileSync } from 'node:fs';
import { arch, hostname, totalmem } from 'node:os';
import type { Inventory } from '../format.ts';

/** the file system root to read from (tests point it at a fake tree) */
export interface InventoryOptions {
  root?: string;
}

const MAX = 200;

function read(root: string, path: string): string {
  try {
    // device-tree strings end in NUL
    return readFileSync(root + path, 'utf8')
      .replace(/\0/g, '')
      .trim()
      .slice(0, MAX);
  } catch {
    return '';
  }
}

function first(root: string, paths: string[]): string {
  for (const p of paths) {
    const v = read(root, p);
    if (v) return v;
  }
  return '';
}

/** PRETTY_NAME from os-release, else NAME VERSION_ID. */
export function osName(text: string): string {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!.replace(/^["']|["']$/g, '');
  }
  return (vars.PRETTY_NAME || [vars.NAME, vars.VERSION_ID].filter(Boolean).join(' ')).slice(0, MAX);
}

export function readInventory(opts: InventoryOptions = {}): Inventory {
  const root = opts.root ?? '';
  return {
    board: first(root, [
      '/proc/device-tree/model',
      '/sys/firmware/devicetree/base/model',
      '/sys/class/dmi/id/product_name',
    ]),
    serial: first(root, [
      '/proc/device-tree/serial-number',
      '/sys/firmware/devicetree/base/serial-number',
      '/etc/machine-id',
    ]),
    memoryBytes: opts.root === undefined ? totalmem() : memTotal(read(root, '/proc/meminfo')),
    os: osName(first(root, ['/etc/os-release', '/usr/lib/os-release'])),
    arch: arch(),
    hostname: (opts.root === undefined ? hostname() : read(root, '/etc/hostname')).slice(0, MAX),
  };
}

function memTotal(meminfo: string): number {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : 0;
}
