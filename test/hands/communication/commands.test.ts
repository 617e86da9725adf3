/** The bot's commands: parsing what people type (Telegram, chat, mail replies) and running them through fake deps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CommandDeps,
  HELP,
  parseCommand,
  runCommand,
  runCommandResult,
} from '../../../hands/communication/commands.ts';
import type { AckResult } from '../../../hands/communication/escalation.ts';
import type { Escalation } from '../../../hands/communication/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

test('parseCommand: the commands, any case, a leading slash, Telegram @botname, punctuation', () => {
  assert.deepEqual(parseCommand('status'), { kind: 'status' });
  assert.deepEqual(parseCommand('  STATUS?  '), { kind: 'status' });
  assert.deepEqual(parseCommand('/status@talon_bot'), { kind: 'status' });
  assert.deepEqual(parseCommand('/Help'), { kind: 'help' });
  assert.deepEqual(parseCommand('ack K3F9'), { kind: 'ack', ackId: 'K3F9' });
  assert.deepEqual(parseCommand('/ack@talon_bot k3f9'), { kind: 'ack', ackId: 'K3F9' });
  assert.deepEqual(parseCommand('Ack: #k3f9'), { kind: 'ack', ackId: 'K3F9' });
  assert.deepEqual(parseCommand('ack o1il'), { kind: 'ack', ackId: '0111' }, 'read the Crockford way');
  assert.deepEqual(parseCommand('approve ap-12'), { kind: 'approve', id: 'ap-12' });
  assert.deepEqual(parseCommand('APPROVE ap-12 looks fine to me'), {
    kind: 'approve',
    id: 'ap-12',
    reason: 'looks fine to me',
  });
  assert.deepEqual(parseCommand('/deny@bot ap-3 not now'), { kind: 'deny', id: 'ap-3', reason: 'not now' });
});

test('parseCommand: free text, questions that start with a command word, missing ids', () => {
  assert.deepEqual(parseCommand('how warm is the freezer?'), { kind: 'text', text: 'how warm is the freezer?' });
  assert.deepEqual(parseCommand('status of the pump?'), { kind: 'text', text: 'status of the pump?' });
  assert.deepEqual(parseCommand('help me restart the pump'), { kind: 'text', text: 'help me restart the pump' });
  assert.deepEqual(parseCommand(''), { kind: 'text', text: '' });
  const ack = parseCommand('ack');
  assert.equal(ack.kind, 'usage');
  assert.match((ack as { message: string }).message, /ack K3F9/);
  assert.equal(parseCommand('ack the freezer').kind, 'usage');
  assert.equal(parseCommand('deny').kind, 'usage');
});

test('parseCommand: a mail reply is read from its first line; the quote below is ignored', () => {
  const reply = 'ack K3F9\r\n\r\nOn Thu, 3 Dec 2026 Talon wrote:\r\n> Freezer warm\r\n> ack K3F9 to stop\r\n';
  assert.deepEqual(parseCommand(reply), { kind: 'ack', ackId: 'K3F9' });
  assert.deepEqual(parseCommand('\n\n  approve ap-9 ok\n-- \nAnna'), { kind: 'approve', id: 'ap-9', reason: 'ok' });
});

const esc = (over: Partial<Escalation> = {}): Escalation => ({
  ackId: 'K3F9',
  notification: 'n1',
  title: 'Freezer warm',
  text: 'freezer at -5 °C',
  priority: 'critical',
  steps: [{ to: ['anna'], afterMs: 1000 }],
  step: 0,
  dueAt: 0,
  startedAt: 0,
  ...over,
});

function deps(over: Partial<CommandDeps> = {}): CommandDeps & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  return {
    calls,
    status: async () => 'all fine: 3 Hands running',
    ack: async (id, by, channel): Promise<AckResult> => {
      calls.push(['ack', id, by, channel]);
      return { result: 'acked', escalation: esc({ acked: { by, at: 1 } }) };
    },
    decide: async (id, d, by, note) => {
      calls.push(['decide', id, d, by, note]);
    },
    ...over,
  };
}

const from = { channel: 'telegram', sender: '1001' };

test('runCommand: status, ack and decisions go to the deps with by = channel:sender', async () => {
  const d = deps();
  assert.equal(await runCommand({ kind: 'status' }, from, d), 'all fine: 3 Hands running');
  assert.match(await runCommand(parseCommand('ack k3f9'), from, d), /^Acknowledged K3F9 \(Freezer warm\)/);
  assert.equal(await runCommand(parseCommand('approve ap-1 fine'), from, d), 'Approved ap-1.');
  assert.equal(await runCommand(parseCommand('deny ap-2'), from, d), 'Denied ap-2.');
  assert.deepEqual(d.calls, [
    ['ack', 'K3F9', 'telegram:1001', 'telegram'],
    ['decide', 'ap-1', 'approve', 'telegram:1001', 'fine'],
    ['decide', 'ap-2', 'deny', 'telegram:1001', undefined],
  ]);
  assert.equal(await runCommand({ kind: 'help' }, from, d), HELP);
});

test('runCommand: already acknowledged and unknown ids answer without failing', async () => {
  const already = deps({
    ack: async () => ({ result: 'already-acked', escalation: esc({ acked: { by: 'mail:boss@example.com', at: 1 } }) }),
  });
  assert.equal(
    await runCommand(parseCommand('ack K3F9'), from, already),
    'K3F9 (Freezer warm) was already acknowledged by mail:boss@example.com.',
  );
  const missing = deps({ ack: async () => ({ result: 'not-found' }) });
  const r = await runCommandResult(parseCommand('ack ZZZZ'), from, missing);
  assert.equal(r.ok, false);
  assert.match(r.answer, /No alert with the id ZZZZ/);
});

test('runCommand never throws: failures become short answers', async () => {
  const broken = deps({
    status: async () => {
      throw new Error('kernel unreachable');
    },
    decide: async () => {
      throw new TalonError('APPROVAL_NOT_FOUND', 'no approval ap-9');
    },
    ack: async () => {
      throw new Error('x'.repeat(1000));
    },
  });
  const s = await runCommandResult({ kind: 'status' }, from, broken);
  assert.deepEqual(s, { command: 'status', ok: false, answer: '"status" failed: kernel unreachable' });
  assert.match(await runCommand(parseCommand('approve ap-9'), from, broken), /No pending request ap-9/);
  const a = await runCommand(parseCommand('ack K3F9'), from, broken);
  assert.ok(a.length < 260, 'cut short');
  assert.equal((await runCommandResult(parseCommand('ack'), from, broken)).ok, false);
});

test('free text goes to freeText when there is one, else the answer is the help', async () => {
  assert.equal(await runCommand(parseCommand('how warm is it?'), from, deps()), `I only understand commands.\n${HELP}`);
  const seen: unknown[] = [];
  const chat = deps({
    freeText: async (t, by) => {
      seen.push([t, by]);
      return '4 °C';
    },
  });
  assert.equal(await runCommand(parseCommand('how warm is it?'), { channel: 'mail', sender: 'a@b.c' }, chat), '4 °C');
  assert.deepEqual(seen, [['how warm is it?', 'mail:a@b.c']]);
});
