/**
 * The `llm` section of the config: providers (by kind), failover chains, per-Hand policies,
 * retry and stream timeouts. Keys never sit in the config file: a provider names the
 * sealed secret (`apiKeySecret`, set with `talon secrets set NAME`) or the environment variable
 * (`apiKeyEnv`) that holds its key.
 *
 * The TypeScript types are derived from the schema (json-schema-to-ts FromSchema): one
 * declaration. Fields with a default are required in LlmConfig (validation fills them).
 */
import type { FromSchema } from 'json-schema-to-ts';
import { SECRET_NAME_PATTERN } from '../core/names.ts';

const NAME = '^[a-z0-9][a-z0-9-]{0,62}$';

export const llmConfigSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    providers: {
      type: 'array',
      default: [],
      maxItems: 16,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'kind'],
        properties: {
          name: { type: 'string', pattern: NAME, 'x-hint': 'must be 1-63 lowercase letters, digits or "-"' },
          kind: { type: 'string', enum: ['llama.cpp', 'ollama', 'openai', 'anthropic', 'gemini'] },
          /** remote kinds */
          baseUrl: { type: 'string', pattern: '^https?://', 'x-hint': 'must be an http:// or https:// URL' },
          model: { type: 'string', minLength: 1, maxLength: 200 },
          apiKeyEnv: {
            type: 'string',
            pattern: '^[A-Z_][A-Z0-9_]{0,63}$',
            'x-hint': 'must name an environment variable (KEY_NAME)',
          },
          /** the name of a sealed secret holding the key (`talon secrets set NAME`) */
          apiKeySecret: {
            type: 'string',
            pattern: SECRET_NAME_PATTERN,
            'x-hint': 'must name a sealed secret (talon secrets set NAME)',
          },
          /** llama.cpp: a GGUF file, relative to the data folder */
          modelPath: { type: 'string', minLength: 1 },
          threads: { type: 'integer', minimum: 1, maximum: 256 },
          contextSize: { type: 'integer', minimum: 64, maximum: 1048576 },
          gpu: { enum: ['auto', false] },
          idleUnloadMs: { type: 'integer', minimum: 0 },
          maxTokens: { type: 'integer', minimum: 1, maximum: 1048576 },
        },
      },
    },
    chains: {
      type: 'object',
      default: {},
      additionalProperties: { type: 'array', items: { type: 'string', pattern: NAME } },
    },
    policies: {
      type: 'object',
      default: {},
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['cloud'],
        properties: { cloud: { type: 'boolean' } },
      },
    },
    retry: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxAttempts: { type: 'integer', minimum: 1, maximum: 20, default: 4 },
        baseMs: { type: 'integer', minimum: 0, default: 250 },
        maxMs: { type: 'integer', minimum: 0, default: 10000 },
        jitter: { type: 'number', minimum: 0, maximum: 1, default: 0.2 },
      },
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        firstTokenMs: { type: 'integer', minimum: 100, default: 60000 },
        stallMs: { type: 'integer', minimum: 100, default: 30000 },
      },
    },
    auditPrompts: { type: 'boolean', default: false },
    /** USD per million tokens, per provider name: the usage page's and agent runs' cost estimates */
    prices: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['inputPerMTok', 'outputPerMTok'],
        properties: { inputPerMTok: { type: 'number', minimum: 0 }, outputPerMTok: { type: 'number', minimum: 0 } },
      },
    },
  },
} as const;

export type LlmConfig = FromSchema<typeof llmConfigSchema>;
export type LlmProviderConfig = LlmConfig['providers'][number];
