/**
 * Prometheus text exposition (format 0.0.4) of the readings and the runtime's own metrics,
 * served at GET /metrics, and the families Hands report through their surface
 * (hands/sdk/surface.ts `metrics`; gathered by ./hand-requests.ts).
 */
import type { SensorState } from '../sensors/registry.ts';
import type { HandStatus } from '../supervisor/types.ts';
import type { BusStats } from '../bus/types.ts';
import type { DriverHealth } from '../../drivers/types.ts';
import type { MetricFamily } from '../../hands/sdk/surface.ts';

export interface MetricsInput {
  deviceId: string;
  uptimeMs: number;
  sensors: SensorState[];
  drivers: Array<{ name: string; type: string; health: DriverHealth }>;
  hands: HandStatus[];
  bus: BusStats;
  audit: { seq: number; checkpointSeq: number };
  process: { rssBytes: number; heapUsedBytes: number; cpuSeconds: number };
  /** tool calls by outcome since start, the approvals waiting, agent runs (runtime/tools, runtime/agent) */
  tools?: {
    calls: Record<string, { ok: number; denied: number; failed: number; ms: number }>;
    approvalsPending: number;
    runs?: { byState: Record<string, number>; steps: number };
  };
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labels = (l: Record<string, string | undefined>): string => {
  const parts = Object.entries(l)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}="${esc(v!)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};
const num = (v: number): string => (Number.isFinite(v) ? String(v) : 'NaN');

const STATES = ['stopped', 'starting', 'running', 'backoff', 'failed', 'stopping'] as const;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * `m`, then the Hands' families (`extra`): each named `talon_…` and not one of the kernel's
 * own, its labels checked and `device` set on every sample; a family that breaks a rule is
 * left out rather than breaking the whole exposition.
 */
export function renderMetrics(m: MetricsInput, extra: readonly MetricFamily[] = []): string {
  const base = renderKernel(m);
  if (extra.length === 0) return base;
  const taken = new Set(
    base
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2]),
  );
  const out: string[] = [];
  for (const f of extra) {
    if (
      !METRIC_NAME.test(f.name) ||
      !f.name.startsWith('talon_') ||
      taken.has(f.name) ||
      (f.type !== 'gauge' && f.type !== 'counter')
    )
      continue;
    taken.add(f.name);
    out.push(
      `# HELP ${f.name} ${String(f.help ?? '')
        .replace(/\\/g, '\\\\')
        .replace(/\n/g, '\\n')}`,
      `# TYPE ${f.name} ${f.type}`,
    );
    for (const x of f.samples) {
      const l: Record<string, string> = { device: m.deviceId };
      for (const [k, v] of Object.entries(x.labels ?? {}))
        if (LABEL_NAME.test(k) && k !== 'device' && !k.startsWith('__')) l[k] = String(v);
      out.push(`${f.name}${labels(l)} ${num(typeof x.value === 'number' ? x.value : NaN)}`);
    }
  }
  return out.length > 0 ? `${base}${out.join('\n')}\n` : base;
}

function renderKernel(m: MetricsInput): string {
  const out: string[] = [];
  const family = (
    name: string,
    type: 'gauge' | 'counter',
    help: string,
    rows: Array<[Record<string, string | undefined>, number]>,
  ): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of rows) out.push(`${name}${labels(l)} ${num(v)}`);
  };
  const dev = m.deviceId;
  family('talon_up', 'gauge', 'The Talon kernel is running.', [[{ device: dev }, 1]]);
  family('talon_uptime_seconds', 'gauge', 'Seconds since the kernel started.', [[{ device: dev }, m.uptimeMs / 1000]]);
  family(
    'talon_process_resident_memory_bytes',
    'gauge',
    'Resident set size of the Talon process (all Hands included).',
    [[{ device: dev }, m.process.rssBytes]],
  );
  family('talon_process_heap_used_bytes', 'gauge', 'V8 heap used by the kernel thread.', [
    [{ device: dev }, m.process.heapUsedBytes],
  ]);
  family('talon_process_cpu_seconds_total', 'counter', 'CPU time of the Talon process.', [
    [{ device: dev }, m.process.cpuSeconds],
  ]);

  const numeric = m.sensors.filter(
    (s) => s.latest && (typeof s.latest.value === 'number' || typeof s.latest.value === 'boolean'),
  );
  family(
    'talon_sensor_value',
    'gauge',
    'Latest good reading of each sensor (booleans as 0/1).',
    numeric.map((s) => [
      { device: dev, sensor: s.info.id, unit: s.info.unit, driver: s.driver },
      Number(s.latest!.value),
    ]),
  );
  family(
    'talon_sensor_timestamp_seconds',
    'gauge',
    'When the latest good reading was taken.',
    numeric.map((s) => [{ device: dev, sensor: s.info.id }, s.latest!.ts / 1000]),
  );
  family(
    'talon_sensor_reads_total',
    'counter',
    'Reads asked of each sensor.',
    m.sensors.map((s) => [{ device: dev, sensor: s.info.id }, s.reads]),
  );
  family(
    'talon_sensor_faults_total',
    'counter',
    'Reads that failed (threw, timed out, NaN, wrong kind).',
    m.sensors.map((s) => [{ device: dev, sensor: s.info.id }, s.faults]),
  );
  family(
    'talon_driver_up',
    'gauge',
    'Driver health (1 ok).',
    m.drivers.map((d) => [{ device: dev, driver: d.name, type: d.type }, d.health.ok ? 1 : 0]),
  );
  const counterRows: Array<[Record<string, string | undefined>, number]> = [];
  for (const d of m.drivers)
    for (const [k, v] of Object.entries(d.health.counters))
      counterRows.push([{ device: dev, driver: d.name, counter: k }, v]);
  family('talon_driver_events_total', 'counter', 'Driver counters (lines, bad checksums, reconnects...).', counterRows);

  family(
    'talon_hand_state',
    'gauge',
    'Hand state (1 for the current state).',
    m.hands.flatMap((h) =>
      STATES.map(
        (st) => [{ device: dev, hand: h.name, state: st }, h.state === st ? 1 : 0] as [Record<string, string>, number],
      ),
    ),
  );
  family(
    'talon_hand_restarts_total',
    'counter',
    'Automatic and requested restarts.',
    m.hands.map((h) => [{ device: dev, hand: h.name }, h.restarts]),
  );
  family(
    'talon_hand_cpu_ratio',
    'gauge',
    "Event-loop utilisation of the Hand's worker (share of one core).",
    m.hands.map((h) => [{ device: dev, hand: h.name }, h.cpu]),
  );
  family(
    'talon_hand_heap_used_bytes',
    'gauge',
    "Heap used by the Hand's worker.",
    m.hands.map((h) => [{ device: dev, hand: h.name }, h.heapUsedMb * 1048576]),
  );
  family(
    'talon_hand_messages_total',
    'counter',
    'Bus messages per Hand and direction.',
    m.hands.flatMap((h) =>
      (['published', 'received', 'dropped', 'denied'] as const).map(
        (k) => [{ device: dev, hand: h.name, kind: k }, h.messages[k]] as [Record<string, string>, number],
      ),
    ),
  );

  family(
    'talon_bus_messages_total',
    'counter',
    'Bus counters.',
    (['published', 'delivered', 'droppedOversize', 'droppedMalformed', 'handlerErrors'] as const).map((k) => [
      { device: dev, kind: k },
      m.bus[k],
    ]),
  );
  family('talon_bus_clients', 'gauge', 'Clients connected to the broker.', [[{ device: dev }, m.bus.clients]]);
  family('talon_audit_head_seq', 'gauge', 'Sequence number of the newest audit entry.', [
    [{ device: dev }, m.audit.seq],
  ]);
  family('talon_audit_checkpoint_seq', 'gauge', 'Sequence number the newest signed checkpoint covers.', [
    [{ device: dev }, m.audit.checkpointSeq],
  ]);
  if (m.tools) {
    const calls = Object.entries(m.tools.calls).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    family(
      'talon_tool_calls_total',
      'counter',
      'Tool calls by outcome (denied: a grant, a schema or a person refused it; failed: it ran and failed).',
      calls.flatMap(([tool, c]) =>
        (['ok', 'denied', 'failed'] as const).map(
          (o) => [{ device: dev, tool, outcome: o }, c[o]] as [Record<string, string>, number],
        ),
      ),
    );
    // a summary without quantiles: _sum and _count per tool (their ratio is the mean)
    out.push(
      '# HELP talon_tool_call_seconds Time spent in tool calls, from the call to its result or refusal.',
      '# TYPE talon_tool_call_seconds summary',
    );
    for (const [tool, c] of calls) {
      out.push(`talon_tool_call_seconds_sum${labels({ device: dev, tool })} ${num(c.ms / 1000)}`);
      out.push(`talon_tool_call_seconds_count${labels({ device: dev, tool })} ${num(c.ok + c.denied + c.failed)}`);
    }
    family('talon_approvals_pending', 'gauge', 'Tool calls waiting for a person to approve or deny them.', [
      [{ device: dev }, m.tools.approvalsPending],
    ]);
    if (m.tools.runs) {
      family(
        'talon_agent_runs_total',
        'counter',
        'Agent runs by state.',
        Object.entries(m.tools.runs.byState).map(([state, n]) => [{ device: dev, state }, n]),
      );
      family('talon_agent_steps_total', 'counter', 'Agent loop steps (model turns).', [
        [{ device: dev }, m.tools.runs.steps],
      ]);
    }
  }
  return `${out.join('\n')}\n`;
}
