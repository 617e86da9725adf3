/** JSON Schema (draft-07) of the system driver's config. Pure data. */
const path = { type: 'string', minLength: 1, maxLength: 4096 } as const;
const names = { type: 'array', maxItems: 256, items: { type: 'string', minLength: 1, maxLength: 256 } } as const;

export const systemDriverSchema = {
  $id: 'https://talon.dev/schemas/drivers/system.json',
  title: 'Talon system driver: CPU, memory, disks, network, temperature from /proc and /sys',
  type: 'object',
  additionalProperties: false,
  required: ['type', 'name'],
  properties: {
    type: { type: 'string', const: 'system' },
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    procRoot: path,
    sysRoot: path,
    mounts: names,
    interfaces: names,
    disks: names,
    throttledIntervalMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 },
    vcgencmd: { oneOf: [path, { type: 'boolean', const: false }] },
    cacheMs: { type: 'integer', minimum: 0, maximum: 60_000 },
    readTimeoutMs: { type: 'integer', minimum: 1, maximum: 60_000 },
  },
} as const;
