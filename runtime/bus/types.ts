/**
 * The kernel's view of the MQTT bus. Topics here are absolute (`talon/<deviceId>/...`);
 * Hands use topics relative to the device root and the kernel maps them (see topics.ts).
 * Two implementations: EmbeddedBus (aedes in this process, plus TCP listeners for outside
 * clients) and RemoteBus (mqtt.js client to mosquitto, EMQX, HiveMQ...).
 */
export type QoS = 0 | 1 | 2;

export interface BusMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** the id of the outside client that published it (embedded broker only; absent for the kernel's own publishes) */
  clientId?: string;
  /** MQTT 5 Response Topic and Correlation Data the publisher asked for (external broker only) */
  responseTopic?: string;
  correlationData?: Buffer;
}

export type BusHandler = (msg: BusMessage) => void;

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  /** MQTT 5 Correlation Data, sent back with a response (external broker; MQTT 3.1.1 has none) */
  correlationData?: Buffer;
}

export interface BusStats {
  published: number;
  delivered: number;
  /** messages dropped because they were over the payload limit */
  droppedOversize: number;
  /** messages dropped because a subscriber could not decode them (not UTF-8, not JSON) */
  droppedMalformed: number;
  /** exceptions thrown by subscriber handlers (caught, counted, never crash the bus) */
  handlerErrors: number;
  clients: number;
}

export interface Bus {
  readonly deviceId: string;
  /** `talon/<deviceId>` */
  readonly root: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  isUp(): boolean;
  publish(topic: string, payload: Buffer | string, opts?: PublishOptions): Promise<void>;
  /** Resolves once the broker acknowledged the subscription; the returned function unsubscribes. */
  subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>>;
  /** count a payload a subscriber dropped as malformed */
  countMalformed(): void;
  stats(): BusStats;
}
