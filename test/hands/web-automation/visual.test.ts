/**
 * Visual watches, the pure half (hands/web-automation/visual.ts and the visual kind in watch.ts): two fingerprints
 * compared (the same, small noise under the tolerance, a real change, a size change, a grid of another shape), the
 * tolerance's and minChange's edges, the encoded value, `what: { visual }` parsed with errors naming the field, and
 * evaluate() on visual values: baseline, noise, pending then changed with the share and the screenshot, a flip back, a
 * selector gone (broken), unchangedDays. Fingerprints are built here as the kernel's browser.read would answer them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_TOLERANCE,
  compareVisual,
  decodeVisual,
  encodeVisual,
  parseVisual,
  visualWords,
  type Visual,
} from '../../../hands/web-automation/visual.ts';
import { WatchState, evaluate, parseWatch, type Check, type Watch } from '../../../hands/web-automation/watch.ts';

/** a fingerprint of a width × height picture cut into cols × rows cells, each cell's luminance from `lum` */
function fp(lum: (c: number, r: number) => number, { width = 640, height = 480, cols = 32, rows = 24 } = {}): Visual {
  const bytes = Buffer.alloc(cols * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) bytes[r * cols + c] = lum(c, r);
  return { width, height, cols, rows, cells: bytes.toString('base64') };
}

const grey = fp(() => 128);
/** `n` cells (row-major from the first) set to `to`, the rest as `base` */
const withCells = (base: Visual, n: number, to: number): Visual => {
  const bytes = Buffer.from(base.cells, 'base64');
  for (let i = 0; i < n; i++) bytes[i] = to;
  return { ...base, cells: bytes.toString('base64') };
};

test('compare: the same picture, small noise under the tolerance, a real change, a size change', () => {
  const same = compareVisual(grey, grey);
  assert.deepEqual([same.percent, same.changedCells, same.cells, same.sizeChanged], [0, 0, 768, false]);
  // every cell moved by up to the tolerance (antialiasing, a caret): nothing changed
  const noisy = fp((c, r) => 128 + ((c + r) % 2 === 0 ? 1 : -1) * DEFAULT_TOLERANCE);
  assert.equal(compareVisual(grey, noisy).changedCells, 0);
  // a banner appeared: the top quarter went dark
  const banner = fp((_c, r) => (r < 6 ? 20 : 128));
  const c = compareVisual(grey, banner);
  assert.equal(c.changedCells, 32 * 6);
  assert.equal(c.percent, 25);
  assert.equal(visualWords(c), '25 % of the region changed (size 640×480)');
  // the region grew by 40 px: a change whatever the cells say
  const taller = compareVisual(grey, { ...grey, height: 520 });
  assert.deepEqual([taller.sizeChanged, taller.percent], [true, 100]);
  assert.equal(visualWords(taller), "the region's size changed from 640×480 to 640×520");
  // 2 px is the slack (a scrollbar, device pixels): not a size change
  assert.equal(compareVisual(grey, { ...grey, width: 642, height: 478 }).sizeChanged, false);
  assert.equal(compareVisual(grey, { ...grey, width: 643 }).sizeChanged, true);
});

test('compare: the tolerance is the edge (more than it counts), grids of other shapes are resampled', () => {
  const plus16 = fp(() => 144);
  const plus17 = fp(() => 145);
  assert.equal(compareVisual(grey, plus16, 16).changedCells, 0, 'exactly the tolerance: not changed');
  assert.equal(compareVisual(grey, plus17, 16).changedCells, 768, 'one past it: changed');
  assert.equal(compareVisual(grey, plus16, 0).changedCells, 768, 'tolerance 0: any move counts');
  assert.equal(
    compareVisual(
      grey,
      fp(() => 255),
      254,
    ).changedCells,
    0,
  );
  // the same picture cut into another grid (a 2 px narrower region): compared cell by cell after resampling
  const left = (c: number, cols: number) => (c < cols / 2 ? 0 : 255);
  const a = fp((c) => left(c, 32));
  const b = fp((c) => left(c, 16), { width: 639, cols: 16, rows: 12 });
  assert.equal(compareVisual(a, b).changedCells, 0);
  const flipped = fp((c) => 255 - left(c, 16), { width: 639, cols: 16, rows: 12 });
  assert.equal(compareVisual(a, flipped).percent, 100);
});

test('fingerprints: checked naming the field; encoded as the stored value and back', () => {
  assert.deepEqual(parseVisual(grey), grey);
  for (const [bad, re] of [
    [null, /^visual: must be/],
    [{ ...grey, width: 0 }, /^visual\.width/],
    [{ ...grey, rows: 33 }, /^visual\.rows/],
    [{ ...grey, cols: 1.5 }, /^visual\.cols/],
    [{ ...grey, cells: 'not base64!' }, /^visual\.cells: must be base64/],
    [
      { ...grey, cells: Buffer.alloc(10).toString('base64') },
      /visual\.cells: holds 10 byte\(s\), not cols × rows = 768/,
    ],
  ] as const)
    assert.match(String(parseVisual(bad)), re);
  const s = encodeVisual(grey);
  assert.match(s, /^visual:640x480:32x24:/);
  assert.deepEqual(decodeVisual(s), grey);
  assert.equal(decodeVisual('Widget 10 EUR'), null);
  assert.equal(decodeVisual('visual:640x480:32x24:AAAA'), null, 'a grid that does not match its bytes');
});

test('what: { visual } parsed: a selector, the viewport, a tolerance; errors name the field', () => {
  const w = (what: unknown, extra: Record<string, unknown> = {}) =>
    parseWatch({ id: 'hero', url: 'https://shop.example/', what, ...extra });
  assert.deepEqual((w({ visual: '#hero' }) as Watch).what, { kind: 'visual', selector: '#hero', tolerance: 16 });
  assert.deepEqual((w({ visual: null }) as Watch).what, { kind: 'visual', tolerance: 16 });
  assert.deepEqual((w({ visual: { selector: '.chart', tolerance: 40 } }) as Watch).what, {
    kind: 'visual',
    selector: '.chart',
    tolerance: 40,
  });
  assert.deepEqual((w({ visual: {} }) as Watch).what, { kind: 'visual', tolerance: 16 });
  assert.deepEqual((w({ visual: '#hero' }, { minChange: { percent: 5 } }) as Watch).minChange, { percent: 5 });
  for (const [what, extra, re] of [
    [{ visual: 42 }, {}, /^watch\.what\.visual: must be a selector/],
    [{ visual: { tolerance: 300 } }, {}, /^watch\.what\.visual\.tolerance: must be a whole number from 0 to 254/],
    [{ visual: { tolerance: -1 } }, {}, /^watch\.what\.visual\.tolerance/],
    [
      { visual: { region: '#x' } },
      {},
      /^watch\.what\.visual\.region: not a field \(write \{ selector\?, tolerance\? \}\)/,
    ],
    [{ visual: '#x' }, { minChange: { chars: 10 } }, /^watch\.minChange\.chars: not a threshold of a visual watch/],
    [{ visual: '#x' }, { minChange: { percent: 101 } }, /^watch\.minChange\.percent: must be a share of the region/],
    [{ picture: '#x' }, {}, /^watch\.what\.picture: not a kind of watch .*visual/],
  ] as const)
    assert.match(String(w(what, extra)), re);
});

const watch = (extra: Record<string, unknown> = {}): Watch =>
  parseWatch({ id: 'hero', url: 'https://shop.example/', what: { visual: '#hero' }, ...extra }) as Watch;
const at = (n: number) => 1_800_000_000_000 + n * 60_000;
const seen = (v: Visual | null, n: number, screenshot = `browser/read-${n}.png`): Check => ({
  ok: true,
  value: v ? encodeVisual(v) : null,
  at: at(n),
  screenshot,
});

/** feeds the checks in order, answering the events of each */
function run(w: Watch, checks: Check[]) {
  let state = new WatchState();
  const out = [];
  for (const c of checks) {
    const r = evaluate(w, state, c);
    state = r.state;
    out.push(r.events);
  }
  return { state, events: out };
}

test('evaluate: baseline, noise ignored, a change pending then confirmed with its share and screenshot', () => {
  const noisy = withCells(grey, 40, 138); // +10: under the tolerance
  const banner = fp((_c, r) => (r < 6 ? 20 : 128));
  const bannerNoisy = withCells(banner, 100, 30); // the same banner with a little noise in it
  const { state, events } = run(watch(), [
    seen(grey, 0),
    seen(noisy, 1),
    seen(banner, 2),
    seen(bannerNoisy, 3),
    seen(banner, 4),
  ]);
  assert.deepEqual(
    events.map((e) => e.map((x) => x.type)),
    [[], [], ['pending'], ['changed'], []],
  );
  const pending = events[2]![0]!;
  assert.equal(pending.type === 'pending' && pending.screenshot, 'browser/read-2.png');
  const changed = events[3]![0]!;
  assert.ok(changed.type === 'changed');
  assert.equal(changed.visual?.percent, 25);
  assert.equal(changed.screenshot, 'browser/read-3.png', "the confirming check's screenshot");
  assert.equal(changed.diff.unified, '', 'no text diff of a picture');
  assert.equal(decodeVisual(state.value!)?.cells, bannerNoisy.cells, 'the value is the fingerprint, not a text');
  const words = '25 % of the region changed (size 640×480)';
  assert.deepEqual(
    state.history.map((h) => [h.result, h.note ?? '']),
    [
      ['baseline', 'a picture 640×480'],
      ['small', ''],
      ['pending', words],
      ['changed', words],
      ['small', ''],
    ],
  );
});

test('evaluate: minChange.percent is the edge; a flip back is noise; confirm false reports at once', () => {
  // 8 of 768 cells is 1.04 %: over the default 1 %; 7 is 0.91 %: under it
  assert.deepEqual(
    run(watch({ confirm: false }), [seen(grey, 0), seen(withCells(grey, 7, 0), 1)]).events[1]!.map((e) => e.type),
    [],
  );
  assert.deepEqual(
    run(watch({ confirm: false }), [seen(grey, 0), seen(withCells(grey, 8, 0), 1)]).events[1]!.map((e) => e.type),
    ['changed'],
  );
  // minChange 25: exactly a quarter counts (the threshold is reached), one cell less does not
  const quarter = withCells(grey, 192, 0);
  const w25 = watch({ confirm: false, minChange: { percent: 25 } });
  assert.deepEqual(
    run(w25, [seen(grey, 0), seen(quarter, 1)]).events[1]!.map((e) => e.type),
    ['changed'],
  );
  assert.deepEqual(
    run(w25, [seen(grey, 0), seen(withCells(grey, 191, 0), 1)]).events[1]!.map((e) => e.type),
    [],
  );
  // a size change is a change even under a high minChange
  const big = watch({ confirm: false, minChange: { percent: 100 } });
  assert.deepEqual(
    run(big, [seen(grey, 0), seen({ ...grey, width: 700 }, 1)]).events[1]!.map((e) => e.type),
    ['changed'],
  );
  // an ad that shows once and is gone again: pending, then forgotten
  const flip = run(watch(), [seen(grey, 0), seen(quarter, 1), seen(grey, 2), seen(grey, 3)]);
  assert.deepEqual(
    flip.events.map((e) => e.map((x) => x.type)),
    [[], ['pending'], [], []],
  );
  assert.equal(flip.state.pending, null);
  // two different changes in a row confirm neither
  const half = withCells(grey, 384, 255);
  assert.deepEqual(
    run(watch(), [seen(grey, 0), seen(quarter, 1), seen(half, 2)]).events.map((e) => e.map((x) => x.type)),
    [[], ['pending'], ['pending']],
  );
});

test('evaluate: the element gone is broken (not "no change"), then recovered; unchangedDays fires once', () => {
  const w = watch({ brokenAfter: 2, unchangedDays: 1 });
  const gone = run(w, [seen(grey, 0), seen(null, 1), seen(null, 2), seen(null, 3), seen(grey, 4)]);
  assert.deepEqual(
    gone.events.map((e) => e.map((x) => x.type)),
    [[], [], ['broken'], [], ['recovered']],
  );
  const broken = gone.events[2]![0]!;
  assert.match(broken.type === 'broken' ? broken.reason : '', /the selector "#hero" matched nothing/);
  // an answer with no picture in it (a tool without visual support) is a failure too
  const blind = run(watch({ brokenAfter: 1 }), [{ ok: true, value: 'Widget', at: at(0) }]);
  assert.match(blind.state.history[0]!.note ?? '', /no picture of the region/);
  const day = 1440;
  const quiet = run(w, [seen(grey, 0), seen(grey, day - 1), seen(grey, day), seen(grey, day + 5)]);
  assert.deepEqual(
    quiet.events.map((e) => e.map((x) => x.type)),
    [[], [], ['unchanged'], []],
  );
});
