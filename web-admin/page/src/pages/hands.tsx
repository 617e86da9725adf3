/** The process manager: Hands with state and resource use, lifecycle buttons, settings, logs. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { enc, fieldErrors, get, message, post, put } from '../api.ts';
import { duration, fmt, time } from '../chart.tsx';
import { useStream } from '../sse.ts';
import { HScroll } from '../hscroll.tsx';
import { refreshSystemSoon, type PageProps } from '../system.ts';
import { SchemaField, normalizePath, type JsonSchema } from './schema-form.tsx';

export interface HandStatus {
  name: string;
  module?: string;
  version?: string;
  description?: string;
  state: string;
  since?: number;
  uptimeMs: number;
  restarts: number;
  /** the API sends {code, message}; older daemons sent a string */
  lastError?: { code?: string; message?: string } | string;
  cpu: number;
  heapUsedMb: number;
  heapLimitMb?: number;
  /** the Hand's effective heap quota (quotas.heapMb); heapLimitMb is V8's whole heap limit, larger */
  heapQuotaMb?: number;
  /** Buffers and ArrayBuffers outside the V8 heap, and their quota */
  externalMb?: number;
  externalLimitMb?: number;
  messages: { published: number; received: number; dropped: number; denied: number; malformed: number };
  handlerErrors?: number;
  /** hosts ctx.fetch may reach; raw: the worker has --allow-net (all of the network) */
  network?: { hosts: string[]; raw: boolean };
  /** on-demand: started by a task or a start, stopped when idle */
  mode?: 'always' | 'on-demand';
  onDemand?: { armed: boolean; idleStopMs: number; queued: number };
  /** a pool of workers sharing the Hand's task inbox */
  instances?: { running: number; min: number; max: number; queued: number; inFlight: number };
}

export const RAW_NETWORK_WARNING =
  'network: { raw: true } opens ALL of the network to this Hand: its worker runs with --allow-net and can connect anywhere (LAN, loopback, the internet) without the host list or the audit that ctx.fetch gives.';

export const REFRESH_MS = 3000;

/** "CODE: message" of a Hand's last error, whatever shape it came in */
export function errorText(e: HandStatus['lastError']): string {
  if (e === undefined || e === null) return '';
  if (typeof e === 'string') return e;
  if (typeof e !== 'object') return String(e);
  return [e.code, e.message].filter((x) => typeof x === 'string' && x).join(': ') || JSON.stringify(e);
}

export function Hands({ args, user }: PageProps) {
  const [hands, setHands] = useState<HandStatus[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState<string>('');
  const selected = args[0] ?? null;
  const admin = user.role === 'admin';

  const load = (): Promise<void> =>
    get<{ hands: HandStatus[] }>('/api/v1/hands').then(
      (r) => {
        setHands(r.hands);
        setError('');
      },
      (e: unknown) => setError(message(e)),
    );
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(t);
  }, []);

  const act = async (name: string, action: 'start' | 'stop' | 'restart'): Promise<void> => {
    setBusy(`${action}:${name}`);
    try {
      const h = await post<HandStatus>(`/api/v1/hands/${enc(name)}/${action}`);
      setHands((list) => list?.map((x) => (x.name === name && h && h.name ? h : x)) ?? null);
      await load();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy('');
    }
  };

  return (
    <section>
      <h1>Hands</h1>
      {error && (
        <p class="error" data-testid="hands-error">
          {error}
        </p>
      )}
      <HScroll testid="hands-scroll">
        <table data-testid="hands-table">
          <thead>
            <tr>
              <th>Hand</th>
              <th>State</th>
              <th>Uptime</th>
              <th>Restarts</th>
              <th>CPU</th>
              <th>Heap</th>
              <th>Messages in / out</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {hands?.map((h) => (
              <tr
                key={h.name}
                data-testid={`hand-row-${h.name}`}
                data-state={h.state}
                data-restarts={String(h.restarts)}
                class={selected === h.name ? 'selected' : ''}
              >
                <td>
                  <a href={`#/hands/${enc(h.name)}`} data-testid={`hand-open-${h.name}`}>
                    {h.name}
                  </a>
                  {h.version && <small class="muted"> {h.version}</small>}
                  {h.network?.raw && (
                    <span class="badge bad" data-testid={`hand-raw-network-${h.name}`} title={RAW_NETWORK_WARNING}>
                      raw network
                    </span>
                  )}
                  {h.lastError && (
                    <div class="error small" data-testid={`hand-error-${h.name}`} title={errorText(h.lastError)}>
                      {errorText(h.lastError).slice(0, 160)}
                    </div>
                  )}
                </td>
                <td>
                  <span class={`badge state-${h.state}`} data-testid={`hand-state-${h.name}`}>
                    {h.state}
                  </span>
                  {h.mode === 'on-demand' && (
                    <span
                      class="badge"
                      data-testid={`hand-on-demand-${h.name}`}
                      title={`started by a task or a start; stopped after ${duration(h.onDemand?.idleStopMs ?? 0)} without work`}
                    >
                      on demand
                    </span>
                  )}
                  {h.instances && h.instances.max > 1 && (
                    <span
                      class="badge"
                      data-testid={`hand-instances-${h.name}`}
                      title={`${h.instances.inFlight} tasks in flight, ${h.instances.queued} queued`}
                    >
                      ×{h.instances.running} of {h.instances.min}–{h.instances.max}
                    </span>
                  )}
                </td>
                <td>{h.state === 'running' ? duration(h.uptimeMs) : '–'}</td>
                <td data-testid={`hand-restarts-${h.name}`}>{h.restarts}</td>
                <td>{((h.cpu ?? 0) * 100).toFixed(1)} %</td>
                <td data-testid={`hand-heap-${h.name}`}>
                  {(h.heapUsedMb ?? 0).toFixed(1)}
                  {h.heapQuotaMb ? ` / ${h.heapQuotaMb}` : h.heapLimitMb ? ` / ${Math.round(h.heapLimitMb)}` : ''} MB
                  {typeof h.externalMb === 'number' && (
                    <small class="muted" title="Buffers and ArrayBuffers outside the V8 heap (quotas.externalMb)">
                      {' '}
                      + {h.externalMb.toFixed(1)}
                      {h.externalLimitMb ? ` / ${h.externalLimitMb}` : ''} MB outside
                    </small>
                  )}
                </td>
                <td>
                  {fmt(h.messages?.received ?? 0, 0)} / {fmt(h.messages?.published ?? 0, 0)}
                  {(h.messages?.dropped ?? 0) + (h.messages?.denied ?? 0) > 0 ? (
                    <small class="muted">
                      {' '}
                      ({h.messages.dropped} dropped, {h.messages.denied} denied)
                    </small>
                  ) : null}
                </td>
                <td class="actions">
                  {admin && (
                    <>
                      <button
                        type="button"
                        class="small"
                        data-testid={`hand-start-${h.name}`}
                        disabled={!!busy || h.state === 'running'}
                        onClick={() => act(h.name, 'start')}
                      >
                        Start
                      </button>
                      <button
                        type="button"
                        class="small"
                        data-testid={`hand-stop-${h.name}`}
                        disabled={!!busy || h.state === 'stopped'}
                        onClick={() => act(h.name, 'stop')}
                      >
                        Stop
                      </button>
                      <button
                        type="button"
                        class="small"
                        data-testid={`hand-restart-${h.name}`}
                        disabled={!!busy}
                        onClick={() => act(h.name, 'restart')}
                      >
                        Restart
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </HScroll>
      {hands && hands.length === 0 && <p class="muted">No Hands installed.</p>}
      {selected && hands?.find((x) => x.name === selected)?.network?.raw && (
        <p class="error" data-testid="hand-raw-network-warning">
          {RAW_NETWORK_WARNING}
        </p>
      )}
      {selected && (
        <div class="cards" key={selected}>
          <Settings name={selected} admin={admin} />
          <Logs name={selected} />
        </div>
      )}
    </section>
  );
}

function Settings({ name, admin }: { name: string; admin: boolean }) {
  const [schema, setSchema] = useState<JsonSchema | null>(null);
  const [value, setValue] = useState<unknown>(undefined);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [status, setStatus] = useState('');
  const [loaded, setLoaded] = useState(false);
  useEffect(() => {
    get<{ settings: Record<string, unknown>; schema: JsonSchema | null }>(`/api/v1/hands/${enc(name)}/settings`).then(
      (r) => {
        setSchema(r.schema);
        setValue(r.settings ?? {});
        setLoaded(true);
      },
      (e: unknown) => setStatus(message(e)),
    );
  }, [name]);
  const save = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    setStatus('saving…');
    setErrors({});
    try {
      const r = await put<{ generation: number }>(`/api/v1/hands/${enc(name)}/settings`, { settings: value ?? {} });
      setStatus(`Saved as config generation ${r.generation}; ${name} restarted.`);
      refreshSystemSoon();
    } catch (e) {
      const list = fieldErrors(e);
      const map: Record<string, string> = {};
      for (const fe of list)
        map[normalizePath(fe.path)] = map[normalizePath(fe.path)]
          ? `${map[normalizePath(fe.path)]}; ${fe.message}`
          : fe.message;
      setErrors(map);
      setStatus(message(e));
    }
  };
  return (
    <form class="card settings" data-testid="hand-settings" noValidate onSubmit={save}>
      <h2>Settings of {name}</h2>
      {!loaded ? (
        <p>{status || 'loading…'}</p>
      ) : (
        <>
          {schema ? (
            <SchemaField schema={schema} value={value} onChange={setValue} errors={errors} />
          ) : (
            <SchemaField schema={{}} value={value} onChange={setValue} errors={errors} label="settings" />
          )}
          {errors[''] && <p class="field-error">{errors['']}</p>}
          {admin && (
            <button type="submit" data-testid="hand-settings-save">
              Save and restart
            </button>
          )}
          {status && (
            <p class="muted" data-testid="hand-settings-status">
              {status}
            </p>
          )}
        </>
      )}
    </form>
  );
}

interface LogLine {
  ts: number;
  hand?: string;
  level: string;
  msg: string;
  data?: unknown;
}

const MAX_LOG_LINES = 500;

function Logs({ name }: { name: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    setLines([]);
    if (!follow)
      get<{ lines: LogLine[] }>(`/api/v1/hands/${enc(name)}/logs?lines=200`).then(
        (r) => setLines(r.lines),
        () => undefined,
      );
  }, [name, follow]);
  useStream(
    follow ? `/api/v1/hands/${enc(name)}/logs?follow=1&lines=100` : null,
    (d) => {
      const add = (Array.isArray(d) ? d : ((d as { lines?: LogLine[] })?.lines ?? [d])) as LogLine[];
      const ok = add.filter((l) => l && typeof l === 'object' && typeof l.msg === 'string');
      if (ok.length) setLines((cur) => [...cur, ...ok].slice(-MAX_LOG_LINES));
    },
    ['log', 'line'],
  );
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <div class="card logs">
      <h2>
        Logs{' '}
        <label class="inline">
          <input
            type="checkbox"
            data-testid="hand-logs-follow"
            checked={follow}
            onChange={(e) => setFollow((e.target as HTMLInputElement).checked)}
          />{' '}
          follow
        </label>
      </h2>
      <div class="log" ref={box} data-testid="hand-logs" data-lines={String(lines.length)}>
        {lines.map((l, i) => (
          <div key={i} class={`log-${l.level}`}>
            <span class="muted">{time(l.ts)}</span> <b>{l.level}</b> {l.msg}
            {l.data !== undefined ? ` ${JSON.stringify(l.data)}` : ''}
          </div>
        ))}
        {lines.length === 0 && <span class="muted">no log lines yet</span>}
      </div>
    </div>
  );
}
