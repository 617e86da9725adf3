/** The router on fixed instants (an injected clock, no sleeping): targets, dedup, rate limits, quiet hours, digests. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouting, type RawRouting } from '../../../hands/communication/rules.ts';
import { dedupKeyOf, escalationFor, Router } from '../../../hands/communication/router.ts';
import type { Decision, Notification } from '../../../hands/communication/types.ts';

const CHANNELS = new Set(['ops-telegram', 'ops-mail', 'sms']);
const PEOPLE = { alice: ['ops-telegram:123456', 'ops-mail:alice@example.com'], bob: ['ops-mail'] };
const BERLIN = 'Europe/Berlin';
const at = (s: string) => Date.parse(s);
const iso = (t: number) => new Date(t).toISOString();

class FakeClock {
  t: number;
  constructor(t: number) {
    this.t = t;
  }
  now(): number {
    return this.t;
  }
}

let seq = 0;
function note(over: Partial<Notification> = {}): Notification {
  seq++;
  return {
    id: `n${seq}`,
    source: 'hand:monitoring',
    topic: 'alerts/disk',
    priority: 'normal',
    title: 'Disk',
    text: 'the disk is full',
    tags: ['disk'],
    at: 0,
    ...over,
  };
}

function router(raw: RawRouting, t: number, channelRateLimits?: Record<string, { count: number; perMs: number }>) {
  const { routing, problems } = parseRouting({ people: PEOPLE, ...raw }, CHANNELS, {
    timezone: 'UTC',
    ...(channelRateLimits ? { channelRateLimits } : {}),
  });
  assert.deepEqual(problems, []);
  const clock = new FakeClock(t);
  return { r: new Router(routing, clock), clock, routing };
}

const routes = (ds: Decision[]) => ds.map((d) => (d.kind === 'drop' ? `drop:${d.reason}` : `${d.kind}:${d.route}`));
const NOON = at('2026-06-10T10:00:00Z');

test('rules in order: the first match wins; continue matches later rules too; a target is taken once', () => {
  const rules = [
    { name: 'disk', match: { tags: ['disk'] }, to: ['alice'] },
    { name: 'all', to: ['bob'] },
  ];
  const first = router({ rules }, NOON).r;
  assert.deepEqual(routes(first.route(note())), [
    'send:disk>ops-telegram:123456',
    'send:disk>ops-mail:alice@example.com',
  ]);
  assert.deepEqual(routes(first.route(note({ tags: [], text: 'other' }))), ['send:all>ops-mail']);

  const cont = router({ rules: [{ ...rules[0], continue: true }, rules[1], { name: 'never', to: ['sms'] }] }, NOON).r;
  assert.deepEqual(routes(cont.route(note())), [
    'send:disk>ops-telegram:123456',
    'send:disk>ops-mail:alice@example.com',
    'send:all>ops-mail',
  ]);

  const twice = router(
    {
      rules: [
        { name: 'a', to: ['alice'], continue: true },
        { name: 'b', to: ['ops-telegram:123456', 'sms'] },
      ],
    },
    NOON,
  ).r;
  assert.deepEqual(routes(twice.route(note())), [
    'send:a>ops-telegram:123456',
    'send:a>ops-mail:alice@example.com',
    'send:b>sms',
  ]);
});

test('no rule matched: the default targets; no default: one unrouted drop; a mute rule drops with its name', () => {
  const withDefault = router(
    { rules: [{ name: 'x', match: { tags: ['nope'] }, to: ['bob'] }], default: ['sms'] },
    NOON,
  );
  assert.deepEqual(withDefault.r.route(note()), [
    { kind: 'send', target: { channel: 'sms' }, rule: 'default', route: 'default>sms' },
  ]);
  const none = router({ rules: [{ name: 'x', match: { tags: ['nope'] }, to: ['bob'] }] }, NOON).r;
  assert.deepEqual(none.route(note()), [{ kind: 'drop', reason: 'unrouted' }]);
  assert.equal(none.stats().unrouted, 1);
  const mute = router({ rules: [{ name: 'mute', match: { source: 'hand:*' }, to: [] }], default: ['sms'] }, NOON).r;
  assert.deepEqual(mute.route(note()), [{ kind: 'drop', reason: 'unrouted', rule: 'mute' }]);
});

test('explicit to: skips the rules, targets as given (people expanded), route direct>…', () => {
  const { r } = router({ rules: [{ name: 'all', to: ['sms'] }], default: ['sms'] }, NOON);
  assert.deepEqual(r.route(note({ to: ['bob', 'ops-telegram:42', 'carol'] })), [
    { kind: 'send', target: { channel: 'ops-mail' }, rule: 'direct', route: 'direct>ops-mail' },
    { kind: 'send', target: { channel: 'ops-telegram', to: '42' }, rule: 'direct', route: 'direct>ops-telegram:42' },
  ]);
  assert.deepEqual(r.route(note({ to: ['carol'], text: 'other' })), [
    { kind: 'drop', reason: 'unrouted', rule: 'direct' },
  ]);
});

test('dedup: 50 identical → 1 routed, 49 counted; due() after the window gives one summary with count 49', () => {
  const { r, clock } = router({ default: ['ops-telegram'], dedupWindowMs: 600_000 }, NOON);
  const all: Decision[][] = [];
  const sent: Notification[] = [];
  for (let i = 0; i < 50; i++) {
    const n = note({ at: clock.t });
    sent.push(n);
    all.push(r.route(n));
    clock.t += 1000;
  }
  const key = dedupKeyOf(sent[0]!);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.deepEqual(routes(all[0]!), ['send:default>ops-telegram']);
  for (const ds of all.slice(1)) assert.deepEqual(ds, [{ kind: 'drop', reason: 'duplicate', group: key }]);
  assert.deepEqual(r.due(NOON + 599_999), [], 'the window has not ended');
  const [g, ...rest] = r.due(NOON + 600_000);
  assert.equal(rest.length, 0);
  assert.equal(g?.key, key);
  assert.equal(g?.count, 49);
  assert.equal(g?.first.id, sent[0]!.id);
  assert.equal(g?.last.id, sent[49]!.id);
  assert.equal(g?.since, NOON);
  assert.equal(g?.until, NOON + 600_000);
  assert.deepEqual(g?.routes, [
    { target: { channel: 'ops-telegram' }, rule: 'default', route: 'default>ops-telegram' },
  ]);
  assert.deepEqual(r.due(NOON + 700_000), [], 'each summary once');
  assert.equal(r.stats().duplicates, 49);
  // after the window, the same one is routed again and starts a new group
  clock.t = NOON + 600_001;
  assert.deepEqual(routes(r.route(note())), ['send:default>ops-telegram']);
});

test('dedup: critical too; dedupKey; different text is not a duplicate; a group without repeats gives no summary', () => {
  const { r, clock } = router({ default: ['ops-telegram'] }, NOON);
  for (let i = 0; i < 50; i++) r.route(note({ priority: 'critical' }));
  assert.equal(r.stats().sent, 1);
  assert.equal(r.stats().duplicates, 49);
  assert.deepEqual(routes(r.route(note({ text: 'another' }))), ['send:default>ops-telegram']);
  assert.deepEqual(routes(r.route(note({ dedupKey: 'k', text: 'a' }))), ['send:default>ops-telegram']);
  assert.deepEqual(r.route(note({ dedupKey: 'k', text: 'b' })), [{ kind: 'drop', reason: 'duplicate', group: 'k' }]);
  assert.notEqual(
    dedupKeyOf(note({ title: 'a', text: 'b\nc' })),
    dedupKeyOf(note({ title: 'a\nb', text: 'c' })).slice(1),
  );
  clock.t += 600_000;
  const due = r.due(clock.t);
  assert.deepEqual(due.map((g) => [g.key.length === 64 ? 'hash' : g.key, g.count]).sort(), [
    ['hash', 49],
    ['k', 1],
  ]);
  assert.equal(r.stats().groups, 0);
  // a repeat after the window ended but before due() was called: the old group's summary is kept
  r.route(note({ dedupKey: 'z' }));
  r.route(note({ dedupKey: 'z' }));
  clock.t += 600_000;
  assert.deepEqual(routes(r.route(note({ dedupKey: 'z' }))), ['send:default>ops-telegram']);
  assert.deepEqual(
    r.due(clock.t).map((g) => [g.key, g.count]),
    [['z', 1]],
  );
});

test('dedupWindowMs 0: no dedup', () => {
  const { r } = router({ default: ['sms'], dedupWindowMs: 0 }, NOON);
  assert.deepEqual(routes([...r.route(note()), ...r.route(note())]), ['send:default>sms', 'send:default>sms']);
});

test('per-route rate limit: over it → hold "rate" until the window ends; the held summary takes a slot of the next', () => {
  const { r, clock } = router(
    { rules: [{ name: 'noisy', to: ['bob', 'sms'], rateLimit: { count: 3, perMs: 60_000 } }] },
    NOON,
  );
  const one = (text: string) => r.route(note({ text }));
  for (const t of ['a', 'b', 'c']) assert.deepEqual(routes(one(t)), ['send:noisy>ops-mail', 'send:noisy>sms']);
  clock.t = NOON + 30_000;
  const held = one('d');
  assert.deepEqual(held, [
    {
      kind: 'hold',
      target: { channel: 'ops-mail' },
      rule: 'noisy',
      route: 'noisy>ops-mail',
      until: NOON + 60_000,
      reason: 'rate',
    },
    {
      kind: 'hold',
      target: { channel: 'sms' },
      rule: 'noisy',
      route: 'noisy>sms',
      until: NOON + 60_000,
      reason: 'rate',
    },
  ]);
  assert.deepEqual(routes(one('e')), ['hold:noisy>ops-mail', 'hold:noisy>sms']);
  // the next window starts when the last ended; the summary of what was held counts as its first message
  clock.t = NOON + 60_000;
  assert.deepEqual(routes(one('f')), ['send:noisy>ops-mail', 'send:noisy>sms']);
  assert.deepEqual(routes(one('g')), ['send:noisy>ops-mail', 'send:noisy>sms']);
  const again = one('h');
  assert.equal(again[0]?.kind === 'hold' && again[0].until, NOON + 120_000);
  // critical ignores the limit
  assert.deepEqual(routes(r.route(note({ text: 'i', priority: 'critical' }))), [
    'send:noisy>ops-mail',
    'send:noisy>sms',
  ]);
  // after a quiet stretch, a fresh window from the next message
  clock.t = NOON + 500_000;
  for (const t of ['j', 'k', 'l']) assert.deepEqual(routes(one(t)), ['send:noisy>ops-mail', 'send:noisy>sms']);
  assert.equal((one('m')[0] as { until: number }).until, NOON + 560_000);
  assert.equal(r.stats().held.rate, 8, 'd, e, h and m on two routes each');
});

test('rate limits are per route: each rule × target has its own window', () => {
  const { r } = router(
    {
      rules: [
        { name: 'a', match: { tags: ['a'] }, to: ['alice'], rateLimit: { count: 1, perMs: 60_000 } },
        { name: 'b', to: ['alice'], rateLimit: { count: 1, perMs: 60_000 } },
      ],
    },
    NOON,
  );
  assert.deepEqual(routes(r.route(note({ tags: ['a'], text: '1' }))), [
    'send:a>ops-telegram:123456',
    'send:a>ops-mail:alice@example.com',
  ]);
  assert.deepEqual(routes(r.route(note({ tags: [], text: '2' }))), [
    'send:b>ops-telegram:123456',
    'send:b>ops-mail:alice@example.com',
  ]);
  assert.deepEqual(routes(r.route(note({ tags: ['a'], text: '3' }))), [
    'hold:a>ops-telegram:123456',
    'hold:a>ops-mail:alice@example.com',
  ]);
});

test("a channel's own rate limit counts across all routes to it", () => {
  const { r } = router(
    {
      rules: [
        { name: 'a', match: { tags: ['a'] }, to: ['sms'] },
        { name: 'b', to: ['sms', 'ops-mail'] },
      ],
    },
    NOON,
    { sms: { count: 2, perMs: 60_000 } },
  );
  assert.deepEqual(routes(r.route(note({ tags: ['a'], text: '1' }))), ['send:a>sms']);
  assert.deepEqual(routes(r.route(note({ tags: [], text: '2' }))), ['send:b>sms', 'send:b>ops-mail']);
  const third = r.route(note({ tags: [], text: '3' }));
  assert.deepEqual(routes(third), ['hold:b>sms', 'send:b>ops-mail']);
  assert.equal(third[0]?.kind === 'hold' && third[0].reason === 'rate' && third[0].until, NOON + 60_000);
});

test('quiet hours: hold non-critical until their end in the zone, pass critical, nothing outside them', () => {
  const raw: RawRouting = { default: ['sms'], quietHours: { from: '22:00', to: '07:00', timezone: BERLIN } };
  const { r, clock } = router(raw, at('2026-06-10T21:00:00Z')); // 23:00 in Berlin (UTC+2)
  assert.deepEqual(r.route(note({ text: '1' })), [
    {
      kind: 'hold',
      target: { channel: 'sms' },
      rule: 'default',
      route: 'default>sms',
      until: at('2026-06-11T05:00:00Z'),
      reason: 'quiet',
    },
  ]);
  assert.deepEqual(routes(r.route(note({ text: '2', priority: 'critical' }))), ['send:default>sms']);
  clock.t = at('2026-06-11T04:59:59Z'); // 06:59:59
  assert.equal((r.route(note({ text: '3' }))[0] as { until: number }).until, at('2026-06-11T05:00:00Z'));
  clock.t = at('2026-06-11T05:00:00Z'); // 07:00
  assert.deepEqual(routes(r.route(note({ text: '4' }))), ['send:default>sms']);
  clock.t = at('2026-06-10T19:59:00Z'); // 21:59
  assert.deepEqual(routes(r.route(note({ text: '5' }))), ['send:default>sms']);
  // explicit `to`: quiet hours apply too
  clock.t = at('2026-06-10T21:00:00Z');
  assert.deepEqual(routes(r.route(note({ text: '6', to: ['bob'] }))), ['hold:direct>ops-mail']);
  assert.equal(r.stats().held.quiet, 3);
});

test('quiet hours and a digest: the later instant, with its reason', () => {
  const raw: RawRouting = {
    rules: [
      { name: 'daily', match: { tags: ['daily'] }, to: ['sms'], digest: 'daily' },
      { name: 'plain', to: ['sms'] },
    ],
    quietHours: { from: '22:00', to: '07:00', timezone: BERLIN },
    digestAt: '08:00',
  };
  const { r } = router(raw, at('2026-06-10T21:00:00Z')); // 23:00 Berlin
  // low: the hourly digest at 00:00 is earlier than the quiet end at 07:00
  const low = r.route(note({ text: 'low', priority: 'low' }))[0];
  assert.deepEqual(low?.kind === 'hold' && [iso(low.until), low.reason], ['2026-06-11T05:00:00.000Z', 'quiet']);
  // daily: 08:00 is later than 07:00
  const daily = r.route(note({ text: 'd', tags: ['daily'] }))[0];
  assert.deepEqual(daily?.kind === 'hold' && [iso(daily.until), daily.reason], ['2026-06-11T06:00:00.000Z', 'digest']);
});

test('digests: low waits for the next full hour unless its rule says none; daily at digestAt; critical never waits', () => {
  const raw: RawRouting = {
    rules: [
      { name: 'now', match: { tags: ['now'] }, to: ['sms'], digest: 'none' },
      { name: 'hourly', match: { tags: ['hourly'] }, to: ['sms'], digest: 'hourly' },
      { name: 'daily', match: { tags: ['daily'] }, to: ['sms'], digest: 'daily' },
      { name: 'rest', to: ['sms'] },
    ],
    quietHours: { from: '23:00', to: '05:00', timezone: BERLIN },
    digestAt: '08:00',
  };
  const { r } = router(raw, at('2026-06-10T10:20:00Z')); // 12:20 Berlin
  const hold = (ds: Decision[]) => {
    const d = ds[0];
    return d?.kind === 'hold' ? `${d.reason}@${iso(d.until)}` : d?.kind;
  };
  assert.equal(hold(r.route(note({ text: '1', priority: 'low', tags: [] }))), 'digest@2026-06-10T11:00:00.000Z');
  assert.equal(hold(r.route(note({ text: '2', priority: 'normal', tags: [] }))), 'send');
  assert.equal(hold(r.route(note({ text: '3', priority: 'low', tags: ['now'] }))), 'send');
  assert.equal(
    hold(r.route(note({ text: '4', priority: 'high', tags: ['hourly'] }))),
    'digest@2026-06-10T11:00:00.000Z',
  );
  assert.equal(
    hold(r.route(note({ text: '5', priority: 'normal', tags: ['daily'] }))),
    'digest@2026-06-11T06:00:00.000Z',
  );
  assert.equal(hold(r.route(note({ text: '6', priority: 'critical', tags: ['daily'] }))), 'send');
  // explicit `to`: low still waits for the hourly digest
  assert.equal(hold(r.route(note({ text: '7', priority: 'low', to: ['sms'] }))), 'digest@2026-06-10T11:00:00.000Z');
});

test('digest release times across the DST changes in Europe/Berlin (2026-03-29 and 2026-10-25)', () => {
  const raw: RawRouting = {
    rules: [
      { name: 'daily', match: { tags: ['daily'] }, to: ['sms'], digest: 'daily' },
      { name: 'hourly', to: ['sms'], digest: 'hourly' },
    ],
    // quiet hours give the digest zone; a short period far from the instants used
    quietHours: { from: '12:00', to: '12:01', timezone: BERLIN },
    digestAt: '08:00',
  };
  const { r, clock } = router(raw, 0);
  const until = (t: string, tags: string[]) => {
    clock.t = at(t);
    const d = r.route(note({ text: `${t}${tags}`, tags }))[0];
    assert.ok(d?.kind === 'hold' && d.reason === 'digest', JSON.stringify(d));
    return iso(d.until);
  };
  // spring forward: 08:00 CET is 07:00 UTC, 08:00 CEST is 06:00 UTC
  assert.equal(until('2026-03-28T06:00:00Z', ['daily']), '2026-03-28T07:00:00.000Z');
  assert.equal(until('2026-03-28T07:00:00Z', ['daily']), '2026-03-29T06:00:00.000Z', 'a day of 23 hours');
  assert.equal(until('2026-03-29T06:00:00Z', ['daily']), '2026-03-30T06:00:00.000Z');
  // hourly across the gap: 01:30 CET → 03:00 CEST
  assert.equal(until('2026-03-29T00:30:00Z', []), '2026-03-29T01:00:00.000Z');
  assert.equal(until('2026-03-29T01:00:00Z', []), '2026-03-29T02:00:00.000Z');
  // fall back: 08:00 CEST is 06:00 UTC, 08:00 CET is 07:00 UTC
  assert.equal(until('2026-10-24T06:30:00Z', ['daily']), '2026-10-25T07:00:00.000Z', 'a day of 25 hours');
  assert.equal(until('2026-10-25T06:59:00Z', ['daily']), '2026-10-25T07:00:00.000Z');
  // hourly through the repeated hour: 02:00 CEST, 02:00 CET, 03:00 CET are each a full hour
  assert.equal(until('2026-10-24T23:30:00Z', []), '2026-10-25T00:00:00.000Z');
  assert.equal(until('2026-10-25T00:30:00Z', []), '2026-10-25T01:00:00.000Z');
  assert.equal(until('2026-10-25T01:30:00Z', []), '2026-10-25T02:00:00.000Z');
});

test('quiet hours ending in the spring-forward gap end at the transition', () => {
  const { r } = router(
    { default: ['sms'], quietHours: { from: '22:00', to: '02:30', timezone: BERLIN } },
    at('2026-03-28T23:00:00Z'), // 00:00 CET on the 29th
  );
  const d = r.route(note())[0];
  assert.equal(d?.kind === 'hold' && iso(d.until), '2026-03-29T01:00:00.000Z');
});

test('snapshot/restore keeps dedup groups, pending summaries and rate windows (through JSON)', () => {
  const raw: RawRouting = { rules: [{ name: 'r', to: ['sms'], rateLimit: { count: 1, perMs: 60_000 } }] };
  const a = router(raw, NOON);
  a.r.route(note({ dedupKey: 'k1' }));
  a.r.route(note({ dedupKey: 'k1' }));
  const json = JSON.parse(JSON.stringify(a.r.snapshot()));

  const b = router(raw, NOON + 1000);
  b.r.restore(json);
  assert.deepEqual(b.r.route(note({ dedupKey: 'k1' })), [{ kind: 'drop', reason: 'duplicate', group: 'k1' }]);
  assert.deepEqual(routes(b.r.route(note({ dedupKey: 'k2' }))), ['hold:r>sms'], 'the rate window came back too');
  const [g] = b.r.due(NOON + 600_000);
  assert.equal(g?.key, 'k1');
  assert.equal(g?.count, 2);
  assert.deepEqual(g?.routes, [{ target: { channel: 'sms' }, rule: 'r', route: 'r>sms' }]);

  // a fresh router forgets; a restored one does not
  const c = router(raw, NOON + 1000);
  assert.deepEqual(routes(c.r.route(note({ dedupKey: 'k1' }))), ['send:r>sms']);
  assert.throws(() => c.r.restore({ v: 2 } as never), /not a version 1 snapshot/);
});

test('bounded dedup state: beyond maxGroups the oldest group ends early and its summary waits for due()', () => {
  const { routing } = parseRouting({ default: ['sms'] }, CHANNELS, { timezone: 'UTC' });
  const r = new Router(routing, { now: () => NOON }, { maxGroups: 2 });
  for (const k of ['a', 'b']) {
    r.route(note({ dedupKey: k }));
    r.route(note({ dedupKey: k }));
  }
  r.route(note({ dedupKey: 'c' }));
  assert.equal(r.stats().groups, 2);
  assert.equal(r.stats().pendingSummaries, 1);
  assert.deepEqual(
    r.due(NOON).map((g) => [g.key, g.count]),
    [['a', 1]],
  );
});

test('escalationFor: the escalation of the rule that routed it', () => {
  const { r, routing } = router(
    {
      rules: [
        {
          name: 'esc',
          match: { priority: 'high+' },
          to: ['sms'],
          escalate: { steps: [{ to: ['bob'], afterMin: 10 }] },
        },
        { name: 'rest', to: ['sms'] },
      ],
    },
    NOON,
  );
  assert.deepEqual(escalationFor(routing, r.route(note({ priority: 'high' }))), {
    steps: [{ to: ['bob'], afterMs: 600_000 }],
  });
  assert.equal(escalationFor(routing, r.route(note({ text: 'x' }))), undefined);
});

test('stats count what was decided', () => {
  const { r } = router({ default: ['sms'], quietHours: { from: '00:00', to: '23:59', timezone: 'UTC' } }, NOON);
  r.route(note({ text: '1' }));
  r.route(note({ text: '1' }));
  r.route(note({ text: '2', priority: 'critical' }));
  assert.deepEqual(r.stats(), {
    notifications: 3,
    sent: 1,
    held: { digest: 0, quiet: 1, rate: 0 },
    duplicates: 1,
    unrouted: 0,
    groups: 2,
    pendingSummaries: 0,
    summariesLost: 0,
    rateWindows: 0,
  });
});
