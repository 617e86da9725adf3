/**
 * `node --import tsx test/bench/web.ts` (or `npm run bench -- web`): the web admin.
 * - requests/s for GET /healthz and GET /api/v1/hands (bearer token) from autocannon on
 *   loopback (a second process's worth of load on this 2-core machine: the numbers are a floor);
 * - RSS of the daemon idle before the admin is used, after the page and every GET route were
 *   served once (idle again), with 20 open SSE streams of /api/v1/system/stream, and after the
 *   load runs (measured last: the heap grows under load);
 * - the page's weight, raw and gzipped, from dist/web/manifest.json (written by the page build).
 */
import { request, type ClientRequest } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { ROOT, httpGet, rssMb, sleep, startTalon, handsRunning, runIfMain } from './lib.ts';

const f = (n: number, d = 1): string => n.toFixed(d);
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const signed = (n: number): string => `${n >= 0 ? '+' : '−'}${f(Math.abs(n))}`;

async function load(
  url: string,
  headers: Record<string, string>,
  seconds: number,
): Promise<{ rps: number; p50: number; p99: number; non2xx: number }> {
  const r = await autocannon({ url, headers, connections: 20, duration: seconds, pipelining: 1 });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx + r.errors };
}

function openStream(port: number, path: string, token: string): Promise<ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${token}` }, agent: false },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode}`));
        res.on('data', () => {});
        resolve(req);
      },
    );
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    req.end();
  });
}

interface PageManifest {
  files: Array<{ name: string; bytes: number; gzip: number }>;
  /** the files loaded before any click (the Hands' page chunks are not among them) */
  firstPaint?: string[];
  hands?: Array<{ hand: string; file: string }>;
}

export async function webRows(say: (line: string) => void): Promise<void> {
  const seconds = Number(process.env.BENCH_WEB_SECONDS ?? 5);
  const t = await startTalon({ hands: [{ name: 'monitoring', module: 'monitoring' }], drivers: undefined });
  try {
    await handsRunning(t, 1);
    const auth = { authorization: `Bearer ${t.token()}` };
    await sleep(3000);
    const idle = rssMb(t.proc.pid!);

    // the page and every GET route once, then idle again
    const page = await httpGet(t.httpPort, '/');
    const assets = [...page.body.matchAll(/(?:src|href)="\/?([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
    for (const a of assets) await httpGet(t.httpPort, `/${a}`);
    const spec = JSON.parse((await httpGet(t.httpPort, '/api/v1/openapi.json')).body) as {
      paths: Record<string, Record<string, unknown>>;
    };
    let served = 0;
    for (const [path, ops] of Object.entries(spec.paths)) {
      if (!('get' in ops) || path.includes('{') || /stream|export/.test(path)) continue;
      await httpGet(t.httpPort, path, auth);
      served++;
    }
    await sleep(3000);
    const warm = rssMb(t.proc.pid!);
    say(`| RSS, daemon idle with the default config (web admin not yet used) | ${f(idle)} MB | | | |`);
    say(
      `| RSS after serving the page and ${served} GET routes, idle again | ${f(warm)} MB | ${signed(warm - idle)} MB over unused | | |`,
    );

    const streams: ClientRequest[] = [];
    for (let i = 0; i < 20; i++) streams.push(await openStream(t.httpPort, '/api/v1/system/stream', t.token()));
    await sleep(6000);
    const sse = rssMb(t.proc.pid!);
    for (const s of streams) s.destroy();
    say(
      `| RSS with 20 open SSE streams (system stats every 2 s) | ${f(sse)} MB | ${signed(sse - warm)} MB over idle | | |`,
    );

    // load last: the heap grows under it and V8 keeps some of that
    const health = await load(`http://127.0.0.1:${t.httpPort}/healthz`, {}, seconds);
    const hands = await load(`http://127.0.0.1:${t.httpPort}/api/v1/hands`, auth, seconds);
    // a Hand's route (hands/monitoring/surface.ts): HTTP → the generic Hand-request client → a
    // typed request to the Monitoring Hand's worker → its answer, validated and sent back
    const alerts = await load(`http://127.0.0.1:${t.httpPort}/api/v1/alerts?state=all&limit=50`, auth, seconds);
    say(
      `| GET /healthz, 20 connections, ${seconds} s (autocannon) | ${int(health.rps)} req/s | p50 ${health.p50} ms, p99 ${health.p99} ms | | non-2xx: ${health.non2xx} |`,
    );
    say(
      `| GET /api/v1/hands with a bearer token, 20 connections | ${int(hands.rps)} req/s | p50 ${hands.p50} ms, p99 ${hands.p99} ms | | non-2xx: ${hands.non2xx} |`,
    );
    say(
      `| GET /api/v1/alerts (a Hand's route: a typed request to its worker), 20 connections | ${int(alerts.rps)} req/s | p50 ${alerts.p50} ms, p99 ${alerts.p99} ms | ${f(alerts.rps / hands.rps, 2)}× the kernel's own /api/v1/hands | non-2xx: ${alerts.non2xx} |`,
    );

    await sleep(3000);
    say(`| RSS idle again after the load runs | ${f(rssMb(t.proc.pid!))} MB | | | |`);
  } finally {
    await t.stop();
  }

  const manifestFile = join(ROOT, 'dist', 'web', 'manifest.json');
  if (!existsSync(manifestFile)) throw new Error('dist/web/manifest.json is missing: run npm run build');
  const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as PageManifest;
  const raw = m.files.reduce((s, x) => s + x.bytes, 0);
  const gz = m.files.reduce((s, x) => s + x.gzip, 0);
  say(
    `| page weight (${m.files.length} files: ${m.files.map((x) => x.name).join(', ')}) | ${f(gz / 1024)} KB gzipped | ${f(raw / 1024)} KB raw | | ≤ 150 KB gzipped |`,
  );
  const first = m.files.filter((x) => m.firstPaint?.includes(x.name));
  const handFiles = m.files.filter((x) => m.hands?.some((h) => h.file === x.name));
  say(
    `| first paint (${first.map((x) => x.name).join(', ')}) | ${f(first.reduce((s, x) => s + x.gzip, 0) / 1024)} KB gzipped | Hands' pages loaded when opened: ${handFiles.map((x) => `${x.name} ${f(x.gzip / 1024)} KB`).join(', ') || 'none'} | | |`,
  );
}

await runIfMain(import.meta.url, webRows);
