/**
 * The kernel's browser pool (runtime/browser/pool.ts) and its request guard (runtime/browser/guard.ts): real Chromium
 * against two local servers on 127.0.0.1, A granted and B not. One shared pool for most tests; the RSS restart and
 * the missing binary get their own (the latter launches nothing).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { BrowserPool, TALON_DISABLED_FEATURES } from '../../../runtime/browser/pool.ts';
import { requestGuard } from '../../../runtime/browser/guard.ts';
import { normalizeNetwork } from '../../../runtime/core/network.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

const CHROMIUM = process.env.TALON_CHROMIUM ?? '/usr/bin/chromium';

let a: http.Server;
let b: http.Server;
let aPort = 0;
let bPort = 0;
/** paths B was asked for, and TCP connections it accepted (a tunnel carries no HTTP request B could read) */
const bHits: string[] = [];
let bConnections = 0;
/** the order of events the slow page saw: `start:N` / `end:N` */
const events: string[] = [];
let pool: BrowserPool;
/** what the shared pool logged */
const poolLog: string[] = [];

function listen(s: http.Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

before(async () => {
  b = http.createServer((req, res) => {
    bHits.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('B');
  });
  b.on('connection', () => bConnections++);
  bPort = await listen(b);
  a = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const html = (body: string): void => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><html><body>${body}</body></html>`);
    };
    switch (url.pathname) {
      case '/js':
        return html(
          '<div id="out"></div><script>document.getElementById("out").textContent = "rendered " + (6 * 7);</script>',
        );
      case '/mixed':
        return html(
          `<p id="p">local</p><img src="http://127.0.0.1:${bPort}/img.png"><script src="http://127.0.0.1:${bPort}/x.js"></script>`,
        );
      case '/redirect':
        res.writeHead(302, { location: `http://127.0.0.1:${bPort}/landed` });
        return res.end();
      case '/redirect-tls':
        res.writeHead(302, { location: `https://127.0.0.1:${bPort}/landed` });
        return res.end();
      case '/redirect-ok':
        res.writeHead(302, { location: '/js' });
        return res.end();
      case '/img-redirect':
        res.writeHead(302, { location: `http://127.0.0.1:${bPort}/img2.png` });
        return res.end();
      case '/mixed-redirect':
        return html('<img src="/img-redirect"><p id="p">local</p>');
      case '/login-form':
        return html(
          '<form method="post" action="/login"><label>Email <input type="email" name="email" autocomplete="email">' +
            '</label><label>Name <input name="name" autocomplete="name"></label><label>Card <input name="cc" ' +
            'autocomplete="cc-number"></label><label>Password <input type="password" name="password" ' +
            'autocomplete="current-password"></label><button type="submit">Sign in</button></form>' +
            '<input id="q" placeholder="Search">',
        );
      case '/alert':
        return html('<script>alert("hello")</script><p id="p">after</p>');
      case '/popups':
        return html('<button id="go" onclick="window.open(\'/js\'); window.open(\'/js\')">go</button>');
      case '/slow': {
        // the job's number; the server records when it starts and when it answers (ordering only)
        const n = url.searchParams.get('n');
        events.push(`start:${n}`);
        setTimeout(() => {
          events.push(`end:${n}`);
          html(`<p id="p">slow ${n}</p>`);
        }, 150);
        return;
      }
      default:
        return html('<p id="p">hello</p>');
    }
  });
  aPort = await listen(a);
  // no memory restarts here (one test makes them on its own pool): the launch counts below stay exact
  pool = new BrowserPool({
    executablePath: CHROMIUM,
    maxPages: 1,
    maxRssMb: 1_000_000,
    // site.test exists only here: Chromium cannot resolve it, the guard's proxy can
    resolve: async (h) => {
      if (h === 'site.test') return [{ address: '127.0.0.1', family: 4 }];
      throw Object.assign(new Error(`${h}: unknown`), { code: 'ENOTFOUND' });
    },
    log: (m) => {
      poolLog.push(m);
      if (process.env.W1_DEBUG) console.error(m);
    },
  });
});

after(async () => {
  await pool?.close();
  a?.close();
  b?.close();
});

const grantA = () => normalizeNetwork([`127.0.0.1:${aPort}`], 'test');
const A = (path: string) => `http://127.0.0.1:${aPort}${path}`;

test('the guard: schemes, hosts, and names that resolve to addresses the grant does not name', async () => {
  const grant = normalizeNetwork(['example.com', 'lan.example.com', '192.168.1.20'], 'test');
  const addrs: Record<string, string> = { 'example.com': '93.184.215.14', 'lan.example.com': '192.168.1.20' };
  let lookups = 0;
  const guard = requestGuard(grant, {
    resolve: async (h) => {
      lookups++;
      if (h === 'rebind.example.com' || !(h in addrs)) return [{ address: '127.0.0.1', family: 4 }];
      return [{ address: addrs[h]!, family: 4 }];
    },
  });
  assert.deepEqual(await guard('https://example.com/x'), { ok: true });
  assert.deepEqual(await guard('http://lan.example.com/'), { ok: true });
  assert.deepEqual(await guard('data:text/plain,hi'), { ok: true });
  assert.deepEqual(await guard('about:blank'), { ok: true });
  for (const u of ['file:///etc/passwd', 'chrome://settings', 'ftp://example.com/']) {
    const r = await guard(u);
    assert.equal(r.ok, false, u);
  }
  const other = await guard('https://other.example.org/');
  assert.equal(other.ok, false);
  assert.match((other as { reason: string }).reason, /other\.example\.org:443 is not in the network grant/);
  // a granted name that resolves to loopback is refused
  const g2 = requestGuard(normalizeNetwork(['*.example.com'], 'test'), {
    resolve: async () => [{ address: '127.0.0.1', family: 4 }],
  });
  const r = await g2('http://rebind.example.com/');
  assert.equal(r.ok, false);
  assert.match((r as { reason: string }).reason, /resolves to 127\.0\.0\.1, a loopback address/);
  // an IP literal is checked against address entries
  assert.equal((await guard('http://192.168.1.21/')).ok, false);
  assert.equal((await guard('http://192.168.1.20/')).ok, true);
  // the second look-up of a name comes from the cache
  const before = lookups;
  await guard('https://example.com/y');
  assert.equal(lookups, before);
});

test('a job reads a page rendered by JavaScript', async () => {
  const text = await pool.job(grantA(), async (page) => {
    await page.goto(A('/js'));
    return page.locator('#out').textContent();
  });
  assert.equal(text, 'rendered 42');
});

test('an image and a script from an ungranted host are refused and recorded; the page still loads', async () => {
  const hitsBefore = bHits.length;
  const { text, refused } = await pool.job(grantA(), async (page, _ctx, info) => {
    await page.goto(A('/mixed'));
    return { text: await page.locator('#p').textContent(), refused: [...info.refused] };
  });
  assert.equal(text, 'local');
  const urls = refused.map((r) => r.url).sort();
  assert.deepEqual(urls, [`http://127.0.0.1:${bPort}/img.png`, `http://127.0.0.1:${bPort}/x.js`]);
  assert.match(refused[0]!.reason, new RegExp(`127\\.0\\.0\\.1:${bPort} is not in the network grant`));
  assert.equal(bHits.length, hitsBefore, 'B was never asked');
});

test('goto to an ungranted host is a CAPABILITY_DENIED naming it', async () => {
  const hitsBefore = bHits.length;
  await assert.rejects(
    pool.job(grantA(), async (page) => {
      await page.goto(`http://127.0.0.1:${bPort}/direct`);
    }),
    (err: unknown) =>
      err instanceof TalonError && err.code === 'CAPABILITY_DENIED' && err.message.includes(`127.0.0.1:${bPort}`),
  );
  assert.equal(bHits.length, hitsBefore);
});

test('a redirect from the granted server to an ungranted one is refused before it leaves', async () => {
  for (const [path, target] of [
    ['/redirect', `http://127.0.0.1:${bPort}/landed`],
    ['/redirect-tls', `https://127.0.0.1:${bPort}/landed`],
  ] as const) {
    const hits = bHits.length;
    const conns = bConnections;
    let refused: Array<{ url: string }> = [];
    await assert.rejects(
      pool.job(grantA(), async (page, _ctx, info) => {
        refused = info.refused;
        await page.goto(A(path));
      }),
      (err: unknown) =>
        err instanceof TalonError &&
        err.code === 'CAPABILITY_DENIED' &&
        err.message.includes(`127.0.0.1:${bPort}`) &&
        err.message.includes('redirect'),
      path,
    );
    assert.deepEqual(
      refused.map((r) => r.url),
      [target],
    );
    assert.equal(bHits.length, hits, `${path}: B was never asked`);
    assert.equal(bConnections, conns, `${path}: nothing connected to B`);
  }
});

test('a redirect within the grant is followed; an image redirected out of it is refused and the page loads', async () => {
  const text = await pool.job(grantA(), async (page) => {
    await page.goto(A('/redirect-ok'));
    return page.locator('#out').textContent();
  });
  assert.equal(text, 'rendered 42');
  const conns = bConnections;
  const hits = bHits.length;
  const out = await pool.job(grantA(), async (page, _ctx, info) => {
    await page.goto(A('/mixed-redirect'));
    await page.waitForLoadState('load');
    return { text: await page.locator('#p').textContent(), refused: info.refused.map((r) => r.url) };
  });
  assert.equal(out.text, 'local');
  assert.deepEqual(out.refused, [`http://127.0.0.1:${bPort}/img2.png`]);
  assert.equal(bConnections, conns, 'nothing connected to B');
  assert.equal(bHits.length, hits, 'B was never asked');
});

test('a name is resolved and pinned by the guard: loopback only when the address is granted too', async () => {
  const named = normalizeNetwork(['site.test', `127.0.0.1:${aPort}`], 'test');
  const text = await pool.job(named, async (page) => {
    await page.goto(`http://site.test:${aPort}/js`);
    return page.locator('#out').textContent();
  });
  assert.equal(text, 'rendered 42');
  await assert.rejects(
    pool.job(normalizeNetwork(['site.test'], 'test'), async (page) => {
      await page.goto(`http://site.test:${aPort}/js`);
    }),
    (err: unknown) =>
      err instanceof TalonError &&
      err.code === 'CAPABILITY_DENIED' &&
      /site\.test/.test(err.message) &&
      /127\.0\.0\.1, a loopback address/.test(err.message),
  );
});

test('a cancelled job ends with an error and the pool goes on', async () => {
  const ac = new AbortController();
  await assert.rejects(
    pool.job(
      grantA(),
      async (page) => {
        await page.goto(A('/'));
        ac.abort(new TalonError('NOT_RUNNING', 'cancelled by the test'));
        await page.waitForTimeout(10_000);
      },
      { signal: ac.signal },
    ),
    /cancelled by the test/,
  );
  const text = await pool.job(grantA(), async (page) => {
    await page.goto(A('/'));
    return page.locator('#p').textContent();
  });
  assert.equal(text, 'hello');
});

test('with maxPages 1, three jobs run one after another', async () => {
  events.length = 0;
  const jobs = [1, 2, 3].map((n) =>
    pool.job(grantA(), async (page) => {
      await page.goto(A(`/slow?n=${n}`));
      return page.locator('#p').textContent();
    }),
  );
  assert.deepEqual(await Promise.all(jobs), ['slow 1', 'slow 2', 'slow 3']);
  assert.equal(events.length, 6);
  // never two requests open at once: every start is followed by its own end
  for (let i = 0; i < 6; i += 2) {
    assert.match(events[i]!, /^start:/);
    assert.equal(events[i + 1], events[i]!.replace('start', 'end'));
  }
});

test('an alert does not hang the job and is recorded', async () => {
  const out = await pool.job(grantA(), async (page, _ctx, info) => {
    await page.goto(A('/alert'));
    return { text: await page.locator('#p').textContent(), dialogs: info.dialogs };
  });
  assert.equal(out.text, 'after');
  assert.deepEqual(out.dialogs, [{ type: 'alert', message: 'hello' }]);
});

test('popups beyond maxPages are closed', async () => {
  const out = await pool.job(grantA(), async (page, ctx, info) => {
    await page.goto(A('/popups'));
    await page.click('#go');
    // bounded: wait until both popups were seen and are gone
    for (let i = 0; i < 100 && (info.popupsClosed < 2 || ctx.pages().length > 1); i++) await page.waitForTimeout(50);
    return { closed: info.popupsClosed, pages: ctx.pages().length };
  });
  assert.equal(out.closed, 2);
  assert.equal(out.pages, 1);
});

test('a browser killed during a job: the job runs again on a new browser and succeeds', async () => {
  // make sure a browser is running and find it
  await pool.job(grantA(), async (page) => void (await page.goto(A('/'))));
  const before = await pool.stats();
  const attempts: number[] = [];
  const text = await pool.job(grantA(), async (page, _ctx, info) => {
    attempts.push(info.attempt);
    await page.goto(A('/'));
    if (info.attempt === 1) {
      assert.ok(pool.pid, 'the pool knows its browser pid');
      process.kill(pool.pid!, 'SIGKILL');
      await page.waitForTimeout(10_000); // fails once the browser is gone
    }
    return page.locator('#p').textContent();
  });
  assert.equal(text, 'hello');
  assert.deepEqual(attempts, [1, 2]);
  const s = await pool.stats();
  assert.equal(s.crashes, before.crashes + 1);
  assert.equal(s.launches, before.launches + 1);
});

test('a browser over maxRssMb is restarted before the next job', async () => {
  const small = new BrowserPool({ executablePath: CHROMIUM, maxRssMb: 1 });
  try {
    await small.job(grantA(), async (page) => void (await page.goto(A('/'))));
    const s1 = await small.stats();
    assert.ok((s1.rssMb ?? 0) > 1, `RSS is read (${s1.rssMb})`);
    assert.equal(s1.restarts, 0);
    const text = await small.job(grantA(), async (page) => {
      await page.goto(A('/'));
      return page.locator('#p').textContent();
    });
    assert.equal(text, 'hello');
    const s2 = await small.stats();
    assert.ok(s2.restarts >= 1);
    assert.equal(s2.launches, 2);
  } finally {
    await small.close();
  }
});

test('Chromium missing: a clear error saying how to install it', async () => {
  const none = new BrowserPool({ executablePath: '/nonexistent' });
  await assert.rejects(
    none.job(grantA(), async () => 1),
    (err: unknown) =>
      err instanceof TalonError &&
      err.code === 'NOT_RUNNING' &&
      /apt-get install chromium/.test(err.message) &&
      /TALON_CHROMIUM/.test(err.message),
  );
  assert.equal((await none.stats()).launches, 0);
  await none.close();
});

/** crashes the page's renderer (the browser stays up): CDP's Page.crash */
async function crashPage(page: import('playwright-core').Page, ctx: import('playwright-core').BrowserContext) {
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Page.crash').catch(() => {});
  await page.waitForTimeout(10_000); // fails, or is cut short, once the page is gone
}

test('a page whose renderer crashes: the job runs again in a fresh context, on the same browser', async () => {
  await pool.job(grantA(), async (page) => void (await page.goto(A('/'))));
  const before = await pool.stats();
  const pid = pool.pid;
  const attempts: number[] = [];
  const text = await pool.job(grantA(), async (page, ctx, info) => {
    attempts.push(info.attempt);
    await page.goto(A('/'));
    if (info.attempt === 1) await crashPage(page, ctx);
    return page.locator('#p').textContent();
  });
  assert.equal(text, 'hello');
  assert.deepEqual(attempts, [1, 2]);
  const s = await pool.stats();
  assert.equal(s.crashes, before.crashes + 1);
  assert.equal(s.launches, before.launches, 'the browser was not restarted');
  assert.equal(pool.pid, pid);
});

test('a page that crashes again on the retry: a TOOL_FAILED saying the page crashed; the pool goes on', async () => {
  const attempts: number[] = [];
  await assert.rejects(
    pool.job(grantA(), async (page, ctx, info) => {
      attempts.push(info.attempt);
      await page.goto(A('/'));
      await crashPage(page, ctx);
    }),
    (err: unknown) =>
      err instanceof TalonError &&
      err.code === 'TOOL_FAILED' &&
      /the page crashed twice/.test(err.message) &&
      /renderer process died/.test(err.message) &&
      err.message.includes(A('/')),
  );
  assert.deepEqual(attempts, [1, 2]);
  const text = await pool.job(grantA(), async (page) => {
    await page.goto(A('/'));
    return page.locator('#p').textContent();
  });
  assert.equal(text, 'hello');
});

test('a page with a login form: Chromium asks no host of its own (autofill, …); nothing is refused', async () => {
  const from = poolLog.length;
  const refused = await pool.job(grantA(), async (page, _ctx, info) => {
    await page.goto(A('/login-form'));
    await page.fill('input[name=email]', 'ann@example.com');
    await page.fill('input[name=password]', 'secret');
    await page.fill('#q', 'lamps');
    // Chromium asked content-autofill.googleapis.com within a moment of such a page, without the flag
    await page.waitForTimeout(2500);
    return [...info.refused];
  });
  assert.deepEqual(refused, []);
  const proxied = poolLog.slice(from).filter((m) => /refused/.test(m));
  assert.deepEqual(proxied, [], 'the proxy refused nothing either');
});

test('one --disable-features on the running browser, holding playwright’s names and ours', async () => {
  await pool.job(grantA(), async (page) => void (await page.goto(A('/'))));
  assert.ok(pool.pid, 'the browser runs');
  const args = readFileSync(`/proc/${pool.pid}/cmdline`, 'utf8').split('\0');
  const lists = args.filter((a) => a.startsWith('--disable-features=')).map((a) => a.slice(19).split(','));
  assert.ok(lists.length >= 2, "playwright's and ours");
  // Chromium keeps the last one only
  const last = new Set(lists.at(-1));
  for (const name of lists.flat())
    assert.ok(last.has(name), `${name} (playwright's) is missing from PLAYWRIGHT_DISABLED_FEATURES in pool.ts`);
  for (const name of TALON_DISABLED_FEATURES) assert.ok(last.has(name), name);
});
