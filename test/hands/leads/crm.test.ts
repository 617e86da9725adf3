/**
 * The CRM clients against the CRM fake (test/fixtures/platforms/crm.ts) over real HTTP: HubSpot and Pipedrive
 * create-or-update by domain (the same domain twice is one record, updated), HubSpot's 409 race, auth refusals,
 * 429/500 sorted as retryable, the webhook's signature and Idempotency-Key; parseCrmTarget's messages.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type CrmEnv, CrmError, crmClient, parseCrmTarget } from '../../../hands/leads/crm/index.ts';
import type { CrmTarget, Lead } from '../../../hands/leads/types.ts';
import { type CrmFake, startCrm } from '../../fixtures/platforms/crm.ts';
import { webFetch } from '../../helpers/web-fetch.ts';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const src = (value: string) => ({ value, source: 'https://directory.example/list', at: T0 });

function lead(domain: string, over: Partial<Lead> = {}): Lead {
  return {
    id: `d:${domain}`,
    domain,
    company: src(`Company ${domain}`),
    website: src(`https://${domain}/`),
    emails: [src(`info@${domain}`)],
    phones: [src('+49 30 123456')],
    industry: src('Industrial robotics'),
    location: src('Berlin'),
    size: { value: 120, source: `https://${domain}/about`, at: T0 },
    description: src('Robots for small factories.'),
    social: [],
    technologies: [src('WordPress')],
    mx: [],
    score: 82,
    reasons: ['industry: robotics +25', 'location: Berlin +15'],
    status: 'qualified',
    sources: ['directory'],
    firstSeen: T0,
    lastSeen: T0,
    version: 'v1',
    ...over,
  };
}

async function failure(p: Promise<unknown>): Promise<CrmError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CrmError, `not a CrmError: ${String(err)}`);
    return err;
  }
  assert.fail('expected a CrmError');
}

let crm: CrmFake;
let env: CrmEnv;
const secrets = new Map<string, string>();

before(async () => {
  crm = await startCrm();
  secrets.set('hs_token', crm.hubspot.token);
  secrets.set('pd_token', crm.pipedrive.token);
  secrets.set('hook_key', 'whsec-test-key');
  secrets.set('wrong', 'not-the-token');
  env = { fetch: webFetch(crm.port).fetch, secret: async (n) => secrets.get(n), now: () => Date.now() };
});
after(async () => {
  await crm.close();
});

const target = (raw: Record<string, unknown>): CrmTarget => {
  const t = parseCrmTarget(raw, 'crm[0]');
  assert.ok(typeof t !== 'string', String(t));
  return t;
};

describe('parseCrmTarget', () => {
  it('defaults the API bases and keeps what is given', () => {
    assert.deepEqual(parseCrmTarget({ name: 'hs', kind: 'hubspot', secret: 'hs_token' }, 'x'), {
      name: 'hs',
      kind: 'hubspot',
      url: 'https://api.hubapi.com',
      secret: 'hs_token',
    });
    const pd = parseCrmTarget(
      { name: 'pd', kind: 'pipedrive', secret: 'p', domainField: 'f00dfeedcafe0123456789abcdef0123456789ab' },
      'x',
    );
    assert.ok(typeof pd !== 'string');
    assert.equal(pd.url, 'https://api.pipedrive.com');
    assert.equal(pd.domainField, 'f00dfeedcafe0123456789abcdef0123456789ab');
  });

  it('names the field that is wrong', () => {
    const msg = (raw: unknown) => {
      const r = parseCrmTarget(raw, 'crm[1]');
      assert.equal(typeof r, 'string', JSON.stringify(raw));
      return r as string;
    };
    assert.match(msg({ name: 'Bad Name', kind: 'webhook', url: 'https://x.example/' }), /^crm\[1\]\.name: /);
    assert.match(msg({ name: 'a', kind: 'salesforce' }), /^crm\[1\]\.kind: must be one of webhook, hubspot, pipedrive/);
    assert.match(msg({ name: 'a', kind: 'webhook' }), /^crm\[1\]\.url: /);
    assert.match(msg({ name: 'a', kind: 'webhook', url: 'ftp://x.example/' }), /^crm\[1\]\.url: must be an http/);
    assert.match(msg({ name: 'a', kind: 'hubspot' }), /^crm\[1\]\.secret: .*private app token/);
    assert.match(msg({ name: 'a', kind: 'pipedrive', secret: 'p' }), /^crm\[1\]\.domainField: .*40-hex/);
    assert.match(msg({ name: 'a', kind: 'pipedrive', secret: 'p', domainField: 'domain' }), /^crm\[1\]\.domainField/);
    assert.match(msg({ name: 'a', kind: 'hubspot', secret: 'p', token: 'x' }), /^crm\[1\]\.token: unknown field/);
    assert.match(msg({ name: 'a', kind: 'webhook', url: 'https://u:p@x.example/' }), /^crm\[1\]\.url: no credentials/);
    assert.match(msg('hubspot'), /^crm\[1\]: must be an object/);
  });
});

describe('HubSpot', () => {
  it('creates a company, then updates the same one by domain', async () => {
    const c = crmClient(target({ name: 'hs', kind: 'hubspot', url: crm.url, secret: 'hs_token' }), env);
    const first = await c.deliver(lead('acme-robotics.example'));
    assert.equal(first.action, 'created');
    assert.equal(crm.hubspot.companies.size, 1);
    const props = crm.hubspot.companies.get(first.crmId);
    assert.ok(props);
    assert.equal(props.domain, 'acme-robotics.example');
    assert.equal(props.name, 'Company acme-robotics.example');
    assert.equal(props.city, 'Berlin');
    assert.equal(props.numberofemployees, '120');
    assert.match(props.description ?? '', /Industry: Industrial robotics/);
    assert.match(props.description ?? '', /Talon score: 82\/100/);
    const second = await c.deliver(
      lead('acme-robotics.example', { company: src('ACME Robotics GmbH'), version: 'v2' }),
    );
    assert.deepEqual(second, { crmId: first.crmId, action: 'updated' });
    assert.equal(crm.hubspot.companies.size, 1);
    assert.equal(crm.hubspot.companies.get(first.crmId)?.name, 'ACME Robotics GmbH');
    const hs = crm.requests.filter((r) => r.path.startsWith('/crm/'));
    assert.ok(hs.every((r) => r.headers.authorization === `Bearer ${crm.hubspot.token}`));
    assert.deepEqual(
      hs.map((r) => `${r.method} ${r.path}`),
      [
        'POST /crm/v3/objects/companies/search',
        'POST /crm/v3/objects/companies',
        'POST /crm/v3/objects/companies/search',
        `PATCH /crm/v3/objects/companies/${first.crmId}`,
      ],
    );
  });

  it('a 409 on create (made meanwhile) searches again and updates', async () => {
    const c = crmClient(target({ name: 'hs', kind: 'hubspot', url: crm.url, secret: 'hs_token' }), env);
    crm.hubspot.conflictOnce('race.example');
    const before = crm.hubspot.companies.size;
    const r = await c.deliver(lead('race.example'));
    assert.equal(r.action, 'updated');
    assert.equal(crm.hubspot.companies.size, before);
    assert.equal(crm.hubspot.companies.get(r.crmId)?.name, 'Company race.example');
  });

  it('a wrong token is not retryable; 429 and 500 are', async () => {
    const bad = crmClient(target({ name: 'hs', kind: 'hubspot', url: crm.url, secret: 'wrong' }), env);
    const e401 = await failure(bad.deliver(lead('auth.example')));
    assert.equal(e401.status, 401);
    assert.equal(e401.retryable, false);
    assert.match(e401.message, /credentials/);
    const c = crmClient(target({ name: 'hs', kind: 'hubspot', url: crm.url, secret: 'hs_token' }), env);
    crm.failNext(1, 429);
    const e429 = await failure(c.deliver(lead('rate.example')));
    assert.equal(e429.retryable, true);
    assert.equal(e429.retryAfterMs, 1000);
    crm.failNext(1, 500);
    const e500 = await failure(c.deliver(lead('rate.example')));
    assert.equal(e500.retryable, true);
    assert.equal(e500.status, 500);
    const unset = crmClient(target({ name: 'hs', kind: 'hubspot', url: crm.url, secret: 'nothing_here' }), env);
    const eUnset = await failure(unset.deliver(lead('rate.example')));
    assert.equal(eUnset.retryable, false);
    assert.match(eUnset.message, /nothing_here is not set/);
    const eMail = await failure(c.deliver(lead('x', { id: 'e:bob@gmail.com', domain: undefined })));
    assert.equal(eMail.retryable, false);
    assert.equal(
      [...crm.hubspot.companies.values()].filter((p) => p.domain === 'rate.example' || p.domain === 'auth.example')
        .length,
      0,
    );
  });
});

describe('Pipedrive', () => {
  it('creates an organization with a note, then updates the same one by domain', async () => {
    const t = target({
      name: 'pd',
      kind: 'pipedrive',
      url: crm.url,
      secret: 'pd_token',
      domainField: crm.pipedrive.domainField,
    });
    const c = crmClient(t, env);
    const first = await c.deliver(lead('beta-automation.example'));
    assert.equal(first.action, 'created');
    assert.equal(crm.pipedrive.orgs.size, 1);
    const org = crm.pipedrive.orgs.get(Number(first.crmId));
    assert.equal(org?.name, 'Company beta-automation.example');
    assert.equal(org?.[crm.pipedrive.domainField], 'beta-automation.example');
    assert.equal(org?.address, 'Berlin');
    assert.equal(crm.pipedrive.notes.length, 1);
    assert.match(crm.pipedrive.notes[0]?.content ?? '', /Talon score: 82\/100/);
    const second = await c.deliver(
      lead('beta-automation.example', { company: src('Beta <Automation> AG'), version: 'v2' }),
    );
    assert.deepEqual(second, { crmId: first.crmId, action: 'updated' });
    assert.equal(crm.pipedrive.orgs.size, 1);
    assert.equal(crm.pipedrive.orgs.get(Number(first.crmId))?.name, 'Beta <Automation> AG');
    assert.equal(crm.pipedrive.notes.length, 1, 'a note on create only');
    const pd = crm.requests.filter((r) => r.path.startsWith('/api/v1/'));
    assert.ok(pd.every((r) => r.headers['x-api-token'] === crm.pipedrive.token && !r.query.has('api_token')));
    const search = pd.find((r) => r.path === '/api/v1/organizations/search');
    assert.equal(search?.query.get('fields'), 'custom_fields');
    assert.equal(search?.query.get('exact_match'), 'true');
  });

  it('a wrong token is not retryable; 429 takes the wait', async () => {
    const base = { name: 'pd', kind: 'pipedrive', url: crm.url, domainField: crm.pipedrive.domainField };
    const bad = crmClient(target({ ...base, secret: 'wrong' }), env);
    const e401 = await failure(bad.deliver(lead('gamma.example')));
    assert.equal(e401.status, 401);
    assert.equal(e401.retryable, false);
    assert.match(e401.message, /unauthorized access/);
    const c = crmClient(target({ ...base, secret: 'pd_token' }), env);
    crm.failNext(1, 429, { 'x-ratelimit-reset': '2' });
    const e429 = await failure(c.deliver(lead('gamma.example')));
    assert.equal(e429.retryable, true);
    assert.equal(e429.retryAfterMs, 2000, 'x-ratelimit-reset when there is no Retry-After');
    assert.ok(![...crm.pipedrive.orgs.values()].some((o) => o.name === 'Company gamma.example'));
  });
});

describe('webhook', () => {
  it('signs the body and sends the Idempotency-Key; the answer id is the record id', async () => {
    const c = crmClient(target({ name: 'hook', kind: 'webhook', url: `${crm.url}/webhook`, secret: 'hook_key' }), env);
    const l = lead('delta.example', { version: 'abc123' });
    const r = await c.deliver(l);
    assert.deepEqual(r, { crmId: 'evt_1', action: 'created' });
    const got = crm.webhook.received.at(-1);
    assert.ok(got);
    assert.equal(got.headers['idempotency-key'], 'd:delta.example:abc123');
    const want = `sha256=${createHmac('sha256', 'whsec-test-key').update(got.body).digest('hex')}`;
    assert.equal(got.headers['x-talon-signature'], want);
    const body = JSON.parse(got.body) as { event: string; id: string; version: string; lead: Lead };
    assert.equal(body.event, 'lead.qualified');
    assert.equal(body.id, 'd:delta.example');
    assert.equal(body.version, 'abc123');
    assert.equal(body.lead.company?.value, 'Company delta.example');
  });

  it('without an id in the answer the record id is the idempotency key; no secret, no signature', async () => {
    const c = crmClient(target({ name: 'hook2', kind: 'webhook', url: `${crm.url}/webhook/empty` }), env);
    const r = await c.deliver(lead('epsilon.example'));
    assert.deepEqual(r, { crmId: 'd:epsilon.example:v1', action: 'created' });
    assert.equal(crm.webhook.received.at(-1)?.headers['x-talon-signature'], undefined);
    crm.failNext(1, 503);
    const e = await failure(c.deliver(lead('epsilon.example')));
    assert.equal(e.retryable, true);
  });
});
