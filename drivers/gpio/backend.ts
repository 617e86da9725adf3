/**
 * How the GPIO driver touches pins: raw levels (0/1, before any active-low inversion, which
 * the driver does itself) on sysfs GPIO numbers. Two backends: onoff (the kernel's sysfs GPIO
 * interface) and an in-memory simulator for laptops, demos and tests.
 */
export type Level = 0 | 1;

export interface PinRequest {
  /** the sysfs GPIO number (BCM + chip base) */
  gpio: number;
  direction: 'in' | 'out';
  /** for outputs: the level set as the pin is configured (no glitch) */
  initial?: Level;
  /** for inputs: ask the kernel for edge interrupts (both edges); false = the driver polls */
  interrupts?: boolean;
}

export interface PinHandle {
  read(): Promise<Level>;
  write(level: Level): Promise<void>;
  /** interrupt-driven change notifications (inputs opened with interrupts); throws when the line has none */
  watch(cb: (err: Error | null | undefined, level: Level) => void): void;
  /** releases the pin (unexports it); idempotent */
  close(): void;
}

export interface GpioBackend {
  readonly kind: 'onoff' | 'sim';
  open(req: PinRequest): Promise<PinHandle>;
}

// ---- onoff --------------------------------------------------------------------------

interface OnoffGpio {
  read(): Promise<number>;
  write(v: number): Promise<void>;
  watch(cb: (err: Error | null | undefined, value: number) => void): void;
  unwatchAll(): void;
  unexport(): void;
}
type OnoffCtor = new (gpio: number, direction: string, edge?: string | object, options?: object) => OnoffGpio;

/** onoff loads a native addon (epoll): imported only when a real GPIO driver starts */
async function loadOnoff(): Promise<OnoffCtor> {
  const mod = (await import('onoff')) as unknown as { Gpio?: OnoffCtor; default?: { Gpio: OnoffCtor } };
  const Gpio = mod.Gpio ?? mod.default?.Gpio;
  if (!Gpio) throw new Error('onoff did not export Gpio');
  return Gpio;
}

export interface OnoffBackendOptions {
  /** retries of a pin whose sysfs files appear late after export (udev permission race) */
  attempts?: number;
  retryDelayMs?: number;
}

export class OnoffBackend implements GpioBackend {
  readonly kind = 'onoff' as const;
  #Gpio: OnoffCtor | null = null;
  readonly #opts: OnoffBackendOptions;
  constructor(opts: OnoffBackendOptions = {}) {
    this.#opts = opts;
  }

  async open(req: PinRequest): Promise<PinHandle> {
    this.#Gpio ??= await loadOnoff();
    const Gpio = this.#Gpio;
    const direction = req.direction === 'out' ? (req.initial === 1 ? 'high' : 'low') : 'in';
    const edge = req.direction === 'in' && req.interrupts ? 'both' : undefined;
    // active-low is the driver's job: reset whatever a previous user left in active_low
    const options = { activeLow: false, reconfigureDirection: true };
    const attempts = this.#opts.attempts ?? 5;
    let gpio: OnoffGpio | null = null;
    for (let i = 1; gpio === null; i++) {
      try {
        gpio = edge ? new Gpio(req.gpio, direction, edge, options) : new Gpio(req.gpio, direction, options);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // right after export the pin's files may not exist or be writable yet; then the pin
        // counts as exported and the next attempt configures it
        if (i >= attempts || (code !== 'ENOENT' && code !== 'EACCES')) throw err;
        await new Promise((r) => setTimeout(r, this.#opts.retryDelayMs ?? 50));
      }
    }
    const g = gpio;
    let closed = false;
    return {
      read: async () => ((await g.read()) === 1 ? 1 : 0),
      write: (level) => g.write(level),
      watch: (cb) => {
        try {
          g.watch((err, v) => cb(err, v === 1 ? 1 : 0));
        } catch (err) {
          // no interrupt on this line (epoll refuses the value file): onoff has already
          // recorded the listener, and its unexport() would then fail to remove it from
          // epoll and leave the fd open; forget it here (onoff 6's private field)
          (g as unknown as { _listeners: unknown[] })._listeners = [];
          throw err;
        }
      },
      close: () => {
        if (closed) return;
        closed = true;
        g.unexport();
      },
    };
  }
}

// ---- simulator ----------------------------------------------------------------------

/**
 * In-memory pins. An input's level is set from outside (`set(gpio, level)`: a button, a
 * door contact, a test), an output's level is what the driver wrote (`level(gpio)`).
 * Watchers are told synchronously, like an interrupt.
 */
export class SimGpio implements GpioBackend {
  readonly kind = 'sim' as const;
  readonly #levels = new Map<number, Level>();
  readonly #open_ = new Map<number, { direction: 'in' | 'out'; watchers: Set<(err: null, level: Level) => void> }>();
  /** GPIO numbers ever opened, in order (for tests) */
  readonly opened: number[] = [];

  async open(req: PinRequest): Promise<PinHandle> {
    if (this.#open_.has(req.gpio))
      throw Object.assign(new Error(`gpio${req.gpio} is already in use`), { code: 'EBUSY' });
    const pin = { direction: req.direction, watchers: new Set<(err: null, level: Level) => void>() };
    this.#open_.set(req.gpio, pin);
    this.opened.push(req.gpio);
    if (req.direction === 'out') this.#levels.set(req.gpio, req.initial ?? 0);
    else if (!this.#levels.has(req.gpio)) this.#levels.set(req.gpio, 0);
    let closed = false;
    return {
      read: async () => this.#levels.get(req.gpio) ?? 0,
      write: async (level) => {
        if (closed) throw new Error(`gpio${req.gpio} is closed`);
        if (pin.direction !== 'out') throw Object.assign(new Error(`gpio${req.gpio} is an input`), { code: 'EPERM' });
        this.#levels.set(req.gpio, level);
      },
      watch: (cb) => {
        pin.watchers.add(cb);
      },
      close: () => {
        if (closed) return;
        closed = true;
        pin.watchers.clear();
        this.#open_.delete(req.gpio);
      },
    };
  }

  /** drive an input to `level` (raw, before active-low) */
  set(gpio: number, level: Level): void {
    if (this.#levels.get(gpio) === level) return;
    this.#levels.set(gpio, level);
    const pin = this.#open_.get(gpio);
    if (pin?.direction === 'in') for (const w of [...pin.watchers]) w(null, level);
  }

  /** the raw level of a pin (an output's last write) */
  level(gpio: number): Level | undefined {
    return this.#levels.get(gpio);
  }

  isOpen(gpio: number): boolean {
    return this.#open_.has(gpio);
  }
}
