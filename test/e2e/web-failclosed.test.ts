/**
 * Fail closed, for real: the daemon's data folder on a small tmpfs, filled up while it runs.
 * A Hand restart through the API is then refused (503 AUDIT_UNAVAILABLE) and does not happen,
 * /healthz answers 503 naming the store and the audit log, and the retained state topic says
 * `degraded`. Once space is freed the chain recovers by itself: an `audit.gap` entry records
 * the window and what was refused, actions work again, the chain verifies, and everything
 * written after the recovery is still there after a restart of the daemon (the store was
 * re-synced: LevelDB drops writes made after a failed one when it replays its log).
 *
 * Needs root (mount -t tmpfs); skipped with the reason otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { ensureBuilt, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { fixture } from '../helpers/fixtures.ts';
import { waitFor } from '../helpers/wait.ts';

interface HandStatus {
  state: string;
  restarts: number;
  since: number;
}
interface Entry {
  seq: number;
  action: string;
  decision: string;
  subject: string;
  detail: Record<string, unknown>;
}

/** mounts a tmpfs of `size`; returns the reason it cannot, or null */
function mountTmpfs(dir: string, size: string): string | null {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? null : `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}`;
}

/** writes `file` until the file system is full */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  let n = 0;
  try {
    for (const chunk of [1 << 20, 64 << 10, 4096, 512, 64, 1]) {
      const buf = Buffer.alloc(chunk, 0x5a);
      for (;;) {
        try {
          n += writeSync(fd, buf);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

test('a full data folder: privileged actions refused and not carried out, /healthz and the state topic fail, the gap is recorded on recovery', async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'talon-full-'));
  const why = mountTmpfs(mnt, '24m');
  if (why) {
    rmSync(mnt, { recursive: true, force: true });
    t.skip(why);
    return;
  }
  ensureBuilt();
  const idle = await fixture('idle');
  const dataDir = join(mnt, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const filler = join(mnt, 'filler');
  let d: Daemon | null = null;
  let client: mqtt.MqttClient | null = null;
  try {
    d = await startDaemon({ hands: [{ name: 'idle', module: idle }] }, { dataDir });
    const base = `http://127.0.0.1:${d.httpPort}`;
    const token = d.token();
    const call = async (
      method: string,
      path: string,
      body?: unknown,
    ): Promise<{ status: number; json: any; headers: Headers }> => {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: r.status, json: await r.json(), headers: r.headers };
    };
    const hand = async (): Promise<HandStatus> => (await call('GET', '/api/v1/hands/idle')).json as HandStatus;
    const deadline = Date.now() + 15_000;
    while ((await hand()).state !== 'running') {
      assert.ok(Date.now() < deadline, 'idle never ran');
      await new Promise((r) => setTimeout(r, 50));
    }

    const deviceId = d.deviceId();
    const states: string[] = [];
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
    client.on('message', (topic, payload) => {
      if (topic === `talon/${deviceId}/state`) states.push(payload.toString());
    });
    await client.subscribeAsync(`talon/${deviceId}/state`);
    await waitFor(() => states.at(-1) === 'online', 'state online');

    // the disk fills up; audited test messages until the first refusal (LevelDB's log may
    // have had room left in its last page)
    assert.ok(fill(filler) > 1 << 20);
    let primed = 0;
    for (;;) {
      const r = await call('POST', '/api/v1/bus/publish', { topic: 'test/fill', payload: 'x' });
      primed++;
      if (r.status === 503) {
        assert.equal(r.json.error.code, 'AUDIT_UNAVAILABLE');
        break;
      }
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.ok(primed < 200, 'the audit log never failed on a full disk');
    }

    const before = await hand();
    for (let i = 0; i < 5; i++) {
      const r = await call('POST', '/api/v1/hands/idle/restart');
      assert.equal(r.status, 503, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'AUDIT_UNAVAILABLE');
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    }
    const after = await hand();
    assert.equal(after.state, 'running');
    assert.equal(after.restarts, before.restarts, 'the refused restarts did not happen');
    assert.equal(after.since, before.since, 'the refused restarts did not happen');
    // a token cannot be made either (accounts fail closed the same way)
    const tok = await call('POST', '/api/v1/tokens', { name: 'during', scopes: ['hands:read'] });
    assert.equal(tok.status, 503, JSON.stringify(tok.json));
    assert.equal(tok.json.error.code, 'AUDIT_UNAVAILABLE');

    const sick = await fetch(`${base}/healthz`);
    assert.equal(sick.status, 503);
    const sickBody = (await sick.json()) as {
      status: string;
      checks: Record<string, boolean>;
      problems: Record<string, string>;
    };
    assert.equal(sickBody.status, 'unavailable');
    assert.equal(sickBody.checks.store, false);
    assert.equal(sickBody.checks.audit, false);
    assert.match(sickBody.problems.audit!, /cannot be written/);
    assert.ok(sickBody.problems.store);
    await waitFor(() => states.at(-1) === 'degraded', 'state degraded', 10_000);

    // space returns: the chain recovers by itself (no action needed), the state is online again
    rmSync(filler);
    const healed = Date.now() + 15_000;
    while ((await fetch(`${base}/healthz`)).status !== 200) {
      assert.ok(Date.now() < healed, 'healthz never recovered');
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor(() => states.at(-1) === 'online', 'state online again', 10_000);
    const ok = await call('POST', '/api/v1/hands/idle/restart');
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal((await hand()).restarts, before.restarts + 1);

    const gaps = (await call('GET', '/api/v1/audit?action=audit.gap')).json.items as Entry[];
    assert.equal(gaps.length, 1, JSON.stringify(gaps));
    const gap = gaps[0]!.detail as {
      from: number;
      to: number;
      refused: number;
      actions: Record<string, number>;
      error: string;
    };
    assert.equal(gap.actions['api.hands.restart'], 5);
    assert.equal(gap.actions['auth.token.create'], 1);
    assert.ok(gap.refused >= 7, `refused ${gap.refused}`);
    assert.ok(gap.to > gap.from);
    assert.match(gap.error, /No space left|ENOSPC/i);
    // nothing of the refused restarts is in the log: the restart after the gap is the only one
    const restarts = (await call('GET', '/api/v1/audit?action=api.hands.restart')).json.items as Entry[];
    assert.deepEqual(restarts.map((e) => e.decision).sort(), ['allow', 'ok']);
    assert.ok(restarts.every((e) => e.seq > gaps[0]!.seq));
    const verify = await call('POST', '/api/v1/audit/verify', { from: 'start' });
    assert.equal(verify.json.ok, true, JSON.stringify(verify.json));

    // what was written after the recovery survives a restart of the daemon
    await client.endAsync();
    client = null;
    assert.equal(await d.stop(), 0, d.output());
    d = await startDaemon({}, { configFile: d.configFile });
    const again = (await (
      await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/audit?action=audit.gap`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as { items: Entry[] };
    assert.equal(again.items.length, 1);
    const restartsAgain = (await (
      await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/audit?action=api.hands.restart`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as { items: Entry[] };
    assert.deepEqual(
      restartsAgain.items.map((e) => e.seq),
      restarts.map((e) => e.seq),
    );
    const verify2 = await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/audit/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'start' }),
    });
    const report = (await verify2.json()) as { ok: boolean };
    assert.equal(report.ok, true, JSON.stringify(report));
    const notes = (await (
      await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/audit?action=audit.*`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as { items: Entry[] };
    assert.ok(!notes.items.some((e) => e.action === 'audit.broken'), JSON.stringify(notes.items));
  } finally {
    await client?.endAsync().catch(() => {});
    await d?.stop('SIGKILL').catch(() => {});
    spawnSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});
