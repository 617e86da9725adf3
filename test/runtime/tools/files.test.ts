import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TalonError } from '../../../runtime/core/errors.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import { fileTools } from '../../../runtime/tools/builtin/files.ts';
import type { ToolCaller, ToolDefinition } from '../../../runtime/tools/types.ts';

const base = mkdtempSync(join(tmpdir(), 'talon-files-'));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

function setup(opts: { maxFileBytes?: number; quotaBytes?: number } = {}) {
  const tools = new Map(fileTools(opts).map((t) => [t.name, t as ToolDefinition<Record<string, unknown>, any>]));
  const c: ToolCaller = {
    actor: 'hand:t',
    hand: 't',
    admin: false,
    grants: NO_CAPABILITIES,
    folder: join(base, `hand-${++n}`, 'files'),
  };
  const call = async (name: string, input: Record<string, unknown>, maxOutputBytes = 64 * 1024) => {
    const t = tools.get(name);
    assert.ok(t, name);
    t.check?.(input, c);
    return t.run(input, { caller: c, signal: new AbortController().signal, timeoutMs: 30_000, maxOutputBytes });
  };
  return { c, call, tools };
}

async function code(p: Promise<unknown>, want: string, subject?: string): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, String(err));
    assert.equal(err.code, want, err.message);
    if (subject !== undefined) assert.equal((err.details as { subject: string }).subject, subject);
    return err;
  }
  assert.fail(`expected ${want}`);
}

test('write, read, list, delete inside the folder', async () => {
  const { c, call } = setup();
  const w = await call('file.write', { path: 'notes/a.txt', content: 'hello é\n' });
  assert.deepEqual(w, { path: 'notes/a.txt', bytes: 9, size: 9 });
  assert.equal(readFileSync(join(c.folder, 'notes/a.txt'), 'utf8'), 'hello é\n');
  await call('file.write', { path: 'notes/a.txt', content: 'more', append: true });
  const r = await call('file.read', { path: 'notes/a.txt' });
  assert.equal(r.content, 'hello é\nmore');
  assert.equal(r.size, 13);
  assert.equal(r.nextOffset, null);
  await call('file.write', {
    path: 'bin.dat',
    content: Buffer.from([0, 1, 255]).toString('base64'),
    encoding: 'base64',
  });
  const b = await call('file.read', { path: 'bin.dat', encoding: 'base64' });
  assert.deepEqual([...Buffer.from(b.content, 'base64')], [0, 1, 255]);
  const top = await call('file.list', {});
  assert.deepEqual(
    top.entries.map((e: { name: string; type: string }) => [e.name, e.type]),
    [
      ['bin.dat', 'file'],
      ['notes', 'dir'],
    ],
  );
  const all = await call('file.list', { recursive: true });
  const a = all.entries.find((e: { name: string }) => e.name === 'notes/a.txt');
  assert.equal(a.size, 13);
  assert.ok(!Number.isNaN(Date.parse(a.mtime)));
  assert.deepEqual(await call('file.delete', { path: 'notes/a.txt' }), { path: 'notes/a.txt', type: 'file' });
  assert.ok(!existsSync(join(c.folder, 'notes/a.txt')));
  // no temporary file is left behind
  assert.deepEqual(readdirSync(c.folder).sort(), ['bin.dat', 'notes']);
});

test('reads come in parts that never split a UTF-8 character', async () => {
  const { call } = setup();
  await call('file.write', { path: 'u.txt', content: 'aé€😀z' });
  const first = await call('file.read', { path: 'u.txt', length: 4 }); // a(1) é(2) then € would need 3
  assert.equal(first.content, 'aé');
  assert.equal(first.nextOffset, 3);
  const rest = await call('file.read', { path: 'u.txt', offset: first.nextOffset });
  assert.equal(rest.content, '€😀z');
  assert.equal(rest.nextOffset, null);
  const big = 'x'.repeat(5000);
  await call('file.write', { path: 'big.txt', content: big });
  const part = await call('file.read', { path: 'big.txt' }, 2048);
  assert.ok(part.bytes < 5000 && part.nextOffset === part.bytes, 'a default read fits the output cap');
});

test('refused: paths that leave the folder', async () => {
  const { c, call } = setup();
  await call('file.write', { path: 'in.txt', content: 'x' });
  await code(call('file.read', { path: '../x' }), 'CAPABILITY_DENIED', '../x');
  await code(call('file.read', { path: 'a/../../x' }), 'CAPABILITY_DENIED', 'a/../../x');
  await code(call('file.read', { path: '/etc/passwd' }), 'CAPABILITY_DENIED', '/etc/passwd');
  await code(call('file.write', { path: '../escape.txt', content: 'x' }), 'CAPABILITY_DENIED');
  assert.ok(!existsSync(join(c.folder, '..', 'escape.txt')));
  await code(call('file.list', { path: '..' }), 'CAPABILITY_DENIED');
  await code(call('file.delete', { path: '../files' }), 'CAPABILITY_DENIED');
  await code(call('file.delete', { path: '.' }), 'CAPABILITY_DENIED');
  // an absolute path inside the folder is fine
  assert.equal((await call('file.read', { path: join(c.folder, 'in.txt') })).content, 'x');
  // links that lead outside: to a file, to a folder (read, write through, list)
  const outside = join(base, `outside-${n}`);
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, 'secret'), 'secret');
  symlinkSync(join(outside, 'secret'), join(c.folder, 'secret-link'));
  symlinkSync(outside, join(c.folder, 'dir-link'));
  await code(call('file.read', { path: 'secret-link' }), 'CAPABILITY_DENIED', 'secret-link');
  await code(call('file.read', { path: 'dir-link/secret' }), 'CAPABILITY_DENIED');
  await code(call('file.write', { path: 'dir-link/new.txt', content: 'x' }), 'CAPABILITY_DENIED');
  assert.ok(!existsSync(join(outside, 'new.txt')));
  await code(call('file.list', { path: 'dir-link' }), 'CAPABILITY_DENIED');
  // a listing shows the link as a link, and deleting it removes the link, not its target
  const top = await call('file.list', {});
  assert.ok(top.entries.some((e: { name: string; type: string }) => e.name === 'dir-link' && e.type === 'symlink'));
  assert.deepEqual(await call('file.delete', { path: 'secret-link' }), { path: 'secret-link', type: 'symlink' });
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'secret');
});

test('not found names the relative path; a folder needs recursive to be deleted', async () => {
  const { call } = setup();
  const e = await code(call('file.read', { path: 'nope/x.txt' }), 'NOT_FOUND');
  assert.deepEqual(e.details, { path: 'nope/x.txt' });
  assert.match(e.message, /nope\/x\.txt/);
  await code(call('file.delete', { path: 'nope' }), 'NOT_FOUND');
  await code(call('file.list', { path: 'nope' }), 'NOT_FOUND');
  await call('file.write', { path: 'd/e/f.txt', content: 'x' });
  await code(call('file.delete', { path: 'd' }), 'CONFLICT');
  assert.deepEqual(await call('file.delete', { path: 'd', recursive: true }), { path: 'd', type: 'dir' });
  await code(call('file.read', { path: 'd/e/f.txt' }), 'NOT_FOUND');
});

test('the file size cap and the folder quota: QUOTA_EXCEEDED, nothing written', async () => {
  const { c, call } = setup({ maxFileBytes: 100, quotaBytes: 250 });
  await code(call('file.write', { path: 'big', content: 'x'.repeat(101) }), 'QUOTA_EXCEEDED');
  assert.ok(!existsSync(join(c.folder, 'big')));
  await call('file.write', { path: 'a', content: 'x'.repeat(100) });
  await code(call('file.write', { path: 'a', content: 'y', append: true }), 'QUOTA_EXCEEDED');
  await call('file.write', { path: 'b', content: 'x'.repeat(100) });
  const e = await code(call('file.write', { path: 'c', content: 'x'.repeat(60) }), 'QUOTA_EXCEEDED');
  assert.equal((e.details as { limit: number }).limit, 250);
  // replacing a file counts its new size, not both
  await call('file.write', { path: 'b', content: 'x'.repeat(90) });
  await call('file.write', { path: 'c', content: 'x'.repeat(60) });
  assert.equal(readFileSync(join(c.folder, 'c'), 'utf8').length, 60);
});

test('a list stops at its limit and says so', async () => {
  const { call } = setup();
  for (const name of ['a', 'b', 'c', 'd']) await call('file.write', { path: name, content: name });
  const r = await call('file.list', { limit: 2 });
  assert.deepEqual(
    r.entries.map((e: { name: string }) => e.name),
    ['a', 'b'],
  );
  assert.equal(r.truncated, true);
});
