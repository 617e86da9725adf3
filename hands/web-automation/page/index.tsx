/**
 * The Web Automation Hand's page in the web admin (#/web): the page watches with their source (config or api), kind
 * and state (last value, last check and change, broken) and a Check button for admins; an "Add watch" form for admins
 * (PUT /api/v1/web/watches/{id}; the Hand's error, naming the field, shown under the form); a watch
 * (#/web/watch/<id>) with its last change (the text diff, or a visual watch's share with a link to the run holding
 * its screenshot), its last checks and, for an API watch, a Remove button that asks to confirm first; the runs, newest
 * first (checks and flows), with their failures and screenshot file paths; and a run (#/web/<run id>) with its steps,
 * failure, screenshots, downloads and output.
 * Nothing a page answered is ever put in as HTML: every text is a text node, and only http(s) URLs become links.
 * A chunk of its own, loaded when the page opens (hands/sdk/page.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import { definePage, type HandPageProps, type PageApi, type PageUi } from '../../sdk/page.ts';
import { KINDS, type Kind, type LastChange, formWatch, visualText } from './form.ts';

export interface WatchRow {
  id: string;
  url: string;
  what: string;
  kind: 'text' | 'json' | 'attribute' | 'price' | 'visual';
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

export interface WatchDetail {
  watch: WatchRow;
  history: Array<{ at: number; result: string; note?: string }>;
  runs: RunRow[];
  lastChange?: LastChange;
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

function Web({ args, user, hand, api, ui }: HandPageProps) {
  const admin = user.role === 'admin';
  /** the instance whose folder holds the screenshots (GET /api/v1/hands/{name}/file) */
  const owner = hand.instances[0] ?? 'web';
  const [watches, setWatches] = useState<WatchRow[] | null>(null);
  const [runs, setRuns] = useState<RunRow[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [note, setNote] = useState('');
  const watchId = args[0] === 'watch' ? (args[1] ?? null) : null;
  const picked = args[0] === 'watch' ? null : (args[0] ?? null);
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
            <p class="muted">No watches yet. Add one below, or in the Web Hand's settings in the config:</p>
            <pre class="small">{EXAMPLE}</pre>
          </div>
        ) : (
          <div class="scroll">
            <table data-testid="web-watches-table">
              <thead>
                <tr>
                  <th>Watch</th>
                  <th>State</th>
                  <th>Value</th>
                  <th>Last check</th>
                  <th>Last change</th>
                  <th>Kind</th>
                  <th>Source</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {watches?.map((w) => (
                  <tr
                    key={w.id}
                    data-testid={`web-watch-${w.id}`}
                    data-broken={String(w.broken)}
                    data-source={w.source}
                    data-kind={w.kind}
                  >
                    <td>
                      <a href={`#/web/watch/${enc(w.id)}`}>{w.id}</a>
                      <div class="muted small">
                        <Link url={w.url} /> · {w.what}
                        {w.schedule ? ` · ${w.schedule}` : ''}
                        {w.scheduledBy === 'local' ? ' (local timer)' : ''}
                      </div>
                    </td>
                    <td>
                      <span class={`badge${w.broken ? ' error' : ''}`}>{stateWords(w)}</span>
                    </td>
                    <td class="small">{w.value ?? '–'}</td>
                    <td>{ui.time(w.lastCheckAt ?? null)}</td>
                    <td>{ui.time(w.lastChangeAt ?? null)}</td>
                    <td>
                      <span class="badge">{w.kind}</span>
                    </td>
                    <td class="small">{w.source}</td>
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
      {admin && (
        <AddWatch
          api={api}
          onAdded={(m) => {
            setNote(m);
            void load();
          }}
        />
      )}
      {watchId && (
        <WatchView
          key={watchId}
          id={watchId}
          admin={admin}
          api={api}
          ui={ui}
          onRemoved={(m) => {
            setNote(m);
            location.hash = '#/web';
            void load();
          }}
        />
      )}
      {picked && <RunView key={picked} id={picked} owner={owner} api={api} ui={ui} />}
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
                    {shotsOf(r).length === 0
                      ? '–'
                      : shotsOf(r).map((f, i) => (
                          <span key={f}>
                            {i > 0 ? ', ' : ''}
                            <a href={fileUrl(api, owner, f)} target="_blank" rel="noopener" title={f}>
                              {f.split('/').at(-1)}
                            </a>
                          </span>
                        ))}
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

function AddWatch({ api, onAdded }: { api: PageApi; onAdded: (note: string) => void }) {
  const [id, setId] = useState('');
  const [url, setUrl] = useState('');
  const [kind, setKind] = useState<Kind>('text');
  const [target, setTarget] = useState('');
  const [schedule, setSchedule] = useState('');
  const [error, setError] = useState('');
  const [saving, setSaving] = useState(false);
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    const w = formWatch({ id, url, kind, target, schedule });
    if (typeof w === 'string') {
      setError(w);
      return;
    }
    setSaving(true);
    try {
      const r = await api.put<{ watch: WatchRow; created: boolean }>(`/api/v1/web/watches/${enc(w.id)}`, w.body);
      onAdded(`${r.created ? 'Added' : 'Replaced'} ${r.watch.id}: ${r.watch.what}`);
      setId('');
      setTarget('');
      setError('');
    } catch (e) {
      setError(api.message(e));
    } finally {
      setSaving(false);
    }
  };
  const text = (set: (v: string) => void) => (e: Event) => set((e.target as HTMLInputElement).value);
  return (
    <div class="card" data-testid="web-add">
      <h2>Add watch</h2>
      <form onSubmit={(e) => void submit(e)}>
        <div class="row">
          <label>
            Id <input data-testid="web-add-id" placeholder="shop-price" value={id} onInput={text(setId)} />
          </label>
          <label>
            URL{' '}
            <input
              data-testid="web-add-url"
              placeholder="https://… (the page to watch)"
              value={url}
              onInput={text(setUrl)}
            />
          </label>
        </div>
        <div class="row">
          <label>
            Kind{' '}
            <select
              data-testid="web-add-kind"
              value={kind}
              onChange={(e) => setKind((e.target as HTMLSelectElement).value as Kind)}
            >
              {(Object.keys(KINDS) as Kind[]).map((k) => (
                <option key={k} value={k}>
                  {KINDS[k].label}
                </option>
              ))}
            </select>
          </label>
          <label>
            {KINDS[kind].field}{' '}
            <input
              data-testid="web-add-target"
              placeholder={KINDS[kind].placeholder}
              value={target}
              onInput={text(setTarget)}
            />
          </label>
          <label>
            Schedule{' '}
            <input
              data-testid="web-add-schedule"
              placeholder="0 * * * * (empty: by hand)"
              value={schedule}
              onInput={text(setSchedule)}
            />
          </label>
          <button type="submit" data-testid="web-add-submit" disabled={saving}>
            {saving ? 'Adding…' : 'Add'}
          </button>
        </div>
        {error && (
          <p class="error" data-testid="web-add-error">
            {error}
          </p>
        )}
      </form>
    </div>
  );
}

function WatchView({
  id,
  admin,
  api,
  ui,
  onRemoved,
}: {
  id: string;
  admin: boolean;
  api: PageApi;
  ui: PageUi;
  onRemoved: (note: string) => void;
}) {
  const [d, setD] = useState<WatchDetail | null>(null);
  const [error, setError] = useState('');
  const [confirming, setConfirming] = useState(false);
  const [removing, setRemoving] = useState(false);
  useEffect(() => {
    api.get<WatchDetail>(`/api/v1/web/watches/${enc(id)}`).then(
      (x) => {
        setD(x);
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  }, [id]);
  const remove = async (): Promise<void> => {
    setRemoving(true);
    try {
      await api.del(`/api/v1/web/watches/${enc(id)}`);
      onRemoved(`Removed ${id}`);
    } catch (e) {
      setError(api.message(e));
      setConfirming(false);
    } finally {
      setRemoving(false);
    }
  };
  if (error && !d)
    return (
      <div class="card" data-testid="web-watch">
        <p class="error">{error}</p>
      </div>
    );
  if (!d) return null;
  const w = d.watch;
  const c = d.lastChange;
  return (
    <div class="card" data-testid="web-watch" data-watch={w.id} data-source={w.source}>
      <h2>
        {w.id} <span class="badge">{w.kind}</span> <span class="muted small">{w.source}</span>
        {admin && w.source === 'api' && !confirming && (
          <button type="button" class="small link" data-testid="web-watch-remove" onClick={() => setConfirming(true)}>
            Remove
          </button>
        )}
      </h2>
      {confirming && (
        <p data-testid="web-watch-confirm">
          Remove the watch {w.id}, its state and its schedule?{' '}
          <button
            type="button"
            class="small"
            data-testid="web-watch-remove-yes"
            disabled={removing}
            onClick={() => void remove()}
          >
            Yes, remove
          </button>{' '}
          <button type="button" class="small" data-testid="web-watch-remove-no" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </p>
      )}
      {error && <p class="error">{error}</p>}
      <p class="muted small">
        <Link url={w.url} /> · {w.what}
        {w.schedule ? ` · ${w.schedule}` : ''} · {stateWords(w)}
        {w.source === 'config' ? ' · in the config (change it there)' : ''}
      </p>
      <h3>Last change</h3>
      {c ? (
        <div data-testid="web-watch-change">
          <p class="small">
            {ui.time(c.at)} · <a href={`#/web/${enc(c.runId)}`}>run {c.runId}</a>
          </p>
          {c.visual ? (
            <p data-testid="web-watch-visual">
              {visualText(c.visual)}
              {c.screenshot && (
                <>
                  {' · screenshot: '}
                  <a href={`#/web/${enc(c.runId)}`} data-testid="web-watch-screenshot">
                    {c.screenshot}
                  </a>
                </>
              )}
            </p>
          ) : c.diff ? (
            <pre class="small" data-testid="web-watch-diff">
              {c.diff}
            </pre>
          ) : (
            <p class="small">
              {c.before} → {c.after}
            </p>
          )}
        </div>
      ) : (
        <p class="muted small">No change seen yet.</p>
      )}
      {d.history.length > 0 && (
        <table data-testid="web-watch-history">
          <thead>
            <tr>
              <th>At</th>
              <th>Result</th>
              <th>Note</th>
            </tr>
          </thead>
          <tbody>
            {[...d.history].reverse().map((h, i) => (
              <tr key={i}>
                <td>{ui.time(h.at)}</td>
                <td>{h.result}</td>
                <td class="small">{h.note ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** a run's screenshots, the failure's first, each once */
const shotsOf = (r: RunRow): string[] =>
  [...(r.failure?.screenshot ? [r.failure.screenshot] : []), ...(r.screenshots ?? []).map((s) => s.file)].filter(
    (f, i, all) => all.indexOf(f) === i,
  );

/** a file the browser tools stored for the Hand, served by the kernel (PNG/JPEG inline, the rest as a download) */
const fileUrl = (api: PageApi, owner: string, path: string): string =>
  `/api/v1/hands/${enc(owner)}/file${api.query({ path })}`;

/** a screenshot as a picture that links to itself at full size */
function Shot({ api, owner, file, label }: { api: PageApi; owner: string; file: string; label: string }) {
  const url = fileUrl(api, owner, file);
  return (
    <figure class="shot" style="margin:0.5em 0">
      <a href={url} target="_blank" rel="noopener">
        <img src={url} alt={label} loading="lazy" style="max-width:100%;max-height:640px;border:1px solid #ccc" />
      </a>
      <figcaption class="small">
        {label}: {file}
      </figcaption>
    </figure>
  );
}

function RunView({ id, owner, api, ui }: { id: string; owner: string; api: PageApi; ui: PageUi }) {
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
        {r.mode ? ` · ${r.mode === 'goal' ? 'model-directed' : 'scripted'}` : ''}
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
          {r.failure.screenshot && (
            <div data-testid="web-run-failure-shot">
              <Shot api={api} owner={owner} file={r.failure.screenshot} label="the page when it failed" />
            </div>
          )}
        </div>
      )}
      {!r.failure && r.error && <p class="error">{r.error}</p>}
      {r.steps && r.steps.length > 0 && (
        <div class="scroll">
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
        </div>
      )}
      {(r.screenshots ?? []).length > 0 && (
        <>
          <h3>Screenshots</h3>
          <div data-testid="web-run-screenshots">
            {r.screenshots!.map((s) => (
              <Shot key={s.file} api={api} owner={owner} file={s.file} label={s.name} />
            ))}
          </div>
        </>
      )}
      {(r.downloads ?? []).length > 0 && (
        <>
          <h3>Downloads</h3>
          <ul class="small">
            {r.downloads!.map((d) => (
              <li key={d.file}>
                {d.name}: <a href={fileUrl(api, owner, d.file)}>{d.file}</a>
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
      {r.output !== undefined && (r.ok || JSON.stringify(r.output) !== '{}') && (
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
