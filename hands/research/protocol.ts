/**
 * The Research Hand's typed requests (hands/sdk/surface.ts), answered by ./index.ts and used by ./surface.ts's routes,
 * its metrics and the CLI:
 *
 *   topics      the configured topics, each with its sources' labels, schedule and last run
 *   run         run a topic now (a run already going is joined): the report's summary
 *   reports     report summaries, newest first (no Markdown), of one topic or all; `before` (a report id) pages back
 *   report      one whole report (findings, sources, refused claims, Markdown); NOT_FOUND
 *   documents   stored documents without their text, in id order; `after` (a document id) pages on
 *   stats       the counters /metrics shows
 *
 * Pure data: imported by the kernel (through ./surface.ts) and by the Hand's worker.
 */
import { defineProtocol } from '../sdk/index.ts';

/** a topic id: the bus topic `research/<id>/findings`, the API path and a scheduler job id use it */
export const TOPIC_ID_PATTERN = '^[a-z0-9][a-z0-9_-]{0,39}$';
/** a run's id: the start time (ms, 13 digits, so ids sort by time) and 4 random characters */
export const RUN_ID_PATTERN = '^\\d{13}[a-z0-9]{4}$';
/** a report's id: `<topic>-<runId>` */
export const REPORT_ID_PATTERN = `^[a-z0-9][a-z0-9_-]{0,39}-\\d{13}[a-z0-9]{4}$`;
/** a document's id: the first 32 hex digits of its normalized text's sha256 */
export const DOC_ID_PATTERN = '^[0-9a-f]{8,64}$';

const TOPIC = { type: 'string', pattern: TOPIC_ID_PATTERN } as const;
const NONE = { type: 'object', additionalProperties: false, properties: {} } as const;
const MS = { type: 'number' } as const;
const MODE = { type: 'string', enum: ['model', 'digest', 'nothing'] } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;

export const RUN_STATS_SCHEMA = {
  type: 'object',
  required: ['sources', 'requests', 'notModified', 'candidates', 'new', 'relevant', 'errors', 'ms'],
  properties: {
    sources: COUNT,
    requests: COUNT,
    notModified: COUNT,
    candidates: COUNT,
    new: COUNT,
    relevant: COUNT,
    errors: COUNT,
    ms: { type: 'number', minimum: 0 },
  },
} as const;

export const SOURCE_ERROR_SCHEMA = {
  type: 'object',
  required: ['source', 'kind', 'message'],
  properties: {
    source: { type: 'string' },
    url: { type: 'string' },
    kind: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

/** a report without its Markdown and with counts for its lists: what listings and `run` answer */
export const REPORT_SUMMARY_SCHEMA = {
  type: 'object',
  required: [
    'id',
    'topic',
    'runId',
    'startedAt',
    'finishedAt',
    'mode',
    'summary',
    'findings',
    'sources',
    'refused',
    'downgraded',
    'stats',
    'errors',
  ],
  properties: {
    id: { type: 'string' },
    topic: { type: 'string' },
    runId: { type: 'string' },
    startedAt: MS,
    finishedAt: MS,
    mode: MODE,
    summary: { type: 'string' },
    /** how many findings (claims with citations) */
    findings: COUNT,
    /** how many documents it cites or lists */
    sources: COUNT,
    /** claims the ledger removed */
    refused: COUNT,
    downgraded: COUNT,
    stats: RUN_STATS_SCHEMA,
    /** errors of the run (sources, the model) */
    errors: COUNT,
    note: { type: 'string' },
  },
} as const;

const FINDING_SCHEMA = {
  type: 'object',
  required: ['claim', 'status', 'citations'],
  properties: {
    claim: { type: 'string' },
    status: { type: 'string', enum: ['confirmed', 'reported'] },
    citations: { type: 'array', items: { type: 'string' } },
    question: { type: 'integer' },
  },
} as const;

/** the whole report (./types.ts Report) */
export const REPORT_SCHEMA = {
  type: 'object',
  required: [
    'id',
    'topic',
    'runId',
    'startedAt',
    'finishedAt',
    'mode',
    'questions',
    'summary',
    'findings',
    'sources',
    'refused',
    'downgraded',
    'stats',
    'errors',
    'markdown',
  ],
  properties: {
    id: { type: 'string' },
    topic: { type: 'string' },
    runId: { type: 'string' },
    startedAt: MS,
    finishedAt: MS,
    mode: MODE,
    questions: { type: 'array', items: { type: 'string' } },
    summary: { type: 'string' },
    findings: { type: 'array', items: FINDING_SCHEMA },
    sources: {
      type: 'array',
      items: {
        type: 'object',
        required: ['n', 'docId', 'url', 'title', 'fetchedAt'],
        properties: {
          n: { type: 'integer' },
          docId: { type: 'string' },
          url: { type: 'string' },
          title: { type: 'string' },
          fetchedAt: MS,
          /** digest reports: the passage that matched best and the document's relevance (0–1) */
          extract: { type: 'string' },
          score: { type: 'number' },
        },
      },
    },
    refused: {
      type: 'array',
      items: {
        type: 'object',
        required: ['claim', 'reason', 'cited'],
        properties: {
          claim: { type: 'string' },
          reason: { type: 'string', enum: ['unknown-citation', 'no-citation'] },
          cited: { type: 'array', items: { type: 'string' } },
        },
      },
    },
    downgraded: COUNT,
    stats: RUN_STATS_SCHEMA,
    errors: { type: 'array', items: SOURCE_ERROR_SCHEMA },
    markdown: { type: 'string' },
    note: { type: 'string' },
  },
} as const;

export const TOPIC_VIEW_SCHEMA = {
  type: 'object',
  required: ['id', 'title', 'questions', 'sources', 'notify', 'running'],
  properties: {
    id: { type: 'string' },
    title: { type: 'string' },
    questions: { type: 'array', items: { type: 'string' } },
    /** the sources' labels (`feed:news.example`) */
    sources: { type: 'array', items: { type: 'string' } },
    schedule: { type: 'string' },
    /** who keeps the schedule: the Scheduling Hand's job, the Hand's own timer, or nobody yet */
    scheduledBy: { type: 'string', enum: ['scheduler', 'local', 'none'] },
    notify: { type: 'string', enum: ['off', 'low', 'normal', 'high'] },
    running: { type: 'boolean' },
    lastRun: {
      type: 'object',
      required: ['at', 'reportId', 'mode', 'new', 'relevant', 'errors'],
      properties: {
        /** when it started, ms epoch */
        at: MS,
        finishedAt: MS,
        reportId: { type: 'string' },
        mode: MODE,
        new: COUNT,
        relevant: COUNT,
        errors: COUNT,
      },
    },
  },
} as const;

/** a stored document without its text */
export const DOC_VIEW_SCHEMA = {
  type: 'object',
  required: ['id', 'url', 'urls', 'title', 'fetchedAt', 'source', 'chars'],
  properties: {
    id: { type: 'string' },
    url: { type: 'string' },
    urls: { type: 'array', items: { type: 'string' } },
    title: { type: 'string' },
    fetchedAt: MS,
    published: MS,
    /** the source's label it came from first */
    source: { type: 'string' },
    /** the length of its text */
    chars: COUNT,
  },
} as const;

export const STATS_SCHEMA = {
  type: 'object',
  required: [
    'topics',
    'running',
    'runs',
    'documents',
    'new',
    'requests',
    'notModified',
    'errors',
    'refused',
    'downgraded',
    'published',
  ],
  properties: {
    topics: COUNT,
    running: COUNT,
    /** runs ended, by mode (model, digest, nothing) and `failed` (a run that threw) */
    runs: { type: 'object', additionalProperties: { type: 'number' } },
    /** documents stored now */
    documents: COUNT,
    /** documents new to a topic, over all runs */
    new: COUNT,
    requests: COUNT,
    notModified: COUNT,
    /** errors by kind (a WebErrorKind, `model-json`, `model`, `store`, `fs`…) */
    errors: { type: 'object', additionalProperties: { type: 'number' } },
    /** claims the citation ledger removed */
    refused: COUNT,
    /** `confirmed` claims kept as `reported` */
    downgraded: COUNT,
    /** findings events published */
    published: COUNT,
  },
} as const;

export const protocol = defineProtocol({
  topics: {
    summary: 'the configured topics: questions, sources, schedule, last run',
    request: NONE,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['topics'],
      properties: { topics: { type: 'array', items: TOPIC_VIEW_SCHEMA } },
    },
  },
  run: {
    summary: 'run a topic now (a run already going is joined); answers with the report summary',
    request: { type: 'object', additionalProperties: false, required: ['topic'], properties: { topic: TOPIC } },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['report'],
      properties: { report: REPORT_SUMMARY_SCHEMA },
    },
  },
  reports: {
    summary: 'report summaries, newest first; `before` (a report id) pages back',
    request: {
      type: 'object',
      additionalProperties: false,
      properties: {
        topic: TOPIC,
        limit: { type: 'integer', minimum: 1, maximum: 200, default: 20 },
        before: { type: 'string', pattern: REPORT_ID_PATTERN },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['reports'],
      properties: {
        reports: { type: 'array', items: REPORT_SUMMARY_SCHEMA },
        /** pass as `before` for older reports */
        next: { type: 'string' },
      },
    },
  },
  report: {
    summary: 'one whole report: findings with their citations, sources, refused claims, Markdown',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: { type: 'string', pattern: REPORT_ID_PATTERN } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['report'],
      properties: { report: REPORT_SCHEMA },
    },
  },
  documents: {
    summary: 'stored documents without their text, in id order; `after` (a document id) pages on',
    request: {
      type: 'object',
      additionalProperties: false,
      properties: {
        topic: TOPIC,
        limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
        after: { type: 'string', pattern: DOC_ID_PATTERN },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['documents'],
      properties: {
        documents: { type: 'array', items: DOC_VIEW_SCHEMA },
        /** pass as `after` for the next page */
        next: { type: 'string' },
      },
    },
  },
  stats: {
    summary: "the Hand's counters (for /metrics)",
    request: NONE,
    answer: { type: 'object', additionalProperties: false, required: ['stats'], properties: { stats: STATS_SCHEMA } },
  },
});

export type ResearchProtocol = typeof protocol;
