/**
 * Memory outside the V8 heap: a Hand's Buffers and ArrayBuffers are not under its heap cap
 * (quotas.heapMb). The kernel reads them from V8 (worker.getHeapStatistics().external_memory)
 * and stops a Hand over quotas.externalMb. Real workers; the kernel's RSS is this process's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, waitState, sleep } from '../../helpers/supervisor-harness.ts';

const MB = 1024 * 1024;

test("a Buffer bomb is stopped near its external-memory quota, restarted by the policy, then parked; the kernel's RSS stays bounded", async (t) => {
  const h = await startHarness(
    [
      { name: 'bomb', fixture: 'buffer-bomb', quotas: { heapMb: 16, externalMb: 32 }, settings: { maxMb: 1024 } },
      { name: 'idle', fixture: 'idle' },
    ],
    { start: false, config: { crashLoop: { restarts: 3, windowMs: 60000 } } },
  );
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  try {
    await h.sup.start();
    // each run goes for 1 GB; three crashes within the window park it
    const failed = await waitState(h.sup, 'bomb', 'failed', 30000);
    clearInterval(sampler);
    assert.equal(failed.lastError?.code, 'QUOTA_EXCEEDED');
    assert.match(failed.lastError!.message, /external memory quota of 32 MB \(([\d.]+) MB of Buffers/);
    const held = Number(/\(([\d.]+) MB of Buffers/.exec(failed.lastError!.message)![1]);
    const growth = (peak - rss0) / MB;
    t.diagnostic(
      `stopped at ${held} MB outside the heap (quota 32 MB); kernel RSS ${Math.round(rss0 / MB)} MB before, peak growth ${Math.round(growth)} MB over three runs aiming at 1024 MB each`,
    );
    // stopped before the bomb's goal: the quota is enforced. How far past the quota it got is the
    // kernel's reaction time on this shared machine (202 MB alone, 298 MB with the suite running
    // beside it), a figure for the isolation benchmark (BENCHMARKS.md, issue 13), not a pass mark
    assert.ok(held < 1024, `stopped at ${held} MB, not at the bomb's 1024 MB`);
    assert.ok(growth < 512, `the kernel's RSS grew by ${Math.round(growth)} MB`);
    const audit = await h.auditEntries();
    const crashes = audit.filter((e) => e.action === 'hand.crash' && e.subject === 'bomb');
    assert.equal(crashes.length, 3);
    assert.ok(crashes.every((e) => (e.detail as { error: { code: string } }).error.code === 'QUOTA_EXCEEDED'));
    assert.ok(audit.some((e) => e.action === 'hand.failed' && e.subject === 'bomb'));
    // the figure is in every Hand's status: the default quota is twice heapMb (at least 16 MB)
    await sleep(300);
    const idle = h.sup.status('idle');
    assert.equal(idle.state, 'running');
    assert.equal(idle.externalLimitMb, 64);
    assert.ok(
      typeof idle.externalMb === 'number' && idle.externalMb > 0 && idle.externalMb < 16,
      `idle holds ${idle.externalMb} MB outside its heap`,
    );
  } finally {
    clearInterval(sampler);
    await h.close();
  }
});
