/**
 * A Hand whose event loop never idles, but whose heartbeats keep coming (it works in slices,
 * so the SDK's timer still fires; a Hand cannot post heartbeats of its own: the port is the
 * SDK's, see permissions.test.ts). The kernel measures the worker's event-loop utilisation
 * itself and ends it after hangTimeoutMs, whatever it posts. A Hand awaiting a kernel call sits
 * idle in its loop and is never ended for it (hand-io.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT, startHarness, waitFor, waitState } from '../../helpers/supervisor-harness.ts';

test('a Hand busy for longer than hangTimeoutMs is ended with HAND_TIMEOUT though its heartbeats keep coming', async (t) => {
  const h = await startHarness(
    [
      { name: 'busy', fixture: 'busy-beats', settings: { afterMs: 100 } },
      { name: 'idle', fixture: 'idle' },
    ],
    { start: false, config: { heartbeatMs: 50, hangTimeoutMs: 800, crashLoop: { restarts: 1, windowMs: 60000 } } },
  );
  try {
    const result = await h.collect(`${ROOT}/busy/result`);
    await h.sup.start();
    await waitFor('the result', () => result.length > 0);
    assert.equal(
      JSON.parse(result[0]!.payload.toString()).parentPort,
      'hidden',
      "Hand code cannot reach the worker's port",
    );
    // busy, and still heartbeating: the status (from its heartbeats' windows) shows a full core
    await waitState(h.sup, 'busy', (s) => s.state === 'running' && s.cpu > 0.9, 10000);
    const ended = await waitState(h.sup, 'busy', (s) => s.lastError?.code === 'HAND_TIMEOUT', 10000);
    t.diagnostic(ended.lastError!.message);
    assert.match(ended.lastError!.message, /busy for \d+ ms .* while it kept posting heartbeats/);
    const audit = await h.auditEntries();
    assert.ok(
      audit.some(
        (e) =>
          e.action === 'hand.crash' &&
          e.subject === 'busy' &&
          (e.detail as { error: { code: string } }).error.code === 'HAND_TIMEOUT',
      ),
    );
    assert.equal(h.sup.status('idle').state, 'running');
    assert.equal(h.sup.status('idle').restarts, 0, 'an idle Hand is never busy');
  } finally {
    await h.close();
  }
});
