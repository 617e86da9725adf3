/**
 * Node's permission model in a Hand's worker, checked on real workers: the execArgv we
 * build, and what Node 26 then enforces (fs read/write outside the grant, child processes,
 * workers, addons, the network without --allow-net) and what it does not (process.kill,
 * which the SDK closes). The network in detail: ./network.test.ts.
 * runtime/supervisor/README.md records these results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync, readdirSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { permissionFlag, workerExecArgv } from '../../../runtime/supervisor/permissions.ts';
import { ROOT, startHarness, waitFor } from '../../helpers/supervisor-harness.ts';

test('execArgv: the right flag per Node version, reads = entry + module + grants, writes = grants, nothing else', () => {
  assert.equal(permissionFlag('20.20.2'), '--experimental-permission');
  assert.equal(permissionFlag('21.7.0'), '--experimental-permission');
  assert.equal(permissionFlag('22.1.0'), '--permission');
  assert.equal(permissionFlag('26.12.1'), '--permission');
  const argv = workerExecArgv(
    {
      workerEntry: '/opt/talon/hand-worker.cjs',
      modulePath: '/opt/talon/hands/x.cjs',
      fs: { read: ['/data/in', '/data/in'], write: ['/data/out'] },
    },
    '20.20.2',
  );
  assert.deepEqual(argv, [
    '--experimental-permission',
    '--disable-warning=ExperimentalWarning',
    '--allow-fs-read=/opt/talon/hand-worker.cjs',
    '--allow-fs-read=/opt/talon/hands/x.cjs',
    '--allow-fs-read=/data/in',
    '--allow-fs-write=/data/out',
  ]);
  assert.ok(!argv.some((a) => /--allow-(worker|child-process|addons|wasi|ffi|inspector|net)/.test(a)));
  assert.equal(
    workerExecArgv({ workerEntry: '/a', modulePath: '/b', fs: { read: [], write: [] } }, '22.0.0')[0],
    '--permission',
  );
});

test('fs: a Hand reads and writes inside its grant and is refused outside it', async () => {
  const inDir = mkdtempSync(join(tmpdir(), 'talon-perm-in-'));
  const outDir = mkdtempSync(join(tmpdir(), 'talon-perm-out-'));
  const secret = mkdtempSync(join(tmpdir(), 'talon-perm-secret-'));
  writeFileSync(join(inDir, 'ok.txt'), 'readable');
  writeFileSync(join(secret, 'secret.txt'), 'not for Hands');
  const caps = { bus: { publish: ['read-file/#'], subscribe: [] }, fs: { read: [inDir], write: [outDir] } };
  const h = await startHarness(
    [
      {
        name: 'inside',
        fixture: 'read-file',
        capabilities: caps,
        settings: { path: join(inDir, 'ok.txt'), writePath: join(outDir, 'w.txt') },
      },
      {
        name: 'outside',
        fixture: 'read-file',
        capabilities: caps,
        settings: { path: join(secret, 'secret.txt'), writePath: join(secret, 'w.txt') },
      },
    ],
    { start: false },
  );
  try {
    const results = await h.collect(`${ROOT}/read-file/result`);
    await h.sup.start();
    await waitFor('two results', () => results.length >= 2);
    const by = Object.fromEntries(results.map((m) => JSON.parse(m.payload.toString())).map((r) => [r.name, r]));
    assert.deepEqual(by.inside, { name: 'inside', read: 'ok', write: 'ok' });
    assert.equal(readFileSync(join(outDir, 'w.txt'), 'utf8'), 'written by a Hand');
    assert.deepEqual(by.outside, { name: 'outside', read: 'ERR_ACCESS_DENIED', write: 'ERR_ACCESS_DENIED' });
    assert.ok(!existsSync(join(secret, 'w.txt')));
    // the kernel's own thread is not restricted by a worker's flags
    assert.equal(readFileSync(join(secret, 'secret.txt'), 'utf8'), 'not for Hands');
  } finally {
    await h.close();
    for (const d of [inDir, outDir, secret]) rmSync(d, { recursive: true, force: true });
  }
});

test('a Hand cannot spawn processes, start workers, load addons, signal the kernel or open a socket', async () => {
  const server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const h = await startHarness([{ name: 'spawn', fixture: 'spawn', settings: { port } }], { start: false });
  try {
    const results = await h.collect(`${ROOT}/spawn/result`);
    await h.sup.start();
    await waitFor('the result', () => results.length > 0);
    const r = JSON.parse(results[0]!.payload.toString());
    assert.equal(r.childProcess, 'ERR_ACCESS_DENIED');
    assert.equal(r.worker, 'ERR_ACCESS_DENIED');
    assert.equal(r.addon, 'ERR_DLOPEN_DISABLED');
    assert.equal(r.kill, 'CAPABILITY_DENIED', 'process.kill is closed by the SDK, not by Node');
    assert.equal(r.env, 0, 'the worker gets an empty environment');
    assert.equal(r.report, 'CAPABILITY_DENIED', "process.report.getReport() would show the kernel's environment");
    assert.equal(
      r.net,
      'CAPABILITY_DENIED',
      'no network grant: no socket (Node refuses it without --allow-net; the SDK says so first)',
    );
    assert.equal(r.netAccess, false, "Node's own check: the worker has no --allow-net");
    const audit = await h.auditEntries();
    assert.ok(
      audit.some((e) => e.action === 'capability.check' && e.decision === 'deny' && e.subject === 'process.kill'),
    );
    assert.ok(
      audit.some(
        (e) => e.action === 'capability.check' && e.decision === 'deny' && e.subject === 'process.report.getReport',
      ),
    );
    assert.ok(
      audit.some((e) => e.action === 'capability.check' && e.decision === 'deny' && e.subject === `127.0.0.1:${port}`),
    );
  } finally {
    await h.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test("node:sqlite: only :memory: and the Hand's granted paths (read-only for a read grant), ATTACH and VACUUM INTO included", async () => {
  const writeDir = mkdtempSync(join(tmpdir(), 'talon-sqlite-w-'));
  const readDir = mkdtempSync(join(tmpdir(), 'talon-sqlite-r-'));
  const outside = mkdtempSync(join(tmpdir(), 'talon-sqlite-out-'));
  const ro = new DatabaseSync(join(readDir, 'ro.db'));
  ro.exec('create table t(a); insert into t values (1), (2)');
  ro.close();
  const h = await startHarness(
    [
      {
        name: 'sq',
        fixture: 'sqlite-probe',
        settings: { writeDir, readDir, outside },
        capabilities: { fs: { read: [readDir, writeDir], write: [writeDir] } },
      },
    ],
    { start: false },
  );
  try {
    const results = await h.collect(`${ROOT}/sqlite-probe/result`);
    await h.sup.start();
    await waitFor('the result', () => results.length > 0);
    const r = JSON.parse(results[0]!.payload.toString()).results as Record<string, string>;
    assert.equal(r.memory, 'ok');
    assert.equal(r.granted, 'ok', 'a database inside the write grant');
    assert.equal(r.readOnlyGrant, 'CAPABILITY_DENIED', 'read-write inside a read-only grant');
    assert.equal(r.readOnlyGrantReadOnly, 'ok', 'readOnly: true inside a read grant');
    for (const k of [
      'outside',
      'outsideBuffer',
      'outsideUrl',
      'uriString',
      'uriInGrant',
      'temporary',
      'extension',
      'ctor',
      'backup',
    ]) {
      assert.equal(r[k], 'CAPABILITY_DENIED', `${k}: ${r[k]}`);
    }
    // refused inside SQLite by the kernel's authorizer: an SQLite error in the Hand
    for (const k of ['attach', 'attachExpr', 'vacuumInto', 'pragma', 'attachAfterAuthorizer', 'attachAfterRemove']) {
      assert.match(r[k]!, /ERR_SQLITE_ERROR|not authorized|authorization denied/, `${k}: ${r[k]}`);
    }
    assert.equal(r.attachGranted, 'ok', 'ATTACH inside the write grant');
    assert.equal(r.ownAuthorizer, 'ok');
    assert.equal(r.removeAuthorizer, 'ok');
    assert.equal(r.backupGranted, 'ok');
    assert.deepEqual(readdirSync(outside), [], 'nothing was created outside the grants');
    assert.ok(
      existsSync(join(writeDir, 'ok.db')) &&
        existsSync(join(writeDir, 'att.db')) &&
        existsSync(join(writeDir, 'backup.db')),
    );
    const audit = await h.auditEntries();
    const denials = audit.filter(
      (e) =>
        e.action === 'capability.check' &&
        e.decision === 'deny' &&
        (e.detail as { action?: string }).action === 'fs.sqlite',
    );
    assert.ok(
      denials.some((e) => e.subject === join(outside, 'out.db')),
      'the refusal is audited with the path',
    );
    assert.ok(
      denials.some((e) => e.subject === join(outside, 'attach.db')),
      'so is a refused ATTACH',
    );
    assert.equal(h.sup.status('sq').state, 'running');
  } finally {
    await h.close();
    for (const d of [writeDir, readDir, outside]) rmSync(d, { recursive: true, force: true });
  }
});

test("a Hand cannot post to the kernel past the SDK: parentPort, Node's stdio port, postMessageToThread", async () => {
  const h = await startHarness([{ name: 'ports', fixture: 'port-probe' }], { start: false });
  try {
    const results = await h.collect(`${ROOT}/port-probe/result`);
    await h.sup.start();
    await waitFor('the result', () => results.length > 0);
    const r = JSON.parse(results[0]!.payload.toString());
    assert.equal(r.parentPort, 'null', "Hand code does not get the SDK's port");
    // an unknown type on Node's stdio port is an uncaught exception in the kernel's thread: refused in the worker
    assert.equal(r.stdioUnknown, 'CAPABILITY_DENIED');
    assert.equal(r.stdioLoadScript, 'CAPABILITY_DENIED');
    for (const k of ['stdioMoreData', 'stdioBadStream', 'stdioBadChunks', 'stdioBadEncoding', 'stdioBadError']) {
      assert.equal(r[k], 'CAPABILITY_DENIED', `${k}: a malformed stdio-port message is refused in the worker`);
    }
    assert.notEqual(r.patchPost, 'ok', "MessagePort.prototype.postMessage cannot be replaced to catch the SDK's port");
    assert.equal(r.toThread, 'CAPABILITY_DENIED');
    // the 8 MB line came through cut to a log line
    await waitFor('the stdout line', () => h.sup.logs('ports').some((l) => l.msg.startsWith('LLLL')));
    const line = h.sup.logs('ports').find((l) => l.msg.startsWith('LLLL'))!;
    assert.ok(line.msg.length < 9000, `${line.msg.length} characters kept`);
    assert.equal(h.sup.status('ports').state, 'running');
    const audit = await h.auditEntries();
    assert.ok(
      audit.some(
        (e) =>
          e.decision === 'deny' &&
          (e.detail as { action?: string }).action === 'worker.port' &&
          e.subject.startsWith('stdio port'),
      ),
    );
  } finally {
    await h.close();
  }
});
