/** Live sensor values, history charts by range, and alerts with acknowledge. */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { enc, get, message, post, q } from '../api.ts';
import { Chart, time } from '../chart.tsx';
import { useStream } from '../sse.ts';
import type { PageProps } from '../system.ts';

interface Sensor {
  id: string;
  name?: string;
  unit?: string;
  kind?: string;
  driver?: string;
  latest: { value: number | string | boolean; ts: number } | null;
  faults?: number;
}

export interface Alert {
  id: string;
  sensor?: string;
  rule?: string;
  severity?: string;
  state: string;
  message?: string;
  value?: unknown;
  ts: number;
  acknowledged?: { by: string; at: number; note?: string } | null;
  suggestion?: string;
}

export const RANGES = [
  { id: '1h', label: '1 h', ms: 3_600_000 },
  { id: '6h', label: '6 h', ms: 6 * 3_600_000 },
  { id: '24h', label: '24 h', ms: 24 * 3_600_000 },
  { id: '7d', label: '7 d', ms: 7 * 24 * 3_600_000 },
] as const;

export function Sensors({ args, user }: PageProps) {
  const [sensors, setSensors] = useState<Sensor[] | null>(null);
  const [error, setError] = useState('');
  const selected = args[0] ?? null;

  useEffect(() => {
    get<{ sensors: Sensor[] }>('/api/v1/sensors').then((r) => setSensors(r.sensors), (e: unknown) => setError(message(e)));
  }, []);
  useStream('/api/v1/sensors/stream', (d) => {
    const r = d as { id?: string; sensor?: string; value: number; ts: number };
    const id = r?.id ?? r?.sensor;
    if (!id || typeof r.ts !== 'number') return;
    setSensors((list) => {
      if (!list) return list;
      if (!list.some((s) => s.id === id)) return [...list, { id, latest: { value: r.value, ts: r.ts } }];
      return list.map((s) => (s.id === id && (!s.latest || s.latest.ts <= r.ts) ? { ...s, latest: { value: r.value, ts: r.ts } } : s));
    });
  }, ['reading']);

  return (
    <section>
      <h1>Sensors & alerts</h1>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        <table data-testid="sensors-table">
          <thead><tr><th>Sensor</th><th>Value</th><th>Updated</th><th>Kind</th><th>Faults</th></tr></thead>
          <tbody>
            {sensors?.map((s) => (
              <tr key={s.id} data-testid={`sensor-row-${s.id}`} class={selected === s.id ? 'selected' : ''}>
                <td><a href={`#/sensors/${enc(s.id)}`}>{s.name ?? s.id}</a>{s.name && s.name !== s.id && <small class="muted"> {s.id}</small>}</td>
                <td data-testid={`sensor-value-${s.id}`} data-ts={s.latest ? String(s.latest.ts) : ''}>
                  {s.latest ? `${typeof s.latest.value === 'number' ? round(s.latest.value) : String(s.latest.value)} ${s.unit ?? ''}` : '–'}
                </td>
                <td>{s.latest ? time(s.latest.ts) : '–'}</td>
                <td>{[s.kind, s.driver].filter(Boolean).join(' / ')}</td>
                <td>{s.faults ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {sensors && sensors.length === 0 && <p class="muted">No sensors configured.</p>}
      </div>
      {selected && <History key={selected} id={selected} unit={sensors?.find((s) => s.id === selected)?.unit ?? ''} />}
      <Alerts admin={user.role === 'admin'} />
    </section>
  );
}

const round = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/** the API sends {t, min, max, avg, n}; ts is what older daemons sent */
type Point = [number, number | null] | { t?: number; ts?: number; min?: number; max?: number; avg?: number };

function History({ id, unit }: { id: string; unit: string }) {
  const [range, setRange] = useState<(typeof RANGES)[number]['id']>('1h');
  const [points, setPoints] = useState<Point[]>([]);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const [span, setSpan] = useState<[number, number] | undefined>(undefined);
  useEffect(() => {
    const r = RANGES.find((x) => x.id === range)!;
    const to = Date.now();
    setSpan([(to - r.ms) / 1000, to / 1000]);
    setLoading(true);
    get<{ points: Point[] }>(`/api/v1/sensors/${enc(id)}/history${q({ from: to - r.ms, to, resolution: 'auto', maxPoints: 1000 })}`).then((res) => {
      setPoints(res.points ?? []);
      setError('');
    }, (e: unknown) => setError(message(e))).finally(() => setLoading(false));
  }, [id, range]);
  const agg = points.some((p) => !Array.isArray(p));
  const data = useMemo(() => {
    const xs: number[] = [];
    const avg: Array<number | null> = [];
    const min: Array<number | null> = [];
    const max: Array<number | null> = [];
    for (const p of points) {
      if (Array.isArray(p)) {
        xs.push(p[0] / 1000);
        avg.push(typeof p[1] === 'number' ? p[1] : null);
        min.push(null);
        max.push(null);
      } else {
        const t = typeof p.t === 'number' ? p.t : p.ts;
        if (typeof t !== 'number') continue;
        xs.push(t / 1000);
        avg.push(p.avg ?? null);
        min.push(p.min ?? null);
        max.push(p.max ?? null);
      }
    }
    return agg ? [xs, avg, min, max] : [xs, avg];
  }, [points, agg]);
  return (
    <div class="card" data-testid="sensor-history" data-sensor={id} data-range={range} data-loading={String(loading)}>
      <h2>History of {id}</h2>
      <div class="tabs">
        {RANGES.map((r) => (
          <button type="button" key={r.id} class={r.id === range ? 'small active' : 'small'} data-testid={`range-${r.id}`} onClick={() => setRange(r.id)}>{r.label}</button>
        ))}
      </div>
      {error && <p class="error">{error}</p>}
      <Chart testid="chart-sensor-history" title={`${id} (${unit})`} series={agg ? ['avg', 'min', 'max'] : ['value']} data={data} xRange={span} />
    </div>
  );
}

function Alerts({ admin }: { admin: boolean }) {
  const [which, setWhich] = useState<'active' | 'all'>('active');
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const whichRef = useRef(which);
  whichRef.current = which;
  const load = (): Promise<void> => get<{ alerts: Alert[] }>(`/api/v1/alerts${q({ state: whichRef.current, limit: 200 })}`).then((r) => {
    setAlerts(r.alerts);
    setError('');
  }, (e: unknown) => setError(message(e)));
  useEffect(() => {
    void load();
  }, [which]);
  // an alert event: upsert it at once, then reload the list so state filters stay right
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useStream('/api/v1/alerts/stream', (d) => {
    const a = ((d as { alert?: Alert })?.alert ?? d) as Alert;
    if (a && typeof a.id === 'string') {
      setAlerts((list) => (list ? (list.some((x) => x.id === a.id) ? list.map((x) => (x.id === a.id ? { ...x, ...a } : x)) : [a, ...list]) : list));
    }
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => void load(), 300);
  }, ['alert', 'fired', 'resolved', 'acknowledged']);
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
  }, []);

  const ack = async (id: string): Promise<void> => {
    setBusy(id);
    try {
      const r = await post<{ alert: Alert }>(`/api/v1/alerts/${enc(id)}/ack`, {});
      setAlerts((list) => list?.map((x) => (x.id === id ? { ...x, ...r.alert } : x)) ?? null);
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy('');
    }
  };

  return (
    <div class="card" data-testid="alerts">
      <h2>Alerts</h2>
      <div class="tabs">
        <button type="button" class={which === 'active' ? 'small active' : 'small'} data-testid="alerts-active" onClick={() => setWhich('active')}>Active</button>
        <button type="button" class={which === 'all' ? 'small active' : 'small'} data-testid="alerts-all" onClick={() => setWhich('all')}>All</button>
      </div>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        <table data-testid="alerts-table">
          <thead><tr><th>When</th><th>Severity</th><th>Sensor</th><th>Message</th><th>State</th><th /></tr></thead>
          <tbody>
            {alerts?.map((a) => (
              <tr key={a.id} data-testid={`alert-row-${a.id}`} data-state={a.state} data-acked={String(!!a.acknowledged)} class={`sev-${a.severity ?? ''}`}>
                <td>{time(a.ts)}</td>
                <td><span class={`badge sev-${a.severity ?? ''}`}>{a.severity ?? '–'}</span></td>
                <td>{a.sensor ?? '–'}</td>
                <td>{a.message ?? a.rule ?? ''}{a.suggestion && <div class="muted small">{a.suggestion}</div>}</td>
                <td>{a.state}{a.acknowledged && <div class="muted small" data-testid={`alert-acked-${a.id}`}>acknowledged by {a.acknowledged.by}</div>}</td>
                <td>{admin && !a.acknowledged && (
                  <button type="button" class="small" data-testid={`alert-ack-${a.id}`} disabled={busy === a.id} onClick={() => ack(a.id)}>Acknowledge</button>
                )}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {alerts && alerts.length === 0 && <p class="muted" data-testid="alerts-empty">No {which === 'active' ? 'active ' : ''}alerts.</p>}
      </div>
    </div>
  );
}
