/**
 * Auto-approve rules (DIR/policies.json), used by `talon fleet watch`: a device whose verified
 * announce matches every `key=glob` of a rule gets that rule's config. Keys are inventory
 * fields (board, serial, memoryBytes, os, arch, hostname), `version` / `node` (software) and
 * `deviceId`; globs use `*` (any run) and `?` (one character), the whole value must match.
 * The first matching rule wins.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TalonError } from '../../runtime/core/errors.ts';
import type { AnnouncePayload } from '../format.ts';
import { atomicWrite } from './broker.ts';

export const POLICY_KEYS = [
  'board',
  'serial',
  'memoryBytes',
  'os',
  'arch',
  'hostname',
  'version',
  'node',
  'deviceId',
] as const;
export type PolicyKey = (typeof POLICY_KEYS)[number];

export interface Policy {
  id: string;
  match: Partial<Record<PolicyKey, string>>;
  /** absolute path of the device config file (read when a device is approved) */
  config: string;
  /** absolute path of a secrets file (NAME: value), optional */
  secretsFile?: string;
  createdAt: number;
}

const FILE = 'policies.json';

export function readPolicies(fleetDir: string): Policy[] {
  const file = join(fleetDir, FILE);
  if (!existsSync(file)) return [];
  const v = JSON.parse(readFileSync(file, 'utf8')) as { policies?: Policy[] };
  return Array.isArray(v.policies) ? v.policies : [];
}

export function addPolicy(
  fleetDir: string,
  matches: string[],
  config: string,
  opts: { secretsFile?: string; now?: number } = {},
): Policy {
  if (matches.length === 0) throw new TalonError('USAGE', 'a policy needs at least one --match key=glob');
  const match: Policy['match'] = {};
  for (const m of matches) {
    const i = m.indexOf('=');
    const key = i > 0 ? m.slice(0, i) : '';
    if (!(POLICY_KEYS as readonly string[]).includes(key)) {
      throw new TalonError(
        'USAGE',
        `--match takes key=glob with key one of ${POLICY_KEYS.join(', ')}; got "${m.slice(0, 60)}"`,
      );
    }
    match[key as PolicyKey] = m.slice(i + 1);
  }
  const abs = resolve(config);
  if (!existsSync(abs)) throw new TalonError('CONFIG_NOT_FOUND', `the config file ${abs} does not exist`);
  const policy: Policy = {
    id: `p-${randomBytes(3).toString('hex')}`,
    match,
    config: abs,
    createdAt: opts.now ?? Date.now(),
    ...(opts.secretsFile ? { secretsFile: resolve(opts.secretsFile) } : {}),
  };
  const all = [...readPolicies(fleetDir), policy];
  atomicWrite(join(fleetDir, FILE), `${JSON.stringify({ policies: all }, null, 2)}\n`, 0o600);
  return policy;
}

export function removePolicy(fleetDir: string, id: string): boolean {
  const all = readPolicies(fleetDir);
  const kept = all.filter((p) => p.id !== id);
  if (kept.length === all.length) return false;
  atomicWrite(join(fleetDir, FILE), `${JSON.stringify({ policies: kept }, null, 2)}\n`, 0o600);
  return true;
}

/** The value a policy key reads from an announce. */
export function announceField(a: AnnouncePayload, key: PolicyKey): string {
  switch (key) {
    case 'version':
      return a.software.version;
    case 'node':
      return a.software.node;
    case 'deviceId':
      return a.deviceId;
    default:
      return String(a.inventory[key]);
  }
}

export function policyMatches(p: Policy, a: AnnouncePayload): boolean {
  return Object.entries(p.match).every(([k, glob]) => globMatch(glob, announceField(a, k as PolicyKey)));
}

/** The first policy matching the announce, if any. */
export function findPolicy(policies: Policy[], a: AnnouncePayload): Policy | undefined {
  return policies.find((p) => policyMatches(p, a));
}

/** Whole-string glob: `*` any run (also empty), `?` one character; everything else literal. */
export function globMatch(glob: string, value: string): boolean {
  const re = glob
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${re}$`, 's').test(value);
}
