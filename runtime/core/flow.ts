/**
 * A scripted browser flow (issue 20): its JSON shape, its validation and its parsed form. Pure: no npm package and no
 * I/O, so the Web Hand (in a worker), the CLI and the kernel share it; the runner that executes a parsed flow on a
 * playwright Page is kernel-side (runtime/browser/flow-runner.ts).
 *
 *   { name: 'order-status', inputs: { order: 'string' }, output: { type: 'object', … },
 *     limits: { maxSteps: 200, timeoutMs: 120000, stepTimeoutMs: 15000 },
 *     steps: [ { goto: 'https://shop.example/orders/{{input.order}}' },
 *              { fill: { selector: '#password', value: { secret: 'SHOP_PW' } } },
 *              { click: 'role=button[name="Sign in"]' },
 *              { extract: { fields: { status: '.status', link: 'a.track@href' } } } ] }
 *
 * Every problem is found before a browser starts: `flowProblems(raw)` lists them all, each naming its step and what to
 * write instead (`steps[3] (click): …`, `steps[2].then[0]: unknown step "clik" …`); `parseFlow(raw)` throws them as
 * one BAD_REQUEST TalonError (details.problems) or answers the parsed Flow, whose steps carry a `kind` and their path.
 */
import { TalonError } from './errors.ts';
import { HAND_NAME, SECRET_NAME, SECRET_NAME_PATTERN } from './names.ts';

export const STEP_KINDS = [
  'goto',
  'click',
  'fill',
  'select',
  'check',
  'uncheck',
  'press',
  'wait_for',
  'extract',
  'assert',
  'screenshot',
  'download',
  'if',
  'repeat',
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** Options any step may carry besides its one step key. */
const COMMON_OPTIONS = ['timeoutMs', 'optional', 'as'] as const;

export const FLOW_LIMITS = {
  maxSteps: { default: 200, max: 1000 },
  timeoutMs: { default: 120_000, max: 30 * 60_000 },
  stepTimeoutMs: { default: 15_000, max: 10 * 60_000 },
  /** how deep if/repeat may nest (the top-level steps are depth 1) */
  depth: 4,
  /** repeat: times, and the most rounds of a `while` */
  repeat: 100,
  /** a download's default and largest cap */
  downloadBytes: { default: 25 * 1024 * 1024, max: 1024 * 1024 * 1024 },
} as const;

/** The roles `role=` and `{ role }` take: WAI-ARIA 1.2's, as playwright's getByRole knows them. */
export const ARIA_ROLES = [
  'alert',
  'alertdialog',
  'application',
  'article',
  'banner',
  'blockquote',
  'button',
  'caption',
  'cell',
  'checkbox',
  'code',
  'columnheader',
  'combobox',
  'complementary',
  'contentinfo',
  'definition',
  'deletion',
  'dialog',
  'directory',
  'document',
  'emphasis',
  'feed',
  'figure',
  'form',
  'generic',
  'grid',
  'gridcell',
  'group',
  'heading',
  'img',
  'insertion',
  'link',
  'list',
  'listbox',
  'listitem',
  'log',
  'main',
  'marquee',
  'math',
  'meter',
  'menu',
  'menubar',
  'menuitem',
  'menuitemcheckbox',
  'menuitemradio',
  'navigation',
  'none',
  'note',
  'option',
  'paragraph',
  'presentation',
  'progressbar',
  'radio',
  'radiogroup',
  'region',
  'row',
  'rowgroup',
  'rowheader',
  'scrollbar',
  'search',
  'searchbox',
  'separator',
  'slider',
  'spinbutton',
  'status',
  'strong',
  'subscript',
  'superscript',
  'switch',
  'tab',
  'table',
  'tablist',
  'tabpanel',
  'term',
  'textbox',
  'time',
  'timer',
  'toolbar',
  'tooltip',
  'tree',
  'treegrid',
  'treeitem',
] as const;
export type AriaRole = (typeof ARIA_ROLES)[number];

/** A selector as written: CSS (default, or `css=`), `text=…` (`text="…"` exact), `role=button[name="…"]`, or an object. */
export type Selector = string | { role: string; name?: string; exact?: boolean };

/** A selector checked and split by engine; `source` is how it reads in messages. */
export type ParsedSelector =
  | { engine: 'css'; css: string; source: string }
  | { engine: 'text'; text: string; exact: boolean; source: string }
  | { engine: 'role'; role: AriaRole; name?: string; exact: boolean; source: string };

/** An extract field: a selector (relative to the list item when there is a list) and the attribute to read, or its text. */
export interface FieldSpec {
  /** absent: the list item itself (`@href` alone) */
  selector?: ParsedSelector;
  attr?: string;
}

/** A typed value: a template (`{{input.x}}` placeholders) or a sealed secret's name (its value is never logged). */
export type Value = { text: string } | { secret: string };

/** A URL pattern: a glob (`*` within a path segment, `**` across) or `/regex/flags`. */
export type UrlPattern = { glob: string; source: string } | { regex: string; flags: string; source: string };

export type Condition = { exists: ParsedSelector } | { text: string } | { url: UrlPattern };

/** A loose JSON Schema (checked with ajv by the runner). */
export type JsonSchema = Record<string, unknown>;

export interface StepCommon {
  /** where it is: `steps[3]`, `steps[3].then[0]`, `steps[5].steps[1]` */
  path: string;
  timeoutMs?: number;
  /** a failure is recorded and the flow goes on */
  optional: boolean;
  /** the name an extract's result is kept under in the output */
  as?: string;
}

export type StepBody =
  | { kind: 'goto'; url: string }
  | { kind: 'click'; selector: ParsedSelector }
  | { kind: 'fill'; selector: ParsedSelector; value: Value }
  | { kind: 'select'; selector: ParsedSelector; value?: string; label?: string }
  | { kind: 'check'; selector: ParsedSelector }
  | { kind: 'uncheck'; selector: ParsedSelector }
  | { kind: 'press'; selector?: ParsedSelector; key: string }
  | { kind: 'wait_for'; selector?: ParsedSelector; text?: string; url?: UrlPattern; networkIdle?: true }
  | { kind: 'extract'; fields: Record<string, FieldSpec>; list?: ParsedSelector }
  | { kind: 'extract'; schema: JsonSchema; prompt?: string }
  | { kind: 'assert'; selector?: ParsedSelector; text?: string; url?: UrlPattern; count?: number }
  | { kind: 'screenshot'; name: string; selector?: ParsedSelector; fullPage: boolean }
  | { kind: 'download'; selector: ParsedSelector; maxBytes: number }
  | { kind: 'if'; condition: Condition; then: Step[]; else: Step[] }
  | { kind: 'repeat'; times?: number; while?: { exists: ParsedSelector }; max: number; steps: Step[] };

export type Step = StepCommon & StepBody;

export type InputType = 'string' | 'number' | 'integer' | 'boolean';
export interface InputSpec {
  type: InputType;
  default?: string | number | boolean;
  description?: string;
}

export interface FlowLimits {
  maxSteps: number;
  timeoutMs: number;
  stepTimeoutMs: number;
}

export interface Flow {
  name: string;
  description?: string;
  inputs: Record<string, InputSpec>;
  output?: JsonSchema;
  limits: FlowLimits;
  steps: Step[];
}

export const FLOW_SCHEMA_DOC = `A flow is JSON (or YAML): { name, description?, inputs?, output?, limits?, steps }.
- name: 1-63 lowercase letters, digits or "-"; inputs: { NAME: "string" | "number" | "integer" | "boolean" | { type, default?, description? } },
  used as {{input.NAME}} in goto URLs and typed text; output: a JSON Schema the extracted data must match;
  limits: { maxSteps (200, at most 1000), timeoutMs (120000, at most 30 min), stepTimeoutMs (15000) }.
- Each step is an object with one step key, and optionally timeoutMs, optional: true (a failure does not stop the flow),
  as: NAME (where an extract's result goes in the output):
  goto: URL (http/https) | click: SEL | fill: { selector, value: "text" | { secret: NAME } } |
  select: { selector, value | label } | check: SEL | uncheck: SEL | press: { selector?, key } |
  wait_for: { selector | text | url (glob or /regex/) | networkIdle: true } |
  extract: { fields: { FIELD: "SEL" | "SEL@attr" }, list?: SEL } or { schema, prompt? } (the model reads the page) |
  assert: { selector?, text?, url?, count? } | screenshot: { name, selector?, fullPage? } |
  download: { selector, maxBytes? } | if: { exists | text | url, then: [...], else?: [...] } |
  repeat: { times (at most 100) | while: { exists: SEL }, max (at most 100), steps: [...] }; nesting at most 4 deep.
- SEL: CSS (default), text=Sign in (text="Sign in" exact), role=button[name="Sign in"], or { role, name }.
  XPath is not taken. An extract without "as" merges its fields into the output; a list goes under "as" (default
  "items") and lists extracted again under the same name are appended (pagination).`;

/** a flow's name: the same rule as a Hand instance's name (lowercase letters, digits and -) */
const NAME = HAND_NAME;
/** an input, an `as` name, a field, a screenshot name */
const ID = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;
const INPUT_REF = /^input\.([A-Za-z_][A-Za-z0-9_-]{0,63})$/;
const ATTR = /^[A-Za-z_:][-A-Za-z0-9_:.]*$/;
const KEY = /^([A-Za-z]+\+)*([A-Za-z0-9]+|[!-~])$/;
const QUOTE_MAX = 80;

const q = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v.length > QUOTE_MAX ? `${v.slice(0, QUOTE_MAX)}…` : v) : String(v);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The closest of `names` to `word`, when it is close enough to be a typo. */
export function closest(word: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const n of names) {
    const d = distance(word.toLowerCase(), n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

const suggest = (word: string, names: readonly string[]): string => {
  const c = closest(word, names);
  return c ? ` (did you mean "${c}"?)` : '';
};

/** Brackets and quotes balanced, outside quotes; the first problem in words, or undefined. */
function balanceProblem(s: string): string | undefined {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '(' || c === '[' || c === '{') stack.push(c);
    else if (c in pairs) {
      if (stack.pop() !== pairs[c]) return `has a "${c}" with no "${pairs[c]}" before it`;
    }
  }
  if (quote) return `has a ${quote} quote that is not closed`;
  if (stack.length) return `has a "${stack.at(-1)}" that is not closed`;
  return undefined;
}

/**
 * One selector, checked. Throws an Error whose message says what is wrong and what to write (the caller prefixes it
 * with the step); refuses XPath.
 */
export function parseSelector(raw: unknown): ParsedSelector {
  if (isObject(raw)) {
    const extra = Object.keys(raw).filter((k) => !['role', 'name', 'exact'].includes(k));
    if (extra.length)
      throw new Error(`a { role, name } selector has no field "${extra[0]}"; write { role, name?, exact? }`);
    if (typeof raw.role !== 'string') throw new Error('a selector object needs role: a WAI-ARIA role such as "button"');
    const role = checkRole(raw.role);
    if (raw.name !== undefined && (typeof raw.name !== 'string' || raw.name === ''))
      throw new Error('the selector\'s name must be a non-empty string (the accessible name, e.g. "Sign in")');
    if (raw.exact !== undefined && typeof raw.exact !== 'boolean')
      throw new Error("the selector's exact is true or false");
    const name = raw.name as string | undefined;
    return {
      engine: 'role',
      role,
      ...(name === undefined ? {} : { name }),
      exact: raw.exact === true,
      source: `role=${role}${name === undefined ? '' : `[name=${JSON.stringify(name)}]`}`,
    };
  }
  if (typeof raw !== 'string')
    throw new Error('a selector is a string (CSS, text=…, role=…) or { role, name }; got ' + describe(raw));
  const s = raw.trim();
  if (s === '') throw new Error('the selector is empty; write CSS (#id, .class), text=…, or role=button[name="…"]');
  if (s.length > 1000) throw new Error('the selector is longer than 1000 characters');
  if (/^xpath=/i.test(s) || s.startsWith('//') || s.startsWith('(//') || s.startsWith('..'))
    throw new Error(
      `XPath (${q(s)}) is not taken: it breaks with any change of the page's layout and cannot be checked before the ` +
        'run; write CSS (form #email), text=Sign in, or role=button[name="Sign in"]',
    );
  const engine = /^([a-z_-]+)=/i.exec(s)?.[1]?.toLowerCase();
  if (engine === 'text') {
    const text = s.slice(5);
    const quoted = /^"(.*)"$/s.exec(text) ?? /^'(.*)'$/s.exec(text);
    const body = quoted ? quoted[1]! : text;
    if (body.trim() === '')
      throw new Error('text= has no text; write text=Sign in (text="Sign in" for an exact match)');
    return { engine: 'text', text: body, exact: quoted !== null, source: s };
  }
  if (engine === 'role') {
    const m = /^role=([a-z]+)\s*(?:\[\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*(i|s)?\s*\])?$/i.exec(
      s,
    );
    if (!m) {
      const b = balanceProblem(s.slice(5));
      throw new Error(
        `${q(s)} is not a role selector${b ? ` (it ${b})` : ''}; write role=button or role=button[name="Sign in"] ` +
          '(only the name attribute, in quotes)',
      );
    }
    const role = checkRole(m[1]!);
    const name = m[2] ?? m[3];
    if (name !== undefined && name === '')
      throw new Error(`${q(s)} has an empty name; drop [name=""] or write the name`);
    return {
      engine: 'role',
      role,
      ...(name === undefined ? {} : { name: name.replace(/\\(.)/g, '$1') }),
      exact: m[4] === 's',
      source: s,
    };
  }
  let css = s;
  if (engine === 'css') css = s.slice(4).trim();
  else if (engine !== undefined)
    throw new Error(
      `"${engine}=" is not a selector engine Talon takes; write CSS (the default, or css=…), text=… or role=…`,
    );
  if (css === '') throw new Error('css= has no selector; write css=#id or just #id');
  const b = balanceProblem(css);
  if (b) throw new Error(`the CSS selector ${q(css)} ${b}`);
  if (css.includes('>>'))
    throw new Error(`${q(css)} chains engines with ">>"; write one CSS selector (descendants: "form .submit")`);
  if (/[,>+~]\s*$/.test(css) || /^\s*[,>+~]/.test(css))
    throw new Error(`the CSS selector ${q(css)} starts or ends with a combinator; remove the stray "${css.trim()[0]}"`);
  return { engine: 'css', css, source: s };
}

function checkRole(role: string): AriaRole {
  const r = role.toLowerCase();
  if ((ARIA_ROLES as readonly string[]).includes(r)) return r as AriaRole;
  throw new Error(`"${role}" is not a WAI-ARIA role${suggest(r, ARIA_ROLES)}; roles are button, link, textbox, …`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${q(v)}`;
}

/** `/regex/flags` or a glob; throws when the regex does not compile. */
export function parseUrlPattern(raw: unknown): UrlPattern {
  if (typeof raw !== 'string' || raw.trim() === '')
    throw new Error('a URL pattern is a glob (https://shop.example/orders/*) or /regex/');
  const m = /^\/(.+)\/([dgimsuyv]*)$/s.exec(raw);
  if (m) {
    try {
      new RegExp(m[1]!, m[2]!.replace('g', ''));
    } catch (err) {
      throw new Error(`the regex ${q(raw)} does not compile: ${(err as Error).message}`);
    }
    return { regex: m[1]!, flags: m[2]!.replace('g', ''), source: raw };
  }
  return { glob: raw, source: raw };
}

/** Whether `url` matches a pattern: a regex searches, a glob matches the whole URL (`*` within a segment, `**` any). */
export function matchUrl(pattern: UrlPattern, url: string): boolean {
  if ('regex' in pattern) return new RegExp(pattern.regex, pattern.flags).test(url);
  let re = '';
  const g = pattern.glob;
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === '*' && g[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/?#]*';
    else if (c === '?') re += '\\?';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(url);
}

/** The inputs a template names (`{{input.x}}`); throws on a placeholder that is not `input.NAME`. */
export function templateInputs(template: string): string[] {
  const names: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER)) {
    const ref = INPUT_REF.exec(m[1]!);
    if (!ref)
      throw new Error(
        `the placeholder ${q(m[0])} is not {{input.NAME}}` +
          (/^secret\./.test(m[1]!) ? '; a secret goes in a fill value as { secret: NAME }, never in text' : ''),
      );
    names.push(ref[1]!);
  }
  return names;
}

/** A template with its inputs put in; throws naming an input that is not given. */
export function renderTemplate(template: string, inputs: Record<string, unknown>): string {
  return template.replace(PLACEHOLDER, (whole, ref: string) => {
    const name = INPUT_REF.exec(ref)?.[1];
    if (name === undefined || !Object.hasOwn(inputs, name) || inputs[name] === undefined)
      throw new Error(`the input "${name ?? ref}" is not given (${whole})`);
    return String(inputs[name]);
  });
}

/** Collects problems, each prefixed with where it is. */
class Problems {
  readonly list: string[] = [];
  add(where: string, message: string): void {
    this.list.push(`${where}: ${message}`);
  }
  /** runs `fn`, turning a thrown Error into a problem; answers undefined then */
  try<T>(where: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.add(where, (err as Error).message);
      return undefined;
    }
  }
}

interface Ctx {
  problems: Problems;
  inputs: Set<string> | undefined;
  maxTimeoutMs: number;
}

function checkFields(
  ctx: Ctx,
  where: string,
  body: Record<string, unknown>,
  allowed: readonly string[],
  example: string,
): boolean {
  let ok = true;
  for (const k of Object.keys(body))
    if (!allowed.includes(k)) {
      ctx.problems.add(where, `has no field "${k}"${suggest(k, allowed)}; write ${example}`);
      ok = false;
    }
  return ok;
}

function selectorAt(ctx: Ctx, where: string, raw: unknown, field?: string): ParsedSelector | undefined {
  return ctx.problems.try(field ? `${where} ${field}` : where, () => parseSelector(raw));
}

function templateAt(ctx: Ctx, where: string, raw: unknown, field: string): string | undefined {
  if (typeof raw !== 'string' || raw === '') {
    ctx.problems.add(where, `${field} must be a non-empty string; got ${describe(raw)}`);
    return undefined;
  }
  const names = ctx.problems.try(where, () => templateInputs(raw));
  if (names && ctx.inputs)
    for (const n of names)
      if (!ctx.inputs.has(n))
        ctx.problems.add(
          where,
          `${field} uses {{input.${n}}} but the flow declares no input "${n}"${suggest(n, [...ctx.inputs])}; add it ` +
            'to inputs',
        );
  return names ? raw : undefined;
}

function conditionOf(ctx: Ctx, where: string, body: Record<string, unknown>, what: string): Condition | undefined {
  const keys = ['exists', 'text', 'url'].filter((k) => body[k] !== undefined);
  if (keys.length !== 1) {
    ctx.problems.add(
      where,
      keys.length === 0
        ? `${what} needs one condition: exists: SELECTOR, text: "…" or url: PATTERN`
        : `${what} has ${keys.join(' and ')}; write one condition (nest another if for both)`,
    );
    return undefined;
  }
  if (body.exists !== undefined) {
    const s = selectorAt(ctx, where, body.exists, 'exists');
    return s && { exists: s };
  }
  if (body.text !== undefined) {
    const t = templateAt(ctx, where, body.text, 'text');
    return t === undefined ? undefined : { text: t };
  }
  const u = ctx.problems.try(where, () => parseUrlPattern(body.url));
  return u && { url: u };
}

function positiveInt(ctx: Ctx, where: string, v: unknown, field: string, max: number): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    ctx.problems.add(where, `${field} must be a whole number from 1 to ${max}; got ${describe(v)}`);
    return undefined;
  }
  return v;
}

/** The step kinds and their parsing; each answers the body or undefined (its problems added). */
function parseBody(
  ctx: Ctx,
  kind: StepKind,
  raw: unknown,
  where: string,
  path: string,
  depth: number,
): StepBody | undefined {
  const p = ctx.problems;
  const obj = (example: string): Record<string, unknown> | undefined => {
    if (isObject(raw)) return raw;
    p.add(where, `takes an object; write ${example}`);
    return undefined;
  };
  switch (kind) {
    case 'goto': {
      if (typeof raw !== 'string' || raw.trim() === '') {
        p.add(where, `takes a URL string; write goto: "https://example.com/login"; got ${describe(raw)}`);
        return undefined;
      }
      const url = templateAt(ctx, where, raw, 'the URL');
      if (url === undefined) return undefined;
      if (!raw.trimStart().startsWith('{{')) {
        let parsed: URL | undefined;
        try {
          parsed = new URL(raw.replace(PLACEHOLDER, 'x'));
        } catch {
          p.add(where, `${q(raw)} is not an absolute URL; write it with its scheme: https://example.com/…`);
          return undefined;
        }
        if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
          p.add(where, `${q(raw)} is a ${parsed.protocol} URL; a flow goes to http: and https: pages only`);
          return undefined;
        }
        if (parsed.username || parsed.password) {
          p.add(where, `${q(raw)} has credentials in it; fill the login form with { secret: NAME } instead`);
          return undefined;
        }
      }
      return { kind, url: raw.trim() };
    }
    case 'click':
    case 'check':
    case 'uncheck': {
      const selector = selectorAt(ctx, where, raw);
      return selector && { kind, selector };
    }
    case 'fill': {
      const b = obj('fill: { selector: "#email", value: "{{input.email}}" }');
      if (!b || !checkFields(ctx, where, b, ['selector', 'value'], 'fill: { selector, value }')) return undefined;
      if (b.selector === undefined) p.add(where, 'needs selector: the field to type into');
      const selector = b.selector === undefined ? undefined : selectorAt(ctx, where, b.selector, 'selector');
      let value: Value | undefined;
      if (isObject(b.value)) {
        const keys = Object.keys(b.value);
        const name = b.value.secret;
        if (keys.length !== 1 || keys[0] !== 'secret') p.add(where, 'value as an object is { secret: NAME }');
        else if (typeof name !== 'string' || !SECRET_NAME.test(name))
          p.add(
            where,
            `the secret name ${q(name)} is not a secret's name: 1-64 letters, digits, ".", "_" or "-" ` +
              `(${SECRET_NAME_PATTERN}), as set by "talon secrets set NAME"`,
          );
        else value = { secret: name };
      } else if (typeof b.value === 'string') {
        const t = b.value === '' ? '' : templateAt(ctx, where, b.value, 'value');
        if (t !== undefined) value = { text: t };
      } else p.add(where, 'needs value: a string ("{{input.x}}" for an input) or { secret: NAME }');
      return selector && value && { kind, selector, value };
    }
    case 'select': {
      const b = obj('select: { selector: "#country", value: "de" } (or label: "Germany")');
      if (!b || !checkFields(ctx, where, b, ['selector', 'value', 'label'], 'select: { selector, value | label }'))
        return undefined;
      if (b.selector === undefined) p.add(where, 'needs selector: the <select> element');
      const selector = b.selector === undefined ? undefined : selectorAt(ctx, where, b.selector, 'selector');
      if ((b.value === undefined) === (b.label === undefined)) {
        p.add(where, "needs one of value (the option's value attribute) or label (its visible text), not both");
        return undefined;
      }
      const field = b.value !== undefined ? 'value' : 'label';
      const t = templateAt(ctx, where, b[field], field);
      return selector && t !== undefined ? { kind, selector, [field]: t } : undefined;
    }
    case 'press': {
      const b = obj('press: { key: "Enter" } or press: { selector: "#q", key: "Enter" }');
      if (!b || !checkFields(ctx, where, b, ['selector', 'key'], 'press: { selector?, key }')) return undefined;
      if (typeof b.key !== 'string' || !KEY.test(b.key)) {
        p.add(where, `key ${q(b.key)} is not a key; write Enter, Tab, ArrowDown, a, Control+A`);
        return undefined;
      }
      if (b.selector === undefined) return { kind, key: b.key };
      const selector = selectorAt(ctx, where, b.selector, 'selector');
      return selector && { kind, selector, key: b.key };
    }
    case 'wait_for': {
      const b = obj('wait_for: { selector: ".dashboard" } (or text, url, networkIdle: true)');
      if (!b || !checkFields(ctx, where, b, ['selector', 'text', 'url', 'networkIdle'], 'one of those'))
        return undefined;
      const keys = Object.keys(b);
      if (keys.length !== 1) {
        p.add(
          where,
          keys.length === 0
            ? 'needs what to wait for: selector, text, url (a glob or /regex/) or networkIdle: true'
            : `waits for one thing; it has ${keys.join(' and ')} (use two wait_for steps)`,
        );
        return undefined;
      }
      if (b.selector !== undefined) {
        const selector = selectorAt(ctx, where, b.selector, 'selector');
        return selector && { kind, selector };
      }
      if (b.text !== undefined) {
        const text = templateAt(ctx, where, b.text, 'text');
        return text === undefined ? undefined : { kind, text };
      }
      if (b.url !== undefined) {
        const url = p.try(where, () => parseUrlPattern(b.url));
        return url && { kind, url };
      }
      if (b.networkIdle !== true) {
        p.add(where, 'networkIdle is written networkIdle: true');
        return undefined;
      }
      return { kind, networkIdle: true };
    }
    case 'extract': {
      const b = obj('extract: { fields: { title: "h1", link: "a.more@href" } } or extract: { schema: {…} }');
      if (!b) return undefined;
      if (b.schema !== undefined) {
        if (!checkFields(ctx, where, b, ['schema', 'prompt'], 'extract: { schema, prompt? }')) return undefined;
        if (!isObject(b.schema)) {
          p.add(
            where,
            'schema is a JSON Schema object, e.g. { type: "object", properties: { price: { type: "number" } } }',
          );
          return undefined;
        }
        if (b.prompt !== undefined && typeof b.prompt !== 'string') {
          p.add(where, 'prompt is a string telling the model what to read');
          return undefined;
        }
        return { kind, schema: b.schema, ...(b.prompt === undefined ? {} : { prompt: b.prompt as string }) };
      }
      if (!checkFields(ctx, where, b, ['fields', 'list'], 'extract: { fields, list? } or { schema, prompt? }'))
        return undefined;
      if (!isObject(b.fields) || Object.keys(b.fields).length === 0) {
        p.add(where, 'needs fields: { NAME: "selector" or "selector@attribute" } (or schema: for the model)');
        return undefined;
      }
      const list = b.list === undefined ? undefined : selectorAt(ctx, where, b.list, 'list');
      const fields: Record<string, FieldSpec> = {};
      let ok = b.list === undefined || list !== undefined;
      for (const [name, v] of Object.entries(b.fields)) {
        if (!ID.test(name)) {
          p.add(where, `the field name ${q(name)} must be letters, digits, "_" or "-", starting with a letter or "_"`);
          ok = false;
          continue;
        }
        const f = p.try(`${where} fields.${name}`, () => parseField(v, list !== undefined));
        if (f) fields[name] = f;
        else ok = false;
      }
      return ok ? { kind, fields, ...(list ? { list } : {}) } : undefined;
    }
    case 'assert': {
      const b = obj('assert: { selector: ".ok" } (or text, url, count)');
      if (
        !b ||
        !checkFields(ctx, where, b, ['selector', 'text', 'url', 'count'], 'assert: { selector?, text?, url?, count? }')
      )
        return undefined;
      if (b.count !== undefined && b.selector === undefined) {
        p.add(where, 'count counts the matches of a selector; add selector');
        return undefined;
      }
      if (b.selector === undefined && b.text === undefined && b.url === undefined) {
        p.add(where, 'checks nothing; give selector, text or url (and count with a selector)');
        return undefined;
      }
      if (b.count !== undefined && (typeof b.count !== 'number' || !Number.isInteger(b.count) || b.count < 0)) {
        p.add(where, `count must be a whole number 0 or more; got ${describe(b.count)}`);
        return undefined;
      }
      const selector = b.selector === undefined ? undefined : selectorAt(ctx, where, b.selector, 'selector');
      const text = b.text === undefined ? undefined : templateAt(ctx, where, b.text, 'text');
      const url = b.url === undefined ? undefined : p.try(where, () => parseUrlPattern(b.url));
      if (
        (b.selector !== undefined && !selector) ||
        (b.text !== undefined && text === undefined) ||
        (b.url !== undefined && !url)
      )
        return undefined;
      return {
        kind,
        ...(selector ? { selector } : {}),
        ...(text !== undefined ? { text } : {}),
        ...(url ? { url } : {}),
        ...(b.count !== undefined ? { count: b.count as number } : {}),
      };
    }
    case 'screenshot': {
      const b = obj('screenshot: { name: "after-login" }');
      if (
        !b ||
        !checkFields(ctx, where, b, ['name', 'selector', 'fullPage'], 'screenshot: { name, selector?, fullPage? }')
      )
        return undefined;
      if (typeof b.name !== 'string' || !ID.test(b.name)) {
        p.add(where, `name ${q(b.name)} must be 1-64 letters, digits, "_" or "-" (it becomes a file name)`);
        return undefined;
      }
      if (b.fullPage !== undefined && typeof b.fullPage !== 'boolean') {
        p.add(where, 'fullPage is true or false');
        return undefined;
      }
      const selector = b.selector === undefined ? undefined : selectorAt(ctx, where, b.selector, 'selector');
      if (b.selector !== undefined && !selector) return undefined;
      return { kind, name: b.name, ...(selector ? { selector } : {}), fullPage: b.fullPage === true };
    }
    case 'download': {
      const b = obj('download: { selector: "a.invoice", maxBytes: 5000000 }');
      if (!b || !checkFields(ctx, where, b, ['selector', 'maxBytes'], 'download: { selector, maxBytes? }'))
        return undefined;
      if (b.selector === undefined) {
        p.add(where, 'needs selector: the link or button that starts the download');
        return undefined;
      }
      const selector = selectorAt(ctx, where, b.selector, 'selector');
      const maxBytes =
        b.maxBytes === undefined
          ? FLOW_LIMITS.downloadBytes.default
          : positiveInt(ctx, where, b.maxBytes, 'maxBytes', FLOW_LIMITS.downloadBytes.max);
      return selector && maxBytes !== undefined ? { kind, selector, maxBytes } : undefined;
    }
    case 'if': {
      const b = obj('if: { exists: ".cookie-banner", then: [ { click: ".accept" } ] }');
      if (
        !b ||
        !checkFields(
          ctx,
          where,
          b,
          ['exists', 'text', 'url', 'then', 'else'],
          'if: { exists | text | url, then, else? }',
        )
      )
        return undefined;
      const condition = conditionOf(ctx, where, b, 'if');
      if (!Array.isArray(b.then)) {
        p.add(where, 'needs then: a list of steps to run when the condition holds');
        return undefined;
      }
      if (b.else !== undefined && !Array.isArray(b.else)) {
        p.add(where, 'else is a list of steps');
        return undefined;
      }
      const then = parseSteps(ctx, b.then, `${path}.then`, depth + 1);
      const otherwise = parseSteps(ctx, (b.else as unknown[] | undefined) ?? [], `${path}.else`, depth + 1);
      return condition && then && otherwise ? { kind, condition, then, else: otherwise } : undefined;
    }
    case 'repeat': {
      const b = obj(
        'repeat: { times: 3, steps: [ … ] } or repeat: { while: { exists: "a.next" }, max: 20, steps: [ … ] }',
      );
      if (
        !b ||
        !checkFields(ctx, where, b, ['times', 'while', 'max', 'steps'], 'repeat: { times | while, max?, steps }')
      )
        return undefined;
      if ((b.times === undefined) === (b.while === undefined)) {
        p.add(where, 'needs one of times: N (at most 100) or while: { exists: SELECTOR } with max: N');
        return undefined;
      }
      if (!Array.isArray(b.steps) || b.steps.length === 0) {
        p.add(where, 'needs steps: a non-empty list of steps to repeat');
        return undefined;
      }
      const steps = parseSteps(ctx, b.steps, `${path}.steps`, depth + 1);
      if (b.times !== undefined) {
        if (b.max !== undefined) p.add(where, 'max goes with while; with times, times is the count');
        const times = positiveInt(ctx, where, b.times, 'times', FLOW_LIMITS.repeat);
        return steps && times !== undefined && b.max === undefined ? { kind, times, max: times, steps } : undefined;
      }
      let cond: Condition | undefined;
      if (!isObject(b.while) || Object.keys(b.while).length !== 1 || b.while.exists === undefined)
        p.add(where, 'while is { exists: SELECTOR } (repeat while that element is on the page)');
      else cond = conditionOf(ctx, where, b.while, 'while');
      const max = b.max === undefined ? FLOW_LIMITS.repeat : positiveInt(ctx, where, b.max, 'max', FLOW_LIMITS.repeat);
      return steps && cond && 'exists' in cond && max !== undefined
        ? { kind, while: { exists: cond.exists }, max, steps }
        : undefined;
    }
  }
}

function parseField(raw: unknown, inList: boolean): FieldSpec {
  if (isObject(raw)) return { selector: parseSelector(raw) };
  if (typeof raw !== 'string')
    throw new Error('is a selector string ("h1", "a.more@href") or { role, name }; got ' + describe(raw));
  const at = /@([^@\]"'\s]+)$/.exec(raw);
  if (at) {
    if (!ATTR.test(at[1]!)) throw new Error(`${q(at[1])} is not an attribute name`);
    const sel = raw.slice(0, at.index).trim();
    if (sel === '') {
      if (!inList)
        throw new Error(`"${raw}" reads the list item's attribute; it needs a list (or write "SELECTOR@${at[1]}")`);
      return { attr: at[1]! };
    }
    return { selector: parseSelector(sel), attr: at[1]! };
  }
  return { selector: parseSelector(raw) };
}

function parseSteps(ctx: Ctx, raw: unknown[], base: string, depth: number): Step[] | undefined {
  if (raw.length === 0) return [];
  if (depth > FLOW_LIMITS.depth) {
    ctx.problems.add(
      base,
      `if/repeat nest ${depth} deep; at most ${FLOW_LIMITS.depth} levels: move the inner steps up or split the flow`,
    );
    return undefined;
  }
  const out: Step[] = [];
  let ok = true;
  raw.forEach((item, i) => {
    const s = parseStep(ctx, item, `${base}[${i}]`, depth);
    if (s) out.push(s);
    else ok = false;
  });
  return ok ? out : undefined;
}

function parseStep(ctx: Ctx, raw: unknown, path: string, depth: number): Step | undefined {
  const p = ctx.problems;
  if (!isObject(raw)) {
    p.add(path, `a step is an object with one step key, e.g. { click: "#submit" }; got ${describe(raw)}`);
    return undefined;
  }
  const keys = Object.keys(raw);
  const stepKeys = keys.filter((k) => (STEP_KINDS as readonly string[]).includes(k));
  const unknown = keys.filter((k) => !stepKeys.includes(k) && !(COMMON_OPTIONS as readonly string[]).includes(k));
  if (stepKeys.length === 0) {
    if (unknown.length === 0) p.add(path, `has no step key; the steps are ${STEP_KINDS.join(', ')}`);
    else {
      const u = unknown[0]!;
      p.add(path, `unknown step "${u}"; the steps are ${STEP_KINDS.join(', ')}${suggest(u, STEP_KINDS)}`);
    }
    return undefined;
  }
  if (stepKeys.length > 1) {
    p.add(path, `has ${stepKeys.join(' and ')}: a step does one thing; split it into ${stepKeys.length} steps`);
    return undefined;
  }
  const kind = stepKeys[0] as StepKind;
  const where = `${path} (${kind})`;
  for (const u of unknown)
    p.add(
      where,
      `unknown option "${u}"; a step takes its step key and ${COMMON_OPTIONS.join(', ')}${suggest(u, [...COMMON_OPTIONS, ...STEP_KINDS])}`,
    );
  const common: StepCommon = { path, optional: false };
  if (raw.timeoutMs !== undefined) {
    const t = positiveInt(ctx, where, raw.timeoutMs, 'timeoutMs', ctx.maxTimeoutMs);
    if (t !== undefined) common.timeoutMs = t;
  }
  if (raw.optional !== undefined) {
    if (typeof raw.optional !== 'boolean') p.add(where, 'optional is true or false');
    else common.optional = raw.optional;
  }
  if (raw.as !== undefined) {
    if (typeof raw.as !== 'string' || !ID.test(raw.as))
      p.add(where, `as ${q(raw.as)} must be a name: letters, digits, "_" or "-", starting with a letter or "_"`);
    else if (kind !== 'extract') p.add(where, "as names an extract's result; this step has none, drop it");
    else common.as = raw.as;
  }
  const before = p.list.length;
  const body = parseBody(ctx, kind, raw[kind], where, path, depth);
  if (!body || p.list.length !== before || unknown.length) return undefined;
  return { ...common, ...body } as Step;
}

/** The most steps a list can run: a container counts itself, a repeat its rounds times its steps, an if its longer branch. */
export function expandedCount(steps: readonly Step[]): number {
  let n = 0;
  for (const s of steps) {
    n += 1;
    if (s.kind === 'if') n += Math.max(expandedCount(s.then), expandedCount(s.else));
    else if (s.kind === 'repeat') n += s.max * expandedCount(s.steps);
  }
  return n;
}

function parseLimits(ctx: Ctx, raw: unknown): FlowLimits {
  const limits: FlowLimits = {
    maxSteps: FLOW_LIMITS.maxSteps.default,
    timeoutMs: FLOW_LIMITS.timeoutMs.default,
    stepTimeoutMs: FLOW_LIMITS.stepTimeoutMs.default,
  };
  if (raw === undefined) return limits;
  if (!isObject(raw)) {
    ctx.problems.add('limits', 'is an object: { maxSteps?, timeoutMs?, stepTimeoutMs? }');
    return limits;
  }
  for (const k of Object.keys(raw)) {
    if (!(k in limits)) {
      ctx.problems.add(
        'limits',
        `has no field "${k}"${suggest(k, Object.keys(limits))}; write maxSteps, timeoutMs or stepTimeoutMs`,
      );
      continue;
    }
    const key = k as keyof FlowLimits;
    const v = positiveInt(ctx, 'limits', raw[k], k, FLOW_LIMITS[key].max);
    if (v !== undefined) limits[key] = v;
  }
  return limits;
}

function parseInputs(ctx: Ctx, raw: unknown): Record<string, InputSpec> {
  const out: Record<string, InputSpec> = {};
  if (raw === undefined) return out;
  if (!isObject(raw)) {
    ctx.problems.add(
      'inputs',
      'is an object: { NAME: "string" | "number" | "integer" | "boolean" | { type, default? } }',
    );
    return out;
  }
  const TYPES = ['string', 'number', 'integer', 'boolean'];
  for (const [name, v] of Object.entries(raw)) {
    const where = `inputs.${name}`;
    if (!ID.test(name)) {
      ctx.problems.add(where, 'an input name is letters, digits, "_" or "-", starting with a letter or "_"');
      continue;
    }
    const spec = typeof v === 'string' ? { type: v } : v;
    if (!isObject(spec) || typeof spec.type !== 'string' || !TYPES.includes(spec.type)) {
      ctx.problems.add(where, `needs a type: ${TYPES.join(', ')} (written "string" or { type: "string", default? })`);
      continue;
    }
    const extra = Object.keys(spec).filter((k) => !['type', 'default', 'description'].includes(k));
    if (extra.length) {
      ctx.problems.add(where, `has no field "${extra[0]}"; write { type, default?, description? }`);
      continue;
    }
    const input: InputSpec = { type: spec.type as InputType };
    if (spec.default !== undefined) {
      const problem = inputProblem(input, spec.default);
      if (problem) ctx.problems.add(where, `default ${problem}`);
      else input.default = spec.default as string | number | boolean;
    }
    if (typeof spec.description === 'string') input.description = spec.description;
    out[name] = input;
  }
  return out;
}

/** What is wrong with an input value for its spec, or undefined. */
export function inputProblem(spec: InputSpec, v: unknown): string | undefined {
  const ok =
    spec.type === 'string'
      ? typeof v === 'string'
      : spec.type === 'boolean'
        ? typeof v === 'boolean'
        : typeof v === 'number' && Number.isFinite(v) && (spec.type === 'number' || Number.isInteger(v));
  return ok ? undefined : `must be ${spec.type === 'integer' ? 'an integer' : `a ${spec.type}`}; got ${describe(v)}`;
}

/**
 * The inputs a run gets: the given ones checked against the flow's declared inputs, the defaults filled in. Throws
 * BAD_REQUEST naming each input that is missing, unknown or of the wrong type.
 */
export function resolveInputs(flow: Flow, given: Record<string, unknown> = {}): Record<string, unknown> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(flow.inputs)) {
    const v = given[name] ?? spec.default;
    if (v === undefined) problems.push(`input "${name}" is not given (a ${spec.type})`);
    else {
      const p = inputProblem(spec, v);
      if (p) problems.push(`input "${name}" ${p}`);
      else out[name] = v;
    }
  }
  for (const name of Object.keys(given))
    if (!Object.hasOwn(flow.inputs, name))
      problems.push(
        `input "${name}" is not one of the flow's inputs (${Object.keys(flow.inputs).join(', ') || 'none'})`,
      );
  if (problems.length)
    throw new TalonError('BAD_REQUEST', `flow "${flow.name}": ${problems.join('; ')}`, { details: { problems } });
  return out;
}

/** Every problem of a flow, each naming where it is and what to write; empty when the flow is good. */
export function flowProblems(raw: unknown): string[] {
  return check(raw).problems.list;
}

function check(raw: unknown): { problems: Problems; flow?: Flow } {
  const problems = new Problems();
  if (!isObject(raw)) {
    problems.add('flow', `is an object { name, steps, … }; got ${describe(raw)}`);
    return { problems };
  }
  const TOP = ['name', 'description', 'inputs', 'output', 'limits', 'steps'];
  for (const k of Object.keys(raw))
    if (!TOP.includes(k))
      problems.add(
        'flow',
        k === 'goal'
          ? 'has goal: model-directed exploration is not a scripted flow; write steps'
          : `has no field "${k}"${suggest(k, TOP)}; a flow has ${TOP.join(', ')}`,
      );
  if (typeof raw.name !== 'string' || !NAME.test(raw.name))
    problems.add(
      'name',
      `${q(raw.name)} must be 1-63 lowercase letters, digits or "-", starting with a letter or digit`,
    );
  if (raw.description !== undefined && typeof raw.description !== 'string') problems.add('description', 'is a string');
  if (raw.output !== undefined && !isObject(raw.output))
    problems.add('output', 'is a JSON Schema object, e.g. { type: "object", required: ["price"], properties: { … } }');
  const inputs = parseInputs({ problems, inputs: undefined, maxTimeoutMs: 0 }, raw.inputs);
  const limits = parseLimits({ problems, inputs: undefined, maxTimeoutMs: 0 }, raw.limits);
  const ctx: Ctx = {
    problems,
    inputs: raw.inputs === undefined ? undefined : new Set(Object.keys(inputs)),
    maxTimeoutMs: limits.timeoutMs,
  };
  if (!Array.isArray(raw.steps) || raw.steps.length === 0) {
    problems.add('steps', 'needs a non-empty list of steps, e.g. [ { goto: "https://example.com" }, … ]');
    return { problems };
  }
  const steps = parseSteps(ctx, raw.steps, 'steps', 1);
  if (!steps) return { problems };
  const n = expandedCount(steps);
  if (n > limits.maxSteps)
    problems.add(
      'steps',
      `can run up to ${n} steps (repeats expanded), over limits.maxSteps ${limits.maxSteps}; lower a repeat's times/max ` +
        `or raise maxSteps (at most ${FLOW_LIMITS.maxSteps.max})`,
    );
  if (problems.list.length) return { problems };
  const flow: Flow = { name: raw.name as string, inputs, limits, steps };
  if (typeof raw.description === 'string') flow.description = raw.description;
  if (raw.output !== undefined) flow.output = raw.output as JsonSchema;
  return { problems, flow };
}

/** A flow, parsed and checked; throws BAD_REQUEST listing every problem (details.problems) before any browser starts. */
export function parseFlow(raw: unknown): Flow {
  const { problems, flow } = check(raw);
  if (flow) return flow;
  const list = problems.list;
  const name = isObject(raw) && typeof raw.name === 'string' ? ` "${raw.name.slice(0, QUOTE_MAX)}"` : '';
  const message =
    list.length === 1 ? `flow${name}: ${list[0]}` : `flow${name} has ${list.length} problems: ${list.join('; ')}`;
  throw new TalonError('BAD_REQUEST', message, { details: { problems: list } });
}
