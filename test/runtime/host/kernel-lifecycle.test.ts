/**
 * The real kernel's start and stop through one lifecycle (runtime/host/kernel.ts): a failure
 * injected at every step of Kernel.start (KernelOptions.wrapSubsystem) stops what had started,
 * in reverse, and leaves nothing running — the HTTP and MQTT ports closed, no worker thread,
 * the LevelDB store closed (it opens again), no timer or handle keeping the process alive —
 * and nothing on disk that says Talon runs (runtime.json, talon.pid). Real failures (ports in
 * use) too; a stop that fails in one part still stops the others; a Hand whose stop hangs is
 * ended within the supervisor's deadline.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { Kernel, RUNTIME_FILE, type KernelOptions } from '../../../runtime/host/kernel.ts';
import type { Subsystem } from '../../../runtime/host/lifecycle.ts';
import { validateConfig } from '../../../runtime/config/load.ts';
import { createLogger } from '../../../runtime/log.ts';
import { Store } from '../../../runtime/store/store.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { fixture, workerEntry } from '../../helpers/fixtures.ts';
import { freePort } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';

/** the order the kernel's header comment documents; a new part is added there and here */
const ORDER = [
  'store',
  'config',
  'bus',
  'audit',
  'sensors',
  'fetch',
  'llm',
  'supervisor',
  'tools',
  'chat',
  'recorder',
  'stats',
  'api',
  'http',
  'mqtt-commands',
  'home-assistant',
  'runtime-file',
  'state',
  'announce',
  'hands',
  'provisioning',
];

let entry: string;
let idle: string;
const logLines: string[] = [];
const logger = createLogger('warn', (s) => void logLines.push(s));

// every worker thread this process makes, until it exits; the test's own tooling holds one (tsx's
// module hooks), so what counts is a worker that was not there after the warm-up start and stop
const workers = new Set<Worker>();
let before0 = new Set<Worker>();
const kernelWorkers = (): number => [...workers].filter((w) => !before0.has(w)).length;
process.on('worker', (w: Worker) => {
  workers.add(w);
  w.once('exit', () => workers.delete(w));
});

before(async () => {
  entry = await workerEntry();
  idle = await fixture('idle');
});

interface Setup {
  dataDir: string;
  httpPort: number;
  mqttPort: number;
  opts: KernelOptions;
}

/** every optional part on: drivers, an LLM provider, Home Assistant, provisioning (its broker unreachable), a Hand */
async function setup(
  dataDir = mkdtempSync(join(tmpdir(), 'talon-life-')),
  hands: Array<{ name: string; module: string }> = [{ name: 'idle', module: idle }],
): Promise<Setup> {
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const config = validateConfig({
    dataDir,
    http: { host: '127.0.0.1', port: httpPort },
    bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: mqttPort } } },
    supervisor: { stopTimeoutMs: 1000 },
    hands,
    drivers: [{ type: 'sim', name: 'lab', sensors: [{ id: 'lab.t', pattern: 'temperature' }] }],
    homeAssistant: { enabled: true },
    llm: { providers: [{ name: 'nowhere', kind: 'ollama', baseUrl: 'http://127.0.0.1:9', model: 'none' }] },
    provisioning: {
      fleet: 'lab',
      anchor: randomBytes(32).toString('base64'),
      bootstrap: { url: 'mqtt://127.0.0.1:9', username: 'claim', password: 'x'.repeat(24) },
    },
  });
  return { dataDir, httpPort, mqttPort, opts: { config, source: 'test', logger, workerEntry: entry } };
}

/** wraps every subsystem: records starts and stops; `failAt` throws before that one starts, `failStop` makes that one's stop throw after it stopped */
function tracer(failAt?: string, failStop?: string) {
  const started: string[] = [];
  const stopped: string[] = [];
  const wrap = (s: Subsystem): Subsystem => ({
    name: s.name,
    start: async () => {
      if (s.name === failAt) throw new TalonError('INTERNAL', `injected failure at ${s.name}`);
      await s.start();
      started.push(s.name);
    },
    stop: async () => {
      stopped.push(s.name);
      await s.stop();
      if (s.name === failStop) throw new TalonError('INTERNAL', `injected stop failure at ${s.name}`);
    },
    get stopTimeoutMs() {
      return s.stopTimeoutMs;
    },
  });
  return { started, stopped, wrap };
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      sock.destroy();
      resolve(false);
    });
  });
}

/** the kinds of handle that keep the process alive, with counts (file system requests come and go) */
function resources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (!r.startsWith('FS')) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

function grown(base: Map<string, number>): string[] {
  return [...resources()]
    .filter(([k, n]) => n > (base.get(k) ?? 0))
    .map(([k, n]) => `${k}: ${base.get(k) ?? 0} → ${n}`);
}

/** what "nothing left" means after a start that failed or a stop */
async function assertNothingLeft(s: Setup, base: Map<string, number>, what: string): Promise<void> {
  assert.equal(await connects(s.httpPort), false, `${what}: the HTTP port is closed`);
  assert.equal(await connects(s.mqttPort), false, `${what}: the MQTT port is closed`);
  // a Hand's worker is gone when the stop resolves; a manifest read it gave up on ends a moment later
  await waitFor(() => kernelWorkers() === 0, `${what}: no worker thread left`, 2000);
  assert.equal(existsSync(join(s.dataDir, RUNTIME_FILE)), false, `${what}: no runtime.json`);
  assert.equal(existsSync(join(s.dataDir, 'talon.pid')), false, `${what}: no talon.pid`);
  const store = await Store.open(s.dataDir); // throws STORE_LOCKED when the kernel's store is still open
  await store.close();
  // sockets being closed go away within a tick or two; a timer or a listener left behind does not
  try {
    await waitFor(() => grown(base).length === 0, 'the handles to go', 2000);
  } catch {
    assert.deepEqual(grown(base), [], `${what}: no handle or timer keeps the process alive`);
  }
}

/** the subsystems a full start runs, and the resources of the process with none running */
let names: string[] = [];
let baseline: Map<string, number>;

test('a full start runs every subsystem in the documented order; stop runs them in reverse and leaves nothing', async () => {
  // a first start and stop warms the caches (bundles, lazy imports, LevelDB's thread pool)
  const warm = await setup();
  await (await Kernel.start(warm.opts)).stop();
  await new Promise((resolve) => setTimeout(resolve, 500));
  before0 = new Set(workers);
  baseline = resources();

  const s = await setup();
  const t = tracer();
  const kernel = await Kernel.start({ ...s.opts, wrapSubsystem: t.wrap });
  names = [...t.started];
  assert.deepEqual(names, ORDER);
  assert.equal(await connects(s.httpPort), true);
  assert.equal(await connects(s.mqttPort), true);
  assert.ok(existsSync(join(s.dataDir, RUNTIME_FILE)));
  assert.ok(existsSync(join(s.dataDir, 'talon.pid')));
  await waitFor(() => kernel.supervisor.status('idle').state === 'running', 'the idle Hand to run');
  assert.ok(kernelWorkers() > 0, 'the Hand runs in a worker thread');
  assert.ok(kernel.provisioning, 'the provisioning agent is up');
  assert.ok(kernel.homeAssistant, 'Home Assistant discovery is up');

  await kernel.stop();
  assert.deepEqual(t.stopped, [...ORDER].reverse());
  await kernel.stop(); // once
  assert.equal(t.stopped.length, ORDER.length);
  await assertNothingLeft(s, baseline, 'after a stop');

  // the audit log says so, kernel.stop the last entry (the shutdown checkpoint went out before the bus stopped)
  const store = await Store.open(s.dataDir);
  try {
    const entries: Array<{ seq: number; action: string }> = [];
    for await (const [, v] of store.sublevel<{ seq: number; action: string }>('auditlog').iterator()) entries.push(v);
    assert.ok(entries.some((e) => e.action === 'kernel.start'));
    assert.equal(entries.at(-1)?.action, 'kernel.stop');
    const cps: Array<{ seq: number }> = [];
    for await (const [, v] of store.sublevel<{ seq: number }>('auditcp').iterator()) cps.push(v);
    assert.equal(cps.at(-1)?.seq, entries.at(-1)?.seq, 'the shutdown checkpoint covers kernel.stop');
  } finally {
    await store.close();
  }
});

test('a failure at every step of the start: the steps before it stop in reverse, nothing left running, nothing on disk says Talon runs', async () => {
  assert.ok(names.length === ORDER.length, 'the full start ran first');
  // one data folder for all: each failed start must leave it usable for the next
  const dataDir = mkdtempSync(join(tmpdir(), 'talon-life-fail-'));
  for (const [k, name] of names.entries()) {
    const s = await setup(dataDir);
    // a runtime.json left by a Talon that died is stale once the store is ours
    if (k > 0)
      writeFileSync(
        join(dataDir, RUNTIME_FILE),
        JSON.stringify({ pid: 1, http: { host: '127.0.0.1', port: s.httpPort } }),
      );
    const t = tracer(name);
    await assert.rejects(
      Kernel.start({ ...s.opts, wrapSubsystem: t.wrap }),
      (err: unknown) => err instanceof TalonError && err.message === `injected failure at ${name}`,
      name,
    );
    assert.deepEqual(t.started, names.slice(0, k), `${name}: the steps before it started`);
    assert.deepEqual(t.stopped, names.slice(0, k).reverse(), `${name}: and were stopped in reverse`);
    await assertNothingLeft(s, baseline, `failure at ${name}`);
  }
});

test('real failures: the HTTP port or the MQTT port in use', async () => {
  for (const which of ['http', 'mqtt'] as const) {
    const s = await setup();
    const port = which === 'http' ? s.httpPort : s.mqttPort;
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const t = tracer();
      await assert.rejects(
        Kernel.start({ ...s.opts, wrapSubsystem: t.wrap }),
        (err: unknown) => err instanceof TalonError && err.code === 'PORT_IN_USE',
      );
      assert.deepEqual(t.stopped, [...t.started].reverse());
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
    await assertNothingLeft(s, baseline, `${which} port in use`);
  }
});

test('a part whose stop fails is logged; the others still stop', async () => {
  for (const failStop of ['http', 'hands', 'bus']) {
    const s = await setup();
    const t = tracer(undefined, failStop);
    const kernel = await Kernel.start({ ...s.opts, wrapSubsystem: t.wrap });
    const before = logLines.length;
    await kernel.stop();
    assert.deepEqual(t.stopped, [...ORDER].reverse(), failStop);
    assert.ok(
      logLines.slice(before).some((l) => l.includes(`stopping ${failStop}: injected stop failure at ${failStop}`)),
      `${failStop}: the failure is logged`,
    );
    await assertNothingLeft(s, baseline, `${failStop}'s stop failed`);
  }
});

test("a Hand whose stop hangs is terminated within the supervisor's deadline", async () => {
  const s = await setup(undefined, [{ name: 'stuck', module: await fixture('stuck-stop') }]);
  const kernel = await Kernel.start(s.opts);
  await waitFor(() => kernel.supervisor.status('stuck').state === 'running', 'the stuck Hand to run');
  const t0 = Date.now();
  await kernel.stop();
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 5000, `stopTimeoutMs is 1000: the stop took ${took} ms`);
  await assertNothingLeft(s, baseline, 'a stuck Hand');
});

test('a stop while a Hand module is still loading ends the load: no worker and no timer outlive the stop', async () => {
  // a module whose top level takes 5 s; its manifest is read in a throwaway worker first
  const dir = mkdtempSync(join(tmpdir(), 'talon-slow-'));
  const slow = join(dir, 'slow-load.cjs');
  writeFileSync(
    slow,
    `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000);
module.exports = { default: { manifest: { id: 'slow-load', version: '1.0.0', description: 'loads slowly', capabilities: {}, quotas: {} }, start() {} } };
`,
  );
  const s = await setup(undefined, [{ name: 'slow', module: slow }]);
  const kernel = await Kernel.start(s.opts);
  await waitFor(() => kernelWorkers() > 0, 'the manifest read to begin');
  const t0 = Date.now();
  await kernel.stop();
  assert.ok(Date.now() - t0 < 3000, 'the stop does not wait for the module to load');
  await waitFor(() => kernelWorkers() === 0, 'the loading worker to end', 1000);
  await assertNothingLeft(s, baseline, 'a Hand still loading');
});
