/**
 * The browser tools (runtime/tools/builtin/browser.ts) through the real registry, over real parts: Debian's Chromium
 * (one KernelBrowser, so one browser, for the file), a small shop served on 127.0.0.1 (test/fixtures/web/server.ts),
 * the approval queue over a LevelDB store and the audit chain (a listener answers as a person would), and a Hand
 * caller whose network grant names the shop's port. Reading a JavaScript-rendered page, a login flow with a sealed
 * secret, a bad flow, an ungranted host, and a session in which a harmless click goes through and "Buy now" waits
 * for a person: denied (the shop sees nothing), then approved (the shop sees the order); the same through the agent
 * loop, a scripted model (OpenAI's wire format, test/helpers/llm-fakes.ts) choosing the clicks.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditChain } from '../../../runtime/audit/chain.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import { normalizeNetwork } from '../../../runtime/core/network.ts';
import { DeviceKey } from '../../../runtime/secrets/device-key.ts';
import { Store } from '../../../runtime/store/store.ts';
import { Approvals } from '../../../runtime/tools/approvals.ts';
import { fingerprint, type Visual } from '../../../runtime/browser/visual.ts';
import { browserTools, KernelBrowser } from '../../../runtime/tools/builtin/browser.ts';
import { ToolRegistry } from '../../../runtime/tools/registry.ts';
import type { Approval, ToolCaller } from '../../../runtime/tools/types.ts';
import { type FixtureWeb, startWeb } from '../../fixtures/web/server.ts';

const CHROMIUM = process.env.TALON_CHROMIUM ?? '/usr/bin/chromium';
const PASSWORD = 'pw-Zq81-secret';

const html = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

let dir: string;
let store: Store;
let chain: AuditChain;
let approvals: Approvals;
let reg: ToolRegistry;
let kb: KernelBrowser;
let web: FixtureWeb;
let answer: 'approve' | 'deny' = 'approve';
let swatch: 'calm' | 'alarm' = 'calm';
const asked: Approval[] = [];
let shopper: ToolCaller;
let other: ToolCaller;

function caller(name: string, hosts: string[], secrets: string[] = []): ToolCaller {
  const grants: Capabilities = {
    ...NO_CAPABILITIES,
    network: normalizeNetwork(hosts, 'test'),
    tools: { allow: ['browser.*'], approve: [] },
    secrets,
  };
  const folder = join(dir, 'hands', name, 'files');
  return { actor: `hand:${name}`, hand: name, admin: false, grants, folder };
}

const U = (path: string): string => `http://127.0.0.1:${web.port}${path}`;
const posts = (path: string): number => web.requests.filter((r) => r.method === 'POST' && r.path === path).length;

async function rejectsWith(p: Promise<unknown>, code: string, match?: RegExp): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, `a TalonError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (match) assert.match(err.message, match);
    return err;
  }
  assert.fail(`expected ${code}`);
}

/** `cond` within a bounded time (a form's POST arrives after the click returns) */
async function eventually(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  return cond();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-browser-tools-'));
  store = await Store.open(dir);
  chain = new AuditChain(store, DeviceKey.loadOrCreate(dir));
  await chain.start();
  approvals = new Approvals({ store, audit: chain, timeoutMs: () => 60_000 });
  await approvals.start();
  approvals.onChange((a) => {
    if (a.state !== 'pending') return;
    asked.push(a);
    void approvals.decide(a.id, answer, 'user:ada', answer === 'deny' ? 'not today' : undefined);
  });
  reg = new ToolRegistry({ audit: chain, approvals, config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000 }) });
  kb = new KernelBrowser({ executablePath: CHROMIUM, maxRssMb: 1_000_000 });
  const secrets = new Map([['SHOP_PW', PASSWORD]]);
  for (const t of browserTools({ browser: kb, secret: async (n) => secrets.get(n) })) reg.register(t);

  web = await startWeb({
    '*': {
      // the price arrives by script, after a moment
      '/product': {
        type: 'text/html',
        body: html(
          'Desk lamp',
          '<h1>Desk lamp</h1><div id="slot"></div><script>setTimeout(() => { document.getElementById("slot").innerHTML =' +
            ' \'<p id="price" data-currency="EUR">Price: 19.90</p>\'; }, 300);</script>',
        ),
      },
      '/login': {
        type: 'text/html',
        body: html(
          'Sign in',
          '<form method="post" action="/session"><label>User <input id="user" name="user"></label>' +
            '<label>Password <input id="pw" name="pw" type="password"></label><button type="submit">Sign in</button></form>',
        ),
      },
      '/session': (_req, res, body) => {
        const form = new URLSearchParams(body);
        const ok = form.get('user') === 'ann' && form.get('pw') === PASSWORD;
        res
          .writeHead(
            303,
            ok ? { location: '/account', 'set-cookie': 'session=ok; Path=/' } : { location: '/login?bad=1' },
          )
          .end();
      },
      '/account': (req, res) => {
        const ok = /(^|;\s*)session=ok/.test(req.headers.cookie ?? '');
        res
          .writeHead(200, { 'content-type': 'text/html' })
          .end(
            html(
              'Account',
              ok
                ? '<div id="main"></div><script>setTimeout(() => { document.getElementById("main").innerHTML = ' +
                    '\'<p id="greeting">Welcome back, ann</p>\'; }, 200);</script>'
                : '<p id="greeting">Please sign in</p>',
            ),
          );
      },
      '/shop': {
        type: 'text/html',
        body: html(
          'Shop',
          '<h1>Lamp shop</h1><label>Search <input id="q" name="q"></label>' +
            '<button type="button" id="details" onclick="document.getElementById(\'out\').textContent = ' +
            '\'Details: brass, 40 cm\'">Show details</button><div id="out"></div>' +
            '<form method="post" action="/checkout"><input type="hidden" name="item" value="lamp">' +
            '<button type="submit">Buy now</button></form>',
        ),
      },
      '/checkout': { type: 'text/html', body: html('Thank you', '<p id="done">Order placed</p>') },
      // a page that sizes its element beyond what a visual read decodes
      '/huge': {
        type: 'text/html',
        body: html('Huge', '<div id="wall" style="width:6000px;height:6000px;background:#ccc"></div>'),
      },
      // a region whose colour and text the test switches between reads
      '/swatch': (_req, res) => {
        const [bg, label] = swatch === 'calm' ? ['#2a6', 'Price: 19.90'] : ['#c22', 'SOLD OUT'];
        res
          .writeHead(200, { 'content-type': 'text/html' })
          .end(
            html(
              'Swatch',
              '<h1>Offer</h1><p>Some text that stays.</p>' +
                `<div id="box" style="width:300px;height:120px;background:${bg};color:#fff;font:32px sans-serif">` +
                `${label}</div><div id="empty" style="width:0;height:0"></div>`,
            ),
          );
      },
      // a redirect to a host the grant does not name
      '/away': (_req, res) => void res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end(),
    },
  });
  shopper = caller('shopper', [`127.0.0.1:${web.port}`], ['SHOP_PW']);
  other = caller('other', [`127.0.0.1:${web.port}`]);
});

after(async () => {
  await kb?.close();
  await approvals?.stop();
  await chain?.stop();
  await store?.close();
  await web?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('browser.read: a JavaScript-rendered element, its attribute, a selector that matches nothing, a screenshot', async () => {
  const r = await reg.call(shopper, 'browser.read', {
    url: U('/product'),
    selector: '#price',
    attribute: 'data-currency',
    waitFor: '#price',
    screenshot: true,
  });
  const o = r.output as Record<string, unknown>;
  assert.equal(o.found, true);
  assert.equal(o.text, 'Price: 19.90', 'the text the script rendered');
  assert.equal(o.value, 'EUR');
  assert.equal(o.status, 200);
  assert.equal(o.title, 'Desk lamp');
  assert.equal(o.finalUrl, U('/product'));
  assert.deepEqual(o.refused, []);
  assert.match(String(o.screenshot), /^browser\/read-.*\.png$/);
  assert.ok(statSync(join(shopper.folder, String(o.screenshot))).size > 1000, 'a PNG under the caller folder');

  const none = (await reg.call(shopper, 'browser.read', { url: U('/product'), selector: '#nothing-here' }))
    .output as Record<string, unknown>;
  assert.equal(none.found, false);
  assert.equal(none.text, null);

  const body = (await reg.call(shopper, 'browser.read', { url: U('/missing') })).output as Record<string, unknown>;
  assert.equal(body.status, 404, 'an HTTP error is a status, not an error');
  assert.equal(body.found, true);
  assert.match(String(body.text), /no \/missing/);
});

test('browser.read and browser.open: a host outside the grant is CAPABILITY_DENIED; a bad selector TOOL_BAD_INPUT', async () => {
  await rejectsWith(
    reg.call(shopper, 'browser.read', { url: 'http://127.0.0.1:1/' }),
    'CAPABILITY_DENIED',
    /127\.0\.0\.1:1/,
  );
  await rejectsWith(reg.call(shopper, 'browser.open', { url: 'http://10.1.2.3/' }), 'CAPABILITY_DENIED');
  await rejectsWith(
    reg.call(shopper, 'browser.read', { url: U('/product'), selector: 'role=buton[name="x"]' }),
    'TOOL_BAD_INPUT',
    /selector/,
  );
  await rejectsWith(reg.call(shopper, 'browser.read', { url: 'file:///etc/passwd' }), 'TOOL_BAD_INPUT', /file:/);
});

test('browser.run_flow: a login with a sealed secret, the output, a screenshot; the secret never in the result', async () => {
  const flow = {
    name: 'account',
    output: { type: 'object', required: ['greeting'] },
    steps: [
      { goto: U('/login') },
      { fill: { selector: '#user', value: 'ann' } },
      { fill: { selector: '#pw', value: { secret: 'SHOP_PW' } } },
      { click: 'role=button[name="Sign in"]' },
      { wait_for: { selector: '#greeting' } },
      { extract: { fields: { greeting: '#greeting' } } },
      { screenshot: { name: 'signed-in' } },
    ],
  };
  const r = await reg.call(shopper, 'browser.run_flow', { flow });
  const o = r.output as {
    ok: boolean;
    output: { greeting: string };
    steps: Array<{ ok: boolean; path: string }>;
    screenshots: Array<{ name: string; file: string }>;
  };
  assert.equal(o.ok, true, JSON.stringify(o).slice(0, 500));
  assert.deepEqual(o.output, { greeting: 'Welcome back, ann' });
  assert.equal(o.steps.length, 7);
  assert.ok(o.steps.every((s) => s.ok));
  assert.equal(o.screenshots.length, 1);
  assert.match(o.screenshots[0]!.file, /^browser\/account-\d+\/signed-in\.png$/);
  assert.ok(statSync(join(shopper.folder, o.screenshots[0]!.file)).size > 1000);
  assert.ok(!JSON.stringify(r).includes(PASSWORD), 'the secret is not in the result');

  // a caller whose secrets grant does not name it is refused before the browser starts
  const flowsBefore = web.hits('127.0.0.1', '/login');
  await rejectsWith(reg.call(other, 'browser.run_flow', { flow }), 'CAPABILITY_DENIED', /SHOP_PW/);
  assert.equal(web.hits('127.0.0.1', '/login'), flowsBefore);
});

test('browser.run_flow: a bad flow is TOOL_BAD_INPUT naming the step, and nothing is loaded', async () => {
  const hits = web.requests.length;
  const err = await rejectsWith(
    reg.call(shopper, 'browser.run_flow', {
      flow: { name: 'bad', steps: [{ goto: U('/shop') }, { clik: '#details' }] },
    }),
    'TOOL_BAD_INPUT',
    /steps\[1\]/,
  );
  assert.match(err.message, /click/, 'it suggests the step meant');
  assert.equal(web.requests.length, hits, 'the browser went nowhere');
});

test('sessions: open, snapshot, fill, a harmless click, "Buy now" denied then approved, another caller, close', async () => {
  const opened = (await reg.call(shopper, 'browser.open', { url: U('/shop') })).output as Record<string, string>;
  const session = opened.session!;
  assert.equal(opened.title, 'Shop');
  assert.match(opened.snapshot!, /button "Buy now"/);

  const snap = (await reg.call(shopper, 'browser.snapshot', { session })).output as Record<string, string>;
  assert.match(snap.snapshot!, /button "Show details"/);
  assert.match(snap.snapshot!, /heading "Lamp shop"/);

  await reg.call(shopper, 'browser.fill', { session, selector: '#q', value: 'brass lamp' });
  const before = asked.length;
  await reg.call(shopper, 'browser.click', { session, selector: 'role=button[name="Show details"]' });
  assert.equal(asked.length, before, 'a harmless button asks nobody');
  const ex = (await reg.call(shopper, 'browser.extract', { session, fields: { out: '#out', q: '#q@name' } }))
    .output as { data: Record<string, string | null> };
  assert.deepEqual(ex.data, { out: 'Details: brass, 40 cm', q: 'q' });

  // another Hand does not see the session
  await rejectsWith(reg.call(other, 'browser.snapshot', { session }), 'NOT_FOUND');
  await rejectsWith(reg.call(other, 'browser.click', { session, selector: '#details' }), 'NOT_FOUND');

  // "Buy now" in a form to /checkout: a person is asked; denied, nothing is sent
  answer = 'deny';
  const denied = await rejectsWith(
    reg.call(shopper, 'browser.click', { session, selector: 'text=Buy now' }),
    'APPROVAL_DENIED',
    /not today/,
  );
  assert.equal((denied.details as { by: string }).by, 'user:ada');
  assert.equal(asked.length, before + 1);
  const a = asked.at(-1)!;
  assert.equal(a.tool, 'browser.click');
  assert.equal(a.hand, 'shopper');
  assert.match(a.reason, /"Buy now"/);
  assert.ok(a.reason.includes(U('/shop')), a.reason);
  assert.equal((a.input as { page: string }).page, U('/shop'));
  assert.equal(await eventually(() => posts('/checkout') > 0, 500), false, 'the shop saw no order');
  const deniedEntry = (await chain.query({ action: 'tool.call', order: 'desc', limit: 1 })).items[0]!;
  assert.equal(deniedEntry.decision, 'deny');
  assert.equal((deniedEntry.detail as { outcome: string }).outcome, 'APPROVAL_DENIED');

  // approved: clicked, the order is posted
  answer = 'approve';
  const r = await reg.call(shopper, 'browser.click', { session, selector: 'text=Buy now' });
  assert.equal((r.output as { approved?: boolean }).approved, true);
  assert.deepEqual(r.approval, { id: asked.at(-1)!.id, by: 'user:ada' });
  assert.ok(await eventually(() => posts('/checkout') === 1), 'the shop saw the order');
  assert.match(web.requests.find((q) => q.path === '/checkout')!.body, /item=lamp/);
  const entry = (await chain.query({ action: 'tool.call', order: 'desc', limit: 1 })).items[0]!;
  assert.deepEqual((entry.detail as { approval: unknown }).approval, { id: asked.at(-1)!.id, by: 'user:ada' });

  const shot = (await reg.call(shopper, 'browser.screenshot', { session })).output as { file: string };
  assert.ok(statSync(join(shopper.folder, shot.file)).size > 1000);

  await reg.call(shopper, 'browser.close', { session });
  await rejectsWith(reg.call(shopper, 'browser.snapshot', { session }), 'NOT_FOUND');
});

test('sessions: at most 2 per caller; a goto or a redirect outside the grant is refused', async () => {
  const s1 = ((await reg.call(other, 'browser.open', { url: U('/shop') })).output as { session: string }).session;
  const s2 = ((await reg.call(other, 'browser.open', { url: U('/product') })).output as { session: string }).session;
  await rejectsWith(reg.call(other, 'browser.open', { url: U('/shop') }), 'QUOTA_EXCEEDED', /browser\.close/);
  await rejectsWith(reg.call(other, 'browser.goto', { session: s1, url: 'http://127.0.0.1:1/x' }), 'CAPABILITY_DENIED');
  await rejectsWith(
    reg.call(other, 'browser.goto', { session: s1, url: U('/away') }),
    'CAPABILITY_DENIED',
    /127\.0\.0\.1:1/,
  );
  await rejectsWith(reg.call(other, 'browser.read', { url: U('/away') }), 'CAPABILITY_DENIED', /redirect/);
  const g = (await reg.call(other, 'browser.goto', { session: s1, url: U('/product') })).output as { title: string };
  assert.equal(g.title, 'Desk lamp');
  await reg.call(other, 'browser.close', { session: s1 });
  await reg.call(other, 'browser.close', { session: s2 });
  assert.equal(kb.sessions.size, 0);
});

test('browser.read visual: an element’s fingerprint; the same page twice alike, a changed one differs', async () => {
  swatch = 'calm';
  const read = async (extra: Record<string, unknown>) =>
    (await reg.call(shopper, 'browser.read', { url: U('/swatch'), visual: true, ...extra })).output as {
      found: boolean;
      text: string | null;
      screenshot?: string;
      visual?: Visual;
    };
  const a = await read({ selector: '#box' });
  assert.equal(a.found, true);
  assert.equal(a.text, 'Price: 19.90');
  const v = a.visual!;
  // the element, not the page (a fractional offset may add a pixel row)
  assert.equal(v.width, 300);
  assert.ok(v.height >= 120 && v.height <= 121, `${v.height}`);
  assert.deepEqual([v.cols, v.rows], [32, 13]);
  const cells = Buffer.from(v.cells, 'base64');
  assert.equal(cells.length, 32 * 13);
  assert.match(String(a.screenshot), /^browser\/read-.*\.png$/);
  // the stored screenshot is the one fingerprinted
  assert.deepEqual(await fingerprint(readFileSync(join(shopper.folder, a.screenshot!))), v);
  // #2a6 is green: luminance 0.299·34 + 0.587·170 + 0.114·102 ≈ 121; the white text lifts some cells
  const corner = cells[cells.length - 1]!;
  assert.ok(Math.abs(corner - 121) <= 2, `the bottom-right cell is the background: ${corner}`);

  const b = await read({ selector: '#box' });
  const diff = (x: Visual, y: Visual): number => {
    const p = Buffer.from(x.cells, 'base64');
    const q = Buffer.from(y.cells, 'base64');
    let n = 0;
    for (let i = 0; i < p.length; i++) if (Math.abs(p[i]! - q[i]!) > 16) n++;
    return n;
  };
  assert.deepEqual([b.visual!.width, b.visual!.height], [v.width, v.height]);
  assert.equal(diff(v, b.visual!), 0, 'the same page read twice: no cell moved by more than 16');

  swatch = 'alarm';
  const c = await read({ selector: '#box' });
  assert.equal(c.text, 'SOLD OUT');
  assert.ok(diff(v, c.visual!) > cells.length / 2, `most cells changed: ${diff(v, c.visual!)} of ${cells.length}`);
  swatch = 'calm';

  // no selector: the viewport
  const page = await read({});
  assert.deepEqual(
    [page.visual!.width, page.visual!.height, page.visual!.cols, page.visual!.rows],
    [1280, 800, 32, 20],
  );

  // nothing found: no visual, no screenshot
  const none = await read({ selector: '#nothing' });
  assert.equal(none.found, false);
  assert.equal(none.visual, undefined);
  assert.equal(none.screenshot, undefined);

  // an element without a size cannot be photographed: a TOOL_FAILED that says what to choose
  await rejectsWith(
    reg.call(shopper, 'browser.read', { url: U('/swatch'), selector: '#empty', visual: true }),
    'TOOL_FAILED',
    /visible element/,
  );
});

test('retention: a caller’s first browser call sweeps its browser/ folder of files past their age', async () => {
  const fresh = caller('sweeper', [`127.0.0.1:${web.port}`]);
  mkdirSync(join(fresh.folder, 'browser', 'old-flow-1'), { recursive: true });
  const old = join(fresh.folder, 'browser', 'old-flow-1', 'shot.png');
  const recent = join(fresh.folder, 'browser', 'read-recent.png');
  const mine = join(fresh.folder, 'notes.txt');
  for (const p of [old, recent, mine]) writeFileSync(p, 'x');
  const eightDays = (Date.now() - 8 * 24 * 3600_000) / 1000;
  utimesSync(old, eightDays, eightDays);
  utimesSync(mine, eightDays, eightDays);
  await reg.call(fresh, 'browser.read', { url: U('/product') });
  await kb.noteCaller(fresh.folder); // within the hour: no new sweep, answers when the first is done
  assert.equal(existsSync(old), false, 'the 8-day-old screenshot is gone');
  assert.equal(existsSync(recent), true);
  assert.equal(existsSync(mine), true, 'a file outside browser/ is not touched');
});

test('a visual read of an element larger than MAX_PIXELS is refused before any screenshot is taken', async () => {
  const before = readdirSafe(join(shopper.folder, 'browser')).length;
  await rejectsWith(
    reg.call(shopper, 'browser.read', { url: U('/huge'), selector: '#wall', visual: true }),
    'TOOL_FAILED',
    /6000×6000 pixels, over 16777216/,
  );
  assert.equal(readdirSafe(join(shopper.folder, 'browser')).length, before, 'no screenshot stored');
});

test('the model-directed path: a scripted model opens the shop, reads it and clicks "Buy now" — denied, then approved', async () => {
  const { AgentRunner } = await import('../../../runtime/agent/loop.ts');
  const { RunStore } = await import('../../../runtime/agent/runs.ts');
  const { OpenAiProvider } = await import('../../../runtime/llm/providers/openai.ts');
  const { startFakeLlm } = await import('../../helpers/llm-fakes.ts');
  const fake = await startFakeLlm('openai');
  const provider = new OpenAiProvider({ name: 'fake', baseUrl: fake.url, model: 'fake-model' });
  const runs = new RunStore(store);
  await runs.start();
  // the model's turns: open the shop; then, once it knows the session, read the page, click "Buy now", answer
  const tools = {
    list: (c?: ToolCaller) => reg.list(c),
    info: (name: string, c?: ToolCaller) => reg.info(name, c),
    async call(c: ToolCaller, name: string, input: unknown, opts?: Parameters<ToolRegistry['call']>[3]) {
      const r = await reg.call(c, name, input, opts);
      if (name === 'browser.open') {
        const session = (r.output as { session: string }).session;
        fake.reply(
          { toolCalls: [{ id: 't2', name: 'browser.snapshot', arguments: { session } }] },
          {
            toolCalls: [
              { id: 't3', name: 'browser.click', arguments: { session, selector: 'role=button[name="Buy now"]' } },
            ],
          },
          { toolCalls: [{ id: 't4', name: 'browser.close', arguments: { session } }] },
          { text: 'Done.' },
        );
      }
      return r;
    },
  };
  const runner = new AgentRunner({ chat: (_c, req) => provider.chat(req), tools, runs });
  const buy = async () => {
    fake.reply({ toolCalls: [{ id: 't1', name: 'browser.open', arguments: { url: U('/shop') } }] });
    return runner.run(shopper, { goal: 'Buy the lamp in the shop', tools: ['browser.*'], maxSteps: 8 });
  };
  try {
    const before = posts('/checkout');
    const askedBefore = asked.length;
    answer = 'deny';
    const denied = await buy();
    assert.equal(denied.text, 'Done.');
    assert.equal(asked.length, askedBefore + 1, 'a person was asked once');
    assert.match(asked.at(-1)!.reason, /"Buy now"/);
    const deniedRun = await runs.get(denied.runId);
    const click = deniedRun.steps.flatMap((s) => s.calls).find((c) => c.tool === 'browser.click');
    assert.ok(click, JSON.stringify(deniedRun.steps));
    assert.match(JSON.stringify(click), /APPROVAL_DENIED/, 'the click came back to the model as denied');
    assert.equal(await eventually(() => posts('/checkout') > before, 1000), false, 'the shop saw no order');
    // the snapshot the model read named the button
    const snap = deniedRun.steps.flatMap((s) => s.calls).find((c) => c.tool === 'browser.snapshot');
    assert.match(JSON.stringify(snap), /button \\"Buy now\\"/);

    answer = 'approve';
    const approved = await buy();
    assert.equal(approved.text, 'Done.');
    assert.equal(await eventually(() => posts('/checkout') === before + 1), true, 'the order reached the shop once');
    assert.equal(kb.sessions.size, 0, 'the model closed its sessions');
  } finally {
    answer = 'approve';
    await fake.close();
  }
});

function readdirSafe(d: string): string[] {
  return existsSync(d) ? readdirSync(d) : [];
}
