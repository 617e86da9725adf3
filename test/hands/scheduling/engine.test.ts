/**
 * The scheduling engine over an injected clock (wall and monotonic moved by the test), an in-memory store and
 * a fake action runner: triggers, policies, durable runs, clock jumps, restarts and crashes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineConfig } from '../../../hands/scheduling/engine.ts';
import {
  type ActionContext,
  type ActionRunner,
  type EngineClock,
  type EngineStore,
  type JobState,
  KEY,
  type RunRecord,
} from '../../../hands/scheduling/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { memStore } from '../../helpers/mem-store.ts';

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);

/** the world's time, shared by the clocks of engines that follow one another on one "device" */
interface World {
  wall: number;
  mono: number;
  synced: boolean;
}

class FakeClock implements EngineClock {
  timers = new Map<number, { at: number; fn: () => void }>();
  #id = 0;
  setCalls = 0;
  constructor(readonly w: World) {}
  wall(): number {
    return this.w.wall;
  }
  mono(): number {
    return this.w.mono;
  }
  setTimer(fn: () => void, ms: number): unknown {
    this.setCalls++;
    const id = ++this.#id;
    this.timers.set(id, { at: this.w.mono + ms, fn });
    return id;
  }
  clearTimer(h: unknown): void {
    this.timers.delete(h as number);
  }
}

const flush = async (n = 30): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** moves both clocks by `ms`, firing the clock's timers in order */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  const end = clock.w.mono + ms;
  await flush();
  for (;;) {
    let next: [number, { at: number; fn: () => void }] | undefined;
    for (const t of clock.timers) if (t[1].at <= end && (!next || t[1].at < next[1].at)) next = t;
    if (!next) break;
    const d = Math.max(0, next[1].at - clock.w.mono);
    clock.w.mono += d;
    clock.w.wall += d;
    clock.timers.delete(next[0]);
    next[1].fn();
    await flush();
  }
  clock.w.wall += end - clock.w.mono;
  clock.w.mono = end;
  await flush();
}

type Behaviour = (ctx: ActionContext) => Promise<unknown>;
class FakeActions implements ActionRunner {
  calls: RunRecord[] = [];
  signals: AbortSignal[] = [];
  behaviour: Behaviour = async () => 'ok';
  run(_a: unknown, ctx: ActionContext): Promise<unknown> {
    this.calls.push(ctx.run);
    this.signals.push(ctx.signal);
    return this.behaviour(ctx);
  }
}

/** a store that can "lose power": after kill() nothing it is asked resolves (nor lands) */
function crashable(map: Map<string, unknown>): EngineStore & { kill(): void } {
  const inner = memStore(map);
  let dead = false;
  const never = new Promise<never>(() => {});
  return {
    kill: () => {
      dead = true;
    },
    get: (k) => (dead ? never : inner.get(k)),
    list: (o) => (dead ? never : inner.list(o)),
    batch: (ops, o) => (dead ? never : inner.batch(ops, o)),
  } as EngineStore & { kill(): void };
}

function harness(opts: Partial<EngineConfig> & { map?: Map<string, unknown>; world?: World } = {}) {
  const world = opts.world ?? { wall: T0, mono: 1_000_000, synced: true };
  const map = opts.map ?? new Map<string, unknown>();
  const clock = new FakeClock(world);
  const store = crashable(map);
  const actions = new FakeActions();
  const events: unknown[] = [];
  const engine = new Engine({
    clock,
    store,
    actions,
    clockSynced: () => world.synced,
    onEvent: (e) => events.push(e),
    stopWaitMs: 50,
    ...opts,
  });
  const records = (id: string): RunRecord[] =>
    [...map.entries()]
      .filter(([k]) => k.startsWith(KEY.runPrefix(id)))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, v]) => v as RunRecord);
  const open = (): string[] => [...map.keys()].filter((k) => k.startsWith('runs-open/'));
  return { world, map, clock, store, actions, events, engine, records, open };
}

const pub = { publish: { topic: 'jobs/x' } };
const statuses = (rs: RunRecord[]): string[] => rs.map((r) => r.status);

test('cron with seconds fires each second; each run journalled before and after', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'tick', trigger: { cron: '* * * * * *' }, action: pub });
  await advance(h.clock, 5000);
  const rs = h.records('tick');
  assert.equal(rs.length, 5);
  assert.deepEqual(
    rs.map((r) => r.scheduledAt),
    [1, 2, 3, 4, 5].map((i) => T0 + i * 1000),
  );
  assert.deepEqual(new Set(statuses(rs)), new Set(['success']));
  assert.equal(rs[0]?.runId, `tick@${T0 + 1000}`);
  assert.equal(rs[0]?.result, 'ok');
  assert.deepEqual(h.open(), []);
  const st = h.map.get(KEY.state('tick')) as JobState;
  assert.equal(st.runs, 5);
  assert.equal(st.lastScheduledAt, T0 + 5000);
  assert.equal(h.engine.stats().runs.success, 5);
  // one timer at a time
  assert.ok(h.clock.timers.size <= 1);
  await h.engine.stop();
});

test('every runs on the monotonic clock, unmoved by wall-clock jumps', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'iv', trigger: { every: '500ms' }, action: pub });
  await advance(h.clock, 1000);
  h.world.wall -= 3_600_000; // an hour back
  await advance(h.clock, 1000);
  assert.equal(h.actions.calls.length, 4);
  const ats = h.records('iv').map((r) => r.scheduledAt);
  assert.equal(new Set(ats).size, 4);
  await h.engine.stop();
});

test('at runs once, then the job has ended', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'once', trigger: { at: T0 + 3000 }, action: pub });
  assert.deepEqual(h.engine.get('once').next, [T0 + 3000]);
  await advance(h.clock, 10_000);
  assert.equal(h.actions.calls.length, 1);
  assert.equal(h.actions.calls[0]?.scheduledAt, T0 + 3000);
  assert.equal(h.engine.get('once').waiting, 'ended');
  await h.engine.stop();
});

test('event triggers: filter, condition with named levels, debounce; subscriptions follow the jobs', async () => {
  const subs: string[][] = [];
  const h = harness({ onSubscriptionsChanged: (f) => subs.push(f) });
  await h.engine.start();
  await h.engine.put({
    id: 'on-alert',
    trigger: {
      event: {
        topic: 'alerts/+',
        where: [{ path: 'severity', op: 'gte', value: 'warning', order: ['info', 'warning', 'critical'] }],
        debounce: '10s',
      },
    },
    action: pub,
  });
  assert.deepEqual(h.engine.subscriptions(), ['alerts/+']);
  assert.deepEqual(subs.at(-1), ['alerts/+']);
  h.engine.handleMessage('alerts/cpu', { severity: 'info' });
  h.engine.handleMessage('other/cpu', { severity: 'critical' });
  await flush();
  assert.equal(h.actions.calls.length, 0);
  h.engine.handleMessage('alerts/cpu', { severity: 'critical' });
  h.engine.handleMessage('alerts/cpu', { severity: 'critical' }); // debounced
  await flush();
  assert.equal(h.actions.calls.length, 1);
  assert.equal(h.actions.calls[0]?.cause, 'event');
  await advance(h.clock, 11_000);
  h.engine.handleMessage('alerts/disk', { severity: 'warning' });
  await flush();
  assert.equal(h.actions.calls.length, 2);
  const rec = h.records('on-alert')[0];
  assert.deepEqual(rec?.event, { topic: 'alerts/cpu', payload: { severity: 'critical' } });
  await h.engine.remove('on-alert');
  assert.deepEqual(h.engine.subscriptions(), []);
  assert.deepEqual(subs.at(-1), []);
  await h.engine.stop();
});

test('after: fan-in waits for every listed job, on success', async () => {
  const h = harness();
  await h.engine.start();
  h.actions.behaviour = async (ctx) => {
    if (ctx.run.jobId === 'b' && h.actions.calls.filter((c) => c.jobId === 'b').length === 1)
      throw new Error('b failed');
    return 'ok';
  };
  await h.engine.put({ id: 'a', trigger: { every: '1h' }, action: pub });
  await h.engine.put({ id: 'b', trigger: { every: '1h' }, action: pub });
  await h.engine.put({ id: 'c', trigger: { after: ['a', 'b'] }, action: pub });
  assert.equal(h.engine.get('c').waiting, 'waiting-for: a, b');
  await h.engine.runNow('a');
  await flush();
  await h.engine.runNow('b'); // fails: does not count for `on: success`
  await flush();
  assert.equal(h.records('c').length, 0);
  assert.equal(h.engine.get('c').waiting, 'waiting-for: b');
  await h.engine.runNow('b');
  await flush();
  const c = h.records('c');
  assert.equal(c.length, 1);
  assert.equal(c[0]?.cause, 'after');
  // removing a job another waits for is refused
  await assert.rejects(h.engine.remove('a'), (e: TalonError) => e.code === 'CONFLICT' && /"c"/.test(e.message));
  await h.engine.stop();
});

/** a job whose runs hold until released */
function holding(h: ReturnType<typeof harness>) {
  const release: Array<(v: unknown) => void> = [];
  h.actions.behaviour = () => new Promise((r) => release.push(r));
  return release;
}

for (const [mode, expect] of [
  ['skip', { success: 1, skipped: 2, calls: 1 }],
  ['buffer-one', { success: 2, skipped: 1, calls: 2 }],
  ['buffer-all', { success: 3, skipped: 0, calls: 3 }],
  ['allow', { success: 3, skipped: 0, calls: 3 }],
] as const) {
  test(`overlap ${mode}`, async () => {
    const h = harness();
    await h.engine.start();
    const release = holding(h);
    await h.engine.put({ id: 'o', trigger: { cron: '* * * * * *' }, action: pub, policy: { overlap: mode } });
    await advance(h.clock, 3000); // three due times while the first still runs
    assert.equal(h.engine.stats().running, mode === 'allow' ? 3 : 1);
    assert.equal(h.engine.stats().buffered, mode === 'buffer-one' ? 1 : mode === 'buffer-all' ? 2 : 0);
    await h.engine.pause('o');
    for (let i = 0; i < 5; i++) {
      for (const r of release.splice(0)) r('done');
      await flush();
    }
    const rs = h.records('o');
    assert.equal(rs.filter((r) => r.status === 'success').length, expect.success);
    assert.equal(rs.filter((r) => r.status === 'skipped').length, expect.skipped);
    assert.equal(h.actions.calls.length, expect.calls);
    if (mode === 'skip') assert.match(rs.find((r) => r.status === 'skipped')?.reason ?? '', /overlap/);
    // scheduled times stay in order and unique
    const ats = rs.map((r) => r.scheduledAt);
    assert.equal(new Set(ats).size, 3);
    await h.engine.stop();
  });
}

test('overlap cancel: the running one is aborted and recorded cancelled', async () => {
  const h = harness();
  await h.engine.start();
  holding(h);
  await h.engine.put({ id: 'o', trigger: { cron: '* * * * * *' }, action: pub, policy: { overlap: 'cancel' } });
  await advance(h.clock, 2000);
  const rs = h.records('o');
  assert.deepEqual(statuses(rs), ['cancelled', 'running']);
  assert.equal(h.actions.signals[0]?.aborted, true);
  assert.match(rs[0]?.reason ?? '', /overlap cancel/);
  await h.engine.stop();
});

test('jitter delays the start within its bound; scheduledAt is unchanged', async () => {
  const h = harness({ random: () => 0.5 });
  await h.engine.start();
  await h.engine.put({ id: 'j', trigger: { cron: '*/10 * * * * *' }, action: pub, policy: { jitter: '4s' } });
  await advance(h.clock, 11_000);
  assert.equal(h.actions.calls.length, 0); // due at +10 s, starts at +12 s
  await advance(h.clock, 1500);
  const [r] = h.records('j');
  assert.equal(r?.scheduledAt, T0 + 10_000);
  assert.equal(r?.startedAt, T0 + 12_000);
  await h.engine.stop();
});

test('timeout: the signal aborts and the run ends `timeout` even when the action ignores it', async () => {
  const h = harness();
  await h.engine.start();
  h.actions.behaviour = () => new Promise(() => {});
  await h.engine.put({ id: 't', trigger: { cron: '*/10 * * * * *' }, action: pub, policy: { timeout: '2s' } });
  await advance(h.clock, 13_000);
  const [r] = h.records('t');
  assert.equal(r?.status, 'timeout');
  assert.equal(r?.error?.code, 'HAND_TIMEOUT');
  assert.equal(r?.endedAt, T0 + 12_000);
  assert.equal(h.actions.signals[0]?.aborted, true);
  assert.deepEqual(h.open(), []);
  await h.engine.stop();
});

test('retries with exponential backoff as new records; pause after N failures in a row', async () => {
  const h = harness();
  await h.engine.start();
  h.actions.behaviour = async () => {
    throw new TalonError('HAND_NOT_RUNNING', 'research is not running');
  };
  await h.engine.put({
    id: 'r',
    trigger: { cron: '0 * * * * *' },
    action: pub,
    policy: { retries: { max: 2, backoff: '1s', factor: 3 }, pauseAfterFailures: 2 },
  });
  await advance(h.clock, 60_000 + 500);
  assert.equal(h.actions.calls.length, 1);
  await advance(h.clock, 1000); // attempt 2 at +1 s
  assert.equal(h.actions.calls.length, 2);
  await advance(h.clock, 2000);
  assert.equal(h.actions.calls.length, 2); // attempt 3 waits 3 s
  await advance(h.clock, 1000);
  assert.equal(h.actions.calls.length, 3);
  const rs = h.records('r');
  assert.deepEqual(
    rs.map((r) => r.runId),
    [`r@${T0 + 60_000}`, `r@${T0 + 60_000}#002`, `r@${T0 + 60_000}#003`],
  );
  assert.deepEqual(
    rs.map((r) => r.cause),
    ['schedule', 'retry', 'retry'],
  );
  assert.equal(rs[0]?.error?.code, 'HAND_NOT_RUNNING');
  let st = h.map.get(KEY.state('r')) as JobState;
  assert.equal(st.failuresInARow, 1);
  assert.equal(st.paused, false);
  await advance(h.clock, 60_000 + 10_000);
  st = h.map.get(KEY.state('r')) as JobState;
  assert.equal(st.failuresInARow, 2);
  assert.equal(st.paused, true);
  assert.equal(st.pausedBy, 'failures');
  const n = h.actions.calls.length;
  await advance(h.clock, 120_000);
  assert.equal(h.actions.calls.length, n);
  await h.engine.resume('r');
  assert.equal((h.map.get(KEY.state('r')) as JobState).failuresInARow, 0);
  await h.engine.stop();
});

test('maxRuns and endAt end a job', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'm', trigger: { cron: '* * * * * *' }, action: pub, policy: { maxRuns: 3 } });
  await h.engine.put({ id: 'e', trigger: { cron: '* * * * * *' }, action: pub, policy: { endAt: T0 + 4500 } });
  await h.engine.put({ id: 'past', trigger: { cron: '* * * * * *' }, action: pub, policy: { endAt: T0 - 1 } });
  await advance(h.clock, 10_000);
  assert.equal(h.records('m').length, 3);
  assert.equal(h.records('e').length, 4);
  assert.equal(h.records('past').length, 0);
  for (const id of ['m', 'e', 'past']) assert.equal(h.engine.get(id).waiting, 'ended', id);
  assert.equal((h.map.get(KEY.state('m')) as JobState).pausedBy, 'ended');
  await h.engine.stop();
});

test('the clock jumps back: nothing runs twice; it jumps forward: the catch-up policy, no burst', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'c', trigger: { cron: '* * * * * *' }, action: pub, policy: { catchUp: { mode: 'last' } } });
  await advance(h.clock, 5000);
  h.world.wall -= 30_000;
  await advance(h.clock, 40_000);
  assert.ok(h.engine.stats().clockJumps >= 1);
  let ats = h.records('c').map((r) => r.scheduledAt);
  assert.equal(new Set(ats).size, ats.length, 'no scheduled time twice');
  assert.deepEqual(
    ats.slice(0, 5),
    [1, 2, 3, 4, 5].map((i) => T0 + i * 1000),
  );
  // after the jump back, it resumed after its high-water mark T0+5 s: 40 s - 30 s = up to T0+15 s
  assert.equal(ats.at(-1), T0 + 15_000);
  assert.equal(ats.length, 15);
  const jumps = h.engine.stats().clockJumps;
  h.world.wall += 3_600_000; // an hour forward
  await advance(h.clock, 1000);
  ats = h.records('c').map((r) => r.scheduledAt);
  assert.equal(h.engine.stats().clockJumps, jumps + 1);
  // one catch-up (the latest missed) at most plus the fresh second; not 3,600 runs
  assert.ok(ats.length <= 15 + 3, `${ats.length} runs`);
  assert.equal(new Set(ats).size, ats.length);
  await h.engine.stop();
});

test('cron waits while the clock is unsynchronised, intervals do not; then one catch-up', async () => {
  const h = harness();
  h.world.synced = false;
  h.world.wall = Date.UTC(1970, 0, 1);
  await h.engine.start();
  await h.engine.put({ id: 'c', trigger: { cron: '*/5 * * * * *' }, action: pub });
  await h.engine.put({ id: 'i', trigger: { every: '5s' }, action: pub });
  await advance(h.clock, 20_000);
  assert.equal(h.records('c').length, 0);
  assert.equal(h.records('i').length, 4);
  assert.equal(h.engine.get('c').waiting, 'clock-unsynchronised');
  h.world.wall = T0 + 2500; // NTP synchronised
  h.world.synced = true;
  h.engine.wake();
  await flush();
  const c = h.records('c');
  assert.equal(c.length, 1);
  assert.equal(c[0]?.cause, 'catch-up');
  assert.equal(c[0]?.scheduledAt, T0);
  await advance(h.clock, 10_000);
  assert.deepEqual(
    h.records('c').map((r) => r.scheduledAt - T0),
    [0, 5000, 10_000],
  );
  await h.engine.stop();
});

test('a crash during a run: the next start marks it interrupted and catches up per policy', async () => {
  const a = harness();
  await a.engine.start();
  holding(a);
  await a.engine.put({
    id: 'c',
    trigger: { cron: '*/10 * * * * *' },
    action: pub,
    policy: { catchUp: { mode: 'all' } },
  });
  await advance(a.clock, 10_000);
  assert.deepEqual(statuses(a.records('c')), ['running']);
  assert.equal(a.open().length, 1);
  a.store.kill(); // power cut: the engine is dropped, no stop()
  a.world.wall += 35_000; // off for 35 s: +20, +30, +40 missed
  a.world.mono += 35_000;
  const b = harness({ map: a.map, world: a.world });
  await b.engine.start();
  await flush();
  const rs = b.records('c');
  assert.deepEqual(statuses(rs), ['interrupted', 'success', 'success', 'success']);
  assert.deepEqual(
    rs.map((r) => r.cause),
    ['schedule', 'catch-up', 'catch-up', 'catch-up'],
  );
  assert.deepEqual(b.open(), []);
  assert.equal((b.map.get(KEY.state('c')) as JobState).lastOutcome?.status, 'success');
  await b.engine.stop();
});

test('stop() aborts running actions and leaves their records open: the next start marks them interrupted', async () => {
  const a = harness();
  await a.engine.start();
  a.actions.behaviour = (ctx) =>
    new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  await a.engine.put({
    id: 's',
    trigger: { cron: '*/10 * * * * *' },
    action: pub,
    policy: { catchUp: { mode: 'none' } },
  });
  await advance(a.clock, 10_000);
  await a.engine.stop();
  assert.equal(a.actions.signals[0]?.aborted, true);
  assert.deepEqual(statuses(a.records('s')), ['running']);
  await assert.rejects(a.engine.runNow('s'), (e: TalonError) => e.code === 'CONFLICT');
  await advance(a.clock, 30_000);
  assert.equal(a.actions.calls.length, 1, 'no run after stop()');
  const b = harness({ map: a.map, world: a.world });
  await b.engine.start();
  assert.deepEqual(statuses(b.records('s')), ['interrupted']);
  assert.deepEqual(b.open(), []);
  await b.engine.stop();
});

test('catch-up none, last, all with window and max after downtime', async () => {
  const modes = {
    none: { mode: 'none' },
    last: { mode: 'last' },
    all: { mode: 'all', max: 100 },
    window: { mode: 'all', window: '30s', max: 100 },
    max: { mode: 'all', max: 2 },
  } as const;
  const a = harness();
  await a.engine.start();
  for (const [id, catchUp] of Object.entries(modes))
    await a.engine.put({ id, trigger: { cron: '*/10 * * * * *' }, action: pub, policy: { catchUp } });
  await advance(a.clock, 10_000);
  a.store.kill();
  a.world.wall += 62_500; // +20 … +70 missed (6 times), all older than the grace
  a.world.mono += 62_500;
  const b = harness({ map: a.map, world: a.world });
  await b.engine.start();
  await flush();
  const missed = (id: string) =>
    b
      .records(id)
      .filter((r) => r.cause === 'catch-up')
      .map((r) => (r.scheduledAt - T0) / 1000);
  assert.deepEqual(missed('none'), []);
  assert.deepEqual(missed('last'), [70]);
  assert.deepEqual(missed('all'), [20, 30, 40, 50, 60, 70]);
  assert.deepEqual(missed('window'), [50, 60, 70]);
  assert.deepEqual(missed('max'), [60, 70]);
  // none: the missed times count as skipped, a later restart does not look at them again
  assert.equal((b.map.get(KEY.state('none')) as JobState).lastScheduledAt, T0 + 70_000);
  await advance(b.clock, 10_000);
  assert.equal(b.records('none').at(-1)?.scheduledAt, T0 + 80_000);
  await b.engine.stop();
});

test('config jobs across restarts: unchanged, the catch-up looks back; a new trigger starts from now', async () => {
  const a = harness();
  const job = (cron: string) => ({ id: 'cfg', trigger: { cron }, action: pub, policy: { catchUp: { mode: 'all' } } });
  await a.engine.start([job('*/10 * * * * *')]);
  await advance(a.clock, 10_000);
  await a.engine.stop();
  a.world.wall += 32_500; // +20, +30, +40 missed
  a.world.mono += 32_500;
  const b = harness({ map: a.map, world: a.world });
  await b.engine.start([job('*/10 * * * * *')]);
  await flush();
  assert.deepEqual(
    b.records('cfg').map((r) => [(r.scheduledAt - T0) / 1000, r.cause]),
    [
      [10, 'schedule'],
      [20, 'catch-up'],
      [30, 'catch-up'],
      [40, 'catch-up'],
    ],
  );
  await b.engine.stop();
  b.world.wall += 32_500;
  b.world.mono += 32_500;
  const c = harness({ map: a.map, world: a.world });
  await c.engine.start([job('*/5 * * * * *')]); // edited: its past times are not caught up
  await flush();
  assert.equal(c.records('cfg').length, 4);
  await advance(c.clock, 5000);
  assert.equal(c.records('cfg').length, 5);
  assert.equal(c.records('cfg').at(-1)?.cause, 'schedule');
  await c.engine.stop();
});

test('a run whose record exists is never started again (dedup)', async () => {
  const h = harness();
  h.map.set(KEY.run('d', T0 + 2000), {
    runId: `d@${T0 + 2000}`,
    jobId: 'd',
    scheduledAt: T0 + 2000,
    cause: 'schedule',
    attempt: 1,
    status: 'success',
  });
  await h.engine.start();
  await h.engine.put({ id: 'd', trigger: { cron: '* * * * * *' }, action: pub });
  await advance(h.clock, 3000);
  assert.deepEqual(
    h.actions.calls.map((c) => c.scheduledAt),
    [T0 + 1000, T0 + 3000],
  );
  await h.engine.stop();
});

test('an edited cron keeps firing on its new schedule', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'e', trigger: { cron: '*/10 * * * * *' }, action: pub });
  await advance(h.clock, 10_500);
  assert.equal(h.records('e').length, 1);
  const v = await h.engine.put({ id: 'e', trigger: { cron: '*/2 * * * * *' }, action: pub });
  assert.equal(v.next[0], T0 + 12_000);
  await advance(h.clock, 10_000);
  const ats = h.records('e').map((r) => (r.scheduledAt - T0) / 1000);
  assert.deepEqual(ats, [10, 12, 14, 16, 18, 20]);
  // an unchanged put writes nothing and keeps the schedule
  const calls = h.actions.calls.length;
  await h.engine.put({ id: 'e', trigger: { cron: '*/2 * * * * *' }, action: pub });
  await advance(h.clock, 2000);
  assert.equal(h.actions.calls.length, calls + 1);
  await h.engine.stop();
});

test('one hung job does not stall another', async () => {
  const h = harness();
  await h.engine.start();
  h.actions.behaviour = (ctx) => (ctx.run.jobId === 'hung' ? new Promise(() => {}) : Promise.resolve('ok'));
  await h.engine.put({ id: 'hung', trigger: { cron: '* * * * * *' }, action: pub });
  await h.engine.put({ id: 'fine', trigger: { cron: '* * * * * *' }, action: pub });
  await advance(h.clock, 10_000);
  assert.equal(h.records('fine').filter((r) => r.status === 'success').length, 10);
  assert.equal(h.actions.calls.filter((c) => c.jobId === 'hung').length, 1);
  await h.engine.stop();
});

test('refused puts store nothing; config jobs are read-only through the API and follow the config', async () => {
  const h = harness();
  await h.engine.start([{ id: 'cfg', trigger: { every: '1m' }, action: pub }]);
  const before = [...h.map.keys()].sort();
  await assert.rejects(
    h.engine.put({ id: 'bad', trigger: { cron: 'not a cron' }, action: pub }),
    (e: TalonError) => e.code === 'BAD_REQUEST' && e.message.startsWith('trigger.cron:'),
  );
  await assert.rejects(
    h.engine.put({ id: 'cyc', trigger: { after: ['cyc'] }, action: pub }),
    (e: TalonError) => e.code === 'BAD_REQUEST' && e.message.startsWith('trigger.after[0]:'),
  );
  await assert.rejects(
    h.engine.put({ id: 'cfg', trigger: { every: '2m' }, action: pub }),
    (e: TalonError) => e.code === 'CONFLICT' && /config/.test(e.message),
  );
  await assert.rejects(h.engine.remove('cfg'), (e: TalonError) => e.code === 'CONFLICT');
  await assert.rejects(h.engine.remove('nope'), (e: TalonError) => e.code === 'NOT_FOUND');
  assert.deepEqual([...h.map.keys()].sort(), before);
  assert.equal(h.engine.get('cfg').source, 'config');
  await h.engine.stop();
  // the next start without it in the config removes it
  const b = harness({ map: h.map, world: h.world });
  await b.engine.start([]);
  assert.equal(b.engine.list().length, 0);
  assert.equal(b.map.has(KEY.job('cfg')), false);
  await b.engine.stop();
});

test('remove deletes the job, its state and its history, and cancels its runs', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'x', trigger: { cron: '* * * * * *' }, action: pub, policy: { overlap: 'allow' } });
  await advance(h.clock, 3000);
  h.actions.behaviour = () => new Promise(() => {});
  await advance(h.clock, 1000);
  assert.equal(h.engine.stats().running, 1);
  await h.engine.remove('x');
  assert.equal(h.actions.signals.at(-1)?.aborted, true);
  assert.deepEqual(
    [...h.map.keys()].filter((k) => k.includes('x')),
    [],
  );
  assert.throws(
    () => h.engine.get('x'),
    (e: TalonError) => e.code === 'NOT_FOUND',
  );
  await h.engine.stop();
});

test('history is kept to HISTORY_PER_JOB records, newest first through the API', async () => {
  const h = harness();
  await h.engine.start();
  await h.engine.put({ id: 'h', trigger: { every: 100 }, action: pub });
  await advance(h.clock, 250 * 100);
  assert.equal(h.records('h').length, 200);
  const hist = await h.engine.history('h', { limit: 3 });
  assert.equal(hist.length, 3);
  assert.ok((hist[0]?.scheduledAt ?? 0) > (hist[1]?.scheduledAt ?? 0));
  await h.engine.stop();
});

test('1,000 scheduled seconds with crashes in between: every second exactly once', { timeout: 60_000 }, async () => {
  const world: World = { wall: T0, mono: 1_000_000, synced: true };
  const map = new Map<string, unknown>();
  const spec = {
    id: 'sec',
    trigger: { cron: '* * * * * *' },
    action: pub,
    policy: { overlap: 'buffer-all', catchUp: { mode: 'all', max: 1000 } },
  };
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const points = new Set<number>();
  while (points.size < 10) points.add(50 + Math.floor(random() * 900));
  const crashAt = [...points].sort((a, b) => a - b);
  // every action started, across all the engines that follow one another
  const started: RunRecord[] = [];
  let hold = false;
  const boot = async () => {
    const x = harness({ map, world });
    x.actions.behaviour = (ctx) => {
      started.push(ctx.run);
      return hold ? new Promise(() => {}) : Promise.resolve('ok');
    };
    await x.engine.start([spec]);
    await flush();
    return x;
  };
  let h = await boot();
  let crashes = 0;
  let interrupted = 0;
  const END = T0 + 1_000_000;
  while (world.wall < END) {
    const s = Math.floor((world.wall - T0) / 1000);
    if (crashAt.length > 0 && s >= (crashAt[0] as number)) {
      crashAt.shift();
      hold = true;
      await advance(h.clock, 1000); // a run starts and hangs
      h.store.kill(); // power cut
      crashes++;
      hold = false;
      const down = 1000 + Math.floor(random() * 5000); // off for 1–6 s
      world.wall += down;
      world.mono += down;
      h = await boot();
      interrupted += h.engine.stats().runs.interrupted;
    } else await advance(h.clock, 1000);
  }
  await h.engine.stop();
  assert.equal(crashes, 10);
  assert.equal(interrupted, 10);
  const count = new Map<number, number>();
  for (const r of started) count.set(r.scheduledAt, (count.get(r.scheduledAt) ?? 0) + 1);
  const last = Math.floor((world.wall - T0) / 1000);
  assert.ok(last >= 1000);
  const lost: number[] = [];
  const twice: number[] = [];
  for (let s = 1; s <= last; s++) {
    const n = count.get(T0 + s * 1000) ?? 0;
    if (n === 0) lost.push(s);
    if (n > 1) twice.push(s);
  }
  assert.deepEqual(lost, []);
  assert.deepEqual(twice, []);
  assert.equal(started.length, last);
  // catch-up runs were needed (each crash missed 1–6 s) and are marked so
  assert.ok(started.filter((r) => r.cause === 'catch-up').length >= 10);
  assert.ok(started.every((r) => r.attempt === 1 && r.scheduledAt % 1000 === 0));
  // the journal agrees: nothing open at the end, at most HISTORY_PER_JOB records kept
  assert.deepEqual(h.open(), []);
  assert.ok(h.records('sec').length <= 200);
});

test('10,000 jobs idle on one timer; each due second starts its own jobs only', { timeout: 60_000 }, async () => {
  const h = harness();
  const jobs = Array.from({ length: 10_000 }, (_, i) => ({
    id: `j${i}`,
    trigger: { cron: `${i % 60} * * * * *` },
    action: pub,
  }));
  await h.engine.start(jobs);
  assert.equal(h.engine.stats().jobs, 10_000);
  assert.equal(h.clock.timers.size, 1);
  const setCalls = h.clock.setCalls;
  await advance(h.clock, 2000); // seconds 1 and 2 of the minute
  assert.equal(h.actions.calls.length, 167 + 167); // i % 60 === 1 (1 … 9961) and === 2 (2 … 9962)
  assert.ok(h.actions.calls.every((c) => [1, 2].includes(new Date(c.scheduledAt).getUTCSeconds())));
  assert.equal(h.clock.timers.size, 1);
  assert.ok(h.clock.setCalls - setCalls < 50, `${h.clock.setCalls - setCalls} timers set for two due seconds`);
  await h.engine.stop();
});
