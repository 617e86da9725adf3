import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../../runtime/core/clock.ts';
import {
  crc16,
  withCrc,
  buildReadRequest,
  parseReadResponse,
  buildReadResponse,
  buildExceptionResponse,
  expectedResponseLength,
  decodeRaw,
  scaleValue,
  planReads,
  interFrameMs,
  ModbusMaster,
  type RegisterSpec,
} from '../../../drivers/serial/modbus.ts';

const bytes = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('CRC-16/MODBUS known vectors', () => {
  assert.equal(crc16(bytes('01 03 00 00 00 0A')), 0xcdc5); // sent as C5 CD
  assert.deepEqual(withCrc(bytes('01 03 00 00 00 0A')), bytes('01 03 00 00 00 0A C5 CD'));
  assert.equal(crc16(Buffer.from('123456789')), 0x4b37); // the catalogue check value
  assert.deepEqual(withCrc(bytes('11 03 00 6B 00 03')), bytes('11 03 00 6B 00 03 76 87')); // spec example
  assert.deepEqual(buildExceptionResponse(1, 3, 2), bytes('01 83 02 C0 F1'));
});

test('buildReadRequest: frames and argument checks', () => {
  assert.deepEqual(buildReadRequest(1, 3, 0, 10), bytes('01 03 00 00 00 0A C5 CD'));
  assert.deepEqual(buildReadRequest(0x11, 4, 0x0008, 1), withCrc(bytes('11 04 00 08 00 01')));
  assert.throws(() => buildReadRequest(248, 3, 0, 1), RangeError);
  assert.throws(() => buildReadRequest(1, 3, 0, 126), RangeError);
  assert.throws(() => buildReadRequest(1, 3, 0, 0), RangeError);
  assert.throws(() => buildReadRequest(1, 3, 65535, 2), RangeError);
});

test('parseReadResponse: values, bad CRC, exception, mismatches', () => {
  const req = { unitId: 1, fn: 3 as const, quantity: 2 };
  const good = buildReadResponse(1, 3, [0x00d7, 0xffff]);
  assert.deepEqual(good, withCrc(bytes('01 03 04 00 D7 FF FF')));
  assert.equal(expectedResponseLength(good), 9);
  const r = parseReadResponse(good, req);
  assert.ok(r.ok);
  assert.deepEqual([...r.registers], [215, 65535]);

  const bad = Buffer.from(good);
  bad[4] = bad[4]! ^ 0x01;
  const c = parseReadResponse(bad, req);
  assert.equal(c.ok, false);
  assert.equal(!c.ok && c.code, 'crc');

  const ex = parseReadResponse(bytes('01 83 02 C0 F1'), req);
  assert.equal(expectedResponseLength(bytes('01 83')), 5);
  assert.ok(!ex.ok);
  assert.equal(ex.code, 'exception');
  assert.equal(ex.exception, 2);
  assert.match(ex.message, /illegal data address/);

  const other = parseReadResponse(buildReadResponse(2, 3, [1, 2]), req);
  assert.equal(!other.ok && other.code, 'mismatch');
  const fn = parseReadResponse(buildReadResponse(1, 4, [1, 2]), req);
  assert.equal(!fn.ok && fn.code, 'mismatch');
  const short = parseReadResponse(buildReadResponse(1, 3, [1]), req);
  assert.equal(!short.ok && short.code, 'mismatch');
});

test('decodeRaw: 16/32-bit ints, float32, word order; scaleValue', () => {
  assert.equal(decodeRaw([0xffff], 0, 'int16'), -1);
  assert.equal(decodeRaw([0xffff], 0, 'uint16'), 65535);
  assert.equal(decodeRaw([0x8000], 0, 'int16'), -32768);
  assert.equal(decodeRaw([0x0001, 0x0002], 0, 'uint32'), 0x00010002);
  assert.equal(decodeRaw([0x0001, 0x0002], 0, 'uint32', 'little'), 0x00020001);
  assert.equal(decodeRaw([0xffff, 0xfffe], 0, 'int32'), -2);
  assert.equal(decodeRaw([0xfffe, 0xffff], 0, 'int32', 'little'), -2);
  assert.equal(decodeRaw([0x41ac, 0x0000], 0, 'float32'), 21.5);
  assert.equal(decodeRaw([0x0000, 0x41ac], 0, 'float32', 'little'), 21.5);
  assert.ok(Number.isNaN(decodeRaw([0x7fc0, 0x0000], 0, 'float32')));
  assert.throws(() => decodeRaw([1], 0, 'uint32'), RangeError);
  assert.equal(scaleValue(215, 0.1), 21.5);
  assert.equal(scaleValue(1000, 0.1, -40), 60);
  assert.equal(scaleValue(Number.NaN), undefined);
  assert.equal(scaleValue(3.4e38, 1e300), undefined);
  assert.equal(scaleValue(1e300, 1), 1e300);
});

test('planReads: adjacent ranges merged per table, gaps and the 125 limit respected', () => {
  const r = (
    id: string,
    table: 'holding' | 'input',
    address: number,
    type: RegisterSpec['type'] = 'uint16',
  ): RegisterSpec => ({ id, table, address, type });
  const plans = planReads([
    r('a', 'holding', 0),
    r('b', 'holding', 1, 'float32'),
    r('c', 'holding', 3),
    r('d', 'holding', 10),
    r('e', 'input', 0, 'uint32'),
    r('f', 'input', 1),
    r('g', 'holding', 130),
    r('h', 'holding', 10),
  ]);
  assert.deepEqual(
    plans.map((p) => [p.table, p.fn, p.address, p.quantity, p.items.map((i) => `${i.spec.id}@${i.index}`)]),
    [
      ['holding', 3, 0, 4, ['a@0', 'b@1', 'c@3']],
      ['holding', 3, 10, 1, ['d@0', 'h@0']],
      ['holding', 3, 130, 1, ['g@0']],
      ['input', 4, 0, 2, ['e@0', 'f@1']],
    ],
  );
  const many = Array.from({ length: 130 }, (_, i) => r(`x${i}`, 'input', i));
  assert.deepEqual(
    planReads(many).map((p) => p.quantity),
    [125, 5],
  );
});

test('interFrameMs: 3.5 characters, fixed above 19200 baud', () => {
  assert.equal(interFrameMs(9600), (3.5 * 11 * 1000) / 9600);
  assert.equal(interFrameMs(115200), 1.75);
});

test('ModbusMaster: split frames, one request at a time, stale bytes dropped, timeout', async () => {
  const sent: Buffer[] = [];
  let answer: ((req: Buffer) => void) | undefined;
  const master: ModbusMaster = new ModbusMaster({
    clock: systemClock,
    baudRate: 115200,
    timeoutMs: 100,
    write: async (b) => {
      sent.push(b);
      answer?.(b);
    },
  });
  // noise with nobody asking is ignored
  master.feed(bytes('01 03 02 00 01'));
  answer = (req) => {
    const addr = req.readUInt16BE(2);
    const frame = buildReadResponse(1, req[1] as 3 | 4, [addr, addr + 1]);
    // in three pieces, as a UART delivers it
    setImmediate(() => master.feed(frame.subarray(0, 2)));
    setImmediate(() => master.feed(frame.subarray(2, 5)));
    setImmediate(() => master.feed(frame.subarray(5)));
  };
  const [a, b] = await Promise.all([master.read(1, 3, 100, 2), master.read(1, 4, 200, 2)]);
  assert.ok(a.ok && b.ok);
  assert.deepEqual([...a.registers], [100, 101]);
  assert.deepEqual([...b.registers], [200, 201]);
  assert.equal(sent.length, 2);

  answer = undefined; // silence
  const t = await master.read(1, 3, 0, 1);
  assert.ok(!t.ok);
  assert.equal(t.code, 'timeout');

  answer = (req) => setImmediate(() => master.feed(buildExceptionResponse(1, req[1]!, 4)));
  const e = await master.read(1, 3, 0, 1);
  assert.ok(!e.ok && e.code === 'exception' && e.exception === 4);

  const failing = new ModbusMaster({
    clock: systemClock,
    baudRate: 9600,
    timeoutMs: 100,
    write: async () => {
      throw new Error('EIO');
    },
  });
  const io = await failing.read(1, 3, 0, 1);
  assert.ok(!io.ok && io.code === 'io');
});
