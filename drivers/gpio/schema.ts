/**
 * JSON Schema (draft-07) of the gpio driver's config, and its TypeScript types derived from it
 * (json-schema-to-ts FromSchema: one declaration). Pure data. Unique pin ids and BCM numbers
 * are checked when the driver is made (CONFIG_INVALID).
 */
import type { FromSchema } from 'json-schema-to-ts';

export const gpioDriverSchema = {
  $id: 'https://talon.dev/schemas/drivers/gpio.json',
  title: 'Talon gpio driver: header pins by BCM number (onoff, or simulated)',
  type: 'object',
  additionalProperties: false,
  required: ['type', 'name', 'pins'],
  properties: {
    type: { type: 'string', const: 'gpio' },
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    /** 'onoff' (sysfs, the default) or 'sim' (in-memory pins) */
    backend: { type: 'string', enum: ['onoff', 'sim'] },
    /** where sysfs is mounted, for finding the chip's base (default /sys) */
    sysRoot: { type: 'string', minLength: 1, maxLength: 4096 },
    /** the label of the chip the pins are on (default: a Raspberry Pi pinctrl, else the lowest base) */
    chip: { type: 'string', minLength: 1, maxLength: 128 },
    /** a fixed sysfs number of BCM 0, skipping discovery */
    base: { type: 'integer', minimum: 0, maximum: 100_000 },
    /** poll every input at this interval instead of using interrupts (per-pin pollMs wins) */
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
          /** the BCM (Broadcom) GPIO number printed on header diagrams, 0-53 */
          bcm: { type: 'integer', minimum: 0, maximum: 53 },
          direction: { type: 'string', enum: ['in', 'out'] },
          /** the pin is active when low: reads and writes are inverted */
          activeLow: { type: 'boolean' },
          /** which changes of an input are delivered (default both) */
          edge: { type: 'string', enum: ['rising', 'falling', 'both'] },
          /** an input change must hold this long to count (default 0) */
          debounceMs: { type: 'integer', minimum: 0, maximum: 10_000 },
          /** detect edges by reading the value every pollMs instead of by interrupt */
          pollMs: { type: 'integer', minimum: 1, maximum: 60_000 },
          /** an output's state at start (default false = inactive) */
          initial: { type: 'boolean' },
          /** Home Assistant device class (door, motion, power…) */
          deviceClass: { type: 'string', maxLength: 64 },
        },
      },
    },
  },
} as const;

export type GpioDriverConfig = FromSchema<typeof gpioDriverSchema>;
export type GpioPinConfig = GpioDriverConfig['pins'][number];
