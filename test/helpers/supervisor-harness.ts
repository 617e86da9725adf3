/**
 * A real kernel slice for supervisor tests: LevelDB in a temp folder, the embedded aedes
 * bus on 127.0.0.1:0, the signed audit chain, and a Supervisor over bundled fixture Hands.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../runtime/store/store.ts';
import { EmbeddedBus } from '../../runtime/bus/embedded.ts';
import { AuditChain } from '../../runtime/audit/chain.ts';
import type { AuditEntry } from '../../runtime/audit/format.ts';
import { DeviceKey } from '../../runtime/secrets/device-key.ts';
import type { BusMessage } from '../../runtime/bus/types.ts';
import type { HandConfig, SupervisorConfig } from '../../runtime/config/types.ts';
import { Supervisor } from '../../runtime/supervisor/supervisor.ts';
import type { RunnerLimits } from '../../runtime/supervisor/hand-runner.ts';
import type { HandStatus } from '../../runtime/supervisor/types.ts';
import { fixture, workerEntry } from './fixtures.ts';

export const DEVICE = 'dev1';
export const ROOT = `talon/${DEVICE}`;

export const testConfig = (over: Partial<SupervisorConfig> = {}): SupervisorConfig => ({
  heartbeatMs: 50,
  hangTimeoutMs: 1000,
  stopTimeoutMs: 2000,
  startTimeoutMs: 5000,
  backoff: { initialMs: 50, maxMs: 400, factor: 2, jitter: 0.1 },
  crashLoop: { restarts: 3, windowMs: 20000 },
  ...over,
});

export interface HandSpec extends Partial<Omit<HandConfig, 'module'>> {
  name: string;
  /** fixture name under test/fixtures/hands, or an absolute module path used as is */
  fixture: string;
}

export interface Harness {
  sup: Supervisor;
  bus: EmbeddedBus;
  store: Store;
  audit: AuditChain;
  /** the device key the audit chain signs with (to reopen the chain after the harness stops) */
  key: DeviceKey;
  dir: string;
  /** collect every message on an absolute topic filter */
  collect(filter: string): Promise<BusMessage[]>;
  auditEntries(): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export async function startHarness(
  hands: HandSpec[],
  opts: {
    config?: Partial<SupervisorConfig>;
    limits?: Partial<RunnerLimits>;
    start?: boolean;
    register?: (sup: Supervisor, parts: { audit: AuditChain }) => void;
    /** the worker runtime: a fixture name (bundled like the Hands) instead of runtime/worker/worker.ts */
    workerFixture?: string;
  } = {},
): Promise<Harness> {
  // bundle first: nothing to clean up if a fixture does not build
  const entry = opts.workerFixture ? await fixture(opts.workerFixture) : await workerEntry();
  const modules = new Map<string, string>();
  for (const h of hands) modules.set(h.fixture, h.fixture.startsWith('/') ? h.fixture : await fixture(h.fixture));
  const dir = mkdtempSync(join(tmpdir(), 'talon-sup-'));
  const store = await Store.open(dir);
  const key = DeviceKey.generate();
  const audit = new AuditChain(store, key);
  await audit.start();
  const bus = new EmbeddedBus(
    { embedded: { enabled: true, listen: { host: '127.0.0.1', port: 0 } }, maxPayloadBytes: 256 * 1024 },
    DEVICE,
  );
  await bus.start();
  const configs: HandConfig[] = hands.map(({ fixture: f, ...h }) => ({ enabled: true, settings: {}, ...h, module: f }));
  const sup = new Supervisor({
    config: testConfig(opts.config),
    hands: configs,
    bus,
    store,
    audit,
    deviceId: DEVICE,
    workerEntry: entry,
    resolveModule: (m) => modules.get(m) ?? m,
    limits: opts.limits,
  });
  opts.register?.(sup, { audit });
  const unsubs: Array<() => Promise<void>> = [];
  const h: Harness = {
    sup,
    bus,
    store,
    audit,
    key,
    dir,
    async collect(filter) {
      const got: BusMessage[] = [];
      unsubs.push(
        await bus.subscribe(filter, (m) => {
          got.push(m);
        }),
      );
      return got;
    },
    async auditEntries() {
      await audit.flush();
      const out: AuditEntry[] = [];
      for await (const e of audit.entries()) out.push(e);
      return out;
    },
    async close() {
      await sup.stop(1000);
      for (const u of unsubs) await u();
      await audit.stop();
      await bus.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (opts.start !== false) await sup.start();
  return h;
}

/** Poll `cond` until it holds; a bounded wait, not a timing assertion. */
export async function waitFor<T>(
  what: string,
  cond: () => T | undefined | false | null,
  timeoutMs = 10000,
  everyMs = 20,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Wait for a Hand to reach a state; on timeout the error shows its last status. */
export async function waitState(
  sup: Supervisor,
  name: string,
  state: HandStatus['state'] | ((s: HandStatus) => boolean),
  timeoutMs = 10000,
): Promise<HandStatus> {
  const ok = typeof state === 'function' ? state : (s: HandStatus) => s.state === state;
  try {
    return await waitFor(
      `Hand "${name}" to reach ${typeof state === 'function' ? 'the expected status' : state}`,
      () => {
        const s = sup.status(name);
        return ok(s) ? s : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(sup.status(name))}`);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
