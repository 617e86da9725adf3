/**
 * The web kit's Fetcher over real HTTP (the fixture web on 127.0.0.1, reached by name through webFetch): robots.txt
 * (disallow, allow, 404, 401/403, 5xx, cached in the store), the pause between requests to one host and Crawl-delay,
 * conditional requests (304), the byte cap (a 6 MB page, a streamed one), the time cap, redirects, charsets, the
 * never-scrape list, the kernel's refusal, 429 with Retry-After.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { type FixtureWeb, startWeb } from '../../../fixtures/web/server.ts';
import { webFetch } from '../../../helpers/web-fetch.ts';
import { memStore } from '../../../helpers/mem-store.ts';
import { DEFAULT_USER_AGENT, Fetcher, WebError } from '../../../../hands/sdk/web/fetcher.ts';

const MB = 1024 * 1024;
let web: FixtureWeb;

/** a route that streams `total` bytes of text in 64 KiB chunks, without Content-Length */
function streamed(total: number) {
  return async (_req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    while (sent < total && !res.destroyed) {
      const ok = res.write(chunk);
      sent += chunk.length;
      if (!ok)
        await new Promise<void>((r) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            r();
          };
          res.on('drain', done);
          res.on('close', done);
        });
    }
    if (!res.destroyed) res.end();
  };
}

before(async () => {
  web = await startWeb({
    'blocked.example': {
      '/robots.txt': { type: 'text/plain', body: 'User-agent: *\nDisallow: /private\n' },
      '/private/page': { type: 'text/html', body: '<p>secret</p>' },
      '/public': { type: 'text/html', body: '<p>public</p>' },
    },
    'picky.example': {
      '/robots.txt': { type: 'text/plain', body: 'User-agent: TalonBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n' },
      '/': { type: 'text/html', body: 'hi' },
    },
    'open.example': {
      '/page': { type: 'text/html; charset=utf-8', body: '<p>open</p>' },
      '/missing': { status: 404, type: 'text/plain', body: 'nope' },
      '/busy': { status: 429, type: 'text/plain', body: 'slow down', headers: { 'retry-after': '120' } },
      '/img.png': { type: 'image/png', body: Buffer.alloc(100) },
    },
    'forbidden.example': { '/robots.txt': { status: 403, body: 'no' }, '/': { type: 'text/html', body: 'x' } },
    'broken.example': { '/robots.txt': { status: 503, body: 'down' }, '/': { type: 'text/html', body: 'x' } },
    'crawl.example': {
      '/robots.txt': { type: 'text/plain', body: 'User-agent: *\nCrawl-delay: 1\nDisallow: /no\n' },
      '/a': { type: 'text/plain', body: 'a' },
      '/b': { type: 'text/plain', body: 'b' },
      '/c': { type: 'text/plain', body: 'c' },
    },
    'pause.example': {
      '/1': { type: 'text/plain', body: '1' },
      '/2': { type: 'text/plain', body: '2' },
      '/3': { type: 'text/plain', body: '3' },
    },
    'queue.example': {
      '/slow': { type: 'text/plain', body: 'slow', delayMs: 600 },
      '/2': { type: 'text/plain', body: '2' },
      '/3': { type: 'text/plain', body: '3' },
    },
    'cond.example': {
      '/feed': {
        type: 'application/rss+xml',
        body: '<rss/>',
        etag: '"v1"',
        lastModified: 'Wed, 01 Jan 2025 00:00:00 GMT',
      },
      '/lm': { type: 'text/plain', body: 'dated', lastModified: 'Wed, 01 Jan 2025 00:00:00 GMT' },
    },
    'big.example': {
      '/huge': { type: 'text/html', body: Buffer.alloc(6 * MB, 'a') },
      '/stream': streamed(8 * MB),
      '/small': { type: 'text/html', body: '<p>small</p>' },
      '/slow': { type: 'text/html', body: 'late', delayMs: 2000 },
    },
    'hop.example': {
      '/r1': { status: 301, headers: { location: '/r2' } },
      '/r2': { status: 302, headers: { location: 'http://land.example:PORT/r3' } },
      '/loop': { status: 302, headers: { location: '/loop' } },
      '/to-li': { status: 302, headers: { location: 'https://www.linkedin.com/company/acme' } },
      '/to-blocked': { status: 307, headers: { location: 'http://blocked.example:PORT/private/page' } },
    },
    'land.example': { '/r3': { type: 'text/plain', body: 'landed' } },
    'latin.example': {
      '/header': { type: 'text/html; charset=iso-8859-1', body: Buffer.from('<p>Grüße aus Köln, café</p>', 'latin1') },
      '/meta': {
        type: 'text/html',
        body: Buffer.from('<html><head><meta charset="iso-8859-1"></head><body>Zürich</body></html>', 'latin1'),
      },
      '/utf8': { type: 'text/plain', body: Buffer.from('naïve ✓', 'utf8') },
    },
    'secret.example': { '/': { type: 'text/html', body: 'x' } },
  });
  // the redirects name the fixture's port
  for (const r of Object.values(web.sites['hop.example']!)) {
    const h = (r as { headers?: Record<string, string> }).headers;
    if (h?.location) h.location = h.location.replace('PORT', String(web.port));
  }
});

after(() => web.close());

function fetcher(opts: ConstructorParameters<typeof Fetcher>[2] = {}, store = memStore()) {
  const wf = webFetch(web.port);
  return { f: new Fetcher(wf.fetch, store, { minIntervalMs: 0, ...opts }), store, calls: wf.calls };
}

async function rejectsWith(p: Promise<unknown>, kind: string): Promise<WebError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WebError, `expected a WebError, got ${err}`);
    assert.equal(err.kind, kind, err.message);
    return err;
  }
  assert.fail(`expected WebError ${kind}, got an answer`);
}

describe('robots.txt', () => {
  test('a disallowed path is refused without a request; an allowed one is fetched; robots.txt asked once', async () => {
    const { f } = fetcher();
    const err = await rejectsWith(f.get(web.url('blocked.example', '/private/page')), 'robots');
    assert.match(err.message, /disallows \/private\/page/);
    assert.equal(web.hits('blocked.example', '/private/page'), 0);
    const page = await f.get(web.url('blocked.example', '/public'));
    assert.equal(page.status, 200);
    assert.equal(page.text, '<p>public</p>');
    assert.equal(web.hits('blocked.example', '/robots.txt'), 1);
    assert.equal(await f.allowed(web.url('blocked.example', '/private/x')), false);
    assert.equal(await f.allowed(web.url('blocked.example', '/anything')), true);
    const s = f.stats();
    assert.equal(s.robotsRefused, 1);
    assert.equal(s.errors.robots, 1);
    assert.equal(s.requests, 2);
    const ua = web.requests.find((r) => r.host === 'blocked.example' && r.path === '/public')?.headers['user-agent'];
    assert.equal(ua, DEFAULT_USER_AGENT);
  });

  test("a group for our user agent applies over '*'", async () => {
    const { f } = fetcher();
    await rejectsWith(f.get(web.url('picky.example', '/')), 'robots');
    assert.equal(web.hits('picky.example', '/'), 0);
    // another bot is welcome
    const other = fetcher({ userAgent: 'OtherBot/2.0' });
    assert.equal((await other.f.get(web.url('picky.example', '/'))).text, 'hi');
  });

  test('no robots.txt (404): everything allowed', async () => {
    const { f, store } = fetcher();
    assert.equal((await f.get(web.url('open.example', '/page'))).text, '<p>open</p>');
    const kept = await store.get<{ fetchedAt: number; mode: string }>(`web/robots/http://open.example:${web.port}`);
    assert.equal(kept?.mode, 'all');
    assert.equal(typeof kept?.fetchedAt, 'number');
  });

  test('401/403 forbid everything; 5xx forbids for now (an http error, the site is down), not kept in the store', async () => {
    const { f, store } = fetcher();
    const e1 = await rejectsWith(f.get(web.url('forbidden.example', '/')), 'robots');
    assert.match(e1.message, /403/);
    const e2 = await rejectsWith(f.get(web.url('broken.example', '/')), 'http');
    assert.match(e2.message, /503/);
    assert.equal(web.hits('forbidden.example', '/'), 0);
    assert.equal(web.hits('broken.example', '/'), 0);
    assert.ok(await store.get(`web/robots/http://forbidden.example:${web.port}`));
    assert.equal(await store.get(`web/robots/http://broken.example:${web.port}`), undefined);
    assert.equal(f.stats().robotsRefused, 1);
    assert.equal(f.stats().errors.http, 1);
  });

  test('robots.txt kept in the store is used by the next Fetcher; after its TTL it is asked again', async () => {
    const store = memStore();
    const before = web.hits('blocked.example', '/robots.txt');
    let now = 1_000_000;
    await fetcher({ now: () => now, robotsTtlMs: 60_000 }, store).f.get(web.url('blocked.example', '/public'));
    await fetcher({ now: () => now, robotsTtlMs: 60_000 }, store).f.get(web.url('blocked.example', '/public'));
    assert.equal(web.hits('blocked.example', '/robots.txt'), before + 1);
    now += 61_000;
    await fetcher({ now: () => now, robotsTtlMs: 60_000 }, store).f.get(web.url('blocked.example', '/public'));
    assert.equal(web.hits('blocked.example', '/robots.txt'), before + 2);
  });
});

describe('politeness', () => {
  test("Crawl-delay spaces one host's requests: in order, each start ≥ the one before + 1 s", async () => {
    const { f } = fetcher({ minIntervalMs: 0 });
    const pages = await Promise.all(['/a', '/b', '/c'].map((p) => f.get(web.url('crawl.example', p))));
    assert.deepEqual(
      pages.map((p) => p.text),
      ['a', 'b', 'c'],
    );
    const log = web.requests.filter((r) => r.host === 'crawl.example');
    assert.deepEqual(
      log.map((r) => r.path),
      ['/robots.txt', '/a', '/b', '/c'],
    );
    for (let i = 2; i < log.length; i++)
      assert.ok(
        log[i]!.at >= log[i - 1]!.at + 1000 - 50,
        `${log[i]!.path} started ${log[i]!.at - log[i - 1]!.at} ms after`,
      );
  });

  test('minIntervalMs spaces one host’s requests in the order asked', async () => {
    const { f } = fetcher({ minIntervalMs: 400 });
    await Promise.all(['/1', '/2', '/3'].map((p) => f.get(web.url('pause.example', p))));
    const log = web.requests.filter((r) => r.host === 'pause.example');
    assert.deepEqual(
      log.map((r) => r.path),
      ['/robots.txt', '/1', '/2', '/3'],
    );
    for (let i = 1; i < log.length; i++)
      assert.ok(
        log[i]!.at >= log[i - 1]!.at + 400 - 50,
        `${log[i]!.path} started ${log[i]!.at - log[i - 1]!.at} ms after`,
      );
  });
  test('a request aborted while queued is dropped; the next one still waits for the one running', async () => {
    const { f } = fetcher({ minIntervalMs: 100 });
    const ac = new AbortController();
    const p1 = f.get(web.url('queue.example', '/slow'));
    const p2 = f.get(web.url('queue.example', '/2'), { signal: ac.signal });
    const p3 = f.get(web.url('queue.example', '/3'));
    let p1Done = false;
    p1.then(
      () => {
        p1Done = true;
      },
      () => {},
    );
    ac.abort(new Error('caller gave up'));
    await assert.rejects(p2, /caller gave up/);
    assert.equal(p1Done, false, 'the aborted request gave up at once, not after the one before it');
    assert.equal((await p1).text, 'slow');
    assert.equal((await p3).text, '3');
    const log = web.requests.filter((r) => r.host === 'queue.example');
    assert.deepEqual(
      log.map((r) => r.path),
      ['/robots.txt', '/slow', '/3'],
    );
    // /3 started after /slow had answered (600 ms after it started), not beside it
    assert.ok(log[2]!.at >= log[1]!.at + 600 - 50, `/3 started ${log[2]!.at - log[1]!.at} ms after /slow`);
  });
});

describe('conditional requests', () => {
  test('ETag kept after a 200, sent back, 304 → notModified', async () => {
    const { f, store } = fetcher();
    const url = web.url('cond.example', '/feed');
    const first = await f.get(url, { conditional: true });
    assert.equal(first.status, 200);
    assert.equal(first.notModified, false);
    assert.equal(first.etag, '"v1"');
    assert.equal(first.contentType, 'application/rss+xml');
    const key = `web/v/${createHash('sha1').update(url).digest('hex')}`;
    assert.equal((await store.get<{ etag: string }>(key))?.etag, '"v1"');
    const second = await f.get(url, { conditional: true });
    assert.equal(second.notModified, true);
    assert.equal(second.status, 304);
    assert.equal(second.text, '');
    const sent = web.requests.filter((r) => r.host === 'cond.example' && r.path === '/feed');
    assert.equal(sent.length, 2);
    assert.equal(sent[0]!.headers['if-none-match'], undefined);
    assert.equal(sent[1]!.headers['if-none-match'], '"v1"');
    assert.equal(f.stats().notModified, 1);
    // without `conditional` the validators are not sent: the whole page again
    const third = await f.get(url);
    assert.equal(third.notModified, false);
    assert.equal(third.text, '<rss/>');
  });

  test('Last-Modified alone is sent as If-Modified-Since', async () => {
    const { f } = fetcher();
    const url = web.url('cond.example', '/lm');
    await f.get(url, { conditional: true });
    const again = await f.get(url, { conditional: true });
    assert.equal(again.notModified, true);
    const last = web.requests.filter((r) => r.path === '/lm').at(-1)!;
    assert.equal(last.headers['if-modified-since'], 'Wed, 01 Jan 2025 00:00:00 GMT');
  });
});

describe('caps', () => {
  test('a 6 MB page is too large (5 MiB cap), a streamed 8 MB one too; the fetcher works after', async () => {
    const { f } = fetcher();
    await rejectsWith(f.get(web.url('big.example', '/huge')), 'too-large');
    await rejectsWith(f.get(web.url('big.example', '/stream')), 'too-large');
    await rejectsWith(f.get(web.url('big.example', '/small'), { maxBytes: 4 }), 'too-large');
    const ok = await f.get(web.url('big.example', '/small'));
    assert.equal(ok.text, '<p>small</p>');
    assert.equal(f.stats().errors['too-large'], 3);
    assert.ok(f.stats().bytes < 5 * MB);
  });

  test('a slow page (2 s) against a 300 ms cap is a timeout; the host is usable after', async () => {
    const { f } = fetcher({ timeoutMs: 300 });
    const err = await rejectsWith(f.get(web.url('big.example', '/slow')), 'timeout');
    assert.match(err.message, /300 ms/);
    assert.equal((await f.get(web.url('big.example', '/small'))).text, '<p>small</p>');
    assert.equal(f.stats().errors.timeout, 1);
  });
});

describe('redirects, charsets, refusals', () => {
  test('a redirect chain across hosts is followed; finalUrl is the last hop', async () => {
    const { f } = fetcher();
    const page = await f.get(web.url('hop.example', '/r1'));
    assert.equal(page.text, 'landed');
    assert.equal(page.url, web.url('hop.example', '/r1'));
    assert.equal(page.finalUrl, web.url('land.example', '/r3'));
    assert.equal(web.hits('land.example', '/robots.txt') >= 1, true, 'robots.txt of the new host asked too');
  });

  test('a redirect loop stops after 5 redirects', async () => {
    const { f } = fetcher();
    const before = web.hits('hop.example', '/loop');
    const err = await rejectsWith(f.get(web.url('hop.example', '/loop')), 'network');
    assert.match(err.message, /more than 5 redirects/);
    assert.equal(web.hits('hop.example', '/loop') - before, 6);
  });

  test('a redirect to a never-scrape host or a disallowed path is refused before the request', async () => {
    const { f, calls } = fetcher();
    await rejectsWith(f.get(web.url('hop.example', '/to-li')), 'robots');
    assert.ok(!calls.some((c) => c.includes('linkedin')));
    await rejectsWith(f.get(web.url('hop.example', '/to-blocked')), 'robots');
    assert.equal(web.hits('blocked.example', '/private/page'), 0);
  });

  test('text decoded by the charset of the header, of the page, UTF-8 by default', async () => {
    const { f } = fetcher();
    assert.equal((await f.get(web.url('latin.example', '/header'))).text, '<p>Grüße aus Köln, café</p>');
    assert.match((await f.get(web.url('latin.example', '/meta'))).text, /Zürich/);
    assert.equal((await f.get(web.url('latin.example', '/utf8'))).text, 'naïve ✓');
  });

  test('never-scrape hosts: refused without any request, whatever robots.txt says', async () => {
    const { f, calls } = fetcher();
    for (const url of ['https://www.linkedin.com/company/acme', 'https://linkedin.com/in/x', 'https://x.com/acme']) {
      const err = await rejectsWith(f.get(url), 'robots');
      assert.match(err.message, /never-scrape/);
    }
    assert.equal(await f.allowed('https://m.facebook.com/acme'), false);
    assert.deepEqual(calls, []);
    assert.equal(f.stats().robotsRefused, 3);
    // a name that only ends the same way is not on the list
    assert.equal(await f.allowed(web.url('notlinkedin.com', '/')), true);
  });

  test("the kernel's refusal is 'denied'", async () => {
    const wf = webFetch(web.port, { deny: ['secret.example'] });
    const f = new Fetcher(wf.fetch, memStore(), { minIntervalMs: 0 });
    const err = await rejectsWith(f.get(web.url('secret.example', '/')), 'denied');
    assert.match(err.message, /network grant/);
    assert.equal(web.hits('secret.example'), 0);
    assert.equal(f.stats().errors.denied, 1);
  });

  test('error statuses: 404 is http with its status, 429 carries Retry-After; an image is refused by type', async () => {
    const { f } = fetcher();
    const e404 = await rejectsWith(f.get(web.url('open.example', '/missing')), 'http');
    assert.equal(e404.status, 404);
    const e429 = await rejectsWith(f.get(web.url('open.example', '/busy')), 'http');
    assert.equal(e429.status, 429);
    assert.equal(e429.retryAfterMs, 120_000);
    await rejectsWith(f.get(web.url('open.example', '/img.png')), 'type');
    await rejectsWith(f.get('ftp://open.example/x'), 'parse');
    assert.equal(f.stats().errors.http, 2);
  });
});
