/**
 * The network tools (runtime/tools/builtin/web.ts) over a real HandFetch and real HTTP servers on
 * 127.0.0.1: names (`site.test`, `other.test`, `search.test`) resolve there through an injected
 * resolver, and the grant names the address too (HandFetch refuses a name that resolves to
 * loopback unless the address is granted). Each call goes as the registry makes it: the input
 * checked against the tool's schema, `check` for a non-admin caller, `run`, the output against
 * its schema.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { HandFetch, type Resolver } from '../../../runtime/capabilities/fetch.ts';
import { normalizeNetwork } from '../../../runtime/core/network.ts';
import { createAjv } from '../../../runtime/core/ajv.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { AuditEvent } from '../../../runtime/audit/types.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import type { ToolCaller, ToolDefinition } from '../../../runtime/tools/types.ts';
import { type SearchConfig, webTools } from '../../../runtime/tools/builtin/web.ts';

interface Seen {
  url: string;
  host: string;
  headers: IncomingMessage['headers'];
}

const seen: Seen[] = [];
let server: Server;
let port = 0;
const audit: AuditEvent[] = [];
let net: HandFetch;
let search: SearchConfig | undefined;
const secrets = new Map<string, string>();
let tools: Map<string, ToolDefinition>;

const PARAGRAPH =
  'Greenhouses keep plants warm by trapping the heat of the sun. A small controller reads the temperature and ' +
  'the humidity every minute and opens the vents when the air gets too warm, so the plants do not cook. ';

const ARTICLE = `<!doctype html>
<html lang="en"><head>
  <title>Keeping a greenhouse warm | Garden Site</title>
  <meta name="author" content="Ada Gardener">
  <script>window.tracker = "SCRIPT-MARKER";</script>
  <style>.x { color: red } /* STYLE-MARKER */</style>
</head><body>
  <nav><a href="/home">NAV-HOME</a> <a href="/shop">NAV-SHOP</a></nav>
  <article>
    <h1>Keeping a greenhouse warm</h1>
    <p>${PARAGRAPH}See <a href="/guides/vents?x=1">the vent guide</a> for the details.</p>
    <p>${PARAGRAPH}</p>
    <p>${PARAGRAPH}</p>
    <p>${PARAGRAPH}<img src="img/sensor.png" alt="a sensor"></p>
  </article>
  <script>document.write("SCRIPT-TWO")</script>
</body></html>`;

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
  seen.push({ url: req.url ?? '', host: String(req.headers.host), headers: req.headers });
  const send = (status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, ...extra });
    res.end(body);
  };
  switch (url.pathname) {
    case '/article':
      return send(200, 'text/html; charset=utf-8', ARTICLE);
    case '/tiny':
      return send(
        200,
        'text/html',
        '<html><head><title>Tiny</title><style>b{}</style></head><body><nav>NAV</nav><p>Just <a href="x/y">one</a> line.</p><script>S()</script></body></html>',
      );
    case '/away':
      res.writeHead(302, { location: `http://other.test:${port}/secret` });
      return void res.end();
    case '/hop':
      res.writeHead(301, { location: '/plain' });
      return void res.end();
    case '/plain':
      return send(200, 'text/plain; charset=utf-8', 'just text\nsecond line — ünïcode');
    case '/data.json':
      return send(200, 'application/json', '{"a":[1,2,3]}');
    case '/paper.pdf':
      return send(200, 'application/pdf', Buffer.from('%PDF-1.7\n%\u00e2\u00e3\n1 0 obj', 'latin1'));
    case '/bytes':
      return send(200, 'application/octet-stream', Buffer.from([0, 1, 2, 250, 251, 255]));
    case '/latin':
      return send(200, 'text/plain; charset=iso-8859-1', Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    case '/hold':
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.write('partial');
    case '/long':
      return send(
        200,
        'text/html',
        `<html><head><title>Long</title></head><body><article>${`<p>${PARAGRAPH}</p>`.repeat(400)}</article></body></html>`,
      );
    case '/many':
      return send(
        200,
        'text/html',
        `<html><head><title>Many</title></head><body><nav>NAV-MANY</nav><div>${'<span>w</span> '.repeat(31_000)}</div><p>END-MARKER</p></body></html>`,
      );
    case '/big':
      return send(200, 'text/plain', 'abcdefghij'.repeat(20_000));
    case '/echo': {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () =>
        send(201, 'application/json', JSON.stringify({ method: req.method, body, auth: req.headers['x-demo'] }), {
          'x-reply': 'yes',
        }),
      );
      return;
    }
    case '/searx': {
      if (url.searchParams.get('format') !== 'json') return send(403, 'text/html', 'Forbidden');
      const q = url.searchParams.get('q');
      return send(
        200,
        'application/json',
        JSON.stringify({
          query: q,
          results: Array.from({ length: 8 }, (_, i) => ({
            title: `Result ${i} for ${q}`,
            url: `https://example.org/${i}`,
            content: `snippet ${i}`,
            engine: i % 2 ? 'duckduckgo' : 'wikipedia',
          })),
        }),
      );
    }
    case '/brave': {
      if (req.headers['x-subscription-token'] !== 'brave-key')
        return send(401, 'application/json', '{"type":"ErrorResponse","error":{"code":"SUBSCRIPTION_TOKEN_INVALID"}}');
      const q = url.searchParams.get('q');
      return send(
        200,
        'application/json',
        JSON.stringify({
          type: 'search',
          web: {
            type: 'search',
            results: [
              { title: `Brave one ${q}`, url: 'https://a.example/', description: 'the <strong>first</strong> result' },
              { title: 'Brave two', url: 'https://b.example/', description: 'second' },
              { title: 'Brave three', url: 'https://c.example/', description: 'third' },
            ],
          },
        }),
      );
    }
    default:
      return send(404, 'text/plain', 'not here');
  }
}

const resolve: Resolver = async (name) => {
  if (['site.test', 'other.test', 'search.test'].includes(name)) return [{ address: '127.0.0.1', family: 4 }];
  throw Object.assign(new Error('no such name'), { code: 'ENOTFOUND' });
};

before(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  net = new HandFetch({
    audit: {
      record: async (e) => {
        audit.push(e);
      },
    },
    resolve,
  });
  await net.start();
  const defs = webTools({ fetch: net, search: () => search, secret: async (n) => secrets.get(n) });
  tools = new Map(defs.map((d) => [d.name, d]));
});

after(async () => {
  await net.stop();
  await new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
});

function hand(hosts: string[]): ToolCaller {
  return {
    actor: 'hand:reader',
    hand: 'reader',
    admin: false,
    grants: { network: normalizeNetwork(hosts, 'test') } as Capabilities,
    folder: '/nonexistent',
  };
}

/** the site and the search host by name, with the loopback address they resolve to */
const granted = (): ToolCaller => hand([`site.test:${port}`, `search.test:${port}`, `127.0.0.1:${port}`]);
const admin: ToolCaller = {
  actor: 'cli',
  admin: true,
  grants: { network: normalizeNetwork([], 'test') } as Capabilities,
  folder: '/nonexistent',
};

const ajv = createAjv('strict');

/** a call as the registry makes it: schema, check (not for an admin), run, output schema */
async function call<O = Record<string, unknown>>(
  name: string,
  input: unknown,
  caller: ToolCaller = granted(),
  limits: { maxOutputBytes?: number; signal?: AbortSignal } = {},
): Promise<O> {
  const def = tools.get(name)!;
  const valid = ajv.compile(def.inputSchema);
  if (!valid(input)) throw new TalonError('TOOL_BAD_INPUT', JSON.stringify(valid.errors));
  if (!caller.admin) def.check?.(input, caller);
  const out = await def.run(input, {
    caller,
    signal: limits.signal ?? new AbortController().signal,
    timeoutMs: def.timeoutMs ?? 30_000,
    maxOutputBytes: limits.maxOutputBytes ?? def.maxOutputBytes ?? 65536,
  });
  const check = ajv.compile(def.outputSchema!);
  assert.ok(check(out), `${name}'s output fails its schema: ${JSON.stringify(check.errors)}`);
  return out as O;
}

const code =
  (c: string, re?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof TalonError, `not a TalonError: ${e}`);
    assert.equal(e.code, c, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };

const site = (path: string) => `http://site.test:${port}${path}`;

test('the three tools: names, annotations, schemas the strict ajv compiles', () => {
  assert.deepEqual([...tools.keys()].sort(), ['http.request', 'web.read', 'web.search']);
  const http = tools.get('http.request')!;
  assert.equal(http.annotations.readOnlyHint, false);
  assert.equal(http.annotations.destructiveHint, false);
  assert.equal(http.annotations.openWorldHint, true);
  for (const n of ['web.read', 'web.search']) {
    const a = tools.get(n)!.annotations;
    assert.deepEqual([a.readOnlyHint, a.idempotentHint, a.openWorldHint, a.destructiveHint], [true, true, true, false]);
  }
});

test('web.read: the article as Markdown, links absolute, nav, scripts and styles gone', async () => {
  const out = await call<{ url: string; title: string; byline?: string; text: string; truncated: boolean }>(
    'web.read',
    { url: site('/article') },
  );
  assert.equal(out.url, site('/article'));
  assert.match(out.title, /Keeping a greenhouse warm/);
  assert.equal(out.byline, 'Ada Gardener');
  assert.equal(out.truncated, false);
  assert.match(out.text, /Greenhouses keep plants warm/);
  assert.ok(out.text.includes(`[the vent guide](${site('/guides/vents?x=1')})`), out.text.slice(0, 600));
  assert.ok(out.text.includes(site('/img/sensor.png')), 'the image source is absolute');
  for (const marker of ['NAV-HOME', 'NAV-SHOP', 'SCRIPT-MARKER', 'SCRIPT-TWO', 'STYLE-MARKER', 'tracker'])
    assert.ok(!out.text.includes(marker), `${marker} is in the text`);
  assert.equal(seen.at(-1)?.host, `site.test:${port}`, 'the Host header is the name, not the address');
});

test('web.read: plain text format, maxChars cuts', async () => {
  const out = await call<{ text: string; format: string; truncated: boolean }>('web.read', {
    url: site('/article'),
    format: 'text',
  });
  assert.equal(out.format, 'text');
  assert.ok(!out.text.includes('](http'), 'no Markdown links in text');
  assert.ok(!out.text.includes('<p>'));
  assert.match(out.text, /the vent guide for the details\.\n\nGreenhouses/);
  const cut = await call<{ text: string; truncated: boolean }>('web.read', { url: site('/article'), maxChars: 100 });
  assert.equal(cut.text.length, 100);
  assert.equal(cut.truncated, true);
});

test('web.read: a long article is cut at maxChars (what would be cut is not converted)', async () => {
  for (const format of ['markdown', 'text']) {
    const out = await call<{ text: string; truncated: boolean }>('web.read', {
      url: site('/long'),
      maxChars: 1000,
      format,
    });
    assert.equal(out.text.length, 1000);
    assert.equal(out.truncated, true);
    assert.ok(out.text.startsWith('Greenhouses keep plants warm'), out.text.slice(0, 80));
  }
  const whole = await call<{ text: string; truncated: boolean }>('web.read', { url: site('/long'), maxChars: 200_000 });
  assert.equal(whole.truncated, false);
  assert.ok(whole.text.length > PARAGRAPH.length * 390, `${whole.text.length}`);
});

test('web.read: a page with more elements than Readability is given gets the simple extraction', async () => {
  const out = await call<{ title: string; text: string }>('web.read', {
    url: site('/many'),
    format: 'text',
    maxChars: 200_000,
  });
  assert.equal(out.title, 'Many');
  assert.match(out.text, /w w w/);
  assert.match(out.text, /END-MARKER$/);
  assert.ok(!out.text.includes('NAV-MANY'));
});

test('web.read: a page with hardly any text falls back to its body, cleaned', async () => {
  const out = await call<{ title: string; text: string }>('web.read', { url: site('/tiny') });
  assert.equal(out.title, 'Tiny');
  assert.match(out.text, /Just \[one\]\(http:\/\/site\.test:\d+\/x\/y\) line\./);
  assert.ok(!/NAV|S\(\)|b\{\}/.test(out.text), out.text);
});

test('web.read: text/plain and JSON pass through; a redirect is followed and the final URL reported', async () => {
  const plain = await call<{ url: string; text: string; title: string }>('web.read', { url: site('/hop') });
  assert.equal(plain.url, site('/plain'));
  assert.equal(plain.text, 'just text\nsecond line — ünïcode');
  assert.equal(plain.title, '');
  const json = await call<{ text: string }>('web.read', { url: site('/data.json') });
  assert.equal(json.text, '{"a":[1,2,3]}');
});

test('web.read: a PDF or other binary type is a TOOL_FAILED that names the type', async () => {
  await assert.rejects(call('web.read', { url: site('/paper.pdf') }), code('TOOL_FAILED', /application\/pdf/));
  await assert.rejects(call('web.read', { url: site('/bytes') }), code('TOOL_FAILED', /application\/octet-stream/));
  await assert.rejects(call('web.read', { url: site('/nope') }), code('TOOL_FAILED', /HTTP 404/));
});

test('a redirect to a host outside the grant is refused by HandFetch, and nothing reaches that host', async () => {
  const before = seen.length;
  await assert.rejects(call('web.read', { url: site('/away') }), (e: unknown) => {
    code('CAPABILITY_DENIED', /other\.test/)(e);
    assert.equal(((e as TalonError).details as { subject?: string }).subject, `other.test:${port}`);
    return true;
  });
  await assert.rejects(call('http.request', { url: site('/away') }), code('CAPABILITY_DENIED'));
  assert.deepEqual(
    seen.slice(before).map((s) => s.url),
    ['/away', '/away'],
    'only the redirecting page was asked',
  );
});

test('check: a host outside the grant is refused before any connection; a non-http URL is bad input', async () => {
  const before = seen.length;
  const auditBefore = audit.length;
  for (const name of ['http.request', 'web.read']) {
    await assert.rejects(call(name, { url: `http://other.test:${port}/secret` }), (e: unknown) => {
      code('CAPABILITY_DENIED', /other\.test/)(e);
      assert.deepEqual((e as TalonError).details, { action: 'net.fetch', subject: `other.test:${port}` });
      return true;
    });
    // the same host on a port the grant does not name
    await assert.rejects(call(name, { url: `http://site.test:${port + 1}/` }), code('CAPABILITY_DENIED'));
    await assert.rejects(call(name, { url: 'file:///etc/passwd' }), code('TOOL_BAD_INPUT', /file:/));
    await assert.rejects(call(name, { url: 'not a url' }), code('TOOL_BAD_INPUT'));
  }
  await assert.rejects(
    call('web.read', { url: site('/article') }, hand([])),
    code('CAPABILITY_DENIED', /no network grant/),
  );
  assert.equal(seen.length, before, 'the server saw no request');
  assert.equal(audit.length, auditBefore, 'no net.fetch went out');
});

test('run without check (defence in depth): HandFetch refuses the ungranted host itself', async () => {
  const def = tools.get('http.request')!;
  const before = seen.length;
  await assert.rejects(
    def.run(
      { url: `http://other.test:${port}/` },
      { caller: granted(), signal: new AbortController().signal, timeoutMs: 5000, maxOutputBytes: 65536 },
    ),
    code('CAPABILITY_DENIED'),
  );
  assert.equal(seen.length, before);
});

test('an admin reaches public hosts only: `*` does not cover this device', async () => {
  const before = seen.length;
  await assert.rejects(call('http.request', { url: site('/plain') }, admin), code('CAPABILITY_DENIED', /127\.0\.0\.1/));
  assert.equal(seen.length, before);
});

test('http.request: method, headers, body; status, headers, final URL; audited as net.fetch for the Hand', async () => {
  const out = await call<{ status: number; headers: Record<string, string>; body: string; encoding: string }>(
    'http.request',
    { url: site('/echo'), method: 'POST', headers: { 'x-demo': 'abc', 'content-type': 'text/plain' }, body: 'hello' },
  );
  assert.equal(out.status, 201);
  assert.equal(out.headers['x-reply'], 'yes');
  assert.equal(out.encoding, 'text');
  assert.deepEqual(JSON.parse(out.body), { method: 'POST', body: 'hello', auth: 'abc' });
  const entry = audit.findLast((e) => e.action === 'net.fetch');
  assert.equal(entry?.actor, 'hand:reader');
  assert.equal(entry?.subject, `site.test:${port}`);

  const hop = await call<{ url: string; body: string }>('http.request', { url: site('/hop') });
  assert.equal(hop.url, site('/plain'));
  assert.equal(hop.body, 'just text\nsecond line — ünïcode');

  const head = await call<{ status: number; body: string }>('http.request', { url: site('/plain'), method: 'HEAD' });
  assert.deepEqual([head.status, head.body], [200, '']);

  await assert.rejects(
    call('http.request', { url: site('/echo'), method: 'GET', body: 'x' }),
    code('TOOL_BAD_INPUT', /cannot have a body/),
  );
});

test('http.request: a binary body comes back as base64', async () => {
  const out = await call<{ body: string; encoding: string }>('http.request', { url: site('/bytes') });
  assert.equal(out.encoding, 'base64');
  assert.deepEqual([...Buffer.from(out.body, 'base64')], [0, 1, 2, 250, 251, 255]);
  const pdf = await call<{ body: string; encoding: string; truncated: boolean }>(
    'http.request',
    { url: site('/paper.pdf') },
    granted(),
    { maxOutputBytes: 1024 },
  );
  assert.equal(pdf.encoding, 'base64');
  assert.equal(Buffer.from(pdf.body, 'base64').toString('latin1').slice(0, 8), '%PDF-1.7');
});

test('http.request: a body longer than the output allows is cut, truncated: true', async () => {
  const out = await call<{ body: string; truncated: boolean }>('http.request', { url: site('/big') }, granted(), {
    maxOutputBytes: 4096,
  });
  assert.equal(out.truncated, true);
  assert.ok(out.body.length > 3000, `${out.body.length}`);
  assert.ok(JSON.stringify(out).length <= 4096, 'the output fits the cap: the registry need not cut it');
  assert.equal(out.body.slice(0, 20), 'abcdefghijabcdefghij');
  const whole = await call<{ body: string; truncated: boolean }>('http.request', { url: site('/big') }, granted(), {
    maxOutputBytes: 300_000,
  });
  assert.equal(whole.truncated, false);
  assert.equal(whole.body.length, 200_000);
  // the grant's maxResponseBytes cuts too: what came before the cap is kept
  const small = hand([`site.test:${port}`, `127.0.0.1:${port}`]);
  small.grants = {
    network: normalizeNetwork({ hosts: [`site.test:${port}`, `127.0.0.1:${port}`], maxResponseBytes: 1024 }, 't'),
  } as Capabilities;
  await assert.rejects(
    call('http.request', { url: site('/big') }, small, { maxOutputBytes: 300_000 }),
    code('NET_TOO_LARGE'),
    'a Content-Length beyond the grant is refused up front',
  );
});

test('web.search: SearXNG JSON, limit, language and time range passed on', async () => {
  search = { provider: 'searxng', url: `http://search.test:${port}/searx`, maxResults: 5 };
  try {
    const out = await call<{ provider: string; results: Array<Record<string, string>> }>('web.search', {
      query: 'greenhouse vents',
      language: 'de',
      timeRange: 'week',
    });
    assert.equal(out.provider, 'searxng');
    assert.equal(out.results.length, 5, 'capped at maxResults');
    assert.deepEqual(out.results[1], {
      title: 'Result 1 for greenhouse vents',
      url: 'https://example.org/1',
      snippet: 'snippet 1',
      engine: 'duckduckgo',
    });
    const q = new URL(seen.at(-1)!.url, 'http://x');
    assert.equal(q.searchParams.get('format'), 'json');
    assert.equal(q.searchParams.get('language'), 'de');
    assert.equal(q.searchParams.get('time_range'), 'week');
    const two = await call<{ results: unknown[] }>('web.search', { query: 'x', limit: 2 });
    assert.equal(two.results.length, 2);
  } finally {
    search = undefined;
  }
});

test('web.search: Brave with the key from the sealed secret; a wrong or missing key is a clear failure', async () => {
  search = { provider: 'brave', url: `http://search.test:${port}/brave`, keySecret: 'brave', maxResults: 10 };
  try {
    await assert.rejects(call('web.search', { query: 'q' }), code('TOOL_FAILED', /talon secrets set brave/));
    secrets.set('brave', 'wrong');
    await assert.rejects(call('web.search', { query: 'q' }), code('TOOL_FAILED', /HTTP 401.*refused/));
    secrets.set('brave', 'brave-key');
    const out = await call<{ provider: string; results: Array<Record<string, string>> }>('web.search', {
      query: 'pumps',
      limit: 2,
      timeRange: 'day',
    });
    assert.equal(out.provider, 'brave');
    assert.deepEqual(out.results, [
      { title: 'Brave one pumps', url: 'https://a.example/', snippet: 'the first result' },
      { title: 'Brave two', url: 'https://b.example/', snippet: 'second' },
    ]);
    const last = seen.at(-1)!;
    assert.equal(last.headers['x-subscription-token'], 'brave-key');
    const q = new URL(last.url, 'http://x');
    assert.equal(q.searchParams.get('freshness'), 'pd');
    assert.equal(q.searchParams.get('count'), '2');
  } finally {
    search = undefined;
    secrets.clear();
  }
});

test('web.search: not configured says to set tools.search; the search host must be in the grant', async () => {
  await assert.rejects(call('web.search', { query: 'q' }), code('TOOL_FAILED', /tools\.search/));
  search = { provider: 'searxng', url: `http://search.test:${port}/searx`, maxResults: 5 };
  try {
    const before = seen.length;
    await assert.rejects(
      call('web.search', { query: 'q' }, hand([`site.test:${port}`, `127.0.0.1:${port}`])),
      (e: unknown) => {
        code('CAPABILITY_DENIED', /search\.test/)(e);
        assert.deepEqual((e as TalonError).details, { action: 'net.fetch', subject: `search.test:${port}` });
        return true;
      },
    );
    assert.equal(seen.length, before);
  } finally {
    search = undefined;
  }
});

test('a charset other than UTF-8 is decoded', async () => {
  const out = await call<{ body: string }>('http.request', { url: site('/latin') });
  assert.equal(out.body, 'café');
});

test('a call whose signal aborts stops (before the request, or while reading) and fails with the reason', async () => {
  const ac = new AbortController();
  const reason = new TalonError('TOOL_TIMEOUT', 'stopped');
  ac.abort(reason);
  await assert.rejects(
    call('http.request', { url: site('/big') }, granted(), { signal: ac.signal }),
    (e) => e === reason,
  );

  const mid = new AbortController();
  const reason2 = new TalonError('TOOL_TIMEOUT', 'stopped while reading');
  const running = call('web.read', { url: site('/hold') }, granted(), { signal: mid.signal });
  // the body has begun and will not end: only the abort ends the call
  while (!seen.some((s) => s.url === '/hold')) await new Promise((r) => setImmediate(r));
  mid.abort(reason2);
  await assert.rejects(running, (e) => e === reason2);
  assert.equal(net.open(), 0, 'the request was cancelled, not left open');
});
