/** nextTimes and missedTimes: cron with seconds and zones, `at`, and bounded catch-up. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { missedTimes, nextTimes } from '../../../hands/scheduling/triggers.ts';

const T = Date.UTC(2026, 0, 1, 12, 0, 0);

test('cron: next times with seconds, strictly after, in a time zone', () => {
  assert.deepEqual(nextTimes({ cron: '*/10 * * * * *' }, T, 3), [T + 10_000, T + 20_000, T + 30_000]);
  assert.deepEqual(nextTimes({ cron: '*/10 * * * * *' }, T + 1, 1), [T + 10_000]);
  // 09:00 in Berlin is 08:00 UTC in January
  const [nine] = nextTimes({ cron: '0 9 * * *', timezone: 'Europe/Berlin' }, T, 1);
  assert.equal(new Date(nine as number).toISOString(), '2026-01-02T08:00:00.000Z');
  assert.deepEqual(nextTimes({ every: 1000 }, T, 3), []);
});

test('at: once, only when after', () => {
  assert.deepEqual(nextTimes({ at: T + 5 }, T, 3), [T + 5]);
  assert.deepEqual(nextTimes({ at: T }, T, 3), []);
  assert.deepEqual(nextTimes({ at: '2026-01-01T12:00:00Z' }, T - 1, 1), [T]);
});

test('missedTimes: none, last, all within window and max, oldest first', () => {
  const c = { cron: '* * * * * *' };
  assert.deepEqual(missedTimes(c, T, T + 10_000, { mode: 'none' }), []);
  assert.deepEqual(missedTimes(c, T, T + 10_000, { mode: 'last' }), [T + 10_000]);
  assert.deepEqual(missedTimes(c, T, T + 10_500), [T + 10_000]); // default: last
  assert.deepEqual(
    missedTimes(c, T, T + 5000, { mode: 'all', max: 100 }),
    [1, 2, 3, 4, 5].map((i) => T + i * 1000),
  );
  assert.deepEqual(missedTimes(c, T, T + 5000, { mode: 'all', max: 2 }), [T + 4000, T + 5000]);
  assert.deepEqual(missedTimes(c, T, T + 5000, { mode: 'all', window: '2s', max: 100 }), [
    T + 3000,
    T + 4000,
    T + 5000,
  ]);
  assert.deepEqual(missedTimes(c, T + 5000, T + 5000, { mode: 'all' }), []);
  assert.deepEqual(missedTimes({ at: T + 3 }, T, T + 10, { mode: 'all' }), [T + 3]);
  assert.deepEqual(missedTimes({ at: T + 3 }, T, T + 10, { mode: 'none' }), []);
  assert.deepEqual(missedTimes({ at: T + 3 }, T, T + 10 + 86_400_000), []); // out of the default window
});

test('a per-second cron down for a month costs at most max steps', () => {
  const month = 30 * 86_400_000;
  const c = { cron: '* * * * * *' };
  const all = missedTimes(c, T - month, T, { mode: 'all', window: '31d', max: 1000 });
  assert.equal(all.length, 1000);
  assert.equal(all.at(-1), T);
  assert.equal(all[0], T - 999_000);
  assert.deepEqual(missedTimes(c, T - month, T, { mode: 'last' }), [T]);
});
