/** parseRouting's named problems, matches() on every field, expandTargets, and times of day in zones across DST. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  expandTargets,
  inTimeWindow,
  localInstant,
  matches,
  nextFullHour,
  nextOccurrence,
  parseRouting,
  type RawRouting,
  type Rule,
  unknownRefs,
  zonedParts,
} from '../../../hands/communication/rules.ts';
import type { Notification } from '../../../hands/communication/types.ts';

const CHANNELS = new Set(['ops-telegram', 'ops-mail']);
const PEOPLE = { alice: ['ops-telegram:123456', 'ops-mail:alice@example.com'], bob: ['ops-mail'] };
const BERLIN = 'Europe/Berlin';
const iso = (t: number) => new Date(t).toISOString();
const at = (s: string) => Date.parse(s);

function parse(raw: RawRouting) {
  return parseRouting({ people: PEOPLE, ...raw }, CHANNELS, { timezone: 'UTC' });
}

/** the only problem, which must contain every fragment */
function oneProblem(raw: RawRouting, ...fragments: string[]): void {
  const { problems } = parse(raw);
  assert.equal(problems.length, 1, `expected one problem, got ${JSON.stringify(problems)}`);
  for (const f of fragments) assert.ok(problems[0]!.includes(f), `"${problems[0]}" lacks "${f}"`);
}

function rule(match: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}): Rule {
  const { routing, problems } = parse({ rules: [{ name: 'r', to: ['bob'], ...(match ? { match } : {}), ...extra }] });
  assert.deepEqual(problems, []);
  return routing.rules[0]!;
}

function note(over: Partial<Notification> = {}): Notification {
  return {
    id: 'n1',
    source: 'hand:monitoring',
    topic: 'alerts/disk',
    priority: 'normal',
    title: 'Disk',
    text: 'the disk is full',
    tags: ['disk', 'storage'],
    at: 0,
    ...over,
  };
}

const NOON = at('2026-06-10T10:00:00Z'); // a Wednesday, 12:00 in Berlin

test('a full, valid routing parses without problems', () => {
  const { routing, problems } = parseRouting(
    {
      people: PEOPLE,
      rules: [
        {
          name: 'critical-everywhere',
          match: {
            source: 'hand:monitoring',
            topic: 'alerts/#',
            priority: ['critical'],
            tags: ['disk'],
            text: '(?i)disk|full',
            time: { from: '08:00', to: '18:00', days: ['mon', 'tue', 'wed', 'thu', 'fri'], timezone: BERLIN },
          },
          to: ['alice', 'ops-mail'],
          digest: 'hourly',
          rateLimit: { count: 5, perMs: 600_000 },
          escalate: {
            steps: [
              { to: ['bob'], afterMin: 10 },
              { to: ['ops-mail'], afterMin: 20 },
            ],
          },
          continue: false,
        },
        { name: 'rest', to: [] },
      ],
      default: ['ops-telegram'],
      quietHours: { from: '22:00', to: '07:00', timezone: BERLIN },
      digestAt: '08:30',
      dedupWindowMs: 300_000,
    },
    CHANNELS,
    { timezone: 'UTC', channelRateLimits: { 'ops-mail': { count: 20, perMs: 60_000 } } },
  );
  assert.deepEqual(problems, []);
  assert.equal(routing.rules.length, 2);
  const r = routing.rules[0]!;
  assert.deepEqual(r.targets, [
    { channel: 'ops-telegram', to: '123456' },
    { channel: 'ops-mail', to: 'alice@example.com' },
    { channel: 'ops-mail' },
  ]);
  assert.deepEqual(r.escalate, {
    steps: [
      { to: ['bob'], afterMs: 600_000 },
      { to: ['ops-mail'], afterMs: 1_200_000 },
    ],
  });
  assert.equal(r.match?.time?.timezone, BERLIN);
  assert.deepEqual(routing.default, [{ channel: 'ops-telegram' }]);
  assert.deepEqual(routing.quietHours, { from: 22 * 60, to: 7 * 60, timezone: BERLIN });
  assert.equal(routing.digestAt, 8 * 60 + 30);
  assert.equal(routing.digestZone, BERLIN, "daily digests go in quiet hours' zone");
  assert.equal(routing.dedupWindowMs, 300_000);
  assert.deepEqual(routing.channelRateLimits.get('ops-mail'), { count: 20, perMs: 60_000 });
  assert.equal(routing.rulesByName.get('rest')?.targets.length, 0);
});

test('defaults: digest at 08:00 in the device zone, 10 min dedup, no quiet hours, unrouted without default', () => {
  const { routing, problems } = parseRouting({}, CHANNELS, { timezone: 'Asia/Tokyo' });
  assert.deepEqual(problems, []);
  assert.equal(routing.digestAt, 480);
  assert.equal(routing.digestZone, 'Asia/Tokyo');
  assert.equal(routing.dedupWindowMs, 600_000);
  assert.equal(routing.quietHours, undefined);
  assert.deepEqual(routing.default, []);
  assert.deepEqual(routing.rules, []);
});

test('each bad input is a problem named by its path, saying what to write', () => {
  oneProblem(
    { rules: [{ name: 'a', match: { priority: 'urgent' }, to: ['bob'] }] },
    'rules[0].match.priority: "urgent" is not a priority; use low, normal, high, critical or "high+"',
  );
  oneProblem(
    { rules: [{ name: 'a', match: { priority: ['high', 'urgent'] }, to: ['bob'] }] },
    'rules[0].match.priority[1]: "urgent" is not a priority',
  );
  oneProblem(
    { rules: [{ name: 'a', to: ['bob', 'carol'] }] },
    'rules[0].to[1]: "carol" is neither a channel nor a person (channels: ops-telegram, ops-mail; people: alice, bob)',
  );
  oneProblem({ rules: [{ name: 'a', to: ['nope:1'] }] }, 'rules[0].to[0]: "nope:1" is neither a channel nor a person');
  oneProblem({ rules: [{ name: 'a', to: ['ops-mail:'] }] }, 'rules[0].to[0]', 'no address', 'ops-mail:ADDRESS');
  oneProblem({ rules: [{ name: 'a', to: ['alice:5'] }] }, 'rules[0].to[0]', 'alice is a person', 'write alice');
  oneProblem({ rules: [{ name: 'a', colour: 'red', to: ['bob'] }] }, 'rules[0].colour: unknown field; use name, match');
  oneProblem({ rules: [{ name: 'a', match: { sauce: 1 }, to: ['bob'] }] }, 'rules[0].match.sauce: unknown field');
  oneProblem(
    { rules: [{ name: 'a', match: { time: { from: '25:00', to: '07:00' } }, to: ['bob'] }] },
    'rules[0].match.time.from: "25:00" is not a time of day; write "HH:MM"',
  );
  oneProblem(
    { rules: [{ name: 'a', match: { time: { from: '08:00', to: '9am' } }, to: ['bob'] }] },
    'rules[0].match.time.to: "9am" is not a time of day',
  );
  oneProblem(
    { rules: [{ name: 'a', match: { time: { from: '08:00', to: '18:00', timezone: 'Mars/Olympus' } }, to: ['bob'] }] },
    'rules[0].match.time.timezone: "Mars/Olympus" is not a known IANA time zone',
  );
  oneProblem(
    { rules: [{ name: 'a', match: { time: { from: '08:00', to: '18:00', days: ['mon', 'funday'] } }, to: ['bob'] }] },
    'rules[0].match.time.days[1]: "funday" is not a day; write mon, tue',
  );
  oneProblem(
    { rules: [{ name: 'a', match: { time: { from: '08:00', to: '08:00' } }, to: ['bob'] }] },
    'rules[0].match.time: from and to are both "08:00"',
  );
  oneProblem(
    {
      rules: [
        { name: 'a', to: ['bob'] },
        { name: 'a', to: ['bob'] },
      ],
    },
    'rules[1].name: "a" is the name of an earlier rule; choose a unique name',
  );
  oneProblem({ rules: [{ name: 'Bad Name', to: ['bob'] }] }, 'rules[0].name: "Bad Name" is not a rule name');
  oneProblem({ rules: [{ to: ['bob'] }] }, 'rules[0].name: undefined is not a rule name');
  oneProblem({ rules: [{ name: 'default', to: ['bob'] }] }, 'rules[0].name: "default" is reserved');
  oneProblem({ rules: [{ name: 'a' }] }, 'rules[0].to: missing');
  oneProblem(
    { rules: [{ name: 'a', match: { text: '(unclosed' }, to: ['bob'] }] },
    'rules[0].match.text',
    'not a valid regular',
  );
  oneProblem(
    { rules: [{ name: 'a', match: { text: 'x'.repeat(201) }, to: ['bob'] }] },
    'rules[0].match.text: the regular expression is 201 characters; write at most 200',
  );
  oneProblem({ rules: [{ name: 'a', match: { topic: 'alerts/#/x' }, to: ['bob'] }] }, 'rules[0].match.topic', '"#"');
  oneProblem({ rules: [{ name: 'a', match: { topic: ['ok/+', 'a+/b'] }, to: ['bob'] }] }, 'rules[0].match.topic[1]');
  oneProblem({ rules: [{ name: 'a', match: { tags: [] }, to: ['bob'] }] }, 'rules[0].match.tags: [] is not a tag');
  oneProblem(
    { rules: [{ name: 'a', to: ['bob'], digest: 'weekly' }] },
    'rules[0].digest: "weekly"',
    'hourly, daily or none',
  );
  oneProblem({ rules: [{ name: 'a', to: ['bob'], rateLimit: { count: 0, perMs: 1000 } }] }, 'rules[0].rateLimit');
  oneProblem({ rules: [{ name: 'a', to: ['bob'], continue: 'yes' }] }, 'rules[0].continue: "yes" is not true or false');
  oneProblem({ rules: [{ name: 'a', to: ['bob'], escalate: { steps: [] } }] }, 'rules[0].escalate', 'steps');
  oneProblem(
    { rules: [{ name: 'a', to: ['bob'], escalate: { steps: [{ to: ['zed'], afterMin: 5 }] } }] },
    'rules[0].escalate.steps[0].to[0]: "zed" is neither a channel nor a person',
  );
  oneProblem(
    { rules: [{ name: 'a', to: ['bob'], escalate: { steps: [{ to: ['bob'], afterMin: -1 }] } }] },
    'rules[0].escalate.steps[0].afterMin: -1',
  );
  oneProblem({ rules: 'all' }, 'rules: write a list');
  oneProblem({ default: ['ops-telegram', 'pager'] }, 'default[1]: "pager" is neither a channel nor a person');
  oneProblem({ quietHours: { from: '22:00', to: '24:00' } }, 'quietHours.to: "24:00" is not a time of day');
  oneProblem({ quietHours: { from: '22:00', to: '07:00', timezone: 'Nowhere' } }, 'quietHours.timezone: "Nowhere"');
  oneProblem({ quietHours: { from: '22:00', to: '07:00', days: ['mon'] } }, 'quietHours.days', 'leave days out');
  oneProblem({ digestAt: '8' }, 'digestAt: "8" is not a time of day');
  oneProblem({ dedupWindowMs: -5 }, 'dedupWindowMs: -5 is not a window; write milliseconds');
  const people = parseRouting({ people: { alice: ['ops-telegram:1', 'sms:2'] } }, CHANNELS, { timezone: 'UTC' });
  assert.equal(people.problems.length, 1);
  assert.match(
    people.problems[0]!,
    /^people\.alice\[1\]: "sms:2" is not a channel or channel:address \(channels: ops-telegram, ops-mail\)$/,
  );
  assert.deepEqual(people.routing.people.get('alice'), [{ channel: 'ops-telegram', to: '1' }], 'the good entry stays');
  const empty = parseRouting({ people: null, quietHours: null, rules: null, default: null }, CHANNELS, {});
  assert.deepEqual(empty.problems, [], 'YAML keys left empty are absent');
  assert.match(
    parseRouting({ people: { bob: 'ops-mail:b', eve: 7 } }, CHANNELS).problems.join('|'),
    /^people\.eve: 7 is not a list/,
  );
  const clash = parseRouting({ people: { 'ops-mail': ['ops-telegram'] } }, CHANNELS, { timezone: 'UTC' });
  assert.match(clash.problems[0]!, /^people\.ops-mail: "ops-mail" is also a channel's name/);
});

test('a bad rule is left out, the rest work; several problems are all reported', () => {
  const { routing, problems } = parse({
    rules: [
      { name: 'good-1', to: ['bob'] },
      { name: 'bad', match: { priority: 'urgent', time: { from: '25:00', to: '07:00' } }, to: ['carol'] },
      { name: 'good-2', to: ['alice'] },
    ],
    default: ['ops-mail', 'nope'],
  });
  assert.deepEqual(
    routing.rules.map((r) => r.name),
    ['good-1', 'good-2'],
  );
  assert.equal(problems.length, 4, JSON.stringify(problems));
  assert.ok(problems.some((p) => p.startsWith('rules[1].match.priority')));
  assert.ok(problems.some((p) => p.startsWith('rules[1].match.time.from')));
  assert.ok(problems.some((p) => p.startsWith('rules[1].to[0]')));
  assert.ok(problems.some((p) => p.startsWith('default[1]')));
  assert.deepEqual(routing.default, [{ channel: 'ops-mail' }]);
});

test('priority: a list, one priority, or "x+" (that priority and above)', () => {
  const plus = rule({ priority: 'high+' });
  assert.deepEqual(plus.match?.priority, ['high', 'critical']);
  assert.equal(matches(plus, note({ priority: 'normal' }), NOON), false);
  assert.equal(matches(plus, note({ priority: 'high' }), NOON), true);
  assert.equal(matches(plus, note({ priority: 'critical' }), NOON), true);
  assert.deepEqual(rule({ priority: 'low+' }).match?.priority, ['low', 'normal', 'high', 'critical']);
  const list = rule({ priority: ['low', 'critical'] });
  assert.equal(matches(list, note({ priority: 'low' }), NOON), true);
  assert.equal(matches(list, note({ priority: 'high' }), NOON), false);
  assert.equal(matches(rule({ priority: 'normal' }), note({ priority: 'high' }), NOON), false);
});

test('source: globs with *, any of a list', () => {
  const r = rule({ source: ['hand:*', 'cli'] });
  assert.equal(matches(r, note({ source: 'hand:monitoring' }), NOON), true);
  assert.equal(matches(r, note({ source: 'cli' }), NOON), true);
  assert.equal(matches(r, note({ source: 'api:alice' }), NOON), false);
  const exact = rule({ source: 'hand:mon.toring' });
  assert.equal(matches(exact, note({ source: 'hand:monXtoring' }), NOON), false, '. is not a wildcard');
  assert.equal(matches(rule({ source: '*:alice' }), note({ source: 'api:alice' }), NOON), true);
});

test('topic: MQTT filters with + and #', () => {
  const r = rule({ topic: 'alerts/#' });
  assert.equal(matches(r, note({ topic: 'alerts' }), NOON), true, '# matches the parent level');
  assert.equal(matches(r, note({ topic: 'alerts/disk/sda' }), NOON), true);
  assert.equal(matches(r, note({ topic: 'notify/high' }), NOON), false);
  const plus = rule({ topic: ['notify/+', 'api'] });
  assert.equal(matches(plus, note({ topic: 'notify/high' }), NOON), true);
  assert.equal(matches(plus, note({ topic: 'notify/high/x' }), NOON), false);
  assert.equal(matches(plus, note({ topic: 'api' }), NOON), true);
});

test('tags: all of them', () => {
  const r = rule({ tags: ['disk', 'storage'] });
  assert.equal(matches(r, note({ tags: ['storage', 'disk', 'x'] }), NOON), true);
  assert.equal(matches(r, note({ tags: ['disk'] }), NOON), false);
  assert.equal(matches(rule({ tags: 'disk' }), note({ tags: ['disk'] }), NOON), true);
});

test('text: a regex on title + text, (?i) for any case', () => {
  const r = rule({ text: '(?i)disk|full' });
  assert.equal(matches(r, note({ title: 'DISK', text: 'x' }), NOON), true, 'the title counts');
  assert.equal(matches(r, note({ title: undefined, text: 'Is FULL' }), NOON), true);
  assert.equal(matches(r, note({ title: 'cpu', text: 'hot' }), NOON), false);
  const cs = rule({ text: 'disk' });
  assert.equal(matches(cs, note({ title: 'DISK', text: 'x' }), NOON), false, 'case-sensitive without (?i)');
  const anchored = rule({ text: '^Disk\\nthe' });
  assert.equal(matches(anchored, note(), NOON), true, 'title and text are joined by a newline');
});

test('absent match matches everything; every given field must match (AND)', () => {
  assert.equal(matches(rule(undefined), note(), NOON), true);
  const r = rule({ source: 'hand:*', priority: 'high+' });
  assert.equal(matches(r, note({ priority: 'high' }), NOON), true);
  assert.equal(matches(r, note({ priority: 'normal' }), NOON), false);
  assert.equal(matches(r, note({ priority: 'high', source: 'cli' }), NOON), false);
});

test('time: a window in a zone, with days, and over midnight', () => {
  const office = rule({
    time: { from: '08:00', to: '18:00', days: ['mon', 'tue', 'wed', 'thu', 'fri'], timezone: BERLIN },
  });
  // Wednesday 2026-06-10, Berlin is UTC+2
  assert.equal(matches(office, note(), at('2026-06-10T05:59:59Z')), false, '07:59 Berlin');
  assert.equal(matches(office, note(), at('2026-06-10T06:00:00Z')), true, '08:00 Berlin');
  assert.equal(matches(office, note(), at('2026-06-10T15:59:00Z')), true, '17:59 Berlin');
  assert.equal(matches(office, note(), at('2026-06-10T16:00:00Z')), false, '18:00 Berlin (to is exclusive)');
  assert.equal(matches(office, note(), at('2026-06-13T10:00:00Z')), false, 'Saturday');
  // in winter Berlin is UTC+1
  assert.equal(matches(office, note(), at('2026-01-14T07:00:00Z')), true, '08:00 Berlin in January');
  assert.equal(matches(office, note(), at('2026-01-14T06:30:00Z')), false, '07:30 Berlin in January');
  // a zone's day differs from UTC's: Friday 23:30 UTC is Saturday 08:30 in Tokyo
  const tokyo = rule({ time: { from: '08:00', to: '18:00', days: ['sat'], timezone: 'Asia/Tokyo' } });
  assert.equal(matches(tokyo, note(), at('2026-06-12T23:30:00Z')), true);

  const night = rule({ time: { from: '22:00', to: '06:00', timezone: 'UTC' } });
  assert.equal(matches(night, note(), at('2026-06-10T21:59:00Z')), false);
  assert.equal(matches(night, note(), at('2026-06-10T22:00:00Z')), true);
  assert.equal(matches(night, note(), at('2026-06-11T03:00:00Z')), true, 'after midnight');
  assert.equal(matches(night, note(), at('2026-06-11T06:00:00Z')), false);
  assert.equal(matches(night, note(), at('2026-06-11T12:00:00Z')), false);
  // a night that starts on Friday covers Saturday's early hours, not Friday's
  const fridayNight = rule({ time: { from: '22:00', to: '06:00', days: ['friday'], timezone: 'UTC' } });
  assert.equal(matches(fridayNight, note(), at('2026-06-12T23:00:00Z')), true, 'Friday 23:00');
  assert.equal(matches(fridayNight, note(), at('2026-06-13T02:00:00Z')), true, 'Saturday 02:00');
  assert.equal(matches(fridayNight, note(), at('2026-06-12T02:00:00Z')), false, "Friday 02:00 is Thursday's night");
  // no zone: the device's
  const device = parseRouting(
    { people: PEOPLE, rules: [{ name: 'r', to: ['bob'], match: { time: { from: '09:00', to: '10:00' } } }] },
    CHANNELS,
    { timezone: 'America/New_York' },
  ).routing.rules[0]!;
  assert.equal(device.match?.time?.timezone, 'America/New_York');
  assert.equal(matches(device, note(), at('2026-06-10T13:30:00Z')), true, '09:30 in New York (UTC-4)');
});

test('expandTargets: people to their addresses, channels, channel:address; deduped; unknown skipped', () => {
  const { routing } = parse({});
  assert.deepEqual(
    expandTargets(['alice', 'ops-mail', 'bob', 'ops-telegram:123456', 'ops-mail:x@y', 'carol'], routing),
    [
      { channel: 'ops-telegram', to: '123456' },
      { channel: 'ops-mail', to: 'alice@example.com' },
      { channel: 'ops-mail' },
      { channel: 'ops-mail', to: 'x@y' },
    ],
  );
  assert.deepEqual(
    expandTargets(['ops-mail:a:b'], routing),
    [{ channel: 'ops-mail', to: 'a:b' }],
    'first colon splits',
  );
  assert.deepEqual(unknownRefs(['alice', 'carol'], routing).length, 1);
  assert.match(unknownRefs(['carol'], routing)[0]!, /"carol" is neither a channel nor a person/);
});

test('zonedParts: wall clock and weekday in a zone', () => {
  assert.deepEqual(zonedParts(at('2026-01-01T23:30:15Z'), BERLIN), {
    year: 2026,
    month: 1,
    day: 2,
    hour: 0,
    minute: 30,
    second: 15,
    weekday: 'fri',
  });
  assert.equal(zonedParts(at('2026-01-01T00:00:00Z'), 'UTC').hour, 0, 'midnight is 0, not 24');
});

test('localInstant and nextOccurrence: DST in Europe/Berlin (2026-03-29 spring forward, 2026-10-25 fall back)', () => {
  // 02:30 does not exist on 2026-03-29 (02:00 CET → 03:00 CEST at 01:00 UTC): the first valid instant after
  assert.equal(iso(localInstant(2026, 3, 29, 150, BERLIN)), '2026-03-29T01:00:00.000Z');
  assert.equal(iso(localInstant(2026, 3, 29, 120, BERLIN)), '2026-03-29T01:00:00.000Z');
  assert.equal(iso(localInstant(2026, 3, 29, 180, BERLIN)), '2026-03-29T01:00:00.000Z', '03:00 CEST is the same');
  assert.equal(iso(localInstant(2026, 3, 29, 90, BERLIN)), '2026-03-29T00:30:00.000Z', '01:30 CET');
  // 02:30 happens twice on 2026-10-25 (00:30 UTC CEST, 01:30 UTC CET): the first
  assert.equal(iso(localInstant(2026, 10, 25, 150, BERLIN)), '2026-10-25T00:30:00.000Z');
  assert.equal(iso(localInstant(2026, 10, 25, 180, BERLIN)), '2026-10-25T02:00:00.000Z', '03:00 CET');
  // 08:00 on either side of a change
  assert.equal(iso(nextOccurrence(480, BERLIN, at('2026-03-28T12:00:00Z'))), '2026-03-29T06:00:00.000Z');
  assert.equal(iso(nextOccurrence(480, BERLIN, at('2026-03-27T12:00:00Z'))), '2026-03-28T07:00:00.000Z');
  assert.equal(iso(nextOccurrence(480, BERLIN, at('2026-10-24T12:00:00Z'))), '2026-10-25T07:00:00.000Z');
  // strictly after: at 08:00 itself, the next day's
  assert.equal(iso(nextOccurrence(480, BERLIN, at('2026-10-25T07:00:00Z'))), '2026-10-26T07:00:00.000Z');
  // in the gap's day, 02:30 → the transition
  assert.equal(iso(nextOccurrence(150, BERLIN, at('2026-03-28T23:00:00Z'))), '2026-03-29T01:00:00.000Z');
  // past the first 02:30 of the fall-back day (in the repeated hour), the next is the next day's
  assert.equal(iso(nextOccurrence(150, BERLIN, at('2026-10-25T00:45:00Z'))), '2026-10-26T01:30:00.000Z');
  // another zone's gap at a half hour (Lord Howe: 02:00 → 02:30 on 2026-10-04)
  assert.equal(iso(localInstant(2026, 10, 4, 135, 'Australia/Lord_Howe')), '2026-10-03T15:30:00.000Z');
  // around the year's end
  assert.equal(iso(nextOccurrence(0, 'UTC', at('2026-12-31T23:59:00Z'))), '2027-01-01T00:00:00.000Z');
});

test('nextFullHour: the zone wall clock, across DST and in a half-hour zone', () => {
  assert.equal(
    iso(nextFullHour(at('2026-03-29T00:30:00Z'), BERLIN)),
    '2026-03-29T01:00:00.000Z',
    '01:30 CET → 03:00 CEST',
  );
  assert.equal(
    iso(nextFullHour(at('2026-10-25T00:59:59Z'), BERLIN)),
    '2026-10-25T01:00:00.000Z',
    '02:59 CEST → 02:00 CET',
  );
  assert.equal(iso(nextFullHour(at('2026-06-10T10:00:00Z'), BERLIN)), '2026-06-10T11:00:00.000Z', 'strictly after');
  assert.equal(iso(nextFullHour(at('2026-06-10T10:10:00Z'), 'Asia/Kolkata')), '2026-06-10T10:30:00.000Z');
});

test('inTimeWindow directly: a window that ends at midnight', () => {
  const w = { from: 18 * 60, to: 0, timezone: 'UTC' };
  assert.equal(inTimeWindow(w, at('2026-06-10T23:59:00Z')), true);
  assert.equal(inTimeWindow(w, at('2026-06-11T00:00:00Z')), false);
  assert.equal(inTimeWindow(w, at('2026-06-10T17:59:00Z')), false);
});
