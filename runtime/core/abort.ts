/**
 * A promise raced against an AbortSignal: it settles as `p` does, or rejects when the signal aborts first (with
 * `reasonOf(signal.reason)`, by default the reason itself). The listener is removed either way.
 */
export function raceAbort<T>(
  p: Promise<T>,
  signal: AbortSignal,
  reasonOf: (reason: unknown) => unknown = (r) => r,
): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(reasonOf(signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(reasonOf(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
