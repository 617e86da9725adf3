/**
 * Home Assistant MQTT discovery: every sensor, and the device's alerts, appear in Home
 * Assistant by themselves. Config payloads are retained under
 * `homeassistant/<component>/<node_id>/<object_id>/config` with a `unique_id`, the state
 * topic the kernel already publishes, the device, units and classes, and an availability
 * topic tied to the device state (retained `online`, `offline` as the last will). They are
 * published again when Home Assistant announces `homeassistant/status` = `online`.
 */
import type { Bus } from '../bus/types.ts';
import type { SensorInfo } from '../../drivers/types.ts';
import { topics } from '../core/topics.ts';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;

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

export function discoveryMessages(device: DiscoveryDevice, sensors: SensorInfo[], prefix = 'homeassistant'): DiscoveryMessage[] {
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
  for (const sev of SEVERITIES) {
    out.push({
      topic: `${prefix}/binary_sensor/${node}/alert_${sev}/config`,
      payload: {
        name: `Talon ${sev} alert`,
        unique_id: `talon_${device.deviceId}_alert_${sev}`,
        object_id: `talon_alert_${sev}`,
        state_topic: topics.alerts(device.deviceId, sev),
        value_template: "{{ 'ON' if value_json.state in ['firing', 'flapping'] else 'OFF' }}",
        json_attributes_topic: topics.alerts(device.deviceId, sev),
        device_class: 'problem',
        device: dev,
        ...availability,
      },
    });
  }
  return out;
}

export class HomeAssistantDiscovery {
  #bus: Bus;
  #device: DiscoveryDevice;
  #sensors: () => SensorInfo[];
  #prefix: string;
  #off: (() => Promise<void>) | null = null;
  published = 0;

  constructor(bus: Bus, device: DiscoveryDevice, sensors: () => SensorInfo[], prefix = 'homeassistant') {
    this.#bus = bus;
    this.#device = device;
    this.#sensors = sensors;
    this.#prefix = prefix;
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
    for (const m of discoveryMessages(this.#device, this.#sensors(), this.#prefix)) {
      await this.#bus.publish(m.topic, JSON.stringify(m.payload), { qos: 1, retain: true });
      this.published++;
    }
  }
}
