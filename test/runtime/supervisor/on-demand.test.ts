/**
 * Hands on demand (runtime/supervisor/pool.ts): not started at boot, started by a message to the
 * task inbox (the message is not lost), stopped after idleStopMs without work (audited as an idle
 * stop), started again by the next message; a person's stop disarms it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT, startHarness, waitFor, waitState } from '../../helpers/supervisor-harness.ts';
import type { BusMessage } from '../../../runtime/bus/types.ts';

const INBOX = `${ROOT}/hands/od/tasks`;

function task(id: string, value: unknown, ms = 0): string {
  return JSON.stringify({ id, replyTo: 'test/replies/od', task: { value, ms } });
}

function answers(got: BusMessage[]): Array<{ id: string; ok: boolean; result: { echo: unknown; worker: string } }> {
  return got.map((m) => JSON.parse(m.payload.toString('utf8')));
}

test('an on-demand Hand starts on an inbox message, answers it, stops when idle and starts again', async (t) => {
  const h = await startHarness([{ name: 'od', fixture: 'ondemand-echo', mode: 'on-demand', idleStopMs: 1000 }]);
  t.after(() => h.close());
  const replies = await h.collect(`${ROOT}/test/replies/#`);

  // not started at boot: stopped, on-demand, armed
  const boot = h.sup.status('od');
  assert.equal(boot.state, 'stopped');
  assert.equal(boot.mode, 'on-demand');
  assert.deepEqual(boot.onDemand, { armed: true, idleStopMs: 1000, queued: 0 });
  assert.equal(boot.uptimeMs, 0);

  // the messages that wake it are all answered, each once
  for (let i = 0; i < 5; i++) await h.bus.publish(INBOX, task(`a${i}`, i), { qos: 1 });
  await waitFor('5 answers', () => replies.length >= 5);
  const first = answers(replies);
  assert.deepEqual(first.map((a) => a.id).sort(), ['a0', 'a1', 'a2', 'a3', 'a4']);
  assert.ok(first.every((a) => a.ok === true));
  assert.deepEqual(first.map((a) => a.result.echo).sort(), [0, 1, 2, 3, 4]);
  assert.equal(h.sup.status('od').state, 'running');
  const worker1 = first[0]!.result.worker;

  // idle for idleStopMs: stopped by the kernel, still armed
  const idle = await waitState(h.sup, 'od', 'stopped');
  assert.equal(idle.onDemand?.armed, true);
  let entries = await h.auditEntries();
  const starts = entries.filter((e) => e.action === 'hand.start' && e.subject === 'od');
  assert.equal(starts.length, 1);
  assert.equal(starts[0]!.actor, 'kernel');
  assert.equal((starts[0]!.detail as { reason?: string }).reason, 'inbox');
  const stops = entries.filter((e) => e.action === 'hand.stop' && e.subject === 'od');
  assert.equal(stops.length, 1);
  assert.equal(stops[0]!.actor, 'kernel');
  assert.equal((stops[0]!.detail as { reason?: string }).reason, 'idle');

  // the next message starts it again (a new worker) and is answered
  await h.bus.publish(INBOX, task('b0', 'again'), { qos: 1 });
  await waitFor('the answer after the idle stop', () => replies.length >= 6);
  const again = answers(replies)[5]!;
  assert.equal(again.id, 'b0');
  assert.deepEqual(again.result.echo, 'again');
  assert.notEqual(again.result.worker, worker1, 'a new worker answered');
  assert.equal(replies.length, 6, 'nothing answered twice');
  entries = await h.auditEntries();
  assert.equal(entries.filter((e) => e.action === 'hand.start' && e.subject === 'od').length, 2);
});

test("a person's stop disarms an on-demand Hand; startHand starts and arms it again", async (t) => {
  const h = await startHarness([{ name: 'od', fixture: 'ondemand-echo', mode: 'on-demand', idleStopMs: 60_000 }]);
  t.after(() => h.close());
  const replies = await h.collect(`${ROOT}/test/replies/#`);
  const inbox = await h.collect(INBOX);

  // an armed, stopped Hand: stopHand disarms it (audited), a second stop is refused
  const s = await h.sup.stopHand('od', { actor: 'cli' });
  assert.equal(s.state, 'stopped');
  assert.equal(s.onDemand?.armed, false);
  await assert.rejects(
    h.sup.stopHand('od', { actor: 'cli' }),
    (e: Error & { code?: string }) => e.code === 'HAND_STATE',
  );
  await h.bus.publish(INBOX, task('x', 1), { qos: 1 });
  await waitFor('the message on the bus', () => inbox.length >= 1);
  assert.equal(h.sup.status('od').state, 'stopped', 'a disarmed Hand is not started by its inbox');

  // startHand: running and armed; a task is answered
  const started = await h.sup.startHand('od', { actor: 'cli' });
  assert.equal(started.state, 'running');
  assert.equal(started.onDemand?.armed, true);
  await h.bus.publish(INBOX, task('y', 2), { qos: 1 });
  await waitFor('the answer', () => replies.length >= 1);
  assert.equal(answers(replies)[0]!.id, 'y');

  // a stop of the running Hand: stopped, disarmed, audited with the person as actor
  const stopped = await h.sup.stopHand('od', { actor: 'cli' });
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.onDemand?.armed, false);
  const entries = await h.auditEntries();
  const stops = entries.filter((e) => e.action === 'hand.stop' && e.subject === 'od');
  assert.deepEqual(
    stops.map((e) => [e.actor, (e.detail as { reason?: string }).reason]),
    [
      ['cli', 'disarmed'],
      ['cli', undefined],
    ],
  );
});

test('messages over the wake buffer are dropped and counted, the rest answered', async (t) => {
  const h = await startHarness([{ name: 'od', fixture: 'ondemand-echo', mode: 'on-demand', idleStopMs: 60_000 }]);
  t.after(() => h.close());
  const replies = await h.collect(`${ROOT}/test/replies/#`);
  // published at once: the Hand takes longer to start than the bus to deliver 130 messages
  await Promise.all(Array.from({ length: 130 }, (_, i) => h.bus.publish(INBOX, task(`m${i}`, i), { qos: 0 })));
  const st = await waitState(h.sup, 'od', (s) => s.state === 'running' && replies.length + s.messages.dropped >= 130);
  const ids = new Set(answers(replies).map((a) => a.id));
  assert.equal(ids.size, replies.length, 'each answered once');
  assert.ok(replies.length >= 100, `at least the buffer's 100 answered, got ${replies.length}`);
  assert.equal(replies.length + st.messages.dropped, 130);
});

test('a request to an armed on-demand Hand starts it; it counts as work', async (t) => {
  const h = await startHarness([{ name: 'od', fixture: 'ondemand-echo', mode: 'on-demand', idleStopMs: 1000 }]);
  t.after(() => h.close());
  assert.equal(h.sup.status('od').state, 'stopped');
  const answer = (await h.sup.request('od', 'ping', {})) as { pong: string };
  assert.equal(typeof answer.pong, 'string');
  assert.equal(h.sup.status('od').state, 'running');
  await waitState(h.sup, 'od', 'stopped');
  const entries = await h.auditEntries();
  const start = entries.find((e) => e.action === 'hand.start' && e.subject === 'od');
  assert.equal((start?.detail as { reason?: string }).reason, 'request');
});

test('a task in flight longer than idleStopMs keeps the Hand up until it is answered', async (t) => {
  const h = await startHarness([{ name: 'od', fixture: 'ondemand-echo', mode: 'on-demand', idleStopMs: 1000 }]);
  t.after(() => h.close());
  const replies = await h.collect(`${ROOT}/test/replies/#`);
  await h.bus.publish(INBOX, task('slow', 'late', 2500), { qos: 1 });
  // an idle stop in between would end the worker and the answer would never come
  await waitFor('the slow answer', () => replies.length >= 1, 15_000);
  assert.equal(answers(replies)[0]!.id, 'slow');
  const entries = await h.auditEntries();
  assert.equal(entries.filter((e) => e.action === 'hand.stop' && e.subject === 'od').length, 0, 'no stop before it');
  await waitState(h.sup, 'od', 'stopped');
});
