/** Temp data folders with a store, a device key and an AuditChain, for the audit suites. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../runtime/store/store.ts';
import { DeviceKey } from '../../../runtime/secrets/device-key.ts';
import { AuditChain, type AuditChainOptions } from '../../../runtime/audit/chain.ts';
import type { AuditDecision } from '../../../runtime/audit/types.ts';

export interface Env {
  dir: string;
  store: Store;
  key: DeviceKey;
  chain: AuditChain;
  reopen(opts?: AuditChainOptions): Promise<AuditChain>;
  cleanup(): Promise<void>;
}

const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'talon-audit-'));
  dirs.push(d);
  return d;
}

/** a started chain in a fresh data folder (or `dir`) */
export async function openEnv(opts: AuditChainOptions = {}, dir = tempDir()): Promise<Env> {
  const key = DeviceKey.loadOrCreate(dir);
  const env: Env = {
    dir,
    key,
    store: await Store.open(dir),
    chain: null as unknown as AuditChain,
    async reopen(o = opts) {
      await env.chain.stop();
      await env.store.close();
      env.store = await Store.open(dir);
      env.chain = new AuditChain(env.store, key, o);
      await env.chain.start();
      return env.chain;
    },
    async cleanup() {
      await env.chain.stop();
      await env.store.close();
    },
  };
  env.chain = new AuditChain(env.store, key, opts);
  await env.chain.start();
  return env;
}

export const DECISIONS: AuditDecision[] = ['allow', 'deny', 'ok', 'error', 'info'];

/** n entries with varied actors, actions and decisions; resolves when all are durable */
export async function fill(chain: AuditChain, n: number, from = 0): Promise<void> {
  const ps: Array<Promise<void>> = [];
  for (let i = from; i < from + n; i++) {
    ps.push(
      chain.record({
        actor: i % 2 ? 'hand:thermostat' : 'http:admin',
        action: i % 3 === 0 ? 'capability.check' : i % 3 === 1 ? 'hand.start' : 'config.apply',
        subject: `subject-${i}`,
        decision: DECISIONS[i % DECISIONS.length]!,
        detail: { i, note: i % 7 === 0 ? 'ünïcødé ✓ 😀' : 'plain', nested: { deep: [i, null, true] } },
      }),
    );
  }
  await Promise.all(ps);
}

/** the raw stored text of every record in a sublevel, by key */
export async function raw(store: Store, sub: 'auditlog' | 'auditcp'): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for await (const [k, v] of store.sublevel(sub).iterator({ valueEncoding: 'utf8' })) m.set(k as string, v as string);
  return m;
}

export const key12 = (seq: number): string => seq.toString(16).padStart(12, '0');
