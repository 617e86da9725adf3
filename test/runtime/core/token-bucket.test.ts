import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sourceFiles } from '../../helpers/source-files.ts';
import { TokenBucket } from '../../../runtime/core/token-bucket.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

test('a fresh bucket holds its burst, then refills at its rate', () => {
  const b = new TokenBucket({ rate: 10, now: 0 });
  let n = 0;
  while (b.take(0)) n++;
  assert.equal(n, 10, 'burst defaults to the rate');
  assert.equal(b.take(50), false, 'half a token after 50 ms');
  assert.equal(b.take(100), true, 'one token after 100 ms');
  assert.equal(b.take(100), false);
  assert.equal(b.available(400), 3);
});

test('the burst caps what an idle bucket banks', () => {
  const b = new TokenBucket({ rate: 2, burst: 5, now: 0, tokens: 0 });
  assert.equal(b.available(0), 0);
  assert.equal(b.available(1_000_000), 5);
  let n = 0;
  while (b.take(1_000_000)) n++;
  assert.equal(n, 5);
  assert.equal(
    new TokenBucket({ rate: 2, burst: 5, now: 0, tokens: 99 }).available(0),
    5,
    'a start above the burst is capped',
  );
});

test('fractional time and rates add up exactly', () => {
  const b = new TokenBucket({ rate: 1, perMs: 6000, burst: 10, now: 0, tokens: 0 });
  for (let t = 1; t <= 6000; t++) b.available(t); // refilled 6000 times, 1 ms each
  assert.ok(Math.abs(b.available(6000) - 1) < 1e-9, String(b.available(6000)));
  const c = new TokenBucket({ rate: 3, now: 0, tokens: 0 });
  assert.equal(c.take(333.3), false);
  assert.equal(c.take(333.34), true, 'a third of a second at 3/s is one token');
  assert.equal(new TokenBucket({ rate: 3, now: 0, tokens: 0 }).waitMs(0), 1000 / 3);
  assert.equal(new TokenBucket({ rate: 1, perMs: 6000, burst: 10, now: 0, tokens: 0.5 }).waitMs(0), 3000);
});

test('take(n) takes all n or none', () => {
  const b = new TokenBucket({ rate: 10, now: 0 });
  assert.equal(b.take(0, 4), true);
  assert.equal(b.take(0, 7), false);
  assert.equal(b.available(0), 6);
  assert.equal(b.waitMs(0, 11), Infinity, 'more than the burst never comes');
  assert.equal(new TokenBucket({ rate: 0, burst: 1, now: 0, tokens: 0 }).waitMs(0), Infinity);
});

test('a clock going backwards refills nothing and takes nothing away', () => {
  const b = new TokenBucket({ rate: 10, now: 1000, tokens: 5 });
  assert.equal(b.available(500), 5, 'no tokens lost when the clock steps back');
  assert.equal(b.available(600), 6, 'counting resumes from the earlier time');
  assert.equal(b.available(-1e12), 6);
});

test('takeBanked never looks at the clock; the time it skipped is credited at the next refill', () => {
  const b = new TokenBucket({ rate: 4, now: 0 });
  let n = 0;
  while (b.takeBanked()) n++;
  assert.equal(n, 4);
  assert.equal(b.takeBanked(), false, 'empty without a refill');
  assert.equal(b.take(250), true, 'a refill at 250 ms gives one');
  assert.equal(b.takeBanked(), false);
  // the kernel's and the worker's publish path: banked first, the clock only when dry
  const q = new TokenBucket({ rate: 100, now: 0 });
  let sent = 0;
  for (let t = 0; t < 1000; t++) for (let i = 0; i < 10; i++) if (q.takeBanked() || q.take(t)) sent++;
  assert.ok(sent >= 100 + 99 && sent <= 100 + 100, `100 at once, then 100/s: ${sent}`);
});

test('a rate or period that makes no sense is refused', () => {
  assert.throws(() => new TokenBucket({ rate: -1, now: 0 }), RangeError);
  assert.throws(() => new TokenBucket({ rate: Number.NaN, now: 0 }), RangeError);
  assert.throws(() => new TokenBucket({ rate: 1, perMs: 0, now: 0 }), RangeError);
});

test('no hand-written token bucket outside runtime/core/token-bucket.ts', () => {
  // the shape every copy had: tokens = Math.min(cap, tokens + elapsed ...)
  const copy = /(tokens|Tokens)\s*=\s*Math\.min\(/;
  const offenders: string[] = [];
  for (const top of ['runtime', 'web-admin', 'provisioning', 'hands', 'drivers', 'image']) {
    for (const file of sourceFiles(join(ROOT, top))) {
      if (file.endsWith('runtime/core/token-bucket.ts')) continue;
      if (copy.test(readFileSync(file, 'utf8'))) offenders.push(file.slice(ROOT.length));
    }
  }
  assert.deepEqual(offenders, []);
});
