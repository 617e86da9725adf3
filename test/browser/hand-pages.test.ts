/**
 * The Hands' pages in a real browser (Debian's Chromium through playwright-core), against the
 * page built with the fixture Hand (test/fixtures/hands/surface-demo) and a small fake of the
 * API, so the page's side is tested alone: a Hand's chunk is fetched only when its page opens,
 * a section joins its kernel page, a 503 HAND_NOT_RUNNING shows the server's message and a link
 * to the Hands page, and the view comes back once the Hand runs. (The real daemon's walk is
 * test/browser/admin.test.ts.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { HANDS_DIR, buildPage, type PageManifest } from '../../web-admin/page/build.ts';
import { StaticFiles } from '../../web-admin/static.ts';
import { openBrowser, type BrowserSession } from '../helpers/browser.ts';

const FIXTURE_HANDS = join(import.meta.dirname, '..', 'fixtures', 'hands');
const MARKER = 'surface-demo-page-marker-7f3c';
const STOPPED = 'the Monitoring Hand "monitoring" is stopped; start it to see sensor history and alerts';

let dir: string;
let manifest: PageManifest;
let server: Server;
let b: BrowserSession;
/** what the fake API says */
const state = { monitoringRunning: false, acked: false, csrfSeen: '' };
/** every path the browser asked for, in order */
const requested: string[] = [];

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
};

function fakeApi(req: IncomingMessage, res: ServerResponse, path: string): void {
  const now = Date.now();
  const alert = {
    id: 'a1',
    sensor: 'green.temp',
    rule: 'above',
    severity: 'warning',
    state: 'firing',
    message: 'green.temp above 20',
    ts: now,
    acknowledged: state.acked ? { by: 'user:owner', at: now } : null,
  };
  const notRunning = (): void =>
    json(res, 503, { error: { code: 'HAND_NOT_RUNNING', message: STOPPED, details: { hand: 'monitoring' } } });
  if (path.endsWith('/stream')) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': open\n\n');
    return;
  }
  switch (`${req.method} ${path}`) {
    case 'GET /api/v1/setup':
      return json(res, 200, { needed: false });
    case 'GET /api/v1/session':
      return json(res, 200, { user: { name: 'owner', role: 'admin' }, csrf: 'csrf-1' });
    case 'GET /api/v1/system':
      return json(res, 200, { deviceId: 'dev-1', version: '0.0.0', publicKey: '' });
    case 'GET /api/v1/hands':
      return json(res, 200, {
        hands: [
          {
            name: 'monitoring',
            module: 'monitoring',
            id: 'monitoring',
            state: state.monitoringRunning ? 'running' : 'stopped',
          },
          { name: 'demo', module: '/somewhere/surface-demo.ts', id: 'surface-demo', state: 'running' },
        ],
      });
    case 'GET /api/v1/sensors':
      return json(res, 200, { sensors: [{ id: 'green.temp', unit: '°C', latest: { value: 22, ts: now } }] });
    case 'GET /api/v1/alerts':
      return state.monitoringRunning ? json(res, 200, { alerts: [alert] }) : notRunning();
    case 'POST /api/v1/alerts/a1/ack': {
      if (!state.monitoringRunning) return notRunning();
      state.csrfSeen = String(req.headers['x-csrf-token'] ?? '');
      state.acked = true;
      return json(res, 200, { alert: { ...alert, acknowledged: { by: 'user:owner', at: now } } });
    }
  }
  json(res, 404, { error: { code: 'NOT_FOUND', message: `no ${req.method} ${path} in this fake` } });
}

before(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'talon-hand-pages-')), 'web');
  manifest = await buildPage(dir, { handDirs: [HANDS_DIR, FIXTURE_HANDS] });
  const files = new StaticFiles(dir);
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requested.push(path);
    if (path.startsWith('/api/')) return fakeApi(req, res, path);
    try {
      files.serve(req, res, path);
    } catch (err) {
      json(res, 500, { error: { code: 'INTERNAL', message: (err as Error).message } });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b = await openBrowser(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

after(async () => {
  await b?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

const chunk = (hand: string): string => `/${manifest.hands.find((h) => h.hand === hand)!.file}`;

test("a Hand's section with its Hand stopped says so, with the server's message and a link to the Hands page", async () => {
  const { page } = b;
  await page.goto('/#/sensors');
  const notice = page.locator('[data-testid="hand-not-running-monitoring"]');
  await notice.waitFor();
  const text = await notice.innerText();
  assert.ok(text.includes(STOPPED), text);
  assert.match(text, /start it on the Hands page/);
  assert.equal(await notice.locator('a').getAttribute('href'), '#/hands');
  assert.equal(await page.locator('[data-testid="alerts"]').count(), 0, 'no empty alerts list instead');
  // the kernel's part of the page is there, and the section's label joins the page's
  await page.locator('[data-testid="sensor-row-green.temp"]').waitFor();
  assert.equal(await page.locator('[data-testid="nav-sensors"]').innerText(), 'Sensors & alerts');
  assert.equal(await page.locator('h1').first().innerText(), 'Sensors & alerts');
  assert.ok(requested.includes(chunk('monitoring')), "the section's chunk was loaded for this page");
  assert.ok(!requested.includes(chunk('surface-demo')), "no other Hand's chunk was loaded");
  await b.screenshot('hand-pages-01-not-running');
});

test('once the Hand runs, its section comes back by itself and works', async () => {
  const { page } = b;
  state.monitoringRunning = true;
  await page.locator('[data-testid="alert-row-a1"]').waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('[data-testid="hand-not-running-monitoring"]').count(), 0);
  await page.click('[data-testid="alert-ack-a1"]');
  await page.waitForSelector('[data-testid="alert-row-a1"][data-acked="true"]');
  assert.equal(state.csrfSeen, 'csrf-1', "a write from a Hand's view carries the session's CSRF token");
  // a sensor's link shows the section's history chart
  await page.click('[data-testid="sensor-row-green.temp"] a');
  await page.locator('[data-testid="sensor-history"][data-sensor="green.temp"]').waitFor();
  await b.screenshot('hand-pages-02-running');
});

test("a fixture Hand's page of its own: in the nav from the start, its chunk fetched when opened", async () => {
  const { page } = b;
  const nav = page.locator('[data-testid="nav-surface-demo"]');
  assert.equal(await nav.innerText(), 'Surface demo');
  assert.ok(!requested.includes(chunk('surface-demo')), 'not fetched before it is opened');
  await nav.click();
  await page.locator('[data-testid="surface-demo-marker"]').waitFor();
  assert.equal(await page.locator('[data-testid="surface-demo-marker"]').innerText(), MARKER);
  assert.ok(requested.includes(chunk('surface-demo')), 'fetched when opened');
  assert.match(
    await page.locator('[data-testid="surface-demo"]').innerText(),
    /surface-demo: demo/,
    "the Hand's instances",
  );
  await page.goto('/#/surface-demo/a/b%2Fc');
  await page.waitForSelector('[data-testid="surface-demo-args"]:text("a/b/c")');
  await page.click('[data-testid="surface-demo-click"]');
  await page.waitForSelector('[data-testid="surface-demo-click"]:text("clicked 1")');
  await b.screenshot('hand-pages-03-own-page');
  assert.deepEqual(
    b.problems.filter((p) => !/status of 503|status of 404/.test(p)),
    [],
  );
  assert.equal(b.problems.filter((p) => p.startsWith('pageerror')).length, 0);
});
