/**
 * `node --import tsx test/bench/ab-start.ts OTHER/dist/talon.cjs`: cold start and idle RSS of this build
 * (dist/talon.cjs) against another build of Talon (say the commit before a change, checked out with
 * `git worktree add /tmp/prev REV`, node_modules linked, `npm run build` there), started alternately in
 * the same run so the machine's noise hits both. No Hands, no drivers; each build started once first so
 * its V8 code cache exists. AB_RUNS sets the starts of each (default 12).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, median, memMb, sleep, startTalon } from './lib.ts';

const other = process.argv[2];
if (!other || !existsSync(other)) {
  console.error('usage: node --import tsx test/bench/ab-start.ts OTHER/dist/talon.cjs');
  process.exit(2);
}
const before = { cmd: process.execPath, args: [other] };
const now = { cmd: process.execPath, args: [join(ROOT, 'dist', 'talon.cjs')] };
for (const c of [before, now]) {
  const t = await startTalon({ hands: [] }, { cmd: c });
  await sleep(3500); // the launcher saves the code cache 3 s after a first start
  await t.stop();
}
const runs = Number(process.env.AB_RUNS ?? 12);
const a: number[] = [];
const b: number[] = [];
for (let i = 0; i < runs; i++) {
  const x = await startTalon({ hands: [] }, { cmd: before });
  a.push(x.startMs);
  await x.stop();
  const y = await startTalon({ hands: [] }, { cmd: now });
  b.push(y.startMs);
  await y.stop();
}
/** idle RSS after 4 s, median of 3 alternate starts of each build, on `config` */
async function idleRss(config: Record<string, unknown>): Promise<[number[], number[]]> {
  const ra: number[] = [];
  const rb: number[] = [];
  for (let i = 0; i < 3; i++) {
    for (const [c, into] of [
      [before, ra],
      [now, rb],
    ] as const) {
      const t = await startTalon(config, { cmd: c });
      await sleep(4000);
      into.push(memMb(t.proc.pid!).rss);
      await t.stop();
    }
  }
  return [ra, rb];
}
const [ra, rb] = await idleRss({ hands: [] });
// no `hands` key: the Hands each build starts by default (the catalog's default instances)
const [da, db] = await idleRss({});
console.log('| measure | other build | this build | ratio |');
console.log('|---|---|---|---|');
console.log(
  `| cold start, exec → first 200 /healthz (median of ${runs}) | ${median(a).toFixed(1)} ms | ${median(b).toFixed(1)} ms | ${(median(b) / median(a)).toFixed(2)}× |`,
);
console.log(
  `| idle RSS, no Hands (median of 3) | ${median(ra).toFixed(1)} MB | ${median(rb).toFixed(1)} MB | ${(median(rb) - median(ra)).toFixed(1)} MB |`,
);
console.log(
  `| idle RSS, the default Hands (median of 3) | ${median(da).toFixed(1)} MB | ${median(db).toFixed(1)} MB | ${(median(db) - median(da)).toFixed(1)} MB |`,
);
