/**
 * `talon tools|approvals|runs` in process (runtime/cli/main.ts main() with a captured Io)
 * against the real HTTP server serving fakes of the tools contract
 * (test/web-admin/tools-fakes.ts): the daemon is found through runtime.json and the CLI token,
 * as the shipped CLI finds it; exit codes follow the error's status.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../../runtime/cli/main.ts';
import type { Io } from '../../../runtime/cli/args.ts';
import { CLI_TOKEN, serveTools, type ToolsServer } from '../../web-admin/tools-fakes.ts';

let s: ToolsServer;

before(async () => {
  s = await serveTools();
  writeFileSync(join(s.dataDir, 'runtime.json'), JSON.stringify({ pid: process.pid, http: s.http.address() }));
  writeFileSync(join(s.dataDir, 'cli-token'), `${CLI_TOKEN}\n`, { mode: 0o600 });
});

after(async () => {
  await s?.close();
});

async function talon(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (x) => void (out += x), err: (x) => void (err += x), env: {}, cwd: s.dataDir };
  const code = await main([...argv, '--data', s.dataDir], io);
  return { code, out, err };
}

test('talon tools list prints each tool with its annotations; --json the ToolInfo list', async () => {
  const r = await talon('tools', 'list');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^file\.delete\s+builtin\s+destructive, needs approval\s+fs: write in the Hand folder$/m);
  assert.match(r.out, /^time\.now\s+builtin\s+read-only, idempotent\s/m);
  assert.match(r.out, /^mcp\.lab\.probe\s+mcp:lab\s+.*UNAVAILABLE/m);
  assert.match(r.out, /^5 tools$/m);
  const j = await talon('tools', 'list', '--json');
  assert.equal(j.code, 0);
  assert.equal((JSON.parse(j.out) as unknown[]).length, 5);
});

test('talon tools call prints the output; errors exit by their status with the code', async () => {
  const ok = await talon('tools', 'call', 'shell.exec', '--input', '{"command":"echo hi | tr a-z A-Z"}');
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /"stdout": "ran echo hi \| tr a-z A-Z\\n"/);
  assert.deepEqual(s.tools.calls.at(-1)!.input, { command: 'echo hi | tr a-z A-Z' });
  assert.equal(s.tools.calls.at(-1)!.caller.actor, 'cli');

  const bad = await talon('tools', 'call', 'shell.exec', '--input', '{}');
  assert.equal(bad.code, 2, 'a refused input is the caller’s to fix');
  assert.match(bad.err, /command is required \(TOOL_BAD_INPUT\)/);
  const failed = await talon('tools', 'call', 'shell.exec', '--input', '{"command":"false"}');
  assert.equal(failed.code, 1);
  assert.match(failed.err, /\(TOOL_FAILED\)/);
  const unknown = await talon('tools', 'call', 'no.such');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /\(TOOL_NOT_FOUND\)/);
  const notJson = await talon('tools', 'call', 'time.now', '--input', '{nope');
  assert.equal(notJson.code, 2);
  assert.match(notJson.err, /--input is not valid JSON/);
  const notObject = await talon('tools', 'call', 'time.now', '--input', '[1]');
  assert.equal(notObject.code, 2);
});

test('talon approvals lists (all, or by --state), approves and denies with a note; a second answer fails', async () => {
  s.approvals.add({ id: 'cli-1', input: { path: 'a.txt' } });
  s.approvals.add({ id: 'cli-2', input: { path: 'b.txt' } });
  const list = await talon('approvals');
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^cli-2 {2}pending {2}file\.delete {2}asked by hand:gardener {2}\d+ min left$/m);
  assert.match(list.out, /input \{"path":"a\.txt"\}/);
  assert.match(list.out, /goal {2}tidy the notes folder/);
  assert.match(list.out, /2 pending$/m);

  const approve = await talon('approvals', 'approve', 'cli-1', '--note', 'fine');
  assert.equal(approve.code, 0, approve.err);
  assert.match(approve.out, /cli-1 approved/);
  assert.equal((await s.approvals.get('cli-1')).by, 'cli');
  assert.equal((await s.approvals.get('cli-1')).note, 'fine');
  const deny = await talon('approvals', 'deny', 'cli-2');
  assert.equal(deny.code, 0);
  assert.equal((await s.approvals.get('cli-2')).state, 'denied');

  const again = await talon('approvals', 'approve', 'cli-2');
  assert.equal(again.code, 2, 'a 4xx about what was asked');
  assert.match(again.err, /\(CONFLICT\)/);
  const pending = await talon('approvals', '--state', 'pending');
  assert.doesNotMatch(pending.out, /cli-1|cli-2/);
  const approved = await talon('approvals', 'list', '--state', 'approved', '--json');
  assert.deepEqual(
    (JSON.parse(approved.out) as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id),
    ['cli-1'],
  );
  const badState = await talon('approvals', '--state', 'open');
  assert.equal(badState.code, 2);
});

test("talon runs HAND lists a Hand's runs; talon runs show ID prints the steps with calls and errors", async () => {
  const list = await talon('runs', 'gardener', '--limit', '5');
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^run-1 {2}\S+ {2}done {4}2 steps, 320\+50 tokens, 3\.0 s {2}tidy the notes folder$/m);
  assert.match(list.out, /^run-0 .*failed .*\[AGENT_BUDGET\]$/m);
  assert.deepEqual(s.runs.asked.at(-1), { hand: 'gardener', limit: 5 });

  const run = await talon('runs', 'show', 'run-1');
  assert.equal(run.code, 0, run.err);
  assert.match(run.out, /^goal: tidy the notes folder$/m);
  assert.match(run.out, /^step 0 local\/tiny: model 800 ms, kernel 1\.5 ms, 120\+30 tokens$/m);
  assert.match(run.out, /→ file\.delete \{\n/);
  assert.match(run.out, /✗ APPROVAL_DENIED: user:owner denied it: keep it/);
  assert.match(run.out, /^answer: The folder is tidy/m);

  const none = await talon('runs', 'show', 'run-9');
  assert.equal(none.code, 2);
  assert.match(none.err, /\(RUN_NOT_FOUND\)/);
  const badHand = await talon('runs', 'Bad_Hand');
  assert.equal(badHand.code, 2);
  const help = await talon('runs', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /usage: talon runs HAND \[ID\]/);
});
