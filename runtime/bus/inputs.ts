/**
 * HandInputs: which topics running Hands listen to, so the embedded broker can let anonymous
 * outside clients publish there and nowhere else under the device (see EmbeddedBus).
 *
 * The supervisor is given `inputs.track(bus)` instead of the bus: a view that passes every call
 * through and counts each filter a Hand subscribes to for as long as that subscription lasts.
 * A Hand's subscriptions are exactly its granted `bus.subscribe` inputs that it actually uses;
 * when it stops (or unsubscribes) its topics stop being open to anonymous clients. No
 * supervisor internals are read: the bus only sees the subscriptions the kernel makes for Hands.
 */
import type { Bus, BusHandler, BusStats, PublishOptions } from './types.ts';
import { topicMatches } from '../core/topics.ts';

/** What the embedded broker asks: may anyone publish to `topic` because a Hand takes it as input? */
export interface InputQuery {
  accepts(topic: string): boolean;
}

export class HandInputs implements InputQuery {
  /** filter → number of live Hand subscriptions on it */
  #filters = new Map<string, number>();

  accepts(topic: string): boolean {
    for (const f of this.#filters.keys()) if (topicMatches(f, topic)) return true;
    return false;
  }

  /** the absolute filters Hands hold now */
  filters(): string[] {
    return [...this.#filters.keys()].sort();
  }

  /** The bus as Hands' subscriptions should reach it: the same bus, with each subscription counted as an input. */
  track(bus: Bus): Bus {
    return new TrackedBus(bus, this.#filters);
  }
}

class TrackedBus implements Bus {
  readonly #bus: Bus;
  readonly #filters: Map<string, number>;

  constructor(bus: Bus, filters: Map<string, number>) {
    this.#bus = bus;
    this.#filters = filters;
  }

  get deviceId(): string {
    return this.#bus.deviceId;
  }

  get root(): string {
    return this.#bus.root;
  }

  start(): Promise<void> {
    return this.#bus.start();
  }

  stop(): Promise<void> {
    return this.#bus.stop();
  }

  isUp(): boolean {
    return this.#bus.isUp();
  }

  publish(topic: string, payload: Buffer | string, opts?: PublishOptions): Promise<void> {
    return this.#bus.publish(topic, payload, opts);
  }

  async subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>> {
    const unsub = await this.#bus.subscribe(filter, handler);
    this.#filters.set(filter, (this.#filters.get(filter) ?? 0) + 1);
    let active = true;
    return async () => {
      if (active) {
        active = false;
        const n = (this.#filters.get(filter) ?? 1) - 1;
        if (n <= 0) this.#filters.delete(filter);
        else this.#filters.set(filter, n);
      }
      await unsub();
    };
  }

  countMalformed(): void {
    this.#bus.countMalformed();
  }

  stats(): BusStats {
    return this.#bus.stats();
  }
}
