/**
 * The Web Automation Hand's page (#/web) in a real browser (Debian's Chromium through playwright-core) against the
 * real daemon, as the device's owner uses it. The Hand (`web`, module web-automation) reads a local fixture site on
 * 127.0.0.1 under real names (config `network.hosts`: shop.example and news.example) with two watches (a
 * JavaScript-rendered price, a headline's text) and two scripted flows: `prices` extracts a JavaScript-rendered
 * table, `checkout` fails at its third step (the pay button is not on the page).
 * - first through the API: a check of the price watch and both flows run, their records as the API has them;
 * - then on the page: the watches table with both watches and their state, Check on the unchecked one (the row
 *   updates: checked, then a change pending, then changed), the runs list with every run, the failed run opened
 *   (the failing step's path, the page's URL, the steps, the failure screenshot as an image that loads), the good
 *   run opened (its extracted table), and nothing spilling out sideways in a 390 px wide window;
 * - the Add watch form: a missing id and a config watch's id refused with the reason shown, a watch added (its row:
 *   source api, not checked), checked from its row, opened and removed (asked first); a config watch has no Remove.
 * One daemon and one browser for the whole walk: each step builds on the one before. Screenshots (14*-web-*) go to
 * test-results/screenshots/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Locator } from 'playwright-core';
import { api, ensureBuilt, poll, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { firstRunSetup, openBrowser, type BrowserSession } from '../helpers/browser.ts';
import { startWeb, type FixtureWeb } from '../fixtures/web/server.ts';

const USER = 'owner';
const PASSWORD = 'correct horse battery staple';
const SHOP = 'shop.example';
const NEWS = 'news.example';
/** the rows of the shop's price table (rendered by a script after load), and what the `prices` flow extracts */
const ITEMS = [
  { name: 'Desk lamp', price: '$19.99' },
  { name: 'Floor lamp', price: '$54.00' },
  { name: 'Bulb (E27, warm)', price: '$3.49' },
];
const HEADLINE = 'Harbour bridge reopens after repairs';
const HEADLINE2 = 'Harbour bridge closed again for inspection';

let web: FixtureWeb;
let d: Daemon;
let b: BrowserSession;
let headline = HEADLINE;
/** the answers of 400 and over the page got: method, path */
const refused: string[] = [];

const html = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

/** polls a condition of the page (its own state, never a timing) for up to `timeoutMs` */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    assert.ok(Date.now() - t0 < timeoutMs, `waited for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** the elements sticking out past the window's right edge (the innermost ones), to say what spills out */
const SPILLS = `(() => {
  const clipped = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement)
      if (getComputedStyle(p).overflowX !== 'visible') return true;
    return false;
  };
  const out = [...document.querySelectorAll('body *')].filter(
    (el) => el.getBoundingClientRect().right > window.innerWidth + 0.5 && !clipped(el),
  );
  return out
    .filter((el) => !out.some((o) => o !== el && el.contains(o)))
    .slice(0, 5)
    .map((el) => el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ').join('.') : '') +
      ' ' + Math.round(el.getBoundingClientRect().right) + 'px "' + (el.textContent || '').trim().slice(0, 60) + '"');
})()`;

/** the page is no wider than the window: nothing spills out sideways */
async function noOverflow(what: string): Promise<void> {
  const [scroll, inner] = (await b.page.evaluate('[document.documentElement.scrollWidth, window.innerWidth]')) as [
    number,
    number,
  ];
  if (scroll <= inner) return;
  const spills = (await b.page.evaluate(SPILLS)) as string[];
  assert.fail(`${what}: the page is ${scroll}px wide in a ${inner}px window; sticking out: ${spills.join('; ')}`);
}

/** the same in a phone's 390 px window; a screenshot of it when `name` is given; then the window as it was */
async function onPhone(what: string, name?: string): Promise<void> {
  const { page } = b;
  const size = page.viewportSize()!;
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    if (name) await tallScreenshot(name);
    await noOverflow(`${what} on a phone`);
  } finally {
    await page.setViewportSize(size);
  }
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

/** what the test reads of an <img> (no DOM types here) */
interface Img {
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
}

/** a card of the page by its heading, as a person finds it */
const card = (heading: string | RegExp): Locator =>
  b.page.locator('.card').filter({ has: b.page.getByRole('heading', { name: heading, exact: true }) });
/** a watch's row in the watches table, found by its URL (shown in the row) */
const watchRow = (url: string): Locator => card('Page watches').locator('tbody tr').filter({ hasText: url });
/** the runs list's rows */
const runRows = (): Locator => card('Runs').locator('tbody tr');
const norm = (t: string): string => t.replace(/\s+/g, ' ').trim();
/** a row as { column heading: cell text }, by its table's own headings (a column added or moved does not matter) */
async function fields(row: Locator): Promise<Record<string, string>> {
  const heads = (await row.locator('xpath=ancestor::table[1]/thead//th').allInnerTexts()).map(norm);
  const tds = (await row.locator('td').allInnerTexts()).map(norm);
  return Object.fromEntries(heads.map((h, i) => [h || `#${i}`, tds[i] ?? '']));
}
const show = (f: Record<string, string>): string => JSON.stringify(f);

const lampUrl = (): string => web.url(SHOP, '/lamp');
const newsUrl = (): string => web.url(NEWS, '/');
const checkoutUrl = (): string => web.url(SHOP, '/checkout');

before(async () => {
  ensureBuilt();
  web = await startWeb({
    [SHOP]: {
      // the price arrives by script, after load
      '/lamp': {
        type: 'text/html',
        body: html(
          'Desk lamp',
          '<h1>Desk lamp</h1><p>Price: <span id="price"></span></p>' +
            `<script>setTimeout(() => { document.getElementById('price').textContent = '$19.99'; }, 200);</script>`,
        ),
      },
      // the table is rendered by script, after load
      '/prices': {
        type: 'text/html',
        body: html(
          'Price list',
          '<h1>Price list</h1><table id="prices"><thead><tr><th>Item</th><th>Price</th></tr></thead><tbody></tbody></table>' +
            `<script>const items = ${JSON.stringify(ITEMS)};` +
            "setTimeout(() => { const tb = document.querySelector('#prices tbody'); for (const it of items) {" +
            " const tr = document.createElement('tr'); tr.className = 'item';" +
            ' tr.innerHTML = \'<td class="name"></td><td class="price"></td>\';' +
            ' tr.children[0].textContent = it.name; tr.children[1].textContent = it.price; tb.append(tr); } }, 200);' +
            '</script>',
        ),
      },
      // no pay button today: the flow's click fails and the screenshot shows why
      '/checkout': {
        type: 'text/html',
        body: html(
          'Checkout',
          '<h1>Checkout</h1><label>E-mail <input id="email" type="email"></label>' +
            '<p class="notice" style="background:#fee;border:2px solid #c00;padding:1em">' +
            'Payments are paused for maintenance. Please come back later.</p>',
        ),
      },
    },
    [NEWS]: {
      '/': (_req, res) => {
        res
          .writeHead(200, { 'content-type': 'text/html' })
          .end(
            html(
              'News',
              `<h1 class="headline">${headline}</h1><p>Visitors today: ${Math.floor(Math.random() * 1e6)}</p>`,
            ),
          );
      },
    },
  });
  d = await startDaemon({
    drivers: [],
    network: { hosts: { [SHOP]: '127.0.0.1', [NEWS]: '127.0.0.1' } },
    hands: [
      { name: 'scheduler', module: 'scheduling' },
      {
        name: 'web',
        module: 'web-automation',
        // the names resolve to 127.0.0.1 (network.hosts): a loopback address is granted only by name
        capabilities: { network: { hosts: [SHOP, NEWS, '127.0.0.1'] } },
        settings: {
          watches: [
            { id: 'lamp', url: lampUrl(), what: { price: '#price' } },
            { id: 'news', url: newsUrl(), what: { text: 'h1.headline' }, schedule: '0 3 1 1 *' },
          ],
          flows: {
            prices: {
              output: {
                type: 'object',
                required: ['items'],
                properties: { items: { type: 'array', minItems: 1 } },
              },
              steps: [
                { goto: web.url(SHOP, '/prices') },
                { wait_for: { selector: '#prices tr.item' } },
                { extract: { list: '#prices tr.item', fields: { name: 'td.name', price: 'td.price' } }, as: 'items' },
              ],
            },
            checkout: {
              steps: [
                { goto: checkoutUrl() },
                { fill: { selector: '#email', value: 'ada@example.org' } },
                { click: '#pay-now', timeoutMs: 2000 },
              ],
            },
          },
        },
      },
    ],
  });
  await poll('the Web Automation Hand runs', async () => (await api(d, 'GET', '/api/v1/web/watches')).status === 200);
  b = await openBrowser(`http://127.0.0.1:${d.httpPort}`);
  // which request a "Failed to load resource" console error was about (the console does not say)
  b.page.on('response', (r) => {
    if (r.status() >= 400) refused.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
});

after(async () => {
  await b?.close();
  if (d) assert.equal(await d.stop(), 0, d.output());
  await web?.close();
});

const ids = { lampCheck: '', prices: '', checkout: '' };
let failureScreenshot = '';

test('through the API first: the price watch checked, the prices flow extracts the table, checkout fails at steps[2]', async () => {
  const check = await api(d, 'POST', '/api/v1/web/watches/lamp/check');
  assert.equal(check.status, 200, JSON.stringify(check.body));
  assert.equal(check.body.run.ok, true, JSON.stringify(check.body));
  assert.deepEqual(check.body.events, [], 'the first check is the baseline');
  ids.lampCheck = check.body.run.id;

  const good = await api(d, 'POST', '/api/v1/web/flows/run', { flow: 'prices' });
  assert.equal(good.status, 200, JSON.stringify(good.body));
  assert.equal(good.body.run.ok, true, JSON.stringify(good.body.run));
  assert.deepEqual(good.body.run.output.items, ITEMS);
  ids.prices = good.body.run.id;

  const bad = await api(d, 'POST', '/api/v1/web/flows/run', { flow: 'checkout' });
  assert.equal(bad.status, 200, JSON.stringify(bad.body));
  const run = bad.body.run;
  assert.equal(run.ok, false, JSON.stringify(run));
  assert.equal(run.failure.path, 'steps[2]');
  assert.equal(run.failure.kind, 'click');
  assert.match(run.failure.message, /#pay-now/);
  assert.equal(run.failure.url, checkoutUrl());
  assert.equal(typeof run.failure.screenshot, 'string', 'a failure screenshot was taken');
  failureScreenshot = run.failure.screenshot;
  ids.checkout = run.id;
});

test('first run: the owner sets up the admin and finds Web in the navigation', async () => {
  const { page } = b;
  await firstRunSetup(page, d.dataDir, USER, PASSWORD);
  const nav = page.locator('[data-testid="nav-web"]');
  assert.equal((await nav.innerText()).trim(), 'Web');
  assert.equal(await nav.getAttribute('href'), '#/web');
});

test('the watches table lists both watches with their URL, what they compare and their state', async () => {
  const { page } = b;
  await page.click('[data-testid="nav-web"]');
  const lamp = watchRow(lampUrl());
  const news = watchRow(newsUrl());
  await lamp.waitFor();
  await news.waitFor();
  assert.equal(await card('Page watches').locator('tbody tr').count(), 2, 'two watches');

  const l = await fields(lamp);
  assert.match(l.Watch!, /^lamp\b/, 'the watch id first');
  assert.match(l.Watch!, /price #price/, 'what it compares');
  assert.equal(l.State, 'ok', show(l));
  assert.match(l.Value!, /19\.99/, `its last value: ${show(l)}`);
  assert.match(l['Last check']!, /\d/, `when it was checked: ${show(l)}`);
  // its URL is a link to the page, opening in a new tab
  const link = lamp.getByRole('link', { name: lampUrl() });
  assert.equal(await link.getAttribute('href'), lampUrl());
  assert.equal(await link.getAttribute('target'), '_blank');

  const n = await fields(news);
  assert.match(n.Watch!, /^news\b/);
  assert.match(n.Watch!, /text h1\.headline/);
  assert.match(n.Watch!, /0 3 1 1 \*/, 'its schedule');
  assert.equal(n.State, 'not checked', show(n));
  assert.doesNotMatch(n.Value!, /Harbour/, 'no value yet');
  assert.doesNotMatch(n['Last check']!, /\d/, `never checked: ${show(n)}`);
  await noOverflow('web watches');
  await tallScreenshot('14-web-watches');
});

test('Check on the unchecked watch: the row shows its value, then a change pending, then the change', async () => {
  const { page } = b;
  const news = watchRow(newsUrl());
  const button = news.getByRole('button', { name: 'Check' });
  assert.ok(await button.isEnabled());
  const checks = web.hits(NEWS, '/');

  await button.click();
  await until(async () => (await fields(news)).Value === HEADLINE, 'the headline in the row');
  assert.equal((await fields(news)).State, 'ok', show(await fields(news)));
  assert.ok(web.hits(NEWS, '/') > checks, 'the page was read');
  await page.getByText('news: no change').waitFor();

  headline = HEADLINE2;
  await news.getByRole('button', { name: 'Check' }).click();
  await until(async () => (await fields(news)).State === 'change pending', 'a change pending');
  await page.getByText('news: pending').waitFor();
  assert.ok((await fields(news)).Value === HEADLINE, 'the value stays until the change is confirmed');

  await news.getByRole('button', { name: 'Check' }).click();
  await until(async () => (await fields(news)).Value === HEADLINE2, 'the new headline in the row');
  await page.getByText('news: changed').waitFor();
  const row = await fields(news);
  assert.equal(row.State, 'ok', show(row));
  // last check and last change are times now
  assert.match(row['Last check']!, /\d/, show(row));
  assert.match(row['Last change']!, /\d/, show(row));
  // the other watch is as it was
  assert.match((await fields(watchRow(lampUrl()))).Value!, /19\.99/);
});

test('the runs list shows every run, newest first: the checks, the good flow and the failed one with its step', async () => {
  const runs = (await api(d, 'GET', '/api/v1/web/runs')).body.runs as Array<{ id: string; kind: string; name: string }>;
  assert.equal(runs.length, 6, JSON.stringify(runs));
  await until(async () => (await runRows().count()) === runs.length, 'every run in the list');
  const shown: Array<Record<string, string>> = [];
  for (let i = 0; i < runs.length; i++) shown.push(await fields(runRows().nth(i)));
  assert.deepEqual(
    shown.map((r) => `${r.Kind} ${r.Name}`),
    runs.map((r) => `${r.kind} ${r.name}`),
    'kind and name, in the API order',
  );
  assert.deepEqual(
    shown.map((r) => `${r.Kind} ${r.Name}`),
    ['check news', 'check news', 'check news', 'flow checkout', 'flow prices', 'check lamp'],
  );
  const [checkout, prices, lamp] = shown.slice(3);
  assert.equal(prices!.Result, 'ok');
  assert.equal(lamp!.Result, 'ok');
  assert.match(checkout!.Result!, /^steps\[2\]/, 'the failing step');
  assert.match(checkout!.Result!, /no element matches #pay-now/, 'and why');
  assert.equal(await runRows().nth(3).locator('.error').count(), 1, 'the failure is marked as an error');
  assert.equal(shown[1]!.Result, 'ok (pending)');
  assert.equal(shown[0]!.Result, 'ok (changed)');
  assert.equal(shown[2]!.Result, 'ok');
  // each row opens its run
  const hrefs = [];
  for (let i = 0; i < runs.length; i++)
    hrefs.push(await runRows().nth(i).getByRole('link').first().getAttribute('href'));
  assert.deepEqual(
    hrefs,
    runs.map((r) => `#/web/${r.id}`),
  );
  assert.deepEqual(
    [runs[3]!.id, runs[4]!.id, runs[5]!.id],
    [ids.checkout, ids.prices, ids.lampCheck],
    'the runs started through the API',
  );
});

test('the failed run opened: its step, the page URL, the steps and the error', async () => {
  const { page } = b;
  const row = runRows().filter({ hasText: 'checkout' });
  await row.getByRole('link').first().click();
  await until(async () => new URL(page.url()).hash === `#/web/${ids.checkout}`, 'the run in the URL');
  const run = card(/^flow checkout\b/);
  await run.waitFor();
  const text = await run.innerText();
  assert.match(text, /failed/);
  assert.match(text, /steps\[2\] \(click\): no element matches #pay-now within 2000 ms/, 'the step, its kind, why');
  // the page it failed on, as a link
  const link = run.getByRole('link', { name: checkoutUrl() });
  assert.equal(await link.getAttribute('href'), checkoutUrl());
  // the steps: two done, the third failed
  const steps = run.locator('table tbody tr');
  assert.equal(await steps.count(), 3);
  const s = await Promise.all([0, 1, 2].map((i) => fields(steps.nth(i))));
  assert.deepEqual(
    s.map((r) => [r.Step, r.Kind]),
    [
      ['steps[0]', 'goto'],
      ['steps[1]', 'fill'],
      ['steps[2]', 'click'],
    ],
  );
  assert.equal(s[0]!.Result, 'ok');
  assert.equal(s[1]!.Result, 'ok');
  assert.match(s[2]!.Result!, /#pay-now/);
  await noOverflow('the failed run');
  await tallScreenshot('14c-web-failure');
});

test('the failed run on a phone (390 px) does not spill out sideways', async () => {
  await card(/^flow checkout\b/).waitFor();
  await onPhone('the failed run', '14d-web-failure-phone');
});

test("the failed run's screenshot is shown as an image that loads", async () => {
  assert.ok(failureScreenshot, 'the API named a screenshot');
  const run = card(/^flow checkout\b/);
  await run.waitFor();
  const img = run.locator('img').first();
  await img.waitFor({ timeout: 5000 }).catch(() => {});
  assert.ok(
    (await run.locator('img').count()) > 0,
    `no <img> in the failed run (the page shows: ${(await run.innerText()).replace(/\s+/g, ' ').slice(0, 400)})`,
  );
  await until(
    async () => await img.evaluate((el) => (el as unknown as Img).complete),
    'the image loaded (or failed)',
    10_000,
  );
  const [w, h] = await img.evaluate((el) => [
    (el as unknown as Img).naturalWidth,
    (el as unknown as Img).naturalHeight,
  ]);
  assert.ok(w > 0 && h > 0, `the image is ${w}×${h} (src ${await img.getAttribute('src')})`);
  assert.ok(await img.isVisible());
});

test('the good run opened: the extracted table as output', async () => {
  const { page } = b;
  await page.goto(`/#/web/${ids.prices}`);
  const run = card(/^flow prices\b/);
  await run.waitFor();
  const text = await run.innerText();
  assert.match(text, /\bok\b/);
  assert.doesNotMatch(text, /failed/);
  const out = run.locator('pre').first();
  await out.waitFor();
  assert.deepEqual(JSON.parse(await out.innerText()), { items: ITEMS }, 'the output as JSON');
  const steps = run.locator('table tbody tr');
  assert.equal(await steps.count(), 3);
  for (let i = 0; i < 3; i++) assert.equal((await fields(steps.nth(i))).Result, 'ok');
  await noOverflow('the good run');
  await tallScreenshot('14b-web-run');
  await onPhone('the good run');
});

test('on a phone (390 px) the watches and runs do not spill out sideways', async () => {
  const { page } = b;
  await page.goto('/#/web');
  await watchRow(newsUrl()).waitFor();
  await until(async () => (await runRows().count()) === 6, 'the runs');
  await onPhone('the watches and runs', '14e-web-phone');
});

test('a watch opened: its last change with both headlines and its last checks, newest first', async () => {
  const { page } = b;
  await page.goto('/#/web');
  await watchRow(newsUrl()).getByRole('link', { name: 'news', exact: true }).click();
  await until(async () => new URL(page.url()).hash === '#/web/watch/news', 'the watch in the URL');
  const view = card(/^news\b/);
  await view.waitFor();
  const text = await view.innerText();
  assert.match(text, /text h1\.headline/);
  assert.ok(text.includes(HEADLINE) && text.includes(HEADLINE2), `the change shows before and after: ${norm(text)}`);
  const history = view.locator('table tbody tr');
  await history.first().waitFor();
  const results = [];
  for (let i = 0; i < (await history.count()); i++) results.push((await fields(history.nth(i))).Result);
  assert.deepEqual(results, ['changed', 'pending', 'baseline']);
  assert.equal(await view.getByRole('button', { name: 'Remove' }).count(), 0, 'a config watch has no Remove');
  await noOverflow('a watch');
  await tallScreenshot('14g-web-watch');
  await onPhone('a watch');
});

test("Add watch: the form refuses a missing id and a config watch's id, adds one, Check reads it, Remove drops it", async () => {
  const { page } = b;
  await page.goto('/#/web');
  const form = card('Add watch');
  await form.waitFor();
  const submit = form.getByRole('button', { name: 'Add', exact: true });
  // nothing written: the form says which field is missing, nothing is sent
  await form.getByLabel('URL').fill(lampUrl());
  await submit.click();
  await form.getByText(/^Id: write a watch id/).waitFor();
  // a config watch's id: the Hand refuses and the form shows why
  await form.getByLabel('Id').fill('lamp');
  await submit.click();
  await form.getByText('watch "lamp" is in the config', { exact: false }).waitFor();
  assert.equal((await api(d, 'GET', '/api/v1/web/watches')).body.watches.length, 2, 'nothing added');

  await form.getByLabel('Id').fill('lamp-stock');
  await form.getByLabel('Kind').selectOption({ label: 'Text' });
  await form.getByLabel('Selector').fill('h1');
  await submit.click();
  const row = card('Page watches').locator('tbody tr').filter({ hasText: 'lamp-stock' });
  await row.waitFor();
  await page.getByText(/Added lamp-stock: text h1/).waitFor();
  const f = await fields(row);
  assert.match(f.Watch!, new RegExp(`^lamp-stock ${lampUrl().replace(/[.]/g, '\\.')} · text h1`), show(f));
  assert.equal(f.Source, 'api', show(f));
  assert.equal(f.State, 'not checked', show(f));
  const { watches } = (await api(d, 'GET', '/api/v1/web/watches')).body as { watches: Array<{ id: string }> };
  assert.deepEqual(watches.map((w) => w.id).sort(), ['lamp', 'lamp-stock', 'news']);
  assert.equal(await form.getByLabel('Id').inputValue(), '', 'the form is emptied for the next one');

  await row.getByRole('button', { name: 'Check' }).click();
  await until(async () => (await fields(row)).Value === 'Desk lamp', 'the new watch read its page');
  assert.equal((await fields(row)).State, 'ok');
  await noOverflow('the watches with one added');
  await tallScreenshot('14f-web-added');

  // opened, it can be removed (asked first); a config watch cannot
  await row.getByRole('link', { name: 'lamp-stock', exact: true }).click();
  const view = card(/^lamp-stock\b/);
  await view.waitFor();
  await view.getByRole('button', { name: 'Remove' }).click();
  await view.getByRole('button', { name: 'Yes, remove' }).click();
  await page.getByText('Removed lamp-stock').waitFor();
  await until(async () => (await row.count()) === 0, 'the row gone');
  assert.deepEqual(
    ((await api(d, 'GET', '/api/v1/web/watches')).body.watches as Array<{ id: string }>).map((w) => w.id).sort(),
    ['lamp', 'news'],
  );
  await watchRow(lampUrl()).getByRole('link', { name: 'lamp', exact: true }).click();
  await card(/^lamp\b/).waitFor();
  assert.equal(
    await card(/^lamp\b/)
      .getByRole('button', { name: 'Remove' })
      .count(),
    0,
    'no Remove on a config watch',
  );
});

test('the pages made no console errors but the refused Add (409)', () => {
  // the one answer over 400 asked for: the Add of a config watch's id
  assert.deepEqual(
    refused.filter((r) => r !== '409 PUT /api/v1/web/watches/lamp'),
    [],
    'no other request failed',
  );
  assert.deepEqual(
    b.problems.filter((p) => !/status of 409/.test(p)),
    [],
  );
});
