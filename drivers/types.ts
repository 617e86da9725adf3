/**
 * One interface for every way Talon touches hardware or the OS: a Driver owns some Sensors
 * (things read, polled or pushed) and Actuators (things written). The kernel owns all
 * drivers; Hands reach them only through `ctx.call('sensors.read', id)` and friends, checked
 * against their grants. Every driver passes the contract suite in test/drivers/contract.ts.
 */
import type { ErrorJSON } from '../runtime/core/errors.ts';

export type SensorValue = number | boolean | string;

export interface Reading {
  /** the sensor's global id, e.g. `cpu.load`, `greenhouse.temp` */
  sensor: string;
  value: SensorValue;
  /** ms epoch when the value was taken */
  ts: number;
}

export interface SensorInfo {
  /** global id: lowercase letters, digits, `.`, `_`, `-`; unique across all drivers */
  id: string;
  /** a human name */
  name: string;
  kind: 'number' | 'boolean' | 'string';
  unit?: string;
  /** Home Assistant device class (temperature, humidity, power, data_size…) */
  deviceClass?: string;
  /** Home Assistant state class */
  stateClass?: 'measurement' | 'total' | 'total_increasing';
  /** pushed sensors deliver readings through onReading(); polled ones answer read() */
  mode: 'polled' | 'pushed';
}

export interface ActuatorInfo {
  id: string;
  name: string;
  kind: 'boolean' | 'number';
  /** the BCM pin of a GPIO actuator: a Hand needs it in its `gpio` grant to write */
  pin?: number;
}

export interface DriverHealth {
  ok: boolean;
  /** the last error, while not ok */
  error?: ErrorJSON;
  /** driver-specific counters: reads, faults, lines, bad checksums, reconnects… */
  counters: Record<string, number>;
}

export interface Driver {
  /** the instance name from the config */
  readonly name: string;
  readonly type: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  sensors(): SensorInfo[];
  /**
   * The current value of a polled sensor (a pushed one answers its latest value).
   * Failures throw TalonError: SENSOR_NOT_FOUND, SENSOR_FAULT (threw, NaN, text where a
   * number was due), SENSOR_TIMEOUT, SENSOR_UNAVAILABLE (port gone, no value yet).
   */
  read(sensor: string): Promise<Reading>;
  /** pushed readings (serial lines, GPIO edges); returns an unsubscribe function */
  onReading(listener: (r: Reading) => void): () => void;
  actuators(): ActuatorInfo[];
  /** ACTUATOR_NOT_FOUND, or the driver's own failure */
  write(actuator: string, value: boolean | number): Promise<void>;
  health(): DriverHealth;
}
