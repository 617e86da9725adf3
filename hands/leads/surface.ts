/**
 * What the Lead Generation Hand adds to the device (hands/sdk/surface.ts), served by the kernel generically:
 *   /api/v1/leads?status=&minScore=&q=&limit=&after=   GET a page of leads                              (prospects:read)
 *   /api/v1/leads/{id}                                 GET one lead, each field with its source URL     (prospects:read)
 *   /api/v1/leads/scan                                 POST read the sources now (or one: { source })   (prospects:write)
 *   /api/v1/leads/import                               POST a CSV or JSON text (≤ 1 MiB) as a source    (prospects:write)
 *   /api/v1/leads/export?status=                       GET the leads as CSV, in JSON { csv, count }     (prospects:read)
 *   /api/v1/leads/deliveries?state=&limit=&after=      GET a page of the CRM outbox                     (prospects:read)
 *   /api/v1/leads/deliveries/retry                     POST try a delivery again now: { key }           (prospects:write)
 * Lead ids (`d:acme.example`) go percent-encoded in a path; a delivery key (`hubspot/d:acme.example`) goes in the body.
 * Changes are audited (`api.leads.scan`, `api.leads.import`, `api.leads.retry`) before the Hand acts.
 * `talon leads list|show|scan|import|export|deliveries|retry` (./cli.ts), its /metrics series (`talon_leads_*`),
 * its page (Leads) and its tools (leads.list, leads.get, leads.scan).
 *
 * Loaded by the kernel and the CLI at start: keep it light.
 */
import { defineSurface, routeOf, type HandSurface, type MetricFamily } from '../sdk/index.ts';
import {
  DELIVERY_KEY_PATTERN,
  DELIVERY_STATES,
  IMPORT_REQUEST_SCHEMA,
  LEAD_ID_PATTERN,
  SOURCE_NAME_PATTERN,
  STATUSES,
  protocol,
  type LeadsProtocol,
} from './protocol.ts';

const route = routeOf<LeadsProtocol>();

const ID_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: { type: 'string', pattern: LEAD_ID_PATTERN, description: 'the lead id, percent-encoded (`d%3Aacme.example`)' },
  },
} as const;
const KEY_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['key'],
  properties: {
    key: {
      type: 'string',
      pattern: DELIVERY_KEY_PATTERN,
      description: 'the delivery key `<target>/<lead id>` (`hubspot/d:acme.example`)',
    },
  },
} as const;

const surface: HandSurface<LeadsProtocol> = {
  id: 'leads',
  title: 'Lead Generation',
  provides: 'lead scans, scored leads and their delivery to CRMs',
  protocol,
  routes: [
    route({
      method: 'GET',
      path: '/api/v1/leads',
      operationId: 'listLeads',
      summary: 'A page of leads in id order: by status, least score or a word; `next` is the next page’s `after`',
      tag: 'prospects',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: {
          status: { type: 'string', enum: STATUSES },
          minScore: { type: 'number', minimum: 0, maximum: 100 },
          q: { type: 'string', minLength: 1, maxLength: 200 },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
          after: { type: 'string', maxLength: 400 },
        },
      },
      responses: { 200: { description: 'leads and the next page’s `after`', schema: protocol.leads.answer } },
      handler: ({ query, request }) =>
        request('leads', {
          limit: query.limit ?? 50,
          ...(query.status !== undefined && { status: query.status }),
          ...(query.minScore !== undefined && { minScore: query.minScore }),
          ...(query.q !== undefined && { q: query.q }),
          ...(query.after !== undefined && { after: query.after }),
        }),
    }),
    route({
      method: 'GET',
      path: '/api/v1/leads/export',
      operationId: 'exportLeads',
      summary: 'The leads as CSV (RFC 4180, safe against spreadsheet formulas), in JSON { csv, count }',
      tag: 'prospects',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: { status: { type: 'string', enum: STATUSES } },
      },
      responses: { 200: { description: 'the CSV text and how many leads it holds', schema: protocol.export.answer } },
      handler: ({ query, request }) => request('export', query.status !== undefined ? { status: query.status } : {}),
    }),
    route({
      method: 'GET',
      path: '/api/v1/leads/deliveries',
      operationId: 'listLeadDeliveries',
      summary: 'A page of the CRM outbox: pending, sent and failed deliveries',
      tag: 'prospects',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: {
          state: { type: 'string', enum: DELIVERY_STATES },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
          after: { type: 'string', maxLength: 400 },
        },
      },
      responses: { 200: { description: 'deliveries in key order', schema: protocol.deliveries.answer } },
      handler: ({ query, request }) =>
        request('deliveries', {
          limit: query.limit ?? 50,
          ...(query.state !== undefined && { state: query.state }),
          ...(query.after !== undefined && { after: query.after }),
        }),
    }),
    route({
      method: 'POST',
      path: '/api/v1/leads/deliveries/retry',
      operationId: 'retryLeadDelivery',
      summary: 'Try a delivery again now (a failed one is pending again)',
      tag: 'prospects',
      access: 'write',
      body: KEY_BODY,
      responses: { 200: { description: 'the delivery as it is now', schema: protocol.retry.answer } },
      handler: ({ body, audited, request }) =>
        audited({ action: 'api.leads.retry', subject: body.key }, () => request('retry', { key: body.key })),
    }),
    route({
      method: 'POST',
      path: '/api/v1/leads/scan',
      operationId: 'scanLeads',
      summary: 'Read the sources now (or one by name); a scan already running is joined',
      tag: 'prospects',
      access: 'write',
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { source: { type: 'string', pattern: SOURCE_NAME_PATTERN } },
      },
      responses: { 200: { description: 'what the scan found, qualified and delivered', schema: protocol.scan.answer } },
      handler: ({ body, audited, request }) =>
        audited({ action: 'api.leads.scan', subject: body?.source ?? '*' }, () =>
          request('scan', body?.source !== undefined ? { source: body.source } : {}, { timeoutMs: 600_000 }),
        ),
    }),
    route({
      method: 'POST',
      path: '/api/v1/leads/import',
      operationId: 'importLeads',
      summary: 'Import leads from a CSV or JSON text (≤ 1 MiB): deduped, enriched, scored and routed like a source',
      tag: 'prospects',
      access: 'write',
      body: IMPORT_REQUEST_SCHEMA,
      responses: {
        200: { description: 'what the import found, qualified and delivered', schema: protocol.import.answer },
      },
      handler: ({ body, audited, request }) =>
        audited(
          {
            action: 'api.leads.import',
            subject: body.source ?? 'import',
            detail: { format: body.format, chars: body.data.length },
          },
          () => request('import', body, { timeoutMs: 600_000 }),
        ),
    }),
    route({
      method: 'GET',
      path: '/api/v1/leads/{id}',
      operationId: 'getLead',
      summary: 'One lead, each field with the URL it was read from',
      tag: 'prospects',
      access: 'read',
      params: ID_PARAMS,
      responses: { 200: { description: 'the lead', schema: protocol.lead.answer } },
      handler: ({ params, request }) => request('lead', { id: params.id! }),
    }),
  ],
  cli: {
    summary: 'leads of the running daemon: list, show, scan, import, export, deliveries, retry',
    description:
      "Work with the Lead Generation Hand's leads on the running daemon: list and show them (each field with its source), scan the sources now, import a CSV or JSON file, export CSV, and look after their delivery to the CRMs.",
    commands: [
      {
        name: 'list',
        summary: 'leads: score, status, company, domain',
        description: 'List leads in id order with their score, status, company and domain.',
        options: {
          status: { type: 'string', value: 'S', description: 'new, qualified, unqualified or excluded' },
          'min-score': { type: 'string', value: 'N', description: 'only leads scored at least N (0-100)' },
          q: { type: 'string', value: 'WORD', description: 'a word in the company, domain or e-mails' },
          limit: { type: 'string', value: 'N', description: 'how many (1-500, default 50)' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).listCommand(a),
      },
      {
        name: 'show',
        summary: 'one lead, each field with its source',
        description: 'Show one lead: every field with the URL it was read from, its score and the reasons.',
        positionals: [{ name: 'ID', required: true, description: 'the lead id (d:acme.example) or a domain' }],
        daemon: true,
        run: async (a) => (await import('./cli.ts')).showCommand(a),
      },
      {
        name: 'scan',
        summary: 'read the sources now',
        description: 'Read the sources now (or one with --source) and print what was found, qualified and delivered.',
        options: { source: { type: 'string', value: 'NAME', description: 'only this source' } },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).scanCommand(a),
      },
      {
        name: 'import',
        summary: 'import a CSV or JSON file',
        description:
          'Import leads from a CSV (a header row) or JSON (an array of objects) file of at most 1 MiB: they are deduped, enriched, scored and routed like a source.',
        positionals: [{ name: 'FILE', required: true, description: 'the file (- for stdin is not supported)' }],
        options: {
          format: { type: 'string', value: 'F', description: 'csv or json (default: from the file name)' },
          source: { type: 'string', value: 'NAME', description: 'the source name recorded (default import)' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).importCommand(a),
      },
      {
        name: 'export',
        summary: 'the leads as CSV',
        description: 'Write the leads as CSV to stdout, or to a file with --out.',
        options: {
          out: { type: 'string', short: 'o', value: 'FILE', description: 'write the CSV to this file' },
          status: { type: 'string', value: 'S', description: 'only leads of this status' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).exportCommand(a),
      },
      {
        name: 'deliveries',
        summary: 'the CRM outbox: pending, sent, failed',
        description: 'List deliveries to the CRMs: key, state, tries, next try, last error.',
        options: {
          state: { type: 'string', value: 'S', description: 'pending, sent or failed' },
          limit: { type: 'string', value: 'N', description: 'how many (1-500, default 50)' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).deliveriesCommand(a),
      },
      {
        name: 'retry',
        summary: 'try a delivery again now',
        description: 'Try a delivery again now (a failed one becomes pending).',
        positionals: [{ name: 'KEY', required: true, description: 'the delivery key <target>/<lead id>' }],
        daemon: true,
        run: async (a) => (await import('./cli.ts')).retryCommand(a),
      },
    ],
  },
  metrics: {
    async collect({ request }) {
      const s = await request('stats', {});
      const errors = s.errors as Record<string, number>;
      const deliveries = s.deliveries as Record<string, { pending: number; sent: number; failed: number }>;
      const families: MetricFamily[] = [
        {
          name: 'talon_leads_leads',
          type: 'gauge',
          help: 'Stored leads, by status.',
          samples: STATUSES.map((status) => ({ labels: { status }, value: s.leads[status] })),
        },
        {
          name: 'talon_leads_scans_total',
          type: 'counter',
          help: 'Scans and imports run.',
          samples: [{ value: s.scans }],
        },
        {
          name: 'talon_leads_found_total',
          type: 'counter',
          help: 'Leads the sources gave (before dedup).',
          samples: [{ value: s.found }],
        },
        {
          name: 'talon_leads_errors_total',
          type: 'counter',
          help: 'Errors while reading sources and enriching, by kind (robots, timeout, too-large, http, parse, …).',
          samples: Object.keys(errors)
            .sort()
            .map((kind) => ({ labels: { kind }, value: errors[kind]! })),
        },
        {
          name: 'talon_leads_deliveries',
          type: 'gauge',
          help: 'Deliveries in the CRM outbox, by target and state.',
          samples: Object.keys(deliveries)
            .sort()
            .flatMap((target) =>
              DELIVERY_STATES.map((state) => ({ labels: { target, state }, value: deliveries[target]![state] })),
            ),
        },
        {
          name: 'talon_leads_delivered_total',
          type: 'counter',
          help: 'Deliveries the CRMs took.',
          samples: [{ value: s.delivered }],
        },
        {
          name: 'talon_leads_delivery_failures_total',
          type: 'counter',
          help: 'Deliveries failed for good (a CRM refused them; retryable by hand).',
          samples: [{ value: s.deliveryFailures }],
        },
        {
          name: 'talon_leads_model_errors_total',
          type: 'counter',
          help: "The model's answers that could not be used (extraction and judgement).",
          samples: [{ value: s.modelErrors }],
        },
      ];
      return families;
    },
  },
  page: { label: 'Leads' },
  tools: [
    {
      name: 'leads.list',
      kind: 'leads',
      readOnly: true,
      description:
        'A page of scored leads: { status?: new|qualified|unqualified|excluded, minScore?, q?, limit?, after? } (pass the answer’s `next` as `after`).',
    },
    {
      name: 'leads.get',
      kind: 'lead',
      readOnly: true,
      description: 'One lead by id (`d:<domain>` or `e:<e-mail>`): every field with the URL it was read from.',
    },
    {
      name: 'leads.scan',
      kind: 'scan',
      description: 'Read the lead sources now ({ source? } for one): counts of leads found, new, qualified, delivered.',
    },
  ],
};

export default defineSurface(surface);
