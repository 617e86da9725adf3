/** Device info, health, and live charts fed by GET /api/v1/system/stream. */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, message } from '../api.ts';
import { Chart, bytes, duration, fmt } from '../chart.tsx';
import { useStream } from '../sse.ts';
import { useStore } from '../store.ts';
import { system } from '../system.ts';
import { addSample, addSamples, columns, diskPercent, handNames, samples } from '../stats.ts';

interface Health {
  status: string;
  ok: boolean;
  uptimeMs?: number;
  checks?: unknown;
}

const MB = 1024 * 1024;

export function Dashboard() {
  const info = useStore(system);
  const list = useStore(samples);
  const [health, setHealth] = useState<Health | null>(null);
  const [error, setError] = useState('');

  useEffect(() => {
    get<Health>('/api/v1/system/health').then(setHealth, (e: unknown) => setError(message(e)));
    // the device keeps the last minutes of samples: the charts open with them, then the stream appends
    get<{ samples: unknown[] }>('/api/v1/system/stats/history')
      .then(
        (r) => addSamples(r.samples),
        () => undefined,
      )
      .finally(() => get('/api/v1/system/stats').then(addSample, () => undefined));
    const t = setInterval(() => get<Health>('/api/v1/system/health').then(setHealth, () => undefined), 10_000);
    return () => clearInterval(t);
  }, []);
  useStream('/api/v1/system/stream', addSample, ['stats']);

  const hands = useMemo(() => handNames(list), [list]);
  const data = useMemo(
    () => ({
      cpu: columns(list, [(s) => s.cpu.percent]),
      mem: columns(list, [(s) => s.memory.usedBytes / MB, (s) => (s.memory.rssBytes ?? 0) / MB]),
      temp: columns(list, [(s) => s.temperatureC]),
      disk: columns(list, [diskPercent]),
      net: columns(list, [(s) => s.network.rxBytesPerSec / 1024, (s) => s.network.txBytesPerSec / 1024]),
      handCpu: columns(
        list,
        hands.map((n) => (s) => {
          const h = s.hands?.find((x) => x.name === n);
          return h ? h.cpu * 100 : null;
        }),
      ),
      handHeap: columns(
        list,
        hands.map((n) => (s) => s.hands?.find((x) => x.name === n)?.heapUsedMb),
      ),
    }),
    [list, hands],
  );
  const last = list[list.length - 1];

  return (
    <section>
      <h1>Dashboard</h1>
      {error && <p class="error">{error}</p>}
      <div class="cards">
        <div class="card" data-testid="device-info">
          <h2>Device</h2>
          {info ? (
            <dl>
              <dt>Name</dt>
              <dd>{info.deviceName ?? '–'}</dd>
              <dt>Id</dt>
              <dd data-testid="device-id">{info.deviceId}</dd>
              <dt>Version</dt>
              <dd>{info.version}</dd>
              <dt>Platform</dt>
              <dd>{[info.platform, info.arch, info.board].filter(Boolean).join(' / ')}</dd>
              <dt>Node</dt>
              <dd>{info.node ?? '–'}</dd>
              <dt>Uptime</dt>
              <dd>{duration(health?.uptimeMs ?? info.uptimeMs)}</dd>
              <dt>Config</dt>
              <dd>generation {info.configGeneration ?? '–'}</dd>
            </dl>
          ) : (
            <p>…</p>
          )}
        </div>
        <div class="card" data-testid="health" data-ok={health ? String(health.ok) : ''}>
          <h2>
            Health <span class={`badge ${health?.ok ? 'ok' : 'bad'}`}>{health?.status ?? '…'}</span>
          </h2>
          <Checks checks={health?.checks} />
        </div>
        <div class="card" data-testid="now" data-ts={last ? String(last.ts) : ''}>
          <h2>Now</h2>
          {last ? (
            <dl>
              <dt>CPU</dt>
              <dd data-testid="now-cpu">{fmt(last.cpu.percent)} %</dd>
              <dt>Memory</dt>
              <dd data-testid="now-memory">
                {bytes(last.memory.usedBytes)} / {bytes(last.memory.totalBytes)}
              </dd>
              <dt>Temperature</dt>
              <dd>{typeof last.temperatureC === 'number' ? `${last.temperatureC.toFixed(1)} °C` : 'n/a'}</dd>
              <dt>Disk</dt>
              <dd data-testid="now-disk" data-percent={String(diskPercent(last) ?? '')} title={last.disk.path ?? ''}>
                {diskPercent(last)?.toFixed(1) ?? '–'} % · {bytes(last.disk.usedBytes)} used,{' '}
                {bytes(last.disk.freeBytes ?? last.disk.totalBytes - last.disk.usedBytes)} free
              </dd>
              <dt>Network</dt>
              <dd
                data-testid="now-net"
                data-rx={String(last.network.rxBytesPerSec)}
                data-tx={String(last.network.txBytesPerSec)}
              >
                ↓ {bytes(last.network.rxBytesPerSec)}/s ↑ {bytes(last.network.txBytesPerSec)}/s
              </dd>
            </dl>
          ) : (
            <p>waiting for the first sample…</p>
          )}
        </div>
      </div>
      <div class="charts">
        <Chart testid="chart-cpu" title="CPU" series={['CPU %']} data={data.cpu} unit="%" />
        <Chart testid="chart-memory" title="Memory (MB)" series={['used', 'Talon RSS']} data={data.mem} />
        <Chart testid="chart-temperature" title="Temperature (°C)" series={['°C']} data={data.temp} />
        <Chart testid="chart-disk" title="Disk used (%)" series={['used %']} data={data.disk} unit="%" />
        <Chart testid="chart-network" title="Network (KB/s)" series={['↓ rx', '↑ tx']} data={data.net} />
        <Chart testid="chart-hand-cpu" title="Hand CPU (%)" series={hands} data={data.handCpu} unit="%" />
        <Chart testid="chart-hand-heap" title="Hand heap (MB)" series={hands} data={data.handHeap} />
      </div>
    </section>
  );
}

function Checks({ checks }: { checks: unknown }) {
  if (!checks || typeof checks !== 'object') return <p class="muted">no checks reported</p>;
  const rows: Array<[string, unknown]> = Array.isArray(checks)
    ? checks.map((c: { name?: string }, i) => [c?.name ?? String(i), c])
    : Object.entries(checks as Record<string, unknown>);
  return (
    <ul class="checks">
      {rows.map(([name, v]) => {
        const ok =
          typeof v === 'boolean'
            ? v
            : typeof v === 'object' && v !== null && 'ok' in v
              ? Boolean((v as { ok: unknown }).ok)
              : undefined;
        const text =
          typeof v === 'object' && v !== null
            ? ((v as { message?: string; detail?: string; status?: string }).message ??
              (v as { detail?: string }).detail ??
              (v as { status?: string }).status ??
              '')
            : typeof v === 'boolean'
              ? ''
              : String(v);
        return (
          <li key={name}>
            <span class={`dot ${ok === false ? 'bad' : 'ok'}`} /> {name}{' '}
            {text && <span class="muted">{String(text)}</span>}
          </li>
        );
      })}
    </ul>
  );
}
