/**
 * Descriptors: a worker_thread shares the process's descriptor table, and Node's permission
 * model does not look at descriptors already open. A Hand with only a bus grant goes after
 * every descriptor it can name (LevelDB's files, the daemon's log file, fds 1 and 2, the
 * kernel's TCP and UDP sockets), without and with network: { raw: true }, in a kernel of its
 * own process (./fd-kernel.child.ts) whose stdout and stderr are read here. Every attempt is
 * refused (CAPABILITY_DENIED) and audited, the Hand keeps running, its own files still work,
 * and the store, the audit chain, the log and the sockets are intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..', '..', '..');

function runChild(marker: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'fd-kernel.child.ts'), marker],
      {
        cwd: repo,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    // a kernel whose descriptors were taken over can hang: a bounded wait, not a timing assertion
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('a Hand that writes to every descriptor it finds is refused and audited; store, audit chain, log and sockets stay intact', async () => {
  const marker = `FORGED-${process.pid}-${Date.now()}`;
  const { code, stdout, stderr } = await runChild(marker);
  assert.ok(!stdout.includes(marker), `nothing a Hand wrote reached the daemon's stdout:\n${stdout.slice(0, 2000)}`);
  assert.ok(!stderr.includes(marker), `nothing a Hand wrote reached the daemon's stderr:\n${stderr.slice(0, 2000)}`);
  assert.equal(code, 0, `the kernel process finished (stderr: ${stderr.slice(0, 2000)})`);
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `a result line (stdout: ${stdout.slice(0, 2000)})`);
  const r = JSON.parse(line.slice('RESULT '.length));

  assert.ok(
    r.storeFds.some((f: { path: string }) => /\d+\.log$/.test(f.path)),
    "LevelDB's write-ahead log was among the targets",
  );
  for (const name of ['prober', 'prober-raw']) {
    const p = r.results[name];
    assert.ok(p, `${name} reported`);
    assert.deepEqual(p.found, [], `${name}: fstat found no descriptor that is not its own`);
    // process._rawDebug "works": it now writes to the worker's stderr, which the kernel keeps as the Hand's log
    assert.deepEqual(p.succeeded, ['process._rawDebug'], `${name}: nothing got through`);
    assert.ok(p.attempts > 200 && p.codes.CAPABILITY_DENIED > 200, `${name}: ${JSON.stringify(p.codes)}`);
    assert.deepEqual(
      p.mine,
      ['openSync', 'promises.open', 'createReadStream'],
      `${name}: its own descriptors still work`,
    );
    assert.equal(r.status[name].state, 'running', `${name} keeps running`);
    assert.ok(r.status[name].messages.denied > 0);
  }
  assert.equal(r.status['prober-raw'].network.raw, true);
  assert.ok(r.denials >= 20, `the refusals are in the audit (${r.denials})`);
  assert.ok(
    r.denialSubjects.every((s: string) => /^\S+ fd \d+$/.test(s)),
    r.denialSubjects.join(', '),
  );

  // what the attack went after is intact
  assert.equal(r.verify.ok, true, `the audit chain verifies after a reopen: ${r.verify.reason}`);
  assert.equal(r.before, 50, 'every entry acknowledged before the attack is there');
  assert.equal(r.after, 50, 'and every one after it');
  assert.equal(r.value, 'intact');
  assert.equal(r.logIntact, true, `the daemon's log file is unchanged: ${JSON.stringify(r.log)}`);
  assert.equal(r.answer, 'kernel\n', "the kernel's listening socket still answers");
});
