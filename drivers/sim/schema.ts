/**
 * JSON Schema (draft-07) of the sim driver's config, and its TypeScript types derived from it
 * (json-schema-to-ts FromSchema: one declaration). Pure data: the bundler precompiles it.
 * What a schema cannot say (an event's durationMs < everyMs, walk.min < walk.max, unique ids)
 * is checked when the driver is made (patterns.ts validateSpec → CONFIG_INVALID).
 */
import type { FromSchema } from 'json-schema-to-ts';

export const SIM_PRESETS = ['temperature', 'humidity', 'load', 'door'] as const;

const ID = '^[a-z0-9][a-z0-9._-]{0,127}$';
const num = { type: 'number' } as const;
const ms = { type: 'number', exclusiveMinimum: 0, maximum: 31_536_000_000 } as const;
const text = { type: 'string', minLength: 1, maxLength: 128 } as const;

const base = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'value'],
      properties: { type: { type: 'string', const: 'constant' }, value: num },
    },
    // mean + amplitude·sin(2π(t/periodMs) + phase)
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'mean', 'amplitude', 'periodMs'],
      properties: { type: { type: 'string', const: 'sine' }, mean: num, amplitude: num, periodMs: ms, phase: num },
    },
    // every stepMs the value moves by a uniform step in [-step, step], reflected into [min, max]
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'start', 'step', 'stepMs'],
      properties: {
        type: { type: 'string', const: 'walk' },
        start: num,
        step: { type: 'number', minimum: 0 },
        stepMs: ms,
        min: num,
        max: num,
      },
    },
    // cycles through levels, holding each for holdMs (normal behaviour: not labelled)
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'levels', 'holdMs'],
      properties: {
        type: { type: 'string', const: 'steps' },
        levels: { type: 'array', minItems: 1, maxItems: 1000, items: num },
        holdMs: ms,
      },
    },
  ],
} as const;

/** When random events happen: explicit start times, or at most one per `everyMs` slot. */
const timing = {
  /** explicit event start times (ms since origin); when set, everyMs/probability are ignored */
  at: { type: 'array', maxItems: 10_000, items: { type: 'number', minimum: 0 } },
  /** slot length: at most one event per slot (default 60000) */
  everyMs: ms,
  /** chance of an event in a slot (default 1) */
  probability: { type: 'number', minimum: 0, maximum: 1 },
  /** how long each event lasts (must be < everyMs) */
  durationMs: ms,
} as const;

const anomaly = {
  oneOf: [
    // adds ±magnitude for durationMs
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'magnitude', 'durationMs'],
      properties: {
        type: { type: 'string', const: 'spike' },
        magnitude: num,
        direction: { type: 'string', enum: ['up', 'down', 'both'] },
        ...timing,
      },
    },
    // holds the value of the event's first instant
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'durationMs'],
      properties: { type: { type: 'string', const: 'stuck' }, ...timing },
    },
    // no value at all (the driver answers SENSOR_UNAVAILABLE)
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'durationMs'],
      properties: { type: { type: 'string', const: 'dropout' }, ...timing },
    },
    // from startMs, adds ratePerHour per hour for durationMs (default: forever); the offset stays
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'startMs', 'ratePerHour'],
      properties: {
        type: { type: 'string', const: 'drift' },
        startMs: { type: 'number', minimum: 0 },
        ratePerHour: num,
        durationMs: ms,
      },
    },
  ],
} as const;

export const seriesSpecSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['base'],
  properties: {
    base,
    /** uniform noise in [-noise, noise], fresh every noiseMs (default 1000) */
    noise: { type: 'number', minimum: 0 },
    noiseMs: ms,
    anomalies: { type: 'array', maxItems: 64, items: anomaly },
  },
} as const;

export const simDriverSchema = {
  $id: 'https://talon.dev/schemas/drivers/sim.json',
  title: 'Talon sim driver: seeded simulated sensors',
  type: 'object',
  additionalProperties: false,
  required: ['type', 'name', 'sensors'],
  properties: {
    type: { type: 'string', const: 'sim' },
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
    readTimeoutMs: { type: 'integer', minimum: 1, maximum: 60_000 },
    sensors: {
      type: 'array',
      maxItems: 1000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'pattern'],
        properties: {
          id: { type: 'string', pattern: ID },
          name: text,
          unit: { type: 'string', maxLength: 32 },
          deviceClass: { type: 'string', maxLength: 64 },
          stateClass: { type: 'string', enum: ['measurement', 'total', 'total_increasing'] },
          /** a pattern spec, or the name of a preset in PRESETS */
          pattern: { oneOf: [{ type: 'string', enum: [...SIM_PRESETS] }, seriesSpecSchema] },
          /** the sensor produces a new value every periodMs (default 1000) */
          periodMs: { type: 'integer', minimum: 1, maximum: 86_400_000 },
          /** deliver values through onReading() every periodMs instead of answering polls */
          push: { type: 'boolean' },
          /** round values to this many decimals (default: 3) */
          decimals: { type: 'integer', minimum: 0, maximum: 12 },
          /** per-sensor seed; default: the driver's seed mixed with the sensor's index */
          seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
        },
      },
    },
    actuators: {
      type: 'array',
      maxItems: 256,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: {
          id: { type: 'string', pattern: ID },
          name: text,
          kind: { type: 'string', enum: ['boolean', 'number'] },
        },
      },
    },
  },
} as const;

/** a simulated series: base + noise + anomalies (./patterns.ts) */
export type SeriesSpec = FromSchema<typeof seriesSpecSchema>;
export type BaseSpec = SeriesSpec['base'];
export type AnomalySpec = NonNullable<SeriesSpec['anomalies']>[number];
export type SimDriverConfig = FromSchema<typeof simDriverSchema>;
export type SimSensorConfig = SimDriverConfig['sensors'][number];
export type SimActuatorConfig = NonNullable<SimDriverConfig['actuators']>[number];
