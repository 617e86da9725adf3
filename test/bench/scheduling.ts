/**
 * `npm run bench -- scheduling` (or `node --expose-gc --import tsx test/bench/scheduling.ts`): what the Scheduling
 * Hand costs with many schedules, and how fast an event trigger acts.
 *
 * 1. In process: the engine (hands/scheduling/engine.ts) on a real LevelDB (a Store's `hands/scheduler` sublevel,
 *    as the kernel gives a Hand), 10,000 cron jobs put through the engine (spread over minutes, hours, weekdays and
 *    months, a few time zones, 10 of them every second), no-op actions: the heap and RSS they add, the CPU share
 *    over an idle stretch (process.cpuUsage), the engine's start with 10,000 stored jobs, and a next-run
 *    computation per job (nextTimes, with croner's objects cached per expression and without).
 * 2. On the real daemon (dist/talon.cjs): RSS and CPU over the idle stretch of a daemon whose Scheduling Hand
 *    holds no job, and of one that holds the same 10,000 (put over its task inbox, SCHED_BENCH_WINDOW in flight,
 *    default 1: with a backlog the Hand's event loop never idles, and the kernel stops a Hand busy for 10 s).
 * 3. Trigger latency on the real daemon: an event-triggered job whose action publishes; a client publishes the
 *    event and times the action's message (200 events one after another), p50 / p95 — with no other job and
 *    with the 10,000.
 * SCHED_BENCH_IDLE_S sets the idle stretch (default 30 s), SCHED_BENCH_JOBS the job count (default 10,000),
 * SCHED_BENCH_ONLY=process|daemon one half, SCHED_BENCH_HEAP_MB the Hand's heap quota on the daemon.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Cron } from 'croner';
import mqtt from 'mqtt';
import { Store, SYNC } from '../../runtime/store/store.ts';
import { Grants, NO_CAPABILITIES } from '../../runtime/core/grants.ts';
import { Engine } from '../../hands/scheduling/engine.ts';
import { validateJob } from '../../hands/scheduling/jobs.ts';
import { nextTimes } from '../../hands/scheduling/triggers.ts';
import { handEngineStore } from '../../hands/scheduling/index.ts';
import type { ActionRunner, EngineClock, JobSpec, Trigger } from '../../hands/scheduling/types.ts';
import type { HandStore, HandStoreOp } from '../../hands/sdk/types.ts';
import { httpGet, memMb, median, reportHeader, sleep, startTalon, type TalonProc } from './lib.ts';

const IDLE_S = Number(process.env.SCHED_BENCH_IDLE_S ?? 30);
const WINDOW = Number(process.env.SCHED_BENCH_WINDOW ?? 1);
const JOBS = Number(process.env.SCHED_BENCH_JOBS ?? 10_000);
const f = (n: number, d = 1): string => n.toFixed(d);
const mb = (bytes: number): number => bytes / 1024 / 1024;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
}

const ZONES = [undefined, 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC'];

/** 10,000 jobs as a fleet might have them: daily times, every-n-minutes, weekdays, monthly; 10 per-second ones */
export function benchJobs(n: number, topic = 'hands/scheduler/bench'): JobSpec[] {
  const out: JobSpec[] = [];
  for (let i = 0; i < n; i++) {
    let cron: string;
    if (i < 10) cron = '* * * * * *';
    else if (i % 10 < 4) cron = `${i % 60} ${Math.floor(i / 60) % 60} ${Math.floor(i / 3600) % 24} * * *`;
    else if (i % 10 < 7) cron = `0 */${1 + (i % 30)} * * * *`;
    else if (i % 10 < 9) cron = `${i % 60} ${i % 24} * * 1-5`;
    else cron = `0 ${i % 60} ${i % 24} ${1 + (i % 28)} * *`;
    const timezone = ZONES[i % ZONES.length];
    out.push({
      id: `bench-${String(i).padStart(5, '0')}`,
      trigger: timezone ? { cron, timezone } : { cron },
      action: { publish: { topic, payload: { i } } },
      policy: { catchUp: { mode: 'none' } },
    } as JobSpec);
  }
  return out;
}

/** a HandStore over a Store's sublevel, as the kernel's hand-runner serves ctx.store */
export function levelHandStore(store: Store, name: string): HandStore {
  const scope = store.db.sublevel('hands').sublevel<string, unknown>(name, { valueEncoding: 'json' });
  return {
    get: async <T>(k: string) => (await scope.get(k)) as T | undefined,
    put: async (k, v, o) => scope.put(k, v, o?.sync ? SYNC : {}),
    del: async (k) => scope.del(k),
    async list<T>(o: { prefix?: string; limit?: number; reverse?: boolean; after?: string } = {}) {
      // as the kernel's store.list (runtime/supervisor/hand-runner.ts): a prefix, at most 1000, paging `after` a key
      const range: { gte?: string; gt?: string; lt?: string } = o.prefix
        ? { gte: o.prefix, lt: `${o.prefix}\uffff` }
        : {};
      if (o.after !== undefined) {
        if (o.reverse) range.lt = range.lt === undefined || o.after < range.lt ? o.after : range.lt;
        else if (range.gte === undefined || o.after >= range.gte) {
          delete range.gte;
          range.gt = o.after;
        }
      }
      const rows: Array<[string, T]> = [];
      const limit = Math.min(o.limit ?? 1000, 1000);
      for await (const [k, v] of scope.iterator({ ...range, limit, reverse: !!o.reverse })) rows.push([k, v as T]);
      return rows;
    },
    batch: async (ops: HandStoreOp[], o) => scope.batch(ops, o?.sync ? SYNC : {}),
  };
}

const realClock: EngineClock = {
  wall: () => Date.now(),
  mono: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, Math.min(ms, 2 ** 31 - 1)),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function newEngine(store: HandStore, actions: ActionRunner): Engine {
  const caps = structuredClone(NO_CAPABILITIES);
  caps.bus.publish = ['talon/bench/#'];
  caps.bus.subscribe = ['talon/bench/#'];
  const grants = new Grants(caps, 'talon/bench');
  const opts = {
    clock: realClock,
    store: handEngineStore(store),
    actions,
    clockSynced: () => true,
    validate: (spec: unknown, jobs: ReadonlyMap<string, JobSpec>) =>
      validateJob(spec, { grants, self: 'scheduler', deviceRoot: 'talon/bench', jobs, handExists: () => true }),
  };
  return new Engine(opts as unknown as ConstructorParameters<typeof Engine>[0]);
}

async function inProcess(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-sched-bench-'));
  const jobs = benchJobs(JOBS);
  let ran = 0;
  const actions: ActionRunner = { run: async () => void ran++ };
  try {
    const store = await Store.open(dir);
    const hs = levelHandStore(store, 'scheduler');
    let engine = newEngine(hs, actions);
    await engine.start([]);
    // warm-up: the validator's compile, croner and the time zones' formatters are made once, not per job
    const warmup = benchJobs(50).map((j) => ({ ...j, id: `warm-${j.id}` }));
    for (const j of warmup) await engine.put(j, 'api');
    for (const j of warmup) await engine.remove(j.id);
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const rss0 = process.memoryUsage().rss;
    let t = performance.now();
    for (let i = 0; i < jobs.length; i += 100)
      await Promise.all(jobs.slice(i, i + 100).map((j) => engine.put(j, 'api')));
    const putMs = performance.now() - t;
    gc();
    const heap1 = process.memoryUsage().heapUsed;
    const rss1 = process.memoryUsage().rss;
    if (engine.stats().jobs !== jobs.length) throw new Error(`the engine holds ${engine.stats().jobs} jobs`);

    // idle: only the 10 per-second jobs have work
    ran = 0;
    const cpu0 = process.cpuUsage();
    t = performance.now();
    await sleep(IDLE_S * 1000);
    const wall = performance.now() - t;
    const cpu = process.cpuUsage(cpu0);
    const share = (cpu.user + cpu.system) / 1000 / wall;
    const runsIdle = ran;

    // the same with the 10 per-second jobs paused: the 9,990 others alone
    for (const j of jobs.slice(0, 10)) await engine.pause(j.id);
    await sleep(1500);
    ran = runsIdle;
    const cpuQ0 = process.cpuUsage();
    t = performance.now();
    await sleep(Math.min(IDLE_S, 10) * 1000);
    const wallQ = performance.now() - t;
    const cpuQ = process.cpuUsage(cpuQ0);
    const shareQuiet = (cpuQ.user + cpuQ.system) / 1000 / wallQ;
    const runsQuiet = ran - runsIdle;
    for (const j of jobs.slice(0, 10)) await engine.resume(j.id);

    await engine.stop();
    // a start with the jobs stored (what a reboot costs)
    engine = newEngine(hs, actions);
    t = performance.now();
    await engine.start([]);
    const startMs = performance.now() - t;
    const loaded = engine.stats().jobs;
    await engine.stop();
    await store.close();

    // next-run computation per job
    const now = Date.now();
    const triggers = jobs.map((j) => j.trigger as Trigger);
    const warm: number[] = [];
    for (let round = 0; round < 5; round++) {
      t = performance.now();
      for (const tr of triggers) nextTimes(tr, now + round * 1000, 1);
      warm.push(((performance.now() - t) * 1000) / triggers.length);
    }
    const distinct = new Set(triggers.map((tr) => JSON.stringify(tr))).size;
    t = performance.now();
    for (const tr of triggers) {
      const c = tr as { cron: string; timezone?: string };
      // a fresh parse each time: what a job costs the first time its expression is seen
      new Cron(c.cron, { timezone: c.timezone, paused: true }).nextRun(new Date(now));
    }
    const cold = ((performance.now() - t) * 1000) / triggers.length;

    say('');
    say(
      `### The Scheduling Hand: ${JOBS.toLocaleString('en')} schedules (in process, real LevelDB, node ${process.version})`,
    );
    say('');
    say('| measure | value |');
    say('|---|---|');
    say(
      `| put ${JOBS.toLocaleString('en')} cron jobs (validated, stored synced, 100 at a time) | ${f(putMs / 1000, 2)} s (${f((putMs * 1000) / JOBS, 0)} µs per job) |`,
    );
    say(`| heap the jobs add (after gc) | ${f(mb(heap1 - heap0))} MB (${f((heap1 - heap0) / JOBS, 0)} B per job) |`);
    say(`| RSS the jobs add | ${f(mb(rss1 - rss0))} MB |`);
    say(
      `| CPU share over ${IDLE_S} s idle (${runsIdle} runs: the 10 per-second jobs, and the every-n-minutes ones at a minute's turn; each run journalled twice, synced) | ${f(share * 100, 2)} % of one core |`,
    );
    say(
      `| CPU share over ${Math.min(IDLE_S, 10)} s, the per-second ones paused (${runsQuiet} runs) | ${f(shareQuiet * 100, 3)} % of one core |`,
    );
    say(
      `| engine start with ${loaded.toLocaleString('en')} stored jobs (load, next times, timer) | ${f(startMs, 0)} ms |`,
    );
    say(
      `| next-run computation per job, croner object cached per expression (${distinct} distinct triggers) | ${f(median(warm), 2)} µs |`,
    );
    say(`| next-run computation per job, expression parsed each time | ${f(cold, 2)} µs |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** utime + stime of a process, ms (from /proc/<pid>/stat; clock ticks of 10 ms) */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function idleFigures(t: TalonProc): Promise<{ rss: number; cpu: number }> {
  await sleep(3000);
  const rss = memMb(t.proc.pid!).rss;
  const c0 = cpuMs(t.proc.pid!);
  const t0 = performance.now();
  await sleep(IDLE_S * 1000);
  return { rss, cpu: (cpuMs(t.proc.pid!) - c0) / (performance.now() - t0) };
}

/** SCHED_BENCH_HEAP_MB: the Hand's heap quota for the daemon runs (default: its manifest's) */
const HEAP_MB = process.env.SCHED_BENCH_HEAP_MB ? Number(process.env.SCHED_BENCH_HEAP_MB) : undefined;

function schedulerConfig(jobs: unknown[] = []): Record<string, unknown> {
  return {
    hands: [
      {
        name: 'scheduler',
        module: 'scheduling',
        settings: { jobs },
        ...(HEAP_MB ? { quotas: { heapMb: HEAP_MB } } : {}),
        capabilities: {
          bus: {
            publish: ['hands/+/tasks', 'hands/+/replies', 'hands/scheduler/#'],
            subscribe: ['hands/scheduler/tasks', 'hands/scheduler/replies', 'bench/#'],
          },
        },
      },
    ],
  };
}

async function ready(t: TalonProc): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    const r = await httpGet(t.httpPort, '/api/v1/schedules', { authorization: `Bearer ${t.token()}` }).catch(
      () => null,
    );
    if (r?.status === 200) return;
    if (performance.now() - t0 > 30_000) throw new Error(`the Scheduling Hand did not answer: ${r?.status} ${r?.body}`);
    await sleep(50);
  }
}

async function connect(t: TalonProc): Promise<{ client: mqtt.MqttClient; root: string }> {
  const { deviceId } = JSON.parse(readFileSync(join(t.dataDir, 'runtime.json'), 'utf8')) as { deviceId: string };
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.mqttPort}`, {
    username: 'token',
    password: t.token(),
    reconnectPeriod: 0,
  });
  return { client, root: `talon/${deviceId}` };
}

/**
 * puts the jobs over the scheduler's task inbox, `window` in flight; resolves with the time taken, or with the
 * error (a refusal, or no answer for 30 s: the Hand crashed) and how many were stored before it
 */
async function putOverBus(
  t: TalonProc,
  jobs: JobSpec[],
  window = WINDOW,
): Promise<{ ms: number; stored: number; error?: string }> {
  const { client, root } = await connect(t);
  try {
    const waiting = new Map<string, (error?: string) => void>();
    let stored = 0;
    let error: string | undefined;
    client.on('message', (_topic, payload) => {
      const m = JSON.parse(payload.toString()) as {
        id: string;
        ok: boolean;
        error?: { code: string; message: string };
      };
      if (m.ok) stored++;
      waiting.get(m.id)?.(m.ok ? undefined : `${m.error?.code}: ${m.error?.message}`);
      waiting.delete(m.id);
    });
    await client.subscribeAsync(`${root}/hands/bench/replies`);
    const t0 = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length && error === undefined) {
        const job = jobs[next]!;
        const id = `put-${next++}`;
        const done = new Promise<string | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(`no answer to ${id} within 30 s`), 30_000);
          waiting.set(id, (e) => {
            clearTimeout(timer);
            resolve(e);
          });
        });
        await client.publishAsync(
          `${root}/hands/scheduler/tasks`,
          JSON.stringify({ id, replyTo: 'hands/bench/replies', task: { op: 'put', job } }),
          { qos: 1 },
        );
        error ??= await done;
      }
    };
    await Promise.all(Array.from({ length: window }, worker));
    return { ms: performance.now() - t0, stored, ...(error === undefined ? {} : { error }) };
  } finally {
    await client.endAsync();
  }
}

/** the Hand's state and last error, from /api/v1/hands */
async function handState(t: TalonProc): Promise<string> {
  const r = await httpGet(t.httpPort, '/api/v1/hands', { authorization: `Bearer ${t.token()}` });
  const h = (
    JSON.parse(r.body) as { hands: Array<{ name: string; state: string; lastError?: { message: string } }> }
  ).hands.find((x) => x.name === 'scheduler');
  return h ? `${h.state}${h.lastError ? ` (${h.lastError.message})` : ''}` : 'not found';
}

/** event → the action's publish, `n` events one after another; ms each */
async function triggerLatency(t: TalonProc, n = 200): Promise<number[]> {
  const put = await fetch(`http://127.0.0.1:${t.httpPort}/api/v1/schedules/latency`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${t.token()}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      id: 'latency',
      trigger: { event: { topic: 'bench/in/#', where: [{ path: 'kind', op: 'eq', value: 'go' }] } },
      action: { publish: { topic: 'hands/scheduler/latency-out', payload: { run: '{{runId}}' }, qos: 0 } },
      policy: { overlap: 'allow' },
    }),
  });
  if (put.status >= 300) throw new Error(`PUT latency job: ${put.status} ${await put.text()}`);
  const { client, root } = await connect(t);
  try {
    let arrived: (() => void) | null = null;
    client.on('message', () => arrived?.());
    await client.subscribeAsync(`${root}/hands/scheduler/latency-out`);
    const once = async (i: number): Promise<number> => {
      const got = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`event ${i}: no action within 10 s`)), 10_000);
        arrived = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      const t0 = performance.now();
      await client.publishAsync(`${root}/bench/in/x`, JSON.stringify({ kind: 'go', i }), { qos: 0 });
      await got;
      return performance.now() - t0;
    };
    // the subscription is made when the job is put: wait for the first answer, then warm up
    for (let i = 0; ; i++) {
      try {
        await once(-1);
        break;
      } catch (err) {
        if (i > 5) throw err;
      }
    }
    for (let i = 0; i < 20; i++) await once(-1);
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      ms.push(await once(i));
      await sleep(5);
    }
    return ms;
  } finally {
    await client.endAsync();
  }
}

async function onDaemon(say: (line: string) => void): Promise<void> {
  const empty = await startTalon(schedulerConfig());
  let idleEmpty: { rss: number; cpu: number };
  let latEmpty: number[];
  try {
    await ready(empty);
    idleEmpty = await idleFigures(empty);
    latEmpty = await triggerLatency(empty);
  } finally {
    await empty.stop();
    rmSync(empty.dataDir, { recursive: true, force: true });
  }
  const full = await startTalon(schedulerConfig());
  let idleFull: { rss: number; cpu: number } | undefined;
  let latFull: number[] | undefined;
  let put: { ms: number; stored: number; error?: string };
  let jobsHeld = 0;
  let failure = '';
  try {
    await ready(full);
    put = await putOverBus(full, benchJobs(JOBS), WINDOW);
    if (put.error)
      failure = `${put.error}; ${put.stored.toLocaleString('en')} stored before; the Hand: ${await handState(full)}`;
    else {
      const list = await httpGet(full.httpPort, '/api/v1/schedules', { authorization: `Bearer ${full.token()}` });
      jobsHeld = (JSON.parse(list.body) as { jobs: unknown[] }).jobs.length;
      idleFull = await idleFigures(full);
      latFull = await triggerLatency(full);
    }
  } finally {
    await full.stop();
    rmSync(full.dataDir, { recursive: true, force: true });
  }
  const na = '—';
  const quota = HEAP_MB ? `, the Hand's heap quota ${HEAP_MB} MB by its config` : '';
  say('');
  say(
    failure
      ? `On the daemon (\`node dist/talon.cjs run\`, no drivers): putting ${JOBS.toLocaleString('en')} jobs over the Hand's task inbox (${WINDOW} in flight) FAILED${quota}: ${failure}.`
      : `On the daemon (\`node dist/talon.cjs run\`, no drivers${quota}; ${jobsHeld.toLocaleString('en')} jobs put over the Hand's task inbox, ${WINDOW} in flight: ${f(put.ms / 1000, 1)} s, ${f(JOBS / (put.ms / 1000), 0)} jobs/s):`,
  );
  say('');
  say(`| measure | no job | with ${JOBS.toLocaleString('en')} jobs | delta |`);
  say('|---|---|---|---|');
  say(
    `| daemon RSS (the Scheduling Hand's worker included) | ${f(idleEmpty.rss)} MB | ${idleFull ? `${f(idleFull.rss)} MB` : na} | ${idleFull ? `+${f(idleFull.rss - idleEmpty.rss)} MB` : na} |`,
  );
  say(
    `| daemon CPU over ${IDLE_S} s idle (10 of the jobs every second, others at a minute's turn) | ${f(idleEmpty.cpu * 100, 2)} % | ${idleFull ? `${f(idleFull.cpu * 100, 2)} %` : na} | ${idleFull ? `+${f((idleFull.cpu - idleEmpty.cpu) * 100, 2)} %` : na} |`,
  );
  say(
    `| bus event → the action's publish arriving (${latEmpty.length} events one after another), p50 / p95 | ${f(pct(latEmpty, 0.5), 2)} / ${f(pct(latEmpty, 0.95), 2)} ms | ${latFull ? `${f(pct(latFull, 0.5), 2)} / ${f(pct(latFull, 0.95), 2)} ms` : na} | |`,
  );
}

export async function schedulingRows(say: (line: string) => void): Promise<void> {
  const only = process.env.SCHED_BENCH_ONLY;
  if (only !== 'daemon') await inProcess(say);
  if (only !== 'process') await onDaemon(say);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const say = (line: string): void => console.log(line);
  if (!process.env.SCHED_BENCH_NO_HEADER) await reportHeader(say);
  await schedulingRows(say);
}
