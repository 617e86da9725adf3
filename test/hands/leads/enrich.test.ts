import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Fetcher, readHtml } from '../../../hands/sdk/web/index.ts';
import { detectTechnologies, type EnrichEnv, enrich } from '../../../hands/leads/enrich.ts';
import { leadVersion, mergeLead } from '../../../hands/leads/normalize.ts';
import type { Lead } from '../../../hands/leads/types.ts';
import { COMPANY_FACTS, leadsSites } from '../../fixtures/web/leads.ts';
import { type FixtureWeb, startWeb } from '../../fixtures/web/server.ts';
import { webFetch } from '../../helpers/web-fetch.ts';
import { memStore } from '../../helpers/mem-store.ts';

let web: FixtureWeb;
before(async () => {
  web = await startWeb(leadsSites());
});
after(() => web.close());

const mxCalls: string[] = [];
function env(timeoutMs = 5000): EnrichEnv {
  return {
    fetcher: new Fetcher(webFetch(web.port).fetch, memStore(), { minIntervalMs: 0, timeoutMs }),
    mx: async (domain) => {
      mxCalls.push(domain);
      if (domain === 'acme-robotics.example')
        return [
          { exchange: 'mx2.acme-robotics.example.', priority: 20 },
          { exchange: 'MX1.acme-robotics.example', priority: 10 },
        ];
      if (domain === 'helix-bio.example') throw new Error('NET_DNS: SERVFAIL');
      return [];
    },
    now: () => 5_000,
  };
}

function leadOf(host: string, extra: Record<string, string> = {}): Lead {
  return mergeLead(
    undefined,
    { fields: { website: web.url(host), ...extra }, sourceUrl: 'https://dir.example/', source: 'dir' },
    1_000,
  );
}

describe('enrich', () => {
  it('reads the home and contact pages: every field with the URL it came from', async () => {
    const home = web.url('acme-robotics.example', '/');
    const contact = web.url('acme-robotics.example', '/kontakt');
    const { lead, errors } = await enrich(leadOf('acme-robotics.example', { company: 'Acme Robotics' }), env());
    assert.deepEqual(errors, []);
    const f = COMPANY_FACTS.acme;
    assert.deepEqual(lead.description, { value: f.description, source: home, at: 5_000 });
    // company addresses only (the gmail one and the image name are left out), each from the contact page
    assert.deepEqual(
      lead.emails.map((e) => [e.value, e.source]),
      f.emails.map((e) => [e, contact]),
    );
    assert.deepEqual(lead.phones, [{ value: f.phones[0], source: contact, at: 5_000 }]);
    assert.deepEqual(lead.social.map((s) => s.value).sort(), [...f.social].sort());
    assert.equal(lead.social.find((s) => s.value.includes('github'))!.source, contact);
    assert.equal(lead.social.find((s) => s.value.includes('linkedin'))!.source, home);
    assert.deepEqual(lead.technologies.map((t) => t.value).sort(), [...f.technologies].sort());
    assert.ok(lead.technologies.every((t) => t.source === home));
    assert.deepEqual(lead.mx, [
      { value: 'mx1.acme-robotics.example', source: 'dns:MX acme-robotics.example', at: 5_000 },
      { value: 'mx2.acme-robotics.example', source: 'dns:MX acme-robotics.example', at: 5_000 },
    ]);
    assert.equal(lead.enrichedAt, 5_000);
    assert.equal(lead.version, leadVersion(lead));
    // the company name from the directory is kept, the social sites were never fetched
    assert.equal(lead.company?.value, 'Acme Robotics');
    assert.ok(!web.requests.some((r) => /linkedin|github|x\.com|other-site/.test(r.host)));
  });

  it('keeps free-mail addresses when the company has none of its own', async () => {
    const { lead } = await enrich(leadOf('blue-harbor-logistics.example'), env());
    assert.deepEqual(lead.emails.map((e) => e.value).sort(), ['ops.hamburg@yahoo.com', 'ops@gmail.com']);
    assert.deepEqual(
      lead.technologies.map((t) => t.value),
      ['Shopify', 'Stripe'],
    );
  });

  it('takes the first paragraph when there is no meta description; detects technologies by markers', async () => {
    const d = await enrich(leadOf('delta-med.example'), env());
    assert.equal(d.lead.description?.value.startsWith('Delta Med develops infusion pumps'), true);
    assert.deepEqual(
      d.lead.technologies.map((t) => t.value),
      ['Cloudflare', 'jQuery'],
    );
    const c = await enrich(leadOf('cobalt-analytics.example'), env());
    assert.deepEqual(
      c.lead.technologies.map((t) => t.value),
      ['Google Tag Manager', 'Intercom', 'Next.js', 'React'],
    );
    assert.deepEqual(
      c.lead.emails.map((e) => [e.value, e.source]),
      [['hello@cobalt-analytics.example', web.url('cobalt-analytics.example', '/about')]],
    );
    const e = await enrich(leadOf('evergreen-energy.example'), env());
    assert.deepEqual(
      e.lead.technologies.map((t) => t.value),
      ['Wix'],
    );
    // /about is linked but missing: one http error, the rest kept
    assert.equal(e.errors.length, 1);
    assert.equal(e.errors[0]!.kind, 'http');
    const fj = await enrich(leadOf('fjord-software.example'), env());
    assert.deepEqual(
      fj.lead.technologies.map((t) => t.value),
      ['Angular'],
    );
    assert.deepEqual(
      fj.lead.social.map((t) => t.value),
      ['https://linkedin.com/company/fjord'],
    );
  });

  it('a missing site (404) and failing MX are errors, never thrown', async () => {
    const { lead, errors } = await enrich(leadOf('helix-bio.example'), env());
    assert.deepEqual(
      errors.map((e) => e.kind),
      ['http', 'dns'],
    );
    assert.equal(errors[1]!.url, 'dns:MX helix-bio.example');
    assert.equal(lead.enrichedAt, 5_000);
    assert.deepEqual(lead.emails, []);
  });

  it('a site whose robots.txt forbids us is a robots error, and its page is never asked for', async () => {
    const { errors } = await enrich(leadOf('closed-directory.example'), env());
    assert.deepEqual(
      errors.map((e) => e.kind),
      ['robots'],
    );
    assert.equal(web.hits('closed-directory.example', '/'), 0);
  });

  it('a slow site times out into an error', async () => {
    const { lead, errors } = await enrich(leadOf('granite-builders.example'), env(500));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.kind, 'timeout');
    assert.equal(lead.description, undefined);
  });

  it('does nothing for a lead without a domain', async () => {
    const free = mergeLead(undefined, { fields: { email: 'jane@gmail.com' }, sourceUrl: 'x', source: 's' }, 1);
    const n = mxCalls.length;
    const r = await enrich(free, env());
    assert.equal(r.lead, free);
    assert.equal(mxCalls.length, n);
  });
});

describe('detectTechnologies', () => {
  it('reads generator, script URLs and markers', () => {
    const html = `<html><head><meta name="generator" content="Webflow">
<script src="https://cdn.shopify.com/x.js"></script><script src="https://js.stripe.com/v3/"></script>
<script src="/_nuxt/app.js"></script></head><body><div data-reactroot></div>
<script>gtag('config', 'G-XYZ123');</script></body></html>`;
    const page = readHtml(html, 'https://shop.example/');
    assert.deepEqual(detectTechnologies(html, page), [
      'Google Analytics',
      'Nuxt',
      'React',
      'Shopify',
      'Stripe',
      'Webflow',
    ]);
    const plain = '<html><body><p>Nothing here.</p></body></html>';
    assert.deepEqual(detectTechnologies(plain, readHtml(plain, 'https://x.example/')), []);
  });
});
