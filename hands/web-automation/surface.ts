/**
 * What the Web Automation Hand adds to the device (hands/sdk/surface.ts), served by the kernel generically:
 *   /api/v1/web/watches                  GET the watches with their state                          (automation:read)
 *   /api/v1/web/watches/{id}             GET one watch: state, history tail, recent checks, last change
 *                                                                                                  (automation:read)
 *                                        PUT add or replace an API watch (200; `created` says which) (automation:write)
 *                                        DELETE remove an API watch                                (automation:write)
 *   /api/v1/web/watches/{id}/check       POST check it now; answers with its events and state     (automation:write)
 *   /api/v1/web/flows                    GET the configured flows                                  (automation:read)
 *   /api/v1/web/flows/run                POST run a flow: { flow: NAME } or { definition }, inputs (automation:write)
 *   /api/v1/web/runs?kind=&limit=&before= GET run records, newest first                            (automation:read)
 *   /api/v1/web/runs/{id}                GET one run: steps, failure, screenshots, output          (automation:read)
 * A watch put or removed through the API is kept in the Hand's store next to the config's watches and checked by the
 * same parseWatch (400 naming the field, nothing stored); a config watch's id is refused (409: change it in the
 * config). PUT answers 200 with `created` (as the Scheduling Hand's PUT does: a Hand's route has one success status).
 * A check, a run, a put or a remove asked through the API is audited (`api.web.check`, `api.web.run`,
 * `api.web.watch.put`, `api.web.watch.remove`) before the Hand acts; the Hand audits changes, broken watches and every
 * flow run itself (`web.watch.changed`, `web.watch.broken`, `web.flow.run`).
 * `talon web run|flows|runs|watch list|check|show|add|remove` (./cli.ts), its /metrics series (`talon_web_*`), its
 * page (Web) and its tools (automation.watches, automation.check, automation.flows, automation.runs).
 *
 * Loaded by the kernel and the CLI at start: keep it light.
 */
import { defineSurface, routeOf, type HandSurface, type MetricFamily } from '../sdk/index.ts';
import {
  FLOW_NAME_PATTERN,
  FLOW_VIEW_SCHEMA,
  RUN_ID_PATTERN,
  RUN_SCHEMA,
  RUN_SUMMARY_SCHEMA,
  WATCH_BODY_SCHEMA,
  WATCH_ID_PATTERN,
  protocol,
  type WebProtocol,
} from './protocol.ts';

const route = routeOf<WebProtocol>();

/** a flow may run up to 30 minutes (runtime/core/flow.ts FLOW_LIMITS): the API waits this long for its record */
export const RUN_TIMEOUT_MS = 31 * 60_000;
/** a check loads one page (at most 60 s) */
export const CHECK_TIMEOUT_MS = 2 * 60_000;
/** the outcomes of flow runs /metrics shows */
export const RUN_OUTCOMES = ['ok', 'failed', 'error'] as const;

const WATCH_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: WATCH_ID_PATTERN, description: 'a watch id (`shop-price`)' } },
} as const;
const RUN_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: RUN_ID_PATTERN, description: 'a run id (13 digits and 4 characters)' } },
} as const;
const RUN_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['run'],
  properties: { run: RUN_SCHEMA },
} as const;

const surface: HandSurface<WebProtocol> = {
  id: 'web-automation',
  title: 'Web',
  provides: 'page change watches and browser flows',
  protocol,
  routes: [
    route({
      method: 'GET',
      path: '/api/v1/web/watches',
      operationId: 'listWebWatches',
      summary: 'The page watches with their state: last value, last check and change, broken',
      tag: 'automation',
      access: 'read',
      responses: {
        200: {
          description: 'every configured watch',
          schema: protocol.watches.answer,
        },
      },
      handler: ({ request }) => request('watches', {}),
    }),
    route({
      method: 'GET',
      path: '/api/v1/web/watches/{id}',
      operationId: 'getWebWatch',
      summary: 'One watch: its state, the last checks (history) and its recent check runs',
      tag: 'automation',
      access: 'read',
      params: WATCH_PARAMS,
      responses: { 200: { description: 'the watch', schema: protocol.watch.answer } },
      handler: ({ params, request }) => request('watch', { id: params.id! }),
    }),
    route({
      method: 'PUT',
      path: '/api/v1/web/watches/{id}',
      operationId: 'putWebWatch',
      summary:
        "Add or replace a watch kept in the Hand's store (checked like a config watch: an error names the field); a config watch's id is refused (409)",
      tag: 'automation',
      access: 'write',
      params: WATCH_PARAMS,
      body: WATCH_BODY_SCHEMA,
      responses: {
        200: {
          description: 'the watch as the Hand holds it; `created` when it is new',
          schema: protocol.putWatch.answer,
        },
      },
      handler: ({ params, body, audited, request }) =>
        audited({ action: 'api.web.watch.put', subject: params.id! }, () =>
          request('putWatch', { id: params.id!, watch: (body ?? {}) as Record<string, unknown> }),
        ),
    }),
    route({
      method: 'DELETE',
      path: '/api/v1/web/watches/{id}',
      operationId: 'deleteWebWatch',
      summary: 'Remove a watch added through the API, with its state and schedule (a config watch: 409)',
      tag: 'automation',
      access: 'write',
      params: WATCH_PARAMS,
      responses: { 200: { description: 'removed', schema: protocol.removeWatch.answer } },
      handler: ({ params, audited, request }) =>
        audited({ action: 'api.web.watch.remove', subject: params.id! }, () =>
          request('removeWatch', { id: params.id! }),
        ),
    }),
    route({
      method: 'POST',
      path: '/api/v1/web/watches/{id}/check',
      operationId: 'checkWebWatch',
      summary: 'Check a watch now (a check going is joined); answers with its events and state',
      tag: 'automation',
      access: 'write',
      params: WATCH_PARAMS,
      responses: { 200: { description: "the check's events and the watch", schema: protocol.check.answer } },
      handler: ({ params, audited, request }) =>
        audited({ action: 'api.web.check', subject: params.id! }, () =>
          request('check', { id: params.id! }, { timeoutMs: CHECK_TIMEOUT_MS }),
        ),
    }),
    route({
      method: 'GET',
      path: '/api/v1/web/flows',
      operationId: 'listWebFlows',
      summary: 'The configured flows: steps or goal, inputs, schedule, last run',
      tag: 'automation',
      access: 'read',
      responses: {
        200: {
          description: 'every configured flow',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['flows'],
            properties: { flows: { type: 'array', items: FLOW_VIEW_SCHEMA } },
          },
        },
      },
      handler: ({ request }) => request('flows', {}),
    }),
    route({
      method: 'POST',
      path: '/api/v1/web/flows/run',
      operationId: 'runWebFlow',
      summary:
        'Run a flow now: a configured one by name, or a whole definition (checked first: an error names the step); answers with the run record',
      tag: 'automation',
      access: 'write',
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          flow: { type: 'string', pattern: FLOW_NAME_PATTERN, description: "a configured flow's name" },
          definition: {
            type: 'object',
            description: 'a whole flow { name, steps, inputs?, output?, limits? } or { name, goal }',
          },
          inputs: { type: 'object', description: "the flow's inputs { NAME: value }" },
        },
      },
      responses: { 200: { description: 'the run record (ok false: a step failed; see failure)', schema: RUN_ANSWER } },
      handler: ({ body, audited, request }) => {
        const b = (body ?? {}) as {
          flow?: string;
          definition?: Record<string, unknown>;
          inputs?: Record<string, unknown>;
        };
        const subject =
          b.flow ?? (typeof b.definition?.name === 'string' ? `definition:${b.definition.name}` : 'definition');
        return audited({ action: 'api.web.run', subject, detail: { inputs: Object.keys(b.inputs ?? {}) } }, () =>
          request(
            'run',
            {
              ...(b.flow !== undefined && { flow: b.flow }),
              ...(b.definition !== undefined && { definition: b.definition }),
              ...(b.inputs !== undefined && { inputs: b.inputs }),
            },
            { timeoutMs: RUN_TIMEOUT_MS },
          ),
        );
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/web/runs',
      operationId: 'listWebRuns',
      summary: 'Run records (checks and flow runs) without steps and output, newest first; `before` pages back',
      tag: 'automation',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        properties: {
          kind: { type: 'string', enum: ['check', 'flow'] },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
          before: { type: 'string', pattern: RUN_ID_PATTERN },
        },
      },
      responses: {
        200: {
          description: 'runs, newest first; `next` for older ones',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['runs'],
            properties: { runs: { type: 'array', items: RUN_SUMMARY_SCHEMA }, next: { type: 'string' } },
          },
        },
      },
      handler: ({ query, request }) =>
        request('runs', {
          limit: query.limit ?? 50,
          ...(query.kind !== undefined && { kind: query.kind }),
          ...(query.before !== undefined && { before: query.before }),
        }),
    }),
    route({
      method: 'GET',
      path: '/api/v1/web/runs/{id}',
      operationId: 'getWebRun',
      summary: 'One whole run record: steps, failure (step, URL, screenshot), screenshots, downloads, output',
      tag: 'automation',
      access: 'read',
      params: RUN_PARAMS,
      responses: { 200: { description: 'the run', schema: RUN_ANSWER } },
      handler: ({ params, request }) => request('runDetail', { id: params.id! }),
    }),
  ],
  cli: {
    summary: 'page watches and browser flows of the running daemon: run, flows, runs, watch',
    alias: 'web',
    description: "Run browser flows and work with the Web Automation Hand's page watches on the running daemon.",
    commands: [
      {
        name: 'run',
        summary: 'run a flow (a YAML/JSON file or a configured name) and print its steps',
        description:
          'Run a browser flow now: FLOW is a YAML or JSON file holding a whole flow ({ name, steps } or { name, goal }), or the name of a flow in the settings. Prints each step, the failure (step, URL, screenshot) and the output.',
        positionals: [{ name: 'FLOW', required: true, description: 'FLOW.yaml, FLOW.json or a configured flow name' }],
        options: {
          input: {
            type: 'string',
            value: 'K=V[,K=V]',
            description: "the flow's inputs: name=value pairs, commas between them (typed as the flow declares)",
          },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).runCommand(a),
      },
      {
        name: 'flows',
        summary: 'the configured flows: steps or goal, inputs, schedule, last run',
        description: 'List the flows in the settings with their inputs, schedule and last run.',
        daemon: true,
        run: async (a) => (await import('./cli.ts')).flowsCommand(a),
      },
      {
        name: 'runs',
        summary: 'run records, newest first (or one with its steps)',
        description:
          'List checks and flow runs, newest first: when, kind, name, result, time, error. With ID: that run with its steps, failure, screenshots and output.',
        positionals: [{ name: 'ID', required: false, description: 'a run id: show that run' }],
        options: {
          kind: { type: 'string', value: 'KIND', description: 'check or flow' },
          limit: { type: 'string', value: 'N', description: 'how many (1-500, default 20)' },
          before: { type: 'string', value: 'ID', description: 'runs older than this run id' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).runsCommand(a),
      },
      {
        name: 'watch',
        summary: 'page watches: list, check ID, show ID, add FILE (or --id … --url …), remove ID',
        description:
          'list: the watches with their source (config or api) and state; check ID: check one now and print what happened; show ID: its state, last change and last checks; add FILE: add or replace watches from a YAML or JSON file (one watch or a list), or one from the options (--id, --url and one of --text, --price, --json-path, --attribute, --visual); remove ID: remove a watch added that way.',
        positionals: [
          { name: 'ACTION', required: true, description: 'list, check, show, add or remove' },
          { name: 'ID', required: false, description: 'the watch id (check, show, remove), or FILE (add)' },
        ],
        options: {
          id: { type: 'string', value: 'ID', description: 'add: the watch id (lowercase letters, digits, - and _)' },
          url: { type: 'string', value: 'URL', description: 'add: the page (http or https)' },
          text: { type: 'string', value: 'SEL', description: "add: watch a selector's visible text (- for the page)" },
          price: { type: 'string', value: 'SEL', description: "add: watch the price in a selector's text" },
          'json-path': { type: 'string', value: 'PATH', description: 'add: watch a JSON answer at $.a.b[0]' },
          attribute: { type: 'string', value: 'SEL@NAME', description: 'add: watch an attribute (a.dl@href)' },
          visual: {
            type: 'string',
            value: 'SEL',
            description: "add: watch how a selector's element looks (- for the viewport)",
          },
          schedule: { type: 'string', value: 'CRON', description: 'add: when to check ("*/30 * * * *")' },
          ignore: {
            type: 'string',
            value: 'RE',
            multiple: true,
            description: 'add: a regular expression of text to ignore (again for more)',
          },
          'min-change': {
            type: 'string',
            value: 'N',
            description:
              'add: the least change that counts: characters (text, json, attribute), an amount (price), a percent of the region (visual); N% for a percent',
          },
          confirm: { type: 'boolean', description: 'add: a change must be seen on two checks in a row (the default)' },
          'no-confirm': { type: 'boolean', description: 'add: report a change on the first check that sees it' },
          'unchanged-days': { type: 'string', value: 'N', description: 'add: alert when unchanged for N days' },
        },
        daemon: true,
        run: async (a) => (await import('./cli.ts')).watchCommand(a),
      },
    ],
  },
  metrics: {
    async collect({ request }) {
      const { stats } = await request('stats', {});
      const runs = (stats.runs ?? {}) as Record<string, number>;
      const one = (name: string, type: MetricFamily['type'], help: string, value: number): MetricFamily => ({
        name,
        type,
        help,
        samples: [{ value }],
      });
      return [
        one('talon_web_watches', 'gauge', 'Page watches configured.', stats.watches),
        one('talon_web_flows', 'gauge', 'Flows configured.', stats.flows),
        one('talon_web_checks_total', 'counter', 'Watch checks done (good or failed).', stats.checks),
        one(
          'talon_web_check_failures_total',
          'counter',
          'Checks whose page failed or whose selector matched nothing.',
          stats.checkFailures,
        ),
        one('talon_web_changes_total', 'counter', 'Confirmed changes (changed events).', stats.changes),
        one('talon_web_broken_watches', 'gauge', 'Watches broken now.', stats.broken),
        {
          name: 'talon_web_runs_total',
          type: 'counter',
          help: 'Flow runs ended, by outcome: ok, failed (a step or the agent failed), error (the tool could not run).',
          samples: [...new Set([...RUN_OUTCOMES, ...Object.keys(runs)])].map((outcome) => ({
            labels: { outcome },
            value: runs[outcome] ?? 0,
          })),
        },
      ];
    },
  },
  page: { label: 'Web' },
  // for agents, MCP clients and other Hands, under their own tools grant (hands/sdk/surface.ts). Named automation.*,
  // not web.* (the kernel's web.read and web.search: a `web.*` grant must not reach these). No tool runs a flow: a
  // definition would run under this Hand's network grant, wider than the caller's; `talon web run` and the API do
  tools: [
    {
      name: 'automation.watches',
      kind: 'watches',
      readOnly: true,
      description: 'List the page watches with their state: last value, last check and change, broken.',
    },
    {
      name: 'automation.check',
      kind: 'check',
      description: 'Check a page watch now ({ id }): answers with its events (changed with the diff, broken, …).',
    },
    {
      name: 'automation.flows',
      kind: 'flows',
      readOnly: true,
      description: 'List the configured browser flows: their inputs, schedule and last run.',
    },
    {
      name: 'automation.runs',
      kind: 'runs',
      readOnly: true,
      description: 'Run records of page checks and browser flows, newest first: { kind?, limit?, before? }.',
    },
  ],
};

export default defineSurface(surface);
