/**
 * One interface for every way Talon touches hardware or the OS: a Driver owns some Sensors
 * (things read, polled or pushed) and Actuators (things written). The kernel owns all
 * drivers; Hands reach them only through `ctx.call('sensors.read', id)` and friends, checked
 * against their grants. Every driver passes the contract suite in test/drivers/contract.ts.
 */
import type { ErrorJSON } from '../runtime/core/errors.ts';
import type { Clock, Random } from '../runtime/core/clock.ts';
import type { GpioBackend } from './gpio/backend.ts';
import type { SerialDriverOptions } from './serial/driver.ts';

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

/**
 * What a driver may be given besides its config: the kernel passes a clock; tests pass fakes.
 * A field only one driver type reads is named after it.
 */
export interface DriverDeps {
  clock?: Clock;
  random?: Random;
  /** a listener threw while a driver delivered a pushed reading (the driver carries on) */
  onListenerError?: (err: unknown) => void;
  /** gpio: a backend instead of the config's (tests, a shared SimGpio) */
  gpioBackend?: GpioBackend;
  /** serial: how a port is made (tests) */
  openPort?: SerialDriverOptions['openPort'];
  /** sim: the origin of every series, ms epoch (default: now) */
  simOrigin?: number;
}

/**
 * One driver type, as drivers/index.ts lists it: the `type` a config names, the JSON Schema of
 * such an entry of `drivers: [...]` (pure data: the config schema, the per-type validators
 * and the bundle's precompiled code are made from it), and how to make one. `create` loads the
 * driver's code when it is first called, so a config without a serial driver never loads
 * serialport's, and one without drivers loads none. Adding a driver type is a folder with an
 * `entry.ts` and a line in drivers/index.ts.
 */
export interface DriverEntry<C extends { type: string; name: string } = { type: string; name: string }> {
  readonly type: C['type'];
  readonly schema: Readonly<Record<string, unknown>>;
  create(config: C, deps: DriverDeps): Promise<Driver>;
}

/** The config an entry takes. */
export type ConfigOf<E> = E extends DriverEntry<infer C> ? C : never;
