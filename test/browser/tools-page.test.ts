/**
 * The Tools, Approvals and Runs pages in a real browser (Debian's Chromium through
 * playwright-core), against the built page and a small fake of the API, as the Hands' pages
 * test does: the tools listed with their annotations, an admin's call showing the result and
 * a typed error, a pending approval approved from the page (with the session's CSRF token and a
 * reason) and the nav's badge dropping, and a run's steps. The page's chunk for these pages is
 * not part of the first paint.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { buildPage, type PageManifest } from '../../web-admin/page/build.ts';
import { StaticFiles } from '../../web-admin/static.ts';
import { openBrowser, type BrowserSession } from '../helpers/browser.ts';
import { FakeApprovals, FakeRuns, TOOL_LIST } from '../web-admin/tools-fakes.ts';

let dir: string;
let manifest: PageManifest;
let server: Server;
let b: BrowserSession;
const approvals = new FakeApprovals();
const runs = new FakeRuns();
const seen = { csrf: '', decisions: [] as Array<{ id: string; body: unknown }>, calls: [] as unknown[] };
const requested: string[] = [];
/** what the fake did not know (the dashboard's other areas) */
const unknown: string[] = [];

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
};

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      s += c;
    });
    req.on('end', () => resolve(s ? JSON.parse(s) : undefined));
  });
}

async function fakeApi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = url.pathname;
  if (path.endsWith('/stream')) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': open\n\n');
    return;
  }
  const m = /^\/api\/v1\/approvals\/([\w-]+)$/.exec(path);
  if (m && req.method === 'POST') {
    seen.csrf = String(req.headers['x-csrf-token'] ?? '');
    const body = (await readBody(req)) as { decision: 'approve' | 'deny'; note?: string };
    seen.decisions.push({ id: m[1]!, body });
    try {
      return json(res, 200, { approval: await approvals.decide(m[1]!, body.decision, 'user:owner', body.note) });
    } catch (err) {
      const e = err as { code: string; message: string; status: number };
      return json(res, e.status, { error: { code: e.code, message: e.message } });
    }
  }
  const call = /^\/api\/v1\/tools\/([\w.-]+)\/call$/.exec(path);
  if (call && req.method === 'POST') {
    seen.csrf = String(req.headers['x-csrf-token'] ?? '');
    const body = (await readBody(req)) as { input: { command?: string } };
    seen.calls.push(body);
    if (call[1] === 'shell.exec' && typeof body.input.command !== 'string')
      return json(res, 400, {
        error: { code: 'TOOL_BAD_INPUT', message: 'input of "shell.exec" is not valid: command is required' },
      });
    return json(res, 200, { output: { stdout: `ran ${body.input.command}\n` }, truncated: false, ms: 4 });
  }
  const runList = /^\/api\/v1\/hands\/([\w-]+)\/runs$/.exec(path);
  if (runList) return json(res, 200, { runs: await runs.list({ hand: runList[1]! }) });
  const run = /^\/api\/v1\/runs\/([\w-]+)$/.exec(path);
  if (run) return json(res, 200, { run: await runs.get(run[1]!) });
  switch (`${req.method} ${path}`) {
    case 'GET /api/v1/setup':
      return json(res, 200, { needed: false });
    case 'GET /api/v1/session':
      return json(res, 200, { user: { name: 'owner', role: 'admin' }, csrf: 'csrf-7' });
    case 'GET /api/v1/system':
      return json(res, 200, { deviceId: 'dev-1', version: '0.0.0', publicKey: '' });
    case 'GET /api/v1/hands':
      return json(res, 200, {
        hands: [{ name: 'gardener', module: './gardener.ts', id: 'gardener', state: 'running' }],
      });
    case 'GET /api/v1/tools':
      return json(res, 200, { tools: TOOL_LIST });
    case 'GET /api/v1/approvals': {
      const state = url.searchParams.get('state') ?? undefined;
      const limit = Number(url.searchParams.get('limit') ?? 100);
      const list = await approvals.list({ ...(state ? { state: state as 'pending' } : {}), limit });
      return json(res, 200, { approvals: list, pending: approvals.pending() });
    }
  }
  unknown.push(`${req.method} ${path}`);
  json(res, 404, { error: { code: 'NOT_FOUND', message: `no ${req.method} ${path} in this fake` } });
}

before(async () => {
  approvals.add({ id: 'ap-old', tool: 'http.request', input: { url: 'https://example.org' } });
  await approvals.decide('ap-old', 'deny', 'user:owner', 'not now');
  approvals.add({ id: 'ap-2', tool: 'shell.exec', input: { command: 'rm -rf cache' }, goal: 'free some disk' });
  approvals.add({ id: 'ap-1', input: { path: 'old/notes.txt' } });
  dir = join(mkdtempSync(join(tmpdir(), 'talon-tools-page-')), 'web');
  manifest = await buildPage(dir);
  const files = new StaticFiles(dir);
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requested.push(url.pathname);
    if (url.pathname.startsWith('/api/'))
      return void fakeApi(req, res, url).catch((err: unknown) =>
        json(res, 500, { error: { code: 'INTERNAL', message: (err as Error).message } }),
      );
    try {
      files.serve(req, res, url.pathname);
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
  if (dir) rmSync(join(dir, '..'), { recursive: true, force: true });
});

test('the nav shows the pending count; the tools are listed with their annotations as badges', async () => {
  const { page } = b;
  await page.goto('/#/dashboard');
  const badge = page.locator('[data-testid="nav-approvals-badge"]');
  await badge.waitFor();
  assert.equal(await badge.innerText(), '2');
  const before = requested.length;
  await page.click('[data-testid="nav-tools"]');
  await page.locator('[data-testid="tool-row-shell.exec"]').waitFor();
  for (const t of TOOL_LIST) assert.equal(await page.locator(`[data-testid="tool-row-${t.name}"]`).count(), 1);
  const badges = (name: string) => page.locator(`[data-testid="tool-row-${name}"] .badge`).allInnerTexts();
  assert.deepEqual(await badges('time.now'), ['read-only', 'idempotent']);
  assert.deepEqual(await badges('file.delete'), ['destructive', 'approval']);
  assert.deepEqual(
    await badges('http.request'),
    ['destructive', 'open-world'],
    'not read-only: destructive by default',
  );
  assert.deepEqual(await badges('mcp.lab.probe'), ['server down', 'destructive']);
  // the pages' chunk came with the click, not with the first paint
  const chunk = requested.slice(before).find((p) => p.endsWith('.js'));
  assert.ok(chunk, 'a chunk was fetched when the page opened');
  assert.ok(!manifest.firstPaint.includes(chunk.slice(1)), `${chunk} is not in the first paint`);
  await b.screenshot('tools-01-list');
});

test('an admin calls a tool from the page: the result, then a typed error', async () => {
  const { page } = b;
  await page.click('[data-testid="tool-open-shell.exec"]');
  await page.fill('[data-testid="tool-input-shell.exec"]', '{"command": "df -h | tail -1"}');
  await page.click('[data-testid="tool-run-shell.exec"]');
  const result = page.locator('[data-testid="tool-result-shell.exec"]');
  await result.waitFor();
  assert.match(await result.innerText(), /ran df -h \| tail -1/);
  assert.equal(seen.csrf, 'csrf-7');
  assert.deepEqual(seen.calls.at(-1), { input: { command: 'df -h | tail -1' } });

  await page.fill('[data-testid="tool-input-shell.exec"]', '{}');
  await page.click('[data-testid="tool-run-shell.exec"]');
  const err = page.locator('[data-testid="tool-error-shell.exec"]');
  await err.waitFor();
  assert.equal(await err.getAttribute('data-code'), 'TOOL_BAD_INPUT');
  assert.match(await err.innerText(), /command is required/);
  await page.fill('[data-testid="tool-input-shell.exec"]', '{not json');
  await page.click('[data-testid="tool-run-shell.exec"]');
  await page.waitForSelector('[data-testid="tool-error-shell.exec"][data-code="BAD_JSON"]');
  assert.equal(seen.calls.length, 2, 'bad JSON is caught before any request');
  await b.screenshot('tools-02-call');
});

test('approve a pending call from the page with a reason: it joins the history and the badge drops', async () => {
  const { page } = b;
  await page.click('[data-testid="nav-approvals"]');
  const card = page.locator('[data-testid="approval-ap-2"]');
  await card.waitFor();
  const text = await card.innerText();
  assert.match(text, /shell\.exec/);
  assert.match(text, /asked by hand:gardener/);
  assert.match(text, /Goal: free some disk/);
  assert.match(text, /min left/);
  assert.match(await page.locator('[data-testid="approval-input-ap-2"]').innerText(), /"command": "rm -rf cache"/);
  assert.match(await page.locator('[data-testid="approval-row-ap-old"]').innerText(), /denied\s+user:owner\s+not now/);

  await page.fill('[data-testid="note-ap-2"]', 'the cache is safe to drop');
  await page.click('[data-testid="approve-ap-2"]');
  await page.locator('[data-testid="approval-row-ap-2"]').waitFor();
  assert.equal(await page.locator('[data-testid="approval-ap-2"]').count(), 0, 'no longer pending');
  assert.deepEqual(seen.decisions.at(-1), {
    id: 'ap-2',
    body: { decision: 'approve', note: 'the cache is safe to drop' },
  });
  assert.equal(seen.csrf, 'csrf-7');
  await page.waitForSelector('[data-testid="nav-approvals-badge"]:text("1")');
  await b.screenshot('tools-03-approved');

  await page.click('[data-testid="deny-ap-1"]');
  await page.locator('[data-testid="approval-row-ap-1"]').waitFor();
  await page.locator('[data-testid="nav-approvals-badge"]').waitFor({ state: 'detached' });
  assert.match(await page.locator('[data-testid="approvals-pending"]').innerText(), /Nothing waits/);
});

test("a Hand's runs, and one run's steps with its tool calls and errors", async () => {
  const { page } = b;
  await page.click('[data-testid="nav-runs"]');
  const row = page.locator('[data-testid="run-row-run-1"]');
  await row.waitFor();
  assert.match(await row.innerText(), /tidy the notes folder\s+done\s+2\s+320 \+ 50\s+3\.0 s/);
  assert.match(await page.locator('[data-testid="run-row-run-0"]').innerText(), /AGENT_BUDGET/);
  await row.locator('a').click();
  await page.locator('[data-testid="run-step-0"]').waitFor();
  const call = await page.locator('[data-testid="run-call-c2"]').innerText();
  assert.match(call, /file\.delete/);
  assert.match(call, /APPROVAL_DENIED user:owner denied it: keep it/);
  assert.match(await page.locator('[data-testid="run-call-c1"]').innerText(), /old\/notes\.txt/);
  assert.match(await page.locator('[data-testid="run-step-1"]').innerText(), /The folder is tidy/);
  await b.screenshot('tools-04-run');
  // the only failed requests: the dashboard's areas this fake leaves out, and the refused call
  assert.deepEqual(
    unknown.filter((u) => /tools|approvals|runs/.test(u)),
    [],
  );
  assert.deepEqual(
    b.problems.filter((p) => !/status of (400|404)/.test(p)),
    [],
  );
});
