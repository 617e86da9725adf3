/**
 * `npm run bench [-- section ...]`: measures the budgets in DESIGN.md on this machine and
 * prints a Markdown report (copied into BENCHMARKS.md with the command that made it).
 * Sections: kernel (cold start and idle RSS against bare node and the floor — node + LevelDB +
 * node:http + one worker, test/bench/ref-main.cjs —, per-Hand RSS, 50 Hands), binary (sizes,
 * and the same budgets on the single executable, ./binary.ts), levers (V8 and libuv settings,
 * ./levers.ts; only when named), bus (Hand → Hand through
 * the embedded broker and through mosquitto), audit (appends, latency, verification, memory),
 * serial (lines parsed per second), monitoring (the Monitoring Hand's CPU, RSS, detection delay),
 * nab (the Monitoring Hand's detectors scored on the Numenta Anomaly Benchmark's series),
 * llm (router overhead, failover time, local tokens/s with a generated random-weight GGUF),
 * web (requests/s, the web admin's RSS idle and under 20 SSE streams, page weight),
 * provisioning (first start → provisioned and reconnected; 200 simulated devices at once),
 * tools (a tool call's kernel cost, in process and from a Hand's worker; the agent loop's cost per step),
 * scheduling (10,000 schedules idle in process and on the daemon; bus event → action latency),
 * communication (messages per second through routing to a local sink, in process and on the daemon; 10,000 queued),
 * research (the Research Hand's documents per minute and memory on a generated fixture web, in process and on the
 * daemon; the Lead Generation Hand's leads per minute, deliveries per second, heap per 1000 leads; no model),
 * browser (the Web Automation Hand: Chromium's PSS and RSS idle, with 1 and 5 jobs; flow steps/s; check time per watch).
 * Ratios are measured in the same run, since the machine is shared and noisy. Idle memory is
 * printed as a second table (VmRSS, RssAnon, RssFile) after the main one.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import {
  ROOT,
  reportHeader,
  benchHands,
  handsRunning,
  median,
  medianMem,
  memMb,
  memRow,
  nodeRef,
  printMemTable,
  refMem,
  refStart,
  rssMb,
  sleep,
  startTalon,
  type Mem,
  type TalonProc,
} from './lib.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { auditRows } from './audit.ts';
import { serialRows } from './serial.ts';
import { llmRouterRows } from './llm-router.ts';
import { llmLocalRows } from './llm-local.ts';
import { webRows } from './web.ts';
import { toolsRows } from './tools.ts';
import { provisioningRows } from './provisioning.ts';
import { imageRows } from './image.ts';
import { binaryRows } from './binary.ts';
import { leverRows } from './levers.ts';
import { execFileSync } from 'node:child_process';

const out: string[] = [];
const say = (line = ''): void => {
  out.push(line);
  console.log(line);
};
const f = (n: number, d = 1): string => n.toFixed(d);

/** ✓ or ✗ against a budget of at most `max` */
const mark = (value: number, max: number): string => (value <= max ? '✓' : '✗');

async function coldStart(runs: number): Promise<void> {
  // the very first start compiles the bundle and saves V8's code cache 3 s later (see
  // image/launcher.cjs); every later start of the same build uses it
  const cache = join(ROOT, 'dist', `.talon-main.${process.version}-${process.arch}.v8cache`);
  rmSync(cache, { force: true });
  const first = await startTalon({ hands: [] });
  await sleep(3500);
  await first.stop();
  if (!existsSync(cache)) throw new Error('the launcher did not save its code cache');
  const ref = nodeRef();
  await refStart(ref, 'floor'); // warms the page cache for classic-level's files
  const talon: number[] = [];
  const bare: number[] = [];
  const floor: number[] = [];
  for (let i = 0; i < runs; i++) {
    bare.push(await refStart(ref, 'http'));
    floor.push(await refStart(ref, 'floor'));
    const t = await startTalon({ hands: [] });
    talon.push(t.startMs);
    await t.stop();
  }
  const ratio = median(talon) / median(bare);
  say(`| first start after a build (no code cache yet) | ${f(first.startMs)} ms | | | |`);
  say(
    `| cold start, \`node dist/talon.cjs run\`, exec → first 200 from /healthz (median of ${runs}) | ${f(median(talon))} ms | minimal node:http server, same node: ${f(median(bare))} ms | **${f(ratio, 2)}×** | ≤ 1.3× ${mark(ratio, 1.3)} |`,
  );
  say(
    `| the floor: node + LevelDB (classic-level) opened and written + node:http listening, exec → first 200 (median of ${runs}) | ${f(median(floor))} ms | minimal node:http server: ${f(median(bare))} ms | ${f(median(floor) / median(bare), 2)}× | |`,
  );
  say(`| cold start over the floor | | | ${f(median(talon) / median(floor), 2)}× | |`);
}

async function idleRss(): Promise<void> {
  const hands = await benchHands();
  const hand = (i: number): Record<string, unknown> => ({ name: `idle-${i}`, module: hands.idle });
  const ref = nodeRef();
  const samples = { bare: [] as Mem[], floor: [] as Mem[], one: [] as Mem[] };
  for (let i = 0; i < 3; i++) {
    samples.bare.push(await refMem(ref, 'idle', 1500));
    samples.floor.push(await refMem(ref, 'floor', 3000));
    const one = await startTalon({ hands: [hand(0)] });
    await handsRunning(one, 1);
    await sleep(3000);
    samples.one.push(memMb(one.proc.pid!));
    await one.stop();
  }
  const bare = medianMem(samples.bare);
  const floor = medianMem(samples.floor);
  const one = medianMem(samples.one);
  const eleven = await startTalon({ hands: Array.from({ length: 11 }, (_, i) => hand(i)) });
  await handsRunning(eleven, 11);
  await sleep(3000);
  const elevenRss = rssMb(eleven.proc.pid!);
  await eleven.stop();
  const ratio = one.rss / bare.rss;
  say(
    `| idle RSS, kernel + broker + HTTP + 1 idle Hand (median of 3) | ${f(one.rss)} MB | bare \`node\` idle: ${f(bare.rss)} MB | **${f(ratio, 2)}×** | ≤ 1.4× ${mark(ratio, 1.4)} |`,
  );
  say(
    `| idle RSS, the floor: node + 1 idle worker + LevelDB + node:http (median of 3) | ${f(floor.rss)} MB | bare \`node\` idle: ${f(bare.rss)} MB | ${f(floor.rss / bare.rss, 2)}× | |`,
  );
  say(`| idle RSS over the floor | | | ${f(one.rss / floor.rss, 2)}× | |`);
  memRow(
    `\`node dist/talon.cjs run\`, 1 idle Hand (node ${process.version})`,
    one,
    { label: 'bare', mem: bare },
    `≤ 1.4× ${mark(ratio, 1.4)}`,
  );
  memRow('the floor: node + 1 idle worker + LevelDB + node:http', floor, { label: 'bare', mem: bare });
  memRow(`bare \`node\` idle (node ${process.version})`, bare);
  // what `npm start` runs: the default config (system + simulated drivers, the Monitoring Hand)
  const dflt = await startTalon({ drivers: undefined, hands: undefined });
  await handsRunning(dflt, 1);
  await sleep(5000);
  const dfltRss = rssMb(dflt.proc.pid!);
  await dflt.stop();
  say(
    `| idle RSS, the default config (system + sim drivers, Monitoring Hand polling every sensor) | ${f(dfltRss)} MB | bare \`node\` idle: ${f(bare.rss)} MB | ${f(dfltRss / bare.rss, 2)}× | |`,
  );
  say(
    `| each further idle Hand (11 Hands vs 1) | ${f((elevenRss - one.rss) / 10)} MB | | | ≤ 8 MB ${mark((elevenRss - one.rss) / 10, 8)} |`,
  );
}

async function fiftyHands(): Promise<void> {
  const hands = await benchHands();
  const t0 = performance.now();
  const t = await startTalon({
    hands: Array.from({ length: 50 }, (_, i) => ({ name: `idle-${i}`, module: hands.idle })),
  });
  await handsRunning(t, 50, 60000);
  const ms = performance.now() - t0;
  await sleep(1000);
  const rss = rssMb(t.proc.pid!);
  await t.stop();
  say(`| 50 idle Hands: exec → all running | ${f(ms / 1000, 2)} s | | | ≤ 5 s ${mark(ms / 1000, 5)} |`);
  say(`| 50 idle Hands: total RSS | ${f(rss)} MB | | | ≤ 512 MB ${mark(rss, 512)} |`);
}

interface BusResult {
  count: number;
  seconds: number;
  p50ms: number;
  p99ms: number;
  maxms: number;
}

async function busRun(t: TalonProc, brokerUrl: string, count: number, rate: number): Promise<BusResult> {
  const deviceId = (JSON.parse(readFileSync(join(t.dataDir, 'runtime.json'), 'utf8')) as { deviceId: string }).deviceId;
  // the embedded broker: as the CLI (its token); anonymous local clients may not read every topic
  const embedded = brokerUrl === `mqtt://127.0.0.1:${t.mqttPort}`;
  const client = await mqtt.connectAsync(brokerUrl, {
    reconnectPeriod: 0,
    ...(embedded ? { username: 'token', password: t.token() } : {}),
  });
  try {
    const root = `talon/${deviceId}`;
    await client.subscribeAsync(`${root}/bench/result`);
    const result = new Promise<BusResult>((resolve) =>
      client.on('message', (_t, p) => resolve(JSON.parse(p.toString()) as BusResult)),
    );
    await client.publishAsync(`${root}/bench/expect`, JSON.stringify({ count }));
    await sleep(200);
    await client.publishAsync(`${root}/bench/go`, JSON.stringify({ count, rate }));
    return await Promise.race([
      result,
      sleep(120000).then(() => {
        throw new Error('bus benchmark timed out');
      }),
    ]);
  } finally {
    await client.endAsync();
  }
}

async function bus(
  label: string,
  busConfig: ((mqttPort: number) => Record<string, unknown>) | null,
  brokerUrl: (t: TalonProc) => string,
): Promise<void> {
  const hands = await benchHands();
  const cfgHands = [
    { name: 'sender', module: hands.sender },
    { name: 'receiver', module: hands.receiver },
  ];
  const t = await startTalon(busConfig ? { hands: cfgHands, bus: busConfig(0) } : { hands: cfgHands });
  try {
    await handsRunning(t, 2);
    const url = brokerUrl(t);
    await busRun(t, url, 2000, 0); // warm-up
    const thr = await busRun(t, url, 100000, 0);
    const lat = await busRun(t, url, 5000, 1000);
    say(`| Hand → Hand, QoS 0, ${label}: throughput | ${f(thr.count / thr.seconds, 0)} msg/s | | | ≥ 20,000 msg/s |`);
    say(
      `| Hand → Hand, QoS 0, ${label}: latency at 1,000 msg/s | p50 ${f(lat.p50ms, 2)} ms, p99 ${f(lat.p99ms, 2)} ms, max ${f(lat.maxms, 2)} ms | | | |`,
    );
  } finally {
    await t.stop();
  }
}

async function main(): Promise<void> {
  const sections = new Set(process.argv.slice(2));
  const want = (s: string): boolean => sections.size === 0 || sections.has(s);
  await reportHeader(say);
  if (want('kernel')) {
    await coldStart(Number(process.env.BENCH_RUNS ?? 10));
    await idleRss();
    await fiftyHands();
  }
  if (want('audit')) await auditRows(say);
  if (want('serial')) await serialRows(say);
  if (want('llm')) {
    for (const line of await llmRouterRows()) say(line);
    await llmLocalRows(['tiny', '1b'], say);
  }
  if (want('monitoring')) {
    // its own process: it runs two kernels one after the other and measures the Hand's worker
    const text = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(ROOT, 'test/bench/monitoring.ts')],
      { encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    for (const line of text.trimEnd().split('\n')) say(line);
  }
  if (want('scheduling')) {
    // its own process (gc exposed, a clean heap): the engine with 10,000 jobs in process, then two daemons
    const text = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(ROOT, 'test/bench/scheduling.ts')],
      { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, SCHED_BENCH_NO_HEADER: '1' } },
    );
    for (const line of text.trimEnd().split('\n')) say(line);
  }
  if (want('communication')) {
    // its own process (gc exposed): the Hand in process with 10,000 queued, then the whole path on a daemon
    const text = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(ROOT, 'test/bench/communication.ts')],
      { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, SCHED_BENCH_NO_HEADER: '1' } },
    );
    for (const line of text.trimEnd().split('\n')) if (!line.includes(' warn  [talon] ')) say(line);
  }
  if (want('research')) {
    // its own process (gc exposed): the Research Hand in process and on a daemon, then the Lead Generation Hand
    const text = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(ROOT, 'test/bench/research.ts')],
      { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, SCHED_BENCH_NO_HEADER: '1' } },
    );
    for (const line of text.trimEnd().split('\n')) if (!line.includes(' warn  [talon] ')) say(line);
  }
  if (want('browser')) {
    // its own process (gc exposed): the kernel's browser pool and tools with Chromium, then the Web Automation Hand
    const text = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(ROOT, 'test/bench/browser.ts')],
      { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, SCHED_BENCH_NO_HEADER: '1' } },
    );
    for (const line of text.trimEnd().split('\n')) if (!line.includes(' warn  [talon] ')) say(line);
  }
  if (want('nab')) {
    // the Monitoring Hand's detectors over the NAB corpus in ../shared/datasets/nab (its own script)
    const text = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test/bench/nab.ts')], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    for (const line of text.trimEnd().split('\n')) say(line);
  }
  if (want('web')) await webRows(say);
  if (want('tools')) await toolsRows(say);
  if (want('provisioning')) await provisioningRows(say);
  if (want('image')) await imageRows(say);
  if (want('binary')) await binaryRows(say);
  if (want('bus')) {
    await bus('embedded broker', null, (t) => `mqtt://127.0.0.1:${t.mqttPort}`);
    const mosq = await startMosquitto();
    try {
      await bus(
        'external mosquitto',
        () => ({ url: mosq.url, embedded: { enabled: false, listen: { host: '127.0.0.1', port: 0 } } }),
        () => mosq.url,
      );
    } finally {
      await mosq.stop();
    }
  }
  printMemTable(say);
  // a table of its own, after the others
  if (sections.has('levers')) await leverRows(say);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
