/**
 * The Web Automation Hand's page in the web admin (#/web): the page watches with their state (last value, last check
 * and change, broken) and a Check button for admins; the runs, newest first (checks and flows), with their failures
 * and screenshot file paths; and a run (#/web/<run id>) with its steps, failure, screenshots, downloads and output.
 * Nothing a page answered is ever put in as HTML: every text is a text node, and only http(s) URLs become links.
 * A chunk of its own, loaded when the page opens (hands/sdk/page.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import { definePage, type HandPageProps, type PageApi, type PageUi } from '../../sdk/page.ts';

export interface WatchRow {
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
export interface RunRow {
  id: string;
  kind: 'check' | 'flow';
  name: string;
  at: number;
  ok: boolean;
  ms: number;
  cause: string;
  events?: string[];
  error?: string;
  mode?: string;
  failure?: { path?: string; kind?: string; message: string; url?: string; screenshot?: string };
  screenshots?: Array<{ name: string; file: string }>;
}
export interface FullRun extends RunRow {
  steps?: Array<{ index: number; path: string; kind: string; ms: number; ok: boolean; error?: string; url?: string }>;
  downloads?: Array<{ name: string; file: string; size?: number }>;
  output?: unknown;
  refused?: Array<{ url: string; reason: string }>;
  agentSteps?: number;
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

/** a watch's state in words */
export function stateWords(w: WatchRow): string {
  if (w.broken) return `broken (${w.failures} failed)`;
  if (w.failures > 0) return `${w.failures} failed`;
  if (w.pending) return 'change pending';
  return w.lastCheckAt === undefined ? 'not checked' : 'ok';
}

const EXAMPLE = `hands:
  - name: web
    module: web-automation
    capabilities: { network: { hosts: ["shop.example"] } }
    settings:
      watches:
        - id: shop-price
          url: <the page URL>
          what: { price: "#price" }
          schedule: "0 * * * *"`;

/** a failure in words (the runner's message already names its step: not twice); the same rule as ../protocol.ts */
function failureText(f: { path?: string; kind?: string; message: string }, withKind = false): string {
  if (!f.path || f.message.startsWith(f.path)) return f.message;
  return `${f.path}${withKind && f.kind ? ` (${f.kind})` : ''}: ${f.message}`;
}

function Link({ url }: { url: string }) {
  const href = safeHref(url);
  if (!href) return <span>{url}</span>;
  return (
    <a href={href} target="_blank" rel="noopener noreferrer nofollow">
      {url}
    </a>
  );
}

function Web({ args, user, api, ui }: HandPageProps) {
  const admin = user.role === 'admin';
  const [watches, setWatches] = useState<WatchRow[] | null>(null);
  const [runs, setRuns] = useState<RunRow[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [note, setNote] = useState('');
  const picked = args[0] ?? null;
  const load = async (): Promise<void> => {
    try {
      const [w, r] = await Promise.all([
        api.get<{ watches: WatchRow[] }>('/api/v1/web/watches'),
        api.get<{ runs: RunRow[] }>(`/api/v1/web/runs${api.query({ limit: 50 })}`),
      ]);
      setWatches(w.watches);
      setRuns(r.runs);
      setError('');
    } catch (e) {
      setError(api.message(e));
    }
  };
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 15_000);
    return () => clearInterval(t);
  }, []);
  const check = async (id: string): Promise<void> => {
    setBusy(id);
    try {
      const r = await api.post<{ events: Array<{ type: string }>; run: RunRow }>(
        `/api/v1/web/watches/${enc(id)}/check`,
      );
      setNote(
        `${id}: ${r.run.ok ? (r.events.length ? r.events.map((e) => e.type).join(', ') : 'no change') : (r.run.error ?? 'failed')}`,
      );
      await load();
    } catch (e) {
      setError(api.message(e));
    } finally {
      setBusy('');
    }
  };
  return (
    <>
      <div class="card" data-testid="web-watches">
        <h2>Page watches</h2>
        {error && <p class="error">{error}</p>}
        {note && (
          <p class="muted" data-testid="web-check-note">
            {note}
          </p>
        )}
        {watches && watches.length === 0 ? (
          <div data-testid="web-empty">
            <p class="muted">No watches yet. Add them to the Web Hand's settings in the config:</p>
            <pre class="small">{EXAMPLE}</pre>
          </div>
        ) : (
          <div class="scroll">
            <table data-testid="web-watches-table">
              <thead>
                <tr>
                  <th>Watch</th>
                  <th>State</th>
                  <th>Last check</th>
                  <th>Last change</th>
                  <th>Value</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {watches?.map((w) => (
                  <tr key={w.id} data-testid={`web-watch-${w.id}`} data-broken={String(w.broken)}>
                    <td>
                      {w.id}
                      <div class="muted small">
                        <Link url={w.url} /> · {w.what}
                        {w.schedule ? ` · ${w.schedule}` : ''}
                        {w.scheduledBy === 'local' ? ' (local timer)' : ''}
                      </div>
                    </td>
                    <td>
                      <span class={`badge${w.broken ? ' error' : ''}`}>{stateWords(w)}</span>
                    </td>
                    <td>{ui.time(w.lastCheckAt ?? null)}</td>
                    <td>{ui.time(w.lastChangeAt ?? null)}</td>
                    <td class="small">{w.value ?? '–'}</td>
                    <td class="actions">
                      {admin && (
                        <button
                          type="button"
                          class="small"
                          data-testid={`web-check-${w.id}`}
                          disabled={busy !== '' || w.checking}
                          onClick={() => check(w.id)}
                        >
                          {busy === w.id ? 'Checking…' : 'Check'}
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
      {picked && <RunView key={picked} id={picked} api={api} ui={ui} />}
      <div class="card" data-testid="web-runs">
        <h2>Runs</h2>
        <div class="scroll">
          <table data-testid="web-runs-table">
            <thead>
              <tr>
                <th>At</th>
                <th>Kind</th>
                <th>Name</th>
                <th>Result</th>
                <th>Screenshots</th>
              </tr>
            </thead>
            <tbody>
              {runs?.map((r) => (
                <tr key={r.id} data-testid={`web-run-${r.id}`} data-ok={String(r.ok)}>
                  <td>
                    <a href={`#/web/${enc(r.id)}`}>{ui.time(r.at)}</a>
                  </td>
                  <td>{r.kind}</td>
                  <td>{r.name}</td>
                  <td class="small">
                    {r.ok ? (
                      `ok${r.events?.length ? ` (${r.events.join(', ')})` : ''}`
                    ) : (
                      <span class="error">{r.failure ? failureText(r.failure) : (r.error ?? 'failed')}</span>
                    )}
                  </td>
                  <td class="small">
                    {[
                      ...(r.failure?.screenshot ? [r.failure.screenshot] : []),
                      ...(r.screenshots ?? []).map((s) => s.file),
                    ]
                      .filter((f, i, all) => all.indexOf(f) === i)
                      .join(', ') || '–'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {runs && runs.length === 0 && (
            <p class="muted" data-testid="web-runs-empty">
              No runs yet: check a watch, or run a flow with `talon web run FLOW.yaml`.
            </p>
          )}
        </div>
      </div>
    </>
  );
}

function RunView({ id, api, ui }: { id: string; api: PageApi; ui: PageUi }) {
  const [r, setR] = useState<FullRun | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    api.get<{ run: FullRun }>(`/api/v1/web/runs/${enc(id)}`).then(
      (x) => {
        setR(x.run);
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  }, [id]);
  if (error)
    return (
      <div class="card" data-testid="web-run">
        <p class="error">{error}</p>
      </div>
    );
  if (!r) return null;
  return (
    <div class="card" data-testid="web-run" data-run={r.id} data-ok={String(r.ok)}>
      <h2>
        {r.kind} {r.name} — {ui.time(r.at)} <span class={`badge${r.ok ? '' : ' error'}`}>{r.ok ? 'ok' : 'failed'}</span>
      </h2>
      <p class="muted small">
        {Math.round(r.ms)} ms · {r.cause}
        {r.mode ? ` · ${r.mode}` : ''}
        {r.agentSteps !== undefined ? ` · ${r.agentSteps} agent turn(s)` : ''}
      </p>
      {r.failure && (
        <div data-testid="web-run-failure">
          <p class="error">{failureText(r.failure, true)}</p>
          {r.failure.url && (
            <p class="small">
              page: <Link url={r.failure.url} />
            </p>
          )}
          {r.failure.screenshot && <p class="small">screenshot: {r.failure.screenshot}</p>}
        </div>
      )}
      {!r.failure && r.error && <p class="error">{r.error}</p>}
      {r.steps && r.steps.length > 0 && (
        <table data-testid="web-run-steps">
          <thead>
            <tr>
              <th>Step</th>
              <th>Kind</th>
              <th>ms</th>
              <th>Result</th>
            </tr>
          </thead>
          <tbody>
            {r.steps.map((s) => (
              <tr key={s.index} data-ok={String(s.ok)}>
                <td>{s.path}</td>
                <td>{s.kind}</td>
                <td>{Math.round(s.ms)}</td>
                <td class="small">{s.ok ? 'ok' : <span class="error">{s.error ?? 'failed'}</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(r.screenshots ?? []).length > 0 && (
        <>
          <h3>Screenshots</h3>
          <ul class="small" data-testid="web-run-screenshots">
            {r.screenshots!.map((s) => (
              <li key={s.file}>
                {s.name}: {s.file}
              </li>
            ))}
          </ul>
        </>
      )}
      {(r.downloads ?? []).length > 0 && (
        <>
          <h3>Downloads</h3>
          <ul class="small">
            {r.downloads!.map((d) => (
              <li key={d.file}>
                {d.name}: {d.file}
                {d.size !== undefined ? ` (${d.size} bytes)` : ''}
              </li>
            ))}
          </ul>
        </>
      )}
      {(r.refused ?? []).length > 0 && (
        <>
          <h3>Requests refused (not granted)</h3>
          <ul class="small">
            {r.refused!.slice(0, 50).map((x, i) => (
              <li key={i}>
                {x.url}: {x.reason}
              </li>
            ))}
          </ul>
        </>
      )}
      {r.output !== undefined && (
        <details open>
          <summary>Output</summary>
          <pre class="small" data-testid="web-run-output">
            {JSON.stringify(r.output, null, 2)}
          </pre>
        </details>
      )}
    </div>
  );
}

export default definePage({ id: 'web', label: 'Web', view: Web });
