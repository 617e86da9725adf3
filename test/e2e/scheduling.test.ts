/**
 * The Scheduling Hand end to end, on the real daemon (dist/talon.cjs), its real LevelDB and bus:
 *  1. SIGKILL during a run: the run is `interrupted` at the next start, never started again for its time, and the
 *     job goes on with later times;
 *  2. a per-second cron job through three SIGKILL restarts at random moments: every second between the first and
 *     the last scheduled time is in the history exactly once (no duplicate, no lost run);
 *  3. the seed's composition, with fixture Hands: a research job run from the CLI → findings published → the
 *     Communication Hand's stand-in (on demand: started by the message) sends them and asks the scheduler over the
 *     bus for a follow-up job → that job runs and its answer is stored;
 *  4. bad input through the CLI and REST names the field and changes nothing;
 *  5. an event trigger with a condition on the payload: an info alert runs nothing, a critical one runs once.
 * The clock tests (a faked wall clock) are in ./scheduling-clock.test.ts.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { api, cli, ensureBuilt, poll, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { fixture } from '../helpers/fixtures.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Run {
  runId: string;
  jobId: string;
  scheduledAt: number;
  cause: string;
  attempt: number;
  status: string;
  result?: unknown;
  error?: { code: string; message: string };
  event?: { topic: string; payload: unknown };
}

interface JobView {
  id: string;
  source: string;
  spec: unknown;
  state: { paused: boolean; runs: number };
  waiting?: string;
}

// the surface's answers wrap lists in an object ({ jobs }, { runs }); a bare array is read too
const listOf = <T>(body: unknown, ...keys: string[]): T[] => {
  if (Array.isArray(body)) return body as T[];
  const b = body as Record<string, unknown>;
  for (const k of keys) if (Array.isArray(b?.[k])) return b[k] as T[];
  throw new Error(`no list (${keys.join('/')}) in ${JSON.stringify(body).slice(0, 500)}`);
};

/** the scheduler answers on /api/v1/schedules once its Hand runs */
async function schedulerReady(d: Daemon): Promise<void> {
  await poll(
    `the Scheduling Hand answering\n${d.output().slice(-3000)}`,
    async () => (await api(d, 'GET', '/api/v1/schedules')).status === 200,
    30_000,
  );
}

async function jobs(d: Daemon): Promise<JobView[]> {
  const r = await api(d, 'GET', '/api/v1/schedules');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return listOf<JobView>(r.body, 'jobs', 'items', 'schedules');
}

async function history(d: Daemon, id: string): Promise<Run[]> {
  const out: Run[] = [];
  let before: number | undefined;
  for (let page = 0; page < 20; page++) {
    const q = `?limit=200${before === undefined ? '' : `&before=${before}`}`;
    const r = await api(d, 'GET', `/api/v1/schedules/${id}/history${q}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const runs = listOf<Run>(r.body, 'runs', 'history', 'items');
    out.push(...runs);
    if (runs.length < 200) break;
    before = runs.at(-1)!.scheduledAt;
  }
  return out;
}

/**
 * the Scheduling Hand's default instance with config jobs; its config grants (from the manifest's optional ones)
 * what the jobs here need beyond its defaults: publishing under its own topics, alerts and findings as events
 */
const schedulerHand = (jobList: unknown[]) => ({
  name: 'scheduler',
  module: 'scheduling',
  settings: { jobs: jobList },
  capabilities: {
    bus: {
      publish: ['hands/+/tasks', 'hands/+/replies', 'hands/scheduler/#'],
      subscribe: ['hands/scheduler/tasks', 'hands/scheduler/replies', 'alerts/#', 'hands/+/findings'],
    },
  },
});

before(() => ensureBuilt());

describe('the Scheduling Hand on the real daemon', { concurrency: true }, () => {
  test('SIGKILL during a run: interrupted at the next start, not run again, later times run', {
    timeout: 90_000,
  }, async () => {
    const slow = await fixture('slow-task');
    const job = {
      id: 'slow-ask',
      trigger: { cron: '*/6 * * * * *' },
      action: { ask: { hand: 'slow-task', task: { ms: 3000 }, timeout: '20s' } },
      policy: { overlap: 'skip', catchUp: { mode: 'last' } },
    };
    let d = await startDaemon({ hands: [schedulerHand([job]), { name: 'slow-task', module: slow }] });
    const dirs = [d.dataDir];
    try {
      await schedulerReady(d);
      const first = d;
      const running = await poll(
        'a run of slow-ask in flight',
        async () => (await history(first, 'slow-ask')).find((r) => r.status === 'running'),
        30_000,
      );
      await d.stop('SIGKILL');
      d = await startDaemon({}, { configFile: d.configFile });
      await schedulerReady(d);
      const second = d;
      const killed = await poll(`the killed run ${running.runId} marked interrupted`, async () =>
        (await history(second, 'slow-ask')).find((r) => r.runId === running.runId && r.status === 'interrupted'),
      );
      assert.equal(killed.scheduledAt, running.scheduledAt);
      // the job goes on: a later time runs to its end
      const later = await poll(
        'a later run of slow-ask ending in success',
        async () =>
          (await history(second, 'slow-ask')).find(
            (r) => r.scheduledAt > running.scheduledAt && r.status === 'success',
          ),
        40_000,
      );
      assert.deepEqual((later.result as { slept: number }).slept, 3000, JSON.stringify(later));
      const all = await history(second, 'slow-ask');
      const atKilled = all.filter((r) => r.scheduledAt === running.scheduledAt);
      assert.equal(atKilled.length, 1, `one record for the killed time: ${JSON.stringify(atKilled)}`);
      assert.equal(atKilled[0]!.status, 'interrupted');
      const times = all.filter((r) => r.attempt === 1).map((r) => r.scheduledAt);
      assert.equal(new Set(times).size, times.length, `no scheduled time twice: ${JSON.stringify(all)}`);
    } finally {
      await d.stop('SIGKILL');
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a per-second job through three SIGKILL restarts: every second exactly once', { timeout: 120_000 }, async () => {
    const job = {
      id: 'tick',
      trigger: { cron: '*/1 * * * * *' },
      action: { publish: { topic: 'hands/scheduler/tick', payload: { at: '{{scheduledAt}}' }, qos: 0 } },
      policy: { overlap: 'allow', catchUp: { mode: 'all', window: '1h', max: 1000 } },
    };
    let d = await startDaemon({ hands: [schedulerHand([job])] });
    const dataDir = d.dataDir;
    const pauses: number[] = [];
    // how long the device stays off after each kill: once long enough (> the engine's 2 s grace) for a catch-up
    const offs = [0, 1500, 3500].sort(() => Math.random() - 0.5);
    try {
      await schedulerReady(d);
      for (let i = 0; i < 3; i++) {
        const ms = 4000 + Math.floor(Math.random() * 5000);
        pauses.push(ms);
        await sleep(ms);
        await d.stop('SIGKILL');
        await sleep(offs[i]!);
        d = await startDaemon({}, { configFile: d.configFile });
        await schedulerReady(d);
      }
      // let the last start's catch-up land, then read the whole history
      await sleep(5000);
      const runs = await history(d, 'tick');
      const byTime = new Map<number, Run[]>();
      for (const r of runs) byTime.set(r.scheduledAt, [...(byTime.get(r.scheduledAt) ?? []), r]);
      const times = [...byTime.keys()].sort((a, b) => a - b);
      const first = times[0]!;
      const last = times.at(-1)!;
      const what = `kills after ${pauses.join(', ')} ms, off ${offs.join(', ')} ms; ${runs.length} records`;
      assert.ok(last - first >= 15_000, `at least 15 s of runs: ${what}`);
      const dup = [...byTime.entries()].filter(([, rs]) => rs.length > 1);
      assert.deepEqual(dup, [], `a scheduled time ran twice: ${what}`);
      const missing: number[] = [];
      for (let t = first; t <= last; t += 1000) if (!byTime.has(t)) missing.push(t);
      assert.deepEqual(missing, [], `seconds lost: ${what}; times ${JSON.stringify(times)}`);
      assert.equal(times.length, (last - first) / 1000 + 1, what);
      const statuses = new Set(runs.map((r) => r.status));
      for (const s of statuses) assert.ok(['success', 'interrupted', 'running'].includes(s), `status ${s}: ${what}`);
      assert.ok(
        runs.some((r) => r.cause === 'catch-up'),
        `the seconds missed while down ran as catch-up: ${what}`,
      );
    } finally {
      await d.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  // one after the other: the composition adds a job, which the bad-input test must not see appear mid-way
  describe('one daemon: composition, bad input, event triggers', { concurrency: false }, () => {
    let d: Daemon;
    let client: mqtt.MqttClient;
    const seen: Array<{ topic: string; json: any }> = [];
    const tmp = mkdtempSync(join(tmpdir(), 'talon-sched-e2e-'));
    const talon = (...args: string[]) => cli([...args, '--data', d.dataDir]);

    before(async () => {
      const [research, comms] = await Promise.all([fixture('research-fixture'), fixture('comms-fixture')]);
      d = await startDaemon({
        hands: [
          schedulerHand([
            {
              id: 'research-daily',
              description: 'the daily research run (the seed: research → findings → comms → follow-up)',
              trigger: { cron: '0 0 9 * * *', timezone: 'Europe/Berlin' },
              action: { ask: { hand: 'research-fixture', task: { topic: 'soil moisture' }, timeout: '20s' } },
            },
            {
              id: 'send-findings',
              description: 'findings go to the Communication Hand',
              trigger: { event: { topic: 'hands/research-fixture/findings' } },
              action: { ask: { hand: 'comms-fixture', task: { findings: '{{event}}' }, timeout: '30s' } },
              policy: { overlap: 'allow' },
            },
          ]),
          { name: 'research-fixture', module: research },
          { name: 'comms-fixture', module: comms, mode: 'on-demand', idleStopMs: 120_000 },
        ],
      });
      client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
        username: 'token',
        password: d.token(),
        reconnectPeriod: 0,
      });
      const root = `talon/${d.deviceId()}/`;
      client.on('message', (topic, payload) => {
        let json: unknown = payload.toString();
        try {
          json = JSON.parse(payload.toString());
        } catch {
          /* text */
        }
        seen.push({ topic: topic.slice(root.length), json });
      });
      await client.subscribeAsync([`${root}hands/comms-fixture/#`, `${root}hands/research-fixture/findings`]);
      await schedulerReady(d);
    });

    after(async () => {
      await client?.endAsync();
      await d?.stop();
      if (d) rmSync(d.dataDir, { recursive: true, force: true });
      rmSync(tmp, { recursive: true, force: true });
    });

    test('composition: research on demand → findings sent by a Hand started by the message → follow-up scheduled and run', {
      timeout: 60_000,
    }, async () => {
      const st = talon('hands', 'status', 'comms-fixture', '--json');
      assert.equal(st.status, 0, st.stderr);
      assert.equal((JSON.parse(st.stdout) as { state: string }).state, 'stopped', 'on demand: not started at boot');

      const run = talon('schedule', 'run', 'research-daily');
      assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);

      const findings = await poll('findings published', async () =>
        seen.find((m) => m.topic === 'hands/research-fixture/findings' && m.json.topic === 'soil moisture'),
      );
      const sent = await poll(`findings sent by comms-fixture\n${d.output().slice(-2000)}`, async () =>
        seen.find((m) => m.topic === 'hands/comms-fixture/sent' && m.json.id === findings.json.id),
      );
      assert.match(sent.json.text, /soil moisture: finding one/);
      const scheduled = await poll('the follow-up scheduled', async () =>
        seen.find((m) => m.topic === 'hands/comms-fixture/scheduled'),
      );
      assert.equal(scheduled.json.ok, true, JSON.stringify(scheduled.json));
      const followId = scheduled.json.job as string;
      assert.equal(followId, 'follow-up-soil-moisture-follow-up');

      const research = await history(d, 'research-daily');
      assert.equal(research.length, 1, JSON.stringify(research));
      assert.equal(research[0]!.cause, 'manual');
      assert.equal(research[0]!.status, 'success', JSON.stringify(research[0]));
      assert.deepEqual((research[0]!.result as { followUp: unknown }).followUp, {
        in: '2s',
        topic: 'soil moisture (follow-up)',
      });

      const job = await api(d, 'GET', `/api/v1/schedules/${followId}`);
      assert.equal(job.status, 200, JSON.stringify(job.body));
      const view = (job.body.job ?? job.body) as JobView;
      assert.equal(view.id, followId);
      assert.equal(view.source, 'api');

      const done = await poll(
        'the follow-up job run with its answer stored',
        async () => (await history(d, followId)).find((r) => r.status === 'success'),
        30_000,
      );
      const answer = done.result as { topic: string; findings: string[]; followUp?: unknown };
      assert.equal(answer.topic, 'soil moisture (follow-up)');
      assert.deepEqual(answer.findings, [
        'soil moisture (follow-up): finding one',
        'soil moisture (follow-up): finding two',
      ]);
      assert.equal(answer.followUp, undefined, 'the chain ends at depth 1');
      // its findings were sent too, and the one-shot job ran once
      await poll('the follow-up findings sent', async () =>
        seen.find((m) => m.topic === 'hands/comms-fixture/sent' && /follow-up\): finding two/.test(m.json.text)),
      );
      assert.equal((await history(d, followId)).length, 1);
      const after = talon('hands', 'status', 'comms-fixture', '--json');
      assert.equal((JSON.parse(after.stdout) as { state: string }).state, 'running', 'the inbox message started it');
    });

    test('bad input through the CLI and REST names the field and creates nothing', { timeout: 60_000 }, async () => {
      const ok = (id: string, extra: Record<string, unknown> = {}) => ({
        id,
        trigger: { every: '1h' },
        action: { publish: { topic: 'hands/scheduler/x', payload: 1 } },
        ...extra,
      });
      // a chain a → b, so that a cycle can be made by an update of a
      for (const j of [ok('cyc-a'), { ...ok('cyc-b'), trigger: { after: ['cyc-a'] } }]) {
        const r = await api(d, 'PUT', `/api/v1/schedules/${j.id}`, j);
        assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
      }
      const cases: Array<[string, Record<string, unknown>, RegExp]> = [
        ['an invalid cron expression', { ...ok('bad-cron'), trigger: { cron: '61 * * * * *' } }, /trigger\.cron/],
        [
          'an unknown time zone',
          { ...ok('bad-tz'), trigger: { cron: '0 0 9 * * *', timezone: 'Mars/Olympus_Mons' } },
          /trigger\.timezone/,
        ],
        [
          'a Hand that does not exist',
          { ...ok('bad-hand'), action: { ask: { hand: 'no-such-hand', task: {} } } },
          /action\.ask\.hand/,
        ],
        ['a dependency cycle', { ...ok('cyc-a'), trigger: { after: ['cyc-b'] } }, /trigger\.after[\s\S]*cyc-a/],
        [
          'an action outside the grant',
          { ...ok('bad-grant'), action: { publish: { topic: 'cmd/system/restart', payload: {} } } },
          /action\.publish\.topic/,
        ],
      ];
      const listBefore = talon('schedule', 'list', '--json');
      assert.equal(listBefore.status, 0, listBefore.stderr);
      // what a refusal could change: the jobs and their specs (state moves on its own: next times, runs)
      const specs = async () => JSON.stringify((await jobs(d)).map((j) => [j.id, j.source, j.spec]));
      const restBefore = await specs();
      for (const [what, job, field] of cases) {
        const r = await api(d, 'POST', '/api/v1/schedules', job);
        assert.equal(r.status, 400, `${what}: REST ${r.status} ${JSON.stringify(r.body)}`);
        assert.match(JSON.stringify(r.body), field, `${what}: the REST error names the field`);
        const file = join(tmp, `${job.id}.json`);
        writeFileSync(file, JSON.stringify(job));
        const c = talon('schedule', 'add', file);
        assert.equal(c.status, 2, `${what}: CLI exit ${c.status}\n${c.stdout}\n${c.stderr}`);
        assert.match(c.stderr, field, `${what}: the CLI error names the field`);
      }
      assert.equal(await specs(), restBefore, 'nothing half-created');
      const listAfter = talon('schedule', 'list', '--json');
      const ids = (out: string) => listOf<JobView>(JSON.parse(out), 'jobs', 'items').map((j) => j.id);
      assert.deepEqual(ids(listAfter.stdout), ids(listBefore.stdout), '`talon schedule list` unchanged');
      assert.ok(ids(listAfter.stdout).includes('cyc-b') && !ids(listAfter.stdout).includes('bad-cron'));
      const a = (await jobs(d)).find((j) => j.id === 'cyc-a');
      assert.ok(a, 'cyc-a is still there');
      // a good job through the CLI works, so the refusals above were about the input
      const good = join(tmp, 'good.json');
      writeFileSync(good, JSON.stringify(ok('cli-good')));
      const g = talon('schedule', 'add', good);
      assert.equal(g.status, 0, g.stderr);
      assert.ok((await jobs(d)).some((j) => j.id === 'cli-good'));
      for (const id of ['cli-good', 'cyc-b', 'cyc-a']) {
        const r = talon('schedule', 'remove', id);
        assert.equal(r.status, 0, r.stderr);
      }
    });

    test('an event trigger with a condition: an info alert runs nothing, a critical one runs once', {
      timeout: 60_000,
    }, async () => {
      const job = {
        id: 'alert-watch',
        trigger: {
          event: {
            topic: 'alerts/#',
            where: [{ path: 'severity', op: 'gte', value: 'warning', order: ['info', 'warning', 'critical'] }],
          },
        },
        action: { publish: { topic: 'hands/scheduler/alerted', payload: { run: '{{runId}}' } } },
        policy: { overlap: 'allow' },
      };
      const put = await api(d, 'PUT', '/api/v1/schedules/alert-watch', job);
      assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
      // the Hand subscribes on its own time: a first critical alert shows when it listens; then the real test
      const root = `talon/${d.deviceId()}`;
      await poll(
        'the event trigger listening',
        async () => {
          await client.publishAsync(`${root}/alerts/probe`, JSON.stringify({ severity: 'critical', probe: true }));
          await sleep(300);
          return (await history(d, 'alert-watch')).length > 0;
        },
        20_000,
      );
      const base = (await history(d, 'alert-watch')).length;
      await client.publishAsync(`${root}/alerts/green.temp`, JSON.stringify({ severity: 'info', n: 1 }), { qos: 1 });
      await client.publishAsync(`${root}/alerts/green.temp`, JSON.stringify({ severity: 'critical', n: 2 }), {
        qos: 1,
      });
      const runs = await poll('the critical alert run', async () => {
        const h = await history(d, 'alert-watch');
        return h.length > base ? h : null;
      });
      await sleep(500);
      const fresh = (await history(d, 'alert-watch')).filter(
        (r) => (r.event?.payload as { probe?: boolean } | undefined)?.probe !== true,
      );
      assert.equal(fresh.length, 1, `only the critical alert ran: ${JSON.stringify(runs)}`);
      assert.equal(fresh[0]!.cause, 'event');
      assert.deepEqual(fresh[0]!.event?.payload, { severity: 'critical', n: 2 });
      assert.equal(fresh[0]!.event?.topic.endsWith('alerts/green.temp'), true, fresh[0]!.event?.topic);
    });
  });
});
