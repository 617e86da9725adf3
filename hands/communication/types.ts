/**
 * The Communication Hand's own records: a notification as it arrives, the router's decisions, the outbox's and the
 * inbox's entries. Kept in the Hand's store (keys in ./outbox.ts and ./inbox.ts); the channels' side is
 * ./channels/types.ts.
 */
import type { InMessage, Priority } from './channels/types.ts';

export type { Priority };

/** a notification as it arrives: from the bus, the notify tool, the REST API or the CLI */
export interface Notification {
  /** the Hand's id for it (time-ordered, unique) */
  id: string;
  /** who sent it: `hand:<name>`, `api:<user>`, `cli`, `tool:<actor>`, `bus` */
  source: string;
  /** the bus topic it came on, relative to the device root (`notify/high`, `alerts/critical`), or `api` / `cli` / `tool` */
  topic: string;
  priority: Priority;
  title?: string;
  /** Markdown */
  text: string;
  tags: string[];
  /** explicit targets: channel names, people's names, or `channel:address`; absent: the rules decide */
  to?: string[];
  /** the same key within the dedup window is one message with a count (default: a hash of source, title, text) */
  dedupKey?: string;
  /** wait for an acknowledgement and escalate without one (also set by a rule with `escalate`) */
  needsAck?: boolean;
  /** ms epoch it arrived */
  at: number;
  /** what it is about, when it is an alert or an approval request (acks and approvals go back there) */
  ref?: { kind: 'alert' | 'approval'; id: string };
}

/** one channel address a notification goes to */
export interface Target {
  channel: string;
  /** an address on the channel; absent: the channel URL's own targets */
  to?: string;
}

/** what the router decided for one target of one notification */
export type Decision =
  | { kind: 'send'; target: Target; rule: string; route: string }
  /** held until `until` (ms epoch): a digest, quiet hours, or over the route's rate limit; then sent together */
  | { kind: 'hold'; target: Target; rule: string; route: string; until: number; reason: 'digest' | 'quiet' | 'rate' }
  /** not sent on its own: a duplicate within the window (counted into `group`), or no rule matched */
  | { kind: 'drop'; reason: 'duplicate' | 'unrouted'; rule?: string; group?: string };

export type OutboxState =
  /** waiting to be sent (or to be retried at nextAt) */
  | 'queued'
  /** handed to the platform; a crash now means "maybe sent" (retried with OutMessage.retry) */
  | 'sending'
  /** held for a digest / quiet hours / a rate limit until nextAt */
  | 'held';

/** an outbox entry: stored (synced) before the send, removed (into history) once the platform confirmed */
export interface OutboxEntry {
  /** the outbox id: the OutMessage id, the idempotency key */
  id: string;
  notification: string;
  channel: string;
  to?: string;
  rule: string;
  route: string;
  title?: string;
  text: string;
  priority: Priority;
  tags: string[];
  /** the short id a person types to acknowledge (`ack K3F9`) when the message needs one */
  ackId?: string;
  state: OutboxState;
  attempts: number;
  /** ms epoch: the next try (queued), the release (held) */
  nextAt: number;
  createdAt: number;
  lastError?: string;
  /** digest/rate holds: the key entries released together share (channel, address, route) */
  holdKey?: string;
  holdReason?: 'digest' | 'quiet' | 'rate';
  /** it was `sending` when the Hand stopped (a crash): the platform may already have it; sent again with retry */
  maybeSent?: boolean;
}

export type HistoryOutcome = 'sent' | 'failed' | 'expired';

/** what stays of a message once it left the outbox */
export interface HistoryEntry {
  id: string;
  notification: string;
  channel: string;
  to?: string;
  rule: string;
  route: string;
  title?: string;
  text: string;
  priority: Priority;
  outcome: HistoryOutcome;
  attempts: number;
  createdAt: number;
  doneAt: number;
  platformIds?: string[];
  error?: string;
  /** sent again after a crash mid-send: the platform may show it twice */
  maybeDuplicate?: boolean;
  /** released from a hold inside the digest message with this outbox id (which carries the text on from here) */
  digest?: string;
}

/** an inbound message as journalled (before its channel's cursor moves) */
export interface InboxEntry extends InMessage {
  channel: string;
  /** the Hand's id: `<channel>/<platformId>` hashed into the key (./inbox.ts) */
  id: string;
  receivedAt: number;
  /** allow-listed sender, unknown sender (refused and audited), or the bot/another bot (ignored) */
  sender: 'allowed' | 'unknown' | 'bot';
  /** what came of it: the command run and its answer, or why nothing */
  handled?: { command: string; ok: boolean; answer?: string; at: number };
}

/** an escalation in progress: one notification waiting for an acknowledgement */
export interface Escalation {
  /** the ack id people type */
  ackId: string;
  notification: string;
  title?: string;
  text: string;
  priority: Priority;
  /** the chain: each step's targets and how long to wait for an ack before the next */
  steps: Array<{ to: string[]; afterMs: number }>;
  /** the step last notified (0: the first) */
  step: number;
  /** ms epoch the next step is due */
  dueAt: number;
  startedAt: number;
  acked?: { by: string; at: number; channel?: string };
  ended?: 'acked' | 'exhausted';
  /** the Scheduling Hand's job id that fires the next step, when a scheduler runs the timers */
  job?: string;
  ref?: Notification['ref'];
}
