/**
 * The serial driver's config: its JSON Schema (draft-07, closed objects) and its TypeScript
 * shape. Pure data, so the bundler can precompile it. Rules a schema cannot say (unique
 * sensor ids, csv fields naming a column, backoff maxMs >= initialMs, register ranges) are
 * checked in driver.ts.
 */

export const SENSOR_ID_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';

export type SerialProtocol = 'kv' | 'csv' | 'jsonl' | 'nmea' | 'modbus';
export type SensorKind = 'number' | 'boolean' | 'string';
export type StateClass = 'measurement' | 'total' | 'total_increasing';

export interface SerialSensorConfig {
  /** global sensor id: lowercase letters, digits, `.`, `_`, `-` */
  id: string;
  /** the field of the parsed line (a key, a CSV column, a flattened JSON path, an NMEA field); default: the id */
  field?: string;
  name?: string;
  unit?: string;
  deviceClass?: string;
  stateClass?: StateClass;
  /** default `number` (NMEA `time`/`date`/`sentence` default to string, `valid` to boolean) */
  kind?: SensorKind;
}

export interface ModbusRegisterConfig {
  /** global sensor id */
  id: string;
  table: 'holding' | 'input';
  /** 0-based register address on the wire (register 40001 is holding address 0) */
  address: number;
  type: 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32';
  /** value = raw * scale + offset (defaults 1 and 0) */
  scale?: number;
  offset?: number;
  /** for 32-bit types: `big` (default) = first register is the high word */
  wordOrder?: 'big' | 'little';
  name?: string;
  unit?: string;
  deviceClass?: string;
  stateClass?: StateClass;
}

export interface ModbusConfig {
  /** slave address 1..247 */
  unitId: number;
  /** the time between the starts of two poll cycles (default 1000) */
  pollMs?: number;
  /** how long to wait for each answer (default 500) */
  timeoutMs?: number;
  registers: ModbusRegisterConfig[];
}

export interface SerialDriverConfig {
  name: string;
  type: 'serial';
  /** the device: /dev/ttyUSB0, /dev/serial/by-id/…, a pty link */
  path: string;
  baudRate: number;
  dataBits?: 5 | 6 | 7 | 8;
  parity?: 'none' | 'even' | 'odd';
  stopBits?: 1 | 2;
  protocol: SerialProtocol;
  /** line protocols: the sensors fed by the lines */
  sensors?: SerialSensorConfig[];
  /** csv: the column names, in order (`""` or `_` skips a column) */
  columns?: string[];
  /** longest accepted line in bytes (default 4096); longer lines are dropped and counted */
  maxLineBytes?: number;
  /** a pushed value older than this answers SENSOR_UNAVAILABLE (default: never stale) */
  staleMs?: number;
  modbus?: ModbusConfig;
  /** reopen backoff when the port is missing or vanishes: doubles from initialMs up to maxMs */
  reconnect?: { initialMs?: number; maxMs?: number };
}

const stateClass = { type: 'string', enum: ['measurement', 'total', 'total_increasing'] } as const;
const text = { type: 'string', minLength: 1, maxLength: 128 } as const;

export const serialSensorSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: { type: 'string', pattern: SENSOR_ID_PATTERN },
    field: { type: 'string', minLength: 1, maxLength: 128 },
    name: text,
    unit: { type: 'string', maxLength: 32 },
    deviceClass: { type: 'string', maxLength: 64 },
    stateClass,
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
    address: { type: 'integer', minimum: 0, maximum: 65535 },
    type: { type: 'string', enum: ['int16', 'uint16', 'int32', 'uint32', 'float32'] },
    scale: { type: 'number' },
    offset: { type: 'number' },
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
    path: { type: 'string', minLength: 1, maxLength: 4096 },
    baudRate: { type: 'integer', minimum: 50, maximum: 4000000 },
    dataBits: { type: 'integer', enum: [5, 6, 7, 8] },
    parity: { type: 'string', enum: ['none', 'even', 'odd'] },
    stopBits: { type: 'integer', enum: [1, 2] },
    protocol: { type: 'string', enum: ['kv', 'csv', 'jsonl', 'nmea', 'modbus'] },
    sensors: { type: 'array', maxItems: 256, items: serialSensorSchema },
    columns: { type: 'array', minItems: 1, maxItems: 256, items: { type: 'string', maxLength: 128 } },
    maxLineBytes: { type: 'integer', minimum: 16, maximum: 65536 },
    staleMs: { type: 'integer', minimum: 1 },
    modbus: {
      type: 'object',
      additionalProperties: false,
      required: ['unitId', 'registers'],
      properties: {
        unitId: { type: 'integer', minimum: 1, maximum: 247 },
        pollMs: { type: 'integer', minimum: 10, maximum: 86400000 },
        timeoutMs: { type: 'integer', minimum: 10, maximum: 60000 },
        registers: { type: 'array', minItems: 1, maxItems: 256, items: modbusRegisterSchema },
      },
    },
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
