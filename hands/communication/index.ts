/**
 * The Communication Hand: notifications from the device's Hands, the notify tool, the API and the CLI go through
 * routing rules (./rules.ts, ./router.ts: priorities, quiet hours, digests, dedup, rate limits) into a durable outbox
 * (./outbox.ts) that sends them on channels (./channels/: e-mail, Telegram, Slack, Discord, Matrix, ntfy, MQTT,
 * webhooks, Teams, Google Chat, Pushover, Gotify, Twilio, Home Assistant) with retries, a circuit breaker per
 * channel and the platforms' rate limits; escalations (./escalation.ts) go to the next step of a chain until someone
 * acknowledges; replies and commands come back through a journalled inbox (./inbox.ts, ./commands.ts) from
 * allow-listed senders only.
 *
 * Bus (relative to talon/<deviceId>/):
 *   notify/<priority>        in: { text, title?, tags?, to?, needsAck?, dedupKey? } or plain text, from any Hand
 *                            granted to publish there
 *   alerts/<severity>        in: the Monitoring Hand's alert events (firing / flapping / resolved)
 *   approvals/<id>           in: approval requests of the agent loop (retained while they wait)
 *   hands/<name>/tasks       in: { op: 'notify', … } | { op: 'ack', id } through the task protocol (../sdk/tasks.ts)
 *   hands/<name>/escalate    in: { ackId, step } from the Scheduling Hand's escalation jobs
 * Kernel services: secrets.get (channel URLs' {secret:…} references), approvals.decide (`approve <id>` replies).
 * Audit: communication.message.sent|failed|expired|received|refused, communication.notify.unrouted,
 * communication.escalation.start|step|ack|exhausted, communication.channel.error; the body only as a hash.
 */
import { createHash } from 'node:crypto';
import { defineHand, type AnswerOf, type RequestOf } from '../sdk/index.ts';
import type { BusMessageIn, HandContext } from '../sdk/types.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { serveTasks } from '../sdk/tasks.ts';
import { kindOfScheme } from './channels/index.ts';
import { isWebhookChannel } from './channels/webhook.ts';
import { parseChannelUrl, schemeOf } from './channels/url.ts';
import {
  ChannelConfigError,
  ChannelError,
  PRIORITIES,
  type Channel,
  type ChannelEnv,
  type ChannelKind,
  type Priority,
} from './channels/types.ts';
import { parseCommand, runCommandResult } from './commands.ts';
import { Escalations, localTimers, preferTimers, schedulerTimers, type EscalationTimers } from './escalation.ts';
import { Inbox } from './inbox.ts';
import { Outbox } from './outbox.ts';
import { protocol, type CommunicationProtocol } from './protocol.ts';
import { parseRouting, type Routing } from './rules.ts';
import { Router, escalationFor, type GroupSummary, type RouterSnapshot } from './router.ts';
import { parseSettings, settingsSchema, type ParsedSettings } from './settings.ts';
import type { Decision, Escalation, HistoryEntry, InboxEntry, Notification, OutboxEntry, Target } from './types.ts';

type Req<K extends keyof CommunicationProtocol & string> = RequestOf<CommunicationProtocol, K>;
type Ans<K extends keyof CommunicationProtocol & string> = AnswerOf<CommunicationProtocol, K>;

/** how often dedup summaries are collected and the router's state saved */
const TICK_MS = 5000;
/** how often what is past its retention is deleted */
const PRUNE_MS = 3600_000;
const SNAPSHOT_KEY = 'router/snapshot';
const MAX_TEXT = 4000;
/** a message that needs an ack but has no escalation chain: how long the ack is waited for */
const UNESCALATED_ACK_MS = 24 * 3600_000;

interface ChannelSlot {
  name: string;
  url: string;
  kind?: ChannelKind;
  channel?: Channel;
  /** the channel could not be opened: why */
  error?: string;
  allow: string[];
}

export interface CommunicationHandOptions {
  clock?: { now(): number };
  random?: () => number;
}

function hashText(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 32);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const SEVERITY_PRIORITY: Record<string, Priority> = { critical: 'critical', warning: 'high', info: 'normal' };

const strings = (v: unknown, max: number): string[] | undefined =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '').slice(0, max) : undefined;

/** a `{ op: 'notify', … }` task from another Hand, checked as the API checks its body (a refusal names the field) */
export function notifyTask(t: Record<string, unknown>): Req<'notify'> {
  if (typeof t.text !== 'string' || t.text.trim() === '' || t.text.length > MAX_TEXT)
    throw new TalonError('BAD_REQUEST', `text: a notification needs a text of 1 to ${MAX_TEXT} characters`);
  if (t.priority !== undefined && !(PRIORITIES as readonly unknown[]).includes(t.priority))
    throw new TalonError(
      'BAD_REQUEST',
      `priority: ${JSON.stringify(t.priority)} is not one of ${PRIORITIES.join(', ')}`,
    );
  if (t.title !== undefined && (typeof t.title !== 'string' || t.title.length > 200))
    throw new TalonError('BAD_REQUEST', 'title: at most 200 characters');
  const to = strings(t.to, 20);
  const tags = strings(t.tags, 20);
  return {
    text: t.text,
    ...(t.priority !== undefined && { priority: t.priority as Priority }),
    ...(typeof t.title === 'string' && { title: t.title }),
    ...(to && { to }),
    ...(tags && { tags }),
    ...(t.needsAck === true && { needsAck: true }),
  };
}

export class CommunicationHand {
  readonly ctx: HandContext;
  readonly settings: ParsedSettings;
  readonly slots = new Map<string, ChannelSlot>();
  routing!: Routing;
  router!: Router;
  outbox!: Outbox;
  inbox!: Inbox;
  escalations!: Escalations;
  #clock: { now(): number };
  #random: () => number;
  #unsubs: Array<() => Promise<void>> = [];
  #stopTick: (() => void) | undefined;
  #counters = { refused: 0, unrouted: 0, deduped: 0, routed: 0 };
  #prunedAt = 0;
  /** the router state last written (JSON), so an idle tick writes nothing */
  #savedRouter: string | undefined;

  constructor(ctx: HandContext, opts: CommunicationHandOptions = {}) {
    this.ctx = ctx;
    this.#clock = opts.clock ?? { now: () => Date.now() };
    this.#random = opts.random ?? Math.random;
    this.settings = parseSettings(ctx.settings);
  }

  get env(): ChannelEnv {
    return {
      fetch: this.ctx.fetch,
      bus: this.ctx.bus,
      log: this.ctx.log,
      now: () => this.#clock.now(),
      self: this.ctx.name,
    };
  }

  async #secret(name: string): Promise<string | undefined> {
    const v = await this.ctx.call<string | null>('secrets.get', name);
    return typeof v === 'string' ? v : undefined;
  }

  /** one channel from its URL; what is wrong is kept on the slot (shown by `channels`, audited) */
  async #open(slot: ChannelSlot): Promise<void> {
    const scheme = schemeOf(slot.url);
    const known = scheme !== undefined ? kindOfScheme(scheme) : undefined;
    if (known) slot.kind = known;
    try {
      const u = await parseChannelUrl(slot.url, (n) => this.#secret(n));
      const kind = known;
      if (!kind) throw new ChannelConfigError(`"${u.scheme}://" is not a channel kind Talon knows`);
      const raw = typeof kind.raw === 'function' ? kind.raw(u) : kind.raw;
      if (raw && !this.ctx.grants.network.raw)
        throw new ChannelConfigError(
          `a ${kind.kind} channel needs raw sockets: grant the Hand capabilities.network { raw: true } in its config`,
        );
      slot.channel = kind.create(u, this.env, slot.name);
    } catch (err) {
      slot.error = errorText(err);
      this.ctx.log.warn(`channels.${slot.name}: ${slot.error}`);
      await this.ctx.audit('channel.error', slot.name, { decision: 'error', detail: { error: slot.error } });
    }
  }

  async start(): Promise<void> {
    const { ctx } = this;
    for (const p of this.settings.problems) ctx.log.warn(`settings: ${p}`);
    for (const c of this.settings.channels) {
      const slot: ChannelSlot = { name: c.name, url: c.url, allow: c.allow };
      this.slots.set(c.name, slot);
      await this.#open(slot);
    }
    const rates = Object.fromEntries(
      this.settings.channels.flatMap((c) => (c.rateLimit ? [[c.name, c.rateLimit]] : [])),
    );
    const parsed = parseRouting(this.settings.routing, new Set(this.slots.keys()), { channelRateLimits: rates });
    for (const p of parsed.problems) ctx.log.warn(`settings: ${p}`);
    this.routing = parsed.routing;
    this.router = new Router(this.routing, this.#clock);
    const snap = await ctx.store.get<RouterSnapshot>(SNAPSHOT_KEY);
    if (snap) {
      try {
        this.router.restore(snap);
        this.#savedRouter = JSON.stringify(this.router.snapshot());
      } catch (err) {
        ctx.log.warn(`the router's saved state is unreadable and was reset: ${errorText(err)}`);
      }
    }
    const open = [...this.slots.values()].flatMap((s) => (s.channel ? [s.channel] : []));
    this.outbox = new Outbox({
      store: ctx.store,
      channels: open,
      clock: this.#clock,
      timers: ctx.timers,
      random: this.#random,
      log: ctx.log,
      maxAgeMs: this.settings.maxAgeMs,
      onSent: (h) => this.#auditMessage('message.sent', h, 'ok'),
      onFailed: (h) => this.#auditMessage('message.failed', h, 'error'),
      onExpired: (h) => this.#auditMessage('message.expired', h, 'error'),
    });
    const inbound = open.filter((c) => {
      const s = this.settings.channels.find((x) => x.name === c.name);
      return s?.inbound !== false;
    });
    this.inbox = new Inbox({
      store: ctx.store,
      channels: inbound,
      clock: this.#clock,
      timers: ctx.timers,
      allow: Object.fromEntries([...this.slots.values()].map((s) => [s.name, s.allow])),
      onMessage: (e) => this.#onInbound(e),
      log: ctx.log,
    });
    this.escalations = new Escalations({
      store: ctx.store,
      clock: this.#clock,
      timers: this.#escalationTimers(),
      notifyStep: (esc, step) => this.#escalationStep(esc, step),
      random: this.#random,
      log: ctx.log,
    });
    const recovered = await this.outbox.start();
    if (recovered.recovered > 0)
      ctx.log.warn(`outbox: ${recovered.recovered} message(s) were being sent when the Hand stopped; sending again`);
    await this.escalations.resume();
    await this.inbox.start();
    await this.#subscribe();
    this.#stopTick = ctx.timers.every(TICK_MS, () => this.tick());
    ctx.log.info(
      `${open.length} of ${this.slots.size} channel(s) open, ${this.routing.rules.length} rule(s); outbox: ${recovered.queued} queued, ${recovered.held} held`,
    );
  }

  async stop(): Promise<void> {
    this.#stopTick?.();
    for (const u of this.#unsubs.splice(0)) await u().catch(() => {});
    await this.#saveRouter().catch(() => {});
    await this.inbox?.stop();
    await this.outbox?.stop();
    for (const s of this.slots.values()) await s.channel?.close?.().catch(() => {});
  }

  /** the Scheduling Hand's jobs while it answers (they show on its page), the Hand's own timers otherwise */
  #escalationTimers(): EscalationTimers {
    const local = localTimers(this.ctx.timers, this.#clock, (ackId, step) => this.escalations.fire(ackId, step));
    const sched = this.settings.scheduler;
    if (!sched) return local;
    return preferTimers(schedulerTimers(this.ctx, sched, this.ctx.name), local, this.ctx.log);
  }

  async #subscribe(): Promise<void> {
    const { ctx } = this;
    const sub = async (filter: string, fn: (m: BusMessageIn) => void | Promise<void>): Promise<void> => {
      try {
        this.#unsubs.push(await ctx.bus.subscribe(filter, fn));
      } catch (err) {
        ctx.log.warn(`not listening on ${filter}: ${errorText(err)}`);
      }
    };
    await sub('notify/+', (m) => this.#fromNotifyTopic(m));
    await sub('alerts/+', (m) => this.#fromAlert(m));
    await sub('approvals/+', (m) => this.#fromApproval(m));
    await sub(`hands/${ctx.name}/escalate`, async (m) => {
      const p = m.json as { ackId?: unknown; step?: unknown } | undefined;
      if (typeof p?.ackId === 'string' && typeof p.step === 'number') await this.escalations.fire(p.ackId, p.step);
    });
    this.#unsubs.push(
      await serveTasks(ctx, async (task) => {
        const t = task as { op?: string } & Record<string, unknown>;
        if (t.op === 'notify') return this.notify(notifyTask(t), `hand:${String(t.from ?? 'task').slice(0, 64)}`);
        if (t.op === 'ack') return this.ack({ id: String(t.id), by: String(t.by ?? 'task') });
        throw new TalonError('BAD_REQUEST', 'a task is { op: "notify", text, … } or { op: "ack", id }');
      }),
    );
  }

  // ---- what arrives --------------------------------------------------------------------------------------------

  #fromNotifyTopic(m: BusMessageIn): void {
    const level = m.topic.split('/').pop() ?? 'normal';
    const priority = (PRIORITIES as readonly string[]).includes(level) ? (level as Priority) : 'normal';
    const p = (typeof m.json === 'object' && m.json !== null ? m.json : { text: m.text }) as Record<string, unknown>;
    if (typeof p.text !== 'string' || p.text.trim() === '') {
      this.ctx.log.warn(`${m.topic}: a notification needs { text } (or a plain-text payload); left out`);
      return;
    }
    void this.notify(
      {
        text: p.text.slice(0, MAX_TEXT),
        priority,
        ...(typeof p.title === 'string' && { title: p.title.slice(0, 200) }),
        ...(Array.isArray(p.tags) && { tags: p.tags.filter((x): x is string => typeof x === 'string') }),
        ...(Array.isArray(p.to) && { to: p.to.filter((x): x is string => typeof x === 'string') }),
        ...(p.needsAck === true && { needsAck: true }),
      },
      typeof p.source === 'string' ? p.source : 'bus',
      { topic: m.topic, ...(typeof p.dedupKey === 'string' && { dedupKey: p.dedupKey }) },
    ).catch((err) => this.ctx.log.warn(`${m.topic}: ${errorText(err)}`));
  }

  #fromAlert(m: BusMessageIn): void {
    const a = m.json as
      | {
          id?: string;
          sensor?: string;
          rule?: string;
          severity?: string;
          state?: string;
          message?: string;
          suggestedFix?: string;
        }
      | undefined;
    if (!a || typeof a.id !== 'string' || typeof a.message !== 'string') return;
    if (a.state === 'resolved') {
      void this.escalations.ackByRef('alert', a.id, 'resolved').catch(() => {});
    }
    const priority = a.state === 'resolved' ? 'normal' : (SEVERITY_PRIORITY[a.severity ?? ''] ?? 'normal');
    const title =
      `${a.state === 'resolved' ? 'Resolved' : (a.severity ?? 'alert').toUpperCase()}: ${a.sensor ?? ''} ${a.rule ?? ''}`.trim();
    const text = a.suggestedFix && a.state !== 'resolved' ? `${a.message}\n\n${a.suggestedFix}` : a.message;
    void this.notify(
      {
        text: text.slice(0, MAX_TEXT),
        title: title.slice(0, 200),
        priority,
        tags: ['alert', a.rule ?? ''].filter(Boolean),
      },
      'hand:monitoring',
      { topic: m.topic, dedupKey: `alert:${a.id}:${a.state}`, ref: { kind: 'alert', id: a.id } },
    ).catch((err) => this.ctx.log.warn(`${m.topic}: ${errorText(err)}`));
  }

  #fromApproval(m: BusMessageIn): void {
    const a = m.json as { id?: string; state?: string; tool?: string; actor?: string; reason?: string } | undefined;
    if (!a || typeof a.id !== 'string' || a.state !== 'pending') return;
    const text = `${a.actor ?? 'someone'} asks to run **${a.tool ?? '?'}**${a.reason ? `: ${a.reason}` : ''}.\n\nReply \`approve ${a.id}\` or \`deny ${a.id} [reason]\`.`;
    void this.notify(
      { text, title: `Approval needed: ${a.tool ?? ''}`.slice(0, 200), priority: 'high', tags: ['approval'] },
      'kernel:approvals',
      { topic: m.topic, dedupKey: `approval:${a.id}`, ref: { kind: 'approval', id: a.id } },
    ).catch((err) => this.ctx.log.warn(`${m.topic}: ${errorText(err)}`));
  }

  /** a notification in: routed, its messages in the outbox (durable) before this resolves */
  async notify(
    q: Req<'notify'>,
    source: string,
    extra: { topic?: string; dedupKey?: string; ref?: Notification['ref'] } = {},
  ): Promise<Ans<'notify'>> {
    const now = this.#clock.now();
    const n: Notification = {
      id: this.outbox.newId(),
      source: q.source ?? source,
      topic: extra.topic ?? (source.startsWith('api') ? 'api' : source),
      priority: q.priority ?? 'normal',
      text: q.text,
      tags: q.tags ?? [],
      at: now,
      ...(q.title !== undefined && { title: q.title }),
      ...(q.to !== undefined && q.to.length > 0 && { to: q.to }),
      ...(q.needsAck && { needsAck: true }),
      ...(extra.dedupKey !== undefined && { dedupKey: extra.dedupKey }),
      ...(extra.ref !== undefined && { ref: extra.ref }),
    };
    if (n.to) {
      const unknown = n.to.filter((r) => !this.#knownRef(r));
      if (unknown.length > 0)
        throw new TalonError(
          'BAD_REQUEST',
          `to: ${unknown.map((u) => JSON.stringify(u)).join(', ')} is neither a channel nor a person (channels: ${[...this.slots.keys()].join(', ') || 'none'}; people: ${[...this.routing.people.keys()].join(', ') || 'none'})`,
        );
    }
    const decisions = this.router.route(n);
    const esc = escalationFor(this.routing, decisions);
    const needsAck = n.needsAck === true || esc !== undefined;
    const ackId = needsAck ? this.escalations.newAckId() : undefined;
    const entries = decisions.flatMap((d) => this.#entries(n, d, ackId));
    await this.outbox.enqueue(entries);
    for (const d of decisions) {
      if (d.kind === 'send' || d.kind === 'hold') this.#counters.routed++;
      else if (d.reason === 'duplicate') this.#counters.deduped++;
      else {
        this.#counters.unrouted++;
        await this.ctx.audit('notify.unrouted', n.id, {
          decision: 'info',
          detail: { source: n.source, topic: n.topic, priority: n.priority, body: hashText(n.text) },
        });
      }
    }
    if (ackId !== undefined && entries.length > 0) {
      // the chain: the message just routed, waiting the first step's time; then each step's targets in turn, the
      // last one waiting as long as it before the escalation ends unacknowledged (no steps: an ack is only tracked)
      const first = [...new Set(entries.map((e) => (e.to !== undefined ? `${e.channel}:${e.to}` : e.channel)))];
      const rs = esc?.steps ?? [];
      const steps =
        rs.length === 0
          ? [{ to: first, afterMs: UNESCALATED_ACK_MS }]
          : [
              { to: first, afterMs: rs[0]!.afterMs },
              ...rs.map((r, i) => ({ to: r.to, afterMs: (rs[i + 1] ?? r).afterMs })),
            ];
      await this.escalations.start(n, steps, ackId);
      await this.ctx.audit('escalation.start', ackId, {
        decision: 'info',
        detail: { notification: n.id, steps: rs.length },
      });
    }
    return {
      id: n.id,
      decisions: decisions.map((d) =>
        d.kind === 'drop'
          ? {
              kind: 'drop',
              reason: d.reason,
              ...(d.rule !== undefined && { rule: d.rule }),
              ...(d.group !== undefined && { group: d.group }),
            }
          : {
              kind: d.kind,
              channel: d.target.channel,
              ...(d.target.to !== undefined && { to: d.target.to }),
              rule: d.rule,
              route: d.route,
              ...(d.kind === 'hold' && { reason: d.reason, until: d.until }),
            },
      ) as Ans<'notify'>['decisions'],
      ...(ackId !== undefined && entries.length > 0 && { ackId }),
    };
  }

  #knownRef(r: string): boolean {
    const [ch] = r.split(':', 1);
    return this.slots.has(r) || this.routing.people.has(r) || (ch !== undefined && this.slots.has(ch));
  }

  /** the outbox entries of one decision (none for a drop) */
  #entries(n: Notification, d: Decision, ackId: string | undefined, note?: string): OutboxEntry[] {
    if (d.kind === 'drop') return [];
    const now = this.#clock.now();
    const ack = ackId !== undefined ? `\n\nReply \`ack ${ackId}\` to acknowledge.` : '';
    return [
      {
        id: this.outbox.newId(),
        notification: n.id,
        channel: d.target.channel,
        ...(d.target.to !== undefined && { to: d.target.to }),
        rule: d.rule,
        route: d.route,
        ...(n.title !== undefined && { title: n.title }),
        text: `${note ?? ''}${n.text}${ack}`,
        priority: n.priority,
        tags: n.tags,
        ...(ackId !== undefined && { ackId }),
        state: d.kind === 'hold' ? 'held' : 'queued',
        attempts: 0,
        nextAt: d.kind === 'hold' ? d.until : now,
        createdAt: now,
        ...(d.kind === 'hold' && { holdKey: `${d.route}|${d.reason}`, holdReason: d.reason }),
      },
    ];
  }

  /** dedup summaries whose window ended go out; the router's state is saved (every TICK_MS; tests call it) */
  async tick(): Promise<void> {
    const now = this.#clock.now();
    if (now - this.#prunedAt >= PRUNE_MS) {
      this.#prunedAt = now;
      await this.prune(now - this.settings.retentionMs).catch((err) => this.ctx.log.warn(`prune: ${errorText(err)}`));
    }
    const summaries = this.router.due(now);
    for (const g of summaries)
      await this.#summary(g).catch((err) => this.ctx.log.warn(`dedup summary: ${errorText(err)}`));
    await this.#saveRouter().catch(() => {});
  }

  async #summary(g: GroupSummary): Promise<void> {
    const mins = Math.max(1, Math.round((g.until - g.since) / 60_000));
    const what = g.first.title ?? g.first.text.split('\n')[0]!.slice(0, 120);
    const n: Notification = {
      ...g.last,
      id: this.outbox.newId(),
      title: `${what} — repeated ${g.count} more time${g.count === 1 ? '' : 's'} in ${mins} min`,
      text: `Last at ${new Date(g.last.at).toISOString()}:\n\n${g.last.text}`,
      at: this.#clock.now(),
    };
    const entries = g.routes.flatMap((r) =>
      this.#entries(n, { kind: 'send', target: r.target, rule: r.rule, route: r.route }, undefined),
    );
    await this.outbox.enqueue(entries);
  }

  /**
   * deletes what ended before `before`: history entries (`hist/<doneAt>-…`), inbox entries (`inlog/<receivedAt>-…`
   * and the journal entry it names) and ended escalations; the outbox and unhandled messages are never pruned
   */
  async prune(before: number): Promise<number> {
    const { store } = this.ctx;
    const stamp = String(Math.max(0, Math.floor(before))).padStart(13, '0');
    let n = 0;
    for (const prefix of ['hist/', 'inlog/']) {
      for (;;) {
        const rows = await store.list<unknown>({ prefix, limit: 500 });
        const old = rows.filter(([k]) => k.slice(prefix.length, prefix.length + 13) < stamp);
        if (old.length === 0) break;
        const ops: Array<{ type: 'del'; key: string }> = [];
        for (const [k, v] of old) {
          ops.push({ type: 'del', key: k });
          if (prefix === 'inlog/' && typeof v === 'string' && v.startsWith('in/')) ops.push({ type: 'del', key: v });
        }
        await store.batch(ops);
        n += old.length;
        if (old.length < rows.length) break;
      }
    }
    for (const e of await this.escalations.list({ open: false })) {
      const endedAt = e.acked?.at ?? (e.ended ? e.dueAt : undefined);
      if (e.ended !== undefined && endedAt !== undefined && endedAt < before) {
        await store.del(`esc/${e.ackId}`);
        n++;
      }
    }
    return n;
  }

  /** the router's state, written only when it changed (the tick runs every 5 s: no write a flash card pays for idle) */
  async #saveRouter(): Promise<void> {
    const snap = this.router.snapshot();
    const json = JSON.stringify(snap);
    if (json === this.#savedRouter) return;
    await this.ctx.store.put(SNAPSHOT_KEY, snap);
    this.#savedRouter = json;
  }

  async #auditMessage(action: string, h: HistoryEntry, decision: 'ok' | 'error'): Promise<void> {
    await this.ctx.audit(action, h.channel, {
      decision,
      detail: {
        id: h.id,
        notification: h.notification,
        route: h.route,
        rule: h.rule,
        ...(h.to !== undefined && { to: h.to }),
        body: hashText(`${h.title ?? ''}\n${h.text}`),
        attempts: h.attempts,
        ...(h.error !== undefined && { error: h.error.slice(0, 300) }),
        ...(h.maybeDuplicate && { maybeDuplicate: true }),
      },
    });
  }

  // ---- escalations ---------------------------------------------------------------------------------------------

  /** the messages of one escalation step, to its targets */
  async #escalationStep(esc: Escalation, step: number): Promise<void> {
    const refs = esc.steps[step]?.to ?? [];
    const targets: Target[] = [];
    for (const r of refs) {
      const people = this.routing.people.get(r);
      if (people) targets.push(...people);
      else if (this.slots.has(r)) targets.push({ channel: r });
      else {
        const i = r.indexOf(':');
        if (i > 0 && this.slots.has(r.slice(0, i))) targets.push({ channel: r.slice(0, i), to: r.slice(i + 1) });
      }
    }
    const n: Notification = {
      id: this.outbox.newId(),
      source: 'escalation',
      topic: 'escalation',
      priority: esc.priority,
      text: esc.text,
      tags: ['escalation'],
      at: this.#clock.now(),
      ...(esc.title !== undefined && { title: `Escalated (step ${step + 1}): ${esc.title}` }),
    };
    const rule = `escalation:${esc.ackId}`;
    const entries = targets.flatMap((t) =>
      this.#entries(
        n,
        { kind: 'send', target: t, rule, route: `${rule}>${t.channel}${t.to ? `:${t.to}` : ''}` },
        esc.ackId,
      ),
    );
    await this.outbox.enqueue(entries);
    await this.ctx.audit('escalation.step', esc.ackId, {
      decision: 'info',
      detail: { step: step + 1, targets: entries.length },
    });
  }

  async ack(q: { id: string; by?: string; note?: string }, channel?: string): Promise<Ans<'ack'>> {
    const r = await this.escalations.ack(q.id, q.by ?? 'unknown', channel);
    if (r.result === 'not-found')
      throw new TalonError('NOT_FOUND', `there is no escalation "${q.id}" (the ack id is in the message)`);
    const already = r.result === 'already-acked';
    if (!already)
      await this.ctx.audit('escalation.ack', q.id, {
        decision: 'ok',
        detail: {
          by: q.by ?? 'unknown',
          ...(channel !== undefined && { channel }),
          ...(q.note && { note: q.note.slice(0, 200) }),
        },
      });
    return { escalation: r.escalation as unknown as Ans<'ack'>['escalation'], already };
  }

  // ---- what comes back -----------------------------------------------------------------------------------------

  async #onInbound(e: InboxEntry): Promise<InboxEntry['handled'] | undefined> {
    const now = this.#clock.now();
    await this.ctx.audit(e.sender === 'unknown' ? 'message.refused' : 'message.received', e.channel, {
      decision: e.sender === 'unknown' ? 'error' : 'info',
      detail: { id: e.id, from: e.from.slice(0, 200), sender: e.sender, body: hashText(e.text) },
    });
    if (e.sender === 'bot') return { command: 'none', ok: true, answer: 'ignored: a bot', at: now };
    if (e.sender === 'unknown') {
      this.#counters.refused++;
      return { command: 'none', ok: false, answer: 'refused: not on the allow-list', at: now };
    }
    if (!this.settings.commands.enabled) return { command: 'none', ok: true, at: now };
    const cmd = parseCommand(e.text);
    let answer: string;
    let command: string = cmd.kind;
    let ok = true;
    if (cmd.kind === 'text' && !this.settings.commands.freeText) {
      if (!this.settings.autoReply.enabled) return { command: 'text', ok: true, at: now };
      answer = this.settings.autoReply.template!;
    } else {
      const r = await runCommandResult(
        cmd,
        { channel: e.channel, sender: e.from },
        {
          status: () => this.#statusText(),
          ack: async (id, who, channel) => {
            const r = await this.escalations.ack(id, who, channel);
            if (r.result === 'acked')
              await this.ctx.audit('escalation.ack', r.escalation.ackId, {
                decision: 'ok',
                detail: { by: who, channel },
              });
            return r;
          },
          decide: async (id, decision, who, note) => {
            await this.ctx.call('approvals.decide', id, decision, who, note);
            return `${decision === 'approve' ? 'Approved' : 'Denied'} ${id}.`;
          },
          ...(this.settings.commands.freeText && {
            freeText: async (text: string) => {
              const ft = this.settings.commands.freeText!;
              if (ft.hand !== undefined) {
                const r = await this.ctx.tools.call<{ answer: string }>('hands.chat', { name: ft.hand, text });
                return r.output.answer || `${ft.hand} had no answer`;
              }
              const r = await this.ctx.agent.run({
                goal: text,
                tools: ft.tools ?? [],
                maxSteps: ft.maxSteps ?? 4,
                system: 'You answer a person who looks after this device, in a short chat message.',
              });
              return r.text;
            },
          }),
        },
      );
      answer = r.answer;
      command = r.command;
      ok = r.ok;
    }
    await this.#reply(e, answer);
    return { command, ok, answer: answer.slice(0, 500), at: now };
  }

  /** an answer back to where a person wrote from: through the outbox (durable, retried), never to a bot */
  async #reply(e: InboxEntry, text: string): Promise<void> {
    const now = this.#clock.now();
    const n: Notification = {
      id: this.outbox.newId(),
      source: 'reply',
      topic: 'reply',
      priority: 'normal',
      text,
      tags: ['reply'],
      at: now,
    };
    await this.outbox.enqueue(
      this.#entries(
        n,
        {
          kind: 'send',
          target: { channel: e.channel, to: e.replyTo ?? e.from },
          rule: 'reply',
          route: `reply>${e.channel}`,
        },
        undefined,
      ),
    );
  }

  async #statusText(): Promise<string> {
    const st = this.outbox.stats();
    const lines = [`${this.ctx.name} on device ${this.ctx.deviceId}`];
    lines.push(`outbox: ${st.queued} queued, ${st.held} held; escalations open: ${this.escalations.open}`);
    for (const s of this.slots.values()) {
      const h = s.channel ? this.outbox.health(s.name) : undefined;
      lines.push(`- ${s.name}: ${s.error ? `error: ${s.error.slice(0, 80)}` : (h?.state ?? 'ok')}`);
    }
    if (this.ctx.grants.tools.allow.some((t) => t === 'hands.list' || t === '*')) {
      const r = await this.ctx.tools
        .call<{ hands?: Array<{ name: string; state: string }> }>('hands.list', {})
        .catch(() => undefined);
      const hands = r?.output?.hands ?? [];
      if (hands.length > 0) lines.push(`hands: ${hands.map((h) => `${h.name} ${h.state}`).join(', ')}`);
    }
    return lines.join('\n');
  }

  /** a webhook channel's inbound request: the signature checked, then journalled before the platform gets its 200 */
  async webhook(q: Req<'webhook'>): Promise<Ans<'webhook'>> {
    const slot = this.slots.get(q.channel);
    if (!slot?.channel) throw new TalonError('NOT_FOUND', `there is no open channel "${q.channel}"`);
    if (!isWebhookChannel(slot.channel))
      throw new TalonError('BAD_REQUEST', `channel "${q.channel}" (${slot.kind?.kind}) takes no webhooks`);
    const r = slot.channel.verify(q.headers, q.body, this.#clock.now());
    if (!r.ok) {
      this.#counters.refused++;
      await this.ctx.audit('message.refused', q.channel, {
        decision: 'error',
        detail: { reason: r.reason, body: hashText(q.body) },
      });
      throw new TalonError('BAD_REQUEST', `webhook refused: ${r.reason}`);
    }
    await this.inbox.push(q.channel, [r.message]);
    return { accepted: true };
  }

  async test(q: Req<'test'>): Promise<Ans<'test'>> {
    const slot = this.slots.get(q.channel);
    if (!slot)
      throw new TalonError(
        'NOT_FOUND',
        `there is no channel "${q.channel}" (channels: ${[...this.slots.keys()].join(', ') || 'none'})`,
      );
    if (!slot.channel) return { ok: false, error: { kind: 'config', message: slot.error ?? 'not open' } };
    const id = this.outbox.newId();
    try {
      const r = await slot.channel.send(
        {
          id,
          text: q.text ?? `Test message from ${this.ctx.name} on ${this.ctx.deviceId}`,
          priority: 'normal',
          tags: ['test'],
        },
        AbortSignal.any([this.ctx.signal, AbortSignal.timeout(30_000)]),
      );
      await this.ctx.audit('message.sent', slot.name, {
        decision: 'ok',
        detail: { id, test: true, platformIds: r.platformIds.slice(0, 10) },
      });
      return { ok: true, platformIds: r.platformIds };
    } catch (err) {
      const kind = err instanceof ChannelError ? err.kind : 'transient';
      return { ok: false, error: { kind, message: errorText(err).slice(0, 500) } };
    }
  }

  channelsView(): Ans<'channels'>['channels'] {
    const counters = this.outbox.stats().channels;
    const inStats = this.inbox.stats();
    return [...this.slots.values()].map((s) => {
      const h = s.channel ? this.outbox.health(s.name) : undefined;
      const ih = s.channel ? this.inbox.health(s.name) : undefined;
      const c = counters[s.name];
      const health = s.error ? 'error' : h ? (ih?.state === 'auth' ? 'auth' : h.state) : 'starting';
      return {
        name: s.name,
        kind: s.kind?.kind ?? 'unknown',
        direction: s.kind?.direction ?? 'out',
        url: s.url,
        targets: [...(s.channel?.targets ?? [])],
        health,
        ...(s.error !== undefined && { error: s.error }),
        ...(h?.lastError !== undefined && { lastError: h.lastError }),
        ...(h?.lastOkAt !== undefined && { lastOkAt: h.lastOkAt }),
        ...(ih?.lastReceivedAt !== undefined && { lastReceivedAt: ih.lastReceivedAt }),
        queued: c?.queued ?? 0,
        held: c?.held ?? 0,
        sent: c?.sent ?? 0,
        failed: c?.failed ?? 0,
        received: inStats[s.name]?.received ?? 0,
        breaker: {
          state: h?.state === 'open' ? 'open' : 'closed',
          ...(h?.waitUntil !== undefined && { waitUntil: h.waitUntil }),
        },
      };
    }) as Ans<'channels'>['channels'];
  }

  stats(): Ans<'stats'> {
    const o = this.outbox.stats();
    const i = this.inbox.stats();
    const byChannel: Record<
      string,
      { sent: number; failed: number; queued: number; received: number; expired: number }
    > = {};
    let sent = 0;
    let failed = 0;
    let expired = 0;
    for (const name of this.slots.keys()) {
      const c = o.channels[name];
      byChannel[name] = {
        sent: c?.sent ?? 0,
        failed: c?.failed ?? 0,
        queued: c?.queued ?? 0,
        expired: c?.expired ?? 0,
        received: i[name]?.received ?? 0,
      };
      sent += c?.sent ?? 0;
      failed += c?.failed ?? 0;
      expired += c?.expired ?? 0;
    }
    const received = Object.values(i).reduce((a, c) => a + c.received, 0);
    return {
      sent,
      failed,
      expired,
      queued: o.queued,
      held: o.held,
      received,
      refused: this.#counters.refused,
      escalationsOpen: this.escalations.open,
      byChannel,
      routed: this.#counters.routed,
      deduped: this.#counters.deduped,
      unrouted: this.#counters.unrouted,
    } as Ans<'stats'>;
  }
}

let hand: CommunicationHand | null = null;

function running(): CommunicationHand {
  if (!hand) throw new TalonError('HAND_STOPPED', 'the Communication Hand is not running');
  return hand;
}

export default defineHand({
  manifest: {
    id: 'communication',
    version: '1.0.0',
    description:
      'Sends notifications on e-mail, Telegram, Slack, Discord, Matrix, ntfy, MQTT, webhooks and more by routing rules (priorities, quiet hours, digests, dedup, escalation); takes replies and commands from allow-listed people; nothing lost offline',
    capabilities: {
      // asks the scheduler (its inbox) and answers askers (their reply topics); its own inbox, replies and escalation
      // timers under the instance name `comms` (a config naming the Hand otherwise grants hands/<name>/#)
      bus: {
        publish: ['hands/+/tasks', 'hands/+/replies'],
        subscribe: [
          'notify/+',
          'alerts/+',
          'approvals/+',
          'hands/comms/tasks',
          'hands/comms/replies',
          'hands/comms/escalate',
        ],
      },
      tools: ['hands.list', 'hands.chat'],
    },
    // what a config grants: the platforms' hosts (and raw sockets for SMTP, IMAP, gateways), the channels' secrets,
    // relaying approvals, the MQTT channel's topics, free-text answers by an agent
    optionalCapabilities: {
      network: { hosts: ['*', '0.0.0.0/0', '::/0'], raw: true },
      secrets: ['*'],
      approvals: true,
      bus: { publish: ['#'], subscribe: ['#'] },
      tools: ['*'],
      llm: { tokensPerHour: 1_000_000 },
    },
    quotas: { heapMb: 96, messagesPerSec: 2000 },
    settingsSchema: settingsSchema as unknown as Record<string, unknown>,
  },
  async start(ctx) {
    hand = new CommunicationHand(ctx);
    await hand.start();
  },
  async stop() {
    const h = hand;
    hand = null;
    await h?.stop();
  },
  protocol,
  requests: {
    channels: () => ({ channels: running().channelsView() }),
    test: (q: Req<'test'>) => running().test(q),
    notify: (q: Req<'notify'>) => running().notify(q, q.source ?? 'api'),
    messages: async (q: Req<'messages'>) => {
      const h = running();
      const opts = { limit: q.limit ?? 50, ...(q.before !== undefined && { before: q.before }) };
      const page = q.box === 'inbox' ? await h.inbox.list(opts) : await h.outbox.list({ box: q.box, ...opts });
      return {
        messages: page.items as unknown as Ans<'messages'>['messages'],
        ...(page.next !== undefined && { next: page.next }),
      };
    },
    escalations: async (q: Req<'escalations'>) => ({
      escalations: (await running().escalations.list({ open: !q.all })) as unknown as Ans<'escalations'>['escalations'],
    }),
    ack: (q: Req<'ack'>) => running().ack(q, 'api'),
    webhook: (q: Req<'webhook'>) => running().webhook(q),
    stats: () => running().stats(),
  },
});
