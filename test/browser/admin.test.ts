/**
 * The web admin in a real browser: Debian's Chromium driven by playwright-core against the
 * real daemon (`node dist/talon.cjs run`), the way the device's owner uses it. One daemon and
 * one browser for the whole walk, since each step builds on the one before (the admin made
 * at first-run setup logs in later, and so on). Screenshots of each page go to
 * test-results/screenshots/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { openBrowser, type BrowserSession } from '../helpers/browser.ts';
import { writeTestModel, TINY_SHAPE } from '../../runtime/llm/gguf.ts';

let d: Daemon;
let b: BrowserSession;
const USER = 'owner';
const PASSWORD = 'correct horse battery staple';

before(async () => {
  ensureBuilt();
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-browser-'));
  mkdirSync(join(dataDir, 'models'));
  await writeTestModel(join(dataDir, 'models', 'tiny.gguf'), TINY_SHAPE);
  d = await startDaemon({
    drivers: [
      { type: 'system', name: 'system' },
      // constant 22 °C against a rule "above 20": an alert that fires at once and stays firing
      { type: 'sim', name: 'green', seed: 1, sensors: [{ id: 'green.temp', name: 'Greenhouse temperature', unit: '°C', pattern: { base: { type: 'constant', value: 22 } } }] },
    ],
    hands: [{
      name: 'monitoring', module: 'monitoring',
      settings: { sensors: [{ id: 'green.temp', intervalMs: 500, severity: 'warning', rules: { above: 20 } }], alerts: { cooldownMs: 0 } },
    }],
    llm: { providers: [{ name: 'local', kind: 'llama.cpp', modelPath: 'models/tiny.gguf', threads: 1, maxTokens: 24 }] },
  }, { dataDir });
  b = await openBrowser(`http://127.0.0.1:${d.httpPort}`);
});

after(async () => {
  await b?.close();
  if (d) assert.equal(await d.stop(), 0, d.output());
});

const api = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
  const r = await fetch(`http://127.0.0.1:${d.httpPort}${path}`, { ...init, headers: { authorization: `Bearer ${d.token()}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });
  assert.ok(r.ok, `${path}: ${r.status} ${await r.clone().text()}`);
  return (await r.json()) as T;
};

/** polls a condition of the page (the page's own state, never a timing) for up to 20 s */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    assert.ok(Date.now() - t0 < timeoutMs, `waited for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const nav = async (to: string): Promise<void> => {
  await b.page.click(`[data-testid="nav-${to}"]`);
};

test('first run: the page asks for the setup code from the data folder and creates the admin', async () => {
  const { page } = b;
  await page.goto('/');
  await page.waitForSelector('[data-testid="setup-form"]');
  await b.screenshot('01-setup');
  const codeFile = join(d.dataDir, 'setup-code');
  assert.ok(existsSync(codeFile), 'the setup code is in the data folder');
  assert.equal(readFileSync(codeFile).length > 0, true);
  const code = readFileSync(codeFile, 'utf8').trim();
  // a wrong code is refused, and nothing is created
  await page.fill('[data-testid="setup-code"]', 'AAAA-AAAA-AAAA-AAAA');
  await page.fill('[data-testid="setup-username"]', USER);
  await page.fill('[data-testid="setup-password"]', PASSWORD);
  await page.fill('[data-testid="setup-password2"]', PASSWORD);
  await page.click('[data-testid="setup-submit"]');
  await page.waitForSelector('[data-testid="setup-error"]');
  assert.equal((await api<{ needed: boolean }>('/api/v1/setup')).needed, true);
  await page.fill('[data-testid="setup-code"]', code);
  await page.click('[data-testid="setup-submit"]');
  await page.waitForSelector('[data-testid="page-dashboard"]');
  assert.equal(existsSync(codeFile), false, 'the setup code is used once');
  assert.equal((await api<{ needed: boolean }>('/api/v1/setup')).needed, false);
});

test('log out, then log in with the account made at setup', async () => {
  const { page } = b;
  await page.click('[data-testid="logout"]');
  await page.waitForSelector('[data-testid="login-form"]');
  await page.fill('[data-testid="login-username"]', USER);
  await page.fill('[data-testid="login-password"]', 'not the password');
  await page.click('[data-testid="login-submit"]');
  await page.waitForSelector('[data-testid="login-error"]');
  await b.screenshot('02-login');
  await page.fill('[data-testid="login-password"]', PASSWORD);
  await page.click('[data-testid="login-submit"]');
  await page.waitForSelector('[data-testid="page-dashboard"]');
  const cookies = await b.context.cookies();
  const session = cookies.find((c) => c.name === 'talon_session');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
});

test('dashboard: the CPU chart updates live from the server-sent stats', async () => {
  const { page } = b;
  const chart = page.locator('[data-testid="chart-cpu"]');
  await chart.waitFor();
  const points = async (): Promise<number> => Number(await chart.getAttribute('data-points'));
  await until(async () => (await points()) >= 2, 'two CPU samples on the chart');
  const first = await points();
  await until(async () => (await points()) > first, 'a newer CPU sample on the chart');
  await b.screenshot('03-dashboard');
});

test('hands: the Monitoring Hand is listed and restarts from the page', async () => {
  const { page } = b;
  await nav('hands');
  const row = page.locator('[data-testid="hand-row-monitoring"]');
  await row.waitFor();
  assert.match(await row.innerText(), /running/);
  const before = (await api<{ restarts: number }>('/api/v1/hands/monitoring')).restarts;
  await page.click('[data-testid="hand-restart-monitoring"]');
  const t0 = Date.now();
  for (;;) {
    const s = await api<{ restarts: number; state: string }>('/api/v1/hands/monitoring');
    if (s.restarts > before && s.state === 'running') break;
    assert.ok(Date.now() - t0 < 20_000, 'the Hand restarted');
    await new Promise((r) => setTimeout(r, 100));
  }
  // the restart is audited with the user who clicked
  const audit = await api<{ items: Array<{ actor: string; action: string; subject: string }> }>('/api/v1/audit?action=api.hands.restart');
  assert.ok(audit.items.some((e) => e.actor === `user:${USER}` && e.subject === 'monitoring'), JSON.stringify(audit.items));
  await b.screenshot('04-hands');
});

test('alerts: a firing alert is shown and acknowledged from the page', async () => {
  const { page } = b;
  await nav('sensors');
  const row = page.locator('[data-testid^="alert-row-"]').first();
  await row.waitFor({ timeout: 30_000 });
  const id = (await row.getAttribute('data-testid'))!.slice('alert-row-'.length);
  await page.click(`[data-testid="alert-ack-${id}"]`);
  const t0 = Date.now();
  for (;;) {
    const { alerts } = await api<{ alerts: Array<{ id: string; acknowledged?: { by: string } | null }> }>('/api/v1/alerts?state=active');
    const a = alerts.find((x) => x.id === id);
    if (a?.acknowledged) {
      assert.equal(a.acknowledged.by, `user:${USER}`);
      break;
    }
    assert.ok(Date.now() - t0 < 15_000, 'the alert was acknowledged');
    await new Promise((r) => setTimeout(r, 100));
  }
  await page.waitForSelector(`[data-testid="alert-row-${id}"][data-acked="true"]`);
  await b.screenshot('05-alerts');
});

test('chat: an answer streams from the local random-weight model and ends complete', async () => {
  const { page } = b;
  await nav('chat');
  await page.click('[data-testid="chat-new"]');
  await page.fill('[data-testid="chat-input"]', 'Say something.');
  await page.click('[data-testid="chat-send"]');
  const answer = page.locator('[data-testid="chat-answer"]').last();
  await answer.waitFor();
  await page.waitForSelector('[data-testid="chat-answer"][data-status="done"]', { timeout: 60_000 });
  const shown = await answer.locator('.msg-text').textContent();
  // the text on screen is exactly the stored message
  const convs = await api<{ conversations: Array<{ id: string }> }>('/api/v1/chat');
  const conv = await api<{ messages: Array<{ role: string; content: string; status: string }> }>(`/api/v1/chat/${convs.conversations[0]!.id}`);
  const stored = conv.messages.filter((m) => m.role === 'assistant').at(-1)!;
  assert.equal(stored.status, 'done');
  assert.ok(stored.content.length > 0);
  assert.equal(shown, stored.content);
  await b.screenshot('06-chat', '[data-testid="chat-answer"]');
});

test('audit: the chain verifies in the browser, and a tampered export is caught where it breaks', async () => {
  const { page } = b;
  await nav('audit');
  // the log itself, newest first: the login made at the start of this walk is in it
  await page.locator('[data-testid^="audit-row-"]').first().waitFor();
  assert.match(await page.locator('[data-testid="audit-table"]').innerText(), /user:owner/);
  await page.click('[data-testid="audit-verify-export"]');
  await page.waitForSelector('[data-testid="verify-result"][data-ok="true"]', { timeout: 30_000 });
  await b.screenshot('07-audit-verified');
  // an export with one entry edited in the middle
  const r = await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/audit/export`, { headers: { authorization: `Bearer ${d.token()}` } });
  const lines = (await r.text()).trimEnd().split('\n');
  const idx = lines.findIndex((l, i) => i > 2 && (JSON.parse(l) as { type?: string }).type !== 'checkpoint');
  const entry = JSON.parse(lines[idx]!) as { seq: number; subject: string };
  entry.subject = 'someone-else';
  lines[idx] = JSON.stringify(entry);
  const file = join(mkdtempSync(join(tmpdir(), 'talon-tamper-')), 'tampered.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  await page.setInputFiles('[data-testid="audit-verify-file"]', file);
  await page.waitForSelector('[data-testid="verify-result"][data-ok="false"]', { timeout: 30_000 });
  assert.equal(Number(await page.getAttribute('[data-testid="verify-result"]', 'data-broken-seq')), entry.seq);
  await b.screenshot('08-audit-tampered');
});

test('config: an invalid change is rejected with the field named, and nothing is applied', async () => {
  const { page } = b;
  const before = await api<{ generation: number }>('/api/v1/config');
  await nav('config');
  const editor = page.locator('[data-testid="config-editor"]');
  await editor.waitFor();
  await until(async () => (await editor.inputValue()).trim().startsWith('{'), 'the current config in the editor');
  const text = await editor.inputValue();
  const cfg = JSON.parse(text) as { http: { port: unknown } };
  cfg.http.port = 'eighty';
  await editor.fill(JSON.stringify(cfg, null, 2));
  await page.waitForSelector('[data-testid="config-errors"]');
  await until(async () => /http.*port/.test(await page.locator('[data-testid="config-errors"]').innerText()), 'an error naming http.port');
  await b.screenshot('09-config-invalid', '[data-testid="config-errors"]');
  const after = await api<{ generation: number }>('/api/v1/config');
  assert.equal(after.generation, before.generation);
});

test('the page made no request outside the device and logged no errors', () => {
  assert.deepEqual(b.problems.filter((p) => !/401|Unauthorized/.test(p)), []);
});
