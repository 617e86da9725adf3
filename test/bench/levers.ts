/**
 * `npm run bench -- levers` (or `node --import tsx test/bench/levers.ts`): V8 and libuv settings
 * for small devices, measured on `node dist/talon.cjs run` in one run, each against no setting
 * and bare node in the same run, so they are chosen by measure and not by guess:
 * the young generation's semi-space (`--max-semi-space-size`), V8's platform worker threads
 * (`--v8-pool-size`), single-threaded GC, libuv's thread pool (`UV_THREADPOOL_SIZE`, which
 * LevelDB and DNS use) and glibc's malloc arenas (`MALLOC_ARENA_MAX`). V8 flags are
 * per-process: Hands' workers get them too. Figures: cold start (median of BENCH_RUNS,
 * alternating) and idle RSS with one idle Hand (median of 3).
 */
import { join } from 'node:path';
import {
  benchHands,
  handsRunning,
  median,
  medianMem,
  memMb,
  nodeRef,
  refMem,
  refStart,
  ROOT,
  runIfMain,
  sleep,
  startTalon,
  type Mem,
} from './lib.ts';

interface Lever {
  label: string;
  args: string[];
  env: Record<string, string>;
}

export const LEVERS: Lever[] = [
  { label: '(none)', args: [], env: {} },
  { label: '`--max-semi-space-size=1`', args: ['--max-semi-space-size=1'], env: {} },
  { label: '`--v8-pool-size=1`', args: ['--v8-pool-size=1'], env: {} },
  { label: '`--single-threaded-gc`', args: ['--single-threaded-gc'], env: {} },
  { label: '`UV_THREADPOOL_SIZE=2`', args: [], env: { UV_THREADPOOL_SIZE: '2' } },
  { label: '`MALLOC_ARENA_MAX=2`', args: [], env: { MALLOC_ARENA_MAX: '2' } },
  {
    label: 'all four: semi-space 1, pool 1, UV 2, arenas 2',
    args: ['--max-semi-space-size=1', '--v8-pool-size=1'],
    env: { UV_THREADPOOL_SIZE: '2', MALLOC_ARENA_MAX: '2' },
  },
];

const f = (n: number, d = 1): string => n.toFixed(d);

export async function leverRows(say: (line: string) => void, levers: Lever[] = LEVERS): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 10);
  const talon = join(ROOT, 'dist', 'talon.cjs');
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
    for (const k of Object.keys(e)) if (k.startsWith('NODE_')) delete e[k];
    return e;
  };
  const cmd = (l: Lever): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } => ({
    cmd: process.execPath,
    args: [...l.args, talon],
    env: env(l.env),
  });
  const ref = nodeRef();
  // the code cache (saved 3 s after a first start) is the same for every lever: made once
  const first = await startTalon({ hands: [] }, { cmd: cmd(levers[0]!) });
  await sleep(3500);
  await first.stop();

  const bare: number[] = [];
  const starts = levers.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    bare.push(await refStart(ref, 'http'));
    for (const [j, l] of levers.entries()) {
      const t = await startTalon({ hands: [] }, { cmd: cmd(l) });
      starts[j]!.push(t.startMs);
      await t.stop();
    }
  }
  const hands = await benchHands();
  const bareMem: Mem[] = [];
  const mems = levers.map(() => [] as Mem[]);
  for (let i = 0; i < 3; i++) {
    bareMem.push(await refMem(ref, 'idle', 1500));
    for (const [j, l] of levers.entries()) {
      const t = await startTalon({ hands: [{ name: 'idle-0', module: hands.idle }] }, { cmd: cmd(l) });
      await handsRunning(t, 1);
      await sleep(3000);
      mems[j]!.push(memMb(t.proc.pid!));
      await t.stop();
    }
  }
  const b = median(bare);
  const bm = medianMem(bareMem);
  const none = medianMem(mems[0]!);
  say('');
  say(
    `V8 and libuv settings on \`node dist/talon.cjs run\` (cold start: median of ${runs}; bare node:http ${f(b)} ms. Idle RSS with 1 idle Hand: median of 3; bare node idle ${f(bm.rss)} MB):`,
  );
  say('');
  say('| setting | cold start | × bare | idle RSS | × bare | RssAnon | RssFile | RSS vs (none) |');
  say('|---|---|---|---|---|---|---|---|');
  for (const [j, l] of levers.entries()) {
    const s = median(starts[j]!);
    const m = medianMem(mems[j]!);
    say(
      `| ${l.label} | ${f(s)} ms | ${f(s / b, 2)}× | ${f(m.rss)} MB | ${f(m.rss / bm.rss, 2)}× | ${f(m.anon)} MB | ${f(m.file)} MB | ${j === 0 ? '' : `${m.rss - none.rss >= 0 ? '+' : ''}${f(m.rss - none.rss)} MB`} |`,
    );
  }
}

await runIfMain(import.meta.url, leverRows);
