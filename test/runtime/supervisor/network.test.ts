/**
 * The network capability on real workers (Node 26, bundled worker runtime): a Hand without a
 * raw grant has no network of its own (no --allow-net, and the SDK's guard answers first with
 * CAPABILITY_DENIED, audited), a raw grant gives it sockets, and ctx.fetch reaches exactly the
 * granted hosts through the kernel (runtime/capabilities/fetch.ts), with the kernel's DNS
 * pinned, every redirect checked, the body streamed and capped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createHttpsServer } from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HandFetch, type Resolver } from '../../../runtime/capabilities/fetch.ts';
import type { HandSpec, Harness } from '../../helpers/supervisor-harness.ts';
import { ROOT, startHarness, waitFor, waitState } from '../../helpers/supervisor-harness.ts';
import type { BusMessage } from '../../../runtime/bus/types.ts';

const sockets = new WeakMap<TcpServer, Set<import('node:net').Socket>>();
const listenTcp = async (): Promise<{ server: TcpServer; port: number; hits: () => number }> => {
  let hits = 0;
  const open = new Set<import('node:net').Socket>();
  const server = createTcpServer((s) => {
    hits++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.end();
  });
  sockets.set(server, open);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, hits: () => hits };
};

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const listenHttp = async (
  handler: Handler,
  host = '127.0.0.1',
  port = 0,
): Promise<{ server: HttpServer; port: number; hits: string[] }> => {
  const hits: string[] = [];
  const server = createHttpServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  return { server, port: (server.address() as { port: number }).port, hits };
};

const close = (s: TcpServer | HttpServer): Promise<void> =>
  new Promise((r) => {
    (s as HttpServer).closeAllConnections?.();
    for (const c of sockets.get(s) ?? []) c.destroy();
    s.close(() => r());
  });

test('no network grant: every kind of connection is refused with CAPABILITY_DENIED, audited, and the Hand keeps running', async () => {
  const tcp = await listenTcp();
  const web = await listenHttp((_q, r) => r.end('hello'));
  const udp: UdpSocket = createSocket('udp4');
  const udpGot: string[] = [];
  udp.on('message', (m) => udpGot.push(String(m)));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const settings = { tcpPort: tcp.port, httpPort: web.port, udpPort: udp.address().port };
  const h = await startHarness([{ name: 'closed', fixture: 'net-probe', settings }], { start: false });
  try {
    const results = await h.collect(`${ROOT}/net-probe/result`);
    const alive = await h.collect(`${ROOT}/net-probe/alive`);
    await h.sup.start();
    await waitFor('the probe result', () => results.length > 0, 30000);
    const r = JSON.parse(results[0]!.payload.toString()) as Record<string, { code: string; message: string }>;
    const kinds = [
      'netConnect',
      'esmNamedConnect',
      'createConnection',
      'socketConnect',
      'localhostName',
      'tlsConnect',
      'httpGet',
      'httpsGet',
      'http2Connect',
      'webSocket',
      'fetch',
      'udpSend',
      'dnsLookup',
      'dnsResolve',
      'dnsPromises',
      'listen',
    ];
    for (const k of kinds) assert.equal(r[k]?.code, 'CAPABILITY_DENIED', `${k}: ${JSON.stringify(r[k])}`);
    assert.equal(r.permissionNet?.code, 'false', "Node's permission model is the lock underneath: no --allow-net");
    assert.match(r.netConnect!.message, /ctx\.fetch/, 'the message says what to do instead');
    assert.match(r.netConnect!.message, /127\.0\.0\.1:\d+/);
    // nothing reached the servers
    assert.equal(tcp.hits(), 0);
    assert.deepEqual(web.hits, []);
    assert.deepEqual(udpGot, []);
    // still running, still working
    const before = alive.length;
    await waitFor('more alive messages', () => alive.length > before + 2);
    assert.equal(h.sup.status('closed').state, 'running');
    assert.ok(h.sup.status('closed').messages.denied >= kinds.length);
    const audit = await h.auditEntries();
    const denies = audit.filter(
      (e) => e.action === 'capability.check' && e.decision === 'deny' && e.actor === 'hand:closed',
    );
    const detail = (e: (typeof denies)[number]) => e.detail as { action?: string };
    assert.ok(
      denies.some((e) => detail(e).action === 'network.connect' && e.subject === `127.0.0.1:${tcp.port}`),
      'the TCP attempt, with its target',
    );
    assert.ok(
      denies.some((e) => detail(e).action === 'network.connect' && e.subject === `127.0.0.1:${web.port}`),
      'the HTTP attempt',
    );
    assert.ok(
      denies.some((e) => detail(e).action === 'network.udp'),
      'the UDP attempt',
    );
    assert.ok(
      denies.some((e) => detail(e).action === 'network.dns' && e.subject === 'localhost'),
      'the DNS attempt',
    );
    assert.ok(
      denies.some((e) => detail(e).action === 'network.listen'),
      'the listen attempt',
    );
  } finally {
    await h.close();
    await close(tcp.server);
    await close(web.server);
    udp.close();
  }
});

test('a Hand retrying in a loop is counted in full but cannot fill the audit log', async () => {
  const n = 2000;
  const h = await startHarness([{ name: 'flood', fixture: 'net-probe', settings: { flood: n } }], { start: false });
  try {
    const done = await h.collect(`${ROOT}/net-probe/flooded`);
    await h.sup.start();
    await waitFor('the flood', () => done.length > 0);
    assert.deepEqual(JSON.parse(done[0]!.payload.toString()), { refused: n });
    // the worker sends a few reports a second and the count of the rest; the kernel counts them all
    await waitFor('every refusal counted', () => h.sup.status('flood').messages.denied >= n);
    assert.equal(h.sup.status('flood').messages.denied, n);
    const entries = (await h.auditEntries()).filter((e) => e.actor === 'hand:flood' && e.decision === 'deny');
    assert.ok(entries.length >= 1 && entries.length <= 3 * 20, `${entries.length} audit entries for ${n} refusals`);
    assert.equal(h.sup.status('flood').state, 'running');
  } finally {
    await h.close();
  }
});

test('network: { raw: true } starts the worker with --allow-net: the Hand connects by itself', async () => {
  const tcp = await listenTcp();
  const web = await listenHttp((_q, r) => r.end('hello'));
  const udp: UdpSocket = createSocket('udp4');
  const udpGot: string[] = [];
  udp.on('message', (m) => udpGot.push(String(m)));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const settings = { tcpPort: tcp.port, httpPort: web.port, udpPort: udp.address().port };
  const h = await startHarness(
    [{ name: 'raw', fixture: 'net-probe', settings, capabilities: { network: { raw: true } } }],
    { start: false },
  );
  try {
    const results = await h.collect(`${ROOT}/net-probe/result`);
    await h.sup.start();
    await waitFor('the probe result', () => results.length > 0, 30000);
    const r = JSON.parse(results[0]!.payload.toString()) as Record<string, { code: string }>;
    for (const k of [
      'netConnect',
      'esmNamedConnect',
      'createConnection',
      'socketConnect',
      'localhostName',
      'tlsConnect',
      'httpGet',
      'fetch',
      'udpSend',
      'dnsLookup',
      'dnsPromises',
      'listen',
    ]) {
      assert.equal(r[k]?.code, 'ok', `${k}: ${JSON.stringify(r[k])}`);
    }
    assert.equal(r.permissionNet?.code, 'true');
    assert.ok(tcp.hits() >= 5);
    assert.ok(web.hits.length >= 2);
    await waitFor('the UDP datagram', () => udpGot.length > 0);
    assert.deepEqual(h.sup.status('raw').network, { hosts: [], raw: true }, 'the status shows the raw grant');
  } finally {
    await h.close();
    await close(tcp.server);
    await close(web.server);
    udp.close();
  }
});

test('a raw grant a manifest does not offer is a config error naming the path', async () => {
  const h = await startHarness([
    { name: 'wider', fixture: 'fetcher', capabilities: { network: { hosts: ['example.com'], raw: true } } },
  ]);
  try {
    const s = await waitState(h.sup, 'wider', 'failed');
    assert.equal(s.lastError?.code, 'CONFIG_INVALID');
    assert.match(s.lastError!.message, /hands\.wider\.capabilities\.network\.raw: true widens/);
  } finally {
    await h.close();
  }
});

// ---- ctx.fetch ------------------------------------------------------------------------------

interface Fetched {
  id: string;
  status?: number;
  body?: string;
  chunks?: number;
  url?: string;
  redirected?: boolean;
  headers?: Record<string, string>;
  afterAbort?: string;
  error?: { code: string; message: string };
}

async function fetcher(
  spec: Omit<HandSpec, 'fixture'>,
  opts: { resolve?: Resolver; ca?: string } = {},
): Promise<{
  h: Harness;
  net: HandFetch;
  ask: (req: Record<string, unknown>) => Promise<Fetched>;
  chunks: BusMessage[];
}> {
  let net!: HandFetch;
  const h = await startHarness([{ ...spec, fixture: 'fetcher' }], {
    start: false,
    // the harness has no kernel: wire the network service as runtime/host/kernel.ts does
    register: (sup, { audit }) => {
      net = new HandFetch({
        audit,
        ...(opts.resolve ? { resolve: opts.resolve } : {}),
        ...(opts.ca ? { ca: opts.ca } : {}),
      });
      for (const [m, s] of Object.entries(net.services())) sup.registerService(m, s);
    },
  });
  await net.start();
  const res: BusMessage[] = await h.collect(`${ROOT}/fetcher/res`);
  const chunks: BusMessage[] = await h.collect(`${ROOT}/fetcher/chunk`);
  const ready = await h.collect(`${ROOT}/fetcher/ready`);
  await h.sup.start();
  await waitFor('the fetcher to subscribe', () => ready.length > 0, 20000);
  let n = 0;
  const ask = async (req: Record<string, unknown>): Promise<Fetched> => {
    const id = `r${++n}`;
    await h.bus.publish(`${ROOT}/fetcher/req`, JSON.stringify({ id, ...req }), { qos: 0, retain: false });
    return waitFor(
      `answer ${id}`,
      () => res.map((x) => JSON.parse(x.payload.toString()) as Fetched).find((x) => x.id === id),
      20000,
    );
  };
  return { h, net, ask, chunks };
}

const denies = async (h: Harness) =>
  (await h.auditEntries())
    .filter((e) => e.action === 'capability.check' && e.decision === 'deny')
    .map((e) => ({ subject: e.subject, action: (e.detail as { action?: string }).action }));

test('ctx.fetch reaches a granted host: status, headers, a JSON body, a body streamed piece by piece', async () => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  const closed: string[] = [];
  const web = await listenHttp((req, res) => {
    if (req.url === '/hello') {
      res.setHeader('x-from', 'server');
      res.end(`hello ${req.headers['x-token'] ?? 'nobody'} via ${req.headers.host}`);
    } else if (req.url === '/echo' && req.method === 'POST') {
      let b = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        b += c;
      });
      req.on('end', () => res.end(JSON.stringify({ got: JSON.parse(b), type: req.headers['content-type'] })));
    } else if (req.url === '/stream') {
      res.write('first;');
      void held.then(() => res.end('second'));
    } else if (req.url === '/endless') {
      res.write('first;');
      res.on('close', () => closed.push(req.url!));
    } else {
      res.statusCode = 404;
      res.end('no');
    }
  });
  const { h, net, ask, chunks } = await fetcher({ name: 'f', capabilities: { network: [`127.0.0.1:${web.port}`] } });
  try {
    const base = `http://127.0.0.1:${web.port}`;
    const a = await ask({ url: `${base}/hello`, init: { headers: { 'x-token': 'abc', host: 'evil.example' } } });
    assert.equal(a.error, undefined, JSON.stringify(a.error));
    assert.equal(a.status, 200);
    assert.equal(a.body, `hello abc via 127.0.0.1:${web.port}`, 'the Hand cannot set Host');
    assert.equal(a.headers?.['x-from'], 'server');
    assert.equal(a.url, `${base}/hello`);
    assert.equal(a.redirected, false);
    const b = await ask({
      url: `${base}/echo`,
      init: { method: 'POST', body: JSON.stringify({ n: 1 }), headers: { 'content-type': 'application/json' } },
    });
    assert.deepEqual(JSON.parse(b.body!), { got: { n: 1 }, type: 'application/json' });
    const nf = await ask({ url: `${base}/missing` });
    assert.equal(nf.status, 404, 'an HTTP error status is an answer, not an exception');
    // streaming: the Hand gets the first piece while the server still holds the rest
    const pending = ask({ url: `${base}/stream`, read: 'stream' });
    await waitFor('the first piece in the Hand', () =>
      chunks.some((c) => JSON.parse(c.payload.toString()).text === 'first;'),
    );
    release();
    const st = await pending;
    assert.equal(st.body, 'first;second');
    assert.ok(st.chunks! >= 2);
    // a body the Hand cancels, or whose signal it aborts, is closed in the kernel and at the server
    const cancelled = await ask({ url: `${base}/endless`, read: 'cancel' });
    assert.equal(cancelled.body, 'first;');
    const aborted = await ask({ url: `${base}/endless`, read: 'abort' });
    assert.equal(aborted.afterAbort, 'AbortError');
    await waitFor('both connections closed', () => closed.length === 2 && net.open() === 0);
    assert.equal(h.sup.status('f').state, 'running');
    const audit = await h.auditEntries();
    const oks = audit.filter((e) => e.action === 'net.fetch' && e.actor === 'hand:f' && e.decision === 'ok');
    assert.ok(oks.length >= 4, 'each request is audited once');
    assert.ok(oks.every((e) => e.subject === `127.0.0.1:${web.port}`));
  } finally {
    release();
    await h.close();
    await close(web.server);
  }
});

test('ctx.fetch: a host outside the grant, a name not granted, and no grant at all are CAPABILITY_DENIED and audited', async () => {
  const granted = await listenHttp((_q, r) => r.end('ok'));
  const other = await listenHttp((_q, r) => r.end('secret'));
  const { h, ask } = await fetcher({ name: 'f', capabilities: { network: [`127.0.0.1:${granted.port}`] } });
  const bare = await fetcher({ name: 'g' });
  try {
    const a = await ask({ url: `http://127.0.0.1:${other.port}/` });
    assert.equal(a.error?.code, 'CAPABILITY_DENIED');
    assert.match(a.error!.message, new RegExp(`127.0.0.1:${other.port}`));
    const b = await ask({ url: `http://localhost:${granted.port}/` });
    assert.equal(b.error?.code, 'CAPABILITY_DENIED', 'the address is granted, the name is not');
    const c = await bare.ask({ url: `http://127.0.0.1:${granted.port}/` });
    assert.equal(c.error?.code, 'CAPABILITY_DENIED');
    assert.match(c.error!.message, /capabilities\.network/);
    assert.deepEqual(other.hits, []);
    assert.deepEqual(granted.hits, []);
    const d = await denies(h);
    assert.ok(
      d.some((x) => x.action === 'net.fetch' && x.subject === `127.0.0.1:${other.port}`),
      JSON.stringify(d),
    );
    assert.ok(d.some((x) => x.action === 'net.fetch' && x.subject === `localhost:${granted.port}`));
    assert.ok(
      (await denies(bare.h)).some((x) => x.action === 'net.fetch' && x.subject === `127.0.0.1:${granted.port}`),
    );
    assert.equal(h.sup.status('f').state, 'running');
    assert.ok(h.sup.status('f').messages.denied >= 2);
  } finally {
    await h.close();
    await bare.h.close();
    await close(granted.server);
    await close(other.server);
  }
});

test('ctx.fetch re-checks every redirect: one inside the grant is followed, one to an ungranted host is refused', async () => {
  const other = await listenHttp((_q, r) => r.end('secret'));
  const web = await listenHttp((req, res) => {
    if (req.url === '/hop') {
      res.writeHead(302, { location: '/hello' });
      res.end();
    } else if (req.url === '/away') {
      res.writeHead(302, { location: `http://127.0.0.1:${other.port}/secret` });
      res.end();
    } else if (req.url === '/loop') {
      res.writeHead(307, { location: '/loop' });
      res.end();
    } else res.end('hello');
  });
  const { h, ask } = await fetcher({ name: 'f', capabilities: { network: [`127.0.0.1:${web.port}`] } });
  try {
    const base = `http://127.0.0.1:${web.port}`;
    const a = await ask({ url: `${base}/hop` });
    assert.equal(a.body, 'hello');
    assert.equal(a.redirected, true);
    assert.equal(a.url, `${base}/hello`);
    const b = await ask({ url: `${base}/away` });
    assert.equal(b.error?.code, 'CAPABILITY_DENIED');
    assert.match(b.error!.message, /redirect/);
    assert.deepEqual(other.hits, [], 'the ungranted host was never contacted');
    const m = await ask({ url: `${base}/away`, init: { redirect: 'manual' } });
    assert.equal(m.status, 302, 'redirect: manual hands the 3xx to the Hand');
    assert.equal(m.headers?.location, `http://127.0.0.1:${other.port}/secret`);
    const loop = await ask({ url: `${base}/loop` });
    assert.equal(loop.error?.code, 'NET_REDIRECT');
    assert.ok((await denies(h)).some((x) => x.subject === `127.0.0.1:${other.port}`));
  } finally {
    await h.close();
    await close(web.server);
    await close(other.server);
  }
});

test("DNS is the kernel's and pinned: a name whose answer changes between two lookups cannot reach loopback", async () => {
  // two servers on one port: the granted one on 127.0.0.2, the loopback one a rebinding would reach on 127.0.0.1
  const loop = await listenHttp((_q, r) => r.end('loopback'));
  let lanHost = '';
  const lan = await listenHttp(
    (req, r) => {
      lanHost = String(req.headers.host);
      r.end('granted');
    },
    '127.0.0.2',
    loop.port,
  );
  let lookups = 0;
  const resolve: Resolver = async (name) => {
    assert.equal(name, 'svc.test');
    lookups++;
    return [{ address: lookups === 1 ? '127.0.0.2' : '127.0.0.1', family: 4 }];
  };
  const { h, ask } = await fetcher({ name: 'f', capabilities: { network: ['svc.test', '127.0.0.2'] } }, { resolve });
  try {
    const url = `http://svc.test:${loop.port}/`;
    const a = await ask({ url });
    assert.equal(a.body, 'granted', JSON.stringify(a));
    assert.equal(
      lanHost,
      `svc.test:${loop.port}`,
      'the Host header is the name; the connection went to the checked address',
    );
    assert.equal(lookups, 1, 'one lookup per request: the connection used the checked answer, not a second lookup');
    const b = await ask({ url });
    assert.equal(b.error?.code, 'CAPABILITY_DENIED');
    assert.match(b.error!.message, /127\.0\.0\.1.*loopback/);
    assert.deepEqual(loop.hits, [], 'loopback was never reached');
    assert.equal(lan.hits.length, 1);
  } finally {
    await h.close();
    await close(loop.server);
    await close(lan.server);
  }
});

test('ctx.fetch caps the response body (declared, streamed, and decoded) and the time a request takes', async () => {
  const { gzipSync } = await import('node:zlib');
  const web = await listenHttp((req, res) => {
    if (req.url === '/big') res.end('x'.repeat(5000));
    else if (req.url === '/big-chunked') {
      res.write('x'.repeat(600));
      res.end('x'.repeat(600));
    } else if (req.url === '/bomb') {
      res.setHeader('content-encoding', 'gzip');
      res.end(gzipSync(Buffer.alloc(100_000)));
    } else if (req.url === '/small') res.end('x'.repeat(900));
    else if (req.url === '/stall') {
      // never answers
    } else if (req.url === '/stall-body') {
      res.write('begun;');
    }
  });
  const grant = (extra: Record<string, unknown>) => ({ network: { hosts: [`127.0.0.1:${web.port}`], ...extra } });
  const capped = await fetcher({ name: 'capped', capabilities: grant({ maxResponseBytes: 1000, timeoutMs: 400 }) });
  try {
    const base = `http://127.0.0.1:${web.port}`;
    assert.equal((await capped.ask({ url: `${base}/small` })).body?.length, 900);
    assert.equal((await capped.ask({ url: `${base}/big` })).error?.code, 'NET_TOO_LARGE');
    assert.equal((await capped.ask({ url: `${base}/big-chunked` })).error?.code, 'NET_TOO_LARGE');
    assert.equal((await capped.ask({ url: `${base}/bomb` })).error?.code, 'NET_TOO_LARGE', 'counted after decoding');
    assert.equal((await capped.ask({ url: `${base}/stall` })).error?.code, 'NET_TIMEOUT');
    assert.equal(
      (await capped.ask({ url: `${base}/stall-body` })).error?.code,
      'NET_TIMEOUT',
      'the limit covers the body too',
    );
    assert.equal(
      (await capped.ask({ url: `${base}/big`, init: { maxResponseBytes: 10 } })).error?.code,
      'NET_TOO_LARGE',
    );
    assert.equal(capped.net.open(), 0, 'nothing left open in the kernel');
    assert.equal(capped.h.sup.status('capped').state, 'running');
    const errors = (await capped.h.auditEntries()).filter((e) => e.action === 'net.fetch' && e.decision === 'error');
    assert.ok(errors.some((e) => (e.detail as { error?: { code?: string } }).error?.code === 'NET_TIMEOUT'));
  } finally {
    await capped.h.close();
    await close(web.server);
  }
});

test("https through a pinned address: the certificate is checked against the URL's name", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-net-tls-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=svc.test',
      '-addext',
      'subjectAltName=DNS:svc.test',
    ],
    { stdio: 'ignore' },
  );
  let sni = '';
  const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    sni = String((req.socket as import('node:tls').TLSSocket).servername);
    res.end('over tls');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const resolve: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
  const caps = { network: ['svc.test', 'other.test', `127.0.0.1:${port}`] };
  const trusted = await fetcher({ name: 'f', capabilities: caps }, { resolve, ca: readFileSync(cert, 'utf8') });
  const untrusted = await fetcher({ name: 'g', capabilities: caps }, { resolve });
  try {
    const a = await trusted.ask({ url: `https://svc.test:${port}/` });
    assert.equal(a.body, 'over tls', JSON.stringify(a));
    assert.equal(sni, 'svc.test', "SNI is the URL's name, not the pinned address");
    const b = await trusted.ask({ url: `https://other.test:${port}/` });
    assert.equal(b.error?.code, 'NET_CONNECT', 'the certificate does not name other.test');
    const c = await untrusted.ask({ url: `https://svc.test:${port}/` });
    assert.equal(c.error?.code, 'NET_CONNECT', 'a certificate no CA vouches for is refused');
  } finally {
    await trusted.h.close();
    await untrusted.h.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});
