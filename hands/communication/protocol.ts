/**
 * The Communication Hand's typed requests (hands/sdk/surface.ts), answered by ./index.ts and used by ./surface.ts's
 * routes, its metrics, its tools, the kernel's `notify` tool (runtime/host/hand-services.ts `notifier`: it reads the
 * `notify` answer's `decisions`) and the kernel's public webhook route (it forwards the raw request as `webhook`).
 *
 *   channels     every configured channel: health, counters, breaker (secrets only as `{secret:…}` references)
 *   test         send a message on one channel now, bypassing the rules and the outbox
 *   notify       a notification into the router: its decisions (send, hold, drop) and the ack id when it needs one
 *   messages     a page of the outbox, the history or the inbox, newest first (`before` + `next` page back)
 *   escalations  the escalations in progress (`all`: the ended ones too)
 *   ack          acknowledge an escalation by its ack id
 *   webhook      a platform's push (Slack events, Telegram webhook…): refused signature → BAD_REQUEST
 *   stats        the counters behind /metrics
 *
 * The views are the Hand's records (./types.ts) as JSON; they are open (no additionalProperties: false) so a record
 * that grows a field does not break an answer. Pure data: imported by the kernel (through ./surface.ts) and the worker.
 */
import { defineProtocol } from '../sdk/index.ts';

/** a channel's (or a person's) name, as the config writes it under `channels:`: lowercase letters, digits, . _ - */
export const CHANNEL_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';
/** the short id a person types to acknowledge (`ack K3F9`) */
export const ACK_ID_PATTERN = '^[A-Za-z0-9_-]{1,32}$';
/** the longest notification text, in characters */
export const MAX_TEXT = 4000;
/** the largest webhook body, in characters of the raw body (64 KiB) */
export const MAX_WEBHOOK_BODY = 65_536;

const NONE = { type: 'object', additionalProperties: false, properties: {} } as const;
const MS = { type: 'number', description: 'ms epoch' } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;
const TEXT = { type: 'string' } as const;
const CHANNEL = {
  type: 'string',
  pattern: CHANNEL_NAME_PATTERN,
  description: 'a channel name, as in the config',
} as const;
const ACK_ID = { type: 'string', pattern: ACK_ID_PATTERN, description: 'the ack id people type (`ack K3F9`)' } as const;
export const PRIORITY = {
  type: 'string',
  enum: ['low', 'normal', 'high', 'critical'],
  description: 'default normal; the rules route by it (critical may bypass quiet hours)',
} as const;
const HEALTH = {
  type: 'string',
  enum: ['ok', 'degraded', 'open', 'auth', 'error', 'starting'],
  description:
    'ok: the last send or probe worked; degraded: retrying after errors; open: the breaker is open; auth: credentials refused (a person must fix the secret); error: the channel could not be opened (see `error`); starting: not tried yet',
} as const;
const BREAKER = {
  type: 'object',
  additionalProperties: false,
  required: ['state'],
  properties: {
    state: { type: 'string', enum: ['closed', 'open', 'half-open'] },
    waitUntil: { ...MS, description: 'ms epoch: when an open breaker tries again' },
  },
} as const;

/** one configured channel as the API shows it */
export const CHANNEL_VIEW_SCHEMA = {
  type: 'object',
  required: [
    'name',
    'kind',
    'direction',
    'url',
    'targets',
    'health',
    'queued',
    'held',
    'sent',
    'failed',
    'received',
    'breaker',
  ],
  properties: {
    name: { type: 'string' },
    kind: { type: 'string', description: 'the channel kind (`telegram`, `email`, …)' },
    direction: { type: 'string', enum: ['both', 'out'], description: 'both: sends and receives; out: sends only' },
    url: { type: 'string', description: 'the URL as configured, secrets as `{secret:name}` references' },
    targets: { type: 'array', items: TEXT, description: "the URL's default addresses" },
    health: HEALTH,
    error: { type: 'string', description: 'why the channel could not be opened (a config error)' },
    lastError: { type: 'string', description: 'the last send or receive error' },
    lastOkAt: { ...MS, description: 'ms epoch of the last confirmed send or probe' },
    lastReceivedAt: { ...MS, description: 'ms epoch of the last message received' },
    queued: { ...COUNT, description: 'outbox entries waiting to be sent (or retried)' },
    held: { ...COUNT, description: 'outbox entries held for a digest, quiet hours or a rate limit' },
    sent: { ...COUNT, description: 'messages sent since the Hand started' },
    failed: { ...COUNT, description: 'messages failed for good since the Hand started' },
    received: { ...COUNT, description: 'messages received since the Hand started' },
    breaker: BREAKER,
  },
} as const;

/** what the router decided for one target (./types.ts Decision, flattened) */
export const DECISION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['kind'],
  properties: {
    kind: { type: 'string', enum: ['send', 'hold', 'drop'] },
    channel: { type: 'string' },
    to: { type: 'string', description: 'the address on the channel; absent: its default targets' },
    rule: { type: 'string', description: 'the rule that matched' },
    route: { type: 'string', description: "the rule's route" },
    reason: {
      type: 'string',
      description: 'hold: digest, quiet or rate; drop: duplicate (counted into `group`) or unrouted',
    },
    until: { ...MS, description: 'hold: ms epoch it is released' },
    group: { type: 'string', description: 'drop as duplicate: the message it was counted into' },
  },
} as const;

/** an outbox entry (./types.ts OutboxEntry) */
export const OUTBOX_VIEW_SCHEMA = {
  type: 'object',
  required: [
    'id',
    'notification',
    'channel',
    'rule',
    'route',
    'text',
    'priority',
    'tags',
    'state',
    'attempts',
    'nextAt',
    'createdAt',
  ],
  properties: {
    id: { type: 'string', description: 'the outbox id (the idempotency key)' },
    notification: { type: 'string' },
    channel: { type: 'string' },
    to: { type: 'string' },
    rule: { type: 'string' },
    route: { type: 'string' },
    title: { type: 'string' },
    text: { type: 'string' },
    priority: PRIORITY,
    tags: { type: 'array', items: TEXT },
    ackId: { type: 'string' },
    state: { type: 'string', enum: ['queued', 'sending', 'held'] },
    attempts: COUNT,
    nextAt: { ...MS, description: 'ms epoch: the next try (queued) or the release (held)' },
    createdAt: MS,
    lastError: { type: 'string' },
    holdKey: { type: 'string' },
    holdReason: { type: 'string', enum: ['digest', 'quiet', 'rate'] },
  },
} as const;

/** a message that left the outbox (./types.ts HistoryEntry) */
export const HISTORY_VIEW_SCHEMA = {
  type: 'object',
  required: [
    'id',
    'notification',
    'channel',
    'rule',
    'route',
    'text',
    'priority',
    'outcome',
    'attempts',
    'createdAt',
    'doneAt',
  ],
  properties: {
    id: { type: 'string' },
    notification: { type: 'string' },
    channel: { type: 'string' },
    to: { type: 'string' },
    rule: { type: 'string' },
    route: { type: 'string' },
    title: { type: 'string' },
    text: { type: 'string' },
    priority: PRIORITY,
    outcome: { type: 'string', enum: ['sent', 'failed', 'expired'] },
    attempts: COUNT,
    createdAt: MS,
    doneAt: MS,
    platformIds: { type: 'array', items: TEXT },
    error: { type: 'string' },
    maybeDuplicate: { type: 'boolean', description: 'sent again after a crash mid-send: it may show twice' },
  },
} as const;

/** an inbound message as journalled (./types.ts InboxEntry) */
export const INBOX_VIEW_SCHEMA = {
  type: 'object',
  required: ['id', 'channel', 'platformId', 'from', 'fromBot', 'text', 'at', 'receivedAt', 'sender'],
  properties: {
    id: { type: 'string' },
    channel: { type: 'string' },
    platformId: { type: 'string' },
    from: { type: 'string', description: "the sender's address on the channel" },
    fromName: { type: 'string' },
    fromBot: { type: 'boolean' },
    text: { type: 'string' },
    at: MS,
    replyTo: { type: 'string' },
    receivedAt: MS,
    sender: {
      type: 'string',
      enum: ['allowed', 'unknown', 'bot'],
      description: 'allowed: on the allow list; unknown: refused and audited; bot: ignored',
    },
    handled: {
      type: 'object',
      required: ['command', 'ok', 'at'],
      properties: { command: TEXT, ok: { type: 'boolean' }, answer: TEXT, at: MS },
    },
  },
} as const;

/** an escalation (./types.ts Escalation) */
export const ESCALATION_VIEW_SCHEMA = {
  type: 'object',
  required: ['ackId', 'notification', 'text', 'priority', 'steps', 'step', 'dueAt', 'startedAt'],
  properties: {
    ackId: { type: 'string' },
    notification: { type: 'string' },
    title: { type: 'string' },
    text: { type: 'string' },
    priority: PRIORITY,
    steps: {
      type: 'array',
      items: {
        type: 'object',
        required: ['to', 'afterMs'],
        properties: { to: { type: 'array', items: TEXT }, afterMs: { type: 'number' } },
      },
    },
    step: { ...COUNT, description: 'the step last notified (0: the first)' },
    dueAt: { ...MS, description: 'ms epoch the next step is due' },
    startedAt: MS,
    acked: {
      type: 'object',
      required: ['by', 'at'],
      properties: { by: TEXT, at: MS, channel: TEXT },
    },
    ended: { type: 'string', enum: ['acked', 'exhausted'] },
    job: { type: 'string', description: "the Scheduling Hand's job firing the next step" },
    ref: {
      type: 'object',
      required: ['kind', 'id'],
      properties: { kind: { type: 'string', enum: ['alert', 'approval'] }, id: TEXT },
    },
  },
} as const;

/** the body of a notification (the `notify` request; POST /api/v1/messages) */
export const NOTIFY_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['text'],
  properties: {
    text: { type: 'string', minLength: 1, maxLength: MAX_TEXT, description: 'Markdown, 1-4000 characters' },
    title: { type: 'string', maxLength: 200 },
    priority: PRIORITY,
    to: {
      type: 'array',
      maxItems: 50,
      items: { type: 'string', minLength: 1, maxLength: 320 },
      description: 'channel names, people, or `channel:address`; absent: the rules decide',
    },
    tags: { type: 'array', maxItems: 20, items: { type: 'string', minLength: 1, maxLength: 64 } },
    needsAck: { type: 'boolean', description: 'wait for an acknowledgement and escalate without one' },
    source: {
      type: 'string',
      maxLength: 200,
      description: 'who sends it (`hand:<name>`, `api:<user>`, `cli`); the REST route sets the caller',
    },
  },
} as const;

export const NOTIFY_ANSWER_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'decisions'],
  properties: {
    id: { type: 'string', description: "the notification's id" },
    decisions: { type: 'array', items: DECISION_SCHEMA },
    ackId: { type: 'string', description: 'the id to acknowledge it with, when it needs an acknowledgement' },
  },
} as const;

const BOX = {
  type: 'string',
  enum: ['outbox', 'history', 'inbox'],
  description: 'outbox: waiting or held; history: sent, failed or expired; inbox: received',
} as const;

export const STATS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [
    'sent',
    'failed',
    'expired',
    'queued',
    'held',
    'received',
    'refused',
    'escalationsOpen',
    'byChannel',
    'routed',
    'deduped',
    'unrouted',
  ],
  properties: {
    sent: { ...COUNT, description: 'messages sent since the Hand started' },
    failed: { ...COUNT, description: 'messages failed for good' },
    expired: { ...COUNT, description: 'messages dropped unsent past their lifetime' },
    queued: { ...COUNT, description: 'outbox entries waiting (now)' },
    held: { ...COUNT, description: 'outbox entries held (now)' },
    received: { ...COUNT, description: 'messages received' },
    refused: { ...COUNT, description: 'messages from unknown senders, refused' },
    escalationsOpen: { ...COUNT, description: 'escalations waiting for an acknowledgement (now)' },
    byChannel: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['sent', 'failed', 'queued', 'received'],
        properties: { sent: COUNT, failed: COUNT, queued: COUNT, received: COUNT, expired: COUNT },
      },
    },
    routed: { ...COUNT, description: 'notifications the rules sent or held' },
    deduped: { ...COUNT, description: 'notifications dropped as duplicates' },
    unrouted: { ...COUNT, description: 'notifications no rule matched' },
  },
} as const;

export const protocol = defineProtocol({
  channels: {
    summary: 'every configured channel: health, counters, breaker',
    request: NONE,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['channels'],
      properties: { channels: { type: 'array', items: CHANNEL_VIEW_SCHEMA } },
    },
  },
  test: {
    summary: 'send a test message on one channel now, bypassing the rules and the outbox',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['channel'],
      properties: {
        channel: CHANNEL,
        text: {
          type: 'string',
          minLength: 1,
          maxLength: MAX_TEXT,
          description: 'default: a test line naming the device',
        },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['ok'],
      properties: {
        ok: { type: 'boolean' },
        platformIds: { type: 'array', items: TEXT },
        error: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'message'],
          properties: {
            kind: {
              type: 'string',
              enum: ['auth', 'rate', 'transient', 'permanent', 'config'],
              description: "a ChannelError's kind; config: the channel could not be opened",
            },
            message: TEXT,
          },
        },
      },
    },
  },
  notify: {
    summary: 'a notification into the router: where it goes, and its ack id when it needs one',
    request: NOTIFY_REQUEST_SCHEMA,
    answer: NOTIFY_ANSWER_SCHEMA,
  },
  messages: {
    summary: 'a page of the outbox, the history or the inbox, newest first',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['box'],
      properties: {
        box: BOX,
        limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
        before: { type: 'string', maxLength: 200, description: "the previous page's `next`" },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['messages'],
      properties: {
        messages: { type: 'array', items: { type: 'object' }, description: 'outbox, history or inbox entries' },
        next: { type: 'string', description: "the next (older) page's `before`; absent: no more" },
      },
    },
  },
  escalations: {
    summary: 'the escalations in progress (all: the ended ones too)',
    request: {
      type: 'object',
      additionalProperties: false,
      properties: { all: { type: 'boolean', description: 'the ended ones too (acked or exhausted)' } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['escalations'],
      properties: { escalations: { type: 'array', items: ESCALATION_VIEW_SCHEMA } },
    },
  },
  ack: {
    summary: 'acknowledge an escalation by its ack id',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: {
        id: ACK_ID,
        by: { type: 'string', maxLength: 200, description: 'who acknowledges (default: the caller)' },
        note: { type: 'string', maxLength: 1000 },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['escalation', 'already'],
      properties: {
        escalation: ESCALATION_VIEW_SCHEMA,
        already: { type: 'boolean', description: 'it was acknowledged before (nothing changed)' },
      },
    },
  },
  webhook: {
    summary: "a platform's push to the public webhook route; a refused signature is BAD_REQUEST",
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['channel', 'headers', 'body'],
      properties: {
        channel: CHANNEL,
        headers: {
          type: 'object',
          additionalProperties: { type: 'string' },
          description: 'the request headers, names lower case',
        },
        body: { type: 'string', maxLength: MAX_WEBHOOK_BODY, description: 'the raw body (signatures cover it)' },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['accepted'],
      properties: { accepted: { type: 'boolean' } },
    },
  },
  stats: {
    summary: "the Hand's counters (for /metrics)",
    request: NONE,
    answer: STATS_SCHEMA,
  },
});

export type CommunicationProtocol = typeof protocol;
