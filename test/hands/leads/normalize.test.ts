import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FREE_MAIL,
  leadIdOf,
  leadVersion,
  mergeLead,
  normalizeDomain,
  normalizeEmail,
  parseSize,
} from '../../../hands/leads/normalize.ts';
import type { RawLead } from '../../../hands/leads/types.ts';

describe('normalizeDomain', () => {
  it('reduces URLs and hosts to the registrable-looking host', () => {
    assert.equal(normalizeDomain('https://www.Acme.com:8443/about?x=1'), 'acme.com');
    assert.equal(normalizeDomain('acme.com'), 'acme.com');
    assert.equal(normalizeDomain('WWW2.acme.com.'), 'acme.com');
    assert.equal(normalizeDomain('http://shop.acme.com/'), 'shop.acme.com');
    assert.equal(normalizeDomain('acme.com/contact'), 'acme.com');
    assert.equal(normalizeDomain('http://acme-robotics.example:41234/'), 'acme-robotics.example');
  });
  it('turns international names into punycode', () => {
    assert.equal(normalizeDomain('https://www.bücher.de/'), 'xn--bcher-kva.de');
  });
  it('refuses what is not a public host name', () => {
    for (const bad of [
      '',
      '/about',
      'about',
      'localhost',
      'http://localhost:3000/',
      'http://127.0.0.1/',
      '10.0.0.1',
      'http://[::1]/',
      'mailto:x@acme.com',
      'ftp://acme.com/',
      'acme com',
      'jane@gmail.com',
    ])
      assert.equal(normalizeDomain(bad), undefined, bad);
  });
});

describe('normalizeEmail', () => {
  it('trims, lower-cases and strips mailto: and a query', () => {
    assert.equal(normalizeEmail('  MAILTO:Jane.Doe@Acme.COM?subject=hi '), 'jane.doe@acme.com');
    assert.equal(normalizeEmail('info@acme-robotics.example'), 'info@acme-robotics.example');
  });
  it('refuses what is not an address', () => {
    for (const bad of ['jane', 'jane@acme', '@acme.com', 'logo@2x.png', 'a b@acme.com', `${'a'.repeat(250)}@acme.com`])
      assert.equal(normalizeEmail(bad), undefined, bad);
  });
  it('knows the free-mail providers', () => {
    for (const d of ['gmail.com', 'outlook.com', 'gmx.de', 'web.de', 'proton.me', 'qq.com'])
      assert.ok(FREE_MAIL.has(d), d);
    assert.ok(!FREE_MAIL.has('acme.com'));
  });
});

describe('leadIdOf', () => {
  it('keys by the website domain, else a company e-mail domain, else a free-mail address', () => {
    assert.equal(leadIdOf({ website: 'https://www.Acme.com/' }), 'd:acme.com');
    assert.equal(leadIdOf({ email: 'Sales@Acme.com' }), 'd:acme.com');
    assert.equal(leadIdOf({ email: 'jane@gmail.com', company: 'Jane' }), 'e:jane@gmail.com');
    assert.equal(leadIdOf({ website: 'https://www.linkedin.com/company/acme', email: 'x@gmail.com' }), 'e:x@gmail.com');
    assert.equal(leadIdOf({ company: 'Nameless' }), undefined);
    assert.equal(leadIdOf({ website: '/about' }), undefined);
  });
});

describe('parseSize', () => {
  it('reads numbers and ranges (a range is its midpoint)', () => {
    assert.equal(parseSize('51-200'), 126);
    assert.equal(parseSize('51 – 200 employees'), 126);
    assert.equal(parseSize('120 employees'), 120);
    assert.equal(parseSize('1,200'), 1200);
    assert.equal(parseSize('500+'), 500);
    assert.equal(parseSize('10k'), 10000);
    assert.equal(parseSize('unknown'), undefined);
  });
});

describe('mergeLead', () => {
  const raw = (fields: RawLead['fields'], sourceUrl: string, source = 'dir'): RawLead => ({
    fields,
    sourceUrl,
    source,
  });

  it('dedups www./case/trailing slash into one lead, first values kept, contacts unioned', () => {
    const a = raw(
      { company: 'Acme Robotics', website: 'https://www.acme.com', email: 'info@acme.com', size: '51-200' },
      'https://dir.example/p1',
    );
    const b = raw(
      {
        company: 'ACME ROBOTICS GmbH',
        website: 'http://ACME.com/',
        email: 'INFO@acme.com',
        phone: '+49 30 123456',
        location: 'Berlin',
      },
      'https://other.example/list',
      'other',
    );
    assert.equal(leadIdOf(a.fields), leadIdOf(b.fields));
    const one = mergeLead(undefined, a, 1000);
    const two = mergeLead(one, b, 2000);
    assert.equal(two.id, 'd:acme.com');
    assert.equal(two.domain, 'acme.com');
    assert.deepEqual(two.company, { value: 'Acme Robotics', source: 'https://dir.example/p1', at: 1000 });
    assert.equal(two.website?.value, 'https://www.acme.com');
    assert.deepEqual(two.location, { value: 'Berlin', source: 'https://other.example/list', at: 2000 });
    assert.deepEqual(
      two.emails.map((e) => e.value),
      ['info@acme.com'],
    );
    assert.deepEqual(two.phones, [{ value: '+49 30 123456', source: 'https://other.example/list', at: 2000 }]);
    assert.deepEqual(two.size, { value: 126, source: 'https://dir.example/p1', at: 1000 });
    assert.deepEqual(two.sources, ['dir', 'other']);
    assert.equal(two.firstSeen, 1000);
    assert.equal(two.lastSeen, 2000);
    assert.equal(two.status, 'new');
    assert.equal(two.version, leadVersion(two));
    assert.notEqual(one.version, two.version);
    // the first lead is not changed by the merge
    assert.equal(one.phones.length, 0);
  });

  it('fills an empty field from a later source, caps e-mails at 20', () => {
    let lead = mergeLead(undefined, raw({ website: 'acme.com', company: '  ' }, 'https://a.example/'), 1);
    assert.equal(lead.company, undefined);
    assert.equal(lead.website?.value, 'https://acme.com');
    lead = mergeLead(lead, raw({ website: 'acme.com', company: 'Acme' }, 'https://b.example/'), 2);
    assert.equal(lead.company?.source, 'https://b.example/');
    for (let i = 0; i < 30; i++) lead = mergeLead(lead, raw({ website: 'acme.com', email: `p${i}@acme.com` }, 'x'), 3);
    assert.equal(lead.emails.length, 20);
  });

  it('keys a free-mail person by the address', () => {
    const lead = mergeLead(undefined, raw({ company: 'Jane Doe', email: 'Jane@GMail.com' }, 'file:///x.csv'), 5);
    assert.equal(lead.id, 'e:jane@gmail.com');
    assert.equal(lead.domain, undefined);
  });

  it('refuses a lead with no key', () => {
    assert.throws(() => mergeLead(undefined, raw({ company: 'Nameless' }, 'x'), 1), /website or an e-mail/);
  });
});
