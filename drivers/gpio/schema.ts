/**
 * JSON Schema (draft-07) of the gpio driver's config. Pure data. Unique pin ids and BCM
 * numbers are checked when the driver is made (CONFIG_INVALID).
 */
export const gpioDriverSchema = {
  $id: 'https://talon.dev/schemas/drivers/gpio.json',
  title: 'Talon gpio driver: header pins by BCM number (onoff, or simulated)',
  type: 'object',
  additionalProperties: false,
  required: ['type', 'name', 'pins'],
  properties: {
    type: { type: 'string', const: 'gpio' },
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    backend: { type: 'string', enum: ['onoff', 'sim'] },
    sysRoot: { type: 'string', minLength: 1, maxLength: 4096 },
    chip: { type: 'string', minLength: 1, maxLength: 128 },
    base: { type: 'integer', minimum: 0, maximum: 100_000 },
    pollMs: { type: 'integer', minimum: 1, maximum: 60_000 },
    pins: {
      type: 'array',
      minItems: 1,
      maxItems: 54,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'bcm', 'direction'],
        properties: {
          id: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,127}$' },
          name: { type: 'string', minLength: 1, maxLength: 128 },
          bcm: { type: 'integer', minimum: 0, maximum: 53 },
          direction: { type: 'string', enum: ['in', 'out'] },
          activeLow: { type: 'boolean' },
          edge: { type: 'string', enum: ['rising', 'falling', 'both'] },
          debounceMs: { type: 'integer', minimum: 0, maximum: 10_000 },
          pollMs: { type: 'integer', minimum: 1, maximum: 60_000 },
          initial: { type: 'boolean' },
          deviceClass: { type: 'string', maxLength: 64 },
        },
      },
    },
  },
} as const;
