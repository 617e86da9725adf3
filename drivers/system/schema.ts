/**
 * JSON Schema (draft-07) of the system driver's config, and its TypeScript type derived from
 * it (json-schema-to-ts FromSchema: one declaration). Pure data.
 */
import type { FromSchema } from 'json-schema-to-ts';

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
    /** where procfs is mounted (default /proc); tests point it at a fixture tree */
    procRoot: path,
    /** where sysfs is mounted (default /sys) */
    sysRoot: path,
    /** only these mount points get disk sensors (default: every real file system) */
    mounts: names,
    /** only these interfaces get net sensors (default: all but lo and virtual bridges) */
    interfaces: names,
    /** only these block devices get diskio sensors (default: whole disks but loop, ram, zram) */
    disks: names,
    /** how often vcgencmd get_throttled is run when the sysfs file is missing (default 60 s) */
    throttledIntervalMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 },
    /** path of vcgencmd; false turns it off (default: looked up in PATH and /usr/bin) */
    vcgencmd: { oneOf: [path, { type: 'boolean', const: false }] },
    /** how long a file read is reused by other sensors (default 200 ms) */
    cacheMs: { type: 'integer', minimum: 0, maximum: 60_000 },
    readTimeoutMs: { type: 'integer', minimum: 1, maximum: 60_000 },
  },
} as const;

export type SystemDriverConfig = FromSchema<typeof systemDriverSchema>;
