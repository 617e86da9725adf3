/**
 * The Research Hand's page in the web admin (#/research): the topics with their sources, schedule and last run and a
 * Run button for admins; the reports, newest first (all topics, or the picked one's); and a report (#/research/<id>)
 * shown from its JSON: the summary, the findings with their [n] citations, the sources as links, the refused claims,
 * the errors, and its Markdown as plain text. Nothing from a report (the model's words, a page's title) is ever put
 * in as HTML: every text is a text node, and only http(s) URLs become links. A chunk of its own, loaded when the page
 * opens (hands/sdk/page.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import { definePage, type HandPageProps, type PageApi, type PageUi } from '../../sdk/page.ts';

export interface TopicRow {
  id: string;
  title: string;
  questions: string[];
  sources: string[];
  schedule?: string;
  scheduledBy?: string;
  notify: string;
  running: boolean;
  lastRun?: { at: number; reportId: string; mode: string; new: number; relevant: number; errors: number };
}
export interface ReportRow {
  id: string;
  topic: string;
  startedAt: number;
  finishedAt: number;
  mode: string;
  summary: string;
  findings: number;
  sources: number;
  refused: number;
  errors: number;
  stats: { new: number; relevant: number; candidates: number };
  note?: string;
}
interface Source {
  n: number;
  docId: string;
  url: string;
  title: string;
  fetchedAt: number;
  extract?: string;
  score?: number;
}
export interface FullReport {
  id: string;
  topic: string;
  startedAt: number;
  finishedAt: number;
  mode: 'model' | 'digest' | 'nothing';
  questions: string[];
  summary: string;
  findings: Array<{ claim: string; status: string; citations: string[]; question?: number }>;
  sources: Source[];
  refused: Array<{ claim: string; reason: string; cited: string[] }>;
  downgraded: number;
  stats: { sources: number; requests: number; notModified: number; candidates: number; new: number; relevant: number };
  errors: Array<{ source: string; url?: string; kind: string; message: string }>;
  markdown: string;
  note?: string;
}

const enc = encodeURIComponent;

/** the URL when it is http(s), else undefined: nothing else becomes a link (no javascript:, data:, file:) */
export function safeHref(url: string | undefined): string | undefined {
  if (typeof url !== 'string') return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/** a run in words: `digest: 3 new, 2 relevant` */
export function runWords(r: { mode: string; new: number; relevant: number; errors: number }): string {
  return `${r.mode}: ${r.new} new, ${r.relevant} relevant${r.errors ? `, ${r.errors} error${r.errors === 1 ? '' : 's'}` : ''}`;
}

const EXAMPLE = `hands:
  - name: research
    module: research
    capabilities: { network: { hosts: ["*"] } }
    settings:
      topics:
        - id: riscv-boards
          questions: ["Which new RISC-V single-board computers were announced?"]
          keywords: [risc-v, sbc]
          sources:
            - { feed: <the URL of a news feed> }
            - { hn: "risc-v board" }
          schedule: "0 7 * * *"`;

function Link({ url, children }: { url: string; children: unknown }) {
  const href = safeHref(url);
  if (!href) return <span title={url}>{children as string}</span>;
  return (
    <a href={href} target="_blank" rel="noopener noreferrer nofollow">
      {children as string}
    </a>
  );
}

function Research({ args, user, api, ui }: HandPageProps) {
  const admin = user.role === 'admin';
  const [topics, setTopics] = useState<TopicRow[] | null>(null);
  const [reports, setReports] = useState<ReportRow[] | null>(null);
  const [topic, setTopic] = useState<string>('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const picked = args[0] ?? null;
  const load = async (): Promise<void> => {
    try {
      const [t, r] = await Promise.all([
        api.get<{ topics: TopicRow[] }>('/api/v1/research/topics'),
        api.get<{ reports: ReportRow[] }>(`/api/v1/research/reports${api.query({ topic, limit: 50 })}`),
      ]);
      setTopics(t.topics);
      setReports(r.reports);
      setError('');
    } catch (e) {
      setError(api.message(e));
    }
  };
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 15_000);
    return () => clearInterval(t);
  }, [topic]);
  const run = async (id: string): Promise<void> => {
    setBusy(id);
    try {
      const r = await api.post<{ report: ReportRow }>(`/api/v1/research/topics/${enc(id)}/run`);
      await load();
      location.hash = `#/research/${enc(r.report.id)}`;
    } catch (e) {
      setError(api.message(e));
    } finally {
      setBusy('');
    }
  };
  return (
    <>
      <div class="card" data-testid="research-topics">
        <h2>Research topics</h2>
        {error && <p class="error">{error}</p>}
        {topics && topics.length === 0 ? (
          <div data-testid="research-empty">
            <p class="muted">No topics yet. Add them to the Research Hand's settings in the config:</p>
            <pre class="small">{EXAMPLE}</pre>
          </div>
        ) : (
          <div class="scroll">
            <table data-testid="research-topics-table">
              <thead>
                <tr>
                  <th>Topic</th>
                  <th>Sources</th>
                  <th>Schedule</th>
                  <th>Last run</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {topics?.map((t) => (
                  <tr key={t.id} data-testid={`research-topic-${t.id}`} class={topic === t.id ? 'active' : ''}>
                    <td>
                      <button type="button" class="link" onClick={() => setTopic(topic === t.id ? '' : t.id)}>
                        {t.title}
                      </button>
                      <div class="muted small">{t.questions.join(' · ')}</div>
                    </td>
                    <td class="small">{t.sources.join(', ')}</td>
                    <td>
                      {t.schedule ?? '–'}
                      {t.scheduledBy === 'local' && <span class="badge small">local timer</span>}
                    </td>
                    <td>
                      {t.running ? (
                        <span class="badge">running</span>
                      ) : t.lastRun ? (
                        <a href={`#/research/${enc(t.lastRun.reportId)}`} title={ui.time(t.lastRun.at)}>
                          {runWords(t.lastRun)}
                        </a>
                      ) : (
                        '–'
                      )}
                    </td>
                    <td class="actions">
                      {admin && (
                        <button
                          type="button"
                          class="small"
                          data-testid={`research-run-${t.id}`}
                          disabled={busy !== '' || t.running}
                          onClick={() => run(t.id)}
                        >
                          {busy === t.id ? 'Running…' : 'Run now'}
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </div>
      {picked && (
        <ReportView
          key={picked}
          id={picked}
          api={api}
          ui={ui}
          titles={new Map((topics ?? []).map((t) => [t.id, t.title]))}
        />
      )}
      <div class="card" data-testid="research-reports">
        <h2>Reports{topic ? ` of ${topic}` : ''}</h2>
        <div class="scroll">
          <table data-testid="research-reports-table">
            <thead>
              <tr>
                <th>Started</th>
                <th>Topic</th>
                <th>Kind</th>
                <th>Findings</th>
                <th>New</th>
                <th>Summary</th>
              </tr>
            </thead>
            <tbody>
              {reports?.map((r) => (
                <tr key={r.id} data-testid={`research-report-row-${r.id}`} data-mode={r.mode}>
                  <td>
                    <a href={`#/research/${enc(r.id)}`}>{ui.time(r.startedAt)}</a>
                  </td>
                  <td title={r.topic}>{topics?.find((t) => t.id === r.topic)?.title ?? r.topic}</td>
                  <td>
                    <span class={`badge mode-${r.mode}`}>{r.mode}</span>
                  </td>
                  <td>{r.mode === 'digest' ? `${r.sources} doc(s)` : r.findings}</td>
                  <td>{r.stats.new}</td>
                  <td class="small">{r.summary.length > 160 ? `${r.summary.slice(0, 159)}…` : r.summary}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {reports && reports.length === 0 && (
            <p class="muted" data-testid="research-reports-empty">
              No reports yet: run a topic, or wait for its schedule.
            </p>
          )}
        </div>
      </div>
    </>
  );
}

function ReportView({ id, api, ui, titles }: { id: string; api: PageApi; ui: PageUi; titles: Map<string, string> }) {
  const [r, setR] = useState<FullReport | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    api.get<{ report: FullReport }>(`/api/v1/research/reports/${enc(id)}`).then(
      (x) => {
        setR(x.report);
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  }, [id]);
  if (error)
    return (
      <div class="card" data-testid="research-report">
        <p class="error">{error}</p>
      </div>
    );
  if (!r) return null;
  const numbers = new Map(r.sources.map((s) => [s.docId, s]));
  return (
    <div class="card" data-testid="research-report" data-report={r.id} data-mode={r.mode}>
      <h2>
        {titles.get(r.topic) ?? r.topic} — {ui.time(r.finishedAt)} <span class={`badge mode-${r.mode}`}>{r.mode}</span>
      </h2>
      {r.summary.split(/\n{2,}/).map((p, i) => (
        <p key={i}>{p}</p>
      ))}
      {r.note && <p class="muted">{r.note}</p>}
      {r.mode === 'nothing' && (
        <div data-testid="research-nothing">
          <p class="muted">
            Nothing relevant was found: {r.stats.candidates} documents checked from {r.stats.sources} sources (
            {r.stats.new} new). Questions:
          </p>
          <ol>
            {r.questions.map((q, i) => (
              <li key={i}>{q}</li>
            ))}
          </ol>
        </div>
      )}
      {r.mode === 'model' && (
        <>
          <h3>Findings</h3>
          <ul data-testid="research-findings">
            {r.findings.map((f, i) => (
              <li key={i} data-status={f.status}>
                {f.claim}{' '}
                {f.citations.map((c) => {
                  const s = numbers.get(c);
                  return s ? (
                    <Link key={c} url={s.url}>
                      [{s.n}]
                    </Link>
                  ) : null;
                })}
                {f.status === 'confirmed' && <span class="badge small">confirmed</span>}
              </li>
            ))}
          </ul>
        </>
      )}
      {r.sources.length > 0 && (
        <>
          <h3>{r.mode === 'digest' ? 'New documents' : 'Sources'}</h3>
          <ol data-testid="research-sources">
            {r.sources.map((s) => (
              <li key={s.docId} value={s.n}>
                <Link url={s.url}>{s.title || s.url}</Link>{' '}
                <span class="muted small">
                  fetched {ui.time(s.fetchedAt)}
                  {s.score !== undefined ? ` · relevance ${s.score.toFixed(2)}` : ''}
                </span>
                {s.extract && <blockquote class="small">{s.extract}</blockquote>}
              </li>
            ))}
          </ol>
        </>
      )}
      {r.refused.length > 0 && (
        <>
          <h3>Refused by the citation ledger</h3>
          <ul data-testid="research-refused" class="small">
            {r.refused.map((c, i) => (
              <li key={i}>
                {c.claim}{' '}
                <span class="muted">
                  ({c.reason}
                  {c.cited.length ? `: ${c.cited.join(', ')}` : ''})
                </span>
              </li>
            ))}
          </ul>
        </>
      )}
      {r.errors.length > 0 && (
        <>
          <h3>Errors</h3>
          <ul class="small" data-testid="research-errors">
            {r.errors.slice(0, 50).map((e, i) => (
              <li key={i}>
                {e.source}
                {e.url ? ` ${e.url}` : ''}: {e.kind} — {e.message}
              </li>
            ))}
          </ul>
        </>
      )}
      <details>
        <summary>Markdown</summary>
        <pre class="small" data-testid="research-markdown">
          {r.markdown}
        </pre>
      </details>
    </div>
  );
}

export default definePage({ id: 'research', label: 'Research', view: Research });
