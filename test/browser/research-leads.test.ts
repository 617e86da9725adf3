/**
 * The Research and Lead Generation Hands' pages in a real browser (Debian's Chromium through playwright-core) against
 * the real daemon, as the device's owner uses them, with the Hands reading a local fixture web on 127.0.0.1 under
 * real names (config `network.hosts`), MX records from a DNS fake and a CRM fake speaking HubSpot's API:
 * - Research (#/research): the topics table, Run now on a topic (no model is configured: a digest report), the
 *   reports list, a report opened from it with its documents as links to the fixture web's URLs;
 * - Leads (#/leads): Scan now, the leads table with scores and statuses, a lead opened with each field and the URL
 *   (or DNS query) it came from; the CRM deliveries failing for good on a wrong token, Retry after the owner sets the
 *   right one; Export CSV as a download.
 * One daemon and one browser for the whole walk: each step builds on the one before. Screenshots (12-*, 13-*) go to
 * test-results/screenshots/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { api, ensureBuilt, poll, startDaemon, TALON, type Daemon } from '../helpers/daemon.ts';
import { firstRunSetup, openBrowser, type BrowserSession } from '../helpers/browser.ts';
import { startWeb, type FixtureWeb } from '../fixtures/web/server.ts';
import { ARTICLES, BLOG, NEWS, researchSites } from '../fixtures/web/research.ts';
import { EXPO_SELECTORS, FAIR_SELECTORS, leadsSites } from '../fixtures/web/leads.ts';
import { startCrm, type CrmFake } from '../fixtures/platforms/crm.ts';
import { startDns, type DnsFake } from '../fixtures/dns.ts';

const USER = 'owner';
const PASSWORD = 'correct horse battery staple';
/** the qualified leads of the fixture directories under the criteria below (robotics in Berlin or Stuttgart) */
const QUALIFIED = ['d:acme-robotics.example', 'd:juniper-robotics.example'];
const ACME = 'd:acme-robotics.example';

let web: FixtureWeb;
let crm: CrmFake;
let dns: DnsFake;
let d: Daemon;
let b: BrowserSession;

function setSecret(dataDir: string, name: string, value: string): void {
  const r = spawnSync(process.execPath, [TALON, 'secrets', 'set', name, '--data', dataDir], {
    input: value,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
}

/** polls a condition of the page (its own state, never a timing) for up to `timeoutMs` */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    assert.ok(Date.now() - t0 < timeoutMs, `waited for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** the page is no wider than the window: nothing spills out sideways */
async function noOverflow(what: string): Promise<void> {
  const [scroll, client] = await b.page.locator('html').evaluate((el) => [el.scrollWidth, el.clientWidth]);
  assert.ok(scroll <= client + 1, `${what}: the page is ${scroll}px wide in a ${client}px window`);
}

/**
 * the whole page in one window as tall as the page (a full-page screenshot of a taller page draws the fixed status
 * bar over its middle), then the window as it was
 */
async function tallScreenshot(name: string): Promise<void> {
  const { page } = b;
  const size = page.viewportSize()!;
  const height = await page.locator('html').evaluate((el) => el.scrollHeight);
  await page.setViewportSize({ width: size.width, height: Math.max(size.height, height) });
  try {
    await b.screenshot(name);
  } finally {
    await page.setViewportSize(size);
  }
}

/** no page-wide sideways scrolling on a phone either: wide tables scroll in their own box */
async function noOverflowOnPhone(what: string): Promise<void> {
  const { page } = b;
  const size = page.viewportSize()!;
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await noOverflow(`${what} on a phone`);
  } finally {
    await page.setViewportSize(size);
  }
}

before(async () => {
  ensureBuilt();
  const sites = { ...researchSites(), ...leadsSites() };
  web = await startWeb(sites);
  crm = await startCrm();
  dns = await startDns({
    'acme-robotics.example': { MX: [{ exchange: 'mx1.acme-robotics.example', priority: 10 }] },
    'juniper-robotics.example': { MX: [{ exchange: 'mail.juniper-robotics.example', priority: 5 }] },
  });
  const hosts = Object.fromEntries(Object.keys(sites).map((h) => [h, '127.0.0.1']));
  const first = await startDaemon({ hands: [], drivers: [] });
  assert.equal(await first.stop(), 0);
  // the owner pasted the wrong token: every delivery to HubSpot is refused (401) until it is set right
  setSecret(first.dataDir, 'hubspot_token', 'pat-na1-not-the-right-token');
  const grant = { hosts: ['*.example', '127.0.0.1'], timeoutMs: 5000 };
  d = await startDaemon(
    {
      drivers: [],
      network: { hosts, dns: [dns.server] },
      hands: [
        { name: 'scheduler', module: 'scheduling' },
        {
          name: 'research',
          module: 'research',
          // no llm capability and no model configured: reports are digests
          capabilities: { network: grant },
          settings: {
            politenessMs: 0,
            timeoutMs: 3000,
            topics: [
              {
                id: 'quantum',
                title: 'Quantum error correction',
                questions: ['What progress was made on quantum error correction with surface codes?'],
                keywords: ['qubits', 'logical error', 'surface code'],
                sources: [{ feed: web.url(NEWS, '/feed.xml') }, { page: web.url(BLOG, '/post.html') }],
                schedule: '0 6 * * *',
              },
              {
                id: 'batteries',
                title: 'Solid-state batteries',
                questions: ['How long do solid-state batteries last?'],
                keywords: ['battery', 'electrolyte'],
                sources: [{ page: web.url(NEWS, '/articles/battery.html') }],
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
    },
    { dataDir: first.dataDir },
  );
  await poll('both Hands run', async () => {
    const [r, l] = await Promise.all([api(d, 'GET', '/api/v1/research/topics'), api(d, 'GET', '/api/v1/leads')]);
    return r.status === 200 && l.status === 200;
  });
  b = await openBrowser(`http://127.0.0.1:${d.httpPort}`);
});

after(async () => {
  await b?.close();
  if (d) assert.equal(await d.stop(), 0, d.output());
  await Promise.all([web?.close(), crm?.close(), dns?.close()]);
});

test('first run: the owner sets up the admin and finds Research and Leads in the navigation', async () => {
  const { page } = b;
  await firstRunSetup(page, d.dataDir, USER, PASSWORD);
  assert.equal((await page.locator('[data-testid="nav-research"]').innerText()).trim(), 'Research');
  assert.equal((await page.locator('[data-testid="nav-leads"]').innerText()).trim(), 'Leads');
});

test('research: the topics table, with their questions, sources and schedule, and no reports yet', async () => {
  const { page } = b;
  await page.click('[data-testid="nav-research"]');
  const quantum = page.locator('[data-testid="research-topic-quantum"]');
  await quantum.waitFor();
  const row = await quantum.innerText();
  assert.match(row, /Quantum error correction/);
  assert.match(row, /surface codes\?/, 'the question under the title');
  assert.match(row, /0 6 \* \* \*/, 'the schedule');
  // the sources in short: their kind and host
  assert.match(row, /feed:news\.example, page:blog\.example/, 'the sources');
  const batteries = await page.locator('[data-testid="research-topic-batteries"]').innerText();
  assert.match(batteries, /Solid-state batteries/);
  assert.equal(await page.locator('[data-testid="research-run-quantum"]').innerText(), 'Run now');
  await page.waitForSelector('[data-testid="research-reports-empty"]');
  assert.match(
    await page.locator('[data-testid="research-reports-empty"]').innerText(),
    /No reports yet/,
    'an empty reports list says so',
  );
  await noOverflow('research topics');
  await b.screenshot('12-research-topics');
});

let reportId = '';

test('research: Run now writes a digest report (no model), shown at once with its documents as links', async () => {
  const { page } = b;
  await page.click('[data-testid="research-run-quantum"]');
  const report = page.locator('[data-testid="research-report"][data-mode="digest"]');
  await report.waitFor({ timeout: 60_000 });
  reportId = (await report.getAttribute('data-report')) ?? '';
  assert.ok(reportId !== '', 'the report has an id');
  assert.equal(new URL(page.url()).hash, `#/research/${encodeURIComponent(reportId)}`, 'the report is in the URL');
  const text = await report.innerText();
  assert.match(text, /^Quantum error correction — /, 'the heading names the topic by its title');
  assert.match(text, /New documents/, 'a digest lists the new documents');
  assert.match(text, /No model/, 'and says why there is no model report');
  // the quantum article, and only fixture-web URLs, as links opening in a new tab
  const links = report.locator('[data-testid="research-sources"] a');
  const n = await links.count();
  assert.ok(n >= 1, 'at least one document');
  const hrefs: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = links.nth(i);
    const href = (await a.getAttribute('href')) ?? '';
    hrefs.push(href);
    assert.match(href, new RegExp(`^http://(${NEWS}|${BLOG}):${web.port}/`), href);
    assert.equal(await a.getAttribute('target'), '_blank');
    assert.match((await a.getAttribute('rel')) ?? '', /noopener/);
  }
  assert.ok(
    hrefs.some((h) => h.includes('/articles/quantum.html')),
    `the quantum article is a source: ${hrefs.join(' ')}`,
  );
  assert.ok(
    await report.locator(`[data-testid="research-sources"] a:text("${ARTICLES.quantum.title}")`).count(),
    'a document is shown by its title',
  );
  // the report as the API has it
  const full = (await api(d, 'GET', `/api/v1/research/reports/${encodeURIComponent(reportId)}`)).body.report;
  assert.equal(full.mode, 'digest');
  assert.deepEqual(
    hrefs,
    full.sources.map((s: { url: string }) => new URL(s.url).href),
  );
  // the Markdown is there, folded, as plain text
  assert.equal(await page.locator('[data-testid="research-markdown"]').isVisible(), false, 'folded');
  await page.click('[data-testid="research-report"] details summary');
  assert.match(await page.locator('[data-testid="research-markdown"]').innerText(), /quantum/i);
});

test('research: the reports list and the last run, and a report opened from the list', async () => {
  const { page } = b;
  await page.goto('/#/research');
  const row = page.locator(`[data-testid="research-report-row-${reportId}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-mode'), 'digest');
  const text = await row.innerText();
  assert.match(text, /Quantum error correction/, 'the row names the topic by its title');
  assert.match(text, /digest/);
  assert.match(text, /\d+ doc\(s\)/, 'a digest counts its documents');
  assert.equal(await page.locator('[data-testid="research-report"]').count(), 0, 'no report open');
  // the topic's last run in words, linking to the report
  const last = page.locator('[data-testid="research-topic-quantum"] a[href^="#/research/"]');
  assert.match(await last.innerText(), /^digest: \d+ new, \d+ relevant/);
  assert.equal(await last.getAttribute('href'), `#/research/${encodeURIComponent(reportId)}`);
  // the topic's title filters the reports
  await page.click('[data-testid="research-topic-quantum"] button.link');
  await page.waitForSelector('[data-testid="research-reports"] h2:text("Reports of quantum")');
  await row.waitFor();
  await page.click('[data-testid="research-topic-quantum"] button.link');
  await page.waitForSelector('[data-testid="research-reports"] h2:text-is("Reports")');
  // open it from the list
  await row.locator('a').click();
  const report = page.locator(`[data-testid="research-report"][data-report="${reportId}"]`);
  await report.waitFor();
  await page.locator('[data-testid="research-sources"] a').first().waitFor();
  await noOverflow('research report');
  await noOverflowOnPhone('research report');
  await tallScreenshot('12b-research-report');
});

test('leads: nothing yet, then Scan now fills the table with scored leads and their statuses', async () => {
  const { page } = b;
  await page.click('[data-testid="nav-leads"]');
  await page.waitForSelector('[data-testid="leads-empty"]');
  await page.click('[data-testid="leads-scan"]');
  const note = page.locator('[data-testid="leads-note"]');
  await note.waitFor({ timeout: 60_000 });
  assert.match(await note.innerText(), /found \d+, new \d+, updated \d+, qualified 2, deliveries queued 2/);
  await page.locator(`[data-testid="lead-row-${ACME}"]`).waitFor();
  const { leads } = (await api(d, 'GET', '/api/v1/leads?limit=100')).body as {
    leads: Array<{ id: string; score: number; status: string; company?: { value: string } }>;
  };
  assert.ok(leads.length >= 19, `${leads.length} leads`);
  assert.equal(await page.locator('[data-testid="leads-table"] tbody tr').count(), leads.length);
  for (const l of leads) {
    const cells = page.locator(`[data-testid="lead-row-${l.id}"] td`);
    assert.equal(await cells.nth(2).innerText(), String(Math.round(l.score)), `${l.id}'s score`);
    assert.equal(await cells.nth(3).innerText(), l.status, `${l.id}'s status`);
  }
  assert.deepEqual(
    leads
      .filter((l) => l.status === 'qualified')
      .map((l) => l.id)
      .sort(),
    QUALIFIED,
  );
  assert.ok(
    leads.some((l) => l.status === 'unqualified'),
    'some leads are not qualified',
  );
  const acme = await page.locator(`[data-testid="lead-row-${ACME}"]`).innerText();
  assert.match(acme, /Acme Robotics/);
  assert.match(acme, /acme-robotics\.example/);
  assert.match(acme, /qualified/);
  assert.match(acme, /expo/, 'the source it came from');
  // the status filter
  await page.selectOption('[data-testid="leads-status"]', 'qualified');
  await until(
    async () => (await page.locator('[data-testid="leads-table"] tbody tr').count()) === QUALIFIED.length,
    'only the qualified leads',
  );
  await page.selectOption('[data-testid="leads-status"]', '');
  await until(
    async () => (await page.locator('[data-testid="leads-table"] tbody tr').count()) === leads.length,
    'all leads again',
  );
});

test('leads: the deliveries to HubSpot failed for good on the wrong token, and the page says why', async () => {
  const { page } = b;
  for (const id of QUALIFIED) {
    const row = page.locator(`[data-testid="delivery-row-hubspot/${id}"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute('data-state'), 'failed');
    const text = await row.innerText();
    assert.match(text, /hubspot/);
    assert.match(text, /refused the credentials \(401\)/);
    assert.match(text, /check the target's secret/);
    assert.ok(await page.locator(`[data-testid="delivery-retry-hubspot/${id}"]`).isEnabled());
  }
  assert.equal(crm.hubspot.companies.size, 0, 'nothing reached the CRM');
  await noOverflow('leads');
  await noOverflowOnPhone('leads');
  await tallScreenshot('13-leads');
});

test('leads: a lead opened shows every field with the URL or DNS query it came from', async () => {
  const { page } = b;
  await page.click(`[data-testid="lead-row-${ACME}"]`);
  const detail = page.locator('[data-testid="lead-detail"]');
  await detail.waitFor();
  assert.match(await detail.locator('h2').innerText(), /Acme Robotics\s+qualified/);
  assert.match(await detail.innerText(), /Score \d+/);
  const lead = (await api(d, 'GET', `/api/v1/leads/${encodeURIComponent(ACME)}`)).body.lead;
  const rows = detail.locator('[data-testid="lead-fields"] tr');
  const shown: Array<[string, string, string, string | null]> = [];
  for (let i = 0; i < (await rows.count()); i++) {
    const r = rows.nth(i);
    const link = r.locator('td a');
    shown.push([
      await r.locator('th').innerText(),
      await r.locator('td').nth(0).innerText(),
      await r.locator('td').nth(1).innerText(),
      (await link.count()) ? await link.getAttribute('href') : null,
    ]);
  }
  const find = (name: string, value: string) => shown.find(([n, v]) => n === name && v === value);
  assert.ok(find('Company', 'Acme Robotics'), JSON.stringify(shown));
  assert.ok(find('Location', 'Berlin'), JSON.stringify(shown));
  assert.ok(find('Industry', 'Robotics'), JSON.stringify(shown));
  assert.ok(find('E-mail', 'info@acme-robotics.example'), JSON.stringify(shown));
  assert.deepEqual(find('MX', 'mx1.acme-robotics.example')?.slice(2), ['dns:MX acme-robotics.example', null]);
  // every field read from a page links to that page on the fixture web, and is the API's source
  for (const [name, value, source, href] of shown) {
    if (name === 'MX') continue;
    assert.match(source, new RegExp(`^http://[a-z.-]+\\.example:${web.port}/`), `${name} ${value}: ${source}`);
    assert.equal(href, source, `${name}'s source is a link`);
  }
  assert.equal(lead.emails.length, shown.filter(([n]) => n === 'E-mail').length);
  for (const e of lead.emails as Array<{ value: string; source: string }>)
    assert.equal(find('E-mail', e.value)?.[2], e.source);
  assert.equal(
    await page.locator(`[data-testid="lead-row-${ACME}"]`).getAttribute('class'),
    'selected',
    'the opened lead is marked in the table',
  );
  await noOverflow('lead detail');
  await b.screenshot('13b-lead-detail', '[data-testid="lead-detail"]');
});

test('leads: once the owner sets the right token, Retry delivers each lead to HubSpot', async () => {
  const { page } = b;
  setSecret(d.dataDir, 'hubspot_token', crm.hubspot.token);
  for (const id of QUALIFIED) {
    await page.click(`[data-testid="delivery-retry-hubspot/${id}"]`);
    const row = page.locator(`[data-testid="delivery-row-hubspot/${id}"][data-state="sent"]`);
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /sent/);
    assert.match(text, /created/);
    assert.doesNotMatch(text, /401/, 'the old error is gone');
    assert.equal(await page.locator(`[data-testid="delivery-retry-hubspot/${id}"]`).count(), 0, 'no Retry once sent');
    assert.match(await page.locator('[data-testid="leads-note"]').innerText(), new RegExp(`hubspot/${id}: sent`));
  }
  const domains = [...crm.hubspot.companies.values()].map((p) => p.domain).sort();
  assert.deepEqual(
    domains,
    QUALIFIED.map((q) => q.slice(2)),
  );
  await b.screenshot('13c-leads-delivered', '[data-testid="deliveries"]');
});

test('leads: Export CSV downloads the leads as a CSV file', async () => {
  const { page } = b;
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="leads-export"]')]);
  assert.equal(download.suggestedFilename(), 'leads.csv');
  const file = await download.path();
  const csv = readFileSync(file, 'utf8');
  const lines = csv.trim().split(/\r?\n/);
  assert.match(lines[0]!, /^id,company,domain/);
  assert.ok(csv.includes('acme-robotics.example') && csv.includes('Acme Robotics'), csv.slice(0, 500));
  const { count } = (await api(d, 'GET', '/api/v1/leads/export')).body as { count: number };
  await page.waitForSelector(`[data-testid="leads-note"]:text("Exported ${count} lead(s)")`);
  // the qualified ones only, when the filter says so
  await page.selectOption('[data-testid="leads-status"]', 'qualified');
  await until(
    async () => (await page.locator('[data-testid="leads-table"] tbody tr').count()) === QUALIFIED.length,
    'only the qualified leads',
  );
  const [qualified] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="leads-export"]')]);
  assert.equal(qualified.suggestedFilename(), 'leads-qualified.csv');
  const q = readFileSync(await qualified.path(), 'utf8')
    .trim()
    .split(/\r?\n/);
  assert.equal(q.length, 1 + QUALIFIED.length, q.join('\n'));
});

test('the pages made no console errors', () => {
  assert.deepEqual(b.problems, []);
});
