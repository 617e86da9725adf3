import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createHttpSource, nextLink } from '../../../../hands/pipeline/sources/http.ts';
import type { SourceDeps } from '../../../../hands/pipeline/sources/types.ts';
import type { HttpSourceSpec } from '../../../../hands/pipeline/types.ts';
import { memoryState } from '../fixtures.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;
const routes = new Map<string, Handler>();
const seen: Array<{ path: string; headers: IncomingMessage['headers'] }> = [];
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  seen.push({ path: url.pathname + url.search, headers: req.headers });
  const h = routes.get(url.pathname);
  if (!h) {
    res.writeHead(404).end('no route');
    return;
  }
  h(req, res, url);
});
let base = '';
before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const json = (res: ServerResponse, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

function deps(state = memoryState()) {
  const logs: string[] = [];
  const d: Pick<SourceDeps, 'fetch' | 'state' | 'log'> = {
    fetch: (url, init) => fetch(url, init as RequestInit),
    state,
    log: (level, msg) => logs.push(`${level} ${msg}`),
  };
  return { d, state, logs };
}
const spec = (path: string, extra: Partial<HttpSourceSpec> = {}): HttpSourceSpec => ({
  type: 'http',
  url: `${base}${path}`,
  intervalMs: 1000,
  ...extra,
});

describe('http source', () => {
  it('keeps the ETag only on ack, and a 304 reads nothing', async () => {
    let version = 1;
    routes.set('/etag', (req, res) => {
      const tag = `"v${version}"`;
      if (req.headers['if-none-match'] === tag) return void res.writeHead(304).end();
      json(
        res,
        [
          { id: 1, v: version },
          { id: 2, v: version },
        ],
        { etag: tag },
      );
    });
    const { d, state } = deps();
    const src = createHttpSource(spec('/etag'), d);
    const a = await src.poll();
    assert.equal(a.records.length, 2);
    assert.equal(a.error, undefined);
    // not acked: the same records again, and no If-None-Match sent
    const b = await src.poll();
    assert.deepEqual(b.records, a.records);
    assert.equal(seen.at(-1)!.headers['if-none-match'], undefined);
    assert.equal(state.map.size, 0);
    await src.ack(b.token);
    assert.deepEqual(state.map.get('http'), { etag: '"v1"' });
    const c = await src.poll();
    assert.equal(seen.at(-1)!.headers['if-none-match'], '"v1"');
    assert.deepEqual(c, { records: [], bad: [], token: null, more: false });
    version = 2;
    const e = await src.poll();
    assert.deepEqual(
      e.records.map((r) => r.v),
      [2, 2],
    );
  });

  it('follows Link rel="next" over 3 pages, maxPages per poll, `more` when pages remain', async () => {
    routes.set('/link', (_req, res, url) => {
      const page = Number(url.searchParams.get('page') ?? '1');
      const headers: Record<string, string> =
        page < 3 ? { link: `</link?page=${page + 1}>; rel="next", </link?page=1>; rel="first"` } : {};
      json(
        res,
        {
          data: [
            { page, n: 1 },
            { page, n: 2 },
          ],
          total: 6,
        },
        headers,
      );
    });
    const { d, state } = deps();
    const src = createHttpSource(spec('/link', { pagination: { next: 'link', maxPages: 2 } }), d);
    const a = await src.poll();
    assert.deepEqual(
      a.records.map((r) => r.page),
      [1, 1, 2, 2],
    );
    assert.equal(a.more, true);
    await src.ack(a.token);
    assert.equal((state.map.get('http') as { next: string }).next, `${base}/link?page=3`);
    const b = await src.poll();
    assert.deepEqual(
      b.records.map((r) => r.page),
      [3, 3],
    );
    assert.equal(b.more, false);
    await src.ack(b.token);
    assert.equal((state.map.get('http') as { next?: string }).next, undefined);
    // a whole new round starts at the first page
    const c = await src.poll();
    assert.equal(c.records[0]!.page, 1);
  });

  it('sends a cursor field of the body back as a query parameter', async () => {
    routes.set('/cursor', (_req, res, url) => {
      const after = Number(url.searchParams.get('after') ?? '0');
      const items = [after + 1, after + 2].map((id) => ({ id }));
      json(res, { items, meta: { next: after + 2 < 6 ? String(after + 2) : null } });
    });
    const { d } = deps();
    const src = createHttpSource(
      spec('/cursor', { pagination: { next: 'cursor', cursorField: 'meta.next', param: 'after' } }),
      d,
    );
    const a = await src.poll();
    assert.deepEqual(
      a.records.map((r) => r.id),
      [1, 2, 3, 4, 5, 6],
    );
    assert.equal(a.more, false);
    assert.deepEqual(
      seen.slice(-3).map((s) => s.path),
      ['/cursor', '/cursor?after=2', '/cursor?after=4'],
    );
  });

  it('a 500 is an error with no records and the cursor unchanged', async () => {
    let fail = false;
    routes.set('/flaky', (_req, res) => {
      if (fail) return void res.writeHead(500, { 'content-type': 'text/plain' }).end('database is down');
      json(res, [{ id: 1 }], { etag: '"e1"' });
    });
    const { d, state, logs } = deps();
    const src = createHttpSource(spec('/flaky'), d);
    await src.ack((await src.poll()).token);
    fail = true;
    // the server's ETag changes nothing: If-None-Match is sent, the 500 is an error
    const r = await src.poll();
    assert.deepEqual(r.records, []);
    assert.equal(r.token, null);
    assert.match(r.error!, /HTTP 500 .*database is down/);
    assert.deepEqual(state.map.get('http'), { etag: '"e1"' });
    assert.ok(logs.some((l) => l.startsWith('warn')));
  });

  it('a failing next page: the pages before it are returned, and the next poll resumes at the failing page', async () => {
    let down = true;
    routes.set('/pages', (_req, res, url) => {
      const page = Number(url.searchParams.get('page') ?? '1');
      if (page === 2 && down) return void res.writeHead(503).end();
      json(res, [{ page }], page < 2 ? { link: '</pages?page=2>; rel="next"' } : {});
    });
    const { d, state } = deps();
    const src = createHttpSource(spec('/pages', { pagination: { next: 'link' } }), d);
    const a = await src.poll();
    assert.deepEqual(a.records, [{ page: 1 }]);
    assert.match(a.error!, /pages\?page=2: HTTP 503/);
    await src.ack(a.token);
    assert.equal((state.map.get('http') as { next: string }).next, `${base}/pages?page=2`);
    down = false;
    const b = await src.poll();
    assert.deepEqual(b.records, [{ page: 2 }]);
    assert.equal(b.error, undefined);
  });

  it('a body that is not JSON is an error; NDJSON is read line by line, a bad line to bad', async () => {
    routes.set('/html', (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>oops</html>'));
    routes.set('/nd', (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/x-ndjson' }).end('{"a":1}\n{"a":2}\nnot json\n[1]\n{"a":3}\n'),
    );
    const { d } = deps();
    const html = await createHttpSource(spec('/html'), d).poll();
    assert.deepEqual(html.records, []);
    assert.equal(html.token, null);
    assert.match(html.error!, /not JSON nor JSON Lines \(text\/html\): "<html>oops<\/html>"/);
    const nd = await createHttpSource(spec('/nd'), d).poll();
    assert.deepEqual(
      nd.records.map((r) => r.a),
      [1, 2, 3],
    );
    assert.deepEqual(
      nd.bad.map((b) => b.line),
      [3, 4],
    );
    assert.equal(nd.error, undefined);
  });

  it('an object without an array is one record; a network error is an error', async () => {
    routes.set('/one', (_req, res) => json(res, { temp: 21.5 }));
    const { d } = deps();
    assert.deepEqual((await createHttpSource(spec('/one'), d).poll()).records, [{ temp: 21.5 }]);
    const dead = await createHttpSource({ ...spec('/'), url: 'http://127.0.0.1:1/x' }, d).poll();
    assert.equal(dead.records.length, 0);
    assert.match(dead.error!, /^GET http:\/\/127\.0\.0\.1:1\/x: /);
  });

  it('nextLink reads rel="next" among others', () => {
    assert.equal(
      nextLink('<https://a/x?p=2>; rel="next", <https://a/x?p=9>; rel="last"', 'https://a/x'),
      'https://a/x?p=2',
    );
    assert.equal(nextLink('</y>; rel=next', 'https://a/x'), 'https://a/y');
    assert.equal(nextLink('<https://a/x?p=9>; rel="last"', 'https://a/x'), undefined);
    assert.equal(nextLink(null, 'https://a/x'), undefined);
  });
});
