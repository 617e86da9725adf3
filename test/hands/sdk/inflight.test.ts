/**
 * InFlight (hands/sdk/inflight.ts): a second ask while a key's run is going joins it; keys are independent; a
 * settled run (resolved or rejected) is forgotten before its callers resume; a start that throws is not kept;
 * settled() waits for the runs and never rejects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InFlight } from '../../../hands/sdk/index.ts';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('a second ask for a key in flight gets the same promise; another key starts its own run', async () => {
  const runs = new InFlight<string, number>();
  const started: string[] = [];
  const a = deferred<number>();
  const b = deferred<number>();
  const p1 = runs.run('a', () => (started.push('a'), a.promise));
  const p2 = runs.run('a', () => (started.push('a again'), Promise.resolve(-1)));
  const p3 = runs.run('b', () => (started.push('b'), b.promise));
  assert.equal(p1, p2);
  assert.notEqual(p1, p3);
  assert.deepEqual(started, ['a', 'b']);
  assert.equal(runs.size, 2);
  assert.ok(runs.has('a'));
  assert.equal(runs.get('a'), p1);
  assert.deepEqual(runs.keys().sort(), ['a', 'b']);
  a.resolve(1);
  assert.equal(await p2, 1);
  assert.equal(runs.has('a'), false, 'forgotten before the awaiting caller resumed');
  assert.equal(runs.size, 1);
  const p4 = runs.run('a', () => (started.push('a fresh'), Promise.resolve(2)));
  assert.notEqual(p4, p1);
  assert.equal(await p4, 2);
  b.resolve(3);
  assert.equal(await p3, 3);
  assert.equal(runs.size, 0);
  assert.equal(runs.get('b'), undefined);
});

test('a rejected run is forgotten too, and every joiner sees the error', async () => {
  const runs = new InFlight<number, string>();
  const d = deferred<string>();
  const p1 = runs.run(7, () => d.promise);
  const p2 = runs.run(7, () => Promise.resolve('never'));
  d.reject(new Error('broke'));
  await assert.rejects(p1, /broke/);
  await assert.rejects(p2, /broke/);
  assert.equal(runs.has(7), false);
  assert.equal(await runs.run(7, async () => 'again'), 'again');
});

test('a start that throws is a rejected promise and is not kept', async () => {
  const runs = new InFlight<string, number>();
  const p = runs.run('x', () => {
    throw new Error('no start');
  });
  await assert.rejects(p, /no start/);
  assert.equal(runs.size, 0);
});

test('settled() waits for the runs in flight and does not reject', async () => {
  const runs = new InFlight<string, number>();
  const a = deferred<number>();
  const b = deferred<number>();
  const pa = runs.run('a', () => a.promise);
  const pb = runs.run('b', () => b.promise);
  pb.catch(() => undefined);
  let done = false;
  const waiting = runs.settled().then(() => {
    done = true;
  });
  a.resolve(1);
  await pa;
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'b is still going');
  b.reject(new Error('b failed'));
  await waiting;
  assert.equal(done, true);
  assert.equal(runs.size, 0);
  await runs.settled();
});
