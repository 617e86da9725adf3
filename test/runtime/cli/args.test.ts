/** runtime/cli/args.ts parse: options given more than once */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, type CommandSpec } from '../../../runtime/cli/args.ts';

const spec: CommandSpec = {
  name: 'talon demo',
  summary: 'a command for the test',
  options: {
    ignore: { type: 'string', value: 'RE', multiple: true, description: 'more than once' },
    url: { type: 'string', value: 'URL', description: 'once' },
  },
};

test('a `multiple` option keeps every value (joined by newlines); a plain one keeps the last', () => {
  const p = parse(spec, ['--ignore', 'a+', '--url', 'http://x/', '--ignore', 'b\\d', '--url', 'http://y/']);
  assert.equal(p.values.ignore, 'a+\nb\\d');
  assert.equal(p.values.url, 'http://y/');
  assert.equal(parse(spec, ['--ignore', 'only']).values.ignore, 'only');
  assert.equal(parse(spec, []).values.ignore, undefined);
});
