/**
 * `node --import tsx test/bench/nab.ts`: the Monitoring Hand's detectors on the Numenta Anomaly
 * Benchmark series in /work/shared/datasets/nab (or $NAB_DIR), scored with NAB's standard
 * profile (test/hands/monitoring/nab-lib.ts), per category; the alerts on artificialNoAnomaly
 * (every onset, the probationary period included); and the detector's CPU cost per sample,
 * as a share of one core for 50 sensors at 1 Hz. Prints Markdown.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { NAB_DIR, NAB_SETTINGS, nabAvailable, runNab, summarise, table } from '../hands/monitoring/nab-lib.ts';
import { parseCsv } from '../../hands/monitoring/replay.ts';
import { SensorMonitor } from '../../hands/monitoring/monitor.ts';
import { defaultEntry, parseSettings } from '../../hands/monitoring/settings.ts';

if (!nabAvailable()) {
  console.log(`NAB data not found in ${NAB_DIR}; skipped`);
  process.exit(0);
}
const t0 = performance.now();
const scores = runNab();
const wall = performance.now() - t0;
console.log(
  `\n### NAB (${scores.length} series from ${NAB_DIR}, standard profile; node ${process.version}, ${cpus()[0]?.model ?? '?'})\n`,
);
console.log(table(summarise(scores)));
const noAnomaly = scores.filter((s) => s.category === 'artificialNoAnomaly');
console.log(
  `\nartificialNoAnomaly: ${noAnomaly.reduce((a, s) => a + s.onsets, 0)} alert onsets in ${noAnomaly.reduce((a, s) => a + s.rows, 0)} points, all of them (${noAnomaly.map((s) => `${s.file.split('/')[1]} ${s.onsets}`).join(', ')}); ${noAnomaly.reduce((a, s) => a + s.falseAlerts, 0)} after NAB's probationary period`,
);
console.log(
  `published full-corpus standard scores: Numenta HTM 70.1, Random Cut Forest 51.7, Twitter ADVec 47.1, windowed Gaussian 39.6`,
);

// CPU: every NAB value through one SensorMonitor per series with the NAB settings and with the
// Hand's defaults (kind profiles), a few passes, µs per sample → share of a core at 50 × 1 Hz
const values: number[][] = scores.map((s) =>
  parseCsv(readFileSync(join(NAB_DIR, 'data', s.file), 'utf8')).rows.map((r) => r.value),
);
const nabEntry = parseSettings(NAB_SETTINGS).settings.sensors[0]!;
function cost(label: string, make: () => SensorMonitor): string {
  let n = 0;
  const c0 = process.cpuUsage();
  for (let pass = 0; pass < 3; pass++) {
    for (const vs of values) {
      const m = make();
      for (let i = 0; i < vs.length; i++) m.sample(vs[i]!, i * 1000);
      n += vs.length;
    }
  }
  const c = process.cpuUsage(c0);
  const us = (c.user + c.system) / n;
  return `| ${label} | ${us.toFixed(2)} µs | ${(((us * 50) / 1e6) * 100).toFixed(3)} % |`;
}
console.log(
  '\n| detector (SensorMonitor.sample) | CPU per sample | 50 sensors at 1 Hz, share of one core |\n|---|---|---|',
);
console.log(
  cost(
    'NAB settings (novelty window 2000)',
    () => new SensorMonitor('nab.value', { ...nabEntry, id: 'nab.value' }, { startedAt: 0 }),
  ),
);
console.log(
  cost(
    'defaults, generic sensor',
    () => new SensorMonitor('x', { ...defaultEntry('x'), intervalMs: 1000 }, { startedAt: 0 }),
  ),
);
console.log(
  cost(
    'defaults, rate sensor (median/MAD window)',
    () =>
      new SensorMonitor(
        'net.eth0.rx',
        { ...defaultEntry('net.eth0.rx'), intervalMs: 1000 },
        { unit: 'B/s', startedAt: 0 },
      ),
  ),
);
console.log(`\n(scoring all ${scores.length} series took ${(wall / 1000).toFixed(2)} s)`);
