/**
 * The Communication Hand's page in the web admin (#/messages): the channels with their health and a Test button,
 * a small form to send a notification, the escalations waiting for an acknowledgement (with Acknowledge), and the
 * outbox (queued or held, next try, last error), the history (newest first, paged) and the inbox (sender, allowed or
 * unknown, the command and its answer) in tabs. Buttons that change something are for admins. A chunk of its own,
 * loaded when the page opens (hands/sdk/page.ts); it talks to /api/v1/channels and /api/v1/messages (../surface.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import { definePage, type HandPageProps, type PageApi, type PageUi } from '../../sdk/page.ts';

export interface ChannelRow {
  name: string;
  kind: string;
  direction: 'both' | 'out';
  url: string;
  targets: string[];
  health: string;
  error?: string;
  lastError?: string;
  lastOkAt?: number;
  lastReceivedAt?: number;
  queued: number;
  held: number;
  sent: number;
  failed: number;
  received: number;
  breaker: { state: string; waitUntil?: number };
}
interface Outbox {
  id: string;
  channel: string;
  to?: string;
  title?: string;
  text: string;
  priority: string;
  state: string;
  attempts: number;
  nextAt: number;
  createdAt: number;
  lastError?: string;
  holdReason?: string;
}
interface History {
  id: string;
  channel: string;
  to?: string;
  title?: string;
  text: string;
  priority: string;
  outcome: string;
  attempts: number;
  doneAt: number;
  error?: string;
  maybeDuplicate?: boolean;
}
interface Inbox {
  id: string;
  channel: string;
  from: string;
  fromName?: string;
  text: string;
  receivedAt: number;
  sender: string;
  handled?: { command: string; ok: boolean; answer?: string; at: number };
}
export interface EscalationRow {
  ackId: string;
  title?: string;
  text: string;
  priority: string;
  steps: Array<{ to: string[]; afterMs: number }>;
  step: number;
  dueAt: number;
  startedAt: number;
  acked?: { by: string; at: number };
  ended?: string;
}
interface Decision {
  kind: string;
  channel?: string;
  to?: string;
  reason?: string;
  until?: number;
}

type Box = 'outbox' | 'history' | 'inbox';
const enc = encodeURIComponent;
const PAGE = 50;

/** a health as a badge class: ok green, degraded/starting yellow, the rest red */
export function healthClass(h: string): string {
  if (h === 'ok') return 'badge ok';
  if (h === 'degraded' || h === 'starting') return 'badge state-starting';
  return 'badge bad';
}

/** a line of text cut to `max` characters */
function cut(s: string, max = 120): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

const EXAMPLE = `hands:
  - name: messenger
    module: communication
    settings:
      channels:
        phone: "ntfy://ntfy.sh/{secret:ntfy_topic}"
        team: "tgram://{secret:telegram_token}/123456789"`;

function Messages({ user, api, ui }: HandPageProps) {
  const admin = user.role === 'admin';
  const [channels, setChannels] = useState<ChannelRow[] | null>(null);
  const [escalations, setEscalations] = useState<EscalationRow[]>([]);
  const [error, setError] = useState('');
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState('');
  const [tick, setTick] = useState(0);
  const load = (): Promise<void> =>
    Promise.all([
      api.get<{ channels: ChannelRow[] }>('/api/v1/channels'),
      api.get<{ escalations: EscalationRow[] }>('/api/v1/messages/escalations'),
    ]).then(
      ([c, e]) => {
        setChannels(c.channels);
        setEscalations(e.escalations);
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 10_000);
    return () => clearInterval(t);
  }, []);
  const act = async (key: string, fn: () => Promise<string>): Promise<void> => {
    setBusy(key);
    try {
      setNote(await fn());
      setError('');
      await load();
      setTick((n) => n + 1);
    } catch (e) {
      setError(api.message(e));
    } finally {
      setBusy('');
    }
  };
  const test = (name: string) =>
    act(`test:${name}`, async () => {
      const r = await api.post<{ ok: boolean; error?: { kind: string; message: string } }>(
        `/api/v1/channels/${enc(name)}/test`,
        {},
      );
      return r.ok ? `${name}: the test message was sent` : `${name}: not sent: ${r.error?.message} (${r.error?.kind})`;
    });
  const ack = (id: string) =>
    act(`ack:${id}`, async () => {
      const r = await api.post<{ already: boolean }>(`/api/v1/messages/escalations/${enc(id)}/ack`, {});
      return r.already ? `${id} was already acknowledged` : `${id} acknowledged`;
    });
  return (
    <>
      <div class="card" data-testid="channels">
        <h2>Channels</h2>
        {error && (
          <p class="error" data-testid="messages-error">
            {error}
          </p>
        )}
        {note && (
          <p class="muted" data-testid="messages-note">
            {note}
          </p>
        )}
        {channels && channels.length === 0 ? (
          <div data-testid="channels-empty">
            <p class="muted">No channels yet. Add them in the Hand's settings (secrets as references):</p>
            <pre class="small">{EXAMPLE}</pre>
          </div>
        ) : (
          <div class="scroll">
            <table data-testid="channels-table">
              <thead>
                <tr>
                  <th>Channel</th>
                  <th>Health</th>
                  <th>Queued</th>
                  <th>Sent / failed / received</th>
                  <th>Last error</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {channels?.map((c) => (
                  <tr key={c.name} data-testid={`channel-row-${c.name}`} data-health={c.health}>
                    <td>
                      {c.name}
                      <span class="badge small">{c.kind}</span>
                      {c.direction === 'both' && <span class="badge small">in+out</span>}
                      <div class="muted small" title={c.targets.join(', ')}>
                        {c.url}
                      </div>
                    </td>
                    <td>
                      <span class={healthClass(c.health)} data-testid={`channel-health-${c.name}`}>
                        {c.health}
                      </span>
                      {c.breaker.state === 'open' && c.breaker.waitUntil !== undefined && (
                        <div class="muted small">retries {ui.time(c.breaker.waitUntil)}</div>
                      )}
                      {c.lastOkAt !== undefined && <div class="muted small">ok {ui.time(c.lastOkAt)}</div>}
                    </td>
                    <td>
                      {c.queued}
                      {c.held > 0 && <span class="muted small"> (+{c.held} held)</span>}
                    </td>
                    <td>
                      {c.sent} / {c.failed} / {c.direction === 'both' ? c.received : '–'}
                    </td>
                    <td class="detail">{c.error ?? c.lastError ?? ''}</td>
                    <td class="actions">
                      {admin && (
                        <button
                          type="button"
                          class="small"
                          data-testid={`channel-test-${c.name}`}
                          disabled={busy !== '' || c.health === 'error'}
                          onClick={() => test(c.name)}
                        >
                          Test
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
      {admin && <SendForm api={api} onSent={(msg) => void act('send', async () => msg)} />}
      {escalations.length > 0 && (
        <div class="card" data-testid="escalations">
          <h2>Waiting for an acknowledgement</h2>
          <div class="scroll">
            <table data-testid="escalations-table">
              <thead>
                <tr>
                  <th>Ack id</th>
                  <th>Message</th>
                  <th>Step</th>
                  <th>Next step</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {escalations.map((e) => (
                  <tr key={e.ackId} data-testid={`escalation-row-${e.ackId}`}>
                    <td>
                      <code>{e.ackId}</code>
                      <span class={`badge ${e.priority === 'critical' ? 'sev-critical' : 'sev-warning'}`}>
                        {e.priority}
                      </span>
                    </td>
                    <td>{cut(e.title ?? e.text)}</td>
                    <td>
                      {e.step + 1} of {e.steps.length}
                    </td>
                    <td>{e.ended ? e.ended : ui.time(e.dueAt)}</td>
                    <td class="actions">
                      {admin && !e.ended && (
                        <button
                          type="button"
                          class="small"
                          data-testid={`escalation-ack-${e.ackId}`}
                          disabled={busy !== ''}
                          onClick={() => ack(e.ackId)}
                        >
                          Acknowledge
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      )}
      <Boxes key={tick} api={api} ui={ui} />
    </>
  );
}

function SendForm({ api, onSent }: { api: PageApi; onSent: (msg: string) => void }) {
  const [text, setText] = useState('');
  const [priority, setPriority] = useState('normal');
  const [to, setTo] = useState('');
  const [error, setError] = useState('');
  const [sending, setSending] = useState(false);
  const send = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    if (text.trim() === '') {
      setError('Write a message first.');
      return;
    }
    setSending(true);
    try {
      const targets = to
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      const r = await api.post<{ id: string; decisions: Decision[]; ackId?: string }>('/api/v1/messages', {
        text,
        priority,
        ...(targets.length > 0 ? { to: targets } : {}),
      });
      const went = r.decisions.filter((d) => d.kind !== 'drop').map((d) => d.channel ?? '?');
      const dropped = r.decisions.find((d) => d.kind === 'drop');
      onSent(
        went.length > 0
          ? `Sent ${r.id} to ${[...new Set(went)].join(', ')}`
          : `Not sent: ${dropped?.reason ?? 'no rule matched'}`,
      );
      setText('');
      setError('');
    } catch (e) {
      setError(api.message(e));
    } finally {
      setSending(false);
    }
  };
  return (
    <div class="card" data-testid="send-form">
      <h2>Send a notification</h2>
      <form onSubmit={(e) => void send(e)}>
        <textarea
          data-testid="send-text"
          rows={3}
          maxLength={4000}
          placeholder="The message (Markdown)"
          value={text}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        />
        <div class="row">
          <label>
            Priority{' '}
            <select
              data-testid="send-priority"
              value={priority}
              onChange={(e) => setPriority((e.target as HTMLSelectElement).value)}
            >
              {['low', 'normal', 'high', 'critical'].map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </label>
          <label>
            To{' '}
            <input
              data-testid="send-to"
              placeholder="the rules decide"
              value={to}
              onInput={(e) => setTo((e.target as HTMLInputElement).value)}
            />
          </label>
          <button type="submit" data-testid="send-submit" disabled={sending}>
            Send
          </button>
        </div>
        {error && <p class="error">{error}</p>}
      </form>
    </div>
  );
}

function Boxes({ api, ui }: { api: PageApi; ui: PageUi }) {
  const [box, setBox] = useState<Box>('outbox');
  const [rows, setRows] = useState<unknown[] | null>(null);
  const [pages, setPages] = useState<Array<string | undefined>>([undefined]);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [error, setError] = useState('');
  const before = pages[pages.length - 1];
  useEffect(() => {
    setRows(null);
    api.get<{ messages: unknown[]; next?: string }>(`/api/v1/messages${api.query({ box, limit: PAGE, before })}`).then(
      (r) => {
        setRows(r.messages);
        setNext(r.next);
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  }, [box, before]);
  const pick = (b: Box) => {
    setBox(b);
    setPages([undefined]);
  };
  return (
    <div class="card" data-testid="message-boxes" data-box={box}>
      <div class="tabs">
        {(['outbox', 'history', 'inbox'] as const).map((b) => (
          <button
            key={b}
            type="button"
            class={`small${b === box ? ' active' : ''}`}
            data-testid={`box-${b}`}
            onClick={() => pick(b)}
          >
            {{ outbox: 'Outbox', history: 'History', inbox: 'Inbox' }[b]}
          </button>
        ))}
      </div>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        {box === 'outbox' && <OutboxTable rows={(rows ?? []) as Outbox[]} ui={ui} />}
        {box === 'history' && <HistoryTable rows={(rows ?? []) as History[]} ui={ui} />}
        {box === 'inbox' && <InboxTable rows={(rows ?? []) as Inbox[]} ui={ui} />}
        {rows && rows.length === 0 && (
          <p class="muted" data-testid="box-empty">
            {
              {
                outbox: 'Nothing waiting: every message was sent.',
                history: 'No message sent yet.',
                inbox: 'No message received yet.',
              }[box]
            }
          </p>
        )}
      </div>
      {(pages.length > 1 || next) && (
        <div class="pager">
          <button
            type="button"
            class="small"
            data-testid="box-newer"
            disabled={pages.length <= 1}
            onClick={() => setPages(pages.slice(0, -1))}
          >
            Newer
          </button>
          <span class="muted small">page {pages.length}</span>
          <button
            type="button"
            class="small"
            data-testid="box-older"
            disabled={!next}
            onClick={() => next && setPages([...pages, next])}
          >
            Older
          </button>
        </div>
      )}
    </div>
  );
}

function OutboxTable({ rows, ui }: { rows: Outbox[]; ui: PageUi }) {
  return (
    <table data-testid="outbox-table">
      <thead>
        <tr>
          <th>Created</th>
          <th>Channel</th>
          <th>State</th>
          <th>Tries</th>
          <th>Next try</th>
          <th>Last error</th>
          <th>Message</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((m) => (
          <tr key={m.id} data-testid={`outbox-row-${m.id}`} data-state={m.state}>
            <td>{ui.time(m.createdAt)}</td>
            <td>
              {m.channel}
              {m.to ? `:${m.to}` : ''}
            </td>
            <td>
              <span class={`badge ${m.state === 'held' ? 'state-stopped' : 'state-starting'}`}>
                {m.state}
                {m.state === 'held' && m.holdReason ? ` (${m.holdReason})` : ''}
              </span>
            </td>
            <td>{m.attempts}</td>
            <td>{ui.time(m.nextAt)}</td>
            <td class="detail">{m.lastError ?? ''}</td>
            <td>{cut(m.title ?? m.text)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function HistoryTable({ rows, ui }: { rows: History[]; ui: PageUi }) {
  return (
    <table data-testid="history-table">
      <thead>
        <tr>
          <th>Done</th>
          <th>Channel</th>
          <th>Outcome</th>
          <th>Tries</th>
          <th>Priority</th>
          <th>Message</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((m) => (
          <tr key={m.id} data-testid={`history-row-${m.id}`} data-outcome={m.outcome}>
            <td>{ui.time(m.doneAt)}</td>
            <td>
              {m.channel}
              {m.to ? `:${m.to}` : ''}
            </td>
            <td>
              <span class={`badge ${m.outcome === 'sent' ? 'ok' : 'bad'}`}>{m.outcome}</span>
              {m.maybeDuplicate && <span class="muted small"> may show twice</span>}
            </td>
            <td>{m.attempts}</td>
            <td>{m.priority}</td>
            <td>
              {cut(m.title ?? m.text)}
              {m.error && <div class="error small">{m.error}</div>}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function InboxTable({ rows, ui }: { rows: Inbox[]; ui: PageUi }) {
  return (
    <table data-testid="inbox-table">
      <thead>
        <tr>
          <th>Received</th>
          <th>Channel</th>
          <th>From</th>
          <th>Message</th>
          <th>Command and answer</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((m) => (
          <tr key={m.id} data-testid={`inbox-row-${m.id}`} data-sender={m.sender}>
            <td>{ui.time(m.receivedAt)}</td>
            <td>{m.channel}</td>
            <td>
              {m.fromName ? `${m.fromName} (${m.from})` : m.from}
              <span class={`badge ${m.sender === 'allowed' ? 'ok' : m.sender === 'unknown' ? 'bad' : 'state-stopped'}`}>
                {m.sender}
              </span>
            </td>
            <td>{cut(m.text)}</td>
            <td>
              {m.handled ? (
                <>
                  <code>{m.handled.command}</code>
                  {!m.handled.ok && <span class="badge bad">failed</span>}
                  {m.handled.answer && <div class="muted small">{cut(m.handled.answer, 200)}</div>}
                </>
              ) : (
                '–'
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export default definePage({ id: 'messages', label: 'Messages', view: Messages });
