/**
 * `npm run bench -- browser` (or `node --expose-gc --import tsx test/bench/browser.ts`): the Web Automation Hand's
 * costs on this machine (issue 20): the browser's memory idle and under jobs, flow steps per second, check time per
 * watch. Everything real: Debian's Chromium driven by the kernel's BrowserPool (runtime/browser/pool.ts, its defaults:
 * 4 pages, restart over 600 MB between jobs) inside a KernelBrowser, the browser tools registered in a ToolRegistry
 * over LevelDB with the signed audit chain and the approvals queue, a Hand caller granted only the fixture's port.
 *
 * The fixture site (test/fixtures/web/server.ts on 127.0.0.1): every page renders its content by script after a
 * moment — a heading, a form (name, e-mail, plan, terms, Save posting JSON to /api/save), a 50-row table and a filter
 * box; /login → /session (a cookie) → /app; /watch/text, /watch/price and /watch/visual change now and then.
 *
 * 1. Memory: the browser's process tree from /proc — PSS summed (the pool's own reader, treeRssMb; shared pages split
 *    among the processes sharing them, other Chromiums' too), USS (Private_Clean + Private_Dirty: what no other process
 *    shares) and VmRSS summed (shared pages counted once per process) — idle after launch,
 *    with 1 job holding a loaded page, with 5 jobs asked at once (the pool opens 4 pages; the 5th waits for one) and
 *    after the jobs; this process's own RSS (the kernel's side: playwright-core's client, the registry, LevelDB).
 *    Then 5 real jobs (load, wait for the table, fill the form, read the table) at once vs 1 alone: wall time, the
 *    most pages open at once, the queued job's wait, the peak PSS sampled every 200 ms.
 * 2. Flows: a 21-step flow (goto, fill, click, wait_for, select, check, assert, extract of fields and of the 50-row
 *    list, press) through ToolRegistry.call('browser.run_flow') — what a Hand and `talon web run` use — run
 *    BROWSER_BENCH_FLOWS (default 10) times one after the other, then 5 callers at once BROWSER_BENCH_FLOWS / 3 flows
 *    each (at least 2): steps per second, median and p95 flow time.
 * 3. Checks: the Hand's WebHand.check through a ctx whose tools.call is the registry's browser.read (the fake ctx of
 *    test/hands/scheduling/fake-ctx.ts otherwise: in-memory store and bus) for a text, a price and — when
 *    browser.read takes `visual` and the Hand takes `what: { visual }` — a visual watch: BROWSER_BENCH_CHECKS (default
 *    20) checks each, median and p95; then 5 watches checked at once, checks per minute.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { AuditChain } from '../../runtime/audit/chain.ts';
import { treeRssMb } from '../../runtime/browser/pool.ts';
import { NO_CAPABILITIES } from '../../runtime/core/grants.ts';
import type { Capabilities } from '../../runtime/core/hand.ts';
import { normalizeNetwork } from '../../runtime/core/network.ts';
import { DeviceKey } from '../../runtime/secrets/device-key.ts';
import { Store } from '../../runtime/store/store.ts';
import { Approvals } from '../../runtime/tools/approvals.ts';
import { KernelBrowser, browserTools } from '../../runtime/tools/builtin/browser.ts';
import { ToolRegistry } from '../../runtime/tools/registry.ts';
import type { ToolCaller } from '../../runtime/tools/types.ts';
import type { HandContext } from '../../hands/sdk/types.ts';
import { WebHand } from '../../hands/web-automation/index.ts';
import { type FixtureWeb, startWeb } from '../fixtures/web/server.ts';
import { fakeCtx } from '../hands/scheduling/fake-ctx.ts';
import { median, reportHeader, sleep } from './lib.ts';

const CHROMIUM = process.env.TALON_CHROMIUM ?? '/usr/bin/chromium';
const FLOWS = Math.max(3, Number(process.env.BROWSER_BENCH_FLOWS ?? 10));
const CHECKS = Math.max(3, Number(process.env.BROWSER_BENCH_CHECKS ?? 20));
const PASSWORD = 'pw-bench-7'; // a plain value: the flow is a benchmark, not a secrets test
const ROWS = 50;

const f = (n: number, d = 0): string => n.toFixed(d);
const mbOf = (bytes: number): number => bytes / 1024 / 1024;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((s.length - 1) * p))]!;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

// ---- the browser's process tree ---------------------------------------------------------------------------------

interface TreeMem {
  /** PSS summed, MB (the pool's reader) */
  pss: number;
  /** VmRSS summed, MB */
  rss: number;
  /** Private_Clean + Private_Dirty summed (USS), MB: the pages no other process shares, whatever else runs */
  uss: number;
  procs: number;
  /** Chromium processes on the machine outside this tree (they share the binary's pages, lowering PSS) */
  others: number;
}

async function ppidOf(pid: string): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest.length > 1 ? Number(rest[1]) : undefined;
}

/** VmRSS and USS summed over `pid` and its descendants, MB, how many processes, other Chromium processes */
async function treeVmRss(pid: number): Promise<{ rss: number; uss: number; procs: number; others: number }> {
  const children = new Map<number, number[]>();
  const chromium = new Set<number>();
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const pp = await ppidOf(e);
    if (pp === undefined) continue;
    children.set(pp, [...(children.get(pp) ?? []), Number(e)]);
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (/\/chromium\/chromium\0/.test(cmd)) chromium.add(Number(e));
  }
  let rss = 0;
  let uss = 0;
  let procs = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    chromium.delete(p);
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${p}/status`, 'utf8').catch(() => ''));
    if (m) {
      rss += Number(m[1]);
      procs++;
    }
    const rollup = await readFile(`/proc/${p}/smaps_rollup`, 'utf8').catch(() => '');
    for (const re of [/^Private_Clean:\s+(\d+)\s+kB/m, /^Private_Dirty:\s+(\d+)\s+kB/m]) {
      const x = re.exec(rollup);
      if (x) uss += Number(x[1]);
    }
    todo.push(...(children.get(p) ?? []));
  }
  return { rss: rss / 1024, uss: uss / 1024, procs, others: chromium.size };
}

async function treeMem(pid: number | undefined): Promise<TreeMem> {
  if (pid === undefined) return { pss: Number.NaN, rss: Number.NaN, uss: Number.NaN, procs: 0, others: 0 };
  const [pss, vm] = await Promise.all([treeRssMb(pid), treeVmRss(pid)]);
  return { pss: pss ?? Number.NaN, ...vm };
}

// ---- the fixture site -------------------------------------------------------------------------------------------

/** a page whose content a script renders after `delayMs`: a heading, the form, the 50-row table, a filter box */
function appHtml(title: string, heading: string, extra = '', delayMs = 40): string {
  const rows = Array.from({ length: ROWS }, (_, i) => [i, `item ${i}`, (9.5 + i * 1.25).toFixed(2)]);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}
#chart{display:flex;gap:4px;height:120px;align-items:flex-end;width:400px}#chart div{flex:1;background:#36c}</style>
</head><body><div id="root">Loading…</div><script>
const rows = ${JSON.stringify(rows)};
setTimeout(() => {
  const root = document.getElementById('root');
  root.innerHTML = ${JSON.stringify(`<h1 id="welcome">${heading}</h1>${extra}`)} +
    '<form id="profile"><label>Name <input id="name" name="name"></label> <label>E-mail <input id="email" type="email"></label> ' +
    '<label>Plan <select id="plan"><option value="basic">Basic</option><option value="pro">Pro</option></select></label> ' +
    '<label><input id="terms" type="checkbox"> I agree</label> <button type="submit">Save</button></form><div id="status"></div>' +
    '<p><label>Filter <input id="q"></label> <span id="count"></span></p>' +
    '<table id="data"><thead><tr><th>#</th><th>Name</th><th>Price</th></tr></thead><tbody>' +
    rows.map(([i, n, p]) => '<tr><td class="id">' + i + '</td><td class="name">' + n + '</td><td class="price">' + p + '</td></tr>').join('') +
    '</tbody></table>';
  document.getElementById('profile').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = JSON.stringify({ name: document.getElementById('name').value, email: document.getElementById('email').value,
      plan: document.getElementById('plan').value, terms: document.getElementById('terms').checked });
    const r = await fetch('/api/save', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const j = await r.json();
    document.getElementById('status').innerHTML = '<p id="saved">Saved profile ' + j.id + ' for ' + j.name + '</p>';
  });
  document.getElementById('q').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    const q = e.target.value;
    let n = 0;
    for (const tr of document.querySelectorAll('#data tbody tr')) {
      const show = tr.querySelector('.name').textContent.includes(q);
      tr.hidden = !show;
      if (show) n++;
    }
    document.getElementById('count').textContent = n + ' rows';
  });
}, ${delayMs});
</script></body></html>`;
}

async function fixture(): Promise<{ web: FixtureWeb; hits: Record<string, number> }> {
  const hits: Record<string, number> = { text: 0, price: 0, visual: 0 };
  let saves = 0;
  const html = (res: import('node:http').ServerResponse, body: string): void =>
    void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
  const web = await startWeb({
    '*': {
      '/page': { type: 'text/html; charset=utf-8', body: appHtml('Job page', 'A page of the fixture site') },
      '/login': {
        type: 'text/html; charset=utf-8',
        body:
          '<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title></head><body><form method="post" ' +
          'action="/session"><label>User <input id="user" name="user"></label> <label>Password <input id="pw" ' +
          'name="pw" type="password"></label> <button type="submit">Sign in</button></form></body></html>',
      },
      '/session': (_req, res, body) => {
        const form = new URLSearchParams(body);
        const ok = form.get('user') === 'ann' && form.get('pw') === PASSWORD;
        res
          .writeHead(303, ok ? { location: '/app', 'set-cookie': 'session=ok; Path=/' } : { location: '/login?bad=1' })
          .end();
      },
      '/app': (req, res) => {
        if (!/(^|;\s*)session=ok/.test(req.headers.cookie ?? '')) {
          res.writeHead(303, { location: '/login' }).end();
          return;
        }
        html(res, appHtml('Account', 'Welcome, ann'));
      },
      '/api/save': (_req, res, body) => {
        const b = JSON.parse(body || '{}') as { name?: string };
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ ok: true, id: ++saves, name: b.name ?? '' }));
      },
      // the watched pages: a headline that changes every 5th request, a price every 7th, a bar chart every 6th
      '/watch/text': (_req, res) => {
        const n = Math.floor(hits.text!++ / 5);
        html(res, appHtml('News', `Headline number ${n}: the board ships`));
      },
      '/watch/price': (_req, res) => {
        const n = Math.floor(hits.price!++ / 7);
        html(res, appHtml('Lamp', 'Desk lamp', `<p class="price">€ ${(1299 + n * 10).toLocaleString('de-DE')},00</p>`));
      },
      '/watch/visual': (_req, res) => {
        const n = Math.floor(hits.visual!++ / 6);
        const bars = Array.from(
          { length: 12 },
          (_, i) => `<div style="height:${20 + ((i * 37 + n * 53) % 100)}px"></div>`,
        );
        html(res, appHtml('Chart', 'Sales', `<div id="chart">${bars.join('')}</div>`));
      },
    },
  });
  return { web, hits };
}

function benchFlow(base: string): Record<string, unknown> {
  return {
    name: 'bench-profile',
    output: {
      type: 'object',
      required: ['saved', 'rows'],
      properties: { saved: { type: 'string' }, rows: { type: 'array', minItems: ROWS } },
    },
    steps: [
      { goto: `${base}/login` },
      { fill: { selector: '#user', value: 'ann' } },
      { fill: { selector: '#pw', value: PASSWORD } },
      { click: 'role=button[name="Sign in"]' },
      { wait_for: { url: '/\\/app$/' } },
      { wait_for: { selector: '#data tbody tr' } },
      { assert: { text: 'Welcome, ann' } },
      { fill: { selector: '#name', value: 'Ann Example' } },
      { fill: { selector: '#email', value: 'ann@example.org' } },
      { select: { selector: '#plan', value: 'pro' } },
      { check: '#terms' },
      { click: 'role=button[name="Save"]' },
      { wait_for: { selector: '#saved' } },
      { assert: { selector: '#saved', text: 'Saved profile' } },
      { extract: { fields: { saved: '#saved', user: '#welcome' } } },
      { extract: { list: '#data tbody tr', fields: { id: 'td.id', name: 'td.name', price: 'td.price' } }, as: 'rows' },
      { assert: { selector: '#data tbody tr', count: ROWS } },
      { fill: { selector: '#q', value: 'item 1' } },
      { press: { selector: '#q', key: 'Enter' } },
      { wait_for: { text: '11 rows' } },
      { assert: { selector: '#data tbody tr:not([hidden])', count: 11 } },
    ],
  };
}

// ---- the kernel side --------------------------------------------------------------------------------------------

interface Kernel {
  dir: string;
  store: Store;
  reg: ToolRegistry;
  kb: KernelBrowser;
  visualTool: boolean;
  caller(name: string): ToolCaller;
  close(): Promise<void>;
}

async function kernel(port: number): Promise<Kernel> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-browser-bench-'));
  const store = await Store.open(dir);
  const chain = new AuditChain(store, DeviceKey.loadOrCreate(dir));
  await chain.start();
  const approvals = new Approvals({ store, audit: chain, timeoutMs: () => 60_000 });
  await approvals.start();
  const reg = new ToolRegistry({
    audit: chain,
    approvals,
    config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000 }),
  });
  // the kernel's defaults (runtime/host/tools.ts passes no pool options but a log)
  const kb = new KernelBrowser({ executablePath: CHROMIUM });
  const tools = browserTools({ browser: kb });
  for (const t of tools) reg.register(t);
  const read = tools.find((t) => t.name === 'browser.read');
  const props = (read?.inputSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {};
  const network = normalizeNetwork([`127.0.0.1:${port}`], 'bench');
  return {
    dir,
    store,
    reg,
    kb,
    visualTool: 'visual' in props,
    caller(name) {
      const grants: Capabilities = {
        ...NO_CAPABILITIES,
        network,
        tools: { allow: ['browser.*'], approve: [] },
      };
      return { actor: `hand:${name}`, hand: name, admin: false, grants, folder: join(dir, 'hands', name, 'files') };
    },
    async close() {
      await kb.close();
      await approvals.stop();
      await chain.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- 1. memory --------------------------------------------------------------------------------------------------

/** a job's work on the fixture page: load, wait for the script's table, fill the form, read the table */
async function pageWork(page: Page, url: string): Promise<number> {
  await page.goto(url, { waitUntil: 'load' });
  await page.locator('#data tbody tr').first().waitFor();
  await page.fill('#name', 'Ann');
  await page.fill('#email', 'ann@example.org');
  await page.selectOption('#plan', 'pro');
  const cells = await page.locator('#data tbody td.price').allInnerTexts();
  return cells.length;
}

async function memoryRows(k: Kernel, base: string, say: (line: string) => void): Promise<void> {
  const pool = k.kb.pool();
  const caller = k.caller('mem');
  const grant = caller.grants.network;
  const own = (): number => mbOf(process.memoryUsage().rss);
  const mem = async (): Promise<TreeMem> => treeMem(pool.pid);
  const memCell = (m: TreeMem): string =>
    `${f(m.pss)} MB PSS (USS ${f(m.uss)} MB, RSS summed ${f(m.rss)} MB; ${m.procs} processes${m.others ? `; ${m.others} other Chromium processes on the machine` : ''})`;

  gc();
  const ownBefore = own();
  // launch: an empty job (Chromium starts on the first job; its context is closed after)
  const t0 = performance.now();
  await pool.job(grant, async () => {});
  const launchMs = performance.now() - t0;
  await sleep(2500);
  gc();
  const idle = await mem();
  const ownIdle = own();
  say(
    `| browser idle after launch (${f(launchMs)} ms to launch and run an empty job) | ${memCell(idle)}; this process ${f(ownIdle)} MB RSS (${f(ownBefore)} MB before playwright-core loaded and the browser started) |`,
  );

  // jobs holding a loaded page until released
  let inside = 0;
  let peakPages = 0;
  const held = (n: number): { ready: Promise<void>[]; release(): void; done: Promise<number[]> } => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const ready: Promise<void>[] = [];
    const done: Promise<number>[] = [];
    for (let i = 0; i < n; i++) {
      let mark!: () => void;
      ready.push(
        new Promise<void>((r) => {
          mark = r;
        }),
      );
      const asked = performance.now();
      done.push(
        pool.job(grant, async (page) => {
          const waited = performance.now() - asked;
          inside++;
          peakPages = Math.max(peakPages, inside);
          try {
            await pageWork(page, `${base}/page`);
            mark();
            await gate;
            return waited;
          } finally {
            inside--;
          }
        }),
      );
    }
    return { ready, release, done: Promise.all(done) };
  };

  const one = held(1);
  await one.ready[0];
  await sleep(1500);
  const oneMem = await mem();
  const ownOne = own();
  one.release();
  await one.done;
  say(
    `| 1 job holding its page (loaded, table rendered, form filled) | ${memCell(oneMem)}: **+${f(oneMem.pss - idle.pss)} MB PSS** (+${f(oneMem.uss - idle.uss)} MB USS) over idle; this process ${f(ownOne)} MB |`,
  );

  peakPages = 0;
  const askedAt = performance.now();
  const five = held(5);
  const firstFour = await Promise.race([
    Promise.all(five.ready.slice(0, 4)).then(() => true),
    sleep(60_000).then(() => false),
  ]);
  await sleep(1500);
  const fiveMem = await mem();
  const ownFive = own();
  const queued = five.ready.length - (await Promise.all(five.ready.map((r) => settled(r)))).filter(Boolean).length;
  const releasedAt = performance.now();
  five.release();
  const waits = await five.done;
  const fifthWait = Math.max(...waits);
  say(
    `| 5 jobs asked at once, each holding its page: ${peakPages} pages open at the peak${firstFour ? '' : ' (4 did not load within 60 s)'}, ${queued} job queued for a page | ${memCell(fiveMem)}: **+${f(fiveMem.pss - idle.pss)} MB PSS** (+${f(fiveMem.uss - idle.uss)} MB USS) over idle, ${f((fiveMem.pss - idle.pss) / Math.max(1, peakPages))} MB PSS a page; this process ${f(ownFive)} MB |`,
  );
  say(
    `| … the queued job got a page once the held ones were released: it waited ${f(fifthWait)} ms, ${f(fifthWait - (releasedAt - askedAt))} ms of it after the release (a context closed, the queue woken) | |`,
  );
  await sleep(2500);
  gc();
  const after = await mem();
  say(
    `| browser 2.5 s after the 6 jobs ended (contexts closed) | ${memCell(after)}: ${after.pss - idle.pss >= 0 ? '+' : ''}${f(after.pss - idle.pss)} MB PSS, ${after.uss - idle.uss >= 0 ? '+' : ''}${f(after.uss - idle.uss)} MB USS over idle; this process ${f(own())} MB |`,
  );

  // real jobs, no holding: 1 alone, then 5 at once (3 rounds each), PSS sampled meanwhile
  let peakPss = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const m = await treeRssMb(pool.pid ?? -1);
      if (m !== undefined) peakPss = Math.max(peakPss, m);
      await sleep(200);
    }
  })();
  const runJob = async (): Promise<{ ms: number; waited: number }> => {
    const asked = performance.now();
    let waited = 0;
    await pool.job(grant, async (page) => {
      waited = performance.now() - asked;
      inside++;
      peakPages = Math.max(peakPages, inside);
      try {
        return await pageWork(page, `${base}/page`);
      } finally {
        inside--;
      }
    });
    return { ms: performance.now() - asked, waited };
  };
  const alone: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await runJob();
    if (i > 0) alone.push(r.ms);
  }
  peakPages = 0;
  const walls: number[] = [];
  const maxWaits: number[] = [];
  for (let round = 0; round < 3; round++) {
    const t = performance.now();
    const rs = await Promise.all(Array.from({ length: 5 }, runJob));
    walls.push(performance.now() - t);
    maxWaits.push(Math.max(...rs.map((r) => r.waited)));
  }
  sampling = false;
  await sampler;
  say(
    `| a job (load the page, wait for the script's table, fill 3 fields, read 50 cells; a fresh context each): 1 alone (median of 3) | ${f(median(alone))} ms |`,
  );
  say(
    `| 5 such jobs at once (median of 3 rounds): ${peakPages} pages open at most, the 5th waited for a page ${f(median(maxWaits))} ms | ${f(median(walls))} ms for the 5 (${f(median(walls) / median(alone), 1)}× one job); peak PSS sampled every 200 ms ${f(peakPss)} MB |`,
  );
  const stats = await pool.stats();
  say(
    `| the pool so far: launches, restarts over its 600 MB cap (between jobs), crashes | ${stats.launches}, ${stats.restarts}, ${stats.crashes} |`,
  );
}

/** whether `p` has settled by now */
async function settled(p: Promise<void>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  await sleep(0);
  return done;
}

// ---- 2. flows ---------------------------------------------------------------------------------------------------

interface FlowRun {
  ms: number;
  steps: number;
  /** each step's kind and time, as the tool answered them */
  kinds: Array<{ kind: string; ms: number }>;
  ok: boolean;
  error?: string;
}

async function flowRows(k: Kernel, base: string, say: (line: string) => void): Promise<void> {
  const flow = benchFlow(base);
  const run = async (caller: ToolCaller): Promise<FlowRun> => {
    const t = performance.now();
    const r = (await k.reg.call(caller, 'browser.run_flow', { flow })).output as {
      ok: boolean;
      steps: Array<{ kind: string; ms: number }>;
      failure?: { path: string; message: string };
      output?: { rows?: unknown[] };
    };
    const ms = performance.now() - t;
    const rowsOk = (r.output?.rows?.length ?? 0) === ROWS;
    return {
      ms,
      steps: r.steps.length,
      kinds: r.steps.map((x) => ({ kind: x.kind, ms: x.ms })),
      ok: r.ok && rowsOk,
      ...(!r.ok && { error: `${r.failure?.path}: ${r.failure?.message}` }),
      ...(r.ok && !rowsOk && { error: `extracted ${r.output?.rows?.length ?? 0} rows, not ${ROWS}` }),
    };
  };
  const callers = Array.from({ length: 5 }, (_, i) => k.caller(`flow-${i}`));
  // warm-up: the flow runner's and ajv's code compiled, the browser's caches
  for (let i = 0; i < 2; i++) {
    const w = await run(callers[0]!);
    if (!w.ok) throw new Error(`the bench flow failed: ${w.error}`);
  }
  const seq: FlowRun[] = [];
  const t0 = performance.now();
  for (let i = 0; i < FLOWS; i++) seq.push(await run(callers[0]!));
  const seqMs = performance.now() - t0;
  const per = Math.max(2, Math.round(FLOWS / 3));
  const par: FlowRun[] = [];
  const t1 = performance.now();
  await Promise.all(
    callers.map(async (c) => {
      for (let i = 0; i < per; i++) par.push(await run(c));
    }),
  );
  const parMs = performance.now() - t1;
  const steps = seq[0]!.steps;
  const line = (label: string, rs: FlowRun[], wall: number): string => {
    const total = rs.reduce((n, r) => n + r.steps, 0);
    const bad = rs.filter((r) => !r.ok);
    const ms = rs.map((r) => r.ms);
    return `| ${label} | **${f((total / wall) * 1000, 1)} steps/s** (${f((rs.length / wall) * 60_000, 0)} flows/min); a flow: median ${f(median(ms))} ms, p95 ${f(pct(ms, 0.95))} ms${bad.length ? `; ${bad.length} failed (${bad[0]!.error})` : ''} |`;
  };
  say(
    `| the flow: ${steps} steps (goto, fill ×5, click ×2, wait_for ×3, select, check, press, assert ×4, extract of 2 fields and of the ${ROWS}-row table), browser.run_flow through the registry (grant check, audit) | |`,
  );
  say(line(`${FLOWS} flows one after the other`, seq, seqMs));
  const byKind = new Map<string, number[]>();
  for (const r of seq) {
    const per = new Map<string, number>();
    for (const x of r.kinds) per.set(x.kind, (per.get(x.kind) ?? 0) + x.ms);
    for (const [kind, ms] of per) byKind.set(kind, [...(byKind.get(kind) ?? []), ms]);
  }
  const kinds = [...byKind].map(([kind, ms]) => ({ kind, ms: median(ms) })).sort((a, b) => b.ms - a.ms);
  const inSteps = kinds.reduce((n, x) => n + x.ms, 0);
  say(
    `| … where a flow's time goes (median per flow, the steps of a kind together; the rest is the tool's own: context, grant proxy, audit) | ${kinds.map((x) => `${x.kind} ${f(x.ms)} ms`).join(', ')}; steps ${f(inSteps)} of ${f(median(seq.map((r) => r.ms)))} ms |`,
  );
  say(line(`5 callers at once, ${per} flows each (${par.length} flows; the pool's 4 pages: one waits)`, par, parMs));
}

// ---- 3. checks --------------------------------------------------------------------------------------------------

async function checkRows(k: Kernel, base: string, say: (line: string) => void): Promise<void> {
  const fc = fakeCtx({ name: 'web' });
  const caller = k.caller('web');
  const ctx: HandContext = {
    ...fc.ctx,
    settings: {
      scheduler: '',
      watches: [
        { id: 'text', url: `${base}/watch/text`, what: { text: '#welcome' } },
        { id: 'price', url: `${base}/watch/price`, what: { price: '.price' } },
        { id: 'visual', url: `${base}/watch/visual`, what: { visual: '#chart' } },
        { id: 'text-2', url: `${base}/watch/text`, what: { text: '#welcome' } },
        { id: 'price-2', url: `${base}/watch/price`, what: { price: '.price' } },
        { id: 'page', url: `${base}/watch/text`, what: { text: null } },
      ],
    },
    tools: {
      list: fc.ctx.tools.list,
      call: ((tool: string, input: Record<string, unknown> = {}) =>
        k.reg.call(caller, tool, input)) as HandContext['tools']['call'],
    },
  };
  const hand = new WebHand(ctx, { schedulerTimeoutMs: 300 });
  await hand.start();
  try {
    const visual = k.visualTool && hand.watches.has('visual');
    const kinds = visual ? ['text', 'price', 'visual'] : ['text', 'price'];
    const failures: string[] = [];
    const failed = new Map<string, number>();
    const changed = new Map<string, number>();
    const timed = async (id: string): Promise<number> => {
      const t = performance.now();
      const r = await hand.check(id, 'bench');
      if (!r.run.ok) {
        failures.push(`${id}: ${r.run.error}`);
        failed.set(id, (failed.get(id) ?? 0) + 1);
      }
      if (r.run.events?.includes('changed')) changed.set(id, (changed.get(id) ?? 0) + 1);
      return performance.now() - t;
    };
    for (const id of kinds) await timed(id); // warm-up, and the baselines
    for (const id of kinds) {
      const ms: number[] = [];
      failed.delete(id);
      changed.delete(id);
      for (let i = 0; i < CHECKS; i++) ms.push(await timed(id));
      const what =
        id === 'text'
          ? 'the text of a script-rendered heading'
          : id === 'price'
            ? 'a script-rendered price'
            : 'a screenshot of a script-rendered chart, fingerprinted';
      const bad = failed.get(id) ?? 0;
      say(
        bad === CHECKS
          ? `| a ${id} watch (${what}) | not measured: every check failed (${failures[failures.length - 1]!.replace(/\|/g, '/')}) |`
          : `| a ${id} watch (${what}), ${CHECKS} checks one after the other (the page changes every few requests; ${changed.get(id) ?? 0} changes confirmed${bad ? `, ${bad} checks failed` : ''}) | median **${f(median(ms))} ms**, p95 ${f(pct(ms, 0.95))} ms a check |`,
      );
    }
    const five = visual
      ? ['text', 'price', 'visual', 'text-2', 'price-2']
      : ['text', 'price', 'text-2', 'price-2', 'page'];
    const rounds = Math.max(2, Math.ceil(CHECKS / 4));
    const all: number[] = [];
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) all.push(...(await Promise.all(five.map((id) => timed(id)))));
    const wall = performance.now() - t0;
    say(
      `| 5 watches (${five.join(', ')}) checked at once, ${rounds} rounds | **${f((all.length / wall) * 60_000)} checks/min**; a check median ${f(median(all))} ms, p95 ${f(pct(all, 0.95))} ms |`,
    );
    if (!visual)
      say(
        `| a visual watch | not measured: ${k.visualTool ? 'the Hand does not take what: { visual } yet' : 'browser.read has no `visual` input yet'} |`,
      );
    if (failures.length)
      say(`| failed checks | ${failures.length}: ${failures.slice(0, 3).join('; ').replace(/\|/g, '/')} |`);
  } finally {
    await hand.stop();
    fc.close();
  }
}

// ---- the section ------------------------------------------------------------------------------------------------

export async function browserRows(say: (line: string) => void): Promise<void> {
  const { web } = await fixture();
  const base = `http://127.0.0.1:${web.port}`;
  const k = await kernel(web.port);
  say('');
  say(
    `### The Web Automation Hand: the kernel's browser (${CHROMIUM}, pool defaults: 4 pages, restart over 600 MB), flows, checks`,
  );
  say('');
  say(
    "`npm run bench -- browser` (BROWSER_BENCH_FLOWS, BROWSER_BENCH_CHECKS). A fixture site on 127.0.0.1 whose pages render by script a form and a 50-row table. Memory from /proc: PSS summed over the browser process and its descendants (the pool's own reader; it splits shared pages among the processes sharing them, other Chromiums on the machine included), USS (private pages) and VmRSS summed for comparison (it counts shared pages once per process). The machine is shared and noisy (times vary ±30 % between runs).",
  );
  say('');
  say('| what | figure |');
  say('|---|---|');
  try {
    await memoryRows(k, base, say);
    web.requests.length = 0;
    await flowRows(k, base, say);
    web.requests.length = 0;
    await checkRows(k, base, say);
    const stats = await k.kb.pool().stats();
    say(
      `| the pool over the whole section: jobs, launches, restarts over 600 MB, crashes; PSS at the end | ${stats.jobs}, ${stats.launches}, ${stats.restarts}, ${stats.crashes}; ${stats.rssMb ?? '?'} MB |`,
    );
  } finally {
    await k.close();
    await web.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const say = (line: string): void => console.log(line);
  if (!process.env.SCHED_BENCH_NO_HEADER) await reportHeader(say);
  await browserRows(say);
}
