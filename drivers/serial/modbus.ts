/**
 * Modbus RTU master, the parts that are pure: CRC-16/MODBUS, request frames for
 * Read Holding Registers (0x03) and Read Input Registers (0x04), response framing and
 * parsing (CRC, exception responses), register decoding with scale and offset, and the
 * grouping of configured registers into as few requests as possible.
 *
 * The transaction loop (one request at a time, timeout, inter-frame gap) lives in
 * ModbusMaster below; it talks to any `write(bytes)` and is fed bytes with `feed()`, so the
 * serial driver and the tests share it.
 *
 * References: "MODBUS over Serial Line Specification V1.02" (§2.5.1.1 RTU framing, t3.5;
 * §6.2.2 CRC) and "MODBUS Application Protocol V1.1b3" (§6.3, §6.4, §7 exceptions).
 */
import type { Clock } from '../../runtime/core/clock.ts';

// ------------------------------------------------------------------------------- CRC-16

const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); sent low byte first */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ buf[i]!) & 0xff]!;
  return crc;
}

/** `body` followed by its CRC (low byte, high byte) */
export function withCrc(body: Uint8Array): Buffer {
  const out = Buffer.alloc(body.length + 2);
  out.set(body, 0);
  const crc = crc16(body);
  out[body.length] = crc & 0xff;
  out[body.length + 1] = crc >>> 8;
  return out;
}

// --------------------------------------------------------------------------- requests

export type RegisterTable = 'holding' | 'input';
export const FUNCTION_CODE: Record<RegisterTable, 3 | 4> = { holding: 0x03, input: 0x04 };
/** the most registers one 0x03/0x04 request may ask for [Application Protocol §6.3] */
export const MAX_QUANTITY = 125;

export function buildReadRequest(unitId: number, fn: 3 | 4, address: number, quantity: number): Buffer {
  if (!Number.isInteger(unitId) || unitId < 0 || unitId > 247) throw new RangeError(`unit id ${unitId} is not 0..247`);
  if (!Number.isInteger(address) || address < 0 || address > 0xffff)
    throw new RangeError(`address ${address} is not 0..65535`);
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > MAX_QUANTITY)
    throw new RangeError(`quantity ${quantity} is not 1..${MAX_QUANTITY}`);
  if (address + quantity > 0x10000) throw new RangeError(`registers ${address}+${quantity} run past 65535`);
  return withCrc(Uint8Array.of(unitId, fn, address >>> 8, address & 0xff, quantity >>> 8, quantity & 0xff));
}

// -------------------------------------------------------------------------- responses

export type ModbusErrorCode =
  /** the slave answered with an exception (function code | 0x80) */
  | 'exception'
  /** the CRC of the response does not match */
  | 'crc'
  /** a well-checksummed frame that is not the answer to this request (unit, function, length) */
  | 'mismatch'
  /** no complete answer within the timeout */
  | 'timeout'
  /** the port is not open or the write failed */
  | 'io';

export interface ModbusFailure {
  ok: false;
  code: ModbusErrorCode;
  message: string;
  /** the exception code for `exception` (1 illegal function, 2 illegal address, …) */
  exception?: number;
}
export type ReadResult = { ok: true; registers: Uint16Array } | ModbusFailure;

export const EXCEPTION_NAMES: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'slave device failure',
  5: 'acknowledge',
  6: 'slave device busy',
  8: 'memory parity error',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

/**
 * How many bytes the answer to a 0x03/0x04 request will have, judging from what arrived
 * so far: 0 while unknown (fewer than 3 bytes), 5 for an exception, 5 + byte count otherwise.
 */
export function expectedResponseLength(buf: Uint8Array, len = buf.length): number {
  if (len < 2) return 0;
  if (buf[1]! & 0x80) return 5;
  if (len < 3) return 0;
  return 5 + buf[2]!;
}

export function hex(buf: Uint8Array, max = 32): string {
  const parts: string[] = [];
  for (let i = 0; i < Math.min(buf.length, max); i++) parts.push(buf[i]!.toString(16).padStart(2, '0'));
  return parts.join(' ') + (buf.length > max ? ' …' : '');
}

/** checks and decodes a complete response frame to a 0x03/0x04 request */
export function parseReadResponse(frame: Uint8Array, req: { unitId: number; fn: 3 | 4; quantity: number }): ReadResult {
  if (frame.length < 5)
    return { ok: false, code: 'mismatch', message: `response of ${frame.length} bytes is too short: ${hex(frame)}` };
  const crc = crc16(frame, 0, frame.length - 2);
  const got = frame[frame.length - 2]! | (frame[frame.length - 1]! << 8);
  if (crc !== got) {
    return {
      ok: false,
      code: 'crc',
      message: `response CRC ${got.toString(16).padStart(4, '0')} does not match computed ${crc.toString(16).padStart(4, '0')}: ${hex(frame)}`,
    };
  }
  if (frame[0] !== req.unitId) {
    return {
      ok: false,
      code: 'mismatch',
      message: `response from unit ${frame[0]} to a request for unit ${req.unitId}`,
    };
  }
  const fn = frame[1]!;
  if (fn === (req.fn | 0x80)) {
    const code = frame[2]!;
    const name = EXCEPTION_NAMES[code] ?? 'unknown exception';
    return {
      ok: false,
      code: 'exception',
      exception: code,
      message: `unit ${req.unitId} answered function 0x0${req.fn} with exception ${code} (${name})`,
    };
  }
  if (fn !== req.fn)
    return { ok: false, code: 'mismatch', message: `response function 0x${fn.toString(16)} to a 0x0${req.fn} request` };
  const count = frame[2]!;
  if (count !== req.quantity * 2 || frame.length !== 5 + count) {
    return { ok: false, code: 'mismatch', message: `response carries ${count} bytes for ${req.quantity} registers` };
  }
  const registers = new Uint16Array(req.quantity);
  for (let i = 0; i < req.quantity; i++) registers[i] = (frame[3 + 2 * i]! << 8) | frame[4 + 2 * i]!;
  return { ok: true, registers };
}

/** a response frame, as a slave builds it (used by tests and simulators) */
export function buildReadResponse(unitId: number, fn: 3 | 4, registers: ArrayLike<number>): Buffer {
  const body = new Uint8Array(3 + registers.length * 2);
  body[0] = unitId;
  body[1] = fn;
  body[2] = registers.length * 2;
  for (let i = 0; i < registers.length; i++) {
    body[3 + 2 * i] = (registers[i]! >>> 8) & 0xff;
    body[4 + 2 * i] = registers[i]! & 0xff;
  }
  return withCrc(body);
}

export function buildExceptionResponse(unitId: number, fn: number, code: number): Buffer {
  return withCrc(Uint8Array.of(unitId, fn | 0x80, code));
}

// -------------------------------------------------------------------------- decoding

export type RegisterType = 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32';
/** `big`: the first register holds the high word (the Modbus norm); `little`: word-swapped */
export type WordOrder = 'big' | 'little';

export function registerCount(type: RegisterType): 1 | 2 {
  return type === 'int16' || type === 'uint16' ? 1 : 2;
}

const scratch = new DataView(new ArrayBuffer(4));

/**
 * The raw value of `type` at `index` in `regs`. Byte order inside a register is always
 * big-endian (the Modbus rule); `wordOrder` says which register of a 32-bit pair is high.
 */
export function decodeRaw(
  regs: ArrayLike<number>,
  index: number,
  type: RegisterType,
  wordOrder: WordOrder = 'big',
): number {
  const a = regs[index];
  if (a === undefined) throw new RangeError(`register ${index} is not in the response`);
  switch (type) {
    case 'uint16':
      return a & 0xffff;
    case 'int16':
      return (a << 16) >> 16;
    default: {
      const b = regs[index + 1];
      if (b === undefined) throw new RangeError(`register ${index + 1} is not in the response`);
      const hi = wordOrder === 'big' ? a : b;
      const lo = wordOrder === 'big' ? b : a;
      scratch.setUint16(0, hi);
      scratch.setUint16(2, lo);
      if (type === 'uint32') return scratch.getUint32(0);
      if (type === 'int32') return scratch.getInt32(0);
      return scratch.getFloat32(0);
    }
  }
}

/** `raw * scale + offset`, or undefined when it is not a finite number (a NaN float32) */
export function scaleValue(raw: number, scale = 1, offset = 0): number | undefined {
  const v = raw * scale + offset;
  if (!Number.isFinite(v)) return undefined;
  // keep 1e-9 resolution: 215 * 0.1 gives 21.5, not 21.500000000000004
  const r = Math.round(v * 1e9) / 1e9;
  return Number.isFinite(r) ? r : v;
}

// -------------------------------------------------------------------------- planning

export interface RegisterSpec {
  id: string;
  table: RegisterTable;
  address: number;
  type: RegisterType;
  scale?: number;
  offset?: number;
  wordOrder?: WordOrder;
}

export interface ReadPlan {
  table: RegisterTable;
  fn: 3 | 4;
  address: number;
  quantity: number;
  /** the registers this request answers, with their index in the response */
  items: Array<{ spec: RegisterSpec; index: number }>;
}

/**
 * Groups registers into requests: per table, sorted by address, overlapping or adjacent
 * ranges share a request up to 125 registers. Gaps are never bridged (a device may answer
 * "illegal data address" for a register between two valid ones).
 */
export function planReads(specs: readonly RegisterSpec[]): ReadPlan[] {
  const plans: ReadPlan[] = [];
  for (const table of ['holding', 'input'] as const) {
    const mine = specs.filter((s) => s.table === table).sort((a, b) => a.address - b.address);
    let cur: ReadPlan | undefined;
    for (const spec of mine) {
      const end = spec.address + registerCount(spec.type);
      if (cur && spec.address <= cur.address + cur.quantity && end - cur.address <= MAX_QUANTITY) {
        cur.quantity = Math.max(cur.quantity, end - cur.address);
        cur.items.push({ spec, index: spec.address - cur.address });
        continue;
      }
      cur = {
        table,
        fn: FUNCTION_CODE[table],
        address: spec.address,
        quantity: end - spec.address,
        items: [{ spec, index: 0 }],
      };
      plans.push(cur);
    }
  }
  return plans;
}

// ---------------------------------------------------------------------------- master

/** t3.5 in ms: 3.5 characters of 11 bits, fixed at 1.75 ms above 19200 baud [Serial Line §2.5.1.1] */
export function interFrameMs(baudRate: number): number {
  if (baudRate > 19200) return 1.75;
  return (3.5 * 11 * 1000) / baudRate;
}

export interface MasterOptions {
  write(bytes: Buffer): Promise<void>;
  clock: Clock;
  timeoutMs: number;
  baudRate: number;
}

/**
 * One request at a time: `request()` waits for the previous transaction to finish, for the
 * inter-frame gap, drops any stale bytes, sends, and resolves with the parsed answer, a
 * typed failure, or `timeout`. Never rejects.
 */
export class ModbusMaster {
  readonly #opts: MasterOptions;
  readonly #gapMs: number;
  #rx = Buffer.alloc(5 + 2 * MAX_QUANTITY + 16);
  #rxLen = 0;
  #pending:
    | {
        req: { unitId: number; fn: 3 | 4; quantity: number };
        resolve: (r: ReadResult) => void;
        timer: unknown;
      }
    | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #lastEnd = 0;
  #lastRx = 0;
  /** t3.5 after a good answer; longer after a failure, when a late or partial frame may follow */
  #quietMs = 0;

  constructor(opts: MasterOptions) {
    this.#opts = opts;
    this.#gapMs = interFrameMs(opts.baudRate);
  }

  /** bytes from the port */
  feed(chunk: Buffer): void {
    this.#lastRx = this.#opts.clock.now();
    const p = this.#pending;
    if (!p) return; // nobody asked: noise or a late answer to a timed-out request
    const room = this.#rx.length - this.#rxLen;
    chunk.copy(this.#rx, this.#rxLen, 0, Math.min(room, chunk.length));
    this.#rxLen += Math.min(room, chunk.length);
    const want = expectedResponseLength(this.#rx, this.#rxLen);
    if (want === 0 || this.#rxLen < want) {
      if (this.#rxLen >= this.#rx.length)
        this.#finish({ ok: false, code: 'mismatch', message: `response overflow: ${hex(this.#rx)}` });
      return;
    }
    const frame = Buffer.from(this.#rx.subarray(0, want));
    this.#finish(parseReadResponse(frame, p.req));
  }

  /** fail the transaction in flight (the port closed) */
  abort(message: string): void {
    if (this.#pending) this.#finish({ ok: false, code: 'io', message });
  }

  read(unitId: number, fn: 3 | 4, address: number, quantity: number): Promise<ReadResult> {
    const run = this.#chain.then(() => this.#transact(unitId, fn, address, quantity));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #transact(unitId: number, fn: 3 | 4, address: number, quantity: number): Promise<ReadResult> {
    const { clock } = this.#opts;
    // the line must be quiet for t3.5 since the last frame and the last stray byte (a late
    // answer to a timed-out request must not be taken for the answer to this one); a line
    // that never goes quiet is given up on after one timeout and the request sent anyway
    const deadline = clock.now() + this.#opts.timeoutMs;
    for (;;) {
      const now = clock.now();
      const wait = Math.max(this.#lastEnd, this.#lastRx) + this.#quietMs - now;
      if (wait <= 0 || now >= deadline) break;
      await new Promise<void>((r) => clock.setTimeout(r, Math.ceil(wait)));
    }
    let frame: Buffer;
    try {
      frame = buildReadRequest(unitId, fn, address, quantity);
    } catch (err) {
      return { ok: false, code: 'io', message: (err as Error).message };
    }
    this.#rxLen = 0;
    const result = new Promise<ReadResult>((resolve) => {
      const timer = clock.setTimeout(() => {
        this.#finish({
          ok: false,
          code: 'timeout',
          message: `unit ${unitId} did not answer function 0x0${fn} at ${address} within ${this.#opts.timeoutMs} ms${this.#rxLen ? ` (got ${hex(this.#rx.subarray(0, this.#rxLen))})` : ''}`,
        });
      }, this.#opts.timeoutMs);
      this.#pending = { req: { unitId, fn, quantity }, resolve, timer };
    });
    // not awaited: a write to a port that is closing may never call back, and a transaction
    // that waited for it would block every later one (seen: polling frozen after a reconnect).
    // The timeout above settles the request whatever the write does.
    const mine = this.#pending;
    Promise.resolve()
      .then(() => this.#opts.write(frame))
      .catch((err: unknown) => {
        // only this request's failure: a late one must not fail the next request
        if (this.#pending === mine)
          this.#finish({ ok: false, code: 'io', message: `write failed: ${(err as Error).message}` });
      });
    return result;
  }

  #finish(r: ReadResult): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = undefined;
    this.#opts.clock.clearTimeout(p.timer);
    this.#rxLen = 0;
    this.#lastEnd = this.#opts.clock.now();
    this.#quietMs = r.ok ? this.#gapMs : Math.max(this.#gapMs, 20);
    p.resolve(r);
  }
}
