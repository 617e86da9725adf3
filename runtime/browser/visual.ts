/**
 * A visual fingerprint of a screenshot: the kernel's half of a visual watch (issue 20). `browser.read` with
 * `visual: true` answers one for the element its selector matches (or the viewport); a caller (the Web Automation
 * Hand's visual watches) stores it and compares two of them. The fingerprint is small (at most 32 × 32 bytes,
 * base64) and coarse on purpose: anti-aliasing, a caret, a font hinting difference move a cell's mean
 * by a few levels, a new colour or a changed headline by many.
 *
 * The PNG's pixels are cut into a grid of `cols` × `rows` cells: cols = min(32, width); rows such that cells are about
 * square (height ÷ cell width, rounded), between 1 and min(32, height). Each cell's byte is the mean luminance
 * (0.299 R + 0.587 G + 0.114 B, alpha composited over white) of its pixels, 0–255, rounded; `cells` is those bytes,
 * row-major, in base64. Cell borders fall at floor(i × width ÷ cols) (and likewise for rows), so every pixel is in
 * exactly one cell and every cell has at least one pixel.
 *
 * pngjs is imported on the first call, not when this file loads: the daemon's start does not pay for it.
 */
import { TalonError } from '../core/errors.ts';

/** the fingerprint of one PNG (see the file's comment) */
export interface Visual {
  /** the PNG's size in pixels */
  width: number;
  height: number;
  /** the grid: cols = min(32, width), rows ≤ 32 */
  cols: number;
  rows: number;
  /** base64 of cols × rows bytes, each a cell's mean luminance 0–255, row-major */
  cells: string;
}

/** the grid's largest side */
export const MAX_CELLS_PER_SIDE = 32;

type PngModule = typeof import('pngjs');
let pngjs: Promise<PngModule> | undefined;

async function loadPng(): Promise<PngModule> {
  pngjs ??= import('pngjs').then((m) => {
    const mod = m as PngModule & { default?: PngModule };
    return mod.PNG ? mod : (mod.default as PngModule);
  });
  return pngjs;
}

/** The grid for an image of `width` × `height` pixels (see the file's comment). */
export function gridOf(width: number, height: number): { cols: number; rows: number } {
  const cols = Math.max(1, Math.min(MAX_CELLS_PER_SIDE, width));
  const cell = width / cols;
  const rows = Math.max(1, Math.min(MAX_CELLS_PER_SIDE, height, Math.round(height / cell)));
  return { cols, rows };
}

/** The fingerprint of a PNG; a buffer that is not a PNG is a BAD_REQUEST. */
/**
 * The most pixels a screenshot may have to be fingerprinted: decoding keeps width × height × 4 bytes in the kernel, and a
 * page decides how large its element is (16 megapixels: 64 MB decoded).
 */
export const MAX_PIXELS = 16 * 1024 * 1024;

export async function fingerprint(png: Buffer): Promise<Visual> {
  // the size from the PNG's header (IHDR) before anything is decoded
  if (png.length >= 24 && png.toString('latin1', 12, 16) === 'IHDR') {
    const w = png.readUInt32BE(16);
    const h = png.readUInt32BE(20);
    if (w * h > MAX_PIXELS)
      throw new TalonError(
        'TOOL_FAILED',
        `the screenshot is ${w}×${h} pixels; a visual read takes at most ${MAX_PIXELS} pixels: choose a smaller element`,
      );
  }
  const { PNG } = await loadPng();
  let img: { width: number; height: number; data: Buffer };
  try {
    img = PNG.sync.read(png);
  } catch (err) {
    throw new TalonError('BAD_REQUEST', `the screenshot is not a PNG that can be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return fingerprintPixels(img.width, img.height, img.data);
}

/** The fingerprint of raw RGBA pixels (8 bits per channel, row-major), as `fingerprint` computes it. */
export function fingerprintPixels(width: number, height: number, rgba: Uint8Array): Visual {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new TalonError(
      'BAD_REQUEST',
      `an image of ${width}×${height} pixels has no fingerprint; it needs 1×1 or more`,
    );
  if (rgba.length < width * height * 4)
    throw new TalonError('BAD_REQUEST', `${rgba.length} bytes are too few for ${width}×${height} RGBA pixels`);
  const { cols, rows } = gridOf(width, height);
  const sums = new Float64Array(cols * rows);
  const counts = new Uint32Array(cols * rows);
  // the cell column of each pixel column, computed once
  const colOf = new Uint16Array(width);
  for (let c = 0, x = 0; c < cols; c++) {
    const end = Math.floor(((c + 1) * width) / cols);
    for (; x < end; x++) colOf[x] = c;
  }
  for (let r = 0, y = 0; r < rows; r++) {
    const end = Math.floor(((r + 1) * height) / rows);
    for (; y < end; y++) {
      const base = r * cols;
      let i = y * width * 4;
      for (let x = 0; x < width; x++, i += 4) {
        const a = rgba[i + 3]! / 255;
        const lum = 0.299 * rgba[i]! + 0.587 * rgba[i + 1]! + 0.114 * rgba[i + 2]!;
        const cell = base + colOf[x]!;
        sums[cell]! += lum * a + 255 * (1 - a);
        counts[cell]!++;
      }
    }
  }
  const bytes = Buffer.alloc(cols * rows);
  for (let k = 0; k < bytes.length; k++) bytes[k] = Math.max(0, Math.min(255, Math.round(sums[k]! / counts[k]!)));
  return { width, height, cols, rows, cells: bytes.toString('base64') };
}
