/**
 * The CRM outbox over the in-memory store with a clock the test moves, and real CRM clients against the CRM fake
 * (test/fixtures/platforms/crm.ts) over HTTP: 429 with Retry-After, 500s, an outage of several ticks (every qualified
 * lead delivered exactly once per target, counted in the fake), 401 → failed → retry, a restart on the same store
 * (pending kept, a sent version not enqueued again), a changed version → one update.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { type CrmClient, type CrmEnv, crmClient, parseCrmTarget } from '../../../hands/leads/crm/index.ts';
import { LeadOutbox, QUEUE_PREFIX, SENT_PREFIX } from '../../../hands/leads/outbox.ts';
import type { CrmTarget, Delivery, Lead } from '../../../hands/leads/types.ts';
import { type CrmFake, startCrm } from '../../fixtures/platforms/crm.ts';
import { memStore } from '../../helpers/mem-store.ts';
import { webFetch } from '../../helpers/web-fetch.ts';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const src = (value: string) => ({ value, source: 'https://directory.example/list', at: T0 });

function lead(domain: string, version = 'v1', company = `Company ${domain}`): Lead {
  return {
    id: `d:${domain}`,
    domain,
    company: src(company),
    website: src(`https://${domain}/`),
    emails: [],
    phones: [],
    social: [],
    technologies: [],
    mx: [],
    score: 75,
    reasons: [],
    status: 'qualified',
    sources: ['directory'],
    firstSeen: T0,
    lastSeen: T0,
    version,
  };
}

let crm: CrmFake;
const secrets = new Map<string, string>();
let now = T0;
let env: CrmEnv;

before(async () => {
  crm = await startCrm();
  env = { fetch: webFetch(crm.port).fetch, secret: async (n) => secrets.get(n), now: () => now };
});
after(async () => {
  await crm.close();
});
afterEach(() => {
  crm.hubspot.companies.clear();
  crm.pipedrive.orgs.clear();
  crm.webhook.received.length = 0;
  crm.requests.length = 0;
  crm.outage(false);
  crm.failNext(0, 0);
  secrets.set('hs', crm.hubspot.token);
  secrets.set('pd', crm.pipedrive.token);
  secrets.set('hook', 'whsec');
  now = T0;
});
secrets.set('hook', 'whsec');

function targets(): CrmTarget[] {
  const raw = [
    { name: 'hubspot', kind: 'hubspot', url: crm.url, secret: 'hs' },
    { name: 'pipedrive', kind: 'pipedrive', url: crm.url, secret: 'pd', domainField: crm.pipedrive.domainField },
    { name: 'hook', kind: 'webhook', url: `${crm.url}/webhook`, secret: 'hook' },
  ];
  return raw.map((r, i) => {
    const t = parseCrmTarget(r, `crm[${i}]`);
    assert.ok(typeof t !== 'string', String(t));
    return t;
  });
}

function setup(names: string[] = ['hubspot'], store = memStore()) {
  secrets.set('hs', crm.hubspot.token);
  secrets.set('pd', crm.pipedrive.token);
  const clients = new Map<string, CrmClient>();
  for (const t of targets()) if (names.includes(t.name)) clients.set(t.name, crmClient(t, env));
  const results: Array<{ key: string; outcome: string }> = [];
  const box = new LeadOutbox(store, {
    clients,
    now: () => now,
    random: () => 0.5,
    onResult: (d, outcome) => void results.push({ key: d.key, outcome }),
  });
  const leads = new Map<string, Lead>();
  const load = async (id: string) => leads.get(id);
  return { box, store, leads, load, results, clients };
}

describe('LeadOutbox', () => {
  it('429 with Retry-After: the target waits, then the lead is delivered once', async () => {
    const { box, leads, load, store } = setup();
    const l = lead('acme.example');
    leads.set(l.id, l);
    assert.equal(await box.enqueue(l, ['hubspot']), 1);
    const stored = store.map.get(`${QUEUE_PREFIX}hubspot/d:acme.example`) as Delivery;
    assert.equal(stored.state, 'pending');
    crm.failNext(1, 429);
    assert.deepEqual(await box.tick(load), { sent: 0, retried: 1, failed: 0 });
    const [d] = await box.list({ state: 'pending' });
    assert.equal(d?.nextAt, T0 + 1000, 'Retry-After: 1');
    const asked = crm.requests.length;
    assert.deepEqual(await box.tick(load), { sent: 0, retried: 0, failed: 0 });
    assert.equal(crm.requests.length, asked, 'nothing is sent to a target that asked to wait');
    now += 1000;
    assert.deepEqual(await box.tick(load), { sent: 1, retried: 0, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 1);
    const [sent] = await box.list({ state: 'sent' });
    assert.equal(sent?.attempts, 2);
    assert.equal(sent?.action, 'created');
    assert.deepEqual(await box.counts(), { pending: 0, sent: 1, failed: 0 });
    now += 60_000;
    assert.deepEqual(await box.tick(load), { sent: 0, retried: 0, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 1);
  });

  it('500 three times, then success: backoff doubling from 2 s', async () => {
    const { box, leads, load } = setup();
    const l = lead('beta.example');
    leads.set(l.id, l);
    await box.enqueue(l, ['hubspot']);
    crm.failNext(3, 500);
    const waits: number[] = [];
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await box.tick(load), { sent: 0, retried: 1, failed: 0 });
      const [d] = await box.list();
      assert.ok(d);
      waits.push(d.nextAt - now);
      assert.match(d.lastError ?? '', /failed \(500\)/);
      now = d.nextAt;
    }
    assert.deepEqual(waits, [2000, 4000, 8000]);
    assert.deepEqual(await box.tick(load), { sent: 1, retried: 0, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 1);
    const [d] = await box.list();
    assert.equal(d?.state, 'sent');
    assert.equal(d?.attempts, 4);
    assert.equal(d?.lastError, undefined);
  });

  it('an outage of several ticks: every lead reaches every target exactly once', async () => {
    const names = ['hubspot', 'pipedrive', 'hook'];
    const { box, leads, load } = setup(names);
    const domains = ['a1.example', 'a2.example', 'a3.example', 'a4.example', 'a5.example'];
    for (const d of domains) leads.set(`d:${d}`, lead(d));
    // two go out before the outage
    for (const d of domains.slice(0, 2)) await box.enqueue(leads.get(`d:${d}`) as Lead, names);
    assert.deepEqual(await box.tick(load), { sent: 6, retried: 0, failed: 0 });
    crm.outage(true);
    for (const d of domains.slice(2)) await box.enqueue(leads.get(`d:${d}`) as Lead, names);
    const before = crm.requests.length;
    for (let i = 0; i < 6; i++) {
      const r = await box.tick(load);
      assert.equal(r.sent, 0);
      assert.equal(r.failed, 0);
      assert.equal(r.retried, 3, 'one probe per target per tick');
      now += 60_000;
    }
    assert.equal(crm.requests.length - before, 18, 'a down target is probed, not flooded');
    // the same leads found again during the outage: nothing new is queued
    for (const d of domains) assert.equal(await box.enqueue(leads.get(`d:${d}`) as Lead, names), 0);
    crm.outage(false);
    let sent = 0;
    for (let i = 0; i < 20 && (await box.counts()).pending > 0; i++) {
      sent += (await box.tick(load)).sent;
      now += 60_000;
    }
    assert.equal(sent, 9);
    assert.deepEqual(await box.counts(), { pending: 0, sent: 15, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 5);
    assert.deepEqual([...crm.hubspot.companies.values()].map((p) => p.domain).sort(), domains);
    assert.equal(crm.pipedrive.orgs.size, 5);
    assert.equal(crm.webhook.received.length, 5);
    assert.equal(new Set(crm.webhook.received.map((r) => r.headers['idempotency-key'])).size, 5);
    // while the CRM was down, one probe per target per backoff, not one per lead
    for (const d of await box.list()) assert.ok(d.attempts <= 5, `${d.key}: ${d.attempts} attempts`);
  });

  it('401 → failed (kept); retry(key) after fixing the secret → sent', async () => {
    const { box, leads, load, results } = setup();
    secrets.set('hs', 'a-revoked-token');
    const l = lead('gamma.example');
    leads.set(l.id, l);
    await box.enqueue(l, ['hubspot']);
    assert.deepEqual(await box.tick(load), { sent: 0, retried: 0, failed: 1 });
    const [d] = await box.list({ state: 'failed' });
    assert.equal(d?.key, 'hubspot/d:gamma.example');
    assert.match(d?.lastError ?? '', /refused the credentials \(401\)/);
    assert.deepEqual(results, [{ key: 'hubspot/d:gamma.example', outcome: 'failed' }]);
    now += 3600_000;
    assert.deepEqual(await box.tick(load), { sent: 0, retried: 0, failed: 0 }, 'a failed delivery waits for a person');
    assert.equal(await box.enqueue(l, ['hubspot']), 0, 'the same version is not queued again');
    secrets.set('hs', crm.hubspot.token);
    const again = await box.retry('hubspot/d:gamma.example');
    assert.equal(again.state, 'pending');
    assert.deepEqual(await box.tick(load), { sent: 1, retried: 0, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 1);
    await assert.rejects(box.retry('hubspot/d:gamma.example'), /sent already/);
    await assert.rejects(box.retry('hubspot/d:nobody.example'), /no CRM delivery/);
  });

  it('gives up after maxAttempts', async () => {
    const store = memStore();
    const { clients, leads, load } = setup(['hubspot'], store);
    const box = new LeadOutbox(store, { clients, now: () => now, random: () => 0.5, maxAttempts: 3 });
    const l = lead('delta.example');
    leads.set(l.id, l);
    await box.enqueue(l, ['hubspot']);
    crm.outage(true);
    const seen: Array<{ sent: number; retried: number; failed: number }> = [];
    for (let i = 0; i < 3; i++) {
      seen.push(await box.tick(load));
      now += 600_000;
    }
    assert.deepEqual(seen.at(-1), { sent: 0, retried: 0, failed: 1 });
    assert.deepEqual(await box.counts(), { pending: 0, sent: 0, failed: 1 });
  });

  it('a restart keeps pending deliveries, does not queue a sent version again; a new version: an update', async () => {
    const store = memStore();
    const first = setup(['hubspot'], store);
    const a = lead('epsilon.example');
    const b = lead('zeta.example');
    first.leads.set(a.id, a);
    first.leads.set(b.id, b);
    await first.box.enqueue(a, ['hubspot']);
    assert.equal((await first.box.tick(first.load)).sent, 1);
    await first.box.enqueue(b, ['hubspot']);
    assert.ok(store.map.has(`${SENT_PREFIX}hubspot/d:epsilon.example`));

    // the Hand restarts: a new outbox on the same store
    const second = setup(['hubspot'], store);
    second.leads.set(a.id, a);
    second.leads.set(b.id, b);
    assert.deepEqual(await second.box.counts(), { pending: 1, sent: 1, failed: 0 });
    assert.equal(await second.box.enqueue(a, ['hubspot']), 0, 'a sent version is not queued again');
    assert.equal(await second.box.enqueue(b, ['hubspot']), 0, 'a pending one is not queued twice');
    assert.deepEqual(await second.box.tick(second.load), { sent: 1, retried: 0, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 2);

    const a2 = lead('epsilon.example', 'v2', 'Epsilon Industries');
    second.leads.set(a2.id, a2);
    assert.equal(await second.box.enqueue(a2, ['hubspot']), 1);
    assert.equal(await second.box.enqueue(a2, ['hubspot']), 0);
    assert.deepEqual(await second.box.tick(second.load), { sent: 1, retried: 0, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 2);
    const names = [...crm.hubspot.companies.values()].map((p) => p.name).sort();
    assert.deepEqual(names, ['Company zeta.example', 'Epsilon Industries']);
    const [d] = await second.box.list({ state: 'sent', limit: 1 });
    assert.equal(d?.key, 'hubspot/d:epsilon.example');
    assert.equal(d?.version, 'v2');
    assert.equal(d?.action, 'updated');
    assert.equal(crm.requests.filter((r) => r.method === 'PATCH').length, 1);
  });

  it('a newer version enqueued before the send replaces the pending one: one send, the newest content', async () => {
    const { box, leads, load } = setup(['hook']);
    const v1 = lead('eta.example');
    const v2 = lead('eta.example', 'v2', 'Eta Two');
    await box.enqueue(v1, ['hook']);
    assert.equal(await box.enqueue(v2, ['hook']), 1);
    leads.set(v2.id, v2);
    assert.deepEqual(await box.tick(load), { sent: 1, retried: 0, failed: 0 });
    assert.equal(crm.webhook.received.length, 1);
    assert.equal(crm.webhook.received[0]?.headers['idempotency-key'], 'd:eta.example:v2');
    assert.equal(await box.enqueue(v1, ['hook']), 1, 'going back to the old content is a change too');
  });

  it('a lead that is gone fails its delivery; a target without a client waits', async () => {
    const { box, load } = setup(['hubspot']);
    await box.enqueue(lead('theta.example'), ['hubspot', 'elsewhere']);
    assert.deepEqual(await box.tick(load), { sent: 0, retried: 0, failed: 1 });
    const all = await box.list();
    assert.deepEqual(
      all.map((d) => [d.key, d.state]),
      [
        ['elsewhere/d:theta.example', 'pending'],
        ['hubspot/d:theta.example', 'failed'],
      ],
    );
    assert.match(all[1]?.lastError ?? '', /gone/);
  });

  it('at most perTick per target per tick, oldest first', async () => {
    const store = memStore();
    const { clients, leads, load } = setup(['hook'], store);
    const box = new LeadOutbox(store, { clients, now: () => now, perTick: 2 });
    for (const d of ['k1.example', 'k2.example', 'k3.example']) {
      leads.set(`d:${d}`, lead(d));
      await box.enqueue(lead(d), ['hook']);
      now += 1;
    }
    assert.equal((await box.tick(load)).sent, 2);
    assert.deepEqual(
      crm.webhook.received.map((r) => r.headers['idempotency-key']),
      ['d:k1.example:v1', 'd:k2.example:v1'],
    );
    assert.equal((await box.tick(load)).sent, 1);
  });

  it('sent deliveries leave the list after keepSentMs; their sent marks stay', async () => {
    const store = memStore();
    const { clients, leads, load } = setup(['hook'], store);
    const box = new LeadOutbox(store, { clients, now: () => now, keepSentMs: 3600_000 });
    const l = lead('iota.example');
    leads.set(l.id, l);
    await box.enqueue(l, ['hook']);
    assert.equal((await box.tick(load)).sent, 1);
    now += 3600_001;
    await box.tick(load);
    assert.deepEqual(await box.list(), []);
    assert.equal(await box.enqueue(l, ['hook']), 0, 'still known as sent');
    assert.equal(crm.webhook.received.length, 1);
  });

  it('a crash between the CRM answer and the write re-sends once: HubSpot updates the same company', async () => {
    const store = memStore();
    const first = setup(['hubspot', 'hook'], store);
    const l = lead('kappa.example');
    first.leads.set(l.id, l);
    await first.box.enqueue(l, ['hubspot', 'hook']);
    // the power goes out after the CRMs answered, before the outbox wrote it down
    const batch = store.batch;
    store.batch = async () => {
      throw new Error('power cut');
    };
    await assert.rejects(first.box.tick(first.load), /power cut/);
    store.batch = batch;
    assert.equal(crm.hubspot.companies.size, 1);
    assert.equal(crm.webhook.received.length, 1);

    const second = setup(['hubspot', 'hook'], store);
    second.leads.set(l.id, l);
    assert.deepEqual(await second.box.counts(), { pending: 2, sent: 0, failed: 0 });
    assert.deepEqual(await second.box.tick(second.load), { sent: 2, retried: 0, failed: 0 });
    assert.equal(crm.hubspot.companies.size, 1, 'create-or-update by domain: no second company');
    const hs = (await second.box.list({ state: 'sent' })).find((d) => d.target === 'hubspot');
    assert.equal(hs?.action, 'updated');
    // the webhook got it twice, with the same Idempotency-Key for the receiver to dedupe on
    assert.deepEqual(
      crm.webhook.received.map((r) => r.headers['idempotency-key']),
      ['d:kappa.example:v1', 'd:kappa.example:v1'],
    );
  });
});
