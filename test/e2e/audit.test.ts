/**
 * The audit log as a user meets it: the CLI against a running daemon and a stopped one,
 * export → verify-file on "another machine" (only the file and the public key), the head
 * retained on the bus, and tampering caught with the seq named.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { ensureBuilt, startDaemon, cli } from '../helpers/daemon.ts';
import { fixture } from '../helpers/fixtures.ts';
import { Store } from '../../runtime/store/store.ts';
import { seqKey } from '../../runtime/audit/chain.ts';

let idle: string;
before(async () => {
  ensureBuilt();
  idle = await fixture('idle');
});

test('tail, verify, export and verify-file, live and stopped; the retained head proves the log later', async () => {
  const d = await startDaemon({ hands: [{ name: 'idle', module: idle }] });
  const out = mkdtempSync(join(tmpdir(), 'talon-audit-out-'));
  const id = d.deviceId();
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  let head: string | null = null;
  const heads: string[] = [];
  client.on('message', (_t, p) => {
    head = p.toString();
    heads.push(head);
  });
  await client.subscribeAsync(`talon/${id}/audit/head`);
  try {
    // some state changes to audit
    assert.equal(cli(['hands', 'restart', 'idle', '--data', d.dataDir]).status, 0);
    const tail = cli(['audit', 'tail', '-n', '50', '--data', d.dataDir]);
    assert.equal(tail.status, 0, tail.stderr);
    assert.match(tail.stdout, /kernel kernel\.start/);
    assert.match(tail.stdout, /cli api\.hands\.restart idle/);
    const filtered = cli(['audit', 'tail', '--action', 'api.*', '--json', '--data', d.dataDir]);
    const actions = filtered.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { action: string }).action);
    assert.ok(actions.length > 0 && actions.every((a) => a.startsWith('api.')), filtered.stdout);

    const live = cli(['audit', 'verify', '--data', d.dataDir]);
    assert.equal(live.status, 0, live.stderr);
    assert.match(live.stdout, /^OK: \d+ entries verified/);

    const file = join(out, 'audit.jsonl');
    const exp = cli(['audit', 'export', '--out', file, '--data', d.dataDir]);
    assert.equal(exp.status, 0, exp.stderr);
    const key = JSON.parse(cli(['keys', 'show', '--json', '--data', d.dataDir]).stdout) as {
      publicKey: string;
      deviceId: string;
    };
    assert.equal(key.deviceId, id);
    // "another machine": only the file and the key
    const ok = cli(['audit', 'verify-file', file, '--public-key', key.publicKey], { TALON_DATA: '/nonexistent' });
    assert.equal(ok.status, 0, ok.stderr);

    // an edited field is caught, with its seq
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const i = lines.findIndex((l) => l.includes('"api.hands.restart"'));
    const edited = JSON.parse(lines[i]!) as { seq: number; subject: string };
    edited.subject = 'someone-else';
    lines[i] = JSON.stringify(edited);
    writeFileSync(join(out, 'tampered.jsonl'), lines.join('\n') + '\n');
    const bad = cli(['audit', 'verify-file', join(out, 'tampered.jsonl'), '--public-key', key.publicKey]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, new RegExp(`BROKEN at seq ${edited.seq}\\b`));

    // the export sealed the log: its checkpoint went out as the retained head
    const t0 = Date.now();
    while (heads.length === 0) {
      assert.ok(Date.now() - t0 < 5000, 'no audit head published while running');
      await new Promise((r) => setTimeout(r, 20));
    }
    const liveHead = JSON.parse(heads.at(-1)!) as { type: string; seq: number; sig: string };
    assert.equal(liveHead.type, 'checkpoint');

    // the wrong key is caught too
    const other = cli(['audit', 'verify-file', file, '--public-key', Buffer.alloc(32, 7).toString('base64')]);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /signature/);
  } finally {
    assert.equal(await d.stop(), 0);
    client.end(true);
  }
  // the shutdown checkpoint went out as the head before the broker closed
  assert.ok(head !== null, 'no audit head was published');
  const headFile = join(out, 'head.json');
  writeFileSync(headFile, head!);

  // stopped: the CLI reads the data folder directly, and writes nothing to the chain
  const stopped = cli(['audit', 'verify', '--against', headFile, '--data', d.dataDir]);
  assert.equal(stopped.status, 0, stopped.stderr);
  assert.match(stopped.stdout, /head given with --against is in this log/);
  assert.match(cli(['audit', 'tail', '--data', d.dataDir]).stdout, /kernel\.stop/);

  // someone with the disk edits an entry: verify names it and exits 1
  const store = await Store.open(d.dataDir);
  let seq = 0;
  try {
    const log = store.sublevel('auditlog');
    for await (const [k, v] of log.iterator({ valueEncoding: 'utf8', limit: 3 })) {
      seq = parseInt(k as string, 16);
      const e = JSON.parse(v as string) as Record<string, unknown>;
      e.decision = 'deny';
      await log.put(seqKey(seq), JSON.stringify(e), { valueEncoding: 'utf8' });
      break;
    }
  } finally {
    await store.close();
  }
  const broken = cli(['audit', 'verify', '--data', d.dataDir]);
  assert.equal(broken.status, 1, broken.stdout);
  assert.match(broken.stderr, new RegExp(`BROKEN at seq ${seq}\\b`));
  assert.ok(!existsSync(join(out, 'audit.jsonl.partial')));
});

test('bad input to the audit CLI gets exit 2 and a clear message', () => {
  const noKey = cli(['audit', 'verify-file', '/etc/hostname']);
  assert.equal(noKey.status, 2);
  assert.match(noKey.stderr, /--public-key/);
  const badKey = cli(['audit', 'verify-file', '/etc/hostname', '--public-key', 'not-a-key']);
  assert.equal(badKey.status, 2, badKey.stderr);
  const noOut = cli(['audit', 'export']);
  assert.equal(noOut.status, 2);
  assert.match(noOut.stderr, /--out/);
  const badHead = cli(['audit', 'verify', '--against', '{nope', '--data', '/tmp']);
  assert.equal(badHead.status, 2);
});
