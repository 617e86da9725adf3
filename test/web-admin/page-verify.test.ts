/**
 * The page's audit verifier (web-admin/page/src/audit-verify.ts: tweetnacl + @noble/hashes,
 * no node:crypto) against real exports made by the runtime's AuditChain: an untouched export
 * verifies, and each tampering is caught at the same seq, kind and line as
 * runtime/audit/verify-file.ts reports for the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { join } from 'node:path';
import { verifyFile } from '../../runtime/audit/verify-file.ts';
import { sha256Hex as nodeSha256 } from '../../runtime/audit/crypto.ts';
import { DeviceKey } from '../../runtime/secrets/device-key.ts';
import type { AuditEntry, Checkpoint } from '../../runtime/audit/format.ts';
import { fill, openEnv, tempDir } from '../runtime/audit/harness.ts';
import {
  describeReport,
  parsePublicKey,
  sha256Hex,
  verifyExportText,
  type VerifyReport,
} from '../../web-admin/page/src/audit-verify.ts';

const N = 300;

/** a sealed N-entry log exported to JSON Lines: checkpoints after 256 and N */
async function exportedLog(): Promise<{ lines: string[]; pub: string; head: Checkpoint; text: string }> {
  const env = await openEnv({ verifyAtStart: false });
  await fill(env.chain, N);
  await env.chain.stop();
  const head = env.chain.latestCheckpoint()!;
  const file = join(tempDir(), 'audit.jsonl');
  const out = createWriteStream(file);
  await env.chain.export(out);
  out.end();
  await finished(out);
  await env.store.close();
  const text = readFileSync(file, 'utf8');
  return { text, lines: text.split('\n').slice(0, -1), pub: env.key.publicKey.toString('base64'), head };
}

/** the page's report and verify-file's on the same bytes */
async function both(
  text: string,
  pub: string,
  against?: Checkpoint,
): Promise<{ page: VerifyReport; file: VerifyReport }> {
  const file = join(tempDir(), 'x.jsonl');
  writeFileSync(file, text);
  const opts = { publicKey: pub, ...(against ? { against } : {}) };
  return { page: verifyExportText(text, opts), file: await verifyFile(file, opts) };
}

function sameBreak(page: VerifyReport, file: VerifyReport, kind: string, seq: number): void {
  assert.equal(file.ok, false, 'verify-file catches it');
  assert.equal(file.kind, kind, file.reason);
  assert.equal(file.firstBrokenSeq, seq, file.reason);
  assert.equal(page.ok, false, 'the page catches it');
  assert.equal(page.firstBrokenSeq, file.firstBrokenSeq, page.reason);
  assert.equal(page.kind, file.kind, page.reason);
  assert.equal(page.line, file.line);
  assert.equal(page.reason, file.reason);
  assert.match(describeReport(page), new RegExp(`^Broken at seq ${seq}\\b`));
}

test('SHA-256 from @noble/hashes matches node:crypto, including non-ASCII text', () => {
  for (const s of ['', 'abc', 'Grüße 😀', 'x'.repeat(1000)]) assert.equal(sha256Hex(s), nodeSha256(s));
});

test('the public key is read from base64 or hex and refused otherwise', () => {
  const key = DeviceKey.generate().publicKey;
  assert.deepEqual(Buffer.from(parsePublicKey(key.toString('base64'))), key);
  assert.deepEqual(Buffer.from(parsePublicKey(key.toString('hex'))), key);
  for (const bad of ['', 'abc', Buffer.alloc(31).toString('base64')]) assert.throws(() => parsePublicKey(bad));
});

test('an untouched export verifies in the page, with counts, as it does with verify-file', async () => {
  const { text, pub, head } = await exportedLog();
  const { page, file } = await both(text, pub, head);
  assert.equal(file.ok, true, file.reason);
  assert.equal(page.ok, true, page.reason);
  assert.equal(page.checked, N);
  assert.equal(page.lastSeq, N);
  assert.equal(page.lastCheckpoint?.seq, N);
  assert.equal(page.against, 'matched');
  assert.match(describeReport(page), new RegExp(`^OK: ${N} entries`));
  // CRLF line ends and no final newline are read the same way
  assert.equal(verifyExportText(text.replace(/\n/g, '\r\n'), { publicKey: pub }).ok, true);
  assert.equal(verifyExportText(text.slice(0, -1), { publicKey: pub }).ok, true);
});

test('tampered exports break in the page where verify-file says they break', async () => {
  const { lines, pub, head } = await exportedLog();
  // line i (0-based) holds entry i+1 up to the checkpoint after entry 256
  const idx = (seq: number): number => seq - 1 + (seq > 256 ? 1 : 0);
  const join_ = (ls: string[]): string => `${ls.join('\n')}\n`;

  const edited = [...lines];
  edited[idx(10)] = JSON.stringify({ ...(JSON.parse(lines[idx(10)]!) as AuditEntry), subject: 'changed' });
  let r = await both(join_(edited), pub);
  sameBreak(r.page, r.file, 'edited', 10);
  assert.equal(r.page.line, idx(10) + 1);

  const rehashed = [...lines];
  const e = JSON.parse(lines[idx(40)]!) as AuditEntry;
  const changed = { ...e, actor: 'someone-else' };
  delete changed.hash;
  rehashed[idx(40)] = JSON.stringify(changed);
  r = await both(join_(rehashed), pub);
  sameBreak(r.page, r.file, 'chain', 41);

  r = await both(join_(lines.filter((_, i) => i !== idx(20))), pub);
  sameBreak(r.page, r.file, 'missing', 20);

  const swap = [...lines];
  [swap[idx(30)], swap[idx(31)]] = [swap[idx(31)]!, swap[idx(30)]!];
  r = await both(join_(swap), pub);
  sameBreak(r.page, r.file, 'missing', 30);

  const repeated = [...lines.slice(0, idx(50) + 1), lines[idx(50)]!, ...lines.slice(idx(50) + 1)];
  r = await both(join_(repeated), pub);
  sameBreak(r.page, r.file, 'order', 50);

  const forged = [...lines];
  const cpLine = idx(256) + 1;
  const cp = JSON.parse(lines[cpLine]!) as Checkpoint;
  const otherSig = Buffer.from(DeviceKey.generate().sign(Buffer.from(`talon-audit-v1:${cp.seq}:${cp.hash}`))).toString(
    'base64',
  );
  forged[cpLine] = JSON.stringify({ ...cp, sig: otherSig });
  r = await both(join_(forged), pub);
  sameBreak(r.page, r.file, 'signature', 1);

  r = await both(join_(lines.slice(0, idx(290) + 1)), pub);
  sameBreak(r.page, r.file, 'unsigned-tail', 257);

  r = await both(join_(lines.slice(0, cpLine + 1)), pub, head);
  sameBreak(r.page, r.file, 'against', 257);

  const notJson = [...lines];
  notJson[idx(100)] = 'hello, world';
  r = await both(join_(notJson), pub);
  sameBreak(r.page, r.file, 'corrupt', 100);

  r = await both(join_(lines).slice(0, -40), pub);
  assert.equal(r.page.kind, 'corrupt');
  assert.equal(r.page.line, r.file.line);
  assert.equal(r.page.reason, r.file.reason);

  r = await both(join_(lines), DeviceKey.generate().publicKey.toString('base64'));
  sameBreak(r.page, r.file, 'signature', 1);

  const empty = verifyExportText('', { publicKey: pub });
  assert.equal(empty.ok, false);
  assert.equal(empty.kind, 'format');
});
