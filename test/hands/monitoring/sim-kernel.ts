/**
 * A kernel-side stand-in for the driver registry (the lead's sensors.* services replace it):
 * `sensors.list` / `sensors.read` over seeded sim series (drivers/sim/patterns.ts), with an
 * offset tests can move (a step change) and faults they can inject. Grants are checked like
 * the kernel does: a sensor outside the Hand's `capabilities.sensors` globs is refused.
 */
import { build } from 'esbuild';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { common } from '../../../image/bundle.ts';
import { makeSeries, type SeriesSpec } from '../../../drivers/sim/patterns.ts';
import type { Reading, SensorInfo } from '../../../drivers/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { globMatches } from '../../../runtime/core/grants.ts';
import type { Supervisor } from '../../../runtime/supervisor/supervisor.ts';
import { startHarness, type Harness } from '../../helpers/supervisor-harness.ts';

export type Fault = 'throw' | 'nan' | 'text' | 'hang' | null;

export interface SimSensor {
  info: SensorInfo;
  series: (t: number) => number | null;
  offset: number;
  fault: Fault;
  reads: number;
}

export class SimKernel {
  readonly sensors = new Map<string, SimSensor>();
  readonly origin = Date.now();
  readonly writes: Array<[string, unknown]> = [];

  add(id: string, spec: SeriesSpec, seed: number, extra: Partial<SensorInfo> = {}): SimSensor {
    const s: SimSensor = {
      info: { id, name: id, kind: 'number', mode: 'polled', ...extra },
      series: makeSeries(spec, seed),
      offset: 0,
      fault: null,
      reads: 0,
    };
    this.sensors.set(id, s);
    return s;
  }

  register(sup: Supervisor): void {
    sup.registerService('sensors.list', async (hand) =>
      [...this.sensors.values()]
        .filter((s) => hand.grants.sensors.some((g) => globMatches(g, s.info.id)))
        .map((s) => s.info),
    );
    sup.registerService('sensors.read', async (hand, args) => this.read(hand.grants.sensors, String(args[0])));
    sup.registerService('actuators.write', async (_hand, args) => {
      this.writes.push([String(args[0]), args[1]]);
      return undefined;
    });
  }

  async read(grants: string[], id: string): Promise<Reading> {
    if (!grants.some((g) => globMatches(g, id)))
      throw new TalonError('CAPABILITY_DENIED', `sensor ${id} is outside the grant`);
    const s = this.sensors.get(id);
    if (!s) throw new TalonError('SENSOR_NOT_FOUND', `no sensor ${id}`);
    s.reads++;
    const now = Date.now();
    switch (s.fault) {
      case 'throw':
        throw new TalonError('SENSOR_FAULT', `${id}: I2C read failed (simulated)`);
      case 'nan':
        return { sensor: id, value: NaN, ts: now };
      case 'text':
        return { sensor: id, value: 'ERR' as unknown as number, ts: now };
      case 'hang':
        return new Promise<Reading>(() => {});
      default:
        break;
    }
    const v = s.series(now - this.origin);
    if (v === null) throw new TalonError('SENSOR_UNAVAILABLE', `${id}: no value (dropout)`);
    return { sensor: id, value: v + s.offset, ts: now };
  }
}

let bundled: Promise<string> | null = null;
/** hands/monitoring/index.ts bundled like the image's dist/hands/monitoring.cjs */
export function monitoringBundle(): Promise<string> {
  bundled ??= (async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'talon-monitoring-')), 'monitoring.cjs');
    await build({
      ...common,
      entryPoints: [join(import.meta.dirname, '../../../hands/monitoring/index.ts')],
      outfile: out,
    });
    return out;
  })();
  return bundled;
}

/**
 * The real Monitoring Hand (bundled) in a worker under the supervisor harness, named `name`,
 * watching one simulated sensor `room.temp` that reads a constant 42 °C against a critical
 * `above: 30` rule: an alert fires on the first reading and stays (a 10-minute cool-down).
 */
export async function hotRoom(name: string, opts: { start?: boolean } = {}): Promise<{ h: Harness; sim: SimKernel }> {
  const module = await monitoringBundle();
  const sim = new SimKernel();
  sim.add('room.temp', { base: { type: 'constant', value: 42 } }, 7, { unit: '°C' });
  const h = await startHarness(
    [
      {
        name,
        fixture: module,
        capabilities: { sensors: ['room.*'], gpio: [] },
        settings: {
          sensors: [{ id: 'room.temp', intervalMs: 100, severity: 'critical', rules: { above: 30 } }],
          alerts: { cooldownMs: 600_000 },
          statusEveryMs: 0,
        },
      },
    ],
    { register: (sup) => sim.register(sup), ...(opts.start === false ? { start: false } : {}) },
  );
  return { h, sim };
}
