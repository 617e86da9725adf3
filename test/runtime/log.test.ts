/** The daemon's log: one entry a line; a message's line breaks cannot forge another entry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../runtime/log.ts';

test('a line break in a message continues the entry, indented: it cannot pass for another entry', () => {
  const out: string[] = [];
  const log = createLogger('debug', (s) => out.push(s));
  log.line('info', 'prober', 'fine\n2026-01-01T00:00:00.000Z info  [talon] admin password changed\r\nand\rmore');
  log.info('one line');
  const lines = out.join('').split('\n').filter(Boolean);
  assert.equal(lines.length, 5);
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT[\d:.]+Z info {2}\[prober\] fine$/);
  for (const l of lines.slice(1, 4)) assert.match(l, /^ {4}\| /);
  assert.match(lines[4]!, /^\d{4}-\d\d-\d\dT[\d:.]+Z info {2}\[talon\] one line$/);
});
