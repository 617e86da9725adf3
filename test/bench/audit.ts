/**
 * `node --import tsx test/bench/audit.ts`: the audit log's budgets on this machine, as
 * Markdown table rows in the style of test/bench/run.ts (which can call auditRows()).
 * Real LevelDB with sync writes, real Ed25519, in this process. The reference column is
 * measured in the same run: one put({sync:true}) per entry for appends, a bare LevelDB scan
 * of the same records for verification.
 * AUDIT_BENCH_ENTRIES sets the size of the verified log (default 1,000,000).
 */
import { runIfMain } from './lib.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, SYNC } from '../../runtime/store/store.ts';
import { DeviceKey } from '../../runtime/secrets/device-key.ts';
import { AuditChain } from '../../runtime/audit/chain.ts';
import type { AuditEvent } from '../../runtime/audit/types.ts';

const f = (n: number, d = 1): string => n.toFixed(d);
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number): number => bytes / 1024 / 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const event = (i: number): AuditEvent => ({
  actor: i % 2 ? 'hand:thermostat' : 'http:admin',
  action: i % 3 ? 'capability.check' : 'hand.start',
  subject: `talon/tdevice/bus/sensor-${i % 50}`,
  decision: i % 5 ? 'allow' : 'deny',
  detail: { capability: 'bus.publish', topic: `sensors/${i % 50}/temperature`, bytes: 100 + (i % 900) },
});

async function open(): Promise<{ dir: string; store: Store; key: DeviceKey; chain: AuditChain }> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-audit-bench-'));
  const store = await Store.open(dir);
  const key = DeviceKey.loadOrCreate(dir);
  const chain = new AuditChain(store, key, { verifyAtStart: false });
  await chain.start();
  return { dir, store, key, chain };
}

/** `callers` concurrent callers, each awaiting its entry before the next, for `count` entries */
async function appendRun(chain: AuditChain, count: number, callers: number, from = 0): Promise<number> {
  let next = from;
  const end = from + count;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < end) await chain.record(event(next++));
    }),
  );
  return count / ((performance.now() - t0) / 1000);
}

async function singleSyncPuts(store: Store, count: number): Promise<number> {
  const sub = store.sublevel('meta');
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await sub.put(`bench-${i}`, event(i), SYNC);
  const rate = count / ((performance.now() - t0) / 1000);
  await sub.clear({ gte: 'bench-', lt: 'bench.' });
  return rate;
}

async function latencyAt(
  chain: AuditChain,
  rate: number,
  seconds: number,
): Promise<{ p50: number; p99: number; max: number }> {
  const lat: number[] = [];
  const pending: Array<Promise<void>> = [];
  const t0 = performance.now();
  const total = rate * seconds;
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const s = performance.now();
    pending.push(chain.record(event(i)).then(() => void lat.push(performance.now() - s)));
  }
  await Promise.all(pending);
  lat.sort((a, b) => a - b);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
  return { p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1]! };
}

async function scanRate(store: Store): Promise<number> {
  const it = store.sublevel('auditlog').iterator({ valueEncoding: 'utf8', highWaterMarkBytes: 1 << 20 } as never);
  let n = 0;
  const t0 = performance.now();
  for (;;) {
    const rows = await it.nextv(1000);
    if (rows.length === 0) break;
    for (const [, v] of rows) JSON.parse(v as string);
    n += rows.length;
  }
  await it.close();
  return n / ((performance.now() - t0) / 1000);
}

export async function auditRows(say: (line: string) => void, opts: { entries?: number } = {}): Promise<void> {
  const entries = opts.entries ?? Number(process.env.AUDIT_BENCH_ENTRIES ?? 1_000_000);

  // appends: sustained, durable, many callers
  {
    const { dir, store, chain } = await open();
    try {
      const single = await singleSyncPuts(store, 500);
      await appendRun(chain, 5000, 256); // warm-up
      const rates = [await appendRun(chain, 100_000, 256, 5000), await appendRun(chain, 100_000, 256, 105_000)];
      const rate = Math.min(...rates);
      say(
        `| audit append, durable (group-committed sync batches, 256 callers, 2 × 100k, slower run) | ${int(rate)} entries/s | one put({sync:true}) per entry: ${int(single)} /s | **${f(rate / single, 0)}×** | ≥ 20,000 entries/s |`,
      );
      const lat = await latencyAt(chain, 1000, 5);
      say(
        `| audit append latency at 1,000 entries/s (record → durable) | p50 ${f(lat.p50, 2)} ms, p99 ${f(lat.p99, 2)} ms, max ${f(lat.max, 2)} ms | | | |`,
      );
      await chain.stop();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // verification over a large log, in a fresh store handle, memory sampled
  {
    const { dir, store, key, chain } = await open();
    try {
      const tb = performance.now();
      for (let done = 0; done < entries; done += 100_000)
        await appendRun(chain, Math.min(100_000, entries - done), 512, done);
      const buildS = (performance.now() - tb) / 1000;
      await chain.stop();
      await store.close();
      const s2 = await Store.open(dir);
      try {
        const scan = await scanRate(s2);
        (globalThis as { gc?: () => void }).gc?.();
        await sleep(200);
        const startRss = process.memoryUsage().rss;
        let peak = startRss;
        const samples: number[] = [];
        const timer = setInterval(() => {
          const r = process.memoryUsage().rss;
          samples.push(r);
          peak = Math.max(peak, r);
        }, 20);
        const t0 = performance.now();
        const report = await new AuditChain(s2, key).verify({ from: 'start' });
        const secs = (performance.now() - t0) / 1000;
        clearInterval(timer);
        const endRss = process.memoryUsage().rss;
        if (!report.ok || report.checked !== entries)
          throw new Error(`verification failed: ${report.reason ?? report.checked}`);
        const rate = report.checked / secs;
        say(
          `| audit verify, ${int(entries)} entries from seq 1 (hash chain + ${int(Math.floor(entries / 256))} Ed25519 checkpoints) | ${int(rate)} entries/s | bare LevelDB scan + JSON.parse: ${int(scan)} /s | **${f(rate / scan, 2)}×** | ≥ 100,000 entries/s |`,
        );
        say(
          `| audit verify, RSS over ${int(entries)} entries (${samples.length} samples) | start ${f(mb(startRss))} MB, peak ${f(mb(peak))} MB, end ${f(mb(endRss))} MB | | peak − start: ${f(mb(peak - startRss))} MB | flat |`,
        );
        say(
          `| (building that log: ${int(entries)} durable appends) | ${f(buildS)} s, ${int(entries / buildS)} entries/s | | | |`,
        );
      } finally {
        await s2.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

await runIfMain(import.meta.url, (say) => auditRows(say));
