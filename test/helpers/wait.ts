/** Bounded waits for events in tests (no timing assertions: only a ceiling that fails the test). */
export async function waitFor(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the first event of `name` on `emitter`, or rejects after timeoutMs. */
export function once<T = unknown>(
  emitter: {
    once(name: string, fn: (...args: any[]) => void): unknown;
    off?(name: string, fn: (...args: any[]) => void): unknown;
  },
  name: string,
  timeoutMs = 5_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const fn = (arg: T): void => {
      clearTimeout(t);
      resolve(arg);
    };
    const t = setTimeout(() => {
      emitter.off?.(name, fn);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${name}"`));
    }, timeoutMs);
    emitter.once(name, fn);
  });
}
