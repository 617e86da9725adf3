/**
 * The kernel's DNS for Hands (runtime/capabilities/resolver.ts): config `network.hosts` answers without DNS, configured
 * servers are asked for A/AAAA and MX (a real DNS server on UDP 127.0.0.1 speaking the wire format, test/fixtures/dns.ts),
 * and the `dns.mx` service checks the Hand's grant before it asks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configResolver, mxResolver } from '../../../runtime/capabilities/resolver.ts';
import { HandFetch } from '../../../runtime/capabilities/fetch.ts';
import { normalizeNetwork } from '../../../runtime/core/network.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { startDns } from '../../fixtures/dns.ts';

const never = async (host: string) => {
  throw new Error(`the fallback was asked for ${host}`);
};

test('network.hosts answers from the table, case and a trailing dot aside; the rest goes to the fallback', async () => {
  const r = configResolver({ hosts: { 'Acme.example': '127.0.0.1', 'v6.example': '::1' } }, async (h) => [
    { address: `fallback:${h}`, family: 4 },
  ]);
  assert.deepEqual(await r('acme.example.'), [{ address: '127.0.0.1', family: 4 }]);
  assert.deepEqual(await r('v6.example'), [{ address: '::1', family: 6 }]);
  assert.deepEqual(await r('other.example'), [{ address: 'fallback:other.example', family: 4 }]);
  assert.throws(() => configResolver({ hosts: { 'x.example': 'not-an-ip' } }, never), /network\.hosts\.x\.example/);
});

test('configured DNS servers are asked for A/AAAA and MX; unknown names fail, names without MX give []', async () => {
  const dns = await startDns({
    'shop.example': {
      A: ['127.0.0.9'],
      MX: [
        { exchange: 'MX2.shop.example', priority: 20 },
        { exchange: 'mx1.shop.example', priority: 10 },
      ],
    },
    'nomail.example': { A: ['127.0.0.8'] },
  });
  try {
    const r = configResolver({ dns: [dns.server] }, never);
    assert.deepEqual(await r('shop.example'), [{ address: '127.0.0.9', family: 4 }]);
    await assert.rejects(r('missing.example'));
    const mx = mxResolver({ dns: [dns.server] });
    assert.deepEqual(await mx('shop.example'), [
      { exchange: 'mx1.shop.example', priority: 10 },
      { exchange: 'mx2.shop.example', priority: 20 },
    ]);
    assert.deepEqual(await mx('nomail.example'), []);
    assert.deepEqual(await mx('missing.example'), []);
    assert.ok(dns.queries.some((q) => q.type === 'MX' && q.name === 'shop.example'));
  } finally {
    await dns.close();
  }
});

test('dns.mx: only for a domain the Hand may reach, a bad name refused, the answer from the resolver', async () => {
  const asked: string[] = [];
  const net = new HandFetch({
    audit: { record: async () => {} },
    mx: async (d) => {
      asked.push(d);
      return [{ exchange: `mx.${d}`, priority: 5 }];
    },
  });
  const mx = net.services()['dns.mx']!;
  const hand = (hosts: string[]) =>
    ({ name: 'leads', grants: { ...NO_CAPABILITIES, network: normalizeNetwork(hosts, 'test') } }) as never;
  assert.deepEqual(await mx(hand(['*.example']), ['Acme.Example.']), [{ exchange: 'mx.acme.example', priority: 5 }]);
  await assert.rejects(
    mx(hand(['other.example']), ['acme.example']),
    (e: unknown) => e instanceof TalonError && e.code === 'CAPABILITY_DENIED' && /acme\.example/.test(e.message),
  );
  await assert.rejects(
    mx(hand(['*']), ['not a name']),
    (e: unknown) => e instanceof TalonError && e.code === 'BAD_REQUEST',
  );
  assert.deepEqual(asked, ['acme.example']);
});
