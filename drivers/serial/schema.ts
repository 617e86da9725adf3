/**
 * The serial driver's config: its JSON Schema (draft-07, closed objects) and its TypeScript
 * shape derived from it (json-schema-to-ts FromSchema: one declaration). Pure data, so the
 * bundler can precompile it. Rules a schema cannot say (unique sensor ids, csv fields naming a
 * column, backoff maxMs >= initialMs, register ranges) are checked in driver.ts.
 */
import type { FromSchema } from 'json-schema-to-ts';

export const SENSOR_ID_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';

const stateClass = { type: 'string', enum: ['measurement', 'total', 'total_increasing'] } as const;
const text = { type: 'string', minLength: 1, maxLength: 128 } as const;

export const serialSensorSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    /** global sensor id: lowercase letters, digits, `.`, `_`, `-` */
    id: { type: 'string', pattern: SENSOR_ID_PATTERN },
    /** the field of the parsed line (a key, a CSV column, a flattened JSON path, an NMEA field); default: the id */
    field: { type: 'string', minLength: 1, maxLength: 128 },
    name: text,
    unit: { type: 'string', maxLength: 32 },
    deviceClass: { type: 'string', maxLength: 64 },
    stateClass,
    /** default `number` (NMEA `time`/`date`/`sentence` default to string, `valid` to boolean) */
    kind: { type: 'string', enum: ['number', 'boolean', 'string'] },
  },
} as const;

export const modbusRegisterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'table', 'address', 'type'],
  properties: {
    id: { type: 'string', pattern: SENSOR_ID_PATTERN },
    table: { type: 'string', enum: ['holding', 'input'] },
    /** 0-based register address on the wire (register 40001 is holding address 0) */
    address: { type: 'integer', minimum: 0, maximum: 65535 },
    type: { type: 'string', enum: ['int16', 'uint16', 'int32', 'uint32', 'float32'] },
    /** value = raw * scale + offset (defaults 1 and 0) */
    scale: { type: 'number' },
    offset: { type: 'number' },
    /** for 32-bit types: `big` (default) = first register is the high word */
    wordOrder: { type: 'string', enum: ['big', 'little'] },
    name: text,
    unit: { type: 'string', maxLength: 32 },
    deviceClass: { type: 'string', maxLength: 64 },
    stateClass,
  },
} as const;

export const serialDriverSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://talon.dev/schemas/drivers/serial.json',
  title: 'Talon serial driver',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'path', 'baudRate', 'protocol'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    type: { type: 'string', const: 'serial' },
    /** the device: /dev/ttyUSB0, /dev/serial/by-id/…, a pty link */
    path: { type: 'string', minLength: 1, maxLength: 4096 },
    baudRate: { type: 'integer', minimum: 50, maximum: 4000000 },
    dataBits: { type: 'integer', enum: [5, 6, 7, 8] },
    parity: { type: 'string', enum: ['none', 'even', 'odd'] },
    stopBits: { type: 'integer', enum: [1, 2] },
    protocol: { type: 'string', enum: ['kv', 'csv', 'jsonl', 'nmea', 'modbus'] },
    /** line protocols: the sensors fed by the lines */
    sensors: { type: 'array', maxItems: 256, items: serialSensorSchema },
    /** csv: the column names, in order (`""` or `_` skips a column) */
    columns: { type: 'array', minItems: 1, maxItems: 256, items: { type: 'string', maxLength: 128 } },
    /** longest accepted line in bytes (default 4096); longer lines are dropped and counted */
    maxLineBytes: { type: 'integer', minimum: 16, maximum: 65536 },
    /** a pushed value older than this answers SENSOR_UNAVAILABLE (default: never stale) */
    staleMs: { type: 'integer', minimum: 1 },
    modbus: {
      type: 'object',
      additionalProperties: false,
      required: ['unitId', 'registers'],
      properties: {
        /** slave address 1..247 */
        unitId: { type: 'integer', minimum: 1, maximum: 247 },
        /** the time between the starts of two poll cycles (default 1000) */
        pollMs: { type: 'integer', minimum: 10, maximum: 86400000 },
        /** how long to wait for each answer (default 500) */
        timeoutMs: { type: 'integer', minimum: 10, maximum: 60000 },
        registers: { type: 'array', minItems: 1, maxItems: 256, items: modbusRegisterSchema },
      },
    },
    /** reopen backoff when the port is missing or vanishes: doubles from initialMs up to maxMs */
    reconnect: {
      type: 'object',
      additionalProperties: false,
      properties: {
        initialMs: { type: 'integer', minimum: 1, maximum: 3600000 },
        maxMs: { type: 'integer', minimum: 1, maximum: 3600000 },
      },
    },
  },
  allOf: [
    {
      if: { type: 'object', properties: { protocol: { const: 'modbus' } }, required: ['protocol'] },
      then: { type: 'object', required: ['modbus'], properties: { modbus: true } },
      else: { type: 'object', required: ['sensors'], properties: { sensors: { type: 'array', minItems: 1 } } },
    },
    {
      if: { type: 'object', properties: { protocol: { const: 'csv' } }, required: ['protocol'] },
      then: { type: 'object', required: ['columns'], properties: { columns: true } },
    },
  ],
} as const;

export type SerialDriverConfig = FromSchema<typeof serialDriverSchema>;
export type SerialSensorConfig = FromSchema<typeof serialSensorSchema>;
export type ModbusConfig = NonNullable<SerialDriverConfig['modbus']>;
export type ModbusRegisterConfig = FromSchema<typeof modbusRegisterSchema>;
export type SerialProtocol = SerialDriverConfig['protocol'];
export type SensorKind = NonNullable<SerialSensorConfig['kind']>;
export type StateClass = NonNullable<SerialSensorConfig['stateClass']>;
