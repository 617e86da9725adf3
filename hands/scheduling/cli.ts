/**
 * `talon schedule list|show ID|add FILE|remove ID|run ID|pause ID|resume ID|history ID` (also `talon scheduling …`):
 * the Scheduling Hand's jobs on the running daemon, through /api/v1/schedules (./surface.ts). `add` reads YAML or
 * JSON (one job, a list, or `{ jobs: [...] }`) and stores each job with PUT, so the device checks it: a refusal
 * prints the job and the field and exits 2.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { HandCommandArgs, HandDaemon } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { JobView, RunRecord, Trigger } from './types.ts';
import { iso, table } from '../sdk/cli-text.ts';

const BASE = '/api/v1/schedules';
const enc = encodeURIComponent;

function daemonOf(a: HandCommandArgs): HandDaemon {
  if (!a.daemon) throw new TalonError('INTERNAL', 'this command needs the running daemon (declared daemon: true)');
  return a.daemon;
}

/** a duration in words: 90000 → `1m30s` */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const neg = ms < 0;
  let s = Math.round(Math.abs(ms) / 1000);
  if (Math.abs(ms) < 1000) return `${neg ? '-' : ''}${Math.round(Math.abs(ms))}ms`;
  const parts: string[] = [];
  for (const [unit, n] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
    if (parts.length === 2) break;
  }
  if (parts.length < 2 && s > 0) parts.push(`${s}s`);
  return `${neg ? '-' : ''}${parts.join('')}`;
}

/** a trigger in a few words, as `list` shows it */
export function describeTrigger(t: Trigger): string {
  if ('cron' in t) return `cron ${t.cron}${t.timezone ? ` (${t.timezone})` : ''}`;
  if ('every' in t) return `every ${typeof t.every === 'number' ? formatMs(t.every) : t.every}`;
  if ('at' in t) return `at ${typeof t.at === 'number' ? iso(t.at) : t.at}`;
  if ('event' in t)
    return `on ${t.event.topic}${t.event.where?.length ? ` where ${t.event.where.map((w) => `${w.path} ${w.op}${w.value !== undefined ? ` ${JSON.stringify(w.value)}` : ''}`).join(' and ')}` : ''}`;
  return `after ${t.after.join(', ')}${t.on && t.on !== 'success' ? ` (${t.on})` : ''}`;
}

function stateOf(j: JobView): string {
  if (j.running.length > 0) return 'running';
  if (j.state.paused) return j.state.pausedBy && j.state.pausedBy !== 'api' ? `paused (${j.state.pausedBy})` : 'paused';
  return j.waiting ? `waiting: ${j.waiting}` : 'active';
}

export async function listCommand(a: HandCommandArgs): Promise<number> {
  const { jobs } = await daemonOf(a).request<{ jobs: JobView[] }>('GET', BASE);
  if (a.values.json) {
    a.io.out(`${JSON.stringify(jobs, null, 2)}\n`);
    return 0;
  }
  if (jobs.length === 0) {
    a.io.out('no jobs; add one with `talon schedule add FILE` (YAML or JSON) or in the config\n');
    return 0;
  }
  const now = Date.now();
  const rows = [['ID', 'TRIGGER', 'NEXT', 'LAST', 'STATE']];
  for (const j of jobs) {
    const next = j.next[0] ?? j.state.nextAt;
    const last = j.state.lastOutcome;
    rows.push([
      j.id,
      describeTrigger(j.spec.trigger),
      next === undefined ? '-' : `in ${formatMs(next - now)}`,
      last ? `${last.status} ${formatMs(now - last.endedAt)} ago` : '-',
      stateOf(j),
    ]);
  }
  a.io.out(table(rows));
  return 0;
}

export async function showCommand(a: HandCommandArgs): Promise<number> {
  const id = a.positionals[0]!;
  const { job } = await daemonOf(a).request<{ job: JobView }>('GET', `${BASE}/${enc(id)}`);
  if (a.values.json) {
    a.io.out(`${JSON.stringify(job, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `id:       ${job.id}${job.spec.description ? ` — ${job.spec.description}` : ''}`,
    `source:   ${job.source}`,
    `trigger:  ${describeTrigger(job.spec.trigger)}`,
    `action:   ${JSON.stringify(job.spec.action)}`,
    ...(job.spec.policy ? [`policy:   ${JSON.stringify(job.spec.policy)}`] : []),
    `state:    ${stateOf(job)}; ${job.state.runs} run(s), ${job.state.failuresInARow} failure(s) in a row`,
    `next:     ${job.next.length ? job.next.map(iso).join(', ') : '-'}`,
    `last:     ${job.state.lastOutcome ? `${job.state.lastOutcome.status} at ${iso(job.state.lastOutcome.endedAt)} (${job.state.lastOutcome.runId})` : '-'}`,
    ...(job.running.length ? [`running:  ${job.running.join(', ')}`] : []),
  ];
  a.io.out(`${lines.join('\n')}\n`);
  return 0;
}

/** the jobs in a file's text: one job, a list, or `{ jobs: [...] }` (YAML or JSON) */
export async function parseJobsFile(text: string, file: string): Promise<unknown[]> {
  let doc: unknown;
  try {
    doc = /\.json$/i.test(file) ? JSON.parse(text) : (await import('yaml')).parse(text);
  } catch (err) {
    throw new TalonError('CONFIG_PARSE', `${file}: ${(err as Error).message}`);
  }
  if (Array.isArray(doc)) return doc;
  if (doc && typeof doc === 'object') {
    const jobs = (doc as { jobs?: unknown }).jobs;
    if (Array.isArray(jobs) && !('trigger' in doc)) return jobs;
    return [doc];
  }
  throw new TalonError('BAD_REQUEST', `${file}: holds no job (a job object, a list of them, or { jobs: [...] })`);
}

export async function addCommand(a: HandCommandArgs): Promise<number> {
  const file = a.positionals[0]!;
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : resolve(a.io.cwd, file), 'utf8');
  } catch (err) {
    throw new TalonError('NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`);
  }
  const jobs = await parseJobsFile(text, file);
  const daemon = daemonOf(a);
  const stored: unknown[] = [];
  for (const [i, job] of jobs.entries()) {
    const where = jobs.length > 1 ? `${file}: jobs[${i}]` : file;
    const id = (job as { id?: unknown } | null)?.id;
    if (typeof job !== 'object' || job === null || Array.isArray(job)) {
      a.io.err(`${where}: must be a job object { id, trigger, action }\n`);
      return 2;
    }
    if (typeof id !== 'string' || id === '') {
      a.io.err(`${where}: id: a job needs an id (lowercase letters, digits, . _ -)\n`);
      return 2;
    }
    try {
      const r = await daemon.request<{ job: JobView; created: boolean }>('PUT', `${BASE}/${enc(id)}`, job);
      stored.push(r);
      if (!a.values.json) a.io.out(`${r.created ? 'created' : 'updated'} ${id}\n`);
    } catch (err) {
      const e = TalonError.from(err);
      if (e.exitCode !== 2) throw err;
      a.io.err(`${where} (${id}): ${e.message} (${e.code})\n`);
      return 2;
    }
  }
  if (a.values.json) a.io.out(`${JSON.stringify(stored, null, 2)}\n`);
  return 0;
}

export async function changeCommand(op: 'remove' | 'run' | 'pause' | 'resume', a: HandCommandArgs): Promise<number> {
  const id = a.positionals[0]!;
  const daemon = daemonOf(a);
  const r =
    op === 'remove'
      ? await daemon.request<unknown>('DELETE', `${BASE}/${enc(id)}`)
      : await daemon.request<unknown>('POST', `${BASE}/${enc(id)}/${op}`);
  if (a.values.json) {
    a.io.out(`${JSON.stringify(r, null, 2)}\n`);
    return 0;
  }
  if (op === 'run') {
    const run = (r as { run: RunRecord }).run;
    a.io.out(`started ${run.runId} (${run.status})\n`);
  } else a.io.out(`${{ remove: 'removed', pause: 'paused', resume: 'resumed' }[op]} ${id}\n`);
  return 0;
}

export async function historyCommand(a: HandCommandArgs): Promise<number> {
  const id = a.positionals[0]!;
  const q: string[] = [];
  for (const k of ['limit', 'before'] as const) {
    const v = a.values[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !/^\d+$/.test(v)) return a.usage(`--${k} must be a whole number, got "${String(v)}"`);
    if (k === 'limit' && (Number(v) < 1 || Number(v) > 1000)) return a.usage('--limit must be from 1 to 1000');
    q.push(`${k}=${v}`);
  }
  if (a.values.limit === undefined) q.unshift('limit=20');
  const { runs } = await daemonOf(a).request<{ runs: RunRecord[] }>('GET', `${BASE}/${enc(id)}/history?${q.join('&')}`);
  if (a.values.json) {
    a.io.out(`${JSON.stringify(runs, null, 2)}\n`);
    return 0;
  }
  if (runs.length === 0) {
    a.io.out(`${id}: no runs yet\n`);
    return 0;
  }
  const rows = [['SCHEDULED', 'CAUSE', 'STATUS', 'TOOK', 'DETAIL']];
  for (const r of runs) {
    const took = r.startedAt !== undefined && r.endedAt !== undefined ? formatMs(r.endedAt - r.startedAt) : '-';
    const detail = r.error
      ? `${r.error.code}: ${r.error.message}`
      : r.reason
        ? r.reason
        : r.result !== undefined
          ? JSON.stringify(r.result).slice(0, 80)
          : '';
    rows.push([iso(r.scheduledAt), r.cause + (r.attempt > 1 ? ` #${r.attempt}` : ''), r.status, took, detail]);
  }
  a.io.out(table(rows));
  return 0;
}
