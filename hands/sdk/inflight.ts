/**
 * InFlight: one run per key at a time. A second ask for a key whose run is still going gets the same promise (it
 * joins the run) instead of starting another; once the run settles, the next ask starts a new one.
 *
 *   const checks = new InFlight<string, Outcome>();
 *   check(id) { return checks.run(id, () => this.#check(id)); }     // two asks at once: one check, one answer
 *
 * The key is forgotten before anyone awaiting the run resumes, so a caller that awaited it and asks again starts a
 * fresh run. A run whose start throws is not kept (the throw is the returned promise's rejection).
 *
 * Used by hands/research (a topic's run), hands/leads (the scan; a joined scan is marked `joined`) and
 * hands/web-automation (a watch's check).
 */

export class InFlight<K, V> {
  #runs = new Map<K, Promise<V>>();

  /** `key`'s run in flight, or a new one from `start()` */
  run(key: K, start: () => Promise<V>): Promise<V> {
    const going = this.#runs.get(key);
    if (going) return going;
    let p: Promise<V>;
    try {
      p = start();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#runs.set(key, p);
    // registered before any caller can await p, so it runs first
    const forget = (): void => {
      if (this.#runs.get(key) === p) this.#runs.delete(key);
    };
    p.then(forget, forget);
    return p;
  }

  /** `key`'s run in flight, or undefined */
  get(key: K): Promise<V> | undefined {
    return this.#runs.get(key);
  }

  has(key: K): boolean {
    return this.#runs.has(key);
  }

  /** how many runs are in flight */
  get size(): number {
    return this.#runs.size;
  }

  /** the keys whose runs are in flight */
  keys(): K[] {
    return [...this.#runs.keys()];
  }

  /** resolves when every run in flight now has settled (never rejects: the runs' callers see their errors) */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#runs.values()]);
  }
}
