/**
 * `talon run` keeps running across a soft restart (POST /api/v1/system/restart): the same
 * process, the same port, a second kernel.start in the audit log, and a clean exit after.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from '../helpers/daemon.ts';

test('a soft restart keeps the daemon serving on the same port', { timeout: 60_000 }, async () => {
  const d = await startDaemon({ hands: [] });
  const base = `http://127.0.0.1:${d.httpPort}`;
  const auth = { authorization: `Bearer ${d.token()}` };
  let exited = false;
  void d.exited.then(() => {
    exited = true;
  });
  try {
    const r = await fetch(`${base}/api/v1/system/restart`, { method: 'POST', headers: auth });
    assert.equal(r.status, 202, await r.text());
    let starts = 0;
    for (let i = 0; i < 400 && starts < 2; i++) {
      try {
        const a = await fetch(`${base}/api/v1/audit?action=kernel.start`, { headers: auth });
        if (a.status === 200) {
          const body = (await a.json()) as { entries?: unknown[]; items?: unknown[] };
          starts = (body.entries ?? body.items ?? []).length;
        }
      } catch {
        // between the stop and the start nothing listens
      }
      if (starts < 2) await new Promise((res) => setTimeout(res, 25));
    }
    assert.equal(starts, 2, d.output());
    assert.equal(exited, false);
    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
  } finally {
    assert.equal(await d.stop(), 0, d.output());
  }
});
