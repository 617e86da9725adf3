/**
 * Unbounded data a Hand hands the kernel: log lines of megabytes (text and data), refusals on
 * 60 KB topics, calls with megabyte names. The kernel keeps a Hand's log to LOG_RING lines and
 * about LOG_RING_BYTES, each line's text to LOG_MSG_MAX and data to LOG_DATA_MAX; an audit
 * entry of a Hand's making has its subject cut to AUDIT_SUBJECT_MAX, and a Hand gets at most
 * deniesAuditedPerSec entries and auditBytesPerSec bytes of them a second (the rest summed up
 * in one audit.suppressed entry). Once through the SDK (which cuts too), once from a worker
 * runtime that is not the SDK (raw messages: the kernel's own checks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ROOT, startHarness, waitFor, sleep, type Harness } from '../../helpers/supervisor-harness.ts';
import {
  AUDIT_SUBJECT_MAX,
  DEFAULT_LIMITS,
  LOG_DATA_MAX,
  LOG_MSG_MAX,
  LOG_RING_BYTES,
} from '../../../runtime/supervisor/hand-runner.ts';
import type { AuditEntry } from '../../../runtime/audit/format.ts';

const MB = 1024 * 1024;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function flood(
  h: Harness,
  name: string,
  doneTopic: string,
): Promise<{ secs: number; peakGrowthMb: number; heapGrowthMb: number; entries: AuditEntry[] }> {
  const done = await h.collect(doneTopic);
  const before = (await h.auditEntries()).length;
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const t0 = Date.now();
  try {
    await h.sup.start();
    await waitFor(`${name} to finish its flood`, () => done.length > 0, 60_000);
  } finally {
    clearInterval(sampler);
  }
  const secs = (Date.now() - t0) / 1000;
  await sleep(1100); // the last second's audit.suppressed
  gc();
  const heapGrowthMb = (process.memoryUsage().heapUsed - heap0) / MB;
  const entries = (await h.auditEntries())
    .slice(before)
    .filter((e) => e.actor === `hand:${name}` || (e.action === 'audit.suppressed' && e.subject === name));
  return { secs, peakGrowthMb: (peak - rss0) / MB, heapGrowthMb, entries };
}

function checkKept(
  h: Harness,
  name: string,
  r: { secs: number; entries: AuditEntry[] },
): { logBytes: number; auditBytes: number } {
  const st = h.sup.status(name);
  assert.equal(st.state, 'running');
  assert.ok((st.truncated ?? 0) > 0, 'cut fields are counted');
  assert.ok((st.auditSuppressed ?? 0) > 0, 'held-back audit entries are counted');
  assert.ok(st.messages.denied > 0);
  // the log: bounded lines, text and data
  const logs = h.sup.logs(name);
  const logBytes = logs.reduce((n, l) => n + JSON.stringify(l).length, 0);
  assert.ok(logBytes <= LOG_RING_BYTES * 1.1, `the log holds ${logBytes} bytes`);
  for (const l of logs) {
    assert.ok(l.msg.length <= LOG_MSG_MAX + 64, `a line of ${l.msg.length} characters`);
    if (l.data)
      assert.ok(JSON.stringify(l.data).length <= LOG_DATA_MAX, `data of ${JSON.stringify(l.data).length} bytes`);
  }
  assert.ok(
    logs.some((l) => l.msg.includes('characters cut]')),
    'a cut line says so',
  );
  // the audit: bounded entries and bytes per second, subjects cut, the rest summed up
  const auditBytes = r.entries.reduce((n, e) => n + JSON.stringify(e).length, 0);
  const seconds = Math.ceil(r.secs) + 2;
  const summaries = r.entries.filter((e) => e.action === 'audit.suppressed');
  assert.ok(
    summaries.length > 0 && summaries.every((e) => (e.detail as { entries: number }).entries > 0),
    'what was held back is summed up',
  );
  const own = r.entries.filter((e) => e.action !== 'audit.suppressed');
  assert.ok(own.length <= DEFAULT_LIMITS.deniesAuditedPerSec * seconds, `${own.length} entries in ${r.secs} s`);
  assert.ok(
    auditBytes <= DEFAULT_LIMITS.auditBytesPerSec * seconds + summaries.length * 512,
    `${auditBytes} audit bytes in ${r.secs} s`,
  );
  for (const e of own)
    assert.ok(e.subject.length <= AUDIT_SUBJECT_MAX + 64, `a subject of ${e.subject.length} characters`);
  return { logBytes, auditBytes };
}

test('log and denial floods with huge fields through the SDK: the kernel keeps bounded logs and audit, its RSS stays bounded', async (t) => {
  const h = await startHarness([{ name: 'flood', fixture: 'field-flood', settings: { lines: 400, mb: 4 } }], {
    start: false,
    config: { hangTimeoutMs: 10_000 },
  });
  try {
    const r = await flood(h, 'flood', `${ROOT}/flood/done`);
    const kept = checkKept(h, 'flood', r);
    t.diagnostic(
      `400 log lines of 4 MB text + 4 MB data, 500 refused publishes on 60 KB topics, 200 refused subscribes, 20 calls with a 1 MB name in ${r.secs} s: ` +
        `kernel RSS peak growth ${Math.round(r.peakGrowthMb)} MB (the Hand's own heap included), kernel heap after ${Math.round(r.heapGrowthMb)} MB, ` +
        `log kept ${kept.logBytes} bytes, audit ${r.entries.length} entries / ${kept.auditBytes} bytes`,
    );
    assert.ok(r.peakGrowthMb < 512, `RSS grew by ${Math.round(r.peakGrowthMb)} MB`);
    assert.ok(r.heapGrowthMb < 32, `the kernel's heap grew by ${Math.round(r.heapGrowthMb)} MB`);
  } finally {
    await h.close();
  }
});

test('a worker runtime that is not the SDK (raw messages of megabytes) is held to the same bounds by the kernel', async (t) => {
  const h = await startHarness([{ name: 'raw', fixture: 'idle', settings: { lines: 200, mb: 2 } }], {
    start: false,
    workerFixture: 'raw-worker',
    config: { hangTimeoutMs: 10_000 },
  });
  try {
    const r = await flood(h, 'raw', `${ROOT}/raw/done`);
    const kept = checkKept(h, 'raw', r);
    const st = h.sup.status('raw');
    assert.ok(st.messages.denied >= 200 * 4, 'refusals counted, the ones the worker said it held back included');
    assert.ok(!st.lastError, 'its huge error messages were logged, not taken as a crash');
    t.diagnostic(
      `200 × (2 MB log text + 2 MB data, a refusal with a 1 MB action and subject, a publish on a 60 KB topic outside the grant, every 8th a 2 MB error) in ${r.secs} s: ` +
        `kernel RSS peak growth ${Math.round(r.peakGrowthMb)} MB (messages waiting to be read), kernel heap after ${Math.round(r.heapGrowthMb)} MB, ` +
        `log kept ${kept.logBytes} bytes, audit ${r.entries.length} entries / ${kept.auditBytes} bytes`,
    );
    assert.ok(r.heapGrowthMb < 32, `the kernel's heap grew by ${Math.round(r.heapGrowthMb)} MB`);
  } finally {
    await h.close();
  }
});
