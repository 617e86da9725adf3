/**
 * The Scheduling Hand's page in the web admin (#/schedules): the jobs with their trigger in words, next run,
 * last outcome and state, pause / resume / run-now buttons for admins, and the picked job's history below. With no
 * jobs it says how to add one. A chunk of its own, loaded when the page opens (hands/sdk/page.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import { definePage, type HandPageProps, type PageApi, type PageUi } from '../../sdk/page.ts';

interface Outcome {
  runId: string;
  status: string;
  endedAt: number;
}
export interface JobRow {
  id: string;
  spec: { description?: string; trigger: Record<string, unknown>; action: Record<string, unknown> };
  source: string;
  state: { paused: boolean; pausedBy?: string; nextAt?: number; runs: number; lastOutcome?: Outcome };
  running: string[];
  next: number[];
  waiting?: string;
}
export interface Run {
  runId: string;
  scheduledAt: number;
  cause: string;
  attempt: number;
  status: string;
  startedAt?: number;
  endedAt?: number;
  result?: unknown;
  error?: { code: string; message: string };
  reason?: string;
}

const enc = encodeURIComponent;

/** ms as a short span: 90 000 → `1m 30s` */
export function span(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** a trigger in words */
export function triggerWords(t: Record<string, unknown>): string {
  if (typeof t.cron === 'string') return `cron ${t.cron}${typeof t.timezone === 'string' ? ` (${t.timezone})` : ''}`;
  if (t.every !== undefined) return `every ${typeof t.every === 'number' ? span(t.every) : String(t.every)}`;
  if (t.at !== undefined) return `once at ${typeof t.at === 'number' ? new Date(t.at).toISOString() : String(t.at)}`;
  if (t.event && typeof t.event === 'object') {
    const e = t.event as { topic?: string; where?: Array<{ path: string; op: string; value?: unknown }> };
    const where = (e.where ?? []).map(
      (w) => `${w.path} ${w.op} ${w.value === undefined ? '' : JSON.stringify(w.value)}`,
    );
    return `on ${e.topic ?? '?'}${where.length ? ` where ${where.join(' and ')}` : ''}`;
  }
  if (Array.isArray(t.after))
    return `after ${t.after.join(', ')}${t.on && t.on !== 'success' ? ` (${String(t.on)})` : ''}`;
  return JSON.stringify(t);
}

function stateWords(j: JobRow): string {
  if (j.running.length > 0) return 'running';
  if (j.state.paused) return j.state.pausedBy && j.state.pausedBy !== 'api' ? `paused (${j.state.pausedBy})` : 'paused';
  return j.waiting ? `waiting: ${j.waiting}` : 'active';
}

const EXAMPLE = `hands:
  - name: scheduler
    module: scheduling
    settings:
      jobs:
        - id: nightly-report
          trigger: { cron: "0 30 2 * * *", timezone: Europe/Berlin }
          action: { ask: { hand: research, task: { topic: "daily" } } }
          policy: { overlap: skip, catchUp: { mode: last } }`;

function Schedules({ args, user, api, ui }: HandPageProps) {
  const admin = user.role === 'admin';
  const [jobs, setJobs] = useState<JobRow[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [picked, setPicked] = useState<string | null>(args[0] ?? null);
  const [now, setNow] = useState(Date.now());
  const load = (): Promise<void> =>
    api.get<{ jobs: JobRow[] }>('/api/v1/schedules').then(
      (r) => {
        setJobs(r.jobs);
        setNow(Date.now());
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 10_000);
    return () => clearInterval(t);
  }, []);
  const act = async (id: string, op: 'pause' | 'resume' | 'run'): Promise<void> => {
    setBusy(`${op}:${id}`);
    try {
      await api.post(`/api/v1/schedules/${enc(id)}/${op}`);
      await load();
    } catch (e) {
      setError(api.message(e));
    } finally {
      setBusy('');
    }
  };
  return (
    <>
      <div class="card" data-testid="schedules">
        <h2>Schedules</h2>
        {error && <p class="error">{error}</p>}
        {jobs && jobs.length === 0 ? (
          <div data-testid="schedules-empty">
            <p class="muted">
              No jobs yet. Add them in the config (versioned with it), or from a YAML or JSON file with{' '}
              <code>talon schedule add FILE</code> (or <code>PUT /api/v1/schedules/ID</code>):
            </p>
            <pre class="small">{EXAMPLE}</pre>
          </div>
        ) : (
          <div class="scroll">
            <table data-testid="schedules-table">
              <thead>
                <tr>
                  <th>Job</th>
                  <th>Trigger</th>
                  <th>Next run</th>
                  <th>Last outcome</th>
                  <th>State</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {jobs?.map((j) => {
                  const next = j.next[0] ?? j.state.nextAt;
                  const last = j.state.lastOutcome;
                  return (
                    <tr
                      key={j.id}
                      data-testid={`schedule-row-${j.id}`}
                      data-state={stateWords(j)}
                      class={picked === j.id ? 'active' : ''}
                    >
                      <td>
                        <a href={`#/schedules/${enc(j.id)}`} onClick={() => setPicked(j.id)}>
                          {j.id}
                        </a>
                        {j.source === 'config' && <span class="badge small">config</span>}
                        {j.spec.description && <div class="muted small">{j.spec.description}</div>}
                      </td>
                      <td>{triggerWords(j.spec.trigger)}</td>
                      <td title={next === undefined ? '' : ui.time(next)}>
                        {next === undefined ? '–' : next >= now ? `in ${span(next - now)}` : 'due'}
                      </td>
                      <td>
                        {last ? (
                          <span class={`badge status-${last.status}`} title={ui.time(last.endedAt)}>
                            {last.status} {span(now - last.endedAt)} ago
                          </span>
                        ) : (
                          '–'
                        )}
                      </td>
                      <td>{stateWords(j)}</td>
                      <td class="actions">
                        {admin && (
                          <>
                            {j.state.paused ? (
                              <button
                                type="button"
                                class="small"
                                data-testid={`schedule-resume-${j.id}`}
                                disabled={busy !== ''}
                                onClick={() => act(j.id, 'resume')}
                              >
                                Resume
                              </button>
                            ) : (
                              <button
                                type="button"
                                class="small"
                                data-testid={`schedule-pause-${j.id}`}
                                disabled={busy !== ''}
                                onClick={() => act(j.id, 'pause')}
                              >
                                Pause
                              </button>
                            )}
                            <button
                              type="button"
                              class="small"
                              data-testid={`schedule-run-${j.id}`}
                              disabled={busy !== ''}
                              onClick={() => act(j.id, 'run')}
                            >
                              Run now
                            </button>
                          </>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </div>
      {picked && <History key={picked} id={picked} api={api} ui={ui} />}
    </>
  );
}

function History({ id, api, ui }: { id: string; api: PageApi; ui: PageUi }) {
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    api.get<{ runs: Run[] }>(`/api/v1/schedules/${enc(id)}/history${api.query({ limit: 50 })}`).then(
      (r) => {
        setRuns(r.runs);
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  }, [id]);
  return (
    <div class="card" data-testid="schedule-history" data-job={id}>
      <h2>History of {id}</h2>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        <table data-testid="schedule-history-table">
          <thead>
            <tr>
              <th>Scheduled</th>
              <th>Cause</th>
              <th>Status</th>
              <th>Took</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {runs?.map((r) => (
              <tr key={r.runId} data-testid={`schedule-run-row-${r.runId}`} data-status={r.status}>
                <td>{ui.time(r.scheduledAt)}</td>
                <td>
                  {r.cause}
                  {r.attempt > 1 ? ` #${r.attempt}` : ''}
                </td>
                <td>
                  <span class={`badge status-${r.status}`}>{r.status}</span>
                </td>
                <td>{r.startedAt !== undefined && r.endedAt !== undefined ? span(r.endedAt - r.startedAt) : '–'}</td>
                <td class="small">
                  {r.error
                    ? `${r.error.code}: ${r.error.message}`
                    : (r.reason ?? (r.result !== undefined ? JSON.stringify(r.result).slice(0, 200) : ''))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {runs && runs.length === 0 && (
          <p class="muted" data-testid="schedule-history-empty">
            No runs yet.
          </p>
        )}
      </div>
    </div>
  );
}

export default definePage({ id: 'schedules', label: 'Schedules', view: Schedules });
