/** Supervisor.reconcile: removed Hands stop, new ones start, changed ones restart, unchanged ones are not touched. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, waitState } from '../../helpers/supervisor-harness.ts';
import { fixture } from '../../helpers/fixtures.ts';
import type { HandConfig } from '../../../runtime/config/types.ts';

test('reconcile adds, removes and restarts only what changed', { timeout: 30_000 }, async () => {
  const idle = await fixture('idle');
  const counter = await fixture('counter');
  const h = await startHarness([
    { name: 'keep', fixture: 'idle' },
    { name: 'change', fixture: 'idle' },
    { name: 'drop', fixture: 'idle' },
  ]);
  try {
    for (const n of ['keep', 'change', 'drop']) await waitState(h.sup, n, 'running');
    const keepSince = h.sup.status('keep').since;
    const hands: HandConfig[] = [
      // the harness configured these with the fixture name as the module
      { name: 'keep', module: 'idle', enabled: true, settings: {} },
      { name: 'change', module: 'idle', enabled: true, settings: { x: 1 } },
      { name: 'fresh', module: counter, enabled: true, settings: {} },
      { name: 'off', module: idle, enabled: false, settings: {} },
    ];
    const r = await h.sup.reconcile(hands);
    assert.deepEqual(r, { added: ['fresh', 'off'], removed: ['drop'], restarted: ['change'] });
    assert.deepEqual(
      h.sup.list().map((s) => s.name),
      ['keep', 'change', 'fresh', 'off'],
    );
    assert.equal(h.sup.status('keep').since, keepSince, 'an unchanged Hand is not touched');
    assert.equal(h.sup.status('keep').state, 'running');
    await waitState(h.sup, 'change', 'running');
    await waitState(h.sup, 'fresh', 'running');
    assert.equal(h.sup.status('off').state, 'stopped');
    assert.deepEqual(h.sup.handConfig('change').settings, { x: 1 });
    assert.throws(() => h.sup.status('drop'), /no Hand named "drop"/);
    await assert.rejects(
      h.sup.reconcile([
        { name: 'a', module: idle, enabled: true, settings: {} },
        { name: 'a', module: idle, enabled: true, settings: {} },
      ]),
      /must be unique/,
    );
  } finally {
    await h.close();
  }
});
