/** Config: the generation in force, its schema, validate, diff, apply, the generations, rollback. */
import { defineRoutes, route, type Schema } from '../route.ts';
import { anyObject, bool, int, num, obj, open, params, str } from './schemas.ts';

const GEN_NUMBER = int(1, Number.MAX_SAFE_INTEGER);
const INFO_FIELDS = { generation: num, hash: str(64), appliedAt: num, actor: str(), source: str(4096) };
const INFO: Schema = open(INFO_FIELDS);
const WITH_CONFIG: Schema = open({ ...INFO_FIELDS, config: anyObject });
const PROBLEM: Schema = open({ path: str(1000), message: { type: 'string' } });
const APPLY_RESULT: Schema = obj({ generation: num, changed: bool, restarted: { type: 'array', items: str() } });
/** a whole config: checked by the config's own schema in the runtime (problems come back with paths) */
const CONFIG_BODY = { type: 'object', description: 'a whole Talon config (see GET /api/v1/config/schema)' } as const;

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/config',
    operationId: 'getConfig',
    summary: 'The config generation in force',
    tag: 'config',
    access: 'read',
    responses: { 200: { description: 'generation, hash, when, who, source and the config', schema: WITH_CONFIG } },
    handler: ({ api, caller }) => api.config.get(caller),
  },
  {
    method: 'GET',
    path: '/api/v1/config/schema',
    operationId: 'configSchema',
    summary: "The config's JSON Schema (for editors and the page's validation as you type)",
    tag: 'config',
    access: 'read',
    responses: { 200: { description: 'a JSON Schema', schema: anyObject } },
    handler: ({ api, caller }) => api.config.schema(caller),
  },
  route({
    method: 'POST',
    path: '/api/v1/config/validate',
    operationId: 'validateConfig',
    summary: 'Check a config without applying it: every problem with its path',
    tag: 'config',
    access: 'read',
    body: obj({ config: CONFIG_BODY }),
    responses: {
      200: { description: 'ok, or the problems', schema: obj({ ok: bool, errors: { type: 'array', items: PROBLEM } }) },
    },
    handler: ({ api, caller, body }) => api.config.validate(caller, body.config),
  }),
  route({
    method: 'POST',
    path: '/api/v1/config/diff',
    operationId: 'diffConfig',
    summary:
      'A unified diff of the config in force against a proposed one (canonical JSON lines), and the top-level sections that change',
    tag: 'config',
    access: 'read',
    body: obj({ config: CONFIG_BODY }),
    responses: {
      200: {
        description: 'the diff',
        schema: obj({ changed: bool, diff: { type: 'string' }, sections: { type: 'array', items: str() } }),
      },
    },
    handler: ({ api, caller, body }) => api.config.diff(caller, body.config),
  }),
  route({
    method: 'PUT',
    path: '/api/v1/config',
    operationId: 'applyConfig',
    summary:
      'Apply a config as a new generation (409 CONFLICT when baseGeneration is not the one in force); Hands-only changes restart just those Hands, others restart the kernel in process',
    tag: 'config',
    access: 'write',
    body: obj({ config: CONFIG_BODY, baseGeneration: GEN_NUMBER }, ['baseGeneration']),
    responses: { 200: { description: 'the generation in force and what was restarted', schema: APPLY_RESULT } },
    handler: ({ api, caller, body: b }) => {
      return api.config.apply(
        caller,
        b.config,
        b.baseGeneration !== undefined ? { baseGeneration: b.baseGeneration } : {},
      );
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/config/generations',
    operationId: 'listConfigGenerations',
    summary: 'Config generations, newest first',
    tag: 'config',
    access: 'read',
    query: obj({ limit: int(1, 1000, { default: 50 }) }, ['limit']),
    responses: {
      200: {
        description: 'the generations (without their configs)',
        schema: obj({ generations: { type: 'array', items: INFO } }),
      },
    },
    handler: async ({ api, caller, query }) => ({
      generations: await api.config.generations(caller, query.limit),
    }),
  }),
  route({
    method: 'GET',
    path: '/api/v1/config/generations/{n}',
    operationId: 'getConfigGeneration',
    summary: 'One config generation with its config',
    tag: 'config',
    access: 'read',
    params: params({ n: { type: 'string', pattern: '^[1-9][0-9]{0,14}$' } }),
    responses: { 200: { description: 'the generation', schema: WITH_CONFIG } },
    handler: ({ api, caller, params: p }) => api.config.generation(caller, Number(p.n)),
  }),
  route({
    method: 'POST',
    path: '/api/v1/config/rollback',
    operationId: 'rollbackConfig',
    summary: 'Roll back to an earlier generation: re-validated and applied as a new generation',
    tag: 'config',
    access: 'write',
    body: obj({ generation: GEN_NUMBER }),
    responses: { 200: { description: 'the new generation and what was restarted', schema: APPLY_RESULT } },
    handler: ({ api, caller, body }) => api.config.rollback(caller, body.generation),
  }),
]);
