/**
 * Runs a parsed flow (runtime/core/flow.ts) on a playwright-core Page, kernel-side: the browser pool gives it a page
 * in a fresh context whose requests are already checked against the caller's network grant; this file only drives
 * the page. It never launches a browser and never touches the disk except for a download's temporary file.
 *
 * Each step is recorded ({ index, path, kind, ms, ok, error?, url }); a failed step that is not `optional` stops the
 * flow, a screenshot of the page is saved (env.saveScreenshot) and the result's `failure` names the step's path, its
 * kind, why, and the page's URL. The limits hold: steps executed (limits.maxSteps), the whole run's time
 * (limits.timeoutMs, each step's wait capped to what is left), env.signal.
 *
 * Secrets: a `fill` with { secret: NAME } asks env.secret(NAME) at that step; its value is typed into the page and is
 * replaced by "***" wherever it would appear in the result (errors, extracted data, URLs), so a result can be logged.
 *
 * Extracted data is collected into `output` (an extract without `as` merges its fields, a list goes under `as` or
 * "items" and appends) and checked against the flow's output schema with ajv (strings that read as numbers become
 * numbers when the schema says so). A model extraction is left to env.extractWithModel (the page's text and the
 * schema); without it that step fails.
 *
 * Dialogs and popups cannot hang a flow: an alert, confirm or prompt the page raises is dismissed (a confirm answers
 * false, a prompt null; a beforeunload is accepted, so the page may leave) and recorded on the step that was running
 * (`dialogs`) and in the result; a window the page opens (window.open, a target=_blank link) is closed at once and
 * its URL recorded (`popups`): a flow goes on in its one page. Chromium reports a window only once its first page
 * committed, so a popup is recorded on the step running then (the click that opened it, or one soon after), and one
 * reported after the run is closed without a record. The pool (./pool.ts) dismisses dialogs too; whichever
 * answers first wins and the other's answer is dropped.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Dialog, Download, Locator, Page } from 'playwright-core';
import { AJV_PRESETS, createAjv, fieldErrors, type Ajv } from '../core/ajv.ts';
import { TalonError } from '../core/errors.ts';
import {
  matchUrl,
  renderTemplate,
  resolveInputs,
  type Condition,
  type FieldSpec,
  type Flow,
  type JsonSchema,
  type ParsedSelector,
  type Step,
  type StepKind,
} from '../core/flow.ts';

export interface FlowEnv {
  /** the flow's inputs (checked against flow.inputs, defaults filled) */
  inputs?: Record<string, unknown>;
  /** a sealed secret's value, undefined when there is none of that name */
  secret(name: string): Promise<string | undefined>;
  /** model extraction: the data the schema describes, read from the page's text */
  extractWithModel?(schema: JsonSchema, prompt: string | undefined, pageText: string): Promise<unknown>;
  /** stores a screenshot, answers a reference to it (a run's artifact id, a path) */
  saveScreenshot(name: string, png: Buffer): Promise<string>;
  /**
   * stores a finished download: `path` is a temporary file of `size` bytes, removed after this returns (move or copy
   * it); answers a reference to it
   */
  saveDownload(name: string, path: string, size: number): Promise<string>;
  signal?: AbortSignal;
  now?: () => number;
}

export interface StepRecord {
  /** the order it ran in (0, 1, …), repeats counted each time */
  index: number;
  path: string;
  kind: StepKind;
  ms: number;
  ok: boolean;
  error?: string;
  /** the page's URL after the step */
  url: string;
  /** dialogs the page raised during the step, dismissed (see the file's comment) */
  dialogs?: FlowDialog[];
  /** windows the page opened during the step, closed: their URLs */
  popups?: string[];
}

export interface FlowDialog {
  /** alert, confirm, prompt or beforeunload */
  type: string;
  message: string;
  /** dismissed (confirm → false, prompt → null) or accepted (beforeunload) */
  answer: 'dismissed' | 'accepted';
}

export interface FlowFailure {
  path: string;
  kind: StepKind | 'output' | 'limits';
  message: string;
  url: string;
  /** the failure screenshot's reference, when one could be taken */
  screenshot?: string;
}

export interface FlowResult {
  ok: boolean;
  output: unknown;
  steps: StepRecord[];
  screenshots: { name: string; ref: string; path: string }[];
  downloads: { name: string; ref: string; size: number; path: string }[];
  /** every dialog of the run, with the path of the step it came during ('' before the first) */
  dialogs: Array<FlowDialog & { path: string }>;
  /** every popup closed, with its step's path */
  popups: Array<{ url: string; path: string }>;
  failure?: FlowFailure;
}

/** A failed step: its message is already complete (it names the step, why, and the URL). */
class StepError extends Error {}

const MASK = '***';

/** Runs `flow` on `page`; never throws for a failing step (the result says), throws BAD_REQUEST for bad inputs. */
export async function runFlow(flow: Flow, page: Page, env: FlowEnv): Promise<FlowResult> {
  const inputs = resolveInputs(flow, env.inputs ?? {});
  let validate: Validate | undefined;
  if (flow.output) {
    try {
      validate = createAjv({ ...AJV_PRESETS.check, coerceTypes: true, useDefaults: true }).compile(flow.output);
    } catch (err) {
      throw new TalonError(
        'BAD_REQUEST',
        `flow "${flow.name}": output is not a valid JSON Schema: ${(err as Error).message}`,
      );
    }
  }
  return new FlowRun(flow, page, env, inputs, validate).run();
}

type Validate = ReturnType<Ajv['compile']>;

class FlowRun {
  readonly #flow: Flow;
  readonly #page: Page;
  readonly #env: FlowEnv;
  readonly #inputs: Record<string, unknown>;
  readonly #validate: Validate | undefined;
  readonly #now: () => number;
  readonly #deadline: number;
  readonly #secrets = new Set<string>();
  readonly #output: Record<string, unknown> = {};
  readonly #result: FlowResult = {
    ok: false,
    output: null,
    steps: [],
    screenshots: [],
    downloads: [],
    dialogs: [],
    popups: [],
  };
  #executed = 0;
  /** the step running (a dialog or a popup is recorded on it) */
  #current: StepRecord | null = null;

  constructor(flow: Flow, page: Page, env: FlowEnv, inputs: Record<string, unknown>, validate: Validate | undefined) {
    this.#flow = flow;
    this.#page = page;
    this.#env = env;
    this.#inputs = inputs;
    this.#validate = validate;
    this.#now = env.now ?? Date.now;
    this.#deadline = this.#now() + flow.limits.timeoutMs;
  }

  async run(): Promise<FlowResult> {
    const r = this.#result;
    const onDialog = (d: Dialog): void => this.#dialog(d);
    const onPopup = (p: Page): void => this.#popup(p);
    this.#page.on('dialog', onDialog);
    this.#page.on('popup', onPopup);
    try {
      return await this.#run(r);
    } finally {
      this.#page.off('dialog', onDialog);
      this.#page.off('popup', onPopup);
      // Chromium reports a window once its first page committed: one opened by the last step may come after the run
      if (!latePopupClosers.has(this.#page)) {
        latePopupClosers.add(this.#page);
        this.#page.on('popup', (p) => void p.close().catch(() => {}));
      }
    }
  }

  #dialog(d: Dialog): void {
    const accept = d.type() === 'beforeunload';
    const entry: FlowDialog = {
      type: d.type(),
      message: d.message().slice(0, 1000),
      answer: accept ? 'accepted' : 'dismissed',
    };
    // another listener (the pool's) may have answered already: its answer stands
    void (accept ? d.accept() : d.dismiss()).catch(() => {});
    const step = this.#current;
    if (step) (step.dialogs ??= []).push(entry);
    this.#result.dialogs.push({ ...entry, path: step?.path ?? '' });
  }

  #popup(p: Page): void {
    let url = '';
    try {
      url = p.url();
    } catch {
      /* closed already */
    }
    void p.close().catch(() => {});
    const step = this.#current;
    if (step) (step.popups ??= []).push(url);
    this.#result.popups.push({ url, path: step?.path ?? '' });
  }

  async #run(r: FlowResult): Promise<FlowResult> {
    try {
      await this.#steps(this.#flow.steps);
      r.output = this.#output;
      if (this.#validate && !this.#validate(this.#output)) {
        const errs = fieldErrors(this.#validate.errors);
        const why = errs.map((e) => `${e.path} ${e.message}`).join('; ');
        throw new OutputError(`the extracted data does not match the flow's output schema: ${why}`);
      }
      r.ok = true;
    } catch (err) {
      r.ok = false;
      r.output = this.#output;
      const last = r.steps.at(-1);
      const failedStep = err instanceof StepError && last && !last.ok ? last : undefined;
      const message =
        err instanceof StepError || err instanceof OutputError
          ? err.message
          : `flow "${this.#flow.name}": ${(err as Error).message}`;
      const other = err instanceof LimitError ? 'limits' : 'output';
      r.failure = {
        path: failedStep?.path ?? other,
        kind: failedStep?.kind ?? other,
        message,
        url: this.#url(),
      };
      try {
        const png = await this.#page.screenshot({ timeout: 10_000 });
        r.failure.screenshot = await this.#env.saveScreenshot(
          `failure-${r.failure.path.replace(/[^A-Za-z0-9]+/g, '-').replace(/-+$/, '')}`,
          png,
        );
      } catch {
        // a crashed page has no screenshot; the failure says the rest
      }
    }
    return this.#mask(r) as FlowResult;
  }

  #url(): string {
    try {
      return this.#page.url();
    } catch {
      return '';
    }
  }

  /** The secrets' values replaced by *** in every string of `v`. */
  #mask(v: unknown): unknown {
    if (this.#secrets.size === 0) return v;
    if (typeof v === 'string') {
      let s = v;
      for (const secret of this.#secrets) s = s.split(secret).join(MASK);
      return s;
    }
    if (Array.isArray(v)) return v.map((x) => this.#mask(x));
    if (typeof v === 'object' && v !== null && !Buffer.isBuffer(v))
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.#mask(x)]));
    return v;
  }

  async #steps(steps: readonly Step[]): Promise<void> {
    for (const step of steps) await this.#step(step);
  }

  async #step(step: Step): Promise<void> {
    if (this.#env.signal?.aborted) throw new LimitError(`the run was cancelled before ${step.path}`);
    if (this.#executed >= this.#flow.limits.maxSteps)
      throw new LimitError(
        `the flow ran ${this.#executed} steps, its limit (limits.maxSteps); stopped before ${step.path}`,
      );
    if (this.#now() >= this.#deadline)
      throw new LimitError(
        `the flow ran out of its ${this.#flow.limits.timeoutMs} ms (limits.timeoutMs) before ${step.path}`,
      );
    const index = this.#executed++;
    const started = this.#now();
    const timeout = Math.max(1, Math.min(step.timeoutMs ?? this.#flow.limits.stepTimeoutMs, this.#deadline - started));
    const record: StepRecord = { index, path: step.path, kind: step.kind, ms: 0, ok: true, url: '' };
    this.#result.steps.push(record);
    this.#current = record;
    const finish = (error?: string): void => {
      record.ms = this.#now() - started;
      record.url = this.#url();
      if (error !== undefined) {
        record.ok = false;
        record.error = error;
      }
    };
    if (step.kind === 'if' || step.kind === 'repeat') {
      // a container's record covers its own check; its steps have their own records
      try {
        if (step.kind === 'if') {
          const holds = await this.#guard(step, timeout, () => this.#holds(step.condition));
          finish();
          await this.#steps(holds ? step.then : step.else);
        } else {
          finish();
          for (let round = 0; round < step.max; round++) {
            if (step.while && !(await this.#guard(step, timeout, () => this.#holds({ exists: step.while!.exists }))))
              break;
            await this.#steps(step.steps);
          }
        }
      } catch (err) {
        if (err instanceof StepError || err instanceof LimitError) throw err;
        const message = this.#mask(this.#explain(step, err, timeout)) as string;
        finish(message);
        throw new StepError(message);
      }
      return;
    }
    try {
      await this.#guard(step, timeout, () => this.#act(step, timeout));
      finish();
    } catch (err) {
      const message = this.#mask(this.#explain(step, err, timeout)) as string;
      finish(message);
      if (!step.optional) throw new StepError(message);
    }
  }

  /** `fn`, cut short by the run's signal. */
  async #guard<T>(step: Step, timeout: number, fn: () => Promise<T>): Promise<T> {
    const signal = this.#env.signal;
    if (!signal) return fn();
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new LimitError(`the run was cancelled during ${step.path} (${timeout} ms allowed)`));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([fn(), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The step's error as a person reads it: the step, what failed, the URL. */
  #explain(step: Step, err: unknown, timeout: number): string {
    const head = `${step.path} (${step.kind})`;
    const url = this.#url();
    if (err instanceof StepError) return `${head}: ${err.message} on ${url}`;
    const msg = (err as Error)?.message ?? String(err);
    const sel = 'selector' in step && step.selector ? step.selector.source : undefined;
    const strict = /strict mode violation.*resolved to (\d+) elements/s.exec(msg);
    if (strict && sel)
      return `${head}: ${strict[1]} elements match ${sel} on ${url}; make the selector match one (add a parent, :nth-match, a name)`;
    if ((err as Error)?.name === 'TimeoutError' || /Timeout \d+ms exceeded/.test(msg)) {
      if (step.kind === 'goto') return `${head}: the page did not load within ${timeout} ms (${msg.split('\n')[0]})`;
      if (sel) return `${head}: no element matches ${sel} within ${timeout} ms on ${url}`;
      return `${head}: nothing happened within ${timeout} ms on ${url}`;
    }
    return `${head}: ${msg.split('\n')[0]} on ${url}`;
  }

  #locator(sel: ParsedSelector, within?: Locator): Locator {
    const root = within ?? this.#page;
    if (sel.engine === 'css') return root.locator(sel.css);
    if (sel.engine === 'text') return root.getByText(sel.text, { exact: sel.exact });
    return root.getByRole(sel.role, sel.name === undefined ? {} : { name: sel.name, exact: sel.exact });
  }

  #render(template: string): string {
    try {
      return renderTemplate(template, this.#inputs);
    } catch (err) {
      throw new StepError((err as Error).message);
    }
  }

  /** Polls `check` until it answers true or the time is up (a JS-rendered page needs a moment). */
  async #until(timeout: number, check: () => Promise<boolean>): Promise<boolean> {
    const end = this.#now() + timeout;
    for (;;) {
      if (await check()) return true;
      if (this.#now() >= end || this.#env.signal?.aborted) return false;
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, end - this.#now()))));
    }
  }

  async #holds(c: Condition): Promise<boolean> {
    if ('exists' in c) return (await this.#locator(c.exists).count()) > 0;
    if ('text' in c) return (await this.#page.getByText(this.#render(c.text)).count()) > 0;
    return matchUrl(c.url, this.#page.url());
  }

  async #act(step: Step, timeout: number): Promise<void> {
    const page = this.#page;
    switch (step.kind) {
      case 'goto': {
        const url = this.#render(step.url);
        let parsed: URL;
        try {
          parsed = new URL(url);
        } catch {
          throw new StepError(`${JSON.stringify(url)} is not an absolute URL`);
        }
        if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
          throw new StepError(
            `${JSON.stringify(url)} is a ${parsed.protocol} URL; a flow goes to http: and https: only`,
          );
        const res = await page.goto(url, { timeout, waitUntil: 'load' });
        if (res && res.status() >= 400) throw new StepError(`${url} answered HTTP ${res.status()}`);
        return;
      }
      case 'click':
        return this.#locator(step.selector).click({ timeout });
      case 'check':
        return this.#locator(step.selector).check({ timeout });
      case 'uncheck':
        return this.#locator(step.selector).uncheck({ timeout });
      case 'fill': {
        let value: string;
        if ('secret' in step.value) {
          const v = await this.#env.secret(step.value.secret);
          if (v === undefined)
            throw new StepError(
              `no secret named "${step.value.secret}"; set it with "talon secrets set ${step.value.secret}"`,
            );
          if (v !== '') this.#secrets.add(v);
          value = v;
        } else value = this.#render(step.value.text);
        return this.#locator(step.selector).fill(value, { timeout });
      }
      case 'select': {
        const loc = this.#locator(step.selector);
        const option =
          step.value !== undefined ? { value: this.#render(step.value) } : { label: this.#render(step.label!) };
        await loc.selectOption(option, { timeout });
        return;
      }
      case 'press':
        if (step.selector) return this.#locator(step.selector).press(step.key, { timeout });
        return page.keyboard.press(step.key);
      case 'wait_for': {
        if (step.selector) return this.#locator(step.selector).first().waitFor({ state: 'visible', timeout });
        if (step.text !== undefined)
          return page.getByText(this.#render(step.text)).first().waitFor({ state: 'visible', timeout });
        if (step.url) {
          const pattern = step.url;
          return page.waitForURL((u) => matchUrl(pattern, u.href), { timeout });
        }
        return page.waitForLoadState('networkidle', { timeout });
      }
      case 'assert': {
        const url = step.url;
        if (url && !(await this.#until(timeout, async () => matchUrl(url, page.url()))))
          throw new StepError(`the URL ${page.url()} does not match ${url.source} (waited ${timeout} ms)`);
        const text = step.text === undefined ? undefined : this.#render(step.text);
        if (step.selector) {
          const loc = this.#locator(step.selector);
          const want = step.count;
          let seen = 0;
          let seenText = '';
          const ok = await this.#until(timeout, async () => {
            seen = await loc.count();
            if (want !== undefined ? seen !== want : seen === 0) return false;
            if (text === undefined) return true;
            seenText = (await loc.allInnerTexts()).join(' ');
            return seenText.includes(text);
          });
          if (!ok) {
            if (want !== undefined && seen !== want)
              throw new StepError(
                `${step.selector.source} matches ${seen} elements, not ${want} (waited ${timeout} ms)`,
              );
            if (seen === 0) throw new StepError(`no element matches ${step.selector.source} within ${timeout} ms`);
            throw new StepError(
              `${step.selector.source} does not contain ${JSON.stringify(text)} (it reads ${JSON.stringify(seenText.slice(0, 200))})`,
            );
          }
        } else if (text !== undefined) {
          const loc = page.getByText(text);
          if (!(await this.#until(timeout, async () => (await loc.count()) > 0)))
            throw new StepError(`the page does not show ${JSON.stringify(text)} (waited ${timeout} ms)`);
        }
        return;
      }
      case 'screenshot': {
        const png = step.selector
          ? await this.#locator(step.selector).first().screenshot({ timeout })
          : await page.screenshot({ fullPage: step.fullPage, timeout });
        const ref = await this.#env.saveScreenshot(step.name, png);
        this.#result.screenshots.push({ name: step.name, ref, path: step.path });
        return;
      }
      case 'download':
        return this.#download(step, timeout);
      case 'extract': {
        if ('schema' in step) {
          if (!this.#env.extractWithModel)
            throw new StepError('model extraction is not available here (no model configured); use fields: selectors');
          // the rendered text (line breaks where the layout has them) is what the model should read
          // biome-ignore lint/performance/useDomNodeTextContent: textContent would add hidden text and scripts
          const text = await page.locator('body').innerText({ timeout });
          const data = await this.#env.extractWithModel(step.schema, step.prompt, text);
          const check = createAjv({ ...AJV_PRESETS.check, coerceTypes: true }).compile(step.schema);
          if (!check(data))
            throw new StepError(
              `the model's answer does not match the step's schema: ${fieldErrors(check.errors)
                .map((e) => `${e.path} ${e.message}`)
                .join('; ')}`,
            );
          this.#keep(step, data);
          return;
        }
        if (step.list) {
          const list = this.#locator(step.list);
          // CSS selectors throughout: every row read in one call inside the page (row by row and field by field is
          // a round trip to the browser each, ~300 for a 50-row table of 3 columns); a field it finds nothing for is
          // asked again the usual way (playwright's engine also pierces shadow roots)
          const fast = await this.#fieldsInPage(step.list, step.fields, list);
          const items = await list.all();
          const rows: Record<string, string | null>[] = [];
          for (const [i, item] of items.slice(0, 1000).entries()) {
            const row = fast?.[i];
            const missing = row ? Object.keys(step.fields).filter((k) => row[k] === null) : null;
            if (row && missing && missing.length === 0) rows.push(row);
            else if (row && missing) {
              const rest = Object.fromEntries(missing.map((k) => [k, step.fields[k] as FieldSpec]));
              rows.push({ ...row, ...(await this.#fields(rest, timeout, item)) });
            } else rows.push(await this.#fields(step.fields, timeout, item));
          }
          this.#keep(step, rows);
          return;
        }
        this.#keep(step, await this.#fields(step.fields, timeout));
        return;
      }
      default:
        throw new StepError(`${step.kind} is not a step this runner knows`);
    }
  }

  /**
   * A list's rows read inside the page in one call when the list and every field use CSS; null when they do not, or
   * when the page's querySelector does not take a selector (playwright's CSS has extensions): then the caller reads
   * row by row. Same answers as #fields: text with white space collapsed, or the attribute; null when nothing matches.
   */
  async #fieldsInPage(
    listSel: ParsedSelector,
    fields: Record<string, FieldSpec>,
    list: Locator,
  ): Promise<Record<string, string | null>[] | null> {
    if (listSel.engine !== 'css') return null;
    const spec: Array<[string, string | null, string | null]> = [];
    for (const [name, f] of Object.entries(fields)) {
      if (f.selector && f.selector.engine !== 'css') return null;
      spec.push([name, f.selector ? f.selector.css : null, f.attr ?? null]);
    }
    try {
      return await list.evaluateAll(
        (els, sp) =>
          els.slice(0, 1000).map((el) => {
            const row: Record<string, string | null> = {};
            for (const [name, css, attr] of sp) {
              const at = css === null ? el : el.querySelector(css);
              row[name] =
                at === null
                  ? null
                  : attr !== null
                    ? at.getAttribute(attr)
                    : (at.textContent ?? '').replace(/\s+/g, ' ').trim();
            }
            return row;
          }),
        spec,
      );
    } catch {
      return null;
    }
  }

  /** Each field's text (white space collapsed) or attribute; null when nothing matches. */
  async #fields(
    fields: Record<string, FieldSpec>,
    timeout: number,
    within?: Locator,
  ): Promise<Record<string, string | null>> {
    const out: Record<string, string | null> = {};
    for (const [name, f] of Object.entries(fields)) {
      let loc: Locator | undefined = within;
      if (f.selector) loc = this.#locator(f.selector, within).first();
      if (!loc || (await loc.count()) === 0) {
        out[name] = null;
        continue;
      }
      out[name] =
        f.attr !== undefined
          ? await loc.getAttribute(f.attr, { timeout })
          : ((await loc.textContent({ timeout })) ?? '').replace(/\s+/g, ' ').trim();
    }
    return out;
  }

  /** Puts an extract's result into the output: merged, under `as`, lists appended. */
  #keep(step: Step, data: unknown): void {
    if (Array.isArray(data)) {
      const key = step.as ?? 'items';
      const prev = this.#output[key];
      this.#output[key] = Array.isArray(prev) ? [...prev, ...data] : data;
    } else if (step.as !== undefined) this.#output[step.as] = data;
    else if (typeof data === 'object' && data !== null) Object.assign(this.#output, data);
    else this.#output.value = data;
  }

  async #download(step: Extract<Step, { kind: 'download' }>, timeout: number): Promise<void> {
    const [download] = await Promise.all([
      this.#page.waitForEvent('download', { timeout }),
      this.#locator(step.selector).click({ timeout }),
    ]);
    const dir = await mkdtemp(join(tmpdir(), 'talon-download-'));
    const file = join(dir, 'file');
    try {
      const size = await this.#copyCapped(download, file, step.maxBytes);
      const name = download.suggestedFilename() || 'download';
      const ref = await this.#env.saveDownload(name, file, size);
      this.#result.downloads.push({ name, ref, size, path: step.path });
    } finally {
      await rm(dir, { recursive: true, force: true });
      await download.delete().catch(() => {});
    }
  }

  /** Streams the download to `file`, stopping (and cancelling it) past `max` bytes. */
  async #copyCapped(download: Download, file: string, max: number): Promise<number> {
    const stream: Readable = await download.createReadStream();
    const out = createWriteStream(file);
    let size = 0;
    try {
      for await (const chunk of stream) {
        size += (chunk as Buffer).length;
        if (size > max) {
          stream.destroy();
          await download.cancel().catch(() => {});
          throw new StepError(
            `the download ${JSON.stringify(download.suggestedFilename())} passed its cap of ${max} bytes (maxBytes); ` +
              'the partial file was deleted',
          );
        }
        if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
      }
    } finally {
      await new Promise<void>((resolve) => out.end(resolve));
    }
    const failure = await download.failure();
    if (failure) throw new StepError(`the download failed: ${failure}`);
    return (await stat(file)).size;
  }
}

/** pages that close popups opened after a run (one listener per page, however many flows run on it) */
const latePopupClosers = new WeakSet<Page>();

/** The extracted data does not match the flow's output schema. */
class OutputError extends Error {}

/** A limit of the whole run (steps, time, cancel): not a step's fault. */
class LimitError extends Error {}
