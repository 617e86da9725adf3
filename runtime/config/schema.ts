/**
 * The one JSON Schema (draft-07, checked with ajv) for a Talon config file. It is the
 * single source of truth for what a config may contain and for its defaults: validating
 * `{}` yields a config that runs on a laptop (data in ./data, admin on 127.0.0.1:8080,
 * the embedded broker on 127.0.0.1:1883, the system driver and a simulated greenhouse).
 *
 * Every object has `additionalProperties: false` so a misspelt key is an error, not a
 * silently ignored setting; the one exception is a Hand's `settings`, which the Hand's own
 * manifest schema validates when the supervisor loads it.
 *
 * Objects carry `default: {}` so ajv's `useDefaults` fills nested defaults from nothing.
 * `x-hint` is an annotation (registered with ajv as a no-op keyword) used as the error
 * message when a `pattern` does not match, so errors read as advice, not as a regex.
 *
 * Rules a schema cannot say (unique Hand names, `bus.url` vs the embedded broker, port
 * clashes, topic-filter syntax, ordering between numbers) live in ./validate.ts.
 * The TypeScript types (./types.ts) are derived from this schema (json-schema-to-ts
 * FromSchema), so every part is written `as const` and declared once.
 *
 * `hands` has no default here: the config layer names no Hand. When a config lists no Hands,
 * validation gives it the built-in Hands' default instances, which the composition root
 * registers at start (./builtins.ts); the schema served to editors and the web admin shows
 * them as the default (ConfigManager.schema()).
 */

import { driversSchema } from '../../drivers/schema.ts';
import { DEMO_DRIVERS } from '../../drivers/demo.ts';
import { llmConfigSchema } from '../llm/config.ts';
import { networkSchema, shellSchema, toolsSchema } from '../core/manifest-schema.ts';

/** A Hand instance name: safe in MQTT topics, file names and URLs (the rule lives in runtime/core/names.ts). */
import { HAND_NAME_PATTERN, HAND_NAME_HINT } from '../core/names.ts';
export { HAND_NAME_PATTERN, HAND_NAME_HINT };

const port = (dflt: number) =>
  ({
    type: 'integer',
    minimum: 0,
    maximum: 65535,
    'x-hint': 'must be a port number 0-65535 (0 = any free port)',
    default: dflt,
  }) as const;

const host = (dflt: string) =>
  ({
    type: 'string',
    minLength: 1,
    maxLength: 255,
    pattern: '^[^\\s/]+$',
    'x-hint': 'must be a host name or IP address without spaces or "/"',
    default: dflt,
  }) as const;

const listen = (h: string, p: number) =>
  ({
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: { host: host(h), port: port(p) },
  }) as const;

const strings = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 1024 } } as const;
const positiveMs = (dflt: number, max = 24 * 3600 * 1000) =>
  ({ type: 'integer', minimum: 1, maximum: max, default: dflt }) as const;

const capabilities = {
  type: 'object',
  additionalProperties: false,
  description: "narrows the manifest's capabilities; may not widen them",
  properties: {
    bus: {
      type: 'object',
      additionalProperties: false,
      required: ['publish', 'subscribe'],
      properties: { publish: strings, subscribe: strings },
    },
    sensors: strings,
    gpio: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 53 }, uniqueItems: true },
    llm: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['tokensPerHour'],
      properties: { tokensPerHour: { type: 'integer', minimum: 0 } },
    },
    network: {
      description:
        'a host list (names, name:port, *.example.com, addresses, CIDR ranges) or { hosts, raw, maxResponseBytes, timeoutMs }; raw: true opens ALL of the network to the Hand',
      ...networkSchema,
    },
    fs: {
      type: 'object',
      additionalProperties: false,
      required: ['read', 'write'],
      properties: { read: strings, write: strings },
    },
    shell: {
      description:
        'programs shell.exec may run (every command of a pipeline is checked), or { commands, timeoutMs, maxOutputBytes }',
      ...shellSchema,
    },
    tools: {
      description:
        'tools the Hand may call (names or globs such as web.*), or { allow, approve }: approve lists tools whose every call waits for a person',
      ...toolsSchema,
    },
    secrets: {
      description: 'sealed secrets the Hand may read (names or globs such as telegram_*); the manifest must offer them',
      ...strings,
    },
    approvals: {
      type: 'boolean',
      description: "true: the Hand may relay people's answers to approval requests (a chat reply `approve <id>`)",
    },
  },
} as const;

const mcpServer = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  // exactly one of command / url: checked in ../config/validate.ts (ajv's strict mode takes no bare `required` in oneOf)
  properties: {
    name: {
      type: 'string',
      pattern: '^[a-z0-9][a-z0-9_-]{0,31}$',
      'x-hint': 'lowercase letters, digits, _ and -, at most 32: its tools are named mcp.<name>.<tool>',
    },
    /** stdio: the program and its arguments */
    command: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 4096 } },
    /** stdio: the child's whole environment besides PATH (nothing of the daemon's is passed on) */
    env: { type: 'object', additionalProperties: { type: 'string', maxLength: 4096 }, default: {} },
    cwd: { type: 'string', minLength: 1 },
    /** Streamable HTTP */
    url: { type: 'string', pattern: '^https?://', 'x-hint': 'an http:// or https:// URL' },
    /** the sealed secret (`talon secrets set`) sent as `Authorization: Bearer …` */
    tokenSecret: { type: 'string', minLength: 1, maxLength: 128 },
    /** tools of this server whose annotations are believed (others count as destructive) */
    trusted: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 128 }, default: [] },
    timeoutMs: positiveMs(30_000, 3_600_000),
    connectTimeoutMs: positiveMs(10_000, 600_000),
  },
} as const;

/** tools, the agent loop's approvals, MCP (runtime/tools) */
const toolsConfig = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    /** write each tool call's input into its audit entry (default: only a SHA-256 of it) */
    auditArgs: { type: 'boolean', default: false },
    /** how long an approval waits for a person; no answer is a deny */
    approvalTimeoutMs: positiveMs(300_000, 7 * 24 * 3600 * 1000),
    /** tool calls a second one Hand or MCP client may make (a burst of twice that); admins are not limited */
    callsPerSec: { type: 'integer', minimum: 1, maximum: 100_000, default: 50 },
    /** web.search: a SearXNG instance or the Brave Search API */
    search: {
      type: 'object',
      additionalProperties: false,
      required: ['provider', 'url'],
      properties: {
        provider: { type: 'string', enum: ['searxng', 'brave'] },
        url: { type: 'string', pattern: '^https?://', 'x-hint': 'an http:// or https:// URL' },
        keySecret: { type: 'string', minLength: 1, maxLength: 128 },
        maxResults: { type: 'integer', minimum: 1, maximum: 50, default: 10 },
      },
    },
    mcp: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** MCP servers whose tools join the registry as mcp.<server>.<tool> */
        servers: { type: 'array', items: mcpServer, maxItems: 32, default: [] },
        /** Talon as an MCP server at /mcp (an API token with the mcp scope) */
        serve: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: false },
            /** the tools an assistant may see and call (names or globs) */
            expose: {
              type: 'array',
              items: { type: 'string', minLength: 1, maxLength: 128 },
              default: ['sensors.list', 'sensors.read', 'actuators.write', 'audit.query', 'hands.list', 'hands.status'],
            },
            /** what those tools may touch for an assistant: sensors, actuators' pins, topics it may publish to */
            capabilities: {
              type: 'object',
              additionalProperties: false,
              default: { sensors: ['*'] },
              properties: {
                sensors: strings,
                gpio: capabilities.properties.gpio,
                bus: { type: 'object', additionalProperties: false, properties: { publish: strings } },
              },
            },
            /** tools whose every call over MCP waits for a person (destructive ones always do) */
            approve: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 128 }, default: [] },
          },
        },
      },
    },
  },
} as const;

const quotas = {
  type: 'object',
  additionalProperties: false,
  description: "narrows or overrides the manifest's quotas",
  properties: {
    heapMb: { type: 'integer', minimum: 8, maximum: 16384 },
    externalMb: {
      type: 'integer',
      minimum: 8,
      maximum: 16384,
      description: 'Buffers and ArrayBuffers outside the V8 heap, MB (default: twice heapMb, at least 16)',
    },
    cpuShare: { type: 'number', minimum: 0.01, maximum: 1 },
    messagesPerSec: { type: 'integer', minimum: 0, maximum: 1_000_000 },
    llmTokensPerHour: { type: 'integer', minimum: 0 },
  },
} as const;

const hand = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'module'],
  properties: {
    name: { type: 'string', pattern: HAND_NAME_PATTERN, 'x-hint': HAND_NAME_HINT },
    module: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      description:
        'a built-in Hand id (see `talon hands list`) or a path to a JS module (`./hands/mine.js`), relative to the config file',
    },
    enabled: { type: 'boolean', default: true },
    settings: { type: 'object', default: {} },
    capabilities,
    quotas,
    /** absent = always; no `default` keyword so a validated config is unchanged for Hands that do not use it */
    mode: {
      type: 'string',
      enum: ['always', 'on-demand'],
      description:
        'always (default): started with the kernel; on-demand: started by a job, the API or a message to its task inbox (hands/<name>/tasks), stopped after idleStopMs without work',
    },
    idleStopMs: {
      type: 'integer',
      minimum: 1000,
      maximum: 7 * 24 * 3600 * 1000,
      description:
        'ms without work (messages, requests, chat, kernel calls) after which an on-demand Hand, or an extra instance, is stopped (default 300000)',
    },
    instances: {
      type: 'object',
      additionalProperties: false,
      required: ['min', 'max'],
      description:
        'run min..max workers of this Hand; its task inbox is shared out (each task to one worker) and workers are added while it queues. Quotas are per worker',
      properties: {
        min: { type: 'integer', minimum: 1, maximum: 16 },
        max: { type: 'integer', minimum: 1, maximum: 16, description: 'at least min' },
      },
    },
  },
} as const;

const mqttUser = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'passwordHash'],
  properties: {
    username: { type: 'string', minLength: 1, maxLength: 128 },
    passwordHash: {
      type: 'string',
      pattern: '^scrypt\\$\\d+\\$\\d+\\$\\d+\\$[A-Za-z0-9+/=_-]+\\$[A-Za-z0-9+/=_-]+$',
      'x-hint':
        'must be an scrypt hash made by `talon config hash-password` (scrypt$N$r$p$salt$hash), not a plain password',
    },
    allow: strings,
  },
} as const;

export const talonConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://talon.dev/schemas/config.json',
  title: 'Talon config',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string', description: 'ignored; lets editors find this schema' },
    deviceName: { type: 'string', minLength: 1, maxLength: 64, default: 'talon' },
    dataDir: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      default: './data',
      description: 'relative to the config file (or the working folder without one)',
    },
    http: {
      ...listen('127.0.0.1', 8080),
      properties: {
        ...listen('127.0.0.1', 8080).properties,
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['enabled'],
          description:
            'HTTPS for the web admin; without cert and key a self-signed certificate is made at first start in <dataDir>/tls/',
          properties: {
            enabled: { type: 'boolean' },
            cert: {
              type: 'string',
              minLength: 1,
              maxLength: 4096,
              description: 'PEM certificate file, relative to the config file',
            },
            key: {
              type: 'string',
              minLength: 1,
              maxLength: 4096,
              description: 'PEM private key file, relative to the config file',
            },
          },
        },
        allowedHosts: {
          type: 'array',
          maxItems: 64,
          uniqueItems: true,
          items: { type: 'string', minLength: 1, maxLength: 253, pattern: '^(\\*|[A-Za-z0-9_.:\\[\\]%-]+)$' },
          description:
            'names or addresses the web admin answers to besides its own (localhost, the listen address, the host name, <hostname>.local, the interface addresses): a DNS name, a reverse proxy\'s name. Requests for other Host names are refused (DNS rebinding), and so are writes from pages on other sites. "*" turns the check off',
        },
      },
    },
    bus: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        embedded: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: true },
            listen: listen('127.0.0.1', 1883),
            lan: {
              type: 'object',
              additionalProperties: false,
              // `enabled` has no default on purpose: opening a port to the LAN is said out loud
              required: ['enabled'],
              properties: {
                enabled: { type: 'boolean' },
                host: host('0.0.0.0'),
                port: port(8883),
                tls: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['cert', 'key'],
                  properties: {
                    cert: { type: 'string', minLength: 1, description: 'PEM file, relative to the config file' },
                    key: { type: 'string', minLength: 1, description: 'PEM file, relative to the config file' },
                  },
                },
                users: { type: 'array', items: mqttUser, default: [] },
              },
            },
          },
        },
        url: {
          type: 'string',
          pattern: '^(mqtt|mqtts|ws|wss|tcp|ssl)://[^\\s]+$',
          'x-hint': 'must be a broker URL like mqtt://host:1883, mqtts://host:8883 or wss://host/mqtt',
        },
        username: { type: 'string', minLength: 1 },
        password: { type: 'string' },
        maxPayloadBytes: { type: 'integer', minimum: 1024, maximum: 256 * 1024 * 1024, default: 262144 },
      },
    },
    supervisor: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        heartbeatMs: positiveMs(1000, 60_000),
        hangTimeoutMs: positiveMs(10_000),
        stopTimeoutMs: positiveMs(5000),
        startTimeoutMs: positiveMs(15_000),
        backoff: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            initialMs: positiveMs(500),
            maxMs: positiveMs(30_000),
            factor: { type: 'number', minimum: 1, maximum: 10, default: 2 },
            jitter: { type: 'number', minimum: 0, maximum: 1, default: 0.2 },
          },
        },
        crashLoop: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            restarts: { type: 'integer', minimum: 1, maximum: 1000, default: 5 },
            windowMs: positiveMs(60_000),
          },
        },
      },
    },
    /** no default here: a config without `hands` runs the built-in Hands' default instances (./builtins.ts) */
    hands: { type: 'array', items: hand, maxItems: 256 },
    /** hardware and OS access; the default is the system driver and a simulated greenhouse */
    drivers: { ...driversSchema, default: DEMO_DRIVERS },
    llm: llmConfigSchema,
    tools: toolsConfig,
    /** names and DNS servers for what the kernel reaches for Hands (ctx.fetch, dns.mx); applied at start */
    network: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        hosts: {
          type: 'object',
          default: {},
          maxProperties: 1024,
          description:
            'fixed addresses for names, like /etc/hosts (a LAN without DNS, a service pinned to one address); a name here never goes to DNS',
          propertyNames: {
            pattern: '^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$',
            maxLength: 253,
          },
          additionalProperties: {
            type: 'string',
            pattern: '^(\\d{1,3}(\\.\\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$',
            'x-hint': 'an IPv4 or IPv6 address',
          },
        },
        dns: {
          type: 'array',
          maxItems: 8,
          default: [],
          description: "DNS servers for Hands' lookups (`ip`, `ip:port`, `[ipv6]:port`); empty: the system's resolver",
          items: { type: 'string', minLength: 2, maxLength: 64, pattern: '^[0-9A-Fa-f:.\\[\\]]+$' },
        },
      },
    },
    homeAssistant: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: true },
        prefix: {
          type: 'string',
          pattern: '^[a-zA-Z0-9_-]{1,64}$',
          default: 'homeassistant',
          'x-hint': "must be Home Assistant's discovery prefix (letters, digits, _ and -)",
        },
      },
    },
    /** fleet membership (issue 7): absent = standalone; the image bakes it in (`talon fleet init` writes device-bootstrap.json) */
    provisioning: {
      type: 'object',
      additionalProperties: false,
      required: ['fleet', 'anchor', 'bootstrap'],
      properties: {
        fleet: {
          type: 'string',
          pattern: '^[a-z0-9][a-z0-9-]{0,63}$',
          'x-hint': 'the fleet id from `talon fleet init` (lowercase letters, digits and -)',
        },
        anchor: {
          type: 'string',
          pattern: '^[A-Za-z0-9+/]{43}=$',
          'x-hint': "the fleet's Ed25519 public key, base64 (32 bytes)",
        },
        bootstrap: {
          type: 'object',
          additionalProperties: false,
          required: ['url', 'username', 'password'],
          description: 'the claim credential: it may only announce this device and read its bundle',
          properties: {
            url: {
              type: 'string',
              pattern: '^(mqtts?|wss?)://',
              'x-hint': 'an mqtt://, mqtts://, ws:// or wss:// URL',
            },
            username: { type: 'string', minLength: 1, maxLength: 128 },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
          },
        },
        healthWindowMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 30_000 },
        announceEveryMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { type: 'string', enum: ['debug', 'info', 'warn', 'error'], default: 'info' },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        retention: {
          type: 'object',
          additionalProperties: false,
          default: {},
          'x-hint': 'old entries are pruned behind a signed prune checkpoint; the rest still verifies',
          properties: {
            maxEntries: { type: 'integer', minimum: 1000 },
            maxAgeDays: { type: 'number', exclusiveMinimum: 0 },
          },
        },
      },
    },
  },
} as const;
