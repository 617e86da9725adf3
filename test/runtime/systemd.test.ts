/**
 * runtime/systemd.ts: what Talon tells systemd and when. The sender is a stand-in for
 * systemd-notify that appends its arguments to a file (the real one is exercised by the image
 * boot test, where systemd reports talon.service started only after READY=1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemdNotifier } from '../../runtime/systemd.ts';
import { waitFor } from '../helpers/wait.ts';

function fakeNotify(): { command: string; lines: () => string[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'talon-sdnotify-'));
  const command = join(dir, 'systemd-notify');
  const log = join(dir, 'sent');
  writeFileSync(command, `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> ${log}\n`);
  chmodSync(command, 0o755);
  return { command, dir, lines: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
}

test('outside systemd (no NOTIFY_SOCKET) nothing is sent', async () => {
  const f = fakeNotify();
  try {
    const sd = systemdNotifier({ env: { WATCHDOG_USEC: '3000' }, command: f.command });
    assert.equal(sd.watchdogMs, null);
    sd.ready();
    sd.stopping();
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(f.lines(), []);
  } finally {
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('READY=1, then WATCHDOG=1 every WATCHDOG_USEC/3, then STOPPING=1 and no more pings', async () => {
  const f = fakeNotify();
  try {
    const sd = systemdNotifier({
      env: { NOTIFY_SOCKET: '/run/x.sock', WATCHDOG_USEC: '300000', WATCHDOG_PID: '4242' },
      pid: 4242,
      command: f.command,
    });
    assert.equal(sd.watchdogMs, 300);
    sd.ready();
    await waitFor(() => f.lines().filter((l) => l.endsWith('WATCHDOG=1')).length >= 2, 'two watchdog pings', 10_000);
    assert.equal(f.lines()[0], '/run/x.sock READY=1 STATUS=running');
    sd.stopping();
    await waitFor(() => f.lines().some((l) => l.includes('STOPPING=1')), 'STOPPING=1', 10_000);
    const n = f.lines().length;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(f.lines().length, n, 'no ping after STOPPING=1');
  } finally {
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('no watchdog for another process (WATCHDOG_PID), none while unhealthy', async () => {
  const f = fakeNotify();
  try {
    const other = systemdNotifier({
      env: { NOTIFY_SOCKET: '/run/x.sock', WATCHDOG_USEC: '30000', WATCHDOG_PID: '1' },
      pid: 2,
      command: f.command,
    });
    assert.equal(other.watchdogMs, null);
    let healthy = false;
    const sd = systemdNotifier({
      env: { NOTIFY_SOCKET: '/run/y.sock', WATCHDOG_USEC: '30000' },
      command: f.command,
      healthy: () => healthy,
    });
    sd.ready();
    await waitFor(() => f.lines().some((l) => l.includes('READY=1')), 'READY=1', 10_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!f.lines().some((l) => l.includes('WATCHDOG=1')), 'unhealthy: not fed');
    healthy = true;
    await waitFor(() => f.lines().some((l) => l.includes('WATCHDOG=1')), 'a ping once healthy', 10_000);
    sd.close();
  } finally {
    rmSync(f.dir, { recursive: true, force: true });
  }
});
