/**
 * Dialogs and popups inside a scripted flow, as the kernel runs one: runFlow (runtime/browser/flow-runner.ts) on a
 * page of the pool (runtime/browser/pool.ts, real Chromium, maxPages 2) against a small site on 127.0.0.1. An alert
 * and a confirm raised by clicks (the confirm answered false, so the page takes its "cancel" branch), an alert while
 * a page loads, a prompt, a beforeunload when the flow leaves the page, and windows opened by window.open and by a
 * target=_blank link: the flow never hangs, each is recorded on its step and in the result, popups are closed and
 * their pages given back to the pool.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runFlow, type FlowEnv } from '../../../runtime/browser/flow-runner.ts';
import { BrowserPool } from '../../../runtime/browser/pool.ts';
import { parseFlow } from '../../../runtime/core/flow.ts';
import { normalizeNetwork } from '../../../runtime/core/network.ts';
import { startWeb, type FixtureWeb } from '../../fixtures/web/server.ts';

const CHROMIUM = process.env.TALON_CHROMIUM ?? '/usr/bin/chromium';

const html = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

let web: FixtureWeb;
let pool: BrowserPool;

before(async () => {
  web = await startWeb({
    '*': {
      '/dialogs': {
        type: 'text/html',
        body: html(
          'Dialogs',
          "<button id=\"hi\" onclick=\"alert('Saved!'); document.getElementById('a').textContent = 'after alert'\">" +
            'Save</button><p id="a"></p>' +
            "<button id=\"del\" onclick=\"document.getElementById('c').textContent = confirm('Delete all?') ? " +
            "'deleted' : 'kept'\">Delete</button><p id=\"c\"></p>" +
            "<button id=\"ask\" onclick=\"document.getElementById('p').textContent = String(prompt('Your name?', " +
            '\'x\'))">Ask</button><p id="p"></p>',
        ),
      },
      '/alert-on-load': {
        type: 'text/html',
        body: html('Loud', '<script>alert("Welcome")</script><p id="w">loaded</p>'),
      },
      '/sticky': {
        type: 'text/html',
        body: html(
          'Sticky',
          '<input id="f"><a id="leave" href="/dialogs">leave</a>' +
            '<script>window.addEventListener("beforeunload", (e) => { e.preventDefault(); e.returnValue = ""; });' +
            '</script>',
        ),
      },
      '/popups': {
        type: 'text/html',
        body: html(
          'Popups',
          '<button id="open" onclick="window.open(\'/child?by=open\')">Open</button>' +
            '<a id="blank" href="/child?by=link" target="_blank">Blank</a><p id="here">main page</p>',
        ),
      },
      '/child': { type: 'text/html', body: html('Child', '<p>a popup</p>') },
    },
  });
  pool = new BrowserPool({ executablePath: CHROMIUM, maxPages: 2, maxRssMb: 1_000_000 });
});

after(async () => {
  await pool?.close();
  await web?.close();
});

const U = (path: string): string => `http://127.0.0.1:${web.port}${path}`;
const grant = () => normalizeNetwork([`127.0.0.1:${web.port}`], 'test');
const env: FlowEnv = {
  secret: async () => undefined,
  saveScreenshot: async () => 'shot',
  saveDownload: async () => 'file',
};

test('an alert, a confirm (answered false), a prompt, an alert on load: dismissed, recorded per step', async () => {
  const flow = parseFlow({
    name: 'dialogs',
    limits: { timeoutMs: 60_000 },
    steps: [
      { goto: U('/dialogs') },
      { click: '#hi' },
      { wait_for: { text: 'after alert' } },
      { click: '#del' },
      { wait_for: { selector: '#c:not(:empty)' } },
      { click: '#ask' },
      { wait_for: { selector: '#p:not(:empty)' } },
      { extract: { fields: { alert: '#a', confirm: '#c', prompt: '#p' } } },
      { goto: U('/alert-on-load') },
      { extract: { fields: { loaded: '#w' } } },
    ],
  });
  const { r, jobDialogs } = await pool.job(grant(), async (page, _ctx, info) => ({
    r: await runFlow(flow, page, env),
    jobDialogs: info.dialogs,
  }));
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.deepEqual(r.output, { alert: 'after alert', confirm: 'kept', prompt: 'null', loaded: 'loaded' });
  const byPath = Object.fromEntries(r.steps.map((s) => [s.path, s.dialogs]));
  assert.deepEqual(byPath['steps[1]'], [{ type: 'alert', message: 'Saved!', answer: 'dismissed' }]);
  assert.deepEqual(byPath['steps[3]'], [{ type: 'confirm', message: 'Delete all?', answer: 'dismissed' }]);
  assert.deepEqual(byPath['steps[5]'], [{ type: 'prompt', message: 'Your name?', answer: 'dismissed' }]);
  assert.deepEqual(byPath['steps[8]'], [{ type: 'alert', message: 'Welcome', answer: 'dismissed' }]);
  assert.equal(byPath['steps[0]'], undefined, 'a step without a dialog has none');
  assert.deepEqual(
    r.dialogs.map((d) => [d.path, d.type]),
    [
      ['steps[1]', 'alert'],
      ['steps[3]', 'confirm'],
      ['steps[5]', 'prompt'],
      ['steps[8]', 'alert'],
    ],
  );
  assert.equal(jobDialogs.length, 4, 'the pool saw them too');
});

test('a page that asks before it is left: the flow leaves it (beforeunload accepted), recorded', async () => {
  const flow = parseFlow({
    name: 'sticky',
    limits: { timeoutMs: 60_000 },
    steps: [
      { goto: U('/sticky') },
      // a beforeunload dialog needs a user gesture on the page first
      { fill: { selector: '#f', value: 'typed' } },
      { click: '#leave' },
      { wait_for: { url: U('/dialogs') } },
    ],
  });
  const r = await pool.job(grant(), (page) => runFlow(flow, page, env));
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.deepEqual(
    r.dialogs.map((d) => [d.path, d.type, d.answer]),
    [['steps[2]', 'beforeunload', 'accepted']],
  );
});

test('window.open and a target=_blank link: the popups are closed and recorded; the flow stays put', async () => {
  const flow = parseFlow({
    name: 'popups',
    limits: { timeoutMs: 60_000 },
    steps: [
      { goto: U('/popups') },
      { click: '#open' },
      { click: '#blank' },
      { click: '#open' },
      // two navigations: the windows opened above are reported by then (Chromium reports one once it committed)
      { goto: U('/child') },
      { goto: U('/popups') },
      { extract: { fields: { here: '#here' } } },
    ],
  });
  const out = await pool.job(grant(), async (page, ctx, info) => {
    const r = await runFlow(flow, page, env);
    // bounded: the popups are gone
    for (let i = 0; i < 100 && ctx.pages().length > 1; i++) await page.waitForTimeout(50);
    return { r, pages: ctx.pages().length, closedByPool: info.popupsClosed };
  });
  const { r } = out;
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.deepEqual(r.output, { here: 'main page' });
  assert.equal(out.pages, 1, 'only the flow’s page is open');
  assert.equal(r.popups.length, 3, JSON.stringify(r.popups));
  assert.deepEqual(
    r.popups.map((p) => p.url.replace(/^.*\?/, '')),
    ['by=open', 'by=link', 'by=open'],
  );
  // each on the step that opened it or one soon after (see flow-runner.ts)
  const order = r.popups.map((p) => Number(/\d+/.exec(p.path)![0]));
  assert.ok(order[0]! >= 1 && order[1]! >= 2 && order[2]! >= 3 && order.every((n) => n <= 5), `${order}`);
  assert.deepEqual(
    r.steps.flatMap((s) => s.popups ?? []),
    r.popups.map((p) => p.url),
    'the steps hold the same popups',
  );
  assert.equal(r.steps.at(-1)!.url, U('/popups'));

  // the popups' pages went back to the pool: two jobs at once still fit in maxPages 2
  const both = await Promise.all(
    [1, 2].map(() =>
      pool.job(grant(), async (page) => {
        await page.goto(U('/child'));
        return page.title();
      }),
    ),
  );
  assert.deepEqual(both, ['Child', 'Child']);
});
