/**
 * Tools a Hand's surface declares: the kind's schemas as the tool's, the call a request to the Hand, the registry's
 * steps around it (grant, input schema, approval for destructive ones, the Hand's refusal passed on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineProtocol, defineSurface } from '../../../hands/sdk/index.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import { ToolRegistry } from '../../../runtime/tools/registry.ts';
import { surfaceTools } from '../../../runtime/tools/surface-tools.ts';
import type { ToolCaller } from '../../../runtime/tools/types.ts';

const protocol = defineProtocol({
  add: {
    summary: 'add',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: { type: 'string', pattern: '^[a-z]+$' } },
    },
    answer: { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } },
  },
  drop: {
    summary: 'drop',
    request: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
    answer: { type: 'object' },
  },
});
const surface = defineSurface({
  id: 'jobs',
  title: 'Jobs',
  protocol,
  tools: [
    { name: 'jobs.add', kind: 'add', description: 'add a job' },
    { name: 'jobs.drop', kind: 'drop', destructive: true, description: 'drop a job' },
  ],
});

test('surface tools: the kind schemas, a request to the Hand, the registry around it', async () => {
  const sent: Array<{ id: string; kind: string; body: unknown }> = [];
  const tools = surfaceTools([surface], async (id, kind, body) => {
    sent.push({ id, kind, body });
    if ((body as { id: string }).id === 'taken') throw new TalonError('CONFLICT', 'id: "taken" exists');
    return { ok: true };
  });
  assert.deepEqual(
    tools.map((t) => [t.name, t.annotations.destructiveHint, t.source]),
    [
      ['jobs.add', false, 'hand:jobs'],
      ['jobs.drop', true, 'hand:jobs'],
    ],
  );
  assert.deepEqual(tools[0]!.inputSchema, protocol.add.request);
  const asked: string[] = [];
  const reg = new ToolRegistry({
    audit: { record: async () => undefined },
    approvals: {
      request: async (r) => {
        asked.push(r.tool);
        return { id: 'a1', approved: false, by: 'user:ada' };
      },
      pending: () => 0,
    },
    config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000 }),
  });
  for (const t of tools) reg.register(t, { checkSchemas: false });
  const caller = (allow: string[]): ToolCaller => ({
    actor: 'hand:planner',
    hand: 'planner',
    admin: false,
    grants: { ...NO_CAPABILITIES, tools: { allow, approve: [] } },
    folder: '/tmp/planner',
  });
  const r = await reg.call(caller(['jobs.*']), 'jobs.add', { id: 'water' });
  assert.deepEqual(r.output, { ok: true });
  assert.deepEqual(sent, [{ id: 'jobs', kind: 'add', body: { id: 'water' } }]);
  await assert.rejects(reg.call(caller(['other.*']), 'jobs.add', { id: 'water' }), { code: 'CAPABILITY_DENIED' });
  await assert.rejects(reg.call(caller(['jobs.*']), 'jobs.add', { id: 'Water!' }), { code: 'TOOL_BAD_INPUT' });
  await assert.rejects(reg.call(caller(['jobs.*']), 'jobs.add', { id: 'taken' }), { code: 'CONFLICT' });
  await assert.rejects(reg.call(caller(['jobs.*']), 'jobs.drop', { id: 'water' }), { code: 'APPROVAL_DENIED' });
  assert.deepEqual(asked, ['jobs.drop'], 'destructive: a person was asked');
  assert.equal(sent.length, 2, 'refused calls never reached the Hand');
});

test('defineSurface refuses a tool whose kind is not in the protocol', () => {
  assert.throws(
    () => defineSurface({ id: 'x', title: 'X', protocol, tools: [{ name: 'x.go', kind: 'go', description: 'go' }] }),
    /tool "x\.go" sends "go", not in its protocol/,
  );
});
