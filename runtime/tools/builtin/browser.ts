/**
 * The browser tools (issue 20): the kernel's shared Chromium (../../browser/pool.ts) as tools a Hand, the agent loop
 * or an admin calls through the registry. A Hand's worker cannot spawn processes, so this is how it gets a browser.
 *
 * - `browser.read` one page (JavaScript run): its text or a selector's, an attribute, optionally a screenshot, or
 *   (`visual: true`) a screenshot of the element and its fingerprint (../../browser/visual.ts) for visual watches.
 * - `browser.run_flow` a scripted flow (../../core/flow.ts parses it, before any browser starts; a bad one is
 *   TOOL_BAD_INPUT naming the step; ../../browser/flow-runner.ts runs it); `{ secret: NAME }` values come from the
 *   sealed secrets the caller's `secrets` grant names (an admin: any).
 * - Sessions for model-directed exploration: `browser.open` → a session id, then `browser.goto|click|fill|extract|
 *   snapshot|screenshot|close` on it. A session is one pool job held open: it belongs to its caller (another caller
 *   gets NOT_FOUND), idles out after 5 minutes, and a caller has at most 2.
 * - `browser.click` on a button, a link or a form submitter whose accessible name, the form's action or the link's
 *   target says pay / buy / order / checkout / delete / send … (PAY_DELETE_SEND) asks a person first, from inside the
 *   tool (ToolRunContext.approve, the registry's approvals queue): denied → APPROVAL_DENIED and nothing is clicked.
 *
 * Every request of every page is checked by the pool against the caller's network grant (an admin: ADMIN_NETWORK);
 * `check` refuses a URL whose host the grant does not name before anything starts (CAPABILITY_DENIED). Files
 * (screenshots, downloads) go into the caller's folder under `browser/`, named `browser/<what>-<ms>…`; outputs name
 * them relative to that folder; KernelBrowser prunes them (../../browser/retention.ts: 7 days, 200 MiB per caller).
 * One KernelBrowser per kernel (runtime/host/tools.ts): the pool is made on the first browser call and closed, with
 * the sessions, when the kernel stops.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { runFlow } from '../../browser/flow-runner.ts';
import { type SweepOptions, sweepBrowserFiles } from '../../browser/retention.ts';
import { fingerprint, MAX_PIXELS, type Visual } from '../../browser/visual.ts';
import { BrowserPool, type BrowserPoolOptions, type JobInfo, type Refusal } from '../../browser/pool.ts';
import { TalonError } from '../../core/errors.ts';
import { type Flow, type ParsedSelector, type Step, parseFlow, parseSelector, resolveInputs } from '../../core/flow.ts';
import { globMatches } from '../../core/grants.ts';
import type { NetworkGrant } from '../../core/hand.ts';
import { NetworkPolicy } from '../../core/network.ts';
import type { ToolCaller, ToolDefinition, ToolRunContext } from '../types.ts';
import { ADMIN_NETWORK } from './web.ts';

const KiB = 1024;
const MAX_URL = 8192;
const MAX_TEXT = 200_000;
const SESSION_IDLE_MS = 5 * 60_000;
/** a session's job may not outlive this, idle or not */
const SESSION_MAX_MS = 4 * 3600_000;
const SESSIONS_PER_CALLER = 2;
const DEFAULT_SNAPSHOT_CHARS = 6000;
/** what a person is asked about before a click (see the file's comment); a word may go on (payment, orders) */
export const PAY_DELETE_SEND =
  /(^|[^\p{L}])(pay|buy|order|check[ -]?out|purchase|delete|remove|send|transfer|unsubscribe|kaufen|bestellen|bezahlen|löschen|senden)/iu;

export interface BrowserToolDeps {
  /** the kernel's browser (default: one of its own, made lazily) */
  browser?: KernelBrowser;
  /** a sealed secret's value, undefined when it is not set */
  secret?: (name: string) => Promise<string | undefined>;
}

export interface RetentionOptions extends Omit<SweepOptions, 'now'> {
  /** a caller's folder is swept at most this often (default 1 hour) */
  intervalMs?: number;
}

/**
 * The kernel's one browser pool (made on the first call) and the open sessions; close() when the kernel stops.
 *
 * Retention (../../browser/retention.ts): the folders of the callers it served are swept, driven by activity: a
 * caller's first browser call sweeps its folder (files left by an earlier run of the daemon included), and a later call
 * sweeps it again when its last sweep is `intervalMs` old; an unref'd timer, started by the first call, sweeps every
 * folder seen every `intervalMs` (an idle caller's old files go too). `retention: false` turns it off.
 */
export class KernelBrowser {
  readonly #opts: BrowserPoolOptions;
  #pool: BrowserPool | null = null;
  readonly sessions = new Map<string, Session>();
  readonly #idleMs: number;
  readonly #retention: RetentionOptions | null;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #log: (msg: string) => void;
  /** caller folders seen, and when each was last swept */
  readonly #folders = new Map<string, number>();
  #sweeping: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    opts: BrowserPoolOptions & {
      sessionIdleMs?: number;
      retention?: RetentionOptions | false;
      now?: () => number;
    } = {},
  ) {
    const { sessionIdleMs, retention, now, ...pool } = opts;
    this.#opts = pool;
    this.#idleMs = sessionIdleMs ?? SESSION_IDLE_MS;
    this.#retention = retention === false ? null : (retention ?? {});
    this.#intervalMs = this.#retention?.intervalMs ?? 3600_000;
    this.#now = now ?? Date.now;
    this.#log = pool.log ?? (() => {});
  }

  /**
   * A caller's browser call: its folder is swept when it was never swept or not for `intervalMs`. Answers when that
   * sweep (if any) is done; callers do not wait for it.
   */
  noteCaller(folder: string): Promise<void> {
    if (!this.#retention) return Promise.resolve();
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => void this.sweep(), this.#intervalMs);
      this.#timer.unref();
    }
    const last = this.#folders.get(folder);
    if (last !== undefined && this.#now() - last < this.#intervalMs) return this.#sweeping;
    return this.#sweepFolders([folder]);
  }

  /** Sweeps every caller folder seen now; answers when done (and when earlier sweeps are done). */
  sweep(): Promise<void> {
    return this.#sweepFolders([...this.#folders.keys()]);
  }

  #sweepFolders(folders: string[]): Promise<void> {
    const r = this.#retention;
    if (!r) return this.#sweeping;
    for (const f of folders) this.#folders.set(f, this.#now());
    this.#sweeping = this.#sweeping.then(async () => {
      for (const f of folders) {
        try {
          const res = await sweepBrowserFiles(f, { ...r, now: this.#now() });
          const bytes = res.removed.reduce((n, x) => n + x.size, 0);
          if (res.removed.length)
            this.#log(
              `browser: removed ${res.removed.length} old files (${bytes} bytes) from ${join(f, 'browser')}; ` +
                `${res.kept} kept`,
            );
        } catch (err) {
          this.#log(`browser: could not sweep ${join(f, 'browser')}: ${(err as Error).message}`);
        }
      }
    });
    return this.#sweeping;
  }

  get idleMs(): number {
    return this.#idleMs;
  }

  /** the pool, made now if it was not yet (Chromium itself starts on the first job) */
  pool(): BrowserPool {
    this.#pool ??= new BrowserPool(this.#opts);
    return this.#pool;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
    for (const s of [...this.sessions.values()]) s.end();
    this.sessions.clear();
    const p = this.#pool;
    this.#pool = null;
    if (p) await p.close();
  }
}

interface Session {
  id: string;
  owner: string;
  page: Page;
  info: JobInfo;
  /** ends the session's job (the pool closes its context) */
  end(): void;
  touch(): void;
  /** the session's calls run one at a time */
  queue: Promise<unknown>;
}

// ---- inputs and outputs -------------------------------------------------------------------------

export interface BrowserReadInput {
  url: string;
  selector?: string;
  attribute?: string;
  waitFor?: string;
  timeoutMs?: number;
  screenshot?: boolean;
  /** a visual fingerprint of the element (or the viewport), with its screenshot */
  visual?: boolean;
}

export interface BrowserReadOutput {
  url: string;
  finalUrl: string;
  status: number;
  title: string;
  found: boolean;
  text: string | null;
  value?: string | null;
  screenshot?: string;
  /** with input visual: true and the element found (../../browser/visual.ts) */
  visual?: Visual;
  refused: Refusal[];
}

export interface RunFlowInput {
  flow: Record<string, unknown>;
  inputs?: Record<string, unknown>;
}

const urlProp = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_URL,
  description: 'an absolute http:// or https:// URL',
};
const selectorProp = {
  type: 'string',
  minLength: 1,
  maxLength: 1000,
  description: 'CSS (#id, .class), text=Sign in (text="Sign in" exact), or role=button[name="Sign in"]',
};
const sessionProp = { type: 'string', minLength: 1, maxLength: 64, description: 'the id browser.open answered' };
const refusedSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['url', 'reason'],
    properties: { url: { type: 'string' }, reason: { type: 'string' } },
  },
};
/** browser.read's `visual` (runtime/browser/visual.ts, type Visual) */
const visualSchema = {
  type: 'object',
  required: ['width', 'height', 'cols', 'rows', 'cells'],
  description:
    "the screenshot's fingerprint: the PNG (width × height pixels) cut into cols × rows cells (cols = min(32, " +
    'width), rows ≤ 32 so cells are about square); cells is base64 of cols × rows bytes, row-major, each the mean ' +
    'luminance 0–255 (0.299 R + 0.587 G + 0.114 B, alpha over white) of its cell',
  properties: {
    width: { type: 'integer', minimum: 1 },
    height: { type: 'integer', minimum: 1 },
    cols: { type: 'integer', minimum: 1, maximum: 32 },
    rows: { type: 'integer', minimum: 1, maximum: 32 },
    cells: { type: 'string', contentEncoding: 'base64' },
  },
};
const dialogSchema = {
  type: 'object',
  required: ['type', 'message', 'answer'],
  properties: {
    type: { type: 'string', description: 'alert, confirm, prompt or beforeunload' },
    message: { type: 'string' },
    answer: { type: 'string', enum: ['dismissed', 'accepted'] },
  },
};
const pageSchema = (extra: Record<string, unknown> = {}, required: string[] = []) => ({
  type: 'object',
  required: ['url', 'title', ...required],
  properties: { url: { type: 'string' }, title: { type: 'string' }, ...extra },
});
const OPEN_WORLD = { openWorldHint: true, idempotentHint: false } as const;
const CAPABILITY = 'network: the hosts of the grant (every request of the page is checked)';

export function browserTools(deps: BrowserToolDeps = {}): ToolDefinition[] {
  const kb = deps.browser ?? new KernelBrowser();
  const secret = deps.secret ?? (async () => undefined);

  const read: ToolDefinition<BrowserReadInput, BrowserReadOutput> = {
    name: 'browser.read',
    description:
      'Load one page in a real browser (JavaScript runs) and return its final URL, HTTP status, title and visible ' +
      'text, or the text (and an attribute) of the first element a selector matches (found: false when none does). ' +
      'waitFor waits for an element first (content a script renders later). screenshot: true stores a PNG in the ' +
      "caller's folder. visual: true stores a PNG of the element (or the viewport) and answers its fingerprint " +
      '(visual: a grid of mean luminances) to compare with a later read. An HTTP error status is not an error: ' +
      'status says it. Use web.read for pages without scripts.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: urlProp,
        selector: selectorProp,
        attribute: { type: 'string', minLength: 1, maxLength: 200, description: "the selector's element's attribute" },
        waitFor: { ...selectorProp, description: `wait until this element is visible; ${selectorProp.description}` },
        timeoutMs: { type: 'integer', minimum: 1, maximum: 60_000, default: 30_000 },
        screenshot: { type: 'boolean', default: false },
        visual: {
          type: 'boolean',
          default: false,
          description:
            'a visual fingerprint of the element (or of the viewport without a selector) and its screenshot, to ' +
            'compare with a later read',
        },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['url', 'finalUrl', 'status', 'title', 'found', 'text', 'refused'],
      properties: {
        url: { type: 'string' },
        finalUrl: { type: 'string' },
        status: { type: 'integer' },
        title: { type: 'string' },
        found: { type: 'boolean' },
        text: { type: ['string', 'null'] },
        value: { type: ['string', 'null'] },
        screenshot: { type: 'string' },
        visual: visualSchema,
        refused: refusedSchema,
      },
    },
    annotations: { title: 'Read a page in a browser', readOnlyHint: true, ...OPEN_WORLD },
    capability: CAPABILITY,
    timeoutMs: 120_000,
    maxOutputBytes: 256 * KiB,
    check: (input, caller) => checkUrlGrant(input.url, caller),
    run: async (input, ctx) => {
      const url = toolUrl(input.url).href;
      const sel = input.selector === undefined ? undefined : selector(input.selector, '/selector');
      const waitFor = input.waitFor === undefined ? undefined : selector(input.waitFor, '/waitFor');
      if (input.attribute !== undefined && !sel)
        throw badInput('/attribute', 'attribute needs a selector: the element whose attribute is read');
      const timeout = Math.min(input.timeoutMs ?? 30_000, ctx.timeoutMs);
      return job(kb, ctx, timeout + 30_000, async (page, info) => {
        const res = await page.goto(url, { timeout, waitUntil: 'load' });
        if (waitFor)
          await locate(page, waitFor)
            .first()
            .waitFor({ state: 'visible', timeout })
            .catch((err: Error) => {
              throw new TalonError(
                'TOOL_FAILED',
                `no element matches waitFor ${waitFor.source} within ${timeout} ms on ${page.url()}`,
                { cause: err },
              );
            });
        const out: BrowserReadOutput = {
          url,
          finalUrl: page.url(),
          status: res?.status() ?? 0,
          title: await page.title(),
          found: true,
          text: null,
          refused: info.refused,
        };
        const el = sel ? locate(page, sel).first() : page.locator('body');
        out.found = (await el.count()) > 0;
        // the visible text (textContent would add hidden text and scripts)
        // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what a person reads
        if (out.found) out.text = cap((await el.innerText({ timeout })).trim(), MAX_TEXT);
        if (input.attribute !== undefined)
          out.value = out.found ? await el.getAttribute(input.attribute, { timeout }) : null;
        if (input.visual) {
          if (out.found) {
            const unseen = (why: string, cause?: unknown): TalonError =>
              new TalonError(
                'TOOL_FAILED',
                `the element ${sel?.source} on ${page.url()} could not be photographed (${why}); a visual read needs ` +
                  'a visible element with a size: choose one that is shown',
                { cause },
              );
            let png: Buffer;
            if (sel) {
              // an element without a box would make the screenshot wait its whole timeout for it
              const box = await el.boundingBox({ timeout });
              if (!box || box.width < 1 || box.height < 1)
                throw unseen(box ? `it is ${box.width}×${box.height} pixels` : 'it is not shown');
              // a page sizes its element: no screenshot the kernel would refuse to decode is taken at all
              if (box.width * box.height > MAX_PIXELS)
                throw unseen(
                  `it is ${Math.round(box.width)}×${Math.round(box.height)} pixels, over ${MAX_PIXELS}: choose a smaller part`,
                );
              png = await el.screenshot({ timeout }).catch((err: Error) => {
                throw unseen(err.message.split('\n')[0]!, err);
              });
            } else png = await page.screenshot({ timeout });
            out.screenshot = await saveFile(ctx.caller, 'read', '.png', png);
            out.visual = await fingerprint(png);
          }
        } else if (input.screenshot)
          out.screenshot = await saveFile(ctx.caller, 'read', '.png', await page.screenshot({ timeout }));
        return out;
      });
    },
  };

  const flowTool: ToolDefinition<RunFlowInput, unknown> = {
    name: 'browser.run_flow',
    description:
      'Run a scripted browser flow (JSON: { name, inputs?, output?, limits?, steps: [ { goto }, { fill }, { click }, ' +
      '{ extract }, … ] }) and return ok, the extracted output, each step (path, kind, ms, ok, error, url), the ' +
      "failure (which step, why, the URL, a screenshot), and the screenshots and downloads stored in the caller's " +
      'folder. A bad flow is refused naming the step before the browser starts. { secret: NAME } values come from ' +
      'the sealed secrets the caller may read.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['flow'],
      properties: {
        flow: { type: 'object', description: 'the flow: { name, steps: [...] } (see the description)' },
        inputs: { type: 'object', description: 'the flow inputs, by name' },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['ok', 'output', 'steps', 'screenshots', 'downloads', 'refused'],
      properties: {
        ok: { type: 'boolean' },
        output: {},
        steps: {
          type: 'array',
          items: {
            type: 'object',
            required: ['index', 'path', 'kind', 'ms', 'ok', 'url'],
            properties: {
              index: { type: 'integer' },
              path: { type: 'string' },
              kind: { type: 'string' },
              ms: { type: 'number' },
              ok: { type: 'boolean' },
              error: { type: 'string' },
              url: { type: 'string' },
              dialogs: { type: 'array', items: dialogSchema },
              popups: { type: 'array', items: { type: 'string' }, description: 'URLs of windows opened, closed' },
            },
          },
        },
        dialogs: {
          type: 'array',
          description: 'the dialogs the pages raised, answered without a person (a confirm is answered false)',
          items: {
            ...dialogSchema,
            required: [...dialogSchema.required, 'path'],
            properties: { ...dialogSchema.properties, path: { type: 'string' } },
          },
        },
        popups: {
          type: 'array',
          description:
            'windows the pages opened (window.open, target=_blank), closed at once: the flow stays in its page',
          items: {
            type: 'object',
            required: ['url', 'path'],
            properties: { url: { type: 'string' }, path: { type: 'string' } },
          },
        },
        failure: {
          type: 'object',
          required: ['path', 'kind', 'message', 'url'],
          properties: {
            path: { type: 'string' },
            kind: { type: 'string' },
            message: { type: 'string' },
            url: { type: 'string' },
            screenshot: { type: 'string' },
          },
        },
        screenshots: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'file'],
            properties: { name: { type: 'string' }, file: { type: 'string' } },
          },
        },
        downloads: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'file', 'size'],
            properties: { name: { type: 'string' }, file: { type: 'string' }, size: { type: 'integer' } },
          },
        },
        refused: refusedSchema,
      },
    },
    annotations: { title: 'Run a browser flow', readOnlyHint: false, destructiveHint: false, ...OPEN_WORLD },
    capability: `${CAPABILITY}; secrets: the names a fill step reads`,
    // the flow's own limits.timeoutMs (at most 30 min) bounds it; this is the ceiling
    timeoutMs: 31 * 60_000,
    maxOutputBytes: 512 * KiB,
    run: async (input, ctx) => {
      let flow: Flow;
      let inputs: Record<string, unknown>;
      try {
        flow = parseFlow(input.flow);
        inputs = resolveInputs(flow, input.inputs ?? {});
      } catch (err) {
        if (err instanceof TalonError && err.code === 'BAD_REQUEST')
          throw new TalonError('TOOL_BAD_INPUT', err.message, { details: err.details, cause: err });
        throw err;
      }
      const caller = ctx.caller;
      for (const name of secretNames(flow.steps))
        if (!mayReadSecret(caller, name))
          throw new TalonError(
            'CAPABILITY_DENIED',
            `${who(caller)} may not read the secret "${name}" the flow fills in; add it to capabilities.secrets`,
            { details: { action: 'secrets.get', subject: name } },
          );
      const dir = `browser/${flow.name}-${Date.now()}`;
      let made = false;
      const store = async (name: string, write: (abs: string) => Promise<void>): Promise<string> => {
        if (!made) await mkdir(join(caller.folder, dir), { recursive: true });
        made = true;
        const rel = `${dir}/${fileName(name)}`;
        await write(join(caller.folder, rel));
        return rel;
      };
      return job(kb, ctx, flow.limits.timeoutMs + 30_000, async (page, info) => {
        const r = await runFlow(flow, page, {
          inputs,
          secret: (name) => secret(name),
          saveScreenshot: (name, png) => store(`${name}.png`, (abs) => writeFile(abs, png)),
          saveDownload: (name, path) => store(`download-${name}`, (abs) => copyFile(path, abs)),
          signal: ctx.signal,
        });
        return {
          ok: r.ok,
          output: r.output ?? null,
          steps: r.steps,
          ...(r.failure && { failure: r.failure }),
          screenshots: r.screenshots.map((s) => ({ name: s.name, file: s.ref })),
          downloads: r.downloads.map((d) => ({ name: d.name, file: d.ref, size: d.size })),
          dialogs: r.dialogs,
          popups: r.popups,
          refused: info.refused,
        };
      });
    },
  };

  // ---- sessions ---------------------------------------------------------------------------------

  const sessionOf = (id: string, caller: ToolCaller): Session => {
    const s = kb.sessions.get(id);
    if (!s || s.owner !== caller.actor)
      throw new TalonError(
        'NOT_FOUND',
        `there is no browser session "${id.slice(0, 64)}" of ${who(caller)} (closed, idle for 5 minutes, or never opened); open one with browser.open`,
      );
    return s;
  };
  /** `fn` on the session's page, after its earlier calls; refreshes its idle timer */
  const onSession = <T>(id: string, ctx: ToolRunContext, fn: (s: Session) => Promise<T>): Promise<T> => {
    const s = sessionOf(id, ctx.caller);
    s.touch();
    const next = s.queue.then(async () => {
      try {
        return await fn(s);
      } catch (err) {
        throw pageError(err, s.page);
      } finally {
        s.touch();
      }
    });
    s.queue = next.catch(() => {});
    return next;
  };

  const open: ToolDefinition<{ url: string }, unknown> = {
    name: 'browser.open',
    description:
      'Open a browser session on a page (for exploring a site step by step) and return the session id, the URL, ' +
      'the title and an accessibility snapshot (roles and names, indented). Use browser.goto, click, fill, extract, ' +
      'snapshot and screenshot on it, and browser.close when done; it closes itself after 5 idle minutes. ' +
      'At most 2 sessions at once.',
    inputSchema: { type: 'object', additionalProperties: false, required: ['url'], properties: { url: urlProp } },
    outputSchema: pageSchema({ session: { type: 'string' }, snapshot: { type: 'string' } }, ['session', 'snapshot']),
    annotations: { title: 'Open a browser session', readOnlyHint: false, destructiveHint: false, ...OPEN_WORLD },
    capability: CAPABILITY,
    timeoutMs: 120_000,
    maxOutputBytes: 64 * KiB,
    check: (input, caller) => checkUrlGrant(input.url, caller),
    run: async (input, ctx) => {
      const url = toolUrl(input.url).href;
      const caller = ctx.caller;
      const mine = [...kb.sessions.values()].filter((s) => s.owner === caller.actor).length;
      if (mine >= SESSIONS_PER_CALLER)
        throw new TalonError(
          'QUOTA_EXCEEDED',
          `${who(caller)} has ${mine} browser sessions open, the most it may; close one with browser.close`,
        );
      const s = await startSession(kb, caller, ctx.signal);
      try {
        await goto(s, url, 30_000);
        return {
          session: s.id,
          url: s.page.url(),
          title: await s.page.title(),
          snapshot: await snapshot(s.page, DEFAULT_SNAPSHOT_CHARS),
        };
      } catch (err) {
        s.end();
        throw pageError(err, s.page);
      }
    },
  };

  const gotoTool: ToolDefinition<{ session: string; url: string }, unknown> = {
    name: 'browser.goto',
    description: "Go to a URL in a browser session; returns the final URL, the title and the page's HTTP status.",
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['session', 'url'],
      properties: { session: sessionProp, url: urlProp },
    },
    outputSchema: pageSchema({ status: { type: 'integer' } }, ['status']),
    annotations: { title: 'Go to a URL', readOnlyHint: false, destructiveHint: false, ...OPEN_WORLD },
    capability: CAPABILITY,
    timeoutMs: 60_000,
    check: (input, caller) => checkUrlGrant(input.url, caller),
    run: (input, ctx) =>
      onSession(input.session, ctx, async (s) => {
        const status = await goto(s, toolUrl(input.url).href, 30_000);
        return { url: s.page.url(), title: await s.page.title(), status };
      }),
  };

  const click: ToolDefinition<{ session: string; selector: string }, unknown> = {
    name: 'browser.click',
    description:
      'Click an element in a browser session (the selector must match one). A click that would pay, buy, order, ' +
      'delete, remove, send, transfer or unsubscribe (by the button or link name, or the form it submits) waits ' +
      'for a person to approve it; denied, nothing is clicked. Returns the URL and title after the click.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['session', 'selector'],
      properties: { session: sessionProp, selector: selectorProp },
    },
    outputSchema: pageSchema({ approved: { type: 'boolean' } }),
    annotations: { title: 'Click', readOnlyHint: false, destructiveHint: false, ...OPEN_WORLD },
    capability: `${CAPABILITY}; a person approves a click that pays, orders, deletes or sends`,
    // a person may take a while to answer (tools.approvalTimeoutMs, 5 min by default)
    timeoutMs: 15 * 60_000,
    run: async (input, ctx) => {
      const sel = selector(input.selector, '/selector');
      return onSession(input.session, ctx, async (s) => {
        const loc = await one(s.page, sel);
        const target = await describeTarget(loc);
        const why = riskOf(target);
        let approved: boolean | undefined;
        if (why) {
          if (!ctx.approve)
            throw new TalonError(
              'APPROVAL_DENIED',
              `browser.click needs a person's approval (${why}) and none can be asked here`,
            );
          const page = s.page.url();
          await ctx.approve(`click ${target.role} ${JSON.stringify(target.name)} on ${page}: ${why}`, {
            page,
            target: {
              role: target.role,
              name: target.name,
              formAction: target.formAction,
              formMethod: target.formMethod,
            },
          });
          approved = true;
        }
        await loc.click({ timeout: 30_000 });
        await s.page.waitForLoadState('load', { timeout: 30_000 }).catch(() => {});
        return { url: s.page.url(), title: await s.page.title(), ...(approved && { approved }) };
      });
    },
  };

  const fill: ToolDefinition<{ session: string; selector: string; value: string }, unknown> = {
    name: 'browser.fill',
    description: 'Type a value into a form field in a browser session (the field is cleared first).',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['session', 'selector', 'value'],
      properties: { session: sessionProp, selector: selectorProp, value: { type: 'string', maxLength: 100_000 } },
    },
    outputSchema: pageSchema(),
    annotations: { title: 'Fill a field', readOnlyHint: false, destructiveHint: false, ...OPEN_WORLD },
    capability: CAPABILITY,
    timeoutMs: 60_000,
    run: async (input, ctx) => {
      const sel = selector(input.selector, '/selector');
      return onSession(input.session, ctx, async (s) => {
        await (await one(s.page, sel)).fill(input.value, { timeout: 30_000 });
        return { url: s.page.url(), title: await s.page.title() };
      });
    },
  };

  const extract: ToolDefinition<{ session: string; fields: Record<string, string> }, unknown> = {
    name: 'browser.extract',
    description:
      'Read fields from the page of a browser session: { name: selector } → { data: { name: text } } (the first ' +
      'match\'s text, white space collapsed; "selector@attr" reads an attribute; null when nothing matches).',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['session', 'fields'],
      properties: {
        session: sessionProp,
        fields: {
          type: 'object',
          minProperties: 1,
          maxProperties: 100,
          additionalProperties: { type: 'string', minLength: 1, maxLength: 1000 },
        },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['data'],
      properties: { data: { type: 'object', additionalProperties: { type: ['string', 'null'] } } },
    },
    annotations: { title: 'Extract fields', readOnlyHint: true, ...OPEN_WORLD },
    capability: CAPABILITY,
    timeoutMs: 60_000,
    maxOutputBytes: 256 * KiB,
    run: async (input, ctx) => {
      const fields = Object.entries(input.fields).map(([name, raw]) => {
        const at = /^(.*\S)@([A-Za-z_:][-A-Za-z0-9_:.]*)$/.exec(raw);
        return { name, sel: selector(at ? at[1]! : raw, `/fields/${name}`), attr: at?.[2] };
      });
      return onSession(input.session, ctx, async (s) => {
        const data: Record<string, string | null> = {};
        for (const f of fields) {
          const loc = locate(s.page, f.sel).first();
          if ((await loc.count()) === 0) data[f.name] = null;
          else if (f.attr !== undefined) data[f.name] = await loc.getAttribute(f.attr, { timeout: 10_000 });
          else
            data[f.name] = cap(
              ((await loc.textContent({ timeout: 10_000 })) ?? '').replace(/\s+/g, ' ').trim(),
              20_000,
            );
        }
        return { data };
      });
    },
  };

  const snap: ToolDefinition<{ session: string; maxChars?: number }, unknown> = {
    name: 'browser.snapshot',
    description:
      'The accessibility tree of a browser session\'s page as indented text (role "name" per line), cut to ' +
      'maxChars (default 6000): what to read before deciding what to click or fill.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['session'],
      properties: { session: sessionProp, maxChars: { type: 'integer', minimum: 100, maximum: 100_000 } },
    },
    outputSchema: pageSchema({ snapshot: { type: 'string' } }, ['snapshot']),
    annotations: { title: 'Page snapshot', readOnlyHint: true, ...OPEN_WORLD },
    capability: CAPABILITY,
    timeoutMs: 60_000,
    maxOutputBytes: 256 * KiB,
    run: (input, ctx) =>
      onSession(input.session, ctx, async (s) => ({
        url: s.page.url(),
        title: await s.page.title(),
        snapshot: await snapshot(s.page, input.maxChars ?? DEFAULT_SNAPSHOT_CHARS),
      })),
  };

  const shot: ToolDefinition<{ session: string }, unknown> = {
    name: 'browser.screenshot',
    description: "A PNG of a browser session's page, stored in the caller's folder; returns its path there.",
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['session'],
      properties: { session: sessionProp },
    },
    outputSchema: { type: 'object', required: ['file'], properties: { file: { type: 'string' } } },
    annotations: { title: 'Screenshot', readOnlyHint: false, destructiveHint: false, ...OPEN_WORLD },
    capability: CAPABILITY,
    timeoutMs: 60_000,
    run: (input, ctx) =>
      onSession(input.session, ctx, async (s) => ({
        file: await saveFile(ctx.caller, 'session', '.png', await s.page.screenshot({ timeout: 30_000 })),
      })),
  };

  const close: ToolDefinition<{ session: string }, unknown> = {
    name: 'browser.close',
    description: 'Close a browser session (its cookies and pages are gone).',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['session'],
      properties: { session: sessionProp },
    },
    outputSchema: { type: 'object', required: ['closed'], properties: { closed: { type: 'boolean' } } },
    annotations: {
      title: 'Close a browser session',
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: false,
      openWorldHint: false,
    },
    capability: 'the caller’s own sessions',
    run: async (input, ctx) => {
      sessionOf(input.session, ctx.caller).end();
      return { closed: true };
    },
  };

  return [read, flowTool, open, gotoTool, click, fill, extract, snap, shot, close].map((t) => ({
    ...(t as ToolDefinition),
    source: 'builtin',
  }));
}

// ---- jobs and sessions --------------------------------------------------------------------------

function grantOf(caller: ToolCaller): NetworkGrant {
  return caller.admin ? ADMIN_NETWORK : caller.grants.network;
}

/** `fn` as one pool job under the caller's grant; errors that are not Talon's become TOOL_FAILED */
async function job<T>(
  kb: KernelBrowser,
  ctx: ToolRunContext,
  timeoutMs: number,
  fn: (page: Page, info: JobInfo) => Promise<T>,
): Promise<T> {
  let last: Page | undefined;
  void kb.noteCaller(ctx.caller.folder);
  try {
    return await kb.pool().job(
      grantOf(ctx.caller),
      (page, _c, info) => {
        last = page;
        return fn(page, info);
      },
      { signal: ctx.signal, timeoutMs },
    );
  } catch (err) {
    throw pageError(err, last);
  }
}

async function startSession(kb: KernelBrowser, caller: ToolCaller, signal: AbortSignal): Promise<Session> {
  let end!: () => void;
  const ended = new Promise<void>((r) => {
    end = r;
  });
  let ready!: (v: { page: Page; info: JobInfo }) => void;
  const started = new Promise<{ page: Page; info: JobInfo }>((r) => {
    ready = r;
  });
  const id = randomBytes(9).toString('base64url');
  void kb.noteCaller(caller.folder);
  const done = kb.pool().job(
    grantOf(caller),
    async (page, _c, info) => {
      // after a browser crash the pool runs the job again: the session's page is gone, so it ends
      if (info.attempt > 1) return;
      ready({ page, info });
      await ended;
    },
    { timeoutMs: SESSION_MAX_MS },
  );
  const failed = done.then(
    () => {
      throw new TalonError('TOOL_FAILED', 'the browser session ended before it started');
    },
    (err: unknown) => {
      throw pageError(err, undefined);
    },
  );
  const onAbort = (): void => end();
  signal.addEventListener('abort', onAbort, { once: true });
  let first: { page: Page; info: JobInfo };
  try {
    first = await Promise.race([started, failed]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  failed.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const s: Session = {
    id,
    owner: caller.actor,
    page: first.page,
    info: first.info,
    queue: Promise.resolve(),
    end: () => {
      clearTimeout(timer);
      if (kb.sessions.get(id) === s) kb.sessions.delete(id);
      end();
    },
    touch: () => {
      clearTimeout(timer);
      timer = setTimeout(() => s.end(), kb.idleMs);
      timer.unref();
    },
  };
  kb.sessions.set(id, s);
  s.touch();
  // a crash, the pool closing or the job's time ending: the session is gone
  void done.catch(() => {}).finally(() => s.end());
  return s;
}

/** a session's navigation: a refused host is CAPABILITY_DENIED, a page that does not load TOOL_FAILED */
async function goto(s: Session, url: string, timeout: number): Promise<number> {
  const before = s.info.refused.length;
  try {
    const res = await s.page.goto(url, { timeout, waitUntil: 'load' }).catch((err: Error) => {
      // a navigation refused just before commits Chromium's error page a moment later, and that can cut this one
      // short: go again once it has
      if (!/interrupted by another navigation to "chrome-error:/.test(err.message)) throw err;
      return s.page.goto(url, { timeout, waitUntil: 'load' });
    });
    return res?.status() ?? 0;
  } catch (err) {
    const refused = s.info.refused.slice(before).find((r) => sameDoc(r.url, url) || /redirect/.test(r.reason));
    if (refused)
      throw new TalonError('CAPABILITY_DENIED', `the page may not go to ${hostOf(refused.url)}: ${refused.reason}`, {
        details: { action: 'browser.goto', subject: hostOf(refused.url) },
      });
    throw err;
  }
}

// ---- the click check ----------------------------------------------------------------------------

interface Target {
  role: string;
  name: string;
  tag: string;
  type: string;
  href: string | null;
  /** the form the element submits, when it submits one */
  formAction: string | null;
  formMethod: string | null;
}

/** the element's role and accessible name (its ARIA snapshot's first line), what it submits, where it links */
async function describeTarget(loc: Locator): Promise<Target> {
  const aria = await loc.ariaSnapshot({ timeout: 10_000 }).catch(() => '');
  const m = /^- ([\w-]+)(?: "((?:[^"\\]|\\.)*)")?/.exec(aria.trim());
  // runs in the page (this project compiles without the DOM lib: the element is read through a small interface)
  const dom = await loc.evaluate((node: unknown) => {
    const el = node as {
      tagName: string;
      getAttribute(n: string): string | null;
      closest(s: string): unknown;
      form?: unknown;
      innerText?: string;
      value?: string;
      href?: string;
    };
    const tag = el.tagName.toLowerCase();
    const type = (el.getAttribute('type') ?? (tag === 'button' ? 'submit' : '')).toLowerCase();
    const form = (el.form ?? el.closest('form')) as { action?: string; getAttribute(n: string): string | null } | null;
    const submits =
      form !== null &&
      ((tag === 'button' && type === 'submit') || (tag === 'input' && ['submit', 'image'].includes(type)));
    const formaction = el.getAttribute('formaction');
    return {
      tag,
      type,
      // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what a person reads
      text: String(el.innerText ?? el.value ?? '')
        .trim()
        .slice(0, 300),
      label: el.getAttribute('aria-label') ?? el.getAttribute('title') ?? el.getAttribute('value') ?? '',
      href: typeof el.href === 'string' && el.href ? el.href : null,
      formAction: submits
        ? formaction
          ? new URL(formaction, String(form.action)).href
          : String(form.action ?? '')
        : null,
      formMethod: submits
        ? (el.getAttribute('formmethod') ?? form.getAttribute('method') ?? 'get').toLowerCase()
        : null,
    };
  });
  const name = m?.[2]?.replace(/\\(.)/g, '$1') ?? (dom.label || dom.text);
  return {
    role: m?.[1] ?? dom.tag,
    name,
    tag: dom.tag,
    type: dom.type,
    href: dom.href,
    formAction: dom.formAction,
    formMethod: dom.formMethod,
  };
}

/** why a click needs a person (a pay / delete / send word on a button, link or form submitter), or null */
export function riskOf(t: Target): string | null {
  const clickable = t.formAction !== null || ['button', 'link', 'menuitem', 'tab'].includes(t.role) || t.tag === 'a';
  if (!clickable) return null;
  const said = PAY_DELETE_SEND.exec(t.name);
  if (said) return `its name says "${said[2]}"`;
  if (t.formAction !== null) {
    const path = pathOf(t.formAction);
    const w = PAY_DELETE_SEND.exec(path);
    if (w) return `it submits a form to ${(t.formMethod ?? 'get').toUpperCase()} ${path} ("${w[2]}")`;
  }
  if (t.href) {
    const path = pathOf(t.href);
    const w = PAY_DELETE_SEND.exec(path);
    if (w) return `it links to ${path} ("${w[2]}")`;
  }
  return null;
}

function pathOf(url: string): string {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

// ---- pages --------------------------------------------------------------------------------------

function locate(page: Page, sel: ParsedSelector): Locator {
  if (sel.engine === 'css') return page.locator(sel.css);
  if (sel.engine === 'text') return page.getByText(sel.text, { exact: sel.exact });
  return page.getByRole(sel.role, sel.name === undefined ? {} : { name: sel.name, exact: sel.exact });
}

/** the one element `sel` matches (waiting for it a moment): none or several is an error naming the selector */
async function one(page: Page, sel: ParsedSelector): Promise<Locator> {
  const loc = locate(page, sel);
  try {
    await loc.first().waitFor({ state: 'attached', timeout: 10_000 });
  } catch {
    throw new TalonError(
      'TOOL_FAILED',
      `no element matches ${sel.source} on ${page.url()}; browser.snapshot shows what is there`,
    );
  }
  const n = await loc.count();
  if (n > 1)
    throw new TalonError(
      'TOOL_BAD_INPUT',
      `${n} elements match ${sel.source} on ${page.url()}; make the selector match one (an id, role=… with a name)`,
      { details: { errors: [{ path: '/selector', message: `matches ${n} elements` }] } },
    );
  return loc;
}

async function snapshot(page: Page, maxChars: number): Promise<string> {
  const text = await page.locator('body').ariaSnapshot({ timeout: 10_000 });
  return cap(text, maxChars);
}

/** an error from a page as the tool answers it: TalonError as it is, anything else TOOL_FAILED with the URL */
function pageError(err: unknown, page: Page | undefined): TalonError {
  if (err instanceof TalonError) return err;
  const msg = ((err as Error)?.message ?? String(err)).split('\n')[0]!;
  let url = '';
  try {
    url = page?.url() ?? '';
  } catch {
    /* a closed page */
  }
  const where = url && url !== 'about:blank' ? ` (on ${url})` : '';
  if ((err as Error)?.name === 'TimeoutError')
    return new TalonError('TOOL_FAILED', `the browser timed out: ${msg}${where}`);
  return new TalonError('TOOL_FAILED', `the browser failed: ${msg}${where}`, { cause: err });
}

// ---- files --------------------------------------------------------------------------------------

/** a file name: letters, digits, ".", "-" and "_" only, at most 100 characters, never hidden */
export function fileName(name: string): string {
  const n = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 100);
  return n || 'file';
}

/** `bytes` as `browser/<what>-<ms>-<rand><ext>` in the caller's folder; answers that relative path */
async function saveFile(caller: ToolCaller, what: string, ext: string, bytes: Buffer): Promise<string> {
  const rel = `browser/${fileName(`${what}-${Date.now()}-${randomBytes(3).toString('hex')}${ext}`)}`;
  await mkdir(join(caller.folder, 'browser'), { recursive: true });
  await writeFile(join(caller.folder, rel), bytes);
  return rel;
}

// ---- grants and input ---------------------------------------------------------------------------

function who(caller: ToolCaller): string {
  return caller.hand !== undefined ? `Hand "${caller.hand}"` : caller.actor;
}

function badInput(path: string, message: string): TalonError {
  return new TalonError('TOOL_BAD_INPUT', message, { details: { errors: [{ path, message }] } });
}

function selector(raw: string, path: string): ParsedSelector {
  try {
    return parseSelector(raw);
  } catch (err) {
    throw badInput(path, `${path.slice(1)}: ${(err as Error).message}`);
  }
}

function toolUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw badInput('/url', `${JSON.stringify(raw.slice(0, 200))} is not an absolute URL; write https://host/path`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw badInput('/url', `a ${url.protocol} URL is refused; the browser tools go to http:// and https:// only`);
  return url;
}

function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

function hostOf(raw: string): string {
  try {
    return new URL(raw).host;
  } catch {
    return raw.slice(0, 80);
  }
}

function sameDoc(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    return x.origin === y.origin && x.pathname === y.pathname;
  } catch {
    return a === b;
  }
}

const policies = new WeakMap<NetworkGrant, NetworkPolicy>();
function policyOf(grant: NetworkGrant): NetworkPolicy {
  let p = policies.get(grant);
  if (!p) policies.set(grant, (p = new NetworkPolicy(grant)));
  return p;
}

/** step 4 for a non-admin caller: the URL's host must be in the network grant (the pool checks every request again) */
function checkUrlGrant(raw: string, caller: ToolCaller): null {
  const url = toolUrl(raw);
  const grant = caller.grants.network;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const subject = `${host}:${portOf(url)}`;
  if (grant.hosts.length === 0 || !policyOf(grant).allowsHost(host, portOf(url)))
    throw new TalonError(
      'CAPABILITY_DENIED',
      grant.hosts.length === 0
        ? `${who(caller)} has no network grant: declare capabilities.network with the hosts it may reach (${subject} here)`
        : `${who(caller)} may not reach ${subject}; its network grant allows ${grant.hosts.join(', ')}`,
      { details: { action: 'browser.goto', subject } },
    );
  return null;
}

function mayReadSecret(caller: ToolCaller, name: string): boolean {
  return caller.admin || (caller.grants.secrets ?? []).some((g) => globMatches(g, name));
}

/** the sealed secrets a flow's fill steps read */
function secretNames(steps: readonly Step[], out = new Set<string>()): Set<string> {
  for (const s of steps) {
    if (s.kind === 'fill' && 'secret' in s.value) out.add(s.value.secret);
    else if (s.kind === 'if') {
      secretNames(s.then, out);
      secretNames(s.else, out);
    } else if (s.kind === 'repeat') secretNames(s.steps, out);
  }
  return out;
}

function cap(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
