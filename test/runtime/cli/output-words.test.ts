/** Issue 14: CLI output says "1 entry", not "1 entries". */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plural, type Io } from '../../../runtime/cli/args.ts';
import { printReport } from '../../../runtime/cli/commands/audit.ts';

function capture(): Io & { text: () => string } {
  let s = '';
  return {
    out: (x) => {
      s += x;
    },
    err: (x) => {
      s += x;
    },
    env: {},
    cwd: '/',
    text: () => s,
  };
}

test('plural', () => {
  assert.equal(plural(0, 'entry', 'entries'), '0 entries');
  assert.equal(plural(1, 'entry', 'entries'), '1 entry');
  assert.equal(plural(2, 'Hand'), '2 Hands');
  assert.equal(plural(1, 'Hand'), '1 Hand');
});

test('audit verify: one entry is "1 entry", in the OK line and the BROKEN one', () => {
  const base = { firstSeq: 7, lastSeq: 7, anchor: 'resume' as const, lastCheckpoint: null };
  const ok = capture();
  assert.equal(printReport({ ok: true, checked: 1, ...base }, ok, false), 0);
  assert.match(ok.text(), /^OK: 1 entry verified \(seq 7\.\.7, from resume\)\n$/);
  const many = capture();
  printReport({ ok: true, checked: 3, ...base }, many, false);
  assert.match(many.text(), /^OK: 3 entries verified/);
  const broken = capture();
  assert.equal(
    printReport(
      { ok: false, checked: 1, ...base, firstBrokenSeq: 8, kind: 'hash', reason: 'x' } as unknown as Parameters<
        typeof printReport
      >[0],
      broken,
      false,
    ),
    1,
  );
  assert.match(broken.text(), /\n1 entry verified before it\n$/);
});
