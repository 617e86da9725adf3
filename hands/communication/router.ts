/**
 * The Communication Hand's router: one notification in, one Decision per target out (send now, hold until an instant,
 * or drop). Pure logic with an injected clock; the Hand (./index.ts) turns decisions into outbox entries and calls
 * due() on its timer to collect the dedup groups whose window ended.
 *
 *   targets      an explicit `to` skips the rules (route `direct>…`); else the rules in order, the first match wins
 *                unless it says `continue` (a target an earlier rule already took is not taken twice); none matched:
 *                the default targets (route `default>…`); none at all: one `drop` 'unrouted'
 *   dedup        key = n.dedupKey ?? sha256(source, title, text); the first in a window (dedupWindowMs from it) is
 *                routed, the rest are dropped as 'duplicate' and counted; due(now) hands back each ended group with
 *                repeats as a GroupSummary (with the routes the first one took). Critical is deduped too.
 *   critical     goes now on every route: no quiet hours, digests or rate limits
 *   digest       the rule's `digest` (default: `low` → hourly): hold 'digest' until the next full hour of the digest
 *                zone or the next digestAt there
 *   quiet hours  non-critical is held 'quiet' until the quiet period's `to`; with a digest too, the later instant wins
 *   rate         per route (`rule>channel[:to]`, the rule's rateLimit) and per channel (the channel's rateLimit): a
 *                fixed window from the first send; over it, hold 'rate' until the window's end (the outbox sends what
 *                was held as one summary then, which takes one slot of the next window). Holds do not count.
 *
 * Kept in memory, saved by snapshot() as JSON: the dedup groups, the summaries not yet collected, the rate windows.
 */
import { createHash } from 'node:crypto';
import {
  DEFAULT_RULE,
  DIRECT_RULE,
  expandTargets,
  inQuietHours,
  matches,
  nextFullHour,
  nextOccurrence,
  type RateLimit,
  type Routing,
  type Rule,
} from './rules.ts';
import type { Decision, Notification, Target } from './types.ts';

export interface RouterOptions {
  /** the most dedup groups kept (the oldest is ended early beyond it; default 10000) */
  maxGroups?: number;
}

/** one target a notification went (or was held) to */
export interface RouteRef {
  target: Target;
  rule: string;
  route: string;
}

/** a dedup group whose window ended with repeats: the Hand sends "<title> — repeated N more times" on `routes` */
export interface GroupSummary {
  key: string;
  /** the repeats (not counting the first, which was routed) */
  count: number;
  first: Notification;
  last: Notification;
  /** ms epoch: the first one was routed */
  since: number;
  /** ms epoch: the window's end */
  until: number;
  /** where the first one went (send and hold decisions) */
  routes: RouteRef[];
}

export interface RouterStats {
  notifications: number;
  sent: number;
  held: { digest: number; quiet: number; rate: number };
  duplicates: number;
  unrouted: number;
  /** dedup groups in their window */
  groups: number;
  /** ended groups with repeats not yet collected by due() */
  pendingSummaries: number;
  /** summaries given up because due() was not called for too long (more than maxGroups waiting) */
  summariesLost: number;
  rateWindows: number;
}

interface Group extends GroupSummary {}

interface Window {
  start: number;
  count: number;
  perMs: number;
  /** something was held in this window: its summary goes at the window's end and takes a slot of the next */
  held: boolean;
}

export interface RouterSnapshot {
  v: 1;
  groups: Group[];
  ended: Group[];
  windows: Array<[string, Window]>;
}

export function routeId(rule: string, t: Target): string {
  return t.to === undefined ? `${rule}>${t.channel}` : `${rule}>${t.channel}:${t.to}`;
}

export function dedupKeyOf(n: Notification): string {
  if (n.dedupKey !== undefined) return n.dedupKey;
  return createHash('sha256')
    .update(n.source + '\n' + (n.title ?? '') + '\n' + n.text)
    .digest('hex');
}

/** the escalation of the first rule that routed the notification, if it has one (the escalation module runs it) */
export function escalationFor(routing: Routing, decisions: readonly Decision[]): Rule['escalate'] | undefined {
  for (const d of decisions) {
    if (d.kind === 'drop') continue;
    const e = routing.rulesByName.get(d.rule)?.escalate;
    if (e) return e;
  }
  return undefined;
}

export class Router {
  #routing: Routing;
  #clock: { now(): number };
  #maxGroups: number;
  #groups = new Map<string, Group>();
  #ended: Group[] = [];
  #windows = new Map<string, Window>();
  #stats = {
    notifications: 0,
    sent: 0,
    held: { digest: 0, quiet: 0, rate: 0 },
    duplicates: 0,
    unrouted: 0,
    summariesLost: 0,
  };

  constructor(routing: Routing, clock: { now(): number }, opts: RouterOptions = {}) {
    this.#routing = routing;
    this.#clock = clock;
    this.#maxGroups = Math.max(1, opts.maxGroups ?? 10_000);
  }

  get routing(): Routing {
    return this.#routing;
  }

  /** new settings; dedup groups and rate windows carry over */
  setRouting(routing: Routing): void {
    this.#routing = routing;
  }

  route(n: Notification): Decision[] {
    const now = this.#clock.now();
    this.#stats.notifications++;
    const windowMs = this.#routing.dedupWindowMs;
    const key = windowMs > 0 ? dedupKeyOf(n) : undefined;
    if (key !== undefined) {
      const g = this.#groups.get(key);
      if (g && now < g.until) {
        g.count++;
        g.last = n;
        this.#stats.duplicates++;
        return [{ kind: 'drop', reason: 'duplicate', group: key }];
      }
      if (g) this.#retire(g);
    }
    const decisions = this.#decide(n, now);
    if (key !== undefined) {
      if (this.#groups.size >= this.#maxGroups) this.#sweep(now, true);
      const routes: RouteRef[] = [];
      for (const d of decisions) if (d.kind !== 'drop') routes.push({ target: d.target, rule: d.rule, route: d.route });
      this.#groups.set(key, { key, count: 0, first: n, last: n, since: now, until: now + windowMs, routes });
    }
    return decisions;
  }

  /** the dedup groups whose window ended by `now` with repeats (each once), oldest first */
  due(now: number): GroupSummary[] {
    this.#sweep(now, false);
    for (const [k, w] of this.#windows) if (now >= w.start + 2 * w.perMs) this.#windows.delete(k);
    const out = this.#ended.splice(0);
    out.sort((a, b) => a.until - b.until);
    return out;
  }

  snapshot(): RouterSnapshot {
    const copy = (g: Group): Group => ({ ...g, routes: g.routes.map((r) => ({ ...r, target: { ...r.target } })) });
    return {
      v: 1,
      groups: [...this.#groups.values()].map(copy),
      ended: this.#ended.map(copy),
      windows: [...this.#windows].map(([k, w]) => [k, { ...w }]),
    };
  }

  /** state from snapshot() (also after a JSON round trip); throws on something that is not one */
  restore(s: RouterSnapshot): void {
    if (!s || s.v !== 1 || !Array.isArray(s.groups) || !Array.isArray(s.ended) || !Array.isArray(s.windows))
      throw new Error('router snapshot: not a version 1 snapshot (v, groups, ended, windows)');
    this.#groups = new Map(s.groups.map((g) => [g.key, { ...g }]));
    this.#ended = s.ended.map((g) => ({ ...g }));
    this.#windows = new Map(s.windows.map(([k, w]) => [k, { ...w }]));
  }

  stats(): RouterStats {
    const s = this.#stats;
    return {
      notifications: s.notifications,
      sent: s.sent,
      held: { ...s.held },
      duplicates: s.duplicates,
      unrouted: s.unrouted,
      groups: this.#groups.size,
      pendingSummaries: this.#ended.length,
      summariesLost: s.summariesLost,
      rateWindows: this.#windows.size,
    };
  }

  #retire(g: Group): void {
    this.#groups.delete(g.key);
    if (g.count === 0) return;
    this.#ended.push(g);
    if (this.#ended.length > this.#maxGroups) {
      this.#ended.shift();
      this.#stats.summariesLost++;
    }
  }

  /** ends the groups whose window is over; `makeRoom`: and the oldest while there are maxGroups or more */
  #sweep(now: number, makeRoom: boolean): void {
    for (const g of [...this.#groups.values()]) if (now >= g.until) this.#retire(g);
    if (!makeRoom) return;
    for (const g of this.#groups.values()) {
      if (this.#groups.size < this.#maxGroups) break;
      this.#retire(g);
    }
  }

  #decide(n: Notification, now: number): Decision[] {
    const picks: Array<{ name: string; rule?: Rule; targets: Target[] }> = [];
    if (n.to !== undefined) picks.push({ name: DIRECT_RULE, targets: expandTargets(n.to, this.#routing) });
    else {
      for (const rule of this.#routing.rules) {
        if (!matches(rule, n, now)) continue;
        picks.push({ name: rule.name, rule, targets: rule.targets });
        if (!rule.continue) break;
      }
      if (picks.length === 0) picks.push({ name: DEFAULT_RULE, targets: this.#routing.default });
    }
    const seen = new Set<string>();
    const out: Decision[] = [];
    for (const pick of picks) {
      for (const target of pick.targets) {
        const route = routeId(pick.name, target);
        const tk = routeId('', target);
        if (seen.has(tk)) continue;
        seen.add(tk);
        out.push(this.#place(n, pick.name, pick.rule, target, route, now));
      }
    }
    if (out.length === 0) {
      this.#stats.unrouted++;
      const first = picks[0]!.name;
      return [
        first === DEFAULT_RULE
          ? { kind: 'drop', reason: 'unrouted' }
          : { kind: 'drop', reason: 'unrouted', rule: first },
      ];
    }
    return out;
  }

  #place(n: Notification, name: string, rule: Rule | undefined, target: Target, route: string, now: number): Decision {
    if (n.priority === 'critical') {
      this.#stats.sent++;
      return { kind: 'send', target, rule: name, route };
    }
    const r = this.#routing;
    let until = 0;
    let reason: 'digest' | 'quiet' | 'rate' = 'digest';
    const digest = rule?.digest ?? (n.priority === 'low' ? 'hourly' : 'none');
    if (digest === 'hourly') until = nextFullHour(now, r.digestZone);
    else if (digest === 'daily') until = nextOccurrence(r.digestAt, r.digestZone, now);
    if (r.quietHours && inQuietHours(r.quietHours, now)) {
      const end = nextOccurrence(r.quietHours.to, r.quietHours.timezone, now);
      if (end >= until) {
        until = end;
        reason = 'quiet';
      }
    }
    if (until > 0) {
      this.#stats.held[reason]++;
      return { kind: 'hold', target, rule: name, route, until, reason };
    }
    const limits: Array<[string, RateLimit]> = [];
    if (rule?.rateLimit) limits.push([route, rule.rateLimit]);
    const channelLimit = r.channelRateLimits.get(target.channel);
    if (channelLimit) limits.push([`#${target.channel}`, channelLimit]);
    const windows = limits.map(([key, limit]) => ({ w: this.#window(key, limit, now), max: limit.count }));
    for (const { w, max } of windows) if (w.count >= max) until = Math.max(until, w.start + w.perMs);
    if (until > 0) {
      for (const { w, max } of windows) if (w.count >= max) w.held = true;
      this.#stats.held.rate++;
      return { kind: 'hold', target, rule: name, route, until, reason: 'rate' };
    }
    for (const { w } of windows) w.count++;
    this.#stats.sent++;
    return { kind: 'send', target, rule: name, route };
  }

  /** the rate window for `key` at `now` (a new one when the last ended) */
  #window(key: string, limit: RateLimit, now: number): Window {
    let w = this.#windows.get(key);
    if (!w || now >= w.start + w.perMs) {
      const end = w ? w.start + w.perMs : 0;
      // what was held in the last window went as one summary at its end: it counts in the window from there
      w =
        w?.held && now < end + limit.perMs
          ? { start: end, count: 1, perMs: limit.perMs, held: false }
          : { start: now, count: 0, perMs: limit.perMs, held: false };
      this.#windows.set(key, w);
    }
    w.perMs = limit.perMs;
    return w;
  }
}
