/**
 * ScheduleSync (hands/sdk/schedules.ts) against a fake Scheduling Hand on the fake context's bus, speaking the task
 * protocol as the real one does (answers on the asker's reply topic), and croner's real Cron: schedules put as jobs,
 * a refusal and a silent scheduler falling back to local timers (which really fire), retry(), the tidy of stale
 * jobs (only this Hand's), stop().
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cron } from 'croner';
import { ScheduleSync, type ScheduledJob } from '../../../hands/sdk/index.ts';
import { TaskClient } from '../../../hands/sdk/tasks.ts';
import { fakeCtx, type FakeCtx } from '../scheduling/fake-ctx.ts';

type Task = { op: string; job?: { id: string }; id?: string };
type Answer = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } } | 'silent';

const open: FakeCtx[] = [];
afterEach(() => {
  for (const f of open.splice(0)) f.close();
});

async function until(ok: () => boolean, ms = 4000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** a Hand `research` on a fake context, its ScheduleSync, a fake scheduler `scheduler` and the live timer count */
async function make(
  answer: (t: Task) => Answer | Promise<Answer>,
  opts: { prefix?: string | null; retryMs?: number } = {},
) {
  const f = fakeCtx({ name: 'research' });
  open.push(f);
  let live = 0;
  const after = f.ctx.timers.after;
  f.ctx.timers.after = (ms, fn) => {
    live++;
    let done = false;
    const end = (): void => {
      if (!done) live--;
      done = true;
    };
    const cancel = after(ms, () => {
      end();
      return fn();
    });
    return () => {
      end();
      cancel();
    };
  };
  const asked: Task[] = [];
  await f.ctx.bus.subscribe('hands/scheduler/tasks', async (m) => {
    const req = m.json as { id: string; replyTo: string; task: Task };
    asked.push(req.task);
    const a = await answer(req.task);
    if (a !== 'silent') f.deliver(req.replyTo, { id: req.id, ...a });
  });
  const sync = new ScheduleSync({
    ctx: f.ctx,
    client: new TaskClient(f.ctx),
    Cron,
    label: 'research',
    ...(opts.prefix !== null && { prefix: opts.prefix ?? 'research-research-' }),
    timeoutMs: 500,
    retryMs: opts.retryMs ?? 60_000,
  });
  return { f, sync, asked, live: () => live };
}

function job(id: string, cron = '0 7 * * *', fire: () => Promise<unknown> = async () => undefined): ScheduledJob {
  return {
    id,
    cron,
    job: { id, trigger: { cron }, action: { ask: { hand: 'research', task: { op: 'run', topic: id } } } },
    fire,
  };
}

const listed = (id: string, hand = 'research', source = 'api') => ({
  id,
  source,
  spec: { action: { ask: { hand, task: {} } } },
});

const ok = (result: unknown): Answer => ({ ok: true, result });

test("scheduler '': every schedule on a local timer that fires (a failing run is logged); the scheduler is not asked", async () => {
  const m = await make(() => ok({}));
  let runs = 0;
  await m.sync.sync('', [
    job('research-research-a', '* * * * * *', async () => void runs++),
    job('research-research-b', '* * * * * *', async () => {
      throw new Error('the run broke');
    }),
  ]);
  assert.equal(m.sync.by('research-research-a'), 'local');
  assert.equal(m.sync.by('research-research-b'), 'local');
  assert.equal(m.sync.by('research-research-c'), undefined);
  assert.equal(m.sync.anyLocal, true);
  assert.equal(m.live(), 2);
  await until(() => runs >= 1 && m.f.logs.some(([l, msg]) => l === 'error' && msg.includes('the run broke')));
  assert.ok(
    m.f.logs.some(
      ([l, msg]) => l === 'error' && msg === 'research: the scheduled research-research-b failed: the run broke',
    ),
  );
  assert.equal(m.live(), 2, 'each timer armed again after firing');
  assert.deepEqual(m.asked, []);
  await m.sync.retry();
  assert.deepEqual(m.asked, [], "retry() with scheduler '' asks nothing");
  m.sync.stop();
  assert.equal(m.live(), 0, 'stop() cancels the timers');
});

test("the scheduler takes the jobs; its stale jobs of this Hand are removed, nobody else's", async () => {
  const m = await make((t) =>
    t.op === 'list'
      ? ok({
          jobs: [
            listed('research-research-a'),
            listed('research-research-gone'),
            { id: 'research-research-bare', source: 'api' },
            listed('research-research-2-gone', 'research-2'),
            listed('research-research-in-config', 'research', 'config'),
            listed('nightly-backup', 'backup'),
          ],
        })
      : ok({}),
  );
  await m.sync.sync('scheduler', [job('research-research-a'), job('research-research-b')]);
  assert.deepEqual(
    m.asked.map((t) => (t.op === 'put' ? `put ${t.job!.id}` : t.op === 'remove' ? `remove ${t.id}` : t.op)),
    [
      'put research-research-a',
      'put research-research-b',
      'list',
      'remove research-research-gone',
      'remove research-research-bare',
    ],
  );
  assert.deepEqual(m.asked[0]!.job, job('research-research-a').job, 'the job as given');
  assert.equal(m.sync.by('research-research-a'), 'scheduler');
  assert.equal(m.sync.anyLocal, false);
  assert.equal(m.live(), 0, 'no local timer');
  assert.ok(m.f.logs.some(([l, msg]) => l === 'info' && msg.includes('removed the job research-research-gone')));
  m.asked.length = 0;
  await m.sync.sync('scheduler', [job('research-research-a'), job('research-research-b')]);
  assert.ok(!m.asked.some((t) => t.op === 'put'), 'a job already taken is not put again');
  assert.equal(m.asked[0]?.op, 'list', 'the stale jobs are looked for again');
});

test('without a prefix nothing is listed or removed', async () => {
  const m = await make(() => ok({}), { prefix: null });
  await m.sync.sync('scheduler', [job('research-research-a')]);
  assert.deepEqual(
    m.asked.map((t) => t.op),
    ['put'],
  );
  assert.throws(
    () => new ScheduleSync({ ctx: m.f.ctx, client: new TaskClient(m.f.ctx), Cron, label: 'x', prefix: '' }),
    /prefix must not be empty/,
  );
  await assert.rejects(
    m.sync.sync('scheduler', [{ ...job('research-research-b'), id: 'research-research-c' }]),
    /wanted\[0\]\.job\.id \("research-research-b"\) must be wanted\[0\]\.id \("research-research-c"\)/,
  );
});

test('a refused job runs on a local timer (an error); the next is still put and the stale jobs tidied', async () => {
  const m = await make((t) =>
    t.op === 'put' && t.job!.id === 'research-research-a'
      ? { ok: false, error: { code: 'BAD_REQUEST', message: 'trigger.cron: not a cron' } }
      : ok({ jobs: [] }),
  );
  await m.sync.sync('scheduler', [job('research-research-a'), job('research-research-b')]);
  assert.equal(m.sync.by('research-research-a'), 'local');
  assert.equal(m.sync.by('research-research-b'), 'scheduler');
  assert.deepEqual(
    m.asked.map((t) => t.op),
    ['put', 'put', 'list'],
  );
  assert.ok(
    m.f.logs.some(
      ([l, msg]) => l === 'error' && /refused the job research-research-a: trigger\.cron: not a cron/.test(msg),
    ),
  );
  assert.equal(m.live(), 1);
});

test('a job id the Scheduling Hand would refuse is not sent: a local timer', async () => {
  const m = await make(() => ok({ jobs: [] }));
  const long = `research-research-${'x'.repeat(60)}`;
  await m.sync.sync('scheduler', [job(long), job('research-research-a')]);
  assert.equal(m.sync.by(long), 'local');
  assert.equal(m.sync.by('research-research-a'), 'scheduler');
  assert.deepEqual(
    m.asked.map((t) => (t.op === 'put' ? t.job!.id : t.op)),
    ['research-research-a', 'list'],
  );
  assert.ok(m.f.logs.some(([l, msg]) => l === 'warn' && msg.includes(`${long} is not a Scheduling Hand job id`)));
});

test('a scheduler that does not answer: all on local timers, warned once, nothing tidied; retry() puts them', async () => {
  let answering = false;
  const m = await make((t) => (answering ? ok(t.op === 'list' ? { jobs: [] } : {}) : 'silent'));
  const wanted = [job('research-research-a'), job('research-research-b')];
  await m.sync.sync('scheduler', wanted);
  assert.deepEqual(
    m.asked.map((t) => t.op),
    ['put'],
    'only the first put is waited for',
  );
  assert.equal(m.sync.by('research-research-a'), 'local');
  assert.equal(m.sync.by('research-research-b'), 'local');
  const warned = m.f.logs.filter(([l]) => l === 'warn').map(([, msg]) => msg);
  assert.equal(warned.length, 1, warned.join('\n'));
  assert.match(
    warned[0]!,
    /^research: the Scheduling Hand "scheduler" did not take the schedules \(it did not take the job research-research-a: .*did not answer.*\); they run on the Hand's own timers$/,
  );
  assert.equal(m.live(), 3, 'two local timers and the retry');
  answering = true;
  m.asked.length = 0;
  await m.sync.retry();
  assert.deepEqual(
    m.asked.map((t) => t.op),
    ['put', 'put', 'list'],
  );
  assert.equal(m.sync.by('research-research-a'), 'scheduler');
  assert.equal(m.sync.by('research-research-b'), 'scheduler');
  assert.equal(m.live(), 0, 'the local timers (and the pending retry) were cancelled when the jobs were taken');
  m.asked.length = 0;
  await m.sync.retry();
  assert.deepEqual(m.asked, [], 'nothing local: retry() asks nothing');
});

test('a scheduler that starts later: the sync is tried again by itself, sooner than hourly, until it answers', async () => {
  let answering = false;
  const m = await make((t) => (answering ? ok(t.op === 'list' ? { jobs: [] } : {}) : 'silent'), { retryMs: 50 });
  await m.sync.sync('scheduler', [job('research-research-a')]);
  assert.equal(m.sync.by('research-research-a'), 'local');
  // the first retries (after 50 ms, then 100 ms) find it still silent; then it answers
  await until(() => m.asked.length >= 3, 6000);
  const silence = m.f.logs.filter(([, msg]) => /did not take the schedules/.test(msg));
  assert.ok(silence.length >= 2, 'each silent sync is logged');
  assert.deepEqual(
    silence.map(([level]) => level).filter((l) => l === 'warn'),
    ['warn'],
    'the silence is a warning once, not at every retry',
  );
  answering = true;
  await until(() => m.sync.by('research-research-a') === 'scheduler', 5000);
  // the sync that was answered ends with its tidy (a list): wait for it before counting what is asked
  await until(() => m.asked.some((t) => t.op === 'list'), 5000);
  await m.sync.retry();
  assert.equal(m.live(), 0, 'no local timer and no retry left');
  const n = m.asked.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(m.asked.length, n, 'nothing asked once it answered');
});

test('a schedule dropped from the list loses its local timer; after stop() nothing is armed or asked', async () => {
  const m = await make(() => ok({ jobs: [] }));
  await m.sync.sync('', [job('research-research-a'), job('research-research-b')]);
  assert.equal(m.live(), 2);
  await m.sync.sync('', [job('research-research-b')]);
  assert.equal(m.live(), 1);
  assert.equal(m.sync.by('research-research-a'), undefined);
  m.sync.stop();
  assert.equal(m.live(), 0);
  await m.sync.sync('scheduler', [job('research-research-b')]);
  await m.sync.sync('', [job('research-research-b')]);
  assert.deepEqual(m.asked, []);
  assert.equal(m.live(), 0);
});

test('forget(): a changed job is put again; a forgotten job no longer wanted is removed; syncs run in turn', async () => {
  const jobs = new Set<string>();
  let slowPut = false;
  const m = await make(async (t) => {
    if (t.op === 'put') jobs.add(t.job!.id);
    if (t.op === 'remove') jobs.delete(t.id!);
    if (t.op === 'put' && slowPut) await new Promise((r) => setTimeout(r, 30));
    return ok(t.op === 'list' ? { jobs: [...jobs].map((id) => listed(id)) } : {});
  });
  await m.sync.sync('scheduler', [job('research-research-a'), job('research-research-b')]);
  m.asked.length = 0;
  m.sync.forget('research-research-a');
  assert.equal(m.sync.by('research-research-a'), undefined);
  await m.sync.sync('scheduler', [job('research-research-a', '0 8 * * *'), job('research-research-b')]);
  assert.deepEqual(
    m.asked.map((t) => (t.op === 'list' ? 'list' : `${t.op} ${t.job?.id ?? t.id}`)),
    ['put research-research-a', 'list'],
  );
  assert.deepEqual((m.asked[0]!.job as { trigger?: unknown }).trigger, { cron: '0 8 * * *' });
  m.asked.length = 0;
  // two syncs asked at once: the second starts when the first is done, so its tidy sees its own list
  m.sync.forget('research-research-b');
  slowPut = true;
  const first = m.sync.sync('scheduler', [job('research-research-a'), job('research-research-b')]);
  const second = m.sync.sync('scheduler', [job('research-research-a')]);
  await Promise.all([first, second]);
  assert.deepEqual(
    m.asked.map((t) => (t.op === 'list' ? 'list' : `${t.op} ${t.job?.id ?? t.id}`)),
    ['put research-research-b', 'list', 'list', 'remove research-research-b'],
  );
  assert.deepEqual([...jobs], ['research-research-a']);
  // a local timer is cancelled by forget()
  await m.sync.sync('', [job('research-research-c')]);
  assert.equal(m.live(), 1);
  m.sync.forget('research-research-c');
  assert.equal(m.live(), 0);
});
