/** validateJob: every check names its field; conditions, durations, instants, versions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Grants, NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import type { TalonError } from '../../../runtime/core/errors.ts';
import {
  conditionMatches,
  type JobCheckEnv,
  jobVersion,
  parseDuration,
  parseInstant,
  validateJob,
} from '../../../hands/scheduling/jobs.ts';
import type { JobSpec } from '../../../hands/scheduling/types.ts';

const ROOT = 'talon/dev1';
function env(over: Partial<JobCheckEnv> = {}, jobs: Record<string, unknown> = {}): JobCheckEnv {
  const grants = new Grants(
    {
      ...NO_CAPABILITIES,
      bus: {
        publish: [`${ROOT}/jobs/#`, `${ROOT}/hands/research/tasks`],
        subscribe: [`${ROOT}/alerts/#`, `${ROOT}/hands/scheduling/replies`],
      },
      tools: { allow: ['hands.start', 'hands.stop', 'web.*'], approve: [] },
      llm: { tokensPerHour: 1000 },
    },
    ROOT,
  );
  return {
    grants,
    self: 'scheduling',
    deviceRoot: ROOT,
    jobs: new Map(Object.entries(jobs)) as Map<string, JobSpec>,
    handExists: (n) => (n === 'research' ? true : n === 'ghost' ? false : undefined),
    ...over,
  };
}
const job = (trigger: unknown, action: unknown = { publish: { topic: 'jobs/x' } }, extra: object = {}) => ({
  id: 'j1',
  trigger,
  action,
  ...extra,
});

async function refuses(spec: unknown, code: string, field: string, e: JobCheckEnv = env()): Promise<TalonError> {
  let caught: TalonError | undefined;
  await assert.rejects(validateJob(spec, e), (err: TalonError) => {
    caught = err;
    return true;
  });
  assert.ok(caught);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.message.startsWith(`${field}:`), `"${caught.message}" should name ${field}`);
  return caught;
}

test('a valid job passes with defaults filled and the input untouched', async () => {
  const spec = job({ cron: '*/5 * * * * *', timezone: 'Europe/Berlin' });
  const v = await validateJob(spec, env());
  assert.equal(v.policy?.overlap, 'skip');
  assert.equal(v.policy?.catchUp?.mode, 'last');
  assert.equal((spec as { policy?: unknown }).policy, undefined);
  for (const a of [
    { hand: { name: 'research', op: 'start' } },
    { ask: { hand: 'research', task: { q: 1 }, timeout: '30s' } },
    { tool: { name: 'web.search', input: {} } },
    { agent: { goal: 'sum up', tools: ['web.fetch'], deadline: '5m' } },
  ])
    await validateJob(job({ every: '1m' }, a), env());
  await validateJob(
    job({
      event: {
        topic: 'alerts/+',
        where: [{ path: 'severity', op: 'gte', value: 'warning', order: ['info', 'warning', 'critical'] }],
        debounce: '10s',
      },
    }),
    env(),
  );
  await validateJob(job({ at: '2026-12-24T18:00:00+01:00' }), env());
  await validateJob(job({ after: ['a'], on: 'always' }), env({}, { a: job({ every: 1000 }) }));
  // endAt in the past is accepted (documented: the job never runs)
  await validateJob(job({ every: 1000 }, undefined, { policy: { endAt: 0 } }), env());
});

test('schema errors name the field', async () => {
  await refuses(
    { id: 'Bad Id', trigger: { every: 1000 }, action: { publish: { topic: 'jobs/x' } } },
    'BAD_REQUEST',
    'id',
  );
  await refuses(job({ cron: '* * * * *', every: 5 }), 'BAD_REQUEST', 'trigger');
  await refuses(job({ every: 1000 }, { publish: {} }), 'BAD_REQUEST', 'action.publish.topic');
  await refuses(job({ every: 1000 }, undefined, { policy: { overlap: 'sometimes' } }), 'BAD_REQUEST', 'policy.overlap');
  await refuses('nope', 'BAD_REQUEST', 'job');
});

test('triggers: cron, time zone, interval, at, topic, conditions, after, cycle', async () => {
  const e = await refuses(job({ cron: '61 * * * *' }), 'BAD_REQUEST', 'trigger.cron');
  assert.match(e.message, /minute/);
  await refuses(job({ cron: '0 0 30 2 *' }), 'BAD_REQUEST', 'trigger.cron');
  await refuses(job({ cron: '* * * * *', timezone: 'Mars/Olympus' }), 'BAD_REQUEST', 'trigger.timezone');
  await refuses(job({ every: 50 }), 'BAD_REQUEST', 'trigger.every');
  await refuses(job({ every: '99ms' }), 'BAD_REQUEST', 'trigger.every');
  await refuses(job({ at: 'next tuesday' }), 'BAD_REQUEST', 'trigger.at');
  await refuses(job({ at: '2026-12-24T18:00:00' }), 'BAD_REQUEST', 'trigger.at'); // no zone
  await refuses(job({ event: { topic: 'alerts/#/x' } }), 'BAD_REQUEST', 'trigger.event.topic');
  await refuses(job({ event: { topic: 'secrets/#' } }), 'CAPABILITY_DENIED', 'trigger.event.topic');
  const w = (c: unknown) => job({ event: { topic: 'alerts/#', where: [c] } });
  await refuses(w({ path: 'a', op: 'in', value: 3 }), 'BAD_REQUEST', 'trigger.event.where[0].value');
  await refuses(w({ path: 'a', op: 'matches', value: '([' }), 'BAD_REQUEST', 'trigger.event.where[0].value');
  await refuses(w({ path: 'a', op: 'matches', value: 'x'.repeat(257) }), 'BAD_REQUEST', 'trigger.event.where[0].value');
  await refuses(w({ path: 'a', op: 'gt', value: { x: 1 } }), 'BAD_REQUEST', 'trigger.event.where[0].value');
  await refuses(
    w({ path: 'a', op: 'gte', value: 'huge', order: ['low', 'high'] }),
    'BAD_REQUEST',
    'trigger.event.where[0].value',
  );
  await refuses(w({ path: 'a', op: 'exists', value: 'yes' }), 'BAD_REQUEST', 'trigger.event.where[0].value');
  await refuses(w({ path: 'a', op: 'eq' }), 'BAD_REQUEST', 'trigger.event.where[0].value');
  await refuses(job({ event: { topic: 'alerts/#', debounce: 'soon' } }), 'BAD_REQUEST', 'trigger.event.debounce');
  await refuses(job({ after: ['j1'] }), 'BAD_REQUEST', 'trigger.after[0]');
  await refuses(job({ after: ['nobody'] }), 'BAD_REQUEST', 'trigger.after[0]');
  // a → b → j1 → a
  const jobs = { a: { ...job({ after: ['b'] }), id: 'a' }, b: { ...job({ after: ['j1'] }), id: 'b' } };
  const c = await refuses(job({ after: ['a'] }), 'BAD_REQUEST', 'trigger.after', env({}, jobs));
  assert.match(c.message, /j1 → a → b → j1/);
});

test('actions are held against the grants and the Hands there are', async () => {
  await refuses(
    job({ every: 1000 }, { hand: { name: 'research', op: 'restart' } }),
    'CAPABILITY_DENIED',
    'action.hand.op',
  );
  await refuses(job({ every: 1000 }, { hand: { name: 'ghost', op: 'start' } }), 'BAD_REQUEST', 'action.hand.name');
  const p = await refuses(
    job({ every: 1000 }, { publish: { topic: 'cmd/reboot' } }),
    'CAPABILITY_DENIED',
    'action.publish.topic',
  );
  assert.match(p.message, /may not publish to talon\/dev1\/cmd\/reboot; its grant allows talon\/dev1\/jobs\/#/);
  await refuses(job({ every: 1000 }, { publish: { topic: 'jobs/+' } }), 'BAD_REQUEST', 'action.publish.topic');
  await refuses(job({ every: 1000 }, { ask: { hand: 'comms', task: 1 } }), 'CAPABILITY_DENIED', 'action.ask.hand');
  await refuses(
    job({ every: 1000 }, { ask: { hand: 'research', task: 1 } }),
    'CAPABILITY_DENIED',
    'action.ask.hand',
    env({ self: 'other' }),
  );
  await refuses(job({ every: 1000 }, { ask: { hand: 'ghost', task: 1 } }), 'CAPABILITY_DENIED', 'action.ask.hand');
  const noGhostGrant = env({ handExists: () => false });
  await refuses(
    job({ every: 1000 }, { ask: { hand: 'research', task: 1 } }),
    'BAD_REQUEST',
    'action.ask.hand',
    noGhostGrant,
  );
  await refuses(job({ every: 1000 }, { tool: { name: 'shell.run' } }), 'CAPABILITY_DENIED', 'action.tool.name');
  await refuses(
    job({ every: 1000 }, { agent: { goal: 'g', tools: ['web.x', 'fs.write'] } }),
    'CAPABILITY_DENIED',
    'action.agent.tools[1]',
  );
  const noLlm = env();
  (noLlm.grants.caps as { llm: unknown }).llm = null;
  await refuses(job({ every: 1000 }, { agent: { goal: 'g', tools: [] } }), 'CAPABILITY_DENIED', 'action.agent', noLlm);
});

test('policies: window, jitter, timeout, backoff, endAt', async () => {
  const pol = (policy: unknown) => job({ every: 1000 }, undefined, { policy });
  await refuses(pol({ catchUp: { mode: 'all', window: '1 day' } }), 'BAD_REQUEST', 'policy.catchUp.window');
  await refuses(pol({ jitter: '2d' }), 'BAD_REQUEST', 'policy.jitter');
  await refuses(pol({ timeout: 10 }), 'BAD_REQUEST', 'policy.timeout');
  await refuses(pol({ timeout: '8d' }), 'BAD_REQUEST', 'policy.timeout');
  await refuses(
    pol({ retries: { max: 2, backoff: '10s', maxBackoff: '1s' } }),
    'BAD_REQUEST',
    'policy.retries.maxBackoff',
  );
  await refuses(pol({ endAt: 'tomorrow-ish' }), 'BAD_REQUEST', 'policy.endAt');
});

test('durations and instants', () => {
  assert.equal(parseDuration(250, 'f'), 250);
  assert.equal(parseDuration('5m', 'f'), 300_000);
  assert.equal(parseDuration('1.5s', 'f'), 1500);
  assert.equal(parseDuration('20ms', 'f'), 20);
  assert.throws(() => parseDuration('5 minutes', 'x.y'), /^TalonError: x\.y:/);
  assert.throws(() => parseDuration(-1, 'x.y'), /x\.y/);
  assert.equal(parseInstant('2026-01-01T00:00:00Z', 'f'), Date.UTC(2026, 0, 1));
  assert.equal(parseInstant('2026-01-01T01:00:00+01:00', 'f'), Date.UTC(2026, 0, 1));
  assert.equal(parseInstant(5, 'f'), 5);
  assert.throws(() => parseInstant('2026-01-01', 'p.q'), /p\.q/);
});

test('conditions: dotted paths, ops, named levels', () => {
  const p = { severity: 'warning', reading: { value: 31.5 }, items: [{ id: 'a' }], tags: ['x'] };
  const m = (c: object) => conditionMatches([c as never], p);
  assert.equal(m({ path: 'reading.value', op: 'gt', value: 30 }), true);
  assert.equal(m({ path: 'reading.value', op: 'lte', value: 30 }), false);
  assert.equal(m({ path: 'items.0.id', op: 'eq', value: 'a' }), true);
  assert.equal(m({ path: 'tags', op: 'eq', value: ['x'] }), true);
  assert.equal(m({ path: 'severity', op: 'ne', value: 'info' }), true);
  assert.equal(m({ path: 'severity', op: 'in', value: ['critical', 'warning'] }), true);
  assert.equal(m({ path: 'severity', op: 'matches', value: '^warn' }), true);
  assert.equal(m({ path: 'missing', op: 'exists', value: false }), true);
  assert.equal(m({ path: 'severity', op: 'exists' }), true);
  const order = ['info', 'warning', 'critical'];
  assert.equal(m({ path: 'severity', op: 'gte', value: 'warning', order }), true);
  assert.equal(m({ path: 'severity', op: 'gt', value: 'warning', order }), false);
  assert.equal(
    conditionMatches([{ path: 'severity', op: 'gte', value: 'warning', order }], { severity: 'info' }),
    false,
  );
  assert.equal(
    conditionMatches([{ path: 'severity', op: 'gte', value: 'warning', order }], { severity: 'bogus' }),
    false,
  );
  assert.equal(conditionMatches([], 'anything'), true);
  assert.equal(m({ path: 'reading.value', op: 'gt', value: 'a' }), false); // a number is not compared with a string
});

test('jobVersion is stable across key order and changes with the spec', () => {
  const a = { id: 'x', trigger: { every: 1000 }, action: { publish: { topic: 't' } } } as JobSpec;
  const b = { action: { publish: { topic: 't' } }, trigger: { every: 1000 }, id: 'x' } as JobSpec;
  assert.equal(jobVersion(a), jobVersion(b));
  assert.notEqual(jobVersion(a), jobVersion({ ...a, trigger: { every: 2000 } }));
});
