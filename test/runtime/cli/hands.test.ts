/**
 * `talon hands ...` against a small node:http server that speaks the daemon's API contract:
 * Bearer token, JSON bodies, `{error: {code, message}}` with an HTTP status, and SSE for
 * `logs?follow=1`. The CLI is the esbuild bundle, spawned.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildCli } from './build-cli.ts';
import { runCli, startCli } from './run-cli.ts';
import { waitFor } from '../../helpers/wait.ts';
import type { HandStatus, LogLine } from '../../../runtime/supervisor/types.ts';

const TOKEN = 'test-token-0123456789abcdef0123456789abcdef';
let bin: string;
let cwd: string;
let data: string;
let server: Server;
const requests: Array<{ method: string; url: string; auth: string | undefined }> = [];
/** open SSE responses, ended in after() */
const streams = new Set<ServerResponse>();

const NOW = Date.now();
function status(name: string, over: Partial<HandStatus> = {}): HandStatus {
  return {
    name,
    module: name === 'mon' ? 'monitoring' : `./hands/${name}.js`,
    id: name,
    version: '1.0.0',
    state: 'running',
    since: NOW - 3_723_000,
    uptimeMs: 3_723_000,
    restarts: 2,
    cpu: 0.031,
    heapUsedMb: 12.34,
    heapLimitMb: 64,
    messages: { published: 10, received: 3, dropped: 0, denied: 1, malformed: 0 },
    handlerErrors: 4,
    logsDropped: 0,
    ...over,
  };
}
const HANDS: HandStatus[] = [
  status('mon'),
  status('pipeline-long-name', {
    state: 'failed',
    uptimeMs: 0,
    restarts: 5,
    cpu: 0,
    heapUsedMb: 0,
    lastError: {
      code: 'HAND_CRASHED',
      message: 'worker exited with code 1: TypeError: x is not a function\n    at start',
    },
  }),
];
const log = (i: number, hand = 'mon'): LogLine => ({
  ts: Date.UTC(2026, 0, 1, 0, 0, i),
  hand,
  level: i % 2 ? 'warn' : 'info',
  msg: `line ${i}`,
  ...(i === 2 ? { data: { v: 2 } } : {}),
});

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
const apiError = (res: ServerResponse, code: number, errCode: string, message: string) =>
  send(res, code, { error: { code: errCode, message } });

before(async () => {
  bin = await buildCli();
  cwd = mkdtempSync(join(tmpdir(), 'talon-hands-'));
  data = join(cwd, 'data');
  mkdirSync(data);
  server = createServer((req, res) => {
    requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return apiError(res, 401, 'UNAUTHORIZED', 'bad token');
    const url = new URL(req.url!, 'http://x');
    const m = /^\/api\/v1\/hands(?:\/([^/]+))?(?:\/(start|stop|restart|logs))?$/.exec(url.pathname);
    if (!m) return apiError(res, 404, 'NOT_FOUND', `no route ${url.pathname}`);
    const [, name, action] = m;
    if (!name)
      return req.method === 'GET'
        ? send(res, 200, { hands: HANDS })
        : apiError(res, 405, 'METHOD_NOT_ALLOWED', 'GET only');
    if (name === 'boom') return apiError(res, 500, 'INTERNAL', 'the supervisor exploded');
    if (name === 'garbage') {
      res.writeHead(502, { 'content-type': 'text/html' });
      return res.end('<html>bad gateway</html>');
    }
    const hand = HANDS.find((h) => h.name === name) ?? (name === 'tail' || name === 'evil' ? status(name) : undefined);
    if (!hand) return apiError(res, 404, 'HAND_NOT_FOUND', `no Hand named "${name}"; see \`talon hands list\``);
    if (!action)
      return req.method === 'GET' ? send(res, 200, hand) : apiError(res, 405, 'METHOD_NOT_ALLOWED', 'GET only');
    if (action === 'logs') {
      const lines = Number(url.searchParams.get('lines') ?? 100);
      if (name === 'evil')
        return send(res, 200, { lines: [{ ts: 0, hand: 'evil', level: 'info', msg: 'clear \u001b[2J screen' }] });
      const recent = Array.from({ length: Math.min(lines, 3) }, (_, i) => log(i + 1, name));
      if (url.searchParams.get('follow') !== '1') return send(res, 200, { lines: recent });
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      for (const l of recent) res.write(`data: ${JSON.stringify(l)}\n\n`);
      res.write(': ping\n\n');
      // one event split across two writes, with CRLF line ends
      const ev = `data: ${JSON.stringify(log(9, name))}\r\n\r\n`;
      res.write(ev.slice(0, 10));
      setImmediate(() => {
        res.write(ev.slice(10));
        if (name === 'tail')
          streams.add(res); // stays open until the client goes
        else res.end(); // the daemon stopped: the stream ends
      });
      return;
    }
    if (req.method !== 'POST') return apiError(res, 405, 'METHOD_NOT_ALLOWED', 'POST only');
    if (action === 'stop' && hand.state !== 'running')
      return apiError(res, 409, 'HAND_STATE', `Hand "${name}" is ${hand.state}, not running`);
    return send(res, 200, {
      ...hand,
      state: action === 'stop' ? 'stopped' : 'running',
      uptimeMs: action === 'stop' ? 0 : hand.uptimeMs,
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  writeFileSync(
    join(data, 'runtime.json'),
    JSON.stringify({
      pid: process.pid,
      deviceId: 'dev',
      http: { host: '0.0.0.0', port },
      startedAt: new Date().toISOString(),
      version: '0.1.0',
    }),
  );
  writeFileSync(join(data, 'cli-token'), `${TOKEN}\n`, { mode: 0o600 });
});

after(async () => {
  for (const s of streams) s.end();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dirname(bin), { recursive: true, force: true });
  rmSync(cwd, { recursive: true, force: true });
});

const talon = (args: string[], env: Record<string, string> = {}) => runCli(bin, args, { cwd, env });

test('hands list: an aligned table, with the Bearer token from the data folder', async () => {
  requests.length = 0;
  const r = await talon(['hands', 'list']); // ./data under the working folder
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(requests, [{ method: 'GET', url: '/api/v1/hands', auth: `Bearer ${TOKEN}` }]);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  const header = lines[0]!;
  assert.match(header, /^NAME +STATE +UPTIME +RESTARTS +CPU % +HEAP MB +LAST ERROR$/);
  // every column starts where its header starts (right-aligned numbers end where it ends)
  const at = (col: string) => header.indexOf(col);
  assert.equal(lines[1]!.indexOf('running'), at('STATE'));
  assert.equal(lines[2]!.indexOf('failed'), at('STATE'));
  assert.equal(lines[1]!.indexOf('1h02m') + '1h02m'.length, at('UPTIME') + 'UPTIME'.length);
  assert.equal(lines[1]!.indexOf('3.1') + 3, at('CPU %') + 'CPU %'.length);
  assert.equal(lines[1]!.indexOf('12.3/64') + 7, at('HEAP MB') + 'HEAP MB'.length);
  assert.equal(lines[2]!.indexOf('HAND_CRASHED'), at('LAST ERROR'));
  assert.match(lines[1]!, /^mon +running +1h02m +2 +3\.1 +12\.3\/64 +-$/);
  assert.match(
    lines[2]!,
    /^pipeline-long-name +failed +- +5 +0\.0 +0\.0\/64 +HAND_CRASHED: worker exited with code 1: TypeError: x is no…$/,
  );
});

test('hands list --json prints the API answer', async () => {
  const r = await talon(['hands', 'list', '--json', '--data', data]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { hands: HANDS });
});

test('hands status NAME: details; --json', async () => {
  const r = await talon(['hands', 'status', 'mon'], { TALON_DATA: data });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^name: +mon\n/);
  assert.match(r.stdout, /\nstate: +running since \d{4}-/);
  assert.match(r.stdout, /\nuptime: +1h02m\n/);
  assert.match(r.stdout, /\nheap: +12\.3 of 64 MB\n/);
  assert.match(r.stdout, /\nmessages: +published 10, received 3, dropped 0, denied 1, malformed 0\n/);
  assert.match(r.stdout, /\nhandler errors: +4\n/);
  const j = await talon(['hands', 'status', 'mon', '--json']);
  assert.deepEqual(JSON.parse(j.stdout), HANDS[0]);
});

test('hands start|stop|restart POST and print the new state', async () => {
  for (const [action, state] of [
    ['start', 'running'],
    ['stop', 'stopped'],
    ['restart', 'running'],
  ] as const) {
    requests.length = 0;
    const r = await talon(['hands', action, 'mon']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `mon: ${state}\n`);
    assert.deepEqual(
      requests.map((q) => `${q.method} ${q.url}`),
      [`POST /api/v1/hands/mon/${action}`],
    );
  }
  const j = await talon(['hands', 'stop', 'mon', '--json']);
  assert.equal((JSON.parse(j.stdout) as HandStatus).state, 'stopped');
});

test('an operator error from the daemon (404 HAND_NOT_FOUND, 409 HAND_STATE) → its message, exit 2', async () => {
  const r = await talon(['hands', 'status', 'ghost']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'talon: no Hand named "ghost"; see `talon hands list` (HAND_NOT_FOUND)\n');
  const s = await talon(['hands', 'stop', 'pipeline-long-name']);
  assert.equal(s.code, 2);
  assert.equal(s.stderr, 'talon: Hand "pipeline-long-name" is failed, not running (HAND_STATE)\n');
});

test('a server error → its message, exit 1; a non-JSON error page → the status, exit 1', async () => {
  const r = await talon(['hands', 'restart', 'boom']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'talon: the supervisor exploded (INTERNAL)\n');
  const g = await talon(['hands', 'status', 'garbage']);
  assert.equal(g.code, 1);
  assert.match(
    g.stderr,
    /^talon: Talon at http:\/\/127\.0\.0\.1:\d+ answered HTTP 502: <html>bad gateway<\/html> \(INTERNAL\)\n$/,
  );
});

test('a refused token → exit 1 with a hint about the data folder', async () => {
  const other = join(cwd, 'other');
  mkdirSync(other, { recursive: true });
  writeFileSync(
    join(other, 'runtime.json'),
    JSON.stringify({
      pid: process.pid,
      http: { host: '127.0.0.1', port: (server.address() as { port: number }).port },
    }),
  );
  writeFileSync(join(other, 'cli-token'), 'wrong\n');
  const r = await talon(['hands', 'list', '--data', other]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^talon: bad token \(the token in .*other\/cli-token was refused; is .*other the data folder of the Talon at http:\/\/127\.0\.0\.1:\d+\?\) \(UNAUTHORIZED\)\n$/,
  );
});

test('hands logs NAME --lines N: asks for N lines and prints them', async () => {
  requests.length = 0;
  const r = await talon(['hands', 'logs', 'mon', '--lines', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    requests.map((q) => q.url),
    ['/api/v1/hands/mon/logs?lines=2'],
  );
  assert.equal(
    r.stdout,
    ['2026-01-01T00:00:01.000Z warn  [mon] line 1', '2026-01-01T00:00:02.000Z info  [mon] line 2 {"v":2}', ''].join(
      '\n',
    ),
  );
  const j = await talon(['hands', 'logs', 'mon', '-n', '1', '--json']);
  assert.deepEqual(
    j.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as LogLine),
    [log(1)],
  );
});

test('hands logs: terminal control characters from a Hand are escaped', async () => {
  const r = await talon(['hands', 'logs', 'evil']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '1970-01-01T00:00:00.000Z info  [evil] clear \\x1b[2J screen\n');
});

test('hands logs --follow: prints the backlog and new events; exit 0 when the daemon ends the stream', async () => {
  requests.length = 0;
  const r = await talon(['hands', 'logs', 'mon', '--follow', '--lines', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    requests.map((q) => q.url),
    ['/api/v1/hands/mon/logs?follow=1&lines=2'],
  );
  assert.deepEqual(
    r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.replace(/^\S+ /, '')),
    ['warn  [mon] line 1', 'info  [mon] line 2 {"v":2}', 'warn  [mon] line 9'],
  );
});

test('hands logs -f --json streams one JSON line per event; Ctrl-C ends it with exit 0', async () => {
  const run = startCli(bin, ['hands', 'logs', 'tail', '-f', '--json', '-n', '1'], { cwd });
  await waitFor(() => run.stdout.split('\n').length >= 3, 'two events on stdout', 10_000);
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as LogLine),
    [log(1, 'tail'), log(9, 'tail')],
  );
});

test('hands logs --follow on an unknown Hand → the API error, exit 2', async () => {
  const r = await talon(['hands', 'logs', 'ghost', '--follow']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^talon: no Hand named "ghost"/);
});
