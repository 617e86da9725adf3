/**
 * SimDriver and the seeded patterns: the driver contract, determinism (same seed → same
 * series, different seed → different), each pattern's shape and its labels.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { driverContract } from './contract.ts';
import { SimDriver, type SimDriverConfig } from '../../drivers/sim/driver.ts';
import { hash01, labels, makeSeries, mulberry32, type SeriesSpec } from '../../drivers/sim/patterns.ts';
import { systemClock, type Clock } from '../../runtime/core/clock.ts';
import { TalonError } from '../../runtime/core/errors.ts';

/** real timers, manual time */
function manualClock(start = 1_700_000_000_000): Clock & { t: number } {
  const c = { ...systemClock, t: start, now: () => c.t };
  return c;
}

const config: SimDriverConfig = {
  type: 'sim',
  name: 'sim-test',
  seed: 7,
  readTimeoutMs: 100,
  sensors: [
    { id: 'room.temp', unit: '°C', deviceClass: 'temperature', pattern: 'temperature' },
    { id: 'room.humidity', unit: '%', pattern: 'humidity' },
    { id: 'door.open', pattern: 'door', push: true, periodMs: 50 },
  ],
  actuators: [
    { id: 'fan', name: 'Fan' },
    { id: 'dimmer', kind: 'number' },
  ],
};

driverContract('sim', async () => {
  const driver = new SimDriver(config);
  return {
    driver,
    cleanup: async () => {},
    faults: {
      sensor: 'room.temp',
      inject: (kind) => driver.inject('room.temp', kind),
      clear: () => driver.inject('room.temp', null),
    },
    push: async () => driver.pushNow('door.open'),
  };
});

const sine: SeriesSpec = { base: { type: 'sine', mean: 10, amplitude: 2, periodMs: 60_000 } };

describe('sim patterns', () => {
  it('mulberry32 and hash01 are deterministic and in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 100 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 100 }, () => b()),
    );
    assert.notDeepEqual(
      xs,
      Array.from({ length: 100 }, () => c()),
    );
    for (const x of xs) assert.ok(x >= 0 && x < 1);
    assert.equal(hash01(1, 2, 3), hash01(1, 2, 3));
    assert.notEqual(hash01(1, 2, 3), hash01(1, 2, 4));
    assert.notEqual(hash01(1, 2, 3), hash01(2, 2, 3));
  });

  const noisy: SeriesSpec = {
    base: { type: 'walk', start: 50, step: 1, stepMs: 1000, min: 0, max: 100 },
    noise: 0.5,
    anomalies: [
      { type: 'spike', magnitude: 30, everyMs: 60_000, probability: 0.5, durationMs: 3000 },
      { type: 'dropout', everyMs: 120_000, probability: 0.3, durationMs: 5000 },
    ],
  };
  const sample = (seed: number) => {
    const s = makeSeries(noisy, seed);
    return Array.from({ length: 600 }, (_, i) => s(i * 1000));
  };

  it('same seed → same series, in any order of evaluation', () => {
    const a = sample(1);
    assert.deepEqual(a, sample(1));
    const s = makeSeries(noisy, 1);
    const backwards = Array.from({ length: 600 }, (_, i) => s((599 - i) * 1000)).reverse();
    assert.deepEqual(backwards, a);
    assert.deepEqual(labels(noisy, 1, 0, 600_000), labels(noisy, 1, 0, 600_000));
  });

  it('different seed → different series and labels', () => {
    assert.notDeepEqual(sample(1), sample(2));
    assert.notDeepEqual(labels(noisy, 1, 0, 3_600_000), labels(noisy, 2, 0, 3_600_000));
  });

  it('constant and sine have their shape', () => {
    const c = makeSeries({ base: { type: 'constant', value: 3.5 } }, 1);
    assert.equal(c(0), 3.5);
    assert.equal(c(1e9), 3.5);
    const s = makeSeries(sine, 1);
    assert.ok(Math.abs(s(0)! - 10) < 1e-9);
    assert.ok(Math.abs(s(15_000)! - 12) < 1e-9, 'peak at a quarter period');
    assert.ok(Math.abs(s(45_000)! - 8) < 1e-9, 'trough at three quarters');
    assert.ok(Math.abs(s(60_000)! - s(0)!) < 1e-9, 'periodic');
  });

  it('noise stays within ±noise of the base', () => {
    const s = makeSeries({ ...sine, noise: 0.5 }, 3);
    const base = makeSeries(sine, 3);
    let differs = 0;
    for (let t = 0; t < 100_000; t += 1000) {
      const d = s(t)! - base(t)!;
      assert.ok(Math.abs(d) <= 0.5 + 1e-9);
      if (Math.abs(d) > 1e-6) differs++;
    }
    assert.ok(differs > 50, 'noise is present');
  });

  it('a random walk moves by at most `step` per step and stays within [min, max]', () => {
    const w = makeSeries({ base: { type: 'walk', start: 1, step: 2, stepMs: 100, min: 0, max: 10 } }, 9);
    assert.equal(w(0), 1);
    let prev = w(0)!;
    const seen = new Set<number>();
    for (let t = 100; t < 500_000; t += 100) {
      const v = w(t)!;
      assert.ok(v >= 0 && v <= 10, `in range: ${v}`);
      assert.ok(Math.abs(v - prev) <= 2 + 1e-9, 'bounded step');
      assert.equal(w(t + 50), v, 'holds within a step');
      seen.add(Math.round(v));
      prev = v;
    }
    assert.ok(seen.size >= 8, 'it wanders over the range');
    // random access far ahead (past several checkpoints) agrees with a fresh series
    const fresh = makeSeries({ base: { type: 'walk', start: 1, step: 2, stepMs: 100, min: 0, max: 10 } }, 9);
    assert.equal(fresh(499_900), w(499_900));
  });

  it('steps cycle through their levels', () => {
    const s = makeSeries({ base: { type: 'steps', levels: [1, 5, 2], holdMs: 1000 } }, 1);
    assert.deepEqual(
      [0, 999, 1000, 2500, 3000, 4200].map((t) => s(t)),
      [1, 1, 5, 2, 1, 5],
    );
  });

  it('spikes add their magnitude exactly inside their labelled intervals', () => {
    const spec: SeriesSpec = {
      base: { type: 'constant', value: 0 },
      anomalies: [
        { type: 'spike', magnitude: 9, direction: 'both', everyMs: 10_000, probability: 0.6, durationMs: 1000 },
      ],
    };
    const s = makeSeries(spec, 5);
    const ls = labels(spec, 5, 0, 1_000_000);
    assert.ok(ls.length > 30 && ls.length < 90, `about 60 spikes (${ls.length})`);
    let ups = 0;
    for (let t = 0; t < 1_000_000; t += 250) {
      const inside = ls.some((l) => t >= l.from && t < l.to);
      const v = s(t)!;
      assert.equal(Math.abs(v), inside ? 9 : 0, `t=${t}`);
      if (v > 0) ups++;
    }
    assert.ok(ups > 0, 'direction both gives up and down spikes');
    for (const l of ls) assert.equal(l.kind, 'spike');
  });

  it('drift ramps at ratePerHour from startMs and keeps its offset', () => {
    const spec: SeriesSpec = {
      base: { type: 'constant', value: 20 },
      anomalies: [{ type: 'drift', startMs: 3_600_000, ratePerHour: 2, durationMs: 7_200_000 }],
    };
    const s = makeSeries(spec, 1);
    assert.equal(s(0), 20);
    assert.equal(s(3_600_000), 20);
    assert.ok(Math.abs(s(5_400_000)! - 21) < 1e-9);
    assert.ok(Math.abs(s(10_800_000)! - 24) < 1e-9);
    assert.ok(Math.abs(s(20_000_000)! - 24) < 1e-9);
    assert.deepEqual(labels(spec, 1, 0, 1e9), [{ kind: 'drift', from: 3_600_000, to: 10_800_000, anomaly: 0 }]);
    assert.deepEqual(labels(spec, 1, 0, 3_600_000), [], 'a window before the drift has no label');
  });

  it('stuck holds the value of the interval start', () => {
    const spec: SeriesSpec = { ...sine, anomalies: [{ type: 'stuck', at: [10_000], durationMs: 20_000 }] };
    const s = makeSeries(spec, 1);
    const held = s(10_000)!;
    for (let t = 10_000; t < 30_000; t += 500) assert.equal(s(t), held);
    assert.notEqual(s(30_000), held);
    assert.deepEqual(labels(spec, 1, 0, 60_000), [{ kind: 'stuck', from: 10_000, to: 30_000, anomaly: 0 }]);
  });

  it('dropouts answer null inside their intervals only', () => {
    const spec: SeriesSpec = {
      ...sine,
      anomalies: [{ type: 'dropout', everyMs: 30_000, probability: 0.5, durationMs: 4000 }],
    };
    const s = makeSeries(spec, 11);
    const ls = labels(spec, 11, 0, 3_000_000);
    assert.ok(ls.length > 0);
    for (let t = 0; t < 3_000_000; t += 500) {
      const inside = ls.some((l) => t >= l.from && t < l.to);
      assert.equal(s(t) === null, inside, `t=${t}`);
    }
  });

  it('labels() lists exactly the events overlapping the window', () => {
    const spec: SeriesSpec = {
      ...sine,
      anomalies: [{ type: 'spike', magnitude: 1, at: [100, 5000, 9000], durationMs: 1000 }],
    };
    assert.deepEqual(
      labels(spec, 1, 5500, 9000).map((l) => l.from),
      [5000],
    );
    assert.deepEqual(
      labels(spec, 1, 5500, 9001).map((l) => l.from),
      [5000, 9000],
    );
  });

  it('a bad spec is CONFIG_INVALID with a clear message', () => {
    const cases: [unknown, RegExp][] = [
      [{ base: { type: 'sine', mean: 0, amplitude: 1, periodMs: 0 } }, /periodMs must be > 0/],
      [{ base: { type: 'walk', start: 5, step: 1, stepMs: 10, min: 10, max: 0 } }, /min must be < walk.max/],
      [{ base: { type: 'steps', levels: [], holdMs: 1 } }, /non-empty/],
      [
        {
          base: { type: 'constant', value: 1 },
          anomalies: [{ type: 'spike', magnitude: 1, everyMs: 100, durationMs: 100 }],
        },
        /must be < everyMs/,
      ],
      [{ base: { type: 'wobble' } }, /unknown base type/],
    ];
    for (const [spec, msg] of cases) {
      assert.throws(
        () => makeSeries(spec as SeriesSpec, 1),
        (e: unknown) => e instanceof TalonError && e.code === 'CONFIG_INVALID' && msg.test(e.message),
      );
    }
  });
});

describe('SimDriver', () => {
  it('is deterministic with an injected clock: same config and seed → same readings', async () => {
    const run = async (seed: number) => {
      const clock = manualClock();
      const d = new SimDriver({ ...config, seed }, { clock });
      await d.start();
      const out: number[] = [];
      for (let i = 0; i < 50; i++) {
        clock.t += 1000;
        out.push((await d.read('room.humidity')).value as number);
        out.push((await d.read('room.temp')).value as number);
      }
      await d.stop();
      return out;
    };
    assert.deepEqual(await run(3), await run(3));
    assert.notDeepEqual(await run(3), await run(4));
  });

  it('a reading carries the clock time and the value of the quantised series', async () => {
    const clock = manualClock();
    const d = new SimDriver(
      {
        type: 'sim',
        name: 's',
        sensors: [{ id: 'x', pattern: { base: { type: 'steps', levels: [1, 2], holdMs: 1000 } }, periodMs: 500 }],
      },
      { clock },
    );
    await d.start();
    assert.deepEqual(await d.read('x'), { sensor: 'x', value: 1, ts: clock.t });
    clock.t += 1200;
    assert.deepEqual(await d.read('x'), { sensor: 'x', value: 2, ts: clock.t });
    await d.stop();
  });

  it('a dropout → SENSOR_UNAVAILABLE for that read, counted; the next good read restores health', async () => {
    const clock = manualClock();
    const d = new SimDriver(
      {
        type: 'sim',
        name: 's',
        sensors: [
          {
            id: 'x',
            pattern: {
              base: { type: 'constant', value: 1 },
              anomalies: [{ type: 'dropout', at: [2000], durationMs: 1000 }],
            },
          },
        ],
      },
      { clock },
    );
    await d.start();
    await d.read('x');
    clock.t += 2000;
    await assert.rejects(
      d.read('x'),
      (e: unknown) => e instanceof TalonError && e.code === 'SENSOR_UNAVAILABLE' && /dropout/.test(e.message),
    );
    assert.equal(d.health().ok, false);
    assert.equal(d.health().counters.unavailable, 1);
    assert.equal(d.health().counters.errors, 1);
    clock.t += 1000;
    assert.equal((await d.read('x')).value, 1);
    assert.equal(d.health().ok, true);
    await d.stop();
  });

  it('actuators store what is written, and reject a value of the wrong kind', async () => {
    const d = new SimDriver(config);
    await d.start();
    await d.write('fan', true);
    assert.equal(d.actuatorState('fan'), true);
    await d.write('dimmer', 0.4);
    assert.equal(d.actuatorState('dimmer'), 0.4);
    await assert.rejects(d.write('fan', 1), (e: unknown) => e instanceof TalonError && e.code === 'BAD_REQUEST');
    await assert.rejects(d.write('dimmer', NaN), (e: unknown) => e instanceof TalonError && e.code === 'BAD_REQUEST');
    assert.equal(d.health().counters.writes, 2);
    assert.equal(d.health().counters.writeErrors, 2);
    await d.stop();
  });

  it("pushed sensors are delivered by the driver's timer", async () => {
    const d = new SimDriver(config);
    await d.start();
    const got: string[] = [];
    const off = d.onReading((r) => got.push(r.sensor));
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    off();
    await d.stop();
    assert.ok(got.length >= 2);
    assert.ok(got.every((s) => s === 'door.open'));
  });

  it('a bad config is CONFIG_INVALID naming the sensor', () => {
    assert.throws(
      () => new SimDriver({ type: 'sim', name: 's', sensors: [{ id: 'a', pattern: 'nope' as 'door' }] }),
      /sim sensor a: unknown preset "nope"/,
    );
    assert.throws(
      () =>
        new SimDriver({
          type: 'sim',
          name: 's',
          sensors: [
            { id: 'a', pattern: 'door' },
            { id: 'a', pattern: 'door' },
          ],
        }),
      /used twice/,
    );
    assert.throws(
      () =>
        new SimDriver({
          type: 'sim',
          name: 's',
          sensors: [{ id: 'a', pattern: { base: { type: 'sine', mean: 0, amplitude: 1, periodMs: -1 } } }],
        }),
      /sim sensor a: .*periodMs/,
    );
  });
});
