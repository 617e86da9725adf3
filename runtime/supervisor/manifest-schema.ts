/**
 * The Hand manifest's JSON Schemas and default quotas: pure data, so that the bundler
 * (image/bundle.ts, via runtime/schema/registry.ts) can precompile them at build time.
 */
import type { Quotas } from '../core/hand.ts';

export const DEFAULT_QUOTAS: Quotas = { heapMb: 32, cpuShare: 0.5, messagesPerSec: 1000, llmTokensPerHour: 0 };

const stringList = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 1024 }, maxItems: 256 } as const;

/**
 * `network`: a host list, or { hosts, raw, maxResponseBytes, timeoutMs }. The entries' syntax
 * is checked by runtime/core/network.ts (one place, errors naming the entry's path).
 */
export const networkSchema = {
  type: ['array', 'object'],
  if: { type: 'array' },
  then: stringList,
  else: {
    additionalProperties: false,
    properties: {
      hosts: stringList,
      raw: { type: 'boolean' },
      maxResponseBytes: { type: 'integer', minimum: 1, maximum: 1024 * 1024 * 1024 },
      timeoutMs: { type: 'integer', minimum: 100, maximum: 600_000 },
    },
  },
} as const;

export const capabilitiesSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bus: {
      type: 'object',
      additionalProperties: false,
      properties: { publish: stringList, subscribe: stringList },
    },
    sensors: stringList,
    gpio: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 63 }, maxItems: 64 },
    llm: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['tokensPerHour'],
          properties: { tokensPerHour: { type: 'integer', minimum: 0 } },
        },
      ],
    },
    network: networkSchema,
    fs: {
      type: 'object',
      additionalProperties: false,
      properties: { read: stringList, write: stringList },
    },
    shell: stringList,
  },
} as const;

const quotaProps = {
  heapMb: { type: 'integer', minimum: 8, maximum: 4096 },
  externalMb: { type: 'integer', minimum: 8, maximum: 16384 },
  cpuShare: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  messagesPerSec: { type: 'integer', minimum: 1, maximum: 1_000_000 },
  llmTokensPerHour: { type: 'integer', minimum: 0 },
} as const;

export const quotasSchema = { type: 'object', additionalProperties: false, properties: quotaProps } as const;

export const manifestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'version', 'description'],
  properties: {
    id: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.-]+)?$' },
    description: { type: 'string', maxLength: 500 },
    capabilities: { ...capabilitiesSchema, default: {} },
    /** granted only when a Hand's config names them (e.g. the GPIO pin of a fan) */
    optionalCapabilities: capabilitiesSchema,
    quotas: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        heapMb: { ...quotaProps.heapMb, default: DEFAULT_QUOTAS.heapMb },
        // no default: twice heapMb, at least 16 (hand-runner.ts externalLimitMb)
        externalMb: quotaProps.externalMb,
        cpuShare: { ...quotaProps.cpuShare, default: DEFAULT_QUOTAS.cpuShare },
        messagesPerSec: { ...quotaProps.messagesPerSec, default: DEFAULT_QUOTAS.messagesPerSec },
        llmTokensPerHour: { ...quotaProps.llmTokensPerHour, default: DEFAULT_QUOTAS.llmTokensPerHour },
      },
    },
    schedule: { anyOf: [{ type: 'string', minLength: 1, maxLength: 200 }, { type: 'integer', minimum: 1 }] },
    settingsSchema: { type: 'object' },
  },
} as const;
