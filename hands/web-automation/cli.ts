/**
 * `talon web run FLOW.yaml|NAME [--input k=v,…]|flows|runs [ID]|watch list|check ID|show ID`: the Web Automation
 * Hand's flows, runs and page watches on the running daemon, through /api/v1/web (./surface.ts). A flow file (YAML or
 * JSON, parsed with the `yaml` package) is checked here with runtime/core/flow.ts before any request, so a bad step is
 * a usage error (exit 2) naming it; inputs are typed as the flow declares them. Options and ids are checked before
 * any request as well.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { HandCommandArgs, HandDaemon } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { flowProblems } from '../../runtime/core/flow.ts';
import { FLOW_NAME_PATTERN, RUN_ID_PATTERN, WATCH_ID_PATTERN, failureText } from './protocol.ts';
import { iso, oneLine, printJson, table } from '../sdk/cli-text.ts';

const BASE = '/api/v1/web';
const enc = encodeURIComponent;

/** a watch as GET /api/v1/web/watches answers it (./protocol.ts WATCH_VIEW_SCHEMA) */
export interface WatchView {
  id: string;
  url: string;
  what: string;
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

/** a watch's state in a few words: `broken (3 failed)`, `pending change`, `ok` */
export function stateWords(w: WatchView): string {
  if (w.broken) return `broken (${w.failures} failed)`;
  if (w.failures > 0) return `${w.failures} failed`;
  if (w.pending) return 'pending change';
  return w.lastCheckAt === undefined ? 'not checked' : 'ok';
}

const WATCH_ACTIONS = ['list', 'check', 'show'];

export async function watchCommand(a: HandCommandArgs): Promise<number> {
  const action = a.positionals[0]!;
  const id = a.positionals[1];
  if (!WATCH_ACTIONS.includes(action)) return a.usage(`ACTION must be list, check ID or show ID, not "${action}"`);
  if (action === 'list') {
    if (id !== undefined) return a.usage('`watch list` takes no ID');
    const { watches } = await daemonOf(a).request<{ watches: WatchView[] }>('GET', `${BASE}/watches`);
    if (a.values.json) return printJson(a, watches);
    if (watches.length === 0) {
      a.io.out("no watches; add them to the Web Hand's settings (watches: [{ id, url, what, schedule }])\n");
      return 0;
    }
    const rows = [['WATCH', 'STATE', 'LAST CHECK', 'LAST CHANGE', 'WHAT', 'VALUE']];
    for (const w of watches)
      rows.push([w.id, stateWords(w), iso(w.lastCheckAt), iso(w.lastChangeAt), w.what, oneLine(w.value, 50)]);
    a.io.out(table(rows));
    return 0;
  }
  if (id === undefined) return a.usage(`\`watch ${action}\` needs the watch ID (\`talon web watch list\` lists them)`);
  if (!new RegExp(WATCH_ID_PATTERN).test(id))
    return a.usage(`ID must be a watch id (lowercase letters, digits, "-" or "_"), not "${id}"`);
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
  }>('GET', `${BASE}/watches/${enc(id)}`);
  if (a.values.json) return printJson(a, r);
  const w = r.watch;
  const lines = [
    `${w.id}: ${w.url}`,
    `  what: ${w.what}`,
    `  state: ${stateWords(w)}`,
    ...(w.schedule ? [`  schedule: ${w.schedule}${w.scheduledBy === 'local' ? ' (local timer)' : ''}`] : []),
    `  last check: ${iso(w.lastCheckAt)}, last change: ${iso(w.lastChangeAt)}`,
    ...(w.value !== undefined ? [`  value: ${oneLine(w.value, 100)}`] : []),
  ];
  a.io.out(`${lines.join('\n')}\n`);
  if (r.history.length > 0) {
    const rows = [['AT', 'RESULT', 'NOTE']];
    for (const h of [...r.history].reverse()) rows.push([iso(h.at), h.result, oneLine(h.note, 80)]);
    a.io.out(table(rows));
  }
  return 0;
}
