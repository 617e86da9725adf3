/**
 * The kernel's browser: one shared Chromium (playwright-core driving the system's binary, no browser download) that
 * runs jobs for callers that may not spawn processes themselves (a Hand's worker). Later the kernel exposes it as
 * tools (browser.run_flow, browser.goto|click|…); this file is the pool under them.
 *
 * - Chromium is launched lazily on the first job (`executablePath`, default $TALON_CHROMIUM or /usr/bin/chromium);
 *   a missing binary is a NOT_RUNNING error saying how to install it.
 * - Each job gets a fresh BrowserContext (no cookies or storage shared between jobs; downloads accepted, 1280×800,
 *   service workers blocked so every request stays visible to interception) and one page.
 * - Every request of the job is checked by ./guard.ts against the caller's network grant, twice: `context.route`
 *   aborts a refused request before it leaves and records it (`info.refused`; a goto that failed because of it is a
 *   CAPABILITY_DENIED naming the host), and the context's traffic goes through the guard's proxy (GuardProxy, the
 *   job known by its proxy credentials), which checks again and connects to the addresses it checked. The proxy is
 *   what stops redirect hops (route handlers never see them, a playwright rule; they are recorded from the
 *   `request` event) and what pins DNS (Chromium does not resolve proxied names itself).
 * - At most `maxPages` pages are open across jobs: a job takes one, a popup takes one more or is closed when none is
 *   free; jobs wait in a queue for a page. Dialogs are dismissed (a confirm answers false; a beforeunload is accepted)
 *   and recorded, so an alert cannot hang a job.
 * - Memory: between jobs (when none runs), a browser whose process tree's memory (PSS, else VmRSS, of the browser
 *   process and its descendants, from /proc; see treeRssMb) is over `maxRssMb` is closed and launched again on the
 *   next job.
 * - Launch flags (CHROMIUM_FLAGS): no sandbox and no GPU (a board), no background networking, and the features whose
 *   requests Chromium makes on its own turned off (one --disable-features holding playwright's names and ours:
 *   Chromium keeps only the last), so the guard's proxy sees only what pages ask for.
 * - A browser that crashes or disconnects during a job: the job is run once more on a fresh browser; a second crash
 *   is a TOOL_FAILED. A job's page whose renderer crashes while the browser stays up (the page's `crash` event: out of
 *   memory, a renderer bug) is the same: the job runs once more, in a fresh context on the same browser, and a second
 *   crash is a TOOL_FAILED saying the page crashed. A popup's crash is not the job's.
 */
import { access, readdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { NetworkGrant } from '../core/hand.ts';
import { TalonError } from '../core/errors.ts';
import { GuardProxy, grantChecker, type Resolver } from './guard.ts';

/**
 * The features playwright-core (1.65) disables with its own `--disable-features`. Chromium keeps only the last
 * `--disable-features` on its command line, so ours repeats these (test/runtime/browser/pool.test.ts reads the running
 * browser's command line and fails when playwright's list has a name this one lacks).
 */
export const PLAYWRIGHT_DISABLED_FEATURES = [
  'AvoidUnnecessaryBeforeUnloadCheckSync',
  'DestroyProfileOnBrowserClose',
  'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay',
  'MediaRouter',
  'PaintHolding',
  'ThirdPartyStoragePartitioning',
  'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin',
  'OptimizationHints',
  'NetworkTimeServiceQuerying',
  'AimEnabled',
  'PreconnectToSearch',
  'msForceBrowserSignIn',
  'msEdgeUpdateLaunchServicesPreferredVersion',
] as const;

/**
 * Chromium's own requests that went to the guard's proxy (and were refused and logged) with playwright's flags alone,
 * measured on Debian's Chromium 156 (which ships a Google API key): a page with a form asks
 * content-autofill.googleapis.com for field types on every load (AutofillServerCommunication).
 */
export const TALON_DISABLED_FEATURES = ['AutofillServerCommunication'] as const;

export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // WebRTC's UDP would not go through the guard's proxy
  '--force-webrtc-ip-handling-policy=disable_non_proxied_udp',
  `--disable-features=${[...PLAYWRIGHT_DISABLED_FEATURES, ...TALON_DISABLED_FEATURES].join(',')}`,
] as const;

export interface BrowserPoolOptions {
  /** default $TALON_CHROMIUM, else /usr/bin/chromium */
  executablePath?: string;
  /** pages open at once across jobs, popups included (default 4) */
  maxPages?: number;
  /** the browser's process tree RSS above which it is restarted between jobs (default 600) */
  maxRssMb?: number;
  /** how long Chromium may take to start (default 60 s) */
  launchTimeoutMs?: number;
  /** the DNS the guard uses (default the system's lookup) */
  resolve?: Resolver;
  log?: (msg: string) => void;
}

export interface Refusal {
  url: string;
  reason: string;
}

/** what a job's function sees besides its page: filled while it runs */
export interface JobInfo {
  /** requests the guard refused (aborted), in order */
  refused: Refusal[];
  /** dialogs (alert, confirm, prompt, beforeunload) that were answered: dismissed, a beforeunload accepted */
  dialogs: Array<{ type: string; message: string }>;
  /** popups closed because no page was free */
  popupsClosed: number;
  /** 1, or 2 when the job runs again after a browser crash */
  attempt: number;
  /** aborted when the job is cancelled or times out */
  signal: AbortSignal;
}

export interface JobOptions {
  signal?: AbortSignal;
  /** the whole job, queue wait excluded (default 120 s) */
  timeoutMs?: number;
}

export interface BrowserStats {
  launches: number;
  restarts: number;
  crashes: number;
  jobs: number;
  refused: number;
  /** the browser's process tree RSS, when it runs */
  rssMb?: number;
}

const CLOSED = /closed|crash|disconnected|Target page|Browser has been/i;

export class BrowserPool {
  readonly #executablePath: string;
  readonly #maxPages: number;
  readonly #maxRssMb: number;
  readonly #launchTimeoutMs: number;
  readonly #resolve: Resolver | undefined;
  readonly #log: (msg: string) => void;
  #browser: Promise<Browser> | null = null;
  /** the browser #browser resolved to */
  #launched: Browser | null = null;
  readonly #proxy = new GuardProxy();
  #pid: number | undefined;
  /** jobs holding the current browser (a restart waits for none) */
  #running = 0;
  #open = 0;
  #queue: Array<() => void> = [];
  #closed = false;
  #stats = { launches: 0, restarts: 0, crashes: 0, jobs: 0, refused: 0 };

  constructor(opts: BrowserPoolOptions = {}) {
    this.#executablePath = opts.executablePath ?? process.env.TALON_CHROMIUM ?? '/usr/bin/chromium';
    this.#maxPages = Math.max(1, opts.maxPages ?? 4);
    this.#maxRssMb = opts.maxRssMb ?? 600;
    this.#launchTimeoutMs = opts.launchTimeoutMs ?? 60_000;
    this.#resolve = opts.resolve;
    this.#log = opts.log ?? (() => {});
  }

  /** the browser process's id while it runs (tests kill it to simulate a crash) */
  get pid(): number | undefined {
    return this.#pid;
  }

  async stats(): Promise<BrowserStats> {
    const rss = this.#pid === undefined ? undefined : await treeRssMb(this.#pid);
    return { ...this.#stats, ...(rss === undefined ? {} : { rssMb: rss }) };
  }

  /** Runs `fn` on a fresh context's page under `grant`; see the file's comment. */
  async job<T>(
    grant: NetworkGrant,
    fn: (page: Page, ctx: BrowserContext, info: JobInfo) => Promise<T>,
    opts: JobOptions = {},
  ): Promise<T> {
    if (this.#closed) throw new TalonError('NOT_RUNNING', 'the browser pool is closed');
    await this.#acquire(opts.signal);
    this.#stats.jobs++;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.#attempt(grant, fn, opts, attempt);
        } catch (err) {
          if (!(err instanceof Crash)) throw err;
          this.#stats.crashes++;
          this.#log(`browser: the ${err.what} crashed during a job (attempt ${attempt}): ${err.message}`);
          if (attempt >= 2)
            throw new TalonError(
              'TOOL_FAILED',
              `the ${err.what} crashed twice during the job (${err.message}); the job was not retried again: ` +
                (err.what === 'page'
                  ? 'the page may be too big for the memory here, or it crashes Chromium; try a lighter page'
                  : 'see the log for why Chromium stopped'),
              { cause: err.cause ?? err },
            );
        }
      }
    } finally {
      this.#release(1);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#queue.splice(0)) w();
    await this.#shutdown();
    await this.#proxy.close();
  }

  // ---- one attempt ---------------------------------------------------------------------

  async #attempt<T>(
    grant: NetworkGrant,
    fn: (page: Page, ctx: BrowserContext, info: JobInfo) => Promise<T>,
    opts: JobOptions,
    attempt: number,
  ): Promise<T> {
    let browser: Browser;
    this.#running++;
    try {
      if (this.#running === 1) await this.#checkMemory();
      browser = await this.#ensure();
      await this.#proxy.start();
    } catch (err) {
      this.#running--;
      throw err;
    }
    const ac = new AbortController();
    const info: JobInfo = { refused: [], dialogs: [], popupsClosed: 0, attempt, signal: ac.signal };
    const popups = new Set<Page>();
    let context: BrowserContext | undefined;
    const checker = grantChecker(grant, this.#resolve ? { resolve: this.#resolve } : {});
    const ticket = this.#proxy.ticket(checker, (what, reason) =>
      this.#log(`browser: the proxy refused ${what.slice(0, 200)}: ${reason}`),
    );
    /** redirect hops being checked (an error of fn waits for them: the refusal may explain it) */
    const pending = new Set<Promise<void>>();
    let denied: { host: string; reason: string; redirect: boolean } | null = null;
    let disconnected = false;
    let pageCrash: Crash | null = null;
    const onDisconnect = (): void => {
      disconnected = true;
      ac.abort(new Crash('the browser disconnected'));
    };
    browser.on('disconnected', onDisconnect);
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(
      () => ac.abort(new TalonError('TOOL_TIMEOUT', `the browser job took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = (): void =>
      ac.abort(opts.signal?.reason ?? new TalonError('NOT_RUNNING', 'the browser job was cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (opts.signal?.aborted) onAbort();
      context = await browser.newContext({
        acceptDownloads: true,
        viewport: { width: 1280, height: 800 },
        serviceWorkers: 'block',
        javaScriptEnabled: true,
        proxy: ticket.proxy,
      });
      const ctx = context;
      ctx.setDefaultTimeout(Math.min(30_000, timeoutMs));
      const guard = checker.url;
      const refuse = (url: string, reason: string): void => {
        info.refused.push({ url, reason });
        this.#stats.refused++;
        this.#log(`browser: refused ${url.slice(0, 200)}: ${reason}`);
      };
      await ctx.route('**/*', async (route) => {
        const req = route.request();
        const url = req.url();
        const answer = await guard(url);
        if (answer.ok) return route.continue().catch(() => {});
        refuse(url, answer.reason);
        if (req.isNavigationRequest() && req.frame().parentFrame() === null)
          denied = { host: hostOf(url), reason: answer.reason, redirect: false };
        return route.abort('blockedbyclient').catch(() => {});
      });
      // redirect hops never reach route handlers: the proxy blocks them; here they are recorded
      ctx.on('request', (req) => {
        const from = req.redirectedFrom();
        if (!from) return;
        const url = req.url();
        const check = guard(url).then((answer) => {
          if (answer.ok) return;
          refuse(url, `a redirect from ${from.url().slice(0, 200)}: ${answer.reason}`);
          if (req.isNavigationRequest() && req.frame().parentFrame() === null)
            denied ??= { host: hostOf(url), reason: answer.reason, redirect: true };
        });
        pending.add(check);
        void check.finally(() => pending.delete(check));
      });
      ctx.on('dialog', (d) => {
        info.dialogs.push({ type: d.type(), message: d.message().slice(0, 1000) });
        // as playwright does without a listener: a page may leave (beforeunload), nothing else is confirmed
        void (d.type() === 'beforeunload' ? d.accept() : d.dismiss()).catch(() => {});
      });
      let main: Page | null = null;
      ctx.on('page', (p) => {
        if (main === null || p === main) return;
        if (this.#open >= this.#maxPages) {
          info.popupsClosed++;
          this.#log(`browser: closed a popup (${this.#maxPages} pages open)`);
          void p.close().catch(() => {});
          return;
        }
        this.#open++;
        popups.add(p);
        p.once('close', () => {
          if (popups.delete(p)) this.#release(1);
        });
      });
      main = await ctx.newPage();
      const page = main;
      // the renderer died while the browser stays up: the job's page is useless, the job may run again
      page.once('crash', () => {
        pageCrash = new Crash(
          `the page crashed (its renderer process died) on ${page.url().slice(0, 200)}`,
          undefined,
          'page',
        );
        ac.abort(pageCrash);
      });
      const work = fn(page, ctx, info);
      const result = await new Promise<T>((resolve, reject) => {
        if (ac.signal.aborted) reject(ac.signal.reason);
        ac.signal.addEventListener('abort', () => reject(ac.signal.reason), { once: true });
        work.then(resolve, reject);
      });
      return result;
    } catch (err) {
      if (err instanceof Crash) throw err;
      await Promise.allSettled([...pending]);
      if (denied && !(err instanceof TalonError && err.code !== 'CAPABILITY_DENIED')) throw deniedError(denied);
      if (!disconnected && !pageCrash && err instanceof Error && CLOSED.test(err.message)) {
        // a killed browser (a crashed page) can fail the page call before its `disconnected` (`crash`) event arrives
        await waitFor(() => disconnected || pageCrash !== null || !browser.isConnected(), 2000);
      }
      if (disconnected || !browser.isConnected()) throw new Crash((err as Error).message ?? String(err), err);
      if (pageCrash) throw pageCrash;
      throw err;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      browser.off('disconnected', onDisconnect);
      if (context) await context.close().catch(() => {});
      ticket.release();
      for (const p of popups) {
        popups.delete(p);
        this.#release(1);
      }
      this.#running--;
      if (disconnected) this.#forget(browser);
    }
  }

  // ---- the browser ---------------------------------------------------------------------

  #ensure(): Promise<Browser> {
    if (this.#closed) return Promise.reject(new TalonError('NOT_RUNNING', 'the browser pool is closed'));
    if (!this.#browser) {
      const p = this.#launch();
      this.#browser = p;
      p.catch(() => {
        if (this.#browser === p) this.#browser = null;
      });
    }
    return this.#browser;
  }

  async #launch(): Promise<Browser> {
    const missing = (): TalonError =>
      new TalonError(
        'NOT_RUNNING',
        `Chromium is not installed at ${this.#executablePath}; install it: apt-get install chromium, or set TALON_CHROMIUM to its path`,
      );
    try {
      await access(this.#executablePath);
    } catch {
      throw missing();
    }
    const marker = `--talon-browser-pool=${randomBytes(8).toString('hex')}`;
    // loaded on the first launch, not at the kernel's start (outside the bundle; in the binary, from the browser
    // companion: image/bundle.ts): a missing driver is said as it is, not as Chromium failing to start
    let chromium: typeof import('playwright-core').chromium;
    try {
      ({ chromium } = await import('playwright-core'));
    } catch (err) {
      throw new TalonError('NOT_RUNNING', (err as Error).message.split('\n')[0] ?? 'playwright-core did not load', {
        cause: err,
      });
    }
    let browser: Browser;
    try {
      browser = await chromium.launch({
        executablePath: this.#executablePath,
        headless: true,
        args: [...CHROMIUM_FLAGS, marker],
        timeout: this.#launchTimeoutMs,
      });
    } catch (err) {
      if (/ENOENT|doesn't exist|no such file/i.test((err as Error).message)) throw missing();
      throw new TalonError(
        'NOT_RUNNING',
        `Chromium (${this.#executablePath}) did not start: ${(err as Error).message.split('\n')[0]}`,
        { cause: err },
      );
    }
    this.#stats.launches++;
    this.#launched = browser;
    browser.on('disconnected', () => this.#forget(browser));
    this.#pid = await findChild(marker);
    this.#log(`browser: Chromium started (pid ${this.#pid ?? '?'})`);
    return browser;
  }

  /** a browser that went away: the next job launches another */
  #forget(browser: Browser): void {
    if (this.#launched !== browser) return;
    this.#launched = null;
    this.#browser = null;
    this.#pid = undefined;
  }

  async #checkMemory(): Promise<void> {
    if (!this.#browser || this.#pid === undefined) return;
    const rss = await treeRssMb(this.#pid);
    // only between jobs: the job asking is the one running
    if (rss === undefined || rss <= this.#maxRssMb || this.#running > 1) return;
    this.#log(`browser: RSS ${rss} MB over ${this.#maxRssMb} MB; restarting Chromium`);
    this.#stats.restarts++;
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    const cur = this.#browser;
    this.#browser = null;
    this.#launched = null;
    this.#pid = undefined;
    if (cur) await cur.then((b) => b.close()).catch(() => {});
  }

  // ---- pages ---------------------------------------------------------------------------

  async #acquire(signal?: AbortSignal): Promise<void> {
    while (this.#open >= this.#maxPages) {
      if (signal?.aborted) throw new TalonError('NOT_RUNNING', 'the browser job was cancelled while it waited');
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', wake);
          const i = this.#queue.indexOf(wake);
          if (i >= 0) this.#queue.splice(i, 1);
          resolve();
        };
        this.#queue.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
      if (this.#closed) throw new TalonError('NOT_RUNNING', 'the browser pool is closed');
    }
    this.#open++;
  }

  #release(n: number): void {
    this.#open -= n;
    while (this.#open < this.#maxPages && this.#queue.length) this.#queue.shift()!();
  }
}

/** the browser went away under a job, or the job's page crashed (the job may run again) */
class Crash extends Error {
  readonly what: 'browser' | 'page';
  constructor(message: string, cause?: unknown, what: 'browser' | 'page' = 'browser') {
    super(message, { cause });
    this.what = what;
  }
}

function deniedError(d: { host: string; reason: string; redirect: boolean }): TalonError {
  return new TalonError(
    'CAPABILITY_DENIED',
    `the page may not go to ${d.host}${d.redirect ? ' (a redirect)' : ''}: ${d.reason}`,
    { details: { action: 'browser.goto', subject: d.host } },
  );
}

function hostOf(url: string): string {
  try {
    return new URL(url).host || url.slice(0, 80);
  } catch {
    return url.slice(0, 80);
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
}

/** the pid of this process's child whose command line holds `marker` */
async function findChild(marker: string): Promise<number | undefined> {
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (!cmd.split('\0').includes(marker)) continue;
    if ((await ppidOf(Number(e))) === process.pid) return Number(e);
  }
  return undefined;
}

async function ppidOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest.length > 1 ? Number(rest[1]) : undefined;
}

/**
 * The memory of `pid` and its descendants in MB; undefined if it is gone. Each process counts its PSS (Pss in
 * /proc/<pid>/smaps_rollup: shared pages split among the processes sharing them), else its VmRSS: Chromium's
 * processes share much (the binary, fonts), and summing VmRSS counts that once per process (measured: 8 processes
 * with 3 small pages open, 584 MB of summed VmRSS, 364 MB of PSS).
 */
export async function treeRssMb(pid: number): Promise<number | undefined> {
  const children = new Map<number, number[]>();
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const ppid = await ppidOf(Number(e));
    if (ppid === undefined) continue;
    const list = children.get(ppid);
    if (list) list.push(Number(e));
    else children.set(ppid, [Number(e)]);
  }
  let kb = 0;
  let found = false;
  const todo = [pid];
  const seen = new Set<number>();
  while (todo.length) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    const rollup = await readFile(`/proc/${p}/smaps_rollup`, 'utf8').catch(() => '');
    const m =
      /^Pss:\s+(\d+)\s+kB/m.exec(rollup) ??
      /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${p}/status`, 'utf8').catch(() => ''));
    if (m) {
      kb += Number(m[1]);
      if (p === pid) found = true;
    }
    todo.push(...(children.get(p) ?? []));
  }
  return found ? Math.round(kb / 1024) : undefined;
}
