/**
 * What people write to the bot: a few commands, everything else free text (which the Hand may hand to an agent).
 *
 *   status                    the device's and the Hand's state in a few lines
 *   ack <id>                  acknowledges an escalation (the id from the message: `ack K3F9`); stops it everywhere
 *   approve <id> [reason…]    decides a pending approval
 *   deny <id> [reason…]
 *   help                      the list
 *
 * Tolerated: upper or lower case, a leading `/` and Telegram's `/status@mybot`, a `:` or `,` after the word, and mail
 * replies (the command is the first non-empty line; quoted text below it is ignored). parseCommand() is pure;
 * runCommand() runs one through the Hand's deps and always resolves a short answer (errors become one).
 * The Hand checks the sender before (only allow-listed senders get here).
 */
import type { AckResult } from './escalation.ts';
import { normalizeAckId } from './escalation.ts';

export type Command =
  | { kind: 'status' }
  | { kind: 'ack'; ackId: string }
  | { kind: 'approve' | 'deny'; id: string; reason?: string }
  | { kind: 'help' }
  /** a command word without what it needs (`ack` alone): the answer says how to write it */
  | { kind: 'usage'; command: 'ack' | 'approve' | 'deny'; message: string }
  | { kind: 'text'; text: string };

export interface CommandDeps {
  /** the answer to `status` */
  status(): Promise<string>;
  /** acknowledges an escalation (./escalation.ts Escalations.ack) */
  ack(ackId: string, by: string, channel: string): Promise<AckResult>;
  /** decides an approval; a string is the answer (default: "Approved <id>."), a rejection becomes a short answer */
  decide(approvalId: string, decision: 'approve' | 'deny', by: string, note: string | undefined): Promise<unknown>;
  /** free text (an agent, a chat); absent: the answer is the help */
  freeText?(text: string, by: string): Promise<string>;
}

export interface CommandFrom {
  channel: string;
  /** the sender's address on the channel */
  sender: string;
}

export interface CommandOutcome {
  /** the command's word (`status`, `ack`, …, `text`, `usage`) */
  command: string;
  ok: boolean;
  answer: string;
}

export const HELP = [
  'Commands:',
  '  status — how the device is doing',
  '  ack <id> — acknowledge an alert (stops its escalation)',
  '  approve <id> [reason] — approve a pending request',
  '  deny <id> [reason] — deny a pending request',
  '  help — this list',
].join('\n');

const WORDS = new Set(['status', 'ack', 'approve', 'deny', 'help']);
/** a mail reply's quoted part and signature start here */
const QUOTE = /^(>|On .+ wrote:$|-- ?$)/;

export function parseCommand(text: string): Command {
  const whole = text.replace(/\r\n?/g, '\n').trim();
  const first = whole.split('\n').find((l) => l.trim() !== '' && !QUOTE.test(l.trim())) ?? '';
  const m = /^\/?([A-Za-z]+)(?:@[\w.-]+)?[:,?!.]?(?:\s+(.*))?$/.exec(first.trim());
  const word = m?.[1]?.toLowerCase() ?? '';
  if (!m || !WORDS.has(word)) return { kind: 'text', text: whole };
  const rest = (m[2] ?? '').trim();
  const [arg = '', ...more] = rest.split(/\s+/).filter((s) => s !== '');
  switch (word) {
    case 'status':
    case 'help':
      // "status of the pump?" is a question, not the command
      if (/[^\s?!.]/.test(rest)) return { kind: 'text', text: whole };
      return { kind: word };
    case 'ack': {
      const ackId = normalizeAckId(arg.replace(/^#/, ''));
      if (!/^[0-9A-HJKMNP-TV-Z]{4,6}$/.test(ackId))
        return {
          kind: 'usage',
          command: 'ack',
          message:
            arg === ''
              ? 'ack needs the id from the message, e.g. "ack K3F9"'
              : `"${arg.slice(0, 20)}" is not an ack id: write the 4–6 characters from the message, e.g. "ack K3F9"`,
        };
      return { kind: 'ack', ackId };
    }
    default: {
      const kind = word as 'approve' | 'deny';
      if (arg === '')
        return { kind: 'usage', command: kind, message: `${kind} needs the request's id, e.g. "${kind} ap-12"` };
      const reason = more.join(' ');
      return { kind, id: arg.replace(/^#/, ''), ...(reason !== '' && { reason }) };
    }
  }
}

function short(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.length > 200 ? `${msg.slice(0, 199)}…` : msg;
}

/** runs a command for a sender; never rejects: a failure is a short answer with ok false */
export async function runCommandResult(cmd: Command, from: CommandFrom, deps: CommandDeps): Promise<CommandOutcome> {
  const by = `${from.channel}:${from.sender}`;
  try {
    switch (cmd.kind) {
      case 'help':
        return { command: 'help', ok: true, answer: HELP };
      case 'usage':
        return { command: cmd.command, ok: false, answer: cmd.message };
      case 'status':
        return { command: 'status', ok: true, answer: await deps.status() };
      case 'ack': {
        const r = await deps.ack(cmd.ackId, by, from.channel);
        if (r.result === 'not-found')
          return {
            command: 'ack',
            ok: false,
            answer: `No alert with the id ${cmd.ackId}: check the id in the message.`,
          };
        const what = r.escalation.title ? ` (${r.escalation.title})` : '';
        if (r.result === 'already-acked') {
          const who = r.escalation.acked?.by === by ? 'by you' : `by ${r.escalation.acked?.by ?? 'someone'}`;
          return { command: 'ack', ok: true, answer: `${cmd.ackId}${what} was already acknowledged ${who}.` };
        }
        return { command: 'ack', ok: true, answer: `Acknowledged ${cmd.ackId}${what}. No one else will be alerted.` };
      }
      case 'approve':
      case 'deny': {
        const said = await deps.decide(cmd.id, cmd.kind, by, cmd.reason);
        const done = cmd.kind === 'approve' ? 'Approved' : 'Denied';
        return {
          command: cmd.kind,
          ok: true,
          answer: typeof said === 'string' && said !== '' ? said : `${done} ${cmd.id}.`,
        };
      }
      case 'text':
        if (!deps.freeText) return { command: 'text', ok: true, answer: `I only understand commands.\n${HELP}` };
        return { command: 'text', ok: true, answer: await deps.freeText(cmd.text, by) };
    }
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (cmd.kind === 'approve' || cmd.kind === 'deny') {
      const answer =
        code === 'APPROVAL_NOT_FOUND' || code === 'NOT_FOUND'
          ? `No pending request ${cmd.id}: it may have been decided or have expired.`
          : `Could not ${cmd.kind} ${cmd.id}: ${short(err)}`;
      return { command: cmd.kind, ok: false, answer };
    }
    const word = cmd.kind === 'text' ? 'That' : `"${cmd.kind}"`;
    return { command: cmd.kind, ok: false, answer: `${word} failed: ${short(err)}` };
  }
  return { command: 'unknown', ok: false, answer: HELP };
}

/** the answer text to a command (never rejects) */
export async function runCommand(cmd: Command, from: CommandFrom, deps: CommandDeps): Promise<string> {
  return (await runCommandResult(cmd, from, deps)).answer;
}
