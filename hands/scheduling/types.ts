/**
 * The Scheduling Hand's contract: what a job is (its JSON Schema, the types derived from it), what a run is,
 * what the engine needs from its surroundings (clock, store, actions) and what it offers the Hand's surface.
 *
 *   ./jobs.ts      validate a job beyond its schema (cron, time zone, topics, cycles, grants), field-named errors
 *   ./triggers.ts  when a trigger fires next; what a catch-up policy runs after downtime
 *   ./engine.ts    the scheduler: one timer for all jobs, runs journalled before and after, policies applied
 *   ./actions.ts   what an action does, through the Hand's context (tools, bus, agent), within its grants
 *   ./index.ts     the Hand: wires the engine to ctx, config jobs, the task protocol, requests
 *   ./surface.ts   /api/v1/schedules, `talon schedule …`, /metrics, the Schedules page
 *
 * Nothing here trusts a model or a prompt: dedup, schedules, policies and limits are code.
 */
import type { FromSchema } from '../sdk/index.ts';

/** a job id: lowercase letters, digits, `.`, `_`, `-`; 1–64 characters, starting with a letter or digit */
export const JOB_ID_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';
/** how many jobs one Scheduling Hand holds (config and stored together) */
export const MAX_JOBS = 20_000;
/** run records kept per job (the oldest go first) */
export const HISTORY_PER_JOB = 200;

const jobId = { type: 'string', pattern: JOB_ID_PATTERN } as const;
/** a duration: milliseconds, or a string such as `500ms`, `30s`, `5m`, `2h`, `1d` */
const duration = {
  oneOf: [
    { type: 'integer', minimum: 0, maximum: 31_536_000_000 },
    { type: 'string', pattern: '^\\d+(\\.\\d+)?(ms|s|m|h|d)$' },
  ],
} as const;
/** a point in time: an ISO 8601 string with a zone (`2026-12-24T18:00:00+01:00`) or ms since the epoch */
const instant = {
  oneOf: [
    { type: 'string', minLength: 10, maxLength: 40 },
    { type: 'integer', minimum: 0 },
  ],
} as const;
/** a topic relative to `talon/<deviceId>/` (or absolute with a leading `/`); filters may use + and # */
const topic = { type: 'string', minLength: 1, maxLength: 256 } as const;
const handName = { type: 'string', minLength: 1, maxLength: 64 } as const;

/** one clause of an event condition; all clauses of `where` must hold */
export const CONDITION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['path', 'op'],
  properties: {
    /** a dotted path into the JSON payload: `severity`, `reading.value`, `items.0.id` */
    path: { type: 'string', minLength: 1, maxLength: 256 },
    op: { type: 'string', enum: ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'exists', 'matches'] },
    /** the value compared with (`in`: an array; `matches`: a regular expression's source; `exists`: true/false) */
    value: {},
    /**
     * an order for named levels: `{ path: 'severity', op: 'gte', value: 'warning', order: ['info', 'warning',
     * 'critical'] }` compares positions in this list
     */
    order: { type: 'array', items: { type: 'string', maxLength: 64 }, minItems: 2, maxItems: 32 },
  },
} as const;

export const TRIGGER_SCHEMA = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['cron'],
      properties: {
        /** five or six fields (seconds first when six), croner's syntax (`L`, `W`, `#`, ranges, steps) */
        cron: { type: 'string', minLength: 1, maxLength: 256 },
        /** an IANA time zone (`Europe/Berlin`); default: the device's */
        timezone: { type: 'string', minLength: 1, maxLength: 64 },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['every'],
      properties: {
        /** a fixed interval, on the monotonic clock (at least 100 ms) */
        every: duration,
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['at'],
      properties: { at: instant },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['event'],
      properties: {
        event: {
          type: 'object',
          additionalProperties: false,
          required: ['topic'],
          properties: {
            /** a topic filter the Scheduling Hand's subscribe grant covers */
            topic,
            where: { type: 'array', items: CONDITION_SCHEMA, maxItems: 16 },
            /** at most one run per this long (a storm of alerts runs the job once) */
            debounce: duration,
          },
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['after'],
      properties: {
        /** run when these jobs' runs end (fan-in: each of them once since this job last ran) */
        after: { type: 'array', items: jobId, minItems: 1, maxItems: 32, uniqueItems: true },
        on: { type: 'string', enum: ['success', 'failure', 'always'], default: 'success' },
      },
    },
  ],
} as const;

export const ACTION_SCHEMA = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['hand'],
      properties: {
        hand: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'op'],
          properties: { name: handName, op: { type: 'string', enum: ['start', 'stop', 'restart'] } },
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['publish'],
      properties: {
        publish: {
          type: 'object',
          additionalProperties: false,
          required: ['topic'],
          properties: {
            topic,
            /** JSON; `{{scheduledAt}}`, `{{runId}}`, `{{event}}` in strings are filled in */
            payload: {},
            qos: { type: 'integer', enum: [0, 1, 2], default: 1 },
            retain: { type: 'boolean', default: false },
          },
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['ask'],
      properties: {
        /** a task for a Hand over the bus (the task protocol: ../sdk/tasks.ts), its answer stored with the run */
        ask: {
          type: 'object',
          additionalProperties: false,
          required: ['hand', 'task'],
          properties: {
            hand: handName,
            task: {},
            /** how long to wait for the answer (default 60 s) */
            timeout: duration,
          },
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['tool'],
      properties: {
        tool: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 128 }, input: { type: 'object' } },
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['agent'],
      properties: {
        agent: {
          type: 'object',
          additionalProperties: false,
          required: ['goal', 'tools'],
          properties: {
            goal: { type: 'string', minLength: 1, maxLength: 8000 },
            tools: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 128 }, maxItems: 64 },
            maxSteps: { type: 'integer', minimum: 1, maximum: 64 },
            maxTokens: { type: 'integer', minimum: 1, maximum: 1_000_000 },
            deadline: duration,
          },
        },
      },
    },
  ],
} as const;

export const POLICY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    /** a run is due while the last one still runs: skip it, keep one (or all) for after, cancel the old, or run both */
    overlap: { type: 'string', enum: ['skip', 'buffer-one', 'buffer-all', 'cancel', 'allow'], default: 'skip' },
    /** times missed while the device was off or the clock unsynchronised: none, the last one, or all within a window */
    catchUp: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mode: { type: 'string', enum: ['none', 'last', 'all'], default: 'last' },
        /** only times at most this long ago (default 1 day) */
        window: duration,
        /** at most this many (mode `all`; default 10) */
        max: { type: 'integer', minimum: 1, maximum: 1000 },
      },
    },
    /** each run starts up to this much later, at random (spreads a fleet's requests) */
    jitter: duration,
    /** a run longer than this is cancelled and counts as failed (default 10 min) */
    timeout: duration,
    retries: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max: { type: 'integer', minimum: 0, maximum: 100, default: 0 },
        /** the first wait; each next one × factor, up to maxBackoff */
        backoff: duration,
        factor: { type: 'number', minimum: 1, maximum: 10, default: 2 },
        maxBackoff: duration,
      },
    },
    /** the job pauses itself after this many failed runs in a row (0: never) */
    pauseAfterFailures: { type: 'integer', minimum: 0, maximum: 1000, default: 0 },
    /** no run after this time */
    endAt: instant,
    /** no run after this many (counted over the job's life) */
    maxRuns: { type: 'integer', minimum: 1 },
  },
} as const;

export const JOB_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'trigger', 'action'],
  properties: {
    id: jobId,
    description: { type: 'string', maxLength: 1000 },
    trigger: TRIGGER_SCHEMA,
    action: ACTION_SCHEMA,
    policy: POLICY_SCHEMA,
    /** created paused: no run until resumed */
    paused: { type: 'boolean', default: false },
  },
} as const;

export type JobSpec = FromSchema<typeof JOB_SCHEMA>;
export type Trigger = JobSpec['trigger'];
export type Action = JobSpec['action'];
export type Policy = NonNullable<JobSpec['policy']>;
export type Condition = FromSchema<typeof CONDITION_SCHEMA>;

/** where a job came from: the config (changed by editing it) or the API/CLI/tools/bus (stored in LevelDB) */
export type JobSource = 'config' | 'api';

/** A job as the engine holds it: the spec as given, durations and instants resolved to ms. */
export interface Job {
  spec: JobSpec;
  source: JobSource;
  /** ms epoch of the create and the last update */
  createdAt: number;
  updatedAt: number;
  /** a hash of the canonical spec: an update that changes the trigger resets the job's next time */
  version: string;
}

export type RunStatus =
  | 'running'
  | 'success'
  | 'failure'
  | 'timeout'
  | 'cancelled'
  /** it was running when the device lost power or the daemon was killed */
  | 'interrupted'
  /** due, but not run: overlap `skip`, paused, past its end; recorded so a skipped time is visible */
  | 'skipped';

/** why a run happened */
export type RunCause = 'schedule' | 'catch-up' | 'event' | 'after' | 'manual' | 'retry';

/** One run of a job, journalled (synced) before it starts and when it ends. */
export interface RunRecord {
  /** `<jobId>@<scheduledAt>` (`#<attempt>` when a retry), unique: a scheduled time never runs twice */
  runId: string;
  jobId: string;
  /** ms epoch of the time the run was due for (for events and manual runs: when it was asked for) */
  scheduledAt: number;
  cause: RunCause;
  attempt: number;
  status: RunStatus;
  /** ms epoch, wall clock */
  startedAt?: number;
  endedAt?: number;
  /** the action's answer (bounded: at most 16 KiB of JSON, else cut with `truncated: true`) */
  result?: unknown;
  error?: { code: string; message: string };
  /** skipped or cancelled: why */
  reason?: string;
  /** the event that triggered it: topic and payload (bounded) */
  event?: { topic: string; payload: unknown };
}

/** A job's durable state beside its spec. */
export interface JobState {
  paused: boolean;
  /** why it paused: `api` (a person), `failures` (pauseAfterFailures), `ended` (endAt / maxRuns) */
  pausedBy?: 'api' | 'failures' | 'ended';
  /** the latest scheduled time that was started or skipped: nothing at or before it runs again */
  lastScheduledAt?: number;
  /** wall-clock ms of the next run, when known */
  nextAt?: number;
  runs: number;
  failuresInARow: number;
  lastOutcome?: { runId: string; status: RunStatus; endedAt: number };
}

/** What the API shows of a job. */
export interface JobView {
  id: string;
  spec: JobSpec;
  source: JobSource;
  state: JobState;
  /** runs in flight now */
  running: string[];
  /** the next few times (wall clock), for a cron/at/every trigger; empty for event/after triggers */
  next: number[];
  /** why it does not run now: `paused`, `clock-unsynchronised`, `ended`, `waiting-for: a, b` */
  waiting?: string;
}

/** the engine's wall and monotonic clocks and its one timer (tests inject all of it) */
export interface EngineClock {
  /** ms since the epoch; may jump (NTP, a person, a board without a real-time clock) */
  wall(): number;
  /** ms, never goes back, unaffected by wall-clock changes */
  mono(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** The engine's durable store (the Hand's ctx.store, or a Map in tests). */
export interface EngineStore {
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** all writes of one call land together; `sync: true` is on disk when it resolves */
  batch(
    ops: Array<{ type: 'put'; key: string; value: unknown } | { type: 'del'; key: string }>,
    opts?: { sync?: boolean },
  ): Promise<void>;
  /** rows under a prefix in key order (or reverse), starting after the key `after` (paging) */
  list<T = unknown>(opts: {
    prefix: string;
    limit?: number;
    reverse?: boolean;
    after?: string;
  }): Promise<Array<[string, T]>>;
}

/** What an action's run gets: the run, its signal (timeout, cancel, stop) and the event that caused it. */
export interface ActionContext {
  run: RunRecord;
  signal: AbortSignal;
}

/** Runs actions (./actions.ts through the Hand's ctx; a fake in the engine's tests). */
export interface ActionRunner {
  /** resolves with the action's result; rejects with a TalonError (its code lands in the run record) */
  run(action: Action, ctx: ActionContext): Promise<unknown>;
}

export interface EngineOptions {
  clock: EngineClock;
  store: EngineStore;
  actions: ActionRunner;
  /** 0 ≤ x < 1, for jitter */
  random?: () => number;
  /**
   * whether the wall clock can be trusted (NTP synchronised, or later than the build): cron and `at`
   * triggers wait while it is not; intervals, events and `after` do not
   */
  clockSynced(): boolean;
  /** events for the surface: run started/ended, job changed (published on the bus, counted for /metrics) */
  onEvent?(e: EngineEvent): void;
  /** a run record's status change, for the Hand's log */
  log?(level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>): void;
}

export type EngineEvent =
  | { type: 'run'; run: RunRecord }
  | { type: 'job'; id: string; change: 'put' | 'removed' | 'paused' | 'resumed' };

/** counters for /metrics */
export interface EngineStats {
  jobs: number;
  paused: number;
  running: number;
  /** runs ended, by status */
  runs: Record<RunStatus, number>;
  /** due runs waiting for the overlap policy's buffer */
  buffered: number;
  /** ms: the engine's latest lateness (a run's start minus its due time) */
  lastLagMs: number;
  clockSynced: boolean;
  /** clock jumps seen (the wall clock moved by more than 2 s against the monotonic one) */
  clockJumps: number;
}

/** The engine's face to the Hand (requests, task protocol, tools). Errors are TalonError with BAD_REQUEST / NOT_FOUND / CONFLICT. */
export interface SchedulerApi {
  list(): JobView[];
  get(id: string): JobView;
  /** whether a job with this id is held */
  has(id: string): boolean;
  /** create or update by id; `source: 'config'` jobs cannot be changed through the API (CONFLICT) */
  put(spec: unknown, source?: JobSource): Promise<JobView>;
  remove(id: string): Promise<void>;
  /** a run now, outside the schedule (cause `manual`), its record when it started */
  runNow(id: string): Promise<RunRecord>;
  pause(id: string): Promise<JobView>;
  resume(id: string): Promise<JobView>;
  /** newest first */
  history(id: string, opts?: { limit?: number; before?: number }): Promise<RunRecord[]>;
  stats(): EngineStats;
}

/**
 * Store layout (keys in the Hand's own store scope):
 *   job/<id>                  Job
 *   state/<id>                JobState
 *   run/<id>/<scheduledAt as 15 digits>[#<attempt>]   RunRecord
 *   runs-open/<runId>         true while a run is in flight (an interrupted run is found in O(open runs))
 */
export const KEY = {
  job: (id: string) => `job/${id}`,
  state: (id: string) => `state/${id}`,
  run: (id: string, scheduledAt: number, attempt = 1) =>
    `run/${id}/${String(scheduledAt).padStart(15, '0')}${attempt > 1 ? `#${String(attempt).padStart(3, '0')}` : ''}`,
  runPrefix: (id: string) => `run/${id}/`,
  open: (runId: string) => `runs-open/${runId}`,
} as const;
