/**
 * Visual watches: comparing two fingerprints of a region of a page. Pure: no browser, no PNG decoding here. The
 * kernel's `browser.read` with `visual: true` (runtime/browser/visual.ts `fingerprint`) cuts its screenshot into a grid
 * of cols × rows cells and answers each cell's mean luminance (0–255, base64 bytes, row-major) with the image's size;
 * ./watch.ts keeps that fingerprint as the watch's value (`encodeVisual`) and asks `compareVisual` whether a new one
 * is a change:
 *
 *   - a size change (width or height differs by more than SIZE_SLACK_PX pixels) is a change, whatever the cells say;
 *   - otherwise the share of cells whose luminance differs by more than `tolerance` (default 16 of 255: antialiasing,
 *     a blinking caret, JPEG noise stay under it) is the change; the watch's `minChange.percent` (default 1 %) is the
 *     least share that counts. Two grids of different shapes (the same size give or take SIZE_SLACK_PX, cut otherwise)
 *     are compared cell by cell after resampling the old grid onto the new one.
 *
 * What people read: "12.5 % of the region changed (size 800×600)" (`visualWords`).
 */

/** what browser.read answers with `visual: true` (runtime/browser/visual.ts makes it; a Hand cannot import the kernel) */
export interface Visual {
  width: number;
  height: number;
  cols: number;
  rows: number;
  /** base64 of cols*rows bytes, each a cell's mean luminance 0–255, row-major */
  cells: string;
}

export interface VisualChange {
  /** the share of cells that changed, in percent (100 when the size changed) */
  percent: number;
  changedCells: number;
  cells: number;
  sizeChanged: boolean;
  width: number;
  height: number;
  before: { width: number; height: number };
}

/** a size within this many pixels is the same size (a scrollbar, a rounding of device pixels) */
export const SIZE_SLACK_PX = 2;
export const DEFAULT_TOLERANCE = 16;
/** the least share of changed cells that is a change, when the watch names none (percent) */
export const DEFAULT_VISUAL_MIN_PERCENT = 1;
/** the grid's largest side (the contract: cols ≤ 32, rows ≤ 32) */
export const MAX_GRID = 32;
const MAX_SIDE_PX = 100_000;
const PREFIX = 'visual:';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const wholeIn = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** a fingerprint as the tool answered it, checked; a message naming the field when it is not one */
export function parseVisual(raw: unknown): Visual | string {
  if (!isObject(raw)) return 'visual: must be { width, height, cols, rows, cells } (browser.read with visual: true)';
  if (!wholeIn(raw.width, 1, MAX_SIDE_PX))
    return `visual.width: must be a whole number of pixels from 1 to ${MAX_SIDE_PX}`;
  if (!wholeIn(raw.height, 1, MAX_SIDE_PX))
    return `visual.height: must be a whole number of pixels from 1 to ${MAX_SIDE_PX}`;
  if (!wholeIn(raw.cols, 1, MAX_GRID)) return `visual.cols: must be a whole number from 1 to ${MAX_GRID}`;
  if (!wholeIn(raw.rows, 1, MAX_GRID)) return `visual.rows: must be a whole number from 1 to ${MAX_GRID}`;
  if (typeof raw.cells !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(raw.cells))
    return 'visual.cells: must be base64 (one byte per cell)';
  const n = Buffer.from(raw.cells, 'base64').length;
  if (n !== raw.cols * raw.rows) return `visual.cells: holds ${n} byte(s), not cols × rows = ${raw.cols * raw.rows}`;
  return { width: raw.width, height: raw.height, cols: raw.cols, rows: raw.rows, cells: raw.cells };
}

/** the fingerprint as a watch's stored value: `visual:WxH:CxR:<base64>` */
export function encodeVisual(v: Visual): string {
  return `${PREFIX}${v.width}x${v.height}:${v.cols}x${v.rows}:${v.cells}`;
}

/** a stored value back, or null when it is not an encoded fingerprint */
export function decodeVisual(s: string): Visual | null {
  const m = /^visual:(\d+)x(\d+):(\d+)x(\d+):([A-Za-z0-9+/]*={0,2})$/.exec(s);
  if (!m) return null;
  const v = parseVisual({ width: +m[1]!, height: +m[2]!, cols: +m[3]!, rows: +m[4]!, cells: m[5]! });
  return typeof v === 'string' ? null : v;
}

/** each cell's luminance */
const bytesOf = (v: Visual): Uint8Array => new Uint8Array(Buffer.from(v.cells, 'base64'));

/** the luminance of the cell of `v` under the centre of cell (c, r) of a cols × rows grid */
function sample(v: Visual, bytes: Uint8Array, c: number, r: number, cols: number, rows: number): number {
  const x = Math.min(v.cols - 1, Math.floor(((c + 0.5) / cols) * v.cols));
  const y = Math.min(v.rows - 1, Math.floor(((r + 0.5) / rows) * v.rows));
  return bytes[y * v.cols + x]!;
}

/** how much `after` differs from `before` (see the file comment); `tolerance` is 0–255 */
export function compareVisual(before: Visual, after: Visual, tolerance = DEFAULT_TOLERANCE): VisualChange {
  const base = {
    width: after.width,
    height: after.height,
    before: { width: before.width, height: before.height },
  };
  const cells = after.cols * after.rows;
  if (Math.abs(before.width - after.width) > SIZE_SLACK_PX || Math.abs(before.height - after.height) > SIZE_SLACK_PX)
    return { ...base, percent: 100, changedCells: cells, cells, sizeChanged: true };
  const a = bytesOf(before);
  const b = bytesOf(after);
  const same = before.cols === after.cols && before.rows === after.rows;
  let changed = 0;
  for (let r = 0; r < after.rows; r++)
    for (let c = 0; c < after.cols; c++) {
      const old = same ? a[r * after.cols + c]! : sample(before, a, c, r, after.cols, after.rows);
      if (Math.abs(old - b[r * after.cols + c]!) > tolerance) changed++;
    }
  return { ...base, percent: (changed / cells) * 100, changedCells: changed, cells, sizeChanged: false };
}

/** a share as people read it: 0.4, 12.5, 100 */
const share = (p: number): string => (p >= 10 || Number.isInteger(p) ? String(Math.round(p)) : p.toFixed(1));

/** "12.5 % of the region changed (size 800×600)"; a size change says both sizes */
export function visualWords(c: VisualChange): string {
  if (c.sizeChanged)
    return `the region's size changed from ${c.before.width}×${c.before.height} to ${c.width}×${c.height}`;
  return `${share(c.percent)} % of the region changed (size ${c.width}×${c.height})`;
}
