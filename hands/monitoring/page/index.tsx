/**
 * The Monitoring Hand's part of the web admin: a section of the Sensors page (#/sensors) with
 * the selected sensor's history chart by range and the alerts with acknowledge. The kernel's
 * part of that page (the sensors with their live values) stays in the web admin; this module is
 * a chunk of its own, loaded when the page opens (hands/sdk/page.ts).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { definePage, type HandPageProps, type PageApi, type PageUi } from '../../sdk/page.ts';

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

const enc = encodeURIComponent;

function Monitoring({ args, user, api, ui }: HandPageProps) {
  const selected = args[0] ?? null;
  return (
    <>
      {selected && <History key={selected} id={selected} api={api} ui={ui} />}
      <Alerts admin={user.role === 'admin'} api={api} ui={ui} />
    </>
  );
}

export default definePage({ id: 'alerts', label: 'alerts', section: 'sensors', view: Monitoring });

/** the API sends {t, min, max, avg, n}; ts is what older daemons sent */
type Point = [number, number | null] | { t?: number; ts?: number; min?: number; max?: number; avg?: number };

function History({ id, api, ui }: { id: string; api: PageApi; ui: PageUi }) {
  const [range, setRange] = useState<(typeof RANGES)[number]['id']>('1h');
  const [points, setPoints] = useState<Point[]>([]);
  const [unit, setUnit] = useState('');
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const [span, setSpan] = useState<[number, number] | undefined>(undefined);
  useEffect(() => {
    // the unit for the chart's title: the kernel's sensor list has it
    api.get<{ sensors: Array<{ id: string; unit?: string }> }>('/api/v1/sensors').then(
      (r) => setUnit(r.sensors.find((s) => s.id === id)?.unit ?? ''),
      () => undefined,
    );
  }, [id]);
  useEffect(() => {
    const r = RANGES.find((x) => x.id === range)!;
    const to = Date.now();
    setSpan([(to - r.ms) / 1000, to / 1000]);
    setLoading(true);
    api
      .get<{ points: Point[] }>(
        `/api/v1/sensors/${enc(id)}/history${api.query({ from: to - r.ms, to, resolution: 'auto', maxPoints: 1000 })}`,
      )
      .then(
        (res) => {
          setPoints(res.points ?? []);
          setError('');
        },
        (e: unknown) => setError(api.message(e)),
      )
      .finally(() => setLoading(false));
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
  const Chart = ui.Chart;
  return (
    <div class="card" data-testid="sensor-history" data-sensor={id} data-range={range} data-loading={String(loading)}>
      <h2>History of {id}</h2>
      <div class="tabs">
        {RANGES.map((r) => (
          <button
            type="button"
            key={r.id}
            class={r.id === range ? 'small active' : 'small'}
            data-testid={`range-${r.id}`}
            onClick={() => setRange(r.id)}
          >
            {r.label}
          </button>
        ))}
      </div>
      {error && <p class="error">{error}</p>}
      <Chart
        testid="chart-sensor-history"
        title={`${id} (${unit})`}
        series={agg ? ['avg', 'min', 'max'] : ['value']}
        data={data}
        xRange={span}
      />
    </div>
  );
}

function Alerts({ admin, api, ui }: { admin: boolean; api: PageApi; ui: PageUi }) {
  const [which, setWhich] = useState<'active' | 'all'>('active');
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const whichRef = useRef(which);
  whichRef.current = which;
  const load = (): Promise<void> =>
    api.get<{ alerts: Alert[] }>(`/api/v1/alerts${api.query({ state: whichRef.current, limit: 200 })}`).then(
      (r) => {
        setAlerts(r.alerts);
        setError('');
      },
      (e: unknown) => setError(api.message(e)),
    );
  useEffect(() => {
    void load();
  }, [which]);
  // an alert event: upsert it at once, then reload the list so state filters stay right
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  api.useStream(
    '/api/v1/alerts/stream',
    (d) => {
      const a = ((d as { alert?: Alert })?.alert ?? d) as Alert;
      if (a && typeof a.id === 'string') {
        setAlerts((list) =>
          list
            ? list.some((x) => x.id === a.id)
              ? list.map((x) => (x.id === a.id ? { ...x, ...a } : x))
              : [a, ...list]
            : list,
        );
      }
      if (timer.current) clearTimeout(timer.current);
      timer.current = setTimeout(() => void load(), 300);
    },
    ['alert', 'fired', 'resolved', 'acknowledged'],
  );
  useEffect(
    () => () => {
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );

  const ack = async (id: string): Promise<void> => {
    setBusy(id);
    try {
      const r = await api.post<{ alert: Alert }>(`/api/v1/alerts/${enc(id)}/ack`, {});
      setAlerts((list) => list?.map((x) => (x.id === id ? { ...x, ...r.alert } : x)) ?? null);
    } catch (e) {
      setError(api.message(e));
    } finally {
      setBusy('');
    }
  };

  return (
    <div class="card" data-testid="alerts">
      <h2>Alerts</h2>
      <div class="tabs">
        <button
          type="button"
          class={which === 'active' ? 'small active' : 'small'}
          data-testid="alerts-active"
          onClick={() => setWhich('active')}
        >
          Active
        </button>
        <button
          type="button"
          class={which === 'all' ? 'small active' : 'small'}
          data-testid="alerts-all"
          onClick={() => setWhich('all')}
        >
          All
        </button>
      </div>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        <table data-testid="alerts-table">
          <thead>
            <tr>
              <th>When</th>
              <th>Severity</th>
              <th>Sensor</th>
              <th>Message</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {alerts?.map((a) => (
              <tr
                key={a.id}
                data-testid={`alert-row-${a.id}`}
                data-state={a.state}
                data-acked={String(!!a.acknowledged)}
                class={`sev-${a.severity ?? ''}`}
              >
                <td>{ui.time(a.ts)}</td>
                <td>
                  <span class={`badge sev-${a.severity ?? ''}`}>{a.severity ?? '–'}</span>
                </td>
                <td>{a.sensor ?? '–'}</td>
                <td>
                  {a.message ?? a.rule ?? ''}
                  {a.suggestion && <div class="muted small">{a.suggestion}</div>}
                </td>
                <td>
                  {a.state}
                  {a.acknowledged && (
                    <div class="muted small" data-testid={`alert-acked-${a.id}`}>
                      acknowledged by {a.acknowledged.by}
                    </div>
                  )}
                </td>
                <td>
                  {admin && !a.acknowledged && (
                    <button
                      type="button"
                      class="small"
                      data-testid={`alert-ack-${a.id}`}
                      disabled={busy === a.id}
                      onClick={() => ack(a.id)}
                    >
                      Acknowledge
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {alerts && alerts.length === 0 && (
          <p class="muted" data-testid="alerts-empty">
            No {which === 'active' ? 'active ' : ''}alerts.
          </p>
        )}
      </div>
    </div>
  );
}
