/**
 * The Scheduling Hand under a faked wall clock, on the real daemon: libfaketime (LD_PRELOAD) moves the daemon's
 * wall clock (Date.now in the process and its workers) by what a file says, re-read on every call; the monotonic
 * clock stays real (FAKETIME_DONT_FAKE_MONOTONIC), as on a board whose NTP sets the time.
 *  - forward 2 h: a per-second cron job with catch-up `last` runs the catch-up's one and then its normal times,
 *    not a burst of 7,200; back 1 h: no scheduled time runs twice; an `every: 1s` job keeps one run per real second;
 *  - a clock in 1970 (a Raspberry Pi before NTP): a cron job waits (`clock-unsynchronised`) and runs once the
 *    clock is right.
 * Counts are compared with real seconds in ranges; nothing here asserts a duration.
 */
import { test, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, ensureBuilt, poll, startDaemon, type Daemon } from '../helpers/daemon.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** libfaketime's library on this machine (Debian's path per architecture), or null */
function faketimeLib(): string | null {
  const triplet = process.arch === 'arm64' ? 'aarch64-linux-gnu' : process.arch === 'x64' ? 'x86_64-linux-gnu' : '';
  const guess = `/usr/lib/${triplet}/faketime/libfaketime.so.1`;
  if (triplet && existsSync(guess)) return guess;
  const r = spawnSync('dpkg', ['-L', 'libfaketime'], { encoding: 'utf8' });
  const found = (r.stdout ?? '').split('\n').find((l) => l.endsWith('/libfaketime.so.1'));
  return found && existsSync(found) ? found : null;
}

const LIB = faketimeLib();
const skip = LIB ? false : 'libfaketime is not installed (apt-get install faketime)';

interface Run {
  runId: string;
  scheduledAt: number;
  cause: string;
  status: string;
}

async function history(d: Daemon, id: string): Promise<Run[]> {
  const r = await api(d, 'GET', `/api/v1/schedules/${id}/history?limit=200`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const b = r.body as Run[] | { runs?: Run[]; history?: Run[]; items?: Run[] };
  const list = Array.isArray(b) ? b : (b.runs ?? b.history ?? b.items);
  assert.ok(Array.isArray(list), JSON.stringify(b).slice(0, 300));
  return list;
}

/** a daemon whose wall clock follows `file` (`+7200`, `-3600`, `@1970-01-02 00:00:00`) */
async function fakedDaemon(file: string, jobs: unknown[]): Promise<Daemon> {
  const d = await startDaemon(
    {
      hands: [
        {
          name: 'scheduler',
          module: 'scheduling',
          settings: { jobs },
          capabilities: {
            bus: {
              publish: ['hands/+/tasks', 'hands/+/replies', 'hands/scheduler/#'],
              subscribe: ['hands/scheduler/tasks', 'hands/scheduler/replies'],
            },
          },
        },
      ],
    },
    {
      env: {
        LD_PRELOAD: LIB!,
        FAKETIME_TIMESTAMP_FILE: file,
        FAKETIME_NO_CACHE: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      },
    },
  );
  await poll(
    `the Scheduling Hand answering\n${d.output().slice(-3000)}`,
    async () => (await api(d, 'GET', '/api/v1/schedules')).status === 200,
    30_000,
  );
  return d;
}

before(() => {
  if (LIB) ensureBuilt();
});

describe('the Scheduling Hand under a faked wall clock', { concurrency: true }, () => {
  test('jumps forward 2 h and back 1 h: no burst, no time run twice, intervals keep their rhythm', {
    skip,
    timeout: 90_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'talon-faketime-'));
    const file = join(dir, 'offset');
    writeFileSync(file, '+0\n');
    const publish = (topic: string) => ({ publish: { topic: `hands/scheduler/${topic}`, payload: '{{scheduledAt}}' } });
    const d = await fakedDaemon(file, [
      {
        id: 'sec',
        trigger: { cron: '* * * * * *' },
        action: publish('sec'),
        policy: { overlap: 'allow', catchUp: { mode: 'last' } },
      },
      { id: 'beat', trigger: { every: '1s' }, action: publish('beat'), policy: { overlap: 'allow' } },
    ]);
    try {
      await poll(
        'the first runs',
        async () => (await history(d, 'sec')).length >= 2 && (await history(d, 'beat')).length >= 2,
      );
      // phase 1: the real clock
      await sleep(4000);
      const sec0 = await history(d, 'sec');
      const beat0 = await history(d, 'beat');
      // phase 2: forward 2 h
      writeFileSync(file, '+7200\n');
      let t = performance.now();
      await sleep(8000);
      let real = (performance.now() - t) / 1000;
      const sec1 = await history(d, 'sec');
      const beat1 = await history(d, 'beat');
      const newSec = sec1.filter((r) => !sec0.some((o) => o.runId === r.runId));
      const what = `${newSec.length} sec runs in ${real.toFixed(1)} real s: ${JSON.stringify(newSec.map((r) => [r.scheduledAt, r.cause]))}`;
      assert.ok(newSec.length <= real + 1 + 3, `no burst after the jump forward: ${what}`);
      assert.ok(newSec.length >= real - 4, `the cron job keeps running after the jump: ${what}`);
      assert.ok(newSec.filter((r) => r.cause === 'catch-up').length <= 1, `at most one catch-up: ${what}`);
      const maxBefore = Math.max(...sec0.map((r) => r.scheduledAt));
      assert.ok(
        newSec.some((r) => r.scheduledAt > maxBefore + 7000_000),
        `runs at the new (forward) time: ${what}`,
      );
      const beatNew1 = beat1.length - beat0.length;
      assert.ok(
        beatNew1 >= real - 3 && beatNew1 <= real + 2,
        `every 1s: ${beatNew1} runs in ${real.toFixed(1)} real s`,
      );

      // phase 3: back 1 h (still later than the build, so the clock stays trusted)
      const highWater = Math.max(...sec1.map((r) => r.scheduledAt));
      writeFileSync(file, '+3600\n');
      t = performance.now();
      await sleep(6000);
      real = (performance.now() - t) / 1000;
      const sec2 = await history(d, 'sec');
      const beat2 = await history(d, 'beat');
      const times = sec2.map((r) => r.scheduledAt);
      assert.equal(new Set(times).size, times.length, `no scheduled time twice: ${JSON.stringify(times)}`);
      const newAfterBack = sec2.filter((r) => !sec1.some((o) => o.runId === r.runId));
      assert.ok(
        newAfterBack.every((r) => r.scheduledAt > highWater),
        `nothing at or before the high-water mark ran again: ${JSON.stringify(newAfterBack)}`,
      );
      const beatNew2 = beat2.length - beat1.length;
      assert.ok(
        beatNew2 >= real - 3 && beatNew2 <= real + 2,
        `every 1s keeps its rhythm after the jump back: ${beatNew2} runs in ${real.toFixed(1)} real s`,
      );
      const beatIds = beat2.map((r) => r.runId);
      assert.equal(new Set(beatIds).size, beatIds.length, 'no interval run id twice');
      // the engine saw the two jumps (the metrics read them from stats)
      const m = await fetch(`http://127.0.0.1:${d.httpPort}/metrics`, {
        headers: { authorization: `Bearer ${d.token()}` },
      });
      const text = await m.text();
      const sync = /talon_schedule_clock_synced\S*\s+(\d)/.exec(text);
      if (sync) assert.equal(sync[1], '1', 'the clock still counts as synchronised');
    } finally {
      await d.stop();
      rmSync(d.dataDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a clock in 1970: a cron job waits, then runs once the clock is right', { skip, timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'talon-faketime-'));
    const file = join(dir, 'offset');
    writeFileSync(file, '@1970-01-02 00:00:00\n');
    const d = await fakedDaemon(file, [
      {
        id: 'boot-cron',
        trigger: { cron: '* * * * * *' },
        action: { publish: { topic: 'hands/scheduler/boot', payload: '{{scheduledAt}}' } },
        policy: { catchUp: { mode: 'last' } },
      },
    ]);
    try {
      const view = await poll('boot-cron waiting for the clock', async () => {
        const r = await api(d, 'GET', '/api/v1/schedules/boot-cron');
        const v = (r.body?.job ?? r.body) as { waiting?: string };
        return r.status === 200 && v.waiting === 'clock-unsynchronised' ? v : null;
      });
      assert.equal(view.waiting, 'clock-unsynchronised');
      await sleep(3000);
      assert.deepEqual(await history(d, 'boot-cron'), [], 'no run at a 1970 time');
      // NTP arrives
      writeFileSync(file, '+0\n');
      const runs = await poll(
        'boot-cron running once the clock is right',
        async () => {
          const h = await history(d, 'boot-cron');
          return h.some((r) => r.status === 'success') ? h : null;
        },
        // the engine re-checks an untrusted clock at its wake-ups and the Hand asks the kernel every 10 s: a run
        // follows NTP within seconds, not minutes
        45_000,
      );
      assert.ok(
        runs.every((r) => r.scheduledAt > Date.parse('2020-01-01')),
        `no 1970 time: ${JSON.stringify(runs.map((r) => r.scheduledAt))}`,
      );
      const v = await api(d, 'GET', '/api/v1/schedules/boot-cron');
      assert.equal((v.body?.job ?? v.body).waiting, undefined, JSON.stringify(v.body));
    } finally {
      await d.stop();
      rmSync(d.dataDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
