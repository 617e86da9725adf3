/**
 * The Scheduling Hand's typed requests (hands/sdk/surface.ts), answered by ./index.ts and used by ./surface.ts's
 * routes, its metrics and the CLI. A job in a `put` is checked by the engine (./jobs.ts), not by the kernel's schema
 * check, so its refusals name the field in words (`trigger.cron: …`) rather than a oneOf's branches.
 *
 * Pure data: imported by the kernel (through ./surface.ts) and by the Hand's worker.
 */
import { defineProtocol } from '../sdk/index.ts';
import { JOB_ID_PATTERN, JOB_SCHEMA } from './types.ts';

const ID = { type: 'string', pattern: JOB_ID_PATTERN } as const;
const ONE = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: ID } } as const;
const NONE = { type: 'object', additionalProperties: false, properties: {} } as const;
const MS = { type: 'number' } as const;
const STATUS = {
  type: 'string',
  enum: ['running', 'success', 'failure', 'timeout', 'cancelled', 'interrupted', 'skipped'],
} as const;

/** one run of a job (./types.ts RunRecord) */
export const RUN_SCHEMA = {
  type: 'object',
  required: ['runId', 'jobId', 'scheduledAt', 'cause', 'attempt', 'status'],
  properties: {
    runId: { type: 'string' },
    jobId: { type: 'string' },
    scheduledAt: MS,
    cause: { type: 'string', enum: ['schedule', 'catch-up', 'event', 'after', 'manual', 'retry'] },
    attempt: { type: 'integer' },
    status: STATUS,
    startedAt: MS,
    endedAt: MS,
    result: {},
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
    reason: { type: 'string' },
    event: { type: 'object', required: ['topic'], properties: { topic: { type: 'string' }, payload: {} } },
  },
} as const;

/** a job as the API shows it (./types.ts JobView); `spec` as JOB_SCHEMA says (documented on the routes) */
export const JOB_VIEW_SCHEMA = {
  type: 'object',
  required: ['id', 'spec', 'source', 'state', 'running', 'next'],
  properties: {
    id: { type: 'string' },
    spec: { type: 'object' },
    source: { type: 'string', enum: ['config', 'api'] },
    state: {
      type: 'object',
      required: ['paused', 'runs', 'failuresInARow'],
      properties: {
        paused: { type: 'boolean' },
        pausedBy: { type: 'string', enum: ['api', 'failures', 'ended'] },
        lastScheduledAt: MS,
        nextAt: MS,
        runs: { type: 'integer' },
        failuresInARow: { type: 'integer' },
        lastOutcome: {
          type: 'object',
          required: ['runId', 'status', 'endedAt'],
          properties: { runId: { type: 'string' }, status: STATUS, endedAt: MS },
        },
      },
    },
    running: { type: 'array', items: { type: 'string' } },
    next: { type: 'array', items: MS },
    waiting: { type: 'string' },
  },
} as const;

/** the same with the spec's own schema, for the OpenAPI document */
export const JOB_VIEW_DOC = {
  ...JOB_VIEW_SCHEMA,
  properties: { ...JOB_VIEW_SCHEMA.properties, spec: JOB_SCHEMA },
} as const;

const STATS_SCHEMA = {
  type: 'object',
  required: ['jobs', 'paused', 'running', 'runs', 'buffered', 'lastLagMs', 'clockSynced', 'clockJumps'],
  properties: {
    jobs: { type: 'integer' },
    paused: { type: 'integer' },
    running: { type: 'integer' },
    runs: { type: 'object', additionalProperties: { type: 'number' } },
    buffered: { type: 'integer' },
    lastLagMs: { type: 'number' },
    clockSynced: { type: 'boolean' },
    clockJumps: { type: 'integer' },
    /** where the clock's trust comes from: `build-time` or the kernel's source */
    clockSource: { type: 'string' },
    /** task answers awaited from asked Hands */
    pendingTasks: { type: 'integer' },
  },
} as const;

const JOB_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['job'],
  properties: { job: JOB_VIEW_SCHEMA },
} as const;

export const protocol = defineProtocol({
  list: {
    summary: 'every job (config and stored), with its state and next times',
    request: NONE,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['jobs'],
      properties: { jobs: { type: 'array', items: JOB_VIEW_SCHEMA } },
    },
  },
  get: { summary: 'one job', request: ONE, answer: JOB_ANSWER },
  put: {
    summary: "create or update a job by its id (checked by the engine: each refusal names the job's field)",
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['job'],
      properties: { job: { type: 'object' } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['job', 'created'],
      properties: { job: JOB_VIEW_SCHEMA, created: { type: 'boolean' } },
    },
  },
  remove: {
    summary: 'remove a stored job (a config job is removed by editing the config)',
    request: ONE,
    answer: { type: 'object', additionalProperties: false, required: ['removed'], properties: { removed: ID } },
  },
  run: {
    summary: 'run a job now, outside its schedule; answers with the run as it started',
    request: ONE,
    answer: { type: 'object', additionalProperties: false, required: ['run'], properties: { run: RUN_SCHEMA } },
  },
  pause: { summary: 'pause a job: no run until it is resumed', request: ONE, answer: JOB_ANSWER },
  resume: { summary: 'resume a paused job', request: ONE, answer: JOB_ANSWER },
  history: {
    summary: "a job's runs, newest first",
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: {
        id: ID,
        limit: { type: 'integer', minimum: 1, maximum: 1000 },
        /** runs scheduled before this time (ms epoch): the next page */
        before: { type: 'number', minimum: 0 },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['runs'],
      properties: { runs: { type: 'array', items: RUN_SCHEMA } },
    },
  },
  stats: {
    summary: "the engine's counters (for /metrics)",
    request: NONE,
    answer: { type: 'object', additionalProperties: false, required: ['stats'], properties: { stats: STATS_SCHEMA } },
  },
});

export type SchedulingProtocol = typeof protocol;
