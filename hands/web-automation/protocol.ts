/**
 * The Web Automation Hand's typed requests (hands/sdk/surface.ts), answered by ./index.ts and used by ./surface.ts's
 * routes, its metrics and the CLI:
 *
 *   watches     the watches (config and API), each with its source, kind and state (the last value's excerpt, last
 *               check and change, broken)
 *   check       check a watch now (a check already going is joined): the events it gave and the watch's state
 *   watch       one watch: its state, the history tail (the last checks, ./watch.ts HISTORY), its recent runs and its
 *               last change (the text diff, or a visual watch's share and screenshot)
 *   putWatch    add or replace a watch kept in the Hand's store ({ id, watch } as written; ./watch.ts parseWatch
 *               checks it: BAD_REQUEST naming the field); CONFLICT for a config watch's id or when the watches are full
 *   removeWatch remove an API watch with its state and scheduler job; CONFLICT for a config watch, NOT_FOUND
 *   flows       the configured flows: steps or goal, inputs, schedule, last run
 *   run         run a flow now, by name or as a whole definition (checked before the browser starts: an error names
 *               the step): the stored run record
 *   runs        run records without their steps and output, newest first; `before` (a run id) pages back
 *   runDetail   one whole run record (steps, failure, screenshots, downloads, output); NOT_FOUND
 *   stats       the counters /metrics shows
 *
 * Pure data: imported by the kernel (through ./surface.ts) and by the Hand's worker.
 */
import { defineProtocol } from '../sdk/index.ts';
import { HAND_NAME_PATTERN } from '../../runtime/core/names.ts';

/** a watch id (./watch.ts): the bus topic `web/watch/<id>/<event>`, the API path and a scheduler job id use it */
export const WATCH_ID_PATTERN = '^[a-z0-9][a-z0-9_-]{0,63}$';
/** a flow's name (runtime/core/flow.ts: the Hand instance name's rule) */
export const FLOW_NAME_PATTERN = HAND_NAME_PATTERN;
/** a run's id: its start (ms, 13 digits, so ids sort by time) and 4 random characters */
export const RUN_ID_PATTERN = '^\\d{13}[a-z0-9]{4}$';

const NONE = { type: 'object', additionalProperties: false, properties: {} } as const;
const MS = { type: 'number' } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;
const ANY = {} as const;

export const WATCH_VIEW_SCHEMA = {
  type: 'object',
  required: ['id', 'url', 'what', 'kind', 'source', 'broken', 'failures', 'pending', 'checking'],
  properties: {
    id: { type: 'string' },
    url: { type: 'string' },
    /** what is compared, in words: `text #price`, `json $.items[0].price`, `attribute a.dl@href`, `price .cost` */
    what: { type: 'string' },
    kind: { type: 'string', enum: ['text', 'json', 'attribute', 'price', 'visual'] },
    /** from the settings (config) or added through the API / `talon web watch add` (api) */
    source: { type: 'string', enum: ['config', 'api'] },
    schedule: { type: 'string' },
    /** who keeps the schedule: the Scheduling Hand's job, the Hand's own timer, or nobody yet */
    scheduledBy: { type: 'string', enum: ['scheduler', 'local', 'none'] },
    /** the last confirmed value's first characters; absent before the first good check */
    value: { type: 'string' },
    lastCheckAt: MS,
    lastChangeAt: MS,
    broken: { type: 'boolean' },
    /** failed checks in a row */
    failures: COUNT,
    /** a new value seen once, waiting for the next check to confirm it */
    pending: { type: 'boolean' },
    checking: { type: 'boolean' },
  },
} as const;

/** a watch's last confirmed change (./index.ts LastChange) */
export const LAST_CHANGE_SCHEMA = {
  type: 'object',
  required: ['at', 'runId', 'before', 'after'],
  properties: {
    at: MS,
    runId: { type: 'string' },
    /** the values (cut); a visual watch's in words ("a picture 800×600") */
    before: { type: 'string' },
    after: { type: 'string' },
    /** text, json, attribute, price: the unified diff */
    diff: { type: 'string' },
    /** visual: how much of the region changed */
    visual: {
      type: 'object',
      required: ['percent', 'changedCells', 'cells', 'sizeChanged', 'width', 'height'],
      properties: {
        percent: { type: 'number' },
        changedCells: COUNT,
        cells: COUNT,
        sizeChanged: { type: 'boolean' },
        width: COUNT,
        height: COUNT,
        before: {
          type: 'object',
          required: ['width', 'height'],
          properties: { width: COUNT, height: COUNT },
        },
      },
    },
    /** visual: the screenshot of the check that saw the change (a file in the Hand's folder) */
    screenshot: { type: 'string' },
    price: { type: 'object' },
  },
} as const;

/** a watch as written (./watch.ts parseWatch checks it and names the field it refuses) */
export const WATCH_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  description:
    'a watch: { url, what: { text: SEL } | { json: "$.path" } | { attribute: { selector, name } } | { price: SEL } | { visual: SEL | { selector?, tolerance? } }, schedule?, ignore?, minChange?, confirm?, unchangedDays?, brokenAfter? }',
  properties: {
    id: { type: 'string', description: "the watch id: the path's (or left out)" },
    url: { type: 'string' },
    what: { type: 'object' },
    schedule: { type: 'string' },
    ignore: { type: 'array', items: { type: 'string' } },
    minChange: { type: 'object' },
    confirm: { type: 'boolean' },
    unchangedDays: { type: 'number' },
    brokenAfter: { type: 'integer' },
  },
} as const;

const STEP_SCHEMA = {
  type: 'object',
  required: ['index', 'path', 'kind', 'ms', 'ok'],
  properties: {
    index: { type: 'integer' },
    path: { type: 'string' },
    kind: { type: 'string' },
    ms: { type: 'number' },
    ok: { type: 'boolean' },
    error: { type: 'string' },
    url: { type: 'string' },
  },
} as const;

const FAILURE_SCHEMA = {
  type: 'object',
  required: ['message'],
  properties: {
    path: { type: 'string' },
    kind: { type: 'string' },
    message: { type: 'string' },
    url: { type: 'string' },
    screenshot: { type: 'string' },
  },
} as const;

const FILE_SCHEMA = {
  type: 'object',
  required: ['name', 'file'],
  properties: { name: { type: 'string' }, file: { type: 'string' }, size: COUNT },
} as const;

const RUN_COMMON = {
  id: { type: 'string' },
  kind: { type: 'string', enum: ['check', 'flow'] },
  /** the watch id or the flow's name */
  name: { type: 'string' },
  at: MS,
  ok: { type: 'boolean' },
  ms: { type: 'number', minimum: 0 },
  /** what started it: api, task (the scheduler or another Hand), schedule (a local timer) */
  cause: { type: 'string' },
  /** a check's events (changed, pending, broken, recovered, unchanged) */
  events: { type: 'array', items: { type: 'string' } },
  /** why it failed (a check: the page or the selector; a flow: the tool or the agent loop) */
  error: { type: 'string' },
  /** a flow's mode: scripted steps or a goal for the agent loop */
  mode: { type: 'string', enum: ['steps', 'goal'] },
  failure: FAILURE_SCHEMA,
  screenshots: { type: 'array', items: FILE_SCHEMA },
} as const;

/** a run record without its steps, output and downloads: what listings answer */
export const RUN_SUMMARY_SCHEMA = {
  type: 'object',
  required: ['id', 'kind', 'name', 'at', 'ok', 'ms', 'cause'],
  properties: RUN_COMMON,
} as const;

/** the whole run record (./index.ts RunRecord) */
export const RUN_SCHEMA = {
  type: 'object',
  required: ['id', 'kind', 'name', 'at', 'ok', 'ms', 'cause'],
  properties: {
    ...RUN_COMMON,
    steps: { type: 'array', items: STEP_SCHEMA },
    downloads: { type: 'array', items: FILE_SCHEMA },
    output: ANY,
    /** the names of the inputs given (their values are not kept: one may be a password) */
    inputs: { type: 'array', items: { type: 'string' } },
    /** requests the browser refused (not granted hosts) */
    refused: {
      type: 'array',
      items: {
        type: 'object',
        required: ['url', 'reason'],
        properties: { url: { type: 'string' }, reason: { type: 'string' } },
      },
    },
    /** a goal flow: the agent loop's turns */
    agentSteps: COUNT,
  },
} as const;

export const FLOW_VIEW_SCHEMA = {
  type: 'object',
  required: ['name', 'mode', 'inputs'],
  properties: {
    name: { type: 'string' },
    mode: { type: 'string', enum: ['steps', 'goal'] },
    description: { type: 'string' },
    /** scripted flows: the top-level steps' count */
    steps: COUNT,
    /** goal flows: the goal */
    goal: { type: 'string' },
    /** the declared inputs and their types */
    inputs: { type: 'object', additionalProperties: { type: 'string' } },
    schedule: { type: 'string' },
    scheduledBy: { type: 'string', enum: ['scheduler', 'local', 'none'] },
    lastRun: RUN_SUMMARY_SCHEMA,
  },
} as const;

const EVENT_SCHEMA = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', enum: ['changed', 'broken', 'recovered', 'unchanged', 'pending'] } },
} as const;

const HISTORY_SCHEMA = {
  type: 'object',
  required: ['at', 'result'],
  properties: {
    at: MS,
    result: { type: 'string', enum: ['baseline', 'same', 'small', 'pending', 'changed', 'failed'] },
    note: { type: 'string' },
  },
} as const;

export const STATS_SCHEMA = {
  type: 'object',
  required: ['watches', 'flows', 'checks', 'checkFailures', 'changes', 'broken', 'runs'],
  properties: {
    watches: COUNT,
    flows: COUNT,
    /** checks done (good or failed) */
    checks: COUNT,
    /** checks whose page or selector failed */
    checkFailures: COUNT,
    /** 'changed' events */
    changes: COUNT,
    /** watches broken now */
    broken: COUNT,
    /** flow runs ended, by outcome: ok, failed (a step or the agent failed), error (the tool could not run it) */
    runs: { type: 'object', additionalProperties: { type: 'number' } },
  },
} as const;

const RUN_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['run'],
  properties: { run: RUN_SCHEMA },
} as const;

export const protocol = defineProtocol({
  watches: {
    summary: 'the configured watches with their state',
    request: NONE,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['watches'],
      properties: { watches: { type: 'array', items: WATCH_VIEW_SCHEMA } },
    },
  },
  check: {
    summary: 'check a watch now (a check going is joined): its events and state',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: { type: 'string', pattern: WATCH_ID_PATTERN } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['watch', 'events', 'run'],
      properties: {
        watch: WATCH_VIEW_SCHEMA,
        /** the events of this check (a 'changed' one carries before, after and the diff) */
        events: { type: 'array', items: EVENT_SCHEMA },
        run: RUN_SUMMARY_SCHEMA,
      },
    },
  },
  watch: {
    summary: 'one watch: its state, the history tail and its recent check runs',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: { type: 'string', pattern: WATCH_ID_PATTERN } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['watch', 'history', 'runs'],
      properties: {
        watch: WATCH_VIEW_SCHEMA,
        history: { type: 'array', items: HISTORY_SCHEMA },
        runs: { type: 'array', items: RUN_SUMMARY_SCHEMA },
        lastChange: LAST_CHANGE_SCHEMA,
      },
    },
  },
  putWatch: {
    summary: 'add or replace a watch kept in the store (not one of the config)',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'watch'],
      properties: { id: { type: 'string', pattern: WATCH_ID_PATTERN }, watch: WATCH_BODY_SCHEMA },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['watch', 'created'],
      properties: { watch: WATCH_VIEW_SCHEMA, created: { type: 'boolean' } },
    },
  },
  removeWatch: {
    summary: 'remove a watch added through the API, with its state and scheduler job',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: { type: 'string', pattern: WATCH_ID_PATTERN } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['removed'],
      properties: { removed: { type: 'string' } },
    },
  },
  flows: {
    summary: 'the configured flows',
    request: NONE,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['flows'],
      properties: { flows: { type: 'array', items: FLOW_VIEW_SCHEMA } },
    },
  },
  run: {
    summary: 'run a flow now, by name or as a definition (checked first; an error names the step)',
    request: {
      type: 'object',
      additionalProperties: false,
      properties: {
        flow: { type: 'string', pattern: FLOW_NAME_PATTERN },
        definition: { type: 'object' },
        inputs: { type: 'object' },
      },
    },
    answer: RUN_ANSWER,
  },
  runs: {
    summary: 'run records without steps and output, newest first; `before` (a run id) pages back',
    request: {
      type: 'object',
      additionalProperties: false,
      properties: {
        kind: { type: 'string', enum: ['check', 'flow'] },
        limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
        before: { type: 'string', pattern: RUN_ID_PATTERN },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['runs'],
      properties: {
        runs: { type: 'array', items: RUN_SUMMARY_SCHEMA },
        /** pass as `before` for older runs */
        next: { type: 'string' },
      },
    },
  },
  runDetail: {
    summary: 'one whole run record: steps, failure, screenshots, downloads, output',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: { type: 'string', pattern: RUN_ID_PATTERN } },
    },
    answer: RUN_ANSWER,
  },
  stats: {
    summary: "the Hand's counters (for /metrics)",
    request: NONE,
    answer: { type: 'object', additionalProperties: false, required: ['stats'], properties: { stats: STATS_SCHEMA } },
  },
});

export type WebProtocol = typeof protocol;

/** a failure in words: its message, with the step's path in front unless the message already starts with it */
export function failureText(f: { path?: string; kind?: string; message: string }, withKind = false): string {
  if (!f.path || f.message.startsWith(f.path)) return f.message;
  return `${f.path}${withKind && f.kind ? ` (${f.kind})` : ''}: ${f.message}`;
}
