/**
 * Replay (hands/monitoring/replay.ts) and `talon monitoring replay`: recorded data runs through
 * the very SensorMonitor the Hand runs, at the data's own time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsv, replay } from '../../../hands/monitoring/replay.ts';
import { SensorMonitor } from '../../../hands/monitoring/monitor.ts';
import { defaultEntry } from '../../../hands/monitoring/settings.ts';
import { main } from '../../../runtime/cli/main.ts';

test('parseCsv: header, ISO / NAB / epoch timestamps, bad lines reported', () => {
  const { rows, problems } = parseCsv(
    'timestamp,value\n2015-07-10 14:24:00,564\n2015-07-10T14:29:00Z,5.5\n1436538900,7\n1436538960000,8\nbad line\n2015-07-10 14:40:00,abc\n',
  );
  assert.deepEqual(
    rows.map((r) => r.value),
    [564, 5.5, 7, 8],
  );
  assert.equal(rows[0]!.ts, Date.UTC(2015, 6, 10, 14, 24));
  assert.equal(rows[2]!.ts, 1436538900_000);
  assert.equal(rows[3]!.ts, 1436538960000);
  assert.deepEqual(
    problems.map((p) => p.line),
    [6, 7],
  );
});

test("replay runs the Hand's SensorMonitor: the same raise edges as feeding it directly; alerts at the data's time", () => {
  const t0 = Date.UTC(2026, 0, 1);
  const rows = Array.from({ length: 400 }, (_, i) => ({
    ts: t0 + i * 5000,
    value: 50 + Math.sin(i / 10) + (i === 300 ? 40 : 0),
  }));
  const r = replay(rows, { sensor: 'room.level' });
  const m = new SensorMonitor('room.level', { ...defaultEntry('room.level'), intervalMs: 5000 }, { startedAt: t0 });
  const direct = rows.flatMap((row) =>
    m
      .sample(row.value, row.ts)
      .filter((e) => e.op === 'raise')
      .map((e) => ({ ts: row.ts, rule: e.input.rule })),
  );
  assert.deepEqual(
    r.onsets.map((o) => ({ ts: o.ts, rule: o.rule })),
    direct,
  );
  assert.equal(r.entry.intervalMs, 5000, "an unconfigured sensor takes the data's spacing");
  const fired = r.events.filter((e) => e.state === 'firing');
  assert.equal(fired.length, 1);
  assert.equal(fired[0]!.rule, 'anomaly');
  assert.equal(fired[0]!.ts, t0 + 300 * 5000);
  // a gap: missing fires at the first housekeeping tick past 3 × interval, then resolves
  const gap = [...rows.slice(0, 100), ...rows.slice(110, 120)];
  const g = replay(gap, { sensor: 'room.level' });
  const miss = g.events.filter((e) => e.rule === 'missing');
  assert.deepEqual(
    miss.map((e) => e.state),
    ['firing', 'resolved'],
  );
  assert.equal(miss[0]!.ts, t0 + 99 * 5000 + 16_000);
  assert.equal(miss[1]!.ts, t0 + 110 * 5000);
});

test("replay with settings: the matching entry's rules; an unmatched sensor is named", () => {
  const rows = Array.from({ length: 50 }, (_, i) => ({ ts: i * 1000, value: i < 30 ? 20 : 80 }));
  const settings = {
    sensors: [{ id: 'tank.*', intervalMs: 1000, rules: { above: 70, forDurationMs: 5000, anomaly: false } }],
  };
  const r = replay(rows, { sensor: 'tank.level', settings });
  assert.deepEqual(
    r.events.filter((e) => e.state === 'firing').map((e) => [e.rule, e.ts]),
    [['above', 35_000]],
  );
  const other = replay(rows, { sensor: 'pump.speed', settings });
  assert.match(other.problems.map((p) => p.message).join(), /no sensors\[\] entry matches "pump.speed"/);
});

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'talon-replay-'));
  return {
    out,
    err,
    dir,
    io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s), env: {}, cwd: dir },
  };
}

test('talon monitoring replay FILE --sensor ID [--settings FILE] [--json]', async () => {
  const t = io();
  const lines = [
    'timestamp,value',
    ...Array.from(
      { length: 200 },
      (_, i) => `${new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString()},${i === 150 ? 95 : 20 + (i % 3) * 0.1}`,
    ),
  ];
  writeFileSync(join(t.dir, 'temp.csv'), `${lines.join('\n')}\n`);
  writeFileSync(
    join(t.dir, 's.yaml'),
    'sensors:\n  - id: greenhouse.temp\n    intervalMs: 60000\n    rules: { above: 90, hysteresis: 2 }\n',
  );
  assert.equal(
    await main(['monitoring', 'replay', 'temp.csv', '--sensor', 'greenhouse.temp', '--settings', 's.yaml'], t.io),
    0,
    t.err.join(''),
  );
  const text = t.out.join('');
  assert.match(text, /2026-01-01T02:30:00Z {2}firing {4}warning {3}above/);
  assert.match(text, /greenhouse\.temp: 200 readings .* profile temperature, interval 60000 ms: 2 alerts fired/);
  const j = io();
  writeFileSync(join(j.dir, 'temp.csv'), `${lines.join('\n')}\n`);
  assert.equal(await main(['monitoring', 'replay', 'temp.csv', '--sensor', 'greenhouse.temp', '--json'], j.io), 0);
  const parsed = JSON.parse(j.out.join('')) as { samples: number; events: Array<{ rule: string }> };
  assert.equal(parsed.samples, 200);
  assert.ok(Array.isArray(parsed.events));
  const bad = io();
  assert.equal(await main(['monitoring', 'replay', 'temp.csv'], bad.io), 2);
  assert.match(bad.err.join(''), /--sensor ID is required/);
});
