/**
 * The driver contract: one node:test suite every Driver implementation must pass (the way
 * MQTT.js runs `abstract_client.ts` over every transport). A driver's own test file calls
 *
 *   driverContract('sim', async () => ({ driver, cleanup, faults, push }))
 *
 * and gets these tests registered under `describe('driver contract: <name>')`. `make` is
 * called once per test, so every test starts from a fresh, not yet started driver.
 *
 * What a driver must do (besides the Driver interface in drivers/types.ts):
 * - start()/stop() are idempotent, stop() without start() is fine, a stopped driver can be
 *   started again, and stop() leaves no active handles (timers, fds, watchers) behind;
 * - sensor and actuator ids match SENSOR_ID and are unique within the driver;
 * - read() of a polled sensor answers a Reading of the declared kind (a finite number when
 *   kind is 'number'); a pushed sensor answers its latest value or SENSOR_UNAVAILABLE;
 * - read('<unknown>') → SENSOR_NOT_FOUND, write('<unknown>') → ACTUATOR_NOT_FOUND, and
 *   read() after stop() → SENSOR_UNAVAILABLE;
 * - health() is `{ ok: boolean, error?: {code, message}, counters: {name: finite number} }`
 *   with at least the counters `reads` (successful reads) and `errors` (failed reads of a
 *   known sensor, whatever the code);
 * - a failed read leaves health().ok false with that error until the failing sensor reads
 *   well again ("never a false all good"); it never crashes the driver.
 *
 * Optional hooks from `make` switch on more checks:
 * - `faults`: make one polled number sensor misbehave: throw, answer NaN, answer text, or
 *   never answer. Expected codes: throw/nan/text → SENSOR_FAULT, timeout → SENSOR_TIMEOUT
 *   (configure the driver under test with a short read timeout, well under 5 s).
 * - `push`: make the driver deliver at least one pushed reading through onReading() (a
 *   serial line, a GPIO edge); enables the subscribe/unsubscribe delivery test.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Driver, Reading } from '../../drivers/types.ts';
import { TalonError, type ErrorCode } from '../../runtime/core/errors.ts';

export const SENSOR_ID = /^[a-z0-9][a-z0-9._-]*$/;

export type FaultKind = 'throw' | 'nan' | 'text' | 'timeout';

export interface FaultHooks {
  /** a polled, number-kind sensor of the driver whose reads the hooks disturb */
  sensor: string;
  /** from now on, reads of `sensor` fail this way (until clear()) */
  inject(kind: FaultKind): void | Promise<void>;
  /** reads of `sensor` succeed again */
  clear(): void | Promise<void>;
  /** the kinds this driver can simulate; all four when omitted */
  kinds?: FaultKind[];
}

export interface DriverUnderTest {
  driver: Driver;
  /** frees what make() set up (temp dirs, ptys, fake servers); called after stop() */
  cleanup(): Promise<void>;
  faults?: FaultHooks;
  /** makes the (started) driver emit at least one reading through onReading() */
  push?: () => Promise<void>;
}

export const FAULT_CODE: Record<FaultKind, ErrorCode> = {
  throw: 'SENSOR_FAULT',
  nan: 'SENSOR_FAULT',
  text: 'SENSOR_FAULT',
  timeout: 'SENSOR_TIMEOUT',
};

/** the longest any single contract step may take before the test fails */
const BOUND_MS = 5_000;

/** Rejects if `p` does not settle within `ms` (a ceiling, not a timing assertion). */
export async function bounded<T>(p: Promise<T>, what: string, ms = BOUND_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`contract: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts that `p` rejects with a TalonError of `code`; returns it. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode, what: string): Promise<TalonError> {
  let err: unknown;
  try {
    await bounded(p, what);
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `${what}: expected ${code}, but it succeeded`);
  assert.ok(err instanceof TalonError, `${what}: expected a TalonError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, `${what}: expected ${code}, got ${err.code}: ${err.message}`);
  assert.ok(err.message.length > 0, `${what}: the error has a message`);
  return err;
}

function checkReading(r: Reading, id: string, kind: 'number' | 'boolean' | 'string'): void {
  assert.equal(typeof r, 'object');
  assert.equal(r.sensor, id, 'reading.sensor is the sensor id');
  assert.equal(typeof r.ts, 'number');
  assert.ok(Number.isFinite(r.ts) && r.ts > 0, `reading.ts is a finite ms epoch (got ${r.ts})`);
  assert.equal(typeof r.value, kind, `${id}: value ${String(r.value)} is of kind ${kind}`);
  if (kind === 'number') assert.ok(Number.isFinite(r.value), `${id}: value is finite (got ${String(r.value)})`);
}

function checkHealth(driver: Driver): void {
  const h = driver.health();
  assert.equal(typeof h.ok, 'boolean', 'health().ok is a boolean');
  assert.equal(typeof h.counters, 'object');
  assert.ok(h.counters !== null);
  for (const [k, v] of Object.entries(h.counters)) {
    assert.equal(typeof v, 'number', `counter ${k} is a number`);
    assert.ok(Number.isFinite(v) && v >= 0, `counter ${k} is finite and >= 0 (got ${v})`);
  }
  assert.ok('reads' in h.counters, 'health().counters has `reads`');
  assert.ok('errors' in h.counters, 'health().counters has `errors`');
  if (h.error !== undefined) {
    assert.equal(typeof h.error.code, 'string');
    assert.equal(typeof h.error.message, 'string');
  }
  if (!h.ok) assert.ok(h.error, 'health() carries the error while not ok');
}

/** Active handles by type (timers, fds, watchers), to compare before and after a run. */
function handles(): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of process.getActiveResourcesInfo()) m.set(t, (m.get(t) ?? 0) + 1);
  return m;
}

function grew(before: Map<string, number>, after: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [t, n] of after) if (n > (before.get(t) ?? 0)) out.push(`${t}: ${before.get(t) ?? 0} → ${n}`);
  return out;
}

async function assertNoLeaks(before: Map<string, number>): Promise<void> {
  // closes settle on later ticks: allow a bounded time for them, then report what stayed
  const deadline = Date.now() + 2_000;
  let extra = grew(before, handles());
  while (extra.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    extra = grew(before, handles());
  }
  assert.deepEqual(extra, [], `stop() left active handles behind: ${extra.join(', ')}`);
}

async function withDriver(
  make: () => Promise<DriverUnderTest>,
  body: (u: DriverUnderTest) => Promise<void>,
): Promise<void> {
  const u = await bounded(make(), 'make()');
  try {
    await body(u);
  } finally {
    try {
      await bounded(u.driver.stop(), 'stop() in teardown');
    } finally {
      await u.cleanup();
    }
  }
}

export function driverContract(name: string, make: () => Promise<DriverUnderTest>): void {
  describe(`driver contract: ${name}`, () => {
    it('has a name and a type', async () => {
      await withDriver(make, async ({ driver }) => {
        assert.equal(typeof driver.name, 'string');
        assert.ok(driver.name.length > 0);
        assert.equal(typeof driver.type, 'string');
        assert.ok(driver.type.length > 0);
      });
    });

    it('start() and stop() are idempotent, restartable and leak-free', async () => {
      const before = handles();
      await withDriver(make, async ({ driver }) => {
        await bounded(driver.stop(), 'stop() before start()');
        await bounded(driver.start(), 'start()');
        await bounded(driver.start(), 'second start()');
        for (const s of driver.sensors().filter((x) => x.mode === 'polled'))
          await bounded(driver.read(s.id), `read(${s.id})`);
        await bounded(driver.stop(), 'stop()');
        await bounded(driver.stop(), 'second stop()');
        await bounded(driver.start(), 'start() after stop()');
        const polled = driver.sensors().find((x) => x.mode === 'polled');
        if (polled) await bounded(driver.read(polled.id), `read(${polled.id}) after restart`);
        await bounded(driver.stop(), 'final stop()');
      });
      await assertNoLeaks(before);
    });

    it('declares valid, unique sensor and actuator ids', async () => {
      await withDriver(make, async ({ driver }) => {
        await bounded(driver.start(), 'start()');
        const sensors = driver.sensors();
        const ids = new Set<string>();
        for (const s of sensors) {
          assert.match(s.id, SENSOR_ID, `sensor id "${s.id}"`);
          assert.ok(!ids.has(s.id), `sensor id "${s.id}" is unique`);
          ids.add(s.id);
          assert.equal(typeof s.name, 'string');
          assert.ok(s.name.length > 0, `${s.id} has a name`);
          assert.ok(['number', 'boolean', 'string'].includes(s.kind), `${s.id}: kind ${s.kind}`);
          assert.ok(['polled', 'pushed'].includes(s.mode), `${s.id}: mode ${s.mode}`);
          if (s.unit !== undefined) assert.equal(typeof s.unit, 'string');
          if (s.stateClass !== undefined)
            assert.ok(['measurement', 'total', 'total_increasing'].includes(s.stateClass));
        }
        const aids = new Set<string>();
        for (const a of driver.actuators()) {
          assert.match(a.id, SENSOR_ID, `actuator id "${a.id}"`);
          assert.ok(!aids.has(a.id), `actuator id "${a.id}" is unique`);
          aids.add(a.id);
          assert.ok(a.name.length > 0, `${a.id} has a name`);
          assert.ok(['boolean', 'number'].includes(a.kind), `${a.id}: kind ${a.kind}`);
        }
        // the lists are copies: changing them does not change the driver
        driver.sensors().length = 0;
        assert.equal(driver.sensors().length, sensors.length);
      });
    });

    it('read() answers a Reading of the declared kind for every sensor', async () => {
      await withDriver(make, async ({ driver }) => {
        await bounded(driver.start(), 'start()');
        const before = driver.health().counters.reads ?? 0;
        let good = 0;
        for (const s of driver.sensors()) {
          if (s.mode === 'polled') {
            checkReading(await bounded(driver.read(s.id), `read(${s.id})`), s.id, s.kind);
            good++;
          } else {
            // a pushed sensor answers its latest value, or SENSOR_UNAVAILABLE before the first
            try {
              checkReading(await bounded(driver.read(s.id), `read(${s.id})`), s.id, s.kind);
              good++;
            } catch (err) {
              assert.ok(
                err instanceof TalonError && err.code === 'SENSOR_UNAVAILABLE',
                `pushed ${s.id}: ${String(err)}`,
              );
            }
          }
        }
        checkHealth(driver);
        assert.ok(
          (driver.health().counters.reads ?? 0) >= before + good,
          'health().counters.reads counts successful reads',
        );
      });
    });

    it('read() of an unknown sensor → SENSOR_NOT_FOUND, write() of an unknown actuator → ACTUATOR_NOT_FOUND', async () => {
      await withDriver(make, async ({ driver }) => {
        await bounded(driver.start(), 'start()');
        await rejectsWith(driver.read('nope.does-not-exist'), 'SENSOR_NOT_FOUND', "read('nope.does-not-exist')");
        await rejectsWith(
          driver.write('nope.does-not-exist', true),
          'ACTUATOR_NOT_FOUND',
          "write('nope.does-not-exist')",
        );
        checkHealth(driver);
      });
    });

    it("write() accepts a value of each actuator's kind", async () => {
      await withDriver(make, async ({ driver }) => {
        await bounded(driver.start(), 'start()');
        for (const a of driver.actuators()) {
          await bounded(driver.write(a.id, a.kind === 'boolean' ? false : 0), `write(${a.id})`);
        }
      });
    });

    it('read() after stop() → SENSOR_UNAVAILABLE', async () => {
      await withDriver(make, async ({ driver }) => {
        await bounded(driver.start(), 'start()');
        await bounded(driver.stop(), 'stop()');
        for (const s of driver.sensors()) {
          await rejectsWith(driver.read(s.id), 'SENSOR_UNAVAILABLE', `read(${s.id}) after stop()`);
        }
      });
    });

    it('health() has the documented shape before, during and after a run', async () => {
      await withDriver(make, async ({ driver }) => {
        checkHealth(driver);
        await bounded(driver.start(), 'start()');
        checkHealth(driver);
        await bounded(driver.stop(), 'stop()');
        checkHealth(driver);
      });
    });

    it('onReading() returns an unsubscribe that works (and is idempotent)', async () => {
      await withDriver(make, async ({ driver, push }) => {
        await bounded(driver.start(), 'start()');
        const a: Reading[] = [];
        const b: Reading[] = [];
        const offA = driver.onReading((r) => a.push(r));
        const offB = driver.onReading((r) => b.push(r));
        assert.equal(typeof offA, 'function');
        if (push) {
          await bounded(push(), 'push()');
          await waitUntil(() => a.length > 0 && b.length > 0, 'a pushed reading reaching both listeners');
          const kinds = new Map(driver.sensors().map((s) => [s.id, s.kind]));
          for (const r of a) {
            const kind = kinds.get(r.sensor);
            assert.ok(kind, `pushed reading names a declared sensor (${r.sensor})`);
            checkReading(r, r.sensor, kind);
          }
        }
        offA();
        offA();
        const seenA = a.length;
        const seenB = b.length;
        if (push) {
          await bounded(push(), 'push()');
          await waitUntil(() => b.length > seenB, 'a pushed reading reaching the remaining listener');
          assert.equal(a.length, seenA, 'an unsubscribed listener gets nothing more');
        }
        offB();
        // a listener that throws must not break the driver
        const offBad = driver.onReading(() => {
          throw new Error('listener bug');
        });
        if (push) await bounded(push(), 'push() with a throwing listener');
        offBad();
        checkHealth(driver);
      });
    });

    it('a failed read is a clear, counted error, never a crash and never a false "all good"', async (t) => {
      const probe = await bounded(make(), 'make()');
      const kinds = probe.faults ? (probe.faults.kinds ?? (['throw', 'nan', 'text', 'timeout'] as FaultKind[])) : [];
      await probe.cleanup();
      if (kinds.length === 0) {
        // no fault hooks: at least the unknown-sensor path must be clean
        return;
      }
      for (const kind of kinds) {
        await t.test(`fault: ${kind} → ${FAULT_CODE[kind]}`, async () => {
          await withDriver(make, async ({ driver, faults }) => {
            assert.ok(faults, 'make() returned faults once, so it must every time');
            const info = driver.sensors().find((s) => s.id === faults.sensor);
            assert.ok(info, `faults.sensor ${faults.sensor} is a declared sensor`);
            await bounded(driver.start(), 'start()');
            checkReading(await bounded(driver.read(faults.sensor), 'a good read first'), faults.sensor, info.kind);
            assert.equal(driver.health().ok, true, 'healthy after a good read');
            const errors0 = driver.health().counters.errors ?? 0;
            await faults.inject(kind);
            const err = await rejectsWith(
              driver.read(faults.sensor),
              FAULT_CODE[kind],
              `read(${faults.sensor}) with ${kind}`,
            );
            assert.ok(err.message.includes(faults.sensor), `the message names the sensor: "${err.message}"`);
            await rejectsWith(
              driver.read(faults.sensor),
              FAULT_CODE[kind],
              `second read(${faults.sensor}) with ${kind}`,
            );
            const h = driver.health();
            checkHealth(driver);
            assert.equal(h.ok, false, 'not "all good" while a sensor fails');
            assert.equal(h.error?.code, FAULT_CODE[kind]);
            assert.ok(
              (h.counters.errors ?? 0) >= errors0 + 2,
              `counters.errors counts each failed read (${errors0} → ${h.counters.errors})`,
            );
            await faults.clear();
            checkReading(
              await bounded(driver.read(faults.sensor), 'a good read after clear()'),
              faults.sensor,
              info.kind,
            );
            assert.equal(driver.health().ok, true, 'healthy again once the sensor reads well');
          });
        });
      }
    });
  });
}

async function waitUntil(pred: () => boolean, what: string, ms = BOUND_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`contract: timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
