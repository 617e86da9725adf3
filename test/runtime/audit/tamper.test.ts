/**
 * The tamper matrix, on the device's LevelDB and on an exported file: each change is caught,
 * with the kind of problem and the first seq that can no longer be trusted.
 * Layout: 600 entries, checkpoints at 256, 512 and 600 (shutdown).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { join } from 'node:path';
import { AuditChain } from '../../../runtime/audit/chain.ts';
import { entryHash, type AuditEntry, type Checkpoint } from '../../../runtime/audit/format.ts';
import { sha256Hex } from '../../../runtime/audit/crypto.ts';
import { DeviceKey } from '../../../runtime/secrets/device-key.ts';
import { Store, SYNC } from '../../../runtime/store/store.ts';
import { verifyFile, loadPublicKey } from '../../../runtime/audit/verify-file.ts';
import type { VerifyReport } from '../../../runtime/audit/verifier.ts';
import { fill, key12, openEnv, raw, tempDir, type Env } from './harness.ts';

const N = 600;

/** a stopped 600-entry log; the store stays open for tampering */
async function sealedLog(): Promise<Env & { head: Checkpoint }> {
  const env = await openEnv({ verifyAtStart: false });
  await fill(env.chain, N);
  await env.chain.stop();
  const head = env.chain.latestCheckpoint()!;
  assert.equal(head.seq, N);
  return Object.assign(env, { head });
}

async function verifyStore(env: Env, opts: { against?: Checkpoint; key?: DeviceKey } = {}): Promise<VerifyReport> {
  const chain = new AuditChain(env.store, opts.key ?? env.key);
  return chain.verify({ from: 'start', ...(opts.against ? { against: opts.against } : {}) });
}

function expectBroken(r: VerifyReport, kind: string, seq: number): void {
  assert.equal(r.ok, false, 'caught');
  assert.equal(r.kind, kind, r.reason);
  assert.equal(r.firstBrokenSeq, seq, r.reason);
  assert.match(r.reason!, new RegExp(`\\b${seq}\\b`), 'the reason names the seq');
}

const entryAt = async (env: Env, seq: number): Promise<AuditEntry> =>
  JSON.parse((await raw(env.store, 'auditlog')).get(key12(seq))!) as AuditEntry;
const putEntry = (env: Env, e: unknown): Promise<void> =>
  env.store.sublevel('auditlog').put(key12((e as AuditEntry).seq), JSON.stringify(e), { valueEncoding: 'utf8' });

test('an untouched log verifies from the start, offline and after a restart', async () => {
  const env = await sealedLog();
  const r = await verifyStore(env, { against: env.head });
  assert.equal(r.ok, true, r.reason);
  assert.equal(r.checked, N);
  assert.equal(r.against, 'matched');
  assert.equal(r.lastCheckpoint?.seq, N);
  await env.store.close();
});

test('store: an edited field is caught at that entry', async () => {
  const env = await sealedLog();
  const e = await entryAt(env, 300);
  await putEntry(env, { ...e, decision: e.decision === 'deny' ? 'allow' : 'deny' });
  expectBroken(await verifyStore(env), 'edited', 300);
  await env.store.close();
});

test('store: an edit with its hash recomputed breaks the link to the next entry', async () => {
  const env = await sealedLog();
  const e = await entryAt(env, 300);
  const edited = { ...e, actor: 'someone-else' };
  edited.hash = entryHash(edited, sha256Hex);
  await putEntry(env, edited);
  expectBroken(await verifyStore(env), 'chain', 301);
  await env.store.close();
});

test('store: an edit with every later hash and prev rewritten is caught by the next signed checkpoint', async () => {
  const env = await sealedLog();
  let prev: string | null = null;
  for (let seq = 300; seq <= N; seq++) {
    const e = await entryAt(env, seq);
    if (seq === 300) e.subject = 'rewritten';
    if (prev) e.prev = prev;
    e.hash = entryHash(e, sha256Hex);
    prev = e.hash;
    await putEntry(env, e);
  }
  expectBroken(await verifyStore(env), 'checkpoint', 257);
  await env.store.close();
});

test('store: a deleted entry is caught', async () => {
  const env = await sealedLog();
  await env.store.sublevel('auditlog').del(key12(77));
  expectBroken(await verifyStore(env), 'missing', 77);
  await env.store.close();
});

test('store: deleting entries from the start without a signed prune checkpoint is caught', async () => {
  const env = await sealedLog();
  await env.store.sublevel('auditlog').clear({ lte: key12(10) });
  expectBroken(await verifyStore(env), 'anchor', 1);
  await env.store.close();
});

test('store: two swapped entries are caught', async () => {
  const env = await sealedLog();
  const a = await entryAt(env, 40);
  const b = await entryAt(env, 41);
  await env.store.sublevel('auditlog').batch(
    [
      { type: 'put', key: key12(40), value: JSON.stringify(b) },
      { type: 'put', key: key12(41), value: JSON.stringify(a) },
    ],
    { valueEncoding: 'utf8' },
  );
  expectBroken(await verifyStore(env), 'order', 40);
  // swapped with their seq fields rewritten to fit the keys: the chain breaks instead
  await env.store.sublevel('auditlog').batch(
    [
      { type: 'put', key: key12(40), value: JSON.stringify({ ...b, seq: 40 }) },
      { type: 'put', key: key12(41), value: JSON.stringify({ ...a, seq: 41 }) },
    ],
    { valueEncoding: 'utf8' },
  );
  const r = await verifyStore(env);
  assert.equal(r.ok, false);
  assert.equal(r.firstBrokenSeq, 40, r.reason);
  await env.store.close();
});

test('store: a truncated tail is caught by the missing shutdown checkpoint, and by a head seen elsewhere', async () => {
  const env = await sealedLog();
  // cut entries 591..600 and the shutdown checkpoint: 513..590 are no longer signed
  await env.store.sublevel('auditlog').clear({ gte: key12(591) });
  await env.store.sublevel('auditcp').del(key12(600));
  expectBroken(await verifyStore(env), 'unsigned-tail', 513);
  // cut back exactly to an older checkpoint: only the head published elsewhere shows it
  await env.store.sublevel('auditlog').clear({ gte: key12(513) });
  assert.equal((await verifyStore(env)).ok, true, 'a clean cut at a checkpoint looks whole on its own');
  expectBroken(await verifyStore(env, { against: env.head }), 'against', 513);
  await env.store.close();
});

test('store: entries removed under a checkpoint that survived are caught', async () => {
  const env = await sealedLog();
  await env.store.sublevel('auditlog').clear({ gte: key12(580) });
  expectBroken(await verifyStore(env), 'missing', 580);
  await env.store.close();
});

test('store: a log rewritten from genesis with another key fails every signature, and against the old head', async () => {
  const env = await sealedLog();
  const other = await openEnv({ verifyAtStart: false });
  await fill(other.chain, N);
  await other.chain.stop();
  // the forger's log verifies with the forger's key and not with the device's
  assert.equal((await verifyStore(other)).ok, true);
  expectBroken(await verifyStore(other, { key: env.key }), 'signature', 1);
  // and copied onto the device's disk
  await env.store.sublevel('auditlog').clear();
  await env.store.sublevel('auditcp').clear();
  for (const sub of ['auditlog', 'auditcp'] as const) {
    for (const [k, v] of await raw(other.store, sub))
      await env.store.sublevel(sub).put(k, v, { valueEncoding: 'utf8' });
  }
  expectBroken(await verifyStore(env), 'signature', 1);
  const againstOnly = await verifyStore(other, { against: env.head });
  assert.equal(againstOnly.ok, false, 'a head signed by the device does not verify with the forger key');
  assert.equal(againstOnly.kind, 'against');
  await other.store.close();
  await env.store.close();
});

test('store: a log rewritten and re-signed by someone holding the disk (and so the key) is caught only against a head seen elsewhere', async () => {
  const env = await sealedLog();
  const forgedDir = tempDir();
  const { copyFileSync } = await import('node:fs');
  copyFileSync(join(env.dir, 'device-key.json'), join(forgedDir, 'device-key.json'));
  const forged = await openEnv({ verifyAtStart: false }, forgedDir);
  assert.deepEqual(forged.key.publicKey, env.key.publicKey);
  await fill(forged.chain, N, 1000); // same length, other content
  await forged.chain.stop();
  assert.equal((await verifyStore(forged, { key: env.key })).ok, true, 'on its own it verifies: the key signed it');
  expectBroken(await verifyStore(forged, { key: env.key, against: env.head }), 'against', N);
  await forged.store.close();
  await env.store.close();
});

test('store: a replayed old checkpoint is caught', async () => {
  const env = await sealedLog();
  const cps = await raw(env.store, 'auditcp');
  const old = cps.get(key12(256))!;
  // stored in the place of a newer one
  await env.store.sublevel('auditcp').put(key12(512), old, { valueEncoding: 'utf8' });
  expectBroken(await verifyStore(env), 'order', 256);
  // relabelled with the newer seq: the signature covers the seq
  const relabelled = {
    ...(JSON.parse(old) as Checkpoint),
    seq: 512,
    hash: (JSON.parse(cps.get(key12(512))!) as Checkpoint).hash,
  };
  await env.store.sublevel('auditcp').put(key12(512), JSON.stringify(relabelled), { valueEncoding: 'utf8' });
  expectBroken(await verifyStore(env), 'signature', 257);
  await env.store.close();
});

test('store: a missing checkpoint is caught (more than 256 entries unsigned)', async () => {
  const env = await sealedLog();
  await env.store.sublevel('auditcp').del(key12(256));
  expectBroken(await verifyStore(env), 'missing-checkpoint', 1);
  await env.store.close();
});

test('store: a corrupt record (raw bytes under an entry key) names the seq, and nothing is rewritten', async () => {
  const env = await sealedLog();
  const before = await raw(env.store, 'auditlog');
  await env.store.db.put(
    '!auditlog!' + key12(123),
    Buffer.from([0x7b, 0xff, 0x00, 0x22]) as never,
    { valueEncoding: 'buffer' } as never,
  );
  const r = await verifyStore(env);
  expectBroken(r, 'corrupt', 123);
  // a running chain on the same store reports it loudly, keeps appending, and rewrites nothing
  const found: VerifyReport[] = [];
  const chain = new AuditChain(env.store, env.key, { onBroken: (rep) => found.push(rep) });
  await chain.start();
  const startup = await chain.startupReport!;
  expectBroken(startup, 'corrupt', 123);
  await chain.record({ actor: 'cli', action: 'after.break', subject: 'x', decision: 'ok' });
  await chain.stop();
  assert.equal(found.length, 1);
  const after = await raw(env.store, 'auditlog');
  for (const [k, v] of before) if (k !== key12(123)) assert.equal(after.get(k), v, `record ${k} unchanged`);
  const tail = [...after.values()].slice(-2).map((v) => JSON.parse(v) as AuditEntry);
  assert.deepEqual(
    tail.map((e) => e.action),
    ['audit.broken', 'after.break'],
    'the break is itself recorded, signed',
  );
  assert.equal(tail[0]!.detail.firstBrokenSeq, 123);
  await env.store.close();
});

test('store: bytes flipped inside a LevelDB table file are reported, not thrown', async () => {
  const env = await sealedLog();
  await (env.store.db as unknown as { compactRange(a: string, b: string): Promise<void> }).compactRange(
    '!audit',
    '!auditz',
  );
  await env.store.close();
  const { readdirSync } = await import('node:fs');
  const dbDir = join(env.dir, 'db');
  const tables = readdirSync(dbDir).filter((n) => n.endsWith('.ldb'));
  assert.ok(tables.length > 0, 'the log was compacted into a table file');
  // tables are snappy-compressed blocks: damage a few bytes in the middle of the data
  const f = join(dbDir, tables[0]!);
  const buf = readFileSync(f);
  for (const at of [0.4, 0.4 + 20 / buf.length, 0.4 + 45 / buf.length]) buf[Math.floor(buf.length * at)]! ^= 0xff;
  writeFileSync(f, buf);
  env.store = await Store.open(env.dir);
  const r = await verifyStore(env);
  assert.equal(r.ok, false);
  assert.ok(r.firstBrokenSeq! > 1 && r.firstBrokenSeq! <= N, r.reason);
  assert.match(r.reason!, /\d/);
  await env.store.close();
});

// ---- exported files ---------------------------------------------------------------------------

async function exported(
  env: Env,
  chain: AuditChain = env.chain,
): Promise<{ file: string; lines: string[]; pub: string }> {
  const file = join(tempDir(), 'audit.jsonl');
  const out = createWriteStream(file);
  await chain.export(out);
  out.end();
  await finished(out);
  return {
    file,
    lines: readFileSync(file, 'utf8').split('\n').slice(0, -1),
    pub: env.key.publicKey.toString('base64'),
  };
}

async function verifyLines(lines: string[], pub: string, tail = '\n', against?: Checkpoint): Promise<VerifyReport> {
  const file = join(tempDir(), 'tampered.jsonl');
  writeFileSync(file, lines.join('\n') + tail);
  return verifyFile(file, { publicKey: pub, ...(against ? { against } : {}) });
}

test('file: the export round-trips, and each kind of tampering is caught with its line and seq', async () => {
  const env = await sealedLog();
  const { file, lines, pub } = await exported(env);
  assert.equal(lines.length, N + 3, '600 entries and 3 checkpoints');
  const ok = await verifyFile(file, { publicKey: pub, against: env.head });
  assert.equal(ok.ok, true, ok.reason);
  assert.equal(ok.checked, N);
  // line i (0-based) holds entry i+1 up to the first checkpoint at line 256
  const idx = (seq: number): number => seq - 1 + (seq > 256 ? 1 : 0) + (seq > 512 ? 1 : 0);

  const edit = [...lines];
  edit[idx(10)] = edit[idx(10)]!.replace('"decision":"', '"decision":"x');
  const fmt = await verifyLines(edit, pub);
  assert.equal(fmt.kind, 'format');
  assert.equal(fmt.line, idx(10) + 1);
  const e10 = JSON.parse(lines[idx(10)]!) as AuditEntry;
  edit[idx(10)] = JSON.stringify({ ...e10, subject: 'changed' });
  const edited = await verifyLines(edit, pub);
  expectBroken(edited, 'edited', 10);
  assert.equal(edited.line, idx(10) + 1);
  assert.match(edited.reason!, new RegExp(`^line ${idx(10) + 1}: `));

  const del = lines.filter((_, i) => i !== idx(20));
  expectBroken(await verifyLines(del, pub), 'missing', 20);

  const swap = [...lines];
  [swap[idx(30)], swap[idx(31)]] = [swap[idx(31)]!, swap[idx(30)]!];
  expectBroken(await verifyLines(swap, pub), 'missing', 30);

  expectBroken(await verifyLines(lines.slice(0, idx(590) + 1), pub), 'unsigned-tail', 513);
  const cutAtCheckpoint = lines.slice(0, idx(512) + 2);
  assert.equal(
    (await verifyLines(cutAtCheckpoint, pub)).ok,
    true,
    'cut right after a checkpoint looks whole on its own',
  );
  expectBroken(await verifyLines(cutAtCheckpoint, pub, '\n', env.head), 'against', 513);

  const cutMidLine = await verifyLines(lines, pub, '');
  assert.equal(cutMidLine.ok, true, 'a missing final newline alone is fine');
  const partial = lines.join('\n').slice(0, -40);
  const pf = join(tempDir(), 'partial.jsonl');
  writeFileSync(pf, partial);
  const cut = await verifyFile(pf, { publicKey: pub });
  assert.equal(cut.kind, 'corrupt');
  assert.equal(cut.line, N + 3);
  assert.match(cut.reason!, /cut short/);

  const notJson = [...lines];
  notJson[idx(100)] = 'hello, world';
  const nj = await verifyLines(notJson, pub);
  expectBroken(nj, 'corrupt', 100);
  assert.match(nj.reason!, new RegExp(`line ${idx(100) + 1} is not JSON`));

  const repeated = [...lines.slice(0, idx(50) + 1), lines[idx(50)]!, ...lines.slice(idx(50) + 1)];
  expectBroken(await verifyLines(repeated, pub), 'order', 50);

  const noCp = lines.filter((_, i) => i !== idx(256) + 1);
  expectBroken(await verifyLines(noCp, pub), 'missing-checkpoint', 1);

  const replay = [...lines];
  replay[idx(512) + 1] = lines[idx(256) + 1]!;
  expectBroken(await verifyLines(replay, pub), 'order', 256);

  const wrongKey = DeviceKey.generate().publicKey.toString('base64');
  const wk = await verifyLines(lines, wrongKey);
  expectBroken(wk, 'signature', 1);
  assert.match(wk.reason!, /not signed by this key/);
  await env.store.close();
});

test('file: a log rewritten from genesis with another key does not verify with the device key', async () => {
  const env = await sealedLog();
  const forger = await openEnv({ verifyAtStart: false });
  await fill(forger.chain, N);
  const { lines } = await exported(forger);
  expectBroken(await verifyLines(lines, env.key.publicKey.toString('base64')), 'signature', 1);
  assert.equal((await verifyLines(lines, forger.key.publicKey.toString('base64'))).ok, true);
  await forger.cleanup();
  await env.store.close();
});

test('verify-file takes the key as base64, hex, device-key.json or a key file, and refuses anything else', async () => {
  const env = await sealedLog();
  const { file } = await exported(env);
  const keyFile = join(tempDir(), 'key.txt');
  writeFileSync(keyFile, `${env.key.publicKey.toString('base64')}\n`);
  for (const spec of [
    env.key.publicKey.toString('base64'),
    env.key.publicKey.toString('hex'),
    join(env.dir, 'device-key.json'),
    keyFile,
  ]) {
    assert.deepEqual(loadPublicKey(spec), env.key.publicKey, spec);
    assert.equal((await verifyFile(file, { publicKey: spec })).ok, true, spec);
  }
  for (const bad of ['', 'abc', Buffer.alloc(31).toString('base64'), join(env.dir, 'talon.pid')]) {
    assert.throws(
      () => loadPublicKey(bad),
      (e: Error & { code?: string }) => e.code === 'USAGE',
      bad,
    );
  }
  const empty = join(tempDir(), 'empty.jsonl');
  writeFileSync(empty, '');
  assert.equal((await verifyFile(empty, { publicKey: keyFile })).ok, false);
  await env.store.close();
});

test('a store verify never writes: the database is byte-for-byte the same after verifying a broken log', async () => {
  const env = await sealedLog();
  await env.store.sublevel('auditlog').del(key12(5));
  const before = [...(await raw(env.store, 'auditlog')), ...(await raw(env.store, 'auditcp'))];
  await verifyStore(env);
  await verifyStore(env, { against: env.head });
  assert.deepEqual([...(await raw(env.store, 'auditlog')), ...(await raw(env.store, 'auditcp'))], before);
  await env.store.sublevel('meta').put('x', 1, SYNC);
  await env.store.close();
});
