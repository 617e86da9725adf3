/**
 * What the Communication Hand adds to the device (hands/sdk/surface.ts), served by the kernel generically:
 *   /api/v1/channels                        GET the channels: health, counters, breaker       (channels:read)
 *   /api/v1/channels/{name}/test            POST a test message now, bypassing the rules      (channels:write)
 *   /api/v1/messages?box=&limit=&before=    GET a page of the outbox, history or inbox        (messages:read)
 *   /api/v1/messages                        POST a notification into the router               (messages:write)
 *   /api/v1/messages/escalations            GET the escalations in progress                   (messages:read)
 *   /api/v1/messages/escalations/{id}/ack   POST acknowledge one by its ack id               (messages:write)
 * Changes are audited (`api.channels.test`, `api.messages.notify`, `api.messages.ack`) before the Hand acts. The
 * platforms' webhooks are not here: the kernel's public webhook route forwards them as the `webhook` request.
 * `talon channels list|test|notify|messages|escalations|ack` (./cli.ts; `talon notify` is `talon channels notify`),
 * its /metrics series (`talon_comms_*`), its page (Messages) and its tools (notify.send, channels.list, …).
 * The kernel's `notify` tool hands notifications to the `notify` request (`notify: 'notify'`).
 *
 * Loaded by the kernel and the CLI at start: keep it light.
 */
import { defineSurface, routeOf, type HandSurface, type MetricFamily } from '../sdk/index.ts';
import {
  ACK_ID_PATTERN,
  CHANNEL_NAME_PATTERN,
  CHANNEL_VIEW_SCHEMA,
  ESCALATION_VIEW_SCHEMA,
  HISTORY_VIEW_SCHEMA,
  INBOX_VIEW_SCHEMA,
  MAX_TEXT,
  NOTIFY_ANSWER_SCHEMA,
  NOTIFY_REQUEST_SCHEMA,
  OUTBOX_VIEW_SCHEMA,
  protocol,
  type CommunicationProtocol,
} from './protocol.ts';

const route = routeOf<CommunicationProtocol>();

const NAME_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', pattern: CHANNEL_NAME_PATTERN, description: 'a channel name' } },
} as const;
const ACK_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: ACK_ID_PATTERN, description: 'the ack id (`K3F9`)' } },
} as const;

/** the notify body as the API takes it: the caller is the source (a person cannot send as a Hand) */
const { source: _source, ...NOTIFY_BODY_PROPS } = NOTIFY_REQUEST_SCHEMA.properties;
export const NOTIFY_BODY = { ...NOTIFY_REQUEST_SCHEMA, properties: NOTIFY_BODY_PROPS } as const;

/** who sent a notification through the API, as Notification.source names them */
export function sourceOf(actor: string): string {
  return actor === 'cli' ? 'cli' : `api:${actor.replace(/^user:/, '')}`;
}

/** a short audit subject for a notification: its title, else the start of its text */
function subjectOf(n: { title?: string; text: string }): string {
  const s = (n.title ?? n.text).replace(/\s+/g, ' ').trim();
  return s.length > 80 ? `${s.slice(0, 79)}…` : s;
}

const ACK_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['escalation', 'already'],
  properties: {
    escalation: ESCALATION_VIEW_SCHEMA,
    already: { type: 'boolean', description: 'it was acknowledged before (nothing changed)' },
  },
} as const;

export const BOXES = ['outbox', 'history', 'inbox'] as const;
export const OUTCOMES = ['sent', 'failed', 'expired'] as const;

const surface: HandSurface<CommunicationProtocol> = {
  id: 'communication',
  title: 'Communication',
  provides: 'notifications',
  notify: 'notify',
  // POST /api/v1/channels/{name}/webhook: public (the platform has no token); the Hand checks the channel's signature
  webhooks: {
    path: '/api/v1/channels/{name}/webhook',
    kind: 'webhook',
    summary: "A webhook channel's inbound message (signed with the channel's secret: X-Talon-Signature)",
  },
  protocol,
  routes: [
    route({
      method: 'GET',
      path: '/api/v1/channels',
      operationId: 'listChannels',
      summary: 'The channels: health, queued and held messages, counters, the breaker, the last error',
      tag: 'channels',
      access: 'read',
      responses: {
        200: {
          description: 'every configured channel (secrets only as `{secret:…}` references)',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['channels'],
            properties: { channels: { type: 'array', items: CHANNEL_VIEW_SCHEMA } },
          },
        },
      },
      handler: ({ request }) => request('channels', {}),
    }),
    route({
      method: 'POST',
      path: '/api/v1/channels/{name}/test',
      operationId: 'testChannel',
      summary: 'Send a test message on a channel now (bypassing the rules and the outbox)',
      tag: 'channels',
      access: 'write',
      params: NAME_PARAMS,
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          text: { type: 'string', minLength: 1, maxLength: MAX_TEXT, description: 'default: a test line' },
        },
      },
      responses: {
        200: {
          description: 'whether the platform took it: its message ids, or the error and its kind',
          schema: protocol.test.answer,
        },
      },
      handler: ({ params, body, audited, request }) =>
        audited({ action: 'api.channels.test', subject: params.name! }, () =>
          request('test', { channel: params.name!, ...(body.text !== undefined ? { text: body.text } : {}) }),
        ),
    }),
    route({
      method: 'GET',
      path: '/api/v1/messages',
      operationId: 'listMessages',
      summary: 'A page of the outbox, the history or the inbox, newest first; `next` is the next page’s `before`',
      tag: 'messages',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: {
          box: { type: 'string', enum: ['outbox', 'history', 'inbox'], default: 'history' },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
          before: { type: 'string', maxLength: 200, description: "the previous page's `next`" },
        },
      },
      responses: {
        200: {
          description: 'entries of the box asked for, newest first',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['messages'],
            properties: {
              messages: {
                type: 'array',
                items: { anyOf: [OUTBOX_VIEW_SCHEMA, HISTORY_VIEW_SCHEMA, INBOX_VIEW_SCHEMA] },
              },
              next: { type: 'string', description: "the next (older) page's `before`; absent: no more" },
            },
          },
        },
      },
      handler: ({ query, request }) =>
        request('messages', {
          box: query.box ?? 'history',
          limit: query.limit ?? 50,
          ...(query.before !== undefined ? { before: query.before } : {}),
        }),
    }),
    route({
      method: 'POST',
      path: '/api/v1/messages',
      operationId: 'sendNotification',
      summary: 'Send a notification: the rules route it (or `to` names the targets); the answer says where it went',
      tag: 'messages',
      access: 'write',
      body: NOTIFY_BODY,
      responses: {
        200: { description: "the notification's id, the router's decisions, its ack id", schema: NOTIFY_ANSWER_SCHEMA },
      },
      handler: ({ caller, body, audited, request }) =>
        audited(
          {
            action: 'api.messages.notify',
            subject: subjectOf(body),
            detail: { priority: body.priority ?? 'normal', ...(body.to ? { to: body.to } : {}) },
          },
          () => request('notify', { ...body, source: sourceOf(caller.actor) }),
        ),
    }),
    route({
      method: 'GET',
      path: '/api/v1/messages/escalations',
      operationId: 'listEscalations',
      summary: 'The escalations waiting for an acknowledgement (`all=true`: the ended ones too)',
      tag: 'messages',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: { all: { type: 'boolean', default: false } },
      },
      responses: {
        200: {
          description: 'escalations, oldest first',
          schema: protocol.escalations.answer,
        },
      },
      handler: ({ query, request }) => request('escalations', query.all ? { all: true } : {}),
    }),
    route({
      method: 'POST',
      path: '/api/v1/messages/escalations/{id}/ack',
      operationId: 'ackEscalation',
      summary: 'Acknowledge an escalation by its ack id: no further step is notified',
      tag: 'messages',
      access: 'write',
      params: ACK_PARAMS,
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { note: { type: 'string', maxLength: 1000 } },
      },
      responses: {
        200: { description: 'the escalation; `already` when it was acknowledged before', schema: ACK_ANSWER },
      },
      handler: ({ caller, params, body, audited, request }) =>
        audited({ action: 'api.messages.ack', subject: params.id! }, () =>
          request('ack', {
            id: params.id!,
            by: caller.actor,
            ...(body.note !== undefined ? { note: body.note } : {}),
          }),
        ),
    }),
  ],
  cli: {
    summary: 'notification channels of the running daemon: list, test, notify, messages, escalations, ack',
    description:
      "Work with the Communication Hand's channels and messages on the running daemon (`talon channels` is the same command; `talon notify` is `talon channels notify`).",
    alias: 'channels',
    topLevel: ['notify'],
    commands: [
      {
        name: 'list',
        summary: 'the channels: kind, health, queued messages, last error',
        description: 'List the channels with their kind, health, queued (and held) messages and last error.',
        daemon: true,
        run: async (a) => (await import('./cli.ts')).listCommand(a),
      },
      {
        name: 'test',
        summary: 'send a test message on a channel now',
        description:
          "Send a test message on one channel now, bypassing the rules and the outbox; prints the platform's answer.",
        positionals: [{ name: 'NAME', required: true, description: 'the channel name' }],
        options: { text: { type: 'string', value: 'TEXT', description: 'the message (default: a test line)' } },
        notes: 'Exit 0 when the platform took the message, 1 when it refused it (the error and its kind are printed).',
        daemon: true,
        run: async (a) => (await import('./cli.ts')).testCommand(a),
      },
      {
        name: 'notify',
        summary: 'send a notification through the rules',
        description:
          'Send a notification: the rules pick the channels (or --to names them); prints where it went and, with --ack, the ack id.',
        positionals: [{ name: 'TEXT', required: true, description: 'the message (Markdown, quote it)' }],
        options: {
          priority: { type: 'string', short: 'p', value: 'P', description: 'low, normal (default), high or critical' },
          to: { type: 'string', value: 'A,B', description: 'targets: channel names, people, or channel:address' },
          title: { type: 'string', value: 'T', description: 'a title (at most 200 characters)' },
          tag: { type: 'string', value: 'a,b', description: 'tags the rules can match' },
          ack: { type: 'boolean', description: 'wait for an acknowledgement; escalate without one' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).notifyCommand(a),
      },
      {
        name: 'messages',
        summary: 'the outbox, the history or the inbox, newest first',
        description:
          'Show messages, newest first: the outbox (queued or held, next try, last error), the history (sent, failed, expired) or the inbox (sender, command, answer).',
        options: {
          box: { type: 'string', value: 'BOX', description: 'outbox, history (default) or inbox' },
          limit: { type: 'string', value: 'N', description: 'how many (1-500, default 20)' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).messagesCommand(a),
      },
      {
        name: 'escalations',
        summary: 'the escalations waiting for an acknowledgement',
        description: 'List the escalations waiting for an acknowledgement: ack id, step, next step due, text.',
        options: { all: { type: 'boolean', description: 'the ended ones too' } },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).escalationsCommand(a),
      },
      {
        name: 'ack',
        summary: 'acknowledge an escalation',
        description: 'Acknowledge an escalation by its ack id: no further step is notified.',
        positionals: [{ name: 'ID', required: true, description: 'the ack id (as the message shows it)' }],
        options: { note: { type: 'string', value: 'TEXT', description: 'a note kept with the acknowledgement' } },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).ackCommand(a),
      },
    ],
  },
  metrics: {
    async collect({ request }) {
      const [stats, { channels }] = await Promise.all([request('stats', {}), request('channels', {})]);
      const byChannel = stats.byChannel as Record<
        string,
        { sent: number; failed: number; queued: number; received: number; expired?: number }
      >;
      const names = [...new Set([...channels.map((c) => c.name), ...Object.keys(byChannel)])].sort();
      const per = (n: string) => byChannel[n] ?? { sent: 0, failed: 0, queued: 0, received: 0 };
      // expired per channel when the Hand counts it so; else the total on a sample without a channel
      const expiredByChannel = names.some((n) => typeof per(n).expired === 'number');
      const families: MetricFamily[] = [
        {
          name: 'talon_comms_messages_total',
          type: 'counter',
          help: 'Messages that left the outbox, by channel and outcome (sent, failed, expired).',
          samples: [
            ...names.flatMap((channel) => [
              { labels: { channel, outcome: 'sent' }, value: per(channel).sent },
              { labels: { channel, outcome: 'failed' }, value: per(channel).failed },
              ...(expiredByChannel
                ? [{ labels: { channel, outcome: 'expired' }, value: per(channel).expired ?? 0 }]
                : []),
            ]),
            ...(expiredByChannel ? [] : [{ labels: { channel: '', outcome: 'expired' }, value: stats.expired }]),
          ],
        },
        {
          name: 'talon_comms_queued',
          type: 'gauge',
          help: 'Messages waiting in the outbox, by channel.',
          samples: names.map((channel) => ({ labels: { channel }, value: per(channel).queued })),
        },
        {
          name: 'talon_comms_held',
          type: 'gauge',
          help: 'Messages held for a digest, quiet hours or a rate limit.',
          samples: [{ value: stats.held }],
        },
        {
          name: 'talon_comms_received_total',
          type: 'counter',
          help: 'Messages received, by channel.',
          samples: names.map((channel) => ({ labels: { channel }, value: per(channel).received })),
        },
        {
          name: 'talon_comms_refused_total',
          type: 'counter',
          help: 'Messages from unknown senders, refused.',
          samples: [{ value: stats.refused }],
        },
        {
          name: 'talon_comms_escalations_open',
          type: 'gauge',
          help: 'Escalations waiting for an acknowledgement.',
          samples: [{ value: stats.escalationsOpen }],
        },
        {
          name: 'talon_comms_channel_up',
          type: 'gauge',
          help: '1 when the channel works (ok or degraded), else 0 (breaker open, credentials refused, not opened).',
          samples: channels.map((c) => ({
            labels: { channel: c.name },
            value: c.health === 'ok' || c.health === 'degraded' ? 1 : 0,
          })),
        },
        {
          name: 'talon_comms_deduped_total',
          type: 'counter',
          help: 'Notifications dropped as duplicates within the dedup window.',
          samples: [{ value: stats.deduped }],
        },
        {
          name: 'talon_comms_unrouted_total',
          type: 'counter',
          help: 'Notifications no rule matched.',
          samples: [{ value: stats.unrouted }],
        },
      ];
      return families;
    },
  },
  page: { label: 'Messages' },
  // for agents, MCP clients and other Hands, under their own tools grant (hands/sdk/surface.ts)
  tools: [
    {
      name: 'notify.send',
      kind: 'notify',
      description:
        'Send a notification to people through the Communication Hand: { text, title?, priority?: low|normal|high|critical, to?: [channel or person], tags?, needsAck? }. The rules pick the channels unless `to` names them; the answer lists where it went (send, hold, drop) and the ack id when needsAck.',
    },
    {
      name: 'channels.list',
      kind: 'channels',
      readOnly: true,
      description: 'List the notification channels: kind, health, queued and held messages, last error.',
    },
    {
      name: 'messages.list',
      kind: 'messages',
      readOnly: true,
      description:
        'A page of messages, newest first: { box: outbox|history|inbox, limit?, before? } (pass the answer’s `next` as `before` for older ones).',
    },
    {
      name: 'escalations.ack',
      kind: 'ack',
      description: 'Acknowledge an escalation by its ack id ({ id, note? }): no further step is notified.',
    },
  ],
};

export default defineSurface(surface);
