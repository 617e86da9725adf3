/**
 * Waiting, for channels: a sleep a signal ends, and the queue a push-fed channel (a socket's events, a webhook, an
 * MQTT subscription) fills and its receive() drains.
 */

/** what an aborted wait rejects with: the signal's reason, or an AbortError */
export function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}

/** waits `ms`, or rejects with the signal's reason as soon as it aborts */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError(signal));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** items pushed from callbacks, taken all at once; a taker waits up to `ms` for the first (an abort or wake() ends it) */
export class PushQueue<T> {
  #items: T[] = [];
  #wake: (() => void) | undefined;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  /** ends a wait now (the channel is closing) */
  wake(): void {
    this.#wake?.();
  }

  async take(ms: number, signal: AbortSignal): Promise<T[]> {
    if (this.#items.length === 0)
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          this.#wake = undefined;
          resolve();
        };
        const t = setTimeout(done, ms);
        signal.addEventListener('abort', done);
        this.#wake = done;
        if (signal.aborted) done();
      });
    return this.#items.splice(0);
  }
}
