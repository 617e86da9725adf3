/**
 * The bus factory: RemoteBus (mqtt.js to an external broker) when `bus.url` is set,
 * otherwise the embedded aedes broker.
 */
import type { Bus } from './types.ts';
import type { BusConfig } from '../config/types.ts';
import type { Clock } from '../core/clock.ts';
import { EmbeddedBus, type AnonymousRules } from './embedded.ts';
import { RemoteBus } from './remote.ts';

export interface CreateBusOptions {
  /** checks a CLI token presented as MQTT username `token` (embedded broker only) */
  authenticateToken?: (token: string) => boolean;
  clock?: Clock;
  /** what anonymous clients of the embedded broker may do beyond reading the public state */
  anonymous?: AnonymousRules;
}

export function createBus(config: BusConfig, deviceId: string, opts: CreateBusOptions = {}): Bus {
  if (config.url) return new RemoteBus(config, deviceId, { clock: opts.clock });
  return new EmbeddedBus(config, deviceId, opts);
}

export { EmbeddedBus } from './embedded.ts';
export { RemoteBus } from './remote.ts';
export type { Bus, BusHandler, BusMessage, BusStats, PublishOptions, QoS } from './types.ts';
