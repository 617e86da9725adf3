/**
 * `npm run bench -- binary` (or `node --import tsx test/bench/binary.ts`): the single
 * executable (image/binary/), built here for both architectures into a temp folder.
 * - size per architecture, raw and compressed (zstd -19, xz -9), against OpenFang's 32 MB;
 *   the optional llama.cpp companion beside it;
 * - cold start of the x64 binary, exec → first 200 from /healthz (median of N), against
 *   `node dist/talon.cjs run` in the same run: with this machine's node and with the very Node
 *   the binary is made of (so the SEA's own cost is apart from the Node version's);
 * - idle RSS of the binary against the bundle on node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBinary, compressedSizes, type BinaryResult } from '../../image/binary/build.ts';
import { buildLlamaCompanion } from '../../image/binary/llama.ts';
import { nodeDist, type Arch } from '../../image/binary/node-dist.ts';
import { freePort, kill, median, ROOT, rssMb, runIfMain, sleep, TALON, waitFor200 } from './lib.ts';

const OPENFANG_MB = 32;
const f = (n: number, d = 1): string => n.toFixed(d);
const mb = (bytes: number): string => `${f(bytes / 1e6)} MB`;

async function start(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; ms: number; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-bench-bin-'));
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const file = join(dataDir, 'talon.json');
  writeFileSync(file, JSON.stringify({
    dataDir, http: { host: '127.0.0.1', port: httpPort }, log: { level: 'warn' }, drivers: [], hands: [],
    bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: mqttPort } } },
  }));
  const t0 = performance.now();
  const proc = spawn(cmd, [...args, 'run', '--config', file], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const ms = await waitFor200(httpPort, '/healthz', t0);
  return { proc, ms, dataDir };
}

function anonMb(pid: number): number {
  const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (k.startsWith('NODE_')) delete env[k];
  return env;
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
      say(`| binary size, linux-${arch} (Node ${r.nodeVersion}, stripped): raw / zstd -19 / xz -9 | ${mb(r.bytes)} / ${mb(c.zstd)} / ${mb(c.xz)} | OpenFang: ${OPENFANG_MB} MB | ${f(r.bytes / 1e6 / OPENFANG_MB, 2)}× raw, ${f(c.xz / 1e6 / OPENFANG_MB, 2)}× xz | |`);
      const tar = buildLlamaCompanion(ROOT, arch, work);
      const t = compressedSizes(tar);
      say(`| optional llama.cpp companion, talon-llama-linux-${arch}.tar: raw / zstd -19 / xz -9 | ${mb(statSync(tar).size)} / ${mb(t.zstd)} / ${mb(t.xz)} | | | |`);
    }

    // cold start: the x64 binary against the bundle on node, alternating, same config
    const bin = built.get('x64')!.file;
    const cache = join(work, 'cache');
    mkdirSync(cache, { mode: 0o700 });
    const binEnv = cleanEnv({ TALON_CACHE: cache });
    const node22 = nodeDist(ROOT, 'x64').node;
    // first start of each: extraction (binary) and code cache creation (both), not measured below
    const first = await start(bin, [], binEnv);
    await sleep(3500);
    await kill(first.proc);
    rmSync(first.dataDir, { recursive: true, force: true });
    for (const node of [process.execPath, node22]) {
      const w = await start(node, [TALON], cleanEnv());
      await sleep(3500);
      await kill(w.proc);
      rmSync(w.dataDir, { recursive: true, force: true });
    }
    const times = { bin: [] as number[], node: [] as number[], node22: [] as number[] };
    for (let i = 0; i < runs; i++) {
      for (const [key, cmd, args, env] of [
        ['bin', bin, [], binEnv], ['node', process.execPath, [TALON], cleanEnv()], ['node22', node22, [TALON], cleanEnv()],
      ] as const) {
        const s = await start(cmd, [...args], env);
        times[key].push(s.ms);
        await kill(s.proc);
        rmSync(s.dataDir, { recursive: true, force: true });
      }
    }
    say(`| x64 binary: first start (extracts its files to the cache folder) | ${f(first.ms)} ms | | | |`);
    say(`| x64 binary: cold start, exec → first 200 from /healthz (median of ${runs}) | ${f(median(times.bin))} ms | \`node dist/talon.cjs run\`, node ${process.version}: ${f(median(times.node))} ms; node v${nodeDist(ROOT, 'x64').version}: ${f(median(times.node22))} ms | **${f(median(times.bin) / median(times.node), 2)}×** / ${f(median(times.bin) / median(times.node22), 2)}× | |`);

    // idle RSS: no Hands, no drivers, 5 s after /healthz
    const rss: Record<string, number> = {};
    const anon: Record<string, number> = {};
    for (const [key, cmd, args, env] of [
      ['bin', bin, [], binEnv], ['node', process.execPath, [TALON], cleanEnv()], ['node22', node22, [TALON], cleanEnv()],
    ] as const) {
      const s = await start(cmd, [...args], env);
      await sleep(5000);
      rss[key] = rssMb(s.proc.pid!);
      anon[key] = anonMb(s.proc.pid!);
      await kill(s.proc);
      rmSync(s.dataDir, { recursive: true, force: true });
    }
    const v22 = nodeDist(ROOT, 'x64').version;
    say(`| x64 binary: idle RSS (no Hands, no drivers, 5 s after start) | ${f(rss.bin!)} MB | \`node dist/talon.cjs run\`, node ${process.version}: ${f(rss.node!)} MB; node v${v22}: ${f(rss.node22!)} MB | ${f(rss.bin! / rss.node!, 2)}× / ${f(rss.bin! / rss.node22!, 2)}× | |`);
    // the difference is in file-backed pages (the executable's own, clean and shared), not in the heap
    say(`| x64 binary: idle RSS, anonymous pages only (RssAnon) | ${f(anon.bin!)} MB | node ${process.version}: ${f(anon.node!)} MB; node v${v22}: ${f(anon.node22!)} MB | ${f(anon.bin! / anon.node!, 2)}× / ${f(anon.bin! / anon.node22!, 2)}× | |`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await runIfMain(import.meta.url, binaryRows);
