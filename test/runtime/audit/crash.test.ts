/**
 * Crash consistency: a child appends as fast as it can and prints every acknowledged entry;
 * it is SIGKILLed at a random point (sometimes while it is still starting), 50 times on one
 * data folder. After each kill every acknowledged entry is there, and the chain verifies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Store } from '../../../runtime/store/store.ts';
import { DeviceKey } from '../../../runtime/secrets/device-key.ts';
import { AuditChain } from '../../../runtime/audit/chain.ts';
import type { AuditEntry } from '../../../runtime/audit/format.ts';
import { tempDir } from './harness.ts';

const APPENDER = join(import.meta.dirname, '../../fixtures/audit/appender.ts');
const RUNS = 50;

function runAndKill(dir: string, run: number, rnd: () => number): Promise<{ acked: number[]; ready: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', APPENDER, dir, String(run)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: number[] = [];
    let ready = false;
    let buf = '';
    let err = '';
    const kill = (): void => void child.kill('SIGKILL');
    // one run in ten is killed during start (wherever it is); the rest 10–250 ms into appending
    const early = rnd() < 0.1;
    if (early) setTimeout(kill, 150 + rnd() * 400);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') {
          ready = true;
          if (!early) setTimeout(kill, 10 + rnd() * 240);
        } else if (line.startsWith('ack ')) {
          for (const n of line.slice(4).split(' ')) acked.push(Number(n));
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`appender exited ${code}: ${err}`));
      else resolve({ acked, ready });
    });
  });
}

test(`SIGKILL during heavy appends, ${RUNS} times: every acknowledged entry survives and the chain verifies`, {
  timeout: 170_000,
}, async () => {
  const dir = tempDir();
  const key = DeviceKey.loadOrCreate(dir);
  let seed = Date.now() % 2 ** 31;
  console.log(`# crash loop seed ${seed}`);
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let headBefore = 0;
  let total = 0;
  for (let run = 0; run < RUNS; run++) {
    const { acked } = await runAndKill(dir, run, rnd);
    total += acked.length;
    const store = await Store.open(dir);
    try {
      // offline, before anyone seals it: the chain is whole up to its last checkpoint
      const offline = await new AuditChain(store, key).verify({ from: 'checkpoint' });
      assert.ok(offline.ok || offline.kind === 'unsigned-tail', `run ${run} before restart: ${offline.reason}`);
      const chain = new AuditChain(store, key, { verifyAtStart: false });
      await chain.start();
      const seen = new Set<number>();
      for await (const e of chain.entries({ since: headBefore + 1 })) {
        if (e.action === 'crash.append' && (e.detail as { run: number }).run === run)
          seen.add((e.detail as { n: number }).n);
      }
      const lost = acked.filter((n) => !seen.has(n));
      assert.deepEqual(lost, [], `run ${run}: ${lost.length} of ${acked.length} acknowledged entries lost`);
      const r = await chain.verify({ from: 'checkpoint' });
      assert.equal(r.ok, true, `run ${run}: ${r.reason}`);
      await chain.stop();
      headBefore = chain.head().seq;
    } finally {
      await store.close();
    }
  }
  assert.ok(total > 0, 'the children acknowledged entries');
  const store = await Store.open(dir);
  const full = await new AuditChain(store, key).verify({ from: 'start' });
  assert.equal(full.ok, true, full.reason);
  let recovered = 0;
  for await (const e of new AuditChain(store, key).entries())
    if ((e as AuditEntry).action === 'audit.recover') recovered++;
  assert.ok(recovered > 0, 'unclean shutdowns were recorded as audit.recover');
  console.log(`# ${RUNS} kills, ${total} acknowledged, ${full.checked} entries verified, ${recovered} recoveries`);
  await store.close();
});
