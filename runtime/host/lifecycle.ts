/**
 * One way to start and stop the kernel's parts. A subsystem has `start()` and `stop()`; a
 * `Lifecycle` starts a list of them in order and stops the ones that started in reverse, with
 * one code path for both a start that failed half-way and a stop: the kernel used to undo a
 * failed start from one list and stop from another, and the two had drifted (parts never
 * undone, `runtime.json` left behind).
 *
 * The rules:
 * - a subsystem whose `start()` throws is not stopped: it cleans up what it began itself; the
 *   ones started before it are stopped in reverse, then the start error is thrown again;
 * - a stop that throws (or passes its `stopTimeoutMs`) is logged and the next one still runs:
 *   one broken part must not leave the others, or the store, open;
 * - `stop()` runs once; later calls get the same promise. A stop asked while the start is under
 *   way lets the subsystem being started finish, starts no more, and stops them all.
 */
import { TalonError } from '../core/errors.ts';
import { systemClock, type Clock } from '../core/clock.ts';

export interface Subsystem {
  /** a short name for logs and tests (`store`, `bus`, `hands`) */
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
  /**
   * How long its stop may take before the lifecycle logs it and goes on with the next one (the
   * stop keeps running; its late failure is ignored). Without one, the lifecycle waits.
   */
  readonly stopTimeoutMs?: number;
}

export interface LifecycleOptions {
  /** where stop failures go; never throws */
  log: (level: 'warn' | 'error', msg: string) => void;
  clock?: Clock;
}

export class Lifecycle {
  #log: LifecycleOptions['log'];
  #clock: Clock;
  #started: Subsystem[] = [];
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  #stopAsked = false;
  #stopBegan: number | null = null;

  constructor(opts: LifecycleOptions) {
    this.#log = opts.log;
    this.#clock = opts.clock ?? systemClock;
  }

  /** Starts each in order; on a failure stops the started ones in reverse and throws that failure. Once per lifecycle. */
  start(subsystems: Iterable<Subsystem>): Promise<void> {
    if (this.#starting || this.#stopAsked)
      return Promise.reject(new TalonError('INTERNAL', 'a lifecycle starts once, and not after a stop'));
    this.#starting = this.#startAll(subsystems);
    return this.#starting;
  }

  /** Stops every started subsystem in reverse, once; failures are logged, never thrown. */
  stop(): Promise<void> {
    this.#stopAsked = true;
    this.#stopping ??= (async () => {
      await this.#starting?.catch(() => undefined);
      await this.#stopAll();
    })();
    return this.#stopping;
  }

  /** the names of the subsystems running now, in start order */
  running(): string[] {
    return this.#started.map((s) => s.name);
  }

  /** when stopping began (a stop, or the undo of a failed start); null before */
  get stopBegan(): number | null {
    return this.#stopBegan;
  }

  async #startAll(subsystems: Iterable<Subsystem>): Promise<void> {
    for (const s of subsystems) {
      try {
        if (this.#stopAsked) throw new TalonError('NOT_RUNNING', `stopped while starting (before ${s.name})`);
        await s.start();
      } catch (err) {
        await this.#stopAll();
        throw err;
      }
      this.#started.push(s);
    }
  }

  async #stopAll(): Promise<void> {
    if (this.#started.length > 0) this.#stopBegan ??= this.#clock.now();
    for (let s = this.#started.pop(); s; s = this.#started.pop()) await this.#stopOne(s);
  }

  async #stopOne(s: Subsystem): Promise<void> {
    // a stop that throws synchronously is a failure like a rejected one
    const stopping = Promise.resolve().then(() => s.stop());
    const ms = s.stopTimeoutMs;
    if (ms === undefined) {
      await stopping.catch((err: unknown) => this.#log('error', `stopping ${s.name}: ${TalonError.from(err).message}`));
      return;
    }
    let timer: unknown = null;
    const late = new Promise<'late'>((resolve) => {
      timer = this.#clock.setTimeout(() => resolve('late'), ms);
    });
    try {
      const outcome = await Promise.race([stopping.then(() => 'ok' as const), late]);
      if (outcome === 'late') {
        stopping.catch(() => undefined);
        this.#log('error', `stopping ${s.name}: not done after ${ms} ms; going on without it`);
      }
    } catch (err) {
      this.#log('error', `stopping ${s.name}: ${TalonError.from(err).message}`);
    } finally {
      this.#clock.clearTimeout(timer);
    }
  }
}
