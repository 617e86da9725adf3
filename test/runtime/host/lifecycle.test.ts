/**
 * The lifecycle (runtime/host/lifecycle.ts): start in order, stop in reverse; a failure at
 * start step k stops exactly steps 0..k-1 in reverse and throws that failure; a stop that
 * throws or hangs is logged and the next one still stops; stop runs once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lifecycle, type Subsystem } from '../../../runtime/host/lifecycle.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

interface Rig {
  life: Lifecycle;
  events: string[];
  logs: Array<{ level: string; msg: string }>;
  subsystems: (n: number, over?: Record<number, Partial<Subsystem>>) => Subsystem[];
}

function rig(): Rig {
  const events: string[] = [];
  const logs: Array<{ level: string; msg: string }> = [];
  const life = new Lifecycle({ log: (level, msg) => logs.push({ level, msg }) });
  const subsystems = (n: number, over: Record<number, Partial<Subsystem>> = {}): Subsystem[] =>
    Array.from({ length: n }, (_, i) => ({
      name: `s${i}`,
      start: async () => {
        await Promise.resolve();
        events.push(`start s${i}`);
      },
      stop: async () => {
        await Promise.resolve();
        events.push(`stop s${i}`);
      },
      ...over[i],
    }));
  return { life, events, logs, subsystems };
}

test('starts in order, stops in reverse', async () => {
  const r = rig();
  await r.life.start(r.subsystems(4));
  assert.deepEqual(r.life.running(), ['s0', 's1', 's2', 's3']);
  await r.life.stop();
  assert.deepEqual(r.events, [
    'start s0',
    'start s1',
    'start s2',
    'start s3',
    'stop s3',
    'stop s2',
    'stop s1',
    'stop s0',
  ]);
  assert.deepEqual(r.life.running(), []);
  assert.deepEqual(r.logs, []);
});

test('a failure at start step k stops exactly steps 0..k-1 in reverse, then throws that failure', async () => {
  const n = 5;
  for (let k = 0; k < n; k++) {
    for (const how of ['reject', 'throw'] as const) {
      const r = rig();
      const boom = new TalonError('PORT_IN_USE', `step ${k} failed`);
      const failing: Partial<Subsystem> = {
        start:
          how === 'reject'
            ? async () => {
                throw boom;
              }
            : () => {
                throw boom;
              },
      };
      await assert.rejects(
        r.life.start(r.subsystems(n, { [k]: failing })),
        (err) => err === boom,
        `k=${k} ${how}: the start error itself`,
      );
      const started = Array.from({ length: k }, (_, i) => `start s${i}`);
      const stopped = Array.from({ length: k }, (_, i) => `stop s${k - 1 - i}`);
      assert.deepEqual(r.events, [...started, ...stopped], `k=${k} ${how}`);
      assert.deepEqual(r.life.running(), []);
      // a later stop has nothing left to do
      await r.life.stop();
      assert.equal(r.events.length, 2 * k);
      assert.deepEqual(r.logs, []);
    }
  }
});

test('stop failures are logged, not thrown, and the rest still stop (on stop and on a failed start)', async () => {
  const r = rig();
  await r.life.start(
    r.subsystems(4, {
      1: {
        stop: () => {
          throw new Error('sync stop failure');
        },
      },
      2: {
        stop: async () => {
          throw new TalonError('BUS_DOWN', 'async stop failure');
        },
      },
    }),
  );
  await r.life.stop();
  assert.deepEqual(
    r.events.filter((e) => e.startsWith('stop')),
    ['stop s3', 'stop s0'],
  );
  assert.deepEqual(
    r.logs.map((l) => l.level),
    ['error', 'error'],
  );
  assert.match(r.logs[0]!.msg, /stopping s2: async stop failure/);
  assert.match(r.logs[1]!.msg, /stopping s1: sync stop failure/);

  const f = rig();
  const boom = new Error('start failure');
  await assert.rejects(
    f.life.start(
      f.subsystems(4, {
        1: {
          stop: () => {
            throw new Error('undo failure');
          },
        },
        3: {
          start: () => {
            throw boom;
          },
        },
      }),
    ),
    (err) => err === boom,
    'the start error, not the stop error',
  );
  assert.deepEqual(f.events, ['start s0', 'start s1', 'start s2', 'stop s2', 'stop s0']);
  assert.equal(f.logs.length, 1);
  assert.match(f.logs[0]!.msg, /stopping s1: undo failure/);
});

test('a stop past its deadline is logged and the next one stops; its timer does not outlive it', async () => {
  const r = rig();
  let release: () => void = () => {};
  const hung = new Promise<void>((resolve) => {
    release = resolve;
  });
  await r.life.start(
    r.subsystems(3, {
      1: { stop: () => hung, stopTimeoutMs: 30 },
      2: { stopTimeoutMs: 10_000 }, // stops at once: its deadline timer must be cleared
    }),
  );
  const t0 = Date.now();
  await r.life.stop();
  const took = Date.now() - t0;
  assert.ok(took >= 25 && took < 5000, `waited for the deadline only (${took} ms)`);
  assert.deepEqual(
    r.events.filter((e) => e.startsWith('stop')),
    ['stop s2', 'stop s0'],
  );
  assert.equal(r.logs.length, 1);
  assert.match(r.logs[0]!.msg, /stopping s1: not done after 30 ms/);
  release();
  const timers = (process.getActiveResourcesInfo() as string[]).filter((x) => x === 'Timeout');
  assert.deepEqual(timers, [], 'no deadline timer left');
});

test('stop is idempotent: one run, the same promise', async () => {
  const r = rig();
  await r.life.start(r.subsystems(3));
  const a = r.life.stop();
  const b = r.life.stop();
  assert.equal(a, b);
  await a;
  await r.life.stop();
  assert.deepEqual(
    r.events.filter((e) => e.startsWith('stop')),
    ['stop s2', 'stop s1', 'stop s0'],
  );
  assert.notEqual(r.life.stopBegan, null);
});

test('a stop asked during the start lets the current step finish, starts no more, stops them all', async () => {
  const r = rig();
  let go: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    go = resolve;
  });
  const starting = r.life.start(
    r.subsystems(4, {
      1: {
        start: async () => {
          await gate;
          r.events.push('start s1');
        },
      },
    }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  const stopping = r.life.stop();
  go();
  await assert.rejects(starting, (err) => err instanceof TalonError && err.code === 'NOT_RUNNING');
  await stopping;
  assert.deepEqual(r.events, ['start s0', 'start s1', 'stop s1', 'stop s0']);
  await assert.rejects(
    r.life.start(r.subsystems(1)),
    (err) => err instanceof TalonError && err.code === 'INTERNAL',
    'a lifecycle starts once',
  );
});

test('nothing started: stop is a no-op and stopBegan stays null', async () => {
  const r = rig();
  await r.life.stop();
  assert.equal(r.life.stopBegan, null);
  assert.deepEqual(r.events, []);
});
