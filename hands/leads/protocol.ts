/**
 * The Lead Generation Hand's typed requests (hands/sdk/surface.ts), answered by ./index.ts and used by ./surface.ts's
 * routes, its metrics and its tools:
 *
 *   leads       a page of leads (by status, least score, a word in company/domain), in id order; `next` → `after`
 *   lead        one lead whole, every field with its source URL (NOT_FOUND)
 *   scan        read the sources now (one source by name): counts of what was found, new, qualified, delivered
 *   import      a CSV or JSON text through the same pipeline as an `import` source
 *   export      the leads as CSV (./csv.ts), optionally one status only
 *   deliveries  a page of the CRM outbox: pending, sent, failed
 *   retry       a failed (or pending) delivery tried again now
 *   stats       the counters behind /metrics
 *
 * Views are the Hand's records (./types.ts) as JSON, open (no additionalProperties: false) so a record that grows a
 * field does not break an answer. Pure data: imported by the kernel (through ./surface.ts) and the worker.
 */
import { defineProtocol } from '../sdk/index.ts';
import { LEAD_FIELDS } from './types.ts';

/** a lead id: `d:<domain>` or `e:<e-mail>` (`:`, `.`, `@` are percent-encoded in a path) */
export const LEAD_ID_PATTERN = '^[de]:[^\\s/]{1,320}$';
/** a source or CRM target name */
export const SOURCE_NAME_PATTERN = '^[\\w.-]{1,64}$';
/** a delivery key: `<target>/<lead id>` */
export const DELIVERY_KEY_PATTERN = '^[^\\s/]{1,64}/[de]:[^\\s/]{1,320}$';
/** the largest import through the API: 1 MiB of text */
export const MAX_IMPORT_CHARS = 1_048_576;

export const STATUSES = ['new', 'qualified', 'unqualified', 'excluded'] as const;
export const DELIVERY_STATES = ['pending', 'sent', 'failed'] as const;

const MS = { type: 'number', description: 'ms epoch' } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;
const TEXT = { type: 'string' } as const;
const NONE = { type: 'object', additionalProperties: false, properties: {} } as const;
const STATUS = {
  type: 'string',
  enum: STATUSES,
  description: 'qualified: score ≥ threshold (routed to the CRMs); excluded: a rule of criteria.exclude matched',
} as const;
const SOURCED = {
  type: 'object',
  required: ['value', 'source', 'at'],
  properties: {
    value: {},
    source: { type: 'string', description: 'the URL (or file:// path, `dns:MX <domain>`) the value was read from' },
    at: MS,
  },
} as const;
const SOURCED_LIST = { type: 'array', items: SOURCED } as const;

/** a lead as the API shows it (./types.ts Lead) */
export const LEAD_VIEW_SCHEMA = {
  type: 'object',
  required: [
    'id',
    'emails',
    'phones',
    'social',
    'technologies',
    'mx',
    'score',
    'reasons',
    'status',
    'sources',
    'firstSeen',
    'lastSeen',
    'version',
  ],
  properties: {
    id: { type: 'string', description: '`d:<domain>` or `e:<e-mail>`' },
    domain: TEXT,
    company: SOURCED,
    website: SOURCED,
    emails: SOURCED_LIST,
    phones: SOURCED_LIST,
    contact: SOURCED,
    title: SOURCED,
    industry: SOURCED,
    location: SOURCED,
    size: SOURCED,
    description: SOURCED,
    social: SOURCED_LIST,
    technologies: SOURCED_LIST,
    mx: SOURCED_LIST,
    score: { type: 'number', minimum: 0, maximum: 100 },
    reasons: { type: 'array', items: TEXT, description: 'the rules that gave points (`industry: robotics +25`)' },
    model: {
      type: 'object',
      required: ['score', 'reason'],
      properties: { score: { type: 'number' }, reason: TEXT },
      description: "the model's judgement, when asked",
    },
    status: STATUS,
    excludedBy: TEXT,
    sources: { type: 'array', items: TEXT, description: 'the sources that found it' },
    firstSeen: MS,
    lastSeen: MS,
    enrichedAt: MS,
    version: { type: 'string', description: 'a hash of what a CRM gets' },
  },
} as const;

/** one lead's delivery to one CRM target (./types.ts Delivery) */
export const DELIVERY_VIEW_SCHEMA = {
  type: 'object',
  required: ['key', 'target', 'leadId', 'version', 'state', 'attempts', 'nextAt', 'createdAt'],
  properties: {
    key: { type: 'string', description: '`<target>/<lead id>`' },
    target: TEXT,
    leadId: TEXT,
    version: TEXT,
    state: { type: 'string', enum: DELIVERY_STATES },
    attempts: COUNT,
    nextAt: { ...MS, description: 'ms epoch: the next try (pending)' },
    createdAt: MS,
    sentAt: MS,
    crmId: { type: 'string', description: "the CRM's id for the record" },
    action: { type: 'string', enum: ['created', 'updated'] },
    lastError: TEXT,
  },
} as const;

const ERRORS = {
  type: 'object',
  additionalProperties: COUNT,
  description: 'errors by kind (robots, timeout, too-large, http, parse, model-json, no-id, …)',
} as const;

/** what a scan (or an import) did */
export const SCAN_ANSWER_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['found', 'new', 'updated', 'qualified', 'enqueued', 'enriched', 'errors', 'startedAt', 'finishedAt'],
  properties: {
    found: { ...COUNT, description: 'leads the sources gave (before dedup)' },
    new: { ...COUNT, description: 'leads not seen before' },
    updated: { ...COUNT, description: 'known leads whose content changed' },
    qualified: { ...COUNT, description: 'leads of this scan at or above the threshold' },
    newlyQualified: { ...COUNT, description: 'leads that became qualified in this scan' },
    enqueued: { ...COUNT, description: 'deliveries put in the outbox (a version already sent is not)' },
    enriched: { ...COUNT, description: "leads read from their company's own site" },
    pages: { ...COUNT, description: 'pages and files read' },
    errors: ERRORS,
    sources: { type: 'array', items: TEXT, description: 'the sources read' },
    joined: { type: 'boolean', description: 'a scan was running: this answer is its' },
    startedAt: MS,
    finishedAt: MS,
  },
} as const;

export const STATS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['leads', 'scans', 'found', 'errors', 'modelErrors', 'deliveries', 'delivered', 'deliveryFailures'],
  properties: {
    leads: {
      type: 'object',
      additionalProperties: false,
      required: ['new', 'qualified', 'unqualified', 'excluded'],
      properties: { new: COUNT, qualified: COUNT, unqualified: COUNT, excluded: COUNT },
      description: 'stored leads by status (now)',
    },
    scans: { ...COUNT, description: 'scans and imports since the Hand started' },
    found: { ...COUNT, description: 'leads the sources gave since the Hand started' },
    errors: ERRORS,
    modelErrors: { ...COUNT, description: "the model's answers that could not be used (extraction and judgement)" },
    deliveries: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['pending', 'sent', 'failed'],
        properties: { pending: COUNT, sent: COUNT, failed: COUNT },
      },
      description: 'outbox entries by CRM target and state (now)',
    },
    delivered: { ...COUNT, description: 'deliveries sent since the Hand started' },
    deliveryFailures: { ...COUNT, description: 'deliveries failed for good since the Hand started' },
    lastScan: SCAN_ANSWER_SCHEMA,
    scanning: { type: 'boolean' },
  },
} as const;

export const LEADS_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: STATUS,
    minScore: { type: 'number', minimum: 0, maximum: 100 },
    q: { type: 'string', minLength: 1, maxLength: 200, description: 'a word in the company, domain or e-mails' },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
    after: { type: 'string', maxLength: 400, description: "the previous page's `next`" },
  },
} as const;

export const IMPORT_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'data'],
  properties: {
    format: { type: 'string', enum: ['csv', 'json'] },
    data: {
      type: 'string',
      minLength: 1,
      maxLength: MAX_IMPORT_CHARS,
      description: 'the CSV (a header row) or JSON (an array of objects) text, at most 1 MiB',
    },
    source: {
      type: 'string',
      pattern: SOURCE_NAME_PATTERN,
      description: 'the name the leads are recorded from (default `import`)',
    },
    map: {
      type: 'object',
      additionalProperties: { type: 'string', enum: LEAD_FIELDS },
      description: 'column → lead field (`{ "Firm": "company", "URL": "website" }`)',
    },
  },
} as const;

export const DELIVERIES_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: DELIVERY_STATES },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
    after: { type: 'string', maxLength: 400, description: "the previous page's `next`" },
  },
} as const;

export const protocol = defineProtocol({
  leads: {
    summary: 'a page of leads in id order (by status, least score, a word); `next` is the next page’s `after`',
    request: LEADS_REQUEST_SCHEMA,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['leads'],
      properties: {
        leads: { type: 'array', items: LEAD_VIEW_SCHEMA },
        next: { type: 'string', description: "the next page's `after`; absent: no more" },
      },
    },
  },
  lead: {
    summary: 'one lead, every field with its source URL',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: { type: 'string', pattern: LEAD_ID_PATTERN } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['lead'],
      properties: { lead: LEAD_VIEW_SCHEMA },
    },
  },
  scan: {
    summary: 'read the sources now (or one by name); a scan already running is joined',
    request: {
      type: 'object',
      additionalProperties: false,
      properties: { source: { type: 'string', pattern: SOURCE_NAME_PATTERN } },
    },
    answer: SCAN_ANSWER_SCHEMA,
  },
  import: {
    summary: 'a CSV or JSON text through the same pipeline as an import source',
    request: IMPORT_REQUEST_SCHEMA,
    answer: SCAN_ANSWER_SCHEMA,
  },
  export: {
    summary: 'the leads as CSV (one status, or all)',
    request: { type: 'object', additionalProperties: false, properties: { status: STATUS } },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['csv', 'count'],
      properties: { csv: TEXT, count: COUNT },
    },
  },
  deliveries: {
    summary: 'a page of the CRM outbox (by state)',
    request: DELIVERIES_REQUEST_SCHEMA,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['deliveries'],
      properties: {
        deliveries: { type: 'array', items: DELIVERY_VIEW_SCHEMA },
        next: { type: 'string', description: "the next page's `after`; absent: no more" },
      },
    },
  },
  retry: {
    summary: 'try a delivery again now',
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      properties: { key: { type: 'string', pattern: DELIVERY_KEY_PATTERN } },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['delivery'],
      properties: { delivery: DELIVERY_VIEW_SCHEMA },
    },
  },
  stats: {
    summary: "the Hand's counters (for /metrics)",
    request: NONE,
    answer: STATS_SCHEMA,
  },
});

export type LeadsProtocol = typeof protocol;
