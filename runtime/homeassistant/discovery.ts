/**
 * Home Assistant MQTT discovery: every sensor, and the entities the Hands declare in their
 * surfaces (hands/sdk/surface.ts `homeAssistant`: a binary sensor per alert severity, say),
 * appear in Home Assistant by themselves. Config payloads are retained under
 * `homeassistant/<component>/<node_id>/<object_id>/config` with a `unique_id`, the state
 * topic the kernel already publishes, the device, units and classes, and an availability
 * topic tied to the device state (retained `online`, `offline` as the last will). They are
 * published again when Home Assistant announces `homeassistant/status` = `online`.
 */
import type { Bus } from '../bus/types.ts';
import type { SensorInfo } from '../../drivers/types.ts';
import { topics } from '../core/topics.ts';
import type { AnySurface } from '../../hands/sdk/surface.ts';

export interface DiscoveryDevice {
  deviceId: string;
  name: string;
  model?: string;
  swVersion: string;
}

export interface DiscoveryMessage {
  topic: string;
  payload: Record<string, unknown>;
}

/** object ids: Home Assistant allows [a-zA-Z0-9_-] */
export const objectId = (id: string): string => id.replace(/[^a-zA-Z0-9_-]/g, '_');

export function discoveryMessages(
  device: DiscoveryDevice,
  sensors: SensorInfo[],
  prefix = 'homeassistant',
  surfaces: readonly AnySurface[] = [],
): DiscoveryMessage[] {
  const node = device.deviceId;
  const dev = {
    identifiers: [`talon_${device.deviceId}`],
    name: device.name,
    manufacturer: 'Talon',
    model: device.model ?? 'Talon edge device',
    sw_version: device.swVersion,
  };
  const availability = {
    availability_topic: topics.state(device.deviceId),
    payload_available: 'online',
    payload_not_available: 'offline',
  };
  const out: DiscoveryMessage[] = [];
  for (const s of sensors) {
    const component = s.kind === 'boolean' ? 'binary_sensor' : 'sensor';
    const payload: Record<string, unknown> = {
      name: s.name,
      unique_id: `talon_${device.deviceId}_${objectId(s.id)}`,
      object_id: `talon_${objectId(s.id)}`,
      state_topic: topics.sensor(device.deviceId, s.id),
      value_template: s.kind === 'boolean' ? "{{ 'ON' if value_json.value else 'OFF' }}" : '{{ value_json.value }}',
      device: dev,
      ...availability,
    };
    if (s.kind === 'number') {
      if (s.unit !== undefined) payload.unit_of_measurement = s.unit;
      payload.state_class = s.stateClass ?? 'measurement';
    }
    if (s.deviceClass !== undefined) payload.device_class = s.deviceClass;
    out.push({ topic: `${prefix}/${component}/${node}/${objectId(s.id)}/config`, payload });
  }
  const taken = new Set(out.map((m) => m.topic));
  for (const surface of surfaces) {
    for (const e of surface.homeAssistant?.entities({ deviceId: device.deviceId }) ?? []) {
      const id = objectId(e.objectId);
      const topic = `${prefix}/${e.component}/${node}/${id}/config`;
      if (taken.has(topic)) continue; // a sensor's entity comes first
      taken.add(topic);
      const { name, ...rest } = e.config;
      out.push({
        topic,
        payload: {
          name,
          unique_id: `talon_${device.deviceId}_${id}`,
          object_id: `talon_${id}`,
          ...rest,
          device: dev,
          ...availability,
        },
      });
    }
  }
  return out;
}

export class HomeAssistantDiscovery {
  #bus: Bus;
  #device: DiscoveryDevice;
  #sensors: () => SensorInfo[];
  #prefix: string;
  #surfaces: readonly AnySurface[];
  #off: (() => Promise<void>) | null = null;
  published = 0;

  /** `surfaces`: the Hands whose entities are announced with the sensors (the composition root passes the built-in ones) */
  constructor(
    bus: Bus,
    device: DiscoveryDevice,
    sensors: () => SensorInfo[],
    prefix = 'homeassistant',
    surfaces: readonly AnySurface[] = [],
  ) {
    this.#bus = bus;
    this.#device = device;
    this.#sensors = sensors;
    this.#prefix = prefix;
    this.#surfaces = surfaces;
  }

  async start(): Promise<void> {
    await this.publishAll();
    this.#off = await this.#bus.subscribe(`${this.#prefix}/status`, (msg) => {
      if (msg.payload.toString('utf8') === 'online') void this.publishAll();
    });
  }

  async stop(): Promise<void> {
    await this.#off?.();
    this.#off = null;
  }

  async publishAll(): Promise<void> {
    for (const m of discoveryMessages(this.#device, this.#sensors(), this.#prefix, this.#surfaces)) {
      await this.#bus.publish(m.topic, JSON.stringify(m.payload), { qos: 1, retain: true });
      this.published++;
    }
  }
}
