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
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { openBrowser, SCREENSHOTS, type BrowserSession } from '../helpers/browser.ts';
import { writeTestModel, TINY_SHAPE } from '../fixtures/llm/gguf-writer.ts';

let d: Daemon;
let b: BrowserSession;
const USER = 'owner';
const PASSWORD = 'correct horse battery staple';

before(async () => {
  ensureBuilt();
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-browser-'));
  mkdirSync(join(dataDir, 'models'));
  await writeTestModel(join(dataDir, 'models', 'tiny.gguf'), TINY_SHAPE);
  // a Hand that throws in start: after two quick retries the supervisor parks it as failed
  const broken = join(dataDir, 'broken-hand.mjs');
  writeFileSync(
    broken,
    `export default { manifest: { id: 'broken', version: '1.0.0', description: 'throws in start', capabilities: {}, quotas: { heapMb: 16 }, settingsSchema: { type: 'object', properties: { threshold: { type: 'number', default: 42 }, label: { type: 'string', default: 'greenhouse' }, mode: { type: 'string', enum: ['fast', 'slow'], default: 'slow' }, verbose: { type: 'boolean', default: true } } } }, start() { throw new Error('boom in start'); } };\n`,
  );
  d = await startDaemon(
    {
      drivers: [
        { type: 'system', name: 'system' },
        // constant 22 °C against a rule "above 20": an alert that fires at once and stays firing
        {
          type: 'sim',
          name: 'green',
          seed: 1,
          sensors: [
            {
              id: 'green.temp',
              name: 'Greenhouse temperature',
              unit: '°C',
              pattern: { base: { type: 'constant', value: 22 } },
            },
          ],
        },
      ],
      hands: [
        {
          name: 'monitoring',
          module: 'monitoring',
          settings: {
            sensors: [{ id: 'green.temp', intervalMs: 500, severity: 'warning', rules: { above: 20 } }],
            alerts: { cooldownMs: 0 },
          },
        },
        { name: 'broken', module: broken },
        {
          name: 'scheduler',
          module: 'scheduling',
          capabilities: { bus: { publish: ['hands/scheduler/#'], subscribe: ['hands/scheduler/#'] } },
          settings: {
            jobs: [
              {
                id: 'nightly',
                description: 'the nightly report',
                trigger: { cron: '0 0 3 * * *' },
                action: { publish: { topic: 'hands/scheduler/nightly', payload: { at: '{{scheduledAt}}' } } },
              },
            ],
          },
        },
        {
          name: 'comms',
          module: 'communication',
          settings: {
            channels: { ops: 'mqtt://local/ops/out' },
            default: ['ops'],
            escalation: { scheduler: null },
          },
          capabilities: { bus: { publish: ['ops/#', 'hands/+/tasks', 'hands/+/replies'], subscribe: ['#'] } },
        },
      ],
      supervisor: { backoff: { initialMs: 50, maxMs: 200 }, crashLoop: { restarts: 2, windowMs: 60_000 } },
      llm: {
        providers: [{ name: 'local', kind: 'llama.cpp', modelPath: 'models/tiny.gguf', threads: 1, maxTokens: 24 }],
      },
    },
    { dataDir },
  );
  b = await openBrowser(`http://127.0.0.1:${d.httpPort}`);
});

after(async () => {
  await b?.close();
  if (d) assert.equal(await d.stop(), 0, d.output());
});

const api = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
  const r = await fetch(`http://127.0.0.1:${d.httpPort}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${d.token()}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
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

/** every chart's y-axis labels (as drawn) are distinct, and its legend shows values, not "--" */
async function checkCharts(ids: string[]): Promise<void> {
  const { page } = b;
  for (const id of ids) {
    const chart = page.locator(`[data-testid="${id}"]`);
    await until(async () => Number(await chart.getAttribute('data-points')) > 0, `${id} has points`);
    await until(async () => ((await chart.getAttribute('data-yticks')) ?? '') !== '', `${id} has y labels`);
    const ticks = (await chart.getAttribute('data-yticks'))!.split('|').filter(Boolean);
    assert.equal(new Set(ticks).size, ticks.length, `${id}: repeated y-axis labels ${ticks.join(', ')}`);
    const legend = await chart.locator('.u-legend').innerText();
    assert.doesNotMatch(legend, /--/, `${id}: legend ${legend}`);
  }
}

test("dashboard: after a reload the charts open with the device's history, axes and legends read right", async () => {
  const { page } = b;
  // the device has been sampling since it started: a fresh page shows that at once, not one point
  await new Promise((r) => setTimeout(r, 2500));
  const kept = (await api<{ samples: unknown[] }>('/api/v1/system/stats/history')).samples.length;
  assert.ok(kept >= 2, `the device keeps samples (${kept})`);
  await page.reload();
  const chart = page.locator('[data-testid="chart-cpu"]');
  await chart.waitFor();
  await until(
    async () => Number(await chart.getAttribute('data-points')) >= kept,
    'the kept samples on the chart after a reload',
    3000,
  );
  await checkCharts(['chart-cpu', 'chart-memory', 'chart-disk', 'chart-network', 'chart-hand-cpu', 'chart-hand-heap']);
  await b.screenshot('03b-dashboard-reloaded');
});

test("dashboard: the disk and network figures are the API's, and the disk percent is df's", async () => {
  const { page } = b;
  const now = page.locator('[data-testid="now"]');
  await until(async () => ((await now.getAttribute('data-ts')) ?? '') !== '', 'a sample in the Now card');
  const ts = Number(await now.getAttribute('data-ts'));
  const disk = page.locator('[data-testid="now-disk"]');
  const net = page.locator('[data-testid="now-net"]');
  const shown = {
    percent: Number(await disk.getAttribute('data-percent')),
    rx: Number(await net.getAttribute('data-rx')),
    tx: Number(await net.getAttribute('data-tx')),
    text: await disk.innerText(),
  };
  const { samples } = await api<{
    samples: Array<{
      ts: number;
      disk: { percent: number; path: string };
      network: { rxBytesPerSec: number; txBytesPerSec: number };
    }>;
  }>('/api/v1/system/stats/history');
  const same = samples.find((x) => x.ts === ts) ?? (await api<(typeof samples)[number]>('/api/v1/system/stats'));
  assert.ok(
    Math.abs(shown.percent - same.disk.percent) <= 0.2,
    `page ${shown.percent} % vs API ${same.disk.percent} %`,
  );
  assert.ok(shown.text.startsWith(`${shown.percent.toFixed(1)} %`), shown.text);
  if (same.ts === ts) assert.deepEqual([shown.rx, shown.tx], [same.network.rxBytesPerSec, same.network.txBytesPerSec]);
  // df of the same folder, which is what the owner compares with
  const line = execFileSync('df', ['-P', same.disk.path], { encoding: 'utf8' }).trim().split('\n').at(-1)!.split(/\s+/);
  const df = Number(line[4]!.replace('%', ''));
  assert.ok(Math.abs(shown.percent - df) <= 1, `page ${shown.percent} % vs df ${df} %`);
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
  const audit = await api<{ items: Array<{ actor: string; action: string; subject: string }> }>(
    '/api/v1/audit?action=api.hands.restart',
  );
  assert.ok(
    audit.items.some((e) => e.actor === `user:${USER}` && e.subject === 'monitoring'),
    JSON.stringify(audit.items),
  );
  await b.screenshot('04-hands');
});

test("hands: the heap column shows the Hand's own quota, not V8's whole limit", async () => {
  const { page } = b;
  const st = await api<{ heapQuotaMb?: number; heapLimitMb: number }>('/api/v1/hands/monitoring');
  assert.equal(st.heapQuotaMb, 32, "the Monitoring Hand's manifest asks 32 MB");
  await until(
    async () =>
      new RegExp(`/ ${st.heapQuotaMb} MB`).test(await page.locator('[data-testid="hand-heap-monitoring"]').innerText()),
    'the quota in the heap column',
  );
});

test('hands: a failed Hand shows its error, and restarts from the page', async () => {
  const { page } = b;
  const row = page.locator('[data-testid="hand-row-broken"]');
  await page.waitForSelector('[data-testid="hand-row-broken"][data-state="failed"]', { timeout: 30_000 });
  // the other rows are still there (the page did not throw on the error object)
  await page.locator('[data-testid="hand-row-monitoring"]').waitFor();
  const st = await api<{ lastError: { code: string; message: string }; restarts: number }>('/api/v1/hands/broken');
  const err = await page.locator('[data-testid="hand-error-broken"]').innerText();
  assert.ok(err.includes(st.lastError.code) && /boom in start/.test(err), err);
  const restart = page.locator('[data-testid="hand-restart-broken"]');
  assert.equal(await restart.isVisible(), true);
  assert.equal(await restart.isEnabled(), true);
  await b.screenshot('04b-hands-failed');
  await restart.click();
  await until(async () => {
    const audit = await api<{ items: Array<{ actor: string; subject: string }> }>(
      '/api/v1/audit?action=api.hands.restart',
    );
    return audit.items.some((e) => e.actor === `user:${USER}` && e.subject === 'broken');
  }, 'the restart of the failed Hand audited with the user who clicked');
  // it was tried again: it left failed (and, throwing again, comes back to it with more restarts)
  await until(async () => {
    const s = await api<{ state: string; restarts: number }>('/api/v1/hands/broken');
    return s.state !== 'failed' || s.restarts > st.restarts;
  }, 'the failed Hand tried again');
  assert.equal(await page.locator('[data-testid="hands-error"]').count(), 0, 'no error shown for the restart');
});

test("hands: the settings form shows the schema's defaults where nothing is set", async () => {
  const { page } = b;
  await page.click('[data-testid="hand-open-broken"]');
  await page.locator('[data-testid="setting-threshold"]').waitFor();
  assert.equal(await page.getAttribute('[data-testid="setting-threshold"]', 'placeholder'), '42');
  assert.equal(await page.getAttribute('[data-testid="setting-label"]', 'placeholder'), 'greenhouse');
  assert.match(await page.locator('[data-testid="setting-mode"] option').first().innerText(), /default: slow/);
  assert.equal(await page.isChecked('[data-testid="setting-verbose"]'), true);
  await b.screenshot('04e-hand-settings-defaults', '[data-testid="hand-settings"]');
  await nav('hands');
  await page.goto('/#/hands');
});

test('hands and nav on a phone: they scroll sideways, with a visible hint', async () => {
  const { page } = b;
  await page.setViewportSize({ width: 375, height: 760 });
  try {
    const box = page.locator('[data-testid="hands-scroll"]');
    await until(
      async () => (await box.getAttribute('data-more-right')) === 'true',
      'the Hands table marked as wider than the screen',
    );
    assert.equal(await page.locator('[data-testid="hands-scroll-hint"]').isVisible(), true);
    await until(
      async () => (await page.locator('[data-testid="nav-box"]').getAttribute('data-more-right')) === 'true',
      'the nav marked as wider than the screen',
    );
    assert.equal(await page.locator('[data-testid="nav-box-hint"]').isVisible(), true);
    await page.screenshot({ path: join(SCREENSHOTS, '04c-hands-phone.png') });
    // scrolled to the end, the right hint goes and a left one shows there is more back
    await box.locator('.scroll').evaluate((el) => {
      el.scrollLeft = el.scrollWidth;
    });
    await until(
      async () =>
        (await box.getAttribute('data-more-right')) === 'false' &&
        (await box.getAttribute('data-more-left')) === 'true',
      'the hint follows the scroll',
    );
    await page.screenshot({ path: join(SCREENSHOTS, '04d-hands-phone-scrolled.png') });
  } finally {
    await page.setViewportSize({ width: 1280, height: 860 });
  }
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
    const { alerts } = await api<{ alerts: Array<{ id: string; acknowledged?: { by: string } | null }> }>(
      '/api/v1/alerts?state=active',
    );
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

test('sensors: the history chart shows the points the API has', async () => {
  const { page } = b;
  const hist = await api<{ points: unknown[] }>(
    `/api/v1/sensors/green.temp/history?from=${Date.now() - 3_600_000}&to=${Date.now()}`,
  );
  assert.ok(hist.points.length > 0, 'the Monitoring Hand has history of green.temp');
  await page.goto('/#/sensors/green.temp');
  const chart = page.locator('[data-testid="chart-sensor-history"]');
  await chart.waitFor();
  await until(async () => Number(await chart.getAttribute('data-points')) > 0, 'points on the history chart');
  const legend = await chart.locator('.u-legend').innerText();
  assert.match(legend, /22/, `the constant 22 °C in the legend: ${legend}`);
  await checkCharts(['chart-sensor-history']);
  await b.screenshot('05b-sensor-history');
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
  const conv = await api<{ messages: Array<{ role: string; content: string; status: string }> }>(
    `/api/v1/chat/${convs.conversations[0]!.id}`,
  );
  const stored = conv.messages.filter((m) => m.role === 'assistant').at(-1)!;
  assert.equal(stored.status, 'done');
  assert.ok(stored.content.length > 0);
  assert.equal(shown, stored.content);
  await b.screenshot('06-chat', '[data-testid="chat-answer"]');
});

test('audit: the chain verifies in the browser, and a tampered export is caught where it breaks', async () => {
  const { page } = b;
  await nav('audit');
  assert.match(
    (await page.getAttribute('[data-testid="audit-actor"]', 'placeholder'))!,
    /^user:/,
    'the actor placeholder looks like the actors in the log',
  );
  // the log itself, newest first: the login made at the start of this walk is in it
  await page.locator('[data-testid^="audit-row-"]').first().waitFor();
  assert.match(await page.locator('[data-testid="audit-table"]').innerText(), /user:owner/);
  await page.click('[data-testid="audit-verify-export"]');
  await page.waitForSelector('[data-testid="verify-result"][data-ok="true"]', { timeout: 30_000 });
  await b.screenshot('07-audit-verified');
  // an export with one entry edited in the middle
  const r = await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/audit/export`, {
    headers: { authorization: `Bearer ${d.token()}` },
  });
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
  await until(
    async () => /http.*port/.test(await page.locator('[data-testid="config-errors"]').innerText()),
    'an error naming http.port',
  );
  await b.screenshot('09-config-invalid', '[data-testid="config-errors"]');
  const after = await api<{ generation: number }>('/api/v1/config');
  assert.equal(after.generation, before.generation);
});

test('schedules: a job with its next run, paused and resumed from the page, run now and its run in the history', async () => {
  const { page } = b;
  await nav('schedules');
  const row = page.locator('[data-testid="schedule-row-nightly"]');
  await row.waitFor();
  assert.match(await row.innerText(), /nightly[\s\S]*in \d/);
  await page.click('[data-testid="schedule-pause-nightly"]');
  await page.waitForSelector('[data-testid="schedule-resume-nightly"]');
  const paused = await api<{ job: { state: { paused: boolean } } }>('/api/v1/schedules/nightly');
  assert.equal(paused.job.state.paused, true);
  await page.click('[data-testid="schedule-resume-nightly"]');
  await page.waitForSelector('[data-testid="schedule-pause-nightly"]');
  assert.equal(
    (await api<{ job: { state: { paused: boolean } } }>('/api/v1/schedules/nightly')).job.state.paused,
    false,
  );
  await page.click('[data-testid="schedule-run-nightly"]');
  await until(async () => {
    const h = await api<{ runs: Array<{ cause: string; status: string }> }>('/api/v1/schedules/nightly/history');
    return h.runs.some((r) => r.cause === 'manual' && r.status === 'success');
  }, 'the manual run to end');
  await page.click('[data-testid="schedule-row-nightly"] a');
  const run = page.locator('[data-testid^="schedule-run-row-nightly@"][data-status="success"]').first();
  await run.waitFor();
  assert.match(await run.innerText(), /manual/);
  await b.screenshot('10-schedules');
});

test('messages: the channel with its health, a notification sent from the form, acknowledged from the page', async () => {
  const { page } = b;
  await nav('messages');
  await page.locator('[data-testid="channel-row-ops"]').waitFor();
  assert.match(await page.locator('[data-testid="channel-health-ops"]').innerText(), /ok|starting/);
  await page.fill('[data-testid="send-text"]', 'The greenhouse door is open');
  await page.selectOption('[data-testid="send-priority"]', 'high');
  await page.click('[data-testid="send-submit"]');
  await until(async () => {
    const h = await api<{ messages: Array<{ text: string; outcome: string }> }>('/api/v1/messages?box=history');
    return h.messages.some((m) => m.text.includes('greenhouse door') && m.outcome === 'sent');
  }, 'the message to be sent');
  const sent = await api<{ ackId?: string }>('/api/v1/messages', {
    method: 'POST',
    body: JSON.stringify({ text: 'Pump 2 stopped', needsAck: true }),
  });
  assert.ok(sent.ackId);
  await nav('schedules');
  await nav('messages');
  await page.locator(`[data-testid="escalation-ack-${sent.ackId}"]`).waitFor();
  await page.click(`[data-testid="escalation-ack-${sent.ackId}"]`);
  await until(async () => {
    const r = await api<{ escalations: Array<{ ackId: string; acked?: unknown }> }>(
      '/api/v1/messages/escalations?all=true',
    );
    return r.escalations.some((e) => e.ackId === sent.ackId && e.acked);
  }, 'the acknowledgement');
  await b.screenshot('11-messages');
});

test('the page made no request outside the device and logged no errors', () => {
  assert.deepEqual(
    b.problems.filter((p) => !/401|Unauthorized/.test(p)),
    [],
  );
});

test('the status bar shows the new device name once a config change is applied, without a reload', async () => {
  const { page } = b;
  await nav('config');
  const editor = page.locator('[data-testid="config-editor"]');
  // the editor still holds the invalid edit of the test before: start from the device's config
  await page.click('[data-testid="config-reload"]');
  await until(
    async () => !/eighty/.test(await editor.inputValue()) && (await editor.inputValue()).trim().startsWith('{'),
    'the current config in the editor',
  );
  const cfg = JSON.parse(await editor.inputValue()) as { deviceName?: string };
  cfg.deviceName = 'greenhouse-renamed';
  await editor.fill(JSON.stringify(cfg, null, 2));
  await page.waitForSelector('[data-testid="config-validation"][data-state="valid"]');
  await page.click('[data-testid="config-apply"]:not([disabled])');
  // the kernel restarts in process (same ports): the API is away for a moment
  await until(
    async () =>
      (await api<{ deviceName: string }>('/api/v1/system').catch(() => null))?.deviceName === 'greenhouse-renamed',
    'the new name applied',
    30_000,
  );
  await until(
    async () => /greenhouse-renamed/.test(await page.locator('[data-testid="status-device"]').innerText()),
    'the new name in the status bar',
    10_000,
  );
  await b.screenshot('10-renamed', '[data-testid="status-bar"]');
});

test('sensors: with the Monitoring Hand stopped its section says so, and comes back once it starts', async () => {
  const { page } = b;
  await api('/api/v1/hands/monitoring/stop', { method: 'POST' });
  await page.goto('/#/sensors');
  const notice = page.locator('[data-testid="hand-not-running-monitoring"]');
  await notice.waitFor();
  // the server's own words (the 503 HAND_NOT_RUNNING of its routes), and where to start it
  const r = await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/alerts`, {
    headers: { authorization: `Bearer ${d.token()}` },
  });
  const err = ((await r.json()) as { error: { code: string; message: string } }).error;
  assert.deepEqual([r.status, err.code], [503, 'HAND_NOT_RUNNING']);
  const text = await notice.innerText();
  assert.ok(text.includes(err.message), `${text} has "${err.message}"`);
  assert.match(text, /start it on the Hands page/, text);
  assert.equal(await notice.locator('a[href="#/hands"]').count(), 1);
  assert.equal(await page.locator('[data-testid="alerts"]').count(), 0, 'no empty alerts list in its place');
  // the kernel's part of the page does not depend on the Hand
  await page.locator('[data-testid="sensor-row-green.temp"]').waitFor();
  await b.screenshot('11-monitoring-stopped');
  await api('/api/v1/hands/monitoring/start', { method: 'POST' });
  await page.locator('[data-testid^="alert-row-"]').first().waitFor({ timeout: 30_000 });
  assert.equal(await notice.count(), 0);
});
