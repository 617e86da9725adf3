/**
 * The Lead Generation Hand's page in the web admin (#/leads): the leads in a table (company, domain, score, status,
 * sources; filtered by status and a word), a detail pane with every field and the URL it was read from, the CRM
 * deliveries (pending, sent, failed) with Retry, a Scan button and an Export CSV button (the CSV is made a download
 * in the browser). Buttons that change something are for admins. A chunk of its own, loaded when the page opens
 * (hands/sdk/page.ts); it talks to /api/v1/leads (../surface.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import { definePage, type HandPageProps, type PageApi, type PageUi } from '../../sdk/page.ts';

interface Sourced<T = string> {
  value: T;
  source: string;
  at: number;
}
export interface LeadRow {
  id: string;
  domain?: string;
  company?: Sourced;
  website?: Sourced;
  emails: Sourced[];
  phones: Sourced[];
  contact?: Sourced;
  title?: Sourced;
  industry?: Sourced;
  location?: Sourced;
  size?: Sourced<number>;
  description?: Sourced;
  social: Sourced[];
  technologies: Sourced[];
  mx: Sourced[];
  score: number;
  reasons: string[];
  model?: { score: number; reason: string };
  status: string;
  excludedBy?: string;
  sources: string[];
  firstSeen: number;
  lastSeen: number;
  enrichedAt?: number;
}
export interface DeliveryRow {
  key: string;
  target: string;
  leadId: string;
  state: string;
  attempts: number;
  nextAt: number;
  sentAt?: number;
  crmId?: string;
  action?: string;
  lastError?: string;
}
interface ScanAnswer {
  found: number;
  new: number;
  updated: number;
  qualified: number;
  enqueued: number;
  errors: Record<string, number>;
  joined?: boolean;
}

const enc = encodeURIComponent;
const STATUSES = ['', 'qualified', 'unqualified', 'excluded', 'new'];

/** a status as a badge class */
export function statusClass(s: string): string {
  if (s === 'qualified' || s === 'sent') return 'badge ok';
  if (s === 'excluded' || s === 'failed') return 'badge bad';
  return 'badge state-starting';
}

/** a scan's answer in one line */
export function scanLine(r: ScanAnswer): string {
  const errs = Object.entries(r.errors)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return `${r.joined ? 'Joined the running scan: ' : ''}found ${r.found}, new ${r.new}, updated ${r.updated}, qualified ${r.qualified}, deliveries queued ${r.enqueued}${errs ? `; errors: ${errs}` : ''}`;
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const EXAMPLE = `hands:
  - name: leads
    module: leads
    capabilities: { network: { hosts: ["*"] }, secrets: [hubspot_token] }
    settings:
      criteria: { industries: [robotics], locations: [Germany] }
      sources:
        - { name: expo, list: <the directory page URL>, selectors: { item: ".exhibitor", fields: { company: "h3", website: "a@href" } } }
      crm: [{ name: hubspot, kind: hubspot, secret: hubspot_token }]`;

function Leads({ user, api, ui, args }: HandPageProps) {
  const admin = user.role === 'admin';
  const [leads, setLeads] = useState<LeadRow[] | null>(null);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [status, setStatus] = useState('');
  const [word, setWord] = useState('');
  const [selected, setSelected] = useState<string | undefined>(args[0]);
  const [error, setError] = useState('');
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState('');
  const [tick, setTick] = useState(0);
  const load = (after?: string): Promise<void> =>
    api
      .get<{ leads: LeadRow[]; next?: string }>(
        `/api/v1/leads${api.query({ status, q: word.trim() || undefined, limit: 100, after })}`,
      )
      .then(
        (r) => {
          setLeads((old) => (after ? [...(old ?? []), ...r.leads] : r.leads));
          setNext(r.next);
          setError('');
        },
        (e: unknown) => setError(api.message(e)),
      );
  useEffect(() => {
    void load();
  }, [status, tick]);
  const act = async (key: string, fn: () => Promise<string>): Promise<void> => {
    setBusy(key);
    try {
      setNote(await fn());
      setError('');
      setTick((n) => n + 1);
    } catch (e) {
      setError(api.message(e));
    } finally {
      setBusy('');
    }
  };
  const scan = () => act('scan', async () => scanLine(await api.post<ScanAnswer>('/api/v1/leads/scan', {})));
  const exportCsv = () =>
    act('export', async () => {
      const r = await api.get<{ csv: string; count: number }>(`/api/v1/leads/export${api.query({ status })}`);
      download(`leads${status ? `-${status}` : ''}.csv`, r.csv);
      return `Exported ${r.count} lead(s)`;
    });
  return (
    <>
      <div class="card" data-testid="leads">
        <h2>Leads</h2>
        {error && (
          <p class="error" data-testid="leads-error">
            {error}
          </p>
        )}
        {note && (
          <p class="muted" data-testid="leads-note">
            {note}
          </p>
        )}
        <form
          class="row"
          onSubmit={(ev) => {
            ev.preventDefault();
            void load();
          }}
        >
          <select
            data-testid="leads-status"
            value={status}
            onChange={(ev) => setStatus((ev.target as HTMLSelectElement).value)}
          >
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s === '' ? 'all' : s}
              </option>
            ))}
          </select>
          <input
            data-testid="leads-q"
            placeholder="company, domain or e-mail"
            value={word}
            onInput={(ev) => setWord((ev.target as HTMLInputElement).value)}
          />
          <button type="submit" class="small">
            Filter
          </button>
          {admin && (
            <button type="button" data-testid="leads-scan" disabled={busy !== ''} onClick={() => void scan()}>
              {busy === 'scan' ? 'Scanning…' : 'Scan now'}
            </button>
          )}
          <button type="button" data-testid="leads-export" disabled={busy !== ''} onClick={() => void exportCsv()}>
            Export CSV
          </button>
        </form>
        {leads && leads.length === 0 && status === '' && word === '' ? (
          <div data-testid="leads-empty">
            <p class="muted">No leads yet. Configure sources and CRM targets in the Hand's settings, then scan:</p>
            <pre class="small">{EXAMPLE}</pre>
          </div>
        ) : (
          <div class="scroll">
            <table data-testid="leads-table">
              <thead>
                <tr>
                  <th>Company</th>
                  <th>Domain</th>
                  <th>Score</th>
                  <th>Status</th>
                  <th>Sources</th>
                </tr>
              </thead>
              <tbody>
                {leads?.map((l) => (
                  <tr
                    key={l.id}
                    data-testid={`lead-row-${l.id}`}
                    class={selected === l.id ? 'selected' : ''}
                    onClick={() => setSelected(l.id)}
                  >
                    <td>{l.company?.value ?? '–'}</td>
                    <td>{l.domain ?? l.id}</td>
                    <td>{Math.round(l.score)}</td>
                    <td>
                      <span class={statusClass(l.status)}>{l.status}</span>
                    </td>
                    <td class="small">{l.sources.join(', ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {next && (
              <button type="button" class="small" onClick={() => void load(next)}>
                More
              </button>
            )}
          </div>
        )}
      </div>
      {selected && <Detail key={`${selected}:${tick}`} id={selected} api={api} ui={ui} />}
      <Deliveries key={tick} api={api} ui={ui} admin={admin} onNote={(m) => void act('retry', async () => m)} />
    </>
  );
}

function Field({ name, s }: { name: string; s: Sourced<unknown> | undefined }) {
  if (!s) return null;
  return (
    <tr>
      <th>{name}</th>
      <td>{String(s.value)}</td>
      <td class="small muted">
        {/^https?:\/\//.test(s.source) ? (
          <a href={s.source} target="_blank" rel="noopener noreferrer">
            {s.source}
          </a>
        ) : (
          s.source
        )}
      </td>
    </tr>
  );
}

function Detail({ id, api, ui }: { id: string; api: PageApi; ui: PageUi }) {
  const [lead, setLead] = useState<LeadRow | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    api.get<{ lead: LeadRow }>(`/api/v1/leads/${enc(id)}`).then(
      (r) => setLead(r.lead),
      (e: unknown) => setError(api.message(e)),
    );
  }, [id]);
  if (error) return <div class="card error">{error}</div>;
  if (!lead) return null;
  return (
    <div class="card" data-testid="lead-detail">
      <h2>
        {lead.company?.value ?? lead.domain ?? lead.id} <span class={statusClass(lead.status)}>{lead.status}</span>
      </h2>
      <p>
        Score <strong>{Math.round(lead.score)}</strong>
        {lead.excludedBy && <span class="muted"> (excluded by {lead.excludedBy})</span>}
      </p>
      {lead.reasons.length > 0 && (
        <ul class="small">
          {lead.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
      {lead.model && (
        <p class="small">
          Model: {lead.model.score} – {lead.model.reason}
        </p>
      )}
      <table data-testid="lead-fields">
        <tbody>
          <Field name="Company" s={lead.company} />
          <Field name="Website" s={lead.website} />
          <Field name="Industry" s={lead.industry} />
          <Field name="Location" s={lead.location} />
          <Field name="Size" s={lead.size} />
          <Field name="Contact" s={lead.contact} />
          <Field name="Title" s={lead.title} />
          <Field name="Description" s={lead.description} />
          {lead.emails.map((e) => (
            <Field key={`e${e.value}`} name="E-mail" s={e} />
          ))}
          {lead.phones.map((e) => (
            <Field key={`p${e.value}`} name="Phone" s={e} />
          ))}
          {lead.social.map((e) => (
            <Field key={`s${e.value}`} name="Social" s={e} />
          ))}
          {lead.technologies.map((e) => (
            <Field key={`t${e.value}`} name="Technology" s={e} />
          ))}
          {lead.mx.map((e) => (
            <Field key={`m${e.value}`} name="MX" s={e} />
          ))}
        </tbody>
      </table>
      <p class="muted small">
        Sources: {lead.sources.join(', ')}; first seen {ui.time(lead.firstSeen)}, last seen {ui.time(lead.lastSeen)}
        {lead.enrichedAt !== undefined && `, enriched ${ui.time(lead.enrichedAt)}`}
      </p>
    </div>
  );
}

function Deliveries({
  api,
  ui,
  admin,
  onNote,
}: {
  api: PageApi;
  ui: PageUi;
  admin: boolean;
  onNote: (m: string) => void;
}) {
  const [rows, setRows] = useState<DeliveryRow[]>([]);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const load = () =>
    api.get<{ deliveries: DeliveryRow[] }>('/api/v1/leads/deliveries?limit=200').then(
      (r) => setRows(r.deliveries),
      (e: unknown) => setError(api.message(e)),
    );
  useEffect(() => {
    void load();
    // a delivery waiting for a CRM that was down changes by itself: look again now and then
    const t = setInterval(() => void load(), 15_000);
    return () => clearInterval(t);
  }, []);
  const retry = async (key: string): Promise<void> => {
    setBusy(key);
    try {
      const r = await api.post<{ delivery: DeliveryRow }>('/api/v1/leads/deliveries/retry', { key });
      onNote(`${key}: ${r.delivery.state}`);
    } catch (e) {
      setError(api.message(e));
    } finally {
      setBusy('');
    }
  };
  if (rows.length === 0 && !error) return null;
  return (
    <div class="card" data-testid="deliveries">
      <h2>CRM deliveries</h2>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        <table data-testid="deliveries-table">
          <thead>
            <tr>
              <th>Target</th>
              <th>Lead</th>
              <th>State</th>
              <th>Tries</th>
              <th>When</th>
              <th>Last error</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.key} data-testid={`delivery-row-${d.key}`} data-state={d.state}>
                <td>{d.target}</td>
                <td>{d.leadId}</td>
                <td>
                  <span class={statusClass(d.state)}>{d.state}</span>
                  {d.action && <span class="muted small"> {d.action}</span>}
                </td>
                <td>{d.attempts}</td>
                <td>{d.state === 'sent' ? ui.time(d.sentAt) : d.state === 'pending' ? ui.time(d.nextAt) : '–'}</td>
                <td class="detail">{d.lastError ?? ''}</td>
                <td class="actions">
                  {admin && d.state !== 'sent' && (
                    <button
                      type="button"
                      class="small"
                      data-testid={`delivery-retry-${d.key}`}
                      disabled={busy !== ''}
                      onClick={() => void retry(d.key)}
                    >
                      Retry
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

export default definePage({ id: 'leads', label: 'Leads', view: Leads });
