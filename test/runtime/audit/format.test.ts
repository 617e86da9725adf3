import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import canonicalize from 'canonicalize';
import {
  GENESIS_PREV,
  canonicalEntry,
  canonicalJson,
  checkpointMessage,
  entryHash,
  fastCanonicalEntry,
  pruneMessage,
  type AuditEntry,
  type Checkpoint,
} from '../../../runtime/audit/format.ts';
import { sha256Hex } from '../../../runtime/audit/crypto.ts';
import { DeviceKey } from '../../../runtime/secrets/device-key.ts';
import { verifyFile } from '../../../runtime/audit/verify-file.ts';
import { tempDir } from './harness.ts';

const FORMAT_MD = readFileSync(join(import.meta.dirname, '../../../runtime/audit/FORMAT.md'), 'utf8');

function example(name: string): string {
  const m = new RegExp(`<!-- example:${name} -->\\n\`\`\`[a-z]*\\n([^\\n]*)\\n\`\`\``).exec(FORMAT_MD);
  assert.ok(m, `FORMAT.md has example ${name}`);
  return m[1]!;
}

test('FORMAT.md worked example: canonical forms, hashes, public key and checkpoint signature are what the code makes', async () => {
  const seed = Buffer.from(Array.from({ length: 32 }, (_, i) => i + 1));
  const kp = nacl.sign.keyPair.fromSeed(seed);
  const key = new DeviceKey(Buffer.from(kp.publicKey), Buffer.from(kp.secretKey));
  assert.equal(key.publicKey.toString('base64'), example('public-key'));
  const e1 = JSON.parse(example('entry-1')) as AuditEntry;
  const e2 = JSON.parse(example('entry-2')) as AuditEntry;
  assert.equal(e1.prev, GENESIS_PREV);
  assert.equal(canonicalEntry(e1), example('canonical-1'));
  assert.equal(canonicalEntry(e2), example('canonical-2'));
  assert.equal(canonicalize(e2), example('canonical-2'), 'the reference implementation agrees');
  assert.equal(entryHash(e1, sha256Hex), example('hash-1'));
  assert.equal(entryHash(e2, sha256Hex), example('hash-2'));
  assert.equal(e2.prev, example('hash-1'));
  const cp = JSON.parse(example('checkpoint-2')) as Checkpoint;
  assert.equal(cp.hash, example('hash-2'));
  assert.equal(key.sign(checkpointMessage(cp.seq, cp.hash)).toString('base64'), cp.sig);
  assert.ok(
    nacl.sign.detached.verify(Buffer.from(checkpointMessage(2, cp.hash)), Buffer.from(cp.sig, 'base64'), kp.publicKey),
  );
  const file = join(tempDir(), 'example.jsonl');
  writeFileSync(file, `${example('entry-1')}\n${example('entry-2')}\n${example('checkpoint-2')}\n`);
  const r = await verifyFile(file, { publicKey: example('public-key') });
  assert.equal(r.ok, true, r.reason);
  assert.equal(r.checked, 2);
});

test('canonical JSON is RFC 8785: ECMAScript numbers, UTF-16 member order, escapes, lone surrogates refused', () => {
  // RFC 8785 appendix B: IEEE 754 bit patterns and their required serialisation
  const numbers: Array<[string, string]> = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  for (const [hex, want] of numbers) assert.equal(canonicalJson(Buffer.from(hex, 'hex').readDoubleBE(0)), want, hex);
  // RFC 8785 §3.2.3 sorting example
  const sorted = canonicalJson({
    '\u20ac': 'Euro Sign',
    '\r': 'Carriage Return',
    '\ufb33': 'Hebrew Letter Dalet With Dagesh',
    1: 'One',
    '\ud83d\ude00': 'Emoji: Grinning Face',
    '\u0080': 'Control',
    '\u00f6': 'Latin Small Letter O With Diaeresis',
  });
  const order = ['Carriage Return', 'One', 'Control', 'Latin Small', 'Euro Sign', 'Emoji', 'Hebrew'].map((v) =>
    sorted.indexOf(v),
  );
  assert.deepEqual(
    order,
    [...order].sort((x, y) => x - y),
    sorted,
  );
  assert.ok(order.every((i) => i > 0));
  // RFC 8785 §3.2.2 example
  assert.equal(
    canonicalJson({
      numbers: [333333333.33333329, 1e30, 4.5, 2e-3, 0.000000000000000000000000001],
      string: '\u20ac$\u000F\u000aA\'\u0042\u0022\u005c\\"/',
      literals: [null, true, false],
    }),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
  assert.throws(() => canonicalJson({ a: '\ud800' }), /surrogate/i);
  assert.throws(() => canonicalJson({ a: Number.NaN }), /NaN/);
});

test('the fast canonical path gives the reference bytes on generated entries, and defers on anything unusual', () => {
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const strings = [
    '',
    'a',
    'hand:x',
    'ü',
    '😀',
    '\u2028',
    '"\\',
    '\u0000\u001f',
    'Z'.repeat(300),
    '\ud83d\ude00x',
    '\ud800',
    'a\udc00',
  ];
  const nums = [0, -0, 1, -1, 0.1, 1e21, 1e-7, 5e-324, 2 ** 53, 333333333.33333329, 1767225600000];
  const values = (): unknown =>
    pick<() => unknown>([
      () => pick(strings),
      () => pick(nums),
      () => rnd() < 0.5,
      () => null,
      () => [pick(nums), pick(strings)],
      () => ({ [pick(strings)]: pick(nums) }),
    ])();
  let fast = 0;
  for (let i = 0; i < 5000; i++) {
    const detail: Record<string, unknown> = {};
    for (let k = Math.floor(rnd() * 5); k > 0; k--) detail[pick(strings)] = values();
    const e = {
      v: 1,
      seq: 1 + Math.floor(rnd() * 1e9),
      ts: pick(nums),
      actor: pick(strings),
      action: pick(strings),
      subject: pick(strings),
      decision: 'ok',
      detail,
      prev: GENESIS_PREV,
      ...(rnd() < 0.5 ? { hash: 'f'.repeat(64) } : {}),
    } as AuditEntry;
    const { hash: _h, ...rest } = e;
    let ref: string | Error;
    try {
      ref = canonicalize(rest)!;
    } catch (err) {
      ref = err as Error;
    }
    const f = fastCanonicalEntry(e);
    if (f !== null) {
      fast++;
      assert.equal(f, ref, `entry ${JSON.stringify(rest)}`);
    }
    if (ref instanceof Error) assert.throws(() => canonicalEntry(e));
    else assert.equal(canonicalEntry(e), ref);
  }
  assert.ok(fast > 300, `the fast path was taken ${fast} times`);
  assert.equal(
    fastCanonicalEntry({
      v: 1,
      seq: 1,
      ts: 1,
      actor: 'a',
      action: 'b',
      subject: 'c',
      decision: 'ok',
      detail: {},
      prev: GENESIS_PREV,
      extra: 1,
    } as unknown as AuditEntry),
    null,
  );
});

test('node:crypto signatures are tweetnacl signatures: same bytes, and each verifies the other', () => {
  for (let i = 0; i < 20; i++) {
    const key = DeviceKey.generate();
    const msg = i % 2 ? checkpointMessage(i * 256, sha256Hex(String(i))) : pruneMessage(i, sha256Hex(`p${i}`));
    const ours = key.sign(msg);
    const theirs = nacl.sign.detached(Buffer.from(msg), new Uint8Array(key.secretKey));
    assert.deepEqual(new Uint8Array(ours), theirs);
    assert.ok(nacl.sign.detached.verify(Buffer.from(msg), new Uint8Array(ours), new Uint8Array(key.publicKey)));
    assert.ok(key.verify(msg, Buffer.from(theirs)));
    assert.ok(!nacl.sign.detached.verify(Buffer.from(`${msg}x`), new Uint8Array(ours), new Uint8Array(key.publicKey)));
  }
});
