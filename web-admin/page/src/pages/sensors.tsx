/**
 * The sensors with their live values (the kernel's part), then the sections the Hands add to
 * this page (hand-page.tsx): a sensor's row links to #/sensors/<id>, which they get as args.
 */
import { useEffect, useState } from 'preact/hooks';
import { enc, get, message } from '../api.ts';
import { time } from '../chart.tsx';
import { useStream } from '../sse.ts';
import { HandSections, pageTitle } from '../hand-page.tsx';
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

export function Sensors({ args, user }: PageProps) {
  const [sensors, setSensors] = useState<Sensor[] | null>(null);
  const [error, setError] = useState('');
  const selected = args[0] ?? null;

  useEffect(() => {
    get<{ sensors: Sensor[] }>('/api/v1/sensors').then(
      (r) => setSensors(r.sensors),
      (e: unknown) => setError(message(e)),
    );
  }, []);
  useStream(
    '/api/v1/sensors/stream',
    (d) => {
      const r = d as { id?: string; sensor?: string; value: number; ts: number };
      const id = r?.id ?? r?.sensor;
      if (!id || typeof r.ts !== 'number') return;
      setSensors((list) => {
        if (!list) return list;
        if (!list.some((s) => s.id === id)) return [...list, { id, latest: { value: r.value, ts: r.ts } }];
        return list.map((s) =>
          s.id === id && (!s.latest || s.latest.ts <= r.ts) ? { ...s, latest: { value: r.value, ts: r.ts } } : s,
        );
      });
    },
    ['reading'],
  );

  return (
    <section>
      <h1>{pageTitle('sensors', 'Sensors')}</h1>
      {error && <p class="error">{error}</p>}
      <div class="scroll">
        <table data-testid="sensors-table">
          <thead>
            <tr>
              <th>Sensor</th>
              <th>Value</th>
              <th>Updated</th>
              <th>Kind</th>
              <th>Faults</th>
            </tr>
          </thead>
          <tbody>
            {sensors?.map((s) => (
              <tr key={s.id} data-testid={`sensor-row-${s.id}`} class={selected === s.id ? 'selected' : ''}>
                <td>
                  <a href={`#/sensors/${enc(s.id)}`}>{s.name ?? s.id}</a>
                  {s.name && s.name !== s.id && <small class="muted"> {s.id}</small>}
                </td>
                <td data-testid={`sensor-value-${s.id}`} data-ts={s.latest ? String(s.latest.ts) : ''}>
                  {s.latest
                    ? `${typeof s.latest.value === 'number' ? round(s.latest.value) : String(s.latest.value)} ${s.unit ?? ''}`
                    : '–'}
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
      <HandSections page="sensors" args={args} user={user} />
    </section>
  );
}

const round = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));
