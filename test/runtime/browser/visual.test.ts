/**
 * runtime/browser/visual.ts: fingerprints of PNGs made here with pngjs (no browser): solid colours, a known pattern,
 * alpha over white, a 1×1 image, very wide and very tall images, 16-bit and palette PNGs, and a buffer that is not a
 * PNG. The browser half (browser.read with visual: true) is in test/runtime/tools/browser.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { fingerprint, fingerprintPixels, gridOf, MAX_PIXELS } from '../../../runtime/browser/visual.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

type Rgba = [number, number, number, number];

/** a PNG of `w` × `h` whose pixel (x, y) is `at(x, y)` */
function png(w: number, h: number, at: (x: number, y: number) => Rgba, opts: { colorType?: 0 | 2 | 4 | 6 } = {}) {
  const img = new PNG({ width: w, height: h, colorType: opts.colorType ?? 6, inputHasAlpha: true });
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const p = at(x, y);
      img.data.set(p, (y * w + x) * 4);
    }
  return PNG.sync.write(img, { colorType: opts.colorType ?? 6, inputHasAlpha: true });
}

const cellsOf = (b64: string): number[] => [...Buffer.from(b64, 'base64')];

test('the grid: 32 columns at most, rows for about square cells, 1 to 32 rows', () => {
  assert.deepEqual(gridOf(1280, 800), { cols: 32, rows: 20 });
  assert.deepEqual(gridOf(320, 320), { cols: 32, rows: 32 });
  assert.deepEqual(gridOf(1, 1), { cols: 1, rows: 1 });
  assert.deepEqual(gridOf(10, 5), { cols: 10, rows: 5 });
  assert.deepEqual(gridOf(4000, 3), { cols: 32, rows: 1 }, 'very wide: one row');
  assert.deepEqual(gridOf(3, 4000), { cols: 3, rows: 32 }, 'very tall: rows capped');
  assert.deepEqual(gridOf(100, 10), { cols: 32, rows: 3 });
});

test('solid colours: every cell is the colour’s luminance', async () => {
  for (const [rgba, lum] of [
    [[255, 255, 255, 255], 255],
    [[0, 0, 0, 255], 0],
    [[255, 0, 0, 255], 76],
    [[0, 255, 0, 255], 150],
    [[0, 0, 255, 255], 29],
    [[128, 128, 128, 255], 128],
  ] as Array<[Rgba, number]>) {
    const v = await fingerprint(png(64, 48, () => rgba));
    assert.equal(v.width, 64);
    assert.equal(v.height, 48);
    assert.equal(v.cols, 32);
    assert.equal(v.rows, 24);
    const cells = cellsOf(v.cells);
    assert.equal(cells.length, 32 * 24);
    assert.ok(
      cells.every((c) => c === lum),
      `${rgba}: ${lum}, got ${[...new Set(cells)]}`,
    );
  }
});

test('a known pattern: left half black, right half white, one grey cell', async () => {
  // 64×64: cells of 2×2 pixels; the top-left 2×2 block is grey
  const v = await fingerprint(
    png(64, 64, (x, y) => (x < 2 && y < 2 ? [100, 100, 100, 255] : x < 32 ? [0, 0, 0, 255] : [255, 255, 255, 255])),
  );
  assert.deepEqual([v.cols, v.rows], [32, 32]);
  const cells = cellsOf(v.cells);
  for (let r = 0; r < 32; r++)
    for (let c = 0; c < 32; c++) {
      const want = r === 0 && c === 0 ? 100 : c < 16 ? 0 : 255;
      assert.equal(cells[r * 32 + c], want, `cell ${c},${r}`);
    }
  // a cell half black, half white is their mean: row-major order is checked by a horizontal split
  const split = await fingerprint(png(2, 2, (_x, y) => (y === 0 ? [0, 0, 0, 255] : [255, 255, 255, 255])));
  assert.deepEqual([split.cols, split.rows], [2, 2]);
  assert.deepEqual(cellsOf(split.cells), [0, 0, 255, 255], 'the first row is the top one');
  // 64×2 in stripes one pixel wide: each cell (2×2) holds two black and two white pixels, its mean 127.5 → 128
  const stripes = await fingerprint(png(64, 2, (x) => (x % 2 ? [255, 255, 255, 255] : [0, 0, 0, 255])));
  assert.deepEqual([stripes.cols, stripes.rows], [32, 1]);
  assert.ok(
    cellsOf(stripes.cells).every((c) => c === 128),
    `${cellsOf(stripes.cells)}`,
  );
  const one = fingerprintPixels(33, 1, new Uint8Array(33 * 4).fill(255));
  assert.equal(one.cols, 32, 'a cell may hold 2 pixels');
});

test('alpha is composited over white', async () => {
  const transparent = await fingerprint(png(8, 8, () => [0, 0, 0, 0]));
  assert.ok(
    cellsOf(transparent.cells).every((c) => c === 255),
    'transparent black reads as white',
  );
  const half = await fingerprint(png(8, 8, () => [0, 0, 0, 128]));
  // 255 × (1 − 128/255) = 127
  assert.ok(
    cellsOf(half.cells).every((c) => c === 127),
    `half-transparent black: ${cellsOf(half.cells)[0]}`,
  );
  const grey = await fingerprint(png(8, 8, () => [0, 0, 0, 128], { colorType: 4 }));
  assert.ok(
    cellsOf(grey.cells).every((c) => c === 127),
    'a grey-and-alpha PNG too',
  );
});

test('a 1×1 image, a very wide one and a very tall one', async () => {
  const dot = await fingerprint(png(1, 1, () => [10, 20, 30, 255]));
  assert.deepEqual({ ...dot, cells: cellsOf(dot.cells) }, { width: 1, height: 1, cols: 1, rows: 1, cells: [18] });

  // 3000×2: one row of 32 cells; a gradient from black to white, left to right
  const wide = await fingerprint(
    png(3000, 2, (x) => {
      const g = Math.round((x / 2999) * 255);
      return [g, g, g, 255];
    }),
  );
  assert.deepEqual([wide.width, wide.height, wide.cols, wide.rows], [3000, 2, 32, 1]);
  const w = cellsOf(wide.cells);
  assert.equal(w.length, 32);
  for (let i = 1; i < 32; i++) assert.ok(w[i]! > w[i - 1]!, `the gradient rises: ${w}`);
  assert.ok(w[0]! < 8 && w[31]! > 247, `${w[0]} … ${w[31]}`);

  const tall = await fingerprint(png(2, 3000, (_x, y) => (y < 1500 ? [0, 0, 0, 255] : [255, 255, 255, 255])));
  assert.deepEqual([tall.cols, tall.rows], [2, 32]);
  const t = cellsOf(tall.cells);
  assert.deepEqual(t.slice(0, 2), [0, 0]);
  assert.deepEqual(t.slice(-2), [255, 255]);
});

test('an RGB PNG without alpha and a 16-bit one read like their 8-bit RGBA twins', async () => {
  const at = (x: number, y: number): Rgba => [(x * 37) % 256, (y * 53) % 256, (x * y) % 256, 255];
  const rgba = await fingerprint(png(40, 30, at));
  const rgb = await fingerprint(png(40, 30, at, { colorType: 2 }));
  assert.deepEqual(rgb, rgba);
  const img16 = new PNG({ width: 4, height: 4, bitDepth: 16, colorType: 6, inputHasAlpha: true });
  // pngjs takes 16-bit input as 16-bit samples in a Uint16Array-like buffer
  const data = new Uint16Array(4 * 4 * 4).fill(65535);
  for (let i = 0; i < 16; i++) data.set([0, 0, 0, 65535], i * 4);
  (img16 as unknown as { data: Uint16Array }).data = data;
  const buf16 = PNG.sync.write(img16, { bitDepth: 16, colorType: 6, inputHasAlpha: true });
  const v16 = await fingerprint(buf16);
  assert.ok(
    cellsOf(v16.cells).every((c) => c === 0),
    `a black 16-bit PNG: ${cellsOf(v16.cells)}`,
  );
});

test('a buffer that is not a PNG is a BAD_REQUEST; bad sizes are refused', async () => {
  await assert.rejects(
    fingerprint(Buffer.from('GIF89a not a png')),
    (err: unknown) => err instanceof TalonError && err.code === 'BAD_REQUEST' && /not a PNG/.test(err.message),
  );
  assert.throws(() => fingerprintPixels(0, 5, new Uint8Array(0)), /1×1 or more/);
  assert.throws(() => fingerprintPixels(2, 2, new Uint8Array(8)), /too few/);
});

test('a PNG whose header says more than MAX_PIXELS is refused before it is decoded', async () => {
  const big = png(4, 4, () => [0, 0, 0, 255]);
  // the header's size only: 5000 × 5000 (decoding would keep 100 MB); the data is never read
  big.writeUInt32BE(5000, 16);
  big.writeUInt32BE(5000, 20);
  await assert.rejects(
    fingerprint(big),
    (err: unknown) => err instanceof TalonError && err.code === 'TOOL_FAILED' && /5000×5000 pixels/.test(err.message),
  );
  assert.ok(5000 * 5000 > MAX_PIXELS && 4096 * 4096 <= MAX_PIXELS);
});
