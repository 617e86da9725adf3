/**
 * `npm run bench -- research` (or `node --expose-gc --import tsx test/bench/research.ts`): what the Research and Lead
 * Generation Hands cost per document and per lead on a generated fixture web, without any model.
 *
 * The web: test/fixtures/web/server.ts startWeb serving RESEARCH_BENCH_SITES (default 20) sites, each an RSS feed of
 * RESEARCH_BENCH_PER_SITE (default 50) items (even sites, `follow: true`) or a sitemap of as many pages (odd sites), the
 * article pages 2–8 KB of text from a seeded vocabulary with a few topics' keywords in some of them, ETags on the
 * feeds, sitemaps and pages, robots.txt on every site; RESEARCH_BENCH_TOPICS (default 4) topics over the sites,
 * politenessMs 0, maxDocs 50.
 * 1. Research in process (ResearchHand on a real LevelDB, the store's hands/research sublevel; ctx.fetch reaches the
 *    fixture through test/helpers/web-fetch.ts, so the kernel's fetch and audit are not in the figure): the topics run
 *    at once, first run (every document new: fetched, read, stored by content hash, ranked with BM25), a run with
 *    nothing changed (feeds and sitemaps answer 304), a run where every feed and sitemap changed by one item (every
 *    page asked again conditionally, 304 but the new one); heap and RSS the stored documents add (GC), the LevelDB's
 *    size on disk, the reports' size.
 * 2. Research on the daemon (dist/talon.cjs): the same web reached under its names (config network.hosts), a research
 *    Hand granted `*.example`, RESEARCH_BENCH_DAEMON_SITES (default 10) sites; POST /api/v1/research/topics/<id>/run
 *    for every topic at once, each request through the kernel's fetch (grant checked, audited); then the no-change
 *    run; the Hand's worker heap from /metrics and the daemon's RSS.
 * 3. Leads in process (LeadsHand on LevelDB): LEADS_BENCH_N (default 500) generated companies listed in an exhibitor
 *    directory (test/fixtures/web/leads.ts's markup and EXPO_SELECTORS, paged by `a.next`) and a member table
 *    (FAIR_SELECTORS), a tenth in both (dedup); each company's site (home page with meta description and script tags,
 *    a contact page with mailto/tel/social links; every tenth missing); enrichment of all (dns.mx answered by a stub in
 *    ctx.call), rules scoring, qualified leads to the HubSpot fake (test/fixtures/platforms/crm.ts): leads per minute
 *    for the first scan and for a scan with nothing new, deliveries per second (outbox ticks back to back), heap per
 *    1000 leads.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Store } from '../../runtime/store/store.ts';
import { NO_CAPABILITIES } from '../../runtime/core/grants.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { HandContext, HandLog } from '../../hands/sdk/types.ts';
import { ResearchHand } from '../../hands/research/index.ts';
import type { Report } from '../../hands/research/types.ts';
import { LeadsHand, TICK_MS } from '../../hands/leads/index.ts';
import { type FixtureWeb, startWeb } from '../fixtures/web/server.ts';
import { EXPO_SELECTORS, FAIR_SELECTORS } from '../fixtures/web/leads.ts';
import { startCrm } from '../fixtures/platforms/crm.ts';
import { webFetch } from '../helpers/web-fetch.ts';
import { levelHandStore } from './scheduling.ts';
import { handsRunning, httpGet, memMb, reportHeader, startTalon } from './lib.ts';

const SITES = Number(process.env.RESEARCH_BENCH_SITES ?? 20);
const PER_SITE = Number(process.env.RESEARCH_BENCH_PER_SITE ?? 50);
const TOPICS = Number(process.env.RESEARCH_BENCH_TOPICS ?? 4);
const DAEMON_SITES = Number(process.env.RESEARCH_BENCH_DAEMON_SITES ?? 10);
const LEADS_N = Number(process.env.LEADS_BENCH_N ?? 500);
/** the outbox's default perTick (hands/leads/outbox.ts; not exported) */
const PER_TICK = 20;
const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
const kb = (b: number): string => (b / 1024).toFixed(1);
const perMin = (n: number, ms: number): string => Math.round((n / ms) * 60_000).toLocaleString('en-US');

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  g?.();
  g?.();
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  return n;
}

// ---- a seeded generator of text --------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = 'ka lo mi ne ru sa te vo di pa be ro ta li fu ge mo na si zu re ko ma ti la ve no du pi se'.split(
  ' ',
);
/** 3000 pseudo-words, and a Zipf-ish pick among them, so documents share common words and differ in rare ones */
function vocabulary(random: () => number): string[] {
  const words = new Set<string>();
  while (words.size < 3000) {
    let w = '';
    const n = 1 + Math.floor(random() * 3);
    for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    words.add(w);
  }
  return [...words];
}

const THEMES: Array<{ id: string; title: string; question: string; keywords: string[] }> = [
  {
    id: 'quantum',
    title: 'Quantum error correction',
    question: 'What progress was made on quantum error correction with surface codes?',
    keywords: ['qubits', 'logical error', 'surface code', 'decoder'],
  },
  {
    id: 'batteries',
    title: 'Solid-state batteries',
    question: 'How far are solid-state batteries from mass production?',
    keywords: ['electrolyte', 'lithium', 'anode', 'charge cycles'],
  },
  {
    id: 'robotics',
    title: 'Collaborative robots',
    question: 'Which collaborative robot arms suit small factories?',
    keywords: ['cobot', 'gripper', 'actuator', 'payload'],
  },
  {
    id: 'climate',
    title: 'Heat pumps',
    question: 'How efficient are heat pumps in cold climates?',
    keywords: ['heat pump', 'refrigerant', 'compressor', 'coefficient of performance'],
  },
  {
    id: 'chips',
    title: 'RISC-V boards',
    question: 'What changed in RISC-V single-board computers?',
    keywords: ['risc-v', 'soc', 'vector extension', 'board'],
  },
];

interface Article {
  title: string;
  text: string;
  published: number;
}

function makeArticle(random: () => number, vocab: string[], i: number): Article {
  const word = (): string => vocab[Math.floor(vocab.length * random() ** 2.5)]!;
  const theme = random() < 0.5 ? THEMES[Math.floor(random() * THEMES.length)] : undefined;
  const target = 2000 + Math.floor(random() * 6000);
  const paras: string[] = [];
  let len = 0;
  while (len < target) {
    const n = 40 + Math.floor(random() * 50);
    const w: string[] = [];
    for (let k = 0; k < n; k++)
      w.push(theme && random() < 0.03 ? theme.keywords[Math.floor(random() * theme.keywords.length)]! : word());
    let p = '';
    for (let k = 0; k < w.length; k += 12) {
      const s = w.slice(k, k + 12).join(' ');
      p += `${s[0]!.toUpperCase()}${s.slice(1)}. `;
    }
    paras.push(p.trim());
    len += p.length;
  }
  const title = `${Array.from({ length: 5 }, word).join(' ')}${theme ? ` ${theme.keywords[0]}` : ''} ${i}`;
  return { title, text: paras.join('\n'), published: Date.UTC(2026, 10, 1) + i * 60_000 };
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function articleHtml(site: string, a: Article): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(a.title)} – ${site}</title>` +
    `<meta property="article:published_time" content="${new Date(a.published).toISOString()}">` +
    '<link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head><body>' +
    `<header><nav><a href="/">Home</a> <a href="/about">About</a> <a href="/archive">Archive</a></nav></header>` +
    `<main><article><h1>${esc(a.title)}</h1>${a.text
      .split('\n')
      .map((p) => `<p>${esc(p)}</p>`)
      .join('')}</article>` +
    `<aside><h2>Related</h2><ul><li><a href="/a/1.html">More</a></li><li><a href="/a/2.html">Even more</a></li></ul></aside></main>` +
    `<footer>© ${site} · <a href="/privacy">Privacy</a></footer></body></html>`
  );
}

interface ResearchWeb {
  web: FixtureWeb;
  names: string[];
  /** a new item in every feed and sitemap (new ETags): a re-check run */
  addOne(): void;
  /** the topics' settings over the sites */
  topics(): Array<Record<string, unknown>>;
  pageBytes: number;
}

export async function researchWeb(sites: number, perSite: number, topics: number): Promise<ResearchWeb> {
  const web = await startWeb({});
  const random = rng(42);
  const vocab = vocabulary(random);
  const names = Array.from({ length: sites }, (_, i) => `site-${String(i).padStart(3, '0')}.example`);
  const articles = new Map<string, Article[]>();
  let pageBytes = 0;
  let serial = 0;
  let version = 1;
  const put = (site: string, n: number, a: Article): void => {
    const body = articleHtml(site, a);
    pageBytes += body.length;
    // a Buffer: the page is the fixture's, off the V8 heap (a string would be flattened into it when first served)
    web.sites[site]![`/a/${n}.html`] = { type: 'text/html; charset=utf-8', body: Buffer.from(body), etag: `"p${n}"` };
  };
  const index = (site: string, s: number): void => {
    const list = articles.get(site)!;
    const url = (n: number): string => web.url(site, `/a/${n}.html`);
    const first = list.length - perSite;
    if (s % 2 === 0) {
      const items = list
        .map((a, k) => ({ a, n: k }))
        .slice(Math.max(0, first))
        .map(
          ({ a, n }) =>
            `<item><title>${esc(a.title)}</title><link>${url(n)}</link><guid isPermaLink="false">${site}-${n}</guid>` +
            `<pubDate>${new Date(a.published).toUTCString()}</pubDate><description>${esc(a.text.slice(0, 200))}</description></item>`,
        )
        .join('\n');
      web.sites[site]!['/feed.xml'] = {
        type: 'application/rss+xml; charset=utf-8',
        etag: `"f${version}"`,
        body: Buffer.from(
          `<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>${site}</title><link>${web.url(site)}</link><description>News</description>\n${items}\n</channel></rss>`,
        ),
      };
    } else {
      const urls = list
        .map((a, n) => ({ a, n }))
        .slice(Math.max(0, first))
        .map(({ a, n }) => `<url><loc>${url(n)}</loc><lastmod>${new Date(a.published).toISOString()}</lastmod></url>`)
        .join('\n');
      web.sites[site]!['/sitemap.xml'] = {
        type: 'application/xml',
        etag: `"s${version}"`,
        body: Buffer.from(
          `<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n${urls}\n</urlset>`,
        ),
      };
    }
  };
  names.forEach((site, s) => {
    web.sites[site] = { '/robots.txt': { type: 'text/plain', body: 'User-agent: *\nDisallow: /private/\n' } };
    const list: Article[] = [];
    for (let k = 0; k < perSite; k++) {
      const a = makeArticle(random, vocab, serial++);
      list.push(a);
      put(site, k, a);
    }
    articles.set(site, list);
    index(site, s);
  });
  return {
    web,
    names,
    pageBytes,
    addOne() {
      version++;
      names.forEach((site, s) => {
        const list = articles.get(site)!;
        const a = makeArticle(random, vocab, serial++);
        list.push(a);
        put(site, list.length - 1, a);
        index(site, s);
      });
    },
    topics() {
      const out: Array<Record<string, unknown>> = [];
      for (let t = 0; t < topics; t++) {
        const theme = THEMES[t % THEMES.length]!;
        const sources = names
          .map((site, s) => ({ site, s }))
          .filter(({ s }) => s % topics === t)
          .map(({ site, s }) =>
            s % 2 === 0
              ? { feed: web.url(site, '/feed.xml'), follow: true, max: perSite }
              : { sitemap: web.url(site, '/sitemap.xml'), max: perSite },
          );
        if (sources.length === 0) continue;
        out.push({
          id: `${theme.id}-${t}`,
          title: theme.title,
          questions: [theme.question],
          keywords: theme.keywords,
          sources,
          minScore: 0.05,
          maxDocs: 50,
        });
      }
      return out;
    },
  };
}

// ---- a context for a Hand in process ---------------------------------------------------------------------------

export function benchCtx(
  name: string,
  store: Store,
  settings: Record<string, unknown>,
  ac: AbortController,
  fetchFn: HandContext['fetch'],
  call: HandContext['call'],
): HandContext {
  const log = ((_l: string, _m: string) => {}) as unknown as HandLog;
  for (const l of ['debug', 'info', 'warn', 'error'] as const)
    (log as unknown as Record<string, unknown>)[l] = () => {};
  const timers = new Set<NodeJS.Timeout>();
  ac.signal.addEventListener('abort', () => {
    for (const t of timers) clearTimeout(t);
  });
  return {
    name,
    deviceId: 'bench',
    settings,
    grants: structuredClone(NO_CAPABILITIES),
    signal: ac.signal,
    log,
    bus: { publish() {}, subscribe: async () => async () => {} },
    store: levelHandStore(store, name),
    audit: async () => {},
    timers: {
      after(ms, fn) {
        const t = setTimeout(() => {
          timers.delete(t);
          void fn();
        }, ms);
        timers.add(t);
        return () => {
          clearTimeout(t);
          timers.delete(t);
        };
      },
      every(ms, fn) {
        const t = setInterval(() => void fn(), ms);
        timers.add(t);
        return () => clearInterval(t);
      },
    },
    call,
    fetch: fetchFn,
    llm: { chat: async () => Promise.reject(new Error('no llm')) },
    tools: { list: async () => [], call: async () => Promise.reject(new Error('no tools')) },
    agent: { run: async () => Promise.reject(new Error('no agent')) },
  } as HandContext;
}

const noKernel = (async () => {
  throw new TalonError('NOT_FOUND', 'no kernel in the bench');
}) as HandContext['call'];

// ---- 1. research in process ------------------------------------------------------------------------------------

interface RunSum {
  ms: number;
  requests: number;
  notModified: number;
  candidates: number;
  newDocs: number;
  errors: number;
  reports: Report[];
}

async function runAll(hand: ResearchHand, ids: string[]): Promise<RunSum> {
  const t0 = performance.now();
  const reports = await Promise.all(ids.map((id) => hand.run(id, 'bench')));
  const ms = performance.now() - t0;
  const sum = (f: (r: Report) => number): number => reports.reduce((n, r) => n + f(r), 0);
  return {
    ms,
    requests: sum((r) => r.stats.requests),
    notModified: sum((r) => r.stats.notModified),
    candidates: sum((r) => r.stats.candidates),
    newDocs: sum((r) => r.stats.new),
    errors: sum((r) => r.stats.errors),
    reports,
  };
}

export async function researchInProcess(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-research-bench-'));
  const rw = await researchWeb(SITES, PER_SITE, TOPICS);
  const store = await Store.open(dir);
  const docs = SITES * PER_SITE;
  say('');
  say(
    `### Research Hand (in process, real LevelDB, fixture web over HTTP, no model): ${SITES} sites × ${PER_SITE} pages, ${TOPICS} topics`,
  );
  say('');
  say(
    '`npm run bench -- research` (sizes: RESEARCH_BENCH_SITES, RESEARCH_BENCH_PER_SITE, RESEARCH_BENCH_TOPICS, RESEARCH_BENCH_DAEMON_SITES, LEADS_BENCH_N)',
  );
  say('');
  say('| what | figure |');
  say('|---|---|');
  try {
    // a warm-up Hand on a small web of its own: the parsers, the regexes, the store's code paths compiled once
    {
      const warm = await researchWeb(2, 10, 1);
      const ac = new AbortController();
      const h = new ResearchHand(
        benchCtx(
          'warm',
          store,
          { politenessMs: 0, scheduler: '', topics: warm.topics() },
          ac,
          webFetch(warm.web.port).fetch,
          noKernel,
        ),
      );
      await h.start();
      await runAll(h, [...h.topics.keys()]);
      ac.abort();
      await h.stop();
      await warm.web.close();
    }
    const ac = new AbortController();
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const rss0 = process.memoryUsage().rss;
    const disk0 = dirBytes(dir);
    const wf = webFetch(rw.web.port);
    let hand: ResearchHand | null = new ResearchHand(
      benchCtx(
        'research',
        store,
        { politenessMs: 0, timeoutMs: 10_000, scheduler: '', topics: rw.topics() },
        ac,
        wf.fetch,
        noKernel,
      ),
    );
    await hand.start();
    const ids = [...hand.topics.keys()];
    const cpu0 = process.cpuUsage();
    const first = await runAll(hand!, ids);
    const cpu1 = process.cpuUsage(cpu0);
    rw.web.requests.length = 0; // the fixture's request log is not the Hand's
    wf.calls.length = 0;
    await new Promise((r) => setTimeout(r, 10_500)); // the fetch helper's 10 s timeout signals hold its requests
    gc();
    const heap1 = process.memoryUsage().heapUsed;
    const rss1 = process.memoryUsage().rss;
    const stored = (await hand!.stats()).stats.documents;
    say(
      `| first run, every document new: ${first.requests} requests (feeds, sitemaps, pages; robots.txt not counted), ${first.candidates} read, ${first.newDocs} new, stored and ranked (BM25), ${first.errors} errors | **${perMin(first.newDocs, first.ms)} documents/min** (${(first.ms / 1000).toFixed(1)} s, ${(first.ms / Math.max(1, first.newDocs)).toFixed(2)} ms each; CPU ${((cpu1.user + cpu1.system) / 1000 / first.ms).toFixed(2)} cores) |`,
    );
    say(`| the fixture's article pages (HTML) | ${mb(rw.pageBytes)} MB, ${kb(rw.pageBytes / docs)} KB each |`);
    const second = await runAll(hand!, ids);
    say(
      `| second run, nothing changed (${second.requests} requests, ${second.notModified} answered 304, ${second.newDocs} new) | ${(second.ms).toFixed(0)} ms (${((second.ms / first.ms) * 100).toFixed(1)} % of the first run) |`,
    );
    rw.addOne();
    const third = await runAll(hand!, ids);
    say(
      `| every feed and sitemap got one new item (new ETags): each page asked again conditionally (${third.requests} requests, ${third.notModified} answered 304, ${third.newDocs} new) | ${(third.ms).toFixed(0)} ms (${((third.ms / first.ms) * 100).toFixed(1)} % of the first run; ${(third.ms / Math.max(1, third.requests)).toFixed(2)} ms a request) |`,
    );
    say(
      `| heap added in the process by the first run, ${stored} documents stored (GC; code compiled on first use included) | ${mb(heap1 - heap0)} MB |`,
    );
    say(`| process RSS added by the first run | ${mb(rss1 - rss0)} MB |`);
    say(
      `| LevelDB on disk added by the documents, their indexes, validators and ${ids.length * 3} reports (uncompacted) | ${mb(dirBytes(dir) - disk0)} MB |`,
    );
    const sizes = first.reports.map((r) => ({
      md: Buffer.byteLength(r.markdown),
      json: Buffer.byteLength(JSON.stringify(r)),
      sources: r.sources.length,
    }));
    const big = sizes.reduce((a, b) => (b.json > a.json ? b : a));
    say(
      `| a first-run report (digest of the top ${big.sources} documents with extracts; largest of ${sizes.length}) | ${kb(big.md)} KB Markdown, ${kb(big.json)} KB stored as JSON (with its Markdown) |`,
    );
    say(
      `| modes of the first-run reports | ${first.reports.map((r) => `${r.topic}: ${r.mode}, ${r.stats.relevant} relevant of ${r.stats.new}`).join('; ')} |`,
    );
    rw.web.requests.length = 0;
    wf.calls.length = 0;
    first.reports.length = second.reports.length = third.reports.length = 0;
    await new Promise((r) => setTimeout(r, 10_500));
    gc();
    const heap3 = process.memoryUsage().heapUsed;
    ac.abort();
    await hand!.stop();
    hand = null;
    gc();
    const heap4 = process.memoryUsage().heapUsed;
    say(
      `| heap the Hand object holds after the three runs (${stored + third.newDocs} documents in its store): its heap minus the heap once it is stopped and dropped (GC) | ${mb(heap3 - heap4)} MB |`,
    );
  } finally {
    await store.close();
    await rw.web.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- 2. research on the daemon ---------------------------------------------------------------------------------

async function researchOnDaemon(say: (line: string) => void): Promise<void> {
  const topics = Math.max(1, Math.min(TOPICS, DAEMON_SITES));
  const rw = await researchWeb(DAEMON_SITES, PER_SITE, topics);
  const t = await startTalon({
    network: { hosts: Object.fromEntries(rw.names.map((n) => [n, '127.0.0.1'])) },
    hands: [
      {
        name: 'research',
        module: 'research',
        capabilities: { network: { hosts: ['*.example', '127.0.0.1'] } },
        settings: { politenessMs: 0, timeoutMs: 10_000, scheduler: '', topics: rw.topics() },
      },
    ],
  });
  try {
    await handsRunning(t, 1);
    const auth = { authorization: `Bearer ${t.token()}` };
    const ids = rw.topics().map((x) => x.id as string);
    const runAllApi = async (): Promise<{ ms: number; newDocs: number; requests: number; notModified: number }> => {
      const t0 = performance.now();
      const answers = await Promise.all(
        ids.map(async (id) => {
          const r = await fetch(`http://127.0.0.1:${t.httpPort}/api/v1/research/topics/${id}/run`, {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
          });
          const body = (await r.json()) as {
            report?: { stats: { new: number; requests: number; notModified: number } };
          };
          if (r.status !== 200 || !body.report) throw new Error(`run ${id}: ${r.status} ${JSON.stringify(body)}`);
          return body.report.stats;
        }),
      );
      return {
        ms: performance.now() - t0,
        newDocs: answers.reduce((n, s) => n + s.new, 0),
        requests: answers.reduce((n, s) => n + s.requests, 0),
        notModified: answers.reduce((n, s) => n + s.notModified, 0),
      };
    };
    const rss0 = memMb(t.proc.pid!).rss;
    const first = await runAllApi();
    say(
      `| on the daemon: ${ids.length} topics over ${DAEMON_SITES} sites run at once through the API, every request through the kernel's fetch (grant, audited): ${first.requests} requests, ${first.newDocs} new documents | **${perMin(first.newDocs, first.ms)} documents/min** (${(first.ms / 1000).toFixed(1)} s) |`,
    );
    const second = await runAllApi();
    say(
      `| on the daemon: the same, nothing changed (${second.requests} requests, ${second.notModified} answered 304) | ${second.ms.toFixed(0)} ms |`,
    );
    const m = await httpGet(t.httpPort, '/metrics', auth);
    const heap = /talon_hand_heap_used_bytes\{[^}]*hand="research"\} ([\d.e+]+)/.exec(m.body)?.[1];
    if (heap)
      say(
        `| on the daemon: the research Hand's worker heap after it (as /metrics reports it, not after a GC; its quota is 128 MB) | ${mb(Number(heap))} MB |`,
      );
    say(
      `| on the daemon: the daemon's RSS after it (before the runs: ${rss0.toFixed(1)} MB) | ${memMb(t.proc.pid!).rss.toFixed(1)} MB |`,
    );
    await new Promise((r) => setTimeout(r, 10_000));
    const m2 = await httpGet(t.httpPort, '/metrics', auth);
    const heap2 = /talon_hand_heap_used_bytes\{[^}]*hand="research"\} ([\d.e+]+)/.exec(m2.body)?.[1];
    say(
      `| on the daemon: 10 s later, idle: the worker heap, the daemon's RSS | ${heap2 ? `${mb(Number(heap2))} MB` : '?'}, ${memMb(t.proc.pid!).rss.toFixed(1)} MB |`,
    );
  } finally {
    await t.stop();
    await rw.web.close();
    rmSync(t.dataDir, { recursive: true, force: true });
  }
}

// ---- 3. leads in process ---------------------------------------------------------------------------------------

const INDUSTRIES = [
  'Robotics',
  'Software',
  'Logistics',
  'Medical Devices',
  'Food',
  'Energy',
  'Construction',
  'Biotech',
  'Optics',
  'Automation',
];
const CITIES = ['Berlin', 'Hamburg', 'Munich', 'Zurich', 'Vienna', 'Oslo', 'Bergen', 'Leipzig', 'Basel', 'Stuttgart'];
const STACKS = [
  '<meta name="generator" content="WordPress 6.5"><script src="/wp-includes/js/jquery/jquery.min.js"></script>',
  '<script src="/_next/static/chunks/main.js"></script><script src="https://www.googletagmanager.com/gtm.js?id=GTM-ABCD12"></script>',
  '<script src="https://cdn.shopify.com/s/files/1/theme.js"></script><script src="https://js.stripe.com/v3/"></script>',
  '<script id="hs-script-loader" async src="//js.hs-scripts.com/1234567.js"></script>',
  '<meta name="generator" content="Wix.com Website Builder">',
];

interface Company {
  name: string;
  host: string;
  city: string;
  industry: string;
  staff: string;
}

function leadsWeb(web: FixtureWeb, n: number): { sources: unknown[]; companies: Company[] } {
  const random = rng(7);
  const vocab = vocabulary(random);
  const cap = (w: string): string => `${w[0]!.toUpperCase()}${w.slice(1)}`;
  const companies: Company[] = Array.from({ length: n }, (_, i) => {
    const a = vocab[Math.floor(random() * vocab.length)]!;
    const industry = INDUSTRIES[Math.floor(random() * INDUSTRIES.length)]!;
    return {
      name: `${cap(a)} ${industry.split(' ')[0]} ${i}`,
      host: `${a}-${i}.example`,
      city: CITIES[Math.floor(random() * CITIES.length)]!,
      industry,
      staff: ['12 employees', '51-200', '1,200', '30', ''][i % 5]!,
    };
  });
  const site = (c: Company): string => web.url(c.host, '/');
  // company sites: every tenth has none (404 everywhere)
  companies.forEach((c, i) => {
    if (i % 10 === 9) {
      web.sites[c.host] = {};
      return;
    }
    const words = Array.from({ length: 60 }, () => vocab[Math.floor(random() * vocab.length)]).join(' ');
    web.sites[c.host] = {
      '/': {
        type: 'text/html; charset=utf-8',
        body: Buffer.from(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${c.name}</title>${STACKS[i % STACKS.length]}` +
            `<meta name="description" content="${c.name} makes ${c.industry.toLowerCase()} products in ${c.city}."></head><body>` +
            `<header><nav><a href="/">Home</a> <a href="/products">Products</a> <a href="/contact">Contact</a></nav></header>` +
            `<main><h1>${c.name}</h1><p>${words}</p><p><a href="https://www.linkedin.com/company/${c.host.split('.')[0]}/">LinkedIn</a></p></main></body></html>`,
        ),
      },
      '/contact': {
        type: 'text/html; charset=utf-8',
        body: Buffer.from(
          `<!doctype html><html><head><title>Contact — ${c.name}</title></head><body><main><h1>Contact</h1>` +
            `<p>Write to <a href="mailto:info@${c.host}">info@${c.host}</a> or sales@${c.host}.</p>` +
            `<p>Call <a href="tel:+4930${String(1000000 + i)}">+49 30 ${1000000 + i}</a></p>` +
            `<p><a href="https://github.com/${c.host.split('.')[0]}">GitHub</a></p></main></body></html>`,
        ),
      },
    };
  });
  // the exhibitor directory (the first 60 %, and the tenth that is in both) and the member table (the rest)
  const expo = companies.filter((_, i) => i < n * 0.6 || i % 10 === 0);
  const fair = companies.filter((_, i) => i >= n * 0.6);
  const perPage = Math.max(25, Math.ceil(Math.max(expo.length, fair.length) / 45));
  const exhibitor = (c: Company): string =>
    `<li class="exhibitor">
    <h3 class="name"><span class="brand">${c.name}</span></h3>
    <div class="meta"><span class="city">${c.city}</span> · <span class="industry">${c.industry}</span></div>
    <a class="site" href="${site(c)}">Visit website</a>
    <a class="booth" href="/booth/${encodeURIComponent(c.city)}">Booth plan</a>
  </li>`;
  const member = (c: Company): string =>
    `<tr class="member" data-sector="${c.industry}"><td class="n"><strong>${c.name}</strong></td><td class="loc">${c.city}</td>
   <td class="web"><a href="${site(c)}">Website</a></td><td class="staff">${c.staff}</td></tr>`;
  web.sites['expo.example'] = { '/robots.txt': { type: 'text/plain', body: 'User-agent: *\nDisallow: /admin\n' } };
  web.sites['fair.example'] = {};
  const pages = (list: Company[]): Company[][] =>
    Array.from({ length: Math.ceil(list.length / perPage) }, (_, p) => list.slice(p * perPage, (p + 1) * perPage));
  pages(expo).forEach((items, p, all) => {
    web.sites['expo.example']![`/exhibitors/${p}`] = {
      type: 'text/html; charset=utf-8',
      body: Buffer.from(
        `<!doctype html><html><head><title>Exhibitors (${p + 1}) — Industry Expo</title></head><body><main><h1>Exhibitors</h1>` +
          `<ul class="exhibitors">${items.map(exhibitor).join('\n')}</ul>` +
          `${p + 1 < all.length ? `<p class="pager"><a class="next" href="/exhibitors/${p + 1}">Next page »</a></p>` : ''}</main></body></html>`,
      ),
    };
  });
  pages(fair).forEach((items, p, all) => {
    web.sites['fair.example']![`/members/${p}`] = {
      type: 'text/html; charset=utf-8',
      body: Buffer.from(
        `<!doctype html><html><head><title>Members — Tech Fair</title></head><body><main><h1>Our members</h1>` +
          `<table class="members"><tbody>${items.map(member).join('\n')}</tbody></table>` +
          `${p + 1 < all.length ? `<p><a class="next" href="/members/${p + 1}">Next</a></p>` : ''}</main></body></html>`,
      ),
    };
  });
  return {
    companies,
    sources: [
      {
        name: 'expo',
        list: web.url('expo.example', '/exhibitors/0'),
        selectors: EXPO_SELECTORS,
        next: 'a.next',
        maxPages: 50,
      },
      {
        name: 'fair',
        list: web.url('fair.example', '/members/0'),
        selectors: FAIR_SELECTORS,
        next: 'a.next',
        maxPages: 50,
      },
    ],
  };
}

export async function leadsInProcess(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-leads-bench-'));
  const web = await startWeb({});
  const crm = await startCrm();
  const { sources } = leadsWeb(web, LEADS_N);
  const store = await Store.open(dir);
  const wf = webFetch(web.port);
  const cf = webFetch(crm.port);
  const webF = wf.fetch;
  const crmF = cf.fetch;
  const fetchFn = ((input: string | URL | { url: string }, init?: never) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    return url.port === String(crm.port) ? crmF(input, init) : webF(input, init);
  }) as HandContext['fetch'];
  let mxCalls = 0;
  const call = (async (method: string, ...args: unknown[]) => {
    if (method === 'secrets.get') return args[0] === 'hs' ? crm.hubspot.token : null;
    if (method === 'dns.mx') {
      mxCalls++;
      return [{ exchange: `mx.${String(args[0])}`, priority: 10 }];
    }
    throw new TalonError('NOT_FOUND', `no kernel service ${method}`);
  }) as HandContext['call'];
  const settings = {
    criteria: {
      industries: ['Robotics', 'Automation', 'Software'],
      locations: ['Berlin', 'Munich', 'Stuttgart'],
      keywords: ['products'],
      technologies: ['WordPress', 'HubSpot', 'Next.js'],
    },
    sources,
    threshold: 50,
    crm: [{ name: 'hubspot', kind: 'hubspot', url: crm.url, secret: 'hs' }],
    enrich: { maxPerScan: 10_000 },
    politenessMs: 0,
    timeoutMs: 5000,
    scheduler: null,
  };
  say('');
  say(`### Lead Generation Hand (in process, real LevelDB, fixture web and HubSpot fake over HTTP, no model)`);
  say('');
  say('| what | figure |');
  say('|---|---|');
  try {
    // a warm-up Hand (its own store namespace, no CRM): one page of each directory, five enrichments
    {
      const ac = new AbortController();
      const warm = new LeadsHand(
        benchCtx(
          'warm-leads',
          store,
          {
            ...settings,
            crm: [],
            enrich: { maxPerScan: 5 },
            sources: (sources as Array<Record<string, unknown>>).map((s) => ({ ...s, maxPages: 1 })),
          },
          ac,
          fetchFn,
          call,
        ),
      );
      await warm.start();
      await warm.scan({});
      ac.abort();
      await warm.stop();
      mxCalls = 0;
    }
    const ac = new AbortController();
    web.requests.length = 0;
    wf.calls.length = 0;
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const rss0 = process.memoryUsage().rss;
    let hand: LeadsHand | null = new LeadsHand(benchCtx('leads', store, settings, ac, fetchFn, call));
    await hand.start();
    const sent0 = crm.hubspot.companies.size;
    const t0 = performance.now();
    const r1 = await hand!.scan({});
    const ms1 = performance.now() - t0;
    const inScan = crm.hubspot.companies.size - sent0;
    const errs = Object.entries(r1.errors as Record<string, number>)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    say(
      `| first scan: ${r1.pages} directory pages, ${r1.found} rows found, ${r1.new} leads (deduped), ${r1.enriched} enriched (home + contact page, MX), scored, ${r1.qualified} qualified and enqueued${inScan ? ` (${inScan} delivered in the scan's own outbox tick)` : ''}; errors: ${errs || 'none'} | **${perMin(r1.new, ms1)} leads/min** (${(ms1 / 1000).toFixed(1)} s, ${(ms1 / Math.max(1, r1.new)).toFixed(1)} ms a lead) |`,
    );
    // deliveries: the outbox's ticks back to back (the Hand ticks every 5 s, at most 20 a target a tick)
    const t1 = performance.now();
    const before = crm.hubspot.companies.size;
    let pending = 1;
    while (pending > 0 && performance.now() - t1 < 120_000) {
      await hand!.tick();
      const s = (await hand!.stats()).deliveries.hubspot;
      pending = s?.pending ?? 0;
    }
    const ms2 = performance.now() - t1;
    const delivered = crm.hubspot.companies.size - before;
    if (delivered > 0)
      say(
        `| deliveries to HubSpot after the scan (search by domain, create; the outbox's synced write), ticks back to back: ${delivered} | **${((delivered / ms2) * 1000).toFixed(1)} deliveries/s**${pending ? ` (${pending} still pending)` : ''} |`,
      );
    say(
      `| the Hand's own pace, from its constants (not measured): a tick every ${TICK_MS / 1000} s, at most ${PER_TICK} deliveries a target a tick (hands/leads/outbox.ts perTick) | ≤ ${(PER_TICK / TICK_MS) * 1000} deliveries/s a target (${r1.qualified} qualified: ≥ ${(Math.ceil(r1.qualified / PER_TICK) - 1) * (TICK_MS / 1000)} s after the scan) |`,
    );
    web.requests.length = 0;
    crm.requests.length = 0;
    wf.calls.length = 0;
    cf.calls.length = 0;
    crm.hubspot.companies.clear(); // the fake's records are not the Hand's
    await new Promise((r) => setTimeout(r, 5500)); // the fetch helper's 5 s timeout signals hold its requests
    gc();
    const heap1 = process.memoryUsage().heapUsed;
    const rss1 = process.memoryUsage().rss;
    const t2 = performance.now();
    const r2 = await hand!.scan({});
    const ms2b = performance.now() - t2;
    say(
      `| second scan, nothing new (${r2.pages} pages, ${r2.found} rows, ${r2.new} new, ${r2.updated} updated, ${r2.enriched} enriched, ${r2.enqueued} enqueued) | ${(ms2b / 1000).toFixed(2)} s (${((ms2b / ms1) * 100).toFixed(1)} % of the first scan; ${perMin(r2.found, ms2b)} rows/min) |`,
    );
    say(
      `| heap added in the process by the first scan and the deliveries, ${r1.new} leads stored, ${delivered + inScan} delivered (GC) | ${mb(heap1 - heap0)} MB (${mb(((heap1 - heap0) / Math.max(1, r1.new)) * 1000)} MB per 1000 leads) |`,
    );
    say(`| process RSS added by the scan and the deliveries | ${mb(rss1 - rss0)} MB |`);
    web.requests.length = 0;
    wf.calls.length = 0;
    await new Promise((r) => setTimeout(r, 5500));
    gc();
    const heap2 = process.memoryUsage().heapUsed;
    ac.abort();
    await hand!.stop();
    hand = null;
    gc();
    const heap3 = process.memoryUsage().heapUsed;
    say(
      `| heap the Hand object holds after both scans (its outbox index, ${r1.new} leads in its store): its heap minus the heap once it is stopped and dropped (GC) | ${mb(heap2 - heap3)} MB (${mb(((heap2 - heap3) / Math.max(1, r1.new)) * 1000)} MB per 1000 leads) |`,
    );
    say(`| dns.mx calls (stub) | ${mxCalls} |`);
  } finally {
    await store.close();
    await web.close();
    await crm.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function researchAll(say: (line: string) => void): Promise<void> {
  // RESEARCH_BENCH_ONLY: process (no daemon) or daemon (only the daemon's rows)
  const only = process.env.RESEARCH_BENCH_ONLY;
  if (only !== 'daemon') await researchInProcess(say);
  if (only !== 'process') await researchOnDaemon(say);
  if (only !== 'daemon') await leadsInProcess(say);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const say = (line: string): void => console.log(line);
  if (!process.env.SCHED_BENCH_NO_HEADER) await reportHeader(say);
  await researchAll(say);
}
