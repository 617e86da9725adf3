/**
 * What the Scheduling Hand adds to the device (hands/sdk/surface.ts), served by the kernel generically:
 *   /api/v1/schedules                 GET the jobs, POST a job (create or update by its id)
 *   /api/v1/schedules/{id}            GET, PUT (create or update; the body's id must be the path's), DELETE
 *   /api/v1/schedules/{id}/run|pause|resume    POST
 *   /api/v1/schedules/{id}/history    GET ?limit=&before=  (newest first)
 * Reads need `schedules:read` (a viewer), changes `schedules:write` (an admin) and are audited
 * (`api.schedules.put|remove|run|pause|resume`) before the Hand acts.
 * `talon schedule list|show|add|remove|run|pause|resume|history` (./cli.ts), its /metrics series and its page.
 *
 * A job's body is checked by the engine (./jobs.ts), so its refusals name the job's field in words; the routes
 * declare JOB_SCHEMA in their answers for the OpenAPI document.
 *
 * Loaded by the kernel and the CLI at start: keep it light.
 */
import { defineSurface, routeOf, type HandSurface, type MetricFamily } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { JOB_ID_PATTERN, type RunStatus } from './types.ts';
import { JOB_VIEW_DOC, RUN_SCHEMA, protocol, type SchedulingProtocol } from './protocol.ts';

const route = routeOf<SchedulingProtocol>();

const ID_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: JOB_ID_PATTERN, description: 'a job id' } },
} as const;
/**
 * a job: its fields named here (unknown ones refused), their insides checked by the engine, which names the field it
 * refuses in words (`trigger.cron: …`) where the schema's oneOf branches would not; JOB_SCHEMA is in the answers
 */
const JOB_BODY = {
  type: 'object',
  additionalProperties: false,
  description: 'a job; the `spec` of a job in the answers has the whole schema',
  properties: {
    id: { type: 'string', description: "the job id (PUT: the path's, or left out)" },
    description: { type: 'string' },
    trigger: {
      type: 'object',
      description: 'one of { cron, timezone? }, { every }, { at }, { event }, { after, on? }',
    },
    action: { type: 'object', description: 'one of { hand }, { publish }, { ask }, { tool }, { agent }' },
    policy: { type: 'object' },
    paused: { type: 'boolean' },
  },
} as const;
const ONE_JOB = {
  type: 'object',
  additionalProperties: false,
  required: ['job'],
  properties: { job: JOB_VIEW_DOC },
} as const;
const PUT_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['job', 'created'],
  properties: { job: JOB_VIEW_DOC, created: { type: 'boolean' } },
} as const;

export const RUN_STATUSES: readonly RunStatus[] = [
  'running',
  'success',
  'failure',
  'timeout',
  'cancelled',
  'interrupted',
  'skipped',
];

/** the body's id against the path's: filled in when missing, refused when different */
export function jobForPath(body: unknown, id: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new TalonError('BAD_REQUEST', 'body: must be a job object { id, trigger, action }');
  const job = body as Record<string, unknown>;
  if (job.id === undefined) return { ...job, id };
  if (job.id !== id)
    throw new TalonError(
      'BAD_REQUEST',
      `id: the body's id ${JSON.stringify(job.id)} differs from the path's "${id}"; use the same id (or leave it out)`,
      { details: { in: 'body', errors: [{ path: '/id', message: `must be "${id}"` }] } },
    );
  return job;
}

const surface: HandSurface<SchedulingProtocol> = {
  id: 'scheduling',
  title: 'Scheduling',
  provides: 'scheduled jobs',
  protocol,
  routes: [
    route({
      method: 'GET',
      path: '/api/v1/schedules',
      operationId: 'listSchedules',
      summary: 'The jobs (config and stored): state, next times, last outcome',
      tag: 'schedules',
      access: 'read',
      responses: {
        200: {
          description: 'every job',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['jobs'],
            properties: { jobs: { type: 'array', items: JOB_VIEW_DOC } },
          },
        },
      },
      handler: ({ request }) => request('list', {}),
    }),
    route({
      method: 'POST',
      path: '/api/v1/schedules',
      operationId: 'createSchedule',
      summary: 'Create a job, or update the one with its id',
      tag: 'schedules',
      access: 'write',
      body: JOB_BODY,
      responses: { 200: { description: 'the job as stored; `created` when it is new', schema: PUT_ANSWER } },
      handler: async ({ body, audited, request }) => {
        const job = body as Record<string, unknown>;
        const id = typeof job.id === 'string' ? job.id.slice(0, 64) : '';
        if (id === '') throw new TalonError('BAD_REQUEST', 'id: a job needs an id (lowercase letters, digits, . _ -)');
        return audited({ action: 'api.schedules.put', subject: id }, () => request('put', { job }));
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/schedules/{id}',
      operationId: 'getSchedule',
      summary: 'One job',
      tag: 'schedules',
      access: 'read',
      params: ID_PARAMS,
      responses: { 200: { description: 'the job', schema: ONE_JOB } },
      handler: ({ params, request }) => request('get', { id: params.id! }),
    }),
    route({
      method: 'PUT',
      path: '/api/v1/schedules/{id}',
      operationId: 'putSchedule',
      summary: 'Create or update the job with this id (the body is the whole job)',
      tag: 'schedules',
      access: 'write',
      params: ID_PARAMS,
      body: JOB_BODY,
      responses: { 200: { description: 'the job as stored; `created` when it is new', schema: PUT_ANSWER } },
      handler: async ({ params, body, audited, request }) => {
        const job = jobForPath(body, params.id!);
        return audited({ action: 'api.schedules.put', subject: params.id! }, () => request('put', { job }));
      },
    }),
    route({
      method: 'DELETE',
      path: '/api/v1/schedules/{id}',
      operationId: 'deleteSchedule',
      summary: 'Remove a stored job (a config job is removed by editing the config)',
      tag: 'schedules',
      access: 'write',
      params: ID_PARAMS,
      responses: {
        200: {
          description: 'removed',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['removed'],
            properties: { removed: { type: 'string' } },
          },
        },
      },
      handler: ({ params, audited, request }) =>
        audited({ action: 'api.schedules.remove', subject: params.id! }, () => request('remove', { id: params.id! })),
    }),
    route({
      method: 'POST',
      path: '/api/v1/schedules/{id}/run',
      operationId: 'runSchedule',
      summary: 'Run a job now, outside its schedule (its overlap policy applies)',
      tag: 'schedules',
      access: 'write',
      params: ID_PARAMS,
      responses: {
        200: {
          description: 'the run as it started',
          schema: { type: 'object', additionalProperties: false, required: ['run'], properties: { run: RUN_SCHEMA } },
        },
      },
      handler: ({ params, audited, request }) =>
        audited({ action: 'api.schedules.run', subject: params.id! }, () => request('run', { id: params.id! })),
    }),
    ...(['pause', 'resume'] as const).map((op) =>
      route({
        method: 'POST' as const,
        path: `/api/v1/schedules/{id}/${op}`,
        operationId: op === 'pause' ? 'pauseSchedule' : 'resumeSchedule',
        summary: op === 'pause' ? 'Pause a job: no run until it is resumed' : 'Resume a paused job',
        tag: 'schedules',
        access: 'write' as const,
        params: ID_PARAMS,
        responses: { 200: { description: 'the job', schema: ONE_JOB } },
        handler: ({ params, audited, request }) =>
          audited({ action: `api.schedules.${op}`, subject: params.id! }, () => request(op, { id: params.id! })),
      }),
    ),
    route({
      method: 'GET',
      path: '/api/v1/schedules/{id}/history',
      operationId: 'scheduleHistory',
      summary: "A job's runs, newest first; `before` (a run's scheduledAt) pages back",
      tag: 'schedules',
      access: 'read',
      params: ID_PARAMS,
      query: {
        type: 'object',
        additionalProperties: false,
        required: [],
        properties: {
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
          before: { type: 'integer', minimum: 0, maximum: 1e15 },
        },
      },
      responses: {
        200: {
          description: 'runs, newest first',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['runs'],
            properties: { runs: { type: 'array', items: RUN_SCHEMA } },
          },
        },
      },
      handler: ({ params, query, request }) =>
        request('history', {
          id: params.id!,
          limit: query.limit ?? 50,
          ...(query.before !== undefined ? { before: query.before } : {}),
        }),
    }),
  ],
  cli: {
    summary: 'scheduled jobs of the running daemon: list, show, add, remove, run, pause, resume, history',
    description: "Manage the Scheduling Hand's jobs on the running daemon (`talon schedule` is the same command).",
    alias: 'schedule',
    commands: [
      {
        name: 'list',
        summary: 'the jobs: trigger, next run, last outcome, state',
        description: 'List the jobs of the Scheduling Hand: trigger, next run, last outcome and state.',
        daemon: true,
        run: async (a) => (await import('./cli.ts')).listCommand(a),
      },
      {
        name: 'show',
        summary: 'one job: its spec, state and next times',
        description: 'Show one job: its spec, its state and its next run times.',
        positionals: [{ name: 'ID', required: true, description: 'the job id' }],
        daemon: true,
        run: async (a) => (await import('./cli.ts')).showCommand(a),
      },
      {
        name: 'add',
        summary: 'create or update jobs from a YAML or JSON file (one job or a list)',
        description:
          'Create or update jobs from a YAML or JSON file holding one job or a list of jobs; each is checked on the device and a refusal names the field.',
        positionals: [{ name: 'FILE', required: true, description: 'a .yaml, .yml or .json file; - reads stdin' }],
        notes:
          'Exit 0 when every job was stored, 2 when one was refused (the jobs before it are stored; none after it is tried).',
        daemon: true,
        run: async (a) => (await import('./cli.ts')).addCommand(a),
      },
      ...(['remove', 'run', 'pause', 'resume'] as const).map((name) => ({
        name,
        summary: {
          remove: 'remove a stored job',
          run: 'run a job now, outside its schedule',
          pause: 'pause a job',
          resume: 'resume a paused job',
        }[name],
        description: {
          remove: 'Remove a stored job (a job from the config is removed by editing the config).',
          run: 'Run a job now, outside its schedule; prints the run as it started.',
          pause: 'Pause a job: it does not run until it is resumed.',
          resume: 'Resume a paused job.',
        }[name],
        positionals: [{ name: 'ID', required: true, description: 'the job id' }],
        daemon: true,
        run: async (a: Parameters<typeof import('./cli.ts').changeCommand>[1]) =>
          (await import('./cli.ts')).changeCommand(name, a),
      })),
      {
        name: 'history',
        summary: "a job's runs, newest first",
        description: "Show a job's runs, newest first: when, why, status, how long and the error or result.",
        positionals: [{ name: 'ID', required: true, description: 'the job id' }],
        options: {
          limit: { type: 'string', value: 'N', description: 'how many runs (1-1000, default 20)' },
          before: { type: 'string', value: 'MS', description: 'runs scheduled before this time (ms epoch)' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).historyCommand(a),
      },
    ],
  },
  metrics: {
    async collect({ request }) {
      const { stats } = await request('stats', {});
      const runs = (stats.runs ?? {}) as Record<string, number>;
      const families: MetricFamily[] = [
        {
          name: 'talon_schedule_jobs',
          type: 'gauge',
          help: 'Jobs the Scheduling Hand holds.',
          samples: [{ value: stats.jobs }],
        },
        { name: 'talon_schedule_paused', type: 'gauge', help: 'Jobs paused.', samples: [{ value: stats.paused }] },
        {
          name: 'talon_schedule_runs_total',
          type: 'counter',
          help: 'Runs ended (or skipped), by status.',
          samples: RUN_STATUSES.filter((s) => s !== 'running').map((status) => ({
            labels: { status },
            value: typeof runs[status] === 'number' ? runs[status] : 0,
          })),
        },
        { name: 'talon_schedule_running', type: 'gauge', help: 'Runs in flight.', samples: [{ value: stats.running }] },
        {
          name: 'talon_schedule_clock_synced',
          type: 'gauge',
          help: '1 when the wall clock is trusted (cron and `at` triggers run), else 0.',
          samples: [{ value: stats.clockSynced ? 1 : 0 }],
        },
        {
          name: 'talon_schedule_lag_ms',
          type: 'gauge',
          help: "The latest run's lateness: its start minus its due time, ms.",
          samples: [{ value: stats.lastLagMs }],
        },
      ];
      return families;
    },
  },
  page: { label: 'Schedules' },
  // for agents, MCP clients and other Hands, under their own tools grant (hands/sdk/surface.ts)
  tools: [
    {
      name: 'schedule.list',
      kind: 'list',
      readOnly: true,
      description: 'List the scheduled jobs: trigger, next runs, last outcome, state.',
    },
    {
      name: 'schedule.get',
      kind: 'get',
      readOnly: true,
      description: 'One scheduled job by id, with its next runs and state.',
    },
    {
      name: 'schedule.put',
      kind: 'put',
      description:
        "Create or update a scheduled job by id: { job: { id, trigger: cron|every|at|event|after, action: hand|publish|ask|tool|agent, policy? } }. The job is checked against the Scheduling Hand's grants; an error names the field.",
    },
    { name: 'schedule.run', kind: 'run', description: 'Run a job now, outside its schedule; returns the run record.' },
    { name: 'schedule.pause', kind: 'pause', description: 'Pause a job: no run until it is resumed.' },
    { name: 'schedule.resume', kind: 'resume', description: 'Resume a paused job.' },
    { name: 'schedule.remove', kind: 'remove', destructive: true, description: 'Remove a job and its history.' },
    { name: 'schedule.history', kind: 'history', readOnly: true, description: "A job's runs, newest first." },
  ],
};

export default defineSurface(surface);
