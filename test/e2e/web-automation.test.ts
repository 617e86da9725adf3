/**
 * The Web Automation Hand on the real daemon with the system's Chromium, as a user runs it: a page watch on a
 * JavaScript-rendered price (a baseline, a change confirmed on the next check, the event on the bus), a scripted login
 * flow with a sealed secret (the secret nowhere in the run), a flow that would pull the device onto a host it was not
 * granted (refused by the kernel's browser, the run failing with that reason), a flow with an unknown step (refused
 * before any browser starts, naming the step), `talon web run FLOW.yaml`, and a watch added at run time with
 * `talon web watch add` (the quick form: a text watch on the site, then `talon web watch check ID` sees its baseline
 * and a change; `talon web watch list` names its source; PUT refuses a bad one naming the field and the config's watch
 * with 409; `talon web watch remove`). A local site on 127.0.0.1 reached under its own name (config `network.hosts`).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { api, ensureBuilt, poll, startDaemon, TALON, type Daemon } from '../helpers/daemon.ts';
import { startWeb, type FixtureWeb } from '../fixtures/web/server.ts';

const PASSWORD = 'correct horse battery staple';
const execFileP = promisify(execFile);

function setSecret(dataDir: string, name: string, value: string): void {
  const r = spawnSync(process.execPath, [TALON, 'secrets', 'set', name, '--data', dataDir], {
    input: value,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
}

const html = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

describe('the Web Automation Hand on the daemon (real Chromium)', () => {
  let web: FixtureWeb;
  let other: FixtureWeb;
  let d: Daemon;
  let price = '19.99';
  let news = 'Opening hours: 9 to 5';
  let boxColour = '#2a6';
  const logins: string[] = [];

  before(async () => {
    ensureBuilt();
    other = await startWeb({ '*': { '/': { type: 'text/html', body: html('elsewhere', '<p>not granted</p>') } } });
    web = await startWeb({
      'shop.example': {
        // the price arrives by script, after load
        '/product': (_req, res) => {
          res
            .writeHead(200, { 'content-type': 'text/html' })
            .end(
              html(
                'Lamp',
                `<h1>Lamp</h1><p>Price: <span id="price"></span></p><p>Visitors today: ${Math.floor(Math.random() * 1e6)}</p>` +
                  `<script>setTimeout(() => { document.getElementById('price').textContent = '$${price}'; }, 300);</script>`,
              ),
            );
        },
        '/login': {
          type: 'text/html',
          body: html(
            'Sign in',
            '<form method="post" action="/session"><label>User <input name="user"></label>' +
              '<label>Password <input name="password" type="password"></label><button>Sign in</button></form>',
          ),
        },
        '/session': (_req, res, body) => {
          const form = new URLSearchParams(body);
          logins.push(form.get('user') ?? '');
          const ok = form.get('password') === PASSWORD;
          res
            .writeHead(ok ? 200 : 403, { 'content-type': 'text/html' })
            .end(
              html(
                ok ? 'Orders' : 'Refused',
                ok ? '<table><tr class="o"><td>A-1</td></tr><tr class="o"><td>A-2</td></tr></table>' : '<p>no</p>',
              ),
            );
        },
        // a box whose colour changes, beside a counter that changes on every load (outside the watched element)
        '/banner': (_req, res) => {
          res
            .writeHead(200, { 'content-type': 'text/html' })
            .end(
              html(
                'Banner',
                `<div id="box" style="width:320px;height:160px;background:${boxColour}"></div>` +
                  `<p>Visitors: ${Math.floor(Math.random() * 1e6)}</p>`,
              ),
            );
        },
        '/news': (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/html' }).end(html('News', `<p id="hours">${news}</p>`));
        },
        '/away': (_req, res) => {
          res.writeHead(302, { location: `http://127.0.0.2:${other.port}/` }).end();
        },
      },
    });
    const first = await startDaemon({ hands: [], drivers: [] });
    assert.equal(await first.stop(), 0);
    setSecret(first.dataDir, 'shop_password', PASSWORD);
    d = await startDaemon(
      {
        drivers: [],
        network: { hosts: { 'shop.example': '127.0.0.1' } },
        hands: [
          { name: 'scheduler', module: 'scheduling' },
          {
            name: 'web',
            module: 'web-automation',
            capabilities: { network: { hosts: ['shop.example', '127.0.0.1'] }, secrets: ['shop_password'] },
            settings: {
              watches: [{ id: 'lamp', url: web.url('shop.example', '/product'), what: { price: '#price' } }],
              flows: {
                orders: {
                  name: 'orders',
                  output: {
                    type: 'object',
                    required: ['orders'],
                    properties: { orders: { type: 'array', minItems: 1 } },
                  },
                  steps: [
                    { goto: web.url('shop.example', '/login') },
                    { fill: { selector: 'input[name=user]', value: 'ada' } },
                    { fill: { selector: 'input[name=password]', value: { secret: 'shop_password' } } },
                    { click: 'role=button[name="Sign in"]' },
                    { wait_for: { selector: 'tr.o' } },
                    { extract: { list: 'tr.o', fields: { id: 'td' } }, as: 'orders' },
                  ],
                },
              },
            },
          },
        ],
      },
      { dataDir: first.dataDir },
    );
    await poll('the Web Automation Hand runs', async () => (await api(d, 'GET', '/api/v1/web/watches')).status === 200);
  });

  after(async () => {
    await d?.stop().catch(() => {});
    await Promise.all([web?.close(), other?.close()]);
  });

  test('a price watch: a baseline, a change seen twice, the event on the bus; a noisy counter is not a change', async () => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
      username: 'token',
      password: d.token(),
      reconnectPeriod: 0,
    });
    const events: any[] = [];
    c.on('message', (_t, p) => events.push(JSON.parse(p.toString())));
    await c.subscribeAsync(`talon/${d.deviceId()}/web/watch/lamp/+`, { qos: 1 });
    try {
      const check = async () => {
        const r = await api(d, 'POST', '/api/v1/web/watches/lamp/check');
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return r.body as { events: Array<{ type: string }>; run: { ok: boolean } };
      };
      const base = await check();
      assert.equal(base.run.ok, true, JSON.stringify(base));
      assert.deepEqual(base.events, []);
      assert.deepEqual((await check()).events, [], 'the same price (the visitor counter is not watched)');
      price = '17.49';
      assert.deepEqual(
        (await check()).events.map((e) => e.type),
        ['pending'],
      );
      const changed = await check();
      assert.deepEqual(
        changed.events.map((e) => e.type),
        ['changed'],
      );
      await poll('the change on the bus', async () => events.some((e) => JSON.stringify(e).includes('17.49')));
      const w = (await api(d, 'GET', '/api/v1/web/watches/lamp')).body;
      assert.match(JSON.stringify(w.watch), /17\.49/);
    } finally {
      await c.endAsync();
    }
  });

  test('a login flow with a sealed secret: the orders extracted, the secret nowhere in the run', async () => {
    const r = await api(d, 'POST', '/api/v1/web/flows/run', { flow: 'orders' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.run.ok, true, JSON.stringify(r.body.run));
    assert.deepEqual(r.body.run.output.orders, [{ id: 'A-1' }, { id: 'A-2' }]);
    assert.deepEqual(logins, ['ada']);
    const stored = await api(d, 'GET', `/api/v1/web/runs/${r.body.run.id}`);
    assert.doesNotMatch(JSON.stringify(stored.body), /correct horse/);
  });

  test('`talon web run FLOW.yaml`', async () => {
    const file = join(d.dataDir, 'flow.yaml');
    writeFileSync(
      file,
      `name: title\nsteps:\n  - goto: ${web.url('shop.example', '/login')}\n  - assert: { text: "Password" }\n`,
    );
    // not spawnSync (helpers/daemon.ts cli()): the site the browser reads is served by this process
    const out = await execFileP(process.execPath, [TALON, 'web', 'run', file, '--data', d.dataDir], {
      encoding: 'utf8',
    });
    assert.match(out.stdout, /ok in/, out.stdout);
  });

  test('`talon web watch add` (quick form) on the daemon, `watch check ID`, `watch list` with the source, `watch remove`', async () => {
    // not spawnSync: the site the browser reads is served by this process
    const talon = (...argv: string[]) =>
      execFileP(process.execPath, [TALON, 'web', 'watch', ...argv, '--data', d.dataDir], { encoding: 'utf8' });
    const url = web.url('shop.example', '/news');
    const added = await talon('add', '--id', 'hours', '--url', url, '--text', '#hours', '--no-confirm');
    assert.match(added.stdout, /^added hours: text #hours of http:\/\/shop\.example:\d+\/news/, added.stdout);
    const list = await talon('list');
    assert.match(list.stdout, /^WATCH\s+SOURCE\s+STATE/);
    assert.match(list.stdout, /\nlamp\s+config\s+/);
    assert.match(list.stdout, /\nhours\s+api\s+not checked\s+/);
    const base = await talon('check', 'hours');
    assert.match(base.stdout, /^hours: ok; checked\n {2}no change\n$/, base.stdout);
    news = 'Opening hours: 9 to 6';
    const changed = await talon('check', 'hours');
    assert.match(changed.stdout, /^hours: ok; checked\n {2}changed\n/, changed.stdout);
    assert.match(changed.stdout, /-Opening hours: 9 to 5\n\s+\+Opening hours: 9 to 6/);
    const shown = await talon('show', 'hours');
    assert.match(shown.stdout, /source: api/);
    assert.match(shown.stdout, /last change \(/);

    const bad = await api(d, 'PUT', '/api/v1/web/watches/bad', { url, what: { text: '#x' }, schedule: 'often' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.match(bad.body.error.message, /^watch\.schedule: /);
    assert.equal((await api(d, 'GET', '/api/v1/web/watches/bad')).status, 404, 'nothing stored');
    const config = await api(d, 'PUT', '/api/v1/web/watches/lamp', { url, what: { text: null } });
    assert.equal(config.status, 409, JSON.stringify(config.body));
    assert.match(config.body.error.message, /in the config/);

    const removed = await talon('remove', 'hours');
    assert.equal(removed.stdout, 'removed hours\n');
    assert.equal((await api(d, 'GET', '/api/v1/web/watches/hours')).status, 404);
  });

  test("a visual watch added through the API: the element's picture kept, a colour change seen with its share and screenshot", async () => {
    const url = web.url('shop.example', '/banner');
    const put = await api(d, 'PUT', '/api/v1/web/watches/banner', { url, what: { visual: '#box' }, confirm: false });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.watch.kind, 'visual');
    const check = async () => {
      const r = await api(d, 'POST', '/api/v1/web/watches/banner/check');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body as {
        events: Array<Record<string, any>>;
        run: { ok: boolean; screenshots?: Array<{ file: string }> };
      };
    };
    const base = await check();
    assert.equal(base.run.ok, true, JSON.stringify(base));
    assert.deepEqual(base.events, []);
    assert.match(base.run.screenshots?.[0]?.file ?? '', /^browser\/.+\.png$/);
    const w = (await api(d, 'GET', '/api/v1/web/watches/banner')).body;
    assert.equal(w.watch.value, 'a picture 320×160');
    assert.deepEqual((await check()).events, [], 'the same picture (the counter is outside the element)');
    boxColour = '#a22';
    const changed = await check();
    assert.deepEqual(
      changed.events.map((e) => e.type),
      ['changed'],
    );
    assert.equal(changed.events[0]!.visual.percent, 100);
    assert.match(changed.events[0]!.screenshot, /^browser\/.+\.png$/);
    const detail = (await api(d, 'GET', '/api/v1/web/watches/banner')).body;
    assert.equal(detail.lastChange.visual.percent, 100);
    assert.equal((await api(d, 'DELETE', '/api/v1/web/watches/banner')).status, 200);
  });

  test('a redirect to a host the Hand was not granted is refused by the browser; a bad step never starts one', async () => {
    const away = await api(d, 'POST', '/api/v1/web/flows/run', {
      definition: { name: 'away', steps: [{ goto: web.url('shop.example', '/away') }] },
    });
    assert.equal(away.status, 200, JSON.stringify(away.body));
    assert.equal(away.body.run.ok, false);
    assert.match(JSON.stringify(away.body.run), /127\.0\.0\.2/);
    assert.equal(other.requests.length, 0, 'the ungranted host never saw a request');

    const bad = await api(d, 'POST', '/api/v1/web/flows/run', {
      definition: { name: 'typo', steps: [{ goto: web.url('shop.example', '/login') }, { clik: 'button' }] },
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.match(bad.body.error.message, /steps\[1\].*clik/);
  });
});
