/**
 * runtime/browser/flow-runner.ts against real Chromium (Debian's, through playwright-core; one browser for the file,
 * a fresh context per test) and a small shop served on 127.0.0.1: a login whose dashboard is rendered by JavaScript,
 * a form, a paginated table extracted into a list checked by the output schema, a failing assert with its screenshot,
 * downloads under and over the cap, and the login's secret kept out of the result.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { chromium, type Browser, type Page } from 'playwright-core';
import { parseFlow } from '../../../runtime/core/flow.ts';
import { runFlow, type FlowEnv } from '../../../runtime/browser/flow-runner.ts';
import { startWeb, type FixtureWeb } from '../../fixtures/web/server.ts';

const CHROMIUM = process.env.TALON_CHROMIUM ?? '/usr/bin/chromium';
const PASSWORD = 's3cret-Pa55-z9';

const page = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

const PRODUCTS = [
  ['Bolt M3', '0.10'],
  ['Nut M3', '0.05'],
  ['Servo S90', '3.20'],
  ['Pi 4 case', '7.90'],
  ['Fan 30mm', '2.40'],
  ['Relay board', '4.75'],
  ['Buck converter', '1.99'],
] as const;
const PER_PAGE = 3;

function productsPage(n: number): string {
  const rows = PRODUCTS.slice((n - 1) * PER_PAGE, n * PER_PAGE)
    .map(
      ([name, price], i) =>
        `<tr class="product"><td class="name">${name}</td><td class="price">${price}</td>` +
        `<td><a class="more" href="/products/${(n - 1) * PER_PAGE + i + 1}">details</a></td></tr>`,
    )
    .join('');
  const last = n * PER_PAGE >= PRODUCTS.length;
  return page(
    `Products ${n}`,
    `<div class="cookie-banner">Cookies? <button class="cookie-accept" onclick="this.parentNode.remove()">OK</button></div>` +
      `<h1>Products, page ${n}</h1><table><tr><th>Name</th><th>Price</th><th></th></tr>${rows}</table>` +
      (last ? '' : `<a class="next" href="/products?page=${n + 1}">Next</a>`),
  );
}

const cookie = (req: { headers: { cookie?: string } }): boolean => /(^|;\s*)session=ok/.test(req.headers.cookie ?? '');

let web: FixtureWeb;
let browser: Browser;

before(async () => {
  web = await startWeb({
    '*': {
      // a list whose second row keeps its price inside a shadow root (querySelector does not see it, playwright does)
      '/shadow': {
        type: 'text/html',
        body: page(
          'Shadow',
          `<ul><li class="row"><b class="name">Bolt</b> <i class="price">0.10</i></li>` +
            `<li class="row"><b class="name">Nut</b> <span id="sh"></span></li>` +
            `<li class="row"><b class="name">Gear</b> <i class="price"> 1.50\n </i> <a class="more" href="/g">x</a></li></ul>` +
            `<script>document.getElementById('sh').attachShadow({ mode: 'open' }).innerHTML =` +
            ` '<i class="price">0.05</i>';</script>`,
        ),
      },
      '/login': {
        type: 'text/html',
        body: page(
          'Sign in',
          `<form method="post" action="/session"><label>User <input id="user" name="user"></label>` +
            `<label>Password <input id="pw" name="pw" type="password"></label><button type="submit">Sign in</button></form>`,
        ),
      },
      '/session': (_req, res, body) => {
        const form = new URLSearchParams(body);
        const ok = form.get('user') === 'ann' && form.get('pw') === PASSWORD;
        res
          .writeHead(
            303,
            ok ? { location: '/dashboard', 'set-cookie': 'session=ok; Path=/' } : { location: '/login?bad=1' },
          )
          .end();
      },
      // the dashboard's content arrives by script, after a moment
      '/dashboard': {
        type: 'text/html',
        body: page(
          'Dashboard',
          `<main id="app">Loading…</main><script>setTimeout(async () => {
            const me = await (await fetch('/api/me')).json();
            document.getElementById('app').innerHTML = '<h1 class="greeting">Welcome, ' + me.user + '</h1>' +
              '<p class="plan">Plan: ' + me.plan + '</p><p class="debug">last password: ' + me.pw + '</p>';
          }, 400);</script>`,
        ),
      },
      '/api/me': (req, res) => {
        if (!cookie(req)) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{}');
        // a careless site that echoes the password back: the runner must mask it
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ user: 'ann', plan: 'Maker', pw: PASSWORD }));
      },
      '/contact': {
        type: 'text/html',
        body: page(
          'Contact',
          `<form method="get" action="/contact/sent"><input id="name" name="name" aria-label="Your name">` +
            `<select id="topic" name="topic"><option value="sales">Sales</option><option value="support">Support</option></select>` +
            `<label><input type="checkbox" id="copy" name="copy" value="yes"> Send me a copy</label>` +
            `<textarea id="msg" name="msg"></textarea><button type="submit">Send</button></form>`,
        ),
      },
      '/contact/sent': (req, res) => {
        const q = new URL(req.url ?? '/', 'http://x').searchParams;
        res
          .writeHead(200, { 'content-type': 'text/html' })
          .end(
            page(
              'Sent',
              `<p id="done">Thanks ${q.get('name')}: topic ${q.get('topic')}, copy ${q.get('copy') ?? 'no'}, ` +
                `message "${q.get('msg')}"</p>`,
            ),
          );
      },
      '/products': (req, res) => {
        const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('page') ?? '1');
        res.writeHead(200, { 'content-type': 'text/html' }).end(productsPage(n));
      },
      '/files': {
        type: 'text/html',
        body: page(
          'Files',
          '<a id="small" href="/files/small.csv" download>small</a> <a id="big" href="/files/big.bin" download>big</a>',
        ),
      },
      '/files/small.csv': {
        type: 'text/csv',
        headers: { 'content-disposition': 'attachment; filename="report.csv"' },
        body: 'a,b\n'.repeat(250),
      },
      '/files/big.bin': {
        type: 'application/octet-stream',
        headers: { 'content-disposition': 'attachment; filename="big.bin"' },
        body: Buffer.alloc(3 * 1024 * 1024, 7),
      },
    },
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
    timeout: 60_000,
  });
});

after(async () => {
  await browser?.close();
  await web?.close();
});

const base = (): string => `http://127.0.0.1:${web.port}`;

interface Saved {
  screenshots: { name: string; png: Buffer }[];
  downloads: { name: string; size: number; bytes: number }[];
  secretsAsked: string[];
}

/** an env that keeps what it is given, and a fresh page in a fresh context */
async function setup(): Promise<{ page: Page; env: FlowEnv; saved: Saved; close: () => Promise<void> }> {
  const context = await browser.newContext({ acceptDownloads: true });
  const p = await context.newPage();
  const saved: Saved = { screenshots: [], downloads: [], secretsAsked: [] };
  const { readFile } = await import('node:fs/promises');
  const env: FlowEnv = {
    secret: async (name) => {
      saved.secretsAsked.push(name);
      return name === 'SHOP_PW' ? PASSWORD : undefined;
    },
    saveScreenshot: async (name, png) => {
      saved.screenshots.push({ name, png });
      return `shot-${saved.screenshots.length}`;
    },
    saveDownload: async (name, path, size) => {
      saved.downloads.push({ name, size, bytes: (await readFile(path)).length });
      return `file-${saved.downloads.length}`;
    },
  };
  return { page: p, env, saved, close: () => context.close() };
}

const isPng = (b: Buffer): boolean =>
  b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

test('a multi-step login with a secret, into a dashboard rendered by JavaScript; the secret never shows', async () => {
  const { page: p, env, saved, close } = await setup();
  try {
    const flow = parseFlow({
      name: 'login',
      inputs: { base: 'string', user: 'string' },
      output: {
        type: 'object',
        required: ['greeting', 'plan'],
        properties: { greeting: { type: 'string', pattern: '^Welcome, ann$' }, plan: { type: 'string' } },
      },
      steps: [
        { goto: '{{input.base}}/login' },
        { fill: { selector: '#user', value: '{{input.user}}' } },
        { fill: { selector: { role: 'textbox', name: 'Password' }, value: { secret: 'SHOP_PW' } } },
        { click: 'role=button[name="Sign in"]' },
        { wait_for: { url: '**/dashboard' } },
        { assert: { selector: 'h1.greeting', text: 'Welcome' } },
        { extract: { fields: { greeting: 'h1.greeting', plan: '.plan', echoed: '.debug' } } },
        { screenshot: { name: 'dashboard' } },
      ],
    });
    const result = await runFlow(flow, p, { ...env, inputs: { base: base(), user: 'ann' } });
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    assert.deepEqual(saved.secretsAsked, ['SHOP_PW']);
    const out = result.output as Record<string, string>;
    assert.equal(out.greeting, 'Welcome, ann');
    assert.equal(out.plan, 'Plan: Maker');
    assert.equal(out.echoed, 'last password: ***', 'the echoed password is masked');
    assert.deepEqual(
      result.steps.map((s) => [s.path, s.kind, s.ok]),
      flow.steps.map((s) => [s.path, s.kind, true]),
    );
    assert.match(result.steps.at(-1)!.url, /\/dashboard$/);
    assert.equal(result.screenshots.length, 1);
    assert.equal(result.screenshots[0]!.ref, 'shot-1');
    assert.ok(isPng(saved.screenshots[0]!.png));
    assert.ok(!JSON.stringify(result).includes(PASSWORD), 'no secret in the result');
  } finally {
    await close();
  }
});

test('a wrong secret name fails the fill step, naming it, and the flow stops there', async () => {
  const { page: p, env, close } = await setup();
  try {
    const flow = parseFlow({
      name: 'login-bad',
      steps: [
        { goto: `${base()}/login` },
        { fill: { selector: '#pw', value: { secret: 'NOPE' } } },
        { click: 'role=button[name="Sign in"]' },
      ],
    });
    const result = await runFlow(flow, p, env);
    assert.equal(result.ok, false);
    assert.equal(result.steps.length, 2);
    assert.equal(result.failure?.path, 'steps[1]');
    assert.match(
      result.failure!.message,
      /^steps\[1\] \(fill\): no secret named "NOPE"; set it with "talon secrets set NOPE"/,
    );
  } finally {
    await close();
  }
});

test('a form: fill, select, check, press; the answer page is asserted', async () => {
  const { page: p, env, close } = await setup();
  try {
    const flow = parseFlow({
      name: 'contact',
      inputs: { name: 'string' },
      steps: [
        { goto: `${base()}/contact` },
        { fill: { selector: 'role=textbox[name="Your name"]', value: '{{input.name}}' } },
        { select: { selector: '#topic', label: 'Support' } },
        { check: 'text=Send me a copy' },
        { fill: { selector: '#msg', value: 'The fan is loud' } },
        { press: { selector: '#name', key: 'Enter' } },
        { wait_for: { url: '/contact\\/sent/' } },
        { assert: { selector: '#done', text: 'Thanks Bo: topic support, copy yes, message "The fan is loud"' } },
        { assert: { url: '**/contact/sent?**' } },
      ],
    });
    const result = await runFlow(flow, p, { ...env, inputs: { name: 'Bo' } });
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    assert.equal(result.steps.length, 9);
  } finally {
    await close();
  }
});

const paginated = (output: Record<string, unknown>) => ({
  name: 'products',
  output,
  steps: [
    { goto: `${base()}/products?page=1` },
    { if: { exists: '.cookie-banner', then: [{ click: '.cookie-accept' }] } },
    { extract: { list: 'tr.product', fields: { name: '.name', price: '.price', link: 'a.more@href' } }, as: 'items' },
    {
      repeat: {
        while: { exists: 'a.next' },
        max: 10,
        steps: [
          { click: 'a.next' },
          { wait_for: { networkIdle: true } },
          {
            extract: { list: 'tr.product', fields: { name: '.name', price: '.price', link: 'a.more@href' } },
            as: 'items',
          },
        ],
      },
    },
  ],
});

const ITEMS_SCHEMA = {
  type: 'object',
  required: ['items'],
  properties: {
    items: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'price', 'link'],
        properties: { name: { type: 'string' }, price: { type: 'number' }, link: { type: 'string' } },
      },
    },
  },
};

test('if/repeat over a paginated table: one list, checked (and typed) by the output schema', async () => {
  const { page: p, env, close } = await setup();
  try {
    const result = await runFlow(parseFlow(paginated(ITEMS_SCHEMA)), p, env);
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    const items = (result.output as { items: { name: string; price: number; link: string }[] }).items;
    assert.deepEqual(
      items.map((i) => [i.name, i.price]),
      PRODUCTS.map(([n, pr]) => [n, Number(pr)]),
    );
    assert.equal(items[6]!.link, '/products/7');
    const paths = result.steps.map((s) => s.path);
    assert.deepEqual(paths.slice(0, 4), ['steps[0]', 'steps[1]', 'steps[1].then[0]', 'steps[2]']);
    // two more pages: the repeat's record, then its three steps twice
    assert.equal(paths.filter((x) => x === 'steps[3].steps[0]').length, 2);
    assert.deepEqual(
      result.steps.map((s) => s.index),
      result.steps.map((_, i) => i),
    );
    assert.match(result.steps.at(-1)!.url, /page=3$/);
  } finally {
    await close();
  }
});

test('a list read in one call inside the page answers what row-by-row reading answers (shadow roots, text=)', async () => {
  const { page: p, env, close } = await setup();
  try {
    const flow = (fields: Record<string, unknown>) =>
      parseFlow({
        name: 'rows',
        steps: [{ goto: `${base()}/shadow` }, { extract: { list: 'li.row', fields }, as: 'rows' }],
      });
    const css = await runFlow(flow({ name: 'b.name', price: 'i.price', link: 'a.more@href' }), p, env);
    assert.equal(css.ok, true, JSON.stringify(css.failure));
    assert.deepEqual((css.output as { rows: unknown[] }).rows, [
      { name: 'Bolt', price: '0.10', link: null },
      { name: 'Nut', price: '0.05', link: null },
      { name: 'Gear', price: '1.50', link: '/g' },
    ]);
    // a text= field: every row read the usual way, the same answers
    const text = await runFlow(flow({ name: 'b.name', bolt: 'text=Bolt' }), p, env);
    assert.deepEqual((text.output as { rows: unknown[] }).rows, [
      { name: 'Bolt', bolt: 'Bolt' },
      { name: 'Nut', bolt: null },
      { name: 'Gear', bolt: null },
    ]);
  } finally {
    await close();
  }
});

test('extracted data that does not match the output schema fails the run, naming the field', async () => {
  const { page: p, env, saved, close } = await setup();
  try {
    const schema = structuredClone(ITEMS_SCHEMA);
    (schema.properties.items as { minItems: number }).minItems = 20;
    const result = await runFlow(parseFlow(paginated(schema)), p, env);
    assert.equal(result.ok, false);
    assert.equal(result.failure?.kind, 'output');
    assert.match(
      result.failure!.message,
      /does not match the flow's output schema: \/items must NOT have fewer than 20 items/,
    );
    assert.ok(result.steps.every((s) => s.ok));
    assert.equal(saved.screenshots.length, 1);
  } finally {
    await close();
  }
});

test('a failing assert inside an if: the failure names the step path, the URL, and has a screenshot', async () => {
  const { page: p, env, saved, close } = await setup();
  try {
    const flow = parseFlow({
      name: 'checkout',
      steps: [
        { goto: `${base()}/products?page=2` },
        { click: '#not-there', optional: true, timeoutMs: 300 },
        { if: { exists: 'table', then: [{ assert: { selector: 'role=button[name="Checkout"]' }, timeoutMs: 300 }] } },
        { click: 'a.next' },
      ],
    });
    const result = await runFlow(flow, p, env);
    assert.equal(result.ok, false);
    const url = `${base()}/products?page=2`;
    // the optional click failed, was recorded, and the flow went on
    assert.equal(result.steps[1]!.ok, false);
    assert.equal(result.steps[1]!.error, `steps[1] (click): no element matches #not-there within 300 ms on ${url}`);
    assert.equal(result.failure?.path, 'steps[2].then[0]');
    assert.equal(result.failure?.kind, 'assert');
    assert.equal(result.failure?.url, url);
    assert.equal(
      result.failure?.message,
      `steps[2].then[0] (assert): no element matches role=button[name="Checkout"] within 300 ms on ${url}`,
    );
    assert.equal(result.failure?.screenshot, 'shot-1');
    assert.equal(saved.screenshots[0]!.name, 'failure-steps-2-then-0');
    assert.ok(isPng(saved.screenshots[0]!.png));
    assert.ok(!result.steps.some((s) => s.path === 'steps[3]'), 'nothing ran after the failure');
  } finally {
    await close();
  }
});

test('the run time limit stops the flow before the next step', async () => {
  const { page: p, env, close } = await setup();
  try {
    const flow = parseFlow({
      name: 'slow',
      limits: { timeoutMs: 1500 },
      steps: [
        { goto: `${base()}/products` },
        { wait_for: { selector: '#never' }, optional: true },
        { click: 'a.next' },
      ],
    });
    const result = await runFlow(flow, p, env);
    assert.equal(result.ok, false);
    assert.equal(result.failure?.kind, 'limits');
    assert.match(result.failure!.message, /ran out of its 1500 ms \(limits\.timeoutMs\) before steps\[2\]/);
    assert.equal(result.steps.length, 2);
  } finally {
    await close();
  }
});

const downloadDirs = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('talon-download-'));

test('a download under the cap is saved; one over it is a clear error and leaves no partial file', async () => {
  const { page: p, env, saved, close } = await setup();
  const dirsBefore = downloadDirs();
  try {
    const ok = await runFlow(
      parseFlow({
        name: 'files',
        steps: [{ goto: `${base()}/files` }, { download: { selector: '#small', maxBytes: 10_000 } }],
      }),
      p,
      env,
    );
    assert.equal(ok.ok, true, JSON.stringify(ok.failure));
    assert.deepEqual(ok.downloads, [{ name: 'report.csv', ref: 'file-1', size: 1000, path: 'steps[1]' }]);
    assert.deepEqual(saved.downloads, [{ name: 'report.csv', size: 1000, bytes: 1000 }]);

    const big = await runFlow(
      parseFlow({
        name: 'files',
        steps: [{ goto: `${base()}/files` }, { download: { selector: '#big', maxBytes: 100_000 } }],
      }),
      p,
      env,
    );
    assert.equal(big.ok, false);
    assert.equal(big.failure?.path, 'steps[1]');
    assert.match(
      big.failure!.message,
      /^steps\[1\] \(download\): the download "big\.bin" passed its cap of 100000 bytes \(maxBytes\); the partial file was deleted on http:/,
    );
    assert.equal(saved.downloads.length, 1, 'nothing saved for the big one');
    assert.deepEqual(big.downloads, []);
    assert.deepEqual(downloadDirs(), dirsBefore, 'no temporary download left behind');
  } finally {
    await close();
  }
});

test('model extraction goes to the callback with the page text; without one the step says so', async () => {
  const { page: p, env, close } = await setup();
  try {
    const flow = parseFlow({
      name: 'model',
      steps: [
        { goto: `${base()}/products?page=1` },
        {
          extract: {
            schema: { type: 'object', required: ['cheapest'], properties: { cheapest: { type: 'string' } } },
            prompt: 'the cheapest item',
          },
        },
      ],
    });
    let seen = '';
    const result = await runFlow(flow, p, {
      ...env,
      extractWithModel: async (_schema, prompt, text) => {
        seen = `${prompt}|${text}`;
        return { cheapest: 'Nut M3' };
      },
    });
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    assert.deepEqual(result.output, { cheapest: 'Nut M3' });
    assert.match(seen, /^the cheapest item\|[\s\S]*Servo S90/);
    const without = await runFlow(flow, p, env);
    assert.equal(without.ok, false);
    assert.match(without.failure!.message, /^steps\[1\] \(extract\): model extraction is not available here/);
  } finally {
    await close();
  }
});

test('clear errors: a selector matching several elements, a page answering 404, a cancelled run', async () => {
  const { page: p, env, close } = await setup();
  try {
    const url = `${base()}/products?page=1`;
    const many = await runFlow(parseFlow({ name: 'many', steps: [{ goto: url }, { click: 'a.more' }] }), p, env);
    assert.equal(many.ok, false);
    assert.match(
      many.failure!.message,
      new RegExp(
        `^steps\\[1\\] \\(click\\): 3 elements match a\\.more on ${url.replace(/[?.]/g, '\\$&')}; make the selector match one`,
      ),
    );

    const missing = await runFlow(parseFlow({ name: 'missing', steps: [{ goto: `${base()}/nope` }] }), p, env);
    assert.equal(missing.ok, false);
    assert.match(
      missing.failure!.message,
      /^steps\[0\] \(goto\): http:\/\/127\.0\.0\.1:\d+\/nope answered HTTP 404 on /,
    );

    const ctl = new AbortController();
    const flow = parseFlow({
      name: 'cancel',
      steps: [{ goto: url }, { wait_for: { selector: '#never' }, timeoutMs: 60_000 }, { click: 'a.next' }],
    });
    const running = runFlow(flow, p, { ...env, signal: ctl.signal });
    setTimeout(() => ctl.abort(), 300);
    const cancelled = await running;
    assert.equal(cancelled.ok, false);
    assert.equal(cancelled.failure?.path, 'steps[1]');
    assert.match(cancelled.failure!.message, /^steps\[1\] \(wait_for\): the run was cancelled during steps\[1\]/);
    assert.equal(cancelled.steps.length, 2);
  } finally {
    await close();
  }
});
