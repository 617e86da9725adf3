/**
 * `npm run bench -- communication` (or `node --expose-gc --import tsx test/bench/communication.ts`): what the
 * Communication Hand costs per message and with a backlog.
 *
 * In process, the Hand (hands/communication/index.ts) on a real LevelDB (a Store's hands/<name> sublevel, as the
 * kernel gives a Hand), its channel a JSON webhook to a local HTTP sink in the same process (ctx.fetch is the global
 * fetch here: the kernel's fetch and audit are not in the figure):
 * 1. messages per second through routing (a rule by priority and tags, dedup on) into the durable outbox and out to
 *    the sink, COMMS_BENCH_N messages (default 5000) with COMMS_BENCH_WINDOW (default 64) notify() calls in flight;
 * 2. memory with 10,000 queued: the sink down (connection refused, retries backing off), 10,000 notifications in,
 *    the heap and RSS they add after a GC, and a restart (a new Hand over the same store) with them queued.
 * On the daemon (dist/talon.cjs), the whole path: a client publishes COMMS_BENCH_DAEMON_N (default 2000)
 * notifications on talon/<id>/notify/normal, the Hand routes them, the kernel's fetch posts them to the sink, each
 * one audited (signed, in LevelDB): messages per second until the sink has them all; the Hand's worker heap after.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../runtime/store/store.ts';
import { NO_CAPABILITIES } from '../../runtime/core/grants.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { HandContext, HandLog } from '../../hands/sdk/types.ts';
import { CommunicationHand } from '../../hands/communication/index.ts';
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { levelHandStore } from './scheduling.ts';
import { handsRunning, httpGet, reportHeader, sleep, startTalon } from './lib.ts';
import { pathToFileURL } from 'node:url';

const N = Number(process.env.COMMS_BENCH_N ?? 5000);
const WINDOW = Number(process.env.COMMS_BENCH_WINDOW ?? 64);
const QUEUED = Number(process.env.COMMS_BENCH_QUEUED ?? 10_000);
const DAEMON_N = Number(process.env.COMMS_BENCH_DAEMON_N ?? 2000);
const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  g?.();
  g?.();
}

function benchCtx(store: Store, settings: Record<string, unknown>, ac: AbortController): HandContext {
  const log = ((_l: string, _m: string) => {}) as unknown as HandLog;
  for (const l of ['debug', 'info', 'warn', 'error'] as const)
    (log as unknown as Record<string, unknown>)[l] = () => {};
  const timers = new Set<NodeJS.Timeout>();
  ac.signal.addEventListener('abort', () => {
    for (const t of timers) clearTimeout(t);
  });
  const caps = structuredClone(NO_CAPABILITIES);
  return {
    name: 'comms',
    deviceId: 'bench',
    settings,
    grants: caps,
    signal: ac.signal,
    log,
    bus: { publish() {}, subscribe: async () => async () => {} },
    store: levelHandStore(store, 'comms'),
    audit: async () => {},
    timers: {
      after(ms, fn) {
        const t = setTimeout(() => {
          timers.delete(t);
          void fn();
        }, ms);
        timers.add(t);
        return () => {
          clearTimeout(t);
          timers.delete(t);
        };
      },
      every(ms, fn) {
        const t = setInterval(() => void fn(), ms);
        timers.add(t);
        return () => clearInterval(t);
      },
    },
    call: async () => {
      throw new TalonError('NOT_FOUND', 'no kernel in the bench');
    },
    fetch: ((input: string | URL | { url: string }, init?: RequestInit) =>
      fetch(
        typeof input === 'object' && 'url' in input && !(input instanceof URL) ? input.url : input,
        init,
      )) as HandContext['fetch'],
    llm: { chat: async () => Promise.reject(new Error('no llm')) },
    tools: { list: async () => [], call: async () => Promise.reject(new Error('no tools')) },
    agent: { run: async () => Promise.reject(new Error('no agent')) },
  } as HandContext;
}

function settingsFor(port: number): Record<string, unknown> {
  return {
    channels: { sink: `json://127.0.0.1:${port}/sink` },
    rules: [
      { name: 'ops', match: { priority: 'normal+', tags: ['bench'] }, to: ['sink'] },
      { name: 'rest', to: ['sink'] },
    ],
    escalation: { scheduler: null },
  };
}

export async function communicationRows(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-comms-bench-'));
  let received = 0;
  let onReceived: (() => void) | undefined;
  const sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      onReceived?.();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const port = (sink.address() as { port: number }).port;
  const store = await Store.open(dir);
  say('');
  say('### Communication Hand (in process, real LevelDB, HTTP sink)');
  say('');
  say('| what | figure |');
  say('|---|---|');
  try {
    // 1. throughput
    {
      const ac = new AbortController();
      const hand = new CommunicationHand(benchCtx(store, settingsFor(port), ac));
      await hand.start();
      // a warm-up, then the measured run
      const done = (want: number) =>
        new Promise<void>((resolve) => {
          if (received >= want) resolve();
          else onReceived = () => received >= want && resolve();
        });
      const run = async (n: number, tag: string): Promise<number> => {
        const start = received;
        const t0 = performance.now();
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < n) {
            const i = next++;
            await hand.notify({ text: `message ${tag} ${i}`, priority: 'normal', tags: ['bench'] }, 'bench');
          }
        };
        await Promise.all(Array.from({ length: WINDOW }, worker));
        await done(start + n);
        return performance.now() - t0;
      };
      await run(200, 'warm');
      const ms = await run(N, 'run');
      say(
        `| notify → rule → outbox (synced) → HTTP sink, ${N} messages, ${WINDOW} in flight | ${Math.round((N / ms) * 1000)} msg/s |`,
      );
      ac.abort();
      await hand.stop();
    }
    // 2. a backlog of 10,000 with the sink down
    {
      const closed = await new Promise<number>((resolve) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      const ac = new AbortController();
      gc();
      const heap0 = process.memoryUsage().heapUsed;
      const rss0 = process.memoryUsage().rss;
      const hand = new CommunicationHand(benchCtx(store, { ...settingsFor(closed), dedupWindowMs: 0 }, ac));
      await hand.start();
      gc();
      const heapStarted = process.memoryUsage().heapUsed;
      const t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: WINDOW }, async () => {
          while (next < QUEUED) {
            const i = next++;
            await hand.notify({ text: `queued ${i}`, priority: 'normal', tags: ['bench'] }, 'bench');
          }
        }),
      );
      const enqMs = performance.now() - t0;
      gc();
      const heap1 = process.memoryUsage().heapUsed;
      const rss1 = process.memoryUsage().rss;
      const queued = hand.outbox.stats().queued;
      say(
        `| ${QUEUED} notifications queued with the sink down (enqueue rate) | ${Math.round((QUEUED / enqMs) * 1000)} msg/s |`,
      );
      say(`| queued in the outbox after it | ${queued} |`);
      say(`| heap of the Hand with none queued (after start, GC) | ${mb(heapStarted - heap0)} MB |`);
      say(
        `| heap added by ${queued} queued messages (GC) | ${mb(heap1 - heapStarted)} MB (${Math.round((heap1 - heapStarted) / Math.max(1, queued))} B each) |`,
      );
      say(`| process RSS added (start + backlog) | ${mb(rss1 - rss0)} MB |`);
      ac.abort();
      await hand.stop();
      const ac2 = new AbortController();
      const t1 = performance.now();
      const again = new CommunicationHand(benchCtx(store, { ...settingsFor(closed), dedupWindowMs: 0 }, ac2));
      await again.start();
      say(
        `| a restart with ${again.outbox.stats().queued} queued: the Hand's start | ${Math.round(performance.now() - t1)} ms |`,
      );
      ac2.abort();
      await again.stop();
    }
  } finally {
    await store.close();
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** the whole path on the daemon: MQTT in, rules, outbox, the kernel's fetch out, audit */
async function onDaemon(say: (line: string) => void): Promise<void> {
  let received = 0;
  const sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const port = (sink.address() as { port: number }).port;
  const t = await startTalon({
    hands: [
      {
        name: 'comms',
        module: 'communication',
        capabilities: { network: ['127.0.0.1'] },
        settings: { ...settingsFor(port), dedupWindowMs: 0 },
      },
    ],
  });
  try {
    await handsRunning(t, 1);
    const { deviceId } = JSON.parse(readFileSync(join(t.dataDir, 'runtime.json'), 'utf8')) as { deviceId: string };
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.mqttPort}`, {
      username: 'token',
      password: t.token(),
      reconnectPeriod: 0,
    });
    const topic = `talon/${deviceId}/notify/normal`;
    // the Hand's subscription is up once a first message goes through
    const t00 = performance.now();
    while (received === 0 && performance.now() - t00 < 20_000) {
      await client.publishAsync(topic, JSON.stringify({ text: `warm ${performance.now()}`, tags: ['bench'] }), {
        qos: 1,
      });
      await sleep(200);
    }
    await sleep(500);
    const start = received;
    const t0 = performance.now();
    for (let i = 0; i < DAEMON_N; i++)
      await client.publishAsync(topic, JSON.stringify({ text: `daemon ${i}`, tags: ['bench'] }), { qos: 1 });
    while (received - start < DAEMON_N && performance.now() - t0 < 300_000) await sleep(20);
    const ms = performance.now() - t0;
    const got = received - start;
    say(
      `| on the daemon: MQTT notify/normal → rule → outbox → kernel fetch → HTTP sink, audited, ${DAEMON_N} messages | ${Math.round((got / ms) * 1000)} msg/s${got < DAEMON_N ? ` (only ${got} arrived)` : ''} |`,
    );
    await client.endAsync();
    const m = await httpGet(t.httpPort, '/metrics', { authorization: `Bearer ${t.token()}` });
    const heap = /talon_hand_heap_used_bytes\{[^}]*hand="comms"\} ([\d.e+]+)/.exec(m.body)?.[1];
    if (heap) say(`| on the daemon: the comms Hand's worker heap after it | ${mb(Number(heap))} MB |`);
  } finally {
    await t.stop();
    sink.close();
    rmSync(t.dataDir, { recursive: true, force: true });
  }
}

export async function communicationAll(say: (line: string) => void): Promise<void> {
  await communicationRows(say);
  if (process.env.COMMS_BENCH_ONLY !== 'process') await onDaemon(say);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const say = (line: string): void => console.log(line);
  if (!process.env.SCHED_BENCH_NO_HEADER) await reportHeader(say);
  await communicationAll(say);
}
