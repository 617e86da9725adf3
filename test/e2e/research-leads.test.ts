/**
 * The Research and Lead Generation Hands on the real daemon, as a user runs them from the README, against a local web
 * on 127.0.0.1 reached under real names (config `network.hosts`), MX records from a DNS server speaking the wire format
 * (config `network.dns`), an OpenAI-compatible model fake and a CRM fake speaking HubSpot's API:
 * - research: a report written by the model whose claim citing an invented URL is taken out by the ledger and
 *   audited; findings published on the bus; a second run with nothing new says so; the reports through API and CLI;
 * - leads: a scan of a directory while the CRM is down, the daemon killed with deliveries pending, the CRM back after
 *   a restart: every qualified lead delivered exactly once; enrichment from the companies' sites and their MX records
 *   (through the kernel's dns.mx); a second scan delivers nothing again; the CSV export.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import mqtt from 'mqtt';
import { api, cli, ensureBuilt, poll, startDaemon, TALON, type Daemon } from '../helpers/daemon.ts';
import { startWeb, type FixtureWeb } from '../fixtures/web/server.ts';
import { NEWS, researchSites } from '../fixtures/web/research.ts';
import { EXPO_SELECTORS, FAIR_SELECTORS, leadsSites } from '../fixtures/web/leads.ts';
import { startCrm, type CrmFake } from '../fixtures/platforms/crm.ts';
import { startDns, type DnsFake } from '../fixtures/dns.ts';
import { startFakeLlm, type FakeLlm } from '../helpers/llm-fakes.ts';

function setSecret(dataDir: string, name: string, value: string): void {
  const r = spawnSync(process.execPath, [TALON, 'secrets', 'set', name, '--data', dataDir], {
    input: value,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
}

/** the qualified leads of the fixture directories under the criteria below (robotics in Berlin or Stuttgart) */
const QUALIFIED = ['acme-robotics.example', 'juniper-robotics.example'];

describe('the Research and Lead Generation Hands on the daemon', () => {
  let web: FixtureWeb;
  let crm: CrmFake;
  let dns: DnsFake;
  let llm: FakeLlm;
  let d: Daemon;
  let config: Record<string, unknown>;

  const audit = async (action: string): Promise<Array<{ subject: string; decision: string; detail?: any }>> =>
    (await api(d, 'GET', `/api/v1/audit?action=${encodeURIComponent(action)}&limit=200`)).body.items;

  before(async () => {
    ensureBuilt();
    const sites = { ...researchSites(), ...leadsSites() };
    web = await startWeb(sites);
    crm = await startCrm();
    llm = await startFakeLlm('openai');
    dns = await startDns({
      'acme-robotics.example': { MX: [{ exchange: 'mx1.acme-robotics.example', priority: 10 }] },
      'juniper-robotics.example': { MX: [{ exchange: 'mail.juniper-robotics.example', priority: 5 }] },
    });
    const hosts = Object.fromEntries(Object.keys(sites).map((h) => [h, '127.0.0.1']));
    const first = await startDaemon({ hands: [], drivers: [] });
    assert.equal(await first.stop(), 0);
    setSecret(first.dataDir, 'hubspot_token', crm.hubspot.token);
    const grant = { hosts: ['*.example', '127.0.0.1'], timeoutMs: 5000 };
    config = {
      drivers: [],
      network: { hosts, dns: [dns.server] },
      llm: {
        providers: [{ name: 'cloud', kind: 'openai', baseUrl: llm.url, model: 'fake-model' }],
        retry: { maxAttempts: 1, baseMs: 10, maxMs: 100, jitter: 0.1 },
      },
      hands: [
        { name: 'scheduler', module: 'scheduling' },
        {
          name: 'research',
          module: 'research',
          capabilities: { network: grant, llm: { tokensPerHour: 200_000 } },
          settings: {
            politenessMs: 0,
            timeoutMs: 3000,
            topics: [
              {
                id: 'quantum',
                title: 'Quantum error correction',
                questions: ['What progress was made on quantum error correction with surface codes?'],
                keywords: ['qubits', 'logical error'],
                sources: [{ feed: web.url(NEWS, '/feed.xml') }, { page: web.url(NEWS, '/articles/quantum.html') }],
                schedule: '0 6 * * *',
              },
            ],
          },
        },
        {
          name: 'leads',
          module: 'leads',
          capabilities: { network: grant, secrets: ['hubspot_token'] },
          settings: {
            criteria: { industries: ['Robotics'], locations: ['Berlin', 'Stuttgart'] },
            sources: [
              {
                name: 'expo',
                list: web.url('expo-directory.example', '/exhibitors'),
                selectors: EXPO_SELECTORS,
                next: 'a.next',
              },
              { name: 'fair', list: web.url('fair-members.example', '/members'), selectors: FAIR_SELECTORS },
            ],
            threshold: 40,
            crm: [{ name: 'hubspot', kind: 'hubspot', url: crm.url, secret: 'hubspot_token' }],
            politenessMs: 0,
            timeoutMs: 3000,
          },
        },
      ],
    };
    d = await startDaemon(config, { dataDir: first.dataDir });
    await poll('both Hands run', async () => {
      const [r, l] = await Promise.all([
        api(d, 'GET', '/api/v1/research/topics'),
        api(d, 'GET', '/api/v1/leads?limit=1'),
      ]);
      return r.status === 200 && l.status === 200;
    });
  });

  after(async () => {
    await d?.stop().catch(() => {});
    await Promise.all([web?.close(), crm?.close(), dns?.close(), llm?.close()]);
  });

  test('research: a model report checked by the ledger, findings on the bus, then nothing new', async () => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
      username: 'token',
      password: d.token(),
      reconnectPeriod: 0,
    });
    const events: any[] = [];
    c.on('message', (_t, p) => events.push(JSON.parse(p.toString())));
    await c.subscribeAsync(`talon/${d.deviceId()}/research/quantum/findings`, { qos: 1 });
    try {
      // the schedule is a Scheduling Hand job asking this Hand
      await poll('the topic is a scheduler job', async () => {
        const jobs = (await api(d, 'GET', '/api/v1/schedules')).body.jobs as Array<{ id: string }> | undefined;
        return jobs?.some((j) => j.id.startsWith('research-research-'));
      });
      llm.reply({
        text: JSON.stringify({
          summary: 'Surface codes kept logical errors below the physical rate.',
          findings: [
            { claim: 'Logical error rates fell with each step in code distance.', sources: [1], confirmed: false },
            {
              claim: 'A rival lab has already built a million-qubit machine.',
              sources: ['https://made-up.example/paper'],
              confirmed: true,
            },
          ],
        }),
      });
      const run = await api(d, 'POST', '/api/v1/research/topics/quantum/run');
      assert.equal(run.status, 200, JSON.stringify(run.body));
      assert.equal(run.body.report.mode, 'model', JSON.stringify(run.body));
      const report = (await api(d, 'GET', `/api/v1/research/reports/${encodeURIComponent(run.body.report.id)}`)).body
        .report;
      assert.equal(report.findings.length, 1);
      assert.match(report.findings[0].claim, /code distance/);
      assert.equal(report.refused.length, 1);
      assert.equal(report.refused[0].reason, 'unknown-citation');
      assert.deepEqual(report.refused[0].cited, ['https://made-up.example/paper']);
      // every source the report lists is a document the Hand fetched from the fixture web
      const docs = (await api(d, 'GET', '/api/v1/research/documents?limit=100')).body.documents as Array<{
        id: string;
      }>;
      for (const s of report.sources)
        assert.ok(
          docs.some((doc) => doc.id === s.docId),
          s.url,
        );
      assert.ok(report.sources.every((s: { url: string }) => s.url.startsWith(`http://${NEWS}:`)));
      assert.doesNotMatch(report.markdown, /made-up\.example/);
      const refused = await audit('research.citation.refused');
      assert.ok(
        refused.some((e) => e.subject.includes('made-up.example')),
        JSON.stringify(refused),
      );
      await poll('the findings on the bus', async () => events.length >= 1);
      assert.equal(events[0].reportId, report.id);
      assert.equal(events[0].followUp.job.action.ask.hand, 'research');

      // nothing new since: the feed answers 304, the page is known
      const again = await api(d, 'POST', '/api/v1/research/topics/quantum/run');
      assert.equal(again.body.report.mode, 'nothing', JSON.stringify(again.body));
      assert.ok(again.body.report.stats.notModified >= 1);
      const r = cli(['research', 'reports', '--topic', 'quantum', '--data', d.dataDir]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.includes(report.id) && r.stdout.includes(again.body.report.id), r.stdout);
      const md = cli(['research', 'report', report.id, '--data', d.dataDir]);
      assert.equal(md.status, 0, md.stderr);
      assert.match(md.stdout, /code distance/);
      assert.equal(events.length, 1, 'a run with nothing new publishes no findings');
    } finally {
      await c.endAsync();
    }
  });

  test('leads: a scan while the CRM is down, a kill with deliveries pending, every qualified lead delivered once', async () => {
    crm.outage(true);
    const scan = await api(d, 'POST', '/api/v1/leads/scan', {});
    assert.equal(scan.status, 200, JSON.stringify(scan.body));
    assert.ok(scan.body.found >= 19, JSON.stringify(scan.body));
    assert.equal(scan.body.qualified, QUALIFIED.length, JSON.stringify(scan.body));
    await poll('a delivery tried and refused', async () => crm.requests.length > 0);
    const pending = (await api(d, 'GET', '/api/v1/leads/deliveries')).body.deliveries as Array<{ state: string }>;
    assert.equal(pending.filter((x) => x.state === 'pending').length, QUALIFIED.length, JSON.stringify(pending));
    assert.equal(crm.hubspot.companies.size, 0);

    await d.stop('SIGKILL');
    crm.outage(false);
    d = await startDaemon(config, { dataDir: d.dataDir });
    await poll('both qualified leads in HubSpot', async () => crm.hubspot.companies.size === QUALIFIED.length, 60_000);
    const domains = [...crm.hubspot.companies.values()].map((p) => p.domain).sort();
    assert.deepEqual(domains, QUALIFIED);

    // enriched from the companies' own sites and the domain's MX records, each field with its source
    const acme = (await api(d, 'GET', `/api/v1/leads/${encodeURIComponent('d:acme-robotics.example')}`)).body.lead;
    assert.equal(acme.status, 'qualified');
    assert.deepEqual(
      acme.mx.map((m: { value: string; source: string }) => [m.value, m.source]),
      [['mx1.acme-robotics.example', 'dns:MX acme-robotics.example']],
    );
    assert.ok(
      acme.emails.some((e: { value: string; source: string }) => e.value === 'info@acme-robotics.example'),
      JSON.stringify(acme),
    );
    for (const e of acme.emails) assert.match(e.source, /^http:\/\/acme-robotics\.example:\d+\//);

    // a second scan finds the same companies: nothing new goes to the CRM
    const writes = crm.requests.filter((r) => r.method !== 'GET' && !r.path.endsWith('/search')).length;
    const again = await api(d, 'POST', '/api/v1/leads/scan', {});
    assert.equal(again.status, 200);
    assert.equal(again.body.new, 0, JSON.stringify(again.body));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(crm.requests.filter((r) => r.method !== 'GET' && !r.path.endsWith('/search')).length, writes);
    assert.equal(crm.hubspot.companies.size, QUALIFIED.length);
    const delivered = await audit('leads.delivered');
    assert.deepEqual(delivered.map((e) => e.subject).sort(), QUALIFIED.map((q) => `hubspot/d:${q}`).sort());

    const out = cli(['leads', 'export', '--data', d.dataDir]);
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stdout.split('\n')[0]!, /^id,company,domain/);
    assert.ok(out.stdout.includes('acme-robotics.example'));
  });
});
