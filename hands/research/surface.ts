/**
 * What the Research Hand adds to the device (hands/sdk/surface.ts), served by the kernel generically:
 *   /api/v1/research/topics                 GET the topics: questions, sources, schedule, last run   (reports:read)
 *   /api/v1/research/topics/{topic}/run     POST run a topic now; answers with the report summary   (reports:write)
 *   /api/v1/research/reports?topic=&limit=&before=   GET report summaries, newest first             (reports:read)
 *   /api/v1/research/reports/{id}           GET one whole report (Markdown, findings, citations)    (reports:read)
 *   /api/v1/research/documents?topic=&limit=&after=  GET stored documents without their text        (reports:read)
 * A run asked through the API is audited (`api.research.run`) before the Hand acts; the Hand audits every run itself
 * (`research.run`) and each claim its citation ledger refused (`research.citation.refused`).
 * `talon research topics|run|reports|report|docs` (./cli.ts), its /metrics series (`talon_research_*`), its page
 * (Research) and its tools (research.topics, research.run, research.reports, research.report).
 *
 * Loaded by the kernel and the CLI at start: keep it light.
 */
import { defineSurface, routeOf, type HandSurface, type MetricFamily } from '../sdk/index.ts';
import {
  DOC_ID_PATTERN,
  DOC_VIEW_SCHEMA,
  REPORT_ID_PATTERN,
  REPORT_SCHEMA,
  REPORT_SUMMARY_SCHEMA,
  TOPIC_ID_PATTERN,
  TOPIC_VIEW_SCHEMA,
  protocol,
  type ResearchProtocol,
} from './protocol.ts';

const route = routeOf<ResearchProtocol>();

/** a run fetches with per-host pauses and may ask a model: the API waits this long for its report */
export const RUN_TIMEOUT_MS = 10 * 60_000;

const TOPIC_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['topic'],
  properties: { topic: { type: 'string', pattern: TOPIC_ID_PATTERN, description: 'a topic id (`ai-chips`)' } },
} as const;
const REPORT_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: REPORT_ID_PATTERN, description: 'a report id (`<topic>-<runId>`)' } },
} as const;

/** the error kinds every scrape shows (others appear once counted) */
export const ERROR_KINDS = ['robots', 'timeout', 'too-large', 'http', 'network', 'parse', 'model-json', 'model'];
export const RUN_MODES = ['model', 'digest', 'nothing', 'failed'] as const;

const surface: HandSurface<ResearchProtocol> = {
  id: 'research',
  title: 'Research',
  provides: 'topic monitoring and research reports',
  protocol,
  routes: [
    route({
      method: 'GET',
      path: '/api/v1/research/topics',
      operationId: 'listResearchTopics',
      summary: 'The research topics: questions, sources, schedule, last run',
      tag: 'reports',
      access: 'read',
      responses: {
        200: {
          description: 'every configured topic',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['topics'],
            properties: { topics: { type: 'array', items: TOPIC_VIEW_SCHEMA } },
          },
        },
      },
      handler: ({ request }) => request('topics', {}),
    }),
    route({
      method: 'POST',
      path: '/api/v1/research/topics/{topic}/run',
      operationId: 'runResearchTopic',
      summary: 'Run a topic now (a run already going is joined); answers when its report is written',
      tag: 'reports',
      access: 'write',
      params: TOPIC_PARAMS,
      responses: {
        200: {
          description: 'the report summary (`mode` nothing: no relevant new document was found)',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['report'],
            properties: { report: REPORT_SUMMARY_SCHEMA },
          },
        },
      },
      handler: ({ params, audited, request }) =>
        audited({ action: 'api.research.run', subject: params.topic! }, () =>
          request('run', { topic: params.topic! }, { timeoutMs: RUN_TIMEOUT_MS }),
        ),
    }),
    route({
      method: 'GET',
      path: '/api/v1/research/reports',
      operationId: 'listResearchReports',
      summary: 'Report summaries, newest first (no Markdown); `before` (a report id) pages back',
      tag: 'reports',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: {
          topic: { type: 'string', pattern: TOPIC_ID_PATTERN },
          limit: { type: 'integer', minimum: 1, maximum: 200, default: 20 },
          before: { type: 'string', pattern: REPORT_ID_PATTERN },
        },
      },
      responses: {
        200: {
          description: 'summaries, newest first; `next` for older ones',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['reports'],
            properties: { reports: { type: 'array', items: REPORT_SUMMARY_SCHEMA }, next: { type: 'string' } },
          },
        },
      },
      handler: ({ query, request }) =>
        request('reports', {
          limit: query.limit ?? 20,
          ...(query.topic !== undefined && { topic: query.topic }),
          ...(query.before !== undefined && { before: query.before }),
        }),
    }),
    route({
      method: 'GET',
      path: '/api/v1/research/reports/{id}',
      operationId: 'getResearchReport',
      summary: 'One whole report: summary, findings with their citations, sources, refused claims, Markdown',
      tag: 'reports',
      access: 'read',
      params: REPORT_PARAMS,
      responses: {
        200: {
          description: 'the report',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['report'],
            properties: { report: REPORT_SCHEMA },
          },
        },
      },
      handler: ({ params, request }) => request('report', { id: params.id! }),
    }),
    route({
      method: 'GET',
      path: '/api/v1/research/documents',
      operationId: 'listResearchDocuments',
      summary: 'Stored documents without their text (URL, every URL seen, title, time); `after` pages on',
      tag: 'reports',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: {
          topic: { type: 'string', pattern: TOPIC_ID_PATTERN },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
          after: { type: 'string', pattern: DOC_ID_PATTERN },
        },
      },
      responses: {
        200: {
          description: 'documents in id order; `next` for the next page',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['documents'],
            properties: { documents: { type: 'array', items: DOC_VIEW_SCHEMA }, next: { type: 'string' } },
          },
        },
      },
      handler: ({ query, request }) =>
        request('documents', {
          limit: query.limit ?? 50,
          ...(query.topic !== undefined && { topic: query.topic }),
          ...(query.after !== undefined && { after: query.after }),
        }),
    }),
  ],
  cli: {
    summary: 'research topics and reports of the running daemon: topics, run, reports, report, docs',
    description: "Work with the Research Hand's topics, reports and stored documents on the running daemon.",
    commands: [
      {
        name: 'topics',
        summary: 'the topics: sources, schedule, last run',
        description:
          'List the topics with their sources, schedule and last run (when, mode, new and relevant documents).',
        daemon: true,
        run: async (a) => (await import('./cli.ts')).topicsCommand(a),
      },
      {
        name: 'run',
        summary: 'run a topic now and print its report summary',
        description:
          'Run a topic now (a run already going is joined) and print the report summary when it is written; `talon research report ID` shows the whole report.',
        positionals: [{ name: 'TOPIC', required: true, description: 'the topic id' }],
        daemon: true,
        run: async (a) => (await import('./cli.ts')).runCommand(a),
      },
      {
        name: 'reports',
        summary: 'report summaries, newest first',
        description: 'List report summaries, newest first: when, topic, mode, findings, new documents, errors.',
        options: {
          topic: { type: 'string', value: 'TOPIC', description: "only this topic's reports" },
          limit: { type: 'string', value: 'N', description: 'how many (1-200, default 20)' },
          before: { type: 'string', value: 'ID', description: 'reports older than this report id' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).reportsCommand(a),
      },
      {
        name: 'report',
        summary: 'one report as Markdown (or JSON with --json)',
        description: 'Print one report as Markdown: summary, findings with [n] citations, the sources list.',
        positionals: [
          { name: 'ID', required: true, description: 'the report id (`talon research reports` lists them)' },
        ],
        daemon: true,
        run: async (a) => (await import('./cli.ts')).reportCommand(a),
      },
      {
        name: 'docs',
        summary: 'stored documents: title, URL, fetched',
        description: 'List stored documents (without their text): id, fetched, title, URL and how many URLs it had.',
        options: {
          topic: { type: 'string', value: 'TOPIC', description: "only this topic's documents" },
          limit: { type: 'string', value: 'N', description: 'how many (1-500, default 50)' },
          after: { type: 'string', value: 'ID', description: 'the page after this document id' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).docsCommand(a),
      },
    ],
  },
  metrics: {
    async collect({ request }) {
      const { stats } = await request('stats', {});
      const runs = (stats.runs ?? {}) as Record<string, number>;
      const errors = (stats.errors ?? {}) as Record<string, number>;
      const kinds = [...new Set([...ERROR_KINDS, ...Object.keys(errors)])];
      const one = (name: string, type: MetricFamily['type'], help: string, value: number): MetricFamily => ({
        name,
        type,
        help,
        samples: [{ value }],
      });
      return [
        {
          name: 'talon_research_runs_total',
          type: 'counter',
          help: 'Topic runs ended, by the report they wrote (model, digest, nothing) or failed.',
          samples: RUN_MODES.map((mode) => ({ labels: { mode }, value: runs[mode] ?? 0 })),
        },
        one('talon_research_topics', 'gauge', 'Topics configured.', stats.topics),
        one('talon_research_running', 'gauge', 'Topic runs in flight.', stats.running),
        one('talon_research_documents', 'gauge', 'Documents stored (once per content).', stats.documents),
        one('talon_research_new_documents_total', 'counter', 'Documents new to a topic.', stats.new),
        one('talon_research_requests_total', 'counter', 'HTTP requests made by the sources.', stats.requests),
        one(
          'talon_research_not_modified_total',
          'counter',
          'Conditional requests answered 304 Not Modified.',
          stats.notModified,
        ),
        {
          name: 'talon_research_errors_total',
          type: 'counter',
          help: 'Errors of sources and the model, by kind (robots, timeout, too-large, http, parse, model-json, …).',
          samples: kinds.map((kind) => ({ labels: { kind }, value: errors[kind] ?? 0 })),
        },
        one(
          'talon_research_citations_refused_total',
          'counter',
          'Claims the citation ledger removed (a citation that is not a fetched document, or none).',
          stats.refused,
        ),
        one(
          'talon_research_downgraded_total',
          'counter',
          'Claims marked confirmed on fewer than two documents, kept as reported.',
          stats.downgraded,
        ),
        one(
          'talon_research_findings_published_total',
          'counter',
          'Findings events published on research/<topic>/findings.',
          stats.published,
        ),
      ];
    },
  },
  page: { label: 'Research' },
  // for agents, MCP clients and other Hands, under their own tools grant (hands/sdk/surface.ts)
  tools: [
    {
      name: 'research.topics',
      kind: 'topics',
      readOnly: true,
      description: 'List the research topics: their questions, sources, schedule and last run.',
    },
    {
      name: 'research.run',
      kind: 'run',
      description:
        'Run a research topic now ({ topic }): its sources are read, new documents ranked and a report written; returns the report summary (its id for research.report).',
    },
    {
      name: 'research.reports',
      kind: 'reports',
      readOnly: true,
      description: 'Research report summaries, newest first: { topic?, limit?, before? } (pass `next` as `before`).',
    },
    {
      name: 'research.report',
      kind: 'report',
      readOnly: true,
      description:
        'One research report by id: summary, findings each with the fetched documents it cites, and its Markdown.',
    },
  ],
};

export default defineSurface(surface);
