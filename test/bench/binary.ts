/**
 * `npm run bench -- binary` (or `node --import tsx test/bench/binary.ts`): the single
 * executable (image/binary/), built here for both architectures into a temp folder.
 * - size per architecture, raw and compressed (zstd -19, xz -9), against the goal of 25 MB xz
 *   and OpenFang's 32 MB; the optional llama.cpp companion beside it;
 * - the budgets on the x64 binary, against the very Node it is made of (NODE_VERSION, stripped
 *   the same way) made into a single executable whose main is test/bench/ref-main.cjs: cold
 *   start, exec → first 200 from /healthz, against that SEA's minimal node:http server
 *   (median of BENCH_RUNS, alternating), and idle RSS with one idle Hand against that SEA idle
 *   (RssAnon and RssFile apart), with the floor (LevelDB + http + one worker) run by the same SEA,
 *   and the same Node running ref-main.cjs as a script (a SEA idles with more file pages);
 * - `node dist/talon.cjs run` in the same run, for the SEA's own cost.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBinary, compressedSizes, SENTINEL, type BinaryResult } from '../../image/binary/build.ts';
import { buildLlamaCompanion } from '../../image/binary/llama.ts';
import { nodeDist, type Arch } from '../../image/binary/node-dist.ts';
import {
  benchHands,
  handsRunning,
  median,
  medianMem,
  memMb,
  memRow,
  nodeRef,
  REF_MAIN,
  refMem,
  refStart,
  ROOT,
  runIfMain,
  sleep,
  startTalon,
  type Mem,
  type RefRunner,
} from './lib.ts';

const OPENFANG_MB = 32;
const GOAL_XZ_MB = 25;
const f = (n: number, d = 1): string => n.toFixed(d);
const mb = (bytes: number): string => `${f(bytes / 1e6)} MB`;
const mark = (value: number, max: number): string => (value <= max ? '✓' : '✗');

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (k.startsWith('NODE_')) delete env[k];
  return env;
}

/**
 * The reference single executable: the x64 Node of the binary (NODE_VERSION), stripped as
 * image/binary/build.ts strips it, with test/bench/ref-main.cjs as its main (no assets, no
 * snapshot, no code cache).
 */
function buildRefSea(work: string): string {
  const node = nodeDist(ROOT, 'x64');
  const dir = join(work, 'ref-sea');
  mkdirSync(dir, { recursive: true });
  const blob = join(dir, 'sea.blob');
  const config = join(dir, 'sea-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      main: REF_MAIN,
      output: blob,
      disableExperimentalSEAWarning: true,
      useSnapshot: false,
      useCodeCache: false,
    }),
  );
  execFileSync(node.node, ['--experimental-sea-config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const exe = join(dir, `ref-sea-x64-${node.version}`);
  copyFileSync(node.node, exe);
  chmodSync(exe, 0o755);
  execFileSync(process.arch === 'x64' ? 'strip' : 'x86_64-linux-gnu-strip', ['--strip-all', exe], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js'), exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return exe;
}

export async function binaryRows(say: (line: string) => void): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 10);
  const work = mkdtempSync(join(tmpdir(), 'talon-bench-binary-'));
  try {
    const built = new Map<Arch, BinaryResult>();
    for (const arch of ['x64', 'arm64'] as const) {
      const r = await buildBinary(arch, { outDir: work, log: () => {} });
      built.set(arch, r);
      const c = compressedSizes(r.file);
      say(
        `| binary size, linux-${arch} (Node ${r.nodeVersion}, stripped): raw / zstd -19 / xz -9 | ${mb(r.bytes)} / ${mb(c.zstd)} / ${mb(c.xz)} | goal ≤ ${GOAL_XZ_MB} MB xz; OpenFang: ${OPENFANG_MB} MB | ${f(c.xz / 1e6 / OPENFANG_MB, 2)}× OpenFang (xz) | ≤ ${GOAL_XZ_MB} MB xz ${mark(c.xz / 1e6, GOAL_XZ_MB)} |`,
      );
      if (process.env.BENCH_NO_LLAMA !== '1') {
        const tar = buildLlamaCompanion(ROOT, arch, work);
        const t = compressedSizes(tar);
        say(
          `| optional llama.cpp companion, talon-llama-linux-${arch}.tar: raw / zstd -19 / xz -9 | ${mb(statSync(tar).size)} / ${mb(t.zstd)} / ${mb(t.xz)} | | | |`,
        );
      }
    }
    const nodeVersion = built.get('x64')!.nodeVersion;
    const refSea: RefRunner = { cmd: buildRefSea(work), args: [], env: cleanEnv() };
    const plainNode = nodeRef(process.execPath);
    const cache = join(work, 'cache');
    mkdirSync(cache, { mode: 0o700 });
    const bin = { cmd: built.get('x64')!.file, args: [], env: cleanEnv({ TALON_CACHE: cache }) };
    const bundle = { cmd: process.execPath, args: [join(ROOT, 'dist', 'talon.cjs')], env: cleanEnv() };

    // first start of each: the binary extracts its files; both save V8's code cache 3 s later
    const first = await startTalon({ hands: [] }, { cmd: bin });
    await sleep(3500);
    await first.stop();
    const warm = await startTalon({ hands: [] }, { cmd: bundle });
    await sleep(3500);
    await warm.stop();
    await refStart(refSea, 'floor');

    const times = {
      bin: [] as number[],
      refSea: [] as number[],
      bundle: [] as number[],
      node: [] as number[],
      floor: [] as number[],
    };
    for (let i = 0; i < runs; i++) {
      times.refSea.push(await refStart(refSea, 'http'));
      const b = await startTalon({ hands: [] }, { cmd: bin });
      times.bin.push(b.startMs);
      await b.stop();
      times.floor.push(await refStart(refSea, 'floor'));
      times.node.push(await refStart(plainNode, 'http'));
      const n = await startTalon({ hands: [] }, { cmd: bundle });
      times.bundle.push(n.startMs);
      await n.stop();
    }
    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<
      keyof typeof times,
      number
    >;
    const ratio = m.bin / m.refSea;
    say(`| x64 binary: first start (extracts its files to the cache folder) | ${f(first.startMs)} ms | | | |`);
    say(
      `| x64 binary: cold start, exec → first 200 from /healthz (median of ${runs}) | ${f(m.bin)} ms | Node ${nodeVersion} as a single executable, minimal node:http main: ${f(m.refSea)} ms | **${f(ratio, 2)}×** | ≤ 1.3× ${mark(ratio, 1.3)} |`,
    );
    say(
      `| x64 binary: the floor, the same single executable with LevelDB + node:http (median of ${runs}) | ${f(m.floor)} ms | minimal node:http main: ${f(m.refSea)} ms | ${f(m.floor / m.refSea, 2)}× | |`,
    );
    say(
      `| \`node dist/talon.cjs run\` in the same run (node ${process.version}) | ${f(m.bundle)} ms | minimal node:http server, same node: ${f(m.node)} ms | ${f(m.bundle / m.node, 2)}× | ≤ 1.3× ${mark(m.bundle / m.node, 1.3)} |`,
    );
    say(`| x64 binary against \`node dist/talon.cjs run\` | | | ${f(m.bin / m.bundle, 2)}× | |`);

    // idle RSS: one idle Hand, 3 s after it runs; median of 3, alternating
    const hands = await benchHands();
    const samples = { bin: [] as Mem[], refSea: [] as Mem[], floor: [] as Mem[], node: [] as Mem[] };
    const sameNode = nodeRef(nodeDist(ROOT, 'x64').node);
    for (let i = 0; i < 3; i++) {
      samples.refSea.push(await refMem(refSea, 'idle', 1500));
      samples.node.push(await refMem(sameNode, 'idle', 1500));
      samples.floor.push(await refMem(refSea, 'floor', 3000));
      const t = await startTalon({ hands: [{ name: 'idle-0', module: hands.idle }] }, { cmd: bin });
      await handsRunning(t, 1);
      await sleep(3000);
      samples.bin.push(memMb(t.proc.pid!));
      await t.stop();
    }
    const mem = {
      bin: medianMem(samples.bin),
      refSea: medianMem(samples.refSea),
      floor: medianMem(samples.floor),
      node: medianMem(samples.node),
    };
    const rssRatio = mem.bin.rss / mem.refSea.rss;
    say(
      `| x64 binary: idle RSS, 1 idle Hand (median of 3) | ${f(mem.bin.rss)} MB (anon ${f(mem.bin.anon)}) | the same single executable idle: ${f(mem.refSea.rss)} MB (anon ${f(mem.refSea.anon)}) | **${f(rssRatio, 2)}×** | ≤ 1.4× ${mark(rssRatio, 1.4)} |`,
    );
    say(
      `| x64 binary: idle RSS, the floor (the same single executable: 1 idle worker + LevelDB + node:http) | ${f(mem.floor.rss)} MB | idle: ${f(mem.refSea.rss)} MB | ${f(mem.floor.rss / mem.refSea.rss, 2)}× | |`,
    );
    memRow(
      'x64 binary, 1 idle Hand',
      mem.bin,
      { label: 'its Node idle', mem: mem.refSea },
      `≤ 1.4× ${mark(rssRatio, 1.4)}`,
    );
    memRow(`the floor, as a single executable of Node ${nodeVersion}`, mem.floor, {
      label: 'its Node idle',
      mem: mem.refSea,
    });
    // a single executable of Node idles with ~15 MB more of its executable resident than the same
    // Node running a script (more of .text and .rodata; RssAnon the same): both references shown
    say(
      `| x64 binary: idle RSS against the same Node running a script (not a single executable) | ${f(mem.bin.rss)} MB | \`node\` ${nodeVersion} idle: ${f(mem.node.rss)} MB | ${f(mem.bin.rss / mem.node.rss, 2)}× | |`,
    );
    memRow(`Node ${nodeVersion} as a single executable, idle`, mem.refSea);
    memRow(
      `Node ${nodeVersion} running a script, idle (the same Node, not stripped, not a single executable)`,
      mem.node,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await runIfMain(import.meta.url, binaryRows);
