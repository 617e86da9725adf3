/**
 * `node --expose-gc --import tsx test/bench/monitoring.ts [seconds]`: what the Monitoring
 * Hand costs and how fast it sees a step. Prints Markdown rows.
 *
 *   1. a real Supervisor + EmbeddedBus + LevelDB with one idle Hand, then (fresh kernel) the
 *      Monitoring Hand watching 50 sim sensors at 1 Hz through a stand-in sensors.* service;
 *      each measured for `seconds` (default 20) after a 5 s settle: the worker's event-loop
 *      utilisation (the supervisor's per-heartbeat figure, averaged), the whole process's CPU
 *      (process.cpuUsage: worker + the kernel serving 50 reads/s) and process RSS;
 *   2. detection delay of a step change, end to end (offset set → alert on the bus) and in
 *      samples from the pure detectors over seeded series.
 */
import { startHarness, waitFor, waitState, ROOT } from '../helpers/supervisor-harness.ts';
import { SimKernel, monitoringBundle } from '../hands/monitoring/sim-kernel.ts';
import { score } from '../hands/monitoring/quality-lib.ts';
import { SensorMonitor } from '../../hands/monitoring/monitor.ts';
import { defaultEntry } from '../../hands/monitoring/settings.ts';
import { makeSeries } from '../../drivers/sim/patterns.ts';

const SECONDS = Number(process.argv[2] ?? 20);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc;
const rss = () => process.memoryUsage().rss / 1048576;
const f = (n: number, d = 1) => n.toFixed(d);

interface Phase {
  elu: number;
  cpu: number;
  rss: number;
  heapMb: number;
}

async function phase(kind: 'idle' | 'monitoring'): Promise<Phase & { stepMs?: number }> {
  const sim = new SimKernel();
  const sensors = [];
  for (let i = 0; i < 50; i++) {
    sensors.push({
      id: `sim.s${String(i).padStart(2, '0')}`,
      intervalMs: 1000,
      rules: { above: 1000, hysteresis: 1, forecast: { limit: 2000, horizonMs: 3_600_000 } },
    });
    sim.add(
      `sim.s${String(i).padStart(2, '0')}`,
      { base: { type: 'sine', mean: 50, amplitude: 5, periodMs: 600_000, phase: i }, noise: 0.5 },
      100 + i,
      { unit: '%' },
    );
  }
  const module =
    kind === 'monitoring' ? await monitoringBundle() : (await import('../helpers/fixtures.ts')).fixture('idle');
  const h = await startHarness(
    [{ name: kind, fixture: await module, settings: kind === 'monitoring' ? { sensors, statusEveryMs: 10_000 } : {} }],
    { register: (sup) => sim.register(sup), config: { heartbeatMs: 250 } },
  );
  try {
    await waitState(h.sup, kind, 'running');
    await sleep(5000);
    gc?.();
    const alerts = await h.collect(`${ROOT}/alerts/#`);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const elus: number[] = [];
    const rsss: number[] = [];
    const heaps: number[] = [];
    for (let i = 0; i < SECONDS * 4; i++) {
      await sleep(250);
      const s = h.sup.status(kind);
      elus.push(s.cpu);
      heaps.push(s.heapUsedMb);
      rsss.push(rss());
    }
    const c = process.cpuUsage(c0);
    const wall = performance.now() - t0;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const out: Phase & { stepMs?: number } = {
      elu: mean(elus),
      cpu: (c.user + c.system) / 1000 / wall,
      rss: mean(rsss),
      heapMb: mean(heaps),
    };
    if (kind === 'monitoring') {
      // end to end: a step on one sensor → the above alert on the bus
      const s = sim.sensors.get('sim.s07')!;
      const before = alerts.length;
      const t = performance.now();
      s.offset = 2000;
      await waitFor(
        'the step alert',
        () => alerts.slice(before).find((m) => m.payload.toString().includes('"rule":"above"')),
        10_000,
        5,
      );
      out.stepMs = performance.now() - t;
    }
    return out;
  } finally {
    await h.close();
  }
}

function stepDelays(): Array<{ sigma: number; samples: number }> {
  const rows = [];
  for (const sigma of [4, 6, 8, 12, 20]) {
    const delays: number[] = [];
    for (let seed = 1; seed <= 20; seed++) {
      const series = makeSeries(
        { base: { type: 'sine', mean: 50, amplitude: 2, periodMs: 3_600_000 }, noise: 1 },
        seed,
      );
      const m = new SensorMonitor('x', { ...defaultEntry('x'), intervalMs: 1000 }, { startedAt: 0 });
      const stepAt = 1800;
      const std = 1 / Math.sqrt(3); // uniform noise in ±1
      let d = Infinity;
      for (let i = 0; i < 2400; i++) {
        const v = series(i * 1000)! + (i >= stepAt ? sigma * std : 0);
        const edges = m.sample(v, i * 1000);
        if (i >= stepAt && edges.some((e) => e.op === 'raise' && e.input.rule === 'anomaly')) {
          d = i - stepAt + 1;
          break;
        }
      }
      delays.push(d);
    }
    delays.sort((a, b) => a - b);
    rows.push({ sigma, samples: delays[10]! });
  }
  return rows;
}

const idle = await phase('idle');
const mon = await phase('monitoring');
console.log(
  `\n### Monitoring Hand (${SECONDS} s, 50 sim sensors at 1 Hz, node ${process.version}, ${(await import('node:os')).cpus().length} cores)\n`,
);
console.log('| figure | idle Hand | Monitoring Hand | delta |');
console.log('|---|---|---|---|');
console.log(
  `| worker event-loop utilisation (share of one core) | ${f(idle.elu * 100, 2)} % | ${f(mon.elu * 100, 2)} % | ${f((mon.elu - idle.elu) * 100, 2)} % |`,
);
console.log(
  `| process CPU (worker + kernel serving 50 reads/s) | ${f(idle.cpu * 100, 2)} % | ${f(mon.cpu * 100, 2)} % | ${f((mon.cpu - idle.cpu) * 100, 2)} % |`,
);
console.log(`| process RSS | ${f(idle.rss)} MB | ${f(mon.rss)} MB | ${f(mon.rss - idle.rss)} MB |`);
console.log(`| worker heap used | ${f(idle.heapMb)} MB | ${f(mon.heapMb)} MB | ${f(mon.heapMb - idle.heapMb)} MB |`);
console.log(`| step → alert on the bus (threshold, 1 Hz polling) | | ${f(mon.stepMs ?? NaN, 0)} ms | |`);
console.log('\n| step size (noise σ) | median samples to the anomaly alert (20 seeds, 1 Hz) |\n|---|---|');
for (const r of stepDelays()) console.log(`| ${r.sigma} σ | ${r.samples} |`);
const q = score(Array.from({ length: 24 }, (_, i) => 1000 + i));
console.log(
  `\nquality (24 seeds × 4 h): recall ${Object.entries(q.recall)
    .map(([k, v]) => `${k} ${f(v * 100)} %`)
    .join(', ')}; precision ${f(q.precision * 100)} % (${Object.entries(q.precisionByRule)
    .map(([k, v]) => `${k} ${f(v * 100)} %`)
    .join(', ')})`,
);
