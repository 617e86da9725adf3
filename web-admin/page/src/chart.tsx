/**
 * A uPlot time-series chart. `data` is [seconds[], ...series[]]; the chart is rebuilt when the
 * series names change and only fed new data otherwise. The container carries
 * data-testid and data-points (how many x values are plotted) for browser tests.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { ChartProps } from '../../../hands/sdk/page.ts';

/** one declaration: a Hand's page gets this Chart through its props (hands/sdk/page.ts) */
export type { ChartProps };

const COLORS = ['#2b7de9', '#e8590c', '#2f9e44', '#ae3ec9', '#f08c00', '#1098ad', '#e03131', '#5c940d'];

export function Chart({ testid, title, series, data, unit = '', height = 180, xRange }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const range = useRef(xRange);
  range.current = xRange;
  const plot = useRef<uPlot | null>(null);
  const key = series.join('\u0000');

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = Math.max(240, el.clientWidth || 300);
    const opts: uPlot.Options = {
      width,
      height,
      title,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          // one point alone would make uPlot span years around it
          range: (_u, min, max): uPlot.Range.MinMax =>
            range.current ?? (max - min < 60 ? [max - 60, max + 1] : [min, max]),
        },
      },
      axes: [
        {},
        {
          values: (_u, vals) => {
            const labels = tickLabels(vals, unit);
            // what the axis shows, for tests (the labels are drawn on the canvas)
            el.dataset.yticks = labels.join('|');
            return labels;
          },
          size: 64,
        },
      ],
      // with the cursor away, the legend shows the latest values (not "--")
      series: [
        { label: 'Time', value: (u, v, _si, idx) => clock(idx === null ? lastOf(u.data[0]) : v) },
        ...series.map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length]!,
          width: 1.5,
          spanGaps: true,
          value: (u: uPlot, v: number | null, si: number, idx: number | null) => {
            const x = idx === null ? lastOf(u.data[si]) : v;
            return x === null || x === undefined ? '–' : `${fmt(x, 2)}${unit ? ` ${unit}` : ''}`;
          },
        })),
      ],
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, el);
    plot.current = u;
    const ro =
      typeof ResizeObserver === 'undefined'
        ? null
        : new ResizeObserver(() => {
            const w = Math.max(240, el.clientWidth);
            if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height });
          });
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [key, height, unit, title]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data, xRange?.[0], xRange?.[1]]);

  return <div class="chart" ref={box} data-testid={testid} data-points={String(data[0]?.length ?? 0)} />;
}

const lastOf = (col: ArrayLike<number | null | undefined> | undefined): number | null => {
  if (!col) return null;
  for (let i = col.length - 1; i >= 0; i--) {
    const v = col[i];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return null;
};

const clock = (sec: number | null | undefined): string =>
  typeof sec === 'number' ? new Date(sec * 1000).toLocaleTimeString() : '–';

/**
 * y-axis labels with as many decimals as the step between ticks needs, so that no two ticks
 * read the same (71.80 and 71.81 are not both "71.8").
 */
export function tickLabels(vals: number[], unit = ''): string[] {
  const finite = vals.filter((v) => typeof v === 'number' && Number.isFinite(v));
  let step = Infinity;
  for (let i = 1; i < finite.length; i++) {
    const d = Math.abs(finite[i]! - finite[i - 1]!);
    if (d > 0) step = Math.min(step, d);
  }
  const max = Math.max(0, ...finite.map(Math.abs));
  const scale = max >= 1e9 ? 1e9 : max >= 1e6 ? 1e6 : max >= 1e4 ? 1e3 : 1;
  const suffix = scale === 1e9 ? 'G' : scale === 1e6 ? 'M' : scale === 1e3 ? 'k' : '';
  let digits = Number.isFinite(step) ? Math.max(0, Math.min(8, Math.ceil(-Math.log10(step / scale) - 1e-9))) : 0;
  const render = (d: number): string[] =>
    vals.map((v) => (typeof v === 'number' && Number.isFinite(v) ? `${(v / scale).toFixed(d)}${suffix}${unit}` : ''));
  let out = render(digits);
  while (new Set(out.filter(Boolean)).size < out.filter(Boolean).length && digits < 8) out = render(++digits);
  return out;
}

export function fmt(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(digits)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(digits)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(digits)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return '–';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export const time = (ts: number | null | undefined): string => (ts ? new Date(ts).toLocaleString() : '–');
