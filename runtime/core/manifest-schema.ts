/**
 * The Hand manifest's JSON Schemas and default quotas, and the manifest's TypeScript types
 * derived from them (json-schema-to-ts FromSchema): one declaration, in runtime/core so the
 * types in ./hand.ts (which a Hand author imports) can be derived here without importing the
 * kernel. Pure data, so that the bundler (image/bundle.ts, via runtime/schema/registry.ts) can
 * precompile the schemas at build time.
 */
import type { FromSchema } from 'json-schema-to-ts';

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
      /** start the worker with --allow-net: raw sockets to ALL of the network, no host list */
      raw: { type: 'boolean' },
      /** the largest response body ctx.fetch returns (default 10 MB) */
      maxResponseBytes: { type: 'integer', minimum: 1, maximum: 1024 * 1024 * 1024 },
      /** the longest a ctx.fetch may take, body included (default 30 s) */
      timeoutMs: { type: 'integer', minimum: 100, maximum: 600_000 },
    },
  },
} as const;

/**
 * `shell`: a program list, or { commands, timeoutMs, maxOutputBytes }. One schema for both forms (`items`
 * applies only to an array, `properties` only to an object): smaller validators than if/then/else.
 */
export const shellSchema = {
  type: ['array', 'object'],
  items: stringList.items,
  maxItems: stringList.maxItems,
  additionalProperties: false,
  properties: {
    commands: stringList,
    /** the longest one command line may run (no fixed ceiling below a day) */
    timeoutMs: { type: 'integer', minimum: 100, maximum: 86_400_000 },
    /** stdout and stderr together, beyond which the command is stopped and its output cut */
    maxOutputBytes: { type: 'integer', minimum: 1, maximum: 256 * 1024 * 1024 },
  },
} as const;

/**
 * `tools`: a tool list, or { allow, approve, unattended } (one schema for both forms, as `shell`). `unattended`
 * (read from a Hand's config entry only): destructive tools whose calls by this Hand do not wait for a person — the
 * person who wrote the config approved them in advance (a job starting Hands at 03:00); `approve` still wins
 */
export const toolsSchema = {
  type: ['array', 'object'],
  items: stringList.items,
  maxItems: stringList.maxItems,
  additionalProperties: false,
  properties: { allow: stringList, approve: stringList, unattended: stringList },
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
    /** sensor ids or globs (`cpu.*`) */
    sensors: stringList,
    /** BCM pin numbers */
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
    /** extra filesystem paths the worker may read / write (Node permission model) */
    fs: {
      type: 'object',
      additionalProperties: false,
      properties: { read: stringList, write: stringList },
    },
    /**
     * programs the `shell.exec` tool may run for the Hand (each command of a pipeline is checked), as a list or
     * { commands, timeoutMs, maxOutputBytes } (the limits of one command line; default 60 s and 1 MiB)
     */
    shell: shellSchema,
    /**
     * the tools (runtime/tools) the Hand may call, names or globs (`web.*`, `mcp.weather.*`), as a list or
     * { allow, approve }: `approve` names tools whose every call waits for a person (destructive ones always do)
     */
    tools: toolsSchema,
    /** sealed secrets (runtime/secrets) the Hand may read through `secrets.get`, names or globs (`telegram_*`) */
    secrets: stringList,
    /** may relay a person's answer to an approval request (`approvals.decide`); the person is named in the audit */
    approvals: { type: 'boolean' },
  },
} as const;

const quotaProps = {
  /** V8 old-generation heap cap for the worker, MB */
  heapMb: { type: 'integer', minimum: 8, maximum: 4096 },
  /**
   * memory outside the V8 heap (Buffers, ArrayBuffers, typed arrays), MB, read by the kernel
   * every memoryPollMs; over it the Hand is stopped. Default: twice heapMb, at least 16.
   */
  externalMb: { type: 'integer', minimum: 8, maximum: 16384 },
  /** share of one core the Hand may use, 0..1 (reported; sustained overuse is flagged) */
  cpuShare: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  /** bus publishes per second; excess is dropped and counted */
  messagesPerSec: { type: 'integer', minimum: 1, maximum: 1_000_000 },
  /** LLM tokens per hour */
  llmTokensPerHour: { type: 'integer', minimum: 0 },
} as const;

export const quotasSchema = { type: 'object', additionalProperties: false, properties: quotaProps } as const;

// the defaults as plain data first: the Quotas type is derived from the schema they are written into
const DEFAULTS = { heapMb: 32, cpuShare: 0.5, messagesPerSec: 1000, llmTokensPerHour: 0 } as const;

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
        heapMb: { ...quotaProps.heapMb, default: DEFAULTS.heapMb },
        // no default: twice heapMb, at least 16 (hand-runner.ts externalLimitMb)
        externalMb: quotaProps.externalMb,
        cpuShare: { ...quotaProps.cpuShare, default: DEFAULTS.cpuShare },
        messagesPerSec: { ...quotaProps.messagesPerSec, default: DEFAULTS.messagesPerSec },
        llmTokensPerHour: { ...quotaProps.llmTokensPerHour, default: DEFAULTS.llmTokensPerHour },
      },
    },
    /** optional cron-like schedule or interval in ms for periodic work */
    schedule: {
      anyOf: [
        { type: 'string', minLength: 1, maxLength: 200 },
        { type: 'integer', minimum: 1 },
      ],
    },
    /** JSON Schema for the Hand's settings */
    settingsSchema: { type: 'object' },
  },
} as const;

/** a Hand's quotas where neither its manifest nor its config says otherwise */
export const DEFAULT_QUOTAS: Quotas = { ...DEFAULTS };

type ParseOptions = { parseIfThenElseKeywords: true };

/** A manifest as a Hand declares it: what the schema accepts, defaults not yet filled. */
export type HandManifest = FromSchema<typeof manifestSchema, ParseOptions & { keepDefaultedPropertiesOptional: true }>;
/** A manifest after validation: capabilities and quotas filled. */
export type ValidatedManifest = FromSchema<typeof manifestSchema, ParseOptions>;
/** Quotas after validation (the manifest's, with the defaults). */
export type Quotas = ValidatedManifest['quotas'];
/** Capabilities as a manifest or a config declares them: any field left out, network in either form. */
export type DeclaredCapabilities = FromSchema<typeof capabilitiesSchema, ParseOptions>;
/**
 * A network grant as a manifest or a config writes it: a host list, or an object. Host entries:
 * `name`, `name:port`, `*.example.com` (its subdomains), `*` (any name), IPv4/IPv6 addresses and
 * CIDR ranges, each optionally with `:port` (`[v6]:port`). See runtime/capabilities/NETWORK.md.
 */
export type NetworkCapability = FromSchema<typeof networkSchema, ParseOptions>;
