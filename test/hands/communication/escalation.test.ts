/**
 * Escalations over the in-memory store: steps in order on fake timers, acks (any channel, by reference), idempotent
 * fires, a restart that re-arms or fires what is due, and the Scheduling Hand's jobs through the task protocol on a
 * small fake bus (checked against the Scheduling Hand's own job validation).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type EscalationTimers,
  Escalations,
  escKey,
  localTimers,
  newAckId,
  normalizeAckId,
  preferTimers,
  schedulerTimers,
} from '../../../hands/communication/escalation.ts';
import type { Escalation, Notification } from '../../../hands/communication/types.ts';
import type { BusMessageIn, HandContext } from '../../../hands/sdk/types.ts';
import { validateJob } from '../../../hands/scheduling/jobs.ts';
import { Grants, NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import { memStore, type MemStore } from '../../helpers/mem-store.ts';
import { waitFor } from '../../helpers/wait.ts';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
}

class FakeTime {
  now = T0;
  #timers = new Map<number, { at: number; fn: () => void | Promise<void> }>();
  #seq = 0;
  clock = { now: (): number => this.now };
  timers = {
    after: (ms: number, fn: () => void | Promise<void>): (() => void) => {
      const id = ++this.#seq;
      this.#timers.set(id, { at: this.now + ms, fn });
      return () => void this.#timers.delete(id);
    },
  };
  get pending(): number {
    return this.#timers.size;
  }
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void | Promise<void> }] | undefined;
      for (const t of this.#timers) if (t[1].at <= end && (!next || t[1].at < next[1].at)) next = t;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.now = Math.max(this.now, next[1].at);
      void next[1].fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

const note: Notification = {
  id: 'n1',
  source: 'hand:monitoring',
  topic: 'alerts/critical',
  priority: 'critical',
  title: 'Freezer warm',
  text: 'freezer at -5 °C',
  tags: [],
  at: T0,
  needsAck: true,
  ref: { kind: 'alert', id: 'al-7' },
};

const STEPS = [
  { to: ['anna'], afterMs: 1000 },
  { to: ['ben'], afterMs: 2000 },
  { to: ['ops'], afterMs: 3000 },
];

function local(store: MemStore, time: FakeTime): { esc: Escalations; notified: Array<[string, number, string[]]> } {
  const notified: Array<[string, number, string[]]> = [];
  const esc: Escalations = new Escalations({
    store,
    clock: time.clock,
    timers: localTimers(time.timers, time.clock, (a, s) => esc.fire(a, s)),
    notifyStep: async (e, i) => void notified.push([e.ackId, i, (e.steps[i] as { to: string[] }).to]),
  });
  return { esc, notified };
}

test('ack ids: 4 Crockford base32 characters, longer when taken, read the Crockford way', () => {
  let i = 0;
  const seq = [0.1, 0.5, 0.9, 0.3];
  const id = newAckId(() => seq[i++ % 4] as number);
  assert.match(id, /^[0-9A-HJKMNP-TV-Z]{4}$/);
  const random = (): number => 0; // always "0000"
  const long = newAckId(random, (x) => x.length === 4);
  assert.equal(long, '00000');
  assert.match(newAckId(), /^[0-9A-HJKMNP-TV-Z]{4}$/);
  assert.equal(normalizeAckId(' k3f9 '), 'K3F9');
  assert.equal(normalizeAckId('o1-il'), '0111');
});

test('steps fire in order, each after the wait of the one before, then it ends exhausted', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { esc, notified } = local(store, time);
  const e = await esc.start(note, STEPS, 'K3F9', { notifyFirst: true });
  assert.equal(e.step, 0);
  assert.equal(e.dueAt, T0 + 1000);
  assert.deepEqual(e.ref, { kind: 'alert', id: 'al-7' });
  assert.deepEqual(notified, [['K3F9', 0, ['anna']]]);
  await time.advance(999);
  assert.equal(notified.length, 1);
  await time.advance(1);
  assert.deepEqual(notified.at(-1), ['K3F9', 1, ['ben']]);
  await time.advance(2000);
  assert.deepEqual(notified.at(-1), ['K3F9', 2, ['ops']]);
  assert.equal((store.map.get(escKey('K3F9')) as Escalation).ended, undefined, 'the last step waits for an ack too');
  await time.advance(3000);
  assert.equal(notified.length, 3);
  const end = store.map.get(escKey('K3F9')) as Escalation;
  assert.equal(end.ended, 'exhausted');
  assert.equal(end.step, 2);
  assert.equal(esc.open, 0);
  assert.equal(time.pending, 0);
});

test('an ack on any channel stops the chain; a second ack and an unknown id answer without error', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { esc, notified } = local(store, time);
  await esc.start(note, STEPS, 'K3F9');
  assert.deepEqual(notified, [], 'step 0 is the Hand’s own message unless notifyFirst');
  await time.advance(1000);
  assert.equal(notified.length, 1);
  const r = await esc.ack('k3f9', 'telegram:1001', 'telegram');
  assert.equal(r.result, 'acked');
  assert.ok(r.result === 'acked');
  assert.deepEqual(r.escalation.acked, { by: 'telegram:1001', at: T0 + 1000, channel: 'telegram' });
  assert.equal(r.escalation.ended, 'acked');
  assert.equal(time.pending, 0, 'the timer is cancelled');
  await time.advance(60_000);
  assert.equal(notified.length, 1);
  const again = await esc.ack('K3F9', 'mail:boss@example.com', 'mail');
  assert.equal(again.result, 'already-acked');
  assert.ok(again.result === 'already-acked');
  assert.equal(again.escalation.acked?.by, 'telegram:1001');
  assert.deepEqual(await esc.ack('ZZZZ', 'x'), { result: 'not-found' });
  assert.equal(await esc.fire('K3F9', 2), undefined, 'a late timer is ignored');
});

test('ackByRef acknowledges the escalations about an alert acknowledged elsewhere', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { esc } = local(store, time);
  await esc.start(note, STEPS, 'AAAA');
  await esc.start({ ...note, id: 'n2', ref: { kind: 'alert', id: 'other' } }, STEPS, 'BBBB');
  await assert.rejects(esc.start(note, STEPS, 'AAAA'), /in use/);
  const acked = await esc.ackByRef('alert', 'al-7', 'hand:monitoring');
  assert.deepEqual(
    acked.map((e) => e.ackId),
    ['AAAA'],
  );
  assert.equal((await esc.get('BBBB'))?.ended, undefined);
  assert.equal(esc.open, 1);
});

test('fire is idempotent: a step fired twice or out of turn notifies once', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { esc, notified } = local(store, time);
  await esc.start(note, STEPS, 'K3F9');
  const [a, b] = await Promise.all([esc.fire('K3F9', 1), esc.fire('K3F9', 1)]);
  assert.equal(a?.step, 1);
  assert.equal(b, undefined);
  assert.equal(await esc.fire('K3F9', 3), undefined);
  assert.equal(await esc.fire('NOPE', 1), undefined);
  assert.equal(notified.length, 1);
});

test('a step whose notifying fails is tried again later, not skipped', async () => {
  const store = memStore();
  const time = new FakeTime();
  let fail = true;
  const calls: number[] = [];
  const esc: Escalations = new Escalations({
    store,
    clock: time.clock,
    timers: localTimers(time.timers, time.clock, (a, s) => esc.fire(a, s)),
    notifyStep: async (_e, i) => {
      calls.push(i);
      if (fail) throw new Error('store full');
    },
  });
  await esc.start(note, STEPS, 'K3F9');
  await time.advance(1000);
  assert.deepEqual(calls, [1]);
  assert.equal((await esc.get('K3F9'))?.step, 0);
  fail = false;
  await time.advance(30_000);
  assert.deepEqual(calls, [1, 1]);
  assert.equal((await esc.get('K3F9'))?.step, 1);
});

test('a restart re-arms what is not due and fires what became due while the Hand was down', async () => {
  const store = memStore();
  const t1 = new FakeTime();
  const first = local(store, t1);
  await first.esc.start(note, STEPS, 'AAAA');
  t1.now += 500;
  await first.esc.start({ ...note, id: 'n2' }, STEPS, 'BBBB');
  // the Hand stops (its local timers die with it); it starts again 1200 ms after the first start
  const t2 = new FakeTime();
  t2.now = T0 + 1200;
  const second = local(memStore(store.map), t2);
  assert.deepEqual(await second.esc.resume(), { fired: 1, armed: 1 });
  assert.deepEqual(second.notified, [['AAAA', 1, ['ben']]]);
  await t2.advance(299);
  assert.equal(second.notified.length, 1);
  await t2.advance(1);
  assert.deepEqual(second.notified.at(-1), ['BBBB', 1, ['ben']]);
  // AAAA's step 1 went at +1200 (due +3200), BBBB's at +1500 (due +3500)
  await t2.advance(1999);
  assert.deepEqual(
    second.notified.map(([a, s]) => `${a}${s}`),
    ['AAAA1', 'BBBB1', 'AAAA2'],
  );
  // the ack ids of open escalations are known after the restart
  assert.equal(second.esc.open, 2);
  await assert.rejects(second.esc.start(note, STEPS, 'AAAA'), /in use/);
});

/** a HandContext with just a bus (exact topics, delivered on the next tick) and real timers, for the TaskClient */
function busCtx(name: string): {
  ctx: HandContext;
  published: Array<{ topic: string; payload: unknown }>;
  serve(topic: string, fn: (payload: unknown) => void): void;
  close(): void;
} {
  const subs = new Map<string, Array<(m: BusMessageIn) => void | Promise<void>>>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const published: Array<{ topic: string; payload: unknown }> = [];
  const deliver = (topic: string, payload: unknown): void => {
    const text = JSON.stringify(payload);
    const msg: BusMessageIn = { topic, payload: Buffer.from(text), text, json: payload, retain: false };
    for (const fn of subs.get(topic) ?? []) setImmediate(() => void fn(msg));
  };
  const ctx = {
    name,
    bus: {
      publish(topic: string, payload: unknown) {
        published.push({ topic, payload });
        deliver(topic, payload);
      },
      async subscribe(filter: string, fn: (m: BusMessageIn) => void | Promise<void>) {
        subs.set(filter, [...(subs.get(filter) ?? []), fn]);
        return async () =>
          void subs.set(
            filter,
            (subs.get(filter) ?? []).filter((f) => f !== fn),
          );
      },
    },
    timers: {
      after(ms: number, fn: () => void | Promise<void>) {
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
      every() {
        return () => undefined;
      },
    },
  } as unknown as HandContext;
  return {
    ctx,
    published,
    serve(topic, fn) {
      void ctx.bus.subscribe(topic, (m) => fn(m.json));
    },
    close() {
      for (const t of timers) clearTimeout(t);
    },
  };
}

test('scheduler timers put and remove Scheduling Hand jobs through the task protocol', async () => {
  const bus = busCtx('comms');
  const tasks: unknown[] = [];
  const jobs = new Map<string, unknown>();
  // the Scheduling Hand's side of the protocol: answers put/remove like hands/scheduling/index.ts
  bus.serve('hands/scheduler/tasks', (req) => {
    const r = req as { id: string; replyTo: string; task: { op: string; id?: string; job?: { id: string } } };
    tasks.push(r.task);
    let reply: unknown;
    if (r.task.op === 'put' && r.task.job) {
      jobs.set(r.task.job.id, r.task.job);
      reply = { id: r.id, ok: true, result: { job: { id: r.task.job.id }, created: true } };
    } else if (r.task.op === 'remove' && r.task.id && jobs.delete(r.task.id))
      reply = { id: r.id, ok: true, result: { removed: r.task.id } };
    else reply = { id: r.id, ok: false, error: { code: 'NOT_FOUND', message: 'no such job' } };
    bus.ctx.bus.publish(r.replyTo, reply);
  });
  try {
    const store = memStore();
    const time = new FakeTime();
    const notified: number[] = [];
    const esc = new Escalations({
      store,
      clock: time.clock,
      timers: schedulerTimers(bus.ctx, 'scheduler', 'comms', { timeoutMs: 5000 }),
      notifyStep: async (_e, i) => void notified.push(i),
    });
    const e = await esc.start(note, STEPS, 'K3F9');
    assert.equal(e.job, 'esc-k3f9-1');
    assert.equal((store.map.get(escKey('K3F9')) as Escalation).job, 'esc-k3f9-1');
    const put = tasks[0] as { op: string; job: Record<string, unknown> };
    assert.equal(put.op, 'put');
    assert.deepEqual(
      { ...put.job, description: undefined },
      {
        id: 'esc-k3f9-1',
        description: undefined,
        trigger: { at: new Date(T0 + 1000).toISOString() },
        action: { publish: { topic: 'hands/comms/escalate', payload: { ackId: 'K3F9', step: 1 } } },
      },
    );
    assert.match(String(put.job.description), /K3F9.*Freezer warm/);
    assert.equal(bus.published[0]?.topic, 'hands/scheduler/tasks');
    // the Scheduling Hand itself accepts the job (its publish grant covers the topic)
    const ROOT = 'talon/dev1';
    const grants = new Grants(
      { ...NO_CAPABILITIES, bus: { publish: [`${ROOT}/hands/comms/escalate`], subscribe: [] } },
      ROOT,
    );
    await validateJob(put.job, {
      grants,
      self: 'scheduler',
      deviceRoot: ROOT,
      jobs: new Map(),
      handExists: () => true,
    });
    // the job fires: it publishes { ackId, step }, the Hand passes it to fire()
    time.now = T0 + 1000;
    const after = await esc.fire('K3F9', 1);
    assert.deepEqual(notified, [1]);
    assert.equal(after?.job, 'esc-k3f9-2');
    assert.deepEqual(
      tasks
        .slice(1)
        .map((t) => [(t as { op: string }).op, (t as { id?: string }).id ?? (t as { job: { id: string } }).job.id]),
      [
        ['remove', 'esc-k3f9-1'],
        ['put', 'esc-k3f9-2'],
      ],
    );
    const acked = await esc.ack('K3F9', 'mail:boss@example.com', 'mail');
    assert.equal(acked.result, 'acked');
    assert.deepEqual(tasks.at(-1), { op: 'remove', id: 'esc-k3f9-2' });
    assert.equal(jobs.size, 0);
    assert.equal((store.map.get(escKey('K3F9')) as Escalation).job, undefined);
  } finally {
    bus.close();
  }
});

test('preferTimers falls back to local timers when the scheduler does not answer', async () => {
  const bus = busCtx('comms');
  try {
    const store = memStore();
    const time = new FakeTime();
    const notified: number[] = [];
    const warnings: string[] = [];
    const esc: Escalations = new Escalations({
      store,
      clock: time.clock,
      timers: preferTimers(
        schedulerTimers(bus.ctx, 'scheduler', 'comms', { timeoutMs: 50 }),
        localTimers(time.timers, time.clock, (a, s) => esc.fire(a, s)),
        { warn: (m) => void warnings.push(m) },
      ),
      notifyStep: async (_e, i) => void notified.push(i),
    });
    const e = await esc.start(note, STEPS, 'K3F9');
    assert.equal(e.job, undefined);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /did not answer/);
    await time.advance(1000);
    await waitFor(() => notified.length === 1, 'the local timer fires step 1');
  } finally {
    bus.close();
  }
});

test('an EscalationTimers fake sees arm for each step and cancel on ack', async () => {
  const calls: string[] = [];
  const timers: EscalationTimers = {
    arm: async (e) => void calls.push(`arm ${e.ackId} ${e.step + 1} @${e.dueAt - T0}`),
    cancel: async (e) => void calls.push(`cancel ${e.ackId}`),
  };
  const time = new FakeTime();
  const esc = new Escalations({ store: memStore(), clock: time.clock, timers, notifyStep: async () => undefined });
  await esc.start(note, STEPS, 'K3F9');
  time.now = T0 + 1000;
  await esc.fire('K3F9', 1);
  await esc.ack('K3F9', 'cli');
  assert.deepEqual(calls, ['arm K3F9 1 @1000', 'cancel K3F9', 'arm K3F9 2 @3000', 'cancel K3F9']);
});
