import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clockStatus } from '../../../runtime/host/clock.ts';

test('clock.status: timesyncd flag, later than the build, or not synchronised (a Pi booting in 1970)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-clock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const flag = join(dir, 'synchronized');
  const build = Date.parse('2026-11-30T00:00:00Z');
  const at = (iso: string) => () => Date.parse(iso);
  assert.deepEqual(
    { ...clockStatus({ flag, buildTime: build, now: at('1970-01-01T00:00:05Z') }), now: 0 },
    { now: 0, synced: false, source: 'unsynchronised', buildTime: build },
  );
  // at its last shutdown time, before this build: not trusted either
  assert.equal(clockStatus({ flag, buildTime: build, now: at('2026-11-29T23:00:00Z') }).synced, false);
  assert.equal(clockStatus({ flag, buildTime: build, now: at('2026-12-02T10:00:00Z') }).source, 'build-time');
  writeFileSync(flag, '');
  const synced = clockStatus({ flag, buildTime: build, now: at('1970-01-01T00:00:05Z') });
  assert.equal(synced.synced, true, 'timesyncd says so: its word wins');
  assert.equal(synced.source, 'timesyncd');
});
