/**
 * The kernel side of ctx.fetch (runtime/capabilities/fetch.ts), called directly: what a request
 * carries, how redirects change it, DNS answers it refuses, the limits, and what it audits.
 * Real HTTP servers on 127.0.0.1; DNS through an injected resolver. The same path on real
 * workers is test/runtime/supervisor/network.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { HandFetch, type FetchResponse, type Resolver } from '../../../runtime/capabilities/fetch.ts';
import { normalizeNetwork } from '../../../runtime/core/network.ts';
import type { AuditEvent } from '../../../runtime/audit/types.ts';
import type { NetworkCapability } from '../../../runtime/core/hand.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

async function server(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<{ port: number; seen: Seen[]; close: () => Promise<void>; base: string }> {
  const seen: Seen[] = [];
  const s: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  return {
    port,
    seen,
    base: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

function service(
  opts: { resolve?: Resolver; maxOpenPerHand?: number; maxRequestBytes?: number; maxRedirects?: number } = {},
) {
  const audit: AuditEvent[] = [];
  const net = new HandFetch({
    audit: {
      record: async (e) => {
        audit.push(e);
      },
    },
    ...opts,
  });
  return { net, audit };
}

const caller = (network: NetworkCapability) => ({ name: 'h', network: normalizeNetwork(network, 'test') });

async function text(r: FetchResponse): Promise<string> {
  const parts: Buffer[] = [];
  for (;;) {
    const c = await r.body!.read();
    if (c === null) break;
    parts.push(c);
  }
  return Buffer.concat(parts).toString('utf8');
}

const code = (c: string) => (e: unknown) => e instanceof TalonError && e.code === c;

test('request headers: hop-by-hop, Host and proxy headers are dropped; defaults are added', async () => {
  const s = await server((_q, r) => r.end('ok'));
  const { net } = service();
  await net.start();
  try {
    const r = await net.request(caller([`127.0.0.1:${s.port}`]), {
      url: `${s.base}/h?q=1`,
      headers: [
        ['Host', 'evil.example'],
        ['connection', 'upgrade'],
        ['upgrade', 'websocket'],
        ['proxy-authorization', 'x'],
        ['transfer-encoding', 'chunked'],
        ['x-keep', 'yes'],
      ],
    });
    assert.equal(await text(r), 'ok');
    const h = s.seen[0]!.headers;
    assert.equal(h.host, `127.0.0.1:${s.port}`);
    assert.equal(h['x-keep'], 'yes');
    assert.equal(h.upgrade, undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.equal(h['transfer-encoding'], undefined);
    assert.notEqual(h.connection, 'upgrade');
    assert.equal(h['accept-encoding'], 'gzip, deflate, br');
    assert.equal(s.seen[0]!.url, '/h?q=1');
    await assert.rejects(
      net.request(caller([`127.0.0.1:${s.port}`]), { url: s.base, headers: [['bad name', 'x']] }),
      code('BAD_REQUEST'),
    );
    await assert.rejects(
      net.request(caller([`127.0.0.1:${s.port}`]), { url: s.base, headers: [['x', 'a\r\nb']] }),
      code('BAD_REQUEST'),
    );
  } finally {
    await net.stop();
    await s.close();
  }
});

test('redirects: 303 and a POST 302 become GET without a body, 307 keeps both; credentials stay on their origin', async () => {
  const other = await server((_q, r) => r.end('other'));
  const s = await server((req, res) => {
    const go = (status: number, location: string) => {
      res.writeHead(status, { location });
      res.end();
    };
    if (req.url === '/303') go(303, '/done');
    else if (req.url === '/302') go(302, '/done');
    else if (req.url === '/307') go(307, '/done');
    else if (req.url === '/cross') go(302, `${other.base}/x`);
    else if (req.url === '/bad') go(302, 'http://[not a url');
    else res.end(`done ${req.method}`);
  });
  const { net } = service();
  await net.start();
  const c = caller([`127.0.0.1:${s.port}`, `127.0.0.1:${other.port}`]);
  const post = (path: string) =>
    net.request(c, {
      url: `${s.base}${path}`,
      method: 'POST',
      body: new TextEncoder().encode('payload'),
      headers: [
        ['content-type', 'text/plain'],
        ['authorization', 'Bearer t'],
        ['cookie', 'a=b'],
      ],
    });
  try {
    assert.equal(await text(await post('/303')), 'done GET');
    assert.deepEqual([s.seen[1]!.method, s.seen[1]!.body, s.seen[1]!.headers['content-type']], ['GET', '', undefined]);
    assert.equal(await text(await post('/302')), 'done GET');
    const r307 = await post('/307');
    assert.equal(await text(r307), 'done POST');
    assert.deepEqual(
      [s.seen[5]!.method, s.seen[5]!.body, s.seen[5]!.headers.authorization],
      ['POST', 'payload', 'Bearer t'],
      'same origin: credentials kept',
    );
    assert.equal(r307.redirected, true);
    assert.equal(r307.url, `${s.base}/done`);
    const cross = await post('/cross');
    assert.equal(await text(cross), 'other');
    assert.equal(
      other.seen[0]!.headers.authorization,
      undefined,
      'another origin does not get the Authorization header',
    );
    assert.equal(other.seen[0]!.headers.cookie, undefined);
    await assert.rejects(net.request(c, { url: `${s.base}/303`, redirect: 'error' }), code('NET_REDIRECT'));
    const manual = await net.request(c, { url: `${s.base}/303`, redirect: 'manual' });
    assert.equal(manual.status, 303);
    assert.equal(manual.headers.find(([n]) => n === 'location')?.[1], '/done');
    manual.body?.cancel();
    await assert.rejects(net.request(c, { url: `${s.base}/bad` }), code('NET_REDIRECT'));
  } finally {
    await net.stop();
    await s.close();
    await other.close();
  }
});

test('at most maxRedirects hops', async () => {
  const s = await server((req, res) => {
    const n = Number(req.url!.slice(1));
    res.writeHead(302, { location: `/${n + 1}` });
    res.end();
  });
  const { net } = service({ maxRedirects: 3 });
  await net.start();
  try {
    await assert.rejects(
      net.request(caller([`127.0.0.1:${s.port}`]), { url: `${s.base}/0` }),
      (e: TalonError) => e.code === 'NET_REDIRECT' && /more than 3 redirects/.test(e.message),
    );
    assert.equal(s.seen.length, 4, 'the first request and three redirects');
  } finally {
    await net.stop();
    await s.close();
  }
});

test('URLs: http and https only, absolute, no credentials', async () => {
  const { net } = service();
  await net.start();
  const c = caller(['*', '0.0.0.0/0']);
  for (const url of [
    'ftp://example.com/',
    'file:///etc/passwd',
    '/relative',
    'http://user:pw@example.com/',
    'not a url',
    '',
  ]) {
    await assert.rejects(net.request(c, { url }), code('BAD_REQUEST'), url);
  }
  await assert.rejects(net.request(c, { url: 'http://example.com/', method: 'CONNECT' }), code('BAD_REQUEST'));
  await assert.rejects(
    net.request(c, { url: 'http://example.com/', method: 'GET', body: new Uint8Array(1) }),
    code('BAD_REQUEST'),
  );
  await net.stop();
});

test('DNS: a failure is NET_DNS; an answer with any address the grant does not allow is refused', async () => {
  const answers: Record<string, string[]> = {
    'mixed.test': ['93.184.216.34', '127.0.0.1'],
    'lan.test': ['192.168.1.9'],
    'empty.test': [],
  };
  const resolve: Resolver = async (name) => {
    if (name === 'gone.test') throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    return (answers[name] ?? []).map((address) => ({ address, family: 4 }));
  };
  const { net } = service({ resolve });
  await net.start();
  const c = caller(['*.test']);
  try {
    await assert.rejects(
      net.request(c, { url: 'http://gone.test/' }),
      (e: TalonError) => e.code === 'NET_DNS' && /ENOTFOUND/.test(e.message),
    );
    await assert.rejects(net.request(c, { url: 'http://empty.test/' }), code('NET_DNS'));
    await assert.rejects(
      net.request(c, { url: 'http://mixed.test/' }),
      (e: TalonError) =>
        e.code === 'CAPABILITY_DENIED' &&
        /127\.0\.0\.1/.test(e.message) &&
        (e.details as { subject?: string }).subject === 'mixed.test:80',
    );
    await assert.rejects(
      net.request(c, { url: 'http://lan.test/' }),
      (e: TalonError) => e.code === 'CAPABILITY_DENIED' && /192\.168\.1\.9/.test(e.message),
    );
    assert.equal(net.open(), 0);
  } finally {
    await net.stop();
  }
});

test('limits: the request body, the open requests per Hand; release() and stop() end what is open', async () => {
  let hold: ServerResponse | null = null;
  const s = await server((req, res) => {
    if (req.url === '/hold') {
      res.write('a');
      hold = res;
    } else res.end('ok');
  });
  const { net, audit } = service({ maxOpenPerHand: 1, maxRequestBytes: 10 });
  await net.start();
  const c = caller([`127.0.0.1:${s.port}`]);
  try {
    await assert.rejects(
      net.request(c, { url: s.base, method: 'POST', body: new Uint8Array(11) }),
      code('PAYLOAD_TOO_LARGE'),
    );
    const first = await net.request(c, { url: `${s.base}/hold` });
    await assert.rejects(net.request(c, { url: s.base }), code('QUOTA_EXCEEDED'));
    assert.equal((await first.body!.read())?.toString(), 'a');
    const waiting = first.body!.read();
    net.release('h');
    await assert.rejects(waiting, code('HAND_STOPPED'));
    assert.equal(net.open('h'), 0);
    const again = await net.request(c, { url: s.base });
    assert.equal(await text(again), 'ok');
    const last = await net.request(c, { url: `${s.base}/hold` });
    await net.stop();
    await assert.rejects(last.body!.read(), code('NOT_RUNNING'));
    await assert.rejects(net.request(c, { url: s.base }), code('NOT_RUNNING'));
    assert.ok(
      audit.some((e) => e.action === 'net.fetch' && e.decision === 'ok' && (e.detail as { bytes: number }).bytes === 2),
    );
  } finally {
    (hold as ServerResponse | null)?.destroy();
    await s.close();
  }
});

test('bodies: gzip is decoded, HEAD and 204 have none; each request is audited once, without its query string', async () => {
  const s = await server((req, res) => {
    if (req.url!.startsWith('/gz')) {
      res.setHeader('content-encoding', 'gzip');
      res.end(gzipSync('zipped text'));
    } else if (req.url === '/none') {
      res.statusCode = 204;
      res.end();
    } else res.end('plain');
  });
  const { net, audit } = service();
  await net.start();
  const c = caller([`127.0.0.1:${s.port}`]);
  try {
    const gz = await net.request(c, { url: `${s.base}/gz?token=secret` });
    assert.equal(await text(gz), 'zipped text');
    const head = await net.request(c, { url: `${s.base}/`, method: 'HEAD' });
    assert.equal(head.body, null);
    const none = await net.request(c, { url: `${s.base}/none` });
    assert.equal(none.status, 204);
    assert.equal(none.body, null);
    await net.stop();
    const entries = audit.filter((e) => e.action === 'net.fetch');
    assert.equal(entries.length, 3);
    assert.deepEqual(
      entries.map((e) => [e.actor, e.subject, e.decision]),
      Array(3).fill(['hand:h', `127.0.0.1:${s.port}`, 'ok']),
    );
    assert.equal((entries[0]!.detail as { path: string }).path, '/gz');
    assert.ok(!JSON.stringify(entries).includes('secret'), 'the query string is not audited');
    assert.equal((entries[0]!.detail as { status: number }).status, 200);
  } finally {
    await s.close();
  }
});

test('the kernel calls check what a worker sends', async () => {
  const { net } = service();
  await net.start();
  const svc = net.services();
  const hand = { name: 'h', grants: { network: normalizeNetwork(['example.com'], 'x') } } as Parameters<
    (typeof svc)['net.fetch']
  >[0];
  await assert.rejects(svc['net.fetch']!(hand, ['x', { url: 'http://example.com/' }]), code('BAD_REQUEST'));
  await assert.rejects(svc['net.fetch']!(hand, [1, null]), code('BAD_REQUEST'));
  await assert.rejects(
    svc['net.fetch']!(hand, [1, { url: 'http://example.com/', body: 'not bytes' }]),
    code('BAD_REQUEST'),
  );
  await assert.rejects(
    svc['net.fetch']!(hand, [1, { url: 'http://example.com/', redirect: 'sometimes' }]),
    code('BAD_REQUEST'),
  );
  await assert.rejects(svc['net.fetch']!(hand, [1, { url: 'http://other.example/' }]), code('CAPABILITY_DENIED'));
  await assert.rejects(svc['net.read']!(hand, [99]), code('NOT_FOUND'));
  assert.equal(await svc['net.cancel']!(hand, [99]), true);
  await net.stop();
});

test('connections are kept alive per origin and checked addresses: reused while the name resolves the same, never after it moves', async () => {
  const conns = { a: 0, b: 0 };
  const mk = (which: 'a' | 'b') =>
    createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(which));
    }).on('connection', () => conns[which]++);
  const a = mk('a');
  await new Promise<void>((r) => a.listen(0, '127.0.0.1', r));
  const port = (a.address() as { port: number }).port;
  const b = mk('b');
  await new Promise<void>((r) => b.listen(port, '127.0.0.2', r));
  let answer = '127.0.0.1';
  const { net } = service({ resolve: async () => [{ address: answer, family: 4 }] });
  await net.start();
  const c = caller(['svc.test', '127.0.0.0/8']);
  try {
    for (let i = 0; i < 3; i++)
      assert.equal(await text(await net.request(c, { url: `http://svc.test:${port}/` })), 'a');
    assert.equal(conns.a, 1, 'three requests in turn, one connection');
    answer = '127.0.0.2';
    assert.equal(await text(await net.request(c, { url: `http://svc.test:${port}/` })), 'b');
    assert.equal(conns.b, 1, 'the new answer got its own connection, not the pooled one');
    net.release('h');
    assert.equal(await text(await net.request(c, { url: `http://svc.test:${port}/` })), 'b');
    assert.equal(conns.b, 2, "a released Hand's connections are closed");
  } finally {
    await net.stop();
    for (const s of [a, b]) {
      s.closeAllConnections();
      s.close();
    }
  }
});
