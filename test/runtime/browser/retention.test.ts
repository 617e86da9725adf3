/**
 * runtime/browser/retention.ts on real files with a fake clock: files past the age are deleted, then the oldest until
 * the rest fit the byte cap; nothing outside `browser/` is touched (a sibling file, a symbolic link pointing out, a
 * `browser` that is a link); empty flow folders go once old. And KernelBrowser's wiring (no browser started): a
 * caller's first call sweeps its folder, a second within the interval does not, one after it does.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RETENTION_MAX_AGE_MS, sweepBrowserFiles } from '../../../runtime/browser/retention.ts';
import { KernelBrowser } from '../../../runtime/tools/builtin/browser.ts';

const DAY = 24 * 3600_000;
const base = mkdtempSync(join(tmpdir(), 'talon-retention-'));
after(() => rmSync(base, { recursive: true, force: true }));

let n = 0;
/** a fresh caller folder */
function callerFolder(): string {
  const f = join(base, `caller-${n++}`);
  mkdirSync(join(f, 'browser'), { recursive: true });
  return f;
}

/** writes `rel` (under the caller folder) with `size` bytes, last modified at `at` */
function file(folder: string, rel: string, size: number, at: number): string {
  const abs = join(folder, rel);
  mkdirSync(join(abs, '..'), { recursive: true });
  writeFileSync(abs, Buffer.alloc(size, 7));
  utimesSync(abs, at / 1000, at / 1000);
  return abs;
}

test('files older than maxAge go, newer stay; flow folders are walked; the default age is 7 days', async () => {
  const now = Date.now() + 30 * DAY;
  const f = callerFolder();
  const old = file(f, 'browser/read-1.png', 100, now - 8 * DAY);
  const oldInFlow = file(f, 'browser/login-1/signed-in.png', 50, now - 10 * DAY);
  const fresh = file(f, 'browser/read-2.png', 200, now - 6 * DAY);
  const freshInFlow = file(f, 'browser/login-2/download-report.csv', 300, now - DAY);
  assert.equal(RETENTION_MAX_AGE_MS, 7 * DAY);
  const r = await sweepBrowserFiles(f, { now });
  assert.deepEqual(r.removed.map((x) => [x.file, x.size, x.reason]).sort(), [
    ['browser/login-1/signed-in.png', 50, 'age'],
    ['browser/read-1.png', 100, 'age'],
  ]);
  assert.equal(existsSync(old), false);
  assert.equal(existsSync(oldInFlow), false);
  assert.equal(existsSync(fresh), true);
  assert.equal(existsSync(freshInFlow), true);
  assert.equal(r.kept, 2);
  assert.equal(r.keptBytes, 500);
  // the emptied flow folder is old (the fake clock is 30 days ahead): removed; the other flow's stays
  assert.deepEqual(r.removedDirs, ['browser/login-1']);
  assert.equal(existsSync(join(f, 'browser', 'login-2')), true);
  assert.equal(existsSync(join(f, 'browser')), true, 'browser/ itself stays');
});

test('over the byte cap the oldest go first until the rest fit', async () => {
  const now = Date.now();
  const f = callerFolder();
  file(f, 'browser/a.png', 400, now - 5000);
  file(f, 'browser/flow-1/b.png', 300, now - 4000);
  file(f, 'browser/c.png', 300, now - 3000);
  file(f, 'browser/d.png', 250, now - 2000);
  const r = await sweepBrowserFiles(f, { now, maxBytes: 600 });
  assert.deepEqual(
    r.removed.map((x) => [x.file, x.reason]),
    [
      ['browser/a.png', 'size'],
      ['browser/flow-1/b.png', 'size'],
    ],
  );
  assert.equal(r.keptBytes, 550);
  assert.equal(r.kept, 2);
  assert.equal(existsSync(join(f, 'browser/c.png')), true);
  assert.equal(existsSync(join(f, 'browser/d.png')), true);
  // flow-1 was emptied just now (real mtime): a running flow may still write there, so it stays for now
  assert.deepEqual(r.removedDirs, []);
  assert.equal(existsSync(join(f, 'browser/flow-1')), true);
  // a second sweep under the cap removes nothing
  const again = await sweepBrowserFiles(f, { now, maxBytes: 600 });
  assert.deepEqual(again.removed, []);
});

test('age first, then size; nothing outside browser/ is touched, links are neither followed nor deleted', async () => {
  const now = Date.now() + 30 * DAY;
  const f = callerFolder();
  const outside = file(f, 'notes/keep.txt', 1000, now - 100 * DAY);
  const sibling = file(f, 'browser-old.png', 1000, now - 100 * DAY);
  const elsewhere = join(base, 'elsewhere');
  mkdirSync(elsewhere, { recursive: true });
  const target = file(base, 'elsewhere/precious.png', 1000, now - 100 * DAY);
  symlinkSync(elsewhere, join(f, 'browser', 'linked-dir'));
  symlinkSync(target, join(f, 'browser', 'linked-file.png'));
  file(f, 'browser/old.png', 10, now - 9 * DAY);
  file(f, 'browser/big-new.png', 5000, now - 1000);
  file(f, 'browser/small-newer.png', 10, now - 500);
  const r = await sweepBrowserFiles(f, { now, maxBytes: 100 });
  assert.deepEqual(
    r.removed.map((x) => [x.file, x.reason]),
    [
      ['browser/old.png', 'age'],
      ['browser/big-new.png', 'size'],
    ],
  );
  for (const p of [outside, sibling, target]) assert.equal(existsSync(p), true, p);
  assert.equal(existsSync(join(f, 'browser', 'linked-dir')), true, 'a link to a folder is left');
  assert.equal(existsSync(join(f, 'browser', 'linked-file.png')), true, 'a link to a file is left');

  // a caller whose browser/ is a link elsewhere: nothing is swept; a caller without browser/: nothing either
  const g = join(base, `caller-${n++}`);
  mkdirSync(g, { recursive: true });
  assert.deepEqual((await sweepBrowserFiles(g, { now })).removed, []);
  symlinkSync(elsewhere, join(g, 'browser'));
  assert.deepEqual((await sweepBrowserFiles(g, { now, maxAgeMs: 0, maxBytes: 0 })).removed, []);
  assert.equal(existsSync(target), true);
});

test('KernelBrowser: a caller’s first call sweeps its folder, again only after the interval', async () => {
  let clock = Date.now() + 30 * DAY;
  const logs: string[] = [];
  const kb = new KernelBrowser({
    executablePath: '/nonexistent',
    retention: { maxAgeMs: DAY, intervalMs: 3600_000 },
    now: () => clock,
    log: (m) => logs.push(m),
  });
  try {
    const f = callerFolder();
    file(f, 'browser/a.png', 10, clock - 2 * DAY);
    await kb.noteCaller(f);
    assert.equal(existsSync(join(f, 'browser/a.png')), false, 'the first call swept');
    assert.match(logs.join('\n'), /removed 1 old files \(10 bytes\)/);

    // within the hour: no sweep, even for a file long past its age
    file(f, 'browser/b.png', 10, clock - 2 * DAY);
    clock += 30 * 60_000;
    await kb.noteCaller(f);
    assert.equal(existsSync(join(f, 'browser/b.png')), true, 'not swept again within the interval');

    // after the hour: swept again
    clock += 31 * 60_000;
    await kb.noteCaller(f);
    assert.equal(existsSync(join(f, 'browser/b.png')), false, 'swept after the interval');

    // sweep() covers every folder seen, the idle ones too
    file(f, 'browser/c.png', 10, clock - 2 * DAY);
    await kb.sweep();
    assert.equal(existsSync(join(f, 'browser/c.png')), false);

    // retention: false sweeps nothing
    const off = new KernelBrowser({ executablePath: '/nonexistent', retention: false, now: () => clock });
    const g = callerFolder();
    file(g, 'browser/x.png', 10, clock - 100 * DAY);
    await off.noteCaller(g);
    await off.sweep();
    assert.equal(existsSync(join(g, 'browser/x.png')), true);
    await off.close();
  } finally {
    await kb.close();
  }
});

test('a caller folder reached through a link (a data folder on another disk) is swept as usual', async () => {
  const now = Date.now() + 30 * DAY;
  const real = callerFolder();
  const old = file(real, 'browser/login-2/shot.png', 10, now - 9 * DAY);
  const fresh = file(real, 'browser/read-3.png', 10, now - DAY);
  const linked = join(base, `linked-${n++}`);
  symlinkSync(real, linked);
  const r = await sweepBrowserFiles(linked, { now });
  assert.deepEqual(
    r.removed.map((x) => x.file),
    ['browser/login-2/shot.png'],
  );
  assert.equal(existsSync(old), false);
  assert.equal(existsSync(fresh), true);
});
