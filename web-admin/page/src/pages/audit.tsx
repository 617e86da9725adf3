/** The audit log: filter, page, export, and verify the signed chain here in the browser. */
import { useEffect, useState } from 'preact/hooks';
import { get, message, q, request } from '../api.ts';
import { time } from '../chart.tsx';
import { useStore } from '../store.ts';
import { system, type SystemInfo } from '../system.ts';
import { describeReport, verifyExportText, type VerifyReport } from '../audit-verify.ts';

interface Entry {
  seq: number;
  ts: number;
  actor: string;
  action: string;
  subject: string;
  decision: string;
  detail?: Record<string, unknown>;
}

interface Filters {
  actor: string;
  action: string;
  decision: string;
  from: string;
  to: string;
  order: 'desc' | 'asc';
}

const EMPTY: Filters = { actor: '', action: '', decision: '', from: '', to: '', order: 'desc' };
const PAGE = 50;
const ms = (local: string): number | undefined => (local ? new Date(local).getTime() : undefined);

export function Audit() {
  const [f, setF] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  /** cursors of the pages before this one; the last is this page's */
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const [page, setPage] = useState<{ items: Entry[]; nextCursor: string | null } | null>(null);
  const [error, setError] = useState('');
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    setPage(null);
    get<{ items: Entry[]; nextCursor: string | null }>(
      `/api/v1/audit${q({
        actor: applied.actor,
        action: applied.action,
        decision: applied.decision,
        from: ms(applied.from),
        to: ms(applied.to),
        order: applied.order,
        limit: PAGE,
        cursor,
      })}`,
    ).then(
      (r) => {
        setPage(r);
        setError('');
      },
      (e: unknown) => setError(message(e)),
    );
  }, [applied, cursor]);

  const set = (k: keyof Filters) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  return (
    <section>
      <h1>Audit</h1>
      <Verify />
      <form
        class="card filters"
        data-testid="audit-filters"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([undefined]);
          setApplied({ ...f });
        }}
      >
        <label>
          Actor
          <input data-testid="audit-actor" value={f.actor} onInput={set('actor')} placeholder="user:admin" />
        </label>
        <label>
          Action
          <input data-testid="audit-action" value={f.action} onInput={set('action')} placeholder="hand.restart" />
        </label>
        <label>
          Decision
          <select data-testid="audit-decision" value={f.decision} onChange={set('decision')}>
            <option value="">any</option>
            {['allow', 'deny', 'ok', 'error', 'info'].map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" data-testid="audit-from" value={f.from} onInput={set('from')} />
        </label>
        <label>
          To
          <input type="datetime-local" data-testid="audit-to" value={f.to} onInput={set('to')} />
        </label>
        <label>
          Order
          <select data-testid="audit-order" value={f.order} onChange={set('order')}>
            <option value="desc">newest first</option>
            <option value="asc">oldest first</option>
          </select>
        </label>
        <button type="submit" data-testid="audit-apply">
          Filter
        </button>
        <a class="button" href={`/api/v1/audit/export`} download="audit.jsonl" data-testid="audit-export">
          Export (.jsonl)
        </a>
      </form>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        <table data-testid="audit-table" data-count={page ? String(page.items.length) : ''}>
          <thead>
            <tr>
              <th>Seq</th>
              <th>Time</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Subject</th>
              <th>Decision</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {page?.items.map((e) => (
              <tr key={e.seq} data-testid={`audit-row-${e.seq}`} data-action={e.action}>
                <td>{e.seq}</td>
                <td>{time(e.ts)}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>{e.subject}</td>
                <td>
                  <span class={`badge dec-${e.decision}`}>{e.decision}</span>
                </td>
                <td class="detail">{e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {page && page.items.length === 0 && <p class="muted">No entries match.</p>}
      </div>
      <div class="pager">
        <button
          type="button"
          class="small"
          data-testid="audit-prev"
          disabled={cursors.length < 2}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          Previous
        </button>
        <span>page {cursors.length}</span>
        <button
          type="button"
          class="small"
          data-testid="audit-next"
          disabled={!page?.nextCursor}
          onClick={() => page?.nextCursor && setCursors([...cursors, page.nextCursor])}
        >
          Next
        </button>
      </div>
    </section>
  );
}

function Verify() {
  const info = useStore(system);
  const [result, setResult] = useState<(VerifyReport & { source: string }) | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  const run = async (source: string, text: () => Promise<string>): Promise<void> => {
    setBusy(true);
    setError('');
    setResult(null);
    try {
      const key = (info ?? (await get<SystemInfo>('/api/v1/system'))).publicKey;
      const body = await text();
      // let "verifying…" paint before the (synchronous) check
      await new Promise((r) => setTimeout(r, 0));
      setResult({ ...verifyExportText(body, { publicKey: key }), source });
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="card" data-testid="audit-verify">
      <h2>Verify the chain in this browser</h2>
      <p class="muted">
        Checks every entry's SHA-256 link and every checkpoint's Ed25519 signature against the device key
        {info ? (
          <>
            {' '}
            <code data-testid="device-public-key">{info.publicKey}</code>
          </>
        ) : null}
        , without trusting the device's own verdict.
      </p>
      <div class="row">
        <button
          type="button"
          data-testid="audit-verify-export"
          disabled={busy}
          onClick={() =>
            run('export of this device', async () => (await request('GET', '/api/v1/audit/export')).text())
          }
        >
          Verify in browser
        </button>
        <label class="button">
          Verify a file…
          <input
            type="file"
            accept=".jsonl,.ndjson,.json,.txt,application/x-ndjson"
            class="hidden-input"
            data-testid="audit-verify-file"
            onChange={(e) => {
              const input = e.target as HTMLInputElement;
              const file = input.files?.[0];
              if (file)
                void run(file.name, () => file.text()).finally(() => {
                  input.value = '';
                });
            }}
          />
        </label>
        {busy && <span data-testid="verify-busy">verifying…</span>}
      </div>
      {error && (
        <p class="error" data-testid="verify-error">
          {error}
        </p>
      )}
      {result && (
        <div
          class={`verify ${result.ok ? 'ok' : 'bad'}`}
          data-testid="verify-result"
          data-ok={String(result.ok)}
          data-broken-seq={result.firstBrokenSeq === undefined ? '' : String(result.firstBrokenSeq)}
          data-kind={result.kind ?? ''}
          data-checked={String(result.checked)}
          data-line={result.line === undefined ? '' : String(result.line)}
        >
          <b>
            {result.ok ? '✔ ' : '✘ '}
            {describeReport(result)}
          </b>
          <div class="muted small">
            {result.source}
            {result.lastCheckpoint ? ` · last good checkpoint: seq ${result.lastCheckpoint.seq}` : ''}
          </div>
        </div>
      )}
    </div>
  );
}
