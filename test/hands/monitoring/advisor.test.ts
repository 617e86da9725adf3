import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LlmAdvisor } from '../../../hands/monitoring/advisor.ts';
import type { Advisor } from '../../../hands/monitoring/playbooks.ts';

const playbook: Advisor = { suggestFix: async () => 'check the fan' };
const alert = {
  sensor: 'cpu.temp',
  rule: 'above',
  severity: 'critical',
  message: 'cpu.temp above 70',
  value: 81,
} as never;
const recent = { ts: [1, 2, 3], values: [70, 75, 81], unit: '°C' };

test('the LLM answer is used, with the provider named; the readings and the playbook go in the prompt', async () => {
  const calls: unknown[][] = [];
  const a = new LlmAdvisor(async (...args) => {
    calls.push(args);
    return { text: ' Clean the heatsink. ', provider: 'local' };
  }, playbook);
  assert.equal(await a.suggestFix(alert, recent), 'Clean the heatsink. [local]');
  const [method, req, opts] = calls[0]! as [string, { messages: Array<{ content: string }> }, { purpose: string }];
  assert.equal(method, 'llm.chat');
  assert.equal(opts.purpose, 'monitoring');
  assert.match(req.messages[1]!.content, /70, 75, 81/);
  assert.match(req.messages[1]!.content, /check the fan/);
});

test('no grant or no provider: the playbook answers and the LLM is not asked again', async () => {
  let n = 0;
  const a = new LlmAdvisor(async () => {
    n++;
    throw Object.assign(new Error('no llm grant'), { code: 'CAPABILITY_DENIED' });
  }, playbook);
  assert.equal(await a.suggestFix(alert, recent), 'check the fan');
  assert.equal(await a.suggestFix(alert, recent), 'check the fan');
  assert.equal(n, 1);
  assert.equal(a.off, 'CAPABILITY_DENIED');
});

test('a passing failure or an empty answer falls back for that alert only', async () => {
  let n = 0;
  const a = new LlmAdvisor(async () => {
    n++;
    if (n === 1) throw Object.assign(new Error('stalled'), { code: 'LLM_TIMEOUT' });
    return { text: '   ' };
  }, playbook);
  assert.equal(await a.suggestFix(alert, recent), 'check the fan');
  assert.equal(await a.suggestFix(alert, recent), 'check the fan');
  assert.equal(n, 2);
  assert.equal(a.off, null);
});
