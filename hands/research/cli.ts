/**
 * `talon research topics|run TOPIC|reports|report ID|docs`: the Research Hand's topics, reports and documents on the
 * running daemon, through /api/v1/research (./surface.ts). Options and ids are checked here before any request, so a
 * bad `--limit` or topic id is a usage error (exit 2) naming what to write instead. `report ID` prints the report's
 * Markdown (the whole report as JSON with --json).
 */
import type { HandCommandArgs, HandDaemon } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Report } from './types.ts';
import { DOC_ID_PATTERN, REPORT_ID_PATTERN, TOPIC_ID_PATTERN } from './protocol.ts';
import { iso, oneLine, table, printJson } from '../sdk/cli-text.ts';

const BASE = '/api/v1/research';
const enc = encodeURIComponent;

/** a topic as GET /api/v1/research/topics answers it (./protocol.ts TOPIC_VIEW_SCHEMA) */
export interface TopicView {
  id: string;
  title: string;
  questions: string[];
  sources: string[];
  schedule?: string;
  scheduledBy?: 'scheduler' | 'local' | 'none';
  notify: string;
  running: boolean;
  lastRun?: {
    at: number;
    finishedAt?: number;
    reportId: string;
    mode: Report['mode'];
    new: number;
    relevant: number;
    errors: number;
  };
}

/** a report without its Markdown, as listings and `run` answer it (./protocol.ts REPORT_SUMMARY_SCHEMA) */
export interface ReportSummary {
  id: string;
  topic: string;
  runId: string;
  startedAt: number;
  finishedAt: number;
  mode: Report['mode'];
  summary: string;
  findings: number;
  sources: number;
  refused: number;
  downgraded: number;
  stats: Report['stats'];
  errors: number;
  note?: string;
}

export interface DocView {
  id: string;
  url: string;
  urls: string[];
  title: string;
  fetchedAt: number;
  published?: number;
  source: string;
  chars: number;
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

const TOPIC_WORDS = 'a topic id (lowercase letters, digits, "-" or "_")';

/** a run in a few words: `digest 3 new, 2 relevant, 1 error` */
export function runWords(r: { mode: string; new: number; relevant: number; errors: number }): string {
  const errs = r.errors ? `, ${r.errors} error${r.errors === 1 ? '' : 's'}` : '';
  return `${r.mode}: ${r.new} new, ${r.relevant} relevant${errs}`;
}

export async function topicsCommand(a: HandCommandArgs): Promise<number> {
  const { topics } = await daemonOf(a).request<{ topics: TopicView[] }>('GET', `${BASE}/topics`);
  if (a.values.json) return printJson(a, topics);
  if (topics.length === 0) {
    a.io.out("no topics; add them to the Research Hand's settings (topics: [{ id, questions, sources, schedule }])\n");
    return 0;
  }
  const rows = [['TOPIC', 'SCHEDULE', 'LAST RUN', 'RESULT', 'SOURCES']];
  for (const t of topics) {
    const schedule = t.schedule ? `${t.schedule}${t.scheduledBy === 'local' ? ' (local)' : ''}` : '-';
    rows.push([
      t.id,
      schedule,
      t.running ? 'running' : iso(t.lastRun?.at),
      t.lastRun ? runWords(t.lastRun) : '-',
      t.sources.join(', '),
    ]);
  }
  a.io.out(table(rows));
  return 0;
}

export async function runCommand(a: HandCommandArgs): Promise<number> {
  const topic = a.positionals[0]!;
  if (!new RegExp(TOPIC_ID_PATTERN).test(topic)) return a.usage(`TOPIC must be ${TOPIC_WORDS}, not "${topic}"`);
  const { report } = await daemonOf(a).request<{ report: ReportSummary }>('POST', `${BASE}/topics/${enc(topic)}/run`);
  if (a.values.json) return printJson(a, report);
  const s = report.stats;
  const lines = [
    `report ${report.id} (${report.mode})`,
    `  ${s.sources} source(s), ${s.requests} request(s) (${s.notModified} not modified), ${s.candidates} candidate(s)`,
    `  ${s.new} new, ${s.relevant} relevant, ${report.findings} finding(s)${report.refused ? `, ${report.refused} claim(s) refused` : ''}`,
    ...(report.errors ? [`  ${report.errors} error(s)`] : []),
    ...(report.note ? [`  note: ${report.note}`] : []),
    `  ${oneLine(report.summary, 200)}`,
    `show it with: talon research report ${report.id}`,
  ];
  a.io.out(`${lines.join('\n')}\n`);
  return 0;
}

export async function reportsCommand(a: HandCommandArgs): Promise<number> {
  const topic = checked(a, 'topic', TOPIC_ID_PATTERN, TOPIC_WORDS);
  const before = checked(a, 'before', REPORT_ID_PATTERN, 'a report id (`talon research reports` lists them)');
  const limit = limitOf(a, 200) ?? 20;
  const q = [`limit=${limit}`];
  if (topic) q.push(`topic=${enc(topic)}`);
  if (before) q.push(`before=${enc(before)}`);
  const r = await daemonOf(a).request<{ reports: ReportSummary[]; next?: string }>(
    'GET',
    `${BASE}/reports?${q.join('&')}`,
  );
  if (a.values.json) return printJson(a, r.reports);
  if (r.reports.length === 0) {
    a.io.out(topic ? `${topic}: no reports yet; run it with: talon research run ${topic}\n` : 'no reports yet\n');
    return 0;
  }
  const rows = [['STARTED', 'ID', 'MODE', 'FINDINGS', 'NEW', 'ERRORS', 'SUMMARY']];
  for (const x of r.reports)
    rows.push([
      iso(x.startedAt),
      x.id,
      x.mode,
      String(x.findings),
      String(x.stats.new),
      String(x.errors),
      oneLine(x.summary),
    ]);
  a.io.out(table(rows));
  if (r.next) a.io.out(`more: --before ${r.next}\n`);
  return 0;
}

export async function reportCommand(a: HandCommandArgs): Promise<number> {
  const id = a.positionals[0]!;
  if (!new RegExp(REPORT_ID_PATTERN).test(id))
    return a.usage(
      `ID must be a report id (\`<topic>-<run id>\`, as \`talon research reports\` lists them), not "${id}"`,
    );
  const { report } = await daemonOf(a).request<{ report: Report }>('GET', `${BASE}/reports/${enc(id)}`);
  if (a.values.json) return printJson(a, report);
  a.io.out(report.markdown.endsWith('\n') ? report.markdown : `${report.markdown}\n`);
  return 0;
}

export async function docsCommand(a: HandCommandArgs): Promise<number> {
  const topic = checked(a, 'topic', TOPIC_ID_PATTERN, TOPIC_WORDS);
  const after = checked(a, 'after', DOC_ID_PATTERN, 'a document id (hex)');
  const limit = limitOf(a, 500) ?? 50;
  const q = [`limit=${limit}`];
  if (topic) q.push(`topic=${enc(topic)}`);
  if (after) q.push(`after=${enc(after)}`);
  const r = await daemonOf(a).request<{ documents: DocView[]; next?: string }>(
    'GET',
    `${BASE}/documents?${q.join('&')}`,
  );
  if (a.values.json) return printJson(a, r.documents);
  if (r.documents.length === 0) {
    a.io.out('no documents stored yet\n');
    return 0;
  }
  const rows = [['ID', 'FETCHED', 'TITLE', 'URL']];
  for (const d of r.documents)
    rows.push([
      d.id.slice(0, 12),
      iso(d.fetchedAt),
      oneLine(d.title, 50),
      `${d.url}${d.urls.length > 1 ? ` (+${d.urls.length - 1} more)` : ''}`,
    ]);
  a.io.out(table(rows));
  if (r.next) a.io.out(`more: --after ${r.next}\n`);
  return 0;
}
