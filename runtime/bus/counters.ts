/** What both bus implementations count and check the same way. */
import type { BusHandler, BusMessage, BusStats } from './types.ts';
import { TalonError } from '../core/errors.ts';
import { validateTopic } from '../core/topics.ts';

export class BusCounters {
  published = 0;
  delivered = 0;
  droppedOversize = 0;
  droppedMalformed = 0;
  handlerErrors = 0;

  /** Calls one subscriber; a throw or a rejected promise is counted, never propagated. */
  call(handler: BusHandler, msg: BusMessage): void {
    try {
      const r = handler(msg) as unknown;
      this.delivered++;
      if (r !== undefined && typeof (r as Promise<unknown>)?.then === 'function') {
        (r as Promise<unknown>).then(undefined, () => {
          this.handlerErrors++;
        });
      }
    } catch {
      this.handlerErrors++;
    }
  }

  /** A kernel publish: topic rules and the payload limit. Returns the payload as a Buffer. */
  checkPublish(topic: string, payload: Buffer | string, maxPayload: number): Buffer {
    validateTopic(topic);
    const buf = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (buf.length > maxPayload) {
      this.droppedOversize++;
      throw new TalonError(
        'BUS_PAYLOAD_TOO_LARGE',
        `payload of ${buf.length} bytes on ${topic} is over the limit of ${maxPayload} bytes (bus.maxPayloadBytes)`,
        { details: { topic, bytes: buf.length, limit: maxPayload } },
      );
    }
    return buf;
  }

  /** The completion callback of a broker publish: counts it, or rejects with BUS_DOWN. */
  ack(topic: string, resolve: () => void, reject: (e: unknown) => void): (err?: Error | null) => void {
    return (err) => {
      if (err) {
        reject(new TalonError('BUS_DOWN', `publish to ${topic} failed: ${err.message}`, { cause: err }));
      } else {
        this.published++;
        resolve();
      }
    };
  }

  stats(clients: number): BusStats {
    return {
      published: this.published,
      delivered: this.delivered,
      droppedOversize: this.droppedOversize,
      droppedMalformed: this.droppedMalformed,
      handlerErrors: this.handlerErrors,
      clients,
    };
  }
}
