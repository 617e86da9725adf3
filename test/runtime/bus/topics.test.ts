import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  filterCovers,
  toAbsolute,
  toRelative,
  topicMatches,
  topics,
  validateFilter,
  validateTopic,
} from '../../../runtime/core/topics.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

function invalid(fn: () => void): void {
  assert.throws(fn, (err: unknown) => err instanceof TalonError && err.code === 'BUS_TOPIC_INVALID');
}

test('topicMatches: matrix of filters and topics', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/b', false],
    ['a/b', 'a/b/c', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/+', 'a/', true], // an empty level is a level [MQTT-4.7.1-3]
    ['a/+', 'a', false],
    ['+', 'a', true],
    ['+', 'a/b', false],
    ['+/+', '/a', true],
    ['/+', '/a', true],
    ['+', '/a', false],
    ['#', 'a', true],
    ['#', 'a/b/c', true],
    ['#', '/', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'a', true], // `#` also matches the parent level [MQTT-4.7.1-2]
    ['a/#', 'ab', false],
    ['a/#', 'b/a', false],
    ['a/+/#', 'a/b', true],
    ['a/+/#', 'a', false],
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    // `$` topics are not matched by a wildcard at the first level [MQTT-4.7.2-1]
    ['#', '$SYS/broker/uptime', false],
    ['+/broker/uptime', '$SYS/broker/uptime', false],
    ['+/#', '$SYS/x', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['$SYS/+/uptime', '$SYS/broker/uptime', true],
    ['$SYS', '$SYS', true],
    ['talon/+/state', 'talon/dev1/state', true],
    ['talon/dev1/hands/+/status', 'talon/dev1/hands/x/status', true],
    ['talon/dev1/hands/+/status', 'talon/dev1/hands/x/y/status', false],
  ];
  for (const [filter, topic, want] of cases) {
    assert.equal(topicMatches(filter, topic), want, `${filter} vs ${topic}`);
  }
});

test('filterCovers: a grant covers a filter only when every matching topic is granted', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/b', 'a/b', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a', true],
    ['a/#', 'a/#', true],
    ['a/#', 'a/+/c', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false], // a/# reaches deeper (and matches `a`)
    ['a/+', 'a/b/c', false],
    ['a/b', 'a/+', false],
    ['a/b', 'a/#', false],
    ['a', 'a/#', false],
    ['a/+/#', 'a/#', false], // a/# matches `a`, a/+/# does not
    ['a/+/#', 'a/b/#', true],
    ['#', 'anything/+/#', true],
    ['#', '$SYS/#', false],
    ['+/#', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
    ['+/+', 'a/#', false],
    ['talon/dev1/sensors/#', 'talon/dev1/sensors/+', true],
    ['talon/dev1/sensors/#', 'talon/dev1/#', false],
  ];
  for (const [grant, filter, want] of cases) {
    assert.equal(filterCovers(grant, filter), want, `${grant} covers ${filter}`);
  }
});

test('filterCovers agrees with topicMatches on sample topics', () => {
  const filters = ['a/#', 'a/+', 'a/b', '#', '+/b', 'a/+/c', 'a/b/#', '+', '+/+/+'];
  const sample = ['a', 'a/b', 'a/c', 'a/b/c', 'x/b', 'a/b/c/d', 'b', '$SYS/a', 'a/'];
  for (const grant of filters) {
    for (const filter of filters) {
      if (!filterCovers(grant, filter)) continue;
      for (const t of sample) {
        if (topicMatches(filter, t)) assert.ok(topicMatches(grant, t), `${grant} covers ${filter} but not ${t}`);
      }
    }
  }
});

test('validateTopic accepts names and refuses wildcards, empty, NUL, too long', () => {
  validateTopic('talon/dev1/state');
  validateTopic('/leading/slash');
  validateTopic('$SYS/x');
  invalid(() => validateTopic(''));
  invalid(() => validateTopic('a/+/b'));
  invalid(() => validateTopic('a/#'));
  invalid(() => validateTopic('a\u0000b'));
  invalid(() => validateTopic('x'.repeat(65536)));
});

test('validateFilter: # last and alone, + alone in its level', () => {
  for (const ok of ['#', 'a/#', '+', 'a/+/b', '+/+', '/#', '$SYS/#', 'a//b']) validateFilter(ok);
  for (const bad of ['', 'a#', 'a/#/b', 'a/b#', '#/a', 'a+', 'a/+b/c', 'a/b+', 'a\u0000', 'x'.repeat(65536)]) {
    invalid(() => validateFilter(bad));
  }
});

test('relative and absolute topics under the device root', () => {
  const root = topics.root('dev1');
  assert.equal(root, 'talon/dev1');
  assert.equal(toAbsolute(root, 'sensors/temp'), 'talon/dev1/sensors/temp');
  assert.equal(toAbsolute(root, '/homeassistant/status'), 'homeassistant/status');
  assert.equal(toRelative(root, 'talon/dev1/sensors/temp'), 'sensors/temp');
  assert.equal(toRelative(root, 'homeassistant/status'), '/homeassistant/status');
  assert.equal(toRelative(root, 'talon/dev10/x'), '/talon/dev10/x');
  assert.equal(topics.state('dev1'), 'talon/dev1/state');
  assert.equal(topics.handStatus('dev1', 'h'), 'talon/dev1/hands/h/status');
  assert.equal(topics.commandReply('dev1', 'cli-1', 'r1'), 'talon/dev1/cmd/reply/cli-1/r1');
  assert.equal(topics.commandReplyLegacy('dev1', 'r1'), 'talon/dev1/cmd/reply/r1');
});
