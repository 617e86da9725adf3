/**
 * `talon web run FLOW.yaml|NAME [--input k=v,…]|flows|runs [ID]|watch list|check ID|show ID|add FILE|add --id …|remove
 * ID`: the Web Automation Hand's flows, runs and page watches on the running daemon, through /api/v1/web
 * (./surface.ts). A flow file (YAML or JSON, parsed with the `yaml` package) is checked here with runtime/core/flow.ts
 * before any request, so a bad step is a usage error (exit 2) naming it; inputs are typed as the flow declares them. A
 * watch file (one watch, a list, or { watches: [...] }) and the quick form's options are checked with ./watch.ts
 * parseWatch the same way (the quick form's errors name the option: `--visual`, `--min-change`), then each watch is
 * PUT to /api/v1/web/watches/{id}. Options and ids are checked before any request as well.
 *
 * The quick form's JSON path is `--json-path` (`--json` is every daemon command's "print JSON" switch); `--text -`
 * and `--visual -` watch the whole page (a value is needed: options take one).
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { HandCommandArgs, HandDaemon } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { flowProblems } from '../../runtime/core/flow.ts';
import { FLOW_NAME_PATTERN, RUN_ID_PATTERN, WATCH_ID_PATTERN, failureText } from './protocol.ts';
import { parseWatch } from './watch.ts';
import { visualWords } from './visual.ts';
import { iso, oneLine, printJson, table } from '../sdk/cli-text.ts';

const BASE = '/api/v1/web';
const enc = encodeURIComponent;

/** a watch as GET /api/v1/web/watches answers it (./protocol.ts WATCH_VIEW_SCHEMA) */
export interface WatchView {
  id: string;
  url: string;
  what: string;
  kind: string;
  source: 'config' | 'api';
  schedule?: string;
  scheduledBy?: string;
  value?: string;
  lastCheckAt?: number;
  lastChangeAt?: number;
  broken: boolean;
  failures: number;
  pending: boolean;
  checking: boolean;
}

export interface RunView {
  id: string;
  kind: 'check' | 'flow';
  name: string;
  at: number;
  ok: boolean;
  ms: number;
  cause: string;
  events?: string[];
  error?: string;
  mode?: 'steps' | 'goal';
  failure?: { path?: string; kind?: string; message: string; url?: string; screenshot?: string };
  screenshots?: Array<{ name: string; file: string }>;
  steps?: Array<{ index: number; path: string; kind: string; ms: number; ok: boolean; error?: string; url?: string }>;
  downloads?: Array<{ name: string; file: string; size?: number }>;
  output?: unknown;
  agentSteps?: number;
}

export interface FlowView {
  name: string;
  mode: 'steps' | 'goal';
  description?: string;
  steps?: number;
  goal?: string;
  inputs: Record<string, string>;
  schedule?: string;
  scheduledBy?: string;
  lastRun?: RunView;
}

function daemonOf(a: HandCommandArgs): HandDaemon {
  if (!a.daemon) throw new TalonError('INTERNAL', 'this command needs the running daemon (declared daemon: true)');
  return a.daemon;
}

/** `--name VALUE` checked against a pattern (usage error naming the option otherwise) */
function checked(a: HandCommandArgs, name: string, pattern: string, what: string): string | undefined {
  const v = a.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !new RegExp(pattern).test(v))
    return a.usage(`--${name} must be ${what}, not "${String(v)}"`);
  return v;
}

function limitOf(a: HandCommandArgs, max: number): number | undefined {
  const v = a.values.limit;
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return a.usage(`--limit must be a whole number, got "${String(v)}"`);
  const n = Number(v);
  if (n < 1 || n > max) return a.usage(`--limit must be from 1 to ${max}, not ${n}`);
  return n;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `--input 'order=42,name=Ada Lovelace'` → { order: 42, name: 'Ada Lovelace' }: a comma followed by `NAME=` starts
 * the next pair (so a value may hold commas); each value typed as `types` declares (number, integer, boolean), else
 * a string. Usage errors name the pair.
 */
export function parseInputs(
  raw: string | undefined,
  types: Record<string, string>,
  usage: (m: string) => never,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (raw === undefined || raw === '') return out;
  for (const pair of raw.split(/,(?=\s*[A-Za-z_][A-Za-z0-9_-]*=)/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_-]*)=(.*)$/s.exec(pair);
    if (!m) return usage(`--input "${pair}": write NAME=VALUE (pairs separated by commas: order=42,name=Ada)`);
    const [, name, value] = m as unknown as [string, string, string];
    if (Object.hasOwn(out, name)) return usage(`--input: "${name}" is given twice`);
    const type = types[name];
    if (type === 'number' || type === 'integer') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || (type === 'integer' && !Number.isInteger(n)))
        return usage(`--input ${name}: must be ${type === 'integer' ? 'an integer' : 'a number'}, not "${value}"`);
      out[name] = n;
    } else if (type === 'boolean') {
      if (value !== 'true' && value !== 'false') return usage(`--input ${name}: must be true or false, not "${value}"`);
      out[name] = value === 'true';
    } else out[name] = value;
  }
  return out;
}

/** the declared inputs' types of a flow as written (`{ order: 'integer' }` or `{ order: { type: 'integer' } }`) */
export function inputTypes(def: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(def.inputs)) return out;
  for (const [k, v] of Object.entries(def.inputs)) {
    if (typeof v === 'string') out[k] = v;
    else if (isObject(v) && typeof v.type === 'string') out[k] = v.type;
  }
  return out;
}

/** FLOW as a file to read (a path that exists, or one ending .yaml/.yml/.json), else undefined (a flow name) */
function flowFile(a: HandCommandArgs, flow: string): string | undefined {
  const path = resolve(a.io.cwd, flow);
  let exists = false;
  try {
    exists = statSync(path).isFile();
  } catch {
    exists = false;
  }
  if (exists || /\.(ya?ml|json)$/i.test(flow)) return path;
  return undefined;
}

/** a flow file read and checked: the definition, or a usage error naming the file and the step */
export function readFlowFile(path: string, shown: string, usage: (m: string) => never): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return usage(`FLOW "${shown}" cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let def: unknown;
  try {
    def = parseYaml(text);
  } catch (err) {
    return usage(`${shown}: not YAML or JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (!isObject(def)) return usage(`${shown}: must hold one flow { name, steps } or { name, goal }`);
  if (def.goal === undefined) {
    const problems = flowProblems(def);
    if (problems.length > 0) return usage(`${shown}: ${problems.join('; ')}`);
  }
  return def;
}

/** a run in a few words: `ok in 1.2 s`, `failed at steps[3] (click): …` */
export function runWords(r: RunView): string {
  const time = r.ms >= 1000 ? `${(r.ms / 1000).toFixed(1)} s` : `${Math.round(r.ms)} ms`;
  if (r.ok) return r.kind === 'check' && r.events?.length ? `ok (${r.events.join(', ')}) in ${time}` : `ok in ${time}`;
  if (r.failure) return `failed at ${oneLine(failureText({ ...r.failure, path: r.failure.path ?? '?' }), 80)}`;
  return `failed: ${oneLine(r.error, 80)}`;
}

/** a whole run as lines: its steps, the failure with the page URL and screenshot, files, the output */
export function runText(r: RunView): string {
  const lines = [`run ${r.id}: ${r.kind} ${r.name} ${runWords(r)}`];
  if (r.steps && r.steps.length > 0) {
    const rows = [['STEP', 'KIND', 'MS', 'RESULT']];
    for (const s of r.steps)
      rows.push([s.path, s.kind, String(Math.round(s.ms)), s.ok ? 'ok' : `failed: ${oneLine(s.error, 80)}`]);
    lines.push(table(rows).trimEnd());
  }
  if (r.agentSteps !== undefined) lines.push(`  the agent took ${r.agentSteps} turn(s)`);
  if (r.failure) {
    lines.push(`failure: ${failureText(r.failure, true)}`);
    if (r.failure.url) lines.push(`  page: ${r.failure.url}`);
    if (r.failure.screenshot) lines.push(`  screenshot: ${r.failure.screenshot}`);
  } else if (r.error) lines.push(`error: ${r.error}`);
  for (const s of r.screenshots ?? []) lines.push(`screenshot ${s.name}: ${s.file}`);
  for (const d of r.downloads ?? [])
    lines.push(`download ${d.name}: ${d.file}${d.size !== undefined ? ` (${d.size} bytes)` : ''}`);
  if (r.output !== undefined) lines.push(`output: ${JSON.stringify(r.output, null, 2)}`);
  return `${lines.join('\n')}\n`;
}

export async function runCommand(a: HandCommandArgs): Promise<number> {
  const flow = a.positionals[0]!;
  const rawInputs = a.values.input;
  if (rawInputs !== undefined && typeof rawInputs !== 'string') return a.usage('--input needs NAME=VALUE');
  const file = flowFile(a, flow);
  let body: Record<string, unknown>;
  if (file) {
    const def = readFlowFile(file, flow, a.usage);
    const inputs = parseInputs(rawInputs, inputTypes(def), a.usage);
    body = { definition: def, ...(Object.keys(inputs).length > 0 && { inputs }) };
  } else {
    if (!new RegExp(FLOW_NAME_PATTERN).test(flow))
      return a.usage(`FLOW must be a flow file (.yaml, .yml, .json) or a configured flow's name, not "${flow}"`);
    let types: Record<string, string> = {};
    if (rawInputs !== undefined) {
      const { flows } = await daemonOf(a).request<{ flows: FlowView[] }>('GET', `${BASE}/flows`);
      types = flows.find((f) => f.name === flow)?.inputs ?? {};
    }
    const inputs = parseInputs(rawInputs, types, a.usage);
    body = { flow, ...(Object.keys(inputs).length > 0 && { inputs }) };
  }
  const { run } = await daemonOf(a).request<{ run: RunView }>('POST', `${BASE}/flows/run`, body);
  if (a.values.json) {
    printJson(a, run);
    return run.ok ? 0 : 1;
  }
  a.io.out(runText(run));
  return run.ok ? 0 : 1;
}

export async function flowsCommand(a: HandCommandArgs): Promise<number> {
  const { flows } = await daemonOf(a).request<{ flows: FlowView[] }>('GET', `${BASE}/flows`);
  if (a.values.json) return printJson(a, flows);
  if (flows.length === 0) {
    a.io.out('no flows in the settings; run one from a file with: talon web run FLOW.yaml\n');
    return 0;
  }
  const rows = [['FLOW', 'MODE', 'INPUTS', 'SCHEDULE', 'LAST RUN', 'RESULT']];
  for (const f of flows)
    rows.push([
      f.name,
      f.mode === 'steps' ? `${f.steps ?? 0} step(s)` : 'goal',
      Object.entries(f.inputs)
        .map(([k, t]) => `${k}:${t}`)
        .join(' ') || '-',
      f.schedule ? `${f.schedule}${f.scheduledBy === 'local' ? ' (local)' : ''}` : '-',
      iso(f.lastRun?.at),
      f.lastRun ? runWords(f.lastRun) : '-',
    ]);
  a.io.out(table(rows));
  return 0;
}

export async function runsCommand(a: HandCommandArgs): Promise<number> {
  const id = a.positionals[0];
  if (id !== undefined) {
    if (!new RegExp(RUN_ID_PATTERN).test(id))
      return a.usage(`ID must be a run id (13 digits and 4 characters, as \`talon web runs\` lists them), not "${id}"`);
    const { run } = await daemonOf(a).request<{ run: RunView }>('GET', `${BASE}/runs/${enc(id)}`);
    if (a.values.json) return printJson(a, run);
    a.io.out(runText(run));
    return 0;
  }
  const kind = checked(a, 'kind', '^(check|flow)$', 'check or flow');
  const before = checked(a, 'before', RUN_ID_PATTERN, 'a run id (`talon web runs` lists them)');
  const limit = limitOf(a, 500) ?? 20;
  const q = [`limit=${limit}`];
  if (kind) q.push(`kind=${kind}`);
  if (before) q.push(`before=${enc(before)}`);
  const r = await daemonOf(a).request<{ runs: RunView[]; next?: string }>('GET', `${BASE}/runs?${q.join('&')}`);
  if (a.values.json) return printJson(a, r.runs);
  if (r.runs.length === 0) {
    a.io.out('no runs yet\n');
    return 0;
  }
  const rows = [['AT', 'ID', 'KIND', 'NAME', 'RESULT']];
  for (const x of r.runs) rows.push([iso(x.at), x.id, x.kind, x.name, runWords(x)]);
  a.io.out(table(rows));
  if (r.next) a.io.out(`more: --before ${r.next}\n`);
  return 0;
}

/** a visual change as ./visual.ts VisualChange */
export interface VisualView {
  percent: number;
  sizeChanged: boolean;
  width: number;
  height: number;
  before?: { width: number; height: number };
}

/** "12.5 % of the region changed (size 800×600)" (./visual.ts visualWords) */
export function visualText(v: VisualView): string {
  return visualWords({ changedCells: 0, cells: 0, ...v, before: v.before ?? { width: v.width, height: v.height } });
}

/** a watch's state in a few words: `broken (3 failed)`, `pending change`, `ok` */
export function stateWords(w: WatchView): string {
  if (w.broken) return `broken (${w.failures} failed)`;
  if (w.failures > 0) return `${w.failures} failed`;
  if (w.pending) return 'pending change';
  return w.lastCheckAt === undefined ? 'not checked' : 'ok';
}

const WATCH_ACTIONS = ['list', 'check', 'show', 'add', 'remove'];
/** the quick form's options (`watch add --id … --url …`) */
const QUICK = [
  'id',
  'url',
  'text',
  'price',
  'json-path',
  'attribute',
  'visual',
  'schedule',
  'ignore',
  'min-change',
  'confirm',
  'no-confirm',
  'unchanged-days',
] as const;
const KINDS = ['text', 'price', 'json-path', 'attribute', 'visual'] as const;

/** the watches in a file's text: one watch, a list, or { watches: [...] } (YAML or JSON); a usage error otherwise */
export function readWatchesFile(path: string, shown: string, usage: (m: string) => never): unknown[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return usage(`FILE "${shown}" cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return usage(`${shown}: not YAML or JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (Array.isArray(doc)) return doc;
  if (isObject(doc) && Array.isArray(doc.watches) && doc.url === undefined) return doc.watches;
  if (isObject(doc)) return [doc];
  return usage(`${shown}: holds no watch (a watch { id, url, what }, a list of them, or { watches: [...] })`);
}

/** a parseWatch message about the quick form, naming the option instead of the field */
function optionWords(msg: string, kind: (typeof KINDS)[number]): string {
  const fields: Array<[RegExp, string]> = [
    [/^watch\.id\b/, '--id'],
    [/^watch\.url\b/, '--url'],
    [/^watch\.what(\.[\w.]+)?/, `--${kind}`],
    [/^watch\.schedule\b/, '--schedule'],
    [/^watch\.ignore(\[\d+\])?/, '--ignore'],
    [/^watch\.minChange(\.\w+)?/, '--min-change'],
    [/^watch\.unchangedDays\b/, '--unchanged-days'],
  ];
  for (const [re, option] of fields) if (re.test(msg)) return msg.replace(re, option);
  return msg;
}

/** the watch the quick form's options describe (checked with parseWatch; usage errors name the option) */
export function quickWatch(a: HandCommandArgs): Record<string, unknown> {
  const v = a.values;
  const str = (k: string): string | undefined => {
    const x = v[k];
    if (x === undefined) return undefined;
    if (typeof x !== 'string') return a.usage(`--${k} needs a value`);
    return x;
  };
  const id = str('id');
  const url = str('url');
  if (id === undefined || url === undefined)
    return a.usage(
      '`watch add` needs FILE, or --id ID --url URL and one of --text, --price, --json-path, --attribute, --visual',
    );
  const kinds = KINDS.filter((k) => v[k] !== undefined);
  if (kinds.length !== 1)
    return a.usage(
      `\`watch add\` takes exactly one of --text SEL, --price SEL, --json-path PATH, --attribute SEL@NAME, --visual SEL${kinds.length ? ` (given: ${kinds.map((k) => `--${k}`).join(', ')})` : ''}`,
    );
  const kind = kinds[0]!;
  const sel = str(kind)!;
  const whole = sel === '-' || sel === '' ? null : sel;
  let what: Record<string, unknown>;
  if (kind === 'attribute') {
    const at = sel.lastIndexOf('@');
    if (at <= 0 || at === sel.length - 1)
      return a.usage(`--attribute must be SELECTOR@NAME ("a.download@href"), not "${sel}"`);
    what = { attribute: { selector: sel.slice(0, at), name: sel.slice(at + 1) } };
  } else if (kind === 'json-path') what = { json: sel };
  else what = { [kind]: whole };
  const watch: Record<string, unknown> = { id, url, what };
  const schedule = str('schedule');
  if (schedule !== undefined) watch.schedule = schedule;
  // several --ignore arrive as a list, or one per line (an option the CLI parses as `multiple`)
  const ignore = v.ignore as unknown;
  if (ignore !== undefined)
    watch.ignore = (Array.isArray(ignore) ? ignore : [ignore]).flatMap((x) => String(x).split('\n'));
  const min = str('min-change');
  if (min !== undefined) {
    const m = /^(\d+(?:\.\d+)?)(%)?$/.exec(min.trim());
    if (!m) return a.usage(`--min-change must be a number (characters, an amount, or N% for a percent), not "${min}"`);
    const n = Number(m[1]);
    const key = m[2] || kind === 'visual' ? 'percent' : kind === 'price' ? 'amount' : 'chars';
    watch.minChange = { [key]: n };
  }
  if (v.confirm && v['no-confirm']) return a.usage('--confirm and --no-confirm: give one');
  if (v.confirm) watch.confirm = true;
  if (v['no-confirm']) watch.confirm = false;
  const days = str('unchanged-days');
  if (days !== undefined) {
    const n = Number(days);
    if (days.trim() === '' || !Number.isFinite(n))
      return a.usage(`--unchanged-days must be a number of days, not "${days}"`);
    watch.unchangedDays = n;
  }
  const problem = parseWatch(watch, 'watch');
  if (typeof problem === 'string') return a.usage(optionWords(problem, kind));
  return watch;
}

async function watchAdd(a: HandCommandArgs, file: string | undefined): Promise<number> {
  const quick = QUICK.filter((k) => a.values[k] !== undefined && a.values[k] !== false);
  if (file !== undefined && quick.length > 0)
    return a.usage(`\`watch add\` takes FILE or the options (${quick.map((k) => `--${k}`).join(', ')}), not both`);
  const watches = file !== undefined ? readWatchesFile(resolve(a.io.cwd, file), file, a.usage) : [quickWatch(a)];
  if (watches.length === 0) return a.usage(`${file}: holds no watch`);
  const seen = new Set<string>();
  for (const [i, w] of watches.entries()) {
    const where = watches.length > 1 ? `${file}: watches[${i}]` : (file ?? 'watch');
    const problem = parseWatch(w, where);
    if (typeof problem === 'string') return a.usage(problem);
    if (seen.has(problem.id)) return a.usage(`${where}.id: "${problem.id}" is used by an earlier watch in the file`);
    seen.add(problem.id);
  }
  const daemon = daemonOf(a);
  const stored: unknown[] = [];
  for (const w of watches as Array<Record<string, unknown>>) {
    const id = w.id as string;
    const r = await daemon.request<{ watch: WatchView; created: boolean }>('PUT', `${BASE}/watches/${enc(id)}`, w);
    stored.push(r);
    if (!a.values.json)
      a.io.out(
        `${r.created ? 'added' : 'replaced'} ${id}: ${r.watch.what} of ${r.watch.url}${r.watch.schedule ? `, ${r.watch.schedule}` : ''}\n`,
      );
  }
  if (a.values.json) return printJson(a, stored);
  return 0;
}

export async function watchCommand(a: HandCommandArgs): Promise<number> {
  const action = a.positionals[0]!;
  const id = a.positionals[1];
  if (!WATCH_ACTIONS.includes(action))
    return a.usage(`ACTION must be list, check ID, show ID, add FILE or remove ID, not "${action}"`);
  if (action === 'add') return watchAdd(a, id);
  const extra = QUICK.filter((k) => a.values[k] !== undefined && a.values[k] !== false);
  if (extra.length > 0) return a.usage(`--${extra[0]} is an option of \`watch add\`, not of \`watch ${action}\``);
  if (action === 'list') {
    if (id !== undefined) return a.usage('`watch list` takes no ID');
    const { watches } = await daemonOf(a).request<{ watches: WatchView[] }>('GET', `${BASE}/watches`);
    if (a.values.json) return printJson(a, watches);
    if (watches.length === 0) {
      a.io.out(
        "no watches; add one with `talon web watch add FILE` (or --id ID --url URL --text SEL) or in the Web Hand's settings\n",
      );
      return 0;
    }
    const rows = [['WATCH', 'SOURCE', 'STATE', 'LAST CHECK', 'LAST CHANGE', 'WHAT', 'VALUE']];
    for (const w of watches)
      rows.push([w.id, w.source, stateWords(w), iso(w.lastCheckAt), iso(w.lastChangeAt), w.what, oneLine(w.value, 50)]);
    a.io.out(table(rows));
    return 0;
  }
  if (id === undefined) return a.usage(`\`watch ${action}\` needs the watch ID (\`talon web watch list\` lists them)`);
  if (!new RegExp(WATCH_ID_PATTERN).test(id))
    return a.usage(`ID must be a watch id (lowercase letters, digits, "-" or "_"), not "${id}"`);
  if (action === 'remove') {
    const r = await daemonOf(a).request<{ removed: string }>('DELETE', `${BASE}/watches/${enc(id)}`);
    if (a.values.json) return printJson(a, r);
    a.io.out(`removed ${r.removed}\n`);
    return 0;
  }
  if (action === 'check') {
    const r = await daemonOf(a).request<{ watch: WatchView; events: Array<Record<string, unknown>>; run: RunView }>(
      'POST',
      `${BASE}/watches/${enc(id)}/check`,
    );
    if (a.values.json) return printJson(a, r);
    const lines = [`${id}: ${stateWords(r.watch)}; ${r.run.ok ? 'checked' : `failed: ${r.run.error ?? ''}`}`];
    if (r.events.length === 0) lines.push(r.run.ok ? '  no change' : '  (not broken yet)');
    for (const e of r.events) {
      lines.push(`  ${e.type as string}${typeof e.reason === 'string' ? `: ${e.reason}` : ''}`);
      const visual = e.visual as VisualView | undefined;
      if (visual) {
        lines.push(`    ${visualText(visual)}`);
        if (typeof e.screenshot === 'string') lines.push(`    screenshot: ${e.screenshot}`);
        continue;
      }
      const diff = (e.diff as { unified?: string } | undefined)?.unified;
      if (e.type === 'changed' && diff) lines.push(diff.replace(/^/gm, '    '));
    }
    a.io.out(`${lines.join('\n')}\n`);
    return 0;
  }
  const r = await daemonOf(a).request<{
    watch: WatchView;
    history: Array<{ at: number; result: string; note?: string }>;
    runs: RunView[];
    lastChange?: { at: number; diff?: string; visual?: VisualView; screenshot?: string; before: string; after: string };
  }>('GET', `${BASE}/watches/${enc(id)}`);
  if (a.values.json) return printJson(a, r);
  const w = r.watch;
  const lines = [
    `${w.id}: ${w.url}`,
    `  what: ${w.what}`,
    `  source: ${w.source === 'api' ? 'api (talon web watch remove removes it)' : 'config'}`,
    `  state: ${stateWords(w)}`,
    ...(w.schedule ? [`  schedule: ${w.schedule}${w.scheduledBy === 'local' ? ' (local timer)' : ''}`] : []),
    `  last check: ${iso(w.lastCheckAt)}, last change: ${iso(w.lastChangeAt)}`,
    ...(w.value !== undefined ? [`  value: ${oneLine(w.value, 100)}`] : []),
  ];
  const c = r.lastChange;
  if (c) {
    lines.push(`  last change (${iso(c.at)}):`);
    if (c.visual) lines.push(`    ${visualText(c.visual)}`);
    else if (c.diff) lines.push(c.diff.replace(/^/gm, '    '));
    else lines.push(`    ${oneLine(c.before, 80)} → ${oneLine(c.after, 80)}`);
    if (c.screenshot) lines.push(`    screenshot: ${c.screenshot}`);
  }
  a.io.out(`${lines.join('\n')}\n`);
  if (r.history.length > 0) {
    const rows = [['AT', 'RESULT', 'NOTE']];
    for (const h of [...r.history].reverse()) rows.push([iso(h.at), h.result, oneLine(h.note, 80)]);
    a.io.out(table(rows));
  }
  return 0;
}
