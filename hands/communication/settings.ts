/**
 * The Communication Hand's settings (`hands: [{ module: communication, settings: {…} }]`):
 *
 *   channels       name → a channel URL (`tgram://{secret:tg_token}/123456`), or { url, allow?, inbound?, rateLimit? }
 *   people         name → addresses: channel names or `channel:address` (`alice: [ops-telegram:123456, mail:a@x.org]`)
 *   rules          routing rules, in order (./rules.ts): match → to, digest, rateLimit, escalate, continue
 *   default        where a notification no rule matched goes
 *   quietHours     { from, to, timezone? }: all but critical wait until `to`
 *   digestAt       when daily digests go ("08:00")
 *   dedupWindowMs  the same message within it is one message with a count
 *   commands       inbound commands from allow-listed senders: status, ack, approve|deny, help (on by default);
 *                  other text goes, with freeText: { hand: NAME }, to that Hand's chat (the hands.chat tool), or
 *                  with freeText: { tools: [...] }, to an agent run under this Hand's grants (off by default)
 *   autoReply      { template } answered to allow-listed senders' messages that are not commands (off by default)
 *   escalation     { scheduler: "<Hand name>" | null }: escalation timers as the Scheduling Hand's jobs (default
 *                  "scheduler" when it runs), else the Hand's own timers
 *   retry          { maxAgeMs }: how long an undeliverable message is retried before it is kept as expired
 *   retention      { days }: how long the history, the inbox and ended escalations are kept (default 30)
 *
 * The schema below checks the outline only; the insides (URLs, rules, times) are checked by the code that uses them
 * and named in words (`channels.ops: the secret "tg" does not exist…`, `rules[2].match.priority: …`): a mistake in
 * one channel or rule leaves it out and logs why, the rest run.
 */
import type { FromSchema } from '../sdk/index.ts';
import { CHANNEL_NAME_PATTERN } from './protocol.ts';
import { HAND_NAME_PATTERN } from '../../runtime/core/names.ts';

const NAME = CHANNEL_NAME_PATTERN;

export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    channels: {
      type: 'object',
      description: 'name → channel URL (secrets as {secret:name}), or { url, allow, inbound, rateLimit }',
      propertyNames: { pattern: NAME },
      additionalProperties: {
        anyOf: [
          { type: 'string', minLength: 1, maxLength: 2048 },
          {
            type: 'object',
            additionalProperties: false,
            required: ['url'],
            properties: {
              url: { type: 'string', minLength: 1, maxLength: 2048 },
              allow: {
                type: 'array',
                items: { type: 'string', minLength: 1, maxLength: 320 },
                description: 'senders whose messages are commands (ids, addresses, *@example.com)',
              },
              inbound: { type: 'boolean', description: 'receive on this channel (default: true when it can)' },
              rateLimit: {
                type: 'object',
                additionalProperties: false,
                required: ['count', 'perMs'],
                properties: { count: { type: 'integer', minimum: 1 }, perMs: { type: 'integer', minimum: 1000 } },
              },
            },
          },
        ],
      },
      default: {},
    },
    people: {
      type: 'object',
      propertyNames: { pattern: NAME },
      additionalProperties: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 400 } },
      default: {},
    },
    rules: { type: 'array', items: { type: 'object' }, maxItems: 200, default: [] },
    default: { type: 'array', items: { type: 'string' }, default: [] },
    quietHours: { type: 'object' },
    digestAt: { type: 'string' },
    dedupWindowMs: { type: 'integer', minimum: 0, maximum: 86_400_000 },
    commands: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', default: true },
        freeText: {
          type: ['object', 'null'],
          additionalProperties: false,
          description: '{ hand: NAME } (its chat answers) or { tools: [...], maxSteps? } (an agent run)',
          properties: {
            hand: { type: 'string', pattern: HAND_NAME_PATTERN },
            tools: { type: 'array', items: { type: 'string' } },
            maxSteps: { type: 'integer', minimum: 1, maximum: 16 },
          },
        },
      },
    },
    autoReply: {
      type: 'object',
      additionalProperties: false,
      properties: { enabled: { type: 'boolean', default: false }, template: { type: 'string', maxLength: 2000 } },
    },
    escalation: {
      type: 'object',
      additionalProperties: false,
      properties: { scheduler: { type: ['string', 'null'] } },
    },
    retry: {
      type: 'object',
      additionalProperties: false,
      properties: { maxAgeMs: { type: 'integer', minimum: 60_000, maximum: 90 * 86_400_000 } },
    },
    retention: {
      type: 'object',
      additionalProperties: false,
      properties: { days: { type: 'number', minimum: 0.001, maximum: 3650 } },
    },
  },
} as const;

export type CommunicationSettings = FromSchema<typeof settingsSchema>;

export interface ChannelSetting {
  name: string;
  url: string;
  allow: string[];
  inbound: boolean | undefined;
  rateLimit?: { count: number; perMs: number };
}

export interface ParsedSettings {
  channels: ChannelSetting[];
  routing: Record<string, unknown>;
  commands: { enabled: boolean; freeText: { hand?: string; tools?: string[]; maxSteps?: number } | null };
  autoReply: { enabled: boolean; template: string | undefined };
  scheduler: string | null;
  maxAgeMs: number;
  /** history, inbox and ended escalations older than this are deleted */
  retentionMs: number;
  problems: string[];
}

export const DEFAULT_MAX_AGE_MS = 7 * 86_400_000;
export const DEFAULT_RETENTION_DAYS = 30;

/** the settings, defaults filled in; channels as a list; what is wrong is named (the kernel validated the outline) */
export function parseSettings(raw: unknown): ParsedSettings {
  const s = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
  const out: ParsedSettings = {
    channels: [],
    routing: {},
    commands: { enabled: true, freeText: null },
    autoReply: { enabled: false, template: undefined },
    scheduler: 'scheduler',
    maxAgeMs: DEFAULT_MAX_AGE_MS,
    retentionMs: DEFAULT_RETENTION_DAYS * 86_400_000,
    problems: [],
  };
  const chans = (s.channels ?? {}) as Record<string, unknown>;
  for (const [name, v] of Object.entries(chans)) {
    if (!new RegExp(NAME).test(name)) {
      out.problems.push(`channels.${name}: a channel name is lowercase letters, digits, . _ - (at most 64)`);
      continue;
    }
    if (typeof v === 'string') out.channels.push({ name, url: v, allow: [], inbound: undefined });
    else if (typeof v === 'object' && v !== null && typeof (v as { url?: unknown }).url === 'string') {
      const o = v as { url: string; allow?: string[]; inbound?: boolean; rateLimit?: { count: number; perMs: number } };
      out.channels.push({
        name,
        url: o.url,
        allow: o.allow ?? [],
        inbound: o.inbound,
        ...(o.rateLimit && { rateLimit: o.rateLimit }),
      });
    } else out.problems.push(`channels.${name}: must be a channel URL or { url, allow?, inbound?, rateLimit? }`);
  }
  for (const k of ['people', 'rules', 'default', 'quietHours', 'digestAt', 'dedupWindowMs'] as const)
    if (s[k] !== undefined) out.routing[k] = s[k];
  const c = s.commands as ParsedSettings['commands'] | undefined;
  if (c) out.commands = { enabled: c.enabled ?? true, freeText: c.freeText ?? null };
  const ft = out.commands.freeText;
  if (ft && (ft.hand === undefined) === (ft.tools === undefined)) {
    out.problems.push(
      'commands.freeText: name either a Hand ({ hand: NAME }: its chat answers) or tools ({ tools: [...] }: an agent run); free text is answered with the help',
    );
    out.commands.freeText = null;
  }
  const a = s.autoReply as { enabled?: boolean; template?: string } | undefined;
  if (a) {
    out.autoReply = { enabled: a.enabled ?? false, template: a.template };
    if (out.autoReply.enabled && !a.template) {
      out.problems.push(
        'autoReply.template: an auto-reply needs a template (the text sent back); auto-replies are off',
      );
      out.autoReply.enabled = false;
    }
  }
  const e = s.escalation as { scheduler?: string | null } | undefined;
  if (e && e.scheduler !== undefined) out.scheduler = e.scheduler;
  const r = s.retry as { maxAgeMs?: number } | undefined;
  if (r?.maxAgeMs !== undefined) out.maxAgeMs = r.maxAgeMs;
  const keep = s.retention as { days?: number } | undefined;
  if (keep?.days !== undefined) out.retentionMs = Math.round(keep.days * 86_400_000);
  return out;
}
