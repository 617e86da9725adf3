/**
 * Node's permission model in a Hand's worker, checked on real workers: the execArgv we
 * build, and what Node 26 then enforces (fs read/write outside the grant, child processes,
 * workers, addons, the network without --allow-net) and what it does not (process.kill,
 * which the SDK closes). The network in detail: ./network.test.ts.
 * runtime/supervisor/README.md records these results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
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
  const argv = workerExecArgv({ workerEntry: '/opt/talon/hand-worker.cjs', modulePath: '/opt/talon/hands/x.cjs', fs: { read: ['/data/in', '/data/in'], write: ['/data/out'] } }, '20.20.2');
  assert.deepEqual(argv, [
    '--experimental-permission', '--disable-warning=ExperimentalWarning',
    '--allow-fs-read=/opt/talon/hand-worker.cjs', '--allow-fs-read=/opt/talon/hands/x.cjs', '--allow-fs-read=/data/in',
    '--allow-fs-write=/data/out',
  ]);
  assert.ok(!argv.some((a) => /--allow-(worker|child-process|addons|wasi|ffi|inspector|net)/.test(a)));
  assert.equal(workerExecArgv({ workerEntry: '/a', modulePath: '/b', fs: { read: [], write: [] } }, '22.0.0')[0], '--permission');
});

test('fs: a Hand reads and writes inside its grant and is refused outside it', async () => {
  const inDir = mkdtempSync(join(tmpdir(), 'talon-perm-in-'));
  const outDir = mkdtempSync(join(tmpdir(), 'talon-perm-out-'));
  const secret = mkdtempSync(join(tmpdir(), 'talon-perm-secret-'));
  writeFileSync(join(inDir, 'ok.txt'), 'readable');
  writeFileSync(join(secret, 'secret.txt'), 'not for Hands');
  const caps = { bus: { publish: ['read-file/#'], subscribe: [] }, fs: { read: [inDir], write: [outDir] } };
  const h = await startHarness([
    { name: 'inside', fixture: 'read-file', capabilities: caps, settings: { path: join(inDir, 'ok.txt'), writePath: join(outDir, 'w.txt') } },
    { name: 'outside', fixture: 'read-file', capabilities: caps, settings: { path: join(secret, 'secret.txt'), writePath: join(secret, 'w.txt') } },
  ], { start: false });
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
    assert.equal(r.net, 'CAPABILITY_DENIED', 'no network grant: no socket (Node refuses it without --allow-net; the SDK says so first)');
    assert.equal(r.netAccess, false, 'Node\'s own check: the worker has no --allow-net');
    const audit = await h.auditEntries();
    assert.ok(audit.some((e) => e.action === 'capability.check' && e.decision === 'deny' && e.subject === 'process.kill'));
    assert.ok(audit.some((e) => e.action === 'capability.check' && e.decision === 'deny' && e.subject === `127.0.0.1:${port}`));
  } finally {
    await h.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
