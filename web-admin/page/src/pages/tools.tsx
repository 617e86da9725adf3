/**
 * Tools, approvals and agent runs (loaded as one chunk when one of these pages first opens):
 * - Tools: every tool with its annotations as badges, source and the grant it needs; an admin
 *   calls one with a JSON input and sees the result, or the typed error with its code.
 * - Approvals: the calls waiting for a person first (tool, who asks, the input, the run's goal,
 *   the time left), Approve / Deny with a reason; the answered ones below.
 * - Runs: a Hand's agent runs (goal, state, steps, tokens, time), and one run's steps with each
 *   tool call's input and output or error.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, enc, get, message, post, q } from '../api.ts';
import { POLL_MS, refreshPending } from '../pending.ts';
import type { PageProps } from '../system.ts';
import type {
  AgentRun,
  AgentStep,
  Approval,
  HandToolInfo as ToolInfo,
  HandToolResult as ToolResult,
} from '../../../../runtime/core/tool-shapes.ts';

// the shapes the API answers with, declared once in the runtime (type-only: nothing of it is bundled)
type Usage = AgentRun['usage'];
type Step = AgentStep;
type Run = AgentRun;
type RunSummary = Omit<AgentRun, 'steps'> & { stepCount: number };

interface ErrorInfo {
  code: string;
  message: string;
}

const when = (ts: number | undefined): string => (ts ? new Date(ts).toLocaleString() : '–');
const pretty = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v, null, 2) ?? String(v)));
const took = (r: { startedAt: number; endedAt?: number }): string =>
  r.endedAt !== undefined ? `${((r.endedAt - r.startedAt) / 1000).toFixed(1)} s` : 'running';
const tokens = (u: Usage): string => `${u.inputTokens} + ${u.outputTokens}`;
const errorOf = (e: unknown): ErrorInfo => ({ code: e instanceof ApiError ? e.code : 'ERROR', message: message(e) });

/** read-only / destructive / idempotent / open-world, as MCP defines them (destructive unless said otherwise) */
export function annotationBadges(a: ToolInfo['annotations']): Array<{ label: string; cls: string }> {
  const out: Array<{ label: string; cls: string }> = [];
  if (a.readOnlyHint) out.push({ label: 'read-only', cls: 'ok' });
  else if (a.destructiveHint !== false) out.push({ label: 'destructive', cls: 'bad' });
  if (a.idempotentHint) out.push({ label: 'idempotent', cls: '' });
  if (a.openWorldHint) out.push({ label: 'open-world', cls: 'sev-warning' });
  return out;
}

function ErrorLine({ err, testid }: { err: ErrorInfo; testid?: string }) {
  return (
    <p class="error" data-testid={testid} data-code={err.code}>
      <code>{err.code}</code> {err.message}
    </p>
  );
}

// ---------------------------------------------------------------------------------------

function CallBox({ tool }: { tool: ToolInfo }) {
  const [input, setInput] = useState('{}');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<ToolResult | null>(null);
  const [err, setErr] = useState<ErrorInfo | null>(null);
  const run = async (): Promise<void> => {
    setErr(null);
    setResult(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(input);
    } catch (e) {
      setErr({ code: 'BAD_JSON', message: `the input is not JSON: ${message(e)}` });
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      setErr({ code: 'BAD_JSON', message: 'the input must be a JSON object' });
      return;
    }
    setBusy(true);
    try {
      setResult(await post<ToolResult>(`/api/v1/tools/${enc(tool.name)}/call`, { input: parsed }));
    } catch (e) {
      setErr(errorOf(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="card" data-testid={`tool-call-${tool.name}`}>
      <details>
        <summary class="small">input schema</summary>
        <pre class="code">{pretty(tool.inputSchema)}</pre>
      </details>
      <label>
        Input (JSON)
        <textarea
          class="code"
          rows={4}
          value={input}
          data-testid={`tool-input-${tool.name}`}
          onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)}
        />
      </label>
      <button type="button" disabled={busy} data-testid={`tool-run-${tool.name}`} onClick={() => void run()}>
        {busy ? 'Running…' : `Call ${tool.name}`}
      </button>
      {err && <ErrorLine err={err} testid={`tool-error-${tool.name}`} />}
      {result && (
        <div data-testid={`tool-result-${tool.name}`}>
          <p class="muted small">
            {result.ms} ms{result.truncated ? ' · output cut at the tool’s size cap' : ''}
          </p>
          <pre class="code">{pretty(result.output)}</pre>
        </div>
      )}
    </div>
  );
}

export function Tools({ user }: PageProps) {
  const [tools, setTools] = useState<ToolInfo[] | null>(null);
  const [error, setError] = useState<ErrorInfo | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const admin = user.role === 'admin';
  useEffect(() => {
    get<{ tools: ToolInfo[] }>('/api/v1/tools').then(
      (r) => setTools(r.tools),
      (e: unknown) => setError(errorOf(e)),
    );
  }, []);
  return (
    <section>
      <h1>Tools</h1>
      <p class="muted">
        What Hands (within their grants), admins and MCP clients can make this device do. Destructive tools wait for an
        approval when a Hand calls them.
      </p>
      {error && <ErrorLine err={error} />}
      <div class="scroll">
        <table data-testid="tools-table">
          <thead>
            <tr>
              <th>Tool</th>
              <th>Description</th>
              <th>Annotations</th>
              <th>Source</th>
              <th>Needs</th>
              {admin && <th />}
            </tr>
          </thead>
          <tbody>
            {tools?.map((t) => [
              <tr key={t.name} data-testid={`tool-row-${t.name}`} class={open === t.name ? 'selected' : ''}>
                <td>
                  <code>{t.name}</code>
                  {t.available === false && <span class="badge bad">server down</span>}
                </td>
                <td>{t.description}</td>
                <td>
                  {annotationBadges(t.annotations).map((b) => (
                    <span class={`badge ${b.cls}`} key={b.label}>
                      {b.label}
                    </span>
                  ))}
                  {t.needsApproval && <span class="badge sev-warning">approval</span>}
                </td>
                <td>{t.source}</td>
                <td class="small">{t.capability}</td>
                {admin && (
                  <td class="actions">
                    <button
                      type="button"
                      class={`small${open === t.name ? ' active' : ''}`}
                      data-testid={`tool-open-${t.name}`}
                      onClick={() => setOpen(open === t.name ? null : t.name)}
                    >
                      Call…
                    </button>
                  </td>
                )}
              </tr>,
              open === t.name ? (
                <tr key={`${t.name}-call`}>
                  <td colSpan={6}>
                    <CallBox tool={t} />
                  </td>
                </tr>
              ) : null,
            ])}
          </tbody>
        </table>
      </div>
      {tools && tools.length === 0 && <p class="muted">No tools.</p>}
    </section>
  );
}

// ---------------------------------------------------------------------------------------

function left(ms: number): string {
  if (ms <= 0) return 'expiring';
  const s = Math.ceil(ms / 1000);
  return s >= 120 ? `${Math.floor(s / 60)} min left` : `${s} s left`;
}

function PendingCard({ a, admin, now, onDone }: { a: Approval; admin: boolean; now: number; onDone: () => void }) {
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<ErrorInfo | null>(null);
  const decide = async (decision: 'approve' | 'deny'): Promise<void> => {
    setBusy(true);
    setErr(null);
    try {
      await post(`/api/v1/approvals/${enc(a.id)}`, { decision, ...(note.trim() ? { note: note.trim() } : {}) });
      onDone();
    } catch (e) {
      setErr(errorOf(e));
      // decided elsewhere, or expired: show the list as it is now
      if (e instanceof ApiError && e.code === 'CONFLICT') onDone();
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="card" data-testid={`approval-${a.id}`}>
      <div class="row">
        <strong>
          <code>{a.tool}</code>
        </strong>
        <span class="badge sev-warning">{a.reason}</span>
        <span class="muted">asked by {a.actor}</span>
        <span class="muted" style={{ marginLeft: 'auto' }} data-testid={`approval-left-${a.id}`}>
          {left(a.expiresAt - now)}
        </span>
      </div>
      {a.goal && (
        <p>
          <span class="muted">Goal:</span> {a.goal}
          {a.hand && a.runId && (
            <>
              {' '}
              <a href={`#/runs/${enc(a.hand)}/${enc(a.runId)}`} class="small">
                the run
              </a>
            </>
          )}
        </p>
      )}
      <pre class="code" data-testid={`approval-input-${a.id}`}>
        {pretty(a.input)}
      </pre>
      {admin ? (
        <div class="row">
          <input
            type="text"
            maxLength={500}
            placeholder="Reason (optional, shown to whoever asked)"
            value={note}
            style={{ flex: 1 }}
            data-testid={`note-${a.id}`}
            onInput={(e) => setNote((e.target as HTMLInputElement).value)}
          />
          <button type="button" disabled={busy} data-testid={`approve-${a.id}`} onClick={() => void decide('approve')}>
            Approve
          </button>
          <button
            type="button"
            class="small"
            disabled={busy}
            data-testid={`deny-${a.id}`}
            onClick={() => void decide('deny')}
          >
            Deny
          </button>
        </div>
      ) : (
        <p class="muted small">An admin approves or denies.</p>
      )}
      {err && <ErrorLine err={err} />}
    </div>
  );
}

export function Approvals({ user }: PageProps) {
  const [list, setList] = useState<Approval[] | null>(null);
  const [error, setError] = useState<ErrorInfo | null>(null);
  const [now, setNow] = useState(Date.now());
  const load = (): void => {
    get<{ approvals: Approval[] }>(`/api/v1/approvals${q({ limit: 200 })}`).then(
      (r) => {
        setList(r.approvals);
        setError(null);
      },
      (e: unknown) => setError(errorOf(e)),
    );
  };
  useEffect(() => {
    load();
    const poll = setInterval(load, POLL_MS);
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      clearInterval(poll);
      clearInterval(tick);
    };
  }, []);
  const pending = (list ?? []).filter((a) => a.state === 'pending').sort((a, b) => a.expiresAt - b.expiresAt);
  const done = (list ?? []).filter((a) => a.state !== 'pending');
  const answered = (): void => {
    load();
    void refreshPending();
  };
  return (
    <section>
      <h1>Approvals</h1>
      <p class="muted">
        Tool calls that wait for a person. No answer before the time runs out counts as <strong>deny</strong>.
      </p>
      {error && <ErrorLine err={error} />}
      <h2>Pending ({pending.length})</h2>
      <div data-testid="approvals-pending">
        {list && pending.length === 0 && <p class="muted">Nothing waits for an answer.</p>}
        {pending.map((a) => (
          <PendingCard key={a.id} a={a} admin={user.role === 'admin'} now={now} onDone={answered} />
        ))}
      </div>
      <h2>History</h2>
      <div class="scroll">
        <table data-testid="approvals-history">
          <thead>
            <tr>
              <th>Asked</th>
              <th>Tool</th>
              <th>Who asked</th>
              <th>Answer</th>
              <th>By</th>
              <th>Reason</th>
            </tr>
          </thead>
          <tbody>
            {done.map((a) => (
              <tr key={a.id} data-testid={`approval-row-${a.id}`}>
                <td>{when(a.createdAt)}</td>
                <td>
                  <code>{a.tool}</code>
                </td>
                <td>{a.actor}</td>
                <td>
                  <span class={`badge ${a.state === 'approved' ? 'ok' : 'bad'}`}>{a.state}</span>
                </td>
                <td>{a.by ?? '–'}</td>
                <td>{a.note ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

// ---------------------------------------------------------------------------------------

function RunView({ id }: { id: string }) {
  const [run, setRun] = useState<Run | null>(null);
  const [err, setErr] = useState<ErrorInfo | null>(null);
  useEffect(() => {
    setRun(null);
    get<{ run: Run }>(`/api/v1/runs/${enc(id)}`).then(
      (r) => setRun(r.run),
      (e: unknown) => setErr(errorOf(e)),
    );
  }, [id]);
  if (err) return <ErrorLine err={err} />;
  if (!run) return <p class="muted">Loading…</p>;
  return (
    <div data-testid={`run-${run.id}`}>
      <div class="card">
        <h2>{run.goal}</h2>
        <dl>
          <dt>State</dt>
          <dd>
            <span class={`badge state-${run.state === 'done' ? 'running' : run.state}`}>{run.state}</span>
          </dd>
          <dt>Started</dt>
          <dd>{when(run.startedAt)}</dd>
          <dt>Took</dt>
          <dd>{took(run)}</dd>
          <dt>Tokens</dt>
          <dd>{tokens(run.usage)}</dd>
          {run.cost !== undefined && (
            <>
              <dt>Cost</dt>
              <dd>${run.cost.toFixed(4)}</dd>
            </>
          )}
          {run.answer !== undefined && (
            <>
              <dt>Answer</dt>
              <dd>
                <pre class="code">{pretty(run.answer)}</pre>
              </dd>
            </>
          )}
        </dl>
        {run.error && <ErrorLine err={run.error} testid="run-error" />}
      </div>
      {run.steps.map((st) => (
        <div class="card" key={st.index} data-testid={`run-step-${st.index}`}>
          <div class="row small muted">
            <strong>Step {st.index + 1}</strong>
            <span>
              {st.provider ? `${st.provider}${st.model ? `/${st.model}` : ''} · ` : ''}model {Math.round(st.modelMs)} ms
              · kernel {st.overheadMs.toFixed(1)} ms · {tokens(st.usage)} tokens
            </span>
          </div>
          {st.text && <p class="msg-text">{st.text}</p>}
          {st.calls.map((c) => (
            <div class="card" key={c.id} data-testid={`run-call-${c.id}`}>
              <div class="row">
                <code>{c.tool}</code>
                <span class="muted small">{Math.round(c.ms)} ms</span>
                {c.truncated && <span class="badge">cut</span>}
              </div>
              <pre class="code">{pretty(c.input)}</pre>
              {c.error ? <ErrorLine err={c.error} /> : <pre class="code">{pretty(c.output)}</pre>}
            </div>
          ))}
        </div>
      ))}
    </div>
  );
}

export function Runs({ args }: PageProps) {
  const hand = args[0] ?? '';
  const runId = args[1];
  const [hands, setHands] = useState<string[]>([]);
  const [runs, setRuns] = useState<RunSummary[] | null>(null);
  const [err, setErr] = useState<ErrorInfo | null>(null);
  useEffect(() => {
    get<{ hands: Array<{ name: string }> }>('/api/v1/hands').then(
      (r) => {
        setHands(r.hands.map((h) => h.name));
        if (!hand && r.hands[0]) location.hash = `#/runs/${enc(r.hands[0].name)}`;
      },
      () => undefined,
    );
  }, []);
  useEffect(() => {
    if (!hand) return;
    setRuns(null);
    setErr(null);
    get<{ runs: RunSummary[] }>(`/api/v1/hands/${enc(hand)}/runs${q({ limit: 50 })}`).then(
      (r) => setRuns(r.runs),
      (e: unknown) => setErr(errorOf(e)),
    );
  }, [hand]);
  return (
    <section>
      <h1>Agent runs</h1>
      <div class="row">
        <label class="inline">
          Hand
          <select
            value={hand}
            data-testid="runs-hand"
            onChange={(e) => {
              location.hash = `#/runs/${enc((e.target as HTMLSelectElement).value)}`;
            }}
          >
            {!hands.includes(hand) && hand && <option value={hand}>{hand}</option>}
            {hands.map((h) => (
              <option value={h} key={h}>
                {h}
              </option>
            ))}
          </select>
        </label>
      </div>
      {err && <ErrorLine err={err} />}
      {runId ? (
        <>
          <p>
            <a href={`#/runs/${enc(hand)}`}>← {hand}'s runs</a>
          </p>
          <RunView id={runId} />
        </>
      ) : (
        <div class="scroll">
          <table data-testid="runs-table">
            <thead>
              <tr>
                <th>Started</th>
                <th>Goal</th>
                <th>State</th>
                <th>Steps</th>
                <th>Tokens</th>
                <th>Time</th>
              </tr>
            </thead>
            <tbody>
              {runs?.map((r) => (
                <tr key={r.id} data-testid={`run-row-${r.id}`}>
                  <td>{when(r.startedAt)}</td>
                  <td>
                    <a href={`#/runs/${enc(hand)}/${enc(r.id)}`}>{r.goal}</a>
                    {r.error && <small class="error"> {r.error.code}</small>}
                  </td>
                  <td>
                    <span class={`badge state-${r.state === 'done' ? 'running' : r.state}`}>{r.state}</span>
                  </td>
                  <td>{r.stepCount}</td>
                  <td>{tokens(r.usage)}</td>
                  <td>{took(r)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {runs && runs.length === 0 && <p class="muted">No agent runs for {hand} yet.</p>}
        </div>
      )}
    </section>
  );
}
