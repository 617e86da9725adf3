/**
 * The page watch's text diff (hands/web-automation/diff.ts): equal texts, a changed line with its context and hunk header, lines
 * added and removed at the ends, empty texts, two single-line texts diffed by words, changedChars measured by words
 * inside a changed line, the edit script rebuilt into both texts (random edits, checked against both), hunks apart
 * when far apart, and the bounds: a large text diffed by lines with its output capped, and a wholesale rewrite past
 * MAX_EDITS still a true (not minimal) script.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffTokens, LINES_ONLY_CHARS, MAX_EDITS, textDiff } from '../../../hands/web-automation/diff.ts';

/** rebuild both sides from an edit script: the script must be true to both texts */
function sides(ops: ReturnType<typeof diffTokens>): { a: string[]; b: string[] } {
  return {
    a: ops.filter((o) => o.kind !== '+').map((o) => o.text),
    b: ops.filter((o) => o.kind !== '-').map((o) => o.text),
  };
}

test('equal texts: nothing added, removed or changed', () => {
  assert.deepEqual(textDiff('same\ntext', 'same\ntext'), {
    added: [],
    removed: [],
    unified: '',
    changedChars: 0,
    truncated: false,
  });
  assert.equal(textDiff('', '').unified, '');
});

test('a changed line, with context and a hunk header', () => {
  const d = textDiff('a\nb\nc\nd\ne\nf\ng', 'a\nb\nc\nD!\ne\nf\ng', { context: 1 });
  assert.deepEqual(d.removed, ['d']);
  assert.deepEqual(d.added, ['D!']);
  assert.equal(d.unified, '@@ -3,3 +3,3 @@\n c\n-d\n+D!\n e');
  assert.equal(d.changedChars, 3);
  assert.equal(d.truncated, false);
});

test('lines added at the end and removed at the start', () => {
  const d = textDiff('intro\none\ntwo', 'one\ntwo\nthree\nfour', { context: 0 });
  assert.deepEqual(d.removed, ['intro']);
  assert.deepEqual(d.added, ['three', 'four']);
  assert.equal(d.unified, '@@ -1,1 +0,0 @@\n-intro\n@@ -3,0 +3,2 @@\n+three\n+four');
});

test('empty texts on either side', () => {
  const grown = textDiff('', 'first line\nsecond');
  assert.deepEqual(grown.added, ['first line', 'second']);
  assert.deepEqual(grown.removed, []);
  assert.equal(grown.unified, '@@ -0,0 +1,2 @@\n+first line\n+second');
  const gone = textDiff('only line', '');
  assert.deepEqual(gone.removed, ['only line']);
  assert.deepEqual(gone.added, []);
  assert.equal(gone.changedChars, 'onlyline'.length);
});

test('two single-line texts are diffed by words', () => {
  const d = textDiff('In stock: 12 units, ships today', 'In stock: 3 units, ships tomorrow');
  assert.deepEqual(d.removed, ['12', 'today']);
  assert.deepEqual(d.added, ['3', 'tomorrow']);
  assert.equal(d.changedChars, 2 + 5 + 1 + 8);
  assert.equal(d.unified, '@@ -1,1 +1,1 @@\n-In stock: 12 units, ships today\n+In stock: 3 units, ships tomorrow');
  // adjacent changed words come out as one run
  assert.deepEqual(textDiff('a b c d', 'a x y d').added, ['x y']);
});

test('a changed line inside a longer text is measured by its words, not its length', () => {
  const before = 'Title\nThe quick brown fox jumps over the lazy dog\nFooter';
  const after = 'Title\nThe quick brown cat jumps over the lazy dog\nFooter';
  const d = textDiff(before, after);
  assert.equal(d.changedChars, 'fox'.length + 'cat'.length);
  assert.deepEqual(d.added, ['The quick brown cat jumps over the lazy dog']);
});

test('far-apart changes give separate hunks', () => {
  const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
  const changed = [...lines];
  changed[2] = 'CHANGED 2';
  changed[25] = 'CHANGED 25';
  const d = textDiff(lines.join('\n'), changed.join('\n'), { context: 2 });
  const headers = d.unified.split('\n').filter((l) => l.startsWith('@@'));
  assert.deepEqual(headers, ['@@ -1,5 +1,5 @@', '@@ -24,5 +24,5 @@']);
});

test('the edit script is true to both texts and minimal on small cases (random edits)', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const a = Array.from({ length: rnd(12) }, () => 'abcde'[rnd(5)]!);
    const b = [...a];
    const edits = rnd(5);
    for (let e = 0; e < edits; e++) {
      const at = rnd(b.length + 1);
      if (rnd(2) === 0 && b.length > 0) b.splice(Math.min(at, b.length - 1), 1);
      else b.splice(at, 0, 'xyz'[rnd(3)]!);
    }
    const ops = diffTokens(a, b);
    assert.deepEqual(sides(ops), { a, b }, `round ${round}: ${a.join('')} → ${b.join('')}`);
    // minimal: as many kept tokens as the longest common subsequence (a DP over these short lists)
    const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
    for (let i = a.length - 1; i >= 0; i--)
      for (let j = b.length - 1; j >= 0; j--)
        lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    assert.equal(ops.filter((o) => o.kind === ' ').length, lcs[0]![0], `round ${round}`);
  }
});

test('a large text stays bounded: diffed by lines, output capped at maxChars', () => {
  const lines = Array.from({ length: 20_000 }, (_, i) => `row ${i} ${'x'.repeat(10)}`);
  const before = lines.join('\n');
  assert.ok(before.length * 2 > LINES_ONLY_CHARS);
  const changed = lines.map((l, i) => (i % 100 === 0 ? `${l} changed` : l));
  const d = textDiff(before, changed.join('\n'), { maxChars: 2_000 });
  assert.equal(d.truncated, true);
  assert.ok(d.unified.length <= 2_000 + 20, `unified ${d.unified.length}`);
  assert.ok(d.unified.endsWith('… (diff cut)'));
  const listed = [...d.added, ...d.removed].join('').length;
  assert.ok(listed <= 2_100, `added+removed ${listed}`);
  assert.ok(d.added.at(-1)!.startsWith('… ') || d.removed.at(-1)!.startsWith('… '));
  // measured by lines (no word refinement past LINES_ONLY_CHARS): 200 changed lines, each counted both sides
  const expected = lines.filter((_, i) => i % 100 === 0).reduce((n, l) => n + l.length * 2 + ' changed'.length, 0);
  assert.equal(d.changedChars, expected);
});

test('a wholesale rewrite past MAX_EDITS is still a true script (all removed, all added)', () => {
  const a = Array.from({ length: MAX_EDITS }, (_, i) => `old ${i}`);
  const b = Array.from({ length: MAX_EDITS }, (_, i) => `new ${i}`);
  const ops = diffTokens(['head', ...a, 'tail'], ['head', ...b, 'tail']);
  assert.deepEqual(sides(ops), { a: ['head', ...a, 'tail'], b: ['head', ...b, 'tail'] });
  assert.equal(ops.filter((o) => o.kind === '-').length, MAX_EDITS);
  const d = textDiff(a.join('\n'), b.join('\n'));
  assert.equal(d.truncated, true);
  assert.ok(d.unified.length <= 10_020);
});
