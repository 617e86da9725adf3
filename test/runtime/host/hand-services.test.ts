/** The kernel services for messaging Hands (runtime/host/hand-services.ts): secrets.get and approvals.decide. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handServices, notifier } from '../../../runtime/host/hand-services.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import type { AuditEvent } from '../../../runtime/audit/types.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';

function setup(now: () => number = Date.now) {
  const audits: AuditEvent[] = [];
  const decided: unknown[][] = [];
  const s = handServices({
    now,
    secrets: { get: async (n: string) => (n === 'tg_token' ? '123:abc' : undefined) } as never,
    audit: { record: async (e: AuditEvent) => void audits.push(e) },
    approvals: {
      get: async (id: string) => ({ id, hand: id === 'own' ? 'comms' : 'gardener', tool: 'shell.exec' }) as never,
      decide: async (...a: unknown[]) => {
        decided.push(a);
        return { id: a[0], state: 'approved' } as never;
      },
    },
  });
  const hand = (grants: Partial<Capabilities>) => ({
    name: 'comms',
    grants: { ...structuredClone(NO_CAPABILITIES), ...grants },
  });
  return { s, audits, decided, hand };
}

test('secrets.get: only names in the grant (globs), every read audited, never the value', async () => {
  const { s, audits, hand } = setup();
  assert.equal(await s['secrets.get']!(hand({ secrets: ['tg_*'] }), ['tg_token']), '123:abc');
  assert.equal(await s['secrets.get']!(hand({ secrets: ['tg_*'] }), ['tg_missing']), null);
  await assert.rejects(
    s['secrets.get']!(hand({ secrets: ['tg_*'] }), ['db_password']),
    (e: { code?: string; message: string }) => {
      assert.equal(e.code, 'CAPABILITY_DENIED');
      assert.match(e.message, /add it to the Hand's capabilities\.secrets/);
      return true;
    },
  );
  assert.deepEqual(
    audits.map((a) => [a.action, a.subject, a.decision]),
    [
      ['secret.read', 'tg_token', 'allow'],
      ['secret.read', 'tg_missing', 'error'],
      ['secret.read', 'db_password', 'deny'],
    ],
  );
  assert.ok(!JSON.stringify(audits).includes('123:abc'));
});

test("approvals.decide: needs the grant, names the person through the Hand, never the Hand's own request", async () => {
  const { s, decided, hand } = setup();
  await assert.rejects(
    s['approvals.decide']!(hand({}), ['ap1', 'approve', 'tg:42']),
    /capabilities\.approvals is not true/,
  );
  await s['approvals.decide']!(hand({ approvals: true }), ['ap1', 'deny', 'tg:42', 'not now']);
  assert.deepEqual(decided, [['ap1', 'deny', 'hand:comms/tg:42', 'not now']]);
  await assert.rejects(
    s['approvals.decide']!(hand({ approvals: true }), ['own', 'approve', 'tg:42']),
    /its own approval request/,
  );
  await assert.rejects(s['approvals.decide']!(hand({ approvals: true }), ['ap1', 'maybe', 'tg:42']), /needs \(id/);
});

test('the notify tool: the Hand’s decisions summed up as where it went', async () => {
  const calls: unknown[] = [];
  const n = notifier(
    {
      request: async (...a: unknown[]) => {
        calls.push(a);
        return {
          id: 'n1',
          decisions: [
            { kind: 'send', channel: 'tg' },
            { kind: 'hold', channel: 'mail' },
          ],
        };
      },
    } as never,
    'communication',
    'notify',
  );
  const r = await n({ text: 'hi', priority: 'high', from: 'hand:gardener', hand: 'gardener' });
  assert.deepEqual(r.channels, ['tg', 'mail']);
  assert.equal(r.delivered, true);
  assert.match(r.detail!, /queued as n1 for tg, mail \(1 held/);
  assert.deepEqual(calls[0], ['communication', 'notify', { text: 'hi', priority: 'high', source: 'hand:gardener' }]);
});

test('secrets.get: at most 30 reads a Hand a minute; the first refusal audited, none after it in that minute', async () => {
  let t = 1_000_000;
  const { s, audits, hand } = setup(() => t);
  const h = hand({ secrets: ['*'] });
  for (let i = 0; i < 30; i++) await s['secrets.get']!(h, ['tg_token']);
  for (let i = 0; i < 5; i++)
    await assert.rejects(s['secrets.get']!(h, ['tg_token']), (e: { code?: string }) => e.code === 'QUOTA_EXCEEDED');
  assert.equal(audits.length, 31, '30 reads and one refusal');
  assert.equal(audits.at(-1)!.decision, 'deny');
  t += 60_000;
  assert.equal(await s['secrets.get']!(h, ['tg_token']), '123:abc');
});
