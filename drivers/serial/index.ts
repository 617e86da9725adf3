/** The serial driver: line protocols (kv, csv, jsonl, nmea) and Modbus RTU over serialport. */
export { SerialDriver, checkSerialConfig } from './driver.ts';
export type { SerialDriverOptions, PortLike, PortOptions } from './driver.ts';
export { serialDriverSchema } from './schema.ts';
export type {
  SerialDriverConfig,
  SerialSensorConfig,
  ModbusConfig,
  ModbusRegisterConfig,
  SerialProtocol,
} from './schema.ts';
