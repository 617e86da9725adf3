/**
 * `talon channels list|test NAME|notify TEXT|messages|escalations|ack ID` (also `talon communication …`, and
 * `talon notify TEXT` for `talon channels notify`): the Communication Hand's channels and messages on the running
 * daemon, through /api/v1/channels and /api/v1/messages (./surface.ts). Options are checked here before any request,
 * so a bad `--priority` or `--limit` is a usage error (exit 2) naming the option and what to write instead.
 */
import type { HandCommandArgs, HandDaemon } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Escalation, HistoryEntry, InboxEntry, OutboxEntry, Priority } from './types.ts';
import { iso, oneLine, table, printJson } from '../sdk/cli-text.ts';

const enc = encodeURIComponent;
const PRIORITIES: readonly Priority[] = ['low', 'normal', 'high', 'critical'];
const BOXES = ['outbox', 'history', 'inbox'] as const;
type Box = (typeof BOXES)[number];

/** a channel as GET /api/v1/channels answers it (./protocol.ts CHANNEL_VIEW_SCHEMA) */
export interface ChannelView {
  name: string;
  kind: string;
  direction: 'both' | 'out';
  url: string;
  targets: string[];
  health: 'ok' | 'degraded' | 'open' | 'auth' | 'error' | 'starting';
  error?: string;
  lastError?: string;
  lastOkAt?: number;
  lastReceivedAt?: number;
  queued: number;
  held: number;
  sent: number;
  failed: number;
  received: number;
  breaker: { state: 'closed' | 'open' | 'half-open'; waitUntil?: number };
}

export interface DecisionView {
  kind: 'send' | 'hold' | 'drop';
  channel?: string;
  to?: string;
  rule?: string;
  route?: string;
  reason?: string;
  until?: number;
  group?: string;
}

function daemonOf(a: HandCommandArgs): HandDaemon {
  if (!a.daemon) throw new TalonError('INTERNAL', 'this command needs the running daemon (declared daemon: true)');
  return a.daemon;
}

/** `a, b,,c` → ['a', 'b', 'c'] */
export function commaList(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** a channel's health in a few words: `ok`, `open (until 12:00:00Z)`, `error` */
function healthWords(c: ChannelView): string {
  if (c.health === 'open' && c.breaker.waitUntil !== undefined) return `open until ${iso(c.breaker.waitUntil)}`;
  return c.health;
}

export async function listCommand(a: HandCommandArgs): Promise<number> {
  const { channels } = await daemonOf(a).request<{ channels: ChannelView[] }>('GET', '/api/v1/channels');
  if (a.values.json) return printJson(a, channels);
  if (channels.length === 0) {
    a.io.out('no channels; add one under the Hand\'s settings, e.g. channels: { phone: "ntfy://ntfy.sh/my-topic" }\n');
    return 0;
  }
  const rows = [['NAME', 'KIND', 'HEALTH', 'QUEUED', 'LAST ERROR']];
  for (const c of channels)
    rows.push([
      c.name,
      c.kind + (c.direction === 'both' ? ' (in+out)' : ''),
      healthWords(c),
      c.held > 0 ? `${c.queued} (+${c.held} held)` : String(c.queued),
      oneLine(c.error ?? c.lastError, 80),
    ]);
  a.io.out(table(rows));
  return 0;
}

export async function testCommand(a: HandCommandArgs): Promise<number> {
  const name = a.positionals[0]!;
  const text = a.values.text;
  if (text !== undefined && (typeof text !== 'string' || text.trim() === ''))
    return a.usage('--text must be a message (or leave it out for a test line)');
  const r = await daemonOf(a).request<{
    ok: boolean;
    platformIds?: string[];
    error?: { kind: string; message: string };
  }>('POST', `/api/v1/channels/${enc(name)}/test`, typeof text === 'string' ? { text } : {});
  if (a.values.json) {
    printJson(a, r);
    return r.ok ? 0 : 1;
  }
  if (r.ok) {
    a.io.out(`sent on ${name}${r.platformIds?.length ? ` (${r.platformIds.join(', ')})` : ''}\n`);
    return 0;
  }
  a.io.err(`${name}: not sent: ${r.error ? `${r.error.message} (${r.error.kind})` : 'refused'}\n`);
  return 1;
}

/** the notify body from the command line; a usage error names the option */
export function notifyBody(a: HandCommandArgs): Record<string, unknown> {
  const text = a.positionals[0] ?? '';
  if (text.trim() === '') return a.usage('TEXT must not be empty: talon notify "the message"');
  if (text.length > 4000) return a.usage(`TEXT is ${text.length} characters; at most 4000`);
  const body: Record<string, unknown> = { text };
  const p = a.values.priority;
  if (p !== undefined) {
    if (typeof p !== 'string' || !(PRIORITIES as readonly string[]).includes(p))
      return a.usage(`--priority must be one of ${PRIORITIES.join(', ')}, not "${String(p)}"`);
    body.priority = p;
  }
  if (typeof a.values.title === 'string') {
    if (a.values.title.length > 200) return a.usage('--title is at most 200 characters');
    body.title = a.values.title;
  }
  if (typeof a.values.to === 'string') {
    const to = commaList(a.values.to);
    if (to.length === 0)
      return a.usage('--to needs targets: channel names, people or channel:address, comma-separated');
    body.to = to;
  }
  if (typeof a.values.tag === 'string') {
    const tags = commaList(a.values.tag);
    if (tags.length === 0) return a.usage('--tag needs tags, comma-separated');
    body.tags = tags;
  }
  if (a.values.ack === true) body.needsAck = true;
  return body;
}

/** the router's decisions in words: `sent to phone`, `held on mail until … (digest)`, `dropped: duplicate` */
export function decisionWords(d: DecisionView): string {
  const where = `${d.channel ?? '?'}${d.to ? `:${d.to}` : ''}`;
  const rule = d.rule ? ` [${d.rule}]` : '';
  if (d.kind === 'send') return `queued for ${where}${rule}`;
  if (d.kind === 'hold') return `held for ${where} until ${iso(d.until)}${d.reason ? ` (${d.reason})` : ''}${rule}`;
  return `dropped: ${d.reason ?? 'no route'}${d.group ? ` (counted into ${d.group})` : ''}${rule}`;
}

export async function notifyCommand(a: HandCommandArgs): Promise<number> {
  const body = notifyBody(a);
  const r = await daemonOf(a).request<{ id: string; decisions: DecisionView[]; ackId?: string }>(
    'POST',
    '/api/v1/messages',
    body,
  );
  if (a.values.json) return printJson(a, r);
  const lines = [`notification ${r.id}`, ...r.decisions.map((d) => `  ${decisionWords(d)}`)];
  if (r.decisions.length === 0) lines.push('  no rule matched: nothing sent');
  if (r.ackId) lines.push(`acknowledge with: talon channels ack ${r.ackId}`);
  a.io.out(`${lines.join('\n')}\n`);
  return 0;
}

/** `--box` and `--limit` checked; the query string of GET /api/v1/messages */
export function messagesQuery(a: HandCommandArgs): { box: Box; query: string } {
  const b = a.values.box ?? 'history';
  if (typeof b !== 'string' || !(BOXES as readonly string[]).includes(b))
    return a.usage(`--box must be one of ${BOXES.join(', ')}, not "${String(b)}"`);
  const l = a.values.limit ?? '20';
  if (typeof l !== 'string' || !/^\d+$/.test(l)) return a.usage(`--limit must be a whole number, got "${String(l)}"`);
  if (Number(l) < 1 || Number(l) > 500) return a.usage(`--limit must be from 1 to 500, not ${l}`);
  return { box: b as Box, query: `box=${b}&limit=${Number(l)}` };
}

export function messagesTable(box: Box, messages: unknown[]): string {
  if (box === 'outbox') {
    const rows = [['CREATED', 'CHANNEL', 'STATE', 'TRIES', 'NEXT', 'LAST ERROR', 'TEXT']];
    for (const m of messages as OutboxEntry[])
      rows.push([
        iso(m.createdAt),
        m.channel + (m.to ? `:${m.to}` : ''),
        m.state === 'held' && m.holdReason ? `held (${m.holdReason})` : m.state,
        String(m.attempts),
        iso(m.nextAt),
        oneLine(m.lastError, 40),
        oneLine(m.title ?? m.text, 50),
      ]);
    return table(rows);
  }
  if (box === 'history') {
    const rows = [['DONE', 'CHANNEL', 'OUTCOME', 'TRIES', 'PRIORITY', 'TEXT']];
    for (const m of messages as HistoryEntry[])
      rows.push([
        iso(m.doneAt),
        m.channel + (m.to ? `:${m.to}` : ''),
        m.outcome + (m.maybeDuplicate ? ' (maybe twice)' : ''),
        String(m.attempts),
        m.priority,
        oneLine(m.outcome === 'sent' ? (m.title ?? m.text) : `${m.error ?? ''} — ${m.title ?? m.text}`, 60),
      ]);
    return table(rows);
  }
  const rows = [['RECEIVED', 'CHANNEL', 'FROM', 'SENDER', 'TEXT', 'ANSWER']];
  for (const m of messages as InboxEntry[])
    rows.push([
      iso(m.receivedAt),
      m.channel,
      m.fromName ? `${m.fromName} (${m.from})` : m.from,
      m.sender,
      oneLine(m.text, 40),
      m.handled ? `${m.handled.ok ? '' : 'failed: '}${oneLine(m.handled.answer ?? m.handled.command, 50)}` : '-',
    ]);
  return table(rows);
}

export async function messagesCommand(a: HandCommandArgs): Promise<number> {
  const { box, query } = messagesQuery(a);
  const r = await daemonOf(a).request<{ messages: unknown[]; next?: string }>('GET', `/api/v1/messages?${query}`);
  if (a.values.json) return printJson(a, r);
  if (r.messages.length === 0) {
    a.io.out(`the ${box} is empty\n`);
    return 0;
  }
  a.io.out(messagesTable(box, r.messages));
  if (r.next) a.io.out(`(more: older messages past ${r.next})\n`);
  return 0;
}

export async function escalationsCommand(a: HandCommandArgs): Promise<number> {
  const { escalations } = await daemonOf(a).request<{ escalations: Escalation[] }>(
    'GET',
    `/api/v1/messages/escalations${a.values.all ? '?all=true' : ''}`,
  );
  if (a.values.json) return printJson(a, escalations);
  if (escalations.length === 0) {
    a.io.out('no escalation waits for an acknowledgement\n');
    return 0;
  }
  const rows = [['ACK ID', 'PRIORITY', 'STEP', 'NEXT STEP', 'STATE', 'TEXT']];
  for (const e of escalations)
    rows.push([
      e.ackId,
      e.priority,
      `${e.step + 1}/${e.steps.length}`,
      e.ended ? '-' : iso(e.dueAt),
      e.ended === 'acked' || e.acked ? `acked by ${e.acked?.by ?? '?'}` : (e.ended ?? 'waiting'),
      oneLine(e.title ?? e.text, 60),
    ]);
  a.io.out(table(rows));
  return 0;
}

export async function ackCommand(a: HandCommandArgs): Promise<number> {
  const id = a.positionals[0]!;
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(id))
    return a.usage(`ID must be an ack id (letters, digits, _ -, as the message shows it), not "${id}"`);
  const note = a.values.note;
  const r = await daemonOf(a).request<{ escalation: Escalation; already: boolean }>(
    'POST',
    `/api/v1/messages/escalations/${enc(id)}/ack`,
    typeof note === 'string' ? { note } : {},
  );
  if (a.values.json) return printJson(a, r);
  a.io.out(
    r.already
      ? `${id} was already acknowledged${r.escalation.acked ? ` by ${r.escalation.acked.by} at ${iso(r.escalation.acked.at)}` : ''}\n`
      : `acknowledged ${id}: no further step is notified\n`,
  );
  return 0;
}
