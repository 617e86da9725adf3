/**
 * The recent traffic under `talon/<deviceId>/#`, for the web admin's bus view: a ring of the
 * last `size` messages with payload text clipped to 1 KB; and publishing a test message,
 * which is refused on kernel-reserved topics (state, commands, Hand status, the audit head)
 * and anywhere outside `talon/<deviceId>/`.
 */
import type { Bus, BusMessage, QoS } from './types.ts';
import { validateTopic, topicMatches, validateFilter, KERNEL_ONLY } from '../core/topics.ts';
import { TalonError } from '../core/errors.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';

export const RECENT_SIZE = 500;
export const PAYLOAD_CLIP = 1024;

export interface RecordedMessage {
  ts: number;
  /** relative to talon/<deviceId>/ */
  topic: string;
  /** UTF-8 text (invalid bytes replaced), at most 1 KB */
  payload: string;
  truncated: boolean;
  bytes: number;
  retain: boolean;
  qos: QoS;
}

/** Relative topics (under talon/<deviceId>/) a test message may not use: the kernel's own, commands, all of audit/. */
export const RESERVED = [...KERNEL_ONLY, 'cmd', 'cmd/#', 'audit/#'];

export function isReserved(relative: string): boolean {
  return RESERVED.some((f) => topicMatches(f, relative));
}

interface Raw {
  ts: number;
  /** absolute */
  topic: string;
  /** at most PAYLOAD_CLIP bytes */
  payload: Buffer;
  bytes: number;
  retain: boolean;
  qos: QoS;
}

export class BusRecorder {
  #bus: Bus;
  #clock: Clock;
  #size: number;
  /** raw, as received: decoding waits until someone asks (recording sits on every bus message's path) */
  #ring: Raw[] = [];
  #next = 0;
  #unsub: (() => Promise<void>) | null = null;

  constructor(bus: Bus, opts: { clock?: Clock; size?: number } = {}) {
    this.#bus = bus;
    this.#clock = opts.clock ?? systemClock;
    this.#size = opts.size ?? RECENT_SIZE;
  }

  async start(): Promise<void> {
    this.#unsub = await this.#bus.subscribe(`${this.#bus.root}/#`, (m) => this.#record(m));
  }

  async stop(): Promise<void> {
    const u = this.#unsub;
    this.#unsub = null;
    await u?.().catch(() => {});
  }

  #record(m: BusMessage): void {
    // copied (at most 1 KB) when big, or when it is a view into a larger buffer than Node's
    // 8 KB pool slab (a socket read): the ring must never pin large buffers
    const big = m.payload.length > PAYLOAD_CLIP || m.payload.buffer.byteLength > 8192;
    const payload = big ? Buffer.from(m.payload.subarray(0, PAYLOAD_CLIP)) : m.payload;
    const entry: Raw = {
      ts: this.#clock.now(),
      topic: m.topic,
      payload,
      bytes: m.payload.length,
      retain: m.retain,
      qos: m.qos,
    };
    if (this.#ring.length < this.#size) this.#ring.push(entry);
    else this.#ring[this.#next] = entry;
    this.#next = (this.#next + 1) % this.#size;
  }

  /** newest first; `filter` is an MQTT filter over the relative topic */
  recent(opts: { limit?: number; filter?: string } = {}): RecordedMessage[] {
    const limit = Math.max(1, Math.min(opts.limit ?? 100, this.#size));
    if (opts.filter !== undefined) validateFilter(opts.filter);
    const ordered =
      this.#ring.length < this.#size
        ? [...this.#ring]
        : [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)];
    const prefix = `${this.#bus.root}/`;
    const out: RecordedMessage[] = [];
    for (let i = ordered.length - 1; i >= 0 && out.length < limit; i--) {
      const m = ordered[i]!;
      const topic = m.topic.startsWith(prefix) ? m.topic.slice(prefix.length) : m.topic;
      if (opts.filter !== undefined && !topicMatches(opts.filter, topic)) continue;
      out.push({
        ts: m.ts,
        topic,
        payload: m.payload.toString('utf8'),
        truncated: m.bytes > PAYLOAD_CLIP,
        bytes: m.bytes,
        retain: m.retain,
        qos: m.qos,
      });
    }
    return out;
  }

  /** Publishes a test message on a topic relative to the device root; returns the absolute topic. */
  async publish(relative: string, payload: string, opts: { retain?: boolean; qos?: QoS } = {}): Promise<string> {
    if (relative.startsWith('/') || relative.split('/').some((l) => l === '' || l === '..' || l === '.')) {
      throw new TalonError(
        'BUS_TOPIC_INVALID',
        `"${relative.slice(0, 80)}" must be a topic under talon/${this.#bus.deviceId}/, written without that prefix (e.g. test/hello)`,
      );
    }
    validateTopic(relative);
    if (relative.startsWith('$') || isReserved(relative)) {
      throw new TalonError(
        'FORBIDDEN',
        `"${relative.slice(0, 80)}" is reserved for the kernel (${RESERVED.join(', ')}); publish a test message somewhere else, e.g. test/hello`,
      );
    }
    const topic = `${this.#bus.root}/${relative}`;
    await this.#bus.publish(topic, payload, { qos: opts.qos ?? 0, retain: opts.retain ?? false });
    return topic;
  }
}
