/**
 * Reads a GGUF header and checks it before llama.cpp sees the file (the local provider's
 * model check). Format: github.com/ggml-org/ggml docs/gguf.md. The test models are written by
 * test/fixtures/llm/gguf-writer.ts.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** the default `general.alignment` */
export const ALIGN = 32;
/** GGUF metadata value types */
export const GT = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;

// ---------------------------------------------------------------- checking a file

/** [elements per block, bytes per block] by ggml type id (ggml.c type_traits) */
const GGML_SIZES: Record<number, [number, number]> = {
  0: [1, 4],
  1: [1, 2],
  2: [32, 18],
  3: [32, 20],
  6: [32, 22],
  7: [32, 24],
  8: [32, 34],
  9: [32, 36],
  10: [256, 84],
  11: [256, 110],
  12: [256, 144],
  13: [256, 176],
  14: [256, 210],
  15: [256, 292],
  16: [256, 66],
  17: [256, 74],
  18: [256, 98],
  19: [256, 50],
  20: [32, 18],
  21: [256, 110],
  22: [256, 82],
  23: [256, 136],
  24: [1, 1],
  25: [1, 2],
  26: [1, 4],
  27: [1, 8],
  28: [1, 8],
  29: [256, 56],
  30: [1, 2],
  34: [256, 54],
  35: [256, 66],
  39: [32, 17],
};

export interface GgufSummary {
  version: number;
  tensorCount: number;
  architecture: string | undefined;
  name: string | undefined;
  contextLength: number | undefined;
  /** bytes the tensor data needs (when every tensor type is known) */
  expectedBytes: number | undefined;
  fileBytes: number;
}

/** why a file is not a loadable GGUF; thrown by inspectGguf */
export class GgufError extends Error {}

/**
 * Reads a GGUF header and checks it before llama.cpp sees the file (llama.cpp only says
 * "Failed to load model"): the magic, the version, that the header parses inside the file,
 * and that every tensor's data lies within it (a truncated download is the common failure).
 */
export function inspectGguf(path: string): GgufSummary {
  const fd = openSync(path, 'r');
  try {
    const fileBytes = fstatSync(fd).size;
    let buf = Buffer.alloc(0);
    const need = (end: number): void => {
      if (end <= buf.length) return;
      if (end > fileBytes) throw new GgufError(`the header is cut off at byte ${fileBytes} (truncated file)`);
      const size = Math.min(fileBytes, Math.max(end, buf.length * 2, 1 << 20));
      const next = Buffer.alloc(size);
      readSync(fd, next, 0, size, 0);
      buf = next;
    };
    let p = 0;
    const u32 = (): number => {
      need(p + 4);
      const v = buf.readUInt32LE(p);
      p += 4;
      return v;
    };
    const u64 = (): number => {
      need(p + 8);
      const v = buf.readBigUInt64LE(p);
      p += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`an implausible length ${v} at byte ${p - 8}`);
      return Number(v);
    };
    const str = (): string => {
      const n = u64();
      if (n > fileBytes) throw new GgufError(`a string of ${n} bytes at byte ${p} (corrupt or truncated header)`);
      need(p + n);
      const s = buf.toString('utf8', p, p + n);
      p += n;
      return s;
    };
    const FIXED: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    const value = (type: number): unknown => {
      if (type === GT.STRING) return str();
      if (type === GT.ARRAY) {
        const et = u32();
        const n = u64();
        if (et === GT.STRING || et === GT.ARRAY) {
          for (let i = 0; i < n; i++) value(et);
          return undefined;
        }
        const w = FIXED[et];
        if (w === undefined) throw new GgufError(`unknown metadata array type ${et} at byte ${p}`);
        need(p + n * w);
        p += n * w;
        return undefined;
      }
      const w = FIXED[type];
      if (w === undefined) throw new GgufError(`unknown metadata type ${type} at byte ${p}`);
      need(p + w);
      const at = p;
      p += w;
      if (type === GT.U32) return buf.readUInt32LE(at);
      if (type === GT.U64) return Number(buf.readBigUInt64LE(at));
      return undefined;
    };

    if (fileBytes < 4) throw new GgufError(`only ${fileBytes} bytes: not a GGUF file`);
    need(4);
    if (buf.toString('latin1', 0, 4) !== 'GGUF') {
      throw new GgufError(
        `it does not start with "GGUF" (found ${JSON.stringify(buf.toString('latin1', 0, 4))}): not a GGUF model file`,
      );
    }
    p = 4;
    const version = u32();
    if (version !== 2 && version !== 3) throw new GgufError(`GGUF version ${version} is not supported (2 or 3)`);
    const tensorCount = u64();
    const kvCount = u64();
    let alignment = ALIGN;
    let architecture: string | undefined;
    let name: string | undefined;
    const ints = new Map<string, number>();
    for (let i = 0; i < kvCount; i++) {
      const key = str();
      const type = u32();
      const v = value(type);
      if (key === 'general.alignment' && typeof v === 'number') alignment = v;
      else if (key === 'general.architecture' && typeof v === 'string') architecture = v;
      else if (key === 'general.name' && typeof v === 'string') name = v;
      else if (typeof v === 'number') ints.set(key, v);
    }
    let expected: number | undefined = 0;
    for (let i = 0; i < tensorCount; i++) {
      const tname = str();
      const nd = u32();
      if (nd > 8) throw new GgufError(`tensor ${tname} has ${nd} dimensions (corrupt header)`);
      let n = 1;
      for (let d = 0; d < nd; d++) n *= u64();
      const type = u32();
      const offset = u64();
      const size = GGML_SIZES[type];
      if (size === undefined) expected = undefined;
      else if (expected !== undefined) expected = Math.max(expected, offset + (n / size[0]) * size[1]);
    }
    const dataStart = p + ((alignment - (p % alignment)) % alignment);
    if (expected !== undefined && dataStart + expected > fileBytes) {
      throw new GgufError(
        `the tensor data needs ${dataStart + expected} bytes but the file has ${fileBytes} (truncated file)`,
      );
    }
    return {
      version,
      tensorCount,
      architecture,
      name,
      contextLength: architecture ? ints.get(`${architecture}.context_length`) : undefined,
      expectedBytes: expected === undefined ? undefined : dataStart + expected,
      fileBytes,
    };
  } finally {
    closeSync(fd);
  }
}
