/**
 * Writes a GGUF v3 file holding a llama-architecture model with seeded random weights and a
 * SentencePiece ("llama") byte-fallback vocabulary. Its text is gibberish; its mechanics are
 * real: llama.cpp loads it, tokenises, evaluates, samples under a grammar and embeds. Used by
 * the tests (a tiny model, loads in milliseconds) and the benchmark (a 1B-shaped Q8_0 model).
 *
 * Format (github.com/ggml-org/ggml docs/gguf.md): "GGUF", u32 version 3, u64 tensor count,
 * u64 metadata count, metadata key/values, tensor infos (name, dims innermost first, ggml
 * type, offset in the data section), padding to `general.alignment` (32), tensor data, each
 * tensor aligned to 32. Tensors are generated and written one at a time, so a 1 GB model
 * never sits in memory.
 */
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';

const ALIGN = 32;

/** ggml tensor types written here */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type TensorType = keyof typeof GGML_TYPE;

/** GGUF metadata value types */
const GT = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;

/** llama.cpp token types */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const;

export interface TestModelShape {
  /** embedding width (a multiple of 32 for Q8_0, and of headCount) */
  dim: number;
  layers: number;
  /** feed-forward width (a multiple of 32 for Q8_0) */
  ffn: number;
  heads: number;
  kvHeads: number;
  /** total vocabulary; at least the specials + 256 byte tokens + "▁"; the rest are filler pieces */
  vocab: number;
  contextLength: number;
  /** type of the 2-D weight matrices; norms are always F32 */
  type: TensorType;
  seed: number;
  name: string;
  /**
   * Bigram steering, for tests that need a predictable model (tool calls): the blocks'
   * output projections are zeroed, so the last hidden state is the current token's
   * embedding, and each `[from, to]` pair (token texts, e.g. '\n' → '<0x0A>' is written
   * '<0x0A>') makes `to` the certain next token after `from`. F32 only.
   */
  steer?: [from: string, to: string][];
}

/** loads in well under a second: the test model */
export const TINY_SHAPE: TestModelShape = {
  dim: 64, layers: 2, ffn: 128, heads: 4, kvHeads: 2, vocab: 320, contextLength: 4096, type: 'F32', seed: 1, name: 'talon-tiny-random',
};

/** 1B-parameter-class shape (TinyLlama-like widths, 16 layers), Q8_0: ~0.9 GB */
export const ONE_B_SHAPE: TestModelShape = {
  dim: 2048, layers: 16, ffn: 5632, heads: 32, kvHeads: 8, vocab: 32000, contextLength: 2048, type: 'Q8_0', seed: 1, name: 'talon-1b-random',
};

/** ChatML: node-llama-cpp recognises it and uses its ChatMLChatWrapper */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const SPECIAL_TOKENS = { unk: 0, bos: 1, eos: 2, imStart: 3, imEnd: 4 } as const;
const SPECIAL_TEXT = ['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>'];

/** a few whole-word pieces so ordinary text tokenises into fewer than one token per byte */
const WORDS = ['▁the', '▁a', '▁is', '▁of', '▁and', '▁to', '▁in', '▁it', '▁hello', '▁world', '▁temperature', '▁sensor', '▁alert',
  '▁ok', '▁value', '▁true', '▁false', '▁null', '{', '}', '[', ']', '"', ':', ',', '▁{', '▁"', '||', 'call', 'er', 'in', 'on', 'an', 're',
  'th', 'en', 'at', 'es'];

export interface Vocab { tokens: string[]; scores: number[]; types: number[] }

export function buildVocab(size: number): Vocab {
  const tokens: string[] = [...SPECIAL_TEXT];
  const types: number[] = [TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_TYPE.BYTE);
  }
  const seen = new Set(tokens);
  const normal = (piece: string): void => {
    if (tokens.length >= size || seen.has(piece)) return;
    seen.add(piece);
    tokens.push(piece);
    types.push(TOKEN_TYPE.NORMAL);
  };
  normal('▁');
  for (const w of WORDS) normal(w);
  // filler pieces: lowercase letter pairs, triples, … (with and without the word marker)
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let len = 1; tokens.length < size; len++) {
    const n = letters.length ** len;
    for (let i = 0; i < n && tokens.length < size; i++) {
      let s = '';
      for (let k = 0, x = i; k < len; k++, x = Math.floor(x / 26)) s += letters[x % 26];
      normal(s);
      normal('▁' + s);
    }
  }
  if (tokens.length < size) throw new Error('vocab too small');
  // SentencePiece merges by score: longer pieces score higher, so words beat their letters
  const scores = tokens.map((t, i) => (types[i] === TOKEN_TYPE.NORMAL ? -1000 + [...t].length * 10 - i * 1e-3 : 0));
  return { tokens: tokens.slice(0, size), scores: scores.slice(0, size), types: types.slice(0, size) };
}

// ---------------------------------------------------------------- byte encoding

class Bytes {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void { this.chunks.push(b); this.length += b.length; }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  i32(v: number): void { const b = Buffer.alloc(4); b.writeInt32LE(v); this.push(b); }
  u64(v: number | bigint): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  f32(v: number): void { const b = Buffer.alloc(4); b.writeFloatLE(v); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  pad(align: number): void { const r = this.length % align; if (r) this.push(Buffer.alloc(align - r)); }
  buffer(): Buffer { return Buffer.concat(this.chunks); }
}

type MetaValue =
  | { t: 'u32'; v: number } | { t: 'i32'; v: number } | { t: 'f32'; v: number } | { t: 'bool'; v: boolean } | { t: 'str'; v: string }
  | { t: 'arr_str'; v: string[] } | { t: 'arr_f32'; v: number[] } | { t: 'arr_i32'; v: number[] };

function writeMeta(out: Bytes, key: string, m: MetaValue): void {
  out.str(key);
  switch (m.t) {
    case 'u32': out.u32(GT.U32); out.u32(m.v); break;
    case 'i32': out.u32(GT.I32); out.i32(m.v); break;
    case 'f32': out.u32(GT.F32); out.f32(m.v); break;
    case 'bool': out.u32(GT.BOOL); out.push(Buffer.from([m.v ? 1 : 0])); break;
    case 'str': out.u32(GT.STRING); out.str(m.v); break;
    case 'arr_str': out.u32(GT.ARRAY); out.u32(GT.STRING); out.u64(m.v.length); for (const s of m.v) out.str(s); break;
    case 'arr_f32': out.u32(GT.ARRAY); out.u32(GT.F32); out.u64(m.v.length); for (const x of m.v) out.f32(x); break;
    case 'arr_i32': out.u32(GT.ARRAY); out.u32(GT.I32); out.u64(m.v.length); for (const x of m.v) out.i32(x); break;
  }
}

// ---------------------------------------------------------------- tensor data

/** xorshift32: seeded, fast, plenty for random weights */
class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 0x9e3779b9; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
}

function f32ToF16(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp <= 0) { // subnormal / zero
    if (exp < -10) return sign;
    mant = (mant | 0x800000) >> (1 - exp);
    return sign | (mant >> 13);
  }
  if (exp >= 31) return sign | 0x7c00;
  // truncates (rounds toward zero): good enough for random weights
  return sign | (exp << 10) | (mant >> 13);
}

interface TensorPlan {
  name: string;
  dims: number[];
  type: TensorType;
  fill: 'ones' | 'zeros' | 'random';
  std: number;
  /** F32 only: edits the generated values before they are written */
  edit?: (v: Float32Array) => void;
}

function tensorBytes(t: TensorPlan): number {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.type === 'F32') return n * 4;
  if (t.type === 'F16') return n * 2;
  if (t.dims[0]! % 32) throw new Error(`${t.name}: Q8_0 needs rows of a multiple of 32 (got ${t.dims[0]})`);
  return (n / 32) * 34;
}

/** generates a tensor's bytes in pieces of about `chunkBytes` */
function* tensorData(t: TensorPlan, rng: Rng, chunkBytes = 1 << 22): Generator<Buffer> {
  const n = t.dims.reduce((a, b) => a * b, 1);
  // uniform in [-a, a] has std a/√3
  const a = t.std * Math.sqrt(3);
  if (t.edit) {
    if (t.type !== 'F32') throw new Error(`${t.name}: edits need F32`);
    const v = new Float32Array(n);
    for (let j = 0; j < n; j++) v[j] = t.fill === 'ones' ? 1 : t.fill === 'zeros' ? 0 : ((rng.next() / 0x100000000) * 2 - 1) * a;
    t.edit(v);
    yield Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    return;
  }
  if (t.type === 'F32' || t.type === 'F16') {
    const per = t.type === 'F32' ? 4 : 2;
    const step = Math.max(1, Math.floor(chunkBytes / per));
    for (let i = 0; i < n; i += step) {
      const m = Math.min(step, n - i);
      const buf = Buffer.alloc(m * per);
      for (let j = 0; j < m; j++) {
        const v = t.fill === 'ones' ? 1 : t.fill === 'zeros' ? 0 : ((rng.next() / 0x100000000) * 2 - 1) * a;
        if (per === 4) buf.writeFloatLE(v, j * 4);
        else buf.writeUInt16LE(f32ToF16(v), j * 2);
      }
      yield buf;
    }
    return;
  }
  // Q8_0: blocks of 32 weights = f16 scale d + 32 int8 q, weight = d·q. Random weights are
  // drawn directly as int8 in [-127, 127] with d = a/127, so no float pass is needed.
  const blocks = n / 32;
  const d = f32ToF16(t.fill === 'ones' ? 1 / 127 : t.fill === 'zeros' ? 0 : a / 127);
  const step = Math.max(1, Math.floor(chunkBytes / 34));
  for (let i = 0; i < blocks; i += step) {
    const m = Math.min(step, blocks - i);
    const buf = Buffer.alloc(m * 34);
    for (let b = 0; b < m; b++) {
      const o = b * 34;
      buf.writeUInt16LE(d, o);
      for (let k = 0; k < 32; k += 4) {
        const r = t.fill === 'ones' ? 0x7f7f7f7f : rng.next();
        for (let j = 0; j < 4; j++) {
          let q = (r >>> (j * 8)) & 0xff;
          if (q === 0x80) q = 0x81; // -128 → -127: keep the range symmetric
          buf[o + 2 + k + j] = q;
        }
      }
    }
    yield buf;
  }
}

function plan(shape: TestModelShape, vocab: Vocab): TensorPlan[] {
  const { dim, ffn, heads, kvHeads, type } = shape;
  const nVocab = shape.vocab;
  if (dim % heads) throw new Error('dim must be a multiple of heads');
  const headDim = dim / heads;
  const kvDim = headDim * kvHeads;
  const std = 0.02;
  const steer = shape.steer ?? [];
  const id = (text: string): number => {
    const i = vocab.tokens.indexOf(text);
    if (i < 0) throw new Error(`steer: no token ${JSON.stringify(text)} in the vocabulary`);
    return i;
  };
  // steering: dimension k belongs to source token k; its embedding is the unit vector e_k and
  // every target's output row gets a large weight on e_k. Other tokens are zero on those dims.
  const sources = [...new Set(steer.map(([f]) => id(f)))];
  if (sources.length > dim / 2) throw new Error('too many steering pairs for this width');
  const edits = steer.length > 0;
  const t: TensorPlan[] = [
    {
      name: 'token_embd.weight', dims: [dim, nVocab], type, fill: 'random', std: 1,
      ...(edits ? { edit: (v: Float32Array) => {
        for (let tok = 0; tok < nVocab; tok++) for (let k = 0; k < sources.length; k++) v[tok * dim + k] = 0;
        sources.forEach((src, k) => { v.fill(0, src * dim, src * dim + dim); v[src * dim + k] = 1; });
      } } : {}),
    },
    { name: 'output_norm.weight', dims: [dim], type: 'F32', fill: 'ones', std: 0 },
    {
      name: 'output.weight', dims: [dim, nVocab], type, fill: 'random', std: 1 / Math.sqrt(dim) * 4,
      ...(edits ? { edit: (v: Float32Array) => {
        for (let tok = 0; tok < nVocab; tok++) for (let k = 0; k < sources.length; k++) v[tok * dim + k] = 0;
        for (const [from, to] of steer) v[id(to) * dim + sources.indexOf(id(from))] = 100;
      } } : {}),
    },
  ];
  for (let i = 0; i < shape.layers; i++) {
    const p = `blk.${i}.`;
    t.push(
      { name: p + 'attn_norm.weight', dims: [dim], type: 'F32', fill: 'ones', std: 0 },
      { name: p + 'attn_q.weight', dims: [dim, dim], type, fill: 'random', std },
      { name: p + 'attn_k.weight', dims: [dim, kvDim], type, fill: 'random', std },
      { name: p + 'attn_v.weight', dims: [dim, kvDim], type, fill: 'random', std },
      { name: p + 'attn_output.weight', dims: [dim, dim], type, fill: edits ? 'zeros' : 'random', std },
      { name: p + 'ffn_norm.weight', dims: [dim], type: 'F32', fill: 'ones', std: 0 },
      { name: p + 'ffn_gate.weight', dims: [dim, ffn], type, fill: 'random', std },
      { name: p + 'ffn_up.weight', dims: [dim, ffn], type, fill: 'random', std },
      { name: p + 'ffn_down.weight', dims: [ffn, dim], type, fill: edits ? 'zeros' : 'random', std },
    );
  }
  return t;
}

export interface WrittenModel { path: string; bytes: number; tensors: number; parameters: number; vocab: Vocab }

/**
 * Writes the model to `path` (via a temporary file renamed into place, so a reader never sees
 * a half-written model). Deterministic for a given shape and seed.
 */
export function writeTestModel(path: string, shape: Partial<TestModelShape> = {}): WrittenModel {
  const s: TestModelShape = { ...TINY_SHAPE, ...shape };
  const vocab = buildVocab(s.vocab);
  const tensors = plan(s, vocab);
  const fileType = s.type === 'F32' ? 0 : s.type === 'F16' ? 1 : 7;

  const meta: [string, MetaValue][] = [
    ['general.architecture', { t: 'str', v: 'llama' }],
    ['general.name', { t: 'str', v: s.name }],
    ['general.alignment', { t: 'u32', v: ALIGN }],
    ['general.file_type', { t: 'u32', v: fileType }],
    ['llama.context_length', { t: 'u32', v: s.contextLength }],
    ['llama.embedding_length', { t: 'u32', v: s.dim }],
    ['llama.block_count', { t: 'u32', v: s.layers }],
    ['llama.feed_forward_length', { t: 'u32', v: s.ffn }],
    ['llama.attention.head_count', { t: 'u32', v: s.heads }],
    ['llama.attention.head_count_kv', { t: 'u32', v: s.kvHeads }],
    ['llama.rope.dimension_count', { t: 'u32', v: s.dim / s.heads }],
    ['llama.rope.freq_base', { t: 'f32', v: 10000 }],
    ['llama.attention.layer_norm_rms_epsilon', { t: 'f32', v: 1e-5 }],
    ['llama.vocab_size', { t: 'u32', v: s.vocab }],
    ['tokenizer.ggml.model', { t: 'str', v: 'llama' }],
    ['tokenizer.ggml.tokens', { t: 'arr_str', v: vocab.tokens }],
    ['tokenizer.ggml.scores', { t: 'arr_f32', v: vocab.scores }],
    ['tokenizer.ggml.token_type', { t: 'arr_i32', v: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', { t: 'u32', v: SPECIAL_TOKENS.unk }],
    ['tokenizer.ggml.bos_token_id', { t: 'u32', v: SPECIAL_TOKENS.bos }],
    ['tokenizer.ggml.eos_token_id', { t: 'u32', v: SPECIAL_TOKENS.eos }],
    ['tokenizer.ggml.add_bos_token', { t: 'bool', v: true }],
    ['tokenizer.ggml.add_eos_token', { t: 'bool', v: false }],
    ['tokenizer.ggml.add_space_prefix', { t: 'bool', v: false }],
    ['tokenizer.chat_template', { t: 'str', v: CHATML_TEMPLATE }],
  ];

  const head = new Bytes();
  head.push(Buffer.from('GGUF', 'latin1'));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(meta.length);
  for (const [k, v] of meta) writeMeta(head, k, v);
  let offset = 0;
  for (const t of tensors) {
    head.str(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(GGML_TYPE[t.type]);
    head.u64(offset);
    offset += tensorBytes(t);
    offset += (ALIGN - (offset % ALIGN)) % ALIGN;
  }
  head.pad(ALIGN);

  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  let bytes = 0;
  try {
    const h = head.buffer();
    writeSync(fd, h);
    bytes += h.length;
    const rng = new Rng(s.seed);
    for (const t of tensors) {
      let n = 0;
      for (const chunk of tensorData(t, rng)) { writeSync(fd, chunk); n += chunk.length; }
      const pad = (ALIGN - (n % ALIGN)) % ALIGN;
      if (pad) writeSync(fd, Buffer.alloc(pad));
      bytes += n + pad;
    }
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw err;
  }
  const parameters = tensors.reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);
  return { path, bytes, tensors: tensors.length, parameters, vocab };
}

// ---------------------------------------------------------------- checking a file

/** [elements per block, bytes per block] by ggml type id (ggml.c type_traits) */
const GGML_SIZES: Record<number, [number, number]> = {
  0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34], 9: [32, 36],
  10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210], 15: [256, 292],
  16: [256, 66], 17: [256, 74], 18: [256, 98], 19: [256, 50], 20: [32, 18], 21: [256, 110], 22: [256, 82],
  23: [256, 136], 24: [1, 1], 25: [1, 2], 26: [1, 4], 27: [1, 8], 28: [1, 8], 29: [256, 56], 30: [1, 2],
  34: [256, 54], 35: [256, 66], 39: [32, 17],
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
    const u32 = (): number => { need(p + 4); const v = buf.readUInt32LE(p); p += 4; return v; };
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
        if (et === GT.STRING || et === GT.ARRAY) { for (let i = 0; i < n; i++) value(et); return undefined; }
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
      throw new GgufError(`it does not start with "GGUF" (found ${JSON.stringify(buf.toString('latin1', 0, 4))}): not a GGUF model file`);
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
      throw new GgufError(`the tensor data needs ${dataStart + expected} bytes but the file has ${fileBytes} (truncated file)`);
    }
    return {
      version, tensorCount, architecture, name,
      contextLength: architecture ? ints.get(`${architecture}.context_length`) : undefined,
      expectedBytes: expected === undefined ? undefined : dataStart + expected, fileBytes,
    };
  } finally {
    closeSync(fd);
  }
}
